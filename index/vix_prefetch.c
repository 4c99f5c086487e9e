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
#include "phonetics/pho_text.h"
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

/* What a worker tells the parent, in memory they share: texts to speak
 * (known once listed) and spoken so far. */
typedef struct vix__slot {
    atomic_uint_fast64_t total, done;
    atomic_bool listed;
} vix__slot;

/* A worker first lists the normalised texts of its entities that the
 * cache lacks, under one read transaction, and only then speaks and writes
 * them: a reader held open across the writes would keep SQLite from ever
 * checkpointing the log (at 10M names it grew past 20 GB). */
typedef struct vix__worker {
    vix_store *cache;
    const char *g2p_id;
    size_t k, procs;
    char *texts; /* NUL-terminated, one after another */
    size_t len, cap, n;
    vix__slot *slot;
    int rc;
} vix__worker;

static int vix__worker_variant(void *user, const char *variant, size_t len, int derived)
{
    vix__worker *w = user;
    char norm[PHO_TEXT_MAX], ipa[PHO_IPA_MAX];
    size_t nlen = 0;
    (void)derived;
    if (pho_normalize(variant, len, norm, sizeof norm, &nlen) < 0 || nlen == 0 ||
        vix_store_phonemes_get(w->cache, w->g2p_id, norm, ipa, sizeof ipa) != ERD_ENOTFOUND)
        return 0; /* nothing to say, or already cached: the build sorts out the rest */
    if (vix__grow((void **)&w->texts, &w->cap, w->len + nlen + 1, 1) < 0) {
        w->rc = ERD_ENOMEM;
        return 1;
    }
    memcpy(w->texts + w->len, norm, nlen + 1);
    w->len += nlen + 1;
    w->n++;
    return 0;
}

static int vix__worker_entity(void *user, const vix_entity *e)
{
    vix__worker *w = user;
    if ((size_t)e->rowid % w->procs != w->k)
        return 0;
    return vix_entity_variants(e, vix__worker_variant, w);
}

/* The listed texts spoken into the cache, a batch of short write
 * transactions at a time; progress counted in texts. */
static int vix__worker_speak(vix__worker *w, pho_g2p *g2p)
{
    vix_phoneme_batch *batch = NULL;
    vix_phrase scratch;
    int rc = vix_phoneme_batch_create(&batch, NULL);
    size_t kept = 0;
    for (size_t at = 0; rc == ERD_OK && at < w->len; at += strlen(w->texts + at) + 1) {
        const char *t = w->texts + at;
        rc = vix_phrase_prepare_batched(g2p, NULL, batch, t, strlen(t), &scratch, NULL);
        if (rc == ERD_EEMPTY || rc == ERD_EG2P)
            rc = ERD_OK; /* the build reports it, with the entity */
        if (rc == ERD_OK && ++kept == VIX__PREFETCH_BATCH) {
            kept = 0;
            rc = vix_phoneme_batch_flush(batch, w->cache, w->g2p_id, NULL);
        }
        atomic_fetch_add(&w->slot->done, 1);
    }
    if (rc == ERD_OK)
        rc = vix_phoneme_batch_flush(batch, w->cache, w->g2p_id, NULL);
    vix_phoneme_batch_destroy(batch);
    return rc;
}

/* A worker's life: its own connections (a connection must not cross a
 * fork), its texts listed, spoken, written.  Exits, never returns. */
static void vix__worker_run(const vix_prefetch_opts *o, size_t k, vix__slot *slot)
{
    vix__worker w = {.k = k, .procs = o->procs, .slot = slot};
    vix_store *store = NULL;
    pho_g2p *g2p = NULL;
    int rc = vix_store_open(o->db_path, VIX_STORE_SCAN, &store, NULL);
    if (rc == ERD_OK)
        rc = vix_store_open(o->db_path, VIX_STORE_SCAN, &w.cache, NULL);
    if (rc == ERD_OK && (rc = pho_g2p_create(o->voice, 0, &g2p, NULL)) == ERD_OK)
        w.g2p_id = pho_g2p_id(g2p);
    if (rc == ERD_OK && (rc = vix_store_begin_read(store, NULL)) == ERD_OK) {
        rc = vix_store_entity_foreach(store, o->catalog_id, vix__worker_entity, &w, NULL);
        rc = rc > 0 ? w.rc : rc;
        vix_store_rollback(store);
    }
    atomic_store(&slot->total, w.n);
    atomic_store(&slot->listed, true);
    if (rc == ERD_OK)
        rc = vix__worker_speak(&w, g2p);
    free(w.texts);
    pho_g2p_destroy(g2p);
    vix_store_close(w.cache);
    vix_store_close(store);
    _exit(rc == ERD_OK ? 0 : 1);
}

/* Progress once every worker has listed its texts: spoken of all. */
static void vix__report(const vix_prefetch_opts *o, const vix__slot *slots, size_t n)
{
    uint64_t done = 0, total = 0;
    for (size_t i = 0; i < n; i++) {
        if (!atomic_load(&slots[i].listed))
            return;
        done += atomic_load(&slots[i].done);
        total += atomic_load(&slots[i].total);
    }
    if (o->progress)
        o->progress(o->progress_user, "phonemes", done, total);
}

/* Waits for every worker, reporting their progress meanwhile; the number
 * that finished cleanly. */
static size_t vix__reap(const vix_prefetch_opts *o, const pid_t *pids, size_t n,
                        vix__slot *slots)
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
                atomic_store(&slots[i].listed, true); /* a dead worker lists no more */
            }
        }
        vix__report(o, slots, n);
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
    size_t bytes = o->procs * sizeof(vix__slot);
    vix__slot *slots = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (slots == MAP_FAILED)
        return erd_fail(diag, ERD_ENOMEM, "phoneme workers: shared counters: %s", strerror(errno));
    pid_t pids[VIX_PREFETCH_MAX_PROCS];
    size_t started = 0;
    fflush(NULL); /* nothing buffered is written twice */
    for (; started < o->procs; started++) {
        atomic_init(&slots[started].total, 0);
        atomic_init(&slots[started].done, 0);
        atomic_init(&slots[started].listed, false);
        pid_t pid = fork();
        if (pid == 0)
            vix__worker_run(o, started, &slots[started]);
        if (pid < 0)
            break;
        pids[started] = pid;
    }
    size_t clean = vix__reap(o, pids, started, slots);
    munmap(slots, bytes);
    if (started == 0)
        return erd_fail(diag, ERD_EIO, "phoneme workers: fork: %s", strerror(errno));
    *ret_clean = clean;
    return ERD_OK;
}
