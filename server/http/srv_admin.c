#include "server/http/srv_admin.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "index/vix_build.h"
#include "index/vix_store.h"

/* ---- small helpers ---- */

/* Serialises root (reference taken over) as the reply. */
static int srv__reply(json_t *root, unsigned status, unsigned *ret_status, char **ret_json,
                      size_t *ret_len, erd_diag *diag)
{
    char *s = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    if (!s)
        return erd_fail(diag, ERD_ENOMEM, "out of memory writing the reply");
    *ret_status = status;
    *ret_json = s;
    *ret_len = strlen(s);
    return ERD_OK;
}

static int srv__catalog_id(vix_store *store, const char *catalog, int64_t *ret_id, erd_diag *diag)
{
    if (!catalog || !vix_catalog_name_valid(catalog))
        return erd_fail(diag, ERD_ENOCATALOG, "unknown catalog \"%.64s\"", catalog ? catalog : "");
    return vix_store_catalog_find(store, catalog, ret_id, diag);
}

/* Makes the committed change served before the reply goes out.  A sync
 * failure does not undo the write: the periodic sync retries it. */
static void srv__sync(const srv_admin_ctx *ctx, const char *catalog)
{
    erd_diag d = {0};
    if (ctx->resolver && vix_resolver_sync(ctx->resolver, catalog, &d) < 0)
        fprintf(stderr, "erd: warning: serving \"%s\" as before the write: %s\n", catalog,
                erd_diag_message(&d, d.code));
}

static const char *srv__rebuild_state(int state)
{
    switch (state) {
    case VIX_REBUILD_RUNNING: return "running";
    case VIX_REBUILD_DONE: return "done";
    case VIX_REBUILD_FAILED: return "failed";
    default: return "none";
    }
}

static json_t *srv__rebuild_json(const vix_rebuild_status *st)
{
    json_t *o = json_pack("{s:s,s:I,s:I,s:f,s:I}", "state", srv__rebuild_state(st->state),
                          "started_at", (json_int_t)st->started_at, "finished_at",
                          (json_int_t)st->finished_at, "seconds", st->seconds, "generation",
                          (json_int_t)st->generation);
    if (o && st->state == VIX_REBUILD_FAILED)
        json_object_set_new(o, "error", json_string(st->error[0] ? st->error : "failed"));
    return o;
}

/* ---- catalogs ---- */

typedef struct srv__find {
    const char *name;
    json_t *list;      /* list mode: every catalog */
    vix_catalog_info info;
    char name_buf[72];
    bool found;
} srv__find;

static int srv__on_catalog(void *user, const vix_catalog_info *info)
{
    srv__find *f = user;
    if (f->list) {
        json_t *o = json_pack("{s:s,s:I,s:I,s:I}", "name", info->name, "entities",
                              (json_int_t)info->entity_count, "generation",
                              (json_int_t)info->generation, "created_at",
                              (json_int_t)info->created_at);
        return o && json_array_append_new(f->list, o) == 0 ? 0 : ERD_ENOMEM;
    }
    if (strcmp(info->name, f->name) != 0)
        return 0;
    f->info = *info;
    snprintf(f->name_buf, sizeof f->name_buf, "%s", info->name);
    f->info.name = f->name_buf;
    f->found = true;
    return 1;
}

static int srv__list(vix_store *store, const srv_admin_ctx *ctx, json_t **ret, erd_diag *diag)
{
    srv__find f = {.list = json_array()};
    if (!f.list)
        return erd_fail(diag, ERD_ENOMEM, "out of memory");
    int rc = vix_store_catalog_foreach(store, VIX_STORE_LIST_COUNTS, srv__on_catalog, &f, diag);
    if (rc != 0) {
        json_decref(f.list);
        return rc < 0 ? rc : erd_fail(diag, ERD_ENOMEM, "out of memory listing catalogs");
    }
    size_t i;
    json_t *o;
    json_array_foreach(f.list, i, o)
    {
        vix_serving_status ss = {0};
        if (ctx->resolver)
            vix_resolver_status(ctx->resolver, json_string_value(json_object_get(o, "name")), &ss);
        json_object_set_new(o, "served", json_boolean(ss.served));
    }
    *ret = json_pack("{s:o}", "catalogs", f.list);
    return *ret ? ERD_OK : erd_fail(diag, ERD_ENOMEM, "out of memory");
}

static int srv__describe(vix_store *store, const srv_admin_ctx *ctx, const char *catalog,
                         json_t **ret, erd_diag *diag)
{
    srv__find f = {.name = catalog};
    vix_index_meta meta;
    int64_t pending = 0;
    bool indexed = false;
    int rc = vix_store_begin_read(store, diag);
    if (rc < 0)
        return rc;
    rc = vix_store_catalog_foreach(store, VIX_STORE_LIST_COUNTS, srv__on_catalog, &f, diag);
    if (rc < 0)
        goto out;
    if (!f.found) {
        rc = erd_fail(diag, ERD_ENOCATALOG, "unknown catalog \"%.64s\"", catalog);
        goto out;
    }
    rc = vix_store_meta_get(store, f.info.id, &meta, diag);
    if (rc == ERD_OK)
        indexed = true;
    else if (rc != ERD_ENOINDEX)
        goto out;
    rc = vix_store_pending(store, f.info.id, indexed ? meta.catalog_generation : 0, &pending, diag);
    if (rc < 0)
        goto out;
    json_t *index = indexed ? json_pack("{s:I,s:s,s:s,s:I,s:I,s:I,s:f}", "generation",
                                        (json_int_t)meta.catalog_generation, "encoder",
                                        meta.encoder_id, "factory", meta.factory, "built_at",
                                        (json_int_t)meta.built_at, "vectors",
                                        (json_int_t)meta.vector_count, "entities",
                                        (json_int_t)meta.entity_count, "build_seconds",
                                        meta.build_seconds)
                            : json_null();
    vix_serving_status ss = {0};
    if (ctx->resolver)
        vix_resolver_status(ctx->resolver, catalog, &ss);
    json_t *serving = json_pack("{s:b,s:I,s:I,s:I,s:I,s:I,s:b}", "served", ss.served,
                                "index_generation", (json_int_t)ss.index_generation,
                                "served_generation", (json_int_t)ss.served_generation,
                                "delta_entities", (json_int_t)ss.delta_entities, "masked",
                                (json_int_t)ss.masked, "delta_bytes", (json_int_t)ss.delta_bytes,
                                "held", ss.held);
    if (serving && ss.load_error < 0)
        json_object_set_new(serving, "load_error",
                            json_pack("{s:s,s:s}", "code", erd_errcode(ss.load_error), "message",
                                      ss.load_error_msg));
    *ret = json_pack("{s:s,s:I,s:I,s:I,s:o*,s:I,s:o*,s:o*}", "name", catalog, "entities",
                     (json_int_t)f.info.entity_count, "generation", (json_int_t)f.info.generation,
                     "created_at", (json_int_t)f.info.created_at, "index", index,
                     "pending_changes", (json_int_t)pending, "serving", serving, "rebuild",
                     srv__rebuild_json(&ss.rebuild));
    if (indexed)
        vix_index_meta_clear(&meta);
    rc = *ret ? ERD_OK : erd_fail(diag, ERD_ENOMEM, "out of memory");
out:
    vix_store_rollback(store);
    return rc;
}

/* {"name": "..."} and nothing else. */
static int srv__create_name(const char *body, size_t len, const char **ret_name, json_t **ret_root,
                            erd_diag *diag)
{
    json_error_t je;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return erd_fail(diag, ERD_EJSON, "body is not JSON: %s", je.text);
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        if (strcmp(key, "name") != 0) {
            /* the message first: key lives in root */
            int rc = erd_fail(diag, ERD_EINVAL, "unknown field \"%.40s\" (expected name)", key);
            json_decref(root);
            return rc;
        }
    }
    const char *name = json_string_value(json_object_get(root, "name"));
    if (!json_is_object(root) || !name) {
        json_decref(root);
        return erd_fail(diag, ERD_EINVAL, "expected {\"name\": \"catalog\"}");
    }
    if (!vix_catalog_name_valid(name)) {
        json_decref(root);
        return erd_fail(diag, ERD_EINVAL,
                        "invalid catalog name: use 1-64 of [a-z0-9_.-], starting with a letter or "
                        "digit");
    }
    *ret_name = name;
    *ret_root = root; /* name points into it */
    return ERD_OK;
}

static int srv__create(vix_store *store, const char *body, size_t len, json_t **ret,
                       erd_diag *diag)
{
    const char *name = NULL;
    json_t *root = NULL;
    int rc = srv__create_name(body, len, &name, &root, diag);
    if (rc < 0)
        return rc;
    rc = vix_store_begin(store, diag);
    if (rc < 0)
        goto out;
    rc = vix_store_catalog_find(store, name, NULL, NULL);
    if (rc == ERD_OK) {
        vix_store_rollback(store);
        rc = erd_fail(diag, ERD_EEXIST, "catalog \"%s\" already exists", name);
        goto out;
    }
    rc = vix_store_catalog_create(store, name, NULL, diag);
    if (rc == ERD_OK)
        rc = vix_store_commit(store, diag);
    vix_store_rollback(store);
    if (rc == ERD_OK) {
        *ret = json_pack("{s:s,s:b}", "name", name, "created", 1);
        rc = *ret ? ERD_OK : erd_fail(diag, ERD_ENOMEM, "out of memory");
    }
out:
    json_decref(root);
    return rc;
}

static int srv__delete(vix_store *store, const srv_admin_ctx *ctx, const char *catalog,
                       json_t **ret, erd_diag *diag)
{
    int64_t id;
    vix_index_meta meta;
    char file[2048] = "";
    int rc = vix_store_begin(store, diag);
    if (rc < 0)
        return rc;
    rc = srv__catalog_id(store, catalog, &id, diag);
    if (rc < 0)
        goto out;
    if (vix_store_meta_get(store, id, &meta, NULL) == ERD_OK) {
        if (vix_index_file_path(ctx->db, meta.path, file, sizeof file) < 0 ||
            !vix_index_file_owned(ctx->db, catalog, file))
            file[0] = '\0'; /* another database's file (a copy names it): left alone */
        vix_index_meta_clear(&meta);
    }
    rc = vix_store_catalog_delete(store, id, diag);
    if (rc == ERD_OK)
        rc = vix_store_commit(store, diag);
out:
    vix_store_rollback(store);
    if (rc < 0)
        return rc;
    /* After the commit: a crash before this unlink leaves an unreferenced
     * file, never metadata naming a missing one. */
    if (file[0])
        vix_index_file_remove(file);
    srv__sync(ctx, catalog);
    *ret = json_pack("{s:s,s:b}", "name", catalog, "deleted", 1);
    return *ret ? ERD_OK : erd_fail(diag, ERD_ENOMEM, "out of memory");
}

/* ---- entities ---- */

static int srv__write_done(vix_store *store, int64_t id, int64_t *ret_generation, erd_diag *diag)
{
    int rc = vix_store_catalog_bump(store, id, diag);
    if (rc == ERD_OK)
        rc = vix_store_catalog_generation(store, id, ret_generation, diag);
    if (rc == ERD_OK)
        rc = vix_store_commit(store, diag);
    return rc;
}

static int srv__upsert(vix_store *store, const srv_admin_ctx *ctx, const char *catalog,
                       const char *body, size_t len, json_t **ret, erd_diag *diag)
{
    int64_t id, gen = 0;
    bool created = false;
    json_t *rec = json_loadb(body, len, 0, NULL);
    const char *ext = NULL;
    char idbuf[32];
    json_t *idv = json_object_get(rec, "id");
    if (json_is_integer(idv)) {
        snprintf(idbuf, sizeof idbuf, "%" JSON_INTEGER_FORMAT, json_integer_value(idv));
        ext = idbuf;
    } else {
        ext = json_string_value(idv);
    }
    int rc = vix_store_begin(store, diag);
    if (rc < 0)
        goto out;
    rc = srv__catalog_id(store, catalog, &id, diag);
    if (rc == ERD_OK)
        rc = vix_store_upsert_json(store, id, body, len, 0, &created, diag);
    if (rc == ERD_OK)
        rc = srv__write_done(store, id, &gen, diag);
    vix_store_rollback(store);
    if (rc < 0)
        goto out;
    srv__sync(ctx, catalog);
    *ret = json_pack("{s:s,s:b,s:I}", "id", ext ? ext : "", "created", created, "generation",
                     (json_int_t)gen);
    rc = *ret ? ERD_OK : erd_fail(diag, ERD_ENOMEM, "out of memory");
out:
    json_decref(rec);
    return rc;
}

static int srv__on_entity(void *user, const vix_entity *e)
{
    json_t **out = user;
    json_t *aliases = json_loads(e->aliases_json, 0, NULL);
    json_t *attrs = json_loads(e->attrs_json, 0, NULL);
    *out = json_pack("{s:s,s:s,s:o*,s:o*}", "id", e->ext_id, "name", e->name, "aliases",
                     aliases ? aliases : json_array(), "attrs", attrs ? attrs : json_object());
    return *out ? 0 : ERD_ENOMEM;
}

static int srv__get_entity(vix_store *store, const char *catalog, const char *ext, json_t **ret,
                           erd_diag *diag)
{
    int64_t id;
    int rc = srv__catalog_id(store, catalog, &id, diag);
    if (rc < 0)
        return rc;
    *ret = NULL;
    rc = vix_store_entity_get(store, id, ext, srv__on_entity, ret, diag);
    if (rc > 0)
        rc = erd_fail(diag, ERD_ENOMEM, "out of memory");
    return rc;
}

static int srv__delete_entity(vix_store *store, const srv_admin_ctx *ctx, const char *catalog,
                              const char *ext, json_t **ret, erd_diag *diag)
{
    int64_t id, gen = 0;
    int rc = vix_store_begin(store, diag);
    if (rc < 0)
        return rc;
    rc = srv__catalog_id(store, catalog, &id, diag);
    if (rc == ERD_OK)
        rc = vix_store_entity_delete(store, id, ext, NULL, diag);
    if (rc == ERD_OK)
        rc = srv__write_done(store, id, &gen, diag);
    vix_store_rollback(store);
    if (rc < 0)
        return rc;
    srv__sync(ctx, catalog);
    *ret = json_pack("{s:s,s:b,s:I}", "id", ext, "deleted", 1, "generation", (json_int_t)gen);
    return *ret ? ERD_OK : erd_fail(diag, ERD_ENOMEM, "out of memory");
}

static int srv__rebuild(vix_store *store, const srv_admin_ctx *ctx, const char *catalog,
                        bool start, unsigned *ret_status, json_t **ret, erd_diag *diag)
{
    int64_t id;
    int rc = srv__catalog_id(store, catalog, &id, diag);
    if (rc < 0)
        return rc;
    if (!ctx->resolver)
        return erd_fail(diag, ERD_EINVAL, "rebuilds run in a server");
    if (start) {
        int64_t n = 0;
        rc = vix_store_entity_count(store, id, &n, diag);
        if (rc < 0)
            return rc;
        if (n == 0)
            return erd_fail(diag, ERD_EEMPTY, "catalog \"%s\" has no entities to index", catalog);
        rc = vix_resolver_rebuild(ctx->resolver, catalog, diag);
        if (rc < 0)
            return rc;
        *ret_status = 202;
    }
    vix_serving_status ss;
    vix_resolver_status(ctx->resolver, catalog, &ss);
    *ret = json_pack("{s:s,s:o*}", "catalog", catalog, "rebuild", srv__rebuild_json(&ss.rebuild));
    return *ret ? ERD_OK : erd_fail(diag, ERD_ENOMEM, "out of memory");
}

int srv_admin_run(const srv_admin_ctx *ctx, enum srv_admin_op op, const char *catalog,
                  const char *id, const char *body, size_t len, unsigned *ret_status,
                  char **ret_json, size_t *ret_len, erd_diag *diag)
{
    vix_store *store = NULL;
    json_t *out = NULL;
    unsigned status = 200;
    bool writes = op == SRV_ADMIN_CREATE || op == SRV_ADMIN_DELETE || op == SRV_ADMIN_UPSERT ||
                  op == SRV_ADMIN_DELETE_ENTITY || op == SRV_ADMIN_REBUILD;
    if (writes && ctx->read_only)
        return erd_fail(diag, ERD_EFORBIDDEN,
                        "this server is a read replica serving a snapshot: write to the primary");
    int rc = vix_store_open(ctx->db, 0, &store, diag);
    if (rc < 0)
        return rc;
    switch (op) {
    case SRV_ADMIN_LIST:
        rc = srv__list(store, ctx, &out, diag);
        break;
    case SRV_ADMIN_CREATE:
        rc = srv__create(store, body ? body : "", len, &out, diag);
        status = 201;
        break;
    case SRV_ADMIN_DESCRIBE:
        rc = srv__describe(store, ctx, catalog, &out, diag);
        break;
    case SRV_ADMIN_DELETE:
        rc = srv__delete(store, ctx, catalog, &out, diag);
        break;
    case SRV_ADMIN_UPSERT:
        rc = srv__upsert(store, ctx, catalog, body ? body : "", len, &out, diag);
        break;
    case SRV_ADMIN_GET_ENTITY:
        rc = srv__get_entity(store, catalog, id, &out, diag);
        break;
    case SRV_ADMIN_DELETE_ENTITY:
        rc = srv__delete_entity(store, ctx, catalog, id, &out, diag);
        break;
    case SRV_ADMIN_REBUILD:
    case SRV_ADMIN_REBUILD_STATUS:
        rc = srv__rebuild(store, ctx, catalog, op == SRV_ADMIN_REBUILD, &status, &out, diag);
        break;
    default:
        rc = erd_fail(diag, ERD_EINTERNAL, "unknown admin operation %d", (int)op);
        break;
    }
    vix_store_close(store);
    if (rc < 0) {
        json_decref(out);
        return rc;
    }
    return srv__reply(out, status, ret_status, ret_json, ret_len, diag);
}

/* ---- bulk ---- */

struct srv_bulk {
    srv_admin_ctx ctx;
    char catalog[72];
    vix_store *store;
    int64_t catalog_id;
    char *line;       /* the line being gathered, at most SRV_BULK_MAX_LINE */
    size_t line_len;
    bool line_over;   /* the current line passed the limit: dropped to its end */
    uint64_t lineno, lines, upserted, created, failed;
    int64_t generation;
    json_t *errors;
    int fatal;        /* a store failure: the rest is read and ignored */
    erd_diag fatal_diag;
    bool streaming;   /* told the resolver (vix_resolver_bulk) */
};

/* The catalog's rebuilds wait while the upload streams: it reaches the
 * builder as one batch at the end. */
static void srv__bulk_streaming(srv_bulk *b, bool on)
{
    if (b->ctx.resolver && b->streaming != on) {
        vix_resolver_bulk(b->ctx.resolver, b->catalog, on);
        b->streaming = on;
    }
}

int srv_bulk_begin(const srv_admin_ctx *ctx, const char *catalog, srv_bulk **ret, erd_diag *diag)
{
    if (ctx->read_only)
        return erd_fail(diag, ERD_EFORBIDDEN,
                        "this server is a read replica serving a snapshot: write to the primary");
    srv_bulk *b = calloc(1, sizeof *b);
    if (!b)
        return erd_fail(diag, ERD_ENOMEM, "out of memory");
    b->ctx = *ctx;
    snprintf(b->catalog, sizeof b->catalog, "%s", catalog ? catalog : "");
    b->errors = json_array();
    int rc = b->errors ? ERD_OK : erd_fail(diag, ERD_ENOMEM, "out of memory");
    if (rc == ERD_OK)
        rc = vix_store_open(ctx->db, 0, &b->store, diag);
    if (rc == ERD_OK)
        rc = srv__catalog_id(b->store, catalog, &b->catalog_id, diag);
    if (rc < 0) {
        srv_bulk_destroy(b);
        return rc;
    }
    srv__bulk_streaming(b, true);
    *ret = b;
    return ERD_OK;
}

static void srv__bulk_error(srv_bulk *b, int code, const char *msg)
{
    b->failed++;
    if (json_array_size(b->errors) < SRV_BULK_MAX_ERRORS)
        json_array_append_new(b->errors, json_pack("{s:I,s:s,s:s}", "line", (json_int_t)b->lineno,
                                                   "code", erd_errcode(code), "message", msg));
}

/* One complete line, inside the chunk's transaction. */
static int srv__bulk_line(srv_bulk *b)
{
    b->lineno++;
    const char *s = b->line;
    size_t n = b->line_len;
    if (n && s[n - 1] == '\r')
        n--;
    size_t blank = 0;
    while (blank < n && (s[blank] == ' ' || s[blank] == '\t'))
        blank++;
    if (b->line_over) {
        char msg[96];
        snprintf(msg, sizeof msg, "line %llu: longer than %u bytes", (unsigned long long)b->lineno,
                 SRV_BULK_MAX_LINE);
        b->lines++;
        srv__bulk_error(b, ERD_ETOOLONG, msg);
        return ERD_OK;
    }
    if (blank == n)
        return ERD_OK;
    b->lines++;
    erd_diag d = {0};
    bool created = false;
    int rc = vix_store_upsert_json(b->store, b->catalog_id, s, n, b->lineno, &created, &d);
    if (rc == ERD_EPARSE || rc == ERD_EINVAL) {
        srv__bulk_error(b, rc, erd_diag_message(&d, rc));
        return ERD_OK;
    }
    if (rc < 0) {
        b->fatal_diag = d;
        return rc;
    }
    b->upserted++;
    b->created += created;
    return ERD_OK;
}

/* Everything upserted since the last commit becomes durable. */
static int srv__bulk_commit(srv_bulk *b, uint64_t before, erd_diag *diag)
{
    int rc = ERD_OK;
    if (b->upserted > before)
        rc = srv__write_done(b->store, b->catalog_id, &b->generation, diag);
    else
        rc = vix_store_commit(b->store, diag);
    if (rc < 0) {
        vix_store_rollback(b->store);
        b->upserted = before; /* what was rolled back was never acknowledged */
    }
    return rc;
}

int srv_bulk_feed(srv_bulk *b, const char *data, size_t n, erd_diag *diag)
{
    if (b->fatal)
        return b->fatal;
    uint64_t before = b->upserted;
    int rc = vix_store_begin(b->store, diag);
    if (rc < 0)
        return b->fatal = rc;
    for (size_t i = 0; i < n && rc == ERD_OK;) {
        const char *nl = memchr(data + i, '\n', n - i);
        size_t take = nl ? (size_t)(nl - (data + i)) : n - i;
        if (!b->line_over) {
            if (take > SRV_BULK_MAX_LINE - b->line_len) {
                b->line_over = true;
            } else {
                if (!b->line && !(b->line = malloc(SRV_BULK_MAX_LINE))) {
                    rc = erd_fail(diag, ERD_ENOMEM, "out of memory");
                    break;
                }
                memcpy(b->line + b->line_len, data + i, take);
                b->line_len += take;
            }
        }
        i += take;
        if (nl) {
            i++;
            rc = srv__bulk_line(b);
            if (rc < 0 && diag)
                *diag = b->fatal_diag;
            b->line_len = 0;
            b->line_over = false;
        }
    }
    if (rc == ERD_OK)
        rc = srv__bulk_commit(b, before, diag);
    else
        vix_store_rollback(b->store);
    if (rc < 0) {
        b->upserted = before;
        b->fatal = rc;
        if (diag)
            b->fatal_diag = *diag;
    }
    return rc;
}

int srv_bulk_finish(srv_bulk *b, unsigned *ret_status, char **ret_json, size_t *ret_len,
                    erd_diag *diag)
{
    int rc = b->fatal;
    if (rc == ERD_OK && (b->line_len || b->line_over)) {
        uint64_t before = b->upserted;
        rc = vix_store_begin(b->store, diag);
        if (rc == ERD_OK)
            rc = srv__bulk_line(b);
        if (rc == ERD_OK)
            rc = srv__bulk_commit(b, before, diag);
        else
            vix_store_rollback(b->store);
        if (rc < 0)
            b->fatal_diag = diag ? *diag : b->fatal_diag;
    }
    srv__bulk_streaming(b, false);
    if (b->upserted)
        srv__sync(&b->ctx, b->catalog);
    if (rc < 0)
        return erd_fail(diag, rc, "%s (lines before %llu: %llu committed)",
                        erd_diag_message(&b->fatal_diag, rc), (unsigned long long)b->lineno + 1,
                        (unsigned long long)b->upserted);
    json_t *out = json_pack("{s:I,s:I,s:I,s:I,s:O,s:b,s:I}", "lines", (json_int_t)b->lines,
                            "upserted", (json_int_t)b->upserted, "created",
                            (json_int_t)b->created, "failed", (json_int_t)b->failed, "errors",
                            b->errors, "errors_truncated", b->failed > SRV_BULK_MAX_ERRORS,
                            "generation", (json_int_t)b->generation);
    return srv__reply(out, 200, ret_status, ret_json, ret_len, diag);
}

void srv_bulk_destroy(srv_bulk *b)
{
    if (!b)
        return;
    srv__bulk_streaming(b, false);
    vix_store_rollback(b->store);
    vix_store_close(b->store);
    json_decref(b->errors);
    free(b->line);
    free(b);
}
