/* Fuzz target: the JSON-lines / CSV importer.  A failed import must change
 * nothing: the entity count before and after is compared. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "index/vix_store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static vix_store *store;
static char dir[64];

/* The scratch database goes when the process ends, so that replays leave
 * nothing behind in /tmp. */
static void fuzz_cleanup(void)
{
    static const char *const suffix[] = {"", "-wal", "-shm"};
    char path[128];
    vix_store_close(store);
    store = NULL;
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/fuzz.db%s", dir, suffix[i]);
        unlink(path);
    }
    rmdir(dir);
}

static vix_store *fuzz_store(void)
{
    if (!store) {
        snprintf(dir, sizeof dir, "/tmp/erd-fuzz-import.XXXXXX");
        if (!mkdtemp(dir))
            abort();
        char path[128];
        snprintf(path, sizeof path, "%s/fuzz.db", dir);
        if (vix_store_open(path, 0, &store, NULL) < 0)
            abort();
        atexit(fuzz_cleanup);
    }
    return store;
}

static int64_t count(vix_store *store)
{
    int64_t id, n = 0;
    if (vix_store_catalog_find(store, "fuzz", &id, NULL) == ERD_OK &&
        vix_store_entity_count(store, id, &n, NULL) < 0)
        abort();
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vix_store *store = fuzz_store();
    FILE *in = fmemopen((void *)data, size, "rb");
    if (!in)
        return 0; /* fmemopen refuses size 0 on some libcs */
    int64_t before = count(store);
    vix_import_result res;
    erd_diag diag = {0};
    int rc = vix_store_import(store, "fuzz", in, NULL, &res, &diag);
    fclose(in);
    int64_t after = count(store);
    if (rc < 0 && after != before)
        abort();
    if (rc == ERD_OK && after < before)
        abort();
    return 0;
}
