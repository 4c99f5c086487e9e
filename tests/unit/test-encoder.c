#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "phonetics/pho_encoder.h"
#include "phonetics/pho_g2p.h"
#include "phonetics/pho_text.h"
#include "tap.h"

#define MAXP 40

typedef struct phr {
    char text[PHO_TEXT_MAX];
    pho_token tok[PHO_TOKENS_MAX];
    pho_phrase p;
} phr;

static pho_g2p *g2p;

static int make(phr *x, const char *raw)
{
    char ipa[PHO_IPA_MAX];
    size_t n = 0;
    int rc = pho_normalize(raw, strlen(raw), x->text, sizeof x->text, NULL);

    if (rc == ERD_OK)
        rc = pho_g2p_ipa(g2p, x->text, ipa, sizeof ipa, NULL);
    if (rc == ERD_OK)
        rc = pho_tokenize(ipa, x->tok, PHO_TOKENS_MAX, &n);
    x->p = (pho_phrase){x->text, x->tok, n};
    return rc;
}

static double dot(const float *a, const float *b, size_t d)
{
    double s = 0;
    for (size_t i = 0; i < d; i++)
        s += (double)a[i] * b[i];
    return s;
}

static const char *const catalog[] = {
    "The Hunger Games", "Harry Potter and the Sorcerer's Stone", "Twilight",
    "To Kill a Mockingbird", "The Great Gatsby", "The Fault in Our Stars", "The Hobbit",
    "The Catcher in the Rye", "Pride and Prejudice", "The Diary of a Young Girl",
    "The Book Thief", "Animal Farm", "The Chronicles of Narnia", "Ferris Bueller's Day Off",
    "Toy Story", "Lord of the Flies", "Gone with the Wind", "Jurassic Park", "The Da Vinci Code",
    "Of Mice and Men", "The Lord of the Rings", "The Giver", "The Help", "Divergent",
};
#define N_CAT (sizeof catalog / sizeof catalog[0])

typedef struct job {
    const pho_encoder *enc;
    const phr *phrases;
    const float *want;
    size_t dim;
    int bad;
} job;

static void *encode_worker(void *arg)
{
    job *j = arg;
    float *v = malloc(sizeof *v * j->dim);

    for (int r = 0; r < 50 && v; r++)
        for (size_t i = 0; i < N_CAT; i++)
            if (pho_encoder_encode(j->enc, &j->phrases[i].p, v) != ERD_OK ||
                memcmp(v, j->want + i * j->dim, sizeof *v * j->dim) != 0)
                j->bad++;
    free(v);
    return NULL;
}

int main(void)
{
    static phr cat[N_CAT], fb, fv, ts, fb2;
    static const char *const bad_specs[] = {"", "foo", "baseline:", "baseline:abc", "baseline:4",
                                            "baseline:100000", "baselinex", "baseline:512x",
                                            "model", "baseline:-1"};
    pho_encoder *enc = NULL, *enc2 = NULL, *small = NULL, *probe = (pho_encoder *)&bad_specs;
    erd_diag diag = {0};
    float *a, *b, *c, *d, *all;
    void *blob = NULL, *blob2 = NULL;
    size_t len = 0, len2 = 0, dim;
    int rc, ok_make = 1;

    if (pho_g2p_create("en-us", 256, &g2p, &diag) != ERD_OK) {
        ok(0, "g2p: %s", diag.msg);
        return tap_done();
    }

    /* specs */
    for (size_t i = 0; i < sizeof bad_specs / sizeof bad_specs[0]; i++) {
        diag.msg[0] = '\0';
        rc = pho_encoder_create(bad_specs[i], &probe, &diag);
        is_int(rc, ERD_EINVAL, "spec \"%s\" refused", bad_specs[i]);
        ok(probe == (pho_encoder *)&bad_specs && diag.msg[0], "ret untouched, message: %s", diag.msg);
    }
    is_int(pho_encoder_create("baseline", &enc, &diag), ERD_OK, "baseline");
    is_str(pho_encoder_id(enc), "baseline-ngram-v1/1024", "default id");
    is_int(pho_encoder_dim(enc), 1024, "default dim");
    is_int(pho_encoder_create("baseline:512", &small, &diag), ERD_OK, "baseline:512");
    is_str(pho_encoder_id(small), "baseline-ngram-v1/512", "512 id");
    is_int(pho_encoder_dim(small), 512, "512 dim");
    dim = pho_encoder_dim(enc);

    a = calloc(dim, sizeof *a);
    b = calloc(dim, sizeof *b);
    c = calloc(dim, sizeof *c);
    d = calloc(dim, sizeof *d);
    all = calloc(dim * N_CAT, sizeof *all);
    ok_make &= make(&fb, "Ferris Bueller") == ERD_OK;
    ok_make &= make(&fb2, "ferris   bueller!") == ERD_OK;
    ok_make &= make(&fv, "ferris viewers") == ERD_OK;
    ok_make &= make(&ts, "toy story") == ERD_OK;
    for (size_t i = 0; i < N_CAT; i++)
        ok_make &= make(&cat[i], catalog[i]) == ERD_OK;
    ok(ok_make, "phrases transcribed");

    /* unfitted */
    is_int(pho_encoder_encode(enc, &fb.p, a), ERD_OK, "encode");
    ok(fabs(dot(a, a, dim) - 1.0) < 1e-5, "unit norm (%f)", dot(a, a, dim));
    is_int(pho_encoder_encode(enc, &fb2.p, b), ERD_OK, "encode same phrase differently written");
    ok(fabs(dot(a, b, dim) - 1.0) < 1e-6, "identical phrases: cosine 1 (%f)", dot(a, b, dim));
    pho_encoder_encode(enc, &fv.p, b);
    pho_encoder_encode(enc, &ts.p, c);
    ok(dot(a, b, dim) > dot(a, c, dim) + 0.2, "ferris bueller~ferris viewers %.3f > toy story %.3f",
       dot(a, b, dim), dot(a, c, dim));
    {
        pho_phrase empty = {"", NULL, 0};
        pho_token badtok = {0, 0, 1, 0};
        pho_phrase bad = {"x", &badtok, 1};
        a[0] = 5.0f;
        is_int(pho_encoder_encode(enc, &empty, a), ERD_OK, "empty phrase encodes");
        ok(dot(a, a, dim) == 0.0, "to all zeros");
        is_int(pho_encoder_encode(enc, &bad, a), ERD_EINVAL, "phone 0 refused");
    }
    is_int(pho_encoder_state_save(enc, &blob, &len), ERD_OK, "save unfitted");
    ok(blob == NULL && len == 0, "unfitted state is empty");

    /* fit */
    pho_encoder_encode(enc, &cat[0].p, c);
    {
        pho_phrase ps[N_CAT];
        for (size_t i = 0; i < N_CAT; i++)
            ps[i] = cat[i].p;
        is_int(pho_encoder_fit(enc, ps, N_CAT, &diag), ERD_OK, "fit");
    }
    pho_encoder_encode(enc, &cat[0].p, d);
    ok(fabs(dot(d, d, dim) - 1.0) < 1e-5, "fitted vector unit norm");
    ok(dot(c, d, dim) < 0.999, "fit changes weights (cos %f)", dot(c, d, dim));
    pho_encoder_encode(enc, &fb.p, a);
    pho_encoder_encode(enc, &fv.p, b);
    pho_encoder_encode(enc, &ts.p, c);
    ok(dot(a, b, dim) > dot(a, c, dim), "fitted: ferris viewers %.3f still closer than toy story %.3f",
       dot(a, b, dim), dot(a, c, dim));
    {
        /* "the" is in half the catalog: after fitting, two "the ..." titles
         * should share less than before. */
        pho_encoder *raw = NULL;
        float *x = calloc(dim, sizeof *x), *y = calloc(dim, sizeof *y);
        double before, after;
        pho_encoder_create("baseline", &raw, NULL);
        pho_encoder_encode(raw, &cat[6].p, x);  /* The Hobbit */
        pho_encoder_encode(raw, &cat[21].p, y); /* The Giver */
        before = dot(x, y, dim);
        pho_encoder_encode(enc, &cat[6].p, x);
        pho_encoder_encode(enc, &cat[21].p, y);
        after = dot(x, y, dim);
        ok(after < before, "IDF lowers similarity from shared \"the\": %.3f -> %.3f", before, after);
        pho_encoder_destroy(raw);
        free(x);
        free(y);
    }

    /* save / load */
    is_int(pho_encoder_state_save(enc, &blob, &len), ERD_OK, "save fitted");
    ok(blob && len > 64, "non-empty state (%zu bytes)", len);
    is_int(pho_encoder_create("baseline:1024", &enc2, NULL), ERD_OK, "second encoder");
    is_int(pho_encoder_state_load(enc2, blob, len, &diag), ERD_OK, "load: %s", diag.msg);
    {
        int same = 1;
        for (size_t i = 0; i < N_CAT; i++) {
            pho_encoder_encode(enc, &cat[i].p, a);
            pho_encoder_encode(enc2, &cat[i].p, b);
            same &= memcmp(a, b, sizeof *a * dim) == 0;
            memcpy(all + i * dim, a, sizeof *a * dim);
        }
        ok(same, "loaded encoder gives identical vectors");
    }
    is_int(pho_encoder_state_save(enc2, &blob2, &len2), ERD_OK, "re-save");
    ok(len2 == len && memcmp(blob, blob2, len) == 0, "state round-trips byte for byte");
    free(blob2);

    /* refusals leave the loaded state alone */
    {
        unsigned char *bad = malloc(len);
        size_t cuts[] = {0, 10, 100, len / 2, len - 1};
        memcpy(bad, blob, len);
        bad[len / 3] ^= 0x40;
        is_int(pho_encoder_state_load(enc2, bad, len, &diag), ERD_ECORRUPT, "flipped bit refused");
        memcpy(bad, blob, len);
        bad[0] = 'X';
        is_int(pho_encoder_state_load(enc2, bad, len, &diag), ERD_ECORRUPT, "bad magic refused");
        memcpy(bad, blob, len);
        bad[len - 1] ^= 1;
        is_int(pho_encoder_state_load(enc2, bad, len, &diag), ERD_ECORRUPT, "bad checksum refused");
        for (size_t i = 1; i < sizeof cuts / sizeof cuts[0]; i++)
            is_int(pho_encoder_state_load(enc2, blob, cuts[i], &diag), ERD_ECORRUPT,
                   "truncated to %zu refused", cuts[i]);
        is_int(pho_encoder_state_load(small, blob, len, &diag), ERD_EMISMATCH,
               "other dimension refused: %s", diag.msg);
        is_int(pho_encoder_state_load(enc2, NULL, 5, &diag), ERD_EINVAL, "NULL blob refused");
        pho_encoder_encode(enc2, &cat[0].p, b);
        ok(memcmp(all, b, sizeof *b * dim) == 0, "state unchanged after refused loads");
        free(bad);
    }

    /* concurrent encodes */
    {
        pthread_t th[4];
        job jobs[4];
        int bad = 0;
        for (int i = 0; i < 4; i++) {
            jobs[i] = (job){enc2, cat, all, dim, 0};
            pthread_create(&th[i], NULL, encode_worker, &jobs[i]);
        }
        for (int i = 0; i < 4; i++) {
            pthread_join(th[i], NULL);
            bad += jobs[i].bad;
        }
        is_int(bad, 0, "concurrent encodes match");
    }

    /* loading an empty state returns to the unfitted encoder */
    is_int(pho_encoder_state_load(enc2, NULL, 0, &diag), ERD_OK, "load empty state");
    {
        pho_encoder *raw = NULL;
        pho_encoder_create("baseline", &raw, NULL);
        pho_encoder_encode(raw, &cat[0].p, a);
        pho_encoder_encode(enc2, &cat[0].p, b);
        ok(memcmp(a, b, sizeof *a * dim) == 0, "unfitted again");
        pho_encoder_destroy(raw);
    }

    free(blob);
    free(a);
    free(b);
    free(c);
    free(d);
    free(all);
    pho_encoder_destroy(enc);
    pho_encoder_destroy(enc2);
    pho_encoder_destroy(small);
    pho_encoder_destroy(NULL);
    pho_g2p_destroy(g2p);
    return tap_done();
}
