/* term_demo.c — a small program on term.h alone, driven by test_term.sh.
 *
 *   term_demo [--ascii] [--no-color]
 *
 * Row 0: "w=<W> h=<H> mode=<256|16|ascii>"; row 1: "key=<last key code>
 * pid=<pid>"; from row 2 a ring drawn in half blocks; 'Z' in the
 * bottom-right cell. Keys: q quits (exit 0); c crashes (SIGSEGV, to test
 * the fatal-signal restore); SIGINT/SIGTERM/SIGHUP print "interrupted"
 * after the terminal is restored (exit 130). */
#include "genlab/render.h"
#include "genlab/term.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

enum { SIDE = 28 };

static const char *mode_name(DisplayMode m)
{
    return m == DISPLAY_256 ? "256" : m == DISPLAY_16 ? "16" : "ascii";
}

/* A digit-like ring with soft edges, so that many greys appear. */
static void ring_image(float *img)
{
    for (int r = 0; r < SIDE; r++) {
        for (int c = 0; c < SIDE; c++) {
            float dr = (float)r - 13.5f, dc = (float)c - 13.5f;
            float d = dr * dr / 100.0f + dc * dc / 49.0f; /* an upright ellipse */
            float v = 1.0f - 2.5f * (d > 1.0f ? d - 1.0f : 1.0f - d);
            img[r * SIDE + c] = v > 0.0f ? v : 0.0f;
        }
    }
}

/* Draws the frame at the terminal's size and shows it; -1 on out of memory. */
static int show(CellBuf *b, int last_key)
{
    int w, h;
    term_size(&w, &h);
    if (b->w != w || b->h != h) {
        cellbuf_free(b);
        if (cellbuf_init(b, w, h) != 0) return -1;
    }
    cellbuf_clear(b);
    Palette p = term_palette();
    char line[96];
    snprintf(line, sizeof line, "w=%d h=%d mode=%s", w, h, mode_name(p.mode));
    cellbuf_text(b, 0, 0, line, COLOR_DEFAULT, COLOR_DEFAULT, ATTR_BOLD);
    /* function keys as "F<curses code>", characters as their code point */
    if (last_key >= TERM_FKEY(0))
        snprintf(line, sizeof line, "key=F%d pid=%ld", last_key - TERM_FKEY(0), (long)getpid());
    else
        snprintf(line, sizeof line, "key=%d pid=%ld", last_key, (long)getpid());
    cellbuf_text(b, 0, 1, line, COLOR_DEFAULT, COLOR_DEFAULT, 0);
    float img[SIDE * SIDE];
    ring_image(img);
    render_digit(b, 0, 2, img, SIDE, DIGIT_HALF, &p);
    Cell *corner = cellbuf_at(b, w - 1, h - 1);
    if (corner) *corner = (Cell){'Z', COLOR_DEFAULT, COLOR_DEFAULT, ATTR_REVERSE};
    term_present(b);
    return 0;
}

int main(int argc, char **argv)
{
    TermOptions o = {0};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--ascii")) o.force_ascii = 1;
        else if (!strcmp(argv[i], "--no-color")) o.force_no_color = 1;
        else return fprintf(stderr, "usage: term_demo [--ascii] [--no-color]\n"), 2;
    }
    Err e;
    if (term_open(&o, &e) != 0) return fprintf(stderr, "term_demo: %s\n", e.msg), 1;
    CellBuf b = {0};
    int status = show(&b, TERM_KEY_NONE) == 0 ? -1 : 1;
    while (status < 0) {
        int key = term_read_key(100);
        if (key == TERM_KEY_NONE) continue;
        if (key == 'q') status = 0;
        else if (key == TERM_KEY_INTERRUPT) status = 130;
        else if (key == 'c') raise(SIGSEGV);
        else if (show(&b, key) != 0) status = 1;
    }
    term_close();
    cellbuf_free(&b);
    if (status == 130) puts("interrupted");
    return status;
}
