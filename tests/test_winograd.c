/* test_winograd.c — the F(4×4, 3×3) convolution (src/winograd.c) against
 * naive loops in double, for the forward pass and for both gradients.
 *
 * The gradients' references are the definitions, not finite differences:
 * a conv is linear in its input and in its weights, so
 *   din[b,c,y,x] = Σ_k,i,j dout[b,k,y−i+1,x−j+1]·w[k,c,i,j]
 *   dw[k,c,i,j] += Σ_b,y,x dout[b,k,y,x]·in[b,c,y+i−1,x+j−1]
 * are exact, and a wrong transform, tile index or clipping errs by O(1).
 * Winograd's transforms add rounding (F(4, 3)'s matrices hold 4, 5, 8,
 * 1/6 and 1/24, and each output sums 36 products of transformed values):
 * errors measure 1e-7..8e-6 of the largest value, the largest for the
 * filter gradient summed over 28×28 images; the tolerance is 5e-5.
 *
 * Shapes: sides that are multiples of the 4×4 block and sides that are
 * not (blocks overhang the image there: their outputs are clipped and
 * their gradient must be zero), one channel (the U-Net's first layer),
 * one output channel (its last), channel counts that are and are not
 * whole groups of 8 lanes, and batches that span several chunks with a
 * partial last one. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "genlab/winograd.h"
#include "testutil.h"

#define TOL 5e-5

typedef struct {
    ConvShape s;
    int B;
    size_t nin, nout, nw;
    float *in, *w, *b, *dout;
} Case;

static float at(const float *img, const ConvShape *s, int y, int x)
{
    return y < 0 || x < 0 || y >= s->in_h || x >= s->in_w ? 0.0f : img[(size_t)y * s->in_w + x];
}

static Case make_case(int C, int H, int W, int K, int B, uint64_t seed)
{
    Case c = {.s = conv_shape(C, H, W, K, 3, 1, 1), .B = B};
    c.nin = (size_t)B * C * H * W;
    c.nout = (size_t)B * K * H * W;
    c.nw = (size_t)K * C * 9;
    Rng r;
    rng_seed(&r, seed, RNG_EVAL, 0);
    c.in = test_falloc(c.nin), c.w = test_falloc(c.nw), c.b = test_falloc(K), c.dout = test_falloc(c.nout);
    test_fill_uniform(&r, c.in, c.nin, -1, 1), test_fill_uniform(&r, c.w, c.nw, -0.3f, 0.3f);
    test_fill_uniform(&r, c.b, K, -1, 1), test_fill_uniform(&r, c.dout, c.nout, -1, 1);
    return c;
}

static void free_case(Case *c) { free(c->in), free(c->w), free(c->b), free(c->dout); }

static void naive_forward(double *out, const Case *c)
{
    const ConvShape *s = &c->s;
    const size_t HW = (size_t)s->in_h * s->in_w;
    for (int b = 0; b < c->B; b++)
        for (int k = 0; k < s->out_c; k++)
            for (int y = 0; y < s->out_h; y++)
                for (int x = 0; x < s->out_w; x++) {
                    double acc = c->b[k];
                    for (int ch = 0; ch < s->in_c; ch++) {
                        const float *img = c->in + ((size_t)b * s->in_c + ch) * HW;
                        const float *g = c->w + ((size_t)k * s->in_c + ch) * 9;
                        for (int i = 0; i < 3; i++)
                            for (int j = 0; j < 3; j++) acc += (double)g[3 * i + j] * at(img, s, y + i - 1, x + j - 1);
                    }
                    out[(((size_t)b * s->out_c + k) * s->out_h + y) * s->out_w + x] = acc;
                }
}

static void naive_backward(double *din, double *dw, double *db, const Case *c)
{
    const ConvShape *s = &c->s;
    const size_t HW = (size_t)s->in_h * s->in_w;
    memset(din, 0, c->nin * sizeof *din), memset(dw, 0, c->nw * sizeof *dw);
    memset(db, 0, (size_t)s->out_c * sizeof *db);
    for (int b = 0; b < c->B; b++)
        for (int k = 0; k < s->out_c; k++)
            for (int y = 0; y < s->out_h; y++)
                for (int x = 0; x < s->out_w; x++) {
                    const double d = c->dout[((size_t)b * s->out_c + k) * HW + (size_t)y * s->out_w + x];
                    db[k] += d;
                    for (int ch = 0; ch < s->in_c; ch++)
                        for (int i = 0; i < 3; i++)
                            for (int j = 0; j < 3; j++) {
                                int yy = y + i - 1, xx = x + j - 1;
                                if (yy < 0 || xx < 0 || yy >= s->in_h || xx >= s->in_w) continue;
                                size_t pix = ((size_t)b * s->in_c + ch) * HW + (size_t)yy * s->in_w + xx;
                                size_t wi = ((size_t)k * s->in_c + ch) * 9 + 3 * i + j;
                                din[pix] += d * c->w[wi];
                                dw[wi] += d * c->in[pix];
                            }
                }
}

static void fill_nan(float *p, size_t n)
{
    for (size_t i = 0; i < n; i++) p[i] = NAN;
}

/* Forward, then backward twice: with din, onto gradients that already hold
 * a value (they must accumulate), and with din NULL. */
static void check_case(int C, int H, int W, int K, int B)
{
    Case c = make_case(C, H, W, K, B, (uint64_t)(C * 7919 + H * 31 + W * 7 + K));
    assert_true(winograd_applies(&c.s));
    float *ws = test_falloc(winograd_workspace_floats(&c.s, B));
    float *out = test_falloc(c.nout), *din = test_falloc(c.nin);
    float *dw = test_falloc(c.nw), *db = test_falloc(K);
    double *ref_out = test_dalloc(c.nout), *ref_din = test_dalloc(c.nin);
    double *ref_dw = test_dalloc(c.nw), *ref_db = test_dalloc(K);

    fill_nan(out, c.nout);
    winograd_conv_forward(out, ws, c.in, c.w, NULL, c.b, &c.s, B);
    naive_forward(ref_out, &c);
    test_check_close_d("winograd out", out, ref_out, c.nout, TOL);

    /* filters transformed beforehand: the same arithmetic, the same bits */
    float *U = test_falloc(winograd_filter_floats(&c.s)), *out2 = test_falloc(c.nout);
    winograd_transform_filters(U, c.w, &c.s);
    fill_nan(out2, c.nout);
    winograd_conv_forward(out2, ws, c.in, c.w, U, c.b, &c.s, B);
    assert_memory_equal(out2, out, c.nout * sizeof *out);
    free(U), free(out2);

    naive_backward(ref_din, ref_dw, ref_db, &c);
    for (size_t i = 0; i < c.nw; i++) dw[i] = 1.0f, ref_dw[i] += 1.0;
    for (int k = 0; k < K; k++) db[k] = -2.0f, ref_db[k] -= 2.0;
    fill_nan(din, c.nin);
    winograd_conv_backward(din, dw, db, ws, c.dout, c.in, c.w, &c.s, B);
    test_check_close_d("winograd din", din, ref_din, c.nin, TOL);
    test_check_close_d("winograd dw (accumulated)", dw, ref_dw, c.nw, TOL);
    test_check_close_d("winograd db (accumulated)", db, ref_db, K, TOL);

    for (size_t i = 0; i < c.nw; i++) ref_dw[i] -= 1.0;
    memset(dw, 0, c.nw * sizeof *dw);
    winograd_conv_backward(NULL, dw, db, ws, c.dout, c.in, c.w, &c.s, B);
    test_check_close_d("winograd dw (no din)", dw, ref_dw, c.nw, TOL);

    free(ws), free(out), free(din), free(dw), free(db);
    free(ref_out), free(ref_din), free(ref_dw), free(ref_db);
    free_case(&c);
}

static void test_whole_blocks(void **state)
{
    (void)state;
    check_case(3, 8, 8, 5, 2);
    check_case(4, 28, 28, 6, 3);
}

static void test_overhanging_blocks(void **state)
{
    (void)state;
    check_case(5, 7, 7, 4, 3);
    check_case(12, 14, 14, 20, 2); /* a group of 8 lanes and one of 4 */
    check_case(2, 5, 6, 3, 2); /* odd rows, even columns */
    check_case(3, 1, 1, 2, 2); /* one pixel: one tile, all but one output clipped */
}

static void test_one_channel_ends(void **state)
{
    (void)state;
    check_case(1, 28, 28, 8, 2); /* conv_in */
    check_case(8, 28, 28, 1, 2); /* conv_out */
}

/* 28×28 with 64 + 64 channels is one image per chunk; 7×7 with 40 + 24
 * channels is several images per chunk and a partial last chunk. */
static void test_many_chunks(void **state)
{
    (void)state;
    check_case(64, 28, 28, 64, 3);
    check_case(40, 7, 7, 24, 45);
}

static void test_applies(void **state)
{
    (void)state;
    ConvShape ok = conv_shape(4, 7, 7, 4, 3, 1, 1);
    ConvShape strided = conv_shape(4, 14, 14, 4, 3, 2, 1);
    ConvShape k1 = conv_shape(4, 7, 7, 4, 1, 1, 0);
    ConvShape unpadded = conv_shape(4, 7, 7, 4, 3, 1, 0);
    assert_true(winograd_applies(&ok));
    assert_false(winograd_applies(&strided));
    assert_false(winograd_applies(&k1));
    assert_false(winograd_applies(&unpadded));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_applies),
        cmocka_unit_test(test_whole_blocks),
        cmocka_unit_test(test_overhanging_blocks),
        cmocka_unit_test(test_one_channel_ends),
        cmocka_unit_test(test_many_chunks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
