/* erd command-fit: reads utterances said to an assistant and title-like
 * names (one a line), normalises them as a resolve does, fits the command
 * table and, given held-out texts of both kinds, prints how well its score
 * separates them (AUROC, and the share of each side scored above 0). */
#include "server/cmd/cmd_command.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "index/vix_command.h"
#include "phonetics/pho_text.h"
#include "server/cmd/cmd_cli.h"
#include "server/cmd/cmd_opt.h"
#include "server/cmd/cmd_score.h"

#define COMMAND_FILES_MAX 16

/* Normalised lines of some files; a line with nothing speakable is skipped. */
typedef struct command_texts {
    char **v;
    size_t n, cap;
} command_texts;

static void command__free(command_texts *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->v[i]);
    free(t->v);
    *t = (command_texts){0};
}

static int command__add(command_texts *t, const char *line, size_t len)
{
    char norm[PHO_TEXT_MAX];
    size_t n_norm;
    int rc = pho_normalize(line, len, norm, sizeof norm, &n_norm);
    if (rc == ERD_EEMPTY || rc == ERD_ETOOLONG)
        return ERD_OK; /* nothing to count, or no request would be this long */
    if (rc < 0)
        return rc;
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 1024;
        char **v = realloc(t->v, cap * sizeof *v);
        if (!v)
            return ERD_ENOMEM;
        t->v = v;
        t->cap = cap;
    }
    if (!(t->v[t->n] = strdup(norm)))
        return ERD_ENOMEM;
    t->n++;
    return ERD_OK;
}

static int command__read(const char *const *paths, size_t n_paths, command_texts *ret,
                         erd_diag *diag)
{
    char *line = NULL;
    size_t cap = 0;
    int rc = ERD_OK;
    for (size_t p = 0; rc == ERD_OK && p < n_paths; p++) {
        FILE *f = fopen(paths[p], "r");
        if (!f) {
            rc = erd_fail(diag, ERD_ENOTFOUND, "%s: cannot open", paths[p]);
            break;
        }
        ssize_t len;
        size_t line_no = 0;
        while (rc == ERD_OK && (len = getline(&line, &cap, f)) >= 0) {
            line_no++;
            while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
                len--;
            if ((rc = command__add(ret, line, (size_t)len)) < 0)
                rc = erd_fail(diag, rc, "%s:%zu: %s", paths[p], line_no,
                              rc == ERD_ENOMEM ? "out of memory" : "not valid UTF-8");
        }
        fclose(f);
    }
    free(line);
    return rc;
}

/* The table's score of every text; NULL when out of memory. */
static double *command__scores(const vix_command *cmd, const command_texts *t)
{
    double *s = malloc((t->n ? t->n : 1) * sizeof *s);
    for (size_t i = 0; s && i < t->n; i++)
        s[i] = vix_command_score(cmd, t->v[i], strlen(t->v[i]));
    return s;
}

/* Percentage of n scores above 0 (reads more like a command than a name). */
static double command__above(const double *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += s[i] > 0;
    return n ? 100.0 * (double)k / (double)n : 0;
}

static void command__report(const vix_command *cmd, const command_texts *tc,
                            const command_texts *tn)
{
    if (!tc->n || !tn->n)
        return;
    double *sc = command__scores(cmd, tc), *sn = command__scores(cmd, tn);
    if (sc && sn)
        printf("held out: %zu commands, %zu names: AUROC %.4f; score > 0 for %.1f %% of "
               "commands, %.1f %% of names\n",
               tc->n, tn->n, cmd_auroc(sc, tc->n, sn, tn->n), command__above(sc, tc->n),
               command__above(sn, tn->n));
    free(sc);
    free(sn);
}

int cmd_command_fit(int argc, char **argv)
{
    const char *commands[COMMAND_FILES_MAX], *names[COMMAND_FILES_MAX];
    const char *test_commands[COMMAND_FILES_MAX], *test_names[COMMAND_FILES_MAX];
    size_t n_commands = 0, n_names = 0, n_test_commands = 0, n_test_names = 0;
    const char *out_path = NULL;
    unsigned min_count;
    vix_command_fit_opts fo;
    vix_command_fit_opts_init(&fo);
    min_count = (unsigned)fo.min_count;
    const cmd_opt opts[] = {
        CMD_LIST("commands", 0, "FILE[,FILE]", commands, &n_commands,
                 "utterances that are no catalog request (one a line)"),
        CMD_LIST("names", 0, "FILE[,FILE]", names, &n_names,
                 "title-like names, and what a recogniser heard of them (one a line)"),
        CMD_LIST("test-commands", 0, "FILE[,FILE]", test_commands, &n_test_commands,
                 "held-out commands to report on"),
        CMD_LIST("test-names", 0, "FILE[,FILE]", test_names, &n_test_names,
                 "held-out names to report on"),
        CMD_STR("out", 'o', "FILE", &out_path, "command table to write (JSON)"),
        CMD_REAL("alpha", 0, "X", &fo.alpha, 1e-6, 1e6, "additive smoothing of the counts"),
        CMD_UINT("min-count", 0, "N", &min_count, 1, 1000000,
                 "drop n-grams found in fewer texts"),
        CMD_REAL("clip", 0, "X", &fo.clip, 0.01, 100, "largest |log-odds| of one n-gram"),
        CMD_REAL("keep", 0, "X", &fo.keep, 0, 100, "drop n-grams of smaller |log-odds|"),
    };
    const cmd_spec spec = CMD_SPEC_FULL("command-fit",
        "--commands FILE --names FILE --out FILE [OPTIONS]",
        "Fits the table of word and word-pair log-odds (commands against names)\n"
        "behind the calibration's \"command\" feature; name it in the rerank spec\n"
        "(rerank = CHANNEL,...,command=FILE, FILE beside the channel) and refit the\n"
        "calibration under it.  Never fit on the evaluation sets.",
        opts, "commands,names,out", 0, 0);
    int ex;
    if (!cmd_opt_parse(&spec, argc, argv, &ex))
        return ex;
    fo.min_count = min_count;
    erd_diag diag = {0};
    command_texts c = {0}, n = {0}, tc = {0}, tn = {0};
    vix_command *cmd = NULL;
    char prov[512];
    int rc;
    if ((rc = command__read(commands, n_commands, &c, &diag)) < 0 ||
        (rc = command__read(names, n_names, &n, &diag)) < 0 ||
        (rc = command__read(test_commands, n_test_commands, &tc, &diag)) < 0 ||
        (rc = command__read(test_names, n_test_names, &tn, &diag)) < 0 ||
        (rc = vix_command_fit((const char *const *)c.v, c.n, (const char *const *)n.v, n.n, &fo,
                              &cmd, &diag)) < 0)
        goto out;
    snprintf(prov, sizeof prov, "erd command-fit: %zu commands, %zu names, alpha %g, "
             "min-count %zu, clip %g, keep %g", c.n, n.n, fo.alpha, fo.min_count, fo.clip,
             fo.keep);
    if ((rc = vix_command_save(cmd, out_path, prov, &diag)) < 0)
        goto out;
    printf("%s: %zu n-grams (%s)\n", out_path, vix_command_size(cmd), prov);
    command__report(cmd, &tc, &tn);
out:
    vix_command_destroy(cmd);
    command__free(&c);
    command__free(&n);
    command__free(&tc);
    command__free(&tn);
    return rc < 0 ? cmd_fail("command-fit", &diag, rc) : CMD_EXIT_OK;
}
