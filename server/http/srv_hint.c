#include "server/http/srv_hint.h"

#include <string.h>

#include "index/vix_resolve.h"
#include "index/vix_store.h"

/* Built, but its index did not load: not a first-time user's mistake. */
static int srv__unloaded(vix_resolver *resolver, const char *catalog)
{
    char name[72];
    erd_diag d;
    for (size_t i = 0; resolver; i++) {
        if (vix_resolver_unavailable(resolver, i, name, sizeof name, &d) != ERD_OK)
            return 0;
        if (strcmp(name, catalog) == 0)
            return 1;
    }
    return 0;
}

int srv_hint_unbuilt(vix_resolver *resolver, const char *db, const char *catalog, int err,
                     erd_diag *diag)
{
    if (err != ERD_ENOCATALOG || !db || !catalog || !vix_catalog_name_valid(catalog) ||
        srv__unloaded(resolver, catalog))
        return err;
    vix_store *store = NULL;
    int64_t id = 0;
    /* Only on the error path: a served catalog never gets here. */
    if (vix_store_open(db, VIX_STORE_READONLY, &store, NULL) < 0)
        return err;
    int found = vix_store_catalog_find(store, catalog, &id, NULL);
    vix_store_close(store);
    if (found < 0)
        return err;
    return erd_fail(diag, ERD_ENOINDEX,
                    "catalog \"%s\" is imported but not built: run `erd build --db %.120s "
                    "--catalog %s`",
                    catalog, db, catalog);
}
