#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/http/srv_pool.h"
#include "tap.h"

static int aligned(const void *p)
{
    return ((uintptr_t)p % alignof(max_align_t)) == 0;
}

static void test_basic(void)
{
    srv_pool *p = NULL;
    is_int(srv_pool_create(0, 0, &p), ERD_OK, "create with defaults");
    ok(p != NULL, "pool returned");

    int all_aligned = 1, distinct = 1;
    unsigned char *prev = NULL;
    for (size_t i = 0; i < 500; i++) {
        size_t sz = (i * 7) % 61; /* includes 0 and odd sizes */
        unsigned char *q = srv_pool_alloc(p, sz);
        if (!q || !aligned(q))
            all_aligned = 0;
        if (q && q == prev)
            distinct = 0;
        if (q)
            memset(q, 0xAB, sz);
        prev = q;
    }
    ok(all_aligned, "every allocation aligned for max_align_t");
    ok(distinct, "size-0 and small allocations are distinct");

    /* allocations do not overlap: fill each with its own byte and re-check */
    unsigned char *blocks[64];
    for (int i = 0; i < 64; i++) {
        blocks[i] = srv_pool_alloc(p, 100 + (size_t)i * 37);
        memset(blocks[i], i, 100 + (size_t)i * 37);
    }
    int intact = 1;
    for (int i = 0; i < 64; i++)
        for (size_t j = 0; j < 100 + (size_t)i * 37; j++)
            if (blocks[i][j] != (unsigned char)i)
                intact = 0;
    ok(intact, "allocations do not overlap");

    char *s = srv_pool_strndup(p, "hello world", 5);
    is_str(s, "hello", "strndup copies n bytes and terminates");
    char *e = srv_pool_strndup(p, "", 0);
    is_str(e, "", "strndup of empty string");
    ok(srv_pool_strndup(p, NULL, 3) == NULL, "strndup of NULL fails");

    void *big = srv_pool_alloc(p, 1 << 20);
    ok(big && aligned(big), "large allocation gets its own aligned chunk");
    void *after = srv_pool_alloc(p, 16);
    ok(after != NULL, "small allocation still works after a big one");
    ok(srv_pool_footprint(p) > (1u << 20), "footprint counts the big chunk");

    srv_pool_destroy(p);
    srv_pool_destroy(NULL);
    ok(1, "destroy accepts NULL");
}

static void test_cap(void)
{
    srv_pool *p = NULL;
    const size_t cap = 64 * 1024;
    is_int(srv_pool_create(4096, cap, &p), ERD_OK, "create with a 64 KiB cap");
    is_int((long long)srv_pool_cap(p), (long long)cap, "cap reported");

    size_t got = 0;
    while (srv_pool_alloc(p, 100))
        got += 100;
    ok(got > cap / 2, "most of the cap is usable (%zu bytes)", got);
    ok(got < cap, "allocation stops before the cap");
    ok(srv_pool_footprint(p) <= cap, "footprint never exceeds the cap (%zu)", srv_pool_footprint(p));
    ok(srv_pool_alloc(p, 100) == NULL, "stays refused once exhausted");
    srv_pool_destroy(p);

    p = NULL;
    is_int(srv_pool_create(4096, cap, &p), ERD_OK, "fresh capped pool");
    ok(srv_pool_alloc(p, cap) == NULL, "single allocation the size of the cap refused");
    ok(srv_pool_alloc(p, SIZE_MAX) == NULL, "SIZE_MAX refused without overflow");
    ok(srv_pool_alloc(p, SIZE_MAX - 8) == NULL, "near-SIZE_MAX refused without overflow");
    ok(srv_pool_strndup(p, "x", SIZE_MAX) == NULL, "strndup with n=SIZE_MAX refused");
    ok(srv_pool_alloc(p, 1000) != NULL, "pool still usable after refusals");
    ok(srv_pool_footprint(p) <= cap, "footprint within cap");
    srv_pool_destroy(p);

    p = NULL;
    is_int(srv_pool_create(0, 4, &p), ERD_EINVAL, "cap smaller than the pool itself rejected");
    ok(p == NULL, "ret untouched on failure");
}

static void test_realloc(void)
{
    srv_pool *p = NULL;
    srv_pool_create(4096, 1 << 20, &p);

    char *a = srv_pool_realloc(p, NULL, 0, 10);
    ok(a != NULL, "realloc(NULL) allocates");
    memcpy(a, "0123456789", 10);
    char *b = srv_pool_realloc(p, a, 10, 200);
    ok(b == a, "newest allocation grows in place");
    ok(memcmp(b, "0123456789", 10) == 0, "contents kept");

    char *other = srv_pool_alloc(p, 8);
    (void)other;
    char *c = srv_pool_realloc(p, b, 200, 400);
    ok(c != NULL && c != b, "older allocation moves");
    ok(memcmp(c, "0123456789", 10) == 0, "contents copied on move");

    /* grow by doubling up to 256 KiB, as a streamed body does */
    size_t size = 16;
    char *buf = srv_pool_alloc(p, size);
    memset(buf, 'z', size);
    int kept = 1;
    while (size < (256u << 10)) {
        char *nb = srv_pool_realloc(p, buf, size, size * 2);
        if (!nb) {
            kept = 0;
            break;
        }
        for (size_t i = 0; i < size; i++)
            if (nb[i] != 'z')
                kept = 0;
        memset(nb + size, 'z', size);
        buf = nb;
        size *= 2;
    }
    ok(kept, "doubling growth keeps contents");
    ok(srv_pool_footprint(p) <= (1u << 20), "doubling stays within twice the final size");

    char *huge = srv_pool_realloc(p, buf, size, 4u << 20);
    ok(huge == NULL, "growth past the cap refused");
    ok(buf[0] == 'z' && buf[size - 1] == 'z', "original left intact after refusal");
    srv_pool_destroy(p);
}

int main(void)
{
    test_basic();
    test_cap();
    test_realloc();
    return tap_done();
}
