/* vae.h — the study's two β-VAEs (DESIGN.md): convolutional and dense.
 *
 * A model owns one contiguous parameter buffer and one gradient buffer;
 * `tensors` names views into them with the PyTorch twin's names and
 * shapes, which are also the checkpoint's tensor names. Activations for up
 * to `cap` images live in one more buffer, reserved with vae_reserve.
 *
 * Loss per image: BCE (summed over the 784 pixels, from logits) + β·KLD.
 * vae_forward returns batch sums; vae_backward backpropagates the batch sum
 * of BCE + β·KLD (as pytorch/examples does). */
#ifndef GENLAB_VAE_H
#define GENLAB_VAE_H

#include <stddef.h>
#include <stdint.h>

#include "genlab/error.h"
#include "genlab/kernels.h"

typedef enum { ARCH_CONV, ARCH_DENSE } VaeArch;

typedef struct {
    VaeArch arch;
    int latent; /* d ≥ 1 */
} VaeConfig;

#define VAE_MAX_LATENT 512
#define VAE_MAX_TENSORS 14

typedef struct {
    const char *name; /* e.g. "enc.conv1.weight" */
    int ndim;
    int64_t shape[4];
    size_t offset; /* into params / grads, in floats */
    size_t numel;
    int fan_in;    /* PyTorch's default init draws U(±1/√fan_in) */
} ParamTensor;

/* One row of `genlab info`'s layer table. */
typedef struct {
    char name[32];
    char kind[48];   /* e.g. "Conv2d 1→32 3×3 s2 p1 + ReLU" */
    int out_c, out_h, out_w; /* output shape per image (out_h = out_w = 1 for vectors) */
    size_t params;
    double flops;    /* forward, per image, 2 × multiply-adds */
} LayerInfo;

/* Activations of one batch (pointers into one allocation). e1/e2 are the
 * encoder's hidden layers, d1/d2 the decoder's, whatever the arch. The
 * g_* buffers hold gradients with respect to the same tensors. */
typedef struct {
    float *e1, *e2, *mu, *logvar, *z, *d1, *d2, *logits;
    float *g_e1, *g_e2, *g_mu, *g_logvar, *g_z, *g_d1, *g_d2, *g_logits;
    float *col1, *col2; /* conv: im2col of the encoder inputs, kept for backward */
    float *ws;          /* conv kernels' workspace and other scratch */
} VaeActs;

typedef struct {
    VaeConfig cfg;
    int ntensors;
    ParamTensor tensors[VAE_MAX_TENSORS];
    size_t nparams;
    float *params;
    float *grads;
    int cap; /* images the activation buffers hold */
    VaeActs a;
    float *act_mem;
    int owns_params; /* 0 for a replica, whose params alias another model's */
    /* set by vae_forward for vae_backward */
    const float *x;
    const float *eps;
    int batch;
} Vae;

const char *vae_arch_name(VaeArch a);
/* "conv" or "dense" → arch; -1 when neither. */
int vae_arch_parse(const char *s, VaeArch *out);

/* Builds the tensor table and allocates parameters and gradients (zeroed).
 * Errors: latent outside 1..VAE_MAX_LATENT, out of memory. */
int vae_create(Vae *m, VaeConfig cfg, Err *e);
void vae_free(Vae *m);
/* A replica for data-parallel training: same configuration, `params`
 * pointing at m's (not copied), its own gradients and activations. */
int vae_create_replica(Vae *r, const Vae *m, Err *e);
/* PyTorch's default initialisation from the RNG_INIT stream of `seed`. */
void vae_init_weights(Vae *m, uint64_t seed);
/* Makes the activation buffers hold at least `batch` images. */
int vae_reserve(Vae *m, int batch, Err *e);
const ParamTensor *vae_find_tensor(const Vae *m, const char *name);

/* The layer table of a configuration, for `genlab info`; returns the
 * number of rows written (at most max). */
int vae_layers(VaeConfig cfg, LayerInfo *rows, int max);
size_t vae_param_count(VaeConfig cfg);

typedef struct {
    double bce; /* batch sums */
    double kld;
} VaeLoss;

/* x: B×784 in [0,1]. eps: B×d standard normal draws, or NULL for z = μ.
 * Fills m->a (mu, logvar, z, logits …) and returns the batch sums.
 * B ≤ m->cap. x and eps must stay valid until vae_backward. */
VaeLoss vae_forward(Vae *m, const float *x, const float *eps, int B);
/* Zeroes m->grads, then backpropagates Σ_batch (BCE + β·KLD) of the last
 * vae_forward. */
void vae_backward(Vae *m, float beta);

/* Encoder only: μ and log σ² of B images into m->a.mu / m->a.logvar. */
void vae_encode(Vae *m, const float *x, int B);
/* Decoder only: B latent vectors (B×d) → pixel probabilities (B×784). */
void vae_decode(Vae *m, const float *z, int B, float *probs);

/* Decodes n draws of z ~ N(0, T²·I) from the RNG_SAMPLE stream of `seed`
 * into out (n × 784). The same seed gives the same digits, and the first
 * k of n do not depend on n. -1 with e filled when out of memory. */
int vae_sample_prior(Vae *m, uint64_t seed, float temperature, int n, float *out, Err *e);

#endif
