/* Second-stage rerank: the vector search finds candidates by shared phone
 * n-grams; this rescoring aligns each hypothesis's phones with each of a
 * candidate's indexed phrases under the learned noise channel
 * (phonetics/pho_channel.h) and blends the alignment score with the
 * first-stage score.  The alignment sees order and the recogniser's actual
 * confusions, which a bag of n-grams cannot.
 *
 * Phones are packed one byte each (phone id | VIX_RR_WORD_START) so a
 * catalog's phrases stay small in memory. */
#ifndef VIX_RERANK_H
#define VIX_RERANK_H

#include <stddef.h>
#include <stdint.h>

#include "phonetics/pho_channel.h"
#include "proto/erd_error.h"

#define VIX_RR_WORD_START 0x80u
/* Longest phrase the alignment looks at; longer ones are cut (the first
 * phones of a title are what people say). */
#define VIX_RR_TOKENS_MAX 96

/* About 0.4 ms of alignment on a 2020s server core (0.39 ns a cell with
 * AVX-512): the dev queries' p99 rerank was 0.84 ms, its longest 2.8 ms. */
#define VIX_RR_BUDGET 1000000

enum {
    VIX_RR_GLOBAL = 0, /* the hypothesis is aligned with the whole phrase */
    VIX_RR_LOCAL = 1,  /* phones before and after what was heard cost opts.skip each */
};

typedef struct vix_rerank_opts {
    double weight;     /* share of the alignment score in the blend, 0..1 (default 0.7) */
    size_t candidates; /* distinct entities rescored per resolve (default 100) */
    /* Alignment cells (hypothesis phones times phrase phones, summed) a
     * resolve may spend: past them the rest of the candidates, the first
     * stage's least likely, go unaligned and drop out (never fewer than
     * VIX_RERANK_FLOOR or k).  0 = no limit; default VIX_RR_BUDGET.  A
     * bound on latency, not part of the rerank id. */
    size_t budget;
    int mode;          /* VIX_RR_* (default VIX_RR_LOCAL) */
    double skip;       /* nats per unheard leading/trailing phone in local mode (default 1.0) */
    double temperature; /* score = exp(-extra cost per heard phone / temperature) (default 2.0) */
    /* A learned ranker (index/vix_ranker.h) instead of the hand-set blend:
     * its file, relative to the channel file's folder unless absolute;
     * "" for the blend (default). */
    char ranker[256];
    /* A command table (index/vix_command.h) for the calibration's
     * "command" feature, found like the ranker; "" for none (default). */
    char command[256];
    /* The order of the top results (index/vix_order.h), found like the
     * ranker; "" for the rerank's own (default). */
    char order[256];
} vix_rerank_opts;

void vix_rerank_opts_init(vix_rerank_opts *opts);

/* Parses a rerank spec: "off" (*ret_enabled = 0) or
 * "CHANNEL_FILE[,weight=W][,candidates=N][,budget=CELLS][,mode=local|global][,skip=S]
 * [,temperature=T][,ranker=FILE][,command=FILE][,order=FILE]",
 * starting from the defaults.  The file name is copied into path. */
int vix_rerank_spec_parse(const char *spec, char *path, size_t path_cap, vix_rerank_opts *ret,
                          int *ret_enabled, erd_diag *diag);

typedef struct vix_rerank vix_rerank;

/* Copies what it needs from ch; ch may be destroyed afterwards. */
int vix_rerank_create(const pho_channel *ch, const vix_rerank_opts *opts, vix_rerank **ret,
                      erd_diag *diag);
void vix_rerank_destroy(vix_rerank *rr); /* accepts NULL */
const vix_rerank_opts *vix_rerank_get_opts(const vix_rerank *rr);

/* Packs up to cap tokens; returns the number written. */
size_t vix_rerank_pack(const pho_token *tokens, size_t n, uint8_t *out, size_t cap);

typedef struct vix_rerank_phrase {
    const uint8_t *tokens; /* packed */
    uint16_t n;
    uint8_t derived; /* a shortened form: scored VIX_DERIVED_SCALE lower */
} vix_rerank_phrase;

typedef struct vix_rerank_hyp {
    const uint8_t *tokens; /* packed */
    size_t n;
    double weight; /* the first stage's weight of this hypothesis */
} vix_rerank_hyp;

typedef struct vix_rerank_cand {
    const vix_rerank_phrase *phrases;
    size_t n_phrases;
    double first;  /* first-stage score, 0..1 */
    double second; /* out: weighted mean alignment score, 0..1 */
    double score;  /* out: the blend */
} vix_rerank_cand;

/* Scores every candidate against every hypothesis (fills second and score);
 * the caller sorts.  Never fails: a candidate without phrases keeps second
 * = 0. */
void vix_rerank_score(const vix_rerank *rr, const vix_rerank_hyp *hyps, size_t n_hyps,
                      vix_rerank_cand *cands, size_t n_cands);
/* vix_rerank_score, also writing hypothesis h's best phrase score for
 * candidate c (0 without phrases) to ret_by_hyp[h * n_cands + c] when
 * ret_by_hyp is not NULL: what the calibration's agreement feature needs,
 * without aligning the pairs again. */
void vix_rerank_score_each(const vix_rerank *rr, const vix_rerank_hyp *hyps, size_t n_hyps,
                           vix_rerank_cand *cands, size_t n_cands, double *ret_by_hyp);

/* vix_rerank_score_each, also writing which phrase of candidate c gave
 * hypothesis h its best score (its index among the candidate's phrases;
 * VIX_RR_NO_PHRASE when none scored above 0) to ret_best_phrase[h *
 * n_cands + c] when that is not NULL: what the calibration and the
 * explanations align again step by step. */
#define VIX_RR_NO_PHRASE UINT16_MAX
void vix_rerank_score_best(const vix_rerank *rr, const vix_rerank_hyp *hyps, size_t n_hyps,
                           vix_rerank_cand *cands, size_t n_cands, double *ret_by_hyp,
                           uint16_t *ret_best_phrase);

/* Alignment score of one hypothesis against one phrase, 0..1 (1 = heard
 * exactly), for tests and tools. */
double vix_rerank_pair(const vix_rerank *rr, const uint8_t *hyp, size_t n_hyp,
                       const uint8_t *ref, size_t n_ref);

/* One step of an alignment: a reference phone heard as itself (match) or
 * as another (sub), a hypothesis phone nothing was said for (ins), a
 * reference phone not heard (del; in local mode an unheard head or tail
 * phone costs at most opts.skip).  cost is the channel's cost of the step
 * minus the cost of hearing its hypothesis phone as itself, so the steps
 * of an alignment add up to the extra cost the score is computed from. */
enum { VIX_RR_OP_MATCH, VIX_RR_OP_SUB, VIX_RR_OP_INS, VIX_RR_OP_DEL };

typedef struct vix_rerank_op {
    uint8_t op;  /* VIX_RR_OP_* */
    uint8_t hyp; /* packed hypothesis phone; 0 for del */
    uint8_t ref; /* packed reference phone; 0 for ins */
    float cost;
} vix_rerank_op;

/* The best alignment of hyp against ref (the one vix_rerank_pair scores:
 * the same float operations, the same tie-breaks), its steps written in
 * order to ret_ops (room for n_hyp + n_ref, each cut at VIX_RR_TOKENS_MAX)
 * and their number to *ret_n_ops.  Returns the extra cost before its clamp
 * at 0: vix_rerank_pair = exp(-max(0, extra) / (n_hyp * temperature)).
 * ERD_ENOMEM leaves the outputs untouched. */
int vix_rerank_align(const vix_rerank *rr, const uint8_t *hyp, size_t n_hyp, const uint8_t *ref,
                     size_t n_ref, vix_rerank_op *ret_ops, size_t *ret_n_ops, float *ret_extra);

/* Score of a pair from its extra cost (what vix_rerank_pair returns). */
double vix_rerank_similarity(const vix_rerank *rr, float extra, size_t n_hyp);

#endif
