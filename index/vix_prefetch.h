/* Phonemes of a large catalog made by several worker processes into the
 * phoneme cache before a build reads them (vix_prefetch.c says why).  For
 * single-threaded callers only: it forks. */
#ifndef VIX_PREFETCH_H
#define VIX_PREFETCH_H

#include <stddef.h>
#include <stdint.h>

#include "proto/erd_error.h"

#define VIX_PREFETCH_MAX_PROCS 64

typedef struct vix_prefetch_opts {
    const char *db_path;
    int64_t catalog_id;
    const char *voice; /* the G2P voice the build uses */
    size_t procs;      /* worker processes, 2..VIX_PREFETCH_MAX_PROCS */
    /* called about twice a second, once every worker has listed what it
     * has to speak, with the texts spoken so far of all */
    void (*progress)(void *user, const char *stage, uint64_t done, uint64_t total);
    void *progress_user;
} vix_prefetch_opts;

/* Runs the workers to the end; ERD_OK with *ret_clean the number that
 * finished cleanly (the rest leave their phonemes to the build's own pass).
 * Fails only when no worker could be started. */
int vix_prefetch_phonemes(const vix_prefetch_opts *opts, size_t *ret_clean, erd_diag *diag);

#endif
