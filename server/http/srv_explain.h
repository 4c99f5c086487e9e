/* The resolve answer beyond the ranked list: whether it is a match at all
 * (no_match_threshold, min_score), the explanation of each result
 * ("explain": true, erd resolve --explain) and POST /v1/analyze. */
#ifndef SRV_EXPLAIN_H
#define SRV_EXPLAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "index/vix_explain.h"
#include "index/vix_resolve.h"
#include "proto/erd_error.h"

/* The score a resolve of catalog must reach to answer "match": true: the
 * request's min_score when >= 0, else the configured no_match_threshold
 * (spec as config/cfg.h reads it), else the calibration file's threshold
 * when view's catalog is calibrated, else 0. */
double srv_no_match_threshold(const char *spec, double min_score, const vix_resolver *resolver,
                              const vix_view *view, const char *catalog);

/* An explained resolve as JSON: {"results": [...with "explain"...],
 * "match", "threshold", "hypotheses", "timing"}.  timing_ns holds
 * parse, normalise + g2p, encode, search, aggregate, rerank. */
typedef struct srv_answer {
    vix_resolver *resolver;     /* names the matched phrases (explain only) */
    const char *catalog;
    const vix_result *results;
    size_t n;
    bool match;
    double threshold;
    const vix_explain *explain; /* NULL: the plain answer */
    const vix_timing *timing;
    unsigned long long parse_ns;
} srv_answer;

/* The response body of a resolve: the plain writer's bytes plus "match"
 * when explain is NULL, the explained document otherwise. */
int srv_write_answer(const srv_answer *a, char **ret_json, size_t *ret_len, erd_diag *diag);

/* Resolves req in view and writes the answer: "match" under the
 * threshold (srv_no_match_threshold with spec), the explanation when the
 * request asks.  results has room for req->k; *ret_serialise_ns is the
 * time spent writing. */
struct srv_resolve_req;
int srv_resolve_answer(vix_resolver *resolver, vix_view *view, const struct srv_resolve_req *req,
                       const char *spec, unsigned long long parse_ns, vix_result *results,
                       vix_timing *ret_timing, unsigned long long *ret_serialise_ns,
                       char **ret_json, size_t *ret_len, erd_diag *diag);

/* The resolve behind srv_resolve_answer: results, threshold and match,
 * and the explanation when req asks (free with srv_answer_clear). */
int srv_answer_resolve(vix_resolver *resolver, vix_view *view, const struct srv_resolve_req *req,
                       const char *spec, vix_result *results, vix_timing *timing,
                       srv_answer *ret, erd_diag *diag);
void srv_answer_clear(srv_answer *a);

/* The answer for people (erd resolve): ranked results, with each one's
 * explanation when there is one, and whether it is a match. */
void srv_explain_print(FILE *out, const srv_answer *a);

/* POST /v1/analyze body {"text": ..., "catalog": ...} -> {"text" (normalised),
 * "ipa", "phones": [...], "word_starts": [...]}; catalog, when given, must
 * be served (ERD_ENOCATALOG otherwise). */
int srv_analyze(vix_resolver *resolver, const char *body, size_t len, size_t max_text_bytes,
                char **ret_json, size_t *ret_len, erd_diag *diag);

#endif
