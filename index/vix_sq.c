/* Low-bit scalar codes and their scan (layout and arithmetic in vix_sq.h). */
#include "index/vix_sq.h"
#include "index/vix_internal.h"
#include "phonetics/pho_quant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define VIX_SQ_X86 1
#endif

int vix_sq_bits_valid(int bits)
{
    return bits > 0 && pho_quant_bits_valid((unsigned)bits);
}

size_t vix_sq_group_dims(int bits)
{
    return (size_t)(32 / bits);
}

size_t vix_sq_dim_pad(size_t dim, int bits)
{
    size_t g = vix_sq_group_dims(bits);
    return (dim + g - 1) / g * g;
}

size_t vix_sq_block_bytes(size_t dim, int bits)
{
    return vix_sq_dim_pad(dim, bits) / vix_sq_group_dims(bits) * VIX_SQ_GROUP_BYTES;
}

int vix_sq_weight_max(int bits)
{
    /* 8 bits: one plane, 2 * 255 * 63 = 32130 fits in int16; fewer bits
     * leave room for every plane of a group at 127 */
    return bits == 8 ? 63 : 127;
}

/* The ranges are the shared quantiser's (pho_quant_fit); the index keeps
 * each dimension's step rather than its upper end. */
int vix_sq_fit(size_t dim, int bits, size_t n, const float *x, float *ret_lo, float *ret_step,
               erd_diag *diag)
{
    if (!vix_sq_bits_valid(bits))
        return erd_fail(diag, ERD_EINVAL, "scalar codes of %d bits: 8, 4 or 2", bits);
    if (n == 0 || dim == 0 || !x)
        return erd_fail(diag, ERD_EINVAL, "no vectors to fit scalar codes on");
    float *hi = malloc(dim * sizeof *hi);
    int rc = hi ? pho_quant_fit(x, n, dim, ret_lo, hi) : ERD_ENOMEM;
    if (rc < 0) {
        free(hi);
        return erd_fail(diag, rc, "out of memory fitting scalar codes on %zu vectors", n);
    }
    const float levels = (float)((1u << bits) - 1);
    for (size_t d = 0; d < dim; d++) {
        float step = (hi[d] - ret_lo[d]) / levels;
        ret_step[d] = step > 0 && isfinite(step) ? step : 0.0f;
    }
    free(hi);
    return ERD_OK;
}

static inline size_t vix__code_at(size_t d, int bits, size_t lane, unsigned *ret_shift)
{
    size_t G = vix_sq_group_dims(bits), r = d % G;
    *ret_shift = (unsigned)(bits * (int)(r / 4));
    return d / G * VIX_SQ_GROUP_BYTES + lane * 4 + r % 4;
}

void vix_sq_encode(const float *lo, const float *step, size_t dim, int bits, const float *x,
                   size_t lane, uint8_t *block)
{
    const unsigned top = (1u << bits) - 1;
    for (size_t d = 0; d < dim; d++) {
        unsigned code = 0;
        if (step[d] > 0) {
            float c = nearbyintf((x[d] - lo[d]) / step[d]);
            code = c <= 0 ? 0 : c >= (float)top ? top : (unsigned)c; /* NaN: 0 */
        }
        unsigned shift;
        size_t at = vix__code_at(d, bits, lane, &shift);
        block[at] = (uint8_t)((block[at] & ~(top << shift)) | (code << shift));
    }
}

unsigned vix_sq_code(const uint8_t *block, size_t dim, int bits, size_t lane, size_t d)
{
    (void)dim;
    unsigned shift;
    size_t at = vix__code_at(d, bits, lane, &shift);
    return (block[at] >> shift) & ((1u << bits) - 1);
}

void vix_sq_query_prep(const float *lo, const float *step, size_t dim, int bits, const float *q,
                       vix_sq_query *qq)
{
    const size_t dpad = vix_sq_dim_pad(dim, bits);
    const float wmax = (float)vix_sq_weight_max(bits);
    float amax = 0;
    double offset = 0;
    for (size_t d = 0; d < dim; d++) {
        float a = fabsf(q[d] * step[d]);
        if (a > amax)
            amax = a;
        offset += (double)q[d] * lo[d];
    }
    memset(qq->w, 0, dpad);
    qq->offset = (float)offset;
    qq->scale = amax > 0 && isfinite(amax) ? amax / wmax : 0.0f;
    if (qq->scale == 0)
        return;
    for (size_t d = 0; d < dim; d++) {
        float v = nearbyintf(q[d] * step[d] / qq->scale);
        qq->w[d] = (int8_t)(v > wmax ? wmax : v < -wmax ? -wmax : v);
    }
}

/* The plain kernel: every code of a lane times its weight, summed in order. */
static void vix__scan_base(const uint8_t *blocks, size_t nblk, size_t ngroups, int bits,
                           const int8_t *w, int32_t *out)
{
    const size_t G = vix_sq_group_dims(bits);
    const int planes = 8 / bits;
    const unsigned mask = (1u << bits) - 1;
    for (size_t b = 0; b < nblk; b++) {
        const uint8_t *blk = blocks + b * ngroups * VIX_SQ_GROUP_BYTES;
        for (size_t l = 0; l < VIX_SQ_LANES; l++) {
            int32_t sum = 0;
            for (size_t g = 0; g < ngroups; g++)
                for (size_t j = 0; j < 4; j++) {
                    unsigned byte = blk[g * VIX_SQ_GROUP_BYTES + l * 4 + j];
                    for (int m = 0; m < planes; m++)
                        sum += (int32_t)w[g * G + 4 * (size_t)m + j] *
                               (int32_t)((byte >> (bits * m)) & mask);
                }
            out[b * VIX_SQ_LANES + l] = sum;
        }
    }
}

#ifdef VIX_SQ_X86
/* Four weights of one plane, the same in every 32-bit lane. */
static inline int32_t vix__w4(const int8_t *w)
{
    int32_t v;
    memcpy(&v, w, sizeof v);
    return v;
}

/* Groups whose 16-bit sums may be added before they are widened: a
 * group's pair sums reach 2 * 255 * 63 = 32130 at 8 bits (no room), 2 * 2 *
 * 15 * 127 = 7620 at 4 bits (4 fit under 32767), 4 * 2 * 3 * 127 = 3048 at
 * 2 bits (8 fit). */
static inline int vix__span(int bits)
{
    return bits == 8 ? 1 : bits == 4 ? 4 : 8;
}

/* maddubs multiplies unsigned codes by signed weights and adds pairs into
 * 16 bits (saturating, which vix_sq_weight_max and vix__span rule out);
 * the planes of a few groups add in 16 bits, then madd by ones adds each
 * lane's two 16-bit sums into its 32-bit total.  Exact integer
 * arithmetic: the plain kernel's sums. */
static inline __attribute__((always_inline, target("avx512f,avx512bw"))) void
vix__scan512_bits(const uint8_t *blocks, size_t nblk, size_t ngroups, const int bits,
                  const int8_t *w, int32_t *out)
{
    const size_t G = (size_t)(32 / bits);
    const int planes = 8 / bits;
    const __m512i mask = _mm512_set1_epi8((char)((1u << bits) - 1)), ones = _mm512_set1_epi16(1);
    for (size_t b = 0; b < nblk; b++) {
        const uint8_t *blk = blocks + b * ngroups * VIX_SQ_GROUP_BYTES;
        __m512i acc = _mm512_setzero_si512(), s16 = acc;
        for (size_t g = 0; g < ngroups; g++) {
            __m512i x = _mm512_loadu_si512((const void *)(blk + g * VIX_SQ_GROUP_BYTES));
            for (int m = 0; m < planes; m++) {
                __m512i c = bits == 8 ? x : _mm512_and_si512(_mm512_srli_epi16(x, bits * m), mask);
                __m512i wv = _mm512_set1_epi32(vix__w4(w + g * G + 4 * (size_t)m));
                s16 = _mm512_add_epi16(s16, _mm512_maddubs_epi16(c, wv));
            }
            if ((g + 1) % (size_t)vix__span(bits) == 0 || g + 1 == ngroups) {
                acc = _mm512_add_epi32(acc, _mm512_madd_epi16(s16, ones));
                s16 = _mm512_setzero_si512();
            }
        }
        _mm512_storeu_si512((void *)(out + b * VIX_SQ_LANES), acc);
    }
}

__attribute__((target("avx512f,avx512bw"))) static void
vix__scan_avx512(const uint8_t *blocks, size_t nblk, size_t ngroups, int bits, const int8_t *w,
                 int32_t *out)
{
    /* constant bits: the plane loop unrolls and the shifts are immediates */
    if (bits == 4)
        vix__scan512_bits(blocks, nblk, ngroups, 4, w, out);
    else if (bits == 2)
        vix__scan512_bits(blocks, nblk, ngroups, 2, w, out);
    else
        vix__scan512_bits(blocks, nblk, ngroups, 8, w, out);
}

/* The same with two 256-bit halves a block: lanes 0-7, then 8-15. */
static inline __attribute__((always_inline, target("avx2"))) void
vix__scan256_bits(const uint8_t *blocks, size_t nblk, size_t ngroups, const int bits,
                  const int8_t *w, int32_t *out)
{
    const size_t G = (size_t)(32 / bits);
    const int planes = 8 / bits;
    const __m256i mask = _mm256_set1_epi8((char)((1u << bits) - 1)), ones = _mm256_set1_epi16(1);
    for (size_t b = 0; b < nblk; b++) {
        const uint8_t *blk = blocks + b * ngroups * VIX_SQ_GROUP_BYTES;
        __m256i acc0 = _mm256_setzero_si256(), acc1 = acc0, s0 = acc0, s1 = acc0;
        for (size_t g = 0; g < ngroups; g++) {
            const uint8_t *p = blk + g * VIX_SQ_GROUP_BYTES;
            __m256i x0 = _mm256_loadu_si256((const __m256i *)p);
            __m256i x1 = _mm256_loadu_si256((const __m256i *)(p + 32));
            for (int m = 0; m < planes; m++) {
                __m256i wv = _mm256_set1_epi32(vix__w4(w + g * G + 4 * (size_t)m));
                __m256i c0 = bits == 8 ? x0 : _mm256_and_si256(_mm256_srli_epi16(x0, bits * m), mask);
                __m256i c1 = bits == 8 ? x1 : _mm256_and_si256(_mm256_srli_epi16(x1, bits * m), mask);
                s0 = _mm256_add_epi16(s0, _mm256_maddubs_epi16(c0, wv));
                s1 = _mm256_add_epi16(s1, _mm256_maddubs_epi16(c1, wv));
            }
            if ((g + 1) % (size_t)vix__span(bits) == 0 || g + 1 == ngroups) {
                acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(s0, ones));
                acc1 = _mm256_add_epi32(acc1, _mm256_madd_epi16(s1, ones));
                s0 = s1 = _mm256_setzero_si256();
            }
        }
        _mm256_storeu_si256((__m256i *)(out + b * VIX_SQ_LANES), acc0);
        _mm256_storeu_si256((__m256i *)(out + b * VIX_SQ_LANES + 8), acc1);
    }
}

__attribute__((target("avx2"))) static void vix__scan_avx2(const uint8_t *blocks, size_t nblk,
                                                           size_t ngroups, int bits,
                                                           const int8_t *w, int32_t *out)
{
    if (bits == 4)
        vix__scan256_bits(blocks, nblk, ngroups, 4, w, out);
    else if (bits == 2)
        vix__scan256_bits(blocks, nblk, ngroups, 2, w, out);
    else
        vix__scan256_bits(blocks, nblk, ngroups, 8, w, out);
}
#endif

void vix_sq_scan(const uint8_t *blocks, size_t nblk, size_t dim, int bits, const int8_t *w,
                 int32_t *out)
{
    const size_t ngroups = vix_sq_dim_pad(dim, bits) / vix_sq_group_dims(bits);
#ifdef VIX_SQ_X86
    enum vix__isa isa = vix__isa();
    if (isa >= VIX__ISA_AVX512) {
        vix__scan_avx512(blocks, nblk, ngroups, bits, w, out);
        return;
    }
    if (isa == VIX__ISA_AVX2) {
        vix__scan_avx2(blocks, nblk, ngroups, bits, w, out);
        return;
    }
#endif
    vix__scan_base(blocks, nblk, ngroups, bits, w, out);
}
