/* The admin operations without HTTP: a bulk upload split at every possible
 * chunk boundary lands the same lines, an over-long line is reported and
 * skipped without being held, a replica refuses writes, and bad input
 * changes nothing. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "index/vix_build.h"
#include "index/vix_store.h"
#include "server/http/srv_admin.h"
#include "tests/unit/tap.h"
#include "tests/unit/tmpdir.h"

static char db[256];

static json_t *run(enum srv_admin_op op, const char *catalog, const char *id, const char *body,
                   int *ret_rc)
{
    srv_admin_ctx ctx = {.db = db};
    unsigned status = 0;
    char *json = NULL;
    size_t len = 0;
    erd_diag d = {0};
    *ret_rc = srv_admin_run(&ctx, op, catalog, id, body, body ? strlen(body) : 0, &status, &json,
                            &len, &d);
    json_t *root = json ? json_loads(json, 0, NULL) : NULL;
    free(json);
    return root;
}

static int64_t count_entities(void)
{
    int rc;
    json_t *root = run(SRV_ADMIN_DESCRIBE, "books", NULL, NULL, &rc);
    int64_t n = rc == ERD_OK ? json_integer_value(json_object_get(root, "entities")) : -1;
    json_decref(root);
    return n;
}

/* Feeds text in chunks of `step` bytes (0: random sizes 1..9). */
static json_t *bulk(const char *text, size_t len, size_t step, int *ret_rc)
{
    srv_admin_ctx ctx = {.db = db};
    srv_bulk *b = NULL;
    erd_diag d = {0};
    unsigned status;
    char *json = NULL;
    size_t out_len;
    int rc = srv_bulk_begin(&ctx, "books", &b, &d);
    for (size_t i = 0; rc == ERD_OK && i < len;) {
        size_t n = step ? step : 1 + (size_t)(rand() % 9);
        if (n > len - i)
            n = len - i;
        rc = srv_bulk_feed(b, text + i, n, &d);
        i += n;
    }
    if (b)
        rc = srv_bulk_finish(b, &status, &json, &out_len, &d);
    srv_bulk_destroy(b);
    *ret_rc = rc;
    json_t *root = json ? json_loads(json, 0, NULL) : NULL;
    free(json);
    return root;
}

int main(void)
{
    char dir[200];
    int rc;
    if (!tmpdir_make(dir, sizeof dir, "admin")) {
        printf("Bail out! mkdtemp\n");
        return 1;
    }
    snprintf(db, sizeof db, "%s/a.db", dir);
    vix_store *st = NULL;
    vix_store_open(db, 0, &st, NULL);
    vix_store_close(st);

    json_decref(run(SRV_ADMIN_CREATE, NULL, NULL, "{\"name\":\"books\"}", &rc));
    is_int(rc, ERD_OK, "create");
    json_decref(run(SRV_ADMIN_CREATE, NULL, NULL, "{\"name\":\"books\"}", &rc));
    is_int(rc, ERD_EEXIST, "create twice");
    json_decref(run(SRV_ADMIN_CREATE, NULL, NULL, "[1]", &rc));
    is_int(rc, ERD_EINVAL, "create with a non-object body");
    json_decref(run(SRV_ADMIN_DESCRIBE, "nope", NULL, NULL, &rc));
    is_int(rc, ERD_ENOCATALOG, "describe unknown");
    /* a route with no admin operation never falls through to a rebuild */
    json_decref(run(SRV_ADMIN_NONE, "books", NULL, NULL, &rc));
    is_int(rc, ERD_EINTERNAL, "no operation is refused, nothing run");

    static const char text[] = "{\"id\":\"1\",\"name\":\"Dune\"}\n"
                               "\n"
                               "{\"id\":\"2\",\"name\":\"Emma\",\"aliases\":[\"Emma.\"]}\r\n"
                               "{\"id\":\"3\"}\n"
                               "{\"id\":\"4\",\"name\":\"It\"}";
    size_t len = sizeof text - 1;
    int all_same = 1;
    for (size_t step = 0; step <= len; step++) {
        json_t *r = bulk(text, len, step, &rc);
        int good = rc == ERD_OK && json_integer_value(json_object_get(r, "lines")) == 4 &&
                   json_integer_value(json_object_get(r, "upserted")) == 3 &&
                   json_integer_value(json_object_get(r, "failed")) == 1 &&
                   json_integer_value(json_object_get(json_array_get(json_object_get(r, "errors"), 0),
                                                      "line")) == 4;
        if (!good)
            printf("# chunks of %zu: %s\n", step, r ? json_dumps(r, 0) : "(no reply)");
        all_same &= good;
        json_decref(r);
    }
    ok(all_same, "every chunking (1..%zu bytes, and random) gives 4 lines, 3 upserted, line 4 failed", len);
    is_int(count_entities(), 3, "three entities stored");

    /* a line past the limit: reported, skipped, and the next one lands */
    size_t big = SRV_BULK_MAX_LINE + 100;
    char *huge = malloc(big + 64);
    memset(huge, 'x', big);
    static const char tail[] = "\n{\"id\":\"5\",\"name\":\"Ulysses\"}\n";
    memcpy(huge + big, tail, sizeof tail);
    json_t *r = bulk(huge, big + sizeof tail - 1, 65536, &rc);
    is_int(rc, ERD_OK, "over-long line does not end the upload");
    is_int(json_integer_value(json_object_get(r, "failed")), 1, "it is reported");
    is_str(json_string_value(json_object_get(json_array_get(json_object_get(r, "errors"), 0), "code")),
           "too_long", "as too_long");
    is_int(json_integer_value(json_object_get(r, "upserted")), 1, "the next line lands");
    json_decref(r);
    free(huge);
    is_int(count_entities(), 4, "four entities stored");

    /* more bad lines than the reply lists */
    char many[8192] = "";
    for (int i = 0; i < SRV_BULK_MAX_ERRORS + 20; i++)
        strcat(many, "{}\n");
    r = bulk(many, strlen(many), 0, &rc);
    is_int(json_integer_value(json_object_get(r, "failed")), SRV_BULK_MAX_ERRORS + 20, "all counted");
    is_int((int)json_array_size(json_object_get(r, "errors")), SRV_BULK_MAX_ERRORS, "listed up to the cap");
    ok(json_is_true(json_object_get(r, "errors_truncated")), "and marked truncated");
    json_decref(r);

    /* entities */
    json_decref(run(SRV_ADMIN_UPSERT, "books", NULL, "{\"id\":\"6\"}", &rc));
    is_int(rc, ERD_EPARSE, "upsert without a name refused");
    json_decref(run(SRV_ADMIN_UPSERT, "books", NULL, "{\"id\":6,\"name\":\"Beloved\"}", &rc));
    is_int(rc, ERD_OK, "integer id accepted");
    r = run(SRV_ADMIN_GET_ENTITY, "books", "6", NULL, &rc);
    is_str(json_string_value(json_object_get(r, "name")), "Beloved", "and read back");
    json_decref(r);
    json_decref(run(SRV_ADMIN_DELETE_ENTITY, "books", "6", NULL, &rc));
    is_int(rc, ERD_OK, "deleted");
    json_decref(run(SRV_ADMIN_DELETE_ENTITY, "books", "6", NULL, &rc));
    is_int(rc, ERD_ENOTFOUND, "deleted twice");
    is_int(count_entities(), 4, "four entities again");
    json_decref(run(SRV_ADMIN_REBUILD, "books", NULL, NULL, &rc));
    is_int(rc, ERD_EINVAL, "rebuilds need a server");

    /* a replica */
    srv_admin_ctx ro = {.db = db, .read_only = true};
    unsigned status;
    char *json = NULL;
    size_t jl;
    srv_bulk *b = NULL;
    is_int(srv_admin_run(&ro, SRV_ADMIN_UPSERT, "books", NULL, "{\"id\":\"9\",\"name\":\"x\"}", 23,
                         &status, &json, &jl, NULL),
           ERD_EFORBIDDEN, "replica refuses an upsert");
    is_int(srv_bulk_begin(&ro, "books", &b, NULL), ERD_EFORBIDDEN, "and a bulk upload");
    is_int(srv_admin_run(&ro, SRV_ADMIN_LIST, NULL, NULL, NULL, 0, &status, &json, &jl, NULL), ERD_OK,
           "but lists");
    free(json);

    /* built: deleting the catalog takes its index and entity table along */
    vix_build_opts bo = {.db_path = db, .catalog = "books"};
    vix_build_result br = {0};
    char table[1200];
    erd_diag bd = {0};
    is_int(vix_build(&bo, &br, &bd), ERD_OK, "books built: %s", bd.msg);
    ok(vix_index_table_path(br.index_path, table, sizeof table) == ERD_OK &&
           access(br.index_path, R_OK) == 0 && access(table, R_OK) == 0,
       "its index and entity table written");
    json_decref(run(SRV_ADMIN_DELETE, "books", NULL, NULL, &rc));
    is_int(rc, ERD_OK, "catalog deleted");
    json_decref(run(SRV_ADMIN_DESCRIBE, "books", NULL, NULL, &rc));
    is_int(rc, ERD_ENOCATALOG, "gone");
    ok(access(br.index_path, F_OK) != 0 && access(table, F_OK) != 0,
       "its index and entity table removed");

    ok(tmpdir_remove(dir), "temp dir removed");
    return tap_done();
}
