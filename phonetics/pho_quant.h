/* The scalar quantiser every low-bit vector in erd follows, so that codes
 * measured here (the "quant:" encoder, erd train --squash) mean what the
 * index's codes mean:
 *
 *   per dimension d a range [lo_d, hi_d], fitted on the vectors being
 *   indexed as their 0.1st and 99.9th percentiles; b in {8, 4, 2} bits;
 *   step = (hi - lo) / (2^b - 1); code = clamp(round((x - lo) / step), 0,
 *   2^b - 1); reconstruction lo + code * step.
 *
 * Percentiles interpolate linearly between order statistics (rank
 * p * (n - 1)), the common definition.  bfloat16 (round to nearest even,
 * the top 16 bits of a float) is here too, as the other cheap encoding. */
#ifndef PHO_QUANT_H
#define PHO_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "proto/erd_error.h"

#define PHO_QUANT_LO_PCT 0.001
#define PHO_QUANT_HI_PCT 0.999

/* true for the widths the contract allows: 8, 4, 2 */
int pho_quant_bits_valid(unsigned bits);

/* The code of x under [lo, hi] at bits (the contract's formula; a range of
 * zero width codes everything 0). */
uint32_t pho_quant_code(float x, float lo, float hi, unsigned bits);
/* The reconstruction of a code. */
float pho_quant_value(uint32_t code, float lo, float hi, unsigned bits);
/* Both at once: x as its code reconstructs it. */
float pho_quant_fake(float x, float lo, float hi, unsigned bits);

/* x rounded to bfloat16 (nearest, ties to even; NaN stays NaN) and back. */
float pho_quant_bf16(float x);

/* Per-dimension ranges of n row-major vectors of D floats: lo[d], hi[d]
 * (D each) get the 0.1st and 99.9th percentiles of column d.  ERD_EINVAL
 * for n == 0, ERD_ENOMEM; lo/hi set only on success. */
int pho_quant_fit(const float *vecs, size_t n, size_t D, float *lo, float *hi);

#endif
