/* dataset.c — IDX files (plain or zstd), MNIST train/test sets, the study
 * split.
 *
 * An IDX file is a 4-byte magic (0, 0, element type, number of dimensions),
 * one big-endian uint32 per dimension, then the elements. Reading goes
 * through a small byte source that is either the file itself or a zstd
 * decompressor over it, so every check below applies to both. The payload
 * buffer grows only as bytes actually arrive (up to what the header
 * declares), so a lying header or a compressed "bomb" costs at most a little
 * more memory than the data really present, never what the header claims. */
#include "genlab/dataset.h"

#include "genlab/rng.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <zstd.h>
#include <zstd_errors.h>

#define IDX_TYPE_UBYTE 0x08
#define IDX_MAX_ITEMS 10000000u
#define IDX_MAX_SIDE 1024u
/* The shipped assets are compressed with --long=27. This also bounds what a
 * hostile frame can make the decoder allocate for its window (128 MiB). */
#define ZSTD_WINDOW_LOG_MAX 27
#define FIRST_CHUNK ((size_t)1 << 20)

static const uint8_t ZSTD_FRAME_MAGIC[4] = {0x28, 0xB5, 0x2F, 0xFD};
static const uint8_t GZIP_MAGIC[2] = {0x1F, 0x8B};

/* ---- byte source: the file, or a zstd stream over it ---------------- */

typedef struct {
    const char *path;
    FILE *f;
    ZSTD_DCtx *dctx;       /* NULL for a plain file */
    uint8_t inbuf[1 << 16];
    ZSTD_inBuffer in;
    bool input_ended;
    bool frame_open;       /* the last zstd call had not finished its frame */
    uint64_t produced;     /* bytes handed out so far */
} Source;

static int source_fill_input(Source *s, Err *e)
{
    size_t got = fread(s->inbuf, 1, sizeof s->inbuf, s->f);
    if (got == 0) {
        if (ferror(s->f))
            return err_set(e, "%s: read error (%s)", s->path, strerror(errno));
        s->input_ended = true;
    }
    s->in = (ZSTD_inBuffer){s->inbuf, got, 0};
    return 0;
}

static int zstd_failure(const Source *s, size_t ret, Err *e)
{
    if (ZSTD_getErrorCode(ret) == ZSTD_error_frameParameter_windowTooLarge)
        return err_set(e, "%s: zstd frame needs a window over %d MiB; recompress it with "
                       "zstd --long=%d or less", s->path, 1 << (ZSTD_WINDOW_LOG_MAX - 20),
                       ZSTD_WINDOW_LOG_MAX);
    return err_set(e, "%s: corrupt zstd stream (%s); fetch or regenerate the file", s->path,
                   ZSTD_getErrorName(ret));
}

/* Decompresses up to `want` bytes; fewer only at the end of the input. */
static int source_read_zstd(Source *s, uint8_t *dst, size_t want, size_t *got, Err *e)
{
    ZSTD_outBuffer out = {dst, want, 0};
    while (out.pos < out.size) {
        if (s->in.pos == s->in.size && !s->input_ended && source_fill_input(s, e))
            return -1;
        size_t out_before = out.pos, in_before = s->in.pos;
        size_t ret = ZSTD_decompressStream(s->dctx, &out, &s->in);
        if (ZSTD_isError(ret)) return zstd_failure(s, ret, e);
        bool stalled = out.pos == out_before && s->in.pos == in_before;
        if (stalled && s->input_ended && s->in.pos == s->in.size) break;
        /* Only a call that moved tells where the frame stands: at a frame's
         * end an idle call asks for the next frame's header. */
        if (!stalled) s->frame_open = ret != 0;
    }
    *got = out.pos;
    return 0;
}

static int source_read(Source *s, uint8_t *dst, size_t want, size_t *got, Err *e)
{
    if (s->dctx) {
        if (source_read_zstd(s, dst, want, got, e)) return -1;
    } else {
        *got = fread(dst, 1, want, s->f);
        if (*got < want && ferror(s->f))
            return err_set(e, "%s: read error (%s)", s->path, strerror(errno));
    }
    s->produced += *got;
    return 0;
}

/* Sniffs the first bytes: a zstd frame gets a decompressor, anything else
 * is read as is (the bytes sniffed are put back either way). */
static int source_open(Source *s, const char *path, Err *e)
{
    memset(s, 0, sizeof *s);
    s->path = path;
    s->f = fopen(path, "rb");
    if (!s->f) return err_set(e, "%s: cannot open (%s)", path, strerror(errno));
    uint8_t magic[4];
    size_t n = fread(magic, 1, sizeof magic, s->f);
    if (n < sizeof magic && ferror(s->f))
        return err_set(e, "%s: read error (%s)", path, strerror(errno));
    rewind(s->f);
    if (n < sizeof magic || memcmp(magic, ZSTD_FRAME_MAGIC, sizeof magic) != 0) return 0;
    s->dctx = ZSTD_createDCtx();
    if (!s->dctx) return err_set(e, "%s: out of memory for the zstd decoder", path);
    size_t r = ZSTD_DCtx_setParameter(s->dctx, ZSTD_d_windowLogMax, ZSTD_WINDOW_LOG_MAX);
    if (ZSTD_isError(r))
        return err_set(e, "%s: zstd setup failed (%s)", path, ZSTD_getErrorName(r));
    return 0;
}

static void source_close(Source *s)
{
    ZSTD_freeDCtx(s->dctx);
    if (s->f) fclose(s->f);
}

/* ---- header ----------------------------------------------------------- */

typedef struct {
    int ndims;
    uint32_t dims[3];
    uint64_t header_bytes;
    uint64_t payload; /* bytes after the header */
} IdxHeader;

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static const char *kind_name(int ndims) { return ndims == 3 ? "images" : "labels"; }

static int check_magic(const char *path, const uint8_t m[4], int want_dims, Err *e)
{
    if (memcmp(m, GZIP_MAGIC, sizeof GZIP_MAGIC) == 0)
        return err_set(e, "%s: gzip-compressed; decompress it first (gunzip) or recompress "
                       "it with zstd", path);
    if (m[0] != 0 || m[1] != 0)
        return err_set(e, "%s: not an IDX file (bad magic 0x%02X%02X%02X%02X)",
                       path, m[0], m[1], m[2], m[3]);
    if (m[2] != IDX_TYPE_UBYTE)
        return err_set(e, "%s: IDX element type 0x%02X is not unsigned bytes (0x08); only "
                       "ubyte IDX files are supported", path, m[2]);
    if (m[3] == 4 - want_dims)
        return err_set(e, "%s: this is an IDX %s file where %s were expected; were the "
                       "file names swapped?", path, kind_name(m[3]), kind_name(want_dims));
    if (m[3] != want_dims)
        return err_set(e, "%s: IDX file has %d dimensions but %s files have %d", path, m[3],
                       kind_name(want_dims), want_dims);
    return 0;
}

static int check_dims(const char *path, const IdxHeader *h, Err *e)
{
    uint32_t n = h->dims[0];
    if (n == 0) return err_set(e, "%s: header says 0 %s; the file holds nothing", path,
                               kind_name(h->ndims));
    if (n > IDX_MAX_ITEMS)
        return err_set(e, "%s: header says %u %s, more than the %u supported; the file is "
                       "corrupt or not MNIST-like", path, n, kind_name(h->ndims), IDX_MAX_ITEMS);
    if (h->ndims == 1) return 0;
    uint32_t rows = h->dims[1], cols = h->dims[2];
    if (rows == 0 || cols == 0)
        return err_set(e, "%s: header says images of %u×%u pixels; a side cannot be 0",
                       path, rows, cols);
    if (rows > IDX_MAX_SIDE || cols > IDX_MAX_SIDE)
        return err_set(e, "%s: header says images of %u×%u pixels, larger than the %u×%u "
                       "supported", path, rows, cols, IDX_MAX_SIDE, IDX_MAX_SIDE);
    return 0;
}

static int read_header(Source *s, int want_dims, IdxHeader *h, Err *e)
{
    uint8_t buf[4 + 4 * 3];
    size_t want = 4 + 4 * (size_t)want_dims, got;
    if (source_read(s, buf, 4, &got, e)) return -1;
    if (got == 0) return err_set(e, "%s: empty file; expected an IDX %s file", s->path,
                                 kind_name(want_dims));
    if (got == 4 && check_magic(s->path, buf, want_dims, e)) return -1;
    size_t rest = 0;
    if (got == 4 && source_read(s, buf + 4, want - 4, &rest, e)) return -1;
    if (got + rest < want)
        return err_set(e, "%s: truncated: %zu bytes, too short for the %zu-byte header of "
                       "an IDX %s file", s->path, got + rest, want, kind_name(want_dims));
    h->ndims = want_dims;
    h->header_bytes = want;
    h->payload = 1;
    for (int i = 0; i < want_dims; i++) {
        h->dims[i] = be32(buf + 4 + 4 * i);
        h->payload *= h->dims[i];
    }
    return check_dims(s->path, h, e);
}


/* ---- payload ---------------------------------------------------------- */

/* "60000 images of 28×28" or "60000 labels". */
static void describe_header(const IdxHeader *h, char *buf, size_t size)
{
    if (h->ndims == 3)
        snprintf(buf, size, "%u images of %u×%u", h->dims[0], h->dims[1], h->dims[2]);
    else
        snprintf(buf, size, "%u labels", h->dims[0]);
}

/* `actual` is the size found; `at_least` when only a lower bound is known
 * (decompression stops at the first byte too many). */
static int size_mismatch(const Source *s, const IdxHeader *h, uint64_t actual, bool at_least,
                         Err *e)
{
    char what[96];
    describe_header(h, what, sizeof what);
    uint64_t expected = h->header_bytes + h->payload;
    bool too_long = at_least || actual > expected;
    return err_set(e, "%s: %s: header says %s (%llu bytes) but %s %s%llu bytes", s->path,
                   too_long ? "trailing bytes" : "truncated", what,
                   (unsigned long long)expected,
                   s->dctx ? "it decompresses to" : "the file has",
                   at_least ? "more than " : "", (unsigned long long)actual);
}

/* A plain regular file's size is known up front: reject a mismatch before
 * allocating anything. */
static int check_plain_size(const Source *s, const IdxHeader *h, Err *e)
{
    struct stat st;
    if (s->dctx || fstat(fileno(s->f), &st) != 0 || !S_ISREG(st.st_mode)) return 0;
    if ((uint64_t)st.st_size != h->header_bytes + h->payload)
        return size_mismatch(s, h, (uint64_t)st.st_size, false, e);
    return 0;
}

/* Reads exactly h->payload bytes into a buffer that doubles as data
 * arrives, so memory follows the bytes present rather than the header. */
static int read_payload(Source *s, const IdxHeader *h, uint8_t **out, Err *e)
{
    size_t total = (size_t)h->payload, filled = 0, cap = 0;
    uint8_t *buf = NULL;
    while (filled < total) {
        if (filled == cap) {
            size_t next = cap ? cap * 2 : FIRST_CHUNK;
            cap = next < total ? next : total;
            uint8_t *grown = realloc(buf, cap);
            if (!grown) {
                free(buf);
                return err_set(e, "%s: out of memory reading %zu bytes", s->path, total);
            }
            buf = grown;
        }
        size_t want = cap - filled, got;
        if (source_read(s, buf + filled, want, &got, e)) {
            free(buf);
            return -1;
        }
        filled += got;
        if (got < want) break; /* end of input */
    }
    if (filled < total) {
        free(buf);
        return size_mismatch(s, h, s->produced, false, e);
    }
    *out = buf;
    return 0;
}

/* After the payload: no byte more, and any zstd frame properly closed. */
static int expect_end(Source *s, const IdxHeader *h, Err *e)
{
    uint8_t extra;
    size_t got;
    if (source_read(s, &extra, 1, &got, e)) return -1;
    if (got) return size_mismatch(s, h, h->header_bytes + h->payload, true, e);
    if (s->dctx && s->frame_open)
        return err_set(e, "%s: truncated zstd stream (its last frame is incomplete); fetch "
                       "or regenerate the file", s->path);
    return 0;
}

int idx_read(const char *path, int want_dims, IdxArray *out, Err *e)
{
    memset(out, 0, sizeof *out);
    if (want_dims != 1 && want_dims != 3)
        return err_set(e, "%s: idx_read supports 1 (labels) or 3 (images) dimensions, not %d",
                       path, want_dims);
    Source s;
    IdxHeader h = {0};
    uint8_t *data = NULL;
    int rc = source_open(&s, path, e);
    if (!rc) rc = read_header(&s, want_dims, &h, e);
    if (!rc) rc = check_plain_size(&s, &h, e);
    if (!rc) rc = read_payload(&s, &h, &data, e);
    if (!rc) rc = expect_end(&s, &h, e);
    source_close(&s);
    if (rc) {
        free(data);
        return -1;
    }
    out->n = (int32_t)h.dims[0];
    out->rows = want_dims == 3 ? (int32_t)h.dims[1] : 0;
    out->cols = want_dims == 3 ? (int32_t)h.dims[2] : 0;
    out->data = data;
    return 0;
}

void idx_free(IdxArray *a)
{
    free(a->data);
    memset(a, 0, sizeof *a);
}

/* ---- datasets --------------------------------------------------------- */

#define PATH_BUF 4096

static const char *const IDX_SUFFIXES[] = {"", ".idx", ".zst", ".idx.zst"};

/* First of dir/base, dir/base.idx, dir/base.zst, dir/base.idx.zst that exists. */
static int find_idx_file(const char *dir, const char *base, char *path, Err *e)
{
    for (size_t i = 0; i < sizeof IDX_SUFFIXES / sizeof *IDX_SUFFIXES; i++) {
        int len = snprintf(path, PATH_BUF, "%s/%s%s", dir, base, IDX_SUFFIXES[i]);
        if (len < 0 || len >= PATH_BUF) return err_set(e, "%s: directory path too long", dir);
        struct stat st;
        if (stat(path, &st) == 0) return 0;
    }
    return err_set(e, "%s: no %s there (tried the bare name and .idx, .zst, .idx.zst); use "
                   "--data DIR to point at a folder holding the MNIST IDX files", dir, base);
}

static int check_pair(const char *img_path, const IdxArray *img, const char *lbl_path,
                      const IdxArray *lbl, Err *e)
{
    if (img->rows != MNIST_SIDE || img->cols != MNIST_SIDE)
        return err_set(e, "%s: images are %d×%d but genlab needs %d×%d (MNIST-shaped data)",
                       img_path, img->rows, img->cols, MNIST_SIDE, MNIST_SIDE);
    if (img->n != lbl->n)
        return err_set(e, "%s has %d images but %s has %d labels; they must come from the "
                       "same set", img_path, img->n, lbl_path, lbl->n);
    for (int32_t i = 0; i < lbl->n; i++)
        if (lbl->data[i] > 9)
            return err_set(e, "%s: label %d of item %d is not a digit 0..9", lbl_path,
                           lbl->data[i], i);
    return 0;
}

int dataset_load(const char *dir, DatasetFile which, Dataset *out, Err *e)
{
    memset(out, 0, sizeof *out);
    const char *set = which == SET_TRAIN ? "train" : "t10k";
    char img_base[32], lbl_base[32], img_path[PATH_BUF], lbl_path[PATH_BUF];
    snprintf(img_base, sizeof img_base, "%s-images-idx3-ubyte", set);
    snprintf(lbl_base, sizeof lbl_base, "%s-labels-idx1-ubyte", set);
    /* Find both before reading either, so a missing file is reported at once. */
    if (find_idx_file(dir, img_base, img_path, e) || find_idx_file(dir, lbl_base, lbl_path, e))
        return -1;
    IdxArray img, lbl;
    if (idx_read(img_path, 3, &img, e)) return -1;
    if (idx_read(lbl_path, 1, &lbl, e) || check_pair(img_path, &img, lbl_path, &lbl, e)) {
        idx_free(&img);
        idx_free(&lbl);
        return -1;
    }
    out->n = img.n;
    out->images = img.data;
    out->labels = lbl.data;
    return 0;
}

void dataset_free(Dataset *d)
{
    free(d->images);
    free(d->labels);
    memset(d, 0, sizeof *d);
}

void study_split(int32_t *perm)
{
    for (int32_t i = 0; i < MNIST_TRAIN_N; i++) perm[i] = i;
    /* Plain modulo, not rng_below: DESIGN.md defines the split this way so
     * that any tool can rebuild it; the bias (~1e-15) does not matter. */
    uint64_t state = 0;
    for (int32_t i = MNIST_TRAIN_N - 1; i > 0; i--) {
        int32_t j = (int32_t)(splitmix64_next(&state) % (uint64_t)(i + 1));
        int32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

void dataset_gather(const Dataset *d, const int32_t *idx, int count, float *out)
{
    for (int k = 0; k < count; k++) {
        const uint8_t *src = d->images + (size_t)idx[k] * MNIST_PIXELS;
        float *dst = out + (size_t)k * MNIST_PIXELS;
        /* Division, not multiplication by 1/255, to match PyTorch's x / 255. */
        for (int p = 0; p < MNIST_PIXELS; p++) dst[p] = (float)src[p] / 255.0f;
    }
}
