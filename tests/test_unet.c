/* test_unet.c — the U-Net as a whole: parameter count and FLOPs of the
 * default layout, the gradient of a loss through every layer against
 * central finite differences on a tiny configuration, and the forward
 * pass and gradients against PyTorch's twin (tests/fixtures/unet_tiny,
 * written by tools/dump_unet_fixture.py).
 *
 * Finite differences: the probed scalar is L = Σ wᵢ·ε̂ᵢ (random wᵢ),
 * computed in float by the model and accumulated in double, with step
 * h = 1e-2 on parameters of order 0.1–1. The zero-initialised layers are
 * re-drawn at random first, or half the network would see no gradient. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "genlab/checkpoint.h"
#include "genlab/kernels_unet.h"
#include "genlab/rng.h"
#include "genlab/unet.h"
#include "testutil.h"

static UnetConfig tiny_config(void)
{
    return (UnetConfig){.size = 8, .ch = {4, 8, 8}, .emb = 8, .groups = 2};
}

static void randomise(Unet *m, uint64_t seed)
{
    Rng r;
    rng_seed(&r, seed, RNG_INIT, 99);
    for (size_t i = 0; i < m->nparams; i++) m->params[i] = 0.3f * rng_normal(&r);
}

static void test_default_size(void **state)
{
    (void)state;
    UnetConfig c = unet_default_config();
    /* the sum over unet.h's layout, counted by hand in tools/torch_unet.py's twin */
    assert_int_equal(unet_param_count(c), 3158529);
    double gflop = unet_forward_flops(c) / 1e9;
    assert_true(gflop > 0.45 && gflop < 0.50);
    Unet m;
    Err e;
    assert_int_equal(unet_create(&m, c, &e), 0);
    assert_int_equal(m.nparams, 3158529);
    assert_non_null(unet_find_tensor(&m, "dec2_attn.qkv.weight"));
    assert_int_equal(unet_find_tensor(&m, "dec2_attn.qkv.weight")->shape[0], 3 * 192);
    assert_null(unet_find_tensor(&m, "enc0.skip.weight")); /* 32 → 32: identity skip */
    unet_init_weights(&m, 1);
    const ParamTensor *z = unet_find_tensor(&m, "conv_out.weight");
    for (size_t i = 0; i < z->numel; i++) assert_true(m.params[z->offset + i] == 0.0f);
    const ParamTensor *g = unet_find_tensor(&m, "enc0.norm1.weight");
    assert_true(m.params[g->offset] == 1.0f);
    unet_free(&m);
}

static void test_bad_config(void **state)
{
    (void)state;
    Err e;
    UnetConfig c = unet_default_config();
    c.ch[1] = 60; /* not divisible by 8 groups */
    assert_int_equal(unet_check_config(&c, &e), -1);
    assert_non_null(strstr(e.msg, "divisible"));
    c = unet_default_config();
    c.size = 30;
    assert_int_equal(unet_check_config(&c, &e), -1);
}

static double probe(Unet *m, const float *x, const int *t, const float *w, float *out, int B)
{
    unet_forward(m, out, x, t, B);
    size_t n = (size_t)B * m->cfg.size * m->cfg.size;
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)w[i] * out[i];
    return s;
}

static void test_gradient_fd(void **state)
{
    (void)state;
    const int B = 2;
    Unet m;
    Err e;
    assert_int_equal(unet_create(&m, tiny_config(), &e), 0);
    assert_int_equal(unet_reserve(&m, B, &e), 0);
    randomise(&m, 5);
    const size_t D = 64, n = B * D;
    float x[2 * 64], w[2 * 64], out[2 * 64];
    int t[2] = {3, 917};
    Rng r;
    rng_seed(&r, 7, RNG_EVAL, 0);
    for (size_t i = 0; i < n; i++) x[i] = 2.0f * rng_uniform(&r) - 1.0f, w[i] = rng_normal(&r);
    probe(&m, x, t, w, out, B);
    unet_backward(&m, w);
    /* every tensor: its first, middle and last element */
    double worst = 0;
    const char *worst_name = "";
    for (int k = 0; k < m.ntensors; k++) {
        const ParamTensor *p = &m.tensors[k];
        size_t picks[3] = {0, p->numel / 2, p->numel - 1};
        for (int j = 0; j < 3; j++) {
            size_t i = p->offset + picks[j];
            float keep = m.params[i], h = 1e-2f;
            m.params[i] = keep + h;
            double up = probe(&m, x, t, w, out, B);
            m.params[i] = keep - h;
            double down = probe(&m, x, t, w, out, B);
            m.params[i] = keep;
            double fd = (up - down) / (2.0 * h), an = m.grads[i];
            double err = fabs(fd - an) / fmax(1.0, fabs(fd));
            if (err > worst) worst = err, worst_name = p->name;
        }
    }
    if (getenv("GENLAB_TEST_VERBOSE")) printf("U-Net gradient vs finite differences: worst %.3g (%s)\n", worst, worst_name);
    if (worst > 2e-2) fail_msg("gradient of %s differs from finite differences by %.3g", worst_name, worst);
    unet_free(&m);
}

/* A replica shares the weights and computes the same thing with its own buffers. */
static void test_replica_matches(void **state)
{
    (void)state;
    Unet m, r;
    Err e;
    assert_int_equal(unet_create(&m, tiny_config(), &e), 0);
    randomise(&m, 9);
    assert_int_equal(unet_create_replica(&r, &m, &e), 0);
    assert_int_equal(unet_reserve(&m, 3, &e), 0);
    assert_int_equal(unet_reserve(&r, 3, &e), 0);
    float x[3 * 64], a[3 * 64], b[3 * 64];
    int t[3] = {0, 10, 3999};
    for (int i = 0; i < 3 * 64; i++) x[i] = sinf((float)i);
    unet_forward(&m, a, x, t, 3);
    unet_forward(&r, b, x, t, 3);
    assert_memory_equal(a, b, sizeof a);
    unet_free(&r);
    unet_free(&m);
}

/* Forward with a filter bank made beforehand gives the same bits as with
 * the filters made on the call, and the bank is what forward then reads:
 * changing the weights afterwards changes nothing. */
static void test_frozen_filters(void **state)
{
    (void)state;
    Unet m;
    Err e;
    assert_int_equal(unet_create(&m, tiny_config(), &e), 0);
    randomise(&m, 10);
    assert_int_equal(unet_reserve(&m, 2, &e), 0);
    float x[2 * 64], a[2 * 64], b[2 * 64], c[2 * 64];
    int t[2] = {5, 2000};
    for (int i = 0; i < 2 * 64; i++) x[i] = cosf((float)i);
    unet_forward(&m, a, x, t, 2);
    float *bank = malloc(unet_filter_bank_floats(&m) * sizeof *bank);
    assert_non_null(bank);
    unet_transform_filters(&m, bank);
    m.frozen = bank;
    unet_forward(&m, b, x, t, 2);
    assert_memory_equal(a, b, sizeof a);
    const ParamTensor *w = unet_find_tensor(&m, "mid.conv1.weight");
    assert_non_null(w);
    for (size_t i = 0; i < w->numel; i++) m.params[w->offset + i] *= 2.0f;
    unet_forward(&m, c, x, t, 2);
    assert_memory_equal(a, c, sizeof a);
    m.frozen = NULL;
    unet_forward(&m, c, x, t, 2);
    assert_memory_not_equal(a, c, sizeof a);
    free(bank);
    unet_free(&m);
}

/* PyTorch's twin on the same weights and inputs (fixture). */
static void test_against_torch(void **state)
{
    (void)state;
    const char *path = "tests/fixtures/unet_tiny.safetensors.zst";
    Checkpoint ck;
    Err e;
    if (ckpt_read(path, &ck, &e)) {
        if (getenv("GENLAB_REQUIRE_FIXTURES")) fail_msg("%s", e.msg);
        skip();
    }
    Unet m;
    assert_int_equal(unet_create(&m, tiny_config(), &e), 0);
    for (int k = 0; k < m.ntensors; k++) {
        const ParamTensor *p = &m.tensors[k];
        if (ckpt_load_f32(&ck, p->name, p->ndim, p->shape, m.params + p->offset, &e)) fail_msg("%s", e.msg);
    }
    const int B = 2;
    const size_t n = (size_t)B * 64;
    float x[2 * 64], eps[2 * 64], ref[2 * 64], out[2 * 64], tf[2], loss;
    int64_t s4[4] = {B, 1, 8, 8}, s1[1] = {B}, one[1] = {1};
    if (ckpt_load_f32(&ck, "x", 4, s4, x, &e) || ckpt_load_f32(&ck, "eps", 4, s4, eps, &e) ||
        ckpt_load_f32(&ck, "eps_hat", 4, s4, ref, &e) || ckpt_load_f32(&ck, "t", 1, s1, tf, &e) ||
        ckpt_load_f32(&ck, "loss", 1, one, &loss, &e))
        fail_msg("%s", e.msg);
    int t[2] = {(int)tf[0], (int)tf[1]};
    assert_int_equal(unet_reserve(&m, B, &e), 0);
    unet_forward(&m, out, x, t, B);
    test_check_close("eps_hat vs torch", out, ref, n, 1e-4);
    double l = mse_forward(out, eps, n);
    assert_true(fabs(l - loss) <= 1e-5 * fabs(loss));
    float dout[2 * 64];
    mse_backward(dout, out, eps, n, 1.0f);
    unet_backward(&m, dout);
    float *g = malloc(m.nparams * sizeof *g);
    assert_non_null(g);
    for (int k = 0; k < m.ntensors; k++) {
        const ParamTensor *p = &m.tensors[k];
        char name[96];
        snprintf(name, sizeof name, "grad.%s", p->name);
        if (ckpt_load_f32(&ck, name, p->ndim, p->shape, g + p->offset, &e)) fail_msg("%s", e.msg);
        test_check_close(name, m.grads + p->offset, g + p->offset, p->numel, 2e-3);
    }
    free(g);
    unet_free(&m);
    ckpt_free(&ck);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_size),   cmocka_unit_test(test_bad_config),
        cmocka_unit_test(test_gradient_fd),    cmocka_unit_test(test_replica_matches),
        cmocka_unit_test(test_frozen_filters), cmocka_unit_test(test_against_torch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
