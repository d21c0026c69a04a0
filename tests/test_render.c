/* render: greys, half-block digits, braille, plots and text, checked on
 * cell buffers. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "genlab/render.h"

static const Palette P256 = {DISPLAY_256, 0};
static const Palette P256_INV = {DISPLAY_256, 1};
static const Palette P16 = {DISPLAY_16, 0};
static const Palette PASCII = {DISPLAY_ASCII, 0};

enum { BLACK = 16, WHITE = 231, MID_GREY = 244 /* 0x80, nearest to 127.5 */ };
#define UPPER_HALF 0x2580u
#define SENTINEL 'X'

/* ---- helpers -------------------------------------------------------------- */

/* xterm's own formulas, independent of render.c's table. */
static int brightness(int color)
{
    static const int cube[6] = {0x00, 0x5f, 0x87, 0xaf, 0xd7, 0xff};
    if (color >= 232) return 8 + 10 * (color - 232);
    return cube[(color - 16) / 36 % 6]; /* a grey has r = g = b */
}

static void fill_sentinel(CellBuf *b)
{
    for (int i = 0; i < b->w * b->h; i++) b->cells[i] = (Cell){SENTINEL, 1, 2, 0};
}

static int is_sentinel(const Cell *c) { return c->ch == SENTINEL && c->fg == 1 && c->bg == 2; }

static int count_changed(const CellBuf *b)
{
    int n = 0;
    for (int i = 0; i < b->w * b->h; i++) n += !is_sentinel(&b->cells[i]);
    return n;
}

static size_t put_utf8(char *out, uint32_t cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Row y of b as UTF-8 (out must hold 4·w + 1 bytes). */
static char *row_text(CellBuf *b, int y, char *out)
{
    size_t n = 0;
    for (int x = 0; x < b->w; x++) n += put_utf8(out + n, cellbuf_at(b, x, y)->ch);
    out[n] = '\0';
    return out;
}

static int row_contains(CellBuf *b, int y, const char *needle)
{
    char *line = malloc((size_t)b->w * 4 + 1);
    int found = strstr(row_text(b, y, line), needle) != NULL;
    free(line);
    return found;
}

static int find_glyph(CellBuf *b, uint32_t ch, int *x, int *y)
{
    for (int j = 0; j < b->h; j++)
        for (int i = 0; i < b->w; i++)
            if (cellbuf_at(b, i, j)->ch == ch) {
                *x = i;
                *y = j;
                return 1;
            }
    return 0;
}

static int is_braille(uint32_t ch) { return ch >= 0x2800 && ch <= 0x28FF; }

/* Every braille dot in b, in buffer dot coordinates (2 per column, 4 per row). */
static int collect_dots(CellBuf *b, int *dx, int *dy, int cap)
{
    static const uint8_t bit[2][4] = {{0x01, 0x02, 0x04, 0x40}, {0x08, 0x10, 0x20, 0x80}};
    int n = 0;
    for (int j = 0; j < b->h; j++)
        for (int i = 0; i < b->w; i++) {
            uint32_t ch = cellbuf_at(b, i, j)->ch;
            if (!is_braille(ch)) continue;
            for (int c = 0; c < 2; c++)
                for (int r = 0; r < 4; r++)
                    if ((ch - 0x2800) & bit[c][r] && n < cap) {
                        dx[n] = 2 * i + c;
                        dy[n] = 4 * j + r;
                        n++;
                    }
        }
    return n;
}

static int canvas_dot(const Braille *c, int dx, int dy)
{
    static const uint8_t bit[2][4] = {{0x01, 0x02, 0x04, 0x40}, {0x08, 0x10, 0x20, 0x80}};
    return (c->bits[(dy / 4) * c->w + dx / 2] & bit[dx % 2][dy % 4]) != 0;
}

static int canvas_dot_count(const Braille *c)
{
    int n = 0;
    for (int i = 0; i < c->w * c->h; i++)
        for (int k = 0; k < 8; k++) n += c->bits[i] >> k & 1;
    return n;
}

static void assert_all_ascii(CellBuf *b)
{
    for (int i = 0; i < b->w * b->h; i++) assert_true(b->cells[i].ch <= 127);
}

/* ---- cell buffer and text ------------------------------------------------- */

static void test_cellbuf_basics(void **state)
{
    (void)state;
    CellBuf b;
    assert_int_equal(cellbuf_init(&b, 4, 3), 0);
    assert_int_equal(cellbuf_at(&b, 3, 2)->ch, ' ');
    assert_int_equal(cellbuf_at(&b, 0, 0)->fg, COLOR_DEFAULT);
    assert_null(cellbuf_at(&b, -1, 0));
    assert_null(cellbuf_at(&b, 0, -1));
    assert_null(cellbuf_at(&b, 4, 0));
    assert_null(cellbuf_at(&b, 0, 3));
    cellbuf_at(&b, 1, 1)->ch = 'z';
    cellbuf_clear(&b);
    assert_int_equal(cellbuf_at(&b, 1, 1)->ch, ' ');
    cellbuf_free(&b);
    assert_int_equal(cellbuf_init(&b, -1, 3), -1);
}

static void test_text_utf8_and_clipping(void **state)
{
    (void)state;
    CellBuf b;
    assert_int_equal(cellbuf_init(&b, 8, 2), 0);

    assert_int_equal(cellbuf_text(&b, 0, 0, "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80", 5, 6, ATTR_BOLD), 4);
    const uint32_t want[] = {'a', 0xE9, 0x20AC, 0x1F600};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(cellbuf_at(&b, i, 0)->ch, want[i]);
        assert_int_equal(cellbuf_at(&b, i, 0)->fg, 5);
        assert_int_equal(cellbuf_at(&b, i, 0)->bg, 6);
        assert_int_equal(cellbuf_at(&b, i, 0)->attr, ATTR_BOLD);
    }

    /* stray continuation, overlong, surrogate, above U+10FFFF, bad lead byte */
    cellbuf_clear(&b);
    assert_int_equal(cellbuf_text(&b, 0, 1, "\x80" "b\xC0\xAF" "c\xED\xA0\x80", 0, 0, 0), 8);
    const uint32_t bad[] = {0xFFFD, 'b', 0xFFFD, 0xFFFD, 'c', 0xFFFD, 0xFFFD, 0xFFFD};
    for (int i = 0; i < 8; i++) assert_int_equal(cellbuf_at(&b, i, 1)->ch, bad[i]);
    cellbuf_clear(&b);
    assert_int_equal(cellbuf_text(&b, 0, 0, "\xF4\x90\x80\x80" "d\xFF", 0, 0, 0), 6);
    assert_int_equal(cellbuf_at(&b, 4, 0)->ch, 'd');
    assert_int_equal(cellbuf_at(&b, 5, 0)->ch, 0xFFFD);

    /* control characters (C0, DEL, C1) would move the cursor: replaced */
    cellbuf_clear(&b);
    assert_int_equal(cellbuf_text(&b, 0, 0, "a\tb\x1b\x7f\xC2\x85", 0, 0, 0), 6);
    const uint32_t ctl[] = {'a', 0xFFFD, 'b', 0xFFFD, 0xFFFD, 0xFFFD};
    for (int i = 0; i < 6; i++) assert_int_equal(cellbuf_at(&b, i, 0)->ch, ctl[i]);

    /* a sequence cut by the end of the string: exact-size heap copies so
     * ASan sees any read past the NUL */
    const char *cut[] = {"x\xE2\x82", "x\xF0\x9F\x98", "x\xC3"};
    for (int i = 0; i < 3; i++) {
        size_t len = strlen(cut[i]) + 1;
        char *s = malloc(len);
        memcpy(s, cut[i], len);
        cellbuf_clear(&b);
        assert_int_equal(cellbuf_text(&b, 0, 0, s, 0, 0, 0), 2);
        assert_int_equal(cellbuf_at(&b, 0, 0)->ch, 'x');
        assert_int_equal(cellbuf_at(&b, 1, 0)->ch, 0xFFFD);
        assert_int_equal(cellbuf_at(&b, 2, 0)->ch, ' ');
        free(s);
    }

    /* clipping: right edge, left edge, rows outside */
    cellbuf_clear(&b);
    assert_int_equal(cellbuf_text(&b, 5, 0, "héllo", 0, 0, 0), 3);
    assert_int_equal(cellbuf_at(&b, 5, 0)->ch, 'h');
    assert_int_equal(cellbuf_at(&b, 7, 0)->ch, 'l');
    assert_int_equal(cellbuf_text(&b, -3, 1, "abcdé", 0, 0, 0), 2);
    assert_int_equal(cellbuf_at(&b, 0, 1)->ch, 'd');
    assert_int_equal(cellbuf_at(&b, 1, 1)->ch, 0xE9);
    assert_int_equal(cellbuf_at(&b, 2, 1)->ch, ' ');
    assert_int_equal(cellbuf_text(&b, 0, -1, "abc", 0, 0, 0), 0);
    assert_int_equal(cellbuf_text(&b, 0, 2, "abc", 0, 0, 0), 0);
    assert_int_equal(cellbuf_text(&b, 8, 0, "abc", 0, 0, 0), 0);
    assert_int_equal(cellbuf_text(&b, -100, 0, "abc", 0, 0, 0), 0);
    cellbuf_free(&b);
}

/* ---- greys ---------------------------------------------------------------- */

static void test_grey_palette(void **state)
{
    (void)state;
    assert_int_equal(grey_palette[0], 16);
    assert_int_equal(grey_palette[GREY_LEVELS - 1], 231);
    int seen[256] = {0};
    for (int i = 0; i < GREY_LEVELS; i++) {
        int c = grey_palette[i];
        assert_true((c >= 232 && c <= 255) || c == 16 || c == 59 || c == 102 || c == 145 || c == 188 ||
                    c == 231);
        assert_int_equal(seen[c]++, 0);
        if (i > 0) assert_true(brightness(grey_palette[i - 1]) < brightness(c));
    }
}

static void test_grey_color(void **state)
{
    (void)state;
    assert_int_equal(grey_color(&P256, 0.0f), BLACK);
    assert_int_equal(grey_color(&P256, 1.0f), WHITE);
    assert_int_equal(grey_color(&P256, 0.5f), MID_GREY);
    assert_int_equal(grey_color(&P256, 0.25f), 238); /* 63.75: 0x44 = 68 beats 0x3a = 58 */
    assert_int_equal(grey_color(&P256, 95.0f / 255), 59);
    assert_int_equal(grey_color(&P256_INV, 0.0f), WHITE);
    assert_int_equal(grey_color(&P256_INV, 1.0f), BLACK);
    assert_int_equal(grey_color(&P256_INV, 0.25f), 250); /* 191.25 → 0xbc = 188 */
    assert_int_equal(grey_color(&P256, -3.0f), BLACK);
    assert_int_equal(grey_color(&P256, 7.0f), WHITE);
    assert_int_equal(grey_color(&P256, NAN), BLACK);
    assert_int_equal(grey_color(&P256_INV, NAN), WHITE); /* no ink: the background */

    /* always the nearest level */
    for (int i = 0; i <= 1000; i++) {
        float v = (float)i / 1000;
        int best = 1 << 30;
        for (int k = 0; k < GREY_LEVELS; k++) {
            int d = abs(brightness(grey_palette[k]) * 1000 - i * 255);
            if (d < best) best = d;
        }
        assert_true(abs(brightness(grey_color(&P256, v)) * 1000 - i * 255) <= best);
    }

    assert_int_equal(grey_color(&P16, 0.1f), 0);
    assert_int_equal(grey_color(&P16, 0.3f), 8);
    assert_int_equal(grey_color(&P16, 0.6f), 7);
    assert_int_equal(grey_color(&P16, 0.9f), 15);
    Palette p16_inv = {DISPLAY_16, 1};
    assert_int_equal(grey_color(&p16_inv, 0.1f), 15);
    assert_int_equal(grey_color(&p16_inv, 1.0f), 0);
    assert_int_equal(grey_color(&PASCII, 0.7f), COLOR_DEFAULT);
}

static void test_ascii_ramp(void **state)
{
    (void)state;
    Palette inv = {DISPLAY_ASCII, 1};
    assert_int_equal(ascii_ramp(&PASCII, 0.0f), ' ');
    assert_int_equal(ascii_ramp(&PASCII, 1.0f), '@');
    assert_int_equal(ascii_ramp(&PASCII, 0.5f), '+');
    assert_int_equal(ascii_ramp(&PASCII, NAN), ' ');
    assert_int_equal(ascii_ramp(&PASCII, 5.0f), '@');
    assert_int_equal(ascii_ramp(&inv, 0.0f), '@');
    assert_int_equal(ascii_ramp(&inv, 1.0f), ' ');
}

/* ---- digits --------------------------------------------------------------- */

static void test_half_block_choice(void **state)
{
    (void)state;
    CellBuf b;
    assert_int_equal(cellbuf_init(&b, 4, 2), 0);
    /* column 0: bright over dark; column 1: equal greys */
    const float img[4] = {1.0f, 0.5f, 0.0f, 0.5f};
    render_digit(&b, 0, 0, img, 2, DIGIT_HALF, &P256);
    Cell *c = cellbuf_at(&b, 0, 0);
    assert_int_equal(c->ch, UPPER_HALF);
    assert_int_equal(c->fg, WHITE);
    assert_int_equal(c->bg, BLACK);
    c = cellbuf_at(&b, 1, 0);
    assert_int_equal(c->ch, ' ');
    assert_int_equal(c->bg, MID_GREY);
    assert_int_equal(cellbuf_at(&b, 2, 0)->ch, ' '); /* nothing beyond the extent */
    assert_int_equal(cellbuf_at(&b, 2, 0)->bg, COLOR_DEFAULT);
    assert_int_equal(cellbuf_at(&b, 0, 1)->bg, COLOR_DEFAULT);

    render_digit(&b, 0, 0, img, 2, DIGIT_HALF, &P256_INV);
    c = cellbuf_at(&b, 0, 0);
    assert_int_equal(c->ch, UPPER_HALF);
    assert_int_equal(c->fg, BLACK);
    assert_int_equal(c->bg, WHITE);

    render_digit(&b, 0, 0, img, 2, DIGIT_HALF, &P16);
    c = cellbuf_at(&b, 0, 0);
    assert_int_equal(c->ch, UPPER_HALF);
    assert_int_equal(c->fg, 15);
    assert_int_equal(c->bg, 0);
    cellbuf_free(&b);
}

static void test_odd_side_background(void **state)
{
    (void)state;
    CellBuf b;
    assert_int_equal(cellbuf_init(&b, 3, 2), 0);
    const float img[9] = {0, 0, 0, 0, 0, 0, 1.0f, 0.0f, 0.0f};
    int w, h;
    digit_extent(3, DIGIT_HALF, &w, &h);
    assert_int_equal(w, 3);
    assert_int_equal(h, 2);
    render_digit(&b, 0, 0, img, 3, DIGIT_HALF, &P256);
    Cell *c = cellbuf_at(&b, 0, 1);
    assert_int_equal(c->ch, UPPER_HALF);
    assert_int_equal(c->fg, WHITE);
    assert_int_equal(c->bg, BLACK);
    assert_int_equal(cellbuf_at(&b, 1, 1)->bg, BLACK);
    render_digit(&b, 0, 0, img, 3, DIGIT_HALF, &P256_INV);
    c = cellbuf_at(&b, 0, 1);
    assert_int_equal(c->ch, UPPER_HALF);
    assert_int_equal(c->fg, BLACK);
    assert_int_equal(c->bg, WHITE);
    c = cellbuf_at(&b, 1, 1);
    assert_int_equal(c->ch, ' ');
    assert_int_equal(c->bg, WHITE);
    /* in ASCII the last cell covers one pixel: its mean is that pixel */
    render_digit(&b, 0, 0, img, 3, DIGIT_HALF, &PASCII);
    assert_int_equal(cellbuf_at(&b, 0, 1)->ch, '@');
    assert_int_equal(cellbuf_at(&b, 1, 1)->ch, ' ');
    cellbuf_free(&b);
}

static void test_digit_extent_matches_drawing(void **state)
{
    (void)state;
    static const int want[3][2] = {{28, 14}, {56, 28}, {14, 7}};
    const DigitStyle styles[3] = {DIGIT_HALF, DIGIT_LARGE, DIGIT_THUMB};
    float img[28 * 28];
    for (int i = 0; i < 28 * 28; i++) img[i] = (float)(i % 7) / 6;
    CellBuf b;
    assert_int_equal(cellbuf_init(&b, 70, 40), 0);
    for (int s = 0; s < 3; s++) {
        int w, h;
        digit_extent(28, styles[s], &w, &h);
        assert_int_equal(w, want[s][0]);
        assert_int_equal(h, want[s][1]);
        fill_sentinel(&b);
        render_digit(&b, 3, 2, img, 28, styles[s], &P256);
        for (int y = 0; y < b.h; y++)
            for (int x = 0; x < b.w; x++) {
                int inside = x >= 3 && x < 3 + w && y >= 2 && y < 2 + h;
                assert_int_equal(!is_sentinel(cellbuf_at(&b, x, y)), inside);
            }
    }
    cellbuf_free(&b);
}

static void test_large_pixels(void **state)
{
    (void)state;
    CellBuf b;
    assert_int_equal(cellbuf_init(&b, 4, 2), 0);
    const float img[4] = {1.0f, 0.0f, 0.5f, 0.0f};
    render_digit(&b, 0, 0, img, 2, DIGIT_LARGE, &P256);
    const int16_t want[2][4] = {{WHITE, WHITE, BLACK, BLACK}, {MID_GREY, MID_GREY, BLACK, BLACK}};
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 4; x++) {
            assert_int_equal(cellbuf_at(&b, x, y)->ch, ' ');
            assert_int_equal(cellbuf_at(&b, x, y)->bg, want[y][x]);
        }
    cellbuf_free(&b);
}

static void test_thumb_averages(void **state)
{
    (void)state;
    CellBuf b;
    assert_int_equal(cellbuf_init(&b, 14, 7), 0);
    /* a 2×2 checkerboard in the top-left corner, black elsewhere */
    float img[16] = {0};
    img[0] = img[5] = 1.0f;
    render_digit(&b, 0, 0, img, 4, DIGIT_THUMB, &P256);
    Cell *c = cellbuf_at(&b, 0, 0);
    assert_int_equal(c->ch, UPPER_HALF);
    assert_int_equal(c->fg, MID_GREY);
    assert_int_equal(c->bg, BLACK);
    assert_int_equal(cellbuf_at(&b, 1, 0)->ch, ' ');
    assert_int_equal(cellbuf_at(&b, 1, 0)->bg, BLACK);
    assert_int_equal(cellbuf_at(&b, 2, 0)->bg, COLOR_DEFAULT); /* 2 columns only */

    /* a full 28×28 checkerboard is uniformly mid-grey */
    float board[28 * 28];
    for (int i = 0; i < 28 * 28; i++) board[i] = (float)((i / 28 + i % 28) % 2);
    render_digit(&b, 0, 0, board, 28, DIGIT_THUMB, &P256);
    for (int i = 0; i < 14 * 7; i++) {
        assert_int_equal(b.cells[i].ch, ' ');
        assert_int_equal(b.cells[i].bg, MID_GREY);
    }
    cellbuf_free(&b);
}

static void test_ascii_digits(void **state)
{
    (void)state;
    CellBuf b;
    assert_int_equal(cellbuf_init(&b, 60, 30), 0);
    float img[28 * 28];
    for (int i = 0; i < 28 * 28; i++) img[i] = (float)(i % 11) / 10;
    render_digit(&b, 0, 0, img, 28, DIGIT_HALF, &PASCII);
    render_digit(&b, 28, 0, img, 28, DIGIT_THUMB, &PASCII);
    render_digit(&b, 0, 14, img, 28, DIGIT_LARGE, &PASCII);
    assert_all_ascii(&b);
    for (int i = 0; i < b.w * b.h; i++) {
        assert_int_equal(b.cells[i].fg, COLOR_DEFAULT);
        assert_int_equal(b.cells[i].bg, COLOR_DEFAULT);
    }
    /* a half cell shows the mean of its two pixels; a large pixel twice */
    const float two[4] = {1.0f, 0.0f, 0.0f, 0.0f};
    render_digit(&b, 0, 0, two, 2, DIGIT_HALF, &PASCII);
    assert_int_equal(cellbuf_at(&b, 0, 0)->ch, '+');
    assert_int_equal(cellbuf_at(&b, 1, 0)->ch, ' ');
    render_digit(&b, 0, 0, two, 2, DIGIT_LARGE, &PASCII);
    assert_int_equal(cellbuf_at(&b, 0, 0)->ch, '@');
    assert_int_equal(cellbuf_at(&b, 1, 0)->ch, '@');
    assert_int_equal(cellbuf_at(&b, 2, 0)->ch, ' ');
    cellbuf_free(&b);
}

/* Drawn partly outside the buffer, every visible cell equals the same cell
 * of an unclipped drawing, and nothing is written outside (ASan). */
static void test_digit_clipping(void **state)
{
    (void)state;
    const DigitStyle styles[3] = {DIGIT_HALF, DIGIT_LARGE, DIGIT_THUMB};
    const int at[4][2] = {{-5, -3}, {7, 4}, {-40, 2}, {2, -20}};
    float img[28 * 28];
    for (int i = 0; i < 28 * 28; i++) img[i] = (float)(i * 7 % 29) / 28;
    CellBuf full, small;
    assert_int_equal(cellbuf_init(&full, 56, 28), 0);
    assert_int_equal(cellbuf_init(&small, 10, 6), 0);
    for (int s = 0; s < 3; s++) {
        cellbuf_clear(&full);
        render_digit(&full, 0, 0, img, 28, styles[s], &P256);
        int w, h;
        digit_extent(28, styles[s], &w, &h);
        for (int a = 0; a < 4; a++) {
            fill_sentinel(&small);
            render_digit(&small, at[a][0], at[a][1], img, 28, styles[s], &P256);
            for (int y = 0; y < small.h; y++)
                for (int x = 0; x < small.w; x++) {
                    int fx = x - at[a][0], fy = y - at[a][1];
                    Cell *c = cellbuf_at(&small, x, y);
                    if (fx >= 0 && fx < w && fy >= 0 && fy < h) {
                        Cell *want = cellbuf_at(&full, fx, fy);
                        assert_int_equal(c->ch, want->ch);
                        assert_int_equal(c->fg, want->fg);
                        assert_int_equal(c->bg, want->bg);
                    } else {
                        assert_true(is_sentinel(c));
                    }
                }
        }
    }
    cellbuf_free(&full);
    cellbuf_free(&small);
}

/* ---- braille -------------------------------------------------------------- */

static void test_braille_bits(void **state)
{
    (void)state;
    /* (column, row) → U+28xx, from the Unicode braille pattern table */
    const uint32_t want[2][4] = {{0x2801, 0x2802, 0x2804, 0x2840}, {0x2808, 0x2810, 0x2820, 0x2880}};
    Braille c;
    CellBuf b;
    assert_int_equal(braille_init(&c, 2, 2), 0);
    assert_int_equal(cellbuf_init(&b, 2, 2), 0);
    for (int col = 0; col < 2; col++)
        for (int row = 0; row < 4; row++) {
            for (int cell = 0; cell < 2; cell++) { /* top-left and bottom-right cells */
                braille_clear(&c);
                cellbuf_clear(&b);
                braille_set(&c, 2 * cell + col, 4 * cell + row, 42);
                braille_blit(&c, &b, 0, 0, ATTR_BOLD);
                Cell *got = cellbuf_at(&b, cell, cell);
                assert_int_equal(got->ch, want[col][row]);
                assert_int_equal(got->fg, 42);
                assert_int_equal(got->attr, ATTR_BOLD);
                assert_int_equal(cellbuf_at(&b, 1 - cell, 1 - cell)->ch, ' '); /* empty: untouched */
            }
        }
    /* all eight together, then dots outside are ignored */
    braille_clear(&c);
    for (int i = 0; i < 8; i++) braille_set(&c, i % 2, i / 2, 1);
    braille_set(&c, -1, 0, 1);
    braille_set(&c, 0, -1, 1);
    braille_set(&c, 4, 0, 1);
    braille_set(&c, 0, 8, 1);
    assert_int_equal(c.bits[0], 0xFF);
    assert_int_equal(c.bits[1] | c.bits[2] | c.bits[3], 0);

    /* blits clip and layer onto braille already there */
    braille_clear(&c);
    cellbuf_clear(&b);
    braille_set(&c, 0, 0, 3);
    braille_blit(&c, &b, 1, 1, 0);
    braille_blit(&c, &b, -1, -1, 0); /* only the empty part lands */
    braille_blit(&c, &b, 5, 5, 0);
    assert_int_equal(cellbuf_at(&b, 1, 1)->ch, 0x2801);
    assert_int_equal(cellbuf_at(&b, 0, 0)->ch, ' ');
    braille_clear(&c);
    braille_set(&c, 1, 3, 4);
    braille_blit(&c, &b, 1, 1, 0);
    assert_int_equal(cellbuf_at(&b, 1, 1)->ch, 0x2881);
    assert_int_equal(cellbuf_at(&b, 1, 1)->fg, 4);
    braille_free(&c);
    cellbuf_free(&b);
}

static void test_braille_line(void **state)
{
    (void)state;
    Braille c;
    assert_int_equal(braille_init(&c, 4, 2), 0);
    braille_line(&c, 0, 0, 7, 7, 1);
    assert_int_equal(canvas_dot_count(&c), 8);
    for (int i = 0; i < 8; i++) assert_true(canvas_dot(&c, i, i));

    for (int dir = 0; dir < 2; dir++) { /* the same dots either way */
        braille_clear(&c);
        if (dir == 0) braille_line(&c, 1, 2, 6, 3, 1);
        else braille_line(&c, 6, 3, 1, 2, 1);
        assert_true(canvas_dot(&c, 1, 2));
        assert_true(canvas_dot(&c, 6, 3));
        assert_int_equal(canvas_dot_count(&c), 6);
        for (int x = 1; x <= 6; x++) assert_true(canvas_dot(&c, x, 2) || canvas_dot(&c, x, 3));
    }

    braille_clear(&c);
    braille_line(&c, 3, 0, 3, 7, 1);
    assert_int_equal(canvas_dot_count(&c), 8);
    braille_clear(&c);
    braille_line(&c, 5, 5, 5, 5, 1);
    assert_int_equal(canvas_dot_count(&c), 1);
    braille_clear(&c);
    braille_line(&c, -4, -4, 20, 20, 1); /* clipped: the diagonal again */
    assert_int_equal(canvas_dot_count(&c), 8);
    braille_free(&c);
}

/* ---- plots ---------------------------------------------------------------- */

static void test_plot_y_range(void **state)
{
    (void)state;
    const double x[5] = {0, 1, 2, 3, 4}, y[5] = {2, 4, NAN, 12, INFINITY};
    PlotSeries s = {x, y, 5, SERIES_LINE, 1, NULL};
    PlotAxes ax = {0, 4, 0, NULL, 0, NULL};
    double lo, hi;
    plot_y_range(&ax, &s, 1, &lo, &hi);
    assert_float_equal(lo, 1.5, 1e-12);
    assert_float_equal(hi, 12.5, 1e-12);

    ax.x_max = 2; /* points outside the x range do not count */
    plot_y_range(&ax, &s, 1, &lo, &hi);
    assert_float_equal(lo, 1.9, 1e-12);
    assert_float_equal(hi, 4.1, 1e-12);

    const double ly[5] = {1, 1000, -5, 0, 10};
    PlotSeries ls = {x, ly, 5, SERIES_DOTS, 1, NULL};
    PlotAxes lax = {0, 4, 1, NULL, 0, NULL};
    plot_y_range(&lax, &ls, 1, &lo, &hi);
    assert_float_equal(lo, pow(10, -0.15), 1e-12);
    assert_float_equal(hi, pow(10, 3.15), 1e-9);

    const double flat[2] = {250, 250};
    PlotSeries fs = {x, flat, 2, SERIES_LINE, 1, NULL};
    plot_y_range(&ax, &fs, 1, &lo, &hi);
    assert_true(lo < 250 && hi > 250);
    plot_y_range(&lax, &fs, 1, &lo, &hi);
    assert_true(lo < 250 && hi > 250);
    plot_y_range(&ax, NULL, 0, &lo, &hi);
    assert_true(lo < hi);
    plot_y_range(&lax, &fs, 0, &lo, &hi);
    assert_true(lo > 0 && lo < hi);
}

static void test_plot_log_scale(void **state)
{
    (void)state;
    const double x[4] = {0, 1, 2, 3}, y[4] = {1, 10, 100, 1000};
    PlotSeries s = {x, y, 4, SERIES_DOTS, 3, NULL};
    PlotAxes ax = {0, 3, 1, NULL, 0, NULL};
    CellBuf b;
    assert_int_equal(cellbuf_init(&b, 40, 20), 0);
    assert_int_equal(render_plot(&b, 0, 0, 40, 20, &ax, &s, 1, &P256), 0);
    int dx[8], dy[8];
    assert_int_equal(collect_dots(&b, dx, dy, 8), 4);
    int row[4];
    for (int i = 0; i < 4; i++) { /* sort by x */
        int k = 0;
        for (int j = 0; j < 4; j++) k += dx[j] < dx[i];
        row[k] = dy[i];
    }
    int step = row[0] - row[1];
    assert_true(step >= 10); /* 17 plot rows: 68 dot rows over 3.3 decades */
    assert_true(abs(row[1] - row[2] - step) <= 1);
    assert_true(abs(row[2] - row[3] - step) <= 1);
    cellbuf_free(&b);
}

/* 10,000 points alternating 0 and 1: binned, each dot column holds exactly
 * one dot at the mean, 0.5, in the middle of the plot; unbinned they would
 * cover the top and bottom rows. */
static void test_plot_binning(void **state)
{
    (void)state;
    enum { N = 10000 };
    double *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
    for (int i = 0; i < N; i++) {
        x[i] = i;
        y[i] = i % 2;
    }
    PlotSeries s = {x, y, N, SERIES_DOTS, 2, NULL};
    PlotAxes ax = {0, N - 1, 0, NULL, 0, NULL};
    CellBuf b;
    assert_int_equal(cellbuf_init(&b, 40, 12), 0);
    assert_int_equal(render_plot(&b, 0, 0, 40, 12, &ax, &s, 1, &P256), 0);
    int dx[400], dy[400];
    int n = collect_dots(&b, dx, dy, 400);
    int columns = 0, per_col[80] = {0}, lo_row = 1 << 30, hi_row = -1;
    for (int i = 0; i < n; i++) {
        assert_true(dx[i] < 80);
        columns += per_col[dx[i]]++ == 0;
        if (dy[i] < lo_row) lo_row = dy[i];
        if (dy[i] > hi_row) hi_row = dy[i];
    }
    assert_true(columns <= 80);
    assert_true(columns >= 60);
    assert_int_equal(n, columns); /* one dot per column */
    /* plot rows 1..9 are dot rows 4..39; the middle is near 21.5 */
    assert_true(hi_row - lo_row <= 1);
    assert_true(lo_row >= 19 && hi_row <= 24);
    for (int i = 0; i < b.w * b.h; i++)
        if (is_braille(b.cells[i].ch)) assert_int_equal(b.cells[i].attr, ATTR_DIM);
    cellbuf_free(&b);
    free(x);
    free(y);
}

/* The braille area from the axis corner: first column, top and bottom rows. */
static void plot_area(CellBuf *b, int *left, int *top, int *bottom)
{
    int cx = 0, cy = 0;
    assert_true(find_glyph(b, 0x2514, &cx, &cy)); /* └ */
    *left = cx + 1;
    *top = 1;
    *bottom = cy - 1;
}

static void test_plot_markers(void **state)
{
    (void)state;
    const double x[3] = {0, 5, 10}, y[3] = {0, 5, 10};
    /* a line through the same points, listed after: markers stay on top */
    PlotSeries s[2] = {{x, y, 3, SERIES_MARKERS, 9, "test"}, {x, y, 3, SERIES_LINE, 2, NULL}};
    PlotAxes ax = {0, 10, 0, NULL, 0, NULL};
    CellBuf b;
    assert_int_equal(cellbuf_init(&b, 41, 15), 0);
    assert_int_equal(render_plot(&b, 0, 0, 41, 15, &ax, s, 2, &P256), 0);
    int left, top, bottom;
    plot_area(&b, &left, &top, &bottom);
    int right = b.w - 1, rows = bottom - top + 1, cols = right - left + 1;
    /* linear map over the padded range: 5 sits at the middle dot */
    int mid_x = left + (int)lround(0.5 * (2 * cols - 1)) / 2;
    int mid_y = top + (int)lround(0.5 * (4 * rows - 1)) / 4;
    const int at[3][2] = {{left, bottom}, {mid_x, mid_y}, {right, top}};
    int markers = 0;
    for (int i = 0; i < b.w * b.h; i++) markers += b.cells[i].ch == 0x25CF;
    assert_int_equal(markers, 4); /* three points and the legend */
    for (int i = 0; i < 3; i++) {
        Cell *c = cellbuf_at(&b, at[i][0], at[i][1]);
        assert_int_equal(c->ch, 0x25CF);
        assert_int_equal(c->fg, 9);
    }
    cellbuf_free(&b);
}

static void test_plot_line_is_connected(void **state)
{
    (void)state;
    const double x[2] = {0, 10}, y[2] = {0, 10};
    PlotSeries s = {x, y, 2, SERIES_LINE, 4, NULL};
    PlotAxes ax = {0, 10, 0, NULL, 0, NULL};
    CellBuf b;
    assert_int_equal(cellbuf_init(&b, 30, 10), 0);
    assert_int_equal(render_plot(&b, 0, 0, 30, 10, &ax, &s, 1, &P256), 0);
    int left, top, bottom;
    plot_area(&b, &left, &top, &bottom);
    int dx[600], dy[600], seen[60] = {0};
    int n = collect_dots(&b, dx, dy, 600);
    for (int i = 0; i < n; i++) seen[dx[i] - 2 * left] = 1;
    for (int c = 0; c < 2 * (b.w - left); c++) assert_true(seen[c]);
    for (int i = 0; i < b.w * b.h; i++)
        if (is_braille(b.cells[i].ch)) {
            assert_int_equal(b.cells[i].fg, 4);
            assert_int_equal(b.cells[i].attr, 0);
        }
    cellbuf_free(&b);
}

static void test_plot_too_small(void **state)
{
    (void)state;
    const double x[2] = {0, 1}, y[2] = {1, 2};
    PlotSeries s = {x, y, 2, SERIES_LINE, 4, "train"};
    PlotAxes ax = {0, 1, 0, NULL, 0, "epoch"};
    CellBuf b;
    assert_int_equal(cellbuf_init(&b, 40, 20), 0);
    fill_sentinel(&b);
    assert_int_equal(render_plot(&b, 0, 0, 19, 20, &ax, &s, 1, &P256), -1);
    assert_int_equal(render_plot(&b, 0, 0, 40, 5, &ax, &s, 1, &P256), -1);
    PlotAxes empty = {1, 1, 0, NULL, 0, NULL}; /* x_max must exceed x_min */
    assert_int_equal(render_plot(&b, 0, 0, 40, 20, &empty, &s, 1, &P256), -1);
    assert_int_equal(count_changed(&b), 0);
    assert_int_equal(render_plot(&b, 0, 0, 20, 6, &ax, &s, 1, &P256), 0);
    assert_int_equal(count_changed(&b), 20 * 6);
    cellbuf_free(&b);
}

/* Label column, ticks, labels and legend of a loss chart. */
static void test_plot_axes_and_legend(void **state)
{
    (void)state;
    const double x[3] = {0, 1.5, 3}, y[3] = {1000, 1600, 2000};
    const double ticks[3] = {1, 2, 3};
    PlotSeries s[2] = {{x, y, 3, SERIES_LINE, 2, "train"}, {x, y, 3, SERIES_MARKERS, 3, "test"}};
    PlotAxes ax = {0, 3, 0, ticks, 3, "epoch"};
    CellBuf b;
    char line[61 * 4 + 1];
    assert_int_equal(cellbuf_init(&b, 60, 14), 0);
    assert_int_equal(render_plot(&b, 0, 0, 60, 14, &ax, s, 2, &P256), 0);
    /* range 950–2050: labels 1k, 1.5k, 2k right-aligned before the axis */
    int found = 0;
    for (int y0 = 1; y0 < 12; y0++) {
        row_text(&b, y0, line);
        found += strncmp(line, "  1k┤", strlen("  1k┤")) == 0;
        found += strncmp(line, "1.5k┤", strlen("1.5k┤")) == 0;
        found += strncmp(line, "  2k┤", strlen("  2k┤")) == 0;
    }
    assert_int_equal(found, 3);
    assert_true(row_contains(&b, 0, "── train  ● test"));
    assert_int_equal(cellbuf_at(&b, 5, 0)->fg, 2); /* the key in the series' colour */
    /* x axis: corner, a ┬ per tick (3 at the right end), labels under ticks */
    row_text(&b, 12, line);
    assert_true(strncmp(line, "    └", strlen("    └")) == 0);
    int tick_cols[3], n = 0;
    for (int i = 0; i < b.w; i++)
        if (cellbuf_at(&b, i, 12)->ch == 0x252C) tick_cols[n++] = i;
    assert_int_equal(n, 3);
    assert_int_equal(tick_cols[2], 59);
    assert_int_equal(cellbuf_at(&b, tick_cols[0], 13)->ch, '1');
    assert_int_equal(cellbuf_at(&b, tick_cols[1], 13)->ch, '2');
    assert_true(row_contains(&b, 13, "epoch")); /* "3" would collide with it */
    assert_false(row_contains(&b, 13, "3"));
    cellbuf_free(&b);

    /* log axis over two decades: powers of ten, compactly */
    const double ly[3] = {1e-3, 1e-2, 1e-1};
    PlotSeries ls = {x, ly, 3, SERIES_DOTS, 2, NULL};
    PlotAxes lax = {0, 3, 1, NULL, 0, NULL};
    assert_int_equal(cellbuf_init(&b, 40, 12), 0);
    assert_int_equal(render_plot(&b, 0, 0, 40, 12, &lax, &ls, 1, &P256), 0);
    const char *want[3] = {"0.1┤", "0.01┤", "1e-3┤"};
    for (int i = 0, y0 = 1; i < 3; i++) {
        while (y0 < 10 && !row_contains(&b, y0, want[i])) y0++;
        assert_true(y0 < 10); /* found on a plot row, top to bottom */
    }
    cellbuf_free(&b);
}

/* Twenty epoch ticks on a narrow plot: every label drawn is whole, under
 * its own tick, with a blank between neighbours; the rest are left out. */
static void test_plot_x_labels_do_not_overlap(void **state)
{
    (void)state;
    double ticks[20];
    for (int i = 0; i < 20; i++) ticks[i] = i + 1;
    PlotAxes ax = {0, 20, 0, ticks, 20, "epoch"};
    CellBuf b;
    assert_int_equal(cellbuf_init(&b, 36, 8), 0);
    assert_int_equal(render_plot(&b, 0, 0, 36, 8, &ax, NULL, 0, &P256), 0);
    int labels = 0;
    for (int x = 0; x < b.w;) {
        if (cellbuf_at(&b, x, 7)->ch == ' ') {
            x++;
            continue;
        }
        char token[16];
        int start = x, n = 0;
        for (; x < b.w && cellbuf_at(&b, x, 7)->ch != ' ' && n < 15; x++)
            token[n++] = (char)cellbuf_at(&b, x, 7)->ch;
        token[n] = '\0';
        if (strcmp(token, "epoch") == 0) {
            assert_int_equal(x, b.w); /* at the right end */
            continue;
        }
        int epoch = atoi(token), under = 0;
        assert_true(epoch >= 1 && epoch <= 20);
        for (int c = start; c < x; c++) under |= cellbuf_at(&b, c, 6)->ch == 0x252C;
        assert_true(under);
        labels++;
    }
    assert_true(labels >= 4 && labels < 20);
    cellbuf_free(&b);
}

static void test_plot_ascii(void **state)
{
    (void)state;
    double x[200], raw[200], smooth[200];
    for (int i = 0; i < 200; i++) {
        x[i] = i / 10.0;
        raw[i] = 200 * exp(-i / 80.0) + (i % 7) * 3;
        smooth[i] = 200 * exp(-i / 80.0) + 9;
    }
    const double ex[2] = {10, 20}, ey[2] = {100, 60}, ticks[2] = {10, 20};
    PlotSeries s[3] = {{x, raw, 200, SERIES_DOTS, 8, "raw"},
                       {x, smooth, 200, SERIES_LINE, 2, "train"},
                       {ex, ey, 2, SERIES_MARKERS, 3, "test"}};
    PlotAxes ax = {0, 20, 1, ticks, 2, "t"};
    CellBuf b;
    assert_int_equal(cellbuf_init(&b, 50, 16), 0);
    assert_int_equal(render_plot(&b, 0, 0, 50, 16, &ax, s, 3, &PASCII), 0);
    assert_all_ascii(&b);
    int dots = 0, stars = 0, os = 0;
    for (int i = 0; i < b.w * b.h; i++) {
        dots += b.cells[i].ch == '.';
        stars += b.cells[i].ch == '*';
        os += b.cells[i].ch == 'o';
    }
    assert_true(dots > 0 && stars > 0);
    assert_int_equal(os, 3); /* two markers and the legend */
    assert_true(row_contains(&b, 0, ".. raw  ** train  o test"));
    assert_true(row_contains(&b, 14, "+---"));
    assert_true(row_contains(&b, 5, "|") || row_contains(&b, 5, "+"));
    cellbuf_free(&b);
}

/* Plots drawn partly outside the buffer write only inside it (ASan). */
static void test_plot_clipping(void **state)
{
    (void)state;
    double x[300], y[300];
    for (int i = 0; i < 300; i++) {
        x[i] = i;
        y[i] = 1 + i % 13;
    }
    const double ticks[3] = {0, 150, 299};
    PlotSeries s[3] = {{x, y, 300, SERIES_DOTS, 1, "a"},
                       {x, y, 300, SERIES_LINE, 2, "b"},
                       {x, y, 30, SERIES_MARKERS, 3, "c"}};
    PlotAxes ax = {0, 299, 1, ticks, 3, "step"};
    const int at[4][2] = {{-10, -3}, {20, 8}, {-30, 10}, {5, -9}};
    CellBuf b;
    assert_int_equal(cellbuf_init(&b, 30, 12), 0);
    for (int a = 0; a < 4; a++) {
        fill_sentinel(&b);
        assert_int_equal(render_plot(&b, at[a][0], at[a][1], 40, 12, &ax, s, 3, &P256), 0);
        for (int y0 = 0; y0 < b.h; y0++)
            for (int x0 = 0; x0 < b.w; x0++) {
                int inside = x0 >= at[a][0] && x0 < at[a][0] + 40 && y0 >= at[a][1] && y0 < at[a][1] + 12;
                assert_int_equal(!is_sentinel(cellbuf_at(&b, x0, y0)), inside);
            }
    }
    cellbuf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cellbuf_basics),
        cmocka_unit_test(test_text_utf8_and_clipping),
        cmocka_unit_test(test_grey_palette),
        cmocka_unit_test(test_grey_color),
        cmocka_unit_test(test_ascii_ramp),
        cmocka_unit_test(test_half_block_choice),
        cmocka_unit_test(test_odd_side_background),
        cmocka_unit_test(test_digit_extent_matches_drawing),
        cmocka_unit_test(test_large_pixels),
        cmocka_unit_test(test_thumb_averages),
        cmocka_unit_test(test_ascii_digits),
        cmocka_unit_test(test_digit_clipping),
        cmocka_unit_test(test_braille_bits),
        cmocka_unit_test(test_braille_line),
        cmocka_unit_test(test_plot_y_range),
        cmocka_unit_test(test_plot_log_scale),
        cmocka_unit_test(test_plot_binning),
        cmocka_unit_test(test_plot_markers),
        cmocka_unit_test(test_plot_line_is_connected),
        cmocka_unit_test(test_plot_too_small),
        cmocka_unit_test(test_plot_axes_and_legend),
        cmocka_unit_test(test_plot_x_labels_do_not_overlap),
        cmocka_unit_test(test_plot_ascii),
        cmocka_unit_test(test_plot_clipping),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
