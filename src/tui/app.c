/* app.c — the TUI's shell: main loop, global keys, top bar, key bar,
 * status line, overlays (help, quit, load), and the current model. */
#include "app.h"

#include <curses.h>
#include <dirent.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "genlab/paths.h"
#include "genlab/progress.h"
#include "genlab/term.h"

static const Screen *const screens[] = {&screen_train, &screen_latent, &screen_generate,
                                        &screen_compare, &screen_diffusion};
#define NSCREENS ((int)(sizeof screens / sizeof *screens))
#define SCREEN_DIFFUSION 4 /* its index in screens[] */

static const KeyHelp global_keys[] = {
    {"1–5 F1–F5", "switch screen"}, {"Tab S-Tab", "next / previous screen"},
    {"o", "open a checkpoint"},     {"x", "export the screen as PNG"},
    {"?", "this help"},             {"Esc", "close an overlay"},
    {"q", "quit"},
};

/* Colours of the chrome. */
enum { C_BAR_FG = 231, C_BAR_BG = 24, C_KEY = 220, C_DIM = 245, C_WARN = 203 };

const int16_t digit_colors[10] = {196, 208, 226, 46, 51, 33, 129, 201, 250, 137};

void draw_thumb(CellBuf *b, int x, int y, const float *img, const Palette *p)
{
    enum { CROP = 2, SIDE = 28 - 2 * CROP };
    float crop[SIDE * SIDE];
    for (int r = 0; r < SIDE; r++)
        memcpy(crop + r * SIDE, img + (r + CROP) * 28 + CROP, SIDE * sizeof *crop);
    render_digit(b, x, y, crop, SIDE, DIGIT_THUMB, p);
}

void draw_digit_scatter(CellBuf *b, int x, int y, int w, int h, const View *view, const double *u,
                        const double *v, const uint8_t *labels, int n)
{
    Braille canvas;
    if (braille_init(&canvas, w, h)) return;
    for (int i = 0; i < n; i++) {
        double fx, fy;
        view_from_plane(view, u[i], v[i], &fx, &fy);
        if (fx < 0 || fx > 1 || fy < 0 || fy > 1) continue;
        braille_set(&canvas, (int)lround(fx * (2 * w - 1)), (int)lround(fy * (4 * h - 1)), digit_colors[labels[i]]);
    }
    braille_blit(&canvas, b, x, y, 0);
    braille_free(&canvas);
}

double app_now(void) { return monotonic_seconds(); }

void app_status(App *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->status, sizeof a->status, fmt, ap);
    va_end(ap);
    a->status_until = app_now() + 6.0;
}

/* ------------------------------------------------------------------ data */

static void *load_data(void *arg)
{
    App *a = arg;
    Err e;
    StudyData *d = malloc(sizeof *d);
    if (!d || study_data_load(d, a->opts.data_dir, &e)) {
        snprintf(a->data_error, sizeof a->data_error, "%s", d ? e.msg : "out of memory");
        free(d);
        atomic_store(&a->data_state, -1);
        return NULL;
    }
    a->data = d;
    atomic_store(&a->data_state, 1); /* publishes a->data to the UI thread */
    return NULL;
}

const StudyData *app_data(App *a) { return atomic_load(&a->data_state) == 1 ? a->data : NULL; }

const char *app_data_missing(App *a)
{
    return atomic_load(&a->data_state) < 0 ? a->data_error : "loading MNIST…";
}

/* ----------------------------------------------------------------- model */

static double meta_number(const Checkpoint *ck, const char *key)
{
    const char *s = ckpt_meta_get(ck, key);
    return s ? strtod(s, NULL) : -1.0;
}

int app_load_model(App *a, const char *path)
{
    Vae m;
    Checkpoint ck;
    Err e;
    if (vae_load_checkpoint(path, &m, &ck, &e)) {
        app_status(a, "%s", e.msg);
        return -1;
    }
    if (a->model.loaded) vae_free(&a->model.vae);
    a->model.vae = m;
    a->model.loaded = 1;
    const char *base = strrchr(path, '/');
    snprintf(a->model.name, sizeof a->model.name, "%s", base ? base + 1 : path);
    char *ext = strstr(a->model.name, ".safetensors.zst");
    if (ext) *ext = '\0';
    a->model.beta = (float)meta_number(&ck, "beta");
    a->model.test_bce = meta_number(&ck, "test_bce");
    a->model.test_kld = meta_number(&ck, "test_kld");
    a->model_version++;
    ckpt_free(&ck);
    return 0;
}

void app_set_model(App *a, const Vae *weights, const char *name, float beta, double bce, double kld)
{
    if (a->model.loaded) vae_free(&a->model.vae);
    a->model.vae = *weights;
    a->model.loaded = 1;
    snprintf(a->model.name, sizeof a->model.name, "%s", name);
    a->model.beta = beta;
    a->model.test_bce = bce;
    a->model.test_kld = kld;
    a->model_version++;
}

/* ------------------------------------------------------------- drawing */

void fit_text(char *out, size_t cap, const char *s, int w)
{
    size_t n = 0;
    int cols = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p && cols < w && n + 4 < cap; p++) {
        if ((*p & 0xC0) != 0x80) cols++;
        if (cols > w) break;
        out[n++] = (char)*p;
    }
    /* finish a multi-byte character cut by the loop's column count */
    while (n + 1 < cap && s[n] && ((unsigned char)s[n] & 0xC0) == 0x80) out[n] = s[n], n++;
    while (cols < w && n + 1 < cap) out[n++] = ' ', cols++;
    out[n] = '\0';
}

void draw_box_title(CellBuf *b, int x, int y, int w, const char *title, const Palette *p)
{
    int ascii = p->mode == DISPLAY_ASCII;
    for (int i = 0; i < w; i++) {
        Cell *c = cellbuf_at(b, x + i, y);
        if (c) *c = (Cell){ascii ? '-' : 0x2500, C_DIM, COLOR_DEFAULT, 0};
    }
    char t[256];
    snprintf(t, sizeof t, " %s ", title);
    cellbuf_text(b, x + 1, y, t, COLOR_DEFAULT, COLOR_DEFAULT, ATTR_BOLD);
}

static void fill_row(CellBuf *b, int y, int16_t fg, int16_t bg)
{
    for (int x = 0; x < b->w; x++) *cellbuf_at(b, x, y) = (Cell){' ', fg, bg, 0};
}

static void draw_top_bar(App *a, CellBuf *b)
{
    fill_row(b, 0, C_BAR_FG, C_BAR_BG);
    int x = cellbuf_text(b, 1, 0, "genlab ", C_BAR_FG, C_BAR_BG, ATTR_BOLD) + 2;
    for (int i = 0; i < NSCREENS; i++) {
        char label[64];
        snprintf(label, sizeof label, " %d %s ", i + 1, screens[i]->name);
        int cur = i == a->screen;
        x += cellbuf_text(b, x, 0, label, cur ? C_BAR_BG : C_BAR_FG, cur ? C_BAR_FG : C_BAR_BG,
                          cur ? ATTR_BOLD : 0);
    }
    const char *right = "? help  q quit ";
    cellbuf_text(b, b->w - (int)strlen(right), 0, right, C_BAR_FG, C_BAR_BG, 0);
}

static void draw_key_bar(App *a, CellBuf *b)
{
    const Screen *s = screens[a->screen];
    int x = 1, y = b->h - 2;
    fill_row(b, y, COLOR_DEFAULT, COLOR_DEFAULT);
    for (int i = 0; i < s->nkeys && x < b->w - 10; i++) {
        x += cellbuf_text(b, x, y, s->keys[i].key, C_KEY, COLOR_DEFAULT, ATTR_BOLD) + 1;
        x += cellbuf_text(b, x, y, s->keys[i].what, COLOR_DEFAULT, COLOR_DEFAULT, 0) + 3;
    }
}

static void draw_status(App *a, CellBuf *b)
{
    int y = b->h - 1;
    fill_row(b, y, C_BAR_FG, 236);
    char left[600];
    if (a->status[0] && app_now() < a->status_until) snprintf(left, sizeof left, " %s", a->status);
    else if (atomic_load(&a->data_state) != 1) snprintf(left, sizeof left, " %s", app_data_missing(a));
    else snprintf(left, sizeof left, " model: %s", a->model.loaded ? a->model.name : "none");
    cellbuf_text(b, 0, y, left, C_BAR_FG, 236, 0);
}

/* A centred box with a title and lines of text. */
static void draw_panel(App *a, CellBuf *b, const char *title, const char *const *lines, int n,
                       int highlight)
{
    int w = 0;
    for (int i = 0; i < n; i++) {
        int len = (int)strlen(lines[i]);
        if (len > w) w = len;
    }
    w += 4;
    if (w > b->w - 4) w = b->w - 4;
    int h = n + 2, x0 = (b->w - w) / 2, y0 = (b->h - h) / 2;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            Cell *c = cellbuf_at(b, x0 + x, y0 + y);
            if (c) *c = (Cell){' ', COLOR_DEFAULT, 236, 0};
        }
    draw_box_title(b, x0, y0, w, title, &a->pal);
    for (int i = 0; i < n; i++)
        cellbuf_text(b, x0 + 2, y0 + 1 + i, lines[i], i == highlight ? C_BAR_BG : 252,
                     i == highlight ? C_KEY : 236, i == highlight ? ATTR_BOLD : 0);
}

static void draw_help(App *a, CellBuf *b)
{
    const Screen *s = screens[a->screen];
    enum { MAXL = 48 };
    char store[MAXL][128];
    const char *lines[MAXL];
    int n = 0;
#define LINE(...) (snprintf(store[n], sizeof store[n], __VA_ARGS__), lines[n] = store[n], n++)
    LINE("Global");
    for (size_t i = 0; i < sizeof global_keys / sizeof *global_keys && n < MAXL; i++)
        LINE("  %-12s %s", global_keys[i].key, global_keys[i].what);
    LINE("%s", "");
    LINE("%s screen", s->name);
    for (int i = 0; i < s->nkeys && n < MAXL; i++) LINE("  %-12s %s", s->keys[i].key, s->keys[i].what);
    LINE("%s", "");
    LINE("Esc or ? closes this help");
#undef LINE
    draw_panel(a, b, "keys", lines, n, -1);
}

static void draw_quit(App *a, CellBuf *b)
{
    const char *lines[] = {"The training run has unsaved steps.", "",
                           "s  save it, then quit", "q  quit without saving", "Esc  stay"};
    draw_panel(a, b, "quit?", lines, 5, -1);
}

static void draw_load(App *a, CellBuf *b)
{
    const char *lines[66];
    int n = 0;
    if (a->nfiles == 0) lines[n++] = "no checkpoints found (checkpoints/ and the current directory)";
    for (int i = 0; i < a->nfiles; i++) lines[n++] = a->files[i];
    lines[n++] = "";
    lines[n++] = "↑/↓ choose   Enter open   Esc cancel";
    draw_panel(a, b, "open a checkpoint", lines, n, a->nfiles ? a->load_sel : -1);
}

static void draw_too_small(CellBuf *b)
{
    char line[128];
    snprintf(line, sizeof line, "terminal too small (%d×%d) — resize to at least %d×%d, or q to quit",
             b->w, b->h, MIN_COLS, MIN_ROWS);
    cellbuf_text(b, 0, b->h / 2, line, COLOR_DEFAULT, COLOR_DEFAULT, ATTR_BOLD);
}

static void draw_frame(App *a, CellBuf *b)
{
    cellbuf_clear(b);
    if (b->w < MIN_COLS || b->h < MIN_ROWS) {
        draw_too_small(b);
        return;
    }
    draw_top_bar(a, b);
    screens[a->screen]->draw(a, b, 0, 1, b->w, b->h - 3);
    draw_key_bar(a, b);
    draw_status(a, b);
    if (a->overlay == OVERLAY_HELP) draw_help(a, b);
    else if (a->overlay == OVERLAY_QUIT) draw_quit(a, b);
    else if (a->overlay == OVERLAY_LOAD) draw_load(a, b);
}

/* ----------------------------------------------------------- load list */

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static void list_dir(App *a, const char *dir, const char *shown_prefix)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *ent;
    while ((ent = readdir(d)) && a->nfiles < 64)
        if (ends_with(ent->d_name, ".safetensors.zst"))
            snprintf(a->files[a->nfiles++], sizeof a->files[0], "%s%s", shown_prefix, ent->d_name);
    closedir(d);
}

static int by_name(const void *x, const void *y) { return strcmp(x, y); }

static void open_load_list(App *a)
{
    char dir[4096], prefix[4200];
    Err e;
    a->nfiles = 0;
    if (paths_checkpoints_dir(dir, sizeof dir, &e) == 0) {
        snprintf(prefix, sizeof prefix, "%s/", dir);
        list_dir(a, dir, prefix);
    }
    list_dir(a, ".", "");
    qsort(a->files, (size_t)a->nfiles, sizeof a->files[0], by_name);
    a->load_sel = 0;
    a->overlay = OVERLAY_LOAD;
}

/* A DDPM goes to the Diffusion screen, anything else is tried as a VAE. */
static void open_selected(App *a, const char *path)
{
    Checkpoint ck;
    Err e;
    int ddpm = 0;
    if (ckpt_read(path, &ck, &e) == 0) {
        const char *fmt = ckpt_meta_get(&ck, "format");
        ddpm = fmt && strcmp(fmt, "genlab-ddpm") == 0;
        ckpt_free(&ck);
    }
    if (!ddpm) {
        if (app_load_model(a, path) == 0) app_status(a, "opened %s", a->model.name);
        return;
    }
    a->screen = SCREEN_DIFFUSION;
    if (diffusion_screen_open(a, path) == 0) app_status(a, "opened %s on the Diffusion screen", path);
}

/* ------------------------------------------------------------------ keys */

static void export_screen(App *a)
{
    const Screen *s = screens[a->screen];
    if (!s->export_png) {
        app_status(a, "nothing to export on this screen");
        return;
    }
    char path[64];
    time_t now = time(NULL);
    strftime(path, sizeof path, "genlab-%Y%m%d-%H%M%S.png", localtime(&now));
    Err e;
    if (s->export_png(a, path, &e)) app_status(a, "export failed: %s", e.msg);
    else app_status(a, "exported %s", path);
}

static void request_quit(App *a)
{
    if (train_screen_unsaved(a)) a->overlay = OVERLAY_QUIT;
    else a->running = 0;
}

static int overlay_key(App *a, int key)
{
    if (a->overlay == OVERLAY_HELP) {
        if (key == 27 || key == '?' || key == 'q') a->overlay = OVERLAY_NONE;
        return 1;
    }
    if (a->overlay == OVERLAY_QUIT) {
        if (key == 'q') a->running = 0;
        else if (key == 's') {
            if (train_screen_save_now(a) == 0) a->running = 0;
            else a->overlay = OVERLAY_NONE;
        } else if (key == 27) a->overlay = OVERLAY_NONE;
        return 1;
    }
    /* load list */
    if (key == TERM_FKEY(KEY_UP) && a->load_sel > 0) a->load_sel--;
    else if (key == TERM_FKEY(KEY_DOWN) && a->load_sel + 1 < a->nfiles) a->load_sel++;
    else if ((key == '\n' || key == '\r' || key == TERM_FKEY(KEY_ENTER)) && a->nfiles > 0) {
        a->overlay = OVERLAY_NONE;
        open_selected(a, a->files[a->load_sel]);
    } else if (key == 27 || key == 'q') a->overlay = OVERLAY_NONE;
    return 1;
}

/* Global keys: the same on every screen, tried before the screen's. */
static int global_key(App *a, int key)
{
    if (key >= '1' && key < '1' + NSCREENS) a->screen = key - '1';
    else if (key >= TERM_FKEY(KEY_F(1)) && key < TERM_FKEY(KEY_F(1)) + NSCREENS)
        a->screen = key - TERM_FKEY(KEY_F(1));
    else if (key == '\t') a->screen = (a->screen + 1) % NSCREENS;
    else if (key == TERM_FKEY(KEY_BTAB)) a->screen = (a->screen + NSCREENS - 1) % NSCREENS;
    else if (key == '?') a->overlay = OVERLAY_HELP;
    else if (key == 'q') request_quit(a);
    else if (key == 'o') open_load_list(a);
    else if (key == 'x') export_screen(a);
    else return 0;
    return 1;
}

static void handle_key(App *a, int key, int small)
{
    if (small) {
        if (key == 'q') request_quit(a);
        return;
    }
    const Screen *scr = screens[a->screen];
    if (a->overlay != OVERLAY_NONE) overlay_key(a, key);
    else if (scr->claims_next_key && scr->claims_next_key(a)) scr->key(a, key);
    else if (!global_key(a, key)) scr->key(a, key);
}

/* ----------------------------------------------------------------- main */

static int open_first_model(App *a)
{
    char path[4096];
    Err e;
    if (a->opts.ckpt) snprintf(path, sizeof path, "%s", a->opts.ckpt);
    else if (paths_default_vae(path, sizeof path, &e)) {
        app_status(a, "%s", e.msg);
        return -1;
    }
    return app_load_model(a, path);
}

static int run_loop(App *a)
{
    CellBuf b = {0};
    int dirty = 1, w = 0, h = 0, data_state = 0;
    while (a->running) {
        term_size(&w, &h);
        if (w != b.w || h != b.h) {
            cellbuf_free(&b);
            if (cellbuf_init(&b, w, h)) return 1;
            dirty = 1;
        }
        if (dirty) {
            draw_frame(a, &b);
            term_present(&b);
        }
        int key = term_read_key(50);
        dirty = 0;
        if (key == TERM_KEY_INTERRUPT) break;
        if (key != TERM_KEY_NONE) {
            handle_key(a, key, w < MIN_COLS || h < MIN_ROWS);
            dirty = 1;
        }
        if (screens[a->screen]->tick(a)) dirty = 1;
        if (a->status[0] && app_now() >= a->status_until) a->status[0] = '\0', dirty = 1;
        if (atomic_load(&a->data_state) != data_state) data_state = atomic_load(&a->data_state), dirty = 1;
    }
    cellbuf_free(&b);
    return 0;
}

int tui_main(const TuiOptions *o)
{
    App *a = calloc(1, sizeof *a);
    if (!a) return 1;
    a->opts = *o;
    a->running = 1;
    Err e;
    TermOptions to = {o->ascii, o->no_color, o->inverted};
    if (term_open(&to, &e)) {
        fprintf(stderr, "genlab: %s\n", e.msg);
        free(a);
        return 1;
    }
    a->pal = term_palette();
    a->train = train_screen_new();
    a->latent = latent_screen_new();
    a->generate = generate_screen_new();
    a->compare = compare_screen_new();
    /* after term_open: the loader inherits the blocked signals */
    a->loader_started = pthread_create(&a->loader, NULL, load_data, a) == 0;
    if (!a->loader_started) atomic_store(&a->data_state, -1);
    open_first_model(a);
    int rc = a->train && a->latent && a->generate && a->compare ? run_loop(a) : 1;
    train_screen_free(a->train);
    latent_screen_free(a->latent);
    generate_screen_free(a->generate);
    compare_screen_free(a->compare);
    diffusion_screen_free(a->diffusion);
    term_close();
    if (a->loader_started) pthread_join(a->loader, NULL);
    if (a->data) study_data_free(a->data);
    free(a->data);
    if (a->model.loaded) vae_free(&a->model.vae);
    free(a);
    return rc;
}

/* -------------------------------------------------------------- options */

static const char tui_help[] =
    "usage: genlab [--ckpt FILE] [--data DIR] [--ascii] [--no-color] [--invert]\n"
    "\n"
    "Opens the terminal UI (at least 100×30). Keys: ? in the UI.\n"
    "\n"
    "  --ckpt FILE   model to open on (default: the shipped conv VAE, d=2, β=1)\n"
    "  --data DIR    other MNIST-shaped IDX files\n"
    "  --ascii       ASCII characters only\n"
    "  --no-color    no colours (also when NO_COLOR is set)\n"
    "  --invert      dark ink on light: for projectors\n"
    "\n"
    "genlab help lists the headless commands.\n";

int tui_parse_args(int argc, char **argv, TuiOptions *o, int *exit_status)
{
    enum { O_CKPT = 1000, O_DATA, O_ASCII, O_NOCOLOR, O_INVERT };
    static const struct option longopts[] = {
        {"ckpt", required_argument, NULL, O_CKPT}, {"data", required_argument, NULL, O_DATA},
        {"ascii", no_argument, NULL, O_ASCII}, {"no-color", no_argument, NULL, O_NOCOLOR},
        {"invert", no_argument, NULL, O_INVERT}, {"help", no_argument, NULL, 'h'}, {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case O_CKPT: o->ckpt = optarg; break;
        case O_DATA: o->data_dir = optarg; break;
        case O_ASCII: o->ascii = 1; break;
        case O_NOCOLOR: o->no_color = 1; break;
        case O_INVERT: o->inverted = 1; break;
        case 'h': fputs(tui_help, stdout); *exit_status = 0; return 1;
        default: fputs("Try 'genlab --help'.\n", stderr); *exit_status = 2; return 1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "genlab: unknown command \"%s\"\nTry 'genlab help'.\n", argv[optind]);
        *exit_status = 2;
        return 1;
    }
    return 0;
}
