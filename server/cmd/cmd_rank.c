/* erd rank-fit: runs the resolver on simulated queries, records the learned
 * ranker's features of every rerank candidate and whether it is right,
 * fits the ranker (index/vix_ranker.h) on the queries of one half of the
 * gold entities and reports top-1 accuracy on the other half, against the
 * hand-set blend it replaces. */
#include "server/cmd/cmd_rank.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config/cfg.h"
#include "index/vix_ranker.h"
#include "index/vix_resolve.h"
#include "proto/erd_hash.h"
#include "server/cmd/cmd_score.h"
#include "server/cmd/cmd_cli.h"
#include "server/cmd/cmd_opt.h"

#define RANK_HYPS_MAX 64

/* Rows of one half: features, labels and list offsets. */
typedef struct rank_lists {
    double *x;
    uint8_t *y;
    size_t *off; /* n_lists + 1 */
    size_t n_rows, cap_rows, n_lists, cap_lists;
} rank_lists;

typedef struct rank_ctx {
    vix_store *store;
    int64_t catalog_id;
    const char *gold;
    rank_lists *into;
    int failed; /* out of memory while collecting */
} rank_ctx;

static void rank__free(rank_lists *l)
{
    free(l->x);
    free(l->y);
    free(l->off);
    memset(l, 0, sizeof *l);
}

static int rank__reserve(rank_lists *l, size_t rows)
{
    if (l->n_rows + rows > l->cap_rows) {
        size_t cap = l->cap_rows ? l->cap_rows : 4096;
        while (cap < l->n_rows + rows)
            cap *= 2;
        double *x = realloc(l->x, cap * VIX_RANKER_NFEAT * sizeof *x);
        if (x)
            l->x = x;
        uint8_t *y = realloc(l->y, cap);
        if (y)
            l->y = y;
        if (!x || !y)
            return ERD_ENOMEM;
        l->cap_rows = cap;
    }
    if (l->n_lists + 2 > l->cap_lists) {
        size_t cap = l->cap_lists ? 2 * l->cap_lists : 1024;
        size_t *off = realloc(l->off, cap * sizeof *off);
        if (!off)
            return ERD_ENOMEM;
        l->off = off;
        l->cap_lists = cap;
    }
    return ERD_OK;
}

/* The resolver's observer: one list per resolve. */
static void rank__observe(void *user, const double *x, const vix_result *cands, size_t n)
{
    rank_ctx *c = user;
    rank_lists *l = c->into;
    if (c->failed || rank__reserve(l, n) < 0) {
        c->failed = 1;
        return;
    }
    if (l->n_lists == 0)
        l->off[0] = 0;
    memcpy(l->x + l->n_rows * VIX_RANKER_NFEAT, x, n * VIX_RANKER_NFEAT * sizeof *x);
    for (size_t i = 0; i < n; i++)
        l->y[l->n_rows + i] =
            cmd_same_entity(c->store, c->catalog_id, c->gold, cands[i].ext_id) == 1;
    l->n_rows += n;
    l->off[++l->n_lists] = l->n_rows;
}

static int rank__half(const char *gold_id)
{
    uint64_t h = erd_fnv1a64(ERD_FNV1A64_OFFSET, gold_id, strlen(gold_id));
    /* similar ids (sim:00001, sim:00002) differ in few bits: mix first */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return (int)(h & 1);
}

/* The rerank spec without its ranker= and order= items: features are
 * fitted under the channel and options alone, and a resolver checks a
 * ranker's recorded rerank before it opens the order that follows it. */
static void rank__base_spec(const char *spec, char *buf, size_t cap)
{
    size_t len = 0;
    for (const char *p = spec; *p;) {
        size_t n = strcspn(p, ",");
        bool drop = (n > 7 && !strncmp(p, "ranker=", 7)) || (n > 6 && !strncmp(p, "order=", 6));
        if (!drop && len + n + 2 < cap) {
            if (len)
                buf[len++] = ',';
            memcpy(buf + len, p, n);
            len += n;
        }
        p += n;
        p += *p == ',';
    }
    buf[len] = '\0';
}

/* Top-1 accuracy of ordering each list by one feature alone. */
static double rank__by_feature(const rank_lists *l, int f)
{
    size_t right = 0;
    for (size_t q = 0; q < l->n_lists; q++) {
        size_t arg = l->off[q];
        for (size_t i = l->off[q]; i < l->off[q + 1]; i++)
            if (l->x[i * VIX_RANKER_NFEAT + f] > l->x[arg * VIX_RANKER_NFEAT + f])
                arg = i;
        right += l->off[q + 1] > l->off[q] && l->y[arg];
    }
    return l->n_lists ? (double)right / (double)l->n_lists : 0;
}

static double rank__coverage(const rank_lists *l)
{
    size_t with = 0;
    for (size_t q = 0; q < l->n_lists; q++)
        for (size_t i = l->off[q]; i < l->off[q + 1]; i++)
            if (l->y[i]) {
                with++;
                break;
            }
    return l->n_lists ? (double)with / (double)l->n_lists : 0;
}

/* Resolves one query line both ways (first hypothesis, whole list) into
 * the lists of its gold entity's half.  1 when used, 0 when skipped. */
static int rank__query(vix_resolver *resolver, rank_ctx *ctx, rank_lists halves[2],
                       const char *line, size_t len)
{
    json_t *q = json_loadb(line, len, 0, NULL);
    const char *domain = json_string_value(json_object_get(q, "domain"));
    const char *gold = json_string_value(json_object_get(q, "entity_id"));
    json_t *nbest = json_object_get(q, "nbest");
    vix_hypothesis hyps[RANK_HYPS_MAX];
    int used = 0;
    if (!domain || !gold || !json_is_array(nbest) || json_array_size(nbest) == 0 ||
        vix_store_catalog_find(ctx->store, domain, &ctx->catalog_id, NULL) < 0 ||
        cmd_same_entity(ctx->store, ctx->catalog_id, gold, gold) != 1)
        goto out;
    size_t n_all = cmd_nbest(nbest, hyps, RANK_HYPS_MAX);
    ctx->gold = gold;
    ctx->into = &halves[rank__half(gold)];
    for (int m = 0; m < 2; m++) {
        vix_result res[1];
        size_t n_res = 0;
        vix_resolve(resolver, domain, hyps, m ? n_all : 1, 1, res, &n_res, NULL, NULL);
    }
    used = 1;
out:
    json_decref(q);
    return used;
}

static void rank__report(const char *title, const rank_lists *l, const vix_ranker *rk)
{
    printf("%-8s %7zu lists  right among candidates %.4f  acc@1: blend %.4f  first stage %.4f"
           "  ranker %.4f\n",
           title, l->n_lists, rank__coverage(l), rank__by_feature(l, VIX_RK_BLEND),
           rank__by_feature(l, VIX_RK_FIRST), vix_ranker_accuracy(rk, l->x, l->y, l->off,
                                                                  l->n_lists));
}

static int rank__collect(const char *queries, vix_resolver *resolver, rank_ctx *ctx,
                         rank_lists halves[2], size_t *ret_used, erd_diag *diag)
{
    FILE *in = fopen(queries, "r");
    char *line = NULL;
    size_t cap = 0, used = 0;
    ssize_t len;
    if (!in)
        return erd_fail(diag, ERD_ENOTFOUND, "%s: cannot read", queries);
    while ((len = getline(&line, &cap, in)) != -1 && !ctx->failed)
        used += (size_t)rank__query(resolver, ctx, halves, line, (size_t)len);
    free(line);
    fclose(in);
    if (ctx->failed)
        return erd_fail(diag, ERD_ENOMEM, "out of memory collecting features");
    *ret_used = used;
    return ERD_OK;
}

int cmd_rank_fit(int argc, char **argv)
{
    const char *db = NULL, *queries = NULL, *out_path = NULL, *config = NULL;
    vix_ranker_fit_opts fo;
    vix_ranker_fit_opts_init(&fo);
    const cmd_opt opts[] = {
        CMD_CFG("db", 'd', "FILE", &db, "db", "catalog store of the simulated catalog"),
        CMD_STR("queries", 0, "FILE", &queries,
                "simulated queries (deploy/sim-eval.sh writes them)"),
        CMD_STR("out", 'o', "FILE", &out_path, "ranker file to write (JSON)"),
        CMD_REAL("l2", 0, "X", &fo.l2, 0, 1e9, "penalty on standardised weights"),
        CMD_UINT("iterations", 0, "N", &fo.iterations, 1, 100000, "Adam steps over all lists"),
        CMD_STR("config", 0, "FILE", &config, "configuration file (rerank, candidates, ...)"),
    };
    const cmd_spec spec = CMD_SPEC_FULL("rank-fit", "--db FILE --queries FILE --out FILE [OPTIONS]",
        "Resolves SIMULATED queries (dev format: domain = catalog, entity_id,\n"
        "nbest) with their first hypothesis and with the whole list under the\n"
        "configured encoder index and rerank, records the learned ranker's\n"
        "features of every rerank candidate, fits the ranker on the queries of\n"
        "one half of the gold entities and prints top-1 accuracy on the other\n"
        "half beside the hand-set blend.  Use it with rerank = CHANNEL,ranker=FILE\n"
        "(FILE beside the channel).  Never fit on the dev queries.", opts, "queries,out", 0, 0);
    int ex;
    if (!cmd_opt_parse(&spec, argc, argv, &ex))
        return ex;

    cfg_config cfg;
    erd_diag diag = {0};
    int rc = cmd_startup(config, NULL, 0, &cfg, &diag);
    if (rc < 0)
        return cmd_fail("rank-fit", &diag, rc);
    vix_store *store = NULL;
    vix_resolver *resolver = NULL;
    rank_lists halves[2] = {{0}, {0}};
    vix_ranker rk;
    size_t used = 0;
    char rerank[2048], base[2048];
    rank__base_spec(cmd_rerank_spec(cfg.rerank, rerank, sizeof rerank), base, sizeof base);
    vix_resolver_opts ro = {.db_path = db ? db : cfg.db, .g2p_voice = cfg.g2p_voice,
                            .g2p_cache_entries = cfg.g2p_cache_entries,
                            .candidates = (size_t)cfg.candidates, .calibration = "off",
                            .rerank = base};
    if ((rc = vix_store_open(ro.db_path, VIX_STORE_READONLY, &store, &diag)) < 0 ||
        (rc = vix_resolver_open(&ro, &resolver, &diag)) < 0)
        goto out;
    if (!strcmp(base, "off")) {
        rc = erd_fail(&diag, ERD_ECONFIG, "the ranker orders the rerank's candidates: rerank "
                                          "must be on");
        goto out;
    }
    rank_ctx ctx = {.store = store};
    vix_resolver_set_rank_observer(resolver, rank__observe, &ctx);
    if ((rc = rank__collect(queries, resolver, &ctx, halves, &used, &diag)) < 0 ||
        (rc = vix_ranker_fit(halves[0].x, halves[0].y, halves[0].off, halves[0].n_lists, &fo,
                             &rk, &diag)) < 0)
        goto out;
    vix_resolver_rerank_id(resolver, rk.rerank_id, sizeof rk.rerank_id);
    for (int f = 0; f < VIX_RANKER_NFEAT; f++)
        printf("%-11s weight %+.4f (mean %.4f, sd %.4f)\n", vix_ranker_feature_name(f), rk.w[f],
               rk.mean[f], rk.scale[f]);
    rank__report("fitted", &halves[0], &rk);
    rank__report("held-out", &halves[1], &rk);
    const char *name = strrchr(queries, '/');
    time_t now = time(NULL);
    struct tm tmv;
    char date[32] = "";
    if (gmtime_r(&now, &tmv))
        strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", &tmv);
    snprintf(rk.provenance, sizeof rk.provenance,
             "erd rank-fit queries=%s queries_used=%zu lists_fit=%zu lists_heldout=%zu l2=%g "
             "iterations=%u split=fnv1a64(entity_id) heldout_acc1=%.4f date=%s",
             name ? name + 1 : queries, used, halves[0].n_lists, halves[1].n_lists, fo.l2,
             fo.iterations, vix_ranker_accuracy(&rk, halves[1].x, halves[1].y, halves[1].off,
                                                halves[1].n_lists), date);
    if ((rc = vix_ranker_save(&rk, out_path, &diag)) < 0)
        goto out;
    fprintf(stderr, "erd rank-fit: wrote %s (rerank %s)\n", out_path, rk.rerank_id);
out:
    rank__free(&halves[0]);
    rank__free(&halves[1]);
    vix_resolver_close(resolver);
    vix_store_close(store);
    return rc < 0 ? cmd_fail("rank-fit", &diag, rc) : CMD_EXIT_OK;
}
