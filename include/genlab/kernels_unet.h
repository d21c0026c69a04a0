/* kernels_unet.h — the layers a diffusion U-Net adds to kernels.h:
 * GroupNorm, SiLU, single-head self-attention, nearest up-sampling,
 * channel concatenation, per-channel broadcast adds, 1×1 convolutions, the
 * sinusoidal timestep embedding and the ε-MSE loss.
 *
 * Same conventions as kernels.h: activations NCHW over flat float arrays,
 * "HW" is the number of pixels per channel (H·W). Backward functions
 * ACCUMULATE (+=) into parameter gradients and OVERWRITE input gradients
 * (din), which may be NULL when not needed, unless a comment says otherwise.
 * GEMM-shaped work goes through cblas_sgemm. */
#ifndef GENLAB_KERNELS_UNET_H
#define GENLAB_KERNELS_UNET_H

#include <stddef.h>

/* ---- GroupNorm (PyTorch nn.GroupNorm, eps 1e-5, biased variance) ----
 * in/out [B, C, HW]; C divisible by G; gamma/beta [C]. mean and rstd
 * (B·G floats each) receive each group's statistics for backward. */
#define GROUPNORM_EPS 1e-5f
void groupnorm_forward(float *out, float *mean, float *rstd, const float *in, const float *gamma,
                       const float *beta, int B, int C, int HW, int G);
void groupnorm_backward(float *din, float *dgamma, float *dbeta, const float *dout,
                        const float *in, const float *mean, const float *rstd,
                        const float *gamma, int B, int C, int HW, int G);

/* ---- SiLU: x·σ(x) ---- */
void silu_forward(float *out, const float *in, size_t n);
/* din = dout·σ(x)·(1 + x·(1 − σ(x))); din may alias dout. */
void silu_backward(float *din, const float *dout, const float *in, size_t n);

/* ---- 1×1 convolution: out[b] = W[co, ci] · in[b][ci, HW] + bias[co] ----
 * W is PyTorch's Conv2d weight [co, ci, 1, 1]; bias may be NULL. */
void conv1x1_forward(float *out, const float *in, const float *w, const float *bias, int B,
                     int ci, int co, int HW);
void conv1x1_backward(float *din, float *dw, float *dbias, const float *dout, const float *in,
                      const float *w, int B, int ci, int co, int HW);

/* ---- Single-head self-attention over the N = HW positions of an image ----
 * qkv [B, 3C, N]: channels 0..C−1 are q, C..2C−1 k, 2C..3C−1 v (the
 * output of a 1×1 conv C → 3C, as PyTorch's chunk(3, dim=1) splits it).
 * out[b, c, i] = Σ_j P[b, i, j] · v[b, c, j], with
 * P[b, i, :] = softmax_j(Σ_c q[b, c, i] · k[b, c, j] / √C).
 * att [B, N, N] receives P for backward. */
void attention_forward(float *out, float *att, const float *qkv, int B, int C, int N);
/* dqkv [B, 3C, N] (overwritten) from dout [B, C, N]; `scratch` holds N·N floats. */
void attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv,
                        const float *att, int B, int C, int N);

/* ---- Nearest-neighbour 2× up-sampling: in [B, C, H, W] → out [B, C, 2H, 2W] ---- */
void upsample2x_forward(float *out, const float *in, int B, int C, int H, int W);
/* din[b, c, y, x] = sum of the 2×2 block of dout it was copied to. */
void upsample2x_backward(float *din, const float *dout, int B, int C, int H, int W);

/* ---- Channel concatenation: out [B, Ca + Cb, HW] = cat(a [B, Ca, HW], b [B, Cb, HW]) ---- */
void concat_channels(float *out, const float *a, int Ca, const float *b, int Cb, int B, int HW);
/* Backward: da/db ACCUMULATE (+=) their slices of dout; either may be NULL. */
void concat_channels_backward(float *da, float *db, const float *dout, int Ca, int Cb, int B,
                              int HW);

/* ---- Per-image, per-channel broadcast add: x[b, c, :] += v[b, c] ---- */
void add_channel_vector(float *x, const float *v, int B, int C, int HW);
/* dv[b, c] += Σ_p dx[b, c, p] */
void add_channel_vector_backward(float *dv, const float *dx, int B, int C, int HW);

/* ---- Sinusoidal timestep embedding (improved-diffusion's timestep_embedding):
 * half = dim/2, freq_k = exp(−ln(10000)·k/half) for k = 0..half−1,
 * out[b] = [cos(t_b·freq_0..half−1), sin(t_b·freq_0..half−1)]. dim even.
 * t is the 0-based step (REFERENCES.md). */
void timestep_embedding(float *out, const int *t, int B, int dim);

/* ---- Mean squared error: mean over n of (pred − target)² (double sum) ---- */
double mse_forward(const float *pred, const float *target, size_t n);
/* dpred = scale·2·(pred − target)/n (overwritten). */
void mse_backward(float *dpred, const float *pred, const float *target, size_t n, float scale);

#endif
