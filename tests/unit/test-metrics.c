/* The Prometheus text: every line a comment or `name{labels} value`,
 * counters and histogram buckets adding up. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/http/srv_metrics.h"
#include "tap.h"

static const char *const routes[] = {"/v1/resolve", "/healthz", "other"};

/* Value of the sample whose name-and-labels part is exactly series, or -1. */
static double sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    return -1;
}

static bool well_formed(const char *text, char *bad, size_t cap)
{
    const char *p = text;
    while (*p) {
        const char *nl = strchr(p, '\n');
        if (!nl) {
            snprintf(bad, cap, "no newline at the end");
            return false;
        }
        size_t len = (size_t)(nl - p);
        char line[512];
        snprintf(line, sizeof line, "%.*s", (int)len, p);
        if (line[0] != '#') {
            size_t i = strspn(line, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_:");
            if (i == 0)
                goto bad;
            if (line[i] == '{') {
                const char *close = strrchr(line, '}');
                if (!close)
                    goto bad;
                i = (size_t)(close - line) + 1;
            }
            char *end;
            if (line[i] != ' ')
                goto bad;
            const char *v = line + i + 1;
            if (strcmp(v, "+Inf") && strcmp(v, "-Inf") && strcmp(v, "NaN")) {
                strtod(v, &end);
                if (end == v || *end)
                    goto bad;
            }
        } else if (strncmp(line, "# HELP ", 7) && strncmp(line, "# TYPE ", 7)) {
            goto bad;
        }
        p = nl + 1;
        continue;
    bad:
        snprintf(bad, cap, "%s", line);
        return false;
    }
    return true;
}

int main(void)
{
    srv_metrics *m = NULL;
    erd_diag d = {0};
    is_int(srv_metrics_create(routes, 0, &m, &d), ERD_EINVAL, "no routes refused");
    is_int(srv_metrics_create(routes, 3, &m, &d), ERD_OK, "created");

    srv_metrics_request(m, 0, 200, 2000000);     /* 2 ms */
    srv_metrics_request(m, 0, 200, 30000000);    /* 30 ms */
    srv_metrics_request(m, 0, 400, 100000);      /* 0.1 ms */
    srv_metrics_request(m, 2, 404, 50000);
    srv_metrics_request(m, 1, 200, 20000000000ull); /* 20 s: only +Inf */
    srv_metrics_request(m, 7, 200, 1);           /* no such route: ignored */
    srv_metrics_request(m, 1, 42, 1);            /* no such status: not recorded */
    vix_timing t = {.g2p_ns = 1500000000, .encode_ns = 1, .search_ns = 2, .aggregate_ns = 3};
    srv_metrics_stages(m, 250000000, &t, 4000);
    srv_metrics_reload(m, true);
    srv_metrics_reload(m, false);
    srv_metrics_reload(m, false);

    char *text = NULL;
    size_t len = 0;
    is_int(srv_metrics_render(m, NULL, 3, &text, &len, &d), ERD_OK, "rendered");
    ok(text && strlen(text) == len, "length matches");
    char bad[512] = "";
    ok(text && well_formed(text, bad, sizeof bad), "every line a comment or a sample (%s)", bad);
    is_int(sample(text, "erd_http_requests_total{route=\"/v1/resolve\",status=\"200\"}"), 2, "200s counted");
    is_int(sample(text, "erd_http_requests_total{route=\"/v1/resolve\",status=\"400\"}"), 1, "400s counted");
    is_int(sample(text, "erd_http_requests_total{route=\"other\",status=\"404\"}"), 1, "404 under other");
    ok(sample(text, "erd_http_requests_total{route=\"/healthz\",status=\"42\"}") < 0, "bogus status absent");
    is_int(sample(text, "erd_http_request_duration_seconds_bucket{route=\"/v1/resolve\",le=\"0.0005\"}"), 1,
           "0.1 ms in the first bucket");
    is_int(sample(text, "erd_http_request_duration_seconds_bucket{route=\"/v1/resolve\",le=\"0.0025\"}"), 2,
           "buckets are cumulative");
    is_int(sample(text, "erd_http_request_duration_seconds_bucket{route=\"/v1/resolve\",le=\"0.05\"}"), 3,
           "30 ms within 50 ms");
    is_int(sample(text, "erd_http_request_duration_seconds_count{route=\"/v1/resolve\"}"), 3, "count");
    is_int(sample(text, "erd_http_request_duration_seconds_bucket{route=\"/healthz\",le=\"10\"}"), 0,
           "20 s above the last bound");
    is_int(sample(text, "erd_http_request_duration_seconds_bucket{route=\"/healthz\",le=\"+Inf\"}"), 1,
           "+Inf holds everything");
    double sum = sample(text, "erd_http_request_duration_seconds_sum{route=\"/v1/resolve\"}");
    ok(sum > 0.0320 && sum < 0.0322, "sum in seconds (%f)", sum);
    is_int(sample(text, "erd_http_requests_in_flight"), 3, "in-flight gauge");
    double g2p = sample(text, "erd_resolve_stage_seconds_total{stage=\"g2p\"}");
    ok(g2p > 1.4999 && g2p < 1.5001, "g2p stage seconds (%f)", g2p);
    ok(sample(text, "erd_resolve_stage_seconds_total{stage=\"aggregate\"}") >= 0, "aggregate stage present");
    double parse = sample(text, "erd_resolve_stage_seconds_total{stage=\"parse\"}");
    ok(parse > 0.2499 && parse < 0.2501, "parse stage seconds (%f)", parse);
    ok(sample(text, "erd_resolve_stage_seconds_total{stage=\"serialise\"}") >= 0, "serialise stage present");
    is_int(sample(text, "erd_config_reloads_total{result=\"ok\"}"), 1, "reload ok counted");
    is_int(sample(text, "erd_config_reloads_total{result=\"error\"}"), 2, "reload errors counted");
    is_int(sample(text, "erd_build_info{version=\"" SRV_VERSION "\"}"), 1, "build info");
    ok(sample(text, "erd_resident_bytes{kind=\"anon\"}") > 4096 &&
           sample(text, "erd_resident_bytes{kind=\"file\"}") > 0,
       "resident memory, anonymous and file-backed (%g, %g)",
       sample(text, "erd_resident_bytes{kind=\"anon\"}"),
       sample(text, "erd_resident_bytes{kind=\"file\"}"));
    ok(strstr(text, "# TYPE erd_http_request_duration_seconds histogram\n") != NULL, "histogram typed");
    ok(strstr(text, "erd_g2p_cache") == NULL, "no G2P metrics without a resolver");
    ok(strstr(text, "erd_index_vectors") == NULL, "no index gauges without a resolver");
    free(text);
    srv_metrics_destroy(m);
    srv_metrics_destroy(NULL);
    return tap_done();
}
