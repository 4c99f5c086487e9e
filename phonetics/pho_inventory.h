/* A fixed phoneme inventory for General American English, and the tokenizer
 * that maps espeak-ng IPA onto it.  Diphthongs and affricates (eɪ, aɪ, oʊ,
 * tʃ, dʒ ...) are single symbols; stress and word starts are features of a
 * token, not symbols of their own, so models see one sequence whatever the
 * prosody. */
#ifndef PHO_INVENTORY_H
#define PHO_INVENTORY_H

#include <stddef.h>
#include <stdint.h>

enum {
    PHO_STRESS_NONE = 0,
    PHO_STRESS_PRIMARY = 1,
    PHO_STRESS_SECONDARY = 2,
};

typedef struct pho_token {
    uint8_t phone;      /* 1 .. PHO_N_PHONES-1; 0 is never produced */
    uint8_t stress;     /* PHO_STRESS_*, set on vowels only */
    uint8_t word_start; /* 1 on the first phone of each word */
    uint8_t reserved;
} pho_token;

/* Number of phone ids including the reserved id 0 (padding for models). */
#define PHO_N_PHONES 48
/* Most tokens a single text can produce. */
#define PHO_TOKENS_MAX 512

/* Printable IPA symbol of a phone id ("tʃ"), "?" when out of range. */
const char *pho_phone_symbol(unsigned phone);
/* true for vowels and diphthongs (including syllabic r). */
int pho_phone_is_vowel(unsigned phone);
/* FNV-1a hash over the inventory table: models record it so a model trained
 * on another inventory is refused at load time. */
uint64_t pho_inventory_hash(void);

/* Tokenizes an IPA string from pho_g2p_ipa.  Unknown symbols are skipped;
 * stress marks set the stress of the next vowel; a space starts a new word.
 * Returns ERD_OK and sets *ret_n, or ERD_ETOOLONG when more than cap tokens
 * would be produced, ERD_EEMPTY when none are. */
int pho_tokenize(const char *ipa, pho_token *out, size_t cap, size_t *ret_n);

/* Writes the tokens as space-separated symbols (for debugging/CLI output). */
int pho_tokens_format(const pho_token *tokens, size_t n, char *out, size_t outcap);

#endif
