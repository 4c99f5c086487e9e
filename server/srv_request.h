/* The wire format of erd's HTTP API, without any I/O: parsing a resolve
 * request into pool memory and serialising responses.  Kept free of sockets
 * and globals so it can be unit-tested and fuzzed directly.
 *
 * Request:  {"catalog":"video","hypotheses":[{"text":"...","score":-123}],"k":5}
 *           or {"catalog":"video","text":"..."} for 1-best clients.
 * Response: {"results":[{"id":"...","name":"...","score":0.93}, ...]}
 * Error:    {"error":{"code":"<wire code>","message":"..."}} */
#ifndef SRV_REQUEST_H
#define SRV_REQUEST_H

#include <stdbool.h>
#include <stddef.h>

#include "config/cfg.h"
#include "index/vix_resolve.h"
#include "proto/erd_error.h"
#include "server/srv_pool.h"

/* Longest catalog name accepted; real names are short identifiers. */
#define SRV_MAX_CATALOG_BYTES 256

typedef struct srv_limits {
    size_t max_hypotheses; /* hypotheses per request, >= 1 */
    size_t max_text_bytes; /* UTF-8 bytes per hypothesis text */
    size_t default_k;      /* k when the request gives none */
    size_t max_k;          /* largest k accepted */
} srv_limits;

typedef struct srv_resolve_req {
    const char *catalog;   /* NUL-terminated, in the pool */
    vix_hypothesis *hyps;  /* n_hyps entries, texts in the pool, best first */
    size_t n_hyps;
    size_t k;
    double min_score;      /* "match" needs the top score at least this; -1: not given */
    bool explain;          /* answer with each result's explanation */
} srv_resolve_req;

/* Limits from the configuration (non-positive values become 1). */
void srv_limits_from_config(const cfg_config *cfg, srv_limits *ret);

/* Parses and validates a resolve request body.  Everything in *ret lives in
 * pool; nothing else is retained.  Errors (diag names the offending field):
 *   ERD_EJSON     body is not JSON
 *   ERD_EUTF8     body holds invalid UTF-8 (or an unpaired \u surrogate)
 *   ERD_EINVAL    wrong shape or type, missing catalog, bad k, both or
 *                 neither of text/hypotheses, \u0000 in a string
 *   ERD_EEMPTY    no hypotheses, or a text that is empty or only whitespace
 *   ERD_ETOOLONG  a text over max_text_bytes, too many hypotheses, catalog
 *                 name over SRV_MAX_CATALOG_BYTES
 *   ERD_ENOMEM    the pool is exhausted */
int srv_parse_resolve(srv_pool *pool, const char *body, size_t len, const srv_limits *limits,
                      srv_resolve_req *ret, erd_diag *diag);

/* Serialises results[0..n) as {"results":[...]} into a malloc'd,
 * NUL-terminated buffer (release with free()); *ret_len excludes the NUL.
 * ERD_EINVAL when a result string is not valid UTF-8, ERD_ENOMEM. */
int srv_write_results(const vix_result *results, size_t n, char **ret_json, size_t *ret_len,
                      erd_diag *diag);

/* Serialises {"error":{"code":erd_errcode(err),"message":message}} into a
 * malloc'd buffer as above.  message NULL means erd_strerror(err); invalid
 * UTF-8 in message is replaced rather than failing, since this is the path
 * that reports failures.  ERD_ENOMEM only. */
/* srv_write_results with "match": true or false after the list (match 1
 * or 0; -1 leaves it out, as srv_write_results does). */
int srv_write_answer_plain(const vix_result *results, size_t n, int match, char **ret_json,
                           size_t *ret_len, erd_diag *diag);

int srv_write_error(int err, const char *message, char **ret_json, size_t *ret_len);

/* Writes s[0..len) JSON-escaped (without quotes) into out[0..cap), always
 * NUL-terminating; invalid UTF-8 becomes U+FFFD and output is cut at a
 * character boundary when it does not fit.  Returns the bytes written. */
size_t srv_json_escape(char *out, size_t cap, const char *s, size_t len);

/* Decodes %XX escapes of a request path (or query) in place, as
 * libmicrohttpd does, and returns the decoded length.  *ret_control is set
 * when the result holds a NUL or other control byte (0x00-0x1f, 0x7f),
 * which no route, catalog or entity id may contain: "/x%00y" must not
 * become "/x". */
size_t srv_http_unescape(char *s, bool *ret_control);

/* Checks a request's body framing as its headers state it, before a byte
 * of the body is read (RFC 9112 section 6): content_length[0..n_cl) and
 * transfer_encoding[0..n_te) are the values of every such header, in order.
 *   ERD_EBADREQUEST   more than one Content-Length (or a list), one that is
 *                     not a decimal number, both Content-Length and
 *                     Transfer-Encoding, "chunked" twice or not last
 *   ERD_EUNSUPPORTED  a transfer coding other than chunked (gzip, identity,
 *                     ...), which erd does not decode */
int srv_check_framing(const char *const *content_length, size_t n_cl,
                      const char *const *transfer_encoding, size_t n_te, erd_diag *diag);

#endif
