/* ddpm.c — the DDPM's training loop, evaluation and checkpoints (ddpm.h). */
#include "genlab/ddpm.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "genlab/blas.h"
#include "genlab/kernels_unet.h"
#include "genlab/pool.h"
#include "genlab/progress.h"
#include "genlab/rng.h"
#include "genlab_config.h"

#define FORMAT_NAME "genlab-ddpm"
#define FORMAT_VERSION "1"

DdpmConfig ddpm_config_default(void)
{
    return (DdpmConfig){.model = unet_default_config(),
                        .schedule = SCHEDULE_COSINE,
                        .T = 4000,
                        .epochs = 20,
                        .batch = 128,
                        .lr = 1e-4f,
                        .ema_decay = 0.999f,
                        .seed = 0};
}

static int check_config(const DdpmConfig *c, Err *e)
{
    if (unet_check_config(&c->model, e)) return -1;
    if (c->model.size != MNIST_SIDE)
        return err_set(e, "the U-Net's image size is %d, the data's %d", c->model.size, MNIST_SIDE);
    if (c->T < 2 || c->T > 100000) return err_set(e, "--T must be in 2..100000 (got %d)", c->T);
    if (c->epochs < 1) return err_set(e, "--epochs must be at least 1 (got %d)", c->epochs);
    if (c->batch < 1 || c->batch > 4096) return err_set(e, "--batch must be in 1..4096 (got %d)", c->batch);
    if (!(c->lr > 0.0f) || !isfinite(c->lr)) return err_set(e, "--lr must be a positive number");
    if (!(c->ema_decay >= 0.0f && c->ema_decay < 1.0f))
        return err_set(e, "--ema must be in [0, 1) (got %g)", c->ema_decay);
    if (c->train_limit < 0 || c->train_limit > STUDY_TRAIN_N)
        return err_set(e, "the training subset must be in 0..%d images", STUDY_TRAIN_N);
    return 0;
}

/* Workers 1..n−1 as replicas of m, each able to hold `shard` images. */
static int make_replicas(Unet *m, int n, int shard, Unet **out, Err *e)
{
    Unet *r = calloc((size_t)n, sizeof *r);
    if (!r) return err_set(e, "out of memory for %d workers", n);
    *out = r;
    for (int w = 1; w < n; w++)
        if (unet_create_replica(&r[w], m, e) || unet_reserve(&r[w], shard, e)) return -1;
    return 0;
}

static void free_replicas(Unet *r, int n)
{
    if (!r) return;
    for (int w = 1; w < n; w++) unet_free(&r[w]);
    free(r);
}

/* One Winograd transform of the filters of models[0], which the forward of
 * every one of the n workers then reads (unet.h): for the times the
 * weights hold still. The caller frees it; NULL when out of memory. */
static float *share_filter_bank(Unet *models, int n)
{
    float *bank = malloc(unet_filter_bank_floats(&models[0]) * sizeof *bank);
    if (!bank) return NULL;
    unet_transform_filters(&models[0], bank);
    for (int w = 0; w < n; w++) models[w].frozen = bank;
    return bank;
}

/* ------------------------------------------------------------- evaluation */

/* Image i's draws: t_k = ⌊(k + u)·T/K⌋ and its noise, from (EVAL_SEED,
 * RNG_EVAL, i), so results do not depend on batching or workers. */
static void eval_draws(int i, int T, int *t, float *eps)
{
    Rng r;
    rng_seed(&r, EVAL_SEED, RNG_EVAL, (uint64_t)i);
    double u = rng_uniform(&r);
    for (int k = 0; k < DDPM_EVAL_DRAWS; k++) {
        int tk = (int)floor((k + u) * T / DDPM_EVAL_DRAWS);
        t[k] = tk < T ? tk : T - 1;
    }
    rng_fill_normal(&r, eps, (int64_t)DDPM_EVAL_DRAWS * MNIST_PIXELS);
}

/* Images idx[lo..hi), DDPM_EVAL_DRAWS forwards each, in batches that fit
 * m; the loss of image i's draw k goes to losses[i·K + k]. */
static int eval_range(Unet *m, const Schedule *s, const Dataset *file, const int32_t *idx, int lo,
                      int hi, double *losses, Err *e)
{
    const int K = DDPM_EVAL_DRAWS, per = m->cap / K, D = MNIST_PIXELS;
    const size_t cap = (size_t)per * K * D;
    float *x0 = malloc(cap * sizeof *x0), *xt = malloc(cap * sizeof *xt);
    float *eps = malloc(cap * sizeof *eps), *pred = malloc(cap * sizeof *pred);
    int *t = malloc((size_t)per * K * sizeof *t);
    int rc = (x0 && xt && eps && pred && t && per > 0) ? 0 : err_set(e, "out of memory for evaluation");
    for (int i = lo; rc == 0 && i < hi; i += per) {
        int n = hi - i < per ? hi - i : per;
        dataset_gather(file, idx + i, n, x0);
        for (int b = n - 1; b >= 0; b--) /* spread each image over its K rows, in [−1, 1] */
            for (int k = K - 1; k >= 0; k--)
                for (int p = 0; p < D; p++) xt[((size_t)b * K + k) * D + p] = 2.0f * x0[(size_t)b * D + p] - 1.0f;
        memcpy(x0, xt, (size_t)n * K * D * sizeof *x0);
        for (int b = 0; b < n; b++) eval_draws(i + b, s->T, t + b * K, eps + (size_t)b * K * D);
        q_sample(xt, x0, eps, t, n * K, D, s);
        unet_forward(m, pred, xt, t, n * K);
        for (int b = 0; b < n; b++)
            for (int k = 0; k < K; k++) {
                const size_t at = ((size_t)b * K + k) * D;
                losses[(size_t)(i + b) * K + k] = mse_forward(pred + at, eps + at, D);
            }
    }
    free(x0), free(xt), free(eps), free(pred), free(t);
    return rc;
}

/* Mean and standard error, summed in image order: the figure does not
 * depend on how many workers computed it. */
static DdpmEval eval_result(const double *losses, int n)
{
    const int K = DDPM_EVAL_DRAWS;
    DdpmEval r = {.n = n};
    if (n == 0) return r;
    double sum = 0, sq = 0;
    for (int i = 0; i < n; i++) {
        double image = 0;
        for (int k = 0; k < K; k++) image += losses[(size_t)i * K + k], r.stratum[k] += losses[(size_t)i * K + k];
        sum += image / K;
    }
    r.loss = sum / n;
    for (int k = 0; k < K; k++) r.stratum[k] /= n;
    for (int i = 0; i < n; i++) {
        double image = 0;
        for (int k = 0; k < K; k++) image += losses[(size_t)i * K + k];
        sq += (image / K - r.loss) * (image / K - r.loss);
    }
    r.stderr_ = n > 1 ? sqrt(sq / (n - 1) / n) : 0.0;
    return r;
}

typedef struct {
    Unet *models; /* worker w's model: models[w], models[0] the shared one */
    const Schedule *sched;
    const Dataset *file;
    const int32_t *idx;
    int n;
    double *losses; /* [n · DDPM_EVAL_DRAWS] */
    int rc[POOL_MAX];
    Err err[POOL_MAX];
} EvalJob;

static void eval_share(void *ctx, int w, int nw)
{
    EvalJob *j = ctx;
    size_t lo, hi;
    pool_share((size_t)j->n, w, nw, &lo, &hi);
    j->rc[w] = eval_range(&j->models[w], j->sched, j->file, j->idx, (int)lo, (int)hi, j->losses,
                          &j->err[w]);
}

/* The split's images, as train.c lays them out. */
static int32_t *split_indices(const StudyData *d, EvalSplit split, int *n)
{
    *n = split_size(d, split);
    int32_t *idx = malloc((size_t)*n * sizeof *idx);
    if (idx)
        for (int i = 0; i < *n; i++) idx[i] = split_index(d, split, i);
    return idx;
}

/* models[0] is the model itself; models[1..] its replicas. The weights
 * hold still meanwhile, so the workers share one transform of the conv
 * filters (unet.h), dropped at the end: training goes on after. */
static int evaluate_on(Pool *pool, Unet *models, const Schedule *s, const StudyData *d,
                       EvalSplit split, int limit, DdpmEval *out, Err *e)
{
    const int nw = pool_size(pool);
    EvalJob *j = calloc(1, sizeof *j);
    if (!j) return err_set(e, "out of memory for evaluation");
    int32_t *idx = split_indices(d, split, &j->n);
    j->losses = malloc((size_t)j->n * DDPM_EVAL_DRAWS * sizeof *j->losses);
    float *bank = idx && j->losses ? share_filter_bank(models, nw) : NULL;
    int rc = bank ? 0 : err_set(e, "out of memory for the evaluation");
    if (limit > 0 && limit < j->n) j->n = limit;
    j->models = models, j->sched = s, j->file = split_file(d, split), j->idx = idx;
    if (rc == 0) pool_run(pool, eval_share, j);
    for (int w = 0; w < nw; w++) models[w].frozen = NULL;
    free(bank);
    for (int w = 0; rc == 0 && w < nw; w++)
        if (j->rc[w]) rc = err_set(e, "%s", j->err[w].msg);
    if (rc == 0) *out = eval_result(j->losses, j->n);
    free(j->losses);
    free(idx);
    free(j);
    return rc;
}

static int worker_count(int threads)
{
    int n = threads > 0 ? threads : pool_cpu_count();
    return n > POOL_MAX ? POOL_MAX : n;
}

int ddpm_evaluate(Unet *m, const Schedule *s, const StudyData *d, EvalSplit split, int limit,
                  int threads, DdpmEval *out, Err *e)
{
    const int n = worker_count(threads);
    Pool *pool = pool_create(n, e);
    if (!pool) return -1;
    Unet *models = NULL;
    int rc = make_replicas(m, n, DDPM_EVAL_BATCH, &models, e);
    if (rc == 0) rc = unet_reserve(m, DDPM_EVAL_BATCH, e);
    if (rc == 0) {
        models[0] = *m; /* a shallow view: worker 0 runs on m itself */
        blas_set_threads(1);
        rc = evaluate_on(pool, models, s, d, split, limit, out, e);
        memset(&models[0], 0, sizeof models[0]);
    }
    free_replicas(models, n);
    pool_destroy(pool);
    return rc;
}

/* --------------------------------------------------------------- training */

static int trainer_setup(DdpmTrainer *t, const DdpmConfig *cfg, const StudyData *data, Err *e)
{
    memset(t, 0, sizeof *t);
    if (check_config(cfg, e)) return -1;
    t->cfg = *cfg;
    t->data = data;
    t->ntrain = cfg->train_limit > 0 ? cfg->train_limit : STUDY_TRAIN_N;
    if (unet_create(&t->model, cfg->model, e) || schedule_create(&t->sched, cfg->schedule, cfg->T, e))
        goto fail;
    const size_t px = (size_t)cfg->batch * MNIST_PIXELS;
    t->x0 = malloc(px * sizeof *t->x0), t->xt = malloc(px * sizeof *t->xt);
    t->eps = malloc(px * sizeof *t->eps), t->tbuf = malloc((size_t)cfg->batch * sizeof *t->tbuf);
    t->order = malloc((size_t)t->ntrain * sizeof *t->order);
    t->ema = malloc(t->model.nparams * sizeof *t->ema);
    if (!t->x0 || !t->xt || !t->eps || !t->tbuf || !t->order || !t->ema ||
        adam_init(&t->opt, t->model.nparams, cfg->lr)) {
        err_set(e, "out of memory for training");
        goto fail;
    }
    const int n = worker_count(cfg->threads);
    t->cfg.threads = n;
    int shard = (cfg->batch + n - 1) / n;
    if (shard < DDPM_EVAL_BATCH) shard = DDPM_EVAL_BATCH;
    if (unet_reserve(&t->model, shard, e)) goto fail;
    t->pool = pool_create(n, e);
    if (!t->pool || make_replicas(&t->model, n, shard, &t->replicas, e)) goto fail;
    blas_set_threads(1); /* each worker's GEMMs run in its own thread */
    return 0;
fail:
    ddpm_trainer_free(t);
    return -1;
}

int ddpm_trainer_init(DdpmTrainer *t, const DdpmConfig *cfg, const StudyData *data, Err *e)
{
    if (trainer_setup(t, cfg, data, e)) return -1;
    unet_init_weights(&t->model, cfg->seed);
    memcpy(t->ema, t->model.params, t->model.nparams * sizeof *t->ema);
    return 0;
}

void ddpm_trainer_free(DdpmTrainer *t)
{
    pool_destroy(t->pool);
    free_replicas(t->replicas, t->cfg.threads);
    unet_free(&t->model);
    schedule_free(&t->sched);
    adam_free(&t->opt);
    free(t->ema), free(t->x0), free(t->xt), free(t->eps), free(t->tbuf), free(t->order);
    memset(t, 0, sizeof *t);
}

int ddpm_trainer_done(const DdpmTrainer *t) { return t->epoch >= t->cfg.epochs; }

static int batches_per_epoch(const DdpmTrainer *t) { return (t->ntrain + t->cfg.batch - 1) / t->cfg.batch; }

static Unet *worker_model(DdpmTrainer *t, int w) { return w == 0 ? &t->model : &t->replicas[w]; }

typedef struct {
    DdpmTrainer *t;
    int batch;
    double loss[POOL_MAX]; /* sums of per-pixel squared errors */
    float *pred[POOL_MAX];
} StepJob;

static void shard_forward_backward(void *ctx, int w, int nw)
{
    StepJob *j = ctx;
    DdpmTrainer *t = j->t;
    Unet *m = worker_model(t, w);
    size_t lo, hi;
    pool_share((size_t)j->batch, w, nw, &lo, &hi);
    j->loss[w] = 0;
    if (lo == hi) {
        memset(m->grads, 0, m->nparams * sizeof *m->grads);
        return;
    }
    const size_t D = MNIST_PIXELS, n = (hi - lo) * D;
    float *pred = j->pred[w];
    unet_forward(m, pred, t->xt + lo * D, t->tbuf + lo, (int)(hi - lo));
    j->loss[w] = mse_forward(pred, t->eps + lo * D, n) * (double)n;
    /* d(mean over the whole batch)/d pred: the shard's mean scaled by its share */
    mse_backward(pred, pred, t->eps + lo * D, n, (float)((double)(hi - lo) / j->batch));
    unet_backward(m, pred);
}

static void reduce_and_update(void *ctx, int w, int nw)
{
    DdpmTrainer *t = ((StepJob *)ctx)->t;
    size_t lo, hi;
    pool_share(t->model.nparams, w, nw, &lo, &hi);
    float *g = t->model.grads, *p = t->model.params;
    for (int r = 1; r < nw; r++) {
        const float *gr = t->replicas[r].grads;
        for (size_t i = lo; i < hi; i++) g[i] += gr[i];
    }
    adam_update(&t->opt, p, g, lo, hi);
    /* t->step counts the steps before this one */
    double warm = (1.0 + (double)t->step) / (10.0 + (double)t->step);
    float d = (float)(warm < t->cfg.ema_decay ? warm : t->cfg.ema_decay);
    for (size_t i = lo; i < hi; i++) t->ema[i] = d * t->ema[i] + (1.0f - d) * p[i];
}

/* This step's images, timesteps and noise: t uniform from (seed,
 * RNG_NOISE, step), then the noise from the same generator. */
static void make_batch(DdpmTrainer *t, int first, int B)
{
    const size_t D = MNIST_PIXELS, n = (size_t)B * D;
    dataset_gather(&t->data->train_file, t->order + first, B, t->x0);
    for (size_t i = 0; i < n; i++) t->x0[i] = 2.0f * t->x0[i] - 1.0f;
    Rng r;
    rng_seed(&r, t->cfg.seed, RNG_NOISE, (uint64_t)t->step);
    for (int b = 0; b < B; b++) t->tbuf[b] = (int)rng_below(&r, (uint64_t)t->cfg.T);
    rng_fill_normal(&r, t->eps, (int64_t)n);
    q_sample(t->xt, t->x0, t->eps, t->tbuf, B, (int)D, &t->sched);
}

static void train_step(DdpmTrainer *t, const DdpmHooks *h)
{
    const int first = t->batch_in_epoch * t->cfg.batch;
    const int B = t->ntrain - first < t->cfg.batch ? t->ntrain - first : t->cfg.batch;
    double t0 = monotonic_seconds();
    make_batch(t, first, B);
    StepJob job = {.t = t, .batch = B};
    /* ε̂ and then its gradient go where x0 was: only xt is needed now */
    for (int w = 0; w < pool_size(t->pool); w++) {
        size_t lo, hi;
        pool_share((size_t)B, w, pool_size(t->pool), &lo, &hi);
        job.pred[w] = t->x0 + lo * MNIST_PIXELS;
    }
    pool_run(t->pool, shard_forward_backward, &job);
    adam_begin_step(&t->opt);
    pool_run(t->pool, reduce_and_update, &job);
    double sq = 0;
    for (int w = 0; w < pool_size(t->pool); w++) sq += job.loss[w];
    double loss = sq / ((double)B * MNIST_PIXELS), dt = monotonic_seconds() - t0;
    t->step++, t->batch_in_epoch++;
    t->images_seen += B;
    t->train_seconds += dt, t->epoch_seconds += dt;
    t->epoch_loss += loss * B;
    t->epoch_images += B;
    if (h && h->on_batch) h->on_batch(h->ctx, t, loss);
}

/* Evaluates the EMA weights: they stand in for the raw ones meanwhile. */
int ddpm_trainer_evaluate(DdpmTrainer *t, EvalSplit split, DdpmEval *out, Err *e)
{
    const size_t n = t->model.nparams;
    float *raw = malloc(n * sizeof *raw);
    if (!raw) return err_set(e, "out of memory for evaluation");
    memcpy(raw, t->model.params, n * sizeof *raw);
    memcpy(t->model.params, t->ema, n * sizeof *raw);
    Unet *models = t->replicas;
    models[0] = t->model; /* worker 0 runs on the model itself */
    int rc = evaluate_on(t->pool, models, &t->sched, t->data, split, t->cfg.eval_limit, out, e);
    memset(&models[0], 0, sizeof models[0]);
    memcpy(t->model.params, raw, n * sizeof *raw);
    free(raw);
    return rc;
}

static int finish_epoch(DdpmTrainer *t, const DdpmHooks *h, Err *e)
{
    DdpmEpochStats s = {.epoch = t->epoch + 1, .seconds = t->epoch_seconds, .images = t->epoch_images};
    if (t->epoch_images > 0) s.train_loss = t->epoch_loss / t->epoch_images;
    if (ddpm_trainer_evaluate(t, SPLIT_STUDY, &t->last_test, e)) return -1;
    t->last_test_step = t->step;
    s.test = t->last_test;
    t->epoch++;
    t->batch_in_epoch = 0;
    t->epoch_loss = t->epoch_seconds = 0;
    t->epoch_images = 0;
    if (h && h->on_epoch) h->on_epoch(h->ctx, t, &s);
    return 0;
}

static int stop_requested(const DdpmTrainer *t, const DdpmHooks *h)
{
    if (h && h->stop && atomic_load(h->stop)) return 1;
    return t->cfg.max_steps > 0 && t->step >= t->cfg.max_steps;
}

int ddpm_trainer_run(DdpmTrainer *t, const DdpmHooks *h, Err *e)
{
    while (t->epoch < t->cfg.epochs) {
        study_epoch_order(t->data, t->cfg.seed, t->epoch, t->order, t->ntrain);
        while (t->batch_in_epoch < batches_per_epoch(t)) {
            if (stop_requested(t, h)) return 0;
            train_step(t, h);
        }
        /* a Ctrl-C during the last batch should not wait for an evaluation */
        if (h && h->stop && atomic_load(h->stop)) return 0;
        if (finish_epoch(t, h, e)) return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ checkpoints */

static void describe_run(CkptMetaList *l, const DdpmTrainer *t, int with_state)
{
    const DdpmConfig *c = &t->cfg;
    ckpt_meta_add(l, "format", FORMAT_NAME);
    ckpt_meta_add(l, "format_version", FORMAT_VERSION);
    ckpt_meta_add(l, "genlab_version", "%s", GENLAB_VERSION);
    ckpt_meta_add(l, "arch", "unet");
    ckpt_meta_add(l, "image_size", "%d", c->model.size);
    ckpt_meta_add(l, "channels", "%d,%d,%d", c->model.ch[0], c->model.ch[1], c->model.ch[2]);
    ckpt_meta_add(l, "emb", "%d", c->model.emb);
    ckpt_meta_add(l, "groups", "%d", c->model.groups);
    ckpt_meta_add(l, "params", "%zu", t->model.nparams);
    ckpt_meta_add(l, "flops_per_image", "%.0f", unet_forward_flops(c->model));
    ckpt_meta_add(l, "schedule", "%s", schedule_kind_name(c->schedule));
    ckpt_meta_add(l, "T", "%d", c->T);
    ckpt_meta_add(l, "epochs", "%d", c->epochs);
    ckpt_meta_add(l, "batch", "%d", c->batch);
    ckpt_meta_add(l, "lr", "%.9g", c->lr);
    ckpt_meta_add(l, "ema_decay", "%.9g", c->ema_decay);
    ckpt_meta_add(l, "seed", "%" PRIu64, c->seed);
    ckpt_meta_add(l, "train_images", "%d", t->ntrain);
    ckpt_meta_add(l, "epoch", "%d", t->epoch);
    ckpt_meta_add(l, "batch_in_epoch", "%d", t->batch_in_epoch);
    ckpt_meta_add(l, "step", "%" PRId64, t->step);
    ckpt_meta_add(l, "images_seen", "%" PRId64, t->images_seen);
    ckpt_meta_add(l, "train_seconds", "%.3f", t->train_seconds);
    ckpt_meta_add(l, "rng", "counter-based xoshiro256**: data order (seed,%d,epoch), t and noise (seed,%d,step), eval (%d,%d,image)",
                  RNG_DATA, RNG_NOISE, EVAL_SEED, RNG_EVAL);
    ckpt_meta_add(l, "weights", "plain names: EMA of the weights%s",
                  with_state ? "; train.*: raw weights; optim.m.*, optim.v.*: Adam's moments" : "");
    if (with_state) ckpt_meta_add(l, "adam_t", "%" PRId64, t->opt.t);
    ckpt_meta_add(l, "blas_core", "%s", blas_core_name());
    ckpt_meta_add(l, "threads", "%d", c->threads);
    if (t->train_seconds > 0) {
        ckpt_meta_add(l, "seconds_per_epoch", "%.3f", t->train_seconds * t->ntrain / (double)t->images_seen);
        ckpt_meta_add(l, "images_per_second", "%.2f", (double)t->images_seen / t->train_seconds);
    }
}

static void describe_eval(CkptMetaList *l, const char *prefix, const DdpmEval *r)
{
    char key[64];
    snprintf(key, sizeof key, "%s_loss", prefix);
    ckpt_meta_add(l, key, "%.6f", r->loss);
    snprintf(key, sizeof key, "%s_stderr", prefix);
    ckpt_meta_add(l, key, "%.6f", r->stderr_);
    snprintf(key, sizeof key, "%s_images", prefix);
    ckpt_meta_add(l, key, "%d", r->n);
    snprintf(key, sizeof key, "%s_loss_by_t_quarter", prefix);
    ckpt_meta_add(l, key, "%.5f,%.5f,%.5f,%.5f", r->stratum[0], r->stratum[1], r->stratum[2], r->stratum[3]);
}

/* Writes the file; metrics are the study-split figure last measured (and
 * the step it was measured at) and, when given, the official one. */
static int write_checkpoint(DdpmTrainer *t, const char *path, int with_state, const DdpmEval *official,
                            Err *e)
{
    CkptMetaList meta = {.n = 0};
    describe_run(&meta, t, with_state);
    if (t->epoch_images) ckpt_meta_add(&meta, "train_loss_this_epoch", "%.6f", t->epoch_loss / t->epoch_images);
    if (t->last_test.n) {
        describe_eval(&meta, "test", &t->last_test);
        ckpt_meta_add(&meta, "test_step", "%" PRId64, t->last_test_step);
    }
    if (official) describe_eval(&meta, "official", official);
    const Unet *m = &t->model;
    const int parts = with_state ? 4 : 1;
    CkptTensorView *views = calloc((size_t)parts * m->ntensors, sizeof *views);
    char (*names)[64] = calloc((size_t)parts * m->ntensors, sizeof *names);
    int rc = views && names ? 0 : err_set(e, "out of memory for saving");
    const char *prefix[4] = {"", "train.", "optim.m.", "optim.v."};
    const float *base[4] = {t->ema, m->params, t->opt.m, t->opt.v};
    int n = 0;
    for (int k = 0; rc == 0 && k < parts; k++)
        for (int i = 0; i < m->ntensors; i++, n++) {
            const ParamTensor *p = &m->tensors[i];
            snprintf(names[n], 64, "%s%s", prefix[k], p->name);
            views[n] = (CkptTensorView){.name = names[n], .ndim = p->ndim, .data = base[k] + p->offset};
            memcpy(views[n].shape, p->shape, sizeof p->shape);
        }
    if (rc == 0) rc = ckpt_write(path, views, n, meta.items, meta.n, e);
    free(views), free(names);
    return rc;
}

int ddpm_trainer_save(DdpmTrainer *t, const char *path, int with_state, Err *e)
{
    DdpmEval official;
    if (t->last_test.n == 0 || t->last_test_step != t->step) {
        if (ddpm_trainer_evaluate(t, SPLIT_STUDY, &t->last_test, e)) return -1;
        t->last_test_step = t->step;
    }
    if (ddpm_trainer_evaluate(t, SPLIT_OFFICIAL, &official, e)) return -1;
    return write_checkpoint(t, path, with_state, &official, e);
}

int ddpm_trainer_checkpoint(DdpmTrainer *t, const char *path, Err *e)
{
    return write_checkpoint(t, path, 1, NULL, e);
}

static int read_model(const Checkpoint *ck, UnetConfig *m, ScheduleKind *sk, int *T, Err *e)
{
    const char *fmt = ckpt_meta_get(ck, "format");
    if (!fmt || strcmp(fmt, FORMAT_NAME) != 0)
        return err_set(e, "not a genlab DDPM checkpoint (format is \"%s\", expected \"%s\")",
                       fmt ? fmt : "missing", FORMAT_NAME);
    long long v;
    if (ckpt_meta_long(ck, "image_size", MNIST_SIDE, MNIST_SIDE, &v, e)) return -1; /* the data's */
    m->size = (int)v;
    const char *ch = ckpt_meta_get(ck, "channels");
    if (!ch || sscanf(ch, "%d,%d,%d", &m->ch[0], &m->ch[1], &m->ch[2]) != 3)
        return err_set(e, "metadata \"channels\" is \"%s\", expected three numbers like 32,64,192",
                       ch ? ch : "missing");
    if (ckpt_meta_long(ck, "emb", 1, 4096, &v, e)) return -1;
    m->emb = (int)v;
    if (ckpt_meta_long(ck, "groups", 1, 4096, &v, e)) return -1;
    m->groups = (int)v;
    if (unet_check_config(m, e)) return -1;
    const char *sn = ckpt_meta_get(ck, "schedule");
    if (!sn || schedule_kind_parse(sn, sk))
        return err_set(e, "metadata \"schedule\" is \"%s\", expected cosine or linear", sn ? sn : "missing");
    if (ckpt_meta_long(ck, "T", 2, 100000, &v, e)) return -1;
    *T = (int)v;
    return 0;
}

int ddpm_load_checkpoint(const char *path, Unet *m, Schedule *sched, Checkpoint *ck, Err *e)
{
    memset(m, 0, sizeof *m);
    memset(sched, 0, sizeof *sched);
    if (ckpt_read(path, ck, e)) return -1;
    UnetConfig cfg;
    ScheduleKind sk;
    int T;
    if (read_model(ck, &cfg, &sk, &T, e) || unet_create(m, cfg, e) ||
        ckpt_load_params(ck, m->tensors, m->ntensors, "", m->params, e) ||
        schedule_create(sched, sk, T, e)) {
        err_prefix(e, "%s", path);
        unet_free(m);
        schedule_free(sched);
        ckpt_free(ck);
        return -1;
    }
    return 0;
}

static int read_train_config(const Checkpoint *ck, DdpmConfig *c, Err *e)
{
    long long v;
    double d;
    *c = ddpm_config_default();
    if (read_model(ck, &c->model, &c->schedule, &c->T, e)) return -1;
    if (ckpt_meta_long(ck, "epochs", 1, 100000, &v, e)) return -1;
    c->epochs = (int)v;
    if (ckpt_meta_long(ck, "batch", 1, 4096, &v, e)) return -1;
    c->batch = (int)v;
    if (ckpt_meta_double(ck, "lr", &d, e)) return -1;
    c->lr = (float)d;
    if (ckpt_meta_double(ck, "ema_decay", &d, e)) return -1;
    c->ema_decay = (float)d;
    if (ckpt_meta_u64(ck, "seed", &c->seed, e)) return -1;
    if (ckpt_meta_long(ck, "train_images", 1, STUDY_TRAIN_N, &v, e)) return -1;
    c->train_limit = v == STUDY_TRAIN_N ? 0 : (int)v;
    if (ckpt_meta_long(ck, "threads", 1, POOL_MAX, &v, e)) return -1;
    c->threads = (int)v;
    return 0;
}

static int read_progress(const Checkpoint *ck, DdpmTrainer *t, Err *e)
{
    long long v;
    double d;
    if (ckpt_meta_long(ck, "epoch", 0, t->cfg.epochs, &v, e)) return -1;
    t->epoch = (int)v;
    if (ckpt_meta_long(ck, "batch_in_epoch", 0, batches_per_epoch(t), &v, e)) return -1;
    t->batch_in_epoch = (int)v;
    if (ckpt_meta_long(ck, "step", 0, INT64_MAX, &v, e)) return -1;
    t->step = v;
    if (ckpt_meta_long(ck, "images_seen", 0, INT64_MAX, &v, e)) return -1;
    t->images_seen = v;
    if (ckpt_meta_long(ck, "adam_t", 0, INT64_MAX, &v, e)) return -1;
    t->opt.t = v;
    if (ckpt_meta_double(ck, "train_seconds", &d, e)) return -1;
    t->train_seconds = d;
    return 0;
}

int ddpm_trainer_resume(DdpmTrainer *t, const char *path, const StudyData *data,
                        int epochs_override, int64_t max_steps, int threads, Err *e)
{
    Checkpoint ck;
    memset(t, 0, sizeof *t);
    if (ckpt_read(path, &ck, e)) return -1;
    DdpmConfig cfg;
    int rc = read_train_config(&ck, &cfg, e);
    if (rc == 0 && !ckpt_find(&ck, "optim.m.conv_in.weight"))
        rc = err_set(e, "it holds the EMA weights only (a shipped checkpoint); --resume needs a "
                        "training checkpoint, as written by genlab ddpm train --out or Ctrl-C");
    if (rc == 0) {
        if (epochs_override > 0) cfg.epochs = epochs_override;
        if (threads > 0) cfg.threads = threads;
        cfg.max_steps = max_steps;
        rc = trainer_setup(t, &cfg, data, e);
    }
    if (rc == 0) rc = ckpt_load_params(&ck, t->model.tensors, t->model.ntensors, "", t->ema, e);
    if (rc == 0) rc = ckpt_load_params(&ck, t->model.tensors, t->model.ntensors, "train.", t->model.params, e);
    if (rc == 0) rc = ckpt_load_params(&ck, t->model.tensors, t->model.ntensors, "optim.m.", t->opt.m, e);
    if (rc == 0) rc = ckpt_load_params(&ck, t->model.tensors, t->model.ntensors, "optim.v.", t->opt.v, e);
    if (rc == 0) rc = read_progress(&ck, t, e);
    ckpt_free(&ck);
    if (rc) {
        if (t->model.params) ddpm_trainer_free(t);
        return err_prefix(e, "cannot resume from %s", path);
    }
    return 0;
}

/* ---------------------------------------------------------------- sampling */

/* Images per worker per forward: activations cost ~7 MB an image, so a
 * large --n is sampled in pieces (each chain's noise is its own, so the
 * pieces give the same digits). */
#define RUNNER_SHARD_MAX 32

struct DdpmRunner {
    Pool *pool;
    Unet *models; /* [0] a view of the caller's model, [1..] replicas */
    int n, cap;   /* workers; images per ddpm_runner_eps piece */
    float *bank;  /* the weights' Winograd filters, made once for all workers */
    float *eps_hat;
    const float *x;
    const int *t;
    int B;
};

DdpmRunner *ddpm_runner_create(Unet *m, int threads, int cap, Err *e)
{
    DdpmRunner *r = calloc(1, sizeof *r);
    if (!r) return err_set(e, "out of memory for sampling"), NULL;
    r->n = worker_count(threads);
    int shard = (cap + r->n - 1) / r->n;
    if (shard > RUNNER_SHARD_MAX) shard = RUNNER_SHARD_MAX;
    if (shard < 1) shard = 1;
    r->cap = shard * r->n;
    r->pool = pool_create(r->n, e);
    if (!r->pool || make_replicas(m, r->n, shard, &r->models, e) || unet_reserve(m, shard, e)) {
        ddpm_runner_free(r);
        return NULL;
    }
    r->models[0] = *m;
    r->bank = share_filter_bank(r->models, r->n);
    if (!r->bank) {
        ddpm_runner_free(r);
        return err_set(e, "out of memory for sampling"), NULL;
    }
    blas_set_threads(1);
    return r;
}

static void runner_share(void *ctx, int w, int nw)
{
    DdpmRunner *r = ctx;
    size_t lo, hi;
    pool_share((size_t)r->B, w, nw, &lo, &hi);
    if (lo == hi) return;
    const size_t D = (size_t)r->models[0].cfg.size * r->models[0].cfg.size;
    unet_forward(&r->models[w], r->eps_hat + lo * D, r->x + lo * D, r->t + lo, (int)(hi - lo));
}

void ddpm_runner_eps(void *runner, float *eps_hat, const float *x, const int *t, int B)
{
    DdpmRunner *r = runner;
    const size_t D = (size_t)r->models[0].cfg.size * r->models[0].cfg.size;
    for (int b0 = 0; b0 < B; b0 += r->cap) {
        r->eps_hat = eps_hat + b0 * D, r->x = x + b0 * D, r->t = t + b0;
        r->B = B - b0 < r->cap ? B - b0 : r->cap;
        pool_run(r->pool, runner_share, r);
    }
}

void ddpm_runner_free(DdpmRunner *r)
{
    if (!r) return;
    if (r->models) memset(&r->models[0], 0, sizeof r->models[0]); /* not ours */
    free_replicas(r->models, r->n);
    pool_destroy(r->pool);
    free(r->bank);
    free(r);
}
