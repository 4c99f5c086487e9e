/* Fuzz target: Authorization header parsing and the per-class token rules.
 * The first byte picks the route class and which tokens are configured; the
 * rest is the header value.  Access may only be granted for a header that
 * carries an accepted token exactly, and no message may echo a token. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/http/srv_auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define RESOLVE "resolve-0123456789abcdef"
#define ADMIN "admin-0123456789abcdef"
#define METRICS "metrics-0123456789abcdef"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    uint8_t sel = data[0];
    srv_auth_class cls = (srv_auth_class)(sel & 3);
    srv_auth_tokens t = {(sel & 4) ? RESOLVE : "", (sel & 8) ? ADMIN : "", (sel & 16) ? METRICS : ""};
    bool absent = (sel & 32) != 0;
    char *hdr = malloc(size);
    if (!hdr)
        abort();
    memcpy(hdr, data + 1, size - 1);
    hdr[size - 1] = '\0'; /* headers reach the check NUL-terminated */

    erd_diag d = {0};
    int rc = srv_auth_check(cls, absent ? NULL : hdr, &t, &d);
    if (rc != ERD_OK && rc != ERD_EUNAUTHORIZED && rc != ERD_EFORBIDDEN)
        abort();
    if (rc < 0 && (strstr(d.msg, RESOLVE) || strstr(d.msg, ADMIN) || strstr(d.msg, METRICS)))
        abort();

    const char *tok;
    size_t len;
    int prc = srv_auth_parse_bearer(hdr, strlen(hdr), &tok, &len, &d);
    if (prc == ERD_OK) {
        if (len == 0 || tok < hdr || tok + len > hdr + strlen(hdr))
            abort();
        for (size_t i = 0; i < len; i++)
            if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/=", tok[i]))
                abort();
    } else if (prc != ERD_EUNAUTHORIZED) {
        abort();
    }

    /* Granting access needs a token the class accepts, byte for byte. */
    if (rc == ERD_OK && cls != SRV_AUTH_PUBLIC && !(cls == SRV_AUTH_RESOLVE && !t.resolve[0])) {
        bool good = prc == ERD_OK &&
                    ((t.admin[0] && len == strlen(ADMIN) && !memcmp(tok, ADMIN, len)) ||
                     (cls == SRV_AUTH_RESOLVE && len == strlen(RESOLVE) && !memcmp(tok, RESOLVE, len)) ||
                     (cls == SRV_AUTH_METRICS && t.metrics[0] && len == strlen(METRICS) &&
                      !memcmp(tok, METRICS, len)));
        if (!good || absent)
            abort();
    }
    if (rc == ERD_EFORBIDDEN && (cls == SRV_AUTH_PUBLIC || cls == SRV_AUTH_RESOLVE))
        abort();
    free(hdr);
    return 0;
}
