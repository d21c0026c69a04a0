#include "genlab/train.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "genlab/blas.h"
#include "genlab/paths.h"
#include "genlab/pool.h"
#include "genlab/progress.h"
#include "genlab/rng.h"
#include "genlab_config.h"

#define EVAL_BATCH 100 /* images per forward pass in evaluation: ~30 MB of conv activations */
#define FORMAT_NAME "genlab-vae"
#define FORMAT_VERSION "1"

TrainConfig train_config_default(void)
{
    return (TrainConfig){.model = {ARCH_CONV, 2}, .beta = 1.0f, .epochs = 20, .batch = 64,
                         .lr = 1e-3f, .seed = 0};
}

/* ------------------------------------------------------------------- data */

int study_data_load(StudyData *d, const char *dir, Err *e)
{
    memset(d, 0, sizeof *d);
    char found[4096];
    if (!dir) {
        if (paths_assets_dir(found, sizeof found, e)) return -1;
        dir = found;
    }
    if (dataset_load(dir, SET_TRAIN, &d->train_file, e)) return -1;
    if (dataset_load(dir, SET_TEST, &d->test_file, e)) {
        dataset_free(&d->train_file);
        return -1;
    }
    if (d->train_file.n != MNIST_TRAIN_N) {
        int n = d->train_file.n;
        study_data_free(d);
        return err_set(e, "%s: the training file holds %d images; the study split needs %d",
                       dir, n, MNIST_TRAIN_N);
    }
    study_split(d->split);
    return 0;
}

void study_data_free(StudyData *d)
{
    dataset_free(&d->train_file);
    dataset_free(&d->test_file);
}

/* ------------------------------------------------------------- evaluation */

int split_size(const StudyData *d, EvalSplit split)
{
    return split == SPLIT_STUDY ? STUDY_TEST_N : d->test_file.n;
}

const Dataset *split_file(const StudyData *d, EvalSplit split)
{
    return split == SPLIT_STUDY ? &d->train_file : &d->test_file;
}

int32_t split_index(const StudyData *d, EvalSplit split, int i)
{
    return split == SPLIT_STUDY ? d->split[STUDY_TRAIN_N + i] : i;
}

void study_showcase_digits(const StudyData *d, int32_t *idx, int n)
{
    const int32_t *test = d->split + STUDY_TRAIN_N;
    const uint8_t *labels = d->train_file.labels;
    int k = 0;
    for (int digit = 0; digit < 10 && k < n; digit++)
        for (int i = 0; i < STUDY_TEST_N; i++)
            if (labels[test[i]] == digit) {
                idx[k++] = test[i];
                break;
            }
    for (int i = 0; k < n && i < STUDY_TEST_N; i++) {
        int used = 0;
        for (int j = 0; j < k; j++) used |= idx[j] == test[i];
        if (!used) idx[k++] = test[i];
    }
}

/* The images an evaluation covers: a file and the indices into it. */
static void eval_set(const StudyData *d, EvalSplit split, const Dataset **file,
                     const int32_t **idx, int32_t **owned, int *n)
{
    *file = split_file(d, split);
    *n = split_size(d, split);
    *owned = NULL;
    if (split == SPLIT_STUDY) {
        *idx = d->split + STUDY_TRAIN_N;
        return;
    }
    *owned = malloc((size_t)*n * sizeof **owned);
    if (*owned)
        for (int i = 0; i < *n; i++) (*owned)[i] = split_index(d, split, i);
    *idx = *owned;
}

int vae_encode_split(Vae *m, const StudyData *d, EvalSplit split, int n, float *mu, float *logvar,
                     uint8_t *labels, Err *e)
{
    const int dz = m->cfg.latent;
    const Dataset *file = split_file(d, split);
    float *x = malloc((size_t)EVAL_BATCH * MNIST_PIXELS * sizeof *x);
    if (!x || vae_reserve(m, EVAL_BATCH, e)) {
        free(x);
        return err_set(e, "out of memory for encoding");
    }
    int32_t idx[EVAL_BATCH];
    for (int i = 0; i < n; i += EVAL_BATCH) {
        int B = n - i < EVAL_BATCH ? n - i : EVAL_BATCH;
        for (int b = 0; b < B; b++) {
            idx[b] = split_index(d, split, i + b);
            if (labels) labels[i + b] = file->labels[idx[b]];
        }
        dataset_gather(file, idx, B, x);
        vae_encode(m, x, B);
        if (mu) memcpy(mu + (size_t)i * dz, m->a.mu, (size_t)B * dz * sizeof *mu);
        if (logvar) memcpy(logvar + (size_t)i * dz, m->a.logvar, (size_t)B * dz * sizeof *logvar);
    }
    free(x);
    return 0;
}

/* Running sums of an evaluation. */
typedef struct {
    double bce, bce_mu, kld;
    int n;
} EvalSums;

/* Evaluates images idx[lo..hi) of `file` in batches that fit m, adding to
 * *sums. The noise of the image at position i comes from
 * (EVAL_SEED, RNG_EVAL, i), so the figures do not depend on how the set
 * is cut into batches or shared among workers. */
static int eval_range(Vae *m, const Dataset *file, const int32_t *idx, int lo, int hi,
                      EvalSums *sums, Err *e)
{
    const int dz = m->cfg.latent, cap = m->cap;
    float *x = malloc((size_t)cap * MNIST_PIXELS * sizeof *x);
    float *eps = malloc((size_t)cap * dz * sizeof *eps);
    if (!x || !eps) {
        free(x), free(eps);
        return err_set(e, "out of memory for evaluation");
    }
    for (int i = lo; i < hi; i += cap) {
        int B = hi - i < cap ? hi - i : cap;
        dataset_gather(file, idx + i, B, x);
        for (int b = 0; b < B; b++) {
            Rng r;
            rng_seed(&r, EVAL_SEED, RNG_EVAL, (uint64_t)(i + b));
            rng_fill_normal(&r, eps + (size_t)b * dz, dz);
        }
        VaeLoss sampled = vae_forward(m, x, eps, B);
        VaeLoss at_mu = vae_forward(m, x, NULL, B);
        sums->bce += sampled.bce;
        sums->kld += sampled.kld;
        sums->bce_mu += at_mu.bce;
        sums->n += B;
    }
    free(x), free(eps);
    return 0;
}

static EvalResult eval_result(const EvalSums *s)
{
    int n = s->n > 0 ? s->n : 1;
    return (EvalResult){s->bce / n, s->bce_mu / n, s->kld / n, s->n};
}

int vae_evaluate(Vae *m, const StudyData *d, EvalSplit split, int limit, EvalResult *out, Err *e)
{
    const Dataset *file;
    const int32_t *idx;
    int32_t *owned;
    int n;
    eval_set(d, split, &file, &idx, &owned, &n);
    if (!idx) return err_set(e, "out of memory for the evaluation indices");
    if (limit > 0 && limit < n) n = limit;
    EvalSums sums = {0};
    int rc = vae_reserve(m, EVAL_BATCH, e);
    if (rc == 0) rc = eval_range(m, file, idx, 0, n, &sums, e);
    free(owned);
    if (rc == 0) *out = eval_result(&sums);
    return rc;
}

/* ---------------------------------------------------------------- trainer */

float train_beta_at(const TrainConfig *c, int epoch)
{
    if (c->beta_warmup_epochs <= 0 || epoch >= c->beta_warmup_epochs) return c->beta;
    /* Linear from 0: epoch 0 of K trains with β/K, epoch K−1 with β. */
    return c->beta * (float)(epoch + 1) / (float)c->beta_warmup_epochs;
}

int trainer_done(const Trainer *t)
{
    return t->epoch >= t->cfg.epochs || (t->cfg.max_steps > 0 && t->step >= t->cfg.max_steps);
}

static int check_config(const TrainConfig *c, Err *e)
{
    if (c->epochs < 1) return err_set(e, "--epochs must be at least 1 (got %d)", c->epochs);
    if (c->batch < 1 || c->batch > 4096) return err_set(e, "--batch must be in 1..4096 (got %d)", c->batch);
    if (!(c->lr > 0.0f) || !isfinite(c->lr)) return err_set(e, "--lr must be a positive number");
    if (!(c->beta >= 0.0f) || !isfinite(c->beta)) return err_set(e, "--beta must be a number ≥ 0");
    if (c->beta_warmup_epochs < 0) return err_set(e, "--beta-warmup must be ≥ 0");
    if (c->train_limit < 0 || c->train_limit > STUDY_TRAIN_N)
        return err_set(e, "the training subset must be in 0..%d images", STUDY_TRAIN_N);
    return 0;
}

/* The pool and one replica per extra worker, each able to hold a shard. */
static int start_workers(Trainer *t, Err *e)
{
    int n = t->cfg.threads > 0 ? t->cfg.threads : pool_cpu_count();
    if (n > POOL_MAX) n = POOL_MAX;
    t->cfg.threads = n;
    int shard = (t->cfg.batch + n - 1) / n;
    if (shard < EVAL_BATCH) shard = EVAL_BATCH; /* the workers evaluate too */
    t->pool = pool_create(n, e);
    if (!t->pool) return -1;
    t->replicas = calloc((size_t)n, sizeof *t->replicas);
    if (!t->replicas) return err_set(e, "out of memory for %d workers", n);
    for (int w = 1; w < n; w++)
        if (vae_create_replica(&t->replicas[w], &t->model, e) || vae_reserve(&t->replicas[w], shard, e))
            return -1;
    /* Each worker's GEMMs run in its own thread. */
    blas_set_threads(1);
    return 0;
}

/* Everything but the weights: optimizer, buffers, counters. */
static int trainer_setup(Trainer *t, const TrainConfig *cfg, const StudyData *data, Err *e)
{
    memset(t, 0, sizeof *t);
    if (check_config(cfg, e)) return -1;
    t->cfg = *cfg;
    t->data = data;
    t->ntrain = cfg->train_limit > 0 ? cfg->train_limit : STUDY_TRAIN_N;
    if (vae_create(&t->model, cfg->model, e)) return -1;
    t->xbuf = malloc((size_t)cfg->batch * MNIST_PIXELS * sizeof *t->xbuf);
    t->epsbuf = malloc((size_t)cfg->batch * cfg->model.latent * sizeof *t->epsbuf);
    t->order = malloc((size_t)t->ntrain * sizeof *t->order);
    int cap = cfg->batch > EVAL_BATCH ? cfg->batch : EVAL_BATCH;
    if (!t->xbuf || !t->epsbuf || !t->order || adam_init(&t->opt, t->model.nparams, cfg->lr) ||
        vae_reserve(&t->model, cap, e)) {
        trainer_free(t);
        return err_set(e, "out of memory for training");
    }
    if (start_workers(t, e)) {
        trainer_free(t);
        return -1;
    }
    return 0;
}

int trainer_init(Trainer *t, const TrainConfig *cfg, const StudyData *data, Err *e)
{
    if (trainer_setup(t, cfg, data, e)) return -1;
    vae_init_weights(&t->model, cfg->seed);
    return 0;
}

void trainer_free(Trainer *t)
{
    pool_destroy(t->pool);
    if (t->replicas)
        for (int w = 1; w < t->cfg.threads; w++) vae_free(&t->replicas[w]);
    free(t->replicas);
    vae_free(&t->model);
    adam_free(&t->opt);
    free(t->xbuf);
    free(t->epsbuf);
    free(t->order);
    memset(t, 0, sizeof *t);
}

static int batches_per_epoch(const Trainer *t) { return (t->ntrain + t->cfg.batch - 1) / t->cfg.batch; }

/* One step's work, shared by the pool's workers. */
typedef struct {
    Trainer *t;
    int batch;
    float beta;
    VaeLoss loss[POOL_MAX];
} StepJob;

static Vae *worker_model(Trainer *t, int w) { return w == 0 ? &t->model : &t->replicas[w]; }

/* Forward and backward of this worker's shard of the batch. */
static void shard_forward_backward(void *ctx, int w, int nw)
{
    StepJob *j = ctx;
    Trainer *t = j->t;
    Vae *m = worker_model(t, w);
    size_t lo, hi;
    pool_share((size_t)j->batch, w, nw, &lo, &hi);
    if (lo == hi) {
        memset(m->grads, 0, m->nparams * sizeof *m->grads);
        j->loss[w] = (VaeLoss){0, 0};
        return;
    }
    j->loss[w] = vae_forward(m, t->xbuf + lo * MNIST_PIXELS, t->epsbuf + lo * (size_t)m->cfg.latent,
                             (int)(hi - lo));
    vae_backward(m, j->beta);
}

/* Sums the workers' gradients into the model's and applies Adam, each
 * worker over its own range of parameters. */
static void reduce_and_update(void *ctx, int w, int nw)
{
    Trainer *t = ((StepJob *)ctx)->t;
    size_t lo, hi;
    pool_share(t->model.nparams, w, nw, &lo, &hi);
    float *g = t->model.grads;
    for (int r = 1; r < nw; r++) {
        const float *gr = t->replicas[r].grads;
        for (size_t i = lo; i < hi; i++) g[i] += gr[i];
    }
    adam_update(&t->opt, t->model.params, g, lo, hi);
}

static void train_step(Trainer *t, const TrainHooks *h)
{
    const TrainConfig *c = &t->cfg;
    int first = t->batch_in_epoch * c->batch;
    int B = t->ntrain - first < c->batch ? t->ntrain - first : c->batch;
    double t0 = monotonic_seconds();
    dataset_gather(&t->data->train_file, t->order + first, B, t->xbuf);
    Rng r;
    rng_seed(&r, c->seed, RNG_NOISE, (uint64_t)t->step);
    rng_fill_normal(&r, t->epsbuf, (int64_t)B * c->model.latent);
    StepJob job = {.t = t, .batch = B, .beta = train_beta_at(c, t->epoch)};
    pool_run(t->pool, shard_forward_backward, &job);
    adam_begin_step(&t->opt);
    pool_run(t->pool, reduce_and_update, &job);
    VaeLoss L = {0, 0};
    for (int w = 0; w < pool_size(t->pool); w++) L.bce += job.loss[w].bce, L.kld += job.loss[w].kld;
    double dt = monotonic_seconds() - t0;
    t->step++;
    t->batch_in_epoch++;
    t->images_seen += B;
    t->train_seconds += dt;
    t->epoch_seconds += dt;
    t->epoch_bce += L.bce;
    t->epoch_kld += L.kld;
    t->epoch_images += B;
    if (h && h->on_batch) h->on_batch(h->ctx, t, L.bce / B, L.kld / B);
}

/* Evaluation on the training workers: each takes a contiguous share of
 * the images with its own model (so no OpenBLAS threads are ever started
 * during a run); the sums are added in worker order. */
typedef struct {
    Trainer *t;
    const Dataset *file;
    const int32_t *idx;
    int n;
    EvalSums sums[POOL_MAX];
    int rc[POOL_MAX];
    Err err[POOL_MAX];
} EvalJob;

static void eval_share(void *ctx, int w, int nw)
{
    EvalJob *j = ctx;
    size_t lo, hi;
    pool_share((size_t)j->n, w, nw, &lo, &hi);
    j->rc[w] = eval_range(worker_model(j->t, w), j->file, j->idx, (int)lo, (int)hi, &j->sums[w],
                          &j->err[w]);
}

static int trainer_evaluate(Trainer *t, EvalSplit split, EvalResult *out, Err *e)
{
    EvalJob *j = calloc(1, sizeof *j);
    int32_t *owned = NULL;
    if (!j) return err_set(e, "out of memory for evaluation");
    j->t = t;
    eval_set(t->data, split, &j->file, &j->idx, &owned, &j->n);
    if (t->cfg.eval_limit > 0 && t->cfg.eval_limit < j->n) j->n = t->cfg.eval_limit;
    int rc = j->idx ? 0 : err_set(e, "out of memory for the evaluation indices");
    if (rc == 0) pool_run(t->pool, eval_share, j);
    EvalSums total = {0};
    for (int w = 0; rc == 0 && w < pool_size(t->pool); w++) {
        if (j->rc[w]) rc = err_set(e, "%s", j->err[w].msg);
        total.bce += j->sums[w].bce, total.bce_mu += j->sums[w].bce_mu;
        total.kld += j->sums[w].kld, total.n += j->sums[w].n;
    }
    if (rc == 0) *out = eval_result(&total);
    free(owned);
    free(j);
    return rc;
}

static int finish_epoch(Trainer *t, const TrainHooks *h, Err *e)
{
    EpochStats s = {.epoch = t->epoch + 1, .seconds = t->epoch_seconds};
    if (t->epoch_images > 0) {
        s.train_bce = t->epoch_bce / t->epoch_images;
        s.train_kld = t->epoch_kld / t->epoch_images;
    }
    if (trainer_evaluate(t, SPLIT_STUDY, &t->last_test, e)) return -1;
    t->last_test_step = t->step;
    s.test_bce = t->last_test.bce;
    s.test_kld = t->last_test.kld;
    t->epoch++;
    t->batch_in_epoch = 0;
    t->epoch_bce = t->epoch_kld = t->epoch_seconds = 0;
    t->epoch_images = 0;
    if (h && h->on_epoch) h->on_epoch(h->ctx, t, &s);
    return 0;
}

static int stop_requested(const Trainer *t, const TrainHooks *h)
{
    if (h && h->stop && atomic_load(h->stop)) return 1;
    return t->cfg.max_steps > 0 && t->step >= t->cfg.max_steps;
}

int trainer_run(Trainer *t, const TrainHooks *h, Err *e)
{
    while (t->epoch < t->cfg.epochs) {
        study_epoch_order(t->data, t->cfg.seed, t->epoch, t->order, t->ntrain);
        while (t->batch_in_epoch < batches_per_epoch(t)) {
            if (stop_requested(t, h)) return 0;
            train_step(t, h);
        }
        if (finish_epoch(t, h, e)) return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ checkpoints */

static void describe_run(CkptMetaList *l, const Trainer *t, int with_state)
{
    const TrainConfig *c = &t->cfg;
    ckpt_meta_add(l, "format", FORMAT_NAME);
    ckpt_meta_add(l, "format_version", FORMAT_VERSION);
    ckpt_meta_add(l, "genlab_version", "%s", GENLAB_VERSION);
    ckpt_meta_add(l, "arch", "%s", vae_arch_name(c->model.arch));
    ckpt_meta_add(l, "latent", "%d", c->model.latent);
    ckpt_meta_add(l, "params", "%zu", t->model.nparams);
    ckpt_meta_add(l, "beta", "%.9g", c->beta);
    ckpt_meta_add(l, "beta_warmup_epochs", "%d", c->beta_warmup_epochs);
    ckpt_meta_add(l, "epochs", "%d", c->epochs);
    ckpt_meta_add(l, "batch", "%d", c->batch);
    ckpt_meta_add(l, "lr", "%.9g", c->lr);
    ckpt_meta_add(l, "seed", "%" PRIu64, c->seed);
    ckpt_meta_add(l, "train_images", "%d", t->ntrain);
    ckpt_meta_add(l, "epoch", "%d", t->epoch);
    ckpt_meta_add(l, "batch_in_epoch", "%d", t->batch_in_epoch);
    ckpt_meta_add(l, "step", "%" PRId64, t->step);
    ckpt_meta_add(l, "images_seen", "%" PRId64, t->images_seen);
    ckpt_meta_add(l, "train_seconds", "%.3f", t->train_seconds);
    ckpt_meta_add(l, "rng", "counter-based xoshiro256**: data order (seed,%d,epoch), noise (seed,%d,step), eval (%d,%d,0)",
             RNG_DATA, RNG_NOISE, EVAL_SEED, RNG_EVAL);
    ckpt_meta_add(l, "state", "%s", with_state ? "training (Adam moments included; --resume reads it)" : "weights only");
    if (with_state) ckpt_meta_add(l, "adam_t", "%" PRId64, t->opt.t);
    ckpt_meta_add(l, "blas_core", "%s", blas_core_name());
    ckpt_meta_add(l, "threads", "%d", c->threads);
    if (t->epoch > 0 && t->train_seconds > 0) {
        double epochs_done = (double)t->images_seen / t->ntrain;
        ckpt_meta_add(l, "seconds_per_epoch", "%.3f", t->train_seconds / epochs_done);
    }
    if (t->train_seconds > 0) ckpt_meta_add(l, "images_per_second", "%.1f", (double)t->images_seen / t->train_seconds);
}

static void describe_metrics(CkptMetaList *l, const EvalResult *study, const EvalResult *official)
{
    ckpt_meta_add(l, "test_images", "%d", study->n);
    ckpt_meta_add(l, "official_images", "%d", official->n);
    ckpt_meta_add(l, "test_bce", "%.6f", study->bce);
    ckpt_meta_add(l, "test_bce_mu", "%.6f", study->bce_mu);
    ckpt_meta_add(l, "test_kld", "%.6f", study->kld);
    ckpt_meta_add(l, "official_bce", "%.6f", official->bce);
    ckpt_meta_add(l, "official_bce_mu", "%.6f", official->bce_mu);
    ckpt_meta_add(l, "official_kld", "%.6f", official->kld);
}

/* Tensor views of the weights and, with state, of Adam's moments. The
 * prefixed names live in `names` (3 × ntensors × 64 chars). */
static int build_views(const Trainer *t, int with_state, CkptTensorView *v, char (*names)[64])
{
    const Vae *m = &t->model;
    int n = 0;
    const char *prefix[3] = {"", "optim.m.", "optim.v."};
    const float *base[3] = {m->params, t->opt.m, t->opt.v};
    for (int k = 0; k < (with_state ? 3 : 1); k++)
        for (int i = 0; i < m->ntensors; i++) {
            const ParamTensor *p = &m->tensors[i];
            snprintf(names[n], 64, "%s%s", prefix[k], p->name);
            v[n] = (CkptTensorView){.name = names[n], .ndim = p->ndim, .data = base[k] + p->offset};
            memcpy(v[n].shape, p->shape, sizeof p->shape);
            n++;
        }
    return n;
}

int trainer_save(Trainer *t, const char *path, int with_state, Err *e)
{
    /* the study split was measured at the end of this epoch already when
     * saving right after it (every epoch, in genlab train) */
    EvalResult study = t->last_test, official;
    if (t->last_test.n == 0 || t->last_test_step != t->step) {
        if (trainer_evaluate(t, SPLIT_STUDY, &study, e)) return -1;
    }
    if (trainer_evaluate(t, SPLIT_OFFICIAL, &official, e)) return -1;
    CkptMetaList meta = {.n = 0};
    describe_run(&meta, t, with_state);
    describe_metrics(&meta, &study, &official);
    CkptTensorView views[3 * VAE_MAX_TENSORS];
    char names[3 * VAE_MAX_TENSORS][64];
    int n = build_views(t, with_state, views, names);
    return ckpt_write(path, views, n, meta.items, meta.n, e);
}

/* ---------------------------------------------------------------- loading */

static int read_model_config(const Checkpoint *ck, VaeConfig *cfg, Err *e)
{
    const char *fmt = ckpt_meta_get(ck, "format");
    if (!fmt || strcmp(fmt, FORMAT_NAME) != 0)
        return err_set(e, "not a genlab VAE checkpoint (format is \"%s\", expected \"%s\")",
                       fmt ? fmt : "missing", FORMAT_NAME);
    const char *arch = ckpt_meta_get(ck, "arch");
    if (!arch || vae_arch_parse(arch, &cfg->arch))
        return err_set(e, "metadata \"arch\" is \"%s\", expected conv or dense", arch ? arch : "missing");
    long long latent;
    if (ckpt_meta_long(ck, "latent", 1, VAE_MAX_LATENT, &latent, e)) return -1;
    cfg->latent = (int)latent;
    return 0;
}

int vae_load_checkpoint(const char *path, Vae *m, Checkpoint *ck, Err *e)
{
    memset(m, 0, sizeof *m);
    if (ckpt_read(path, ck, e)) return -1;
    VaeConfig cfg;
    if (read_model_config(ck, &cfg, e) || vae_create(m, cfg, e) ||
        ckpt_load_params(ck, m->tensors, m->ntensors, "", m->params, e)) {
        err_prefix(e, "%s", path);
        vae_free(m);
        ckpt_free(ck);
        return -1;
    }
    return 0;
}

static int read_train_config(const Checkpoint *ck, TrainConfig *c, Err *e)
{
    long long v;
    double d;
    *c = train_config_default();
    if (read_model_config(ck, &c->model, e)) return -1;
    if (ckpt_meta_double(ck, "beta", &d, e)) return -1;
    c->beta = (float)d;
    if (ckpt_meta_long(ck, "beta_warmup_epochs", 0, 100000, &v, e)) return -1;
    c->beta_warmup_epochs = (int)v;
    if (ckpt_meta_long(ck, "epochs", 1, 100000, &v, e)) return -1;
    c->epochs = (int)v;
    if (ckpt_meta_long(ck, "batch", 1, 4096, &v, e)) return -1;
    c->batch = (int)v;
    if (ckpt_meta_double(ck, "lr", &d, e)) return -1;
    c->lr = (float)d;
    if (ckpt_meta_u64(ck, "seed", &c->seed, e)) return -1; /* any seed train accepts */
    if (ckpt_meta_long(ck, "train_images", 1, STUDY_TRAIN_N, &v, e)) return -1;
    c->train_limit = v == STUDY_TRAIN_N ? 0 : (int)v;
    if (ckpt_meta_long(ck, "threads", 1, POOL_MAX, &v, e)) return -1;
    c->threads = (int)v;
    return 0;
}

static int read_progress(const Checkpoint *ck, Trainer *t, Err *e)
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

int trainer_resume(Trainer *t, const char *path, const StudyData *data, int epochs_override,
                   int64_t max_steps, int threads, Err *e)
{
    Checkpoint ck;
    memset(t, 0, sizeof *t);
    if (ckpt_read(path, &ck, e)) return -1;
    TrainConfig cfg;
    int rc = read_train_config(&ck, &cfg, e);
    if (rc == 0 && !ckpt_find(&ck, "optim.m.enc.fc_mu.weight")) {
        rc = err_set(e, "it holds weights only (a shipped checkpoint); --resume needs a training "
                        "checkpoint, as written by genlab train --out or Ctrl-C");
    }
    if (rc == 0) {
        if (epochs_override > 0) cfg.epochs = epochs_override;
        if (threads > 0) cfg.threads = threads;
        cfg.max_steps = max_steps;
        rc = trainer_setup(t, &cfg, data, e);
    }
    if (rc == 0) rc = ckpt_load_params(&ck, t->model.tensors, t->model.ntensors, "", t->model.params, e);
    if (rc == 0) rc = ckpt_load_params(&ck, t->model.tensors, t->model.ntensors, "optim.m.", t->opt.m, e);
    if (rc == 0) rc = ckpt_load_params(&ck, t->model.tensors, t->model.ntensors, "optim.v.", t->opt.v, e);
    if (rc == 0) rc = read_progress(&ck, t, e);
    ckpt_free(&ck);
    if (rc) {
        trainer_free(t);
        return err_prefix(e, "cannot resume from %s", path);
    }
    return 0;
}

/* ------------------------------------------------- shared with ddpm.c */

void study_epoch_order(const StudyData *d, uint64_t seed, int epoch, int32_t *order, int n)
{
    memcpy(order, d->split, (size_t)n * sizeof *order);
    Rng r;
    rng_seed(&r, seed, RNG_DATA, (uint64_t)epoch);
    rng_shuffle(&r, order, n);
}

int ckpt_load_params(const Checkpoint *ck, const ParamTensor *tensors, int n, const char *prefix,
                     float *dst, Err *e)
{
    for (int i = 0; i < n; i++) {
        const ParamTensor *p = &tensors[i];
        char name[96];
        snprintf(name, sizeof name, "%s%s", prefix, p->name);
        if (ckpt_load_f32(ck, name, p->ndim, p->shape, dst + p->offset, e)) return -1;
    }
    return 0;
}
