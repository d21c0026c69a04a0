/* app.h — the TUI's shared state and the screen interface (private to src/tui).
 *
 * One App, one Screen struct per screen (htop's ScreenManager shape): the
 * app draws the top bar, key bar, status line and overlays; a screen draws
 * its body and answers its own keys. Global keys are tried first. */
#ifndef GENLAB_TUI_APP_H
#define GENLAB_TUI_APP_H

#include <pthread.h>
#include <stdatomic.h>

#include "genlab/job.h"
#include "genlab/latent.h"
#include "genlab/render.h"
#include "genlab/train.h"
#include "genlab/tui.h"

#define MIN_COLS 100
#define MIN_ROWS 30

typedef struct App App;

typedef struct {
    const char *key;  /* as shown: "t", "←/→", "PgUp" */
    const char *what; /* "start / pause / resume" */
} KeyHelp;

typedef struct {
    const char *name;
    /* Draws the body: the area between the top bar and the key bar. */
    void (*draw)(App *a, CellBuf *b, int x, int y, int w, int h);
    /* Returns 1 when it used the key. */
    int (*key)(App *a, int key);
    /* Called every loop turn; returns 1 when the screen needs redrawing. */
    int (*tick)(App *a);
    /* Writes what the screen shows as a PNG; NULL when nothing to export. */
    int (*export_png)(App *a, const char *path, Err *e);
    const KeyHelp *keys;
    int nkeys;
    /* NULL, or 1 while the screen waits for the second key of a prefix
     * (the Latent screen's c then a digit): that key goes to it first. */
    int (*claims_next_key)(App *a);
} Screen;

/* The model the screens explore: a shipped or saved checkpoint, or the
 * run just trained. */
typedef struct {
    int loaded;
    Vae vae;
    char name[256];    /* "vae-conv-d2-b1 (shipped)", "your run" … */
    float beta;
    double test_bce, test_kld; /* from the checkpoint's metadata; < 0 unknown */
} CurrentModel;

/* Each screen's own state (in its file). */
typedef struct TrainScreen TrainScreen;
typedef struct LatentScreen LatentScreen;
typedef struct GenerateScreen GenerateScreen;
typedef struct CompareScreen CompareScreen;
typedef struct DiffusionScreen DiffusionScreen;

struct App {
    TuiOptions opts;
    Palette pal;
    int running;
    int screen;
    int overlay; /* OVERLAY_* */
    int load_sel;
    char status[512];
    double status_until;
    CurrentModel model;
    /* MNIST, loaded in the background so the first frame comes at once */
    StudyData *data;
    atomic_int data_state; /* 0 loading, 1 ready, -1 failed */
    char data_error[512];
    pthread_t loader;
    int loader_started;
    TrainScreen *train;
    LatentScreen *latent;
    GenerateScreen *generate;
    CompareScreen *compare;
    DiffusionScreen *diffusion; /* NULL until screen 5 is first drawn */
    uint64_t model_version; /* bumped whenever the current model changes */
    /* checkpoints offered by the load list */
    int nfiles;
    char files[64][512];
};

enum { OVERLAY_NONE, OVERLAY_HELP, OVERLAY_QUIT, OVERLAY_LOAD };

extern const Screen screen_train;
extern const Screen screen_latent, screen_generate, screen_compare, screen_diffusion;

/* A message on the status line for a few seconds. */
void app_status(App *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The data, or NULL while it loads (or if it failed: see data_error). */
const StudyData *app_data(App *a);
/* What to show where the data is missing: "loading MNIST…" or why it failed. */
const char *app_data_missing(App *a);
/* Makes `path` the current model; on failure the old one stays and the
 * status line says why. */
int app_load_model(App *a, const char *path);
/* Replaces the current model with a copy of weights (name shown as given). */
void app_set_model(App *a, const Vae *weights, const char *name, float beta, double bce,
                   double kld);

LatentScreen *latent_screen_new(void);
void latent_screen_free(LatentScreen *l);
GenerateScreen *generate_screen_new(void);
CompareScreen *compare_screen_new(void);
void compare_screen_free(CompareScreen *c);
void generate_screen_free(GenerateScreen *g);
/* Stops the Diffusion screen's sampling and frees its state (at exit). */
void diffusion_screen_free(DiffusionScreen *d);
/* Shows the DDPM of `path` on the Diffusion screen; -1 when it cannot be
 * loaded (the screen then says why). */
int diffusion_screen_open(App *a, const char *path);

/* Colours of the ten digit classes (scatter points, legends). */
extern const int16_t digit_colors[10];
/* A 28×28 digit cropped by 2 pixels a side and drawn as a 12×6 thumbnail. */
void draw_thumb(CellBuf *b, int x, int y, const float *img, const Palette *p);
#define THUMB_W 12
#define THUMB_H 6
/* Points (u[i], v[i]) seen through `view`, as braille dots in the w × h
 * cells at (x, y), each in its digit's colour; points outside are left out. */
void draw_digit_scatter(CellBuf *b, int x, int y, int w, int h, const View *view, const double *u,
                        const double *v, const uint8_t *labels, int n);

/* Train screen hooks the app needs. */
TrainScreen *train_screen_new(void);
void train_screen_free(TrainScreen *t);
/* 1 when a run has steps that were not saved. */
int train_screen_unsaved(const App *a);
/* Saves the run (blocking until the worker reports), for "save and quit". */
int train_screen_save_now(App *a);

/* Small drawing helpers shared by screens (app.c). */
void draw_box_title(CellBuf *b, int x, int y, int w, const char *title, const Palette *p);
/* Pads or cuts a UTF-8 string to exactly `w` columns into out. */
void fit_text(char *out, size_t cap, const char *s, int w);
double app_now(void);

#endif
