/* erd train: reads (hypothesis, intended phrase) pairs from erd simulate's
 * JSON lines, turns both sides into phonemes the way the index does
 * (vix_phrase_prepare), trains the encoder and writes the model file. */
#include "server/cmd/cmd_train.h"

#include <errno.h>
#include <unistd.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config/cfg.h"
#include "index/vix_phrase.h"
#include "phonetics/pho_channel.h"
#include "phonetics/pho_quant.h"
#include "phonetics/pho_train.h"
#include "proto/erd_clock.h"
#include "server/cmd/cmd_cli.h"
#include "server/cmd/cmd_opt.h"
#include "proto/erd_hash.h"

#define CMD__PAIR_FILES_MAX 32
#define CMD__CONV_DEFAULT 128
/* Set before any run, not tuned: the regulariser's terms are relative
 * errors of mean and variance, of the order of the contrastive loss. */
#define CMD__SQUASH_REG_DEFAULT 1.0

typedef struct cmd__load_stats {
    uint64_t records, pairs, skipped_empty, checksum, synthetic, second;
} cmd__load_stats;

/* The phrase's second pronunciation (a "+cmu" G2P voice), when it has one
 * that differs, as a phrase of its own: the catalog indexes and aligns both,
 * so the encoder learns to place what was heard near either.  *ret_idx is
 * UINT32_MAX when there is none. */
static int cmd__second_phrase(pho_trainset *ts, pho_g2p *g2p, const vix_phrase *first,
                              uint32_t *ret_idx, erd_diag *diag)
{
    vix_phrase *second = malloc(sizeof *second);
    int rc;
    if (!second)
        return erd_fail(diag, ERD_ENOMEM, "out of memory");
    rc = vix_phrase_second(g2p, first, second, diag);
    if (rc == ERD_ENOTFOUND) {
        *ret_idx = UINT32_MAX;
        rc = ERD_OK;
    } else if (rc == ERD_OK) {
        rc = pho_trainset_add_phrase(ts, second->text, second->tokens, second->n_tokens, ret_idx);
        if (rc < 0)
            rc = erd_fail(diag, rc, "adding phrase \"%.64s\" failed", second->text);
    }
    free(second);
    return rc;
}

/* One record: its spoken phrase and every hypothesis as pairs.  A text with
 * nothing speakable (an empty hypothesis) is skipped, not an error. */
static int cmd__load_record(pho_trainset *ts, pho_g2p *g2p, int second, vix_phrase *ph,
                            json_t *rec, cmd__load_stats *st, erd_diag *diag)
{
    json_t *spoken = json_object_get(rec, "spoken"), *nbest = json_object_get(rec, "nbest");
    uint32_t idx, idx2 = UINT32_MAX;
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
    if (second && (rc = cmd__second_phrase(ts, g2p, ph, &idx2, diag)) < 0)
        return rc;
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
        if (rc == ERD_OK && idx2 != UINT32_MAX && idx2 != idx) {
            rc = pho_trainset_add_pair(ts, idx2, ph->tokens, ph->n_tokens);
            st->second += rc == ERD_OK;
        }
        if (rc < 0)
            return erd_fail(diag, rc, "adding hypothesis \"%.64s\" failed", ph->text);
        st->pairs++;
    }
    return ERD_OK;
}

typedef struct cmd__load_ctx {
    pho_trainset *ts;
    pho_g2p *g2p;
    int second;
    vix_phrase *ph;
    cmd__load_stats *st;
} cmd__load_ctx;

static int cmd__load_one(void *user, json_t *rec, erd_diag *diag)
{
    cmd__load_ctx *c = user;
    return cmd__load_record(c->ts, c->g2p, c->second, c->ph, rec, c->st, diag);
}

/* path "-" reads standard input (e.g. from gzip -dc). */
static int cmd__load_file(pho_trainset *ts, pho_g2p *g2p, int second, vix_phrase *ph,
                          const char *path, cmd__load_stats *st, erd_diag *diag)
{
    cmd__load_ctx c = {.ts = ts, .g2p = g2p, .second = second, .ph = ph, .st = st};
    cmd_record_stats read = {.checksum = st->checksum};
    int rc = cmd_each_record(path, cmd__load_one, &c, &read, diag);
    st->checksum = read.checksum;
    st->records += read.records;
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

typedef struct train_args {
    const char *files[CMD__PAIR_FILES_MAX];
    size_t n_files;
    const char *out, *config, *synthetic, *channel_path, *init_path, *arch, *loss;
    unsigned copies;
    double strength;
    int quiet, baseline, second;
    unsigned long long seed;
    pho_train_opts to;
} train_args;

/* Parses and checks erd train's options into a; 1 to run, else 0 with the
 * exit code in *ret_exit. */
static int train__args(int argc, char **argv, train_args *a, int *ret_exit)
{
    pho_train_opts *to = &a->to;
    erd_diag diag = {0};
    const cmd_opt opts[] = {
        CMD_LIST("pairs", 'p', "FILES", a->files, &a->n_files,
                 "comma-separated JSON lines files (- for stdin)"),
        CMD_STR("out", 'o', "MODEL", &a->out, "model file to write"),
        CMD_ULL("seed", 0, "N", &a->seed, 0, (double)UINT64_MAX, "random seed"),
        CMD_UINT("epochs", 0, "N", &to->epochs, 0, 1000, "passes over the pairs"),
        CMD_UINT("dim", 0, "D", &to->arch.out_dim, 0, PHO_MODEL_OUT_MAX, "output dimension"),
        CMD_UINT("threads", 0, "N", &to->threads, 0, 64, "training threads"),
        CMD_REAL("holdout", 0, "F", &to->holdout, 0, 1, "share of spoken phrases held out"),
        CMD_STR_DEF("arch", 0, "bag|conv", &a->arch, "plain n-gram bag or convolution"),
        CMD_UINT("emb", 0, "N", &to->arch.emb_dim, 0, PHO_MODEL_EMB_MAX, "token embedding width"),
        CMD_UINT("conv", 0, "N", &to->arch.conv_dim, 0, PHO_MODEL_CONV_MAX,
                 "convolution channels (0: " CMD_STRINGIFY(CMD__CONV_DEFAULT) " with --arch conv)"),
        CMD_UINT("hash-bits", 0, "N", &to->arch.hash_bits, 0, PHO_MODEL_HASH_BITS_MAX,
                 "2^N n-gram buckets"),
        CMD_UINT("batch", 0, "N", &to->batch, 0, 4096, "pairs per step"),
        CMD_REAL("lr", 0, "X", &to->lr, -HUGE_VAL, HUGE_VAL, "Adam step size"),
        CMD_REAL("scale", 0, "X", &to->scale, -HUGE_VAL, HUGE_VAL, "softmax inverse temperature"),
        CMD_UINT("hard-k", 0, "N", &to->hard_k, 0, 64,
                 "hard negatives from the N nearest phrases, 0 off"),
        CMD_REAL("augment", 0, "R", &to->augment, -HUGE_VAL, HUGE_VAL,
                 "extra phone noise on hypotheses at rate R"),
        CMD_STR_DEF("loss", 0, "L", &a->loss, "infonce, or apl (normalised + reverse cross-entropy,\n"
                                           "robust to wrong pairs)"),
        CMD_REAL("smoothing", 0, "E", &to->loss.smoothing, -HUGE_VAL, HUGE_VAL,
                 "InfoNCE label smoothing, 0..0.5"),
        CMD_REAL("apl-alpha", 0, "A", &to->loss.alpha, -HUGE_VAL, HUGE_VAL,
                 "APL weight of the normalised cross-entropy"),
        CMD_REAL("apl-beta", 0, "B", &to->loss.beta, -HUGE_VAL, HUGE_VAL,
                 "APL weight of the reverse cross-entropy"),
        CMD_UINT("patience", 0, "N", &to->patience, 0, 1000,
                 "stop after N epochs without a better held-out\nrecall, 0 never"),
        CMD_REAL("pair-knee", 0, "K", &to->pair_knee, -HUGE_VAL, HUGE_VAL,
                 "weight pairs by phone overlap / K (floor " CMD_STRINGIFY(PHO_PAIR_WEIGHT_MIN)
                 ", cap 1);\n0 weighs every pair 1"),
        CMD_UINT("squash", 0, "BITS", &to->squash.bits, 0, 8,
                 "quantisation-aware output: squashed output stage,\n"
                 "mean/variance regulariser, and the loss seeing\n"
                 "BITS-bit codes (8, 4 or 2; straight-through); 0 off"),
        CMD_REAL("squash-reg", 0, "W", &to->squash.reg, -HUGE_VAL, HUGE_VAL,
                 "weight of --squash's mean/variance regulariser"),
        CMD_STR("synthetic", 0, "FILE", &a->synthetic,
                "phrases (one per line, e.g. from erd phrases) turned\n"
                "into extra pairs by the noise channel"),
        CMD_STR("channel", 0, "FILE", &a->channel_path, "noise channel for --synthetic (erd channel)"),
        CMD_UINT("copies", 0, "N", &a->copies, 0, 64, "noisy copies per synthetic phrase"),
        CMD_REAL("strength", 0, "X", &a->strength, 0, 4, "scale of the channel's error rates"),
        CMD_FLAG("baseline", 0, &a->baseline, "also report the baseline encoder on the held-out slice"),
        CMD_FLAG("second-pronunciation", 0, &a->second,
                 "also pair each heard hypothesis with its phrase's\n"
                 "second pronunciation (a +cmu g2p_voice)"),
        CMD_STR("init", 0, "MODEL", &a->init_path,
                "fine-tune this model (its architecture; --arch, --emb,\n"
                "--conv, --hash-bits and --dim are ignored); the\n"
                "held-out slice scores it first, as epoch 0"),
        CMD_STR("config", 0, "FILE", &a->config, "configuration file (for the G2P voice)"),
        CMD_FLAG("quiet", 'q', &a->quiet, "no progress on stderr"),
    };
    const cmd_spec spec = CMD_SPEC_FULL("train", "--pairs FILE[,FILE...] --out MODEL [OPTIONS]",
        "Trains the learned phonetic encoder on erd simulate's JSON lines\n"
        "({\"spoken\", \"nbest\": [{\"text\"}...]}: each hypothesis with its spoken\n"
        "phrase is one pair) and writes MODEL, usable as --encoder model:MODEL.\n"
        "A slice of the spoken phrases is held out; the epoch that recalls it\n"
        "best is kept.  Same data, seed and threads give the same model.", opts, "pairs,out", 0, 0);
    if (!cmd_opt_parse(&spec, argc, argv, ret_exit))
        return 0;
    *ret_exit = CMD_EXIT_USAGE;
    to->seed = a->seed;
    if (!strcmp(a->arch, "conv") || !strcmp(a->arch, "bag")) {
        to->arch.kind = !strcmp(a->arch, "conv") ? PHO_ARCH_CONV : PHO_ARCH_BAG;
    } else {
        fprintf(stderr, "erd train: --arch must be conv or bag\n");
        return 0;
    }
    if (pho_loss_kind_parse(a->loss, &to->loss.kind) < 0) {
        fprintf(stderr, "erd train: --loss must be infonce or apl\n");
        return 0;
    }
    if (to->squash.bits && !pho_quant_bits_valid(to->squash.bits)) {
        fprintf(stderr, "erd train: --squash must be 8, 4 or 2 (0 off)\n");
        return 0;
    }
    if (!to->squash.bits)
        to->squash.reg = 0.0; /* the regulariser belongs to --squash */
    else if (!(to->squash.reg >= 0.0)) {
        fprintf(stderr, "erd train: --squash-reg must be >= 0\n");
        return 0;
    }
    if (a->synthetic && !a->channel_path) {
        fprintf(stderr, "erd train: --synthetic needs --channel\n");
        return 0;
    }
    if (to->arch.kind == PHO_ARCH_BAG)
        to->arch.conv_dim = 0;
    else if (to->arch.conv_dim == 0)
        to->arch.conv_dim = CMD__CONV_DEFAULT;
    int rc = pho_model_arch_check(&to->arch, &diag);
    if (rc < 0) {
        fprintf(stderr, "erd train: %s\n", erd_diag_message(&diag, rc));
        return 0;
    }
    return 1;
}

/* The training pairs of a's files (and synthetic phrases) into ts. */
static int train__load(const train_args *a, const cfg_config *cfg, pho_trainset *ts,
                       vix_phrase *ph, cmd__load_stats *st, erd_diag *diag)
{
    pho_g2p *g2p = NULL;
    pho_channel *channel = NULL;
    int rc = cmd_training_g2p(cfg->g2p_voice, a->second, &g2p, diag);
    for (size_t i = 0; rc == ERD_OK && i < a->n_files; i++)
        rc = cmd__load_file(ts, g2p, a->second, ph, a->files[i], st, diag);
    if (rc == ERD_OK && a->synthetic) {
        rc = pho_channel_load(a->channel_path, &channel, diag);
        if (rc == ERD_OK)
            rc = cmd__load_synthetic(ts, g2p, ph, channel, a->synthetic, a->copies, a->strength,
                                     a->to.seed, st, diag);
    }
    pho_channel_destroy(channel);
    pho_g2p_destroy(g2p);
    return rc;
}

/* The model file's provenance line. */
static void train__meta(const train_args *a, const pho_train_opts *to, const pho_train_result *res,
                        const cmd__load_stats *st, const pho_model *init, char *meta, size_t cap)
{
    /* options absent when off, so a plain model's provenance reads as before */
    char date[32], optional[96] = "";
    size_t used = 0;
    time_t now = time(NULL);
    if (to->squash.bits)
        used += (size_t)snprintf(optional, sizeof optional, " squash=%u/%g", to->squash.bits,
                                 to->squash.reg);
    if (a->second && used < sizeof optional)
        snprintf(optional + used, sizeof optional - used, " second=%llu",
                 (unsigned long long)st->second);
    struct tm tmv;
    if (!gmtime_r(&now, &tmv) || !strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", &tmv))
        snprintf(date, sizeof date, "unknown");
    snprintf(meta, cap,
             "erd train seed=%llu epochs=%u best_epoch=%u arch=%s/%u/%u/%u dim=%u batch=%u "
             "lr=%g scale=%g hard_k=%u augment=%g loss=%s/%g/%g/%g knee=%g "
             "synthetic=%llux%u@%g threads=%u holdout=%g "
             "data=fnv1a64:%016llx pairs=%zu init=%08x "
             "heldout_r1=%.4f heldout_r5=%.4f%s date=%s",
             (unsigned long long)to->seed, to->epochs, res->best_epoch,
             to->arch.kind == PHO_ARCH_CONV ? "conv" : "bag", to->arch.emb_dim, to->arch.hash_bits,
             to->arch.conv_dim, to->arch.out_dim, to->batch, to->lr, to->scale, to->hard_k,
             to->augment, pho_loss_kind_name(to->loss.kind), to->loss.smoothing, to->loss.alpha,
             to->loss.beta, to->pair_knee, (unsigned long long)st->synthetic, a->copies,
             a->strength, to->threads, to->holdout, (unsigned long long)st->checksum,
             res->train_pairs, init ? (unsigned)(uint32_t)init->checksum : 0u, res->recall1,
             res->recall5, optional, date);
}

/* The held-out recall of the baseline encoder, for comparison. */
static int train__baseline(pho_trainset *ts, double holdout, erd_diag *diag)
{
    pho_encoder *bl = NULL;
    double r1, r5;
    int rc = pho_encoder_create("baseline", &bl, diag);
    if (rc == ERD_OK)
        rc = pho_train_eval_encoder(ts, holdout, bl, &r1, &r5, diag);
    if (rc == ERD_OK)
        fprintf(stderr, "erd train: baseline (%s) held-out recall@1 %.4f  recall@5 %.4f\n",
                pho_encoder_id(bl), r1, r5);
    pho_encoder_destroy(bl);
    return rc;
}

int cmd_train(int argc, char **argv)
{
    train_args a = {.copies = 3, .strength = 1.0, .seed = 0, .arch = "bag", .loss = "infonce"};
    pho_train_opts *to = &a.to;
    int rc, ex = CMD_EXIT_FAIL;
    pho_trainset *ts = NULL;
    pho_model *model = NULL, *init = NULL;
    vix_phrase *ph = NULL;
    erd_diag diag = {0};
    cmd__load_stats st = {.checksum = ERD_FNV1A64_OFFSET};
    pho_train_result res;
    char meta[2 * PHO_MODEL_META_MAX]; /* meta is cut to size on save */
    double t0 = erd_now_s();

    pho_train_opts_init(to);
    a.seed = to->seed;
    to->squash.reg = CMD__SQUASH_REG_DEFAULT;
    if (!train__args(argc, argv, &a, &ex))
        return ex;
    cfg_config cfg;
    if ((rc = cmd_startup(a.config, NULL, 0, &cfg, &diag)) < 0)
        return cmd_fail("train", &diag, rc);

    if (a.init_path) {
        rc = pho_model_load(a.init_path, &init, &diag);
        if (rc < 0)
            goto out;
        to->arch = init->arch; /* init stays ours (freed at out); pho_train only reads it */
        to->init = init;
    }
    ph = malloc(sizeof *ph);
    if (!ph || pho_trainset_create(&ts) < 0) {
        rc = erd_fail(&diag, ERD_ENOMEM, "out of memory");
        goto out;
    }
    rc = train__load(&a, &cfg, ts, ph, &st, &diag);
    if (rc < 0)
        goto out;
    if (!a.quiet && a.synthetic)
        fprintf(stderr, "erd train: %llu synthetic pairs from %s through %s\n",
                (unsigned long long)st.synthetic, a.synthetic, a.channel_path);
    if (!a.quiet)
        fprintf(stderr,
                "erd train: %llu records, %llu pairs over %zu distinct phrases (%llu empty "
                "texts skipped, %llu more pairs with a second pronunciation), phonemes in %.1f s\n",
                (unsigned long long)st.records, (unsigned long long)st.pairs,
                pho_trainset_n_phrases(ts), (unsigned long long)st.skipped_empty,
                (unsigned long long)st.second,
                erd_now_s() - t0);
    if (a.baseline && (rc = train__baseline(ts, to->holdout, &diag)) < 0)
        goto out;
    if (!a.quiet) {
        to->progress = cmd__train_progress;
        to->progress_user = NULL;
    }
    rc = pho_train(ts, to, &model, &res, &diag);
    if (rc < 0)
        goto out;
    train__meta(&a, to, &res, &st, init, meta, sizeof meta);
    rc = pho_model_save(model, a.out, meta, &diag);
    if (rc < 0)
        goto out;
    if (!a.quiet)
        fprintf(stderr,
                "erd train: %zu training pairs (%zu phrases), %zu held-out pairs (%zu phrases); "
                "best epoch %u: recall@1 %.4f recall@5 %.4f; %.0f s -> %s (model:%s#%08x)\n",
                res.train_pairs, res.train_phrases, res.heldout_pairs, res.heldout_phrases,
                res.best_epoch, res.recall1, res.recall5, erd_now_s() - t0, a.out, a.out,
                (unsigned)(uint32_t)model->checksum);
    ex = CMD_EXIT_OK;
out:
    if (rc < 0)
        ex = cmd_fail("train", &diag, rc);
    pho_model_destroy(model);
    pho_model_destroy(init);
    pho_trainset_destroy(ts);
    free(ph);
    return ex;
}
