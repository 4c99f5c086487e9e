#include "server/http/srv_metrics.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Upper bounds of the latency buckets, seconds: a resolve takes ~1-10 ms,
 * so the resolution is finest there; +Inf is implied. */
static const double srv__bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                     0.1,    0.25,  0.5,    1.0,   2.5,  5.0,   10.0};
#define SRV__NB (sizeof srv__bounds / sizeof srv__bounds[0])
#define SRV__STATUS_MIN 100
#define SRV__STATUS_N 500 /* 100..599, indexed directly: no mapping to get wrong */

enum {
    SRV__PARSE,
    SRV__G2P,
    SRV__ENCODE,
    SRV__SEARCH,
    SRV__AGGREGATE,
    SRV__RERANK,
    SRV__SERIALISE,
    SRV__NSTAGES
};
static const char *const srv__stage_names[SRV__NSTAGES] = {
    "parse", "g2p", "encode", "search", "aggregate", "rerank", "serialise"};

typedef struct srv__route_metrics {
    atomic_uint_fast64_t status[SRV__STATUS_N];
    atomic_uint_fast64_t bucket[SRV__NB + 1]; /* per bucket, not cumulative; last is +Inf */
    atomic_uint_fast64_t sum_ns;
} srv__route_metrics;

struct srv_metrics {
    const char *const *routes;
    size_t n_routes;
    srv__route_metrics *per_route;
    atomic_uint_fast64_t stage_ns[SRV__NSTAGES];
    atomic_uint_fast64_t reloads_ok, reloads_failed;
};

int srv_metrics_create(const char *const *routes, size_t n_routes, srv_metrics **ret, erd_diag *diag)
{
    if (!routes || n_routes == 0 || n_routes > SRV_METRICS_MAX_ROUTES || !ret)
        return erd_fail(diag, ERD_EINVAL, "srv_metrics_create: 1 to %d routes", SRV_METRICS_MAX_ROUTES);
    srv_metrics *m = calloc(1, sizeof *m);
    if (!m)
        return erd_fail(diag, ERD_ENOMEM, "out of memory");
    m->per_route = calloc(n_routes, sizeof *m->per_route);
    if (!m->per_route) {
        free(m);
        return erd_fail(diag, ERD_ENOMEM, "out of memory");
    }
    /* calloc's zero bytes are a valid zero for the lock-free atomic
     * integers used here, but say so explicitly for the rest. */
    for (size_t i = 0; i < SRV__NSTAGES; i++)
        atomic_init(&m->stage_ns[i], 0);
    atomic_init(&m->reloads_ok, 0);
    atomic_init(&m->reloads_failed, 0);
    m->routes = routes;
    m->n_routes = n_routes;
    *ret = m;
    return ERD_OK;
}

void srv_metrics_destroy(srv_metrics *m)
{
    if (!m)
        return;
    free(m->per_route);
    free(m);
}

void srv_metrics_request(srv_metrics *m, size_t route, unsigned status, uint64_t ns)
{
    /* Both the counter and the histogram or neither, so their totals agree. */
    if (!m || route >= m->n_routes || status < SRV__STATUS_MIN || status >= SRV__STATUS_MIN + SRV__STATUS_N)
        return;
    srv__route_metrics *r = &m->per_route[route];
    atomic_fetch_add_explicit(&r->status[status - SRV__STATUS_MIN], 1, memory_order_relaxed);
    double s = (double)ns / 1e9;
    size_t b = 0;
    while (b < SRV__NB && s > srv__bounds[b])
        b++;
    atomic_fetch_add_explicit(&r->bucket[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&r->sum_ns, ns, memory_order_relaxed);
}

void srv_metrics_stages(srv_metrics *m, uint64_t parse_ns, const vix_timing *t,
                        uint64_t serialise_ns)
{
    if (!m || !t)
        return;
    atomic_fetch_add_explicit(&m->stage_ns[SRV__PARSE], parse_ns, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->stage_ns[SRV__SERIALISE], serialise_ns, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->stage_ns[SRV__G2P], t->g2p_ns, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->stage_ns[SRV__ENCODE], t->encode_ns, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->stage_ns[SRV__SEARCH], t->search_ns, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->stage_ns[SRV__AGGREGATE], t->aggregate_ns, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->stage_ns[SRV__RERANK], t->rerank_ns, memory_order_relaxed);
}

void srv_metrics_reload(srv_metrics *m, bool ok)
{
    if (m)
        atomic_fetch_add_explicit(ok ? &m->reloads_ok : &m->reloads_failed, 1, memory_order_relaxed);
}

/* ---- text exposition ---- */

typedef struct srv__text {
    char *p;
    size_t len, cap;
    bool failed;
} srv__text;

__attribute__((format(printf, 2, 3))) static void srv__emit(srv__text *t, const char *fmt, ...)
{
    if (t->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = true;
            return;
        }
        if ((size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap * 2 + (size_t)n;
        char *np = realloc(t->p, cap);
        if (!np) {
            t->failed = true;
            return;
        }
        t->p = np;
        t->cap = cap;
    }
}

/* Label values escape backslash, double quote and newline (the format's
 * only three). */
static void srv__label(char *out, size_t cap, const char *s)
{
    size_t o = 0;
    for (; *s && o + 3 < cap; s++) {
        if (*s == '\\' || *s == '"') {
            out[o++] = '\\';
            out[o++] = *s;
        } else if (*s == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else {
            out[o++] = *s;
        }
    }
    out[o] = '\0';
}

static void srv__head(srv__text *t, const char *name, const char *type, const char *help)
{
    srv__emit(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Resident memory in two parts: the process's own (heap, stacks) and
 * pages of mapped files (an erd IVF index's codes and the floats read so
 * far), which the page cache holds once for every process mapping them. */
static void srv__resident(srv__text *t)
{
    FILE *f = fopen("/proc/self/status", "re");
    if (!f)
        return; /* not Linux: nothing to say */
    char line[256];
    unsigned long long anon = 0, file = 0;
    bool seen = false;
    while (fgets(line, sizeof line, f)) {
        seen |= sscanf(line, "RssAnon: %llu kB", &anon) == 1;
        sscanf(line, "RssFile: %llu kB", &file);
    }
    fclose(f);
    if (!seen)
        return;
    srv__head(t, "erd_resident_bytes", "gauge",
              "Resident memory: anon (the process's own) and file (mapped index files, shared).");
    srv__emit(t, "erd_resident_bytes{kind=\"anon\"} %llu\n", anon * 1024);
    srv__emit(t, "erd_resident_bytes{kind=\"file\"} %llu\n", file * 1024);
}

/* Freshness of each served catalog: how far its index lags the database
 * (the delta serves the difference) and its rebuilds. */
static void srv__live_catalogs(srv__text *t, vix_resolver *resolver)
{
    static const struct {
        const char *name, *help;
    } families[] = {
        {"erd_catalog_generation", "Catalog generation served (index plus delta)."},
        {"erd_index_generation", "Catalog generation the loaded index was built from."},
        {"erd_index_vectors", "Vectors in the loaded index of each catalog."},
        {"erd_delta_entities", "Entities written since the index was built, served from the delta."},
        {"erd_rebuild_running", "1 while a background rebuild of the catalog runs."},
        {"erd_rebuild_last_seconds", "Duration of the last finished background rebuild."},
    };
    /* Each catalog's status once (a status call takes the view and the job
     * lock), so every family shows the same moment. */
    size_t n = vix_resolver_catalog_count(resolver), m = 0;
    struct {
        const char *name;
        vix_serving_status st;
    } *cats = calloc(n + 1, sizeof *cats);
    if (!cats) {
        t->failed = true;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        cats[m].name = vix_resolver_catalog_name(resolver, i);
        if (cats[m].name) {
            vix_resolver_status(resolver, cats[m].name, &cats[m].st);
            m++;
        }
    }
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++) {
        srv__head(t, families[f].name, "gauge", families[f].help);
        for (size_t i = 0; i < m; i++) {
            const vix_serving_status *st = &cats[i].st;
            char label[6 * 256 + 1];
            srv__label(label, sizeof label, cats[i].name);
            double v = f == 0   ? (double)st->served_generation
                       : f == 1 ? (double)st->index_generation
                       : f == 2 ? (double)st->index_vectors
                       : f == 3 ? (double)st->delta_entities
                       : f == 4 ? (st->rebuild.state == VIX_REBUILD_RUNNING)
                                : st->rebuild.seconds;
            srv__emit(t, "%s{catalog=\"%s\"} %.9g\n", families[f].name, label, v);
        }
    }
    free(cats);
}

int srv_metrics_render(srv_metrics *m, vix_resolver *resolver, int64_t in_flight, char **ret_text,
                       size_t *ret_len, erd_diag *diag)
{
    if (!m || !ret_text || !ret_len)
        return erd_fail(diag, ERD_EINVAL, "srv_metrics_render: missing argument");
    srv__text t = {malloc(8192), 0, 8192, false};
    if (!t.p)
        return erd_fail(diag, ERD_ENOMEM, "out of memory rendering metrics");
    t.p[0] = '\0';

    srv__head(&t, "erd_http_requests_total", "counter", "HTTP requests answered, by route and status.");
    for (size_t r = 0; r < m->n_routes; r++) {
        for (size_t s = 0; s < SRV__STATUS_N; s++) {
            uint64_t v = atomic_load_explicit(&m->per_route[r].status[s], memory_order_relaxed);
            if (v)
                srv__emit(&t, "erd_http_requests_total{route=\"%s\",status=\"%zu\"} %" PRIu64 "\n",
                          m->routes[r], s + SRV__STATUS_MIN, v);
        }
    }

    srv__head(&t, "erd_http_request_duration_seconds", "histogram",
              "Time from the first byte of a request to its completion, by route.");
    for (size_t r = 0; r < m->n_routes; r++) {
        uint64_t cum = 0;
        for (size_t b = 0; b <= SRV__NB; b++) {
            cum += atomic_load_explicit(&m->per_route[r].bucket[b], memory_order_relaxed);
            if (b < SRV__NB)
                srv__emit(&t, "erd_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %" PRIu64 "\n",
                          m->routes[r], srv__bounds[b], cum);
            else
                srv__emit(&t, "erd_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %" PRIu64 "\n",
                          m->routes[r], cum);
        }
        double sum = (double)atomic_load_explicit(&m->per_route[r].sum_ns, memory_order_relaxed) / 1e9;
        srv__emit(&t, "erd_http_request_duration_seconds_sum{route=\"%s\"} %.9f\n", m->routes[r], sum);
        /* _count is the +Inf bucket by definition: taken from the same
         * snapshot so the two never disagree. */
        srv__emit(&t, "erd_http_request_duration_seconds_count{route=\"%s\"} %" PRIu64 "\n",
                  m->routes[r], cum);
    }

    srv__head(&t, "erd_http_requests_in_flight", "gauge", "Requests being handled now.");
    srv__emit(&t, "erd_http_requests_in_flight %" PRId64 "\n", in_flight);

    srv__head(&t, "erd_resolve_stage_seconds_total", "counter",
              "Time spent in each stage of resolves, summed over requests.");
    for (size_t i = 0; i < SRV__NSTAGES; i++)
        srv__emit(&t, "erd_resolve_stage_seconds_total{stage=\"%s\"} %.9f\n", srv__stage_names[i],
                  (double)atomic_load_explicit(&m->stage_ns[i], memory_order_relaxed) / 1e9);

    srv__head(&t, "erd_config_reloads_total", "counter", "Configuration reloads (SIGHUP), by result.");
    srv__emit(&t, "erd_config_reloads_total{result=\"ok\"} %" PRIu64 "\n",
              (uint64_t)atomic_load_explicit(&m->reloads_ok, memory_order_relaxed));
    srv__emit(&t, "erd_config_reloads_total{result=\"error\"} %" PRIu64 "\n",
              (uint64_t)atomic_load_explicit(&m->reloads_failed, memory_order_relaxed));

    if (resolver) {
        uint64_t lookups = 0, hits = 0;
        vix_resolver_g2p_stats(resolver, &lookups, &hits);
        srv__head(&t, "erd_g2p_cache_hits_total", "counter", "G2P lookups answered from the phoneme cache.");
        srv__emit(&t, "erd_g2p_cache_hits_total %" PRIu64 "\n", hits);
        srv__head(&t, "erd_g2p_cache_lookups_total", "counter", "G2P lookups.");
        srv__emit(&t, "erd_g2p_cache_lookups_total %" PRIu64 "\n", lookups);
        srv__head(&t, "erd_catalogs", "gauge", "Catalogs with a loaded index.");
        srv__emit(&t, "erd_catalogs %zu\n", vix_resolver_catalog_count(resolver));
        srv__live_catalogs(&t, resolver);
    }
    srv__resident(&t);
    srv__head(&t, "erd_build_info", "gauge", "Always 1; the labels say which erd is running.");
    srv__emit(&t, "erd_build_info{version=\"%s\"} 1\n", SRV_VERSION);

    if (t.failed) {
        free(t.p);
        return erd_fail(diag, ERD_ENOMEM, "out of memory rendering metrics");
    }
    *ret_text = t.p;
    *ret_len = t.len;
    return ERD_OK;
}
