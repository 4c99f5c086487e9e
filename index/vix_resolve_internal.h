/* What the files of the resolver share: its types (the view, base, delta and
 * catalog a resolve reads; the resolver itself) and the helpers one file
 * defines for another.  Internal to index/: not installed, not for server/.
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
#ifndef VIX_RESOLVE_INTERNAL_H
#define VIX_RESOLVE_INTERNAL_H

#include "index/vix_resolve.h"
#include "proto/erd_clock.h"

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
#include "index/vix_command.h"
#include "index/vix_order.h"
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
/* the rerank aligns at least this many candidates, whatever its budget */
#define VIX_RERANK_FLOOR 32

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
    /* a table file mapped (vix_table.c): the arrays point into it and are
     * not the heap's; NULL for a set read from the store */
    void *map;
    size_t map_len;
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
    vix_command *command; /* NULL: the calibration's command feature is 0 */
    vix_order *order;     /* NULL: the top results stay in the rerank's order */
    vix_rank_observer rank_observer;
    void *rank_observer_ctx;
    char rerank_id[VIX_CALIB_ID_MAX];
    vix_calib *calib;   /* NULL: uncalibrated scores */
    int calib_rerank_ok; /* calib was fitted under this rerank configuration */
    char *db_path;
    char *build_encoder, *build_factory, *g2p_voice;
    char *ivf_search; /* "" for each index file's own parameters */
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

/* One entity's vectors exactly as vix_build makes them: one per distinct
 * normalised variant, shortened forms scaled by VIX_DERIVED_SCALE unless
 * the same text is also said in full. */
typedef struct vix__vecs {
    const pho_encoder *enc;
    pho_g2p *g2p;
    vix_phrase *scratch;
    char (*texts)[PHO_TEXT_MAX];
    unsigned char *derived, *second; /* second: the text's second pronunciation */
    float *vecs;
    size_t n, cap;
    erd_diag *diag;
    int rc;
} vix__vecs;

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

typedef struct vix__row {
    int64_t id;
    int64_t generation;
    char name[72];
} vix__row;

typedef struct vix__rows {
    vix__row *v;
    size_t n, cap;
} vix__rows;

/* Bytes a delta entry is taken to hold before any was measured: one
 * entity, two variants of a 128-dimension encoder, entry and index. */
#define VIX__DELTA_ENTITY_GUESS 2560

/* The texts behind an entity's phrases (explanations):
 * Only phones are kept in memory; the phrase a hypothesis matched is named
 * by walking the entity's name and aliases as the load did (same variants,
 * same order, duplicates by phones dropped) until its index comes up. */
#define VIX__PHRASES_SEEN_MAX 64

typedef struct vix__texts {
    vix_resolver *r;
    pho_g2p *g2p; /* the catalog's */
    vix_phrase *scratch;
    size_t want, n_seen;
    uint8_t seen[VIX__PHRASES_SEEN_MAX][VIX_RR_TOKENS_MAX];
    size_t seen_n[VIX__PHRASES_SEEN_MAX];
    int alias;  /* the text being walked is an alias */
    const char *variant; /* the variant whose pronunciations are walked */
    size_t variant_len;
    char *buf;
    size_t cap;
    const char **ret_kind;
    int found;
} vix__texts;

typedef struct vix__job_arg {
    vix_resolver *r;
    char name[72];
} vix__job_arg;

/* vix_view.c */
const char *vix__intern_str(vix_resolver *r, const char *s);
void vix__base_unref(vix__base *b);
void vix__dent_unref(vix__dent *d);
void vix__delta_unref(vix__delta *d);
void vix__publish(vix_resolver *r, vix_view *v);
int vix__load_variant(void *user, const char *variant, size_t len, int derived);
int vix__load_entity(void *user, const vix_entity *e);
/* A set built entity by entity from phrases already prepared (the build's
 * own pass): begin, add each phrase, end; ERD_ENOMEM leaves it to be freed. */
int vix__set_entity_begin(vix__set *c, const vix_entity *e, size_t *ret_first);
int vix__set_add_phrase(vix__set *c, size_t first, const vix_phrase *ph, int derived);
void vix__set_entity_end(vix__set *c);
int vix__cmp_rowid(const void *a, const void *b);
void vix__fit(void **p, size_t *cap, size_t n, size_t size);
size_t vix__set_bytes(const vix__set *c);
void vix__set_finish(vix__set *c);
const vix__entity *vix__set_find(const vix__set *c, int64_t rowid);
int vix__base_load(vix_resolver *r, vix_store *store, int64_t catalog_id, const char *name,
                   const vix_index_meta *meta, vix__base **ret, erd_diag *diag);
const vix__catalog *vix__view_find(const vix_view *v, const char *name);
void vix__keep(vix_view *nv, const vix__catalog *c);

/* Reads catalog_id's entities from store (inside the caller's read
 * snapshot), with their rerank phrases in g2p's phones when phrases is set. */
int vix__set_load(vix_store *store, int64_t catalog_id, pho_g2p *g2p, bool phrases,
                  vix__set *ret, erd_diag *diag);
void vix__set_free(vix__set *c);

/* vix_table.c: a base's entity set in a file beside its index */
int vix__table_write(const vix__set *c, const char *path, const char *index_path,
                     int64_t generation, erd_diag *diag);
/* ERD_ENOTFOUND: no table, or one made for another index or generation;
 * ERD_ECORRUPT: one that does not add up.  Without phrases every entity's
 * phrases are dropped, as a resolver without rerank loads them. */
int vix__table_map(const char *path, const char *index_path, int64_t generation, bool phrases,
                   vix__set *ret, erd_diag *diag);
void vix__table_remove(const char *index_path);

/* vix_delta.c */
int vix__delta_next(vix_resolver *r, vix_store *store, int64_t catalog_id,
                    const vix__base *base, vix__delta *prev, int64_t now,
                    vix__delta **ret, erd_diag *diag);
int vix__delta_fits(vix_resolver *r, vix_store *store, const vix__row *row,
                    const vix__base *base, const vix__delta *prev, bool *ret_held,
                    erd_diag *diag);
bool vix__masked(const vix__delta *d, int64_t rowid);
const vix__entity *vix__delta_find(const vix__delta *d, int64_t rowid);

/* vix_jobs.c */
int vix__sync_ex(vix_resolver *r, const char *only, vix__base *preloaded,
                 bool *ret_catalog_only, erd_diag *diag);

#endif
