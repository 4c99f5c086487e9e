/* erd phrases / erd simulate: thin command-line front ends over
 * phonetics/sim; this file owns their printing and signal handling. */
#include "server/cmd/cmd_sim.h"

#include <errno.h>
#include <unistd.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "phonetics/sim/pho_phrasegen.h"
#include "phonetics/sim/pho_sim.h"
#include "proto/erd_error.h"
#include "server/cmd/cmd_cli.h"
#include "server/cmd/cmd_opt.h"

/* cmd_exit_code lives with the server library; these commands do not
 * link it, so they map the few codes they meet themselves. */
static int cmd__sim_exit(int err)
{
    switch (err) {
    case ERD_OK: return CMD_EXIT_OK;
    case ERD_EINVAL: return CMD_EXIT_USAGE;
    case ERD_ENOTFOUND: return CMD_EXIT_NOINPUT;
    case ERD_EPARSE:
    case ERD_EJSON:
    case ERD_EUTF8:
    case ERD_ECORRUPT:
    case ERD_EMISMATCH: return CMD_EXIT_DATAERR;
    default: return CMD_EXIT_FAIL;
    }
}

static int cmd__sim_fail(const char *cmd, const erd_diag *diag, int err)
{
    fprintf(stderr, "erd %s: %s\n", cmd, erd_diag_message(diag, err));
    return cmd__sim_exit(err);
}

/* ---- phrases ---- */

typedef struct cmd__emit {
    FILE *out;
    int with_kind;
} cmd__emit;

static int cmd__emit_phrase(void *ctx, const char *phrase, enum pho_phrase_kind kind)
{
    cmd__emit *e = ctx;
    const char *name = kind == PHO_KIND_WORD     ? "word"
                       : kind == PHO_KIND_PHRASE ? "phrase"
                       : kind == PHO_KIND_NAME   ? "name"
                                                 : "title";
    int n = e->with_kind ? fprintf(e->out, "%s\t%s\n", name, phrase)
                         : fprintf(e->out, "%s\n", phrase);
    return n < 0 ? ERD_EIO : ERD_OK;
}

int cmd_phrases(int argc, char **argv)
{
    pho_phrasegen_opts po = {.wordnet_dir = PHO_PHRASEGEN_WORDNET_DIR,
                             .cmudict = PHO_PHRASEGEN_CMUDICT};
    pho_phrasegen *g = NULL;
    unsigned long long seed = 1, count = 1000;
    unsigned kinds = PHO_KIND_ALL;
    const char *kinds_list = NULL;
    cmd__emit emit = {stdout, 0};
    int stats = 0, rc;
    erd_diag diag = {0};
    const cmd_opt opts[] = {
        CMD_ULL("seed", 's', "N", &seed, 0, (double)UINT64_MAX, "random seed"),
        CMD_ULL("count", 'n', "M", &count, 0, 50000000, "number of phrases"),
        CMD_STR("kinds", 'k', "LIST", &kinds_list,
                "any of words,phrases,names,titles (default all; the\n"
                "mix favours titles and multi-word phrases)"),
        CMD_STR_DEF("wordnet", 0, "DIR", &po.wordnet_dir, "WordNet database"),
        CMD_STR_DEF("dict", 0, "FILE", &po.cmudict, "CMU pronouncing dictionary"),
        CMD_FLAG("show-kind", 0, &emit.with_kind, "prefix each phrase with its kind and a tab"),
        CMD_FLAG("stats", 0, &stats, "print the word pool sizes on stderr"),
    };
    const cmd_spec spec = CMD_SPEC("phrases", "[--seed N] [--count M] [--kinds LIST]",
        "Writes M distinct generic English phrases, one per line, for erd simulate:\n"
        "common words, WordNet multi-word expressions, person and place names, and\n"
        "made-up titles.  The same seed gives the same list.", opts);
    int ex;
    if (!cmd_opt_parse(&spec, argc, argv, &ex))
        return ex;
    if (kinds_list && (rc = pho_phrasegen_parse_kinds(kinds_list, &kinds, &diag)) < 0) {
        fprintf(stderr, "erd phrases: --kinds: %s\n", erd_diag_message(&diag, rc));
        return CMD_EXIT_USAGE;
    }
    if ((rc = pho_phrasegen_create(&po, &g, &diag)) < 0)
        return cmd__sim_fail("phrases", &diag, rc);
    if (stats) {
        pho_phrasegen_stats st;
        pho_phrasegen_get_stats(g, &st);
        fprintf(stderr,
                "erd phrases: %zu nouns, %zu adjectives, %zu verbs, %zu adverbs, %zu "
                "expressions, %zu people, %zu places\n",
                st.nouns, st.adjectives, st.verbs, st.adverbs, st.expressions, st.people,
                st.places);
    }
    rc = pho_phrasegen_run(g, seed, (size_t)count, kinds, cmd__emit_phrase, &emit, &diag);
    pho_phrasegen_destroy(g);
    if (rc == ERD_OK && fflush(stdout) != 0)
        rc = erd_fail(&diag, ERD_EIO, "writing phrases: %s", strerror(errno));
    if (rc == ERD_EIO && !diag.msg[0])
        erd_fail(&diag, rc, "writing phrases: %s", strerror(errno));
    return rc < 0 ? cmd__sim_fail("phrases", &diag, rc) : CMD_EXIT_OK;
}

/* ---- simulate ---- */

static volatile sig_atomic_t cmd__sim_stop;

static void cmd__sim_on_signal(int sig)
{
    (void)sig;
    cmd__sim_stop = 1;
}

typedef struct cmd__sim_view {
    int quiet, tty;
    double last; /* elapsed time of the last progress line */
} cmd__sim_view;

static void cmd__sim_line(const cmd__sim_view *v, const pho_sim_progress *p, int final)
{
    size_t todo = p->total - p->skipped;
    size_t seen = p->done + p->failed;
    double rate = p->elapsed > 0 ? (double)seen / p->elapsed : 0.0;
    double eta = rate > 0 ? (double)(todo - seen) / rate : 0.0;
    fprintf(stderr,
            "%serd simulate: %zu/%zu done, %zu failed, %.2f utt/s, %.1f s audio, ETA %.0f min%s",
            v->tty ? "\r" : "", p->skipped + p->done, p->total, p->failed, rate, p->audio_sec,
            eta / 60.0, v->tty && !final ? "   " : "\n");
}

static void cmd__sim_report(void *ctx, const pho_sim_progress *p, uint64_t index,
                            const char *phrase, const erd_diag *failure)
{
    cmd__sim_view *v = ctx;
    if (failure) {
        fprintf(stderr, "%serd simulate: skipped sim-%llu \"%s\": %s\n", v->tty ? "\r" : "",
                (unsigned long long)index, phrase, erd_diag_message(failure, failure->code));
    }
    if (v->quiet)
        return;
    /* Once a second on a terminal; a log file gets a line every 30 s. */
    if (p->elapsed - v->last >= (v->tty ? 1.0 : 30.0)) {
        v->last = p->elapsed;
        cmd__sim_line(v, p, 0);
    }
}

/* Parses and checks erd simulate's options into so and batch; 1 to run,
 * else 0 with the exit code in *ret_exit. */
static int cmd__sim_args(int argc, char **argv, pho_sim_opts *so, pho_sim_batch *batch,
                         int *quiet, int *ret_exit)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned jobs = cores > 0 ? (unsigned)cores : 1, nbest = (unsigned)so->nbest;
    unsigned long long seed = so->seed;
    const char *voices = NULL, *model_dir = PHO_SIM_MODEL_DIR;
    erd_diag diag = {0};
    const cmd_opt opts[] = {
        CMD_STR("in", 'i', "FILE", &batch->in_path, "phrases, one per line (erd phrases makes them)"),
        CMD_STR("out", 'o', "FILE", &batch->out_path, "JSON lines output, appended to"),
        CMD_UINT("jobs", 'j', "N", &jobs, 1, 256, "worker threads (default: the cores)"),
        CMD_ULL("seed", 's', "N", &seed, 0, (double)UINT64_MAX, "random seed"),
        CMD_STR("voices", 'v', "LIST", &voices,
                "voices: flite names, flite:NAME or festival:NAME\n(default slt,rms,awb,kal)"),
        CMD_REAL("speed-min", 0, "X", &so->speed_min, -HUGE_VAL, HUGE_VAL, "slowest speed factor"),
        CMD_REAL("speed-max", 0, "X", &so->speed_max, -HUGE_VAL, HUGE_VAL, "fastest speed factor"),
        CMD_REAL("noise-prob", 0, "P", &so->noise_prob, -HUGE_VAL, HUGE_VAL,
                 "share of noisy utterances"),
        CMD_REAL("snr-min", 0, "DB", &so->snr_min, -HUGE_VAL, HUGE_VAL, "lowest noise SNR in dB"),
        CMD_REAL("snr-max", 0, "DB", &so->snr_max, -HUGE_VAL, HUGE_VAL, "highest noise SNR in dB"),
        CMD_REAL("babble", 0, "S", &so->babble_share, -HUGE_VAL, HUGE_VAL,
                 "share of noisy utterances given babble (3 other\n"
                 "talkers) instead of coloured noise"),
        CMD_REAL("pitch-cents", 0, "C", &so->pitch_cents, -HUGE_VAL, HUGE_VAL,
                 "pitch shift drawn from +-C cents"),
        CMD_REAL("reverb", 0, "P", &so->reverb_prob, -HUGE_VAL, HUGE_VAL,
                 "share of utterances in a reverberant room"),
        CMD_REAL("telephone", 0, "P", &so->phone_prob, -HUGE_VAL, HUGE_VAL,
                 "share sent through a telephone channel"),
        CMD_UINT("nbest", 'n', "N", &nbest, 1, PHO_SIM_NBEST_MAX, "distinct hypotheses kept"),
        CMD_STR_DEF("model", 0, "DIR", &model_dir, "pocketsphinx model"),
        CMD_STR("flite", 0, "PATH", &so->flite, "flite binary (default: flite in PATH)"),
        CMD_STR("sox", 0, "PATH", &so->sox, "sox binary (default: sox in PATH)"),
        CMD_STR("text2wave", 0, "PATH", &so->text2wave, "festival's text2wave (default: in PATH)"),
        CMD_STR("tmpdir", 0, "DIR", &so->tmp_parent,
                "where the scratch directory goes (default $TMPDIR)"),
        CMD_FLAG("quiet", 'q', quiet, "no progress lines"),
    };
    const cmd_spec spec = CMD_SPEC_FULL("simulate", "--in PHRASES --out PAIRS.jsonl [OPTIONS]",
        "Has a flite or festival voice say each phrase, perturbs speed and pitch\n"
        "(sox), optionally adds a room, noise or babble and a telephone line,\n"
        "and decodes the audio with pocketsphinx (en-us acoustic model, generic\n"
        "LM) into an n-best list.  Writes one JSON line per phrase, shaped like\n"
        "the dev set: {\"id\":\"sim-<line>\",\"spoken\",\"voice\",\"perturb\",\"nbest\"}.\n"
        "Every random choice follows from the seed and the phrase's position, so\n"
        "results do not depend on --jobs.  Rerunning with the same --out resumes:\n"
        "phrases already there are skipped and new records are appended.", opts, "in,out", 0, 0);
    if (!cmd_opt_parse(&spec, argc, argv, ret_exit))
        return 0;
    *ret_exit = CMD_EXIT_USAGE;
    batch->jobs = (int)jobs;
    so->nbest = (int)nbest;
    so->seed = seed;
    so->model_dir = model_dir;
    int rc;
    if (voices && (rc = pho_sim_opts_set_voices(so, voices, &diag)) < 0) {
        fprintf(stderr, "erd simulate: --voices: %s\n", erd_diag_message(&diag, rc));
        return 0;
    }
    if ((rc = pho_sim_opts_check(so, &diag)) < 0) {
        fprintf(stderr, "erd simulate: %s\n", erd_diag_message(&diag, rc));
        return 0;
    }
    return 1;
}

int cmd_simulate(int argc, char **argv)
{
    pho_sim_opts so;
    pho_sim_batch batch = {0};
    pho_sim_progress prog = {0};
    cmd__sim_view view = {0};
    erd_diag diag = {0};
    int rc, ex;

    pho_sim_opts_init(&so);
    if (!cmd__sim_args(argc, argv, &so, &batch, &view.quiet, &ex))
        return ex;

    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = cmd__sim_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    cmd__sim_stop = 0;
    view.tty = isatty(STDERR_FILENO);
    batch.stop = &cmd__sim_stop;
    batch.report = cmd__sim_report;
    batch.ctx = &view;

    rc = pho_sim_run_batch(&so, &batch, &prog, &diag);

    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (rc < 0)
        return cmd__sim_fail("simulate", &diag, rc);
    if (!view.quiet)
        cmd__sim_line(&view, &prog, 1);
    if (cmd__sim_stop) {
        fprintf(stderr, "erd simulate: interrupted; run the same command again to resume\n");
        return CMD_EXIT_FAIL;
    }
    if (prog.done + prog.skipped == 0 && prog.total > 0) {
        fprintf(stderr, "erd simulate: no phrase could be simulated\n");
        return CMD_EXIT_FAIL;
    }
    return CMD_EXIT_OK;
}
