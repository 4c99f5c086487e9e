#include <string.h>

#include "phonetics/pho_text.h"
#include "proto/erd_error.h"
#include "tap.h"

static int valid(const char *s)
{
    return pho_utf8_valid(s, strlen(s));
}

static const char *norm(const char *in, char *buf, size_t cap, int *rc)
{
    size_t n = 12345;
    *rc = pho_normalize(in, strlen(in), buf, cap, &n);
    if (*rc == ERD_OK && n != strlen(buf))
        return "(length mismatch)";
    return *rc == ERD_OK ? buf : "(error)";
}

static void check_norm(const char *in, const char *want)
{
    char buf[PHO_TEXT_MAX];
    int rc;
    const char *got = norm(in, buf, sizeof buf, &rc);
    is_str(got, want, "normalize \"%s\"", in);
}

static void check_key(const char *in, const char *want)
{
    char buf[PHO_TEXT_MAX];
    int rc = pho_match_key(in, strlen(in), buf, sizeof buf);
    is_int(rc, ERD_OK, "match key rc for \"%s\"", in);
    is_str(buf, want, "match key \"%s\"", in);
}

int main(void)
{
    char buf[PHO_TEXT_MAX], big[4000];
    size_t n = 777;
    int rc;

    /* UTF-8 validity */
    ok(valid("plain ascii"), "ascii valid");
    ok(valid("caf\xc3\xa9 \xe2\x80\x99 \xf0\x9f\x98\x80"), "2/3/4-byte sequences valid");
    ok(pho_utf8_valid("", 0), "empty valid");
    ok(!valid("\xc0\xaf"), "overlong 2-byte '/' refused");
    ok(!valid("\xe0\x80\xaf"), "overlong 3-byte refused");
    ok(!valid("\xf0\x80\x80\xaf"), "overlong 4-byte refused");
    ok(!valid("\xed\xa0\x80"), "surrogate U+D800 refused");
    ok(!valid("\xed\xbf\xbf"), "surrogate U+DFFF refused");
    ok(valid("\xed\x9f\xbf"), "U+D7FF accepted");
    ok(!valid("\xf4\x90\x80\x80"), "above U+10FFFF refused");
    ok(valid("\xf4\x8f\xbf\xbf"), "U+10FFFF accepted");
    ok(!valid("abc\xc3"), "truncated 2-byte refused");
    ok(!valid("\xe2\x80"), "truncated 3-byte refused");
    ok(!valid("\x80"), "lone continuation refused");
    ok(!valid("\xff"), "0xFF refused");
    ok(!pho_utf8_valid("a\0b", 3), "embedded NUL refused");
    ok(!valid("\xc3\x28"), "bad continuation refused");

    /* normalisation */
    check_norm("Hello, World!", "hello world");
    check_norm("  Am\xc3\xa9lie   ", "amelie");
    check_norm("Stra\xc3\x9f" "e", "strasse");
    check_norm("\xc3\x86on Fl\xc3\xb8" "x \xc5\x81\xc3\xb3" "d\xc5\xba", "aeon flox lodz");
    check_norm("Pok\xc3\xa9mon: Die Ha\xcc\x88lfte", "pokemon die halfte"); /* combining diaeresis */
    check_norm("Tom & Jerry", "tom and jerry");
    check_norm("Rock&Roll", "rock and roll");
    check_norm("C++ 100%", "c plus plus 100 percent");
    check_norm("Don't Stop", "don't stop");
    check_norm("Schindler\xe2\x80\x99s List", "schindler's list");
    check_norm("'Quoted' words'", "quoted words");
    check_norm("rock 'n' roll", "rock n roll");
    check_norm("Half-Blood\tPrince\n(2009)", "half blood prince 2009");
    check_norm("Catch-22", "catch 22");
    check_norm("J.K. Rowling", "j k rowling");
    check_norm("\xd0\x9f\xd1\x80\xd0\xb8", "\xd0\xbf\xd1\x80\xd0\xb8"); /* Cyrillic lower-cased */
    check_norm("a\xe2\x80\x94" "b\xc2\xa0" "c", "a b c"); /* em dash, nbsp */

    rc = pho_normalize("  ?!  ", 6, buf, sizeof buf, &n);
    is_int(rc, ERD_EEMPTY, "only punctuation -> EEMPTY");
    is_int(n, 777, "ret_len untouched on failure");
    is_int(pho_normalize("", 0, buf, sizeof buf, NULL), ERD_EEMPTY, "empty -> EEMPTY");
    is_int(pho_normalize("ab\xc3", 3, buf, sizeof buf, NULL), ERD_EUTF8, "invalid -> EUTF8");
    is_int(pho_normalize("hello world", 11, buf, 11, NULL), ERD_ETOOLONG, "no room for NUL -> ETOOLONG");
    is_int(pho_normalize("hello world", 11, buf, 12, &n), ERD_OK, "exact fit ok");
    is_int(n, 11, "exact fit length");
    memset(big, 'a', sizeof big);
    is_int(pho_normalize(big, sizeof big, buf, sizeof buf, NULL), ERD_ETOOLONG,
           "result over PHO_TEXT_MAX -> ETOOLONG");
    for (size_t i = 0; i < sizeof big; i += 2)
        big[i + 1] = ' ';
    is_int(pho_normalize(big, 100, buf, sizeof buf, &n), ERD_OK, "collapsing input ok");
    is_int(n, 99, "50 single-letter words");

    /* match keys */
    check_key("Harry Potter and the Sorcerer's Stone", "harry potter and the sorcerers stone");
    check_key("Schindler\xe2\x80\x99s List", "schindlers list");
    check_key("  Am\xc3\xa9lie!! ", "amelie");
    check_key("Harry Potter & the Goblet", "harry potter and the goblet");
    check_key("Half-Blood Prince", "half blood prince");
    check_key("WALL\xc2\xb7" "E", "wall e");
    check_key("\xd0\x9f\xd1\x80\xd0\xb8 2", "2");
    check_key("...", "");
    is_int(pho_match_key("abcdef", 6, buf, 4), ERD_ETOOLONG, "match key ETOOLONG");
    is_int(pho_match_key("\xed\xa0\x80", 3, buf, sizeof buf), ERD_EUTF8, "match key EUTF8");

    return tap_done();
}
