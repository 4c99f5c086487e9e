#include "server/http/srv_console.h"

#include <string.h>

const srv_console_asset *srv_console_find(const char *name)
{
    if (!name)
        return NULL;
    for (const srv_console_asset *a = srv_console_assets; a->name; a++)
        if (strcmp(a->name, name) == 0)
            return a;
    return NULL;
}
