/* screen_train.c — the Train screen: settings, a run on a worker thread,
 * live loss curves and reconstructions of fixed test digits. */
#include <curses.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "genlab/image.h"
#include "genlab/progress.h"

enum { C_TOTAL = 231, C_RAW = 244, C_BCE = 45, C_KLD = 214, C_TEST = 226, C_LABEL = 250 };
#define RECON_ROWS (2 * THUMB_H + 1)

struct TrainScreen {
    TrainConfig next;   /* settings for the next run */
    Job *job;
    TrainSnapshot *snap;
    int log_y;
    int model_taken;    /* the finished run became the app's model */
    double discard_armed_until; /* a second t within this time discards an unsaved run */
    char shown_message[768];    /* the job's last message already on the status line */
    /* reconstructions of the app's model, when no run is on screen */
    char recon_model[256];
    int nrecon;
    float recon_orig[JOB_RECON_N * 784], recon_out[JOB_RECON_N * 784];
};

static const KeyHelp train_keys[] = {
    {"t", "start/pause/resume"}, {"k", "stop"}, {"s", "save"}, {"p", "demo preset"},
    {"a", "arch"}, {"d", "latent"}, {"b", "β"}, {"e", "epochs"}, {"w", "β warm-up"},
    {"r", "seed"}, {"l", "log/linear"},
};

TrainScreen *train_screen_new(void)
{
    TrainScreen *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->snap = calloc(1, sizeof *t->snap);
    if (!t->snap) {
        free(t);
        return NULL;
    }
    t->next = train_config_default();
    t->log_y = 1;
    return t;
}

void train_screen_free(TrainScreen *t)
{
    if (!t) return;
    job_destroy(t->job);
    job_snapshot_free(t->snap);
    free(t->snap);
    free(t);
}

static int run_active(const TrainScreen *t)
{
    return t->job && (t->snap->state == JOB_LOADING || t->snap->state == JOB_RUNNING ||
                      t->snap->state == JOB_PAUSED);
}

int train_screen_unsaved(const App *a)
{
    const TrainScreen *t = a->train;
    return t->job && t->snap->unsaved > 0 && t->snap->state != JOB_FAILED;
}

/* ------------------------------------------------------------- settings */

static void cycle_float(float *v, const float *list, int n)
{
    int i = 0;
    while (i < n && fabsf(list[i] - *v) > 1e-9f * fabsf(list[i])) i++;
    *v = list[(i + 1) % n];
}

static void cycle_int(int *v, const int *list, int n)
{
    int i = 0;
    while (i < n && list[i] != *v) i++;
    *v = list[(i + 1) % n];
}

/* The demo preset: a conv VAE whose curves fall visibly within seconds
 * (ten short epochs of 9,600 images, quick evaluations). */
static void demo_preset(TrainConfig *c)
{
    *c = train_config_default();
    c->epochs = 10;
    c->train_limit = 9600;
    c->eval_limit = 2000;
}

static int edit_setting(App *a, TrainScreen *t, int key)
{
    static const float betas[] = {1.0f, 20.0f, 0.001f, 4.0f};
    static const int latents[] = {2, 4, 8, 16, 1}, epochs[] = {20, 50, 1, 5, 10};
    static const int warmups[] = {0, 2, 5, 10};
    TrainConfig *c = &t->next;
    switch (key) {
    case 'a': c->model.arch = c->model.arch == ARCH_CONV ? ARCH_DENSE : ARCH_CONV; break;
    case 'd': cycle_int(&c->model.latent, latents, 5); break;
    case 'b': cycle_float(&c->beta, betas, 4); break;
    case 'e': cycle_int(&c->epochs, epochs, 5); break;
    case 'w': cycle_int(&c->beta_warmup_epochs, warmups, 4); break;
    case 'r': c->seed++; break;
    case 'p':
        demo_preset(c);
        app_status(a, "demo preset: conv VAE, 10 short epochs — press t");
        return 1;
    default: return 0;
    }
    /* any edit leaves the demo preset's short epochs */
    c->train_limit = c->eval_limit = 0;
    return 1;
}

/* ------------------------------------------------------------ run control */

static void start_run(App *a, TrainScreen *t)
{
    if (train_screen_unsaved(a) && app_now() > t->discard_armed_until) {
        app_status(a, "the last run is unsaved: s saves it, t again discards it");
        t->discard_armed_until = app_now() + 5;
        return;
    }
    job_destroy(t->job);
    job_snapshot_free(t->snap);
    memset(t->snap, 0, sizeof *t->snap);
    Err e;
    t->job = job_start(&t->next, a->opts.data_dir, NULL, &e);
    t->model_taken = 0;
    if (!t->job) app_status(a, "%s", e.msg);
    else app_status(a, "training started");
}

static void save_name(const TrainConfig *c, char *out, size_t cap)
{
    char stamp[32];
    time_t now = time(NULL);
    strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", localtime(&now));
    snprintf(out, cap, "vae-%s-d%d-b%g-s%llu-%s.safetensors.zst", vae_arch_name(c->model.arch),
             c->model.latent, c->beta, (unsigned long long)c->seed, stamp);
}

static void request_save(App *a, TrainScreen *t)
{
    if (!t->job || t->snap->state == JOB_LOADING || t->snap->state == JOB_FAILED) {
        app_status(a, "no run to save: t starts one");
        return;
    }
    char path[256];
    save_name(&t->snap->cfg, path, sizeof path);
    job_request_save(t->job, path);
}

int train_screen_save_now(App *a)
{
    TrainScreen *t = a->train;
    request_save(a, t);
    char before[sizeof t->snap->saved_path];
    snprintf(before, sizeof before, "%s", t->snap->saved_path);
    for (int i = 0; i < 600; i++) { /* up to a minute: saving evaluates both test sets */
        job_snapshot(t->job, t->snap);
        if (strcmp(before, t->snap->saved_path) != 0) return 0;
        if (strncmp(t->snap->message, "save failed", 11) == 0) {
            app_status(a, "%s", t->snap->message);
            return -1;
        }
        nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL);
    }
    app_status(a, "save did not finish");
    return -1;
}

static int train_key(App *a, int key)
{
    TrainScreen *t = a->train;
    JobState s = t->snap->state;
    if (key == 't' || key == ' ') {
        if (!run_active(t)) start_run(a, t);
        else if (s == JOB_PAUSED) job_resume(t->job);
        else if (s == JOB_RUNNING) job_pause(t->job);
        return 1;
    }
    if (key == 'k') {
        if (run_active(t)) job_stop(t->job);
        return 1;
    }
    if (key == 's') {
        request_save(a, t);
        return 1;
    }
    if (key == 'l') {
        t->log_y = !t->log_y;
        return 1;
    }
    if (run_active(t) && strchr("adbewrp", key)) {
        app_status(a, "settings apply to the next run: stop this one first (k)");
        return 1;
    }
    return edit_setting(a, t, key);
}

/* ------------------------------------------------------------------ tick */

/* The app's model, reconstructed, when no run is shown. */
static int refresh_model_recon(App *a, TrainScreen *t)
{
    const StudyData *d = app_data(a);
    if (!d || !a->model.loaded || strcmp(t->recon_model, a->model.name) == 0) return 0;
    int32_t idx[JOB_RECON_N];
    study_showcase_digits(d, idx, JOB_RECON_N); /* the digits a run will show */
    Err e;
    if (vae_reserve(&a->model.vae, JOB_RECON_N, &e)) return 0;
    dataset_gather(&d->train_file, idx, JOB_RECON_N, t->recon_orig);
    vae_encode(&a->model.vae, t->recon_orig, JOB_RECON_N);
    vae_decode(&a->model.vae, a->model.vae.a.mu, JOB_RECON_N, t->recon_out);
    t->nrecon = JOB_RECON_N;
    snprintf(t->recon_model, sizeof t->recon_model, "%s", a->model.name);
    return 1;
}

/* A finished or stopped run becomes the model the other screens explore. */
static void adopt_run(App *a, TrainScreen *t)
{
    const TrainSnapshot *s = t->snap;
    Vae v;
    Err e;
    if (job_copy_weights(t->job, &v, &e)) return;
    char name[256];
    snprintf(name, sizeof name, "your run (%s d=%d β=%g, %d epochs)", vae_arch_name(s->cfg.model.arch),
             s->cfg.model.latent, s->cfg.beta, s->epoch);
    double bce = s->nepochs ? s->epochs[s->nepochs - 1].test_bce : -1;
    double kld = s->nepochs ? s->epochs[s->nepochs - 1].test_kld : -1;
    app_set_model(a, &v, name, s->cfg.beta, bce, kld);
    t->model_taken = 1;
}

static int train_tick(App *a)
{
    TrainScreen *t = a->train;
    int changed = 0;
    if (t->job && job_snapshot(t->job, t->snap)) {
        changed = 1;
        if (strcmp(t->snap->message, t->shown_message) != 0) {
            snprintf(t->shown_message, sizeof t->shown_message, "%s", t->snap->message);
            app_status(a, "%s", t->snap->message);
        }
        if (!t->model_taken && (t->snap->state == JOB_FINISHED || t->snap->state == JOB_STOPPED))
            adopt_run(a, t);
    }
    if (!t->job) changed |= refresh_model_recon(a, t);
    return changed;
}

/* ------------------------------------------------------------------ draw */

static void format_config(char *out, size_t cap, const TrainConfig *c)
{
    char warm[32] = "off";
    if (c->beta_warmup_epochs) snprintf(warm, sizeof warm, "%d epochs", c->beta_warmup_epochs);
    char limit[48] = "";
    if (c->train_limit) snprintf(limit, sizeof limit, " of %d images", c->train_limit);
    snprintf(out, cap, "a arch %s   d latent %d   b β %g   e epochs %d%s   w β warm-up %s   r seed %llu",
             vae_arch_name(c->model.arch), c->model.latent, c->beta, c->epochs, limit, warm,
             (unsigned long long)c->seed);
}

static void draw_header(App *a, TrainScreen *t, CellBuf *b, int x, int y, int w)
{
    char line[512];
    const TrainSnapshot *s = t->snap;
    if (!t->job) {
        if (a->model.loaded && a->model.test_bce >= 0)
            snprintf(line, sizeof line, "model %s · test BCE %.2f KLD %.2f per image — t trains a new VAE, p the demo preset",
                     a->model.name, a->model.test_bce, a->model.test_kld);
        else
            snprintf(line, sizeof line, "model %s — t trains a new VAE, p the demo preset",
                     a->model.loaded ? a->model.name : "none");
        cellbuf_text(b, x + 1, y, line, COLOR_DEFAULT, COLOR_DEFAULT, ATTR_BOLD);
        return;
    }
    int n = snprintf(line, sizeof line, "%s VAE · d=%d · β=%g · %zu params  ● %s  ",
                     vae_arch_name(s->cfg.model.arch), s->cfg.model.latent, s->cfg.beta, s->nparams,
                     job_state_name(s->state));
    int used = cellbuf_text(b, x + 1, y, line, COLOR_DEFAULT, COLOR_DEFAULT, ATTR_BOLD);
    (void)n;
    if (s->state == JOB_LOADING || s->state == JOB_FAILED) return;
    double loss = s->nhist ? s->hist_bce[s->nhist - 1] + train_beta_at(&s->cfg, s->epoch) * s->hist_kld[s->nhist - 1] : 0;
    /* a finished run shows its last epoch full, not the next one empty */
    int done = s->state == JOB_FINISHED;
    ProgressInfo p = {done ? s->cfg.epochs : s->epoch + 1, s->cfg.epochs,
                      done ? s->batches_per_epoch : s->batch_in_epoch, s->batches_per_epoch, loss,
                      s->images_per_second, s->state == JOB_RUNNING ? s->eta_seconds : -1};
    char bar[512];
    progress_format(bar, sizeof bar, &p, w - used - 2, a->pal.mode != DISPLAY_ASCII);
    cellbuf_text(b, x + 1 + used, y, bar, COLOR_DEFAULT, COLOR_DEFAULT, 0);
}

/* Exponential moving average of src into dst (n points). */
static void smooth(double *dst, const double *src, int n)
{
    double m = n ? src[0] : 0;
    for (int i = 0; i < n; i++) dst[i] = m = 0.95 * m + 0.05 * src[i];
}

typedef struct {
    double *x, *raw, *total, *bce, *kld;
    double ex[JOB_MAX_EPOCHS], etotal[JOB_MAX_EPOCHS], ebce[JOB_MAX_EPOCHS], ekld[JOB_MAX_EPOCHS];
    double ticks[JOB_MAX_EPOCHS];
} Curves;

static int build_curves(const TrainSnapshot *s, Curves *c)
{
    int n = s->nhist;
    double *mem = malloc((size_t)(n ? n : 1) * 6 * sizeof *mem);
    if (!mem) return -1;
    c->x = mem, c->raw = mem + n, c->total = mem + 2 * n, c->bce = mem + 3 * n, c->kld = mem + 4 * n;
    double *bce_raw = mem + 5 * n;
    int bpe = s->batches_per_epoch > 0 ? s->batches_per_epoch : 1;
    for (int i = 0; i < n; i++) {
        c->x[i] = (double)(i + 1) / bpe;
        float beta = train_beta_at(&s->cfg, i / bpe);
        c->raw[i] = s->hist_bce[i] + beta * s->hist_kld[i];
        bce_raw[i] = s->hist_bce[i];
        c->kld[i] = s->hist_kld[i];
    }
    smooth(c->total, c->raw, n);
    smooth(c->bce, bce_raw, n);
    smooth(c->kld, c->kld, n);
    for (int e = 0; e < s->nepochs; e++) {
        const EpochStats *st = &s->epochs[e];
        c->ex[e] = st->epoch;
        c->ebce[e] = st->test_bce;
        c->ekld[e] = st->test_kld;
        c->etotal[e] = st->test_bce + train_beta_at(&s->cfg, st->epoch - 1) * st->test_kld;
    }
    for (int e = 0; e < s->cfg.epochs && e < JOB_MAX_EPOCHS; e++) c->ticks[e] = e + 1;
    return 0;
}

#define PLOT_SERIES 7

/* The series and axes of the loss plot: train per step (raw dots and
 * smoothed lines), test per epoch (markers), x in epochs. */
static void plot_setup(const TrainScreen *t, const Curves *c, PlotSeries *series, PlotAxes *ax)
{
    const TrainSnapshot *s = t->snap;
    int n = s->nhist, ne = s->nepochs;
    const PlotSeries all[PLOT_SERIES] = {
        {c->x, c->raw, n, SERIES_DOTS, C_RAW, NULL},
        {c->x, c->total, n, SERIES_LINE, C_TOTAL, "train total"},
        {c->x, c->bce, n, SERIES_LINE, C_BCE, "BCE"},
        {c->x, c->kld, n, SERIES_LINE, C_KLD, "KLD"},
        {c->ex, c->etotal, ne, SERIES_MARKERS, C_TEST, "test"},
        {c->ex, c->ebce, ne, SERIES_MARKERS, C_BCE, NULL},
        {c->ex, c->ekld, ne, SERIES_MARKERS, C_KLD, NULL},
    };
    memcpy(series, all, sizeof all);
    int nt = s->cfg.epochs <= 50 ? s->cfg.epochs : 0;
    *ax = (PlotAxes){0, s->cfg.epochs, t->log_y, c->ticks, nt, "epoch"};
}

static void draw_plot(App *a, TrainScreen *t, CellBuf *b, int x, int y, int w, int h)
{
    const TrainSnapshot *s = t->snap;
    if (!t->job || s->nhist == 0) {
        const char *hint = t->job ? (s->state == JOB_FAILED ? s->message : "waiting for the first steps…")
                                  : "loss curves appear here while a run trains";
        cellbuf_text(b, x + 2, y + h / 2, hint, C_LABEL, COLOR_DEFAULT, 0);
        return;
    }
    Curves *c = malloc(sizeof *c);
    if (!c || build_curves(s, c)) {
        free(c);
        return;
    }
    PlotSeries series[PLOT_SERIES];
    PlotAxes ax;
    plot_setup(t, c, series, &ax);
    render_plot(b, x, y, w, h, &ax, series, PLOT_SERIES, &a->pal);
    free(c->x);
    free(c);
}

static void draw_readout(TrainScreen *t, CellBuf *b, int x, int y)
{
    const TrainSnapshot *s = t->snap;
    if (!t->job || s->nhist == 0) return;
    float beta = train_beta_at(&s->cfg, s->epoch < s->cfg.epochs ? s->epoch : s->cfg.epochs - 1);
    double bce = s->hist_bce[s->nhist - 1], kld = s->hist_kld[s->nhist - 1];
    char line[400];
    int n = snprintf(line, sizeof line, "step %lld · BCE %.1f KLD %.2f β·KLD %.2f total %.1f (%s)",
                     (long long)s->step, bce, kld, beta * kld, bce + beta * kld, t->log_y ? "log" : "linear");
    if (s->nepochs) {
        const EpochStats *e = &s->epochs[s->nepochs - 1];
        snprintf(line + n, sizeof line - (size_t)n, " │ test, epoch %d: BCE %.2f KLD %.2f", e->epoch,
                 e->test_bce, e->test_kld);
    }
    cellbuf_text(b, x + 1, y, line, C_LABEL, COLOR_DEFAULT, 0);
}

static void draw_recon(App *a, TrainScreen *t, CellBuf *b, int x, int y, int w)
{
    const float *orig = t->job ? t->snap->recon_orig : t->recon_orig;
    const float *out = t->job ? t->snap->recon_out : t->recon_out;
    int n = t->job ? t->snap->nrecon : t->nrecon;
    draw_box_title(b, x, y, w, "test digits (top) and their reconstructions (bottom)", &a->pal);
    if (n == 0) {
        cellbuf_text(b, x + 2, y + 1 + THUMB_H, app_data(a) ? "…" : app_data_missing(a), C_LABEL,
                     COLOR_DEFAULT, 0);
        return;
    }
    int fit = (w - 2) / THUMB_W;
    if (fit < n) n = fit;
    for (int i = 0; i < n; i++) {
        draw_thumb(b, x + 1 + i * THUMB_W, y + 1, orig + (size_t)i * 784, &a->pal);
        draw_thumb(b, x + 1 + i * THUMB_W, y + 1 + THUMB_H, out + (size_t)i * 784, &a->pal);
    }
}

static void train_draw(App *a, CellBuf *b, int x, int y, int w, int h)
{
    TrainScreen *t = a->train;
    char cfg[400];
    draw_header(a, t, b, x, y, w);
    format_config(cfg, sizeof cfg, run_active(t) ? &t->snap->cfg : &t->next);
    cellbuf_text(b, x + 1, y + 1, cfg, run_active(t) ? C_LABEL : COLOR_DEFAULT, COLOR_DEFAULT, 0);
    int plot_h = h - 3 - RECON_ROWS;
    draw_plot(a, t, b, x, y + 2, w, plot_h);
    draw_readout(t, b, x, y + 2 + plot_h);
    draw_recon(a, t, b, x, y + h - RECON_ROWS, w);
}

/* ---------------------------------------------------------------- export */

#define EXPORT_SCALE 2  /* image pixels per digit pixel */
#define EXPORT_CELL (28 * EXPORT_SCALE + 4)
#define EXPORT_PLOT_H 360

/* A digit, magnified, into an RGB canvas of width w at (x0, y0). */
static void paint_digit(uint8_t *rgb, int w, int x0, int y0, const float *img)
{
    for (int r = 0; r < 28 * EXPORT_SCALE; r++)
        for (int c = 0; c < 28 * EXPORT_SCALE; c++) {
            float v = img[(r / EXPORT_SCALE) * 28 + c / EXPORT_SCALE];
            uint8_t g = (uint8_t)lrintf(fminf(fmaxf(v, 0.0f), 1.0f) * 255.0f);
            memset(rgb + ((size_t)(y0 + r) * (size_t)w + (size_t)(x0 + c)) * 3, g, 3);
        }
}

/* One PNG: the test digits above their reconstructions, then the loss
 * curves as on screen (colours as on screen, no text). */
static int train_export(App *a, const char *path, Err *e)
{
    TrainScreen *t = a->train;
    const float *orig = t->job ? t->snap->recon_orig : t->recon_orig;
    const float *out = t->job ? t->snap->recon_out : t->recon_out;
    int n = t->job ? t->snap->nrecon : t->nrecon;
    if (n == 0) return err_set(e, "no digits on screen yet");
    int has_plot = t->job && t->snap->nhist > 0;
    int w = n * EXPORT_CELL + 4, digits_h = 2 * EXPORT_CELL + 4;
    int h = digits_h + (has_plot ? EXPORT_PLOT_H : 0);
    uint8_t *rgb = calloc((size_t)w * (size_t)h * 3, 1);
    if (!rgb) return err_set(e, "out of memory");
    for (int i = 0; i < n; i++) {
        paint_digit(rgb, w, 4 + i * EXPORT_CELL, 4, orig + (size_t)i * 784);
        paint_digit(rgb, w, 4 + i * EXPORT_CELL, 4 + EXPORT_CELL, out + (size_t)i * 784);
    }
    int rc = 0;
    if (has_plot) {
        Curves *c = malloc(sizeof *c);
        if (!c || build_curves(t->snap, c)) rc = err_set(e, "out of memory");
        else {
            PlotSeries series[PLOT_SERIES];
            PlotAxes ax;
            plot_setup(t, c, series, &ax);
            if (render_plot_rgb(rgb + (size_t)digits_h * (size_t)w * 3, w, EXPORT_PLOT_H, &ax, series,
                                PLOT_SERIES))
                rc = err_set(e, "cannot draw the plot");
            free(c->x);
        }
        free(c);
    }
    if (rc == 0) rc = image_write_rgb_png(path, rgb, w, h, e);
    free(rgb);
    return rc;
}

const Screen screen_train = {"Train", train_draw, train_key, train_tick, train_export,
                             train_keys, sizeof train_keys / sizeof *train_keys, NULL};
