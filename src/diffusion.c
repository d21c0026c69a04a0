/* diffusion.c — DDPM schedules, forward process and samplers
 * (include/genlab/diffusion.h; formulas in REFERENCES.md, "DDPM").
 *
 * Schedules and every per-step coefficient are computed in double; the
 * per-element loops run in float with those coefficients, so they
 * vectorise. */
#include "genlab/diffusion.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "genlab/rng.h"

#define SCHEDULE_T_MAX 100000
#define COSINE_S 0.008
#define COSINE_BETA_MAX 0.999

/* ------------------------------------------------------------- schedules */

/* improved-diffusion's alpha_bar(t/T) for the cosine schedule; only ratios
 * of it are used, so it is not normalised by f(0). */
static double cosine_f(int t, int T)
{
    double c = cos(((double)t / T + COSINE_S) / (1.0 + COSINE_S) * M_PI / 2.0);
    return c * c;
}

static void cosine_betas(double *beta, int T)
{
    for (int i = 0; i < T; i++) {
        double b = 1.0 - cosine_f(i + 1, T) / cosine_f(i, T);
        beta[i] = b < COSINE_BETA_MAX ? b : COSINE_BETA_MAX;
    }
}

/* numpy.linspace(scale·1e-4, scale·0.02, T) with scale = 1000/T: start +
 * i·step, and the last value exactly the end point. */
static void linear_betas(double *beta, int T)
{
    double scale = 1000.0 / T;
    double start = scale * 1e-4, stop = scale * 0.02;
    double step = T > 1 ? (stop - start) / (T - 1) : 0.0;
    for (int i = 0; i < T; i++) beta[i] = start + i * step;
    if (T > 1) beta[T - 1] = stop;
}

int schedule_create(Schedule *s, ScheduleKind kind, int T, Err *e)
{
    memset(s, 0, sizeof *s);
    if (T < 1 || T > SCHEDULE_T_MAX)
        return err_set(e, "diffusion: T = %d steps is out of range (1..%d)", T, SCHEDULE_T_MAX);
    if (kind != SCHEDULE_COSINE && kind != SCHEDULE_LINEAR)
        return err_set(e, "diffusion: unknown schedule kind %d", (int)kind);
    s->beta = malloc(sizeof *s->beta * (size_t)T);
    s->alpha_bar = malloc(sizeof *s->alpha_bar * (size_t)T);
    if (!s->beta || !s->alpha_bar) {
        schedule_free(s);
        return err_set(e, "diffusion: out of memory for a %d-step schedule", T);
    }
    s->kind = kind;
    s->T = T;
    if (kind == SCHEDULE_COSINE)
        cosine_betas(s->beta, T);
    else
        linear_betas(s->beta, T);
    double prod = 1.0;
    for (int i = 0; i < T; i++) {
        prod *= 1.0 - s->beta[i];
        s->alpha_bar[i] = prod;
    }
    return 0;
}

void schedule_free(Schedule *s)
{
    free(s->beta);
    free(s->alpha_bar);
    s->beta = NULL;
    s->alpha_bar = NULL;
    s->T = 0;
}

const char *schedule_kind_name(ScheduleKind k)
{
    switch (k) {
    case SCHEDULE_COSINE: return "cosine";
    case SCHEDULE_LINEAR: return "linear";
    }
    return "?";
}

int schedule_kind_parse(const char *name, ScheduleKind *out)
{
    if (!name) return -1;
    if (strcmp(name, "cosine") == 0)
        *out = SCHEDULE_COSINE;
    else if (strcmp(name, "linear") == 0)
        *out = SCHEDULE_LINEAR;
    else
        return -1;
    return 0;
}

/* ------------------------------------------------------- forward process */

void q_sample(float *xt, const float *x0, const float *eps, const int *t, int B, int D,
              const Schedule *s)
{
    for (int b = 0; b < B; b++) {
        double ab = s->alpha_bar[t[b]];
        float ca = (float)sqrt(ab), ce = (float)sqrt(1.0 - ab);
        size_t off = (size_t)b * D;
        for (int j = 0; j < D; j++) xt[off + j] = ca * x0[off + j] + ce * eps[off + j];
    }
}

Posterior schedule_posterior(const Schedule *s, int t)
{
    if (t <= 0) return (Posterior){.coef_x0 = 1.0, .coef_xt = 0.0, .var = 0.0};
    double ab = s->alpha_bar[t], abp = s->alpha_bar[t - 1], beta = s->beta[t];
    return (Posterior){
        .coef_x0 = beta * sqrt(abp) / (1.0 - ab),
        .coef_xt = (1.0 - abp) * sqrt(1.0 - beta) / (1.0 - ab),
        .var = beta * (1.0 - abp) / (1.0 - ab),
    };
}

/* -------------------------------------------------------------- samplers */

/* Diffusers' "trailing" spacing, round(T − i·T/K) − 1, with llround (ties
 * away from zero). i·T is formed exactly before the division, so K = T gives
 * T − 1 − i exactly; T/K ≥ 1 makes consecutive values differ by at least
 * one, so the steps are strictly descending and the last one is ≥ 0. */
static int trailing_step(int T, int i, int K)
{
    return (int)llround((double)T - (double)((int64_t)i * T) / K) - 1;
}

int sampler_plan_create(SamplerPlan *p, const Schedule *s, SamplerKind kind, int K, double eta,
                        VarianceKind variance, Err *e)
{
    memset(p, 0, sizeof *p);
    if (K < 1 || K > s->T)
        return err_set(e, "diffusion: %d sampling steps is out of range (1..%d, the schedule's T)",
                       K, s->T);
    if (kind != SAMPLER_DDPM && kind != SAMPLER_DDIM)
        return err_set(e, "diffusion: unknown sampler kind %d", (int)kind);
    if (variance != VARIANCE_LARGE && variance != VARIANCE_SMALL)
        return err_set(e, "diffusion: unknown variance kind %d", (int)variance);
    if (!(eta >= 0.0 && isfinite(eta))) /* also rejects NaN */
        return err_set(e, "diffusion: eta = %g must be a finite number >= 0", eta);
    p->t = malloc(sizeof *p->t * (size_t)K);
    p->alpha_bar = malloc(sizeof *p->alpha_bar * (size_t)K);
    p->alpha_bar_prev = malloc(sizeof *p->alpha_bar_prev * (size_t)K);
    p->beta = malloc(sizeof *p->beta * (size_t)K);
    if (!p->t || !p->alpha_bar || !p->alpha_bar_prev || !p->beta) {
        sampler_plan_free(p);
        return err_set(e, "diffusion: out of memory for a %d-step sampler plan", K);
    }
    p->kind = kind;
    p->variance = variance;
    p->eta = eta;
    p->K = K;
    for (int i = 0; i < K; i++) p->t[i] = trailing_step(s->T, i, K);
    for (int i = 0; i < K; i++) {
        p->alpha_bar[i] = s->alpha_bar[p->t[i]];
        p->alpha_bar_prev[i] = i + 1 < K ? s->alpha_bar[p->t[i + 1]] : 1.0;
        p->beta[i] = 1.0 - p->alpha_bar[i] / p->alpha_bar_prev[i];
    }
    return 0;
}

void sampler_plan_free(SamplerPlan *p)
{
    free(p->t);
    free(p->alpha_bar);
    free(p->alpha_bar_prev);
    free(p->beta);
    p->t = NULL;
    p->alpha_bar = p->alpha_bar_prev = p->beta = NULL;
    p->K = 0;
}

const char *sampler_kind_name(SamplerKind k)
{
    switch (k) {
    case SAMPLER_DDPM: return "ddpm";
    case SAMPLER_DDIM: return "ddim";
    }
    return "?";
}

int sampler_kind_parse(const char *name, SamplerKind *out)
{
    if (!name) return -1;
    if (strcmp(name, "ddpm") == 0)
        *out = SAMPLER_DDPM;
    else if (strcmp(name, "ddim") == 0)
        *out = SAMPLER_DDIM;
    else
        return -1;
    return 0;
}

/* One step as x_prev = c_x0·x̂₀ + c_x·x + sigma·z, with x̂₀ = clamp((x −
 * s_eps·ε̂)·inv_sa). Both samplers are linear in (x̂₀, x) once ε̂ is
 * re-derived from the clamped x̂₀, so it is folded into c_x0 and c_x. */
typedef struct {
    double inv_sa, s_eps; /* 1/√ᾱ, √(1−ᾱ) */
    double c_x0, c_x, sigma;
} StepCoef;

/* Ancestral step on the respaced chain: the mean of q(x_prev | x, x̂₀) with
 * beta b = 1 − ᾱ/ᾱ_prev. Fixed-large is plain b at every step;
 * improved-diffusion uses posterior_variance[1] instead at t = 0, the last
 * step, which adds no noise anyway, so sampling is the same. */
static void ddpm_coef(const SamplerPlan *p, int i, StepCoef *c)
{
    double ab = p->alpha_bar[i], abp = p->alpha_bar_prev[i], b = p->beta[i];
    c->c_x0 = sqrt(abp) * b / (1.0 - ab);
    c->c_x = sqrt(1.0 - b) * (1.0 - abp) / (1.0 - ab);
    double var = p->variance == VARIANCE_LARGE ? b : b * (1.0 - abp) / (1.0 - ab);
    c->sigma = sqrt(var);
}

/* DDIM: x_prev = √ᾱ_prev·x̂₀ + √(1 − ᾱ_prev − σ²)·ε̂' + σ·z with
 * ε̂' = (x − √ᾱ·x̂₀)/√(1−ᾱ). */
static void ddim_coef(const SamplerPlan *p, int i, StepCoef *c)
{
    double ab = p->alpha_bar[i], abp = p->alpha_bar_prev[i];
    c->sigma = p->eta * sqrt((1.0 - abp) / (1.0 - ab)) * sqrt(1.0 - ab / abp);
    double dir2 = 1.0 - abp - c->sigma * c->sigma; /* < 0 only for η > 1 or by rounding */
    double c_eps = dir2 > 0.0 ? sqrt(dir2) : 0.0;
    c->c_x = c_eps / sqrt(1.0 - ab);
    c->c_x0 = sqrt(abp) - c->c_x * sqrt(ab);
}

static StepCoef step_coef(const SamplerPlan *p, int i)
{
    StepCoef c;
    c.inv_sa = 1.0 / sqrt(p->alpha_bar[i]);
    c.s_eps = sqrt(1.0 - p->alpha_bar[i]);
    if (p->kind == SAMPLER_DDPM)
        ddpm_coef(p, i, &c);
    else
        ddim_coef(p, i, &c);
    if (i == p->K - 1) c.sigma = 0.0; /* the final image is the mean */
    return c;
}

int sampler_step_is_noisy(const SamplerPlan *p, int i)
{
    return step_coef(p, i).sigma > 0.0;
}

/* Written as comparisons rather than fminf/fmaxf so that a NaN from a
 * diverged model stays visible instead of becoming −1. */
static inline float clamp1(float v) { return v < -1.0f ? -1.0f : v > 1.0f ? 1.0f : v; }

void sampler_step(const SamplerPlan *p, int i, float *x_prev, float *x0_hat, const float *x,
                  const float *eps_hat, const float *z, int B, int D)
{
    StepCoef c = step_coef(p, i);
    float inv_sa = (float)c.inv_sa, s_eps = (float)c.s_eps;
    float c_x0 = (float)c.c_x0, c_x = (float)c.c_x, sigma = (float)c.sigma;
    size_t n = (size_t)B * D;
    /* Element-wise, each x[j] read before x_prev[j] is written: x_prev may
     * alias x. */
    if (c.sigma > 0.0) {
        for (size_t j = 0; j < n; j++) {
            float xv = x[j], x0 = clamp1((xv - s_eps * eps_hat[j]) * inv_sa);
            x0_hat[j] = x0;
            x_prev[j] = c_x0 * x0 + c_x * xv + sigma * z[j];
        }
    } else {
        for (size_t j = 0; j < n; j++) {
            float xv = x[j], x0 = clamp1((xv - s_eps * eps_hat[j]) * inv_sa);
            x0_hat[j] = x0;
            x_prev[j] = c_x0 * x0 + c_x * xv;
        }
    }
}

/* ------------------------------------------------------------ the chain */

/* The chain's state: four B·D float buffers in one block, the per-image
 * timesteps and one generator per chain. */
typedef struct {
    float *x, *eps, *x0_hat, *z;
    int *t;
    Rng *rng;
} Chain;

static void chain_free(Chain *c)
{
    free(c->x);
    free(c->t);
    free(c->rng);
}

static int chain_alloc(Chain *c, int B, int D, Err *e)
{
    memset(c, 0, sizeof *c);
    size_t n = (size_t)B * D;
    if (n > SIZE_MAX / (4 * sizeof(float)))
        return err_set(e, "diffusion: %d images of %d values do not fit in memory", B, D);
    c->x = malloc(4 * n * sizeof(float));
    c->t = malloc(sizeof *c->t * (size_t)B);
    c->rng = malloc(sizeof *c->rng * (size_t)B);
    if (!c->x || !c->t || !c->rng) {
        chain_free(c);
        return err_set(e, "diffusion: out of memory sampling %d images of %d values", B, D);
    }
    c->eps = c->x + n;
    c->x0_hat = c->eps + n;
    c->z = c->x0_hat + n;
    return 0;
}

int diffusion_sample(const SamplerPlan *p, EpsModelFn model, void *model_ctx,
                     SampleFrameFn on_frame, void *frame_ctx, uint64_t seed, int B, int D,
                     float *out, Err *e)
{
    if (B < 1 || D < 1) return err_set(e, "diffusion: cannot sample %d images of %d values", B, D);
    Chain c;
    if (chain_alloc(&c, B, D, e) < 0) return -1;
    /* Chain b's x_T and all its later noise come from its own generator, in
     * that order, so chain b is the same whatever B is. */
    for (int b = 0; b < B; b++) {
        rng_seed(&c.rng[b], seed, RNG_SAMPLE, (uint64_t)b);
        rng_fill_normal(&c.rng[b], c.x + (size_t)b * D, D);
    }
    int stopped = 0;
    for (int i = 0; i < p->K && !stopped; i++) {
        for (int b = 0; b < B; b++) c.t[b] = p->t[i];
        model(model_ctx, c.eps, c.x, c.t, B);
        int noisy = sampler_step_is_noisy(p, i);
        if (noisy)
            for (int b = 0; b < B; b++) rng_fill_normal(&c.rng[b], c.z + (size_t)b * D, D);
        sampler_step(p, i, c.x, c.x0_hat, c.x, c.eps, noisy ? c.z : NULL, B, D);
        stopped = on_frame && on_frame(frame_ctx, i, c.x, c.x0_hat, B) != 0;
    }
    if (!stopped) memcpy(out, c.x, (size_t)B * D * sizeof *out);
    chain_free(&c);
    return stopped;
}
