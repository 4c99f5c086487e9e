/* Phonemes made by forked workers (vix_prefetch) must be exactly those a
 * build makes on its own: the index built after them is the same file,
 * byte for byte, and the build's own pass asks espeak-ng for nothing. */
#include "index/vix_build.h"
#include "index/vix_prefetch.h"
#include "index/vix_store.h"

#include "fixture.h"
#include "tap.h"
#include "tmpdir.h"

#include <string.h>

static int64_t catalog_of(const char *db)
{
    vix_store *st = NULL;
    int64_t id = -1;
    if (vix_store_open(db, 0, &st, NULL) == ERD_OK)
        vix_store_catalog_find(st, "video", &id, NULL);
    vix_store_close(st);
    return id;
}

static bool same_file(const char *a, const char *b)
{
    size_t nx = 0, ny = 0;
    unsigned char *x = tmpdir_read(a, &nx), *y = tmpdir_read(b, &ny);
    bool same = x && y && nx == ny && memcmp(x, y, nx) == 0;
    free(x);
    free(y);
    return same;
}

static char dir[200], with[300], without[300];

int main(void)
{
    erd_diag diag = {0};
    ok(tmpdir_make(dir, sizeof dir, "prefetch"), "temp dir %s", dir);
    snprintf(with, sizeof with, "%s/with.db", dir);
    snprintf(without, sizeof without, "%s/without.db", dir);
    is_int(fixture_import(with, "video", fixture_six, &diag), ERD_OK, "imported: %s", diag.msg);
    is_int(fixture_import(without, "video", fixture_six, &diag), ERD_OK, "imported twice");

    size_t clean = 0;
    vix_prefetch_opts po = {.db_path = with, .catalog_id = catalog_of(with), .voice = "en-us",
                            .procs = 3};
    is_int(vix_prefetch_phonemes(&po, &clean, &diag), ERD_OK, "three workers ran: %s", diag.msg);
    is_int((int)clean, 3, "all three finished cleanly");
    po.procs = 1;
    is_int(vix_prefetch_phonemes(&po, &clean, &diag), ERD_EINVAL, "one worker refused: %s",
           diag.msg);

    vix_build_opts bo = {.db_path = with, .catalog = "video"};
    vix_build_result a, b;
    is_int(vix_build(&bo, &a, &diag), ERD_OK, "built after the workers: %s", diag.msg);
    is_int((int)a.g2p_calls, 0, "every phoneme was already cached");
    bo.db_path = without;
    is_int(vix_build(&bo, &b, &diag), ERD_OK, "built alone: %s", diag.msg);
    ok(b.g2p_calls > 0, "the lone build spoke its %llu phrases itself",
       (unsigned long long)b.g2p_calls);
    ok(same_file(a.index_path, b.index_path), "the same index, byte for byte");

    /* a store that is not there: the workers fail, nothing is made */
    po = (vix_prefetch_opts){.db_path = "/nonexistent/x.db", .catalog_id = 1, .voice = "en-us",
                             .procs = 2};
    is_int(vix_prefetch_phonemes(&po, &clean, &diag), ERD_OK, "workers started");
    is_int((int)clean, 0, "and none finished cleanly");

    ok(tmpdir_remove(dir), "temp dir removed");
    return tap_done();
}
