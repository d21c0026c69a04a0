/* test_image.c — format names, float → byte conversion, grid layout in PGM
 * and PNG, IDX output, and atomic writes that leave nothing behind. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <png.h>

#include "genlab/dataset.h"
#include "testutil.h"
#include "genlab/image.h"

#define GUTTER 2

static int make_tmp_root(void **state)
{
    (void)state;
    return test_tmp_setup("image");
}

static int remove_tmp_root(void **state)
{
    (void)state;
    return test_tmp_teardown();
}


/* Names in `dir` other than . and ..; fails on any leftover temporary. */
static int count_entries_without_temps(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int count = 0;
    for (struct dirent *ent; (ent = readdir(d));) {
        if (strcmp(ent->d_name, ".") == 0 || strcmp(ent->d_name, "..") == 0) continue;
        if (strstr(ent->d_name, ".tmp.")) fail_msg("temporary left behind: %s", ent->d_name);
        count++;
    }
    closedir(d);
    return count;
}

static void assert_contains(const char *msg, const char *fragment)
{
    if (!strstr(msg, fragment)) fail_msg("message \"%s\" lacks \"%s\"", msg, fragment);
}

static uint8_t *noisy_images(int n, int side)
{
    size_t len = (size_t)n * (size_t)side * (size_t)side;
    uint8_t *p = malloc(len);
    assert_non_null(p);
    for (size_t i = 0; i < len; i++) {
        uint64_t x = (i + 1) * 0x9E3779B97F4A7C15ull;
        p[i] = (uint8_t)((x ^ (x >> 29)) >> 23);
    }
    return p;
}

/* The grid pixel at (x, y), computed per pixel, independently of the
 * row-wise code under test. */
static uint8_t reference_pixel(const uint8_t *imgs, int n, int side, int cols, int x, int y)
{
    int pitch = side + GUTTER;
    int cx = (x - GUTTER) / pitch, cy = (y - GUTTER) / pitch;
    int px = (x - GUTTER) % pitch, py = (y - GUTTER) % pitch;
    if (x < GUTTER || y < GUTTER || px >= side || py >= side || cx >= cols) return 0;
    int k = cy * cols + cx;
    if (k >= n) return 0;
    return imgs[(size_t)k * side * side + (size_t)py * side + px];
}

static void assert_grid(const uint8_t *pixels, int width, int height, const uint8_t *imgs,
                        int n, int side, int cols)
{
    int rows = (n + cols - 1) / cols;
    assert_int_equal(width, cols * (side + GUTTER) + GUTTER);
    assert_int_equal(height, rows * (side + GUTTER) + GUTTER);
    for (int y = 0; y < height; y++)
        for (int x = 0; x < width; x++)
            if (pixels[(size_t)y * width + x] != reference_pixel(imgs, n, side, cols, x, y))
                fail_msg("pixel (%d, %d) is %d, expected %d", x, y,
                         pixels[(size_t)y * width + x],
                         reference_pixel(imgs, n, side, cols, x, y));
}

/* Parses the P5 header that image_write produces; returns the pixels. */
static const uint8_t *pgm_pixels(const uint8_t *file, size_t len, int *width, int *height)
{
    int consumed = 0;
    assert_int_equal(sscanf((const char *)file, "P5\n%d %d\n255\n%n", width, height, &consumed),
                     2);
    assert_true(consumed > 0);
    assert_int_equal(len - (size_t)consumed, (size_t)*width * (size_t)*height);
    return file + consumed;
}

static uint8_t *read_png_grey(const char *path, int *width, int *height)
{
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    assert_true(png_image_begin_read_from_file(&img, path));
    img.format = PNG_FORMAT_GRAY;
    uint8_t *buf = malloc(PNG_IMAGE_SIZE(img));
    assert_non_null(buf);
    assert_true(png_image_finish_read(&img, NULL, buf, 0, NULL));
    *width = (int)img.width;
    *height = (int)img.height;
    return buf;
}

/* ---- format names and byte conversion ------------------------------------ */

static void test_format_from_name(void **state)
{
    (void)state;
    assert_int_equal(image_format_from_name("grid.png"), IMG_PNG);
    assert_int_equal(image_format_from_name("out/GRID.PNG"), IMG_PNG);
    assert_int_equal(image_format_from_name("a.b/grid.Pgm"), IMG_PGM);
    assert_int_equal(image_format_from_name("samples.idx"), IMG_IDX);
    assert_int_equal(image_format_from_name("samples.IDX"), IMG_IDX);
    assert_int_equal(image_format_from_name("grid.jpg"), IMG_UNKNOWN);
    assert_int_equal(image_format_from_name("grid.png.bak"), IMG_UNKNOWN);
    assert_int_equal(image_format_from_name("grid"), IMG_UNKNOWN);
    assert_int_equal(image_format_from_name("dir.png/grid"), IMG_UNKNOWN);
    assert_int_equal(image_format_from_name("out/.png"), IMG_UNKNOWN);
    assert_int_equal(image_format_from_name("grid."), IMG_UNKNOWN);
    assert_int_equal(image_format_from_name(""), IMG_UNKNOWN);
}

static void test_to_bytes_round_trips_every_byte(void **state)
{
    (void)state;
    float in[256];
    uint8_t out[256];
    for (int k = 0; k < 256; k++) in[k] = (float)k / 255.0f;
    image_to_bytes(in, 256, out);
    for (int k = 0; k < 256; k++) assert_int_equal(out[k], k);
}

/* Rounding is round(x·255) with halves away from zero; out of range clamps;
 * NaN is drawn black (0). */
static void test_to_bytes_rounds_and_clamps(void **state)
{
    (void)state;
    const float in[] = {0.4f / 255, 0.6f / 255, 254.4f / 255, 254.6f / 255, 0.5f,
                        -0.1f, -0.0f, -INFINITY, 1.0001f, 7.0f, 1e30f, INFINITY, NAN, -NAN};
    const uint8_t want[] = {0, 1, 254, 255, 128, 0, 0, 0, 255, 255, 255, 255, 0, 0};
    uint8_t out[sizeof want];
    image_to_bytes(in, (int64_t)(sizeof want), out);
    assert_memory_equal(out, want, sizeof want);
    image_to_bytes(in, 0, out); /* nothing to do, nothing touched */
    assert_memory_equal(out, want, sizeof want);
}

/* ---- grids ---------------------------------------------------------------- */

static void test_pgm_two_image_grid_bytes(void **state)
{
    (void)state;
    char dir[TEST_PATH_LEN], path[TEST_PATH_LEN];
    test_make_dir("pgm", dir);
    test_path_printf(path, "%s/two.pgm", dir);
    const uint8_t imgs[8] = {10, 20, 30, 40, 50, 60, 70, 80};
    Err e = {{0}};
    if (image_write(path, imgs, 2, 2, 0, &e)) fail_msg("%s", e.msg);
    /* Two 2×2 cells side by side (ceil(sqrt(2)) = 2 columns), 2-pixel gutters. */
    const char header[] = "P5\n10 6\n255\n";
    const uint8_t pixels[6][10] = {
        {0}, {0},
        {0, 0, 10, 20, 0, 0, 50, 60, 0, 0},
        {0, 0, 30, 40, 0, 0, 70, 80, 0, 0},
        {0}, {0},
    };
    size_t len;
    uint8_t *file = test_read_file(path, &len);
    assert_int_equal(len, strlen(header) + sizeof pixels);
    assert_memory_equal(file, header, strlen(header));
    assert_memory_equal(file + strlen(header), pixels, sizeof pixels);
    free(file);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
}

/* Partial last rows, explicit and automatic column counts, cells wider than
 * the images are tall: all against the per-pixel reference. */
static void test_pgm_grids_match_reference(void **state)
{
    (void)state;
    char dir[TEST_PATH_LEN], path[TEST_PATH_LEN];
    test_make_dir("pgm-ref", dir);
    test_path_printf(path, "%s/grid.pgm", dir);
    const struct { int n, side, cols, want_cols; } cases[] = {
        {3, 2, 2, 2}, {1, 28, 0, 1}, {7, 28, 0, 3}, {10, 5, 4, 4}, {5, 3, 8, 8}, {16, 4, 0, 4},
        {17, 4, 0, 5},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        uint8_t *imgs = noisy_images(cases[i].n, cases[i].side);
        Err e = {{0}};
        if (image_write(path, imgs, cases[i].n, cases[i].side, cases[i].cols, &e))
            fail_msg("%s", e.msg);
        size_t len;
        int width, height;
        uint8_t *file = test_read_file(path, &len);
        const uint8_t *pixels = pgm_pixels(file, len, &width, &height);
        assert_grid(pixels, width, height, imgs, cases[i].n, cases[i].side, cases[i].want_cols);
        free(file);
        free(imgs);
    }
}

static void test_png_reads_back_exactly(void **state)
{
    (void)state;
    char dir[TEST_PATH_LEN], png_path[TEST_PATH_LEN], pgm_path[TEST_PATH_LEN];
    test_make_dir("png", dir);
    test_path_printf(png_path, "%s/grid.png", dir);
    test_path_printf(pgm_path, "%s/grid.pgm", dir);
    const int n = 7, side = 28, cols = 3;
    uint8_t *imgs = noisy_images(n, side);
    imgs[0] = 255;
    imgs[1] = 0;
    Err e = {{0}};
    if (image_write(png_path, imgs, n, side, cols, &e)) fail_msg("%s", e.msg);
    if (image_write(pgm_path, imgs, n, side, cols, &e)) fail_msg("%s", e.msg);

    size_t len;
    uint8_t *file = test_read_file(png_path, &len);
    assert_true(len > 26);
    assert_int_equal(file[24], 8); /* IHDR bit depth */
    assert_int_equal(file[25], 0); /* IHDR colour type: grey */
    free(file);

    int width, height, pgm_width, pgm_height;
    uint8_t *pixels = read_png_grey(png_path, &width, &height);
    assert_grid(pixels, width, height, imgs, n, side, cols);
    uint8_t *pgm = test_read_file(pgm_path, &len);
    const uint8_t *pgm_px = pgm_pixels(pgm, len, &pgm_width, &pgm_height);
    assert_int_equal(pgm_width, width);
    assert_int_equal(pgm_height, height);
    assert_memory_equal(pgm_px, pixels, (size_t)width * height);
    free(pgm);
    free(pixels);
    free(imgs);
}

static void test_idx_reads_back(void **state)
{
    (void)state;
    char dir[TEST_PATH_LEN], path[TEST_PATH_LEN];
    test_make_dir("idx", dir);
    test_path_printf(path, "%s/samples.idx", dir);
    const int sides[2] = {28, 3};
    for (int i = 0; i < 2; i++) {
        uint8_t *imgs = noisy_images(5, sides[i]);
        Err e = {{0}};
        if (image_write(path, imgs, 5, sides[i], 2, &e)) fail_msg("%s", e.msg);
        IdxArray a;
        if (idx_read(path, 3, &a, &e)) fail_msg("%s", e.msg);
        assert_int_equal(a.n, 5);
        assert_int_equal(a.rows, sides[i]);
        assert_int_equal(a.cols, sides[i]);
        assert_memory_equal(a.data, imgs, (size_t)5 * sides[i] * sides[i]);
        idx_free(&a);
        free(imgs);
    }
}

/* ---- failures ------------------------------------------------------------ */

static void test_replaces_existing_file(void **state)
{
    (void)state;
    char dir[TEST_PATH_LEN], path[TEST_PATH_LEN];
    test_make_dir("replace", dir);
    test_path_printf(path, "%s/grid.pgm", dir);
    test_write_file(path, "old", 3);
    const uint8_t img[1] = {99};
    Err e = {{0}};
    if (image_write(path, img, 1, 1, 0, &e)) fail_msg("%s", e.msg);
    size_t len;
    uint8_t *file = test_read_file(path, &len);
    const char want[] = "P5\n5 5\n255\n";
    assert_int_equal(len, strlen(want) + 25);
    assert_memory_equal(file, want, strlen(want));
    assert_int_equal(file[strlen(want) + 2 * 5 + 2], 99);
    free(file);
    assert_int_equal(count_entries_without_temps(dir), 1);
}

static void assert_file_is(const char *path, const char *content)
{
    size_t len;
    uint8_t *file = test_read_file(path, &len);
    assert_int_equal(len, strlen(content));
    assert_memory_equal(file, content, len);
    free(file);
}

/* A write that fails midway (here the file-size limit, which binds root
 * too) reports the file, keeps the old one and removes the temporary. */
static void test_failed_write_keeps_old_file(void **state)
{
    (void)state;
    char dir[TEST_PATH_LEN], path[TEST_PATH_LEN];
    test_make_dir("fail", dir);
    const char *names[3] = {"keep.png", "keep.pgm", "keep.idx"};
    uint8_t *imgs = noisy_images(100, 28);
    for (int i = 0; i < 3; i++) {
        test_path_printf(path, "%s/%s", dir, names[i]);
        test_write_file(path, "old", 3);
        struct rlimit saved, small;
        assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
        small = (struct rlimit){1024, saved.rlim_max};
        void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
        Err e = {{0}};
        int rc = image_write(path, imgs, 100, 28, 0, &e);
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
        signal(SIGXFSZ, old_handler);
        assert_int_equal(rc, -1);
        assert_contains(e.msg, path);
        assert_contains(e.msg, "write failed");
        assert_null(strchr(e.msg, '\n'));
        assert_file_is(path, "old");
    }
    assert_int_equal(count_entries_without_temps(dir), 3);
    free(imgs);
}

static void test_unwritable_directory(void **state)
{
    (void)state;
    if (geteuid() == 0) skip(); /* root writes anywhere */
    char dir[TEST_PATH_LEN], path[TEST_PATH_LEN];
    test_make_dir("readonly", dir);
    test_path_printf(path, "%s/keep.png", dir);
    test_write_file(path, "old", 3);
    assert_int_equal(chmod(dir, 0555), 0);
    const uint8_t img[4] = {1, 2, 3, 4};
    Err e = {{0}};
    int rc = image_write(path, img, 1, 2, 0, &e);
    assert_int_equal(chmod(dir, 0755), 0);
    assert_int_equal(rc, -1);
    assert_contains(e.msg, path);
    assert_file_is(path, "old");
    assert_int_equal(count_entries_without_temps(dir), 1);
}

static void test_missing_directory(void **state)
{
    (void)state;
    char dir[TEST_PATH_LEN], path[TEST_PATH_LEN];
    test_make_dir("parent", dir);
    test_path_printf(path, "%s/no-such-dir/grid.png", dir);
    const uint8_t img[4] = {1, 2, 3, 4};
    Err e = {{0}};
    assert_int_equal(image_write(path, img, 1, 2, 0, &e), -1);
    assert_contains(e.msg, path);
    assert_contains(e.msg, "No such file or directory");
    assert_int_equal(count_entries_without_temps(dir), 0);
}

static void test_unknown_extension_lists_supported(void **state)
{
    (void)state;
    char dir[TEST_PATH_LEN], path[TEST_PATH_LEN];
    test_make_dir("ext", dir);
    test_path_printf(path, "%s/grid.jpg", dir);
    const uint8_t img[4] = {1, 2, 3, 4};
    Err e = {{0}};
    assert_int_equal(image_write(path, img, 1, 2, 0, &e), -1);
    assert_contains(e.msg, path);
    assert_contains(e.msg, ".png");
    assert_contains(e.msg, ".pgm");
    assert_contains(e.msg, ".idx");
    assert_int_equal(count_entries_without_temps(dir), 0);
}

static void test_rejects_bad_sizes(void **state)
{
    (void)state;
    char dir[TEST_PATH_LEN], path[TEST_PATH_LEN];
    test_make_dir("sizes", dir);
    test_path_printf(path, "%s/grid.png", dir);
    const uint8_t img[784] = {0};
    Err e = {{0}};
    assert_int_equal(image_write(path, img, 0, 28, 0, &e), -1);
    assert_contains(e.msg, path);
    e.msg[0] = '\0';
    assert_int_equal(image_write(path, img, 1, 0, 0, &e), -1);
    assert_contains(e.msg, path);
    e.msg[0] = '\0';
    /* 100,000 columns of 30 pixels: wider than any PNG reader accepts. */
    assert_int_equal(image_write(path, img, 1, 28, 100000, &e), -1);
    assert_contains(e.msg, "limit");
    assert_int_equal(count_entries_without_temps(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_from_name),
        cmocka_unit_test(test_to_bytes_round_trips_every_byte),
        cmocka_unit_test(test_to_bytes_rounds_and_clamps),
        cmocka_unit_test(test_pgm_two_image_grid_bytes),
        cmocka_unit_test(test_pgm_grids_match_reference),
        cmocka_unit_test(test_png_reads_back_exactly),
        cmocka_unit_test(test_idx_reads_back),
        cmocka_unit_test(test_replaces_existing_file),
        cmocka_unit_test(test_failed_write_keeps_old_file),
        cmocka_unit_test(test_unwritable_directory),
        cmocka_unit_test(test_missing_directory),
        cmocka_unit_test(test_unknown_extension_lists_supported),
        cmocka_unit_test(test_rejects_bad_sizes),
    };
    return cmocka_run_group_tests(tests, make_tmp_root, remove_tmp_root);
}
