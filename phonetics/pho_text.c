/* Text normalisation ahead of G2P, and the evaluation match key.
 *
 * Non-Latin letters (Greek, Cyrillic, CJK ...) are passed through by
 * pho_normalize, with Greek and Cyrillic capitals lower-cased, because
 * dropping them would make such titles unspeakable (ERD_EEMPTY) and espeak-ng
 * still produces a consistent, if crude, reading for them.  The match key is
 * ASCII by contract, so there they act as word breaks. */
#include "phonetics/pho_text.h"

#include <stdint.h>
#include <string.h>

#include "proto/erd_error.h"

/* Decodes one code point at s[*i] (already validated); advances *i. */
static uint32_t pho__utf8_next(const unsigned char *s, size_t len, size_t *i)
{
    unsigned char c = s[*i];
    uint32_t cp;
    size_t n;

    if (c < 0x80) {
        (*i)++;
        return c;
    }
    if (c < 0xE0) {
        cp = c & 0x1F;
        n = 1;
    } else if (c < 0xF0) {
        cp = c & 0x0F;
        n = 2;
    } else {
        cp = c & 0x07;
        n = 3;
    }
    for (size_t k = 1; k <= n && *i + k < len; k++)
        cp = (cp << 6) | (s[*i + k] & 0x3F);
    *i += n + 1;
    return cp;
}

bool pho_utf8_valid(const char *buf, size_t len)
{
    const unsigned char *s = (const unsigned char *)buf;
    size_t i = 0;

    if (!buf)
        return len == 0;
    while (i < len) {
        unsigned char c = s[i];
        size_t n;
        uint32_t cp, min;

        if (c == 0)
            return false;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
            cp = c & 0x1F;
            min = 0x80;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            cp = c & 0x0F;
            min = 0x800;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            cp = c & 0x07;
            min = 0x10000;
        } else {
            return false; /* continuation byte, C0/C1 overlong lead, F5.. */
        }
        if (len - i <= n)
            return false;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += n + 1;
    }
    return true;
}

/* Latin-1 Supplement and Latin Extended-A letters folded to ASCII. */
static const struct {
    uint16_t lo, hi;
    const char *fold;
} pho__folds[] = {
    {0x00C0, 0x00C5, "a"}, {0x00C6, 0x00C6, "ae"}, {0x00C7, 0x00C7, "c"},
    {0x00C8, 0x00CB, "e"}, {0x00CC, 0x00CF, "i"}, {0x00D0, 0x00D0, "d"},
    {0x00D1, 0x00D1, "n"}, {0x00D2, 0x00D6, "o"}, {0x00D8, 0x00D8, "o"},
    {0x00D9, 0x00DC, "u"}, {0x00DD, 0x00DD, "y"}, {0x00DE, 0x00DE, "th"},
    {0x00DF, 0x00DF, "ss"}, {0x00E0, 0x00E5, "a"}, {0x00E6, 0x00E6, "ae"},
    {0x00E7, 0x00E7, "c"}, {0x00E8, 0x00EB, "e"}, {0x00EC, 0x00EF, "i"},
    {0x00F0, 0x00F0, "d"}, {0x00F1, 0x00F1, "n"}, {0x00F2, 0x00F6, "o"},
    {0x00F8, 0x00F8, "o"}, {0x00F9, 0x00FC, "u"}, {0x00FD, 0x00FD, "y"},
    {0x00FE, 0x00FE, "th"}, {0x00FF, 0x00FF, "y"},
    {0x0100, 0x0105, "a"}, {0x0106, 0x010D, "c"}, {0x010E, 0x0111, "d"},
    {0x0112, 0x011B, "e"}, {0x011C, 0x0123, "g"}, {0x0124, 0x0127, "h"},
    {0x0128, 0x0131, "i"}, {0x0132, 0x0133, "ij"}, {0x0134, 0x0135, "j"},
    {0x0136, 0x0138, "k"}, {0x0139, 0x0142, "l"}, {0x0143, 0x014B, "n"},
    {0x014C, 0x0151, "o"}, {0x0152, 0x0153, "oe"}, {0x0154, 0x0159, "r"},
    {0x015A, 0x0161, "s"}, {0x0162, 0x0167, "t"}, {0x0168, 0x0173, "u"},
    {0x0174, 0x0175, "w"}, {0x0176, 0x0178, "y"}, {0x0179, 0x017E, "z"},
    {0x017F, 0x017F, "s"},
    /* Romanian comma-below letters are common enough in names to fold. */
    {0x0218, 0x0219, "s"}, {0x021A, 0x021B, "t"},
    /* Pinyin tone letters. */
    {0x01CD, 0x01CE, "a"}, {0x01CF, 0x01D0, "i"}, {0x01D1, 0x01D2, "o"},
    {0x01D3, 0x01DC, "u"},
};

enum pho__cls {
    PHO__BREAK,  /* punctuation, symbols, white space */
    PHO__DROP,   /* combining marks, format characters: vanish */
    PHO__ASCII,  /* ASCII letter or digit (lower-cased into fold) */
    PHO__FOLD,   /* folded to ASCII letters */
    PHO__OTHER,  /* non-Latin letter, kept as UTF-8 */
    PHO__APOS,   /* apostrophe */
    PHO__WORD,   /* spoken symbol: & + % */
};

static int pho__is_apostrophe(uint32_t cp)
{
    return cp == '\'' || cp == 0x2019 || cp == 0x2018 || cp == 0x02BC || cp == 0x0060 ||
           cp == 0x00B4 || cp == 0x2032;
}

/* Classifies cp; for ASCII/FOLD sets *fold, for OTHER sets *lower. */
static enum pho__cls pho__classify(uint32_t cp, const char **fold, uint32_t *lower)
{
    static const char ascii_lower[] = "abcdefghijklmnopqrstuvwxyz0123456789";

    if (pho__is_apostrophe(cp))
        return PHO__APOS;
    if (cp < 0x80) {
        if (cp >= 'A' && cp <= 'Z')
            cp += 'a' - 'A';
        if (cp >= 'a' && cp <= 'z') {
            *fold = &ascii_lower[cp - 'a'];
            return PHO__ASCII;
        }
        if (cp >= '0' && cp <= '9') {
            *fold = &ascii_lower[26 + cp - '0'];
            return PHO__ASCII;
        }
        if (cp == '&' || cp == '+' || cp == '%')
            return PHO__WORD;
        return PHO__BREAK;
    }
    for (size_t k = 0; k < sizeof pho__folds / sizeof pho__folds[0]; k++) {
        if (cp >= pho__folds[k].lo && cp <= pho__folds[k].hi) {
            *fold = pho__folds[k].fold;
            return PHO__FOLD;
        }
    }
    if ((cp >= 0x0300 && cp <= 0x036F) || cp == 0x00AD || (cp >= 0x200B && cp <= 0x200F) ||
        cp == 0x2060 || cp == 0xFEFF || (cp >= 0xFE00 && cp <= 0xFE0F))
        return PHO__DROP;
    /* Without Unicode tables, treat the punctuation and symbol blocks as
     * breaks and everything else as letters. */
    if (cp < 0x0180 || (cp >= 0x02B0 && cp <= 0x02FF) || (cp >= 0x2000 && cp <= 0x2BFF) ||
        (cp >= 0x3000 && cp <= 0x303F) || (cp >= 0xE000 && cp <= 0xF8FF) ||
        (cp >= 0xFE10 && cp <= 0xFE6F) || (cp >= 0xFF00 && cp <= 0xFF0F) ||
        (cp >= 0xFF1A && cp <= 0xFF20) || (cp >= 0xFF3B && cp <= 0xFF40) ||
        (cp >= 0xFF5B && cp <= 0xFF65) || cp >= 0xFFF0 || (cp >= 0x1F000 && cp <= 0x1FAFF))
        return PHO__BREAK;
    if ((cp >= 0x0391 && cp <= 0x03A9 && cp != 0x03A2) || (cp >= 0x0410 && cp <= 0x042F))
        cp += 0x20;
    else if (cp >= 0x0400 && cp <= 0x040F)
        cp += 0x50;
    *lower = cp;
    return PHO__OTHER;
}

static int pho__is_letter(enum pho__cls c)
{
    return c == PHO__ASCII || c == PHO__FOLD || c == PHO__OTHER;
}

/* Output under construction: words appended with at most one pending space. */
typedef struct pho__out {
    char *buf;
    size_t cap; /* usable bytes including the NUL */
    size_t len;
    int space;  /* a word break is pending */
    int full;
} pho__out;

static void pho__put(pho__out *o, const char *s, size_t n)
{
    size_t need = n + (o->space && o->len > 0);

    if (o->full)
        return;
    if (o->len + need + 1 > o->cap) {
        o->full = 1;
        return;
    }
    if (o->space && o->len > 0)
        o->buf[o->len++] = ' ';
    o->space = 0;
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

static size_t pho__utf8_encode(uint32_t cp, char *b)
{
    if (cp < 0x80) {
        b[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        b[0] = (char)(0xC0 | (cp >> 6));
        b[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        b[0] = (char)(0xE0 | (cp >> 12));
        b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    b[0] = (char)(0xF0 | (cp >> 18));
    b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    b[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    b[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* key_mode: pho_match_key rules (ASCII only, apostrophes deleted). */
static int pho__fold_text(const char *text, size_t len, char *out, size_t outcap, int key_mode,
                          size_t *ret_len)
{
    const unsigned char *s = (const unsigned char *)text;
    pho__out o = {out, outcap < PHO_TEXT_MAX ? outcap : PHO_TEXT_MAX, 0, 0, 0};
    int prev_letter = 0; /* last thing emitted was part of a word */
    size_t i = 0;

    if (!out || outcap == 0 || (!text && len > 0))
        return ERD_EINVAL;
    if (!pho_utf8_valid(text, len))
        return ERD_EUTF8;

    while (i < len && !o.full) {
        const char *fold = NULL;
        uint32_t lower = 0;
        uint32_t cp = pho__utf8_next(s, len, &i);
        enum pho__cls c = pho__classify(cp, &fold, &lower);

        switch (c) {
        case PHO__ASCII:
            pho__put(&o, fold, 1);
            prev_letter = 1;
            break;
        case PHO__FOLD:
            pho__put(&o, fold, strlen(fold));
            prev_letter = 1;
            break;
        case PHO__OTHER:
            if (key_mode) {
                o.space = 1;
                prev_letter = 0;
            } else {
                char b[4];
                pho__put(&o, b, pho__utf8_encode(lower, b));
                prev_letter = 1;
            }
            break;
        case PHO__DROP:
            break;
        case PHO__APOS: {
            /* Only an apostrophe between two letters belongs to the word;
             * quotes around a phrase are breaks. */
            size_t j = i;
            enum pho__cls next = PHO__BREAK;
            while (j < len) {
                const char *f2;
                uint32_t l2;
                next = pho__classify(pho__utf8_next(s, len, &j), &f2, &l2);
                if (next != PHO__DROP)
                    break;
            }
            if (prev_letter && pho__is_letter(next) && !(key_mode && next == PHO__OTHER)) {
                if (!key_mode)
                    pho__put(&o, "'", 1);
            } else {
                o.space = 1;
                prev_letter = 0;
            }
            break;
        }
        case PHO__WORD: {
            const char *w = cp == '&' ? "and" : cp == '+' ? "plus" : "percent";
            o.space = 1;
            pho__put(&o, w, strlen(w));
            o.space = 1;
            prev_letter = 0;
            break;
        }
        case PHO__BREAK:
            o.space = 1;
            prev_letter = 0;
            break;
        }
    }
    if (o.full)
        return ERD_ETOOLONG;
    out[o.len] = '\0';
    if (ret_len)
        *ret_len = o.len;
    return ERD_OK;
}

int pho_normalize(const char *text, size_t len, char *out, size_t outcap, size_t *ret_len)
{
    size_t n = 0;
    int rc = pho__fold_text(text, len, out, outcap, 0, &n);

    if (rc < 0)
        return rc;
    if (n == 0)
        return ERD_EEMPTY;
    if (ret_len)
        *ret_len = n;
    return ERD_OK;
}

int pho_match_key(const char *text, size_t len, char *out, size_t outcap)
{
    return pho__fold_text(text, len, out, outcap, 1, NULL);
}
