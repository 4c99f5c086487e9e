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

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/cfg.h"
#include "index/vix_rerank.h"
#include "index/vix_store.h"
#include "phonetics/pho_encoder.h"
#include "server/cmd/cmd_cli.h"
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

int cmd_adapt(int argc, char **argv)
{
    static const struct option opts[] = {
        {"db", required_argument, 0, 'd'},      {"catalog", required_argument, 0, 'c'},
        {"out", required_argument, 0, 'o'},     {"base", required_argument, 0, 'b'},
        {"pairs", required_argument, 0, 'p'},   {"sim", required_argument, 0, 'S'},
        {"channel", required_argument, 0, 'N'}, {"epochs", required_argument, 0, 'e'},
        {"copies", required_argument, 0, 'P'},  {"lr", required_argument, 0, 'l'},
        {"seed", required_argument, 0, 's'},    {"threads", required_argument, 0, 't'},
        {"config", required_argument, 0, 'C'},  {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0},
    };
    const char *db = NULL, *catalog = NULL, *out = NULL, *base = NULL, *pairs = NULL;
    const char *sim = NULL, *channel = NULL, *config = NULL;
    const char *epochs = "2", *copies = "3", *lr = "0.002", *seed = "1", *threads = "2";
    char names[CMD__ADAPT_PATH_MAX] = "", base_path[CMD__ADAPT_PATH_MAX];
    char channel_path[CMD__ADAPT_PATH_MAX], all_pairs[2 * CMD__ADAPT_PATH_MAX];
    char *targv[CMD__ADAPT_ARGV_MAX];
    unsigned long long phrases = 0;
    int quiet = 0, c, rc, targc = 0, ex;
    erd_diag diag = {0};
    cfg_config cfg;

    optind = 1;
    while ((c = getopt_long(argc, argv, "qh", opts, NULL)) != -1) {
        switch (c) {
        case 'd': db = optarg; break;
        case 'c': catalog = optarg; break;
        case 'o': out = optarg; break;
        case 'b': base = optarg; break;
        case 'p': pairs = optarg; break;
        case 'S': sim = optarg; break;
        case 'N': channel = optarg; break;
        case 'e': epochs = optarg; break;
        case 'P': copies = optarg; break;
        case 'l': lr = optarg; break;
        case 's': seed = optarg; break;
        case 't': threads = optarg; break;
        case 'C': config = optarg; break;
        case 'q': quiet = 1; break;
        case 'h':
            printf("usage: erd adapt --db FILE --catalog NAME --pairs FILES --out MODEL [OPTIONS]\n\n"
                   "Fine-tunes the learned encoder for one catalog: every name and alias\n"
                   "becomes a training phrase with noisy copies from the noise channel\n"
                   "(and the real recogniser output in --sim, if you simulated speech\n"
                   "for the catalog with erd simulate), mixed with the generic pairs the\n"
                   "base model was trained on.  Rebuild the catalog with\n"
                   "--encoder model:MODEL to use it.  Calibration files are fitted per\n"
                   "encoder: serve an adapted catalog with a calibration fitted for it,\n"
                   "or with calibration off.\n\n"
                   "  --db FILE         catalog store\n"
                   "  --catalog NAME    catalog to adapt to\n"
                   "  --pairs FILES     generic erd simulate records (comma-separated, - for\n"
                   "                    stdin), e.g. the shipped model's training data\n"
                   "  --out MODEL       adapted model file to write\n"
                   "  --base MODEL      model to start from (default: the configured\n"
                   "                    encoder's model file)\n"
                   "  --sim FILE        erd simulate records of this catalog's own names\n"
                   "  --channel FILE    noise channel (default: the configured rerank's)\n"
                   "  --epochs N        fine-tuning passes (default 2)\n"
                   "  --copies N        noisy copies per name (default 3)\n"
                   "  --lr X            Adam step size (default 0.002)\n"
                   "  --seed N          random seed (default 1)\n"
                   "  --threads N       training threads (default 2)\n"
                   "  --config FILE     configuration file\n"
                   "  -q, --quiet       no progress on stderr\n");
            return CMD_EXIT_OK;
        default:
            fprintf(stderr, "Try 'erd adapt --help'.\n");
            return CMD_EXIT_USAGE;
        }
    }
    if (optind != argc || !db || !catalog || !pairs || !out) {
        fprintf(stderr, "erd adapt: --db, --catalog, --pairs and --out are required\n"
                        "Try 'erd adapt --help'.\n");
        return CMD_EXIT_USAGE;
    }
    if ((rc = cmd_startup(config, NULL, 0, &cfg, &diag)) < 0)
        return cmd_fail("adapt", &diag, rc);
    /* Defaults follow the configuration: the encoder it builds with and the
     * channel its rerank scores with. */
    if (!base) {
        if (strncmp(cfg.encoder, "model:", 6) != 0) {
            fprintf(stderr, "erd adapt: the configured encoder \"%s\" is not a learned model; "
                            "name one with --base\n", cfg.encoder);
            return CMD_EXIT_USAGE;
        }
        base = cfg.encoder + 6;
    }
    if (!channel) {
        char spec[CMD__ADAPT_PATH_MAX];
        vix_rerank_opts ro;
        int enabled = 0;
        rc = vix_rerank_spec_parse(cmd_rerank_spec(cfg.rerank, spec, sizeof spec),
                                   channel_path, sizeof channel_path, &ro, &enabled, &diag);
        if (rc < 0)
            return cmd_fail("adapt", &diag, rc);
        if (!enabled) {
            fprintf(stderr, "erd adapt: rerank is off in the configuration; name a noise "
                            "channel with --channel\n");
            return CMD_EXIT_USAGE;
        }
        channel = channel_path;
    }
    if (pho_encoder_model_path(base, base_path, sizeof base_path) < 0) {
        fprintf(stderr, "erd adapt: model path too long\n");
        return CMD_EXIT_USAGE;
    }
    rc = snprintf(all_pairs, sizeof all_pairs, "%s%s%s", pairs, sim ? "," : "", sim ? sim : "");
    if (rc < 0 || (size_t)rc >= sizeof all_pairs) {
        fprintf(stderr, "erd adapt: --pairs and --sim too long\n");
        return CMD_EXIT_USAGE;
    }
    rc = cmd__adapt_export(db, catalog, names, sizeof names, &phrases, &diag);
    if (rc < 0)
        return cmd_fail("adapt", &diag, rc);
    if (!quiet)
        fprintf(stderr, "erd adapt: %llu names and aliases of catalog \"%s\", from %s\n",
                phrases, catalog, base_path);

    /* erd train does the work; this command only chooses its inputs. */
    targv[targc++] = "train";
    targv[targc++] = "--pairs";
    targv[targc++] = all_pairs;
    targv[targc++] = "--synthetic";
    targv[targc++] = names;
    targv[targc++] = "--channel";
    targv[targc++] = (char *)channel;
    targv[targc++] = "--init";
    targv[targc++] = base_path;
    targv[targc++] = "--out";
    targv[targc++] = (char *)out;
    targv[targc++] = "--epochs";
    targv[targc++] = (char *)epochs;
    targv[targc++] = "--copies";
    targv[targc++] = (char *)copies;
    targv[targc++] = "--lr";
    targv[targc++] = (char *)lr;
    targv[targc++] = "--seed";
    targv[targc++] = (char *)seed;
    targv[targc++] = "--threads";
    targv[targc++] = (char *)threads;
    if (config) {
        targv[targc++] = "--config";
        targv[targc++] = (char *)config;
    }
    if (quiet)
        targv[targc++] = "--quiet";
    targv[targc] = NULL;
    ex = cmd_train(targc, targv);
    unlink(names);
    return ex;
}
