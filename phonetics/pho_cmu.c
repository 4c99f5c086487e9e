/* A second pronunciation from the CMU dictionary, through libflite's cmulex
 * (its lexicon and, for words it lacks, its letter-to-sound rules).
 *
 * Why: espeak-ng guesses how a name is said; the voices people hear and the
 * recogniser's own dictionary follow CMU's pronunciations, which often
 * differ in a name's vowels and stress.  A catalog indexed under both
 * pronunciations finds the entity through whichever a query's phones are
 * closer to (phonetics/models/README.md measures it).
 *
 * The phones come back in espeak-ng's IPA conventions (stress mark before
 * its vowel, words separated by one space) so that the one tokenizer reads
 * both.  flite's lexicon allocates as it looks up: one lock for all. */
#include "phonetics/pho_cmu.h"

#include <flite/flite.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "phonetics/pho_g2p.h"

cst_lexicon *cmu_lex_init(void); /* libflite_cmulex; its header is not installed */

static pthread_once_t pho__cmu_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t pho__cmu_mu = PTHREAD_MUTEX_INITIALIZER;
static cst_lexicon *pho__cmu_lex;

static void pho__cmu_init(void)
{
    pho__cmu_lex = cmu_lex_init();
}

/* ARPAbet as cmulex writes it (stress digit on vowels, "ax" for the reduced
 * vowel) to espeak-ng's IPA. */
static const struct {
    const char *arpa, *ipa;
} pho__cmu_phones[] = {
    {"aa", "ɑː"}, {"ae", "æ"},  {"ah", "ʌ"},  {"ao", "ɔː"}, {"aw", "aʊ"}, {"ax", "ə"},
    {"ay", "aɪ"}, {"eh", "ɛ"},  {"er", "ɜː"}, {"ey", "eɪ"}, {"ih", "ɪ"},  {"iy", "iː"},
    {"ow", "oʊ"}, {"oy", "ɔɪ"}, {"uh", "ʊ"},  {"uw", "uː"}, {"b", "b"},   {"ch", "tʃ"},
    {"d", "d"},   {"dh", "ð"},  {"f", "f"},   {"g", "ɡ"},   {"hh", "h"},  {"jh", "dʒ"},
    {"k", "k"},   {"l", "l"},   {"m", "m"},   {"n", "n"},   {"ng", "ŋ"},  {"p", "p"},
    {"r", "ɹ"},   {"s", "s"},   {"sh", "ʃ"},  {"t", "t"},   {"th", "θ"},  {"v", "v"},
    {"w", "w"},   {"y", "j"},   {"z", "z"},   {"zh", "ʒ"},
};

/* One cmulex phone ("ow1", "ax0", "n") appended as IPA. */
static int pho__cmu_phone(const char *p, char *out, size_t cap, size_t *len)
{
    size_t base = strcspn(p, "012");
    char stress = p[base];
    const char *ipa = NULL;
    for (size_t i = 0; i < sizeof pho__cmu_phones / sizeof pho__cmu_phones[0]; i++)
        if (strlen(pho__cmu_phones[i].arpa) == base && !strncmp(p, pho__cmu_phones[i].arpa, base))
            ipa = pho__cmu_phones[i].ipa;
    if (!ipa)
        return ERD_ENOTFOUND;
    /* unstressed ah and er are the reduced vowels, as espeak-ng writes them */
    if (stress == '0' && !strncmp(p, "ah", base))
        ipa = "ə";
    else if (stress == '0' && !strncmp(p, "er", base))
        ipa = "ɚ";
    const char *mark = stress == '1' ? "ˈ" : stress == '2' ? "ˌ" : "";
    int n = snprintf(out + *len, cap - *len, "%s%s", mark, ipa);
    if (n < 0 || (size_t)n >= cap - *len)
        return ERD_ETOOLONG;
    *len += (size_t)n;
    return ERD_OK;
}

/* One word's phones looked up; ERD_ENOTFOUND for a word the lexicon gives
 * none (digits) or a phone this table lacks.  Lock held. */
static int pho__cmu_lookup(const char *word, char *out, size_t cap, size_t *len)
{
    cst_val *phones = lex_lookup(pho__cmu_lex, word, NULL, NULL);
    int rc = phones ? ERD_OK : ERD_ENOTFOUND;
    for (const cst_val *v = phones; rc == ERD_OK && v; v = val_cdr(v))
        rc = pho__cmu_phone(val_string(val_car(v)), out, cap, len);
    delete_val(phones);
    return rc;
}

/* Words looked up before, with their IPA or their failure: a catalog's
 * names share most of their words, and a lookup (lexicon search, or the
 * letter-to-sound rules for a word it lacks, then the IPA) cost about 20 us
 * a name, a fifth of a rebuild with its phonemes cached and minutes at 10M.
 * Open addressing over a fixed table; once it is 3/4 full, words not in it
 * are looked up each time.  Lock held for all of it. */
#define PHO__CMU_SLOTS (1u << 18)
#define PHO__CMU_ARENA (16u << 20)

typedef struct pho__cmu_slot {
    uint32_t key; /* arena offset of "word\0ipa\0", 0 for an empty slot */
    int32_t rc;   /* the lookup's outcome: ERD_OK or its error */
} pho__cmu_slot;

static struct {
    pho__cmu_slot *slot;
    char *arena;
    size_t used, n;
    bool broken; /* out of memory once: no cache */
} pho__cmu_cache;
static _Atomic bool pho__cmu_cache_off;

void pho_cmu_cache_enable(bool on)
{
    atomic_store(&pho__cmu_cache_off, !on);
}

static uint32_t pho__cmu_hash(const char *w)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *w; w++)
        h = (h ^ (unsigned char)*w) * 16777619u;
    return h;
}

/* The slot holding word, or the empty one where it would go; NULL without
 * a table. */
static pho__cmu_slot *pho__cmu_find(const char *word)
{
    if (!pho__cmu_cache.slot) {
        if (pho__cmu_cache.broken)
            return NULL;
        pho__cmu_cache.slot = calloc(PHO__CMU_SLOTS, sizeof *pho__cmu_cache.slot);
        pho__cmu_cache.arena = malloc(PHO__CMU_ARENA);
        if (!pho__cmu_cache.slot || !pho__cmu_cache.arena) {
            free(pho__cmu_cache.slot);
            free(pho__cmu_cache.arena);
            pho__cmu_cache.slot = NULL;
            pho__cmu_cache.arena = NULL;
            pho__cmu_cache.broken = true;
            return NULL;
        }
        pho__cmu_cache.used = 1; /* offset 0 marks an empty slot */
    }
    for (uint32_t i = pho__cmu_hash(word) & (PHO__CMU_SLOTS - 1);;
         i = (i + 1) & (PHO__CMU_SLOTS - 1)) {
        pho__cmu_slot *sl = &pho__cmu_cache.slot[i];
        if (sl->key == 0 || strcmp(pho__cmu_cache.arena + sl->key, word) == 0)
            return sl;
    }
}

static void pho__cmu_remember(pho__cmu_slot *sl, const char *word, const char *ipa, size_t n,
                              int rc)
{
    size_t wl = strlen(word) + 1, need = wl + n + 1;
    if (pho__cmu_cache.n >= PHO__CMU_SLOTS / 4 * 3 ||
        need > PHO__CMU_ARENA - pho__cmu_cache.used)
        return;
    char *at = pho__cmu_cache.arena + pho__cmu_cache.used;
    memcpy(at, word, wl);
    memcpy(at + wl, ipa, n);
    at[wl + n] = '\0';
    sl->key = (uint32_t)pho__cmu_cache.used;
    sl->rc = rc;
    pho__cmu_cache.used += need;
    pho__cmu_cache.n++;
}

/* One word's phones appended to out at *len, from the cache or looked up
 * (and remembered).  Lock held. */
static int pho__cmu_word(const char *word, char *out, size_t cap, size_t *len)
{
    if (atomic_load(&pho__cmu_cache_off))
        return pho__cmu_lookup(word, out, cap, len);
    pho__cmu_slot *sl = pho__cmu_find(word);
    const char *ipa;
    size_t n;
    char one[PHO_IPA_MAX];
    int rc;
    if (sl && sl->key) {
        rc = sl->rc;
        ipa = pho__cmu_cache.arena + sl->key + strlen(pho__cmu_cache.arena + sl->key) + 1;
        n = strlen(ipa);
    } else {
        n = 0;
        rc = pho__cmu_lookup(word, one, sizeof one, &n);
        ipa = one;
        if (sl && rc != ERD_ETOOLONG) /* too long here need not be elsewhere */
            pho__cmu_remember(sl, word, one, rc == ERD_OK ? n : 0, rc);
    }
    if (rc != ERD_OK)
        return rc;
    if (n >= cap - *len)
        return ERD_ETOOLONG;
    memcpy(out + *len, ipa, n + 1);
    *len += n;
    return ERD_OK;
}

int pho_cmu_ipa(const char *text, char *out, size_t outcap)
{
    char word[PHO_CMU_WORD_MAX], buf[PHO_IPA_MAX];
    const size_t cap = outcap < sizeof buf ? outcap : sizeof buf;
    size_t len = 0;
    int rc = ERD_OK;
    if (!text || !out || outcap == 0)
        return ERD_EINVAL;
    pthread_once(&pho__cmu_once, pho__cmu_init);
    if (!pho__cmu_lex)
        return ERD_EG2P;
    pthread_mutex_lock(&pho__cmu_mu);
    for (const char *s = text; rc == ERD_OK && *s;) {
        size_t n = strcspn(s, " ");
        if (n >= sizeof word) {
            rc = ERD_ETOOLONG;
            break;
        }
        if (n > 0) {
            memcpy(word, s, n);
            word[n] = '\0';
            if (len > 0 && len + 1 < cap)
                buf[len++] = ' ';
            rc = pho__cmu_word(word, buf, cap, &len);
        }
        s += n + (s[n] == ' ');
    }
    pthread_mutex_unlock(&pho__cmu_mu);
    if (rc == ERD_OK && len == 0)
        rc = ERD_EEMPTY;
    if (rc == ERD_OK)
        memcpy(out, buf, len + 1); /* snprintf left buf terminated */
    return rc;
}
