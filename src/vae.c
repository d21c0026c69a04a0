#include "genlab/vae.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "genlab/rng.h"
#include "genlab/dataset.h"

/* Conv VAE geometry: two stride-2 convs 28→14→7, mirrored by two
 * transposed convs 7→14→28 (padding 1, output_padding 1). */
enum { CONV1, CONV2, DECONV1, DECONV2 };
#define CONV_FLAT (64 * 7 * 7)

static void conv_geometry(ConvShape s[4])
{
    s[CONV1] = conv_shape(1, 28, 28, 32, 3, 2, 1);
    s[CONV2] = conv_shape(32, 14, 14, 64, 3, 2, 1);
    s[DECONV1] = convt_shape(64, 7, 7, 32, 3, 2, 1, 1);
    s[DECONV2] = convt_shape(32, 14, 14, 1, 3, 2, 1, 1);
}

/* Hidden widths of the dense VAE. */
#define DENSE_H1 512
#define DENSE_H2 256

const char *vae_arch_name(VaeArch a) { return a == ARCH_CONV ? "conv" : "dense"; }

int vae_arch_parse(const char *s, VaeArch *out)
{
    if (strcmp(s, "conv") == 0) *out = ARCH_CONV;
    else if (strcmp(s, "dense") == 0) *out = ARCH_DENSE;
    else return -1;
    return 0;
}

/* ------------------------------------------------------------ tensor table */

static void add_tensor(Vae *m, const char *name, int ndim, const int64_t *shape, int fan_in)
{
    ParamTensor *t = &m->tensors[m->ntensors++];
    t->name = name;
    t->ndim = ndim;
    t->numel = 1;
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = shape[i];
        t->numel *= (size_t)shape[i];
    }
    t->offset = m->nparams;
    t->fan_in = fan_in;
    m->nparams += t->numel;
}

/* A Linear's weight [out, in] and bias [out]. */
static void add_linear(Vae *m, const char *wname, const char *bname, int in, int out)
{
    add_tensor(m, wname, 2, (int64_t[]){out, in}, in);
    add_tensor(m, bname, 1, (int64_t[]){out}, in);
}

/* A Conv2d's weight [out, in, k, k] or a ConvTranspose2d's [in, out, k, k]:
 * either way PyTorch's fan_in is shape[1]·k². */
static void add_conv(Vae *m, const char *wname, const char *bname, int d0, int d1, int k, int nbias)
{
    add_tensor(m, wname, 4, (int64_t[]){d0, d1, k, k}, d1 * k * k);
    add_tensor(m, bname, 1, (int64_t[]){nbias}, d1 * k * k);
}

static void build_table(Vae *m)
{
    const int d = m->cfg.latent;
    if (m->cfg.arch == ARCH_CONV) {
        add_conv(m, "enc.conv1.weight", "enc.conv1.bias", 32, 1, 3, 32);
        add_conv(m, "enc.conv2.weight", "enc.conv2.bias", 64, 32, 3, 64);
        add_linear(m, "enc.fc_mu.weight", "enc.fc_mu.bias", CONV_FLAT, d);
        add_linear(m, "enc.fc_logvar.weight", "enc.fc_logvar.bias", CONV_FLAT, d);
        add_linear(m, "dec.fc.weight", "dec.fc.bias", d, CONV_FLAT);
        add_conv(m, "dec.deconv1.weight", "dec.deconv1.bias", 64, 32, 3, 32);
        add_conv(m, "dec.deconv2.weight", "dec.deconv2.bias", 32, 1, 3, 1);
    } else {
        add_linear(m, "enc.fc1.weight", "enc.fc1.bias", MNIST_PIXELS, DENSE_H1);
        add_linear(m, "enc.fc2.weight", "enc.fc2.bias", DENSE_H1, DENSE_H2);
        add_linear(m, "enc.fc_mu.weight", "enc.fc_mu.bias", DENSE_H2, d);
        add_linear(m, "enc.fc_logvar.weight", "enc.fc_logvar.bias", DENSE_H2, d);
        add_linear(m, "dec.fc1.weight", "dec.fc1.bias", d, DENSE_H2);
        add_linear(m, "dec.fc2.weight", "dec.fc2.bias", DENSE_H2, DENSE_H1);
        add_linear(m, "dec.fc3.weight", "dec.fc3.bias", DENSE_H1, MNIST_PIXELS);
    }
}

int vae_create(Vae *m, VaeConfig cfg, Err *e)
{
    memset(m, 0, sizeof *m);
    if (cfg.latent < 1 || cfg.latent > VAE_MAX_LATENT)
        return err_set(e, "latent size %d is out of range (1..%d)", cfg.latent, VAE_MAX_LATENT);
    m->cfg = cfg;
    build_table(m);
    m->owns_params = 1;
    m->params = calloc(m->nparams, sizeof *m->params);
    m->grads = calloc(m->nparams, sizeof *m->grads);
    if (!m->params || !m->grads) {
        vae_free(m);
        return err_set(e, "out of memory for %zu parameters", m->nparams);
    }
    return 0;
}

int vae_create_replica(Vae *r, const Vae *m, Err *e)
{
    memset(r, 0, sizeof *r);
    r->cfg = m->cfg;
    build_table(r);
    r->params = m->params;
    r->grads = calloc(r->nparams, sizeof *r->grads);
    if (!r->grads) return err_set(e, "out of memory for %zu gradients", r->nparams);
    return 0;
}

void vae_free(Vae *m)
{
    if (m->owns_params) free(m->params);
    free(m->grads);
    free(m->act_mem);
    memset(m, 0, sizeof *m);
}

void vae_init_weights(Vae *m, uint64_t seed)
{
    Rng r;
    rng_seed(&r, seed, RNG_INIT, 0);
    for (int i = 0; i < m->ntensors; i++) {
        const ParamTensor *t = &m->tensors[i];
        float bound = 1.0f / sqrtf((float)t->fan_in);
        float *p = m->params + t->offset;
        for (size_t j = 0; j < t->numel; j++) p[j] = (2.0f * rng_uniform(&r) - 1.0f) * bound;
    }
}

const ParamTensor *vae_find_tensor(const Vae *m, const char *name)
{
    for (int i = 0; i < m->ntensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0) return &m->tensors[i];
    return NULL;
}

size_t vae_param_count(VaeConfig cfg)
{
    Vae m = {.cfg = cfg};
    build_table(&m);
    return m.nparams;
}

/* ------------------------------------------------------------- layer table */

static LayerInfo layer_row(const char *name, const char *kind, int c, int h, int w, size_t params,
                           double macs)
{
    LayerInfo r = {.out_c = c, .out_h = h, .out_w = w, .params = params, .flops = 2.0 * macs};
    snprintf(r.name, sizeof r.name, "%s", name);
    snprintf(r.kind, sizeof r.kind, "%s", kind);
    return r;
}

static size_t linear_params(int in, int out) { return (size_t)in * out + (size_t)out; }

int vae_layers(VaeConfig cfg, LayerInfo *rows, int max)
{
    LayerInfo all[8];
    int n = 0;
    const int d = cfg.latent;
    if (cfg.arch == ARCH_CONV) {
        ConvShape s[4];
        conv_geometry(s);
        /* A conv's multiply-adds: every output pixel × out_c × in_c·k². The
         * transposed convs are the adjoints, so the same count applies with
         * the roles of input and output exchanged. */
        double conv_macs[4];
        for (int i = 0; i < 4; i++)
            conv_macs[i] = (double)s[i].out_h * s[i].out_w * s[i].out_c * s[i].in_c * s[i].k * s[i].k;
        all[n++] = layer_row("enc.conv1", "Conv2d 1→32 3×3 s2 p1, ReLU", 32, 14, 14, 32 * 9 + 32, conv_macs[CONV1]);
        all[n++] = layer_row("enc.conv2", "Conv2d 32→64 3×3 s2 p1, ReLU", 64, 7, 7, 64 * 288 + 64, conv_macs[CONV2]);
        all[n++] = layer_row("enc.fc_mu", "Linear 3136→d", d, 1, 1, linear_params(CONV_FLAT, d), (double)CONV_FLAT * d);
        all[n++] = layer_row("enc.fc_logvar", "Linear 3136→d", d, 1, 1, linear_params(CONV_FLAT, d), (double)CONV_FLAT * d);
        all[n++] = layer_row("dec.fc", "Linear d→3136, ReLU", 64, 7, 7, linear_params(d, CONV_FLAT), (double)CONV_FLAT * d);
        all[n++] = layer_row("dec.deconv1", "ConvT 64→32 3×3 s2 p1 op1, ReLU", 32, 14, 14, 64 * 32 * 9 + 32, conv_macs[DECONV1]);
        all[n++] = layer_row("dec.deconv2", "ConvT 32→1 3×3 s2 p1 op1, Sigmoid", 1, 28, 28, 32 * 9 + 1, conv_macs[DECONV2]);
    } else {
        all[n++] = layer_row("enc.fc1", "Linear 784→512, ReLU", DENSE_H1, 1, 1, linear_params(784, DENSE_H1), 784.0 * DENSE_H1);
        all[n++] = layer_row("enc.fc2", "Linear 512→256, ReLU", DENSE_H2, 1, 1, linear_params(DENSE_H1, DENSE_H2), (double)DENSE_H1 * DENSE_H2);
        all[n++] = layer_row("enc.fc_mu", "Linear 256→d", d, 1, 1, linear_params(DENSE_H2, d), (double)DENSE_H2 * d);
        all[n++] = layer_row("enc.fc_logvar", "Linear 256→d", d, 1, 1, linear_params(DENSE_H2, d), (double)DENSE_H2 * d);
        all[n++] = layer_row("dec.fc1", "Linear d→256, ReLU", DENSE_H2, 1, 1, linear_params(d, DENSE_H2), (double)DENSE_H2 * d);
        all[n++] = layer_row("dec.fc2", "Linear 256→512, ReLU", DENSE_H1, 1, 1, linear_params(DENSE_H2, DENSE_H1), (double)DENSE_H1 * DENSE_H2);
        all[n++] = layer_row("dec.fc3", "Linear 512→784, Sigmoid", 1, 28, 28, linear_params(DENSE_H1, 784), 784.0 * DENSE_H1);
    }
    if (n > max) n = max;
    memcpy(rows, all, (size_t)n * sizeof *rows);
    return n;
}

/* ------------------------------------------------------------- activations */

/* Floats per image of each activation buffer. */
typedef struct {
    size_t e1, e2, d1, d2, col1, col2, ws;
} ActSizes;

static ActSizes act_sizes(VaeConfig cfg)
{
    if (cfg.arch == ARCH_DENSE)
        return (ActSizes){DENSE_H1, DENSE_H2, DENSE_H2, DENSE_H1, 0, 0, DENSE_H2};
    ConvShape s[4];
    conv_geometry(s);
    size_t ws = 0;
    for (int i = 0; i < 4; i++) {
        size_t w = conv_workspace_floats(&s[i], 1);
        if (w > ws) ws = w;
    }
    return (ActSizes){32 * 14 * 14, CONV_FLAT, CONV_FLAT, 32 * 14 * 14,
                      (size_t)9 * 14 * 14, (size_t)288 * 7 * 7, ws};
}

int vae_reserve(Vae *m, int batch, Err *e)
{
    if (batch <= m->cap) return 0;
    const ActSizes z = act_sizes(m->cfg);
    const size_t d = (size_t)m->cfg.latent, B = (size_t)batch;
    /* forward + gradient copies of each, then col1, col2, ws */
    size_t per = 2 * (z.e1 + z.e2 + 3 * d + z.d1 + z.d2 + MNIST_PIXELS) + z.col1 + z.col2 + z.ws;
    float *mem = malloc(per * B * sizeof *mem);
    if (!mem) return err_set(e, "out of memory for activations of %d images", batch);
    free(m->act_mem);
    m->act_mem = mem;
    m->cap = batch;
    float *p = mem;
#define CARVE(field, n) (m->a.field = p, p += (n) * B)
    CARVE(e1, z.e1); CARVE(e2, z.e2); CARVE(mu, d); CARVE(logvar, d); CARVE(z, d);
    CARVE(d1, z.d1); CARVE(d2, z.d2); CARVE(logits, MNIST_PIXELS);
    CARVE(g_e1, z.e1); CARVE(g_e2, z.e2); CARVE(g_mu, d); CARVE(g_logvar, d); CARVE(g_z, d);
    CARVE(g_d1, z.d1); CARVE(g_d2, z.d2); CARVE(g_logits, MNIST_PIXELS);
    CARVE(col1, z.col1); CARVE(col2, z.col2); CARVE(ws, z.ws);
#undef CARVE
    return 0;
}

/* ----------------------------------------------------------------- forward */

static const float *P(const Vae *m, int i) { return m->params + m->tensors[i].offset; }
static float *G(Vae *m, int i) { return m->grads + m->tensors[i].offset; }

/* Tensor indices: layer L has weight 2L and bias 2L+1, in table order. */
enum { L_ENC1, L_ENC2, L_MU, L_LOGVAR, L_DEC1, L_DEC2, L_DEC3 };
#define W_(L) (2 * (L))
#define B_(L) (2 * (L) + 1)

static void encode(Vae *m, const float *x, int B)
{
    VaeActs *a = &m->a;
    const int d = m->cfg.latent;
    int flat;
    if (m->cfg.arch == ARCH_CONV) {
        ConvShape s[4];
        conv_geometry(s);
        conv2d_forward(a->e1, a->col1, a->ws, x, P(m, W_(L_ENC1)), P(m, B_(L_ENC1)), &s[CONV1], B);
        relu_forward(a->e1, a->e1, (size_t)B * 32 * 14 * 14);
        conv2d_forward(a->e2, a->col2, a->ws, a->e1, P(m, W_(L_ENC2)), P(m, B_(L_ENC2)), &s[CONV2], B);
        flat = CONV_FLAT;
    } else {
        linear_forward(a->e1, x, P(m, W_(L_ENC1)), P(m, B_(L_ENC1)), B, MNIST_PIXELS, DENSE_H1);
        relu_forward(a->e1, a->e1, (size_t)B * DENSE_H1);
        linear_forward(a->e2, a->e1, P(m, W_(L_ENC2)), P(m, B_(L_ENC2)), B, DENSE_H1, DENSE_H2);
        flat = DENSE_H2;
    }
    relu_forward(a->e2, a->e2, (size_t)B * flat);
    linear_forward(a->mu, a->e2, P(m, W_(L_MU)), P(m, B_(L_MU)), B, flat, d);
    linear_forward(a->logvar, a->e2, P(m, W_(L_LOGVAR)), P(m, B_(L_LOGVAR)), B, flat, d);
}

/* z (B×d) → logits (B×784) through d1, d2. */
static void decode(Vae *m, const float *z, int B)
{
    VaeActs *a = &m->a;
    const int d = m->cfg.latent;
    if (m->cfg.arch == ARCH_CONV) {
        ConvShape s[4];
        conv_geometry(s);
        linear_forward(a->d1, z, P(m, W_(L_DEC1)), P(m, B_(L_DEC1)), B, d, CONV_FLAT);
        relu_forward(a->d1, a->d1, (size_t)B * CONV_FLAT);
        convt_forward(a->d2, a->ws, a->d1, P(m, W_(L_DEC2)), P(m, B_(L_DEC2)), &s[DECONV1], B);
        relu_forward(a->d2, a->d2, (size_t)B * 32 * 14 * 14);
        convt_forward(a->logits, a->ws, a->d2, P(m, W_(L_DEC3)), P(m, B_(L_DEC3)), &s[DECONV2], B);
    } else {
        linear_forward(a->d1, z, P(m, W_(L_DEC1)), P(m, B_(L_DEC1)), B, d, DENSE_H2);
        relu_forward(a->d1, a->d1, (size_t)B * DENSE_H2);
        linear_forward(a->d2, a->d1, P(m, W_(L_DEC2)), P(m, B_(L_DEC2)), B, DENSE_H2, DENSE_H1);
        relu_forward(a->d2, a->d2, (size_t)B * DENSE_H1);
        linear_forward(a->logits, a->d2, P(m, W_(L_DEC3)), P(m, B_(L_DEC3)), B, DENSE_H1, MNIST_PIXELS);
    }
}

VaeLoss vae_forward(Vae *m, const float *x, const float *eps, int B)
{
    VaeActs *a = &m->a;
    const size_t nz = (size_t)B * m->cfg.latent;
    encode(m, x, B);
    if (eps) reparam_forward(a->z, a->mu, a->logvar, eps, nz);
    else memcpy(a->z, a->mu, nz * sizeof *a->z);
    decode(m, a->z, B);
    m->x = x;
    m->eps = eps;
    m->batch = B;
    VaeLoss L;
    L.bce = bce_logits(a->logits, x, (size_t)B * MNIST_PIXELS);
    L.kld = kld_normal(NULL, NULL, a->mu, a->logvar, nz, 0.0f);
    return L;
}

void vae_encode(Vae *m, const float *x, int B) { encode(m, x, B); }

void vae_decode(Vae *m, const float *z, int B, float *probs)
{
    decode(m, z, B);
    sigmoid_forward(probs, m->a.logits, (size_t)B * MNIST_PIXELS);
}

int vae_sample_prior(Vae *m, uint64_t seed, float temperature, int n, float *out, Err *e)
{
    const int d = m->cfg.latent;
    float *z = malloc((size_t)n * d * sizeof *z);
    if (!z || vae_reserve(m, n, e)) {
        free(z);
        return err_set(e, "out of memory for %d samples", n);
    }
    Rng r;
    rng_seed(&r, seed, RNG_SAMPLE, 0);
    rng_fill_normal(&r, z, (int64_t)n * d);
    for (int64_t i = 0; i < (int64_t)n * d; i++) z[i] *= temperature;
    vae_decode(m, z, n, out);
    free(z);
    return 0;
}

/* ---------------------------------------------------------------- backward */

/* dlogits → dz through the decoder. */
static void decode_backward(Vae *m, int B)
{
    VaeActs *a = &m->a;
    const int d = m->cfg.latent;
    if (m->cfg.arch == ARCH_CONV) {
        ConvShape s[4];
        conv_geometry(s);
        convt_backward(a->g_d2, G(m, W_(L_DEC3)), G(m, B_(L_DEC3)), a->ws, a->g_logits, a->d2,
                       P(m, W_(L_DEC3)), &s[DECONV2], B);
        relu_backward(a->g_d2, a->d2, (size_t)B * 32 * 14 * 14);
        convt_backward(a->g_d1, G(m, W_(L_DEC2)), G(m, B_(L_DEC2)), a->ws, a->g_d2, a->d1,
                       P(m, W_(L_DEC2)), &s[DECONV1], B);
        relu_backward(a->g_d1, a->d1, (size_t)B * CONV_FLAT);
        linear_backward(a->g_z, G(m, W_(L_DEC1)), G(m, B_(L_DEC1)), a->g_d1, a->z, P(m, W_(L_DEC1)),
                        B, d, CONV_FLAT);
    } else {
        linear_backward(a->g_d2, G(m, W_(L_DEC3)), G(m, B_(L_DEC3)), a->g_logits, a->d2,
                        P(m, W_(L_DEC3)), B, DENSE_H1, MNIST_PIXELS);
        relu_backward(a->g_d2, a->d2, (size_t)B * DENSE_H1);
        linear_backward(a->g_d1, G(m, W_(L_DEC2)), G(m, B_(L_DEC2)), a->g_d2, a->d1,
                        P(m, W_(L_DEC2)), B, DENSE_H2, DENSE_H1);
        relu_backward(a->g_d1, a->d1, (size_t)B * DENSE_H2);
        linear_backward(a->g_z, G(m, W_(L_DEC1)), G(m, B_(L_DEC1)), a->g_d1, a->z, P(m, W_(L_DEC1)),
                        B, d, DENSE_H2);
    }
}

/* dmu, dlogvar → parameter gradients of the encoder. */
static void encode_backward(Vae *m, int B)
{
    VaeActs *a = &m->a;
    const int d = m->cfg.latent;
    const int flat = m->cfg.arch == ARCH_CONV ? CONV_FLAT : DENSE_H2;
    /* Both heads read e2: their input gradients add up (ws as scratch). */
    linear_backward(a->g_e2, G(m, W_(L_MU)), G(m, B_(L_MU)), a->g_mu, a->e2, P(m, W_(L_MU)), B,
                    flat, d);
    linear_backward(a->ws, G(m, W_(L_LOGVAR)), G(m, B_(L_LOGVAR)), a->g_logvar, a->e2,
                    P(m, W_(L_LOGVAR)), B, flat, d);
    for (size_t i = 0; i < (size_t)B * flat; i++) a->g_e2[i] += a->ws[i];
    relu_backward(a->g_e2, a->e2, (size_t)B * flat);
    if (m->cfg.arch == ARCH_CONV) {
        ConvShape s[4];
        conv_geometry(s);
        conv2d_backward(a->g_e1, G(m, W_(L_ENC2)), G(m, B_(L_ENC2)), a->ws, a->g_e2, a->col2,
                        P(m, W_(L_ENC2)), &s[CONV2], B);
        relu_backward(a->g_e1, a->e1, (size_t)B * 32 * 14 * 14);
        conv2d_backward(NULL, G(m, W_(L_ENC1)), G(m, B_(L_ENC1)), a->ws, a->g_e1, a->col1,
                        P(m, W_(L_ENC1)), &s[CONV1], B);
    } else {
        linear_backward(a->g_e1, G(m, W_(L_ENC2)), G(m, B_(L_ENC2)), a->g_e2, a->e1,
                        P(m, W_(L_ENC2)), B, DENSE_H1, DENSE_H2);
        relu_backward(a->g_e1, a->e1, (size_t)B * DENSE_H1);
        linear_backward(NULL, G(m, W_(L_ENC1)), G(m, B_(L_ENC1)), a->g_e1, m->x, P(m, W_(L_ENC1)),
                        B, MNIST_PIXELS, DENSE_H1);
    }
}

void vae_backward(Vae *m, float beta)
{
    VaeActs *a = &m->a;
    const int B = m->batch;
    const size_t nz = (size_t)B * m->cfg.latent;
    memset(m->grads, 0, m->nparams * sizeof *m->grads);
    bce_logits_backward(a->g_logits, a->logits, m->x, (size_t)B * MNIST_PIXELS, 1.0f);
    decode_backward(m, B);
    memset(a->g_mu, 0, nz * sizeof *a->g_mu);
    memset(a->g_logvar, 0, nz * sizeof *a->g_logvar);
    if (m->eps) reparam_backward(a->g_mu, a->g_logvar, a->g_z, a->logvar, m->eps, nz);
    else memcpy(a->g_mu, a->g_z, nz * sizeof *a->g_mu);
    kld_normal(a->g_mu, a->g_logvar, a->mu, a->logvar, nz, beta);
    encode_backward(m, B);
}
