/* The entity table beside a built index: what a server maps is, entity by
 * entity and phrase by phrase, what it would read from the database; a
 * table made for another index or generation is stale, a cut-off or
 * mangled one corrupt, and either way the resolver falls back to the
 * database and answers the same. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "index/vix_resolve_internal.h"
#include "tests/unit/fixture.h"
#include "tests/unit/tap.h"
#include "tests/unit/tmpdir.h"

static char dir[200], db[256], table[1200], copy[1300];

static bool same_set(const vix__set *a, const vix__set *b, bool phrases)
{
    if (a->n_entities != b->n_entities)
        return false;
    for (size_t i = 0; i < a->n_entities; i++) {
        const vix__entity *x = &a->entities[i], *y = &b->entities[i];
        if (x->rowid != y->rowid || strcmp(x->ext_id, y->ext_id) != 0 ||
            strcmp(x->name, y->name) != 0 || x->n_phrases != (phrases ? y->n_phrases : 0))
            return false;
        for (size_t p = 0; p < x->n_phrases; p++)
            if (x->phrases[p].n != y->phrases[p].n ||
                x->phrases[p].derived != y->phrases[p].derived ||
                memcmp(x->phrases[p].tokens, y->phrases[p].tokens, x->phrases[p].n) != 0)
                return false;
        if (vix__set_find(a, x->rowid) != x)
            return false;
    }
    return true;
}

/* Overwrites 8 bytes of path at offset with v. */
static bool poke(const char *path, long offset, uint64_t v)
{
    FILE *f = fopen(path, "r+b");
    bool done = f && fseek(f, offset, SEEK_SET) == 0 && fwrite(&v, sizeof v, 1, f) == 1;
    return f && fclose(f) == 0 && done;
}

static int map_copy(const char *index_path, int64_t generation, vix__set *ret, erd_diag *d)
{
    return vix__table_map(copy, index_path, generation, true, ret, d);
}

/* Damaged copies of the table are refused with ERD_ECORRUPT. */
static void test_damage(const char *index_path, int64_t generation, const vix__set *good)
{
    erd_diag d = {0};
    vix__set s = {0};
    long size = 0;
    FILE *f = fopen(table, "rb");
    if (f && fseek(f, 0, SEEK_END) == 0)
        size = ftell(f);
    if (f)
        fclose(f);
    static const long cuts[] = {-1, 600, 3};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        long keep = cuts[i] < 0 ? size + cuts[i] : cuts[i];
        ok(tmpdir_copy(table, copy, (size_t)keep), "copy cut to %ld bytes", keep);
        is_int(map_copy(index_path, generation, &s, &d), ERD_ECORRUPT,
               "a table cut to %ld of %ld bytes refused: %s", keep, size, d.msg);
    }
    /* header: the entity count; the first entity's name offset (the
     * entities start at byte 640), an entity's rowid out of order */
    static const struct {
        long at;
        uint64_t v;
        const char *what;
    } pokes[] = {{544, 7, "entity count"},
                 {640 + 16, UINT64_C(1) << 40, "a name offset past the strings"},
                 {640 + 24, UINT64_C(1) << 40, "a phrase index past the phrases"},
                 {640 + 40, 0, "rowids out of order"}};
    for (size_t i = 0; i < sizeof pokes / sizeof *pokes; i++) {
        ok(tmpdir_copy(table, copy, SIZE_MAX) && poke(copy, pokes[i].at, pokes[i].v),
           "copy with %s", pokes[i].what);
        is_int(map_copy(index_path, generation, &s, &d), ERD_ECORRUPT, "%s refused: %s",
               pokes[i].what, d.msg);
    }
    ok(tmpdir_copy(table, copy, SIZE_MAX), "an intact copy");
    is_int(map_copy(index_path, generation, &s, &d), ERD_OK, "maps: %s", d.msg);
    ok(same_set(&s, good, true), "and holds the same entities");
    vix__set_free(&s);
}

static const char *top(const char *text)
{
    char rerank[1200];
    const char *src = getenv("ERD_TEST_SRCDIR");
    snprintf(rerank, sizeof rerank, "%s/phonetics/models/channel-v2.txt", src ? src : ".");
    return fixture_top(db, access(rerank, R_OK) == 0 ? rerank : "off", text, 1);
}

int main(void)
{
    erd_diag d = {0};
    if (!tmpdir_make(dir, sizeof dir, "table")) {
        printf("Bail out! mkdtemp\n");
        return 1;
    }
    snprintf(db, sizeof db, "%s/t.db", dir);
    is_int(fixture_import(db, "video", fixture_six, &d), ERD_OK, "imported: %s", d.msg);
    vix_build_result br;
    is_int(fixture_build(db, "video", &br, &d), ERD_OK, "built: %s", d.msg);
    is_int(vix_index_table_path(br.index_path, table, sizeof table), ERD_OK, "table path");
    snprintf(copy, sizeof copy, "%s.copy", table);
    ok(access(table, R_OK) == 0, "the build wrote %s", table);

    /* what the database gives, in the build's voice */
    vix_store *st = NULL;
    pho_g2p *g2p = NULL;
    vix__set want = {0}, got = {0};
    int64_t id = 0, gen = 0;
    is_int(vix_store_open(db, VIX_STORE_READONLY, &st, &d), ERD_OK, "store: %s", d.msg);
    is_int(pho_g2p_create("en-us+cmu", 0, &g2p, &d), ERD_OK, "g2p: %s", d.msg);
    if (!st || !g2p)
        return tap_done();
    vix_store_begin_read(st, NULL);
    vix_store_catalog_find(st, "video", &id, NULL);
    vix_store_catalog_generation(st, id, &gen, NULL);
    is_int(vix__set_load(st, id, g2p, true, &want, &d), ERD_OK, "loaded from the store: %s",
           d.msg);
    vix_store_rollback(st);
    ok(want.n_entities == 6 && want.n_phrases >= 6 && want.slot, "six entities, their phrases");

    is_int(vix__table_map(table, br.index_path, gen, true, &got, &d), ERD_OK, "mapped: %s",
           d.msg);
    ok(got.map && same_set(&got, &want, true), "every entity, name and phrase as the store's");
    vix__set_free(&got);
    is_int(vix__table_map(table, br.index_path, gen, false, &got, &d), ERD_OK,
           "mapped without phrases: %s", d.msg);
    ok(same_set(&got, &want, false), "the same entities, no phrases (rerank off)");
    vix__set_free(&got);

    is_int(vix__table_map(table, "other.faiss", gen, true, &got, &d), ERD_ENOTFOUND,
           "stale for another index: %s", d.msg);
    is_int(vix__table_map(table, br.index_path, gen + 1, true, &got, &d), ERD_ENOTFOUND,
           "stale for another generation: %s", d.msg);
    is_int(vix__table_map(copy, br.index_path, gen, true, &got, &d), ERD_ENOTFOUND,
           "missing: %s", d.msg);
    test_damage(br.index_path, gen, &want);

    /* the resolver answers the same from the table, from the database
     * when the table is stale, and when it is missing */
    char with[64], stale[64], without[64];
    snprintf(with, sizeof with, "%s", top("fairy's daze"));
    ok(tmpdir_copy(table, copy, SIZE_MAX) && poke(table, 24, (uint64_t)gen + 5),
       "the table's generation changed");
    snprintf(stale, sizeof stale, "%s", top("fairy's daze"));
    unlink(table);
    snprintf(without, sizeof without, "%s", top("fairy's daze"));
    ok(strncmp(with, "f ", 2) == 0, "found from the table (%s)", with);
    is_str(stale, with, "the same from the database past a stale table");
    is_str(without, with, "the same from the database without one");

    /* a rebuild writes a new table and removes the old index's */
    rename(copy, table);
    vix_build_result br2;
    is_int(fixture_build(db, "video", &br2, &d), ERD_OK, "rebuilt: %s", d.msg);
    ok(access(table, F_OK) != 0 && access(br.index_path, F_OK) != 0,
       "the old index and its table removed");
    char table2[1200];
    vix_index_table_path(br2.index_path, table2, sizeof table2);
    ok(access(table2, R_OK) == 0, "the new index has its table");

    vix__set_free(&want);
    pho_g2p_destroy(g2p);
    vix_store_close(st);
    tmpdir_remove(dir);
    return tap_done();
}
