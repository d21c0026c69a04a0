#include "genlab/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

FILE *atomic_open(AtomicFile *af, const char *path, Err *e)
{
    memset(af, 0, sizeof *af);
    if (strlen(path) >= sizeof af->path) {
        err_set(e, "path too long");
        return NULL;
    }
    snprintf(af->path, sizeof af->path, "%s", path);
    snprintf(af->tmp, sizeof af->tmp, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(af->tmp);
    if (fd < 0) {
        err_set(e, "cannot create a temporary file next to it: %s", strerror(errno));
        return NULL;
    }
    /* mkstemp makes the file private (0600); outputs are ordinary 0644 files. */
    if (fchmod(fd, 0644) != 0 || !(af->f = fdopen(fd, "wb"))) {
        err_set(e, "cannot prepare the temporary file: %s", strerror(errno));
        close(fd);
        unlink(af->tmp);
        return NULL;
    }
    return af->f;
}

/* fsync of the directory makes the rename itself durable. */
static void fsync_parent_dir(const char *path)
{
    char copy[sizeof ((AtomicFile *)0)->path];
    snprintf(copy, sizeof copy, "%s", path);
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

int atomic_commit(AtomicFile *af, Err *e)
{
    int failed = fflush(af->f) != 0 || ferror(af->f) || fsync(fileno(af->f)) != 0;
    int saved = errno;
    if (fclose(af->f) != 0 && !failed) failed = 1, saved = errno;
    af->f = NULL;
    if (failed) {
        unlink(af->tmp);
        return err_set(e, "write failed: %s", strerror(saved));
    }
    if (rename(af->tmp, af->path) != 0) {
        saved = errno;
        unlink(af->tmp);
        return err_set(e, "cannot rename the temporary file over it: %s", strerror(saved));
    }
    fsync_parent_dir(af->path);
    return 0;
}

void atomic_abort(AtomicFile *af)
{
    if (af->f) fclose(af->f);
    af->f = NULL;
    unlink(af->tmp);
}
