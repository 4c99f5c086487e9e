/* Resolution: n-best hypotheses in, ranked catalog entities out.
 *
 * A resolver loads every built catalog of a store into memory (entity ids and
 * names, the FAISS index, the encoder with its fitted state) so a resolve
 * touches neither SQLite nor the disk.  vix_resolve is thread-safe; G2P is
 * serialised inside phonetics/.
 *
 * Catalogs stay live: vix_resolver_sync serves entities written since a
 * catalog's index was built from a small delta index beside it (deleted and
 * replaced ones masked out of the main index), and vix_resolver_rebuild
 * builds a fresh index in a background thread and swaps it in.  Resolves
 * hold a reference-counted view of the catalogs for their whole run, so a
 * swap never blocks them nor pulls data from under them. */
#ifndef VIX_RESOLVE_H
#define VIX_RESOLVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/erd_error.h"

typedef struct vix_resolver vix_resolver;

typedef struct vix_resolver_opts {
    const char *db_path;
    const char *g2p_voice;   /* default "en-us+cmu" */
    size_t g2p_cache_entries;
    size_t candidates;       /* vectors fetched per query before grouping by entity (default 64) */
    /* Second-stage rerank (index/vix_rerank.h spec): NULL or "off" for the
     * vector search alone, else "CHANNEL_FILE[,weight=W,...]".  Loading a
     * catalog then also keeps its phrases' phonemes in memory. */
    const char *rerank;
    /* Calibrated scores (index/vix_calib.h): NULL or "off" for the
     * uncalibrated blend, else a calibration file.  A damaged file fails the
     * open; a file fitted under another rerank configuration, or a catalog
     * built with another encoder than the file records, is served with
     * uncalibrated scores (vix_resolver_calibrated says why). */
    const char *calibration;
    /* Background rebuilds of a catalog never built before (else its index's
     * own encoder and factory are kept); defaults "baseline", "Flat". */
    const char *build_encoder;
    const char *build_factory;
    /* Search parameters set on every erd IVF index loaded (vix_ivf.h:
     * "nprobe=N,gprobe=N,rescore=N"), NULL or "" for the file's own. */
    const char *ivf_search;
    /* A sync whose delta (entities written plus masked) grows past this
     * starts a rebuild of the catalog; 0 = never. */
    size_t delta_max;
    /* Heap a catalog's delta may hold (0 = no limit; only with delta_max):
     * past it the delta stops growing, a rebuild starts, and the catalog is
     * served as of the delta's generation until the rebuild is in. */
    size_t delta_max_bytes;
} vix_resolver_opts;

typedef struct vix_hypothesis {
    const char *text;
    size_t len;
    double score;    /* recogniser score, larger is better */
    bool has_score;
} vix_hypothesis;

typedef struct vix_result {
    int64_t rowid;
    const char *ext_id; /* owned by the resolver; valid while it lives */
    const char *name;   /* ditto */
    /* In [0, 1], larger is better.  With a calibration in force, the
     * probability that this result is the entity meant: non-increasing with
     * rank, summing to at most 1 over the results. */
    double score;
} vix_result;

/* Per-stage wall time of one resolve, nanoseconds. */
typedef struct vix_timing {
    uint64_t normalize_ns, g2p_ns, encode_ns, search_ns, aggregate_ns, rerank_ns;
} vix_timing;

int vix_resolver_open(const vix_resolver_opts *opts, vix_resolver **ret, erd_diag *diag);
/* Waits for a rebuild in progress to finish.  Accepts NULL. */
void vix_resolver_close(vix_resolver *resolver);

/* The catalogs as served at one moment.  Result strings of a resolve made
 * in a view stay valid until the view is released. */
typedef struct vix_view vix_view;
/* Never fails; every acquire needs one release. */
vix_view *vix_resolver_acquire(vix_resolver *resolver);
void vix_view_release(vix_view *view); /* accepts NULL */

/* Brings catalog (NULL: every catalog) up to date with the store: new and
 * deleted catalogs, an index built by someone else, and entities written or
 * deleted since (served from the delta).  On failure the catalog goes on
 * being served as it was.  Thread-safe; syncs run one at a time. */
int vix_resolver_sync(vix_resolver *resolver, const char *catalog, erd_diag *diag);

/* Serves another database from now on (a replica's newly unpacked
 * snapshot): the next view is built from it, while resolves go on against
 * the current one.  Indexes recorded under the same file name and build
 * time are kept rather than loaded again.  Not while a rebuild runs. */
int vix_resolver_retarget(vix_resolver *resolver, const char *db_path, erd_diag *diag);

enum { VIX_REBUILD_NONE, VIX_REBUILD_RUNNING, VIX_REBUILD_DONE, VIX_REBUILD_FAILED };

typedef struct vix_rebuild_status {
    int state;                  /* VIX_REBUILD_* */
    int64_t started_at, finished_at; /* unix seconds; 0 when not yet */
    int64_t generation;         /* catalog generation the finished index holds */
    double seconds;
    char error[256];            /* why it failed */
} vix_rebuild_status;

/* Starts rebuilding catalog's index in a background thread: vix_build into
 * a new file, then a swap to it with the changes made meanwhile served from
 * the delta.  ERD_EBUSY when a rebuild is already running. */
int vix_resolver_rebuild(vix_resolver *resolver, const char *catalog, erd_diag *diag);

typedef struct vix_serving_status {
    bool served;                /* an index is loaded */
    int64_t index_generation;   /* catalog generation of the loaded index */
    int64_t served_generation;  /* catalog generation served (index + delta) */
    int64_t built_at;
    size_t index_entities, index_vectors, delta_entities, masked;
    size_t delta_bytes;         /* heap the delta holds */
    bool held;                  /* changes wait for a rebuild (delta budget) */
    char encoder_id[128];
    vix_rebuild_status rebuild; /* the last rebuild started by this resolver */
    /* Not served because its index file is missing or damaged (the other
     * catalogs are); cleared once an index loads (a rebuild, erd build). */
    int load_error;             /* ERD_OK or the failure's code */
    char load_error_msg[256];
} vix_serving_status;

void vix_resolver_status(vix_resolver *resolver, const char *catalog, vix_serving_status *ret);

/* A bulk upload into catalog starts streaming (begin) or ends.  Meanwhile
 * the catalog's rebuilds wait (its delta stops at delta_max_bytes), so the
 * upload reaches the index builder as one batch at its end instead of
 * rebuild after rebuild, each loading a larger index beside the last. */
void vix_resolver_bulk(vix_resolver *resolver, const char *catalog, bool begin);

/* Catalogs whose index could not be loaded, one per call from i = 0:
 * ERD_OK with the name and the failure in *ret, ERD_ENOTFOUND past the
 * end. */
int vix_resolver_unavailable(vix_resolver *resolver, size_t i, char *name, size_t name_cap,
                             erd_diag *ret);

/* Number of catalogs served, and their names (for /healthz). */
size_t vix_resolver_catalog_count(const vix_resolver *resolver);
const char *vix_resolver_catalog_name(const vix_resolver *resolver, size_t i);

/* ERD_OK when catalog i's scores are calibrated; else ERD_ENOTFOUND
 * (calibration off) or ERD_EMISMATCH, with the reason in diag. */
int vix_resolver_calibrated(const vix_resolver *resolver, size_t i, erd_diag *diag);

/* The no-match threshold the calibration file recorded, when catalog's
 * scores in view are calibrated by it; ERD_ENOTFOUND when they are not
 * (no calibration, or another encoder), ERD_ENOCATALOG for an unknown one. */
int vix_view_no_match_threshold(const vix_resolver *resolver, const vix_view *view,
                                const char *catalog, double *ret);

/* Encoder id of catalog i's index (NULL past the end). */
const char *vix_resolver_catalog_encoder(const vix_resolver *resolver, size_t i);

/* The rerank configuration scores depend on, as a calibration file records
 * it: "off", or the channel file's checksum and every rerank option. */
void vix_resolver_rerank_id(const vix_resolver *resolver, char *buf, size_t cap);

/* Sees the learned ranker's features (index/vix_ranker.h) of every rerank
 * candidate of every resolve, in first-stage order, with the candidates
 * themselves: what erd rank-fit learns from.  Called on the resolving
 * thread, before the candidates are ordered. */
typedef void (*vix_rank_observer)(void *ctx, const double *x, const vix_result *cands,
                                  size_t n);
/* Installs (or with NULL removes) the observer; not while other threads
 * resolve.  Needs the rerank on. */
void vix_resolver_set_rank_observer(vix_resolver *resolver, vix_rank_observer fn, void *ctx);

/* G2P phoneme-cache counters since open (for /metrics); thread-safe. */
void vix_resolver_g2p_stats(vix_resolver *resolver, uint64_t *ret_lookups, uint64_t *ret_hits);

/* Resolves hyps[0..n) (best first) against catalog; writes up to k results,
 * best first, into ret_results and their number into *ret_n.  Hypotheses
 * that normalise to nothing are skipped; ERD_EEMPTY when none is left.
 * timing may be NULL. */
int vix_resolve(vix_resolver *resolver, const char *catalog, const vix_hypothesis *hyps, size_t n,
                size_t k, vix_result *ret_results, size_t *ret_n, vix_timing *timing,
                erd_diag *diag);

/* vix_resolve that also writes each result's calibration features
 * (VIX_CALIB_NFEAT doubles per result, index/vix_calib.h) into
 * ret_features when it is not NULL; they are computed from the
 * uncalibrated scores whether or not a calibration is in force. */
int vix_resolve_features(vix_resolver *resolver, const char *catalog, const vix_hypothesis *hyps,
                         size_t n, size_t k, vix_result *ret_results, size_t *ret_n,
                         vix_timing *timing, double *ret_features, erd_diag *diag);

/* vix_resolve_features against view, whose result strings live as long as
 * the view: what a server that syncs must use. */
int vix_resolve_in(vix_resolver *resolver, vix_view *view, const char *catalog,
                   const vix_hypothesis *hyps, size_t n, size_t k, vix_result *ret_results,
                   size_t *ret_n, vix_timing *timing, double *ret_features, erd_diag *diag);

/* What the resolver makes of text: normalised, IPA (ret_ipa) and phone
 * tokens, exactly as a hypothesis goes in.  ERD_EEMPTY when nothing is
 * speakable. */
struct vix_phrase;
int vix_resolver_analyze(vix_resolver *resolver, const char *text, size_t len,
                         struct vix_phrase *ret, char *ret_ipa, size_t ipa_cap, erd_diag *diag);

/* The second pronunciation names of catalog (NULL: the resolver's default
 * voice) are also indexed under, for an analysed phrase first: ERD_ENOTFOUND
 * when the voice gives none or it equals first's phones. */
int vix_resolver_analyze_second(vix_resolver *resolver, const char *catalog,
                                const struct vix_phrase *first, struct vix_phrase *ret,
                                char *ret_ipa, size_t ipa_cap, erd_diag *diag);

/* The text (as written in the catalog) of phrase i of entity ext_id, the
 * index an explanation's alignment gives, and its kind: "name", "alias",
 * "name short form" or "alias short form".  Reads the store; for
 * explanations, not for the resolve path.  ERD_ENOTFOUND when the entity
 * or phrase is gone. */
int vix_resolver_phrase_text(vix_resolver *resolver, const char *catalog, const char *ext_id,
                             size_t phrase, char *buf, size_t cap, const char **ret_kind,
                             erd_diag *diag);

/* vix_resolve_in that also explains its answer: *ret_explain (free with
 * vix_explain_free) holds, per result, each hypothesis's alignment with
 * its best phrase and every score on the way (index/vix_explain.h).  The
 * results are exactly those of vix_resolve_in; ret_explain may be NULL. */
struct vix_explain;
int vix_resolve_explain(vix_resolver *resolver, vix_view *view, const char *catalog,
                        const vix_hypothesis *hyps, size_t n, size_t k, vix_result *ret_results,
                        size_t *ret_n, vix_timing *timing, double *ret_features,
                        struct vix_explain **ret_explain, erd_diag *diag);

#endif
