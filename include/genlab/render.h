/* render.h — pure drawing onto a cell buffer: digits in half blocks, braille
 * plots, text. No curses here: the TUI copies a CellBuf to the screen, and
 * tests inspect it directly (DESIGN.md, "Screens"; REFERENCES.md, "Terminal UI").
 *
 * Colours are xterm-256 palette numbers (0–255), or COLOR_DEFAULT for the
 * terminal's own. The TUI turns each (fg, bg) into a colour pair. */
#ifndef GENLAB_RENDER_H
#define GENLAB_RENDER_H

#include <stddef.h>
#include <stdint.h>

#define COLOR_DEFAULT (-1)

enum { ATTR_BOLD = 1, ATTR_DIM = 2, ATTR_REVERSE = 4 };

typedef struct {
    uint32_t ch;  /* a Unicode code point; ' ' for blank */
    int16_t fg, bg;
    uint8_t attr;
} Cell;

typedef struct {
    int w, h;
    Cell *cells; /* h rows of w */
} CellBuf;

/* How colour and glyphs can be used, decided once from the terminal
 * (UTF-8 locale? colours? NO_COLOR? --ascii / --no-color). */
typedef enum {
    DISPLAY_256,   /* UTF-8 and ≥ 256 colours: half blocks on 30 greys */
    DISPLAY_16,    /* UTF-8 and 8/16 colours: half blocks on a coarse ramp */
    DISPLAY_ASCII  /* no UTF-8 or no colour: characters from an ASCII ramp */
} DisplayMode;

typedef struct {
    DisplayMode mode;
    int inverted; /* projector palette: ink dark on light */
} Palette;

int cellbuf_init(CellBuf *b, int w, int h); /* -1 on out of memory */
void cellbuf_free(CellBuf *b);
/* Fills with blanks in the default colours. */
void cellbuf_clear(CellBuf *b);
/* NULL outside the buffer. */
Cell *cellbuf_at(CellBuf *b, int x, int y);
/* Columns a UTF-8 string takes (one per code point; malformed bytes count
 * as the U+FFFD cellbuf_text would show). */
int utf8_columns(const char *utf8);
/* Writes UTF-8 text from (x, y), clipped at the buffer's edge; returns the
 * columns used. Every code point takes one column (the text genlab draws). */
int cellbuf_text(CellBuf *b, int x, int y, const char *utf8, int16_t fg, int16_t bg, uint8_t attr);

/* ---- greys ---- */

#define GREY_LEVELS 30
/* The 30 grey palette numbers from black to white: the colour cube's
 * 16, 59, 102, 145, 188, 231 merged with the ramp 232–255, by brightness. */
extern const int16_t grey_palette[GREY_LEVELS];
/* Intensity in [0,1] → palette number for the display mode (inverted
 * swaps ends). DISPLAY_16 uses 0, 8, 7, 15; DISPLAY_ASCII returns
 * COLOR_DEFAULT. */
int16_t grey_color(const Palette *p, float v);
/* ASCII ramp " .:-=+*#%@": intensity → character (inverted reverses it). */
char ascii_ramp(const Palette *p, float v);

/* ---- digits ----
 * img: side × side intensities in [0,1], row-major.
 * DIGIT_HALF:  one cell per 1 × 2 pixels: '▀' with fg = upper, bg = lower
 *              (equal pixels → ' ' on that background): side cols × side/2 rows.
 * DIGIT_LARGE: one pixel per 2 columns × 1 row (square pixels on most
 *              fonts): 2·side cols × side rows.
 * DIGIT_THUMB: 2 × 2 average down-sampling first, then DIGIT_HALF:
 *              side/2 cols × side/4 rows (14 × 7 for MNIST).
 * In DISPLAY_ASCII a cell shows ascii_ramp of the mean of the pixels it
 * covers. Clipped at the buffer's edge. */
typedef enum { DIGIT_HALF, DIGIT_LARGE, DIGIT_THUMB } DigitStyle;
void render_digit(CellBuf *b, int x, int y, const float *img, int side, DigitStyle style,
                  const Palette *p);
/* Cells a digit takes: *w columns, *h rows. */
void digit_extent(int side, DigitStyle style, int *w, int *h);

/* ---- braille canvas: w × h cells = 2w × 4h dots ----
 * Dot (0,0) is the top-left. Bits per cell (U+2800 + bits): left column
 * 0x01 0x02 0x04 0x40 top to bottom, right column 0x08 0x10 0x20 0x80. */
typedef struct {
    int w, h;
    uint8_t *bits;    /* w × h */
    int16_t *color;   /* w × h: colour of the last dot set in the cell */
} Braille;

int braille_init(Braille *c, int w, int h);
void braille_free(Braille *c);
void braille_clear(Braille *c);
void braille_set(Braille *c, int dx, int dy, int16_t color); /* ignores dots outside */
void braille_line(Braille *c, int x0, int y0, int x1, int y1, int16_t color);
/* Copies non-empty cells into b at (x, y). */
void braille_blit(const Braille *c, CellBuf *b, int x, int y, uint8_t attr);

/* ---- line plots (the loss curves) ----
 * A plot of several series over a shared x range, drawn into a w × h area:
 * y-axis labels at the left, x-axis and tick labels at the bottom, the
 * braille area in between. Linear or log10 y. Raw series are drawn as dim
 * dots, smoothed ones as lines, marker series as one glyph per point ('●'
 * in UTF-8, 'o' in ASCII). Points with non-finite or (log scale) ≤ 0 y
 * are skipped. With more points than dot columns, points are binned per
 * column (mean of the bin), so re-binning on resize is just redrawing. */
typedef enum { SERIES_DOTS, SERIES_LINE, SERIES_MARKERS } SeriesStyle;

typedef struct {
    const double *x, *y;
    int n;
    SeriesStyle style;
    int16_t color;
    const char *label; /* for the legend; NULL for none */
} PlotSeries;

typedef struct {
    double x_min, x_max;  /* x range; x_max > x_min */
    int log_y;
    const double *x_ticks; /* positions of vertical ticks (e.g. epoch ends), may be NULL */
    int n_x_ticks;
    const char *x_label;   /* e.g. "epoch" */
} PlotAxes;

/* Draws axes, tick labels with values (y: 3–5 labels, nice numbers; log:
 * powers of ten and their 2/5 multiples as room allows), series and a
 * one-line legend at the top. Returns -1 if the area is too small
 * (below 20 × 6) and draws nothing. Works in ASCII mode (then dots are
 * '.', lines '*', markers 'o'). */
int render_plot(CellBuf *b, int x, int y, int w, int h, const PlotAxes *ax,
                const PlotSeries *series, int nseries, const Palette *p);

/* The same plot as pixels, for export: w × h RGB (3 bytes a pixel) on
 * black, axes, epoch ticks and faint lines at the y ticks, series in
 * their colours (markers as 3 × 3 squares), no text. -1 when smaller than
 * 64 × 64 or out of memory. */
int render_plot_rgb(uint8_t *rgb, int w, int h, const PlotAxes *ax, const PlotSeries *series,
                    int nseries);
/* Approximate RGB of an xterm-256 colour (COLOR_DEFAULT: white). */
void palette_rgb(int16_t color, uint8_t rgb[3]);

/* The y range render_plot chooses for these series: data min/max padded
 * by 5% (log: in log space), never empty. Exposed for tests. */
void plot_y_range(const PlotAxes *ax, const PlotSeries *s, int n, double *lo, double *hi);

#endif
