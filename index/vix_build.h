/* Building a catalog's vector index: every entity's names and their spoken
 * variants -> phonemes -> encoder -> FAISS, written beside the database and
 * recorded in the store's index metadata. */
#ifndef VIX_BUILD_H
#define VIX_BUILD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/erd_error.h"

#define VIX_BUILD_FLAT_MAX 262144
#define VIX_BUILD_NPROBE 128
#define VIX_BUILD_EF_SEARCH 128

typedef struct vix_build_opts {
    const char *db_path;
    const char *catalog;
    const char *encoder_spec; /* pho_encoder_create spec; default "baseline" */
    /* FAISS or erd factory string (vix_index_create), or "auto" (the
     * default): exact "Flat" up to flat_max vectors, erd's own
     * "erdIVF<nlist>,SQ4" above, nlist the first power of two at or above
     * sqrt(vectors) (at least 256); past 2048 such lists the two-level
     * "erdIVF<nlist>_G<groups>,SQ4" with lists of about 512 vectors. */
    const char *factory;
    size_t flat_max;          /* 0: VIX_BUILD_FLAT_MAX */
    int nprobe;               /* IVF lists searched, kept in the index file; 0: vix_build_default_nprobe */
    int ef_search;            /* HNSW search breadth, kept in the index file; 0: VIX_BUILD_EF_SEARCH */
    int threads;              /* encoding threads; 0: one per core */
    /* Worker processes that make a large catalog's missing phonemes before
     * the build reads them (vix_prefetch.h); below 2, none.  Only for a
     * single-threaded caller: the workers are forked. */
    size_t g2p_procs;
    const char *g2p_voice;    /* default "en-us+cmu"; recorded in the index metadata */
    /* A catalog whose index recorded another voice is refused (ERD_EMISMATCH)
     * unless this is set: a new voice changes every phoneme, so every answer. */
    bool g2p_voice_change;
    /* Called now and then with the stage name ("phonemes", "encode", "index")
     * and progress within it. */
    void (*progress)(void *user, const char *stage, uint64_t done, uint64_t total);
    void *progress_user;
    /* When set and it turns non-zero, the build stops at its next
     * checkpoint (an entity, a vector, before writing the file) with
     * ERD_EBUSY and changes nothing: a server shutting down need not wait
     * for a whole rebuild. */
    const atomic_int *cancel;
} vix_build_opts;

typedef struct vix_build_result {
    uint64_t entities;
    uint64_t vectors;
    uint64_t g2p_calls; /* phoneme cache misses of the build's own pass */
    size_t g2p_procs;   /* worker processes that made phonemes first (0: none) */
    double seconds, phoneme_seconds, encode_seconds, index_seconds;
    double table_seconds; /* the entity table written beside the index */
    char index_path[1024];
    char encoder_id[128];
    char factory[128]; /* the factory string used ("auto" resolved) */
    uint64_t index_bytes; /* size of the index file */
} vix_build_result;

/* Where an index file named in metadata (relative to the database's folder
 * unless absolute) is.  ERD_ETOOLONG when it does not fit. */
int vix_index_file_path(const char *db_path, const char *file, char *out, size_t outcap);

/* Whether path (as vix_index_file_path resolved it) is a file the builds of
 * db_path write for catalog ("<db file name>.<catalog>.<...>.faiss" beside
 * the database).  A copied database still names the original's files: only
 * owned ones may be removed. */
bool vix_index_file_owned(const char *db_path, const char *catalog, const char *path);

/* Removes an index file and the entity table written beside it (the
 * table is "<index file>.ents": what a server maps instead of reading every
 * entity from the database; it falls back to the database when the table
 * is missing or made for another index). */
void vix_index_file_remove(const char *path);
/* Where the entity table of the index at index_path is.  ERD_ETOOLONG when
 * it does not fit. */
int vix_index_table_path(const char *index_path, char *out, size_t outcap);

int vix_build(const vix_build_opts *opts, vix_build_result *ret, erd_diag *diag);

/* The nprobe a build of nvectors with factory records when none is asked
 * for: VIX_BUILD_NPROBE, and for a two-level erd IVF ("erdIVF<n>_G<g>")
 * enough lists to scan as many vectors as the single-level default does at
 * its largest; never more than the lists there are. */
int vix_build_default_nprobe(const char *factory, size_t nvectors);

#endif
