/* The command table: what it learns from a few texts, how it scores,
 * and its file (round trip, damage, bad input). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index/vix_command.h"
#include "tap.h"
#include "tmpdir.h"

static const char *const commands[] = {
    "turn off the lights", "turn on the lights in the kitchen", "turn the volume up",
    "set a timer for ten minutes", "set an alarm for seven", "what time is it",
    "what is the weather like today", "call mom", "turn off the fan", "set the thermostat",
};
static const char *const names[] = {
    "the lord of the rings", "a tale of two cities", "the kitchen god's wife",
    "return of the king", "the time machine", "lights out", "the secret garden",
    "a wrinkle in time", "the lost city", "rings of saturn", "the kings of summer",
    "city of glass",
};
#define N_OF(a) (sizeof(a) / sizeof(a)[0])

static double score(const vix_command *c, const char *s)
{
    return vix_command_score(c, s, strlen(s));
}

static vix_command *fit(void)
{
    vix_command_fit_opts o;
    vix_command_fit_opts_init(&o);
    o.min_count = 2;
    vix_command *c = NULL;
    erd_diag diag = {0};
    int rc = vix_command_fit(commands, N_OF(commands), names, N_OF(names), &o, &c, &diag);
    ok(rc == ERD_OK && c, "fits on two small sides (%s)", diag.msg);
    return c;
}

static void test_scores(const vix_command *c)
{
    ok(vix_command_ngram(c, "turn", 4) > 0 && vix_command_ngram(c, "turn off", 8) > 0,
       "a command's verb and verb pair are command-like");
    ok(vix_command_ngram(c, "of", 2) < 0, "a title's \"of\" is name-like");
    ok(vix_command_ngram(c, "zebra", 5) == 0 && vix_command_ngram(c, "call", 4) == 0,
       "unseen n-grams, and those in too few texts, are not held");
    ok(score(c, "turn off the kitchen lights") > 0 && score(c, "the lord of the kings") < 0,
       "an unseen command scores above 0, an unseen title below");
    ok(score(c, "zebra crossing") == 0, "a text of unknown words scores 0");
    char long_cmd[2048] = "";
    for (int i = 0; i < 150; i++)
        strcat(long_cmd, i ? " turn off" : "turn off");
    ok(score(c, long_cmd) == VIX_COMMAND_SCORE_MAX, "a score is bounded");
    ok(score(c, "turn") == vix_command_ngram(c, "turn", 4), "one word: its own log-odds");
    double pair = (vix_command_ngram(c, "turn", 4) + vix_command_ngram(c, "off", 3) +
                   vix_command_ngram(c, "turn off", 8)) / sqrt(3.0);
    ok(fabs(score(c, "turn off") - pair) < 1e-12, "two words: words and pair over sqrt(3)");
}

static void test_bad_fit(void)
{
    vix_command *c = NULL;
    erd_diag diag = {0};
    ok(vix_command_fit(commands, 0, names, N_OF(names), NULL, &c, &diag) == ERD_EINVAL && !c,
       "no commands: EINVAL, nothing made");
    vix_command_fit_opts o;
    vix_command_fit_opts_init(&o);
    o.alpha = 0;
    ok(vix_command_fit(commands, N_OF(commands), names, N_OF(names), &o, &c, &diag) ==
           ERD_EINVAL && !c,
       "alpha 0: EINVAL");
    vix_command_destroy(NULL);
}

static void test_file(const char *dir, vix_command *c)
{
    char path[512], bad[512];
    erd_diag diag = {0};
    snprintf(path, sizeof path, "%s/command.json", dir);
    snprintf(bad, sizeof bad, "%s/bad.json", dir);
    ok(vix_command_checksum(c) == 0, "no checksum before saving");
    ok(vix_command_save(c, path, "test", &diag) == ERD_OK && vix_command_checksum(c) != 0,
       "saves (%s)", diag.msg);
    vix_command *back = NULL;
    ok(vix_command_load(path, &back, &diag) == ERD_OK && back, "loads (%s)", diag.msg);
    if (back) {
        ok(vix_command_size(back) == vix_command_size(c) &&
               vix_command_checksum(back) == vix_command_checksum(c),
           "the same n-grams and checksum");
        ok(score(back, "turn off the kitchen lights") == score(c, "turn off the kitchen lights") &&
               score(back, "the lord of the kings") == score(c, "the lord of the kings"),
           "scores bit for bit as fitted");
    }
    vix_command_destroy(back);

    size_t len = 0;
    unsigned char *text = tmpdir_read(path, &len);
    char *at = text ? strstr((char *)text, "\"turn\": ") : NULL;
    if (at)
        at[8] = at[8] == '1' ? '2' : '1'; /* another log-odds, same syntax */
    back = NULL;
    ok(at && tmpdir_write(bad, text, len) &&
           vix_command_load(bad, &back, &diag) == ERD_ECORRUPT && !back,
       "an edited value fails the checksum (%s)", diag.msg);
    free(text);
    ok(tmpdir_write(bad, "{\"format\": \"erd-command\"", 24) &&
           vix_command_load(bad, &back, &diag) == ERD_ECORRUPT && !back,
       "truncated JSON: ECORRUPT");
    snprintf(bad, sizeof bad, "%s/none.json", dir);
    ok(vix_command_load(bad, &back, &diag) == ERD_ENOTFOUND && !back, "no file: ENOTFOUND");
}

int main(void)
{
    char dir[200];
    test_bad_fit();
    vix_command *c = fit();
    if (!c)
        return tap_done();
    test_scores(c);
    if (tmpdir_make(dir, sizeof dir, "command")) {
        test_file(dir, c);
        ok(tmpdir_remove(dir), "cleanup");
    } else {
        ok(0, "temp dir");
    }
    vix_command_destroy(c);
    return tap_done();
}
