#include <string.h>

#include "proto/erd_error.h"
#include "tap.h"

int main(void)
{
    is_str(erd_errcode(ERD_OK), "ok", "OK has wire code ok");
    is_str(erd_errcode(ERD_ENOCATALOG), "unknown_catalog", "unknown catalog wire code");
    is_int(erd_http_status(ERD_ENOCATALOG), 404, "unknown catalog is 404");
    is_int(erd_http_status(ERD_EJSON), 400, "malformed JSON is 400");
    is_int(erd_http_status(ERD_ETOOLARGE), 413, "body too large is 413");
    is_int(erd_http_status(ERD_EMETHOD), 405, "wrong method is 405");
    is_int(erd_http_status(-9999), 500, "codes outside the table are 500");
    is_str(erd_errcode(-9999), "internal_error", "codes outside the table are internal_error");
    ok(strcmp(erd_strerror(-9999), "unknown error") == 0, "unknown code has a message");

    /* Every code in the table is distinct and negative but OK. */
    static const int codes[] = {
#define X(name, value, status, code, msg) value,
        ERD_ERROR_TABLE(X)
#undef X
    };
    size_t n = sizeof codes / sizeof codes[0];
    int distinct = 1;
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            if (codes[i] == codes[j])
                distinct = 0;
    ok(distinct, "error values are distinct");
    int signs = codes[0] == 0;
    for (size_t i = 1; i < n; i++)
        signs &= codes[i] < 0;
    ok(signs, "OK is 0 and every other value is negative");

    erd_diag d = {0};
    int rc = erd_fail(&d, ERD_EINVAL, "field %s bad", "k");
    is_int(rc, ERD_EINVAL, "erd_fail returns its code");
    is_str(erd_diag_message(&d, ERD_EINVAL), "field k bad", "diag carries the message");
    is_str(erd_diag_message(&d, ERD_EIO), erd_strerror(ERD_EIO),
           "a diag for another code falls back to the default text");
    is_int(erd_fail(NULL, ERD_EIO, "x"), ERD_EIO, "erd_fail accepts a NULL diag");
    return tap_done();
}
