/* winograd.h — 3×3, stride 1, padding 1 Conv2d by Winograd's minimal
 * filtering F(4×4, 3×3) (Lavin & Gray, "Fast Algorithms for Convolutional
 * Neural Networks", 2015).
 *
 * Each 4×4 block of output is computed from a 6×6 block of input with 36
 * multiplies per (input, output) channel pair instead of 144: the input
 * block and the filter are each taken to a 6×6 "transform domain" by fixed
 * small matrices, multiplied there element by element — which, over
 * channels and blocks, is 36 independent GEMMs — and the product is taken
 * back. The U-Net spends nearly all its time in such convolutions; this
 * does their multiplies 4 times fewer at 28×28 and 3 times fewer at 14×14
 * and 7×7 (where blocks overhang the image), in all three passes:
 *   forward   Y  = Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A
 *   weights   dg = Gᵀ[Σ_blocks (A dY Aᵀ) ⊙ (Bᵀ d B)]G
 *   input     dd = B[(G g Gᵀ) ⊙ (A dY Aᵀ)]Bᵀ, added over overlapping blocks
 * The backward passes are the exact adjoints of the forward's arithmetic.
 * The price is rounding: results differ from a direct convolution by up to
 * about 1e-5 of their largest value (test_winograd.c measures it), where
 * im2col differs by 1e-7 — far below what training or sampling notice.
 *
 * Same conventions and results as conv2d_stream_forward/backward
 * (kernels.h) up to that rounding: NCHW, weights [out_c, in_c, 3, 3],
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

/* The filters in the transform domain: 36·out_c·in_c floats. Forward
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
