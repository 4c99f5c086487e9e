/* erd error codes: the one table every module returns from and the server
 * maps to HTTP.  Functions that can fail return ERD_OK (0) or a negative
 * code from here; a human-readable detail travels in an optional erd_diag. */
#ifndef ERD_ERROR_H
#define ERD_ERROR_H

#include <stddef.h>

/* X(NAME, value, http_status, wire_code, default_message) */
#define ERD_ERROR_TABLE(X)                                                        \
    X(OK, 0, 200, "ok", "success")                                                \
    X(ENOMEM, -1, 503, "out_of_memory", "out of memory")                          \
    X(EINVAL, -2, 400, "invalid_argument", "invalid argument")                    \
    X(EJSON, -3, 400, "malformed_json", "malformed JSON")                         \
    X(EUTF8, -4, 400, "invalid_utf8", "text is not valid UTF-8")                  \
    X(ETOOLONG, -5, 400, "too_long", "value exceeds its limit")                   \
    X(ENOTFOUND, -6, 404, "not_found", "not found")                               \
    X(ENOCATALOG, -7, 404, "unknown_catalog", "unknown catalog")                  \
    X(ENOINDEX, -8, 409, "index_not_built", "catalog has no index: run erd build") \
    X(EIO, -9, 500, "io_error", "input/output error")                            \
    X(EDB, -10, 500, "database_error", "database error")                         \
    X(EFAISS, -11, 500, "index_error", "vector index error")                     \
    X(EG2P, -12, 500, "g2p_error", "grapheme-to-phoneme conversion failed")      \
    X(ECORRUPT, -13, 500, "corrupt", "file is corrupt or truncated")             \
    X(EMISMATCH, -14, 409, "mismatch", "data does not match its index or model") \
    X(EPARSE, -15, 400, "parse_error", "input could not be parsed")              \
    X(EEMPTY, -16, 400, "empty", "value is empty")                               \
    X(EMETHOD, -17, 405, "method_not_allowed", "method not allowed")             \
    X(ETOOLARGE, -18, 413, "body_too_large", "request body too large")           \
    X(EBUSY, -19, 503, "busy", "server busy")                                    \
    X(EINTERNAL, -20, 500, "internal_error", "internal error")                   \
    X(EEXIST, -21, 409, "exists", "already exists")                              \
    X(EUNAUTHORIZED, -22, 401, "unauthorized", "missing or invalid credentials") \
    X(EFORBIDDEN, -23, 403, "forbidden", "not allowed")                          \
    X(ECONFIG, -24, 400, "invalid_config", "invalid configuration")              \
    X(EBADREQUEST, -25, 400, "bad_request", "malformed HTTP request")            \
    X(EUNSUPPORTED, -26, 501, "not_implemented", "not implemented")

enum erd_error {
#define ERD__ENUM(name, value, status, code, msg) ERD_##name = (value),
    ERD_ERROR_TABLE(ERD__ENUM)
#undef ERD__ENUM
};

/* Default English text for a code; never NULL. */
const char *erd_strerror(int err);
/* Stable machine-readable code used on the wire ("unknown_catalog"); never NULL. */
const char *erd_errcode(int err);
/* HTTP status for a code (500 for codes outside the table). */
int erd_http_status(int err);

/* Optional detail for a failure, filled by the function that failed.  Callers
 * may pass NULL when they only need the code. */
typedef struct erd_diag {
    int code;
    char msg[256];
} erd_diag;

/* Records err and a printf-style message in diag (if non-NULL) and returns err,
 * so call sites can write `return erd_fail(diag, ERD_EINVAL, "...", ...)`. */
int erd_fail(erd_diag *diag, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Message for a failure: the diag text when it carries one for err, else the
 * table's default. */
const char *erd_diag_message(const erd_diag *diag, int err);

#endif
