/* cli.h — the headless commands. Each takes the arguments after its name
 * (argv[0] is the command name) and returns the process exit status:
 * 0 success, 1 failure (one line on stderr), 2 usage error, 130 interrupted. */
#ifndef GENLAB_CLI_H
#define GENLAB_CLI_H

#include <stdatomic.h>
#include <stdint.h>

#include "genlab/error.h"

int cmd_info(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_recon(int argc, char **argv);
int cmd_sample(int argc, char **argv);
int cmd_encode(int argc, char **argv);
int cmd_ddpm(int argc, char **argv);

/* ---- shared by the commands (cli.c) ---- */

/* Strict number parsing for option values; on failure prints
 * "genlab CMD: --OPT: ..." and returns -1. */
int cli_int(const char *cmd, const char *opt, const char *s, long lo, long hi, int *out);
int cli_i64(const char *cmd, const char *opt, const char *s, int64_t lo, int64_t hi, int64_t *out);
int cli_u64(const char *cmd, const char *opt, const char *s, uint64_t *out);
int cli_float(const char *cmd, const char *opt, const char *s, double lo, double hi, float *out);

/* Prints "genlab CMD: message" to stderr and returns 1. */
int cli_fail(const char *cmd, const Err *e);
/* Prints "genlab CMD: <usage error>\nTry 'genlab CMD --help'." and returns 2. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* getopt_long over the arguments after the command name ("h" = --help). */
#define FOR_EACH_OPT(c, argc, argv, longopts)                                                  \
    for (optind = 1, opterr = 1; ((c) = getopt_long((argc), (argv), "h", (longopts), NULL)) != -1;)

struct json_t;
/* Prints a JSON value as one compact line on stdout and releases it. */
void cli_print_json(struct json_t *obj);
/* Usage error (-1, message printed) when `out`'s extension names no image
 * format (.png, .pgm, .idx); 0 otherwise. */
int cli_check_image_name(const char *cmd, const char *out);
/* Writes n 28×28 images (floats in [0, 1]) as one grid file with `cols`
 * columns; prints "wrote PATH" to stderr, or the error (returns 1). */
int cli_write_grid(const char *cmd, const char *path, const float *imgs, int n, int cols);

/* Ctrl-C during a long command: the first sets the returned flag (a
 * trainer's stop flag, so it saves and stops), a second kills at once.
 * cli_release_interrupt restores the default; the flag keeps its value. */
atomic_int *cli_catch_interrupt(void);
void cli_release_interrupt(void);

/* Applies --threads (0 = leave OpenBLAS's default). */
void cli_set_threads(int threads);

#endif
