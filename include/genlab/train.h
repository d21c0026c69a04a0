/* train.h — training, evaluating, saving and loading VAEs.
 *
 * The job layer: it owns a model, its optimizer and the data indices, and
 * runs on whatever thread calls it (the CLI's main thread now, the TUI's
 * worker later). It never prints; it reports through hooks.
 *
 * Training is data-parallel: each of `threads` workers runs forward and
 * backward on its shard of the batch with single-threaded BLAS; their
 * gradients are summed before Adam. Results are bit-identical for a given
 * thread count (and machine), not across thread counts.
 *
 * Randomness is counter-based (rng.h): epoch e's data order comes from
 * (seed, RNG_DATA, e), step s's reparameterisation noise from
 * (seed, RNG_NOISE, s). The state needed to resume exactly is therefore the
 * weights, Adam's moments and step count, and (epoch, batch_in_epoch, step). */
#ifndef GENLAB_TRAIN_H
#define GENLAB_TRAIN_H

#include <stdatomic.h>
#include <stdint.h>

#include "genlab/adam.h"
#include "genlab/checkpoint.h"
#include "genlab/dataset.h"
#include "genlab/error.h"
#include "genlab/vae.h"

#define EVAL_SEED 1234 /* the fixed seed behind every evaluation's z draws */

typedef struct {
    VaeConfig model;
    float beta;
    int beta_warmup_epochs; /* K: β rises linearly from 0 over the first K epochs; 0 = off */
    int epochs;
    int batch;
    float lr;
    uint64_t seed;
    int64_t max_steps;      /* stop after this many optimizer steps in total; 0 = no limit */
    int train_limit;        /* use only the first N study-train images; 0 = all 48,000 */
    int eval_limit;         /* evaluate on the first N test images only; 0 = all (not saved) */
    int threads;            /* worker threads, each on a shard of the batch; 0 = all CPUs */
} TrainConfig;

/* The study's recipe: Adam 1e-3, batch 64, 20 epochs, β = 1, d = 2, conv. */
TrainConfig train_config_default(void);

/* Per-image losses over a set of images. */
typedef struct {
    double bce;    /* z sampled with EVAL_SEED's stream */
    double bce_mu; /* z = μ */
    double kld;
    int n;
} EvalResult;

/* The data a run sees: the official training file, split as the study did,
 * and the official test file for the second evaluation. */
typedef struct {
    Dataset train_file;
    Dataset test_file;
    int32_t split[MNIST_TRAIN_N]; /* study permutation: [0, 48000) train, the rest test */
} StudyData;

/* Loads both files from `dir` (NULL: the assets directory found by paths.h). */
int study_data_load(StudyData *d, const char *dir, Err *e);
void study_data_free(StudyData *d);

typedef enum { SPLIT_STUDY, SPLIT_OFFICIAL } EvalSplit;

/* A split's test images: how many, which file holds them, and where test
 * image i (0 ≤ i < split_size) is in that file. */
int split_size(const StudyData *d, EvalSplit split);
const Dataset *split_file(const StudyData *d, EvalSplit split);
int32_t split_index(const StudyData *d, EvalSplit split, int i);

/* n study-test images to show an audience: the first of each class 0–9,
 * then the next ones in order (indices into the training file). */
void study_showcase_digits(const StudyData *d, int32_t *idx, int n);

/* μ and log σ² of the first n test images of a split (n ≤ split_size), in
 * batches: mu and logvar receive n × d floats, labels n bytes; any of the
 * three may be NULL. -1 with e filled when out of memory. */
int vae_encode_split(Vae *m, const StudyData *d, EvalSplit split, int n, float *mu, float *logvar,
                     uint8_t *labels, Err *e);
/* Evaluates m on the 12,000 study-test images or the 10,000 official ones,
 * in batches; `limit` > 0 evaluates only the first `limit` images. */
int vae_evaluate(Vae *m, const StudyData *d, EvalSplit split, int limit, EvalResult *out, Err *e);

typedef struct {
    int epoch;           /* 1-based epoch this line is about */
    double train_bce, train_kld; /* mean per image over the epoch's batches */
    double test_bce, test_kld;   /* study split, after the epoch */
    double seconds;      /* training time of the epoch (evaluation excluded) */
} EpochStats;

typedef struct Trainer Trainer;

typedef struct {
    void *ctx;
    /* After each optimizer step: per-image losses of that batch. */
    void (*on_batch)(void *ctx, const Trainer *t, double bce, double kld);
    /* After each completed epoch (with its test evaluation). */
    void (*on_epoch)(void *ctx, const Trainer *t, const EpochStats *s);
    /* Polled between steps; nonzero stops the run after the current step. */
    atomic_int *stop;
} TrainHooks;

struct Trainer {
    TrainConfig cfg;
    Vae model;
    Adam opt;
    const StudyData *data;
    int ntrain;               /* images per epoch */
    int epoch;                /* completed epochs */
    int batch_in_epoch;       /* batches done in the current epoch */
    int64_t step;             /* optimizer steps done */
    double train_seconds;     /* time in training steps so far, across resumes */
    int64_t images_seen;
    /* running sums of the current epoch, for its train line */
    double epoch_bce, epoch_kld, epoch_seconds;
    int epoch_images;
    EvalResult last_test;     /* latest study-split evaluation (n = 0: none yet) */
    int64_t last_test_step;   /* the step it was measured at */
    float *xbuf, *epsbuf;     /* one batch of inputs and noise */
    int32_t *order;           /* this epoch's order of study-train images */
    struct Pool *pool;        /* data-parallel workers */
    Vae *replicas;            /* workers 1..n−1's models (params shared with `model`) */
};

/* A fresh run: weights from cfg.seed, Adam zeroed. */
int trainer_init(Trainer *t, const TrainConfig *cfg, const StudyData *data, Err *e);
/* Continues the run saved in `path` (a training checkpoint with Adam
 * state). epochs_override > 0 changes the total epochs, max_steps > 0
 * sets a step limit, threads > 0 the worker count (the saved count, by
 * default, is what makes the continuation bit-exact); every other setting
 * comes from the file. */
int trainer_resume(Trainer *t, const char *path, const StudyData *data, int epochs_override,
                   int64_t max_steps, int threads, Err *e);
void trainer_free(Trainer *t);

/* β in effect during epoch `epoch` (0-based) under the warm-up schedule. */
float train_beta_at(const TrainConfig *c, int epoch);
int trainer_done(const Trainer *t);

/* Trains until the configured epochs are done, max_steps is reached or
 * the stop flag is raised. Returns 0, or -1 with e filled. */
int trainer_run(Trainer *t, const TrainHooks *h, Err *e);

/* Saves the run atomically. With `with_state`, Adam's moments are stored
 * (`optim.m.*`, `optim.v.*`) so that --resume continues exactly; without,
 * only the weights (shipped checkpoints). Metadata: configuration,
 * training state and metrics; the metrics (study and official test
 * losses) are measured now. */
int trainer_save(Trainer *t, const char *path, int with_state, Err *e);

/* Epoch `epoch`'s order of the first n study-train images: shuffled by
 * (seed, RNG_DATA, epoch), so a resumed run sees the same order. */
void study_epoch_order(const StudyData *d, uint64_t seed, int epoch, int32_t *order, int n);

/* Copies the tensors named prefix + each parameter's name into dst, laid out
 * as the model's parameter buffer (prefix "" for the weights, "optim.m."
 * for Adam's first moments, …), checking dtype and shape. */
int ckpt_load_params(const Checkpoint *ck, const ParamTensor *tensors, int n, const char *prefix,
                     float *dst, Err *e);

/* Loads a VAE checkpoint's configuration and weights into m (created
 * here). ck receives the parsed file (for its metadata); free it with
 * ckpt_free. */
int vae_load_checkpoint(const char *path, Vae *m, Checkpoint *ck, Err *e);

#endif
