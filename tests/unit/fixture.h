/* What the unit tests of the index start from: a small catalog imported
 * into a fresh store, then built.  Header-only, like tap.h. */
#ifndef ERD_TEST_FIXTURE_H
#define ERD_TEST_FIXTURE_H

#include <stdio.h>
#include <string.h>

#include "index/vix_build.h"
#include "index/vix_store.h"

/* Six titles, near-homophones among them (Ferris / Paris / Fairest) and a
 * name with an alias. */
static const char fixture_six[] =
    "{\"id\":\"a\",\"name\":\"The Hunger Games\"}\n"
    "{\"id\":\"b\",\"name\":\"Hunger Games: Mockingjay\",\"aliases\":[\"Mockingjay\"]}\n"
    "{\"id\":\"c\",\"name\":\"Ferris Bueller's Day Off\"}\n"
    "{\"id\":\"d\",\"name\":\"Paris When It Sizzles\"}\n"
    "{\"id\":\"e\",\"name\":\"Harry Potter and the Sorcerer's Stone\"}\n"
    "{\"id\":\"f\",\"name\":\"Fairest Days\"}\n";

/* Imports JSON lines into catalog of the store at db (created if need be). */
static inline int fixture_import(const char *db, const char *catalog, const char *jsonl,
                                 erd_diag *diag)
{
    vix_store *st = NULL;
    FILE *in = fmemopen((void *)jsonl, strlen(jsonl), "r");
    if (!in)
        return erd_fail(diag, ERD_EIO, "fmemopen failed");
    int rc = vix_store_open(db, 0, &st, diag);
    if (rc == ERD_OK)
        rc = vix_store_import(st, catalog, in, NULL, NULL, diag);
    vix_store_close(st);
    fclose(in);
    return rc;
}

/* Builds catalog of the store at db with the default encoder; ret may be
 * NULL. */
static inline int fixture_build(const char *db, const char *catalog, vix_build_result *ret,
                                erd_diag *diag)
{
    vix_build_opts bo = {.db_path = db, .catalog = catalog};
    return vix_build(&bo, ret, diag);
}

#endif
