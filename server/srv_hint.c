#include "server/srv_hint.h"

#include "index/vix_store.h"

int srv_hint_unbuilt(const char *db, const char *catalog, int err, erd_diag *diag)
{
    if (err != ERD_ENOCATALOG || !db || !catalog || !vix_catalog_name_valid(catalog))
        return err;
    vix_store *store = NULL;
    int64_t id = 0;
    /* Only on the error path: a served catalog never gets here. */
    if (vix_store_open(db, VIX_STORE_READONLY, &store, NULL) < 0)
        return err;
    vix_index_meta meta;
    int found = vix_store_catalog_find(store, catalog, &id, NULL);
    /* a catalog with an index that did not load keeps its own reason */
    int unbuilt = found >= 0 && vix_store_meta_get(store, id, &meta, NULL) == ERD_ENOINDEX;
    vix_store_close(store);
    if (!unbuilt)
        return err;
    return erd_fail(diag, ERD_ENOINDEX,
                    "catalog \"%s\" is imported but not built: run `erd build --db %.120s "
                    "--catalog %s`",
                    catalog, db, catalog);
}
