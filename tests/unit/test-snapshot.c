/* Snapshots: what is written unpacks to a database and index that serve
 * the same answers; any damaged byte or a cut-off file is refused before
 * anything is unpacked. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "index/vix_build.h"
#include "index/vix_resolve.h"
#include "index/vix_snapshot.h"
#include "index/vix_store.h"
#include "tests/unit/fixture.h"
#include "tests/unit/tap.h"
#include "tests/unit/tmpdir.h"

static const char catalog[] =
    "{\"id\":\"a\",\"name\":\"The Hunger Games\"}\n"
    "{\"id\":\"b\",\"name\":\"Walrus Cathedral\"}\n"
    "{\"id\":\"c\",\"name\":\"Ferris Bueller's Day Off\"}\n";

static const char *top(const char *db, const char *text)
{
    return fixture_top(db, "off", text, 0);
}

/* Flips one byte of path at offset (from the end when negative). */
static void flip(const char *path, long offset)
{
    FILE *f = fopen(path, "r+b");
    if (!f)
        return;
    fseek(f, offset, offset < 0 ? SEEK_END : SEEK_SET);
    int c = fgetc(f);
    fseek(f, -1, SEEK_CUR);
    fputc(c ^ 0x20, f);
    fclose(f);
}

int main(void)
{
    char dir[200], db[256], snap[256], copy[256], out[256],
        got_db[512], tmp[600];
    erd_diag d = {0};
    if (!tmpdir_make(dir, sizeof dir, "snapshot")) {
        printf("Bail out! mkdtemp\n");
        return 1;
    }
    snprintf(db, sizeof db, "%s/p.db", dir);
    snprintf(snap, sizeof snap, "%s/s.erd", dir);
    snprintf(copy, sizeof copy, "%s/bad.erd", dir);
    snprintf(out, sizeof out, "%s/replica", dir);

    is_int(fixture_import(db, "video", catalog, &d), ERD_OK, "imported: %s", d.msg);
    vix_build_result built = {0};
    is_int(fixture_build(db, "video", &built, &d), ERD_OK, "built: %s", d.msg);

    vix_snapshot_info info = {0};
    is_int(vix_snapshot_write(db, snap, &info, &d), ERD_OK, "snapshot written: %s", d.msg);
    is_int((int)info.files, 3, "database, one index and its entity table");
    ok(access(snap, R_OK) == 0, "snapshot file there");
    snprintf(tmp, sizeof tmp, "%s.tmp", snap);
    ok(access(tmp, F_OK) != 0, "no temporary file left");

    vix_snapshot_info back = {0};
    is_int(vix_snapshot_unpack(snap, out, got_db, sizeof got_db, &back, &d), ERD_OK,
           "unpacked: %s", d.msg);
    ok(back.checksum == info.checksum, "same checksum read as written");
    is_str(top(got_db, "walrus cathedral"), "b", "the replica's copy answers");
    char table[1400];
    const char *index_name = strrchr(built.index_path, '/');
    snprintf(table, sizeof table, "%s/%s.ents", out, index_name ? index_name + 1 : "");
    ok(access(table, R_OK) == 0, "the replica has the index's entity table: %s", table);
    is_str(top(got_db, "hunger games"), top(db, "hunger games"), "as the original does");

    /* damage: a byte in the middle, in the checksum, a cut-off tail */
    static const long offsets[] = {9, 200, -12, -3};
    for (size_t i = 0; i < sizeof offsets / sizeof offsets[0]; i++) {
        if (!tmpdir_copy(snap, copy, SIZE_MAX))
            break;
        flip(copy, offsets[i]);
        char other[300];
        snprintf(other, sizeof other, "%s/damaged-%zu", dir, i);
        is_int(vix_snapshot_unpack(copy, other, got_db, sizeof got_db, NULL, &d), ERD_ECORRUPT,
               "byte %ld flipped: refused (%s)", offsets[i], d.msg);
        struct stat sb;
        ok(stat(other, &sb) != 0, "nothing unpacked");
    }
    if (tmpdir_copy(snap, copy, 5000))
        is_int(vix_snapshot_unpack(copy, out, got_db, sizeof got_db, NULL, &d), ERD_ECORRUPT,
               "truncated snapshot refused (%s)", d.msg);
    is_int(vix_snapshot_unpack("/nonexistent/s.erd", out, got_db, sizeof got_db, NULL, &d), ERD_EIO,
           "missing snapshot");

    ok(tmpdir_remove(dir), "temp dir removed");
    return tap_done();
}
