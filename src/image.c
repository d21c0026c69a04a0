/* image.c — digit grids as PNG (libpng) or PGM, image stacks as IDX.
 *
 * Grids are produced one pixel row at a time from the images, so a grid of
 * 60,000 digits needs one row of memory, not the whole picture. Every file
 * is written to a temporary beside the target and renamed over it only once
 * it is complete and synced. */
#include "genlab/image.h"
#include "genlab/fileio.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <png.h>

#define GRID_GUTTER 2
/* libpng's default limit on width and height; PGM follows it too. */
#define GRID_MAX_PIXELS 1000000
#define IDX_IMAGES_MAGIC 0x00000803u

ImageFormat image_format_from_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    const char *dot = strrchr(base, '.');
    if (!dot || dot == base) return IMG_UNKNOWN; /* no extension, or a dot file */
    if (strcasecmp(dot + 1, "png") == 0) return IMG_PNG;
    if (strcasecmp(dot + 1, "pgm") == 0) return IMG_PGM;
    if (strcasecmp(dot + 1, "idx") == 0) return IMG_IDX;
    return IMG_UNKNOWN;
}

/* round(x·255) with halves away from zero (roundf, not v + 0.5f, which
 * rounds 0.49999997 up in float), clamped to 0..255. NaN becomes 0: a
 * diverged model's output is drawn black rather than failing the write. */
static uint8_t unit_to_byte(float x)
{
    float v = x * 255.0f;
    if (!(v > 0.0f)) return 0; /* negative, zero or NaN */
    if (v >= 255.0f) return 255;
    return (uint8_t)roundf(v);
}

void image_to_bytes(const float *in, int64_t n, uint8_t *out)
{
    for (int64_t i = 0; i < n; i++) out[i] = unit_to_byte(in[i]);
}

/* ---- grid layout --------------------------------------------------------- */

typedef struct {
    const uint8_t *imgs;
    int n, side, cols;
    int width, height;
} Grid;

static int ceil_sqrt(int n)
{
    int r = (int)ceil(sqrt((double)n));
    while ((int64_t)r * r < n) r++;
    while (r > 1 && (int64_t)(r - 1) * (r - 1) >= n) r--;
    return r;
}

static int grid_init(Grid *g, const uint8_t *imgs, int n, int side, int cols, const char *path,
                     Err *e)
{
    if (cols <= 0) cols = ceil_sqrt(n);
    int64_t rows = ((int64_t)n + cols - 1) / cols;
    int64_t pitch = (int64_t)side + GRID_GUTTER;
    int64_t width = cols * pitch + GRID_GUTTER, height = rows * pitch + GRID_GUTTER;
    if (width > GRID_MAX_PIXELS || height > GRID_MAX_PIXELS)
        return err_set(e, "%s: a grid of %d image(s) of %d×%d in %d column(s) would be "
                       "%lld×%lld pixels, over the %d-pixel limit on a side; use fewer "
                       "columns or images, or write .idx", path, n, side, side, cols,
                       (long long)width, (long long)height, GRID_MAX_PIXELS);
    *g = (Grid){imgs, n, side, cols, (int)width, (int)height};
    return 0;
}

/* Pixel row y of the grid: black gutters, each cell's row, black after the
 * last image. */
static void grid_row(const Grid *g, int y, uint8_t *row)
{
    memset(row, 0, (size_t)g->width);
    int pitch = g->side + GRID_GUTTER;
    int y_in_cell = y % pitch - GRID_GUTTER;
    if (y_in_cell < 0) return;
    int64_t first = (int64_t)(y / pitch) * g->cols;
    size_t side = (size_t)g->side;
    for (int c = 0; c < g->cols && first + c < g->n; c++) {
        const uint8_t *src = g->imgs + (size_t)(first + c) * side * side + (size_t)y_in_cell * side;
        memcpy(row + GRID_GUTTER + (size_t)c * (size_t)pitch, src, side);
    }
}

/* ---- encoders ------------------------------------------------------------ */

static int write_all(FILE *fp, const void *data, size_t len, const char *path, Err *e)
{
    if (fwrite(data, 1, len, fp) != len)
        return err_set(e, "%s: write failed (%s)", path, strerror(errno));
    return 0;
}

static int write_pgm(FILE *fp, const Grid *g, uint8_t *row, const char *path, Err *e)
{
    if (fprintf(fp, "P5\n%d %d\n255\n", g->width, g->height) < 0)
        return err_set(e, "%s: write failed (%s)", path, strerror(errno));
    for (int y = 0; y < g->height; y++) {
        grid_row(g, y, row);
        if (write_all(fp, row, (size_t)g->width, path, e)) return -1;
    }
    return 0;
}

typedef struct {
    FILE *fp;
    int write_errno; /* set when the file write failed, 0 for an encoder error */
    char message[200];
} PngIo;

static void png_write_bytes(png_structp png, png_bytep data, size_t len)
{
    PngIo *io = png_get_io_ptr(png);
    if (fwrite(data, 1, len, io->fp) != len) {
        io->write_errno = errno;
        png_error(png, "write failed");
    }
}

/* The file is flushed and synced when the temporary is committed. */
static void png_flush_nothing(png_structp png) { (void)png; }

static void png_on_error(png_structp png, png_const_charp msg)
{
    PngIo *io = png_get_error_ptr(png);
    snprintf(io->message, sizeof io->message, "%s", msg);
    png_longjmp(png, 1);
}

/* Lower layers never print, and a warning does not stop the write. */
static void png_on_warning(png_structp png, png_const_charp msg) { (void)png, (void)msg; }

/* Where an encoder gets its pixel rows: row y of `channels` bytes per pixel. */
typedef struct {
    int width, height, channels;
    void (*fill)(const void *src, int y, uint8_t *row);
    const void *src;
} RowSource;

static void grid_fill(const void *src, int y, uint8_t *row) { grid_row(src, y, row); }

/* Everything libpng may jump out of lives here; `io` belongs to the caller
 * so that its contents are well defined after the longjmp. Nothing is
 * allocated after setjmp except by libpng, which the destroy call frees. */
static int encode_png(PngIo *io, const RowSource *r, uint8_t *row)
{
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, io, png_on_error,
                                              png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        snprintf(io->message, sizeof io->message, "out of memory");
        return -1;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        return -1;
    }
    png_set_write_fn(png, io, png_write_bytes, png_flush_nothing);
    png_set_IHDR(png, info, (png_uint_32)r->width, (png_uint_32)r->height, 8,
                 r->channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < r->height; y++) {
        r->fill(r->src, y, row);
        png_write_row(png, row);
    }
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return 0;
}

static int write_png(FILE *fp, const RowSource *r, uint8_t *row, const char *path, Err *e)
{
    PngIo io = {fp, 0, ""};
    if (encode_png(&io, r, row) == 0) return 0;
    if (io.write_errno) return err_set(e, "%s: write failed (%s)", path, strerror(io.write_errno));
    return err_set(e, "%s: PNG encoding failed (%s)", path, io.message);
}

static int write_grid(FILE *fp, ImageFormat format, const Grid *g, const char *path, Err *e)
{
    uint8_t *row = malloc((size_t)g->width);
    if (!row) return err_set(e, "%s: out of memory", path);
    RowSource r = {g->width, g->height, 1, grid_fill, g};
    int rc = format == IMG_PNG ? write_png(fp, &r, row, path, e) : write_pgm(fp, g, row, path, e);
    free(row);
    return rc;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static int write_idx(FILE *fp, const uint8_t *imgs, int n, int side, const char *path, Err *e)
{
    uint8_t header[16];
    put_be32(header, IDX_IMAGES_MAGIC);
    put_be32(header + 4, (uint32_t)n);
    put_be32(header + 8, (uint32_t)side);
    put_be32(header + 12, (uint32_t)side);
    if (write_all(fp, header, sizeof header, path, e)) return -1;
    return write_all(fp, imgs, (size_t)n * (size_t)side * (size_t)side, path, e);
}

int image_write(const char *path, const uint8_t *imgs, int n, int side, int cols, Err *e)
{
    ImageFormat format = image_format_from_name(path);
    if (format == IMG_UNKNOWN)
        return err_set(e, "%s: unknown image format; use a name ending in .png, .pgm or .idx",
                       path);
    if (n < 1 || side < 1)
        return err_set(e, "%s: nothing to write (%d images of side %d)", path, n, side);
    Grid g = {0};
    if (format != IMG_IDX && grid_init(&g, imgs, n, side, cols, path, e)) return -1;
    AtomicFile af;
    FILE *fp = atomic_open(&af, path, e);
    if (!fp) return err_prefix(e, "%s", path);
    int rc = format == IMG_IDX ? write_idx(fp, imgs, n, side, path, e)
                               : write_grid(fp, format, &g, path, e);
    if (rc) {
        atomic_abort(&af);
        return -1;
    }
    return atomic_commit(&af, e) ? err_prefix(e, "%s", path) : 0;
}

/* ---- RGB ------------------------------------------------------------------ */

typedef struct {
    const uint8_t *rgb;
    int width;
} RgbImage;

static void rgb_fill(const void *src, int y, uint8_t *row)
{
    const RgbImage *im = src;
    memcpy(row, im->rgb + (size_t)y * im->width * 3, (size_t)im->width * 3);
}

int image_write_rgb_png(const char *path, const uint8_t *rgb, int w, int h, Err *e)
{
    if (w < 1 || h < 1 || w > 1000000 || h > 1000000)
        return err_set(e, "%s: bad image size %d×%d", path, w, h);
    uint8_t *row = malloc((size_t)w * 3);
    if (!row) return err_set(e, "%s: out of memory", path);
    AtomicFile af;
    FILE *fp = atomic_open(&af, path, e);
    if (!fp) {
        free(row);
        return err_prefix(e, "%s", path);
    }
    RgbImage im = {rgb, w};
    RowSource r = {w, h, 3, rgb_fill, &im};
    int rc = write_png(fp, &r, row, path, e);
    free(row);
    if (rc) {
        atomic_abort(&af);
        return -1;
    }
    return atomic_commit(&af, e) ? err_prefix(e, "%s", path) : 0;
}
