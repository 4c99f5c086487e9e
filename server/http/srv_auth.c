#include "server/http/srv_auth.h"

#include <string.h>

static bool srv__b64token_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~' || c == '+' || c == '/' || c == '=';
}

int srv_auth_parse_bearer(const char *header, size_t len, const char **ret_token, size_t *ret_len,
                          erd_diag *diag)
{
    static const char scheme[] = "bearer";
    if (!header || len == 0)
        return erd_fail(diag, ERD_EUNAUTHORIZED, "missing bearer token");
    if (len > SRV_AUTH_MAX_HEADER)
        return erd_fail(diag, ERD_EUNAUTHORIZED, "Authorization header too long");
    size_t i = 0;
    for (; i < sizeof scheme - 1; i++) {
        if (i >= len)
            return erd_fail(diag, ERD_EUNAUTHORIZED, "use Authorization: Bearer TOKEN");
        unsigned char c = (unsigned char)header[i];
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c - 'A' + 'a');
        if (c != (unsigned char)scheme[i])
            return erd_fail(diag, ERD_EUNAUTHORIZED, "use Authorization: Bearer TOKEN");
    }
    size_t sp = i;
    while (i < len && (header[i] == ' ' || header[i] == '\t'))
        i++;
    if (i == sp)
        return erd_fail(diag, ERD_EUNAUTHORIZED, "use Authorization: Bearer TOKEN");
    size_t start = i;
    while (i < len && srv__b64token_char((unsigned char)header[i]))
        i++;
    size_t end = i;
    while (i < len && (header[i] == ' ' || header[i] == '\t'))
        i++;
    if (end == start)
        return erd_fail(diag, ERD_EUNAUTHORIZED, "missing bearer token");
    if (i != len)
        return erd_fail(diag, ERD_EUNAUTHORIZED, "bearer token holds characters a token cannot");
    *ret_token = header + start;
    *ret_len = end - start;
    return ERD_OK;
}

bool srv_auth_token_equal(const char *given, size_t given_len, const char *expected)
{
    size_t n = expected ? strlen(expected) : 0;
    if (n == 0)
        return false;
    /* No early exit: every byte of the expected token is visited whatever
     * was given.  The only branch depends on the caller's own length. */
    volatile unsigned char acc = (unsigned char)(given_len != n);
    for (size_t i = 0; i < n; i++) {
        unsigned char g = i < given_len ? (unsigned char)given[i] : 0;
        acc = (unsigned char)(acc | (g ^ (unsigned char)expected[i]));
    }
    return acc == 0;
}

const char *srv_auth_class_name(srv_auth_class cls)
{
    switch (cls) {
    case SRV_AUTH_PUBLIC: return "public";
    case SRV_AUTH_RESOLVE: return "resolve";
    case SRV_AUTH_METRICS: return "metrics";
    case SRV_AUTH_ADMIN: return "admin";
    }
    return "unknown";
}

static bool srv__set(const char *t)
{
    return t && t[0];
}

int srv_auth_check(srv_auth_class cls, const char *authorization, const srv_auth_tokens *tokens,
                   erd_diag *diag)
{
    const char *a = NULL, *b = NULL; /* the tokens this class accepts */
    switch (cls) {
    case SRV_AUTH_PUBLIC:
        return ERD_OK;
    case SRV_AUTH_RESOLVE:
        if (!srv__set(tokens->resolve))
            return ERD_OK;
        a = tokens->resolve;
        b = tokens->admin;
        break;
    case SRV_AUTH_METRICS:
        a = tokens->metrics;
        b = tokens->admin;
        if (!srv__set(a) && !srv__set(b))
            return erd_fail(diag, ERD_EFORBIDDEN,
                            "metrics are disabled: configure metrics_token or admin_token");
        break;
    case SRV_AUTH_ADMIN:
        a = tokens->admin;
        if (!srv__set(a))
            return erd_fail(diag, ERD_EFORBIDDEN, "the admin API is disabled: configure admin_token");
        break;
    default:
        return erd_fail(diag, ERD_EFORBIDDEN, "route has no access class");
    }
    const char *tok;
    size_t tok_len;
    size_t alen = authorization ? strnlen(authorization, SRV_AUTH_MAX_HEADER + 1) : 0;
    int rc = srv_auth_parse_bearer(authorization, alen, &tok, &tok_len, diag);
    if (rc < 0)
        return rc;
    /* Both candidates are always compared, so which one matched (or that
     * the second exists) does not show in the timing. */
    bool ok_a = srv_auth_token_equal(tok, tok_len, a);
    bool ok_b = srv_auth_token_equal(tok, tok_len, b);
    if (ok_a | ok_b)
        return ERD_OK;
    return erd_fail(diag, ERD_EUNAUTHORIZED, "invalid bearer token");
}
