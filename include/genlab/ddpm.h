/* ddpm.h — training, evaluating, saving and loading the DDPM (a U-Net
 * predicting ε, unet.h, over a schedule, diffusion.h).
 *
 * Like train.h for the VAE: data-parallel over a pool of workers, each on a
 * shard of the batch with single-threaded BLAS; counter-based randomness,
 * so that step s's timesteps and noise come from (seed, RNG_NOISE, s) and
 * epoch e's order from (seed, RNG_DATA, e), and a resume is exact.
 *
 * Images are scaled to [−1, 1]. The loss is the mean squared error between
 * ε and ε̂ over every pixel of the batch, t uniform in [0, T). After every
 * Adam step the EMA of the weights moves towards them with decay
 * min(ema_decay, (1 + step)/(10 + step)) (the warm-up lets a short run's EMA
 * follow the weights early on). The EMA is what samples and evaluations
 * use, and what a checkpoint's plain tensor names hold; the raw weights are
 * `train.<name>`, Adam's moments `optim.m.<name>` / `optim.v.<name>`. */
#ifndef GENLAB_DDPM_H
#define GENLAB_DDPM_H

#include <stdatomic.h>
#include <stdint.h>

#include "genlab/adam.h"
#include "genlab/checkpoint.h"
#include "genlab/diffusion.h"
#include "genlab/train.h" /* StudyData, EvalSplit, EVAL_SEED */
#include "genlab/unet.h"

/* Stratified draws per test image in an evaluation: image i is noised at
 * t_k = ⌊(k + u_i)·T/DDPM_EVAL_DRAWS⌋, k = 0..3, with u_i and the noise from
 * (EVAL_SEED, RNG_EVAL, i): the same draws on every run. */
#define DDPM_EVAL_DRAWS 4 /* describe_eval writes four strata: change both together */
#define DDPM_EVAL_BATCH 100

typedef struct {
    UnetConfig model;
    ScheduleKind schedule;
    int T;
    int epochs;
    int batch;
    float lr;
    float ema_decay;
    uint64_t seed;
    int64_t max_steps; /* stop after this many steps in total; 0 = no limit */
    int train_limit;   /* the first N study-train images only; 0 = all 48,000 */
    int eval_limit;    /* evaluate on the first N test images only; 0 = all */
    int threads;       /* workers; 0 = all CPUs */
} DdpmConfig;

/* The study's recipe: T 4000 cosine, Adam 1e-4, batch 128, 20 epochs;
 * EMA 0.999. */
DdpmConfig ddpm_config_default(void);

typedef struct {
    double loss;   /* mean ε-MSE per pixel */
    double stderr_; /* standard error of that mean over images */
    int n;         /* images */
    double stratum[DDPM_EVAL_DRAWS]; /* mean loss of draw k, t in [k·T/4, (k+1)·T/4) */
} DdpmEval;

typedef struct {
    int epoch;         /* 1-based */
    double train_loss; /* mean over the epoch's batches (raw weights) */
    DdpmEval test;     /* study split, EMA weights */
    double seconds;    /* training time of the epoch in this process */
    int images;        /* images trained in that time (fewer after a resume) */
} DdpmEpochStats;

typedef struct DdpmTrainer DdpmTrainer;

typedef struct {
    void *ctx;
    void (*on_batch)(void *ctx, const DdpmTrainer *t, double loss);
    void (*on_epoch)(void *ctx, const DdpmTrainer *t, const DdpmEpochStats *s);
    atomic_int *stop; /* polled between steps */
} DdpmHooks;

struct DdpmTrainer {
    DdpmConfig cfg;
    Unet model;       /* raw weights, trained */
    float *ema;       /* nparams: the EMA of model.params */
    Adam opt;
    Schedule sched;
    const StudyData *data;
    int ntrain;
    int epoch, batch_in_epoch;
    int64_t step, images_seen;
    double train_seconds;
    double epoch_loss, epoch_seconds;
    int epoch_images;
    DdpmEval last_test;
    int64_t last_test_step;
    float *x0, *xt, *eps; /* one batch */
    int *tbuf;
    int32_t *order;
    struct Pool *pool;
    Unet *replicas;
};

int ddpm_trainer_init(DdpmTrainer *t, const DdpmConfig *cfg, const StudyData *data, Err *e);
/* Continues a training checkpoint (train.*, optim.* present).
 * epochs_override / max_steps / threads > 0 change those settings. */
int ddpm_trainer_resume(DdpmTrainer *t, const char *path, const StudyData *data,
                        int epochs_override, int64_t max_steps, int threads, Err *e);
void ddpm_trainer_free(DdpmTrainer *t);
int ddpm_trainer_done(const DdpmTrainer *t);
int ddpm_trainer_run(DdpmTrainer *t, const DdpmHooks *h, Err *e);
/* Test ε-MSE of the EMA weights (the study split or the official one). */
int ddpm_trainer_evaluate(DdpmTrainer *t, EvalSplit split, DdpmEval *out, Err *e);
/* with_state: raw weights and Adam's moments too (for --resume); without,
 * the EMA alone (shipped). Measures the test losses first (study split
 * unless measured at this step already, and official). */
int ddpm_trainer_save(DdpmTrainer *t, const char *path, int with_state, Err *e);
/* A training checkpoint (with state) that measures nothing: its metrics
 * are the last study-split figure and the step it was measured at. For
 * saves every few minutes and on Ctrl-C, which must be quick. */
int ddpm_trainer_checkpoint(DdpmTrainer *t, const char *path, Err *e);

/* The EMA weights of a DDPM checkpoint, its schedule, and the parsed file
 * (metadata) in ck (free with ckpt_free). */
int ddpm_load_checkpoint(const char *path, Unet *m, Schedule *sched, Checkpoint *ck, Err *e);
/* Test ε-MSE of a model on `threads` workers (0: all CPUs), which share
 * its weights; `limit` > 0 evaluates only the first `limit` images. */
int ddpm_evaluate(Unet *m, const Schedule *s, const StudyData *d, EvalSplit split, int limit,
                  int threads, DdpmEval *out, Err *e);

/* A model shared by worker threads for sampling: ddpm_runner_eps (an
 * EpsModelFn, diffusion.h) splits each batch among them. It transforms the
 * model's conv filters once (unet.h), so the weights must not change while
 * the runner lives. */
typedef struct DdpmRunner DdpmRunner;
/* threads 0: all CPUs; cap: the largest batch it will be given. */
DdpmRunner *ddpm_runner_create(Unet *m, int threads, int cap, Err *e);
void ddpm_runner_eps(void *runner, float *eps_hat, const float *x, const int *t, int B);
void ddpm_runner_free(DdpmRunner *r);

#endif
