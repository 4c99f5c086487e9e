/* The operator console: a page served by erd serve at / (and its assets
 * under /console/), compiled into the binary from server/http/console/ so it
 * works offline and from any install.  The page calls the public API with
 * the token the operator types in; the route itself is public. */
#ifndef SRV_CONSOLE_H
#define SRV_CONSOLE_H

#include <stddef.h>

typedef struct srv_console_asset {
    const char *name;         /* "index.html", "console.js", ... */
    const char *content_type;
    const unsigned char *data;
    size_t len;
} srv_console_asset;

/* Every asset, ended by a row whose name is NULL (generated at build time). */
extern const srv_console_asset srv_console_assets[];

/* The asset called name ("index.html", "console.js", ...), NULL when there
 * is none. */
const srv_console_asset *srv_console_find(const char *name);

#endif
