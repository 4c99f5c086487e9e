/* Text normalisation ahead of G2P, and the match key used to judge answers. */
#ifndef PHO_TEXT_H
#define PHO_TEXT_H

#include <stdbool.h>
#include <stddef.h>

/* Longest normalised text we handle, in bytes including the NUL. */
#define PHO_TEXT_MAX 1024

/* true when buf[0..len) is well-formed UTF-8 (no overlongs, no surrogates,
 * nothing above U+10FFFF) and holds no NUL byte. */
bool pho_utf8_valid(const char *buf, size_t len);

/* Normalises text for G2P: Unicode letters folded to lower case (Latin-1 and
 * Latin Extended-A accents folded to their ASCII base letter), "&" spoken as
 * "and", "+" as "plus", "%" as "percent", digits kept for espeak-ng to speak, apostrophes
 * inside words kept ("don't"), every other punctuation or symbol becomes a
 * word break, runs of white space collapse to one space, no leading or
 * trailing space.  Writes a NUL-terminated string of at most outcap bytes.
 * Returns ERD_OK; ERD_EUTF8 for invalid UTF-8; ERD_ETOOLONG when the result
 * does not fit; ERD_EEMPTY when nothing speakable remains.  *ret_len (may be
 * NULL) is set only on success. */
int pho_normalize(const char *text, size_t len, char *out, size_t outcap, size_t *ret_len);

/* The key two names must share to count as "the same title" in evaluation:
 * lower-case ASCII letters and digits, accents folded, punctuation removed,
 * single spaces between words.  Same return codes as pho_normalize, except
 * that an empty key is allowed (returns ERD_OK with out = ""). */
int pho_match_key(const char *text, size_t len, char *out, size_t outcap);

#endif
