/* The General American phone inventory and the espeak-ng IPA tokenizer.
 *
 * The mapping was checked against every symbol espeak-ng 1.51 en-us emitted
 * for the 25k names, aliases and authors of the book catalog.  Decisions:
 *  - r-coloured vowels come out of espeak as vowel + ɹ (ɑːɹ, ɔːɹ, ɛɹ, ɪɹ, ʊɹ)
 *    and stay two tokens, so no ids are spent on them.
 *  - oː appears almost only before ɹ ("four" fˈoːɹ next to "for" fˈɔːɹ);
 *    General American merges those, so oː maps to ɔ, not oʊ.
 *  - Flap ɾ and glottal stop ʔ map to t: espeak writes them mostly for a
 *    spelled t (Potter, button), and mapping back keeps "write"/"writer"
 *    sharing their n-grams.
 *  - Syllabic n̩ l̩ m̩ become ə + consonant, so "button" matches "butten".
 *  - ɐ -> ə, ᵻ -> ɪ (espeak's reduced vowels); foreign consonants espeak
 *    uses for names (x q ʁ ɬ ç ...) map to the nearest English phone.
 *  - Ignored on purpose: length marks, aspiration, combining tilde and
 *    syllabic marks elsewhere, digits (espeak emits "ɛl1" for some letter
 *    names), and "(xx)" language-switch tags espeak inserts around text in
 *    other scripts. */
#include "phonetics/pho_inventory.h"

#include <string.h>

#include "phonetics/pho_internal.h"
#include "proto/erd_error.h"

enum {
    P_I = 1, P_IH, P_EY, P_EH, P_AE, P_AA, P_AO, P_OW, P_UH, P_UW, P_AH, P_AX, P_ER, P_ERR,
    P_AY, P_AW, P_OY,
    P_P, P_B, P_T, P_D, P_K, P_G, P_F, P_V, P_TH, P_DH, P_S, P_Z, P_SH, P_ZH, P_HH,
    P_CH, P_JH, P_M, P_N, P_NG, P_L, P_R, P_W, P_Y,
    P_LAST_USED = P_Y,
};

_Static_assert(P_LAST_USED < PHO_N_PHONES, "inventory overflows PHO_N_PHONES");

static const char *const pho__symbols[PHO_N_PHONES] = {
    "<pad>",
    "i", "ɪ", "eɪ", "ɛ", "æ", "ɑ", "ɔ", "oʊ", "ʊ", "u", "ʌ", "ə", "ɚ", "ɜ", "aɪ", "aʊ", "ɔɪ",
    "p", "b", "t", "d", "k", "ɡ", "f", "v", "θ", "ð", "s", "z", "ʃ", "ʒ", "h",
    "tʃ", "dʒ", "m", "n", "ŋ", "l", "ɹ", "w", "j",
    /* spare ids, so a later phone does not change PHO_N_PHONES */
    "<unused>", "<unused>", "<unused>", "<unused>", "<unused>", "<unused>",
};

_Static_assert(P_LAST_USED + 1 + 6 == PHO_N_PHONES, "every phone id needs a symbol");

/* IPA sequence -> one or two phones.  Matched longest first. */
static const struct pho__map {
    const char *ipa;
    uint8_t p1, p2;
} pho__maps[] = {
    /* vowels */
    {"i", P_I, 0}, {"ɪ", P_IH, 0}, {"ᵻ", P_IH, 0}, {"eɪ", P_EY, 0}, {"eː", P_EY, 0},
    {"e", P_EH, 0}, {"ɛ", P_EH, 0}, {"æ", P_AE, 0}, {"ɑ", P_AA, 0}, {"a", P_AA, 0},
    {"ɒ", P_AA, 0}, {"ɔ", P_AO, 0}, {"oː", P_AO, 0}, {"oʊ", P_OW, 0}, {"o", P_OW, 0},
    {"ʊ", P_UH, 0}, {"u", P_UW, 0}, {"ʌ", P_AH, 0}, {"ə", P_AX, 0}, {"ɐ", P_AX, 0},
    {"ɚ", P_ER, 0}, {"ɹ̩", P_ER, 0}, {"ɜ", P_ERR, 0}, {"aɪ", P_AY, 0}, {"aʊ", P_AW, 0},
    {"ɔɪ", P_OY, 0},
    /* vowels of other languages espeak uses for foreign names */
    {"y", P_UW, 0}, {"ʏ", P_UH, 0}, {"ɯ", P_UW, 0}, {"ɨ", P_IH, 0}, {"ɵ", P_AX, 0},
    {"ɘ", P_AX, 0}, {"ø", P_ERR, 0}, {"œ", P_EH, 0}, {"ɤ", P_AH, 0},
    /* syllabic consonants */
    {"n̩", P_AX, P_N}, {"l̩", P_AX, P_L}, {"m̩", P_AX, P_M},
    /* consonants */
    {"p", P_P, 0}, {"b", P_B, 0}, {"t", P_T, 0}, {"d", P_D, 0}, {"k", P_K, 0},
    {"ɡ", P_G, 0}, {"g", P_G, 0}, {"f", P_F, 0}, {"v", P_V, 0}, {"θ", P_TH, 0},
    {"ð", P_DH, 0}, {"s", P_S, 0}, {"z", P_Z, 0}, {"ʃ", P_SH, 0}, {"ʒ", P_ZH, 0},
    {"h", P_HH, 0}, {"tʃ", P_CH, 0}, {"dʒ", P_JH, 0}, {"m", P_M, 0}, {"n", P_N, 0},
    {"ŋ", P_NG, 0}, {"l", P_L, 0}, {"ɹ", P_R, 0}, {"r", P_R, 0}, {"w", P_W, 0},
    {"j", P_Y, 0},
    /* allophones and foreign consonants */
    {"ɾ", P_T, 0}, {"ʔ", P_T, 0}, {"x", P_K, 0}, {"q", P_K, 0}, {"c", P_K, 0},
    {"ʁ", P_R, 0}, {"ɻ", P_R, 0}, {"ɽ", P_R, 0}, {"ɬ", P_L, 0}, {"ɫ", P_L, 0},
    {"ʎ", P_L, 0}, {"ʋ", P_V, 0}, {"β", P_V, 0}, {"ɸ", P_F, 0}, {"ɣ", P_G, 0},
    {"ç", P_HH, 0}, {"ɦ", P_HH, 0}, {"ʍ", P_W, 0}, {"ɰ", P_W, 0}, {"ʝ", P_Y, 0},
    {"ɲ", P_N, 0}, {"ɳ", P_N, 0}, {"ɖ", P_D, 0}, {"ʈ", P_T, 0},
    {"ɕ", P_SH, 0}, {"ʂ", P_SH, 0}, {"ʑ", P_ZH, 0}, {"ʐ", P_ZH, 0},
    {"tɕ", P_CH, 0}, {"dʑ", P_JH, 0}, {"ɟ", P_JH, 0},
};

#define PHO__N_MAPS (sizeof pho__maps / sizeof pho__maps[0])

const char *pho_phone_symbol(unsigned phone)
{
    return phone < PHO_N_PHONES ? pho__symbols[phone] : "?";
}

int pho_phone_is_vowel(unsigned phone)
{
    return phone >= P_I && phone <= P_OY;
}

/* The mapping is hashed along with the symbols: remapping a symbol changes
 * what a model sees just as much as renaming a phone does. */
uint64_t pho_inventory_hash(void)
{
    uint64_t h = ERD_FNV1A64_OFFSET;

    for (size_t i = 0; i < PHO_N_PHONES; i++)
        h = erd_fnv1a64(h, pho__symbols[i], strlen(pho__symbols[i]) + 1);
    for (size_t i = 0; i < PHO__N_MAPS; i++) {
        h = erd_fnv1a64(h, pho__maps[i].ipa, strlen(pho__maps[i].ipa) + 1);
        h = erd_fnv1a64(h, &pho__maps[i].p1, 1);
        h = erd_fnv1a64(h, &pho__maps[i].p2, 1);
    }
    return h;
}

static size_t pho__cp_len(unsigned char c)
{
    if (c < 0x80)
        return 1;
    if (c >= 0xF0)
        return 4;
    if (c >= 0xE0)
        return 3;
    if (c >= 0xC0)
        return 2;
    return 1; /* stray continuation byte: step over it alone */
}

static const struct pho__map *pho__match(const char *s, size_t *ret_len)
{
    const struct pho__map *best = NULL;
    size_t best_len = 0;

    for (size_t i = 0; i < PHO__N_MAPS; i++) {
        const char *ipa = pho__maps[i].ipa;
        size_t n;

        if (ipa[0] != s[0])
            continue;
        n = strlen(ipa);
        if (n > best_len && strncmp(s, ipa, n) == 0) {
            best = &pho__maps[i];
            best_len = n;
        }
    }
    if (best)
        *ret_len = best_len;
    return best;
}

int pho_tokenize(const char *ipa, pho_token *out, size_t cap, size_t *ret_n)
{
    size_t n = 0;
    int stress = PHO_STRESS_NONE;
    int new_word = 1;
    const char *s = ipa;

    if (!ipa || (!out && cap > 0))
        return ERD_EINVAL;
    while (*s) {
        unsigned char c = (unsigned char)*s;
        const struct pho__map *m;
        size_t len = 0;

        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            new_word = 1;
            stress = PHO_STRESS_NONE;
            s++;
            continue;
        }
        if (c == '(') {
            const char *close = strchr(s, ')');
            s = close ? close + 1 : s + strlen(s);
            continue;
        }
        if (strncmp(s, "ˈ", 2) == 0 || strncmp(s, "ˌ", 2) == 0) {
            stress = s[1] == "ˈ"[1] ? PHO_STRESS_PRIMARY : PHO_STRESS_SECONDARY;
            s += 2;
            continue;
        }
        m = pho__match(s, &len);
        if (!m) {
            s += pho__cp_len(c);
            while ((unsigned char)*s >= 0x80 && (unsigned char)*s < 0xC0)
                s++;
            continue;
        }
        for (int k = 0; k < 2; k++) {
            uint8_t ph = k == 0 ? m->p1 : m->p2;
            if (ph == 0)
                break;
            if (n >= cap)
                return ERD_ETOOLONG;
            out[n].phone = ph;
            out[n].stress = 0;
            out[n].word_start = (uint8_t)new_word;
            out[n].reserved = 0;
            if (pho_phone_is_vowel(ph)) {
                out[n].stress = (uint8_t)stress;
                stress = PHO_STRESS_NONE;
            }
            new_word = 0;
            n++;
        }
        s += len;
    }
    if (n == 0)
        return ERD_EEMPTY;
    if (ret_n)
        *ret_n = n;
    return ERD_OK;
}

/* Format: symbols separated by spaces, stress marks prefixed to their vowel,
 * "|" between words, e.g. "h ə l ˈoʊ | w ˈɜ l d". */
int pho_tokens_format(const pho_token *tokens, size_t n, char *out, size_t outcap)
{
    size_t len = 0;

    if ((!tokens && n > 0) || !out || outcap == 0)
        return ERD_EINVAL;
    for (size_t i = 0; i < n; i++) {
        const char *sep = i == 0 ? "" : tokens[i].word_start ? " | " : " ";
        const char *mark = tokens[i].stress == PHO_STRESS_PRIMARY     ? "ˈ"
                           : tokens[i].stress == PHO_STRESS_SECONDARY ? "ˌ"
                                                                      : "";
        const char *sym = pho_phone_symbol(tokens[i].phone);
        size_t a = strlen(sep), b = strlen(mark), c = strlen(sym);

        if (len + a + b + c + 1 > outcap)
            return ERD_ETOOLONG;
        memcpy(out + len, sep, a);
        memcpy(out + len + a, mark, b);
        memcpy(out + len + a + b, sym, c);
        len += a + b + c;
    }
    out[len] = '\0';
    return ERD_OK;
}
