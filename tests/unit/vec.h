/* Vector arithmetic the unit tests check encoders with.  Header-only. */
#ifndef ERD_TEST_VEC_H
#define ERD_TEST_VEC_H

#include <math.h>
#include <stddef.h>

static inline double cosine(const float *a, const float *b, size_t n)
{
    double d = 0, na = 0, nb = 0;
    for (size_t i = 0; i < n; i++) {
        d += (double)a[i] * b[i];
        na += (double)a[i] * a[i];
        nb += (double)b[i] * b[i];
    }
    return na > 0 && nb > 0 ? d / sqrt(na * nb) : 0.0;
}

static inline double dot(const float *a, const float *b, size_t n)
{
    double d = 0;
    for (size_t i = 0; i < n; i++)
        d += (double)a[i] * b[i];
    return d;
}

#endif
