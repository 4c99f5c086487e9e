/* Generic English phrases for the ASR-error simulator: single common words,
 * WordNet multi-word expressions, person and place names, and made-up
 * book/film-like titles built from real words by templates.  Everything comes
 * from WordNet and the CMU pronouncing dictionary shipped with pocketsphinx, so
 * the phonetic encoder never trains on the evaluation catalogs.  Output is a
 * pure function of the seed, the kinds and the two word lists. */
#ifndef PHO_PHRASEGEN_H
#define PHO_PHRASEGEN_H

#include <stddef.h>
#include <stdint.h>

#include "proto/erd_error.h"

#define PHO_PHRASEGEN_WORDNET_DIR "/usr/share/wordnet"
#define PHO_PHRASEGEN_CMUDICT "/usr/share/pocketsphinx/model/en-us/cmudict-en-us.dict"

/* Longest phrase produced, bytes including NUL. */
#define PHO_PHRASE_MAX 256

enum pho_phrase_kind {
    PHO_KIND_WORD = 1 << 0,   /* "lantern" */
    PHO_KIND_PHRASE = 1 << 1, /* "access road", "quiet harbor" */
    PHO_KIND_NAME = 1 << 2,   /* "Carl Sandburg", "Prince Edward Island" */
    PHO_KIND_TITLE = 1 << 3,  /* "The Silent Harbor: Part 2" */
    PHO_KIND_ALL = (1 << 4) - 1,
};

typedef struct pho_phrasegen pho_phrasegen;

typedef struct pho_phrasegen_opts {
    const char *wordnet_dir; /* NULL: PHO_PHRASEGEN_WORDNET_DIR */
    const char *cmudict;     /* NULL: PHO_PHRASEGEN_CMUDICT */
} pho_phrasegen_opts;

typedef struct pho_phrasegen_stats {
    size_t nouns, adjectives, verbs, adverbs; /* common single words */
    size_t expressions;                       /* multi-word expressions */
    size_t people, places;                    /* proper names */
} pho_phrasegen_stats;

/* Loads the word pools (about a second).  opts may be NULL. */
int pho_phrasegen_create(const pho_phrasegen_opts *opts, pho_phrasegen **ret, erd_diag *diag);
void pho_phrasegen_destroy(pho_phrasegen *g); /* accepts NULL */

void pho_phrasegen_get_stats(const pho_phrasegen *g, pho_phrasegen_stats *ret);

/* Parses "words,phrases,names,titles" (any non-empty subset, also "all") into
 * a PHO_KIND_* mask. */
int pho_phrasegen_parse_kinds(const char *list, unsigned *ret, erd_diag *diag);

/* Called once per phrase, in order; a negative return stops generation and is
 * passed back. */
typedef int (*pho_phrase_fn)(void *ctx, const char *phrase, enum pho_phrase_kind kind);

/* Emits count distinct phrases (compared case-insensitively) of the given
 * kinds, weighted toward titles and multi-word phrases as entity names are.
 * Fails with ERD_ETOOLONG when the pools cannot supply that many distinct
 * phrases. */
int pho_phrasegen_run(pho_phrasegen *g, uint64_t seed, size_t count, unsigned kinds,
                      pho_phrase_fn fn, void *ctx, erd_diag *diag);

#endif
