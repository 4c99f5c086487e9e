#include "server/srv_conn.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

/* An address as compared for the per-address limits: IPv4-mapped IPv6
 * addresses count as the IPv4 address they carry. */
typedef struct srv__addr {
    unsigned char b[16];
    unsigned char len; /* 4 or 16; 0 for other families (not limited) */
} srv__addr;

/* An admitted connection holds its entry from the accept policy on
 * (reserved, no socket yet) so that accepts running side by side in
 * several workers count each other; srv_conn_open claims it. */
#define SRV__RESERVE_NS 2000000000u

struct srv_conn {
    bool used;
    uint64_t reserved_ns; /* admitted at, not yet opened; 0 once opened */
    int fd;
    srv__addr addr;
    enum srv_conn_phase phase;
    uint64_t deadline_ns; /* 0: none */
    uint64_t requests;    /* finished on this connection */
    bool shut;            /* already shut down by the cleaner */
    atomic_bool bad_path;
};

struct srv_conn_table {
    pthread_mutex_t mu;
    srv_conn *v;
    size_t cap;
};

uint64_t srv_conn_now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static srv__addr srv__addr_of(const struct sockaddr *sa, socklen_t len)
{
    static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    srv__addr a = {{0}, 0};
    if (sa && sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        memcpy(a.b, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        a.len = 4;
    } else if (sa && sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const unsigned char *p = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
        if (memcmp(p, v4mapped, 12) == 0) {
            memcpy(a.b, p + 12, 4);
            a.len = 4;
        } else {
            memcpy(a.b, p, 16);
            a.len = 16;
        }
    }
    return a;
}

static bool srv__addr_eq(const srv__addr *x, const srv__addr *y)
{
    return x->len && x->len == y->len && memcmp(x->b, y->b, x->len) == 0;
}

int srv_conn_table_create(size_t cap, srv_conn_table **ret, erd_diag *diag)
{
    if (cap == 0)
        return erd_fail(diag, ERD_EINVAL, "srv_conn_table_create: no capacity");
    srv_conn_table *t = calloc(1, sizeof *t);
    if (t)
        t->v = calloc(cap, sizeof *t->v);
    if (!t || !t->v) {
        free(t);
        return erd_fail(diag, ERD_ENOMEM, "out of memory");
    }
    t->cap = cap;
    pthread_mutex_init(&t->mu, NULL);
    *ret = t;
    return ERD_OK;
}

void srv_conn_table_destroy(srv_conn_table *t)
{
    if (!t)
        return;
    pthread_mutex_destroy(&t->mu);
    free(t->v);
    free(t);
}

/* Reservations whose connection never opened (the server dropped it after
 * admitting it) are given back. */
static void srv__release_stale(srv_conn_table *t, uint64_t now_ns)
{
    for (size_t i = 0; i < t->cap; i++)
        if (t->v[i].used && t->v[i].reserved_ns && now_ns - t->v[i].reserved_ns > SRV__RESERVE_NS)
            t->v[i].used = false;
}

bool srv_conn_admit(srv_conn_table *t, const struct sockaddr *addr, socklen_t len,
                    unsigned per_ip, unsigned half_open_per_ip, unsigned half_open_all)
{
    srv__addr a = srv__addr_of(addr, len);
    size_t used = 0, same = 0, half_open = 0, half_open_total = 0;
    pthread_mutex_lock(&t->mu);
    srv__release_stale(t, srv_conn_now_ns());
    for (size_t i = 0; i < t->cap; i++) {
        const srv_conn *c = &t->v[i];
        if (!c->used)
            continue;
        used++;
        bool half = c->requests == 0 && c->phase != SRV_CONN_REPLY;
        half_open_total += half;
        if (!srv__addr_eq(&c->addr, &a))
            continue;
        same++;
        half_open += half;
    }
    bool ok = used < t->cap && !(per_ip && same >= per_ip) &&
              /* Many slow addresses together: the ones already trickling
               * wait, an address that is not still gets in. */
              !(half_open_all && half_open_total >= half_open_all && half_open > 0) &&
              !(half_open_per_ip && half_open >= half_open_per_ip);
    for (size_t i = 0; ok && i < t->cap; i++) {
        srv_conn *c = &t->v[i];
        if (c->used)
            continue;
        *c = (srv_conn){.used = true, .reserved_ns = srv_conn_now_ns(), .fd = -1, .addr = a,
                        .phase = SRV_CONN_HEADERS};
        break;
    }
    pthread_mutex_unlock(&t->mu);
    return ok;
}

srv_conn *srv_conn_open(srv_conn_table *t, int fd, const struct sockaddr *addr, socklen_t len,
                        uint64_t deadline_ns)
{
    srv__addr a = srv__addr_of(addr, len);
    srv_conn *found = NULL;
    pthread_mutex_lock(&t->mu);
    /* the entry the accept policy reserved for this address, else any */
    for (size_t i = 0; i < t->cap && !found; i++)
        if (t->v[i].used && t->v[i].reserved_ns && srv__addr_eq(&t->v[i].addr, &a))
            found = &t->v[i];
    for (size_t i = 0; i < t->cap && !found; i++)
        if (!t->v[i].used)
            found = &t->v[i];
    if (found) {
        srv_conn *c = found;
        c->used = true;
        c->reserved_ns = 0;
        c->fd = fd;
        c->addr = a;
        c->phase = SRV_CONN_HEADERS;
        c->deadline_ns = deadline_ns;
        c->requests = 0;
        c->shut = false;
        atomic_store(&c->bad_path, false);
    }
    pthread_mutex_unlock(&t->mu);
    return found;
}

void srv_conn_close(srv_conn_table *t, srv_conn *c)
{
    if (!t || !c)
        return;
    pthread_mutex_lock(&t->mu);
    c->used = false;
    c->fd = -1;
    pthread_mutex_unlock(&t->mu);
}

void srv_conn_phase(srv_conn_table *t, srv_conn *c, enum srv_conn_phase phase,
                    uint64_t deadline_ns)
{
    if (!t || !c)
        return;
    pthread_mutex_lock(&t->mu);
    if (phase == SRV_CONN_HEADERS && c->phase != SRV_CONN_HEADERS)
        c->requests++;
    c->phase = phase;
    c->deadline_ns = deadline_ns;
    pthread_mutex_unlock(&t->mu);
}

void srv_conn_extend(srv_conn_table *t, srv_conn *c, uint64_t deadline_ns)
{
    if (!t || !c)
        return;
    pthread_mutex_lock(&t->mu);
    if (c->deadline_ns && deadline_ns > c->deadline_ns)
        c->deadline_ns = deadline_ns;
    pthread_mutex_unlock(&t->mu);
}

void srv_conn_flag_bad_path(srv_conn *c)
{
    if (c)
        atomic_store(&c->bad_path, true);
}

bool srv_conn_take_bad_path(srv_conn *c)
{
    return c && atomic_exchange(&c->bad_path, false);
}

size_t srv_conn_expire(srv_conn_table *t, uint64_t now_ns)
{
    size_t n = 0;
    pthread_mutex_lock(&t->mu);
    srv__release_stale(t, now_ns);
    for (size_t i = 0; i < t->cap; i++) {
        srv_conn *c = &t->v[i];
        if (!c->used || c->reserved_ns || c->shut || !c->deadline_ns || now_ns < c->deadline_ns)
            continue;
        /* Under the lock the server cannot close and reuse the descriptor:
         * it drops the entry (srv_conn_close) before closing the socket.
         * shutdown wakes whichever thread polls it, which then reads the
         * end of the stream and closes the connection. */
        shutdown(c->fd, SHUT_RDWR);
        c->shut = true;
        n++;
    }
    pthread_mutex_unlock(&t->mu);
    return n;
}

void srv_conn_counts(srv_conn_table *t, size_t *ret_open, size_t *ret_half_open)
{
    size_t used = 0, half = 0;
    pthread_mutex_lock(&t->mu);
    for (size_t i = 0; i < t->cap; i++) {
        if (!t->v[i].used)
            continue;
        used++;
        half += t->v[i].requests == 0 && t->v[i].phase != SRV_CONN_REPLY;
    }
    pthread_mutex_unlock(&t->mu);
    if (ret_open)
        *ret_open = used;
    if (ret_half_open)
        *ret_half_open = half;
}
