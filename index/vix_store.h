/* The catalog store: one SQLite file (WAL) holding catalogs as namespaces,
 * their entities with aliases and attributes, phonemes cached per text, and
 * the metadata of each catalog's vector index.
 *
 * A vix_store handle wraps one SQLite connection and is not thread-safe:
 * threads open their own handles on the same file. */
#ifndef VIX_STORE_H
#define VIX_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "proto/erd_error.h"

typedef struct vix_store vix_store;

enum {
    VIX_STORE_READONLY = 1u << 0, /* open an existing file read-only */
    /* For a pass over a whole catalog (a build, its phoneme workers): pages
     * read through a memory map, as far as SQLite maps (2 GB), not with a
     * read call each; a 1M-entity build's cached phoneme pass took 36 %
     * less time. */
    VIX_STORE_SCAN = 1u << 1,
};

/* Creates the file and schema when absent (unless READONLY).  *ret set only
 * on success. */
int vix_store_open(const char *path, unsigned flags, vix_store **ret, erd_diag *diag);
void vix_store_close(vix_store *store); /* accepts NULL */
const char *vix_store_path(const vix_store *store);

/* Explicit transactions, for callers batching many writes (phoneme cache). */
int vix_store_begin(vix_store *store, erd_diag *diag);
/* A read transaction: every read until commit or rollback sees one
 * snapshot, while other connections keep writing. */
int vix_store_begin_read(vix_store *store, erd_diag *diag);
int vix_store_commit(vix_store *store, erd_diag *diag);
void vix_store_rollback(vix_store *store);

/* Catalog names: 1..64 bytes of [a-z0-9_.-], starting with a letter or digit. */
bool vix_catalog_name_valid(const char *name);

/* ERD_EINVAL for a bad name; an existing catalog is returned as is. */
int vix_store_catalog_create(vix_store *store, const char *name, int64_t *ret_id, erd_diag *diag);
/* ERD_ENOCATALOG when absent. */
int vix_store_catalog_find(vix_store *store, const char *name, int64_t *ret_id, erd_diag *diag);

typedef struct vix_catalog_info {
    int64_t id;
    const char *name;
    int64_t entity_count; /* -1 unless listed with VIX_STORE_LIST_COUNTS */
    int64_t generation; /* bumped by every committed change to its entities */
    int64_t created_at; /* unix seconds */
} vix_catalog_info;

/* Counting a catalog's entities reads its whole entity index (tens of ms at
 * 1M entities): a server syncing every half second must not ask for it. */
#define VIX_STORE_LIST_COUNTS 1u

/* Calls cb for each catalog in name order; a non-zero return from cb stops
 * the walk and is returned.  Pointers in info are valid during the call only. */
int vix_store_catalog_foreach(vix_store *store, unsigned flags,
                              int (*cb)(void *user, const vix_catalog_info *info), void *user,
                              erd_diag *diag);
int vix_store_catalog_generation(vix_store *store, int64_t catalog_id, int64_t *ret_generation,
                                 erd_diag *diag);

/* ---- entities ---- */

typedef struct vix_entity {
    int64_t rowid;           /* stable across re-imports of the same id; the FAISS id */
    const char *ext_id;      /* the catalog's own id */
    const char *name;
    const char *aliases_json; /* JSON array of strings */
    const char *attrs_json;   /* JSON object */
} vix_entity;

/* Calls cb for each entity of a catalog in rowid order; pointers valid during
 * the call only; non-zero from cb stops and is returned. */
int vix_store_entity_foreach(vix_store *store, int64_t catalog_id,
                             int (*cb)(void *user, const vix_entity *entity), void *user,
                             erd_diag *diag);
/* One entity by its external id; ERD_ENOTFOUND when absent.  cb as above. */
int vix_store_entity_get(vix_store *store, int64_t catalog_id, const char *ext_id,
                         int (*cb)(void *user, const vix_entity *entity), void *user,
                         erd_diag *diag);
int vix_store_entity_count(vix_store *store, int64_t catalog_id, int64_t *ret_count, erd_diag *diag);

/* Calls cb with the entity's name, then each of its aliases (the string
 * elements of aliases_json), in order; a non-zero return from cb stops the
 * walk and is returned. */
int vix_entity_texts(const vix_entity *entity, int (*cb)(void *user, const char *text),
                     void *user);

/* ---- live changes ----
 * Writers: vix_store_begin, any number of upserts and deletes, then
 * vix_store_catalog_bump and vix_store_commit.  Rows written in the
 * transaction carry the generation the bump gives the catalog. */

int vix_store_catalog_bump(vix_store *store, int64_t catalog_id, erd_diag *diag);
/* Deletes the catalog with its entities and index metadata (the index file
 * is the caller's to remove). */
int vix_store_catalog_delete(vix_store *store, int64_t catalog_id, erd_diag *diag);
/* ERD_ENOTFOUND when absent; leaves a tombstone so servers drop it. */
int vix_store_entity_delete(vix_store *store, int64_t catalog_id, const char *ext_id,
                            int64_t *ret_rowid, erd_diag *diag);
/* One JSON record as vix_store_import takes it ({"id","name","aliases"?,
 * "attrs"?}); line only labels the error ("line N: ...", ERD_EPARSE), 0
 * for none.  *ret_created (may be NULL) says whether the id was new. */
int vix_store_upsert_json(vix_store *store, int64_t catalog_id, const char *json, size_t len,
                          uint64_t line, bool *ret_created, erd_diag *diag);
/* Calls deleted for each rowid deleted after since_generation, then
 * upserted for each entity written after it (rowid order); a non-zero
 * return from a callback stops and is returned.  Run inside a read
 * transaction (vix_store_begin on a read-only handle) for one snapshot. */
int vix_store_changes(vix_store *store, int64_t catalog_id, int64_t since_generation,
                      int (*upserted)(void *user, const vix_entity *entity),
                      int (*deleted)(void *user, int64_t rowid), void *user, erd_diag *diag);
/* Entities written plus entities deleted after since_generation. */
int vix_store_pending(vix_store *store, int64_t catalog_id, int64_t since_generation,
                      int64_t *ret_count, erd_diag *diag);
/* One consistent copy of the whole database into dst_path (a new file, no
 * WAL), through SQLite's backup API. */
int vix_store_backup(vix_store *store, const char *dst_path, erd_diag *diag);

/* ---- import ---- */

enum vix_import_format {
    VIX_FORMAT_AUTO = 0, /* by the first non-blank byte: '{' is JSON lines, else CSV */
    VIX_FORMAT_JSONL,
    VIX_FORMAT_CSV,
};

typedef struct vix_import_opts {
    enum vix_import_format format;
    /* CSV column names; defaults "id", "name", "aliases" (aliases split on '|').
     * Every other CSV column becomes a string attribute. */
    const char *csv_id_column;
    const char *csv_name_column;
    const char *csv_aliases_column;
    char csv_delimiter; /* field separator; 0 = ',' */
    /* Called about every 1,000 lines and at the end; total_bytes is 0 when unknown. */
    void (*progress)(void *user, uint64_t lines, uint64_t bytes, uint64_t total_bytes);
    void *progress_user;
    uint64_t total_bytes;
} vix_import_opts;

typedef struct vix_import_result {
    uint64_t lines;    /* non-blank lines (records) read */
    uint64_t inserted; /* new ids */
    uint64_t updated;  /* ids that existed and were replaced */
} vix_import_result;

/* Imports entities into catalog (created when absent) in one transaction:
 * either every record lands or none does.  A record is
 * {"id": string|integer, "name": non-empty string, "aliases": [strings]?,
 * "attrs": object?}; an id seen again replaces the earlier entity and keeps
 * its rowid.  A bad record fails the import with ERD_EPARSE and a message
 * "line N: ..." in diag.  *ret (may be NULL) set only on success. */
int vix_store_import(vix_store *store, const char *catalog, FILE *in, const vix_import_opts *opts,
                     vix_import_result *ret, erd_diag *diag);

/* ---- phoneme cache (keyed by G2P id + normalised text) ---- */

/* ERD_ENOTFOUND when not cached; ERD_ETOOLONG when out is too small. */
int vix_store_phonemes_get(vix_store *store, const char *g2p_id, const char *text, char *out,
                           size_t outcap);
int vix_store_phonemes_put(vix_store *store, const char *g2p_id, const char *text, const char *ipa,
                           erd_diag *diag);

/* ---- index metadata ---- */

typedef struct vix_index_meta {
    char encoder_id[128];
    char factory[128];
    char path[1024];          /* index file */
    int64_t dim;
    int64_t vector_count;
    int64_t entity_count;
    int64_t catalog_generation; /* catalog generation the index was built from */
    int64_t built_at;           /* unix seconds */
    double build_seconds;
    char g2p_voice[64];         /* espeak-ng voice of its phonemes; "" = not recorded */
    void *encoder_state;        /* owned by the struct: vix_index_meta_clear frees it */
    size_t encoder_state_len;
} vix_index_meta;

int vix_store_meta_put(vix_store *store, int64_t catalog_id, const vix_index_meta *meta,
                       erd_diag *diag);
/* ERD_ENOINDEX when the catalog has never been built.  *ret filled only on
 * success; release with vix_index_meta_clear. */
int vix_store_meta_get(vix_store *store, int64_t catalog_id, vix_index_meta *ret, erd_diag *diag);
void vix_index_meta_clear(vix_index_meta *meta); /* accepts NULL */

#endif
