/* erd's HTTP front end on libmicrohttpd.
 *
 *   POST /v1/resolve  resolve n-best hypotheses (see srv_request.h)
 *   GET  /healthz     liveness: {"status":"ok","catalogs":[...]}
 *   GET  /readyz      readiness: 200 {"status":"ready",...} once a catalog
 *                     index is loaded, else 503 {"status":"not_ready",...}
 *   GET  /metrics     Prometheus text (srv_metrics.h); needs metrics_token
 *                     or admin_token (srv_auth.h)
 *   /v1/catalogs...   the admin API (srv_admin.h); needs admin_token
 *
 * The route table in srv_http.c says per route which methods it takes and
 * which token class guards it.  Every failure is {"error":{"code","message"}}
 * with the status erd_http_status() gives; 401s carry WWW-Authenticate.
 * proto/openapi.json describes all of it. */
#ifndef SRV_HTTP_H
#define SRV_HTTP_H

#include <stdbool.h>
#include <stdint.h>

#include "config/cfg.h"
#include "index/vix_resolve.h"
#include "proto/erd_error.h"

typedef struct srv_http srv_http;

/* Where a reload (SIGHUP, srv_http_reload) gets its configuration: the same
 * cfg_load sequence as start-up. */
typedef struct srv_http_opts {
    const char *config_path;       /* NULL: defaults and environment only */
    const char *const *overrides;  /* NULL-ended key, value pairs (command-line flags) */
    bool read_only;                /* a replica: admin writes answer 403 */
    /* srv_http_run calls tick every sync_interval_ms from its own thread
     * (erd serve syncs the resolver there); NULL for none. */
    void (*tick)(void *user);
    void *tick_user;
} srv_http_opts;

/* Starts serving on cfg->listen ("host:port", "[v6addr]:port"; an empty host
 * means 127.0.0.1; port 0 picks a free one) with worker threads already
 * running when it returns.  cfg is copied; opts (may be NULL: reloads then
 * see defaults and environment only) and resolver must outlive the server.
 * Signals are not touched: callers that want them handled by sigwait must
 * block them before calling, so the workers inherit the mask.
 * ERD_ECONFIG for an unusable listen address, ERD_EIO when the daemon cannot
 * start (port in use, ...), ERD_ENOMEM. */
int srv_http_start(const cfg_config *cfg, const srv_http_opts *opts, vix_resolver *resolver,
                   srv_http **ret, erd_diag *diag);

/* Whether cfg's listen address can be bound now, checked before anything
 * slow is loaded; ERD_EIO naming the port when it is taken, ERD_ECONFIG
 * for an unusable address.  Binds nothing it keeps. */
int srv_http_check_listen(const char *listen, erd_diag *diag);

/* Port actually bound (useful after port 0). */
uint16_t srv_http_port(const srv_http *http);

/* Base URL of the server, e.g. "http://127.0.0.1:8080"; owned by http. */
const char *srv_http_url(const srv_http *http);

/* Builds a new configuration as at start-up, validates it and publishes it
 * atomically: requests already running finish under the old one.  Only
 * reloadable keys (cfg_reloadable) change; others that differ are named in
 * a log line and keep their running values.  On failure nothing changes and
 * the reason is logged and returned.  Call from one thread at a time. */
int srv_http_reload(srv_http *http, erd_diag *diag);

/* Stops accepting, lets in-flight requests finish (bounded by the request
 * timeout), then shuts the daemon down and frees http.  Accepts NULL. */
void srv_http_stop(srv_http *http);

/* srv_http_start, then prints "erd: listening on http://HOST:PORT" to
 * stderr and blocks: SIGHUP reloads (srv_http_reload), SIGINT or SIGTERM
 * stops (srv_http_stop).  Returns ERD_OK after a signal-initiated shutdown. */
int srv_http_run(const cfg_config *cfg, const srv_http_opts *opts, vix_resolver *resolver,
                 erd_diag *diag);

#endif
