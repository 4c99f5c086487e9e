#include "config/cfg.h"

#include <ctype.h>
#include <stdbool.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum cfg__type {
    CFG_STR,    /* non-empty string */
    CFG_OPTSTR, /* string that may be empty */
    CFG_SECRET, /* bearer token: may be empty, never printed */
    CFG_INT,
    CFG_SIZE,
    CFG_BOOL,
};

/* What SIGHUP can change: LIVE keys take effect for the next request; FIXED
 * keys are bound at start (sockets, threads, loaded data) and need a restart. */
enum cfg__reload { FIXED, LIVE };

/* X(key, type, field, default, min, max, reload, doc).  min/max bound
 * numbers, and the length of secrets; for other strings the field's size
 * bounds them. */
#define CFG_TABLE(X)                                                                          \
    X(listen, CFG_STR, listen, "127.0.0.1:8080", 0, 0, FIXED,                                 \
      "Address the HTTP server listens on, HOST:PORT ([::1]:PORT for IPv6). Loopback by default.") \
    X(db, CFG_STR, db, "erd.db", 0, 0, FIXED, "SQLite catalog store.")                       \
    X(threads, CFG_INT, threads, "0", 0, 256, FIXED,                                          \
      "HTTP worker threads with http_threading pool; 0 = one per CPU core.")                  \
    X(http_threading, CFG_STR, http_threading, "connection", 0, 0, FIXED,                     \
      "connection: a thread per connection, spread over the cores by the scheduler (best for " \
      "a few keep-alive clients, as voice front-ends are); pool: `threads` epoll workers, each " \
      "keeping the connections it accepted (fewer threads for many clients).")                \
    X(max_connections, CFG_INT, max_connections, "256", 1, 65536, FIXED,                      \
      "Concurrent connections accepted; more are refused.")                                   \
    X(max_connections_per_ip, CFG_INT, max_connections_per_ip, "64", 0, 65536, LIVE,          \
      "Concurrent connections accepted from one client address; more are closed at accept. "  \
      "0 = no per-address limit.")                                                            \
    X(max_half_open_per_ip, CFG_INT, max_half_open_per_ip, "32", 0, 65536, LIVE,              \
      "Connections from one client address that have not yet sent a whole request; a new "    \
      "connection from an address holding this many is closed at accept (slowloris).  Once "  \
      "half of max_connections are such, an address holding any is refused. 0 = no limit.")  \
    X(request_timeout_s, CFG_INT, request_timeout_s, "10", 1, 3600, FIXED,                    \
      "Idle connection timeout, seconds.")                                                    \
    X(header_timeout_s, CFG_INT, header_timeout_s, "10", 1, 3600, LIVE,                       \
      "Seconds a client has to send the request line and headers, counted from the "          \
      "connection's start or its previous reply, however steadily it trickles; then it is "   \
      "closed.")                                                                              \
    X(body_timeout_s, CFG_INT, body_timeout_s, "30", 1, 3600, LIVE,                           \
      "Seconds a client has to send a request body once its headers are in (a streamed bulk " \
      "upload gets this long for each MiB); then it is closed.")                              \
    X(max_body_bytes, CFG_SIZE, max_body_bytes, "65536", 256, 67108864, LIVE,                 \
      "Largest request body; larger ones get 413.")                                           \
    X(max_bulk_bytes, CFG_SIZE, max_bulk_bytes, "67108864", 1024, 1099511627776LL, LIVE,      \
      "Largest streamed bulk upload (POST /v1/catalogs/NAME/bulk, JSON lines); read and "     \
      "committed line by line and indexed as one batch at its end (delta_max_bytes), so the " \
      "upload itself holds one line.  What it adds to the served index stays (about 1.4 KB " \
      "per entity): "                                                                         \
      "64 MiB, some 400,000 entities of 150 bytes, is sized for a 512 MiB pod.  Larger ones " \
      "get 413 at their headers.")                                                            \
    X(max_hypotheses, CFG_INT, max_hypotheses, "10", 1, 100, LIVE,                            \
      "Most n-best hypotheses accepted in one resolve.")                                      \
    X(max_text_bytes, CFG_SIZE, max_text_bytes, "512", 16, 1000, LIVE,                        \
      "Longest hypothesis text, bytes.")                                                      \
    X(default_k, CFG_INT, default_k, "5", 1, 1000, LIVE,                                      \
      "Results returned when a request gives no k.")                                          \
    X(max_k, CFG_INT, max_k, "100", 1, 1000, LIVE, "Largest k a request may ask for.")       \
    X(g2p_cache_entries, CFG_SIZE, g2p_cache_entries, "65536", 0, 16777216, FIXED,            \
      "Phoneme cache capacity (texts); 0 disables it.")                                       \
    X(g2p_voice, CFG_STR, g2p_voice, "en-us+cmu", 0, 0, FIXED,                                \
      "espeak-ng voice used for G2P; VOICE+cmu also indexes every name and alias in the CMU "  \
      "dictionary's pronunciation where it differs (libflite's cmulex): the voices people "    \
      "hear and recognisers' dictionaries follow it.  A catalog keeps the voice it was built " \
      "with.")                                                                                 \
    X(encoder, CFG_STR, encoder, "model:erd-siamese-v5.bin", 0, 0, FIXED,                                     \
      "Phonetic encoder used by builds: baseline[:DIM], model:FILE (learned), semantic:FILE, " \
      "vec:FILE or fused:W:PHONETIC|SEMANTIC.")                                                \
    X(model_dir, CFG_STR, model_dir, "auto", 0, 0, FIXED,                                     \
      "Folder searched for model files named by a relative path that does not exist from "    \
      "the working directory; auto = phonetics/models above the erd binary's folder, else "   \
      "under the data directory erd was built for (PREFIX/share/erd).")                       \
    X(faiss_factory, CFG_STR, faiss_factory, "auto", 0, 0, FIXED,                             \
      "FAISS index_factory string for builds (inner product; ids mapped automatically), "     \
      "erd's own erdIVF<nlist>,SQ<8|4|2> (inverted lists of 8-, 4- or 2-bit codes scanned by " \
      "erd's SIMD kernels, candidates rescored exactly from a memory-mapped file), or auto: "  \
      "exact Flat up to index_flat_max vectors, erdIVF<nlist>,SQ4 above (nlist the first "     \
      "power of two at or above the square root of the vector count; past 2048 such lists, "  \
      "erdIVF<nlist>_G<groups>,SQ4: lists of about 512 vectors found through about "           \
      "sqrt(nlist) groups).  FACTORY|PARAMS also sets search parameters, saved with the "     \
      "index: IVF4096,PQ16|nprobe=16, erdIVF4096,SQ4|nprobe=32,rescore=512, "                  \
      "erdIVF32768_G256,SQ4|nprobe=128,gprobe=16 (see deploy/SCALE-OUT.md).")                  \
    X(index_flat_max, CFG_SIZE, index_flat_max, "262144", 1, 1099511627776, FIXED,            \
      "Most vectors a faiss_factory auto build searches exactly; larger catalogs get erdIVF.")   \
    X(ivf_nprobe, CFG_INT, ivf_nprobe, "0", 0, 65536, FIXED,                                  \
      "IVF lists scanned per search; set at build time and kept in the index file.  0: 128, "  \
      "and for the two-level erdIVF<nlist>_G<groups> enough of its smaller lists to scan "     \
      "about 100,000 vectors, as 128 of 2048 lists do at 1.6M (256 at 10M).")                  \
    X(ivf_search, CFG_OPTSTR, ivf_search, "", 0, 0, FIXED,                                    \
      "Search parameters for catalogs served from erd's own IVF (nprobe=N,gprobe=N,rescore=N, " \
      "comma-separated), applied when an index is loaded instead of those kept in its file: " \
      "trade recall for latency without a rebuild.  Empty: the file's.")                      \
    X(hnsw_ef_search, CFG_INT, hnsw_ef_search, "128", 1, 65536, FIXED,                        \
      "HNSW search breadth (efSearch) for HNSW factory strings; set at build time and kept in " \
      "the index file.")                                                                      \
    X(simd, CFG_STR, simd, "auto", 0, 0, FIXED,                                               \
      "Widest vector instructions erd's own scan and rerank kernels use: auto (all the CPU "   \
      "has), avx512-vnni, avx512-bf16, avx512, avx2 or base.  Answers are the same under each; for "        \
      "comparing kernels, or a way around a CPU fault.")                                      \
    X(candidates, CFG_INT, candidates, "64", 1, 4096, FIXED,                                  \
      "Vectors fetched from the index per resolve before grouping by entity.")                \
    X(rerank, CFG_STR, rerank,                                                                \
      "phonetics/models/channel-v4.txt,candidates=200,command=command-v1.json,"                 \
      "order=order-v1.json", 0, 0, FIXED,                                                       \
      "Second stage: rescore the first candidates by phone alignment under a learned noise "   \
      "channel, then order the top results by their open-set features (order=, "               \
      "deploy/order-probe.py). off, or CHANNEL_FILE[,weight=W,candidates=N,budget=CELLS,"       \
      "mode=local|global,skip=S,temperature=T,ranker=FILE,command=FILE,order=FILE] (budget: "   \
      "alignment cells, hypothesis "                                                           \
      "phones times name phones, a resolve may spend before its least likely candidates go "   \
      "unaligned; default 1000000, about 0.4 ms; 0 = no limit); a relative file is looked "    \
      "up from the working directory, then from the folder above the erd binary's, then "      \
      "from the data directory (PREFIX/share/erd); ranker, command and order files "           \
      "(deploy/fit-ranker.sh, deploy/fit-command.sh, deploy/order-probe.py) beside the "       \
      "channel file.")                                                                         \
    X(calibration, CFG_STR, calibration, "phonetics/models/calibration-v13.txt", 0, 0, FIXED,  \
      "Calibrated scores: off, or a file from erd calibrate mapping each result to the "       \
      "probability it is right (the entity meant, also when the catalog may lack it: "        \
      "deploy/fit-calibration.sh); looked up like rerank's channel file.  A catalog built with " \
      "another encoder, or a rerank other than the one the file records, gets uncalibrated "   \
      "scores (erd serve says so at start).")                                                  \
    X(no_match_threshold, CFG_STR, no_match_threshold, "auto", 0, 0, LIVE,                     \
      "Top score below which a resolve answers \"match\": false (its candidates still "       \
      "listed); a request's min_score overrides it.  auto (the threshold the calibration file " \
      "records: it keeps 95 % of right answers on held-out simulated queries; 0 for "          \
      "uncalibrated scores), a number in [0, 1], and per catalog CATALOG=auto|NUMBER, comma "  \
      "separated: auto,video=0.3.")                                                           \
    X(delta_max, CFG_SIZE, delta_max, "20000", 0, 100000000, FIXED,                           \
      "Entities written or deleted since a catalog's index was built that erd serve answers "   \
      "from its small delta index; past this it rebuilds the catalog in the background. "     \
      "0 = never rebuild on its own.")                                                         \
    X(delta_max_bytes, CFG_SIZE, delta_max_bytes, "67108864", 0, 1099511627776LL, FIXED,     \
      "Memory a catalog's delta may hold (about 2 KB per entity written since its index was " \
      "built).  Past it the delta stops growing and a rebuild starts; the catalog is served " \
      "as of the delta until the rebuild is in, so writes of any volume go to the index "     \
      "builder in batches (a bulk upload as one, at its end). 0 = no limit.  Sized for a 512 " \
      "MiB pod.")                                                                             \
    X(sync_interval_ms, CFG_INT, sync_interval_ms, "500", 50, 60000, FIXED,                    \
      "How often erd serve looks for writes made by others (erd import, erd entity, another "  \
      "server) and for indexes built by erd build, and serves them.")                         \
    X(log_requests, CFG_BOOL, log_requests, "true", 0, 1, LIVE,                               \
      "One JSON log line per request on stderr.")                                             \
    X(resolve_token, CFG_SECRET, resolve_token, "", 16, 255, LIVE,                            \
      "Bearer token POST /v1/resolve requires (admin_token is accepted too); empty = resolve is open to whoever reaches the port.") \
    X(admin_token, CFG_SECRET, admin_token, "", 16, 255, LIVE,                                \
      "Bearer token for admin routes and /metrics; empty = they answer 403. Prefer admin_token_file or $ERD_ADMIN_TOKEN.") \
    X(admin_token_file, CFG_OPTSTR, admin_token_file, "", 0, 0, LIVE,                         \
      "File whose first line is admin_token (e.g. a mounted Kubernetes secret); re-read on SIGHUP.") \
    X(metrics_token, CFG_SECRET, metrics_token, "", 16, 255, LIVE,                            \
      "Bearer token accepted on GET /metrics besides admin_token, so a scraper needs no admin rights.")

typedef struct cfg__entry {
    const char *key;
    enum cfg__type type;
    size_t offset;
    size_t size;
    const char *def;
    long long min, max;
    enum cfg__reload reload;
    const char *doc;
} cfg__entry;

static const cfg__entry cfg__table[] = {
#define CFG__ROW(k, t, f, d, lo, hi, rl, doc) \
    {#k, t, offsetof(cfg_config, f), sizeof(((cfg_config *)0)->f), d, lo, hi, rl, doc},
    CFG_TABLE(CFG__ROW)
#undef CFG__ROW
};

#define CFG__N (sizeof cfg__table / sizeof cfg__table[0])

/* The rows store through the field's type their cfg__type names (an int
 * through *(int *), ...): the compiler checks that each row's field has
 * that type, so a row can never write an int into a size_t or a bool. */
#define CFG__FIELD(f) (((cfg_config *)0)->f)
#define CFG__IS_CFG_STR(f) _Generic(CFG__FIELD(f), char *: 1, default: 0)
#define CFG__IS_CFG_OPTSTR(f) _Generic(CFG__FIELD(f), char *: 1, default: 0)
#define CFG__IS_CFG_SECRET(f) _Generic(CFG__FIELD(f), char *: 1, default: 0)
#define CFG__IS_CFG_INT(f) _Generic(CFG__FIELD(f), int: 1, default: 0)
#define CFG__IS_CFG_SIZE(f) _Generic(CFG__FIELD(f), size_t: 1, default: 0)
#define CFG__IS_CFG_BOOL(f) _Generic(CFG__FIELD(f), bool: 1, default: 0)
#define CFG__CHECK(k, t, f, d, lo, hi, rl, doc) \
    _Static_assert(CFG__IS_##t(f), "config key " #k ": field " #f " is not of type " #t);
CFG_TABLE(CFG__CHECK)
#undef CFG__CHECK

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

/* RFC 6750 b64token characters: what fits in "Authorization: Bearer X"
 * without quoting, so every configured token can actually be sent. */
static bool cfg__token_chars(const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (!isalnum(c) && !strchr("-._~+/=", c))
            return false;
    }
    return true;
}

static int cfg__apply(cfg_config *cfg, const cfg__entry *e, const char *value, erd_diag *diag)
{
    char *base = (char *)cfg + e->offset;

    switch (e->type) {
    case CFG_STR:
    case CFG_OPTSTR: {
        size_t len = strlen(value);
        if (len == 0 && e->type == CFG_STR)
            return erd_fail(diag, ERD_ECONFIG, "%s: must not be empty", e->key);
        if (len >= e->size)
            return erd_fail(diag, ERD_ECONFIG, "%s: longer than %zu bytes", e->key, e->size - 1);
        memcpy(base, value, len + 1);
        return ERD_OK;
    }
    case CFG_SECRET: {
        /* Messages never quote the value: it may be a real token. */
        size_t len = strlen(value);
        if (strcmp(value, CFG_SECRET_PLACEHOLDER) == 0)
            return erd_fail(diag, ERD_ECONFIG,
                            "%s: \"%s\" is what erd config --dump prints for a set token; "
                            "write the token itself",
                            e->key, CFG_SECRET_PLACEHOLDER);
        if (len > 0 && (len < (size_t)e->min || len > (size_t)e->max || len >= e->size))
            return erd_fail(diag, ERD_ECONFIG, "%s: must be %lld to %lld characters (has %zu)",
                            e->key, e->min, e->max, len);
        if (!cfg__token_chars(value))
            return erd_fail(diag, ERD_ECONFIG,
                            "%s: may hold only letters, digits and -._~+/= (a bearer token)",
                            e->key);
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
/* Syntax only: the index checks each value's range when it applies them. */
static bool cfg__ivf_search_ok(const char *s)
{
    static const char *const keys[] = {"nprobe=", "gprobe=", "rescore="};
    while (*s) {
        size_t i = 0;
        while (i < 3 && strncmp(s, keys[i], strlen(keys[i])) != 0)
            i++;
        if (i == 3)
            return false;
        s += strlen(keys[i]);
        if (!isdigit((unsigned char)*s) || *s == '0')
            return false;
        while (isdigit((unsigned char)*s))
            s++;
        if (*s == ',' && s[1])
            s++;
        else if (*s)
            return false;
    }
    return true;
}

static int cfg__validate(const cfg_config *cfg, erd_diag *diag)
{
    if (cfg->default_k > cfg->max_k)
        return erd_fail(diag, ERD_ECONFIG, "default_k (%d) exceeds max_k (%d)", cfg->default_k,
                        cfg->max_k);
    if (!strchr(cfg->listen, ':'))
        return erd_fail(diag, ERD_ECONFIG, "listen: expected HOST:PORT, got \"%s\"", cfg->listen);
    static const char *const simd[] = {"auto", "avx512-vnni", "avx512-bf16", "avx512", "avx2", "base"};
    size_t i = 0;
    while (i < sizeof simd / sizeof *simd && strcmp(cfg->simd, simd[i]))
        i++;
    if (i == sizeof simd / sizeof *simd)
        return erd_fail(diag, ERD_ECONFIG,
                        "simd: auto, avx512-vnni, avx512-bf16, avx512, avx2 or base, not \"%s\"", cfg->simd);
    if (!cfg__ivf_search_ok(cfg->ivf_search))
        return erd_fail(diag, ERD_ECONFIG,
                        "ivf_search: empty or nprobe=N, gprobe=N, rescore=N (N a positive "
                        "integer), comma-separated, not \"%s\"", cfg->ivf_search);
    double t;
    if (cfg_no_match_threshold(cfg->no_match_threshold, NULL, &t) < 0)
        return erd_fail(diag, ERD_ECONFIG,
                        "no_match_threshold: auto, a number in [0, 1] or CATALOG=auto|NUMBER, "
                        "comma separated, not \"%s\"", cfg->no_match_threshold);
    return ERD_OK;
}

/* One value of no_match_threshold: 1 and *ret for a number, 0 for auto. */
static int cfg__threshold_value(const char *v, size_t len, double *ret)
{
    char buf[64], *end;
    if (len == 4 && !memcmp(v, "auto", 4))
        return 0;
    if (len == 0 || len >= sizeof buf)
        return ERD_ECONFIG;
    memcpy(buf, v, len);
    buf[len] = '\0';
    errno = 0;
    double t = strtod(buf, &end);
    if (errno || *end || !(t >= 0 && t <= 1))
        return ERD_ECONFIG;
    *ret = t;
    return 1;
}

int cfg_no_match_threshold(const char *spec, const char *catalog, double *ret)
{
    int global = 0, mine = -1;
    double global_t = 0, mine_t = 0;
    for (const char *p = spec; *p;) {
        size_t len = strcspn(p, ",");
        const char *eq = memchr(p, '=', len);
        if (eq) {
            size_t nlen = (size_t)(eq - p);
            double t = 0;
            int v = cfg__threshold_value(eq + 1, len - nlen - 1, &t);
            if (v < 0 || nlen == 0)
                return ERD_ECONFIG;
            if (catalog && strlen(catalog) == nlen && !memcmp(p, catalog, nlen)) {
                mine = v;
                mine_t = t;
            }
        } else if ((global = cfg__threshold_value(p, len, &global_t)) < 0) {
            return ERD_ECONFIG;
        }
        p += len;
        if (*p == ',' && !*++p)
            return ERD_ECONFIG; /* a trailing comma */
    }
    int v = mine >= 0 ? mine : global;
    if (v == 1)
        *ret = mine >= 0 ? mine_t : global_t;
    return v;
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
        fprintf(out, "# %s (default: %s%s)\n", e->doc, e->def[0] ? e->def : "empty",
                e->reload == LIVE ? "; SIGHUP reloads it" : "");
        switch (e->type) {
        case CFG_STR:
            fprintf(out, "%s %s\n\n", e->key, base);
            break;
        case CFG_OPTSTR:
            fprintf(out, base[0] ? "%s %s\n\n" : "%s \"%s\"\n\n", e->key, base);
            break;
        case CFG_SECRET:
            fprintf(out, "%s %s\n\n", e->key, base[0] ? CFG_SECRET_PLACEHOLDER : "\"\"");
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

static bool cfg__same(const cfg__entry *e, const cfg_config *a, const cfg_config *b)
{
    const char *pa = (const char *)a + e->offset, *pb = (const char *)b + e->offset;
    switch (e->type) {
    case CFG_STR:
    case CFG_OPTSTR:
    case CFG_SECRET:
        return strcmp(pa, pb) == 0;
    case CFG_INT:
        return *(const int *)pa == *(const int *)pb;
    case CFG_SIZE:
        return *(const size_t *)pa == *(const size_t *)pb;
    case CFG_BOOL:
        return *(const bool *)pa == *(const bool *)pb;
    }
    return false;
}

size_t cfg_diff(const cfg_config *a, const cfg_config *b, bool reloadable, char *out, size_t cap)
{
    size_t n = 0, len = 0;
    if (cap)
        out[0] = '\0';
    for (size_t i = 0; i < CFG__N; i++) {
        const cfg__entry *e = &cfg__table[i];
        if ((e->reload == LIVE) != reloadable || cfg__same(e, a, b))
            continue;
        if (cap && len < cap) {
            int w = snprintf(out + len, cap - len, "%s%s", n ? ", " : "", e->key);
            len = w < 0 ? len : len + (size_t)w;
        }
        n++;
    }
    return n;
}

void cfg_copy_reloadable(cfg_config *dst, const cfg_config *src)
{
    for (size_t i = 0; i < CFG__N; i++) {
        const cfg__entry *e = &cfg__table[i];
        if (e->reload == LIVE)
            memcpy((char *)dst + e->offset, (const char *)src + e->offset, e->size);
    }
}

const char *cfg_default(const char *key)
{
    const cfg__entry *e = cfg__find(key);
    return e ? e->def : NULL;
}

bool cfg_reloadable(const char *key)
{
    const cfg__entry *e = cfg__find(key);
    return e && e->reload == LIVE;
}

int cfg_validate(const cfg_config *cfg, erd_diag *diag)
{
    return cfg__validate(cfg, diag);
}

/* Reads the first line of a token file: Kubernetes and systemd credentials
 * end it with a newline that is not part of the token. */
static int cfg__read_token_file(const char *key, const char *path, char *out, size_t cap,
                                erd_diag *diag)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return erd_fail(diag, ERD_ECONFIG, "%s %s: cannot open: %s", key, path, strerror(errno));
    char line[512];
    bool got = fgets(line, sizeof line, f) != NULL;
    bool bad = ferror(f) != 0;
    fclose(f);
    if (bad)
        return erd_fail(diag, ERD_ECONFIG, "%s %s: read error", key, path);
    if (!got)
        line[0] = '\0';
    char *t = cfg__trim(line);
    if (!*t)
        return erd_fail(diag, ERD_ECONFIG, "%s %s: the file holds no token", key, path);
    if (strlen(t) >= cap)
        return erd_fail(diag, ERD_ECONFIG, "%s %s: token longer than %zu bytes", key, path, cap - 1);
    memcpy(out, t, strlen(t) + 1);
    return ERD_OK;
}

int cfg_load_secrets(cfg_config *cfg, erd_diag *diag)
{
    if (!cfg->admin_token_file[0])
        return ERD_OK;
    if (cfg->admin_token[0])
        return erd_fail(diag, ERD_ECONFIG,
                        "admin_token and admin_token_file are both set; keep one of them");
    cfg_config next = *cfg;
    char token[sizeof next.admin_token];
    int rc = cfg__read_token_file("admin_token_file", cfg->admin_token_file, token, sizeof token,
                                  diag);
    if (rc < 0)
        return rc;
    erd_diag inner = {0};
    rc = cfg__apply(&next, cfg__find("admin_token"), token, &inner);
    memset(token, 0, sizeof token);
    if (rc < 0)
        return erd_fail(diag, ERD_ECONFIG, "admin_token_file %s: %s", cfg->admin_token_file,
                        inner.msg);
    *cfg = next;
    return ERD_OK;
}

int cfg_load_settings(cfg_config *ret, const char *path, const char *const *overrides,
                      erd_diag *diag)
{
    cfg_config next;
    int rc;
    cfg_defaults(&next);
    if (path && *path) {
        rc = cfg_load_file(&next, path, diag);
        if (rc < 0)
            return rc;
    }
    rc = cfg_load_env(&next, diag);
    if (rc < 0)
        return rc;
    for (size_t i = 0; overrides && overrides[i] && overrides[i + 1]; i += 2) {
        erd_diag inner = {0};
        rc = cfg_set(&next, overrides[i], overrides[i + 1], &inner);
        if (rc < 0)
            return erd_fail(diag, ERD_EINVAL, "--%s: %s", overrides[i], inner.msg);
    }
    *ret = next;
    return ERD_OK;
}

int cfg_load(cfg_config *ret, const char *path, const char *const *overrides, erd_diag *diag)
{
    cfg_config next;
    int rc = cfg_load_settings(&next, path, overrides, diag);
    if (rc == ERD_OK)
        rc = cfg_load_secrets(&next, diag);
    if (rc == ERD_OK)
        *ret = next;
    return rc;
}
