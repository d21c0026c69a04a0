/* test_kernels_unet.c — the U-Net kernels (src/kernels_unet.c) against
 * naive double loops written from PyTorch's definitions, against finite
 * differences, and on hand-computed cases.
 *
 * How results are compared: as in test_kernels.c, a tensor as a whole by
 * its normalised error max|got − ref| / max|ref|, printing the worst
 * element on failure; references are computed in double.
 *
 * Finite differences: the kernel runs in float, as the models use it, and
 * the scalar probed is L = Σ wᵢ·outᵢ (random wᵢ) accumulated in double.
 * The kernels linear in the probed argument (conv1x1, GroupNorm's γ and β)
 * use a large step (0.25): their central difference has no truncation
 * error, only float rounding divided by the step. The non-linear ones
 * (GroupNorm's input, SiLU, attention) use h = 1e-2 on inputs of order 1:
 * truncation (h²/6)·|L'''| and rounding (~1e-6·|L|/h) keep the measured
 * errors at 1e-5..7e-5 of the gradient; the tolerances sit 10-15 times
 * above that, while a missing term of a gradient errs by 1e-1 or more. The
 * step used is the float difference (p + h) − (p − h), not 2h.
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

#include "genlab/kernels_unet.h"
#include "genlab/rng.h"
#include "testutil.h"

/* ------------------------------------------------------------------ helpers */

static float *fzeros(size_t n)
{
    float *p = calloc(n ? n : 1, sizeof *p);
    assert_non_null(p);
    return p;
}

static void fill_const(float *p, size_t n, float v)
{
    for (size_t i = 0; i < n; i++) p[i] = v;
}

/* test_check_close with every element of `got` checked to be finite first:
 * its NaN test only holds when the NaN is the last maximum, and the tests
 * below fill outputs with NaN to see that a kernel writes all of them. */
static void assert_finite(const char *what, const float *got, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(got[i])) fail_msg("%s: element %zu of %zu is %g", what, i, n, (double)got[i]);
}

static double close_d(const char *what, const float *got, const double *ref, size_t n, double tol)
{
    assert_finite(what, got, n);
    return test_check_close_d(what, got, ref, n, tol);
}

static double close_f(const char *what, const float *got, const float *ref, size_t n, double tol)
{
    assert_finite(what, got, n);
    return test_check_close(what, got, ref, n, tol);
}

/* ref[i] = k·a[i] + (b ? b[i] : 0): the expected result of accumulation. */
static double *expect_sum(const float *a, double k, const float *b, size_t n)
{
    double *ref = test_dalloc(n);
    for (size_t i = 0; i < n; i++) ref[i] = k * a[i] + (b ? b[i] : 0.0);
    return ref;
}

/* A scalar function of the buffers of one kernel call. */
typedef double (*LossFn)(void *ctx);

/* Central differences of fn with respect to every element of p[0..n),
 * step h, compared with `analytic` by normalised error. */
static double fd_check(const char *what, LossFn fn, void *ctx, float *p, const float *analytic,
                       size_t n, float h, double tol)
{
    double *fd = test_dalloc(n);
    for (size_t i = 0; i < n; i++) {
        const float save = p[i], hp = save + h, hm = save - h;
        p[i] = hp;
        const double lp = fn(ctx);
        p[i] = hm;
        const double lm = fn(ctx);
        p[i] = save;
        fd[i] = (lp - lm) / ((double)hp - (double)hm);
    }
    double err = close_d(what, analytic, fd, n, tol);
    free(fd);
    return err;
}

#define FD_H_LINEAR 0.25f /* exact for linear arguments: only rounding remains */
#define FD_TOL_LINEAR 1e-4
#define FD_H 1e-2f        /* non-linear arguments */

/* ================================================================ GroupNorm */

/* PyTorch's nn.GroupNorm: per (b, g), over the C/G channels × HW pixels,
 * out = (x − mean)/√(var + eps)·γ[c] + β[c] with the biased variance. */
static void naive_groupnorm(double *out, double *mean, double *rstd, const float *in,
                            const float *gamma, const float *beta, int B, int C, int HW, int G)
{
    const int cpg = C / G;
    const size_t n = (size_t)cpg * HW;
    for (int b = 0; b < B; b++)
        for (int g = 0; g < G; g++) {
            const size_t base = ((size_t)b * C + (size_t)g * cpg) * HW;
            double m = 0.0, v = 0.0;
            for (size_t i = 0; i < n; i++) m += in[base + i];
            m /= (double)n;
            for (size_t i = 0; i < n; i++) v += (in[base + i] - m) * (in[base + i] - m);
            v /= (double)n;
            const double r = 1.0 / sqrt(v + 1e-5);
            mean[(size_t)b * G + g] = m;
            rstd[(size_t)b * G + g] = r;
            for (size_t i = 0; i < n; i++) {
                const int c = g * cpg + (int)(i / (size_t)HW);
                out[base + i] = (in[base + i] - m) * r * gamma[c] + beta[c];
            }
        }
}

typedef struct {
    int B, C, HW, G;
    float lo, hi; /* range of the inputs */
    const char *name;
} GnCase;

static const GnCase gn_cases[] = {
    {2, 8, 12, 4, -1.0f, 1.0f, "B2 C8 HW12 G4"},
    {1, 6, 5, 1, -2.0f, 3.0f, "one group (LayerNorm-like)"},
    {3, 4, 7, 4, -1.0f, 1.0f, "one channel per group"},
    {2, 64, 196, 32, -1.0f, 1.0f, "U-Net shape C64 14x14 G32"},
    {2, 6, 9, 3, -0.005f, 0.005f, "tiny variance: eps matters"},
    {2, 8, 10, 2, 999.0f, 1001.0f, "mean 1000: two-pass stats"},
};

static void gn_forward_case(Rng *r, const GnCase *k)
{
    const size_t n = (size_t)k->B * k->C * k->HW, ng = (size_t)k->B * k->G;
    float *in = test_falloc(n), *gamma = test_falloc(k->C), *beta = test_falloc(k->C), *out = test_falloc(n);
    float *mean = test_falloc(ng), *rstd = test_falloc(ng);
    double *ref = test_dalloc(n), *rmean = test_dalloc(ng), *rrstd = test_dalloc(ng);
    test_fill_uniform(r, in, n, k->lo, k->hi);
    test_fill_uniform(r, gamma, k->C, 0.5f, 1.5f);
    test_fill_uniform(r, beta, k->C, -0.5f, 0.5f);
    fill_const(out, n, NAN);
    groupnorm_forward(out, mean, rstd, in, gamma, beta, k->B, k->C, k->HW, k->G);
    naive_groupnorm(ref, rmean, rrstd, in, gamma, beta, k->B, k->C, k->HW, k->G);
    char what[96];
    /* the mean is summed per channel in float and stored as a float: at
     * mean 1000 it is off by ~5e-5, and x − mean with it (measured 4.4e-5
     * of the output; a one-pass E[x²] − E[x]² in float errs by 1e-1) */
    const double tol = k->lo > 100.0f ? 2e-4 : 2e-6;
    snprintf(what, sizeof what, "groupnorm out (%s)", k->name);
    close_d(what, out, ref, n, tol);
    snprintf(what, sizeof what, "groupnorm mean (%s)", k->name);
    close_d(what, mean, rmean, ng, 1e-6);
    snprintf(what, sizeof what, "groupnorm rstd (%s)", k->name);
    close_d(what, rstd, rrstd, ng, 1e-5);
    free(in), free(gamma), free(beta), free(out), free(mean), free(rstd);
    free(ref), free(rmean), free(rrstd);
}

static void test_groupnorm_forward_naive(void **state)
{
    (void)state;
    Rng r;
    rng_seed(&r, 101, RNG_EVAL, 0);
    for (size_t t = 0; t < sizeof gn_cases / sizeof gn_cases[0]; t++) gn_forward_case(&r, &gn_cases[t]);
}

/* A constant group has variance 0: x̂ = 0 and out = β, with rstd = 1/√eps. */
static void test_groupnorm_constant_group(void **state)
{
    (void)state;
    enum { B = 1, C = 4, HW = 3, G = 2 };
    float in[B * C * HW], out[B * C * HW], mean[B * G], rstd[B * G];
    const float gamma[C] = {1.0f, 2.0f, 3.0f, 4.0f}, beta[C] = {0.1f, 0.2f, 0.3f, 0.4f};
    for (int i = 0; i < B * C * HW; i++) in[i] = i < C / G * HW ? 7.0f : -3.0f;
    groupnorm_forward(out, mean, rstd, in, gamma, beta, B, C, HW, G);
    for (int i = 0; i < B * C * HW; i++)
        if (!(fabsf(out[i] - beta[i / HW]) <= 1e-6f))
            fail_msg("constant group: out[%d] = %.9g, want beta = %g", i, (double)out[i],
                     (double)beta[i / HW]);
    if (!(mean[0] == 7.0f && mean[1] == -3.0f)) fail_msg("constant group means %g %g", (double)mean[0], (double)mean[1]);
    const double want = 1.0 / sqrt(1e-5);
    for (int g = 0; g < G; g++)
        if (!(fabs(rstd[g] - want) <= 1e-6 * want)) fail_msg("rstd[%d] = %.9g, want 1/sqrt(eps) = %.9g", g, (double)rstd[g], want);
}

typedef struct {
    int B, C, HW, G;
    float *in, *gamma, *beta, *out, *mean, *rstd, *wt;
} GnCtx;

static size_t gn_n(const GnCtx *c) { return (size_t)c->B * c->C * c->HW; }

static double gn_loss(void *vc)
{
    GnCtx *c = vc;
    groupnorm_forward(c->out, c->mean, c->rstd, c->in, c->gamma, c->beta, c->B, c->C, c->HW, c->G);
    return test_dot(c->out, c->wt, gn_n(c));
}

static void gn_ctx_init(GnCtx *c, Rng *r, int B, int C, int HW, int G)
{
    *c = (GnCtx){.B = B, .C = C, .HW = HW, .G = G};
    const size_t n = gn_n(c);
    c->in = test_falloc(n), c->gamma = test_falloc(C), c->beta = test_falloc(C), c->out = test_falloc(n);
    c->mean = test_falloc((size_t)B * G), c->rstd = test_falloc((size_t)B * G), c->wt = test_falloc(n);
    test_fill_uniform(r, c->in, n, -1, 1);
    test_fill_uniform(r, c->gamma, C, 0.5f, 1.5f);
    test_fill_uniform(r, c->beta, C, -0.5f, 0.5f);
    test_fill_uniform(r, c->wt, n, -1, 1);
}

static void gn_ctx_free(GnCtx *c)
{
    free(c->in), free(c->gamma), free(c->beta), free(c->out), free(c->mean), free(c->rstd);
    free(c->wt);
}

static void test_groupnorm_backward_fd(void **state)
{
    (void)state;
    Rng r;
    rng_seed(&r, 102, RNG_EVAL, 0);
    const int shapes[][4] = {{2, 8, 12, 4}, {1, 6, 5, 1}, {3, 4, 7, 4}};
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
        GnCtx c;
        gn_ctx_init(&c, &r, shapes[t][0], shapes[t][1], shapes[t][2], shapes[t][3]);
        const size_t n = gn_n(&c);
        float *din = test_falloc(n), *dgamma = fzeros(c.C), *dbeta = fzeros(c.C);
        fill_const(din, n, NAN); /* overwritten */
        gn_loss(&c);
        groupnorm_backward(din, dgamma, dbeta, c.wt, c.in, c.mean, c.rstd, c.gamma, c.B, c.C, c.HW,
                           c.G);
        char what[96];
        snprintf(what, sizeof what, "groupnorm B%d C%d HW%d G%d din", c.B, c.C, c.HW, c.G);
        fd_check(what, gn_loss, &c, c.in, din, n, FD_H, 1e-3);
        snprintf(what, sizeof what, "groupnorm B%d C%d HW%d G%d dgamma", c.B, c.C, c.HW, c.G);
        fd_check(what, gn_loss, &c, c.gamma, dgamma, c.C, FD_H_LINEAR, FD_TOL_LINEAR);
        snprintf(what, sizeof what, "groupnorm B%d C%d HW%d G%d dbeta", c.B, c.C, c.HW, c.G);
        fd_check(what, gn_loss, &c, c.beta, dbeta, c.C, FD_H_LINEAR, FD_TOL_LINEAR);
        free(din), free(dgamma), free(dbeta);
        gn_ctx_free(&c);
    }
}

/* dγ and dβ add up over calls; din is overwritten, and may be NULL. */
static void test_groupnorm_backward_accumulates(void **state)
{
    (void)state;
    Rng r;
    rng_seed(&r, 103, RNG_EVAL, 0);
    GnCtx c;
    gn_ctx_init(&c, &r, 2, 8, 12, 4);
    const size_t n = gn_n(&c);
    float *din1 = test_falloc(n), *din2 = test_falloc(n), *pre_g = test_falloc(c.C), *pre_b = test_falloc(c.C);
    float *g1 = fzeros(c.C), *b1 = fzeros(c.C), *g2 = fzeros(c.C), *b2 = fzeros(c.C);
    test_fill_uniform(&r, pre_g, c.C, -1, 1);
    test_fill_uniform(&r, pre_b, c.C, -1, 1);
    gn_loss(&c);
    fill_const(din1, n, NAN);
    groupnorm_backward(din1, g1, b1, c.wt, c.in, c.mean, c.rstd, c.gamma, c.B, c.C, c.HW, c.G);
    /* twice into the same buffers, the second time without din */
    fill_const(din2, n, 1e30f);
    groupnorm_backward(din2, g2, b2, c.wt, c.in, c.mean, c.rstd, c.gamma, c.B, c.C, c.HW, c.G);
    groupnorm_backward(NULL, g2, b2, c.wt, c.in, c.mean, c.rstd, c.gamma, c.B, c.C, c.HW, c.G);
    close_f("groupnorm din overwritten, not accumulated", din2, din1, n, 0.0);
    double *ref = expect_sum(g1, 2.0, NULL, c.C);
    close_d("groupnorm dgamma after two calls", g2, ref, c.C, 1e-6);
    free(ref);
    ref = expect_sum(b1, 2.0, NULL, c.C);
    close_d("groupnorm dbeta after two calls", b2, ref, c.C, 1e-6);
    free(ref);
    /* onto arbitrary existing values */
    memcpy(g2, pre_g, c.C * sizeof *g2);
    memcpy(b2, pre_b, c.C * sizeof *b2);
    groupnorm_backward(NULL, g2, b2, c.wt, c.in, c.mean, c.rstd, c.gamma, c.B, c.C, c.HW, c.G);
    ref = expect_sum(g1, 1.0, pre_g, c.C);
    close_d("groupnorm dgamma onto existing values", g2, ref, c.C, 1e-6);
    free(ref);
    ref = expect_sum(b1, 1.0, pre_b, c.C);
    close_d("groupnorm dbeta onto existing values", b2, ref, c.C, 1e-6);
    free(ref);
    free(din1), free(din2), free(pre_g), free(pre_b), free(g1), free(b1), free(g2), free(b2);
    gn_ctx_free(&c);
}

/* ===================================================================== SiLU */

static double silu_d(double x) { return x / (1.0 + exp(-x)); }

static double silu_grad_d(double x)
{
    const double s = 1.0 / (1.0 + exp(-x));
    return s * (1.0 + x * (1.0 - s));
}

static void test_silu_forward_backward(void **state)
{
    (void)state;
    /* a sweep over −20…20 and the extremes, where e^−x overflows */
    enum { SWEEP = 401, N = SWEEP + 10 };
    float x[N], y[N], g[N], dout[N];
    double ref[N], gref[N];
    const float ext[] = {0.0f, 88.0f, -88.0f, 100.0f, -100.0f, 1e4f, -1e4f, 1e30f, -1e30f, -1e-30f};
    for (int i = 0; i < SWEEP; i++) x[i] = -20.0f + 0.1f * (float)i;
    memcpy(x + SWEEP, ext, sizeof ext);
    Rng r;
    rng_seed(&r, 104, RNG_EVAL, 0);
    test_fill_uniform(&r, dout, N, -1, 1);
    silu_forward(y, x, N);
    silu_backward(g, dout, x, N);
    for (int i = 0; i < N; i++) {
        if (!isfinite(y[i]) || !isfinite(g[i]))
            fail_msg("silu at %g: out %g, grad %g (not finite)", (double)x[i], (double)y[i], (double)g[i]);
        ref[i] = silu_d(x[i]);
        gref[i] = dout[i] * silu_grad_d(x[i]);
    }
    /* element by element: relative to each value (the sweep avoids 0) */
    for (int i = 0; i < SWEEP; i++)
        if (!(fabs(y[i] - ref[i]) <= 5e-7 * fabs(ref[i]) + 1e-30))
            fail_msg("silu(%g) = %.9g, want %.9g", (double)x[i], (double)y[i], ref[i]);
    close_d("silu forward (sweep and extremes)", y, ref, SWEEP, 1e-6);
    /* PyTorch's formula rounds 1 − σ against 1: for x up to ~17 that is an
     * absolute ~x·3e-8 on a derivative of order 1 (measured 9e-7) */
    close_d("silu backward vs closed form", g, gref, N, 3e-6);
    if (!(y[SWEEP + 5] == 1e4f && y[SWEEP + 6] == 0.0f)) fail_msg("silu(±1e4) = %g, %g", (double)y[SWEEP + 5], (double)y[SWEEP + 6]);
    /* din may alias dout */
    memcpy(y, dout, sizeof y);
    silu_backward(y, y, x, N);
    close_f("silu backward in place", y, g, N, 0.0);
}

typedef struct {
    size_t n;
    float *in, *out, *wt;
} SiluCtx;

static double silu_loss(void *vc)
{
    SiluCtx *c = vc;
    silu_forward(c->out, c->in, c->n);
    return test_dot(c->out, c->wt, c->n);
}

static void test_silu_backward_fd(void **state)
{
    (void)state;
    Rng r;
    rng_seed(&r, 105, RNG_EVAL, 0);
    enum { N = 300 };
    float in[N], out[N], wt[N], din[N];
    test_fill_uniform(&r, in, N, -6, 6);
    test_fill_uniform(&r, wt, N, -1, 1);
    SiluCtx c = {N, in, out, wt};
    silu_backward(din, wt, in, N);
    fd_check("silu din vs FD", silu_loss, &c, in, din, N, FD_H, 3e-4);
}

/* ================================================================= conv1x1 */

/* PyTorch's Conv2d with a [co, ci, 1, 1] weight:
 * out[b, o, p] = bias[o] + Σ_c w[o, c]·in[b, c, p]. */
static void naive_conv1x1(double *out, const float *in, const float *w, const float *bias, int B,
                          int ci, int co, int HW)
{
    for (int b = 0; b < B; b++)
        for (int o = 0; o < co; o++)
            for (int p = 0; p < HW; p++) {
                double s = bias ? bias[o] : 0.0;
                for (int c = 0; c < ci; c++)
                    s += (double)w[(size_t)o * ci + c] * in[((size_t)b * ci + c) * HW + p];
                out[((size_t)b * co + o) * HW + p] = s;
            }
}

static void test_conv1x1_forward_naive(void **state)
{
    (void)state;
    Rng r;
    rng_seed(&r, 106, RNG_EVAL, 0);
    const int dims[][4] = {{2, 3, 5, 12}, {1, 1, 1, 1}, {2, 64, 192, 49}, {3, 32, 3, 28 * 28}};
    for (size_t t = 0; t < sizeof dims / sizeof dims[0]; t++)
        for (int with_bias = 0; with_bias < 2; with_bias++) {
            const int B = dims[t][0], ci = dims[t][1], co = dims[t][2], HW = dims[t][3];
            const size_t nin = (size_t)B * ci * HW, nout = (size_t)B * co * HW;
            float *in = test_falloc(nin), *w = test_falloc((size_t)co * ci), *b = test_falloc(co), *out = test_falloc(nout);
            double *ref = test_dalloc(nout);
            test_fill_uniform(&r, in, nin, -1, 1);
            test_fill_uniform(&r, w, (size_t)co * ci, -1, 1);
            test_fill_uniform(&r, b, co, -1, 1);
            fill_const(out, nout, NAN); /* overwritten */
            const float *bias = with_bias ? b : NULL;
            conv1x1_forward(out, in, w, bias, B, ci, co, HW);
            naive_conv1x1(ref, in, w, bias, B, ci, co, HW);
            char what[96];
            snprintf(what, sizeof what, "conv1x1 B%d %d→%d HW%d %s", B, ci, co, HW,
                     with_bias ? "bias" : "no bias");
            close_d(what, out, ref, nout, 1e-5);
            free(in), free(w), free(b), free(out), free(ref);
        }
}

typedef struct {
    int B, ci, co, HW;
    float *in, *w, *b, *out, *wt;
} C1Ctx;

static double c1_loss(void *vc)
{
    C1Ctx *c = vc;
    conv1x1_forward(c->out, c->in, c->w, c->b, c->B, c->ci, c->co, c->HW);
    return test_dot(c->out, c->wt, (size_t)c->B * c->co * c->HW);
}

static void c1_ctx_init(C1Ctx *c, Rng *r, int B, int ci, int co, int HW)
{
    *c = (C1Ctx){.B = B, .ci = ci, .co = co, .HW = HW};
    const size_t nin = (size_t)B * ci * HW, nout = (size_t)B * co * HW;
    c->in = test_falloc(nin), c->w = test_falloc((size_t)co * ci), c->b = test_falloc(co);
    c->out = test_falloc(nout), c->wt = test_falloc(nout);
    test_fill_uniform(r, c->in, nin, -1, 1);
    test_fill_uniform(r, c->w, (size_t)co * ci, -1, 1);
    test_fill_uniform(r, c->b, co, -1, 1);
    test_fill_uniform(r, c->wt, nout, -1, 1);
}

static void c1_ctx_free(C1Ctx *c) { free(c->in), free(c->w), free(c->b), free(c->out), free(c->wt); }

static void test_conv1x1_backward_fd(void **state)
{
    (void)state;
    Rng r;
    rng_seed(&r, 107, RNG_EVAL, 0);
    const int dims[][4] = {{2, 3, 5, 12}, {1, 4, 1, 7}, {3, 6, 9, 4}};
    for (size_t t = 0; t < sizeof dims / sizeof dims[0]; t++) {
        C1Ctx c;
        c1_ctx_init(&c, &r, dims[t][0], dims[t][1], dims[t][2], dims[t][3]);
        const size_t nin = (size_t)c.B * c.ci * c.HW, nw = (size_t)c.co * c.ci;
        float *din = test_falloc(nin), *dw = fzeros(nw), *db = fzeros(c.co);
        fill_const(din, nin, NAN);
        c1_loss(&c);
        conv1x1_backward(din, dw, db, c.wt, c.in, c.w, c.B, c.ci, c.co, c.HW);
        char what[96];
        snprintf(what, sizeof what, "conv1x1 B%d %d→%d HW%d din", c.B, c.ci, c.co, c.HW);
        fd_check(what, c1_loss, &c, c.in, din, nin, FD_H_LINEAR, FD_TOL_LINEAR);
        snprintf(what, sizeof what, "conv1x1 B%d %d→%d HW%d dW", c.B, c.ci, c.co, c.HW);
        fd_check(what, c1_loss, &c, c.w, dw, nw, FD_H_LINEAR, FD_TOL_LINEAR);
        snprintf(what, sizeof what, "conv1x1 B%d %d→%d HW%d dbias", c.B, c.ci, c.co, c.HW);
        fd_check(what, c1_loss, &c, c.b, db, c.co, FD_H_LINEAR, FD_TOL_LINEAR);
        free(din), free(dw), free(db);
        c1_ctx_free(&c);
    }
}

/* dW and dbias add up over calls; din is overwritten; din and dbias may be NULL. */
static void test_conv1x1_backward_accumulates(void **state)
{
    (void)state;
    Rng r;
    rng_seed(&r, 108, RNG_EVAL, 0);
    C1Ctx c;
    c1_ctx_init(&c, &r, 2, 6, 5, 10);
    const size_t nin = (size_t)c.B * c.ci * c.HW, nw = (size_t)c.co * c.ci;
    float *din1 = test_falloc(nin), *din2 = test_falloc(nin), *pre_w = test_falloc(nw), *pre_b = test_falloc(c.co);
    float *w1 = fzeros(nw), *b1 = fzeros(c.co), *w2 = fzeros(nw), *b2 = fzeros(c.co);
    float *w3 = fzeros(nw);
    test_fill_uniform(&r, pre_w, nw, -1, 1);
    test_fill_uniform(&r, pre_b, c.co, -1, 1);
    fill_const(din1, nin, NAN);
    conv1x1_backward(din1, w1, b1, c.wt, c.in, c.w, c.B, c.ci, c.co, c.HW);
    fill_const(din2, nin, 1e30f);
    conv1x1_backward(din2, w2, b2, c.wt, c.in, c.w, c.B, c.ci, c.co, c.HW);
    conv1x1_backward(NULL, w2, b2, c.wt, c.in, c.w, c.B, c.ci, c.co, c.HW);
    close_f("conv1x1 din overwritten, not accumulated", din2, din1, nin, 0.0);
    double *ref = expect_sum(w1, 2.0, NULL, nw);
    close_d("conv1x1 dW after two calls", w2, ref, nw, 1e-6);
    free(ref);
    ref = expect_sum(b1, 2.0, NULL, c.co);
    close_d("conv1x1 dbias after two calls", b2, ref, c.co, 1e-6);
    free(ref);
    /* onto existing values, and without a bias gradient */
    memcpy(w2, pre_w, nw * sizeof *w2);
    memcpy(b2, pre_b, c.co * sizeof *b2);
    conv1x1_backward(NULL, w2, b2, c.wt, c.in, c.w, c.B, c.ci, c.co, c.HW);
    conv1x1_backward(NULL, w3, NULL, c.wt, c.in, c.w, c.B, c.ci, c.co, c.HW);
    ref = expect_sum(w1, 1.0, pre_w, nw);
    close_d("conv1x1 dW onto existing values", w2, ref, nw, 1e-6);
    free(ref);
    ref = expect_sum(b1, 1.0, pre_b, c.co);
    close_d("conv1x1 dbias onto existing values", b2, ref, c.co, 1e-6);
    free(ref);
    close_f("conv1x1 dW with dbias = NULL", w3, w1, nw, 0.0);
    free(din1), free(din2), free(pre_w), free(pre_b), free(w1), free(b1), free(w2), free(b2), free(w3);
    c1_ctx_free(&c);
}

/* =============================================================== attention */

/* From the definition: S[i, j] = Σ_c q[c, i]·k[c, j]/√C, P = softmax over j
 * (by log-sum-exp), out[c, i] = Σ_j P[i, j]·v[c, j]. */
static void naive_attention(double *out, double *att, const float *qkv, int B, int C, int N)
{
    double *s = test_dalloc((size_t)N);
    for (int b = 0; b < B; b++) {
        const float *q = qkv + (size_t)b * 3 * C * N, *k = q + (size_t)C * N, *v = k + (size_t)C * N;
        double *P = att + (size_t)b * N * N;
        for (int i = 0; i < N; i++) {
            double mx = -INFINITY, z = 0.0;
            for (int j = 0; j < N; j++) {
                s[j] = 0.0;
                for (int c = 0; c < C; c++) s[j] += (double)q[(size_t)c * N + i] * k[(size_t)c * N + j];
                s[j] /= sqrt((double)C);
                mx = fmax(mx, s[j]);
            }
            for (int j = 0; j < N; j++) z += exp(s[j] - mx);
            for (int j = 0; j < N; j++) P[(size_t)i * N + j] = exp(s[j] - mx) / z;
        }
        for (int c = 0; c < C; c++)
            for (int i = 0; i < N; i++) {
                double acc = 0.0;
                for (int j = 0; j < N; j++) acc += P[(size_t)i * N + j] * v[(size_t)c * N + j];
                out[((size_t)b * C + c) * N + i] = acc;
            }
    }
    free(s);
}

typedef struct {
    int B, C, N;
    float scale; /* of the inputs: large makes the softmax nearly one-hot */
    const char *name;
} AttCase;

static void att_forward_case(Rng *r, const AttCase *k)
{
    const size_t nqkv = (size_t)k->B * 3 * k->C * k->N, nout = (size_t)k->B * k->C * k->N;
    const size_t natt = (size_t)k->B * k->N * k->N;
    float *qkv = test_falloc(nqkv), *out = test_falloc(nout), *att = test_falloc(natt);
    double *ref = test_dalloc(nout), *ratt = test_dalloc(natt);
    test_fill_uniform(r, qkv, nqkv, -k->scale, k->scale);
    fill_const(out, nout, NAN);
    fill_const(att, natt, NAN);
    attention_forward(out, att, qkv, k->B, k->C, k->N);
    naive_attention(ref, ratt, qkv, k->B, k->C, k->N);
    char what[96];
    snprintf(what, sizeof what, "attention out (%s)", k->name);
    close_d(what, out, ref, nout, 1e-5);
    snprintf(what, sizeof what, "attention P (%s)", k->name);
    close_d(what, att, ratt, natt, 1e-5);
    /* every row of P is a distribution */
    for (size_t row = 0; row < (size_t)k->B * k->N; row++) {
        double s = 0.0;
        for (int j = 0; j < k->N; j++) {
            const float p = att[row * k->N + j];
            if (!(p >= 0.0f && p <= 1.0f)) fail_msg("%s: P[row %zu][%d] = %g", k->name, row, j, (double)p);
            s += p;
        }
        if (!(fabs(s - 1.0) <= 1e-6)) fail_msg("%s: row %zu of P sums to %.9g", k->name, row, s);
    }
    free(qkv), free(out), free(att), free(ref), free(ratt);
}

static void test_attention_forward_naive(void **state)
{
    (void)state;
    Rng r;
    rng_seed(&r, 109, RNG_EVAL, 0);
    const AttCase cases[] = {
        {2, 6, 5, 1.0f, "B2 C6 N5"},
        {1, 4, 1, 1.0f, "one position: out = v"},
        {1, 3, 9, 2.0f, "C3 N9"},
        {2, 64, 49, 1.0f, "U-Net shape C64 7x7"},
        {1, 8, 6, 30.0f, "scores ~ 100: softmax must not overflow"},
    };
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) att_forward_case(&r, &cases[t]);
}

typedef struct {
    int B, C, N;
    float *qkv, *out, *att, *wt;
} AttCtx;

static double att_loss(void *vc)
{
    AttCtx *c = vc;
    attention_forward(c->out, c->att, c->qkv, c->B, c->C, c->N);
    return test_dot(c->out, c->wt, (size_t)c->B * c->C * c->N);
}

static void test_attention_backward_fd(void **state)
{
    (void)state;
    Rng r;
    rng_seed(&r, 110, RNG_EVAL, 0);
    const int dims[][3] = {{2, 6, 5}, {1, 3, 9}, {1, 5, 1}};
    for (size_t t = 0; t < sizeof dims / sizeof dims[0]; t++) {
        AttCtx c = {dims[t][0], dims[t][1], dims[t][2], NULL, NULL, NULL, NULL};
        const size_t nqkv = (size_t)c.B * 3 * c.C * c.N, nout = (size_t)c.B * c.C * c.N;
        c.qkv = test_falloc(nqkv), c.out = test_falloc(nout), c.att = test_falloc((size_t)c.B * c.N * c.N);
        c.wt = test_falloc(nout);
        float *dqkv = test_falloc(nqkv), *dqkv2 = test_falloc(nqkv), *scratch = test_falloc((size_t)c.N * c.N);
        test_fill_uniform(&r, c.qkv, nqkv, -1.5f, 1.5f);
        test_fill_uniform(&r, c.wt, nout, -1, 1);
        att_loss(&c);
        fill_const(dqkv, nqkv, NAN); /* overwritten */
        fill_const(scratch, (size_t)c.N * c.N, NAN);
        attention_backward(dqkv, scratch, c.wt, c.qkv, c.att, c.B, c.C, c.N);
        char what[96];
        snprintf(what, sizeof what, "attention B%d C%d N%d dqkv", c.B, c.C, c.N);
        fd_check(what, att_loss, &c, c.qkv, dqkv, nqkv, FD_H, 3e-4);
        /* a second call gives the same, not twice as much */
        fill_const(dqkv2, nqkv, 1e30f);
        attention_backward(dqkv2, scratch, c.wt, c.qkv, c.att, c.B, c.C, c.N);
        snprintf(what, sizeof what, "attention B%d C%d N%d dqkv overwritten", c.B, c.C, c.N);
        close_f(what, dqkv2, dqkv, nqkv, 0.0);
        free(c.qkv), free(c.out), free(c.att), free(c.wt), free(dqkv), free(dqkv2), free(scratch);
    }
}

/* ================================================== layout-only kernels */

/* nearest: out[b, c, y, x] = in[b, c, y/2, x/2] */
static void test_upsample2x(void **state)
{
    (void)state;
    Rng r;
    rng_seed(&r, 111, RNG_EVAL, 0);
    enum { B = 2, C = 3, H = 3, W = 4, NI = B * C * H * W, NO = 4 * NI };
    float in[NI], out[NO], y[NO], back[NI];
    test_fill_uniform(&r, in, NI, -1, 1);
    test_fill_uniform(&r, y, NO, -1, 1);
    fill_const(out, NO, NAN);
    upsample2x_forward(out, in, B, C, H, W);
    for (int pl = 0; pl < B * C; pl++)
        for (int yy = 0; yy < 2 * H; yy++)
            for (int xx = 0; xx < 2 * W; xx++) {
                const float got = out[(pl * 2 * H + yy) * 2 * W + xx];
                const float want = in[(pl * H + yy / 2) * W + xx / 2];
                if (!(got == want))
                    fail_msg("upsample out[plane %d][%d][%d] = %g, want %g", pl, yy, xx, (double)got, (double)want);
            }
    /* the backward is the adjoint, and overwrites */
    fill_const(back, NI, 1e30f);
    upsample2x_backward(back, y, B, C, H, W);
    const double lhs = test_dot(out, y, NO), rhs = test_dot(in, back, NI);
    if (!(fabs(lhs - rhs) <= 1e-5)) fail_msg("<up(x), y> = %.9g but <x, up^T(y)> = %.9g", lhs, rhs);
    /* and is the sum of each 2×2 block */
    const float b0 = back[W + 1];
    const double want = (double)y[2 * 2 * W + 2] + y[2 * 2 * W + 3] + y[3 * 2 * W + 2] + y[3 * 2 * W + 3];
    if (!(fabs(b0 - want) <= 1e-6)) fail_msg("upsample backward [0][1][1] = %.9g, want block sum %.9g", (double)b0, want);
}

static void test_concat_channels(void **state)
{
    (void)state;
    Rng r;
    rng_seed(&r, 112, RNG_EVAL, 0);
    enum { B = 2, CA = 3, CB = 2, HW = 5, NA = B * CA * HW, NB = B * CB * HW, NO = NA + NB };
    float a[NA], b[NB], out[NO], y[NO], da[NA], db[NB], pre_a[NA], pre_b[NB];
    test_fill_uniform(&r, a, NA, -1, 1);
    test_fill_uniform(&r, b, NB, -1, 1);
    test_fill_uniform(&r, y, NO, -1, 1);
    concat_channels(out, a, CA, b, CB, B, HW);
    for (int i = 0; i < B; i++)
        for (int c = 0; c < CA + CB; c++)
            for (int p = 0; p < HW; p++) {
                const float got = out[(i * (CA + CB) + c) * HW + p];
                const float want = c < CA ? a[(i * CA + c) * HW + p] : b[(i * CB + c - CA) * HW + p];
                if (!(got == want)) fail_msg("concat out[%d][%d][%d] = %g, want %g", i, c, p, (double)got, (double)want);
            }
    /* adjoint: <cat(a, b), y> = <a, da> + <b, db> from zero */
    memset(da, 0, sizeof da);
    memset(db, 0, sizeof db);
    concat_channels_backward(da, db, y, CA, CB, B, HW);
    const double lhs = test_dot(out, y, NO), rhs = test_dot(a, da, NA) + test_dot(b, db, NB);
    if (!(fabs(lhs - rhs) <= 1e-6)) fail_msg("<cat(a, b), y> = %.9g but <a, da> + <b, db> = %.9g", lhs, rhs);
    /* it ADDS, and either side may be NULL */
    test_fill_uniform(&r, pre_a, NA, -1, 1);
    test_fill_uniform(&r, pre_b, NB, -1, 1);
    float acc_a[NA], acc_b[NB];
    memcpy(acc_a, pre_a, sizeof acc_a);
    memcpy(acc_b, pre_b, sizeof acc_b);
    concat_channels_backward(acc_a, NULL, y, CA, CB, B, HW);
    concat_channels_backward(NULL, acc_b, y, CA, CB, B, HW);
    double *ref = expect_sum(da, 1.0, pre_a, NA);
    close_d("concat da accumulates (db NULL)", acc_a, ref, NA, 1e-7);
    free(ref);
    ref = expect_sum(db, 1.0, pre_b, NB);
    close_d("concat db accumulates (da NULL)", acc_b, ref, NB, 1e-7);
    free(ref);
}

static void test_add_channel_vector(void **state)
{
    (void)state;
    Rng r;
    rng_seed(&r, 113, RNG_EVAL, 0);
    enum { B = 2, C = 3, HW = 37, N = B * C * HW };
    float x[N], x0[N], v[B * C], y[N], dv[B * C], pre[B * C];
    test_fill_uniform(&r, x0, N, -1, 1);
    test_fill_uniform(&r, v, B * C, -1, 1);
    test_fill_uniform(&r, y, N, -1, 1);
    memcpy(x, x0, sizeof x);
    add_channel_vector(x, v, B, C, HW);
    for (int i = 0; i < N; i++)
        if (!(x[i] == x0[i] + v[i / HW]))
            fail_msg("add_channel_vector x[%d] = %g, want %g + %g", i, (double)x[i], (double)x0[i], (double)v[i / HW]);
    /* adjoint of the broadcast A: <A v, y> = <v, Aᵀ y> */
    for (int i = 0; i < N; i++) x[i] -= x0[i]; /* A v, exactly: the sums above were exact */
    memset(dv, 0, sizeof dv);
    add_channel_vector_backward(dv, y, B, C, HW);
    const double lhs = test_dot(x, y, N), rhs = test_dot(v, dv, B * C);
    if (!(fabs(lhs - rhs) <= 1e-5)) fail_msg("<A v, y> = %.9g but <v, A^T y> = %.9g", lhs, rhs);
    /* dv[b, c] = Σ_p y[b, c, p], added to what is there */
    test_fill_uniform(&r, pre, B * C, -1, 1);
    float acc[B * C];
    double ref[B * C];
    memcpy(acc, pre, sizeof acc);
    add_channel_vector_backward(acc, y, B, C, HW);
    for (int i = 0; i < B * C; i++) {
        ref[i] = pre[i];
        for (int p = 0; p < HW; p++) ref[i] += y[i * HW + p];
    }
    close_d("add_channel_vector dv accumulates", acc, ref, B * C, 1e-6);
}

/* ======================================================= timestep embedding */

static void test_timestep_embedding(void **state)
{
    (void)state;
    /* t = 0: cos 0 = 1, sin 0 = 0 */
    {
        enum { DIM = 10 };
        const int t = 0;
        float out[DIM];
        fill_const(out, DIM, NAN);
        timestep_embedding(out, &t, 1, DIM);
        for (int i = 0; i < DIM; i++)
            if (!(out[i] == (i < DIM / 2 ? 1.0f : 0.0f))) fail_msg("t=0: out[%d] = %g", i, (double)out[i]);
    }
    /* dim 8: half 4 and freq_k = 10000^(−k/4) = 10^−k, so t = 1000 gives
     * [cos 1000, cos 100, cos 10, cos 1, sin 1000, sin 100, sin 10, sin 1] */
    {
        const int t[3] = {1000, 0, 1};
        float out[3 * 8];
        const double a[4] = {1000.0, 100.0, 10.0, 1.0};
        double ref[3 * 8];
        timestep_embedding(out, t, 3, 8);
        for (int k = 0; k < 4; k++) {
            ref[k] = cos(a[k]), ref[4 + k] = sin(a[k]);
            ref[8 + k] = 1.0, ref[12 + k] = 0.0;
            ref[16 + k] = cos(a[k] / 1000.0), ref[20 + k] = sin(a[k] / 1000.0);
        }
        for (int i = 0; i < 24; i++)
            if (!(fabs(out[i] - ref[i]) <= 1e-6))
                fail_msg("t=%d dim 8: out[%d] = %.9g, want %.9g", t[i / 8], i % 8, (double)out[i], ref[i]);
    }
    /* dim 6 (half 3), the formula in double at the steps the model sees */
    {
        const int t[4] = {0, 1, 499, 999};
        float out[4 * 6];
        double ref[4 * 6];
        timestep_embedding(out, t, 4, 6);
        for (int b = 0; b < 4; b++)
            for (int k = 0; k < 3; k++) {
                const double f = exp(-log(10000.0) * k / 3.0);
                ref[b * 6 + k] = cos(t[b] * f);
                ref[b * 6 + 3 + k] = sin(t[b] * f);
            }
        close_d("timestep_embedding dim 6", out, ref, 24, 1e-6);
    }
}

/* ====================================================================== MSE */

static void test_mse(void **state)
{
    (void)state;
    /* by hand: differences 0.5, 0, −2, 0 → (0.25 + 4)/4 */
    const float p4[] = {1, 2, 3, 4}, t4[] = {0.5f, 2, 5, 4};
    const double v4 = mse_forward(p4, t4, 4);
    if (!(v4 == 1.0625)) fail_msg("mse of the hand case = %.17g, want 1.0625", v4);
    float d4[4];
    fill_const(d4, 4, NAN); /* overwritten */
    mse_backward(d4, p4, t4, 4, 2.0f);
    const float want4[] = {0.5f, 0.0f, -2.0f, 0.0f}; /* 2·2·diff/4 */
    close_f("mse_backward hand case (scale 2)", d4, want4, 4, 1e-7);
    /* random: the value in double, and the gradient against FD */
    Rng r;
    rng_seed(&r, 114, RNG_EVAL, 0);
    enum { N = 257 };
    float p[N], t[N], d[N];
    double ref = 0.0, fd[N];
    rng_fill_normal(&r, p, N);
    rng_fill_normal(&r, t, N);
    for (int i = 0; i < N; i++) ref += ((double)p[i] - t[i]) * ((double)p[i] - t[i]);
    ref /= N;
    const double v = mse_forward(p, t, N);
    if (!(fabs(v - ref) <= 1e-12 * ref)) fail_msg("mse = %.17g, want %.17g", v, ref);
    const float scale = 0.3f;
    mse_backward(d, p, t, N, scale);
    for (int i = 0; i < N; i++) {
        const float save = p[i], hp = save + FD_H_LINEAR, hm = save - FD_H_LINEAR;
        p[i] = hp;
        const double lp = mse_forward(p, t, N);
        p[i] = hm;
        const double lm = mse_forward(p, t, N);
        p[i] = save;
        fd[i] = scale * (lp - lm) / ((double)hp - hm); /* exact: quadratic */
    }
    close_d("mse_backward vs FD", d, fd, N, 1e-6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_groupnorm_forward_naive),
        cmocka_unit_test(test_groupnorm_constant_group),
        cmocka_unit_test(test_groupnorm_backward_fd),
        cmocka_unit_test(test_groupnorm_backward_accumulates),
        cmocka_unit_test(test_silu_forward_backward),
        cmocka_unit_test(test_silu_backward_fd),
        cmocka_unit_test(test_conv1x1_forward_naive),
        cmocka_unit_test(test_conv1x1_backward_fd),
        cmocka_unit_test(test_conv1x1_backward_accumulates),
        cmocka_unit_test(test_attention_forward_naive),
        cmocka_unit_test(test_attention_backward_fd),
        cmocka_unit_test(test_upsample2x),
        cmocka_unit_test(test_concat_channels),
        cmocka_unit_test(test_add_channel_vector),
        cmocka_unit_test(test_timestep_embedding),
        cmocka_unit_test(test_mse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
