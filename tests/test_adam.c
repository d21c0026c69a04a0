/* test_adam.c — Adam (src/adam.c) against a double-precision transcription
 * of torch.optim.Adam's update (defaults, no weight decay, amsgrad off):
 *
 *   m ← β₁ m + (1 − β₁) g
 *   v ← β₂ v + (1 − β₂) g²
 *   p ← p − lr/(1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + ε)
 *
 * GENLAB_TEST_VERBOSE=1 prints the measured errors.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "genlab/adam.h"
#include "genlab/rng.h"

typedef struct {
    double lr, b1, b2, eps;
    int t;
    double *m, *v, *p;
    size_t n;
} RefAdam;

static void ref_init(RefAdam *r, size_t n, double lr, const float *p0)
{
    *r = (RefAdam){.lr = lr, .b1 = 0.9, .b2 = 0.999, .eps = 1e-8, .n = n};
    r->m = calloc(n, sizeof *r->m);
    r->v = calloc(n, sizeof *r->v);
    r->p = malloc(n * sizeof *r->p);
    assert_true(r->m && r->v && r->p);
    for (size_t i = 0; i < n; i++) r->p[i] = p0[i];
}

static void ref_free(RefAdam *r) { free(r->m), free(r->v), free(r->p); }

/* torch/optim/adam.py, _single_tensor_adam, in double, with torch's
 * (Python float) hyper-parameters 0.9, 0.999 and 1e-8. */
static void ref_step(RefAdam *r, const float *g)
{
    r->t++;
    const double bc1 = 1.0 - pow(r->b1, r->t), bc2 = 1.0 - pow(r->b2, r->t);
    const double step = r->lr / bc1, bc2_sqrt = sqrt(bc2);
    for (size_t i = 0; i < r->n; i++) {
        r->m[i] = r->b1 * r->m[i] + (1.0 - r->b1) * g[i];
        r->v[i] = r->b2 * r->v[i] + (1.0 - r->b2) * (double)g[i] * g[i];
        r->p[i] -= step * r->m[i] / (sqrt(r->v[i]) / bc2_sqrt + r->eps);
    }
}

static void test_init_defaults(void **state)
{
    (void)state;
    Adam a;
    assert_int_equal(adam_init(&a, 10, 1e-3f), 0);
    assert_true(a.lr == 1e-3f);
    assert_true(a.beta1 == 0.9 && a.beta2 == 0.999 && a.eps == 1e-8f);
    assert_int_equal(a.t, 0);
    assert_int_equal(a.n, 10);
    for (int i = 0; i < 10; i++) assert_true(a.m[i] == 0.0f && a.v[i] == 0.0f);
    adam_free(&a);
    assert_null(a.m);
    assert_null(a.v);
    adam_free(&a); /* twice is harmless */
    /* an empty parameter set */
    assert_int_equal(adam_init(&a, 0, 1e-3f), 0);
    adam_step(&a, NULL, NULL);
    assert_int_equal(a.t, 1);
    adam_free(&a);
}

/* Step 1 from zero moments: m̂ = g and v̂ = g², so every parameter moves by
 * lr·g/(|g| + ε) ≈ lr·sign(g), whatever |g| (for |g| ≫ ε). */
static void test_first_step_is_sign(void **state)
{
    (void)state;
    enum { N = 1000 };
    Rng r;
    rng_seed(&r, 1, RNG_EVAL, 100);
    float p[N], p0[N], g[N];
    for (int i = 0; i < N; i++) {
        p0[i] = p[i] = 2.0f * rng_uniform(&r) - 1.0f;
        /* magnitudes from 1e-4 to 1e4 */
        float mag = powf(10.0f, -4.0f + 8.0f * rng_uniform(&r));
        g[i] = rng_uniform(&r) < 0.5f ? -mag : mag;
    }
    const float lrs[] = {1e-3f, 1e-2f, 1e-4f};
    for (int k = 0; k < 3; k++) {
        Adam a;
        memcpy(p, p0, sizeof p);
        assert_int_equal(adam_init(&a, N, lrs[k]), 0);
        adam_step(&a, p, g);
        assert_int_equal(a.t, 1);
        for (int i = 0; i < N; i++) {
            double moved = (double)p0[i] - p[i];
            double want = lrs[k] * (g[i] > 0 ? 1.0 : -1.0);
            /* ε/|g| ≤ 1e-4 of lr, plus the rounding of p (|p| ≤ 1) */
            double tol = 1e-4 * lrs[k] + 1.2e-7;
            if (!(fabs(moved - want) <= tol))
                fail_msg("lr %g, g = %g: moved %.9g, want %.9g", (double)lrs[k], (double)g[i], moved, want);
        }
        adam_free(&a);
    }
}

/* A zero gradient at step 1 leaves the parameters exactly where they were
 * (m = v = 0: the update is 0/(0 + ε) = 0); so does a zero gradient later
 * for parameters that have never had one. */
static void test_zero_gradient(void **state)
{
    (void)state;
    enum { N = 64 };
    Rng r;
    rng_seed(&r, 2, RNG_EVAL, 100);
    float p[N], p0[N], g[N] = {0};
    for (int i = 0; i < N; i++) p0[i] = p[i] = 4.0f * rng_uniform(&r) - 2.0f;
    Adam a;
    assert_int_equal(adam_init(&a, N, 1e-3f), 0);
    adam_step(&a, p, g);
    assert_memory_equal(p, p0, sizeof p);
    /* half the parameters get gradients from now on, the rest never do */
    for (int s = 0; s < 5; s++) {
        for (int i = 0; i < N; i += 2) g[i] = 2.0f * rng_uniform(&r) - 1.0f;
        adam_step(&a, p, g);
    }
    for (int i = 1; i < N; i += 2) assert_true(p[i] == p0[i]);
    for (int i = 0; i < N; i += 2) assert_true(p[i] != p0[i]);
    adam_free(&a);
}

/* Many steps with varied gradients (signs flipping, magnitudes from 1e-10,
 * below ε, to 1e3, zeros in between) against the double reference.
 *
 * Tolerance: the parameters move by about lr per step; float32 rounding of
 * m, v and the update is ~1e-7 relative per step, and the rounding of p
 * itself (|p| ≤ 1) up to 6e-8 absolute per step, so after 25 steps the
 * float result stays within ~1e-6 of the double one (measured: ≤ 3.1e-7
 * for lr 1e-2, 1e-3 and 1e-4). 2e-6 absolute is 1/50 of a single step at
 * lr = 1e-4: a wrong bias correction, ε in the wrong place or a swapped β
 * are all off by far more. */
static void run_against_reference(float lr, int steps, double tol)
{
    enum { N = 512 };
    Rng r;
    rng_seed(&r, 3, RNG_EVAL, (uint64_t)steps);
    float p[N], g[N];
    for (int i = 0; i < N; i++) p[i] = 2.0f * rng_uniform(&r) - 1.0f;
    float scale[N];
    for (int i = 0; i < N; i++) scale[i] = powf(10.0f, -10.0f + 13.0f * rng_uniform(&r));
    Adam a;
    RefAdam ref;
    assert_int_equal(adam_init(&a, N, lr), 0);
    ref_init(&ref, N, (double)lr, p);
    for (int s = 1; s <= steps; s++) {
        for (int i = 0; i < N; i++) {
            float u = rng_uniform(&r);
            /* mostly a consistent direction per parameter, sometimes flipped,
             * sometimes zero */
            g[i] = u < 0.1f ? 0.0f : (u < 0.3f ? -1.0f : 1.0f) * scale[i] * (0.5f + rng_uniform(&r));
            if (i % 7 == 0) g[i] = -g[i];
        }
        adam_step(&a, p, g);
        ref_step(&ref, g);
        double worst = 0.0;
        int wi = 0;
        for (int i = 0; i < N; i++) {
            double d = fabs((double)p[i] - ref.p[i]);
            if (!(d <= worst)) worst = d, wi = i;
        }
        if (!(worst <= tol))
            fail_msg("lr %g step %d: param %d = %.9g, reference %.9g (|diff| %.3g > %.1g; "
                     "gradient scale %.3g)",
                     (double)lr, s, wi, (double)p[wi], ref.p[wi], worst, tol, (double)scale[wi]);
        /* the moments too, relative to the largest, per step: genlab
         * multiplies by float(1 − β) computed in double, as torch does. */
        double mmax = 0, vmax = 0, dm = 0, dv = 0;
        for (int i = 0; i < N; i++) {
            mmax = fmax(mmax, fabs(ref.m[i])), vmax = fmax(vmax, ref.v[i]);
            dm = fmax(dm, fabs(a.m[i] - ref.m[i])), dv = fmax(dv, fabs(a.v[i] - ref.v[i]));
        }
        if (!(dm <= 1e-5 * mmax && dv <= 1e-5 * vmax))
            fail_msg("step %d: moments differ from the reference (m %.3g of %.3g, v %.3g of %.3g)", s, dm,
                     mmax, dv, vmax);
        assert_int_equal(a.t, s);
    }
    if (getenv("GENLAB_TEST_VERBOSE")) {
        double worst = 0;
        for (int i = 0; i < N; i++) worst = fmax(worst, fabs((double)p[i] - ref.p[i]));
        fprintf(stderr, "  lr %g, %d steps: max |p − ref| %.3g (tol %.0g)\n", (double)lr, steps, worst, tol);
    }
    adam_free(&a);
    ref_free(&ref);
}

static void test_against_reference(void **state)
{
    (void)state;
    run_against_reference(1e-3f, 25, 2e-6);
    run_against_reference(1e-2f, 25, 2e-6);
    run_against_reference(1e-4f, 10, 2e-6);
}

/* Hand-computed second step, to pin the bias corrections independently of
 * the reference above: g₁ = 1, g₂ = −1 for a parameter starting at 0, lr 1:
 *   m₁ = 0.1, v₁ = 0.001; p₁ = −0.1/0.1 / (√0.001/√0.001 + ε) = −1
 *   m₂ = 0.09 − 0.1 = −0.01, v₂ = 0.000999 + 0.001 = 0.001999
 *   p₂ = −1 + 1/0.19 · 0.01 / (√0.001999/√0.001999 + ε)
 *      = −1 + 0.01/0.19 = −0.947368… */
static void test_two_steps_by_hand(void **state)
{
    (void)state;
    Adam a;
    float p = 0.0f, g = 1.0f;
    assert_int_equal(adam_init(&a, 1, 1.0f), 0);
    adam_step(&a, &p, &g);
    assert_true(fabs(p - -1.0) <= 1e-6);
    g = -1.0f;
    adam_step(&a, &p, &g);
    assert_true(fabs(p - (-1.0 + 0.01 / 0.19)) <= 1e-6);
    assert_true(fabsf(a.m[0] + 0.01f) <= 1e-7f);
    assert_true(fabsf(a.v[0] - 0.001999f) <= 1e-9f);
    adam_free(&a);
    /* ε is added to the bias-corrected √v̂ (torch), not to √v: with
     * g = 1e-8 = ε at step 1 the move is lr·g/(|g| + ε) = lr/2 */
    assert_int_equal(adam_init(&a, 1, 1.0f), 0);
    p = 0.0f, g = 1e-8f;
    adam_step(&a, &p, &g);
    assert_true(fabs(p - -0.5) <= 1e-5);
    adam_free(&a);
}

/* adam_begin_step once, then adam_update over disjoint ranges (as the
 * training threads do) is the same computation as adam_step, bit for bit. */
static void test_split_update(void **state)
{
    (void)state;
    enum { N = 1001, STEPS = 4 };
    Rng r;
    rng_seed(&r, 4, RNG_EVAL, 100);
    float *p1 = malloc(N * sizeof *p1), *p2 = malloc(N * sizeof *p2), *g = malloc(N * sizeof *g);
    assert_true(p1 && p2 && g);
    for (int i = 0; i < N; i++) p1[i] = p2[i] = 2.0f * rng_uniform(&r) - 1.0f;
    Adam a, b;
    assert_int_equal(adam_init(&a, N, 1e-3f), 0);
    assert_int_equal(adam_init(&b, N, 1e-3f), 0);
    const size_t cuts[] = {0, 1, 333, 334, 700, N};
    for (int s = 0; s < STEPS; s++) {
        for (int i = 0; i < N; i++) g[i] = 2.0f * rng_uniform(&r) - 1.0f;
        adam_step(&a, p1, g);
        adam_begin_step(&b);
        /* in a scrambled order, one range empty */
        const int order[] = {3, 0, 4, 1, 2};
        for (int k = 0; k < 5; k++) adam_update(&b, p2, g, cuts[order[k]], cuts[order[k] + 1]);
        assert_int_equal(a.t, b.t);
        assert_memory_equal(p1, p2, N * sizeof *p1);
        assert_memory_equal(a.m, b.m, N * sizeof *a.m);
        assert_memory_equal(a.v, b.v, N * sizeof *a.v);
    }
    adam_free(&a);
    adam_free(&b);
    free(p1), free(p2), free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_defaults),
        cmocka_unit_test(test_first_step_is_sign),
        cmocka_unit_test(test_zero_gradient),
        cmocka_unit_test(test_against_reference),
        cmocka_unit_test(test_two_steps_by_hand),
        cmocka_unit_test(test_split_update),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
