/* screen_compare.c — the study's grid side by side: a table of the shipped
 * checkpoints (their own metadata, beside the study's verdicts), and for
 * two or three chosen models the same test digits reconstructed, the same
 * prior samples, and their latent scatters. */
#include <curses.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "genlab/latent.h"
#include "genlab/paths.h"
#include "genlab/term.h"

#define MAX_MODELS 16
#define MAX_CHOSEN 3
#define SHOW 4       /* digits per row in a panel (at most) */
#define POINTS 1000  /* test digits in each scatter */

typedef struct {
    char name[128];
    Vae vae;
    float beta;
    double test_bce, test_kld, seconds_per_epoch;
    int chosen;
    /* visuals, made when the model is first shown side by side */
    int ready;
    float recon[SHOW * 784], samples[SHOW * 784];
    double u[POINTS], v[POINTS];
    uint8_t labels[POINTS];
} Entry;

struct CompareScreen {
    int loaded;
    char error[4200];
    int n, row, side_by_side;
    Entry e[MAX_MODELS];
};

static const KeyHelp compare_keys[] = {
    {"↑ ↓", "choose a row"}, {"Space", "pick / unpick (up to 3)"}, {"Enter v", "table / side by side"},
    {"l", "open the row's model"},
};

CompareScreen *compare_screen_new(void) { return calloc(1, sizeof(CompareScreen)); }

void compare_screen_free(CompareScreen *c)
{
    if (!c) return;
    for (int i = 0; i < c->n; i++) vae_free(&c->e[i].vae);
    free(c);
}

/* The study's synthesis of β (its "Synthèse de l'effet de β" slide). */
static const char *study_verdict(float beta)
{
    if (fabsf(beta - 0.001f) < 1e-6f) return "recon excellent · latent dispersed · samples variable";
    if (fabsf(beta - 1.0f) < 1e-6f) return "recon good · latent structured · samples coherent";
    if (fabsf(beta - 20.0f) < 1e-4f) return "recon blurry · latent over-compact · samples smooth";
    return "";
}

static double meta_num(const Checkpoint *ck, const char *key)
{
    const char *s = ckpt_meta_get(ck, key);
    return s ? strtod(s, NULL) : -1;
}

static int by_entry(const void *x, const void *y)
{
    const Entry *a = x, *b = y;
    if (a->vae.cfg.latent != b->vae.cfg.latent) return a->vae.cfg.latent - b->vae.cfg.latent;
    if (a->beta != b->beta) return a->beta < b->beta ? -1 : 1;
    return (int)a->vae.cfg.arch - (int)b->vae.cfg.arch;
}

/* Loads every vae-*.safetensors.zst of the checkpoints directory. */
static void load_models(CompareScreen *c)
{
    char dir[4096];
    Err e;
    c->loaded = 1;
    if (paths_checkpoints_dir(dir, sizeof dir, &e)) {
        snprintf(c->error, sizeof c->error, "%s", e.msg);
        return;
    }
    DIR *d = opendir(dir);
    struct dirent *ent;
    while (d && (ent = readdir(d)) && c->n < MAX_MODELS) {
        const char *nm = ent->d_name;
        size_t len = strlen(nm);
        if (strncmp(nm, "vae-", 4) != 0 || len < 16 || strcmp(nm + len - 16, ".safetensors.zst") != 0) continue;
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", dir, nm);
        Entry *en = &c->e[c->n];
        Checkpoint ck;
        if (vae_load_checkpoint(path, &en->vae, &ck, &e)) continue;
        snprintf(en->name, sizeof en->name, "%.*s", (int)(len - 16), nm);
        en->beta = (float)meta_num(&ck, "beta");
        en->test_bce = meta_num(&ck, "test_bce");
        en->test_kld = meta_num(&ck, "test_kld");
        en->seconds_per_epoch = meta_num(&ck, "seconds_per_epoch");
        ckpt_free(&ck);
        c->n++;
    }
    if (d) closedir(d);
    qsort(c->e, (size_t)c->n, sizeof *c->e, by_entry);
    /* the study's β comparison: the conv VAE at d = 2, β = 1e-3, 1, 20 */
    for (int i = 0; i < c->n; i++)
        c->e[i].chosen = c->e[i].vae.cfg.arch == ARCH_CONV && c->e[i].vae.cfg.latent == 2;
    if (c->n == 0 && !c->error[0]) snprintf(c->error, sizeof c->error, "no vae-*.safetensors.zst in %s", dir);
}

/* Reconstructions, samples and a scatter for one model. */
static void prepare(const StudyData *data, Entry *en)
{
    Vae *m = &en->vae;
    Err e;
    const int d = m->cfg.latent;
    float *mu = malloc((size_t)POINTS * d * sizeof *mu);
    if (!mu || vae_encode_split(m, data, SPLIT_STUDY, POINTS, mu, NULL, en->labels, &e)) {
        free(mu);
        return;
    }
    /* SHOW test digits (from the 901st on), reconstructed from their μ */
    vae_decode(m, mu + (size_t)(POINTS - 100) * d, SHOW, en->recon);
    /* seed 7 for every model: the same prior draws for each latent size */
    vae_sample_prior(m, 7, 1.0f, SHOW, en->samples, &e);
    LatentPlane *p = malloc(sizeof *p);
    if (p && (d < 3 ? plane_axes(p, d, 0, d > 1, NULL) : plane_pca(p, mu, POINTS, d, NULL)) == 0)
        for (int i = 0; i < POINTS; i++) plane_project(p, mu + (size_t)i * d, &en->u[i], &en->v[i]);
    free(p), free(mu);
    en->ready = 1;
}

/* ----------------------------------------------------------------- table */

static void draw_table(App *a, CompareScreen *c, CellBuf *b, int x, int y, int w)
{
    char line[400];
    snprintf(line, sizeof line, "  %-22s %10s %9s %9s %8s   %s", "checkpoint", "params", "test BCE", "test KLD",
             "s/epoch", "the study's verdict on β");
    cellbuf_text(b, x, y, line, 250, COLOR_DEFAULT, ATTR_BOLD);
    for (int i = 0; i < c->n; i++) {
        const Entry *en = &c->e[i];
        snprintf(line, sizeof line, "%s %-22s %10zu %9.2f %9.2f %8.1f   %s", en->chosen ? "●" : " ", en->name,
                 en->vae.nparams, en->test_bce, en->test_kld, en->seconds_per_epoch, study_verdict(en->beta));
        int cur = i == c->row;
        int used = cellbuf_text(b, x, y + 1 + i, line, cur ? 16 : COLOR_DEFAULT, cur ? 220 : COLOR_DEFAULT,
                                cur ? ATTR_BOLD : 0);
        for (int k = used; cur && k < w; k++) cellbuf_text(b, x + k, y + 1 + i, " ", 16, 220, 0);
    }
    (void)a;
}

/* ----------------------------------------------------------- side by side */

static void draw_scatter(const Entry *en, CellBuf *b, int x, int y, int w, int h)
{
    if (w < 4 || h < 2) return;
    double lo_u = INFINITY, hi_u = -INFINITY, lo_v = INFINITY, hi_v = -INFINITY;
    for (int i = 0; i < POINTS; i++) {
        lo_u = fmin(lo_u, en->u[i]), hi_u = fmax(hi_u, en->u[i]);
        lo_v = fmin(lo_v, en->v[i]), hi_v = fmax(hi_v, en->v[i]);
    }
    double us[2] = {lo_u, hi_u}, vs[2] = {lo_v, hi_v};
    View view = view_fit(us, vs, 2, (2.0 * w) / (4.0 * h));
    draw_digit_scatter(b, x, y, w, h, &view, en->u, en->v, en->labels, POINTS);
}

static void draw_panel(App *a, const Entry *en, CellBuf *b, int x, int y, int w, int h)
{
    char line[200];
    draw_box_title(b, x, y, w - 1, en->name, &a->pal);
    snprintf(line, sizeof line, "BCE %.1f  KLD %.2f", en->test_bce, en->test_kld);
    cellbuf_text(b, x + 1, y + 1, line, COLOR_DEFAULT, COLOR_DEFAULT, ATTR_BOLD);
    char verdict[200];
    fit_text(verdict, sizeof verdict, study_verdict(en->beta), w - 3); /* stay inside the panel */
    cellbuf_text(b, x + 1, y + 2, verdict, 250, COLOR_DEFAULT, 0);
    int k = (w - 2) / THUMB_W;
    if (k > SHOW) k = SHOW;
    cellbuf_text(b, x + 1, y + 3, "reconstructions", 245, COLOR_DEFAULT, 0);
    for (int i = 0; i < k; i++) draw_thumb(b, x + 1 + i * THUMB_W, y + 4, en->recon + (size_t)i * 784, &a->pal);
    cellbuf_text(b, x + 1, y + 4 + THUMB_H, "samples from N(0, I)", 245, COLOR_DEFAULT, 0);
    for (int i = 0; i < k; i++)
        draw_thumb(b, x + 1 + i * THUMB_W, y + 5 + THUMB_H, en->samples + (size_t)i * 784, &a->pal);
    int sy = y + 5 + 2 * THUMB_H;
    cellbuf_text(b, x + 1, sy, en->vae.cfg.latent > 2 ? "μ, PCA plane" : "μ", 245, COLOR_DEFAULT, 0);
    draw_scatter(en, b, x + 1, sy + 1, w - 3, h - (sy + 1 - y));
}

static void draw_side_by_side(App *a, CompareScreen *c, CellBuf *b, int x, int y, int w, int h)
{
    const StudyData *data = app_data(a);
    if (!data) {
        cellbuf_text(b, x + 2, y + 2, app_data_missing(a), 250, COLOR_DEFAULT, 0);
        return;
    }
    int idx[MAX_CHOSEN], n = 0;
    for (int i = 0; i < c->n && n < MAX_CHOSEN; i++)
        if (c->e[i].chosen) idx[n++] = i;
    if (n == 0) {
        cellbuf_text(b, x + 2, y + 2, "pick models in the table (Space), then Enter", 250, COLOR_DEFAULT, 0);
        return;
    }
    for (int k = 0; k < n; k++) {
        Entry *en = &c->e[idx[k]];
        if (!en->ready) prepare(data, en);
        draw_panel(a, en, b, x + k * (w / n), y, w / n, h);
    }
}

static void compare_draw(App *a, CellBuf *b, int x, int y, int w, int h)
{
    CompareScreen *c = a->compare;
    if (!c->loaded) load_models(c);
    if (c->error[0]) {
        cellbuf_text(b, x + 2, y + 2, c->error, 203, COLOR_DEFAULT, 0);
        return;
    }
    if (c->side_by_side) draw_side_by_side(a, c, b, x, y, w, h);
    else {
        draw_table(a, c, b, x, y, w);
        cellbuf_text(b, x + 2, y + c->n + 2,
                     "Space picks up to three, Enter shows them side by side: same test digits, same prior draws, latents",
                     250, COLOR_DEFAULT, 0);
    }
}

static int chosen_count(const CompareScreen *c)
{
    int n = 0;
    for (int i = 0; i < c->n; i++) n += c->e[i].chosen;
    return n;
}

static int compare_key(App *a, int key)
{
    CompareScreen *c = a->compare;
    if (c->n == 0) return 0;
    if (key == '\n' || key == '\r' || key == 'v' || key == TERM_FKEY(KEY_ENTER)) c->side_by_side = !c->side_by_side;
    else if (key == TERM_FKEY(KEY_UP) && c->row > 0) c->row--;
    else if (key == TERM_FKEY(KEY_DOWN) && c->row + 1 < c->n) c->row++;
    else if (key == ' ') {
        Entry *en = &c->e[c->row];
        if (en->chosen || chosen_count(c) < MAX_CHOSEN) en->chosen = !en->chosen;
        else app_status(a, "three models at most: unpick one first");
    } else if (key == 'l') {
        char dir[4096], path[4400];
        Err e;
        if (paths_checkpoints_dir(dir, sizeof dir, &e) == 0) {
            snprintf(path, sizeof path, "%s/%s.safetensors.zst", dir, c->e[c->row].name);
            if (app_load_model(a, path) == 0) app_status(a, "opened %s: see screens 1–3", c->e[c->row].name);
        }
    } else return 0;
    return 1;
}

static int compare_tick(App *a)
{
    (void)a;
    return 0;
}

const Screen screen_compare = {"Compare", compare_draw, compare_key, compare_tick, NULL, compare_keys,
                               sizeof compare_keys / sizeof *compare_keys, NULL};
