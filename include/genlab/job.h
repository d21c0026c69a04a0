/* job.h — a VAE training run on its own thread, observed through snapshots
 * (DESIGN.md, "Threads").
 *
 * The worker owns the Trainer. It publishes, under a mutex, a snapshot
 * with a version number: counters, the loss history, per-epoch test
 * losses and the current reconstructions of a fixed set of test digits.
 * The UI thread copies the snapshot when the version changed and never
 * touches the Trainer. Control goes the other way: pause, resume, stop
 * and save requests, which the worker acts on between optimizer steps.
 * The worker thread blocks every asynchronous signal. */
#ifndef GENLAB_JOB_H
#define GENLAB_JOB_H

#include <stdint.h>

#include "genlab/train.h"

#define JOB_RECON_N 16   /* test digits shown with their reconstructions */
#define JOB_MAX_EPOCHS 1000

typedef enum {
    JOB_LOADING,  /* reading the data, building the model */
    JOB_RUNNING,
    JOB_PAUSED,
    JOB_FINISHED, /* all epochs done */
    JOB_STOPPED,  /* stopped by the user or its step limit */
    JOB_FAILED    /* see message */
} JobState;

const char *job_state_name(JobState s);

/* What the UI sees. The history arrays grow as job_snapshot appends to
 * them; free them with job_snapshot_free. */
typedef struct {
    uint64_t version;
    JobState state;
    TrainConfig cfg;
    size_t nparams;
    int epoch;              /* completed epochs */
    int batch_in_epoch, batches_per_epoch;
    int64_t step;
    double images_per_second; /* recent, over the last second or so */
    double eta_seconds;       /* < 0: unknown */
    /* per-step losses, per image: x = step / batches_per_epoch (in epochs) */
    int nhist;
    float *hist_bce, *hist_kld;
    int hist_cap;
    /* test losses after each epoch (study split, as `genlab train` prints) */
    int nepochs;
    EpochStats epochs[JOB_MAX_EPOCHS];
    /* the same test digits each time: originals and reconstructions (z = μ) */
    int nrecon;
    float recon_orig[JOB_RECON_N * 784];
    float recon_out[JOB_RECON_N * 784];
    char saved_path[512];   /* last successful save, "" if none */
    int unsaved;            /* steps taken since the last save */
    char message[768];      /* the latest event or error, one line */
} TrainSnapshot;

typedef struct Job Job;

/* Starts a run on a new thread: loads the data (from data_dir, or the
 * shipped assets when NULL), builds the model and trains with cfg.
 * resume_path, when not NULL, continues that checkpoint instead (cfg is
 * then ignored). NULL with e filled if the thread cannot start; later
 * failures (bad data, bad checkpoint) arrive as JOB_FAILED and a message. */
Job *job_start(const TrainConfig *cfg, const char *data_dir, const char *resume_path, Err *e);
void job_pause(Job *j);
void job_resume(Job *j);
/* Asks the worker to save the run (with Adam's state) to path between two
 * steps, or at once when paused or done; the outcome comes back in the
 * snapshot's message and saved_path. */
void job_request_save(Job *j, const char *path);
/* Stops training after the current step; the worker stays, so the run can
 * still be saved. */
void job_stop(Job *j);
/* Stops the run (if still going) and joins the thread; frees j. */
void job_destroy(Job *j);

/* Copies the trained weights into dst (created here) when the worker is
 * not stepping (paused, finished or stopped); -1 with e filled otherwise. */
int job_copy_weights(Job *j, Vae *dst, Err *e);

/* Copies the job's state into s if it changed since s->version; returns 1
 * if it did. s starts zeroed; its history arrays grow as needed. */
int job_snapshot(Job *j, TrainSnapshot *s);
void job_snapshot_free(TrainSnapshot *s);

#endif
