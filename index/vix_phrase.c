#include "index/vix_phrase.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "index/vix_store.h"

int vix_phrase_prepare(pho_g2p *g2p, vix_store *cache, const char *text, size_t len,
                       vix_phrase *ret, erd_diag *diag)
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
    if (rc == ERD_ENOTFOUND) {
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

    rc = pho_tokenize(ipa, tokens, PHO_TOKENS_MAX, &n_tokens);
    /* A name longer than the token budget is still found by its first few
     * hundred phonemes: cut the IPA at a word break and keep that. */
    while (rc == ERD_ETOOLONG) {
        char *cut = strrchr(ipa, ' ');
        if (!cut || cut == ipa)
            break;
        *cut = '\0';
        rc = pho_tokenize(ipa, tokens, PHO_TOKENS_MAX, &n_tokens);
    }
    if (rc < 0)
        return erd_fail(diag, rc, "\"%s\" has no phonemes espeak-ng can speak", norm);

    memcpy(ret->text, norm, norm_len + 1);
    memcpy(ret->tokens, tokens, n_tokens * sizeof tokens[0]);
    ret->n_tokens = n_tokens;
    return ERD_OK;
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
