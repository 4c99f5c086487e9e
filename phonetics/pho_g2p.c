/* Grapheme-to-phoneme through espeak-ng, behind one process-wide lock, with a
 * per-handle LRU cache consulted before that lock is taken. */
#include "phonetics/pho_g2p.h"

#include <espeak-ng/speak_lib.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "phonetics/pho_cmu.h"
#include "phonetics/pho_internal.h"
#include "phonetics/pho_text.h"
#include "proto/erd_clock.h"

#define PHO__VOICE_MAX 64
#define PHO__CACHE_MAX (1u << 26)

typedef struct pho__entry {
    struct pho__entry *hnext;       /* hash chain */
    struct pho__entry *prev, *next; /* LRU list, most recent first */
    uint64_t hash;
    char *text;
    char *ipa;
} pho__entry;

struct pho_g2p {
    char voice[PHO__VOICE_MAX]; /* espeak-ng's, without "+cmu" */
    int second;                 /* "+cmu": the CMU dictionary's as well */
    char id[128];

    size_t cap;
    pthread_mutex_t cache_mu;
    pho__entry **buckets;
    size_t mask;
    pho__entry lru; /* sentinel */
    size_t count;

    atomic_uint_fast64_t lookups, hits, espeak_calls, espeak_nanos;
};

/* espeak-ng state is process-global: one initialisation, one lock, and the
 * voice currently selected in it (several handles may want different ones). */
static pthread_once_t pho__espeak_once = PTHREAD_ONCE_INIT;
static int pho__espeak_rate;
static pthread_mutex_t pho__espeak_mu = PTHREAD_MUTEX_INITIALIZER;
static char pho__espeak_voice[PHO__VOICE_MAX];

static void pho__espeak_init(void)
{
    pho__espeak_rate =
        espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, NULL, espeakINITIALIZE_DONT_EXIT);
}

static espeak_ERROR pho__select_language(const char *lang)
{
    const espeak_VOICE **list = espeak_ListVoices(NULL);
    espeak_VOICE v;
    int found = 0;

    /* SetVoiceByProperties picks *some* voice whatever it is given, so
     * insist on a voice that lists this exact language.  Each languages
     * field is a run of (priority byte, NUL-terminated name), ending in a
     * zero priority byte. */
    for (size_t i = 0; list && list[i] && !found; i++) {
        const char *l = list[i]->languages;
        while (l && *l && !found) {
            found = strcmp(l + 1, lang) == 0;
            l += strlen(l + 1) + 2;
        }
    }
    if (!found)
        return EE_NOT_FOUND;
    memset(&v, 0, sizeof v);
    v.languages = lang;
    return espeak_SetVoiceByProperties(&v);
}

/* Caller holds pho__espeak_mu.  espeak-ng crashes when asked for phonemes
 * with no voice selected, so a failed selection forgets the current voice and
 * the next call selects again. */
static int pho__select_voice(const char *voice, erd_diag *diag)
{
    if (strcmp(pho__espeak_voice, voice) == 0)
        return ERD_OK;
    /* Names are file names ("en-us"); "en-gb" only exists as a language
     * code, so fall back to selecting by language. */
    if (espeak_SetVoiceByName(voice) != EE_OK && pho__select_language(voice) != EE_OK) {
        pho__espeak_voice[0] = '\0';
        return erd_fail(diag, ERD_EINVAL, "espeak-ng has no voice \"%s\"", voice);
    }
    snprintf(pho__espeak_voice, sizeof pho__espeak_voice, "%s", voice);
    return ERD_OK;
}

/* Appends espeak output to buf, turning any white space run into one space
 * and dropping leading ones.  Returns 0, or -1 once buf is full. */
static int pho__append(char *buf, size_t cap, size_t *len, const char *s)
{
    for (; *s; s++) {
        char c = *s;
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            if (*len == 0 || buf[*len - 1] == ' ')
                continue;
            c = ' ';
        }
        if (*len + 1 >= cap)
            return ERD_ETOOLONG;
        buf[(*len)++] = c;
    }
    return ERD_OK;
}

/* Runs espeak-ng on text into buf (cap bytes).  espeak returns one clause per
 * call and advances ptr, setting it to NULL at the end. */
static int pho__espeak_ipa(pho_g2p *g, const char *text, char *buf, size_t cap, erd_diag *diag)
{
    const void *ptr = text;
    size_t len = 0, guard = strlen(text) + 2;
    int overflow = 0, rc = ERD_OK;
    uint64_t t0;

    pthread_mutex_lock(&pho__espeak_mu);
    t0 = erd_now_ns();
    rc = pho__select_voice(g->voice, diag);
    if (rc < 0)
        goto out;
    while (ptr && guard-- > 0) {
        const char *r = espeak_TextToPhonemes(&ptr, espeakCHARS_UTF8, espeakPHONEMES_IPA);
        if (!r) {
            rc = erd_fail(diag, ERD_EG2P, "espeak-ng returned no phonemes for \"%.64s\"", text);
            goto out;
        }
        /* r points into espeak's own buffer, reused on the next call: copy
         * it now, under the lock. */
        if (!overflow && len > 0 && buf[len - 1] != ' ' && r[0])
            overflow = pho__append(buf, cap, &len, " ") < 0;
        if (!overflow)
            overflow = pho__append(buf, cap, &len, r) < 0;
    }
    if (ptr) {
        rc = erd_fail(diag, ERD_EG2P, "espeak-ng did not finish \"%.64s\"", text);
        goto out;
    }
out:
    atomic_fetch_add(&g->espeak_calls, 1);
    atomic_fetch_add(&g->espeak_nanos, erd_now_ns() - t0);
    pthread_mutex_unlock(&pho__espeak_mu);
    if (rc < 0)
        return rc;
    if (overflow)
        return erd_fail(diag, ERD_ETOOLONG, "IPA for \"%.64s\" exceeds %zu bytes", text, cap);
    while (len > 0 && buf[len - 1] == ' ')
        len--;
    buf[len] = '\0';
    if (len == 0)
        return erd_fail(diag, ERD_EG2P, "espeak-ng produced no phonemes for \"%.64s\"", text);
    return ERD_OK;
}

int pho_g2p_create(const char *voice, size_t cache_entries, pho_g2p **ret, erd_diag *diag)
{
    pho_g2p *g = NULL;
    const char *version;
    size_t nb = 16;
    int rc;

    if (!voice || !ret || !voice[0])
        return erd_fail(diag, ERD_EINVAL, "pho_g2p_create: voice and ret are required");
    if (strlen(voice) >= PHO__VOICE_MAX)
        return erd_fail(diag, ERD_EINVAL, "voice name longer than %d bytes", PHO__VOICE_MAX - 1);
    if (cache_entries > PHO__CACHE_MAX)
        return erd_fail(diag, ERD_EINVAL, "G2P cache of %zu entries exceeds %u", cache_entries,
                        PHO__CACHE_MAX);

    pthread_once(&pho__espeak_once, pho__espeak_init);
    if (pho__espeak_rate <= 0)
        return erd_fail(diag, ERD_EG2P, "espeak-ng failed to initialise (is espeak-ng-data installed?)");

    g = calloc(1, sizeof *g);
    if (!g)
        return erd_fail(diag, ERD_ENOMEM, "out of memory for G2P handle");
    snprintf(g->voice, sizeof g->voice, "%s", voice);
    size_t vlen = strlen(g->voice);
    if (vlen > 4 && !strcmp(g->voice + vlen - 4, "+cmu")) {
        g->voice[vlen - 4] = '\0';
        g->second = 1;
    }
    g->cap = cache_entries;
    g->lru.prev = g->lru.next = &g->lru;
    while (nb < cache_entries)
        nb <<= 1;
    if (cache_entries > 0) {
        g->buckets = calloc(nb, sizeof *g->buckets);
        if (!g->buckets) {
            rc = erd_fail(diag, ERD_ENOMEM, "out of memory for a %zu-entry G2P cache", cache_entries);
            goto out;
        }
        g->mask = nb - 1;
    }
    pthread_mutex_init(&g->cache_mu, NULL);

    pthread_mutex_lock(&pho__espeak_mu);
    rc = pho__select_voice(g->voice, diag);
    version = espeak_Info(NULL);
    pthread_mutex_unlock(&pho__espeak_mu);
    if (rc < 0) {
        pthread_mutex_destroy(&g->cache_mu);
        goto out;
    }
    /* espeak_Info may append a build date after the version number. */
    /* the second pronunciation is not cached: the id names espeak-ng's alone,
     * so "en-us" and "en-us+cmu" share the phoneme cache */
    snprintf(g->id, sizeof g->id, "espeak-ng %.*s %s",
             version ? (int)strcspn(version, " \t") : 1, version ? version : "?", g->voice);
    *ret = g;
    g = NULL;
    rc = ERD_OK;
out:
    if (g) {
        free(g->buckets);
        free(g);
    }
    return rc;
}

void pho_g2p_destroy(pho_g2p *g)
{
    pho__entry *e, *next;

    if (!g)
        return;
    for (e = g->lru.next; e != &g->lru; e = next) {
        next = e->next;
        free(e);
    }
    free(g->buckets);
    pthread_mutex_destroy(&g->cache_mu);
    free(g);
}

const char *pho_g2p_id(const pho_g2p *g)
{
    return g ? g->id : "";
}

void pho_g2p_get_stats(pho_g2p *g, pho_g2p_stats *ret)
{
    if (!g || !ret)
        return;
    ret->lookups = atomic_load(&g->lookups);
    ret->hits = atomic_load(&g->hits);
    ret->espeak_calls = atomic_load(&g->espeak_calls);
    ret->espeak_nanos = atomic_load(&g->espeak_nanos);
}

static void pho__lru_unlink(pho__entry *e)
{
    e->prev->next = e->next;
    e->next->prev = e->prev;
}

static void pho__lru_push_front(pho_g2p *g, pho__entry *e)
{
    e->prev = &g->lru;
    e->next = g->lru.next;
    g->lru.next->prev = e;
    g->lru.next = e;
}

/* Caller holds cache_mu. */
static pho__entry *pho__cache_find(pho_g2p *g, uint64_t h, const char *text)
{
    for (pho__entry *e = g->buckets[h & g->mask]; e; e = e->hnext)
        if (e->hash == h && strcmp(e->text, text) == 0)
            return e;
    return NULL;
}

/* Caller holds cache_mu. */
static void pho__cache_remove(pho_g2p *g, pho__entry *e)
{
    pho__entry **pp = &g->buckets[e->hash & g->mask];

    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    pho__lru_unlink(e);
    g->count--;
    free(e);
}

/* Best effort: a failed allocation only costs a future cache miss. */
static void pho__cache_insert(pho_g2p *g, uint64_t h, const char *text, const char *ipa)
{
    size_t tl = strlen(text) + 1, il = strlen(ipa) + 1;
    pho__entry *e;

    pthread_mutex_lock(&g->cache_mu);
    if (pho__cache_find(g, h, text))
        goto out; /* another thread got there first */
    if (g->count >= g->cap)
        pho__cache_remove(g, g->lru.prev);
    e = malloc(sizeof *e + tl + il);
    if (!e)
        goto out;
    e->hash = h;
    e->text = (char *)(e + 1);
    e->ipa = e->text + tl;
    memcpy(e->text, text, tl);
    memcpy(e->ipa, ipa, il);
    e->hnext = g->buckets[h & g->mask];
    g->buckets[h & g->mask] = e;
    pho__lru_push_front(g, e);
    g->count++;
out:
    pthread_mutex_unlock(&g->cache_mu);
}

static int pho__copy_out(const char *ipa, char *out, size_t outcap, erd_diag *diag)
{
    size_t n = strlen(ipa);

    if (n + 1 > outcap)
        return erd_fail(diag, ERD_ETOOLONG, "IPA of %zu bytes does not fit in %zu", n, outcap);
    memcpy(out, ipa, n + 1);
    return ERD_OK;
}

int pho_g2p_ipa(pho_g2p *g, const char *text, char *out, size_t outcap, erd_diag *diag)
{
    char buf[PHO_IPA_MAX];
    size_t len;
    uint64_t h = 0;
    int rc;

    if (!g || !text || !out || outcap == 0)
        return erd_fail(diag, ERD_EINVAL, "pho_g2p_ipa: NULL argument");
    len = strnlen(text, PHO_TEXT_MAX);
    if (len == PHO_TEXT_MAX)
        return erd_fail(diag, ERD_ETOOLONG, "text exceeds %d bytes", PHO_TEXT_MAX - 1);
    if (len == 0)
        return erd_fail(diag, ERD_EEMPTY, "no text to transcribe");
    if (!pho_utf8_valid(text, len))
        return erd_fail(diag, ERD_EUTF8, "text to transcribe is not valid UTF-8");

    atomic_fetch_add(&g->lookups, 1);
    if (g->cap > 0) {
        pho__entry *e;

        h = erd_fnv1a64(ERD_FNV1A64_OFFSET, text, len);
        pthread_mutex_lock(&g->cache_mu);
        e = pho__cache_find(g, h, text);
        if (e) {
            pho__lru_unlink(e);
            pho__lru_push_front(g, e);
            atomic_fetch_add(&g->hits, 1);
            rc = pho__copy_out(e->ipa, out, outcap, diag);
            pthread_mutex_unlock(&g->cache_mu);
            return rc;
        }
        pthread_mutex_unlock(&g->cache_mu);
    }

    rc = pho__espeak_ipa(g, text, buf, sizeof buf, diag);
    if (rc < 0)
        return rc;
    if (g->cap > 0)
        pho__cache_insert(g, h, text, buf);
    return pho__copy_out(buf, out, outcap, diag);
}

int pho_g2p_has_second(const pho_g2p *g)
{
    return g && g->second;
}

int pho_g2p_second_ipa(pho_g2p *g, const char *text, char *out, size_t outcap, erd_diag *diag)
{
    if (!g || !text || !out || outcap == 0)
        return erd_fail(diag, ERD_EINVAL, "pho_g2p_second_ipa: NULL argument");
    if (!g->second)
        return ERD_ENOTFOUND;
    int rc = pho_cmu_ipa(text, out, outcap);
    if (rc == ERD_OK || rc == ERD_ENOTFOUND || rc == ERD_EEMPTY)
        return rc == ERD_OK ? ERD_OK : ERD_ENOTFOUND; /* no words, or one without phones */
    if (rc == ERD_EG2P)
        return erd_fail(diag, rc, "the CMU dictionary (libflite cmulex) did not load");
    return erd_fail(diag, rc, "CMU pronunciation of \"%.100s\": %s", text, erd_strerror(rc));
}
