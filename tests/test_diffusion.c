/* test_diffusion.c — schedules, forward process, posterior, sampler plans
 * and steps, and the sampling loop (src/diffusion.c).
 *
 * References are computed here in double from the formulas (REFERENCES.md,
 * "DDPM"), written in a different form from the library's where one exists:
 * the posterior from the product of two Gaussians, the ancestral mean from
 * the ε form 1/√α·(x_t − β/√(1−ᾱ)·ε). Schedule anchors for T = 4000 must
 * match to half a unit in the last digit REFERENCES.md quotes.
 *
 * The "oracle" ε model knows x0 and returns, for any x at step t, the ε
 * that makes x = √ᾱ·x0 + √(1−ᾱ)·ε; with it every x̂₀ is x0 and any chain
 * must end exactly at x0. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "genlab/diffusion.h"
#include "genlab/rng.h"
#include "testutil.h"

/* ------------------------------------------------------------------ helpers */

static void check_near(const char *what, double got, double ref, double tol)
{
    if (!(fabs(got - ref) <= tol))
        fail_msg("%s: got %.10g, expected %.10g (|diff| %.3g > %.3g)", what, got, ref,
                 fabs(got - ref), tol);
}

static void check_rel(const char *what, double got, double ref, double rel)
{
    check_near(what, got, ref, rel * fabs(ref));
}

/* A value quoted as ref with its last digit in the place `place` (1e-9 for
 * 9.866e-6) must round to it. */
static void check_anchor(const char *what, double got, double ref, double place)
{
    check_near(what, got, ref, 0.5 * place);
}

static void make_schedule(Schedule *s, ScheduleKind kind, int T)
{
    Err e = {{0}};
    if (schedule_create(s, kind, T, &e) != 0) fail_msg("schedule_create(T=%d): %s", T, e.msg);
}

static void make_plan(SamplerPlan *p, const Schedule *s, SamplerKind kind, int K, double eta,
                      VarianceKind var)
{
    Err e = {{0}};
    if (sampler_plan_create(p, s, kind, K, eta, var, &e) != 0)
        fail_msg("sampler_plan_create(K=%d): %s", K, e.msg);
}

/* x_t = √ᾱ·x0 + √(1−ᾱ)·ε for n values, in double. */
static void ref_q_sample(double *xt, const float *x0, const float *eps, double ab, size_t n)
{
    for (size_t j = 0; j < n; j++) xt[j] = sqrt(ab) * x0[j] + sqrt(1.0 - ab) * eps[j];
}

/* The oracle: ctx knows x0 (D values shared by every image). */
typedef struct {
    const Schedule *s;
    const float *x0;
    int D;
} Oracle;

static void oracle_eps(void *ctx, float *eps_hat, const float *x, const int *t, int B)
{
    const Oracle *o = ctx;
    for (int b = 0; b < B; b++) {
        double ab = o->s->alpha_bar[t[b]];
        for (int j = 0; j < o->D; j++) {
            size_t k = (size_t)b * o->D + j;
            eps_hat[k] = (float)((x[k] - sqrt(ab) * o->x0[j]) / sqrt(1.0 - ab));
        }
    }
}

/* A simple analytic model: ε̂ = c·x. */
typedef struct {
    float c;
    int D;
} Scaled;

static void scaled_eps(void *ctx, float *eps_hat, const float *x, const int *t, int B)
{
    (void)t;
    const Scaled *m = ctx;
    for (size_t k = 0; k < (size_t)B * m->D; k++) eps_hat[k] = m->c * x[k];
}

/* ------------------------------------------------------------- schedules */

static void test_cosine_anchors(void **state)
{
    (void)state;
    Schedule s;
    make_schedule(&s, SCHEDULE_COSINE, 4000);
    check_anchor("cosine beta[0]", s.beta[0], 9.866e-6, 1e-9);
    check_anchor("cosine beta[1999]", s.beta[1999], 7.883e-4, 1e-7);
    check_anchor("cosine beta[3998]", s.beta[3998], 0.75, 1e-2);
    if (s.beta[3999] != 0.999) fail_msg("cosine beta[3999] = %.17g, expected 0.999 exactly", s.beta[3999]);
    for (int i = 0; i < 3999; i++)
        if (!(s.beta[i] > 0.0 && s.beta[i] < 0.999))
            fail_msg("cosine beta[%d] = %.17g: only the last step may be clipped", i, s.beta[i]);
    check_anchor("cosine alpha_bar[999]", s.alpha_bar[999], 0.84701, 1e-5);
    check_anchor("cosine alpha_bar[1999]", s.alpha_bar[1999], 0.49384, 1e-5);
    check_anchor("cosine alpha_bar[2999]", s.alpha_bar[2999], 0.14427, 1e-5);
    check_anchor("cosine alpha_bar[3999]", s.alpha_bar[3999], 1.5e-10, 1e-11);
    assert_int_equal(s.T, 4000);
    assert_int_equal(s.kind, SCHEDULE_COSINE);
    schedule_free(&s);
}

/* The clipped product, not f(t)/f(0): each ᾱ is the previous times 1 − β. */
static void test_alpha_bar_is_product(void **state)
{
    (void)state;
    Schedule s;
    make_schedule(&s, SCHEDULE_COSINE, 4000);
    check_rel("alpha_bar[0]", s.alpha_bar[0], 1.0 - s.beta[0], 1e-15);
    for (int i = 1; i < s.T; i++)
        if (s.alpha_bar[i] != s.alpha_bar[i - 1] * (1.0 - s.beta[i]))
            fail_msg("alpha_bar[%d] = %.17g is not alpha_bar[%d]·(1 − beta[%d]) = %.17g", i,
                     s.alpha_bar[i], i - 1, i, s.alpha_bar[i - 1] * (1.0 - s.beta[i]));
    schedule_free(&s);
}

static void test_linear_endpoints(void **state)
{
    (void)state;
    Schedule s;
    make_schedule(&s, SCHEDULE_LINEAR, 1000);
    check_rel("linear T=1000 beta[0]", s.beta[0], 1e-4, 1e-12);
    check_rel("linear T=1000 beta[999]", s.beta[999], 0.02, 1e-12);
    check_rel("linear T=1000 beta[500]", s.beta[500], 1e-4 + 500 * (0.02 - 1e-4) / 999, 1e-12);
    schedule_free(&s);

    make_schedule(&s, SCHEDULE_LINEAR, 4000);
    check_rel("linear T=4000 beta[0] (scaled by 1000/T)", s.beta[0], 2.5e-5, 1e-12);
    check_rel("linear T=4000 beta[3999] (scaled by 1000/T)", s.beta[3999], 0.005, 1e-12);
    for (int i = 1; i < s.T; i++)
        check_rel("linear T=4000 spacing", s.beta[i] - s.beta[i - 1], (0.005 - 2.5e-5) / 3999, 1e-6);
    schedule_free(&s);
}

static void test_schedule_errors_and_names(void **state)
{
    (void)state;
    Schedule s;
    Err e = {{0}};
    assert_int_equal(schedule_create(&s, SCHEDULE_COSINE, 0, &e), -1);
    if (!strstr(e.msg, "out of range")) fail_msg("T = 0: message '%s' does not say so", e.msg);
    assert_int_equal(schedule_create(&s, SCHEDULE_LINEAR, 100001, NULL), -1);
    schedule_free(&s); /* safe after a failed create */

    ScheduleKind sk = SCHEDULE_LINEAR;
    assert_int_equal(schedule_kind_parse(schedule_kind_name(SCHEDULE_COSINE), &sk), 0);
    assert_int_equal(sk, SCHEDULE_COSINE);
    assert_int_equal(schedule_kind_parse("linear", &sk), 0);
    assert_int_equal(sk, SCHEDULE_LINEAR);
    assert_string_equal(schedule_kind_name(SCHEDULE_LINEAR), "linear");
    assert_int_equal(schedule_kind_parse("quadratic", &sk), -1);
    assert_int_equal(schedule_kind_parse(NULL, &sk), -1);

    SamplerKind k = SAMPLER_DDPM;
    assert_int_equal(sampler_kind_parse("ddim", &k), 0);
    assert_int_equal(k, SAMPLER_DDIM);
    assert_int_equal(sampler_kind_parse(sampler_kind_name(SAMPLER_DDPM), &k), 0);
    assert_int_equal(k, SAMPLER_DDPM);
    assert_string_equal(sampler_kind_name(SAMPLER_DDIM), "ddim");
    assert_int_equal(sampler_kind_parse("DDPM", &k), -1);
    assert_int_equal(sampler_kind_parse(NULL, &k), -1);
}

/* ------------------------------------------------------- forward process */

static void test_q_sample_hand(void **state)
{
    (void)state;
    Schedule s;
    make_schedule(&s, SCHEDULE_COSINE, 4000);
    const int t[3] = {0, 1999, 3999};
    const float x0[6] = {0.5f, -1.0f, 0.25f, 1.0f, -0.75f, 0.0f};
    const float eps[6] = {1.0f, 0.0f, -2.0f, 0.5f, 0.3f, -1.5f};
    float xt[6];
    double ref[6];
    q_sample(xt, x0, eps, t, 3, 2, &s);
    for (int b = 0; b < 3; b++) ref_q_sample(ref + 2 * b, x0 + 2 * b, eps + 2 * b, s.alpha_bar[t[b]], 2);
    test_check_close_d("q_sample, one step per image", xt, ref, 6, 1e-6);
    schedule_free(&s);
}

/* For a fixed x0 and many ε, x_t has mean √ᾱ·x0 and variance 1 − ᾱ, within
 * four standard errors. */
static void test_q_sample_statistics(void **state)
{
    (void)state;
    enum { N = 20000 };
    Schedule s;
    make_schedule(&s, SCHEDULE_COSINE, 4000);
    float *x0 = test_falloc(N), *eps = test_falloc(N), *xt = test_falloc(N);
    int *t = malloc(N * sizeof *t);
    assert_non_null(t);
    Rng r;
    rng_seed(&r, 7, RNG_EVAL, 0);
    rng_fill_normal(&r, eps, N);
    for (int i = 0; i < N; i++) {
        x0[i] = 0.7f;
        t[i] = 999;
    }
    q_sample(xt, x0, eps, t, N, 1, &s);
    double sum = 0.0, sq = 0.0;
    for (int i = 0; i < N; i++) sum += xt[i];
    double mean = sum / N;
    for (int i = 0; i < N; i++) sq += (xt[i] - mean) * (xt[i] - mean);
    double var = sq / (N - 1), ab = s.alpha_bar[999];
    check_near("mean of x_t", mean, sqrt(ab) * 0.7, 4.0 * sqrt((1.0 - ab) / N));
    check_near("variance of x_t", var, 1.0 - ab, 4.0 * (1.0 - ab) * sqrt(2.0 / N));
    free(x0);
    free(eps);
    free(xt);
    free(t);
    schedule_free(&s);
}

/* ------------------------------------------------------------- posterior */

/* q(x_{t−1} | x_t, x0) ∝ N(x_{t−1}; √ᾱ_{t−1}·x0, 1 − ᾱ_{t−1})·N(x_t; √α_t·x_{t−1}, β_t):
 * precisions add, and the mean is var·(Σ precision·centre). */
static Posterior bayes_posterior(const Schedule *s, int t)
{
    double abp = s->alpha_bar[t - 1], beta = s->beta[t], alpha = 1.0 - beta;
    double var = 1.0 / (1.0 / (1.0 - abp) + alpha / beta);
    return (Posterior){.coef_x0 = var * sqrt(abp) / (1.0 - abp),
                       .coef_xt = var * sqrt(alpha) / beta,
                       .var = var};
}

static void test_posterior_coefficients(void **state)
{
    (void)state;
    Schedule s;
    make_schedule(&s, SCHEDULE_COSINE, 4000);
    char what[96];
    for (int t = 1; t < s.T; t++) {
        Posterior got = schedule_posterior(&s, t), ref = bayes_posterior(&s, t);
        snprintf(what, sizeof what, "posterior coef_x0 at t=%d", t);
        check_rel(what, got.coef_x0, ref.coef_x0, 1e-9);
        snprintf(what, sizeof what, "posterior coef_xt at t=%d", t);
        check_rel(what, got.coef_xt, ref.coef_xt, 1e-9);
        snprintf(what, sizeof what, "posterior var at t=%d", t);
        check_rel(what, got.var, ref.var, 1e-9);
        if (!(got.var < s.beta[t]))
            fail_msg("t=%d: beta~ = %.10g is not below beta = %.10g", t, got.var, s.beta[t]);
    }
    Posterior p0 = schedule_posterior(&s, 0);
    if (p0.coef_x0 != 1.0 || p0.coef_xt != 0.0 || p0.var != 0.0)
        fail_msg("posterior at t=0: (%g, %g, %g), expected (1, 0, 0)", p0.coef_x0, p0.coef_xt, p0.var);
    schedule_free(&s);
}

/* With the true x0 and x_t = √ᾱ·x0 + √(1−ᾱ)·ε, the posterior mean is
 * 1/√α_t·(x_t − β_t/√(1−ᾱ_t)·ε) (DDPM paper, eq. 10). */
static void test_posterior_mean_eps_form(void **state)
{
    (void)state;
    Schedule s;
    make_schedule(&s, SCHEDULE_LINEAR, 1000);
    const int ts[] = {1, 10, 500, 999};
    const double x0 = -0.4, eps = 1.3;
    char what[64];
    for (size_t k = 0; k < sizeof ts / sizeof ts[0]; k++) {
        int t = ts[k];
        double ab = s.alpha_bar[t], beta = s.beta[t];
        double xt = sqrt(ab) * x0 + sqrt(1.0 - ab) * eps;
        Posterior p = schedule_posterior(&s, t);
        double ref = (xt - beta / sqrt(1.0 - ab) * eps) / sqrt(1.0 - beta);
        snprintf(what, sizeof what, "posterior mean at t=%d", t);
        check_near(what, p.coef_x0 * x0 + p.coef_xt * xt, ref, 1e-12);
    }
    schedule_free(&s);
}

/* ----------------------------------------------------------------- plans */

static void check_plan_consistent(const SamplerPlan *p, const Schedule *s)
{
    if (p->t[0] != s->T - 1) fail_msg("K=%d: t[0] = %d, expected T-1 = %d", p->K, p->t[0], s->T - 1);
    if (p->t[p->K - 1] < 0) fail_msg("K=%d: last step %d < 0", p->K, p->t[p->K - 1]);
    double prod = 1.0, rounding = 0.0;
    for (int i = 0; i < p->K; i++) {
        if (i > 0 && p->t[i] >= p->t[i - 1])
            fail_msg("K=%d: t[%d] = %d not below t[%d] = %d", p->K, i, p->t[i], i - 1, p->t[i - 1]);
        double abp = i + 1 < p->K ? s->alpha_bar[p->t[i + 1]] : 1.0;
        if (p->alpha_bar[i] != s->alpha_bar[p->t[i]] || p->alpha_bar_prev[i] != abp)
            fail_msg("K=%d: alpha_bar / alpha_bar_prev at i=%d do not match the schedule", p->K, i);
        check_rel("respaced beta = 1 - alpha_bar/alpha_bar_prev", p->beta[i],
                  1.0 - s->alpha_bar[p->t[i]] / abp, 1e-12);
        prod *= 1.0 - p->beta[i];
        /* β is stored, not 1 − β: where β is near 1 (the first respaced
         * step, 1 − β ≈ 1e-9 for K = 50), 1 − β keeps only ε/(1 − β) of
         * relative accuracy. */
        rounding += 2.0 * DBL_EPSILON * (1.0 + 1.0 / (1.0 - p->beta[i]));
    }
    /* The respaced betas telescope back to the schedule's ᾱ at the start. */
    check_rel("product of (1 - respaced beta)", prod, s->alpha_bar[p->t[0]], rounding);
}

static void test_plan_full_chain(void **state)
{
    (void)state;
    Schedule s;
    make_schedule(&s, SCHEDULE_COSINE, 4000);
    SamplerPlan p;
    make_plan(&p, &s, SAMPLER_DDPM, s.T, 0.0, VARIANCE_LARGE);
    check_plan_consistent(&p, &s);
    for (int i = 0; i < p.K; i++) {
        if (p.t[i] != s.T - 1 - i) fail_msg("K=T: t[%d] = %d, expected %d", i, p.t[i], s.T - 1 - i);
        /* 1 − β is rounded to double, so β itself keeps ~1e-16/β relative. */
        check_rel("K=T: respaced beta equals the schedule's", p.beta[i], s.beta[s.T - 1 - i], 1e-9);
    }
    sampler_plan_free(&p);
    schedule_free(&s);
}

static void test_plan_respaced(void **state)
{
    (void)state;
    Schedule s;
    make_schedule(&s, SCHEDULE_COSINE, 4000);
    SamplerPlan p;
    make_plan(&p, &s, SAMPLER_DDIM, 50, 0.0, VARIANCE_LARGE);
    check_plan_consistent(&p, &s);
    for (int i = 0; i < p.K; i++)
        if (p.t[i] != 3999 - 80 * i) fail_msg("K=50: t[%d] = %d, expected %d", i, p.t[i], 3999 - 80 * i);
    sampler_plan_free(&p);

    make_plan(&p, &s, SAMPLER_DDPM, 1, 0.0, VARIANCE_SMALL);
    check_plan_consistent(&p, &s);
    sampler_plan_free(&p);
    schedule_free(&s);

    /* T/K not an integer: diffusers' np.round(np.arange(100, 0, -100/7)) - 1. */
    make_schedule(&s, SCHEDULE_LINEAR, 100);
    make_plan(&p, &s, SAMPLER_DDIM, 7, 0.5, VARIANCE_LARGE);
    check_plan_consistent(&p, &s);
    const int ref[7] = {99, 85, 70, 56, 42, 28, 13};
    for (int i = 0; i < 7; i++)
        if (p.t[i] != ref[i]) fail_msg("T=100 K=7: t[%d] = %d, expected %d", i, p.t[i], ref[i]);
    sampler_plan_free(&p);
    schedule_free(&s);
}

static void test_plan_errors(void **state)
{
    (void)state;
    Schedule s;
    make_schedule(&s, SCHEDULE_LINEAR, 100);
    SamplerPlan p;
    Err e = {{0}};
    assert_int_equal(sampler_plan_create(&p, &s, SAMPLER_DDIM, 0, 0.0, VARIANCE_LARGE, &e), -1);
    if (!strstr(e.msg, "out of range")) fail_msg("K = 0: message '%s' does not say so", e.msg);
    e.msg[0] = '\0';
    assert_int_equal(sampler_plan_create(&p, &s, SAMPLER_DDIM, 101, 0.0, VARIANCE_LARGE, &e), -1);
    if (!strstr(e.msg, "out of range")) fail_msg("K = T+1: message '%s' does not say so", e.msg);
    e.msg[0] = '\0';
    assert_int_equal(sampler_plan_create(&p, &s, SAMPLER_DDIM, 10, -0.1, VARIANCE_LARGE, &e), -1);
    if (!strstr(e.msg, "eta")) fail_msg("eta < 0: message '%s' does not name eta", e.msg);
    assert_int_equal(sampler_plan_create(&p, &s, SAMPLER_DDIM, 10, NAN, VARIANCE_LARGE, NULL), -1);
    sampler_plan_free(&p); /* safe after a failed create */
    schedule_free(&s);
}

static void test_step_is_noisy(void **state)
{
    (void)state;
    Schedule s;
    make_schedule(&s, SCHEDULE_COSINE, 200);
    SamplerPlan p;
    const struct {
        SamplerKind kind;
        double eta;
        VarianceKind var;
        int noisy; /* before the last step */
    } cases[] = {{SAMPLER_DDPM, 0.0, VARIANCE_LARGE, 1},
                 {SAMPLER_DDPM, 0.0, VARIANCE_SMALL, 1},
                 {SAMPLER_DDIM, 0.0, VARIANCE_LARGE, 0},
                 {SAMPLER_DDIM, 1.0, VARIANCE_LARGE, 1}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        make_plan(&p, &s, cases[c].kind, 10, cases[c].eta, cases[c].var);
        for (int i = 0; i < p.K; i++) {
            int want = i < p.K - 1 ? cases[c].noisy : 0;
            if (sampler_step_is_noisy(&p, i) != want)
                fail_msg("%s eta=%g variance=%d step %d: is_noisy %d, expected %d",
                         sampler_kind_name(cases[c].kind), cases[c].eta, (int)cases[c].var, i,
                         sampler_step_is_noisy(&p, i), want);
        }
        sampler_plan_free(&p);
    }
    schedule_free(&s);
}

/* -------------------------------------------------------------- one step */

enum { SB = 4, SD = 64, SN = SB * SD };

/* x0 in [−0.9, 0.9], ε ~ N(0, 1) and x_t = q_sample(x0, ε) at t (float). */
static void make_xt(const Schedule *s, int t, float *x0, float *eps, float *xt, uint64_t seed)
{
    Rng r;
    rng_seed(&r, seed, RNG_EVAL, 0);
    test_fill_uniform(&r, x0, SN, -0.9f, 0.9f);
    rng_fill_normal(&r, eps, SN);
    int tv[SB];
    for (int b = 0; b < SB; b++) tv[b] = t;
    q_sample(xt, x0, eps, tv, SB, SD, s);
}

static void test_ddim_eta0_deterministic(void **state)
{
    (void)state;
    Schedule s;
    make_schedule(&s, SCHEDULE_COSINE, 1000);
    SamplerPlan p;
    make_plan(&p, &s, SAMPLER_DDIM, 20, 0.0, VARIANCE_LARGE);
    float x0[SN], eps[SN], xt[SN], a[SN], b[SN], h1[SN], h2[SN];
    make_xt(&s, p.t[3], x0, eps, xt, 1);
    sampler_step(&p, 3, a, h1, xt, eps, NULL, SB, SD);
    sampler_step(&p, 3, b, h2, xt, eps, NULL, SB, SD);
    if (memcmp(a, b, sizeof a) != 0 || memcmp(h1, h2, sizeof h1) != 0)
        fail_msg("DDIM eta=0: two identical steps differ");
    /* In place gives the same bits. */
    sampler_step(&p, 3, xt, h2, xt, eps, NULL, SB, SD);
    if (memcmp(a, xt, sizeof a) != 0) fail_msg("sampler_step with x_prev aliasing x differs");
    sampler_plan_free(&p);
    schedule_free(&s);
}

/* DDIM η = 0 with the true ε: x̂₀ is x0 and x_prev is q_sample(x0, ε) at the
 * next visited step. */
static void test_ddim_oracle_step(void **state)
{
    (void)state;
    Schedule s;
    make_schedule(&s, SCHEDULE_COSINE, 4000);
    SamplerPlan p;
    make_plan(&p, &s, SAMPLER_DDIM, 50, 0.0, VARIANCE_LARGE);
    const int i = 25; /* t = 1999, ᾱ ≈ 0.49 */
    float x0[SN], eps[SN], xt[SN], xp[SN], x0_hat[SN];
    double ref[SN];
    make_xt(&s, p.t[i], x0, eps, xt, 2);
    sampler_step(&p, i, xp, x0_hat, xt, eps, NULL, SB, SD);
    for (int j = 0; j < SN; j++) ref[j] = x0[j];
    test_check_close_d("DDIM oracle: x0_hat vs x0", x0_hat, ref, SN, 1e-5);
    ref_q_sample(ref, x0, eps, p.alpha_bar_prev[i], SN);
    test_check_close_d("DDIM oracle: x_prev vs q_sample at the next step", xp, ref, SN, 1e-5);
    sampler_plan_free(&p);
    schedule_free(&s);
}

/* DDIM η > 0 with the true ε: z = 0 gives √ᾱ_prev·x0 + √(1 − ᾱ_prev − σ²)·ε,
 * and z = 1 adds σ. With η = 1 and K = T, σ² is the posterior variance β̃
 * (Song et al.: η = 1 is DDPM with fixed-small variance). */
static void check_ddim_noisy_step(const Schedule *s, int K, double eta, int i)
{
    SamplerPlan p;
    make_plan(&p, s, SAMPLER_DDIM, K, eta, VARIANCE_LARGE);
    float x0[SN], eps[SN], xt[SN], xp[SN], xz[SN], x0_hat[SN], zero[SN], one[SN];
    double ref[SN], shifted[SN];
    make_xt(s, p.t[i], x0, eps, xt, 6);
    for (int j = 0; j < SN; j++) {
        zero[j] = 0.0f;
        one[j] = 1.0f;
    }
    sampler_step(&p, i, xp, x0_hat, xt, eps, zero, SB, SD);
    sampler_step(&p, i, xz, x0_hat, xt, eps, one, SB, SD);
    double ab = p.alpha_bar[i], abp = p.alpha_bar_prev[i];
    double sigma = eta * sqrt((1.0 - abp) / (1.0 - ab) * (1.0 - ab / abp));
    if (K == s->T && eta == 1.0)
        check_rel("DDIM eta=1 sigma^2 vs posterior variance", sigma * sigma,
                  schedule_posterior(s, p.t[i]).var, 1e-9);
    for (int j = 0; j < SN; j++) {
        ref[j] = sqrt(abp) * x0[j] + sqrt(1.0 - abp - sigma * sigma) * eps[j];
        shifted[j] = ref[j] + sigma;
    }
    char what[96];
    snprintf(what, sizeof what, "DDIM K=%d eta=%g step %d with z=0", K, eta, i);
    test_check_close_d(what, xp, ref, SN, 1e-5);
    snprintf(what, sizeof what, "DDIM K=%d eta=%g step %d with z=1", K, eta, i);
    test_check_close_d(what, xz, shifted, SN, 1e-5);
    sampler_plan_free(&p);
}

static void test_ddim_noisy_step(void **state)
{
    (void)state;
    Schedule s;
    make_schedule(&s, SCHEDULE_COSINE, 4000);
    check_ddim_noisy_step(&s, s.T, 1.0, 2000);
    check_ddim_noisy_step(&s, 50, 0.5, 25);
    check_ddim_noisy_step(&s, 50, 1.0, 45);
    schedule_free(&s);
}

/* DDIM η = 0 with a fixed ε stays on the forward trajectory q_sample(x0, ε)
 * at every visited step and ends at x0. Linear schedule: its ᾱ at T − 1
 * (4e-5) keeps the first x̂₀'s float error, ~1e-7/√ᾱ, near 2e-5; the cosine
 * schedule's 1e-9 would make it 1e-2. */
static void test_ddim_trajectory(void **state)
{
    (void)state;
    Schedule s;
    make_schedule(&s, SCHEDULE_LINEAR, 1000);
    SamplerPlan p;
    make_plan(&p, &s, SAMPLER_DDIM, 20, 0.0, VARIANCE_LARGE);
    float x0[SN], eps[SN], x[SN], x0_hat[SN];
    double ref[SN];
    char what[64];
    make_xt(&s, p.t[0], x0, eps, x, 5);
    for (int i = 0; i < p.K; i++) {
        sampler_step(&p, i, x, x0_hat, x, eps, NULL, SB, SD);
        ref_q_sample(ref, x0, eps, p.alpha_bar_prev[i], SN);
        snprintf(what, sizeof what, "DDIM trajectory after step %d", i);
        test_check_close_d(what, x, ref, SN, 1e-4);
    }
    sampler_plan_free(&p);
    schedule_free(&s);
}

/* DDPM with the true ε: with z = 0 x_prev is the true posterior mean (from
 * schedule_posterior, for K = T; from the ε form with the respaced beta for
 * K < T), and z = 1 adds exactly σ = √β̃ (small) or √β (large). */
static void check_ddpm_step(const Schedule *s, int K, VarianceKind var, int i)
{
    SamplerPlan p;
    make_plan(&p, s, SAMPLER_DDPM, K, 0.0, var);
    float x0[SN], eps[SN], xt[SN], xp[SN], xz[SN], x0_hat[SN], zero[SN], one[SN];
    double mean[SN], shifted[SN];
    make_xt(s, p.t[i], x0, eps, xt, 3);
    for (int j = 0; j < SN; j++) {
        zero[j] = 0.0f;
        one[j] = 1.0f;
    }
    sampler_step(&p, i, xp, x0_hat, xt, eps, zero, SB, SD);
    sampler_step(&p, i, xz, x0_hat, xt, eps, one, SB, SD);
    double ab = p.alpha_bar[i], b = p.beta[i];
    double sigma2 = var == VARIANCE_LARGE ? b : b * (1.0 - p.alpha_bar_prev[i]) / (1.0 - ab);
    for (int j = 0; j < SN; j++) {
        double x = sqrt(ab) * x0[j] + sqrt(1.0 - ab) * eps[j];
        if (K == s->T) {
            Posterior q = schedule_posterior(s, p.t[i]);
            mean[j] = q.coef_x0 * x0[j] + q.coef_xt * x;
            if (var == VARIANCE_SMALL) check_rel("DDPM small variance = posterior var", sigma2, q.var, 1e-9);
        } else {
            mean[j] = (x - b / sqrt(1.0 - ab) * eps[j]) / sqrt(1.0 - b);
        }
        shifted[j] = mean[j] + sqrt(sigma2);
    }
    char what[96];
    snprintf(what, sizeof what, "DDPM K=%d var=%d step %d: x_prev with z=0 vs posterior mean", K, (int)var, i);
    test_check_close_d(what, xp, mean, SN, 1e-5);
    snprintf(what, sizeof what, "DDPM K=%d var=%d step %d: x_prev with z=1 vs mean + sigma", K, (int)var, i);
    test_check_close_d(what, xz, shifted, SN, 1e-5);
    sampler_plan_free(&p);
}

static void test_ddpm_oracle_mean(void **state)
{
    (void)state;
    Schedule s;
    make_schedule(&s, SCHEDULE_COSINE, 4000);
    check_ddpm_step(&s, s.T, VARIANCE_SMALL, 2000); /* t = 1999 */
    check_ddpm_step(&s, s.T, VARIANCE_LARGE, 3500); /* t = 499 */
    check_ddpm_step(&s, 50, VARIANCE_SMALL, 25);
    check_ddpm_step(&s, 50, VARIANCE_LARGE, 40);
    schedule_free(&s);
}

/* x̂₀ outside [−1, 1] is clamped, and the DDIM update uses ε̂ re-derived
 * from the clamped x̂₀. */
static void test_x0_clamp(void **state)
{
    (void)state;
    Schedule s;
    make_schedule(&s, SCHEDULE_COSINE, 4000);
    SamplerPlan p;
    make_plan(&p, &s, SAMPLER_DDIM, 50, 0.0, VARIANCE_LARGE);
    const int i = 25;
    const double ab = p.alpha_bar[i], abp = p.alpha_bar_prev[i];
    const double target[4] = {3.0, -3.0, 0.5, -1.0};
    const float eps[4] = {0.4f, -1.2f, 0.8f, 0.0f};
    float x[4], xp[4], x0_hat[4];
    double want_x0[4], want_xp[4];
    for (int j = 0; j < 4; j++) {
        x[j] = (float)(sqrt(ab) * target[j] + sqrt(1.0 - ab) * eps[j]);
        want_x0[j] = target[j] > 1.0 ? 1.0 : target[j] < -1.0 ? -1.0 : target[j];
        double eps_rederived = (x[j] - sqrt(ab) * want_x0[j]) / sqrt(1.0 - ab);
        want_xp[j] = sqrt(abp) * want_x0[j] + sqrt(1.0 - abp) * eps_rederived;
    }
    sampler_step(&p, i, xp, x0_hat, x, eps, NULL, 1, 4);
    test_check_close_d("x0_hat clamped to [-1, 1]", x0_hat, want_x0, 4, 1e-6);
    test_check_close_d("DDIM step from the clamped x0_hat", xp, want_xp, 4, 1e-6);
    sampler_plan_free(&p);
    schedule_free(&s);
}

/* ------------------------------------------------------------- the chain */

/* Whole chains with the oracle end at x0, whatever the sampler: every x̂₀ is
 * x0, and the last step returns x̂₀. */
static void check_oracle_chain(SamplerKind kind, double eta, VarianceKind var)
{
    enum { B = 3, D = 16 };
    Schedule s;
    make_schedule(&s, SCHEDULE_COSINE, 1000);
    SamplerPlan p;
    make_plan(&p, &s, kind, 25, eta, var);
    float x0[D], out[B * D];
    double ref[B * D];
    Rng r;
    rng_seed(&r, 4, RNG_EVAL, 0);
    test_fill_uniform(&r, x0, D, -0.9f, 0.9f);
    for (int k = 0; k < B * D; k++) ref[k] = x0[k % D];
    Oracle o = {.s = &s, .x0 = x0, .D = D};
    Err e = {{0}};
    if (diffusion_sample(&p, oracle_eps, &o, NULL, NULL, 11, B, D, out, &e) != 0)
        fail_msg("diffusion_sample: %s", e.msg);
    char what[64];
    snprintf(what, sizeof what, "%s eta=%g oracle chain: final vs x0", sampler_kind_name(kind), eta);
    test_check_close_d(what, out, ref, B * D, 1e-5);
    sampler_plan_free(&p);
    schedule_free(&s);
}

static void test_oracle_chains(void **state)
{
    (void)state;
    check_oracle_chain(SAMPLER_DDIM, 0.0, VARIANCE_LARGE);
    check_oracle_chain(SAMPLER_DDIM, 1.0, VARIANCE_LARGE);
    check_oracle_chain(SAMPLER_DDPM, 0.0, VARIANCE_LARGE);
    check_oracle_chain(SAMPLER_DDPM, 0.0, VARIANCE_SMALL);
}

/* Chain b's noise comes from (seed, RNG_SAMPLE, b) alone: the first three
 * chains of a B = 5 run are those of a B = 3 run. */
static void test_sample_independent_of_B(void **state)
{
    (void)state;
    enum { D = 16 };
    Schedule s;
    make_schedule(&s, SCHEDULE_COSINE, 100);
    const SamplerKind kinds[2] = {SAMPLER_DDPM, SAMPLER_DDIM};
    Scaled c = {.c = 0.3f, .D = D};
    float out5[5 * D], out3[3 * D], other[3 * D];
    Err e = {{0}};
    for (int k = 0; k < 2; k++) {
        SamplerPlan p;
        make_plan(&p, &s, kinds[k], 8, 0.5, VARIANCE_LARGE);
        assert_int_equal(diffusion_sample(&p, scaled_eps, &c, NULL, NULL, 99, 5, D, out5, &e), 0);
        assert_int_equal(diffusion_sample(&p, scaled_eps, &c, NULL, NULL, 99, 3, D, out3, &e), 0);
        if (memcmp(out5, out3, sizeof out3) != 0)
            fail_msg("%s: the first 3 chains of B=5 differ from B=3", sampler_kind_name(kinds[k]));
        if (memcmp(out5, out5 + D, D * sizeof *out5) == 0)
            fail_msg("%s: chains 0 and 1 are identical", sampler_kind_name(kinds[k]));
        assert_int_equal(diffusion_sample(&p, scaled_eps, &c, NULL, NULL, 100, 3, D, other, &e), 0);
        if (memcmp(other, out3, sizeof out3) == 0)
            fail_msg("%s: seeds 99 and 100 give the same samples", sampler_kind_name(kinds[k]));
        for (int j = 0; j < 5 * D; j++)
            if (!(out5[j] >= -1.0f && out5[j] <= 1.0f))
                fail_msg("%s: final value %g outside [-1, 1]", sampler_kind_name(kinds[k]), out5[j]);
        sampler_plan_free(&p);
    }
    schedule_free(&s);
}

typedef struct {
    int calls, stop_at, B;
    int seen[16];
    float last_x[2 * 16];
} Frames;

static int record_frame(void *ctx, int i, const float *x, const float *x0_hat, int B)
{
    Frames *f = ctx;
    (void)x0_hat;
    assert_true(f->calls < 16);
    f->seen[f->calls++] = i;
    f->B = B;
    memcpy(f->last_x, x, sizeof f->last_x);
    return i == f->stop_at;
}

static void test_sample_frames(void **state)
{
    (void)state;
    enum { B = 2, D = 16, K = 6 };
    Schedule s;
    make_schedule(&s, SCHEDULE_LINEAR, 60);
    SamplerPlan p;
    make_plan(&p, &s, SAMPLER_DDPM, K, 0.0, VARIANCE_SMALL);
    Scaled c = {.c = 0.1f, .D = D};
    float out[B * D], untouched[B * D];
    Err e = {{0}};
    Frames f = {.stop_at = -1};
    assert_int_equal(diffusion_sample(&p, scaled_eps, &c, record_frame, &f, 5, B, D, out, &e), 0);
    if (f.calls != K) fail_msg("on_frame called %d times, expected K = %d", f.calls, K);
    for (int i = 0; i < K; i++)
        if (f.seen[i] != i) fail_msg("frame %d reported step %d", i, f.seen[i]);
    assert_int_equal(f.B, B);
    if (memcmp(f.last_x, out, sizeof out) != 0) fail_msg("the last frame's x is not the output");

    memset(untouched, 0x5a, sizeof untouched);
    memcpy(out, untouched, sizeof out);
    Frames g = {.stop_at = 2};
    assert_int_equal(diffusion_sample(&p, scaled_eps, &c, record_frame, &g, 5, B, D, out, &e), 1);
    if (g.calls != 3) fail_msg("stopping at step 2 made %d calls, expected 3", g.calls);
    if (memcmp(out, untouched, sizeof out) != 0) fail_msg("a stopped chain wrote to out");

    e.msg[0] = '\0';
    assert_int_equal(diffusion_sample(&p, scaled_eps, &c, NULL, NULL, 5, 0, D, out, &e), -1);
    if (e.msg[0] == '\0') fail_msg("B = 0 rejected without a message");
    sampler_plan_free(&p);
    schedule_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cosine_anchors),
        cmocka_unit_test(test_alpha_bar_is_product),
        cmocka_unit_test(test_linear_endpoints),
        cmocka_unit_test(test_schedule_errors_and_names),
        cmocka_unit_test(test_q_sample_hand),
        cmocka_unit_test(test_q_sample_statistics),
        cmocka_unit_test(test_posterior_coefficients),
        cmocka_unit_test(test_posterior_mean_eps_form),
        cmocka_unit_test(test_plan_full_chain),
        cmocka_unit_test(test_plan_respaced),
        cmocka_unit_test(test_plan_errors),
        cmocka_unit_test(test_step_is_noisy),
        cmocka_unit_test(test_ddim_eta0_deterministic),
        cmocka_unit_test(test_ddim_oracle_step),
        cmocka_unit_test(test_ddim_trajectory),
        cmocka_unit_test(test_ddim_noisy_step),
        cmocka_unit_test(test_ddpm_oracle_mean),
        cmocka_unit_test(test_x0_clamp),
        cmocka_unit_test(test_oracle_chains),
        cmocka_unit_test(test_sample_independent_of_B),
        cmocka_unit_test(test_sample_frames),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
