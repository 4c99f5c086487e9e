/* server/cmd: the scoring rules erd eval and erd calibrate share
 * (cmd_score.c) and the one number parser of the commands' options. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/erd_error.h"
#include "server/cmd/cmd_cli.h"
#include "server/cmd/cmd_score.h"
#include "tap.h"

static void test_auroc(void)
{
    const double pos[] = {0.9, 0.8, 0.7}, neg[] = {0.1, 0.2, 0.3};
    ok(cmd_auroc(pos, 3, neg, 3) == 1.0, "auroc: every positive above every negative is 1");
    ok(cmd_auroc(neg, 3, pos, 3) == 0.0, "auroc: every positive below is 0");
    const double same[] = {0.5, 0.5};
    ok(cmd_auroc(same, 2, same, 2) == 0.5, "auroc: ties count a half");
    const double mixed_pos[] = {0.6, 0.2}, mixed_neg[] = {0.4};
    ok(cmd_auroc(mixed_pos, 2, mixed_neg, 1) == 0.5, "auroc: one of two positives above");
    ok(isnan(cmd_auroc(pos, 3, neg, 0)), "auroc: NAN without negatives");
    ok(isnan(cmd_auroc(pos, 0, neg, 3)), "auroc: NAN without positives");
}

static void test_keep_threshold(void)
{
    /* shares whose (1 - keep) * n is exact in binary floating point */
    const double s[] = {0.4, 0.1, 0.3, 0.2};
    ok(cmd_keep_threshold(s, 4, 1.0) == 0.1, "keep all: the lowest score");
    ok(cmd_keep_threshold(s, 4, 0.75) == 0.2, "keep 75 %%: three of four at or above");
    ok(cmd_keep_threshold(s, 4, 0.5) == 0.3, "keep half: two of four at or above");
    ok(cmd_keep_threshold(s, 4, 0.0) == 0.4, "keep none: the highest score");
    is_int((int)cmd_keep_threshold(s, 0, 0.9), 0, "no scores: 0");
}

static void test_reliability(void)
{
    const double p[] = {0.05, 0.95, 0.95, 0.55};
    const uint8_t y[] = {0, 1, 1, 0};
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    ok(out != NULL, "memstream");
    if (!out)
        return;
    cmd_reliability_print(out, "unit", p, y, 4);
    fclose(out);
    ok(buf && strstr(buf, "unit"), "the title is printed");
    ok(buf && strstr(buf, "ECE 0.1750"), "ECE: (0.05 + 2 x 0.05 + 0.55) / 4");
    ok(buf && strstr(buf, "Brier 0.0775"), "Brier: mean squared error 0.31 / 4");
    ok(buf && strstr(buf, "(4 results)"), "the count is printed");
    free(buf);
}

static void test_parse(void)
{
    unsigned long long u = 7;
    is_int(cmd_parse_uint("t", "limit", "42", 100, &u), ERD_OK, "42 parses");
    is_int((int)u, 42, "42 stored");
    u = 7;
    is_int(cmd_parse_uint("t", "limit", "abc", 100, &u), ERD_EINVAL, "abc is refused");
    is_int(cmd_parse_uint("t", "limit", "5x", 100, &u), ERD_EINVAL, "trailing junk is refused");
    is_int(cmd_parse_uint("t", "limit", "-1", 100, &u), ERD_EINVAL, "a negative is refused");
    is_int(cmd_parse_uint("t", "limit", "101", 100, &u), ERD_EINVAL, "above the bound is refused");
    is_int(cmd_parse_uint("t", "limit", "", 100, &u), ERD_EINVAL, "empty is refused");
    is_int((int)u, 7, "a refused value leaves the output alone");
    double d = 3;
    is_int(cmd_parse_real("t", "l2", "0.25", &d), ERD_OK, "0.25 parses");
    ok(d == 0.25, "0.25 stored");
    d = 3;
    is_int(cmd_parse_real("t", "l2", "x1", &d), ERD_EINVAL, "x1 is refused");
    is_int(cmd_parse_real("t", "l2", "inf", &d), ERD_EINVAL, "infinity is refused");
    ok(d == 3, "a refused number leaves the output alone");
}

int main(void)
{
    test_auroc();
    test_keep_threshold();
    test_reliability();
    test_parse();
    return tap_done();
}
