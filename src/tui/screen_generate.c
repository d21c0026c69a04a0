/* screen_generate.c — digits decoded from the prior: z ~ N(0, T²·I). */
#include <curses.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "genlab/image.h"
#include "genlab/term.h"

#define GEN_MAX 128

struct GenerateScreen {
    uint64_t seed;
    float temperature;
    uint64_t model_version; /* of the digits below; 0: none yet */
    uint64_t drawn_seed;
    float drawn_temperature;
    int n;                  /* digits decoded */
    float digits[GEN_MAX * 784];
};

static const KeyHelp generate_keys[] = {
    {"r / Space", "new digits (next seed)"}, {"R", "previous seed"}, {"+ / −", "temperature"},
    {"0", "temperature 1"},
};

GenerateScreen *generate_screen_new(void)
{
    GenerateScreen *g = calloc(1, sizeof *g);
    if (g) g->temperature = 1.0f;
    return g;
}

void generate_screen_free(GenerateScreen *g) { free(g); }

/* How many thumbnails fit the body: columns × rows. */
static void grid_shape(int w, int h, int *cols, int *rows)
{
    *cols = (w - 2) / THUMB_W;
    *rows = (h - 3) / THUMB_H;
    while (*cols * *rows > GEN_MAX) (*rows)--;
}

/* Decodes n prior samples for the current seed and temperature. */
static void decode_grid(App *a, GenerateScreen *g, int n)
{
    Err e;
    if (vae_sample_prior(&a->model.vae, g->seed, g->temperature, n, g->digits, &e)) {
        app_status(a, "%s", e.msg);
        return;
    }
    g->n = n;
    g->model_version = a->model_version;
    g->drawn_seed = g->seed;
    g->drawn_temperature = g->temperature;
}

static void generate_draw(App *a, CellBuf *b, int x, int y, int w, int h)
{
    GenerateScreen *g = a->generate;
    if (!a->model.loaded) {
        cellbuf_text(b, x + 2, y + 2, "no model: o opens a checkpoint, or train one on screen 1", 250,
                     COLOR_DEFAULT, 0);
        return;
    }
    int cols, rows;
    grid_shape(w, h, &cols, &rows);
    int n = cols * rows;
    /* the same seed gives the same digits, also as the window grows (the
     * first n draws of the stream do not depend on n) */
    if (g->model_version != a->model_version || g->drawn_seed != g->seed ||
        g->drawn_temperature != g->temperature || g->n < n)
        decode_grid(a, g, n);
    char line[700];
    snprintf(line, sizeof line, "%s · z ~ N(0, T²·I), T = %.2f · seed %llu · %d digits",
             a->model.name, g->temperature, (unsigned long long)g->seed, n);
    cellbuf_text(b, x + 1, y, line, COLOR_DEFAULT, COLOR_DEFAULT, ATTR_BOLD);
    for (int i = 0; i < n && i < g->n; i++)
        draw_thumb(b, x + 1 + (i % cols) * THUMB_W, y + 2 + (i / cols) * THUMB_H,
                   g->digits + (size_t)i * 784, &a->pal);
}

static int generate_key(App *a, int key)
{
    GenerateScreen *g = a->generate;
    if (key == 'r' || key == ' ') g->seed++;
    else if (key == 'R' && g->seed > 0) g->seed--;
    else if (key == '+' || key == '=') g->temperature = g->temperature < 3.0f ? g->temperature + 0.1f : 3.0f;
    else if (key == '-' || key == '_') g->temperature = g->temperature > 0.15f ? g->temperature - 0.1f : 0.05f;
    else if (key == '0') g->temperature = 1.0f;
    else return 0;
    (void)a;
    return 1;
}

static int generate_tick(App *a)
{
    (void)a;
    return 0;
}

static int generate_export(App *a, const char *path, Err *e)
{
    GenerateScreen *g = a->generate;
    if (g->n == 0) return err_set(e, "no digits on screen yet");
    uint8_t *bytes = malloc((size_t)g->n * 784);
    if (!bytes) return err_set(e, "out of memory");
    image_to_bytes(g->digits, (int64_t)g->n * 784, bytes);
    int rc = image_write(path, bytes, g->n, 28, 0, e);
    free(bytes);
    return rc;
}

const Screen screen_generate = {"Generate", generate_draw, generate_key, generate_tick, generate_export,
                                generate_keys, sizeof generate_keys / sizeof *generate_keys, NULL};
