/* test_dataset.c — IDX reading (plain and zstd), hostile files, the shipped
 * MNIST assets, dataset loading, the study split and batch gathering. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <zstd.h>

#include "genlab/dataset.h"
#include "testutil.h"


static int make_tmp_root(void **state)
{
    (void)state;
    return test_tmp_setup("dataset");
}

static int remove_tmp_root(void **state)
{
    (void)state;
    return test_tmp_teardown();
}


static void join(char *out, const char *dir, const char *name)
{
    test_path_printf(out, "%s/%s", dir, name);
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* An IDX header: magic 0, 0, type, ndims, then the dims. Returns its length. */
static size_t put_header(uint8_t *buf, uint8_t type, uint8_t ndims, const uint32_t *dims)
{
    buf[0] = 0, buf[1] = 0, buf[2] = type, buf[3] = ndims;
    for (int i = 0; i < ndims; i++) put_be32(buf + 4 + 4 * i, dims[i]);
    return 4 + 4 * (size_t)ndims;
}

/* Pixels that do not compress much, so zstd streams have many bytes to cut. */
static uint8_t noisy_byte(size_t i)
{
    uint64_t x = (i + 1) * 0x9E3779B97F4A7C15ull;
    return (uint8_t)((x ^ (x >> 29)) >> 23);
}

static uint8_t *images_file(uint32_t n, uint32_t rows, uint32_t cols, size_t *len)
{
    uint32_t dims[3] = {n, rows, cols};
    size_t payload = (size_t)n * rows * cols;
    uint8_t *buf = malloc(16 + payload);
    assert_non_null(buf);
    size_t h = put_header(buf, 0x08, 3, dims);
    for (size_t i = 0; i < payload; i++) buf[h + i] = noisy_byte(i);
    *len = h + payload;
    return buf;
}

static uint8_t *labels_file(uint32_t n, size_t *len)
{
    uint8_t *buf = malloc(8 + (size_t)n);
    assert_non_null(buf);
    size_t h = put_header(buf, 0x08, 1, &n);
    for (uint32_t i = 0; i < n; i++) buf[h + i] = (uint8_t)(i % 10);
    *len = h + n;
    return buf;
}

static uint8_t *zstd_compress(const uint8_t *src, size_t len, size_t *out_len)
{
    size_t cap = ZSTD_compressBound(len);
    uint8_t *dst = malloc(cap);
    assert_non_null(dst);
    ZSTD_CCtx *c = ZSTD_createCCtx();
    assert_non_null(c);
    assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1)));
    size_t r = ZSTD_compress2(c, dst, cap, src, len);
    assert_false(ZSTD_isError(r));
    ZSTD_freeCCtx(c);
    *out_len = r;
    return dst;
}

static void assert_contains(const char *msg, const char *fragment)
{
    if (!strstr(msg, fragment)) fail_msg("message \"%s\" lacks \"%s\"", msg, fragment);
}

/* One non-empty line that names `name`, plus `fragment` when given. */
static void assert_error_message(const Err *e, const char *name, const char *fragment)
{
    assert_true(e->msg[0] != '\0');
    assert_null(strchr(e->msg, '\n'));
    assert_contains(e->msg, name);
    if (fragment) assert_contains(e->msg, fragment);
}

static void expect_rejected(const char *path, int dims, const char *fragment)
{
    IdxArray a;
    memset(&a, 0x5A, sizeof a);
    Err e = {{0}};
    if (idx_read(path, dims, &a, &e) != -1) fail_msg("%s was accepted", path);
    assert_error_message(&e, path, fragment);
    assert_null(a.data);
    assert_int_equal(a.n, 0);
}

static void expect_bytes_rejected(const char *dir, const void *data, size_t len, int dims,
                                  const char *fragment)
{
    char path[TEST_PATH_LEN];
    join(path, dir, "hostile.idx");
    test_write_file(path, data, len);
    expect_rejected(path, dims, fragment);
}

static void asset_dir(char *out)
{
    const char *root = getenv("GENLAB_SOURCE_DIR");
    test_path_printf(out, "%s/assets", root ? root : ".");
}

static uint64_t byte_sum(const uint8_t *p, size_t n)
{
    uint64_t s = 0;
    for (size_t i = 0; i < n; i++) s += p[i];
    return s;
}

/* ---- the study split ---------------------------------------------------- */

static void test_split_anchors(void **state)
{
    (void)state;
    static int32_t p[MNIST_TRAIN_N];
    study_split(p);
    const int32_t head[5] = {17103, 3854, 34173, 44489, 57167};
    const int32_t test_head[5] = {27329, 59345, 22634, 26275, 21438};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(p[i], head[i]);
        assert_int_equal(p[STUDY_TRAIN_N + i], test_head[i]);
    }
}

static void test_split_is_permutation(void **state)
{
    (void)state;
    static int32_t p[MNIST_TRAIN_N];
    static uint8_t seen[MNIST_TRAIN_N];
    study_split(p);
    for (int i = 0; i < MNIST_TRAIN_N; i++) {
        assert_in_range(p[i], 0, MNIST_TRAIN_N - 1);
        assert_int_equal(seen[p[i]], 0);
        seen[p[i]] = 1;
    }
    assert_int_equal(STUDY_TRAIN_N + STUDY_TEST_N, MNIST_TRAIN_N);
}

/* ---- the shipped assets ------------------------------------------------- */

static void check_pixel_range(const Dataset *d)
{
    uint8_t lo = 255, hi = 0;
    for (size_t i = 0; i < (size_t)d->n * MNIST_PIXELS; i++) {
        if (d->images[i] < lo) lo = d->images[i];
        if (d->images[i] > hi) hi = d->images[i];
    }
    assert_int_equal(lo, 0);
    assert_int_equal(hi, 255);
    for (int32_t i = 0; i < d->n; i++) assert_in_range(d->labels[i], 0, 9);
}

static void test_load_shipped_train(void **state)
{
    (void)state;
    char dir[TEST_PATH_LEN];
    asset_dir(dir);
    Dataset d;
    Err e = {{0}};
    if (dataset_load(dir, SET_TRAIN, &d, &e)) fail_msg("%s", e.msg);
    assert_int_equal(d.n, MNIST_TRAIN_N);
    const uint8_t first[10] = {5, 0, 4, 1, 9, 2, 1, 3, 1, 4};
    assert_memory_equal(d.labels, first, sizeof first);
    check_pixel_range(&d);
    /* Sums from the raw file: they catch an image offset off by a few bytes. */
    assert_int_equal(byte_sum(d.images, MNIST_PIXELS), 27525);
    assert_int_equal(byte_sum(d.images, (size_t)d.n * MNIST_PIXELS), 1567298545ull);
    dataset_free(&d);
    assert_null(d.images);
    assert_int_equal(d.n, 0);
}

static void test_load_shipped_test(void **state)
{
    (void)state;
    char dir[TEST_PATH_LEN];
    asset_dir(dir);
    Dataset d;
    Err e = {{0}};
    if (dataset_load(dir, SET_TEST, &d, &e)) fail_msg("%s", e.msg);
    assert_int_equal(d.n, MNIST_TEST_N);
    const uint8_t first[10] = {7, 2, 1, 0, 4, 1, 4, 9, 5, 9};
    assert_memory_equal(d.labels, first, sizeof first);
    check_pixel_range(&d);
    assert_int_equal(byte_sum(d.images, MNIST_PIXELS), 18454);
    assert_int_equal(byte_sum(d.images, (size_t)d.n * MNIST_PIXELS), 264923200ull);
    dataset_free(&d);
}

/* Decompresses a shipped asset into `dir` under its bare name; checks that
 * idx_read gives the same array from both and that it matches the raw bytes. */
static void check_plain_matches_zstd(const char *dir, const char *base, int dims)
{
    char assets[TEST_PATH_LEN], zst_path[TEST_PATH_LEN], plain_path[TEST_PATH_LEN];
    asset_dir(assets);
    test_path_printf(zst_path, "%s/%s.idx.zst", assets, base);
    join(plain_path, dir, base);
    size_t zlen;
    uint8_t *z = test_read_file(zst_path, &zlen);
    assert_true(zlen > 0);
    unsigned long long raw_len = ZSTD_getFrameContentSize(z, zlen);
    assert_true(raw_len < 100u << 20);
    uint8_t *raw = malloc(raw_len);
    assert_non_null(raw);
    assert_int_equal(ZSTD_decompress(raw, raw_len, z, zlen), raw_len);
    test_write_file(plain_path, raw, raw_len);

    IdxArray from_zst, from_plain;
    Err e = {{0}};
    if (idx_read(zst_path, dims, &from_zst, &e)) fail_msg("%s", e.msg);
    if (idx_read(plain_path, dims, &from_plain, &e)) fail_msg("%s", e.msg);
    assert_int_equal(from_zst.n, from_plain.n);
    assert_int_equal(from_zst.rows, from_plain.rows);
    assert_int_equal(from_zst.cols, from_plain.cols);
    size_t header = 4 + 4 * (size_t)dims;
    assert_int_equal(raw_len - header,
                     (size_t)from_zst.n * (dims == 3 ? (size_t)from_zst.rows * from_zst.cols : 1));
    assert_memory_equal(from_zst.data, from_plain.data, raw_len - header);
    assert_memory_equal(from_zst.data, raw + header, raw_len - header);
    idx_free(&from_zst);
    idx_free(&from_plain);
    free(raw);
    free(z);
}

static void test_plain_and_zstd_agree(void **state)
{
    (void)state;
    char dir[TEST_PATH_LEN], path[TEST_PATH_LEN];
    test_make_dir("plain", dir);
    check_plain_matches_zstd(dir, "t10k-images-idx3-ubyte", 3);
    check_plain_matches_zstd(dir, "t10k-labels-idx1-ubyte", 1);
    check_plain_matches_zstd(dir, "train-labels-idx1-ubyte", 1);

    /* The bare name comes first: a broken .idx.zst beside it is not read. */
    join(path, dir, "t10k-images-idx3-ubyte.idx.zst");
    test_write_file(path, "junk", 4);
    Dataset d;
    Err e = {{0}};
    if (dataset_load(dir, SET_TEST, &d, &e)) fail_msg("%s", e.msg);
    assert_int_equal(d.n, MNIST_TEST_N);
    assert_int_equal(d.labels[0], 7);
    dataset_free(&d);
}

/* ---- small valid files -------------------------------------------------- */

static void test_reads_small_files(void **state)
{
    (void)state;
    char dir[TEST_PATH_LEN], path[TEST_PATH_LEN];
    test_make_dir("small", dir);
    size_t len, zlen;
    uint8_t *img = images_file(3, 5, 7, &len);
    uint8_t *z = zstd_compress(img, len, &zlen);
    const char *names[2] = {"img.idx", "img.idx.zst"};
    const uint8_t *contents[2] = {img, z};
    const size_t lengths[2] = {len, zlen};
    for (int k = 0; k < 2; k++) {
        join(path, dir, names[k]);
        test_write_file(path, contents[k], lengths[k]);
        IdxArray a;
        Err e = {{0}};
        if (idx_read(path, 3, &a, &e)) fail_msg("%s", e.msg);
        assert_int_equal(a.n, 3);
        assert_int_equal(a.rows, 5);
        assert_int_equal(a.cols, 7);
        assert_memory_equal(a.data, img + 16, 3 * 5 * 7);
        idx_free(&a);
        assert_null(a.data);
    }
    free(img);
    free(z);

    uint8_t *lbl = labels_file(12, &len);
    join(path, dir, "lbl.idx");
    test_write_file(path, lbl, len);
    IdxArray a;
    Err e = {{0}};
    if (idx_read(path, 1, &a, &e)) fail_msg("%s", e.msg);
    assert_int_equal(a.n, 12);
    assert_int_equal(a.rows, 0);
    assert_int_equal(a.cols, 0);
    assert_memory_equal(a.data, lbl + 8, 12);
    idx_free(&a);
    free(lbl);
}

/* `zstd` concatenates frames when given several inputs; all are read. */
static void test_reads_concatenated_zstd_frames(void **state)
{
    (void)state;
    char dir[TEST_PATH_LEN], path[TEST_PATH_LEN];
    test_make_dir("frames", dir);
    size_t len, alen, blen;
    uint8_t *img = images_file(2, 28, 28, &len);
    size_t cut = 100;
    uint8_t *a = zstd_compress(img, cut, &alen);
    uint8_t *b = zstd_compress(img + cut, len - cut, &blen);
    uint8_t *both = malloc(alen + blen);
    assert_non_null(both);
    memcpy(both, a, alen);
    memcpy(both + alen, b, blen);
    join(path, dir, "two-frames.idx.zst");
    test_write_file(path, both, alen + blen);
    IdxArray arr;
    Err e = {{0}};
    if (idx_read(path, 3, &arr, &e)) fail_msg("%s", e.msg);
    assert_memory_equal(arr.data, img + 16, len - 16);
    idx_free(&arr);
    free(img), free(a), free(b), free(both);
}

/* ---- hostile files ------------------------------------------------------ */

static void test_rejects_missing_file_and_directory(void **state)
{
    (void)state;
    char dir[TEST_PATH_LEN], path[TEST_PATH_LEN];
    test_make_dir("missing", dir);
    join(path, dir, "nothing-here.idx");
    expect_rejected(path, 3, "cannot open");
    expect_rejected(dir, 3, NULL);
}

static void test_rejects_empty(void **state)
{
    (void)state;
    char dir[TEST_PATH_LEN];
    test_make_dir("empty", dir);
    expect_bytes_rejected(dir, "", 0, 3, "empty");
    expect_bytes_rejected(dir, "", 0, 1, "empty");
}

static void test_rejects_every_truncation(void **state)
{
    (void)state;
    char dir[TEST_PATH_LEN];
    test_make_dir("truncated", dir);
    size_t len;
    uint8_t *img = images_file(2, 28, 28, &len);
    for (size_t cut = 0; cut < len; cut++)
        expect_bytes_rejected(dir, img, cut, 3, cut == 0 ? "empty" : "truncated");
    free(img);
    uint8_t *lbl = labels_file(20, &len);
    for (size_t cut = 0; cut < len; cut++) expect_bytes_rejected(dir, lbl, cut, 1, NULL);
    free(lbl);
}

static void test_truncation_message_gives_sizes(void **state)
{
    (void)state;
    char dir[TEST_PATH_LEN];
    test_make_dir("truncated-msg", dir);
    uint8_t buf[1000] = {0};
    const uint32_t dims[3] = {60000, 28, 28};
    put_header(buf, 0x08, 3, dims);
    expect_bytes_rejected(dir, buf, sizeof buf, 3,
                          "truncated: header says 60000 images of 28×28 (47040016 bytes) "
                          "but the file has 1000 bytes");
}

static void test_rejects_every_truncated_zstd_stream(void **state)
{
    (void)state;
    char dir[TEST_PATH_LEN];
    test_make_dir("truncated-zstd", dir);
    size_t len, zlen;
    uint8_t *img = images_file(2, 28, 28, &len);
    uint8_t *z = zstd_compress(img, len, &zlen);
    for (size_t cut = 0; cut < zlen; cut++) expect_bytes_rejected(dir, z, cut, 3, NULL);
    /* Cut inside the final checksum: every image byte is there, the frame is not. */
    expect_bytes_rejected(dir, z, zlen - 1, 3, "truncated zstd stream");
    free(z);
    free(img);
}

static void test_rejects_trailing_bytes(void **state)
{
    (void)state;
    char dir[TEST_PATH_LEN];
    test_make_dir("trailing", dir);
    size_t len, zlen;
    uint8_t *img = images_file(2, 28, 28, &len);
    uint8_t *longer = calloc(len + 1000, 1);
    assert_non_null(longer);
    memcpy(longer, img, len);
    expect_bytes_rejected(dir, longer, len + 1, 3, "trailing bytes");
    expect_bytes_rejected(dir, longer, len + 1000, 3, "the file has 2584 bytes");
    uint8_t *z = zstd_compress(longer, len + 1, &zlen);
    expect_bytes_rejected(dir, z, zlen, 3, "decompresses to more than 1584 bytes");
    free(z);
    free(longer);
    free(img);
}

static void test_rejects_bad_magic(void **state)
{
    (void)state;
    char dir[TEST_PATH_LEN];
    test_make_dir("magic", dir);
    size_t len;
    uint8_t *img = images_file(1, 28, 28, &len);
    img[0] = 0x12;
    expect_bytes_rejected(dir, img, len, 3, "not an IDX file (bad magic 0x12000803)");
    memcpy(img, "PK\x03\x04", 4);
    expect_bytes_rejected(dir, img, len, 3, "bad magic");
    memcpy(img, "\x1f\x8b\x08\x00", 4);
    expect_bytes_rejected(dir, img, len, 3, "gzip");
    free(img);
}

static void test_rejects_wrong_type(void **state)
{
    (void)state;
    char dir[TEST_PATH_LEN];
    test_make_dir("dtype", dir);
    size_t len;
    uint8_t *img = images_file(1, 28, 28, &len);
    const uint8_t others[] = {0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x00, 0xFF};
    for (size_t i = 0; i < sizeof others; i++) {
        img[2] = others[i];
        expect_bytes_rejected(dir, img, len, 3, "element type");
    }
    free(img);
}

static void test_rejects_wrong_ndim(void **state)
{
    (void)state;
    char dir[TEST_PATH_LEN];
    test_make_dir("ndim", dir);
    size_t ilen, llen;
    uint8_t *img = images_file(3, 28, 28, &ilen);
    uint8_t *lbl = labels_file(3, &llen);
    expect_bytes_rejected(dir, lbl, llen, 3, "labels file");
    expect_bytes_rejected(dir, img, ilen, 1, "images file");
    img[3] = 2;
    expect_bytes_rejected(dir, img, ilen, 3, "2 dimensions");
    img[3] = 4;
    expect_bytes_rejected(dir, img, ilen, 3, "4 dimensions");
    free(img);
    free(lbl);
}

static void expect_header_rejected(const char *dir, uint32_t n, uint32_t rows, uint32_t cols,
                                   const char *fragment)
{
    uint8_t buf[16 + 64] = {0};
    const uint32_t dims[3] = {n, rows, cols};
    put_header(buf, 0x08, 3, dims);
    expect_bytes_rejected(dir, buf, sizeof buf, 3, fragment);
}

static void test_rejects_zero_dims(void **state)
{
    (void)state;
    char dir[TEST_PATH_LEN];
    test_make_dir("zero", dir);
    expect_header_rejected(dir, 0, 28, 28, "0 images");
    expect_header_rejected(dir, 4, 0, 28, "0×28");
    expect_header_rejected(dir, 4, 28, 0, "28×0");
    uint8_t buf[8] = {0};
    const uint32_t n = 0;
    put_header(buf, 0x08, 1, &n);
    expect_bytes_rejected(dir, buf, sizeof buf, 1, "0 labels");
}

/* Absurd headers fail on the header alone; a plausible but huge one fails
 * on the size check, before anything of its size is allocated (under ASan
 * a 10 TB allocation would abort the test). */
static void test_rejects_huge_dims(void **state)
{
    (void)state;
    char dir[TEST_PATH_LEN];
    test_make_dir("huge", dir);
    expect_header_rejected(dir, 0x7fffffff, 65535, 65535, "more than");
    expect_header_rejected(dir, 0x7fffffff, 28, 28, "more than");
    expect_header_rejected(dir, 0xffffffff, 28, 28, "more than");
    expect_header_rejected(dir, 100, 65535, 65535, "larger than");
    expect_header_rejected(dir, 100, 28, 1025, "larger than");
    expect_header_rejected(dir, 10000000, 1024, 1024, "truncated");

    uint8_t hdr[16];
    const uint32_t dims[3] = {10000000, 1024, 1024};
    put_header(hdr, 0x08, 3, dims);
    size_t zlen;
    uint8_t *z = zstd_compress(hdr, sizeof hdr, &zlen);
    expect_bytes_rejected(dir, z, zlen, 3, "decompresses to 16 bytes");
    free(z);

    uint8_t lbl[8];
    const uint32_t n = 10000001;
    put_header(lbl, 0x08, 1, &n);
    expect_bytes_rejected(dir, lbl, sizeof lbl, 1, "more than");
}

static void test_rejects_corrupt_zstd(void **state)
{
    (void)state;
    char dir[TEST_PATH_LEN];
    test_make_dir("corrupt", dir);
    size_t len, zlen;
    uint8_t *img = images_file(2, 28, 28, &len);
    uint8_t *z = zstd_compress(img, len, &zlen);
    const size_t spots[] = {4, 5, zlen / 2, zlen - 8, zlen - 1};
    for (size_t i = 0; i < sizeof spots / sizeof *spots; i++) {
        z[spots[i]] ^= 0x55;
        expect_bytes_rejected(dir, z, zlen, 3, NULL);
        z[spots[i]] ^= 0x55;
    }
    z[zlen - 1] ^= 0x01; /* checksum */
    expect_bytes_rejected(dir, z, zlen, 3, "corrupt zstd stream");
    z[zlen - 1] ^= 0x01;
    /* Garbage after a complete frame is not a frame. */
    uint8_t *longer = malloc(zlen + 8);
    assert_non_null(longer);
    memcpy(longer, z, zlen);
    memcpy(longer + zlen, "garbage!", 8);
    expect_bytes_rejected(dir, longer, zlen + 8, 3, "corrupt zstd stream");
    free(longer);
    free(z);
    free(img);
}

/* A valid file in a frame that declares a 256 MiB window (--long=28): the
 * reader refuses it rather than allocate that much. */
static void test_rejects_zstd_window_over_limit(void **state)
{
    (void)state;
    char dir[TEST_PATH_LEN];
    test_make_dir("window", dir);
    size_t len;
    uint8_t *img = images_file(1, 28, 28, &len);
    uint8_t z[4096];
    ZSTD_CCtx *c = ZSTD_createCCtx();
    assert_non_null(c);
    assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, 28)));
    ZSTD_outBuffer out = {z, sizeof z, 0};
    ZSTD_inBuffer in = {img, len, 0};
    /* Fed in two steps, so the size is unknown and the window stays 2^28. */
    assert_false(ZSTD_isError(ZSTD_compressStream2(c, &out, &in, ZSTD_e_continue)));
    assert_int_equal(ZSTD_compressStream2(c, &out, &in, ZSTD_e_end), 0);
    ZSTD_freeCCtx(c);
    expect_bytes_rejected(dir, z, out.pos, 3, "--long=27");
    free(img);
}

/* A header for one image, then 100 MB of zeros: a few kB compressed. */
static uint8_t *zstd_bomb(size_t *out_len)
{
    enum { CHUNK = 1 << 20, CHUNKS = 100, CAP = 1 << 20 };
    uint8_t *zeros = calloc(CHUNK, 1);
    uint8_t *dst = malloc(CAP);
    assert_non_null(zeros);
    assert_non_null(dst);
    const uint32_t dims[3] = {1, 28, 28};
    put_header(zeros, 0x08, 3, dims);
    ZSTD_CCtx *c = ZSTD_createCCtx();
    assert_non_null(c);
    ZSTD_outBuffer out = {dst, CAP, 0};
    for (int i = 0; i < CHUNKS; i++) {
        ZSTD_inBuffer in = {zeros, CHUNK, 0};
        ZSTD_EndDirective mode = i == CHUNKS - 1 ? ZSTD_e_end : ZSTD_e_continue;
        size_t r;
        do r = ZSTD_compressStream2(c, &out, &in, mode);
        while (!ZSTD_isError(r) && (mode == ZSTD_e_end ? r != 0 : in.pos < in.size));
        assert_false(ZSTD_isError(r));
        memset(zeros, 0, 16);
    }
    ZSTD_freeCCtx(c);
    free(zeros);
    *out_len = out.pos;
    return dst;
}

static void test_rejects_zstd_bomb(void **state)
{
    (void)state;
    char dir[TEST_PATH_LEN];
    test_make_dir("bomb", dir);
    size_t zlen;
    uint8_t *z = zstd_bomb(&zlen);
    assert_true(zlen < 64 * 1024);
    expect_bytes_rejected(dir, z, zlen, 3, "decompresses to more than 800 bytes");
    free(z);
}

/* ---- dataset_load ------------------------------------------------------- */

static void write_set(const char *dir, const char *img_name, uint32_t n_img, uint32_t side,
                      const char *lbl_name, uint32_t n_lbl)
{
    char path[TEST_PATH_LEN];
    size_t len;
    uint8_t *img = images_file(n_img, side, side, &len);
    join(path, dir, img_name);
    test_write_file(path, img, len);
    free(img);
    uint8_t *lbl = labels_file(n_lbl, &len);
    join(path, dir, lbl_name);
    test_write_file(path, lbl, len);
    free(lbl);
}

static void expect_load_rejected(const char *dir, DatasetFile which, const char *name,
                                 const char *fragment)
{
    Dataset d;
    memset(&d, 0x5A, sizeof d);
    Err e = {{0}};
    if (dataset_load(dir, which, &d, &e) != -1) fail_msg("%s was accepted", dir);
    assert_error_message(&e, name, fragment);
    assert_null(d.images);
    assert_null(d.labels);
}

/* Names are tried in order; the content, not the name, says whether a
 * file is compressed. */
static void test_load_finds_suffixed_names(void **state)
{
    (void)state;
    char dir[TEST_PATH_LEN], path[TEST_PATH_LEN];
    test_make_dir("suffixed", dir);
    size_t ilen, llen, zlen;
    uint8_t *img = images_file(4, 28, 28, &ilen);
    uint8_t *z = zstd_compress(img, ilen, &zlen);
    join(path, dir, "train-images-idx3-ubyte.idx");
    test_write_file(path, z, zlen);
    uint8_t *lbl = labels_file(4, &llen);
    join(path, dir, "train-labels-idx1-ubyte.idx.zst");
    test_write_file(path, lbl, llen);
    Dataset d;
    Err e = {{0}};
    if (dataset_load(dir, SET_TRAIN, &d, &e)) fail_msg("%s", e.msg);
    assert_int_equal(d.n, 4);
    assert_memory_equal(d.images, img + 16, 4 * MNIST_PIXELS);
    assert_memory_equal(d.labels, lbl + 8, 4);
    dataset_free(&d);
    free(z);
    free(img);
    free(lbl);
}

static void test_load_missing_files_name_dir_and_file(void **state)
{
    (void)state;
    char dir[TEST_PATH_LEN], path[TEST_PATH_LEN];
    test_make_dir("no-mnist", dir);
    expect_load_rejected(dir, SET_TRAIN, dir, "train-images-idx3-ubyte");
    expect_load_rejected(dir, SET_TEST, dir, "--data");
    size_t len;
    uint8_t *img = images_file(1, 28, 28, &len);
    join(path, dir, "t10k-images-idx3-ubyte");
    test_write_file(path, img, len);
    free(img);
    expect_load_rejected(dir, SET_TEST, dir, "t10k-labels-idx1-ubyte");
}

static void test_load_rejects_count_mismatch(void **state)
{
    (void)state;
    char dir[TEST_PATH_LEN];
    test_make_dir("count", dir);
    write_set(dir, "train-images-idx3-ubyte", 2, 28, "train-labels-idx1-ubyte", 3);
    expect_load_rejected(dir, SET_TRAIN, "train-images-idx3-ubyte", "3 labels");
}

static void test_load_rejects_bad_label(void **state)
{
    (void)state;
    char dir[TEST_PATH_LEN], path[TEST_PATH_LEN];
    test_make_dir("label", dir);
    write_set(dir, "train-images-idx3-ubyte", 3, 28, "train-labels-idx1-ubyte", 3);
    size_t len;
    uint8_t *lbl = labels_file(3, &len);
    lbl[8 + 2] = 10;
    join(path, dir, "train-labels-idx1-ubyte");
    test_write_file(path, lbl, len);
    free(lbl);
    expect_load_rejected(dir, SET_TRAIN, path, "label 10 of item 2");
}

static void test_load_rejects_other_sizes(void **state)
{
    (void)state;
    char dir[TEST_PATH_LEN];
    test_make_dir("size", dir);
    write_set(dir, "t10k-images-idx3-ubyte", 2, 14, "t10k-labels-idx1-ubyte", 2);
    expect_load_rejected(dir, SET_TEST, "t10k-images-idx3-ubyte", "14×14");
}

static void test_load_propagates_file_errors(void **state)
{
    (void)state;
    char dir[TEST_PATH_LEN], path[TEST_PATH_LEN];
    test_make_dir("broken", dir);
    write_set(dir, "train-images-idx3-ubyte", 2, 28, "train-labels-idx1-ubyte", 2);
    join(path, dir, "train-labels-idx1-ubyte");
    test_write_file(path, "\0\0\x08\x01\0\0", 6);
    expect_load_rejected(dir, SET_TRAIN, path, "truncated");
}

/* ---- dataset_gather ----------------------------------------------------- */

static void test_gather_values(void **state)
{
    (void)state;
    static uint8_t images[3 * MNIST_PIXELS];
    uint8_t labels[3] = {1, 2, 3};
    for (int i = 0; i < 3 * MNIST_PIXELS; i++) images[i] = (uint8_t)(i * 7 + i / MNIST_PIXELS);
    Dataset d = {3, images, labels};
    const int32_t idx[3] = {2, 0, 2};
    static float out[3 * MNIST_PIXELS];
    dataset_gather(&d, idx, 3, out);
    for (int k = 0; k < 3; k++)
        for (int p = 0; p < MNIST_PIXELS; p++) {
            float want = images[idx[k] * MNIST_PIXELS + p] / 255.0f;
            assert_true(out[k * MNIST_PIXELS + p] == want);
            assert_true(want >= 0.0f && want <= 1.0f);
        }
    images[0] = 255;
    images[1] = 0;
    dataset_gather(&d, idx + 1, 1, out);
    assert_true(out[0] == 1.0f);
    assert_true(out[1] == 0.0f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_anchors),
        cmocka_unit_test(test_split_is_permutation),
        cmocka_unit_test(test_load_shipped_train),
        cmocka_unit_test(test_load_shipped_test),
        cmocka_unit_test(test_plain_and_zstd_agree),
        cmocka_unit_test(test_reads_small_files),
        cmocka_unit_test(test_reads_concatenated_zstd_frames),
        cmocka_unit_test(test_rejects_missing_file_and_directory),
        cmocka_unit_test(test_rejects_empty),
        cmocka_unit_test(test_rejects_every_truncation),
        cmocka_unit_test(test_truncation_message_gives_sizes),
        cmocka_unit_test(test_rejects_every_truncated_zstd_stream),
        cmocka_unit_test(test_rejects_trailing_bytes),
        cmocka_unit_test(test_rejects_bad_magic),
        cmocka_unit_test(test_rejects_wrong_type),
        cmocka_unit_test(test_rejects_wrong_ndim),
        cmocka_unit_test(test_rejects_zero_dims),
        cmocka_unit_test(test_rejects_huge_dims),
        cmocka_unit_test(test_rejects_corrupt_zstd),
        cmocka_unit_test(test_rejects_zstd_window_over_limit),
        cmocka_unit_test(test_rejects_zstd_bomb),
        cmocka_unit_test(test_load_finds_suffixed_names),
        cmocka_unit_test(test_load_missing_files_name_dir_and_file),
        cmocka_unit_test(test_load_rejects_count_mismatch),
        cmocka_unit_test(test_load_rejects_bad_label),
        cmocka_unit_test(test_load_rejects_other_sizes),
        cmocka_unit_test(test_load_propagates_file_errors),
        cmocka_unit_test(test_gather_values),
    };
    return cmocka_run_group_tests(tests, make_tmp_root, remove_tmp_root);
}
