/* error.h — status codes and the error message every fallible call fills.
 *
 * Library functions never print or exit: they return an rg_status and write one
 * human-readable line into an rg_err the caller owns. The CLI prints that line
 * and turns the status into an exit code (bad input → 2). */
#ifndef RG_CORE_ERROR_H
#define RG_CORE_ERROR_H

#include <stdarg.h>

typedef enum rg_status {
    RG_OK = 0,
    RG_E_IO,          /* cannot open/read/write/map a file */
    RG_E_FORMAT,      /* the input is malformed (truncated, out of bounds, overflow) */
    RG_E_UNSUPPORTED, /* well-formed but not something ridge implements */
    RG_E_NOMEM,       /* an allocation failed */
    RG_E_INVALID,     /* the caller passed an invalid argument */
    RG_E_NOT_FOUND,   /* a looked-up key, tensor or token does not exist */
} rg_status;

typedef struct rg_err {
    rg_status status;
    char msg[512];
} rg_err;

/* Fill err (may be NULL) with a printf-style message; returns status so callers
 * can write `return rg_fail(err, RG_E_FORMAT, "...", ...)`. */
rg_status rg_fail(rg_err *err, rg_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefix an existing message, e.g. with the file name: "model.gguf: <msg>". */
void rg_err_prefix(rg_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

const char *rg_status_name(rg_status status);

#endif
