#include "proto/erd_error.h"

#include <stdarg.h>
#include <stdio.h>

const char *erd_strerror(int err)
{
    switch (err) {
#define ERD__MSG(name, value, status, code, msg) case value: return msg;
    ERD_ERROR_TABLE(ERD__MSG)
#undef ERD__MSG
    }
    return "unknown error";
}

const char *erd_errcode(int err)
{
    switch (err) {
#define ERD__CODE(name, value, status, code, msg) case value: return code;
    ERD_ERROR_TABLE(ERD__CODE)
#undef ERD__CODE
    }
    return "internal_error";
}

int erd_http_status(int err)
{
    switch (err) {
#define ERD__STATUS(name, value, status, code, msg) case value: return status;
    ERD_ERROR_TABLE(ERD__STATUS)
#undef ERD__STATUS
    }
    return 500;
}

int erd_fail(erd_diag *diag, int err, const char *fmt, ...)
{
    if (diag) {
        va_list ap;
        va_start(ap, fmt);
        diag->code = err;
        vsnprintf(diag->msg, sizeof diag->msg, fmt, ap);
        va_end(ap);
    }
    return err;
}

const char *erd_diag_message(const erd_diag *diag, int err)
{
    if (diag && diag->code == err && diag->msg[0])
        return diag->msg;
    return erd_strerror(err);
}
