/* The catalog store on SQLite.  See vix_store.h for the contract.
 *
 * Durability: WAL with synchronous=FULL.  Writes come in few, large
 * transactions (an import, a batch of phonemes, one metadata row per build),
 * so the extra fsync per commit is cheap, and in exchange an import that was
 * acknowledged, or index metadata describing an index file that was already
 * fsynced, survives a power loss instead of silently rolling back. */
#include "index/vix_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static const char *const stmt_sql[VIX__ST_COUNT] = {
    [VIX__ST_CATALOG_INSERT] =
        "INSERT INTO catalogs(name, created_at) VALUES(?1, ?2) ON CONFLICT(name) DO NOTHING",
    [VIX__ST_CATALOG_FIND] = "SELECT id FROM catalogs WHERE name = ?1",
    [VIX__ST_CATALOG_LIST] =
        "SELECT c.id, c.name, c.generation, c.created_at,"
        " (SELECT count(*) FROM entities e WHERE e.catalog_id = c.id)"
        " FROM catalogs c ORDER BY c.name",
    [VIX__ST_CATALOG_LIST_BRIEF] =
        "SELECT id, name, generation, created_at, -1 FROM catalogs ORDER BY name",
    [VIX__ST_CATALOG_GENERATION] = "SELECT generation FROM catalogs WHERE id = ?1",
    [VIX__ST_CATALOG_BUMP] = "UPDATE catalogs SET generation = generation + 1 WHERE id = ?1",
    [VIX__ST_ENTITY_LIST] =
        "SELECT rowid, ext_id, name, aliases, attrs FROM entities"
        " WHERE catalog_id = ?1 ORDER BY rowid",
    [VIX__ST_ENTITY_GET] =
        "SELECT rowid, ext_id, name, aliases, attrs FROM entities"
        " WHERE catalog_id = ?1 AND ext_id = ?2",
    [VIX__ST_ENTITY_COUNT] = "SELECT count(*) FROM entities WHERE catalog_id = ?1",
    /* gen: the generation the enclosing transaction's bump will give the
     * catalog, so "changed since generation G" is one indexed range */
    [VIX__ST_ENTITY_UPSERT] =
        "INSERT INTO entities(catalog_id, ext_id, name, aliases, attrs, updated_at, gen)"
        " VALUES(?1, ?2, ?3, ?4, ?5, ?6, (SELECT generation + 1 FROM catalogs WHERE id = ?1))"
        " ON CONFLICT(catalog_id, ext_id) DO UPDATE SET name = excluded.name,"
        " aliases = excluded.aliases, attrs = excluded.attrs, updated_at = excluded.updated_at,"
        " gen = excluded.gen",
    [VIX__ST_ENTITY_DELETE] =
        "DELETE FROM entities WHERE catalog_id = ?1 AND ext_id = ?2 RETURNING rowid",
    [VIX__ST_TOMBSTONE_PUT] =
        "INSERT INTO tombstones(catalog_id, entity_rowid, gen)"
        " VALUES(?1, ?2, (SELECT generation + 1 FROM catalogs WHERE id = ?1))"
        " ON CONFLICT(catalog_id, entity_rowid) DO UPDATE SET gen = excluded.gen",
    [VIX__ST_CHANGED_LIST] =
        "SELECT rowid, ext_id, name, aliases, attrs FROM entities"
        " WHERE catalog_id = ?1 AND gen > ?2 ORDER BY rowid",
    [VIX__ST_DELETED_LIST] =
        "SELECT entity_rowid FROM tombstones WHERE catalog_id = ?1 AND gen > ?2"
        " ORDER BY entity_rowid",
    [VIX__ST_PENDING_COUNT] =
        "SELECT (SELECT count(*) FROM entities WHERE catalog_id = ?1 AND gen > ?2)"
        " + (SELECT count(*) FROM tombstones WHERE catalog_id = ?1 AND gen > ?2)",
    [VIX__ST_CATALOG_DELETE] = "DELETE FROM catalogs WHERE id = ?1",
    [VIX__ST_PHONEMES_GET] = "SELECT ipa FROM phonemes WHERE g2p_id = ?1 AND text = ?2",
    [VIX__ST_PHONEMES_PUT] =
        "INSERT INTO phonemes(g2p_id, text, ipa) VALUES(?1, ?2, ?3)"
        " ON CONFLICT(g2p_id, text) DO UPDATE SET ipa = excluded.ipa",
    [VIX__ST_META_PUT] =
        "INSERT INTO indexes(catalog_id, encoder_id, factory, path, dim, vector_count,"
        " entity_count, catalog_generation, built_at, build_seconds, encoder_state, g2p_voice)"
        " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
        " ON CONFLICT(catalog_id) DO UPDATE SET encoder_id = excluded.encoder_id,"
        " factory = excluded.factory, path = excluded.path, dim = excluded.dim,"
        " vector_count = excluded.vector_count, entity_count = excluded.entity_count,"
        " catalog_generation = excluded.catalog_generation, built_at = excluded.built_at,"
        " build_seconds = excluded.build_seconds, encoder_state = excluded.encoder_state,"
        " g2p_voice = excluded.g2p_voice",
    [VIX__ST_META_GET] =
        "SELECT encoder_id, factory, path, dim, vector_count, entity_count,"
        " catalog_generation, built_at, build_seconds, encoder_state, g2p_voice"
        " FROM indexes WHERE catalog_id = ?1",
};

static const char schema_sql[] =
    "CREATE TABLE catalogs("
    " id INTEGER PRIMARY KEY,"
    " name TEXT UNIQUE NOT NULL,"
    " created_at INTEGER NOT NULL,"
    " generation INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE entities("
    " rowid INTEGER PRIMARY KEY,"
    " catalog_id INTEGER NOT NULL REFERENCES catalogs ON DELETE CASCADE,"
    " ext_id TEXT NOT NULL,"
    " name TEXT NOT NULL,"
    " aliases TEXT NOT NULL DEFAULT '[]',"
    " attrs TEXT NOT NULL DEFAULT '{}',"
    " updated_at INTEGER NOT NULL,"
    " UNIQUE(catalog_id, ext_id));"
    "CREATE TABLE phonemes("
    " g2p_id TEXT,"
    " text TEXT,"
    " ipa TEXT NOT NULL,"
    " PRIMARY KEY(g2p_id, text)) WITHOUT ROWID;"
    "CREATE TABLE indexes("
    " catalog_id INTEGER PRIMARY KEY REFERENCES catalogs ON DELETE CASCADE,"
    " encoder_id TEXT NOT NULL,"
    " factory TEXT NOT NULL,"
    " path TEXT NOT NULL,"
    " dim INTEGER NOT NULL,"
    " vector_count INTEGER NOT NULL,"
    " entity_count INTEGER NOT NULL,"
    " catalog_generation INTEGER NOT NULL,"
    " built_at INTEGER NOT NULL,"
    " build_seconds REAL NOT NULL,"
    " encoder_state BLOB);"
    "PRAGMA user_version = 1;";

/* Version 2: what changed since an index was built, so a server can serve
 * those entities beside it (a delta) instead of rebuilding.  gen is the
 * catalog generation whose commit last wrote the row; a deleted entity
 * leaves a tombstone with the generation of its deletion. */
static const char migrate_v2_sql[] =
    "ALTER TABLE entities ADD COLUMN gen INTEGER NOT NULL DEFAULT 0;"
    "CREATE INDEX entities_gen ON entities(catalog_id, gen);"
    "CREATE TABLE tombstones("
    " catalog_id INTEGER NOT NULL REFERENCES catalogs ON DELETE CASCADE,"
    " entity_rowid INTEGER NOT NULL,"
    " gen INTEGER NOT NULL,"
    " PRIMARY KEY(catalog_id, entity_rowid)) WITHOUT ROWID;"
    "CREATE INDEX tombstones_gen ON tombstones(catalog_id, gen);"
    "PRAGMA user_version = 2;";

/* Version 3: the espeak-ng voice an index's phonemes were made with, so
 * queries against it are spoken the same way (NULL: built before voices
 * were recorded; served with the configured g2p_voice as before). */
static const char migrate_v3_sql[] =
    "ALTER TABLE indexes ADD COLUMN g2p_voice TEXT;"
    "PRAGMA user_version = 3;";

_Static_assert(VIX_SCHEMA_VERSION == 3, "schema_sql then the migrations give user_version 3");

int vix__db_fail(vix_store *store, erd_diag *diag, int rc, const char *what)
{
    int code;

    switch (rc & 0xff) {
    case SQLITE_NOMEM:
        code = ERD_ENOMEM;
        break;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        code = ERD_EBUSY;
        break;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        code = ERD_ECORRUPT;
        break;
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CANTOPEN:
        code = ERD_EIO;
        break;
    default:
        code = ERD_EDB;
        break;
    }
    return erd_fail(diag, code, "%s: %s", what,
                    store && store->db ? sqlite3_errmsg(store->db) : sqlite3_errstr(rc));
}

int vix__exec(vix_store *store, const char *sql, erd_diag *diag)
{
    int rc = sqlite3_exec(store->db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return vix__db_fail(store, diag, rc, sql);
    return ERD_OK;
}

int vix__stmt_acquire(vix_store *store, enum vix__stmt_id id, vix__stmt *ret, erd_diag *diag)
{
    sqlite3_stmt *st = store->stmt[id];

    if (!sqlite3_stmt_busy(st)) {
        ret->st = st;
        ret->transient = false;
        return ERD_OK;
    }
    int rc = sqlite3_prepare_v2(store->db, stmt_sql[id], -1, &st, NULL);
    if (rc != SQLITE_OK)
        return vix__db_fail(store, diag, rc, "prepare");
    ret->st = st;
    ret->transient = true;
    return ERD_OK;
}

void vix__stmt_release(vix__stmt *s)
{
    if (!s->st)
        return;
    if (s->transient) {
        sqlite3_finalize(s->st);
    } else {
        sqlite3_reset(s->st);
        sqlite3_clear_bindings(s->st);
    }
    s->st = NULL;
}

/* ---- open / close ---- */

static int read_user_version(vix_store *store, int *ret, erd_diag *diag)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(store->db, "PRAGMA user_version", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return vix__db_fail(store, diag, rc, "reading schema version");
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        int err = vix__db_fail(store, diag, rc, "reading schema version");
        sqlite3_finalize(st);
        return err;
    }
    *ret = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return ERD_OK;
}

static int count_schema_objects(vix_store *store, int *ret, erd_diag *diag)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(store->db, "SELECT count(*) FROM sqlite_schema", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return vix__db_fail(store, diag, rc, "reading schema");
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        int err = vix__db_fail(store, diag, rc, "reading schema");
        sqlite3_finalize(st);
        return err;
    }
    *ret = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return ERD_OK;
}

/* Under a write lock so two processes opening a fresh file do not both
 * create the schema. */
static int ensure_schema(vix_store *store, erd_diag *diag)
{
    int version = 0, objects = 0;
    int err;

    if (!store->readonly) {
        err = vix__exec(store, "BEGIN IMMEDIATE", diag);
        if (err)
            return err;
    }
    err = read_user_version(store, &version, diag);
    if (err)
        goto out;
    if (version > VIX_SCHEMA_VERSION) {
        err = erd_fail(diag, ERD_EMISMATCH,
                       "%s: schema version %d is newer than this erd supports (%d)", store->path,
                       version, VIX_SCHEMA_VERSION);
        goto out;
    }
    if (version == VIX_SCHEMA_VERSION)
        goto out;
    if (version >= 1) {
        if (store->readonly) {
            err = erd_fail(diag, ERD_EMISMATCH,
                           "%s: schema version %d needs an upgrade: open it once read-write (erd "
                           "import, erd catalog list or erd serve)",
                           store->path, version);
            goto out;
        }
        if (version == 1)
            err = vix__exec(store, migrate_v2_sql, diag);
        if (!err)
            err = vix__exec(store, migrate_v3_sql, diag);
        goto out;
    }
    err = count_schema_objects(store, &objects, diag);
    if (err)
        goto out;
    if (objects > 0) {
        /* someone else's database: creating our tables next to theirs
         * would only hide the mistake */
        err = erd_fail(diag, ERD_EMISMATCH, "%s: not an erd store (foreign tables, no schema version)",
                       store->path);
        goto out;
    }
    if (store->readonly) {
        err = erd_fail(diag, ERD_EMISMATCH, "%s: empty database, not an erd store", store->path);
        goto out;
    }
    err = vix__exec(store, schema_sql, diag);
    if (!err)
        err = vix__exec(store, migrate_v2_sql, diag);
    if (!err)
        err = vix__exec(store, migrate_v3_sql, diag);
out:
    if (!store->readonly) {
        if (err)
            sqlite3_exec(store->db, "ROLLBACK", NULL, NULL, NULL);
        else
            err = vix__exec(store, "COMMIT", diag);
    }
    return err;
}

int vix_store_open(const char *path, unsigned flags, vix_store **ret, erd_diag *diag)
{
    vix_store *store = NULL;
    int err, rc;

    if (!path || !*path || !ret)
        return erd_fail(diag, ERD_EINVAL, "store path is empty");
    if (flags & ~(unsigned)(VIX_STORE_READONLY | VIX_STORE_SCAN))
        return erd_fail(diag, ERD_EINVAL, "unknown store flags 0x%x", flags);

    bool readonly = flags & VIX_STORE_READONLY;
    if (readonly) {
        /* SQLite's own "unable to open database file" does not say why */
        struct stat sb;
        if (stat(path, &sb) != 0)
            return erd_fail(diag, ERD_EIO, "store %s: %s", path, strerror(errno));
        if (!S_ISREG(sb.st_mode))
            return erd_fail(diag, ERD_EIO, "store %s: not a regular file", path);
    }

    store = calloc(1, sizeof *store);
    if (!store)
        return erd_fail(diag, ERD_ENOMEM, "out of memory opening %s", path);
    store->readonly = readonly;
    store->path = strdup(path);
    if (!store->path) {
        err = erd_fail(diag, ERD_ENOMEM, "out of memory opening %s", path);
        goto out;
    }

    /* NOMUTEX: a handle belongs to one thread at a time (see the header) */
    int oflags = SQLITE_OPEN_NOMUTEX |
                 (readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    rc = sqlite3_open_v2(path, &store->db, oflags, NULL);
    if (rc != SQLITE_OK) {
        if (!store->db) {
            err = erd_fail(diag, ERD_ENOMEM, "out of memory opening %s", path);
            goto out;
        }
        err = erd_fail(diag, ERD_EIO, "store %s: %s", path, sqlite3_errmsg(store->db));
        goto out;
    }
    sqlite3_extended_result_codes(store->db, 1);
    rc = sqlite3_busy_timeout(store->db, 5000);
    if (rc != SQLITE_OK) {
        err = vix__db_fail(store, diag, rc, "busy_timeout");
        goto out;
    }
    /* journal_mode reads the header: a non-database file fails here */
    err = vix__exec(store,
                    readonly ? "PRAGMA foreign_keys=ON"
                             : "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; "
                               "PRAGMA foreign_keys=ON",
                    NULL);
    if (err) {
        err = erd_fail(diag, err, "store %s: %s", path, sqlite3_errmsg(store->db));
        goto out;
    }
    err = ensure_schema(store, diag);
    if (err)
        goto out;
    /* best effort: without the map pages are read as before */
    if (flags & VIX_STORE_SCAN)
        (void)vix__exec(store, "PRAGMA mmap_size=2147418112", NULL);

    for (int i = 0; i < VIX__ST_COUNT; i++) {
        rc = sqlite3_prepare_v3(store->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                                &store->stmt[i], NULL);
        if (rc != SQLITE_OK) {
            err = vix__db_fail(store, diag, rc, "preparing statements");
            goto out;
        }
    }
    *ret = store;
    store = NULL;
    err = ERD_OK;
out:
    vix_store_close(store);
    return err;
}

void vix_store_close(vix_store *store)
{
    if (!store)
        return;
    for (int i = 0; i < VIX__ST_COUNT; i++)
        sqlite3_finalize(store->stmt[i]);
    /* close_v2: a leaked transient statement must not keep the file open
     * forever, nor make close fail */
    sqlite3_close_v2(store->db);
    free(store->path);
    free(store);
}

const char *vix_store_path(const vix_store *store)
{
    return store ? store->path : NULL;
}

/* ---- transactions ---- */

int vix_store_begin(vix_store *store, erd_diag *diag)
{
    if (!store)
        return erd_fail(diag, ERD_EINVAL, "no store");
    /* IMMEDIATE: taking the write lock up front lets the busy timeout work;
     * upgrading a read transaction later fails at once with SQLITE_BUSY */
    return vix__exec(store, store->readonly ? "BEGIN" : "BEGIN IMMEDIATE", diag);
}

int vix_store_begin_read(vix_store *store, erd_diag *diag)
{
    if (!store)
        return erd_fail(diag, ERD_EINVAL, "no store");
    return vix__exec(store, "BEGIN DEFERRED", diag);
}

int vix_store_commit(vix_store *store, erd_diag *diag)
{
    if (!store)
        return erd_fail(diag, ERD_EINVAL, "no store");
    return vix__exec(store, "COMMIT", diag);
}

void vix_store_rollback(vix_store *store)
{
    if (!store || sqlite3_get_autocommit(store->db))
        return;
    sqlite3_exec(store->db, "ROLLBACK", NULL, NULL, NULL);
}

/* ---- catalogs ---- */

bool vix_catalog_name_valid(const char *name)
{
    if (!name)
        return false;
    size_t n = 0;
    for (const char *p = name; *p; p++, n++) {
        char c = *p;
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (n >= 64)
            return false;
        if (n == 0 ? !alnum : !(alnum || c == '_' || c == '.' || c == '-'))
            return false;
    }
    return n > 0;
}

int vix__catalog_name_check(const char *name, erd_diag *diag)
{
    if (vix_catalog_name_valid(name))
        return ERD_OK;
    return erd_fail(diag, ERD_EINVAL,
                    "invalid catalog name \"%.64s\": use 1-64 of [a-z0-9_.-], starting with a "
                    "letter or digit",
                    name ? name : "");
}

static int catalog_lookup(vix_store *store, const char *name, int64_t *ret_id, erd_diag *diag)
{
    vix__stmt s = {0};
    int err = vix__stmt_acquire(store, VIX__ST_CATALOG_FIND, &s, diag);
    if (err)
        return err;
    sqlite3_bind_text(s.st, 1, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s.st);
    if (rc == SQLITE_ROW) {
        *ret_id = sqlite3_column_int64(s.st, 0);
        err = ERD_OK;
    } else if (rc == SQLITE_DONE) {
        err = erd_fail(diag, ERD_ENOCATALOG, "unknown catalog \"%s\"", name);
    } else {
        err = vix__db_fail(store, diag, rc, "finding catalog");
    }
    vix__stmt_release(&s);
    return err;
}

int vix__catalog_ensure(vix_store *store, const char *name, int64_t *ret_id, erd_diag *diag)
{
    vix__stmt s = {0};
    int err = vix__stmt_acquire(store, VIX__ST_CATALOG_INSERT, &s, diag);
    if (err)
        return err;
    sqlite3_bind_text(s.st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s.st, 2, (sqlite3_int64)time(NULL));
    int rc = sqlite3_step(s.st);
    if (rc != SQLITE_DONE)
        err = vix__db_fail(store, diag, rc, "creating catalog");
    vix__stmt_release(&s);
    if (err)
        return err;
    return catalog_lookup(store, name, ret_id, diag);
}

int vix_store_catalog_create(vix_store *store, const char *name, int64_t *ret_id, erd_diag *diag)
{
    if (!store)
        return erd_fail(diag, ERD_EINVAL, "no store");
    if (vix__catalog_name_check(name, diag) < 0)
        return ERD_EINVAL;
    int64_t id;
    int err = vix__catalog_ensure(store, name, &id, diag);
    if (err)
        return err;
    if (ret_id)
        *ret_id = id;
    return ERD_OK;
}

int vix_store_catalog_find(vix_store *store, const char *name, int64_t *ret_id, erd_diag *diag)
{
    if (!store)
        return erd_fail(diag, ERD_EINVAL, "no store");
    if (!vix_catalog_name_valid(name))
        return erd_fail(diag, ERD_ENOCATALOG, "unknown catalog \"%.64s\"", name ? name : "");
    int64_t id;
    int err = catalog_lookup(store, name, &id, diag);
    if (err)
        return err;
    if (ret_id)
        *ret_id = id;
    return ERD_OK;
}

int vix_store_catalog_foreach(vix_store *store, unsigned flags,
                              int (*cb)(void *user, const vix_catalog_info *info), void *user,
                              erd_diag *diag)
{
    if (!store || !cb)
        return erd_fail(diag, ERD_EINVAL, "no store or callback");
    vix__stmt s = {0};
    int err = vix__stmt_acquire(
        store, flags & VIX_STORE_LIST_COUNTS ? VIX__ST_CATALOG_LIST : VIX__ST_CATALOG_LIST_BRIEF, &s,
        diag);
    if (err)
        return err;
    for (;;) {
        int rc = sqlite3_step(s.st);
        if (rc == SQLITE_DONE)
            break;
        if (rc != SQLITE_ROW) {
            err = vix__db_fail(store, diag, rc, "listing catalogs");
            break;
        }
        vix_catalog_info info = {
            .id = sqlite3_column_int64(s.st, 0),
            .name = (const char *)sqlite3_column_text(s.st, 1),
            .generation = sqlite3_column_int64(s.st, 2),
            .created_at = sqlite3_column_int64(s.st, 3),
            .entity_count = sqlite3_column_int64(s.st, 4),
        };
        if (!info.name) {
            err = erd_fail(diag, ERD_ENOMEM, "out of memory listing catalogs");
            break;
        }
        err = cb(user, &info);
        if (err)
            break;
    }
    vix__stmt_release(&s);
    return err;
}

int vix_store_catalog_generation(vix_store *store, int64_t catalog_id, int64_t *ret_generation,
                                 erd_diag *diag)
{
    if (!store)
        return erd_fail(diag, ERD_EINVAL, "no store");
    vix__stmt s = {0};
    int err = vix__stmt_acquire(store, VIX__ST_CATALOG_GENERATION, &s, diag);
    if (err)
        return err;
    sqlite3_bind_int64(s.st, 1, catalog_id);
    int rc = sqlite3_step(s.st);
    if (rc == SQLITE_ROW) {
        if (ret_generation)
            *ret_generation = sqlite3_column_int64(s.st, 0);
    } else if (rc == SQLITE_DONE) {
        err = erd_fail(diag, ERD_ENOCATALOG, "no catalog with id %" PRId64, catalog_id);
    } else {
        err = vix__db_fail(store, diag, rc, "reading catalog generation");
    }
    vix__stmt_release(&s);
    return err;
}

/* ---- entities ---- */

static int entity_rows(vix_store *store, sqlite3_stmt *st, int (*cb)(void *, const vix_entity *),
                       void *user, bool *ret_any, erd_diag *diag)
{
    bool any = false;
    for (;;) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
            break;
        if (rc != SQLITE_ROW)
            return vix__db_fail(store, diag, rc, "reading entities");
        any = true;
        vix_entity e = {
            .rowid = sqlite3_column_int64(st, 0),
            .ext_id = (const char *)sqlite3_column_text(st, 1),
            .name = (const char *)sqlite3_column_text(st, 2),
            .aliases_json = (const char *)sqlite3_column_text(st, 3),
            .attrs_json = (const char *)sqlite3_column_text(st, 4),
        };
        /* the columns are NOT NULL, so NULL here is SQLite failing to allocate */
        if (!e.ext_id || !e.name || !e.aliases_json || !e.attrs_json)
            return erd_fail(diag, ERD_ENOMEM, "out of memory reading entities");
        int r = cb(user, &e);
        if (r)
            return r;
    }
    *ret_any = any;
    return ERD_OK;
}

int vix_store_entity_foreach(vix_store *store, int64_t catalog_id,
                             int (*cb)(void *user, const vix_entity *entity), void *user,
                             erd_diag *diag)
{
    if (!store || !cb)
        return erd_fail(diag, ERD_EINVAL, "no store or callback");
    vix__stmt s = {0};
    int err = vix__stmt_acquire(store, VIX__ST_ENTITY_LIST, &s, diag);
    if (err)
        return err;
    sqlite3_bind_int64(s.st, 1, catalog_id);
    bool any;
    err = entity_rows(store, s.st, cb, user, &any, diag);
    vix__stmt_release(&s);
    return err;
}

int vix_store_entity_get(vix_store *store, int64_t catalog_id, const char *ext_id,
                         int (*cb)(void *user, const vix_entity *entity), void *user,
                         erd_diag *diag)
{
    if (!store || !cb || !ext_id)
        return erd_fail(diag, ERD_EINVAL, "no store, id or callback");
    vix__stmt s = {0};
    int err = vix__stmt_acquire(store, VIX__ST_ENTITY_GET, &s, diag);
    if (err)
        return err;
    sqlite3_bind_int64(s.st, 1, catalog_id);
    sqlite3_bind_text(s.st, 2, ext_id, -1, SQLITE_STATIC);
    bool any = false;
    err = entity_rows(store, s.st, cb, user, &any, diag);
    if (!err && !any)
        err = erd_fail(diag, ERD_ENOTFOUND, "no entity \"%.200s\"", ext_id);
    vix__stmt_release(&s);
    return err;
}

/* A statement of one count row, bound to (a) or (a, b). */
static int count_row(vix_store *store, enum vix__stmt_id id, int64_t a, const int64_t *b,
                     int64_t *ret_count, const char *what, erd_diag *diag)
{
    if (!store)
        return erd_fail(diag, ERD_EINVAL, "no store");
    vix__stmt s = {0};
    int err = vix__stmt_acquire(store, id, &s, diag);
    if (err)
        return err;
    sqlite3_bind_int64(s.st, 1, a);
    if (b)
        sqlite3_bind_int64(s.st, 2, *b);
    int rc = sqlite3_step(s.st);
    if (rc == SQLITE_ROW) {
        if (ret_count)
            *ret_count = sqlite3_column_int64(s.st, 0);
    } else {
        err = vix__db_fail(store, diag, rc, what);
    }
    vix__stmt_release(&s);
    return err;
}

int vix_store_entity_count(vix_store *store, int64_t catalog_id, int64_t *ret_count, erd_diag *diag)
{
    return count_row(store, VIX__ST_ENTITY_COUNT, catalog_id, NULL, ret_count, "counting entities",
                     diag);
}

/* ---- phonemes ---- */

int vix_store_phonemes_get(vix_store *store, const char *g2p_id, const char *text, char *out,
                           size_t outcap)
{
    if (!store || !g2p_id || !text || !out)
        return ERD_EINVAL;
    vix__stmt s = {0};
    int err = vix__stmt_acquire(store, VIX__ST_PHONEMES_GET, &s, NULL);
    if (err)
        return err;
    sqlite3_bind_text(s.st, 1, g2p_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s.st, 2, text, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s.st);
    if (rc == SQLITE_ROW) {
        const char *ipa = (const char *)sqlite3_column_text(s.st, 0);
        size_t n = (size_t)sqlite3_column_bytes(s.st, 0);
        if (!ipa)
            err = ERD_ENOMEM;
        else if (n >= outcap)
            err = ERD_ETOOLONG;
        else
            memcpy(out, ipa, n + 1);
    } else if (rc == SQLITE_DONE) {
        err = ERD_ENOTFOUND;
    } else {
        err = vix__db_fail(store, NULL, rc, "");
    }
    vix__stmt_release(&s);
    return err;
}

int vix_store_phonemes_put(vix_store *store, const char *g2p_id, const char *text, const char *ipa,
                           erd_diag *diag)
{
    if (!store || !g2p_id || !text || !ipa)
        return erd_fail(diag, ERD_EINVAL, "phonemes_put: missing argument");
    vix__stmt s = {0};
    int err = vix__stmt_acquire(store, VIX__ST_PHONEMES_PUT, &s, diag);
    if (err)
        return err;
    sqlite3_bind_text(s.st, 1, g2p_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s.st, 2, text, -1, SQLITE_STATIC);
    sqlite3_bind_text(s.st, 3, ipa, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s.st);
    if (rc != SQLITE_DONE)
        err = vix__db_fail(store, diag, rc, "caching phonemes");
    vix__stmt_release(&s);
    return err;
}

/* ---- index metadata ---- */

static bool terminated(const char *s, size_t cap)
{
    return memchr(s, '\0', cap) != NULL;
}

int vix_store_meta_put(vix_store *store, int64_t catalog_id, const vix_index_meta *meta,
                       erd_diag *diag)
{
    if (!store || !meta)
        return erd_fail(diag, ERD_EINVAL, "meta_put: missing argument");
    if (!terminated(meta->encoder_id, sizeof meta->encoder_id) ||
        !terminated(meta->factory, sizeof meta->factory) ||
        !terminated(meta->path, sizeof meta->path) ||
        !terminated(meta->g2p_voice, sizeof meta->g2p_voice))
        return erd_fail(diag, ERD_EINVAL, "meta_put: unterminated string field");
    if (meta->encoder_state_len > INT32_MAX || (meta->encoder_state_len && !meta->encoder_state))
        return erd_fail(diag, ERD_EINVAL, "meta_put: bad encoder state (%zu bytes)",
                        meta->encoder_state_len);

    vix__stmt s = {0};
    int err = vix__stmt_acquire(store, VIX__ST_META_PUT, &s, diag);
    if (err)
        return err;
    sqlite3_stmt *st = s.st;
    sqlite3_bind_int64(st, 1, catalog_id);
    sqlite3_bind_text(st, 2, meta->encoder_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, meta->factory, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, meta->path, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, meta->dim);
    sqlite3_bind_int64(st, 6, meta->vector_count);
    sqlite3_bind_int64(st, 7, meta->entity_count);
    sqlite3_bind_int64(st, 8, meta->catalog_generation);
    sqlite3_bind_int64(st, 9, meta->built_at);
    sqlite3_bind_double(st, 10, meta->build_seconds);
    if (meta->encoder_state)
        sqlite3_bind_blob(st, 11, meta->encoder_state, (int)meta->encoder_state_len,
                          SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 11);
    if (meta->g2p_voice[0])
        sqlite3_bind_text(st, 12, meta->g2p_voice, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 12);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
        err = erd_fail(diag, ERD_ENOCATALOG, "no catalog with id %" PRId64, catalog_id);
    else if (rc != SQLITE_DONE)
        err = vix__db_fail(store, diag, rc, "saving index metadata");
    vix__stmt_release(&s);
    return err;
}

static int copy_text(sqlite3_stmt *st, int col, char *dst, size_t cap, const char *what,
                     erd_diag *diag)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    size_t n = (size_t)sqlite3_column_bytes(st, col);
    if (!t)
        return erd_fail(diag, ERD_ECORRUPT, "index metadata: %s is NULL", what);
    if (n >= cap)
        return erd_fail(diag, ERD_ECORRUPT, "index metadata: %s is %zu bytes, limit %zu", what, n,
                        cap - 1);
    memcpy(dst, t, n + 1);
    return ERD_OK;
}

int vix_store_meta_get(vix_store *store, int64_t catalog_id, vix_index_meta *ret, erd_diag *diag)
{
    if (!store || !ret)
        return erd_fail(diag, ERD_EINVAL, "meta_get: missing argument");
    vix_index_meta m = {0};
    vix__stmt s = {0};
    int err = vix__stmt_acquire(store, VIX__ST_META_GET, &s, diag);
    if (err)
        return err;
    sqlite3_stmt *st = s.st;
    sqlite3_bind_int64(st, 1, catalog_id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        err = erd_fail(diag, ERD_ENOINDEX, "catalog %" PRId64 " has no index: run erd build",
                       catalog_id);
        goto out;
    }
    if (rc != SQLITE_ROW) {
        err = vix__db_fail(store, diag, rc, "reading index metadata");
        goto out;
    }
    if ((err = copy_text(st, 0, m.encoder_id, sizeof m.encoder_id, "encoder_id", diag)) ||
        (err = copy_text(st, 1, m.factory, sizeof m.factory, "factory", diag)) ||
        (err = copy_text(st, 2, m.path, sizeof m.path, "path", diag)))
        goto out;
    m.dim = sqlite3_column_int64(st, 3);
    m.vector_count = sqlite3_column_int64(st, 4);
    m.entity_count = sqlite3_column_int64(st, 5);
    m.catalog_generation = sqlite3_column_int64(st, 6);
    m.built_at = sqlite3_column_int64(st, 7);
    m.build_seconds = sqlite3_column_double(st, 8);
    if (sqlite3_column_type(st, 10) != SQLITE_NULL &&
        (err = copy_text(st, 10, m.g2p_voice, sizeof m.g2p_voice, "g2p_voice", diag)))
        goto out;
    if (sqlite3_column_type(st, 9) != SQLITE_NULL) {
        const void *blob = sqlite3_column_blob(st, 9);
        size_t n = (size_t)sqlite3_column_bytes(st, 9);
        /* malloc(1) for an empty blob keeps "present but empty" distinct from NULL */
        m.encoder_state = malloc(n ? n : 1);
        if (!m.encoder_state || (n && !blob)) {
            err = erd_fail(diag, ERD_ENOMEM, "out of memory reading index metadata");
            goto out;
        }
        if (n)
            memcpy(m.encoder_state, blob, n);
        m.encoder_state_len = n;
    }
    *ret = m;
    m.encoder_state = NULL;
out:
    free(m.encoder_state);
    vix__stmt_release(&s);
    return err;
}

void vix_index_meta_clear(vix_index_meta *meta)
{
    if (!meta)
        return;
    free(meta->encoder_state);
    memset(meta, 0, sizeof *meta);
}

/* ---- live changes ---- */

static int step_done(vix_store *store, enum vix__stmt_id id, int64_t a, int64_t b, bool bind_b,
                     const char *what, erd_diag *diag)
{
    vix__stmt s = {0};
    int err = vix__stmt_acquire(store, id, &s, diag);
    if (err)
        return err;
    sqlite3_bind_int64(s.st, 1, a);
    if (bind_b)
        sqlite3_bind_int64(s.st, 2, b);
    int rc = sqlite3_step(s.st);
    if (rc != SQLITE_DONE)
        err = vix__db_fail(store, diag, rc, what);
    vix__stmt_release(&s);
    return err;
}

int vix_store_catalog_bump(vix_store *store, int64_t catalog_id, erd_diag *diag)
{
    if (!store)
        return erd_fail(diag, ERD_EINVAL, "no store");
    return step_done(store, VIX__ST_CATALOG_BUMP, catalog_id, 0, false, "bumping catalog generation",
                     diag);
}

int vix_store_entity_delete(vix_store *store, int64_t catalog_id, const char *ext_id,
                            int64_t *ret_rowid, erd_diag *diag)
{
    if (!store || !ext_id)
        return erd_fail(diag, ERD_EINVAL, "no store or id");
    vix__stmt s = {0};
    int err = vix__stmt_acquire(store, VIX__ST_ENTITY_DELETE, &s, diag);
    if (err)
        return err;
    sqlite3_bind_int64(s.st, 1, catalog_id);
    sqlite3_bind_text(s.st, 2, ext_id, -1, SQLITE_STATIC);
    int64_t rowid = 0;
    int rc = sqlite3_step(s.st);
    if (rc == SQLITE_ROW) {
        rowid = sqlite3_column_int64(s.st, 0);
        rc = sqlite3_step(s.st);
    } else if (rc == SQLITE_DONE) {
        err = erd_fail(diag, ERD_ENOTFOUND, "no entity \"%.200s\"", ext_id);
    }
    if (!err && rc != SQLITE_DONE)
        err = vix__db_fail(store, diag, rc, "deleting entity");
    vix__stmt_release(&s);
    if (err)
        return err;
    err = step_done(store, VIX__ST_TOMBSTONE_PUT, catalog_id, rowid, true, "recording deletion",
                    diag);
    if (!err && ret_rowid)
        *ret_rowid = rowid;
    return err;
}

int vix_store_catalog_delete(vix_store *store, int64_t catalog_id, erd_diag *diag)
{
    if (!store)
        return erd_fail(diag, ERD_EINVAL, "no store");
    return step_done(store, VIX__ST_CATALOG_DELETE, catalog_id, 0, false, "deleting catalog", diag);
}

int vix_store_changes(vix_store *store, int64_t catalog_id, int64_t since_generation,
                      int (*upserted)(void *user, const vix_entity *entity),
                      int (*deleted)(void *user, int64_t rowid), void *user, erd_diag *diag)
{
    if (!store || !upserted || !deleted)
        return erd_fail(diag, ERD_EINVAL, "no store or callback");
    vix__stmt s = {0};
    int err = vix__stmt_acquire(store, VIX__ST_DELETED_LIST, &s, diag);
    if (err)
        return err;
    sqlite3_bind_int64(s.st, 1, catalog_id);
    sqlite3_bind_int64(s.st, 2, since_generation);
    for (;;) {
        int rc = sqlite3_step(s.st);
        if (rc == SQLITE_DONE)
            break;
        if (rc != SQLITE_ROW) {
            err = vix__db_fail(store, diag, rc, "reading deletions");
            break;
        }
        err = deleted(user, sqlite3_column_int64(s.st, 0));
        if (err)
            break;
    }
    vix__stmt_release(&s);
    if (err)
        return err;
    err = vix__stmt_acquire(store, VIX__ST_CHANGED_LIST, &s, diag);
    if (err)
        return err;
    sqlite3_bind_int64(s.st, 1, catalog_id);
    sqlite3_bind_int64(s.st, 2, since_generation);
    bool any;
    err = entity_rows(store, s.st, upserted, user, &any, diag);
    vix__stmt_release(&s);
    return err;
}

int vix_store_pending(vix_store *store, int64_t catalog_id, int64_t since_generation,
                      int64_t *ret_count, erd_diag *diag)
{
    return count_row(store, VIX__ST_PENDING_COUNT, catalog_id, &since_generation, ret_count,
                     "counting pending changes", diag);
}

int vix_store_backup(vix_store *store, const char *dst_path, erd_diag *diag)
{
    if (!store || !dst_path)
        return erd_fail(diag, ERD_EINVAL, "no store or destination");
    sqlite3 *dst = NULL;
    int rc = sqlite3_open_v2(dst_path, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    int err = ERD_OK;
    if (rc != SQLITE_OK) {
        err = erd_fail(diag, ERD_EIO, "creating %s: %s", dst_path,
                       dst ? sqlite3_errmsg(dst) : sqlite3_errstr(rc));
        goto out;
    }
    /* One step of -1 pages copies the whole file under one read
     * transaction: the copy is one committed state, whatever writers do. */
    sqlite3_backup *b = sqlite3_backup_init(dst, "main", store->db, "main");
    if (!b) {
        err = erd_fail(diag, ERD_EDB, "backup of %s: %s", store->path, sqlite3_errmsg(dst));
        goto out;
    }
    rc = sqlite3_backup_step(b, -1);
    int frc = sqlite3_backup_finish(b);
    if (rc != SQLITE_DONE || frc != SQLITE_OK) {
        err = vix__db_fail(store, diag, rc != SQLITE_DONE ? rc : frc, "backup");
        goto out;
    }
    /* a single file, no -wal beside it, so the copy can travel alone */
    rc = sqlite3_exec(dst, "PRAGMA journal_mode=DELETE", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        err = erd_fail(diag, ERD_EDB, "backup %s: %s", dst_path, sqlite3_errmsg(dst));
out:
    sqlite3_close_v2(dst);
    return err;
}

int vix_entity_texts(const vix_entity *e, int (*cb)(void *user, const char *text), void *user)
{
    int stop = cb(user, e->name);
    if (stop || !e->aliases_json)
        return stop;
    json_t *aliases = json_loads(e->aliases_json, 0, NULL);
    size_t i;
    json_t *a;
    json_array_foreach(aliases, i, a)
    {
        if (json_is_string(a) && (stop = cb(user, json_string_value(a))))
            break;
    }
    json_decref(aliases);
    return stop;
}
