/* Calibrated scores: P(result is right) from cheap features of a resolve.
 *
 * The resolver's own score (first-stage cosine blended with the rerank's
 * alignment score) ranks well but is no probability: 0.6 means different
 * things for a two-phone query and a ten-word title, for one hypothesis and
 * for ten that agree.  A logistic regression over a handful of features of
 * each result maps them to the probability that it is the entity meant, so
 * callers can answer "no match" below a threshold of their choosing.
 *
 * Two models share the feature vector: one for the top result, one for the
 * results below it (whose base rate is far lower).  Their outputs are then
 * made consistent across the list: results are alternatives for one spoken
 * phrase, so p_i is capped by what the results above left over
 * (p_i <= 1 - sum_{j<i} p_j) and by p_{i-1}; the list sums to at most 1 and
 * never increases with rank, while the top result keeps its own model's
 * probability (the one the reliability table measures).
 *
 * The fitted weights live in a small text file (versioned, FNV-1a 64
 * checksummed) that records the encoder and rerank configuration they were
 * fitted under: features computed under another configuration mean
 * something else. */
#ifndef VIX_CALIB_H
#define VIX_CALIB_H

#include <stddef.h>
#include <stdint.h>

#include "proto/erd_error.h"

enum {
    VIX_CF_SCORE,      /* the result's uncalibrated score, 0..1 */
    VIX_CF_MARGIN,     /* its score minus the next result's */
    VIX_CF_GAP,        /* the top result's score minus its own (0 at the top) */
    VIX_CF_FIRST,      /* first-stage weighted mean cosine */
    VIX_CF_AGREE,      /* weighted share of hypotheses whose own best is this result */
    VIX_CF_LOG_HYPS,   /* log(1 + hypotheses used) */
    VIX_CF_LOG_PHONES, /* log(1 + phones of the best hypothesis) */
    VIX_CF_LOG_RANK,   /* log(rank), 0 at the top */
    /* How well the result's names explain what was heard, in absolute
     * terms (the features above only say how it ranks): a query for an
     * entity the catalog lacks, or no catalog request at all, still has a
     * best result, but its alignments are poor and leave phones unmatched. */
    VIX_CF_FIT,        /* weighted mean over hypotheses of extra channel cost per phone */
    VIX_CF_BEST_FIT,   /* the least extra cost per phone of any hypothesis */
    VIX_CF_COVER,      /* weighted share of hypothesis phones heard as a name phone itself */
    VIX_CF_REF_COVER,  /* weighted share of the matched name's phones that were heard */
    /* A sibling title (a sequel, another subtitle) differs from what was
     * said in whole words, where recogniser noise spreads over all of them. */
    VIX_CF_WORD_MISS,     /* weighted share of hypothesis words with no phone matched */
    VIX_CF_REF_WORD_MISS, /* weighted share of the name's words with no phone heard */
    /* Curvature for the logistic model: evidence adds up differently when
     * a name explains nearly all of what was heard than when half. */
    VIX_CF_SCORE_SQ,      /* score squared */
    VIX_CF_FIT_SQ,        /* fit squared */
    VIX_CF_COVER_BOTH,    /* cover times ref_cover */
    VIX_CF_LEN_RATIO,     /* weighted mean of log((1 + hypothesis phones) / (1 + name phones)) */
    /* Recogniser noise garbles a phone here and there; words said around
     * a name ("turn off the lights in ...") leave a long run unmatched. */
    VIX_CF_GAP_RUN,       /* weighted share of hypothesis phones in its longest unmatched run */
    /* One hypothesis (a 1-best client, a typed request) carries less
     * evidence of its own: the alignment features weigh differently. */
    VIX_CF_ONE_HYP,       /* 1 for a single hypothesis, else 0 */
    VIX_CF_ONE_FIT,       /* fit, for a single hypothesis (else 0) */
    VIX_CF_ONE_COVER,     /* cover, likewise */
    VIX_CF_ONE_GAP_RUN,   /* gap_run, likewise */
    VIX_CALIB_NFEAT
};

/* The alignment side of a result's features (VIX_CF_FIT .. VIX_CF_REF_COVER):
 * its best phrase per hypothesis, aligned under the rerank's channel. */
typedef struct vix_calib_fitness {
    double fit, best_fit, cover, ref_cover, word_miss, ref_word_miss, len_ratio, gap_run;
    size_t n_added; /* hypotheses added so far */
} vix_calib_fitness;

/* What one hypothesis's alignment with its best phrase counts. */
typedef struct vix_calib_counts {
    double extra;             /* its extra cost */
    size_t n_hyp, n_ref;      /* phones */
    size_t matched, heard;    /* hypothesis phones matched; phrase phones heard */
    size_t hyp_words, hyp_words_missed, ref_words, ref_words_missed;
    size_t gap_run;           /* longest run of hypothesis phones with no match */
} vix_calib_counts;

/* Hypotheses' agreement is measured among this many of the best results:
 * one alignment per hypothesis and phrase of each, a few percent of what
 * the rerank already spends on its 100 candidates. */
#define VIX_CALIB_AGREE_RANKS 5

#define VIX_CALIB_VERSION 2
#define VIX_CALIB_ID_MAX 256

typedef struct vix_calib_model {
    double w[VIX_CALIB_NFEAT + 1]; /* w[0] intercept, w[1 + f] feature f */
} vix_calib_model;

typedef struct vix_calib {
    char encoder_id[VIX_CALIB_ID_MAX]; /* index encoder id the features came from */
    char rerank_id[VIX_CALIB_ID_MAX];  /* vix_resolver_rerank_id() of the resolver */
    char provenance[512];              /* one line: data, sizes, held-out figures */
    /* The top probability below which a resolve answers "no match" unless
     * configured otherwise: chosen when fitting, on held-out simulated
     * queries, as the one that keeps 90 % of their right answers. */
    double no_match_threshold;
    vix_calib_model top, rest;
} vix_calib;

/* Name of feature f (VIX_CF_*), as written in the file header. */
const char *vix_calib_feature_name(int f);

/* Features of n ranked results (best first) into ret_x[n][VIX_CALIB_NFEAT].
 * score[], first[] and agree[] hold n_all >= n entries so the last
 * result's margin sees the one below it; n_hyps and n_phones describe the
 * query; fit[] holds n entries, or is NULL without a rerank (no alignment:
 * the worst values, fit 8 nats per phone and no coverage). */
void vix_calib_features(const double *score, const double *first, const double *agree,
                        const vix_calib_fitness *fit, size_t n, size_t n_all, size_t n_hyps,
                        size_t n_phones, double *ret_x);

/* Adds one hypothesis's alignment to acc with weight w; finish with
 * vix_calib_fit_finish over the summed weight. */
void vix_calib_fit_add(vix_calib_fitness *acc, double w, const vix_calib_counts *c);
void vix_calib_fit_finish(vix_calib_fitness *acc, double wsum);

/* P(right) of one feature vector under one model. */
double vix_calib_predict(const vix_calib_model *m, const double *x);

/* Probabilities of n ranked results (x as from vix_calib_features): each in
 * [0, 1], non-increasing, summing to at most 1. */
void vix_calib_probs(const vix_calib *c, const double *x, size_t n, double *ret_p);

/* L2-regularised logistic regression by Newton's method (IRLS) on
 * standardised features; l2 is the penalty on the standardised weights
 * (intercept free), the returned weights are for the raw features.
 * ERD_EINVAL for no rows or l2 < 0, ERD_EINTERNAL if Newton fails to
 * converge. */
int vix_calib_fit(const double *x, const uint8_t *y, size_t n, double l2, vix_calib_model *ret,
                  erd_diag *diag);

/* Written to a temporary file and renamed into place. */
int vix_calib_save(const vix_calib *c, const char *path, erd_diag *diag);

/* ERD_ENOTFOUND / ERD_EIO when unreadable, ERD_ECORRUPT for a damaged or
 * malformed file, ERD_EMISMATCH for another version or feature set.
 * *ret set only on success. */
int vix_calib_load(const char *path, vix_calib *ret, erd_diag *diag);

#endif
