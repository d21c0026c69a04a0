/* job: a training run on its own thread, driven as the TUI drives it —
 * snapshots, pause/resume, save requests, stop. Run under TSan in CI. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "genlab/job.h"

static char g_assets[4096];

static TrainConfig tiny(void)
{
    TrainConfig c = train_config_default();
    c.model = (VaeConfig){ARCH_DENSE, 2};
    c.epochs = 2;
    c.train_limit = 640; /* 10 steps per epoch */
    c.eval_limit = 100;
    return c;
}

static void nap(void) { nanosleep(&(struct timespec){0, 5 * 1000 * 1000}, NULL); }

/* Polls snapshots until `done` holds or ~20 s pass. */
static int wait_for(Job *j, TrainSnapshot *s, int (*done)(const TrainSnapshot *))
{
    for (int i = 0; i < 4000; i++) {
        job_snapshot(j, s);
        if (done(s)) return 1;
        nap();
    }
    return 0;
}

static int is_over(const TrainSnapshot *s) { return s->state >= JOB_FINISHED; }
static int is_paused(const TrainSnapshot *s) { return s->state == JOB_PAUSED; }
static int has_saved(const TrainSnapshot *s) { return s->saved_path[0] != '\0'; }
static int is_running(const TrainSnapshot *s) { return s->state == JOB_RUNNING && s->step > 0; }

static void test_runs_to_the_end(void **state)
{
    (void)state;
    TrainConfig c = tiny();
    Err e;
    Job *j = job_start(&c, g_assets, NULL, &e);
    assert_non_null(j);
    TrainSnapshot *s = calloc(1, sizeof *s);
    assert_true(wait_for(j, s, is_over));
    assert_int_equal(s->state, JOB_FINISHED);
    assert_int_equal(s->step, 20);
    assert_int_equal(s->nhist, 20);   /* one loss per step */
    assert_int_equal(s->nepochs, 2);
    assert_int_equal(s->epochs[1].epoch, 2);
    assert_int_equal(s->nrecon, JOB_RECON_N);
    /* the loss fell and the history holds real numbers */
    assert_true(s->hist_bce[19] < s->hist_bce[0]);
    assert_true(s->epochs[1].test_bce > 0 && s->epochs[1].test_bce < 500);
    /* the first ten reconstruction digits are different images */
    assert_memory_not_equal(s->recon_orig, s->recon_orig + 784, 784 * sizeof(float));
    job_snapshot_free(s);
    free(s);
    job_destroy(j);
}

static void test_pause_resume_save_stop(void **state)
{
    (void)state;
    TrainConfig c = tiny();
    c.epochs = 1000; /* far more than the test lets it run */
    Err e;
    Job *j = job_start(&c, g_assets, NULL, &e);
    assert_non_null(j);
    TrainSnapshot *s = calloc(1, sizeof *s);
    assert_true(wait_for(j, s, is_running));
    job_pause(j);
    assert_true(wait_for(j, s, is_paused));
    int64_t at = s->step;
    usleep(100 * 1000);
    job_snapshot(j, s);
    assert_int_equal(s->step, at); /* paused means no steps */

    char path[] = "/tmp/genlab-job-XXXXXX";
    assert_non_null(mkdtemp(path));
    char file[128];
    snprintf(file, sizeof file, "%s/run.safetensors.zst", path);
    job_request_save(j, file); /* served while paused */
    assert_true(wait_for(j, s, has_saved));
    assert_string_equal(s->saved_path, file);
    assert_int_equal(s->unsaved, 0);
    assert_int_equal(access(file, R_OK), 0);

    job_resume(j);
    assert_true(wait_for(j, s, is_running));
    job_stop(j);
    assert_true(wait_for(j, s, is_over));
    assert_int_equal(s->state, JOB_STOPPED);
    job_snapshot_free(s);
    free(s);
    job_destroy(j);
    unlink(file);
    rmdir(path);
}

static void test_bad_data_fails_cleanly(void **state)
{
    (void)state;
    TrainConfig c = tiny();
    Err e;
    Job *j = job_start(&c, "/nonexistent-genlab-data", NULL, &e);
    assert_non_null(j);
    TrainSnapshot *s = calloc(1, sizeof *s);
    assert_true(wait_for(j, s, is_over));
    assert_int_equal(s->state, JOB_FAILED);
    assert_non_null(strstr(s->message, "nonexistent-genlab-data"));
    job_snapshot_free(s);
    free(s);
    job_destroy(j);
}

static void test_destroy_while_running(void **state)
{
    (void)state;
    TrainConfig c = tiny();
    c.epochs = 1000;
    Err e;
    Job *j = job_start(&c, g_assets, NULL, &e);
    assert_non_null(j);
    TrainSnapshot *s = calloc(1, sizeof *s);
    assert_true(wait_for(j, s, is_running));
    job_destroy(j); /* must stop and join promptly, not train 1000 epochs */
    job_snapshot_free(s);
    free(s);
}

int main(void)
{
    const char *root = getenv("GENLAB_SOURCE_DIR");
    snprintf(g_assets, sizeof g_assets, "%s/assets", root ? root : ".");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_runs_to_the_end),
        cmocka_unit_test(test_pause_resume_save_stop),
        cmocka_unit_test(test_bad_data_fails_cleanly),
        cmocka_unit_test(test_destroy_while_running),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
