/* erd train: reads (hypothesis, intended phrase) pairs from erd simulate's
 * JSON lines, turns both sides into phonemes the way the index does
 * (vix_phrase_prepare), trains the encoder and writes the model file. */
#include "server/cmd/cmd_train.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config/cfg.h"
#include "index/vix_phrase.h"
#include "phonetics/pho_channel.h"
#include "phonetics/pho_train.h"
#include "server/cmd/cmd_cli.h"
#include "proto/erd_hash.h"

#define CMD__PAIR_FILES_MAX 32
#define CMD__CONV_DEFAULT 128

static double cmd__now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct cmd__load_stats {
    uint64_t records, pairs, skipped_empty, checksum, synthetic;
} cmd__load_stats;

/* One record: its spoken phrase and every hypothesis as pairs.  A text with
 * nothing speakable (an empty hypothesis) is skipped, not an error. */
static int cmd__load_record(pho_trainset *ts, pho_g2p *g2p, vix_phrase *ph, json_t *rec,
                            cmd__load_stats *st, erd_diag *diag)
{
    json_t *spoken = json_object_get(rec, "spoken"), *nbest = json_object_get(rec, "nbest");
    uint32_t idx;
    size_t i;
    json_t *h;
    int rc;

    if (!json_is_string(spoken) || !json_is_array(nbest))
        return erd_fail(diag, ERD_EPARSE, "record lacks \"spoken\" or \"nbest\"");
    rc = vix_phrase_prepare(g2p, NULL, json_string_value(spoken), json_string_length(spoken), ph,
                            diag);
    if (rc == ERD_EEMPTY) {
        st->skipped_empty++;
        return ERD_OK;
    }
    if (rc < 0)
        return rc;
    rc = pho_trainset_add_phrase(ts, ph->text, ph->tokens, ph->n_tokens, &idx);
    if (rc < 0)
        return erd_fail(diag, rc, "adding phrase \"%.64s\" failed", ph->text);
    json_array_foreach(nbest, i, h) {
        json_t *text = json_object_get(h, "text");
        if (!json_is_string(text))
            return erd_fail(diag, ERD_EPARSE, "hypothesis %zu has no \"text\"", i);
        rc = vix_phrase_prepare(g2p, NULL, json_string_value(text), json_string_length(text), ph,
                                diag);
        if (rc == ERD_EEMPTY) {
            st->skipped_empty++;
            continue;
        }
        if (rc < 0)
            return rc;
        rc = pho_trainset_add_pair(ts, idx, ph->tokens, ph->n_tokens);
        if (rc < 0)
            return erd_fail(diag, rc, "adding hypothesis \"%.64s\" failed", ph->text);
        st->pairs++;
    }
    return ERD_OK;
}

/* path "-" reads standard input (e.g. from gzip -dc). */
static int cmd__load_file(pho_trainset *ts, pho_g2p *g2p, vix_phrase *ph, const char *path,
                          cmd__load_stats *st, erd_diag *diag)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    uint64_t lineno = 0;
    int rc = ERD_OK;

    if (!f)
        return erd_fail(diag, errno == ENOENT ? ERD_ENOTFOUND : ERD_EIO, "%s: %s", path,
                        strerror(errno));
    while ((len = getline(&line, &cap, f)) > 0) {
        json_error_t jerr;
        json_t *rec;
        lineno++;
        st->checksum = erd_fnv1a64(st->checksum, line, (size_t)len);
        if (len == 1 && line[0] == '\n')
            continue;
        rec = json_loadb(line, (size_t)len, 0, &jerr);
        if (!rec) {
            rc = erd_fail(diag, ERD_EJSON, "%s:%llu: %s", path, (unsigned long long)lineno,
                          jerr.text);
            goto out;
        }
        rc = cmd__load_record(ts, g2p, ph, rec, st, diag);
        json_decref(rec);
        if (rc < 0) {
            char msg[sizeof diag->msg];
            snprintf(msg, sizeof msg, "%s", erd_diag_message(diag, rc));
            rc = erd_fail(diag, rc, "%s:%llu: %s", path, (unsigned long long)lineno, msg);
            goto out;
        }
        st->records++;
    }
    if (ferror(f))
        rc = erd_fail(diag, ERD_EIO, "%s: read error", path);
out:
    free(line);
    if (f != stdin)
        fclose(f);
    return rc;
}

/* Phrases without speech, one per line, each corrupted `copies` times by the
 * learned noise channel: cheap extra pairs covering far more phrases than
 * the simulator can speak.  The draws depend on (seed, line, copy) only. */
static int cmd__load_synthetic(pho_trainset *ts, pho_g2p *g2p, vix_phrase *ph,
                               const pho_channel *ch, const char *path, unsigned copies,
                               double strength, uint64_t seed, cmd__load_stats *st,
                               erd_diag *diag)
{
    FILE *f = fopen(path, "rb");
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    uint64_t lineno = 0;
    pho_token noisy[PHO_TOKENS_MAX];
    int rc = ERD_OK;

    if (!f)
        return erd_fail(diag, errno == ENOENT ? ERD_ENOTFOUND : ERD_EIO, "%s: %s", path,
                        strerror(errno));
    while ((len = getline(&line, &cap, f)) > 0) {
        uint32_t idx;
        lineno++;
        st->checksum = erd_fnv1a64(st->checksum, line, (size_t)len);
        rc = vix_phrase_prepare(g2p, NULL, line, (size_t)len, ph, diag);
        if (rc == ERD_EEMPTY) {
            rc = ERD_OK;
            continue;
        }
        if (rc < 0)
            break;
        rc = pho_trainset_add_phrase(ts, ph->text, ph->tokens, ph->n_tokens, &idx);
        if (rc < 0)
            break;
        for (unsigned c = 0; c < copies; c++) {
            uint64_t rng = seed ^ (lineno * 0x9e3779b97f4a7c15ULL) ^ ((uint64_t)c << 48);
            size_t n;
            rc = pho_channel_sample(ch, ph->tokens, ph->n_tokens, strength, &rng, noisy,
                                    PHO_TOKENS_MAX, &n);
            if (rc == ERD_EEMPTY || rc == ERD_ETOOLONG)
                continue; /* nothing left to hear, or grew past the bound: skip the copy */
            if (rc < 0)
                break;
            rc = pho_trainset_add_synthetic_pair(ts, idx, noisy, n);
            if (rc < 0)
                break;
            st->synthetic++;
        }
        if (rc == ERD_EEMPTY || rc == ERD_ETOOLONG)
            rc = ERD_OK;
        if (rc < 0)
            break;
    }
    if (rc < 0) {
        char msg[sizeof diag->msg];
        snprintf(msg, sizeof msg, "%s", erd_diag_message(diag, rc));
        rc = erd_fail(diag, rc, "%s:%llu: %s", path, (unsigned long long)lineno, msg);
    } else if (ferror(f)) {
        rc = erd_fail(diag, ERD_EIO, "%s: read error", path);
    }
    free(line);
    fclose(f);
    return rc;
}

static void cmd__train_progress(void *user, const pho_train_progress *p)
{
    (void)user;
    fprintf(stderr,
            "erd train: epoch %u/%u  loss %.4f  held-out recall@1 %.4f  recall@5 %.4f  "
            "(%.0f s)%s\n",
            p->epoch, p->epochs, p->loss, p->recall1, p->recall5, p->seconds,
            p->best ? "  *best" : "");
}

int cmd_train(int argc, char **argv)
{
    static const struct option opts[] = {
        {"pairs", required_argument, 0, 'p'},   {"out", required_argument, 0, 'o'},
        {"seed", required_argument, 0, 's'},    {"epochs", required_argument, 0, 'e'},
        {"dim", required_argument, 0, 'D'},     {"threads", required_argument, 0, 't'},
        {"holdout", required_argument, 0, 'H'}, {"arch", required_argument, 0, 'a'},
        {"emb", required_argument, 0, 'E'},     {"conv", required_argument, 0, 'c'},
        {"hash-bits", required_argument, 0, 'b'}, {"batch", required_argument, 0, 'B'},
        {"lr", required_argument, 0, 'l'},      {"scale", required_argument, 0, 'S'},
        {"hard-k", required_argument, 0, 'k'},  {"baseline", no_argument, 0, 'L'},
        {"augment", required_argument, 0, 'A'},
        {"synthetic", required_argument, 0, 'Y'}, {"channel", required_argument, 0, 'N'},
        {"copies", required_argument, 0, 'P'},  {"strength", required_argument, 0, 'R'},
        {"init", required_argument, 0, 'I'},    {"config", required_argument, 0, 'C'},
        {"quiet", no_argument, 0, 'q'},         {"help", no_argument, 0, 'h'},
        {"loss", required_argument, 0, 'O'},    {"smoothing", required_argument, 0, 'm'},
        {"apl-alpha", required_argument, 0, 'x'}, {"apl-beta", required_argument, 0, 'y'},
        {"patience", required_argument, 0, 'T'}, {"pair-knee", required_argument, 0, 'K'},
        {0, 0, 0, 0},
    };
    char *pairs_arg = NULL;
    const char *out = NULL, *config = NULL, *files[CMD__PAIR_FILES_MAX];
    const char *synthetic = NULL, *channel_path = NULL, *init_path = NULL;
    unsigned copies = 3;
    double strength = 1.0;
    pho_channel *channel = NULL;
    size_t n_files = 0;
    pho_train_opts to;
    int quiet = 0, baseline = 0, c, rc, ex = CMD_EXIT_FAIL;
    unsigned long long v;
    pho_trainset *ts = NULL;
    pho_g2p *g2p = NULL;
    pho_model *model = NULL, *init = NULL;
    pho_encoder *bl = NULL;
    vix_phrase *ph = NULL;
    erd_diag diag = {0};
    cmd__load_stats st = {0, 0, 0, ERD_FNV1A64_OFFSET, 0};
    pho_train_result res;
    char meta[2 * PHO_MODEL_META_MAX], date[32]; /* meta is cut to size on save */
    double t0 = cmd__now();
    time_t now;
    struct tm tmv;

    pho_train_opts_init(&to);
    optind = 1;
    while ((c = getopt_long(argc, argv, "p:o:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'p': pairs_arg = optarg; break;
        case 'o': out = optarg; break;
        case 'C': config = optarg; break;
        case 'I': init_path = optarg; break;
        case 'q': quiet = 1; break;
        case 'L': baseline = 1; break;
        case 's':
            if (cmd_parse_uint("train", "seed", optarg, ULONG_MAX, &v)) return CMD_EXIT_USAGE;
            to.seed = v;
            break;
        case 'e':
            if (cmd_parse_uint("train", "epochs", optarg, 1000, &v)) return CMD_EXIT_USAGE;
            to.epochs = (unsigned)v;
            break;
        case 'D':
            if (cmd_parse_uint("train", "dim", optarg, PHO_MODEL_OUT_MAX, &v)) return CMD_EXIT_USAGE;
            to.arch.out_dim = (uint32_t)v;
            break;
        case 't':
            if (cmd_parse_uint("train", "threads", optarg, 64, &v)) return CMD_EXIT_USAGE;
            to.threads = (unsigned)v;
            break;
        case 'E':
            if (cmd_parse_uint("train", "emb", optarg, PHO_MODEL_EMB_MAX, &v)) return CMD_EXIT_USAGE;
            to.arch.emb_dim = (uint32_t)v;
            break;
        case 'c':
            if (cmd_parse_uint("train", "conv", optarg, PHO_MODEL_CONV_MAX, &v)) return CMD_EXIT_USAGE;
            to.arch.conv_dim = (uint32_t)v;
            break;
        case 'b':
            if (cmd_parse_uint("train", "hash-bits", optarg, PHO_MODEL_HASH_BITS_MAX, &v)) return CMD_EXIT_USAGE;
            to.arch.hash_bits = (uint32_t)v;
            break;
        case 'B':
            if (cmd_parse_uint("train", "batch", optarg, 4096, &v)) return CMD_EXIT_USAGE;
            to.batch = (unsigned)v;
            break;
        case 'k':
            if (cmd_parse_uint("train", "hard-k", optarg, 64, &v)) return CMD_EXIT_USAGE;
            to.hard_k = (unsigned)v;
            break;
        case 'H':
            if (cmd_parse_real("train", "holdout", optarg, &to.holdout)) return CMD_EXIT_USAGE;
            break;
        case 'A':
            if (cmd_parse_real("train", "augment", optarg, &to.augment)) return CMD_EXIT_USAGE;
            break;
        case 'Y': synthetic = optarg; break;
        case 'N': channel_path = optarg; break;
        case 'P':
            if (cmd_parse_uint("train", "copies", optarg, 64, &v)) return CMD_EXIT_USAGE;
            copies = (unsigned)v;
            break;
        case 'R':
            if (cmd_parse_real("train", "strength", optarg, &strength)) return CMD_EXIT_USAGE;
            break;
        case 'l':
            if (cmd_parse_real("train", "lr", optarg, &to.lr)) return CMD_EXIT_USAGE;
            break;
        case 'S':
            if (cmd_parse_real("train", "scale", optarg, &to.scale)) return CMD_EXIT_USAGE;
            break;
        case 'O':
            if (pho_loss_kind_parse(optarg, &to.loss.kind) < 0) {
                fprintf(stderr, "erd train: --loss must be infonce or apl\n");
                return CMD_EXIT_USAGE;
            }
            break;
        case 'm':
            if (cmd_parse_real("train", "smoothing", optarg, &to.loss.smoothing)) return CMD_EXIT_USAGE;
            break;
        case 'x':
            if (cmd_parse_real("train", "apl-alpha", optarg, &to.loss.alpha)) return CMD_EXIT_USAGE;
            break;
        case 'y':
            if (cmd_parse_real("train", "apl-beta", optarg, &to.loss.beta)) return CMD_EXIT_USAGE;
            break;
        case 'T':
            if (cmd_parse_uint("train", "patience", optarg, 1000, &v)) return CMD_EXIT_USAGE;
            to.patience = (unsigned)v;
            break;
        case 'K':
            if (cmd_parse_real("train", "pair-knee", optarg, &to.pair_knee)) return CMD_EXIT_USAGE;
            break;
        case 'a':
            if (!strcmp(optarg, "conv")) {
                to.arch.kind = PHO_ARCH_CONV;
            } else if (!strcmp(optarg, "bag")) {
                to.arch.kind = PHO_ARCH_BAG;
            } else {
                fprintf(stderr, "erd train: --arch must be conv or bag\n");
                return CMD_EXIT_USAGE;
            }
            break;
        case 'h':
            printf("usage: erd train --pairs FILE[,FILE...] --out MODEL [OPTIONS]\n\n"
                   "Trains the learned phonetic encoder on erd simulate's JSON lines\n"
                   "({\"spoken\", \"nbest\": [{\"text\"}...]}: each hypothesis with its spoken\n"
                   "phrase is one pair) and writes MODEL, usable as --encoder model:MODEL.\n"
                   "A slice of the spoken phrases is held out; the epoch that recalls it\n"
                   "best is kept.  Same data, seed and threads give the same model.\n\n"
                   "  --pairs FILES      comma-separated JSON lines files (- for stdin)\n"
                   "  --out MODEL        model file to write\n"
                   "  --seed N           random seed (default 1)\n"
                   "  --epochs N         passes over the pairs (default %u)\n"
                   "  --dim D            output dimension (default %u)\n"
                   "  --threads N        training threads (default %u)\n"
                   "  --holdout F        share of spoken phrases held out (default %.2f)\n"
                   "  --arch bag|conv    plain n-gram bag or convolution (default bag)\n"
                   "  --emb N            token embedding width (default %u)\n"
                   "  --conv N           convolution channels (default %d with --arch conv)\n"
                   "  --hash-bits N      2^N n-gram buckets (default %u)\n"
                   "  --batch N          pairs per step (default %u)\n"
                   "  --lr X             Adam step size (default %g)\n"
                   "  --scale X          softmax inverse temperature (default %g)\n"
                   "  --hard-k N         hard negatives from the N nearest phrases, 0 off "
                   "(default %u)\n"
                   "  --augment R        extra phone noise on hypotheses at rate R (default %g)\n"
                   "  --loss L           infonce, or apl (normalised + reverse cross-entropy,\n"
                   "                     robust to wrong pairs) (default infonce)\n"
                   "  --smoothing E      InfoNCE label smoothing, 0..0.5 (default 0)\n"
                   "  --apl-alpha A      APL weight of the normalised cross-entropy (default 1)\n"
                   "  --apl-beta B       APL weight of the reverse cross-entropy (default 1)\n"
                   "  --patience N       stop after N epochs without a better held-out\n"
                   "                     recall, 0 never (default 0)\n"
                   "  --pair-knee K      weight pairs by phone overlap / K (floor %.2f, cap 1);\n"
                   "                     0 weighs every pair 1 (default 0)\n"
                   "  --synthetic FILE   phrases (one per line, e.g. from erd phrases) turned\n"
                   "                     into extra pairs by the noise channel\n"
                   "  --channel FILE     noise channel for --synthetic (erd channel)\n"
                   "  --copies N         noisy copies per synthetic phrase (default 3)\n"
                   "  --strength X       scale of the channel's error rates (default 1)\n"
                   "  --baseline         also report the baseline encoder on the held-out slice\n"
                   "  --init MODEL       fine-tune this model (its architecture; --arch, --emb,\n"
                   "                     --conv, --hash-bits and --dim are ignored); the\n"
                   "                     held-out slice scores it first, as epoch 0\n"
                   "  --config FILE      configuration file (for the G2P voice)\n"
                   "  -q, --quiet        no progress on stderr\n",
                   to.epochs, to.arch.out_dim, to.threads, to.holdout, to.arch.emb_dim,
                   CMD__CONV_DEFAULT, to.arch.hash_bits, to.batch, to.lr, to.scale, to.hard_k,
                   to.augment, PHO_PAIR_WEIGHT_MIN);
            return CMD_EXIT_OK;
        default:
            fprintf(stderr, "Try 'erd train --help'.\n");
            return CMD_EXIT_USAGE;
        }
    }
    if (synthetic && !channel_path) {
        fprintf(stderr, "erd train: --synthetic needs --channel\n");
        return CMD_EXIT_USAGE;
    }
    if (!(strength >= 0.0 && strength <= 4.0)) {
        fprintf(stderr, "erd train: --strength must be in 0..4\n");
        return CMD_EXIT_USAGE;
    }
    if (optind != argc || !pairs_arg || !out) {
        fprintf(stderr, "erd train: --pairs and --out are required\nTry 'erd train --help'.\n");
        return CMD_EXIT_USAGE;
    }
    if (to.arch.kind == PHO_ARCH_BAG)
        to.arch.conv_dim = 0;
    else if (to.arch.conv_dim == 0)
        to.arch.conv_dim = CMD__CONV_DEFAULT;
    rc = pho_model_arch_check(&to.arch, &diag);
    if (rc < 0) {
        fprintf(stderr, "erd train: %s\n", erd_diag_message(&diag, rc));
        return CMD_EXIT_USAGE;
    }
    for (char *s = strtok(pairs_arg, ","); s; s = strtok(NULL, ",")) {
        if (n_files == CMD__PAIR_FILES_MAX) {
            fprintf(stderr, "erd train: at most %d pair files\n", CMD__PAIR_FILES_MAX);
            return CMD_EXIT_USAGE;
        }
        files[n_files++] = s;
    }
    cfg_config cfg;
    if ((rc = cmd_load_config(config, &cfg, &diag)) < 0)
        return cmd_fail("train", &diag, rc);

    if (init_path) {
        rc = pho_model_load(init_path, &init, &diag);
        if (rc < 0)
            goto out;
        to.arch = init->arch; /* init stays ours (freed at out); pho_train only reads it */
        to.init = init;
    }
    ph = malloc(sizeof *ph);
    if (!ph || pho_trainset_create(&ts) < 0) {
        rc = erd_fail(&diag, ERD_ENOMEM, "out of memory");
        goto out;
    }
    rc = pho_g2p_create(cfg.g2p_voice, 0, &g2p, &diag);
    for (size_t i = 0; rc == ERD_OK && i < n_files; i++)
        rc = cmd__load_file(ts, g2p, ph, files[i], &st, &diag);
    if (rc == ERD_OK && synthetic) {
        rc = pho_channel_load(channel_path, &channel, &diag);
        if (rc == ERD_OK)
            rc = cmd__load_synthetic(ts, g2p, ph, channel, synthetic, copies, strength, to.seed,
                                     &st, &diag);
    }
    if (rc < 0)
        goto out;
    if (!quiet && synthetic)
        fprintf(stderr, "erd train: %llu synthetic pairs from %s through %s\n",
                (unsigned long long)st.synthetic, synthetic, channel_path);
    if (!quiet)
        fprintf(stderr,
                "erd train: %llu records, %llu pairs over %zu distinct phrases (%llu empty "
                "texts skipped), phonemes in %.1f s\n",
                (unsigned long long)st.records, (unsigned long long)st.pairs,
                pho_trainset_n_phrases(ts), (unsigned long long)st.skipped_empty,
                cmd__now() - t0);
    if (baseline) {
        double r1, r5;
        rc = pho_encoder_create("baseline", &bl, &diag);
        if (rc == ERD_OK)
            rc = pho_train_eval_encoder(ts, to.holdout, bl, &r1, &r5, &diag);
        if (rc < 0)
            goto out;
        fprintf(stderr, "erd train: baseline (%s) held-out recall@1 %.4f  recall@5 %.4f\n",
                pho_encoder_id(bl), r1, r5);
    }
    if (!quiet) {
        to.progress = cmd__train_progress;
        to.progress_user = NULL;
    }
    rc = pho_train(ts, &to, &model, &res, &diag);
    if (rc < 0)
        goto out;
    now = time(NULL);
    if (!gmtime_r(&now, &tmv) || !strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", &tmv))
        snprintf(date, sizeof date, "unknown");
    snprintf(meta, sizeof meta,
             "erd train seed=%llu epochs=%u best_epoch=%u arch=%s/%u/%u/%u dim=%u batch=%u "
             "lr=%g scale=%g hard_k=%u augment=%g loss=%s/%g/%g/%g knee=%g "
             "synthetic=%llux%u@%g threads=%u holdout=%g "
             "data=fnv1a64:%016llx pairs=%zu init=%08x "
             "heldout_r1=%.4f heldout_r5=%.4f date=%s",
             (unsigned long long)to.seed, to.epochs, res.best_epoch,
             to.arch.kind == PHO_ARCH_CONV ? "conv" : "bag", to.arch.emb_dim, to.arch.hash_bits,
             to.arch.conv_dim, to.arch.out_dim, to.batch, to.lr, to.scale, to.hard_k, to.augment,
             pho_loss_kind_name(to.loss.kind), to.loss.smoothing, to.loss.alpha, to.loss.beta,
             to.pair_knee, (unsigned long long)st.synthetic, copies, strength, to.threads,
             to.holdout, (unsigned long long)st.checksum, res.train_pairs,
             init ? (unsigned)(uint32_t)init->checksum : 0u, res.recall1,
             res.recall5, date);
    rc = pho_model_save(model, out, meta, &diag);
    if (rc < 0)
        goto out;
    if (!quiet)
        fprintf(stderr,
                "erd train: %zu training pairs (%zu phrases), %zu held-out pairs (%zu phrases); "
                "best epoch %u: recall@1 %.4f recall@5 %.4f; %.0f s -> %s (model:%s#%08x)\n",
                res.train_pairs, res.train_phrases, res.heldout_pairs, res.heldout_phrases,
                res.best_epoch, res.recall1, res.recall5, cmd__now() - t0, out, out,
                (unsigned)(uint32_t)model->checksum);
    ex = CMD_EXIT_OK;
out:
    if (rc < 0)
        ex = cmd_fail("train", &diag, rc);
    pho_encoder_destroy(bl);
    pho_channel_destroy(channel);
    pho_model_destroy(model);
    pho_model_destroy(init);
    pho_g2p_destroy(g2p);
    pho_trainset_destroy(ts);
    free(ph);
    return ex;
}
