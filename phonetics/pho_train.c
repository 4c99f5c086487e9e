/* Contrastive training of the learned encoder; see pho_train.h. */
#include "phonetics/pho_train.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "phonetics/pho_internal.h"
#include "phonetics/pho_quant.h"
#include "phonetics/sim/pho_rng.h"
#include "proto/erd_clock.h"

#define PHO__THREADS_MAX 64
#define PHO__HARD_K_MAX 64
/* Key of the held-out split: fixed, so every seed is judged on one slice. */
#define PHO__SPLIT_KEY 0x6a09e667f3bcc909ULL

struct pho_trainset {
    pho_token *tok;
    size_t n_tok, cap_tok;
    size_t *seq_off;
    uint32_t *seq_len;
    size_t n_seq, cap_seq;
    uint32_t *phr_seq; /* phrase -> its sequence */
    uint64_t *phr_hash;
    char **phr_text;
    size_t n_phr, cap_phr;
    uint32_t *table; /* open addressing over phrases: index + 1, 0 empty */
    size_t table_cap;
    uint32_t *pair_seq, *pair_phr;
    uint8_t *pair_synthetic; /* made by a noise channel, not heard by a recogniser */
    size_t n_pairs, cap_pairs;
};

static double pho__unit(uint64_t x)
{
    return (double)(pho_mix64(x) >> 11) / 9007199254740992.0;
}

/* Grows *p (of *cap elements of size sz) to hold need elements. */
static int pho__grow(void **p, size_t *cap, size_t need, size_t sz)
{
    size_t n = *cap ? *cap : 64;
    void *q;

    if (need <= *cap)
        return ERD_OK;
    while (n < need)
        n *= 2;
    q = realloc(*p, n * sz);
    if (!q)
        return ERD_ENOMEM;
    *p = q;
    *cap = n;
    return ERD_OK;
}

int pho_trainset_create(pho_trainset **ret)
{
    pho_trainset *ts = calloc(1, sizeof *ts);

    if (!ts)
        return ERD_ENOMEM;
    *ret = ts;
    return ERD_OK;
}

void pho_trainset_destroy(pho_trainset *ts)
{
    if (!ts)
        return;
    for (size_t i = 0; i < ts->n_phr; i++)
        free(ts->phr_text[i]);
    free(ts->tok);
    free(ts->seq_off);
    free(ts->seq_len);
    free(ts->phr_seq);
    free(ts->phr_hash);
    free(ts->phr_text);
    free(ts->table);
    free(ts->pair_seq);
    free(ts->pair_phr);
    free(ts->pair_synthetic);
    free(ts);
}

size_t pho_trainset_n_phrases(const pho_trainset *ts)
{
    return ts->n_phr;
}

size_t pho_trainset_n_pairs(const pho_trainset *ts)
{
    return ts->n_pairs;
}

static int pho__valid_tokens(const pho_token *t, size_t n)
{
    if (n == 0)
        return ERD_EEMPTY;
    if (n > PHO_TOKENS_MAX)
        return ERD_ETOOLONG;
    for (size_t i = 0; i < n; i++)
        if (t[i].phone == 0 || t[i].phone >= PHO_N_PHONES || t[i].stress > 2)
            return ERD_EINVAL;
    return ERD_OK;
}

static int pho__add_seq(pho_trainset *ts, const pho_token *t, size_t n, uint32_t *ret)
{
    if (ts->n_seq >= UINT32_MAX ||
        pho__grow((void **)&ts->tok, &ts->cap_tok, ts->n_tok + n, sizeof *ts->tok) < 0)
        return ERD_ENOMEM;
    size_t cap = ts->cap_seq;
    if (pho__grow((void **)&ts->seq_off, &cap, ts->n_seq + 1, sizeof *ts->seq_off) < 0 ||
        pho__grow((void **)&ts->seq_len, &ts->cap_seq, ts->n_seq + 1, sizeof *ts->seq_len) < 0)
        return ERD_ENOMEM;
    if (cap != ts->cap_seq) /* keep both arrays at one capacity */
        return ERD_ENOMEM;
    memcpy(ts->tok + ts->n_tok, t, sizeof *t * n);
    for (size_t i = 0; i < n; i++)
        ts->tok[ts->n_tok + i].reserved = 0;
    ts->seq_off[ts->n_seq] = ts->n_tok;
    ts->seq_len[ts->n_seq] = (uint32_t)n;
    ts->n_tok += n;
    *ret = (uint32_t)ts->n_seq++;
    return ERD_OK;
}

static uint64_t pho__tokens_hash(const pho_token *t, size_t n)
{
    uint64_t h = ERD_FNV1A64_OFFSET;
    for (size_t i = 0; i < n; i++) {
        unsigned char b[3] = {t[i].phone, t[i].stress, t[i].word_start ? 1 : 0};
        h = erd_fnv1a64(h, b, sizeof b);
    }
    return h;
}

static int pho__same_tokens(const pho_trainset *ts, uint32_t seq, const pho_token *t, size_t n)
{
    const pho_token *s = ts->tok + ts->seq_off[seq];
    if (ts->seq_len[seq] != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i].phone != t[i].phone || s[i].stress != t[i].stress ||
            !s[i].word_start != !t[i].word_start)
            return 0;
    return 1;
}

static int pho__rehash(pho_trainset *ts)
{
    size_t cap = ts->table_cap ? ts->table_cap * 2 : 1024;
    uint32_t *t = calloc(cap, sizeof *t);

    if (!t)
        return ERD_ENOMEM;
    for (size_t i = 0; i < ts->n_phr; i++) {
        size_t s = ts->phr_hash[i] & (cap - 1);
        while (t[s])
            s = (s + 1) & (cap - 1);
        t[s] = (uint32_t)i + 1;
    }
    free(ts->table);
    ts->table = t;
    ts->table_cap = cap;
    return ERD_OK;
}

int pho_trainset_add_phrase(pho_trainset *ts, const char *text, const pho_token *tokens, size_t n,
                            uint32_t *ret_idx)
{
    uint64_t h;
    size_t s, cap;
    uint32_t seq;
    char *copy;
    int rc = pho__valid_tokens(tokens, n);

    if (rc < 0)
        return rc;
    if (2 * (ts->n_phr + 1) > ts->table_cap && pho__rehash(ts) < 0)
        return ERD_ENOMEM;
    h = pho__tokens_hash(tokens, n);
    for (s = h & (ts->table_cap - 1); ts->table[s]; s = (s + 1) & (ts->table_cap - 1)) {
        uint32_t i = ts->table[s] - 1;
        if (ts->phr_hash[i] == h && pho__same_tokens(ts, ts->phr_seq[i], tokens, n)) {
            *ret_idx = i;
            return ERD_OK;
        }
    }
    cap = ts->cap_phr;
    if (pho__grow((void **)&ts->phr_seq, &cap, ts->n_phr + 1, sizeof *ts->phr_seq) < 0)
        return ERD_ENOMEM;
    cap = ts->cap_phr;
    if (pho__grow((void **)&ts->phr_hash, &cap, ts->n_phr + 1, sizeof *ts->phr_hash) < 0 ||
        pho__grow((void **)&ts->phr_text, &ts->cap_phr, ts->n_phr + 1, sizeof *ts->phr_text) < 0)
        return ERD_ENOMEM;
    copy = strdup(text ? text : "");
    if (!copy)
        return ERD_ENOMEM;
    rc = pho__add_seq(ts, tokens, n, &seq);
    if (rc < 0) {
        free(copy);
        return rc;
    }
    ts->phr_seq[ts->n_phr] = seq;
    ts->phr_hash[ts->n_phr] = h;
    ts->phr_text[ts->n_phr] = copy;
    ts->table[s] = (uint32_t)ts->n_phr + 1;
    *ret_idx = (uint32_t)ts->n_phr++;
    return ERD_OK;
}

static int pho__add_pair(pho_trainset *ts, uint32_t phrase, const pho_token *tokens, size_t n,
                         uint8_t synthetic)
{
    uint32_t seq;
    size_t cap = ts->cap_pairs, cap2 = ts->cap_pairs;
    int rc = pho__valid_tokens(tokens, n);

    if (rc < 0)
        return rc;
    if (phrase >= ts->n_phr)
        return ERD_EINVAL;
    /* the three arrays grow in step: the last one records the new capacity */
    if (pho__grow((void **)&ts->pair_seq, &cap, ts->n_pairs + 1, sizeof *ts->pair_seq) < 0 ||
        pho__grow((void **)&ts->pair_synthetic, &cap2, ts->n_pairs + 1,
                  sizeof *ts->pair_synthetic) < 0 ||
        pho__grow((void **)&ts->pair_phr, &ts->cap_pairs, ts->n_pairs + 1,
                  sizeof *ts->pair_phr) < 0)
        return ERD_ENOMEM;
    /* a hypothesis identical to its phrase needs no copy of its own */
    if (pho__same_tokens(ts, ts->phr_seq[phrase], tokens, n))
        seq = ts->phr_seq[phrase];
    else if ((rc = pho__add_seq(ts, tokens, n, &seq)) < 0)
        return rc;
    ts->pair_seq[ts->n_pairs] = seq;
    ts->pair_phr[ts->n_pairs] = phrase;
    ts->pair_synthetic[ts->n_pairs] = synthetic;
    ts->n_pairs++;
    return ERD_OK;
}

int pho_trainset_add_pair(pho_trainset *ts, uint32_t phrase, const pho_token *tokens, size_t n)
{
    return pho__add_pair(ts, phrase, tokens, n, 0);
}

int pho_trainset_add_synthetic_pair(pho_trainset *ts, uint32_t phrase, const pho_token *tokens,
                                    size_t n)
{
    return pho__add_pair(ts, phrase, tokens, n, 1);
}

static int pho__heldout(const pho_trainset *ts, size_t phrase, double holdout)
{
    return pho__unit(ts->phr_hash[phrase] ^ PHO__SPLIT_KEY) < holdout;
}

/* ---- running work on threads ---- */

typedef void (*pho__work_fn)(void *arg, unsigned t, unsigned n_threads);

typedef struct pho__task {
    pho__work_fn fn;
    void *arg;
    unsigned t, n;
} pho__task;

static void *pho__task_main(void *p)
{
    pho__task *k = p;
    k->fn(k->arg, k->t, k->n);
    return NULL;
}

/* Runs fn for slices 0..n-1, slice 0 here and the rest on threads.  A
 * thread that cannot be started has its slice run here afterwards: the
 * result depends on the slicing, never on what ran where. */
static void pho__parallel(unsigned n, pho__work_fn fn, void *arg)
{
    pthread_t th[PHO__THREADS_MAX];
    pho__task tk[PHO__THREADS_MAX];
    int started[PHO__THREADS_MAX] = {0};

    for (unsigned t = 1; t < n; t++) {
        tk[t] = (pho__task){fn, arg, t, n};
        started[t] = pthread_create(&th[t], NULL, pho__task_main, &tk[t]) == 0;
    }
    fn(arg, 0, n);
    for (unsigned t = 1; t < n; t++) {
        if (started[t])
            pthread_join(th[t], NULL);
        else
            fn(arg, t, n);
    }
}

static void pho__slice(size_t n, unsigned t, unsigned T, size_t *lo, size_t *hi)
{
    *lo = n * t / T;
    *hi = n * (t + 1) / T;
}

/* ---- the batch loss ---- */

typedef struct pho__engine {
    const pho_model *m;
    unsigned threads;
    pho_model_cache *cache[PHO__THREADS_MAX];
    float *grad[PHO__THREADS_MAX];
    int own_grad;
    size_t cap, n;
    const pho_token **tok;
    size_t *len;
    float *y, *dy;
    double *acc; /* n x D gradient accumulator */
} pho__engine;

static void pho__engine_free(pho__engine *e)
{
    for (unsigned t = 0; t < PHO__THREADS_MAX; t++) {
        pho_model_cache_destroy(e->cache[t]);
        if (e->own_grad)
            free(e->grad[t]);
    }
    free(e->tok);
    free(e->len);
    free(e->y);
    free(e->dy);
    free(e->acc);
    memset(e, 0, sizeof *e);
}

/* grads NULL: the engine allocates one zeroed buffer per thread. */
static int pho__engine_init(pho__engine *e, const pho_model *m, unsigned threads, size_t cap,
                            float *grad0)
{
    size_t D = m->arch.out_dim;

    memset(e, 0, sizeof *e);
    e->m = m;
    e->threads = threads;
    e->cap = cap;
    e->own_grad = grad0 == NULL;
    e->tok = calloc(cap, sizeof *e->tok);
    e->len = calloc(cap, sizeof *e->len);
    e->y = calloc(cap * D, sizeof *e->y);
    e->dy = calloc(cap * D, sizeof *e->dy);
    e->acc = calloc(cap * D, sizeof *e->acc);
    if (!e->tok || !e->len || !e->y || !e->dy || !e->acc)
        goto fail;
    for (unsigned t = 0; t < threads; t++) {
        if (pho_model_cache_create(&m->arch, &e->cache[t]) < 0)
            goto fail;
        e->grad[t] = grad0 ? grad0 : calloc(m->n_params, sizeof *e->grad[t]);
        if (!e->grad[t])
            goto fail;
    }
    return ERD_OK;
fail:
    pho__engine_free(e);
    return ERD_ENOMEM;
}

static void pho__encode_work(void *arg, unsigned t, unsigned T)
{
    pho__engine *e = arg;
    size_t lo, hi, D = e->m->arch.out_dim;

    pho__slice(e->n, t, T, &lo, &hi);
    for (size_t i = lo; i < hi; i++)
        pho_model_encode(e->m, e->tok[i], e->len[i], e->y + i * D);
}

static void pho__backward_work(void *arg, unsigned t, unsigned T)
{
    pho__engine *e = arg;
    size_t lo, hi, D = e->m->arch.out_dim;
    float y[PHO_MODEL_OUT_MAX];

    pho__slice(e->n, t, T, &lo, &hi);
    for (size_t i = lo; i < hi; i++) {
        const float *dy = e->dy + i * D;
        int any = 0;
        for (size_t d = 0; d < D && !any; d++)
            any = dy[d] != 0.0f;
        if (!any)
            continue;
        pho_model_forward(e->m, e->tok[i], e->len[i], e->cache[t], y);
        pho_model_backward(e->m, e->cache[t], dy, e->grad[t]);
    }
}

static double pho__dot(const float *a, const float *b, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return s;
}

/* ---- the row losses ---- */

void pho_loss_opts_init(pho_loss_opts *o)
{
    memset(o, 0, sizeof *o);
    o->kind = PHO_LOSS_INFONCE;
    o->alpha = 1.0;
    o->beta = 1.0;
}

int pho_loss_kind_parse(const char *name, pho_loss_kind *ret)
{
    if (!strcmp(name, "infonce"))
        *ret = PHO_LOSS_INFONCE;
    else if (!strcmp(name, "apl"))
        *ret = PHO_LOSS_APL;
    else
        return ERD_EINVAL;
    return ERD_OK;
}

const char *pho_loss_kind_name(pho_loss_kind k)
{
    return k == PHO_LOSS_APL ? "apl" : "infonce";
}

/* Reverse cross-entropy takes log 0 as this (Ma et al. use -4). */
#define PHO__RCE_LOG0 (-4.0)

/* Cross-entropy against a target of 1 - eps on the positive and eps spread
 * evenly over the m - 1 others; writes dloss/dlogit over p. */
static double pho__ce(double *p, const double *logp, size_t n, size_t a, size_t m, double eps)
{
    double off = m > 1 ? eps / (double)(m - 1) : 0.0, on = m > 1 ? 1.0 - eps : 1.0, loss = 0.0;
    for (size_t j = 0; j < n; j++) {
        if (p[j] < 0.0)
            continue;
        double t = j == a ? on : off;
        loss -= t * logp[j];
        p[j] -= t;
    }
    return loss;
}

/* alpha * NCE + beta * RCE (the active-passive loss); writes dloss/dlogit
 * over p.  NCE = L_a / sum_k L_k with L_k = -log p_k, so
 * dNCE/dz_j = ((p_j - [j=a]) S - L_a (m p_j - 1)) / S^2;
 * RCE = -log0 (1 - p_a), so dRCE/dz_j = log0 p_a ([j=a] - p_j). */
static double pho__apl(double *p, const double *logp, size_t n, size_t a, size_t m,
                       const pho_loss_opts *lo)
{
    double S = 0.0, La = -logp[a], pa = p[a];
    for (size_t j = 0; j < n; j++)
        if (p[j] >= 0.0)
            S -= logp[j];
    if (!(S > 0.0))
        S = 1e-300;
    for (size_t j = 0; j < n; j++) {
        if (p[j] < 0.0)
            continue;
        double d = j == a ? 1.0 : 0.0;
        double dnce = ((p[j] - d) * S - La * ((double)m * p[j] - 1.0)) / (S * S);
        double drce = PHO__RCE_LOG0 * pa * (d - p[j]);
        p[j] = lo->alpha * dnce + lo->beta * drce;
    }
    return lo->alpha * La / S - lo->beta * PHO__RCE_LOG0 * (1.0 - pa);
}

/* One direction of the contrastive loss: row a of `from` against the `to`
 * vectors, the positive at index a; masked entries left out of the softmax.
 * Adds the gradients (times w) to the accumulators and returns the row's
 * loss.  p and logp are scratch of n_to each; p < 0 marks a masked entry. */
static double pho__nce_row(const float *from_a, const float *to, size_t n_to, size_t a,
                           const uint32_t *to_key, uint32_t key_a, double scale, size_t D,
                           double w, const pho_loss_opts *lo, double *acc_from_a, double *acc_to,
                           double *p, double *logp)
{
    double mx = -INFINITY, z = 0.0, loss;
    size_t m = 0;

    for (size_t j = 0; j < n_to; j++) {
        if (j != a && to_key[j] == key_a) {
            p[j] = -1.0;
            continue;
        }
        logp[j] = scale * pho__dot(from_a, to + j * D, D);
        if (logp[j] > mx)
            mx = logp[j];
        p[j] = 0.0;
        m++;
    }
    for (size_t j = 0; j < n_to; j++)
        if (p[j] >= 0.0)
            z += exp(logp[j] - mx);
    /* the same expressions as plain InfoNCE always used, so its models
     * reproduce bit for bit */
    double lz = log(z);
    for (size_t j = 0; j < n_to; j++) {
        if (p[j] < 0.0)
            continue;
        p[j] = exp(logp[j] - mx) / z;
        logp[j] = logp[j] - mx - lz;
    }
    if (lo && lo->kind == PHO_LOSS_APL)
        loss = pho__apl(p, logp, n_to, a, m, lo);
    else
        loss = pho__ce(p, logp, n_to, a, m, lo ? lo->smoothing : 0.0);
    for (size_t j = 0; j < n_to; j++) {
        if (!(p[j] != 0.0) || (j != a && to_key[j] == key_a))
            continue;
        double g = w * scale * p[j];
        for (size_t d = 0; d < D; d++) {
            acc_from_a[d] += g * to[j * D + d];
            acc_to[j * D + d] += g * from_a[d];
        }
    }
    return loss;
}

/* What one optimiser step's loss needs besides the vectors. */
typedef struct pho__step {
    size_t nq, nc;
    const uint32_t *q_key, *c_key;
    double scale;
    const pho_loss_opts *loss; /* NULL: InfoNCE */
    const float *q_weight;     /* NULL: all 1 */
    const pho_squash_opts *squash; /* NULL: off */
} pho__step;

double pho_squash_range(size_t D)
{
    return sqrt(3.0 / (double)D);
}

/* The n vectors of y fake-quantised into yq on the squash's range. */
static void pho__squash_quantise(const float *y, size_t n, size_t D, unsigned bits, float *yq)
{
    float r = (float)pho_squash_range(D);

    for (size_t i = 0; i < n * D; i++)
        yq[i] = pho_quant_fake(y[i], -r, r, bits);
}

/* Straight-through: the quantiser passes the gradient as if it were the
 * identity inside its range; outside it, where the clamp holds the code,
 * nothing. */
static void pho__squash_ste(const float *y, size_t n, size_t D, float *dy)
{
    float r = (float)pho_squash_range(D);

    for (size_t i = 0; i < n * D; i++)
        if (y[i] < -r || y[i] > r)
            dy[i] = 0.0f;
}

/* The regulariser on the batch's n vectors: reg / D * sum_d (m_d^2 / s2 +
 * (v_d / s2 - 1)^2), m_d and v_d the mean and variance of dimension d,
 * s2 = 1 / D the variance of the uniform target.  Adds its gradient to dy
 * and returns it. */
static double pho__squash_reg(const float *y, size_t n, size_t D, double reg, float *dy)
{
    double loss = 0.0, inv_s2 = (double)D;

    for (size_t d = 0; d < D; d++) {
        double mean = 0.0, var = 0.0;
        for (size_t i = 0; i < n; i++)
            mean += y[i * D + d];
        mean /= (double)n;
        for (size_t i = 0; i < n; i++) {
            double c = y[i * D + d] - mean;
            var += c * c;
        }
        var /= (double)n;
        double vr = var * inv_s2 - 1.0;
        loss += mean * mean * inv_s2 + vr * vr;
        /* d/dy_id: 2 m_d / (s2 n) + 2 vr / s2 * 2 (y_id - m_d) / n */
        double gm = reg / (double)D * 2.0 * mean * inv_s2 / (double)n;
        double gv = reg / (double)D * 4.0 * vr * inv_s2 / (double)n;
        for (size_t i = 0; i < n; i++)
            dy[i * D + d] += (float)(gm + gv * (y[i * D + d] - mean));
    }
    return reg / (double)D * loss;
}

/* Loss and per-vector gradients of a batch laid out in e as nq hypotheses
 * followed by nc candidates; fills e->dy. */
static int pho__batch_dy(pho__engine *e, const pho__step *st, double *ret_loss)
{
    size_t D = e->m->arch.out_dim, nq = st->nq, nc = st->nc;
    const pho_squash_opts *sq = st->squash;
    float *yq = NULL;
    const float *q = e->y, *c = e->y + nq * D;
    double *aq = e->acc, *ac = e->acc + nq * D, loss = 0.0, w = 0.5 / (double)nq;
    size_t most = nc > nq ? nc : nq;
    double *p = malloc(sizeof *p * 2 * most);

    if (!p)
        return ERD_ENOMEM;
    if (sq && sq->bits) {
        yq = malloc(sizeof *yq * (nq + nc) * D);
        if (!yq) {
            free(p);
            return ERD_ENOMEM;
        }
        pho__squash_quantise(e->y, nq + nc, D, sq->bits, yq);
        q = yq;
        c = yq + nq * D;
    }
    memset(e->acc, 0, sizeof *e->acc * (nq + nc) * D);
    for (size_t a = 0; a < nq; a++) {
        double wa = st->q_weight ? w * st->q_weight[a] : w;
        loss += wa / w * pho__nce_row(q + a * D, c, nc, a, st->c_key, st->q_key[a], st->scale,
                                      D, wa, st->loss, aq + a * D, ac, p, p + most);
        /* candidate a's own key is its hypothesis's: masking by q_key */
        loss += wa / w * pho__nce_row(c + a * D, q, nq, a, st->q_key, st->q_key[a], st->scale,
                                      D, wa, st->loss, ac + a * D, aq, p, p + most);
    }
    for (size_t i = 0; i < (nq + nc) * D; i++)
        e->dy[i] = (float)e->acc[i];
    loss *= w;
    if (sq && sq->bits)
        pho__squash_ste(e->y, nq + nc, D, e->dy);
    if (sq && sq->reg > 0.0)
        loss += pho__squash_reg(e->y, nq + nc, D, sq->reg, e->dy);
    free(p);
    free(yq);
    *ret_loss = loss;
    return ERD_OK;
}

static int pho__engine_step(pho__engine *e, const pho__step *st, double *ret_loss)
{
    int rc;

    e->n = st->nq + st->nc;
    pho__parallel(e->threads, pho__encode_work, e);
    rc = pho__batch_dy(e, st, ret_loss);
    if (rc < 0)
        return rc;
    pho__parallel(e->threads, pho__backward_work, e);
    return ERD_OK;
}

int pho_batch_loss(const pho_model *m, const pho_batch *b, double scale, float *grad,
                   double *ret_loss)
{
    pho__engine e;
    double loss;
    int rc;

    if (!m || !b || !grad || !ret_loss || b->nq == 0 || b->nc < b->nq)
        return ERD_EINVAL;
    for (size_t i = 0; i < b->nq; i++)
        if ((rc = pho__valid_tokens(b->q_tokens[i], b->q_len[i])) < 0)
            return rc;
    for (size_t i = 0; i < b->nc; i++)
        if ((rc = pho__valid_tokens(b->c_tokens[i], b->c_len[i])) < 0)
            return rc;
    rc = pho__engine_init(&e, m, 1, b->nq + b->nc, grad);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < b->nq; i++) {
        e.tok[i] = b->q_tokens[i];
        e.len[i] = b->q_len[i];
    }
    for (size_t i = 0; i < b->nc; i++) {
        e.tok[b->nq + i] = b->c_tokens[i];
        e.len[b->nq + i] = b->c_len[i];
    }
    pho__step st = {b->nq, b->nc, b->q_key, b->c_key, scale, b->loss, b->q_weight, b->squash};
    rc = pho__engine_step(&e, &st, &loss);
    pho__engine_free(&e);
    if (rc == ERD_OK)
        *ret_loss = loss;
    return rc;
}

/* ---- held-out evaluation ---- */

typedef int (*pho__enc_fn)(void *user, const pho_trainset *ts, uint32_t seq, const char *text,
                           float *out);

typedef struct pho__eval {
    const pho_trainset *ts;
    pho__enc_fn enc;
    void *user;
    size_t D;
    const uint32_t *seqs;
    const char *const *texts; /* NULL: no text */
    size_t n;
    float *out;
    /* ranking */
    const float *cat, *qv;
    size_t n_cat, n_q;
    const uint32_t *q_gold;
    size_t *hits1, *hits5; /* per thread */
    int rc[PHO__THREADS_MAX];
} pho__eval;

static void pho__eval_encode_work(void *arg, unsigned t, unsigned T)
{
    pho__eval *v = arg;
    size_t lo, hi;

    pho__slice(v->n, t, T, &lo, &hi);
    for (size_t i = lo; i < hi && v->rc[t] == ERD_OK; i++)
        v->rc[t] = v->enc(v->user, v->ts, v->seqs[i], v->texts ? v->texts[i] : "",
                          v->out + i * v->D);
}

static void pho__eval_rank_work(void *arg, unsigned t, unsigned T)
{
    pho__eval *v = arg;
    size_t lo, hi;

    pho__slice(v->n_q, t, T, &lo, &hi);
    for (size_t i = lo; i < hi; i++) {
        const float *q = v->qv + i * v->D;
        double gold = pho__dot(q, v->cat + (size_t)v->q_gold[i] * v->D, v->D);
        size_t above = 0;
        for (size_t j = 0; j < v->n_cat && above < 5; j++)
            if (j != v->q_gold[i] && pho__dot(q, v->cat + j * v->D, v->D) > gold)
                above++;
        v->hits1[t] += above == 0;
        v->hits5[t] += above < 5;
    }
}

static int pho__encode_all(pho__eval *v, unsigned threads, const uint32_t *seqs,
                           const char *const *texts, size_t n, float *out)
{
    v->seqs = seqs;
    v->texts = texts;
    v->n = n;
    v->out = out;
    memset(v->rc, 0, sizeof v->rc);
    pho__parallel(threads, pho__eval_encode_work, v);
    for (unsigned t = 0; t < threads; t++)
        if (v->rc[t] < 0)
            return v->rc[t];
    return ERD_OK;
}

/* Recall of the held-out hypotheses against every phrase. */
static int pho__evaluate(const pho_trainset *ts, double holdout, pho__enc_fn enc, void *user,
                         size_t D, unsigned threads, double *r1, double *r5)
{
    uint32_t *pseq = malloc(sizeof *pseq * (ts->n_phr ? ts->n_phr : 1));
    uint32_t *qseq = malloc(sizeof *qseq * (ts->n_pairs ? ts->n_pairs : 1));
    uint32_t *qgold = malloc(sizeof *qgold * (ts->n_pairs ? ts->n_pairs : 1));
    float *cat = malloc(sizeof *cat * D * (ts->n_phr ? ts->n_phr : 1));
    float *qv = NULL;
    size_t nq = 0, h1 = 0, h5 = 0, hits1[PHO__THREADS_MAX] = {0}, hits5[PHO__THREADS_MAX] = {0};
    pho__eval v = {.ts = ts, .enc = enc, .user = user, .D = D};
    int rc;

    if (!pseq || !qseq || !qgold || !cat) {
        rc = ERD_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < ts->n_phr; i++)
        pseq[i] = ts->phr_seq[i];
    for (size_t i = 0; i < ts->n_pairs; i++)
        if (!ts->pair_synthetic[i] && pho__heldout(ts, ts->pair_phr[i], holdout)) {
            qseq[nq] = ts->pair_seq[i];
            qgold[nq++] = ts->pair_phr[i];
        }
    qv = malloc(sizeof *qv * D * (nq ? nq : 1));
    if (!qv) {
        rc = ERD_ENOMEM;
        goto out;
    }
    rc = pho__encode_all(&v, threads, pseq, (const char *const *)ts->phr_text, ts->n_phr, cat);
    if (rc == ERD_OK)
        rc = pho__encode_all(&v, threads, qseq, NULL, nq, qv);
    if (rc < 0)
        goto out;
    v.cat = cat;
    v.qv = qv;
    v.n_cat = ts->n_phr;
    v.n_q = nq;
    v.q_gold = qgold;
    v.hits1 = hits1;
    v.hits5 = hits5;
    pho__parallel(threads, pho__eval_rank_work, &v);
    for (unsigned t = 0; t < threads; t++) {
        h1 += hits1[t];
        h5 += hits5[t];
    }
    *r1 = nq ? (double)h1 / (double)nq : 0.0;
    *r5 = nq ? (double)h5 / (double)nq : 0.0;
out:
    free(pseq);
    free(qseq);
    free(qgold);
    free(cat);
    free(qv);
    return rc;
}

static int pho__enc_model(void *user, const pho_trainset *ts, uint32_t seq, const char *text,
                          float *out)
{
    (void)text;
    return pho_model_encode(user, ts->tok + ts->seq_off[seq], ts->seq_len[seq], out);
}

static int pho__enc_encoder(void *user, const pho_trainset *ts, uint32_t seq, const char *text,
                            float *out)
{
    pho_phrase p = {text, ts->tok + ts->seq_off[seq], ts->seq_len[seq]};
    return pho_encoder_encode(user, &p, out);
}

int pho_train_eval_encoder(const pho_trainset *ts, double holdout, pho_encoder *enc,
                           double *ret_recall1, double *ret_recall5, erd_diag *diag)
{
    pho_phrase *phr = malloc(sizeof *phr * (ts->n_phr ? ts->n_phr : 1));
    double r1, r5;
    int rc;

    if (!phr)
        return erd_fail(diag, ERD_ENOMEM, "out of memory evaluating");
    for (size_t i = 0; i < ts->n_phr; i++)
        phr[i] = (pho_phrase){ts->phr_text[i], ts->tok + ts->seq_off[ts->phr_seq[i]],
                              ts->seq_len[ts->phr_seq[i]]};
    rc = pho_encoder_fit(enc, phr, ts->n_phr, diag);
    free(phr);
    if (rc < 0)
        return rc;
    /* encoders are thread-safe once fitted, but one thread keeps this simple */
    rc = pho__evaluate(ts, holdout, pho__enc_encoder, enc, pho_encoder_dim(enc), 1, &r1, &r5);
    if (rc < 0)
        return erd_fail(diag, rc, "evaluating encoder %s failed", pho_encoder_id(enc));
    *ret_recall1 = r1;
    *ret_recall5 = r5;
    return ERD_OK;
}

/* ---- hard negatives ---- */

typedef struct pho__mine {
    const float *v; /* n x D, train phrases */
    size_t n, D, k;
    uint32_t *nn; /* n x k, local indices */
} pho__mine;

static void pho__mine_work(void *arg, unsigned t, unsigned T)
{
    pho__mine *mi = arg;
    size_t lo, hi, k = mi->k;
    double best[PHO__HARD_K_MAX];

    pho__slice(mi->n, t, T, &lo, &hi);
    for (size_t i = lo; i < hi; i++) {
        uint32_t *nn = mi->nn + i * k;
        size_t have = 0;
        for (size_t j = 0; j < mi->n; j++) {
            if (j == i)
                continue;
            double s = pho__dot(mi->v + i * mi->D, mi->v + j * mi->D, mi->D);
            if (have == k && s <= best[k - 1])
                continue;
            size_t r = have < k ? have++ : k - 1;
            while (r > 0 && best[r - 1] < s) {
                best[r] = best[r - 1];
                nn[r] = nn[r - 1];
                r--;
            }
            best[r] = s;
            nn[r] = (uint32_t)j;
        }
        for (size_t r = have; r < k; r++)
            nn[r] = nn[have ? (r % have) : 0]; /* only when fewer phrases than k */
    }
}

/* ---- training ---- */

void pho_train_opts_init(pho_train_opts *o)
{
    memset(o, 0, sizeof *o);
    /* the shipped model's shape: on the held-out simulated pairs it beat the
     * convolution (phonetics/models/README.md) at a fortieth of its cost */
    o->arch = (pho_model_arch){PHO_ARCH_BAG, 128, 14, 0, 128, PHO_OUT_PLAIN};
    o->seed = 1;
    o->epochs = 10;
    o->batch = 128;
    o->threads = 2;
    o->holdout = 0.05;
    o->lr = 0.005;
    o->scale = 20.0;
    o->hard_k = 10;
    o->augment = 0.15;
    pho_loss_opts_init(&o->loss);
}

/* ---- noise-aware pair weights ---- */

/* Phone unigrams and bigrams of t as sorted keys, so the Dice coefficient
 * of two sequences is a merge. */
static size_t pho__grams(const pho_token *t, size_t n, uint32_t *out)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        out[m++] = t[i].phone;
        if (i + 1 < n)
            out[m++] = 0x10000u | (uint32_t)t[i].phone << 8 | t[i + 1].phone;
    }
    for (size_t i = 1; i < m; i++) {
        uint32_t v = out[i];
        size_t j = i;
        for (; j > 0 && out[j - 1] > v; j--)
            out[j] = out[j - 1];
        out[j] = v;
    }
    return m;
}

double pho_pair_overlap(const pho_token *a, size_t na, const pho_token *b, size_t nb)
{
    uint32_t ga[2 * PHO_TOKENS_MAX], gb[2 * PHO_TOKENS_MAX];
    if (na > PHO_TOKENS_MAX)
        na = PHO_TOKENS_MAX;
    if (nb > PHO_TOKENS_MAX)
        nb = PHO_TOKENS_MAX;
    size_t ma = pho__grams(a, na, ga), mb = pho__grams(b, nb, gb), i = 0, j = 0, common = 0;
    if (ma + mb == 0)
        return 0.0;
    while (i < ma && j < mb) {
        if (ga[i] == gb[j]) {
            common++;
            i++;
            j++;
        } else if (ga[i] < gb[j]) {
            i++;
        } else {
            j++;
        }
    }
    return 2.0 * (double)common / (double)(ma + mb);
}

double pho_pair_weight(double overlap, double knee)
{
    double w = overlap / knee;
    return w > 1.0 ? 1.0 : w < PHO_PAIR_WEIGHT_MIN ? PHO_PAIR_WEIGHT_MIN : w;
}

/* Every pair's weight, or NULL in *ret when weighting is off. */
static int pho__pair_weights(const pho_trainset *ts, double knee, float **ret)
{
    float *w;
    *ret = NULL;
    if (!(knee > 0.0))
        return ERD_OK;
    if (!(w = malloc(sizeof *w * (ts->n_pairs + 1))))
        return ERD_ENOMEM;
    for (size_t i = 0; i < ts->n_pairs; i++) {
        uint32_t qs = ts->pair_seq[i], ps = ts->phr_seq[ts->pair_phr[i]];
        double ov = pho_pair_overlap(ts->tok + ts->seq_off[qs], ts->seq_len[qs],
                                     ts->tok + ts->seq_off[ps], ts->seq_len[ps]);
        w[i] = (float)pho_pair_weight(ov, knee);
    }
    *ret = w;
    return ERD_OK;
}

/* A noisier copy of a hypothesis: each phone is replaced by a random one or
 * dropped at rate `rate` (never all of them), as a recogniser's further
 * mistakes would.  The draws are a function of key alone. */
static size_t pho__augment(const pho_token *t, size_t n, double rate, uint64_t key, pho_token *out)
{
    size_t m = 0;

    for (size_t i = 0; i < n; i++) {
        double u = pho__unit(key ^ pho_mix64(i + 1));
        if (u < rate * 0.5 && (m > 0 || i + 1 < n))
            continue;
        out[m] = t[i];
        if (u < rate)
            out[m].phone = (uint8_t)(1 + pho_mix64(key + 7 * i) % (PHO_N_PHONES - 1));
        m++;
    }
    if (m == 0) {
        out[0] = t[0];
        m = 1;
    }
    return m;
}

typedef struct pho__adam {
    float *p, *m, *v, **grad;
    unsigned n_grad;
    size_t n;
    double lr, b1t, b2t; /* step size, 1 - beta^t */
} pho__adam;

#define PHO__B1 0.9
#define PHO__B2 0.999

static void pho__adam_work(void *arg, unsigned t, unsigned T)
{
    pho__adam *a = arg;
    size_t lo, hi;
    const float b1 = (float)PHO__B1, b2 = (float)PHO__B2;
    const float c1 = (float)(a->lr / a->b1t), c2 = (float)(1.0 / a->b2t);

    pho__slice(a->n, t, T, &lo, &hi);
    for (size_t i = lo; i < hi; i++) {
        float g = 0.0f;
        for (unsigned s = 0; s < a->n_grad; s++) {
            g += a->grad[s][i];
            a->grad[s][i] = 0.0f;
        }
        a->m[i] = b1 * a->m[i] + (1.0f - b1) * g;
        a->v[i] = b2 * a->v[i] + (1.0f - b2) * g * g;
        a->p[i] -= c1 * a->m[i] / (sqrtf(a->v[i] * c2) + 1e-8f);
    }
}

/* Everything one training run holds; the stages below fill and use it. */
typedef struct pho__run {
    const pho_trainset *ts;
    const pho_train_opts *o;
    pho_model *m, *best;
    pho__engine e;
    int have_engine;
    size_t n_tr_phr, n_tr, B, K, D, steps_per_epoch;
    uint32_t *local, *tr_phr, *tr_pairs, *order, *nn, *q_key, *c_key;
    float *adam_m, *adam_v, *phr_vec, *pair_w, *q_w;
    pho_token *aug;
    pho_train_result res;
    double t0, best_r1, best_r5;
    uint64_t step, total_steps;
} pho__run;

static void pho__run_free(pho__run *r)
{
    if (r->have_engine)
        pho__engine_free(&r->e);
    pho_model_destroy(r->m);
    pho_model_destroy(r->best);
    free(r->local);
    free(r->tr_phr);
    free(r->tr_pairs);
    free(r->order);
    free(r->nn);
    free(r->q_key);
    free(r->c_key);
    free(r->adam_m);
    free(r->adam_v);
    free(r->phr_vec);
    free(r->aug);
    free(r->pair_w);
    free(r->q_w);
}

static int pho__squash_on(const pho_train_opts *o)
{
    return o->squash.bits != 0 || o->squash.reg > 0.0;
}

static int pho__opts_check(const pho_train_opts *o, erd_diag *diag)
{
    if (o->threads < 1 || o->threads > PHO__THREADS_MAX || o->batch < 2 || o->epochs < 1 ||
        !(o->holdout >= 0.0 && o->holdout <= 0.5) || !(o->lr > 0.0) || !(o->scale > 0.0) ||
        o->hard_k > PHO__HARD_K_MAX || !(o->augment >= 0.0 && o->augment < 1.0) ||
        !(o->loss.smoothing >= 0.0 && o->loss.smoothing <= 0.5) || !(o->loss.alpha >= 0.0) ||
        !(o->loss.beta >= 0.0) || !(o->loss.alpha + o->loss.beta > 0.0) ||
        !(o->pair_knee >= 0.0 && o->pair_knee <= 1.0) ||
        (o->squash.bits && !pho_quant_bits_valid(o->squash.bits)) || !(o->squash.reg >= 0.0))
        return erd_fail(diag, ERD_EINVAL,
                        "training options out of range (threads 1..%d, batch >= 2, epochs >= 1, "
                        "holdout 0..0.5, hard negatives 0..%d, augment 0..1, smoothing 0..0.5, "
                        "APL weights >= 0 and not both 0, pair knee 0..1, squash bits 0, 2, 4 "
                        "or 8, squash regulariser >= 0)",
                        PHO__THREADS_MAX, PHO__HARD_K_MAX);
    return ERD_OK;
}

/* The held-out slice out, the rest numbered: phrases by local index,
 * trainable pairs in tr_pairs. */
static int pho__run_split(pho__run *r, erd_diag *diag)
{
    const pho_trainset *ts = r->ts;
    r->local = malloc(sizeof *r->local * (ts->n_phr + 1));
    r->tr_phr = malloc(sizeof *r->tr_phr * (ts->n_phr + 1));
    r->tr_pairs = malloc(sizeof *r->tr_pairs * (ts->n_pairs + 1));
    r->order = malloc(sizeof *r->order * (ts->n_pairs + 1));
    if (!r->local || !r->tr_phr || !r->tr_pairs || !r->order)
        return erd_fail(diag, ERD_ENOMEM, "out of memory for training data");
    for (size_t i = 0; i < ts->n_phr; i++) {
        if (pho__heldout(ts, i, r->o->holdout)) {
            r->local[i] = UINT32_MAX;
            r->res.heldout_phrases++;
        } else {
            r->local[i] = (uint32_t)r->n_tr_phr;
            r->tr_phr[r->n_tr_phr++] = (uint32_t)i;
        }
    }
    for (size_t i = 0; i < ts->n_pairs; i++) {
        if (r->local[ts->pair_phr[i]] != UINT32_MAX)
            r->tr_pairs[r->n_tr++] = (uint32_t)i;
        else if (!ts->pair_synthetic[i])
            r->res.heldout_pairs++;
        /* a synthetic pair of a held-out phrase would teach the answer */
    }
    r->res.train_pairs = r->n_tr;
    r->res.train_phrases = r->n_tr_phr;
    if (r->n_tr < 2 || r->n_tr_phr < 2)
        return erd_fail(diag, ERD_EEMPTY, "too little training data: %zu pairs over %zu phrases "
                        "outside the held-out slice", r->n_tr, r->n_tr_phr);
    return ERD_OK;
}

/* Batch, optimiser and mining buffers, and the best model so far. */
static int pho__run_buffers(pho__run *r, erd_diag *diag)
{
    const pho_train_opts *o = r->o;
    int rc;
    r->B = o->batch < r->n_tr ? o->batch : r->n_tr;
    r->K = o->hard_k < r->n_tr_phr - 1 ? o->hard_k : r->n_tr_phr - 1;
    r->steps_per_epoch = r->n_tr / r->B;
    r->total_steps = (uint64_t)r->steps_per_epoch * o->epochs;
    if ((rc = pho__pair_weights(r->ts, o->pair_knee, &r->pair_w)) < 0 ||
        (r->pair_w && !(r->q_w = malloc(sizeof *r->q_w * r->B))))
        return erd_fail(diag, ERD_ENOMEM, "out of memory for pair weights");
    r->q_key = malloc(sizeof *r->q_key * r->B);
    r->c_key = malloc(sizeof *r->c_key * 2 * r->B);
    r->adam_m = calloc(r->m->n_params, sizeof *r->adam_m);
    r->adam_v = calloc(r->m->n_params, sizeof *r->adam_v);
    r->nn = r->K ? malloc(sizeof *r->nn * r->n_tr_phr * r->K) : NULL;
    r->aug = o->augment > 0.0 ? malloc(sizeof *r->aug * r->B * PHO_TOKENS_MAX) : NULL;
    r->phr_vec = r->K ? malloc(sizeof *r->phr_vec * r->n_tr_phr * r->D) : NULL;
    if (!r->q_key || !r->c_key || !r->adam_m || !r->adam_v || (r->K && (!r->nn || !r->phr_vec)) ||
        (o->augment > 0.0 && !r->aug))
        return erd_fail(diag, ERD_ENOMEM, "out of memory for the optimiser");
    rc = pho__engine_init(&r->e, r->m, o->threads,
                          3 * r->B > r->n_tr_phr ? 3 * r->B : r->n_tr_phr, NULL);
    if (rc < 0)
        return erd_fail(diag, rc, "out of memory for training buffers");
    r->have_engine = 1;
    if ((rc = pho_model_clone(r->m, &r->best)) < 0)
        return erd_fail(diag, rc, "out of memory for the best model");
    return ERD_OK;
}

static int pho__run_setup(pho__run *r, erd_diag *diag)
{
    int rc;
    if (r->o->init) {
        if ((rc = pho_model_clone(r->o->init, &r->m)) < 0)
            return erd_fail(diag, rc, "out of memory for the initial model");
    } else if ((rc = pho_model_create(&r->o->arch, r->o->seed, &r->m, diag)) < 0) {
        return rc;
    }
    /* the squash adds no weights: a plain model can be fine-tuned into one */
    if (pho__squash_on(r->o))
        r->m->arch.output = PHO_OUT_SQUASH;
    r->D = r->m->arch.out_dim;
    if ((rc = pho__run_split(r, diag)) < 0 || (rc = pho__run_buffers(r, diag)) < 0)
        return rc;
    if (r->o->init) {
        /* the start is scored as epoch 0, so fine-tuning never ends worse
         * on the held-out slice than where it began */
        rc = pho__evaluate(r->ts, r->o->holdout, pho__enc_model, r->m, r->D, r->o->threads,
                           &r->best_r1, &r->best_r5);
        if (rc < 0)
            return erd_fail(diag, rc, "held-out evaluation failed");
        if (r->o->progress) {
            pho_train_progress pg = {0, r->o->epochs, 0.0, r->best_r1, r->best_r5,
                                     erd_now_s() - r->t0, 1};
            r->o->progress(r->o->progress_user, &pg);
        }
    }
    return ERD_OK;
}

/* shuffle: Fisher-Yates from the identity, so the order depends on (seed,
 * epoch) alone */
static void pho__run_shuffle(pho__run *r, uint64_t es)
{
    for (size_t i = 0; i < r->n_tr; i++)
        r->order[i] = r->tr_pairs[i];
    for (size_t i = r->n_tr - 1; i > 0; i--) {
        size_t j = (size_t)(pho_mix64(es + i) % (i + 1));
        uint32_t tmp = r->order[i];
        r->order[i] = r->order[j];
        r->order[j] = tmp;
    }
}

/* Each training phrase's K nearest under the current weights. */
static void pho__run_mine(pho__run *r)
{
    const pho_trainset *ts = r->ts;
    pho__mine mi = {r->phr_vec, r->n_tr_phr, r->D, r->K, r->nn};
    for (size_t i = 0; i < r->n_tr_phr; i++) {
        uint32_t s = ts->phr_seq[r->tr_phr[i]];
        r->e.tok[i] = ts->tok + ts->seq_off[s];
        r->e.len[i] = ts->seq_len[s];
    }
    r->e.n = r->n_tr_phr;
    pho__parallel(r->o->threads, pho__encode_work, &r->e);
    memcpy(r->phr_vec, r->e.y, sizeof *r->phr_vec * r->n_tr_phr * r->D);
    pho__parallel(r->o->threads, pho__mine_work, &mi);
}

/* Lays batch s of the epoch out in the engine: hypotheses (augmented),
 * their phrases, then one hard negative each; returns the candidates. */
static size_t pho__run_batch(pho__run *r, size_t s, uint64_t es)
{
    const pho_trainset *ts = r->ts;
    const uint32_t *bp = r->order + s * r->B;
    size_t B = r->B;
    for (size_t i = 0; i < B; i++) {
        uint32_t pr = ts->pair_phr[bp[i]], qs = ts->pair_seq[bp[i]];
        uint32_t ps = ts->phr_seq[pr];
        r->e.tok[i] = ts->tok + ts->seq_off[qs];
        r->e.len[i] = ts->seq_len[qs];
        r->e.tok[B + i] = ts->tok + ts->seq_off[ps];
        r->e.len[B + i] = ts->seq_len[ps];
        r->q_key[i] = pr;
        r->c_key[i] = pr;
        if (r->aug) {
            pho_token *a = r->aug + i * PHO_TOKENS_MAX;
            r->e.len[i] = pho__augment(r->e.tok[i], r->e.len[i], r->o->augment,
                                       pho_mix64(es ^ (0xa5a5ULL + s * B + i)), a);
            r->e.tok[i] = a;
        }
        if (r->pair_w)
            r->q_w[i] = r->pair_w[bp[i]];
    }
    if (!r->K)
        return B;
    for (size_t i = 0; i < B; i++) {
        uint32_t pr = ts->pair_phr[bp[i]];
        uint64_t x = pho_mix64(es ^ pho_mix64(s * B + i + 1));
        uint32_t neg = r->tr_phr[r->nn[(size_t)r->local[pr] * r->K + x % r->K]];
        uint32_t ns = ts->phr_seq[neg];
        r->e.tok[2 * B + i] = ts->tok + ts->seq_off[ns];
        r->e.len[2 * B + i] = ts->seq_len[ns];
        r->c_key[B + i] = neg;
    }
    return 2 * B;
}

/* One optimiser step on batch s; adds its loss to *loss_sum. */
static int pho__run_step(pho__run *r, size_t s, uint64_t es, double *loss_sum, erd_diag *diag)
{
    const pho_train_opts *o = r->o;
    double loss;
    size_t nc = pho__run_batch(r, s, es);
    pho__step st = {r->B, nc, r->q_key, r->c_key, o->scale, &o->loss, r->pair_w ? r->q_w : NULL,
                    pho__squash_on(o) ? &o->squash : NULL};
    int rc = pho__engine_step(&r->e, &st, &loss);
    if (rc < 0)
        return erd_fail(diag, rc, "training step failed");
    *loss_sum += loss;
    double frac = r->total_steps ? (double)r->step / (double)r->total_steps : 0.0;
    double lr = o->lr * (0.05 + 0.95 * 0.5 * (1.0 + cos(3.141592653589793 * frac)));
    pho__adam ad = {r->m->params, r->adam_m, r->adam_v, r->e.grad, o->threads, r->m->n_params, lr,
                    1.0 - pow(PHO__B1, (double)(r->step + 1)),
                    1.0 - pow(PHO__B2, (double)(r->step + 1))};
    pho__parallel(o->threads, pho__adam_work, &ad);
    r->step++;
    return ERD_OK;
}

/* One epoch: shuffle, mine, steps, held-out score; keeps the best weights.
 * *ret_better tells whether this epoch was the best so far. */
static int pho__run_epoch(pho__run *r, unsigned ep, int *ret_better, erd_diag *diag)
{
    const pho_train_opts *o = r->o;
    double loss_sum = 0.0, r1, r5;
    uint64_t es = pho_mix64(o->seed ^ (0x9e3779b97f4a7c15ULL * (ep + 1)));
    int rc;
    pho__run_shuffle(r, es);
    if (r->K)
        pho__run_mine(r);
    for (size_t s = 0; s < r->steps_per_epoch; s++)
        if ((rc = pho__run_step(r, s, es, &loss_sum, diag)) < 0)
            return rc;
    rc = pho__evaluate(r->ts, o->holdout, pho__enc_model, r->m, r->D, o->threads, &r1, &r5);
    if (rc < 0)
        return erd_fail(diag, rc, "held-out evaluation failed");
    pho_train_progress pg = {ep + 1, o->epochs,
                             r->steps_per_epoch ? loss_sum / (double)r->steps_per_epoch : 0.0, r1,
                             r5, erd_now_s() - r->t0, 0};
    *ret_better = r1 > r->best_r1 || (r1 == r->best_r1 && r5 > r->best_r5);
    if (*ret_better) {
        r->best_r1 = r1;
        r->best_r5 = r5;
        r->res.best_epoch = ep + 1;
        memcpy(r->best->params, r->m->params, sizeof *r->m->params * r->m->n_params);
        pg.best = 1;
    }
    r->res.epochs_run = ep + 1;
    if (o->progress)
        o->progress(o->progress_user, &pg);
    return ERD_OK;
}

int pho_train(const pho_trainset *ts, const pho_train_opts *o, pho_model **ret_model,
              pho_train_result *ret, erd_diag *diag)
{
    pho__run r;
    int rc;
    if (!ts || !o || !ret_model)
        return erd_fail(diag, ERD_EINVAL, "pho_train: NULL argument");
    if ((rc = pho__opts_check(o, diag)) < 0)
        return rc;
    memset(&r, 0, sizeof r);
    r.ts = ts;
    r.o = o;
    r.t0 = erd_now_s();
    r.best_r1 = r.best_r5 = -1.0;
    if ((rc = pho__run_setup(&r, diag)) < 0)
        goto out;
    for (unsigned ep = 0, stale = 0; ep < o->epochs && !(o->patience && stale >= o->patience);
         ep++) {
        int better = 0;
        if ((rc = pho__run_epoch(&r, ep, &better, diag)) < 0)
            goto out;
        stale = better ? 0 : stale + 1;
    }
    r.res.recall1 = r.best_r1;
    r.res.recall5 = r.best_r5;
    r.res.seconds = erd_now_s() - r.t0;
    *ret_model = r.best;
    r.best = NULL;
    if (ret)
        *ret = r.res;
    rc = ERD_OK;
out:
    pho__run_free(&r);
    return rc;
}
