/* screen_diffusion.c — a DDPM chain played like a film: a grid of chains,
 * each x_t beside the x̂₀ the network predicted, the step, ᾱ_t and the
 * noise level, the schedule with the current t marked; and, behind v, the
 * study's comparison of one VAE decoder pass against T network passes.
 *
 * A sampling job (ddpm_job.h) runs the chain on worker threads ahead of
 * the playhead and keeps every frame as bytes, so the playhead moves
 * freely over what is sampled and waits at its edge. A job being replaced
 * is only asked to stop, and joined once its current step is over, so that
 * no key waits for a network pass.
 *
 * The model: $GENLAB_DDPM_CKPT, else the shipped checkpoints/ddpm.safetensors.zst,
 * loaded the first time the screen is drawn (App.diffusion is made then). */
#include <curses.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app.h"
#include "genlab/ddpm.h"
#include "genlab/ddpm_job.h"
#include "genlab/image.h"
#include "genlab/paths.h"
#include "genlab/term.h"

#define MAX_CHAINS 16
#define MAX_RETIRED 4
#define SIDE 28
#define PIXELS (SIDE * SIDE)

enum {
    PAIR_W = 2 * THUMB_W + 3, /* x_t, a gap, x̂₀, a gutter */
    PAIR_H = THUMB_H + 1,
    PLOT_W = 36,              /* the schedule plot at the right */
    PLOT_H = 12,
    HEAD_H = 4,               /* two readout lines, a blank, the column labels */
    BAR_W = 20,               /* the noise-level bar */
    JUMP_STEPS = 100,         /* PgUp / PgDn */
};

static const int ddim_steps[] = {10, 20, 50, 100, 250};
#define DDIM_DEFAULT 2 /* 50 steps: a chain plays in seconds */
static const double speeds[] = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000}; /* frames per second */
#define NSPEEDS ((int)(sizeof speeds / sizeof *speeds))

enum { C_XT = 45, C_NOISE = 208, C_MARK = 231, C_DIM = 245, C_WARN = 203 };

struct DiffusionScreen {
    /* the model, loaded the first time the screen is drawn */
    int loaded;
    char missing[1024]; /* why there is no model: shown under the line saying what to do */
    char model_name[256];
    Unet unet;
    Schedule sched;
    double *plot_t, *plot_abar, *plot_noise; /* [T]: the schedule plot's series */

    /* the chain */
    DdpmJob *job;
    DdpmJob *retired[MAX_RETIRED]; /* asked to stop; freed once finished */
    int start_failed;              /* no retry until a key asks for a new chain */
    SamplerKind sampler;
    int ddim_choice;               /* index into ddim_steps */
    uint64_t seed;
    DdpmJobStatus status;          /* as of the last tick */

    /* playback */
    double pos;                    /* playhead, in frames */
    int playing;
    int speed;                     /* index into speeds */
    double last_tick;

    /* VAE vs DDPM */
    int comparing;
    int vae_n;
    uint64_t vae_model_version, vae_seed;
    double vae_seconds;
    float vae_digits[MAX_CHAINS * PIXELS];
};

static const KeyHelp diffusion_keys[] = {
    {"Space", "play/pause"},   {"←/→", "frame"},     {"PgUp/PgDn", "±100 steps"},
    {"Home/End g/G", "first/last"}, {"+/−", "speed"},     {"n", "new seed"},
    {"m", "DDPM/DDIM"},         {"s", "DDIM steps"},  {"v", "VAE vs DDPM"},
};

/* ----------------------------------------------------------------- model */

static int no_model(DiffusionScreen *v, const char *why)
{
    snprintf(v->missing, sizeof v->missing, "%.1000s", why);
    return -1;
}

static int make_plot_series(DiffusionScreen *v)
{
    const int T = v->sched.T;
    v->plot_t = malloc((size_t)T * sizeof *v->plot_t);
    v->plot_abar = malloc((size_t)T * sizeof *v->plot_abar);
    v->plot_noise = malloc((size_t)T * sizeof *v->plot_noise);
    if (!v->plot_t || !v->plot_abar || !v->plot_noise) return -1;
    for (int i = 0; i < T; i++) {
        v->plot_t[i] = i + 1; /* the paper's step of index i */
        v->plot_abar[i] = v->sched.alpha_bar[i];
        v->plot_noise[i] = sqrt(1.0 - v->sched.alpha_bar[i]);
    }
    return 0;
}

static void set_model_name(DiffusionScreen *v, const char *path)
{
    const char *base = strrchr(path, '/');
    snprintf(v->model_name, sizeof v->model_name, "%.200s", base ? base + 1 : path);
    char *ext = strstr(v->model_name, ".safetensors.zst");
    if (ext) *ext = '\0';
}

/* path's DDPM into v; on failure v->missing says why. */
static int load_model_from(DiffusionScreen *v, const char *path)
{
    Err e;
    if (access(path, F_OK) != 0) {
        char why[4200];
        snprintf(why, sizeof why, "Not found: %s", path);
        return no_model(v, why);
    }
    Checkpoint ck;
    if (ddpm_load_checkpoint(path, &v->unet, &v->sched, &ck, &e)) return no_model(v, e.msg);
    ckpt_free(&ck);
    /* unload_model releases the model and the series, whatever happens next */
    if (v->unet.cfg.size != SIDE) return no_model(v, "Its images are not 28×28.");
    if (make_plot_series(v)) return no_model(v, "Out of memory.");
    set_model_name(v, path);
    v->loaded = 1;
    return 0;
}

/* $GENLAB_DDPM_CKPT or the shipped DDPM. */
static int load_model(DiffusionScreen *v)
{
    char path[4096];
    Err e;
    const char *env = getenv("GENLAB_DDPM_CKPT");
    if (env && *env) snprintf(path, sizeof path, "%s", env);
    else if (paths_default_ddpm(path, sizeof path, &e)) return no_model(v, e.msg);
    return load_model_from(v, path);
}

static void free_jobs(DiffusionScreen *v);

/* Every job joined first: they run on the model's weights. */
static void unload_model(DiffusionScreen *v)
{
    free_jobs(v);
    unet_free(&v->unet);
    schedule_free(&v->sched);
    free(v->plot_t), free(v->plot_abar), free(v->plot_noise);
    v->plot_t = v->plot_abar = v->plot_noise = NULL;
    v->loaded = v->comparing = v->start_failed = 0;
}

/* ----------------------------------------------------------------- chain */

static int plan_steps(const DiffusionScreen *v)
{
    int k = ddim_steps[v->ddim_choice];
    return v->sampler == SAMPLER_DDPM || k > v->sched.T ? v->sched.T : k;
}

/* The slowest speed at which the whole chain plays within about 4 s. */
static int default_speed(int frames)
{
    int i = 0;
    while (i + 1 < NSPEEDS && speeds[i] * 4 < frames) i++;
    return i;
}

/* Frees the retired jobs that have finished their last step. */
static void reap_retired(DiffusionScreen *v)
{
    for (int i = 0; i < MAX_RETIRED; i++)
        if (v->retired[i] && ddpm_job_finished(v->retired[i])) {
            ddpm_job_free(v->retired[i]);
            v->retired[i] = NULL;
        }
}

/* Asks the current job to stop and parks it until it has; with every
 * place taken, waits for the oldest (rare: four replacements within one
 * network pass). */
static void retire_job(DiffusionScreen *v)
{
    if (!v->job) return;
    ddpm_job_request_stop(v->job);
    reap_retired(v);
    int slot = 0;
    while (slot < MAX_RETIRED && v->retired[slot]) slot++;
    if (slot == MAX_RETIRED) {
        ddpm_job_free(v->retired[0]);
        slot = 0;
    }
    v->retired[slot] = v->job;
    v->job = NULL;
}

static void start_chain(App *a, DiffusionScreen *v, int chains)
{
    retire_job(v);
    DdpmJobConfig c = {.sampler = v->sampler, .steps = plan_steps(v), .seed = v->seed, .chains = chains};
    Err e;
    v->job = ddpm_job_start(&v->unet, &v->sched, &c, &e);
    v->start_failed = v->job == NULL;
    if (!v->job) {
        app_status(a, "cannot sample: %s", e.msg);
        return;
    }
    ddpm_job_status(v->job, &v->status);
    v->pos = 0;
    v->playing = 1;
    v->speed = default_speed(v->status.frames_total);
    v->last_tick = app_now();
}

static int current_frame(const DiffusionScreen *v) { return (int)v->pos; }

/* The playhead onto frame f, kept within what is sampled. */
static void seek(DiffusionScreen *v, int f)
{
    int last = v->status.frames_ready - 1;
    v->pos = f < 0 ? 0 : f > last ? last : f;
}

/* The frame `steps` diffusion steps forward (towards t = 0) or back. */
static int frame_steps_away(const DiffusionScreen *v, int steps)
{
    const SamplerPlan *p = ddpm_job_plan(v->job);
    int f = current_frame(v), target = ddpm_frame_step(p, f) - steps;
    if (steps > 0)
        while (f < p->K && ddpm_frame_step(p, f) > target) f++;
    else
        while (f > 0 && ddpm_frame_step(p, f) < target) f--;
    return f;
}

/* ------------------------------------------------------------- drawing */

static void bytes_to_unit(const uint8_t *in, float *out, int n)
{
    for (int i = 0; i < n; i++) out[i] = in[i] / 255.0f;
}

static void draw_byte_thumb(App *a, CellBuf *b, int x, int y, const uint8_t *img)
{
    float px[PIXELS];
    bytes_to_unit(img, px, PIXELS);
    draw_thumb(b, x, y, px, &a->pal);
}

static const char *sampler_label(const SamplerPlan *p, char *out, size_t cap)
{
    if (p->kind == SAMPLER_DDPM) snprintf(out, cap, "DDPM ancestral, all %d steps", p->K);
    else snprintf(out, cap, "DDIM η=0, %d steps", p->K);
    return out;
}

/* "noise ██████░░░░ 0.62": √(1 − ᾱ), the weight of the noise in x_t;
 * returns the columns used. */
static int draw_noise_bar(App *a, CellBuf *b, int x, int y, double noise)
{
    const int x0 = x;
    int ascii = a->pal.mode == DISPLAY_ASCII;
    int fill = (int)lround(noise * BAR_W);
    x += cellbuf_text(b, x, y, "noise ", COLOR_DEFAULT, COLOR_DEFAULT, 0);
    for (int i = 0; i < BAR_W; i++) {
        Cell *c = cellbuf_at(b, x + i, y);
        if (c) *c = (Cell){i < fill ? (ascii ? '#' : 0x2588) : (ascii ? '.' : 0x2591), C_NOISE, COLOR_DEFAULT, 0};
    }
    char num[32];
    snprintf(num, sizeof num, " %.3f", noise);
    return x + BAR_W + cellbuf_text(b, x + BAR_W, y, num, COLOR_DEFAULT, COLOR_DEFAULT, 0) - x0;
}

static void draw_readout(App *a, DiffusionScreen *v, CellBuf *b, int x, int y)
{
    const SamplerPlan *p = ddpm_job_plan(v->job);
    const DdpmJobStatus *s = &v->status;
    const int f = current_frame(v);
    char line[512], name[96];
    snprintf(line, sizeof line, "model %s · %s · seed %llu · %d chains · frame %d/%d · %s %g frames/s",
             v->model_name, sampler_label(p, name, sizeof name), (unsigned long long)v->seed,
             ddpm_job_config(v->job)->chains, f, s->frames_total - 1, v->playing ? "▶ playing" : "‖ paused",
             speeds[v->speed]);
    cellbuf_text(b, x, y, line, COLOR_DEFAULT, COLOR_DEFAULT, ATTR_BOLD);
    const double abar = ddpm_frame_alpha_bar(p, f);
    snprintf(line, sizeof line, "t = %-4d of %d   ᾱ_t = %.4f   ", ddpm_frame_step(p, f), v->sched.T, abar);
    int col = x + cellbuf_text(b, x, y + 1, line, COLOR_DEFAULT, COLOR_DEFAULT, 0);
    col += draw_noise_bar(a, b, col, y + 1, sqrt(1.0 - abar)) + 3;
    if (s->state == DDPM_JOB_FAILED) snprintf(line, sizeof line, "sampling failed: %.480s", s->message);
    else snprintf(line, sizeof line, "sampled %d/%d in %.1f s", s->frames_ready, s->frames_total, s->seconds);
    cellbuf_text(b, col, y + 1, line, C_DIM, COLOR_DEFAULT, 0);
}

static int chains_that_fit(int w, int h, int *cols)
{
    *cols = (w - PLOT_W - 2) / PAIR_W;
    if (*cols < 1) *cols = 1;
    int rows = (h - HEAD_H) / PAIR_H;
    if (rows < 1) rows = 1;
    int n = *cols * rows;
    return n > MAX_CHAINS ? MAX_CHAINS : n;
}

static void draw_chain_grid(App *a, DiffusionScreen *v, CellBuf *b, int x, int y, int cols)
{
    const int f = current_frame(v), B = ddpm_job_config(v->job)->chains;
    const uint8_t *xt = ddpm_job_xt(v->job, f), *x0 = ddpm_job_x0(v->job, f);
    for (int c = 0; c < cols && c < B; c++) {
        cellbuf_text(b, x + c * PAIR_W + 4, y, "x_t", C_XT, COLOR_DEFAULT, ATTR_BOLD);
        cellbuf_text(b, x + c * PAIR_W + THUMB_W + 5, y, "pred. x₀", C_DIM, COLOR_DEFAULT, ATTR_BOLD);
    }
    for (int i = 0; i < B; i++) {
        int cx = x + (i % cols) * PAIR_W, cy = y + 1 + (i / cols) * PAIR_H;
        draw_byte_thumb(a, b, cx, cy, xt + (size_t)i * PIXELS);
        draw_byte_thumb(a, b, cx + THUMB_W + 1, cy, x0 + (size_t)i * PIXELS);
    }
}

/* ᾱ_t and √(1 − ᾱ_t) against t, with a marker at the playhead's t. */
static void draw_schedule(App *a, DiffusionScreen *v, CellBuf *b, int x, int y, int w, int h)
{
    const SamplerPlan *p = ddpm_job_plan(v->job);
    const int f = current_frame(v);
    double mt = ddpm_frame_step(p, f), ma = ddpm_frame_alpha_bar(p, f);
    const int T = v->sched.T;
    PlotSeries series[] = {
        {v->plot_t, v->plot_abar, T, SERIES_LINE, C_XT, "ᾱ_t"},
        {v->plot_t, v->plot_noise, T, SERIES_LINE, C_NOISE, "noise"},
        {&mt, &ma, 1, SERIES_MARKERS, C_MARK, "now"},
    };
    PlotAxes ax = {.x_min = 0, .x_max = T, .x_label = "t"};
    cellbuf_text(b, x, y, "schedule vs t", COLOR_DEFAULT, COLOR_DEFAULT, ATTR_BOLD);
    render_plot(b, x, y + 1, w, h, &ax, series, 3, &a->pal);
    char line[96];
    snprintf(line, sizeof line, "%s, T = %d", schedule_kind_name(v->sched.kind), T);
    cellbuf_text(b, x, y + h + 1, line, C_DIM, COLOR_DEFAULT, 0);
    snprintf(line, sizeof line, "the sampler visits %d of %d", p->K, T);
    cellbuf_text(b, x, y + h + 2, line, C_DIM, COLOR_DEFAULT, 0);
}

static void draw_chains(App *a, DiffusionScreen *v, CellBuf *b, int x, int y, int w, int h)
{
    int cols;
    chains_that_fit(w, h, &cols);
    draw_readout(a, v, b, x + 1, y);
    draw_chain_grid(a, v, b, x + 1, y + HEAD_H - 1, cols);
    int plot_h = h - HEAD_H - 3 < PLOT_H ? h - HEAD_H - 3 : PLOT_H;
    draw_schedule(a, v, b, x + w - PLOT_W, y + HEAD_H - 1, PLOT_W - 1, plot_h);
}

/* ---------------------------------------------------------- VAE vs DDPM */

/* n digits from the app's current VAE (one decoder pass), timed. */
static void sample_vae(App *a, DiffusionScreen *v, int n)
{
    Err e;
    double t0 = app_now();
    int rc = vae_sample_prior(&a->model.vae, v->seed, 1.0f, n, v->vae_digits, &e);
    v->vae_seconds = app_now() - t0;
    v->vae_n = rc ? 0 : n;
    v->vae_model_version = a->model_version;
    v->vae_seed = v->seed;
    if (rc) app_status(a, "%s", e.msg);
}

static void format_seconds(char *out, size_t cap, double s)
{
    if (s < 1e-3) snprintf(out, cap, "%.0f µs", s * 1e6);
    else if (s < 1) snprintf(out, cap, "%.2f ms", s * 1e3);
    else snprintf(out, cap, "%.2f s", s);
}

/* Grid rows that n thumbnails take in `cols` columns. */
static int grid_rows(int n, int cols) { return (n + cols - 1) / cols; }

static void draw_vae_side(App *a, DiffusionScreen *v, CellBuf *b, int x, int y, int cols)
{
    char line[512], took[32];
    snprintf(line, sizeof line, "VAE %s: one decoder pass", a->model.name);
    cellbuf_text(b, x, y, line, COLOR_DEFAULT, COLOR_DEFAULT, ATTR_BOLD);
    for (int i = 0; i < v->vae_n; i++)
        draw_thumb(b, x + (i % cols) * THUMB_W, y + 2 + (i / cols) * THUMB_H, v->vae_digits + (size_t)i * PIXELS,
                   &a->pal);
    format_seconds(took, sizeof took, v->vae_seconds);
    snprintf(line, sizeof line, "VAE: %d digits in %s", v->vae_n, took);
    cellbuf_text(b, x, y + 3 + grid_rows(v->vae_n, cols) * THUMB_H, line, C_XT, COLOR_DEFAULT, ATTR_BOLD);
}

static void draw_ddpm_side(App *a, DiffusionScreen *v, CellBuf *b, int x, int y, int cols)
{
    const SamplerPlan *p = ddpm_job_plan(v->job);
    const DdpmJobStatus *s = &v->status;
    const int B = ddpm_job_config(v->job)->chains;
    char line[512], name[96], took[32];
    snprintf(line, sizeof line, "DDPM, %s: %d U-Net passes", sampler_label(p, name, sizeof name), p->K);
    cellbuf_text(b, x, y, line, COLOR_DEFAULT, COLOR_DEFAULT, ATTR_BOLD);
    const uint8_t *latest = ddpm_job_xt(v->job, s->frames_ready - 1);
    for (int i = 0; i < B; i++)
        draw_byte_thumb(a, b, x + (i % cols) * THUMB_W, y + 2 + (i / cols) * THUMB_H, latest + (size_t)i * PIXELS);
    format_seconds(took, sizeof took, s->seconds);
    const int threads = ddpm_job_config(v->job)->threads;
    if (s->state == DDPM_JOB_DONE)
        snprintf(line, sizeof line, "DDPM: %d digits in %s (%d thread%s)", B, took, threads, threads > 1 ? "s" : "");
    else if (s->state == DDPM_JOB_FAILED)
        snprintf(line, sizeof line, "DDPM: sampling failed: %.400s", s->message);
    else
        snprintf(line, sizeof line, "DDPM: sampling, step %d of %d, %s so far…", s->frames_ready - 1, p->K, took);
    cellbuf_text(b, x, y + 3 + grid_rows(B, cols) * THUMB_H, line, C_NOISE, COLOR_DEFAULT, ATTR_BOLD);
}

static void draw_comparison(App *a, DiffusionScreen *v, CellBuf *b, int x, int y, int w, int h)
{
    const int B = ddpm_job_config(v->job)->chains, half = w / 2;
    int cols = (half - 2) / THUMB_W;
    if (cols > 8) cols = 8;
    if (!a->model.loaded) {
        cellbuf_text(b, x + 1, y, "no VAE to compare with: o opens a checkpoint", C_WARN, COLOR_DEFAULT, 0);
        return;
    }
    if (v->vae_n != B || v->vae_model_version != a->model_version || v->vae_seed != v->seed) sample_vae(a, v, B);
    draw_vae_side(a, v, b, x + 1, y, cols);
    draw_ddpm_side(a, v, b, x + half + 1, y, cols);
    const DdpmJobStatus *s = &v->status;
    if (s->state == DDPM_JOB_DONE && v->vae_n && v->vae_seconds > 0) {
        char line[256];
        snprintf(line, sizeof line, "the same %d digits: the DDPM took %.0f× the VAE's wall time "
                 "(one decoder pass against %d network passes)", B, s->seconds / v->vae_seconds,
                 ddpm_job_plan(v->job)->K);
        cellbuf_text(b, x + 1, y + h - 2, line, COLOR_DEFAULT, COLOR_DEFAULT, 0);
    }
    cellbuf_text(b, x + 1, y + h - 1, "v or Esc: back to the chains", C_DIM, COLOR_DEFAULT, 0);
}

/* ---------------------------------------------------------------- screen */

/* Made and loaded the first time the screen is drawn. */
static DiffusionScreen *the_view(App *a)
{
    if (!a->diffusion && (a->diffusion = calloc(1, sizeof *a->diffusion))) {
        a->diffusion->sampler = SAMPLER_DDIM;
        a->diffusion->ddim_choice = DDIM_DEFAULT;
        load_model(a->diffusion);
    }
    return a->diffusion;
}

static void diffusion_draw(App *a, CellBuf *b, int x, int y, int w, int h)
{
    DiffusionScreen *v = the_view(a);
    if (!v || !v->loaded) {
        /* what to do first, then why on its own line: a long path must not hide it */
        cellbuf_text(b, x + 2, y + 2, "No DDPM model: train one (genlab ddpm train) or set GENLAB_DDPM_CKPT=FILE.",
                     C_WARN, COLOR_DEFAULT, ATTR_BOLD);
        cellbuf_text(b, x + 2, y + 3, v ? v->missing : "Out of memory.", C_WARN, COLOR_DEFAULT, 0);
        return;
    }
    int cols, want = chains_that_fit(w, h, &cols);
    /* a new size gives a new grid: the first chains stay the same (chain b
     * depends on the seed and b only) */
    if (v->job ? ddpm_job_config(v->job)->chains != want : !v->start_failed) start_chain(a, v, want);
    if (!v->job) {
        cellbuf_text(b, x + 2, y + 2, "cannot sample (see the status line); n tries again", C_WARN,
                     COLOR_DEFAULT, 0);
        return;
    }
    if (v->comparing) draw_comparison(a, v, b, x, y, w, h);
    else draw_chains(a, v, b, x, y, w, h);
}

static void change_speed(DiffusionScreen *v, int by)
{
    int s = v->speed + by;
    v->speed = s < 0 ? 0 : s >= NSPEEDS ? NSPEEDS - 1 : s;
}

/* Keys that start a new chain: seed, sampler, DDIM steps. */
static int chain_key(App *a, DiffusionScreen *v, int key)
{
    if (key == 'n') v->seed++;
    else if (key == 'm') v->sampler = v->sampler == SAMPLER_DDIM ? SAMPLER_DDPM : SAMPLER_DDIM;
    else if (key == 's') {
        if (v->sampler == SAMPLER_DDIM) v->ddim_choice = (v->ddim_choice + 1) % (int)(sizeof ddim_steps / sizeof *ddim_steps);
        v->sampler = SAMPLER_DDIM;
    } else return 0;
    start_chain(a, v, v->job ? ddpm_job_config(v->job)->chains : 1);
    return 1;
}

/* Playback keys; stepping pauses. */
static int playback_key(DiffusionScreen *v, int key)
{
    int f = current_frame(v), last = v->status.frames_total - 1;
    switch (key) {
    case ' ':
        v->playing = !v->playing;
        if (v->playing && f == last) v->pos = 0;
        return 1;
    case TERM_FKEY(KEY_RIGHT): v->playing = 0, seek(v, f + 1); return 1;
    case TERM_FKEY(KEY_LEFT): v->playing = 0, seek(v, f - 1); return 1;
    case TERM_FKEY(KEY_NPAGE): seek(v, frame_steps_away(v, JUMP_STEPS)); return 1;
    case TERM_FKEY(KEY_PPAGE): seek(v, frame_steps_away(v, -JUMP_STEPS)); return 1;
    case TERM_FKEY(KEY_HOME): case 'g': seek(v, 0); return 1;
    case TERM_FKEY(KEY_END): case 'G': seek(v, last); return 1;
    case '+': case '=': change_speed(v, 1); return 1;
    case '-': case '_': change_speed(v, -1); return 1;
    }
    return 0;
}

static int diffusion_key(App *a, int key)
{
    DiffusionScreen *v = a->diffusion;
    if (!v || !v->loaded) return 0;
    if (v->comparing && (key == 'v' || key == 27)) return v->comparing = 0, 1;
    if (key == 'v' && v->job) return v->comparing = 1, 1;
    if (chain_key(a, v, key)) return 1;
    return v->job && playback_key(v, key);
}

/* Moves the playhead by the time since the last turn, up to the last
 * frame sampled; stops at the end. */
static int advance_playhead(DiffusionScreen *v, double now)
{
    double dt = now - v->last_tick;
    v->last_tick = now;
    if (!v->playing) return 0;
    if (dt > 0.25) dt = 0.05; /* back on this screen after a while: no jump */
    int before = current_frame(v);
    v->pos += dt * speeds[v->speed];
    if (v->pos > v->status.frames_ready - 1) v->pos = v->status.frames_ready - 1;
    if (current_frame(v) == v->status.frames_total - 1) v->playing = 0;
    return current_frame(v) != before || !v->playing;
}

static int diffusion_tick(App *a)
{
    DiffusionScreen *v = a->diffusion;
    if (!v) return 0;
    reap_retired(v);
    if (!v->job) return 0;
    DdpmJobStatus s;
    ddpm_job_status(v->job, &s);
    int changed = s.frames_ready != v->status.frames_ready || s.state != v->status.state;
    /* the comparison's clock runs while the chain samples */
    changed |= v->comparing && s.state == DDPM_JOB_RUNNING;
    v->status = s;
    return advance_playhead(v, app_now()) | changed;
}

/* The current frame: x_t of every chain in the top row, x̂₀ below. */
static int diffusion_export(App *a, const char *path, Err *e)
{
    DiffusionScreen *v = a->diffusion;
    if (!v || !v->job) return err_set(e, "no chain on screen");
    const int B = ddpm_job_config(v->job)->chains, f = current_frame(v);
    uint8_t *bytes = malloc(2 * (size_t)B * PIXELS);
    if (!bytes) return err_set(e, "out of memory");
    memcpy(bytes, ddpm_job_xt(v->job, f), (size_t)B * PIXELS);
    memcpy(bytes + (size_t)B * PIXELS, ddpm_job_x0(v->job, f), (size_t)B * PIXELS);
    int rc = image_write(path, bytes, 2 * B, SIDE, B, e);
    free(bytes);
    return rc;
}

static void free_jobs(DiffusionScreen *v)
{
    ddpm_job_free(v->job);
    v->job = NULL;
    for (int i = 0; i < MAX_RETIRED; i++) {
        ddpm_job_free(v->retired[i]);
        v->retired[i] = NULL;
    }
}

int diffusion_screen_open(App *a, const char *path)
{
    DiffusionScreen *v = the_view(a);
    if (!v) return -1;
    unload_model(v);
    return load_model_from(v, path);
}

void diffusion_screen_free(DiffusionScreen *v)
{
    if (!v) return;
    unload_model(v);
    free(v);
}

const Screen screen_diffusion = {"Diffusion", diffusion_draw, diffusion_key, diffusion_tick, diffusion_export,
                                 diffusion_keys, sizeof diffusion_keys / sizeof *diffusion_keys, NULL};
