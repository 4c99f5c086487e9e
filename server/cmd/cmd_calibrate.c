/* erd calibrate: runs the resolver (uncalibrated) on held-out simulated
 * queries, records each result's calibration features and whether it is
 * right, fits the two logistic models on one half of the queries (split by
 * gold entity) and reports reliability on the other half. */
#include "server/cmd/cmd_calibrate.h"

#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config/cfg.h"
#include "index/vix_calib.h"
#include "index/vix_resolve.h"
#include "server/cmd/cmd_cli.h"
#include "server/cmd/cmd_score.h"
#include "proto/erd_hash.h"

#define CAL_K_MAX 20
#define CAL_HYPS_MAX 64



typedef struct cal_rows {
    double *x;        /* n x VIX_CALIB_NFEAT */
    uint8_t *y, *rank, *mode, *half;
    uint8_t *absent;  /* 1: the query's entity is not in the catalog; 2: it asks for none */
    size_t *query;    /* index of the resolve a row came from */
    size_t n, cap;
} cal_rows;

static int cal__grow(cal_rows *r)
{
    if (r->n < r->cap)
        return ERD_OK;
    size_t ncap = r->cap ? r->cap * 2 : 4096;
    double *x = realloc(r->x, ncap * VIX_CALIB_NFEAT * sizeof *x);
    if (x)
        r->x = x;
    uint8_t **u8[] = {&r->y, &r->rank, &r->mode, &r->half, &r->absent};
    int ok = x != NULL;
    for (size_t i = 0; i < sizeof u8 / sizeof u8[0]; i++) {
        uint8_t *p = realloc(*u8[i], ncap);
        if (p)
            *u8[i] = p;
        ok &= p != NULL;
    }
    size_t *q = realloc(r->query, ncap * sizeof *q);
    if (q)
        r->query = q;
    if (!ok || !q)
        return ERD_ENOMEM;
    r->cap = ncap;
    return ERD_OK;
}

static void cal__rows_free(cal_rows *r)
{
    free(r->x);
    free(r->y);
    free(r->rank);
    free(r->mode);
    free(r->half);
    free(r->absent);
    free(r->query);
}

/* Split by gold entity so every query of one phrase lands on one side. */
static int cal__half(const char *gold_id)
{
    uint64_t h = erd_fnv1a64(ERD_FNV1A64_OFFSET, gold_id, strlen(gold_id));
    /* similar ids (sim:00001, sim:00002) differ in few bits: mix first */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return (int)(h >> 63);
}

/* Rows of one kind (top results or the ones below) of one half, copied
 * out for the fit. */
static int cal__select(const cal_rows *r, int top, int half, double **ret_x, uint8_t **ret_y,
                       size_t *ret_n)
{
    double *x = malloc((r->n ? r->n : 1) * VIX_CALIB_NFEAT * sizeof *x);
    uint8_t *y = malloc(r->n ? r->n : 1);
    size_t m = 0;
    if (!x || !y) {
        free(x);
        free(y);
        return ERD_ENOMEM;
    }
    for (size_t i = 0; i < r->n; i++) {
        if (r->half[i] != half || (r->rank[i] == 0) != top)
            continue;
        memcpy(x + m * VIX_CALIB_NFEAT, r->x + i * VIX_CALIB_NFEAT, VIX_CALIB_NFEAT * sizeof *x);
        y[m++] = r->y[i];
    }
    *ret_x = x;
    *ret_y = y;
    *ret_n = m;
    return ERD_OK;
}

/* Reliability of the calibrated top result (and a summary of the results
 * below it) on one half, per mode; with raw set, of the uncalibrated
 * score instead, for comparison. */
static void cal__report(FILE *out, const cal_rows *r, const vix_calib *c, int half, int raw)
{
    static const char *const mode_names[2] = {"1-best", "n-best"};
    double *p = malloc((r->n ? r->n : 1) * sizeof *p), *top = malloc((r->n ? r->n : 1) * sizeof *top);
    uint8_t *y = malloc(r->n ? r->n : 1);
    if (!p || !top || !y)
        goto out;
    for (size_t i = 0; i < r->n;) {
        size_t j = i;
        while (j < r->n && r->query[j] == r->query[i])
            j++;
        if (raw)
            for (size_t t = i; t < j; t++)
                p[t] = r->x[t * VIX_CALIB_NFEAT + VIX_CF_SCORE];
        else
            vix_calib_probs(c, r->x + i * VIX_CALIB_NFEAT, j - i, p + i);
        i = j;
    }
    for (int m = 1; m >= 0; m--) {
        size_t n = 0, n_rest = 0, right_rest = 0;
        double sum_rest = 0, max_sum = 0, list_sum = 0;
        for (size_t i = 0; i < r->n; i++) {
            if (r->half[i] != half || r->mode[i] != m)
                continue;
            if (r->rank[i] == 0) {
                if (list_sum > max_sum)
                    max_sum = list_sum;
                list_sum = 0;
                top[n] = p[i];
                y[n++] = r->y[i];
            } else {
                n_rest++;
                sum_rest += p[i];
                right_rest += r->y[i];
            }
            list_sum += p[i];
        }
        if (list_sum > max_sum)
            max_sum = list_sum;
        char title[160];
        snprintf(title, sizeof title, "%s, top result, %s, %s half", raw ? "uncalibrated score"
                                                                         : "calibrated",
                 mode_names[m], half ? "held-out" : "fitting");
        cmd_reliability_print(out, title, top, y, n);
        if (!raw && n_rest)
            fprintf(out, "  ranks 2+: %zu results, mean predicted %.4f, observed %.4f; "
                         "largest sum over one list %.3f\n",
                    n_rest, sum_rest / (double)n_rest, (double)right_rest / (double)n_rest,
                    max_sum);
    }
out:
    free(p);
    free(top);
    free(y);
}

/* Open-set figures of the calibrated top results of one half, n-best: how
 * well the top probability separates right answers from queries whose
 * entity the catalog lacks, and the threshold keeping 90 % of the right
 * answers (what the calibration file records as the default). */
static double cal__open_set(FILE *out, const cal_rows *r, const vix_calib *c, int half,
                            double keep)
{
    double *right = calloc(r->n ? r->n : 1, sizeof *right);
    double *none = calloc(r->n ? r->n : 1, sizeof *none);
    size_t n_right = 0, n_none = 0, n_wrong = 0, n_ood = 0, ood_rejected = 0;
    double *ood = calloc(r->n ? r->n : 1, sizeof *ood);
    double t = 0;
    if (!right || !none || !ood)
        goto out;
    for (size_t i = 0; i < r->n; i++) {
        if (r->half[i] != half || r->mode[i] != 1 || r->rank[i] != 0)
            continue;
        size_t j = i + 1;
        while (j < r->n && r->query[j] == r->query[i])
            j++;
        double p[CAL_K_MAX];
        vix_calib_probs(c, r->x + i * VIX_CALIB_NFEAT, j - i < CAL_K_MAX ? j - i : CAL_K_MAX, p);
        if (r->absent[i] == 2)
            ood[n_ood++] = p[0];
        else if (r->absent[i])
            none[n_none++] = p[0];
        else if (r->y[i])
            right[n_right++] = p[0];
        else
            n_wrong++;
    }
    t = cmd_keep_threshold(right, n_right, keep);
    size_t rejected = 0;
    for (size_t i = 0; i < n_none; i++)
        rejected += none[i] < t;
    for (size_t i = 0; i < n_ood; i++)
        ood_rejected += ood[i] < t;
    fprintf(out, "open set, n-best top results, %s half: %zu right, %zu wrong, %zu without an "
                 "answer in the catalog; AUROC right vs none %.4f; threshold keeping %.0f %% "
                 "of the right %.4f rejects %.1f %% of those without and %.1f %% of %zu "
                 "out-of-domain utterances\n",
            half ? "held-out" : "fitting", n_right, n_wrong, n_none,
            cmd_auroc(right, n_right, none, n_none), 100 * keep, t,
            n_none ? 100.0 * (double)rejected / (double)n_none : 0.0,
            n_ood ? 100.0 * (double)ood_rejected / (double)n_ood : 0.0, n_ood);
out:
    free(right);
    free(none);
    free(ood);
    return t;
}

static void cal__print_model(FILE *out, const char *name, const vix_calib_model *m)
{
    fprintf(out, "%s: intercept %.4f", name, m->w[0]);
    for (int f = 0; f < VIX_CALIB_NFEAT; f++)
        fprintf(out, ", %s %.4f", vix_calib_feature_name(f), m->w[1 + f]);
    fputc('\n', out);
}

int cmd_calibrate(int argc, char **argv)
{
    static const struct option opts[] = {
        {"db", required_argument, 0, 'd'},     {"queries", required_argument, 0, 'Q'},
        {"out", required_argument, 0, 'o'},    {"l2", required_argument, 0, 'l'},
        {"k", required_argument, 0, 'k'},      {"holdout-out", required_argument, 0, 'H'},
        {"limit", required_argument, 0, 'n'},  {"config", required_argument, 0, 'C'},
        {"open-set", no_argument, 0, 'O'},     {"keep", required_argument, 0, 'K'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *db = NULL, *queries = NULL, *out_path = NULL, *holdout_path = NULL;
    const char *config = NULL;
    double l2 = 1.0, keep = 0.95;
    long k = 10, limit = -1;
    int c, open_set = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "d:Q:o:l:k:H:n:C:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': db = optarg; break;
        case 'Q': queries = optarg; break;
        case 'o': out_path = optarg; break;
        case 'l':
            if (cmd_parse_real("calibrate", "l2", optarg, &l2) < 0)
                return CMD_EXIT_USAGE;
            break;
        case 'k':
        case 'n': {
            unsigned long long v;
            if (cmd_parse_uint("calibrate", c == 'k' ? "k" : "limit", optarg, LONG_MAX, &v) < 0)
                return CMD_EXIT_USAGE;
            *(c == 'k' ? &k : &limit) = (long)v;
            break;
        }
        case 'H': holdout_path = optarg; break;
        case 'C': config = optarg; break;
        case 'O': open_set = 1; break;
        case 'K':
            if (cmd_parse_real("calibrate", "keep", optarg, &keep) < 0)
                return CMD_EXIT_USAGE;
            break;
        case 'h':
            printf("usage: erd calibrate --db FILE --queries FILE --out FILE [OPTIONS]\n\n"
                   "Resolves held-out SIMULATED queries (dev format: domain = catalog,\n"
                   "entity_id, nbest) with their first hypothesis and with the whole list,\n"
                   "uncalibrated, under the configured encoder index and rerank; fits the\n"
                   "score calibration (P(result is right), L2 logistic regression) on the\n"
                   "queries of one half of the gold entities and prints its reliability on\n"
                   "the other half.  Never calibrate on the dev queries.\n\n"
                   "  --db FILE          catalog store of the simulated catalog\n"
                   "  --queries FILE     simulated queries (deploy/sim-eval.sh writes them)\n"
                   "  --out FILE         calibration file to write\n"
                   "  --l2 X             penalty on standardised weights (default 1)\n"
                   "  --k N              results per resolve used as rows (default 10, max %d)\n"
                   "  --holdout-out FILE write the held-out half's queries here (for erd eval\n"
                   "                     --reliability with the new file)\n"
                   "  --limit N          only the first N queries\n"
                   "  --config FILE      configuration file (rerank, candidates, ...)\n"
                   "  --open-set         keep queries whose entity is not in the catalog, and\n"
                   "                     queries with \"entity_id\": null (no catalog request\n"
                   "                     at all): every result of theirs is wrong.  Also picks\n"
                   "                     the no-match threshold the file records\n"
                   "  --keep X           that threshold keeps this share of the held-out\n"
                   "                     half's right top answers (default 0.95)\n",
                   CAL_K_MAX);
            return CMD_EXIT_OK;
        default:
            fprintf(stderr, "Try 'erd calibrate --help'.\n");
            return CMD_EXIT_USAGE;
        }
    }
    if (optind != argc || !queries || !out_path || !(l2 >= 0) || k < 2 || k > CAL_K_MAX ||
        !(keep > 0 && keep <= 1)) {
        fprintf(stderr, "erd calibrate: needs --queries and --out, l2 >= 0, 2 <= k <= %d\n"
                        "Try 'erd calibrate --help'.\n",
                CAL_K_MAX);
        return CMD_EXIT_USAGE;
    }
    cfg_config cfg;
    erd_diag diag = {0};
    int rc = cmd_load_config(config, &cfg, &diag);
    if (rc < 0) {
        fprintf(stderr, "erd calibrate: %s\n", erd_diag_message(&diag, rc));
        return CMD_EXIT_CONFIG;
    }
    if (!db)
        db = cfg.db;
    FILE *in = fopen(queries, "r");
    if (!in) {
        perror(queries);
        return CMD_EXIT_NOINPUT;
    }
    FILE *hold = NULL;
    vix_store *store = NULL;
    vix_resolver *resolver = NULL;
    cal_rows rows = {0};
    char *line = NULL;
    size_t line_cap = 0, n_queries = 0, n_nogold = 0, n_failed = 0, n_resolves = 0;
    double *fx = NULL, *fit_x = NULL;
    uint8_t *fit_y = NULL;
    vix_calib *cal = calloc(1, sizeof *cal);
    char encoder[VIX_CALIB_ID_MAX] = "";
    if (!cal) {
        rc = erd_fail(&diag, ERD_ENOMEM, "out of memory");
        goto out;
    }
    if (holdout_path && !(hold = fopen(holdout_path, "w"))) {
        rc = erd_fail(&diag, ERD_EIO, "%s: cannot write", holdout_path);
        goto out;
    }
    rc = vix_store_open(db, VIX_STORE_READONLY, &store, &diag);
    if (rc < 0)
        goto out;
    vix_resolver_opts ro = {.db_path = db, .g2p_voice = cfg.g2p_voice,
                            .g2p_cache_entries = cfg.g2p_cache_entries,
                            .candidates = (size_t)cfg.candidates, .calibration = "off"};
    char rerank[2048];
    ro.rerank = cmd_rerank_spec(cfg.rerank, rerank, sizeof rerank);
    rc = vix_resolver_open(&ro, &resolver, &diag);
    if (rc < 0)
        goto out;
    vix_resolver_rerank_id(resolver, cal->rerank_id, sizeof cal->rerank_id);
    fx = malloc((size_t)k * VIX_CALIB_NFEAT * sizeof *fx);
    if (!fx) {
        rc = erd_fail(&diag, ERD_ENOMEM, "out of memory");
        goto out;
    }

    ssize_t len;
    unsigned lineno = 0;
    while ((len = getline(&line, &line_cap, in)) != -1) {
        lineno++;
        if (limit >= 0 && lineno > (unsigned long)limit)
            break;
        json_t *q = json_loadb(line, (size_t)len, 0, NULL);
        const char *domain = json_string_value(json_object_get(q, "domain"));
        const char *gold = json_string_value(json_object_get(q, "entity_id"));
        json_t *nbest = json_object_get(q, "nbest");
        int64_t catalog_id;
        json_t *first = json_array_get(nbest, 0);
        const char *key = gold ? gold : json_string_value(json_object_get(first, "text"));
        int ood = !gold && open_set && json_is_null(json_object_get(q, "entity_id"));
        if (!domain || (!gold && !ood) || !key || !json_is_array(nbest) ||
            json_array_size(nbest) == 0) {
            json_decref(q);
            continue;
        }
        if (vix_store_catalog_find(store, domain, &catalog_id, NULL) < 0) {
            n_nogold++;
            json_decref(q);
            continue;
        }
        int absent = ood || cmd_same_entity(store, catalog_id, gold, gold) != 1;
        if (absent && !open_set) {
            n_nogold++;
            json_decref(q);
            continue;
        }
        size_t ci = 0;
        while (ci < vix_resolver_catalog_count(resolver) &&
               strcmp(vix_resolver_catalog_name(resolver, ci), domain) != 0)
            ci++;
        const char *enc = vix_resolver_catalog_encoder(resolver, ci);
        if (!enc) {
            n_nogold++;
            json_decref(q);
            continue;
        }
        /* One calibration describes one encoder: refuse to mix them. */
        if (!encoder[0]) {
            snprintf(encoder, sizeof encoder, "%s", enc);
        } else if (strcmp(encoder, enc) != 0) {
            json_decref(q);
            rc = erd_fail(&diag, ERD_EMISMATCH, "catalog %s uses encoder %s, an earlier one %s",
                          domain, enc, encoder);
            goto out;
        }
        int half = cal__half(key);
        if (half && hold)
            fwrite(line, 1, (size_t)len, hold);
        n_queries++;
        vix_hypothesis hyps[CAL_HYPS_MAX];
        size_t n_all = json_array_size(nbest) < CAL_HYPS_MAX ? json_array_size(nbest) : CAL_HYPS_MAX;
        for (size_t i = 0; i < n_all; i++) {
            json_t *h = json_array_get(nbest, i), *score = json_object_get(h, "score");
            const char *text = json_string_value(json_object_get(h, "text"));
            hyps[i] = (vix_hypothesis){.text = text ? text : "", .len = text ? strlen(text) : 0,
                                       .score = json_is_number(score) ? json_number_value(score) : 0,
                                       .has_score = json_is_number(score)};
        }
        /* Both modes: 1-best clients must get calibrated scores too. */
        for (int m = 0; m < 2; m++) {
            vix_result res[CAL_K_MAX];
            size_t n_res = 0;
            erd_diag d = {0};
            int r = vix_resolve_features(resolver, domain, hyps, m ? n_all : 1, (size_t)k, res,
                                         &n_res, NULL, fx, &d);
            if (r < 0) {
                if (r != ERD_EEMPTY)
                    fprintf(stderr, "erd calibrate: %s:%u: %s\n", queries, lineno,
                            erd_diag_message(&d, r));
                n_failed += r != ERD_EEMPTY;
                continue;
            }
            for (size_t i = 0; i < n_res; i++) {
                if (cal__grow(&rows) < 0) {
                    json_decref(q);
                    rc = erd_fail(&diag, ERD_ENOMEM, "out of memory");
                    goto out;
                }
                memcpy(rows.x + rows.n * VIX_CALIB_NFEAT, fx + i * VIX_CALIB_NFEAT,
                       VIX_CALIB_NFEAT * sizeof *fx);
                rows.y[rows.n] = !absent &&
                                 cmd_same_entity(store, catalog_id, gold, res[i].ext_id) == 1;
                rows.absent[rows.n] = (uint8_t)(ood ? 2 : absent);
                rows.rank[rows.n] = (uint8_t)i;
                rows.mode[rows.n] = (uint8_t)m;
                rows.half[rows.n] = (uint8_t)half;
                rows.query[rows.n] = n_resolves;
                rows.n++;
            }
            n_resolves++;
        }
        json_decref(q);
    }
    if (!encoder[0]) {
        rc = erd_fail(&diag, ERD_EEMPTY, "%s: no usable query", queries);
        goto out;
    }
    snprintf(cal->encoder_id, sizeof cal->encoder_id, "%s", encoder);

    size_t n_fit[2];
    for (int top = 1; top >= 0; top--) {
        rc = cal__select(&rows, top, 0, &fit_x, &fit_y, &n_fit[top]);
        if (rc < 0) {
            rc = erd_fail(&diag, rc, "out of memory");
            goto out;
        }
        rc = vix_calib_fit(fit_x, fit_y, n_fit[top], l2, top ? &cal->top : &cal->rest, &diag);
        free(fit_x);
        free(fit_y);
        fit_x = NULL;
        fit_y = NULL;
        if (rc < 0)
            goto out;
    }
    cal__print_model(stdout, "top model", &cal->top);
    cal__print_model(stdout, "rest model", &cal->rest);
    fprintf(stdout, "%zu queries (%zu resolves, %zu rows; fitted on %zu top and %zu lower rows "
                    "of the fitting half)\n",
            n_queries, n_resolves, rows.n, n_fit[1], n_fit[0]);
    cal__report(stdout, &rows, cal, 1, 1);
    cal__report(stdout, &rows, cal, 1, 0);
    cal__report(stdout, &rows, cal, 0, 0);
    if (open_set) {
        cal__open_set(stdout, &rows, cal, 0, 0.9);
        cal__open_set(stdout, &rows, cal, 1, 0.9);
        cal__open_set(stdout, &rows, cal, 0, keep);
        cal->no_match_threshold = cal__open_set(stdout, &rows, cal, 1, keep);
    }

    const char *base = strrchr(queries, '/');
    time_t now = time(NULL);
    struct tm tmv;
    char date[32] = "";
    if (gmtime_r(&now, &tmv))
        strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", &tmv);
    snprintf(cal->provenance, sizeof cal->provenance,
             "erd calibrate queries=%s queries_used=%zu rows=%zu fit_top=%zu fit_rest=%zu "
             "l2=%g k=%ld split=fnv1a64(entity_id) open_set=%d keep=%g date=%s",
             base ? base + 1 : queries, n_queries, rows.n, n_fit[1], n_fit[0], l2, k, open_set,
             keep, date);
    rc = vix_calib_save(cal, out_path, &diag);
    if (rc < 0)
        goto out;
    fprintf(stderr, "erd calibrate: wrote %s (encoder %s, rerank %s)\n", out_path,
            cal->encoder_id, cal->rerank_id);
    if (n_nogold)
        fprintf(stderr, "erd calibrate: %zu queries skipped: gold entity not in its catalog\n",
                n_nogold);
    if (n_failed)
        fprintf(stderr, "erd calibrate: %zu resolves failed\n", n_failed);
out:
    free(line);
    free(fx);
    free(cal);
    cal__rows_free(&rows);
    vix_resolver_close(resolver);
    vix_store_close(store);
    fclose(in);
    if (hold)
        fclose(hold);
    if (rc < 0)
        return cmd_fail("calibrate", &diag, rc);
    return CMD_EXIT_OK;
}
