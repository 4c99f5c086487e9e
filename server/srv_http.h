/* erd's HTTP front end on libmicrohttpd.
 *
 *   POST /v1/resolve  resolve n-best hypotheses (see srv_request.h)
 *   GET  /healthz     {"status":"ok","catalogs":[...]}
 *
 * Every reply is application/json; every failure is
 * {"error":{"code","message"}} with the status erd_http_status() gives. */
#ifndef SRV_HTTP_H
#define SRV_HTTP_H

#include <stdint.h>

#include "config/cfg.h"
#include "index/vix_resolve.h"
#include "proto/erd_error.h"

typedef struct srv_http srv_http;

/* Starts serving on cfg->listen ("host:port", "[v6addr]:port"; an empty host
 * means 127.0.0.1; port 0 picks a free one) with worker threads already
 * running when it returns.  cfg and resolver must outlive the server.
 * Signals are not touched: callers that want them handled by sigwait must
 * block them before calling, so the workers inherit the mask.
 * ERD_ECONFIG for an unusable listen address, ERD_EIO when the daemon cannot
 * start (port in use, ...), ERD_ENOMEM. */
int srv_http_start(const cfg_config *cfg, vix_resolver *resolver, srv_http **ret, erd_diag *diag);

/* Port actually bound (useful after port 0). */
uint16_t srv_http_port(const srv_http *http);

/* Base URL of the server, e.g. "http://127.0.0.1:8080"; owned by http. */
const char *srv_http_url(const srv_http *http);

/* Stops accepting, lets in-flight requests finish (bounded by the request
 * timeout), then shuts the daemon down and frees http.  Accepts NULL. */
void srv_http_stop(srv_http *http);

/* srv_http_start, then prints "erd: listening on http://HOST:PORT" to
 * stderr and blocks until SIGINT or SIGTERM, then srv_http_stop.  Returns
 * ERD_OK after a signal-initiated shutdown. */
int srv_http_run(const cfg_config *cfg, vix_resolver *resolver, erd_diag *diag);

#endif
