/* error.h — one-line error messages passed up the call chain.
 *
 * Every fallible function takes an `Err *` (which may be NULL) and returns
 * 0 on success, -1 on failure after filling it. The message is one line,
 * says what is wrong and, where it helps, what to do. Callers at the top
 * (CLI, TUI) print it; lower layers never print. */
#ifndef GENLAB_ERROR_H
#define GENLAB_ERROR_H

#include <stddef.h>

typedef struct {
    char msg[512];
} Err;

/* printf-style; a NULL `e` is ignored. Always returns -1 so that
 * `return err_set(e, "...")` reads naturally. */
int err_set(Err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prefix an existing message: "context: old message". Returns -1. */
int err_prefix(Err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
