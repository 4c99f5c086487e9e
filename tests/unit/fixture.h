/* What the unit tests of the index start from: a small catalog imported
 * into a fresh store, then built.  Header-only, like tap.h. */
#ifndef ERD_TEST_FIXTURE_H
#define ERD_TEST_FIXTURE_H

#include <stdio.h>
#include <string.h>

#include "index/vix_build.h"
#include "index/vix_resolve.h"
#include "index/vix_store.h"
#include "phonetics/pho_channel.h"

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

/* The best answer to text in catalog "video" of db, from a resolver opened
 * just for it with the rerank spec given: its id, and its score when
 * with_score (every digit of it); "(none)" when there is none.  The
 * text lives until the next call. */
static inline const char *fixture_top(const char *db, const char *rerank, const char *text,
                                      int with_score)
{
    static char id[96];
    vix_resolver *r = NULL;
    vix_resolver_opts ro = {.db_path = db, .rerank = rerank};
    vix_hypothesis h = {text, strlen(text), 0, false};
    vix_result res[1];
    size_t n = 0;
    snprintf(id, sizeof id, "(none)");
    if (vix_resolver_open(&ro, &r, NULL) == ERD_OK &&
        vix_resolve(r, "video", &h, 1, 1, res, &n, NULL, NULL) == ERD_OK && n)
        snprintf(id, sizeof id, with_score ? "%s %.17g" : "%s", res[0].ext_id, res[0].score);
    vix_resolver_close(r);
    return id;
}

/* A channel learned from one exact copy: every phone heard as itself. */
static inline pho_channel *fixture_flat_channel(void)
{
    pho_channel_trainer *tr;
    pho_channel *ch = NULL;
    pho_token t[3] = {{10, 0, 1, 0}, {11, 0, 0, 0}, {12, 0, 0, 0}};
    if (pho_channel_trainer_create(&tr) < 0)
        return NULL;
    pho_channel_trainer_add(tr, t, 3, t, 3);
    pho_channel_train(tr, NULL, &ch, NULL, NULL);
    pho_channel_trainer_destroy(tr);
    return ch;
}

#endif
