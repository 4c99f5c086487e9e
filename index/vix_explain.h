/* Why a resolve answered as it did: for each result, the phrase (name,
 * alias or spoken short form) each hypothesis matched best, their
 * alignment step by step with the channel's costs, and every score on the
 * way to the final one.  Built from the same alignment the rerank scores
 * (vix_rerank_align), so its numbers are the resolve's own.
 *
 * The same alignments give the calibration its open-set features
 * (VIX_CF_FIT .. VIX_CF_REF_COVER): how well a result's names explain what
 * was heard, not only how it ranks. */
#ifndef VIX_EXPLAIN_H
#define VIX_EXPLAIN_H

#include <stddef.h>
#include <stdint.h>

#include "index/vix_calib.h"
#include "index/vix_rerank.h"
#include "phonetics/pho_text.h"
#include "proto/erd_error.h"

#define VIX_EXPLAIN_OPS_MAX (2 * VIX_RR_TOKENS_MAX)

/* One hypothesis against one result's best phrase for it. */
typedef struct vix_explain_align {
    size_t phrase;   /* index among the entity's phrases; SIZE_MAX when it has none */
    int derived;     /* the phrase is a shortened form, scored VIX_DERIVED_SCALE lower */
    size_t n_ref;
    uint8_t ref[VIX_RR_TOKENS_MAX]; /* the phrase's packed phones */
    float extra;     /* the steps' costs added up, before the clamp at 0 */
    double score;    /* the pair's score as the rerank used it (derived scale included) */
    size_t n_ops;
    vix_rerank_op ops[VIX_EXPLAIN_OPS_MAX];
} vix_explain_align;

typedef struct vix_explain_hyp {
    size_t index;    /* place in the request's list */
    char text[PHO_TEXT_MAX]; /* normalised */
    size_t n_phones;
    uint8_t phones[VIX_RR_TOKENS_MAX]; /* packed, as aligned */
    double weight;   /* evidence weight in the first stage and the rerank */
} vix_explain_hyp;

typedef struct vix_explain_result {
    double first;    /* first-stage weighted mean cosine */
    double second;   /* weighted mean of the hypotheses' alignment scores */
    double rerank;   /* its own blend: what results are ranked by, but for an order model
                      * (vix_order.h) moving the top ones */
    double features[VIX_CALIB_NFEAT];
    double score;    /* the score answered (the probability when calibrated) */
    double order;    /* the order model's score (vix_order.h), when ordered */
    int ordered;     /* it was among the top results the order model placed */
    vix_explain_align *align; /* one per hypothesis used; NULL without rerank */
} vix_explain_result;

typedef struct vix_explain {
    size_t n_hyps, n_results;
    vix_explain_hyp *hyps;
    vix_explain_result *results;
    int reranked, calibrated;
    double rerank_weight, temperature; /* rerank options the scores came from */
    /* entities the first stage found, and how many of them, best first, the
     * rerank aligned within its budget (0 without rerank) */
    size_t candidates, aligned;
} vix_explain;

/* Room for n_hyps hypotheses and n_results results, zeroed. */
int vix_explain_create(size_t n_hyps, size_t n_results, vix_explain **ret, erd_diag *diag);
void vix_explain_free(vix_explain *ex); /* accepts NULL */

/* Aligns each hypothesis with its best of phrases[0..n_phrases) and adds
 * the alignments up into *ret_fit.  The best is picks[h * stride] when
 * picks is given (vix_rerank_score_best's choice), else the rerank's
 * maximum is searched again.  work is one scratch alignment; when
 * ret_align is not NULL, hypothesis h's alignment is copied to
 * ret_align[h].  rival (NULL: none) is the name the result is told apart
 * from (VIX_CF_DISTINCT_HIT).  ERD_ENOMEM leaves *ret_fit unset. */
int vix_explain_fit(const vix_rerank *rr, const vix_rerank_hyp *hyps, size_t n_hyps,
                    const vix_rerank_phrase *phrases, size_t n_phrases, const uint16_t *picks,
                    size_t stride, const vix_rerank_phrase *rival, vix_explain_align *work,
                    vix_calib_fitness *ret_fit, vix_explain_align *ret_align);

/* "match", "sub", "ins" or "del". */
const char *vix_explain_op_name(int op);

#endif
