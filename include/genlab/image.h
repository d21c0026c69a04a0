/* image.h — writing digit grids: PNG (libpng), PGM (P5), IDX (MNIST's own).
 *
 * Images are 8-bit greyscale, each `side` × `side`, stored one after the
 * other. A grid puts them in rows of `cols` images with a 2-pixel black
 * gutter between cells and around the edge. Writes are atomic: a
 * temporary file in the target's directory, fsync, rename; a failure leaves
 * any existing file untouched and no temporary behind. */
#ifndef GENLAB_IMAGE_H
#define GENLAB_IMAGE_H

#include <stdint.h>

#include "genlab/error.h"

typedef enum { IMG_PNG, IMG_PGM, IMG_IDX, IMG_UNKNOWN } ImageFormat;

/* From the file name's extension (.png, .pgm, .idx; case-insensitive). */
ImageFormat image_format_from_name(const char *path);

/* Converts n floats in [0,1] to bytes (round(x·255), clamped). */
void image_to_bytes(const float *in, int64_t n, uint8_t *out);

/* Writes n images. PNG and PGM: a grid of `cols` columns (cols <= 0 picks
 * ceil(sqrt(n))). IDX: an IDX3 ubyte file of n × side × side, in order (the
 * grid layout does not apply), which any MNIST loader reads. The format
 * comes from the extension; an unknown one is an error that lists the
 * supported ones. */
int image_write(const char *path, const uint8_t *imgs, int n, int side, int cols, Err *e);

/* Writes a w × h RGB image (3 bytes a pixel, rows top to bottom) as PNG,
 * atomically. */
int image_write_rgb_png(const char *path, const uint8_t *rgb, int w, int h, Err *e);

#endif
