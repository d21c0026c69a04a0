/* test_kernels.c — the nn kernels (src/kernels.c) against naive direct
 * loops written from PyTorch's definitions, against finite differences, and
 * on hand-computed cases.
 *
 * How results are compared: a tensor is compared as a whole by its
 * normalised error max|got − ref| / max|ref| (ggml's style), and the worst
 * element is printed on failure. References are computed in double.
 *
 * Finite differences: every kernel is evaluated in float, as the models use
 * it, and the scalar probed is L = Σ wᵢ·outᵢ (random wᵢ) accumulated in
 * double. Linear, conv and transposed conv are linear in each of their
 * arguments, so a central difference has no truncation error at all and
 * its only error is float rounding of the outputs divided by the step: a
 * large step (h = 0.25 on values of order 1) keeps that well below the
 * tolerances. The step actually used is the float difference
 * (p + h) − (p − h), not 2h. Element-wise kernels use steps of 1e-3..1e-2
 * on inputs chosen away from ReLU's kink. *
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

#include "genlab/kernels.h"
#include "testutil.h"
#include "genlab/rng.h"

/* ------------------------------------------------------------------ helpers */

/* ------------------------------------------------- naive references (double) */

/* PyTorch's Linear: out[b, o] = bias[o] + Σᵢ W[o, i]·in[b, i]. */
static void naive_linear(double *out, const float *in, const float *w, const float *bias, int B,
                         int n_in, int n_out)
{
    for (int b = 0; b < B; b++)
        for (int o = 0; o < n_out; o++) {
            double s = bias[o];
            for (int i = 0; i < n_in; i++) s += (double)w[(size_t)o * n_in + i] * in[(size_t)b * n_in + i];
            out[(size_t)b * n_out + o] = s;
        }
}

/* PyTorch's Conv2d (cross-correlation), weight [co, ci, k, k], zero padding:
 * out[b, o, y, x] = bias[o] + Σ_{c,i,j} w[o, c, i, j]·in[b, c, y·s − p + i, x·s − p + j]. */
static void naive_conv2d(double *out, const float *in, const float *w, const float *bias, int B,
                         int ci, int ih, int iw, int co, int k, int s, int p, int oh, int ow)
{
    for (int b = 0; b < B; b++)
        for (int o = 0; o < co; o++)
            for (int y = 0; y < oh; y++)
                for (int x = 0; x < ow; x++) {
                    double acc = bias ? bias[o] : 0.0;
                    for (int c = 0; c < ci; c++)
                        for (int i = 0; i < k; i++)
                            for (int j = 0; j < k; j++) {
                                int yy = y * s - p + i, xx = x * s - p + j;
                                if (yy < 0 || yy >= ih || xx < 0 || xx >= iw) continue;
                                acc += (double)w[(((size_t)o * ci + c) * k + i) * k + j] *
                                       in[(((size_t)b * ci + c) * ih + yy) * iw + xx];
                            }
                    out[(((size_t)b * co + o) * oh + y) * ow + x] = acc;
                }
}

/* PyTorch's ConvTranspose2d, weight [cin, cout, k, k]: every input pixel
 * scatters in[b, c, y, x]·w[c, o, i, j] to out[b, o, y·s − p + i, x·s − p + j]
 * (dropped when outside); out size (in − 1)·s − 2p + k + output_padding. */
static void naive_convt(double *out, const float *in, const float *w, const float *bias, int B,
                        int cin, int ih, int iw, int cout, int k, int s, int p, int oh, int ow)
{
    for (int b = 0; b < B; b++)
        for (int o = 0; o < cout; o++)
            for (int t = 0; t < oh * ow; t++)
                out[((size_t)b * cout + o) * oh * ow + t] = bias ? bias[o] : 0.0;
    for (int b = 0; b < B; b++)
        for (int c = 0; c < cin; c++)
            for (int y = 0; y < ih; y++)
                for (int x = 0; x < iw; x++) {
                    double v = in[(((size_t)b * cin + c) * ih + y) * iw + x];
                    for (int o = 0; o < cout; o++)
                        for (int i = 0; i < k; i++)
                            for (int j = 0; j < k; j++) {
                                int yy = y * s - p + i, xx = x * s - p + j;
                                if (yy < 0 || yy >= oh || xx < 0 || xx >= ow) continue;
                                out[(((size_t)b * cout + o) * oh + yy) * ow + xx] +=
                                    v * w[(((size_t)c * cout + o) * k + i) * k + j];
                            }
                }
}

/* ------------------------------------------------------ geometry under test */

typedef struct {
    int B, ci, ih, iw, co, k, s, p;
} ConvCase;

typedef struct {
    int B, cin, ih, iw, cout, k, s, p, op; /* ConvTranspose2d's own terms */
} ConvtCase;

static const ConvCase conv_cases[] = {
    {2, 1, 28, 28, 32, 3, 2, 1},  /* the study's enc.conv1: 28 → 14 */
    {3, 32, 14, 14, 64, 3, 2, 1}, /* the study's enc.conv2: 14 → 7 */
    {3, 3, 7, 9, 5, 3, 1, 1},     /* in_h ≠ in_w, stride 1 */
    {1, 2, 9, 11, 4, 5, 2, 1},    /* k = 5, stride 2 */
    {3, 4, 6, 5, 3, 1, 1, 0},     /* k = 1 */
    {1, 5, 7, 6, 2, 3, 2, 0},     /* padding 0, stride 2 */
    {3, 2, 8, 8, 3, 3, 2, 1},     /* (8 + 2 − 3)/2 floors: last row unused */
    {2, 3, 5, 4, 2, 1, 2, 0},     /* k = 1, stride 2: gaps */
    {1, 1, 5, 5, 1, 5, 1, 2},     /* k = 5, 'same' padding */
};

static const ConvtCase convt_cases[] = {
    {2, 64, 7, 7, 32, 3, 2, 1, 1},   /* the study's dec.deconv1: 7 → 14 */
    {3, 32, 14, 14, 1, 3, 2, 1, 1},  /* the study's dec.deconv2: 14 → 28 */
    {3, 3, 4, 5, 2, 3, 2, 1, 0},     /* output_padding 0, in_h ≠ in_w */
    {2, 2, 5, 3, 3, 5, 1, 0, 0},     /* k = 5, stride 1, padding 0 */
    {1, 4, 3, 4, 5, 1, 1, 0, 0},     /* k = 1 */
    {3, 5, 6, 4, 4, 3, 1, 1, 0},     /* stride 1, padding 1 */
    {1, 3, 4, 3, 2, 5, 2, 1, 1},     /* k = 5, stride 2, output_padding 1 */
    {2, 2, 3, 3, 2, 1, 2, 0, 1},     /* k = 1, stride 2: gaps and a bias-only last row */
};

static ConvShape case_shape(const ConvCase *c)
{
    return conv_shape(c->ci, c->ih, c->iw, c->co, c->k, c->s, c->p);
}

static ConvShape tcase_shape(const ConvtCase *c)
{
    return convt_shape(c->cin, c->ih, c->iw, c->cout, c->k, c->s, c->p, c->op);
}

/* ------------------------------------------------------- shape arithmetic */

static void test_conv_shapes(void **state)
{
    (void)state;
    ConvShape s = conv_shape(1, 28, 28, 32, 3, 2, 1);
    assert_int_equal(s.in_c, 1);
    assert_int_equal(s.out_c, 32);
    assert_int_equal(s.out_h, 14);
    assert_int_equal(s.out_w, 14);
    s = conv_shape(32, 14, 14, 64, 3, 2, 1);
    assert_int_equal(s.out_h, 7);
    assert_int_equal(s.out_w, 7);
    s = conv_shape(2, 9, 11, 4, 5, 2, 1);
    assert_int_equal(s.out_h, 4);
    assert_int_equal(s.out_w, 5);
    /* transposed: the ConvShape describes the adjoint Conv2d */
    ConvShape t = convt_shape(64, 7, 7, 32, 3, 2, 1, 1);
    assert_int_equal(t.out_c, 64);
    assert_int_equal(t.out_h, 7);
    assert_int_equal(t.in_c, 32);
    assert_int_equal(t.in_h, 14);
    assert_int_equal(t.in_w, 14);
    t = convt_shape(32, 14, 14, 1, 3, 2, 1, 1);
    assert_int_equal(t.in_c, 1);
    assert_int_equal(t.in_h, 28);
    assert_int_equal(t.in_w, 28);
    t = convt_shape(3, 4, 5, 2, 3, 2, 1, 0);
    assert_int_equal(t.in_h, 7);
    assert_int_equal(t.in_w, 9);
    /* and the adjoint conv maps the output size back to the input size */
    for (size_t i = 0; i < sizeof convt_cases / sizeof convt_cases[0]; i++) {
        const ConvtCase *c = &convt_cases[i];
        t = tcase_shape(c);
        assert_int_equal(t.in_h, (c->ih - 1) * c->s - 2 * c->p + c->k + c->op);
        assert_int_equal(t.in_w, (c->iw - 1) * c->s - 2 * c->p + c->k + c->op);
        ConvShape back = conv_shape(t.in_c, t.in_h, t.in_w, t.out_c, c->k, c->s, c->p);
        assert_int_equal(back.out_h, c->ih);
        assert_int_equal(back.out_w, c->iw);
    }
}

/* ----------------------------------------------------- forward vs naive */

static void test_linear_forward_naive(void **state)
{
    (void)state;
    Rng r;
    rng_seed(&r, 1, RNG_EVAL, 0);
    const int dims[][3] = {{1, 1, 1}, {3, 7, 5}, {2, 784, 512}, {3, 3136, 2}, {5, 2, 3136}};
    for (size_t t = 0; t < sizeof dims / sizeof dims[0]; t++) {
        const int B = dims[t][0], ni = dims[t][1], no = dims[t][2];
        float *in = test_falloc((size_t)B * ni), *w = test_falloc((size_t)no * ni), *b = test_falloc(no);
        float *out = test_falloc((size_t)B * no);
        double *ref = test_dalloc((size_t)B * no);
        test_fill_uniform(&r, in, (size_t)B * ni, -1, 1);
        test_fill_uniform(&r, w, (size_t)no * ni, -1, 1);
        test_fill_uniform(&r, b, no, -1, 1);
        linear_forward(out, in, w, b, B, ni, no);
        naive_linear(ref, in, w, b, B, ni, no);
        char what[64];
        snprintf(what, sizeof what, "linear B=%d %d→%d", B, ni, no);
        test_check_close_d(what, out, ref, (size_t)B * no, 1e-5);
        free(in), free(w), free(b), free(out), free(ref);
    }
}

static void test_conv2d_forward_naive(void **state)
{
    (void)state;
    Rng r;
    rng_seed(&r, 2, RNG_EVAL, 0);
    for (size_t t = 0; t < sizeof conv_cases / sizeof conv_cases[0]; t++) {
        const ConvCase *c = &conv_cases[t];
        ConvShape s = case_shape(c);
        const size_t nin = (size_t)c->B * c->ci * c->ih * c->iw;
        const size_t nout = (size_t)c->B * c->co * s.out_h * s.out_w;
        const size_t nw = (size_t)c->co * c->ci * c->k * c->k;
        float *in = test_falloc(nin), *w = test_falloc(nw), *b = test_falloc(c->co), *out = test_falloc(nout);
        float *col = test_falloc((size_t)c->ci * c->k * c->k * c->B * s.out_h * s.out_w);
        float *ws = test_falloc(conv_workspace_floats(&s, c->B));
        double *ref = test_dalloc(nout);
        test_fill_uniform(&r, in, nin, -1, 1);
        test_fill_uniform(&r, w, nw, -1, 1);
        test_fill_uniform(&r, b, c->co, -1, 1);
        conv2d_forward(out, col, ws, in, w, b, &s, c->B);
        naive_conv2d(ref, in, w, b, c->B, c->ci, c->ih, c->iw, c->co, c->k, c->s, c->p, s.out_h,
                     s.out_w);
        char what[96];
        snprintf(what, sizeof what, "conv2d B=%d %d→%d %dx%d k%d s%d p%d", c->B, c->ci, c->co,
                 c->ih, c->iw, c->k, c->s, c->p);
        test_check_close_d(what, out, ref, nout, 1e-5);
        free(in), free(w), free(b), free(out), free(col), free(ws), free(ref);
    }
}

static void test_convt_forward_naive(void **state)
{
    (void)state;
    Rng r;
    rng_seed(&r, 3, RNG_EVAL, 0);
    for (size_t t = 0; t < sizeof convt_cases / sizeof convt_cases[0]; t++) {
        const ConvtCase *c = &convt_cases[t];
        ConvShape s = tcase_shape(c);
        const int oh = s.in_h, ow = s.in_w;
        const size_t nin = (size_t)c->B * c->cin * c->ih * c->iw;
        const size_t nout = (size_t)c->B * c->cout * oh * ow;
        const size_t nw = (size_t)c->cin * c->cout * c->k * c->k;
        float *in = test_falloc(nin), *w = test_falloc(nw), *b = test_falloc(c->cout), *out = test_falloc(nout);
        float *ws = test_falloc(conv_workspace_floats(&s, c->B));
        double *ref = test_dalloc(nout);
        test_fill_uniform(&r, in, nin, -1, 1);
        test_fill_uniform(&r, w, nw, -1, 1);
        test_fill_uniform(&r, b, c->cout, -1, 1);
        for (size_t i = 0; i < nout; i++) out[i] = NAN; /* must be overwritten */
        convt_forward(out, ws, in, w, b, &s, c->B);
        naive_convt(ref, in, w, b, c->B, c->cin, c->ih, c->iw, c->cout, c->k, c->s, c->p, oh, ow);
        char what[96];
        snprintf(what, sizeof what, "convT B=%d %d→%d %dx%d k%d s%d p%d op%d", c->B, c->cin,
                 c->cout, c->ih, c->iw, c->k, c->s, c->p, c->op);
        test_check_close_d(what, out, ref, nout, 1e-5);
        free(in), free(w), free(b), free(out), free(ws), free(ref);
    }
}

/* The transposed conv (no bias) is the adjoint of the conv with the same
 * weight: <convT(y), x> = <y, conv(x)>. */
static void test_convt_is_conv_adjoint(void **state)
{
    (void)state;
    Rng r;
    rng_seed(&r, 4, RNG_EVAL, 0);
    for (size_t t = 0; t < sizeof convt_cases / sizeof convt_cases[0]; t++) {
        const ConvtCase *c = &convt_cases[t];
        ConvShape s = tcase_shape(c);
        const size_t nx = (size_t)c->B * s.in_c * s.in_h * s.in_w;
        const size_t ny = (size_t)c->B * s.out_c * s.out_h * s.out_w;
        const size_t nw = (size_t)s.out_c * s.in_c * c->k * c->k;
        float *x = test_falloc(nx), *y = test_falloc(ny), *w = test_falloc(nw);
        float *zb_out = test_falloc(s.out_c), *zb_in = test_falloc(s.in_c);
        float *cx = test_falloc(ny), *ty = test_falloc(nx);
        float *col = test_falloc((size_t)s.in_c * c->k * c->k * c->B * s.out_h * s.out_w);
        float *ws = test_falloc(conv_workspace_floats(&s, c->B));
        test_fill_uniform(&r, x, nx, -1, 1);
        test_fill_uniform(&r, y, ny, -1, 1);
        test_fill_uniform(&r, w, nw, -1, 1);
        memset(zb_out, 0, s.out_c * sizeof *zb_out);
        memset(zb_in, 0, s.in_c * sizeof *zb_in);
        conv2d_forward(cx, col, ws, x, w, zb_out, &s, c->B);
        convt_forward(ty, ws, y, w, zb_in, &s, c->B);
        double a = test_dot(ty, x, nx), b = test_dot(y, cx, ny);
        double scale = sqrt((double)nx * ny) * 1e-6 + 1e-6 * fabs(b);
        if (!(fabs(a - b) <= scale))
            fail_msg("case %zu: <convT(y), x> = %.9g but <y, conv(x)> = %.9g", t, a, b);
        free(x), free(y), free(w), free(zb_out), free(zb_in), free(cx), free(ty), free(col), free(ws);
    }
}

/* ------------------------------------------------------- im2col / col2im */

static void test_im2col_layout(void **state)
{
    (void)state;
    Rng r;
    rng_seed(&r, 5, RNG_EVAL, 0);
    for (size_t t = 0; t < sizeof conv_cases / sizeof conv_cases[0]; t++) {
        const ConvCase *c = &conv_cases[t];
        ConvShape s = case_shape(c);
        const int k = c->k, oh = s.out_h, ow = s.out_w, B = c->B;
        const size_t nin = (size_t)B * c->ci * c->ih * c->iw;
        const size_t P = (size_t)B * oh * ow, ncol = (size_t)c->ci * k * k * P;
        float *in = test_falloc(nin), *col = test_falloc(ncol);
        test_fill_uniform(&r, in, nin, -1, 1);
        for (size_t i = 0; i < ncol; i++) col[i] = NAN; /* every entry is written */
        im2col_batch(col, in, &s, B);
        for (int ch = 0; ch < c->ci; ch++)
            for (int i = 0; i < k; i++)
                for (int j = 0; j < k; j++)
                    for (int b = 0; b < B; b++)
                        for (int y = 0; y < oh; y++)
                            for (int x = 0; x < ow; x++) {
                                int yy = y * c->s - c->p + i, xx = x * c->s - c->p + j;
                                float want = (yy < 0 || yy >= c->ih || xx < 0 || xx >= c->iw)
                                                 ? 0.0f
                                                 : in[(((size_t)b * c->ci + ch) * c->ih + yy) * c->iw + xx];
                                float got = col[((size_t)(ch * k + i) * k + j) * P +
                                                ((size_t)b * oh + y) * ow + x];
                                if (!(got == want))
                                    fail_msg("case %zu: col[c%d i%d j%d][b%d y%d x%d] = %g, want %g", t,
                                             ch, i, j, b, y, x, (double)got, (double)want);
                            }
        free(in), free(col);
    }
}

static void test_im2col_col2im_adjoint(void **state)
{
    (void)state;
    Rng r;
    rng_seed(&r, 6, RNG_EVAL, 0);
    for (size_t t = 0; t < sizeof conv_cases / sizeof conv_cases[0]; t++) {
        const ConvCase *c = &conv_cases[t];
        ConvShape s = case_shape(c);
        const size_t nin = (size_t)c->B * c->ci * c->ih * c->iw;
        const size_t ncol = (size_t)c->ci * c->k * c->k * c->B * s.out_h * s.out_w;
        float *x = test_falloc(nin), *cx = test_falloc(ncol), *cc = test_falloc(ncol), *back = test_falloc(nin);
        test_fill_uniform(&r, x, nin, -1, 1);
        test_fill_uniform(&r, cc, ncol, -1, 1);
        im2col_batch(cx, x, &s, c->B);
        for (size_t i = 0; i < nin; i++) back[i] = 1e30f; /* col2im overwrites */
        col2im_batch(back, cc, &s, c->B);
        double a = test_dot(back, x, nin), b = test_dot(cc, cx, ncol);
        /* both sides are sums of the same products in double (col2im's
         * float sums of at most k² terms aside) */
        if (!(fabs(a - b) <= 1e-5 * (1.0 + sqrt((double)ncol))))
            fail_msg("case %zu: <col2im(c), x> = %.9g but <c, im2col(x)> = %.9g", t, a, b);
        free(x), free(cx), free(cc), free(back);
    }
}

/* --------------------------------------------------- finite differences */

/* A scalar function of the buffers of one kernel call. */
typedef double (*LossFn)(void *ctx);

/* Central differences of fn with respect to the elements idx[0..n) of p (all
 * elements when idx is NULL, n = count), step h; compared with `analytic`
 * by normalised error over the checked elements. */
static double fd_check(const char *what, LossFn fn, void *ctx, float *p, const float *analytic,
                       const size_t *idx, size_t n, float h, double tol)
{
    float *got = test_falloc(n);
    double *fd = test_dalloc(n);
    for (size_t t = 0; t < n; t++) {
        size_t i = idx ? idx[t] : t;
        float save = p[i];
        float hp = save + h, hm = save - h;
        p[i] = hp;
        double lp = fn(ctx);
        p[i] = hm;
        double lm = fn(ctx);
        p[i] = save;
        fd[t] = (lp - lm) / ((double)hp - (double)hm);
        got[t] = analytic[i];
    }
    double err = test_check_close_d(what, got, fd, n, tol);
    free(got);
    free(fd);
    return err;
}

/* n distinct-ish random indices below `total` (all of them when n ≥ total). */
static size_t sample_indices(Rng *r, size_t *idx, size_t n, size_t total)
{
    if (n >= total) {
        for (size_t i = 0; i < total; i++) idx[i] = i;
        return total;
    }
    for (size_t i = 0; i < n; i++) idx[i] = (size_t)rng_below(r, total);
    return n;
}

/* ---- linear ---- */

typedef struct {
    int B, ni, no;
    float *in, *w, *b, *out, *wt; /* wt: the random weights of L */
} LinCtx;

static double lin_loss(void *vc)
{
    LinCtx *c = vc;
    linear_forward(c->out, c->in, c->w, c->b, c->B, c->ni, c->no);
    return test_dot(c->out, c->wt, (size_t)c->B * c->no);
}

#define FD_TOL 1e-4 /* measured: ≤ 4.4e-6 (largest on 3136-long sums) */
#define FD_H 0.25f  /* exact for the (bi)linear kernels: only rounding remains */

static void test_linear_backward_fd(void **state)
{
    (void)state;
    Rng r;
    rng_seed(&r, 7, RNG_EVAL, 0);
    const int dims[][3] = {{3, 7, 5}, {1, 4, 1}, {2, 3136, 3}};
    for (size_t t = 0; t < sizeof dims / sizeof dims[0]; t++) {
        LinCtx c = {.B = dims[t][0], .ni = dims[t][1], .no = dims[t][2]};
        const size_t nin = (size_t)c.B * c.ni, nw = (size_t)c.no * c.ni, nout = (size_t)c.B * c.no;
        c.in = test_falloc(nin), c.w = test_falloc(nw), c.b = test_falloc(c.no), c.out = test_falloc(nout);
        c.wt = test_falloc(nout);
        test_fill_uniform(&r, c.in, nin, -1, 1);
        test_fill_uniform(&r, c.w, nw, -1, 1);
        test_fill_uniform(&r, c.b, c.no, -1, 1);
        test_fill_uniform(&r, c.wt, nout, -1, 1);
        float *din = test_falloc(nin), *dw = test_falloc(nw), *db = test_falloc(c.no);
        memset(dw, 0, nw * sizeof *dw);
        memset(db, 0, c.no * sizeof *db);
        for (size_t i = 0; i < nin; i++) din[i] = NAN; /* overwritten */
        lin_loss(&c);
        linear_backward(din, dw, db, c.wt, c.in, c.w, c.B, c.ni, c.no);
        size_t *idx = malloc(64 * sizeof *idx);
        char what[64];
        size_t n = sample_indices(&r, idx, 64, nin);
        snprintf(what, sizeof what, "linear %d→%d din", c.ni, c.no);
        fd_check(what, lin_loss, &c, c.in, din, idx, n, FD_H, FD_TOL);
        n = sample_indices(&r, idx, 64, nw);
        snprintf(what, sizeof what, "linear %d→%d dW", c.ni, c.no);
        fd_check(what, lin_loss, &c, c.w, dw, idx, n, FD_H, FD_TOL);
        snprintf(what, sizeof what, "linear %d→%d db", c.ni, c.no);
        fd_check(what, lin_loss, &c, c.b, db, NULL, c.no, FD_H, FD_TOL);
        free(idx);
        free(c.in), free(c.w), free(c.b), free(c.out), free(c.wt), free(din), free(dw), free(db);
    }
}

/* ---- conv2d ---- */

typedef struct {
    ConvShape s;
    int B;
    float *in, *w, *b, *out, *col, *ws, *wt;
} ConvCtx;

static double conv_loss(void *vc)
{
    ConvCtx *c = vc;
    conv2d_forward(c->out, c->col, c->ws, c->in, c->w, c->b, &c->s, c->B);
    return test_dot(c->out, c->wt, (size_t)c->B * c->s.out_c * c->s.out_h * c->s.out_w);
}

static void conv_ctx_init(ConvCtx *c, Rng *r, ConvShape s, int B)
{
    c->s = s;
    c->B = B;
    const size_t nin = (size_t)B * s.in_c * s.in_h * s.in_w;
    const size_t nout = (size_t)B * s.out_c * s.out_h * s.out_w;
    const size_t nw = (size_t)s.out_c * s.in_c * s.k * s.k;
    c->in = test_falloc(nin), c->w = test_falloc(nw), c->b = test_falloc(s.out_c), c->out = test_falloc(nout);
    c->col = test_falloc((size_t)s.in_c * s.k * s.k * B * s.out_h * s.out_w);
    c->ws = test_falloc(conv_workspace_floats(&s, B));
    c->wt = test_falloc(nout);
    test_fill_uniform(r, c->in, nin, -1, 1);
    test_fill_uniform(r, c->w, nw, -1, 1);
    test_fill_uniform(r, c->b, s.out_c, -1, 1);
    test_fill_uniform(r, c->wt, nout, -1, 1);
}

static void conv_ctx_free(ConvCtx *c)
{
    free(c->in), free(c->w), free(c->b), free(c->out), free(c->col), free(c->ws), free(c->wt);
}

static void conv_fd_case(Rng *r, const ConvCase *cc, size_t sample)
{
    ConvCtx c;
    conv_ctx_init(&c, r, case_shape(cc), cc->B);
    const ConvShape *s = &c.s;
    const size_t nin = (size_t)c.B * s->in_c * s->in_h * s->in_w;
    const size_t nw = (size_t)s->out_c * s->in_c * s->k * s->k;
    float *din = test_falloc(nin), *dw = test_falloc(nw), *db = test_falloc(s->out_c);
    memset(dw, 0, nw * sizeof *dw);
    memset(db, 0, s->out_c * sizeof *db);
    for (size_t i = 0; i < nin; i++) din[i] = NAN;
    conv_loss(&c); /* fills col for backward */
    conv2d_backward(din, dw, db, c.ws, c.wt, c.col, c.w, s, c.B);
    size_t *idx = malloc((nin > nw ? nin : nw) * sizeof *idx);
    char what[96];
    size_t n = sample_indices(r, idx, sample, nin);
    snprintf(what, sizeof what, "conv2d %d→%d %dx%d k%d s%d p%d din", cc->ci, cc->co, cc->ih,
             cc->iw, cc->k, cc->s, cc->p);
    fd_check(what, conv_loss, &c, c.in, din, idx, n, FD_H, FD_TOL);
    n = sample_indices(r, idx, sample, nw);
    what[strlen(what) - 3] = 0;
    strcat(what, "dW");
    fd_check(what, conv_loss, &c, c.w, dw, idx, n, FD_H, FD_TOL);
    what[strlen(what) - 2] = 0;
    strcat(what, "db");
    fd_check(what, conv_loss, &c, c.b, db, NULL, s->out_c, FD_H, FD_TOL);
    free(idx), free(din), free(dw), free(db);
    conv_ctx_free(&c);
}

static void test_conv2d_backward_fd(void **state)
{
    (void)state;
    Rng r;
    rng_seed(&r, 8, RNG_EVAL, 0);
    /* small shapes: every element; the study's: a sample */
    const ConvCase small[] = {
        {3, 2, 6, 5, 3, 3, 2, 1}, {1, 3, 5, 7, 2, 5, 1, 2}, {2, 3, 4, 3, 2, 1, 1, 0},
        {2, 2, 7, 6, 3, 3, 2, 0}, {3, 1, 8, 8, 2, 3, 2, 1},
    };
    for (size_t t = 0; t < sizeof small / sizeof small[0]; t++) conv_fd_case(&r, &small[t], 100000);
    conv_fd_case(&r, &conv_cases[0], 40);
    conv_fd_case(&r, &conv_cases[1], 40);
}

/* ---- conv_transpose2d ---- */

typedef struct {
    ConvShape s; /* the adjoint conv's terms */
    int B;
    float *in, *w, *b, *out, *ws, *wt;
} ConvtCtx;

static size_t convt_nin(const ConvtCtx *c) { return (size_t)c->B * c->s.out_c * c->s.out_h * c->s.out_w; }
static size_t convt_nout(const ConvtCtx *c) { return (size_t)c->B * c->s.in_c * c->s.in_h * c->s.in_w; }

static double convt_loss(void *vc)
{
    ConvtCtx *c = vc;
    convt_forward(c->out, c->ws, c->in, c->w, c->b, &c->s, c->B);
    return test_dot(c->out, c->wt, convt_nout(c));
}

static void convt_ctx_init(ConvtCtx *c, Rng *r, ConvShape s, int B)
{
    c->s = s;
    c->B = B;
    const size_t nin = convt_nin(c), nout = convt_nout(c);
    const size_t nw = (size_t)s.out_c * s.in_c * s.k * s.k;
    c->in = test_falloc(nin), c->w = test_falloc(nw), c->b = test_falloc(s.in_c), c->out = test_falloc(nout);
    c->ws = test_falloc(conv_workspace_floats(&s, B));
    c->wt = test_falloc(nout);
    test_fill_uniform(r, c->in, nin, -1, 1);
    test_fill_uniform(r, c->w, nw, -1, 1);
    test_fill_uniform(r, c->b, s.in_c, -1, 1);
    test_fill_uniform(r, c->wt, nout, -1, 1);
}

static void convt_ctx_free(ConvtCtx *c)
{
    free(c->in), free(c->w), free(c->b), free(c->out), free(c->ws), free(c->wt);
}

static void convt_fd_case(Rng *r, const ConvtCase *cc, size_t sample)
{
    ConvtCtx c;
    convt_ctx_init(&c, r, tcase_shape(cc), cc->B);
    const ConvShape *s = &c.s;
    const size_t nin = convt_nin(&c), nw = (size_t)s->out_c * s->in_c * s->k * s->k;
    float *din = test_falloc(nin), *dw = test_falloc(nw), *db = test_falloc(s->in_c);
    memset(dw, 0, nw * sizeof *dw);
    memset(db, 0, s->in_c * sizeof *db);
    for (size_t i = 0; i < nin; i++) din[i] = NAN;
    convt_loss(&c);
    convt_backward(din, dw, db, c.ws, c.wt, c.in, c.w, s, c.B);
    size_t *idx = malloc((nin > nw ? nin : nw) * sizeof *idx);
    char what[96];
    size_t n = sample_indices(r, idx, sample, nin);
    snprintf(what, sizeof what, "convT %d→%d %dx%d k%d s%d p%d op%d din", cc->cin, cc->cout, cc->ih,
             cc->iw, cc->k, cc->s, cc->p, cc->op);
    fd_check(what, convt_loss, &c, c.in, din, idx, n, FD_H, FD_TOL);
    n = sample_indices(r, idx, sample, nw);
    what[strlen(what) - 3] = 0;
    strcat(what, "dW");
    fd_check(what, convt_loss, &c, c.w, dw, idx, n, FD_H, FD_TOL);
    what[strlen(what) - 2] = 0;
    strcat(what, "db");
    fd_check(what, convt_loss, &c, c.b, db, NULL, s->in_c, FD_H, FD_TOL);
    free(idx), free(din), free(dw), free(db);
    convt_ctx_free(&c);
}

static void test_convt_backward_fd(void **state)
{
    (void)state;
    Rng r;
    rng_seed(&r, 9, RNG_EVAL, 0);
    const ConvtCase small[] = {
        {3, 3, 3, 4, 2, 3, 2, 1, 1}, {2, 2, 4, 2, 3, 5, 1, 1, 0}, {1, 2, 3, 3, 3, 1, 2, 0, 1},
        {2, 3, 4, 3, 2, 3, 2, 0, 0}, {1, 2, 2, 3, 2, 5, 2, 1, 1},
    };
    for (size_t t = 0; t < sizeof small / sizeof small[0]; t++) convt_fd_case(&r, &small[t], 100000);
    convt_fd_case(&r, &convt_cases[0], 40);
    convt_fd_case(&r, &convt_cases[1], 40);
}

/* ------------------------------- accumulation (+=) and din == NULL */

static void test_backward_accumulates(void **state)
{
    (void)state;
    Rng r;
    rng_seed(&r, 10, RNG_EVAL, 0);

    /* linear */
    {
        const int B = 3, ni = 37, no = 11;
        const size_t nw = (size_t)no * ni;
        float *in = test_falloc((size_t)B * ni), *w = test_falloc(nw), *dout = test_falloc((size_t)B * no);
        float *din = test_falloc((size_t)B * ni), *din2 = test_falloc((size_t)B * ni);
        float *dw1 = test_falloc(nw), *db1 = test_falloc(no), *dw2 = test_falloc(nw), *db2 = test_falloc(no);
        float *dw3 = test_falloc(nw), *db3 = test_falloc(no), *pre_w = test_falloc(nw), *pre_b = test_falloc(no);
        test_fill_uniform(&r, in, (size_t)B * ni, -1, 1);
        test_fill_uniform(&r, w, nw, -1, 1);
        test_fill_uniform(&r, dout, (size_t)B * no, -1, 1);
        memset(dw1, 0, nw * sizeof(float)), memset(db1, 0, no * sizeof(float));
        memset(dw2, 0, nw * sizeof(float)), memset(db2, 0, no * sizeof(float));
        linear_backward(din, dw1, db1, dout, in, w, B, ni, no);
        /* twice into the same buffers: 2×, with din == NULL the second time */
        linear_backward(din2, dw2, db2, dout, in, w, B, ni, no);
        linear_backward(NULL, dw2, db2, dout, in, w, B, ni, no);
        double *ref = test_dalloc(nw);
        for (size_t i = 0; i < nw; i++) ref[i] = 2.0 * dw1[i];
        test_check_close_d("linear dW after two backward calls", dw2, ref, nw, 1e-6);
        for (int i = 0; i < no; i++) ref[i] = 2.0 * db1[i];
        test_check_close_d("linear db after two backward calls", db2, ref, no, 1e-6);
        test_check_close("linear din (same inputs, twice)", din2, din, (size_t)B * ni, 0.0);
        /* onto arbitrary existing values */
        test_fill_uniform(&r, pre_w, nw, -1, 1);
        test_fill_uniform(&r, pre_b, no, -1, 1);
        memcpy(dw3, pre_w, nw * sizeof(float)), memcpy(db3, pre_b, no * sizeof(float));
        linear_backward(NULL, dw3, db3, dout, in, w, B, ni, no);
        for (size_t i = 0; i < nw; i++) ref[i] = (double)pre_w[i] + dw1[i];
        test_check_close_d("linear dW onto existing values", dw3, ref, nw, 1e-6);
        for (int i = 0; i < no; i++) ref[i] = (double)pre_b[i] + db1[i];
        test_check_close_d("linear db onto existing values", db3, ref, no, 1e-6);
        free(ref);
        free(in), free(w), free(dout), free(din), free(din2), free(dw1), free(db1), free(dw2);
        free(db2), free(dw3), free(db3), free(pre_w), free(pre_b);
    }

    /* conv2d and convT on the study's geometries */
    for (int kind = 0; kind < 2; kind++) {
        ConvShape s = kind == 0 ? conv_shape(32, 14, 14, 64, 3, 2, 1)
                                : convt_shape(64, 7, 7, 32, 3, 2, 1, 1);
        const int B = 2;
        const size_t nx = (size_t)B * s.in_c * s.in_h * s.in_w;   /* conv input side */
        const size_t ny = (size_t)B * s.out_c * s.out_h * s.out_w; /* conv output side */
        const size_t nw = (size_t)s.out_c * s.in_c * s.k * s.k;
        const int nb = kind == 0 ? s.out_c : s.in_c;
        const size_t nd = kind == 0 ? nx : ny; /* din's size */
        float *x = test_falloc(nx), *y = test_falloc(ny), *w = test_falloc(nw);
        float *col = test_falloc((size_t)s.in_c * s.k * s.k * B * s.out_h * s.out_w);
        float *ws = test_falloc(conv_workspace_floats(&s, B));
        float *din = test_falloc(nd), *din2 = test_falloc(nd);
        float *dw1 = calloc(nw, sizeof(float)), *db1 = calloc(nb, sizeof(float));
        float *dw2 = calloc(nw, sizeof(float)), *db2 = calloc(nb, sizeof(float));
        float *dw3 = calloc(nw, sizeof(float)), *db3 = calloc(nb, sizeof(float));
        assert_true(dw1 && db1 && dw2 && db2 && dw3 && db3);
        test_fill_uniform(&r, x, nx, -1, 1);
        test_fill_uniform(&r, y, ny, -1, 1);
        test_fill_uniform(&r, w, nw, -1, 1);
        const char *name = kind == 0 ? "conv2d" : "convT";
        if (kind == 0) {
            im2col_batch(col, x, &s, B); /* what the forward leaves for backward */
            conv2d_backward(din, dw1, db1, ws, y, col, w, &s, B);
            conv2d_backward(din2, dw2, db2, ws, y, col, w, &s, B);
            conv2d_backward(NULL, dw2, db2, ws, y, col, w, &s, B);
            conv2d_backward(NULL, dw3, db3, ws, y, col, w, &s, B);
        } else {
            /* convT: the input is y (conv output side), dout is x */
            convt_backward(din, dw1, db1, ws, x, y, w, &s, B);
            convt_backward(din2, dw2, db2, ws, x, y, w, &s, B);
            convt_backward(NULL, dw2, db2, ws, x, y, w, &s, B);
            convt_backward(NULL, dw3, db3, ws, x, y, w, &s, B);
        }
        char what[64];
        double *ref = test_dalloc(nw);
        for (size_t i = 0; i < nw; i++) ref[i] = 2.0 * dw1[i];
        snprintf(what, sizeof what, "%s dW after two backward calls", name);
        test_check_close_d(what, dw2, ref, nw, 1e-6);
        for (int i = 0; i < nb; i++) ref[i] = 2.0 * db1[i];
        snprintf(what, sizeof what, "%s db after two backward calls", name);
        test_check_close_d(what, db2, ref, nb, 1e-6);
        snprintf(what, sizeof what, "%s dW with din = NULL", name);
        test_check_close(what, dw3, dw1, nw, 1e-6);
        snprintf(what, sizeof what, "%s db with din = NULL", name);
        test_check_close(what, db3, db1, nb, 1e-6);
        snprintf(what, sizeof what, "%s din (same inputs, twice)", name);
        test_check_close(what, din2, din, nd, 0.0);
        free(ref);
        free(x), free(y), free(w), free(col), free(ws), free(din), free(din2);
        free(dw1), free(db1), free(dw2), free(db2), free(dw3), free(db3);
    }
}

/* ---------------------------------------------------------- element-wise */

static void test_relu(void **state)
{
    (void)state;
    Rng r;
    rng_seed(&r, 11, RNG_EVAL, 0);
    enum { N = 200 };
    float x[N], y[N], g[N], w[N];
    for (int i = 0; i < N; i++) {
        /* |x| ≥ 0.1: an FD step of 1e-2 never crosses the kink */
        float a = 0.1f + 0.9f * rng_uniform(&r);
        x[i] = rng_uniform(&r) < 0.5f ? -a : a;
        w[i] = 2.0f * rng_uniform(&r) - 1.0f;
    }
    x[0] = 0.0f; /* PyTorch: relu'(0) = 0 */
    relu_forward(y, x, N);
    for (int i = 0; i < N; i++) assert_true(y[i] == (x[i] > 0 ? x[i] : 0.0f));
    memcpy(g, w, sizeof g);
    relu_backward(g, y, N);
    assert_true(g[0] == 0.0f);
    for (int i = 1; i < N; i++) {
        float h = 1e-2f, xp = x[i] + h, xm = x[i] - h, yp, ym;
        relu_forward(&yp, &xp, 1);
        relu_forward(&ym, &xm, 1);
        double fd = (double)w[i] * ((double)yp - ym) / ((double)xp - xm);
        if (!(fabs(fd - g[i]) <= 1e-6)) fail_msg("relu' at %g: %g, FD %g", (double)x[i], (double)g[i], fd);
    }
    /* in place, as the models use it */
    memcpy(g, x, sizeof g);
    relu_forward(g, g, N);
    assert_memory_equal(g, y, sizeof g);
}

static double sigmoid_d(double x) { return 1.0 / (1.0 + exp(-x)); }

static void test_sigmoid(void **state)
{
    (void)state;
    const float x[] = {0.0f, 1.0f, -1.0f, 5.0f, -5.0f, 20.0f, -20.0f, 100.0f, -100.0f, 1e4f, -1e4f};
    enum { N = sizeof x / sizeof x[0] };
    float y[N];
    sigmoid_forward(y, x, N);
    assert_true(y[0] == 0.5f);
    for (int i = 0; i < N; i++) {
        double want = sigmoid_d(x[i]);
        assert_true(isfinite(y[i]));
        assert_true(y[i] >= 0.0f && y[i] <= 1.0f);
        if (!(fabs(y[i] - want) <= 2e-7 * want + 1e-45))
            fail_msg("sigmoid(%g) = %.9g, want %.9g", (double)x[i], (double)y[i], want);
    }
}

/* The closed form in double: max(l, 0) − l·x + log1p(e^−|l|). */
static double bce_d(double l, double x) { return fmax(l, 0.0) - l * x + log1p(exp(-fabs(l))); }

static void test_bce_hand_cases(void **state)
{
    (void)state;
    /* logit 0, target ½: −½ log ½ − ½ log ½ = log 2 each */
    const float l0[] = {0.0f, 0.0f}, t0[] = {0.5f, 0.5f};
    float d[2] = {NAN, NAN}; /* the backward overwrites */
    double v = bce_logits(l0, t0, 2);
    assert_true(fabs(v - 2.0 * log(2.0)) <= 1e-6);
    bce_logits_backward(d, l0, t0, 2, 1.0f);
    assert_true(d[0] == 0.0f && d[1] == 0.0f); /* σ(0) − ½ */
    /* logit 0, target 1 and 0: log 2 each too, gradients −½ and +½ */
    const float t1[] = {1.0f, 0.0f};
    v = bce_logits(l0, t1, 2);
    assert_true(fabs(v - 2.0 * log(2.0)) <= 1e-6);
    d[0] = d[1] = 1e30f;
    bce_logits_backward(d, l0, t1, 2, 1.0f);
    assert_true(d[0] == -0.5f && d[1] == 0.5f);
    /* logit ln 3 (σ = ¾), target 1: −log ¾; the gradient scaled */
    const float l3[] = {(float)log(3.0)}, one[] = {1.0f};
    v = bce_logits(l3, one, 1);
    assert_true(fabs(v + log(0.75)) <= 1e-6);
    bce_logits_backward(d, l3, one, 1, 2.0f);
    assert_true(fabs(d[0] - 2.0 * (0.75 - 1.0)) <= 1e-6);
    /* equals the probability form −[x log σ + (1 − x) log(1 − σ)] */
    Rng r;
    rng_seed(&r, 12, RNG_EVAL, 0);
    for (int i = 0; i < 100; i++) {
        float l = 16.0f * rng_uniform(&r) - 8.0f, x = rng_uniform(&r);
        double p = sigmoid_d(l), want = -(x * log(p) + (1.0 - x) * log(1.0 - p));
        v = bce_logits(&l, &x, 1);
        if (!(fabs(v - want) <= 1e-6 * (1.0 + want)))
            fail_msg("bce(%g, %g) = %.9g, want %.9g", (double)l, (double)x, v, want);
    }
}

static void test_bce_large_logits(void **state)
{
    (void)state;
    const float l[] = {100.0f, -100.0f, 100.0f, -100.0f, 100.0f, -100.0f, 1e4f, -1e4f, 88.0f, -88.0f};
    const float x[] = {0.0f, 1.0f, 1.0f, 0.0f, 0.3f, 0.3f, 0.0f, 1.0f, 0.5f, 0.5f};
    enum { N = sizeof l / sizeof l[0] };
    float d[N];
    double total = bce_logits(l, x, N), sum = 0.0;
    bce_logits_backward(d, l, x, N, 1.0f);
    assert_true(isfinite(total));
    for (int i = 0; i < N; i++) {
        double v = bce_logits(&l[i], &x[i], 1), want = bce_d(l[i], x[i]);
        sum += v;
        assert_true(isfinite(v) && isfinite(d[i]));
        if (!(fabs(v - want) <= 1e-6 * (1.0 + fabs(want))))
            fail_msg("bce(%g, %g) = %.9g, want %.9g", (double)l[i], (double)x[i], v, want);
        double gwant = sigmoid_d(l[i]) - x[i];
        if (!(fabs(d[i] - gwant) <= 1e-6))
            fail_msg("bce'(%g, %g) = %.9g, want %.9g", (double)l[i], (double)x[i], (double)d[i], gwant);
        /* FD with a step of 1: the function is linear out there */
        if (fabsf(l[i]) <= 100.0f) {
            float lp = l[i] + 1.0f, lm = l[i] - 1.0f;
            double fd = (bce_logits(&lp, &x[i], 1) - bce_logits(&lm, &x[i], 1)) / ((double)lp - lm);
            if (!(fabs(fd - d[i]) <= 1e-5))
                fail_msg("bce' FD at %g: %g vs %g", (double)l[i], fd, (double)d[i]);
        }
    }
    assert_true(fabs(total - sum) <= 1e-9 * (1.0 + fabs(sum)));
    /* saturated and right: no loss; saturated and wrong: |l| */
    assert_true(bce_logits(&l[2], &x[2], 1) < 1e-30);
    assert_true(fabs(bce_logits(&l[0], &x[0], 1) - 100.0) <= 1e-5);
}

static void test_bce_fd(void **state)
{
    (void)state;
    Rng r;
    rng_seed(&r, 13, RNG_EVAL, 0);
    enum { N = 300 };
    float l[N], x[N], d[N];
    double fd[N];
    for (int i = 0; i < N; i++) {
        l[i] = 12.0f * rng_uniform(&r) - 6.0f;
        x[i] = i % 5 == 0 ? (float)(i % 2) : rng_uniform(&r);
    }
    const float scale = 0.7f;
    bce_logits_backward(d, l, x, N, scale);
    for (int i = 0; i < N; i++) {
        float h = 1e-2f, lp = l[i] + h, lm = l[i] - h;
        fd[i] = scale * (bce_logits(&lp, &x[i], 1) - bce_logits(&lm, &x[i], 1)) / ((double)lp - lm);
    }
    /* truncation (h²/6)·|f'''| ≤ 2e-6, rounding ~1e-5: measured 3e-5 */
    test_check_close_d("bce_logits_backward vs FD", d, fd, N, 1e-3);
}

static void test_kld_hand_cases(void **state)
{
    (void)state;
    const float mu[] = {0.0f, 1.0f, 0.0f}, lv[] = {0.0f, 0.0f, (float)log(2.0)};
    double v = kld_normal(NULL, NULL, &mu[0], &lv[0], 1, 1.0f);
    assert_true(fabs(v) <= 1e-12);
    v = kld_normal(NULL, NULL, &mu[1], &lv[1], 1, 1.0f);
    assert_true(fabs(v - 0.5) <= 1e-7);
    v = kld_normal(NULL, NULL, &mu[2], &lv[2], 1, 1.0f);
    const double want = -0.5 * (1.0 + log(2.0) - 2.0);
    assert_true(fabs(v - want) <= 1e-7);
    v = kld_normal(NULL, NULL, mu, lv, 3, 1.0f);
    assert_true(fabs(v - (0.5 + want)) <= 1e-7);
    /* gradients ADD scale·μ and scale·½(e^logvar − 1) */
    float dmu[3] = {10, 20, 30}, dlv[3] = {-1, -2, -3};
    kld_normal(dmu, dlv, mu, lv, 3, 2.0f);
    assert_true(fabsf(dmu[0] - 10.0f) <= 1e-6f && fabsf(dmu[1] - 22.0f) <= 1e-6f &&
                fabsf(dmu[2] - 30.0f) <= 1e-6f);
    assert_true(fabsf(dlv[0] + 1.0f) <= 1e-6f && fabsf(dlv[1] + 2.0f) <= 1e-6f &&
                fabsf(dlv[2] - (-3.0f + 1.0f)) <= 1e-6f);
    /* only one of the two gradients asked for */
    float only[3] = {0, 0, 0};
    kld_normal(only, NULL, mu, lv, 3, 1.0f);
    assert_true(only[1] == 1.0f);
    memset(only, 0, sizeof only);
    kld_normal(NULL, only, mu, lv, 3, 1.0f);
    assert_true(fabsf(only[2] - 0.5f) <= 1e-6f);
}

static void test_kld_fd(void **state)
{
    (void)state;
    Rng r;
    rng_seed(&r, 14, RNG_EVAL, 0);
    enum { N = 64 };
    float mu[N], lv[N], dmu[N], dlv[N], pre_mu[N], pre_lv[N];
    double fd_mu[N], fd_lv[N];
    test_fill_uniform(&r, mu, N, -2, 2);
    test_fill_uniform(&r, lv, N, -3, 2);
    test_fill_uniform(&r, pre_mu, N, -1, 1);
    test_fill_uniform(&r, pre_lv, N, -1, 1);
    const float scale = 0.7f;
    memset(dmu, 0, sizeof dmu);
    memset(dlv, 0, sizeof dlv);
    kld_normal(dmu, dlv, mu, lv, N, scale);
    for (int i = 0; i < N; i++) {
        const float h = 1e-2f;
        float p = mu[i] + h, m = mu[i] - h;
        fd_mu[i] = scale * (kld_normal(NULL, NULL, &p, &lv[i], 1, 1) - kld_normal(NULL, NULL, &m, &lv[i], 1, 1)) /
                   ((double)p - m);
        p = lv[i] + h, m = lv[i] - h;
        fd_lv[i] = scale * (kld_normal(NULL, NULL, &mu[i], &p, 1, 1) - kld_normal(NULL, NULL, &mu[i], &m, 1, 1)) /
                   ((double)p - m);
    }
    test_check_close_d("kld dmu vs FD", dmu, fd_mu, N, 1e-3);
    test_check_close_d("kld dlogvar vs FD", dlv, fd_lv, N, 1e-3);
    /* accumulation onto existing values */
    float amu[N], alv[N];
    memcpy(amu, pre_mu, sizeof amu);
    memcpy(alv, pre_lv, sizeof alv);
    kld_normal(amu, alv, mu, lv, N, scale);
    for (int i = 0; i < N; i++) fd_mu[i] = (double)pre_mu[i] + dmu[i], fd_lv[i] = (double)pre_lv[i] + dlv[i];
    test_check_close_d("kld dmu accumulates", amu, fd_mu, N, 1e-6);
    test_check_close_d("kld dlogvar accumulates", alv, fd_lv, N, 1e-6);
}

typedef struct {
    int n;
    float *z, *mu, *lv, *eps, *wt;
} RepCtx;

static double rep_loss(void *vc)
{
    RepCtx *c = vc;
    reparam_forward(c->z, c->mu, c->lv, c->eps, (size_t)c->n);
    return test_dot(c->z, c->wt, (size_t)c->n);
}

static void test_reparam(void **state)
{
    (void)state;
    Rng r;
    rng_seed(&r, 15, RNG_EVAL, 0);
    enum { N = 64 };
    float z[N], mu[N], lv[N], eps[N], wt[N], dmu[N], dlv[N], pre_mu[N], pre_lv[N];
    test_fill_uniform(&r, mu, N, -2, 2);
    test_fill_uniform(&r, lv, N, -3, 2);
    rng_fill_normal(&r, eps, N);
    test_fill_uniform(&r, wt, N, -1, 1);
    RepCtx c = {N, z, mu, lv, eps, wt};
    rep_loss(&c);
    for (int i = 0; i < N; i++) {
        double want = mu[i] + exp(0.5 * lv[i]) * eps[i];
        if (!(fabs(z[i] - want) <= 1e-6 * (1.0 + fabs(want))))
            fail_msg("z[%d] = %.9g, want %.9g", i, (double)z[i], want);
    }
    test_fill_uniform(&r, pre_mu, N, -1, 1);
    test_fill_uniform(&r, pre_lv, N, -1, 1);
    memset(dmu, 0, sizeof dmu);
    memset(dlv, 0, sizeof dlv);
    reparam_backward(dmu, dlv, wt, lv, eps, N);
    fd_check("reparam dmu", rep_loss, &c, mu, dmu, NULL, N, 1e-2f, 1e-3);
    /* truncation: (h²/6)·|∂³| = 1e-4/6·|ε e^{lv/2}|/8 ≪ 1e-3 of the max */
    fd_check("reparam dlogvar", rep_loss, &c, lv, dlv, NULL, N, 1e-2f, 1e-3);
    /* it ADDS */
    float amu[N], alv[N];
    memcpy(amu, pre_mu, sizeof amu);
    memcpy(alv, pre_lv, sizeof alv);
    reparam_backward(amu, alv, wt, lv, eps, N);
    double ref_mu[N], ref_lv[N];
    for (int i = 0; i < N; i++) ref_mu[i] = (double)pre_mu[i] + dmu[i], ref_lv[i] = (double)pre_lv[i] + dlv[i];
    test_check_close_d("reparam dmu accumulates", amu, ref_mu, N, 1e-6);
    test_check_close_d("reparam dlogvar accumulates", alv, ref_lv, N, 1e-6);
}

/* The vectorised exp/log1p behind BCE and σ against double precision,
 * element by element, over the whole useful range of logits (and beyond,
 * into σ's denormals). */
static void test_bce_sigmoid_accuracy_sweep(void **state)
{
    (void)state;
    enum { N = 20001 };
    static float l[N], x[N], s[N];
    for (int i = 0; i < N; i++) {
        l[i] = -100.0f + 0.01f * (float)i; /* −100 … 100 */
        x[i] = (float)(i % 3) / 2.0f;      /* targets 0, 0.5, 1 */
    }
    sigmoid_forward(s, l, N);
    double worst_bce = 0, worst_sig = 0;
    for (int i = 0; i < N; i++) {
        double L = l[i];
        double want = fmax(L, 0) - L * x[i] + log1p(exp(-fabs(L)));
        double got = bce_logits(&l[i], &x[i], 1);
        worst_bce = fmax(worst_bce, fabs(got - want) / fmax(fabs(want), 1e-3));
        double sig = 1.0 / (1.0 + exp(-L));
        if (sig > 1e-37) worst_sig = fmax(worst_sig, fabs(s[i] - sig) / sig);
    }
    if (getenv("GENLAB_TEST_VERBOSE")) printf("worst relative error: BCE %.3g, sigmoid %.3g\n", worst_bce, worst_sig);
    assert_true(worst_bce < 1e-6);
    assert_true(worst_sig < 1e-6);
    /* into the denormals: σ(−100) = 3.72e-44 */
    float m100 = -100.0f, out;
    sigmoid_forward(&out, &m100, 1);
    assert_true(fabs(out - 3.720076e-44) <= 2e-45);
}

/* The streamed Conv2d equals the batched one (itself checked against naive
 * loops above): one image per chunk at 28×28, several with a partial last
 * chunk at 7×7, and stride 2. Same GEMM shapes per column block, so only
 * summation order may differ. */
static void check_stream_case(int ci, int side, int co, int stride, int B)
{
    ConvShape s = conv_shape(ci, side, side, co, 3, stride, 1);
    const size_t nin = (size_t)B * ci * side * side, nout = (size_t)B * co * s.out_h * s.out_w;
    const size_t nw = (size_t)co * ci * 9;
    Rng r;
    rng_seed(&r, 11, RNG_EVAL, (uint64_t)(ci * 1000 + side));
    float *in = test_falloc(nin), *w = test_falloc(nw), *b = test_falloc(co), *dout = test_falloc(nout);
    test_fill_uniform(&r, in, nin, -1, 1), test_fill_uniform(&r, w, nw, -0.3f, 0.3f);
    test_fill_uniform(&r, b, co, -1, 1), test_fill_uniform(&r, dout, nout, -1, 1);
    float *col = test_falloc(conv_workspace_floats(&s, B)), *ws = test_falloc(conv_workspace_floats(&s, B));
    float *wss = test_falloc(conv_stream_workspace_floats(&s, B));
    float *o1 = test_falloc(nout), *o2 = test_falloc(nout), *di1 = test_falloc(nin), *di2 = test_falloc(nin);
    float *dw1 = calloc(nw, sizeof *dw1), *dw2 = calloc(nw, sizeof *dw2);
    float *db1 = calloc(co, sizeof *db1), *db2 = calloc(co, sizeof *db2);
    conv2d_forward(o1, col, ws, in, w, b, &s, B);
    conv2d_stream_forward(o2, wss, in, w, b, &s, B);
    conv2d_backward(di1, dw1, db1, ws, dout, col, w, &s, B);
    conv2d_stream_backward(di2, dw2, db2, wss, dout, in, w, &s, B);
    test_check_close("stream conv out", o2, o1, nout, 1e-6);
    test_check_close("stream conv din", di2, di1, nin, 1e-6);
    test_check_close("stream conv dw", dw2, dw1, nw, 1e-5);
    test_check_close("stream conv db", db2, db1, co, 1e-6);
    free(in), free(w), free(b), free(dout), free(col), free(ws), free(wss), free(o1), free(o2);
    free(di1), free(di2), free(dw1), free(dw2), free(db1), free(db2);
}

static void test_conv_stream_matches_batched(void **state)
{
    (void)state;
    check_stream_case(32, 28, 16, 1, 3); /* one image per chunk */
    check_stream_case(24, 7, 40, 1, 30); /* chunks of 12, 12, 6 */
    check_stream_case(8, 14, 8, 2, 40);  /* stride 2, chunks of 37 and 3 */
    check_stream_case(1, 28, 8, 1, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_shapes),
        cmocka_unit_test(test_conv_stream_matches_batched),
        cmocka_unit_test(test_linear_forward_naive),
        cmocka_unit_test(test_conv2d_forward_naive),
        cmocka_unit_test(test_convt_forward_naive),
        cmocka_unit_test(test_convt_is_conv_adjoint),
        cmocka_unit_test(test_im2col_layout),
        cmocka_unit_test(test_im2col_col2im_adjoint),
        cmocka_unit_test(test_linear_backward_fd),
        cmocka_unit_test(test_conv2d_backward_fd),
        cmocka_unit_test(test_convt_backward_fd),
        cmocka_unit_test(test_backward_accumulates),
        cmocka_unit_test(test_relu),
        cmocka_unit_test(test_sigmoid),
        cmocka_unit_test(test_bce_hand_cases),
        cmocka_unit_test(test_bce_large_logits),
        cmocka_unit_test(test_bce_sigmoid_accuracy_sweep),
        cmocka_unit_test(test_bce_fd),
        cmocka_unit_test(test_kld_hand_cases),
        cmocka_unit_test(test_kld_fd),
        cmocka_unit_test(test_reparam),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
