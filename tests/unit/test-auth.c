/* Bearer-token parsing, constant-time comparison and the per-class rules. */
#include <string.h>

#include "server/http/srv_auth.h"
#include "tap.h"

#define ADMIN "admin-0123456789abcdef"
#define RESOLVE "resolve-0123456789abcdef"
#define METRICS "metrics-0123456789abcdef"

static int check(srv_auth_class cls, const char *hdr, const char *resolve, const char *admin,
                 const char *metrics)
{
    srv_auth_tokens t = {resolve, admin, metrics};
    erd_diag d = {0};
    int rc = srv_auth_check(cls, hdr, &t, &d);
    /* No message may ever echo a token back. */
    if (rc < 0 && ((admin[0] && strstr(d.msg, admin)) || (resolve[0] && strstr(d.msg, resolve)) ||
                   (metrics[0] && strstr(d.msg, metrics))))
        return 1;
    return rc;
}

int main(void)
{
    const char *tok;
    size_t len;
    erd_diag d = {0};

    static const char *good[] = {"Bearer abc", "bearer abc", "BEARER   abc  ", "Bearer\tabc",
                                 "Bearer a-b.c_d~e+f/g=="};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        is_int(srv_auth_parse_bearer(good[i], strlen(good[i]), &tok, &len, &d), ERD_OK,
               "parses \"%s\"", good[i]);
    is_int(srv_auth_parse_bearer("Bearer  tok  ", 13, &tok, &len, &d), ERD_OK, "trailing spaces");
    ok(len == 3 && strncmp(tok, "tok", 3) == 0, "token isolated from the spaces");

    static const char *bad[] = {"", "Bearer", "Bearer ", "Basic abc", "Bearerabc", "Bearer a b",
                                "Bearer a\"b", "Bearer a,b", "Bear abc", " Bearer abc", "Bearer \xc3\xa9"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        is_int(srv_auth_parse_bearer(bad[i], strlen(bad[i]), &tok, &len, &d), ERD_EUNAUTHORIZED,
               "refuses \"%s\"", bad[i]);
    is_int(srv_auth_parse_bearer(NULL, 0, &tok, &len, &d), ERD_EUNAUTHORIZED, "refuses no header");
    char huge[SRV_AUTH_MAX_HEADER + 16];
    memset(huge, 'a', sizeof huge - 1);
    memcpy(huge, "Bearer ", 7);
    huge[sizeof huge - 1] = '\0';
    is_int(srv_auth_parse_bearer(huge, strlen(huge), &tok, &len, &d), ERD_EUNAUTHORIZED,
           "refuses an over-long header");

    ok(srv_auth_token_equal("secret", 6, "secret"), "equal tokens");
    ok(!srv_auth_token_equal("secreT", 6, "secret"), "last byte differs");
    ok(!srv_auth_token_equal("secre", 5, "secret"), "prefix is not equal");
    ok(!srv_auth_token_equal("secrets", 7, "secret"), "extension is not equal");
    ok(!srv_auth_token_equal("", 0, "secret"), "empty given");
    ok(!srv_auth_token_equal(NULL, 0, "secret"), "NULL given");
    ok(!srv_auth_token_equal("", 0, ""), "nothing configured never matches");
    ok(!srv_auth_token_equal("x", 1, NULL), "NULL expected never matches");
    ok(!srv_auth_token_equal("secret\0x", 8, "secret"), "embedded NUL is not equal");

    /* public */
    is_int(check(SRV_AUTH_PUBLIC, NULL, "", "", ""), ERD_OK, "public needs nothing");
    is_int(check(SRV_AUTH_PUBLIC, "Bearer nonsense", RESOLVE, ADMIN, ""), ERD_OK,
           "public ignores a wrong token");
    /* resolve */
    is_int(check(SRV_AUTH_RESOLVE, NULL, "", ADMIN, ""), ERD_OK, "resolve open without resolve_token");
    is_int(check(SRV_AUTH_RESOLVE, NULL, RESOLVE, "", ""), ERD_EUNAUTHORIZED, "resolve: missing token");
    is_int(check(SRV_AUTH_RESOLVE, "Bearer wrong-0123456789abcdef", RESOLVE, "", ""), ERD_EUNAUTHORIZED,
           "resolve: wrong token");
    is_int(check(SRV_AUTH_RESOLVE, "Bearer " RESOLVE, RESOLVE, "", ""), ERD_OK, "resolve: right token");
    is_int(check(SRV_AUTH_RESOLVE, "Bearer " ADMIN, RESOLVE, ADMIN, ""), ERD_OK,
           "resolve: admin token accepted");
    is_int(check(SRV_AUTH_RESOLVE, "Bearer " METRICS, RESOLVE, ADMIN, METRICS), ERD_EUNAUTHORIZED,
           "resolve: metrics token refused");
    /* metrics */
    is_int(check(SRV_AUTH_METRICS, "Bearer " METRICS, "", "", ""), ERD_EFORBIDDEN,
           "metrics: 403 when no token is configured");
    is_int(check(SRV_AUTH_METRICS, NULL, "", ADMIN, ""), ERD_EUNAUTHORIZED, "metrics: missing token");
    is_int(check(SRV_AUTH_METRICS, "Bearer " ADMIN, "", ADMIN, METRICS), ERD_OK, "metrics: admin token");
    is_int(check(SRV_AUTH_METRICS, "Bearer " METRICS, "", ADMIN, METRICS), ERD_OK, "metrics: metrics token");
    is_int(check(SRV_AUTH_METRICS, "Bearer " METRICS, "", "", METRICS), ERD_OK,
           "metrics: metrics token alone suffices");
    is_int(check(SRV_AUTH_METRICS, "Bearer " RESOLVE, RESOLVE, ADMIN, METRICS), ERD_EUNAUTHORIZED,
           "metrics: resolve token refused");
    /* admin */
    is_int(check(SRV_AUTH_ADMIN, "Bearer " ADMIN, "", "", ""), ERD_EFORBIDDEN,
           "admin: 403 when admin_token is not configured");
    is_int(check(SRV_AUTH_ADMIN, "Bearer " METRICS, "", "", METRICS), ERD_EFORBIDDEN,
           "admin: a metrics token does not enable it");
    is_int(check(SRV_AUTH_ADMIN, NULL, "", ADMIN, ""), ERD_EUNAUTHORIZED, "admin: missing token");
    is_int(check(SRV_AUTH_ADMIN, "Basic YWRtaW46YWRtaW4=", "", ADMIN, ""), ERD_EUNAUTHORIZED,
           "admin: Basic refused");
    is_int(check(SRV_AUTH_ADMIN, "Bearer " METRICS, "", ADMIN, METRICS), ERD_EUNAUTHORIZED,
           "admin: metrics token refused");
    is_int(check(SRV_AUTH_ADMIN, "Bearer " RESOLVE, RESOLVE, ADMIN, ""), ERD_EUNAUTHORIZED,
           "admin: resolve token refused");
    is_int(check(SRV_AUTH_ADMIN, "Bearer " ADMIN, "", ADMIN, ""), ERD_OK, "admin: right token");
    is_int(check(SRV_AUTH_ADMIN, "Bearer " ADMIN "x", "", ADMIN, ""), ERD_EUNAUTHORIZED,
           "admin: token plus a byte refused");
    is_str(srv_auth_class_name(SRV_AUTH_ADMIN), "admin", "class names");
    return tap_done();
}
