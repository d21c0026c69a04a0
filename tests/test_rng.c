/* rng: splitmix64 reference values, stream independence, distributions. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "genlab/rng.h"

/* splitmix64 seeded with 0: the reference implementation's first outputs. */
static void test_splitmix64_reference(void **state)
{
    (void)state;
    uint64_t s = 0;
    assert_true(splitmix64_next(&s) == 0xE220A8397B1DCDAFull);
    assert_true(splitmix64_next(&s) == 0x6E789E6AA1B965F4ull);
    assert_true(splitmix64_next(&s) == 0x06C45D188009454Full);
}

static void test_same_seed_same_stream(void **state)
{
    (void)state;
    Rng a, b;
    rng_seed(&a, 42, RNG_NOISE, 7);
    rng_seed(&b, 42, RNG_NOISE, 7);
    for (int i = 0; i < 1000; i++) assert_true(rng_u64(&a) == rng_u64(&b));
}

/* Neighbouring seeds, streams and counters must give unrelated sequences. */
static void test_streams_differ(void **state)
{
    (void)state;
    Rng base, other[3];
    rng_seed(&base, 42, RNG_NOISE, 7);
    rng_seed(&other[0], 43, RNG_NOISE, 7);
    rng_seed(&other[1], 42, RNG_DATA, 7);
    rng_seed(&other[2], 42, RNG_NOISE, 8);
    uint64_t x[64];
    for (int i = 0; i < 64; i++) x[i] = rng_u64(&base);
    for (int k = 0; k < 3; k++) {
        int same = 0;
        for (int i = 0; i < 64; i++) same += rng_u64(&other[k]) == x[i];
        assert_int_equal(same, 0);
    }
}

static void test_uniform_and_below(void **state)
{
    (void)state;
    Rng r;
    rng_seed(&r, 1, RNG_EVAL, 0);
    int counts[7] = {0};
    double sum = 0;
    const int n = 70000;
    for (int i = 0; i < n; i++) {
        float u = rng_uniform(&r);
        assert_true(u >= 0.0f && u < 1.0f);
        sum += u;
        uint64_t k = rng_below(&r, 7);
        assert_true(k < 7);
        counts[k]++;
    }
    assert_float_equal(sum / n, 0.5, 0.01);
    /* chi-square with 6 degrees of freedom: 22.5 is p ≈ 0.001 */
    double chi2 = 0;
    for (int k = 0; k < 7; k++) chi2 += pow(counts[k] - n / 7.0, 2) / (n / 7.0);
    assert_true(chi2 < 22.5);
}

static void test_normal_moments(void **state)
{
    (void)state;
    Rng r;
    rng_seed(&r, 3, RNG_SAMPLE, 0);
    const int n = 200000;
    double s1 = 0, s2 = 0, s4 = 0;
    for (int i = 0; i < n; i++) {
        double x = rng_normal(&r);
        s1 += x, s2 += x * x, s4 += x * x * x * x;
    }
    assert_float_equal(s1 / n, 0.0, 0.01);
    assert_float_equal(s2 / n, 1.0, 0.02);
    assert_float_equal(s4 / n, 3.0, 0.1); /* kurtosis of a Gaussian */
}

static void test_shuffle_is_permutation(void **state)
{
    (void)state;
    enum { N = 1000 };
    int32_t p[N];
    for (int i = 0; i < N; i++) p[i] = i;
    Rng r;
    rng_seed(&r, 5, RNG_DATA, 0);
    rng_shuffle(&r, p, N);
    char seen[N] = {0};
    int moved = 0;
    for (int i = 0; i < N; i++) {
        assert_true(p[i] >= 0 && p[i] < N && !seen[p[i]]);
        seen[p[i]] = 1;
        moved += p[i] != i;
    }
    assert_true(moved > N / 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_splitmix64_reference), cmocka_unit_test(test_same_seed_same_stream),
        cmocka_unit_test(test_streams_differ),       cmocka_unit_test(test_uniform_and_below),
        cmocka_unit_test(test_normal_moments),       cmocka_unit_test(test_shuffle_is_permutation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
