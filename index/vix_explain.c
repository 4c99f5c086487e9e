#include "index/vix_explain.h"

#include <math.h>
#include <stdbool.h>
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

/* Hypothesis h's best phrase, aligned with its steps into *best: the
 * rerank's own maximum over phrases (scored without steps, as the rerank
 * does), so the same score; only that phrase is aligned again for them. */
static int vix__best_phrase(const vix_rerank *rr, const vix_rerank_hyp *h,
                            const vix_rerank_phrase *phrases, size_t n_phrases, size_t known,
                            vix_explain_align *best)
{
    size_t pick = SIZE_MAX;
    double top = 0;
    /* the rerank said which (past 65,534 phrases it cannot): no search */
    if (known < n_phrases)
        pick = known, n_phrases = 0;
    for (size_t p = 0; p < n_phrases; p++) {
        const vix_rerank_phrase *ph = &phrases[p];
        double s = n_phrases == 1 ? 1 : vix_rerank_pair(rr, h->tokens, h->n, ph->tokens, ph->n);
        if (ph->derived)
            s *= VIX_DERIVED_SCALE;
        if (s > top) {
            top = s;
            pick = p;
        }
    }
    best->phrase = pick;
    best->n_ops = 0;
    best->n_ref = 0;
    best->score = 0;
    if (pick == SIZE_MAX)
        return ERD_OK;
    const vix_rerank_phrase *ph = &phrases[pick];
    if (vix_rerank_align(rr, h->tokens, h->n, ph->tokens, ph->n, best->ops, &best->n_ops,
                         &best->extra) < 0)
        return ERD_ENOMEM;
    best->score = vix_rerank_similarity(rr, best->extra, h->n);
    if (ph->derived)
        best->score *= VIX_DERIVED_SCALE;
    best->derived = ph->derived;
    best->n_ref = ph->n < VIX_RR_TOKENS_MAX ? ph->n : VIX_RR_TOKENS_MAX;
    memcpy(best->ref, ph->tokens, best->n_ref);
    return ERD_OK;
}

/* Copies an alignment's fields and the steps in use. */
static void vix__align_copy(vix_explain_align *dst, const vix_explain_align *src)
{
    memcpy(dst, src, offsetof(vix_explain_align, ops));
    memcpy(dst->ops, src->ops, src->n_ops * sizeof *src->ops);
}

/* Phones of one word of a side of an alignment, and how many matched. */
typedef struct vix__word {
    size_t phones, matched;
} vix__word;

static double vix__word_share(vix__word w)
{
    return w.phones ? (double)w.matched / (double)w.phones : 1;
}

/* One step of one side: a new word starts at a word-start phone (or the
 * side's first phone); the finished word's share goes to *least, and to
 * shares[] while there is room. */
static void vix__word_step(vix__word *w, size_t *n_words, int starts, int matched, double *least,
                           double *shares, size_t *n_shares)
{
    if (starts || *n_words == 0) {
        if (*n_words) {
            double share = vix__word_share(*w);
            *least = share < *least ? share : *least;
            if (shares && *n_shares < VIX_CALIB_WORDS_MAX)
                shares[(*n_shares)++] = share;
        }
        ++*n_words;
        *w = (vix__word){0};
    }
    w->phones++;
    w->matched += matched != 0;
}

/* End of the word of packed phones that starts at i. */
static size_t vix__word_end(const uint8_t *t, size_t n, size_t i)
{
    while (++i < n && !(t[i] & VIX_RR_WORD_START))
        ;
    return i;
}

/* ret_shared[i] = 1 for each phone of ref[0..n) in a word that rival also
 * has (the same phones): what tells a name from its sibling is the rest. */
static void vix__mark_shared(const uint8_t *ref, size_t n, const vix_rerank_phrase *rival,
                             uint8_t *ret_shared)
{
    memset(ret_shared, 0, n);
    for (size_t i = 0, e; rival && i < n; i = e) {
        e = vix__word_end(ref, n, i);
        size_t rn = rival->n < VIX_RR_TOKENS_MAX ? rival->n : VIX_RR_TOKENS_MAX;
        for (size_t j = 0, f; j < rn; j = f) {
            f = vix__word_end(rival->tokens, rn, j);
            bool same = f - j == e - i;
            for (size_t k = 0; same && k < e - i; k++)
                same = ((ref[i + k] ^ rival->tokens[j + k]) & ~VIX_RR_WORD_START) == 0;
            if (same) {
                memset(ret_shared + i, 1, e - i);
                break;
            }
        }
    }
}

/* Counts of one alignment: phones matched and heard, words (runs from one
 * word start to the next) that got no match or were not heard, the share
 * matched of each word and of the words rival lacks, and the runs of steps
 * between matches. */
static void vix__count(const vix_explain_align *al, size_t n_hyp, const vix_rerank_phrase *rival,
                       vix_calib_counts *ret)
{
    uint8_t shared[VIX_RR_TOKENS_MAX];
    size_t ref_at = 0, distinct = 0, distinct_matched = 0;
    vix__mark_shared(al->ref, al->n_ref, rival, shared);
    vix_calib_counts c = {.extra = al->extra, .n_hyp = n_hyp, .n_ref = al->n_ref,
                          .phrase = al->phrase, .word_hit_min = 1, .hyp_word_hit_min = 1};
    int hyp_word_hit = 1, ref_word_hit = 1;
    size_t run = 0;
    double span = 0;
    vix__word hw = {0}, rw = {0};
    for (size_t i = 0; i < al->n_ops; i++) {
        const vix_rerank_op *op = &al->ops[i];
        int match = op->op == VIX_RR_OP_MATCH;
        span = match ? 0 : span + op->cost;
        c.worst_span = span > c.worst_span ? span : c.worst_span;
        if (match)
            run = 0;
        else if (op->op != VIX_RR_OP_DEL && ++run > c.gap_run)
            c.gap_run = run;
        int has_hyp = op->op != VIX_RR_OP_DEL, has_ref = op->op != VIX_RR_OP_INS;
        if (has_hyp && (op->hyp & VIX_RR_WORD_START || c.hyp_words == 0)) {
            c.hyp_words_missed += !hyp_word_hit;
            hyp_word_hit = 0;
        }
        if (has_ref && (op->ref & VIX_RR_WORD_START || c.ref_words == 0)) {
            c.ref_words_missed += !ref_word_hit;
            ref_word_hit = 0;
        }
        if (has_hyp)
            vix__word_step(&hw, &c.hyp_words, op->hyp & VIX_RR_WORD_START, match,
                           &c.hyp_word_hit_min, NULL, NULL);
        if (has_ref)
            vix__word_step(&rw, &c.ref_words, op->ref & VIX_RR_WORD_START, match,
                           &c.word_hit_min, c.word_hit, &c.n_words);
        if (has_ref && ref_at < al->n_ref && !shared[ref_at++]) {
            distinct++;
            distinct_matched += match;
        }
        c.matched += match;
        c.heard += match || op->op == VIX_RR_OP_SUB;
        hyp_word_hit |= match;
        ref_word_hit |= match || op->op == VIX_RR_OP_SUB;
    }
    c.hyp_words_missed += c.hyp_words && !hyp_word_hit;
    c.ref_words_missed += c.ref_words && !ref_word_hit;
    /* the last word of each side */
    if (c.hyp_words)
        c.hyp_word_hit_min = fmin(c.hyp_word_hit_min, vix__word_share(hw));
    if (c.ref_words) {
        c.word_hit_min = fmin(c.word_hit_min, vix__word_share(rw));
        if (c.n_words < VIX_CALIB_WORDS_MAX)
            c.word_hit[c.n_words++] = vix__word_share(rw);
    }
    /* a name whose every word its rival has (the rival a sequel of it):
     * then all of it */
    c.distinct_hit = distinct ? (double)distinct_matched / (double)distinct
                              : vix__word_share((vix__word){al->n_ref, c.matched});
    *ret = c;
}

/* Phones of the longest of the entity's phrases as written (its name or an
 * alias): what a shortened form is a share of. */
static size_t vix__longest_whole(const vix_rerank_phrase *phrases, size_t n_phrases)
{
    size_t longest = 0;
    for (size_t p = 0; p < n_phrases; p++)
        if (!phrases[p].derived && phrases[p].n > longest)
            longest = phrases[p].n;
    return longest;
}

int vix_explain_fit(const vix_rerank *rr, const vix_rerank_hyp *hyps, size_t n_hyps,
                    const vix_rerank_phrase *phrases, size_t n_phrases, const uint16_t *picks,
                    size_t stride, const vix_rerank_phrase *rival, vix_explain_align *work,
                    vix_calib_fitness *ret_fit, vix_explain_align *ret_align)
{
    vix_calib_fitness acc = {0};
    double wsum = 0;
    size_t aligned = SIZE_MAX; /* the hypothesis work[0] holds the alignment of */
    const size_t whole = vix__longest_whole(phrases, n_phrases);
    for (size_t h = 0; h < n_hyps; h++) {
        vix_explain_align *best = &work[0];
        /* n-best lists repeat the same sounds spelt two ways: a twin of the
         * hypothesis aligned last aligns the same */
        bool twin = aligned != SIZE_MAX && hyps[aligned].n == hyps[h].n &&
                    memcmp(hyps[aligned].tokens, hyps[h].tokens, hyps[h].n) == 0;
        if (!twin) {
            size_t known = picks && picks[h * stride] != VIX_RR_NO_PHRASE ? picks[h * stride]
                                                                            : SIZE_MAX;
            if (vix__best_phrase(rr, &hyps[h], phrases, n_phrases, known, best) < 0)
                return ERD_ENOMEM;
            aligned = h;
        }
        wsum += hyps[h].weight;
        if (ret_align)
            vix__align_copy(&ret_align[h], best);
        if (best->phrase == SIZE_MAX)
            continue;
        vix_calib_counts c;
        vix__count(best, hyps[h].n, rival, &c);
        const vix_rerank_phrase *ph = &phrases[best->phrase];
        c.derived = ph->derived;
        c.whole_share = !ph->derived || whole == 0 ? 1
                        : ph->n < whole ? (double)ph->n / (double)whole : 1;
        vix_calib_fit_add(&acc, hyps[h].weight, &c);
    }
    vix_calib_fit_finish(&acc, wsum);
    *ret_fit = acc;
    return ERD_OK;
}
