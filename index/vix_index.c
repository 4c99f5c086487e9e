/* FAISS through its C API.  The C API catches every C++ exception and turns
 * it into a negative return; the text stays in a thread-local slot that
 * faiss_get_last_error() reads, so it is copied right after each call. */
#include "index/vix_index.h"
#include "index/vix_internal.h"
#include "index/vix_ivf.h"
#include "proto/erd_file.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#endif

#include <faiss/c_api/AutoTune_c.h>
#include <faiss/c_api/IndexFlat_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/MetaIndexes_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/index_factory_c.h>
#include <faiss/c_api/index_io_c.h>

/* FAISS takes int dimensions; anything near that is a caller bug, and a
 * bound keeps n * dim products far from overflow. */
#define VIX_INDEX_MAX_DIM 65536
#define VIX_INDEX_MAX_FACTORY 256
#define VIX_INDEX_MAX_K 100000

struct vix_index {
    FaissIndex *idx; /* NULL for erd's own IVF */
    vix_ivf *erd;    /* erd's own IVF ("erdIVF<n>,SQ<b>"), or NULL */
    size_t dim;
    /* An IDMap over an inner-product IndexFlat is searched by
     * vix__flat_search: Debian's generic FAISS build scores flat indexes one
     * scalar product at a time (fvec_inner_product_ref; measured 0.8 ms of a
     * 1.4 ms resolve on 15k vectors).  flat_x and flat_ids borrow FAISS's
     * arrays.  An add drops them (it may move FAISS's arrays); the first
     * search after it makes them again, so a build adding chunk after chunk
     * and never searching does not convert the whole index per chunk. */
    pthread_mutex_t flat_mu;    /* first searches may race to attach */
    atomic_bool flat_current;   /* the fields below match FAISS's arrays */
    uint16_t *flat_h;      /* owned: bfloat16 copy, transposed (vix__flat_attach) */
    bool flat_pairs;       /* flat_h holds dimension pairs per lane, for vdpbf16ps */
    uint8_t *flat_c;       /* owned: 8-bit codes instead of flat_h (vix__flat_codes) */
    float *flat_q;         /* owned, with flat_c: per dimension lo, step, largest residual */
    float flat_rnorm;      /* with flat_c: largest residual norm |x - lo - step c| */
    const float *flat_x;   /* the vectors, row-major */
    const idx_t *flat_ids;
    size_t flat_n;
    float flat_maxnorm;    /* largest vector norm */
};

/* Vectors side by side in the transposed copy: one SIMD register of lanes. */
#define VIX_LANES 16
/* Buckets of the score histogram vix__flat_search cuts its candidates with. */
#define VIX_HIST 2048

/* float -> bfloat16, rounding to nearest even: the top half of the float. */
static uint16_t vix__bf16(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* The 8-bit pass's 32-bit sums stay exact up to this many dimensions
 * (vix__u8_query); wider indexes keep the bfloat16 copy. */
#define VIX_U8_MAX_DIM 256

static void vix__flat_drop(vix_index *ix)
{
    free(ix->flat_h);
    free(ix->flat_c);
    free(ix->flat_q);
    ix->flat_h = NULL;
    ix->flat_c = NULL;
    ix->flat_q = NULL;
    ix->flat_n = 0;
}

/* The bfloat16 copy: VIX_LANES vectors at a time, dimension-major, so the
 * scan runs one vector per SIMD lane over half the bytes of the floats. */
static bool vix__flat_bf16(vix_index *ix, const float *x, size_t n)
{
    size_t nblk = (n + VIX_LANES - 1) / VIX_LANES;
    /* With the bfloat16 dot-product instruction a lane holds dimensions
     * 2p and 2p + 1 side by side (an odd dimension is padded with 0). */
    const bool pairs = vix__isa() >= VIX__ISA_AVX512_BF16;
    const size_t dimp = pairs ? (ix->dim + 1) & ~(size_t)1 : ix->dim;
    if (nblk > SIZE_MAX / sizeof(uint16_t) / VIX_LANES / dimp)
        return false;
    size_t bytes = nblk * dimp * VIX_LANES * sizeof(uint16_t);
    bytes = (bytes + 63) & ~(size_t)63; /* aligned_alloc wants whole alignments */
    uint16_t *h = aligned_alloc(64, bytes);
    if (!h)
        return false;
    memset(h, 0, bytes); /* the last block's unused lanes score 0 and are never read */
    for (size_t i = 0; i < n; i++) {
        uint16_t *dst = h + (i / VIX_LANES) * dimp * VIX_LANES;
        size_t lane = i % VIX_LANES;
        for (size_t d = 0; d < ix->dim; d++) {
            float v = x[i * ix->dim + d];
            if (pairs)
                dst[(d / 2) * 2 * VIX_LANES + lane * 2 + d % 2] = vix__bf16(v);
            else
                dst[d * VIX_LANES + lane] = vix__bf16(v);
        }
    }
    ix->flat_h = h;
    ix->flat_pairs = pairs;
    return true;
}

/* Infinities and NaNs have no code: such indexes keep the bfloat16 copy. */
static bool vix__all_finite(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return false;
    return true;
}

/* The 8-bit copy (vix__approx_u8 reads it): per dimension d, lo_d the
 * smallest value and step_d = (max - lo_d) / 255; vector i's code is
 * c = round((x - lo_d) / step_d), so x = lo_d + step_d c + r, and the
 * largest |r| per dimension and largest residual norm are kept for the
 * error bound (measured, not assumed: rounding of step_d cannot break it).
 * Laid out VIX_LANES vectors at a time, 4 dimensions of a vector per
 * 32-bit lane, as vpdpbusd takes them; padding codes are 0. */
static bool vix__flat_codes(vix_index *ix, const float *x, size_t n)
{
    const size_t dim = ix->dim, nq = (dim + 3) / 4, nblk = (n + VIX_LANES - 1) / VIX_LANES;
    if (nblk > SIZE_MAX / 64 / nq)
        return false;
    uint8_t *c = aligned_alloc(64, nblk * nq * 64);
    float *p = calloc(3 * dim, sizeof *p);
    if (!c || !p) {
        free(c);
        free(p);
        return false;
    }
    memset(c, 0, nblk * nq * 64);
    float *lo = p, *step = p + dim, *res = p + 2 * dim;
    for (size_t d = 0; d < dim; d++) {
        float mn = x[d], mx = x[d];
        for (size_t i = 1; i < n; i++) {
            mn = fminf(mn, x[i * dim + d]);
            mx = fmaxf(mx, x[i * dim + d]);
        }
        lo[d] = mn;
        step[d] = (mx - mn) / 255.0f;
    }
    double rmax = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t *dst = c + (i / VIX_LANES) * nq * 64 + (i % VIX_LANES) * 4;
        double rr = 0;
        for (size_t d = 0; d < dim; d++) {
            double v = x[i * dim + d], code = step[d] > 0 ? rint((v - lo[d]) / step[d]) : 0;
            code = code < 0 ? 0 : code > 255 ? 255 : code;
            dst[(d / 4) * 64 + d % 4] = (uint8_t)code;
            double r = fabs(v - (lo[d] + (double)step[d] * code));
            res[d] = r > res[d] ? (float)r : res[d]; /* rounded up below */
            rr += r * r;
        }
        rmax = rr > rmax ? rr : rmax;
    }
    for (size_t d = 0; d < dim; d++)
        res[d] = nextafterf(res[d], INFINITY);
    ix->flat_c = c;
    ix->flat_q = p;
    ix->flat_rnorm = nextafterf((float)(sqrt(rmax) * (1 + 1e-9)), INFINITY);
    return true;
}

/* Points the index at FAISS's flat storage when it has that shape, and
 * keeps a bfloat16 or 8-bit copy laid out VIX_LANES vectors at a time,
 * dimension-major, so the scan runs one vector per SIMD lane over half the
 * bytes (the scan is bound by memory bandwidth).  Without memory for the
 * copy the index is searched through FAISS. */
static void vix__flat_attach(vix_index *ix)
{
    atomic_store(&ix->flat_current, true); /* also when the index has no flat shape */
    vix__flat_drop(ix);
    ix->flat_x = NULL;
    ix->flat_ids = NULL;
    FaissIndexIDMap *map = ix->idx ? faiss_IndexIDMap_cast(ix->idx) : NULL;
    if (!map)
        return;
    FaissIndexFlat *flat = faiss_IndexFlat_cast(faiss_IndexIDMap_sub_index(map));
    if (!flat || faiss_Index_metric_type(flat) != METRIC_INNER_PRODUCT)
        return;
    float *x = NULL;
    idx_t *ids = NULL;
    size_t nx = 0, nids = 0;
    faiss_IndexFlat_xb(flat, &x, &nx);
    faiss_IndexIDMap_id_map(map, &ids, &nids);
    if (nids == 0 || nids > UINT32_MAX || !x || !ids || nx != nids * ix->dim)
        return;
    if (vix__isa() == VIX__ISA_AVX512_VNNI && ix->dim <= VIX_U8_MAX_DIM &&
        vix__all_finite(x, nids * ix->dim)) {
        if (!vix__flat_codes(ix, x, nids))
            return;
    } else if (!vix__flat_bf16(ix, x, nids)) {
        return;
    }
    float maxnorm = 0;
    for (size_t i = 0; i < nids; i++) {
        double norm = 0;
        for (size_t d = 0; d < ix->dim; d++)
            norm += (double)x[i * ix->dim + d] * x[i * ix->dim + d];
        maxnorm = fmaxf(maxnorm, (float)sqrt(norm));
    }
    ix->flat_x = x;
    ix->flat_ids = ids;
    ix->flat_n = nids;
    ix->flat_maxnorm = maxnorm;
}

/* Makes the flat fields current before a search; cheap once they are. */
static void vix__flat_current(const vix_index *cix)
{
    vix_index *ix = (vix_index *)cix; /* a cache of FAISS's arrays, not the index itself */
    if (atomic_load(&ix->flat_current))
        return;
    pthread_mutex_lock(&ix->flat_mu);
    if (!atomic_load(&ix->flat_current))
        vix__flat_attach(ix);
    pthread_mutex_unlock(&ix->flat_mu);
}

/* Scores of q against nblk transposed blocks: out[b * VIX_LANES + l], from
 * bfloat16 (bf16) or float blocks.  Each lane sums its products in
 * dimension order, as FAISS's scalar fvec_inner_product_ref does, so on
 * float blocks the scores are bit for bit FAISS's.  Vector types rather than
 * a lane loop: left to itself the compiler vectorises along d, shuffling
 * lanes instead of loading them. */
typedef float vix__vlanes __attribute__((vector_size(VIX_LANES * sizeof(float))));
typedef uint32_t vix__vwide __attribute__((vector_size(VIX_LANES * sizeof(uint32_t))));
typedef uint16_t vix__vhalf __attribute__((vector_size(VIX_LANES * sizeof(uint16_t))));

/* Row i of the blocks as floats (through a pointer: returning a vector
 * type by value changes the ABI between instruction sets). */
static inline __attribute__((always_inline)) void vix__load(vix__vlanes *x, const void *t,
                                                             size_t i, int bf16)
{
    if (bf16) {
        vix__vhalf h;
        memcpy(&h, (const uint16_t *)t + i * VIX_LANES, sizeof h);
        vix__vwide w = __builtin_convertvector(h, vix__vwide) << 16;
        memcpy(x, &w, sizeof *x);
    } else {
        memcpy(x, (const float *)t + i * VIX_LANES, sizeof *x);
    }
}

static inline __attribute__((always_inline)) void vix__dots(const void *t, size_t nblk, size_t dim,
                                                             const float *restrict q,
                                                             float *restrict out, int bf16)
{
    size_t b = 0;
    /* four blocks at a time: four independent sums hide the add latency */
    for (; b + 4 <= nblk; b += 4) {
        vix__vlanes a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, x0, x1, x2, x3;
        for (size_t d = 0; d < dim; d++) {
            vix__load(&x0, t, b * dim + d, bf16);
            vix__load(&x1, t, (b + 1) * dim + d, bf16);
            vix__load(&x2, t, (b + 2) * dim + d, bf16);
            vix__load(&x3, t, (b + 3) * dim + d, bf16);
            a0 += x0 * q[d];
            a1 += x1 * q[d];
            a2 += x2 * q[d];
            a3 += x3 * q[d];
        }
        memcpy(out + b * VIX_LANES, &a0, sizeof a0);
        memcpy(out + (b + 1) * VIX_LANES, &a1, sizeof a1);
        memcpy(out + (b + 2) * VIX_LANES, &a2, sizeof a2);
        memcpy(out + (b + 3) * VIX_LANES, &a3, sizeof a3);
    }
    for (; b < nblk; b++) {
        vix__vlanes acc = {0}, x;
        for (size_t d = 0; d < dim; d++) {
            vix__load(&x, t, b * dim + d, bf16);
            acc += x * q[d];
        }
        memcpy(out + b * VIX_LANES, &acc, sizeof acc);
    }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
/* The bfloat16 pass with one widening load per row (the compiler splits it
 * into halves and reassembles them) and fused multiply-adds: this pass is
 * approximate anyway, and a fused product only lowers its error. */
__attribute__((target("avx512f"))) static void
vix__approx_avx512(const uint16_t *t, size_t nblk, size_t dim, const float *q, float *out)
{
    size_t b = 0;
    for (; b + 4 <= nblk; b += 4) {
        const uint16_t *t0 = t + b * dim * VIX_LANES;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (size_t d = 0; d < dim; d++) {
            __m512 qd = _mm512_set1_ps(q[d]);
#define VIX__ROW_BF16(k)                                                                       \
    _mm512_castsi512_ps(_mm512_slli_epi32(                                                     \
        _mm512_cvtepu16_epi32(_mm256_loadu_si256(                                              \
            (const __m256i *)(t0 + ((k) * dim + d) * VIX_LANES))),                             \
        16))
            a0 = _mm512_fmadd_ps(VIX__ROW_BF16(0), qd, a0);
            a1 = _mm512_fmadd_ps(VIX__ROW_BF16(1), qd, a1);
            a2 = _mm512_fmadd_ps(VIX__ROW_BF16(2), qd, a2);
            a3 = _mm512_fmadd_ps(VIX__ROW_BF16(3), qd, a3);
        }
        _mm512_storeu_ps(out + b * VIX_LANES, a0);
        _mm512_storeu_ps(out + (b + 1) * VIX_LANES, a1);
        _mm512_storeu_ps(out + (b + 2) * VIX_LANES, a2);
        _mm512_storeu_ps(out + (b + 3) * VIX_LANES, a3);
    }
    for (; b < nblk; b++) {
        const uint16_t *t0 = t + b * dim * VIX_LANES;
        __m512 a0 = _mm512_setzero_ps();
        for (size_t d = 0; d < dim; d++)
            a0 = _mm512_fmadd_ps(VIX__ROW_BF16(0), _mm512_set1_ps(q[d]), a0);
        _mm512_storeu_ps(out + b * VIX_LANES, a0);
    }
#undef VIX__ROW_BF16
}

/* The approximate pass on dimension pairs (flat_pairs): the query rounded
 * to bfloat16 too, and one vdpbf16ps per pair of dimensions of 16 vectors
 * where the plain pass needs a widening load, a shift and a multiply-add
 * per dimension. */
__attribute__((target("avx512f,avx512bf16"))) static void
vix__approx_bf16dp(const uint16_t *t, size_t nblk, size_t dim, const float *q, float *out)
{
    const size_t npair = (dim + 1) / 2;
    uint32_t qp[VIX_INDEX_MAX_DIM / 2 + 1];
    for (size_t p = 0; p < npair; p++)
        qp[p] = (uint32_t)vix__bf16(q[2 * p]) |
                (2 * p + 1 < dim ? (uint32_t)vix__bf16(q[2 * p + 1]) << 16 : 0);
    const size_t stride = npair * 2 * VIX_LANES; /* uint16s per block */
    size_t b = 0;
    for (; b + 4 <= nblk; b += 4) {
        const uint16_t *t0 = t + b * stride;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (size_t p = 0; p < npair; p++) {
            __m512bh qv = (__m512bh)_mm512_set1_epi32((int)qp[p]);
            const uint16_t *r = t0 + p * 2 * VIX_LANES;
            a0 = _mm512_dpbf16_ps(a0, (__m512bh)_mm512_loadu_si512(r), qv);
            a1 = _mm512_dpbf16_ps(a1, (__m512bh)_mm512_loadu_si512(r + stride), qv);
            a2 = _mm512_dpbf16_ps(a2, (__m512bh)_mm512_loadu_si512(r + 2 * stride), qv);
            a3 = _mm512_dpbf16_ps(a3, (__m512bh)_mm512_loadu_si512(r + 3 * stride), qv);
        }
        _mm512_storeu_ps(out + b * VIX_LANES, a0);
        _mm512_storeu_ps(out + (b + 1) * VIX_LANES, a1);
        _mm512_storeu_ps(out + (b + 2) * VIX_LANES, a2);
        _mm512_storeu_ps(out + (b + 3) * VIX_LANES, a3);
    }
    for (; b < nblk; b++) {
        const uint16_t *t0 = t + b * stride;
        __m512 a0 = _mm512_setzero_ps();
        for (size_t p = 0; p < npair; p++)
            a0 = _mm512_dpbf16_ps(a0, (__m512bh)_mm512_loadu_si512(t0 + p * 2 * VIX_LANES),
                                  (__m512bh)_mm512_set1_epi32((int)qp[p]));
        _mm512_storeu_ps(out + b * VIX_LANES, a0);
    }
}

/* The 8-bit pass (flat_c): per block, sum_d a_d c_d and sum_d b_d c_d by
 * vpdpbusd (unsigned code times signed weight byte, 4 dimensions a lane,
 * wrapping 32-bit sums that never wrap: vix__u8_query), then
 * base + s (256 A + B) in floats.  One byte a dimension, half the bfloat16
 * copy's: the pass is bound by memory bandwidth, and the second weight byte
 * (a finer query, a tighter bound) costs no time. */
__attribute__((target("avx512f,avx512bw,avx512vnni"))) static void
vix__approx_u8(const uint8_t *t, size_t nblk, size_t nq, const int32_t *wa, const int32_t *wb,
               float base, float s, float *out)
{
    const size_t stride = nq * 64;
    const __m512 vb = _mm512_set1_ps(base), vs = _mm512_set1_ps(s);
#define VIX__U8_OUT(a, b, j)                                                                   \
    _mm512_storeu_ps(out + (j) * VIX_LANES,                                                    \
                     _mm512_add_ps(vb, _mm512_mul_ps(vs, _mm512_cvtepi32_ps(_mm512_add_epi32( \
                                                              _mm512_slli_epi32(a, 8), b)))))
    size_t b = 0;
    for (; b + 4 <= nblk; b += 4) {
        const uint8_t *t0 = t + b * stride;
        __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
        __m512i b0 = a0, b1 = a0, b2 = a0, b3 = a0;
        for (size_t p = 0; p < nq; p++) {
            const __m512i qa = _mm512_set1_epi32(wa[p]), qb = _mm512_set1_epi32(wb[p]);
            const uint8_t *r = t0 + p * 64;
            __m512i x0 = _mm512_loadu_si512(r), x1 = _mm512_loadu_si512(r + stride);
            __m512i x2 = _mm512_loadu_si512(r + 2 * stride);
            __m512i x3 = _mm512_loadu_si512(r + 3 * stride);
            a0 = _mm512_dpbusd_epi32(a0, x0, qa);
            a1 = _mm512_dpbusd_epi32(a1, x1, qa);
            a2 = _mm512_dpbusd_epi32(a2, x2, qa);
            a3 = _mm512_dpbusd_epi32(a3, x3, qa);
            b0 = _mm512_dpbusd_epi32(b0, x0, qb);
            b1 = _mm512_dpbusd_epi32(b1, x1, qb);
            b2 = _mm512_dpbusd_epi32(b2, x2, qb);
            b3 = _mm512_dpbusd_epi32(b3, x3, qb);
        }
        VIX__U8_OUT(a0, b0, b);
        VIX__U8_OUT(a1, b1, b + 1);
        VIX__U8_OUT(a2, b2, b + 2);
        VIX__U8_OUT(a3, b3, b + 3);
    }
    for (; b < nblk; b++) {
        const uint8_t *t0 = t + b * stride;
        __m512i a0 = _mm512_setzero_si512(), b0 = a0;
        for (size_t p = 0; p < nq; p++) {
            __m512i x0 = _mm512_loadu_si512(t0 + p * 64);
            a0 = _mm512_dpbusd_epi32(a0, x0, _mm512_set1_epi32(wa[p]));
            b0 = _mm512_dpbusd_epi32(b0, x0, _mm512_set1_epi32(wb[p]));
        }
        VIX__U8_OUT(a0, b0, b);
    }
#undef VIX__U8_OUT
}

__attribute__((target("avx512f"))) static void
vix__dots_avx512(const void *t, size_t nblk, size_t dim, const float *q, float *out, int bf16)
{
    if (bf16)
        vix__approx_avx512(t, nblk, dim, q, out);
    else
        vix__dots(t, nblk, dim, q, out, 0);
}
__attribute__((target("avx2"))) static void vix__dots_avx2(const void *t, size_t nblk, size_t dim,
                                                           const float *q, float *out, int bf16)
{
    vix__dots(t, nblk, dim, q, out, bf16);
}
#endif
static void vix__dots_base(const void *t, size_t nblk, size_t dim, const float *q, float *out,
                           int bf16)
{
    vix__dots(t, nblk, dim, q, out, bf16);
}

typedef void (*vix__dots_fn)(const void *, size_t, size_t, const float *, float *, int);

static const char *const vix__isa_names[] = {"base", "avx2", "avx512", "avx512-bf16",
                                              "avx512-vnni"};
static _Atomic int vix__isa_cap = VIX__ISA_AVX512_VNNI;

static enum vix__isa vix__isa_cpu(void)
{
    static _Atomic int detected = -1;
    int isa = detected;
    if (isa >= 0)
        return (enum vix__isa)isa;
    isa = VIX__ISA_BASE;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        isa = __builtin_cpu_supports("avx512bf16") ? VIX__ISA_AVX512_BF16 : VIX__ISA_AVX512;
    if (isa == VIX__ISA_AVX512_BF16 && __builtin_cpu_supports("avx512vnni") &&
        __builtin_cpu_supports("avx512bw"))
        isa = VIX__ISA_AVX512_VNNI;
    else if (isa == VIX__ISA_BASE && __builtin_cpu_supports("avx2"))
        isa = VIX__ISA_AVX2;
#endif
    detected = isa; /* idempotent: a race stores the same value */
    return (enum vix__isa)isa;
}

enum vix__isa vix__isa(void)
{
    enum vix__isa cpu = vix__isa_cpu();
    int cap = vix__isa_cap;
    return (int)cpu < cap ? cpu : (enum vix__isa)cap;
}

int vix_simd_limit(const char *name, erd_diag *diag)
{
    if (!name || !strcmp(name, "auto")) {
        vix__isa_cap = VIX__ISA_AVX512_VNNI;
        return ERD_OK;
    }
    for (int i = 0; i <= VIX__ISA_AVX512_VNNI; i++)
        if (!strcmp(name, vix__isa_names[i])) {
            vix__isa_cap = i;
            return ERD_OK;
        }
    return erd_fail(diag, ERD_ECONFIG,
                    "simd: auto, avx512-vnni, avx512-bf16, avx512, avx2 or base, not \"%s\"", name);
}

const char *vix_simd_name(void)
{
    return vix__isa_names[vix__isa()];
}

static vix__dots_fn vix__dots_pick(void)
{
    switch (vix__isa()) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    case VIX__ISA_AVX512_VNNI:
    case VIX__ISA_AVX512_BF16:
    case VIX__ISA_AVX512:
        return vix__dots_avx512;
    case VIX__ISA_AVX2:
        return vix__dots_avx2;
#endif
    default:
        return vix__dots_base;
    }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
/* The query side of the 8-bit pass, and a bound on |score - exact| for
 * every vector.  With x_d = lo_d + step_d c_d + r_d (vix__flat_codes),
 *   q.x = sum q_d lo_d + sum w_d c_d + sum q_d r_d,  w_d = q_d step_d
 * (w_d exact in double).  The pass uses W_d = round(w_d / s), s the
 * largest |w_d| / 32512, split as 256 a_d + b_d with a_d in [-127, 127] and
 * b_d in [-128, 127], and scores base + s (256 A + B), A = sum a_d c_d,
 * B = sum b_d c_d: |256 A| <= 256 * 256 * 127 * 255 and |256 A + B| <=
 * 256 * 32640 * 255, both below 2^31 at 256 dimensions (VIX_U8_MAX_DIM),
 * so the integer sums are exact.  The error is at most
 *  (1) |sum q_d r_d| <= min(sum |q_d| res_d, |q| rnorm) (Cauchy-Schwarz),
 *  (2) |sum (w_d - s W_d) c_d| <= 255 sum |w_d - s W_d|, the query
 *      weights' rounding, measured in double (exact: s W_d is a float
 *      times a 16-bit integer),
 *  (3) the float work: base rounded, 256 A + B converted, times s, plus
 *      base, four roundings of 2^-24 relative each, within
 *      2^-21 (|base| + s sum |W_d| 255),
 *  (4) the exact scan's own float sum against the real q.x, within
 *      dim 2^-24 / (1 - dim 2^-24) sum |q_d x_d| <= 2^-22 dim |q| max|x|
 *      (vix__flat_search compares scores of that scan, not real numbers).
 * The sum is inflated by 2^-10 and rounded up to float; the sums of
 * non-negative terms in double lose far less. */
static float vix__u8_query(const vix_index *ix, const float *q, int32_t *wa, int32_t *wb,
                           float *base, float *scale)
{
    const size_t dim = ix->dim;
    const float *lo = ix->flat_q, *step = lo + dim, *res = step + dim;
    double wmax = 0, qn = 0, l1 = 0, b0 = 0;
    for (size_t d = 0; d < dim; d++) {
        wmax = fmax(wmax, fabs((double)q[d] * step[d]));
        qn += (double)q[d] * q[d];
        l1 += fabs((double)q[d]) * res[d];
        b0 += (double)q[d] * lo[d];
    }
    if (!isfinite(wmax + qn + l1 + b0))
        return INFINITY; /* no weights: the caller rescores every vector */
    float s = wmax > 0 ? (float)(wmax / 32512) : 1.0f;
    double werr = 0, wsum = 0;
    int8_t ba[VIX_U8_MAX_DIM + 3] = {0}, bb[VIX_U8_MAX_DIM + 3] = {0};
    for (size_t d = 0; d < dim; d++) {
        double w = (double)q[d] * step[d], wq = rint(w / s);
        int32_t W = (int32_t)wq, a = (int32_t)floor((wq + 128) / 256);
        ba[d] = (int8_t)a;
        bb[d] = (int8_t)(W - 256 * a);
        werr += fabs(w - (double)s * W);
        wsum += fabs(wq);
    }
    for (size_t p = 0; p < (dim + 3) / 4; p++) {
        memcpy(&wa[p], ba + 4 * p, 4);
        memcpy(&wb[p], bb + 4 * p, 4);
    }
    *base = (float)b0;
    *scale = s;
    qn = sqrt(qn);
    double err = fmin(l1, qn * ix->flat_rnorm) + 255 * werr +
                 ldexp(fabs(b0) + (double)s * wsum * 255, -21) +
                 ldexp((double)dim * qn * ix->flat_maxnorm, -22);
    return nextafterf((float)(err * (1 + ldexp(1, -10))), INFINITY);
}
#endif

/* ---- cutting the approximate scores down to the candidates ----
 *
 * f(i) = (approx[i] + range) * scale puts score i in histogram bucket
 * (int)f, clamped to 0..VIX_HIST-1.  The cut wants the highest bucket b
 * with at least k scores in buckets b and up.  Counting and filtering are
 * SIMD passes; only a sample and the scores near the top go through the
 * histogram's scalar increments. */
typedef struct vix__cut_fns {
    size_t (*count_ge)(const float *a, size_t n, float range, float scale, float fb);
    size_t (*keep_ge)(const float *a, size_t n, float range, float scale, float fb, float *out);
    size_t (*select_ge)(const float *a, size_t n, float floor, uint32_t *out);
} vix__cut_fns;

/* #{i : f(i) >= fb}; fb a whole bucket number, so f >= fb is (int)f >= fb */
static size_t vix__count_ge(const float *a, size_t n, float range, float scale, float fb)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += (a[i] + range) * scale >= fb;
    return c;
}

/* the f(i) >= fb, in order */
static size_t vix__keep_ge(const float *a, size_t n, float range, float scale, float fb, float *out)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        float f = (a[i] + range) * scale;
        if (f >= fb)
            out[m++] = f;
    }
    return m;
}

/* the i with a[i] >= floor, in order */
static size_t vix__select_ge(const float *a, size_t n, float floor, uint32_t *out)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (a[i] >= floor)
            out[m++] = (uint32_t)i;
    return m;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
/* The same passes 16 scores at a time: the same add then multiply (no
 * fused form), so the same f; compress-stores keep the order. */
__attribute__((target("avx512f,avx512bw"))) static size_t
vix__count_ge_avx512(const float *a, size_t n, float range, float scale, float fb)
{
    const __m512 r = _mm512_set1_ps(range), sc = _mm512_set1_ps(scale), b = _mm512_set1_ps(fb);
    size_t c = 0, i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 f = _mm512_mul_ps(_mm512_add_ps(_mm512_loadu_ps(a + i), r), sc);
        c += (size_t)__builtin_popcount(_mm512_cmp_ps_mask(f, b, _CMP_GE_OQ));
    }
    return c + vix__count_ge(a + i, n - i, range, scale, fb);
}

__attribute__((target("avx512f,avx512bw"))) static size_t
vix__keep_ge_avx512(const float *a, size_t n, float range, float scale, float fb, float *out)
{
    const __m512 r = _mm512_set1_ps(range), sc = _mm512_set1_ps(scale), b = _mm512_set1_ps(fb);
    size_t m = 0, i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 f = _mm512_mul_ps(_mm512_add_ps(_mm512_loadu_ps(a + i), r), sc);
        __mmask16 k = _mm512_cmp_ps_mask(f, b, _CMP_GE_OQ);
        _mm512_mask_compressstoreu_ps(out + m, k, f);
        m += (size_t)__builtin_popcount(k);
    }
    return m + vix__keep_ge(a + i, n - i, range, scale, fb, out + m);
}

__attribute__((target("avx512f,avx512bw"))) static size_t
vix__select_ge_avx512(const float *a, size_t n, float floor, uint32_t *out)
{
    const __m512 fl = _mm512_set1_ps(floor);
    const __m512i step = _mm512_set1_epi32(16);
    __m512i idx = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    size_t m = 0, i = 0;
    for (; i + 16 <= n; i += 16) {
        __mmask16 k = _mm512_cmp_ps_mask(_mm512_loadu_ps(a + i), fl, _CMP_GE_OQ);
        _mm512_mask_compressstoreu_epi32(out + m, k, idx);
        m += (size_t)__builtin_popcount(k);
        idx = _mm512_add_epi32(idx, step);
    }
    for (; i < n; i++)
        if (a[i] >= floor)
            out[m++] = (uint32_t)i;
    return m;
}
#endif

static vix__cut_fns vix__cut_pick(void)
{
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (vix__isa() >= VIX__ISA_AVX512)
        return (vix__cut_fns){vix__count_ge_avx512, vix__keep_ge_avx512, vix__select_ge_avx512};
#endif
    return (vix__cut_fns){vix__count_ge, vix__keep_ge, vix__select_ge};
}

/* The highest bucket b >= 1 holding, with those above it, at least k of
 * the n scores (0 if none does), as a histogram of all of them gives.
 * work holds n floats. */
static int vix__cut_bucket(const vix__cut_fns *fn, const float *a, size_t n, size_t k, float range,
                           float scale, float *work)
{
    uint32_t hist[VIX_HIST];
    /* A lower bound from every 8th score: a bucket whose sample count
     * promises twice k (and some) usually holds k in the whole list;
     * one counting pass checks it. */
    float low = 0;
    memset(hist, 0, sizeof hist);
    for (size_t i = 0; i < n; i += 8) {
        float f = (a[i] + range) * scale;
        hist[f >= 0 ? (f < VIX_HIST ? (int)f : VIX_HIST - 1) : 0]++;
    }
    size_t want = 2 * (k / 8) + 16, above = 0;
    int b = VIX_HIST - 1;
    while (b > 0 && (above += hist[b]) < want)
        b--;
    if (b > 0 && fn->count_ge(a, n, range, scale, (float)b) >= k)
        low = (float)b;
    /* Every score in bucket low or above, and only those: the histogram of
     * them is the full one from bucket low up, where the answer lies. */
    size_t m = fn->keep_ge(a, n, range, scale, low, work);
    memset(hist, 0, sizeof hist);
    for (size_t i = 0; i < m; i++) {
        float f = work[i];
        hist[f < VIX_HIST ? (int)f : VIX_HIST - 1]++;
    }
    above = 0;
    b = VIX_HIST - 1;
    while (b > 0 && (above += hist[b]) < k)
        b--;
    return b;
}

/* 16 rows of x (dims [d0, d0 + 16)) transposed into tile[d * VIX_LANES + l]. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target("avx512f"))) static void vix__tile16_avx512(const float *const *rows,
                                                                    size_t d0, float *tile)
{
    __m512 r[16], t[16], u[16];
    for (int l = 0; l < 16; l++)
        r[l] = _mm512_loadu_ps(rows[l] + d0);
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    /* u[4g + j], 128-bit part q: rows 4g..4g+3 at dimension 4q + j */
    for (int g = 0; g < 4; g++) {
        u[4 * g] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
        u[4 * g + 1] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
        u[4 * g + 2] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
        u[4 * g + 3] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
    }
    for (int j = 0; j < 4; j++) {
        __m512 alo = _mm512_shuffle_f32x4(u[j], u[4 + j], 0x44);
        __m512 ahi = _mm512_shuffle_f32x4(u[j], u[4 + j], 0xEE);
        __m512 blo = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0x44);
        __m512 bhi = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0xEE);
        _mm512_storeu_ps(tile + (d0 + j) * VIX_LANES, _mm512_shuffle_f32x4(alo, blo, 0x88));
        _mm512_storeu_ps(tile + (d0 + 4 + j) * VIX_LANES, _mm512_shuffle_f32x4(alo, blo, 0xDD));
        _mm512_storeu_ps(tile + (d0 + 8 + j) * VIX_LANES, _mm512_shuffle_f32x4(ahi, bhi, 0x88));
        _mm512_storeu_ps(tile + (d0 + 12 + j) * VIX_LANES, _mm512_shuffle_f32x4(ahi, bhi, 0xDD));
    }
}
#endif

/* The float rows of VIX_LANES vectors side by side, as the dot kernel reads them. */
static void vix__tile(const float *const *rows, size_t dim, float *tile, bool simd)
{
    size_t d = 0;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (simd)
        for (; d + 16 <= dim; d += 16)
            vix__tile16_avx512(rows, d, tile);
#else
    (void)simd;
#endif
    for (; d < dim; d++)
        for (size_t l = 0; l < VIX_LANES; l++)
            tile[d * VIX_LANES + l] = rows[l][d];
}

/* Orders idx[0..n) by score best first, then smaller id: an LSD radix sort
 * on the scores' bits (ordered as unsigned integers, -0 as +0), then equal
 * scores put in id order.  tmp holds n entries. */
static void vix__sort_best(const float *score, const idx_t *ids, uint32_t *idx, uint32_t *tmp,
                           uint32_t *key, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        float f = score[i] == 0 ? 0.0f : score[i];
        memcpy(&u, &f, sizeof u);
        u = u & 0x80000000u ? ~u : u | 0x80000000u; /* ascending with the float */
        key[i] = ~u;                                   /* best first */
        idx[i] = (uint32_t)i;
    }
    for (int shift = 0; shift < 32; shift += 8) {
        size_t start[257] = {0};
        for (size_t i = 0; i < n; i++)
            start[(key[idx[i]] >> shift & 0xffu) + 1]++;
        for (int b = 1; b <= 256; b++)
            start[b] += start[b - 1];
        for (size_t i = 0; i < n; i++)
            tmp[start[key[idx[i]] >> shift & 0xffu]++] = idx[i];
        memcpy(idx, tmp, n * sizeof *idx);
    }
    for (size_t i = 1; i < n; i++) { /* ties: rare and short */
        uint32_t x = idx[i];
        size_t j = i;
        for (; j > 0 && key[idx[j - 1]] == key[x] && ids[idx[j - 1]] > ids[x]; j--)
            idx[j] = idx[j - 1];
        idx[j] = x;
    }
}

/* Exact top-k by inner product, in two passes.  The bfloat16 scan gives
 * every vector a score within b = 2^-8 |q| max|x| of its exact one (8
 * significant bits per element, 2^-9 relative, plus float rounding over the
 * sum, far below the doubled margin); the 8-bit scan (flat_c, on CPUs
 * with VNNI) gives one within the b vix__u8_query derives for the query,
 * a few times wider but over half the bytes.  If at least k vectors score t or more
 * there, the exact k-th best is at least t - b, and whatever belongs in the
 * exact top k scores at least t - 2b there; only those vectors are scored
 * again exactly, from the float rows, in lanes of the same kernel: the
 * result is the full exact scan's, bit for bit, best first. */
/* A flat search's arrays take about 32 bytes a vector: 50 MB at 1M.
 * Allocated per search, each was a fresh mapping whose pages the kernel
 * faulted in and zeroed again every time (36 ms a resolve at 1M, most of
 * it page faults); a thread keeps its block up to this size instead (a
 * sixteenth of what the flat index itself holds). */
#define VIX_FLAT_SCRATCH_KEEP ((size_t)1 << 30)

typedef struct vix__scratch {
    void *mem;
    size_t cap;
} vix__scratch;

static pthread_key_t vix__scratch_key;
static pthread_once_t vix__scratch_once = PTHREAD_ONCE_INIT;
static bool vix__scratch_ok;

static void vix__scratch_free(void *p)
{
    vix__scratch *sc = p;
    if (sc)
        free(sc->mem);
    free(sc);
}

static void vix__scratch_init(void)
{
    vix__scratch_ok = pthread_key_create(&vix__scratch_key, vix__scratch_free) == 0;
}

/* bytes of memory for this thread's search: its kept block when that is
 * large enough, else a new one (kept when small enough; *ret_own says
 * whether the caller frees it).  NULL when out of memory. */
static void *vix__scratch_get(size_t bytes, bool *ret_own)
{
    pthread_once(&vix__scratch_once, vix__scratch_init);
    vix__scratch *sc = vix__scratch_ok ? pthread_getspecific(vix__scratch_key) : NULL;
    if (sc && sc->cap >= bytes) {
        *ret_own = false;
        return sc->mem;
    }
    void *mem = malloc(bytes);
    if (!mem || bytes > VIX_FLAT_SCRATCH_KEEP || !vix__scratch_ok) {
        *ret_own = true;
        return mem;
    }
    if (!sc && (sc = calloc(1, sizeof *sc)) != NULL && pthread_setspecific(vix__scratch_key, sc)) {
        free(sc);
        sc = NULL;
    }
    if (!sc) {
        *ret_own = true;
        return mem;
    }
    free(sc->mem);
    sc->mem = mem;
    sc->cap = bytes;
    *ret_own = false;
    return mem;
}

/* The next 64-byte aligned piece of a scratch block. */
static void *vix__carve(char **at, size_t bytes)
{
    void *p = *at;
    *at += (bytes + 63) / 64 * 64;
    return p;
}

static int vix__flat_search(const vix_index *ix, const float *q, size_t k, float *ret_scores,
                            int64_t *ret_ids)
{
    const vix__dots_fn dots = vix__dots_pick();
    const vix__cut_fns cut = vix__cut_pick();
    const bool simd = vix__isa() >= VIX__ISA_AVX512;
    const size_t n = ix->flat_n, dim = ix->dim, nblk = (n + VIX_LANES - 1) / VIX_LANES;
    const size_t sizes[] = {
        nblk * VIX_LANES * sizeof(float), /* approx */
        (n + 1) * sizeof(float),          /* work: scores near the top, then exact ones */
        (n + 1) * sizeof(uint32_t),       /* cand */
        (n + 1) * 3 * sizeof(uint32_t),   /* order */
        (n + 1) * sizeof(idx_t),          /* cand_ids */
        dim * VIX_LANES * sizeof(float),  /* tile */
    };
    size_t total = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
        total += (sizes[i] + 63) / 64 * 64;
    bool own = false;
    char *block = vix__scratch_get(total, &own), *at = block;
    if (!block)
        return ERD_ENOMEM;
    float *approx = vix__carve(&at, sizes[0]), *work = vix__carve(&at, sizes[1]);
    uint32_t *cand = vix__carve(&at, sizes[2]), *order = vix__carve(&at, sizes[3]);
    idx_t *cand_ids = vix__carve(&at, sizes[4]);
    float *tile = vix__carve(&at, sizes[5]);

    double qn = 0;
    for (size_t d = 0; d < dim; d++)
        qn += (double)q[d] * q[d];
    /* bound: b above; the paired pass rounds the query as well, which
     * adds another 2^-9 relative (and float sums a little) */
    float bound = ldexpf((float)sqrt(qn) * ix->flat_maxnorm, -8);
    float margin = 2.0f * (ix->flat_pairs ? 1.0625f * bound : bound);
    /* the layout of the copy decides, whatever the cap now */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    int32_t wa[VIX_U8_MAX_DIM / 4], wb[VIX_U8_MAX_DIM / 4];
    float base, s;
    if (ix->flat_c) {
        margin = 2.0f * vix__u8_query(ix, q, wa, wb, &base, &s);
        if (margin < INFINITY) {
            vix__approx_u8(ix->flat_c, nblk, (dim + 3) / 4, wa, wb, base, s, approx);
        } else { /* a query of infinities or NaNs: every vector rescored */
            memset(approx, 0, nblk * VIX_LANES * sizeof *approx);
        }
    } else if (ix->flat_pairs) {
        vix__approx_bf16dp(ix->flat_h, nblk, dim, q, approx);
    } else
#endif
        dots(ix->flat_h, nblk, dim, q, approx, 1);
    float floor = -INFINITY;
    if (n > k) {
        float range = (float)sqrt(qn) * ix->flat_maxnorm * 1.01f + 1e-6f;
        float scale = (float)VIX_HIST / (2 * range);
        int b = vix__cut_bucket(&cut, approx, n, k, range, scale, work);
        /* every score counted in buckets b.. is at least one bucket below
         * bucket b's lower edge, whatever the rounding of f */
        floor = (float)(b - 1) / scale - range - margin;
    }
    size_t nc = cut.select_ge(approx, n, floor, cand);
    float *exact = work;
    for (size_t c = 0; c < nc; c += VIX_LANES) {
        size_t m = nc - c < VIX_LANES ? nc - c : VIX_LANES;
        const float *rows[VIX_LANES];
        for (size_t l = 0; l < VIX_LANES; l++) {
            rows[l] = ix->flat_x + (size_t)cand[c + (l < m ? l : 0)] * dim;
            /* the next tile's rows are scattered over the whole array: ask
             * for them while this one is transposed */
            if (c + VIX_LANES + l < nc)
                for (size_t d = 0; d < dim; d += 16)
                    __builtin_prefetch(ix->flat_x + (size_t)cand[c + VIX_LANES + l] * dim + d);
        }
        vix__tile(rows, dim, tile, simd);
        float lanes[VIX_LANES];
        dots(tile, 1, dim, q, lanes, 0);
        for (size_t l = 0; l < m; l++) {
            exact[c + l] = lanes[l];
            cand_ids[c + l] = ix->flat_ids[cand[c + l]];
        }
    }
    uint32_t *idx = order, *tmp = order + n + 1, *key = order + 2 * (n + 1);
    vix__sort_best(exact, cand_ids, idx, tmp, key, nc);
    size_t out = nc < k ? nc : k;
    for (size_t i = 0; i < out; i++) {
        ret_scores[i] = exact[idx[i]];
        ret_ids[i] = cand_ids[idx[i]];
    }
    for (size_t i = out; i < k; i++) {
        ret_scores[i] = -INFINITY;
        ret_ids[i] = -1;
    }
    if (own)
        free(block);
    return ERD_OK;
}

static int faiss_fail(erd_diag *diag, int code, const char *what)
{
    const char *msg = faiss_get_last_error();
    return erd_fail(diag, code, "%s: %s", what, msg && *msg ? msg : "unknown FAISS error");
}

/* IVF and multi-index (IMI) families store ids themselves; the rest
 * (Flat, HNSW, PQ, LSH, ...) only number vectors 0..n-1 and need an IDMap
 * to carry rowids. */
static bool takes_ids(const char *factory)
{
    return strncmp(factory, "IDMap", 5) == 0 || strstr(factory, "IVF") != NULL ||
           strstr(factory, "IMI") != NULL;
}

int vix_index_create(const char *factory, size_t dim, vix_index **ret, erd_diag *diag)
{
    char desc[VIX_INDEX_MAX_FACTORY + 8], base[VIX_INDEX_MAX_FACTORY + 1];
    vix_index *ix = NULL;

    if (!factory || !*factory || !ret)
        return erd_fail(diag, ERD_EINVAL, "index factory string is empty");
    if (strlen(factory) > VIX_INDEX_MAX_FACTORY)
        return erd_fail(diag, ERD_EINVAL, "index factory string longer than %d bytes",
                        VIX_INDEX_MAX_FACTORY);
    if (dim == 0 || dim > VIX_INDEX_MAX_DIM)
        return erd_fail(diag, ERD_EINVAL, "index dimension %zu outside 1..%d", dim,
                        VIX_INDEX_MAX_DIM);
    /* "FACTORY|PARAMS": search parameters after the bar (nprobe=16 for IVF,
     * efSearch=64 for HNSW) are set on the new index, and FAISS writes
     * them into the index file with it. */
    const char *bar = strchr(factory, '|');
    const char *params = bar ? bar + 1 : "";
    snprintf(base, sizeof base, "%.*s", bar ? (int)(bar - factory) : (int)strlen(factory), factory);
    if (!base[0])
        return erd_fail(diag, ERD_EINVAL, "index factory string \"%s\" has no factory before '|'",
                        factory);
    snprintf(desc, sizeof desc, "%s%s", takes_ids(base) ? "" : "IDMap,", base);
    vix_ivf_spec spec = {0};
    int erd = vix_ivf_parse(base, &spec, diag);
    if (erd < 0 && erd != ERD_ENOTFOUND)
        return erd;

    ix = calloc(1, sizeof *ix);
    if (!ix)
        return erd_fail(diag, ERD_ENOMEM, "out of memory creating index");
    if (erd == ERD_OK) {
        if ((erd = vix_ivf_create(dim, &spec, &ix->erd, diag)) < 0) {
            free(ix);
            return erd;
        }
    } else if (faiss_index_factory(&ix->idx, (int)dim, desc, METRIC_INNER_PRODUCT) != 0) {
        int err = faiss_fail(diag, ERD_EFAISS, desc);
        free(ix);
        return err;
    }
    pthread_mutex_init(&ix->flat_mu, NULL);
    ix->dim = dim;
    int err = params[0] ? vix_index_set_params(ix, params, diag) : ERD_OK;
    if (err) {
        vix_index_destroy(ix);
        return err;
    }
    *ret = ix;
    return ERD_OK;
}

void vix_index_destroy(vix_index *index)
{
    if (!index)
        return;
    if (index->idx)
        faiss_Index_free(index->idx);
    vix_ivf_destroy(index->erd);
    vix__flat_drop(index);
    pthread_mutex_destroy(&index->flat_mu);
    free(index);
}

static int check_batch(const vix_index *index, size_t n, const float *x, erd_diag *diag)
{
    if (!index || (n && !x))
        return erd_fail(diag, ERD_EINVAL, "no index or vectors");
    if (n > (size_t)INT64_MAX / index->dim || n * index->dim > SIZE_MAX / sizeof(float))
        return erd_fail(diag, ERD_EINVAL, "%zu vectors are too many", n);
    return ERD_OK;
}

int vix_index_is_trained(const vix_index *index)
{
    return index && (index->erd ? vix_ivf_is_trained(index->erd) : faiss_Index_is_trained(index->idx));
}

size_t vix_index_train_want(const vix_index *index)
{
    return index && index->erd ? vix_ivf_train_want(index->erd) : 0;
}

int vix_index_train(vix_index *index, size_t n, const float *x, erd_diag *diag)
{
    int err = check_batch(index, n, x, diag);
    if (err)
        return err;
    if (vix_index_is_trained(index))
        return ERD_OK;
    if (n == 0)
        return erd_fail(diag, ERD_EINVAL, "index needs training vectors");
    if (index->erd)
        return vix_ivf_train(index->erd, n, x, diag);
    if (faiss_Index_train(index->idx, (idx_t)n, x) != 0)
        return faiss_fail(diag, ERD_EFAISS, "training index");
    return ERD_OK;
}

int vix_index_add(vix_index *index, size_t n, const float *x, const int64_t *ids, erd_diag *diag)
{
    int err = check_batch(index, n, x, diag);
    if (err)
        return err;
    if (n == 0)
        return ERD_OK;
    if (!ids)
        return erd_fail(diag, ERD_EINVAL, "no ids for %zu vectors", n);
    /* -1 is FAISS's "no result": a vector stored under it could never be
     * told apart from a miss */
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0)
            return erd_fail(diag, ERD_EINVAL, "vector %zu has negative id %" PRId64, i, ids[i]);
    if (!vix_index_is_trained(index))
        return erd_fail(diag, ERD_EINVAL, "index must be trained before adding vectors");
    if (index->erd)
        return vix_ivf_add(index->erd, n, x, ids, diag);
    /* the add may move FAISS's arrays, failing or not */
    vix__flat_drop(index);
    atomic_store(&index->flat_current, false);
    if (faiss_Index_add_with_ids(index->idx, (idx_t)n, x, (const idx_t *)ids) != 0)
        return faiss_fail(diag, ERD_EFAISS, "adding vectors");
    return ERD_OK;
}

int vix_index_add_zeroed(vix_index *index, size_t n, const int64_t *ids, float **ret_x,
                         erd_diag *diag)
{
    if (!index || !ids || !ret_x || n == 0)
        return erd_fail(diag, ERD_EINVAL, "vix_index_add_zeroed: bad arguments");
    FaissIndexIDMap *map = index->idx ? faiss_IndexIDMap_cast(index->idx) : NULL;
    FaissIndexFlat *flat = map ? faiss_IndexFlat_cast(faiss_IndexIDMap_sub_index(map)) : NULL;
    if (!flat)
        return erd_fail(diag, ERD_ENOTFOUND, "not a flat index with ids");
    if (n > SIZE_MAX / sizeof(float) / index->dim)
        return erd_fail(diag, ERD_ETOOLARGE, "%zu vectors do not fit in memory", n);
    /* calloc's fresh pages are the kernel's zero page until written: the
     * copy FAISS makes of them is the only real allocation, sized once. */
    float *zeros = calloc(n * index->dim, sizeof *zeros);
    if (!zeros)
        return erd_fail(diag, ERD_ENOMEM, "out of memory for %zu vectors", n);
    int rc = vix_index_add(index, n, zeros, ids, diag);
    free(zeros);
    if (rc < 0)
        return rc;
    float *x = NULL;
    size_t nx = 0;
    faiss_IndexFlat_xb(flat, &x, &nx);
    if (!x || nx < n * index->dim)
        return erd_fail(diag, ERD_EINTERNAL, "flat storage not where it was expected");
    *ret_x = x + (nx - n * index->dim);
    return ERD_OK;
}

static void vix__single_thread_openmp(void)
{
    static _Thread_local int done;
    if (!done) {
        omp_set_num_threads(1); /* per-thread setting in OpenMP */
        done = 1;
    }
}

int vix_index_search(const vix_index *index, size_t nq, const float *queries, size_t k,
                     float *ret_scores, int64_t *ret_ids, erd_diag *diag)
{
    int err = check_batch(index, nq, queries, diag);
    if (err)
        return err;
    if (k == 0 || k > VIX_INDEX_MAX_K)
        return erd_fail(diag, ERD_EINVAL, "k = %zu outside 1..%d", k, VIX_INDEX_MAX_K);
    if (nq && (!ret_scores || !ret_ids))
        return erd_fail(diag, ERD_EINVAL, "no result buffers");
    if (nq > SIZE_MAX / k / sizeof(float))
        return erd_fail(diag, ERD_EINVAL, "%zu queries are too many", nq);
    if (nq == 0)
        return ERD_OK;
    if (index->erd) {
        for (size_t i = 0; i < nq; i++)
            if ((err = vix_ivf_search(index->erd, queries + i * index->dim, k, ret_scores + i * k,
                                      ret_ids + i * k, diag)) < 0)
                return err;
        return ERD_OK;
    }
    vix__flat_current(index);
    if (index->flat_n) {
        for (size_t i = 0; i < nq; i++)
            if (vix__flat_search(index, queries + i * index->dim, k, ret_scores + i * k,
                                 ret_ids + i * k) < 0)
                return erd_fail(diag, ERD_ENOMEM, "out of memory searching %zu vectors",
                                index->flat_n);
        return ERD_OK;
    }
    /* A resolve searches one query; concurrency comes from the server's own
     * threads.  FAISS would open an OpenMP team per call whose idle members
     * spin against those threads (measured: twice the latency on 2 cores),
     * so each thread that searches a handful of queries runs FAISS alone. */
    if (nq < 8)
        vix__single_thread_openmp();
    if (faiss_Index_search(index->idx, (idx_t)nq, queries, (idx_t)k, ret_scores,
                           (idx_t *)ret_ids) != 0)
        return faiss_fail(diag, ERD_EFAISS, "searching index");
    for (size_t i = 0; i < nq * k; i++) {
        if (ret_ids[i] < 0) {
            ret_ids[i] = -1;
            ret_scores[i] = -INFINITY;
        }
    }
    return ERD_OK;
}

int vix_index_set_params(vix_index *index, const char *params, erd_diag *diag)
{
    FaissParameterSpace *ps = NULL;
    if (!index || !params)
        return erd_fail(diag, ERD_EINVAL, "no index or parameters");
    if (index->erd)
        return vix_ivf_set_params(index->erd, params, diag);
    if (faiss_ParameterSpace_new(&ps) != 0)
        return faiss_fail(diag, ERD_ENOMEM, "index parameters");
    int rc = ERD_OK;
    if (faiss_ParameterSpace_set_index_parameters(ps, index->idx, params) != 0)
        rc = faiss_fail(diag, ERD_EINVAL, params);
    faiss_ParameterSpace_free(ps);
    return rc;
}

bool vix_index_is_erd_ivf(const vix_index *index)
{
    return index && index->erd;
}

size_t vix_index_dim(const vix_index *index)
{
    return index ? index->dim : 0;
}

size_t vix_index_count(const vix_index *index)
{
    if (!index)
        return 0;
    if (index->erd)
        return vix_ivf_count(index->erd);
    idx_t n = faiss_Index_ntotal(index->idx);
    return n > 0 ? (size_t)n : 0;
}

/* A rename is durable only once the directory entry is on disk. */
int vix_index_write(const vix_index *index, const char *path, erd_diag *diag)
{
    char tmp[PATH_MAX];
    FILE *f = NULL;

    if (!index || !path || !*path)
        return erd_fail(diag, ERD_EINVAL, "no index or path");
    /* our own FILE rather than faiss_write_index_fname: FAISS ignores the
     * result of its fclose, and a full disk often shows up only there */
    int err = erd_file_temp(path, tmp, sizeof tmp, &f, diag);
    if (err < 0)
        return err;
    if (index->erd)
        err = vix_ivf_write(index->erd, f, diag);
    else if (faiss_write_index(index->idx, f) != 0)
        err = faiss_fail(diag, ERD_EFAISS, tmp);
    if (err < 0) {
        erd_file_discard(f, tmp);
        return err;
    }
    return erd_file_commit(f, tmp, path, diag); /* takes f */
}

/* erd's own IVF files are mapped, not read. */
static int vix__read_erd(const char *path, vix_index **ret, erd_diag *diag)
{
    vix_index *ix = calloc(1, sizeof *ix);
    if (!ix)
        return erd_fail(diag, ERD_ENOMEM, "out of memory reading %s", path);
    int err = vix_ivf_read(path, &ix->erd, diag);
    if (err < 0) {
        free(ix);
        return err;
    }
    ix->dim = vix_ivf_dim(ix->erd);
    pthread_mutex_init(&ix->flat_mu, NULL);
    atomic_store(&ix->flat_current, true); /* nothing flat to attach */
    *ret = ix;
    return ERD_OK;
}

int vix_index_read(const char *path, vix_index **ret, erd_diag *diag)
{
    FaissIndex *idx = NULL;
    FILE *f = NULL;
    int err;

    if (!path || !*path || !ret)
        return erd_fail(diag, ERD_EINVAL, "no index path");
    f = fopen(path, "rbe");
    if (!f)
        return erd_fail(diag, ERD_EIO, "index file %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        err = erd_fail(diag, ERD_EIO, "index file %s: not a regular file", path);
        goto out;
    }
    char magic[sizeof VIX_IVF_MAGIC - 1];
    if (fread(magic, 1, sizeof magic, f) == sizeof magic &&
        memcmp(magic, VIX_IVF_MAGIC, sizeof magic) == 0) {
        err = vix__read_erd(path, ret, diag);
        goto out;
    }
    rewind(f);
    if (faiss_read_index(f, 0, &idx) != 0) {
        err = faiss_fail(diag, ERD_ECORRUPT, path);
        goto out;
    }
    if (faiss_Index_metric_type(idx) != METRIC_INNER_PRODUCT) {
        err = erd_fail(diag, ERD_EMISMATCH, "index file %s: metric is not inner product", path);
        goto out;
    }
    int d = faiss_Index_d(idx);
    if (d <= 0 || d > VIX_INDEX_MAX_DIM) {
        err = erd_fail(diag, ERD_ECORRUPT, "index file %s: dimension %d", path, d);
        goto out;
    }
    vix_index *ix = calloc(1, sizeof *ix);
    if (!ix) {
        err = erd_fail(diag, ERD_ENOMEM, "out of memory reading %s", path);
        goto out;
    }
    ix->idx = idx;
    ix->dim = (size_t)d;
    idx = NULL;
    pthread_mutex_init(&ix->flat_mu, NULL);
    vix__flat_attach(ix); /* now, not in the first resolve */
    *ret = ix;
    err = ERD_OK;
out:
    if (idx)
        faiss_Index_free(idx);
    if (f)
        fclose(f);
    return err;
}
