/* Per-request memory pool (arena).  Everything a request needs — its body,
 * the parsed hypotheses, the strings copied out of the JSON tree — comes from
 * one pool that is destroyed when the request completes, so a handler never
 * frees piecemeal and cannot leak across requests.  A hard cap on the bytes
 * a pool may take from malloc bounds what any one request can cost. */
#ifndef SRV_POOL_H
#define SRV_POOL_H

#include <stddef.h>

#include "proto/erd_error.h"

typedef struct srv_pool srv_pool;

/* Smallest chunk the pool will ask malloc for; larger requests get a chunk of
 * their own. */
#define SRV_POOL_DEFAULT_CHUNK 4096

/* chunk_size: bytes per ordinary chunk (0 = SRV_POOL_DEFAULT_CHUNK).
 * max_bytes: hard cap on everything the pool takes from malloc, chunk headers
 * included (0 = no cap).  ERD_ENOMEM when the pool itself cannot be allocated,
 * ERD_EINVAL when max_bytes cannot hold even one chunk. */
int srv_pool_create(size_t chunk_size, size_t max_bytes, srv_pool **ret);

/* Frees every allocation of the pool at once; accepts NULL. */
void srv_pool_destroy(srv_pool *pool);

/* size bytes aligned for any object type (max_align_t); NULL when the cap
 * would be exceeded or malloc fails.  size 0 yields a valid unique pointer. */
void *srv_pool_alloc(srv_pool *pool, size_t size);

/* Copies s[0..n) and a terminating NUL; NULL as srv_pool_alloc. */
char *srv_pool_strndup(srv_pool *pool, const char *s, size_t n);

/* Grows (or shrinks) an allocation of old_size bytes to new_size, in place
 * when ptr is the newest allocation and its chunk has room, else by copying.
 * ptr may be NULL (then it is srv_pool_alloc).  NULL on failure, leaving ptr
 * intact.  Lets a streamed request body grow without a realloc per read. */
void *srv_pool_realloc(srv_pool *pool, void *ptr, size_t old_size, size_t new_size);

/* Bytes taken from malloc so far (what the cap is checked against). */
size_t srv_pool_footprint(const srv_pool *pool);

/* The cap given to srv_pool_create (0 = none). */
size_t srv_pool_cap(const srv_pool *pool);

#endif
