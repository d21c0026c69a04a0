/* unet.c — the DDPM's ε-network (layout in unet.h), forward and backward
 * by hand over the kernels of kernels.h, kernels_unet.h and winograd.h.
 *
 * The 3×3 stride-1 convolutions go through Winograd (winograd.h), the
 * strided ones through the streamed im2col of kernels.h; both keep nothing
 * between forward and backward but their input, and work a few images at
 * a time in a shared workspace. */
#include "genlab/unet.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "genlab/kernels.h"
#include "genlab/kernels_unet.h"
#include "genlab/rng.h"
#include "genlab/winograd.h"

#define NAME_LEN 48

enum { INIT_UNIFORM, INIT_ZERO, INIT_ONE };

/* Layers as indices into the tensor table (weight; bias = weight + 1). */
typedef struct {
    int w;
    ConvShape s;
    size_t bank; /* where its Winograd filters sit in a filter bank */
} Conv;
typedef struct {
    int w, c;
} Norm;
typedef struct {
    int w, in, out;
} Lin;
typedef struct {
    Norm norm1, norm2;
    Conv conv1, conv2;
    Lin emb;
    int skip; /* 1×1 conv weight index, or -1 when ci == co */
    int ci, co, hw;
} Res;
typedef struct {
    Norm norm;
    int qkv, proj;
    int c, hw;
} Attn;

typedef struct {
    Lin tlin1, tlin2;
    Conv conv_in, down0, down1, up1, up0, conv_out;
    Res enc0, enc1, enc2, mid, dec2, dec1, dec0;
    Attn enc2_attn, mid_attn, dec2_attn;
    Norm norm_out;
    size_t bank_floats; /* the Winograd filters of every 3×3 stride-1 conv */
} Layout;

#define UNET_CONVS 20

/* Every Conv2d of the layout (not the 1×1 ones, which have their kernel). */
static void list_convs(const Layout *L, const Conv *out[UNET_CONVS])
{
    const Conv *all[UNET_CONVS] = {&L->conv_in, &L->down0, &L->down1, &L->up1, &L->up0, &L->conv_out,
                                   &L->enc0.conv1, &L->enc0.conv2, &L->enc1.conv1, &L->enc1.conv2,
                                   &L->enc2.conv1, &L->enc2.conv2, &L->mid.conv1, &L->mid.conv2,
                                   &L->dec2.conv1, &L->dec2.conv2, &L->dec1.conv1, &L->dec1.conv2,
                                   &L->dec0.conv1, &L->dec0.conv2};
    memcpy(out, all, sizeof all);
}

/* What one residual block keeps for backward (B images). */
typedef struct {
    const float *in;
    float *n1, *mean1, *rstd1, *a1, *h1, *ev, *n2, *mean2, *rstd2, *a2, *out;
} ResActs;
typedef struct {
    const float *in;
    float *nrm, *mean, *rstd, *qkv, *att, *ao, *out;
} AttnActs;

struct UnetActs {
    Layout L;
    int init[UNET_MAX_TENSORS];
    char (*names)[NAME_LEN];
    float *mem;
    /* forward */
    const float *x;
    const int *t;
    int B;
    float *sinus, *t1, *t1a, *temb, *tembs;
    float *h0, *p0, *p1, *cat2, *u1, *v1, *cat1, *u0, *v0, *cat0, *no, *nmean, *nrstd, *na;
    ResActs enc0, enc1, enc2, mid, dec2, dec1, dec0;
    AttnActs enc2_attn, mid_attn, dec2_attn;
    /* backward */
    float *g_t1, *g_t1a, *g_temb, *g_tembs, *g_tmp_e;
    float *g_na, *g_d0, *g_cat0, *g_v0, *g_e0, *g_u0, *g_d1, *g_cat1, *g_v1, *g_e1, *g_u1, *g_d2,
        *g_rd2, *g_cat2, *g_m, *g_e2, *g_rm, *g_r2, *g_p1, *g_p0, *g_h0, *g_tmp;
    /* scratch shared by every layer */
    float *ws, *s1, *s2, *att_scratch, *ev_grad;
};

UnetConfig unet_default_config(void)
{
    return (UnetConfig){.size = 28, .ch = {32, 64, 192}, .emb = 128, .groups = 8};
}

int unet_check_config(const UnetConfig *c, Err *e)
{
    if (c->size < 4 || c->size > 1024 || c->size % 4)
        return err_set(e, "U-Net image size %d: must be a multiple of 4 from 4 to 1024", c->size);
    if (c->emb < 1 || c->emb > 4096) return err_set(e, "U-Net embedding width %d: must be 1..4096", c->emb);
    if (c->groups < 1) return err_set(e, "U-Net GroupNorm groups %d: must be at least 1", c->groups);
    for (int i = 0; i < 3; i++)
        if (c->ch[i] < 1 || c->ch[i] > 4096 || c->ch[i] % c->groups)
            return err_set(e, "U-Net channels %d at level %d: must be 1..4096 and divisible by the %d groups",
                           c->ch[i], i, c->groups);
    if (c->ch[0] % 2) return err_set(e, "U-Net channels %d at 28×28: must be even (sinusoid width)", c->ch[0]);
    return 0;
}

/* ------------------------------------------------------------ tensor table */

typedef struct {
    Unet *m;
    char (*names)[NAME_LEN]; /* NULL: count only */
    int *init;
    size_t bank_floats;
} Table;

static int add(Table *tb, const char *prefix, const char *suffix, int ndim, const int64_t *shape,
               int fan_in, int init)
{
    Unet *m = tb->m;
    int i = m->ntensors++;
    ParamTensor *t = &m->tensors[i];
    t->name = "";
    if (tb->names) {
        snprintf(tb->names[i], NAME_LEN, "%s.%s", prefix, suffix);
        t->name = tb->names[i];
        tb->init[i] = init;
    }
    t->ndim = ndim;
    t->numel = 1;
    for (int d = 0; d < ndim; d++) {
        t->shape[d] = shape[d];
        t->numel *= (size_t)shape[d];
    }
    t->offset = m->nparams;
    t->fan_in = fan_in;
    m->nparams += t->numel;
    return i;
}

/* The 3×3 stride-1 convs (nearly all the model's work) go through
 * Winograd's F(4×4, 3×3), except the first, whose single input channel
 * gives the transforms nothing to share (direct: 0.13 ms for 8 images,
 * Winograd: 0.37 ms); the strided ones through im2col. */
static bool use_winograd(const ConvShape *s) { return winograd_applies(s) && s->in_c > 1; }

static Conv add_conv(Table *tb, const char *name, int ci, int co, int k, int stride, int side,
                     int init)
{
    Conv c = {.s = conv_shape(ci, side, side, co, k, stride, k / 2)};
    if (use_winograd(&c.s)) {
        c.bank = tb->bank_floats;
        tb->bank_floats += winograd_filter_floats(&c.s);
    }
    c.w = add(tb, name, "weight", 4, (int64_t[]){co, ci, k, k}, ci * k * k, init);
    add(tb, name, "bias", 1, (int64_t[]){co}, ci * k * k, init);
    return c;
}

static Norm add_norm(Table *tb, const char *name, int c)
{
    Norm n = {.c = c};
    n.w = add(tb, name, "weight", 1, (int64_t[]){c}, 1, INIT_ONE);
    add(tb, name, "bias", 1, (int64_t[]){c}, 1, INIT_ZERO);
    return n;
}

static Lin add_lin(Table *tb, const char *name, int in, int out)
{
    Lin l = {.in = in, .out = out};
    l.w = add(tb, name, "weight", 2, (int64_t[]){out, in}, in, INIT_UNIFORM);
    add(tb, name, "bias", 1, (int64_t[]){out}, in, INIT_UNIFORM);
    return l;
}

static Res add_res(Table *tb, const char *name, int ci, int co, int side, int emb)
{
    char sub[NAME_LEN];
    Res r = {.ci = ci, .co = co, .hw = side * side, .skip = -1};
#define SUB(s) (snprintf(sub, sizeof sub, "%s.%s", name, s), sub)
    r.norm1 = add_norm(tb, SUB("norm1"), ci);
    r.conv1 = add_conv(tb, SUB("conv1"), ci, co, 3, 1, side, INIT_UNIFORM);
    r.emb = add_lin(tb, SUB("emb"), emb, co);
    r.norm2 = add_norm(tb, SUB("norm2"), co);
    r.conv2 = add_conv(tb, SUB("conv2"), co, co, 3, 1, side, INIT_ZERO);
    if (ci != co) r.skip = add_conv(tb, SUB("skip"), ci, co, 1, 1, side, INIT_UNIFORM).w;
#undef SUB
    return r;
}

static Attn add_attn(Table *tb, const char *name, int c, int side)
{
    char sub[NAME_LEN];
    Attn a = {.c = c, .hw = side * side};
    snprintf(sub, sizeof sub, "%s.norm", name);
    a.norm = add_norm(tb, sub, c);
    snprintf(sub, sizeof sub, "%s.qkv", name);
    a.qkv = add_conv(tb, sub, c, 3 * c, 1, 1, side, INIT_UNIFORM).w;
    snprintf(sub, sizeof sub, "%s.proj", name);
    a.proj = add_conv(tb, sub, c, c, 1, 1, side, INIT_ZERO).w;
    return a;
}

static void build(Table *tb, Layout *L)
{
    const UnetConfig *c = &tb->m->cfg;
    const int S = c->size, c0 = c->ch[0], c1 = c->ch[1], c2 = c->ch[2], E = c->emb;
    L->tlin1 = add_lin(tb, "time.lin1", c0, E);
    L->tlin2 = add_lin(tb, "time.lin2", E, E);
    L->conv_in = add_conv(tb, "conv_in", 1, c0, 3, 1, S, INIT_UNIFORM);
    L->enc0 = add_res(tb, "enc0", c0, c0, S, E);
    L->down0 = add_conv(tb, "down0", c0, c0, 3, 2, S, INIT_UNIFORM);
    L->enc1 = add_res(tb, "enc1", c0, c1, S / 2, E);
    L->down1 = add_conv(tb, "down1", c1, c1, 3, 2, S / 2, INIT_UNIFORM);
    L->enc2 = add_res(tb, "enc2", c1, c2, S / 4, E);
    L->enc2_attn = add_attn(tb, "enc2_attn", c2, S / 4);
    L->mid = add_res(tb, "mid", c2, c2, S / 4, E);
    L->mid_attn = add_attn(tb, "mid_attn", c2, S / 4);
    L->dec2 = add_res(tb, "dec2", 2 * c2, c2, S / 4, E);
    L->dec2_attn = add_attn(tb, "dec2_attn", c2, S / 4);
    L->up1 = add_conv(tb, "up1", c2, c1, 3, 1, S / 2, INIT_UNIFORM);
    L->dec1 = add_res(tb, "dec1", 2 * c1, c1, S / 2, E);
    L->up0 = add_conv(tb, "up0", c1, c0, 3, 1, S, INIT_UNIFORM);
    L->dec0 = add_res(tb, "dec0", 2 * c0, c0, S, E);
    L->norm_out = add_norm(tb, "norm_out", c0);
    L->conv_out = add_conv(tb, "conv_out", c0, 1, 3, 1, S, INIT_ZERO);
    L->bank_floats = tb->bank_floats;
}

/* ------------------------------------------------------- layer table / FLOPs */

static double conv_flops(const ConvShape *s)
{
    return 2.0 * s->in_c * s->out_c * s->k * s->k * s->out_h * s->out_w;
}

static double res_flops(const Res *r, const UnetConfig *c)
{
    double f = conv_flops(&r->conv1.s) + conv_flops(&r->conv2.s) + 2.0 * c->emb * r->co;
    if (r->skip >= 0) f += 2.0 * r->ci * r->co * r->hw;
    return f;
}

static double attn_flops(const Attn *a)
{
    const double n = a->hw, c = a->c;
    return 2.0 * n * c * 3 * c + 2.0 * 2 * n * n * c + 2.0 * n * c * c;
}

static size_t span_params(const Unet *m, int first, int last)
{
    size_t n = 0;
    for (int i = first; i <= last; i++) n += m->tensors[i].numel;
    return n;
}

typedef struct {
    LayerInfo *rows;
    int n, max;
    const Unet *m;
} Rows;

static void row(Rows *r, const char *name, const char *kind, int c, int side, int first, int last,
                double flops)
{
    if (r->n >= r->max) return;
    LayerInfo *li = &r->rows[r->n++];
    snprintf(li->name, sizeof li->name, "%s", name);
    snprintf(li->kind, sizeof li->kind, "%s", kind);
    li->out_c = c;
    li->out_h = li->out_w = side;
    li->params = span_params(r->m, first, last);
    li->flops = flops;
}

static int res_last(const Res *r) { return (r->skip >= 0 ? r->skip : r->conv2.w) + 1; }
static int attn_last(const Attn *a) { return a->proj + 1; }

static void res_row(Rows *r, const char *name, const Res *res, int side, const UnetConfig *c)
{
    char kind[48];
    snprintf(kind, sizeof kind, "ResBlock %d→%d%s", res->ci, res->co, res->skip >= 0 ? " +1×1 skip" : "");
    row(r, name, kind, res->co, side, res->norm1.w, res_last(res), res_flops(res, c));
}

static void attn_row(Rows *r, const char *name, const Attn *a, int side)
{
    row(r, name, "self-attention, 1 head", a->c, side, a->norm.w, attn_last(a), attn_flops(a));
}

static void conv_row(Rows *r, const char *name, const char *kind, const Conv *cv)
{
    row(r, name, kind, cv->s.out_c, cv->s.out_h, cv->w, cv->w + 1, conv_flops(&cv->s));
}

int unet_layers(UnetConfig cfg, LayerInfo *rows, int max)
{
    Unet m = {.cfg = cfg};
    Layout L;
    Table tb = {.m = &m};
    build(&tb, &L);
    Rows r = {.rows = rows, .max = max, .m = &m};
    const int S = cfg.size, E = cfg.emb;
    char kind[48];
    snprintf(kind, sizeof kind, "sinusoid %d → MLP %d, SiLU", cfg.ch[0], E);
    row(&r, "time", kind, E, 1, L.tlin1.w, L.tlin2.w + 1, 2.0 * (cfg.ch[0] * E + E * E));
    conv_row(&r, "conv_in", "Conv2d 3×3", &L.conv_in);
    res_row(&r, "enc0", &L.enc0, S, &cfg);
    conv_row(&r, "down0", "Conv2d 3×3 s2", &L.down0);
    res_row(&r, "enc1", &L.enc1, S / 2, &cfg);
    conv_row(&r, "down1", "Conv2d 3×3 s2", &L.down1);
    res_row(&r, "enc2", &L.enc2, S / 4, &cfg);
    attn_row(&r, "enc2_attn", &L.enc2_attn, S / 4);
    res_row(&r, "mid", &L.mid, S / 4, &cfg);
    attn_row(&r, "mid_attn", &L.mid_attn, S / 4);
    res_row(&r, "dec2", &L.dec2, S / 4, &cfg);
    attn_row(&r, "dec2_attn", &L.dec2_attn, S / 4);
    conv_row(&r, "up1", "↑2 nearest, Conv2d 3×3", &L.up1);
    res_row(&r, "dec1", &L.dec1, S / 2, &cfg);
    conv_row(&r, "up0", "↑2 nearest, Conv2d 3×3", &L.up0);
    res_row(&r, "dec0", &L.dec0, S, &cfg);
    row(&r, "norm_out", "GroupNorm, SiLU", cfg.ch[0], S, L.norm_out.w, L.norm_out.w + 1, 0);
    conv_row(&r, "conv_out", "Conv2d 3×3 → ε", &L.conv_out);
    return r.n;
}

size_t unet_param_count(UnetConfig cfg)
{
    Unet m = {.cfg = cfg};
    Layout L;
    Table tb = {.m = &m};
    build(&tb, &L);
    return m.nparams;
}

double unet_forward_flops(UnetConfig cfg)
{
    LayerInfo rows[32];
    int n = unet_layers(cfg, rows, 32);
    double f = 0;
    for (int i = 0; i < n; i++) f += rows[i].flops;
    return f;
}

/* ------------------------------------------------------------ model buffers */

int unet_create(Unet *m, UnetConfig cfg, Err *e)
{
    memset(m, 0, sizeof *m);
    if (unet_check_config(&cfg, e)) return -1;
    m->cfg = cfg;
    m->acts = calloc(1, sizeof *m->acts);
    if (m->acts) m->acts->names = calloc(UNET_MAX_TENSORS, sizeof *m->acts->names);
    if (!m->acts || !m->acts->names) {
        unet_free(m);
        return err_set(e, "out of memory for the U-Net");
    }
    Table tb = {.m = m, .names = m->acts->names, .init = m->acts->init};
    build(&tb, &m->acts->L);
    m->params = calloc(m->nparams, sizeof *m->params);
    m->grads = calloc(m->nparams, sizeof *m->grads);
    m->owns_params = 1;
    if (!m->params || !m->grads) {
        unet_free(m);
        return err_set(e, "out of memory for the U-Net's %zu parameters", m->nparams);
    }
    return 0;
}

int unet_create_replica(Unet *r, const Unet *m, Err *e)
{
    memset(r, 0, sizeof *r);
    r->cfg = m->cfg;
    r->ntensors = m->ntensors;
    memcpy(r->tensors, m->tensors, sizeof r->tensors); /* names point into m */
    r->nparams = m->nparams;
    r->params = m->params;
    r->acts = calloc(1, sizeof *r->acts);
    r->grads = calloc(m->nparams, sizeof *r->grads);
    if (!r->acts || !r->grads) {
        unet_free(r);
        return err_set(e, "out of memory for a U-Net replica");
    }
    r->acts->L = m->acts->L;
    return 0;
}

void unet_free(Unet *m)
{
    if (m->acts) {
        free(m->acts->mem);
        free(m->acts->names);
        free(m->acts);
    }
    if (m->owns_params) free(m->params);
    free(m->grads);
    memset(m, 0, sizeof *m);
}

size_t unet_filter_bank_floats(const Unet *m) { return m->acts->L.bank_floats; }

void unet_transform_filters(const Unet *m, float *bank)
{
    const Conv *convs[UNET_CONVS];
    list_convs(&m->acts->L, convs);
    for (int i = 0; i < UNET_CONVS; i++)
        if (use_winograd(&convs[i]->s))
            winograd_transform_filters(bank + convs[i]->bank, m->params + m->tensors[convs[i]->w].offset,
                                       &convs[i]->s);
}

void unet_init_weights(Unet *m, uint64_t seed)
{
    Rng r;
    rng_seed(&r, seed, RNG_INIT, 0);
    for (int i = 0; i < m->ntensors; i++) {
        const ParamTensor *t = &m->tensors[i];
        float *p = m->params + t->offset;
        int kind = m->acts->init[i];
        float bound = 1.0f / sqrtf((float)t->fan_in);
        for (size_t j = 0; j < t->numel; j++)
            p[j] = kind == INIT_ONE    ? 1.0f
                   : kind == INIT_ZERO ? 0.0f
                                       : (2.0f * rng_uniform(&r) - 1.0f) * bound;
    }
}

const ParamTensor *unet_find_tensor(const Unet *m, const char *name)
{
    for (int i = 0; i < m->ntensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0) return &m->tensors[i];
    return NULL;
}

/* Bump allocation over one buffer; a first pass with base NULL sizes it. */
typedef struct {
    float *base;
    size_t used;
} Bump;

static float *take(Bump *b, size_t n)
{
    float *p = b->base ? b->base + b->used : NULL;
    b->used += (n + 15) & ~(size_t)15; /* 64-byte aligned slices */
    return p;
}

static void res_acts(Bump *b, ResActs *a, const Res *r, int B, int G)
{
    const size_t ni = (size_t)B * r->ci * r->hw, no = (size_t)B * r->co * r->hw;
    a->n1 = take(b, ni), a->a1 = take(b, ni);
    a->mean1 = take(b, (size_t)B * G), a->rstd1 = take(b, (size_t)B * G);
    a->h1 = take(b, no), a->ev = take(b, (size_t)B * r->co);
    a->n2 = take(b, no), a->a2 = take(b, no), a->out = take(b, no);
    a->mean2 = take(b, (size_t)B * G), a->rstd2 = take(b, (size_t)B * G);
}

static void attn_acts(Bump *b, AttnActs *a, const Attn *at, int B, int G)
{
    const size_t n = (size_t)B * at->c * at->hw;
    a->nrm = take(b, n), a->qkv = take(b, 3 * n), a->ao = take(b, n), a->out = take(b, n);
    a->att = take(b, (size_t)B * at->hw * at->hw);
    a->mean = take(b, (size_t)B * G), a->rstd = take(b, (size_t)B * G);
}

static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }

static size_t conv_workspace(const ConvShape *s, int B)
{
    return use_winograd(s) ? winograd_workspace_floats(s, B) : conv_stream_workspace_floats(s, B);
}

static void layout_acts(Bump *b, UnetActs *a, const UnetConfig *c, int B)
{
    const Layout *L = &a->L;
    const int G = c->groups, E = c->emb, S = c->size;
    const size_t px0 = (size_t)S * S, px1 = px0 / 4, px2 = px0 / 16;
    const int c0 = c->ch[0], c1 = c->ch[1], c2 = c->ch[2];
    a->sinus = take(b, (size_t)B * c0);
    a->t1 = take(b, (size_t)B * E), a->t1a = take(b, (size_t)B * E);
    a->temb = take(b, (size_t)B * E), a->tembs = take(b, (size_t)B * E);
    a->h0 = take(b, B * c0 * px0);
    res_acts(b, &a->enc0, &L->enc0, B, G);
    a->p0 = take(b, B * c0 * px1);
    res_acts(b, &a->enc1, &L->enc1, B, G);
    a->p1 = take(b, B * c1 * px2);
    res_acts(b, &a->enc2, &L->enc2, B, G);
    attn_acts(b, &a->enc2_attn, &L->enc2_attn, B, G);
    res_acts(b, &a->mid, &L->mid, B, G);
    attn_acts(b, &a->mid_attn, &L->mid_attn, B, G);
    a->cat2 = take(b, B * 2 * c2 * px2);
    res_acts(b, &a->dec2, &L->dec2, B, G);
    attn_acts(b, &a->dec2_attn, &L->dec2_attn, B, G);
    a->u1 = take(b, B * c2 * px1), a->v1 = take(b, B * c1 * px1), a->cat1 = take(b, B * 2 * c1 * px1);
    res_acts(b, &a->dec1, &L->dec1, B, G);
    a->u0 = take(b, B * c1 * px0), a->v0 = take(b, B * c0 * px0), a->cat0 = take(b, B * 2 * c0 * px0);
    res_acts(b, &a->dec0, &L->dec0, B, G);
    a->no = take(b, B * c0 * px0), a->na = take(b, B * c0 * px0);
    a->nmean = take(b, (size_t)B * G), a->nrstd = take(b, (size_t)B * G);

    a->g_t1 = take(b, (size_t)B * E), a->g_t1a = take(b, (size_t)B * E);
    a->g_temb = take(b, (size_t)B * E), a->g_tembs = take(b, (size_t)B * E);
    a->g_tmp_e = take(b, (size_t)B * E);
    a->g_na = take(b, B * c0 * px0), a->g_d0 = take(b, B * c0 * px0);
    a->g_cat0 = take(b, B * 2 * c0 * px0), a->g_v0 = take(b, B * c0 * px0);
    a->g_e0 = take(b, B * c0 * px0), a->g_u0 = take(b, B * c1 * px0);
    a->g_d1 = take(b, B * c1 * px1), a->g_cat1 = take(b, B * 2 * c1 * px1);
    a->g_v1 = take(b, B * c1 * px1), a->g_e1 = take(b, B * c1 * px1);
    a->g_u1 = take(b, B * c2 * px1), a->g_d2 = take(b, B * c2 * px2);
    a->g_rd2 = take(b, B * c2 * px2), a->g_cat2 = take(b, B * 2 * c2 * px2);
    a->g_m = take(b, B * c2 * px2), a->g_e2 = take(b, B * c2 * px2);
    a->g_rm = take(b, B * c2 * px2), a->g_r2 = take(b, B * c2 * px2);
    a->g_p1 = take(b, B * c1 * px2), a->g_p0 = take(b, B * c0 * px1);
    a->g_h0 = take(b, B * c0 * px0);
    /* g_tmp receives a conv's or a block's input gradient before it is
     * added where that input has a second consumer */
    a->g_tmp = take(b, B * max_sz(c0 * px0, max_sz(c1 * px1, c2 * px2)));

    /* scratch: the largest conv workspace, block-internal tensors */
    const Conv *convs[UNET_CONVS];
    list_convs(L, convs);
    size_t ws = 0;
    for (int i = 0; i < UNET_CONVS; i++)
        ws = max_sz(ws, conv_workspace(&convs[i]->s, B));
    a->ws = take(b, ws);
    size_t per = max_sz(2 * c0 * px0, max_sz(2 * c1 * px1, 3 * c2 * px2));
    a->s1 = take(b, B * per), a->s2 = take(b, B * per);
    a->att_scratch = take(b, px2 * px2);
    a->ev_grad = take(b, (size_t)B * max_sz(c2, max_sz(c1, c0)));
}

int unet_reserve(Unet *m, int batch, Err *e)
{
    if (batch <= m->cap) return 0;
    UnetActs *a = m->acts, sizing = *a; /* sizing on a copy keeps a's pointers if malloc fails */
    Bump b = {0};
    layout_acts(&b, &sizing, &m->cfg, batch);
    float *mem = malloc(b.used * sizeof *mem);
    if (!mem) return err_set(e, "out of memory for U-Net activations of %d images", batch);
    free(a->mem);
    a->mem = mem;
    b = (Bump){.base = mem};
    layout_acts(&b, a, &m->cfg, batch);
    m->cap = batch;
    return 0;
}

/* ----------------------------------------------------------------- forward */

static const float *P(const Unet *m, int i) { return m->params + m->tensors[i].offset; }
static float *Gr(Unet *m, int i) { return m->grads + m->tensors[i].offset; }

static void add_into(float *dst, const float *src, size_t n)
{
    for (size_t i = 0; i < n; i++) dst[i] += src[i];
}

static void conv_fwd(Unet *m, const Conv *c, float *out, const float *in, int B)
{
    if (use_winograd(&c->s))
        winograd_conv_forward(out, m->acts->ws, in, P(m, c->w), m->frozen ? m->frozen + c->bank : NULL,
                              P(m, c->w + 1), &c->s, B);
    else
        conv2d_stream_forward(out, m->acts->ws, in, P(m, c->w), P(m, c->w + 1), &c->s, B);
}

/* din may be NULL; in is the conv's forward input (its transform is remade). */
static void conv_bwd(Unet *m, const Conv *c, float *din, const float *dout, const float *in, int B)
{
    if (use_winograd(&c->s))
        winograd_conv_backward(din, Gr(m, c->w), Gr(m, c->w + 1), m->acts->ws, dout, in, P(m, c->w),
                               &c->s, B);
    else
        conv2d_stream_backward(din, Gr(m, c->w), Gr(m, c->w + 1), m->acts->ws, dout, in, P(m, c->w),
                               &c->s, B);
}

static void norm_fwd(Unet *m, const Norm *n, float *out, float *mean, float *rstd, const float *in,
                     int B, int hw)
{
    groupnorm_forward(out, mean, rstd, in, P(m, n->w), P(m, n->w + 1), B, n->c, hw, m->cfg.groups);
}

static void norm_bwd(Unet *m, const Norm *n, float *din, const float *dout, const float *in,
                     const float *mean, const float *rstd, int B, int hw)
{
    groupnorm_backward(din, Gr(m, n->w), Gr(m, n->w + 1), dout, in, mean, rstd, P(m, n->w), B, n->c, hw,
                       m->cfg.groups);
}

static void res_fwd(Unet *m, const Res *r, ResActs *a, const float *in, int B)
{
    const size_t ni = (size_t)B * r->ci * r->hw, no = (size_t)B * r->co * r->hw;
    a->in = in;
    norm_fwd(m, &r->norm1, a->n1, a->mean1, a->rstd1, in, B, r->hw);
    silu_forward(a->a1, a->n1, ni);
    conv_fwd(m, &r->conv1, a->h1, a->a1, B);
    linear_forward(a->ev, m->acts->tembs, P(m, r->emb.w), P(m, r->emb.w + 1), B, r->emb.in, r->co);
    add_channel_vector(a->h1, a->ev, B, r->co, r->hw);
    norm_fwd(m, &r->norm2, a->n2, a->mean2, a->rstd2, a->h1, B, r->hw);
    silu_forward(a->a2, a->n2, no);
    conv_fwd(m, &r->conv2, a->out, a->a2, B);
    if (r->skip >= 0) {
        float *s = m->acts->s1;
        conv1x1_forward(s, in, P(m, r->skip), P(m, r->skip + 1), B, r->ci, r->co, r->hw);
        add_into(a->out, s, no);
    } else {
        add_into(a->out, in, no);
    }
}

static void attn_fwd(Unet *m, const Attn *at, AttnActs *a, const float *in, int B)
{
    const int c = at->c, n = at->hw;
    a->in = in;
    norm_fwd(m, &at->norm, a->nrm, a->mean, a->rstd, in, B, n);
    conv1x1_forward(a->qkv, a->nrm, P(m, at->qkv), P(m, at->qkv + 1), B, c, 3 * c, n);
    attention_forward(a->ao, a->att, a->qkv, B, c, n);
    conv1x1_forward(a->out, a->ao, P(m, at->proj), P(m, at->proj + 1), B, c, c, n);
    add_into(a->out, in, (size_t)B * c * n);
}

static void time_fwd(Unet *m, const int *t, int B)
{
    UnetActs *a = m->acts;
    const Layout *L = &a->L;
    const int E = m->cfg.emb;
    timestep_embedding(a->sinus, t, B, m->cfg.ch[0]);
    linear_forward(a->t1, a->sinus, P(m, L->tlin1.w), P(m, L->tlin1.w + 1), B, L->tlin1.in, E);
    silu_forward(a->t1a, a->t1, (size_t)B * E);
    linear_forward(a->temb, a->t1a, P(m, L->tlin2.w), P(m, L->tlin2.w + 1), B, E, E);
    silu_forward(a->tembs, a->temb, (size_t)B * E); /* every block's emb layer reads SiLU(temb) */
}

void unet_forward(Unet *m, float *eps_hat, const float *x, const int *t, int B)
{
    UnetActs *a = m->acts;
    const Layout *L = &a->L;
    const int S = m->cfg.size, c0 = m->cfg.ch[0], c1 = m->cfg.ch[1], c2 = m->cfg.ch[2];
    const int px0 = S * S, px1 = px0 / 4, px2 = px0 / 16;
    a->x = x, a->t = t, a->B = B;
    time_fwd(m, t, B);
    conv_fwd(m, &L->conv_in, a->h0, x, B);
    res_fwd(m, &L->enc0, &a->enc0, a->h0, B);
    conv_fwd(m, &L->down0, a->p0, a->enc0.out, B);
    res_fwd(m, &L->enc1, &a->enc1, a->p0, B);
    conv_fwd(m, &L->down1, a->p1, a->enc1.out, B);
    res_fwd(m, &L->enc2, &a->enc2, a->p1, B);
    attn_fwd(m, &L->enc2_attn, &a->enc2_attn, a->enc2.out, B);
    const float *e2 = a->enc2_attn.out;
    res_fwd(m, &L->mid, &a->mid, e2, B);
    attn_fwd(m, &L->mid_attn, &a->mid_attn, a->mid.out, B);
    concat_channels(a->cat2, a->mid_attn.out, c2, e2, c2, B, px2);
    res_fwd(m, &L->dec2, &a->dec2, a->cat2, B);
    attn_fwd(m, &L->dec2_attn, &a->dec2_attn, a->dec2.out, B);
    upsample2x_forward(a->u1, a->dec2_attn.out, B, c2, S / 4, S / 4);
    conv_fwd(m, &L->up1, a->v1, a->u1, B);
    concat_channels(a->cat1, a->v1, c1, a->enc1.out, c1, B, px1);
    res_fwd(m, &L->dec1, &a->dec1, a->cat1, B);
    upsample2x_forward(a->u0, a->dec1.out, B, c1, S / 2, S / 2);
    conv_fwd(m, &L->up0, a->v0, a->u0, B);
    concat_channels(a->cat0, a->v0, c0, a->enc0.out, c0, B, px0);
    res_fwd(m, &L->dec0, &a->dec0, a->cat0, B);
    norm_fwd(m, &L->norm_out, a->no, a->nmean, a->nrstd, a->dec0.out, B, px0);
    silu_forward(a->na, a->no, (size_t)B * c0 * px0);
    conv_fwd(m, &L->conv_out, eps_hat, a->na, B);
}

/* ---------------------------------------------------------------- backward */

/* dx (overwritten) from dout; adds the block's share of d SiLU(temb). */
static void res_bwd(Unet *m, const Res *r, const ResActs *a, float *dx, const float *dout, int B)
{
    UnetActs *u = m->acts;
    const size_t ni = (size_t)B * r->ci * r->hw, no = (size_t)B * r->co * r->hw;
    float *s1 = u->s1, *s2 = u->s2;
    conv_bwd(m, &r->conv2, s1, dout, a->a2, B);                     /* s1 = d a2 */
    silu_backward(s1, s1, a->n2, no);                               /* s1 = d n2 */
    norm_bwd(m, &r->norm2, s2, s1, a->h1, a->mean2, a->rstd2, B, r->hw); /* s2 = d h1 */
    memset(u->ev_grad, 0, (size_t)B * r->co * sizeof *u->ev_grad);
    add_channel_vector_backward(u->ev_grad, s2, B, r->co, r->hw);
    linear_backward(u->g_tmp_e, Gr(m, r->emb.w), Gr(m, r->emb.w + 1), u->ev_grad, u->tembs,
                    P(m, r->emb.w), B, r->emb.in, r->co);
    add_into(u->g_tembs, u->g_tmp_e, (size_t)B * r->emb.in);
    conv_bwd(m, &r->conv1, s1, s2, a->a1, B);                        /* s1 = d a1 */
    silu_backward(s1, s1, a->n1, ni);                                /* s1 = d n1 */
    norm_bwd(m, &r->norm1, dx, s1, a->in, a->mean1, a->rstd1, B, r->hw);
    if (r->skip >= 0) {
        conv1x1_backward(s1, Gr(m, r->skip), Gr(m, r->skip + 1), dout, a->in, P(m, r->skip), B, r->ci,
                         r->co, r->hw);
        add_into(dx, s1, ni);
    } else {
        add_into(dx, dout, ni);
    }
}

static void attn_bwd(Unet *m, const Attn *at, const AttnActs *a, float *dx, const float *dout, int B)
{
    UnetActs *u = m->acts;
    const int c = at->c, n = at->hw;
    float *s1 = u->s1, *s2 = u->s2;
    conv1x1_backward(s1, Gr(m, at->proj), Gr(m, at->proj + 1), dout, a->ao, P(m, at->proj), B, c, c, n);
    attention_backward(s2, u->att_scratch, s1, a->qkv, a->att, B, c, n);
    conv1x1_backward(s1, Gr(m, at->qkv), Gr(m, at->qkv + 1), s2, a->nrm, P(m, at->qkv), B, c, 3 * c, n);
    norm_bwd(m, &at->norm, dx, s1, a->in, a->mean, a->rstd, B, n);
    add_into(dx, dout, (size_t)B * c * n);
}

static void time_bwd(Unet *m, int B)
{
    UnetActs *a = m->acts;
    const Layout *L = &a->L;
    const int E = m->cfg.emb;
    silu_backward(a->g_temb, a->g_tembs, a->temb, (size_t)B * E);
    linear_backward(a->g_t1a, Gr(m, L->tlin2.w), Gr(m, L->tlin2.w + 1), a->g_temb, a->t1a,
                    P(m, L->tlin2.w), B, E, E);
    silu_backward(a->g_t1, a->g_t1a, a->t1, (size_t)B * E);
    linear_backward(NULL, Gr(m, L->tlin1.w), Gr(m, L->tlin1.w + 1), a->g_t1, a->sinus,
                    P(m, L->tlin1.w), B, L->tlin1.in, E);
}

/* The two halves of a concatenation's gradient, zeroed then filled. */
static void split_grad(float *da, float *db, const float *dcat, int Ca, int Cb, int B, int hw)
{
    memset(da, 0, (size_t)B * Ca * hw * sizeof *da);
    memset(db, 0, (size_t)B * Cb * hw * sizeof *db);
    concat_channels_backward(da, db, dcat, Ca, Cb, B, hw);
}

void unet_backward(Unet *m, const float *deps)
{
    UnetActs *a = m->acts;
    const Layout *L = &a->L;
    const int B = a->B, S = m->cfg.size, c0 = m->cfg.ch[0], c1 = m->cfg.ch[1], c2 = m->cfg.ch[2];
    const int px0 = S * S, px1 = px0 / 4, px2 = px0 / 16;
    memset(m->grads, 0, m->nparams * sizeof *m->grads);
    memset(a->g_tembs, 0, (size_t)B * m->cfg.emb * sizeof *a->g_tembs);

    conv_bwd(m, &L->conv_out, a->g_na, deps, a->na, B);
    silu_backward(a->g_na, a->g_na, a->no, (size_t)B * c0 * px0);
    norm_bwd(m, &L->norm_out, a->g_d0, a->g_na, a->dec0.out, a->nmean, a->nrstd, B, px0);
    res_bwd(m, &L->dec0, &a->dec0, a->g_cat0, a->g_d0, B);
    split_grad(a->g_v0, a->g_e0, a->g_cat0, c0, c0, B, px0);
    conv_bwd(m, &L->up0, a->g_u0, a->g_v0, a->u0, B);
    upsample2x_backward(a->g_d1, a->g_u0, B, c1, S / 2, S / 2);
    res_bwd(m, &L->dec1, &a->dec1, a->g_cat1, a->g_d1, B);
    split_grad(a->g_v1, a->g_e1, a->g_cat1, c1, c1, B, px1);
    conv_bwd(m, &L->up1, a->g_u1, a->g_v1, a->u1, B);
    upsample2x_backward(a->g_d2, a->g_u1, B, c2, S / 4, S / 4);
    attn_bwd(m, &L->dec2_attn, &a->dec2_attn, a->g_rd2, a->g_d2, B);
    res_bwd(m, &L->dec2, &a->dec2, a->g_cat2, a->g_rd2, B);
    split_grad(a->g_m, a->g_e2, a->g_cat2, c2, c2, B, px2);
    attn_bwd(m, &L->mid_attn, &a->mid_attn, a->g_rm, a->g_m, B);
    res_bwd(m, &L->mid, &a->mid, a->g_tmp, a->g_rm, B);
    add_into(a->g_e2, a->g_tmp, (size_t)B * c2 * px2);
    attn_bwd(m, &L->enc2_attn, &a->enc2_attn, a->g_r2, a->g_e2, B);
    res_bwd(m, &L->enc2, &a->enc2, a->g_p1, a->g_r2, B);
    conv_bwd(m, &L->down1, a->g_tmp, a->g_p1, a->enc1.out, B);
    add_into(a->g_e1, a->g_tmp, (size_t)B * c1 * px1);
    res_bwd(m, &L->enc1, &a->enc1, a->g_p0, a->g_e1, B);
    conv_bwd(m, &L->down0, a->g_tmp, a->g_p0, a->enc0.out, B);
    add_into(a->g_e0, a->g_tmp, (size_t)B * c0 * px0);
    res_bwd(m, &L->enc0, &a->enc0, a->g_h0, a->g_e0, B);
    conv_bwd(m, &L->conv_in, NULL, a->g_h0, a->x, B);
    time_bwd(m, B);
}
