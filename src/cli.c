#include "genlab/cli.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <jansson.h>
#include <stdint.h>

#include "genlab/blas.h"
#include "genlab/dataset.h"
#include "genlab/image.h"

int cli_fail(const char *cmd, const Err *e)
{
    fprintf(stderr, "genlab %s: %s\n", cmd, e->msg);
    return 1;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "genlab %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'genlab %s --help'.\n", cmd);
    return 2;
}

int cli_i64(const char *cmd, const char *opt, const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        cli_usage_error(cmd, "--%s: expected an integer in %lld..%lld, got \"%s\"", opt,
                        (long long)lo, (long long)hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_int(const char *cmd, const char *opt, const char *s, long lo, long hi, int *out)
{
    int64_t v;
    if (cli_i64(cmd, opt, s, lo, hi, &v)) return -1;
    *out = (int)v;
    return 0;
}

int cli_u64(const char *cmd, const char *opt, const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-') {
        cli_usage_error(cmd, "--%s: expected a non-negative integer, got \"%s\"", opt, s);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_float(const char *cmd, const char *opt, const char *s, double lo, double hi, float *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi) {
        cli_usage_error(cmd, "--%s: expected a number in %g..%g, got \"%s\"", opt, lo, hi, s);
        return -1;
    }
    *out = (float)v;
    return 0;
}

void cli_set_threads(int threads)
{
    if (threads > 0) blas_set_threads(threads);
}

void cli_print_json(json_t *obj)
{
    char *s = json_dumps(obj, JSON_COMPACT | JSON_REAL_PRECISION(9));
    if (s) puts(s);
    free(s);
    json_decref(obj);
}

/* Usage error (-1) when the output's extension names no image format. */
int cli_check_image_name(const char *cmd, const char *out)
{
    if (image_format_from_name(out) != IMG_UNKNOWN) return 0;
    cli_usage_error(cmd, "--out %s: unknown image format (use .png, .pgm or .idx)", out);
    return -1;
}

/* Writes images as one grid file, reporting failure in CLI style. */
int cli_write_grid(const char *cmd, const char *path, const float *imgs, int n, int cols)
{
    Err e;
    uint8_t *bytes = malloc((size_t)n * MNIST_PIXELS);
    if (!bytes) return err_set(&e, "out of memory"), cli_fail(cmd, &e);
    image_to_bytes(imgs, (int64_t)n * MNIST_PIXELS, bytes);
    int rc = image_write(path, bytes, n, MNIST_SIDE, cols, &e);
    free(bytes);
    if (rc) return cli_fail(cmd, &e);
    fprintf(stderr, "wrote %s\n", path);
    return 0;
}

/* ------------------------------------------------------------- Ctrl-C */

static atomic_int interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    atomic_store(&interrupted, 1);
    /* A second Ctrl-C kills at once; saves are atomic, the old file stays intact. */
    signal(SIGINT, SIG_DFL);
}

atomic_int *cli_catch_interrupt(void)
{
    atomic_store(&interrupted, 0);
    struct sigaction sa = {.sa_handler = on_sigint};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    return &interrupted;
}

void cli_release_interrupt(void) { signal(SIGINT, SIG_DFL); }
