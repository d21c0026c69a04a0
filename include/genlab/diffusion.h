/* diffusion.h — the DDPM's noise schedules, forward process and samplers,
 * independent of the network that predicts ε (REFERENCES.md, "DDPM").
 *
 * Indices are 0-based: step i is the paper's step i+1, and the network's
 * timestep input is i. Schedules are computed in double.
 *
 * A sampler runs a SamplerPlan: the K steps it visits, t[0] = T−1 down to
 * t[K−1] ("trailing" spacing, so the first visited step is always T−1),
 * with the ᾱ of each visited step and of the next one (1 after the last).
 * K = T with the DDPM sampler is the study's full ancestral chain; any
 * K < T is a respaced chain whose betas are recomputed as 1 − ᾱ_t/ᾱ_prev. */
#ifndef GENLAB_DIFFUSION_H
#define GENLAB_DIFFUSION_H

#include <stdint.h>

#include "genlab/error.h"

typedef enum { SCHEDULE_COSINE, SCHEDULE_LINEAR } ScheduleKind;

typedef struct {
    ScheduleKind kind;
    int T;
    double *beta;      /* [T] */
    double *alpha_bar; /* [T] Π_{j≤i} (1 − β_j), the clipped product */
} Schedule;

/* Cosine (s = 0.008, β clipped at 0.999) or linear (1e-4 … 0.02, both
 * scaled by 1000/T, as improved-diffusion's get_named_beta_schedule).
 * Errors: T < 1 or T > 100000, out of memory. */
int schedule_create(Schedule *s, ScheduleKind kind, int T, Err *e);
void schedule_free(Schedule *s);
const char *schedule_kind_name(ScheduleKind k); /* "cosine" / "linear" */
int schedule_kind_parse(const char *name, ScheduleKind *out); /* -1 if unknown */

/* Forward process in closed form, for B images of D values each, image b
 * at its own step t[b]: x_t = √ᾱ·x0 + √(1−ᾱ)·ε. */
void q_sample(float *xt, const float *x0, const float *eps, const int *t, int B, int D,
              const Schedule *s);

/* q(x_{t−1} | x_t, x0) = N(coef_x0·x0 + coef_xt·x_t, var) for the full
 * chain at step t ≥ 1 (at t = 0 the mean is x0 and the variance 0). */
typedef struct {
    double coef_x0, coef_xt, var; /* var = β̃_t = β_t(1 − ᾱ_{t−1})/(1 − ᾱ_t) */
} Posterior;
Posterior schedule_posterior(const Schedule *s, int t);

typedef enum { SAMPLER_DDPM, SAMPLER_DDIM } SamplerKind;
/* Ancestral variance: σ² = β_t ("fixed large", improved-diffusion's
 * default) or β̃_t ("fixed small"). */
typedef enum { VARIANCE_LARGE, VARIANCE_SMALL } VarianceKind;

typedef struct {
    SamplerKind kind;
    VarianceKind variance; /* DDPM only */
    double eta;            /* DDIM only: 0 deterministic, 1 ≈ DDPM */
    int K;
    int *t;                /* [K] visited steps, descending, t[0] = T−1 */
    double *alpha_bar;     /* [K] ᾱ at t[i] */
    double *alpha_bar_prev;/* [K] ᾱ at t[i+1], 1 for i = K−1 */
    double *beta;          /* [K] 1 − alpha_bar[i]/alpha_bar_prev[i] */
} SamplerPlan;

/* K visited steps (1 ≤ K ≤ T), evenly spaced and trailing:
 * t[i] = round(T − i·T/K) − 1 (diffusers' "trailing"), strictly descending,
 * t[0] = T − 1; K = T visits every step.
 * Errors: K out of range, eta < 0, out of memory. */
int sampler_plan_create(SamplerPlan *p, const Schedule *s, SamplerKind kind, int K, double eta,
                        VarianceKind variance, Err *e);
void sampler_plan_free(SamplerPlan *p);
const char *sampler_kind_name(SamplerKind k); /* "ddpm" / "ddim" */
int sampler_kind_parse(const char *name, SamplerKind *out);

/* Whether step i adds noise (and so reads z): never at the last step, never
 * for DDIM with η = 0. */
int sampler_step_is_noisy(const SamplerPlan *p, int i);

/* One reverse step i of the plan for B images of D values: from x = x_t at
 * t[i] and the network's ε̂, writes x0_hat = clamp((x − √(1−ᾱ)·ε̂)/√ᾱ, −1, 1)
 * and x_prev (x at t[i+1], or the final image after the last step). ε̂ is
 * re-derived from the clamped x̂₀ before the update. z: B·D standard normal
 * draws, read only when sampler_step_is_noisy (may be NULL otherwise).
 * x_prev may alias x. */
void sampler_step(const SamplerPlan *p, int i, float *x_prev, float *x0_hat, const float *x,
                  const float *eps_hat, const float *z, int B, int D);

/* The network, as the sampling loop sees it: ε̂ for B images x at steps t
 * (all equal during sampling, but the interface takes one per image). */
typedef void (*EpsModelFn)(void *ctx, float *eps_hat, const float *x, const int *t, int B);

/* Called after every step with the new x (at the next visited step) and the
 * x̂₀ of the step just taken; a non-zero return stops the chain early. */
typedef int (*SampleFrameFn)(void *ctx, int i, const float *x, const float *x0_hat, int B);

/* Runs the whole chain for B images (D values each): x_T ~ N(0, I), then
 * K steps. Chain b draws all its noise from (seed, RNG_SAMPLE, b), so the
 * first k chains do not depend on B. `out` receives the final images
 * (B·D, in [−1, 1] after the last step's clamp). Returns 0, 1 when
 * on_frame stopped it, or -1 when out of memory. */
int diffusion_sample(const SamplerPlan *p, EpsModelFn model, void *model_ctx,
                     SampleFrameFn on_frame, void *frame_ctx, uint64_t seed, int B, int D,
                     float *out, Err *e);

#endif
