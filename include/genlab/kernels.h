/* kernels.h — forward/backward pairs over flat float arrays (llm.c style).
 *
 * Layouts follow PyTorch: activations NCHW, Linear weights [out, in],
 * Conv2d weights [out, in, k, k], ConvTranspose2d weights [in, out, k, k].
 * Backward functions ACCUMULATE (+=) into weight and bias gradients, so the
 * caller zeroes gradients once per step; input gradients (din) are
 * overwritten, and may be NULL when not needed (the first layer).
 * GEMM-shaped work goes through cblas_sgemm. */
#ifndef GENLAB_KERNELS_H
#define GENLAB_KERNELS_H

#include <stddef.h>

/* ---- Linear: out[B, n_out] = in[B, n_in] · W[n_out, n_in]ᵀ + b[n_out] ---- */
void linear_forward(float *out, const float *in, const float *w, const float *b, int B, int n_in, int n_out);
void linear_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                     const float *w, int B, int n_in, int n_out);

/* ---- Convolution geometry (square kernels, equal stride/padding in both
 * directions, which is all the models need). ---- */
typedef struct {
    int in_c, in_h, in_w;    /* input of the Conv2d */
    int out_c, out_h, out_w; /* output of the Conv2d */
    int k, stride, pad;
} ConvShape;

/* Conv2d output size from input size: (in + 2p − k) / s + 1. */
ConvShape conv_shape(int in_c, int in_h, int in_w, int out_c, int k, int stride, int pad);
/* ConvTranspose2d as the adjoint of a Conv2d: output size
 * (in − 1)·s − 2p + k + output_padding. Returned in Conv2d terms: the
 * transposed conv's OUTPUT is the ConvShape's input (in_*), its INPUT the
 * ConvShape's output (out_*). */
ConvShape convt_shape(int in_c, int in_h, int in_w, int out_c, int k, int stride, int pad,
                      int output_padding);

/* Floats of workspace `ws` the conv kernels need for a batch of B: one
 * im2col-sized buffer plus one [out_c, B·out_h·out_w] buffer. */
size_t conv_workspace_floats(const ConvShape *s, int B);

/* Conv2d. in [B, in_c, in_h, in_w], w [out_c, in_c, k, k], b [out_c],
 * out [B, out_c, out_h, out_w]. `col` (in_c·k·k × B·out_h·out_w floats)
 * receives the im2col of the input, which backward reuses; `ws` is scratch. */
void conv2d_forward(float *out, float *col, float *ws, const float *in, const float *w,
                    const float *b, const ConvShape *s, int B);
void conv2d_backward(float *din, float *dw, float *db, float *ws, const float *dout,
                     const float *col, const float *w, const ConvShape *s, int B);

/* The same Conv2d without keeping the im2col: it is made a few images at a
 * time into the workspace (conv_stream_workspace_floats), and backward
 * remakes it from the input. For large activations (the U-Net's 28×28
 * layers), where the batch's im2col would not fit in any cache. */
size_t conv_stream_workspace_floats(const ConvShape *s, int B);
void conv2d_stream_forward(float *out, float *ws, const float *in, const float *w, const float *b,
                           const ConvShape *s, int B);
void conv2d_stream_backward(float *din, float *dw, float *db, float *ws, const float *dout,
                            const float *in, const float *w, const ConvShape *s, int B);

/* ConvTranspose2d (the adjoint of the Conv2d described by s, plus bias):
 * in [B, out_c, out_h, out_w] (the conv's output side), w [out_c, in_c, k, k]
 * (PyTorch's [in, out, k, k] for the transposed conv), b [in_c],
 * out [B, in_c, in_h, in_w]. */
void convt_forward(float *out, float *ws, const float *in, const float *w, const float *b,
                   const ConvShape *s, int B);
void convt_backward(float *din, float *dw, float *db, float *ws, const float *dout,
                    const float *in, const float *w, const ConvShape *s, int B);

/* im2col over a whole batch: col[c·k·k + i·k + j][(b·oh + y)·ow + x] — one
 * column per output pixel of every image, so one GEMM covers the batch and
 * its result [out_c, B·oh·ow] becomes NCHW by copying rows of oh·ow. */
void im2col_batch(float *col, const float *in, const ConvShape *s, int B);
/* Adjoint of im2col: out is overwritten with the sum of the contributions. */
void col2im_batch(float *out, const float *col, const ConvShape *s, int B);

/* ---- Element-wise ---- */
void relu_forward(float *out, const float *in, size_t n);
/* dinout: on entry dout, on exit din (uses the forward output). */
void relu_backward(float *dinout, const float *out, size_t n);
void sigmoid_forward(float *out, const float *in, size_t n);

/* Binary cross-entropy from logits, summed: Σ max(l,0) − l·x + log1p(e^−|l|).
 * Stable for any logit; equals −Σ x log σ(l) + (1−x) log(1−σ(l)).
 * Returns the sum over n elements (double accumulation). */
double bce_logits(const float *logits, const float *target, size_t n);
/* Its gradient: dlogits = scale·(σ(l) − x) (overwritten). */
void bce_logits_backward(float *dlogits, const float *logits, const float *target, size_t n,
                         float scale);

/* KL(N(μ, σ²) ‖ N(0, 1)) = −½ Σ (1 + logvar − μ² − e^logvar), summed over
 * n elements. When dmu/dlogvar are not NULL, ADDS scale·∂/∂ to them. */
double kld_normal(float *dmu, float *dlogvar, const float *mu, const float *logvar, size_t n,
                  float scale);

/* Reparameterisation z = μ + e^(½ logvar) ⊙ ε and its backward: ADDS dz's
 * contribution to dmu and dlogvar. */
void reparam_forward(float *z, const float *mu, const float *logvar, const float *eps, size_t n);
void reparam_backward(float *dmu, float *dlogvar, const float *dz, const float *logvar,
                      const float *eps, size_t n);

#endif
