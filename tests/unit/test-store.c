/* Catalog store: schema, catalogs, import (JSON lines, CSV), phoneme cache,
 * index metadata. */
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "index/vix_phrase.h"
#include "index/vix_store.h"
#include "tap.h"
#include "tmpdir.h"

static char tmpdir[64];

static void path_in_tmp(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", tmpdir, name);
}

static int import_str(vix_store *s, const char *catalog, const char *text,
                      const vix_import_opts *opts, vix_import_result *res, erd_diag *diag)
{
    FILE *f = fmemopen((void *)text, strlen(text), "r");
    if (!f)
        return -1000;
    int err = vix_store_import(s, catalog, f, opts, res, diag);
    fclose(f);
    return err;
}

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* ---- entity capture ---- */

typedef struct got_entity {
    int64_t rowid;
    char ext_id[64], name[2048], aliases[512], attrs[512];
    int calls;
} got_entity;

static int capture(void *user, const vix_entity *e)
{
    got_entity *g = user;
    g->rowid = e->rowid;
    snprintf(g->ext_id, sizeof g->ext_id, "%s", e->ext_id);
    snprintf(g->name, sizeof g->name, "%s", e->name);
    snprintf(g->aliases, sizeof g->aliases, "%s", e->aliases_json);
    snprintf(g->attrs, sizeof g->attrs, "%s", e->attrs_json);
    g->calls++;
    return 0;
}

static got_entity get(vix_store *s, int64_t cat, const char *ext_id, int *ret_err)
{
    got_entity g = {0};
    *ret_err = vix_store_entity_get(s, cat, ext_id, capture, &g, NULL);
    return g;
}

static int64_t count_of(vix_store *s, int64_t cat)
{
    int64_t n = -1;
    if (vix_store_entity_count(s, cat, &n, NULL))
        return -1;
    return n;
}

static int64_t gen_of(vix_store *s, int64_t cat)
{
    int64_t g = -1;
    if (vix_store_catalog_generation(s, cat, &g, NULL))
        return -1;
    return g;
}

/* ---- sqlite peeks ---- */

static long long pragma_int(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    long long v = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static void sql_exec(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) == SQLITE_OK)
        sqlite3_exec(db, sql, NULL, NULL, NULL);
    sqlite3_close(db);
}

static void test_open(void)
{
    char path[128], other[128];
    erd_diag d = {0};
    vix_store *s = NULL;

    path_in_tmp(path, sizeof path, "open.db");
    is_int(vix_store_open(path, VIX_STORE_READONLY, &s, &d), ERD_EIO, "readonly open of a missing file");
    ok(s == NULL, "no handle on failure");
    ok(strstr(d.msg, path) != NULL, "message names the path: %s", d.msg);
    ok(access(path, F_OK) != 0, "readonly open did not create the file");

    is_int(vix_store_open(path, 0, &s, &d), ERD_OK, "open creates the store");
    ok(s != NULL, "handle returned");
    is_str(vix_store_path(s), path, "path kept");
    int64_t id = 0;
    is_int(vix_store_catalog_create(s, "books", &id, &d), ERD_OK, "create catalog");
    vix_store_close(s);
    s = NULL;

    is_int(pragma_int(path, "PRAGMA user_version"), 3, "schema version 3");
    is_int(pragma_int(path, "SELECT count(*) FROM sqlite_schema WHERE type = 'table'"), 5,
           "five tables");
    is_int(pragma_int(path, "SELECT count(*) FROM pragma_journal_mode WHERE journal_mode = 'wal'"),
           1, "WAL mode");

    is_int(vix_store_open(path, 0, &s, &d), ERD_OK, "reopen");
    int64_t id2 = 0;
    is_int(vix_store_catalog_find(s, "books", &id2, &d), ERD_OK, "catalog survives reopen");
    is_int(id2, id, "same id");
    vix_store_close(s);
    s = NULL;

    is_int(vix_store_open(path, VIX_STORE_READONLY, &s, &d), ERD_OK, "readonly open of existing");
    is_int(vix_store_catalog_find(s, "books", &id2, &d), ERD_OK, "readonly can read");
    is_int(import_str(s, "books", "{\"id\":\"1\",\"name\":\"x\"}\n", NULL, NULL, &d), ERD_EINVAL,
           "readonly store refuses import");
    ok(vix_store_catalog_create(s, "other", NULL, &d) < 0, "readonly store refuses create");
    vix_store_close(s);
    s = NULL;

    /* a whole-catalog pass reads through a map: the same rows */
    is_int(vix_store_open(path, VIX_STORE_SCAN, &s, &d), ERD_OK, "open for a scan");
    is_int(vix_store_catalog_find(s, "books", &id2, &d), ERD_OK, "a scan reads the catalog");
    is_int(id2, id, "the same catalog through the map");
    vix_store_close(s);
    s = NULL;
    is_int(vix_store_open(path, 1u << 7, &s, &d), ERD_EINVAL, "unknown flag refused: %s", d.msg);
    ok(s == NULL, "nothing opened with an unknown flag");

    /* a newer erd's file */
    sql_exec(path, "PRAGMA user_version = 7");
    is_int(vix_store_open(path, 0, &s, &d), ERD_EMISMATCH, "newer schema refused");
    ok(strstr(d.msg, "7") != NULL, "message gives the version: %s", d.msg);
    is_int(vix_store_open(path, VIX_STORE_READONLY, &s, &d), ERD_EMISMATCH, "also read-only");

    /* someone else's database */
    path_in_tmp(other, sizeof other, "foreign.db");
    sql_exec(other, "CREATE TABLE t(x)");
    is_int(vix_store_open(other, 0, &s, &d), ERD_EMISMATCH, "foreign database refused");
    is_int(pragma_int(other, "SELECT count(*) FROM sqlite_schema"), 1, "foreign database untouched");

    /* not a database at all */
    path_in_tmp(other, sizeof other, "junk.db");
    FILE *f = fopen(other, "w");
    fputs("this is certainly not an SQLite database, just some text that is long enough\n", f);
    for (int i = 0; i < 100; i++)
        fputs("0123456789abcdef0123456789abcdef0123456789abcdef\n", f);
    fclose(f);
    is_int(vix_store_open(other, 0, &s, &d), ERD_ECORRUPT, "non-database file: %s", d.msg);

    vix_store_close(NULL);
    is_int(vix_store_open("", 0, &s, &d), ERD_EINVAL, "empty path");
}

static void test_names(vix_store *s)
{
    char n64[65], n65[66];
    memset(n64, 'a', 64);
    n64[64] = '\0';
    memset(n65, 'a', 65);
    n65[65] = '\0';

    ok(vix_catalog_name_valid("books"), "books");
    ok(vix_catalog_name_valid("a"), "one letter");
    ok(vix_catalog_name_valid("9x.y-z_1"), "digits and punctuation");
    ok(vix_catalog_name_valid(n64), "64 bytes");
    ok(!vix_catalog_name_valid(n65), "65 bytes");
    ok(!vix_catalog_name_valid(""), "empty");
    ok(!vix_catalog_name_valid(NULL), "NULL");
    ok(!vix_catalog_name_valid("Books"), "upper case");
    ok(!vix_catalog_name_valid("_x"), "leading underscore");
    ok(!vix_catalog_name_valid(".x"), "leading dot");
    ok(!vix_catalog_name_valid("-x"), "leading dash");
    ok(!vix_catalog_name_valid("a b"), "space");
    ok(!vix_catalog_name_valid("a/b"), "slash");
    ok(!vix_catalog_name_valid("caf\xc3\xa9"), "non-ASCII");

    erd_diag d = {0};
    int64_t id = 77;
    is_int(vix_store_catalog_create(s, "Bad Name", &id, &d), ERD_EINVAL, "create refuses bad name");
    is_int(id, 77, "ret_id untouched on failure");
    is_int(vix_store_catalog_find(s, "missing", &id, &d), ERD_ENOCATALOG, "find unknown");
    int64_t a = 0, b = 0;
    is_int(vix_store_catalog_create(s, "names", &a, &d), ERD_OK, "create");
    is_int(vix_store_catalog_create(s, "names", &b, &d), ERD_OK, "create again");
    is_int(a, b, "existing catalog returned as is");
    is_int(import_str(s, "No!", "{\"id\":1,\"name\":\"x\"}", NULL, NULL, &d), ERD_EINVAL,
           "import refuses bad catalog name");
}

static void test_jsonl(vix_store *s)
{
    erd_diag d = {0};
    vix_import_result r = {0};
    int err;
    const char *text =
        "\xEF\xBB\xBF{\"id\": \"b1\", \"name\": \"The Hunger Games\", \"aliases\": [\"Hunger Games\", "
        "\"THG\"], \"attrs\": {\"year\": 2008, \"authors\": [\"Suzanne Collins\"]}}\n"
        "\n"
        "   \n"
        "{\"id\": 42, \"name\": \"Dune\"}\r\n"
        "{\"id\": \"b3\", \"name\": \"Caf\xc3\xa9 Society\", \"aliases\": null, \"attrs\": null}";

    is_int(import_str(s, "books", text, NULL, &r, &d), ERD_OK, "import JSON lines: %s", d.msg);
    is_int(r.lines, 3, "three records (blank lines skipped)");
    is_int(r.inserted, 3, "three inserted");
    is_int(r.updated, 0, "none updated");

    int64_t cat = 0;
    is_int(vix_store_catalog_find(s, "books", &cat, &d), ERD_OK, "catalog created by import");
    is_int(count_of(s, cat), 3, "three entities");
    is_int(gen_of(s, cat), 1, "generation 1 after the first import");

    got_entity g = get(s, cat, "b1", &err);
    is_int(err, ERD_OK, "get b1");
    is_str(g.name, "The Hunger Games", "name");
    is_str(g.aliases, "[\"Hunger Games\",\"THG\"]", "aliases compact");
    is_str(g.attrs, "{\"year\":2008,\"authors\":[\"Suzanne Collins\"]}", "attrs compact, in order");
    int64_t b1_rowid = g.rowid;
    ok(b1_rowid > 0, "positive rowid");

    g = get(s, cat, "42", &err);
    is_int(err, ERD_OK, "integer id stored as decimal string");
    is_str(g.name, "Dune", "name after CRLF line");
    is_str(g.aliases, "[]", "default aliases");
    is_str(g.attrs, "{}", "default attrs");

    g = get(s, cat, "b3", &err);
    is_str(g.name, "Caf\xc3\xa9 Society", "UTF-8 name");
    is_str(g.aliases, "[]", "null aliases is none");

    get(s, cat, "nope", &err);
    is_int(err, ERD_ENOTFOUND, "unknown id");

    /* re-import: update b1, add b4, and b4 again in the same file */
    const char *again = "{\"id\": \"b1\", \"name\": \"The Hunger Games (new)\", \"aliases\": []}\n"
                        "{\"id\": \"b4\", \"name\": \"Emma\"}\n"
                        "{\"id\": \"b4\", \"name\": \"Emma (2)\"}\n";
    is_int(import_str(s, "books", again, NULL, &r, &d), ERD_OK, "re-import");
    is_int(r.lines, 3, "three records");
    is_int(r.inserted, 1, "one inserted");
    is_int(r.updated, 2, "two updated (b1, and b4 seen again)");
    is_int(count_of(s, cat), 4, "four entities");
    is_int(gen_of(s, cat), 2, "generation bumped once");
    g = get(s, cat, "b1", &err);
    is_int(g.rowid, b1_rowid, "rowid kept across re-import");
    is_str(g.name, "The Hunger Games (new)", "name replaced");
    is_str(g.attrs, "{}", "attrs replaced too");
    g = get(s, cat, "b4", &err);
    is_str(g.name, "Emma (2)", "last occurrence wins");

    /* empty input changes nothing */
    is_int(import_str(s, "books", "\n\n", NULL, &r, &d), ERD_OK, "blank import");
    is_int(r.lines, 0, "no records");
    is_int(gen_of(s, cat), 2, "generation unchanged by an empty import");
}

typedef struct bad_case {
    const char *text;
    const char *prefix; /* expected start of the message */
    const char *what;   /* expected somewhere in it */
} bad_case;

static void test_bad_records(vix_store *s)
{
    erd_diag d = {0};
    vix_import_result r = {.lines = 99};
    int64_t cat = 0;
    const char *good = "{\"id\":\"g1\",\"name\":\"good one\"}\n{\"id\":\"g2\",\"name\":\"good two\"}\n";

    is_int(vix_store_catalog_find(s, "books", &cat, &d), ERD_OK, "books exists");
    int64_t count0 = count_of(s, cat), gen0 = gen_of(s, cat);

    static const bad_case cases[] = {
        {"{\"id\":\"x\",\"name\":\"y\"\n", "line 3:", "invalid JSON"},
        {"{\"id\":\"x\"}\n", "line 3:", "missing \"name\""},
        {"{\"name\":\"x\"}\n", "line 3:", "missing \"id\""},
        {"{\"id\":\"x\",\"name\":5}\n", "line 3:", "\"name\" is an integer"},
        {"{\"id\":\"x\",\"name\":\"\"}\n", "line 3:", "empty"},
        {"{\"id\":\"x\",\"name\":\"   \"}\n", "line 3:", "empty"},
        {"{\"id\":1.5,\"name\":\"x\"}\n", "line 3:", "\"id\" is a number"},
        {"{\"id\":\"\",\"name\":\"x\"}\n", "line 3:", "empty"},
        {"{\"id\":\"x\",\"name\":\"y\",\"aliases\":\"z\"}\n", "line 3:", "\"aliases\" is a string"},
        {"{\"id\":\"x\",\"name\":\"y\",\"aliases\":[\"a\",3]}\n", "line 3:", "aliases[1]"},
        {"{\"id\":\"x\",\"name\":\"y\",\"attrs\":[]}\n", "line 3:", "\"attrs\" is an array"},
        {"{\"id\":\"x\",\"name\":\"y\",\"alias\":[]}\n", "line 3:", "unknown field \"alias\""},
        {"[1,2]\n", "line 3:", "not an object"},
        {"{\"id\":\"x\",\"name\":\"y\",\"name\":\"z\"}\n", "line 3:", "duplicate"},
        {"{\"id\":\"x\",\"name\":\"\xff\"}\n", "line 3:", "invalid JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[512];
        /* the bad record is line 3: two good lines before it, one after */
        snprintf(text, sizeof text, "%s%s{\"id\":\"g3\",\"name\":\"after\"}\n", good, cases[i].text);
        memset(&d, 0, sizeof d);
        is_int(import_str(s, "books", text, NULL, &r, &d), ERD_EPARSE, "bad case %zu: EPARSE", i);
        ok(starts_with(d.msg, cases[i].prefix) && strstr(d.msg, cases[i].what),
           "bad case %zu message: %s", i, d.msg);
    }
    is_int(r.lines, 99, "result untouched on failure");
    is_int(count_of(s, cat), count0, "no entity added by failed imports");
    is_int(gen_of(s, cat), gen0, "generation unchanged by failed imports");
    int err;
    get(s, cat, "g1", &err);
    is_int(err, ERD_ENOTFOUND, "records before the bad line rolled back");

    /* a long name, and a line over the 1 MiB bound */
    size_t big = (1u << 20) + 100;
    char *text = malloc(big + 200);
    int n = snprintf(text, 200, "%s{\"id\":\"x\",\"name\":\"", good);
    memset(text + n, 'a', 1001);
    strcpy(text + n + 1001, "\"}\n");
    is_int(import_str(s, "books", text, NULL, NULL, &d), ERD_EPARSE, "1001-byte name");
    ok(starts_with(d.msg, "line 3:") && strstr(d.msg, "limit"), "%s", d.msg);
    memset(text + n, 'a', big);
    strcpy(text + n + big, "\"}\n");
    is_int(import_str(s, "books", text, NULL, NULL, &d), ERD_EPARSE, "over-long line");
    ok(starts_with(d.msg, "line 3:") && strstr(d.msg, "longer than"), "%s", d.msg);
    free(text);

    /* a failed import into a new catalog does not create it */
    is_int(import_str(s, "fresh", "{\"id\":\"a\",\"name\":\"b\"}\n{\"id\":\"c\"}\n", NULL, NULL, &d),
           ERD_EPARSE, "bad import into a new catalog");
    ok(starts_with(d.msg, "line 2:"), "%s", d.msg);
    int64_t id;
    is_int(vix_store_catalog_find(s, "fresh", &id, &d), ERD_ENOCATALOG, "catalog not created");
    is_int(count_of(s, cat), count0, "counts unchanged");
}

static void test_csv(vix_store *s)
{
    erd_diag d = {0};
    vix_import_result r = {0};
    int err;
    const char *text = "id,name,aliases,author,year,notes\r\n"
                       "m1,\"Crouching Tiger, Hidden Dragon\",CTHD| Wo hu cang long |,Ang Lee,2000,\r\n"
                       "m2,\"The \"\"Best\"\" Film\",,\"two\nlines\",1999,\"x, y\"\r\n"
                       "\r\n"
                       "m3,Plain,,,,\n"
                       "m4,Last,a|b,,2024,no newline at end";
    vix_import_opts o = {.format = VIX_FORMAT_CSV};
    is_int(import_str(s, "films", text, &o, &r, &d), ERD_OK, "CSV import: %s", d.msg);
    is_int(r.lines, 4, "four records");
    is_int(r.inserted, 4, "four inserted");
    int64_t cat;
    vix_store_catalog_find(s, "films", &cat, &d);
    got_entity g = get(s, cat, "m1", &err);
    is_str(g.name, "Crouching Tiger, Hidden Dragon", "embedded comma");
    is_str(g.aliases, "[\"CTHD\",\"Wo hu cang long\"]", "aliases split and trimmed");
    is_str(g.attrs, "{\"author\":\"Ang Lee\",\"year\":\"2000\"}", "extra columns as attrs");
    g = get(s, cat, "m2", &err);
    is_str(g.name, "The \"Best\" Film", "doubled quotes");
    is_str(g.attrs, "{\"author\":\"two\\nlines\",\"year\":\"1999\",\"notes\":\"x, y\"}",
           "embedded newline kept");
    is_str(g.aliases, "[]", "empty aliases");
    g = get(s, cat, "m3", &err);
    is_str(g.attrs, "{}", "empty columns left out");
    g = get(s, cat, "m4", &err);
    is_str(g.aliases, "[\"a\",\"b\"]", "last record without newline");

    /* line numbers count physical lines, including those inside quotes */
    const char *bad = "id,name\n"
                      "1,\"multi\nline\"\n"
                      "2,ok\n"
                      "3,too,many\n";
    is_int(import_str(s, "films", bad, &o, NULL, &d), ERD_EPARSE, "field count mismatch");
    ok(starts_with(d.msg, "line 5:"), "%s", d.msg);
    is_int(count_of(s, cat), 4, "nothing changed");

    is_int(import_str(s, "films", "id,title\n1,x\n", &o, NULL, &d), ERD_EPARSE, "no name column");
    ok(starts_with(d.msg, "line 1:") && strstr(d.msg, "\"name\""), "%s", d.msg);
    is_int(import_str(s, "films", "ident,name\n1,x\n", &o, NULL, &d), ERD_EPARSE, "no id column");
    ok(strstr(d.msg, "\"id\"") != NULL, "%s", d.msg);
    is_int(import_str(s, "films", "id,name\n1,\"open\n2,x\n", &o, NULL, &d), ERD_EPARSE,
           "unterminated quote");
    ok(starts_with(d.msg, "line 2:") && strstr(d.msg, "never closed") != NULL, "%s", d.msg);
    is_int(import_str(s, "films", "id,name\n1,a\"b\n", &o, NULL, &d), ERD_EPARSE, "stray quote");
    ok(starts_with(d.msg, "line 2:"), "%s", d.msg);
    is_int(import_str(s, "films", "id,name\n1,\"a\"b\n", &o, NULL, &d), ERD_EPARSE,
           "text after closing quote");
    is_int(import_str(s, "films", "id,name\n1,\n", &o, NULL, &d), ERD_EPARSE, "empty name");
    ok(strstr(d.msg, "name is empty") != NULL, "%s", d.msg);
    is_int(import_str(s, "films", "id,name,id\n1,a,2\n", &o, NULL, &d), ERD_EPARSE,
           "duplicate header column");
    is_int(import_str(s, "films", "id,name,x\n1,a,\xc3\x28\n", &o, NULL, &d), ERD_EPARSE,
           "invalid UTF-8 attribute");
    is_int(count_of(s, cat), 4, "still nothing changed");

    /* configured columns */
    vix_import_opts c = {.format = VIX_FORMAT_CSV, .csv_id_column = "movieId",
                         .csv_name_column = "title", .csv_aliases_column = "aka"};
    is_int(import_str(s, "films", "movieId,title,genres\n9,Heat,Crime|Drama\n", &c, NULL, &d),
           ERD_EPARSE, "a named aliases column must exist");
    c.csv_aliases_column = "genres";
    is_int(import_str(s, "films", "movieId,title,genres\n9,Heat,Crime|Drama\n", &c, &r, &d), ERD_OK,
           "custom columns: %s", d.msg);
    g = get(s, cat, "9", &err);
    is_str(g.name, "Heat", "title column used as name");
    is_str(g.aliases, "[\"Crime\",\"Drama\"]", "custom aliases column");
}

static void test_auto(vix_store *s)
{
    erd_diag d = {0};
    vix_import_result r = {0};
    int64_t cat;
    int err;

    is_int(import_str(s, "auto", "\n  \n  {\"id\":\"j\",\"name\":\"json\"}\n", NULL, &r, &d), ERD_OK,
           "auto: JSON lines after blank lines: %s", d.msg);
    is_int(r.inserted, 1, "one record");
    is_int(import_str(s, "auto", "\xEF\xBB\xBF\n\nid,name\nc,csv\n", NULL, &r, &d), ERD_OK,
           "auto: CSV with BOM and blank lines: %s", d.msg);
    is_int(r.inserted, 1, "one record");
    vix_store_catalog_find(s, "auto", &cat, &d);
    got_entity g = get(s, cat, "c", &err);
    is_str(g.name, "csv", "CSV record");
    is_int(import_str(s, "auto", "\n\nid,name\nc,csv\n3,\n", NULL, &r, &d), ERD_EPARSE,
           "auto CSV error");
    ok(starts_with(d.msg, "line 5:"), "line numbers count the sniffed blank lines: %s", d.msg);
    is_int(import_str(s, "auto", "\n{\"id\":1}\n", NULL, &r, &d), ERD_EPARSE, "auto JSON error");
    ok(starts_with(d.msg, "line 2:"), "%s", d.msg);

    /* explicit JSONL given CSV */
    vix_import_opts o = {.format = VIX_FORMAT_JSONL};
    is_int(import_str(s, "auto", "id,name\n", &o, NULL, &d), ERD_EPARSE, "forced JSONL on CSV");
}

typedef struct progress_log {
    uint64_t calls, last_lines, last_bytes, total;
} progress_log;

static void on_progress(void *user, uint64_t lines, uint64_t bytes, uint64_t total)
{
    progress_log *p = user;
    p->calls++;
    p->last_lines = lines;
    p->last_bytes = bytes;
    p->total = total;
}

static void test_progress(vix_store *s)
{
    size_t cap = 2500 * 48;
    char *text = malloc(cap);
    size_t n = 0;
    for (int i = 0; i < 2500; i++)
        n += (size_t)snprintf(text + n, cap - n, "{\"id\":%d,\"name\":\"entity %d\"}\n", i, i);
    progress_log p = {0};
    vix_import_opts o = {.progress = on_progress, .progress_user = &p, .total_bytes = n};
    erd_diag d = {0};
    vix_import_result r = {0};
    is_int(import_str(s, "progress", text, &o, &r, &d), ERD_OK, "import 2500");
    is_int(r.inserted, 2500, "2500 inserted");
    is_int(p.calls, 3, "progress at 1000, 2000 and the end");
    is_int(p.last_lines, 2500, "final lines");
    is_int(p.last_bytes, n, "final bytes");
    is_int(p.total, n, "total passed through");
    free(text);
}

typedef struct walk {
    int n;
    char names[8][32];
    int64_t counts[8];
    int64_t rowids[16];
    int stop_after;
} walk;

static int on_catalog(void *user, const vix_catalog_info *info)
{
    walk *w = user;
    if (w->n < 8) {
        snprintf(w->names[w->n], sizeof w->names[0], "%s", info->name);
        w->counts[w->n] = info->entity_count;
    }
    w->n++;
    return 0;
}

static int on_entity(void *user, const vix_entity *e)
{
    walk *w = user;
    if (w->n < 16)
        w->rowids[w->n] = e->rowid;
    w->n++;
    return w->stop_after && w->n == w->stop_after ? 12345 : 0;
}

static void test_walks(vix_store *s)
{
    erd_diag d = {0};
    walk w = {0};
    is_int(vix_store_catalog_foreach(s, VIX_STORE_LIST_COUNTS, on_catalog, &w, &d), ERD_OK,
           "catalog walk");
    ok(w.n >= 4, "several catalogs (%d)", w.n);
    bool sorted = true;
    for (int i = 1; i < w.n && i < 8; i++)
        if (strcmp(w.names[i - 1], w.names[i]) >= 0)
            sorted = false;
    ok(sorted, "catalogs in name order");
    int64_t cat;
    vix_store_catalog_find(s, "books", &cat, &d);
    for (int i = 0; i < w.n && i < 8; i++)
        if (strcmp(w.names[i], "books") == 0)
            is_int(w.counts[i], count_of(s, cat), "books entity count in walk");

    /* the brief walk (a server's sync) names the same catalogs, uncounted */
    walk brief = {0};
    is_int(vix_store_catalog_foreach(s, 0, on_catalog, &brief, &d), ERD_OK, "brief catalog walk");
    is_int(brief.n, w.n, "brief walk visits every catalog");
    bool same = true, uncounted = true;
    for (int i = 0; i < brief.n && i < 8; i++) {
        same = same && strcmp(brief.names[i], w.names[i]) == 0;
        uncounted = uncounted && brief.counts[i] == -1;
    }
    ok(same, "brief walk in the same order");
    ok(uncounted, "brief walk reports counts as unknown (-1)");

    memset(&w, 0, sizeof w);
    is_int(vix_store_entity_foreach(s, cat, on_entity, &w, &d), ERD_OK, "entity walk");
    is_int(w.n, count_of(s, cat), "every entity visited");
    bool ascending = true;
    for (int i = 1; i < w.n && i < 16; i++)
        if (w.rowids[i - 1] >= w.rowids[i])
            ascending = false;
    ok(ascending, "rowid order");
    memset(&w, 0, sizeof w);
    w.stop_after = 2;
    is_int(vix_store_entity_foreach(s, cat, on_entity, &w, &d), 12345, "callback value stops walk");
    is_int(w.n, 2, "stopped after two");
}

static void test_phonemes(vix_store *s)
{
    erd_diag d = {0};
    char out[64];
    is_int(vix_store_phonemes_get(s, "espeak:en-us", "dune", out, sizeof out), ERD_ENOTFOUND,
           "not cached");
    is_int(vix_store_phonemes_put(s, "espeak:en-us", "dune", "duːn", &d), ERD_OK, "put");
    is_int(vix_store_phonemes_get(s, "espeak:en-us", "dune", out, sizeof out), ERD_OK, "get");
    is_str(out, "duːn", "round trip");
    is_int(vix_store_phonemes_get(s, "espeak:en-gb", "dune", out, sizeof out), ERD_ENOTFOUND,
           "keyed by g2p id");
    is_int(vix_store_phonemes_get(s, "espeak:en-us", "dune", out, 5), ERD_ETOOLONG,
           "small buffer (needs 6)");
    is_int(vix_store_phonemes_get(s, "espeak:en-us", "dune", out, 6), ERD_OK, "exact buffer");
    is_int(vix_store_phonemes_put(s, "espeak:en-us", "dune", "djuːn", &d), ERD_OK, "replace");
    vix_store_phonemes_get(s, "espeak:en-us", "dune", out, sizeof out);
    is_str(out, "djuːn", "replaced");

    /* batched in an explicit transaction, then rolled back */
    is_int(vix_store_begin(s, &d), ERD_OK, "begin");
    vix_store_phonemes_put(s, "g", "a", "a", &d);
    vix_store_rollback(s);
    is_int(vix_store_phonemes_get(s, "g", "a", out, sizeof out), ERD_ENOTFOUND, "rolled back");
    is_int(vix_store_begin(s, &d), ERD_OK, "begin");
    vix_store_phonemes_put(s, "g", "a", "a", &d);
    /* a failing import inside the caller's transaction undoes only itself */
    is_int(import_str(s, "books", "{\"id\":\"q\"}\n", NULL, NULL, &d), ERD_EPARSE,
           "failing import inside a transaction");
    is_int(vix_store_commit(s, &d), ERD_OK, "commit");
    is_int(vix_store_phonemes_get(s, "g", "a", out, sizeof out), ERD_OK, "committed");
}

/* A build's new phonemes wait in a batch while it holds its snapshot: the
 * cache stays untouched until the flush, repeats are found in the batch
 * without espeak-ng, and the flush writes every one. */
static void test_phoneme_batch(vix_store *s)
{
    erd_diag d = {0};
    pho_g2p *g2p = NULL;
    vix_phoneme_batch *b = NULL;
    vix_phrase *ph = malloc(sizeof *ph);
    char out[256];
    if (pho_g2p_create("en-us", 0, &g2p, &d) != ERD_OK || !ph) {
        ok(0, "g2p: %s", d.msg);
        free(ph);
        return;
    }
    is_int(vix_phoneme_batch_create(&b, &d), ERD_OK, "batch created");
    const char *id = pho_g2p_id(g2p);
    is_int(vix_phrase_prepare_batched(g2p, s, b, "Zardoz", 6, ph, &d), ERD_OK, "prepared: %s",
           d.msg);
    size_t n_tokens = ph->n_tokens;
    is_int(vix_store_phonemes_get(s, id, "zardoz", out, sizeof out), ERD_ENOTFOUND,
           "not in the cache before the flush");
    pho_g2p_stats before, after;
    pho_g2p_get_stats(g2p, &before);
    is_int(vix_phrase_prepare_batched(g2p, s, b, "ZARDOZ!", 7, ph, &d), ERD_OK, "again");
    pho_g2p_get_stats(g2p, &after);
    ok(after.espeak_calls == before.espeak_calls && ph->n_tokens == n_tokens,
       "a repeat comes from the batch, not espeak-ng");
    vix_phrase_prepare_batched(g2p, s, b, "Solaris", 7, ph, &d);
    is_int((int)vix_phoneme_batch_count(b), 2, "two texts pending");
    is_int(vix_phoneme_batch_flush(b, s, id, &d), ERD_OK, "flushed: %s", d.msg);
    is_int((int)vix_phoneme_batch_count(b), 0, "batch empty");
    ok(vix_store_phonemes_get(s, id, "zardoz", out, sizeof out) == ERD_OK &&
           vix_store_phonemes_get(s, id, "solaris", out, sizeof out) == ERD_OK,
       "both in the cache");
    pho_g2p_get_stats(g2p, &before);
    vix_phrase_prepare_batched(g2p, s, b, "Solaris", 7, ph, &d);
    pho_g2p_get_stats(g2p, &after);
    ok(after.espeak_calls == before.espeak_calls && vix_phoneme_batch_count(b) == 0,
       "now a cache hit, nothing pending");
    vix_phoneme_batch_destroy(b);
    vix_phoneme_batch_destroy(NULL);
    pho_g2p_destroy(g2p);
    free(ph);
}

static void test_meta(vix_store *s)
{
    erd_diag d = {0};
    int64_t cat;
    vix_store_catalog_find(s, "books", &cat, &d);
    vix_index_meta m = {0};
    is_int(vix_store_meta_get(s, cat, &m, &d), ERD_ENOINDEX, "no index yet");

    unsigned char state[300];
    for (size_t i = 0; i < sizeof state; i++)
        state[i] = (unsigned char)(i * 7);
    vix_index_meta put = {
        .dim = 256, .vector_count = 12000, .entity_count = 10000, .catalog_generation = 3,
        .built_at = 1700000000, .build_seconds = 1.25, .encoder_state = state,
        .encoder_state_len = sizeof state,
    };
    snprintf(put.encoder_id, sizeof put.encoder_id, "phon-bow-v1");
    snprintf(put.factory, sizeof put.factory, "HNSW32");
    snprintf(put.path, sizeof put.path, "/var/lib/erd/books.faiss");
    snprintf(put.g2p_voice, sizeof put.g2p_voice, "de");
    is_int(vix_store_meta_put(s, cat, &put, &d), ERD_OK, "put meta");
    is_int(vix_store_meta_get(s, cat, &m, &d), ERD_OK, "get meta");
    is_str(m.encoder_id, "phon-bow-v1", "encoder_id");
    is_str(m.g2p_voice, "de", "g2p_voice recorded");
    is_str(m.factory, "HNSW32", "factory");
    is_str(m.path, "/var/lib/erd/books.faiss", "path");
    is_int(m.dim, 256, "dim");
    is_int(m.vector_count, 12000, "vector_count");
    is_int(m.entity_count, 10000, "entity_count");
    is_int(m.catalog_generation, 3, "catalog_generation");
    is_int(m.built_at, 1700000000, "built_at");
    ok(m.build_seconds == 1.25, "build_seconds");
    is_int(m.encoder_state_len, sizeof state, "blob length");
    ok(m.encoder_state && memcmp(m.encoder_state, state, sizeof state) == 0, "blob bytes");
    vix_index_meta_clear(&m);
    ok(m.encoder_state == NULL, "cleared");
    vix_index_meta_clear(NULL);

    put.vector_count = 5;
    put.encoder_state = NULL;
    put.encoder_state_len = 0;
    put.g2p_voice[0] = '\0';
    is_int(vix_store_meta_put(s, cat, &put, &d), ERD_OK, "replace meta");
    is_int(vix_store_meta_get(s, cat, &m, &d), ERD_OK, "get again");
    is_int(m.vector_count, 5, "replaced");
    is_str(m.g2p_voice, "", "no voice recorded reads back empty");
    ok(m.encoder_state == NULL && m.encoder_state_len == 0, "no blob");
    vix_index_meta_clear(&m);

    is_int(vix_store_meta_put(s, 999999, &put, &d), ERD_ENOCATALOG, "meta for an unknown catalog");
    memset(put.factory, 'x', sizeof put.factory);
    is_int(vix_store_meta_put(s, cat, &put, &d), ERD_EINVAL, "unterminated field refused");
}

typedef struct changes {
    char seen[512];
    int64_t deleted[8];
    size_t n_deleted;
} changes;

static int on_upserted(void *user, const vix_entity *e)
{
    changes *c = user;
    size_t o = strlen(c->seen);
    snprintf(c->seen + o, sizeof c->seen - o, "%s%s", o ? "," : "", e->ext_id);
    return 0;
}

static int on_deleted(void *user, int64_t rowid)
{
    changes *c = user;
    if (c->n_deleted < 8)
        c->deleted[c->n_deleted++] = rowid;
    return 0;
}

static int64_t generation_of(vix_store *s, int64_t id)
{
    int64_t g = -1;
    vix_store_catalog_generation(s, id, &g, NULL);
    return g;
}

/* Single writes, tombstones and what changed since a generation: the
 * delta a live server serves is computed from these. */
static void test_live_changes(vix_store *s)
{
    erd_diag d = {0};
    int64_t id = 0, pending = -1, rowid = 0;
    bool created = false;
    is_int(import_str(s, "live", "{\"id\":\"a\",\"name\":\"Alpha\"}\n{\"id\":\"b\",\"name\":\"Beta\"}\n",
                      NULL, NULL, &d),
           ERD_OK, "import two");
    is_int(vix_store_catalog_find(s, "live", &id, &d), ERD_OK, "catalog found");
    int64_t g0 = generation_of(s, id);
    is_int(g0, 1, "one import, one generation");

    is_int(vix_store_begin(s, &d), ERD_OK, "begin");
    is_int(vix_store_upsert_json(s, id, "{\"id\":\"c\",\"name\":\"Gamma\"}", 25, 0, &created, &d),
           ERD_OK, "upsert new");
    ok(created, "reported as created");
    is_int(vix_store_upsert_json(s, id, "{\"id\":\"a\",\"name\":\"Alpha Two\"}", 29, 0, &created, &d),
           ERD_OK, "upsert existing");
    ok(!created, "reported as replaced");
    is_int(vix_store_upsert_json(s, id, "{\"id\":\"x\"}", 10, 7, NULL, &d), ERD_EPARSE,
           "record without name refused");
    ok(strstr(d.msg, "line 7") != NULL, "error names the line: %s", d.msg);
    is_int(vix_store_upsert_json(s, id, "{\"id\":\"x\"}", 10, 0, NULL, &d), ERD_EPARSE,
           "also without a line");
    ok(strncmp(d.msg, "line", 4) != 0, "no line 0 in the message: %s", d.msg);
    is_int(vix_store_entity_delete(s, id, "b", &rowid, &d), ERD_OK, "delete b");
    ok(rowid > 0, "deleted rowid returned");
    is_int(vix_store_entity_delete(s, id, "nope", NULL, &d), ERD_ENOTFOUND, "delete of a missing id");
    is_int(vix_store_catalog_bump(s, id, &d), ERD_OK, "bump");
    is_int(vix_store_commit(s, &d), ERD_OK, "commit");
    is_int(generation_of(s, id), g0 + 1, "one generation for the batch");

    changes c = {0};
    is_int(vix_store_changes(s, id, g0, on_upserted, on_deleted, &c, &d), ERD_OK, "changes since g0");
    is_str(c.seen, "a,c", "written since g0, rowid order");
    ok(c.n_deleted == 1 && c.deleted[0] == rowid, "deleted since g0");
    is_int(vix_store_pending(s, id, g0, &pending, &d), ERD_OK, "pending");
    is_int(pending, 3, "three pending changes");
    memset(&c, 0, sizeof c);
    is_int(vix_store_changes(s, id, g0 + 1, on_upserted, on_deleted, &c, &d), ERD_OK, "changes since now");
    ok(c.seen[0] == '\0' && c.n_deleted == 0, "nothing since the current generation");
    is_int(vix_store_pending(s, id, 0, &pending, &d), ERD_OK, "pending since 0");
    is_int(pending, 3, "everything (a, c and the tombstone of b) since generation 0");

    is_int(vix_store_catalog_delete(s, id, &d), ERD_OK, "delete catalog");
    is_int(vix_store_catalog_find(s, "live", NULL, &d), ERD_ENOCATALOG, "gone");
    is_int(pragma_int(vix_store_path(s), "SELECT count(*) FROM tombstones"), 0,
           "its tombstones went with it");
}

/* A version 1 file (before live changes) is upgraded on a read-write open,
 * and refused read-only with a message saying how to upgrade it. */
static void test_upgrade(void)
{
    char path[128];
    path_in_tmp(path, sizeof path, "v1.db");
    sql_exec(path, "CREATE TABLE catalogs(id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL,"
                   " created_at INTEGER NOT NULL, generation INTEGER NOT NULL DEFAULT 0);"
                   "CREATE TABLE entities(rowid INTEGER PRIMARY KEY, catalog_id INTEGER NOT NULL"
                   " REFERENCES catalogs ON DELETE CASCADE, ext_id TEXT NOT NULL, name TEXT NOT NULL,"
                   " aliases TEXT NOT NULL DEFAULT '[]', attrs TEXT NOT NULL DEFAULT '{}',"
                   " updated_at INTEGER NOT NULL, UNIQUE(catalog_id, ext_id));"
                   "CREATE TABLE phonemes(g2p_id TEXT, text TEXT, ipa TEXT NOT NULL,"
                   " PRIMARY KEY(g2p_id, text)) WITHOUT ROWID;"
                   "CREATE TABLE indexes(catalog_id INTEGER PRIMARY KEY, encoder_id TEXT NOT NULL,"
                   " factory TEXT NOT NULL, path TEXT NOT NULL, dim INTEGER NOT NULL,"
                   " vector_count INTEGER NOT NULL, entity_count INTEGER NOT NULL,"
                   " catalog_generation INTEGER NOT NULL, built_at INTEGER NOT NULL,"
                   " build_seconds REAL NOT NULL, encoder_state BLOB);"
                   "INSERT INTO catalogs VALUES(1, 'old', 0, 3);"
                   "INSERT INTO entities VALUES(5, 1, 'e', 'Old', '[]', '{}', 0);"
                   "PRAGMA user_version = 1;");
    vix_store *s = NULL;
    erd_diag d = {0};
    is_int(vix_store_open(path, VIX_STORE_READONLY, &s, &d), ERD_EMISMATCH, "v1 refused read-only");
    ok(strstr(d.msg, "read-write") != NULL, "says how to upgrade: %s", d.msg);
    is_int(vix_store_open(path, 0, &s, &d), ERD_OK, "v1 upgraded read-write");
    is_int(pragma_int(path, "PRAGMA user_version"), 3, "now version 3");
    int64_t pending = -1;
    is_int(vix_store_pending(s, 1, 0, &pending, &d), ERD_OK, "pending on an upgraded file");
    is_int(pending, 0, "old rows count as generation 0");
    vix_store_close(s);
}

static void test_real_catalogs(vix_store *s)
{
    const char *dir = getenv("ERD_TEST_DATA");
    static const char *const files[] = {"book/catalog.jsonl", "video/catalog.jsonl"};
    if (!dir)
        dir = "/work/shared/data";
    for (size_t i = 0; i < 2; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        FILE *f = fopen(path, "r");
        if (!f) {
            ok(1, "# SKIP %s not present", path);
            continue;
        }
        struct timespec t0, t1;
        erd_diag d = {0};
        vix_import_result r = {0};
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int err = vix_store_import(s, i == 0 ? "real-books" : "real-video", f, NULL, &r, &d);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        fclose(f);
        double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
        is_int(err, ERD_OK, "import %s: %s", files[i], d.msg);
        ok(r.inserted > 9000, "%s: %llu records", files[i], (unsigned long long)r.inserted);
        printf("# import %s: %llu records in %.3f s\n", files[i], (unsigned long long)r.lines,
               secs);
        ok(secs < 2.0, "%s imported in under 2 s (%.3f)", files[i], secs);
    }
}

int main(void)
{
    if (!tmpdir_make(tmpdir, sizeof tmpdir, "store")) {
        perror("mkdtemp");
        return 1;
    }
    test_open();

    char path[128];
    path_in_tmp(path, sizeof path, "main.db");
    vix_store *s = NULL;
    erd_diag d = {0};
    if (vix_store_open(path, 0, &s, &d) != ERD_OK) {
        printf("Bail out! cannot open %s: %s\n", path, d.msg);
        return 1;
    }
    test_names(s);
    test_jsonl(s);
    test_bad_records(s);
    test_csv(s);
    test_auto(s);
    test_progress(s);
    test_walks(s);
    test_phonemes(s);
    test_phoneme_batch(s);
    test_meta(s);
    test_real_catalogs(s);
    test_live_changes(s);
    vix_store_close(s);
    test_upgrade();

    ok(tmpdir_remove(tmpdir), "temp dir removed");
    return tap_done();
}
