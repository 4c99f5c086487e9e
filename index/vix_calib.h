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
    /* Where the name and the hypotheses disagree, not only how much: a
     * missing title whose sibling is in the catalog ("... and the X" asked,
     * "... and the Y" held) aligns as well overall as a garbled right
     * answer, but its mismatch sits in whole words, and the same words in
     * every hypothesis, while recogniser noise moves from one to the next. */
    VIX_CF_WORD_HIT_MIN,  /* weighted mean of the least share of a name word's phones matched */
    VIX_CF_HYP_WORD_HIT_MIN, /* likewise of a hypothesis word's phones */
    VIX_CF_WORST_SPAN,    /* weighted mean of the costliest run of steps between matches, nats */
    VIX_CF_STEADY_MISS,   /* 1 - the least share of a name word matched across the hypotheses */
    VIX_CF_DISTINCT_HIT,  /* weighted share of the name's phones matched in the words its rival
                           * (the next result; for those below, the top one) lacks */
    /* How sure the recogniser was: n-best lists that agree with each other
     * but not with the name point to another name, lists that scatter to
     * a garbled one. */
    VIX_CF_SPREAD,        /* weighted mean extra cost per phone of each hypothesis against the first */
    VIX_CF_ASR_GAP,       /* log(1 + (first score - second score) / 1000), 0 without scores */
    /* A title said whole can match a sibling's shortened form exactly ("X"
     * against "X: Y" when X itself is not in the catalog): how much of the
     * result's name its matched phrases stand for. */
    VIX_CF_SHORT_FORM,    /* weighted share of hypotheses whose best phrase is a shortened form */
    VIX_CF_WHOLE_SHARE,   /* weighted mean of that phrase's phones / its entity's longest
                           * name or alias (1 for a name or alias as written) */
    /* What was said may be no catalog request at all, however well some
     * name explains its phones: its words say so (index/vix_command.h). */
    VIX_CF_COMMAND,       /* weighted mean of the hypotheses' command log-odds, 0 without
                           * a command table */
    VIX_CALIB_NFEAT
};

/* The alignment side of a result's features (VIX_CF_FIT .. VIX_CF_REF_COVER):
 * its best phrase per hypothesis, aligned under the rerank's channel. */
/* Name words followed across hypotheses (VIX_CF_STEADY_MISS); later ones
 * are not. */
#define VIX_CALIB_WORDS_MAX 24

typedef struct vix_calib_fitness {
    double fit, best_fit, cover, ref_cover, word_miss, ref_word_miss, len_ratio, gap_run;
    double word_hit_min, hyp_word_hit_min, worst_span, steady_miss, distinct_hit;
    double short_form, whole_share;
    size_t n_added; /* hypotheses added so far */
    /* per word of the phrase the first hypothesis aligned with: the
     * weighted share of its phones matched, over the hypotheses that
     * aligned the same phrase */
    size_t phrase, n_words;
    double words_w, word_hit[VIX_CALIB_WORDS_MAX];
} vix_calib_fitness;

/* What one hypothesis's alignment with its best phrase counts. */
typedef struct vix_calib_counts {
    double extra;             /* its extra cost */
    size_t n_hyp, n_ref;      /* phones */
    size_t matched, heard;    /* hypothesis phones matched; phrase phones heard */
    size_t hyp_words, hyp_words_missed, ref_words, ref_words_missed;
    size_t gap_run;           /* longest run of hypothesis phones with no match */
    double worst_span;        /* costliest run of steps between two matches, nats */
    double hyp_word_hit_min;  /* least share of a hypothesis word's phones matched */
    size_t phrase;            /* which of the entity's phrases was aligned */
    size_t n_words;           /* of the phrase, the first VIX_CALIB_WORDS_MAX: */
    double word_hit[VIX_CALIB_WORDS_MAX]; /* share of each one's phones matched */
    double word_hit_min;      /* least of all its words' shares */
    double distinct_hit;      /* share of its phones matched in words a rival name lacks
                               * (in all its words when it shares every one) */
    int derived;              /* the phrase is a shortened form */
    double whole_share;       /* its phones / the entity's longest name or alias */
} vix_calib_counts;

/* A cost per phone past which an alignment explains nothing: the cap keeps
 * one garbled hypothesis from dominating a weighted mean. */
#define VIX_CALIB_FIT_MAX 8.0

/* What a query brings to every result's features. */
typedef struct vix_calib_query {
    size_t n_hyps, n_phones; /* hypotheses used; phones of the first */
    double spread;           /* VIX_CF_SPREAD */
    double asr_gap;          /* VIX_CF_ASR_GAP */
    double command;          /* VIX_CF_COMMAND */
} vix_calib_query;

/* Hypotheses' agreement is measured among this many of the best results:
 * one alignment per hypothesis and phrase of each, a few percent of what
 * the rerank already spends on its 100 candidates. */
#define VIX_CALIB_AGREE_RANKS 5

#define VIX_CALIB_VERSION 3
#define VIX_CALIB_ID_MAX 256
#define VIX_CALIB_HIDDEN_MAX 32

/* A logistic regression, optionally with a layer of tanh units beside it:
 * the evidence of a whole-word mismatch, of a scattered n-best list and of
 * a poor alignment does not add up linearly (a poor fit says "missing"
 * when the list agrees with itself, "garbled" when it does not). */
typedef struct vix_calib_model {
    double w[VIX_CALIB_NFEAT + 1]; /* w[0] intercept, w[1 + f] feature f */
    size_t n_hidden;               /* 0: the linear model alone */
    /* unit j sees the standardised features z_f = (x_f - mean[f]) * scale[f]:
     * logit += out[j] * tanh(in[j][0] + sum_f in[j][1 + f] * z_f) */
    double mean[VIX_CALIB_NFEAT], scale[VIX_CALIB_NFEAT];
    double in[VIX_CALIB_HIDDEN_MAX][VIX_CALIB_NFEAT + 1];
    double out[VIX_CALIB_HIDDEN_MAX];
} vix_calib_model;

/* How vix_calib_fit_hidden trains the units. */
typedef struct vix_calib_hidden_opts {
    size_t units;  /* 1..VIX_CALIB_HIDDEN_MAX */
    size_t steps;  /* full-batch Adam steps */
    double l2;     /* penalty on the units' weights, per row */
    double rate;   /* Adam step size */
    uint64_t seed; /* the units' starting weights */
} vix_calib_hidden_opts;

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
 * result's margin sees the one below it; q describes the query; fit[]
 * holds n entries, or is NULL without a rerank (no alignment: the worst
 * values, fit 8 nats per phone and no coverage). */
void vix_calib_features(const double *score, const double *first, const double *agree,
                        const vix_calib_fitness *fit, size_t n, size_t n_all,
                        const vix_calib_query *q, double *ret_x);

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

/* Adds tanh units to a linear model m fitted on the same rows (by
 * vix_calib_fit) and trains them with it, on the mean log loss, starting
 * from m itself (the units' output weights start at 0).  Deterministic for
 * the same rows and options.  ERD_EINVAL for bad options, ERD_ENOMEM. */
int vix_calib_fit_hidden(const double *x, const uint8_t *y, size_t n,
                         const vix_calib_hidden_opts *opts, vix_calib_model *m, erd_diag *diag);

/* Written to a temporary file and renamed into place. */
int vix_calib_save(const vix_calib *c, const char *path, erd_diag *diag);

/* ERD_ENOTFOUND / ERD_EIO when unreadable, ERD_ECORRUPT for a damaged or
 * malformed file, ERD_EMISMATCH for another version or feature set.
 * *ret set only on success. */
int vix_calib_load(const char *path, vix_calib *ret, erd_diag *diag);

#endif
