/* Turns errors a first-time user hits into ones that say what to do. */
#ifndef SRV_HINT_H
#define SRV_HINT_H

#include "proto/erd_error.h"

/* For a resolve that failed with err: when err is ERD_ENOCATALOG and the
 * database at db holds the catalog (imported, never built), ERD_ENOINDEX
 * with "catalog "X" is imported but not built: run `erd build --db DB
 * --catalog X`" in diag; otherwise err unchanged. */
int srv_hint_unbuilt(const char *db, const char *catalog, int err, erd_diag *diag);

#endif
