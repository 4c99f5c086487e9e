/* Small deterministic PRNG (xoshiro256** seeded through splitmix64) shared by
 * the phrase generator and the simulator.  rand() is process-global and its
 * sequence differs between C libraries; training data must be reproducible
 * from a seed alone, and every phrase needs its own independent stream. */
#ifndef PHO_RNG_H
#define PHO_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct pho_rng {
    uint64_t s[4];
} pho_rng;

/* splitmix64's finaliser: a bijection that spreads every input bit over
 * the output, for hashing counters and keys into well-mixed values. */
static inline uint64_t pho_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* One splitmix64 step: any state, including 0, gives a full-period stream. */
static inline uint64_t pho_splitmix64(uint64_t *x)
{
    return pho_mix64(*x += 0x9e3779b97f4a7c15ull);
}

/* Two keys so that (seed, index) pairs map to unrelated streams: mixing the
 * index through splitmix first keeps neighbouring indices apart. */
static inline void pho_rng_seed(pho_rng *r, uint64_t seed, uint64_t stream)
{
    uint64_t x = stream;
    uint64_t k = pho_splitmix64(&x) ^ seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = pho_splitmix64(&k);
}

static inline uint64_t pho_rng_next(pho_rng *r)
{
    uint64_t *s = r->s;
    uint64_t x = s[1] * 5;
    uint64_t res = ((x << 7) | (x >> 57)) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = (s[3] << 45) | (s[3] >> 19);
    return res;
}

/* Uniform in [0, n); n > 0.  Modulo bias is below 2^-40 for the pool sizes
 * used here, far under anything a training mix could notice. */
static inline size_t pho_rng_below(pho_rng *r, size_t n)
{
    return (size_t)(pho_rng_next(r) % (uint64_t)n);
}

/* Uniform in [0, 1). */
static inline double pho_rng_unit(pho_rng *r)
{
    return (double)(pho_rng_next(r) >> 11) * 0x1.0p-53;
}

static inline double pho_rng_range(pho_rng *r, double lo, double hi)
{
    return lo + (hi - lo) * pho_rng_unit(r);
}

#endif
