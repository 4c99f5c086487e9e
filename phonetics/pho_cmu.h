/* The CMU dictionary's pronunciation of a normalised text (libflite's
 * cmulex), a second pronunciation beside espeak-ng's. */
#ifndef PHO_CMU_H
#define PHO_CMU_H

#include <stdbool.h>
#include <stddef.h>

#include "proto/erd_error.h"

/* Longest word looked up, bytes including NUL. */
#define PHO_CMU_WORD_MAX 128

/* text: normalised (pho_normalize), words separated by single spaces.
 * Writes IPA in espeak-ng's conventions (stress marks before their vowel,
 * one space between words) into out.  ERD_ENOTFOUND when some word has no
 * phones (digits: the variant is skipped, not half made), ERD_EEMPTY for
 * no words, ERD_ETOOLONG when out or a word is too small, ERD_EG2P when
 * the lexicon did not load.  Thread-safe; out is set only on success. */
int pho_cmu_ipa(const char *text, char *out, size_t outcap);

/* Words' phones are remembered once looked up (default); off, every word
 * is looked up again (tests compare the two). */
void pho_cmu_cache_enable(bool on);

#endif
