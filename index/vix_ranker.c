/* Learned second stage (see vix_ranker.h). */
#include "index/vix_ranker.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index/vix_jsonfile.h"

#define VIX__RANKER_MAGIC "erd-ranker"

static const char *const vix__rk_names[VIX_RANKER_NFEAT] = {
    "first",    "second",    "best_hyp", "top_hyp",   "agree",  "first_gap",
    "second_gap", "hyp_gap", "log_rank", "len_ratio", "blend",
};

const char *vix_ranker_feature_name(int f)
{
    return f >= 0 && f < VIX_RANKER_NFEAT ? vix__rk_names[f] : "?";
}

/* ---- features ---------------------------------------------------------------- */

/* Per-hypothesis best candidate and best score, credited by hypothesis
 * weight: the agreement feature and the per-hypothesis gap. */
static void vix__rk_hyp_terms(const vix_rank_input *in, double *x)
{
    double wsum = 0;
    for (size_t h = 0; h < in->n_hyps; h++)
        wsum += in->hyps[h].weight;
    for (size_t h = 0; h < in->n_hyps && wsum > 0; h++) {
        const double *row = in->by_hyp + h * in->n_cands;
        double best = -1, w = in->hyps[h].weight / wsum;
        size_t arg = 0;
        for (size_t c = 0; c < in->n_cands; c++)
            if (row[c] > best) {
                best = row[c];
                arg = c;
            }
        x[arg * VIX_RANKER_NFEAT + VIX_RK_AGREE] += w;
        for (size_t c = 0; c < in->n_cands; c++)
            x[c * VIX_RANKER_NFEAT + VIX_RK_HYP_GAP] += w * (best - row[c]);
    }
}

static double vix__rk_len_ratio(const vix_rerank_cand *c, size_t hyp_phones)
{
    double best = 0;
    for (size_t i = 0; i < c->n_phrases; i++) {
        double r = fabs(log((1.0 + c->phrases[i].n) / (1.0 + (double)hyp_phones)));
        if (i == 0 || r < best)
            best = r;
    }
    return best;
}

void vix_rank_features(const vix_rank_input *in, double *ret_x)
{
    double top_first = 0, top_second = 0;
    size_t hyp_phones = in->n_hyps ? in->hyps[0].n : 0;
    for (size_t c = 0; c < in->n_cands; c++) {
        top_first = fmax(top_first, in->cands[c].first);
        top_second = fmax(top_second, in->cands[c].second);
    }
    memset(ret_x, 0, in->n_cands * VIX_RANKER_NFEAT * sizeof *ret_x);
    for (size_t c = 0; c < in->n_cands; c++) {
        const vix_rerank_cand *k = &in->cands[c];
        double *x = ret_x + c * VIX_RANKER_NFEAT, best = 0;
        for (size_t h = 0; h < in->n_hyps; h++)
            best = fmax(best, in->by_hyp[h * in->n_cands + c]);
        x[VIX_RK_FIRST] = k->first;
        x[VIX_RK_SECOND] = k->second;
        x[VIX_RK_BEST_HYP] = best;
        x[VIX_RK_TOP_HYP] = in->n_hyps ? in->by_hyp[c] : 0;
        x[VIX_RK_FIRST_GAP] = top_first - k->first;
        x[VIX_RK_SECOND_GAP] = top_second - k->second;
        x[VIX_RK_LOG_RANK] = log(1.0 + (double)c);
        x[VIX_RK_LEN_RATIO] = vix__rk_len_ratio(k, hyp_phones);
        x[VIX_RK_BLEND] = k->score;
    }
    vix__rk_hyp_terms(in, ret_x);
}

/* ---- scoring ------------------------------------------------------------------- */

static double vix__rk_logit(const vix_ranker *rk, const double *x)
{
    double s = 0;
    for (int f = 0; f < VIX_RANKER_NFEAT; f++)
        s += rk->w[f] * (x[f] - rk->mean[f]) / rk->scale[f];
    return s;
}

void vix_ranker_probs(const vix_ranker *rk, const double *x, size_t n, double *ret_p)
{
    double mx = -INFINITY, z = 0;
    for (size_t i = 0; i < n; i++) {
        ret_p[i] = vix__rk_logit(rk, x + i * VIX_RANKER_NFEAT);
        mx = fmax(mx, ret_p[i]);
    }
    for (size_t i = 0; i < n; i++) {
        ret_p[i] = exp(ret_p[i] - mx);
        z += ret_p[i];
    }
    for (size_t i = 0; i < n; i++)
        ret_p[i] /= z;
}

double vix_ranker_accuracy(const vix_ranker *rk, const double *x, const uint8_t *y,
                           const size_t *off, size_t n_queries)
{
    size_t right = 0;
    for (size_t q = 0; q < n_queries; q++) {
        double best = -INFINITY;
        size_t arg = off[q];
        for (size_t i = off[q]; i < off[q + 1]; i++) {
            double s = vix__rk_logit(rk, x + i * VIX_RANKER_NFEAT);
            if (s > best) {
                best = s;
                arg = i;
            }
        }
        right += off[q + 1] > off[q] && y[arg];
    }
    return n_queries ? (double)right / (double)n_queries : 0;
}

/* ---- fitting ------------------------------------------------------------------- */

void vix_ranker_fit_opts_init(vix_ranker_fit_opts *o)
{
    o->l2 = 1e-3;
    o->iterations = 400;
    o->lr = 0.05;
}

static void vix__rk_standardise(const double *x, size_t n, vix_ranker *rk)
{
    for (int f = 0; f < VIX_RANKER_NFEAT; f++) {
        double s = 0, ss = 0;
        for (size_t i = 0; i < n; i++)
            s += x[i * VIX_RANKER_NFEAT + f];
        double mean = n ? s / (double)n : 0;
        for (size_t i = 0; i < n; i++) {
            double d = x[i * VIX_RANKER_NFEAT + f] - mean;
            ss += d * d;
        }
        double sd = n ? sqrt(ss / (double)n) : 0;
        rk->mean[f] = mean;
        rk->scale[f] = sd > 1e-9 ? sd : 1.0;
    }
}

/* Negative log of the probability the list puts on its right candidates,
 * summed over lists, and its gradient in g (standardised weights). */
static double vix__rk_loss(const vix_ranker *rk, const double *x, const uint8_t *y,
                           const size_t *off, size_t n_queries, double *p, double *g)
{
    double loss = 0;
    memset(g, 0, VIX_RANKER_NFEAT * sizeof *g);
    for (size_t q = 0; q < n_queries; q++) {
        size_t lo = off[q], n = off[q + 1] - lo;
        double right = 0;
        vix_ranker_probs(rk, x + lo * VIX_RANKER_NFEAT, n, p);
        for (size_t i = 0; i < n; i++)
            right += y[lo + i] ? p[i] : 0;
        if (!(right > 0))
            continue;
        loss -= log(right);
        /* d(-log sum_right p)/dz_i = p_i - [right_i] p_i / right */
        for (size_t i = 0; i < n; i++) {
            double d = p[i] - (y[lo + i] ? p[i] / right : 0);
            const double *xi = x + (lo + i) * VIX_RANKER_NFEAT;
            for (int f = 0; f < VIX_RANKER_NFEAT; f++)
                g[f] += d * (xi[f] - rk->mean[f]) / rk->scale[f];
        }
    }
    return loss;
}

int vix_ranker_fit(const double *x, const uint8_t *y, const size_t *off, size_t n_queries,
                   const vix_ranker_fit_opts *o, vix_ranker *ret, erd_diag *diag)
{
    vix_ranker rk;
    double m[VIX_RANKER_NFEAT] = {0}, v[VIX_RANKER_NFEAT] = {0}, g[VIX_RANKER_NFEAT];
    size_t n = n_queries ? off[n_queries] : 0, longest = 0;
    if (n_queries == 0 || n == 0)
        return erd_fail(diag, ERD_EEMPTY, "ranker: no lists to fit on");
    for (size_t q = 0; q < n_queries; q++)
        if (off[q + 1] - off[q] > longest)
            longest = off[q + 1] - off[q];
    double *p = malloc(longest * sizeof *p);
    if (!p)
        return erd_fail(diag, ERD_ENOMEM, "out of memory");
    memset(&rk, 0, sizeof rk);
    vix__rk_standardise(x, n, &rk);
    /* start from the hand-set blend alone, the stage this one replaces */
    rk.w[VIX_RK_BLEND] = 1.0;
    for (unsigned it = 0; it < o->iterations; it++) {
        vix__rk_loss(&rk, x, y, off, n_queries, p, g);
        for (int f = 0; f < VIX_RANKER_NFEAT; f++) {
            double gf = g[f] / (double)n_queries + o->l2 * rk.w[f];
            m[f] = 0.9 * m[f] + 0.1 * gf;
            v[f] = 0.999 * v[f] + 0.001 * gf * gf;
            double mh = m[f] / (1 - pow(0.9, it + 1)), vh = v[f] / (1 - pow(0.999, it + 1));
            rk.w[f] -= o->lr * mh / (sqrt(vh) + 1e-8);
        }
    }
    free(p);
    *ret = rk;
    return ERD_OK;
}

/* ---- file ---------------------------------------------------------------------- */

static json_t *vix__rk_array(const double *v)
{
    json_t *a = json_array();
    for (int f = 0; a && f < VIX_RANKER_NFEAT; f++)
        if (json_array_append_new(a, json_real(v[f])) < 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

static json_t *vix__rk_json(const vix_ranker *rk)
{
    json_t *o = json_object(), *names = json_array();
    int bad = !o || !names;
    for (int f = 0; !bad && f < VIX_RANKER_NFEAT; f++)
        bad |= json_array_append_new(names, json_string(vix__rk_names[f])) < 0;
    bad |= json_object_set_new(o, "format", json_string(VIX__RANKER_MAGIC));
    bad |= json_object_set_new(o, "version", json_integer(VIX_RANKER_VERSION));
    bad |= json_object_set_new(o, "features", names);
    bad |= json_object_set_new(o, "rerank", json_string(rk->rerank_id));
    bad |= json_object_set_new(o, "provenance", json_string(rk->provenance));
    bad |= json_object_set_new(o, "mean", vix__rk_array(rk->mean));
    bad |= json_object_set_new(o, "scale", vix__rk_array(rk->scale));
    bad |= json_object_set_new(o, "weights", vix__rk_array(rk->w));
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

int vix_ranker_save(vix_ranker *rk, const char *path, erd_diag *diag)
{
    json_t *o = vix__rk_json(rk);
    if (!o)
        return erd_fail(diag, ERD_ENOMEM, "out of memory");
    int rc = vix__json_save_summed(o, path, &rk->checksum, diag);
    json_decref(o);
    return rc;
}

static int vix__rk_features_match(json_t *names)
{
    if (!json_is_array(names) || json_array_size(names) != VIX_RANKER_NFEAT)
        return 0;
    for (int f = 0; f < VIX_RANKER_NFEAT; f++) {
        const char *s = json_string_value(json_array_get(names, (size_t)f));
        if (!s || strcmp(s, vix__rk_names[f]) != 0)
            return 0;
    }
    return 1;
}

static int vix__rk_parse(json_t *o, const char *path, vix_ranker *rk, erd_diag *diag)
{
    const char *fmt = json_string_value(json_object_get(o, "format"));
    const char *rr = json_string_value(json_object_get(o, "rerank"));
    const char *prov = json_string_value(json_object_get(o, "provenance"));
    if (!fmt || strcmp(fmt, VIX__RANKER_MAGIC) != 0)
        return erd_fail(diag, ERD_ECORRUPT, "%s: not a ranker file", path);
    if (json_integer_value(json_object_get(o, "version")) != VIX_RANKER_VERSION)
        return erd_fail(diag, ERD_EMISMATCH, "%s: ranker version is not %d", path,
                        VIX_RANKER_VERSION);
    if (!vix__rk_features_match(json_object_get(o, "features")))
        return erd_fail(diag, ERD_EMISMATCH, "%s: fitted on other features than this erd "
                        "computes", path);
    if (!rr || !prov || strlen(rr) >= sizeof rk->rerank_id ||
        strlen(prov) >= sizeof rk->provenance ||
        vix__json_numbers(json_object_get(o, "mean"), VIX_RANKER_NFEAT, rk->mean) < 0 ||
        vix__json_numbers(json_object_get(o, "scale"), VIX_RANKER_NFEAT, rk->scale) < 0 ||
        vix__json_numbers(json_object_get(o, "weights"), VIX_RANKER_NFEAT, rk->w) < 0)
        return erd_fail(diag, ERD_ECORRUPT, "%s: malformed ranker file", path);
    for (int f = 0; f < VIX_RANKER_NFEAT; f++)
        if (!(rk->scale[f] > 0) || !isfinite(rk->w[f]) || !isfinite(rk->mean[f]))
            return erd_fail(diag, ERD_ECORRUPT, "%s: ranker weights out of range", path);
    snprintf(rk->rerank_id, sizeof rk->rerank_id, "%s", rr);
    snprintf(rk->provenance, sizeof rk->provenance, "%s", prov);
    return ERD_OK;
}

int vix_ranker_load(const char *path, vix_ranker *ret, erd_diag *diag)
{
    vix_ranker rk;
    json_t *o;
    memset(&rk, 0, sizeof rk);
    int rc = vix__json_load_summed(path, &o, &rk.checksum, diag);
    if (rc < 0)
        return rc;
    if ((rc = vix__rk_parse(o, path, &rk, diag)) == ERD_OK)
        *ret = rk;
    json_decref(o);
    return rc;
}
