/* Views and what they hold: the entity sets, the bases loaded from built
 * indexes, reference counts, and publishing a new view with one pointer swap. */
#include "index/vix_resolve_internal.h"

#include <sys/mman.h>

const char *vix__intern_str(vix_resolver *r, const char *s)
{
    const char *out = NULL;
    pthread_mutex_lock(&r->intern_mu);
    for (vix__intern *i = r->interned; i && !out; i = i->next)
        if (strcmp(i->s, s) == 0)
            out = i->s;
    if (!out) {
        size_t n = strlen(s) + 1;
        vix__intern *i = malloc(sizeof *i + n);
        if (i) {
            memcpy(i->s, s, n);
            i->next = r->interned;
            r->interned = i;
            out = i->s;
        }
    }
    pthread_mutex_unlock(&r->intern_mu);
    return out;
}

void vix__set_free(vix__set *c)
{
    if (c->map) {
        munmap(c->map, c->map_len);
        memset(c, 0, sizeof *c);
        return;
    }
    free(c->entities);
    free(c->strings);
    free(c->phrases);
    free(c->phones);
    free(c->slot);
    memset(c, 0, sizeof *c);
}

void vix__base_unref(vix__base *b)
{
    if (!b || atomic_fetch_sub(&b->refs, 1) != 1)
        return;
    pho_encoder_destroy(b->enc);
    vix_index_destroy(b->index);
    vix__set_free(&b->set);
    free(b);
}

void vix__dent_unref(vix__dent *d)
{
    if (!d || atomic_fetch_sub(&d->refs, 1) != 1)
        return;
    vix__set_free(&d->set);
    free(d->vecs);
    free(d);
}

void vix__delta_unref(vix__delta *d)
{
    if (!d || atomic_fetch_sub(&d->refs, 1) != 1)
        return;
    for (size_t i = 0; i < d->n_ents; i++)
        vix__dent_unref(d->ents[i]);
    free(d->ents);
    free(d->masked);
    vix_index_destroy(d->index);
    free(d);
}

static void vix__view_free(vix_view *v)
{
    for (size_t i = 0; i < v->n_catalogs; i++) {
        vix__base_unref(v->catalogs[i].base);
        vix__delta_unref(v->catalogs[i].delta);
    }
    free(v->catalogs);
    free(v);
}

vix_view *vix_resolver_acquire(vix_resolver *r)
{
    pthread_mutex_lock(&r->view_mu);
    vix_view *v = r->view;
    atomic_fetch_add(&v->refs, 1);
    pthread_mutex_unlock(&r->view_mu);
    return v;
}

void vix_view_release(vix_view *v)
{
    if (v && atomic_fetch_sub(&v->refs, 1) == 1)
        vix__view_free(v);
}

/* Publishes v (one reference handed over to the resolver) and drops the
 * resolver's reference to the view it replaces. */
void vix__publish(vix_resolver *r, vix_view *v)
{
    pthread_mutex_lock(&r->view_mu);
    vix_view *old = r->view;
    r->view = v;
    pthread_mutex_unlock(&r->view_mu);
    vix_view_release(old);
}

/* Entity strings are first gathered as offsets (the arena moves while it
 * grows) and turned into pointers once loading is done. */
static int vix__arena_add(vix__set *c, const char *s, size_t *ret_off)
{
    size_t len = strlen(s) + 1;
    if (c->strings_len + len > c->strings_cap) {
        size_t ncap = c->strings_cap ? c->strings_cap : 256;
        while (ncap < c->strings_len + len)
            ncap *= 2;
        char *p = realloc(c->strings, ncap);
        if (!p)
            return ERD_ENOMEM;
        c->strings = p;
        c->strings_cap = ncap;
    }
    memcpy(c->strings + c->strings_len, s, len);
    *ret_off = c->strings_len;
    c->strings_len += len;
    return ERD_OK;
}

/* One prepared phrase of the entity whose phrases start at index first,
 * unless it already has one with the same packed phones (aliases often
 * differ only in punctuation). */
int vix__set_add_phrase(vix__set *c, size_t first, const vix_phrase *ph, int derived)
{
    uint8_t packed[VIX_RR_TOKENS_MAX];
    size_t n = vix_rerank_pack(ph->tokens, ph->n_tokens, packed, sizeof packed);
    for (size_t i = first; i < c->n_phrases; i++) {
        const vix_rerank_phrase *p = &c->phrases[i];
        if (p->n == n && memcmp(c->phones + (uintptr_t)p->tokens, packed, n) == 0) {
            c->phrases[i].derived &= (uint8_t)derived;
            return ERD_OK;
        }
    }
    if (c->n_phrases == c->cap_phrases) {
        size_t ncap = c->cap_phrases ? c->cap_phrases * 2 : 16;
        vix_rerank_phrase *p = realloc(c->phrases, ncap * sizeof *p);
        if (!p)
            return ERD_ENOMEM;
        c->phrases = p;
        c->cap_phrases = ncap;
    }
    if (c->phones_len + n > c->phones_cap) {
        size_t ncap = c->phones_cap ? c->phones_cap : 256;
        while (ncap < c->phones_len + n)
            ncap *= 2;
        uint8_t *p = realloc(c->phones, ncap);
        if (!p)
            return ERD_ENOMEM;
        c->phones = p;
        c->phones_cap = ncap;
    }
    memcpy(c->phones + c->phones_len, packed, n);
    /* An offset until loading is done: the arena moves while it grows. */
    c->phrases[c->n_phrases++] = (vix_rerank_phrase){
        .tokens = (const uint8_t *)(uintptr_t)c->phones_len, .n = (uint16_t)n,
        .derived = (uint8_t)(derived ? 1 : 0)};
    c->phones_len += n;
    return ERD_OK;
}

int vix__set_entity_begin(vix__set *c, const vix_entity *e, size_t *ret_first)
{
    if (c->n_entities == c->cap_entities) {
        size_t ncap = c->cap_entities ? c->cap_entities * 2 : 16;
        vix__entity *p = realloc(c->entities, ncap * sizeof *p);
        if (!p)
            return ERD_ENOMEM;
        c->entities = p;
        c->cap_entities = ncap;
    }
    size_t id_off, name_off;
    if (vix__arena_add(c, e->ext_id, &id_off) < 0 || vix__arena_add(c, e->name, &name_off) < 0)
        return ERD_ENOMEM;
    /* the slot is taken by vix__set_entity_end, once the phrases are in */
    c->entities[c->n_entities] = (vix__entity){
        .rowid = e->rowid, .ext_id = (const char *)(uintptr_t)id_off,
        .name = (const char *)(uintptr_t)name_off,
        .phrases = (const vix_rerank_phrase *)(uintptr_t)c->n_phrases};
    *ret_first = c->n_phrases;
    return ERD_OK;
}

void vix__set_entity_end(vix__set *c)
{
    vix__entity *e = &c->entities[c->n_entities++];
    e->n_phrases = c->n_phrases - (uintptr_t)e->phrases;
}

static int vix__load_phrase(void *user, const vix_phrase *ph, int derived, int is_second)
{
    (void)is_second;
    vix__load *ld = user;
    if (vix__set_add_phrase(ld->set, ld->entity_first_phrase, ph, derived) < 0)
        return erd_fail(ld->diag, ERD_ENOMEM, "out of memory loading phrases");
    return 0;
}

/* The same variants the build indexed (vix_build.c), deduplicated by
 * their phones.  The build filled the phoneme cache, so this is a cache
 * read per phrase; a miss (cache trimmed since) falls back to espeak-ng. */
int vix__load_variant(void *user, const char *variant, size_t len, int derived)
{
    vix__load *ld = user;
    int rc = ld->store ? vix_phrase_prepare(ld->g2p, ld->store, variant, len, ld->scratch, NULL)
                       : ERD_ENOTFOUND;
    if (rc < 0 && rc != ERD_EEMPTY)
        rc = vix_phrase_prepare(ld->g2p, NULL, variant, len, ld->scratch, ld->diag);
    if (rc == ERD_EEMPTY)
        return 0;
    vix_phrase second;
    if (rc == ERD_OK)
        rc = vix_phrase_pronunciations(ld->g2p, ld->scratch, derived, &second, vix__load_phrase,
                                       ld, ld->diag);
    if (rc < 0) {
        ld->rc = rc;
        return 1;
    }
    return 0;
}

int vix__load_entity(void *user, const vix_entity *e)
{
    vix__load *ld = user;
    if (vix__set_entity_begin(ld->set, e, &ld->entity_first_phrase) < 0) {
        ld->rc = erd_fail(ld->diag, ERD_ENOMEM, "out of memory loading entities");
        return 1;
    }
    if (ld->scratch && vix_entity_variants(e, vix__load_variant, ld))
        return 1;
    vix__set_entity_end(ld->set);
    return 0;
}

int vix__cmp_rowid(const void *a, const void *b)
{
    int64_t x = ((const vix__entity *)a)->rowid, y = ((const vix__entity *)b)->rowid;
    return (x > y) - (x < y);
}

/* Offsets become pointers once the arenas stop moving. */
/* Gives back what the growing arrays over-allocated (up to half of them;
 * for a delta entry of one entity, most of it).  Runs while entries still
 * hold offsets, since the arrays may move. */
void vix__fit(void **p, size_t *cap, size_t n, size_t size)
{
    if (!*p || n >= *cap)
        return;
    void *q = realloc(*p, (n ? n : 1) * size);
    if (q) {
        *p = q;
        *cap = n;
    }
}

static void vix__set_fit(vix__set *c)
{
    vix__fit((void **)&c->entities, &c->cap_entities, c->n_entities, sizeof *c->entities);
    vix__fit((void **)&c->strings, &c->strings_cap, c->strings_len, 1);
    vix__fit((void **)&c->phrases, &c->cap_phrases, c->n_phrases, sizeof *c->phrases);
    vix__fit((void **)&c->phones, &c->phones_cap, c->phones_len, 1);
}

/* Heap bytes the set holds (a mapped table's are the file's). */
size_t vix__set_bytes(const vix__set *c)
{
    if (c->map)
        return 0;
    return c->cap_entities * sizeof *c->entities + c->strings_cap +
           c->cap_phrases * sizeof *c->phrases + c->phones_cap + c->slot_n * sizeof *c->slot;
}

void vix__set_finish(vix__set *c)
{
    vix__set_fit(c);
    for (size_t i = 0; i < c->n_entities; i++) {
        c->entities[i].ext_id = c->strings + (uintptr_t)c->entities[i].ext_id;
        c->entities[i].name = c->strings + (uintptr_t)c->entities[i].name;
        c->entities[i].phrases = c->phrases + (uintptr_t)c->entities[i].phrases;
    }
    for (size_t i = 0; i < c->n_phrases; i++)
        c->phrases[i].tokens = c->phones + (uintptr_t)c->phrases[i].tokens;
    qsort(c->entities, c->n_entities, sizeof *c->entities, vix__cmp_rowid);
    if (c->n_entities && c->n_entities < UINT32_MAX) {
        int64_t lo = c->entities[0].rowid, hi = c->entities[c->n_entities - 1].rowid;
        uint64_t span = (uint64_t)hi - (uint64_t)lo + 1;
        /* without the table lookups are only slower */
        if (span <= 4 * (uint64_t)c->n_entities + 1024 &&
            (c->slot = calloc((size_t)span, sizeof *c->slot))) {
            c->slot_lo = lo;
            c->slot_n = (size_t)span;
            for (size_t i = 0; i < c->n_entities; i++)
                c->slot[c->entities[i].rowid - lo] = (uint32_t)i + 1;
        }
    }
}

const vix__entity *vix__set_find(const vix__set *c, int64_t rowid)
{
    if (c->slot) {
        uint64_t at = (uint64_t)rowid - (uint64_t)c->slot_lo;
        return at < c->slot_n && c->slot[at] ? &c->entities[c->slot[at] - 1] : NULL;
    }
    size_t lo = 0, hi = c->n_entities;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->entities[mid].rowid < rowid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < c->n_entities && c->entities[lo].rowid == rowid ? &c->entities[lo] : NULL;
}

int vix__set_load(vix_store *store, int64_t catalog_id, pho_g2p *g2p, bool phrases,
                  vix__set *ret, erd_diag *diag)
{
    vix__set set = {0};
    vix__load ld = {.set = &set, .g2p = g2p, .store = store, .diag = diag};
    if (phrases && !(ld.scratch = malloc(sizeof *ld.scratch)))
        return erd_fail(diag, ERD_ENOMEM, "out of memory");
    int rc = vix_store_entity_foreach(store, catalog_id, vix__load_entity, &ld, diag);
    free(ld.scratch);
    if (rc != 0) {
        rc = ld.rc < 0 ? ld.rc : rc > 0 ? erd_fail(diag, ERD_ENOMEM, "out of memory") : rc;
        vix__set_free(&set);
        return rc;
    }
    vix__set_finish(&set);
    *ret = set;
    return ERD_OK;
}

/* The G2P handle for voice ("" or g2p_voice: the configured one), made on
 * first use: queries of a catalog are spoken in the voice its index was
 * built with, whatever the server's g2p_voice says. */
static int vix__g2p_for(vix_resolver *r, const char *voice, const char *catalog, pho_g2p **ret,
                        erd_diag *diag)
{
    if (!voice[0] || strcmp(voice, r->g2p_voice) == 0) {
        *ret = r->g2p;
        return ERD_OK;
    }
    int rc = ERD_OK;
    pthread_mutex_lock(&r->intern_mu);
    vix__voice *v = r->voices;
    while (v && strcmp(v->name, voice) != 0)
        v = v->next;
    if (!v) {
        erd_diag inner = {0};
        v = calloc(1, sizeof *v);
        if (!v)
            rc = erd_fail(diag, ERD_ENOMEM, "out of memory");
        else if ((rc = pho_g2p_create(voice, r->g2p_cache_entries, &v->g2p, &inner)) < 0)
            rc = erd_fail(diag, rc, "catalog \"%s\" was built with G2P voice \"%s\": %s", catalog,
                          voice, inner.msg);
        if (rc < 0) {
            free(v);
            v = NULL;
        } else {
            snprintf(v->name, sizeof v->name, "%s", voice);
            v->next = r->voices;
            r->voices = v;
        }
    }
    if (v)
        *ret = v->g2p;
    pthread_mutex_unlock(&r->intern_mu);
    return rc;
}

/* Loads catalog_id's built index, encoder and entities, as meta describes
 * them, from store (inside the caller's read snapshot). */
int vix__base_load(vix_resolver *r, vix_store *store, int64_t catalog_id, const char *name,
                   const vix_index_meta *meta, vix__base **ret, erd_diag *diag)
{
    vix__base *b = calloc(1, sizeof *b);
    int rc;
    if (!b)
        return erd_fail(diag, ERD_ENOMEM, "out of memory");
    atomic_init(&b->refs, 1);
    b->generation = meta->catalog_generation;
    b->built_at = meta->built_at;
    snprintf(b->file, sizeof b->file, "%s", meta->path);
    rc = vix__g2p_for(r, meta->g2p_voice, name, &b->g2p, diag);
    if (rc < 0)
        goto out;
    rc = pho_encoder_create(meta->encoder_id, &b->enc, diag);
    if (rc < 0)
        goto out;
    rc = pho_encoder_state_load(b->enc, meta->encoder_state, meta->encoder_state_len, diag);
    if (rc < 0)
        goto out;
    char path[2048];
    rc = vix_index_file_path(r->db_path, meta->path, path, sizeof path);
    if (rc < 0) {
        rc = erd_fail(diag, rc, "index path of \"%s\" too long", name);
        goto out;
    }
    rc = vix_index_read(path, &b->index, diag);
    if (rc < 0)
        goto out;
    if (r->ivf_search[0] && vix_index_is_erd_ivf(b->index)) {
        erd_diag pd = {0};
        if ((rc = vix_index_set_params(b->index, r->ivf_search, &pd)) < 0) {
            rc = erd_fail(diag, rc, "catalog \"%s\": ivf_search: %s", name, pd.msg);
            goto out;
        }
    }
    if (vix_index_dim(b->index) != pho_encoder_dim(b->enc) ||
        vix_index_count(b->index) != (size_t)meta->vector_count) {
        rc = erd_fail(diag, ERD_EMISMATCH,
                      "catalog \"%s\": index %s holds %zu vectors of dimension %zu, metadata "
                      "says %lld of %zu: rebuild it",
                      name, meta->path, vix_index_count(b->index), vix_index_dim(b->index),
                      (long long)meta->vector_count, pho_encoder_dim(b->enc));
        goto out;
    }
    b->calibrated = r->calib && r->calib_rerank_ok &&
                    strcmp(pho_encoder_id(b->enc), r->calib->encoder_id) == 0;
    char table[2100];
    if (vix_index_table_path(path, table, sizeof table) < 0 ||
        vix__table_map(table, path, meta->catalog_generation, r->rerank != NULL, &b->set, NULL) <
            0)
        rc = vix__set_load(store, catalog_id, b->g2p, r->rerank != NULL, &b->set, diag);
    if (rc < 0)
        goto out;
    *ret = b; /* the caller owns the one reference */
    b = NULL;
out:
    vix__base_unref(b);
    return rc;
}

const vix__catalog *vix__view_find(const vix_view *v, const char *name)
{
    for (size_t i = 0; i < v->n_catalogs; i++)
        if (strcmp(v->catalogs[i].name, name) == 0)
            return &v->catalogs[i];
    return NULL;
}

void vix__keep(vix_view *nv, const vix__catalog *c)
{
    atomic_fetch_add(&c->base->refs, 1);
    if (c->delta)
        atomic_fetch_add(&c->delta->refs, 1);
    nv->catalogs[nv->n_catalogs++] = *c;
}
