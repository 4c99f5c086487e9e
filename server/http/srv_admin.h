/* erd's admin API without any I/O: each operation takes what the HTTP layer
 * parsed from the path and body and returns a status and a JSON body, so it
 * can be tested and reused by the CLI's semantics.  Every write is committed
 * in SQLite before the operation returns, and the resolver is synced so the
 * change is served when the caller replies.
 *
 *   GET    /v1/catalogs                      list
 *   POST   /v1/catalogs {"name"}             create (201; 409 when it exists)
 *   GET    /v1/catalogs/{c}                  describe
 *   DELETE /v1/catalogs/{c}                  delete (with its index)
 *   POST   /v1/catalogs/{c}/entities         upsert one entity record
 *   GET    /v1/catalogs/{c}/entities/{id}    one entity
 *   DELETE /v1/catalogs/{c}/entities/{id}    delete one entity
 *   POST   /v1/catalogs/{c}/bulk             JSON lines, streamed (srv_admin_bulk_*)
 *   POST   /v1/catalogs/{c}/rebuild          start a background rebuild (202)
 *   GET    /v1/catalogs/{c}/rebuild          its status */
#ifndef SRV_ADMIN_H
#define SRV_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "index/vix_resolve.h"
#include "proto/erd_error.h"

/* Per-line errors a bulk reply lists; the rest are only counted. */
#define SRV_BULK_MAX_ERRORS 100
/* Longest line a bulk upload may hold (one entity record). */
#define SRV_BULK_MAX_LINE (1u << 20)

typedef struct srv_admin_ctx {
    const char *db;         /* the store writes go to */
    vix_resolver *resolver; /* synced after each write; may be NULL (CLI) */
    bool read_only;         /* a replica serving a snapshot: writes are refused */
} srv_admin_ctx;

enum srv_admin_op {
    SRV_ADMIN_NONE, /* a route of no admin operation; srv_admin_run refuses it */
    SRV_ADMIN_LIST,
    SRV_ADMIN_CREATE,
    SRV_ADMIN_DESCRIBE,
    SRV_ADMIN_DELETE,
    SRV_ADMIN_UPSERT,
    SRV_ADMIN_GET_ENTITY,
    SRV_ADMIN_DELETE_ENTITY,
    SRV_ADMIN_REBUILD,
    SRV_ADMIN_REBUILD_STATUS,
};

/* Runs op on catalog / id (NULL when the route has none) with the request
 * body.  On success *ret_status is the HTTP status and *ret_json a malloc'd
 * body (release with free()).  Failures return an erd code with diag:
 * ERD_ENOCATALOG, ERD_ENOTFOUND, ERD_EEXIST, ERD_EINVAL / ERD_EJSON /
 * ERD_EPARSE for bad input (nothing changes), ERD_EFORBIDDEN on a replica,
 * ERD_EBUSY when a rebuild is already running, ERD_EDB / ERD_EIO. */
int srv_admin_run(const srv_admin_ctx *ctx, enum srv_admin_op op, const char *catalog,
                  const char *id, const char *body, size_t len, unsigned *ret_status,
                  char **ret_json, size_t *ret_len, erd_diag *diag);

/* A streamed JSON-lines upload: lines are parsed and committed as they
 * arrive (one transaction per fed chunk), memory stays bounded by one line,
 * and a bad line is reported with its number while the others land. */
typedef struct srv_bulk srv_bulk;

int srv_bulk_begin(const srv_admin_ctx *ctx, const char *catalog, srv_bulk **ret, erd_diag *diag);
/* ERD_OK, or a store failure that ends the upload (lines committed before
 * it stay committed; finish reports how many). */
int srv_bulk_feed(srv_bulk *bulk, const char *data, size_t n, erd_diag *diag);
/* Takes the last line (without a newline), commits, syncs the resolver and
 * writes the summary {"lines","upserted","created","failed","errors":[...],
 * "generation"}.  A failure says how many lines were committed before it. */
int srv_bulk_finish(srv_bulk *bulk, unsigned *ret_status, char **ret_json, size_t *ret_len,
                    erd_diag *diag);
void srv_bulk_destroy(srv_bulk *bulk); /* accepts NULL */

#endif
