/* bench_ddpm — the DDPM's speed: training images/s at batch 128 (forward,
 * backward, Adam, EMA) on real MNIST batches, the time of one reverse step
 * for 16 chains (the viewer's frame rate) and of a whole DDIM-50 chain for
 * 16 digits. One JSON line per figure.
 * Usage: bench_ddpm [train_steps] [threads] (defaults 10, all CPUs). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "genlab/blas.h"
#include "genlab/ddpm.h"
#include "genlab/progress.h"

static void die(const Err *e)
{
    fprintf(stderr, "bench_ddpm: %s\n", e->msg);
    exit(1);
}

static void print(json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(6));
    puts(s);
    fflush(stdout);
    free(s);
    json_decref(o);
}

static void bench_training(const StudyData *data, int steps, int threads)
{
    DdpmConfig c = ddpm_config_default();
    c.threads = threads;
    c.eval_limit = 1;
    DdpmTrainer t;
    Err e;
    if (ddpm_trainer_init(&t, &c, data, &e)) die(&e);
    t.cfg.max_steps = 2; /* warm-up: first touch of every buffer */
    if (ddpm_trainer_run(&t, NULL, &e)) die(&e);
    t.cfg.max_steps = 2 + steps;
    double t0 = monotonic_seconds();
    if (ddpm_trainer_run(&t, NULL, &e)) die(&e);
    double dt = monotonic_seconds() - t0;
    print(json_pack("{s:s,s:i,s:i,s:f,s:s}", "case", "train", "batch", c.batch, "threads", t.cfg.threads,
                    "images_per_second", steps * c.batch / dt, "blas_core", blas_core_name()));
    ddpm_trainer_free(&t);
}

static int count_frames(void *ctx, int i, const float *x, const float *x0, int B)
{
    (void)i, (void)x, (void)x0, (void)B;
    ++*(int *)ctx;
    return 0;
}

static void bench_sampling(int threads)
{
    const int n = 16, K = 50;
    Unet m;
    Schedule s;
    SamplerPlan p;
    Err e;
    if (unet_create(&m, unet_default_config(), &e) || schedule_create(&s, SCHEDULE_COSINE, 4000, &e) ||
        sampler_plan_create(&p, &s, SAMPLER_DDIM, K, 0.0, VARIANCE_SMALL, &e))
        die(&e);
    unet_init_weights(&m, 1);
    DdpmRunner *r = ddpm_runner_create(&m, threads, n, &e);
    if (!r) die(&e);
    float *out = malloc((size_t)n * MNIST_PIXELS * sizeof *out);
    int frames = 0;
    diffusion_sample(&p, ddpm_runner_eps, r, NULL, NULL, 0, n, MNIST_PIXELS, out, &e); /* warm-up */
    double t0 = monotonic_seconds();
    if (diffusion_sample(&p, ddpm_runner_eps, r, count_frames, &frames, 0, n, MNIST_PIXELS, out, &e) < 0) die(&e);
    double dt = monotonic_seconds() - t0;
    print(json_pack("{s:s,s:i,s:i,s:i,s:f,s:f,s:f}", "case", "ddim50", "n", n, "steps", K, "threads",
                    threads, "seconds", dt, "ms_per_step", 1e3 * dt / frames, "frames_per_second", frames / dt));
    free(out);
    ddpm_runner_free(r);
    sampler_plan_free(&p);
    schedule_free(&s);
    unet_free(&m);
}

int main(int argc, char **argv)
{
    blas_ensure_fast_kernel(argv);
    int steps = argc > 1 ? atoi(argv[1]) : 10;
    int threads = argc > 2 ? atoi(argv[2]) : 0;
    if (steps < 1) steps = 10;
    StudyData *data = malloc(sizeof *data);
    Err e;
    if (!data || study_data_load(data, NULL, &e)) die(&e);
    bench_sampling(threads);
    bench_training(data, steps, threads);
    study_data_free(data);
    free(data);
    return 0;
}
