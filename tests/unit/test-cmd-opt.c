/* server/cmd/cmd_opt.c: the one option table every command parses, checks
 * and documents itself with. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto/erd_error.h"
#include "server/cmd/cmd_cli.h"
#include "server/cmd/cmd_opt.h"
#include "tap.h"

#define ARGC(a) ((int)(sizeof(a) / sizeof(a)[0]) - 1)

typedef struct opts_under_test {
    const char *db, *name, *items[3];
    unsigned count, k;
    unsigned long long seed;
    long offset;
    double rate, min_score;
    int quiet;
    size_t n_items;
} opts_under_test;

static int parse(opts_under_test *t, int argc, char **argv, int *ret_exit)
{
    const cmd_opt opts[] = {
        CMD_CFG("db", 'd', "FILE", &t->db, "db", "catalog store"),
        CMD_STR_DEF("name", 0, "NAME", &t->name, "a name"),
        CMD_UINT("count", 'n', "N", &t->count, 2, 10, "how many"),
        CMD_UINT_CFG("k", 'k', "N", &t->k, 1, 1000, "default_k", "results"),
        CMD_ULL("seed", 0, "N", &t->seed, 0, 1e18, "random seed"),
        CMD_LONG("offset", 0, "N", &t->offset, 0, 100, "an offset"),
        CMD_REAL("rate", 0, "X", &t->rate, 0, 1, "a rate"),
        CMD_REAL_CFG("min-score", 0, "X", &t->min_score, 0, 1, "no_match_threshold", "floor"),
        CMD_FLAG("quiet", 'q', &t->quiet, "no progress"),
        CMD_LIST("item", 0, "A,B", t->items, &t->n_items, "items"),
    };
    const cmd_spec spec = CMD_SPEC_FULL("probe", "[OPTIONS] [ARG...]", "A command for this test.", opts,
                                        NULL, 0, -1);
    return cmd_opt_parse(&spec, argc, argv, ret_exit);
}

static opts_under_test fresh(void)
{
    return (opts_under_test){.name = "first", .count = 3, .seed = 7, .offset = 5, .rate = 0.5,
                             .min_score = -1};
}

static void test_values(void)
{
    opts_under_test t = fresh();
    char a0[] = "probe", a1[] = "-d", a2[] = "x.db", a3[] = "--count=9", a4[] = "--rate",
         a5[] = "0.25", a6[] = "-q", a7[] = "--item", a8[] = "a,b", a9[] = "--item", a10[] = "c",
         a11[] = "-k", a12[] = "12", a13[] = "rest";
    char *argv[] = {a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, NULL};
    int ex = -5;
    is_int(parse(&t, ARGC(argv), argv, &ex), 1, "a good command line runs");
    is_str(t.db, "x.db", "short string option");
    is_int(t.count, 9, "--count=9");
    ok(t.rate == 0.25, "--rate 0.25");
    is_int(t.quiet, 1, "flag");
    is_int(t.k, 12, "-k 12");
    is_int(t.n_items, 3, "a repeated list option adds to the list");
    is_str(t.items[2], "c", "the last item");
    is_int(t.seed, 7, "an option not given keeps its default");
    ok(t.min_score == -1, "a config-backed option not given stays unset");
    is_int(optind, ARGC(argv) - 1, "optind at the first operand");
    is_int(ex, -5, "no exit code when the command should run");
}

/* Each bad value is refused with the usage exit code. */
static void test_refused(void)
{
    static const char *const bad[][2] = {
        {"--count", "1"},     {"--count", "11"},  {"--count", "abc"}, {"--count", "5x"},
        {"--count", "-1"},    {"--count", ""},    {"--rate", "1.5"},  {"--rate", "nan"},
        {"--rate", "inf"},    {"--rate", "x"},    {"-k", "0"},        {"-k", "1001"},
        {"--offset", "101"},  {"--item", ""},     {"--item", "a,b,c,d"}, {"--bogus", "1"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        opts_under_test t = fresh();
        char a0[] = "probe", a1[32], a2[32];
        snprintf(a1, sizeof a1, "%s", bad[i][0]);
        snprintf(a2, sizeof a2, "%s", bad[i][1]);
        char *argv[] = {a0, a1, a2, NULL};
        int ex = -5;
        fflush(stdout);
        is_int(parse(&t, ARGC(argv), argv, &ex), 0, "%s \"%s\" stops the command", bad[i][0],
               bad[i][1]);
        is_int(ex, CMD_EXIT_USAGE, "%s \"%s\" exits with the usage code", bad[i][0], bad[i][1]);
    }
}

/* The table's own demands: a required option, and one or two operands. */
static int parse_strict(int argc, char **argv, int *ret_exit)
{
    const char *out = NULL;
    int quiet = 0;
    const cmd_opt opts[] = {
        CMD_STR("out", 'o', "FILE", &out, "file to write"),
        CMD_FLAG("quiet", 'q', &quiet, "no progress"),
    };
    const cmd_spec spec = CMD_SPEC_FULL("probe", "--out FILE A [B]", "", opts, "out", 1, 2);
    return cmd_opt_parse(&spec, argc, argv, ret_exit);
}

static void test_completeness(void)
{
    static const char *const lines[][5] = {
        {"--out", "f", "a", NULL},      {"--out", "f", "a", "b", NULL},
        {"a", "--out", "f", NULL},      {"-q", "a", "b", NULL},
        {"--out", "f", NULL},           {"--out", "f", "a", "b", "c"},
    };
    static const int runs[] = {1, 1, 1, 0, 0, 0};
    static const char *const what[] = {"one operand", "two operands", "operand before the option",
                                       "the required option missing", "no operand",
                                       "a third operand"};
    for (size_t i = 0; i < sizeof runs / sizeof *runs; i++) {
        char buf[6][16], *argv[7];
        int argc = 0;
        snprintf(buf[0], sizeof buf[0], "probe");
        argv[argc++] = buf[0];
        for (size_t j = 0; j < 5 && lines[i][j]; j++) {
            snprintf(buf[argc], sizeof buf[argc], "%s", lines[i][j]);
            argv[argc] = buf[argc];
            argc++;
        }
        argv[argc] = NULL;
        int ex = -5;
        is_int(parse_strict(argc, argv, &ex), runs[i], "%s: %s", what[i],
               runs[i] ? "runs" : "refused");
        is_int(ex, runs[i] ? -5 : CMD_EXIT_USAGE, "%s: exit code", what[i]);
    }
}

static char *help_text(const cmd_spec *spec)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return NULL;
    cmd_opt_help(spec, f);
    fclose(f);
    return text;
}

static void test_help(void)
{
    opts_under_test t = fresh();
    t.name = "second"; /* the help prints the value at that moment */
    const cmd_opt opts[] = {
        CMD_CFG("db", 'd', "FILE", &t.db, "db", "catalog store"),
        CMD_STR_DEF("name", 0, "NAME", &t.name, "a name"),
        CMD_UINT("count", 'n', "N", &t.count, 2, 10, "how many"),
        CMD_UINT_CFG("k", 'k', "N", &t.k, 1, 1000, "default_k", "results"),
        CMD_STR("file", 0, "FILE", &t.db, "no default for a file"),
    };
    const cmd_spec spec = CMD_SPEC("probe", "[OPTIONS]", "About it.", opts);
    char *h = help_text(&spec);
    ok(h && strstr(h, "usage: erd probe [OPTIONS]"), "help starts with the usage");
    ok(h && strstr(h, "(default from config: erd.db)"), "a flag over a key prints its default");
    ok(h && strstr(h, "(default from config: 5)"), "a numeric flag over a key too");
    ok(h && strstr(h, "(default second)"), "a string prints its current value");
    ok(h && strstr(h, "(default 3, 2..10)"), "a number prints its value and bounds");
    ok(h && !strstr(h, "no default for a file (default"), "a plain string prints no default");
    ok(h && strstr(h, "-h, --help"), "help lists itself");
    free(h);

    char a0[] = "probe", a1[] = "--help";
    char *argv[] = {a0, a1, NULL};
    int ex = -5;
    FILE *saved = stdout;
    stdout = fopen("/dev/null", "w");
    int run = cmd_opt_parse(&spec, ARGC(argv), argv, &ex);
    fclose(stdout);
    stdout = saved;
    is_int(run, 0, "--help does not run the command");
    is_int(ex, CMD_EXIT_OK, "--help exits 0");
}

static void test_split_list(void)
{
    const char *items[2];
    size_t n = 0;
    char one[] = "a,b", two[] = "c", none[] = ",,";
    is_int(cmd_split_list(one, items, 2, &n), ERD_OK, "two items fit");
    is_int(n, 2, "count grows");
    is_int(cmd_split_list(two, items, 2, &n), ERD_ETOOLONG, "a third is too many");
    is_int(n, 2, "count unchanged on failure");
    size_t m = 0;
    is_int(cmd_split_list(none, items, 2, &m), ERD_EEMPTY, "a list of none");
}

int main(void)
{
    test_values();
    test_refused();
    test_completeness();
    test_help();
    test_split_list();
    return tap_done();
}
