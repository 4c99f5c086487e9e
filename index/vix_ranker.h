/* Learned second stage: orders the rerank's candidates by a linear model
 * over features erd already computes (first-stage cosine, per-hypothesis
 * channel alignment, agreement across the n-best, gaps to the best
 * candidate, first-stage rank, length ratio, the hand-set blend), fitted on
 * simulated queries instead of hand-set weights.
 *
 * The model is listwise: a query's candidates get p_i = softmax(w . x_i),
 * fitted to maximise the probability of the right candidates (a
 * recogniser's hallucinated hypotheses then weigh what the data says they
 * are worth, not what a fixed blend assumes).  p_i is the result's score
 * before calibration.
 *
 * The fitted weights live in a small JSON file with a checksum, recording
 * the rerank configuration (channel and options) it was fitted under. */
#ifndef VIX_RANKER_H
#define VIX_RANKER_H

#include <stddef.h>
#include <stdint.h>

#include "index/vix_rerank.h"
#include "proto/erd_error.h"

enum {
    VIX_RK_FIRST,      /* first-stage weighted mean cosine, 0..1 */
    VIX_RK_SECOND,     /* weighted mean alignment score over the hypotheses, 0..1 */
    VIX_RK_BEST_HYP,   /* the best single hypothesis's alignment score */
    VIX_RK_TOP_HYP,    /* the first hypothesis's alignment score */
    VIX_RK_AGREE,      /* weighted share of hypotheses whose best-aligned candidate it is */
    VIX_RK_FIRST_GAP,  /* best first-stage score minus its own */
    VIX_RK_SECOND_GAP, /* best mean alignment minus its own */
    VIX_RK_HYP_GAP,    /* weighted mean over hypotheses of (best alignment - its own) */
    VIX_RK_LOG_RANK,   /* log(1 + first-stage rank) */
    VIX_RK_LEN_RATIO,  /* |log(phones of its closest-length phrase / of the first hypothesis)| */
    VIX_RK_BLEND,      /* the hand-set blend of first and second stage */
    VIX_RANKER_NFEAT
};

#define VIX_RANKER_VERSION 1
#define VIX_RANKER_ID_MAX 256

typedef struct vix_ranker {
    double mean[VIX_RANKER_NFEAT], scale[VIX_RANKER_NFEAT]; /* standardisation */
    double w[VIX_RANKER_NFEAT];                             /* on standardised features */
    char rerank_id[VIX_RANKER_ID_MAX]; /* rerank configuration the features came from */
    char provenance[512];
    uint64_t checksum; /* of the file it was loaded from or saved to */
} vix_ranker;

const char *vix_ranker_feature_name(int f);

/* What the features of n candidates are computed from: the rerank's
 * hypotheses and scored candidates (in the first stage's order: index =
 * first-stage rank) and by_hyp[h * n_cands + c], hypothesis h's best phrase
 * score for candidate c. */
typedef struct vix_rank_input {
    const vix_rerank_hyp *hyps;
    size_t n_hyps;
    const vix_rerank_cand *cands;
    size_t n_cands;
    const double *by_hyp;
} vix_rank_input;

/* ret_x: n_cands x VIX_RANKER_NFEAT. */
void vix_rank_features(const vix_rank_input *in, double *ret_x);

/* Softmax probabilities of n candidates' features under rk into ret_p. */
void vix_ranker_probs(const vix_ranker *rk, const double *x, size_t n, double *ret_p);

typedef struct vix_ranker_fit_opts {
    double l2;          /* penalty on the standardised weights (default 1e-3 per query) */
    unsigned iterations; /* full-batch Adam steps (default 400) */
    double lr;          /* Adam step size (default 0.05) */
} vix_ranker_fit_opts;

void vix_ranker_fit_opts_init(vix_ranker_fit_opts *o);

/* Fits on n_queries lists: query q owns rows [off[q], off[q+1]) of x
 * (VIX_RANKER_NFEAT each) and y marks its right candidates (a list without
 * one teaches nothing and is skipped).  *ret set only on success; its
 * rerank_id and provenance are the caller's to fill. */
int vix_ranker_fit(const double *x, const uint8_t *y, const size_t *off, size_t n_queries,
                   const vix_ranker_fit_opts *o, vix_ranker *ret, erd_diag *diag);

/* Top-1 accuracy of rk on lists as vix_ranker_fit takes them (lists without
 * a right candidate count as wrong). */
double vix_ranker_accuracy(const vix_ranker *rk, const double *x, const uint8_t *y,
                           const size_t *off, size_t n_queries);

int vix_ranker_save(vix_ranker *rk, const char *path, erd_diag *diag);
int vix_ranker_load(const char *path, vix_ranker *ret, erd_diag *diag);

#endif
