/* Fuzz target: the command table (index/vix_command.h).  The input is read
 * twice: as a table file (a table that loads must score any text within
 * bounds and survive a save and reload with the same checksum), and as
 * hypothesis text scored by a small fitted table (bounded, finite, the
 * same every time). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "index/vix_command.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *fuzz_dir(void)
{
    static char dir[64];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/erd-fuzz-command.XXXXXX");
        if (!mkdtemp(dir))
            abort();
    }
    return dir;
}

static const vix_command *fuzz_table(void)
{
    static vix_command *cmd;
    static const char *const commands[] = {"turn off the lights", "what time is it",
                                           "set a timer", "turn the volume up"};
    static const char *const names[] = {"the time machine", "lights out", "the lord of the rings",
                                        "a tale of two cities", "volume one"};
    if (!cmd) {
        vix_command_fit_opts o;
        vix_command_fit_opts_init(&o);
        o.min_count = 1;
        if (vix_command_fit(commands, 4, names, 5, &o, &cmd, NULL) < 0)
            abort();
    }
    return cmd;
}

static void check_score(const vix_command *cmd, const char *text, size_t len)
{
    double s = vix_command_score(cmd, text, len);
    if (!isfinite(s) || fabs(s) > VIX_COMMAND_SCORE_MAX || s != vix_command_score(cmd, text, len))
        abort();
}

static void as_file(const uint8_t *data, size_t size)
{
    char path[128], again[128];
    snprintf(path, sizeof path, "%s/in.json", fuzz_dir());
    snprintf(again, sizeof again, "%s/again.json", fuzz_dir());
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0)
        abort();
    vix_command *cmd = NULL, *back = NULL;
    if (vix_command_load(path, &cmd, NULL) < 0) {
        if (cmd)
            abort(); /* a failed load makes nothing */
        return;
    }
    check_score(cmd, "turn off the lights", 19);
    check_score(cmd, (const char *)data, size);
    if (vix_command_save(cmd, again, "fuzz", NULL) < 0 ||
        vix_command_load(again, &back, NULL) < 0 ||
        vix_command_size(back) != vix_command_size(cmd))
        abort();
    vix_command_destroy(back);
    vix_command_destroy(cmd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_score(fuzz_table(), (const char *)data, size);
    as_file(data, size);
    return 0;
}
