/* The delta of a catalog: entities written since its base was built, their
 * vectors in a small flat index, and the base rowids they mask. */
#include "index/vix_resolve_internal.h"

/* One phrase encoded unless the entity has its text said the same way
 * already: the build's rule (vix__add_phrase), a text's second
 * pronunciation being another phrase. */
static int vix__vec_phrase(vix__vecs *vv, const vix_phrase *phrase, int derived, int second)
{
    for (size_t i = 0; i < vv->n; i++) {
        if (vv->second[i] == second && strcmp(vv->texts[i], phrase->text) == 0) {
            vv->derived[i] &= (unsigned char)derived;
            return 0;
        }
    }
    size_t dim = pho_encoder_dim(vv->enc);
    if (vv->n == vv->cap) {
        size_t ncap = vv->cap ? vv->cap * 2 : 8;
        void *t = realloc(vv->texts, ncap * sizeof *vv->texts);
        if (t)
            vv->texts = t;
        void *d = realloc(vv->derived, ncap);
        if (d)
            vv->derived = d;
        void *s = realloc(vv->second, ncap);
        if (s)
            vv->second = s;
        void *v = realloc(vv->vecs, ncap * dim * sizeof *vv->vecs);
        if (v)
            vv->vecs = v;
        if (!t || !d || !s || !v) {
            vv->rc = erd_fail(vv->diag, ERD_ENOMEM, "out of memory encoding an entity");
            return 1;
        }
        vv->cap = ncap;
    }
    pho_phrase ph = {.text = phrase->text, .tokens = phrase->tokens,
                     .n_tokens = phrase->n_tokens};
    int rc = pho_encoder_encode(vv->enc, &ph, vv->vecs + vv->n * dim);
    if (rc < 0) {
        vv->rc = erd_fail(vv->diag, rc, "encoding \"%.100s\" failed", phrase->text);
        return 1;
    }
    snprintf(vv->texts[vv->n], PHO_TEXT_MAX, "%s", phrase->text);
    vv->second[vv->n] = (unsigned char)second;
    vv->derived[vv->n++] = (unsigned char)derived;
    return 0;
}

static int vix__vec_variant(void *user, const char *variant, size_t len, int derived)
{
    vix__vecs *vv = user;
    int rc = vix_phrase_prepare(vv->g2p, NULL, variant, len, vv->scratch, vv->diag);
    if (rc == ERD_EEMPTY)
        return 0;
    if (rc < 0) {
        vv->rc = rc;
        return 1;
    }
    if (vix__vec_phrase(vv, vv->scratch, derived, 0))
        return 1;
    if (derived)
        return 0; /* the build's rule: no second pronunciation for a short form */
    vix_phrase second;
    rc = vix_phrase_second(vv->g2p, vv->scratch, &second, vv->diag);
    if (rc == ERD_ENOTFOUND)
        return 0;
    if (rc < 0) {
        vv->rc = rc;
        return 1;
    }
    return vix__vec_phrase(vv, &second, derived, 1);
}

static int vix__dent_make(vix_resolver *r, const vix__base *base, const vix_entity *e,
                          vix_phrase *scratch, vix__dent **ret, erd_diag *diag)
{
    vix__dent *d = calloc(1, sizeof *d);
    vix__vecs vv = {.enc = base->enc, .g2p = base->g2p, .scratch = scratch, .diag = diag};
    int rc = ERD_OK;
    if (!d)
        return erd_fail(diag, ERD_ENOMEM, "out of memory");
    atomic_init(&d->refs, 1);
    vix__load ld = {.set = &d->set, .g2p = base->g2p, .scratch = r->rerank ? scratch : NULL,
                    .diag = diag};
    if (vix__load_entity(&ld, e)) {
        rc = ld.rc < 0 ? ld.rc : erd_fail(diag, ERD_ENOMEM, "out of memory");
        goto out;
    }
    vix__set_finish(&d->set);
    if (vix_entity_variants(e, vix__vec_variant, &vv)) {
        rc = vv.rc;
        goto out;
    }
    size_t dim = pho_encoder_dim(base->enc);
    vix__fit((void **)&vv.vecs, &vv.cap, vv.n, dim * sizeof *vv.vecs);
    for (size_t i = 0; i < vv.n; i++)
        if (vv.derived[i])
            for (size_t k = 0; k < dim; k++)
                vv.vecs[i * dim + k] *= VIX_DERIVED_SCALE;
    d->vecs = vv.vecs; /* moves to the entry */
    d->n_vecs = vv.n;
    vv.vecs = NULL;
    *ret = d;
    d = NULL;
out:
    free(vv.texts);
    free(vv.derived);
    free(vv.second);
    free(vv.vecs);
    vix__dent_unref(d);
    return rc;
}

static int vix__change_deleted(void *user, int64_t rowid)
{
    vix__changes *ch = user;
    if (vix__grow((void **)&ch->gone, &ch->cap_gone, ch->n_gone + 1, sizeof *ch->gone) < 0)
        return ch->rc = erd_fail(ch->diag, ERD_ENOMEM, "out of memory");
    ch->gone[ch->n_gone++] = rowid;
    return 0;
}

static int vix__change_upserted(void *user, const vix_entity *e)
{
    vix__changes *ch = user;
    vix__dent *d = NULL;
    int rc = vix__change_deleted(user, e->rowid);
    if (rc)
        return rc;
    if (vix__grow((void **)&ch->fresh, &ch->cap_fresh, ch->n_fresh + 1, sizeof *ch->fresh) < 0)
        return ch->rc = erd_fail(ch->diag, ERD_ENOMEM, "out of memory");
    rc = vix__dent_make(ch->r, ch->base, e, ch->scratch, &d, ch->diag);
    if (rc < 0)
        return ch->rc = rc;
    ch->fresh[ch->n_fresh++] = d;
    return 0;
}

static int vix__cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int vix__cmp_dent(const void *a, const void *b)
{
    return vix__cmp_rowid(&(*(vix__dent *const *)a)->set.entities[0],
                          &(*(vix__dent *const *)b)->set.entities[0]);
}

static bool vix__i64_has(const int64_t *v, size_t n, int64_t x)
{
    return n && bsearch(&x, v, n, sizeof *v, vix__cmp_i64) != NULL;
}

/* The delta after prev (NULL: none yet) with the changes committed after
 * it up to generation `now` applied: entries written again or deleted are
 * dropped, fresh ones added, and every base rowid they touch masked. */
/* d's entities: prev's still there, then the fresh ones (their references
 * move to d), by rowid. */
static void vix__delta_entities(vix__delta *d, const vix__delta *prev, vix__changes *ch)
{
    size_t n_prev = prev ? prev->n_ents : 0;
    for (size_t i = 0; i < n_prev; i++) {
        vix__dent *e = prev->ents[i];
        if (vix__i64_has(ch->gone, ch->n_gone, e->set.entities[0].rowid))
            continue;
        atomic_fetch_add(&e->refs, 1);
        d->ents[d->n_ents++] = e;
    }
    for (size_t i = 0; i < ch->n_fresh; i++) {
        d->ents[d->n_ents++] = ch->fresh[i];
        ch->fresh[i] = NULL;
    }
    qsort(d->ents, d->n_ents, sizeof *d->ents, vix__cmp_dent);
}

/* d's masked rowids: prev's, and those gone since.  Only rowids the base
 * holds are masked, so the count says how many base results a search may
 * lose. */
static void vix__delta_mask(vix__delta *d, const vix__delta *prev, const vix__base *base,
                            const vix__changes *ch)
{
    size_t n_prev_masked = prev ? prev->n_masked : 0;
    for (size_t i = 0; i < n_prev_masked; i++)
        d->masked[d->n_masked++] = prev->masked[i];
    for (size_t i = 0; i < ch->n_gone; i++)
        if (vix__set_find(&base->set, ch->gone[i]) &&
            !vix__i64_has(prev ? prev->masked : NULL, n_prev_masked, ch->gone[i]) &&
            (d->n_masked == n_prev_masked || d->masked[d->n_masked - 1] != ch->gone[i]))
            d->masked[d->n_masked++] = ch->gone[i];
    qsort(d->masked, d->n_masked, sizeof *d->masked, vix__cmp_i64);
}

/* A flat index of every vector of d's entities (none when they have none),
 * and what d holds in memory: the index keeps its floats, ids and, once
 * searched, a bfloat16 copy for the scan. */
static int vix__delta_index(vix__delta *d, size_t dim, erd_diag *diag)
{
    size_t n_vecs = 0;
    for (size_t i = 0; i < d->n_ents; i++)
        n_vecs += d->ents[i]->n_vecs;
    int rc = ERD_OK;
    if (n_vecs) {
        float *all = malloc(n_vecs * dim * sizeof *all);
        int64_t *ids = malloc(n_vecs * sizeof *ids);
        if (!all || !ids)
            rc = erd_fail(diag, ERD_ENOMEM, "out of memory");
        for (size_t i = 0, o = 0; rc == ERD_OK && i < d->n_ents; i++) {
            const vix__dent *e = d->ents[i];
            memcpy(all + o * dim, e->vecs, e->n_vecs * dim * sizeof *all);
            for (size_t k = 0; k < e->n_vecs; k++)
                ids[o + k] = e->set.entities[0].rowid;
            o += e->n_vecs;
        }
        if (rc == ERD_OK)
            rc = vix_index_create("Flat", dim, &d->index, diag);
        if (rc == ERD_OK)
            rc = vix_index_add(d->index, n_vecs, all, ids, diag);
        free(all);
        free(ids);
        if (rc < 0)
            return rc;
    }
    d->bytes = sizeof *d + (d->n_ents + d->n_masked) * sizeof(int64_t) +
               n_vecs * (dim * (sizeof(float) + sizeof(uint16_t)) + sizeof(int64_t));
    for (size_t i = 0; i < d->n_ents; i++)
        d->bytes += sizeof *d->ents[i] + vix__set_bytes(&d->ents[i]->set) +
                    d->ents[i]->n_vecs * dim * sizeof(float);
    return ERD_OK;
}

int vix__delta_next(vix_resolver *r, vix_store *store, int64_t catalog_id,
                    const vix__base *base, vix__delta *prev, int64_t now,
                    vix__delta **ret, erd_diag *diag)
{
    int64_t since = prev ? prev->generation : base->generation;
    vix__changes ch = {.r = r, .base = base, .diag = diag};
    vix__delta *d = NULL;
    int rc;
    if (now <= since) {
        if (prev)
            atomic_fetch_add(&prev->refs, 1);
        *ret = prev; /* a new reference, or NULL */
        return ERD_OK;
    }
    ch.scratch = malloc(sizeof *ch.scratch);
    d = calloc(1, sizeof *d);
    if (!ch.scratch || !d) {
        rc = erd_fail(diag, ERD_ENOMEM, "out of memory");
        goto out;
    }
    atomic_init(&d->refs, 1);
    d->generation = now;
    rc = vix_store_changes(store, catalog_id, since, vix__change_upserted, vix__change_deleted, &ch,
                           diag);
    if (rc != 0) {
        rc = ch.rc < 0 ? ch.rc : rc;
        goto out;
    }
    qsort(ch.gone, ch.n_gone, sizeof *ch.gone, vix__cmp_i64);
    size_t n_prev = prev ? prev->n_ents : 0, n_prev_masked = prev ? prev->n_masked : 0;
    d->ents = malloc((n_prev + ch.n_fresh + 1) * sizeof *d->ents);
    d->masked = malloc((n_prev_masked + ch.n_gone + 1) * sizeof *d->masked);
    if (!d->ents || !d->masked) {
        rc = erd_fail(diag, ERD_ENOMEM, "out of memory");
        goto out;
    }
    vix__delta_entities(d, prev, &ch);
    vix__delta_mask(d, prev, base, &ch);
    rc = vix__delta_index(d, pho_encoder_dim(base->enc), diag);
    if (rc < 0)
        goto out;
    *ret = d;
    d = NULL;
out:
    for (size_t i = 0; i < ch.n_fresh; i++)
        vix__dent_unref(ch.fresh[i]);
    free(ch.fresh);
    free(ch.gone);
    free(ch.scratch);
    vix__delta_unref(d);
    return rc;
}

/* Whether the changes since prev (or base) fit the delta memory budget; if
 * not, *ret_held: the delta stays as it is until a rebuild folds them in.
 * Only when rebuilds run (delta_max), else the budget could never clear. */
int vix__delta_fits(vix_resolver *r, vix_store *store, const vix__row *row,
                    const vix__base *base, const vix__delta *prev, bool *ret_held,
                    erd_diag *diag)
{
    int64_t since = prev ? prev->generation : base->generation, pending = 0;
    *ret_held = false;
    if (!r->delta_max_bytes || !r->delta_max || row->generation <= since)
        return ERD_OK;
    int rc = vix_store_pending(store, row->id, since, &pending, diag);
    if (rc < 0)
        return rc;
    size_t per = prev && prev->n_ents ? prev->bytes / prev->n_ents : VIX__DELTA_ENTITY_GUESS;
    size_t have = prev ? prev->bytes : 0;
    *ret_held = have + (size_t)pending * per > r->delta_max_bytes;
    return ERD_OK;
}

/* Whether rowid is masked out of the base by the delta. */
bool vix__masked(const vix__delta *d, int64_t rowid)
{
    return d && vix__i64_has(d->masked, d->n_masked, rowid);
}

const vix__entity *vix__delta_find(const vix__delta *d, int64_t rowid)
{
    size_t lo = 0, hi = d ? d->n_ents : 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (d->ents[mid]->set.entities[0].rowid < rowid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return d && lo < d->n_ents && d->ents[lo]->set.entities[0].rowid == rowid
               ? &d->ents[lo]->set.entities[0]
               : NULL;
}
