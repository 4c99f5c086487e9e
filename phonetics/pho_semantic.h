/* Meaning-based phrase vectors, to sit beside the phonetic ones.
 *
 * A phonetic encoder cannot know that "part 2" and "part two", or "car" and
 * "automobile", name the same thing; a word embedding can.  Two sources:
 *
 *  - the semantic model ("semantic:PATH"): fastText-style word + hashed
 *    character 3..5-gram embeddings trained in C by skip-gram with negative
 *    sampling on WordNet and generated equivalences (pho_sem_train); a
 *    word's vector is the mean of its own row and its n-gram rows, so words
 *    never seen in training still land near their seen inflections;
 *  - standard pretrained word vectors in the .vec text format ("vec:PATH").
 *
 * Either way a phrase vector is the weighted mean of its words' unit
 * vectors, L2-normalised.  The fused encoder ("fused:W:P|S") concatenates a
 * phonetic and a semantic encoder so one inner product scores both. */
#ifndef PHO_SEMANTIC_H
#define PHO_SEMANTIC_H

#include <stddef.h>
#include <stdint.h>

#include "proto/erd_error.h"

#define PHO_SEM_VERSION 1
#define PHO_SEM_META_MAX 256 /* provenance text, bytes including the NUL */
#define PHO_SEM_WORD_MAX 64  /* longest vocabulary word, bytes including the NUL */
#define PHO_SEM_DIM_MAX 1024
#define PHO_SEM_MINN 3 /* character n-gram orders, boundary markers included */
#define PHO_SEM_MAXN 5
#define PHO_SEM_BUCKET_BITS_MIN 8
#define PHO_SEM_BUCKET_BITS_MAX 22
#define PHO_SEM_WORDS_MAX 1000000

/* A trained model as the encoder uses it: rows quantised to int8 with one
 * float scale each (a quarter of float32's size; the phrase vector is a mean
 * of dozens of rows, which averages the rounding away). */
typedef struct pho_sem_model pho_sem_model;

/* Float weights as training produces them, before quantisation. */
typedef struct pho_sem_weights {
    uint32_t dim, n_words, bucket_bits;
    char **words;   /* n_words NUL-terminated words, distinct */
    float *weight;  /* n_words phrase weights (smooth inverse frequency) */
    float *rows;    /* (n_words + 2^bucket_bits) x dim: words first, then buckets */
} pho_sem_weights;

/* Quantises w into a model; *ret set only on success. */
int pho_sem_model_from_weights(const pho_sem_weights *w, pho_sem_model **ret, erd_diag *diag);
void pho_sem_model_destroy(pho_sem_model *m); /* accepts NULL */

/* Writes the model (temporary file beside path, then rename) with meta as
 * its provenance; *ret_checksum (may be NULL) is the file's FNV-1a 64. */
int pho_sem_model_save(const pho_sem_model *m, const char *path, const char *meta,
                       uint64_t *ret_checksum, erd_diag *diag);
/* ERD_ECORRUPT for truncated or damaged files, ERD_EMISMATCH for another
 * format version, ERD_ENOTFOUND/ERD_EIO when unreadable.  *ret set only on
 * success. */
int pho_sem_model_load(const char *path, pho_sem_model **ret, erd_diag *diag);
int pho_sem_model_load_buffer(const void *buf, size_t len, pho_sem_model **ret, erd_diag *diag);

uint32_t pho_sem_model_dim(const pho_sem_model *m);
uint32_t pho_sem_model_words(const pho_sem_model *m);
uint64_t pho_sem_model_checksum(const pho_sem_model *m); /* 0 unless loaded or saved */
const char *pho_sem_model_meta(const pho_sem_model *m);

/* One word's vector (dim floats, not normalised; a trained model's vectors
 * are centred on the vocabulary mean); all zero for an empty word.  Returns 1 when the word is in the vocabulary, 0 when it was made of
 * n-grams alone, negative on bad arguments. */
int pho_sem_model_word(const pho_sem_model *m, const char *word, size_t len, float *out);
/* Phrase vector of normalised text (words split at spaces), L2-normalised;
 * all zero for text without words. */
int pho_sem_model_phrase(const pho_sem_model *m, const char *text, float *out);

/* Character n-gram bucket ids of a word ("<word>", orders PHO_SEM_MINN..
 * PHO_SEM_MAXN); writes at most cap and returns how many there were. */
size_t pho_sem_ngrams(const char *word, size_t len, uint32_t bucket_bits, uint32_t *out, size_t cap);

/* ---- training ---- */

typedef struct pho_sem_train_opts {
    const char *wordnet_dir; /* default /usr/share/wordnet */
    uint64_t seed;
    uint32_t dim;          /* default 64 */
    uint32_t bucket_bits;  /* default 16 */
    uint32_t max_words;    /* vocabulary cap, most frequent first; default 30000 */
    uint32_t min_count;    /* default 2 */
    uint32_t epochs;       /* default 5 */
    uint32_t window;       /* default 5 */
    uint32_t negatives;    /* default 5 */
    float lr;              /* default 0.05 */
    double subsample;      /* frequent-word discard threshold; default 1e-4, 0 keeps all */
    uint32_t threads;      /* default 2; results do not depend on it */
    uint32_t retrofit;     /* iterations pulling equivalent words together; default 10, 0 off */
    /* Called after every round; may be NULL. */
    void (*progress)(void *user, uint32_t epoch, double done, double loss);
    void *progress_user;
} pho_sem_train_opts;

void pho_sem_train_opts_init(pho_sem_train_opts *o);

typedef struct pho_sem_train_result {
    uint64_t sentences, tokens, corpus_hash;
    uint64_t wordnet_sentences, generated_sentences;
    uint32_t vocab;
    double loss; /* mean loss over the last epoch */
} pho_sem_train_result;

/* Builds the corpus (WordNet synonyms and glosses, morphological
 * exceptions, generated number / ordinal / roman numeral / abbreviation
 * equivalences) and trains; the same seed gives the same weights for any
 * thread count.  *ret_w filled only on success (pho_sem_weights_free). */
int pho_sem_train(const pho_sem_train_opts *o, pho_sem_weights *ret_w,
                  pho_sem_train_result *ret_res, erd_diag *diag);
/* The same on sentences given as normalised text, one per element (tests). */
int pho_sem_train_text(const pho_sem_train_opts *o, const char *const *sentences, size_t n,
                       pho_sem_weights *ret_w, pho_sem_train_result *ret_res, erd_diag *diag);
void pho_sem_weights_free(pho_sem_weights *w); /* accepts NULL; leaves w zeroed */

/* ---- standard pretrained vectors (.vec text) ---- */

#define PHO_VEC_WORDS_MAX 200000 /* words kept; .vec files list frequent words first */
#define PHO_VEC_LINE_MAX (1 << 16)

typedef struct pho_vec_model pho_vec_model;

/* Reads "N D" (optional) then "word v1 .. vD" lines.  ERD_EPARSE naming the
 * line for malformed input; keeps the first PHO_VEC_WORDS_MAX words.  *ret
 * set only on success. */
int pho_vec_load(const char *path, pho_vec_model **ret, erd_diag *diag);
void pho_vec_destroy(pho_vec_model *v); /* accepts NULL */
uint32_t pho_vec_dim(const pho_vec_model *v);
uint32_t pho_vec_words(const pho_vec_model *v);
/* Plain mean of the unit vectors of the words found, L2-normalised; all zero
 * when no word is known. */
int pho_vec_phrase(const pho_vec_model *v, const char *text, float *out);

/* ---- encoder-interface constructors (pho_encoder.c's table) ---- */

struct pho_encoder;
/* args ":PATH" or the id form ":PATH#xxxxxxxx" (checksum verified) */
int pho__semantic_create(const char *args, struct pho_encoder **ret, erd_diag *diag);
int pho__vec_create(const char *args, struct pho_encoder **ret, erd_diag *diag);
/* args ":W:PHONETIC|SEMANTIC" */
int pho__fused_create(const char *args, struct pho_encoder **ret, erd_diag *diag);

/* Longest encoder id the index metadata keeps (vix_index_meta.encoder_id). */
#define PHO_ENCODER_ID_MAX 128

#endif
