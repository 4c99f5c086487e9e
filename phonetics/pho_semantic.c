/* The semantic model (file format, word and phrase vectors), the .vec
 * loader, and the "semantic:" and "vec:" encoders.
 *
 * Both kinds of vectors live in one structure: a vocabulary hashed into an
 * open-addressing table, and int8 rows with a float scale each; the
 * semantic model adds 2^bucket_bits n-gram rows after the word rows, a .vec
 * file has none.  The id of either encoder is its spec plus the low 32 bits
 * of the file's checksum, so an index built with one file refuses to run
 * queries through a retrained or replaced one. */
#include "phonetics/pho_semantic.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "phonetics/pho_internal.h"
#include "phonetics/sim/pho_rng.h"
#include "proto/erd_file.h"

static const char pho__sem_magic[8] = {'E', 'R', 'D', 'S', 'E', 'M', 'V', '\0'};
#define PHO__SEM_ROWS_I8 1
#define PHO__SEM_HDR (40 + PHO_SEM_META_MAX)
#define PHO__SEM_FILE_MAX ((size_t)1 << 30)
#define PHO__NGRAMS_MAX 256
#define PHO__NGRAM_WORD_MAX 256 /* bytes of a word read for n-grams */

struct pho_sem_model {
    uint32_t dim, n_words, bucket_bits, n_buckets; /* n_buckets 0: plain word vectors */
    char *arena;        /* the words, NUL-terminated, back to back */
    uint32_t *word_off; /* n_words offsets into arena */
    float *weight;      /* n_words */
    uint32_t *table;    /* word index + 1, 0 empty; table_mask + 1 slots */
    uint32_t table_mask;
    float *center; /* dim: mean word vector, subtracted before normalising (NULL: none) */
    float *scale;  /* one per row */
    int8_t *q;     /* rows x dim */
    char meta[PHO_SEM_META_MAX];
    uint64_t checksum;
};

struct pho_vec_model {
    pho_sem_model *m;
};

/* ---- structure ---- */

void pho_sem_model_destroy(pho_sem_model *m)
{
    if (!m)
        return;
    free(m->arena);
    free(m->word_off);
    free(m->weight);
    free(m->table);
    free(m->scale);
    free(m->q);
    free(m->center);
    free(m);
}

static uint64_t pho__word_hash(const char *w, size_t len)
{
    return pho_mix64(erd_fnv1a64(ERD_FNV1A64_OFFSET, w, len));
}

/* A word's index, or ERD_ENOTFOUND. */
static long pho__lookup(const pho_sem_model *m, const char *w, size_t len)
{
    if (m->n_words == 0)
        return ERD_ENOTFOUND;
    for (uint64_t h = pho__word_hash(w, len);; h++) {
        uint32_t e = m->table[h & m->table_mask];
        if (e == 0)
            return ERD_ENOTFOUND;
        const char *s = m->arena + m->word_off[e - 1];
        if (strncmp(s, w, len) == 0 && s[len] == '\0')
            return (long)(e - 1);
    }
}

/* Table over the first n_words words; ERD_EINVAL on a duplicate. */
static int pho__build_table(pho_sem_model *m)
{
    uint32_t cap = 16;

    while (cap < 2u * m->n_words + 16)
        cap *= 2;
    free(m->table);
    m->table = calloc(cap, sizeof *m->table);
    if (!m->table)
        return ERD_ENOMEM;
    m->table_mask = cap - 1;
    for (uint32_t i = 0; i < m->n_words; i++) {
        const char *w = m->arena + m->word_off[i];
        size_t len = strlen(w);
        uint64_t h = pho__word_hash(w, len);
        for (;; h++) {
            uint32_t *slot = &m->table[h & m->table_mask];
            if (*slot == 0) {
                *slot = i + 1;
                break;
            }
            if (strcmp(m->arena + m->word_off[*slot - 1], w) == 0)
                return ERD_EINVAL;
        }
    }
    return ERD_OK;
}

static void pho__quantise_row(const float *x, uint32_t dim, float *scale, int8_t *q)
{
    float amax = 0.0f;

    for (uint32_t i = 0; i < dim; i++)
        if (fabsf(x[i]) > amax)
            amax = fabsf(x[i]);
    *scale = amax / 127.0f;
    for (uint32_t i = 0; i < dim; i++)
        q[i] = amax > 0.0f ? (int8_t)lrintf(x[i] / *scale) : 0;
}

size_t pho_sem_ngrams(const char *word, size_t len, uint32_t bucket_bits, uint32_t *out, size_t cap)
{
    /* character starts of "<word>", so n-grams never split a UTF-8 sequence */
    char buf[PHO__NGRAM_WORD_MAX];
    size_t starts[PHO__NGRAM_WORD_MAX + 1], n_chars = 0, blen, count = 0;

    if (len + 3 > sizeof buf)
        len = sizeof buf - 3;
    buf[0] = '<';
    memcpy(buf + 1, word, len);
    buf[len + 1] = '>';
    blen = len + 2;
    for (size_t i = 0; i < blen; i++)
        if (((unsigned char)buf[i] & 0xc0) != 0x80)
            starts[n_chars++] = i;
    starts[n_chars] = blen;
    for (size_t i = 0; i < n_chars; i++) {
        for (size_t n = PHO_SEM_MINN; n <= PHO_SEM_MAXN && i + n <= n_chars; n++) {
            const char *g = buf + starts[i];
            size_t glen = starts[i + n] - starts[i];
            uint64_t h = pho_mix64(erd_fnv1a64(ERD_FNV1A64_OFFSET ^ 0x5e3a, g, glen));
            if (count < cap)
                out[count] = (uint32_t)(h >> (64 - bucket_bits));
            count++;
        }
    }
    return count;
}

static int pho__center(pho_sem_model *m);

static void pho__add_row(const pho_sem_model *m, size_t row, float *acc)
{
    const int8_t *q = m->q + row * m->dim;
    float s = m->scale[row];

    for (uint32_t i = 0; i < m->dim; i++)
        acc[i] += s * (float)q[i];
}

int pho_sem_model_word(const pho_sem_model *m, const char *word, size_t len, float *out)
{
    uint32_t grams[PHO__NGRAMS_MAX];
    size_t ng = 0, rows = 0;
    long w;

    if (!m || !word || !out)
        return ERD_EINVAL;
    memset(out, 0, sizeof *out * m->dim);
    if (len == 0)
        return 0;
    w = pho__lookup(m, word, len);
    if (w >= 0) {
        pho__add_row(m, (size_t)w, out);
        rows++;
    }
    if (m->n_buckets) {
        ng = pho_sem_ngrams(word, len, m->bucket_bits, grams, PHO__NGRAMS_MAX);
        if (ng > PHO__NGRAMS_MAX)
            ng = PHO__NGRAMS_MAX;
        for (size_t i = 0; i < ng; i++)
            pho__add_row(m, m->n_words + grams[i], out);
        rows += ng;
    }
    if (rows > 1)
        for (uint32_t i = 0; i < m->dim; i++)
            out[i] /= (float)rows;
    if (m->center)
        for (uint32_t i = 0; i < m->dim; i++)
            out[i] -= m->center[i];
    return w >= 0;
}

static void pho__normalise(float *v, uint32_t dim)
{
    double norm = 0.0;

    for (uint32_t i = 0; i < dim; i++)
        norm += (double)v[i] * v[i];
    if (norm > 0.0) {
        float inv = (float)(1.0 / sqrt(norm));
        for (uint32_t i = 0; i < dim; i++)
            v[i] *= inv;
    }
}

/* Weighted sum of the words' unit vectors; words unknown to a model
 * without n-grams are skipped, words unknown to one with n-grams weigh 1
 * (a word too rare to be seen in training is as informative as any). */
static int pho__phrase(const pho_sem_model *m, const char *text, float *out)
{
    float w[PHO_SEM_DIM_MAX];

    memset(out, 0, sizeof *out * m->dim);
    if (!text)
        return ERD_OK;
    while (*text) {
        size_t len = strcspn(text, " ");
        if (len > 0) {
            long idx = pho__lookup(m, text, len);
            if (idx >= 0 || m->n_buckets) {
                float weight = idx >= 0 ? m->weight[idx] : 1.0f;
                pho_sem_model_word(m, text, len, w);
                pho__normalise(w, m->dim);
                for (uint32_t i = 0; i < m->dim; i++)
                    out[i] += weight * w[i];
            }
        }
        text += len;
        while (*text == ' ')
            text++;
    }
    pho__normalise(out, m->dim);
    return ERD_OK;
}

int pho_sem_model_phrase(const pho_sem_model *m, const char *text, float *out)
{
    if (!m || !out)
        return ERD_EINVAL;
    return pho__phrase(m, text, out);
}

uint32_t pho_sem_model_dim(const pho_sem_model *m)
{
    return m ? m->dim : 0;
}

uint32_t pho_sem_model_words(const pho_sem_model *m)
{
    return m ? m->n_words : 0;
}

uint64_t pho_sem_model_checksum(const pho_sem_model *m)
{
    return m ? m->checksum : 0;
}

const char *pho_sem_model_meta(const pho_sem_model *m)
{
    return m ? m->meta : "";
}

static pho_sem_model *pho__alloc_model(uint32_t dim, uint32_t n_words, uint32_t bucket_bits,
                                       size_t arena_len)
{
    pho_sem_model *m = calloc(1, sizeof *m);
    size_t rows;

    if (!m)
        return NULL;
    m->dim = dim;
    m->n_words = n_words;
    m->bucket_bits = bucket_bits;
    m->n_buckets = bucket_bits ? 1u << bucket_bits : 0;
    rows = (size_t)n_words + m->n_buckets;
    m->arena = malloc(arena_len ? arena_len : 1);
    m->word_off = malloc(sizeof *m->word_off * (n_words ? n_words : 1));
    m->weight = malloc(sizeof *m->weight * (n_words ? n_words : 1));
    m->scale = malloc(sizeof *m->scale * (rows ? rows : 1));
    m->q = malloc(rows * dim > 0 ? rows * dim : 1);
    if (!m->arena || !m->word_off || !m->weight || !m->scale || !m->q) {
        pho_sem_model_destroy(m);
        return NULL;
    }
    return m;
}

int pho_sem_model_from_weights(const pho_sem_weights *w, pho_sem_model **ret, erd_diag *diag)
{
    size_t arena_len = 0, off = 0, rows;
    pho_sem_model *m;
    int rc;

    if (!w || !ret || !w->rows || (w->n_words && (!w->words || !w->weight)))
        return erd_fail(diag, ERD_EINVAL, "pho_sem_model_from_weights: incomplete weights");
    if (w->dim == 0 || w->dim > PHO_SEM_DIM_MAX || w->bucket_bits < PHO_SEM_BUCKET_BITS_MIN ||
        w->bucket_bits > PHO_SEM_BUCKET_BITS_MAX || w->n_words > PHO_SEM_WORDS_MAX)
        return erd_fail(diag, ERD_EINVAL, "semantic model shape out of bounds (dim %u, 2^%u "
                        "buckets, %u words)", w->dim, w->bucket_bits, w->n_words);
    for (uint32_t i = 0; i < w->n_words; i++) {
        size_t len = strlen(w->words[i]);
        if (len == 0 || len >= PHO_SEM_WORD_MAX || strchr(w->words[i], ' '))
            return erd_fail(diag, ERD_EINVAL, "vocabulary word %u is empty, too long or has a "
                            "space", i);
        arena_len += len + 1;
    }
    m = pho__alloc_model(w->dim, w->n_words, w->bucket_bits, arena_len);
    if (!m)
        return erd_fail(diag, ERD_ENOMEM, "out of memory for the semantic model");
    for (uint32_t i = 0; i < w->n_words; i++) {
        size_t len = strlen(w->words[i]) + 1;
        memcpy(m->arena + off, w->words[i], len);
        m->word_off[i] = (uint32_t)off;
        m->weight[i] = w->weight[i];
        off += len;
    }
    rc = pho__build_table(m);
    if (rc < 0) {
        pho_sem_model_destroy(m);
        return erd_fail(diag, rc, rc == ERD_EINVAL ? "duplicate vocabulary word"
                                                   : "out of memory for the vocabulary table");
    }
    rows = (size_t)m->n_words + m->n_buckets;
    for (size_t r = 0; r < rows; r++)
        pho__quantise_row(w->rows + r * w->dim, w->dim, &m->scale[r], m->q + r * w->dim);
    if (pho__center(m) < 0) {
        pho_sem_model_destroy(m);
        return erd_fail(diag, ERD_ENOMEM, "out of memory for the semantic model");
    }
    *ret = m;
    return ERD_OK;
}

/* Skip-gram vectors share a common direction (every cosine is high); the
 * mean word vector is taken out so that phrase cosines spread over the
 * range a fused score can use ("all-but-the-top", Mu & Viswanath 2018,
 * first step).  Computed from the weights, so the file need not store it. */
static int pho__center(pho_sem_model *m)
{
    double *acc = calloc(m->dim, sizeof *acc);
    float *v = malloc(sizeof *v * m->dim);

    if (!acc || !v) {
        free(acc);
        free(v);
        return ERD_ENOMEM;
    }
    free(m->center);
    m->center = NULL;
    for (uint32_t w = 0; w < m->n_words; w++) {
        const char *word = m->arena + m->word_off[w];
        pho_sem_model_word(m, word, strlen(word), v);
        for (uint32_t i = 0; i < m->dim; i++)
            acc[i] += v[i];
    }
    for (uint32_t i = 0; i < m->dim; i++)
        v[i] = m->n_words ? (float)(acc[i] / m->n_words) : 0.0f;
    free(acc);
    m->center = v;
    return ERD_OK;
}

/* ---- file ---- */

static size_t pho__sem_file_len(const pho_sem_model *m)
{
    size_t len = PHO__SEM_HDR + 8, rows = (size_t)m->n_words + m->n_buckets;

    for (uint32_t i = 0; i < m->n_words; i++)
        len += 1 + strlen(m->arena + m->word_off[i]) + 4;
    return len + rows * (4 + (size_t)m->dim);
}

int pho_sem_model_save(const pho_sem_model *m, const char *path, const char *meta,
                       uint64_t *ret_checksum, erd_diag *diag)
{
    size_t len, rows;
    unsigned char *buf = NULL, *p;
    uint64_t sum;
    int rc;

    if (!m || !path)
        return erd_fail(diag, ERD_EINVAL, "pho_sem_model_save: model and path are required");
    len = pho__sem_file_len(m);
    rows = (size_t)m->n_words + m->n_buckets;
    buf = calloc(1, len);
    if (!buf)
        return erd_fail(diag, ERD_ENOMEM, "out of memory writing the semantic model");
    memcpy(buf, pho__sem_magic, 8);
    pho__le_put32(buf + 8, PHO_SEM_VERSION);
    pho__le_put32(buf + 12, m->dim);
    pho__le_put32(buf + 16, m->n_words);
    pho__le_put32(buf + 20, m->bucket_bits);
    pho__le_put32(buf + 24, PHO_SEM_MINN);
    pho__le_put32(buf + 28, PHO_SEM_MAXN);
    pho__le_put32(buf + 32, PHO__SEM_ROWS_I8);
    pho__le_put32(buf + 36, 0);
    if (meta)
        memcpy(buf + 40, meta, strnlen(meta, PHO_SEM_META_MAX - 1));
    p = buf + PHO__SEM_HDR;
    for (uint32_t i = 0; i < m->n_words; i++) {
        const char *w = m->arena + m->word_off[i];
        size_t wl = strlen(w);
        uint32_t u;
        *p++ = (unsigned char)wl;
        memcpy(p, w, wl);
        p += wl;
        memcpy(&u, &m->weight[i], 4);
        pho__le_put32(p, u);
        p += 4;
    }
    for (size_t r = 0; r < rows; r++) {
        uint32_t u;
        memcpy(&u, &m->scale[r], 4);
        pho__le_put32(p, u);
        memcpy(p + 4, m->q + r * m->dim, m->dim);
        p += 4 + m->dim;
    }
    sum = erd_fnv1a64(ERD_FNV1A64_OFFSET, buf, len - 8);
    pho__le_put64(p, sum);

    rc = erd_file_replace(path, buf, len, diag);
    if (rc < 0)
        goto out;
    if (ret_checksum)
        *ret_checksum = sum;
    rc = ERD_OK;
out:
    free(buf);
    return rc;
}

int pho_sem_model_load_buffer(const void *data, size_t len, pho_sem_model **ret, erd_diag *diag)
{
    const unsigned char *b = data, *p, *end;
    uint32_t dim, n_words, bucket_bits;
    size_t arena_len = 0, rows, off = 0;
    pho_sem_model *m;
    uint64_t sum;
    int rc;

    if (!b || !ret || len < 8 || memcmp(b, pho__sem_magic, 8) != 0)
        return erd_fail(diag, ERD_ECORRUPT, "not an erd semantic model (bad magic)");
    if (len < PHO__SEM_HDR + 8)
        return erd_fail(diag, ERD_ECORRUPT, "semantic model truncated: %zu bytes, the header "
                        "alone is %d", len, PHO__SEM_HDR + 8);
    if (pho__le_get32(b + 8) != PHO_SEM_VERSION)
        return erd_fail(diag, ERD_EMISMATCH, "semantic model format version %u, this erd reads %d",
                        pho__le_get32(b + 8), PHO_SEM_VERSION);
    sum = erd_fnv1a64(ERD_FNV1A64_OFFSET, b, len - 8);
    if (sum != pho__le_get64(b + len - 8))
        return erd_fail(diag, ERD_ECORRUPT,
                        "semantic model checksum mismatch (truncated or damaged file)");
    dim = pho__le_get32(b + 12);
    n_words = pho__le_get32(b + 16);
    bucket_bits = pho__le_get32(b + 20);
    if (dim == 0 || dim > PHO_SEM_DIM_MAX || bucket_bits < PHO_SEM_BUCKET_BITS_MIN ||
        bucket_bits > PHO_SEM_BUCKET_BITS_MAX || n_words > PHO_SEM_WORDS_MAX)
        return erd_fail(diag, ERD_ECORRUPT, "semantic model header out of bounds (dim %u, 2^%u "
                        "buckets, %u words)", dim, bucket_bits, n_words);
    if (pho__le_get32(b + 24) != PHO_SEM_MINN || pho__le_get32(b + 28) != PHO_SEM_MAXN ||
        pho__le_get32(b + 32) != PHO__SEM_ROWS_I8)
        return erd_fail(diag, ERD_EMISMATCH, "semantic model uses n-grams %u..%u and row format "
                        "%u; this erd reads %d..%d, format %d", pho__le_get32(b + 24),
                        pho__le_get32(b + 28), pho__le_get32(b + 32), PHO_SEM_MINN, PHO_SEM_MAXN,
                        PHO__SEM_ROWS_I8);
    if (memchr(b + 40, '\0', PHO_SEM_META_MAX) == NULL)
        return erd_fail(diag, ERD_ECORRUPT, "semantic model metadata not terminated");
    /* first pass: the vocabulary must fit before the rows */
    end = b + len - 8;
    p = b + PHO__SEM_HDR;
    for (uint32_t i = 0; i < n_words; i++) {
        size_t wl;
        if (p >= end || (wl = *p) == 0 || wl >= PHO_SEM_WORD_MAX || (size_t)(end - p) < 1 + wl + 4)
            return erd_fail(diag, ERD_ECORRUPT, "semantic model vocabulary entry %u is damaged", i);
        if (memchr(p + 1, '\0', wl) || memchr(p + 1, ' ', wl))
            return erd_fail(diag, ERD_ECORRUPT, "semantic model word %u holds a NUL or space", i);
        arena_len += wl + 1;
        p += 1 + wl + 4;
    }
    rows = (size_t)n_words + ((size_t)1 << bucket_bits);
    if ((size_t)(end - p) != rows * (4 + (size_t)dim))
        return erd_fail(diag, ERD_ECORRUPT, "semantic model holds %zu bytes of rows, its header "
                        "implies %zu", (size_t)(end - p), rows * (4 + (size_t)dim));
    m = pho__alloc_model(dim, n_words, bucket_bits, arena_len);
    if (!m)
        return erd_fail(diag, ERD_ENOMEM, "out of memory loading the semantic model");
    p = b + PHO__SEM_HDR;
    for (uint32_t i = 0; i < n_words; i++) {
        size_t wl = *p;
        uint32_t u;
        memcpy(m->arena + off, p + 1, wl);
        m->arena[off + wl] = '\0';
        m->word_off[i] = (uint32_t)off;
        off += wl + 1;
        u = pho__le_get32(p + 1 + wl);
        memcpy(&m->weight[i], &u, 4);
        p += 1 + wl + 4;
        if (!isfinite(m->weight[i]) || m->weight[i] < 0.0f) {
            pho_sem_model_destroy(m);
            return erd_fail(diag, ERD_ECORRUPT, "semantic model word %u has weight %g", i,
                            (double)m->weight[i]);
        }
    }
    for (size_t r = 0; r < rows; r++) {
        uint32_t u = pho__le_get32(p);
        memcpy(&m->scale[r], &u, 4);
        if (!isfinite(m->scale[r]) || m->scale[r] < 0.0f) {
            pho_sem_model_destroy(m);
            return erd_fail(diag, ERD_ECORRUPT, "semantic model row %zu has a bad scale", r);
        }
        memcpy(m->q + r * dim, p + 4, dim);
        p += 4 + dim;
    }
    rc = pho__build_table(m);
    if (rc < 0) {
        pho_sem_model_destroy(m);
        return erd_fail(diag, rc == ERD_EINVAL ? ERD_ECORRUPT : rc,
                        rc == ERD_EINVAL ? "semantic model vocabulary has a duplicate word"
                                         : "out of memory for the vocabulary table");
    }
    if (pho__center(m) < 0) {
        pho_sem_model_destroy(m);
        return erd_fail(diag, ERD_ENOMEM, "out of memory loading the semantic model");
    }
    memcpy(m->meta, b + 40, PHO_SEM_META_MAX);
    m->checksum = sum;
    *ret = m;
    return ERD_OK;
}

int pho_sem_model_load(const char *path, pho_sem_model **ret, erd_diag *diag)
{
    unsigned char *buf = NULL;
    size_t len;
    int rc;

    if (!path || !ret)
        return erd_fail(diag, ERD_EINVAL, "pho_sem_model_load: path and ret are required");
    rc = pho__read_file("semantic model", path, PHO__SEM_FILE_MAX, &buf, &len, diag);
    if (rc < 0)
        return rc;
    rc = pho_sem_model_load_buffer(buf, len, ret, diag);
    if (rc < 0 && diag) {
        char msg[sizeof diag->msg];
        snprintf(msg, sizeof msg, "%s", diag->msg);
        erd_fail(diag, rc, "%s: %s", path, msg);
    }
    free(buf);
    return rc;
}

/* ---- .vec text files ---- */

typedef struct pho__vec_reader {
    FILE *f;
    unsigned char chunk[1 << 16];
    size_t pos, len;
    int eof;
    uint64_t hash; /* of every byte read */
} pho__vec_reader;

/* Next line without its newline into line (cap bytes): 1 read, 0 end of
 * file, ERD_ETOOLONG for a line longer than cap - 1, ERD_EIO, ERD_EPARSE
 * for a NUL byte. */
static int pho__vec_line(pho__vec_reader *r, char *line, size_t cap, size_t *ret_len)
{
    size_t n = 0;
    int any = 0;

    for (;;) {
        if (r->pos == r->len) {
            if (r->eof)
                break;
            r->len = fread(r->chunk, 1, sizeof r->chunk, r->f);
            r->pos = 0;
            if (r->len < sizeof r->chunk) {
                if (ferror(r->f))
                    return ERD_EIO;
                r->eof = 1;
            }
            r->hash = erd_fnv1a64(r->hash, r->chunk, r->len);
            if (r->len == 0)
                break;
        }
        unsigned char c = r->chunk[r->pos++];
        any = 1;
        if (c == '\n')
            break;
        if (c == '\0')
            return ERD_EPARSE;
        if (n + 1 >= cap)
            return ERD_ETOOLONG;
        line[n++] = (char)c;
    }
    if (n > 0 && line[n - 1] == '\r')
        n--;
    line[n] = '\0';
    *ret_len = n;
    return any;
}

static size_t pho__count_fields(const char *s)
{
    size_t n = 0;

    while (*s) {
        while (*s == ' ' || *s == '\t')
            s++;
        if (!*s)
            break;
        n++;
        while (*s && *s != ' ' && *s != '\t')
            s++;
    }
    return n;
}

/* "N D" with two positive integers. */
static int pho__vec_header(const char *s, unsigned long *ret_n, unsigned long *ret_d)
{
    char *end;
    unsigned long n, d;

    if (pho__count_fields(s) != 2)
        return 0;
    errno = 0;
    n = strtoul(s, &end, 10);
    if (errno || end == s || (*end != ' ' && *end != '\t'))
        return 0;
    s = end;
    d = strtoul(s, &end, 10);
    if (errno || end == s)
        return 0;
    while (*end == ' ' || *end == '\t')
        end++;
    if (*end)
        return 0;
    *ret_n = n;
    *ret_d = d;
    return 1;
}

typedef struct pho__vec_build {
    char *arena;
    size_t arena_len, arena_cap;
    uint32_t *word_off;
    float *scale;
    int8_t *q;
    size_t n, cap;
} pho__vec_build;

static void pho__vec_build_free(pho__vec_build *b)
{
    free(b->arena);
    free(b->word_off);
    free(b->scale);
    free(b->q);
}

static int pho__vec_push(pho__vec_build *b, const char *w, size_t wl, const float *x, uint32_t dim)
{
    if (b->n == b->cap) {
        size_t ncap = b->cap ? b->cap * 2 : 1024;
        if (ncap > PHO_VEC_WORDS_MAX)
            ncap = PHO_VEC_WORDS_MAX;
        uint32_t *o = realloc(b->word_off, ncap * sizeof *o);
        if (!o)
            return ERD_ENOMEM;
        b->word_off = o;
        float *s = realloc(b->scale, ncap * sizeof *s);
        if (!s)
            return ERD_ENOMEM;
        b->scale = s;
        int8_t *q = realloc(b->q, ncap * dim);
        if (!q)
            return ERD_ENOMEM;
        b->q = q;
        b->cap = ncap;
    }
    if (b->arena_len + wl + 1 > b->arena_cap) {
        size_t ncap = b->arena_cap ? b->arena_cap * 2 : 65536;
        while (ncap < b->arena_len + wl + 1)
            ncap *= 2;
        char *a = realloc(b->arena, ncap);
        if (!a)
            return ERD_ENOMEM;
        b->arena = a;
        b->arena_cap = ncap;
    }
    memcpy(b->arena + b->arena_len, w, wl);
    b->arena[b->arena_len + wl] = '\0';
    b->word_off[b->n] = (uint32_t)b->arena_len;
    b->arena_len += wl + 1;
    pho__quantise_row(x, dim, &b->scale[b->n], b->q + b->n * dim);
    b->n++;
    return ERD_OK;
}

/* Lower-cases ASCII in place: the phrases it meets are normalised text. */
static void pho__lower(char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] >= 'A' && s[i] <= 'Z')
            s[i] = (char)(s[i] - 'A' + 'a');
}

/* One data line of a .vec file: the word (*ret_word, *ret_len, within line)
 * and its values in x; the first line without a header sets *dim. */
static int pho__vec_values(const char *path, unsigned long lineno, char *line, size_t len,
                           uint32_t *dim, float *x, char **ret_word, size_t *ret_len,
                           erd_diag *diag)
{
    if (len == 0 || strspn(line, " \t") == len)
        return erd_fail(diag, ERD_EPARSE, "%s:%lu: empty line", path, lineno);
    size_t fields = pho__count_fields(line);
    if (*dim == 0) {
        if (fields < 2 || fields - 1 > PHO_SEM_DIM_MAX)
            return erd_fail(diag, ERD_EPARSE, "%s:%lu: %zu values; want 1..%d after the word",
                            path, lineno, fields ? fields - 1 : 0, PHO_SEM_DIM_MAX);
        *dim = (uint32_t)(fields - 1);
    }
    if (fields != (size_t)*dim + 1)
        return erd_fail(diag, ERD_EPARSE, "%s:%lu: %zu values after the word, expected %u", path,
                        lineno, fields ? fields - 1 : 0, *dim);
    char *s = line + strspn(line, " \t");
    size_t wl = strcspn(s, " \t");
    char *p = s + wl;
    for (uint32_t i = 0; i < *dim; i++) {
        char *end;
        errno = 0;
        x[i] = strtof(p, &end);
        if (end == p || (*end && *end != ' ' && *end != '\t') || !isfinite(x[i]))
            return erd_fail(diag, ERD_EPARSE, "%s:%lu: value %u is not a finite number", path,
                            lineno, i + 1);
        p = end;
    }
    *ret_word = s;
    *ret_len = wl;
    return ERD_OK;
}

/* Reads what is left of the file into its checksum. */
static int pho__vec_hash_rest(pho__vec_reader *r, const char *path, erd_diag *diag)
{
    while (!r->eof) {
        r->len = fread(r->chunk, 1, sizeof r->chunk, r->f);
        if (ferror(r->f))
            return erd_fail(diag, ERD_EIO, "%s: read failed", path);
        r->eof = r->len < sizeof r->chunk;
        r->hash = erd_fnv1a64(r->hash, r->chunk, r->len);
    }
    return ERD_OK;
}

/* The word lookup table.  A word listed twice (or twice after
 * lower-casing) keeps its first, more frequent, vector: later copies are
 * left out of the table. */
static int pho__vec_table(pho_sem_model *m)
{
    uint32_t cap = 16;
    while (cap < 2u * m->n_words + 16)
        cap *= 2;
    m->table = calloc(cap, sizeof *m->table);
    if (!m->table)
        return ERD_ENOMEM;
    m->table_mask = cap - 1;
    for (uint32_t i = 0; i < m->n_words; i++) {
        const char *w = m->arena + m->word_off[i];
        for (uint64_t h = pho__word_hash(w, strlen(w));; h++) {
            uint32_t *slot = &m->table[h & m->table_mask];
            if (*slot == 0) {
                *slot = i + 1;
                break;
            }
            if (strcmp(m->arena + m->word_off[*slot - 1], w) == 0)
                break;
        }
    }
    return ERD_OK;
}

/* Every word vector of an open text file into b (at most PHO_VEC_WORDS_MAX
 * words; the checksum still covers the whole file), *dim their width.
 * line and x are scratch. */
static int pho__vec_read_all(pho__vec_reader *r, const char *path, char *line, float *x,
                             pho__vec_build *b, uint32_t *dim, erd_diag *diag)
{
    unsigned long hdr_n = 0, hdr_d = 0, lineno = 0, n_vectors = 0;
    int has_hdr = 0, rc, got;
    size_t len;
    while (b->n < PHO_VEC_WORDS_MAX) {
        got = pho__vec_line(r, line, PHO_VEC_LINE_MAX, &len);
        if (got == 0)
            break;
        lineno++;
        if (got < 0)
            return erd_fail(diag, got == ERD_EIO ? ERD_EIO : ERD_EPARSE, "%s:%lu: %s", path,
                            lineno,
                            got == ERD_ETOOLONG ? "line longer than 65535 bytes"
                            : got == ERD_EIO    ? "read failed"
                                                : "NUL byte in line");
        if (lineno == 1 && pho__vec_header(line, &hdr_n, &hdr_d)) {
            if (hdr_d == 0 || hdr_d > PHO_SEM_DIM_MAX)
                return erd_fail(diag, ERD_EPARSE, "%s:1: dimension %lu outside 1..%d", path,
                                hdr_d, PHO_SEM_DIM_MAX);
            has_hdr = 1;
            *dim = (uint32_t)hdr_d;
            continue;
        }
        char *s = NULL;
        size_t wl = 0;
        rc = pho__vec_values(path, lineno, line, len, dim, x, &s, &wl, diag);
        if (rc < 0)
            return rc;
        n_vectors++;
        if (wl >= PHO_SEM_WORD_MAX)
            continue; /* no normalised word that long is looked up */
        pho__lower(s, wl);
        if ((rc = pho__vec_push(b, s, wl, x, *dim)) < 0)
            return erd_fail(diag, rc, "out of memory reading %s", path);
    }
    if (b->n == 0)
        return erd_fail(diag, ERD_EPARSE, "%s: no word vectors", path);
    if (has_hdr && b->n < PHO_VEC_WORDS_MAX && n_vectors != hdr_n)
        return erd_fail(diag, ERD_EPARSE,
                        "%s: header announces %lu words, the file has %lu (truncated?)", path,
                        hdr_n, n_vectors);
    /* the checksum covers the whole file, read or not */
    if (b->n == PHO_VEC_WORDS_MAX)
        return pho__vec_hash_rest(r, path, diag);
    return ERD_OK;
}

/* A word model of b's vectors, each weighed 1; b's arrays move into it. */
static int pho__vec_model(pho__vec_build *b, uint32_t dim, uint64_t checksum,
                          pho_sem_model **ret)
{
    pho_sem_model *m = calloc(1, sizeof *m);
    if (!m)
        return ERD_ENOMEM;
    m->dim = dim;
    m->n_words = (uint32_t)b->n;
    m->arena = b->arena;
    m->word_off = b->word_off;
    m->scale = b->scale;
    m->q = b->q;
    *b = (pho__vec_build){0};
    m->weight = malloc(sizeof *m->weight * m->n_words);
    for (uint32_t i = 0; m->weight && i < m->n_words; i++)
        m->weight[i] = 1.0f;
    if (!m->weight || pho__vec_table(m) < 0) {
        pho_sem_model_destroy(m);
        return ERD_ENOMEM;
    }
    m->checksum = checksum;
    *ret = m;
    return ERD_OK;
}

int pho_vec_load(const char *path, pho_vec_model **ret, erd_diag *diag)
{
    pho__vec_reader *r = NULL;
    pho__vec_build b = {0};
    pho_sem_model *m = NULL;
    pho_vec_model *v = NULL;
    char *line = NULL;
    float *x = NULL;
    uint32_t dim = 0;
    int rc;

    if (!path || !ret)
        return erd_fail(diag, ERD_EINVAL, "pho_vec_load: path and ret are required");
    r = calloc(1, sizeof *r);
    line = malloc(PHO_VEC_LINE_MAX);
    x = malloc(sizeof *x * PHO_SEM_DIM_MAX);
    v = calloc(1, sizeof *v);
    if (!r || !line || !x || !v) {
        rc = erd_fail(diag, ERD_ENOMEM, "out of memory reading %s", path);
        goto out;
    }
    r->hash = ERD_FNV1A64_OFFSET;
    r->f = fopen(path, "rb");
    if (!r->f) {
        rc = erd_fail(diag, errno == ENOENT ? ERD_ENOTFOUND : ERD_EIO, "vectors %s: %s", path,
                      strerror(errno));
        goto out;
    }
    rc = pho__vec_read_all(r, path, line, x, &b, &dim, diag);
    if (rc < 0)
        goto out;
    if (pho__vec_model(&b, dim, r->hash, &m) < 0) {
        rc = erd_fail(diag, ERD_ENOMEM, "out of memory reading %s", path);
        goto out;
    }
    v->m = m;
    *ret = v;
    v = NULL;
    rc = ERD_OK;
out:
    if (r && r->f)
        fclose(r->f);
    free(r);
    free(line);
    free(x);
    pho__vec_build_free(&b);
    free(v);
    return rc;
}

void pho_vec_destroy(pho_vec_model *v)
{
    if (!v)
        return;
    pho_sem_model_destroy(v->m);
    free(v);
}

uint32_t pho_vec_dim(const pho_vec_model *v)
{
    return v ? v->m->dim : 0;
}

uint32_t pho_vec_words(const pho_vec_model *v)
{
    return v ? v->m->n_words : 0;
}

int pho_vec_phrase(const pho_vec_model *v, const char *text, float *out)
{
    if (!v || !out)
        return ERD_EINVAL;
    return pho__phrase(v->m, text, out);
}

/* ---- the "semantic:" and "vec:" encoders ---- */

typedef struct pho__sem_encoder {
    pho_encoder base;
    pho_sem_model *m; /* for vec: owned through v */
    pho_vec_model *v;
    char id[PHO_ENCODER_ID_MAX];
} pho__sem_encoder;

static const char *pho__se_id(const pho_encoder *enc)
{
    return ((const pho__sem_encoder *)enc)->id;
}

static size_t pho__se_dim(const pho_encoder *enc)
{
    return ((const pho__sem_encoder *)enc)->m->dim;
}

/* Word meaning does not depend on the catalog: nothing to fit. */
static int pho__se_fit(pho_encoder *enc, const pho_phrase *phrases, size_t n, erd_diag *diag)
{
    (void)enc;
    (void)phrases;
    (void)n;
    (void)diag;
    return ERD_OK;
}

static int pho__se_save(const pho_encoder *enc, void **ret_blob, size_t *ret_len)
{
    (void)enc;
    *ret_blob = NULL;
    *ret_len = 0;
    return ERD_OK;
}

static int pho__se_load(pho_encoder *enc, const void *blob, size_t len, erd_diag *diag)
{
    (void)blob;
    if (len != 0)
        return erd_fail(diag, ERD_EMISMATCH, "encoder \"%s\" keeps no per-catalog state, got %zu "
                        "bytes", ((pho__sem_encoder *)enc)->id, len);
    return ERD_OK;
}

static int pho__se_encode(const pho_encoder *enc, const pho_phrase *phrase, float *out)
{
    return pho__phrase(((const pho__sem_encoder *)enc)->m, phrase->text, out);
}

static void pho__se_destroy(pho_encoder *enc)
{
    pho__sem_encoder *s = (pho__sem_encoder *)enc;

    if (s->v)
        pho_vec_destroy(s->v);
    else
        pho_sem_model_destroy(s->m);
    free(s);
}

PHO_ENCODER_OPS(pho__sem_ops, pho__se);

/* Splits ":PATH[#xxxxxxxx]"; path gets room for the id's prefix and hash. */
static int pho__path_arg(const char *kind, const char *args, char *path, size_t cap,
                         uint32_t *ret_want, int *ret_check, erd_diag *diag)
{
    const char *hash;
    size_t plen;
    uint32_t want = 0;
    int check = 0;

    if (args[0] != ':' || args[1] == '\0')
        return erd_fail(diag, ERD_EINVAL, "encoder spec \"%s\" needs a file: %s:PATH", kind, kind);
    args++;
    hash = strrchr(args, '#');
    plen = strlen(args);
    if (hash && strlen(hash + 1) == 8 && strspn(hash + 1, "0123456789abcdefABCDEF") == 8) {
        want = (uint32_t)strtoul(hash + 1, NULL, 16);
        check = 1;
        plen = (size_t)(hash - args);
    }
    if (plen == 0 || plen >= cap)
        return erd_fail(diag, plen ? ERD_ETOOLONG : ERD_EINVAL,
                        "%s path must be 1..%zu bytes (the index records it in its encoder id)",
                        kind, cap - 1);
    if (memchr(args, '|', plen))
        return erd_fail(diag, ERD_EINVAL, "%s path may not contain '|' (it separates the parts "
                        "of a fused spec)", kind);
    memcpy(path, args, plen);
    path[plen] = '\0';
    *ret_want = want;
    *ret_check = check;
    return ERD_OK;
}

static int pho__sem_wrap(const char *kind, const char *path, pho_sem_model *m, pho_vec_model *v,
                         int check, uint32_t want, pho_encoder **ret, erd_diag *diag)
{
    uint32_t have = (uint32_t)m->checksum;
    pho__sem_encoder *s = NULL;
    int rc;

    if (check && have != want) {
        rc = erd_fail(diag, ERD_EMISMATCH,
                      "%s file %s has checksum %08x, not %08x: the file changed since the index "
                      "was built (rebuild the index)", kind, path, (unsigned)have, (unsigned)want);
        goto out;
    }
    s = calloc(1, sizeof *s);
    if (!s) {
        rc = erd_fail(diag, ERD_ENOMEM, "out of memory for encoder");
        goto out;
    }
    s->base.ops = &pho__sem_ops;
    s->m = m;
    s->v = v;
    snprintf(s->id, sizeof s->id, "%s:%s#%08x", kind, path, (unsigned)have);
    *ret = &s->base;
    return ERD_OK;
out:
    if (v)
        pho_vec_destroy(v);
    else
        pho_sem_model_destroy(m);
    return rc;
}

/* The spec arguments of a file-backed encoder: the path as the id will
 * name it, the file it names, and the checksum asked for. */
static int pho__file_args(const char *kind, const char *what, const char *args, char *path,
                          size_t path_cap, char *file, size_t file_cap, uint32_t *want,
                          int *check, erd_diag *diag)
{
    int rc = pho__path_arg(kind, args, path, path_cap, want, check, diag);
    if (rc < 0)
        return rc;
    rc = pho__model_path(path, file, file_cap);
    return rc < 0 ? erd_fail(diag, rc, "%s %s too long", what, path) : ERD_OK;
}

int pho__semantic_create(const char *args, pho_encoder **ret, erd_diag *diag)
{
    /* room left in the id for "semantic:" and "#xxxxxxxx" */
    char path[PHO_ENCODER_ID_MAX - 18], file[2048];
    uint32_t want = 0;
    int check = 0;
    pho_sem_model *m = NULL;
    int rc = pho__file_args("semantic", "model path", args, path, sizeof path, file, sizeof file,
                            &want, &check, diag);
    if (rc < 0 || (rc = pho_sem_model_load(file, &m, diag)) < 0)
        return rc;
    return pho__sem_wrap("semantic", path, m, NULL, check, want, ret, diag);
}

int pho__vec_create(const char *args, pho_encoder **ret, erd_diag *diag)
{
    char path[PHO_ENCODER_ID_MAX - 13], file[2048]; /* "vec:" and "#xxxxxxxx" */
    uint32_t want = 0;
    int check = 0;
    pho_vec_model *v = NULL;
    int rc = pho__file_args("vec", "vector file path", args, path, sizeof path, file,
                            sizeof file, &want, &check, diag);
    if (rc < 0 || (rc = pho_vec_load(file, &v, diag)) < 0)
        return rc;
    return pho__sem_wrap("vec", path, v->m, v, check, want, ret, diag);
}
