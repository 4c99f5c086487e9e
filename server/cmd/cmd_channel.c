/* erd channel: reads (hypothesis, intended phrase) pairs from erd simulate's
 * JSON lines, turns both sides into phonemes the way the index does
 * (vix_phrase_prepare), estimates the phone noise channel and writes it. */
#include "server/cmd/cmd_channel.h"

#include <errno.h>
#include <unistd.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/cfg.h"
#include "index/vix_phrase.h"
#include "phonetics/pho_channel.h"
#include "server/cmd/cmd_cli.h"
#include "server/cmd/cmd_opt.h"
#include "proto/erd_hash.h"

#define CMD__CH_FILES_MAX 32

typedef struct cmd__ch_load {
    pho_channel_trainer *tr;
    pho_g2p *g2p;
    vix_phrase *ref, *ref2, *hyp;
    pho_align_op *ops; /* 2 * PHO_TOKENS_MAX: the nearer pronunciation's alignment */
    int second;        /* ref2 holds the phrase's second pronunciation */
    uint64_t pairs, skipped_empty, nearer_second;
    cmd_record_stats read;
} cmd__ch_load;

/* Of the phrase's two pronunciations the one nearer hyp by plain edit
 * distance (espeak-ng's on a tie): the rerank scores a hypothesis against
 * the better of a name's two, so the channel learns the errors left after
 * that choice, not the differences between two dictionaries. */
static const vix_phrase *cmd__ch_nearer(cmd__ch_load *ld)
{
    double c1, c2;
    size_t n;
    if (!ld->second)
        return ld->ref;
    if (pho_channel_align(NULL, ld->ref->tokens, ld->ref->n_tokens, ld->hyp->tokens,
                          ld->hyp->n_tokens, ld->ops, 2 * PHO_TOKENS_MAX, &n, &c1) < 0 ||
        pho_channel_align(NULL, ld->ref2->tokens, ld->ref2->n_tokens, ld->hyp->tokens,
                          ld->hyp->n_tokens, ld->ops, 2 * PHO_TOKENS_MAX, &n, &c2) < 0)
        return ld->ref;
    if (c2 < c1) {
        ld->nearer_second++;
        return ld->ref2;
    }
    return ld->ref;
}

static int cmd__ch_record(cmd__ch_load *ld, json_t *rec, erd_diag *diag)
{
    json_t *spoken = json_object_get(rec, "spoken"), *nbest = json_object_get(rec, "nbest");
    size_t i;
    json_t *h;
    int rc;

    if (!json_is_string(spoken) || !json_is_array(nbest))
        return erd_fail(diag, ERD_EPARSE, "record lacks \"spoken\" or \"nbest\"");
    rc = vix_phrase_prepare(ld->g2p, NULL, json_string_value(spoken), json_string_length(spoken),
                            ld->ref, diag);
    if (rc == ERD_EEMPTY) {
        ld->skipped_empty++;
        return ERD_OK;
    }
    if (rc < 0)
        return rc;
    ld->second = ld->ops != NULL;
    if (ld->second) {
        rc = vix_phrase_second(ld->g2p, ld->ref, ld->ref2, diag);
        if (rc == ERD_ENOTFOUND)
            ld->second = 0;
        else if (rc < 0)
            return rc;
    }
    json_array_foreach(nbest, i, h) {
        json_t *text = json_object_get(h, "text");
        if (!json_is_string(text))
            return erd_fail(diag, ERD_EPARSE, "hypothesis %zu has no \"text\"", i);
        rc = vix_phrase_prepare(ld->g2p, NULL, json_string_value(text), json_string_length(text),
                                ld->hyp, diag);
        if (rc == ERD_EEMPTY) {
            ld->skipped_empty++;
            continue;
        }
        if (rc < 0)
            return rc;
        const vix_phrase *ref = cmd__ch_nearer(ld);
        rc = pho_channel_trainer_add(ld->tr, ref->tokens, ref->n_tokens, ld->hyp->tokens,
                                     ld->hyp->n_tokens);
        if (rc < 0)
            return erd_fail(diag, rc, "adding hypothesis \"%.64s\" failed", ld->hyp->text);
        ld->pairs++;
    }
    return ERD_OK;
}

static int cmd__ch_one(void *user, json_t *rec, erd_diag *diag)
{
    return cmd__ch_record(user, rec, diag);
}

/* The most frequent confusions, for a human to sanity-check the estimate. */
static void cmd__ch_report(const pho_channel *ch, const pho_channel_train_stats *st)
{
    fprintf(stderr, "erd channel: %zu pairs, %zu intended / %zu heard phones\n", st->pairs,
            st->ref_phones, st->hyp_phones);
    for (unsigned r = 0; r < st->rounds; r++)
        fprintf(stderr, "erd channel: round %u: mean alignment cost %.4f per intended phone%s\n",
                r + 1, st->cost_per_phone[r], r == 0 ? " (unit costs)" : " (nats)");
    double all = st->matches + st->subs + st->dels;
    fprintf(stderr,
            "erd channel: of intended phones %.1f%% kept, %.1f%% substituted, %.1f%% deleted; "
            "%.1f insertions per 100; insertion rate %.4f\n",
            100 * st->matches / all, 100 * st->subs / all, 100 * st->dels / all,
            100 * st->ins / all, pho_channel_ins_rate(ch));
    fprintf(stderr,
            "erd channel: word starts kept %.0f, dropped %.0f, added %.0f; "
            "P(start|start) %.3f  P(start|inside) %.3f\n",
            st->boundary_kept, st->boundary_dropped, st->boundary_added,
            pho_channel_boundary_prob(ch, 1, 1), pho_channel_boundary_prob(ch, 0, 1));
    struct { unsigned r, h; double p; } top[12] = {{0, 0, 0}};
    for (unsigned r = 1; r < PHO_N_PHONES; r++)
        for (unsigned h = 0; h < PHO_N_PHONES; h++) {
            double p = pho_channel_sub_prob(ch, r, h);
            if (h == r || p <= top[11].p)
                continue;
            size_t k = 11;
            while (k > 0 && top[k - 1].p < p) {
                top[k] = top[k - 1];
                k--;
            }
            top[k].r = r;
            top[k].h = h;
            top[k].p = p;
        }
    fprintf(stderr, "erd channel: likeliest errors:");
    for (size_t k = 0; k < 12 && top[k].r; k++)
        fprintf(stderr, " %s>%s %.2f", pho_phone_symbol(top[k].r),
                top[k].h ? pho_phone_symbol(top[k].h) : "-", top[k].p);
    fprintf(stderr, "\n");
}

int cmd_channel(int argc, char **argv)
{
    const char *out = NULL, *config = NULL, *files[CMD__CH_FILES_MAX];
    size_t n_files = 0;
    int quiet = 0, second = 0, rc, ex = CMD_EXIT_FAIL;
    pho_channel_train_opts to;
    pho_channel_train_stats st;
    pho_channel *ch = NULL;
    erd_diag diag = {0};
    cmd__ch_load ld = {.read.checksum = ERD_FNV1A64_OFFSET};
    char meta[512];

    pho_channel_train_opts_init(&to);
    const cmd_opt opts[] = {
        CMD_LIST("pairs", 'p', "FILES", files, &n_files,
                 "comma-separated JSON lines files (- for stdin); an\n"
                 "unfinished last line is skipped"),
        CMD_STR("out", 'o', "CHANNEL", &out,
                "channel file to write (e.g. phonetics/models/channel-v1.txt)"),
        CMD_UINT("rounds", 0, "N", &to.rounds, 1, 16, "EM rounds, the first with unit costs"),
        CMD_REAL("smoothing", 0, "K", &to.smoothing, 1e-300, 1000,
                 "add-K smoothing of every count"),
        CMD_STR("config", 0, "FILE", &config, "configuration file (for the G2P voice)"),
        CMD_FLAG("second-pronunciation", 0, &second,
                 "align each hypothesis with the nearer of its phrase's\n"
                 "two pronunciations (a +cmu g2p_voice)"),
        CMD_FLAG("quiet", 'q', &quiet, "no statistics on stderr"),
    };
    const cmd_spec spec = CMD_SPEC_FULL("channel", "--pairs FILE[,FILE...] --out CHANNEL [OPTIONS]",
        "Estimates the phone noise channel (substitution, deletion, insertion and\n"
        "word-boundary probabilities) from erd simulate's JSON lines by aligning\n"
        "each hypothesis's phones with the spoken phrase's, re-aligning with the\n"
        "learned costs for a few EM rounds.  Deterministic for the same data.", opts, "pairs,out", 0, 0);
    if (!cmd_opt_parse(&spec, argc, argv, &ex))
        return ex;
    cfg_config cfg;
    if ((rc = cmd_startup(config, NULL, 0, &cfg, &diag)) < 0)
        return cmd_fail("channel", &diag, rc);

    ld.ref = malloc(sizeof *ld.ref);
    ld.ref2 = malloc(sizeof *ld.ref2);
    ld.hyp = malloc(sizeof *ld.hyp);
    ld.ops = second ? malloc(2 * PHO_TOKENS_MAX * sizeof *ld.ops) : NULL;
    if (!ld.ref || !ld.ref2 || !ld.hyp || (second && !ld.ops) ||
        pho_channel_trainer_create(&ld.tr) < 0) {
        rc = erd_fail(&diag, ERD_ENOMEM, "out of memory");
        goto out;
    }
    rc = cmd_training_g2p(cfg.g2p_voice, second, &ld.g2p, &diag);
    for (size_t i = 0; rc == ERD_OK && i < n_files; i++)
        rc = cmd_each_record(files[i], cmd__ch_one, &ld, &ld.read, &diag);
    if (rc < 0)
        goto out;
    if (!quiet)
        fprintf(stderr,
                "erd channel: %llu records, %llu pairs (%llu empty texts skipped, %llu unfinished "
                "lines left out; %llu aligned with the CMU pronunciation, nearer)\n",
                (unsigned long long)ld.read.records, (unsigned long long)ld.pairs,
                (unsigned long long)ld.skipped_empty, (unsigned long long)ld.read.partial,
                (unsigned long long)ld.nearer_second);
    rc = pho_channel_train(ld.tr, &to, &ch, &st, &diag);
    if (rc < 0)
        goto out;
    if (!quiet)
        cmd__ch_report(ch, &st);
    snprintf(meta, sizeof meta,
             "erd channel rounds=%u smoothing=%g records=%llu pairs=%llu g2p=%s%s "
             "data=fnv1a64:%016llx",
             to.rounds, to.smoothing, (unsigned long long)ld.read.records,
             (unsigned long long)ld.pairs, cfg.g2p_voice, second ? " nearer" : "",
             (unsigned long long)ld.read.checksum);
    rc = pho_channel_save(ch, out, meta, &diag);
    if (rc < 0)
        goto out;
    if (!quiet)
        fprintf(stderr, "erd channel: wrote %s (checksum %016llx)\n", out,
                (unsigned long long)pho_channel_checksum(ch));
    ex = CMD_EXIT_OK;
out:
    if (rc < 0)
        ex = cmd_fail("channel", &diag, rc);
    pho_channel_destroy(ch);
    pho_channel_trainer_destroy(ld.tr);
    pho_g2p_destroy(ld.g2p);
    free(ld.ref);
    free(ld.ref2);
    free(ld.hyp);
    free(ld.ops);
    return ex;
}
