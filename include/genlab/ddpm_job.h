/* ddpm_job.h — a DDPM sampling chain on its own thread, kept frame by frame
 * for a viewer (DESIGN.md, "Threads" and "Screens": Diffusion).
 *
 * The worker runs diffusion_sample for B chains with one SamplerPlan and
 * stores every frame as bytes (0..255 for [−1, 1], clamped): frame 0 is
 * x_T, frame i + 1 is the x after step i together with the x̂₀ that step
 * predicted (frame 0 has no prediction yet: its x̂₀ bytes are 0), and the
 * last frame, K, is the final image. A frame's memory is allocated when the
 * worker produces it. The number of frames ready is published under a
 * mutex; a frame below that number never changes again, so the UI reads
 * its bytes without a lock, and scrubbing back costs nothing.
 *
 * The job runs the network on its own replica of the caller's model (the
 * weights are shared and only read) with a DdpmRunner of `threads`
 * workers, so several jobs may exist at once, e.g. one still finishing its
 * current step after being asked to stop. The worker blocks every
 * asynchronous signal. */
#ifndef GENLAB_DDPM_JOB_H
#define GENLAB_DDPM_JOB_H

#include <stdint.h>

#include "genlab/diffusion.h"
#include "genlab/unet.h"

typedef enum {
    DDPM_JOB_RUNNING,
    DDPM_JOB_DONE,    /* every frame is ready */
    DDPM_JOB_STOPPED, /* asked to stop before the end */
    DDPM_JOB_FAILED   /* see message */
} DdpmJobState;

typedef struct {
    SamplerKind sampler; /* DDPM: ancestral, σ² = β̃ (as `genlab ddpm sample`); DDIM: η = 0 */
    int steps;           /* K, 1..T */
    uint64_t seed;       /* chain b's noise comes from (seed, RNG_SAMPLE, b) */
    int chains;          /* B, 1..DDPM_JOB_MAX_CHAINS */
    int threads;         /* network workers; 0: as many as the CPUs */
} DdpmJobConfig;

#define DDPM_JOB_MAX_CHAINS 64

typedef struct {
    DdpmJobState state;
    int frames_ready; /* frames 0 .. frames_ready − 1 may be read */
    int frames_total; /* K + 1 */
    double seconds;   /* wall time of the chain so far (all of it once done) */
    char message[512]; /* why it failed, else "" */
} DdpmJobStatus;

typedef struct DdpmJob DdpmJob;

/* Starts sampling at once; frame 0 (x_T) is ready when this returns.
 * model and sched are only read, and must outlive the job. NULL with e
 * filled on bad settings, out of memory or no thread. */
DdpmJob *ddpm_job_start(const Unet *model, const Schedule *sched, const DdpmJobConfig *cfg, Err *e);
/* Asks the worker to stop after its current step; returns at once. */
void ddpm_job_request_stop(DdpmJob *j);
/* Stops the worker (if still going) and joins it; frames stay readable. */
void ddpm_job_stop(DdpmJob *j);
/* Stops, joins and frees everything (NULL is fine). */
void ddpm_job_free(DdpmJob *j);

void ddpm_job_status(DdpmJob *j, DdpmJobStatus *out);
/* 1 when the worker has left its loop (done, stopped or failed). */
int ddpm_job_finished(DdpmJob *j);

/* Frame f's x_t or x̂₀ bytes for all chains (B · D, chain after chain);
 * f must be below the frames_ready of an earlier ddpm_job_status. */
const uint8_t *ddpm_job_xt(const DdpmJob *j, int f);
const uint8_t *ddpm_job_x0(const DdpmJob *j, int f);

/* threads as resolved (never 0) */
const DdpmJobConfig *ddpm_job_config(const DdpmJob *j);
const SamplerPlan *ddpm_job_plan(const DdpmJob *j);

/* The diffusion step of frame f in the paper's counting (T for x_T, 0 for
 * the final image) and its ᾱ (1 for the final image). */
int ddpm_frame_step(const SamplerPlan *p, int f);
double ddpm_frame_alpha_bar(const SamplerPlan *p, int f);

/* [−1, 1] → 0..255 (round, clamped), as the frames store images. */
void ddpm_to_bytes(const float *x, int64_t n, uint8_t *out);

#endif
