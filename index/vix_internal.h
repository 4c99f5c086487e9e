/* Shared inside index/: the store handle and its cached statements
 * (vix_store.c, vix_import.c) and small helpers.  Not part of the public
 * interface. */
#ifndef VIX_INTERNAL_H
#define VIX_INTERNAL_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "index/vix_store.h"

#define VIX_SCHEMA_VERSION 3

/* The widest vector instruction set this CPU runs, capped by
 * vix_simd_limit, for the hand-batched kernels of vix_index.c and
 * vix_rerank.c (FAISS's own are generic).  Ordered: each includes those
 * before it. */
enum vix__isa {
    VIX__ISA_BASE,
    VIX__ISA_AVX2,
    VIX__ISA_AVX512,
    VIX__ISA_AVX512_BF16,
    VIX__ISA_AVX512_VNNI /* bf16 and VNNI (vpdpbusd) with AVX512BW */
};
enum vix__isa vix__isa(void);

enum vix__stmt_id {
    VIX__ST_CATALOG_INSERT,
    VIX__ST_CATALOG_FIND,
    VIX__ST_CATALOG_LIST,
    VIX__ST_CATALOG_LIST_BRIEF,
    VIX__ST_CATALOG_GENERATION,
    VIX__ST_CATALOG_BUMP,
    VIX__ST_ENTITY_LIST,
    VIX__ST_ENTITY_GET,
    VIX__ST_ENTITY_COUNT,
    VIX__ST_ENTITY_UPSERT,
    VIX__ST_ENTITY_DELETE,
    VIX__ST_TOMBSTONE_PUT,
    VIX__ST_CHANGED_LIST,
    VIX__ST_DELETED_LIST,
    VIX__ST_PENDING_COUNT,
    VIX__ST_CATALOG_DELETE,
    VIX__ST_PHONEMES_GET,
    VIX__ST_PHONEMES_PUT,
    VIX__ST_META_PUT,
    VIX__ST_META_GET,
    VIX__ST_COUNT
};

struct vix_store {
    sqlite3 *db;
    bool readonly;
    char *path;
    sqlite3_stmt *stmt[VIX__ST_COUNT];
};

/* A cached statement, or a private copy of it when the cached one is still
 * stepping (a foreach callback re-entering the store with the same query). */
typedef struct vix__stmt {
    sqlite3_stmt *st;
    bool transient;
} vix__stmt;

int vix__stmt_acquire(vix_store *store, enum vix__stmt_id id, vix__stmt *ret, erd_diag *diag);
void vix__stmt_release(vix__stmt *s);

/* Maps a failed SQLite call to an erd code and records "what: sqlite text";
 * call right after the failing call, before anything else touches the db. */
int vix__db_fail(vix_store *store, erd_diag *diag, int rc, const char *what);

/* Runs an SQL text without results. */
int vix__exec(vix_store *store, const char *sql, erd_diag *diag);
/* ERD_EINVAL naming the rule when name is no valid catalog name. */
int vix__catalog_name_check(const char *name, erd_diag *diag);

/* Inserts the catalog when absent (name must already be valid). */
int vix__catalog_ensure(vix_store *store, const char *name, int64_t *ret_id, erd_diag *diag);

/* Grows *p (elements of elem bytes, *cap of them) to hold at least need,
 * doubling; ERD_ENOMEM leaves it as it was. */
static inline int vix__grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return ERD_OK;
    size_t ncap = *cap ? *cap : 16;
    while (ncap < need)
        ncap *= 2;
    void *np = realloc(*p, ncap * elem);
    if (!np)
        return ERD_ENOMEM;
    *p = np;
    *cap = ncap;
    return ERD_OK;
}

#endif
