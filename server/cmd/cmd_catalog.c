/* erd catalog / erd entity / erd snapshot: the admin API's operations on a
 * database file, for operators and scripts.  Output is the JSON the HTTP
 * routes answer with; a running erd serve on the same file picks the
 * writes up within its sync_interval_ms. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/cfg.h"
#include "index/vix_snapshot.h"
#include "server/http/srv_admin.h"
#include "server/cmd/cmd_cli.h"
#include "server/cmd/cmd_opt.h"

/* The options every command here takes, --db and --config, lead each
 * table; a command adds --catalog or --out after them. */
#define CMD__COMMON_OPTS(db, config)                                  \
    CMD_CFG("db", 'd', "FILE", (db), "db", "catalog store"),          \
        CMD_STR("config", 0, "FILE", (config), "configuration file")

/* Parses by spec, then the one start-up path; the positional arguments
 * stay in argv[optind..].  Returns 0 to go on, else the exit code (help
 * printed: -1, for CMD_EXIT_OK). */
static int cmd__parse(const cmd_spec *spec, int argc, char **argv, const char **db,
                      const char *const *config, cfg_config *cfg)
{
    int ex;
    if (!cmd_opt_parse(spec, argc, argv, &ex))
        return ex == CMD_EXIT_OK ? -1 : ex;
    erd_diag diag = {0};
    int rc = cmd_startup(*config, NULL, 0, cfg, &diag);
    if (rc < 0)
        return cmd_fail(spec->name, &diag, rc);
    if (!*db)
        *db = cfg->db;
    if (access(*db, F_OK) != 0) {
        fprintf(stderr, "erd %s: %s: no such database\n", spec->name, *db);
        return CMD_EXIT_NOINPUT;
    }
    return CMD_EXIT_OK;
}

/* Prints json (taken over) or the failure; returns the exit code. */
static int cmd__print(const char *cmd, int rc, const erd_diag *diag, char *json)
{
    if (rc < 0) {
        free(json);
        return cmd_fail(cmd, diag, rc);
    }
    printf("%s\n", json);
    free(json);
    return CMD_EXIT_OK;
}

static int cmd__run(const char *cmd, const char *db, enum srv_admin_op op, const char *catalog,
                    const char *id, const char *body)
{
    srv_admin_ctx ctx = {.db = db};
    erd_diag diag = {0};
    unsigned status;
    char *json = NULL;
    size_t len;
    int rc = srv_admin_run(&ctx, op, catalog, id, body, body ? strlen(body) : 0, &status, &json,
                           &len, &diag);
    return cmd__print(cmd, rc, &diag, json);
}

int cmd_catalog(int argc, char **argv)
{
    const char *db = NULL, *config = NULL;
    const cmd_opt opts[] = {CMD__COMMON_OPTS(&db, &config)};
    const cmd_spec spec = CMD_SPEC_FULL("catalog", "list|create|describe|delete [NAME] [--db FILE]",
        "  list              every catalog, with its entity count and generation\n"
        "  create NAME       a new, empty catalog\n"
        "  describe NAME     entities, generation, its index, changes since the index\n"
        "  delete NAME       the catalog, its entities and its index file\n"
        "Prints the JSON the /v1/catalogs routes answer with.  Rebuild with erd build.", opts, NULL, 1, 2);
    cfg_config cfg;
    int rc = cmd__parse(&spec, argc, argv, &db, &config, &cfg);
    if (rc)
        return rc < 0 ? CMD_EXIT_OK : rc;
    int left = argc - optind;
    const char *verb = left > 0 ? argv[optind] : "";
    const char *name = left > 1 ? argv[optind + 1] : NULL;
    bool named = strcmp(verb, "list") != 0;
    if (!*verb || (named && left != 2) || (!named && left != 1)) {
        fprintf(stderr, "erd catalog: expected list, or create|describe|delete NAME\n");
        return cmd_bad_usage("catalog");
    }
    if (!strcmp(verb, "list"))
        return cmd__run("catalog", db, SRV_ADMIN_LIST, NULL, NULL, NULL);
    if (!strcmp(verb, "describe"))
        return cmd__run("catalog", db, SRV_ADMIN_DESCRIBE, name, NULL, NULL);
    if (!strcmp(verb, "delete"))
        return cmd__run("catalog", db, SRV_ADMIN_DELETE, name, NULL, NULL);
    if (!strcmp(verb, "create")) {
        json_t *body = json_pack("{s:s}", "name", name);
        char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
        json_decref(body);
        rc = s ? cmd__run("catalog", db, SRV_ADMIN_CREATE, NULL, NULL, s) : CMD_EXIT_FAIL;
        free(s);
        return rc;
    }
    fprintf(stderr, "erd catalog: unknown action \"%s\"\n", verb);
    return cmd_bad_usage("catalog");
}

/* JSON lines from stdin through the bulk writer: committed chunk by chunk,
 * bad lines reported by number. */
static int cmd__bulk_stdin(const char *db, const char *catalog)
{
    srv_admin_ctx ctx = {.db = db};
    srv_bulk *bulk = NULL;
    erd_diag diag = {0};
    char buf[1 << 16];
    unsigned status;
    char *json = NULL;
    size_t len, n;
    int rc = srv_bulk_begin(&ctx, catalog, &bulk, &diag);
    while (rc == ERD_OK && (n = fread(buf, 1, sizeof buf, stdin)) > 0)
        rc = srv_bulk_feed(bulk, buf, n, &diag);
    /* finish also reports a failed feed, with what was committed before it */
    if (bulk)
        rc = srv_bulk_finish(bulk, &status, &json, &len, &diag);
    if (rc == ERD_OK && ferror(stdin))
        rc = erd_fail(&diag, ERD_EIO, "reading stdin failed (lines before were committed)");
    srv_bulk_destroy(bulk);
    return cmd__print("entity", rc, &diag, json);
}

int cmd_entity(int argc, char **argv)
{
    const char *db = NULL, *config = NULL, *catalog = NULL;
    const cmd_opt opts[] = {
        CMD__COMMON_OPTS(&db, &config),
        CMD_STR("catalog", 'c', "NAME", &catalog, "catalog"),
    };
    const cmd_spec spec = CMD_SPEC_FULL("entity", "upsert|get|delete --catalog NAME ARG [--db FILE]",
        "  upsert JSON       one record {\"id\",\"name\",\"aliases\"?,\"attrs\"?}\n"
        "  upsert -          JSON lines from stdin, committed as they are read; bad lines\n"
        "                    are reported by number and the others kept\n"
        "  get ID            one entity\n"
        "  delete ID         one entity\n"
        "Every write is committed before erd exits; a running erd serve on the same\n"
        "database serves it within its sync_interval_ms, without a rebuild.", opts, "catalog", 2, 2);
    cfg_config cfg;
    int rc = cmd__parse(&spec, argc, argv, &db, &config, &cfg);
    if (rc)
        return rc < 0 ? CMD_EXIT_OK : rc;
    const char *verb = argv[optind], *arg = argv[optind + 1];
    if (!strcmp(verb, "upsert"))
        return strcmp(arg, "-") ? cmd__run("entity", db, SRV_ADMIN_UPSERT, catalog, NULL, arg)
                                : cmd__bulk_stdin(db, catalog);
    if (!strcmp(verb, "get"))
        return cmd__run("entity", db, SRV_ADMIN_GET_ENTITY, catalog, arg, NULL);
    if (!strcmp(verb, "delete"))
        return cmd__run("entity", db, SRV_ADMIN_DELETE_ENTITY, catalog, arg, NULL);
    fprintf(stderr, "erd entity: unknown action \"%s\"\n", verb);
    return cmd_bad_usage("entity");
}

int cmd_snapshot(int argc, char **argv)
{
    const char *db = NULL, *config = NULL, *out = NULL;
    const cmd_opt opts[] = {
        CMD__COMMON_OPTS(&db, &config),
        CMD_STR("out", 'o', "SNAPSHOT", &out, "file to write"),
    };
    const cmd_spec spec = CMD_SPEC_FULL("snapshot", "--db FILE --out SNAPSHOT",
        "Writes one file holding a consistent copy of the database (SQLite backup) and\n"
        "every catalog's index file, with a checksum; written beside SNAPSHOT and\n"
        "renamed over it, so readers never see half of one.  Replicas serve it with\n"
        "erd serve --snapshot SNAPSHOT and switch to a newer one when it is replaced.", opts, "out", 0, 0);
    cfg_config cfg;
    int rc = cmd__parse(&spec, argc, argv, &db, &config, &cfg);
    if (rc)
        return rc < 0 ? CMD_EXIT_OK : rc;
    vix_snapshot_info info;
    erd_diag diag = {0};
    rc = vix_snapshot_write(db, out, &info, &diag);
    if (rc < 0)
        return cmd_fail("snapshot", &diag, rc);
    fprintf(stderr, "erd snapshot: %s: %llu files, %llu bytes, fnv1a64 %016llx\n", out,
            (unsigned long long)info.files, (unsigned long long)info.bytes,
            (unsigned long long)info.checksum);
    return CMD_EXIT_OK;
}
