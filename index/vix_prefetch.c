/* Phonemes of a large catalog made by several processes before a build
 * reads them from the cache.
 *
 * espeak-ng is one global state per process (pho_g2p serialises it), so a
 * build's phoneme stage runs on one core however many there are: at 10M
 * names that is most of the build.  Forked workers each speak every K-th
 * entity with their own copy of that state and write into the phoneme cache
 * (SQLite in WAL mode: each commits its own short transactions); the build's
 * own pass then finds every phoneme cached.  A worker that fails only
 * leaves phonemes for that pass to make, so the answers are the same either
 * way.  Forking is for single-threaded callers only (erd build): a server's
 * other threads could hold the espeak-ng lock at the fork. */
#include "index/vix_prefetch.h"
#include "index/vix_internal.h"
#include "index/vix_phrase.h"
#include "proto/erd_clock.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

/* Texts a worker keeps before writing them to the cache. */
#define VIX__PREFETCH_BATCH 65536

typedef struct vix__worker {
    pho_g2p *g2p;
    vix_store *cache;
    vix_phoneme_batch *batch;
    size_t k, procs, kept;
    atomic_uint_fast64_t *done;
    vix_phrase scratch;
    int rc;
} vix__worker;

static int vix__worker_variant(void *user, const char *variant, size_t len, int derived)
{
    vix__worker *w = user;
    (void)derived;
    int rc = vix_phrase_prepare_batched(w->g2p, w->cache, w->batch, variant, len, &w->scratch,
                                        NULL);
    if (rc < 0 && rc != ERD_EEMPTY && rc != ERD_EG2P) {
        w->rc = rc;
        return 1;
    }
    if (++w->kept >= VIX__PREFETCH_BATCH) {
        w->kept = 0;
        if ((w->rc = vix_phoneme_batch_flush(w->batch, w->cache, pho_g2p_id(w->g2p), NULL)) < 0)
            return 1;
    }
    return 0;
}

static int vix__worker_entity(void *user, const vix_entity *e)
{
    vix__worker *w = user;
    if ((size_t)e->rowid % w->procs != w->k)
        return 0;
    if (vix_entity_variants(e, vix__worker_variant, w))
        return 1;
    atomic_fetch_add(w->done, 1);
    return 0;
}

/* A worker's life: its own connections (a connection must not cross a
 * fork), every K-th entity, its batch written.  Exits, never returns. */
static void vix__worker_run(const vix_prefetch_opts *o, size_t k, atomic_uint_fast64_t *done)
{
    vix__worker w = {.k = k, .procs = o->procs, .done = done};
    vix_store *store = NULL;
    int rc = vix_store_open(o->db_path, 0, &store, NULL);
    if (rc == ERD_OK)
        rc = vix_store_open(o->db_path, 0, &w.cache, NULL);
    if (rc == ERD_OK)
        rc = pho_g2p_create(o->voice, 0, &w.g2p, NULL);
    if (rc == ERD_OK)
        rc = vix_phoneme_batch_create(&w.batch, NULL);
    if (rc == ERD_OK && (rc = vix_store_begin_read(store, NULL)) == ERD_OK) {
        rc = vix_store_entity_foreach(store, o->catalog_id, vix__worker_entity, &w, NULL);
        rc = rc > 0 ? w.rc : rc;
        vix_store_rollback(store);
    }
    if (rc == ERD_OK)
        rc = vix_phoneme_batch_flush(w.batch, w.cache, pho_g2p_id(w.g2p), NULL);
    vix_phoneme_batch_destroy(w.batch);
    pho_g2p_destroy(w.g2p);
    vix_store_close(w.cache);
    vix_store_close(store);
    _exit(rc == ERD_OK ? 0 : 1);
}

/* Waits for every worker, reporting their summed progress meanwhile;
 * the number that finished cleanly. */
static size_t vix__reap(const vix_prefetch_opts *o, const pid_t *pids, size_t n,
                        atomic_uint_fast64_t *done)
{
    size_t live = n, clean = 0;
    bool *reaped = calloc(n, sizeof *reaped);
    while (live > 0) {
        for (size_t i = 0; i < n; i++) {
            int st = 0;
            if (reaped && reaped[i])
                continue;
            pid_t r = waitpid(pids[i], &st, reaped ? WNOHANG : 0);
            if (r == pids[i] || (r < 0 && errno != EINTR)) {
                live--;
                clean += r == pids[i] && WIFEXITED(st) && WEXITSTATUS(st) == 0;
                if (reaped)
                    reaped[i] = true;
            }
        }
        uint64_t sum = 0;
        for (size_t i = 0; i < n; i++)
            sum += atomic_load(&done[i]);
        if (o->progress)
            o->progress(o->progress_user, "phonemes", sum, o->total_entities);
        if (live > 0)
            usleep(500 * 1000);
    }
    free(reaped);
    return clean;
}

int vix_prefetch_phonemes(const vix_prefetch_opts *o, size_t *ret_clean, erd_diag *diag)
{
    if (!o || !o->db_path || !o->voice || o->procs < 2 || o->procs > VIX_PREFETCH_MAX_PROCS)
        return erd_fail(diag, ERD_EINVAL, "phoneme workers: 2..%d processes",
                        VIX_PREFETCH_MAX_PROCS);
    size_t bytes = o->procs * sizeof(atomic_uint_fast64_t);
    atomic_uint_fast64_t *done =
        mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (done == MAP_FAILED)
        return erd_fail(diag, ERD_ENOMEM, "phoneme workers: shared counters: %s", strerror(errno));
    pid_t pids[VIX_PREFETCH_MAX_PROCS];
    size_t started = 0;
    fflush(NULL); /* nothing buffered is written twice */
    for (; started < o->procs; started++) {
        atomic_init(&done[started], 0);
        pid_t pid = fork();
        if (pid == 0)
            vix__worker_run(o, started, &done[started]);
        if (pid < 0)
            break;
        pids[started] = pid;
    }
    size_t clean = vix__reap(o, pids, started, done);
    munmap(done, bytes);
    if (started == 0)
        return erd_fail(diag, ERD_EIO, "phoneme workers: fork: %s", strerror(errno));
    *ret_clean = clean;
    return ERD_OK;
}
