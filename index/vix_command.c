/* Command-likeness of a text (vix_command.h): a table of word n-gram
 * log-odds, fitted by document frequency on two sides, looked up in an
 * open-addressing hash keyed by the n-gram's bytes. */
#include "index/vix_command.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index/vix_jsonfile.h"
#include "proto/erd_hash.h"

#define VIX__COMMAND_MAGIC "erd-command"

typedef struct vix__ngram {
    char *key; /* NULL: an empty slot */
    uint32_t len;
    double count[2];    /* texts holding it: commands, names (fitting only) */
    uint64_t last_text; /* 1 + the last text that counted it (fitting only) */
    double log_odds;
} vix__ngram;

struct vix_command {
    vix__ngram *slots;
    size_t cap, n; /* cap a power of two, n held */
    uint64_t checksum;
};

void vix_command_fit_opts_init(vix_command_fit_opts *o)
{
    *o = (vix_command_fit_opts){.alpha = 3, .min_count = 3, .clip = 4, .keep = 0.25};
}

static uint64_t vix__ngram_hash(const char *key, size_t len)
{
    return erd_fnv1a64(ERD_FNV1A64_OFFSET, key, len);
}

/* The slot holding key, or the empty one where it goes. */
static vix__ngram *vix__ngram_slot(const vix_command *cmd, const char *key, size_t len)
{
    size_t mask = cmd->cap - 1, i = (size_t)vix__ngram_hash(key, len) & mask;
    while (cmd->slots[i].key &&
           (cmd->slots[i].len != len || memcmp(cmd->slots[i].key, key, len) != 0))
        i = (i + 1) & mask;
    return &cmd->slots[i];
}

static int vix__ngram_grow(vix_command *cmd)
{
    size_t cap = cmd->cap ? cmd->cap * 2 : 1024;
    vix__ngram *old = cmd->slots, *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return ERD_ENOMEM;
    size_t old_cap = cmd->cap;
    cmd->slots = slots;
    cmd->cap = cap;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].key)
            *vix__ngram_slot(cmd, old[i].key, old[i].len) = old[i];
    free(old);
    return ERD_OK;
}

/* The entry for key, added (zeroed) when new; NULL when out of memory. */
static vix__ngram *vix__ngram_get(vix_command *cmd, const char *key, size_t len)
{
    if ((cmd->n + 1) * 2 > cmd->cap && vix__ngram_grow(cmd) < 0)
        return NULL;
    vix__ngram *g = vix__ngram_slot(cmd, key, len);
    if (g->key)
        return g;
    if (!(g->key = malloc(len + 1)))
        return NULL;
    memcpy(g->key, key, len);
    g->key[len] = '\0';
    g->len = (uint32_t)len;
    cmd->n++;
    return g;
}

void vix_command_destroy(vix_command *cmd)
{
    if (!cmd)
        return;
    for (size_t i = 0; i < cmd->cap; i++)
        free(cmd->slots[i].key);
    free(cmd->slots);
    free(cmd);
}

uint64_t vix_command_checksum(const vix_command *cmd)
{
    return cmd->checksum;
}

size_t vix_command_size(const vix_command *cmd)
{
    return cmd->n;
}

/* Calls fn on each word and each pair of adjacent words of a normalised
 * text (single spaces between words), as byte ranges of it. */
typedef int (*vix__ngram_fn)(void *ctx, const char *s, size_t len);

static int vix__each_ngram(const char *text, size_t len, vix__ngram_fn fn, void *ctx)
{
    size_t prev = 0, start = 0;
    int have_prev = 0, rc;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && text[i] != ' ')
            continue;
        if (i > start) {
            if ((rc = fn(ctx, text + start, i - start)) < 0)
                return rc;
            if (have_prev && (rc = fn(ctx, text + prev, i - prev)) < 0)
                return rc;
            prev = start;
            have_prev = 1;
        }
        start = i + 1;
    }
    return ERD_OK;
}

/* Fitting: each text counts an n-gram once however often it says it. */
typedef struct vix__count_ctx {
    vix_command *cmd;
    int side;
    uint64_t text_no; /* 1 + index of the text, marks n-grams it counted */
} vix__count_ctx;

static int vix__count_one(void *ctx, const char *s, size_t len)
{
    vix__count_ctx *c = ctx;
    vix__ngram *g = vix__ngram_get(c->cmd, s, len);
    if (!g)
        return ERD_ENOMEM;
    if (g->last_text != c->text_no) {
        g->count[c->side] += 1;
        g->last_text = c->text_no;
    }
    return ERD_OK;
}

static int vix__count_side(vix_command *cmd, const char *const *texts, size_t n, int side,
                           uint64_t *text_no)
{
    for (size_t i = 0; i < n; i++) {
        vix__count_ctx c = {cmd, side, ++*text_no};
        int rc = vix__each_ngram(texts[i], strlen(texts[i]), vix__count_one, &c);
        if (rc < 0)
            return rc;
    }
    return ERD_OK;
}

/* Turns counts into log-odds and drops what carries no evidence. */
static int vix__finish_fit(vix_command *cmd, double n_cmd, double n_name,
                           const vix_command_fit_opts *o)
{
    vix_command *kept = calloc(1, sizeof *kept);
    if (!kept)
        return ERD_ENOMEM;
    /* Pseudo-counts in proportion to each side's size: an n-gram seen a
     * few times among a hundred thousand names and never among a few
     * thousand commands is no evidence either way (equal pseudo-counts
     * would call it command-like, the smaller side's rate being inflated
     * most). */
    double a0 = o->alpha, a1 = o->alpha * n_name / n_cmd;
    for (size_t i = 0; i < cmd->cap; i++) {
        vix__ngram *g = &cmd->slots[i];
        if (!g->key || g->count[0] + g->count[1] < (double)o->min_count)
            continue;
        double lo = log((g->count[0] + a0) / (n_cmd + 2 * a0)) -
                    log((g->count[1] + a1) / (n_name + 2 * a1));
        lo = fmax(-o->clip, fmin(o->clip, lo));
        if (fabs(lo) < o->keep)
            continue;
        vix__ngram *k = vix__ngram_get(kept, g->key, g->len);
        if (!k) {
            vix_command_destroy(kept);
            return ERD_ENOMEM;
        }
        k->log_odds = lo;
    }
    for (size_t i = 0; i < cmd->cap; i++)
        free(cmd->slots[i].key);
    free(cmd->slots);
    *cmd = *kept;
    free(kept);
    return ERD_OK;
}

int vix_command_fit(const char *const *commands, size_t n_commands, const char *const *names,
                    size_t n_names, const vix_command_fit_opts *opts, vix_command **ret,
                    erd_diag *diag)
{
    vix_command_fit_opts o;
    if (opts)
        o = *opts;
    else
        vix_command_fit_opts_init(&o);
    if (!n_commands || !n_names)
        return erd_fail(diag, ERD_EINVAL, "command fit needs texts on both sides (%zu, %zu)",
                        n_commands, n_names);
    if (!(o.alpha > 0) || !(o.clip > 0) || !(o.keep >= 0))
        return erd_fail(diag, ERD_EINVAL, "command fit: alpha and clip must be positive");
    vix_command *cmd = calloc(1, sizeof *cmd);
    uint64_t text_no = 0;
    int rc = cmd ? ERD_OK : ERD_ENOMEM;
    if (rc == ERD_OK)
        rc = vix__count_side(cmd, commands, n_commands, 0, &text_no);
    if (rc == ERD_OK)
        rc = vix__count_side(cmd, names, n_names, 1, &text_no);
    if (rc == ERD_OK)
        rc = vix__finish_fit(cmd, (double)n_commands, (double)n_names, &o);
    if (rc < 0) {
        vix_command_destroy(cmd);
        return erd_fail(diag, rc, "out of memory fitting the command table");
    }
    *ret = cmd;
    return ERD_OK;
}

double vix_command_ngram(const vix_command *cmd, const char *ngram, size_t len)
{
    if (!cmd->cap)
        return 0;
    const vix__ngram *g = vix__ngram_slot(cmd, ngram, len);
    return g->key ? g->log_odds : 0;
}

typedef struct vix__score_ctx {
    const vix_command *cmd;
    double sum;
    size_t n;
} vix__score_ctx;

static int vix__score_one(void *ctx, const char *s, size_t len)
{
    vix__score_ctx *c = ctx;
    c->sum += vix_command_ngram(c->cmd, s, len);
    c->n++;
    return ERD_OK;
}

double vix_command_score(const vix_command *cmd, const char *text, size_t len)
{
    vix__score_ctx c = {cmd, 0, 0};
    vix__each_ngram(text, len, vix__score_one, &c);
    if (!c.n)
        return 0;
    double s = c.sum / sqrt((double)c.n);
    return fmax(-VIX_COMMAND_SCORE_MAX, fmin(VIX_COMMAND_SCORE_MAX, s));
}

/* The n-grams in key order, so the same table always writes the same file. */
static int vix__key_cmp(const void *a, const void *b)
{
    const vix__ngram *x = *(const vix__ngram *const *)a, *y = *(const vix__ngram *const *)b;
    return strcmp(x->key, y->key);
}

static json_t *vix__command_json(const vix_command *cmd, const char *provenance)
{
    json_t *o = json_object(), *table = json_object();
    const vix__ngram **order = malloc((cmd->n + 1) * sizeof *order);
    int bad = !o || !table || !order;
    size_t n = 0;
    for (size_t i = 0; !bad && i < cmd->cap; i++)
        if (cmd->slots[i].key)
            order[n++] = &cmd->slots[i];
    if (!bad)
        qsort(order, n, sizeof *order, vix__key_cmp);
    for (size_t i = 0; !bad && i < n; i++)
        bad |= json_object_set_new(table, order[i]->key, json_real(order[i]->log_odds));
    free(order);
    bad |= json_object_set_new(o, "format", json_string(VIX__COMMAND_MAGIC));
    bad |= json_object_set_new(o, "version", json_integer(VIX_COMMAND_VERSION));
    bad |= json_object_set_new(o, "provenance", json_string(provenance ? provenance : ""));
    bad |= json_object_set(o, "ngrams", table);
    json_decref(table);
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

int vix_command_save(vix_command *cmd, const char *path, const char *provenance, erd_diag *diag)
{
    json_t *o = vix__command_json(cmd, provenance);
    if (!o)
        return erd_fail(diag, ERD_ENOMEM, "out of memory");
    int rc = vix__json_save_summed(o, path, &cmd->checksum, diag);
    json_decref(o);
    return rc;
}

static int vix__command_parse(json_t *o, const char *path, vix_command *cmd, erd_diag *diag)
{
    const char *fmt = json_string_value(json_object_get(o, "format"));
    json_t *table = json_object_get(o, "ngrams");
    if (!fmt || strcmp(fmt, VIX__COMMAND_MAGIC) != 0)
        return erd_fail(diag, ERD_ECORRUPT, "%s: not a command table", path);
    if (json_integer_value(json_object_get(o, "version")) != VIX_COMMAND_VERSION)
        return erd_fail(diag, ERD_EMISMATCH, "%s: command table version is not %d", path,
                        VIX_COMMAND_VERSION);
    if (!json_is_object(table))
        return erd_fail(diag, ERD_ECORRUPT, "%s: no ngrams", path);
    const char *key;
    json_t *v;
    json_object_foreach(table, key, v)
    {
        double lo = json_number_value(v);
        size_t len = strlen(key);
        if (!json_is_number(v) || !isfinite(lo) || !len || key[0] == ' ' || key[len - 1] == ' ')
            return erd_fail(diag, ERD_ECORRUPT, "%s: n-gram \"%.60s\" malformed", path, key);
        vix__ngram *g = vix__ngram_get(cmd, key, len);
        if (!g)
            return erd_fail(diag, ERD_ENOMEM, "out of memory");
        g->log_odds = lo;
    }
    return ERD_OK;
}

int vix_command_load(const char *path, vix_command **ret, erd_diag *diag)
{
    json_t *o;
    uint64_t sum;
    int rc = vix__json_load_summed(path, &o, &sum, diag);
    if (rc < 0)
        return rc;
    vix_command *cmd = calloc(1, sizeof *cmd);
    if (!cmd)
        rc = erd_fail(diag, ERD_ENOMEM, "out of memory");
    else if ((rc = vix__command_parse(o, path, cmd, diag)) == ERD_OK) {
        cmd->checksum = sum;
        *ret = cmd;
        cmd = NULL;
    }
    vix_command_destroy(cmd);
    json_decref(o);
    return rc;
}
