#include "server/http/srv_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "server/http/srv_admin.h"
#include "server/http/srv_auth.h"
#include "server/http/srv_conn.h"
#include "server/http/srv_console.h"
#include "server/http/srv_explain.h"
#include "server/http/srv_hint.h"
#include "server/http/srv_metrics.h"
#include "server/http/srv_pool.h"
#include "server/http/srv_request.h"
#include "index/vix_store.h"

#define SRV__JSON "application/json"
#define SRV__MAX_ID 64
#define SRV__MAX_LOG_PATH 256

struct srv__req;
typedef enum MHD_Result (*srv__handler)(srv_http *h, struct srv__req *r, struct MHD_Connection *conn);

/* One row per endpoint: what it is called (a "*" stands for one path
 * segment, handed to the handler), which methods it takes (also the Allow
 * header of its 405), which tokens it needs and whether it reads a body,
 * whole (BODY) or streamed to the handler chunk by chunk (STREAM).  With
 * rest, a final "*" takes the rest of the path, '/' included: an entity id
 * may hold one, sent as %2F, which libmicrohttpd decodes before routing.
 * The path is also the route's metrics label.  Admin routes name their
 * operation per method here too, so no second table re-derives it from the
 * path (SRV_ADMIN_NONE elsewhere). */
enum { SRV__NO_BODY, SRV__BODY, SRV__STREAM };

typedef struct srv__route {
    const char *path;
    const char *methods;
    srv_auth_class auth;
    int body;
    srv__handler handler;
    bool rest;
    /* srv__admin's operation for a GET, and for the route's other method
     * (each admin route has at most one besides GET) */
    enum srv_admin_op get_op, write_op;
} srv__route;

static enum MHD_Result srv__resolve(srv_http *h, struct srv__req *r, struct MHD_Connection *conn);
static enum MHD_Result srv__analyze(srv_http *h, struct srv__req *r, struct MHD_Connection *conn);
static enum MHD_Result srv__healthz(srv_http *h, struct srv__req *r, struct MHD_Connection *conn);
static enum MHD_Result srv__readyz(srv_http *h, struct srv__req *r, struct MHD_Connection *conn);
static enum MHD_Result srv__metrics(srv_http *h, struct srv__req *r, struct MHD_Connection *conn);
static enum MHD_Result srv__admin(srv_http *h, struct srv__req *r, struct MHD_Connection *conn);
static enum MHD_Result srv__bulk(srv_http *h, struct srv__req *r, struct MHD_Connection *conn);
static enum MHD_Result srv__console(srv_http *h, struct srv__req *r, struct MHD_Connection *conn);

static const srv__route srv__routes[] = {
    {"/v1/resolve", "POST", SRV_AUTH_RESOLVE, SRV__BODY, srv__resolve, false,
     SRV_ADMIN_NONE, SRV_ADMIN_NONE},
    {"/v1/analyze", "POST", SRV_AUTH_RESOLVE, SRV__BODY, srv__analyze, false,
     SRV_ADMIN_NONE, SRV_ADMIN_NONE},
    {"/healthz", "GET, HEAD", SRV_AUTH_PUBLIC, SRV__NO_BODY, srv__healthz, false,
     SRV_ADMIN_NONE, SRV_ADMIN_NONE},
    {"/readyz", "GET, HEAD", SRV_AUTH_PUBLIC, SRV__NO_BODY, srv__readyz, false,
     SRV_ADMIN_NONE, SRV_ADMIN_NONE},
    {"/metrics", "GET, HEAD", SRV_AUTH_METRICS, SRV__NO_BODY, srv__metrics, false,
     SRV_ADMIN_NONE, SRV_ADMIN_NONE},
    {"/v1/catalogs", "GET, POST", SRV_AUTH_ADMIN, SRV__BODY, srv__admin, false,
     SRV_ADMIN_LIST, SRV_ADMIN_CREATE},
    {"/v1/catalogs/*", "GET, DELETE", SRV_AUTH_ADMIN, SRV__NO_BODY, srv__admin, false,
     SRV_ADMIN_DESCRIBE, SRV_ADMIN_DELETE},
    {"/v1/catalogs/*/entities", "POST", SRV_AUTH_ADMIN, SRV__BODY, srv__admin, false,
     SRV_ADMIN_UPSERT, SRV_ADMIN_UPSERT},
    {"/v1/catalogs/*/entities/*", "GET, DELETE", SRV_AUTH_ADMIN, SRV__NO_BODY, srv__admin, true,
     SRV_ADMIN_GET_ENTITY, SRV_ADMIN_DELETE_ENTITY},
    {"/v1/catalogs/*/bulk", "POST", SRV_AUTH_ADMIN, SRV__STREAM, srv__bulk, false,
     SRV_ADMIN_NONE, SRV_ADMIN_NONE},
    {"/v1/catalogs/*/rebuild", "GET, POST", SRV_AUTH_ADMIN, SRV__NO_BODY, srv__admin, false,
     SRV_ADMIN_REBUILD_STATUS, SRV_ADMIN_REBUILD},
    /* the console page is public; the calls it makes carry the operator's token */
    {"/", "GET, HEAD", SRV_AUTH_PUBLIC, SRV__NO_BODY, srv__console, false,
     SRV_ADMIN_NONE, SRV_ADMIN_NONE},
    {"/console/*", "GET, HEAD", SRV_AUTH_PUBLIC, SRV__NO_BODY, srv__console, false,
     SRV_ADMIN_NONE, SRV_ADMIN_NONE},
};
#define SRV__N_ROUTES (sizeof srv__routes / sizeof srv__routes[0])
/* Longest path segment a "*" takes: an entity id (1000 bytes) fits. */
#define SRV__MAX_SEG 1024
/* Index of requests to no route, in the metrics' route labels. */
#define SRV__ROUTE_OTHER SRV__N_ROUTES

/* The configuration requests run under.  A reload publishes a new one with
 * one atomic store; a request loads the pointer once and keeps it to the
 * end, so it sees one consistent set of limits and tokens.  Replaced ones
 * are retired and freed once no request is in flight (see srv__reclaim). */
typedef struct srv__live {
    cfg_config cfg;
    srv_limits limits;
    size_t pool_cap;
    srv_auth_tokens tokens; /* point into cfg */
    struct srv__live *retired_next;
} srv__live;

struct srv_http {
    struct MHD_Daemon *daemon;
    vix_resolver *resolver;
    srv_admin_ctx admin;
    char db[sizeof(((cfg_config *)0)->db)]; /* admin.db points here */
    srv_metrics *metrics;
    const srv_http_opts *opts;
    _Atomic(srv__live *) live;
    srv__live *retired;    /* touched only by the thread that reloads and stops */
    uint64_t id_seed;
    atomic_uint_fast64_t id_seq;
    atomic_int inflight;
    /* Client deadlines and per-address limits, copied from the live
     * configuration at start and on reload: the accept and connection
     * callbacks run outside any request, so they cannot pin it. */
    srv_conn_table *conns;
    atomic_uint per_ip, half_open_per_ip, header_s, body_s;
    unsigned half_open_all; /* max_connections / 2 (bound at start) */
    atomic_uint_fast64_t refused; /* at accept, since the cleaner last logged */
    char refused_from[INET6_ADDRSTRLEN]; /* under cleaner_mu */
    pthread_t cleaner;
    bool cleaner_started;
    pthread_mutex_t cleaner_mu;
    pthread_cond_t cleaner_cv;
    bool cleaner_stop;
    uint16_t port;
    char url[160];
};

/* Per-request state; it lives in its own pool, so destroying the pool in the
 * completion callback releases everything the request touched. */
typedef struct srv__req {
    srv_pool *pool;
    const srv__live *live; /* the configuration this request runs under */
    size_t route;          /* index into srv__routes, SRV__ROUTE_OTHER when none */
    char *body;
    size_t body_len, body_cap;
    size_t expected;   /* Content-Length, 0 when absent */
    size_t discarded;  /* bytes read and dropped after the limit was passed */
    bool method_ok;
    bool too_large;
    bool responded;
    bool token_given;  /* an Authorization header was sent */
    int auth_err;      /* ERD_OK, ERD_EUNAUTHORIZED or ERD_EFORBIDDEN */
    unsigned status;
    int err;
    struct timespec t0;
    char id[SRV__MAX_ID + 1];
    char method[16];
    char auth_msg[96];
    char *path;        /* only copied when requests are logged */
    char *seg[2];      /* what the route's "*"s matched, in the pool */
    srv_conn_table *conns;
    srv_conn *conn;    /* the connection's deadline entry; NULL when untracked */
    size_t body_mib;   /* MiB of a streamed upload whose deadline was granted */
    srv_bulk *bulk;    /* a streamed upload in progress; freed on completion */
    int bulk_err;      /* why the upload could not start, or stopped */
    erd_diag bulk_diag;
} srv__req;

static const char *srv__route_labels[SRV__N_ROUTES + 1];
_Static_assert(SRV__N_ROUTES + 1 <= SRV_METRICS_MAX_ROUTES, "too many routes for the metrics");

/* Whether url matches route's path, a "*" taking one non-empty segment (or
 * the rest, as the route says); the segments go to ret_seg (in pool) when it
 * is not NULL. */
static bool srv__route_match(const srv__route *route, const char *url, srv_pool *pool,
                             char **ret_seg)
{
    const char *pattern = route->path;
    size_t n_seg = 0;
    while (*pattern) {
        if (*pattern == '*') {
            size_t len = route->rest && !pattern[1] ? strlen(url) : strcspn(url, "/");
            if (len == 0 || len > SRV__MAX_SEG || n_seg >= 2)
                return false;
            if (ret_seg && !(ret_seg[n_seg] = srv_pool_strndup(pool, url, len)))
                return false;
            n_seg++;
            url += len;
            pattern++;
            continue;
        }
        if (*pattern++ != *url++)
            return false;
    }
    return *url == '\0';
}

/* ---- small helpers ---- */

static uint64_t srv__mix(uint64_t x)
{
    /* splitmix64: a bijection, so distinct sequence numbers give distinct ids */
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static bool srv__id_sane(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (n >= SRV__MAX_ID)
            return false;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == ':'))
            return false;
    }
    return n > 0;
}

static double srv__ms_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

static void srv__mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char line[512];
    int n = vsnprintf(line, sizeof line, fmt, ap);
    if (n < 0)
        return;
    size_t len = strnlen(line, sizeof line);
    while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        line[--len] = '\0';
    /* one fprintf per line so concurrent workers never interleave */
    fprintf(stderr, "erd: http: %s\n", line);
}

static uint64_t srv__ns_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    int64_t ns = (int64_t)(t1.tv_sec - t0->tv_sec) * 1000000000 + (t1.tv_nsec - t0->tv_nsec);
    return ns > 0 ? (uint64_t)ns : 0;
}

static uint64_t srv__deadline(unsigned seconds)
{
    return srv_conn_now_ns() + (uint64_t)seconds * 1000000000u;
}

/* ---- responses ---- */

/* Queues a reply; hname/hvalue add one more header (Allow on 405,
 * WWW-Authenticate on 401) when hname is not NULL. */
static enum MHD_Result srv__send_as(srv__req *r, struct MHD_Connection *conn, unsigned status,
                                    char *body, size_t len, enum MHD_ResponseMemoryMode mode,
                                    const char *content_type, const char *hname, const char *hvalue)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, mode);
    if (!resp) {
        if (mode == MHD_RESPMEM_MUST_FREE)
            free(body);
        return MHD_NO;
    }
    enum MHD_Result ok = MHD_YES;
    if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type) != MHD_YES ||
        MHD_add_response_header(resp, "X-Request-Id", r->id) != MHD_YES ||
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store") != MHD_YES ||
        (hname && MHD_add_response_header(resp, hname, hvalue) != MHD_YES))
        ok = MHD_NO;
    if (ok == MHD_YES)
        ok = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    if (ok == MHD_YES) {
        r->status = status;
        r->responded = true;
        /* From here the idle timeout bounds a client that reads slowly. */
        srv_conn_phase(r->conns, r->conn, SRV_CONN_REPLY, 0);
    }
    return ok;
}

static enum MHD_Result srv__send(srv__req *r, struct MHD_Connection *conn, unsigned status, char *json,
                                 size_t len, enum MHD_ResponseMemoryMode mode)
{
    return srv__send_as(r, conn, status, json, len, mode, SRV__JSON, NULL, NULL);
}

static enum MHD_Result srv__send_error_h(srv__req *r, struct MHD_Connection *conn, int err,
                                         const char *message, const char *hname, const char *hvalue)
{
    static const char oom[] = "{\"error\":{\"code\":\"out_of_memory\",\"message\":\"out of memory\"}}";
    char *json;
    size_t len;
    r->err = err;
    if (srv_write_error(err, message, &json, &len) < 0) {
        r->err = ERD_ENOMEM;
        return srv__send_as(r, conn, (unsigned)erd_http_status(ERD_ENOMEM), (char *)oom,
                            sizeof oom - 1, MHD_RESPMEM_PERSISTENT, SRV__JSON, hname, hvalue);
    }
    return srv__send_as(r, conn, (unsigned)erd_http_status(err), json, len, MHD_RESPMEM_MUST_FREE,
                        SRV__JSON, hname, hvalue);
}

static enum MHD_Result srv__send_error(srv__req *r, struct MHD_Connection *conn, int err,
                                       const char *message)
{
    return srv__send_error_h(r, conn, err, message, NULL, NULL);
}

static enum MHD_Result srv__send_diag(srv__req *r, struct MHD_Connection *conn, int err,
                                      const erd_diag *diag)
{
    return srv__send_error(r, conn, err, erd_diag_message(diag, err));
}

/* ---- routes ---- */

static enum MHD_Result srv__healthz(srv_http *h, srv__req *r, struct MHD_Connection *conn)
{
    size_t n = vix_resolver_catalog_count(h->resolver);
    size_t cap = 48;
    for (size_t i = 0; i < n; i++) {
        const char *name = vix_resolver_catalog_name(h->resolver, i);
        size_t l = name ? strnlen(name, 4096) : 0;
        cap += 6 * l + 4;
    }
    char *json = malloc(cap);
    if (!json)
        return srv__send_error(r, conn, ERD_ENOMEM, NULL);
    size_t o = (size_t)snprintf(json, cap, "{\"status\":\"ok\",\"catalogs\":[");
    for (size_t i = 0; i < n; i++) {
        const char *name = vix_resolver_catalog_name(h->resolver, i);
        if (i)
            json[o++] = ',';
        json[o++] = '"';
        o += srv_json_escape(json + o, cap - o, name ? name : "", name ? strnlen(name, 4096) : 0);
        json[o++] = '"';
    }
    memcpy(json + o, "]}", 3);
    o += 2;
    return srv__send(r, conn, MHD_HTTP_OK, json, o, MHD_RESPMEM_MUST_FREE);
}

/* Ready means able to answer resolves: at least one catalog index loaded.
 * Liveness (/healthz) stays 200 either way, so an orchestrator holds
 * traffic back instead of restarting a server that is only missing data.
 * Catalogs whose index did not load are listed, whatever the status. */
static enum MHD_Result srv__readyz(srv_http *h, srv__req *r, struct MHD_Connection *conn)
{
    size_t n = vix_resolver_catalog_count(h->resolver);
    json_t *out = n ? json_pack("{s:s,s:I}", "status", "ready", "catalogs", (json_int_t)n)
                    : json_pack("{s:s}", "status", "not_ready");
    json_t *bad = json_array();
    char name[72];
    erd_diag d;
    for (size_t i = 0; vix_resolver_unavailable(h->resolver, i, name, sizeof name, &d) == ERD_OK;
         i++)
        json_array_append_new(bad, json_pack("{s:s,s:s,s:s}", "catalog", name, "code",
                                             erd_errcode(d.code), "message",
                                             erd_diag_message(&d, d.code)));
    if (out && bad && json_array_size(bad))
        json_object_set(out, "unavailable", bad);
    json_decref(bad);
    if (out && n == 0)
        json_object_set_new(out, "reason",
                            json_string("no catalog has a loaded index (run erd build, or rebuild "
                                        "through the admin API)"));
    char *json = out ? json_dumps(out, JSON_COMPACT) : NULL;
    json_decref(out);
    if (!json)
        return srv__send_error(r, conn, ERD_ENOMEM, NULL);
    return srv__send(r, conn, n ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, json, strlen(json),
                     MHD_RESPMEM_MUST_FREE);
}

static enum MHD_Result srv__metrics(srv_http *h, srv__req *r, struct MHD_Connection *conn)
{
    erd_diag diag = {0};
    char *text;
    size_t len;
    int rc = srv_metrics_render(h->metrics, h->resolver, atomic_load(&h->inflight), &text, &len, &diag);
    if (rc < 0)
        return srv__send_diag(r, conn, rc, &diag);
    return srv__send_as(r, conn, MHD_HTTP_OK, text, len, MHD_RESPMEM_MUST_FREE,
                        SRV_METRICS_CONTENT_TYPE, NULL, NULL);
}

static enum MHD_Result srv__resolve(srv_http *h, srv__req *r, struct MHD_Connection *conn)
{
    erd_diag diag = {0};
    srv_resolve_req req;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = srv_parse_resolve(r->pool, r->body ? r->body : "", r->body_len, &r->live->limits, &req,
                               &diag);
    if (rc < 0)
        return srv__send_diag(r, conn, rc, &diag);
    uint64_t parse_ns = srv__ns_since(&t0);
    vix_result *results = srv_pool_alloc(r->pool, req.k * sizeof *results);
    if (!results)
        return srv__send_error(r, conn, ERD_ENOMEM, "request exceeds its memory budget");
    vix_timing tm = {0};
    /* The view pins the catalogs this resolve reads (a rebuild or a write
     * may publish new ones meanwhile) until the reply holds its strings. */
    vix_view *view = vix_resolver_acquire(h->resolver);
    char *json = NULL;
    size_t len = 0;
    unsigned long long serialise_ns = 0;
    rc = srv_resolve_answer(h->resolver, view, &req, r->live->cfg.no_match_threshold, parse_ns,
                            results, &tm, &serialise_ns, &json, &len, &diag);
    if (rc == ERD_OK)
        srv_metrics_stages(h->metrics, parse_ns, &tm, serialise_ns);
    vix_view_release(view);
    rc = srv_hint_unbuilt(h->db, req.catalog, rc, &diag);
    if (rc < 0)
        return srv__send_diag(r, conn, rc, &diag);
    return srv__send(r, conn, MHD_HTTP_OK, json, len, MHD_RESPMEM_MUST_FREE);
}

/* Assets are compiled in and never change while serving; the policy keeps
 * the page from loading or sending anything beyond this server. */
static enum MHD_Result srv__console(srv_http *h, srv__req *r, struct MHD_Connection *conn)
{
    (void)h;
    /* "/" has no segment; "/console/NAME" has NAME */
    const srv_console_asset *a = srv_console_find(r->seg[0] ? r->seg[0] : "index.html");
    if (!a)
        return srv__send_error(r, conn, ERD_ENOTFOUND, "no such console file");
    return srv__send_as(r, conn, MHD_HTTP_OK, (char *)a->data, a->len, MHD_RESPMEM_PERSISTENT,
                        a->content_type, "Content-Security-Policy",
                        "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'");
}

/* What the resolver makes of a text (normalised, IPA, phones), as
 * Elasticsearch's _analyze shows a query's tokens. */
static enum MHD_Result srv__analyze(srv_http *h, srv__req *r, struct MHD_Connection *conn)
{
    erd_diag diag = {0};
    char *json = NULL;
    size_t len = 0;
    int rc = srv_analyze(h->resolver, r->body, r->body_len, r->live->limits.max_text_bytes, &json,
                         &len, &diag);
    if (rc < 0)
        return srv__send_diag(r, conn, rc, &diag);
    return srv__send(r, conn, MHD_HTTP_OK, json, len, MHD_RESPMEM_MUST_FREE);
}

static enum MHD_Result srv__admin(srv_http *h, srv__req *r, struct MHD_Connection *conn)
{
    erd_diag diag = {0};
    unsigned status = 0;
    char *json = NULL;
    size_t len = 0;
    const srv__route *rt = &srv__routes[r->route];
    enum srv_admin_op op = strcmp(r->method, "GET") == 0 ? rt->get_op : rt->write_op;
    int rc = srv_admin_run(&h->admin, op, r->seg[0], r->seg[1], r->body, r->body_len, &status,
                           &json, &len, &diag);
    if (rc < 0)
        return srv__send_diag(r, conn, rc, &diag);
    return srv__send(r, conn, status, json, len, MHD_RESPMEM_MUST_FREE);
}

static enum MHD_Result srv__bulk(srv_http *h, srv__req *r, struct MHD_Connection *conn)
{
    erd_diag diag = {0};
    unsigned status = 0;
    char *json = NULL;
    size_t len = 0;
    if (!r->bulk && !r->bulk_err) /* an empty upload */
        r->bulk_err = srv_bulk_begin(&h->admin, r->seg[0], &r->bulk, &r->bulk_diag);
    if (!r->bulk)
        return srv__send_diag(r, conn, r->bulk_err, &r->bulk_diag);
    int rc = srv_bulk_finish(r->bulk, &status, &json, &len, &diag);
    if (rc < 0)
        return srv__send_diag(r, conn, rc, &diag);
    return srv__send(r, conn, status, json, len, MHD_RESPMEM_MUST_FREE);
}

/* ---- request lifecycle ---- */

/* Whether method is one of the route's comma-separated methods. */
static bool srv__method_allowed(const char *methods, const char *method)
{
    size_t ml = strlen(method);
    for (const char *p = methods; *p;) {
        size_t n = strcspn(p, ",");
        if (n == ml && strncmp(p, method, n) == 0)
            return true;
        p += n;
        while (*p == ',' || *p == ' ')
            p++;
    }
    return false;
}

static srv__req *srv__req_new(srv_http *h, struct MHD_Connection *conn, const char *url,
                              const char *method)
{
    /* Counted in flight before the configuration is loaded: a reload that
     * then sees no request in flight knows nobody holds the old one. */
    atomic_fetch_add(&h->inflight, 1);
    const srv__live *live = atomic_load(&h->live);
    srv_pool *pool = NULL;
    if (srv_pool_create(0, live->pool_cap, &pool) < 0)
        goto fail;
    srv__req *r = srv_pool_alloc(pool, sizeof *r);
    if (!r)
        goto fail;
    memset(r, 0, sizeof *r);
    r->pool = pool;
    r->live = live;
    r->route = SRV__ROUTE_OTHER;
    clock_gettime(CLOCK_MONOTONIC, &r->t0);
    snprintf(r->method, sizeof r->method, "%s", method);
    const char *given = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id");
    if (given && srv__id_sane(given)) {
        snprintf(r->id, sizeof r->id, "%s", given);
    } else {
        uint64_t seq = atomic_fetch_add(&h->id_seq, 1);
        snprintf(r->id, sizeof r->id, "%016" PRIx64, srv__mix(h->id_seed + seq));
    }
    if (live->cfg.log_requests) {
        /* MHD's url points into the connection's read buffer, which is
         * reused before the completion callback logs it. */
        r->path = srv_pool_strndup(pool, url, strnlen(url, SRV__MAX_LOG_PATH));
    }
    return r;
fail:
    srv_pool_destroy(pool);
    atomic_fetch_sub(&h->inflight, 1);
    return NULL;
}

/* Appends streamed body bytes, never holding more than max_body_bytes: once
 * over, the rest is read and dropped so the client can still be told 413. */
static enum MHD_Result srv__take_body(srv__req *r, const char *data, size_t n)
{
    size_t max = r->live->cfg.max_body_bytes;
    /* Bodies sent to a path, method or without the credentials that will be
     * refused are not kept either. */
    bool keep = r->route != SRV__ROUTE_OTHER && srv__routes[r->route].body == SRV__BODY &&
                r->method_ok && r->auth_err == ERD_OK;
    if (keep && !r->too_large && n > max - r->body_len)
        r->too_large = true;
    if (!keep || r->too_large) {
        r->discarded += n;
        /* A client streaming far past the limit gets cut off instead of
         * being read forever. */
        return r->discarded > max + ((size_t)1 << 20) ? MHD_NO : MHD_YES;
    }
    if (n > r->body_cap - r->body_len) {
        size_t want = r->body_len + n;
        size_t cap = r->body_cap ? r->body_cap : (r->expected ? r->expected : 4096);
        while (cap < want)
            cap = cap > max / 2 ? max : cap * 2;
        if (cap > max)
            cap = max;
        char *nb = srv_pool_realloc(r->pool, r->body, r->body_len, cap);
        if (!nb)
            return MHD_NO;
        r->body = nb;
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, data, n);
    r->body_len += n;
    return MHD_YES;
}

/* A streamed upload: each chunk goes to the bulk writer as it arrives, so
 * nothing but the line being read is held.  Uploads that will be refused
 * (credentials, method) are read and dropped. */
static enum MHD_Result srv__stream(srv_http *h, srv__req *r, const char *data, size_t n)
{
    size_t max = r->live->cfg.max_bulk_bytes;
    r->body_len += n; /* counted, not kept */
    /* Each MiB that arrives earns the upload another body_timeout_s. */
    if (r->body_len >> 20 > r->body_mib) {
        r->body_mib = r->body_len >> 20;
        srv_conn_extend(r->conns, r->conn, srv__deadline(atomic_load(&h->body_s)));
    }
    if (r->body_len > max)
        r->too_large = true;
    if (!r->method_ok || r->auth_err != ERD_OK || r->too_large || r->bulk_err) {
        r->discarded += n;
        return r->discarded > ((size_t)1 << 20) && r->too_large ? MHD_NO : MHD_YES;
    }
    if (!r->bulk) {
        r->bulk_err = srv_bulk_begin(&h->admin, r->seg[0], &r->bulk, &r->bulk_diag);
        if (r->bulk_err)
            return MHD_YES;
    }
    /* A store failure ends the upload; the reply says what was committed. */
    r->bulk_err = srv_bulk_feed(r->bulk, data, n, &r->bulk_diag);
    return MHD_YES;
}

/* Picks the reply once the route, credentials, method and body size are
 * known; the checks run in the order a client can act on, and an
 * unauthenticated client learns nothing past the path existing. */
static enum MHD_Result srv__dispatch(srv_http *h, srv__req *r, struct MHD_Connection *conn)
{
    if (r->route == SRV__ROUTE_OTHER)
        return srv__send_error(r, conn, ERD_ENOTFOUND,
                               "no such endpoint (try POST /v1/resolve or GET /healthz)");
    const srv__route *route = &srv__routes[r->route];
    if (r->auth_err == ERD_EUNAUTHORIZED)
        return srv__send_error_h(r, conn, ERD_EUNAUTHORIZED, r->auth_msg, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                 r->token_given ? "Bearer realm=\"erd\", error=\"invalid_token\""
                                                : "Bearer realm=\"erd\"");
    if (r->auth_err < 0)
        return srv__send_error(r, conn, r->auth_err, r->auth_msg);
    if (!r->method_ok) {
        char msg[96];
        snprintf(msg, sizeof msg, "use %s for %s", route->methods, route->path);
        return srv__send_error_h(r, conn, ERD_EMETHOD, msg, MHD_HTTP_HEADER_ALLOW, route->methods);
    }
    if (r->too_large) {
        char msg[160];
        if (route->body == SRV__STREAM)
            snprintf(msg, sizeof msg,
                     "upload exceeds max_bulk_bytes (%zu bytes), what this server is set to take "
                     "at once; lines read before the limit were committed",
                     r->live->cfg.max_bulk_bytes);
        else
            snprintf(msg, sizeof msg, "request body exceeds %zu bytes", r->live->cfg.max_body_bytes);
        return srv__send_error(r, conn, ERD_ETOOLARGE, msg);
    }
    return route->handler(h, r, conn);
}

/* ---- connection guards ---- */

static srv_conn *srv__conn_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return info ? info->socket_context : NULL;
}

/* Accept policy: runs before MHD spends anything on the connection. */
static enum MHD_Result srv__admit(void *cls, const struct sockaddr *addr, socklen_t len)
{
    srv_http *h = cls;
    unsigned half_open = atomic_load(&h->half_open_per_ip);
    if (srv_conn_admit(h->conns, addr, len, atomic_load(&h->per_ip), half_open,
                       half_open ? h->half_open_all : 0))
        return MHD_YES;
    /* Counted here, logged by the cleaner at most once a second: a flood
     * must not turn into a flood of log lines. */
    atomic_fetch_add(&h->refused, 1);
    char ip[INET6_ADDRSTRLEN] = "";
    if (addr && addr->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)addr)->sin_addr, ip, sizeof ip);
    else if (addr && addr->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)addr)->sin6_addr, ip, sizeof ip);
    pthread_mutex_lock(&h->cleaner_mu);
    memcpy(h->refused_from, ip, sizeof ip);
    pthread_mutex_unlock(&h->cleaner_mu);
    return MHD_NO;
}

static void srv__notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                        enum MHD_ConnectionNotificationCode code)
{
    srv_http *h = cls;
    if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        srv_conn_close(h->conns, *socket_context);
        *socket_context = NULL;
        return;
    }
    const union MHD_ConnectionInfo *fd = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    const union MHD_ConnectionInfo *addr = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!fd)
        return;
    const struct sockaddr *sa = addr ? addr->client_addr : NULL;
    socklen_t sl = !sa ? 0 : sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                      : sizeof(struct sockaddr_in);
    *socket_context = srv_conn_open(h->conns, fd->connect_fd, sa, sl,
                                    srv__deadline(atomic_load(&h->header_s)));
    /* A connection no deadline watches is not kept. */
    if (!*socket_context)
        shutdown(fd->connect_fd, SHUT_RDWR);
}

/* Decodes the path as MHD would, noting a NUL or control byte for the
 * access handler to refuse before routing. */
static size_t srv__unescape(void *cls, struct MHD_Connection *conn, char *s)
{
    (void)cls;
    bool control = false;
    size_t len = srv_http_unescape(s, &control);
    if (control)
        srv_conn_flag_bad_path(srv__conn_of(conn));
    return len;
}

static void *srv__cleaner_main(void *arg)
{
    srv_http *h = arg;
    uint64_t last_log = 0;
    pthread_mutex_lock(&h->cleaner_mu);
    while (!h->cleaner_stop) {
        uint64_t now = srv_conn_now_ns();
        if (now - last_log >= 1000000000u && atomic_load(&h->refused)) {
            uint64_t n = atomic_exchange(&h->refused, 0);
            fprintf(stderr,
                    "erd: http: refused %" PRIu64 " connection%s at accept (max_connections_per_ip, "
                    "max_half_open_per_ip), the last from %s\n",
                    n, n == 1 ? "" : "s", h->refused_from);
            last_log = now;
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 250 * 1000 * 1000;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&h->cleaner_cv, &h->cleaner_mu, &until);
        if (!h->cleaner_stop)
            srv_conn_expire(h->conns, srv_conn_now_ns());
    }
    pthread_mutex_unlock(&h->cleaner_mu);
    return NULL;
}

static void srv__limits_publish(srv_http *h, const cfg_config *cfg)
{
    atomic_store(&h->per_ip, (unsigned)(cfg->max_connections_per_ip > 0 ? cfg->max_connections_per_ip : 0));
    atomic_store(&h->half_open_per_ip,
                 (unsigned)(cfg->max_half_open_per_ip > 0 ? cfg->max_half_open_per_ip : 0));
    atomic_store(&h->header_s, (unsigned)(cfg->header_timeout_s > 0 ? cfg->header_timeout_s : 1));
    atomic_store(&h->body_s, (unsigned)(cfg->body_timeout_s > 0 ? cfg->body_timeout_s : 1));
}

#define SRV__MAX_FRAMING 4

typedef struct srv__framing {
    const char *cl[SRV__MAX_FRAMING], *te[SRV__MAX_FRAMING];
    size_t n_cl, n_te;
} srv__framing;

static enum MHD_Result srv__framing_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                           const char *value)
{
    (void)kind;
    srv__framing *f = cls;
    const char *v = value ? value : "";
    if (key && strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
        if (f->n_cl < SRV__MAX_FRAMING)
            f->cl[f->n_cl] = v;
        f->n_cl++;
    } else if (key && strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
        if (f->n_te < SRV__MAX_FRAMING)
            f->te[f->n_te] = v;
        f->n_te++;
    }
    return MHD_YES;
}

/* libmicrohttpd takes the first Content-Length and waits for the end of a
 * body in a coding it does not know; erd decides at the headers instead. */
static int srv__framing_check(struct MHD_Connection *conn, bool *ret_body, erd_diag *diag)
{
    srv__framing f = {0};
    MHD_get_connection_values(conn, MHD_HEADER_KIND, srv__framing_header, &f);
    if (f.n_cl > SRV__MAX_FRAMING || f.n_te > SRV__MAX_FRAMING)
        return erd_fail(diag, ERD_EBADREQUEST, "too many Content-Length or Transfer-Encoding headers");
    *ret_body = f.n_te > 0 || (f.n_cl == 1 && strspn(f.cl[0], "0") != strlen(f.cl[0]));
    return srv_check_framing(f.cl, f.n_cl, f.te, f.n_te, diag);
}

static enum MHD_Result srv__handle(void *cls, struct MHD_Connection *conn, const char *url,
                                   const char *method, const char *version, const char *upload_data,
                                   size_t *upload_data_size, void **con_cls)
{
    (void)version;
    srv_http *h = cls;
    srv__req *r = *con_cls;

    if (!r) {
        r = srv__req_new(h, conn, url, method);
        if (!r)
            return MHD_NO;
        *con_cls = r;
        r->conns = h->conns;
        r->conn = srv__conn_of(conn);
        srv_conn_phase(r->conns, r->conn, SRV_CONN_BODY, srv__deadline(atomic_load(&h->body_s)));
        /* Answered before routing, and before a byte of any body. */
        if (srv_conn_take_bad_path(r->conn))
            return srv__send_error(r, conn, ERD_EBADREQUEST,
                                   "the path holds a NUL or control character (percent-encoded "
                                   "or not)");
        erd_diag fdiag = {0};
        bool has_body = false;
        int frc = srv__framing_check(conn, &has_body, &fdiag);
        if (frc < 0)
            return srv__send_diag(r, conn, frc, &fdiag);

        for (size_t i = 0; i < SRV__N_ROUTES; i++) {
            if (srv__route_match(&srv__routes[i], url, r->pool, r->seg)) {
                r->route = i;
                r->method_ok = srv__method_allowed(srv__routes[i].methods, method);
                const char *authz = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                                MHD_HTTP_HEADER_AUTHORIZATION);
                erd_diag diag = {0};
                r->token_given = authz != NULL;
                r->auth_err = srv_auth_check(srv__routes[i].auth, authz, &r->live->tokens, &diag);
                if (r->auth_err < 0)
                    snprintf(r->auth_msg, sizeof r->auth_msg, "%s", erd_diag_message(&diag, r->auth_err));
                break;
            }
        }
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
        bool streams = r->route != SRV__ROUTE_OTHER && srv__routes[r->route].body == SRV__STREAM;
        size_t limit = streams ? r->live->cfg.max_bulk_bytes : r->live->cfg.max_body_bytes;
        if (cl) {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(cl, &end, 10);
            if (errno == 0 && end != cl && v <= limit) {
                r->expected = (size_t)v;
            } else {
                /* Answer before reading a byte of it; MHD then closes the
                 * connection instead of draining the body. */
                r->too_large = true;
                return srv__dispatch(h, r, conn);
            }
        }
        /* Missing or wrong credentials are told at the headers when a body
         * follows: none of it is read, and no 100 Continue invites it. */
        if (has_body && r->route != SRV__ROUTE_OTHER && r->auth_err < 0)
            return srv__dispatch(h, r, conn);
        /* Everything else is answered once the request is complete: a reply
         * queued earlier makes MHD drop the keep-alive connection. */
        return MHD_YES;
    }

    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (r->responded)
            return MHD_YES;
        if (r->route != SRV__ROUTE_OTHER && srv__routes[r->route].body == SRV__STREAM)
            return srv__stream(h, r, upload_data, n);
        return srv__take_body(r, upload_data, n);
    }
    if (r->responded)
        return MHD_YES;
    return srv__dispatch(h, r, conn);
}

static void srv__log_request(const srv__req *r, enum MHD_RequestTerminationCode toe)
{
    struct timespec now;
    struct tm tm;
    char ts[40], path[6 * SRV__MAX_LOG_PATH + 1], method[6 * sizeof r->method + 1], err[96];
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    size_t tl = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + tl, sizeof ts - tl, ".%03ldZ", now.tv_nsec / 1000000L);
    srv_json_escape(path, sizeof path, r->path ? r->path : "", r->path ? strlen(r->path) : 0);
    srv_json_escape(method, sizeof method, r->method, strlen(r->method));
    err[0] = '\0';
    if (r->responded && r->err < 0)
        snprintf(err, sizeof err, ",\"error\":\"%s\"", erd_errcode(r->err));
    else if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
        snprintf(err, sizeof err, ",\"aborted\":true");
    fprintf(stderr,
            "{\"ts\":\"%s\",\"id\":\"%s\",\"method\":\"%s\",\"path\":\"%s\",\"status\":%u,"
            "\"ms\":%.3f%s}\n",
            ts, r->id, method, path, r->status, srv__ms_since(&r->t0), err);
}

static void srv__completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                           enum MHD_RequestTerminationCode toe)
{
    (void)conn;
    srv_http *h = cls;
    srv__req *r = *con_cls;
    if (!r)
        return;
    if (r->responded)
        srv_metrics_request(h->metrics, r->route, r->status, srv__ns_since(&r->t0));
    if (r->live->cfg.log_requests)
        srv__log_request(r, toe);
    *con_cls = NULL;
    /* The next request on a kept-alive connection has header_timeout_s. */
    srv_conn_phase(r->conns, r->conn, SRV_CONN_HEADERS, srv__deadline(atomic_load(&h->header_s)));
    srv_bulk_destroy(r->bulk);
    srv_pool_destroy(r->pool);
    /* Last: after this the request's configuration may be freed. */
    atomic_fetch_sub(&h->inflight, 1);
}

/* ---- live configuration ---- */

static int srv__live_new(const cfg_config *cfg, srv__live **ret, erd_diag *diag)
{
    if (cfg->max_body_bytes == 0)
        return erd_fail(diag, ERD_ECONFIG, "max_body_bytes must be positive");
    srv__live *l = calloc(1, sizeof *l);
    if (!l)
        return erd_fail(diag, ERD_ENOMEM, "out of memory");
    l->cfg = *cfg;
    srv_limits_from_config(&l->cfg, &l->limits);
    /* Body (plus growth slack), its string copies, and the hypothesis and
     * result arrays: the most any request can legitimately need. */
    size_t body = l->cfg.max_body_bytes;
    size_t extra = l->limits.max_hypotheses * sizeof(vix_hypothesis) +
                   l->limits.max_k * sizeof(vix_result) + ((size_t)64 << 10);
    if (body > (SIZE_MAX - extra) / 3) {
        free(l);
        return erd_fail(diag, ERD_ECONFIG, "max_body_bytes too large");
    }
    l->pool_cap = 3 * body + extra;
    l->tokens.resolve = l->cfg.resolve_token;
    l->tokens.admin = l->cfg.admin_token;
    l->tokens.metrics = l->cfg.metrics_token;
    *ret = l;
    return ERD_OK;
}

static void srv__live_free(srv__live *l)
{
    if (!l)
        return;
    /* Tokens do not linger in freed heap memory. */
    explicit_bzero(&l->cfg, sizeof l->cfg);
    free(l);
}

/* Frees retired configurations once no request is in flight.  A request
 * counts itself in flight before it loads the live pointer (both seq_cst),
 * so zero here means every later request loads the current one. */
static void srv__reclaim(srv_http *h)
{
    if (!h->retired || atomic_load(&h->inflight) != 0)
        return;
    while (h->retired) {
        srv__live *next = h->retired->retired_next;
        srv__live_free(h->retired);
        h->retired = next;
    }
}

int srv_http_reload(srv_http *h, erd_diag *diag)
{
    if (!h)
        return erd_fail(diag, ERD_EINVAL, "srv_http_reload: no server");
    const char *path = h->opts && h->opts->config_path ? h->opts->config_path : NULL;
    const char *const *overrides = h->opts ? h->opts->overrides : NULL;
    cfg_config fresh, next;
    srv__live *nl = NULL;
    srv__live *cur = atomic_load(&h->live);
    int rc = cfg_load(&fresh, path, overrides, diag);
    if (rc < 0)
        goto out;
    /* Bound-at-start keys keep their running values; only the others
     * move, and the result is checked as a whole before anyone sees it. */
    next = cur->cfg;
    cfg_copy_reloadable(&next, &fresh);
    rc = cfg_validate(&next, diag);
    if (rc < 0)
        goto out;
    rc = srv__live_new(&next, &nl, diag);
    if (rc < 0)
        goto out;
    char fixed[512], changed[512];
    size_t n_fixed = cfg_diff(&cur->cfg, &fresh, false, fixed, sizeof fixed);
    size_t n_changed = cfg_diff(&cur->cfg, &next, true, changed, sizeof changed);
    srv__live *old = atomic_exchange(&h->live, nl);
    srv__limits_publish(h, &nl->cfg);
    old->retired_next = h->retired;
    h->retired = old;
    srv__reclaim(h);
    fprintf(stderr, "erd: configuration reloaded%s%s; changed: %s\n", path ? " from " : "",
            path ? path : "", n_changed ? changed : "nothing");
    if (n_fixed)
        fprintf(stderr, "erd: reload: %s cannot change while serving; restart erd serve to apply "
                        "(running values kept)\n", fixed);
    rc = ERD_OK;
out:
    explicit_bzero(&fresh, sizeof fresh);
    explicit_bzero(&next, sizeof next);
    srv_metrics_reload(h->metrics, rc == ERD_OK);
    if (rc < 0)
        fprintf(stderr, "erd: reload failed, running configuration kept: %s\n",
                erd_diag_message(diag, rc));
    return rc;
}

/* Gauges of the loaded indexes come from the store's metadata, which the
 * resolver has just checked against each index file. */
/* ---- listen address ---- */

static int srv__parse_listen(const char *listen, struct sockaddr_storage *ss, socklen_t *ss_len,
                             char *host_out, size_t host_cap, erd_diag *diag)
{
    char host[128], port[16];
    const char *colon;
    size_t hl;

    if (listen[0] == '[') {
        const char *close = strchr(listen, ']');
        if (!close || close[1] != ':')
            return erd_fail(diag, ERD_ECONFIG, "listen \"%s\": expected [address]:port", listen);
        hl = (size_t)(close - listen - 1);
        if (hl == 0 || hl >= sizeof host)
            return erd_fail(diag, ERD_ECONFIG, "listen \"%s\": bad address", listen);
        memcpy(host, listen + 1, hl);
        host[hl] = '\0';
        colon = close + 1;
    } else {
        colon = strrchr(listen, ':');
        if (!colon)
            return erd_fail(diag, ERD_ECONFIG, "listen \"%s\": expected host:port", listen);
        hl = (size_t)(colon - listen);
        if (memchr(listen, ':', hl))
            return erd_fail(diag, ERD_ECONFIG,
                            "listen \"%s\": write IPv6 addresses in brackets, [::1]:port", listen);
        if (hl >= sizeof host)
            return erd_fail(diag, ERD_ECONFIG, "listen \"%s\": host too long", listen);
        memcpy(host, listen, hl);
        host[hl] = '\0';
        if (hl == 0)
            snprintf(host, sizeof host, "127.0.0.1");
    }
    const char *p = colon + 1;
    size_t pl = strlen(p);
    if (pl == 0 || pl > 5 || strspn(p, "0123456789") != pl || strtoul(p, NULL, 10) > 65535)
        return erd_fail(diag, ERD_ECONFIG, "listen \"%s\": port must be 0..65535", listen);
    snprintf(port, sizeof port, "%s", p);

    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    int gai = getaddrinfo(host, port, &hints, &ai);
    if (gai != 0 || !ai)
        return erd_fail(diag, ERD_ECONFIG, "listen \"%s\": %s", listen,
                        gai ? gai_strerror(gai) : "no address");
    if (ai->ai_addrlen > sizeof *ss) {
        freeaddrinfo(ai);
        return erd_fail(diag, ERD_ECONFIG, "listen \"%s\": unsupported address", listen);
    }
    memset(ss, 0, sizeof *ss);
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    *ss_len = ai->ai_addrlen;
    freeaddrinfo(ai);

    const void *addr = ss->ss_family == AF_INET6 ? (const void *)&((struct sockaddr_in6 *)ss)->sin6_addr
                                                 : (const void *)&((struct sockaddr_in *)ss)->sin_addr;
    if (!inet_ntop(ss->ss_family, addr, host_out, (socklen_t)host_cap))
        return erd_fail(diag, ERD_ECONFIG, "listen \"%s\": unsupported address", listen);
    return ERD_OK;
}

int srv_http_check_listen(const char *listen, erd_diag *diag)
{
    struct sockaddr_storage ss;
    socklen_t ss_len = 0;
    char host[INET6_ADDRSTRLEN];
    int rc = srv__parse_listen(listen, &ss, &ss_len, host, sizeof host, diag);
    if (rc < 0)
        return rc;
    unsigned port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                   : ((struct sockaddr_in *)&ss)->sin_port);
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return erd_fail(diag, ERD_EIO, "listen %s: %s", listen, strerror(errno));
    /* as libmicrohttpd binds: a port in TIME_WAIT is free, one listened on is not */
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    int bound = bind(fd, (struct sockaddr *)&ss, ss_len) == 0;
    int e = errno;
    close(fd);
    if (bound)
        return ERD_OK;
    if (e == EADDRINUSE)
        return erd_fail(diag, ERD_EIO,
                        "cannot listen on %s: port %u is already in use (another erd serve?); "
                        "choose another with --listen",
                        listen, port);
    return erd_fail(diag, ERD_EIO, "cannot listen on %s (port %u): %s", listen, port, strerror(e));
}

/* ---- daemon ---- */

static void srv__cleaner_stop(srv_http *h)
{
    if (!h->cleaner_started)
        return;
    pthread_mutex_lock(&h->cleaner_mu);
    h->cleaner_stop = true;
    pthread_cond_signal(&h->cleaner_cv);
    pthread_mutex_unlock(&h->cleaner_mu);
    pthread_join(h->cleaner, NULL);
    h->cleaner_started = false;
    pthread_mutex_destroy(&h->cleaner_mu);
    pthread_cond_destroy(&h->cleaner_cv);
}

/* Request ids: a random seed (a clock-and-pid mix without entropy) and a
 * sequence. */
static uint64_t srv__id_seed(void)
{
    uint64_t seed;
    if (getentropy(&seed, sizeof seed) == 0)
        return seed;
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return ((uint64_t)t.tv_sec << 32) ^ (uint64_t)t.tv_nsec ^ ((uint64_t)getpid() << 16);
}

/* The connection table and the thread that enforces its deadlines. */
static int srv__start_cleaner(srv_http *h, const cfg_config *cfg, unsigned conns, erd_diag *diag)
{
    /* Room for every connection MHD may hold plus the ones it is closing. */
    int rc = srv_conn_table_create((size_t)conns + 64, &h->conns, diag);
    if (rc < 0)
        return rc;
    srv__limits_publish(h, cfg);
    h->half_open_all = conns / 2 ? conns / 2 : 1;
    pthread_mutex_init(&h->cleaner_mu, NULL);
    pthread_cond_init(&h->cleaner_cv, NULL);
    if (pthread_create(&h->cleaner, NULL, srv__cleaner_main, h) != 0)
        return erd_fail(diag, ERD_EINTERNAL, "cannot start the connection deadline thread");
    h->cleaner_started = true;
    return ERD_OK;
}

/* libmicrohttpd listening on ss with threads workers (or a thread per
 * connection); h->port and h->url set from where it bound. */
static int srv__start_daemon(srv_http *h, const cfg_config *cfg, struct sockaddr_storage *ss,
                             const char *host, unsigned threads, unsigned conns, erd_diag *diag)
{
    unsigned timeout = cfg->request_timeout_s > 0 ? (unsigned)cfg->request_timeout_s : 0;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    /* A pool worker keeps every connection it accepted, and one worker
     * often accepts all of a client's few keep-alive connections: measured,
     * half the throughput at 2 and 4 connections on 2 cores.  A thread per
     * connection lets the scheduler spread them. */
    if (strcmp(cfg->http_threading, "connection") == 0) {
        flags |= MHD_USE_THREAD_PER_CONNECTION;
        threads = 0;
    } else if (strcmp(cfg->http_threading, "pool") != 0) {
        return erd_fail(diag, ERD_ECONFIG, "http_threading is connection or pool, not \"%s\"",
                        cfg->http_threading);
    }
    if (ss->ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* A pool size is only passed for a real pool: MHD warns about 0 or 1. */
    struct MHD_OptionItem pool[] = {
        {threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, (intptr_t)threads, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    /* The logger goes first so MHD routes even option errors through it. */
    h->daemon = MHD_start_daemon(flags, 0, srv__admit, h, srv__handle, h,
                                 MHD_OPTION_EXTERNAL_LOGGER, srv__mhd_log, NULL,
                                 MHD_OPTION_SOCK_ADDR, (struct sockaddr *)ss,
                                 MHD_OPTION_ARRAY, pool,
                                 MHD_OPTION_CONNECTION_LIMIT, conns,
                                 MHD_OPTION_NOTIFY_CONNECTION, srv__notify, h,
                                 MHD_OPTION_UNESCAPE_CALLBACK, srv__unescape, h,
                                 MHD_OPTION_CONNECTION_TIMEOUT, timeout,
                                 MHD_OPTION_NOTIFY_COMPLETED, srv__completed, h,
                                 MHD_OPTION_END);
    if (!h->daemon)
        return erd_fail(diag, ERD_EIO, "cannot listen on %s (address in use or not permitted?)",
                        cfg->listen);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? info->port : 0;
    if (ss->ss_family == AF_INET6)
        snprintf(h->url, sizeof h->url, "http://[%s]:%u", host, (unsigned)h->port);
    else
        snprintf(h->url, sizeof h->url, "http://%s:%u", host, (unsigned)h->port);
    return ERD_OK;
}

int srv_http_start(const cfg_config *cfg, const srv_http_opts *opts, vix_resolver *resolver,
                   srv_http **ret, erd_diag *diag)
{
    struct sockaddr_storage ss;
    socklen_t ss_len = 0;
    char host[INET6_ADDRSTRLEN];
    srv_http *h = NULL;
    srv__live *live = NULL;
    int rc;

    if (!cfg || !resolver || !ret)
        return erd_fail(diag, ERD_EINVAL, "srv_http_start: missing argument");
    rc = srv__parse_listen(cfg->listen, &ss, &ss_len, host, sizeof host, diag);
    if (rc < 0)
        return rc;
    rc = srv__live_new(cfg, &live, diag);
    if (rc < 0)
        return rc;

    h = calloc(1, sizeof *h);
    if (!h) {
        rc = erd_fail(diag, ERD_ENOMEM, "out of memory");
        goto out;
    }
    h->resolver = resolver;
    h->opts = opts;
    snprintf(h->db, sizeof h->db, "%s", cfg->db);
    h->admin = (srv_admin_ctx){.db = h->db, .resolver = resolver,
                               .read_only = opts && opts->read_only};
    for (size_t i = 0; i < SRV__N_ROUTES; i++)
        srv__route_labels[i] = srv__routes[i].path;
    srv__route_labels[SRV__N_ROUTES] = "other";
    atomic_init(&h->live, live);
    live = NULL;
    atomic_init(&h->id_seq, 0);
    atomic_init(&h->inflight, 0);
    h->id_seed = srv__id_seed();
    rc = srv_metrics_create(srv__route_labels, SRV__N_ROUTES + 1, &h->metrics, diag);
    if (rc < 0)
        goto out;

    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned threads = cfg->threads > 0 ? (unsigned)cfg->threads : (cores > 0 ? (unsigned)cores : 1);
    unsigned conns = cfg->max_connections > 0 ? (unsigned)cfg->max_connections : 1;
    /* MHD splits the connection limit across workers and refuses to start
     * when a worker would get none. */
    if (threads > conns)
        threads = conns;
    if ((rc = srv__start_cleaner(h, cfg, conns, diag)) < 0 ||
        (rc = srv__start_daemon(h, cfg, &ss, host, threads, conns, diag)) < 0)
        goto out;
    *ret = h;
    h = NULL;
    rc = ERD_OK;
out:
    srv__live_free(live);
    if (h) {
        srv__cleaner_stop(h);
        srv_conn_table_destroy(h->conns);
        srv_metrics_destroy(h->metrics);
        srv__live_free(atomic_load(&h->live));
        free(h);
    }
    return rc;
}

uint16_t srv_http_port(const srv_http *http)
{
    return http ? http->port : 0;
}

const char *srv_http_url(const srv_http *http)
{
    return http ? http->url : "";
}

void srv_http_stop(srv_http *http)
{
    if (!http)
        return;
    MHD_socket lsock = MHD_quiesce_daemon(http->daemon);
    /* Requests already being handled get to finish and send their reply;
     * a client that stalls is cut off after the request timeout.  The
     * timeout is bound at start, so any published configuration has it. */
    int limit_s = atomic_load(&http->live)->cfg.request_timeout_s;
    if (limit_s <= 0)
        limit_s = 10;
    if (limit_s > 30)
        limit_s = 30;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (atomic_load(&http->inflight) > 0 && srv__ms_since(&t0) < limit_s * 1000.0) {
        struct timespec nap = {0, 10 * 1000 * 1000};
        nanosleep(&nap, NULL);
    }
    MHD_stop_daemon(http->daemon);
    srv__cleaner_stop(http);
    srv_conn_table_destroy(http->conns);
    /* After quiescing, the listening socket is ours to close. */
    if (lsock != MHD_INVALID_SOCKET)
        close(lsock);
    /* No worker is left: every configuration can go. */
    while (http->retired) {
        srv__live *next = http->retired->retired_next;
        srv__live_free(http->retired);
        http->retired = next;
    }
    srv__live_free(atomic_load(&http->live));
    srv_metrics_destroy(http->metrics);
    free(http);
}

int srv_http_run(const cfg_config *cfg, const srv_http_opts *opts, vix_resolver *resolver,
                 erd_diag *diag)
{
    sigset_t sigs, old;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    /* Blocked before MHD spawns its workers so they inherit the mask and the
     * signals can only be taken by sigtimedwait below. */
    int e = pthread_sigmask(SIG_BLOCK, &sigs, &old);
    if (e != 0)
        return erd_fail(diag, ERD_EINTERNAL, "pthread_sigmask: %s", strerror(e));

    srv_http *http = NULL;
    int rc = srv_http_start(cfg, opts, resolver, &http, diag);
    if (rc < 0)
        goto out;
    fprintf(stderr, "erd: listening on %s\n", srv_http_url(http));
    fflush(stderr);

    int sig;
    long tick_ms = cfg->sync_interval_ms > 0 ? cfg->sync_interval_ms : 1000;
    for (;;) {
        /* Wakes every tick to free configurations retired by a reload that
         * found requests in flight, and to run the caller's tick. */
        struct timespec tick = {tick_ms / 1000, (tick_ms % 1000) * 1000000L};
        sig = sigtimedwait(&sigs, NULL, &tick);
        if (sig < 0) {
            if (errno != EAGAIN && errno != EINTR) {
                rc = erd_fail(diag, ERD_EINTERNAL, "sigtimedwait: %s", strerror(errno));
                srv_http_stop(http);
                goto out;
            }
            srv__reclaim(http);
            if (opts && opts->tick)
                opts->tick(opts->tick_user);
            continue;
        }
        if (sig == SIGHUP) {
            erd_diag rd = {0};
            (void)srv_http_reload(http, &rd); /* logged there; a failure keeps serving */
            continue;
        }
        break;
    }
    fprintf(stderr, "erd: %s received, shutting down\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    srv_http_stop(http);
    rc = ERD_OK;
out:
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}
