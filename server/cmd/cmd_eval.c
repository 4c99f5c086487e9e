/* erd eval: accuracy on a spoken-queries file, in process or through a
 * running server over HTTP, so both paths are measured the same way. */
#include <curl/curl.h>
#include <unistd.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "proto/erd_clock.h"
#include "config/cfg.h"
#include "index/vix_resolve.h"
#include "index/vix_store.h"
#include "phonetics/pho_text.h"
#include "server/cmd/cmd_cli.h"
#include "server/cmd/cmd_opt.h"
#include "server/cmd/cmd_score.h"
#include "server/http/srv_explain.h"

#define EVAL_K 5
#define EVAL_DOMAINS_MAX 16
#define EVAL_MAP_MAX 16

enum { EVAL_1BEST, EVAL_NBEST, EVAL_MODES };

typedef struct eval_tally {
    char domain[64];
    unsigned n;
    unsigned hit1[EVAL_MODES], hit5[EVAL_MODES];
    double rr[EVAL_MODES];
} eval_tally;

/* Open-set measurement: per n-best resolve, what kind of query it was and
 * how its top result scored. */
enum { EVAL_RIGHT, EVAL_WRONG, EVAL_NONE, EVAL_OOD, EVAL_CLASSES };

typedef struct eval_open {
    struct eval_open_item {
        size_t domain; /* index into the tallies */
        int cls;       /* EVAL_RIGHT .. EVAL_OOD */
        double top;
        int match;     /* the answer's "match" */
    } *v;
    size_t n, cap;
} eval_open;

typedef struct eval_ctx {
    const char *no_match; /* no_match_threshold spec, in process */
    vix_store *store;
    vix_resolver *resolver; /* in-process mode */
    CURL *curl;             /* HTTP mode */
    const char *url;
    char *body;
    size_t body_len, body_cap;
    double *lat_ms;
    size_t n_lat, cap_lat;
} eval_ctx;

/* Predicted probabilities of top results and whether they were right. */
typedef struct eval_rel {
    double *p;
    uint8_t *y;
    size_t n, cap;
} eval_rel;

static void eval__rel_add(eval_rel *r, double p, int right)
{
    if (r->n == r->cap) {
        size_t ncap = r->cap ? r->cap * 2 : 1024;
        double *np = realloc(r->p, ncap * sizeof *np);
        if (np)
            r->p = np;
        uint8_t *ny = realloc(r->y, ncap);
        if (ny)
            r->y = ny;
        if (!np || !ny)
            return; /* a shorter table, not a failed evaluation */
        r->cap = ncap;
    }
    r->p[r->n] = p;
    r->y[r->n++] = (uint8_t)right;
}

static size_t eval__curl_write(char *data, size_t size, size_t nmemb, void *user)
{
    eval_ctx *ctx = user;
    size_t n = size * nmemb;
    if (ctx->body_len + n + 1 > ctx->body_cap) {
        size_t ncap = ctx->body_cap ? ctx->body_cap : 4096;
        while (ncap < ctx->body_len + n + 1)
            ncap *= 2;
        if (ncap > (16u << 20))
            return 0; /* a resolve answer is never this large */
        char *p = realloc(ctx->body, ncap);
        if (!p)
            return 0;
        ctx->body = p;
        ctx->body_cap = ncap;
    }
    memcpy(ctx->body + ctx->body_len, data, n);
    ctx->body_len += n;
    ctx->body[ctx->body_len] = '\0';
    return n;
}

/* Resolves hyps through HTTP or in process; writes up to EVAL_K result ids
 * (malloc'd strings) into ret_ids. */
static int eval__resolve(eval_ctx *ctx, const char *catalog, json_t *nbest, size_t n_hyps,
                         char *ret_ids[EVAL_K], size_t *ret_n, double *ret_top, int *ret_match,
                         char *err, size_t errcap)
{
    double top = 0;
    int match = 0;
    size_t n_out = 0;
    double t0 = erd_now_s();
    int rc = 0;
    if (ctx->curl) {
        json_t *req = json_object(), *hyps = json_array();
        for (size_t i = 0; i < n_hyps; i++)
            json_array_append(hyps, json_array_get(nbest, i));
        json_object_set_new(req, "catalog", json_string(catalog));
        json_object_set_new(req, "hypotheses", hyps);
        json_object_set_new(req, "k", json_integer(EVAL_K));
        char *payload = json_dumps(req, JSON_COMPACT);
        json_decref(req);
        ctx->body_len = 0;
        curl_easy_setopt(ctx->curl, CURLOPT_POSTFIELDS, payload);
        CURLcode cc = curl_easy_perform(ctx->curl);
        free(payload);
        long status = 0;
        curl_easy_getinfo(ctx->curl, CURLINFO_RESPONSE_CODE, &status);
        if (cc != CURLE_OK) {
            snprintf(err, errcap, "%s", curl_easy_strerror(cc));
            return -1;
        }
        json_t *resp = json_loadb(ctx->body ? ctx->body : "", ctx->body_len, 0, NULL);
        json_t *results = json_object_get(resp, "results");
        if (status != 200 || !json_is_array(results)) {
            snprintf(err, errcap, "HTTP %ld: %.200s", status, ctx->body ? ctx->body : "");
            json_decref(resp);
            return -1;
        }
        match = json_is_true(json_object_get(resp, "match"));
        size_t i;
        json_t *r;
        json_array_foreach(results, i, r)
        {
            const char *id = json_string_value(json_object_get(r, "id"));
            if (id && n_out == 0)
                top = json_number_value(json_object_get(r, "score"));
            if (id && n_out < EVAL_K)
                ret_ids[n_out++] = strdup(id);
        }
        json_decref(resp);
    } else {
        vix_hypothesis hyps[64];
        vix_result results[EVAL_K];
        erd_diag diag = {0};
        n_hyps = cmd_nbest(nbest, hyps, n_hyps < 64 ? n_hyps : 64);
        size_t n_res = 0;
        vix_view *view = vix_resolver_acquire(ctx->resolver);
        rc = vix_resolve_in(ctx->resolver, view, catalog, hyps, n_hyps, EVAL_K, results, &n_res,
                            NULL, NULL, &diag);
        match = rc == ERD_OK && n_res &&
                results[0].score >= srv_no_match_threshold(ctx->no_match, -1, ctx->resolver, view,
                                                           catalog);
        vix_view_release(view);
        if (rc < 0) {
            snprintf(err, errcap, "%s", erd_diag_message(&diag, rc));
            return -1;
        }
        for (size_t i = 0; i < n_res; i++)
            ret_ids[n_out++] = strdup(results[i].ext_id);
        if (n_res)
            top = results[0].score;
    }
    if (ctx->n_lat == ctx->cap_lat) {
        size_t ncap = ctx->cap_lat ? ctx->cap_lat * 2 : 1024;
        double *p = realloc(ctx->lat_ms, ncap * sizeof *p);
        if (p) {
            ctx->lat_ms = p;
            ctx->cap_lat = ncap;
        }
    }
    if (ctx->n_lat < ctx->cap_lat)
        ctx->lat_ms[ctx->n_lat++] = (erd_now_s() - t0) * 1e3;
    *ret_n = n_out;
    *ret_top = top;
    *ret_match = match;
    return rc;
}

static void eval__open_add(eval_open *o, size_t domain, int cls, double top, int match)
{
    if (o->n == o->cap) {
        size_t ncap = o->cap ? o->cap * 2 : 1024;
        struct eval_open_item *v = realloc(o->v, ncap * sizeof *v);
        if (!v)
            return;
        o->v = v;
        o->cap = ncap;
    }
    o->v[o->n++] = (struct eval_open_item){domain, cls, top, match};
}

/* The open-set figures of one domain (SIZE_MAX: all): how well the top
 * score tells right answers from queries whose entity the catalog lacks
 * (AUROC; share of them rejected at the threshold keeping 90 % of the
 * right), and what the configured threshold's "match" does. */
static void eval__open_print(FILE *out, const eval_open *o, size_t domain, const char *name)
{
    size_t cnt[EVAL_CLASSES] = {0}, matched[EVAL_CLASSES] = {0};
    double *sc[EVAL_CLASSES];
    for (int c = 0; c < EVAL_CLASSES; c++)
        sc[c] = malloc((o->n ? o->n : 1) * sizeof *sc[c]);
    for (size_t i = 0; i < o->n; i++) {
        const struct eval_open_item *it = &o->v[i];
        if (domain != SIZE_MAX && it->domain != domain)
            continue;
        if (sc[it->cls])
            sc[it->cls][cnt[it->cls]] = it->top;
        cnt[it->cls]++;
        matched[it->cls] += it->match != 0;
    }
    for (int c = 0; c < EVAL_CLASSES; c++)
        if (!sc[c])
            cnt[c] = 0;
    double t = cmd_keep_threshold(sc[EVAL_RIGHT], cnt[EVAL_RIGHT], 0.9);
    size_t rejected = 0;
    for (size_t i = 0; i < cnt[EVAL_NONE]; i++)
        rejected += sc[EVAL_NONE][i] < t;
    size_t in = cnt[EVAL_RIGHT] + cnt[EVAL_WRONG];
#define EVAL_PCT(a, b) ((b) ? 100.0 * (double)(a) / (double)(b) : 0.0)
    fprintf(out, "open set %-6s n-best: %zu with an answer: acc@1 %.3f, right and \"match\": "
                 "true %.3f",
            name, in, in ? (double)cnt[EVAL_RIGHT] / (double)in : 0.0,
            in ? (double)matched[EVAL_RIGHT] / (double)in : 0.0);
    if (cnt[EVAL_NONE])
        fprintf(out, "; %zu without: AUROC right vs without %.4f, the threshold keeping 90 %% of "
                     "right answers (%.4f) rejects %.1f %% of those without, \"match\": false "
                     "for %.1f %% of them",
                cnt[EVAL_NONE], cmd_auroc(sc[EVAL_RIGHT], cnt[EVAL_RIGHT], sc[EVAL_NONE],
                                          cnt[EVAL_NONE]),
                t, EVAL_PCT(rejected, cnt[EVAL_NONE]),
                EVAL_PCT(cnt[EVAL_NONE] - matched[EVAL_NONE], cnt[EVAL_NONE]));
    if (cnt[EVAL_OOD])
        fprintf(out, "; out of domain: \"match\": false for %.1f %% of %zu",
                EVAL_PCT(cnt[EVAL_OOD] - matched[EVAL_OOD], cnt[EVAL_OOD]), cnt[EVAL_OOD]);
#undef EVAL_PCT
    fputc('\n', out);
    for (int c = 0; c < EVAL_CLASSES; c++)
        free(sc[c]);
}

static int eval__cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void eval__print_row(FILE *out, const eval_tally *t, int json)
{
    static const char *const mode_names[EVAL_MODES] = {"1-best", "n-best"};
    for (int m = 0; m < EVAL_MODES; m++) {
        double n = t->n ? (double)t->n : 1;
        if (json)
            fprintf(out,
                    "{\"domain\":\"%s\",\"mode\":\"%s\",\"queries\":%u,\"acc1\":%.4f,"
                    "\"recall5\":%.4f,\"mrr\":%.4f}\n",
                    t->domain, mode_names[m], t->n, t->hit1[m] / n, t->hit5[m] / n, t->rr[m] / n);
        else
            fprintf(out, "%-8s %-7s %7u %7.3f %9.3f %7.3f\n", t->domain, mode_names[m], t->n,
                    t->hit1[m] / n, t->hit5[m] / n, t->rr[m] / n);
    }
}

typedef struct eval_args {
    const char *db, *queries, *url, *only_domain, *config, *errors_path;
    const char *maps[EVAL_MAP_MAX]; /* DOMAIN=CATALOG, split by eval__args */
    const char *map_to[EVAL_MAP_MAX];
    size_t n_map;
    long limit; /* -1: all */
    int json, reliability, open_set;
} eval_args;

/* Parses and checks erd eval's options into a; 1 to run, else 0 with the
 * exit code in *ret_exit. */
static int eval__args(int argc, char **argv, eval_args *a, int *ret_exit)
{
    const cmd_opt opts[] = {
        CMD_STR("db", 'd', "FILE", &a->db, "catalog store (gold entities are looked up here)"),
        CMD_STR("queries", 'Q', "FILE", &a->queries,
                "queries, e.g. ../shared/data/queries/dev.jsonl"),
        CMD_STR("url", 'u', "URL", &a->url,
                "resolve through a running erd serve at URL\n(default: in process)"),
        CMD_LIST("map", 'm', "DOMAIN=CAT", a->maps, &a->n_map,
                 "catalog for a domain (default: same name)"),
        CMD_STR("domain", 'D', "D", &a->only_domain, "only queries of domain D"),
        CMD_LONG("limit", 'n', "N", &a->limit, 0, (double)LONG_MAX, "only the first N queries"),
        CMD_STR("errors", 0, "FILE", &a->errors_path,
                "write wrongly resolved n-best queries as JSON lines"),
        CMD_FLAG("json", 'j', &a->json, "one JSON object per row"),
        CMD_FLAG("reliability", 0, &a->reliability,
                 "also print how well the top result's score works as\n"
                 "a probability: bins, ECE and Brier score per mode"),
        CMD_FLAG("open-set", 0, &a->open_set,
                 "also resolve queries whose entity is not in the\n"
                 "catalog, and out-of-domain ones (\"entity_id\": null),\n"
                 "n-best: AUROC of the top score, right answers vs\n"
                 "queries without one; the share of those rejected at\n"
                 "the threshold keeping 90 % of right answers; what\n"
                 "\"match\" answers under the configured threshold\n"
                 "(deploy/eval-open-set.sh builds such a catalog)"),
        CMD_STR("config", 0, "FILE", &a->config, "configuration file"),
    };
    const cmd_spec spec = CMD_SPEC_FULL("eval", "--db FILE --queries FILE [OPTIONS]",
        "Resolves each spoken query (JSON lines with domain, entity_id and an\n"
        "nbest list of {text, score}) with its first hypothesis only and with the\n"
        "whole n-best list, and prints acc@1, recall@5 and MRR per domain.  A\n"
        "result counts as right when it shares a normalised name or alias with\n"
        "the gold entity (catalogs hold duplicate titles).", opts, "queries", 0, 0);
    /* below its bound: unset (all queries), so --help prints no default */
    a->limit = -1;
    if (!cmd_opt_parse(&spec, argc, argv, ret_exit))
        return 0;
    *ret_exit = CMD_EXIT_USAGE;
    for (size_t i = 0; i < a->n_map; i++) {
        char *eq = strchr(a->maps[i], '=');
        if (!eq) {
            fprintf(stderr, "erd eval: --map wants DOMAIN=CATALOG (at most %d)\n", EVAL_MAP_MAX);
            return 0;
        }
        *eq = '\0';
        a->map_to[i] = eq + 1;
    }
    return 1;
}

/* One evaluation's running state. */
typedef struct eval_run {
    const eval_args *a;
    eval_ctx ctx;
    eval_open open;
    eval_rel rel[EVAL_MODES];
    eval_tally tallies[EVAL_DOMAINS_MAX];
    size_t n_tallies;
    unsigned n_failed, n_nogold;
    cmd_keys *gold, *got;
    FILE *errors;
    struct curl_slist *headers;
} eval_run;

/* The resolver: over HTTP at a->url, else in process. */
static int eval__connect(eval_run *r, const cfg_config *cfg, const char *db, erd_diag *diag)
{
    eval_ctx *ctx = &r->ctx;
    int rc;
    if (r->a->url) {
        char endpoint[1024];
        snprintf(endpoint, sizeof endpoint, "%s/v1/resolve", r->a->url);
        curl_global_init(CURL_GLOBAL_DEFAULT);
        ctx->curl = curl_easy_init();
        if (!ctx->curl)
            return erd_fail(diag, ERD_ENOMEM, "curl_easy_init failed");
        r->headers = curl_slist_append(NULL, "Content-Type: application/json");
        curl_easy_setopt(ctx->curl, CURLOPT_URL, endpoint);
        curl_easy_setopt(ctx->curl, CURLOPT_HTTPHEADER, r->headers);
        curl_easy_setopt(ctx->curl, CURLOPT_WRITEFUNCTION, eval__curl_write);
        curl_easy_setopt(ctx->curl, CURLOPT_WRITEDATA, ctx);
        curl_easy_setopt(ctx->curl, CURLOPT_TIMEOUT, 30L);
        return ERD_OK;
    }
    vix_resolver_opts ro = {.db_path = db, .g2p_voice = cfg->g2p_voice,
                            .g2p_cache_entries = cfg->g2p_cache_entries,
                            .candidates = (size_t)cfg->candidates,
                            .ivf_search = cfg->ivf_search};
    char rerank[2048], calibration[2048];
    ro.rerank = cmd_rerank_spec(cfg->rerank, rerank, sizeof rerank);
    ro.calibration = cmd_rerank_spec(cfg->calibration, calibration, sizeof calibration);
    rc = vix_resolver_open(&ro, &ctx->resolver, diag);
    if (rc < 0)
        return rc;
    for (size_t i = 0; r->a->reliability && i < vix_resolver_catalog_count(ctx->resolver); i++) {
        erd_diag d = {0};
        int cr = vix_resolver_calibrated(ctx->resolver, i, &d);
        if (cr < 0)
            fprintf(stderr, "erd eval: %s: %s\n", vix_resolver_catalog_name(ctx->resolver, i),
                    erd_diag_message(&d, cr));
    }
    return ERD_OK;
}

static void eval__write_error(FILE *errors, json_t *q, const char *gold_id, int rank,
                              char *const *ids, size_t n_ids, json_t *nbest)
{
    json_t *e = json_object();
    json_object_set(e, "qid", json_object_get(q, "qid"));
    json_object_set(e, "spoken", json_object_get(q, "spoken"));
    json_object_set_new(e, "gold", json_string(gold_id));
    json_object_set_new(e, "rank", json_integer(rank));
    json_t *arr = json_array();
    for (size_t i = 0; i < n_ids; i++)
        json_array_append_new(arr, json_string(ids[i]));
    json_object_set_new(e, "got", arr);
    json_object_set(e, "nbest", nbest);
    json_dumpf(e, errors, JSON_COMPACT);
    fputc('\n', errors);
    json_decref(e);
}

/* The tally of domain, a new one while there is room; NULL when full. */
static eval_tally *eval__tally(eval_run *r, const char *domain)
{
    for (size_t i = 0; i < r->n_tallies; i++)
        if (!strcmp(r->tallies[i].domain, domain))
            return &r->tallies[i];
    if (r->n_tallies >= EVAL_DOMAINS_MAX - 1)
        return NULL;
    eval_tally *t = &r->tallies[r->n_tallies++];
    snprintf(t->domain, sizeof t->domain, "%s", domain);
    return t;
}

/* One parsed query. */
typedef struct eval_query {
    json_t *q, *nbest;
    const char *catalog, *gold_id;
    int64_t catalog_id;
    int ood, absent;
    unsigned lineno;
} eval_query;

/* Resolves q in mode m (1-best or n-best) and counts the answer. */
static void eval__mode(eval_run *r, eval_tally *t, const eval_query *eq, int m)
{
    const eval_args *a = r->a;
    size_t n_hyps = m == EVAL_1BEST ? 1 : json_array_size(eq->nbest);
    char *ids[EVAL_K];
    size_t n_ids = 0;
    char err[512];
    double top = 0;
    int match = 0;
    if (n_hyps == 0 || eval__resolve(&r->ctx, eq->catalog, eq->nbest, n_hyps, ids, &n_ids, &top,
                                     &match, err, sizeof err) < 0) {
        if (n_hyps)
            fprintf(stderr, "erd eval: %s:%u: %s\n", a->queries, eq->lineno, err);
        r->n_failed++;
        return;
    }
    int rank = 0;
    for (size_t i = 0; !eq->absent && i < n_ids; i++) {
        if (!rank && cmd_keys_for(r->ctx.store, eq->catalog_id, ids[i], r->got) == ERD_OK &&
            cmd_keys_match(r->gold, r->got))
            rank = (int)i + 1;
    }
    if (a->open_set && m == EVAL_NBEST)
        eval__open_add(&r->open, (size_t)(t - r->tallies),
                       eq->ood      ? EVAL_OOD
                       : eq->absent ? EVAL_NONE
                       : rank == 1  ? EVAL_RIGHT
                                    : EVAL_WRONG,
                       top, match);
    if (!eq->absent) {
        if (rank == 1)
            t->hit1[m]++;
        if (rank >= 1 && rank <= 5)
            t->hit5[m]++;
        if (rank)
            t->rr[m] += 1.0 / rank;
        if (a->reliability && n_ids)
            eval__rel_add(&r->rel[m], top, rank == 1);
        if (r->errors && m == EVAL_NBEST && rank != 1)
            eval__write_error(r->errors, eq->q, eq->gold_id, rank, ids, n_ids, eq->nbest);
    }
    for (size_t i = 0; i < n_ids; i++)
        free(ids[i]);
}

/* One line of the queries file. */
static void eval__line(eval_run *r, const char *line, size_t len, unsigned lineno)
{
    const eval_args *a = r->a;
    json_error_t jerr;
    eval_query eq = {.lineno = lineno};
    eq.q = json_loadb(line, len, 0, &jerr);
    const char *domain = json_string_value(json_object_get(eq.q, "domain"));
    eq.gold_id = json_string_value(json_object_get(eq.q, "entity_id"));
    eq.nbest = json_object_get(eq.q, "nbest");
    eq.ood = a->open_set && json_is_null(json_object_get(eq.q, "entity_id"));
    if (!domain || (!eq.gold_id && !eq.ood) || !json_is_array(eq.nbest)) {
        if (len > 1) {
            fprintf(stderr, "erd eval: %s:%u: not a query (%s)\n", a->queries, lineno,
                    eq.q ? "needs domain, entity_id and nbest" : jerr.text);
            r->n_failed++;
        }
        goto out;
    }
    if (a->only_domain && strcmp(domain, a->only_domain) != 0)
        goto out;
    eq.catalog = domain;
    for (size_t i = 0; i < a->n_map; i++)
        if (!strcmp(a->maps[i], domain))
            eq.catalog = a->map_to[i];
    int known = vix_store_catalog_find(r->ctx.store, eq.catalog, &eq.catalog_id, NULL) == ERD_OK;
    eq.absent = eq.ood || !known ||
                cmd_keys_for(r->ctx.store, eq.catalog_id, eq.gold_id, r->gold) < 0 ||
                r->gold->n == 0;
    if (eq.absent && !(a->open_set && known)) {
        r->n_nogold++;
        goto out;
    }
    eval_tally *t = eval__tally(r, domain);
    if (!t)
        goto out;
    t->n += !eq.absent;
    for (int m = eq.absent ? EVAL_NBEST : 0; m < EVAL_MODES; m++)
        eval__mode(r, t, &eq, m);
out:
    json_decref(eq.q);
}

/* The tables: per domain and in all, open-set, reliability, latency. */
static void eval__report(eval_run *r, double t_start)
{
    const eval_args *a = r->a;
    eval_ctx *ctx = &r->ctx;
    eval_tally all = {.domain = "all"};
    for (size_t i = 0; i < r->n_tallies; i++) {
        all.n += r->tallies[i].n;
        for (int m = 0; m < EVAL_MODES; m++) {
            all.hit1[m] += r->tallies[i].hit1[m];
            all.hit5[m] += r->tallies[i].hit5[m];
            all.rr[m] += r->tallies[i].rr[m];
        }
    }
    if (!a->json)
        printf("%-8s %-7s %7s %7s %9s %7s\n", "domain", "mode", "queries", "acc@1", "recall@5",
               "MRR");
    for (size_t i = 0; i < r->n_tallies; i++)
        eval__print_row(stdout, &r->tallies[i], a->json);
    if (r->n_tallies > 1)
        eval__print_row(stdout, &all, a->json);
    for (size_t i = 0; a->open_set && i < r->n_tallies; i++)
        eval__open_print(stdout, &r->open, i, r->tallies[i].domain);
    if (a->open_set && r->n_tallies > 1)
        eval__open_print(stdout, &r->open, SIZE_MAX, "all");
    for (int m = EVAL_MODES - 1; a->reliability && m >= 0; m--)
        cmd_reliability_print(stdout, m == EVAL_NBEST ? "top result, n-best" : "top result, 1-best",
                              r->rel[m].p, r->rel[m].y, r->rel[m].n);
    if (ctx->n_lat) {
        qsort(ctx->lat_ms, ctx->n_lat, sizeof *ctx->lat_ms, eval__cmp_double);
        double sum = 0;
        for (size_t i = 0; i < ctx->n_lat; i++)
            sum += ctx->lat_ms[i];
        fprintf(a->json ? stderr : stdout,
                "%zu resolves %s in %.1f s: latency mean %.3f ms, p50 %.3f ms, p99 %.3f ms\n",
                ctx->n_lat, a->url ? "over HTTP" : "in process", erd_now_s() - t_start,
                sum / (double)ctx->n_lat, ctx->lat_ms[ctx->n_lat / 2],
                ctx->lat_ms[(size_t)((double)ctx->n_lat * 0.99)]);
    }
    if (r->n_nogold)
        fprintf(stderr, "erd eval: %u queries skipped: gold entity not in its catalog\n",
                r->n_nogold);
}

static void eval__run_free(eval_run *r)
{
    free(r->open.v);
    for (int m = 0; m < EVAL_MODES; m++) {
        free(r->rel[m].p);
        free(r->rel[m].y);
    }
    free(r->gold);
    free(r->got);
    free(r->ctx.body);
    free(r->ctx.lat_ms);
    if (r->ctx.curl) {
        curl_easy_cleanup(r->ctx.curl);
        curl_global_cleanup();
    }
    curl_slist_free_all(r->headers);
    vix_resolver_close(r->ctx.resolver);
    vix_store_close(r->ctx.store);
    if (r->errors)
        fclose(r->errors);
}

int cmd_eval(int argc, char **argv)
{
    eval_args a = {0};
    int ex;
    if (!eval__args(argc, argv, &a, &ex))
        return ex;
    cfg_config cfg;
    FILE *in = NULL;
    int rc = cmd_open_queries("eval", a.config, a.queries, &cfg, &in);
    if (rc)
        return rc;
    erd_diag diag = {0};
    const char *db = a.db ? a.db : cfg.db;
    eval_run *r = calloc(1, sizeof *r);
    if (!r) {
        fclose(in);
        return cmd_fail("eval", &diag, erd_fail(&diag, ERD_ENOMEM, "out of memory"));
    }
    r->a = &a;
    r->ctx.url = a.url;
    r->ctx.no_match = cfg.no_match_threshold;
    if (a.errors_path && !(r->errors = fopen(a.errors_path, "w"))) {
        perror(a.errors_path);
        fclose(in);
        free(r);
        return CMD_EXIT_FAIL;
    }
    char *line = NULL;
    size_t line_cap = 0;
    unsigned lineno = 0;
    double t_start = erd_now_s();

    rc = vix_store_open(db, VIX_STORE_READONLY, &r->ctx.store, &diag);
    if (rc == ERD_OK)
        rc = eval__connect(r, &cfg, db, &diag);
    if (rc < 0)
        goto out;
    r->gold = malloc(sizeof *r->gold);
    r->got = malloc(sizeof *r->got);
    if (!r->gold || !r->got) {
        rc = erd_fail(&diag, ERD_ENOMEM, "out of memory");
        goto out;
    }
    ssize_t len;
    while ((len = getline(&line, &line_cap, in)) != -1) {
        lineno++;
        if (a.limit >= 0 && lineno > (unsigned long)a.limit)
            break;
        eval__line(r, line, (size_t)len, lineno);
    }
    eval__report(r, t_start);
    if (r->n_failed) {
        fprintf(stderr, "erd eval: %u resolves failed\n", r->n_failed);
        rc = ERD_EINTERNAL;
        diag.code = 0;
    }
out:
    eval__run_free(r);
    free(r);
    free(line);
    fclose(in);
    if (rc < 0) {
        if (diag.code)
            fprintf(stderr, "erd eval: %s\n", erd_diag_message(&diag, rc));
        return cmd_exit_code(rc);
    }
    return CMD_EXIT_OK;
}
