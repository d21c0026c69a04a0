/* dataset.h — MNIST-shaped IDX files and the study's split.
 *
 * Images stay as bytes (60,000 × 784 B = 47 MB) and become floats in
 * [0, 1] (pixel / 255) one batch at a time, so training stays lean. */
#ifndef GENLAB_DATASET_H
#define GENLAB_DATASET_H

#include <stdint.h>

#include "genlab/error.h"

#define MNIST_SIDE 28
#define MNIST_PIXELS (MNIST_SIDE * MNIST_SIDE)
#define MNIST_TRAIN_N 60000
#define MNIST_TEST_N 10000
#define STUDY_TRAIN_N 48000
#define STUDY_TEST_N 12000

/* An IDX file's contents: images (IDX3, ubyte) or labels (IDX1, ubyte). */
typedef struct {
    int32_t n;        /* number of items */
    int32_t rows;     /* 0 for labels */
    int32_t cols;     /* 0 for labels */
    uint8_t *data;    /* n × rows × cols bytes (images) or n bytes (labels) */
} IdxArray;

/* Reads an IDX3 ubyte image file or an IDX1 ubyte label file, plain or
 * zstd-compressed (by content: a zstd frame's magic, not the name).
 * `want_dims` is 3 for images, 1 for labels. Rejects: a bad magic, a type
 * other than ubyte, the wrong number of dimensions, a zero or absurd
 * dimension (images larger than 1024×1024, more than 10,000,000 items),
 * a size that disagrees with the header (truncated or trailing bytes), a
 * compressed stream that is corrupt or expands beyond what the header
 * allows. On failure *out is left empty. */
int idx_read(const char *path, int want_dims, IdxArray *out, Err *e);
void idx_free(IdxArray *a);

/* A labelled image set: the official train or test files. */
typedef struct {
    int32_t n;
    uint8_t *images; /* n × 784 */
    uint8_t *labels; /* n, each 0..9 */
} Dataset;

typedef enum { SET_TRAIN, SET_TEST } DatasetFile;

/* Loads train-images-idx3-ubyte + train-labels-idx1-ubyte (or the t10k-
 * pair for SET_TEST) from `dir`, each found as the bare name, or with
 * ".idx", ".zst" or ".idx.zst" appended, in that order. Checks that the
 * images are 28×28, that the counts agree, and that labels are 0..9. The
 * error names the directory and the file it looked for. */
int dataset_load(const char *dir, DatasetFile which, Dataset *out, Err *e);
void dataset_free(Dataset *d);

/* The study split of the 60,000 training images (DESIGN.md): the
 * permutation p of 0..59999 shuffled by Fisher–Yates driven by splitmix64
 * seeded with 0. p[0..48000) is the training split, p[48000..60000) the
 * test split. `perm` must hold MNIST_TRAIN_N entries. */
void study_split(int32_t *perm);

/* Converts images idx[0..count) of `d` to floats in [0,1] (pixel / 255),
 * written contiguously to out (count × 784). */
void dataset_gather(const Dataset *d, const int32_t *idx, int count, float *out);

#endif
