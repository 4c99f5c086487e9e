/* Fuzz target: the configuration file parser.  A rejected file must leave
 * the configuration exactly as it was. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/cfg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[64];
    if (!path[0]) {
        snprintf(path, sizeof path, "/tmp/erd-fuzz-config.%d", (int)getpid());
    }
    FILE *f = fopen(path, "wb");
    if (!f)
        abort();
    if (size && fwrite(data, 1, size, f) != size)
        abort();
    fclose(f);

    cfg_config cfg, before;
    erd_diag diag = {0};
    cfg_defaults(&cfg);
    before = cfg;
    int rc = cfg_load_file(&cfg, path, &diag);
    if (rc < 0 && memcmp(&cfg, &before, sizeof cfg) != 0)
        abort();
    if (rc == ERD_OK && cfg.default_k > cfg.max_k)
        abort();
    unlink(path);
    return 0;
}
