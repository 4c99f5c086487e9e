/* Turns errors a first-time user hits into ones that say what to do. */
#ifndef SRV_HINT_H
#define SRV_HINT_H

#include "proto/erd_error.h"

struct vix_resolver;

/* For a resolve that failed with err: when err is ERD_ENOCATALOG and the
 * database at db holds the catalog (imported, never built), ERD_ENOINDEX
 * with "catalog "X" is imported but not built: run `erd build --db DB
 * --catalog X`" in diag; otherwise err unchanged, also for a catalog whose
 * built index resolver could not load (its own message says why). */
int srv_hint_unbuilt(struct vix_resolver *resolver, const char *db, const char *catalog, int err,
                     erd_diag *diag);

#endif
