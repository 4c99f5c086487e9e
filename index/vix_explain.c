#include "index/vix_explain.h"

#include <stdlib.h>
#include <string.h>

#include "index/vix_phrase.h"

int vix_explain_create(size_t n_hyps, size_t n_results, vix_explain **ret, erd_diag *diag)
{
    vix_explain *ex = calloc(1, sizeof *ex);
    if (ex) {
        ex->hyps = calloc(n_hyps ? n_hyps : 1, sizeof *ex->hyps);
        ex->results = calloc(n_results ? n_results : 1, sizeof *ex->results);
    }
    if (!ex || !ex->hyps || !ex->results) {
        vix_explain_free(ex);
        return erd_fail(diag, ERD_ENOMEM, "out of memory for an explanation");
    }
    *ret = ex;
    return ERD_OK;
}

void vix_explain_free(vix_explain *ex)
{
    if (!ex)
        return;
    for (size_t i = 0; i < ex->n_results; i++)
        free(ex->results[i].align);
    free(ex->hyps);
    free(ex->results);
    free(ex);
}

const char *vix_explain_op_name(int op)
{
    switch (op) {
    case VIX_RR_OP_MATCH: return "match";
    case VIX_RR_OP_SUB: return "sub";
    case VIX_RR_OP_INS: return "ins";
    case VIX_RR_OP_DEL: return "del";
    default: return "?";
    }
}

/* Hypothesis h's best phrase, aligned into *best (scratch used for the
 * others): the rerank's own maximum over phrases, so the same score. */
static int vix__best_phrase(const vix_rerank *rr, const vix_rerank_hyp *h,
                            const vix_rerank_phrase *phrases, size_t n_phrases,
                            vix_explain_align *best, vix_explain_align *scratch)
{
    best->phrase = SIZE_MAX;
    best->score = 0;
    best->n_ops = 0;
    best->n_ref = 0;
    for (size_t p = 0; p < n_phrases; p++) {
        const vix_rerank_phrase *ph = &phrases[p];
        if (vix_rerank_align(rr, h->tokens, h->n, ph->tokens, ph->n, scratch->ops,
                             &scratch->n_ops, &scratch->extra) < 0)
            return ERD_ENOMEM;
        double s = vix_rerank_similarity(rr, scratch->extra, h->n);
        if (ph->derived)
            s *= VIX_DERIVED_SCALE;
        if (!(s > best->score))
            continue;
        scratch->score = s;
        scratch->phrase = p;
        scratch->derived = ph->derived;
        scratch->n_ref = ph->n < VIX_RR_TOKENS_MAX ? ph->n : VIX_RR_TOKENS_MAX;
        memcpy(scratch->ref, ph->tokens, scratch->n_ref);
        /* only the steps written count: copy what is in use */
        memcpy(best, scratch, offsetof(vix_explain_align, ops));
        memcpy(best->ops, scratch->ops, scratch->n_ops * sizeof *scratch->ops);
    }
    return ERD_OK;
}

int vix_explain_fit(const vix_rerank *rr, const vix_rerank_hyp *hyps, size_t n_hyps,
                    const vix_rerank_phrase *phrases, size_t n_phrases, vix_explain_align *work,
                    vix_calib_fitness *ret_fit, vix_explain_align *ret_align)
{
    vix_calib_fitness acc = {0};
    double wsum = 0;
    for (size_t h = 0; h < n_hyps; h++) {
        vix_explain_align *best = &work[0];
        if (vix__best_phrase(rr, &hyps[h], phrases, n_phrases, best, &work[1]) < 0)
            return ERD_ENOMEM;
        wsum += hyps[h].weight;
        if (ret_align) {
            memcpy(&ret_align[h], best, offsetof(vix_explain_align, ops));
            memcpy(ret_align[h].ops, best->ops, best->n_ops * sizeof *best->ops);
        }
        if (best->phrase == SIZE_MAX)
            continue;
        size_t matched = 0, heard = 0;
        for (size_t i = 0; i < best->n_ops; i++) {
            matched += best->ops[i].op == VIX_RR_OP_MATCH;
            heard += best->ops[i].op == VIX_RR_OP_MATCH || best->ops[i].op == VIX_RR_OP_SUB;
        }
        vix_calib_fit_add(&acc, hyps[h].weight, best->extra, matched, heard, hyps[h].n,
                          best->n_ref);
    }
    vix_calib_fit_finish(&acc, wsum);
    *ret_fit = acc;
    return ERD_OK;
}
