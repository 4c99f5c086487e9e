/* Low-bit scalar codes: the quantiser's contract, the code layout, and the
 * scan kernels' integer sums bit for bit equal to a scalar reference under
 * every instruction-set level. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "index/vix_index.h"
#include "index/vix_sq.h"
#include "tap.h"

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static double urand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) * (1.0 / 9007199254740992.0);
}

static const char *const isa[] = {"base", "avx2", "avx512", "avx512-bf16", "avx512-vnni"};

/* the contract, written out independently of the library */
static unsigned contract_code(float x, float lo, float step, int bits)
{
    unsigned top = (1u << bits) - 1;
    if (step <= 0)
        return 0;
    float c = nearbyintf((x - lo) / step); /* in float, as the encoder rounds */
    return c <= 0 ? 0 : c >= top ? top : (unsigned)c;
}

static void test_fit(void)
{
    enum { N = 1000, D = 3 };
    static float x[N * D];
    for (int i = 0; i < N; i++) {
        x[i * D] = (float)(N - 1 - i); /* 999 .. 0 */
        x[i * D + 1] = 0.25f;           /* no spread */
        x[i * D + 2] = (float)i * 0.5f;
    }
    float lo[D], step[D];
    erd_diag d = {0};
    is_int(vix_sq_fit(D, 4, N, x, lo, step, &d), ERD_OK, "fit %s", d.msg);
    /* numpy.percentile([0..999], 0.1) = 0.999, 99.9 -> 998.001 */
    ok(fabsf(lo[0] - 0.999f) < 1e-4f && fabsf(step[0] - (998.001f - 0.999f) / 15) < 1e-3f,
       "percentiles 0.1 / 99.9 with linear interpolation: lo %g step %g", lo[0], step[0]);
    ok(lo[1] == 0.25f && step[1] == 0, "a constant dimension: step 0");
    ok(fabsf(lo[2] - 0.4995f) < 1e-4f, "another dimension fitted on its own: lo %g", lo[2]);
    is_int(vix_sq_fit(D, 3, N, x, lo, step, &d), ERD_EINVAL, "3 bits refused");
    is_int(vix_sq_fit(D, 4, 0, x, lo, step, &d), ERD_EINVAL, "no vectors refused");
}

/* Random codes and queries: the layout round-trips, the kernels' sums
 * equal the reference under every level, and the affine step recovers
 * the inner product with the reconstructed vector within the rounding of
 * the query's weights. */
static void test_scan(size_t dim, int bits, size_t n)
{
    const size_t nblk = (n + VIX_SQ_LANES - 1) / VIX_SQ_LANES, bb = vix_sq_block_bytes(dim, bits);
    float *x = malloc(n * dim * sizeof *x), *lo = malloc(dim * sizeof *lo);
    float *step = malloc(dim * sizeof *step), *q = malloc(dim * sizeof *q);
    uint8_t *blocks = calloc(nblk, bb);
    int8_t *w = malloc(vix_sq_dim_pad(dim, bits));
    int32_t *want = calloc(nblk * VIX_SQ_LANES, sizeof *want);
    int32_t *got = malloc(nblk * VIX_SQ_LANES * sizeof *got);
    for (size_t i = 0; i < n * dim; i++)
        x[i] = (float)(urand() * 2 - 1) * 0.3f;
    for (size_t i = 0; i < dim; i++)
        q[i] = (float)(urand() * 2 - 1);
    vix_sq_fit(dim, bits, n, x, lo, step, NULL);
    for (size_t i = 0; i < n; i++)
        vix_sq_encode(lo, step, dim, bits, x + i * dim, i % VIX_SQ_LANES,
                      blocks + i / VIX_SQ_LANES * bb);
    size_t wrong_code = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t d = 0; d < dim; d++)
            wrong_code += vix_sq_code(blocks + i / VIX_SQ_LANES * bb, dim, bits, i % VIX_SQ_LANES,
                                      d) != contract_code(x[i * dim + d], lo[d], step[d], bits);
    is_int(wrong_code, 0, "dim %zu, %d bits: every code as the contract says", dim, bits);

    vix_sq_query qq = {.w = w};
    vix_sq_query_prep(lo, step, dim, bits, q, &qq);
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t sum = 0;
        double recon = 0, codes = 0;
        for (size_t d = 0; d < dim; d++) {
            unsigned c = vix_sq_code(blocks + i / VIX_SQ_LANES * bb, dim, bits, i % VIX_SQ_LANES, d);
            sum += (int64_t)w[d] * c;
            recon += (double)q[d] * (lo[d] + c * (double)step[d]);
            codes += c;
        }
        want[i] = (int32_t)sum;
        /* each weight is off by at most half a unit of scale */
        double err = fabs(vix_sq_score(&qq, want[i]) - recon) - 0.5 * qq.scale * codes;
        worst = err > worst ? err : worst;
    }
    ok(worst < 1e-4, "dim %zu, %d bits: offset + scale * sum within the weights' rounding (%g)",
       dim, bits, worst);
    for (size_t i = 0; i < sizeof isa / sizeof *isa; i++) {
        vix_simd_limit(isa[i], NULL);
        memset(got, 0x5a, nblk * VIX_SQ_LANES * sizeof *got);
        vix_sq_scan(blocks, nblk, dim, bits, w, got);
        ok(memcmp(got, want, n * sizeof *got) == 0,
           "dim %zu, %d bits, %zu codes, %s (in use: %s): sums equal the reference", dim, bits, n,
           isa[i], vix_simd_name());
    }
    vix_simd_limit("auto", NULL);
    free(x);
    free(lo);
    free(step);
    free(q);
    free(blocks);
    free(w);
    free(want);
    free(got);
}

/* Largest codes against the largest weights of either sign: the 16-bit
 * pair sums of the SIMD kernels must not saturate. */
static void test_extremes(int bits, float sign)
{
    enum { DIM = 256 }; /* 2-bit codes: several spans of 8 groups */
    const size_t bb = vix_sq_block_bytes(DIM, bits);
    uint8_t *blk = calloc(1, bb);
    float lo[DIM], step[DIM], x[DIM], q[DIM];
    int8_t w[DIM];
    for (size_t d = 0; d < DIM; d++) {
        lo[d] = -1;
        step[d] = 2.0f / (float)((1u << bits) - 1);
        x[d] = 1;
        q[d] = sign;
    }
    for (size_t l = 0; l < VIX_SQ_LANES; l++)
        vix_sq_encode(lo, step, DIM, bits, x, l, blk);
    vix_sq_query qq = {.w = w};
    vix_sq_query_prep(lo, step, DIM, bits, q, &qq);
    int32_t want = 0, got[VIX_SQ_LANES];
    size_t at_bound = 0;
    for (size_t d = 0; d < DIM; d++) {
        at_bound += abs(w[d]) == vix_sq_weight_max(bits);
        want += w[d] * (int32_t)((1u << bits) - 1);
    }
    is_int(at_bound, DIM, "%d bits: every weight at its bound", bits);
    for (size_t i = 0; i < sizeof isa / sizeof *isa; i++) {
        vix_simd_limit(isa[i], NULL);
        vix_sq_scan(blk, 1, DIM, bits, w, got);
        int same = 1;
        for (size_t l = 0; l < VIX_SQ_LANES; l++)
            same &= got[l] == want;
        ok(same && abs(want) == DIM * vix_sq_weight_max(bits) * (int)((1u << bits) - 1),
           "%d bits, %s: extreme codes and weights summed exactly (%d)", bits, isa[i], want);
    }
    vix_simd_limit("auto", NULL);
    free(blk);
}

int main(void)
{
    test_fit();
    static const size_t dims[] = {1, 7, 32, 100, 128, 257};
    static const size_t counts[] = {16, 37, 300};
    for (int bits = 2; bits <= 8; bits *= 2)
        for (size_t i = 0; i < sizeof dims / sizeof *dims; i++)
            test_scan(dims[i], bits, counts[i % 3]);
    for (int bits = 2; bits <= 8; bits *= 2)
        for (float sign = -1; sign <= 1; sign += 2)
            test_extremes(bits, sign);
    return tap_done();
}
