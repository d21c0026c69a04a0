/* testutil.h — what several C test programs share: a private temporary
 * directory, created before the tests and removed (with everything in it)
 * after, and small file helpers that fail the running cmocka test on
 * error. */
#ifndef GENLAB_TESTUTIL_H
#define GENLAB_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

#include "genlab/rng.h"

#define TEST_PATH_LEN 4096

/* The directory made by test_tmp_setup. */
extern char test_tmp_root[TEST_PATH_LEN];

/* mkdtemp of $TMPDIR (or /tmp)/genlab-test-<name>-XXXXXX; 0 or -1. */
int test_tmp_setup(const char *name);
/* Removes the directory and its contents (making it writable first, for
 * tests that took write permission away); 0 or -1. */
int test_tmp_teardown(void);

/* snprintf into a TEST_PATH_LEN buffer, failing the test rather than
 * truncating. */
void test_path_printf(char *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A fresh directory test_tmp_root/name per test, written into dir
 * (TEST_PATH_LEN), so tests never see each other's files. */
void test_make_dir(const char *name, char *dir);
/* Writes len bytes to path (creating or truncating it). */
void test_write_file(const char *path, const void *data, size_t len);
/* The whole file, malloc'd with one spare byte (so an empty file is a
 * valid buffer); its size in *len. */
uint8_t *test_read_file(const char *path, size_t *len);

/* Normalised error max|got − ref| / max|ref| over n elements (ggml's
 * style; a NaN counts as the worst element). Above tol the test fails,
 * printing the worst element; with GENLAB_TEST_VERBOSE set every
 * comparison prints its error. Returns the error. */
double test_check_close(const char *what, const float *got, const float *ref, size_t n, double tol);
double test_check_close_d(const char *what, const float *got, const double *ref, size_t n, double tol);

/* n floats (malloc'd; at least one), failing the test when out of memory. */
float *test_falloc(size_t n);
/* n doubles, zeroed (at least one), failing the test when out of memory. */
double *test_dalloc(size_t n);
/* p[i] uniform in [lo, hi) from r. */
void test_fill_uniform(Rng *r, float *p, size_t n, float lo, float hi);
/* Σ a[i]·b[i] in double: the scalar L = Σ wᵢ·outᵢ that finite-difference
 * checks probe. */
double test_dot(const float *a, const float *b, size_t n);

#endif
