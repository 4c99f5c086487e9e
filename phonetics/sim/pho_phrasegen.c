/* Phrase generator: word pools from WordNet (lemmas, SemCor tag counts as a
 * commonness signal, lexicographer files for people and places) filtered by
 * the CMU dictionary, and title templates over those pools. */
#include "phonetics/sim/pho_phrasegen.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "phonetics/sim/pho_rng.h"
#include "proto/erd_hash.h"

#define PHO__ARENA_BLOCK (1u << 20)
#define PHO__LINE_TOKENS 64
#define PHO__MAX_COUNT ((size_t)50 * 1000 * 1000)
#define PHO__MAX_RETRIES 2000
/* WordNet lexicographer files (lexnames(5WN)) holding named instances. */
#define PHO__LEX_LOCATION 15
#define PHO__LEX_PERSON 18

/* ---- string arena and hash set ------------------------------------------ */

typedef struct pho__block {
    struct pho__block *next;
    size_t used, cap;
    char data[];
} pho__block;

typedef struct pho__arena {
    pho__block *head;
} pho__arena;

static char *pho__arena_dup(pho__arena *a, const char *s, size_t len)
{
    pho__block *b = a->head;
    if (!b || b->cap - b->used < len + 1) {
        size_t cap = len + 1 > PHO__ARENA_BLOCK ? len + 1 : PHO__ARENA_BLOCK;
        b = malloc(sizeof *b + cap);
        if (!b)
            return NULL;
        b->next = a->head;
        b->used = 0;
        b->cap = cap;
        a->head = b;
    }
    char *p = b->data + b->used;
    memcpy(p, s, len);
    p[len] = '\0';
    b->used += len + 1;
    return p;
}

static void pho__arena_free(pho__arena *a)
{
    pho__block *b = a->head;
    while (b) {
        pho__block *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
}

/* String-keyed map with an int value; keys live in the generator's arena. */
typedef struct pho__map {
    const char **keys;
    int *vals;
    size_t mask, count;
} pho__map;

static int pho__map_grow(pho__map *m)
{
    size_t cap = m->keys ? (m->mask + 1) * 2 : 1024;
    const char **keys = calloc(cap, sizeof *keys);
    int *vals = calloc(cap, sizeof *vals);
    if (!keys || !vals) {
        free(keys);
        free(vals);
        return ERD_ENOMEM;
    }
    for (size_t i = 0; m->keys && i <= m->mask; i++) {
        if (!m->keys[i])
            continue;
        size_t j = erd_fnv1a64(ERD_FNV1A64_OFFSET, m->keys[i], strlen(m->keys[i])) & (cap - 1);
        while (keys[j])
            j = (j + 1) & (cap - 1);
        keys[j] = m->keys[i];
        vals[j] = m->vals[i];
    }
    free(m->keys);
    free(m->vals);
    m->keys = keys;
    m->vals = vals;
    m->mask = cap - 1;
    return ERD_OK;
}

static size_t pho__map_slot(const pho__map *m, const char *key, size_t len)
{
    size_t j = erd_fnv1a64(ERD_FNV1A64_OFFSET, key, len) & m->mask;
    while (m->keys[j] && (strncmp(m->keys[j], key, len) != 0 || m->keys[j][len] != '\0'))
        j = (j + 1) & m->mask;
    return j;
}

static int pho__map_find(const pho__map *m, const char *key, size_t len, int *ret)
{
    if (!m->keys)
        return 0;
    size_t j = pho__map_slot(m, key, len);
    if (!m->keys[j])
        return 0;
    if (ret)
        *ret = m->vals[j];
    return 1;
}

/* Inserts key (copied into the arena) or, when present, keeps the larger
 * value.  Sets *ret_new to whether the key was new. */
static int pho__map_put(pho__map *m, pho__arena *a, const char *key, size_t len, int val,
                        const char **ret_key, int *ret_new)
{
    if (!m->keys || (m->count + 1) * 2 > m->mask + 1) {
        int rc = pho__map_grow(m);
        if (rc < 0)
            return rc;
    }
    size_t j = pho__map_slot(m, key, len);
    int is_new = m->keys[j] == NULL;
    if (is_new) {
        const char *k = pho__arena_dup(a, key, len);
        if (!k)
            return ERD_ENOMEM;
        m->keys[j] = k;
        m->vals[j] = val;
        m->count++;
    } else if (val > m->vals[j]) {
        m->vals[j] = val;
    }
    if (ret_key)
        *ret_key = m->keys[j];
    if (ret_new)
        *ret_new = is_new;
    return ERD_OK;
}

static void pho__map_free(pho__map *m)
{
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

/* ---- pools ---------------------------------------------------------------- */

typedef struct pho__pool {
    const char **v;
    size_t n, cap;
    pho__map seen; /* keeps a pool free of duplicates */
} pho__pool;

static int pho__pool_add(pho__pool *p, pho__arena *a, const char *s, size_t len)
{
    const char *key;
    int is_new, rc = pho__map_put(&p->seen, a, s, len, 0, &key, &is_new);
    if (rc < 0 || !is_new)
        return rc;
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 256;
        const char **v = realloc(p->v, cap * sizeof *v);
        if (!v)
            return ERD_ENOMEM;
        p->v = v;
        p->cap = cap;
    }
    p->v[p->n++] = key;
    return ERD_OK;
}

static void pho__pool_free(pho__pool *p)
{
    free(p->v);
    pho__map_free(&p->seen);
    memset(p, 0, sizeof *p);
}

static const char *pho__pick(const pho__pool *p, pho_rng *r)
{
    return p->v[pho_rng_below(r, p->n)];
}

enum {
    PHO__NOUN,
    PHO__ADJ,
    PHO__VERB,
    PHO__ADV,
    PHO__EXPR_COMMON, /* multi-word expressions tagged in SemCor */
    PHO__EXPR,        /* all pronounceable multi-word expressions */
    PHO__NOUN_EXPR,   /* common multi-word nouns: "phone booth" */
    PHO__PERSON,      /* full names of people */
    PHO__FIRST,       /* given names taken from those */
    PHO__SURNAME,     /* family names (and one-word names) */
    PHO__PLACE,
    PHO__NPOOLS,
};

struct pho_phrasegen {
    pho__arena arena;
    pho__map cmudict;  /* lower-case words */
    pho__map tagcount; /* lemma -> SemCor tag count, max over parts of speech */
    pho__map plural;   /* irregular plurals: singular -> index into plurals */
    const char **plurals;
    size_t n_plurals, cap_plurals;
    pho__pool pools[PHO__NPOOLS];
};

/* ---- loading -------------------------------------------------------------- */

static int pho__open(const char *dir, const char *name, FILE **ret, erd_diag *diag)
{
    char path[4096];
    int n = snprintf(path, sizeof path, "%s%s%s", dir, name ? "/" : "", name ? name : "");
    if (n < 0 || (size_t)n >= sizeof path)
        return erd_fail(diag, ERD_ETOOLONG, "path too long: %s", dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return erd_fail(diag, errno == ENOENT ? ERD_ENOTFOUND : ERD_EIO, "%s: %s", path,
                        strerror(errno));
    *ret = f;
    return ERD_OK;
}

static size_t pho__split(char *line, char **tok, size_t max)
{
    size_t n = 0;
    char *save = NULL;
    for (char *t = strtok_r(line, " \t\r\n", &save); t && n < max;
         t = strtok_r(NULL, " \t\r\n", &save))
        tok[n++] = t;
    return n;
}

static int pho__load_cmudict(pho_phrasegen *g, const char *path, erd_diag *diag)
{
    FILE *f;
    char *line = NULL;
    size_t cap = 0;
    int rc = pho__open(path, NULL, &f, diag);
    if (rc < 0)
        return rc;
    while (getline(&line, &cap, f) > 0) {
        size_t len = strcspn(line, " \t(\r\n");
        if (len == 0)
            continue;
        if ((rc = pho__map_put(&g->cmudict, &g->arena, line, len, 1, NULL, NULL)) < 0)
            break;
    }
    free(line);
    fclose(f);
    if (rc == ERD_OK && g->cmudict.count == 0)
        rc = erd_fail(diag, ERD_EEMPTY, "%s: no words", path);
    return rc;
}

static int pho__load_index(pho_phrasegen *g, const char *dir, const char *name, erd_diag *diag)
{
    FILE *f;
    char *line = NULL, *tok[PHO__LINE_TOKENS];
    size_t cap = 0;
    int rc = pho__open(dir, name, &f, diag);
    if (rc < 0)
        return rc;
    /* lemma pos synset_cnt p_cnt [ptr_symbol...] sense_cnt tagsense_cnt ...
     * (wndb(5WN)); lines starting with a space are the licence header. */
    while (getline(&line, &cap, f) > 0) {
        if (line[0] == ' ')
            continue;
        size_t n = pho__split(line, tok, PHO__LINE_TOKENS);
        if (n < 4)
            continue;
        size_t p_cnt = strtoul(tok[3], NULL, 10);
        if (5 + p_cnt >= n)
            continue;
        int tagged = atoi(tok[5 + p_cnt]);
        if ((rc = pho__map_put(&g->tagcount, &g->arena, tok[0], strlen(tok[0]), tagged, NULL,
                               NULL)) < 0)
            break;
    }
    free(line);
    fclose(f);
    return rc;
}

static int pho__load_plurals(pho_phrasegen *g, const char *dir, erd_diag *diag)
{
    FILE *f;
    char *line = NULL, *tok[4];
    size_t cap = 0;
    int rc = pho__open(dir, "noun.exc", &f, diag);
    if (rc < 0)
        return rc;
    /* "plural singular" per line; the map's value indexes g->plurals. */
    while (getline(&line, &cap, f) > 0) {
        if (pho__split(line, tok, 4) != 2 || strchr(tok[0], '_'))
            continue;
        if (pho__map_find(&g->plural, tok[1], strlen(tok[1]), NULL))
            continue; /* the first listed plural is the usual one */
        if (g->n_plurals == g->cap_plurals) {
            size_t ncap = g->cap_plurals ? g->cap_plurals * 2 : 512;
            const char **v = realloc(g->plurals, ncap * sizeof *v);
            if (!v) {
                rc = ERD_ENOMEM;
                break;
            }
            g->plurals = v;
            g->cap_plurals = ncap;
        }
        const char *pl = pho__arena_dup(&g->arena, tok[0], strlen(tok[0]));
        if (!pl) {
            rc = ERD_ENOMEM;
            break;
        }
        g->plurals[g->n_plurals] = pl;
        if ((rc = pho__map_put(&g->plural, &g->arena, tok[1], strlen(tok[1]),
                               (int)g->n_plurals, NULL, NULL)) < 0)
            break;
        g->n_plurals++;
    }
    free(line);
    fclose(f);
    return rc;
}

static int pho__all(const char *s, size_t len, int (*pred)(int))
{
    for (size_t i = 0; i < len; i++)
        if (!pred((unsigned char)s[i]))
            return 0;
    return len > 0;
}

static int pho__is_lower_alpha(int c)
{
    return c >= 'a' && c <= 'z';
}

/* A lower-case token the recogniser's dictionary knows, directly or as the
 * parts of a hyphenated compound. */
static int pho__pronounceable(const pho_phrasegen *g, const char *tok, size_t len)
{
    char low[PHO_PHRASE_MAX];
    if (len == 0 || len >= sizeof low)
        return 0;
    for (size_t i = 0; i < len; i++) {
        int c = tolower((unsigned char)tok[i]);
        if (!pho__is_lower_alpha(c) && c != '\'' && c != '-')
            return 0;
        low[i] = (char)c;
    }
    if (pho__map_find(&g->cmudict, low, len, NULL))
        return 1;
    if (!memchr(low, '-', len))
        return 0;
    for (size_t s = 0, i = 0; i <= len; i++) {
        if (i < len && low[i] != '-')
            continue;
        if (i == s || !pho__map_find(&g->cmudict, low + s, i - s, NULL))
            return 0;
        s = i + 1;
    }
    return 1;
}

/* Name tokens: capitalised words, hyphens and apostrophes inside, an initial
 * with its dot, or a lower-case particle ("of", "de").  Roman numerals and
 * acronyms are out: flite spells them letter by letter, which would teach the
 * encoder that "Henry VIII" sounds like "henry v i i i". */
static int pho__name_token(const char *t, size_t len)
{
    static const char *const particles[] = {"of", "the", "de", "la", "le", "du", "da",
                                            "von", "van", "der", "del", "y", "on", "upon"};
    if (len == 0)
        return 0;
    if (islower((unsigned char)t[0])) {
        for (size_t i = 0; i < sizeof particles / sizeof particles[0]; i++)
            if (strlen(particles[i]) == len && !strncmp(particles[i], t, len))
                return 1;
        return 0;
    }
    if (!isupper((unsigned char)t[0]))
        return 0;
    size_t upper = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)t[i];
        if (isupper(c))
            upper++;
        else if (!islower(c) && c != '-' && c != '\'' && !(c == '.' && i == len - 1))
            return 0;
    }
    return upper == 1 || (upper == 2 && memchr(t, '-', len)) ||
           (upper == 2 && len > 2 && t[0] == 'M' && t[1] == 'c');
}

static int pho__honorific(const char *t, size_t len)
{
    static const char *const words[] = {"Sir",  "Dame",   "Saint", "St.",  "Lord",  "Lady",
                                        "King", "Queen",  "Pope",  "Mrs.", "Mr.",   "Dr.",
                                        "Earl", "Prince", "Baron", "Duke", "Count", "General"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strlen(words[i]) == len && !strncmp(words[i], t, len))
            return 1;
    return 0;
}

/* One proper name from data.noun, underscores already turned into spaces. */
static int pho__add_name(pho_phrasegen *g, const char *name, int lex)
{
    const char *tok[16];
    size_t tlen[16], n = 0;
    for (const char *p = name; *p && n < 16;) {
        size_t len = strcspn(p, " ");
        if (!pho__name_token(p, len))
            return ERD_OK;
        tok[n] = p;
        tlen[n++] = len;
        p += len;
        p += *p == ' ';
    }
    if (n == 0 || n > 5 || !isupper((unsigned char)name[0]))
        return ERD_OK;
    if (lex == PHO__LEX_LOCATION)
        return pho__pool_add(&g->pools[PHO__PLACE], &g->arena, name, strlen(name));

    int rc = pho__pool_add(&g->pools[PHO__PERSON], &g->arena, name, strlen(name));
    if (rc < 0)
        return rc;
    const char *last = tok[n - 1];
    size_t llen = tlen[n - 1];
    if (llen > 2 && last[llen - 1] != '.' && isupper((unsigned char)last[0]) &&
        (rc = pho__pool_add(&g->pools[PHO__SURNAME], &g->arena, last, llen)) < 0)
        return rc;
    if (n >= 2 && tlen[0] > 2 && tok[0][tlen[0] - 1] != '.' && !pho__honorific(tok[0], tlen[0]))
        rc = pho__pool_add(&g->pools[PHO__FIRST], &g->arena, tok[0], tlen[0]);
    return rc;
}

/* Classifies one word of a synset into the pools. */
static int pho__add_word(pho_phrasegen *g, int pos, int lex, int instance, char *w)
{
    char *paren = strchr(w, '('); /* adjective position markers: "big(a)" */
    if (paren)
        *paren = '\0';
    size_t len = strlen(w);
    if (len == 0 || len >= PHO_PHRASE_MAX)
        return ERD_OK;

    int proper = 0, ntok = 1;
    for (size_t i = 0; i < len; i++) {
        if (w[i] == '_') {
            w[i] = ' ';
            ntok++;
        }
        if (isupper((unsigned char)w[i]))
            proper = 1;
    }
    if (proper && instance && pos == PHO__NOUN &&
        (lex == PHO__LEX_PERSON || lex == PHO__LEX_LOCATION))
        return pho__add_name(g, w, lex);

    char low[PHO_PHRASE_MAX];
    for (size_t i = 0; i <= len; i++)
        low[i] = w[i] == ' ' ? '_' : (char)tolower((unsigned char)w[i]);
    int tagged = 0;
    pho__map_find(&g->tagcount, low, len, &tagged);

    if (ntok == 1) {
        if (proper || len < 2 || !pho__all(w, len, pho__is_lower_alpha) || tagged <= 0 ||
            !pho__map_find(&g->cmudict, w, len, NULL))
            return ERD_OK;
        return pho__pool_add(&g->pools[pos], &g->arena, w, len);
    }
    if (ntok > 5)
        return ERD_OK;
    for (const char *p = w; *p;) {
        size_t tl = strcspn(p, " ");
        if (!pho__pronounceable(g, p, tl))
            return ERD_OK;
        p += tl;
        p += *p == ' ';
    }
    int rc = pho__pool_add(&g->pools[PHO__EXPR], &g->arena, w, len);
    if (rc == ERD_OK && tagged > 0)
        rc = pho__pool_add(&g->pools[PHO__EXPR_COMMON], &g->arena, w, len);
    if (rc == ERD_OK && tagged > 0 && pos == PHO__NOUN && !proper)
        rc = pho__pool_add(&g->pools[PHO__NOUN_EXPR], &g->arena, w, len);
    return rc;
}

static int pho__load_data(pho_phrasegen *g, const char *dir, const char *name, int pos,
                          erd_diag *diag)
{
    FILE *f;
    char *line = NULL;
    size_t cap = 0;
    int rc = pho__open(dir, name, &f, diag);
    if (rc < 0)
        return rc;
    /* offset lex_filenum ss_type w_cnt(hex) [word lex_id]... p_cnt
     * [ptr_symbol offset pos src/tgt]... | gloss (wndb(5WN)) */
    while (rc == ERD_OK && getline(&line, &cap, f) > 0) {
        if (line[0] == ' ')
            continue;
        char *bar = strchr(line, '|');
        if (bar)
            *bar = '\0';
        char *tok[1024];
        size_t n = pho__split(line, tok, sizeof tok / sizeof tok[0]);
        if (n < 4)
            continue;
        int lex = atoi(tok[1]);
        size_t w_cnt = strtoul(tok[3], NULL, 16);
        size_t p_at = 4 + 2 * w_cnt;
        if (p_at >= n)
            continue;
        size_t p_cnt = strtoul(tok[p_at], NULL, 10);
        int instance = 0;
        for (size_t i = 0; i < p_cnt && p_at + 1 + 4 * i < n; i++)
            instance |= !strcmp(tok[p_at + 1 + 4 * i], "@i");
        for (size_t i = 0; i < w_cnt && rc == ERD_OK; i++)
            rc = pho__add_word(g, pos, lex, instance, tok[4 + 2 * i]);
    }
    free(line);
    fclose(f);
    return rc;
}

void pho_phrasegen_destroy(pho_phrasegen *g)
{
    if (!g)
        return;
    for (int i = 0; i < PHO__NPOOLS; i++)
        pho__pool_free(&g->pools[i]);
    pho__map_free(&g->cmudict);
    pho__map_free(&g->tagcount);
    pho__map_free(&g->plural);
    free(g->plurals);
    pho__arena_free(&g->arena);
    free(g);
}

int pho_phrasegen_create(const pho_phrasegen_opts *opts, pho_phrasegen **ret, erd_diag *diag)
{
    static const struct {
        const char *index, *data;
        int pos;
    } parts[] = {
        {"index.noun", "data.noun", PHO__NOUN},
        {"index.adj", "data.adj", PHO__ADJ},
        {"index.verb", "data.verb", PHO__VERB},
        {"index.adv", "data.adv", PHO__ADV},
    };
    const char *dir = opts && opts->wordnet_dir ? opts->wordnet_dir : PHO_PHRASEGEN_WORDNET_DIR;
    const char *dict = opts && opts->cmudict ? opts->cmudict : PHO_PHRASEGEN_CMUDICT;
    pho_phrasegen *g = calloc(1, sizeof *g);
    int rc;
    if (!g)
        return erd_fail(diag, ERD_ENOMEM, "phrase generator");
    if ((rc = pho__load_cmudict(g, dict, diag)) < 0)
        goto out;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        if ((rc = pho__load_index(g, dir, parts[i].index, diag)) < 0)
            goto out;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        if ((rc = pho__load_data(g, dir, parts[i].data, parts[i].pos, diag)) < 0)
            goto out;
    if ((rc = pho__load_plurals(g, dir, diag)) < 0)
        goto out;
    for (int i = 0; i < PHO__NPOOLS; i++) {
        if (g->pools[i].n == 0) {
            rc = erd_fail(diag, ERD_EEMPTY, "%s: word pool %d came out empty", dir, i);
            goto out;
        }
    }
    *ret = g;
    g = NULL;
out:
    if (rc < 0 && diag && diag->code != rc)
        erd_fail(diag, rc, "loading word lists from %s", dir);
    pho_phrasegen_destroy(g);
    return rc;
}

void pho_phrasegen_get_stats(const pho_phrasegen *g, pho_phrasegen_stats *ret)
{
    pho_phrasegen_stats st = {
        .nouns = g->pools[PHO__NOUN].n,
        .adjectives = g->pools[PHO__ADJ].n,
        .verbs = g->pools[PHO__VERB].n,
        .adverbs = g->pools[PHO__ADV].n,
        .expressions = g->pools[PHO__EXPR].n,
        .people = g->pools[PHO__PERSON].n,
        .places = g->pools[PHO__PLACE].n,
    };
    *ret = st;
}

int pho_phrasegen_parse_kinds(const char *list, unsigned *ret, erd_diag *diag)
{
    static const struct {
        const char *name;
        unsigned kind;
    } names[] = {
        {"words", PHO_KIND_WORD},   {"word", PHO_KIND_WORD},   {"phrases", PHO_KIND_PHRASE},
        {"phrase", PHO_KIND_PHRASE}, {"names", PHO_KIND_NAME},  {"name", PHO_KIND_NAME},
        {"titles", PHO_KIND_TITLE}, {"title", PHO_KIND_TITLE}, {"all", PHO_KIND_ALL},
    };
    unsigned kinds = 0;
    if (!list)
        return erd_fail(diag, ERD_EINVAL, "no kinds given");
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, ",");
        size_t i = 0;
        while (i < sizeof names / sizeof names[0] &&
               (strlen(names[i].name) != len || strncmp(names[i].name, p, len) != 0))
            i++;
        if (len > 0) {
            if (i == sizeof names / sizeof names[0])
                return erd_fail(diag, ERD_EINVAL,
                                "unknown phrase kind \"%.*s\" (words, phrases, names, titles)",
                                (int)len, p);
            kinds |= names[i].kind;
        }
        p += len;
        p += *p == ',';
    }
    if (!kinds)
        return erd_fail(diag, ERD_EINVAL, "no phrase kinds in \"%s\"", list);
    *ret = kinds;
    return ERD_OK;
}

/* ---- generation ------------------------------------------------------------ */

typedef struct pho__text {
    char s[PHO_PHRASE_MAX];
    size_t len;
    int overflow;
} pho__text;

static void pho__put(pho__text *t, const char *s, size_t len)
{
    if (t->len + len >= sizeof t->s) {
        t->overflow = 1;
        return;
    }
    memcpy(t->s + t->len, s, len);
    t->len += len;
    t->s[t->len] = '\0';
}

static void pho__puts(pho__text *t, const char *s)
{
    pho__put(t, s, strlen(s));
}

static int pho__is_vowel(int c)
{
    return c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u';
}

static void pho__put_plural(const pho_phrasegen *g, pho__text *t, const char *noun)
{
    size_t len = strlen(noun);
    int idx;
    if (pho__map_find(&g->plural, noun, len, &idx)) {
        pho__puts(t, g->plurals[idx]);
        return;
    }
    char last = len ? noun[len - 1] : '\0', prev = len > 1 ? noun[len - 2] : '\0';
    /* Morphy derives "-men" by rule, so noun.exc does not list it. */
    static const char *const man_s[] = {"human", "roman", "shaman", "talisman", "caiman",
                                        "ottoman", "german", "doberman", "cayman"};
    int man = len > 4 && !strcmp(noun + len - 3, "man");
    for (size_t i = 0; man && i < sizeof man_s / sizeof man_s[0]; i++)
        man = strcmp(noun, man_s[i]) != 0;
    if (man) {
        pho__put(t, noun, len - 2);
        pho__puts(t, "en");
    } else if (last == 's' || last == 'x' || last == 'z' ||
        (last == 'h' && (prev == 'c' || prev == 's'))) {
        pho__puts(t, noun);
        pho__puts(t, "es");
    } else if (last == 'y' && len > 1 && !pho__is_vowel(prev)) {
        pho__put(t, noun, len - 1);
        pho__puts(t, "ies");
    } else {
        pho__puts(t, noun);
        pho__puts(t, "s");
    }
}

static const char *const pho__preps[] = {
    "in",     "on",     "at",      "under", "over",   "beyond", "before", "after", "without",
    "from",   "across", "inside",  "behind", "beneath", "above", "around", "against", "into",
    "through", "below", "between", "beside", "toward", "upon",
};
static const char *const pho__numbers[] = {
    "Two", "Three", "Four", "Five", "Six", "Seven", "Eight", "Nine", "Ten", "Twelve",
    "Hundred", "Thousand",
};

/* Expands one template.  Slots: {A} adjective, {N} noun, {Ns} plural noun,
 * {V} verb, {X} common multi-word noun, {C} common multi-word expression of
 * any part of speech, {F} given name, {S} family name, {H} full name, {P}
 * place, {R} preposition, {M} number word. */
static void pho__expand(const pho_phrasegen *g, pho_rng *r, const char *tpl, pho__text *t)
{
    for (const char *p = tpl; *p;) {
        if (*p != '{') {
            size_t len = strcspn(p, "{");
            pho__put(t, p, len);
            p += len;
            continue;
        }
        const char *end = strchr(p, '}');
        if (!end)
            break;
        size_t n = (size_t)(end - p - 1);
        const char *slot = p + 1;
        p = end + 1;
        if (n == 2 && !strncmp(slot, "Ns", 2)) {
            pho__put_plural(g, t, pho__pick(&g->pools[PHO__NOUN], r));
            continue;
        }
        switch (n == 1 ? *slot : '\0') {
        case 'A': pho__puts(t, pho__pick(&g->pools[PHO__ADJ], r)); break;
        case 'N':
            /* Now and then a compound where a noun would go, as catalog
             * titles have ("The Last Picture Show"). */
            if (pho_rng_unit(r) < 0.08)
                pho__puts(t, pho__pick(&g->pools[PHO__NOUN_EXPR], r));
            else
                pho__puts(t, pho__pick(&g->pools[PHO__NOUN], r));
            break;
        case 'V': pho__puts(t, pho__pick(&g->pools[PHO__VERB], r)); break;
        case 'X': pho__puts(t, pho__pick(&g->pools[PHO__NOUN_EXPR], r)); break;
        case 'C': pho__puts(t, pho__pick(&g->pools[PHO__EXPR_COMMON], r)); break;
        case 'F': pho__puts(t, pho__pick(&g->pools[PHO__FIRST], r)); break;
        case 'S': pho__puts(t, pho__pick(&g->pools[PHO__SURNAME], r)); break;
        case 'H': pho__puts(t, pho__pick(&g->pools[PHO__PERSON], r)); break;
        case 'P': pho__puts(t, pho__pick(&g->pools[PHO__PLACE], r)); break;
        case 'R':
            pho__puts(t, pho__preps[pho_rng_below(r, sizeof pho__preps / sizeof pho__preps[0])]);
            break;
        case 'M':
            pho__puts(t,
                      pho__numbers[pho_rng_below(r, sizeof pho__numbers / sizeof pho__numbers[0])]);
            break;
        default: break;
        }
    }
}

typedef struct pho__choice {
    const char *tpl;
    unsigned weight;
} pho__choice;

static const char *pho__choose(const pho__choice *c, size_t n, pho_rng *r)
{
    unsigned total = 0;
    for (size_t i = 0; i < n; i++)
        total += c[i].weight;
    unsigned x = (unsigned)pho_rng_below(r, total);
    for (size_t i = 0; i < n; i++) {
        if (x < c[i].weight)
            return c[i].tpl;
        x -= c[i].weight;
    }
    return c[n - 1].tpl;
}

#define PHO__CHOOSE(arr, r) pho__choose((arr), sizeof(arr) / sizeof((arr)[0]), (r))

static const pho__choice pho__titles[] = {
    {"The {A} {N}", 10},
    {"The {N}", 2},
    {"The {Ns}", 2},
    {"{A} {N}", 4},
    {"{A} {Ns}", 4},
    {"A {A} {N}", 2},
    {"{N} of the {N}", 6},
    {"The {N} of {P}", 3},
    {"The {A} {N} of {H}", 1},
    {"{Ns} of {P}", 2},
    {"{F}'s {N}", 4},
    {"{S}'s {A} {N}", 2},
    {"{H}'s {N}", 1},
    {"A {N} in {P}", 4},
    {"A {N} for {F}", 1},
    {"{N} and {N}", 5},
    {"The {N} and the {N}", 3},
    {"{Ns}, {Ns} and {Ns}", 1},
    {"{F} and the {A} {N}", 2},
    {"{H} and the {N}", 1},
    {"{V} the {N}", 3},
    {"To {V} a {N}", 2},
    {"{N} {R} the {N}", 5},
    {"The {A} {N} {R} the {N}", 2},
    {"{R} the {A} {N}", 2},
    {"Return of the {N}", 1},
    {"Night of the {A} {Ns}", 1},
    {"The Last {N}", 2},
    {"My {A} {N}", 2},
    {"Our {A} {Ns}", 1},
    {"{P} {N}", 2},
    {"The {S} {N}", 2},
    {"{Ns} from {P}", 2},
    {"The {A} {X}", 2},
    {"{X} in {P}", 1},
    {"{M} {Ns}", 1},
    {"The {M} {A} {Ns}", 1},
    {"{F} {S} and the {N} of {P}", 1},
    {"When {F} Met {F}", 1},
    {"{V} Me {R} the {N}", 1},
};

static const pho__choice pho__subtitles[] = {
    {"The {A} {N}", 4},     {"{N} of the {N}", 3}, {"A {A} {N}", 2},   {"Return of the {N}", 1},
    {"The {Ns} of {P}", 1}, {"{R} the {N}", 2},    {"Part {M}", 1},
    {"The {S} {N}", 1},
};

static const pho__choice pho__sequels[] = {
    {" 2", 4}, {" 3", 2}, {" 4", 1}, {" Part 2", 1}, {" Part {M}", 1}, {" Returns", 1},
    {" Chapter {M}", 1},
};

static const pho__choice pho__phrases[] = {
    {"{C}", 35}, {"", 30}, /* "" means any expression, common or not */
    {"{A} {N}", 15}, {"{A} {Ns}", 5}, {"{V} the {N}", 10}, {"{N} {R} the {N}", 5},
};

static const pho__choice pho__names[] = {
    {"{H}", 40}, {"{F} {S}", 25}, {"{P}", 30}, {"{S}", 5},
};

static int pho__small_word(const char *w, size_t len)
{
    static const char *const small[] = {"a",  "an", "the", "of", "and", "in", "on", "at",
                                        "to", "for", "from", "with", "or", "by", "into",
                                        "upon", "de", "la", "le", "von", "van", "du", "da"};
    for (size_t i = 0; i < sizeof small / sizeof small[0]; i++)
        if (strlen(small[i]) == len && !strncmp(small[i], w, len))
            return 1;
    return 0;
}

/* "A" before a vowel letter becomes "An"; templates cannot know what word a
 * slot will bring. */
static void pho__fix_articles(pho__text *t)
{
    for (size_t i = 0; i + 2 < t->len; i++) {
        int word_start = i == 0 || t->s[i - 1] == ' ';
        if (!word_start || (t->s[i] != 'A' && t->s[i] != 'a') || t->s[i + 1] != ' ')
            continue;
        if (!strchr("aeiouAEIOU", t->s[i + 2]) || t->len + 1 >= sizeof t->s)
            continue;
        memmove(t->s + i + 2, t->s + i + 1, t->len - i); /* moves the NUL too */
        t->s[i + 1] = 'n';
        t->len++;
    }
}

/* Headline capitalisation: every word but short function words, which are
 * capitalised only at the start or right after a colon. */
static void pho__title_case(char *s)
{
    int start = 1;
    for (char *p = s; *p;) {
        size_t len = strcspn(p, " ");
        if (len > 0 && (start || !pho__small_word(p, len)) && islower((unsigned char)*p))
            *p = (char)toupper((unsigned char)*p);
        start = len > 0 && p[len - 1] == ':';
        p += len;
        while (*p == ' ')
            p++;
    }
}

static size_t pho__word_count(const char *s)
{
    size_t n = 0;
    for (const char *p = s; *p;) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        n++;
        p += strcspn(p, " ");
    }
    return n;
}

static enum pho_phrase_kind pho__pick_kind(unsigned kinds, pho_rng *r)
{
    /* Entity names are mostly multi-word, so titles and phrases dominate. */
    static const struct {
        enum pho_phrase_kind kind;
        unsigned weight;
    } mix[] = {
        {PHO_KIND_WORD, 12}, {PHO_KIND_PHRASE, 25}, {PHO_KIND_NAME, 15}, {PHO_KIND_TITLE, 48},
    };
    unsigned total = 0;
    for (size_t i = 0; i < sizeof mix / sizeof mix[0]; i++)
        if (kinds & mix[i].kind)
            total += mix[i].weight;
    unsigned x = (unsigned)pho_rng_below(r, total);
    for (size_t i = 0; i < sizeof mix / sizeof mix[0]; i++) {
        if (!(kinds & mix[i].kind))
            continue;
        if (x < mix[i].weight)
            return mix[i].kind;
        x -= mix[i].weight;
    }
    return PHO_KIND_TITLE;
}

static void pho__generate(const pho_phrasegen *g, pho_rng *r, enum pho_phrase_kind kind,
                          pho__text *t)
{
    t->len = 0;
    t->overflow = 0;
    t->s[0] = '\0';
    switch (kind) {
    case PHO_KIND_WORD: {
        double x = pho_rng_unit(r);
        int pool = x < 0.55 ? PHO__NOUN : x < 0.75 ? PHO__ADJ : x < 0.95 ? PHO__VERB : PHO__ADV;
        pho__puts(t, pho__pick(&g->pools[pool], r));
        break;
    }
    case PHO_KIND_PHRASE: {
        const char *tpl = PHO__CHOOSE(pho__phrases, r);
        if (*tpl)
            pho__expand(g, r, tpl, t);
        else
            pho__puts(t, pho__pick(&g->pools[PHO__EXPR], r));
        break;
    }
    case PHO_KIND_NAME:
        pho__expand(g, r, PHO__CHOOSE(pho__names, r), t);
        break;
    case PHO_KIND_TITLE:
    default:
        pho__expand(g, r, PHO__CHOOSE(pho__titles, r), t);
        if (pho_rng_unit(r) < 0.07)
            pho__expand(g, r, PHO__CHOOSE(pho__sequels, r), t);
        if (pho_rng_unit(r) < 0.12) {
            pho__puts(t, ": ");
            pho__expand(g, r, PHO__CHOOSE(pho__subtitles, r), t);
        }
        pho__title_case(t->s);
        break;
    }
    pho__fix_articles(t);
}

/* Open-addressed set of 64-bit phrase hashes; 0 marks an empty slot. */
typedef struct pho__seen {
    uint64_t *slot;
    size_t mask;
} pho__seen;

static int pho__seen_add(pho__seen *s, const char *text)
{
    char low[PHO_PHRASE_MAX];
    size_t len = 0;
    for (; text[len] && len + 1 < sizeof low; len++)
        low[len] = (char)tolower((unsigned char)text[len]);
    uint64_t h = erd_fnv1a64(ERD_FNV1A64_OFFSET, low, len);
    h += h == 0;
    size_t j = (size_t)h & s->mask;
    while (s->slot[j]) {
        if (s->slot[j] == h)
            return 0;
        j = (j + 1) & s->mask;
    }
    s->slot[j] = h;
    return 1;
}

int pho_phrasegen_run(pho_phrasegen *g, uint64_t seed, size_t count, unsigned kinds,
                      pho_phrase_fn fn, void *ctx, erd_diag *diag)
{
    pho__seen seen = {0};
    pho_rng r;
    pho__text t;
    size_t cap = 16;
    int rc = ERD_OK;

    if (!g || !fn || !(kinds & PHO_KIND_ALL))
        return erd_fail(diag, ERD_EINVAL, "phrase generator: bad arguments");
    if (count > PHO__MAX_COUNT)
        return erd_fail(diag, ERD_ETOOLONG, "at most %zu phrases per run", PHO__MAX_COUNT);
    while (cap < count * 2)
        cap *= 2;
    seen.slot = calloc(cap, sizeof *seen.slot);
    if (!seen.slot)
        return erd_fail(diag, ERD_ENOMEM, "phrase set for %zu phrases", count);
    seen.mask = cap - 1;

    pho_rng_seed(&r, seed, 0x706872617365ull /* "phrase" */);
    for (size_t i = 0; i < count; i++) {
        enum pho_phrase_kind kind = PHO_KIND_WORD;
        int found = 0;
        for (int attempt = 0; attempt < PHO__MAX_RETRIES && !found; attempt++) {
            kind = pho__pick_kind(kinds, &r);
            pho__generate(g, &r, kind, &t);
            size_t words = pho__word_count(t.s);
            if (t.overflow || words == 0)
                continue;
            if (kind == PHO_KIND_TITLE && (words < 2 || words > 8))
                continue;
            found = pho__seen_add(&seen, t.s);
        }
        if (!found) {
            rc = erd_fail(diag, ERD_ETOOLONG,
                          "word pools ran out of distinct phrases after %zu of %zu", i, count);
            goto out;
        }
        if ((rc = fn(ctx, t.s, kind)) < 0)
            goto out;
    }
out:
    free(seen.slot);
    return rc;
}
