/* Training the learned encoder on (ASR hypothesis, intended phrase) pairs.
 *
 * Loss: symmetric InfoNCE over a batch -- each hypothesis against every
 * intended phrase in the batch plus one hard negative per pair (a phrase
 * that sounds close to its own under the current model, re-mined every
 * epoch), and each intended phrase against every hypothesis.  Optimiser:
 * Adam with a cosine-decayed learning rate.
 *
 * Deterministic under the seed for a given thread count: the data order and
 * the negatives are functions of (seed, epoch, position), the batch is split
 * over threads in fixed contiguous slices, and per-thread gradients are
 * summed in thread order.
 *
 * A slice of the intended phrases (chosen by a hash of their phonemes, not by
 * the seed, so every run is judged on the same slice) is held out with all of
 * its hypotheses; the epoch whose weights recall held-out phrases best is
 * the one returned. */
#ifndef PHO_TRAIN_H
#define PHO_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "phonetics/pho_encoder.h"
#include "phonetics/pho_model.h"

/* Pairs in memory, phonemes only: reading files and G2P are the caller's. */
typedef struct pho_trainset pho_trainset;

int pho_trainset_create(pho_trainset **ret);
void pho_trainset_destroy(pho_trainset *ts); /* accepts NULL */
/* Adds an intended phrase, or finds it: phrases are the same when their
 * tokens are (homophones are one phrase to the encoder, and must not be
 * each other's negatives).  text is kept for reports.  *ret_idx set only on
 * success; ERD_EEMPTY for no tokens. */
int pho_trainset_add_phrase(pho_trainset *ts, const char *text, const pho_token *tokens, size_t n,
                            uint32_t *ret_idx);
/* Adds a hypothesis heard for phrase idx; ERD_EEMPTY for no tokens. */
int pho_trainset_add_pair(pho_trainset *ts, uint32_t phrase, const pho_token *tokens, size_t n);
/* Adds a hypothesis made by a noise channel (pho_channel_sample) rather than
 * heard by a recogniser: it is trained on but never part of the held-out
 * evaluation, and dropped when its phrase falls in the held-out slice. */
int pho_trainset_add_synthetic_pair(pho_trainset *ts, uint32_t phrase, const pho_token *tokens,
                                    size_t n);
size_t pho_trainset_n_phrases(const pho_trainset *ts);
size_t pho_trainset_n_pairs(const pho_trainset *ts);

typedef struct pho_train_progress {
    unsigned epoch, epochs; /* epoch counts from 1; 0 is the initial model when fine-tuning */
    double loss;            /* mean batch loss over the epoch */
    double recall1, recall5; /* held-out hypotheses finding their phrase */
    double seconds;         /* since training started */
    int best;               /* this epoch is the best so far */
} pho_train_progress;

typedef void (*pho_train_progress_cb)(void *user, const pho_train_progress *p);

/* The loss of one softmax row.  Many simulated pairs are hallucinations that
 * share nothing with what was said: wrong labels for a contrastive encoder.
 * InfoNCE (cross-entropy) follows them all the way; the active-passive loss
 * (Ma et al., ICML 2020: normalised cross-entropy + reverse cross-entropy)
 * bounds what one wrong pair can pull, and label smoothing softens the
 * target. */
typedef enum pho_loss_kind {
    PHO_LOSS_INFONCE = 0,
    PHO_LOSS_APL = 1,
} pho_loss_kind;

typedef struct pho_loss_opts {
    pho_loss_kind kind;
    double smoothing;   /* InfoNCE: share of the target spread over the negatives, 0..0.5 */
    double alpha, beta; /* APL: weights of the normalised and the reverse cross-entropy */
} pho_loss_opts;

/* InfoNCE, no smoothing; APL weights 1 and 1 when chosen. */
void pho_loss_opts_init(pho_loss_opts *o);
/* "infonce" or "apl"; ERD_EINVAL otherwise. */
int pho_loss_kind_parse(const char *name, pho_loss_kind *ret);
const char *pho_loss_kind_name(pho_loss_kind k);

/* Quantisation-aware output (erd train --squash; after "Squashed weight
 * distribution for low bit quantization of deep models", Interspeech 2022,
 * applied to the encoder's output instead of its weights): the model gets
 * the squashed output stage (PHO_OUT_SQUASH), the loss a regulariser pulling
 * each output dimension's batch mean and variance towards those of a
 * uniform distribution on [-r, r], r = sqrt(3 / D) (mean 0, variance 1 / D:
 * the variance a unit vector's coordinates have on average), and the
 * contrastive loss sees the outputs fake-quantised (pho_quant.h) on that
 * range with a straight-through gradient (zero outside the range). */
typedef struct pho_squash_opts {
    unsigned bits; /* fake quantisation width (8, 4 or 2); 0: none */
    double reg;    /* weight of the mean/variance regulariser; 0: none */
} pho_squash_opts;

/* Half-width of the range the squash aims the output at, for out_dim D. */
double pho_squash_range(size_t D);

typedef struct pho_train_opts {
    pho_model_arch arch;
    uint64_t seed;
    unsigned epochs;
    unsigned batch;   /* pairs per step */
    unsigned threads; /* batch slices, each on its own thread */
    double holdout;   /* share of intended phrases held out, 0 .. 0.5 */
    double lr;        /* Adam step size at the start of the cosine schedule */
    double scale;     /* inverse temperature of the softmax */
    unsigned hard_k;  /* hard negatives drawn from this many nearest phrases; 0: none */
    double augment;   /* per-phone rate of extra random substitutions and deletions
                       * applied to hypotheses each time they are drawn; 0: none */
    /* Fine-tuning: start from these weights instead of a seeded
     * initialisation (arch is then taken from it).  Borrowed, not copied
     * beyond the call.  The held-out slice scores it first as "epoch 0", so
     * the result is never worse on that slice than where it started. */
    const pho_model *init;
    pho_loss_opts loss;
    unsigned patience; /* stop after this many epochs without a better held-out recall; 0: never */
    /* Noise-aware pair weighting: a pair's weight is its phone overlap
     * (Dice of phone unigrams and bigrams, hypothesis vs phrase) over this
     * knee, capped at 1 and floored at PHO_PAIR_WEIGHT_MIN; 0: every pair 1. */
    double pair_knee;
    /* all zero: off, and training is what it was bit for bit; anything set
     * turns the model's output stage to PHO_OUT_SQUASH */
    pho_squash_opts squash;
    pho_train_progress_cb progress;
    void *progress_user;
} pho_train_opts;

/* Defaults: bag, emb 128, 2^14 buckets, 128 dims; 10 epochs of batch 128;
 * 2 threads; holdout 0.05; lr 0.005; scale 20; hard_k 10; augment 0.15;
 * InfoNCE; no patience; no pair weighting. */
void pho_train_opts_init(pho_train_opts *o);

typedef struct pho_train_result {
    double recall1, recall5; /* of the returned model on the held-out slice */
    unsigned best_epoch;
    unsigned epochs_run; /* fewer than asked when patience stopped it */
    size_t train_pairs, heldout_pairs, train_phrases, heldout_phrases;
    double seconds;
} pho_train_result;

/* Trains a model; *ret_model (the best epoch's weights) and *ret set only on
 * success. */
int pho_train(const pho_trainset *ts, const pho_train_opts *o, pho_model **ret_model,
              pho_train_result *ret, erd_diag *diag);

/* Held-out recall of any encoder on the same slice pho_train holds out for
 * this holdout share: the catalog is every intended phrase (the encoder is
 * fitted on it first), the queries the held-out hypotheses. */
int pho_train_eval_encoder(const pho_trainset *ts, double holdout, pho_encoder *enc,
                           double *ret_recall1, double *ret_recall5, erd_diag *diag);

/* One batch as the loss sees it: nq hypotheses, nc >= nq candidate phrases of
 * which candidate a < nq is hypothesis a's intended phrase and the rest are
 * negatives; keys identify phrases, so a candidate or hypothesis sharing the
 * key of the positive is left out of that row's softmax rather than treated
 * as a negative. */
typedef struct pho_batch {
    size_t nq, nc;
    const pho_token *const *q_tokens;
    const size_t *q_len;
    const uint32_t *q_key;
    const pho_token *const *c_tokens;
    const size_t *c_len;
    const uint32_t *c_key;
    const pho_loss_opts *loss; /* NULL: plain InfoNCE */
    const float *q_weight;     /* per hypothesis row and its phrase's row; NULL: all 1 */
    const pho_squash_opts *squash; /* NULL: none (the model's output stage is its own) */
} pho_batch;

#define PHO_PAIR_WEIGHT_MIN 0.05

/* Phone overlap of a hypothesis with its phrase, 0..1: Dice coefficient of
 * their multisets of phone unigrams and bigrams (stress and word starts
 * ignored). */
double pho_pair_overlap(const pho_token *a, size_t na, const pho_token *b, size_t nb);
/* The pair weight pho_train gives an overlap under knee (> 0). */
double pho_pair_weight(double overlap, double knee);

/* Loss of one batch, with its gradient added to grad (n_params floats);
 * single-threaded, for tests and tools.  *ret_loss set only on success. */
int pho_batch_loss(const pho_model *m, const pho_batch *b, double scale, float *grad,
                   double *ret_loss);

#endif
