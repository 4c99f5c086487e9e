#include "index/vix_calib.h"
#include "proto/erd_file.h"
#include "proto/erd_hash.h"

#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define VIX__CALIB_MAGIC "erd-calibration"
#define VIX__CALIB_FILE_MAX 65536
#define VIX__NW (VIX_CALIB_NFEAT + 1)
/* a line of weights: %.17g numbers, a unit's bias and output weight too */
#define VIX__LINE_MAX 4096

static const char *const vix__feature_names[VIX_CALIB_NFEAT] = {
    [VIX_CF_SCORE] = "score",         [VIX_CF_MARGIN] = "margin",
    [VIX_CF_GAP] = "gap",             [VIX_CF_FIRST] = "first",
    [VIX_CF_AGREE] = "agree",         [VIX_CF_LOG_HYPS] = "log_hyps",
    [VIX_CF_LOG_PHONES] = "log_phones", [VIX_CF_LOG_RANK] = "log_rank",
    [VIX_CF_FIT] = "fit",             [VIX_CF_BEST_FIT] = "best_fit",
    [VIX_CF_COVER] = "cover",         [VIX_CF_REF_COVER] = "ref_cover",
    [VIX_CF_WORD_MISS] = "word_miss", [VIX_CF_REF_WORD_MISS] = "ref_word_miss",
    [VIX_CF_SCORE_SQ] = "score_sq",   [VIX_CF_FIT_SQ] = "fit_sq",
    [VIX_CF_COVER_BOTH] = "cover_both", [VIX_CF_LEN_RATIO] = "len_ratio",
    [VIX_CF_GAP_RUN] = "gap_run",     [VIX_CF_ONE_HYP] = "one_hyp",
    [VIX_CF_ONE_FIT] = "one_fit",     [VIX_CF_ONE_COVER] = "one_cover",
    [VIX_CF_ONE_GAP_RUN] = "one_gap_run", [VIX_CF_WORD_HIT_MIN] = "word_hit_min",
    [VIX_CF_HYP_WORD_HIT_MIN] = "hyp_word_hit_min", [VIX_CF_WORST_SPAN] = "worst_span",
    [VIX_CF_STEADY_MISS] = "steady_miss", [VIX_CF_DISTINCT_HIT] = "distinct_hit",
    [VIX_CF_SPREAD] = "spread",
    [VIX_CF_ASR_GAP] = "asr_gap",
    [VIX_CF_SHORT_FORM] = "short_form", [VIX_CF_WHOLE_SHARE] = "whole_share",
    [VIX_CF_COMMAND] = "command",
};

/* Like VIX_CALIB_FIT_MAX for one run of steps: past a few words' worth it
 * says no more. */
#define VIX__SPAN_MAX 30.0

const char *vix_calib_feature_name(int f)
{
    return f >= 0 && f < VIX_CALIB_NFEAT ? vix__feature_names[f] : "?";
}

static double vix__share(size_t part, size_t whole)
{
    return whole ? (double)part / (double)whole : 0;
}

void vix_calib_fit_add(vix_calib_fitness *acc, double w, const vix_calib_counts *c)
{
    double per_phone = c->n_hyp ? (c->extra > 0 ? c->extra : 0) / (double)c->n_hyp : VIX_CALIB_FIT_MAX;
    per_phone = per_phone < VIX_CALIB_FIT_MAX ? per_phone : VIX_CALIB_FIT_MAX;
    if (acc->n_added++ == 0 || per_phone < acc->best_fit)
        acc->best_fit = per_phone;
    acc->fit += w * per_phone;
    acc->cover += w * vix__share(c->matched, c->n_hyp);
    acc->ref_cover += w * vix__share(c->heard, c->n_ref);
    acc->word_miss += w * vix__share(c->hyp_words_missed, c->hyp_words);
    acc->ref_word_miss += w * vix__share(c->ref_words_missed, c->ref_words);
    acc->len_ratio += w * log((1.0 + (double)c->n_hyp) / (1.0 + (double)c->n_ref));
    acc->gap_run += w * vix__share(c->gap_run, c->n_hyp);
    acc->word_hit_min += w * c->word_hit_min;
    acc->hyp_word_hit_min += w * c->hyp_word_hit_min;
    acc->distinct_hit += w * c->distinct_hit;
    acc->worst_span += w * (c->worst_span < VIX__SPAN_MAX ? c->worst_span : VIX__SPAN_MAX);
    acc->short_form += w * (c->derived != 0);
    acc->whole_share += w * c->whole_share;
    if (acc->n_added == 1) {
        acc->phrase = c->phrase;
        acc->n_words = c->n_words;
    }
    /* words are followed on one phrase: another alias has other words */
    if (c->phrase != acc->phrase || c->n_words != acc->n_words)
        return;
    acc->words_w += w;
    for (size_t i = 0; i < c->n_words; i++)
        acc->word_hit[i] += w * c->word_hit[i];
}

void vix_calib_fit_finish(vix_calib_fitness *acc, double wsum)
{
    if (!(wsum > 0) || acc->n_added == 0) {
        *acc = (vix_calib_fitness){.fit = VIX_CALIB_FIT_MAX, .best_fit = VIX_CALIB_FIT_MAX,
                                   .word_miss = 1, .ref_word_miss = 1, .gap_run = 1,
                                   .worst_span = VIX__SPAN_MAX, .steady_miss = 1,
                                   .whole_share = 1};
        return;
    }
    double least = 1;
    for (size_t i = 0; acc->words_w > 0 && i < acc->n_words; i++)
        least = fmin(least, acc->word_hit[i] / acc->words_w);
    acc->steady_miss = acc->words_w > 0 && acc->n_words ? 1 - least : 1;
    /* the weighted sums become weighted means */
    double *const sums[] = {&acc->word_hit_min, &acc->hyp_word_hit_min, &acc->distinct_hit,
                            &acc->worst_span,   &acc->fit,              &acc->cover,
                            &acc->ref_cover,    &acc->word_miss,        &acc->ref_word_miss,
                            &acc->len_ratio,    &acc->gap_run,          &acc->short_form,
                            &acc->whole_share};
    for (size_t i = 0; i < sizeof sums / sizeof *sums; i++)
        *sums[i] /= wsum;
}

void vix_calib_features(const double *score, const double *first, const double *agree,
                        const vix_calib_fitness *fit, size_t n, size_t n_all,
                        const vix_calib_query *q, double *ret_x)
{
    size_t n_hyps = q->n_hyps;
    for (size_t i = 0; i < n; i++) {
        double *x = ret_x + i * VIX_CALIB_NFEAT;
        x[VIX_CF_SCORE] = score[i];
        x[VIX_CF_MARGIN] = i + 1 < n_all ? score[i] - score[i + 1] : score[i];
        x[VIX_CF_GAP] = score[0] - score[i];
        x[VIX_CF_FIRST] = first[i];
        x[VIX_CF_AGREE] = agree[i];
        x[VIX_CF_LOG_HYPS] = log1p((double)n_hyps);
        x[VIX_CF_LOG_PHONES] = log1p((double)q->n_phones);
        x[VIX_CF_LOG_RANK] = log((double)(i + 1));
        x[VIX_CF_FIT] = fit ? fit[i].fit : VIX_CALIB_FIT_MAX;
        x[VIX_CF_BEST_FIT] = fit ? fit[i].best_fit : VIX_CALIB_FIT_MAX;
        x[VIX_CF_COVER] = fit ? fit[i].cover : 0;
        x[VIX_CF_REF_COVER] = fit ? fit[i].ref_cover : 0;
        x[VIX_CF_WORD_MISS] = fit ? fit[i].word_miss : 1;
        x[VIX_CF_REF_WORD_MISS] = fit ? fit[i].ref_word_miss : 1;
        x[VIX_CF_SCORE_SQ] = score[i] * score[i];
        x[VIX_CF_FIT_SQ] = x[VIX_CF_FIT] * x[VIX_CF_FIT];
        x[VIX_CF_COVER_BOTH] = x[VIX_CF_COVER] * x[VIX_CF_REF_COVER];
        x[VIX_CF_LEN_RATIO] = fit ? fit[i].len_ratio : 0;
        x[VIX_CF_GAP_RUN] = fit ? fit[i].gap_run : 1;
        double one = n_hyps == 1;
        x[VIX_CF_ONE_HYP] = one;
        x[VIX_CF_ONE_FIT] = one * x[VIX_CF_FIT];
        x[VIX_CF_ONE_COVER] = one * x[VIX_CF_COVER];
        x[VIX_CF_ONE_GAP_RUN] = one * x[VIX_CF_GAP_RUN];
        x[VIX_CF_WORD_HIT_MIN] = fit ? fit[i].word_hit_min : 0;
        x[VIX_CF_HYP_WORD_HIT_MIN] = fit ? fit[i].hyp_word_hit_min : 0;
        x[VIX_CF_WORST_SPAN] = fit ? fit[i].worst_span : VIX__SPAN_MAX;
        x[VIX_CF_STEADY_MISS] = fit ? fit[i].steady_miss : 1;
        x[VIX_CF_DISTINCT_HIT] = fit ? fit[i].distinct_hit : 0;
        x[VIX_CF_SPREAD] = q->spread;
        x[VIX_CF_ASR_GAP] = q->asr_gap;
        x[VIX_CF_SHORT_FORM] = fit ? fit[i].short_form : 0;
        x[VIX_CF_WHOLE_SHARE] = fit ? fit[i].whole_share : 1;
        x[VIX_CF_COMMAND] = q->command;
    }
}

static double vix__sigmoid(double t)
{
    if (t >= 0)
        return 1 / (1 + exp(-t));
    double e = exp(t);
    return e / (1 + e);
}

/* The hidden units' share of the logit. */
static double vix__hidden(const vix_calib_model *m, const double *x)
{
    double z[VIX_CALIB_NFEAT], t = 0;
    for (int f = 0; f < VIX_CALIB_NFEAT; f++)
        z[f] = (x[f] - m->mean[f]) * m->scale[f];
    for (size_t j = 0; j < m->n_hidden; j++) {
        double u = m->in[j][0];
        for (int f = 0; f < VIX_CALIB_NFEAT; f++)
            u += m->in[j][1 + f] * z[f];
        t += m->out[j] * tanh(u);
    }
    return t;
}

double vix_calib_predict(const vix_calib_model *m, const double *x)
{
    double t = m->w[0];
    for (int f = 0; f < VIX_CALIB_NFEAT; f++)
        t += m->w[1 + f] * x[f];
    if (m->n_hidden)
        t += vix__hidden(m, x);
    double p = vix__sigmoid(t);
    return isfinite(p) ? p : 0; /* a NaN feature must not leak out as a score */
}

void vix_calib_probs(const vix_calib *c, const double *x, size_t n, double *ret_p)
{
    double used = 0;
    for (size_t i = 0; i < n; i++) {
        double p = vix_calib_predict(i ? &c->rest : &c->top, x + i * VIX_CALIB_NFEAT);
        if (i) {
            double left = 1 - used;
            p = p < left ? p : left;
            p = p < ret_p[i - 1] ? p : ret_p[i - 1];
        }
        p = p < 0 ? 0 : p > 1 ? 1 : p;
        ret_p[i] = p;
        used += p;
    }
}

/* Column means and inverse standard deviations of n rows (0 for a
 * constant column), and the standardised rows into z when it is not NULL. */
static void vix__standardise(const double *x, size_t n, double *mean, double *scale, double *z)
{
    for (int f = 0; f < VIX_CALIB_NFEAT; f++) {
        double s = 0, ss = 0;
        for (size_t i = 0; i < n; i++)
            s += x[i * VIX_CALIB_NFEAT + f];
        mean[f] = s / (double)n;
        for (size_t i = 0; i < n; i++) {
            double d = x[i * VIX_CALIB_NFEAT + f] - mean[f];
            ss += d * d;
        }
        double sd = sqrt(ss / (double)n);
        scale[f] = sd > 1e-9 ? 1 / sd : 0;
        for (size_t i = 0; z && i < n; i++)
            z[i * VIX_CALIB_NFEAT + f] = (x[i * VIX_CALIB_NFEAT + f] - mean[f]) * scale[f];
    }
}

/* Penalised log-likelihood of standardised rows. */
static double vix__loglik(const double *z, const uint8_t *y, size_t n, const double *b, double l2)
{
    double ll = 0;
    for (size_t i = 0; i < n; i++) {
        double t = b[0];
        for (int f = 0; f < VIX_CALIB_NFEAT; f++)
            t += b[1 + f] * z[i * VIX_CALIB_NFEAT + f];
        /* log sigmoid(+-t) without overflow */
        double s = y[i] ? t : -t;
        ll += s >= 0 ? -log1p(exp(-s)) : s - log1p(exp(s));
    }
    for (int f = 1; f < VIX__NW; f++)
        ll -= 0.5 * l2 * b[f] * b[f];
    return ll;
}

/* Solves a x = g for symmetric positive definite a (Cholesky, in place). */
static int vix__solve_spd(double a[VIX__NW][VIX__NW], const double *g, double *x)
{
    for (int j = 0; j < VIX__NW; j++) {
        double s = a[j][j];
        for (int k = 0; k < j; k++)
            s -= a[j][k] * a[j][k];
        if (!(s > 0))
            return ERD_EINTERNAL;
        a[j][j] = sqrt(s);
        for (int i = j + 1; i < VIX__NW; i++) {
            double t = a[i][j];
            for (int k = 0; k < j; k++)
                t -= a[i][k] * a[j][k];
            a[i][j] = t / a[j][j];
        }
    }
    double v[VIX__NW];
    for (int i = 0; i < VIX__NW; i++) {
        double t = g[i];
        for (int k = 0; k < i; k++)
            t -= a[i][k] * v[k];
        v[i] = t / a[i][i];
    }
    for (int i = VIX__NW - 1; i >= 0; i--) {
        double t = v[i];
        for (int k = i + 1; k < VIX__NW; k++)
            t -= a[k][i] * x[k];
        x[i] = t / a[i][i];
    }
    return ERD_OK;
}

int vix_calib_fit(const double *x, const uint8_t *y, size_t n, double l2, vix_calib_model *ret,
                  erd_diag *diag)
{
    double mean[VIX_CALIB_NFEAT] = {0}, scale[VIX_CALIB_NFEAT] = {0}, b[VIX__NW] = {0};
    size_t pos = 0;
    int rc = ERD_OK;
    if (n == 0 || !(l2 >= 0))
        return erd_fail(diag, ERD_EINVAL, "calibration fit needs rows and l2 >= 0");
    for (size_t i = 0; i < n; i++)
        pos += y[i] != 0;
    if (pos == 0 || pos == n)
        return erd_fail(diag, ERD_EINVAL,
                        "calibration fit needs right and wrong results (%zu of %zu right)", pos, n);
    double *z = malloc(n * VIX_CALIB_NFEAT * sizeof *z);
    if (!z)
        return erd_fail(diag, ERD_ENOMEM, "out of memory");
    /* Standardised features make one l2 mean the same for every feature
     * and keep the Hessian well conditioned; a constant feature (the rank
     * of a top result, agreement without rerank) is left out, since it
     * would only duplicate the intercept. */
    vix__standardise(x, n, mean, scale, z);
    double rate = (double)pos / (double)n;
    b[0] = log(rate / (1 - rate));
    double ll = vix__loglik(z, y, n, b, l2);
    int converged = 0;
    for (int it = 0; it < 100 && !converged; it++) {
        double h[VIX__NW][VIX__NW] = {{0}}, g[VIX__NW] = {0}, step[VIX__NW];
        for (size_t i = 0; i < n; i++) {
            double zi[VIX__NW];
            zi[0] = 1;
            memcpy(zi + 1, z + i * VIX_CALIB_NFEAT, VIX_CALIB_NFEAT * sizeof *zi);
            double t = 0;
            for (int j = 0; j < VIX__NW; j++)
                t += b[j] * zi[j];
            double p = vix__sigmoid(t), w = p * (1 - p), r = (double)(y[i] != 0) - p;
            for (int j = 0; j < VIX__NW; j++) {
                g[j] += zi[j] * r;
                for (int k = 0; k <= j; k++)
                    h[j][k] += w * zi[j] * zi[k];
            }
        }
        for (int j = 0; j < VIX__NW; j++) {
            for (int k = 0; k < j; k++)
                h[k][j] = h[j][k];
            /* a tiny ridge everywhere keeps separable data (and a left-out
             * feature's all-zero column) solvable */
            h[j][j] += (j ? l2 : 0) + 1e-9 * (double)n;
            if (j)
                g[j] -= l2 * b[j];
        }
        if (vix__solve_spd(h, g, step) < 0) {
            rc = erd_fail(diag, ERD_EINTERNAL, "calibration fit: singular Hessian");
            goto out;
        }
        /* Newton with step halving: the penalised likelihood never drops */
        double t = 1, nb[VIX__NW], nll = ll;
        for (int half = 0; half < 30; half++, t *= 0.5) {
            for (int j = 0; j < VIX__NW; j++)
                nb[j] = b[j] + t * step[j];
            nll = vix__loglik(z, y, n, nb, l2);
            if (nll >= ll - 1e-12)
                break;
        }
        double moved = 0;
        for (int j = 0; j < VIX__NW; j++) {
            moved = fmax(moved, fabs(nb[j] - b[j]));
            b[j] = nb[j];
        }
        converged = moved < 1e-9 || fabs(nll - ll) < 1e-12 * (1 + fabs(ll));
        ll = nll;
    }
    if (!converged) {
        rc = erd_fail(diag, ERD_EINTERNAL, "calibration fit did not converge");
        goto out;
    }
    vix_calib_model m = {.n_hidden = 0};
    m.w[0] = b[0];
    for (int f = 0; f < VIX_CALIB_NFEAT; f++) {
        m.w[1 + f] = b[1 + f] * scale[f];
        m.w[0] -= b[1 + f] * scale[f] * mean[f];
    }
    *ret = m;
out:
    free(z);
    return rc;
}

/* splitmix64: the units' starting weights, the same on every machine. */
static double vix__uniform(uint64_t *state)
{
    uint64_t v = (*state += 0x9e3779b97f4a7c15ULL);
    v = (v ^ (v >> 30)) * 0xbf58476d1ce4e5b9ULL;
    v = (v ^ (v >> 27)) * 0x94d049bb133111ebULL;
    v ^= v >> 31;
    return (double)(v >> 11) * 0x1.0p-53;
}

/* Parameters of a model with units, laid out for the optimiser: intercept
 * and linear weights on the standardised features, then per unit its bias
 * and weights, then the units' output weights. */
#define VIX__P_LIN (VIX_CALIB_NFEAT + 1)
#define VIX__P_UNIT (VIX_CALIB_NFEAT + 1)

/* Gradient of the mean log loss (plus the units' penalty) at theta. */
static void vix__hidden_grad(const double *z, const uint8_t *y, size_t n, size_t units, double l2,
                             const double *theta, double *g)
{
    const double *lin = theta, *in = theta + VIX__P_LIN, *out = in + units * VIX__P_UNIT;
    size_t np = VIX__P_LIN + units * (VIX__P_UNIT + 1);
    double *g_in = g + VIX__P_LIN, *g_out = g_in + units * VIX__P_UNIT, a[VIX_CALIB_HIDDEN_MAX];
    memset(g, 0, np * sizeof *g);
    for (size_t i = 0; i < n; i++) {
        const double *zi = z + i * VIX_CALIB_NFEAT;
        double t = lin[0];
        for (int f = 0; f < VIX_CALIB_NFEAT; f++)
            t += lin[1 + f] * zi[f];
        for (size_t j = 0; j < units; j++) {
            const double *w = in + j * VIX__P_UNIT;
            double u = w[0];
            for (int f = 0; f < VIX_CALIB_NFEAT; f++)
                u += w[1 + f] * zi[f];
            a[j] = tanh(u);
            t += out[j] * a[j];
        }
        double e = (vix__sigmoid(t) - (double)(y[i] != 0)) / (double)n;
        g[0] += e;
        for (int f = 0; f < VIX_CALIB_NFEAT; f++)
            g[1 + f] += e * zi[f];
        for (size_t j = 0; j < units; j++) {
            double d = e * out[j] * (1 - a[j] * a[j]);
            double *gw = g_in + j * VIX__P_UNIT;
            g_out[j] += e * a[j];
            gw[0] += d;
            for (int f = 0; f < VIX_CALIB_NFEAT; f++)
                gw[1 + f] += d * zi[f];
        }
    }
    for (size_t j = 0; j < units; j++) {
        g_out[j] += l2 * out[j];
        for (int f = 0; f < VIX_CALIB_NFEAT; f++)
            g_in[j * VIX__P_UNIT + 1 + f] += l2 * in[j * VIX__P_UNIT + 1 + f];
    }
}

/* Adam on theta: moments in mom and vel, step t from 1. */
static void vix__adam(double *theta, const double *g, double *mom, double *vel, size_t np,
                      double rate, size_t t)
{
    double c1 = 1 - pow(0.9, (double)t), c2 = 1 - pow(0.999, (double)t);
    for (size_t k = 0; k < np; k++) {
        mom[k] = 0.9 * mom[k] + 0.1 * g[k];
        vel[k] = 0.999 * vel[k] + 0.001 * g[k] * g[k];
        theta[k] -= rate * (mom[k] / c1) / (sqrt(vel[k] / c2) + 1e-8);
    }
}

int vix_calib_fit_hidden(const double *x, const uint8_t *y, size_t n,
                         const vix_calib_hidden_opts *opts, vix_calib_model *m, erd_diag *diag)
{
    size_t units = opts->units;
    if (n == 0 || units == 0 || units > VIX_CALIB_HIDDEN_MAX || opts->steps == 0 ||
        !(opts->l2 >= 0) || !(opts->rate > 0))
        return erd_fail(diag, ERD_EINVAL, "hidden units: need rows, 1..%d units, steps, "
                        "l2 >= 0 and a positive rate", VIX_CALIB_HIDDEN_MAX);
    size_t np = VIX__P_LIN + units * (VIX__P_UNIT + 1);
    double *z = malloc(n * VIX_CALIB_NFEAT * sizeof *z), *theta = calloc(4 * np, sizeof *theta);
    if (!z || !theta) {
        free(z);
        free(theta);
        return erd_fail(diag, ERD_ENOMEM, "out of memory");
    }
    double *g = theta + np, *mom = g + np, *vel = mom + np, mean[VIX_CALIB_NFEAT],
           scale[VIX_CALIB_NFEAT];
    vix__standardise(x, n, mean, scale, z);
    /* start from m: its raw weights in standardised terms, a constant
     * feature's share in the intercept */
    theta[0] = m->w[0];
    for (int f = 0; f < VIX_CALIB_NFEAT; f++) {
        theta[0] += m->w[1 + f] * mean[f];
        theta[1 + f] = scale[f] > 0 ? m->w[1 + f] / scale[f] : 0;
    }
    uint64_t state = opts->seed;
    double bound = sqrt(3.0 / VIX_CALIB_NFEAT);
    for (size_t k = VIX__P_LIN; k < VIX__P_LIN + units * VIX__P_UNIT; k++)
        theta[k] = bound * (2 * vix__uniform(&state) - 1);
    for (size_t t = 1; t <= opts->steps; t++) {
        vix__hidden_grad(z, y, n, units, opts->l2, theta, g);
        vix__adam(theta, g, mom, vel, np, opts->rate, t);
    }
    vix_calib_model r = {.n_hidden = 0};
    r.n_hidden = units;
    r.w[0] = theta[0];
    for (int f = 0; f < VIX_CALIB_NFEAT; f++) {
        r.w[1 + f] = theta[1 + f] * scale[f];
        r.w[0] -= theta[1 + f] * scale[f] * mean[f];
        r.mean[f] = mean[f];
        r.scale[f] = scale[f];
    }
    for (size_t j = 0; j < units; j++) {
        memcpy(r.in[j], theta + VIX__P_LIN + j * VIX__P_UNIT, VIX__P_UNIT * sizeof *theta);
        r.out[j] = theta[VIX__P_LIN + units * VIX__P_UNIT + j];
    }
    int finite = 1;
    for (size_t k = 0; k < np; k++)
        finite &= isfinite(theta[k]);
    free(z);
    free(theta);
    if (!finite)
        return erd_fail(diag, ERD_EINTERNAL, "hidden units: training diverged");
    *m = r;
    return ERD_OK;
}

/* One line of free text: no newline may break the file's structure. */
static int vix__one_line(const char *s)
{
    return strpbrk(s, "\r\n") == NULL;
}

static size_t vix__put(char *buf, size_t cap, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static size_t vix__put(char *buf, size_t cap, size_t len, const char *fmt, ...)
{
    if (len >= cap)
        return cap;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + len, cap - len, fmt, ap);
    va_end(ap);
    return n < 0 || (size_t)n >= cap - len ? cap : len + (size_t)n;
}

/* This erd's features, comma-separated: the file's "features" line, and
 * what a refused file is told it lacks. */
static size_t vix__put_features(char *buf, size_t cap, size_t len)
{
    for (int f = 0; f < VIX_CALIB_NFEAT; f++)
        len = vix__put(buf, cap, len, "%s%s", f ? "," : "", vix__feature_names[f]);
    return len;
}

static size_t vix__put_row(char *buf, size_t cap, size_t len, const char *name, const char *part,
                           const double *v, size_t n)
{
    len = vix__put(buf, cap, len, "%s%s", name, part);
    for (size_t j = 0; j < n; j++)
        len = vix__put(buf, cap, len, " %.17g", v[j]);
    return vix__put(buf, cap, len, "\n");
}

/* "NAME w...", "NAME_hidden H", and with units "NAME_mean", "NAME_scale"
 * and one "NAME_unit out bias w..." per unit. */
static size_t vix__put_model(char *buf, size_t cap, size_t len, const char *name,
                             const vix_calib_model *m)
{
    len = vix__put_row(buf, cap, len, name, "", m->w, VIX__NW);
    len = vix__put(buf, cap, len, "%s_hidden %zu\n", name, m->n_hidden);
    if (!m->n_hidden)
        return len;
    len = vix__put_row(buf, cap, len, name, "_mean", m->mean, VIX_CALIB_NFEAT);
    len = vix__put_row(buf, cap, len, name, "_scale", m->scale, VIX_CALIB_NFEAT);
    for (size_t j = 0; j < m->n_hidden; j++) {
        double row[VIX__NW + 1];
        row[0] = m->out[j];
        memcpy(row + 1, m->in[j], VIX__NW * sizeof *row);
        len = vix__put_row(buf, cap, len, name, "_unit", row, VIX__NW + 1);
    }
    return len;
}

int vix_calib_save(const vix_calib *c, const char *path, erd_diag *diag)
{
    char *buf = malloc(VIX__CALIB_FILE_MAX);
    size_t len = 0, cap = VIX__CALIB_FILE_MAX;
    int rc = ERD_OK;
    if (!buf)
        return erd_fail(diag, ERD_ENOMEM, "out of memory");
    if (!vix__one_line(c->encoder_id) || !vix__one_line(c->rerank_id) ||
        !vix__one_line(c->provenance) || !c->encoder_id[0] || !c->rerank_id[0]) {
        rc = erd_fail(diag, ERD_EINVAL, "calibration: encoder, rerank and provenance must be "
                                        "single lines (encoder and rerank non-empty)");
        goto out;
    }
    len = vix__put(buf, cap, len, "%s %d\nfeatures ", VIX__CALIB_MAGIC, VIX_CALIB_VERSION);
    len = vix__put_features(buf, cap, len);
    len = vix__put(buf, cap, len, "\nencoder %s\nrerank %s\nprovenance %s\nno_match_threshold %.17g\n",
                   c->encoder_id, c->rerank_id, c->provenance, c->no_match_threshold);
    len = vix__put_model(buf, cap, len, "top", &c->top);
    len = vix__put_model(buf, cap, len, "rest", &c->rest);
    if (len >= cap) {
        rc = erd_fail(diag, ERD_ETOOLONG, "calibration file too long");
        goto out;
    }
    uint64_t sum = erd_fnv1a64(ERD_FNV1A64_OFFSET, buf, len);
    len = vix__put(buf, cap, len, "checksum fnv1a64:%016" PRIx64 "\n", sum);
    if (len >= cap) {
        rc = erd_fail(diag, ERD_ETOOLONG, "calibration file too long");
        goto out;
    }
    rc = erd_file_replace(path, buf, len, diag);
out:
    free(buf);
    return rc;
}

/* "KEY VALUE" line at *pos: copies VALUE (to the newline) and advances. */
static int vix__line(const char **pos, const char *end, const char *key, char *val, size_t cap)
{
    const char *p = *pos, *nl = memchr(p, '\n', (size_t)(end - p));
    size_t klen = strlen(key);
    if (!nl || (size_t)(nl - p) <= klen || memcmp(p, key, klen) != 0 || p[klen] != ' ')
        return ERD_ECORRUPT;
    size_t vlen = (size_t)(nl - p) - klen - 1;
    if (vlen >= cap)
        return ERD_ECORRUPT;
    memcpy(val, p + klen + 1, vlen);
    val[vlen] = '\0';
    *pos = nl + 1;
    return ERD_OK;
}

/* Exactly n finite numbers. */
static int vix__parse_row(const char *s, double *v, size_t n)
{
    char *end;
    for (size_t j = 0; j < n; j++) {
        errno = 0;
        v[j] = strtod(s, &end);
        if (errno || end == s || !isfinite(v[j]))
            return ERD_ECORRUPT;
        s = end;
    }
    return *s ? ERD_ECORRUPT : ERD_OK;
}

/* What vix__put_model wrote for name, at *pos, from a file of nf features
 * (a first part of this erd's list): the features it lacks weigh nothing. */
static int vix__parse_model(const char **pos, const char *end, const char *name, size_t nf,
                            vix_calib_model *m)
{
    char key[32], *line = malloc(VIX__LINE_MAX), *e;
    int rc = ERD_ECORRUPT;
    if (!line)
        return ERD_ENOMEM;
    if (vix__line(pos, end, name, line, VIX__LINE_MAX) < 0 ||
        vix__parse_row(line, m->w, nf + 1) < 0)
        goto out;
    snprintf(key, sizeof key, "%s_hidden", name);
    if (vix__line(pos, end, key, line, VIX__LINE_MAX) < 0)
        goto out;
    errno = 0;
    unsigned long units = strtoul(line, &e, 10);
    if (errno || e == line || *e || units > VIX_CALIB_HIDDEN_MAX)
        goto out;
    m->n_hidden = units;
    snprintf(key, sizeof key, "%s_mean", name);
    if (units && (vix__line(pos, end, key, line, VIX__LINE_MAX) < 0 ||
                  vix__parse_row(line, m->mean, nf) < 0))
        goto out;
    snprintf(key, sizeof key, "%s_scale", name);
    if (units && (vix__line(pos, end, key, line, VIX__LINE_MAX) < 0 ||
                  vix__parse_row(line, m->scale, nf) < 0))
        goto out;
    snprintf(key, sizeof key, "%s_unit", name);
    for (size_t j = 0; j < units; j++) {
        double row[VIX__NW + 1];
        if (vix__line(pos, end, key, line, VIX__LINE_MAX) < 0 ||
            vix__parse_row(line, row, nf + 2) < 0)
            goto out;
        m->out[j] = row[0];
        memcpy(m->in[j], row + 1, (nf + 1) * sizeof *row);
    }
    rc = ERD_OK;
out:
    free(line);
    return rc;
}

static int vix__parse_threshold(const char *s, double *ret)
{
    char *end;
    errno = 0;
    double t = strtod(s, &end);
    if (errno || end == s || *end || !(t >= 0 && t <= 1))
        return ERD_ECORRUPT;
    *ret = t;
    return ERD_OK;
}

/* How many features a file's list names, when it is this erd's list or a
 * first part of it (a file fitted before later features were added); 0
 * otherwise.  Features only ever join at the end. */
static size_t vix__known_features(const char *list)
{
    size_t nf = 0;
    for (const char *p = list; nf < VIX_CALIB_NFEAT; nf++) {
        size_t len = strlen(vix__feature_names[nf]);
        if (strncmp(p, vix__feature_names[nf], len) != 0 || (p[len] != ',' && p[len] != '\0'))
            return 0;
        p += len;
        if (*p == '\0')
            return nf + 1;
        p++;
    }
    return 0;
}

int vix_calib_load(const char *path, vix_calib *ret, erd_diag *diag)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL, line[1024];
    vix_calib c;
    int rc = ERD_OK;
    memset(&c, 0, sizeof c);
    if (!f)
        return erd_fail(diag, errno == ENOENT ? ERD_ENOTFOUND : ERD_EIO, "%s: %s", path,
                        strerror(errno));
    buf = malloc(VIX__CALIB_FILE_MAX + 1);
    if (!buf) {
        rc = erd_fail(diag, ERD_ENOMEM, "out of memory");
        goto out;
    }
    size_t len = fread(buf, 1, VIX__CALIB_FILE_MAX + 1, f);
    if (ferror(f)) {
        rc = erd_fail(diag, ERD_EIO, "%s: read error", path);
        goto out;
    }
    if (len > VIX__CALIB_FILE_MAX || len == 0 || buf[len - 1] != '\n') {
        rc = erd_fail(diag, ERD_ECORRUPT, "%s: not a calibration file (size or last line)", path);
        goto out;
    }
    buf[len] = '\0';
    /* the checksum line is the last one and covers everything above it */
    char *last = buf + len - 1;
    while (last > buf && last[-1] != '\n')
        last--;
    uint64_t want;
    if (sscanf(last, "checksum fnv1a64:%16" SCNx64 "\n", &want) != 1) {
        rc = erd_fail(diag, ERD_ECORRUPT, "%s: no checksum line", path);
        goto out;
    }
    uint64_t got = erd_fnv1a64(ERD_FNV1A64_OFFSET, buf, (size_t)(last - buf));
    if (got != want) {
        rc = erd_fail(diag, ERD_ECORRUPT, "%s: checksum %016" PRIx64 " does not match the "
                      "recorded %016" PRIx64 ": damaged or edited", path, got, want);
        goto out;
    }
    const char *pos = buf, *end = last;
    int version;
    if (vix__line(&pos, end, VIX__CALIB_MAGIC, line, sizeof line) < 0 ||
        sscanf(line, "%d", &version) != 1) {
        rc = erd_fail(diag, ERD_ECORRUPT, "%s: not a calibration file", path);
        goto out;
    }
    if (version != VIX_CALIB_VERSION) {
        rc = erd_fail(diag, ERD_EMISMATCH, "%s: calibration version %d, this erd reads %d", path,
                      version, VIX_CALIB_VERSION);
        goto out;
    }
    if (vix__line(&pos, end, "features", line, sizeof line) < 0) {
        rc = erd_fail(diag, ERD_ECORRUPT, "%s: no features line", path);
        goto out;
    }
    size_t nf = vix__known_features(line);
    if (nf == 0) {
        char all[512];
        vix__put_features(all, sizeof all, 0);
        rc = erd_fail(diag, ERD_EMISMATCH, "%s: fitted on features %s, this erd computes %s",
                      path, line, all);
        goto out;
    }
    if (vix__line(&pos, end, "encoder", c.encoder_id, sizeof c.encoder_id) < 0 ||
        vix__line(&pos, end, "rerank", c.rerank_id, sizeof c.rerank_id) < 0 ||
        vix__line(&pos, end, "provenance", c.provenance, sizeof c.provenance) < 0 ||
        vix__line(&pos, end, "no_match_threshold", line, sizeof line) < 0 ||
        vix__parse_threshold(line, &c.no_match_threshold) < 0 ||
        vix__parse_model(&pos, end, "top", nf, &c.top) < 0 ||
        vix__parse_model(&pos, end, "rest", nf, &c.rest) < 0 || pos != end) {
        rc = erd_fail(diag, ERD_ECORRUPT, "%s: malformed calibration file", path);
        goto out;
    }
    *ret = c;
out:
    free(buf);
    fclose(f);
    return rc;
}
