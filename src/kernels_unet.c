/* kernels_unet.c — the U-Net layers of kernels_unet.h (llm.c style). */
#include "genlab/kernels_unet.h"
#include "fastmath.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* ------------------------------------------------------------ reductions */

/* Float reductions with 16 partial sums, so that the compiler vectorises
 * them (it may not reorder a single float accumulator). Callers keep n to
 * one channel (≤ 784 here) and add the results in double. */

/* sum_floats (Σ p[0..n)) is fastmath.h's. */

/* Σ (x[i] − m)² */
static float sum_sq_centred(const float *x, float m, size_t n)
{
    float acc[16] = {0};
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) acc[j] += (x[i + j] - m) * (x[i + j] - m);
    float s = 0.0f;
    for (; i < n; i++) s += (x[i] - m) * (x[i] - m);
    for (int j = 0; j < 16; j++) s += acc[j];
    return s;
}

/* Σ a[i]·(x[i] − m) */
static float dot_centred(const float *a, const float *x, float m, size_t n)
{
    float acc[16] = {0};
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) acc[j] += a[i + j] * (x[i + j] - m);
    float s = 0.0f;
    for (; i < n; i++) s += a[i] * (x[i] - m);
    for (int j = 0; j < 16; j++) s += acc[j];
    return s;
}

/* ------------------------------------------------------------- GroupNorm */

/* Statistics of one group (cpg channel rows of hw floats), two-pass: the
 * mean, then the centred sum of squares about it (no cancellation). */
static void group_stats(const float *x, int cpg, size_t hw, float *mean, float *rstd)
{
    const double n = (double)cpg * (double)hw;
    double s = 0.0;
    for (int c = 0; c < cpg; c++) s += sum_floats(x + (size_t)c * hw, hw);
    const float m = (float)(s / n);
    double ss = 0.0;
    for (int c = 0; c < cpg; c++) ss += sum_sq_centred(x + (size_t)c * hw, m, hw);
    *mean = m;
    *rstd = (float)(1.0 / sqrt(ss / n + (double)GROUPNORM_EPS));
}

void groupnorm_forward(float *out, float *mean, float *rstd, const float *in, const float *gamma,
                       const float *beta, int B, int C, int HW, int G)
{
    const int cpg = C / G;
    const size_t hw = (size_t)HW;
    for (int b = 0; b < B; b++)
        for (int g = 0; g < G; g++) {
            const size_t bg = (size_t)b * G + g;
            const size_t base = ((size_t)b * C + (size_t)g * cpg) * hw;
            group_stats(in + base, cpg, hw, &mean[bg], &rstd[bg]);
            for (int c = 0; c < cpg; c++) {
                const int ch = g * cpg + c;
                /* (x − m)·(r·γ) + β: folding m into the constant, x·a + (β − m·a),
                 * would cancel catastrophically when |m| ≫ the spread */
                const float m = mean[bg], a = rstd[bg] * gamma[ch], k = beta[ch];
                const float *x = in + base + (size_t)c * hw;
                float *y = out + base + (size_t)c * hw;
                for (size_t p = 0; p < hw; p++) y[p] = (x[p] - m) * a + k;
            }
        }
}

/* With x̂ = (x − m)·r and dx̂ = γ·dout over the n elements of a group:
 *   dx = r·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)),
 * and both means come from two per-channel sums, Σ dout and
 * Σ dout·(x − m), which also give dβ and dγ. */
void groupnorm_backward(float *din, float *dgamma, float *dbeta, const float *dout,
                        const float *in, const float *mean, const float *rstd,
                        const float *gamma, int B, int C, int HW, int G)
{
    const int cpg = C / G;
    const size_t hw = (size_t)HW;
    const double n = (double)cpg * (double)hw;
    for (int b = 0; b < B; b++)
        for (int g = 0; g < G; g++) {
            const size_t bg = (size_t)b * G + g;
            const size_t base = ((size_t)b * C + (size_t)g * cpg) * hw;
            const float m = mean[bg], r = rstd[bg];
            double sum_dxh = 0.0, sum_dxh_xh = 0.0;
            for (int c = 0; c < cpg; c++) {
                const int ch = g * cpg + c;
                const size_t off = base + (size_t)c * hw;
                const double s1 = sum_floats(dout + off, hw);
                const double s2 = (double)r * dot_centred(dout + off, in + off, m, hw);
                dbeta[ch] += (float)s1;
                dgamma[ch] += (float)s2;
                sum_dxh += gamma[ch] * s1;
                sum_dxh_xh += gamma[ch] * s2;
            }
            if (!din) continue;
            /* dx = r·γ·dout − r·mean(dx̂) − (x − m)·r²·mean(dx̂·x̂) */
            const float k0 = (float)(-(double)r * sum_dxh / n);
            const float kx = (float)(-(double)r * r * sum_dxh_xh / n);
            for (int c = 0; c < cpg; c++) {
                const size_t off = base + (size_t)c * hw;
                const float a = r * gamma[g * cpg + c];
                const float *d = dout + off, *x = in + off;
                float *dx = din + off;
                for (size_t p = 0; p < hw; p++) dx[p] = a * d[p] + kx * (x[p] - m) + k0;
            }
        }
}

/* ------------------------------------------------------------------ SiLU */

/* x/(1 + e^−x): no branch; at x → −∞ e^−x = inf gives −0, at +∞ it gives x. */
/* σ from fastmath.h: glibc's expf is a scalar call, and SiLU runs over
 * every activation of the network twice per step. */
void silu_forward(float *out, const float *in, size_t n)
{
    for (size_t i = 0; i < n; i++) out[i] = in[i] * sigmoid_stable(in[i]);
}

void silu_backward(float *din, const float *dout, const float *in, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const float x = in[i], s = sigmoid_stable(x);
        din[i] = dout[i] * s * (1.0f + x * (1.0f - s));
    }
}

/* ------------------------------------------------------------ conv 1×1 */

/* One GEMM per image: in NCHW an image's [ci, HW] block is already the
 * right-hand matrix, so no transposition is needed. */
void conv1x1_forward(float *out, const float *in, const float *w, const float *bias, int B,
                     int ci, int co, int HW)
{
    const size_t hw = (size_t)HW;
    for (int b = 0; b < B; b++) {
        float *o = out + (size_t)b * co * hw;
        if (bias)
            for (int c = 0; c < co; c++)
                for (size_t p = 0; p < hw; p++) o[(size_t)c * hw + p] = bias[c];
        /* o[co, HW] (+)= W[co, ci] · in_b[ci, HW] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, co, HW, ci, 1.0f, w, ci,
                    in + (size_t)b * ci * hw, HW, bias ? 1.0f : 0.0f, o, HW);
    }
}

void conv1x1_backward(float *din, float *dw, float *dbias, const float *dout, const float *in,
                      const float *w, int B, int ci, int co, int HW)
{
    const size_t hw = (size_t)HW;
    for (int b = 0; b < B; b++) {
        const float *d = dout + (size_t)b * co * hw, *x = in + (size_t)b * ci * hw;
        /* dW[co, ci] += d[co, HW] · xᵀ[HW, ci] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, co, ci, HW, 1.0f, d, HW, x, HW, 1.0f,
                    dw, ci);
        if (dbias)
            for (int c = 0; c < co; c++) dbias[c] += sum_floats(d + (size_t)c * hw, hw);
        /* din_b[ci, HW] = Wᵀ[ci, co] · d[co, HW] */
        if (din)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ci, HW, co, 1.0f, w, ci, d, HW,
                        0.0f, din + (size_t)b * ci * hw, HW);
    }
}

/* ------------------------------------------------------------- attention */

/* Row-wise softmax of s[N, N] in place. */
static void softmax_rows(float *s, int N)
{
    for (int i = 0; i < N; i++) {
        float *row = s + (size_t)i * N;
        float mx = row[0];
        for (int j = 1; j < N; j++) mx = row[j] > mx ? row[j] : mx;
        double sum = 0.0;
        for (int j = 0; j < N; j++) {
            row[j] = expf(row[j] - mx);
            sum += row[j];
        }
        const float inv = (float)(1.0 / sum);
        for (int j = 0; j < N; j++) row[j] *= inv;
    }
}

/* Per image, with q, k, v the [C, N] blocks of qkv:
 *   P = softmax_rows(qᵀ·k / √C)   [N, N]
 *   out = v · Pᵀ                  [C, N] */
void attention_forward(float *out, float *att, const float *qkv, int B, int C, int N)
{
    const float scale = 1.0f / sqrtf((float)C);
    const size_t cn = (size_t)C * N, nn = (size_t)N * N;
    for (int b = 0; b < B; b++) {
        const float *q = qkv + (size_t)b * 3 * cn, *k = q + cn, *v = k + cn;
        float *P = att + (size_t)b * nn;
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, N, C, scale, q, N, k, N, 0.0f, P, N);
        softmax_rows(P, N);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, C, N, N, 1.0f, v, N, P, N, 0.0f,
                    out + (size_t)b * cn, N);
    }
}

/* dS = P ⊙ (dP − rowsum(P ⊙ dP)), the softmax backward, in place on dP. */
static void softmax_rows_backward(float *dp, const float *P, int N)
{
    for (int i = 0; i < N; i++) {
        float *d = dp + (size_t)i * N;
        const float *p = P + (size_t)i * N;
        double dot = 0.0;
        for (int j = 0; j < N; j++) dot += (double)p[j] * d[j];
        const float fdot = (float)dot;
        for (int j = 0; j < N; j++) d[j] = p[j] * (d[j] - fdot);
    }
}

/* Per image, with dO = dout_b [C, N]:
 *   dv = dO · P,   dP = dOᵀ · v,   dS = softmax backward of dP,
 *   dq = k · dSᵀ / √C,   dk = q · dS / √C. */
void attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv,
                        const float *att, int B, int C, int N)
{
    const float scale = 1.0f / sqrtf((float)C);
    const size_t cn = (size_t)C * N, nn = (size_t)N * N;
    for (int b = 0; b < B; b++) {
        const float *q = qkv + (size_t)b * 3 * cn, *k = q + cn, *v = k + cn;
        const float *P = att + (size_t)b * nn, *dO = dout + (size_t)b * cn;
        float *dq = dqkv + (size_t)b * 3 * cn, *dk = dq + cn, *dv = dk + cn;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, C, N, N, 1.0f, dO, N, P, N, 0.0f,
                    dv, N);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, N, C, 1.0f, dO, N, v, N, 0.0f,
                    scratch, N);
        softmax_rows_backward(scratch, P, N);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, C, N, N, scale, k, N, scratch, N,
                    0.0f, dq, N);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, C, N, N, scale, q, N, scratch, N,
                    0.0f, dk, N);
    }
}

/* ------------------------------------------------------------- up-sample */

void upsample2x_forward(float *out, const float *in, int B, int C, int H, int W)
{
    const size_t planes = (size_t)B * C, W2 = 2 * (size_t)W;
    for (size_t pl = 0; pl < planes; pl++)
        for (int y = 0; y < H; y++) {
            const float *src = in + (pl * H + y) * W;
            float *d0 = out + (pl * 2 * H + 2 * (size_t)y) * W2, *d1 = d0 + W2;
            for (int x = 0; x < W; x++) d0[2 * x] = d0[2 * x + 1] = src[x];
            memcpy(d1, d0, W2 * sizeof *d1);
        }
}

void upsample2x_backward(float *din, const float *dout, int B, int C, int H, int W)
{
    const size_t planes = (size_t)B * C, W2 = 2 * (size_t)W;
    for (size_t pl = 0; pl < planes; pl++)
        for (int y = 0; y < H; y++) {
            const float *s0 = dout + (pl * 2 * H + 2 * (size_t)y) * W2, *s1 = s0 + W2;
            float *d = din + (pl * H + y) * W;
            for (int x = 0; x < W; x++) d[x] = (s0[2 * x] + s0[2 * x + 1]) + (s1[2 * x] + s1[2 * x + 1]);
        }
}

/* ----------------------------------------------------------- concatenate */

void concat_channels(float *out, const float *a, int Ca, const float *b, int Cb, int B, int HW)
{
    const size_t na = (size_t)Ca * HW, nb = (size_t)Cb * HW;
    for (int i = 0; i < B; i++) {
        float *o = out + (size_t)i * (na + nb);
        memcpy(o, a + (size_t)i * na, na * sizeof *o);
        memcpy(o + na, b + (size_t)i * nb, nb * sizeof *o);
    }
}

static void add_into(float *dst, const float *src, size_t n)
{
    for (size_t i = 0; i < n; i++) dst[i] += src[i];
}

void concat_channels_backward(float *da, float *db, const float *dout, int Ca, int Cb, int B,
                              int HW)
{
    const size_t na = (size_t)Ca * HW, nb = (size_t)Cb * HW;
    for (int i = 0; i < B; i++) {
        const float *d = dout + (size_t)i * (na + nb);
        if (da) add_into(da + (size_t)i * na, d, na);
        if (db) add_into(db + (size_t)i * nb, d + na, nb);
    }
}

/* ------------------------------------------------- channel-vector add */

void add_channel_vector(float *x, const float *v, int B, int C, int HW)
{
    const size_t planes = (size_t)B * C, hw = (size_t)HW;
    for (size_t pl = 0; pl < planes; pl++) {
        float *p = x + pl * hw;
        const float add = v[pl];
        for (size_t i = 0; i < hw; i++) p[i] += add;
    }
}

void add_channel_vector_backward(float *dv, const float *dx, int B, int C, int HW)
{
    const size_t planes = (size_t)B * C, hw = (size_t)HW;
    for (size_t pl = 0; pl < planes; pl++) dv[pl] += sum_floats(dx + pl * hw, hw);
}

/* ------------------------------------------------- timestep embedding */

/* Computed in double and rounded once: at t ≈ 1000 a float argument would
 * carry an absolute error of ~1e-4 into the cos/sin. */
void timestep_embedding(float *out, const int *t, int B, int dim)
{
    const int half = dim / 2;
    for (int b = 0; b < B; b++) {
        float *o = out + (size_t)b * dim;
        for (int k = 0; k < half; k++) {
            const double arg = t[b] * exp(-log(10000.0) * k / half);
            o[k] = (float)cos(arg);
            o[half + k] = (float)sin(arg);
        }
    }
}

/* ------------------------------------------------------------------ MSE */

double mse_forward(const float *pred, const float *target, size_t n)
{
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double d = (double)pred[i] - target[i];
        sum += d * d;
    }
    return n ? sum / (double)n : 0.0;
}

void mse_backward(float *dpred, const float *pred, const float *target, size_t n, float scale)
{
    const float k = (float)(2.0 * scale / (double)n);
    for (size_t i = 0; i < n; i++) dpred[i] = k * (pred[i] - target[i]);
}
