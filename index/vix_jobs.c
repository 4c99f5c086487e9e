/* Writers of views: sync (a new delta or base for each changed catalog) and
 * the background rebuild jobs, with the status they report. */
#include "index/vix_resolve_internal.h"

static int vix__collect_row(void *user, const vix_catalog_info *info)
{
    vix__rows *rows = user;
    if (vix__grow((void **)&rows->v, &rows->cap, rows->n + 1, sizeof *rows->v) < 0)
        return ERD_ENOMEM;
    vix__row *row = &rows->v[rows->n++];
    row->id = info->id;
    row->generation = info->generation;
    snprintf(row->name, sizeof row->name, "%s", info->name);
    return 0;
}

static bool vix__job_running_for(vix_resolver *r, const char *name)
{
    bool running = false;
    pthread_mutex_lock(&r->job_mu);
    for (size_t i = 0; i < r->n_jobs; i++)
        if (strcmp(r->jobs[i].name, name) == 0)
            running = r->jobs[i].st.state == VIX_REBUILD_RUNNING;
    pthread_mutex_unlock(&r->job_mu);
    return running;
}

static vix__job *vix__job_for(vix_resolver *r, const char *name);

/* Records (err < 0) or clears catalog's failed index load. */
static void vix__broken_note(vix_resolver *r, const char *name, const vix_index_meta *meta,
                             int err, const erd_diag *diag)
{
    pthread_mutex_lock(&r->job_mu);
    vix__job *j = NULL;
    for (size_t i = 0; i < r->n_jobs && !j; i++)
        if (strcmp(r->jobs[i].name, name) == 0)
            j = &r->jobs[i];
    if (!j && err < 0)
        j = vix__job_for(r, name);
    if (j) {
        j->broken = err < 0;
        if (err < 0) {
            j->broken_diag.code = err;
            snprintf(j->broken_diag.msg, sizeof j->broken_diag.msg, "%s",
                     diag && diag->msg[0] ? diag->msg : erd_strerror(err));
            snprintf(j->broken_file, sizeof j->broken_file, "%s", meta->path);
            j->broken_built_at = meta->built_at;
        }
    }
    pthread_mutex_unlock(&r->job_mu);
}

static bool vix__broken_same(vix_resolver *r, const char *name, const vix_index_meta *meta)
{
    bool same = false;
    pthread_mutex_lock(&r->job_mu);
    for (size_t i = 0; i < r->n_jobs; i++)
        if (strcmp(r->jobs[i].name, name) == 0)
            same = r->jobs[i].broken && strcmp(r->jobs[i].broken_file, meta->path) == 0 &&
                   r->jobs[i].broken_built_at == meta->built_at;
    pthread_mutex_unlock(&r->job_mu);
    return same;
}

void vix_resolver_bulk(vix_resolver *r, const char *catalog, bool begin)
{
    if (!r || !catalog)
        return;
    pthread_mutex_lock(&r->job_mu);
    vix__job *j = vix__job_for(r, catalog);
    if (j)
        j->bulk += begin ? 1 : (j->bulk > 0 ? -1 : 0);
    pthread_mutex_unlock(&r->job_mu);
}

static bool vix__bulk_streaming(vix_resolver *r, const char *name)
{
    bool on = false;
    pthread_mutex_lock(&r->job_mu);
    for (size_t i = 0; i < r->n_jobs; i++)
        if (strcmp(r->jobs[i].name, name) == 0)
            on = r->jobs[i].bulk > 0;
    pthread_mutex_unlock(&r->job_mu);
    return on;
}

int vix_resolver_unavailable(vix_resolver *r, size_t i, char *name, size_t name_cap,
                             erd_diag *ret)
{
    int rc = ERD_ENOTFOUND;
    pthread_mutex_lock(&r->job_mu);
    for (size_t k = 0, seen = 0; k < r->n_jobs; k++) {
        if (!r->jobs[k].broken || seen++ != i)
            continue;
        snprintf(name, name_cap, "%s", r->jobs[k].name);
        if (ret)
            *ret = r->jobs[k].broken_diag;
        rc = ERD_OK;
        break;
    }
    pthread_mutex_unlock(&r->job_mu);
    return rc;
}

/* One catalog of the new view.  A base is (re)loaded when the metadata
 * names another index than the one served, unless a rebuild of ours is
 * about to install it (preloaded carries it when it is). */
static int vix__sync_one(vix_resolver *r, const vix__row *row, const vix__catalog *cur,
                         vix__base *preloaded, vix_view *nv, erd_diag *diag)
{
    vix_index_meta meta;
    vix__base *base = NULL;
    vix__delta *prev = NULL, *delta = NULL;
    int rc = vix_store_meta_get(r->store, row->id, &meta, diag);
    if (rc == ERD_ENOINDEX)
        return ERD_OK; /* imported but never built: not served */
    if (rc < 0) {
        if (cur)
            vix__keep(nv, cur);
        return rc;
    }
    bool same = cur && strcmp(cur->base->file, meta.path) == 0 &&
                cur->base->built_at == meta.built_at;
    if (!cur && !(preloaded && strcmp(preloaded->file, meta.path) == 0) &&
        vix__broken_same(r, row->name, &meta)) {
        rc = ERD_OK; /* reported already; not loaded again every sync */
        goto out;
    }
    if (preloaded && strcmp(preloaded->file, meta.path) == 0) {
        base = preloaded;
        atomic_fetch_add(&base->refs, 1);
    } else if (same || (cur && vix__job_running_for(r, row->name))) {
        base = cur->base;
        atomic_fetch_add(&base->refs, 1);
        prev = cur->delta;
    } else {
        rc = vix__base_load(r, r->store, row->id, row->name, &meta, &base, diag);
        if (rc < 0) {
            if (cur)
                vix__keep(nv, cur);
            else
                vix__broken_note(r, row->name, &meta, rc, diag);
            goto out;
        }
    }
    bool held = false;
    rc = vix__delta_fits(r, r->store, row, base, prev, &held, diag);
    if (rc == ERD_OK && held) {
        delta = prev;
        if (delta)
            atomic_fetch_add(&delta->refs, 1);
    } else if (rc == ERD_OK) {
        rc = vix__delta_next(r, r->store, row->id, base, prev, row->generation, &delta, diag);
    }
    if (rc < 0) {
        /* stale but whole: what was served goes on being served */
        if (cur)
            vix__keep(nv, cur);
        vix__base_unref(base);
        goto out;
    }
    const char *name = vix__intern_str(r, row->name);
    if (!name) {
        vix__base_unref(base);
        vix__delta_unref(delta);
        rc = erd_fail(diag, ERD_ENOMEM, "out of memory");
        if (cur)
            vix__keep(nv, cur);
        goto out;
    }
    nv->catalogs[nv->n_catalogs++] =
        (vix__catalog){.name = name, .base = base, .delta = delta, .held = held};
    vix__broken_note(r, row->name, NULL, ERD_OK, NULL);
out:
    vix_index_meta_clear(&meta);
    return rc;
}

int vix__sync_ex(vix_resolver *r, const char *only, vix__base *preloaded,
                 bool *ret_catalog_only, erd_diag *diag)
{
    vix__rows rows = {0};
    vix_view *nv = NULL, *cur = NULL;
    int rc, first_err = ERD_OK;
    erd_diag first = {0};

    pthread_mutex_lock(&r->sync_mu);
    rc = vix_store_begin_read(r->store, diag);
    if (rc < 0)
        goto out;
    rc = vix_store_catalog_foreach(r->store, 0, vix__collect_row, &rows, diag);
    if (rc != 0) {
        rc = rc > 0 ? erd_fail(diag, ERD_ENOMEM, "out of memory") : rc;
        goto out;
    }
    cur = vix_resolver_acquire(r);
    nv = calloc(1, sizeof *nv);
    if (nv)
        nv->catalogs = calloc(rows.n + cur->n_catalogs + 1, sizeof *nv->catalogs);
    if (!nv || !nv->catalogs) {
        rc = erd_fail(diag, ERD_ENOMEM, "out of memory");
        goto out;
    }
    atomic_init(&nv->refs, 1);
    if (only)
        for (size_t i = 0; i < cur->n_catalogs; i++)
            if (strcmp(cur->catalogs[i].name, only) != 0)
                vix__keep(nv, &cur->catalogs[i]);
    for (size_t i = 0; i < rows.n; i++) {
        if (only && strcmp(rows.v[i].name, only) != 0)
            continue;
        erd_diag d = {0};
        int err = vix__sync_one(r, &rows.v[i], vix__view_find(cur, rows.v[i].name), preloaded, nv,
                                &d);
        /* one catalog failing does not hold the others back */
        if (err < 0 && first_err == ERD_OK) {
            first_err = err;
            first = d;
        }
    }
    vix__publish(r, nv); /* the resolver takes nv's reference */
    nv = NULL;
    rc = first_err;
    if (ret_catalog_only)
        *ret_catalog_only = true;
    if (rc < 0 && diag)
        *diag = first;
out:
    vix_store_rollback(r->store);
    if (nv) {
        free(nv->catalogs);
        free(nv);
    }
    vix_view_release(cur);
    free(rows.v);
    pthread_mutex_unlock(&r->sync_mu);
    return rc;
}

static int vix__sync(vix_resolver *r, const char *only, vix__base *preloaded, erd_diag *diag)
{
    return vix__sync_ex(r, only, preloaded, NULL, diag);
}

int vix_resolver_sync(vix_resolver *r, const char *catalog, erd_diag *diag)
{
    if (!r)
        return erd_fail(diag, ERD_EINVAL, "no resolver");
    int rc = vix__sync(r, catalog, NULL, diag);
    if (r->delta_max == 0)
        return rc;
    /* A delta too large to search cheaply is folded into a fresh build. */
    vix_view *v = vix_resolver_acquire(r);
    for (size_t i = 0; i < v->n_catalogs; i++) {
        const vix__delta *d = v->catalogs[i].delta;
        bool due = v->catalogs[i].held ||
                   (d && (d->n_ents + d->n_masked > r->delta_max ||
                          (r->delta_max_bytes && d->bytes > r->delta_max_bytes)));
        if (due && !vix__bulk_streaming(r, v->catalogs[i].name))
            (void)vix_resolver_rebuild(r, v->catalogs[i].name, NULL);
    }
    vix_view_release(v);
    return rc;
}

static vix__job *vix__job_for(vix_resolver *r, const char *name)
{
    for (size_t i = 0; i < r->n_jobs; i++)
        if (strcmp(r->jobs[i].name, name) == 0)
            return &r->jobs[i];
    vix__job *j = realloc(r->jobs, (r->n_jobs + 1) * sizeof *j);
    if (!j)
        return NULL;
    r->jobs = j;
    j = &r->jobs[r->n_jobs++];
    memset(j, 0, sizeof *j);
    snprintf(j->name, sizeof j->name, "%s", name);
    return j;
}

/* Loads the index the build just recorded, outside every lock, so syncs
 * (and the writes waiting on them) go on while it loads. */
static int vix__job_load(vix_resolver *r, const char *name, vix__base **ret, erd_diag *diag)
{
    vix_store *store = NULL;
    vix_index_meta meta = {0};
    int64_t id;
    int rc = vix_store_open(r->db_path, VIX_STORE_READONLY, &store, diag);
    if (rc == ERD_OK)
        rc = vix_store_begin_read(store, diag);
    if (rc == ERD_OK)
        rc = vix_store_catalog_find(store, name, &id, diag);
    if (rc == ERD_OK)
        rc = vix_store_meta_get(store, id, &meta, diag);
    if (rc == ERD_OK)
        rc = vix__base_load(r, store, id, name, &meta, ret, diag);
    vix_index_meta_clear(&meta);
    vix_store_rollback(store);
    vix_store_close(store);
    return rc;
}

static void *vix__job_main(void *arg)
{
    vix__job_arg *ja = arg;
    vix_resolver *r = ja->r;
    erd_diag diag = {0};
    vix_build_result res = {0};
    vix__base *base = NULL;
    char encoder[128] = "", factory[128] = "", voice[64] = "";
    uint64_t t0 = erd_now_ns();

    /* The encoder the catalog is served with, so scores (and the
     * calibration fitted on them) stay what they were. */
    vix_view *v = vix_resolver_acquire(r);
    const vix__catalog *c = vix__view_find(v, ja->name);
    if (c)
        snprintf(encoder, sizeof encoder, "%s", pho_encoder_id(c->base->enc));
    vix_view_release(v);
    {
        vix_store *store = NULL;
        vix_index_meta meta;
        int64_t id;
        if (vix_store_open(r->db_path, VIX_STORE_READONLY, &store, NULL) == ERD_OK &&
            vix_store_catalog_find(store, ja->name, &id, NULL) == ERD_OK &&
            vix_store_meta_get(store, id, &meta, NULL) == ERD_OK) {
            snprintf(factory, sizeof factory, "%s", meta.factory);
            snprintf(voice, sizeof voice, "%s", meta.g2p_voice);
            vix_index_meta_clear(&meta);
        }
        vix_store_close(store);
    }
    vix_build_opts bo = {.db_path = r->db_path, .catalog = ja->name,
                         .encoder_spec = encoder[0] ? encoder : r->build_encoder,
                         .factory = factory[0] ? factory : r->build_factory,
                         .g2p_voice = voice[0] ? voice : r->g2p_voice, .cancel = &r->cancel};
    /* What the writes before it left free in malloc's arenas goes back
     * first: the build and then the new base come on top of it. */
    malloc_trim(0);
    int rc = vix_build(&bo, &res, &diag);
    /* The build's working set (every phrase, vector and the FAISS build)
     * is freed; hand it back before the new base loads beside the old. */
    malloc_trim(0);
    /* built and recorded: the next start loads it if we stop now */
    if (rc == ERD_OK && atomic_load(&r->cancel))
        rc = erd_fail(&diag, ERD_EBUSY, "shutting down before loading the new index");
    if (rc == ERD_OK)
        rc = vix__job_load(r, ja->name, &base, &diag);
    if (rc == ERD_OK)
        rc = vix__sync(r, ja->name, base, &diag);
    int64_t gen = base ? base->generation : 0;
    vix__base_unref(base);
    /* The replaced base and delta went back to malloc, much of it in
     * arenas glibc keeps; return it so a pod's RSS comes down after the
     * rebuild instead of staying at its peak. */
    malloc_trim(0);

    pthread_mutex_lock(&r->job_mu);
    vix__job *j = vix__job_for(r, ja->name);
    if (j) {
        j->st.state = rc == ERD_OK ? VIX_REBUILD_DONE : VIX_REBUILD_FAILED;
        j->st.finished_at = (int64_t)time(NULL);
        j->st.seconds = (double)(erd_now_ns() - t0) / 1e9;
        j->st.generation = gen;
        snprintf(j->st.error, sizeof j->st.error, "%s",
                 rc == ERD_OK ? "" : erd_diag_message(&diag, rc));
    }
    r->job_running = false;
    pthread_mutex_unlock(&r->job_mu);
    free(ja);
    return NULL;
}

int vix_resolver_rebuild(vix_resolver *r, const char *catalog, erd_diag *diag)
{
    if (!r || !vix_catalog_name_valid(catalog))
        return erd_fail(diag, ERD_EINVAL, "no resolver or bad catalog name");
    vix__job_arg *ja = calloc(1, sizeof *ja);
    if (!ja)
        return erd_fail(diag, ERD_ENOMEM, "out of memory");
    ja->r = r;
    snprintf(ja->name, sizeof ja->name, "%s", catalog);
    int rc = ERD_OK;
    pthread_mutex_lock(&r->job_mu);
    if (r->closing || r->job_running) {
        rc = erd_fail(diag, ERD_EBUSY, r->closing ? "shutting down"
                                                  : "a rebuild is already running; try again later");
        goto out;
    }
    if (r->job_joinable) {
        /* finished (job_running is false): this join does not wait */
        pthread_join(r->job_thread, NULL);
        r->job_joinable = false;
    }
    vix__job *j = vix__job_for(r, catalog);
    if (!j) {
        rc = erd_fail(diag, ERD_ENOMEM, "out of memory");
        goto out;
    }
    memset(&j->st, 0, sizeof j->st);
    j->st.state = VIX_REBUILD_RUNNING;
    j->st.started_at = (int64_t)time(NULL);
    int e = pthread_create(&r->job_thread, NULL, vix__job_main, ja);
    if (e != 0) {
        j->st.state = VIX_REBUILD_FAILED;
        snprintf(j->st.error, sizeof j->st.error, "cannot start a thread: %s", strerror(e));
        rc = erd_fail(diag, ERD_EINTERNAL, "cannot start a rebuild thread: %s", strerror(e));
        goto out;
    }
    ja = NULL; /* the thread owns it */
    r->job_joinable = true;
    r->job_running = true;
out:
    pthread_mutex_unlock(&r->job_mu);
    free(ja);
    return rc;
}

void vix_resolver_status(vix_resolver *r, const char *catalog, vix_serving_status *ret)
{
    vix_serving_status st = {0};
    vix_view *v = vix_resolver_acquire(r);
    const vix__catalog *c = vix__view_find(v, catalog);
    if (c) {
        st.served = true;
        st.index_generation = c->base->generation;
        st.served_generation = c->delta ? c->delta->generation : c->base->generation;
        st.built_at = c->base->built_at;
        st.index_entities = c->base->set.n_entities;
        st.index_vectors = vix_index_count(c->base->index);
        st.delta_entities = c->delta ? c->delta->n_ents : 0;
        st.masked = c->delta ? c->delta->n_masked : 0;
        st.delta_bytes = c->delta ? c->delta->bytes : 0;
        st.held = c->held;
        snprintf(st.encoder_id, sizeof st.encoder_id, "%s", pho_encoder_id(c->base->enc));
    }
    vix_view_release(v);
    pthread_mutex_lock(&r->job_mu);
    for (size_t i = 0; i < r->n_jobs; i++)
        if (strcmp(r->jobs[i].name, catalog) == 0) {
            st.rebuild = r->jobs[i].st;
            if (r->jobs[i].broken && !st.served) {
                st.load_error = r->jobs[i].broken_diag.code;
                snprintf(st.load_error_msg, sizeof st.load_error_msg, "%s",
                         r->jobs[i].broken_diag.msg);
            }
        }
    pthread_mutex_unlock(&r->job_mu);
    *ret = st;
}

int vix_resolver_retarget(vix_resolver *r, const char *db_path, erd_diag *diag)
{
    vix_store *store = NULL;
    char *path = strdup(db_path ? db_path : "");
    if (!path)
        return erd_fail(diag, ERD_ENOMEM, "out of memory");
    int rc = vix_store_open(path, VIX_STORE_READONLY, &store, diag);
    if (rc < 0) {
        free(path);
        return rc;
    }
    pthread_mutex_lock(&r->sync_mu);
    vix_store *old_store = r->store;
    char *old_path = r->db_path;
    r->store = store;
    r->db_path = path;
    pthread_mutex_unlock(&r->sync_mu);
    vix_store_close(old_store);
    free(old_path);
    return vix__sync(r, NULL, NULL, diag);
}
