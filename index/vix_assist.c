/* One long-lived helper thread that takes half of a search's scan.
 *
 * A thread created per search cost 30-90 us here (clone, first touch of its
 * stack, the join), on a scan of about 700 us; waking a parked thread costs
 * about 15.  There is one helper for the process, and it only helps while
 * fewer resolves run than there are CPUs: a single client gets the idle
 * core, and under concurrent load (every core already busy) each search
 * scans alone rather than queue behind another's helper or crowd a core. */
#include "index/vix_assist.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <unistd.h>

static atomic_int vix__assist_working;
static atomic_long vix__assist_cpus;

void vix_assist_enter(void)
{
    atomic_fetch_add(&vix__assist_working, 1);
}

void vix_assist_leave(void)
{
    atomic_fetch_sub(&vix__assist_working, 1);
}

/* Whether a core is left idle by the resolves running now. */
static bool vix__assist_core_free(void)
{
    long cpus = atomic_load(&vix__assist_cpus);
    if (cpus == 0) {
        cpus = sysconf(_SC_NPROCESSORS_ONLN);
        cpus = cpus > 0 ? cpus : 1;
        atomic_store(&vix__assist_cpus, cpus);
    }
    return atomic_load(&vix__assist_working) < cpus;
}

static struct {
    pthread_mutex_t mu;
    pthread_cond_t wake, finished;
    void (*fn)(void *);
    void *arg;
    bool queued;  /* a job is waiting for the helper or running */
    bool done;    /* the queued job has run: its caller may take the result */
    bool running; /* the thread exists */
} vix__assist = {.mu = PTHREAD_MUTEX_INITIALIZER,
                .wake = PTHREAD_COND_INITIALIZER,
                .finished = PTHREAD_COND_INITIALIZER};

static void *vix__assist_main(void *unused)
{
    (void)unused;
    pthread_mutex_lock(&vix__assist.mu);
    for (;;) {
        while (!vix__assist.queued || vix__assist.done)
            pthread_cond_wait(&vix__assist.wake, &vix__assist.mu);
        void (*fn)(void *) = vix__assist.fn;
        void *arg = vix__assist.arg;
        pthread_mutex_unlock(&vix__assist.mu);
        fn(arg);
        pthread_mutex_lock(&vix__assist.mu);
        vix__assist.done = true;
        pthread_cond_signal(&vix__assist.finished);
    }
    return NULL;
}

/* Called with the lock held. */
static bool vix__assist_ensure_thread(void)
{
    if (vix__assist.running)
        return true;
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0)
        return false;
    pthread_t t;
    bool ok = pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) == 0 &&
              pthread_create(&t, &attr, vix__assist_main, NULL) == 0;
    pthread_attr_destroy(&attr);
    vix__assist.running = ok;
    return ok;
}

bool vix_assist_begin(void (*fn)(void *), void *arg)
{
    if (!fn || !vix__assist_core_free())
        return false;
    pthread_mutex_lock(&vix__assist.mu);
    bool taken = !vix__assist.queued && vix__assist_ensure_thread();
    if (taken) {
        vix__assist.fn = fn;
        vix__assist.arg = arg;
        vix__assist.queued = true;
        vix__assist.done = false;
        pthread_cond_signal(&vix__assist.wake);
    }
    pthread_mutex_unlock(&vix__assist.mu);
    return taken;
}

void vix_assist_end(void)
{
    pthread_mutex_lock(&vix__assist.mu);
    while (!vix__assist.done)
        pthread_cond_wait(&vix__assist.finished, &vix__assist.mu);
    vix__assist.queued = false;
    pthread_mutex_unlock(&vix__assist.mu);
}
