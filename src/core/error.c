/* error.c — filling rg_err messages. */
#include "core/error.h"

#include <stdio.h>
#include <string.h>

rg_status rg_fail(rg_err *err, rg_status status, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->status = status;
    }
    return status;
}

void rg_err_prefix(rg_err *err, const char *fmt, ...) {
    if (!err) return;
    char old[sizeof err->msg];
    memcpy(old, err->msg, sizeof old);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n + 3 > sizeof err->msg) return; /* no room left for the old text */
    size_t room = sizeof err->msg - (size_t)n - 3; /* ": " and the NUL */
    memcpy(err->msg + n, ": ", 2);
    size_t len = strnlen(old, room);
    memcpy(err->msg + n + 2, old, len);
    err->msg[n + 2 + len] = 0;
}

const char *rg_status_name(rg_status status) {
    switch (status) {
    case RG_OK: return "ok";
    case RG_E_IO: return "I/O error";
    case RG_E_FORMAT: return "malformed input";
    case RG_E_UNSUPPORTED: return "unsupported";
    case RG_E_NOMEM: return "out of memory";
    case RG_E_INVALID: return "invalid argument";
    case RG_E_NOT_FOUND: return "not found";
    }
    return "unknown status";
}
