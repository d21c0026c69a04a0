/* fileio.h — atomic file writes: a temporary file in the target's
 * directory, fsync, rename over the target, fsync of the directory. A
 * failure at any point (or a crash) leaves the old file untouched and
 * removes the temporary. */
#ifndef GENLAB_FILEIO_H
#define GENLAB_FILEIO_H

#include <stdio.h>

#include "genlab/error.h"

typedef struct {
    FILE *f;
    char path[4096];
    char tmp[4096 + 16];
} AtomicFile;

/* Opens "<path>.tmp.XXXXXX" for writing; NULL with e filled on failure.
 * Messages do not repeat the path: callers prefix it. */
FILE *atomic_open(AtomicFile *af, const char *path, Err *e);
/* Flushes, fsyncs, closes and renames into place. On failure the
 * temporary is removed and e says why (a full disk, say). */
int atomic_commit(AtomicFile *af, Err *e);
/* Gives up: closes and removes the temporary. */
void atomic_abort(AtomicFile *af);

#endif
