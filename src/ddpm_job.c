#include "genlab/ddpm_job.h"

#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "genlab/ddpm.h"
#include "genlab/pool.h"
#include "genlab/progress.h"
#include "genlab/rng.h"

struct DdpmJob {
    pthread_t thread;
    pthread_mutex_t mu;
    atomic_int stop; /* read by the worker between steps */

    /* fixed once started: read by both threads */
    DdpmJobConfig cfg;
    SamplerPlan plan;
    int D;            /* values per image */
    uint8_t **frames; /* [K + 1]: 2·B·D bytes each, x_t then x̂₀; written before published */
    double started;

    /* the worker's own */
    Unet model; /* a replica: the caller's weights, our activations */
    DdpmRunner *runner;
    int out_of_memory;

    /* under mu */
    DdpmJobStatus pub;
};

void ddpm_to_bytes(const float *x, int64_t n, uint8_t *out)
{
    for (int64_t i = 0; i < n; i++) {
        float v = (x[i] + 1.0f) * 127.5f;
        out[i] = v <= 0.0f ? 0 : v >= 255.0f ? 255 : (uint8_t)lrintf(v);
    }
}

int ddpm_frame_step(const SamplerPlan *p, int f)
{
    return f < p->K ? p->t[f] + 1 : 0;
}

double ddpm_frame_alpha_bar(const SamplerPlan *p, int f)
{
    return f < p->K ? p->alpha_bar[f] : 1.0;
}

/* ---------------------------------------------------------------- worker */

static size_t frame_bytes(const DdpmJob *j) { return 2 * (size_t)j->cfg.chains * (size_t)j->D; }

/* SampleFrameFn: stores step i's result as frame i + 1 and publishes it. */
static int store_frame(void *ctx, int i, const float *x, const float *x0_hat, int B)
{
    DdpmJob *j = ctx;
    const int64_t n = (int64_t)B * j->D;
    uint8_t *f = malloc(frame_bytes(j));
    if (!f) {
        j->out_of_memory = 1;
        return 1;
    }
    ddpm_to_bytes(x, n, f);
    ddpm_to_bytes(x0_hat, n, f + n);
    j->frames[i + 1] = f;
    pthread_mutex_lock(&j->mu);
    j->pub.frames_ready = i + 2;
    pthread_mutex_unlock(&j->mu);
    return atomic_load(&j->stop) != 0;
}

static DdpmJobState final_state(DdpmJob *j, int rc, Err *e)
{
    if (rc < 0 || j->out_of_memory) {
        snprintf(j->pub.message, sizeof j->pub.message, "%s",
                 rc < 0 ? e->msg : "out of memory for the chain's frames");
        return DDPM_JOB_FAILED;
    }
    return j->pub.frames_ready == j->pub.frames_total ? DDPM_JOB_DONE : DDPM_JOB_STOPPED;
}

static void *worker_main(void *arg)
{
    DdpmJob *j = arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    Err e;
    /* diffusion_sample's final images are also the last frame; it wants a
     * place to put them all the same */
    float *out = malloc((size_t)j->cfg.chains * (size_t)j->D * sizeof *out);
    int rc = out ? diffusion_sample(&j->plan, ddpm_runner_eps, j->runner, store_frame, j, j->cfg.seed,
                                    j->cfg.chains, j->D, out, &e)
                 : err_set(&e, "out of memory for sampling");
    free(out);
    pthread_mutex_lock(&j->mu);
    j->pub.state = final_state(j, rc, &e);
    j->pub.seconds = monotonic_seconds() - j->started;
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

/* ------------------------------------------------------------------- API */

/* Every CPU: the UI thread wakes a few times a second for a millisecond
 * and the scheduler gives it that; keeping a core idle for it halved the
 * frame rate on a 2-core machine (16 chains: 9 frames/s instead of 17). */
static int default_threads(void) { return pool_cpu_count(); }

/* Frame 0: x_T as diffusion_sample draws it (chain b's first D normals
 * from (seed, RNG_SAMPLE, b)); no x̂₀ yet. */
static int make_first_frame(DdpmJob *j, Err *e)
{
    const int B = j->cfg.chains, D = j->D;
    float *x = malloc((size_t)B * (size_t)D * sizeof *x);
    j->frames[0] = calloc(1, frame_bytes(j));
    if (!x || !j->frames[0]) {
        free(x);
        return err_set(e, "out of memory for the chain's frames");
    }
    for (int b = 0; b < B; b++) {
        Rng r;
        rng_seed(&r, j->cfg.seed, RNG_SAMPLE, (uint64_t)b);
        rng_fill_normal(&r, x + (size_t)b * D, D);
    }
    ddpm_to_bytes(x, (int64_t)B * D, j->frames[0]);
    free(x);
    return 0;
}

static void free_parts(DdpmJob *j)
{
    if (j->frames)
        for (int f = 0; f <= j->plan.K; f++) free(j->frames[f]);
    free(j->frames);
    ddpm_runner_free(j->runner);
    unet_free(&j->model);
    sampler_plan_free(&j->plan);
    free(j);
}

static int prepare(DdpmJob *j, const Unet *model, const Schedule *sched, Err *e)
{
    const DdpmJobConfig *c = &j->cfg;
    if (c->chains < 1 || c->chains > DDPM_JOB_MAX_CHAINS)
        return err_set(e, "%d chains: must be 1..%d", c->chains, DDPM_JOB_MAX_CHAINS);
    if (sampler_plan_create(&j->plan, sched, c->sampler, c->steps, 0.0, VARIANCE_SMALL, e)) return -1;
    if (unet_create_replica(&j->model, model, e)) return -1;
    j->runner = ddpm_runner_create(&j->model, c->threads, c->chains, e);
    if (!j->runner) return -1;
    j->frames = calloc((size_t)j->plan.K + 1, sizeof *j->frames);
    if (!j->frames) return err_set(e, "out of memory for the chain's frames");
    return make_first_frame(j, e);
}

DdpmJob *ddpm_job_start(const Unet *model, const Schedule *sched, const DdpmJobConfig *cfg, Err *e)
{
    DdpmJob *j = calloc(1, sizeof *j);
    if (!j) return err_set(e, "out of memory"), NULL;
    j->cfg = *cfg;
    if (j->cfg.threads <= 0) j->cfg.threads = default_threads();
    j->D = model->cfg.size * model->cfg.size;
    if (prepare(j, model, sched, e)) {
        free_parts(j);
        return NULL;
    }
    j->pub = (DdpmJobStatus){.state = DDPM_JOB_RUNNING, .frames_ready = 1, .frames_total = j->plan.K + 1};
    pthread_mutex_init(&j->mu, NULL);
    j->started = monotonic_seconds();
    if (pthread_create(&j->thread, NULL, worker_main, j) != 0) {
        pthread_mutex_destroy(&j->mu);
        free_parts(j);
        return err_set(e, "cannot start the sampling thread"), NULL;
    }
    return j;
}

void ddpm_job_request_stop(DdpmJob *j)
{
    int running = 0;
    atomic_compare_exchange_strong(&j->stop, &running, 1);
}

void ddpm_job_stop(DdpmJob *j)
{
    ddpm_job_request_stop(j);
    /* stop = 2 once joined: joining twice is undefined */
    if (atomic_exchange(&j->stop, 2) != 2) pthread_join(j->thread, NULL);
}

void ddpm_job_free(DdpmJob *j)
{
    if (!j) return;
    ddpm_job_stop(j);
    pthread_mutex_destroy(&j->mu);
    free_parts(j);
}

void ddpm_job_status(DdpmJob *j, DdpmJobStatus *out)
{
    pthread_mutex_lock(&j->mu);
    *out = j->pub;
    pthread_mutex_unlock(&j->mu);
    if (out->state == DDPM_JOB_RUNNING) out->seconds = monotonic_seconds() - j->started;
}

int ddpm_job_finished(DdpmJob *j)
{
    pthread_mutex_lock(&j->mu);
    int running = j->pub.state == DDPM_JOB_RUNNING;
    pthread_mutex_unlock(&j->mu);
    return !running;
}

const uint8_t *ddpm_job_xt(const DdpmJob *j, int f) { return j->frames[f]; }

const uint8_t *ddpm_job_x0(const DdpmJob *j, int f)
{
    return j->frames[f] + (size_t)j->cfg.chains * (size_t)j->D;
}

const DdpmJobConfig *ddpm_job_config(const DdpmJob *j) { return &j->cfg; }
const SamplerPlan *ddpm_job_plan(const DdpmJob *j) { return &j->plan; }
