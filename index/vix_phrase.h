/* Text to phoneme tokens, the path every catalog name and every hypothesis
 * takes, and the spoken variants a catalog name is indexed under. */
#ifndef VIX_PHRASE_H
#define VIX_PHRASE_H

#include <stddef.h>

#include "phonetics/pho_g2p.h"
#include "phonetics/pho_inventory.h"
#include "phonetics/pho_text.h"
#include "index/vix_store.h"

/* A phrase ready for the encoder; text and tokens owned by the struct. */
typedef struct vix_phrase {
    char text[PHO_TEXT_MAX];
    size_t n_tokens;
    pho_token tokens[PHO_TOKENS_MAX];
} vix_phrase;

/* Normalises text, gets its IPA (from the store's phoneme cache when store
 * is non-NULL, filling the cache on a miss) and tokenizes it.  *ret filled
 * only on success; ERD_EEMPTY when nothing speakable remains. */
int vix_phrase_prepare(pho_g2p *g2p, vix_store *cache, const char *text, size_t len,
                       vix_phrase *ret, erd_diag *diag);

/* The second pronunciation of a prepared phrase, when its G2P gives one
 * ("+cmu" voices) that differs from first's phones: same text, the CMU
 * dictionary's tokens.  ERD_ENOTFOUND when there is none; *ret set only on
 * success. */
int vix_phrase_second(pho_g2p *g2p, const vix_phrase *first, vix_phrase *ret, erd_diag *diag);

/* The pronunciations a catalog indexes and aligns one variant under (the
 * build, the loaded entity table and explain's texts all walk them here):
 * first as prepared, then for a name or alias as written (derived == 0)
 * the second one its G2P may give; short forms keep one, since their second
 * ones cost accuracy.  add(user, phrase, derived, is_second) is called for
 * each (second in *scratch); its nonzero return stops the walk and is
 * returned.  A failing G2P returns its negative code after first was added;
 * 0 otherwise. */
typedef int (*vix_pronunciation_fn)(void *user, const vix_phrase *ph, int derived, int is_second);
int vix_phrase_pronunciations(pho_g2p *g2p, const vix_phrase *first, int derived,
                              vix_phrase *scratch, vix_pronunciation_fn add, void *user,
                              erd_diag *diag);

/* vix_phrase_second, also copying the IPA its tokens came from into ret_ipa
 * (POST /v1/analyze's "second"). */
int vix_phrase_second_analyze(pho_g2p *g2p, const vix_phrase *first, vix_phrase *ret,
                              char *ret_ipa, size_t ipa_cap, erd_diag *diag);

/* vix_phrase_prepare without a cache, also copying the IPA the tokens came
 * from (cut as they were) into ret_ipa: what POST /v1/analyze shows. */
int vix_phrase_analyze(pho_g2p *g2p, const char *text, size_t len, vix_phrase *ret, char *ret_ipa,
                       size_t ipa_cap, erd_diag *diag);

/* Phonemes a build worked out while it held its read snapshot of the
 * entities.  Written to the cache then, every page they touch stays in the
 * WAL until the snapshot ends (SQLite cannot checkpoint past a reader): a
 * million-entity build grew it past 7 GB and spent its time searching it.
 * They wait here and go to the cache after the snapshot. */
typedef struct vix_phoneme_batch vix_phoneme_batch;
int vix_phoneme_batch_create(vix_phoneme_batch **ret, erd_diag *diag);
void vix_phoneme_batch_destroy(vix_phoneme_batch *batch); /* accepts NULL */
size_t vix_phoneme_batch_count(const vix_phoneme_batch *batch);

/* vix_phrase_prepare reading cache, but phonemes the cache lacks are looked
 * up in batch, and added to it (not to the cache) when new. */
int vix_phrase_prepare_batched(pho_g2p *g2p, vix_store *cache, vix_phoneme_batch *batch,
                               const char *text, size_t len, vix_phrase *ret, erd_diag *diag);

/* Writes the batch to cache in text order (neighbouring keys share pages),
 * a few thousand rows per transaction so live writers wait little, and
 * empties it.  On failure the rows already committed stay (a cache). */
int vix_phoneme_batch_flush(vix_phoneme_batch *batch, vix_store *cache, const char *g2p_id,
                            erd_diag *diag);

/* The ways people say a title: the name itself, the parts before and after a
 * colon ("Star Wars: Episode IV"), and each without a leading article.  Calls
 * cb for each distinct raw variant (not yet normalised), with derived = 0 for
 * the name as written and 1 for a shortened form; cb's non-zero return stops
 * the walk and is returned. */
typedef int (*vix_variant_cb)(void *user, const char *variant, size_t len, int derived);
int vix_phrase_variants(const char *name, vix_variant_cb cb, void *user);

/* vix_phrase_variants of an entity's name, then of each alias: every
 * phrase the index holds for it. */
struct vix_entity;
int vix_entity_variants(const struct vix_entity *entity, vix_variant_cb cb, void *user);

/* Shortened forms score slightly below the name as written, so an entity
 * whose full name is what was said wins a tie with one whose subtitle was
 * dropped ("The Hunger Games" vs "The Hunger Games: Official Companion"). */
#define VIX_DERIVED_SCALE 0.98f

#endif
