/* Training the semantic model: corpus from WordNet and generated
 * equivalences, then fastText-style skip-gram with negative sampling.
 *
 * Corpus.  Skip-gram makes two words alike when they are seen in the same
 * contexts, so every equivalence is written as the same context around each
 * form: each lemma of a WordNet synset is followed by the synset's gloss
 * ("car a motor vehicle with four wheels ...", "automobile a motor vehicle
 * ..."); a number appears as digits, words and roman numerals between the
 * same randomly drawn title words ("part 2 of", "part two of", "part ii of");
 * likewise ordinals and common abbreviations.  Everything goes through
 * pho_normalize, the function that prepares catalog names and hypotheses,
 * so training sees words exactly as the encoder will ("&" is already "and"
 * there).
 *
 * Determinism with threads.  Hogwild updates depend on timing; instead each
 * round starts both shards from the same parameters, each trains its half
 * of the round's sentences on a private copy, and the two deltas are added
 * in a fixed order.  The shard count is fixed (2), so the weights depend on
 * the seed alone, not on how many threads ran the shards. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "phonetics/pho_internal.h"
#include "phonetics/pho_semantic.h"
#include "phonetics/pho_text.h"
#include "phonetics/sim/pho_rng.h"

#define PHO__SHARDS 2
#define PHO__ROUND_TOKENS 200000 /* per shard: large enough that copying is cheap */
#define PHO__NEG_TABLE (1u << 20)
#define PHO__SUBSAMPLE 1e-4
#define PHO__SIF_A 1e-3
#define PHO__SUB_MAX 64 /* rows per word: itself plus its n-grams */
#define PHO__SENT_MAX 256

void pho_sem_train_opts_init(pho_sem_train_opts *o)
{
    *o = (pho_sem_train_opts){
        .wordnet_dir = "/usr/share/wordnet",
        .seed = 1,
        .dim = 64,
        .bucket_bits = 16,
        .max_words = 30000,
        .min_count = 2,
        .epochs = 5,
        .window = 5,
        .negatives = 5,
        .lr = 0.05f,
        .subsample = PHO__SUBSAMPLE,
        .threads = 2,
        .retrofit = 10,
    };
}

void pho_sem_weights_free(pho_sem_weights *w)
{
    if (!w)
        return;
    if (w->words)
        for (uint32_t i = 0; i < w->n_words; i++)
            free(w->words[i]);
    free(w->words);
    free(w->weight);
    free(w->rows);
    *w = (pho_sem_weights){0};
}

static double pho__unif(uint64_t *s)
{
    return (double)(pho_splitmix64(s) >> 11) / 9007199254740992.0;
}

/* ---- corpus: interned words, sentences as id runs ---- */

typedef struct pho__corpus {
    char *arena;
    size_t arena_len, arena_cap;
    uint32_t *off;   /* per word: offset in arena */
    uint64_t *count; /* per word */
    size_t n_words, words_cap;
    uint32_t *table;
    size_t table_cap; /* power of two */
    uint32_t *tok;
    size_t n_tok, tok_cap;
    size_t *sent; /* start of each sentence in tok; n_sent + 1 entries */
    size_t n_sent, sent_cap;
    uint64_t hash;
    /* equivalence groups of single words, for retrofitting: ids in eq,
     * group g spans eq[eq_start[g] .. eq_start[g + 1]) */
    uint32_t *eq;
    size_t n_eq, eq_cap;
    size_t *eq_start;
    size_t n_groups, groups_cap;
} pho__corpus;

static void pho__corpus_free(pho__corpus *c)
{
    free(c->arena);
    free(c->off);
    free(c->count);
    free(c->table);
    free(c->tok);
    free(c->sent);
    free(c->eq);
    free(c->eq_start);
}

static int pho__grow(void **p, size_t *cap, size_t need, size_t elem)
{
    size_t ncap;
    void *np;

    if (need <= *cap)
        return ERD_OK;
    ncap = *cap ? *cap : 1024;
    while (ncap < need)
        ncap *= 2;
    np = realloc(*p, ncap * elem);
    if (!np)
        return ERD_ENOMEM;
    *p = np;
    *cap = ncap;
    return ERD_OK;
}

static uint64_t pho__h(const char *w, size_t len)
{
    uint64_t h = erd_fnv1a64(ERD_FNV1A64_OFFSET, w, len);
    h ^= h >> 29;
    return h * 0xbf58476d1ce4e5b9ULL;
}

static int pho__rehash(pho__corpus *c, size_t cap)
{
    uint32_t *t = calloc(cap, sizeof *t);

    if (!t)
        return ERD_ENOMEM;
    for (size_t i = 0; i < c->n_words; i++) {
        const char *w = c->arena + c->off[i];
        for (uint64_t h = pho__h(w, strlen(w));; h++)
            if (!t[h & (cap - 1)]) {
                t[h & (cap - 1)] = (uint32_t)i + 1;
                break;
            }
    }
    free(c->table);
    c->table = t;
    c->table_cap = cap;
    return ERD_OK;
}

/* A word's id, interning it.  ERD_ETOOLONG for a word the model does not
 * keep (empty or longer than PHO_SEM_WORD_MAX - 1 bytes): the caller skips
 * it; ERD_ENOMEM stops the reading. */
static long pho__intern(pho__corpus *c, const char *w, size_t len)
{
    uint64_t h;
    uint32_t *slot;

    if (len == 0 || len >= PHO_SEM_WORD_MAX)
        return ERD_ETOOLONG;
    if ((c->n_words + 1) * 2 > c->table_cap &&
        pho__rehash(c, c->table_cap ? c->table_cap * 2 : 1 << 16) < 0)
        return ERD_ENOMEM;
    for (h = pho__h(w, len);; h++) {
        slot = &c->table[h & (c->table_cap - 1)];
        if (!*slot)
            break;
        const char *s = c->arena + c->off[*slot - 1];
        if (strncmp(s, w, len) == 0 && s[len] == '\0')
            return (long)(*slot - 1);
    }
    if (pho__grow((void **)&c->arena, &c->arena_cap, c->arena_len + len + 1, 1) < 0 ||
        pho__grow((void **)&c->off, &c->words_cap, c->n_words + 1, sizeof *c->off) < 0)
        return ERD_ENOMEM;
    {
        /* count shares off's capacity */
        uint64_t *nc = realloc(c->count, c->words_cap * sizeof *nc);
        if (!nc)
            return ERD_ENOMEM;
        c->count = nc;
    }
    memcpy(c->arena + c->arena_len, w, len);
    c->arena[c->arena_len + len] = '\0';
    c->off[c->n_words] = (uint32_t)c->arena_len;
    c->count[c->n_words] = 0;
    c->arena_len += len + 1;
    *slot = (uint32_t)c->n_words + 1;
    return (long)c->n_words++;
}

/* Normalises one sentence and appends its words; text that normalises to
 * nothing is skipped. */
static int pho__add_sentence(pho__corpus *c, const char *text, size_t len)
{
    char norm[PHO_TEXT_MAX];
    size_t nlen, start = c->n_tok, k = 0;
    int rc = pho_normalize(text, len, norm, sizeof norm, &nlen);

    if (rc == ERD_EEMPTY || rc == ERD_EUTF8 || rc == ERD_ETOOLONG)
        return ERD_OK;
    if (rc < 0)
        return rc;
    c->hash = erd_fnv1a64(c->hash, norm, nlen + 1);
    if (c->n_sent == 0 && pho__grow((void **)&c->sent, &c->sent_cap, 2, sizeof *c->sent) < 0)
        return ERD_ENOMEM;
    for (const char *p = norm; *p && k < PHO__SENT_MAX;) {
        size_t wl = strcspn(p, " ");
        long id = pho__intern(c, p, wl);
        if (id == ERD_ENOMEM)
            return ERD_ENOMEM;
        if (id >= 0) {
            if (pho__grow((void **)&c->tok, &c->tok_cap, c->n_tok + 1, sizeof *c->tok) < 0)
                return ERD_ENOMEM;
            c->tok[c->n_tok++] = (uint32_t)id;
            c->count[id]++;
            k++;
        }
        p += wl;
        while (*p == ' ')
            p++;
    }
    if (c->n_tok == start)
        return ERD_OK;
    if (pho__grow((void **)&c->sent, &c->sent_cap, c->n_sent + 2, sizeof *c->sent) < 0)
        return ERD_ENOMEM;
    c->sent[c->n_sent] = start;
    c->sent[++c->n_sent] = c->n_tok;
    return ERD_OK;
}

/* Records forms[0..n) as one meaning; forms that normalise to more than one
 * word are left to skip-gram (retrofitting moves single word vectors). */
static int pho__add_group(pho__corpus *c, const char *const *forms, size_t n)
{
    size_t start = c->n_eq;

    for (size_t i = 0; i < n; i++) {
        char norm[PHO_SEM_WORD_MAX];
        size_t len;
        long id;
        if (pho_normalize(forms[i], strlen(forms[i]), norm, sizeof norm, &len) < 0 ||
            memchr(norm, ' ', len))
            continue;
        id = pho__intern(c, norm, len);
        if (id == ERD_ENOMEM)
            return ERD_ENOMEM;
        if (id < 0)
            continue;
        if (pho__grow((void **)&c->eq, &c->eq_cap, c->n_eq + 1, sizeof *c->eq) < 0)
            return ERD_ENOMEM;
        c->eq[c->n_eq++] = (uint32_t)id;
    }
    if (c->n_eq - start < 2) {
        c->n_eq = start;
        return ERD_OK;
    }
    if (pho__grow((void **)&c->eq_start, &c->groups_cap, c->n_groups + 2, sizeof *c->eq_start) < 0)
        return ERD_ENOMEM;
    c->eq_start[c->n_groups] = start;
    c->eq_start[++c->n_groups] = c->n_eq;
    return ERD_OK;
}

/* ---- WordNet ---- */

/* One data.* line: "offset lex ss_type w_cnt word lex_id ... | gloss".
 * Adds "lemma gloss" per lemma and, for synonyms, all lemmas together. */
static int pho__wn_synset(pho__corpus *c, char *line, uint64_t *n_added)
{
    char *save = NULL, *tok, *bar = strstr(line, " | ");
    char lemmas[16][PHO_SEM_WORD_MAX * 2];
    char buf[PHO_TEXT_MAX * 2];
    const char *gloss = bar ? bar + 3 : "";
    unsigned long w_cnt;
    size_t n_lem = 0;
    int rc;

    if (bar)
        *bar = '\0';
    if (!strtok_r(line, " ", &save) || !strtok_r(NULL, " ", &save) || !strtok_r(NULL, " ", &save))
        return ERD_OK;
    tok = strtok_r(NULL, " ", &save);
    if (!tok)
        return ERD_OK;
    w_cnt = strtoul(tok, NULL, 16);
    for (unsigned long i = 0; i < w_cnt; i++) {
        char *word = strtok_r(NULL, " ", &save);
        if (!word || !strtok_r(NULL, " ", &save))
            break;
        char *paren = strchr(word, '(');
        if (paren)
            *paren = '\0'; /* adjective markers: "able(a)" */
        if (n_lem < 16 && strlen(word) < sizeof lemmas[0]) {
            for (char *p = word; *p; p++)
                if (*p == '_')
                    *p = ' ';
            snprintf(lemmas[n_lem++], sizeof lemmas[0], "%s", word);
        }
    }
    for (size_t i = 0; i < n_lem; i++) {
        int n = snprintf(buf, sizeof buf, "%s %s", lemmas[i], gloss);
        if (n < 0)
            continue;
        rc = pho__add_sentence(c, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
        if (rc < 0)
            return rc;
        (*n_added)++;
    }
    if (n_lem > 1) {
        const char *forms[16];
        for (size_t i = 0; i < n_lem; i++)
            forms[i] = lemmas[i];
        rc = pho__add_group(c, forms, n_lem);
        if (rc < 0)
            return rc;
        size_t len = 0;
        for (size_t i = 0; i < n_lem && len + sizeof lemmas[0] + 1 < sizeof buf; i++)
            len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%s", i ? " " : "", lemmas[i]);
        rc = pho__add_sentence(c, buf, len);
        if (rc < 0)
            return rc;
        (*n_added)++;
    }
    return ERD_OK;
}

static int pho__wn_file(pho__corpus *c, const char *dir, const char *name, int exc,
                        uint64_t *n_added, erd_diag *diag)
{
    char path[4096], line[1 << 14];
    FILE *f;
    int rc = ERD_OK;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "r");
    if (!f)
        return erd_fail(diag, ERD_ENOTFOUND, "WordNet file %s cannot be read (install Debian's "
                        "wordnet-base)", path);
    while (fgets(line, sizeof line, f)) {
        size_t len = strcspn(line, "\r\n");
        line[len] = '\0';
        if (line[0] == ' ' || line[0] == '\0')
            continue; /* the licence header */
        if (exc) {
            /* "children child": an inflection and its base form */
            for (char *p = line; *p; p++)
                if (*p == '_')
                    *p = ' ';
            rc = pho__add_sentence(c, line, len);
            (*n_added)++;
        } else {
            rc = pho__wn_synset(c, line, n_added);
        }
        if (rc < 0) {
            rc = erd_fail(diag, rc, "out of memory reading %s", path);
            break;
        }
    }
    fclose(f);
    return rc;
}

/* ---- generated equivalences ---- */

static const char *const pho__ones[] = {
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen"};
static const char *const pho__tens[] = {"", "", "twenty", "thirty", "forty", "fifty", "sixty",
                                        "seventy", "eighty", "ninety"};
static const char *const pho__ord_ones[] = {
    "zeroth", "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth",
    "ninth", "tenth", "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth",
    "sixteenth", "seventeenth", "eighteenth", "nineteenth"};
static const char *const pho__ord_tens[] = {"", "", "twentieth", "thirtieth", "fortieth",
                                            "fiftieth", "sixtieth", "seventieth", "eightieth",
                                            "ninetieth"};

/* Words around numbers and abbreviations in titles. */
static const char *const pho__ctx[] = {
    "part", "chapter", "season", "episode", "volume", "book", "day", "days", "night", "nights",
    "year", "years", "men", "women", "girls", "boys", "kings", "brothers", "sisters", "friends",
    "weeks", "hours", "minutes", "miles", "ways", "lives", "rooms", "doors", "keys", "steps",
    "reasons", "the", "of", "and", "number", "act", "level", "world", "war", "life", "love",
    "story", "game", "games", "rules", "seconds", "faces", "colors", "dead", "little", "big",
    "last", "lost", "secret", "house", "city", "street", "time", "times", "dogs", "cats",
    "wives", "lovers", "strangers", "summer", "winter", "dreams", "stars", "moons", "sons",
    "daughters", "tales", "songs", "letters", "graves", "rings", "princes", "knights", "heroes"};
#define PHO__N_CTX (sizeof pho__ctx / sizeof pho__ctx[0])

static const char *const pho__abbrev[][2] = {
    {"vs", "versus"},   {"dr", "doctor"},      {"mr", "mister"},     {"mrs", "missus"},
    {"st", "saint"},    {"pt", "part"},        {"vol", "volume"},    {"ep", "episode"},
    {"ch", "chapter"},  {"jr", "junior"},      {"sr", "senior"},     {"mt", "mount"},
    {"ft", "featuring"}, {"feat", "featuring"}, {"n", "and"},        {"u", "you"},
    {"ur", "your"},     {"thru", "through"},   {"nite", "night"},    {"tonite", "tonight"},
    {"luv", "love"},    {"xmas", "christmas"}, {"w", "with"},        {"ave", "avenue"},
    {"blvd", "boulevard"}, {"ltd", "limited"}, {"co", "company"},    {"intl", "international"},
    {"natl", "national"}, {"dept", "department"}, {"govt", "government"}, {"pres", "president"},
    {"capt", "captain"}, {"sgt", "sergeant"},  {"lt", "lieutenant"}, {"gen", "general"},
    {"prof", "professor"}, {"bros", "brothers"}, {"ok", "okay"},     {"tv", "television"},
};

static void pho__cardinal(unsigned n, char *out, size_t cap)
{
    if (n < 20)
        snprintf(out, cap, "%s", pho__ones[n]);
    else if (n < 100)
        snprintf(out, cap, "%s%s%s", pho__tens[n / 10], n % 10 ? " " : "",
                 n % 10 ? pho__ones[n % 10] : "");
    else if (n == 100)
        snprintf(out, cap, "one hundred");
    else
        snprintf(out, cap, "one thousand");
}

static void pho__ordinal(unsigned n, char *out, size_t cap)
{
    if (n < 20)
        snprintf(out, cap, "%s", pho__ord_ones[n]);
    else if (n % 10 == 0)
        snprintf(out, cap, "%s", pho__ord_tens[n / 10]);
    else
        snprintf(out, cap, "%s %s", pho__tens[n / 10], pho__ord_ones[n % 10]);
}

static void pho__roman(unsigned n, char *out, size_t cap)
{
    static const struct {
        unsigned v;
        const char *s;
    } t[] = {{50, "l"}, {40, "xl"}, {10, "x"}, {9, "ix"}, {5, "v"}, {4, "iv"}, {1, "i"}};
    size_t len = 0;

    out[0] = '\0';
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        while (n >= t[i].v && len + 3 < cap) {
            len += (size_t)snprintf(out + len, cap - len, "%s", t[i].s);
            n -= t[i].v;
        }
}

static const char *pho__suffix(unsigned n)
{
    if (n % 100 >= 11 && n % 100 <= 13)
        return "th";
    return n % 10 == 1 ? "st" : n % 10 == 2 ? "nd" : n % 10 == 3 ? "rd" : "th";
}

/* Each form of one meaning between the same n_ctx context pairs. */
static int pho__forms(pho__corpus *c, const char *const *forms, size_t n_forms, unsigned n_ctx,
                      uint64_t *rng, uint64_t *n_added)
{
    char buf[256];
    int rc = pho__add_group(c, forms, n_forms);

    if (rc < 0)
        return rc;
    /* all forms side by side too: "2 two ii" */
    size_t len = 0;
    for (size_t j = 0; j < n_forms; j++)
        len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%s", j ? " " : "", forms[j]);
    rc = pho__add_sentence(c, buf, len);
    if (rc < 0)
        return rc;
    (*n_added)++;
    for (unsigned k = 0; k < n_ctx; k++) {
        const char *l = pho__ctx[pho_splitmix64(rng) % PHO__N_CTX];
        const char *r = pho__ctx[pho_splitmix64(rng) % PHO__N_CTX];
        for (size_t i = 0; i < n_forms; i++) {
            int n = snprintf(buf, sizeof buf, "%s %s %s", l, forms[i], r);
            if (n < 0 || (size_t)n >= sizeof buf)
                continue;
            rc = pho__add_sentence(c, buf, (size_t)n);
            if (rc < 0)
                return rc;
            (*n_added)++;
        }
    }
    return ERD_OK;
}

static int pho__generated(pho__corpus *c, uint64_t seed, uint64_t *n_added)
{
    static const unsigned extra[] = {100, 1000};
    uint64_t rng = seed ^ 0x6e756d62657273ULL;
    char a[64], b[64], d[64], e[64];
    int rc;

    for (unsigned n = 0; n < 100 + 2; n++) {
        unsigned v = n < 100 ? n : extra[n - 100];
        const char *forms[3] = {a, b, d};
        snprintf(a, sizeof a, "%u", v);
        pho__cardinal(v, b, sizeof b);
        pho__roman(v, d, sizeof d);
        rc = pho__forms(c, forms, v >= 1 && v < 90 ? 3 : 2, 30, &rng, n_added);
        if (rc < 0)
            return rc;
        if (v >= 1 && v < 100) {
            const char *ord[2] = {d, e};
            snprintf(d, sizeof d, "%u%s", v, pho__suffix(v));
            pho__ordinal(v, e, sizeof e);
            rc = pho__forms(c, ord, 2, 20, &rng, n_added);
            if (rc < 0)
                return rc;
        }
    }
    for (size_t i = 0; i < sizeof pho__abbrev / sizeof pho__abbrev[0]; i++) {
        rc = pho__forms(c, pho__abbrev[i], 2, 40, &rng, n_added);
        if (rc < 0)
            return rc;
    }
    return ERD_OK;
}

/* ---- skip-gram ---- */

typedef struct pho__model {
    uint32_t dim, V, B;
    float *in;  /* (V + B) x dim */
    float *out; /* V x dim */
    size_t n_in, n_out;
} pho__model;

typedef struct pho__trainer {
    const pho_sem_train_opts *o;
    uint32_t V;
    const uint32_t *tok; /* vocabulary ids, OOV dropped */
    const size_t *sent;
    size_t n_sent;
    const uint32_t *sub_off; /* V + 1 offsets into sub */
    const uint32_t *sub;     /* rows per word: itself, then its n-grams */
    const float *keep;       /* subsampling keep probability per word */
    const uint32_t *neg;     /* PHO__NEG_TABLE entries */
    double total_tokens;
} pho__trainer;

typedef struct pho__shard {
    const pho__trainer *t;
    pho__model m; /* private copy */
    const uint32_t *order;
    size_t first, last; /* this round's slice of order */
    unsigned index;
    double done_before; /* tokens before this round, all shards */
    uint64_t rng;
    double loss;
    uint64_t loss_n, tokens;
    float *h, *grad;
} pho__shard;

static float pho__sigmoid(float x)
{
    if (x > 8.0f)
        x = 8.0f;
    if (x < -8.0f)
        x = -8.0f;
    return 1.0f / (1.0f + expf(-x));
}

static void pho__train_pair(pho__shard *s, uint32_t center, uint32_t target, float lr)
{
    const pho__trainer *t = s->t;
    const uint32_t dim = s->m.dim;
    const uint32_t *rows = t->sub + t->sub_off[center];
    const uint32_t nr = t->sub_off[center + 1] - t->sub_off[center];
    float *h = s->h, *grad = s->grad;

    memset(h, 0, sizeof *h * dim);
    memset(grad, 0, sizeof *grad * dim);
    for (uint32_t r = 0; r < nr; r++) {
        const float *v = s->m.in + (size_t)rows[r] * dim;
        for (uint32_t i = 0; i < dim; i++)
            h[i] += v[i];
    }
    for (uint32_t i = 0; i < dim; i++)
        h[i] /= (float)nr;
    for (uint32_t k = 0; k <= t->o->negatives; k++) {
        uint32_t w = target;
        float label = 1.0f;
        if (k > 0) {
            w = t->neg[pho_splitmix64(&s->rng) & (PHO__NEG_TABLE - 1)];
            if (w == target)
                continue;
            label = 0.0f;
        }
        float *o = s->m.out + (size_t)w * dim, dot = 0.0f;
        for (uint32_t i = 0; i < dim; i++)
            dot += o[i] * h[i];
        float p = pho__sigmoid(dot), a = lr * (label - p);
        s->loss += -log(label > 0.0f ? (p > 1e-5f ? p : 1e-5f) : (1.0f - p > 1e-5f ? 1.0f - p : 1e-5f));
        s->loss_n++;
        for (uint32_t i = 0; i < dim; i++) {
            grad[i] += a * o[i];
            o[i] += a * h[i];
        }
    }
    for (uint32_t r = 0; r < nr; r++) {
        float *v = s->m.in + (size_t)rows[r] * dim;
        for (uint32_t i = 0; i < dim; i++)
            v[i] += grad[i];
    }
}

static void *pho__shard_run(void *arg)
{
    pho__shard *s = arg;
    const pho__trainer *t = s->t;
    uint32_t kept[PHO__SENT_MAX];
    double done = 0.0;

    for (size_t j = s->first + s->index; j < s->last; j += PHO__SHARDS) {
        const uint32_t *w = t->tok + t->sent[s->order[j]];
        size_t n = t->sent[s->order[j] + 1] - t->sent[s->order[j]], k = 0;
        double progress = (s->done_before + done * PHO__SHARDS) / t->total_tokens;
        float lr = t->o->lr * (float)(1.0 - (progress < 1.0 ? progress : 1.0));

        if (lr < t->o->lr * 1e-4f)
            lr = t->o->lr * 1e-4f;
        for (size_t i = 0; i < n && k < PHO__SENT_MAX; i++)
            if (pho__unif(&s->rng) < t->keep[w[i]])
                kept[k++] = w[i];
        for (size_t i = 0; i < k; i++) {
            uint32_t b = 1 + (uint32_t)(pho_splitmix64(&s->rng) % t->o->window);
            for (size_t c = i >= b ? i - b : 0; c <= i + b && c < k; c++)
                if (c != i)
                    pho__train_pair(s, kept[i], kept[c], lr);
        }
        done += (double)n;
    }
    s->tokens = (uint64_t)done;
    return NULL;
}

typedef struct pho__merge {
    float *p;
    const float *c[PHO__SHARDS];
    size_t from, to;
} pho__merge;

static void *pho__merge_run(void *arg)
{
    pho__merge *m = arg;

    for (size_t i = m->from; i < m->to; i++) {
        float base = m->p[i], v = base;
        for (unsigned s = 0; s < PHO__SHARDS; s++)
            v += m->c[s][i] - base;
        m->p[i] = v;
    }
    return NULL;
}

/* Runs fn over args on up to `threads` threads; the result never depends
 * on how many. */
static int pho__parallel(void *(*fn)(void *), void *args, size_t size, unsigned n, unsigned threads)
{
    pthread_t th[PHO__SHARDS];
    unsigned started = 0;

    if (threads < 2) {
        for (unsigned i = 0; i < n; i++)
            fn((char *)args + i * size);
        return ERD_OK;
    }
    for (unsigned i = 1; i < n; i++) {
        if (pthread_create(&th[i], NULL, fn, (char *)args + i * size) != 0)
            break;
        started = i;
    }
    fn(args);
    for (unsigned i = 1; i <= started; i++)
        pthread_join(th[i], NULL);
    for (unsigned i = started + 1; i < n; i++)
        fn((char *)args + i * size); /* threads that could not start */
    return ERD_OK;
}

static int pho__cmp_vocab(const void *a, const void *b, void *ctx)
{
    const pho__corpus *c = ctx;
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    if (c->count[x] != c->count[y])
        return c->count[x] > c->count[y] ? -1 : 1;
    return strcmp(c->arena + c->off[x], c->arena + c->off[y]);
}

static int pho__cmp_edge(const void *a, const void *b)
{
    const uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Retrofitting (Faruqui et al. 2015) of the trained word vectors to the
 * equivalence groups: skip-gram puts "2" among the other digits (they
 * share contexts), while a catalog needs "2" next to "two".  Each word
 * vector moves to the mean of its own trained vector and its equivalents',
 * repeated; the word's own row absorbs the change so its n-gram rows, which
 * unseen words share, are left as trained. */
static int pho__retrofit(const pho__corpus *c, const uint32_t *remap, uint32_t V,
                         const uint32_t *sub_off, const uint32_t *sub, float *in, uint32_t dim,
                         uint32_t iters)
{
    uint64_t *edges = NULL;
    size_t n_edges = 0, cap = 0;
    uint32_t *adj_off = NULL, *adj = NULL;
    float *q = NULL, *qhat = NULL, *norm = NULL;
    int rc = ERD_ENOMEM;

    if (iters == 0)
        return ERD_OK;
    for (size_t g = 0; g < c->n_groups; g++)
        for (size_t a = c->eq_start[g]; a < c->eq_start[g + 1]; a++)
            for (size_t b = c->eq_start[g]; b < c->eq_start[g + 1]; b++) {
                uint32_t x = remap[c->eq[a]], y = remap[c->eq[b]];
                if (x == UINT32_MAX || y == UINT32_MAX || x == y)
                    continue;
                if (pho__grow((void **)&edges, &cap, n_edges + 1, sizeof *edges) < 0)
                    goto out;
                edges[n_edges++] = (uint64_t)x << 32 | y;
            }
    qsort(edges, n_edges, sizeof *edges, pho__cmp_edge);
    adj_off = calloc((size_t)V + 1, sizeof *adj_off);
    adj = malloc(sizeof *adj * (n_edges ? n_edges : 1));
    q = malloc(sizeof *q * (size_t)V * dim);
    qhat = malloc(sizeof *qhat * (size_t)V * dim);
    norm = malloc(sizeof *norm * V);
    if (!adj_off || !adj || !q || !qhat || !norm)
        goto out;
    {
        size_t m = 0;
        for (size_t e = 0; e < n_edges; e++) {
            if (e > 0 && edges[e] == edges[e - 1])
                continue;
            adj[m++] = (uint32_t)edges[e];
            adj_off[(edges[e] >> 32) + 1]++;
        }
        for (uint32_t v = 0; v < V; v++)
            adj_off[v + 1] += adj_off[v];
    }
    for (uint32_t v = 0; v < V; v++) {
        float *f = qhat + (size_t)v * dim;
        uint32_t nr = sub_off[v + 1] - sub_off[v];
        double n2 = 0.0;
        memset(f, 0, sizeof *f * dim);
        for (uint32_t r = sub_off[v]; r < sub_off[v + 1]; r++)
            for (uint32_t i = 0; i < dim; i++)
                f[i] += in[(size_t)sub[r] * dim + i];
        for (uint32_t i = 0; i < dim; i++) {
            f[i] /= (float)nr;
            n2 += (double)f[i] * f[i];
        }
        norm[v] = (float)sqrt(n2);
        for (uint32_t i = 0; i < dim; i++)
            f[i] = norm[v] > 0.0f ? f[i] / norm[v] : 0.0f;
    }
    memcpy(q, qhat, sizeof *q * (size_t)V * dim);
    for (uint32_t it = 0; it < iters; it++)
        for (uint32_t v = 0; v < V; v++) {
            uint32_t deg = adj_off[v + 1] - adj_off[v];
            float *qv = q + (size_t)v * dim;
            const float *hv = qhat + (size_t)v * dim;
            if (deg == 0)
                continue;
            for (uint32_t i = 0; i < dim; i++)
                qv[i] = hv[i];
            for (uint32_t k = adj_off[v]; k < adj_off[v + 1]; k++) {
                const float *qn = q + (size_t)adj[k] * dim;
                for (uint32_t i = 0; i < dim; i++)
                    qv[i] += qn[i] / (float)deg;
            }
            for (uint32_t i = 0; i < dim; i++)
                qv[i] *= 0.5f;
        }
    for (uint32_t v = 0; v < V; v++) {
        uint32_t nr = sub_off[v + 1] - sub_off[v];
        float *qv = q + (size_t)v * dim, *row = in + (size_t)v * dim;
        double n2 = 0.0;
        if (adj_off[v + 1] == adj_off[v])
            continue;
        for (uint32_t i = 0; i < dim; i++)
            n2 += (double)qv[i] * qv[i];
        if (n2 <= 0.0)
            continue;
        /* the word vector is (own row + n-gram rows) / nr: solve for the own row */
        for (uint32_t i = 0; i < dim; i++) {
            float target = (float)(qv[i] / sqrt(n2)) * norm[v] * (float)nr;
            for (uint32_t r = sub_off[v] + 1; r < sub_off[v + 1]; r++)
                target -= in[(size_t)sub[r] * dim + i];
            row[i] = target;
        }
    }
    rc = ERD_OK;
out:
    free(edges);
    free(adj_off);
    free(adj);
    free(q);
    free(qhat);
    free(norm);
    return rc;
}

/* What training a corpus holds from vocabulary to weights. */
typedef struct pho__training {
    const pho_sem_train_opts *o;
    pho__corpus *c;
    pho__trainer t;
    pho__shard shards[PHO__SHARDS];
    pho__model P;
    pho_sem_weights w;
    uint32_t *by_count, *remap, *tok, *sub_off, *sub, *neg, *order;
    size_t *sent, n_sent, n_tok, n_sub;
    float *keep;
    uint64_t rng;
    uint32_t V;
    double last_loss;
} pho__training;

static void pho__training_free(pho__training *tr)
{
    pho_sem_weights_free(&tr->w);
    for (unsigned s = 0; s < PHO__SHARDS; s++) {
        free(tr->shards[s].m.in);
        free(tr->shards[s].m.out);
        free(tr->shards[s].h);
        free(tr->shards[s].grad);
    }
    free(tr->P.in);
    free(tr->P.out);
    free(tr->by_count);
    free(tr->remap);
    free(tr->tok);
    free(tr->sent);
    free(tr->keep);
    free(tr->sub_off);
    free(tr->sub);
    free(tr->neg);
    free(tr->order);
}

/* The vocabulary: the most frequent words, ties by spelling. */
static int pho__train_vocab(pho__training *tr, erd_diag *diag)
{
    const pho_sem_train_opts *o = tr->o;
    pho__corpus *c = tr->c;
    tr->by_count = malloc(sizeof *tr->by_count * c->n_words);
    tr->remap = malloc(sizeof *tr->remap * c->n_words);
    if (!tr->by_count || !tr->remap)
        return erd_fail(diag, ERD_ENOMEM, "out of memory building the vocabulary");
    for (size_t i = 0; i < c->n_words; i++)
        tr->by_count[i] = (uint32_t)i;
    qsort_r(tr->by_count, c->n_words, sizeof *tr->by_count, pho__cmp_vocab, c);
    for (size_t i = 0; i < c->n_words; i++)
        tr->remap[i] = UINT32_MAX;
    for (size_t i = 0; i < c->n_words && tr->V < o->max_words; i++) {
        if (c->count[tr->by_count[i]] < o->min_count)
            break;
        tr->remap[tr->by_count[i]] = tr->V++;
    }
    if (tr->V == 0)
        return erd_fail(diag, ERD_EEMPTY, "no word occurs %u times", o->min_count);
    return ERD_OK;
}

/* The sentences in vocabulary ids, those with fewer than two dropped. */
static int pho__train_sentences(pho__training *tr, erd_diag *diag)
{
    pho__corpus *c = tr->c;
    tr->tok = malloc(sizeof *tr->tok * c->n_tok);
    tr->sent = malloc(sizeof *tr->sent * (c->n_sent + 1));
    if (!tr->tok || !tr->sent)
        return erd_fail(diag, ERD_ENOMEM, "out of memory for the corpus");
    size_t n_tok = 0, n_sent = 0;
    for (size_t s = 0; s < c->n_sent; s++) {
        size_t start = n_tok;
        for (size_t i = c->sent[s]; i < c->sent[s + 1]; i++)
            if (tr->remap[c->tok[i]] != UINT32_MAX)
                tr->tok[n_tok++] = tr->remap[c->tok[i]];
        if (n_tok - start >= 2)
            tr->sent[n_sent++] = start;
        else
            n_tok = start;
    }
    tr->sent[n_sent] = n_tok;
    tr->n_tok = n_tok;
    tr->n_sent = n_sent;
    if (n_sent == 0)
        return erd_fail(diag, ERD_EEMPTY, "no sentence has two vocabulary words");
    return ERD_OK;
}

/* Per word: its spelling, SIF weight, subsampling keep probability and
 * subword rows; and the negative-sampling table. */
static int pho__train_words(pho__training *tr, erd_diag *diag)
{
    const pho_sem_train_opts *o = tr->o;
    pho__corpus *c = tr->c;
    uint32_t V = tr->V;
    pho_sem_weights *w = &tr->w;
    w->dim = o->dim;
    w->bucket_bits = o->bucket_bits;
    w->words = calloc(V, sizeof *w->words);
    w->weight = malloc(sizeof *w->weight * V);
    tr->keep = malloc(sizeof *tr->keep * V);
    tr->sub_off = malloc(sizeof *tr->sub_off * (V + 1));
    tr->sub = malloc(sizeof *tr->sub * (size_t)V * PHO__SUB_MAX);
    tr->neg = malloc(sizeof *tr->neg * PHO__NEG_TABLE);
    if (!w->words || !w->weight || !tr->keep || !tr->sub_off || !tr->sub || !tr->neg)
        return erd_fail(diag, ERD_ENOMEM, "out of memory for the vocabulary");
    w->n_words = V;
    uint64_t total = 0;
    for (uint32_t v = 0; v < V; v++)
        total += c->count[tr->by_count[v]];
    double zsum = 0.0, acc = 0.0;
    size_t pos = 0, n_sub = 0;
    for (uint32_t v = 0; v < V; v++)
        zsum += sqrt((double)c->count[tr->by_count[v]]);
    for (uint32_t v = 0; v < V; v++) {
        const char *word = c->arena + c->off[tr->by_count[v]];
        double f = (double)c->count[tr->by_count[v]] / (double)total;
        size_t wl = strlen(word);
        w->words[v] = malloc(wl + 1);
        if (!w->words[v])
            return erd_fail(diag, ERD_ENOMEM, "out of memory for the vocabulary");
        memcpy(w->words[v], word, wl + 1);
        w->weight[v] = (float)(PHO__SIF_A / (PHO__SIF_A + f));
        tr->keep[v] = o->subsample > 0.0 ? (float)(sqrt(o->subsample / f) + o->subsample / f)
                                         : 1.0f;
        tr->sub_off[v] = (uint32_t)n_sub;
        tr->sub[n_sub++] = v;
        uint32_t grams[PHO__SUB_MAX - 1];
        size_t ng = pho_sem_ngrams(word, wl, o->bucket_bits, grams, PHO__SUB_MAX - 1);
        if (ng > PHO__SUB_MAX - 1)
            ng = PHO__SUB_MAX - 1;
        for (size_t g = 0; g < ng; g++)
            tr->sub[n_sub++] = V + grams[g];
        /* negatives drawn by count^0.5, as fastText does */
        acc += sqrt((double)c->count[tr->by_count[v]]) / zsum;
        while (pos < PHO__NEG_TABLE && (double)pos < acc * PHO__NEG_TABLE)
            tr->neg[pos++] = v;
    }
    while (pos < PHO__NEG_TABLE)
        tr->neg[pos++] = V - 1;
    tr->sub_off[V] = (uint32_t)n_sub;
    tr->n_sub = n_sub;
    return ERD_OK;
}

/* The parameters (inputs uniform in +-1/dim, outputs zero), the shards'
 * private copies, and the trainer every shard reads. */
static int pho__train_params(pho__training *tr, erd_diag *diag)
{
    const pho_sem_train_opts *o = tr->o;
    pho__model *P = &tr->P;
    P->dim = o->dim;
    P->V = tr->V;
    P->B = 1u << o->bucket_bits;
    P->n_in = (size_t)(tr->V + P->B) * o->dim;
    P->n_out = (size_t)tr->V * o->dim;
    P->in = malloc(sizeof *P->in * P->n_in);
    P->out = calloc(P->n_out, sizeof *P->out);
    if (!P->in || !P->out)
        return erd_fail(diag, ERD_ENOMEM, "out of memory for the parameters");
    for (size_t i = 0; i < P->n_in; i++)
        P->in[i] = (float)((pho__unif(&tr->rng) * 2.0 - 1.0) / o->dim);
    for (unsigned s = 0; s < PHO__SHARDS; s++) {
        pho__shard *sh = &tr->shards[s];
        sh->m = *P;
        sh->m.in = malloc(sizeof *P->in * P->n_in);
        sh->m.out = malloc(sizeof *P->out * P->n_out);
        sh->h = malloc(sizeof *sh->h * o->dim);
        sh->grad = malloc(sizeof *sh->grad * o->dim);
        if (!sh->m.in || !sh->m.out || !sh->h || !sh->grad)
            return erd_fail(diag, ERD_ENOMEM, "out of memory for the parameters");
    }
    tr->order = malloc(sizeof *tr->order * tr->n_sent);
    if (!tr->order)
        return erd_fail(diag, ERD_ENOMEM, "out of memory");
    tr->t = (pho__trainer){.o = o,
                           .V = tr->V,
                           .tok = tr->tok,
                           .sent = tr->sent,
                           .n_sent = tr->n_sent,
                           .sub_off = tr->sub_off,
                           .sub = tr->sub,
                           .keep = tr->keep,
                           .neg = tr->neg,
                           .total_tokens = (double)tr->n_tok * o->epochs};
    return ERD_OK;
}

/* One round: each shard trains a private copy on its slice of
 * order[first, last), then the copies are averaged back into P. */
static void pho__train_round(pho__training *tr, uint32_t ep, uint64_t round, size_t first,
                             size_t last, double done)
{
    const pho_sem_train_opts *o = tr->o;
    pho__model *P = &tr->P;
    for (unsigned s = 0; s < PHO__SHARDS; s++) {
        pho__shard *sh = &tr->shards[s];
        memcpy(sh->m.in, P->in, sizeof *P->in * P->n_in);
        memcpy(sh->m.out, P->out, sizeof *P->out * P->n_out);
        sh->t = &tr->t;
        sh->order = tr->order;
        sh->first = first;
        sh->last = last;
        sh->index = s;
        sh->done_before = done;
        sh->rng = o->seed * 0x9e3779b97f4a7c15ULL ^ ((uint64_t)ep << 40) ^ (round << 8) ^ s;
        sh->loss = 0.0;
        sh->loss_n = 0;
    }
    pho__parallel(pho__shard_run, tr->shards, sizeof tr->shards[0], PHO__SHARDS, o->threads);
    pho__merge mg[PHO__SHARDS];
    for (int part = 0; part < 2; part++) {
        float *p = part ? P->out : P->in;
        size_t n = part ? P->n_out : P->n_in;
        for (unsigned s = 0; s < PHO__SHARDS; s++) {
            mg[s].p = p;
            for (unsigned k = 0; k < PHO__SHARDS; k++)
                mg[s].c[k] = part ? tr->shards[k].m.out : tr->shards[k].m.in;
            mg[s].from = n * s / PHO__SHARDS;
            mg[s].to = n * (s + 1) / PHO__SHARDS;
        }
        pho__parallel(pho__merge_run, mg, sizeof mg[0], PHO__SHARDS, o->threads);
    }
}

/* The epochs: sentences shuffled, then trained round by round. */
static void pho__train_epochs(pho__training *tr)
{
    const pho_sem_train_opts *o = tr->o;
    size_t n_sent = tr->n_sent;
    uint32_t *order = tr->order;
    double done = 0.0;
    for (uint32_t ep = 0; ep < o->epochs; ep++) {
        double ep_loss = 0.0;
        uint64_t ep_n = 0;
        for (size_t i = 0; i < n_sent; i++)
            order[i] = (uint32_t)i;
        for (size_t i = n_sent - 1; i > 0; i--) {
            size_t j = (size_t)(pho_splitmix64(&tr->rng) % (i + 1));
            uint32_t x = order[i];
            order[i] = order[j];
            order[j] = x;
        }
        size_t first = 0;
        uint64_t round = 0;
        while (first < n_sent) {
            size_t last = first, round_tok = 0;
            while (last < n_sent && round_tok < (size_t)PHO__ROUND_TOKENS * PHO__SHARDS) {
                round_tok += tr->sent[order[last] + 1] - tr->sent[order[last]];
                last++;
            }
            pho__train_round(tr, ep, round, first, last, done);
            for (unsigned s = 0; s < PHO__SHARDS; s++) {
                ep_loss += tr->shards[s].loss;
                ep_n += tr->shards[s].loss_n;
                done += (double)tr->shards[s].tokens;
            }
            first = last;
            round++;
            if (o->progress)
                o->progress(o->progress_user, ep, done / tr->t.total_tokens,
                            ep_n ? ep_loss / (double)ep_n : 0.0);
        }
        tr->last_loss = ep_n ? ep_loss / (double)ep_n : 0.0;
    }
}

static int pho__train_corpus(const pho_sem_train_opts *o, pho__corpus *c, pho_sem_weights *ret_w,
                             pho_sem_train_result *res, erd_diag *diag)
{
    pho__training tr = {.o = o, .c = c, .rng = o->seed ^ 0x736b697067ULL};
    int rc;

    if (c->n_words == 0 || c->n_sent == 0)
        return erd_fail(diag, ERD_EEMPTY, "training corpus is empty");
    if ((rc = pho__train_vocab(&tr, diag)) < 0 || (rc = pho__train_sentences(&tr, diag)) < 0 ||
        (rc = pho__train_words(&tr, diag)) < 0 || (rc = pho__train_params(&tr, diag)) < 0)
        goto out;
    pho__train_epochs(&tr);
    for (size_t i = 0; i < tr.P.n_in; i++)
        if (!isfinite(tr.P.in[i])) {
            rc = erd_fail(diag, ERD_EINTERNAL, "training diverged (lower --lr)");
            goto out;
        }
    rc = pho__retrofit(c, tr.remap, tr.V, tr.sub_off, tr.sub, tr.P.in, o->dim, o->retrofit);
    if (rc < 0) {
        rc = erd_fail(diag, rc, "out of memory retrofitting");
        goto out;
    }
    tr.w.rows = tr.P.in;
    tr.P.in = NULL;
    if (res) {
        res->sentences = tr.n_sent;
        res->tokens = tr.n_tok;
        res->corpus_hash = c->hash;
        res->vocab = tr.V;
        res->loss = tr.last_loss;
    }
    *ret_w = tr.w;
    tr.w = (pho_sem_weights){0};
    rc = ERD_OK;
out:
    pho__training_free(&tr);
    return rc;
}

static int pho__check_opts(const pho_sem_train_opts *o, erd_diag *diag)
{
    if (o->dim == 0 || o->dim > PHO_SEM_DIM_MAX)
        return erd_fail(diag, ERD_EINVAL, "dimension %u outside 1..%d", o->dim, PHO_SEM_DIM_MAX);
    if (o->bucket_bits < PHO_SEM_BUCKET_BITS_MIN || o->bucket_bits > PHO_SEM_BUCKET_BITS_MAX)
        return erd_fail(diag, ERD_EINVAL, "bucket bits %u outside %d..%d", o->bucket_bits,
                        PHO_SEM_BUCKET_BITS_MIN, PHO_SEM_BUCKET_BITS_MAX);
    if (o->max_words == 0 || o->max_words > PHO_SEM_WORDS_MAX)
        return erd_fail(diag, ERD_EINVAL, "vocabulary cap %u outside 1..%d", o->max_words,
                        PHO_SEM_WORDS_MAX);
    if (o->epochs == 0 || o->window == 0 || o->negatives == 0 || !(o->lr > 0.0f) ||
        o->lr > 1.0f || !(o->subsample >= 0.0))
        return erd_fail(diag, ERD_EINVAL, "epochs, window and negatives must be positive, lr in "
                        "(0, 1], subsample not negative");
    return ERD_OK;
}

/* The end of both training entry points: train on the corpus read so far
 * (unless reading it failed: rc < 0), hand the result out, free the corpus. */
static int pho__train_and_free(const pho_sem_train_opts *o, pho__corpus *c, int rc,
                               pho_sem_weights *ret_w, pho_sem_train_result *res,
                               pho_sem_train_result *ret_res, erd_diag *diag)
{
    if (rc >= 0)
        rc = pho__train_corpus(o, c, ret_w, res, diag);
    if (rc == ERD_OK && ret_res)
        *ret_res = *res;
    pho__corpus_free(c);
    return rc;
}

int pho_sem_train_text(const pho_sem_train_opts *o, const char *const *sentences, size_t n,
                       pho_sem_weights *ret_w, pho_sem_train_result *ret_res, erd_diag *diag)
{
    pho__corpus c = {.hash = ERD_FNV1A64_OFFSET};
    pho_sem_train_result res = {0};
    int rc;

    if (!o || !ret_w || (!sentences && n))
        return erd_fail(diag, ERD_EINVAL, "pho_sem_train_text: NULL argument");
    rc = pho__check_opts(o, diag);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        rc = pho__add_sentence(&c, sentences[i], strlen(sentences[i]));
        if (rc < 0) {
            rc = erd_fail(diag, rc, "out of memory reading sentences");
            goto out;
        }
    }
out:
    return pho__train_and_free(o, &c, rc, ret_w, &res, ret_res, diag);
}

int pho_sem_train(const pho_sem_train_opts *o, pho_sem_weights *ret_w,
                  pho_sem_train_result *ret_res, erd_diag *diag)
{
    static const char *const data[] = {"data.noun", "data.verb", "data.adj", "data.adv"};
    static const char *const exc[] = {"noun.exc", "verb.exc", "adj.exc", "adv.exc"};
    pho__corpus c = {.hash = ERD_FNV1A64_OFFSET};
    pho_sem_train_result res = {0};
    const char *dir;
    int rc;

    if (!o || !ret_w)
        return erd_fail(diag, ERD_EINVAL, "pho_sem_train: NULL argument");
    rc = pho__check_opts(o, diag);
    if (rc < 0)
        return rc;
    dir = o->wordnet_dir ? o->wordnet_dir : "/usr/share/wordnet";
    for (size_t i = 0; i < 4; i++) {
        rc = pho__wn_file(&c, dir, data[i], 0, &res.wordnet_sentences, diag);
        if (rc < 0)
            goto out;
        rc = pho__wn_file(&c, dir, exc[i], 1, &res.wordnet_sentences, diag);
        if (rc < 0)
            goto out;
    }
    rc = pho__generated(&c, o->seed, &res.generated_sentences);
    if (rc < 0) {
        rc = erd_fail(diag, rc, "out of memory generating equivalences");
        goto out;
    }
out:
    return pho__train_and_free(o, &c, rc, ret_w, &res, ret_res, diag);
}
