/* Bearer-token checks for erd's HTTP routes, without I/O so they can be
 * unit-tested and fuzzed.  Every route belongs to one class:
 *
 *   PUBLIC    no token (liveness, readiness)
 *   RESOLVE   resolve_token or admin_token when resolve_token is set; open
 *             otherwise
 *   METRICS   metrics_token or admin_token; 403 when neither is configured
 *   ADMIN     admin_token; 403 when it is not configured
 *
 * Tokens are compared in time that depends only on the configured token's
 * length, never on how much of it a guess got right. */
#ifndef SRV_AUTH_H
#define SRV_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "proto/erd_error.h"

typedef enum srv_auth_class {
    SRV_AUTH_PUBLIC,
    SRV_AUTH_RESOLVE,
    SRV_AUTH_METRICS,
    SRV_AUTH_ADMIN,
} srv_auth_class;

/* The tokens in force; empty strings (or NULL) mean "not configured". */
typedef struct srv_auth_tokens {
    const char *resolve;
    const char *admin;
    const char *metrics;
} srv_auth_tokens;

/* Longest Authorization header value looked at; longer ones are refused. */
#define SRV_AUTH_MAX_HEADER 1024

/* Finds the credentials in an Authorization header value: "Bearer" (any
 * case), one or more spaces or tabs, a b64token (RFC 6750), optional
 * trailing whitespace.  *ret_token points into header.  ERD_EUNAUTHORIZED
 * for any other shape (diag says which). */
int srv_auth_parse_bearer(const char *header, size_t len, const char **ret_token, size_t *ret_len,
                          erd_diag *diag);

/* Whether given[0..given_len) equals the NUL-terminated expected, in time
 * that depends only on strlen(expected).  False when expected is empty. */
bool srv_auth_token_equal(const char *given, size_t given_len, const char *expected);

/* Decides a request of class cls carrying the Authorization header value
 * authorization (NULL when absent): ERD_OK, ERD_EUNAUTHORIZED (missing or
 * wrong token; reply 401 with WWW-Authenticate) or ERD_EFORBIDDEN (the
 * class needs a token and none is configured).  diag gets a message that
 * never contains a token. */
int srv_auth_check(srv_auth_class cls, const char *authorization, const srv_auth_tokens *tokens,
                   erd_diag *diag);

/* "public", "resolve", "metrics", "admin". */
const char *srv_auth_class_name(srv_auth_class cls);

#endif
