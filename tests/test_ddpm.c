/* test_ddpm.c — the DDPM trainer: a short run on a subset whose loss falls,
 * a resumed run bit-identical to an uninterrupted one, checkpoints that
 * round-trip (EMA under the plain names, raw weights and Adam's moments
 * prefixed), an evaluation that repeats, and clear errors for the wrong
 * kind of file. A narrow U-Net (8/16/32 channels) keeps it fast. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "genlab/ddpm.h"
#include "testutil.h"

static StudyData *g_data;

static int setup(void **state)
{
    (void)state;
    Err e;
    g_data = malloc(sizeof *g_data);
    if (!g_data || study_data_load(g_data, NULL, &e)) {
        fprintf(stderr, "cannot load MNIST: %s\n", g_data ? e.msg : "out of memory");
        return -1;
    }
    return test_tmp_setup("ddpm");
}

static int teardown(void **state)
{
    (void)state;
    study_data_free(g_data);
    free(g_data);
    return test_tmp_teardown();
}

static DdpmConfig small_config(void)
{
    DdpmConfig c = ddpm_config_default();
    c.model.ch[0] = 8, c.model.ch[1] = 16, c.model.ch[2] = 32;
    c.model.emb = 32;
    c.batch = 32;
    c.lr = 2e-3f; /* a short run must move */
    c.train_limit = 32 * 30;
    c.eval_limit = 64;
    c.epochs = 1;
    c.threads = 2;
    return c;
}

typedef struct {
    double first, last;
    int n;
} LossLog;

static void log_batch(void *ctx, const DdpmTrainer *t, double loss)
{
    (void)t;
    LossLog *l = ctx;
    if (l->n++ < 5) l->first += loss / 5;
    l->last = 0.8 * l->last + 0.2 * loss;
}

static void test_loss_falls(void **state)
{
    (void)state;
    DdpmConfig c = small_config();
    DdpmTrainer t;
    Err e;
    assert_int_equal(ddpm_trainer_init(&t, &c, g_data, &e), 0);
    LossLog log = {0, 0, 0};
    log.last = 1.0;
    DdpmHooks h = {.ctx = &log, .on_batch = log_batch};
    assert_int_equal(ddpm_trainer_run(&t, &h, &e), 0);
    assert_int_equal(t.epoch, 1);
    if (getenv("GENLAB_TEST_VERBOSE"))
        printf("ε-MSE: first batches %.4f, last (smoothed) %.4f, test %.4f ± %.4f\n", log.first, log.last,
               t.last_test.loss, t.last_test.stderr_);
    /* the zero-initialised output starts at ε̂ = 0, loss ≈ 1 */
    assert_true(log.first > 0.9);
    if (!(log.last < 0.6)) fail_msg("the loss did not fall: %.4f → %.4f", log.first, log.last);
    assert_true(t.last_test.n == 64 && t.last_test.loss < 0.8);
    ddpm_trainer_free(&t);
}

static void test_resume_is_exact(void **state)
{
    (void)state;
    DdpmConfig c = small_config();
    c.train_limit = 32 * 4;
    c.epochs = 2;
    Err e;
    DdpmTrainer whole, part;
    assert_int_equal(ddpm_trainer_init(&whole, &c, g_data, &e), 0);
    assert_int_equal(ddpm_trainer_run(&whole, NULL, &e), 0);

    char path[TEST_PATH_LEN];
    test_path_printf(path, "%s/part.safetensors.zst", test_tmp_root);
    c.max_steps = 5; /* stops mid-epoch 2 */
    assert_int_equal(ddpm_trainer_init(&part, &c, g_data, &e), 0);
    assert_int_equal(ddpm_trainer_run(&part, NULL, &e), 0);
    assert_int_equal(part.step, 5);
    assert_int_equal(ddpm_trainer_save(&part, path, 1, &e), 0);
    ddpm_trainer_free(&part);
    assert_int_equal(ddpm_trainer_resume(&part, path, g_data, 0, 0, 0, &e), 0);
    assert_int_equal(part.step, 5);
    assert_int_equal(ddpm_trainer_run(&part, NULL, &e), 0);
    assert_int_equal(part.step, whole.step);
    size_t bytes = whole.model.nparams * sizeof(float);
    assert_memory_equal(part.model.params, whole.model.params, bytes);
    assert_memory_equal(part.ema, whole.ema, bytes);
    assert_memory_equal(part.opt.v, whole.opt.v, bytes);
    ddpm_trainer_free(&part);
    ddpm_trainer_free(&whole);
}

static void test_checkpoint_round_trip(void **state)
{
    (void)state;
    DdpmConfig c = small_config();
    c.max_steps = 2;
    Err e;
    DdpmTrainer t;
    assert_int_equal(ddpm_trainer_init(&t, &c, g_data, &e), 0);
    assert_int_equal(ddpm_trainer_run(&t, NULL, &e), 0);
    char shipped[TEST_PATH_LEN], full[TEST_PATH_LEN];
    test_path_printf(shipped, "%s/shipped.safetensors.zst", test_tmp_root);
    test_path_printf(full, "%s/full.safetensors.zst", test_tmp_root);
    assert_int_equal(ddpm_trainer_save(&t, shipped, 0, &e), 0);
    assert_int_equal(ddpm_trainer_save(&t, full, 1, &e), 0);

    Unet m;
    Schedule s;
    Checkpoint ck;
    assert_int_equal(ddpm_load_checkpoint(shipped, &m, &s, &ck, &e), 0);
    assert_int_equal(m.cfg.ch[2], 32);
    assert_int_equal(s.T, 4000);
    assert_memory_equal(m.params, t.ema, m.nparams * sizeof(float)); /* plain names: the EMA */
    assert_null(ckpt_find(&ck, "train.conv_in.weight"));
    assert_non_null(ckpt_meta_get(&ck, "test_loss"));
    assert_non_null(ckpt_meta_get(&ck, "official_stderr"));

    /* the evaluation repeats to the bit; on another thread count the GEMMs
     * see other batch sizes, so only rounding may differ */
    DdpmEval a, a2, b;
    assert_int_equal(ddpm_evaluate(&m, &s, g_data, SPLIT_STUDY, 64, 2, &a, &e), 0);
    assert_int_equal(ddpm_evaluate(&m, &s, g_data, SPLIT_STUDY, 64, 2, &a2, &e), 0);
    assert_int_equal(ddpm_evaluate(&m, &s, g_data, SPLIT_STUDY, 64, 1, &b, &e), 0);
    assert_true(a.n == 64 && a.loss == a2.loss && a.stderr_ == a2.stderr_);
    assert_true(fabs(a.loss - b.loss) < 1e-6 * a.loss && a.stderr_ > 0 && a.stderr_ < a.loss);
    /* the strata split the same draws: their mean is the loss */
    double strata = 0;
    for (int k = 0; k < DDPM_EVAL_DRAWS; k++) strata += a.stratum[k] / DDPM_EVAL_DRAWS;
    assert_true(fabs(strata - a.loss) < 1e-9);
    unet_free(&m);
    schedule_free(&s);
    ckpt_free(&ck);

    /* a shipped file cannot be resumed; a VAE is not a DDPM */
    DdpmTrainer r;
    assert_int_equal(ddpm_trainer_resume(&r, shipped, g_data, 0, 0, 0, &e), -1);
    assert_non_null(strstr(e.msg, "--resume needs a training checkpoint"));
    assert_int_equal(ddpm_trainer_resume(&r, full, g_data, 0, 0, 0, &e), 0);
    ddpm_trainer_free(&r);
    assert_int_equal(ddpm_load_checkpoint("checkpoints/vae-conv-d2-b1.safetensors.zst", &m, &s, &ck, &e), -1);
    assert_non_null(strstr(e.msg, "not a genlab DDPM checkpoint"));
    ddpm_trainer_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loss_falls),
        cmocka_unit_test(test_resume_is_exact),
        cmocka_unit_test(test_checkpoint_round_trip),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
