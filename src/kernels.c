#include "genlab/kernels.h"
#include "fastmath.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* ---------------------------------------------------------------- linear */

void linear_forward(float *out, const float *in, const float *w, const float *b, int B, int n_in, int n_out)
{
    for (int r = 0; r < B; r++) memcpy(out + (size_t)r * n_out, b, (size_t)n_out * sizeof *out);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, n_out, n_in, 1.0f, in, n_in, w, n_in,
                1.0f, out, n_out);
}

void linear_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                     const float *w, int B, int n_in, int n_out)
{
    /* dW[out, in] += doutᵀ[out, B] · in[B, in] */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n_out, n_in, B, 1.0f, dout, n_out, in, n_in,
                1.0f, dw, n_in);
    for (int r = 0; r < B; r++) {
        const float *d = dout + (size_t)r * n_out;
        for (int o = 0; o < n_out; o++) db[o] += d[o];
    }
    /* din[B, in] = dout[B, out] · W[out, in] */
    if (din)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, n_in, n_out, 1.0f, dout, n_out, w,
                    n_in, 0.0f, din, n_in);
}

/* ---------------------------------------------------------- conv geometry */

ConvShape conv_shape(int in_c, int in_h, int in_w, int out_c, int k, int stride, int pad)
{
    ConvShape s = {in_c, in_h, in_w, out_c, (in_h + 2 * pad - k) / stride + 1,
                   (in_w + 2 * pad - k) / stride + 1, k, stride, pad};
    return s;
}

ConvShape convt_shape(int in_c, int in_h, int in_w, int out_c, int k, int stride, int pad,
                      int output_padding)
{
    ConvShape s = {out_c, (in_h - 1) * stride - 2 * pad + k + output_padding,
                   (in_w - 1) * stride - 2 * pad + k + output_padding, in_c, in_h, in_w, k, stride,
                   pad};
    return s;
}

static size_t col_rows(const ConvShape *s) { return (size_t)s->in_c * s->k * s->k; }
static size_t out_pixels(const ConvShape *s) { return (size_t)s->out_h * s->out_w; }

size_t conv_workspace_floats(const ConvShape *s, int B)
{
    return (col_rows(s) + (size_t)s->out_c) * out_pixels(s) * (size_t)B;
}

/* -------------------------------------------------------- im2col / col2im */

/* For kernel offset i (row) the output rows y whose input row y·s − p + i is
 * inside the image form one interval [y0, y1); computing it once removes
 * the bounds test from the inner loops. */
static void valid_range(int i, int stride, int pad, int in_len, int out_len, int *lo, int *hi)
{
    int first = pad - i; /* need y·s ≥ pad − i */
    *lo = first <= 0 ? 0 : (first + stride - 1) / stride;
    int last = in_len - 1 + pad - i; /* need y·s ≤ in_len − 1 + pad − i */
    *hi = last < 0 ? 0 : last / stride + 1;
    if (*hi > out_len) *hi = out_len;
    if (*lo > *hi) *lo = *hi;
}

/* One kernel offset (i, j) of one channel of one image: each output pixel
 * receives its input pixel, or zero where that falls in the padding. Every
 * element is written once (zeroing the plane first would write it twice). */
static void im2col_plane(float *dst, const float *img, const ConvShape *s, int i, int j, int y0,
                         int y1, int x0, int x1)
{
    const int st = s->stride, p = s->pad, ow = s->out_w;
    for (int y = 0; y < s->out_h; y++) {
        float *d = dst + (size_t)y * ow;
        if (y < y0 || y >= y1) {
            memset(d, 0, (size_t)ow * sizeof *d);
            continue;
        }
        const float *src = img + (size_t)(y * st - p + i) * s->in_w;
        for (int x = 0; x < x0; x++) d[x] = 0.0f;
        /* rows are 7–28 floats: a loop beats a memcpy call per row */
        if (st == 1) {
            const float *sr = src + j - p + x0;
            for (int x = 0; x < x1 - x0; x++) d[x0 + x] = sr[x];
        } else {
            for (int x = x0; x < x1; x++) d[x] = src[x * st + j - p];
        }
        for (int x = x1; x < ow; x++) d[x] = 0.0f;
    }
}

void im2col_batch(float *col, const float *in, const ConvShape *s, int B)
{
    const int k = s->k, st = s->stride, p = s->pad;
    const size_t P = out_pixels(s) * (size_t)B, opix = out_pixels(s);
    for (int c = 0; c < s->in_c; c++)
        for (int i = 0; i < k; i++) {
            int y0, y1;
            valid_range(i, st, p, s->in_h, s->out_h, &y0, &y1);
            for (int j = 0; j < k; j++) {
                int x0, x1;
                valid_range(j, st, p, s->in_w, s->out_w, &x0, &x1);
                float *row = col + ((size_t)(c * k + i) * k + j) * P;
                for (int b = 0; b < B; b++)
                    im2col_plane(row + (size_t)b * opix,
                                 in + ((size_t)b * s->in_c + c) * s->in_h * s->in_w, s, i, j, y0, y1,
                                 x0, x1);
            }
        }
}

void col2im_batch(float *out, const float *col, const ConvShape *s, int B)
{
    const int k = s->k, st = s->stride, p = s->pad;
    const size_t P = out_pixels(s) * (size_t)B, opix = out_pixels(s);
    memset(out, 0, (size_t)B * s->in_c * s->in_h * s->in_w * sizeof *out);
    for (int c = 0; c < s->in_c; c++)
        for (int i = 0; i < k; i++) {
            int y0, y1;
            valid_range(i, st, p, s->in_h, s->out_h, &y0, &y1);
            for (int j = 0; j < k; j++) {
                int x0, x1;
                valid_range(j, st, p, s->in_w, s->out_w, &x0, &x1);
                const float *row = col + ((size_t)(c * k + i) * k + j) * P;
                for (int b = 0; b < B; b++) {
                    float *img = out + ((size_t)b * s->in_c + c) * s->in_h * s->in_w;
                    const float *src = row + (size_t)b * opix;
                    for (int y = y0; y < y1; y++) {
                        float *d = img + (size_t)(y * st - p + i) * s->in_w;
                        const float *sr = src + (size_t)y * s->out_w;
                        for (int x = x0; x < x1; x++) d[x * st + j - p] += sr[x];
                    }
                }
            }
        }
}

/* NCHW [B, C, HW] <-> channel-major [C, B·HW], by rows of HW floats. */
static void nchw_to_cmajor(float *dst, const float *src, int B, int C, size_t hw)
{
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++)
            memcpy(dst + ((size_t)c * B + b) * hw, src + ((size_t)b * C + c) * hw, hw * sizeof *dst);
}

static void cmajor_to_nchw(float *dst, const float *src, int B, int C, size_t hw)
{
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++)
            memcpy(dst + ((size_t)b * C + c) * hw, src + ((size_t)c * B + b) * hw, hw * sizeof *dst);
}

static void add_channel_bias(float *x, const float *bias, int B, int C, size_t hw)
{
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            float *p = x + ((size_t)b * C + c) * hw;
            for (size_t i = 0; i < hw; i++) p[i] += bias[c];
        }
}

static void sum_channel_grad(float *db, const float *d, int B, int C, size_t hw)
{
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) db[c] += sum_floats(d + ((size_t)b * C + c) * hw, hw);
}

/* ---------------------------------------------------------------- conv2d */

void conv2d_forward(float *out, float *col, float *ws, const float *in, const float *w,
                    const float *b, const ConvShape *s, int B)
{
    const int R = (int)col_rows(s), P = (int)(out_pixels(s) * (size_t)B);
    im2col_batch(col, in, s, B);
    /* ws[K, P] = W[K, R] · col[R, P] */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->out_c, P, R, 1.0f, w, R, col, P, 0.0f,
                ws, P);
    cmajor_to_nchw(out, ws, B, s->out_c, out_pixels(s));
    add_channel_bias(out, b, B, s->out_c, out_pixels(s));
}

void conv2d_backward(float *din, float *dw, float *db, float *ws, const float *dout,
                     const float *col, const float *w, const ConvShape *s, int B)
{
    const int R = (int)col_rows(s), P = (int)(out_pixels(s) * (size_t)B);
    float *dT = ws;                                 /* [K, P] */
    float *dcol = ws + (size_t)s->out_c * (size_t)P; /* [R, P] */
    nchw_to_cmajor(dT, dout, B, s->out_c, out_pixels(s));
    sum_channel_grad(db, dout, B, s->out_c, out_pixels(s));
    /* dW[K, R] += dT[K, P] · colᵀ[P, R] */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s->out_c, R, P, 1.0f, dT, P, col, P, 1.0f,
                dw, R);
    if (!din) return;
    /* dcol[R, P] = Wᵀ[R, K] · dT[K, P] */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, R, P, s->out_c, 1.0f, w, R, dT, P, 0.0f,
                dcol, P);
    col2im_batch(din, dcol, s, B);
}

/* ------------------------------------------------ conv2d, streamed by chunk
 *
 * The same convolution, with the im2col made for a few images at a time
 * (a chunk) into a small buffer that stays in cache while the GEMM packs
 * it: at 28×28 the whole batch's im2col is 9× the input and tens of MB,
 * and streaming it through memory three times (im2col, GEMM packing,
 * backward's re-read) cost more than the multiply. A chunk holds at least
 * STREAM_MIN_COLS output pixels, so that small images still make wide
 * GEMMs, and at most about STREAM_CHUNK_FLOATS of im2col otherwise. With one
 * image per chunk the GEMM writes NCHW directly. */

#define STREAM_MIN_COLS 256
#define STREAM_CHUNK_FLOATS (128 * 1024)

static int stream_chunk(const ConvShape *s, int B)
{
    const size_t P = out_pixels(s), per = col_rows(s) * P;
    size_t g = STREAM_CHUNK_FLOATS / per;
    size_t min_g = (STREAM_MIN_COLS + P - 1) / P;
    if (g < min_g) g = min_g;
    if (g < 1) g = 1;
    return g > (size_t)B ? B : (int)g;
}

size_t conv_stream_workspace_floats(const ConvShape *s, int B)
{
    /* backward: col and dcol [R, gP], and dout in channel-major [K, gP] */
    return (2 * col_rows(s) + (size_t)s->out_c) * out_pixels(s) * (size_t)stream_chunk(s, B);
}

void conv2d_stream_forward(float *out, float *ws, const float *in, const float *w, const float *b,
                           const ConvShape *s, int B)
{
    const int R = (int)col_rows(s), g = stream_chunk(s, B);
    const size_t P = out_pixels(s), in_img = (size_t)s->in_c * s->in_h * s->in_w, out_img = (size_t)s->out_c * P;
    float *col = ws, *res = ws + (size_t)R * P * g;
    for (int b0 = 0; b0 < B; b0 += g) {
        const int n = B - b0 < g ? B - b0 : g, N = (int)(P * (size_t)n);
        im2col_batch(col, in + b0 * in_img, s, n);
        float *dst = n == 1 ? out + b0 * out_img : res;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->out_c, N, R, 1.0f, w, R, col, N, 0.0f,
                    dst, N);
        if (n > 1) cmajor_to_nchw(out + b0 * out_img, res, n, s->out_c, P);
    }
    add_channel_bias(out, b, B, s->out_c, P);
}

void conv2d_stream_backward(float *din, float *dw, float *db, float *ws, const float *dout,
                            const float *in, const float *w, const ConvShape *s, int B)
{
    const int R = (int)col_rows(s), g = stream_chunk(s, B);
    const size_t P = out_pixels(s), in_img = (size_t)s->in_c * s->in_h * s->in_w, out_img = (size_t)s->out_c * P;
    float *col = ws, *dcol = ws + (size_t)R * P * g, *dT = dcol + (size_t)R * P * g;
    sum_channel_grad(db, dout, B, s->out_c, P);
    for (int b0 = 0; b0 < B; b0 += g) {
        const int n = B - b0 < g ? B - b0 : g, N = (int)(P * (size_t)n);
        im2col_batch(col, in + b0 * in_img, s, n);
        const float *d = dout + b0 * out_img;
        if (n > 1) {
            nchw_to_cmajor(dT, d, n, s->out_c, P);
            d = dT;
        }
        /* dW[K, R] += d[K, N] · colᵀ[N, R] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s->out_c, R, N, 1.0f, d, N, col, N, 1.0f, dw, R);
        if (!din) continue;
        /* dcol[R, N] = Wᵀ[R, K] · d[K, N] */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, R, N, s->out_c, 1.0f, w, R, d, N, 0.0f, dcol, N);
        col2im_batch(din + b0 * in_img, dcol, s, n);
    }
}

/* ------------------------------------------------------- conv_transpose2d */

void convt_forward(float *out, float *ws, const float *in, const float *w, const float *b,
                   const ConvShape *s, int B)
{
    const int R = (int)col_rows(s), P = (int)(out_pixels(s) * (size_t)B);
    float *xT = ws;                                 /* [K, P] */
    float *col = ws + (size_t)s->out_c * (size_t)P; /* [R, P] */
    nchw_to_cmajor(xT, in, B, s->out_c, out_pixels(s));
    /* col[R, P] = Wᵀ[R, K] · xT[K, P] */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, R, P, s->out_c, 1.0f, w, R, xT, P, 0.0f,
                col, P);
    col2im_batch(out, col, s, B);
    add_channel_bias(out, b, B, s->in_c, (size_t)s->in_h * s->in_w);
}

void convt_backward(float *din, float *dw, float *db, float *ws, const float *dout,
                    const float *in, const float *w, const ConvShape *s, int B)
{
    const int R = (int)col_rows(s), P = (int)(out_pixels(s) * (size_t)B);
    float *xT = ws;                                 /* [K, P]: input, then its gradient */
    float *col = ws + (size_t)s->out_c * (size_t)P; /* [R, P] */
    sum_channel_grad(db, dout, B, s->in_c, (size_t)s->in_h * s->in_w);
    im2col_batch(col, dout, s, B);
    nchw_to_cmajor(xT, in, B, s->out_c, out_pixels(s));
    /* dW[K, R] += xT[K, P] · colᵀ[P, R] */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s->out_c, R, P, 1.0f, xT, P, col, P, 1.0f,
                dw, R);
    if (!din) return;
    /* dxT[K, P] = W[K, R] · col[R, P] */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->out_c, P, R, 1.0f, w, R, col, P, 0.0f,
                xT, P);
    cmajor_to_nchw(din, xT, B, s->out_c, out_pixels(s));
}

/* ---------------------------------------------------------- element-wise */

void relu_forward(float *out, const float *in, size_t n)
{
    for (size_t i = 0; i < n; i++) out[i] = in[i] > 0.0f ? in[i] : 0.0f;
}

void relu_backward(float *dinout, const float *out, size_t n)
{
    /* A select, not a branch: half the units are off, at random, and a
     * mispredicted branch per element costs more than the whole loop. */
    for (size_t i = 0; i < n; i++) dinout[i] = out[i] > 0.0f ? dinout[i] : 0.0f;
}

/* log(1 + y) for y in [0, 1]: 2·atanh(t) with t = y / (2 + y) ≤ 1/3, whose
 * odd series converges fast (truncation < 1e-8) and which never forms the
 * rounded 1 + y. */
static inline float log1p_unit(float y)
{
    float t = y / (2.0f + y), t2 = t * t;
    float p = 1.0f / 13;
    p = p * t2 + 1.0f / 11;
    p = p * t2 + 1.0f / 9;
    p = p * t2 + 1.0f / 7;
    p = p * t2 + 1.0f / 5;
    p = p * t2 + 1.0f / 3;
    p = p * t2 + 1.0f;
    return 2.0f * t * p;
}

void sigmoid_forward(float *out, const float *in, size_t n)
{
    for (size_t i = 0; i < n; i++) out[i] = sigmoid_stable(in[i]);
}

double bce_logits(const float *logits, const float *target, size_t n)
{
    /* the terms a block at a time (a vectorised loop), then added in
     * double: the loss is ~10⁵ per batch and finite differences need its
     * last digits */
    enum { BLOCK = 256 };
    float term[BLOCK];
    double sum = 0.0;
    for (size_t i = 0; i < n; i += BLOCK) {
        size_t m = n - i < BLOCK ? n - i : BLOCK;
        for (size_t k = 0; k < m; k++) {
            float l = logits[i + k];
            term[k] = (l > 0.0f ? l : 0.0f) - l * target[i + k] + log1p_unit(exp_nonpos(-fabsf(l)));
        }
        for (size_t k = 0; k < m; k++) sum += term[k];
    }
    return sum;
}

void bce_logits_backward(float *dlogits, const float *logits, const float *target, size_t n,
                         float scale)
{
    for (size_t i = 0; i < n; i++) dlogits[i] = scale * (sigmoid_stable(logits[i]) - target[i]);
}

double kld_normal(float *dmu, float *dlogvar, const float *mu, const float *logvar, size_t n,
                  float scale)
{
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        float var = expf(logvar[i]);
        sum += -0.5 * (double)(1.0f + logvar[i] - mu[i] * mu[i] - var);
        if (dmu) dmu[i] += scale * mu[i];
        if (dlogvar) dlogvar[i] += scale * 0.5f * (var - 1.0f);
    }
    return sum;
}

void reparam_forward(float *z, const float *mu, const float *logvar, const float *eps, size_t n)
{
    for (size_t i = 0; i < n; i++) z[i] = mu[i] + expf(0.5f * logvar[i]) * eps[i];
}

void reparam_backward(float *dmu, float *dlogvar, const float *dz, const float *logvar,
                      const float *eps, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        dmu[i] += dz[i];
        dlogvar[i] += dz[i] * eps[i] * 0.5f * expf(0.5f * logvar[i]);
    }
}
