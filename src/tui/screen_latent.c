/* screen_latent.c — the latent explorer: the test set's μ as a scatter
 * coloured by digit, a cursor walked with the arrow keys, the digit decoded
 * at the cursor, and the decoded grid (the manifold) with the cursor's cell
 * marked. For d > 2: two chosen axes (the rest held) or a PCA plane. */
#include <curses.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "genlab/latent.h"
#include "genlab/term.h"

#define POINTS 3000  /* study-test images in the scatter */
#define GRID_MAX 7   /* manifold: up to 7 × 7 decoded digits */
#define FOCUS_W 30   /* columns of the focus panel (a 28-wide digit) */
#define SCATTER_MIN_W 34
#define STRIP_MAX 16 /* morph strips: up to 16 steps from A to B */

enum { VIEW_AXES, VIEW_PCA };

struct LatentScreen {
    uint64_t model_version; /* the model the points belong to (0: none) */
    int n, d;
    float *mu;
    uint8_t *labels;
    double *u, *v;          /* projections of mu on the plane */
    double centroids[10 * LATENT_MAX_D];
    int counts[10];
    int mode, axis_a, axis_b;
    double hold[LATENT_MAX_D]; /* the other coordinates in an axes view */
    double explained[2];
    LatentPlane plane;
    View view;
    double cu, cv;          /* cursor on the plane */
    double step;            /* arrow step, in half-widths of the view */
    int quantile_grid;      /* manifold on normal quantiles (1) or a box around the data (0) */
    int awaiting_class;     /* 'c' pressed, a digit expected */
    int grid_k;
    double grid_u[GRID_MAX], grid_v[GRID_MAX];
    float focus[784];
    float grid_imgs[GRID_MAX * GRID_MAX * 784];
    /* interpolation: pins A and B, and the strips decoded between them */
    int npins;
    float pins[2][LATENT_MAX_D];
    int nstrip;
    float strip_lin[STRIP_MAX * 784], strip_slerp[STRIP_MAX * 784];
};

static const KeyHelp latent_keys[] = {
    {"←↑↓→", "move"}, {"H J K L", "big moves"}, {"+ −", "step size"}, {"z Z", "zoom in/out"},
    {"e", "centre on cursor"}, {"f", "fit the data"}, {"c 0–9", "jump to a class centre"},
    {"Space PgUp PgDn", "next / previous centre"}, {"g", "grid: quantiles / box"},
    {"a", "next axis pair (d>2)"}, {"p", "PCA plane (d>2)"}, {"h", "hold the cursor's other coordinates"},
    {"m", "pin the cursor (A, then B: morph)"}, {"n", "pin the nearest test digit"}, {"Esc", "clear the pins"},
};

LatentScreen *latent_screen_new(void)
{
    LatentScreen *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    l->step = 0.1;
    l->quantile_grid = 1;
    l->axis_b = 1;
    return l;
}

static void drop_points(LatentScreen *l)
{
    free(l->mu), free(l->labels), free(l->u), free(l->v);
    l->mu = NULL, l->labels = NULL, l->u = l->v = NULL;
    l->n = 0;
}

void latent_screen_free(LatentScreen *l)
{
    if (!l) return;
    drop_points(l);
    free(l);
}

/* ------------------------------------------------------------ the plane */

static void project_points(LatentScreen *l)
{
    for (int i = 0; i < l->n; i++)
        plane_project(&l->plane, l->mu + (size_t)i * l->d, &l->u[i], &l->v[i]);
}

static void set_plane(LatentScreen *l)
{
    if (l->mode == VIEW_PCA && l->d > 2 && plane_pca(&l->plane, l->mu, l->n, l->d, l->explained) == 0) {
        project_points(l);
        return;
    }
    l->mode = VIEW_AXES;
    plane_axes(&l->plane, l->d, l->axis_a, l->axis_b, l->hold);
    project_points(l);
}

static int by_value(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* [1st, 99th] percentile of n values (sorted copies). */
static void robust_range(const double *x, int n, double *lo, double *hi)
{
    double *s = malloc((size_t)n * sizeof *s);
    if (!s) {
        *lo = -3, *hi = 3;
        return;
    }
    memcpy(s, x, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, by_value);
    *lo = s[n / 100];
    *hi = s[n - 1 - n / 100];
    free(s);
}

/* A window around the bulk of the data: a few encodings lie far out and
 * would shrink everything else to a dot. */
static void fit_view(LatentScreen *l, double aspect)
{
    double u[2], v[2];
    robust_range(l->u, l->n, &u[0], &u[1]);
    robust_range(l->v, l->n, &v[0], &v[1]);
    l->view = view_fit(u, v, 2, aspect);
}

/* μ of the first POINTS study-test images under the current model. */
static int encode_points(App *a, LatentScreen *l)
{
    const StudyData *data = app_data(a);
    if (!data || !a->model.loaded) return -1;
    Vae *m = &a->model.vae;
    Err e;
    drop_points(l);
    l->d = m->cfg.latent;
    l->mu = malloc((size_t)POINTS * l->d * sizeof *l->mu);
    l->labels = malloc(POINTS);
    l->u = malloc(POINTS * sizeof *l->u);
    l->v = malloc(POINTS * sizeof *l->v);
    if (!l->mu || !l->labels || !l->u || !l->v ||
        vae_encode_split(m, data, SPLIT_STUDY, POINTS, l->mu, NULL, l->labels, &e)) {
        drop_points(l);
        return -1;
    }
    l->n = POINTS;
    class_centroids(l->mu, l->labels, l->n, l->d, 10, l->centroids, l->counts);
    memset(l->hold, 0, sizeof l->hold);
    if (l->axis_a >= l->d || l->axis_b >= l->d || l->axis_a == l->axis_b) l->axis_a = 0, l->axis_b = 1;
    if (l->d < 2) l->axis_b = 0;
    set_plane(l);
    l->cu = l->cv = 0;
    l->npins = 0;
    l->model_version = a->model_version;
    return 0;
}

/* ------------------------------------------------------------- decoding */

static void lift(const LatentScreen *l, double u, double v, float *z)
{
    if (l->d == 1) z[0] = (float)u;
    else plane_lift(&l->plane, u, v, z);
}

/* The manifold's coordinates on the plane: normal quantiles, or a box
 * around the projected data. */
static void grid_coords(LatentScreen *l, int k)
{
    l->grid_k = k;
    if (l->quantile_grid && l->mode == VIEW_AXES) {
        grid_quantiles(l->grid_u, k);
        for (int i = 0; i < k; i++) l->grid_v[i] = l->grid_u[k - 1 - i]; /* top row: largest v */
        return;
    }
    double ulo = INFINITY, uhi = -INFINITY, vlo = INFINITY, vhi = -INFINITY;
    for (int i = 0; i < l->n; i++) {
        ulo = fmin(ulo, l->u[i]), uhi = fmax(uhi, l->u[i]);
        vlo = fmin(vlo, l->v[i]), vhi = fmax(vhi, l->v[i]);
    }
    grid_box(l->grid_u, k, ulo, uhi);
    grid_box(l->grid_v, k, vhi, vlo); /* top row: largest v */
}

/* Decodes the cursor's digit and the k × k manifold. */
static void decode_all(App *a, LatentScreen *l)
{
    Vae *m = &a->model.vae;
    Err e;
    int k = l->grid_k, n = 1 + k * k;
    float *z = malloc((size_t)n * l->d * sizeof *z);
    float *out = malloc((size_t)n * 784 * sizeof *out);
    if (!z || !out || vae_reserve(m, n, &e)) {
        free(z), free(out);
        return;
    }
    lift(l, l->cu, l->cv, z);
    for (int r = 0; r < k; r++)
        for (int c = 0; c < k; c++) lift(l, l->grid_u[c], l->grid_v[r], z + (size_t)(1 + r * k + c) * l->d);
    vae_decode(m, z, n, out);
    memcpy(l->focus, out, 784 * sizeof *out);
    memcpy(l->grid_imgs, out + 784, (size_t)k * k * 784 * sizeof *out);
    free(z), free(out);
}

/* The morph from pin A to pin B in n steps, linear and spherical. */
static void decode_strips(App *a, LatentScreen *l, int n)
{
    Vae *m = &a->model.vae;
    Err e;
    float *z = malloc((size_t)2 * n * l->d * sizeof *z);
    float *out = malloc((size_t)2 * n * 784 * sizeof *out);
    if (!z || !out || vae_reserve(m, 2 * n, &e)) {
        free(z), free(out);
        return;
    }
    for (int i = 0; i < n; i++) {
        double t = n > 1 ? (double)i / (n - 1) : 0;
        lerp_latent(l->pins[0], l->pins[1], l->d, t, z + (size_t)i * l->d);
        slerp_latent(l->pins[0], l->pins[1], l->d, t, z + (size_t)(n + i) * l->d);
    }
    vae_decode(m, z, 2 * n, out);
    memcpy(l->strip_lin, out, (size_t)n * 784 * sizeof *out);
    memcpy(l->strip_slerp, out + (size_t)n * 784, (size_t)n * 784 * sizeof *out);
    l->nstrip = n;
    free(z), free(out);
}

static void pin(App *a, LatentScreen *l, const float *z)
{
    if (l->npins == 2) l->npins = 0;
    memcpy(l->pins[l->npins++], z, (size_t)l->d * sizeof *z);
    if (l->npins == 1) app_status(a, "A pinned: move, then m (or n) pins B");
    else l->nstrip = 0; /* decoded at the next draw, sized to the screen */
}

/* The test digit whose projection is nearest the cursor. */
static int nearest_point(const LatentScreen *l)
{
    int best = 0;
    double best_d = INFINITY;
    for (int i = 0; i < l->n; i++) {
        double dist = hypot(l->u[i] - l->cu, l->v[i] - l->cv);
        if (dist < best_d) best_d = dist, best = i;
    }
    return best;
}

/* --------------------------------------------------------------- drawing */

/* Rows the morph strips take at the bottom of the screen. */
#define STRIP_ROWS (1 + 2 * THUMB_H)

static void draw_strips(App *a, LatentScreen *l, CellBuf *b, int x, int y, int w)
{
    int n = (w - 12) / THUMB_W;
    if (n > STRIP_MAX) n = STRIP_MAX;
    if (n < 2) return;
    if (l->nstrip != n) decode_strips(a, l, n);
    for (int r = 0; r < STRIP_ROWS; r++)
        for (int c = 0; c < w; c++) {
            Cell *cell = cellbuf_at(b, x + c, y + r);
            if (cell) *cell = (Cell){' ', COLOR_DEFAULT, COLOR_DEFAULT, 0};
        }
    draw_box_title(b, x, y, w, "morph from A to B (Esc clears)", &a->pal);
    cellbuf_text(b, x + 1, y + 1 + THUMB_H / 2, "linear", 250, COLOR_DEFAULT, 0);
    cellbuf_text(b, x + 1, y + 1 + THUMB_H + THUMB_H / 2, "slerp", 250, COLOR_DEFAULT, 0);
    for (int i = 0; i < l->nstrip; i++) {
        draw_thumb(b, x + 10 + i * THUMB_W, y + 1, l->strip_lin + (size_t)i * 784, &a->pal);
        draw_thumb(b, x + 10 + i * THUMB_W, y + 1 + THUMB_H, l->strip_slerp + (size_t)i * 784, &a->pal);
    }
}


static void draw_scatter(App *a, LatentScreen *l, CellBuf *b, int x, int y, int w, int h)
{
    /* legend row, canvas, u-axis row */
    int cx = x + 7, cy = y + 1, cw = w - 8, ch = h - 2;
    for (int digit = 0; digit < 10; digit++) {
        char s[4];
        snprintf(s, sizeof s, "%d", digit);
        cellbuf_text(b, x + 1 + 3 * digit, y, a->pal.mode == DISPLAY_ASCII ? s : "●", digit_colors[digit],
                     COLOR_DEFAULT, 0);
        cellbuf_text(b, x + 2 + 3 * digit, y, s, COLOR_DEFAULT, COLOR_DEFAULT, 0);
    }
    if (cw < 4 || ch < 2) return;
    draw_digit_scatter(b, cx, cy, cw, ch, &l->view, l->u, l->v, l->labels, l->n);
    /* cursor */
    double fx, fy;
    view_from_plane(&l->view, l->cu, l->cv, &fx, &fy);
    if (fx >= 0 && fx <= 1 && fy >= 0 && fy <= 1) {
        Cell *c = cellbuf_at(b, cx + (int)lround(fx * (cw - 1)), cy + (int)lround(fy * (ch - 1)));
        if (c) *c = (Cell){'+', 231, COLOR_DEFAULT, ATTR_BOLD | ATTR_REVERSE};
    }
    /* axis values: v at the top and bottom of the canvas, u along the bottom */
    char s[32];
    snprintf(s, sizeof s, "%6.2f", l->view.cv + l->view.hv);
    cellbuf_text(b, x, cy, s, 250, COLOR_DEFAULT, 0);
    snprintf(s, sizeof s, "%6.2f", l->view.cv - l->view.hv);
    cellbuf_text(b, x, cy + ch - 1, s, 250, COLOR_DEFAULT, 0);
    snprintf(s, sizeof s, "%.2f", l->view.cu - l->view.hu);
    cellbuf_text(b, cx, cy + ch, s, 250, COLOR_DEFAULT, 0);
    snprintf(s, sizeof s, "%.2f", l->view.cu + l->view.hu);
    cellbuf_text(b, cx + cw - (int)strlen(s), cy + ch, s, 250, COLOR_DEFAULT, 0);
}

/* The manifold, with a frame-coloured cell behind the digit nearest the cursor. */
static void draw_manifold(App *a, LatentScreen *l, CellBuf *b, int x, int y)
{
    int k = l->grid_k, near_r = 0, near_c = 0;
    for (int i = 1; i < k; i++) {
        if (fabs(l->grid_u[i] - l->cu) < fabs(l->grid_u[near_c] - l->cu)) near_c = i;
        if (fabs(l->grid_v[i] - l->cv) < fabs(l->grid_v[near_r] - l->cv)) near_r = i;
    }
    draw_box_title(b, x, y, k * THUMB_W, l->quantile_grid && l->mode == VIEW_AXES ? "grid: normal quantiles 5–95%"
                                                                                  : "grid: box around the data",
                   &a->pal);
    for (int r = 0; r < k; r++)
        for (int c = 0; c < k; c++)
            draw_thumb(b, x + c * THUMB_W, y + 1 + r * THUMB_H, l->grid_imgs + (size_t)(r * k + c) * 784, &a->pal);
    Cell *mark = cellbuf_at(b, x + near_c * THUMB_W, y + 1 + near_r * THUMB_H);
    if (mark) *mark = (Cell){'+', 231, COLOR_DEFAULT, ATTR_BOLD | ATTR_REVERSE};
}

static void format_z(const LatentScreen *l, char *out, size_t cap)
{
    float z[LATENT_MAX_D];
    lift(l, l->cu, l->cv, z);
    int n = snprintf(out, cap, "z = (");
    for (int i = 0; i < l->d && i < 8 && (size_t)n < cap; i++)
        n += snprintf(out + n, cap - (size_t)n, "%s%.2f", i ? ", " : "", z[i]);
    if ((size_t)n < cap) snprintf(out + n, cap - (size_t)n, "%s)", l->d > 8 ? ", …" : "");
}

static void format_view(const LatentScreen *l, char *out, size_t cap)
{
    if (l->d == 1) snprintf(out, cap, "d = 1: the line");
    else if (l->mode == VIEW_PCA)
        snprintf(out, cap, "PCA plane of μ (%.0f%% + %.0f%% of the variance)", 100 * l->explained[0],
                 100 * l->explained[1]);
    else snprintf(out, cap, "axes z%d × z%d%s", l->axis_a, l->axis_b, l->d > 2 ? " (others held)" : "");
}

static void latent_draw(App *a, CellBuf *b, int x, int y, int w, int h)
{
    LatentScreen *l = a->latent;
    if (!a->model.loaded || !app_data(a)) {
        cellbuf_text(b, x + 2, y + 2, a->model.loaded ? app_data_missing(a) : "no model: o opens a checkpoint", 250,
                     COLOR_DEFAULT, 0);
        return;
    }
    int large = h >= 32 && w >= 150;
    int fw = large ? 58 : FOCUS_W;
    int k = (w - SCATTER_MIN_W - fw) / THUMB_W, kr = (h - 3) / THUMB_H;
    if (k > kr) k = kr;
    if (k > GRID_MAX) k = GRID_MAX;
    if (k < 2) k = 2;
    int sw = w - fw - k * THUMB_W - 2;
    if (l->model_version != a->model_version && encode_points(a, l)) {
        cellbuf_text(b, x + 2, y + 2, "cannot encode the test digits (out of memory)", 203, COLOR_DEFAULT, 0);
        return;
    }
    double aspect = (2.0 * (sw - 8)) / (4.0 * (h - 3));
    if (!(l->view.hu > 0)) fit_view(l, aspect);
    grid_coords(l, k);
    decode_all(a, l);

    char info[700], zs[200], vs[120];
    format_view(l, vs, sizeof vs);
    format_z(l, zs, sizeof zs);
    snprintf(info, sizeof info, "%s · %s · %s · step %.3g", a->model.name, vs, zs, l->step * l->view.hu);
    cellbuf_text(b, x + 1, y, info, COLOR_DEFAULT, COLOR_DEFAULT, ATTR_BOLD);
    if (l->awaiting_class)
        cellbuf_text(b, x + 1, y + h - 1, "class centre: press a digit 0–9", 220, COLOR_DEFAULT, ATTR_BOLD);
    draw_scatter(a, l, b, x, y + 1, sw, h - 2);
    int fx = x + sw + 1;
    draw_box_title(b, fx, y + 1, fw - 1, "decoded at the cursor", &a->pal);
    render_digit(b, fx + 1, y + 2, l->focus, 28, large ? DIGIT_LARGE : DIGIT_HALF, &a->pal);
    draw_manifold(a, l, b, fx + fw, y + 1);
    if (l->npins == 2) draw_strips(a, l, b, x, y + h - STRIP_ROWS, w);
}

/* ------------------------------------------------------------------ keys */

static void jump_to_class(LatentScreen *l, int digit)
{
    if (l->counts[digit] == 0) return;
    float z[LATENT_MAX_D];
    for (int i = 0; i < l->d; i++) z[i] = (float)l->centroids[digit * l->d + i];
    if (l->d == 1) l->cu = z[0], l->cv = 0;
    else plane_project(&l->plane, z, &l->cu, &l->cv);
}

/* The class whose centre is nearest the cursor, for stepping through them. */
static int nearest_class(const LatentScreen *l)
{
    int best = 0;
    double best_d = INFINITY;
    for (int digit = 0; digit < 10; digit++) {
        if (!l->counts[digit]) continue;
        float z[LATENT_MAX_D];
        double u, v;
        for (int i = 0; i < l->d; i++) z[i] = (float)l->centroids[digit * l->d + i];
        plane_project(&l->plane, z, &u, &v);
        double dist = hypot(u - l->cu, v - l->cv);
        if (dist < best_d) best_d = dist, best = digit;
    }
    return best;
}

static int move_key(LatentScreen *l, int key)
{
    double s = l->step, du = 0, dv = 0;
    switch (key) {
    case TERM_FKEY(KEY_LEFT): du = -s; break;
    case TERM_FKEY(KEY_RIGHT): du = s; break;
    case TERM_FKEY(KEY_UP): dv = s; break;
    case TERM_FKEY(KEY_DOWN): dv = -s; break;
    case 'H': case TERM_FKEY(KEY_SLEFT): du = -5 * s; break;
    case 'L': case TERM_FKEY(KEY_SRIGHT): du = 5 * s; break;
    case 'K': case TERM_FKEY(KEY_SR): dv = 5 * s; break;
    case 'J': case TERM_FKEY(KEY_SF): dv = -5 * s; break;
    default: return 0;
    }
    l->cu += du * l->view.hu;
    l->cv += dv * l->view.hv;
    return 1;
}

static int view_key(LatentScreen *l, int key)
{
    switch (key) {
    case '+': case '=': l->step = fmin(l->step * 1.5, 1.0); break;
    case '-': case '_': l->step = fmax(l->step / 1.5, 0.002); break;
    case 'z': l->view = view_zoom(l->view, 1.5); break;
    case 'Z': l->view = view_zoom(l->view, 1 / 1.5); break;
    case 'e': l->view.cu = l->cu, l->view.cv = l->cv; break;
    case 'f': l->view.hu = 0; break; /* refit at the next draw */
    case 'g': l->quantile_grid = !l->quantile_grid; break;
    default: return 0;
    }
    return 1;
}

static int plane_key(LatentScreen *l, int key)
{
    if (l->d <= 2 && (key == 'a' || key == 'p' || key == 'h')) return 1;
    float z[LATENT_MAX_D];
    switch (key) {
    case 'a': /* next pair (a, b), a < b */
        l->mode = VIEW_AXES;
        if (++l->axis_b >= l->d) {
            if (++l->axis_a >= l->d - 1) l->axis_a = 0;
            l->axis_b = l->axis_a + 1;
        }
        break;
    case 'p': l->mode = l->mode == VIEW_PCA ? VIEW_AXES : VIEW_PCA; break;
    case 'h': /* the cursor's full vector becomes the held point */
        lift(l, l->cu, l->cv, z);
        for (int i = 0; i < l->d; i++) l->hold[i] = z[i];
        l->mode = VIEW_AXES;
        break;
    default: return 0;
    }
    lift(l, l->cu, l->cv, z);
    set_plane(l);
    plane_project(&l->plane, z, &l->cu, &l->cv);
    l->view.hu = 0;
    return 1;
}

static int latent_key(App *a, int key)
{
    LatentScreen *l = a->latent;
    if (l->n == 0) return 0;
    if (l->awaiting_class) {
        l->awaiting_class = 0;
        if (key >= '0' && key <= '9') jump_to_class(l, key - '0');
        return 1;
    }
    if (key == 'c') return l->awaiting_class = 1;
    if (key == 'm' || key == 'n') {
        float z[LATENT_MAX_D];
        if (key == 'm') lift(l, l->cu, l->cv, z);
        else memcpy(z, l->mu + (size_t)nearest_point(l) * l->d, (size_t)l->d * sizeof *z);
        pin(a, l, z);
        return 1;
    }
    if (key == 27 && l->npins) return l->npins = 0, 1;
    if (key == ' ' || key == TERM_FKEY(KEY_NPAGE)) return jump_to_class(l, (nearest_class(l) + 1) % 10), 1;
    if (key == TERM_FKEY(KEY_PPAGE)) return jump_to_class(l, (nearest_class(l) + 9) % 10), 1;
    return move_key(l, key) || view_key(l, key) || plane_key(l, key);
}

static int latent_tick(App *a)
{
    /* redraw once the data arrives or the model changes */
    return a->latent->model_version != a->model_version && app_data(a) && a->screen == 1;
}

static int latent_claims_next_key(App *a) { return a->latent->awaiting_class; }

const Screen screen_latent = {"Latent", latent_draw, latent_key, latent_tick, NULL, latent_keys,
                              sizeof latent_keys / sizeof *latent_keys, latent_claims_next_key};
