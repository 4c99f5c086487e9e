/* The shared scalar quantiser (pho_quant) and the "quant:BITS:SPEC" encoder
 * that measures what its codes keep of an encoder. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "phonetics/pho_encoder.h"
#include "phonetics/pho_quant.h"
#include "tap.h"

#define N_PHR 300
#define TOK 12

static uint64_t rng_state = 99;

static uint32_t rnd(void)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(rng_state >> 33);
}

static void test_contract(void)
{
    /* [-1, 1] at 2 bits: step 2/3, levels -1, -1/3, 1/3, 1 */
    is_int((int)pho_quant_code(-1.0f, -1.0f, 1.0f, 2), 0, "lo codes 0");
    is_int((int)pho_quant_code(0.1f, -1.0f, 1.0f, 2), 2, "0.1 codes 2 (1.65 rounded)");
    is_int((int)pho_quant_code(-0.4f, -1.0f, 1.0f, 2), 1, "-0.4 codes 1 (0.9 rounded)");
    is_int((int)pho_quant_code(5.0f, -1.0f, 1.0f, 2), 3, "above hi clamps to 3");
    is_int((int)pho_quant_code(-5.0f, -1.0f, 1.0f, 2), 0, "below lo clamps to 0");
    ok(fabsf(pho_quant_value(2, -1.0f, 1.0f, 2) - 1.0f / 3.0f) < 1e-7f, "code 2 is 1/3");
    is_int((int)pho_quant_code(0.3f, 0.5f, 0.5f, 4), 0, "zero-width range codes 0");
    is_int((int)pho_quant_code(0.71f, 0.0f, 1.0f, 8), 181, "0.71 on [0,1] at 8 bits: 181.05 -> 181");
    int within = 1, on_grid = 1;
    for (unsigned bits = 2; bits <= 8; bits *= 2) {
        float lo = -0.2f, hi = 0.3f, step = (hi - lo) / (float)((1u << bits) - 1u);
        for (int i = 0; i < 1000; i++) {
            float x = lo + (hi - lo) * (float)(rnd() % 10001) / 10000.0f;
            float y = pho_quant_fake(x, lo, hi, bits);
            within &= fabsf(x - y) <= step / 2 + 1e-6f;
            float k = (y - lo) / step;
            on_grid &= fabsf(k - roundf(k)) < 1e-3f;
        }
    }
    ok(within, "reconstruction within half a step inside the range (2, 4, 8 bits)");
    ok(on_grid, "reconstructions are lo + code * step");
    ok(pho_quant_bits_valid(8) && pho_quant_bits_valid(4) && pho_quant_bits_valid(2) &&
           !pho_quant_bits_valid(3) && !pho_quant_bits_valid(0) && !pho_quant_bits_valid(16),
       "widths 8, 4, 2 only");

    ok(pho_quant_bf16(1.0f) == 1.0f, "bf16 keeps 1");
    ok(pho_quant_bf16(1.0f + 0x1p-8f) == 1.0f, "bf16 tie goes to even (down)");
    ok(pho_quant_bf16(1.0f + 0x1p-7f + 0x1p-8f) == 1.0f + 0x1p-6f, "bf16 tie goes to even (up)");
    ok(pho_quant_bf16(1.0f + 0x1p-8f + 0x1p-12f) == 1.0f + 0x1p-7f, "bf16 rounds to nearest");
    ok(isnan(pho_quant_bf16(NAN)), "bf16 keeps NaN");

    /* percentiles by linear interpolation at rank p (n - 1) */
    float *v = malloc(sizeof *v * 1000 * 2), lo[2], hi[2];
    for (int i = 0; i < 1000; i++) {
        v[2 * i] = (float)((i * 7919) % 1000); /* 0..999 shuffled */
        v[2 * i + 1] = -1.0f;
    }
    is_int(pho_quant_fit(v, 1000, 2, lo, hi), ERD_OK, "fit");
    ok(fabsf(lo[0] - 0.999f) < 1e-4f && fabsf(hi[0] - 998.001f) < 1e-2f,
       "0.1st / 99.9th percentiles of 0..999: %g / %g", lo[0], hi[0]);
    ok(lo[1] == -1.0f && hi[1] == -1.0f, "constant column: zero-width range");
    is_int(pho_quant_fit(v, 0, 2, lo, hi), ERD_EINVAL, "no vectors refused");
    free(v);
}

static pho_token toks[N_PHR][TOK];
static pho_phrase phr[N_PHR];

static void make_phrases(void)
{
    for (size_t i = 0; i < N_PHR; i++) {
        size_t n = 3 + rnd() % (TOK - 3);
        for (size_t j = 0; j < n; j++)
            toks[i][j] = (pho_token){.phone = (uint8_t)(1 + rnd() % (PHO_N_PHONES - 1)),
                                     .stress = (uint8_t)(rnd() % 3), .word_start = j == 0};
        phr[i] = (pho_phrase){"x", toks[i], n};
    }
}

/* Every dimension of every phrase's output is the quantiser's reconstruction
 * of the inner encoder's under the fitted ranges, which are the columns'
 * percentiles. */
static void test_encoder(const char *spec, unsigned bits)
{
    pho_encoder *q = NULL, *inner = NULL, *again = NULL;
    erd_diag diag = {0};
    void *blob = NULL;
    size_t len = 0;

    int rc = pho_encoder_create(spec, &q, &diag);
    is_int(rc, ERD_OK, "%s: created (%s)", spec, diag.msg);
    if (rc < 0)
        return;
    pho_encoder_create("baseline:64", &inner, &diag);
    size_t D = pho_encoder_dim(q);
    is_int((int)D, 64, "%s: inner dimension", spec);
    is_int(pho_encoder_fit(q, phr, N_PHR, &diag), ERD_OK, "%s: fit", spec);
    pho_encoder_fit(inner, phr, N_PHR, &diag);
    float *raw = malloc(sizeof *raw * N_PHR * D), *got = malloc(sizeof *got * N_PHR * D);
    float lo[64], hi[64];
    for (size_t i = 0; i < N_PHR; i++) {
        pho_encoder_encode(inner, &phr[i], raw + i * D);
        pho_encoder_encode(q, &phr[i], got + i * D);
    }
    pho_quant_fit(raw, N_PHR, D, lo, hi);
    int same = 1;
    for (size_t i = 0; i < N_PHR * D; i++) {
        size_t d = i % D;
        float want = bits ? pho_quant_fake(raw[i], lo[d], hi[d], bits) : pho_quant_bf16(raw[i]);
        same &= got[i] == want;
    }
    ok(same, "%s: outputs are the codes' reconstructions of the inner encoder's", spec);

    /* the id recreates it, and the saved state gives the same vectors */
    is_int(pho_encoder_state_save(q, &blob, &len), ERD_OK, "%s: state saved", spec);
    is_int(pho_encoder_create(pho_encoder_id(q), &again, &diag), ERD_OK, "%s: id %s is a spec",
           spec, pho_encoder_id(q));
    is_int(pho_encoder_state_load(again, blob, len, &diag), ERD_OK, "%s: state loaded", spec);
    int round = 1;
    float v[64];
    for (size_t i = 0; i < N_PHR; i++) {
        pho_encoder_encode(again, &phr[i], v);
        round &= memcmp(v, got + i * D, sizeof v) == 0;
    }
    ok(round, "%s: reloaded state encodes the same", spec);
    ((unsigned char *)blob)[len / 2] ^= 1;
    is_int(pho_encoder_state_load(again, blob, len, &diag), ERD_ECORRUPT, "%s: damaged state "
           "refused", spec);
    is_int(pho_encoder_state_load(again, blob, len - 9, &diag), ERD_ECORRUPT, "%s: truncated "
           "state refused", spec);
    free(blob);
    free(raw);
    free(got);
    pho_encoder_destroy(again);
    pho_encoder_destroy(inner);
    pho_encoder_destroy(q);
}

int main(void)
{
    static const char *const bad[] = {"quant", "quant:", "quant:3:baseline", "quant:4",
                                      "quant:4:", "quant:4:quant:4:baseline", "quant:4:nope"};
    test_contract();
    make_phrases();
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        pho_encoder *e = NULL;
        erd_diag diag = {0};
        ok(pho_encoder_create(bad[i], &e, &diag) < 0 && !e && diag.msg[0],
           "spec \"%s\" refused: %s", bad[i], diag.msg);
    }
    test_encoder("quant:8:baseline:64", 8);
    test_encoder("quant:4:baseline:64", 4);
    test_encoder("quant:2:baseline:64", 2);
    test_encoder("quant:bf16:baseline:64", 0);
    {
        pho_encoder *e = NULL;
        float v[64];
        pho_encoder_create("quant:4:baseline:64", &e, NULL);
        is_int(pho_encoder_encode(e, &phr[0], v), ERD_EINVAL, "encoding before the ranges are "
               "fitted refused");
        pho_encoder_destroy(e);
    }
    return tap_done();
}
