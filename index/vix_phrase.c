#include "index/vix_phrase.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "index/vix_store.h"
#include "proto/erd_hash.h"

/* ---- phonemes pending for the cache ---- */

struct vix_phoneme_batch {
    /* open addressing over entries, at most half full; slot = entry + 1 */
    uint32_t *slots;
    size_t n_slots;
    size_t *text_off, *ipa_off; /* per entry, into arena */
    uint64_t *hash;
    size_t n, cap;
    char *arena;
    size_t arena_len, arena_cap;
};

int vix_phoneme_batch_create(vix_phoneme_batch **ret, erd_diag *diag)
{
    vix_phoneme_batch *b = calloc(1, sizeof *b);
    if (!b)
        return erd_fail(diag, ERD_ENOMEM, "out of memory");
    *ret = b;
    return ERD_OK;
}

void vix_phoneme_batch_destroy(vix_phoneme_batch *b)
{
    if (!b)
        return;
    free(b->slots);
    free(b->text_off);
    free(b->ipa_off);
    free(b->hash);
    free(b->arena);
    free(b);
}

size_t vix_phoneme_batch_count(const vix_phoneme_batch *b)
{
    return b ? b->n : 0;
}

static const char *vix__batch_find(const vix_phoneme_batch *b, const char *text, uint64_t h)
{
    if (!b->n_slots)
        return NULL;
    for (size_t i = (size_t)h & (b->n_slots - 1); b->slots[i]; i = (i + 1) & (b->n_slots - 1)) {
        size_t e = b->slots[i] - 1;
        if (b->hash[e] == h && strcmp(b->arena + b->text_off[e], text) == 0)
            return b->arena + b->ipa_off[e];
    }
    return NULL;
}

static int vix__batch_add(vix_phoneme_batch *b, const char *text, const char *ipa, uint64_t h)
{
    size_t tl = strlen(text) + 1, il = strlen(ipa) + 1;
    if (b->n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 1024;
        if (cap >= UINT32_MAX)
            return ERD_ENOMEM;
        size_t *t = realloc(b->text_off, cap * sizeof *t);
        if (t)
            b->text_off = t;
        size_t *i = realloc(b->ipa_off, cap * sizeof *i);
        if (i)
            b->ipa_off = i;
        uint64_t *hh = realloc(b->hash, cap * sizeof *hh);
        if (hh)
            b->hash = hh;
        if (!t || !i || !hh)
            return ERD_ENOMEM;
        b->cap = cap;
    }
    if (b->arena_len + tl + il > b->arena_cap) {
        size_t cap = b->arena_cap ? 2 * b->arena_cap : 65536;
        while (cap < b->arena_len + tl + il)
            cap *= 2;
        char *a = realloc(b->arena, cap);
        if (!a)
            return ERD_ENOMEM;
        b->arena = a;
        b->arena_cap = cap;
    }
    if (2 * (b->n + 1) > b->n_slots) {
        size_t n_slots = b->n_slots ? 2 * b->n_slots : 4096;
        uint32_t *slots = calloc(n_slots, sizeof *slots);
        if (!slots)
            return ERD_ENOMEM;
        for (size_t e = 0; e < b->n; e++) {
            size_t i = (size_t)b->hash[e] & (n_slots - 1);
            while (slots[i])
                i = (i + 1) & (n_slots - 1);
            slots[i] = (uint32_t)e + 1;
        }
        free(b->slots);
        b->slots = slots;
        b->n_slots = n_slots;
    }
    size_t e = b->n++;
    b->hash[e] = h;
    b->text_off[e] = b->arena_len;
    memcpy(b->arena + b->arena_len, text, tl);
    b->ipa_off[e] = b->arena_len + tl;
    memcpy(b->arena + b->arena_len + tl, ipa, il);
    b->arena_len += tl + il;
    size_t i = (size_t)h & (b->n_slots - 1);
    while (b->slots[i])
        i = (i + 1) & (b->n_slots - 1);
    b->slots[i] = (uint32_t)e + 1;
    return ERD_OK;
}

/* qsort passes no context: the batch being sorted, per thread */
static _Thread_local const vix_phoneme_batch *vix__sort_batch;

static int vix__cmp_entry_text(const void *a, const void *b)
{
    const vix_phoneme_batch *bt = vix__sort_batch;
    return strcmp(bt->arena + bt->text_off[*(const uint32_t *)a],
                  bt->arena + bt->text_off[*(const uint32_t *)b]);
}

#define VIX__FLUSH_ROWS 4096

int vix_phoneme_batch_flush(vix_phoneme_batch *b, vix_store *cache, const char *g2p_id,
                            erd_diag *diag)
{
    if (!b || !b->n)
        return ERD_OK;
    uint32_t *order = malloc(b->n * sizeof *order);
    if (!order)
        return erd_fail(diag, ERD_ENOMEM, "out of memory");
    for (size_t e = 0; e < b->n; e++)
        order[e] = (uint32_t)e;
    vix__sort_batch = b;
    qsort(order, b->n, sizeof *order, vix__cmp_entry_text);
    int rc = ERD_OK;
    for (size_t at = 0; at < b->n && rc == ERD_OK; at += VIX__FLUSH_ROWS) {
        size_t end = at + VIX__FLUSH_ROWS < b->n ? at + VIX__FLUSH_ROWS : b->n;
        rc = vix_store_begin(cache, diag);
        for (size_t i = at; i < end && rc == ERD_OK; i++)
            rc = vix_store_phonemes_put(cache, g2p_id, b->arena + b->text_off[order[i]],
                                        b->arena + b->ipa_off[order[i]], diag);
        if (rc == ERD_OK)
            rc = vix_store_commit(cache, diag);
        else
            vix_store_rollback(cache);
    }
    free(order);
    if (rc == ERD_OK) {
        b->n = 0;
        b->arena_len = 0;
        if (b->slots)
            memset(b->slots, 0, b->n_slots * sizeof *b->slots);
    }
    return rc;
}

/* ---- text to phrase ---- */

/* A name longer than the token budget is still found by its first few
 * hundred phonemes: the IPA is cut at a word break and that kept. */
static int vix__tokenize(char *ipa, pho_token *tokens, size_t *ret_n)
{
    int rc = pho_tokenize(ipa, tokens, PHO_TOKENS_MAX, ret_n);
    while (rc == ERD_ETOOLONG) {
        char *cut = strrchr(ipa, ' ');
        if (!cut || cut == ipa)
            break;
        *cut = '\0';
        rc = pho_tokenize(ipa, tokens, PHO_TOKENS_MAX, ret_n);
    }
    return rc;
}

static int vix__prepare(pho_g2p *g2p, vix_store *cache, vix_phoneme_batch *batch,
                        const char *text, size_t len, vix_phrase *ret, char *ret_ipa,
                        size_t ipa_cap, erd_diag *diag)
{
    char norm[PHO_TEXT_MAX];
    char ipa[PHO_IPA_MAX];
    size_t norm_len, n_tokens;
    pho_token tokens[PHO_TOKENS_MAX];

    int rc = pho_normalize(text, len, norm, sizeof norm, &norm_len);
    if (rc < 0)
        return erd_fail(diag, rc, "%s", erd_strerror(rc));

    rc = cache ? vix_store_phonemes_get(cache, pho_g2p_id(g2p), norm, ipa, sizeof ipa)
               : ERD_ENOTFOUND;
    if (rc == ERD_ENOTFOUND && batch) {
        uint64_t h = erd_fnv1a64(ERD_FNV1A64_OFFSET, norm, norm_len);
        const char *pending = vix__batch_find(batch, norm, h);
        if (pending) {
            snprintf(ipa, sizeof ipa, "%s", pending);
            rc = ERD_OK;
        } else {
            rc = pho_g2p_ipa(g2p, norm, ipa, sizeof ipa, diag);
            if (rc < 0)
                return rc;
            if (vix__batch_add(batch, norm, ipa, h) < 0)
                return erd_fail(diag, ERD_ENOMEM, "out of memory keeping phonemes");
        }
    } else if (rc == ERD_ENOTFOUND) {
        rc = pho_g2p_ipa(g2p, norm, ipa, sizeof ipa, diag);
        if (rc < 0)
            return rc;
        if (cache) {
            rc = vix_store_phonemes_put(cache, pho_g2p_id(g2p), norm, ipa, diag);
            if (rc < 0)
                return rc;
        }
    } else if (rc < 0) {
        return erd_fail(diag, rc, "phoneme cache: %s", erd_strerror(rc));
    }

    rc = vix__tokenize(ipa, tokens, &n_tokens);
    if (rc < 0)
        return erd_fail(diag, rc, "\"%s\" has no phonemes espeak-ng can speak", norm);

    memcpy(ret->text, norm, norm_len + 1);
    memcpy(ret->tokens, tokens, n_tokens * sizeof tokens[0]);
    ret->n_tokens = n_tokens;
    if (ret_ipa)
        snprintf(ret_ipa, ipa_cap, "%s", ipa);
    return ERD_OK;
}

int vix_phrase_prepare(pho_g2p *g2p, vix_store *cache, const char *text, size_t len,
                       vix_phrase *ret, erd_diag *diag)
{
    return vix__prepare(g2p, cache, NULL, text, len, ret, NULL, 0, diag);
}

int vix_phrase_second_analyze(pho_g2p *g2p, const vix_phrase *first, vix_phrase *ret,
                              char *ret_ipa, size_t ipa_cap, erd_diag *diag)
{
    char ipa[PHO_IPA_MAX];
    pho_token tokens[PHO_TOKENS_MAX];
    size_t n_tokens;
    if (!pho_g2p_has_second(g2p))
        return ERD_ENOTFOUND;
    int rc = pho_g2p_second_ipa(g2p, first->text, ipa, sizeof ipa, diag);
    if (rc < 0)
        return rc;
    if (vix__tokenize(ipa, tokens, &n_tokens) < 0)
        return ERD_ENOTFOUND; /* phones the inventory cannot read: no second one */
    if (n_tokens == first->n_tokens && !memcmp(tokens, first->tokens, n_tokens * sizeof *tokens))
        return ERD_ENOTFOUND;
    memcpy(ret->text, first->text, strlen(first->text) + 1);
    memcpy(ret->tokens, tokens, n_tokens * sizeof *tokens);
    ret->n_tokens = n_tokens;
    if (ret_ipa) /* cut as the tokens were, as vix_phrase_analyze's */
        snprintf(ret_ipa, ipa_cap, "%s", ipa);
    return ERD_OK;
}

int vix_phrase_second(pho_g2p *g2p, const vix_phrase *first, vix_phrase *ret, erd_diag *diag)
{
    return vix_phrase_second_analyze(g2p, first, ret, NULL, 0, diag);
}

int vix_phrase_pronunciations(pho_g2p *g2p, const vix_phrase *first, int derived,
                              vix_phrase *scratch, vix_pronunciation_fn add, void *user,
                              erd_diag *diag)
{
    int rc = add(user, first, derived, 0);
    if (rc != 0 || derived)
        return rc;
    rc = vix_phrase_second(g2p, first, scratch, diag);
    if (rc == ERD_ENOTFOUND)
        return 0;
    return rc < 0 ? rc : add(user, scratch, derived, 1);
}

int vix_phrase_analyze(pho_g2p *g2p, const char *text, size_t len, vix_phrase *ret, char *ret_ipa,
                       size_t ipa_cap, erd_diag *diag)
{
    return vix__prepare(g2p, NULL, NULL, text, len, ret, ret_ipa, ipa_cap, diag);
}

int vix_phrase_prepare_batched(pho_g2p *g2p, vix_store *cache, vix_phoneme_batch *batch,
                               const char *text, size_t len, vix_phrase *ret, erd_diag *diag)
{
    return vix__prepare(g2p, cache, batch, text, len, ret, NULL, 0, diag);
}

static void vix__trim(const char **s, size_t *len)
{
    while (*len && isspace((unsigned char)**s)) {
        (*s)++;
        (*len)--;
    }
    while (*len && isspace((unsigned char)(*s)[*len - 1]))
        (*len)--;
}

static size_t vix__article_len(const char *s, size_t len)
{
    static const char *const articles[] = {"the ", "a ", "an "};
    for (size_t i = 0; i < sizeof articles / sizeof articles[0]; i++) {
        size_t n = strlen(articles[i]);
        if (len > n && strncasecmp(s, articles[i], n) == 0)
            return n;
    }
    return 0;
}

/* Emits s and s-without-article, skipping empty results and repeats of the
 * previous emissions (seen[] holds what was emitted so far). */
typedef struct vix__emitter {
    vix_variant_cb cb;
    void *user;
    const char *seen[8];
    size_t seen_len[8];
    size_t n_seen;
} vix__emitter;

static int vix__emit_one(vix__emitter *em, const char *s, size_t len)
{
    vix__trim(&s, &len);
    if (!len)
        return 0;
    for (size_t i = 0; i < em->n_seen; i++)
        if (em->seen_len[i] == len && strncasecmp(em->seen[i], s, len) == 0)
            return 0;
    if (em->n_seen < sizeof em->seen / sizeof em->seen[0]) {
        em->seen[em->n_seen] = s;
        em->seen_len[em->n_seen++] = len;
    }
    /* The first emission is always the name as written. */
    return em->cb(em->user, s, len, em->n_seen > 1);
}

static int vix__emit(vix__emitter *em, const char *s, size_t len)
{
    vix__trim(&s, &len);
    int rc = vix__emit_one(em, s, len);
    if (rc)
        return rc;
    size_t art = vix__article_len(s, len);
    return art ? vix__emit_one(em, s + art, len - art) : 0;
}

int vix_phrase_variants(const char *name, vix_variant_cb cb, void *user)
{
    vix__emitter em = {.cb = cb, .user = user};
    size_t len = strlen(name);
    int rc = vix__emit(&em, name, len);
    if (rc)
        return rc;
    const char *colon = memchr(name, ':', len);
    if (colon) {
        rc = vix__emit(&em, name, (size_t)(colon - name));
        if (rc)
            return rc;
        rc = vix__emit(&em, colon + 1, len - (size_t)(colon - name) - 1);
    }
    return rc;
}

typedef struct vix__variants_of {
    vix_variant_cb cb;
    void *user;
} vix__variants_of;

static int vix__text_variants(void *user, const char *text)
{
    const vix__variants_of *v = user;
    return vix_phrase_variants(text, v->cb, v->user);
}

int vix_entity_variants(const struct vix_entity *e, vix_variant_cb cb, void *user)
{
    vix__variants_of v = {cb, user};
    return vix_entity_texts(e, vix__text_variants, &v);
}
