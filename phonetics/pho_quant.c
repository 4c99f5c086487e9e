/* The shared scalar quantiser; see pho_quant.h. */
#include "phonetics/pho_quant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int pho_quant_bits_valid(unsigned bits)
{
    return bits == 8 || bits == 4 || bits == 2;
}

static float pho__step(float lo, float hi, unsigned bits)
{
    return (hi - lo) / (float)((1u << bits) - 1u);
}

uint32_t pho_quant_code(float x, float lo, float hi, unsigned bits)
{
    float step = pho__step(lo, hi, bits), top = (float)((1u << bits) - 1u), c;

    if (!(step > 0.0f))
        return 0;
    c = rintf((x - lo) / step); /* ties to even, as SIMD float-to-int conversion rounds */
    c = c < 0.0f ? 0.0f : c > top ? top : c;
    return (uint32_t)c;
}

float pho_quant_value(uint32_t code, float lo, float hi, unsigned bits)
{
    return lo + (float)code * pho__step(lo, hi, bits);
}

float pho_quant_fake(float x, float lo, float hi, unsigned bits)
{
    return pho_quant_value(pho_quant_code(x, lo, hi, bits), lo, hi, bits);
}

float pho_quant_bf16(float x)
{
    uint32_t u;

    memcpy(&u, &x, 4);
    if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu))
        u |= 0x00400000u; /* a NaN stays a (quiet) NaN */
    else
        u += 0x7fffu + ((u >> 16) & 1u);
    u &= 0xffff0000u;
    memcpy(&x, &u, 4);
    return x;
}

static int pho__cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static float pho__percentile(const float *sorted, size_t n, double p)
{
    double r = p * (double)(n - 1);
    size_t i = (size_t)r;
    double f = r - (double)i;

    if (i + 1 >= n)
        return sorted[n - 1];
    return (float)((double)sorted[i] + f * ((double)sorted[i + 1] - sorted[i]));
}

int pho_quant_fit(const float *vecs, size_t n, size_t D, float *lo, float *hi)
{
    float *col;

    if (!vecs || n == 0 || D == 0)
        return ERD_EINVAL;
    col = malloc(sizeof *col * n);
    if (!col)
        return ERD_ENOMEM;
    for (size_t d = 0; d < D; d++) {
        for (size_t i = 0; i < n; i++)
            col[i] = vecs[i * D + d];
        qsort(col, n, sizeof *col, pho__cmp_float);
        lo[d] = pho__percentile(col, n, PHO_QUANT_LO_PCT);
        hi[d] = pho__percentile(col, n, PHO_QUANT_HI_PCT);
    }
    free(col);
    return ERD_OK;
}
