#include "server/http/srv_pool.h"

#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SRV__ALIGN (alignof(max_align_t))

typedef struct srv__chunk {
    struct srv__chunk *next;
    size_t size; /* usable bytes after the header */
    size_t used;
} srv__chunk;

/* Header rounded up so the data that follows keeps malloc's alignment. */
#define SRV__CHUNK_HDR ((sizeof(srv__chunk) + SRV__ALIGN - 1) & ~(SRV__ALIGN - 1))

struct srv_pool {
    srv__chunk *head; /* the chunk small allocations are carved from */
    size_t chunk_size;
    size_t max_bytes;
    size_t footprint;
    /* newest allocation, so srv_pool_realloc can extend it in place */
    void *last;
    srv__chunk *last_chunk;
};

static unsigned char *srv__data(srv__chunk *c)
{
    return (unsigned char *)c + SRV__CHUNK_HDR;
}

/* Rounds n up to the alignment; 0 when that overflows (n==0 is mapped to one
 * unit by the callers first). */
static size_t srv__round(size_t n)
{
    if (n > SIZE_MAX - (SRV__ALIGN - 1))
        return 0;
    return (n + SRV__ALIGN - 1) & ~(SRV__ALIGN - 1);
}

int srv_pool_create(size_t chunk_size, size_t max_bytes, srv_pool **ret)
{
    if (chunk_size == 0)
        chunk_size = SRV_POOL_DEFAULT_CHUNK;
    /* A chunk must hold its header and at least a few aligned slots. */
    if (chunk_size < SRV__CHUNK_HDR + 4 * SRV__ALIGN)
        chunk_size = SRV__CHUNK_HDR + 4 * SRV__ALIGN;
    if (max_bytes != 0 && max_bytes < sizeof(srv_pool))
        return ERD_EINVAL;
    srv_pool *p = calloc(1, sizeof *p);
    if (!p)
        return ERD_ENOMEM;
    p->chunk_size = chunk_size;
    p->max_bytes = max_bytes;
    p->footprint = sizeof *p;
    *ret = p;
    return ERD_OK;
}

void srv_pool_destroy(srv_pool *pool)
{
    if (!pool)
        return;
    srv__chunk *c = pool->head;
    while (c) {
        srv__chunk *next = c->next;
        free(c);
        c = next;
    }
    free(pool);
}

/* Takes a chunk with room for `usable` bytes from malloc, charging the cap
 * before asking so the cap holds even when malloc would have succeeded. */
static srv__chunk *srv__chunk_new(srv_pool *pool, size_t usable)
{
    if (usable > SIZE_MAX - SRV__CHUNK_HDR)
        return NULL;
    size_t total = SRV__CHUNK_HDR + usable;
    if (pool->max_bytes != 0 &&
        (total > pool->max_bytes || pool->footprint > pool->max_bytes - total))
        return NULL;
    srv__chunk *c = malloc(total);
    if (!c)
        return NULL;
    c->next = NULL;
    c->size = usable;
    c->used = 0;
    pool->footprint += total;
    return c;
}

void *srv_pool_alloc(srv_pool *pool, size_t size)
{
    if (!pool)
        return NULL;
    size_t need = srv__round(size ? size : 1);
    if (need == 0)
        return NULL;
    srv__chunk *c = pool->head;
    if (!c || c->size - c->used < need) {
        size_t ordinary = pool->chunk_size - SRV__CHUNK_HDR;
        if (need > ordinary / 4) {
            /* Big allocations get a chunk of their own, linked behind the
             * head, so they neither waste the rest of the current chunk nor
             * force every later small allocation into a fresh one. */
            srv__chunk *big = srv__chunk_new(pool, need);
            if (!big)
                return NULL;
            if (pool->head) {
                big->next = pool->head->next;
                pool->head->next = big;
            } else {
                pool->head = big;
            }
            big->used = need;
            pool->last = srv__data(big);
            pool->last_chunk = big;
            return pool->last;
        }
        srv__chunk *fresh = srv__chunk_new(pool, ordinary);
        if (!fresh)
            return NULL;
        fresh->next = pool->head;
        pool->head = fresh;
        c = fresh;
    }
    void *p = srv__data(c) + c->used;
    c->used += need;
    pool->last = p;
    pool->last_chunk = c;
    return p;
}

char *srv_pool_strndup(srv_pool *pool, const char *s, size_t n)
{
    if (!s || n == SIZE_MAX)
        return NULL;
    char *d = srv_pool_alloc(pool, n + 1);
    if (!d)
        return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

void *srv_pool_realloc(srv_pool *pool, void *ptr, size_t old_size, size_t new_size)
{
    if (!pool)
        return NULL;
    if (!ptr)
        return srv_pool_alloc(pool, new_size);
    size_t new_need = srv__round(new_size ? new_size : 1);
    if (new_need == 0)
        return NULL;
    if (ptr == pool->last && pool->last_chunk) {
        srv__chunk *c = pool->last_chunk;
        size_t off = (size_t)((unsigned char *)ptr - srv__data(c));
        if (c->size - off >= new_need) {
            c->used = off + new_need;
            return ptr;
        }
    }
    if (new_size <= old_size)
        return ptr;
    void *n = srv_pool_alloc(pool, new_size);
    if (!n)
        return NULL;
    memcpy(n, ptr, old_size);
    return n;
}

size_t srv_pool_footprint(const srv_pool *pool)
{
    return pool ? pool->footprint : 0;
}

size_t srv_pool_cap(const srv_pool *pool)
{
    return pool ? pool->max_bytes : 0;
}
