/* The semantic encoders: skip-gram training is deterministic under its seed
 * (for any thread count) and learns co-occurrence, subword vectors place an
 * unseen word near its seen inflection, the model file refuses damage, the
 * .vec loader reads what it should and names the line of what it should
 * not, and the fused encoder's inner product is the weighted sum of its
 * parts' cosines, with specs and ids that round-trip.  The shipped model is
 * test-semantic-model.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto/erd_hash.h"
#include "phonetics/pho_encoder.h"
#include "phonetics/pho_semantic.h"
#include "tap.h"
#include "vec.h"
#include "tmpdir.h"

static char tmpdir[256];

static void path_in_tmp(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", tmpdir, name);
}

static double word_cos(const pho_sem_model *m, const char *a, const char *b)
{
    float va[PHO_SEM_DIM_MAX], vb[PHO_SEM_DIM_MAX];
    pho_sem_model_word(m, a, strlen(a), va);
    pho_sem_model_word(m, b, strlen(b), vb);
    return cosine(va, vb, pho_sem_model_dim(m));
}

/* Two topics that never share a sentence; within a topic every word meets
 * every other. */
static const char *const fruit[] = {"apple", "banana", "cherry", "grape", "melon", "painting",
                                    "painted"};
static const char *const car[] = {"engine", "wheel", "brake", "tire", "gearbox", "clutch",
                                  "exhaust"};
#define TOPIC 7
#define N_SENT 600

static char **make_corpus(unsigned seed)
{
    char **s = calloc(N_SENT, sizeof *s);
    unsigned x = seed;
    for (size_t i = 0; i < N_SENT; i++) {
        const char *const *t = i % 2 ? car : fruit;
        s[i] = calloc(1, 256);
        for (int k = 0; k < 6; k++) {
            x = x * 1103515245u + 12345u;
            strcat(s[i], t[(x >> 16) % TOPIC]);
            strcat(s[i], " ");
        }
    }
    return s;
}

static void small_opts(pho_sem_train_opts *o)
{
    pho_sem_train_opts_init(o);
    o->dim = 16;
    o->bucket_bits = 12;
    o->min_count = 1;
    o->epochs = 15;
    o->subsample = 0.0;
    o->retrofit = 0;
    o->seed = 7;
}

static pho_sem_model *trained;
static pho_sem_weights trained_w;

static void test_training(void)
{
    char **corpus = make_corpus(3);
    pho_sem_train_opts o;
    pho_sem_weights w1 = {0}, w2 = {0}, w3 = {0};
    pho_sem_train_result r1 = {0};
    erd_diag d = {0};
    size_t rows;

    small_opts(&o);
    o.threads = 2;
    is_int(pho_sem_train_text(&o, (const char *const *)corpus, N_SENT, &w1, &r1, &d), ERD_OK,
           "training on the synthetic corpus succeeds (%s)", d.msg);
    is_int(r1.vocab, 2 * TOPIC, "every word is in the vocabulary");
    o.threads = 1;
    is_int(pho_sem_train_text(&o, (const char *const *)corpus, N_SENT, &w2, NULL, &d), ERD_OK,
           "training again with one thread");
    o.seed = 8;
    is_int(pho_sem_train_text(&o, (const char *const *)corpus, N_SENT, &w3, NULL, &d), ERD_OK,
           "training with another seed");
    rows = (size_t)(w1.n_words + (1u << w1.bucket_bits)) * w1.dim;
    ok(w1.rows && w2.rows && memcmp(w1.rows, w2.rows, rows * sizeof(float)) == 0,
       "same seed: identical weights with 2 threads and with 1");
    ok(w1.rows && w3.rows && memcmp(w1.rows, w3.rows, rows * sizeof(float)) != 0,
       "another seed: other weights");

    is_int(pho_sem_model_from_weights(&w1, &trained, &d), ERD_OK, "quantised into a model");
    if (trained) {
        double same = 0, cross = 0;
        int n_same = 0, n_cross = 0;
        for (int i = 0; i < TOPIC - 2; i++)
            for (int j = 0; j < TOPIC - 2; j++) {
                if (i != j) {
                    same += word_cos(trained, fruit[i], fruit[j]);
                    same += word_cos(trained, car[i], car[j]);
                    n_same += 2;
                }
                cross += word_cos(trained, fruit[i], car[j]);
                n_cross++;
            }
        same /= n_same;
        cross /= n_cross;
        printf("# mean cosine within topics %.3f, across %.3f\n", same, cross);
        ok(same > cross + 0.2, "words that co-occur are closer than words that never do");
        ok(word_cos(trained, "apple", "banana") > word_cos(trained, "apple", "engine"),
           "apple is nearer banana than engine");

        /* "painter" never occurs: its vector is its n-grams alone */
        float v[PHO_SEM_DIM_MAX];
        is_int(pho_sem_model_word(trained, "painter", 7, v), 0, "painter is not in the vocabulary");
        double near = word_cos(trained, "painter", "painting");
        double far = word_cos(trained, "painter", "gearbox");
        printf("# painter~painting %.3f, painter~gearbox %.3f\n", near, far);
        ok(near > far + 0.1, "an unseen word embeds near its seen inflection");
    }
    trained_w = w1;
    pho_sem_weights_free(&w2);
    pho_sem_weights_free(&w3);
    for (size_t i = 0; i < N_SENT; i++)
        free(corpus[i]);
    free(corpus);
}

static void test_model_file(void)
{
    char path[512], spec[600];
    pho_sem_model *m = NULL;
    pho_encoder *enc = NULL, *enc2 = NULL;
    unsigned char *buf, *bad;
    uint64_t sum = 0;
    size_t len = 0;
    erd_diag d = {0};

    if (!trained) {
        ok(0, "no trained model to save");
        return;
    }
    path_in_tmp(path, sizeof path, "sem.bin");
    is_int(pho_sem_model_save(trained, path, "test model", &sum, &d), ERD_OK, "model saved (%s)",
           d.msg);
    is_int(pho_sem_model_load(path, &m, &d), ERD_OK, "model loads back (%s)", d.msg);
    if (m) {
        is_int(pho_sem_model_checksum(m), sum, "checksum recorded");
        is_str(pho_sem_model_meta(m), "test model", "provenance kept");
        ok(fabs(word_cos(m, "apple", "banana") - word_cos(trained, "apple", "banana")) < 1e-6,
           "loaded model gives the same vectors");
        pho_sem_model_destroy(m);
        m = NULL;
    }
    buf = tmpdir_read(path, &len);
    ok(buf && len > 400, "model file read (%zu bytes)", len);
    if (!buf)
        return;
    bad = malloc(len);
    memcpy(bad, buf, len);
    bad[len / 2] ^= 0x40;
    is_int(pho_sem_model_load_buffer(bad, len, &m, &d), ERD_ECORRUPT, "flipped byte refused");
    ok(strstr(d.msg, "checksum") != NULL, "message names the checksum: %s", d.msg);
    is_int(pho_sem_model_load_buffer(buf, len - 100, &m, &d), ERD_ECORRUPT, "truncated file refused");
    is_int(pho_sem_model_load_buffer(buf, 100, &m, &d), ERD_ECORRUPT, "header-only file refused");
    memcpy(bad, buf, len);
    bad[0] = 'X';
    is_int(pho_sem_model_load_buffer(bad, len, &m, &d), ERD_ECORRUPT, "bad magic refused");
    memcpy(bad, buf, len);
    bad[8] = 99; /* version, with the checksum made to match */
    uint64_t h = erd_fnv1a64(ERD_FNV1A64_OFFSET, bad, len - 8);
    for (int i = 0; i < 8; i++)
        bad[len - 8 + i] = (unsigned char)(h >> (8 * i));
    is_int(pho_sem_model_load_buffer(bad, len, &m, &d), ERD_EMISMATCH, "other version refused");
    ok(strstr(d.msg, "version 99") != NULL, "message names the version: %s", d.msg);
    memcpy(bad, buf, len);
    bad[12] = 0; /* dim 16 -> 0, checksum fixed: the header check must catch it */
    bad[13] = 0;
    h = erd_fnv1a64(ERD_FNV1A64_OFFSET, bad, len - 8);
    for (int i = 0; i < 8; i++)
        bad[len - 8 + i] = (unsigned char)(h >> (8 * i));
    is_int(pho_sem_model_load_buffer(bad, len, &m, &d), ERD_ECORRUPT, "impossible header refused");
    ok(m == NULL, "nothing returned for refused files");
    free(bad);

    /* encoder: id names the file and its checksum; a changed file is refused */
    snprintf(spec, sizeof spec, "semantic:%s", path);
    is_int(pho_encoder_create(spec, &enc, &d), ERD_OK, "semantic encoder from spec (%s)", d.msg);
    if (enc) {
        char want[600];
        snprintf(want, sizeof want, "semantic:%s#%08x", path, (unsigned)(uint32_t)sum);
        is_str(pho_encoder_id(enc), want, "id is spec plus checksum");
        is_int(pho_encoder_create(pho_encoder_id(enc), &enc2, &d), ERD_OK, "recreated from its id");
        if (enc2)
            is_str(pho_encoder_id(enc2), pho_encoder_id(enc), "same id again");
        pho_encoder_destroy(enc2);
        enc2 = NULL;
        snprintf(want, sizeof want, "semantic:%s#%08x", path, (unsigned)(uint32_t)sum ^ 1u);
        is_int(pho_encoder_create(want, &enc2, &d), ERD_EMISMATCH, "id with another checksum refused");
    }
    memcpy(buf + 20, "\x01", 1); /* damage on disk */
    FILE *f = fopen(path, "wb");
    fwrite(buf, 1, len, f);
    fclose(f);
    is_int(pho_encoder_create(spec, &enc2, &d), ERD_ECORRUPT, "damaged file refused by the encoder");
    ok(strstr(d.msg, path) != NULL, "message names the file: %s", d.msg);
    pho_encoder_destroy(enc);
    free(buf);
}

static bool write_file(const char *path, const char *text)
{
    return tmpdir_write(path, text, strlen(text));
}

static void test_vec(void)
{
    char path[512], spec[600];
    pho_vec_model *v = NULL;
    pho_encoder *enc = NULL, *again = NULL;
    erd_diag d = {0};
    float out[4];

    path_in_tmp(path, sizeof path, "small.vec");
    write_file(path, "3 4\nAlpha 1 0 0 0\nbeta 0.5 0.5 0 0\ngamma 0 0 -2 0.25\n");
    is_int(pho_vec_load(path, &v, &d), ERD_OK, "small .vec loads (%s)", d.msg);
    if (v) {
        is_int(pho_vec_words(v), 3, "three words");
        is_int(pho_vec_dim(v), 4, "four dimensions");
        pho_vec_phrase(v, "alpha", out);
        ok(fabsf(out[0] - 1) < 1e-6 && fabsf(out[1]) < 1e-6, "alpha (lower-cased) reads back");
        pho_vec_phrase(v, "gamma", out);
        ok(fabs(out[2] - -2 / sqrt(4.0625)) < 0.01 && fabs(out[3] - 0.25 / sqrt(4.0625)) < 0.01,
           "gamma reads back within int8 rounding (%g %g)", (double)out[2], (double)out[3]);
        pho_vec_phrase(v, "alpha beta unknownword", out);
        double want0 = 1 + 0.5 / sqrt(0.5), want1 = 0.5 / sqrt(0.5), n = sqrt(want0 * want0 + want1 * want1);
        ok(fabs(out[0] - want0 / n) < 0.01 && fabs(out[1] - want1 / n) < 0.01,
           "phrase: mean of the known words' unit vectors");
        pho_vec_phrase(v, "nothing known", out);
        ok(out[0] == 0 && out[1] == 0 && out[2] == 0 && out[3] == 0, "no known word: zero vector");
        pho_vec_destroy(v);
        v = NULL;
    }
    snprintf(spec, sizeof spec, "vec:%s", path);
    is_int(pho_encoder_create(spec, &enc, &d), ERD_OK, "vec encoder from spec (%s)", d.msg);
    if (enc) {
        ok(strncmp(pho_encoder_id(enc), spec, strlen(spec)) == 0 &&
               pho_encoder_id(enc)[strlen(spec)] == '#',
           "vec id is spec#checksum: %s", pho_encoder_id(enc));
        is_int(pho_encoder_create(pho_encoder_id(enc), &again, &d), ERD_OK, "recreated from id");
        pho_encoder_destroy(again);
        pho_encoder_destroy(enc);
    }

    /* a word too long to ever be looked up is skipped, not miscounted */
    {
        char text[300];
        snprintf(text, sizeof text, "2 2\nshort 1 0\n%s 0 1\n",
                 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
        write_file(path, text);
        is_int(pho_vec_load(path, &v, &d), ERD_OK, "over-long word skipped (%s)", d.msg);
        if (v)
            is_int(pho_vec_words(v), 1, "one word kept");
        pho_vec_destroy(v);
        v = NULL;
    }

    /* without the header line */
    write_file(path, "one 1 2\ntwo 3 4\n");
    is_int(pho_vec_load(path, &v, &d), ERD_OK, "headerless .vec loads");
    if (v)
        is_int(pho_vec_dim(v), 2, "dimension from the first line");
    pho_vec_destroy(v);
    v = NULL;

    static const struct {
        const char *text, *where;
    } bad[] = {
        {"3 4\nalpha 1 0 0 0\nbeta 0.5 0.5 0\ngamma 0 0 0 1\n", ":3:"},
        {"alpha 1 0 0\nbeta 1 x 0\n", ":2:"},
        {"2 3\nalpha 1 0 0\nbeta 1 nan 0\n", ":3:"},
        {"2 3\nalpha 1 0 0\n\nbeta 1 0 0\n", ":3:"},
        {"5 3\nalpha 1 0 0\nbeta 1 0 0\n", "header announces 5"},
        {"alpha 1 0 0\nbeta 1 0 0 0\n", ":2:"},
        {"", "no word vectors"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_file(path, bad[i].text);
        d.msg[0] = '\0';
        int rc = pho_vec_load(path, &v, &d);
        is_int(rc, ERD_EPARSE, "malformed .vec %zu refused", i);
        ok(strstr(d.msg, bad[i].where) != NULL, "message says where (%s): %s", bad[i].where, d.msg);
        ok(v == NULL, "nothing returned");
    }
}

static void fake_tokens(pho_token *t, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        t[i] = (pho_token){.phone = (uint8_t)(1 + (seed >> 16) % (PHO_N_PHONES - 1)),
                           .word_start = i == 0 || (seed >> 8) % 4 == 0};
    }
}

static void test_fused(void)
{
    char vec[512], spec[1024];
    pho_encoder *f = NULL, *p = NULL, *s = NULL, *f2 = NULL;
    erd_diag d = {0};
    const double W = 0.7;

    path_in_tmp(vec, sizeof vec, "fused.vec");
    write_file(vec, "4 3\nred 1 0.2 0\ncrimson 0.9 0.3 0.1\nblue 0 0.1 1\nsky 0.1 0.2 0.8\n");
    snprintf(spec, sizeof spec, "fused:0.7:baseline:64|vec:%s", vec);
    is_int(pho_encoder_create(spec, &f, &d), ERD_OK, "fused encoder (%s)", d.msg);
    is_int(pho_encoder_create("baseline:64", &p, &d), ERD_OK, "phonetic part alone");
    snprintf(spec, sizeof spec, "vec:%s", vec);
    is_int(pho_encoder_create(spec, &s, &d), ERD_OK, "semantic part alone");
    if (!f || !p || !s)
        goto out;
    is_int(pho_encoder_dim(f), 64 + 3, "dimension is the sum of the parts");

    pho_token ta[12], tb[12], tc[9];
    fake_tokens(ta, 12, 1);
    memcpy(tb, ta, sizeof tb);
    tb[3].phone = (uint8_t)(tb[3].phone % (PHO_N_PHONES - 1) + 1);
    fake_tokens(tc, 9, 5);
    pho_phrase ph[3] = {{.text = "red sky", .tokens = ta, .n_tokens = 12},
                        {.text = "crimson blue", .tokens = tb, .n_tokens = 12},
                        {.text = "blue", .tokens = tc, .n_tokens = 9}};
    /* fitted state (baseline IDF) must reach the phonetic part */
    is_int(pho_encoder_fit(f, ph, 3, &d), ERD_OK, "fit delegates");
    is_int(pho_encoder_fit(p, ph, 3, &d), ERD_OK, "fit the part alone the same way");
    float fv[3][67], pv[3][64], sv[3][3];
    int all = 1;
    for (int i = 0; i < 3; i++)
        all &= pho_encoder_encode(f, &ph[i], fv[i]) == 0 && pho_encoder_encode(p, &ph[i], pv[i]) == 0 &&
               pho_encoder_encode(s, &ph[i], sv[i]) == 0;
    ok(all, "all encodes succeed");
    for (int i = 0; i < 3; i++)
        ok(fabs(dot(fv[i], fv[i], 67) - 1.0) < 1e-5, "fused vector %d has unit norm (%.7f)", i,
           dot(fv[i], fv[i], 67));
    for (int i = 0; i < 3; i++)
        for (int j = i + 1; j < 3; j++) {
            double got = dot(fv[i], fv[j], 67);
            double want = W * dot(pv[i], pv[j], 64) + (1 - W) * dot(sv[i], sv[j], 3);
            ok(fabs(got - want) < 1e-5, "pair %d,%d: inner product %.6f = W cos_p + (1-W) cos_s %.6f",
               i, j, got, want);
        }

    /* state and id round trip */
    void *blob = NULL;
    size_t blen = 0;
    is_int(pho_encoder_state_save(f, &blob, &blen), ERD_OK, "state saved");
    ok(blen > 0, "fitted state is not empty (%zu bytes)", blen);
    is_int(pho_encoder_create(pho_encoder_id(f), &f2, &d), ERD_OK, "recreated from id %s (%s)",
           pho_encoder_id(f), d.msg);
    if (f2) {
        float again[67];
        is_str(pho_encoder_id(f2), pho_encoder_id(f), "id round-trips");
        ok(strlen(pho_encoder_id(f)) < PHO_ENCODER_ID_MAX, "id fits index metadata");
        is_int(pho_encoder_state_load(f2, blob, blen, &d), ERD_OK, "state loads (%s)", d.msg);
        pho_encoder_encode(f2, &ph[1], again);
        ok(memcmp(again, fv[1], sizeof again) == 0, "restored encoder gives identical vectors");
        unsigned char *bad = malloc(blen);
        memcpy(bad, blob, blen);
        bad[blen / 2] ^= 1;
        is_int(pho_encoder_state_load(f2, bad, blen, &d), ERD_ECORRUPT, "damaged state refused");
        is_int(pho_encoder_state_load(f2, blob, blen - 9, &d), ERD_ECORRUPT, "short state refused");
        free(bad);
    }
    free(blob);

    static const char *const bad_specs[] = {
        "fused", "fused:0.5", "fused:0.5:baseline", "fused:1.5:baseline|baseline",
        "fused:x:baseline|baseline", "fused:0.5:baseline|baseline|baseline",
        "fused:0.5:|baseline", "fused:0.5:baseline|", "fused:0.5:fused:0.5:baseline|baseline",
        "fused:-0.1:baseline|baseline",
    };
    for (size_t i = 0; i < sizeof bad_specs / sizeof bad_specs[0]; i++) {
        pho_encoder *e = NULL;
        ok(pho_encoder_create(bad_specs[i], &e, &d) < 0 && e == NULL, "spec \"%s\" refused: %s",
           bad_specs[i], d.msg);
    }
    {
        pho_encoder *e = NULL;
        is_int(pho_encoder_create("fused:0.95:baseline|baseline:32", &e, &d), ERD_OK,
               "two phonetic parts are allowed");
        if (e)
            is_str(pho_encoder_id(e), "fused:0.95:baseline-ngram-v1/1024|baseline-ngram-v1/32",
                   "id of parts by their own ids");
        pho_encoder_destroy(e);
    }
out:
    pho_encoder_destroy(f);
    pho_encoder_destroy(f2);
    pho_encoder_destroy(p);
    pho_encoder_destroy(s);
}

int main(void)
{
    if (!tmpdir_make(tmpdir, sizeof tmpdir, "semantic")) {
        perror("mkdtemp");
        return 1;
    }
    test_training();
    test_model_file();
    test_vec();
    test_fused();
    pho_sem_model_destroy(trained);
    pho_sem_weights_free(&trained_w);
    ok(tmpdir_remove(tmpdir), "temp dir removed");
    return tap_done();
}
