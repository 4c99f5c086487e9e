/* erd adapt: per-catalog fine-tuning of the learned encoder.
 *
 * The shipped model knows generic English; a catalog's own names (rare
 * words, invented titles, near-duplicates) are where it errs.  Adapting
 * writes every name and alias of the catalog as a phrase, lets the noise
 * channel make heard-like copies of them (plus real recogniser output for
 * them when the operator has simulated some with erd simulate), and
 * continues training the base model on those together with the generic
 * pairs, so the catalog's phrases also become each other's hard negatives.
 * The generic pairs stay in the mix so the model does not forget them, and
 * the held-out slice of them picks the epoch (the base model is epoch 0), so
 * adapting cannot make the generic held-out recall worse. */
#include "server/cmd/cmd_adapt.h"

#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/cfg.h"
#include "index/vix_rerank.h"
#include "index/vix_store.h"
#include "phonetics/pho_encoder.h"
#include "server/cmd/cmd_cli.h"
#include "server/cmd/cmd_opt.h"
#include "server/cmd/cmd_train.h"

#define CMD__ADAPT_PATH_MAX 4096
#define CMD__ADAPT_ARGV_MAX 40

typedef struct cmd__adapt_names {
    FILE *out;
    unsigned long long phrases;
} cmd__adapt_names;

/* One phrase per line: names carry no newline by the importer's rules, but a
 * control character is folded to a space rather than trusted. */
static int cmd__adapt_put(void *user, const char *text)
{
    cmd__adapt_names *an = user;
    size_t n = 0;
    for (const char *p = text; *p; p++, n++)
        fputc((unsigned char)*p < 0x20 ? ' ' : *p, an->out);
    if (n) {
        fputc('\n', an->out);
        an->phrases++;
    }
    return ferror(an->out) ? ERD_EIO : 0;
}

static int cmd__adapt_entity(void *user, const vix_entity *e)
{
    return vix_entity_texts(e, cmd__adapt_put, user);
}

/* Writes the catalog's names and aliases to a new temporary file whose path
 * lands in ret_path (the caller unlinks it). */
static int cmd__adapt_export(const char *db, const char *catalog, char *ret_path, size_t cap,
                             unsigned long long *ret_phrases, erd_diag *diag)
{
    vix_store *store = NULL;
    cmd__adapt_names an = {NULL, 0};
    const char *tmp = getenv("TMPDIR");
    int64_t cat_id;
    int fd, rc, n;

    n = snprintf(ret_path, cap, "%s/erd-adapt-names.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (n < 0 || (size_t)n >= cap)
        return erd_fail(diag, ERD_ETOOLONG, "TMPDIR too long");
    rc = vix_store_open(db, VIX_STORE_READONLY, &store, diag);
    if (rc < 0)
        return rc;
    rc = vix_store_catalog_find(store, catalog, &cat_id, diag);
    if (rc < 0)
        goto out;
    fd = mkstemp(ret_path);
    if (fd < 0) {
        rc = erd_fail(diag, ERD_EIO, "cannot create a temporary file in %s", ret_path);
        goto out;
    }
    an.out = fdopen(fd, "w");
    if (!an.out) {
        close(fd);
        unlink(ret_path);
        rc = erd_fail(diag, ERD_EIO, "cannot write %s", ret_path);
        goto out;
    }
    rc = vix_store_entity_foreach(store, cat_id, cmd__adapt_entity, &an, diag);
    if (fclose(an.out) != 0 && rc == ERD_OK)
        rc = erd_fail(diag, ERD_EIO, "cannot write %s", ret_path);
    if (rc == ERD_OK && an.phrases == 0)
        rc = erd_fail(diag, ERD_EEMPTY, "catalog \"%s\" has no entities", catalog);
    if (rc < 0) {
        unlink(ret_path);
        goto out;
    }
    *ret_phrases = an.phrases;
out:
    vix_store_close(store);
    return rc;
}

typedef struct adapt_args {
    const char *db, *catalog, *out, *base, *pairs, *sim, *channel, *config;
    const char *epochs, *copies, *lr, *seed, *threads; /* handed to erd train as given */
    int quiet;
} adapt_args;

/* Parses erd adapt's options into a; 1 to run, else 0 with the exit code
 * in *ret_exit. */
static int cmd__adapt_args(int argc, char **argv, adapt_args *a, int *ret_exit)
{
    const cmd_opt opts[] = {
        CMD_STR("db", 0, "FILE", &a->db, "catalog store"),
        CMD_STR("catalog", 0, "NAME", &a->catalog, "catalog to adapt to"),
        CMD_STR("pairs", 0, "FILES", &a->pairs,
                "generic erd simulate records (comma-separated, - for\n"
                "stdin), e.g. the shipped model's training data"),
        CMD_STR("out", 0, "MODEL", &a->out, "adapted model file to write"),
        CMD_STR("base", 0, "MODEL", &a->base,
                "model to start from (default: the configured\nencoder's model file)"),
        CMD_STR("sim", 0, "FILE", &a->sim, "erd simulate records of this catalog's own names"),
        CMD_STR("channel", 0, "FILE", &a->channel,
                "noise channel (default: the configured rerank's)"),
        CMD_STR_DEF("epochs", 0, "N", &a->epochs, "fine-tuning passes"),
        CMD_STR_DEF("copies", 0, "N", &a->copies, "noisy copies per name"),
        CMD_STR_DEF("lr", 0, "X", &a->lr, "Adam step size"),
        CMD_STR_DEF("seed", 0, "N", &a->seed, "random seed"),
        CMD_STR_DEF("threads", 0, "N", &a->threads, "training threads"),
        CMD_STR("config", 0, "FILE", &a->config, "configuration file"),
        CMD_FLAG("quiet", 'q', &a->quiet, "no progress on stderr"),
    };
    const cmd_spec spec = CMD_SPEC_FULL("adapt", "--db FILE --catalog NAME --pairs FILES --out MODEL [OPTIONS]",
        "Fine-tunes the learned encoder for one catalog: every name and alias\n"
        "becomes a training phrase with noisy copies from the noise channel\n"
        "(and the real recogniser output in --sim, if you simulated speech\n"
        "for the catalog with erd simulate), mixed with the generic pairs the\n"
        "base model was trained on.  Rebuild the catalog with\n"
        "--encoder model:MODEL to use it.  Calibration files are fitted per\n"
        "encoder: serve an adapted catalog with a calibration fitted for it,\n"
        "or with calibration off.", opts, "db,catalog,pairs,out", 0, 0);
    if (!cmd_opt_parse(&spec, argc, argv, ret_exit))
        return 0;
    return 1;
}

/* Defaults follow the configuration: the encoder it builds with and the
 * channel its rerank scores with.  0, or the exit code. */
static int cmd__adapt_defaults(adapt_args *a, const cfg_config *cfg, char *channel_path,
                               size_t cap)
{
    erd_diag diag = {0};
    if (!a->base) {
        if (strncmp(cfg->encoder, "model:", 6) != 0) {
            fprintf(stderr, "erd adapt: the configured encoder \"%s\" is not a learned model; "
                            "name one with --base\n", cfg->encoder);
            return CMD_EXIT_USAGE;
        }
        a->base = cfg->encoder + 6;
    }
    if (!a->channel) {
        char spec[CMD__ADAPT_PATH_MAX];
        vix_rerank_opts ro;
        int enabled = 0;
        int rc = vix_rerank_spec_parse(cmd_rerank_spec(cfg->rerank, spec, sizeof spec),
                                       channel_path, cap, &ro, &enabled, &diag);
        if (rc < 0)
            return cmd_fail("adapt", &diag, rc);
        if (!enabled) {
            fprintf(stderr, "erd adapt: rerank is off in the configuration; name a noise "
                            "channel with --channel\n");
            return CMD_EXIT_USAGE;
        }
        a->channel = channel_path;
    }
    return 0;
}

/* erd train does the work; this command only chooses its inputs. */
static int cmd__adapt_train(const adapt_args *a, char *all_pairs, char *names, char *base_path)
{
    char *targv[CMD__ADAPT_ARGV_MAX];
    int targc = 0;
    targv[targc++] = "train";
    targv[targc++] = "--pairs";
    targv[targc++] = all_pairs;
    targv[targc++] = "--synthetic";
    targv[targc++] = names;
    targv[targc++] = "--channel";
    targv[targc++] = (char *)a->channel;
    targv[targc++] = "--init";
    targv[targc++] = base_path;
    targv[targc++] = "--out";
    targv[targc++] = (char *)a->out;
    targv[targc++] = "--epochs";
    targv[targc++] = (char *)a->epochs;
    targv[targc++] = "--copies";
    targv[targc++] = (char *)a->copies;
    targv[targc++] = "--lr";
    targv[targc++] = (char *)a->lr;
    targv[targc++] = "--seed";
    targv[targc++] = (char *)a->seed;
    targv[targc++] = "--threads";
    targv[targc++] = (char *)a->threads;
    if (a->config) {
        targv[targc++] = "--config";
        targv[targc++] = (char *)a->config;
    }
    if (a->quiet)
        targv[targc++] = "--quiet";
    targv[targc] = NULL;
    return cmd_train(targc, targv);
}

int cmd_adapt(int argc, char **argv)
{
    adapt_args a = {.epochs = "2", .copies = "3", .lr = "0.002", .seed = "1", .threads = "2"};
    char names[CMD__ADAPT_PATH_MAX] = "", base_path[CMD__ADAPT_PATH_MAX];
    char channel_path[CMD__ADAPT_PATH_MAX], all_pairs[2 * CMD__ADAPT_PATH_MAX];
    unsigned long long phrases = 0;
    int rc, ex;
    erd_diag diag = {0};
    cfg_config cfg;

    if (!cmd__adapt_args(argc, argv, &a, &ex))
        return ex;
    if ((rc = cmd_startup(a.config, NULL, 0, &cfg, &diag)) < 0)
        return cmd_fail("adapt", &diag, rc);
    if ((ex = cmd__adapt_defaults(&a, &cfg, channel_path, sizeof channel_path)) != 0)
        return ex;
    if (pho_encoder_model_path(a.base, base_path, sizeof base_path) < 0) {
        fprintf(stderr, "erd adapt: model path too long\n");
        return CMD_EXIT_USAGE;
    }
    rc = snprintf(all_pairs, sizeof all_pairs, "%s%s%s", a.pairs, a.sim ? "," : "",
                  a.sim ? a.sim : "");
    if (rc < 0 || (size_t)rc >= sizeof all_pairs) {
        fprintf(stderr, "erd adapt: --pairs and --sim too long\n");
        return CMD_EXIT_USAGE;
    }
    rc = cmd__adapt_export(a.db, a.catalog, names, sizeof names, &phrases, &diag);
    if (rc < 0)
        return cmd_fail("adapt", &diag, rc);
    if (!a.quiet)
        fprintf(stderr, "erd adapt: %llu names and aliases of catalog \"%s\", from %s\n",
                phrases, a.catalog, base_path);
    ex = cmd__adapt_train(&a, all_pairs, names, base_path);
    unlink(names);
    return ex;
}
