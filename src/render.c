/* render.c — pure drawing onto a cell buffer: greys, half-block digits, a
 * braille canvas and line plots (see render.h). No curses, no globals but
 * constant tables; everything outside the buffer is clipped. */
#include "genlab/render.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    CH_REPLACEMENT = 0xFFFD,
    CH_UPPER_HALF = 0x2580, /* ▀ */
    CH_BRAILLE = 0x2800,    /* U+2800 + dot bits */
    CH_MARKER = 0x25CF,     /* ● */
    CH_HLINE = 0x2500,      /* ─ */
    CH_VLINE = 0x2502,      /* │ */
    CH_CORNER = 0x2514,     /* └ */
    CH_TICK_DOWN = 0x252C,  /* ┬ */
    CH_TICK_LEFT = 0x2524   /* ┤ */
};

static const Cell blank_cell = {' ', COLOR_DEFAULT, COLOR_DEFAULT, 0};

/* ---- cell buffer ---------------------------------------------------------- */

int cellbuf_init(CellBuf *b, int w, int h)
{
    b->w = b->h = 0;
    b->cells = NULL;
    if (w < 0 || h < 0 || (h > 0 && w > INT_MAX / h)) return -1;
    size_t n = (size_t)w * (size_t)h;
    if (n > 0 && !(b->cells = malloc(n * sizeof *b->cells))) return -1;
    b->w = w;
    b->h = h;
    cellbuf_clear(b);
    return 0;
}

void cellbuf_free(CellBuf *b)
{
    free(b->cells);
    b->cells = NULL;
    b->w = b->h = 0;
}

void cellbuf_clear(CellBuf *b)
{
    size_t n = (size_t)b->w * (size_t)b->h;
    for (size_t i = 0; i < n; i++) b->cells[i] = blank_cell;
}

Cell *cellbuf_at(CellBuf *b, int x, int y)
{
    if (!b->cells || x < 0 || y < 0 || x >= b->w || y >= b->h) return NULL;
    return &b->cells[(size_t)y * (size_t)b->w + (size_t)x];
}

/* Decodes one code point; returns the bytes consumed (at least 1). Invalid
 * sequences (stray continuation bytes, overlong forms, surrogates, beyond
 * U+10FFFF, truncation) become U+FFFD, one per maximal invalid subpart as
 * the Unicode standard recommends. A NUL is never a continuation byte, so
 * decoding stops at it and never reads past the end of the string. */
static int utf8_decode(const unsigned char *s, uint32_t *cp)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xBF; /* allowed second byte */
    int len;
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0; /* overlong */
        if (c == 0xED) hi = 0x9F; /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90; /* overlong */
        if (c == 0xF4) hi = 0x8F; /* beyond U+10FFFF */
    } else {
        *cp = CH_REPLACEMENT;
        return 1;
    }
    uint32_t v = c & (0x7Fu >> len);
    for (int i = 1; i < len; i++) {
        if (s[i] < lo || s[i] > hi) {
            *cp = CH_REPLACEMENT;
            return i;
        }
        v = v << 6 | (s[i] & 0x3Fu);
        lo = 0x80;
        hi = 0xBF;
    }
    *cp = v;
    return len;
}

/* Columns a UTF-8 string takes: one per code point. */
int utf8_columns(const char *utf8)
{
    const unsigned char *s = (const unsigned char *)utf8;
    int n = 0;
    for (uint32_t cp; *s; n++) s += utf8_decode(s, &cp);
    return n;
}

/* Control characters would move the terminal's cursor or print as two
 * columns ("^["), so they become U+FFFD like malformed bytes. */
static int is_control(uint32_t cp) { return cp < 0x20 || (cp >= 0x7F && cp < 0xA0); }

/* Returns the cells written: columns clipped off the buffer do not count. */
int cellbuf_text(CellBuf *b, int x, int y, const char *utf8, int16_t fg, int16_t bg, uint8_t attr)
{
    if (y < 0 || y >= b->h) return 0;
    const unsigned char *s = (const unsigned char *)utf8;
    int used = 0;
    /* long long: x + col must not overflow for any x */
    for (long long col = x; *s && col < b->w; col++) {
        uint32_t cp;
        s += utf8_decode(s, &cp);
        if (col < 0) continue;
        *cellbuf_at(b, (int)col, y) = (Cell){is_control(cp) ? CH_REPLACEMENT : cp, fg, bg, attr};
        used++;
    }
    return used;
}

/* ---- greys ---------------------------------------------------------------- */

/* Ordered by brightness (see grey_brightness): the ramp 232–255 with the
 * cube greys slotted in where their values fall. */
const int16_t grey_palette[GREY_LEVELS] = {
    16,  232, 233, 234, 235, 236, 237, 238, 239, 240, 59,  241, 242, 243, 244,
    102, 245, 246, 247, 248, 145, 249, 250, 251, 252, 188, 253, 254, 255, 231,
};

/* Brightness 0–255 of an xterm grey: ramp 232 + k is 8 + 10k; cube grey
 * 16 + 43i (i = 0..5) is 0 for i = 0, else 55 + 40i. */
static int grey_brightness(int color)
{
    if (color >= 232) return 8 + 10 * (color - 232);
    int i = (color - 16) / 43;
    return i == 0 ? 0 : 55 + 40 * i;
}

/* v clamped to [0,1] (NaN counts as 0, no ink), then flipped if inverted. */
static float ink(const Palette *p, float v)
{
    if (!(v >= 0.0f)) v = 0.0f;
    if (v > 1.0f) v = 1.0f;
    return p->inverted ? 1.0f - v : v;
}

static int16_t nearest_grey(float v)
{
    float target = v * 255.0f, best_diff = INFINITY;
    int16_t best = grey_palette[0];
    for (int i = 0; i < GREY_LEVELS; i++) {
        float diff = fabsf((float)grey_brightness(grey_palette[i]) - target);
        if (diff < best_diff) {
            best_diff = diff;
            best = grey_palette[i];
        }
    }
    return best;
}

int16_t grey_color(const Palette *p, float v)
{
    static const int16_t coarse[4] = {0, 8, 7, 15}; /* black, dark, light grey, white */
    v = ink(p, v);
    switch (p->mode) {
    case DISPLAY_256:
        return nearest_grey(v);
    case DISPLAY_16: {
        int q = (int)(v * 4.0f);
        return coarse[q > 3 ? 3 : q];
    }
    default:
        return COLOR_DEFAULT;
    }
}

char ascii_ramp(const Palette *p, float v)
{
    static const char ramp[] = " .:-=+*#%@";
    int i = (int)(ink(p, v) * 10.0f);
    return ramp[i > 9 ? 9 : i];
}

/* ---- digits --------------------------------------------------------------- */

/* A side × side image seen at 1/scale: pixel (r, c) is the mean of a
 * scale × scale block (the odd last row and column are dropped). */
typedef struct {
    const float *img;
    int side, scale;
} DigitView;

static int view_side(const DigitView *d) { return d->side / d->scale; }

static float view_pixel(const DigitView *d, int r, int c)
{
    float sum = 0.0f;
    for (int i = 0; i < d->scale; i++)
        for (int j = 0; j < d->scale; j++)
            sum += d->img[(size_t)(r * d->scale + i) * (size_t)d->side + (size_t)(c * d->scale + j)];
    return sum / (float)(d->scale * d->scale);
}

static void put_ascii(Cell *c, const Palette *p, float v)
{
    *c = (Cell){(uint32_t)ascii_ramp(p, v), COLOR_DEFAULT, COLOR_DEFAULT, 0};
}

/* '▀' shows two colours; equal ones need no glyph, just the background
 * (fg set to the same colour keeps the pairs within the greys × greys). */
static void put_half_block(Cell *c, int16_t upper, int16_t lower)
{
    if (upper == lower) *c = (Cell){' ', upper, upper, 0};
    else *c = (Cell){CH_UPPER_HALF, upper, lower, 0};
}

static void draw_half_blocks(CellBuf *b, int x, int y, const DigitView *d, const Palette *p)
{
    int n = view_side(d);
    for (int row = 0; 2 * row < n; row++) {
        for (int col = 0; col < n; col++) {
            Cell *c = cellbuf_at(b, x + col, y + row);
            if (!c) continue;
            float upper = view_pixel(d, 2 * row, col);
            int has_lower = 2 * row + 1 < n; /* odd side: the last lower half is background */
            float lower = has_lower ? view_pixel(d, 2 * row + 1, col) : 0.0f;
            if (p->mode == DISPLAY_ASCII) put_ascii(c, p, has_lower ? (upper + lower) / 2 : upper);
            else put_half_block(c, grey_color(p, upper), grey_color(p, lower));
        }
    }
}

static void draw_large(CellBuf *b, int x, int y, const DigitView *d, const Palette *p)
{
    int n = view_side(d);
    for (int row = 0; row < n; row++) {
        for (int col = 0; col < n; col++) {
            float v = view_pixel(d, row, col);
            int16_t grey = grey_color(p, v);
            for (int half = 0; half < 2; half++) {
                Cell *c = cellbuf_at(b, x + 2 * col + half, y + row);
                if (!c) continue;
                if (p->mode == DISPLAY_ASCII) put_ascii(c, p, v);
                else *c = (Cell){' ', grey, grey, 0};
            }
        }
    }
}

void render_digit(CellBuf *b, int x, int y, const float *img, int side, DigitStyle style,
                  const Palette *p)
{
    if (!img || side <= 0) return;
    DigitView d = {img, side, style == DIGIT_THUMB ? 2 : 1};
    if (style == DIGIT_LARGE) draw_large(b, x, y, &d, p);
    else draw_half_blocks(b, x, y, &d, p);
}

void digit_extent(int side, DigitStyle style, int *w, int *h)
{
    if (side < 0) side = 0;
    if (style == DIGIT_LARGE) {
        *w = 2 * side;
        *h = side;
        return;
    }
    int n = style == DIGIT_THUMB ? side / 2 : side;
    *w = n;
    *h = (n + 1) / 2; /* an odd last row takes a cell of its own */
}

/* ---- braille canvas ------------------------------------------------------- */

static const uint8_t braille_bit[2][4] = {
    {0x01, 0x02, 0x04, 0x40}, /* left column, top to bottom */
    {0x08, 0x10, 0x20, 0x80}, /* right column */
};

int braille_init(Braille *c, int w, int h)
{
    c->w = c->h = 0;
    c->bits = NULL;
    c->color = NULL;
    if (w < 0 || h < 0 || (h > 0 && w > INT_MAX / h)) return -1;
    size_t n = (size_t)w * (size_t)h;
    if (n > 0) {
        c->bits = malloc(n);
        c->color = malloc(n * sizeof *c->color);
        if (!c->bits || !c->color) {
            braille_free(c);
            return -1;
        }
    }
    c->w = w;
    c->h = h;
    braille_clear(c);
    return 0;
}

void braille_free(Braille *c)
{
    free(c->bits);
    free(c->color);
    c->bits = NULL;
    c->color = NULL;
    c->w = c->h = 0;
}

void braille_clear(Braille *c)
{
    size_t n = (size_t)c->w * (size_t)c->h;
    if (n == 0) return;
    memset(c->bits, 0, n);
    for (size_t i = 0; i < n; i++) c->color[i] = COLOR_DEFAULT;
}

void braille_set(Braille *c, int dx, int dy, int16_t color)
{
    if (dx < 0 || dy < 0 || dx / 2 >= c->w || dy / 4 >= c->h) return;
    size_t k = (size_t)(dy / 4) * (size_t)c->w + (size_t)(dx / 2);
    c->bits[k] |= braille_bit[dx % 2][dy % 4];
    c->color[k] = color;
}

/* Bresenham; 64-bit arithmetic so no coordinates can overflow. Every dot
 * of the line is visited, so keep the ends near the canvas. */
void braille_line(Braille *c, int x0, int y0, int x1, int y1, int16_t color)
{
    long long x = x0, y = y0;
    long long dx = llabs((long long)x1 - x0), dy = -llabs((long long)y1 - y0);
    int sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
    long long err = dx + dy;
    for (;;) {
        braille_set(c, (int)x, (int)y, color);
        if (x == x1 && y == y1) break;
        long long e2 = 2 * err;
        if (e2 >= dy) {
            err += dy;
            x += sx;
        }
        if (e2 <= dx) {
            err += dx;
            y += sy;
        }
    }
}

static int is_braille(uint32_t ch) { return ch >= CH_BRAILLE && ch <= CH_BRAILLE + 0xFF; }

/* Dots already in a braille cell of b stay, so layers (several series) can
 * be blitted one after another; the cell takes the newer colour. */
void braille_blit(const Braille *c, CellBuf *b, int x, int y, uint8_t attr)
{
    for (int j = 0; j < c->h; j++) {
        for (int i = 0; i < c->w; i++) {
            size_t k = (size_t)j * (size_t)c->w + (size_t)i;
            Cell *cell = c->bits[k] ? cellbuf_at(b, x + i, y + j) : NULL;
            if (!cell) continue;
            uint32_t bits = c->bits[k];
            if (is_braille(cell->ch)) bits |= cell->ch - CH_BRAILLE;
            cell->ch = CH_BRAILLE + bits;
            cell->fg = c->color[k];
            cell->attr = attr;
        }
    }
}

/* ---- line plots ----------------------------------------------------------- */

#define MAX_Y_TICKS 5
#define LABEL_CAP 16
#define MIN_PLOT_W 20
#define MIN_PLOT_H 6

/* Where things go in a plot's w × h area: legend on the top row, then pr
 * rows of braille (pw cells wide, after the y labels and the axis), the
 * x-axis row and the x tick label row. */
typedef struct {
    int x, y, w, h;
    int px, py, pw, pr;
    int log_y;
    double lo, hi; /* y range, log10 units when log_y */
    double x_min, x_max;
    int utf8;
} PlotFrame;

typedef struct {
    int n;
    int row[MAX_Y_TICKS];
    char label[MAX_Y_TICKS][LABEL_CAP];
} YTicks;

/* The point is drawn (and counts for the y range). */
static int point_usable(const PlotAxes *ax, double x, double y)
{
    return isfinite(x) && isfinite(y) && x >= ax->x_min && x <= ax->x_max && (!ax->log_y || y > 0);
}

static double y_scaled(int log_y, double v) { return log_y ? log10(v) : v; }

/* The y range in plotting units (log10 when log_y): render_plot works in
 * these, so a log range near DBL_MAX never overflows through pow(). */
static void y_range_scaled(const PlotAxes *ax, const PlotSeries *s, int n, double *lo, double *hi)
{
    double mn = INFINITY, mx = -INFINITY;
    for (int i = 0; i < n; i++) {
        if (!s[i].x || !s[i].y) continue;
        for (int k = 0; k < s[i].n; k++) {
            if (!point_usable(ax, s[i].x[k], s[i].y[k])) continue;
            double v = y_scaled(ax->log_y, s[i].y[k]);
            mn = fmin(mn, v);
            mx = fmax(mx, v);
        }
    }
    if (mn > mx) { /* no data: [0,1], or [1,10] on a log scale */
        mn = 0;
        mx = 1;
    }
    double span = mx - mn;
    if (span == 0) span = ax->log_y || mn == 0 ? 1 : fabs(mn);
    *lo = mn - 0.05 * span;
    *hi = mx + 0.05 * span;
}

void plot_y_range(const PlotAxes *ax, const PlotSeries *s, int n, double *lo, double *hi)
{
    y_range_scaled(ax, s, n, lo, hi);
    if (ax->log_y) {
        *lo = pow(10, *lo);
        *hi = pow(10, *hi);
    }
}

static int clamp_int(long v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : (int)v; }

/* Dot column of x: x_min at the first, x_max at the last. */
static int dot_col(const PlotFrame *f, double x)
{
    int cols = 2 * f->pw;
    double t = (x - f->x_min) / (f->x_max - f->x_min);
    return clamp_int(lround(fmin(fmax(t, 0), 1) * (cols - 1)), 0, cols - 1);
}

/* Dot row of v (plotting units): hi at the top, lo at the bottom. */
static int dot_row(const PlotFrame *f, double v)
{
    int rows = 4 * f->pr;
    double t = (f->hi - v) / (f->hi - f->lo);
    return clamp_int(lround(fmin(fmax(t, 0), 1) * (rows - 1)), 0, rows - 1);
}

/* 250, 1.5k, 2M, 0.02, 1e-3: three significant digits at most. */
static void format_compact(char *out, size_t cap, double v)
{
    if (v == 0 || !isfinite(v)) {
        snprintf(out, cap, "%g", v == 0 ? 0.0 : v);
        return;
    }
    char sci[32];
    snprintf(sci, sizeof sci, "%.2e", v); /* rounds first, so 999.7 is 1.00e+03 */
    char *e = strchr(sci, 'e');
    int exp = atoi(e + 1);
    *e = '\0';
    double mant = strtod(sci, NULL);
    if (exp >= 9 || exp < -2) snprintf(out, cap, "%.3ge%d", mant, exp);
    else if (exp >= 6) snprintf(out, cap, "%.3gM", mant * pow(10, exp - 6));
    else if (exp >= 3) snprintf(out, cap, "%.3gk", mant * pow(10, exp - 3));
    else snprintf(out, cap, "%.3g", mant * pow(10, exp));
}

/* Multiples of the smallest 1/2/5 × 10^k step that gives at most max of
 * them in [lo, hi]. */
static int nice_ticks(double lo, double hi, int max, double *out)
{
    static const double mult[] = {1, 2, 5};
    double base = pow(10, floor(log10((hi - lo) / max)));
    /* base·1 can give up to 10·max ticks; base·10 at most max + 1 */
    for (int decade = 0; decade < 3; decade++, base *= 10) {
        for (int m = 0; m < 3; m++) {
            double step = base * mult[m], first = ceil(lo / step), count = floor(hi / step) - first + 1;
            if (!(count <= max)) continue;
            int n = count > 0 ? (int)count : 0;
            for (int i = 0; i < n; i++) out[i] = (first + i) * step;
            return n;
        }
    }
    return 0;
}

/* Powers of ten in [lo, hi] (log10 units) whose exponent is a multiple of
 * every, with their 2× and 5× multiples when with_25. Writes at most cap
 * values; a result above cap means there were too many. */
static int decade_ticks(double lo, double hi, int every, int with_25, double *out, int cap)
{
    static const double mult[] = {1, 2, 5};
    int n = 0;
    for (double k = floor(lo); k <= hi && n <= cap; k++) {
        if (fmod(k, every) != 0) continue;
        for (int m = 0; m < (with_25 ? 3 : 1); m++) {
            double l = k + log10(mult[m]);
            if (l < lo || l > hi) continue;
            if (n < cap) out[n] = pow(10, k) * mult[m];
            n++;
        }
    }
    return n;
}

/* Log axis: 1-2-5 series if they fit, else powers of ten, thinned to every
 * other (third, ...) decade; within less than a decade, linear nice ticks. */
static int log_ticks(double lo, double hi, int max, double *out)
{
    int n = decade_ticks(lo, hi, 1, 1, out, max);
    if (n < 2) return nice_ticks(pow(10, lo), pow(10, hi), max, out);
    for (int every = 1; n > max; every++) n = decade_ticks(lo, hi, every, 0, out, max);
    return n;
}

/* Tick values, their rows and labels; two ticks never share a row. */
static void make_y_ticks(const PlotFrame *f, YTicks *t)
{
    double v[MAX_Y_TICKS];
    int max = f->pr < MAX_Y_TICKS ? f->pr : MAX_Y_TICKS;
    int n = f->log_y ? log_ticks(f->lo, f->hi, max, v) : nice_ticks(f->lo, f->hi, max, v);
    t->n = 0;
    for (int i = 0; i < n; i++) {
        int row = dot_row(f, y_scaled(f->log_y, v[i])) / 4;
        if (t->n > 0 && row == t->row[t->n - 1]) continue;
        t->row[t->n] = row;
        format_compact(t->label[t->n], LABEL_CAP, v[i]);
        t->n++;
    }
}

static void put_glyph(CellBuf *b, int x, int y, uint32_t ch, int16_t fg, uint8_t attr)
{
    Cell *c = cellbuf_at(b, x, y);
    if (c) *c = (Cell){ch, fg, COLOR_DEFAULT, attr};
}

static void clear_area(CellBuf *b, int x, int y, int w, int h)
{
    long long x0 = x > 0 ? x : 0, y0 = y > 0 ? y : 0;
    long long x1 = (long long)x + w, y1 = (long long)y + h;
    if (x1 > b->w) x1 = b->w;
    if (y1 > b->h) y1 = b->h;
    for (long long j = y0; j < y1; j++)
        for (long long i = x0; i < x1; i++) *cellbuf_at(b, (int)i, (int)j) = blank_cell;
}

static void draw_y_axis(CellBuf *b, const PlotFrame *f, const YTicks *t)
{
    int axis = f->px - 1;
    uint32_t line = f->utf8 ? CH_VLINE : '|';
    for (int r = 0; r < f->pr; r++) put_glyph(b, axis, f->py + r, line, COLOR_DEFAULT, 0);
    for (int i = 0; i < t->n; i++) {
        int row = f->py + t->row[i];
        put_glyph(b, axis, row, f->utf8 ? CH_TICK_LEFT : '+', COLOR_DEFAULT, 0);
        cellbuf_text(b, axis - (int)strlen(t->label[i]), row, t->label[i], COLOR_DEFAULT, COLOR_DEFAULT, 0);
    }
}

/* The axis line with a tick per x tick; under it, the x label at the
 * right end and tick labels centred under their ticks where they fit
 * (one blank column between neighbours, ticks taken in order). */
static void draw_x_axis(CellBuf *b, const PlotFrame *f, const PlotAxes *ax)
{
    int axis_row = f->py + f->pr, label_row = axis_row + 1, end = f->x + f->w;
    uint32_t line = f->utf8 ? CH_HLINE : '-';
    put_glyph(b, f->px - 1, axis_row, f->utf8 ? CH_CORNER : '+', COLOR_DEFAULT, 0);
    for (int c = 0; c < f->pw; c++) put_glyph(b, f->px + c, axis_row, line, COLOR_DEFAULT, 0);
    if (ax->x_label) {
        int len = utf8_columns(ax->x_label);
        if (len < f->pw) {
            end -= len;
            cellbuf_text(b, end, label_row, ax->x_label, COLOR_DEFAULT, COLOR_DEFAULT, 0);
            end--; /* a blank before it */
        }
    }
    int prev_end = f->x - 2; /* last column used by a tick label */
    for (int i = 0; ax->x_ticks && i < ax->n_x_ticks; i++) {
        double v = ax->x_ticks[i];
        if (!(v >= ax->x_min && v <= ax->x_max)) continue;
        int col = f->px + dot_col(f, v) / 2;
        put_glyph(b, col, axis_row, f->utf8 ? CH_TICK_DOWN : '+', COLOR_DEFAULT, 0);
        char label[LABEL_CAP];
        format_compact(label, sizeof label, v);
        int len = (int)strlen(label), start = col - len / 2;
        if (start < f->x) start = f->x;
        if (start < prev_end + 2 || start + len > end) continue;
        cellbuf_text(b, start, label_row, label, COLOR_DEFAULT, COLOR_DEFAULT, 0);
        prev_end = start + len - 1;
    }
}

static const char *legend_key(SeriesStyle style, int utf8)
{
    switch (style) {
    case SERIES_DOTS: return utf8 ? "··" : "..";
    case SERIES_LINE: return utf8 ? "──" : "**";
    default: return utf8 ? "●" : "o";
    }
}

static uint8_t series_attr(SeriesStyle style) { return style == SERIES_DOTS ? ATTR_DIM : 0; }

/* "── train  ● test" on the top row, from the plot's left edge; an entry
 * that does not fit whole ends the legend. */
static void draw_legend(CellBuf *b, const PlotFrame *f, const PlotSeries *s, int n)
{
    int col = f->px, end = f->x + f->w;
    for (int i = 0; i < n; i++) {
        if (!s[i].label) continue;
        const char *key = legend_key(s[i].style, f->utf8);
        int key_w = utf8_columns(key), label_w = utf8_columns(s[i].label);
        if (col + key_w + 1 + label_w > end) break;
        cellbuf_text(b, col, f->y, key, s[i].color, COLOR_DEFAULT, series_attr(s[i].style));
        cellbuf_text(b, col + key_w + 1, f->y, s[i].label, COLOR_DEFAULT, COLOR_DEFAULT, 0);
        col += key_w + 1 + label_w + 2;
    }
}

/* Draws one series' points (dot coordinates within the plot) as they come.
 * b is NULL when the plot is rasterised (render_plot_rgb). */
typedef struct {
    CellBuf *b;
    const PlotFrame *f;
    const PlotSeries *s;
    Braille *canvas;
    int have_prev, prev_col, prev_row;
} Pen;

static void pen_point(Pen *pen, int col, int row)
{
    const PlotSeries *s = pen->s;
    const PlotFrame *f = pen->f;
    if (s->style == SERIES_MARKERS && pen->b) {
        put_glyph(pen->b, f->px + col / 2, f->py + row / 4, f->utf8 ? CH_MARKER : 'o', s->color, 0);
    } else if (s->style == SERIES_MARKERS) { /* a raster: a 3 × 3 block of dots */
        for (int dy = -1; dy <= 1; dy++)
            for (int dx = -1; dx <= 1; dx++) braille_set(pen->canvas, col + dx, row + dy, s->color);
    } else if (s->style == SERIES_LINE && pen->have_prev) {
        braille_line(pen->canvas, pen->prev_col, pen->prev_row, col, row, s->color);
    } else {
        braille_set(pen->canvas, col, row, s->color);
    }
    pen->have_prev = 1;
    pen->prev_col = col;
    pen->prev_row = row;
}

/* Feeds the series to the pen; with more points than dot columns, one
 * point per column at the mean y of the points that fall in it.
 * sum and count have one slot per dot column. */
static void trace_series(Pen *pen, const PlotAxes *ax, double *sum, int *count)
{
    const PlotSeries *s = pen->s;
    const PlotFrame *f = pen->f;
    if (!s->x || !s->y) return;
    int cols = 2 * f->pw, binned = s->n > cols;
    if (binned) {
        memset(sum, 0, (size_t)cols * sizeof *sum);
        memset(count, 0, (size_t)cols * sizeof *count);
    }
    for (int k = 0; k < s->n; k++) {
        if (!point_usable(ax, s->x[k], s->y[k])) continue;
        int col = dot_col(f, s->x[k]);
        if (binned) {
            sum[col] += s->y[k];
            count[col]++;
        } else {
            pen_point(pen, col, dot_row(f, y_scaled(f->log_y, s->y[k])));
        }
    }
    for (int c = 0; binned && c < cols; c++)
        if (count[c]) pen_point(pen, c, dot_row(f, y_scaled(f->log_y, sum[c] / count[c])));
}

/* ASCII mode: a plain character in every cell with dots. */
static void blit_ascii(const Braille *c, CellBuf *b, int x, int y, char glyph, uint8_t attr)
{
    for (int j = 0; j < c->h; j++)
        for (int i = 0; i < c->w; i++) {
            size_t k = (size_t)j * (size_t)c->w + (size_t)i;
            if (c->bits[k]) put_glyph(b, x + i, y + j, (uint32_t)glyph, c->color[k], attr);
        }
}

typedef struct {
    Braille canvas;
    double *sum;
    int *count;
} PlotScratch;

static void scratch_free(PlotScratch *sc)
{
    braille_free(&sc->canvas);
    free(sc->sum);
    free(sc->count);
}

static int scratch_init(PlotScratch *sc, int pw, int pr)
{
    int rc = braille_init(&sc->canvas, pw, pr);
    sc->sum = malloc((size_t)(2 * pw) * sizeof *sc->sum);
    sc->count = malloc((size_t)(2 * pw) * sizeof *sc->count);
    if (rc == 0 && sc->sum && sc->count) return 0;
    scratch_free(sc);
    return -1;
}

/* Dots and lines first, each series on its own canvas (for its attr);
 * markers last, on top. */
static void draw_series(CellBuf *b, const PlotFrame *f, const PlotAxes *ax, const PlotSeries *s, int n,
                        PlotScratch *sc)
{
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < n; i++) {
            if ((s[i].style == SERIES_MARKERS) != pass) continue;
            Pen pen = {b, f, &s[i], &sc->canvas, 0, 0, 0};
            braille_clear(&sc->canvas);
            trace_series(&pen, ax, sc->sum, sc->count);
            if (s[i].style == SERIES_MARKERS) continue; /* already in b */
            uint8_t attr = series_attr(s[i].style);
            if (f->utf8) braille_blit(&sc->canvas, b, f->px, f->py, attr);
            else blit_ascii(&sc->canvas, b, f->px, f->py, s[i].style == SERIES_DOTS ? '.' : '*', attr);
        }
    }
}

int render_plot(CellBuf *b, int x, int y, int w, int h, const PlotAxes *ax,
                const PlotSeries *series, int nseries, const Palette *p)
{
    if (w < MIN_PLOT_W || h < MIN_PLOT_H || !(ax->x_max > ax->x_min) || !isfinite(ax->x_max - ax->x_min))
        return -1;
    if (!series || nseries < 0) nseries = 0;
    PlotFrame f = {.x = x, .y = y, .w = w, .h = h, .py = y + 1, .pr = h - 3, .log_y = ax->log_y,
                   .x_min = ax->x_min, .x_max = ax->x_max, .utf8 = p->mode != DISPLAY_ASCII};
    y_range_scaled(ax, series, nseries, &f.lo, &f.hi);
    YTicks ticks;
    make_y_ticks(&f, &ticks); /* rows depend on pr only; the width on the labels */
    int label_w = 1;
    for (int i = 0; i < ticks.n; i++) {
        int len = (int)strlen(ticks.label[i]);
        if (len > label_w) label_w = len;
    }
    f.px = x + label_w + 1;
    f.pw = w - label_w - 1;
    PlotScratch sc;
    if (scratch_init(&sc, f.pw, f.pr) < 0) return -1;
    clear_area(b, x, y, w, h);
    draw_y_axis(b, &f, &ticks);
    draw_x_axis(b, &f, ax);
    draw_legend(b, &f, series, nseries);
    draw_series(b, &f, ax, series, nseries, &sc);
    scratch_free(&sc);
    return 0;
}

/* ---- the same plot as pixels ---------------------------------------------- */

void palette_rgb(int16_t color, uint8_t rgb[3])
{
    static const uint8_t base[16][3] = {
        {0, 0, 0},       {205, 0, 0},   {0, 205, 0},   {205, 205, 0},   {0, 0, 238},     {205, 0, 205},
        {0, 205, 205},   {229, 229, 229}, {127, 127, 127}, {255, 0, 0},   {0, 255, 0},     {255, 255, 0},
        {92, 92, 255},   {255, 0, 255}, {0, 255, 255}, {255, 255, 255}};
    if (color < 0) color = 15;
    if (color < 16) {
        memcpy(rgb, base[color], 3);
    } else if (color < 232) {
        int c = color - 16, v[3] = {c / 36, c / 6 % 6, c % 6};
        for (int i = 0; i < 3; i++) rgb[i] = (uint8_t)(v[i] ? 55 + 40 * v[i] : 0);
    } else {
        rgb[0] = rgb[1] = rgb[2] = (uint8_t)(8 + 10 * (color - 232));
    }
}

static void put_pixel(uint8_t *img, int w, int h, int x, int y, const uint8_t c[3])
{
    if (x >= 0 && y >= 0 && x < w && y < h) memcpy(img + ((size_t)y * (size_t)w + (size_t)x) * 3, c, 3);
}

/* The dots of a braille canvas as pixels at (x0, y0), in each cell's colour. */
static void canvas_to_pixels(const Braille *c, uint8_t *img, int w, int h, int x0, int y0)
{
    static const uint8_t bit[4][2] = {{0x01, 0x08}, {0x02, 0x10}, {0x04, 0x20}, {0x40, 0x80}};
    for (int cy = 0; cy < c->h; cy++)
        for (int cx = 0; cx < c->w; cx++) {
            size_t k = (size_t)cy * (size_t)c->w + (size_t)cx;
            if (!c->bits[k]) continue;
            uint8_t rgb[3];
            palette_rgb(c->color[k], rgb);
            for (int r = 0; r < 4; r++)
                for (int d = 0; d < 2; d++)
                    if (c->bits[k] & bit[r][d]) put_pixel(img, w, h, x0 + 2 * cx + d, y0 + 4 * cy + r, rgb);
        }
}

/* Axes, epoch ticks and faint horizontal lines at the y ticks. */
static void raster_axes(uint8_t *img, int w, int h, const PlotFrame *f, const PlotAxes *ax, int m)
{
    const uint8_t axis[3] = {110, 110, 110}, grid[3] = {38, 38, 38};
    int bottom = m + 4 * f->pr, right = m + 2 * f->pw;
    double v[MAX_Y_TICKS];
    int n = f->log_y ? log_ticks(f->lo, f->hi, MAX_Y_TICKS, v) : nice_ticks(f->lo, f->hi, MAX_Y_TICKS, v);
    for (int i = 0; i < n; i++) {
        int y = m + dot_row(f, y_scaled(f->log_y, v[i]));
        for (int x = m; x < right; x++) put_pixel(img, w, h, x, y, grid);
    }
    for (int y = m; y <= bottom; y++) put_pixel(img, w, h, m - 1, y, axis);
    for (int x = m - 1; x < right; x++) put_pixel(img, w, h, x, bottom, axis);
    for (int i = 0; ax->x_ticks && i < ax->n_x_ticks; i++) {
        int x = m + dot_col(f, ax->x_ticks[i]);
        for (int y = bottom + 1; y <= bottom + 4; y++) put_pixel(img, w, h, x, y, axis);
    }
}

int render_plot_rgb(uint8_t *rgb, int w, int h, const PlotAxes *ax, const PlotSeries *series, int nseries)
{
    const int m = 8; /* margin in pixels */
    if (w < 8 * m || h < 8 * m || !(ax->x_max > ax->x_min) || !isfinite(ax->x_max - ax->x_min)) return -1;
    PlotFrame f = {.pw = (w - 2 * m) / 2, .pr = (h - 2 * m) / 4, .log_y = ax->log_y,
                   .x_min = ax->x_min, .x_max = ax->x_max, .utf8 = 1};
    y_range_scaled(ax, series, nseries, &f.lo, &f.hi);
    PlotScratch sc;
    if (scratch_init(&sc, f.pw, f.pr) < 0) return -1;
    memset(rgb, 0, (size_t)w * (size_t)h * 3);
    raster_axes(rgb, w, h, &f, ax, m);
    for (int pass = 0; pass < 2; pass++) /* markers last, on top */
        for (int i = 0; i < nseries; i++) {
            if ((series[i].style == SERIES_MARKERS) != pass) continue;
            Pen pen = {NULL, &f, &series[i], &sc.canvas, 0, 0, 0};
            braille_clear(&sc.canvas);
            trace_series(&pen, ax, sc.sum, sc.count);
            canvas_to_pixels(&sc.canvas, rgb, w, h, m, m);
        }
    scratch_free(&sc);
    return 0;
}
