/* winograd.h — 3×3, stride 1, padding 1 Conv2d by Winograd's minimal
 * filtering F(2×2, 3×3) (Lavin & Gray, "Fast Algorithms for Convolutional
 * Neural Networks", 2015).
 *
 * Each 2×2 block of output is computed from a 4×4 block of input with 16
 * multiplies per (input, output) channel pair instead of 36: the input
 * block and the filter are each taken to a 4×4 "transform domain" by fixed
 * matrices of 0, ±1 and ½, multiplied there element by element — which, over
 * channels and blocks, is 16 independent GEMMs — and the product is taken
 * back. The U-Net spends nearly all its time in such convolutions, and this
 * does their multiplies 2.25 times fewer (1.7 times at 7×7, where blocks
 * overhang the image), in all three passes:
 *   forward   Y  = Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A
 *   weights   dg = Gᵀ[Σ_blocks (A dY Aᵀ) ⊙ (Bᵀ d B)]G
 *   input     dd = B[(G g Gᵀ) ⊙ (A dY Aᵀ)]Bᵀ, added over overlapping blocks
 * The backward passes are the exact adjoints of the forward's arithmetic.
 *
 * Same conventions and results as conv2d_stream_forward/backward
 * (kernels.h) up to float rounding: NCHW, weights [out_c, in_c, 3, 3],
 * dw/db accumulate, din is overwritten and may be NULL. The work is done a
 * few images at a time in the workspace, so that the transformed blocks
 * stay in cache. */
#ifndef GENLAB_WINOGRAD_H
#define GENLAB_WINOGRAD_H

#include "genlab/kernels.h"

#include <stdbool.h>
#include <stddef.h>

/* Whether the shape is one this file computes: k 3, stride 1, padding 1. */
bool winograd_applies(const ConvShape *s);

/* Floats of workspace for a batch of B (forward and backward). */
size_t winograd_workspace_floats(const ConvShape *s, int B);

/* The filters in the transform domain: 16·out_c·in_c floats. Forward
 * and backward make them from w on every call; a caller whose weights stay
 * fixed over many calls (sampling) can make them once. */
size_t winograd_filter_floats(const ConvShape *s);
void winograd_transform_filters(float *U, const float *w, const ConvShape *s);

/* U: w's transform from winograd_transform_filters, or NULL to make it
 * here from w. */
void winograd_conv_forward(float *out, float *ws, const float *in, const float *w, const float *U,
                           const float *b, const ConvShape *s, int B);
void winograd_conv_backward(float *din, float *dw, float *db, float *ws, const float *dout,
                            const float *in, const float *w, const ConvShape *s, int B);

#endif
