#include <string.h>

#include "phonetics/pho_inventory.h"
#include "proto/erd_error.h"
#include "tap.h"

/* Tokenizes ipa and formats the result. */
static const char *fmt(const char *ipa, char *buf, size_t cap)
{
    pho_token t[PHO_TOKENS_MAX];
    size_t n = 0;
    int rc = pho_tokenize(ipa, t, PHO_TOKENS_MAX, &n);

    if (rc < 0)
        return "(error)";
    if (pho_tokens_format(t, n, buf, cap) < 0)
        return "(format error)";
    return buf;
}

static void check(const char *ipa, const char *want)
{
    char buf[2048];
    is_str(fmt(ipa, buf, sizeof buf), want, "tokenize \"%s\"", ipa);
}

int main(void)
{
    pho_token t[16];
    size_t n = 99;
    char buf[64];
    int n_vowels = 0, n_unused = 0, n_dup = 0;

    /* table */
    is_str(pho_phone_symbol(0), "<pad>", "id 0 reserved");
    is_str(pho_phone_symbol(PHO_N_PHONES), "?", "out of range symbol");
    for (unsigned i = 1; i < PHO_N_PHONES; i++) {
        n_vowels += pho_phone_is_vowel(i) != 0;
        n_unused += strcmp(pho_phone_symbol(i), "<unused>") == 0;
        for (unsigned j = 1; j < i; j++)
            n_dup += strcmp(pho_phone_symbol(i), "<unused>") != 0 &&
                     strcmp(pho_phone_symbol(i), pho_phone_symbol(j)) == 0;
    }
    is_int(n_dup, 0, "phone symbols distinct");
    is_int(n_vowels, 17, "17 vowels");
    is_int(n_unused, 6, "6 spare ids");
    ok(!pho_phone_is_vowel(0), "pad is no vowel");
    ok(pho_inventory_hash() == pho_inventory_hash(), "hash stable");
    ok(pho_inventory_hash() != 0xcbf29ce484222325ULL, "hash covers the table");

    /* what espeak-ng 1.51 en-us gives for these words */
    check("tʃˈɜːtʃ", "tʃ ˈɜ tʃ");
    check("dʒˈʌdʒ", "dʒ ˈʌ dʒ");
    check("dˈeɪ", "d ˈeɪ");
    check("bˈoʊt", "b ˈoʊ t");
    check("həlˈoʊ wˈɜːld", "h ə l ˈoʊ | w ˈɜ l d");
    check("bˈʌʔn̩", "b ˈʌ t ə n");
    check("pˈɑːɾɚ", "p ˈɑ t ɚ");
    check("fˈoːɹ", "f ˈɔ ɹ");
    check("ɐbˈaʊt", "ə b ˈaʊ t");
    check("dᵻvˈaɪn", "d ɪ v ˈaɪ n");
    check("bˈɔɪ", "b ˈɔɪ");
    check("ˌʌndɚstˈænd", "ˌʌ n d ɚ s t ˈæ n d");
    check("ɹˈoʊmɪˌoʊ", "ɹ ˈoʊ m ɪ ˌoʊ");
    check("bˈɑːx", "b ˈɑ k");
    check("θɪŋ ðə ʃˈuː ʒ", "θ ɪ ŋ | ð ə | ʃ ˈu | ʒ");
    /* language-switch tags and stray symbols are skipped */
    check("(ko)sˈin(en-us) bˈæ", "s ˈi n | b ˈæ");
    check("ˈɛl1 ˈɑ̃", "ˈɛ l | ˈɑ");
    check("  a☃b  ", "ɑ b");

    /* token fields */
    is_int(pho_tokenize("ˈeɪ bˌi n̩", t, 16, &n), ERD_OK, "tokenize ok");
    is_int(n, 5, "5 tokens");
    is_int(t[0].word_start, 1, "first token starts a word");
    is_int(t[0].stress, PHO_STRESS_PRIMARY, "primary stress on eɪ");
    is_int(t[1].word_start, 1, "b starts word 2");
    is_int(t[1].stress, PHO_STRESS_NONE, "consonant has no stress");
    is_int(t[2].stress, PHO_STRESS_SECONDARY, "secondary stress passes to next vowel");
    is_int(t[2].word_start, 0, "i does not start a word");
    is_int(t[3].word_start, 1, "syllabic n after space starts a word");
    is_int(t[4].word_start, 0, "only on its first phone");
    ok(t[0].phone != 0 && t[0].phone < PHO_N_PHONES, "phone id in range");
    is_str(pho_phone_symbol(t[2].phone), "i", "i symbol");

    /* stress before a consonant cluster still lands on the vowel */
    is_int(pho_tokenize("ˈstɹɪŋ", t, 16, &n), ERD_OK, "string");
    is_int(t[3].stress, PHO_STRESS_PRIMARY, "stress on ɪ after str");
    is_int(t[0].stress, PHO_STRESS_NONE, "not on s");

    /* errors */
    n = 99;
    is_int(pho_tokenize("ˈ ː ☃", t, 16, &n), ERD_EEMPTY, "no phones -> EEMPTY");
    is_int(n, 99, "ret_n untouched");
    is_int(pho_tokenize("", t, 16, &n), ERD_EEMPTY, "empty -> EEMPTY");
    is_int(pho_tokenize("tʃˈɜːtʃ", t, 2, &n), ERD_ETOOLONG, "3 tokens in cap 2 -> ETOOLONG");
    is_int(pho_tokenize("tʃˈɜːtʃ", t, 3, &n), ERD_OK, "3 tokens in cap 3");
    is_int(pho_tokenize("bˈʌʔn̩", t, 4, &n), ERD_ETOOLONG, "two-phone symbol overflows");
    is_int(pho_tokenize(NULL, t, 16, &n), ERD_EINVAL, "NULL -> EINVAL");

    /* formatting bounds */
    is_int(pho_tokenize("tʃˈɜːtʃ", t, 16, &n), ERD_OK, "church");
    is_int(pho_tokens_format(t, n, buf, 5), ERD_ETOOLONG, "format into 5 bytes");
    is_int(pho_tokens_format(t, n, buf, sizeof buf), ERD_OK, "format fits");
    is_int(pho_tokens_format(t, 0, buf, sizeof buf), ERD_OK, "format nothing");
    is_str(buf, "", "empty format");

    return tap_done();
}
