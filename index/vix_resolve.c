#include "index/vix_resolve.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "index/vix_calib.h"
#include "index/vix_index.h"
#include "index/vix_phrase.h"
#include "index/vix_rerank.h"
#include "index/vix_store.h"
#include "phonetics/pho_encoder.h"
#include "phonetics/pho_g2p.h"

/* At most this many hypotheses of one request are used; the server's own
 * limit is lower, this only bounds the stack. */
#define VIX_HYPS_MAX 64
#define VIX_CANDIDATES_MAX 4096

typedef struct vix__entity {
    int64_t rowid;
    const char *ext_id; /* into the catalog's string arena */
    const char *name;
    size_t phrase_first, n_phrases; /* into the catalog's rerank phrases */
} vix__entity;

typedef struct vix__catalog {
    char *name;
    pho_encoder *enc;
    vix_index *index;
    vix__entity *entities; /* sorted by rowid */
    size_t n_entities;
    char *strings;
    size_t strings_len, strings_cap;
    /* Rerank only: every entity's indexed phrases, packed phones. */
    vix_rerank_phrase *phrases;
    size_t n_phrases, cap_phrases;
    uint8_t *phones;
    size_t phones_len, phones_cap;
    int calibrated; /* the resolver's calibration was fitted on this encoder */
} vix__catalog;

struct vix_resolver {
    pho_g2p *g2p;
    vix__catalog *catalogs;
    size_t n_catalogs;
    size_t candidates;
    vix_rerank *rerank; /* NULL: first stage only */
    char rerank_id[VIX_CALIB_ID_MAX];
    vix_calib *calib;   /* NULL: uncalibrated scores */
    int calib_rerank_ok; /* calib was fitted under this rerank configuration */
};

static uint64_t vix__ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void vix__catalog_free(vix__catalog *c)
{
    if (!c)
        return;
    free(c->name);
    pho_encoder_destroy(c->enc);
    vix_index_destroy(c->index);
    free(c->entities);
    free(c->strings);
    free(c->phrases);
    free(c->phones);
}

/* Entity strings are first gathered as offsets (the arena moves while it
 * grows) and turned into pointers once loading is done. */
static int vix__arena_add(vix__catalog *c, const char *s, size_t *ret_off)
{
    size_t len = strlen(s) + 1;
    if (c->strings_len + len > c->strings_cap) {
        size_t ncap = c->strings_cap ? c->strings_cap : 65536;
        while (ncap < c->strings_len + len)
            ncap *= 2;
        char *p = realloc(c->strings, ncap);
        if (!p)
            return ERD_ENOMEM;
        c->strings = p;
        c->strings_cap = ncap;
    }
    memcpy(c->strings + c->strings_len, s, len);
    *ret_off = c->strings_len;
    c->strings_len += len;
    return ERD_OK;
}

typedef struct vix__load {
    vix__catalog *cat;
    size_t cap;
    /* Rerank phrases are gathered only when rerank is on. */
    pho_g2p *g2p;
    vix_store *store;
    vix_phrase *scratch;
    size_t entity_first_phrase;
    erd_diag *diag;
    int rc;
} vix__load;

/* The same variants the build indexed (vix_build.c), deduplicated by
 * normalised text.  The build filled the phoneme cache, so this is a cache
 * read per phrase; a miss (cache trimmed since) falls back to espeak-ng. */
static int vix__load_variant(void *user, const char *variant, size_t len, int derived)
{
    vix__load *ld = user;
    vix__catalog *c = ld->cat;
    int rc = vix_phrase_prepare(ld->g2p, ld->store, variant, len, ld->scratch, NULL);
    if (rc < 0 && rc != ERD_EEMPTY)
        rc = vix_phrase_prepare(ld->g2p, NULL, variant, len, ld->scratch, ld->diag);
    if (rc == ERD_EEMPTY)
        return 0;
    if (rc < 0) {
        ld->rc = rc;
        return 1;
    }
    uint8_t packed[VIX_RR_TOKENS_MAX];
    size_t n = vix_rerank_pack(ld->scratch->tokens, ld->scratch->n_tokens, packed, sizeof packed);
    for (size_t i = ld->entity_first_phrase; i < c->n_phrases; i++) {
        const vix_rerank_phrase *p = &c->phrases[i];
        if (p->n == n && memcmp(c->phones + (uintptr_t)p->tokens, packed, n) == 0) {
            c->phrases[i].derived &= (uint8_t)derived;
            return 0;
        }
    }
    if (c->n_phrases == c->cap_phrases) {
        size_t ncap = c->cap_phrases ? c->cap_phrases * 2 : 4096;
        vix_rerank_phrase *p = realloc(c->phrases, ncap * sizeof *p);
        if (!p)
            goto oom;
        c->phrases = p;
        c->cap_phrases = ncap;
    }
    if (c->phones_len + n > c->phones_cap) {
        size_t ncap = c->phones_cap ? c->phones_cap : 65536;
        while (ncap < c->phones_len + n)
            ncap *= 2;
        uint8_t *p = realloc(c->phones, ncap);
        if (!p)
            goto oom;
        c->phones = p;
        c->phones_cap = ncap;
    }
    memcpy(c->phones + c->phones_len, packed, n);
    /* An offset until loading is done: the arena moves while it grows. */
    c->phrases[c->n_phrases++] = (vix_rerank_phrase){
        .tokens = (const uint8_t *)(uintptr_t)c->phones_len, .n = (uint16_t)n,
        .derived = (uint8_t)(derived ? 1 : 0)};
    c->phones_len += n;
    return 0;
oom:
    ld->rc = erd_fail(ld->diag, ERD_ENOMEM, "out of memory loading phrases");
    return 1;
}

static int vix__load_phrases(vix__load *ld, const vix_entity *e)
{
    ld->entity_first_phrase = ld->cat->n_phrases;
    if (vix_phrase_variants(e->name, vix__load_variant, ld))
        return ld->rc;
    json_t *aliases = json_loads(e->aliases_json, 0, NULL);
    if (json_is_array(aliases)) {
        size_t i;
        json_t *a;
        json_array_foreach(aliases, i, a)
        {
            if (json_is_string(a) &&
                vix_phrase_variants(json_string_value(a), vix__load_variant, ld)) {
                json_decref(aliases);
                return ld->rc;
            }
        }
    }
    json_decref(aliases);
    return ERD_OK;
}

static int vix__load_entity(void *user, const vix_entity *e)
{
    vix__load *ld = user;
    vix__catalog *c = ld->cat;
    if (c->n_entities == ld->cap) {
        size_t ncap = ld->cap ? ld->cap * 2 : 1024;
        vix__entity *p = realloc(c->entities, ncap * sizeof *p);
        if (!p)
            return ERD_ENOMEM;
        c->entities = p;
        ld->cap = ncap;
    }
    size_t id_off, name_off;
    if (vix__arena_add(c, e->ext_id, &id_off) < 0 || vix__arena_add(c, e->name, &name_off) < 0)
        return ERD_ENOMEM;
    size_t first = c->n_phrases;
    if (ld->scratch) {
        int rc = vix__load_phrases(ld, e);
        if (rc < 0) {
            ld->rc = rc;
            return 1;
        }
    }
    c->entities[c->n_entities++] = (vix__entity){
        .rowid = e->rowid, .ext_id = (const char *)(uintptr_t)id_off,
        .name = (const char *)(uintptr_t)name_off, .phrase_first = first,
        .n_phrases = c->n_phrases - first};
    return 0;
}

static int vix__cmp_rowid(const void *a, const void *b)
{
    int64_t x = ((const vix__entity *)a)->rowid, y = ((const vix__entity *)b)->rowid;
    return (x > y) - (x < y);
}

/* An index file named in metadata is relative to the database's folder. */
static int vix__index_path(const char *db_path, const char *file, char *out, size_t outcap)
{
    const char *slash = strrchr(db_path, '/');
    int n;
    if (file[0] == '/' || !slash)
        n = snprintf(out, outcap, "%s", file);
    else
        n = snprintf(out, outcap, "%.*s/%s", (int)(slash - db_path), db_path, file);
    return n < 0 || (size_t)n >= outcap ? ERD_ETOOLONG : ERD_OK;
}

typedef struct vix__open_ctx {
    const char *db_path;
    vix_resolver *r;
    vix_store *store;
    erd_diag *diag;
    int rc;
} vix__open_ctx;

static int vix__load_catalog(void *user, const vix_catalog_info *info)
{
    vix__open_ctx *ctx = user;
    vix_resolver *r = ctx->r;
    vix_index_meta meta;
    vix__catalog cat = {0};
    int rc = vix_store_meta_get(ctx->store, info->id, &meta, ctx->diag);
    if (rc == ERD_ENOINDEX)
        return 0; /* imported but never built: not served */
    if (rc < 0) {
        ctx->rc = rc;
        return 1;
    }

    cat.name = strdup(info->name);
    if (!cat.name) {
        rc = erd_fail(ctx->diag, ERD_ENOMEM, "out of memory");
        goto out;
    }
    rc = pho_encoder_create(meta.encoder_id, &cat.enc, ctx->diag);
    if (rc < 0)
        goto out;
    rc = pho_encoder_state_load(cat.enc, meta.encoder_state, meta.encoder_state_len, ctx->diag);
    if (rc < 0)
        goto out;
    char path[2048];
    rc = vix__index_path(ctx->db_path, meta.path, path, sizeof path);
    if (rc < 0) {
        rc = erd_fail(ctx->diag, rc, "index path of \"%s\" too long", info->name);
        goto out;
    }
    rc = vix_index_read(path, &cat.index, ctx->diag);
    if (rc < 0)
        goto out;
    if (vix_index_dim(cat.index) != pho_encoder_dim(cat.enc) ||
        vix_index_count(cat.index) != (size_t)meta.vector_count) {
        rc = erd_fail(ctx->diag, ERD_EMISMATCH,
                      "catalog \"%s\": index %s holds %zu vectors of dimension %zu, metadata "
                      "says %lld of %zu: rebuild it",
                      info->name, meta.path, vix_index_count(cat.index), vix_index_dim(cat.index),
                      (long long)meta.vector_count, pho_encoder_dim(cat.enc));
        goto out;
    }
    vix__load ld = {.cat = &cat, .g2p = r->g2p, .store = ctx->store, .diag = ctx->diag};
    if (r->rerank) {
        ld.scratch = malloc(sizeof *ld.scratch);
        if (!ld.scratch) {
            rc = erd_fail(ctx->diag, ERD_ENOMEM, "out of memory");
            goto out;
        }
    }
    cat.calibrated = r->calib && r->calib_rerank_ok &&
                     strcmp(pho_encoder_id(cat.enc), r->calib->encoder_id) == 0;
    rc = vix_store_entity_foreach(ctx->store, info->id, vix__load_entity, &ld, ctx->diag);
    free(ld.scratch);
    if (rc != 0) {
        rc = ld.rc < 0 ? ld.rc
             : rc > 0  ? erd_fail(ctx->diag, ERD_ENOMEM, "out of memory loading entities")
                       : rc;
        goto out;
    }
    for (size_t i = 0; i < cat.n_entities; i++) {
        cat.entities[i].ext_id = cat.strings + (uintptr_t)cat.entities[i].ext_id;
        cat.entities[i].name = cat.strings + (uintptr_t)cat.entities[i].name;
    }
    for (size_t i = 0; i < cat.n_phrases; i++)
        cat.phrases[i].tokens = cat.phones + (uintptr_t)cat.phrases[i].tokens;
    qsort(cat.entities, cat.n_entities, sizeof *cat.entities, vix__cmp_rowid);

    vix__catalog *cats = realloc(r->catalogs, (r->n_catalogs + 1) * sizeof *cats);
    if (!cats) {
        rc = erd_fail(ctx->diag, ERD_ENOMEM, "out of memory");
        goto out;
    }
    r->catalogs = cats;
    r->catalogs[r->n_catalogs++] = cat; /* ownership moves to the resolver */
    memset(&cat, 0, sizeof cat);
out:
    vix__catalog_free(&cat);
    vix_index_meta_clear(&meta);
    if (rc < 0) {
        ctx->rc = rc;
        return 1;
    }
    return 0;
}

int vix_resolver_open(const vix_resolver_opts *opts, vix_resolver **ret, erd_diag *diag)
{
    vix_store *store = NULL;
    vix_resolver *r = calloc(1, sizeof *r);
    int rc;
    if (!r)
        return erd_fail(diag, ERD_ENOMEM, "out of memory");
    r->candidates = opts->candidates ? opts->candidates : 64;
    if (r->candidates > VIX_CANDIDATES_MAX)
        r->candidates = VIX_CANDIDATES_MAX;

    rc = pho_g2p_create(opts->g2p_voice ? opts->g2p_voice : "en-us", opts->g2p_cache_entries,
                        &r->g2p, diag);
    if (rc < 0)
        goto out;
    {
        char path[1024];
        vix_rerank_opts ro;
        int enabled;
        pho_channel *ch = NULL;
        rc = vix_rerank_spec_parse(opts->rerank, path, sizeof path, &ro, &enabled, diag);
        snprintf(r->rerank_id, sizeof r->rerank_id, "off");
        if (rc == ERD_OK && enabled) {
            rc = pho_channel_load(path, &ch, diag);
            if (rc == ERD_OK)
                rc = vix_rerank_create(ch, &ro, &r->rerank, diag);
            /* The channel's content, not its path, decides the scores. */
            if (rc == ERD_OK)
                snprintf(r->rerank_id, sizeof r->rerank_id,
                         "channel=fnv1a64:%016llx,weight=%.6g,candidates=%zu,mode=%s,skip=%.6g,"
                         "temperature=%.6g",
                         (unsigned long long)pho_channel_checksum(ch), ro.weight, ro.candidates,
                         ro.mode == VIX_RR_LOCAL ? "local" : "global", ro.skip, ro.temperature);
            pho_channel_destroy(ch);
        }
        if (rc < 0)
            goto out;
    }
    if (opts->calibration && strcmp(opts->calibration, "off") != 0) {
        r->calib = malloc(sizeof *r->calib);
        if (!r->calib) {
            rc = erd_fail(diag, ERD_ENOMEM, "out of memory");
            goto out;
        }
        rc = vix_calib_load(opts->calibration, r->calib, diag);
        if (rc < 0)
            goto out;
        r->calib_rerank_ok = strcmp(r->calib->rerank_id, r->rerank_id) == 0;
    }
    rc = vix_store_open(opts->db_path, VIX_STORE_READONLY, &store, diag);
    if (rc < 0)
        goto out;
    vix__open_ctx ctx = {.db_path = opts->db_path, .r = r, .store = store, .diag = diag};
    rc = vix_store_catalog_foreach(store, vix__load_catalog, &ctx, diag);
    if (rc > 0)
        rc = ctx.rc;
    if (rc < 0)
        goto out;
    *ret = r;
    r = NULL;
out:
    vix_store_close(store);
    vix_resolver_close(r);
    return rc;
}

void vix_resolver_close(vix_resolver *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_catalogs; i++)
        vix__catalog_free(&r->catalogs[i]);
    free(r->catalogs);
    pho_g2p_destroy(r->g2p);
    vix_rerank_destroy(r->rerank);
    free(r->calib);
    free(r);
}

int vix_resolver_calibrated(const vix_resolver *r, size_t i, erd_diag *diag)
{
    if (i >= r->n_catalogs)
        return erd_fail(diag, ERD_ENOCATALOG, "no catalog %zu", i);
    if (!r->calib)
        return erd_fail(diag, ERD_ENOTFOUND, "calibration off: scores are uncalibrated");
    if (!r->calib_rerank_ok)
        return erd_fail(diag, ERD_EMISMATCH,
                        "calibration fitted with rerank %.90s; running %.90s: uncalibrated scores",
                        r->calib->rerank_id, r->rerank_id);
    if (!r->catalogs[i].calibrated)
        return erd_fail(diag, ERD_EMISMATCH,
                        "catalog \"%.40s\" built with encoder %.70s, calibration fitted on %.70s: "
                        "uncalibrated scores",
                        r->catalogs[i].name, pho_encoder_id(r->catalogs[i].enc),
                        r->calib->encoder_id);
    return ERD_OK;
}

const char *vix_resolver_catalog_encoder(const vix_resolver *r, size_t i)
{
    return i < r->n_catalogs ? pho_encoder_id(r->catalogs[i].enc) : NULL;
}

void vix_resolver_rerank_id(const vix_resolver *r, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s", r->rerank_id);
}

size_t vix_resolver_catalog_count(const vix_resolver *r)
{
    return r->n_catalogs;
}

const char *vix_resolver_catalog_name(const vix_resolver *r, size_t i)
{
    return i < r->n_catalogs ? r->catalogs[i].name : NULL;
}

void vix_resolver_g2p_stats(vix_resolver *r, uint64_t *ret_lookups, uint64_t *ret_hits)
{
    pho_g2p_stats st = {0};
    pho_g2p_get_stats(r->g2p, &st);
    *ret_lookups = st.lookups;
    *ret_hits = st.hits;
}

static const vix__entity *vix__entity_find(const vix__catalog *c, int64_t rowid)
{
    size_t lo = 0, hi = c->n_entities;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->entities[mid].rowid < rowid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < c->n_entities && c->entities[lo].rowid == rowid ? &c->entities[lo] : NULL;
}

/* Evidence weight of hypothesis `rank` (0 = best).  Rank decays
 * harmonically; the recogniser's score, when given, discounts hypotheses far
 * below the best one.  Scores are log-likelihoods in the recogniser's own
 * units, so only a gentle slope is safe across recognisers. */
static double vix__hyp_weight(const vix_hypothesis *hyps, size_t n, size_t rank)
{
    double w = 1.0 / (double)(rank + 1);
    double best = -INFINITY;
    for (size_t i = 0; i < n; i++)
        if (hyps[i].has_score && hyps[i].score > best)
            best = hyps[i].score;
    if (hyps[rank].has_score && isfinite(best) && isfinite(hyps[rank].score))
        w *= fmax(0.25, exp(1e-5 * (hyps[rank].score - best)));
    return w;
}

/* A result with its first-stage score, which calibration looks at. */
typedef struct vix__ranked {
    vix_result res;
    double first;
} vix__ranked;

static int vix__cmp_score(const void *a, const void *b)
{
    const vix_result *x = &((const vix__ranked *)a)->res, *y = &((const vix__ranked *)b)->res;
    if (x->score != y->score)
        return x->score < y->score ? 1 : -1;
    return (x->rowid > y->rowid) - (x->rowid < y->rowid);
}

/* Weighted share of hypotheses whose own best-aligned result, among the
 * first VIX_CALIB_AGREE_RANKS, is each of them: a list that agrees on one
 * entity is more often right than one split between several, which the
 * blended score (a weighted mean) cannot tell apart. */
static void vix__agreement(const vix_resolver *r, const vix__catalog *cat,
                           const vix_rerank_hyp *hyps, size_t n_hyps, const vix__ranked *found,
                           size_t n_found, double *ret_agree)
{
    size_t m = n_found < VIX_CALIB_AGREE_RANKS ? n_found : VIX_CALIB_AGREE_RANKS;
    double wsum = 0;
    for (size_t i = 0; i < n_found; i++)
        ret_agree[i] = 0;
    for (size_t h = 0; h < n_hyps; h++) {
        double best = -1;
        size_t best_c = 0;
        for (size_t c = 0; c < m; c++) {
            const vix__entity *e = vix__entity_find(cat, found[c].res.rowid);
            for (size_t p = 0; e && p < e->n_phrases; p++) {
                const vix_rerank_phrase *ph = &cat->phrases[e->phrase_first + p];
                double s = vix_rerank_pair(r->rerank, hyps[h].tokens, hyps[h].n, ph->tokens,
                                           ph->n);
                if (ph->derived)
                    s *= VIX_DERIVED_SCALE;
                if (s > best) {
                    best = s;
                    best_c = c;
                }
            }
        }
        if (best >= 0)
            ret_agree[best_c] += hyps[h].weight;
        wsum += hyps[h].weight;
    }
    for (size_t i = 0; wsum > 0 && i < m; i++)
        ret_agree[i] /= wsum;
}

int vix_resolve(vix_resolver *r, const char *catalog, const vix_hypothesis *hyps, size_t n,
                size_t k, vix_result *ret_results, size_t *ret_n, vix_timing *timing,
                erd_diag *diag)
{
    return vix_resolve_features(r, catalog, hyps, n, k, ret_results, ret_n, timing, NULL, diag);
}

int vix_resolve_features(vix_resolver *r, const char *catalog, const vix_hypothesis *hyps,
                         size_t n, size_t k, vix_result *ret_results, size_t *ret_n,
                         vix_timing *timing, double *ret_features, erd_diag *diag)
{
    const vix__catalog *cat = NULL;
    vix_timing tm = {0};
    float *q = NULL, *v = NULL, *scores = NULL;
    int64_t *ids = NULL;
    vix_phrase *ph = NULL;
    uint8_t *hyp_phones = NULL;
    vix_rerank_hyp *rr_hyps = NULL;
    vix_rerank_cand *rr_cands = NULL;
    vix__ranked *found = NULL;
    double *cal = NULL;
    size_t used = 0, n_phones = 0;
    double wsum = 0;
    int rc = ERD_OK;

    for (size_t i = 0; i < r->n_catalogs; i++)
        if (strcmp(r->catalogs[i].name, catalog) == 0)
            cat = &r->catalogs[i];
    if (!cat)
        return erd_fail(diag, ERD_ENOCATALOG, "unknown catalog \"%s\"", catalog);
    if (n == 0 || k == 0)
        return erd_fail(diag, ERD_EINVAL, "need at least one hypothesis and k >= 1");
    if (n > VIX_HYPS_MAX)
        n = VIX_HYPS_MAX;

    size_t dim = pho_encoder_dim(cat->enc);
    /* With rerank, the first stage gathers more entities than asked for so
     * the second can promote one from below the top k. */
    size_t want = k;
    if (r->rerank && vix_rerank_get_opts(r->rerank)->candidates > want)
        want = vix_rerank_get_opts(r->rerank)->candidates;
    size_t cand = r->candidates > 4 * k ? r->candidates : 4 * k;
    if (r->rerank && cand < 2 * want)
        cand = 2 * want;
    if (cand > VIX_CANDIDATES_MAX)
        cand = VIX_CANDIDATES_MAX;
    q = calloc(dim, sizeof *q);
    v = malloc(dim * sizeof *v);
    scores = malloc(cand * sizeof *scores);
    ids = malloc(cand * sizeof *ids);
    ph = malloc(sizeof *ph);
    found = malloc(want * sizeof *found);
    int calibrate = ret_features || cat->calibrated;
    if (calibrate)
        cal = malloc(want * (3 + VIX_CALIB_NFEAT + 1) * sizeof *cal);
    if (r->rerank) {
        hyp_phones = malloc(n * VIX_RR_TOKENS_MAX);
        rr_hyps = malloc(n * sizeof *rr_hyps);
        rr_cands = malloc(want * sizeof *rr_cands);
    }
    if (!q || !v || !scores || !ids || !ph || !found || (calibrate && !cal) ||
        (r->rerank && (!hyp_phones || !rr_hyps || !rr_cands))) {
        rc = erd_fail(diag, ERD_ENOMEM, "out of memory");
        goto out;
    }

    /* The weighted sum of the hypotheses' unit vectors: its inner product
     * with an entity vector is the weighted sum of their cosines, so one
     * search scores every entity against the whole n-best list. */
    for (size_t i = 0; i < n; i++) {
        uint64_t t0 = vix__ns();
        rc = vix_phrase_prepare(r->g2p, NULL, hyps[i].text, hyps[i].len, ph, diag);
        tm.g2p_ns += vix__ns() - t0;
        if (rc == ERD_EEMPTY)
            continue;
        if (rc < 0)
            goto out;
        t0 = vix__ns();
        pho_phrase phrase = {.text = ph->text, .tokens = ph->tokens, .n_tokens = ph->n_tokens};
        rc = pho_encoder_encode(cat->enc, &phrase, v);
        tm.encode_ns += vix__ns() - t0;
        if (rc < 0) {
            rc = erd_fail(diag, rc, "encoding hypothesis %zu failed", i);
            goto out;
        }
        double w = vix__hyp_weight(hyps, n, i);
        for (size_t d = 0; d < dim; d++)
            q[d] += (float)w * v[d];
        if (r->rerank) {
            uint8_t *dst = hyp_phones + used * VIX_RR_TOKENS_MAX;
            rr_hyps[used] = (vix_rerank_hyp){
                .tokens = dst,
                .n = vix_rerank_pack(ph->tokens, ph->n_tokens, dst, VIX_RR_TOKENS_MAX),
                .weight = w};
        }
        if (used == 0)
            n_phones = ph->n_tokens;
        wsum += w;
        used++;
    }
    if (used == 0) {
        rc = erd_fail(diag, ERD_EEMPTY, "no hypothesis has anything speakable");
        goto out;
    }
    double norm = 0;
    for (size_t d = 0; d < dim; d++)
        norm += (double)q[d] * q[d];
    norm = sqrt(norm);
    if (norm <= 0) {
        rc = erd_fail(diag, ERD_EEMPTY, "hypotheses carry no phonetic features");
        goto out;
    }
    for (size_t d = 0; d < dim; d++)
        q[d] = (float)(q[d] / norm);

    uint64_t t0 = vix__ns();
    rc = vix_index_search(cat->index, 1, q, cand, scores, ids, diag);
    tm.search_ns = vix__ns() - t0;
    if (rc < 0)
        goto out;

    /* An entity owns one vector per name and spoken variant: keep its best.
     * Results come best first, so the first hit of an id is its best. */
    t0 = vix__ns();
    size_t n_found = 0;
    for (size_t i = 0; i < cand && n_found < want; i++) {
        if (ids[i] < 0)
            break;
        int dup = 0;
        for (size_t j = 0; j < n_found; j++)
            if (found[j].res.rowid == ids[i])
                dup = 1;
        if (dup)
            continue;
        const vix__entity *e = vix__entity_find(cat, ids[i]);
        if (!e)
            continue; /* vector of an entity deleted since the build */
        double s = (double)scores[i] * norm / wsum; /* weighted mean cosine */
        s = s < 0 ? 0 : s > 1 ? 1 : s;
        found[n_found++] = (vix__ranked){
            .res = {.rowid = e->rowid, .ext_id = e->ext_id, .name = e->name, .score = s},
            .first = s};
    }
    tm.aggregate_ns = vix__ns() - t0;
    if (r->rerank) {
        t0 = vix__ns();
        for (size_t i = 0; i < n_found; i++) {
            const vix__entity *e = vix__entity_find(cat, found[i].res.rowid);
            rr_cands[i] = (vix_rerank_cand){.phrases = cat->phrases + e->phrase_first,
                                            .n_phrases = e->n_phrases,
                                            .first = found[i].first};
        }
        vix_rerank_score(r->rerank, rr_hyps, used, rr_cands, n_found);
        for (size_t i = 0; i < n_found; i++) {
            double s = rr_cands[i].score;
            found[i].res.score = s < 0 ? 0 : s > 1 ? 1 : s;
        }
        tm.rerank_ns = vix__ns() - t0;
    }
    qsort(found, n_found, sizeof *found, vix__cmp_score);
    size_t n_out = n_found < k ? n_found : k;
    for (size_t i = 0; i < n_out; i++)
        ret_results[i] = found[i].res;
    if (calibrate && n_found) {
        /* Features come from the whole candidate list, not the k asked
         * for, so a result's probability does not depend on k. */
        double *sc = cal, *first = cal + want, *agree = cal + 2 * want, *x = cal + 3 * want;
        double *p = x + want * VIX_CALIB_NFEAT;
        t0 = vix__ns();
        for (size_t i = 0; i < n_found; i++) {
            sc[i] = found[i].res.score;
            first[i] = found[i].first;
            agree[i] = 0;
        }
        if (r->rerank)
            vix__agreement(r, cat, rr_hyps, used, found, n_found, agree);
        vix_calib_features(sc, first, agree, n_out, n_found, used, n_phones, x);
        if (ret_features)
            memcpy(ret_features, x, n_out * VIX_CALIB_NFEAT * sizeof *x);
        if (cat->calibrated) {
            vix_calib_probs(r->calib, x, n_out, p);
            for (size_t i = 0; i < n_out; i++)
                ret_results[i].score = p[i];
        }
        tm.aggregate_ns += vix__ns() - t0;
    }
    *ret_n = n_out;
    if (timing)
        *timing = tm;
out:
    free(q);
    free(v);
    free(scores);
    free(ids);
    free(ph);
    free(found);
    free(cal);
    free(hyp_phones);
    free(rr_hyps);
    free(rr_cands);
    return rc;
}
