/* The learned encoder: gradients of the training loss against finite
 * differences for every parameter group, the forward passes agreeing,
 * thread safety, the encoder-interface round trip through its id, and
 * training being deterministic and actually learning. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "phonetics/pho_encoder.h"
#include "phonetics/pho_model.h"
#include "phonetics/pho_train.h"
#include "tap.h"

static uint64_t rng_state = 12345;

static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double gauss(void)
{
    double u1 = ((double)(rnd() >> 11) + 0.5) / 9007199254740992.0;
    double u2 = (double)(rnd() >> 11) / 9007199254740992.0;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static size_t random_tokens(pho_token *t, size_t min, size_t max)
{
    size_t n = min + rnd() % (max - min + 1);
    for (size_t i = 0; i < n; i++) {
        t[i].phone = (uint8_t)(1 + rnd() % (PHO_N_PHONES - 1));
        t[i].stress = (uint8_t)(rnd() % 3);
        t[i].word_start = i == 0 || rnd() % 4 == 0;
        t[i].reserved = 0;
    }
    return n;
}

/* The row loss and weights the gradient checks run under. */
static const pho_loss_opts *g_loss;
static const float *g_q_weight;
static const pho_squash_opts *g_squash;

#define NQ 4
#define NC 7
#define TMAX 9

typedef struct batch_data {
    pho_token q[NQ][TMAX], c[NC][TMAX];
    const pho_token *qp[NQ], *cp[NC];
    size_t ql[NQ], cl[NC];
    uint32_t qk[NQ], ck[NC];
    pho_batch b;
} batch_data;

static void make_batch(batch_data *d)
{
    for (size_t i = 0; i < NQ; i++) {
        d->ql[i] = random_tokens(d->q[i], 1, TMAX);
        d->qp[i] = d->q[i];
        d->qk[i] = (uint32_t)i;
    }
    d->qk[3] = 1; /* two hypotheses of one phrase: masked, not negatives */
    for (size_t i = 0; i < NC; i++) {
        d->cl[i] = random_tokens(d->c[i], 1, TMAX);
        d->cp[i] = d->c[i];
        d->ck[i] = i < NQ ? d->qk[i] : (uint32_t)(10 + i);
    }
    d->ck[NQ] = 2; /* a negative that is hypothesis 2's own phrase */
    d->b = (pho_batch){NQ, NC, d->qp, d->ql, d->qk, d->cp, d->cl, d->ck, g_loss, g_q_weight, g_squash};
}

static double loss_at(pho_model *m, const pho_batch *b, float *scratch)
{
    double l = 0.0;
    memset(scratch, 0, sizeof *scratch * m->n_params);
    pho_batch_loss(m, b, 5.0, scratch, &l);
    return l;
}

/* Directional derivatives along random directions confined to one group,
 * plus the largest single entries: a backward pass that is wrong for a
 * group shows in both. */
static void gradcheck(const pho_model_arch *arch, const char *label)
{
    pho_model *m = NULL;
    batch_data d;
    pho_param_group g[PHO_MODEL_GROUPS_MAX];
    size_t ng;
    float *grad, *scratch, *save;
    double loss;
    const double eps = 1e-3;

    if (pho_model_create(arch, 3, &m, NULL) != ERD_OK) {
        ok(0, "%s: model", label);
        return;
    }
    /* larger biases than the initialisation so ReLUs are mixed on and off */
    if (m->conv_b)
        for (size_t i = 0; i < arch->conv_dim; i++)
            m->conv_b[i] = (float)(0.3 * gauss());
    make_batch(&d);
    grad = calloc(m->n_params, sizeof *grad);
    scratch = calloc(m->n_params, sizeof *scratch);
    save = malloc(sizeof *save * m->n_params);
    memcpy(save, m->params, sizeof *save * m->n_params);
    is_int(pho_batch_loss(m, &d.b, 5.0, grad, &loss), ERD_OK, "%s: batch loss", label);
    ok(loss > 0.0 && isfinite(loss), "%s: loss %.4f is positive", label, loss);
    ng = pho_model_groups(m, g);
    for (size_t k = 0; k < ng; k++) {
        double errs[5], gnorm = 0.0;
        for (int trial = 0; trial < 5; trial++) {
            double *v = malloc(sizeof *v * g[k].count), an = 0.0, lp, lm, fd;
            for (size_t i = 0; i < g[k].count; i++) {
                v[i] = gauss();
                an += v[i] * grad[g[k].offset + i];
            }
            for (size_t i = 0; i < g[k].count; i++)
                m->params[g[k].offset + i] = (float)(save[g[k].offset + i] + eps * v[i]);
            lp = loss_at(m, &d.b, scratch);
            for (size_t i = 0; i < g[k].count; i++)
                m->params[g[k].offset + i] = (float)(save[g[k].offset + i] - eps * v[i]);
            lm = loss_at(m, &d.b, scratch);
            memcpy(m->params, save, sizeof *save * m->n_params);
            fd = (lp - lm) / (2 * eps);
            errs[trial] = fabs(fd - an) / fmax(fabs(fd) + fabs(an), 1e-3);
            free(v);
        }
        /* the median: a step across a ReLU or max-pool switch spoils one
         * direction now and then, a wrong backward pass spoils them all */
        for (int i = 0; i < 5; i++)
            for (int j = i + 1; j < 5; j++)
                if (errs[j] < errs[i]) {
                    double t = errs[i];
                    errs[i] = errs[j];
                    errs[j] = t;
                }
        double worst = errs[2];
        for (size_t i = 0; i < g[k].count; i++)
            gnorm += (double)grad[g[k].offset + i] * grad[g[k].offset + i];
        /* every group must take part, or the check would pass vacuously */
        ok(gnorm > 1e-8, "%s: %s has a gradient (|g| %.2e)", label, g[k].name, sqrt(gnorm));
        ok(worst < 2e-2, "%s: %s median directional derivative matches (rel. error %.2e)", label,
           g[k].name, worst);
        /* largest single entry of the group */
        size_t best = 0;
        for (size_t i = 1; i < g[k].count; i++)
            if (fabsf(grad[g[k].offset + i]) > fabsf(grad[g[k].offset + best]))
                best = i;
        size_t at = g[k].offset + best;
        m->params[at] = (float)(save[at] + eps);
        double lp = loss_at(m, &d.b, scratch);
        m->params[at] = (float)(save[at] - eps);
        double lm = loss_at(m, &d.b, scratch);
        m->params[at] = save[at];
        double fd = (lp - lm) / (2 * eps), err = fabs(fd - grad[at]) / fmax(fabs(fd) + fabs(grad[at]), 1e-3);
        ok(err < 5e-2, "%s: %s largest entry %.4e vs finite difference %.4e", label, g[k].name,
           grad[at], fd);
    }
    free(grad);
    free(scratch);
    free(save);
    pho_model_destroy(m);
}

typedef struct job {
    const pho_model *m;
    const pho_token (*t)[40];
    const size_t *n;
    const float *want;
    int bad;
} job;

static void *encode_many(void *p)
{
    job *j = p;
    float out[64];
    for (int r = 0; r < 200; r++)
        for (size_t i = 0; i < 16; i++) {
            pho_model_encode(j->m, j->t[i], j->n[i], out);
            if (memcmp(out, j->want + i * 64, sizeof out))
                j->bad++;
        }
    return NULL;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Phrases of random phones; hypotheses change, drop or insert a phone. */
static pho_trainset *synthetic_set(size_t n_phr, size_t per)
{
    pho_trainset *ts = NULL;
    pho_token t[16], h[18];
    if (pho_trainset_create(&ts) < 0)
        return NULL;
    for (size_t p = 0; p < n_phr; p++) {
        uint32_t idx;
        size_t n = random_tokens(t, 4, 12);
        char text[32];
        snprintf(text, sizeof text, "phrase %zu", p);
        if (pho_trainset_add_phrase(ts, text, t, n, &idx) < 0)
            continue;
        for (size_t k = 0; k < per; k++) {
            size_t m = 0;
            for (size_t i = 0; i < n; i++) {
                uint64_t r = rnd() % 10;
                if (r == 0)
                    continue; /* deletion */
                h[m] = t[i];
                if (r == 1)
                    h[m].phone = (uint8_t)(1 + rnd() % (PHO_N_PHONES - 1));
                m++;
                if (r == 2)
                    h[m++] = (pho_token){(uint8_t)(1 + rnd() % (PHO_N_PHONES - 1)), 0, 0, 0};
            }
            if (m)
                pho_trainset_add_pair(ts, idx, h, m);
        }
    }
    return ts;
}

/* What each loss does to one wrong label, on fixed vectors: APL's pull
 * toward a wrong positive is bounded, InfoNCE's grows with the mistake. */
static void test_loss_kinds(void)
{
    pho_loss_opts o;
    pho_loss_kind k;
    pho_token a[3] = {{5, 0, 1, 0}, {9, 0, 0, 0}, {12, 0, 0, 0}};
    pho_token b[3] = {{5, 0, 1, 0}, {9, 0, 0, 0}, {30, 0, 0, 0}};

    pho_loss_opts_init(&o);
    ok(o.kind == PHO_LOSS_INFONCE && o.smoothing == 0.0, "InfoNCE by default");
    is_int(pho_loss_kind_parse("apl", &k), ERD_OK, "apl parses");
    ok(k == PHO_LOSS_APL, "apl is APL");
    is_str(pho_loss_kind_name(k), "apl", "name round trip");
    ok(pho_loss_kind_parse("mse", &k) == ERD_EINVAL, "unknown loss refused");

    ok(pho_pair_overlap(a, 3, a, 3) == 1.0, "a sequence overlaps itself fully");
    /* grams: a {5,9,12,5-9,9-12}, b {5,9,30,5-9,9-30}: 3 shared of 5 + 5 */
    ok(fabs(pho_pair_overlap(a, 3, b, 3) - 0.6) < 1e-12, "overlap is the Dice of grams");
    ok(pho_pair_overlap(a, 3, b, 0) == 0.0, "nothing shared with nothing");
    ok(pho_pair_weight(0.0, 0.5) == PHO_PAIR_WEIGHT_MIN, "a hallucination keeps the floor");
    ok(pho_pair_weight(0.25, 0.5) == 0.5, "weight rises to the knee");
    ok(pho_pair_weight(0.9, 0.5) == 1.0, "and stays at 1 past it");
}

/* The convolution sums 64 channels at a time in registers and the rest
 * apart.  Reversing the channel order (weights, biases and the projection's
 * rows for both pools) moves channels between the block and the tail and
 * must leave every output where it was, up to the projection's order of
 * addition. */
static void test_conv_channel_order(void)
{
    pho_model_arch a = {PHO_ARCH_CONV, 8, 6, 80, 16, PHO_OUT_PLAIN};
    pho_model *m = NULL, *r = NULL;
    if (pho_model_create(&a, 11, &m, NULL) != ERD_OK || pho_model_clone(m, &r) != ERD_OK) {
        ok(0, "80-channel models");
        pho_model_destroy(m);
        return;
    }
    const size_t E = a.emb_dim, C = a.conv_dim, D = a.out_dim;
    for (size_t c = 0; c < C; c++) {
        size_t p = C - 1 - c;
        m->conv_b[c] = (float)(0.3 * gauss()); /* ReLUs mixed on and off */
        r->conv_b[p] = m->conv_b[c];
        for (size_t row = 0; row < 3 * E; row++)
            r->conv_w[row * C + p] = m->conv_w[row * C + c];
        for (size_t half = 0; half < 2; half++)
            memcpy(r->proj_w + (half * C + p) * D, m->proj_w + (half * C + c) * D,
                   sizeof *r->proj_w * D);
    }
    double worst = 0.0;
    for (int t = 0; t < 20; t++) {
        pho_token toks[40];
        float x[16], y[16];
        size_t n = random_tokens(toks, 1, 40);
        pho_model_encode(m, toks, n, x);
        pho_model_encode(r, toks, n, y);
        for (size_t d = 0; d < D; d++)
            worst = fmax(worst, fabs((double)x[d] - y[d]));
    }
    ok(worst < 1e-5, "80 channels in reverse order encode alike (largest difference %.1e)", worst);
    pho_model_destroy(m);
    pho_model_destroy(r);
}

int main(void)
{
    /* ---- gradients ---- */
    pho_model_arch conv = {PHO_ARCH_CONV, 4, 4, 5, 3, PHO_OUT_PLAIN};
    pho_model_arch bag = {PHO_ARCH_BAG, 4, 4, 0, 3, PHO_OUT_PLAIN};
    gradcheck(&conv, "conv");
    gradcheck(&bag, "bag");

    {
        pho_loss_opts apl, smooth;
        static const float q_weight[NQ] = {1.0f, 0.25f, 0.05f, 0.7f};
        pho_loss_opts_init(&apl);
        apl.kind = PHO_LOSS_APL;
        apl.alpha = 2.0;
        apl.beta = 0.5;
        pho_loss_opts_init(&smooth);
        smooth.smoothing = 0.1;
        /* the loss's gradient with respect to the output vectors is the
         * same code for every architecture: the bag's smooth backward
         * pass checks it tightly, the conv's ReLU switches would blur it */
        g_loss = &apl;
        gradcheck(&bag, "bag, APL");
        g_loss = &smooth;
        gradcheck(&bag, "bag, smoothed");
        g_q_weight = q_weight;
        gradcheck(&bag, "bag, smoothed, weighted pairs");
        g_loss = NULL;
        g_q_weight = NULL;
    }
    {
        /* the squashed output stage through erf and a second normalisation,
         * and the mean/variance regulariser over the batch's vectors */
        pho_model_arch sconv = conv, sbag = bag;
        pho_squash_opts reg_only = {0, 0.7};
        sconv.output = PHO_OUT_SQUASH;
        sbag.output = PHO_OUT_SQUASH;
        gradcheck(&sbag, "bag, squashed output");
        gradcheck(&sconv, "conv, squashed output");
        g_squash = &reg_only;
        gradcheck(&sbag, "bag, squashed output, regulariser");
        g_squash = NULL;
    }
    test_loss_kinds();
    test_conv_channel_order();

    /* ---- forward passes ---- */
    pho_model_arch a = {PHO_ARCH_CONV, 16, 10, 32, 64, PHO_OUT_PLAIN};
    pho_model *m = NULL;
    pho_model_cache *cache = NULL;
    pho_token toks[16][40], big[PHO_TOKENS_MAX + 1];
    size_t lens[16];
    float want[16 * 64], out[64];
    int same = 1, unit = 1;

    is_int(pho_model_create(&a, 9, &m, NULL), ERD_OK, "model for encoding");
    is_int(pho_model_cache_create(&a, &cache), ERD_OK, "cache");
    for (size_t i = 0; i < 16; i++) {
        double nn = 0.0;
        lens[i] = random_tokens(toks[i], 1, 40);
        pho_model_encode(m, toks[i], lens[i], want + i * 64);
        pho_model_forward(m, toks[i], lens[i], cache, out);
        same &= !memcmp(out, want + i * 64, sizeof out);
        for (size_t d = 0; d < 64; d++)
            nn += (double)out[d] * out[d];
        unit &= fabs(nn - 1.0) < 1e-5;
    }
    ok(same, "streaming encode and recording forward agree bit for bit");
    ok(unit, "outputs are unit vectors");
    {
        float z[64];
        int zero = 1;
        memset(z, 0x7f, sizeof z);
        is_int(pho_model_encode(m, toks[0], 0, z), ERD_OK, "empty phrase");
        for (size_t d = 0; d < 64; d++)
            zero &= z[d] == 0.0f;
        ok(zero, "empty phrase encodes to zeros");
    }
    toks[15][3].phone = 0;
    is_int(pho_model_encode(m, toks[15], lens[15] > 3 ? lens[15] : 4, out), ERD_EINVAL,
           "phone 0 refused");
    toks[15][3].phone = PHO_N_PHONES;
    is_int(pho_model_encode(m, toks[15], lens[15] > 3 ? lens[15] : 4, out), ERD_EINVAL,
           "phone out of range refused");
    toks[15][3].phone = 1;
    pho_model_encode(m, toks[15], lens[15], want + 15 * 64);
    random_tokens(big, PHO_TOKENS_MAX + 1, PHO_TOKENS_MAX + 1);
    is_int(pho_model_encode(m, big, PHO_TOKENS_MAX + 1, out), ERD_ETOOLONG, "too many tokens");
    is_int(pho_model_encode(m, big, PHO_TOKENS_MAX, out), ERD_OK, "longest phrase encodes");
    {
        pthread_t th[2];
        job j[2] = {{m, (const pho_token(*)[40])toks, lens, want, 0},
                    {m, (const pho_token(*)[40])toks, lens, want, 0}};
        for (int t = 0; t < 2; t++)
            pthread_create(&th[t], NULL, encode_many, &j[t]);
        for (int t = 0; t < 2; t++)
            pthread_join(th[t], NULL);
        is_int(j[0].bad + j[1].bad, 0, "concurrent encodes give the single-threaded results");
    }
    pho_model_cache_destroy(cache);
    pho_model_destroy(m);

    /* ---- speed of the shipped default shape (a diagnostic, not a pass mark) ---- */
    {
        pho_train_opts o;
        pho_model *dm = NULL;
        pho_train_opts_init(&o);
        if (pho_model_create(&o.arch, 1, &dm, NULL) == ERD_OK) {
            pho_token t20[20];
            random_tokens(t20, 20, 20);
            float v[PHO_MODEL_OUT_MAX];
            double t0 = now();
            for (int i = 0; i < 2000; i++)
                pho_model_encode(dm, t20, 20, v);
            printf("# default model: %.1f us per 20-phone phrase\n", (now() - t0) / 2000 * 1e6);
        }
        pho_model_destroy(dm);
    }

    /* ---- through the encoder interface ---- */
    {
        char path[] = "/tmp/erd-test-siamese-XXXXXX", spec[200], id[200];
        int fd = mkstemp(path);
        pho_encoder *enc = NULL, *enc2 = NULL;
        erd_diag diag = {0};
        pho_model *mm = NULL;
        void *blob = (void *)1;
        size_t blen = 99;
        close(fd);
        pho_model_create(&a, 5, &mm, NULL);
        is_int(pho_model_save(mm, path, "test", &diag), ERD_OK, "save a model");
        snprintf(spec, sizeof spec, "model:%s", path);
        is_int(pho_encoder_create(spec, &enc, &diag), ERD_OK, "create from model:PATH");
        snprintf(id, sizeof id, "model:%s#%08x", path, (unsigned)(uint32_t)mm->checksum);
        is_str(pho_encoder_id(enc), id, "id is the spec plus the checksum");
        is_int(pho_encoder_dim(enc), 64, "dimension from the file");
        is_int(pho_encoder_fit(enc, NULL, 0, &diag), ERD_OK, "fit is a no-op");
        is_int(pho_encoder_state_save(enc, &blob, &blen), ERD_OK, "state save");
        ok(blob == NULL && blen == 0, "no per-catalog state");
        is_int(pho_encoder_state_load(enc, NULL, 0, &diag), ERD_OK, "empty state loads");
        {
            pho_phrase p = {"x", toks[2], lens[2]};
            float v1[64], v2[64];
            pho_encoder_encode(enc, &p, v1);
            pho_model_encode(mm, toks[2], lens[2], v2);
            ok(!memcmp(v1, v2, sizeof v1), "encoder encodes as the model does");
        }
        is_int(pho_encoder_create(pho_encoder_id(enc), &enc2, &diag), ERD_OK,
               "recreated from its own id (what the resolver does)");
        is_str(pho_encoder_id(enc2), id, "same id after the round trip");
        pho_encoder_destroy(enc2);
        enc2 = NULL;
        mm->params[0] += 1.0f;
        pho_model_save(mm, path, "retrained", &diag);
        is_int(pho_encoder_create(id, &enc2, &diag), ERD_EMISMATCH,
               "an id whose file has changed is refused");
        ok(strstr(diag.msg, "changed") != NULL, "message says why: %s", diag.msg);
        is_int(pho_encoder_create("model:", &enc2, &diag), ERD_EINVAL, "model: without a path");
        is_int(pho_encoder_create("model:/nonexistent/m.bin", &enc2, &diag), ERD_ENOTFOUND,
               "missing model file");
        ok(enc2 == NULL, "ret untouched on failure");
        pho_encoder_destroy(enc);
        pho_model_destroy(mm);
        remove(path);
    }

    /* ---- training ---- */
    {
        pho_trainset *ts = synthetic_set(300, 4);
        pho_train_opts o;
        pho_model *m1 = NULL, *m2 = NULL, *m3 = NULL;
        pho_train_result r1, r2, r3;
        erd_diag diag = {0};
        double b1, b5;
        pho_encoder *bl = NULL;

        ok(ts && pho_trainset_n_phrases(ts) == 300 && pho_trainset_n_pairs(ts) > 1000,
           "synthetic training set");
        pho_train_opts_init(&o);
        o.arch = (pho_model_arch){PHO_ARCH_CONV, 16, 10, 32, 32, PHO_OUT_PLAIN};
        o.epochs = 4;
        o.batch = 32;
        o.holdout = 0.2;
        o.hard_k = 4;
        o.lr = 0.01;
        is_int(pho_train(ts, &o, &m1, &r1, &diag), ERD_OK, "train");
        is_int(pho_train(ts, &o, &m2, &r2, &diag), ERD_OK, "train again, same seed");
        ok(m1 && m2 && !memcmp(m1->params, m2->params, sizeof *m1->params * m1->n_params),
           "same seed, same weights");
        o.seed = 2;
        is_int(pho_train(ts, &o, &m3, &r3, &diag), ERD_OK, "train, other seed");
        ok(m1 && m3 && memcmp(m1->params, m3->params, sizeof *m1->params * m1->n_params),
           "other seed, other weights");
        ok(r1.heldout_phrases > 30 && r1.heldout_phrases < 100, "held-out slice %zu phrases",
           r1.heldout_phrases);
        pho_encoder_create("baseline:256", &bl, NULL);
        is_int(pho_train_eval_encoder(ts, 0.2, bl, &b1, &b5, &diag), ERD_OK, "baseline evaluated");
        ok(r1.recall1 > 0.5, "trained model recalls held-out phrases (recall@1 %.3f)", r1.recall1);
        printf("# synthetic held-out recall@1: trained %.3f, baseline %.3f\n", r1.recall1, b1);
        {
            /* Fine-tuning: the start is scored as epoch 0 on the same held-out
             * slice, so the result can only match or beat it. */
            pho_train_opts fo = o;
            pho_model *mf = NULL;
            pho_train_result rf;
            fo.init = m1;
            fo.arch = (pho_model_arch){PHO_ARCH_BAG, 8, 8, 0, 16, PHO_OUT_PLAIN}; /* ignored */
            fo.epochs = 2;
            fo.lr = 0.002;
            is_int(pho_train(ts, &fo, &mf, &rf, &diag), ERD_OK, "fine-tune from a trained model");
            ok(mf && !memcmp(&mf->arch, &m1->arch, sizeof mf->arch), "fine-tuned keeps the arch");
            ok(rf.recall1 >= r1.recall1, "fine-tuned held-out recall@1 %.3f >= start %.3f",
               rf.recall1, r1.recall1);
            ok(mf && (rf.best_epoch == 0) ==
                         !memcmp(mf->params, m1->params, sizeof *mf->params * mf->n_params),
               "weights change exactly when a later epoch won (best epoch %u)", rf.best_epoch);
            pho_model_destroy(mf);
        }
        {
            /* Patience: a start no epoch can beat (a step size too small to
             * move any ranking) stops after `patience` stale epochs. */
            pho_train_opts po = o;
            pho_model *mp = NULL;
            pho_train_result rp;
            po.init = m1;
            po.epochs = 10;
            po.lr = 1e-9;
            po.patience = 2;
            is_int(pho_train(ts, &po, &mp, &rp, &diag), ERD_OK, "fine-tune with patience");
            ok(rp.epochs_run == 2 && rp.best_epoch == 0, "stopped after 2 stale epochs (ran %u, "
               "best %u)", rp.epochs_run, rp.best_epoch);
            pho_model_destroy(mp);
            /* The label-noise mitigations still learn. */
            po = o;
            po.seed = 1;
            po.loss.kind = PHO_LOSS_APL;
            po.pair_knee = 0.5;
            is_int(pho_train(ts, &po, &mp, &rp, &diag), ERD_OK, "train with APL and pair weights");
            ok(rp.recall1 > 0.5, "APL model recalls held-out phrases (recall@1 %.3f)", rp.recall1);
            pho_model_destroy(mp);
            mp = NULL;
            po.loss.kind = PHO_LOSS_INFONCE;
            po.loss.smoothing = 0.6;
            ok(pho_train(ts, &po, &mp, &rp, NULL) == ERD_EINVAL && !mp, "smoothing over 0.5 refused");
        }
        o.epochs = 0;
        is_int(pho_train(ts, &o, &m3, &r3, &diag), ERD_EINVAL, "zero epochs refused");
        pho_encoder_destroy(bl);
        pho_model_destroy(m1);
        pho_model_destroy(m2);
        pho_model_destroy(m3);
        pho_trainset_destroy(ts);
    }
    return tap_done();
}
