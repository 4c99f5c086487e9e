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

/* Counts of one alignment: phones matched and heard, and words (runs
 * from one word start to the next) that got no match or were not heard. */
static void vix__count(const vix_explain_align *al, size_t n_hyp, vix_calib_counts *ret)
{
    vix_calib_counts c = {.extra = al->extra, .n_hyp = n_hyp, .n_ref = al->n_ref};
    int hyp_word_hit = 1, ref_word_hit = 1;
    size_t run = 0;
    for (size_t i = 0; i < al->n_ops; i++) {
        const vix_rerank_op *op = &al->ops[i];
        if (op->op == VIX_RR_OP_MATCH)
            run = 0;
        else if (op->op != VIX_RR_OP_DEL && ++run > c.gap_run)
            c.gap_run = run;
        int has_hyp = op->op != VIX_RR_OP_DEL, has_ref = op->op != VIX_RR_OP_INS;
        if (has_hyp && (op->hyp & VIX_RR_WORD_START || c.hyp_words == 0)) {
            c.hyp_words_missed += !hyp_word_hit;
            c.hyp_words++;
            hyp_word_hit = 0;
        }
        if (has_ref && (op->ref & VIX_RR_WORD_START || c.ref_words == 0)) {
            c.ref_words_missed += !ref_word_hit;
            c.ref_words++;
            ref_word_hit = 0;
        }
        c.matched += op->op == VIX_RR_OP_MATCH;
        c.heard += op->op == VIX_RR_OP_MATCH || op->op == VIX_RR_OP_SUB;
        hyp_word_hit |= op->op == VIX_RR_OP_MATCH;
        ref_word_hit |= op->op == VIX_RR_OP_MATCH || op->op == VIX_RR_OP_SUB;
    }
    c.hyp_words_missed += c.hyp_words && !hyp_word_hit;
    c.ref_words_missed += c.ref_words && !ref_word_hit;
    *ret = c;
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
        vix_calib_counts c;
        vix__count(best, hyps[h].n, &c);
        vix_calib_fit_add(&acc, hyps[h].weight, &c);
    }
    vix_calib_fit_finish(&acc, wsum);
    *ret_fit = acc;
    return ERD_OK;
}
