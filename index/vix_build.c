#include "index/vix_build.h"
#include "index/vix_prefetch.h"

#include <stdatomic.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "index/vix_index.h"
#include "index/vix_ivf.h"
#include "index/vix_internal.h"
#include "index/vix_phrase.h"
#include "index/vix_resolve_internal.h"
#include "index/vix_store.h"
#include "phonetics/pho_encoder.h"
#include "phonetics/pho_g2p.h"
#include "proto/erd_clock.h"

/* Most vectors an index is trained on: k-means cost grows with the sample,
 * and a few hundred points per list already place the centroids. */
#define VIX_BUILD_TRAIN_MAX 131072
#define VIX_BUILD_THREADS_MAX 16
/* Catalogs smaller than this make their phonemes in the build's own
 * process: forking workers is not worth it for a few seconds of espeak-ng. */
#define VIX_BUILD_PREFETCH_MIN 100000
/* auto: one flat coarse stage up to this many lists (4M vectors)... */
#define VIX_BUILD_FLAT_COARSE_MAX 2048
/* ...and above it lists of about this many vectors, in groups. */
#define VIX_BUILD_LIST_VECTORS 512
/* Vectors a search of the two-level index scans by default: what the
 * single-level default scans at its largest (128 of 2,048 lists of about
 * 780 vectors at 1.6M).  Its lists are smaller, so the same nprobe scanned
 * half as much: at 10M it agreed with exact search on the top result of
 * 72 % of simulated n-best queries, against 89 % at 1M, and 76 % when
 * twice the lists were scanned. */
#define VIX_BUILD_SCAN_VECTORS 100000

/* The generation says what the file holds; the clock keeps two builds of
 * one generation (another encoder, say) from writing the same name. */
static int vix__index_file_for(const char *db_path, const char *catalog, int64_t generation,
                               char *out, size_t outcap)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int n = snprintf(out, outcap, "%s.%s.%lld-%llx.faiss", db_path, catalog, (long long)generation,
                     (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec);
    if (n < 0 || (size_t)n >= outcap)
        return ERD_ETOOLONG;
    return ERD_OK;
}

/* Whether path is named as vix__index_file_for names db_path's files for
 * catalog ("<db file name>.<catalog>.<...>.faiss", in the database's folder). */
bool vix_index_file_owned(const char *db_path, const char *catalog, const char *path)
{
    const char *db_dir_end = strrchr(db_path, '/'), *dir_end = strrchr(path, '/');
    size_t db_dir = db_dir_end ? (size_t)(db_dir_end - db_path) : 0;
    size_t dir = dir_end ? (size_t)(dir_end - path) : 0;
    if (db_dir != dir || strncmp(db_path, path, dir) != 0)
        return false;
    const char *db_name = db_dir_end ? db_dir_end + 1 : db_path;
    const char *name = dir_end ? dir_end + 1 : path;
    size_t dn = strlen(db_name), cn = strlen(catalog);
    return strncmp(name, db_name, dn) == 0 && name[dn] == '.' &&
           strncmp(name + dn + 1, catalog, cn) == 0 && name[dn + 1 + cn] == '.';
}

void vix_index_file_remove(const char *path)
{
    unlink(path);
    vix__table_remove(path);
}

int vix_index_file_path(const char *db_path, const char *file, char *out, size_t outcap)
{
    const char *slash = strrchr(db_path, '/');
    int n;
    if (file[0] == '/' || !slash)
        n = snprintf(out, outcap, "%s", file);
    else
        n = snprintf(out, outcap, "%.*s/%s", (int)(slash - db_path), db_path, file);
    return n < 0 || (size_t)n >= outcap ? ERD_ETOOLONG : ERD_OK;
}

/* Every phrase of the catalog, packed: texts and tokens live in two growing
 * arenas so a million-entity catalog does not cost a fixed-size struct per
 * phrase. */
typedef struct vix__corpus {
    char *text;
    size_t text_len, text_cap;
    pho_token *tokens;
    size_t tokens_len, tokens_cap;
    size_t *text_off, *tok_off, *tok_n;
    int64_t *ids;
    unsigned char *derived;
    size_t n, cap;
} vix__corpus;

static void vix__corpus_free(vix__corpus *c)
{
    free(c->text);
    free(c->tokens);
    free(c->text_off);
    free(c->tok_off);
    free(c->tok_n);
    free(c->ids);
    free(c->derived);
}

static int vix__corpus_add(vix__corpus *c, const vix_phrase *ph, int64_t id, int derived)
{
    size_t tlen = strlen(ph->text) + 1;
    if (c->n == c->cap) {
        size_t ncap = c->cap ? c->cap * 2 : 1024;
        size_t *a = realloc(c->text_off, ncap * sizeof *a);
        if (!a)
            return ERD_ENOMEM;
        c->text_off = a;
        a = realloc(c->tok_off, ncap * sizeof *a);
        if (!a)
            return ERD_ENOMEM;
        c->tok_off = a;
        a = realloc(c->tok_n, ncap * sizeof *a);
        if (!a)
            return ERD_ENOMEM;
        c->tok_n = a;
        int64_t *ids = realloc(c->ids, ncap * sizeof *ids);
        if (!ids)
            return ERD_ENOMEM;
        c->ids = ids;
        unsigned char *dv = realloc(c->derived, ncap);
        if (!dv)
            return ERD_ENOMEM;
        c->derived = dv;
        c->cap = ncap;
    }
    if (vix__grow((void **)&c->text, &c->text_cap, c->text_len + tlen, 1) < 0 ||
        vix__grow((void **)&c->tokens, &c->tokens_cap, c->tokens_len + ph->n_tokens,
                  sizeof(pho_token)) < 0)
        return ERD_ENOMEM;
    memcpy(c->text + c->text_len, ph->text, tlen);
    memcpy(c->tokens + c->tokens_len, ph->tokens, ph->n_tokens * sizeof(pho_token));
    c->text_off[c->n] = c->text_len;
    c->tok_off[c->n] = c->tokens_len;
    c->tok_n[c->n] = ph->n_tokens;
    c->ids[c->n] = id;
    c->derived[c->n] = (unsigned char)derived;
    c->text_len += tlen;
    c->tokens_len += ph->n_tokens;
    c->n++;
    return ERD_OK;
}

static bool vix__cancelled(const vix_build_opts *opts)
{
    return opts->cancel && atomic_load(opts->cancel);
}

typedef struct vix__collect {
    pho_g2p *g2p;
    vix_store *store;           /* the phoneme cache's own handle, read here */
    vix_phoneme_batch *pending; /* phonemes for it, written after the snapshot */
    vix__corpus *corpus;
    vix__set *table;            /* the entity table servers map, rerank phrases included */
    const vix_build_opts *opts;
    int64_t rowid;
    size_t first_of_entity; /* corpus index of this entity's first phrase */
    size_t first_in_table;  /* the same in table */
    uint64_t entities, total_entities;
    vix_phrase scratch, second;
    erd_diag *diag;
    int rc;
} vix__collect;

/* Adds one phrase unless this entity already has the same normalised text
 * said the same way (aliases often differ only in punctuation; a text's
 * second pronunciation is another phrase). */
static int vix__add_phrase(void *user, const vix_phrase *ph, int derived, int is_second)
{
    (void)is_second;
    vix__collect *col = user;
    if (vix__set_add_phrase(col->table, col->first_in_table, ph, derived) < 0) {
        col->rc = erd_fail(col->diag, ERD_ENOMEM, "out of memory collecting phrases");
        return 1;
    }
    vix__corpus *c = col->corpus;
    for (size_t i = col->first_of_entity; i < c->n; i++) {
        if (strcmp(c->text + c->text_off[i], ph->text) == 0 && c->tok_n[i] == ph->n_tokens &&
            !memcmp(c->tokens + c->tok_off[i], ph->tokens, ph->n_tokens * sizeof *ph->tokens)) {
            c->derived[i] &= (unsigned char)derived; /* an alias as written outranks a short form */
            return 0;
        }
    }
    int rc = vix__corpus_add(c, ph, col->rowid, derived);
    if (rc < 0) {
        col->rc = erd_fail(col->diag, rc, "out of memory collecting phrases");
        return 1;
    }
    return 0;
}

/* One spoken variant, and a name or alias as written also in the second
 * pronunciation its G2P may give. */
static int vix__add_variant(void *user, const char *variant, size_t len, int derived)
{
    vix__collect *col = user;
    int rc = vix_phrase_prepare_batched(col->g2p, col->store, col->pending, variant, len,
                                        &col->scratch, col->diag);
    if (rc == ERD_EEMPTY)
        return 0; /* a variant with nothing to say ("!!!") is not an error */
    if (rc < 0) {
        col->rc = rc;
        return 1;
    }
    rc = vix_phrase_pronunciations(col->g2p, &col->scratch, derived, &col->second,
                                   vix__add_phrase, col, col->diag);
    if (rc < 0)
        col->rc = rc;
    return rc != 0;
}

static int vix__collect_entity(void *user, const vix_entity *e)
{
    vix__collect *col = user;
    col->rowid = e->rowid;
    col->first_of_entity = col->corpus->n;
    if (vix__set_entity_begin(col->table, e, &col->first_in_table) < 0) {
        col->rc = erd_fail(col->diag, ERD_ENOMEM, "out of memory collecting entities");
        return 1;
    }
    if (vix_entity_variants(e, vix__add_variant, col))
        return 1;
    vix__set_entity_end(col->table);
    col->entities++;
    if (vix__cancelled(col->opts)) {
        col->rc = erd_fail(col->diag, ERD_EBUSY, "build cancelled");
        return 1;
    }
    if (col->opts->progress && col->entities % 1000 == 0)
        col->opts->progress(col->opts->progress_user, "phonemes", col->entities,
                            col->total_entities);
    return 0;
}

/* "auto" made concrete for n vectors; other strings are used as given. */
static void vix__pick_factory(const char *factory, size_t n, size_t flat_max, char *out,
                              size_t cap)
{
    if (strcmp(factory, "auto") != 0) {
        snprintf(out, cap, "%s", factory);
        return;
    }
    if (n <= flat_max) {
        snprintf(out, cap, "Flat");
        return;
    }
    size_t nlist = 256;
    while (nlist * nlist < n) /* the first power of two at or above sqrt(n) */
        nlist *= 2;
    if (nlist <= VIX_BUILD_FLAT_COARSE_MAX) {
        snprintf(out, cap, "erdIVF%zu,SQ4", nlist);
        return;
    }
    /* Past a few thousand lists the scan of sqrt(n)-sized lists dominates
     * a search: lists of a few hundred vectors, found through groups. */
    while (nlist * VIX_BUILD_LIST_VECTORS < n)
        nlist *= 2;
    size_t groups = 16;
    while (groups * groups < nlist)
        groups *= 2;
    snprintf(out, cap, "erdIVF%zu_G%zu,SQ4", nlist, groups);
}

int vix_build_default_nprobe(const char *factory, size_t nvectors)
{
    vix_ivf_spec spec; /* a FAISS string or a malformed one: not ours to judge here */
    if (vix_ivf_parse(factory, &spec, NULL) != ERD_OK || spec.groups == 0)
        return VIX_BUILD_NPROBE;
    size_t per_list = nvectors / spec.nlist > 0 ? nvectors / spec.nlist : 1;
    size_t nprobe = VIX_BUILD_NPROBE;
    while (nprobe * per_list < VIX_BUILD_SCAN_VECTORS && nprobe < spec.nlist)
        nprobe *= 2;
    return (int)(nprobe < spec.nlist ? nprobe : spec.nlist);
}

typedef struct vix__encode_job {
    const pho_encoder *enc;
    const pho_phrase *phrases;
    const unsigned char *derived;
    float *vectors;
    size_t dim, first, end;
    size_t failed; /* index of a phrase that failed, or SIZE_MAX */
    int rc;
} vix__encode_job;

static void *vix__encode_range(void *arg)
{
    vix__encode_job *job = arg;
    for (size_t i = job->first; i < job->end; i++) {
        float *v = job->vectors + i * job->dim;
        int rc = pho_encoder_encode(job->enc, &job->phrases[i], v);
        if (rc < 0) {
            job->rc = rc;
            job->failed = i;
            return NULL;
        }
        if (job->derived[i])
            for (size_t d = 0; d < job->dim; d++)
                v[d] *= VIX_DERIVED_SCALE;
    }
    return NULL;
}

/* Encodes every phrase, split into contiguous ranges over threads (the
 * encoder is thread-safe once fitted): each vector depends only on its
 * phrase, so the result is the same for any thread count. */
static int vix__encode_all(const pho_encoder *enc, const pho_phrase *phrases,
                           const unsigned char *derived, size_t n, size_t dim, int threads,
                           float *vectors, erd_diag *diag)
{
    vix__encode_job jobs[VIX_BUILD_THREADS_MAX];
    pthread_t tids[VIX_BUILD_THREADS_MAX];
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    size_t nt = threads > 0 ? (size_t)threads : cores > 0 ? (size_t)cores : 1;
    if (nt > VIX_BUILD_THREADS_MAX)
        nt = VIX_BUILD_THREADS_MAX;
    if (n < 4096 * nt) /* thread start-up would cost more than it saves */
        nt = 1;
    size_t started = 0;
    for (size_t t = 0; t < nt; t++) {
        jobs[t] = (vix__encode_job){.enc = enc, .phrases = phrases, .derived = derived,
                                    .vectors = vectors, .dim = dim, .first = n * t / nt,
                                    .end = n * (t + 1) / nt, .failed = SIZE_MAX};
        /* the first range runs on this thread, after the others start */
        if (t > 0 && pthread_create(&tids[t], NULL, vix__encode_range, &jobs[t]) != 0)
            vix__encode_range(&jobs[t]); /* no thread to be had: do it here */
        else if (t > 0)
            started |= (size_t)1 << t;
    }
    vix__encode_range(&jobs[0]);
    int rc = ERD_OK;
    for (size_t t = 0; t < nt; t++) {
        if (started & ((size_t)1 << t))
            pthread_join(tids[t], NULL);
        if (jobs[t].rc < 0 && rc == ERD_OK)
            rc = erd_fail(diag, jobs[t].rc, "encoding \"%s\" failed", phrases[jobs[t].failed].text);
    }
    return rc;
}

/* Vectors encoded and added per step: the build never holds every vector
 * twice (FAISS keeps its own copy), which for a million entities is the
 * difference between 1 and 2 GB. */
#define VIX_BUILD_CHUNK 65536

/* The voice the catalog's current index was built with, if it recorded
 * one, must be the voice of this build unless a change was asked for. */
static int vix__voice_check(vix_store *store, int64_t catalog_id, const vix_build_opts *opts,
                            const char *voice, erd_diag *diag)
{
    vix_index_meta old;
    erd_diag inner = {0};
    int rc = vix_store_meta_get(store, catalog_id, &old, &inner);
    if (rc == ERD_ENOINDEX)
        return ERD_OK;
    if (rc < 0)
        return erd_fail(diag, rc, "%s", inner.msg);
    char was[sizeof old.g2p_voice];
    snprintf(was, sizeof was, "%s", old.g2p_voice);
    vix_index_meta_clear(&old);
    if (!was[0] || strcmp(was, voice) == 0 || opts->g2p_voice_change)
        return ERD_OK;
    return erd_fail(diag, ERD_EMISMATCH,
                    "catalog \"%s\" was built with G2P voice \"%s\", this build would use \"%s\": "
                    "build with --g2p-voice %s to change it, or keep g2p_voice %s",
                    opts->catalog, was, voice, voice, was);
}

/* One build as it goes through its stages. */
typedef struct vix__build {
    const vix_build_opts *opts;
    erd_diag *diag;
    const char *voice;
    vix_store *store, *cache;
    bool snapshot; /* store holds the read snapshot */
    vix_phoneme_batch *pending;
    pho_g2p *g2p;
    pho_encoder *enc;
    vix_index *index;
    vix__corpus corpus;
    vix__set table; /* gathered with the corpus, written beside the index */
    pho_phrase *phrases;
    float *vectors;
    pho_phrase *sample;
    unsigned char *sample_derived;
    void *state;
    size_t state_len, dim, chunk, n_train;
    int64_t catalog_id, generation, count;
    double t0, t, encode_s, prefetch_s;
    vix_build_result res;
} vix__build;

static void vix__build_free(vix__build *b)
{
    if (b->snapshot)
        vix_store_rollback(b->store);
    vix_phoneme_batch_destroy(b->pending);
    vix_store_close(b->cache);
    free(b->sample);
    free(b->sample_derived);
    free(b->state);
    free(b->vectors);
    free(b->phrases);
    vix__corpus_free(&b->corpus);
    vix__set_free(&b->table);
    vix_index_destroy(b->index);
    pho_g2p_destroy(b->g2p);
    pho_encoder_destroy(b->enc);
    vix_store_close(b->store);
}

static int vix__build_cancelled(const vix__build *b)
{
    return vix__cancelled(b->opts) ? erd_fail(b->diag, ERD_EBUSY, "build cancelled") : ERD_OK;
}

/* A large catalog's missing phonemes made by worker processes first, so
 * the phoneme stage below reads them from the cache.  Before the build's
 * read snapshot: the workers' writes need not pile up behind it. */
static int vix__build_prefetch(vix__build *b)
{
    const vix_build_opts *opts = b->opts;
    if (opts->g2p_procs < 2)
        return ERD_OK;
    vix_store *store = NULL;
    int64_t catalog_id = 0, count = 0;
    int rc = vix_store_open(opts->db_path, 0, &store, b->diag);
    if (rc == ERD_OK &&
        (rc = vix_store_catalog_find(store, opts->catalog, &catalog_id, b->diag)) == ERD_OK &&
        (rc = vix__voice_check(store, catalog_id, opts, b->voice, b->diag)) == ERD_OK)
        rc = vix_store_entity_count(store, catalog_id, &count, b->diag);
    vix_store_close(store);
    if (rc < 0 || count < VIX_BUILD_PREFETCH_MIN)
        return rc; /* the failure, if any, is the build's own to report */
    double t = erd_now_s();
    size_t procs = opts->g2p_procs < VIX_PREFETCH_MAX_PROCS ? opts->g2p_procs
                                                            : VIX_PREFETCH_MAX_PROCS, clean = 0;
    const vix_prefetch_opts po = {.db_path = opts->db_path,
                                  .catalog_id = catalog_id,
                                  .voice = b->voice,
                                  .procs = procs,
                                  .progress = opts->progress,
                                  .progress_user = opts->progress_user};
    if (vix_prefetch_phonemes(&po, &clean, NULL) == ERD_OK)
        b->res.g2p_procs = clean;
    b->prefetch_s = erd_now_s() - t;
    return ERD_OK;
}

/* The store, under one read snapshot, the catalog, its generation and a new
 * index file name for it; the encoder and the G2P. */
static int vix__build_open(vix__build *b)
{
    const vix_build_opts *opts = b->opts;
    erd_diag *diag = b->diag;
    const char *spec = opts->encoder_spec ? opts->encoder_spec : "baseline";
    int rc;
    if ((rc = vix_store_open(opts->db_path, VIX_STORE_SCAN, &b->store, diag)) < 0 ||
        (rc = vix_store_open(opts->db_path, VIX_STORE_SCAN, &b->cache, diag)) < 0)
        return rc;
    /* Generation and entities come from one read snapshot, so the index
     * holds exactly what that generation says; writers go on meanwhile. */
    if ((rc = vix_store_begin_read(b->store, diag)) < 0)
        return rc;
    b->snapshot = true;
    if ((rc = vix_store_catalog_find(b->store, opts->catalog, &b->catalog_id, diag)) < 0 ||
        (rc = vix_store_catalog_generation(b->store, b->catalog_id, &b->generation, diag)) < 0 ||
        (rc = vix__voice_check(b->store, b->catalog_id, opts, b->voice, diag)) < 0)
        return rc;
    /* A new file per build: the one the metadata names is never rewritten,
     * so a crash between writing the index and committing its metadata
     * leaves the old pair intact. */
    rc = vix__index_file_for(opts->db_path, opts->catalog, b->generation, b->res.index_path,
                             sizeof b->res.index_path);
    if (rc < 0)
        return erd_fail(diag, rc, "index path too long");
    if ((rc = vix_store_entity_count(b->store, b->catalog_id, &b->count, diag)) < 0)
        return rc;
    if (b->count == 0)
        return erd_fail(diag, ERD_EEMPTY, "catalog \"%s\" has no entities to index",
                        opts->catalog);
    if ((rc = pho_encoder_create(spec, &b->enc, diag)) < 0)
        return rc;
    return pho_g2p_create(b->voice, 0, &b->g2p, diag);
}

/* Phonemes: read from the cache, new ones kept (vix_phoneme_batch) and
 * written once the snapshot has ended. */
static int vix__build_phonemes(vix__build *b)
{
    erd_diag *diag = b->diag;
    b->t = erd_now_s();
    vix__collect *col = calloc(1, sizeof *col);
    int rc = col ? vix_phoneme_batch_create(&b->pending, diag)
                 : erd_fail(diag, ERD_ENOMEM, "out of memory");
    if (rc < 0) {
        free(col);
        return rc;
    }
    *col = (vix__collect){.g2p = b->g2p, .store = b->cache, .pending = b->pending,
                          .corpus = &b->corpus, .table = &b->table, .opts = b->opts,
                          .total_entities = (uint64_t)b->count, .diag = diag};
    rc = vix_store_entity_foreach(b->store, b->catalog_id, vix__collect_entity, col, diag);
    if (rc > 0)
        rc = col->rc;
    b->res.entities = col->entities;
    free(col);
    if (rc < 0)
        return rc;
    vix_store_rollback(b->store); /* ends the read snapshot */
    b->snapshot = false;
    rc = vix_phoneme_batch_flush(b->pending, b->cache, pho_g2p_id(b->g2p), diag);
    if (rc < 0)
        return rc;
    /* written: not kept beside the vectors (a catalog's worth of phonemes) */
    vix_phoneme_batch_destroy(b->pending);
    b->pending = NULL;
    pho_g2p_stats gs;
    pho_g2p_get_stats(b->g2p, &gs);
    b->res.g2p_calls = gs.espeak_calls;
    b->res.phoneme_seconds = erd_now_s() - b->t + b->prefetch_s;
    if (b->corpus.n == 0)
        return erd_fail(diag, ERD_EEMPTY, "no entity of \"%s\" has a speakable name",
                        b->opts->catalog);
    return ERD_OK;
}

/* The encoder fitted to the phrases, the index made and, if its kind
 * needs it, trained on a sample. */
static int vix__build_index(vix__build *b)
{
    const vix_build_opts *opts = b->opts;
    erd_diag *diag = b->diag;
    const vix__corpus *corpus = &b->corpus;
    const char *factory_opt = opts->factory && *opts->factory ? opts->factory : "auto";
    b->t = erd_now_s();
    b->dim = pho_encoder_dim(b->enc);
    b->chunk = corpus->n < VIX_BUILD_CHUNK ? corpus->n : VIX_BUILD_CHUNK;
    b->n_train = corpus->n < VIX_BUILD_TRAIN_MAX ? corpus->n : VIX_BUILD_TRAIN_MAX;
    size_t n_train = b->n_train;
    b->phrases = calloc(corpus->n, sizeof *b->phrases);
    b->vectors = malloc((b->chunk > n_train ? b->chunk : n_train) * b->dim * sizeof *b->vectors);
    if (!b->phrases || !b->vectors)
        return erd_fail(diag, ERD_ENOMEM, "out of memory for %zu vectors of %zu floats",
                        corpus->n, b->dim);
    for (size_t i = 0; i < corpus->n; i++)
        b->phrases[i] = (pho_phrase){.text = corpus->text + corpus->text_off[i],
                                     .tokens = corpus->tokens + corpus->tok_off[i],
                                     .n_tokens = corpus->tok_n[i]};
    int rc = pho_encoder_fit(b->enc, b->phrases, corpus->n, diag);
    if (rc < 0)
        return rc;
    vix__pick_factory(factory_opt, corpus->n, opts->flat_max ? opts->flat_max : VIX_BUILD_FLAT_MAX,
                      b->res.factory, sizeof b->res.factory);
    if ((rc = vix_index_create(b->res.factory, b->dim, &b->index, diag)) < 0)
        return rc;
    if (vix_index_is_trained(b->index))
        return ERD_OK;
    size_t want = vix_index_train_want(b->index);
    if (want > n_train) {
        n_train = b->n_train = corpus->n < want ? corpus->n : want;
        float *v = realloc(b->vectors, (b->chunk > n_train ? b->chunk : n_train) * b->dim *
                                           sizeof *b->vectors);
        if (!v)
            return erd_fail(diag, ERD_ENOMEM, "out of memory for %zu training vectors", n_train);
        b->vectors = v;
    }
    /* every stride-th phrase: a sample spread over the whole catalog, the
     * same on every build */
    b->sample = malloc(n_train * sizeof *b->sample);
    b->sample_derived = malloc(n_train);
    if (!b->sample || !b->sample_derived)
        return erd_fail(diag, ERD_ENOMEM, "out of memory for %zu training vectors", n_train);
    for (size_t i = 0; i < n_train; i++) {
        size_t j = i * corpus->n / n_train;
        b->sample[i] = b->phrases[j];
        b->sample_derived[i] = corpus->derived[j];
    }
    double t1 = erd_now_s();
    rc = vix__encode_all(b->enc, b->sample, b->sample_derived, n_train, b->dim, opts->threads,
                         b->vectors, diag);
    b->encode_s += erd_now_s() - t1;
    if (rc < 0 || (rc = vix__build_cancelled(b)) < 0)
        return rc;
    return vix_index_train(b->index, n_train, b->vectors, diag);
}

/* Every phrase encoded and added, a chunk at a time; then the search
 * breadth, which is part of the index file: the server reads it back. */
static int vix__build_add(vix__build *b)
{
    const vix_build_opts *opts = b->opts;
    erd_diag *diag = b->diag;
    const vix__corpus *corpus = &b->corpus;
    /* A flat index is sized once and encoded into in place: adding chunk
     * by chunk makes FAISS double its array, both copies alive at once. */
    float *in_place = NULL;
    int rc = vix_index_add_zeroed(b->index, corpus->n, corpus->ids, &in_place, diag);
    if (rc == ERD_ENOTFOUND)
        in_place = NULL; /* not flat: chunk by chunk */
    else if (rc < 0)
        return rc;
    for (size_t first = 0; first < corpus->n; first += b->chunk) {
        size_t m = corpus->n - first < b->chunk ? corpus->n - first : b->chunk;
        double t1 = erd_now_s();
        rc = vix__encode_all(b->enc, b->phrases + first, corpus->derived + first, m, b->dim,
                             opts->threads, in_place ? in_place + first * b->dim : b->vectors,
                             diag);
        b->encode_s += erd_now_s() - t1;
        if (rc < 0)
            return rc;
        rc = in_place ? ERD_OK : vix_index_add(b->index, m, b->vectors, corpus->ids + first, diag);
        if (rc < 0 || (rc = vix__build_cancelled(b)) < 0)
            return rc;
        if (opts->progress)
            opts->progress(opts->progress_user, "index", first + m, corpus->n);
    }
    const char *factory = b->res.factory;
    char param[64] = "";
    if (strchr(factory, '|'))
        param[0] = '\0'; /* FACTORY|PARAMS: the operator's own, already set */
    else if (strstr(factory, "IVF"))
        snprintf(param, sizeof param, "nprobe=%d",
                 opts->nprobe > 0 ? opts->nprobe
                                  : vix_build_default_nprobe(factory, corpus->n));
    else if (strstr(factory, "HNSW"))
        snprintf(param, sizeof param, "efSearch=%d",
                 opts->ef_search > 0 ? opts->ef_search : VIX_BUILD_EF_SEARCH);
    if (*param && (rc = vix_index_set_params(b->index, param, diag)) < 0)
        return rc;
    return vix__build_cancelled(b);
}

/* The entity set a server would read from the store at the build's
 * generation (what changed since is the delta's), in the build's voice with
 * every rerank phrase, gathered by the phoneme pass: written beside the
 * index for servers to map.  Reading the store again for it took 207 s of
 * a 10M-entity build. */
static int vix__build_table(vix__build *b)
{
    char path[2100];
    int rc = vix_index_table_path(b->res.index_path, path, sizeof path);
    if (rc < 0)
        return erd_fail(b->diag, rc, "entity table path too long");
    vix__set_finish(&b->table);
    return vix__table_write(&b->table, path, b->res.index_path, b->generation, b->diag);
}

/* The index file and its entity table written, then the metadata naming
 * them; only then are the files they replace removed. */
static int vix__build_commit(vix__build *b)
{
    const vix_build_opts *opts = b->opts;
    erd_diag *diag = b->diag;
    vix_build_result *res = &b->res;
    char old_path[1024] = "";
    int rc = vix_index_write(b->index, res->index_path, diag);
    if (rc < 0)
        return rc;
    double t_table = erd_now_s();
    if ((rc = vix__build_table(b)) < 0 || (rc = vix__build_cancelled(b)) < 0) {
        vix_index_file_remove(res->index_path);
        return rc;
    }
    res->table_seconds = erd_now_s() - t_table;
    res->encode_seconds = b->encode_s;
    res->index_seconds = erd_now_s() - b->t - b->encode_s - res->table_seconds;
    struct stat sb;
    if (stat(res->index_path, &sb) == 0)
        res->index_bytes = (uint64_t)sb.st_size;
    rc = pho_encoder_state_save(b->enc, &b->state, &b->state_len);
    if (rc < 0)
        return erd_fail(diag, rc, "saving encoder state failed");
    res->vectors = b->corpus.n;
    res->seconds = erd_now_s() - b->t0;
    snprintf(res->encoder_id, sizeof res->encoder_id, "%s", pho_encoder_id(b->enc));

    vix_index_meta meta = {0}, old = {0};
    if (vix_store_meta_get(b->store, b->catalog_id, &old, NULL) == ERD_OK) {
        if (vix_index_file_path(opts->db_path, old.path, old_path, sizeof old_path) < 0)
            old_path[0] = '\0';
        vix_index_meta_clear(&old);
    }
    snprintf(meta.encoder_id, sizeof meta.encoder_id, "%s", pho_encoder_id(b->enc));
    snprintf(meta.factory, sizeof meta.factory, "%s", res->factory);
    /* Recorded relative to the database's folder so the pair can move. */
    const char *slash = strrchr(res->index_path, '/');
    snprintf(meta.path, sizeof meta.path, "%s", slash ? slash + 1 : res->index_path);
    meta.dim = (int64_t)b->dim;
    meta.vector_count = (int64_t)b->corpus.n;
    meta.entity_count = (int64_t)res->entities;
    meta.catalog_generation = b->generation;
    meta.built_at = (int64_t)time(NULL);
    meta.build_seconds = res->seconds;
    snprintf(meta.g2p_voice, sizeof meta.g2p_voice, "%s", b->voice);
    meta.encoder_state = b->state; /* borrowed: meta is not cleared here */
    meta.encoder_state_len = b->state_len;
    rc = vix_store_meta_put(b->store, b->catalog_id, &meta, diag);
    if (rc < 0)
        return rc;
    /* Only now is the old file unreferenced; a crash before this unlink
     * leaves it behind, harmless.  A file this database did not name (a
     * copy of the database still points at its original's) is not ours to
     * remove. */
    if (old_path[0] && strcmp(old_path, res->index_path) != 0 &&
        vix_index_file_owned(opts->db_path, opts->catalog, old_path))
        vix_index_file_remove(old_path);
    return ERD_OK;
}

int vix_build(const vix_build_opts *opts, vix_build_result *ret, erd_diag *diag)
{
    vix__build b = {.opts = opts,
                    .diag = diag,
                    .voice = opts->g2p_voice && *opts->g2p_voice ? opts->g2p_voice : "en-us+cmu",
                    .t0 = erd_now_s()};
    int rc;
    if ((rc = vix__build_prefetch(&b)) >= 0 && (rc = vix__build_open(&b)) >= 0 &&
        (rc = vix__build_phonemes(&b)) >= 0 &&
        (rc = vix__build_index(&b)) >= 0 && (rc = vix__build_add(&b)) >= 0 &&
        (rc = vix__build_commit(&b)) >= 0) {
        rc = ERD_OK;
        if (ret)
            *ret = b.res;
    }
    vix__build_free(&b);
    return rc;
}
