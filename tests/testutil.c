#include "testutil.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

char test_tmp_root[TEST_PATH_LEN];

int test_tmp_setup(const char *name)
{
    const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(test_tmp_root, sizeof test_tmp_root, "%s/genlab-test-%s-XXXXXX", base, name);
    return mkdtemp(test_tmp_root) ? 0 : -1;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    chmod(path, 0755); /* in case a test left it read-only */
    return remove(path);
}

int test_tmp_teardown(void)
{
    chmod(test_tmp_root, 0755);
    return nftw(test_tmp_root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

void test_path_printf(char *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, TEST_PATH_LEN, fmt, ap);
    va_end(ap);
    assert_true(n > 0 && n < TEST_PATH_LEN);
}

void test_make_dir(const char *name, char *dir)
{
    test_path_printf(dir, "%s/%s", test_tmp_root, name);
    assert_int_equal(mkdir(dir, 0755), 0);
}

void test_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (len) assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

uint8_t *test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long size = ftell(f);
    assert_true(size >= 0);
    rewind(f);
    uint8_t *buf = malloc((size_t)size + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    *len = (size_t)size;
    return buf;
}

/* The comparison behind both entry points: exactly one of ref_f, ref_d is set. */
static double check_close(const char *what, const float *got, const float *ref_f, const double *ref_d,
                          size_t n, double tol)
{
    double maxref = 0.0, maxdiff = 0.0;
    size_t worst = 0;
    for (size_t i = 0; i < n; i++) {
        double ref = ref_f ? ref_f[i] : ref_d[i];
        if (fabs(ref) > maxref) maxref = fabs(ref);
        double d = fabs((double)got[i] - ref);
        /* a NaN wins and stays: once maxdiff is NaN, no later element replaces it */
        if (isnan(d) ? !isnan(maxdiff) : d > maxdiff) {
            maxdiff = d;
            worst = i;
        }
    }
    double err = maxref > 0.0 ? maxdiff / maxref : maxdiff;
    if (getenv("GENLAB_TEST_VERBOSE"))
        fprintf(stderr, "  %-48s err %.2e (tol %.0e)  max abs %.2e\n", what, err, tol, maxdiff);
    if (!(err <= tol)) {
        double want = n ? (ref_f ? ref_f[worst] : ref_d[worst]) : 0.0;
        fprintf(stderr,
                "%s: normalised error %.3e > %.1e (worst element %zu of %zu: got %.9g, "
                "expected %.9g; max |expected| %.6g)\n",
                what, err, tol, worst, n, n ? (double)got[worst] : 0.0, want, maxref);
        fail_msg("%s differs from its reference", what);
    }
    return err;
}

double test_check_close(const char *what, const float *got, const float *ref, size_t n, double tol)
{
    return check_close(what, got, ref, NULL, n, tol);
}

double test_check_close_d(const char *what, const float *got, const double *ref, size_t n, double tol)
{
    return check_close(what, got, NULL, ref, n, tol);
}

float *test_falloc(size_t n)
{
    float *p = malloc((n ? n : 1) * sizeof *p);
    assert_non_null(p);
    return p;
}

double *test_dalloc(size_t n)
{
    double *p = calloc(n ? n : 1, sizeof *p);
    assert_non_null(p);
    return p;
}

void test_fill_uniform(Rng *r, float *p, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++) p[i] = lo + (hi - lo) * rng_uniform(r);
}

double test_dot(const float *a, const float *b, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}
