/* Grapheme-to-phoneme through espeak-ng.  espeak-ng keeps global state and is
 * not thread-safe: every call into it goes through one process-wide lock, and
 * a bounded LRU cache keyed by normalised text keeps repeated phrases (n-best
 * lists repeat words a lot) off that lock. */
#ifndef PHO_G2P_H
#define PHO_G2P_H

#include <stddef.h>
#include <stdint.h>

#include "proto/erd_error.h"

/* Longest IPA string produced for one text, bytes including NUL. */
#define PHO_IPA_MAX 4096

typedef struct pho_g2p pho_g2p;

typedef struct pho_g2p_stats {
    uint64_t lookups;
    uint64_t hits;
    uint64_t espeak_calls;
    uint64_t espeak_nanos; /* time spent inside espeak-ng, lock held */
} pho_g2p_stats;

/* voice: espeak-ng voice name, e.g. "en-us"; "VOICE+cmu" adds a second
 * pronunciation from the CMU dictionary (pho_g2p_second_ipa).  cache_entries: LRU capacity (0
 * disables the cache).  espeak-ng is initialised once per process; several
 * handles may exist and share it.  *ret set only on success. */
int pho_g2p_create(const char *voice, size_t cache_entries, pho_g2p **ret, erd_diag *diag);
void pho_g2p_destroy(pho_g2p *g2p); /* accepts NULL */

/* text must already be normalised (pho_normalize).  Writes the IPA
 * transcription, words separated by single spaces, stress marks kept, into
 * out (NUL-terminated, at most outcap bytes).  Thread-safe. */
int pho_g2p_ipa(pho_g2p *g2p, const char *text, char *out, size_t outcap, erd_diag *diag);

/* Identifies espeak-ng version and voice, e.g. "espeak-ng 1.51 en-us"; used to
 * key cached phonemes stored on disk so a different espeak-ng invalidates them. */
const char *pho_g2p_id(const pho_g2p *g2p);

void pho_g2p_get_stats(pho_g2p *g2p, pho_g2p_stats *ret);

/* Whether the handle gives a second pronunciation ("+cmu" voices). */
int pho_g2p_has_second(const pho_g2p *g2p);

/* The second pronunciation of a normalised text, as pho_g2p_ipa writes
 * the first: ERD_ENOTFOUND when the handle has none or the text has no
 * complete one (pho_cmu_ipa).  Thread-safe. */
int pho_g2p_second_ipa(pho_g2p *g2p, const char *text, char *out, size_t outcap, erd_diag *diag);

#endif
