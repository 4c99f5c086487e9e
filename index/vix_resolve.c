/* Resolution over live catalogs.
 *
 * What a resolve reads is a view: an immutable, reference-counted list of
 * catalogs, each a base (one built index with its entities, loaded once
 * and shared by successive views) plus a delta (entities written since the
 * base's generation: their vectors in a small flat index, and the base
 * rowids they replace or delete, masked out of base results).  Writers
 * (vix_resolver_sync, a finished rebuild) make a new view and publish it
 * with one pointer swap; a resolve holds its view from start to end, and the
 * last holder of an old view frees it.  Resolves never wait for a sync or a
 * rebuild: the only lock they take guards the pointer swap. */
#include "index/vix_resolve.h"

#include <math.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "index/vix_build.h"
#include "index/vix_calib.h"
#include "index/vix_explain.h"
#include "index/vix_index.h"
#include "index/vix_internal.h"
#include "index/vix_phrase.h"
#include "index/vix_ranker.h"
#include "index/vix_rerank.h"
#include "index/vix_store.h"
#include "proto/erd_hash.h"
#include "phonetics/pho_encoder.h"
#include "phonetics/pho_g2p.h"

/* At most this many hypotheses of one request are used; the server's own
 * limit is lower, this only bounds the stack. */
#define VIX_HYPS_MAX 64
#define VIX_CANDIDATES_MAX 4096


typedef struct vix__entity {
    int64_t rowid;
    const char *ext_id; /* into its set's string arena */
    const char *name;
    const vix_rerank_phrase *phrases; /* into its set's phrases */
    size_t n_phrases;
} vix__entity;

/* Entities with their names and rerank phrases, sorted by rowid. */
typedef struct vix__set {
    vix__entity *entities;
    size_t n_entities, cap_entities;
    char *strings;
    size_t strings_len, strings_cap;
    vix_rerank_phrase *phrases;
    size_t n_phrases, cap_phrases;
    uint8_t *phones;
    size_t phones_len, phones_cap;
    /* entities[slot[rowid - slot_lo] - 1] when the rowids are dense enough
     * (a resolve looks up hundreds; a binary search's cache misses showed
     * at 5 % of its time); NULL otherwise */
    uint32_t *slot;
    int64_t slot_lo;
    size_t slot_n;
} vix__set;

/* One built index and the entities it was built from. */
typedef struct vix__base {
    atomic_int refs;
    pho_encoder *enc;
    vix_index *index;
    vix__set set;
    int64_t generation; /* catalog generation the index holds */
    int64_t built_at;
    char file[1024];    /* as the metadata names it */
    int calibrated;     /* the resolver's calibration was fitted on this encoder */
    pho_g2p *g2p;       /* the resolver's, in the voice the index recorded (else g2p_voice) */
} vix__base;

/* An entity written since the base, with its own vectors. */
typedef struct vix__dent {
    atomic_int refs; /* successive deltas share unchanged entries */
    vix__set set;    /* exactly one entity */
    float *vecs;
    size_t n_vecs;
} vix__dent;

typedef struct vix__delta {
    atomic_int refs;
    int64_t generation;  /* catalog generation served */
    size_t bytes;        /* heap it holds, entries and index (vix__delta_bytes) */
    vix__dent **ents;    /* sorted by rowid */
    size_t n_ents;
    int64_t *masked;     /* base rowids replaced or deleted, sorted */
    size_t n_masked;
    vix_index *index;    /* every entry's vectors; NULL when none */
} vix__delta;

typedef struct vix__catalog {
    const char *name; /* interned: stays valid while the resolver lives */
    vix__base *base;
    vix__delta *delta; /* NULL: nothing changed since the base */
    /* Changes past the delta's memory budget wait for a rebuild: the
     * catalog is served as of the delta's generation meanwhile. */
    bool held;
} vix__catalog;

struct vix_view {
    atomic_int refs;
    vix__catalog *catalogs;
    size_t n_catalogs;
};

typedef struct vix__intern {
    struct vix__intern *next;
    char s[];
} vix__intern;

/* A G2P handle per espeak-ng voice some catalog was built with, besides
 * the configured one; kept until the resolver closes. */
typedef struct vix__voice {
    struct vix__voice *next;
    pho_g2p *g2p;
    char name[64];
} vix__voice;

/* A background rebuild's state, and a failed index load, per catalog name. */
typedef struct vix__job {
    char name[72];
    vix_rebuild_status st;
    /* The index the metadata names failed to load: not retried until the
     * metadata names another (a rebuild, erd build). */
    int bulk;    /* bulk uploads streaming into the catalog */
    bool broken;
    erd_diag broken_diag;
    char broken_file[1024];
    int64_t broken_built_at;
} vix__job;

struct vix_resolver {
    pho_g2p *g2p;
    size_t candidates;
    vix_rerank *rerank; /* NULL: first stage only */
    vix_ranker *ranker; /* NULL: the rerank's hand-set blend orders the candidates */
    vix_rank_observer rank_observer;
    void *rank_observer_ctx;
    char rerank_id[VIX_CALIB_ID_MAX];
    vix_calib *calib;   /* NULL: uncalibrated scores */
    int calib_rerank_ok; /* calib was fitted under this rerank configuration */
    char *db_path;
    char *build_encoder, *build_factory, *g2p_voice;
    size_t delta_max;
    size_t delta_max_bytes;

    pthread_mutex_t view_mu; /* guards the view pointer, held for the swap only */
    vix_view *view;
    pthread_mutex_t sync_mu; /* one writer of views at a time */
    vix_store *store;        /* read-only, used under sync_mu */
    pthread_mutex_t intern_mu;
    vix__intern *interned;
    vix__voice *voices;      /* guarded by intern_mu */
    size_t g2p_cache_entries;

    pthread_mutex_t job_mu;  /* guards jobs and job_* */
    vix__job *jobs;
    size_t n_jobs;
    pthread_t job_thread;
    bool job_joinable;       /* a thread was started and not yet joined */
    bool job_running;
    bool closing;
    atomic_int cancel;       /* tells a running build to stop: closing */
};

static uint64_t vix__ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static const char *vix__intern_str(vix_resolver *r, const char *s)
{
    const char *out = NULL;
    pthread_mutex_lock(&r->intern_mu);
    for (vix__intern *i = r->interned; i && !out; i = i->next)
        if (strcmp(i->s, s) == 0)
            out = i->s;
    if (!out) {
        size_t n = strlen(s) + 1;
        vix__intern *i = malloc(sizeof *i + n);
        if (i) {
            memcpy(i->s, s, n);
            i->next = r->interned;
            r->interned = i;
            out = i->s;
        }
    }
    pthread_mutex_unlock(&r->intern_mu);
    return out;
}

static void vix__set_free(vix__set *c)
{
    free(c->entities);
    free(c->strings);
    free(c->phrases);
    free(c->phones);
    free(c->slot);
    memset(c, 0, sizeof *c);
}

static void vix__base_unref(vix__base *b)
{
    if (!b || atomic_fetch_sub(&b->refs, 1) != 1)
        return;
    pho_encoder_destroy(b->enc);
    vix_index_destroy(b->index);
    vix__set_free(&b->set);
    free(b);
}

static void vix__dent_unref(vix__dent *d)
{
    if (!d || atomic_fetch_sub(&d->refs, 1) != 1)
        return;
    vix__set_free(&d->set);
    free(d->vecs);
    free(d);
}

static void vix__delta_unref(vix__delta *d)
{
    if (!d || atomic_fetch_sub(&d->refs, 1) != 1)
        return;
    for (size_t i = 0; i < d->n_ents; i++)
        vix__dent_unref(d->ents[i]);
    free(d->ents);
    free(d->masked);
    vix_index_destroy(d->index);
    free(d);
}

static void vix__view_free(vix_view *v)
{
    for (size_t i = 0; i < v->n_catalogs; i++) {
        vix__base_unref(v->catalogs[i].base);
        vix__delta_unref(v->catalogs[i].delta);
    }
    free(v->catalogs);
    free(v);
}

vix_view *vix_resolver_acquire(vix_resolver *r)
{
    pthread_mutex_lock(&r->view_mu);
    vix_view *v = r->view;
    atomic_fetch_add(&v->refs, 1);
    pthread_mutex_unlock(&r->view_mu);
    return v;
}

void vix_view_release(vix_view *v)
{
    if (v && atomic_fetch_sub(&v->refs, 1) == 1)
        vix__view_free(v);
}

/* Publishes v (one reference handed over to the resolver) and drops the
 * resolver's reference to the view it replaces. */
static void vix__publish(vix_resolver *r, vix_view *v)
{
    pthread_mutex_lock(&r->view_mu);
    vix_view *old = r->view;
    r->view = v;
    pthread_mutex_unlock(&r->view_mu);
    vix_view_release(old);
}

/* Entity strings are first gathered as offsets (the arena moves while it
 * grows) and turned into pointers once loading is done. */
static int vix__arena_add(vix__set *c, const char *s, size_t *ret_off)
{
    size_t len = strlen(s) + 1;
    if (c->strings_len + len > c->strings_cap) {
        size_t ncap = c->strings_cap ? c->strings_cap : 256;
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
    vix__set *set;
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
    vix__set *c = ld->set;
    int rc = ld->store ? vix_phrase_prepare(ld->g2p, ld->store, variant, len, ld->scratch, NULL)
                       : ERD_ENOTFOUND;
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
        size_t ncap = c->cap_phrases ? c->cap_phrases * 2 : 16;
        vix_rerank_phrase *p = realloc(c->phrases, ncap * sizeof *p);
        if (!p)
            goto oom;
        c->phrases = p;
        c->cap_phrases = ncap;
    }
    if (c->phones_len + n > c->phones_cap) {
        size_t ncap = c->phones_cap ? c->phones_cap : 256;
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

static int vix__load_entity(void *user, const vix_entity *e)
{
    vix__load *ld = user;
    vix__set *c = ld->set;
    if (c->n_entities == c->cap_entities) {
        size_t ncap = c->cap_entities ? c->cap_entities * 2 : 16;
        vix__entity *p = realloc(c->entities, ncap * sizeof *p);
        if (!p)
            goto oom;
        c->entities = p;
        c->cap_entities = ncap;
    }
    size_t id_off, name_off;
    if (vix__arena_add(c, e->ext_id, &id_off) < 0 || vix__arena_add(c, e->name, &name_off) < 0)
        goto oom;
    size_t first = c->n_phrases;
    ld->entity_first_phrase = first;
    if (ld->scratch && vix_entity_variants(e, vix__load_variant, ld))
        return 1;
    c->entities[c->n_entities++] = (vix__entity){
        .rowid = e->rowid, .ext_id = (const char *)(uintptr_t)id_off,
        .name = (const char *)(uintptr_t)name_off,
        .phrases = (const vix_rerank_phrase *)(uintptr_t)first, .n_phrases = c->n_phrases - first};
    return 0;
oom:
    ld->rc = erd_fail(ld->diag, ERD_ENOMEM, "out of memory loading entities");
    return 1;
}

static int vix__cmp_rowid(const void *a, const void *b)
{
    int64_t x = ((const vix__entity *)a)->rowid, y = ((const vix__entity *)b)->rowid;
    return (x > y) - (x < y);
}

/* Offsets become pointers once the arenas stop moving. */
/* Gives back what the growing arrays over-allocated (up to half of them;
 * for a delta entry of one entity, most of it).  Runs while entries still
 * hold offsets, since the arrays may move. */
static void vix__fit(void **p, size_t *cap, size_t n, size_t size)
{
    if (!*p || n >= *cap)
        return;
    void *q = realloc(*p, (n ? n : 1) * size);
    if (q) {
        *p = q;
        *cap = n;
    }
}

static void vix__set_fit(vix__set *c)
{
    vix__fit((void **)&c->entities, &c->cap_entities, c->n_entities, sizeof *c->entities);
    vix__fit((void **)&c->strings, &c->strings_cap, c->strings_len, 1);
    vix__fit((void **)&c->phrases, &c->cap_phrases, c->n_phrases, sizeof *c->phrases);
    vix__fit((void **)&c->phones, &c->phones_cap, c->phones_len, 1);
}

/* Heap bytes the set holds. */
static size_t vix__set_bytes(const vix__set *c)
{
    return c->cap_entities * sizeof *c->entities + c->strings_cap +
           c->cap_phrases * sizeof *c->phrases + c->phones_cap + c->slot_n * sizeof *c->slot;
}

static void vix__set_finish(vix__set *c)
{
    vix__set_fit(c);
    for (size_t i = 0; i < c->n_entities; i++) {
        c->entities[i].ext_id = c->strings + (uintptr_t)c->entities[i].ext_id;
        c->entities[i].name = c->strings + (uintptr_t)c->entities[i].name;
        c->entities[i].phrases = c->phrases + (uintptr_t)c->entities[i].phrases;
    }
    for (size_t i = 0; i < c->n_phrases; i++)
        c->phrases[i].tokens = c->phones + (uintptr_t)c->phrases[i].tokens;
    qsort(c->entities, c->n_entities, sizeof *c->entities, vix__cmp_rowid);
    if (c->n_entities && c->n_entities < UINT32_MAX) {
        int64_t lo = c->entities[0].rowid, hi = c->entities[c->n_entities - 1].rowid;
        uint64_t span = (uint64_t)hi - (uint64_t)lo + 1;
        /* without the table lookups are only slower */
        if (span <= 4 * (uint64_t)c->n_entities + 1024 &&
            (c->slot = calloc((size_t)span, sizeof *c->slot))) {
            c->slot_lo = lo;
            c->slot_n = (size_t)span;
            for (size_t i = 0; i < c->n_entities; i++)
                c->slot[c->entities[i].rowid - lo] = (uint32_t)i + 1;
        }
    }
}

static const vix__entity *vix__set_find(const vix__set *c, int64_t rowid)
{
    if (c->slot) {
        uint64_t at = (uint64_t)rowid - (uint64_t)c->slot_lo;
        return at < c->slot_n && c->slot[at] ? &c->entities[c->slot[at] - 1] : NULL;
    }
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

/* The G2P handle for voice ("" or g2p_voice: the configured one), made on
 * first use: queries of a catalog are spoken in the voice its index was
 * built with, whatever the server's g2p_voice says. */
static int vix__g2p_for(vix_resolver *r, const char *voice, const char *catalog, pho_g2p **ret,
                        erd_diag *diag)
{
    if (!voice[0] || strcmp(voice, r->g2p_voice) == 0) {
        *ret = r->g2p;
        return ERD_OK;
    }
    int rc = ERD_OK;
    pthread_mutex_lock(&r->intern_mu);
    vix__voice *v = r->voices;
    while (v && strcmp(v->name, voice) != 0)
        v = v->next;
    if (!v) {
        erd_diag inner = {0};
        v = calloc(1, sizeof *v);
        if (!v)
            rc = erd_fail(diag, ERD_ENOMEM, "out of memory");
        else if ((rc = pho_g2p_create(voice, r->g2p_cache_entries, &v->g2p, &inner)) < 0)
            rc = erd_fail(diag, rc, "catalog \"%s\" was built with G2P voice \"%s\": %s", catalog,
                          voice, inner.msg);
        if (rc < 0) {
            free(v);
            v = NULL;
        } else {
            snprintf(v->name, sizeof v->name, "%s", voice);
            v->next = r->voices;
            r->voices = v;
        }
    }
    if (v)
        *ret = v->g2p;
    pthread_mutex_unlock(&r->intern_mu);
    return rc;
}

/* Loads catalog_id's built index, encoder and entities, as meta describes
 * them, from store (inside the caller's read snapshot). */
static int vix__base_load(vix_resolver *r, vix_store *store, int64_t catalog_id, const char *name,
                          const vix_index_meta *meta, vix__base **ret, erd_diag *diag)
{
    vix__base *b = calloc(1, sizeof *b);
    vix__load ld = {.g2p = r->g2p, .store = store, .diag = diag};
    int rc;
    if (!b)
        return erd_fail(diag, ERD_ENOMEM, "out of memory");
    atomic_init(&b->refs, 1);
    b->generation = meta->catalog_generation;
    b->built_at = meta->built_at;
    snprintf(b->file, sizeof b->file, "%s", meta->path);
    rc = vix__g2p_for(r, meta->g2p_voice, name, &b->g2p, diag);
    if (rc < 0)
        goto out;
    ld.g2p = b->g2p;
    rc = pho_encoder_create(meta->encoder_id, &b->enc, diag);
    if (rc < 0)
        goto out;
    rc = pho_encoder_state_load(b->enc, meta->encoder_state, meta->encoder_state_len, diag);
    if (rc < 0)
        goto out;
    char path[2048];
    rc = vix_index_file_path(r->db_path, meta->path, path, sizeof path);
    if (rc < 0) {
        rc = erd_fail(diag, rc, "index path of \"%s\" too long", name);
        goto out;
    }
    rc = vix_index_read(path, &b->index, diag);
    if (rc < 0)
        goto out;
    if (vix_index_dim(b->index) != pho_encoder_dim(b->enc) ||
        vix_index_count(b->index) != (size_t)meta->vector_count) {
        rc = erd_fail(diag, ERD_EMISMATCH,
                      "catalog \"%s\": index %s holds %zu vectors of dimension %zu, metadata "
                      "says %lld of %zu: rebuild it",
                      name, meta->path, vix_index_count(b->index), vix_index_dim(b->index),
                      (long long)meta->vector_count, pho_encoder_dim(b->enc));
        goto out;
    }
    ld.set = &b->set;
    if (r->rerank) {
        ld.scratch = malloc(sizeof *ld.scratch);
        if (!ld.scratch) {
            rc = erd_fail(diag, ERD_ENOMEM, "out of memory");
            goto out;
        }
    }
    b->calibrated = r->calib && r->calib_rerank_ok &&
                    strcmp(pho_encoder_id(b->enc), r->calib->encoder_id) == 0;
    rc = vix_store_entity_foreach(store, catalog_id, vix__load_entity, &ld, diag);
    if (rc != 0) {
        rc = ld.rc < 0 ? ld.rc : rc > 0 ? erd_fail(diag, ERD_ENOMEM, "out of memory") : rc;
        goto out;
    }
    vix__set_finish(&b->set);
    *ret = b; /* the caller owns the one reference */
    b = NULL;
out:
    free(ld.scratch);
    vix__base_unref(b);
    return rc;
}

/* ---- deltas ---- */

/* One entity's vectors exactly as vix_build makes them: one per distinct
 * normalised variant, shortened forms scaled by VIX_DERIVED_SCALE unless
 * the same text is also said in full. */
typedef struct vix__vecs {
    const pho_encoder *enc;
    pho_g2p *g2p;
    vix_phrase *scratch;
    char (*texts)[PHO_TEXT_MAX];
    unsigned char *derived;
    float *vecs;
    size_t n, cap;
    erd_diag *diag;
    int rc;
} vix__vecs;

static int vix__vec_variant(void *user, const char *variant, size_t len, int derived)
{
    vix__vecs *vv = user;
    int rc = vix_phrase_prepare(vv->g2p, NULL, variant, len, vv->scratch, vv->diag);
    if (rc == ERD_EEMPTY)
        return 0;
    if (rc < 0) {
        vv->rc = rc;
        return 1;
    }
    for (size_t i = 0; i < vv->n; i++) {
        if (strcmp(vv->texts[i], vv->scratch->text) == 0) {
            vv->derived[i] &= (unsigned char)derived;
            return 0;
        }
    }
    size_t dim = pho_encoder_dim(vv->enc);
    if (vv->n == vv->cap) {
        size_t ncap = vv->cap ? vv->cap * 2 : 8;
        void *t = realloc(vv->texts, ncap * sizeof *vv->texts);
        if (t)
            vv->texts = t;
        void *d = realloc(vv->derived, ncap);
        if (d)
            vv->derived = d;
        void *v = realloc(vv->vecs, ncap * dim * sizeof *vv->vecs);
        if (v)
            vv->vecs = v;
        if (!t || !d || !v) {
            vv->rc = erd_fail(vv->diag, ERD_ENOMEM, "out of memory encoding an entity");
            return 1;
        }
        vv->cap = ncap;
    }
    pho_phrase ph = {.text = vv->scratch->text, .tokens = vv->scratch->tokens,
                     .n_tokens = vv->scratch->n_tokens};
    rc = pho_encoder_encode(vv->enc, &ph, vv->vecs + vv->n * dim);
    if (rc < 0) {
        vv->rc = erd_fail(vv->diag, rc, "encoding \"%.100s\" failed", vv->scratch->text);
        return 1;
    }
    snprintf(vv->texts[vv->n], PHO_TEXT_MAX, "%s", vv->scratch->text);
    vv->derived[vv->n++] = (unsigned char)derived;
    return 0;
}

static int vix__dent_make(vix_resolver *r, const vix__base *base, const vix_entity *e,
                          vix_phrase *scratch, vix__dent **ret, erd_diag *diag)
{
    vix__dent *d = calloc(1, sizeof *d);
    vix__vecs vv = {.enc = base->enc, .g2p = base->g2p, .scratch = scratch, .diag = diag};
    int rc = ERD_OK;
    if (!d)
        return erd_fail(diag, ERD_ENOMEM, "out of memory");
    atomic_init(&d->refs, 1);
    vix__load ld = {.set = &d->set, .g2p = base->g2p, .scratch = r->rerank ? scratch : NULL,
                    .diag = diag};
    if (vix__load_entity(&ld, e)) {
        rc = ld.rc < 0 ? ld.rc : erd_fail(diag, ERD_ENOMEM, "out of memory");
        goto out;
    }
    vix__set_finish(&d->set);
    if (vix_entity_variants(e, vix__vec_variant, &vv)) {
        rc = vv.rc;
        goto out;
    }
    size_t dim = pho_encoder_dim(base->enc);
    vix__fit((void **)&vv.vecs, &vv.cap, vv.n, dim * sizeof *vv.vecs);
    for (size_t i = 0; i < vv.n; i++)
        if (vv.derived[i])
            for (size_t k = 0; k < dim; k++)
                vv.vecs[i * dim + k] *= VIX_DERIVED_SCALE;
    d->vecs = vv.vecs; /* moves to the entry */
    d->n_vecs = vv.n;
    vv.vecs = NULL;
    *ret = d;
    d = NULL;
out:
    free(vv.texts);
    free(vv.derived);
    free(vv.vecs);
    vix__dent_unref(d);
    return rc;
}

typedef struct vix__changes {
    vix_resolver *r;
    const vix__base *base;
    vix_phrase *scratch;
    int64_t *gone; /* rowids whose earlier version is no longer current */
    size_t n_gone, cap_gone;
    vix__dent **fresh;
    size_t n_fresh, cap_fresh;
    erd_diag *diag;
    int rc;
} vix__changes;

static int vix__change_deleted(void *user, int64_t rowid)
{
    vix__changes *ch = user;
    if (vix__grow((void **)&ch->gone, &ch->cap_gone, ch->n_gone + 1, sizeof *ch->gone) < 0)
        return ch->rc = erd_fail(ch->diag, ERD_ENOMEM, "out of memory");
    ch->gone[ch->n_gone++] = rowid;
    return 0;
}

static int vix__change_upserted(void *user, const vix_entity *e)
{
    vix__changes *ch = user;
    vix__dent *d = NULL;
    int rc = vix__change_deleted(user, e->rowid);
    if (rc)
        return rc;
    if (vix__grow((void **)&ch->fresh, &ch->cap_fresh, ch->n_fresh + 1, sizeof *ch->fresh) < 0)
        return ch->rc = erd_fail(ch->diag, ERD_ENOMEM, "out of memory");
    rc = vix__dent_make(ch->r, ch->base, e, ch->scratch, &d, ch->diag);
    if (rc < 0)
        return ch->rc = rc;
    ch->fresh[ch->n_fresh++] = d;
    return 0;
}

static int vix__cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int vix__cmp_dent(const void *a, const void *b)
{
    return vix__cmp_rowid(&(*(vix__dent *const *)a)->set.entities[0],
                          &(*(vix__dent *const *)b)->set.entities[0]);
}

static bool vix__i64_has(const int64_t *v, size_t n, int64_t x)
{
    return n && bsearch(&x, v, n, sizeof *v, vix__cmp_i64) != NULL;
}

/* The delta after prev (NULL: none yet) with the changes committed after
 * it up to generation `now` applied: entries written again or deleted are
 * dropped, fresh ones added, and every base rowid they touch masked. */
static int vix__delta_next(vix_resolver *r, vix_store *store, int64_t catalog_id,
                           const vix__base *base, vix__delta *prev, int64_t now,
                           vix__delta **ret, erd_diag *diag)
{
    int64_t since = prev ? prev->generation : base->generation;
    vix__changes ch = {.r = r, .base = base, .diag = diag};
    vix__delta *d = NULL;
    float *all = NULL;
    int64_t *ids = NULL;
    int rc;
    if (now <= since) {
        if (prev)
            atomic_fetch_add(&prev->refs, 1);
        *ret = prev; /* a new reference, or NULL */
        return ERD_OK;
    }
    ch.scratch = malloc(sizeof *ch.scratch);
    d = calloc(1, sizeof *d);
    if (!ch.scratch || !d) {
        rc = erd_fail(diag, ERD_ENOMEM, "out of memory");
        goto out;
    }
    atomic_init(&d->refs, 1);
    d->generation = now;
    rc = vix_store_changes(store, catalog_id, since, vix__change_upserted, vix__change_deleted, &ch,
                           diag);
    if (rc != 0) {
        rc = ch.rc < 0 ? ch.rc : rc;
        goto out;
    }
    qsort(ch.gone, ch.n_gone, sizeof *ch.gone, vix__cmp_i64);
    size_t n_prev = prev ? prev->n_ents : 0, n_prev_masked = prev ? prev->n_masked : 0;
    d->ents = malloc((n_prev + ch.n_fresh + 1) * sizeof *d->ents);
    d->masked = malloc((n_prev_masked + ch.n_gone + 1) * sizeof *d->masked);
    if (!d->ents || !d->masked) {
        rc = erd_fail(diag, ERD_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n_prev; i++) {
        vix__dent *e = prev->ents[i];
        if (vix__i64_has(ch.gone, ch.n_gone, e->set.entities[0].rowid))
            continue;
        atomic_fetch_add(&e->refs, 1);
        d->ents[d->n_ents++] = e;
    }
    for (size_t i = 0; i < ch.n_fresh; i++) {
        d->ents[d->n_ents++] = ch.fresh[i]; /* the reference moves to the delta */
        ch.fresh[i] = NULL;
    }
    qsort(d->ents, d->n_ents, sizeof *d->ents, vix__cmp_dent);
    /* Only rowids the base holds are masked, so the count says how many
     * base results a search may lose. */
    for (size_t i = 0; i < n_prev_masked; i++)
        d->masked[d->n_masked++] = prev->masked[i];
    for (size_t i = 0; i < ch.n_gone; i++)
        if (vix__set_find(&base->set, ch.gone[i]) &&
            !vix__i64_has(prev ? prev->masked : NULL, n_prev_masked, ch.gone[i]) &&
            (d->n_masked == n_prev_masked || d->masked[d->n_masked - 1] != ch.gone[i]))
            d->masked[d->n_masked++] = ch.gone[i];
    qsort(d->masked, d->n_masked, sizeof *d->masked, vix__cmp_i64);

    size_t dim = pho_encoder_dim(base->enc), n_vecs = 0;
    for (size_t i = 0; i < d->n_ents; i++)
        n_vecs += d->ents[i]->n_vecs;
    if (n_vecs) {
        all = malloc(n_vecs * dim * sizeof *all);
        ids = malloc(n_vecs * sizeof *ids);
        if (!all || !ids) {
            rc = erd_fail(diag, ERD_ENOMEM, "out of memory");
            goto out;
        }
        size_t o = 0;
        for (size_t i = 0; i < d->n_ents; i++) {
            const vix__dent *e = d->ents[i];
            memcpy(all + o * dim, e->vecs, e->n_vecs * dim * sizeof *all);
            for (size_t k = 0; k < e->n_vecs; k++)
                ids[o + k] = e->set.entities[0].rowid;
            o += e->n_vecs;
        }
        rc = vix_index_create("Flat", dim, &d->index, diag);
        if (rc == ERD_OK)
            rc = vix_index_add(d->index, n_vecs, all, ids, diag);
        if (rc < 0)
            goto out;
    }
    /* The flat index keeps its floats, ids and, once searched, a bfloat16
     * copy for the scan. */
    d->bytes = sizeof *d + (d->n_ents + d->n_masked) * sizeof(int64_t) +
               n_vecs * (dim * (sizeof(float) + sizeof(uint16_t)) + sizeof(int64_t));
    for (size_t i = 0; i < d->n_ents; i++)
        d->bytes += sizeof *d->ents[i] + vix__set_bytes(&d->ents[i]->set) +
                    d->ents[i]->n_vecs * dim * sizeof(float);
    *ret = d;
    d = NULL;
    rc = ERD_OK;
out:
    for (size_t i = 0; i < ch.n_fresh; i++)
        vix__dent_unref(ch.fresh[i]);
    free(ch.fresh);
    free(ch.gone);
    free(ch.scratch);
    free(all);
    free(ids);
    vix__delta_unref(d);
    return rc;
}

/* ---- sync: bring the view up to date with the store ---- */

typedef struct vix__row {
    int64_t id;
    int64_t generation;
    char name[72];
} vix__row;

typedef struct vix__rows {
    vix__row *v;
    size_t n, cap;
} vix__rows;

static int vix__collect_row(void *user, const vix_catalog_info *info)
{
    vix__rows *rows = user;
    if (vix__grow((void **)&rows->v, &rows->cap, rows->n + 1, sizeof *rows->v) < 0)
        return ERD_ENOMEM;
    vix__row *row = &rows->v[rows->n++];
    row->id = info->id;
    row->generation = info->generation;
    snprintf(row->name, sizeof row->name, "%s", info->name);
    return 0;
}

static const vix__catalog *vix__view_find(const vix_view *v, const char *name)
{
    for (size_t i = 0; i < v->n_catalogs; i++)
        if (strcmp(v->catalogs[i].name, name) == 0)
            return &v->catalogs[i];
    return NULL;
}

static bool vix__job_running_for(vix_resolver *r, const char *name)
{
    bool running = false;
    pthread_mutex_lock(&r->job_mu);
    for (size_t i = 0; i < r->n_jobs; i++)
        if (strcmp(r->jobs[i].name, name) == 0)
            running = r->jobs[i].st.state == VIX_REBUILD_RUNNING;
    pthread_mutex_unlock(&r->job_mu);
    return running;
}

static vix__job *vix__job_for(vix_resolver *r, const char *name);

/* Records (err < 0) or clears catalog's failed index load. */
static void vix__broken_note(vix_resolver *r, const char *name, const vix_index_meta *meta,
                             int err, const erd_diag *diag)
{
    pthread_mutex_lock(&r->job_mu);
    vix__job *j = NULL;
    for (size_t i = 0; i < r->n_jobs && !j; i++)
        if (strcmp(r->jobs[i].name, name) == 0)
            j = &r->jobs[i];
    if (!j && err < 0)
        j = vix__job_for(r, name);
    if (j) {
        j->broken = err < 0;
        if (err < 0) {
            j->broken_diag.code = err;
            snprintf(j->broken_diag.msg, sizeof j->broken_diag.msg, "%s",
                     diag && diag->msg[0] ? diag->msg : erd_strerror(err));
            snprintf(j->broken_file, sizeof j->broken_file, "%s", meta->path);
            j->broken_built_at = meta->built_at;
        }
    }
    pthread_mutex_unlock(&r->job_mu);
}

static bool vix__broken_same(vix_resolver *r, const char *name, const vix_index_meta *meta)
{
    bool same = false;
    pthread_mutex_lock(&r->job_mu);
    for (size_t i = 0; i < r->n_jobs; i++)
        if (strcmp(r->jobs[i].name, name) == 0)
            same = r->jobs[i].broken && strcmp(r->jobs[i].broken_file, meta->path) == 0 &&
                   r->jobs[i].broken_built_at == meta->built_at;
    pthread_mutex_unlock(&r->job_mu);
    return same;
}

/* Why catalog is not in the view: never built or unknown, or an index
 * that did not load. */
static int vix__not_served(vix_resolver *r, const char *catalog, erd_diag *diag)
{
    char name[72];
    erd_diag d;
    for (size_t i = 0; vix_resolver_unavailable(r, i, name, sizeof name, &d) == ERD_OK; i++)
        if (strcmp(name, catalog) == 0)
            return erd_fail(diag, ERD_ENOCATALOG,
                            "catalog \"%s\" is not served: its index did not load (%.160s); "
                            "rebuild it",
                            catalog, d.msg);
    return erd_fail(diag, ERD_ENOCATALOG, "unknown catalog \"%s\"", catalog);
}

void vix_resolver_bulk(vix_resolver *r, const char *catalog, bool begin)
{
    if (!r || !catalog)
        return;
    pthread_mutex_lock(&r->job_mu);
    vix__job *j = vix__job_for(r, catalog);
    if (j)
        j->bulk += begin ? 1 : (j->bulk > 0 ? -1 : 0);
    pthread_mutex_unlock(&r->job_mu);
}

static bool vix__bulk_streaming(vix_resolver *r, const char *name)
{
    bool on = false;
    pthread_mutex_lock(&r->job_mu);
    for (size_t i = 0; i < r->n_jobs; i++)
        if (strcmp(r->jobs[i].name, name) == 0)
            on = r->jobs[i].bulk > 0;
    pthread_mutex_unlock(&r->job_mu);
    return on;
}

int vix_resolver_unavailable(vix_resolver *r, size_t i, char *name, size_t name_cap,
                             erd_diag *ret)
{
    int rc = ERD_ENOTFOUND;
    pthread_mutex_lock(&r->job_mu);
    for (size_t k = 0, seen = 0; k < r->n_jobs; k++) {
        if (!r->jobs[k].broken || seen++ != i)
            continue;
        snprintf(name, name_cap, "%s", r->jobs[k].name);
        if (ret)
            *ret = r->jobs[k].broken_diag;
        rc = ERD_OK;
        break;
    }
    pthread_mutex_unlock(&r->job_mu);
    return rc;
}

static void vix__keep(vix_view *nv, const vix__catalog *c)
{
    atomic_fetch_add(&c->base->refs, 1);
    if (c->delta)
        atomic_fetch_add(&c->delta->refs, 1);
    nv->catalogs[nv->n_catalogs++] = *c;
}

/* Bytes a delta entry is taken to hold before any was measured: one
 * entity, two variants of a 128-dimension encoder, entry and index. */
#define VIX__DELTA_ENTITY_GUESS 2560

/* Whether the changes since prev (or base) fit the delta memory budget; if
 * not, *ret_held: the delta stays as it is until a rebuild folds them in.
 * Only when rebuilds run (delta_max), else the budget could never clear. */
static int vix__delta_fits(vix_resolver *r, vix_store *store, const vix__row *row,
                           const vix__base *base, const vix__delta *prev, bool *ret_held,
                           erd_diag *diag)
{
    int64_t since = prev ? prev->generation : base->generation, pending = 0;
    *ret_held = false;
    if (!r->delta_max_bytes || !r->delta_max || row->generation <= since)
        return ERD_OK;
    int rc = vix_store_pending(store, row->id, since, &pending, diag);
    if (rc < 0)
        return rc;
    size_t per = prev && prev->n_ents ? prev->bytes / prev->n_ents : VIX__DELTA_ENTITY_GUESS;
    size_t have = prev ? prev->bytes : 0;
    *ret_held = have + (size_t)pending * per > r->delta_max_bytes;
    return ERD_OK;
}

/* One catalog of the new view.  A base is (re)loaded when the metadata
 * names another index than the one served, unless a rebuild of ours is
 * about to install it (preloaded carries it when it is). */
static int vix__sync_one(vix_resolver *r, const vix__row *row, const vix__catalog *cur,
                         vix__base *preloaded, vix_view *nv, erd_diag *diag)
{
    vix_index_meta meta;
    vix__base *base = NULL;
    vix__delta *prev = NULL, *delta = NULL;
    int rc = vix_store_meta_get(r->store, row->id, &meta, diag);
    if (rc == ERD_ENOINDEX)
        return ERD_OK; /* imported but never built: not served */
    if (rc < 0) {
        if (cur)
            vix__keep(nv, cur);
        return rc;
    }
    bool same = cur && strcmp(cur->base->file, meta.path) == 0 &&
                cur->base->built_at == meta.built_at;
    if (!cur && !(preloaded && strcmp(preloaded->file, meta.path) == 0) &&
        vix__broken_same(r, row->name, &meta)) {
        rc = ERD_OK; /* reported already; not loaded again every sync */
        goto out;
    }
    if (preloaded && strcmp(preloaded->file, meta.path) == 0) {
        base = preloaded;
        atomic_fetch_add(&base->refs, 1);
    } else if (same || (cur && vix__job_running_for(r, row->name))) {
        base = cur->base;
        atomic_fetch_add(&base->refs, 1);
        prev = cur->delta;
    } else {
        rc = vix__base_load(r, r->store, row->id, row->name, &meta, &base, diag);
        if (rc < 0) {
            if (cur)
                vix__keep(nv, cur);
            else
                vix__broken_note(r, row->name, &meta, rc, diag);
            goto out;
        }
    }
    bool held = false;
    rc = vix__delta_fits(r, r->store, row, base, prev, &held, diag);
    if (rc == ERD_OK && held) {
        delta = prev;
        if (delta)
            atomic_fetch_add(&delta->refs, 1);
    } else if (rc == ERD_OK) {
        rc = vix__delta_next(r, r->store, row->id, base, prev, row->generation, &delta, diag);
    }
    if (rc < 0) {
        /* stale but whole: what was served goes on being served */
        if (cur)
            vix__keep(nv, cur);
        vix__base_unref(base);
        goto out;
    }
    const char *name = vix__intern_str(r, row->name);
    if (!name) {
        vix__base_unref(base);
        vix__delta_unref(delta);
        rc = erd_fail(diag, ERD_ENOMEM, "out of memory");
        if (cur)
            vix__keep(nv, cur);
        goto out;
    }
    nv->catalogs[nv->n_catalogs++] =
        (vix__catalog){.name = name, .base = base, .delta = delta, .held = held};
    vix__broken_note(r, row->name, NULL, ERD_OK, NULL);
out:
    vix_index_meta_clear(&meta);
    return rc;
}

static int vix__sync_ex(vix_resolver *r, const char *only, vix__base *preloaded,
                        bool *ret_catalog_only, erd_diag *diag)
{
    vix__rows rows = {0};
    vix_view *nv = NULL, *cur = NULL;
    int rc, first_err = ERD_OK;
    erd_diag first = {0};

    pthread_mutex_lock(&r->sync_mu);
    rc = vix_store_begin_read(r->store, diag);
    if (rc < 0)
        goto out;
    rc = vix_store_catalog_foreach(r->store, vix__collect_row, &rows, diag);
    if (rc != 0) {
        rc = rc > 0 ? erd_fail(diag, ERD_ENOMEM, "out of memory") : rc;
        goto out;
    }
    cur = vix_resolver_acquire(r);
    nv = calloc(1, sizeof *nv);
    if (nv)
        nv->catalogs = calloc(rows.n + cur->n_catalogs + 1, sizeof *nv->catalogs);
    if (!nv || !nv->catalogs) {
        rc = erd_fail(diag, ERD_ENOMEM, "out of memory");
        goto out;
    }
    atomic_init(&nv->refs, 1);
    if (only)
        for (size_t i = 0; i < cur->n_catalogs; i++)
            if (strcmp(cur->catalogs[i].name, only) != 0)
                vix__keep(nv, &cur->catalogs[i]);
    for (size_t i = 0; i < rows.n; i++) {
        if (only && strcmp(rows.v[i].name, only) != 0)
            continue;
        erd_diag d = {0};
        int err = vix__sync_one(r, &rows.v[i], vix__view_find(cur, rows.v[i].name), preloaded, nv,
                                &d);
        /* one catalog failing does not hold the others back */
        if (err < 0 && first_err == ERD_OK) {
            first_err = err;
            first = d;
        }
    }
    vix__publish(r, nv); /* the resolver takes nv's reference */
    nv = NULL;
    rc = first_err;
    if (ret_catalog_only)
        *ret_catalog_only = true;
    if (rc < 0 && diag)
        *diag = first;
out:
    vix_store_rollback(r->store);
    if (nv) {
        free(nv->catalogs);
        free(nv);
    }
    vix_view_release(cur);
    free(rows.v);
    pthread_mutex_unlock(&r->sync_mu);
    return rc;
}

static int vix__sync(vix_resolver *r, const char *only, vix__base *preloaded, erd_diag *diag)
{
    return vix__sync_ex(r, only, preloaded, NULL, diag);
}

int vix_resolver_sync(vix_resolver *r, const char *catalog, erd_diag *diag)
{
    if (!r)
        return erd_fail(diag, ERD_EINVAL, "no resolver");
    int rc = vix__sync(r, catalog, NULL, diag);
    if (r->delta_max == 0)
        return rc;
    /* A delta too large to search cheaply is folded into a fresh build. */
    vix_view *v = vix_resolver_acquire(r);
    for (size_t i = 0; i < v->n_catalogs; i++) {
        const vix__delta *d = v->catalogs[i].delta;
        bool due = v->catalogs[i].held ||
                   (d && (d->n_ents + d->n_masked > r->delta_max ||
                          (r->delta_max_bytes && d->bytes > r->delta_max_bytes)));
        if (due && !vix__bulk_streaming(r, v->catalogs[i].name))
            (void)vix_resolver_rebuild(r, v->catalogs[i].name, NULL);
    }
    vix_view_release(v);
    return rc;
}

/* ---- the texts behind an entity's phrases (explanations) ----
 * Only phones are kept in memory; the phrase a hypothesis matched is named
 * by walking the entity's name and aliases as the load did (same variants,
 * same order, duplicates by phones dropped) until its index comes up. */

#define VIX__PHRASES_SEEN_MAX 64

typedef struct vix__texts {
    vix_resolver *r;
    vix_phrase *scratch;
    size_t want, n_seen;
    uint8_t seen[VIX__PHRASES_SEEN_MAX][VIX_RR_TOKENS_MAX];
    size_t seen_n[VIX__PHRASES_SEEN_MAX];
    int alias;  /* the text being walked is an alias */
    char *buf;
    size_t cap;
    const char **ret_kind;
    int found;
} vix__texts;

static int vix__text_variant(void *user, const char *variant, size_t len, int derived)
{
    vix__texts *t = user;
    /* as vix__load_variant: the phoneme cache, then espeak-ng */
    int rc = vix_phrase_prepare(t->r->g2p, t->r->store, variant, len, t->scratch, NULL);
    if (rc < 0 && rc != ERD_EEMPTY)
        rc = vix_phrase_prepare(t->r->g2p, NULL, variant, len, t->scratch, NULL);
    if (rc < 0)
        return 0; /* the load skipped it too */
    uint8_t packed[VIX_RR_TOKENS_MAX];
    size_t n = vix_rerank_pack(t->scratch->tokens, t->scratch->n_tokens, packed, sizeof packed);
    for (size_t i = 0; i < t->n_seen; i++)
        if (t->seen_n[i] == n && memcmp(t->seen[i], packed, n) == 0)
            return 0;
    if (t->n_seen == VIX__PHRASES_SEEN_MAX)
        return 1;
    if (t->n_seen == t->want) {
        snprintf(t->buf, t->cap, "%.*s", (int)len, variant);
        *t->ret_kind = derived ? (t->alias ? "alias short form" : "name short form")
                               : (t->alias ? "alias" : "name");
        t->found = 1;
        return 1;
    }
    memcpy(t->seen[t->n_seen], packed, n);
    t->seen_n[t->n_seen++] = n;
    return 0;
}

static int vix__text_walk(void *user, const char *text)
{
    vix__texts *t = user;
    int rc = vix_phrase_variants(text, vix__text_variant, t);
    t->alias = 1; /* the name comes first, aliases after */
    return rc;
}

static int vix__text_entity(void *user, const vix_entity *e)
{
    return vix_entity_texts(e, vix__text_walk, user);
}

int vix_resolver_analyze(vix_resolver *r, const char *text, size_t len, vix_phrase *ret,
                         char *ret_ipa, size_t ipa_cap, erd_diag *diag)
{
    return vix_phrase_analyze(r->g2p, text, len, ret, ret_ipa, ipa_cap, diag);
}

int vix_resolver_phrase_text(vix_resolver *r, const char *catalog, const char *ext_id,
                             size_t phrase, char *buf, size_t cap, const char **ret_kind,
                             erd_diag *diag)
{
    vix__texts *t = calloc(1, sizeof *t);
    vix_phrase *scratch = malloc(sizeof *scratch);
    int64_t catalog_id;
    int rc = ERD_OK;
    if (!t || !scratch) {
        rc = erd_fail(diag, ERD_ENOMEM, "out of memory");
        goto out;
    }
    *t = (vix__texts){.r = r, .scratch = scratch, .want = phrase, .buf = buf, .cap = cap,
                      .ret_kind = ret_kind};
    pthread_mutex_lock(&r->sync_mu); /* the resolver's store is used under it */
    rc = vix_store_catalog_find(r->store, catalog, &catalog_id, diag);
    if (rc == ERD_OK)
        rc = vix_store_entity_get(r->store, catalog_id, ext_id, vix__text_entity, t, diag);
    pthread_mutex_unlock(&r->sync_mu);
    if (rc >= 0 && !t->found)
        rc = erd_fail(diag, ERD_ENOTFOUND, "entity %s has no phrase %zu (changed since?)", ext_id,
                      phrase);
    else if (rc > 0)
        rc = ERD_OK;
out:
    free(t);
    free(scratch);
    return rc;
}

/* ---- background rebuilds ---- */

typedef struct vix__job_arg {
    vix_resolver *r;
    char name[72];
} vix__job_arg;

static vix__job *vix__job_for(vix_resolver *r, const char *name)
{
    for (size_t i = 0; i < r->n_jobs; i++)
        if (strcmp(r->jobs[i].name, name) == 0)
            return &r->jobs[i];
    vix__job *j = realloc(r->jobs, (r->n_jobs + 1) * sizeof *j);
    if (!j)
        return NULL;
    r->jobs = j;
    j = &r->jobs[r->n_jobs++];
    memset(j, 0, sizeof *j);
    snprintf(j->name, sizeof j->name, "%s", name);
    return j;
}

/* Loads the index the build just recorded, outside every lock, so syncs
 * (and the writes waiting on them) go on while it loads. */
static int vix__job_load(vix_resolver *r, const char *name, vix__base **ret, erd_diag *diag)
{
    vix_store *store = NULL;
    vix_index_meta meta = {0};
    int64_t id;
    int rc = vix_store_open(r->db_path, VIX_STORE_READONLY, &store, diag);
    if (rc == ERD_OK)
        rc = vix_store_begin_read(store, diag);
    if (rc == ERD_OK)
        rc = vix_store_catalog_find(store, name, &id, diag);
    if (rc == ERD_OK)
        rc = vix_store_meta_get(store, id, &meta, diag);
    if (rc == ERD_OK)
        rc = vix__base_load(r, store, id, name, &meta, ret, diag);
    vix_index_meta_clear(&meta);
    vix_store_rollback(store);
    vix_store_close(store);
    return rc;
}

static void *vix__job_main(void *arg)
{
    vix__job_arg *ja = arg;
    vix_resolver *r = ja->r;
    erd_diag diag = {0};
    vix_build_result res = {0};
    vix__base *base = NULL;
    char encoder[128] = "", factory[128] = "", voice[64] = "";
    uint64_t t0 = vix__ns();

    /* The encoder the catalog is served with, so scores (and the
     * calibration fitted on them) stay what they were. */
    vix_view *v = vix_resolver_acquire(r);
    const vix__catalog *c = vix__view_find(v, ja->name);
    if (c)
        snprintf(encoder, sizeof encoder, "%s", pho_encoder_id(c->base->enc));
    vix_view_release(v);
    {
        vix_store *store = NULL;
        vix_index_meta meta;
        int64_t id;
        if (vix_store_open(r->db_path, VIX_STORE_READONLY, &store, NULL) == ERD_OK &&
            vix_store_catalog_find(store, ja->name, &id, NULL) == ERD_OK &&
            vix_store_meta_get(store, id, &meta, NULL) == ERD_OK) {
            snprintf(factory, sizeof factory, "%s", meta.factory);
            snprintf(voice, sizeof voice, "%s", meta.g2p_voice);
            vix_index_meta_clear(&meta);
        }
        vix_store_close(store);
    }
    vix_build_opts bo = {.db_path = r->db_path, .catalog = ja->name,
                         .encoder_spec = encoder[0] ? encoder : r->build_encoder,
                         .factory = factory[0] ? factory : r->build_factory,
                         .g2p_voice = voice[0] ? voice : r->g2p_voice, .cancel = &r->cancel};
    /* What the writes before it left free in malloc's arenas goes back
     * first: the build and then the new base come on top of it. */
    malloc_trim(0);
    int rc = vix_build(&bo, &res, &diag);
    /* The build's working set (every phrase, vector and the FAISS build)
     * is freed; hand it back before the new base loads beside the old. */
    malloc_trim(0);
    /* built and recorded: the next start loads it if we stop now */
    if (rc == ERD_OK && atomic_load(&r->cancel))
        rc = erd_fail(&diag, ERD_EBUSY, "shutting down before loading the new index");
    if (rc == ERD_OK)
        rc = vix__job_load(r, ja->name, &base, &diag);
    if (rc == ERD_OK)
        rc = vix__sync(r, ja->name, base, &diag);
    int64_t gen = base ? base->generation : 0;
    vix__base_unref(base);
    /* The replaced base and delta went back to malloc, much of it in
     * arenas glibc keeps; return it so a pod's RSS comes down after the
     * rebuild instead of staying at its peak. */
    malloc_trim(0);

    pthread_mutex_lock(&r->job_mu);
    vix__job *j = vix__job_for(r, ja->name);
    if (j) {
        j->st.state = rc == ERD_OK ? VIX_REBUILD_DONE : VIX_REBUILD_FAILED;
        j->st.finished_at = (int64_t)time(NULL);
        j->st.seconds = (double)(vix__ns() - t0) / 1e9;
        j->st.generation = gen;
        snprintf(j->st.error, sizeof j->st.error, "%s",
                 rc == ERD_OK ? "" : erd_diag_message(&diag, rc));
    }
    r->job_running = false;
    pthread_mutex_unlock(&r->job_mu);
    free(ja);
    return NULL;
}

int vix_resolver_rebuild(vix_resolver *r, const char *catalog, erd_diag *diag)
{
    if (!r || !vix_catalog_name_valid(catalog))
        return erd_fail(diag, ERD_EINVAL, "no resolver or bad catalog name");
    vix__job_arg *ja = calloc(1, sizeof *ja);
    if (!ja)
        return erd_fail(diag, ERD_ENOMEM, "out of memory");
    ja->r = r;
    snprintf(ja->name, sizeof ja->name, "%s", catalog);
    int rc = ERD_OK;
    pthread_mutex_lock(&r->job_mu);
    if (r->closing || r->job_running) {
        rc = erd_fail(diag, ERD_EBUSY, r->closing ? "shutting down"
                                                  : "a rebuild is already running; try again later");
        goto out;
    }
    if (r->job_joinable) {
        /* finished (job_running is false): this join does not wait */
        pthread_join(r->job_thread, NULL);
        r->job_joinable = false;
    }
    vix__job *j = vix__job_for(r, catalog);
    if (!j) {
        rc = erd_fail(diag, ERD_ENOMEM, "out of memory");
        goto out;
    }
    memset(&j->st, 0, sizeof j->st);
    j->st.state = VIX_REBUILD_RUNNING;
    j->st.started_at = (int64_t)time(NULL);
    int e = pthread_create(&r->job_thread, NULL, vix__job_main, ja);
    if (e != 0) {
        j->st.state = VIX_REBUILD_FAILED;
        snprintf(j->st.error, sizeof j->st.error, "cannot start a thread: %s", strerror(e));
        rc = erd_fail(diag, ERD_EINTERNAL, "cannot start a rebuild thread: %s", strerror(e));
        goto out;
    }
    ja = NULL; /* the thread owns it */
    r->job_joinable = true;
    r->job_running = true;
out:
    pthread_mutex_unlock(&r->job_mu);
    free(ja);
    return rc;
}

void vix_resolver_status(vix_resolver *r, const char *catalog, vix_serving_status *ret)
{
    vix_serving_status st = {0};
    vix_view *v = vix_resolver_acquire(r);
    const vix__catalog *c = vix__view_find(v, catalog);
    if (c) {
        st.served = true;
        st.index_generation = c->base->generation;
        st.served_generation = c->delta ? c->delta->generation : c->base->generation;
        st.built_at = c->base->built_at;
        st.index_entities = c->base->set.n_entities;
        st.index_vectors = vix_index_count(c->base->index);
        st.delta_entities = c->delta ? c->delta->n_ents : 0;
        st.masked = c->delta ? c->delta->n_masked : 0;
        st.delta_bytes = c->delta ? c->delta->bytes : 0;
        st.held = c->held;
        snprintf(st.encoder_id, sizeof st.encoder_id, "%s", pho_encoder_id(c->base->enc));
    }
    vix_view_release(v);
    pthread_mutex_lock(&r->job_mu);
    for (size_t i = 0; i < r->n_jobs; i++)
        if (strcmp(r->jobs[i].name, catalog) == 0) {
            st.rebuild = r->jobs[i].st;
            if (r->jobs[i].broken && !st.served) {
                st.load_error = r->jobs[i].broken_diag.code;
                snprintf(st.load_error_msg, sizeof st.load_error_msg, "%s",
                         r->jobs[i].broken_diag.msg);
            }
        }
    pthread_mutex_unlock(&r->job_mu);
    *ret = st;
}

int vix_resolver_retarget(vix_resolver *r, const char *db_path, erd_diag *diag)
{
    vix_store *store = NULL;
    char *path = strdup(db_path ? db_path : "");
    if (!path)
        return erd_fail(diag, ERD_ENOMEM, "out of memory");
    int rc = vix_store_open(path, VIX_STORE_READONLY, &store, diag);
    if (rc < 0) {
        free(path);
        return rc;
    }
    pthread_mutex_lock(&r->sync_mu);
    vix_store *old_store = r->store;
    char *old_path = r->db_path;
    r->store = store;
    r->db_path = path;
    pthread_mutex_unlock(&r->sync_mu);
    vix_store_close(old_store);
    free(old_path);
    return vix__sync(r, NULL, NULL, diag);
}

/* ---- open / close ---- */

static char *vix__dup(const char *s, const char *def)
{
    return strdup(s && *s ? s : def);
}

/* The learned ranker named by the rerank spec, found beside the channel
 * file; it must have been fitted under the rerank configuration in force,
 * whose id then names it too (a calibration is fitted on its scores). */
static int vix__ranker_open(vix_resolver *r, const char *channel_path, const char *name,
                            erd_diag *diag)
{
    char path[1024];
    const char *slash = strrchr(channel_path, '/');
    int dir = name[0] == '/' || !slash ? 0 : (int)(slash - channel_path + 1);
    if ((size_t)snprintf(path, sizeof path, "%.*s%s", dir, channel_path, name) >= sizeof path)
        return erd_fail(diag, ERD_ETOOLONG, "ranker path too long");
    if (!(r->ranker = malloc(sizeof *r->ranker)))
        return erd_fail(diag, ERD_ENOMEM, "out of memory");
    int rc = vix_ranker_load(path, r->ranker, diag);
    if (rc < 0)
        return rc;
    if (strcmp(r->ranker->rerank_id, r->rerank_id) != 0)
        return erd_fail(diag, ERD_EMISMATCH, "%s was fitted under rerank %.120s, not %.120s",
                        path, r->ranker->rerank_id, r->rerank_id);
    size_t len = strlen(r->rerank_id);
    snprintf(r->rerank_id + len, sizeof r->rerank_id - len, ",ranker=fnv1a64:%016llx",
             (unsigned long long)r->ranker->checksum);
    return ERD_OK;
}

void vix_resolver_set_rank_observer(vix_resolver *r, vix_rank_observer fn, void *ctx)
{
    r->rank_observer = fn;
    r->rank_observer_ctx = ctx;
}

int vix_resolver_open(const vix_resolver_opts *opts, vix_resolver **ret, erd_diag *diag)
{
    vix_resolver *r = calloc(1, sizeof *r);
    int rc;
    if (!r)
        return erd_fail(diag, ERD_ENOMEM, "out of memory");
    pthread_mutex_init(&r->view_mu, NULL);
    pthread_mutex_init(&r->sync_mu, NULL);
    pthread_mutex_init(&r->intern_mu, NULL);
    pthread_mutex_init(&r->job_mu, NULL);
    r->view = calloc(1, sizeof *r->view);
    r->db_path = vix__dup(opts->db_path, "");
    r->build_encoder = vix__dup(opts->build_encoder, "baseline");
    r->build_factory = vix__dup(opts->build_factory, "Flat");
    r->g2p_voice = vix__dup(opts->g2p_voice, "en-us");
    if (!r->view || !r->db_path || !r->build_encoder || !r->build_factory || !r->g2p_voice) {
        rc = erd_fail(diag, ERD_ENOMEM, "out of memory");
        goto out;
    }
    atomic_init(&r->view->refs, 1);
    atomic_init(&r->cancel, 0);
    r->delta_max = opts->delta_max;
    r->delta_max_bytes = opts->delta_max_bytes;
    r->candidates = opts->candidates ? opts->candidates : 64;
    if (r->candidates > VIX_CANDIDATES_MAX)
        r->candidates = VIX_CANDIDATES_MAX;

    r->g2p_cache_entries = opts->g2p_cache_entries;
    rc = pho_g2p_create(r->g2p_voice, opts->g2p_cache_entries, &r->g2p, diag);
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
            if (rc == ERD_OK && ro.ranker[0])
                rc = vix__ranker_open(r, path, ro.ranker, diag);
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
    rc = vix_store_open(r->db_path, VIX_STORE_READONLY, &r->store, diag);
    if (rc == ERD_EMISMATCH) {
        /* an older schema: one read-write open upgrades it in place */
        vix_store *rw = NULL;
        if (vix_store_open(r->db_path, 0, &rw, NULL) == ERD_OK) {
            vix_store_close(rw);
            rc = vix_store_open(r->db_path, VIX_STORE_READONLY, &r->store, diag);
        }
    }
    if (rc < 0)
        goto out;
    /* A catalog whose index is missing or damaged is left out (and
     * reported by vix_resolver_unavailable); the others are served. */
    bool catalog_only = false;
    rc = vix__sync_ex(r, NULL, NULL, &catalog_only, diag);
    if (rc < 0 && !catalog_only)
        goto out;
    rc = ERD_OK;
    *ret = r;
    r = NULL;
out:
    vix_resolver_close(r);
    return rc;
}

void vix_resolver_close(vix_resolver *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->job_mu);
    r->closing = true;
    atomic_store(&r->cancel, 1);
    bool join = r->job_joinable;
    r->job_joinable = false;
    pthread_mutex_unlock(&r->job_mu);
    /* a rebuild in progress stops at its next checkpoint (it uses
     * everything below); its catalog stays served from the old index
     * plus the delta at the next start */
    if (join)
        pthread_join(r->job_thread, NULL);
    if (r->view)
        vix_view_release(r->view);
    vix_store_close(r->store);
    pho_g2p_destroy(r->g2p);
    vix_rerank_destroy(r->rerank);
    free(r->ranker);
    free(r->calib);
    free(r->jobs);
    while (r->voices) {
        vix__voice *next = r->voices->next;
        pho_g2p_destroy(r->voices->g2p);
        free(r->voices);
        r->voices = next;
    }
    while (r->interned) {
        vix__intern *next = r->interned->next;
        free(r->interned);
        r->interned = next;
    }
    free(r->db_path);
    free(r->build_encoder);
    free(r->build_factory);
    free(r->g2p_voice);
    pthread_mutex_destroy(&r->view_mu);
    pthread_mutex_destroy(&r->sync_mu);
    pthread_mutex_destroy(&r->intern_mu);
    pthread_mutex_destroy(&r->job_mu);
    free(r);
}

/* Catalog i of the current view, or NULL past the end. */
static const char *vix__catalog_field(vix_resolver *r, size_t i, int encoder)
{
    const char *out = NULL;
    vix_view *v = vix_resolver_acquire(r);
    if (i < v->n_catalogs)
        out = encoder ? vix__intern_str(r, pho_encoder_id(v->catalogs[i].base->enc))
                      : v->catalogs[i].name;
    vix_view_release(v);
    return out;
}

int vix_resolver_calibrated(const vix_resolver *rc_, size_t i, erd_diag *diag)
{
    vix_resolver *r = (vix_resolver *)rc_; /* acquiring a view counts a reference */
    vix_view *v = vix_resolver_acquire(r);
    int rc = ERD_OK;
    if (i >= v->n_catalogs)
        rc = erd_fail(diag, ERD_ENOCATALOG, "no catalog %zu", i);
    else if (!r->calib)
        rc = erd_fail(diag, ERD_ENOTFOUND, "calibration off: scores are uncalibrated");
    else if (!r->calib_rerank_ok)
        rc = erd_fail(diag, ERD_EMISMATCH,
                      "calibration fitted with rerank %.90s; running %.90s: uncalibrated scores",
                      r->calib->rerank_id, r->rerank_id);
    else if (!v->catalogs[i].base->calibrated)
        rc = erd_fail(diag, ERD_EMISMATCH,
                      "catalog \"%.40s\" built with encoder %.70s, calibration fitted on %.70s: "
                      "uncalibrated scores",
                      v->catalogs[i].name, pho_encoder_id(v->catalogs[i].base->enc),
                      r->calib->encoder_id);
    vix_view_release(v);
    return rc;
}

int vix_view_no_match_threshold(const vix_resolver *r, const vix_view *view, const char *catalog,
                                double *ret)
{
    const vix__catalog *cat = vix__view_find(view, catalog);
    if (!cat)
        return ERD_ENOCATALOG;
    if (!cat->base->calibrated)
        return ERD_ENOTFOUND;
    *ret = r->calib->no_match_threshold;
    return ERD_OK;
}

const char *vix_resolver_catalog_encoder(const vix_resolver *r, size_t i)
{
    return vix__catalog_field((vix_resolver *)r, i, 1);
}

void vix_resolver_rerank_id(const vix_resolver *r, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s", r->rerank_id);
}

size_t vix_resolver_catalog_count(const vix_resolver *r)
{
    vix_view *v = vix_resolver_acquire((vix_resolver *)r);
    size_t n = v->n_catalogs;
    vix_view_release(v);
    return n;
}

const char *vix_resolver_catalog_name(const vix_resolver *r, size_t i)
{
    return vix__catalog_field((vix_resolver *)r, i, 0);
}

void vix_resolver_g2p_stats(vix_resolver *r, uint64_t *ret_lookups, uint64_t *ret_hits)
{
    pho_g2p_stats st = {0};
    pho_g2p_get_stats(r->g2p, &st);
    *ret_lookups = st.lookups;
    *ret_hits = st.hits;
    pthread_mutex_lock(&r->intern_mu);
    for (vix__voice *v = r->voices; v; v = v->next) {
        pho_g2p_get_stats(v->g2p, &st);
        *ret_lookups += st.lookups;
        *ret_hits += st.hits;
    }
    pthread_mutex_unlock(&r->intern_mu);
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
    const vix__entity *ent; /* in the view the resolve holds */
    size_t rank_first;      /* place in the first stage's list, the rerank's candidate index */
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
static void vix__agreement(const vix_rerank_hyp *hyps, size_t n_hyps, const vix__ranked *found,
                           size_t n_found, const double *by_hyp, double *ret_agree)
{
    size_t m = n_found < VIX_CALIB_AGREE_RANKS ? n_found : VIX_CALIB_AGREE_RANKS;
    double wsum = 0;
    for (size_t i = 0; i < n_found; i++)
        ret_agree[i] = 0;
    for (size_t h = 0; h < n_hyps; h++) {
        double best = -1;
        size_t best_c = 0;
        /* by_hyp holds each candidate's best phrase, in first-stage order:
         * the first of equals in reranked order wins, as phrase by phrase */
        for (size_t c = 0; c < m; c++) {
            double s = by_hyp[h * n_found + found[c].rank_first];
            if (found[c].ent->n_phrases && s > best) {
                best = s;
                best_c = c;
            }
        }
        if (best >= 0)
            ret_agree[best_c] += hyps[h].weight;
        wsum += hyps[h].weight;
    }
    for (size_t i = 0; wsum > 0 && i < m; i++)
        ret_agree[i] /= wsum;
}

/* The learned second stage: replaces each candidate's blended score with
 * the ranker's probability, and shows the features to an observer. */
static int vix__learned_rank(vix_resolver *r, const vix_rerank_hyp *hyps, size_t n_hyps,
                             const vix_rerank_cand *cands, vix__ranked *found, size_t n_found,
                             const double *by_hyp, erd_diag *diag)
{
    double *x = malloc(n_found * (VIX_RANKER_NFEAT + 1) * sizeof *x);
    vix_result *seen = r->rank_observer ? malloc(n_found * sizeof *seen) : NULL;
    if (!x || (r->rank_observer && !seen)) {
        free(x);
        free(seen);
        return erd_fail(diag, ERD_ENOMEM, "out of memory");
    }
    vix_rank_input in = {hyps, n_hyps, cands, n_found, by_hyp};
    vix_rank_features(&in, x);
    if (r->rank_observer) {
        for (size_t i = 0; i < n_found; i++)
            seen[i] = found[i].res;
        r->rank_observer(r->rank_observer_ctx, x, seen, n_found);
    }
    if (r->ranker) {
        double *p = x + n_found * VIX_RANKER_NFEAT;
        vix_ranker_probs(r->ranker, x, n_found, p);
        for (size_t i = 0; i < n_found; i++)
            found[i].res.score = p[i];
    }
    free(x);
    free(seen);
    return ERD_OK;
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
    /* Without a view of its own, a caller's results point into the
     * resolver's current one: fine for tools that never sync. */
    vix_view *v = vix_resolver_acquire(r);
    int rc = vix_resolve_in(r, v, catalog, hyps, n, k, ret_results, ret_n, timing, ret_features,
                            diag);
    vix_view_release(v);
    return rc;
}

/* Whether rowid is masked out of the base by the delta. */
static bool vix__masked(const vix__delta *d, int64_t rowid)
{
    return d && vix__i64_has(d->masked, d->n_masked, rowid);
}

static const vix__entity *vix__delta_find(const vix__delta *d, int64_t rowid)
{
    size_t lo = 0, hi = d ? d->n_ents : 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (d->ents[mid]->set.entities[0].rowid < rowid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return d && lo < d->n_ents && d->ents[lo]->set.entities[0].rowid == rowid
               ? &d->ents[lo]->set.entities[0]
               : NULL;
}

/* The open-set features of the first n_out results, and with ex their
 * alignments: each result's best phrase per hypothesis, aligned again with
 * its steps (a few alignments per result, against the rerank's thousands). */
static int vix__fits(const vix_resolver *r, const vix_rerank_hyp *hyps, size_t used,
                     const vix__ranked *found, size_t n_out, const uint16_t *picks,
                     size_t n_found, vix_calib_fitness *ret_fit, vix_explain *ex, erd_diag *diag)
{
    vix_explain_align *work = malloc(sizeof *work);
    int rc = work ? ERD_OK : ERD_ENOMEM;
    if (ex)
        ex->n_results = n_out; /* from here on vix_explain_free frees their alignments */
    for (size_t i = 0; rc == ERD_OK && i < n_out; i++) {
        vix_explain_align *align = NULL;
        if (ex) {
            align = ex->results[i].align = calloc(used, sizeof *align);
            if (!align) {
                rc = ERD_ENOMEM;
                break;
            }
        }
        rc = vix_explain_fit(r->rerank, hyps, used, found[i].ent->phrases, found[i].ent->n_phrases,
                             picks + found[i].rank_first, n_found, work, &ret_fit[i], align);
    }
    free(work);
    return rc < 0 ? erd_fail(diag, rc, "out of memory aligning the results") : ERD_OK;
}

/* What an explanation tells of the hypotheses and the scores' options. */
static void vix__explain_hyps(const vix_resolver *r, vix_explain *ex, const vix_phrase *ph,
                              size_t index, const vix_rerank_hyp *rr_hyp, double w)
{
    vix_explain_hyp *eh = &ex->hyps[ex->n_hyps++];
    eh->index = index;
    memcpy(eh->text, ph->text, sizeof eh->text);
    eh->weight = w;
    eh->n_phones = rr_hyp ? rr_hyp->n
                          : vix_rerank_pack(ph->tokens, ph->n_tokens, eh->phones, VIX_RR_TOKENS_MAX);
    if (rr_hyp)
        memcpy(eh->phones, rr_hyp->tokens, rr_hyp->n);
    ex->reranked = r->rerank != NULL;
    if (r->rerank) {
        ex->rerank_weight = vix_rerank_get_opts(r->rerank)->weight;
        ex->temperature = vix_rerank_get_opts(r->rerank)->temperature;
    }
}

int vix_resolve_in(vix_resolver *r, vix_view *view, const char *catalog,
                   const vix_hypothesis *hyps, size_t n, size_t k, vix_result *ret_results,
                   size_t *ret_n, vix_timing *timing, double *ret_features, erd_diag *diag)
{
    return vix_resolve_explain(r, view, catalog, hyps, n, k, ret_results, ret_n, timing,
                               ret_features, NULL, diag);
}

int vix_resolve_explain(vix_resolver *r, vix_view *view, const char *catalog,
                        const vix_hypothesis *hyps, size_t n, size_t k, vix_result *ret_results,
                        size_t *ret_n, vix_timing *timing, double *ret_features,
                        vix_explain **ret_explain, erd_diag *diag)
{
    const vix__catalog *cat = NULL;
    vix_explain *ex = NULL;
    vix_calib_fitness *fits = NULL;
    vix_timing tm = {0};
    float *q = NULL, *v = NULL, *scores = NULL, *dscores = NULL;
    int64_t *ids = NULL, *dids = NULL;
    vix_phrase *ph = NULL;
    uint8_t *hyp_phones = NULL;
    vix_rerank_hyp *rr_hyps = NULL;
    vix_rerank_cand *rr_cands = NULL;
    vix__ranked *found = NULL;
    double *cal = NULL, *by_hyp = NULL;
    uint16_t *picks = NULL; /* per hypothesis and candidate, the phrase that scored best */
    uint64_t *seen = NULL;
    size_t used = 0, n_phones = 0;
    double wsum = 0;
    int rc = ERD_OK;

    cat = vix__view_find(view, catalog);
    if (!cat)
        return vix__not_served(r, catalog, diag);
    const vix__base *base = cat->base;
    const vix__delta *delta = cat->delta;
    if (n == 0 || k == 0)
        return erd_fail(diag, ERD_EINVAL, "need at least one hypothesis and k >= 1");
    if (n > VIX_HYPS_MAX)
        n = VIX_HYPS_MAX;

    size_t dim = pho_encoder_dim(base->enc);
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
    /* Base results the delta masks are dropped: fetch that many more. */
    size_t cand_base = cand + (delta ? delta->n_masked : 0);
    if (cand_base > VIX_CANDIDATES_MAX)
        cand_base = VIX_CANDIDATES_MAX;
    size_t cand_delta = delta && delta->index ? cand : 0;
    q = calloc(dim, sizeof *q);
    v = malloc(dim * sizeof *v);
    scores = malloc(cand_base * sizeof *scores);
    ids = malloc(cand_base * sizeof *ids);
    dscores = malloc((cand_delta + 1) * sizeof *dscores);
    dids = malloc((cand_delta + 1) * sizeof *dids);
    ph = malloc(sizeof *ph);
    found = malloc(want * sizeof *found);
    int calibrate = ret_features || base->calibrated || ret_explain;
    if (calibrate)
        cal = malloc(want * (3 + VIX_CALIB_NFEAT + 1) * sizeof *cal);
    if (calibrate && r->rerank)
        fits = malloc((k < want ? k : want) * sizeof *fits);
    if (ret_explain && vix_explain_create(n, k, &ex, diag) < 0) {
        rc = ERD_ENOMEM;
        goto out;
    }
    if (r->rerank) {
        hyp_phones = malloc(n * VIX_RR_TOKENS_MAX);
        rr_hyps = malloc(n * sizeof *rr_hyps);
        rr_cands = malloc(want * sizeof *rr_cands);
        if (calibrate || r->ranker || r->rank_observer)
            by_hyp = malloc(n * want * sizeof *by_hyp);
        if (calibrate)
            picks = malloc(n * want * sizeof *picks);
    }
    /* open addressing over the ids taken so far, at most half full */
    size_t seen_cap = 16;
    while (seen_cap < 2 * want)
        seen_cap *= 2;
    seen = calloc(seen_cap, sizeof *seen);
    if (!q || !v || !scores || !ids || !dscores || !dids || !ph || !found || !seen ||
        (calibrate && (!cal || (r->rerank && !fits))) ||
        (r->rerank && (!hyp_phones || !rr_hyps || !rr_cands ||
                       ((calibrate || r->ranker || r->rank_observer) && !by_hyp) ||
                       (calibrate && !picks)))) {
        rc = erd_fail(diag, ERD_ENOMEM, "out of memory");
        goto out;
    }

    /* The weighted sum of the hypotheses' unit vectors: its inner product
     * with an entity vector is the weighted sum of their cosines, so one
     * search scores every entity against the whole n-best list. */
    for (size_t i = 0; i < n; i++) {
        uint64_t t0 = vix__ns();
        rc = vix_phrase_prepare(base->g2p, NULL, hyps[i].text, hyps[i].len, ph, diag);
        tm.g2p_ns += vix__ns() - t0;
        if (rc == ERD_EEMPTY)
            continue;
        if (rc < 0)
            goto out;
        t0 = vix__ns();
        pho_phrase phrase = {.text = ph->text, .tokens = ph->tokens, .n_tokens = ph->n_tokens};
        rc = pho_encoder_encode(base->enc, &phrase, v);
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
        if (ex)
            vix__explain_hyps(r, ex, ph, i, r->rerank ? &rr_hyps[used] : NULL, w);
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
    rc = vix_index_search(base->index, 1, q, cand_base, scores, ids, diag);
    if (rc == ERD_OK && cand_delta)
        rc = vix_index_search(delta->index, 1, q, cand_delta, dscores, dids, diag);
    tm.search_ns = vix__ns() - t0;
    if (rc < 0)
        goto out;

    /* An entity owns one vector per name and spoken variant: keep its best.
     * Both lists come best first, so merging them visits every id's best
     * vector first. */
    t0 = vix__ns();
    size_t n_found = 0, bi = 0, di = 0;
    while (n_found < want) {
        bool from_base = bi < cand_base && ids[bi] >= 0;
        bool from_delta = di < cand_delta && dids[di] >= 0;
        if (from_base && from_delta)
            from_base = scores[bi] >= dscores[di];
        else if (!from_base && !from_delta)
            break;
        int64_t id = from_base ? ids[bi] : dids[di];
        float score = from_base ? scores[bi++] : dscores[di++];
        /* slot value id + 1: never the empty 0, as a negative id ended
         * the lists above */
        size_t slot = (size_t)erd_fnv1a64(ERD_FNV1A64_OFFSET, &id, sizeof id) & (seen_cap - 1);
        while (seen[slot] && seen[slot] != (uint64_t)id + 1)
            slot = (slot + 1) & (seen_cap - 1);
        if (seen[slot])
            continue;
        const vix__entity *e = from_base ? (vix__masked(delta, id) ? NULL
                                                                   : vix__set_find(&base->set, id))
                                         : vix__delta_find(delta, id);
        if (!e)
            continue; /* vector of an entity deleted or replaced since the build */
        seen[slot] = (uint64_t)id + 1; /* a masked base id may come again from the delta */
        double s = (double)score * norm / wsum; /* weighted mean cosine */
        s = s < 0 ? 0 : s > 1 ? 1 : s;
        found[n_found] = (vix__ranked){
            .res = {.rowid = e->rowid, .ext_id = e->ext_id, .name = e->name, .score = s},
            .first = s,
            .ent = e,
            .rank_first = n_found};
        n_found++;
    }
    tm.aggregate_ns = vix__ns() - t0;
    if (r->rerank) {
        t0 = vix__ns();
        for (size_t i = 0; i < n_found; i++)
            rr_cands[i] = (vix_rerank_cand){.phrases = found[i].ent->phrases,
                                            .n_phrases = found[i].ent->n_phrases,
                                            .first = found[i].first};
        /* by_hyp is for the ranker and, with picks, for the calibration:
         * agreement, and which phrase each result's alignment features
         * come from */
        vix_rerank_score_best(r->rerank, rr_hyps, used, rr_cands, n_found, by_hyp, picks);
        for (size_t i = 0; i < n_found; i++) {
            double s = rr_cands[i].score;
            found[i].res.score = s < 0 ? 0 : s > 1 ? 1 : s;
        }
        if ((r->ranker || r->rank_observer) && n_found &&
            (rc = vix__learned_rank(r, rr_hyps, used, rr_cands, found, n_found, by_hyp, diag)) < 0)
            goto out;
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
            vix__agreement(rr_hyps, used, found, n_found, by_hyp, agree);
        if (r->rerank &&
            (rc = vix__fits(r, rr_hyps, used, found, n_out, picks, n_found, fits, ex, diag)) < 0)
            goto out;
        vix_calib_features(sc, first, agree, r->rerank ? fits : NULL, n_out, n_found, used,
                           n_phones, x);
        if (ret_features)
            memcpy(ret_features, x, n_out * VIX_CALIB_NFEAT * sizeof *x);
        if (base->calibrated) {
            vix_calib_probs(r->calib, x, n_out, p);
            for (size_t i = 0; i < n_out; i++)
                ret_results[i].score = p[i];
        }
        tm.aggregate_ns += vix__ns() - t0;
    }
    for (size_t i = 0; ex && i < n_out; i++) {
        vix_explain_result *er = &ex->results[i];
        er->first = found[i].first;
        er->second = r->rerank ? rr_cands[found[i].rank_first].second : 0;
        er->rerank = found[i].res.score;
        memcpy(er->features, cal + 3 * want + i * VIX_CALIB_NFEAT, sizeof er->features);
        er->score = ret_results[i].score;
        ex->n_results = i + 1;
        ex->calibrated = base->calibrated;
    }
    *ret_n = n_out;
    if (timing)
        *timing = tm;
    if (ret_explain) {
        *ret_explain = ex;
        ex = NULL;
    }
out:
    vix_explain_free(ex);
    free(fits);
    free(q);
    free(v);
    free(scores);
    free(ids);
    free(dscores);
    free(dids);
    free(ph);
    free(found);
    free(cal);
    free(by_hyp);
    free(picks);
    free(seen);
    free(hyp_phones);
    free(rr_hyps);
    free(rr_cands);
    return rc;
}
