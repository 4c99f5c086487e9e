/* erd calibrate: runs the resolver (uncalibrated) on held-out simulated
 * queries, records each result's calibration features and whether it is
 * right, fits the two logistic models on one half of the queries (split by
 * gold entity) and reports reliability on the other half. */
#include "server/cmd/cmd_calibrate.h"

#include <unistd.h>
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
#include "server/cmd/cmd_opt.h"
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
    if (m->n_hidden)
        fprintf(out, "; and %zu tanh units", m->n_hidden);
    fputc('\n', out);
}

typedef struct cal_args {
    const char *db, *queries, *out_path, *holdout_path, *config, *rows_path;
    double l2, keep, hidden_l2, hidden_rate;
    long k, limit; /* limit -1: all */
    long hidden, hidden_steps, seed;
    int open_set;
} cal_args;

/* Parses and checks erd calibrate's options into a; 1 to run, else 0 with
 * the exit code in *ret_exit. */
static int cal__args(int argc, char **argv, cal_args *a, int *ret_exit)
{
    const cmd_opt opts[] = {
        CMD_STR("db", 'd', "FILE", &a->db, "catalog store of the simulated catalog"),
        CMD_STR("queries", 'Q', "FILE", &a->queries,
                "simulated queries (deploy/sim-eval.sh writes them)"),
        CMD_STR("out", 'o', "FILE", &a->out_path, "calibration file to write"),
        CMD_REAL("l2", 'l', "X", &a->l2, 0, HUGE_VAL, "penalty on standardised weights"),
        CMD_LONG("k", 'k', "N", &a->k, 2, CAL_K_MAX, "results per resolve used as rows"),
        CMD_STR("holdout-out", 'H', "FILE", &a->holdout_path,
                "write the held-out half's queries here (for erd eval\n"
                "--reliability with the new file)"),
        CMD_STR("rows-out", 'R', "FILE", &a->rows_path,
                "write every row (query, mode, rank, half, absent, right\n"
                "and the features) as tab-separated text, for studying\n"
                "features and models outside erd"),
        CMD_LONG("limit", 'n', "N", &a->limit, 0, (double)LONG_MAX, "only the first N queries"),
        CMD_STR("config", 'C', "FILE", &a->config, "configuration file (rerank, candidates, ...)"),
        CMD_FLAG("open-set", 0, &a->open_set,
                 "keep queries whose entity is not in the catalog, and\n"
                 "queries with \"entity_id\": null (no catalog request\n"
                 "at all): every result of theirs is wrong.  Also picks\n"
                 "the no-match threshold the file records"),
        CMD_LONG("hidden", 0, "N", &a->hidden, 0, VIX_CALIB_HIDDEN_MAX,
                 "tanh units beside the top model's linear one (0: linear)"),
        CMD_LONG("hidden-steps", 0, "N", &a->hidden_steps, 1, 1e6,
                 "full-batch Adam steps training them"),
        CMD_REAL("hidden-l2", 0, "X", &a->hidden_l2, 0, HUGE_VAL,
                 "penalty on their weights (per row)"),
        CMD_REAL("hidden-rate", 0, "X", &a->hidden_rate, 1e-9, 10, "Adam step size"),
        CMD_LONG("seed", 0, "N", &a->seed, 0, (double)LONG_MAX, "their starting weights"),
        CMD_REAL("keep", 0, "X", &a->keep, 1e-300, 1,
                 "that threshold keeps this share of the held-out\n"
                 "half's right top answers"),
    };
    const cmd_spec spec = CMD_SPEC_FULL("calibrate", "--db FILE --queries FILE --out FILE [OPTIONS]",
        "Resolves held-out SIMULATED queries (dev format: domain = catalog,\n"
        "entity_id, nbest) with their first hypothesis and with the whole list,\n"
        "uncalibrated, under the configured encoder index and rerank; fits the\n"
        "score calibration (P(result is right), L2 logistic regression) on the\n"
        "queries of one half of the gold entities and prints its reliability on\n"
        "the other half.  Never calibrate on the dev queries.", opts, "queries,out", 0, 0);
    if (!cmd_opt_parse(&spec, argc, argv, ret_exit))
        return 0;
    return 1;
}

/* One calibration run's state: the resolver and the rows it gathers. */
typedef struct cal_run {
    const cal_args *a;
    vix_store *store;
    vix_resolver *resolver;
    vix_calib *cal;
    cal_rows rows;
    double *fx; /* k rows of features of one resolve */
    FILE *hold;
    char encoder[VIX_CALIB_ID_MAX];
    size_t n_queries, n_nogold, n_failed, n_resolves;
} cal_run;

/* A resolve of the first or all hypotheses, its results added as rows. */
static int cal__resolve(cal_run *r, const char *domain, const vix_hypothesis *hyps, size_t n,
                        int m, const char *gold, int64_t catalog_id, int ood, int absent,
                        int half, unsigned lineno, erd_diag *diag)
{
    cal_rows *rows = &r->rows;
    vix_result res[CAL_K_MAX];
    size_t n_res = 0;
    erd_diag d = {0};
    int rc = vix_resolve_features(r->resolver, domain, hyps, n, (size_t)r->a->k, res, &n_res,
                                  NULL, r->fx, &d);
    if (rc < 0) {
        if (rc != ERD_EEMPTY)
            fprintf(stderr, "erd calibrate: %s:%u: %s\n", r->a->queries, lineno,
                    erd_diag_message(&d, rc));
        r->n_failed += rc != ERD_EEMPTY;
        return ERD_OK;
    }
    for (size_t i = 0; i < n_res; i++) {
        if (cal__grow(rows) < 0)
            return erd_fail(diag, ERD_ENOMEM, "out of memory");
        memcpy(rows->x + rows->n * VIX_CALIB_NFEAT, r->fx + i * VIX_CALIB_NFEAT,
               VIX_CALIB_NFEAT * sizeof *r->fx);
        rows->y[rows->n] = !absent &&
                           cmd_same_entity(r->store, catalog_id, gold, res[i].ext_id) == 1;
        rows->absent[rows->n] = (uint8_t)(ood ? 2 : absent);
        rows->rank[rows->n] = (uint8_t)i;
        rows->mode[rows->n] = (uint8_t)m;
        rows->half[rows->n] = (uint8_t)half;
        rows->query[rows->n] = r->n_resolves;
        rows->n++;
    }
    r->n_resolves++;
    return ERD_OK;
}

/* The encoder of domain's catalog (NULL: none), refusing a second one: one
 * calibration describes one encoder. */
static int cal__encoder(cal_run *r, const char *domain, const char **ret, erd_diag *diag)
{
    size_t ci = 0;
    while (ci < vix_resolver_catalog_count(r->resolver) &&
           strcmp(vix_resolver_catalog_name(r->resolver, ci), domain) != 0)
        ci++;
    const char *enc = vix_resolver_catalog_encoder(r->resolver, ci);
    if (enc && !r->encoder[0])
        snprintf(r->encoder, sizeof r->encoder, "%s", enc);
    else if (enc && strcmp(r->encoder, enc) != 0)
        return erd_fail(diag, ERD_EMISMATCH, "catalog %s uses encoder %s, an earlier one %s",
                        domain, enc, r->encoder);
    *ret = enc;
    return ERD_OK;
}

/* One line of the queries file: skipped, or resolved in both modes. */
static int cal__line(cal_run *r, const char *line, size_t len, unsigned lineno, erd_diag *diag)
{
    json_t *q = json_loadb(line, len, 0, NULL);
    const char *domain = json_string_value(json_object_get(q, "domain"));
    const char *gold = json_string_value(json_object_get(q, "entity_id"));
    json_t *nbest = json_object_get(q, "nbest");
    int64_t catalog_id;
    json_t *first = json_array_get(nbest, 0);
    const char *key = gold ? gold : json_string_value(json_object_get(first, "text"));
    int ood = !gold && r->a->open_set && json_is_null(json_object_get(q, "entity_id"));
    const char *enc = NULL;
    int rc = ERD_OK;
    if (!domain || (!gold && !ood) || !key || !json_is_array(nbest) ||
        json_array_size(nbest) == 0)
        goto out;
    if (vix_store_catalog_find(r->store, domain, &catalog_id, NULL) < 0) {
        r->n_nogold++;
        goto out;
    }
    int absent = ood || cmd_same_entity(r->store, catalog_id, gold, gold) != 1;
    if (absent && !r->a->open_set) {
        r->n_nogold++;
        goto out;
    }
    rc = cal__encoder(r, domain, &enc, diag);
    if (rc < 0 || !enc) {
        r->n_nogold += rc == ERD_OK;
        goto out;
    }
    int half = cal__half(key);
    if (half && r->hold)
        fwrite(line, 1, len, r->hold);
    r->n_queries++;
    vix_hypothesis hyps[CAL_HYPS_MAX];
    size_t n_all = cmd_nbest(nbest, hyps, CAL_HYPS_MAX);
    /* Both modes: 1-best clients must get calibrated scores too. */
    for (int m = 0; rc == ERD_OK && m < 2; m++)
        rc = cal__resolve(r, domain, hyps, m ? n_all : 1, m, gold, catalog_id, ood, absent, half,
                          lineno, diag);
out:
    json_decref(q);
    return rc;
}

/* Fits the top and the rest model on the fitting half; n_fit[1] top rows,
 * n_fit[0] lower ones. */
static int cal__fit(cal_run *r, size_t n_fit[2], erd_diag *diag)
{
    for (int top = 1; top >= 0; top--) {
        double *fit_x = NULL;
        uint8_t *fit_y = NULL;
        int rc = cal__select(&r->rows, top, 0, &fit_x, &fit_y, &n_fit[top]);
        if (rc < 0)
            return erd_fail(diag, rc, "out of memory");
        rc = vix_calib_fit(fit_x, fit_y, n_fit[top], r->a->l2, top ? &r->cal->top : &r->cal->rest,
                           diag);
        /* the top model decides "no match": it gets the units, the rest
         * (ranks 2+, rarely right) stays linear */
        if (rc == ERD_OK && top && r->a->hidden > 0) {
            vix_calib_hidden_opts ho = {.units = (size_t)r->a->hidden,
                                        .steps = (size_t)r->a->hidden_steps,
                                        .l2 = r->a->hidden_l2, .rate = r->a->hidden_rate,
                                        .seed = (uint64_t)r->a->seed};
            rc = vix_calib_fit_hidden(fit_x, fit_y, n_fit[top], &ho, &r->cal->top, diag);
        }
        free(fit_x);
        free(fit_y);
        if (rc < 0)
            return rc;
    }
    return ERD_OK;
}

/* Prints the models and their reliability, picks the no-match threshold. */
static void cal__print(cal_run *r, const size_t n_fit[2])
{
    vix_calib *cal = r->cal;
    cal__print_model(stdout, "top model", &cal->top);
    cal__print_model(stdout, "rest model", &cal->rest);
    fprintf(stdout, "%zu queries (%zu resolves, %zu rows; fitted on %zu top and %zu lower rows "
                    "of the fitting half)\n",
            r->n_queries, r->n_resolves, r->rows.n, n_fit[1], n_fit[0]);
    cal__report(stdout, &r->rows, cal, 1, 1);
    cal__report(stdout, &r->rows, cal, 1, 0);
    cal__report(stdout, &r->rows, cal, 0, 0);
    if (r->a->open_set) {
        cal__open_set(stdout, &r->rows, cal, 0, 0.9);
        cal__open_set(stdout, &r->rows, cal, 1, 0.9);
        cal__open_set(stdout, &r->rows, cal, 0, r->a->keep);
        cal->no_match_threshold = cal__open_set(stdout, &r->rows, cal, 1, r->a->keep);
    }
}

/* The calibration file, with its provenance line. */
static int cal__save(cal_run *r, const size_t n_fit[2], erd_diag *diag)
{
    const cal_args *a = r->a;
    const char *base = strrchr(a->queries, '/');
    time_t now = time(NULL);
    struct tm tmv;
    char date[32] = "";
    if (gmtime_r(&now, &tmv))
        strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", &tmv);
    snprintf(r->cal->provenance, sizeof r->cal->provenance,
             "erd calibrate queries=%s queries_used=%zu rows=%zu fit_top=%zu fit_rest=%zu "
             "l2=%g k=%ld hidden=%ld hidden_steps=%ld hidden_l2=%g hidden_rate=%g seed=%ld "
             "split=fnv1a64(entity_id) open_set=%d keep=%g date=%s",
             base ? base + 1 : a->queries, r->n_queries, r->rows.n, n_fit[1], n_fit[0], a->l2,
             a->k, a->hidden, a->hidden_steps, a->hidden_l2, a->hidden_rate, a->seed, a->open_set,
             a->keep, date);
    int rc = vix_calib_save(r->cal, a->out_path, diag);
    if (rc < 0)
        return rc;
    fprintf(stderr, "erd calibrate: wrote %s (encoder %s, rerank %s)\n", a->out_path,
            r->cal->encoder_id, r->cal->rerank_id);
    if (r->n_nogold)
        fprintf(stderr, "erd calibrate: %zu queries skipped: gold entity not in its catalog\n",
                r->n_nogold);
    if (r->n_failed)
        fprintf(stderr, "erd calibrate: %zu resolves failed\n", r->n_failed);
    return ERD_OK;
}

/* Every row with its labels, one per line under a header naming the
 * columns. */
static int cal__write_rows(const cal_rows *r, const char *path, erd_diag *diag)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return erd_fail(diag, ERD_EIO, "%s: cannot write", path);
    fputs("query\tmode\trank\thalf\tabsent\tright", f);
    for (int k = 0; k < VIX_CALIB_NFEAT; k++)
        fprintf(f, "\t%s", vix_calib_feature_name(k));
    fputc('\n', f);
    for (size_t i = 0; i < r->n; i++) {
        fprintf(f, "%zu\t%u\t%u\t%u\t%u\t%u", r->query[i], r->mode[i], r->rank[i], r->half[i],
                r->absent[i], r->y[i]);
        for (int k = 0; k < VIX_CALIB_NFEAT; k++)
            fprintf(f, "\t%.9g", r->x[i * VIX_CALIB_NFEAT + k]);
        fputc('\n', f);
    }
    int bad = ferror(f);
    if (fclose(f) != 0 || bad)
        return erd_fail(diag, ERD_EIO, "%s: write error", path);
    return ERD_OK;
}

/* The store and the uncalibrated resolver of db. */
static int cal__open(cal_run *r, const cfg_config *cfg, const char *db, erd_diag *diag)
{
    int rc = vix_store_open(db, VIX_STORE_READONLY, &r->store, diag);
    if (rc < 0)
        return rc;
    vix_resolver_opts ro = {.db_path = db, .g2p_voice = cfg->g2p_voice,
                            .g2p_cache_entries = cfg->g2p_cache_entries,
                            .candidates = (size_t)cfg->candidates, .calibration = "off"};
    char rerank[2048];
    ro.rerank = cmd_rerank_spec(cfg->rerank, rerank, sizeof rerank);
    rc = vix_resolver_open(&ro, &r->resolver, diag);
    if (rc < 0)
        return rc;
    vix_resolver_rerank_id(r->resolver, r->cal->rerank_id, sizeof r->cal->rerank_id);
    r->fx = malloc((size_t)r->a->k * VIX_CALIB_NFEAT * sizeof *r->fx);
    return r->fx ? ERD_OK : erd_fail(diag, ERD_ENOMEM, "out of memory");
}

int cmd_calibrate(int argc, char **argv)
{
    cal_args a = {.l2 = 1.0, .keep = 0.95, .k = 10, .limit = -1, .hidden = 16,
                  .hidden_steps = 3000, .hidden_l2 = 1e-3, .hidden_rate = 0.01, .seed = 1};
    int ex;
    if (!cal__args(argc, argv, &a, &ex))
        return ex;
    cfg_config cfg;
    FILE *in = NULL;
    int rc = cmd_open_queries("calibrate", a.config, a.queries, &cfg, &in);
    if (rc)
        return rc;
    erd_diag diag = {0};
    const char *db = a.db ? a.db : cfg.db;
    cal_run r = {.a = &a, .cal = calloc(1, sizeof *r.cal)};
    char *line = NULL;
    size_t line_cap = 0, n_fit[2];
    if (!r.cal) {
        rc = erd_fail(&diag, ERD_ENOMEM, "out of memory");
        goto out;
    }
    if (a.holdout_path && !(r.hold = fopen(a.holdout_path, "w"))) {
        rc = erd_fail(&diag, ERD_EIO, "%s: cannot write", a.holdout_path);
        goto out;
    }
    rc = cal__open(&r, &cfg, db, &diag);
    ssize_t len;
    unsigned lineno = 0;
    while (rc == ERD_OK && (len = getline(&line, &line_cap, in)) != -1) {
        lineno++;
        if (a.limit >= 0 && lineno > (unsigned long)a.limit)
            break;
        rc = cal__line(&r, line, (size_t)len, lineno, &diag);
    }
    if (rc < 0)
        goto out;
    if (!r.encoder[0]) {
        rc = erd_fail(&diag, ERD_EEMPTY, "%s: no usable query", a.queries);
        goto out;
    }
    snprintf(r.cal->encoder_id, sizeof r.cal->encoder_id, "%s", r.encoder);
    if (a.rows_path && (rc = cal__write_rows(&r.rows, a.rows_path, &diag)) < 0)
        goto out;
    rc = cal__fit(&r, n_fit, &diag);
    if (rc < 0)
        goto out;
    cal__print(&r, n_fit);
    rc = cal__save(&r, n_fit, &diag);
out:
    free(line);
    free(r.fx);
    free(r.cal);
    cal__rows_free(&r.rows);
    vix_resolver_close(r.resolver);
    vix_store_close(r.store);
    fclose(in);
    if (r.hold)
        fclose(r.hold);
    if (rc < 0)
        return cmd_fail("calibrate", &diag, rc);
    return CMD_EXIT_OK;
}
