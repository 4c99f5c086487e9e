/* erd train-semantic and erd tune.
 *
 * tune copies the catalog into a temporary database (the caller's index is
 * never rebuilt), then for each W of the grid builds the catalog with
 * "fused:W:PHONETIC|SEMANTIC" and resolves every query with its whole
 * n-best list through the same resolver and configuration erd eval uses.
 * It is meant for simulated queries: choosing W on the queries that will
 * report accuracy would make the report meaningless. */
#include "server/cmd/cmd_semantic.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config/cfg.h"
#include "index/vix_build.h"
#include "index/vix_resolve.h"
#include "index/vix_store.h"
#include "phonetics/pho_semantic.h"
#include "phonetics/pho_text.h"
#include "proto/erd_clock.h"
#include "server/cmd/cmd_cli.h"
#include "server/cmd/cmd_opt.h"

#define CMD__GRID_MAX 32
#define CMD__SHOW_MAX 16
#define CMD__K 5
#define CMD__HYPS_MAX 64
#define CMD__KEYS_MAX 16

/* ---- train-semantic ---- */

typedef struct cmd__sem_progress {
    double t0;
    int tty;
} cmd__sem_progress;

static void cmd__sem_progress_cb(void *user, uint32_t epoch, double done, double loss)
{
    cmd__sem_progress *p = user;

    if (p->tty)
        fprintf(stderr, "\rerd train-semantic: epoch %u, %5.1f%%, loss %.4f, %.0f s", epoch + 1,
                done * 100.0, loss, erd_now_s() - p->t0);
}

/* Nearest vocabulary words of each word in a comma-separated list, for a
 * look at what the model learned. */
static void cmd__show(const pho_sem_model *m, const pho_sem_weights *w, const char *list)
{
    uint32_t dim = pho_sem_model_dim(m);
    float *q = malloc(sizeof *q * dim), *v = malloc(sizeof *v * dim);
    char word[PHO_SEM_WORD_MAX];

    if (!q || !v)
        goto out;
    while (*list) {
        size_t len = strcspn(list, ",");
        uint32_t best[5] = {0};
        float best_s[5] = {-2, -2, -2, -2, -2};
        double qn = 0.0;
        if (len == 0 || len >= sizeof word)
            goto next;
        memcpy(word, list, len);
        word[len] = '\0';
        pho_sem_model_word(m, word, len, q);
        for (uint32_t i = 0; i < dim; i++)
            qn += (double)q[i] * q[i];
        for (uint32_t k = 0; k < w->n_words; k++) {
            double dot = 0.0, vn = 0.0;
            if (strcmp(w->words[k], word) == 0)
                continue;
            pho_sem_model_word(m, w->words[k], strlen(w->words[k]), v);
            for (uint32_t i = 0; i < dim; i++) {
                dot += (double)q[i] * v[i];
                vn += (double)v[i] * v[i];
            }
            float s = qn > 0 && vn > 0 ? (float)(dot / sqrt(qn * vn)) : 0.0f;
            for (int r = 0; r < 5; r++) {
                if (s > best_s[r]) {
                    memmove(best_s + r + 1, best_s + r, sizeof *best_s * (size_t)(4 - r));
                    memmove(best + r + 1, best + r, sizeof *best * (size_t)(4 - r));
                    best_s[r] = s;
                    best[r] = k;
                    break;
                }
            }
        }
        printf("%s:", word);
        for (int r = 0; r < 5; r++)
            if (best_s[r] > -2)
                printf(" %s (%.2f)", w->words[best[r]], (double)best_s[r]);
        printf("\n");
    next:
        list += len;
        if (*list == ',')
            list++;
    }
out:
    free(q);
    free(v);
}

int cmd_train_semantic(int argc, char **argv)
{
    pho_sem_train_opts o;
    pho_sem_weights w = {0};
    pho_sem_train_result res = {0};
    pho_sem_model *m = NULL;
    const char *out = NULL, *show = NULL;
    cmd__sem_progress prog = {.t0 = erd_now_s(), .tty = isatty(STDERR_FILENO)};
    erd_diag diag = {0};
    char meta[PHO_SEM_META_MAX];
    unsigned long long seed64 = 1;
    uint64_t sum = 0;
    double cpu0 = (double)clock() / CLOCKS_PER_SEC;
    int rc;

    pho_sem_train_opts_init(&o);
    double lr = (double)o.lr;
    const cmd_opt opts[] = {
        CMD_STR("out", 'o', "FILE", &out, "model file to write"),
        CMD_ULL("seed", 's', "N", &seed64, 0, (double)UINT64_MAX, "random seed"),
        CMD_UINT("dim", 0, "D", &o.dim, 0, UINT32_MAX, "vector dimension"),
        CMD_UINT("buckets", 0, "BITS", &o.bucket_bits, 0, UINT32_MAX, "2^BITS character n-gram rows"),
        CMD_UINT("words", 0, "N", &o.max_words, 0, UINT32_MAX,
                 "vocabulary size, most frequent first"),
        CMD_UINT("min-count", 0, "N", &o.min_count, 0, UINT32_MAX, "rarest word kept"),
        CMD_UINT("epochs", 0, "N", &o.epochs, 0, UINT32_MAX, "passes over the corpus"),
        CMD_UINT("window", 0, "N", &o.window, 0, UINT32_MAX, "context window"),
        CMD_UINT("negatives", 0, "N", &o.negatives, 0, UINT32_MAX, "negative samples per pair"),
        CMD_REAL("lr", 0, "F", &lr, 0, 1e9, "initial learning rate"),
        CMD_UINT("threads", 0, "N", &o.threads, 0, UINT32_MAX, "worker threads, 1 or 2"),
        CMD_UINT("retrofit", 0, "N", &o.retrofit, 0, UINT32_MAX,
                 "iterations pulling synonyms and equivalent forms\n"
                 "together after training (0 off)"),
        CMD_STR_DEF("wordnet", 0, "DIR", &o.wordnet_dir, "WordNet database"),
        CMD_STR("show", 0, "W1,W2", &show, "print each word's nearest vocabulary words"),
    };
    const cmd_spec spec = CMD_SPEC_FULL("train-semantic", "--out FILE [OPTIONS]",
        "Trains the semantic word model (word + character 3-5-gram embeddings,\n"
        "skip-gram with negative sampling) on WordNet synonyms, glosses and\n"
        "inflection lists plus generated equivalences (2 / two / ii, 21st /\n"
        "twenty first, vs / versus, ...).  The same seed gives the same file for\n"
        "any thread count.  Use the result with --encoder semantic:FILE or\n"
        "fused:W:baseline|semantic:FILE.", opts, "out", 0, 0);
    int ex;
    if (!cmd_opt_parse(&spec, argc, argv, &ex))
        return ex;
    o.lr = (float)lr;
    o.seed = seed64;
    o.progress = cmd__sem_progress_cb;
    o.progress_user = &prog;
    rc = pho_sem_train(&o, &w, &res, &diag);
    if (prog.tty)
        fputc('\n', stderr);
    if (rc < 0)
        return cmd_fail("train-semantic", &diag, rc);
    rc = pho_sem_model_from_weights(&w, &m, &diag);
    if (rc < 0)
        goto out;
    /* no date: the same seed and data give a byte-identical file */
    snprintf(meta, sizeof meta,
             "erd-semantic v1; skip-gram seed=%llu dim=%u buckets=2^%u words=%u min=%u "
             "epochs=%u window=%u neg=%u lr=%g retrofit=%u; corpus wordnet+generated sentences=%llu "
             "tokens=%llu fnv=%016llx; loss=%.4f",
             (unsigned long long)seed64, o.dim, o.bucket_bits, res.vocab, o.min_count, o.epochs,
             o.window, o.negatives, (double)o.lr, o.retrofit, (unsigned long long)res.sentences,
             (unsigned long long)res.tokens, (unsigned long long)res.corpus_hash, res.loss);
    rc = pho_sem_model_save(m, out, meta, &sum, &diag);
    if (rc < 0)
        goto out;
    fprintf(stderr,
            "erd train-semantic: %llu WordNet + %llu generated sentences, %llu tokens in "
            "training, %u words; loss %.4f; %.1f s wall, %.1f s CPU -> %s (checksum %08x)\n",
            (unsigned long long)res.wordnet_sentences, (unsigned long long)res.generated_sentences,
            (unsigned long long)res.tokens, res.vocab, res.loss, erd_now_s() - prog.t0,
            (double)clock() / CLOCKS_PER_SEC - cpu0, out, (unsigned)(uint32_t)sum);
    if (show)
        cmd__show(m, &w, show);
out:
    pho_sem_model_destroy(m);
    pho_sem_weights_free(&w);
    return rc < 0 ? cmd_fail("train-semantic", &diag, rc) : CMD_EXIT_OK;
}

/* ---- tune ---- */

typedef struct cmd__query {
    char *gold;       /* entity id */
    json_t *nbest;    /* owned */
} cmd__query;

typedef struct cmd__keys {
    size_t n;
    char key[CMD__KEYS_MAX][PHO_TEXT_MAX];
} cmd__keys;

static int cmd__keys_add(void *user, const char *text)
{
    cmd__keys *k = user;
    if (k->n < CMD__KEYS_MAX && pho_match_key(text, strlen(text), k->key[k->n], PHO_TEXT_MAX) == 0 &&
        k->key[k->n][0])
        k->n++;
    return 0;
}

static int cmd__collect_keys(void *user, const vix_entity *e)
{
    return vix_entity_texts(e, cmd__keys_add, user);
}

/* Writes every entity of the catalog (id, name, aliases) as JSON lines. */
static int cmd__export_entity(void *user, const vix_entity *e)
{
    FILE *f = user;
    json_t *rec = json_object();
    json_t *aliases = json_loads(e->aliases_json, 0, NULL);
    char *s;
    int bad;

    json_object_set_new(rec, "id", json_string(e->ext_id));
    json_object_set_new(rec, "name", json_string(e->name));
    json_object_set_new(rec, "aliases", json_is_array(aliases) ? aliases : json_array());
    if (!json_is_array(aliases))
        json_decref(aliases);
    s = json_dumps(rec, JSON_COMPACT);
    json_decref(rec);
    bad = !s || fprintf(f, "%s\n", s) < 0;
    free(s);
    return bad;
}

typedef struct cmd__tally {
    unsigned n, hit1, hit5;
    double rr;
} cmd__tally;

static int cmd__eval(const char *db, const char *catalog, vix_store *gold_store, int64_t gold_cat,
                     const cfg_config *cfg, const cmd__query *qs, size_t nq, cmd__tally *ret,
                     erd_diag *diag)
{
    vix_resolver *r = NULL;
    cmd__keys *gold = malloc(sizeof *gold);
    cmd__tally t = {0};
    char rerank[2048];
    int rc;

    if (!gold)
        return erd_fail(diag, ERD_ENOMEM, "out of memory");
    vix_resolver_opts ro = {.db_path = db, .g2p_voice = cfg->g2p_voice,
                            .g2p_cache_entries = cfg->g2p_cache_entries,
                            .candidates = (size_t)cfg->candidates};
    ro.rerank = cmd_rerank_spec(cfg->rerank, rerank, sizeof rerank);
    rc = vix_resolver_open(&ro, &r, diag);
    if (rc < 0)
        goto out;
    for (size_t q = 0; q < nq; q++) {
        vix_hypothesis hyps[CMD__HYPS_MAX];
        vix_result res[CMD__K];
        size_t nh = json_array_size(qs[q].nbest), nr = 0;
        char key[PHO_TEXT_MAX];
        int rank = 0;

        nh = cmd_nbest(qs[q].nbest, hyps, nh < CMD__HYPS_MAX ? nh : CMD__HYPS_MAX);
        gold->n = 0;
        vix_store_entity_get(gold_store, gold_cat, qs[q].gold, cmd__collect_keys, gold, NULL);
        t.n++;
        rc = vix_resolve(r, catalog, hyps, nh, CMD__K, res, &nr, NULL, NULL);
        if (rc < 0)
            continue; /* nothing speakable: a miss, as in erd eval */
        for (size_t i = 0; i < nr && !rank; i++) {
            int hit = strcmp(res[i].ext_id, qs[q].gold) == 0;
            if (!hit && pho_match_key(res[i].name, strlen(res[i].name), key, sizeof key) == 0)
                for (size_t k = 0; k < gold->n && !hit; k++)
                    hit = strcmp(gold->key[k], key) == 0;
            if (hit)
                rank = (int)i + 1;
        }
        if (rank == 1)
            t.hit1++;
        if (rank)
            t.hit5++;
        t.rr += rank ? 1.0 / rank : 0.0;
    }
    *ret = t;
    rc = ERD_OK;
out:
    vix_resolver_close(r);
    free(gold);
    return rc;
}

static int cmd__load_queries(const char *path, const char *domain, cmd__query **ret, size_t *ret_n,
                             erd_diag *diag)
{
    FILE *f = fopen(path, "r");
    cmd__query *qs = NULL;
    size_t n = 0, cap = 0, line_cap = 0;
    char *line = NULL;
    unsigned lineno = 0;
    ssize_t len;
    int rc = ERD_OK;

    if (!f)
        return erd_fail(diag, errno == ENOENT ? ERD_ENOTFOUND : ERD_EIO, "%s: %s", path,
                        strerror(errno));
    while ((len = getline(&line, &line_cap, f)) != -1) {
        json_error_t jerr;
        json_t *q;
        const char *gold, *dom;
        lineno++;
        if (strspn(line, " \t\r\n") == (size_t)len)
            continue;
        q = json_loadb(line, (size_t)len, 0, &jerr);
        gold = json_string_value(json_object_get(q, "entity_id"));
        dom = json_string_value(json_object_get(q, "domain"));
        if (!gold || !json_is_array(json_object_get(q, "nbest"))) {
            json_decref(q);
            rc = erd_fail(diag, ERD_EPARSE, "%s:%u: not a query (needs entity_id and nbest)", path,
                          lineno);
            break;
        }
        if (domain && (!dom || strcmp(dom, domain) != 0)) {
            json_decref(q);
            continue;
        }
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 256;
            cmd__query *nq = realloc(qs, ncap * sizeof *nq);
            if (!nq) {
                json_decref(q);
                rc = erd_fail(diag, ERD_ENOMEM, "out of memory reading %s", path);
                break;
            }
            qs = nq;
            cap = ncap;
        }
        qs[n].gold = strdup(gold);
        qs[n].nbest = json_incref(json_object_get(q, "nbest"));
        json_decref(q);
        if (!qs[n].gold) {
            json_decref(qs[n].nbest);
            rc = erd_fail(diag, ERD_ENOMEM, "out of memory reading %s", path);
            break;
        }
        n++;
    }
    free(line);
    fclose(f);
    if (rc == ERD_OK && n == 0)
        rc = erd_fail(diag, ERD_EEMPTY, "%s: no queries%s%s", path, domain ? " of domain " : "",
                      domain ? domain : "");
    if (rc < 0) {
        for (size_t i = 0; i < n; i++) {
            free(qs[i].gold);
            json_decref(qs[i].nbest);
        }
        free(qs);
        return rc;
    }
    *ret = qs;
    *ret_n = n;
    return ERD_OK;
}

static int cmd__parse_grid(const char *s, double *grid, size_t *ret_n)
{
    size_t n = 0;

    while (*s) {
        char *end;
        double w = strtod(s, &end);
        if (end == s || !(w >= 0.0 && w <= 1.0) || n == CMD__GRID_MAX || (*end && *end != ','))
            return ERD_EINVAL;
        grid[n++] = w;
        s = *end ? end + 1 : end;
    }
    if (n == 0)
        return ERD_EINVAL;
    *ret_n = n;
    return 0;
}

typedef struct tune_args {
    const char *db, *catalog, *queries, *domain, *config, *phonetic, *semantic, *keep, *grid;
} tune_args;

/* Parses erd tune's options into a and its grid; 1 to run, else 0 with the
 * exit code in *ret_exit. */
static int cmd__tune_args(int argc, char **argv, tune_args *a, double *grid, size_t *ret_n_grid,
                          int *ret_exit)
{
    const cmd_opt opts[] = {
        CMD_STR("db", 'd', "FILE", &a->db, "catalog store (read only)"),
        CMD_STR("catalog", 'c', "NAME", &a->catalog, "catalog to tune for"),
        CMD_STR("queries", 'Q', "FILE", &a->queries,
                "JSON lines: entity_id, nbest [{text, score}], domain"),
        CMD_STR("domain", 0, "D", &a->domain, "only queries of domain D (default: all)"),
        CMD_STR_DEF("phonetic", 0, "SPEC", &a->phonetic, "phonetic encoder"),
        CMD_STR("semantic", 0, "SPEC", &a->semantic,
                "semantic encoder, e.g. semantic:FILE or vec:FILE"),
        CMD_STR_DEF("grid", 0, "W1,W2,...", &a->grid, "weights to try"),
        CMD_STR("config", 0, "FILE", &a->config, "configuration file (resolver settings)"),
        CMD_STR("keep", 0, "DIR", &a->keep, "work in DIR and keep it (default: a temporary folder)"),
    };
    const cmd_spec spec = CMD_SPEC_FULL("tune", "--db FILE --catalog NAME --queries FILE --semantic SPEC [OPTIONS]",
        "Chooses the weight W of the fused encoder fused:W:PHONETIC|SEMANTIC for a\n"
        "catalog: copies the catalog into a temporary database, builds it with each\n"
        "W of the grid, resolves every query with its whole n-best list (as erd\n"
        "eval does, same configuration) and prints acc@1, recall@5 and MRR per W\n"
        "and the best W.  Use held-out simulated queries, never the queries you\n"
        "report accuracy on.  Then: erd build --encoder fused:W:PHONETIC|SEMANTIC.", opts, "catalog,queries,semantic", 0, 0);
    if (!cmd_opt_parse(&spec, argc, argv, ret_exit))
        return 0;
    *ret_exit = CMD_EXIT_USAGE;
    if (cmd__parse_grid(a->grid, grid, ret_n_grid) < 0) {
        fprintf(stderr, "erd tune: --grid wants up to %d comma-separated weights in "
                        "[0, 1]\n", CMD__GRID_MAX);
        return 0;
    }
    return 1;
}

/* The tune's scratch: a folder holding a copy of the catalog (as JSON
 * lines and imported into its own database) and the index each weight
 * builds. */
typedef struct cmd__tune_work {
    char dir[1024], db[1200], jsonl[1200], index[1400];
    bool keep, made;
} cmd__tune_work;

/* The work folder (keep, or a new temporary one) and catalog's entities
 * copied from src into its database. */
static int cmd__tune_copy(cmd__tune_work *w, const char *keep, vix_store *src, int64_t src_cat,
                          const char *catalog, erd_diag *diag)
{
    if (keep) {
        snprintf(w->dir, sizeof w->dir, "%s", keep);
        w->keep = true;
    } else {
        const char *tmp = getenv("TMPDIR");
        snprintf(w->dir, sizeof w->dir, "%s/erd-tune.XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(w->dir))
            return erd_fail(diag, ERD_EIO, "%s: %s", w->dir, strerror(errno));
    }
    w->made = true;
    snprintf(w->db, sizeof w->db, "%s/tune.db", w->dir);
    snprintf(w->jsonl, sizeof w->jsonl, "%s/catalog.jsonl", w->dir);
    FILE *f = fopen(w->jsonl, "w+");
    if (!f)
        return erd_fail(diag, ERD_EIO, "%s: %s", w->jsonl, strerror(errno));
    vix_store *dst = NULL;
    int rc = vix_store_entity_foreach(src, src_cat, cmd__export_entity, f, diag);
    if (rc > 0)
        rc = erd_fail(diag, ERD_EIO, "%s: write failed", w->jsonl);
    if (rc == ERD_OK) {
        rewind(f);
        rc = vix_store_open(w->db, 0, &dst, diag);
    }
    if (rc == ERD_OK)
        rc = vix_store_import(dst, catalog, f, &(vix_import_opts){.format = VIX_FORMAT_JSONL},
                              NULL, diag);
    vix_store_close(dst);
    fclose(f);
    return rc;
}

/* Removes a temporary work folder and everything the tune wrote there. */
static void cmd__tune_cleanup(const cmd__tune_work *w)
{
    if (!w->made || w->keep)
        return;
    static const char *const suffix[] = {"", "-wal", "-shm"};
    char p[1500];
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s%s", w->db, suffix[i]);
        remove(p);
    }
    if (w->index[0])
        vix_index_file_remove(w->index); /* and its entity table */
    remove(w->jsonl);
    rmdir(w->dir);
}

/* One weight: the copy built with the fused encoder at w, and the queries
 * resolved against it (a row printed). */
static int cmd__tune_weight(cmd__tune_work *wk, const tune_args *ta, const cfg_config *cfg,
                            double w, vix_store *src, int64_t src_cat, const cmd__query *qs,
                            size_t nq, cmd__tally *tally, erd_diag *diag)
{
    char spec[2048];
    vix_build_result br;
    double t0 = erd_now_s();
    int n = snprintf(spec, sizeof spec, "fused:%g:%s|%s", w, ta->phonetic, ta->semantic);
    if (n < 0 || (size_t)n >= sizeof spec)
        return erd_fail(diag, ERD_ETOOLONG, "encoder spec too long");
    vix_build_opts bo = {.db_path = wk->db, .catalog = ta->catalog, .encoder_spec = spec,
                         .factory = cfg->faiss_factory, .g2p_voice = cfg->g2p_voice};
    int rc = vix_build(&bo, &br, diag);
    if (rc < 0)
        return rc;
    /* each build removes the file of the one before it */
    snprintf(wk->index, sizeof wk->index, "%s", br.index_path);
    double bs = erd_now_s() - t0;
    rc = cmd__eval(wk->db, ta->catalog, src, src_cat, cfg, qs, nq, tally, diag);
    if (rc < 0)
        return rc;
    printf("%-6g %8.3f %9.3f %7.3f %8.1f\n", w, (double)tally->hit1 / tally->n,
           (double)tally->hit5 / tally->n, tally->rr / tally->n, bs);
    fflush(stdout);
    return ERD_OK;
}

int cmd_tune(int argc, char **argv)
{
    tune_args ta = {.phonetic = "baseline", .grid = "0,0.5,0.6,0.7,0.8,0.9,0.95,1"};
    double grid[CMD__GRID_MAX];
    size_t n_grid = 0, nq = 0, best = 0;
    cmd__tally tally[CMD__GRID_MAX];
    cmd__query *qs = NULL;
    vix_store *src = NULL;
    cmd__tune_work wk = {0};
    int64_t src_cat = 0;
    erd_diag diag = {0};
    cfg_config cfg;
    int rc, ex;

    if (!cmd__tune_args(argc, argv, &ta, grid, &n_grid, &ex))
        return ex;
    if ((rc = cmd_startup(ta.config, NULL, 0, &cfg, &diag)) < 0) {
        fprintf(stderr, "erd tune: %s\n", erd_diag_message(&diag, rc));
        return CMD_EXIT_CONFIG;
    }
    const char *db = ta.db ? ta.db : cfg.db;
    if ((rc = cmd__load_queries(ta.queries, ta.domain, &qs, &nq, &diag)) < 0 ||
        (rc = vix_store_open(db, VIX_STORE_READONLY, &src, &diag)) < 0 ||
        (rc = vix_store_catalog_find(src, ta.catalog, &src_cat, &diag)) < 0 ||
        (rc = cmd__tune_copy(&wk, ta.keep, src, src_cat, ta.catalog, &diag)) < 0)
        goto out;

    fprintf(stderr, "erd tune: %zu queries, catalog \"%s\" copied to %s\n", nq, ta.catalog, wk.db);
    printf("%-6s %8s %9s %7s %8s\n", "W", "acc@1", "recall@5", "MRR", "build_s");
    for (size_t g = 0; g < n_grid; g++) {
        rc = cmd__tune_weight(&wk, &ta, &cfg, grid[g], src, src_cat, qs, nq, &tally[g], &diag);
        if (rc < 0)
            goto out;
        /* best acc@1, then MRR; on a tie the later (usually larger) W */
        if (g == 0 || tally[g].hit1 > tally[best].hit1 ||
            (tally[g].hit1 == tally[best].hit1 && tally[g].rr >= tally[best].rr))
            best = g;
    }
    printf("best W %g: acc@1 %.3f on %u queries -> erd build --encoder 'fused:%g:%s|%s'\n",
           grid[best], (double)tally[best].hit1 / tally[best].n, tally[best].n, grid[best],
           ta.phonetic, ta.semantic);
    rc = ERD_OK;
out:
    vix_store_close(src);
    for (size_t i = 0; i < nq; i++) {
        free(qs[i].gold);
        json_decref(qs[i].nbest);
    }
    free(qs);
    cmd__tune_cleanup(&wk);
    return rc < 0 ? cmd_fail("tune", &diag, rc) : CMD_EXIT_OK;
}
