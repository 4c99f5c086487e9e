/* The learned encoder's network: forward pass (streaming, for serving, and
 * recording, for training), backward pass, and the model file.
 *
 * N-grams are hashed over the phone stream without word boundaries: the
 * recogniser splits words where it likes ("gypsies" / "gypsy is"), so a
 * boundary inside a gram would make the two spellings share nothing.  The
 * word-start embedding still tells the network where the words of this
 * particular spelling begin. */
#include "phonetics/pho_model.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "phonetics/pho_internal.h"
#include "phonetics/sim/pho_rng.h"
#include "proto/erd_file.h"

#define PHO__N_STRESS 3
#define PHO__N_WORD 2
#define PHO__ROWS 5 /* embedding rows summed per token */

static const char pho__model_magic[8] = {'E', 'R', 'D', 'P', 'H', 'O', 'M', '\0'};
#define PHO__WEIGHTS_F32 1
#define PHO__KIND_OUTPUT_SHIFT 8
#define PHO__KIND_MASK 0xffu
#define PHO__HDR_LEN (56 + PHO_MODEL_META_MAX)
/* Refuse absurd files before allocating for them. */
#define PHO__FILE_MAX ((size_t)1 << 30)

struct pho_model_cache {
    pho_model_arch arch;
    size_t n;        /* tokens of the last forward */
    float *x;        /* (PHO_TOKENS_MAX + 2) x emb; row i+1 is token i, rows 0 and n+1 zero */
    float *dx;       /* same shape, backward scratch */
    uint32_t *rows;  /* PHO_TOKENS_MAX x PHO__ROWS embedding rows (absolute offsets / emb) */
    float *h;        /* PHO_TOKENS_MAX x conv, after ReLU */
    uint32_t *arg;   /* conv: position of each channel's maximum */
    float *pool;     /* pool_dim */
    float *y;        /* out_dim, normalised output */
    double norm;     /* |z| before normalisation */
    float *yn;       /* squashed output only: z / |z|, what the squash reads */
    double snorm;    /* squashed output only: |erf(...)| before the last normalisation */
};

int pho_model_arch_check(const pho_model_arch *a, erd_diag *diag)
{
    if (a->kind != PHO_ARCH_CONV && a->kind != PHO_ARCH_BAG)
        return erd_fail(diag, ERD_EINVAL, "unknown model architecture kind %u", a->kind);
    if (a->emb_dim < 1 || a->emb_dim > PHO_MODEL_EMB_MAX)
        return erd_fail(diag, ERD_EINVAL, "embedding width %u outside 1..%d", a->emb_dim,
                        PHO_MODEL_EMB_MAX);
    if (a->hash_bits < PHO_MODEL_HASH_BITS_MIN || a->hash_bits > PHO_MODEL_HASH_BITS_MAX)
        return erd_fail(diag, ERD_EINVAL, "hash bits %u outside %d..%d", a->hash_bits,
                        PHO_MODEL_HASH_BITS_MIN, PHO_MODEL_HASH_BITS_MAX);
    if (a->kind == PHO_ARCH_CONV ? a->conv_dim < 1 || a->conv_dim > PHO_MODEL_CONV_MAX
                                 : a->conv_dim != 0)
        return erd_fail(diag, ERD_EINVAL, "convolution width %u invalid for this architecture",
                        a->conv_dim);
    if (a->out_dim < 2 || a->out_dim > PHO_MODEL_OUT_MAX)
        return erd_fail(diag, ERD_EINVAL, "output dimension %u outside 2..%d", a->out_dim,
                        PHO_MODEL_OUT_MAX);
    if (a->output != PHO_OUT_PLAIN && a->output != PHO_OUT_SQUASH)
        return erd_fail(diag, ERD_EINVAL, "unknown model output stage %u", a->output);
    return ERD_OK;
}

size_t pho_model_pool_dim(const pho_model_arch *a)
{
    return a->kind == PHO_ARCH_CONV ? 2 * (size_t)a->conv_dim : a->emb_dim;
}

/* Parameter count and group layout, in file order. */
static size_t pho__layout(const pho_model_arch *a, pho_param_group *g, size_t *ret_n_groups)
{
    size_t E = a->emb_dim, off = 0, n = 0;
    const struct {
        const char *name;
        size_t count;
    } parts[] = {
        {"phone embeddings", (size_t)PHO_N_PHONES * E},
        {"stress embeddings", PHO__N_STRESS * E},
        {"word-start embeddings", PHO__N_WORD * E},
        {"n-gram embeddings", ((size_t)1 << a->hash_bits) * E},
        {"convolution weights", a->kind == PHO_ARCH_CONV ? 3 * E * a->conv_dim : 0},
        {"convolution bias", a->kind == PHO_ARCH_CONV ? a->conv_dim : 0},
        {"projection", pho_model_pool_dim(a) * a->out_dim},
    };
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        if (g && parts[i].count) {
            g[n].name = parts[i].name;
            g[n].offset = off;
            g[n].count = parts[i].count;
        }
        n += parts[i].count != 0;
        off += parts[i].count;
    }
    if (ret_n_groups)
        *ret_n_groups = n;
    return off;
}

size_t pho_model_groups(const pho_model *m, pho_param_group *groups)
{
    size_t n;
    pho__layout(&m->arch, groups, &n);
    return n;
}

static void pho__bind(pho_model *m)
{
    size_t E = m->arch.emb_dim, C = m->arch.conv_dim;
    float *p = m->params;

    m->e_phone = p;
    p += (size_t)PHO_N_PHONES * E;
    m->e_stress = p;
    p += PHO__N_STRESS * E;
    m->e_word = p;
    p += PHO__N_WORD * E;
    m->e_hash = p;
    p += ((size_t)1 << m->arch.hash_bits) * E;
    m->conv_w = m->arch.kind == PHO_ARCH_CONV ? p : NULL;
    p += m->arch.kind == PHO_ARCH_CONV ? 3 * E * C : 0;
    m->conv_b = m->arch.kind == PHO_ARCH_CONV ? p : NULL;
    p += m->arch.kind == PHO_ARCH_CONV ? C : 0;
    m->proj_w = p;
}

static pho_model *pho__alloc(const pho_model_arch *arch)
{
    pho_model *m = calloc(1, sizeof *m);

    if (!m)
        return NULL;
    m->arch = *arch;
    m->n_params = pho__layout(arch, NULL, NULL);
    m->params = calloc(m->n_params, sizeof *m->params);
    if (!m->params) {
        free(m);
        return NULL;
    }
    pho__bind(m);
    return m;
}

static double pho__gauss(uint64_t *s)
{
    double u1 = ((double)(pho_splitmix64(s) >> 11) + 0.5) / 9007199254740992.0;
    double u2 = (double)(pho_splitmix64(s) >> 11) / 9007199254740992.0;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static void pho__fill(float *p, size_t n, double sd, uint64_t *s)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (float)(sd * pho__gauss(s));
}

int pho_model_create(const pho_model_arch *arch, uint64_t seed, pho_model **ret, erd_diag *diag)
{
    pho_model *m;
    uint64_t s = seed ^ 0x5eed5eed5eed5eedULL;
    size_t E, pool;
    int rc = pho_model_arch_check(arch, diag);

    if (rc < 0)
        return rc;
    m = pho__alloc(arch);
    if (!m)
        return erd_fail(diag, ERD_ENOMEM, "out of memory for a model of %zu parameters",
                        pho__layout(arch, NULL, NULL));
    E = arch->emb_dim;
    pool = pho_model_pool_dim(arch);
    /* Five rows are summed per token: 0.1 each keeps the sum near unit scale
     * per component without any one feature dominating at the start. */
    pho__fill(m->e_phone, (size_t)PHO_N_PHONES * E, 0.1, &s);
    pho__fill(m->e_stress, PHO__N_STRESS * E, 0.1, &s);
    pho__fill(m->e_word, PHO__N_WORD * E, 0.1, &s);
    pho__fill(m->e_hash, ((size_t)1 << arch->hash_bits) * E, 0.1, &s);
    if (arch->kind == PHO_ARCH_CONV)
        pho__fill(m->conv_w, 3 * E * arch->conv_dim, sqrt(2.0 / (3.0 * (double)E)), &s);
    pho__fill(m->proj_w, pool * arch->out_dim, sqrt(1.0 / (double)pool), &s);
    *ret = m;
    return ERD_OK;
}

void pho_model_destroy(pho_model *m)
{
    if (!m)
        return;
    free(m->params);
    free(m);
}

int pho_model_clone(const pho_model *m, pho_model **ret)
{
    pho_model *c = pho__alloc(&m->arch);

    if (!c)
        return ERD_ENOMEM;
    memcpy(c->params, m->params, sizeof *c->params * m->n_params);
    memcpy(c->meta, m->meta, sizeof c->meta);
    c->checksum = m->checksum;
    *ret = c;
    return ERD_OK;
}

/* ---- forward ---- */

static uint64_t pho__mix(uint64_t x)
{
    x ^= x >> 31;
    x *= 0x7fb5d329728ea185ULL;
    x ^= x >> 27;
    x *= 0x81dadef4bc2dd44dULL;
    x ^= x >> 33;
    return x;
}

static int pho__check_tokens(const pho_token *t, size_t n)
{
    if (n > PHO_TOKENS_MAX)
        return ERD_ETOOLONG;
    for (size_t i = 0; i < n; i++)
        if (t[i].phone == 0 || t[i].phone >= PHO_N_PHONES || t[i].stress >= PHO__N_STRESS)
            return ERD_EINVAL;
    return ERD_OK;
}

/* Rows of the embedding tables token i draws on, as row indices into the
 * concatenated tables (e_phone first, so a row times emb is its offset). */
static void pho__token_rows(const pho_model_arch *a, const pho_token *t, size_t n, size_t i,
                            uint32_t *rows)
{
    uint64_t prev = i > 0 ? t[i - 1].phone : 0, cur = t[i].phone;
    uint64_t next = i + 1 < n ? t[i + 1].phone : 0;
    unsigned shift = 64 - a->hash_bits;
    uint32_t hash0 = PHO_N_PHONES + PHO__N_STRESS + PHO__N_WORD;

    rows[0] = (uint32_t)cur;
    rows[1] = PHO_N_PHONES + t[i].stress;
    rows[2] = PHO_N_PHONES + PHO__N_STRESS + (t[i].word_start ? 1u : 0u);
    rows[3] = hash0 + (uint32_t)(pho__mix((2ULL << 56) | prev << 8 | cur) >> shift);
    rows[4] = hash0 + (uint32_t)(pho__mix((3ULL << 56) | prev << 16 | cur << 8 | next) >> shift);
}

static void pho__embed(const pho_model *m, const uint32_t *rows, float *x)
{
    size_t E = m->arch.emb_dim;
    const float *r[PHO__ROWS];

    for (int j = 0; j < PHO__ROWS; j++)
        r[j] = m->params + (size_t)rows[j] * E;
    for (size_t k = 0; k < E; k++)
        x[k] = r[0][k] + r[1][k] + r[2][k] + r[3][k] + r[4][k];
}

#define PHO__CONV_BLOCK 64

/* One output position of the convolution; a NULL neighbour is the zero
 * padding beyond the phrase.  Most of a convolutional encoder's time:
 * compiled for wider vectors too, picked by the CPU at load.  The loop
 * over channels is independent per channel and never contracted into
 * fused multiply-adds (-ffp-contract=off), so every clone computes the
 * same floats. */
__attribute__((target_clones("avx512f", "avx2", "default"))) static void pho__conv_row(
    const pho_model *m, const float *const xs[3], float *h)
{
    size_t E = m->arch.emb_dim, C = m->arch.conv_dim;

    /* 64 channels at a time held in registers across the whole sum; each
     * channel still adds its terms in the same order */
    size_t c0 = 0;
    for (; c0 + PHO__CONV_BLOCK <= C; c0 += PHO__CONV_BLOCK) {
        float acc[PHO__CONV_BLOCK];
        memcpy(acc, m->conv_b + c0, sizeof acc);
        for (size_t j = 0; j < 3; j++) {
            if (!xs[j])
                continue;
            for (size_t k = 0; k < E; k++) {
                const float v = xs[j][k];
                const float *w = m->conv_w + (j * E + k) * C + c0;
                for (size_t c = 0; c < PHO__CONV_BLOCK; c++)
                    acc[c] += v * w[c];
            }
        }
        for (size_t c = 0; c < PHO__CONV_BLOCK; c++)
            h[c0 + c] = acc[c] > 0.0f ? acc[c] : 0.0f;
    }
    if (c0 == C)
        return;
    memcpy(h + c0, m->conv_b + c0, sizeof *h * (C - c0));
    for (size_t j = 0; j < 3; j++) {
        if (!xs[j])
            continue;
        for (size_t k = 0; k < E; k++) {
            const float v = xs[j][k];
            const float *w = m->conv_w + (j * E + k) * C;
            for (size_t c = c0; c < C; c++)
                h[c] += v * w[c];
        }
    }
    for (size_t c = c0; c < C; c++)
        h[c] = h[c] > 0.0f ? h[c] : 0.0f;
}

/* Gain of the squash: sqrt(D) y has unit variance per dimension, and
 * erf(x / sqrt(2)) is the Gaussian CDF mapped to -1..1. */
static double pho__squash_gain(size_t D)
{
    return sqrt(0.5 * (double)D);
}

/* v (a unit vector of D floats) becomes erf(gain v) normalised, in place;
 * returns the norm divided by. */
static double pho__squash(float *v, size_t D)
{
    double k = pho__squash_gain(D), norm = 0.0;

    for (size_t d = 0; d < D; d++) {
        double s = erf(k * v[d]);
        v[d] = (float)s;
        norm += s * s;
    }
    norm = sqrt(norm);
    if (norm > 0.0)
        for (size_t d = 0; d < D; d++)
            v[d] = (float)(v[d] / norm);
    return norm;
}

/* The forward pass; cache NULL keeps everything in fixed stack arrays.
 * Cloned for wider vectors as pho__conv_row is, with the same floats. */
__attribute__((target_clones("avx512f", "avx2", "default"))) static int pho__run(const pho_model *m, const pho_token *t, size_t n, pho_model_cache *cache,
                    float *out)
{
    const pho_model_arch *a = &m->arch;
    size_t E = a->emb_dim, C = a->conv_dim, D = a->out_dim, P = pho_model_pool_dim(a);
    float ring[3][PHO_MODEL_EMB_MAX], hbuf[PHO_MODEL_CONV_MAX], pool[2 * PHO_MODEL_CONV_MAX];
    float z[PHO_MODEL_OUT_MAX];
    uint32_t rows[PHO__ROWS], arg[PHO_MODEL_CONV_MAX];
    double norm = 0.0;
    int rc = pho__check_tokens(t, n);

    if (rc < 0)
        return rc;
    if (cache)
        cache->n = n;
    memset(out, 0, sizeof *out * D);
    if (n == 0) {
        if (cache)
            cache->norm = 0.0;
        return ERD_OK;
    }
#define PHO__X(i) (cache ? cache->x + ((i) + 1) * E : ring[(i) % 3])
    memset(pool, 0, sizeof *pool * P);
    if (a->kind == PHO_ARCH_BAG) {
        for (size_t i = 0; i < n; i++) {
            float *x = PHO__X(i);
            pho__token_rows(a, t, n, i, cache ? cache->rows + i * PHO__ROWS : rows);
            pho__embed(m, cache ? cache->rows + i * PHO__ROWS : rows, x);
            for (size_t k = 0; k < E; k++)
                pool[k] += x[k];
        }
        for (size_t k = 0; k < E; k++)
            pool[k] /= (float)n;
    } else {
        float *mx = pool + C;
        pho__token_rows(a, t, n, 0, cache ? cache->rows : rows);
        pho__embed(m, cache ? cache->rows : rows, PHO__X(0));
        for (size_t i = 0; i < n; i++) {
            const float *xs[3];
            float *h = cache ? cache->h + i * C : hbuf;
            if (i + 1 < n) {
                uint32_t *r = cache ? cache->rows + (i + 1) * PHO__ROWS : rows;
                pho__token_rows(a, t, n, i + 1, r);
                pho__embed(m, r, PHO__X(i + 1));
            }
            xs[0] = i > 0 ? PHO__X(i - 1) : NULL;
            xs[1] = PHO__X(i);
            xs[2] = i + 1 < n ? PHO__X(i + 1) : NULL;
            pho__conv_row(m, xs, h);
            for (size_t c = 0; c < C; c++) {
                pool[c] += h[c];
                if (i == 0 || h[c] > mx[c]) {
                    mx[c] = h[c];
                    arg[c] = (uint32_t)i;
                }
            }
        }
        for (size_t c = 0; c < C; c++)
            pool[c] /= (float)n;
    }
#undef PHO__X
    memset(z, 0, sizeof *z * D);
    for (size_t k = 0; k < P; k++) {
        const float v = pool[k];
        const float *w = m->proj_w + k * D;
        for (size_t d = 0; d < D; d++)
            z[d] += v * w[d];
    }
    for (size_t d = 0; d < D; d++)
        norm += (double)z[d] * z[d];
    norm = sqrt(norm);
    if (norm > 0.0)
        for (size_t d = 0; d < D; d++)
            out[d] = (float)(z[d] / norm);
    if (a->output == PHO_OUT_SQUASH) {
        if (cache)
            memcpy(cache->yn, out, sizeof *out * D);
        double sn = norm > 0.0 ? pho__squash(out, D) : 0.0;
        if (cache)
            cache->snorm = sn;
    }
    if (cache) {
        memcpy(cache->pool, pool, sizeof *pool * P);
        memcpy(cache->y, out, sizeof *out * D);
        if (a->kind == PHO_ARCH_CONV)
            memcpy(cache->arg, arg, sizeof *arg * C);
        cache->norm = norm;
        memset(cache->x, 0, sizeof *cache->x * E);
        memset(cache->x + (n + 1) * E, 0, sizeof *cache->x * E);
    }
    return ERD_OK;
}

int pho_model_encode(const pho_model *m, const pho_token *tokens, size_t n, float *out)
{
    if (!m || !out || (!tokens && n > 0))
        return ERD_EINVAL;
    return pho__run(m, tokens, n, NULL, out);
}

int pho_model_cache_create(const pho_model_arch *arch, pho_model_cache **ret)
{
    pho_model_cache *c = calloc(1, sizeof *c);
    size_t E = arch->emb_dim, C = arch->conv_dim;

    if (!c)
        return ERD_ENOMEM;
    c->arch = *arch;
    c->x = malloc(sizeof *c->x * (PHO_TOKENS_MAX + 2) * E);
    c->dx = malloc(sizeof *c->dx * (PHO_TOKENS_MAX + 2) * E);
    c->rows = malloc(sizeof *c->rows * PHO_TOKENS_MAX * PHO__ROWS);
    c->h = malloc(sizeof *c->h * PHO_TOKENS_MAX * (C ? C : 1));
    c->arg = malloc(sizeof *c->arg * (C ? C : 1));
    c->pool = malloc(sizeof *c->pool * pho_model_pool_dim(arch));
    c->y = malloc(sizeof *c->y * arch->out_dim);
    c->yn = malloc(sizeof *c->yn * arch->out_dim);
    if (!c->x || !c->dx || !c->rows || !c->h || !c->arg || !c->pool || !c->y || !c->yn) {
        pho_model_cache_destroy(c);
        return ERD_ENOMEM;
    }
    *ret = c;
    return ERD_OK;
}

void pho_model_cache_destroy(pho_model_cache *c)
{
    if (!c)
        return;
    free(c->x);
    free(c->dx);
    free(c->rows);
    free(c->h);
    free(c->arg);
    free(c->pool);
    free(c->y);
    free(c->yn);
    free(c);
}

int pho_model_forward(const pho_model *m, const pho_token *tokens, size_t n, pho_model_cache *c,
                      float *out)
{
    if (!m || !c || !out || (!tokens && n > 0) || memcmp(&c->arch, &m->arch, sizeof c->arch))
        return ERD_EINVAL;
    return pho__run(m, tokens, n, c, out);
}

/* ---- backward ---- */

/* Eight independent partial sums: the compiler may vectorise them without
 * reassociating a single float sum (the order, and so the result, is fixed). */
static float pho__dotf(const float *a, const float *b, size_t n)
{
    float acc[8] = {0};
    size_t i = 0;

    for (; i + 8 <= n; i += 8)
        for (size_t u = 0; u < 8; u++)
            acc[u] += a[i + u] * b[i + u];
    for (; i < n; i++)
        acc[i & 7] += a[i] * b[i];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

/* d_out (with respect to the squashed output) becomes the gradient with
 * respect to the unit vector the squash read, in dyn. */
static void pho__squash_backward(const pho_model_cache *c, size_t D, const float *d_out,
                                 float *dyn)
{
    double k = pho__squash_gain(D), od = 0.0;

    for (size_t d = 0; d < D; d++)
        od += (double)c->y[d] * d_out[d];
    for (size_t d = 0; d < D; d++) {
        double ds = ((double)d_out[d] - c->y[d] * od) / c->snorm, x = k * c->yn[d];
        dyn[d] = (float)(ds * k * 1.1283791670955126 * exp(-x * x)); /* 2/sqrt(pi) */
    }
}

void pho_model_backward(const pho_model *m, const pho_model_cache *c, const float *d_out,
                        float *grad)
{
    const pho_model_arch *a = &m->arch;
    size_t E = a->emb_dim, C = a->conv_dim, D = a->out_dim, P = pho_model_pool_dim(a), n = c->n;
    float dz[PHO_MODEL_OUT_MAX], dpool[2 * PHO_MODEL_CONV_MAX], dh[PHO_MODEL_CONV_MAX];
    float dyn[PHO_MODEL_OUT_MAX];
    float *g_proj = grad + (size_t)(m->proj_w - m->params);
    const float *y = c->y;
    double yd = 0.0;

    if (n == 0 || c->norm <= 0.0)
        return;
    if (a->output == PHO_OUT_SQUASH) {
        if (c->snorm <= 0.0)
            return;
        pho__squash_backward(c, D, d_out, dyn);
        d_out = dyn;
        y = c->yn;
    }
    /* through the normalisation: only the part of d_out orthogonal to y moves it */
    for (size_t d = 0; d < D; d++)
        yd += (double)y[d] * d_out[d];
    for (size_t d = 0; d < D; d++)
        dz[d] = (float)(((double)d_out[d] - y[d] * yd) / c->norm);
    for (size_t k = 0; k < P; k++) {
        const float v = c->pool[k];
        const float *w = m->proj_w + k * D;
        float *g = g_proj + k * D;
        double s = 0.0;
        for (size_t d = 0; d < D; d++) {
            g[d] += v * dz[d];
            s += (double)w[d] * dz[d];
        }
        dpool[k] = (float)s;
    }
    if (a->kind == PHO_ARCH_BAG) {
        for (size_t k = 0; k < E; k++)
            dpool[k] /= (float)n;
        for (size_t i = 0; i < n; i++)
            for (int j = 0; j < PHO__ROWS; j++) {
                float *g = grad + (size_t)c->rows[i * PHO__ROWS + j] * E;
                for (size_t k = 0; k < E; k++)
                    g[k] += dpool[k];
            }
        return;
    }

    float *g_w = grad + (size_t)(m->conv_w - m->params);
    float *g_b = grad + (size_t)(m->conv_b - m->params);
    memset(c->dx, 0, sizeof *c->dx * (n + 2) * E);
    for (size_t i = 0; i < n; i++) {
        const float *h = c->h + i * C;
        int any = 0;
        for (size_t ch = 0; ch < C; ch++) {
            float g = 0.0f;
            if (h[ch] > 0.0f) {
                g = dpool[ch] / (float)n;
                if (c->arg[ch] == i)
                    g += dpool[C + ch];
            }
            dh[ch] = g;
            any |= g != 0.0f;
        }
        if (!any)
            continue;
        for (size_t ch = 0; ch < C; ch++)
            g_b[ch] += dh[ch];
        for (size_t j = 0; j < 3; j++) {
            size_t src = i + j; /* row in x: token i-1+j sits at row i+j */
            if (src == 0 || src == n + 1)
                continue;
            const float *x = c->x + src * E;
            float *dx = c->dx + src * E;
            for (size_t k = 0; k < E; k++) {
                const float *w = m->conv_w + (j * E + k) * C;
                float *gw = g_w + (j * E + k) * C;
                const float v = x[k];
                for (size_t ch = 0; ch < C; ch++)
                    gw[ch] += v * dh[ch];
                dx[k] += pho__dotf(w, dh, C);
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        const float *dx = c->dx + (i + 1) * E;
        for (int j = 0; j < PHO__ROWS; j++) {
            float *g = grad + (size_t)c->rows[i * PHO__ROWS + j] * E;
            for (size_t k = 0; k < E; k++)
                g[k] += dx[k];
        }
    }
}

/* ---- file ---- */

int pho_model_save(pho_model *m, const char *path, const char *meta, erd_diag *diag)
{
    size_t len = PHO__HDR_LEN + 4 * m->n_params + 8;
    unsigned char *buf = calloc(1, len), *p;
    uint64_t sum;
    int rc;

    if (!buf)
        return erd_fail(diag, ERD_ENOMEM, "out of memory writing the model");
    memcpy(buf, pho__model_magic, 8);
    pho__le_put32(buf + 8, PHO_MODEL_VERSION);
    pho__le_put32(buf + 12, m->arch.kind | m->arch.output << PHO__KIND_OUTPUT_SHIFT);
    pho__le_put32(buf + 16, m->arch.emb_dim);
    pho__le_put32(buf + 20, m->arch.hash_bits);
    pho__le_put32(buf + 24, m->arch.conv_dim);
    pho__le_put32(buf + 28, m->arch.out_dim);
    pho__le_put32(buf + 32, PHO_N_PHONES);
    pho__le_put32(buf + 36, PHO__WEIGHTS_F32);
    pho__le_put64(buf + 40, pho_inventory_hash());
    pho__le_put64(buf + 48, m->n_params);
    if (meta)
        memcpy(buf + 56, meta, strnlen(meta, PHO_MODEL_META_MAX - 1));
    p = buf + PHO__HDR_LEN;
    for (size_t i = 0; i < m->n_params; i++, p += 4) {
        uint32_t u;
        memcpy(&u, &m->params[i], 4);
        pho__le_put32(p, u);
    }
    sum = erd_fnv1a64(ERD_FNV1A64_OFFSET, buf, len - 8);
    pho__le_put64(p, sum);

    rc = erd_file_replace(path, buf, len, diag);
    if (rc < 0)
        goto out;
    if (meta)
        snprintf(m->meta, sizeof m->meta, "%s", meta);
    else
        m->meta[0] = '\0';
    m->checksum = sum;
    rc = ERD_OK;
out:
    free(buf);
    return rc;
}

int pho_model_load_buffer(const void *data, size_t len, pho_model **ret, erd_diag *diag)
{
    const unsigned char *b = data;
    pho_model_arch arch;
    pho_model *m;
    uint64_t sum, n_params;

    if (!b || len < 8 || memcmp(b, pho__model_magic, 8) != 0)
        return erd_fail(diag, ERD_ECORRUPT, "not an erd phonetic model (bad magic)");
    if (len < PHO__HDR_LEN + 8)
        return erd_fail(diag, ERD_ECORRUPT, "model truncated: %zu bytes, header alone is %d",
                        len, PHO__HDR_LEN + 8);
    if (pho__le_get32(b + 8) != PHO_MODEL_VERSION)
        return erd_fail(diag, ERD_EMISMATCH, "model format version %u, this erd reads %d",
                        pho__le_get32(b + 8), PHO_MODEL_VERSION);
    sum = erd_fnv1a64(ERD_FNV1A64_OFFSET, b, len - 8);
    if (sum != pho__le_get64(b + len - 8))
        return erd_fail(diag, ERD_ECORRUPT, "model checksum mismatch (truncated or damaged file)");
    /* the output stage shares the kind word: a plain model's is unchanged, and
     * an erd that predates the squash refuses a squashed model's kind */
    arch.kind = pho__le_get32(b + 12) & PHO__KIND_MASK;
    arch.output = pho__le_get32(b + 12) >> PHO__KIND_OUTPUT_SHIFT;
    arch.emb_dim = pho__le_get32(b + 16);
    arch.hash_bits = pho__le_get32(b + 20);
    arch.conv_dim = pho__le_get32(b + 24);
    arch.out_dim = pho__le_get32(b + 28);
    {
        erd_diag why = {0};
        if (pho_model_arch_check(&arch, &why) < 0)
            return erd_fail(diag, ERD_ECORRUPT, "model header: %s", why.msg);
    }
    if (pho__le_get32(b + 32) != PHO_N_PHONES || pho__le_get64(b + 40) != pho_inventory_hash())
        return erd_fail(diag, ERD_EMISMATCH,
                        "model was trained on another phone inventory (%u phones, hash "
                        "%016llx; this erd has %d, %016llx)",
                        pho__le_get32(b + 32), (unsigned long long)pho__le_get64(b + 40), PHO_N_PHONES,
                        (unsigned long long)pho_inventory_hash());
    if (pho__le_get32(b + 36) != PHO__WEIGHTS_F32)
        return erd_fail(diag, ERD_EMISMATCH, "model weight format %u unknown", pho__le_get32(b + 36));
    n_params = pho__le_get64(b + 48);
    if (n_params != pho__layout(&arch, NULL, NULL) || len != PHO__HDR_LEN + 4 * n_params + 8)
        return erd_fail(diag, ERD_ECORRUPT, "model holds %llu weights in %zu bytes, its header "
                        "implies %zu", (unsigned long long)n_params, len,
                        pho__layout(&arch, NULL, NULL));
    if (memchr(b + 56, '\0', PHO_MODEL_META_MAX) == NULL)
        return erd_fail(diag, ERD_ECORRUPT, "model metadata not terminated");
    m = pho__alloc(&arch);
    if (!m)
        return erd_fail(diag, ERD_ENOMEM, "out of memory loading the model");
    for (size_t i = 0; i < m->n_params; i++) {
        uint32_t u = pho__le_get32(b + PHO__HDR_LEN + 4 * i);
        memcpy(&m->params[i], &u, 4);
        if (!isfinite(m->params[i])) {
            pho_model_destroy(m);
            return erd_fail(diag, ERD_ECORRUPT, "model weight %zu is not finite", i);
        }
    }
    memcpy(m->meta, b + 56, PHO_MODEL_META_MAX);
    m->checksum = sum;
    *ret = m;
    return ERD_OK;
}

int pho_model_load(const char *path, pho_model **ret, erd_diag *diag)
{
    unsigned char *buf = NULL;
    size_t len;
    int rc = pho__read_file("model", path, PHO__FILE_MAX, &buf, &len, diag);

    if (rc < 0)
        return rc;
    rc = pho_model_load_buffer(buf, len, ret, diag);
    if (rc < 0 && diag) {
        char msg[sizeof diag->msg];
        snprintf(msg, sizeof msg, "%s", diag->msg);
        erd_fail(diag, rc, "model %s: %s", path, msg);
    }
    free(buf);
    return rc;
}
