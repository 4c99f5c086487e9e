/* Prometheus metrics of erd serve.  Recording is lock-free (C11 atomics on
 * fixed arrays) so the request path never waits on a scrape; rendering reads
 * the counters one by one, so a scrape racing requests may be off by the
 * requests in between, never torn within one number.
 *
 * Exposed (text format 0.0.4):
 *   erd_http_requests_total{route,status}           counter
 *   erd_http_request_duration_seconds{route}        histogram, SRV_METRICS_BUCKETS
 *   erd_http_requests_in_flight                     gauge
 *   erd_resolve_stage_seconds_total{stage}          counter (g2p, encode, search, aggregate)
 *   erd_g2p_cache_hits_total, erd_g2p_cache_lookups_total
 *   erd_index_vectors{catalog}, erd_catalogs        gauges
 *   erd_catalog_generation, erd_index_generation, erd_delta_entities,
 *   erd_rebuild_running, erd_rebuild_last_seconds   gauges per {catalog}
 *   erd_config_reloads_total{result}                counter (ok, error)
 *   erd_build_info{version}                         gauge, always 1 */
#ifndef SRV_METRICS_H
#define SRV_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "index/vix_resolve.h"
#include "proto/erd_error.h"

/* erd's release, as `erd --version` prints it (the integration suite checks
 * they agree). */
#define SRV_VERSION "0.1.0"

/* Most route labels a server declares, its "other" label included. */
#define SRV_METRICS_MAX_ROUTES 16

/* Content-Type of the rendered text. */
#define SRV_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

typedef struct srv_metrics srv_metrics;

/* routes[0..n_routes) are the route labels, in the index order the record
 * calls use; they must outlive the metrics. */
int srv_metrics_create(const char *const *routes, size_t n_routes, srv_metrics **ret, erd_diag *diag);
void srv_metrics_destroy(srv_metrics *m); /* accepts NULL */

/* A request of route index `route` was answered with status (100..599;
 * anything else is not recorded at all) after ns nanoseconds. */
void srv_metrics_request(srv_metrics *m, size_t route, unsigned status, uint64_t ns);

/* Adds one resolve's stage times: the request body's parse, the
 * resolver's own stages, and the reply's serialisation. */
void srv_metrics_stages(srv_metrics *m, uint64_t parse_ns, const vix_timing *t,
                        uint64_t serialise_ns);

void srv_metrics_reload(srv_metrics *m, bool ok);

/* Renders every metric into a malloc'd buffer (release with free()).
 * resolver may be NULL (no G2P or catalog metrics then).  ERD_ENOMEM. */
int srv_metrics_render(srv_metrics *m, vix_resolver *resolver, int64_t in_flight, char **ret_text,
                       size_t *ret_len, erd_diag *diag);

#endif
