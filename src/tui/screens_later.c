/* screens_later.c — the screens that later versions fill (latent explorer,
 * generation, comparison, diffusion). Until then each says so plainly. */
#include "app.h"

static void draw_later(CellBuf *b, int x, int y, int w, int h, const char *what)
{
    (void)w;
    cellbuf_text(b, x + 2, y + h / 2 - 1, what, COLOR_DEFAULT, COLOR_DEFAULT, ATTR_BOLD);
    cellbuf_text(b, x + 2, y + h / 2 + 1,
                 "Not built yet. The headless commands cover part of it: genlab help.", 250,
                 COLOR_DEFAULT, 0);
}

static int no_key(App *a, int key) { (void)a, (void)key; return 0; }
static int no_tick(App *a) { (void)a; return 0; }

#define LATER_SCREEN(var, title, text)                                                        \
    static void var##_draw(App *a, CellBuf *b, int x, int y, int w, int h)                  \
    {                                                                                         \
        (void)a;                                                                              \
        draw_later(b, x, y, w, h, text);                                                     \
    }                                                                                         \
    const Screen var = {title, var##_draw, no_key, no_tick, NULL, NULL, 0, NULL};

LATER_SCREEN(screen_diffusion, "Diffusion", "Diffusion: a DDPM chain from noise to digit")
