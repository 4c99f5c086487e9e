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

/* The ways people say a title: the name itself, the parts before and after a
 * colon ("Star Wars: Episode IV"), and each without a leading article.  Calls
 * cb for each distinct raw variant (not yet normalised); cb's non-zero return
 * stops the walk and is returned. */
int vix_phrase_variants(const char *name, int (*cb)(void *user, const char *variant, size_t len),
                        void *user);

#endif
