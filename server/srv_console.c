#include "server/srv_console.h"

#include <string.h>

#define SRV__CONSOLE_PREFIX "/console/"

const srv_console_asset *srv_console_find(const char *path)
{
    const char *name;
    if (!path)
        return NULL;
    if (strcmp(path, "/") == 0)
        name = "index.html";
    else if (strncmp(path, SRV__CONSOLE_PREFIX, strlen(SRV__CONSOLE_PREFIX)) == 0)
        name = path + strlen(SRV__CONSOLE_PREFIX);
    else
        return NULL;
    for (const srv_console_asset *a = srv_console_assets; a->name; a++)
        if (strcmp(a->name, name) == 0)
            return a;
    return NULL;
}
