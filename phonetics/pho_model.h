/* The learned phonetic encoder's network and its file format.
 *
 * One network encodes both sides (ASR hypotheses and catalog names): per
 * token, a phone embedding plus stress and word-start embeddings plus hashed
 * phone-bigram and -trigram embeddings; then either a width-3 convolution
 * with ReLU, mean- and max-pooled (PHO_ARCH_CONV), or a plain mean of the
 * token embeddings (PHO_ARCH_BAG); a linear projection to out_dim; L2
 * normalisation; optionally a squashed output (PHO_OUT_SQUASH).
 *
 * Parameters live in one float array so the optimiser, the gradient buffers
 * and the file see a single layout; pho_model_groups names its parts. */
#ifndef PHO_MODEL_H
#define PHO_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "phonetics/pho_inventory.h"
#include "proto/erd_error.h"

#define PHO_MODEL_VERSION 1
#define PHO_MODEL_META_MAX 256 /* bytes including the NUL */

/* Bounds on the architecture: they keep the encoder's stack use small
 * (everything it needs per phrase lives in a few fixed arrays). */
#define PHO_MODEL_EMB_MAX 256
#define PHO_MODEL_CONV_MAX 1024
#define PHO_MODEL_OUT_MAX 1024
#define PHO_MODEL_HASH_BITS_MIN 4
#define PHO_MODEL_HASH_BITS_MAX 22

enum { PHO_ARCH_CONV = 1, PHO_ARCH_BAG = 2 };

typedef struct pho_model_arch {
    uint32_t kind;      /* PHO_ARCH_* */
    uint32_t emb_dim;   /* token embedding width */
    uint32_t hash_bits; /* 2^hash_bits n-gram buckets */
    uint32_t conv_dim;  /* convolution channels (PHO_ARCH_CONV only; 0 for BAG) */
    uint32_t out_dim;   /* dimension of the phrase vector */
    /* PHO_OUT_SQUASH: the unit vector y is reparameterised as
     * erf(sqrt(D/2) y) and normalised again.  sqrt(D) y has unit variance per
     * dimension, so where it is near Gaussian the Gaussian CDF spreads it
     * near uniformly: what a few-bit scalar quantiser per dimension keeps
     * best (erd train --squash).  Stored in the file's kind word. */
    uint32_t output;
} pho_model_arch;

enum { PHO_OUT_PLAIN = 0, PHO_OUT_SQUASH = 1 };

typedef struct pho_model {
    pho_model_arch arch;
    size_t n_params;
    float *params; /* owned */
    /* views into params */
    float *e_phone;  /* PHO_N_PHONES x emb */
    float *e_stress; /* 3 x emb */
    float *e_word;   /* 2 x emb: not a word start / word start */
    float *e_hash;   /* 2^hash_bits x emb */
    float *conv_w;   /* 3*emb x conv (input-major: row k feeds every channel) */
    float *conv_b;   /* conv */
    float *proj_w;   /* pool_dim x out (input-major) */
    char meta[PHO_MODEL_META_MAX]; /* training provenance, free text */
    uint64_t checksum;             /* of the file it was loaded from or saved to; 0 otherwise */
} pho_model;

/* A named slice of the parameter array (for gradient checks and reports). */
typedef struct pho_param_group {
    const char *name;
    size_t offset, count;
} pho_param_group;

#define PHO_MODEL_GROUPS_MAX 8

/* ERD_EINVAL with a message when the architecture is outside the bounds. */
int pho_model_arch_check(const pho_model_arch *a, erd_diag *diag);
/* Width of the pooled vector the projection reads. */
size_t pho_model_pool_dim(const pho_model_arch *a);

/* A model with random weights drawn from seed (deterministic).  *ret set only
 * on success. */
int pho_model_create(const pho_model_arch *arch, uint64_t seed, pho_model **ret, erd_diag *diag);
void pho_model_destroy(pho_model *m); /* accepts NULL */
/* Deep copy; *ret set only on success. */
int pho_model_clone(const pho_model *m, pho_model **ret);

/* Fills groups (capacity PHO_MODEL_GROUPS_MAX) and returns how many. */
size_t pho_model_groups(const pho_model *m, pho_param_group *groups);

/* Writes dim floats, L2-normalised; all zero for an empty phrase.  Uses only
 * the stack: safe to call from many threads on one model. */
int pho_model_encode(const pho_model *m, const pho_token *tokens, size_t n, float *out);

/* Saves to path (written to a temporary file beside it, then renamed), with
 * meta as the provenance string (cut to PHO_MODEL_META_MAX-1 bytes); sets
 * m->checksum on success. */
int pho_model_save(pho_model *m, const char *path, const char *meta, erd_diag *diag);
/* Loads and verifies a model file: ERD_ECORRUPT for truncated or damaged
 * files, ERD_EMISMATCH for another format version or phone inventory,
 * ERD_ENOTFOUND/ERD_EIO when it cannot be read.  *ret set only on success. */
int pho_model_load(const char *path, pho_model **ret, erd_diag *diag);
/* The same from a buffer (what pho_model_load reads the file into). */
int pho_model_load_buffer(const void *buf, size_t len, pho_model **ret, erd_diag *diag);

/* ---- training support: the same forward pass keeping what backward needs ---- */

/* Activations of one phrase; one per thread, reused across phrases. */
typedef struct pho_model_cache pho_model_cache;

int pho_model_cache_create(const pho_model_arch *arch, pho_model_cache **ret);
void pho_model_cache_destroy(pho_model_cache *c); /* accepts NULL */

/* Forward pass recording activations in c; out as pho_model_encode. */
int pho_model_forward(const pho_model *m, const pho_token *tokens, size_t n, pho_model_cache *c,
                      float *out);
/* Adds the gradient of the loss with respect to every parameter to grad
 * (n_params floats), given d_out, the loss gradient with respect to the
 * normalised output of the last pho_model_forward on c. */
void pho_model_backward(const pho_model *m, const pho_model_cache *c, const float *d_out,
                        float *grad);

/* The encoder-interface constructor for "model:PATH" specs (pho_encoder.c's
 * table); args is ":PATH" or the id form ":PATH#xxxxxxxx", whose checksum is
 * verified against the file. */
struct pho_encoder;
int pho__siamese_create(const char *args, struct pho_encoder **ret, erd_diag *diag);

#endif
