/* unet.h — the DDPM's ε-network: a small U-Net conditioned on the step t.
 *
 * Layout (default channels c0, c1, c2 = 32, 64, 192 at 28, 14, 7 pixels;
 * time embedding width E = 128; GroupNorm with 8 groups), named as the
 * PyTorch twin's modules (tools/torch_unet.py), which are also the
 * checkpoint's tensor names:
 *
 *   temb   = time.lin2(SiLU(time.lin1(sinusoid(t, c0))))          [B, E]
 *   h0     = conv_in(x)                           1 → c0, 3×3     @ S
 *   e0     = enc0(h0, temb)                       Res c0 → c0      @ S
 *   e1     = enc1(down0(e0), temb)                conv s2, Res c0 → c1 @ S/2
 *   e2     = enc2_attn(enc2(down1(e1), temb))     conv s2, Res c1 → c2, Attn @ S/4
 *   m      = mid_attn(mid(e2, temb))              Res c2 → c2, Attn
 *   d2     = dec2_attn(dec2(cat(m, e2), temb))    Res 2c2 → c2, Attn
 *   d1     = dec1(cat(up1(↑d2), e1), temb)        ↑2 nearest, conv c2 → c1; Res 2c1 → c1
 *   d0     = dec0(cat(up0(↑d1), e0), temb)        ↑2 nearest, conv c1 → c0; Res 2c0 → c0
 *   ε̂      = conv_out(SiLU(norm_out(d0)))         c0 → 1, 3×3
 *
 *   Res(x, temb), "X" = its name, ci → co:
 *     h = X.conv1(SiLU(X.norm1(x)))   + X.emb(SiLU(temb)) per channel
 *     h = X.conv2(SiLU(X.norm2(h)))
 *     out = h + (ci == co ? x : X.skip(x))        (skip: 1×1 conv)
 *   Attn(x), "X": q|k|v = X.qkv(X.norm(x)) (1×1 conv c → 3c), single-head
 *     attention over the pixels, out = x + X.proj(attention) (1×1 conv).
 *
 * All 3×3 convs pad 1; down0/down1 have stride 2 (S → S/2 as PyTorch's
 * Conv2d(k=3, s=2, p=1) computes it). Initialisation is PyTorch's default,
 * except that the layers ending a residual branch (every X.conv2, X.proj)
 * and conv_out start at zero, as improved-diffusion's zero_module does, so
 * each block starts as the identity.
 *
 * The model owns one parameter buffer and one gradient buffer; activations
 * for up to `cap` images live in a third, reserved with unet_reserve. A
 * replica shares the parameters and owns gradients and activations, for
 * data-parallel training. */
#ifndef GENLAB_UNET_H
#define GENLAB_UNET_H

#include <stddef.h>
#include <stdint.h>

#include "genlab/error.h"
#include "genlab/vae.h" /* ParamTensor, LayerInfo */

typedef struct {
    int size;     /* image side S, divisible by 4: 28 for MNIST */
    int ch[3];    /* channels at S, S/2, S/4 */
    int emb;      /* time-embedding width E */
    int groups;   /* GroupNorm groups, dividing c0, c1, c2 */
} UnetConfig;

/* The default: S 28, channels 32/64/192, E 128, 8 groups. */
UnetConfig unet_default_config(void);
/* One line saying what is wrong with a configuration, or 0. */
int unet_check_config(const UnetConfig *c, Err *e);

#define UNET_MAX_TENSORS 160

typedef struct UnetActs UnetActs; /* private to unet.c */

typedef struct {
    UnetConfig cfg;
    int ntensors;
    ParamTensor tensors[UNET_MAX_TENSORS];
    size_t nparams;
    float *params;
    float *grads;
    int owns_params;
    int cap;        /* images the activation buffers hold */
    UnetActs *acts;
    /* A filter bank from unet_transform_filters to use in forward instead
     * of transforming the weights on each call, or NULL (see below). */
    const float *frozen;
} Unet;

int unet_create(Unet *m, UnetConfig cfg, Err *e);
int unet_create_replica(Unet *r, const Unet *m, Err *e);
void unet_free(Unet *m);
/* PyTorch's default initialisation (zero for the branch ends, above) from
 * the RNG_INIT stream of `seed`. */
void unet_init_weights(Unet *m, uint64_t seed);
int unet_reserve(Unet *m, int batch, Err *e);
const ParamTensor *unet_find_tensor(const Unet *m, const char *name);

/* Fixed weights, faster forward. Every 3×3 stride-1 conv runs through
 * Winograd's F(4×4, 3×3) (winograd.h), which first takes its filters to a
 * transform domain: at sampling's small batches, doing that on every call
 * more than doubles the forward's time (DDIM-50 for 16 digits: 4.3 s
 * against 2.0 s). unet_transform_filters fills a bank
 * (unet_filter_bank_floats floats, about 4 times the conv weights) from the
 * current weights; while m->frozen points to it, forward uses it, so the
 * weights must not change in that time. Backward never uses it. */
size_t unet_filter_bank_floats(const Unet *m);
void unet_transform_filters(const Unet *m, float *bank);

/* The layer table, for `genlab ddpm info`; rows written (≤ max). */
int unet_layers(UnetConfig cfg, LayerInfo *rows, int max);
size_t unet_param_count(UnetConfig cfg);
double unet_forward_flops(UnetConfig cfg); /* per image, 2 × multiply-adds */

/* ε̂ for B ≤ cap images x [B, 1, S, S] at 0-based steps t[B]. Keeps what
 * backward needs; x and t must stay valid until unet_backward. */
void unet_forward(Unet *m, float *eps_hat, const float *x, const int *t, int B);
/* Zeroes m->grads, then backpropagates d(loss)/d(ε̂) = deps [B, 1, S, S]
 * through the last unet_forward. */
void unet_backward(Unet *m, const float *deps);

#endif
