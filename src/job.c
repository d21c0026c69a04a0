#include "genlab/job.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "genlab/progress.h"

struct Job {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t wake; /* pause, resume, save requests, stop */
    atomic_int stop;     /* read by the trainer between steps */

    /* requests, under mu */
    int paused;
    int save_requested;
    char save_path[512];

    /* what job_snapshot copies, under mu */
    TrainSnapshot pub;

    /* the worker's own */
    TrainConfig cfg;
    char *data_dir, *resume_path;
    StudyData *data;
    Trainer t;
    int have_trainer;
    int32_t recon_idx[JOB_RECON_N];
    double last_recon, last_train_seconds;
};

const char *job_state_name(JobState s)
{
    static const char *names[] = {"loading", "running", "paused", "finished", "stopped", "failed"};
    return s <= JOB_FAILED ? names[s] : "?";
}

/* ------------------------------------------------------------ publishing */

static void publish_state(Job *j, JobState s, const char *message)
{
    pthread_mutex_lock(&j->mu);
    j->pub.state = s;
    if (message) snprintf(j->pub.message, sizeof j->pub.message, "%s", message);
    j->pub.version++;
    pthread_mutex_unlock(&j->mu);
}

static int grow_history(TrainSnapshot *s, int need)
{
    if (need <= s->hist_cap) return 0;
    int cap = s->hist_cap ? s->hist_cap : 1024;
    while (cap < need) cap *= 2;
    float *b = realloc(s->hist_bce, (size_t)cap * sizeof *b);
    if (b) s->hist_bce = b;
    float *k = realloc(s->hist_kld, (size_t)cap * sizeof *k);
    if (k) s->hist_kld = k;
    if (!b || !k) return -1;
    s->hist_cap = cap;
    return 0;
}

/* Counters of the trainer into the published snapshot (mu held). */
static void publish_counters(Job *j)
{
    const Trainer *t = &j->t;
    TrainSnapshot *p = &j->pub;
    p->cfg = t->cfg;
    p->nparams = t->model.nparams;
    p->epoch = t->epoch;
    p->batch_in_epoch = t->batch_in_epoch;
    p->batches_per_epoch = (t->ntrain + t->cfg.batch - 1) / t->cfg.batch;
    p->step = t->step;
    int64_t left = (int64_t)(t->cfg.epochs - t->epoch) * t->ntrain -
                   (int64_t)t->batch_in_epoch * t->cfg.batch;
    p->eta_seconds = p->images_per_second > 0 ? (double)left / p->images_per_second : -1;
}

/* Reconstructions of the fixed test digits with the current weights. */
static void update_recon(Job *j)
{
    Vae *m = &j->t.model;
    float x[JOB_RECON_N * 784], out[JOB_RECON_N * 784];
    dataset_gather(&j->data->train_file, j->recon_idx, JOB_RECON_N, x);
    vae_encode(m, x, JOB_RECON_N);
    vae_decode(m, m->a.mu, JOB_RECON_N, out);
    pthread_mutex_lock(&j->mu);
    memcpy(j->pub.recon_orig, x, sizeof x);
    memcpy(j->pub.recon_out, out, sizeof out);
    j->pub.nrecon = JOB_RECON_N;
    j->pub.version++;
    pthread_mutex_unlock(&j->mu);
    j->last_recon = monotonic_seconds();
}

/* ---------------------------------------------------------------- saving */

/* Performs a pending save request (called by the worker, mu not held). */
static void serve_save(Job *j)
{
    pthread_mutex_lock(&j->mu);
    if (!j->save_requested) {
        pthread_mutex_unlock(&j->mu);
        return;
    }
    char path[512];
    snprintf(path, sizeof path, "%s", j->save_path);
    j->save_requested = 0;
    snprintf(j->pub.message, sizeof j->pub.message, "saving %s…", path);
    j->pub.version++;
    pthread_mutex_unlock(&j->mu);

    Err e;
    int rc = trainer_save(&j->t, path, 1, &e);
    pthread_mutex_lock(&j->mu);
    if (rc) snprintf(j->pub.message, sizeof j->pub.message, "save failed: %s", e.msg);
    else {
        snprintf(j->pub.message, sizeof j->pub.message, "saved %s", path);
        snprintf(j->pub.saved_path, sizeof j->pub.saved_path, "%s", path);
        j->pub.unsaved = 0;
    }
    j->pub.version++;
    pthread_mutex_unlock(&j->mu);
}

/* ------------------------------------------------------------ train hooks */

/* Sleeps (mu held) while keep_waiting(j) holds, serving save requests
 * meanwhile; mu is released during a save and while asleep. */
static void wait_serving_saves(Job *j, int (*keep_waiting)(Job *))
{
    while (keep_waiting(j)) {
        if (j->save_requested) {
            pthread_mutex_unlock(&j->mu);
            serve_save(j);
            pthread_mutex_lock(&j->mu);
            continue;
        }
        pthread_cond_wait(&j->wake, &j->mu);
    }
}

static int paused(Job *j) { return j->paused && !atomic_load(&j->stop); }
static int not_destroyed(Job *j) { return atomic_load(&j->stop) < 2; }

static void wait_while_paused(Job *j)
{
    pthread_mutex_lock(&j->mu);
    if (paused(j)) {
        j->pub.state = JOB_PAUSED;
        j->pub.version++;
    }
    wait_serving_saves(j, paused);
    if (j->pub.state == JOB_PAUSED) {
        j->pub.state = JOB_RUNNING;
        j->pub.version++;
    }
    pthread_mutex_unlock(&j->mu);
}

static void on_batch(void *ctx, const Trainer *t, double bce, double kld)
{
    Job *j = ctx;
    /* images/s over recent steps: an exponential average of each step's rate */
    double dt = t->train_seconds - j->last_train_seconds;
    j->last_train_seconds = t->train_seconds;
    pthread_mutex_lock(&j->mu);
    TrainSnapshot *p = &j->pub;
    if (dt > 0) {
        double rate = t->cfg.batch / dt;
        p->images_per_second = p->images_per_second > 0 ? 0.95 * p->images_per_second + 0.05 * rate : rate;
    }
    if (grow_history(p, p->nhist + 1) == 0) {
        p->hist_bce[p->nhist] = (float)bce;
        p->hist_kld[p->nhist] = (float)kld;
        p->nhist++;
    }
    p->unsaved++;
    publish_counters(j);
    p->version++;
    pthread_mutex_unlock(&j->mu);
    if (monotonic_seconds() - j->last_recon > 0.5) update_recon(j);
    serve_save(j);
    wait_while_paused(j);
}

static void on_epoch(void *ctx, const Trainer *t, const EpochStats *s)
{
    Job *j = ctx;
    (void)t;
    pthread_mutex_lock(&j->mu);
    if (j->pub.nepochs < JOB_MAX_EPOCHS) j->pub.epochs[j->pub.nepochs++] = *s;
    publish_counters(j);
    j->pub.version++;
    pthread_mutex_unlock(&j->mu);
    update_recon(j);
}

/* ---------------------------------------------------------------- worker */

static int prepare(Job *j, Err *e)
{
    j->data = malloc(sizeof *j->data);
    if (!j->data) return err_set(e, "out of memory for the data");
    if (study_data_load(j->data, j->data_dir, e)) {
        free(j->data);
        j->data = NULL;
        return -1;
    }
    int rc = j->resume_path ? trainer_resume(&j->t, j->resume_path, j->data, 0, 0, j->cfg.threads, e)
                            : trainer_init(&j->t, &j->cfg, j->data, e);
    if (rc) return -1;
    study_showcase_digits(j->data, j->recon_idx, JOB_RECON_N);
    pthread_mutex_lock(&j->mu);
    j->have_trainer = 1; /* read under mu by job_copy_weights */
    publish_counters(j);
    pthread_mutex_unlock(&j->mu);
    update_recon(j);
    return 0;
}

/* After training: serve save requests until destroyed. */
static void idle_until_destroyed(Job *j)
{
    pthread_mutex_lock(&j->mu);
    wait_serving_saves(j, not_destroyed);
    pthread_mutex_unlock(&j->mu);
}

static void *worker_main(void *arg)
{
    Job *j = arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    Err e;
    if (prepare(j, &e)) {
        publish_state(j, JOB_FAILED, e.msg);
    } else {
        publish_state(j, JOB_RUNNING, "training");
        TrainHooks hooks = {.ctx = j, .on_batch = on_batch, .on_epoch = on_epoch, .stop = &j->stop};
        if (trainer_run(&j->t, &hooks, &e)) publish_state(j, JOB_FAILED, e.msg);
        else if (trainer_done(&j->t)) publish_state(j, JOB_FINISHED, "training finished");
        else publish_state(j, JOB_STOPPED, "training stopped");
    }
    idle_until_destroyed(j);
    return NULL;
}

/* ------------------------------------------------------------------- API */

Job *job_start(const TrainConfig *cfg, const char *data_dir, const char *resume_path, Err *e)
{
    Job *j = calloc(1, sizeof *j);
    if (!j) {
        err_set(e, "out of memory");
        return NULL;
    }
    j->cfg = *cfg;
    j->data_dir = data_dir ? strdup(data_dir) : NULL;
    j->resume_path = resume_path ? strdup(resume_path) : NULL;
    j->pub.state = JOB_LOADING;
    j->pub.cfg = *cfg;
    j->pub.eta_seconds = -1;
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->wake, NULL);
    if (pthread_create(&j->thread, NULL, worker_main, j) != 0) {
        err_set(e, "cannot start the training thread");
        pthread_mutex_destroy(&j->mu);
        pthread_cond_destroy(&j->wake);
        free(j->data_dir), free(j->resume_path), free(j);
        return NULL;
    }
    return j;
}

static void set_paused(Job *j, int paused)
{
    pthread_mutex_lock(&j->mu);
    j->paused = paused;
    pthread_cond_broadcast(&j->wake);
    pthread_mutex_unlock(&j->mu);
}

void job_pause(Job *j) { set_paused(j, 1); }
void job_resume(Job *j) { set_paused(j, 0); }

void job_request_save(Job *j, const char *path)
{
    pthread_mutex_lock(&j->mu);
    snprintf(j->save_path, sizeof j->save_path, "%s", path);
    j->save_requested = 1;
    pthread_cond_broadcast(&j->wake);
    pthread_mutex_unlock(&j->mu);
}

/* stop = 1: leave trainer_run; stop = 2: leave the worker altogether. */
static void raise_stop(Job *j, int level)
{
    pthread_mutex_lock(&j->mu);
    if (atomic_load(&j->stop) < level) atomic_store(&j->stop, level);
    pthread_cond_broadcast(&j->wake);
    pthread_mutex_unlock(&j->mu);
}

void job_stop(Job *j) { raise_stop(j, 1); }

void job_destroy(Job *j)
{
    if (!j) return;
    raise_stop(j, 2);
    pthread_join(j->thread, NULL);
    if (j->have_trainer) trainer_free(&j->t);
    if (j->data) study_data_free(j->data);
    free(j->data);
    job_snapshot_free(&j->pub);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->wake);
    free(j->data_dir), free(j->resume_path), free(j);
}

int job_copy_weights(Job *j, Vae *dst, Err *e)
{
    pthread_mutex_lock(&j->mu);
    /* The worker writes the weights only in a training step, and it sets
     * these states (under mu) only between steps. */
    JobState s = j->pub.state;
    int rc;
    if (!j->have_trainer || (s != JOB_PAUSED && s != JOB_FINISHED && s != JOB_STOPPED))
        rc = err_set(e, "the run is %s; pause or stop it first", job_state_name(s));
    else if ((rc = vae_create(dst, j->t.model.cfg, e)) == 0)
        memcpy(dst->params, j->t.model.params, dst->nparams * sizeof *dst->params);
    pthread_mutex_unlock(&j->mu);
    return rc;
}

int job_snapshot(Job *j, TrainSnapshot *s)
{
    pthread_mutex_lock(&j->mu);
    const TrainSnapshot *p = &j->pub;
    if (p->version == s->version) {
        pthread_mutex_unlock(&j->mu);
        return 0;
    }
    /* scalars and fixed arrays, keeping s's own history buffers */
    float *hb = s->hist_bce, *hk = s->hist_kld;
    int nhist = s->nhist, cap = s->hist_cap;
    memcpy(s, p, sizeof *s);
    s->hist_bce = hb, s->hist_kld = hk, s->nhist = nhist, s->hist_cap = cap;
    /* new points only (memcpy of nothing from a NULL buffer is still UB) */
    if (p->nhist > s->nhist && grow_history(s, p->nhist) == 0) {
        memcpy(s->hist_bce + s->nhist, p->hist_bce + s->nhist, (size_t)(p->nhist - s->nhist) * sizeof *hb);
        memcpy(s->hist_kld + s->nhist, p->hist_kld + s->nhist, (size_t)(p->nhist - s->nhist) * sizeof *hk);
        s->nhist = p->nhist;
    }
    pthread_mutex_unlock(&j->mu);
    return 1;
}

void job_snapshot_free(TrainSnapshot *s)
{
    free(s->hist_bce);
    free(s->hist_kld);
    s->hist_bce = s->hist_kld = NULL;
    s->nhist = s->hist_cap = 0;
}
