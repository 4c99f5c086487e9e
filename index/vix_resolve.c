/* The resolver: open and close, its settings and counters, and the texts
 * behind an entity's phrases.  The design is told in vix_resolve_internal.h;
 * views are in vix_view.c, deltas in vix_delta.c, sync and rebuild jobs in
 * vix_jobs.c, the resolve path in vix_query.c. */
#include "index/vix_ivf.h"
#include "index/vix_resolve_internal.h"

/* One phrase of the walk, counted as the load counts it (deduplicated by
 * its phones); 1 once the wanted one is found or the walk must stop. */
static int vix__text_phrase(void *user, const vix_phrase *ph, int derived, int second)
{
    vix__texts *t = user;
    const char *variant = t->variant;
    const size_t len = t->variant_len;
    uint8_t packed[VIX_RR_TOKENS_MAX];
    size_t n = vix_rerank_pack(ph->tokens, ph->n_tokens, packed, sizeof packed);
    for (size_t i = 0; i < t->n_seen; i++)
        if (t->seen_n[i] == n && memcmp(t->seen[i], packed, n) == 0)
            return 0;
    if (t->n_seen == VIX__PHRASES_SEEN_MAX)
        return 1;
    if (t->n_seen == t->want) {
        static const char *const kinds[3][2] = {{"name", "alias"},
                                                 {"name short form", "alias short form"},
                                                 {"name, CMU pronunciation",
                                                  "alias, CMU pronunciation"}};
        snprintf(t->buf, t->cap, "%.*s", (int)len, variant);
        *t->ret_kind = kinds[second ? 2 : derived ? 1 : 0][t->alias != 0];
        t->found = 1;
        return 1;
    }
    memcpy(t->seen[t->n_seen], packed, n);
    t->seen_n[t->n_seen++] = n;
    return 0;
}

static int vix__text_variant(void *user, const char *variant, size_t len, int derived)
{
    vix__texts *t = user;
    /* as vix__load_variant: the phoneme cache, then espeak-ng */
    int rc = vix_phrase_prepare(t->g2p, t->r->store, variant, len, t->scratch, NULL);
    if (rc < 0 && rc != ERD_EEMPTY)
        rc = vix_phrase_prepare(t->g2p, NULL, variant, len, t->scratch, NULL);
    if (rc < 0)
        return 0; /* the load skipped it too */
    t->variant = variant;
    t->variant_len = len;
    vix_phrase second;
    /* a failing second pronunciation is skipped here, as before: the walk
     * goes on to the next variant */
    return vix_phrase_pronunciations(t->g2p, t->scratch, derived, &second, vix__text_phrase, t,
                                     NULL) > 0;
}

static int vix__text_walk(void *user, const char *text)
{
    vix__texts *t = user;
    int rc = vix_phrase_variants(text, vix__text_variant, t);
    t->alias = 1; /* the name comes first, aliases after */
    return rc;
}

static int vix__text_entity(void *user, const vix_entity *e)
{
    return vix_entity_texts(e, vix__text_walk, user);
}

int vix_resolver_analyze(vix_resolver *r, const char *text, size_t len, vix_phrase *ret,
                         char *ret_ipa, size_t ipa_cap, erd_diag *diag)
{
    return vix_phrase_analyze(r->g2p, text, len, ret, ret_ipa, ipa_cap, diag);
}

/* The G2P catalog's names were phonemised with (its voice says whether
 * they have a second pronunciation), the resolver's without one; valid
 * while the view that holds cat is. */
static pho_g2p *vix__catalog_g2p(const vix_resolver *r, const vix__catalog *cat)
{
    return cat && cat->base->g2p ? cat->base->g2p : r->g2p;
}

int vix_resolver_analyze_second(vix_resolver *r, const char *catalog, const vix_phrase *first,
                                vix_phrase *ret, char *ret_ipa, size_t ipa_cap, erd_diag *diag)
{
    /* names have a second pronunciation when their catalog's voice gives
     * one; the view keeps that G2P alive while it is used */
    vix_view *view = vix_resolver_acquire(r);
    const vix__catalog *cat = catalog ? vix__view_find(view, catalog) : NULL;
    int rc = vix_phrase_second_analyze(vix__catalog_g2p(r, cat), first, ret, ret_ipa, ipa_cap,
                                       diag);
    vix_view_release(view);
    return rc;
}

int vix_resolver_phrase_text(vix_resolver *r, const char *catalog, const char *ext_id,
                             size_t phrase, char *buf, size_t cap, const char **ret_kind,
                             erd_diag *diag)
{
    vix__texts *t = calloc(1, sizeof *t);
    vix_phrase *scratch = malloc(sizeof *scratch);
    int64_t catalog_id;
    int rc = ERD_OK;
    if (!t || !scratch) {
        rc = erd_fail(diag, ERD_ENOMEM, "out of memory");
        goto out;
    }
    /* the catalog's own G2P: its voice says whether names have a second
     * pronunciation; the view keeps it alive until the walk is done */
    vix_view *view = vix_resolver_acquire(r);
    const vix__catalog *cat = vix__view_find(view, catalog);
    *t = (vix__texts){.r = r, .g2p = vix__catalog_g2p(r, cat),
                      .scratch = scratch, .want = phrase, .buf = buf, .cap = cap,
                      .ret_kind = ret_kind};
    pthread_mutex_lock(&r->sync_mu); /* the resolver's store is used under it */
    rc = vix_store_catalog_find(r->store, catalog, &catalog_id, diag);
    if (rc == ERD_OK)
        rc = vix_store_entity_get(r->store, catalog_id, ext_id, vix__text_entity, t, diag);
    pthread_mutex_unlock(&r->sync_mu);
    vix_view_release(view);
    if (rc >= 0 && !t->found)
        rc = erd_fail(diag, ERD_ENOTFOUND, "entity %s has no phrase %zu (changed since?)", ext_id,
                      phrase);
    else if (rc > 0)
        rc = ERD_OK;
out:
    free(t);
    free(scratch);
    return rc;
}

static char *vix__dup(const char *s, const char *def)
{
    return strdup(s && *s ? s : def);
}

/* A file the rerank spec names (ranker=, command=), found beside the
 * channel file unless its name is absolute. */
static int vix__beside_channel(const char *channel_path, const char *name, char *path,
                               size_t cap, erd_diag *diag)
{
    const char *slash = strrchr(channel_path, '/');
    int dir = name[0] == '/' || !slash ? 0 : (int)(slash - channel_path + 1);
    if ((size_t)snprintf(path, cap, "%.*s%s", dir, channel_path, name) >= cap)
        return erd_fail(diag, ERD_ETOOLONG, "%s: path too long", name);
    return ERD_OK;
}

/* A model file fitted on the rerank's results must have been fitted under
 * the rerank in force; the rerank id then names it too ("what=checksum"),
 * since a calibration is fitted on what it changes. */
static int vix__fitted_under(vix_resolver *r, const char *path, const char *fitted_id,
                             const char *what, uint64_t checksum, erd_diag *diag)
{
    if (strcmp(fitted_id, r->rerank_id) != 0)
        return erd_fail(diag, ERD_EMISMATCH, "%s was fitted under rerank %.120s, not %.120s",
                        path, fitted_id, r->rerank_id);
    size_t len = strlen(r->rerank_id);
    snprintf(r->rerank_id + len, sizeof r->rerank_id - len, ",%s=fnv1a64:%016llx", what,
             (unsigned long long)checksum);
    return ERD_OK;
}

/* The learned ranker named by the rerank spec; it must have been fitted
 * under the rerank configuration in force, whose id then names it too (a
 * calibration is fitted on its scores). */
static int vix__ranker_open(vix_resolver *r, const char *channel_path, const char *name,
                            erd_diag *diag)
{
    char path[1024];
    if (vix__beside_channel(channel_path, name, path, sizeof path, diag) < 0)
        return ERD_ETOOLONG;
    if (!(r->ranker = malloc(sizeof *r->ranker)))
        return erd_fail(diag, ERD_ENOMEM, "out of memory");
    int rc = vix_ranker_load(path, r->ranker, diag);
    if (rc < 0)
        return rc;
    return vix__fitted_under(r, path, r->ranker->rerank_id, "ranker", r->ranker->checksum, diag);
}

/* The order of the top results named by the rerank spec: fitted on the
 * open-set features under the rerank in force (command table and ranker
 * included), whose id then names it too, since a calibration is fitted on
 * the results in its order. */
static int vix__order_open(vix_resolver *r, const char *channel_path, const char *name,
                           erd_diag *diag)
{
    char path[1024];
    if (vix__beside_channel(channel_path, name, path, sizeof path, diag) < 0)
        return ERD_ETOOLONG;
    if (!(r->order = malloc(sizeof *r->order)))
        return erd_fail(diag, ERD_ENOMEM, "out of memory");
    int rc = vix_order_load(path, r->order, diag);
    if (rc < 0)
        return rc;
    return vix__fitted_under(r, path, r->order->rerank_id, "order", r->order->checksum, diag);
}

/* The command table named by the rerank spec, found like the ranker; the
 * rerank id names its content, as a calibration's features depend on it. */
static int vix__command_open(vix_resolver *r, const char *channel_path, const char *name,
                             erd_diag *diag)
{
    char path[1024];
    if (vix__beside_channel(channel_path, name, path, sizeof path, diag) < 0)
        return ERD_ETOOLONG;
    int rc = vix_command_load(path, &r->command, diag);
    if (rc < 0)
        return rc;
    size_t len = strlen(r->rerank_id);
    snprintf(r->rerank_id + len, sizeof r->rerank_id - len, ",command=fnv1a64:%016llx",
             (unsigned long long)vix_command_checksum(r->command));
    return ERD_OK;
}

void vix_resolver_set_rank_observer(vix_resolver *r, vix_rank_observer fn, void *ctx)
{
    r->rank_observer = fn;
    r->rank_observer_ctx = ctx;
}

/* The rerank of spec (its channel, command table and ranker), and the id
 * calibrations and rankers record it by ("off" without one). */
static int vix__rerank_open(vix_resolver *r, const char *spec, erd_diag *diag)
{
    char path[1024];
    vix_rerank_opts ro;
    int enabled;
    pho_channel *ch = NULL;
    int rc = vix_rerank_spec_parse(spec, path, sizeof path, &ro, &enabled, diag);
    snprintf(r->rerank_id, sizeof r->rerank_id, "off");
    if (rc < 0 || !enabled)
        return rc;
    rc = pho_channel_load(path, &ch, diag);
    if (rc == ERD_OK)
        rc = vix_rerank_create(ch, &ro, &r->rerank, diag);
    /* The channel's content, not its path, decides the scores. */
    if (rc == ERD_OK)
        snprintf(r->rerank_id, sizeof r->rerank_id,
                 "channel=fnv1a64:%016llx,weight=%.6g,candidates=%zu,mode=%s,skip=%.6g,"
                 "temperature=%.6g",
                 (unsigned long long)pho_channel_checksum(ch), ro.weight, ro.candidates,
                 ro.mode == VIX_RR_LOCAL ? "local" : "global", ro.skip, ro.temperature);
    pho_channel_destroy(ch);
    /* the command table first: a ranker records the rerank id it was
     * fitted under, command table and all */
    if (rc == ERD_OK && ro.command[0])
        rc = vix__command_open(r, path, ro.command, diag);
    if (rc == ERD_OK && ro.ranker[0])
        rc = vix__ranker_open(r, path, ro.ranker, diag);
    if (rc == ERD_OK && ro.order[0])
        rc = vix__order_open(r, path, ro.order, diag);
    return rc;
}

/* The calibration file at path ("off" or NULL: none); whether it was fitted
 * under this rerank. */
static int vix__calib_open(vix_resolver *r, const char *path, erd_diag *diag)
{
    if (!path || strcmp(path, "off") == 0)
        return ERD_OK;
    r->calib = malloc(sizeof *r->calib);
    if (!r->calib)
        return erd_fail(diag, ERD_ENOMEM, "out of memory");
    int rc = vix_calib_load(path, r->calib, diag);
    if (rc < 0)
        return rc;
    r->calib_rerank_ok = strcmp(r->calib->rerank_id, r->rerank_id) == 0;
    return ERD_OK;
}

/* The store, read-only; an older schema is upgraded in place by one
 * read-write open first. */
static int vix__store_open(vix_resolver *r, erd_diag *diag)
{
    int rc = vix_store_open(r->db_path, VIX_STORE_READONLY, &r->store, diag);
    if (rc == ERD_EMISMATCH) {
        vix_store *rw = NULL;
        if (vix_store_open(r->db_path, 0, &rw, NULL) == ERD_OK) {
            vix_store_close(rw);
            rc = vix_store_open(r->db_path, VIX_STORE_READONLY, &r->store, diag);
        }
    }
    return rc;
}

int vix_resolver_open(const vix_resolver_opts *opts, vix_resolver **ret, erd_diag *diag)
{
    vix_resolver *r = calloc(1, sizeof *r);
    int rc;
    if (!r)
        return erd_fail(diag, ERD_ENOMEM, "out of memory");
    pthread_mutex_init(&r->view_mu, NULL);
    pthread_mutex_init(&r->sync_mu, NULL);
    pthread_mutex_init(&r->intern_mu, NULL);
    pthread_mutex_init(&r->job_mu, NULL);
    r->view = calloc(1, sizeof *r->view);
    r->db_path = vix__dup(opts->db_path, "");
    r->build_encoder = vix__dup(opts->build_encoder, "baseline");
    r->build_factory = vix__dup(opts->build_factory, "Flat");
    r->g2p_voice = vix__dup(opts->g2p_voice, "en-us+cmu");
    r->ivf_search = vix__dup(opts->ivf_search, "");
    if (!r->view || !r->db_path || !r->build_encoder || !r->build_factory || !r->g2p_voice ||
        !r->ivf_search) {
        rc = erd_fail(diag, ERD_ENOMEM, "out of memory");
        goto out;
    }
    erd_diag pd = {0};
    if (r->ivf_search[0] && (rc = vix_ivf_params_check(r->ivf_search, &pd)) < 0) {
        rc = erd_fail(diag, rc, "ivf_search: %s", pd.msg);
        goto out;
    }
    atomic_init(&r->view->refs, 1);
    atomic_init(&r->cancel, 0);
    r->delta_max = opts->delta_max;
    r->delta_max_bytes = opts->delta_max_bytes;
    r->candidates = opts->candidates ? opts->candidates : 64;
    if (r->candidates > VIX_CANDIDATES_MAX)
        r->candidates = VIX_CANDIDATES_MAX;

    r->g2p_cache_entries = opts->g2p_cache_entries;
    rc = pho_g2p_create(r->g2p_voice, opts->g2p_cache_entries, &r->g2p, diag);
    if (rc < 0)
        goto out;
    if ((rc = vix__rerank_open(r, opts->rerank, diag)) < 0 ||
        (rc = vix__calib_open(r, opts->calibration, diag)) < 0 ||
        (rc = vix__store_open(r, diag)) < 0)
        goto out;
    /* A catalog whose index is missing or damaged is left out (and
     * reported by vix_resolver_unavailable); the others are served. */
    bool catalog_only = false;
    rc = vix__sync_ex(r, NULL, NULL, &catalog_only, diag);
    if (rc < 0 && !catalog_only)
        goto out;
    rc = ERD_OK;
    *ret = r;
    r = NULL;
out:
    vix_resolver_close(r);
    return rc;
}

void vix_resolver_close(vix_resolver *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->job_mu);
    r->closing = true;
    atomic_store(&r->cancel, 1);
    bool join = r->job_joinable;
    r->job_joinable = false;
    pthread_mutex_unlock(&r->job_mu);
    /* a rebuild in progress stops at its next checkpoint (it uses
     * everything below); its catalog stays served from the old index
     * plus the delta at the next start */
    if (join)
        pthread_join(r->job_thread, NULL);
    if (r->view)
        vix_view_release(r->view);
    vix_store_close(r->store);
    pho_g2p_destroy(r->g2p);
    vix_rerank_destroy(r->rerank);
    free(r->ranker);
    free(r->order);
    vix_command_destroy(r->command);
    free(r->calib);
    free(r->jobs);
    while (r->voices) {
        vix__voice *next = r->voices->next;
        pho_g2p_destroy(r->voices->g2p);
        free(r->voices);
        r->voices = next;
    }
    while (r->interned) {
        vix__intern *next = r->interned->next;
        free(r->interned);
        r->interned = next;
    }
    free(r->db_path);
    free(r->build_encoder);
    free(r->build_factory);
    free(r->ivf_search);
    free(r->g2p_voice);
    pthread_mutex_destroy(&r->view_mu);
    pthread_mutex_destroy(&r->sync_mu);
    pthread_mutex_destroy(&r->intern_mu);
    pthread_mutex_destroy(&r->job_mu);
    free(r);
}

/* Catalog i of the current view, or NULL past the end. */
static const char *vix__catalog_field(vix_resolver *r, size_t i, int encoder)
{
    const char *out = NULL;
    vix_view *v = vix_resolver_acquire(r);
    if (i < v->n_catalogs)
        out = encoder ? vix__intern_str(r, pho_encoder_id(v->catalogs[i].base->enc))
                      : v->catalogs[i].name;
    vix_view_release(v);
    return out;
}

int vix_resolver_calibrated(const vix_resolver *rc_, size_t i, erd_diag *diag)
{
    vix_resolver *r = (vix_resolver *)rc_; /* acquiring a view counts a reference */
    vix_view *v = vix_resolver_acquire(r);
    int rc = ERD_OK;
    if (i >= v->n_catalogs)
        rc = erd_fail(diag, ERD_ENOCATALOG, "no catalog %zu", i);
    else if (!r->calib)
        rc = erd_fail(diag, ERD_ENOTFOUND, "calibration off: scores are uncalibrated");
    else if (!r->calib_rerank_ok) {
        /* the ids share a long head (the channel and its options); what
         * differs is mostly at the end (command, ranker, order) */
        const char *a = r->calib->rerank_id, *b = r->rerank_id;
        size_t same = 0;
        while (a[same] && a[same] == b[same])
            same++;
        while (same > 0 && a[same - 1] != ',')
            same--;
        rc = erd_fail(diag, ERD_EMISMATCH,
                      "calibration fitted with rerank %s%.90s; running %s%.90s: uncalibrated "
                      "scores",
                      same ? "..." : "", a + same, same ? "..." : "", b + same);
    }
    else if (!v->catalogs[i].base->calibrated)
        rc = erd_fail(diag, ERD_EMISMATCH,
                      "catalog \"%.40s\" built with encoder %.70s, calibration fitted on %.70s: "
                      "uncalibrated scores",
                      v->catalogs[i].name, pho_encoder_id(v->catalogs[i].base->enc),
                      r->calib->encoder_id);
    vix_view_release(v);
    return rc;
}

int vix_view_no_match_threshold(const vix_resolver *r, const vix_view *view, const char *catalog,
                                double *ret)
{
    const vix__catalog *cat = vix__view_find(view, catalog);
    if (!cat)
        return ERD_ENOCATALOG;
    if (!cat->base->calibrated)
        return ERD_ENOTFOUND;
    *ret = r->calib->no_match_threshold;
    return ERD_OK;
}

const char *vix_resolver_catalog_encoder(const vix_resolver *r, size_t i)
{
    return vix__catalog_field((vix_resolver *)r, i, 1);
}

void vix_resolver_rerank_id(const vix_resolver *r, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s", r->rerank_id);
}

size_t vix_resolver_catalog_count(const vix_resolver *r)
{
    vix_view *v = vix_resolver_acquire((vix_resolver *)r);
    size_t n = v->n_catalogs;
    vix_view_release(v);
    return n;
}

const char *vix_resolver_catalog_name(const vix_resolver *r, size_t i)
{
    return vix__catalog_field((vix_resolver *)r, i, 0);
}

void vix_resolver_g2p_stats(vix_resolver *r, uint64_t *ret_lookups, uint64_t *ret_hits)
{
    pho_g2p_stats st = {0};
    pho_g2p_get_stats(r->g2p, &st);
    *ret_lookups = st.lookups;
    *ret_hits = st.hits;
    pthread_mutex_lock(&r->intern_mu);
    for (vix__voice *v = r->voices; v; v = v->next) {
        pho_g2p_get_stats(v->g2p, &st);
        *ret_lookups += st.lookups;
        *ret_hits += st.hits;
    }
    pthread_mutex_unlock(&r->intern_mu);
}
