/* A phone noise channel learned from real recogniser errors: how likely a
 * recogniser that was told phone r writes phone h, drops r, or inserts a
 * phone of its own, and how often it moves word boundaries.
 *
 * It is estimated from (intended phrase, hypothesis) pairs by aligning their
 * phones (edit distance whose costs are the channel's own negative log
 * probabilities, re-estimated over a few hard-EM rounds), and serves two
 * uses: the resolver's second stage scores candidates by alignment cost
 * under it, and encoder training corrupts phone sequences by sampling from
 * it. */
#ifndef PHO_CHANNEL_H
#define PHO_CHANNEL_H

#include <stddef.h>
#include <stdint.h>

#include "phonetics/pho_inventory.h"
#include "proto/erd_error.h"

typedef struct pho_channel pho_channel;

/* Phone id 0 stands for "no phone": a deletion's hypothesis side. */
#define PHO_CHANNEL_EPS 0

enum {
    PHO_ALIGN_MATCH = 1, /* ref and hyp the same phone */
    PHO_ALIGN_SUB = 2,   /* ref heard as another phone */
    PHO_ALIGN_DEL = 3,   /* ref not heard (hyp = 0) */
    PHO_ALIGN_INS = 4,   /* hyp phone with no ref (ref = 0) */
};

typedef struct pho_align_op {
    uint8_t kind; /* PHO_ALIGN_* */
    uint8_t ref, hyp; /* phone ids, 0 on the missing side */
    uint8_t reserved;
} pho_align_op;

/* The channel as additive costs (natural-log negative probabilities) for
 * dynamic programmes: sub[r][h] for h = 1..47, sub[r][0] the deletion of r;
 * ins[h] the insertion of h (including the chance to insert at all);
 * boundary[r][h] for the word-start flags of an aligned pair. */
typedef struct pho_channel_costs {
    float sub[PHO_N_PHONES][PHO_N_PHONES];
    float ins[PHO_N_PHONES];
    float boundary[2][2];
} pho_channel_costs;

/* ---- estimation ---- */

typedef struct pho_channel_train_opts {
    unsigned rounds;  /* EM rounds (default 4); round 1 aligns with unit costs */
    double smoothing; /* add-k constant for every count (default 0.5) */
} pho_channel_train_opts;

typedef struct pho_channel_train_stats {
    size_t pairs, ref_phones, hyp_phones;
    double matches, subs, dels, ins;           /* from the final alignment */
    double boundary_kept, boundary_dropped, boundary_added;
    double cost_per_phone[16];                  /* mean alignment cost per ref phone, each round */
    unsigned rounds;
} pho_channel_train_stats;

typedef struct pho_channel_trainer pho_channel_trainer;

void pho_channel_train_opts_init(pho_channel_train_opts *opts);
int pho_channel_trainer_create(pho_channel_trainer **ret);
void pho_channel_trainer_destroy(pho_channel_trainer *tr); /* accepts NULL */
/* Copies one pair: ref is what was said, hyp what was recognised. */
int pho_channel_trainer_add(pho_channel_trainer *tr, const pho_token *ref, size_t n_ref,
                            const pho_token *hyp, size_t n_hyp);
size_t pho_channel_trainer_count(const pho_channel_trainer *tr);
/* Estimates a channel from every pair added.  stats may be NULL. */
int pho_channel_train(const pho_channel_trainer *tr, const pho_channel_train_opts *opts,
                      pho_channel **ret, pho_channel_train_stats *stats, erd_diag *diag);

void pho_channel_destroy(pho_channel *ch); /* accepts NULL */

/* ---- probabilities ---- */

/* P(hyp | ref) for ref 1..47, hyp 0..47 (0 = deleted); each ref's row sums to 1. */
double pho_channel_sub_prob(const pho_channel *ch, unsigned ref, unsigned hyp);
/* Chance that a phone is inserted before each ref phone (and at the end). */
double pho_channel_ins_rate(const pho_channel *ch);
/* Which phone an insertion is, hyp 1..47; sums to 1. */
double pho_channel_ins_prob(const pho_channel *ch, unsigned hyp);
/* P(hyp phone starts a word | ref phone starts a word = ref_ws), for an
 * aligned pair; inserted phones use ref_ws = 0. */
double pho_channel_boundary_prob(const pho_channel *ch, int ref_ws, int hyp_ws);
void pho_channel_costs_get(const pho_channel *ch, pho_channel_costs *ret);
/* Free-form provenance text saved with the channel ("" when none). */
const char *pho_channel_meta(const pho_channel *ch);
/* FNV-1a 64 over the file body, as saved or loaded (0 before either). */
uint64_t pho_channel_checksum(const pho_channel *ch);

/* ---- alignment ---- */

/* Least-cost alignment of hyp against ref under costs (NULL: unit edit
 * distance, ties broken towards substitution).  Writes the ops in order
 * into ops (cap at least n_ref + n_hyp) and their total cost.  ERD_ETOOLONG
 * when either side exceeds PHO_TOKENS_MAX. */
int pho_channel_align(const pho_channel_costs *costs, const pho_token *ref, size_t n_ref,
                      const pho_token *hyp, size_t n_hyp, pho_align_op *ops, size_t cap,
                      size_t *ret_n, double *ret_cost);

/* ---- file ---- */

/* A small text file: versioned header, the inventory hash, provenance, the
 * probabilities, and an FNV-1a 64 checksum of everything before it. */
int pho_channel_save(pho_channel *ch, const char *path, const char *meta, erd_diag *diag);
/* ERD_ENOTFOUND/EIO for a missing/unreadable file, ERD_ECORRUPT for a bad
 * checksum or malformed body, ERD_EMISMATCH for another inventory. */
int pho_channel_load(const char *path, pho_channel **ret, erd_diag *diag);

/* ---- sampling ---- */

/* Corrupts in[0..n) as the channel would, scaling every error probability
 * by strength (1 = as learned, 0 = copy), drawing from *rng (any seed; the
 * same seed gives the same output).  ERD_ETOOLONG when more than cap tokens
 * would be produced; ERD_EEMPTY when every phone was deleted (the caller
 * draws again or keeps the input). */
int pho_channel_sample(const pho_channel *ch, const pho_token *in, size_t n, double strength,
                       uint64_t *rng, pho_token *out, size_t cap, size_t *ret_n);

#endif
