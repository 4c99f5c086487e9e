#include "config/cfg.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum cfg__type { CFG_STR, CFG_INT, CFG_SIZE, CFG_BOOL };

/* X(key, type, field, default, min, max, doc).  min/max bound numbers; for
 * strings max is ignored (the field's size bounds them). */
#define CFG_TABLE(X)                                                                          \
    X(listen, CFG_STR, listen, "127.0.0.1:8080", 0, 0,                                        \
      "Address the HTTP server listens on, HOST:PORT ([::1]:PORT for IPv6). Loopback by default.") \
    X(db, CFG_STR, db, "erd.db", 0, 0, "SQLite catalog store.")                              \
    X(threads, CFG_INT, threads, "0", 0, 256, "HTTP worker threads; 0 = one per CPU core.")  \
    X(max_connections, CFG_INT, max_connections, "256", 1, 65536,                             \
      "Concurrent connections accepted; more are refused.")                                   \
    X(request_timeout_s, CFG_INT, request_timeout_s, "10", 1, 3600,                           \
      "Idle connection timeout, seconds.")                                                    \
    X(max_body_bytes, CFG_SIZE, max_body_bytes, "65536", 256, 67108864,                       \
      "Largest request body; larger ones get 413.")                                           \
    X(max_hypotheses, CFG_INT, max_hypotheses, "10", 1, 100,                                  \
      "Most n-best hypotheses accepted in one resolve.")                                      \
    X(max_text_bytes, CFG_SIZE, max_text_bytes, "512", 16, 1000,                              \
      "Longest hypothesis text, bytes.")                                                      \
    X(default_k, CFG_INT, default_k, "5", 1, 1000, "Results returned when a request gives no k.") \
    X(max_k, CFG_INT, max_k, "100", 1, 1000, "Largest k a request may ask for.")             \
    X(g2p_cache_entries, CFG_SIZE, g2p_cache_entries, "65536", 0, 16777216,                   \
      "Phoneme cache capacity (texts); 0 disables it.")                                       \
    X(g2p_voice, CFG_STR, g2p_voice, "en-us", 0, 0, "espeak-ng voice used for G2P.")         \
    X(encoder, CFG_STR, encoder, "baseline", 0, 0,                                            \
      "Phonetic encoder used by builds: baseline[:DIM].")                                     \
    X(faiss_factory, CFG_STR, faiss_factory, "Flat", 0, 0,                                    \
      "FAISS index_factory string for builds (inner product; ids mapped automatically).")     \
    X(candidates, CFG_INT, candidates, "64", 1, 4096,                                         \
      "Vectors fetched from the index per resolve before grouping by entity.")                \
    X(log_requests, CFG_BOOL, log_requests, "true", 0, 1, "One JSON log line per request on stderr.")

typedef struct cfg__entry {
    const char *key;
    enum cfg__type type;
    size_t offset;
    size_t size;
    const char *def;
    long long min, max;
    const char *doc;
} cfg__entry;

static const cfg__entry cfg__table[] = {
#define CFG__ROW(k, t, f, d, lo, hi, doc) \
    {#k, t, offsetof(cfg_config, f), sizeof(((cfg_config *)0)->f), d, lo, hi, doc},
    CFG_TABLE(CFG__ROW)
#undef CFG__ROW
};

#define CFG__N (sizeof cfg__table / sizeof cfg__table[0])

static const cfg__entry *cfg__find(const char *key)
{
    for (size_t i = 0; i < CFG__N; i++)
        if (strcmp(cfg__table[i].key, key) == 0)
            return &cfg__table[i];
    return NULL;
}

static int cfg__parse_bool(const char *v, bool *ret)
{
    if (!strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "on") || !strcmp(v, "1")) {
        *ret = true;
        return ERD_OK;
    }
    if (!strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "off") || !strcmp(v, "0")) {
        *ret = false;
        return ERD_OK;
    }
    return ERD_ECONFIG;
}

static int cfg__apply(cfg_config *cfg, const cfg__entry *e, const char *value, erd_diag *diag)
{
    char *base = (char *)cfg + e->offset;

    switch (e->type) {
    case CFG_STR: {
        size_t len = strlen(value);
        if (len == 0)
            return erd_fail(diag, ERD_ECONFIG, "%s: must not be empty", e->key);
        if (len >= e->size)
            return erd_fail(diag, ERD_ECONFIG, "%s: longer than %zu bytes", e->key, e->size - 1);
        memcpy(base, value, len + 1);
        return ERD_OK;
    }
    case CFG_BOOL: {
        bool b;
        if (cfg__parse_bool(value, &b) < 0)
            return erd_fail(diag, ERD_ECONFIG, "%s: expected true or false, got \"%s\"", e->key,
                            value);
        *(bool *)base = b;
        return ERD_OK;
    }
    case CFG_INT:
    case CFG_SIZE: {
        char *end;
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (errno || end == value || *end != '\0')
            return erd_fail(diag, ERD_ECONFIG, "%s: expected an integer, got \"%s\"", e->key,
                            value);
        if (v < e->min || v > e->max)
            return erd_fail(diag, ERD_ECONFIG, "%s: %lld is outside %lld..%lld", e->key, v, e->min,
                            e->max);
        if (e->type == CFG_INT)
            *(int *)base = (int)v;
        else
            *(size_t *)base = (size_t)v;
        return ERD_OK;
    }
    }
    return erd_fail(diag, ERD_EINTERNAL, "%s: unknown type", e->key);
}

/* Constraints between keys, checked after every change of source. */
static int cfg__validate(const cfg_config *cfg, erd_diag *diag)
{
    if (cfg->default_k > cfg->max_k)
        return erd_fail(diag, ERD_ECONFIG, "default_k (%d) exceeds max_k (%d)", cfg->default_k,
                        cfg->max_k);
    if (!strchr(cfg->listen, ':'))
        return erd_fail(diag, ERD_ECONFIG, "listen: expected HOST:PORT, got \"%s\"", cfg->listen);
    return ERD_OK;
}

void cfg_defaults(cfg_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < CFG__N; i++) {
        int rc = cfg__apply(cfg, &cfg__table[i], cfg__table[i].def, NULL);
        (void)rc; /* defaults are validated by test-config */
    }
}

int cfg_set(cfg_config *cfg, const char *key, const char *value, erd_diag *diag)
{
    const cfg__entry *e = cfg__find(key);
    if (!e)
        return erd_fail(diag, ERD_ENOTFOUND, "unknown setting \"%s\"", key);
    cfg_config next = *cfg;
    int rc = cfg__apply(&next, e, value, diag);
    if (rc < 0)
        return rc;
    rc = cfg__validate(&next, diag);
    if (rc < 0)
        return rc;
    *cfg = next;
    return ERD_OK;
}

static char *cfg__trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

int cfg_load_file(cfg_config *cfg, const char *path, erd_diag *diag)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return erd_fail(diag, ERD_EIO, "%s: cannot open: %s", path, strerror(errno));

    cfg_config next = *cfg;
    char line[2048];
    unsigned lineno = 0;
    int rc = ERD_OK;

    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (!strchr(line, '\n') && !feof(f)) {
            rc = erd_fail(diag, ERD_ECONFIG, "%s:%u: line too long", path, lineno);
            goto out;
        }
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char *s = cfg__trim(line);
        if (!*s)
            continue;
        char *sep = s + strcspn(s, " \t=");
        char *value = sep;
        if (*sep) {
            *sep = '\0';
            value = sep + 1;
            while (*value == ' ' || *value == '\t' || *value == '=')
                value++;
        }
        value = cfg__trim(value);
        /* Allow "quoted values" so a value may hold spaces or '#'-free text. */
        size_t vlen = strlen(value);
        if (vlen >= 2 && value[0] == '"' && value[vlen - 1] == '"') {
            value[vlen - 1] = '\0';
            value++;
        }
        const cfg__entry *e = cfg__find(s);
        if (!e) {
            rc = erd_fail(diag, ERD_ECONFIG, "%s:%u: unknown setting \"%s\"", path, lineno, s);
            goto out;
        }
        erd_diag inner = {0};
        rc = cfg__apply(&next, e, value, &inner);
        if (rc < 0) {
            rc = erd_fail(diag, ERD_ECONFIG, "%s:%u: %s", path, lineno, inner.msg);
            goto out;
        }
    }
    if (ferror(f)) {
        rc = erd_fail(diag, ERD_EIO, "%s: read error", path);
        goto out;
    }
    erd_diag inner = {0};
    rc = cfg__validate(&next, &inner);
    if (rc < 0) {
        rc = erd_fail(diag, ERD_ECONFIG, "%s: %s", path, inner.msg);
        goto out;
    }
    *cfg = next;
out:
    fclose(f);
    return rc;
}

int cfg_load_env(cfg_config *cfg, erd_diag *diag)
{
    cfg_config next = *cfg;
    for (size_t i = 0; i < CFG__N; i++) {
        char name[96] = "ERD_";
        size_t j = 4;
        for (const char *k = cfg__table[i].key; *k && j + 1 < sizeof name; k++)
            name[j++] = (char)toupper((unsigned char)*k);
        name[j] = '\0';
        const char *v = getenv(name);
        if (!v)
            continue;
        erd_diag inner = {0};
        int rc = cfg__apply(&next, &cfg__table[i], v, &inner);
        if (rc < 0)
            return erd_fail(diag, ERD_ECONFIG, "environment %s: %s", name, inner.msg);
    }
    erd_diag inner = {0};
    int rc = cfg__validate(&next, &inner);
    if (rc < 0)
        return erd_fail(diag, ERD_ECONFIG, "environment: %s", inner.msg);
    *cfg = next;
    return ERD_OK;
}

void cfg_dump(const cfg_config *cfg, FILE *out)
{
    for (size_t i = 0; i < CFG__N; i++) {
        const cfg__entry *e = &cfg__table[i];
        const char *base = (const char *)cfg + e->offset;
        fprintf(out, "# %s (default: %s)\n", e->doc, e->def);
        switch (e->type) {
        case CFG_STR:
            fprintf(out, "%s %s\n\n", e->key, base);
            break;
        case CFG_INT:
            fprintf(out, "%s %d\n\n", e->key, *(const int *)base);
            break;
        case CFG_SIZE:
            fprintf(out, "%s %zu\n\n", e->key, *(const size_t *)base);
            break;
        case CFG_BOOL:
            fprintf(out, "%s %s\n\n", e->key, *(const bool *)base ? "true" : "false");
            break;
        }
    }
}
