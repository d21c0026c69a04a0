/* test_ddpm_job.c — the DDPM sampling job (src/ddpm_job.c): frames appear,
 * frame 0 is the x_T the chain starts from, the last frame is what
 * diffusion_sample returns for the same seed and plan, a stop mid-chain is
 * clean, bad settings are refused. A small U-Net with random weights (all
 * of them, so that ε̂ is not zero) stands in for a trained model. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "genlab/ddpm.h"
#include "genlab/ddpm_job.h"
#include "genlab/rng.h"

enum { THREADS = 2 }; /* the pool shares each batch; the reference runs the same way */

typedef struct {
    Unet model;
    Schedule sched;
} Fixture;

static void make_fixture(Fixture *f, int size, int T)
{
    Err e = {{0}};
    UnetConfig c = {.size = size, .ch = {4, 8, 8}, .emb = 8, .groups = 2};
    assert_int_equal(unet_create(&f->model, c, &e), 0);
    Rng r;
    rng_seed(&r, 7, RNG_INIT, 0);
    rng_fill_normal(&r, f->model.params, (int64_t)f->model.nparams);
    for (size_t i = 0; i < f->model.nparams; i++) f->model.params[i] *= 0.2f;
    assert_int_equal(schedule_create(&f->sched, SCHEDULE_COSINE, T, &e), 0);
}

static void free_fixture(Fixture *f)
{
    unet_free(&f->model);
    schedule_free(&f->sched);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
}

/* Polls until the job leaves its loop (at most about a minute). */
static void wait_finished(DdpmJob *j)
{
    for (int i = 0; i < 60000 && !ddpm_job_finished(j); i++) sleep_ms(1);
    assert_true(ddpm_job_finished(j));
}

/* The reference chain: diffusion_sample on the runner, recording the x
 * the network first sees (x_T). */
typedef struct {
    DdpmRunner *runner;
    float *x_T;
    int calls, n;
} Recorder;

static void recording_eps(void *ctx, float *eps_hat, const float *x, const int *t, int B)
{
    Recorder *r = ctx;
    if (r->calls++ == 0) memcpy(r->x_T, x, (size_t)r->n * sizeof *x);
    ddpm_runner_eps(r->runner, eps_hat, x, t, B);
}

static void reference_chain(Fixture *f, const DdpmJobConfig *c, uint8_t *x_T, uint8_t *final)
{
    Err e = {{0}};
    const int n = c->chains * f->model.cfg.size * f->model.cfg.size;
    SamplerPlan plan;
    assert_int_equal(sampler_plan_create(&plan, &f->sched, c->sampler, c->steps, 0.0, VARIANCE_SMALL, &e), 0);
    Unet replica;
    assert_int_equal(unet_create_replica(&replica, &f->model, &e), 0);
    Recorder r = {.runner = ddpm_runner_create(&replica, THREADS, c->chains, &e), .n = n};
    assert_non_null(r.runner);
    r.x_T = malloc((size_t)n * sizeof *r.x_T);
    float *out = malloc((size_t)n * sizeof *out);
    assert_int_equal(diffusion_sample(&plan, recording_eps, &r, NULL, NULL, c->seed, c->chains,
                                      f->model.cfg.size * f->model.cfg.size, out, &e), 0);
    ddpm_to_bytes(r.x_T, n, x_T);
    ddpm_to_bytes(out, n, final);
    free(out), free(r.x_T);
    ddpm_runner_free(r.runner);
    unet_free(&replica);
    sampler_plan_free(&plan);
}

static void check_chain(SamplerKind sampler, int steps)
{
    enum { SIZE = 8, T = 20, B = 3, N = B * SIZE * SIZE };
    Fixture f;
    make_fixture(&f, SIZE, T);
    DdpmJobConfig c = {.sampler = sampler, .steps = steps, .seed = 42, .chains = B, .threads = THREADS};
    Err e = {{0}};
    DdpmJob *j = ddpm_job_start(&f.model, &f.sched, &c, &e);
    assert_non_null(j);
    DdpmJobStatus s;
    ddpm_job_status(j, &s);
    assert_true(s.frames_ready >= 1); /* x_T at once */
    assert_int_equal(s.frames_total, steps + 1);
    wait_finished(j);
    ddpm_job_status(j, &s);
    assert_int_equal(s.state, DDPM_JOB_DONE);
    assert_int_equal(s.frames_ready, steps + 1);

    uint8_t x_T[N], final[N], zeros[N] = {0};
    reference_chain(&f, &c, x_T, final);
    assert_memory_equal(ddpm_job_xt(j, 0), x_T, N);
    assert_memory_equal(ddpm_job_x0(j, 0), zeros, N); /* no prediction yet */
    assert_memory_equal(ddpm_job_xt(j, steps), final, N);
    /* the chain moves: the first step's x differs from x_T */
    assert_true(memcmp(ddpm_job_xt(j, 1), x_T, N) != 0);

    const SamplerPlan *p = ddpm_job_plan(j);
    assert_int_equal(ddpm_frame_step(p, 0), T);
    assert_int_equal(ddpm_frame_step(p, steps), 0);
    assert_true(ddpm_frame_alpha_bar(p, steps) == 1.0);
    ddpm_job_free(j);
    free_fixture(&f);
}

static void test_ddim_chain_matches_diffusion_sample(void **state)
{
    (void)state;
    check_chain(SAMPLER_DDIM, 10);
}

static void test_ddpm_full_chain_matches_diffusion_sample(void **state)
{
    (void)state;
    check_chain(SAMPLER_DDPM, 20);
}

static void test_stop_mid_chain(void **state)
{
    (void)state;
    enum { T = 4000 };
    Fixture f;
    make_fixture(&f, 28, T);
    DdpmJobConfig c = {.sampler = SAMPLER_DDPM, .steps = T, .seed = 1, .chains = 4, .threads = THREADS};
    Err e = {{0}};
    DdpmJob *j = ddpm_job_start(&f.model, &f.sched, &c, &e);
    assert_non_null(j);
    DdpmJobStatus s;
    do {
        sleep_ms(1);
        ddpm_job_status(j, &s);
    } while (s.frames_ready < 3);
    ddpm_job_stop(j);
    ddpm_job_status(j, &s);
    assert_int_equal(s.state, DDPM_JOB_STOPPED);
    assert_true(s.frames_ready >= 3 && s.frames_ready < s.frames_total);
    /* the frames made so far stay readable, and nothing moves any more */
    int ready = s.frames_ready;
    assert_non_null(ddpm_job_xt(j, ready - 1));
    sleep_ms(20);
    ddpm_job_status(j, &s);
    assert_int_equal(s.frames_ready, ready);
    ddpm_job_stop(j); /* a second stop is harmless */
    ddpm_job_free(j);
    free_fixture(&f);
}

static void test_free_while_running(void **state)
{
    (void)state;
    Fixture f;
    make_fixture(&f, 28, 1000);
    DdpmJobConfig c = {.sampler = SAMPLER_DDPM, .steps = 1000, .seed = 3, .chains = 2, .threads = THREADS};
    Err e = {{0}};
    DdpmJob *j = ddpm_job_start(&f.model, &f.sched, &c, &e);
    assert_non_null(j);
    ddpm_job_request_stop(j); /* returns at once; free joins */
    ddpm_job_free(j);
    ddpm_job_free(NULL);
    free_fixture(&f);
}

static void test_bad_settings(void **state)
{
    (void)state;
    Fixture f;
    make_fixture(&f, 8, 20);
    Err e = {{0}};
    DdpmJobConfig c = {.sampler = SAMPLER_DDIM, .steps = 10, .chains = 0};
    assert_null(ddpm_job_start(&f.model, &f.sched, &c, &e));
    assert_non_null(strstr(e.msg, "chains"));
    c.chains = 2, c.steps = 21;
    assert_null(ddpm_job_start(&f.model, &f.sched, &c, &e));
    assert_true(e.msg[0] != '\0');
    free_fixture(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ddim_chain_matches_diffusion_sample),
        cmocka_unit_test(test_ddpm_full_chain_matches_diffusion_sample),
        cmocka_unit_test(test_stop_mid_chain),
        cmocka_unit_test(test_free_while_running),
        cmocka_unit_test(test_bad_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
