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
#include <stdio.h>
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

/* One word's phones; ERD_ENOTFOUND for a word the lexicon gives none
 * (digits) or a phone this table lacks.  Lock held. */
static int pho__cmu_word(const char *word, char *out, size_t cap, size_t *len)
{
    cst_val *phones = lex_lookup(pho__cmu_lex, word, NULL, NULL);
    int rc = phones ? ERD_OK : ERD_ENOTFOUND;
    for (const cst_val *v = phones; rc == ERD_OK && v; v = val_cdr(v))
        rc = pho__cmu_phone(val_string(val_car(v)), out, cap, len);
    delete_val(phones);
    return rc;
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
