/* Low-bit scalar codes and erd's scan over them.
 *
 * The quantiser is per dimension and uniform, the contract shared with the
 * quantisation-aware training in phonetics/: for dimension d a range
 * [lo_d, hi_d] (the 0.1st and 99.9th percentiles of the vectors indexed),
 * b in {8, 4, 2} bits, step_d = (hi_d - lo_d) / (2^b - 1),
 * code = clamp(round((x - lo_d) / step_d), 0, 2^b - 1), reconstructed as
 * lo_d + code * step_d.
 *
 * Codes are laid out VIX_SQ_LANES vectors to a block, so that one SIMD
 * register holds one vector per 32-bit lane: group g of a block is 64
 * bytes, 4 per lane, and bit plane m of those 4 bytes (bits b*m .. b*m+b-1
 * of each byte) holds the codes of dimensions g*G + 4m .. g*G + 4m + 3,
 * G = 32 / b dimensions a group.
 *
 * A query scores codes by integer arithmetic alone: its weights
 * q_d * step_d are rounded to small integers w_d, and a code vector's score
 * is offset + scale * sum_d w_d * code_d, the sum exact in 32 bits.  Every
 * kernel (AVX-512, AVX2, plain) computes the same integer sums, so the
 * scores are bit for bit the same under every instruction-set level. */
#ifndef VIX_SQ_H
#define VIX_SQ_H

#include <stddef.h>
#include <stdint.h>

#include "proto/erd_error.h"

#define VIX_SQ_LANES 16
#define VIX_SQ_GROUP_BYTES 64

/* Dimensions one 64-byte group covers; dimensions are padded to a whole group. */
size_t vix_sq_group_dims(int bits);
size_t vix_sq_dim_pad(size_t dim, int bits);
/* Bytes one block of VIX_SQ_LANES code vectors takes. */
size_t vix_sq_block_bytes(size_t dim, int bits);
int vix_sq_bits_valid(int bits);

/* Fits lo and step (dim floats each) on n row-major vectors: the 0.1st and
 * 99.9th percentiles of each dimension (linear interpolation between order
 * statistics).  A dimension with no spread gets step 0 (every code 0). */
int vix_sq_fit(size_t dim, int bits, size_t n, const float *x, float *ret_lo, float *ret_step,
               erd_diag *diag);

/* Writes the codes of one vector into lane `lane` of a block (the block's
 * other lanes are left as they are; a fresh block should be zeroed). */
void vix_sq_encode(const float *lo, const float *step, size_t dim, int bits, const float *x,
                   size_t lane, uint8_t *block);
/* Code of dimension d of lane `lane` (the inverse of the layout). */
unsigned vix_sq_code(const uint8_t *block, size_t dim, int bits, size_t lane, size_t d);

/* A query made ready for the scan: w holds vix_sq_dim_pad(dim, bits)
 * integer weights (padding 0); approximate score = offset + scale * sum. */
typedef struct vix_sq_query {
    int8_t *w;
    float scale, offset;
} vix_sq_query;

/* Largest |w_d|: small enough that the 16-bit pair sums of the SIMD
 * kernels (2 * code * weight, and for 4 and 2 bits the planes of a group
 * added) never saturate. */
int vix_sq_weight_max(int bits);

/* Fills qq (qq->w must hold vix_sq_dim_pad(dim, bits) bytes). */
void vix_sq_query_prep(const float *lo, const float *step, size_t dim, int bits, const float *q,
                       vix_sq_query *qq);

/* Integer scores of nblk blocks: out[b * VIX_SQ_LANES + l], by the kernel
 * of the instruction set in use (vix_simd_limit caps it). */
void vix_sq_scan(const uint8_t *blocks, size_t nblk, size_t dim, int bits, const int8_t *w,
                 int32_t *out);

static inline float vix_sq_score(const vix_sq_query *qq, int32_t sum)
{
    return qq->offset + qq->scale * (float)sum;
}

#endif
