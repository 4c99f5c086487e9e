/* The encoder interface: a phrase (normalised text + phoneme tokens) becomes a
 * unit vector whose inner product with another says how alike they sound.
 * The index and the server only see this interface, so the learned encoder
 * replaces the baseline without touching them.
 *
 * Some encoders carry per-catalog state fitted on the catalog's own names (the
 * baseline's IDF weights); that state is saved with the index and restored
 * before encoding queries. */
#ifndef PHO_ENCODER_H
#define PHO_ENCODER_H

#include <stddef.h>
#include <stdint.h>

#include "phonetics/pho_inventory.h"
#include "proto/erd_error.h"

typedef struct pho_encoder pho_encoder;

/* One phrase as the encoder sees it. */
typedef struct pho_phrase {
    const char *text;        /* normalised text (pho_normalize) */
    const pho_token *tokens; /* its phoneme tokens */
    size_t n_tokens;
} pho_phrase;

/* spec: "baseline" (the unlearned encoder, default dimension) or
 * "baseline:DIM"; later encoders add "model:PATH".  *ret set only on
 * success. */
int pho_encoder_create(const char *spec, pho_encoder **ret, erd_diag *diag);
void pho_encoder_destroy(pho_encoder *enc); /* accepts NULL */

/* Where encoders look for a model file named by a relative path that does
 * not exist from the working directory ("model:erd-siamese-v2.bin"), so an
 * index records a portable spec and the resolver finds the file wherever
 * erd runs.  Set once at start-up, before any encoder is created (not
 * thread-safe); NULL or "" clears it.  ERD_ETOOLONG for an over-long dir. */
int pho_encoder_set_model_dir(const char *dir);

/* The file a relative model name stands for under that rule (the name
 * itself when nothing better exists).  ERD_ETOOLONG when cap is too small. */
int pho_encoder_model_path(const char *name, char *ret_path, size_t cap);

/* Stable identifier recorded in index metadata, e.g. "baseline-ngram-v1/512". */
const char *pho_encoder_id(const pho_encoder *enc);
size_t pho_encoder_dim(const pho_encoder *enc);

/* Fits per-catalog state on the catalog's phrases (all of them, in one call).
 * Encoders without such state return ERD_OK and ignore the call.  Not
 * thread-safe with encode. */
int pho_encoder_fit(pho_encoder *enc, const pho_phrase *phrases, size_t n, erd_diag *diag);

/* Serialises the fitted state.  *ret_blob is malloc'd and owned by the caller
 * (free()); an encoder without state returns a zero-length blob (NULL). */
int pho_encoder_state_save(const pho_encoder *enc, void **ret_blob, size_t *ret_len);
/* Restores state saved by the same encoder id; ERD_EMISMATCH/ECORRUPT otherwise. */
int pho_encoder_state_load(pho_encoder *enc, const void *blob, size_t len, erd_diag *diag);

/* Writes dim floats, L2-normalised (all zero only when the phrase has no
 * features at all).  Thread-safe for concurrent calls once fitted/loaded. */
int pho_encoder_encode(const pho_encoder *enc, const pho_phrase *phrase, float *out);

#endif
