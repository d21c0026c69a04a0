/* test_checkpoint.c — checkpoint round trips, file format, hostile input
 * and atomic writes (src/checkpoint.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zstd.h>

#include "genlab/checkpoint.h"
#include "testutil.h"


/* ------------------------------------------------------------------ helpers */

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Files in test_tmp_root whose name says they are ckpt_write's temporaries. */
static int count_temp_files(void)
{
    DIR *d = opendir(test_tmp_root);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *de; (de = readdir(d));) n += strstr(de->d_name, ".tmp.") != NULL;
    closedir(d);
    return n;
}

static void remove_temp_files(void)
{
    DIR *d = opendir(test_tmp_root);
    assert_non_null(d);
    for (struct dirent *de; (de = readdir(d));)
        if (strstr(de->d_name, ".tmp.")) {
            char p[TEST_PATH_LEN];
            test_path_printf(p, "%s/%s", test_tmp_root, de->d_name);
            assert_int_equal(unlink(p), 0);
        }
    closedir(d);
}

static void assert_contains(const char *msg, const char *needle)
{
    if (!strstr(msg, needle)) fail_msg("expected \"%s\" in the message: %s", needle, msg);
}

static void assert_empty(const Checkpoint *c)
{
    assert_int_equal(c->ntensors, 0);
    assert_null(c->tensors);
    assert_int_equal(c->nmeta, 0);
    assert_null(c->meta);
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static float float_from_bits(uint32_t bits)
{
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static bool left_anything_behind(const char *path)
{
    return file_exists(path) || count_temp_files() != 0;
}

/* --------------------------------------------------------- sample content */

/* Bit patterns a float round trip must keep: NaNs with payloads (quiet and
 * signalling, both signs), -0.0, denormals, infinities, extremes. */
static const uint32_t special_bits[] = {
    0x7fc00001, 0xffc12345, 0x7f800001, 0xff9abcde, 0x80000000, 0x00000000, 0x00000001, 0x807fffff,
    0x7f800000, 0xff800000, 0x7f7fffff, 0x00800000, 0x3f800000, 0xbeaaaaab, 0x7fffffff,
};
enum { N_SPECIAL = sizeof special_bits / sizeof special_bits[0] };

static float special[N_SPECIAL];
static float scalar_value;
static float random_block[64 * 33];

static const CkptMeta sample_meta[] = {
    {"format", "genlab-vae"},
    {"format_version", "1"},
    {"quoted", "say \"hi\" \\ back\\slash \\u0041 {}[]:,"},
    {"unicode", "\xc3\xa9t\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x99\x82 \xe2\x80\xa8"},
    {"control", "tab\there\nnewline\x01"},
    {"empty", ""},
};
enum { N_SAMPLE_META = sizeof sample_meta / sizeof sample_meta[0] };

static CkptTensorView sample_views[4];
enum { N_SAMPLE_VIEWS = 4 };

static void make_sample(void)
{
    for (int i = 0; i < N_SPECIAL; i++) special[i] = float_from_bits(special_bits[i]);
    scalar_value = float_from_bits(0xc0490fdb); /* -pi */
    uint64_t s = 42;
    for (size_t i = 0; i < sizeof random_block / sizeof random_block[0]; i++)
        random_block[i] = float_from_bits((uint32_t)splitmix(&s)); /* any bits, NaNs included */
    sample_views[0] = (CkptTensorView){.name = "enc.special", .ndim = 2, .shape = {3, 5}, .data = special};
    sample_views[1] = (CkptTensorView){.name = "scalar", .ndim = 0, .data = &scalar_value};
    sample_views[2] = (CkptTensorView){.name = "optim.m.empty", .ndim = 3, .shape = {2, 0, 7}, .data = NULL};
    sample_views[3] = (CkptTensorView){.name = "dec.fc.weight", .ndim = 2, .shape = {64, 33}, .data = random_block};
}

static void write_sample(const char *path)
{
    Err e = {{0}};
    if (ckpt_write(path, sample_views, N_SAMPLE_VIEWS, sample_meta, N_SAMPLE_META, &e)) fail_msg("%s", e.msg);
}

static void assert_matches_sample(const Checkpoint *c)
{
    assert_int_equal(c->ntensors, N_SAMPLE_VIEWS);
    for (int i = 0; i < N_SAMPLE_VIEWS; i++) {
        const CkptTensor *t = &c->tensors[i];
        const CkptTensorView *v = &sample_views[i];
        assert_string_equal(t->name, v->name); /* written order = offset order */
        assert_int_equal(t->dtype, DT_F32);
        assert_int_equal(t->ndim, v->ndim);
        size_t numel = 1;
        for (int d = 0; d < v->ndim; d++) {
            assert_int_equal(t->shape[d], v->shape[d]);
            numel *= (size_t)v->shape[d];
        }
        assert_int_equal(t->nbytes, numel * sizeof(float));
        if (numel) assert_memory_equal(t->data, v->data, t->nbytes); /* bit-exact */
    }
    assert_int_equal(c->nmeta, N_SAMPLE_META);
    for (int i = 0; i < N_SAMPLE_META; i++) {
        assert_string_equal(c->meta[i].key, sample_meta[i].key);
        assert_string_equal(c->meta[i].value, sample_meta[i].value);
        assert_string_equal(ckpt_meta_get(c, sample_meta[i].key), sample_meta[i].value);
    }
    assert_null(ckpt_meta_get(c, "absent"));
}

static bool same_checkpoint(const Checkpoint *a, const Checkpoint *b)
{
    if (a->ntensors != b->ntensors || a->nmeta != b->nmeta) return false;
    for (int i = 0; i < a->ntensors; i++) {
        const CkptTensor *x = &a->tensors[i], *y = &b->tensors[i];
        if (strcmp(x->name, y->name) || x->dtype != y->dtype || x->ndim != y->ndim || x->nbytes != y->nbytes ||
            memcmp(x->shape, y->shape, sizeof x->shape) || memcmp(x->data, y->data, x->nbytes))
            return false;
    }
    for (int i = 0; i < a->nmeta; i++)
        if (strcmp(a->meta[i].key, b->meta[i].key) || strcmp(a->meta[i].value, b->meta[i].value)) return false;
    return true;
}

static uint8_t *decompress_file(const char *path, size_t *len)
{
    size_t clen;
    uint8_t *c = test_read_file(path, &clen);
    unsigned long long size = ZSTD_getFrameContentSize(c, clen);
    assert_true(size != ZSTD_CONTENTSIZE_ERROR && size != ZSTD_CONTENTSIZE_UNKNOWN);
    uint8_t *raw = malloc(size + 1);
    assert_non_null(raw);
    size_t got = ZSTD_decompress(raw, size, c, clen);
    assert_false(ZSTD_isError(got));
    assert_int_equal(got, size);
    free(c);
    *len = got;
    return raw;
}

static int read_expect_failure(const char *path, const char *needle)
{
    Checkpoint c;
    Err e = {{0}};
    int rc = ckpt_read(path, &c, &e);
    if (rc == 0) fail_msg("%s was accepted, expected an error with \"%s\"", path, needle);
    assert_empty(&c);
    assert_int_equal(strncmp(e.msg, path, strlen(path)), 0); /* names the file */
    assert_contains(e.msg, needle);
    return rc;
}

/* A safetensors buffer: header length, the JSON as given, then data_len
 * bytes of a recognisable pattern (byte i holds i mod 251). */
static uint8_t *raw_safetensors(const char *json, size_t data_len, size_t *len)
{
    uint64_t n = strlen(json);
    *len = 8 + n + data_len;
    uint8_t *buf = malloc(*len + 1);
    assert_non_null(buf);
    memcpy(buf, &n, 8);
    memcpy(buf + 8, json, n);
    for (size_t i = 0; i < data_len; i++) buf[8 + n + i] = (uint8_t)(i % 251);
    return buf;
}

/* ------------------------------------------------------------- round trips */

static void test_roundtrip_bit_exact(void **state)
{
    (void)state;
    char path[TEST_PATH_LEN];
    test_path_printf(path, "%s/%s", test_tmp_root, "roundtrip.safetensors.zst");
    write_sample(path);
    Checkpoint c;
    Err e = {{0}};
    if (ckpt_read(path, &c, &e)) fail_msg("%s", e.msg);
    assert_matches_sample(&c);
    assert_ptr_equal(ckpt_find(&c, "scalar"), &c.tensors[1]);
    assert_null(ckpt_find(&c, "enc"));
    ckpt_free(&c);
    assert_empty(&c);
    ckpt_free(&c); /* harmless twice */

    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    assert_int_equal(count_temp_files(), 0);
    assert_int_equal(unlink(path), 0);
}

static void test_overwrite_replaces_file(void **state)
{
    (void)state;
    char path[TEST_PATH_LEN];
    test_path_printf(path, "%s/%s", test_tmp_root, "overwrite.safetensors.zst");
    write_sample(path);
    const float one = 1.0f;
    const CkptTensorView v = {.name = "only", .ndim = 1, .shape = {1}, .data = &one};
    Err e = {{0}};
    assert_int_equal(ckpt_write(path, &v, 1, NULL, 0, &e), 0);
    Checkpoint c;
    assert_int_equal(ckpt_read(path, &c, &e), 0);
    assert_int_equal(c.ntensors, 1);
    assert_int_equal(c.nmeta, 0);
    float got = 0;
    const int64_t shape[1] = {1};
    assert_int_equal(ckpt_load_f32(&c, "only", 1, shape, &got, &e), 0);
    assert_true(got == 1.0f);
    ckpt_free(&c);
    assert_int_equal(count_temp_files(), 0);
    assert_int_equal(unlink(path), 0);
}

/* The JSON is padded with spaces to a multiple of 8, metadata comes first,
 * tensors follow in the order given with contiguous offsets. Metadata of
 * every length mod 8 exercises every amount of padding. */
static void test_header_layout(void **state)
{
    (void)state;
    char path[TEST_PATH_LEN];
    test_path_printf(path, "%s/%s", test_tmp_root, "layout.safetensors.zst");
    const float x[3] = {1, 2, 3};
    const CkptTensorView views[] = {
        {.name = "b.second_in_name_order", .ndim = 1, .shape = {3}, .data = x},
        {.name = "a.first_in_name_order", .ndim = 2, .shape = {1, 2}, .data = x},
    };
    int paddings_seen = 0;
    for (int extra = 0; extra < 8; extra++) {
        char value[16] = "";
        memset(value, 'v', (size_t)extra);
        const CkptMeta meta[] = {{"format", "genlab-vae"}, {"pad", value}};
        Err e = {{0}};
        assert_int_equal(ckpt_write(path, views, 2, meta, 2, &e), 0);
        size_t len;
        uint8_t *raw = decompress_file(path, &len);
        uint64_t n;
        memcpy(&n, raw, 8);
        assert_int_equal(n % 8, 0);
        const char *json = (const char *)raw + 8;
        size_t text = n;
        while (text > 0 && json[text - 1] == ' ') text--;
        assert_int_equal(json[text - 1], '}');
        assert_true(n - text < 8);
        paddings_seen |= 1 << (n - text);
        const char prefix[] = "{\"__metadata__\":{\"format\":\"genlab-vae\"";
        assert_memory_equal(json, prefix, sizeof prefix - 1);

        json_error_t jerr;
        json_t *root = json_loadb(json, text, 0, &jerr);
        assert_non_null(root);
        const char *expect_keys[] = {"__metadata__", views[0].name, views[1].name};
        const char *key;
        json_t *value_json;
        int k = 0;
        json_object_foreach(root, key, value_json) assert_string_equal(key, expect_keys[k++]);
        assert_int_equal(k, 3);
        json_t *off0 = json_object_get(json_object_get(root, views[0].name), "data_offsets");
        json_t *off1 = json_object_get(json_object_get(root, views[1].name), "data_offsets");
        assert_int_equal(json_integer_value(json_array_get(off0, 0)), 0);
        assert_int_equal(json_integer_value(json_array_get(off0, 1)), 12);
        assert_int_equal(json_integer_value(json_array_get(off1, 0)), 12);
        assert_int_equal(json_integer_value(json_array_get(off1, 1)), 20);
        json_decref(root);
        assert_int_equal(len, 8 + n + 20);
        assert_memory_equal(raw + 8 + n, x, 12);

        Checkpoint c;
        assert_int_equal(ckpt_parse_safetensors(raw, len, &c, &e), 0);
        assert_string_equal(c.tensors[0].name, views[0].name);
        assert_string_equal(ckpt_meta_get(&c, "pad"), value);
        ckpt_free(&c);
        free(raw);
    }
    assert_int_equal(paddings_seen, 0xff); /* each padding 0..7 happened */
    assert_int_equal(unlink(path), 0);
}

static bool have_zstd_cli(void)
{
    return system("command -v zstd >/dev/null 2>&1") == 0;
}

static void test_zstd_cli_decompresses(void **state)
{
    (void)state;
    if (!have_zstd_cli()) {
        skip();
        return;
    }
    char path[TEST_PATH_LEN], out[TEST_PATH_LEN], cmd[3 * TEST_PATH_LEN + 64];
    test_path_printf(path, "%s/%s", test_tmp_root, "cli.safetensors.zst");
    test_path_printf(out, "%s/%s", test_tmp_root, "cli.safetensors");
    write_sample(path);
    snprintf(cmd, sizeof cmd, "zstd -q -t '%s' && zstd -q -d -c '%s' > '%s'", path, path, out);
    assert_int_equal(system(cmd), 0);
    size_t cli_len, lib_len;
    uint8_t *cli = test_read_file(out, &cli_len);
    uint8_t *lib = decompress_file(path, &lib_len);
    assert_int_equal(cli_len, lib_len);
    assert_memory_equal(cli, lib, lib_len);
    Checkpoint c;
    Err e = {{0}};
    if (ckpt_parse_safetensors(cli, cli_len, &c, &e)) fail_msg("%s", e.msg);
    assert_matches_sample(&c);
    ckpt_free(&c);
    free(cli);
    free(lib);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(unlink(out), 0);
}

/* Compresses buf into path as one frame, as other tools might. */
static void write_frame(const char *path, const uint8_t *buf, size_t len, int checksum, bool pledge_size)
{
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    assert_non_null(cctx);
    assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, checksum)));
    size_t cap = ZSTD_compressBound(len);
    uint8_t *out = malloc(cap);
    assert_non_null(out);
    ZSTD_outBuffer o = {out, cap, 0};
    ZSTD_inBuffer in = {buf, len, 0};
    if (pledge_size) assert_false(ZSTD_isError(ZSTD_CCtx_setPledgedSrcSize(cctx, len)));
    /* Streaming without a pledged size leaves the content size unknown. */
    assert_int_equal(ZSTD_compressStream2(cctx, &o, &in, ZSTD_e_end), 0);
    test_write_file(path, out, o.pos);
    free(out);
    ZSTD_freeCCtx(cctx);
}

static void test_frames_from_other_writers(void **state)
{
    (void)state;
    char path[TEST_PATH_LEN], other[TEST_PATH_LEN];
    test_path_printf(path, "%s/%s", test_tmp_root, "sample.safetensors.zst");
    test_path_printf(other, "%s/%s", test_tmp_root, "other.safetensors.zst");
    write_sample(path);
    size_t len;
    uint8_t *raw = decompress_file(path, &len);

    write_frame(other, raw, len, 1, false);
    Checkpoint c;
    Err e = {{0}};
    if (ckpt_read(other, &c, &e)) fail_msg("unknown content size should be fine: %s", e.msg);
    assert_matches_sample(&c);
    ckpt_free(&c);

    write_frame(other, raw, len, 0, true);
    read_expect_failure(other, "no content checksum");

    free(raw);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(unlink(other), 0);
}

/* -------------------------------------------------------------- corruption */

static void test_flipped_bytes_detected(void **state)
{
    (void)state;
    char path[TEST_PATH_LEN], bad[TEST_PATH_LEN];
    test_path_printf(path, "%s/%s", test_tmp_root, "flip.safetensors.zst");
    test_path_printf(bad, "%s/%s", test_tmp_root, "flip_bad.safetensors.zst");
    const float w[6] = {0.5f, -1, 2, 3.25f, -4, 5};
    const CkptTensorView v = {.name = "enc.fc_mu.weight", .ndim = 2, .shape = {2, 3}, .data = w};
    const CkptMeta meta[] = {{"format", "genlab-vae"}, {"arch", "dense"}};
    Err e = {{0}};
    assert_int_equal(ckpt_write(path, &v, 1, meta, 2, &e), 0);
    Checkpoint good;
    assert_int_equal(ckpt_read(path, &good, &e), 0);
    size_t len;
    uint8_t *file = test_read_file(path, &len);

    int checksum_hits = 0;
    for (size_t i = 0; i < len; i++) {
        file[i] ^= 0xff;
        test_write_file(bad, file, len);
        file[i] ^= 0xff;
        Checkpoint c;
        if (ckpt_read(bad, &c, &e) == 0) fail_msg("inverted byte %zu of %zu went unnoticed", i, len);
        assert_empty(&c);
        assert_int_equal(strncmp(e.msg, bad, strlen(bad)), 0);
        checksum_hits += strstr(e.msg, "checksum mismatch") != NULL;
    }
    assert_true(checksum_hits > 0);

    /* zstd leaves a few bits uninterpreted (reserved flags, unused table
     * bits); the content checksum guarantees that flipping them changes
     * nothing that is read. So: rejected, or exactly the original. */
    int rejected = 0;
    for (size_t i = 0; i < len; i++)
        for (int bit = 0; bit < 8; bit++) {
            file[i] ^= (uint8_t)(1u << bit);
            test_write_file(bad, file, len);
            file[i] ^= (uint8_t)(1u << bit);
            Checkpoint c;
            if (ckpt_read(bad, &c, &e) == 0) {
                if (!same_checkpoint(&c, &good)) fail_msg("bit %d of byte %zu changed the content silently", bit, i);
                ckpt_free(&c);
            } else {
                rejected++;
            }
        }
    assert_true(rejected > (int)(len * 8) * 95 / 100);

    ckpt_free(&good);
    free(file);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(unlink(bad), 0);
}

static void test_truncation_detected(void **state)
{
    (void)state;
    char path[TEST_PATH_LEN], bad[TEST_PATH_LEN];
    test_path_printf(path, "%s/%s", test_tmp_root, "whole.safetensors.zst");
    test_path_printf(bad, "%s/%s", test_tmp_root, "cut.safetensors.zst");
    write_sample(path);
    size_t len;
    uint8_t *file = test_read_file(path, &len);
    for (size_t cut = 0; cut < len; cut++) {
        test_write_file(bad, file, cut);
        read_expect_failure(bad, cut == 0 ? "empty file" : cut < 4 ? "not a zstd frame" : "truncated zstd frame");
    }
    free(file);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(unlink(bad), 0);
}

static void test_trailing_data_rejected(void **state)
{
    (void)state;
    char path[TEST_PATH_LEN], bad[TEST_PATH_LEN];
    test_path_printf(path, "%s/%s", test_tmp_root, "trail.safetensors.zst");
    test_path_printf(bad, "%s/%s", test_tmp_root, "trail_bad.safetensors.zst");
    write_sample(path);
    size_t len;
    uint8_t *file = test_read_file(path, &len);
    uint8_t *longer = malloc(2 * len);
    assert_non_null(longer);
    memcpy(longer, file, len);

    longer[len] = 0;
    test_write_file(bad, longer, len + 1);
    read_expect_failure(bad, "1 bytes of garbage after the zstd frame");

    memcpy(longer + len, "garbage", 7);
    test_write_file(bad, longer, len + 7);
    read_expect_failure(bad, "7 bytes of garbage");

    memcpy(longer + len, file, len); /* two valid frames: `cat a b` */
    test_write_file(bad, longer, 2 * len);
    read_expect_failure(bad, "more than one zstd frame");

    free(longer);
    free(file);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(unlink(bad), 0);
}

static void test_not_a_checkpoint(void **state)
{
    (void)state;
    char bad[TEST_PATH_LEN];
    test_path_printf(bad, "%s/%s", test_tmp_root, "not_zstd.safetensors.zst");
    test_write_file(bad, "", 0);
    read_expect_failure(bad, "empty file (is this a genlab checkpoint?)");
    test_write_file(bad, "hello, world\n", 13);
    read_expect_failure(bad, "not a zstd frame (is this a genlab checkpoint?)");
    size_t len;
    uint8_t *raw = raw_safetensors("{}      ", 0, &len); /* valid, but not compressed */
    test_write_file(bad, raw, len);
    read_expect_failure(bad, "not a zstd frame");
    free(raw);
    assert_int_equal(unlink(bad), 0);

    read_expect_failure(bad, "cannot open: No such file or directory");
    read_expect_failure(test_tmp_root, "not a regular file");
}

/* ------------------------------------------------ hostile safetensors input */

#define F32_1 "{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":"

typedef struct {
    const char *json;
    size_t data_len;
    const char *expect;
} BadCase;

static const BadCase bad_cases[] = {
    {"{\"a\":" F32_1 "[0,4]}", 4, "not valid JSON"},
    {"{\"a\":" F32_1 "[0,4]},\"a\":" F32_1 "[4,8]}}", 8, "duplicate object key"},
    {"{\"__metadata__\":{\"k\":\"v\",\"k\":\"w\"}}", 0, "duplicate object key"},
    {"{\"a\":" F32_1 "[0,4]}} x", 4, "not valid JSON"},
    {"{\"a\xff\":" F32_1 "[0,4]}}", 4, "not valid JSON"},
    {"{\"a\\u0000b\":" F32_1 "[0,4]}}", 4, "not valid JSON"},
    {" {}", 0, "does not start with '{'"},
    {"[]", 0, "does not start with '{'"},
    /* layout */
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],"
     "\"data_offsets\":[4,12]}}",
     12, "tensor b: data_offsets [4,12] overlap tensor a"},
    {"{\"a\":" F32_1 "[0,4]},\"b\":" F32_1 "[0,4]}}", 4, "overlap tensor a"},
    {"{\"a\":" F32_1 "[0,4]},\"b\":" F32_1 "[8,12]}}", 12, "gap in the tensor data: bytes [4,8) before tensor b"},
    {"{\"a\":" F32_1 "[4,8]}}", 8, "gap in the tensor data: bytes [0,4)"},
    {"{\"a\":" F32_1 "[0,4]}}", 8, "tensors cover 4 bytes but the data is 8 bytes long"},
    {"{}", 1, "tensors cover 0 bytes but the data is 1 bytes long"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, "run past the end of the data (4 bytes)"},
    {"{\"a\":" F32_1 "[0,8]}}", 8, "tensor a: data_offsets [0,8] hold 8 bytes but F32 [1] needs 4"},
    {"{\"dec.fc.weight\":{\"dtype\":\"F32\",\"shape\":[3136,2],\"data_offsets\":[0,100]}}", 100,
     "tensor dec.fc.weight: data_offsets [0,100] hold 100 bytes but F32 [3136,2] needs 25088"},
    {"{\"a\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "F64 [1] needs 8"},
    {"{\"a\":{\"dtype\":\"U8\",\"shape\":[],\"data_offsets\":[0,0]}}", 0, "hold 0 bytes but U8 [] needs 1"},
    /* overflow: the first product wraps to exactly 0 bytes, matching [0,0] */
    {"{\"a\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,0]}}", 0,
     "element count overflows"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,2],\"data_offsets\":[0,0]}}", 0,
     "shape [4294967296,4294967296,2] is too large"},
    {"{\"a\":{\"dtype\":\"BOOL\",\"shape\":[9223372036854775807,3],\"data_offsets\":[0,0]}}", 0, "overflows"},
    {"{\"a\":" F32_1 "[0,9223372036854775808]}}", 4, "not valid JSON: too big integer"},
    {"{\"a\":" F32_1 "[0,18446744073709551620]}}", 4, "too big integer"},
    {"{\"a\":" F32_1 "[9223372036854775807,9223372036854775807]}}", 4, "run past the end"},
    /* numbers that are not non-negative integers */
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,0]}}", 0,
     "shape entry 0 is not a non-negative integer"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}}", 4, "shape entry 0"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1e0],\"data_offsets\":[0,4]}}", 4, "shape entry 0"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[\"1\"],\"data_offsets\":[0,4]}}", 4, "shape entry 0"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,2,true],\"data_offsets\":[0,8]}}", 8, "shape entry 2"},
    {"{\"a\":" F32_1 "[0.0,4.0]}}", 4, "data_offsets must be [begin,end]"},
    {"{\"a\":" F32_1 "[-4,0]}}", 4, "data_offsets must be"},
    {"{\"a\":" F32_1 "[4,0]}}", 4, "begin <= end"},
    {"{\"a\":" F32_1 "[0]}}", 4, "data_offsets must be"},
    {"{\"a\":" F32_1 "[0,4,8]}}", 4, "data_offsets must be"},
    {"{\"a\":" F32_1 "{\"begin\":0}}}", 4, "data_offsets must be"},
    /* entry structure */
    {"{\"a\":{\"dtype\":\"F8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "tensor a: unknown dtype \"F8\""},
    {"{\"a\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "unknown dtype"},
    {"{\"a\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "unknown dtype (not a string)"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":3,\"data_offsets\":[0,12]}}", 12, "shape must be an array"},
    {"{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 1, "at most 8"},
    {"{\"a\":[1]}", 0, "tensor a: entry must be an object"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 0, "exactly the keys dtype, shape and data_offsets"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4, "exactly the keys"},
    {"{\"\":" F32_1 "[0,4]}}", 4, "empty or has control characters"},
    {"{\"a\\nb\":" F32_1 "[0,4]}}", 4, "tensor name \"a?b\" is empty or has control characters"},
    {"{\"a\":{\"dtype\":\"F\\n32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "unknown dtype \"F?32\""},
    {"{\"a\n\":" F32_1 "[0,4]}}", 4, "not valid JSON"},
    /* metadata */
    {"{\"__metadata__\":{\"k\":1}}", 0, "__metadata__ value for k is not a string"},
    {"{\"__metadata__\":{\"k\":{\"nested\":\"v\"}}}", 0, "not a string"},
    {"{\"__metadata__\":{\"k\":null}}", 0, "not a string"},
    {"{\"__metadata__\":[\"k\",\"v\"]}", 0, "__metadata__ must be an object"},
    {"{\"__metadata__\":\"v\"}", 0, "__metadata__ must be an object"},
    {"{\"__metadata__\":{\"\\t\":\"v\"}}", 0, "__metadata__ key"},
};

static void test_bad_safetensors_rejected(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const BadCase *bc = &bad_cases[i];
        size_t len;
        uint8_t *buf = raw_safetensors(bc->json, bc->data_len, &len);
        Checkpoint c;
        Err e = {{0}};
        if (ckpt_parse_safetensors(buf, len, &c, &e) == 0) fail_msg("case %zu accepted: %s", i, bc->json);
        assert_empty(&c);
        if (!strstr(e.msg, bc->expect)) fail_msg("case %zu (%s): expected \"%s\" in: %s", i, bc->json, bc->expect, e.msg);
        assert_null(strchr(e.msg, '\n'));
        free(buf);
    }
}

/* jansson bounds its nesting depth, so this is an error, not a stack
 * overflow. */
static void test_deep_nesting_rejected(void **state)
{
    (void)state;
    enum { DEPTH = 200000 };
    char *json = malloc(DEPTH + 16);
    assert_non_null(json);
    strcpy(json, "{\"a\":");
    memset(json + 5, '[', DEPTH);
    strcpy(json + 5 + DEPTH, "}");
    size_t len;
    uint8_t *buf = raw_safetensors(json, 0, &len);
    Checkpoint c;
    Err e = {{0}};
    assert_int_equal(ckpt_parse_safetensors(buf, len, &c, &e), -1);
    assert_contains(e.msg, "not valid JSON");
    free(buf);
    free(json);
}

static void expect_header_length_failure(uint64_t header_len, size_t total, const char *expect)
{
    uint8_t buf[64] = {0};
    assert_true(total <= sizeof buf);
    memcpy(buf, &header_len, total < 8 ? total : 8);
    if (total > 8) buf[8] = '{';
    Checkpoint c;
    Err e = {{0}};
    assert_int_equal(ckpt_parse_safetensors(buf, total, &c, &e), -1);
    assert_empty(&c);
    assert_contains(e.msg, expect);
}

static void test_bad_header_length_rejected(void **state)
{
    (void)state;
    expect_header_length_failure(0, 0, "too short for a safetensors file (0 bytes");
    expect_header_length_failure(2, 7, "too short");
    expect_header_length_failure(0, 8, "header length is 0");
    expect_header_length_failure(0, 20, "header length is 0");
    expect_header_length_failure(UINT64_MAX, 20, "header length 18446744073709551615 is over the limit");
    expect_header_length_failure((uint64_t)CKPT_MAX_HEADER + 1, 20, "is over the limit");
    expect_header_length_failure(13, 20, "header length 13 runs past the end of the data (12 bytes");
    expect_header_length_failure(1, 8, "runs past the end");
}

static void test_good_safetensors_accepted(void **state)
{
    (void)state;
    /* Listed out of offset order, mixed dtypes, zero-size tensors that tie
     * on offset (kept in header order), metadata in the middle, padding. */
    const char *json = "{\"c\":{\"dtype\":\"I64\",\"shape\":[1,2],\"data_offsets\":[8,24]},"
                       "\"z2\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[8,8]},"
                       "\"__metadata__\":{\"format\":\"x\",\"with \\\"quote\\\"\":\"\\u00e9\"},"
                       "\"z1\":{\"dtype\":\"BF16\",\"shape\":[3,0],\"data_offsets\":[8,8]},"
                       "\"a\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,8]},"
                       "\"s\":{\"dtype\":\"BOOL\",\"shape\":[],\"data_offsets\":[24,25]}}   ";
    size_t len;
    uint8_t *buf = raw_safetensors(json, 25, &len);
    Checkpoint c;
    Err e = {{0}};
    if (ckpt_parse_safetensors(buf, len, &c, &e)) fail_msg("%s", e.msg);
    free(buf); /* everything was copied out */
    const char *order[] = {"a", "z2", "z1", "c", "s"};
    const DType dtypes[] = {DT_F16, DT_U8, DT_BF16, DT_I64, DT_BOOL};
    const size_t begins[] = {0, 8, 8, 8, 24}, sizes[] = {8, 0, 0, 16, 1};
    assert_int_equal(c.ntensors, 5);
    for (int i = 0; i < 5; i++) {
        const CkptTensor *t = &c.tensors[i];
        assert_string_equal(t->name, order[i]);
        assert_int_equal(t->dtype, dtypes[i]);
        assert_int_equal(t->nbytes, sizes[i]);
        assert_non_null(t->data);
        for (size_t b = 0; b < t->nbytes; b++) assert_int_equal(((uint8_t *)t->data)[b], (begins[i] + b) % 251);
    }
    assert_int_equal(c.tensors[0].ndim, 2);
    assert_int_equal(c.tensors[0].shape[1], 2);
    assert_int_equal(c.tensors[4].ndim, 0);
    assert_int_equal(c.nmeta, 2);
    assert_string_equal(ckpt_meta_get(&c, "with \"quote\""), "\xc3\xa9");
    ckpt_free(&c);

    buf = raw_safetensors("{}", 0, &len);
    assert_int_equal(ckpt_parse_safetensors(buf, len, &c, &e), 0);
    assert_int_equal(c.ntensors, 0);
    assert_int_equal(c.nmeta, 0);
    ckpt_free(&c);
    free(buf);
}

static void test_load_f32(void **state)
{
    (void)state;
    const char *json = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
                       "\"h\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[24,28]}}";
    size_t len;
    uint8_t *buf = raw_safetensors(json, 28, &len);
    Checkpoint c;
    Err e = {{0}};
    assert_int_equal(ckpt_parse_safetensors(buf, len, &c, &e), 0);
    float dst[6] = {0};
    const int64_t good[2] = {2, 3}, swapped[2] = {3, 2}, flat[1] = {6};
    assert_int_equal(ckpt_load_f32(&c, "w", 2, good, dst, &e), 0);
    assert_memory_equal(dst, buf + 8 + strlen(json), 24);

    assert_int_equal(ckpt_load_f32(&c, "w", 2, swapped, dst, &e), -1);
    assert_string_equal(e.msg, "tensor w has shape [2,3], expected [3,2]");
    assert_int_equal(ckpt_load_f32(&c, "w", 1, flat, dst, &e), -1);
    assert_string_equal(e.msg, "tensor w has shape [2,3], expected [6]");
    assert_int_equal(ckpt_load_f32(&c, "h", 1, good, dst, &e), -1);
    assert_string_equal(e.msg, "tensor h has dtype F16, expected F32");
    assert_int_equal(ckpt_load_f32(&c, "enc.fc_mu.weight", 2, good, dst, &e), -1);
    assert_string_equal(e.msg, "no tensor enc.fc_mu.weight in the checkpoint (is it for another model?)");
    assert_int_equal(ckpt_load_f32(&c, "w", 2, good, dst, NULL), 0); /* NULL Err is fine */
    ckpt_free(&c);
    free(buf);
}

/* ------------------------------------------------------------ bad writes */

static void expect_write_rejected(const CkptTensorView *views, int n, const CkptMeta *meta, int nmeta,
                                  const char *expect)
{
    char path[TEST_PATH_LEN];
    test_path_printf(path, "%s/%s", test_tmp_root, "rejected.safetensors.zst");
    Err e = {{0}};
    assert_int_equal(ckpt_write(path, views, n, meta, nmeta, &e), -1);
    assert_int_equal(strncmp(e.msg, path, strlen(path)), 0);
    assert_contains(e.msg, expect);
    assert_null(strchr(e.msg, '\n'));
    assert_false(left_anything_behind(path));
}

static void test_write_rejects_bad_input(void **state)
{
    (void)state;
    const float x[4] = {0};
    const CkptMeta ok_meta[] = {{"format", "genlab-vae"}};
    const char *bad_names[] = {"", NULL, "a\"b", "a\\b", "a\nb", "caf\xc3\xa9", "__metadata__"};
    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
        const CkptTensorView v = {.name = bad_names[i], .ndim = 1, .shape = {1}, .data = x};
        expect_write_rejected(&v, 1, ok_meta, 1, "is not allowed");
    }
    const CkptTensorView dup[] = {
        {.name = "w", .ndim = 1, .shape = {1}, .data = x},
        {.name = "w", .ndim = 1, .shape = {2}, .data = x},
    };
    expect_write_rejected(dup, 2, NULL, 0, "tensor w appears twice");
    const CkptTensorView too_many_dims = {.name = "w", .ndim = 9, .data = x};
    expect_write_rejected(&too_many_dims, 1, NULL, 0, "ndim 9 is outside 0..8");
    const CkptTensorView negative_ndim = {.name = "w", .ndim = -1, .data = x};
    expect_write_rejected(&negative_ndim, 1, NULL, 0, "ndim -1");
    const CkptTensorView negative_dim = {.name = "w", .ndim = 2, .shape = {2, -2}, .data = x};
    expect_write_rejected(&negative_dim, 1, NULL, 0, "tensor w: dimension 1 is negative");
    const CkptTensorView no_data = {.name = "w", .ndim = 1, .shape = {4}, .data = NULL};
    expect_write_rejected(&no_data, 1, NULL, 0, "data is NULL");
    const CkptTensorView overflow = {.name = "w", .ndim = 2, .shape = {INT64_C(1) << 62, 8}, .data = x};
    expect_write_rejected(&overflow, 1, NULL, 0, "overflows");
    const CkptTensorView huge = {.name = "w", .ndim = 1, .shape = {INT64_C(1) << 30}, .data = x};
    expect_write_rejected(&huge, 1, NULL, 0, "exceed");

    const CkptTensorView ok = {.name = "w", .ndim = 1, .shape = {1}, .data = x};
    const CkptMeta dup_meta[] = {{"k", "a"}, {"k", "b"}};
    expect_write_rejected(&ok, 1, dup_meta, 2, "metadata key k appears twice");
    const CkptMeta bad_key[] = {{"a\\b", "v"}};
    expect_write_rejected(&ok, 1, bad_key, 1, "metadata key \"a\\b\" is not allowed");
    const CkptMeta empty_key[] = {{"", "v"}};
    expect_write_rejected(&ok, 1, empty_key, 1, "is not allowed");
    const CkptMeta bad_utf8[] = {{"k", "\xff\xfe"}};
    expect_write_rejected(&ok, 1, bad_utf8, 1, "metadata k: value is missing or not valid UTF-8");
    const CkptMeta null_value[] = {{"k", NULL}};
    expect_write_rejected(&ok, 1, null_value, 1, "value is missing");
    expect_write_rejected(&ok, -1, NULL, 0, "negative");
}

/* Runs ckpt_write of `views` in a child whose file size limit is far below
 * what the write needs. With SIGXFSZ ignored the write fails with EFBIG;
 * with its default action the child dies mid-write, like a crash.
 * Returns the wait status. */
static int write_in_limited_child(const char *path, const CkptTensorView *views, int n, bool die)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct rlimit no_core = {0, 0}, small = {1 << 16, 1 << 16};
        setrlimit(RLIMIT_CORE, &no_core);
        signal(SIGXFSZ, die ? SIG_DFL : SIG_IGN);
        if (setrlimit(RLIMIT_FSIZE, &small)) _exit(10);
        Err e = {{0}};
        int rc = ckpt_write(path, views, n, NULL, 0, &e);
        _exit(rc == 0 ? 0 : strstr(e.msg, "write failed: File too large") && strstr(e.msg, path) ? 3 : 4);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return status;
}

static void assert_still_sample(const char *path)
{
    Checkpoint c;
    Err e = {{0}};
    if (ckpt_read(path, &c, &e)) fail_msg("old file damaged: %s", e.msg);
    assert_matches_sample(&c);
    ckpt_free(&c);
}

static void test_failed_write_keeps_old_file(void **state)
{
    (void)state;
    char path[TEST_PATH_LEN];
    test_path_printf(path, "%s/%s", test_tmp_root, "keep.safetensors.zst");
    write_sample(path);
    size_t old_len;
    uint8_t *old = test_read_file(path, &old_len);

    /* 4 MiB of random bits: incompressible, far past the 64 KiB limit. */
    enum { BIG = 1 << 20 };
    float *big = malloc(BIG * sizeof *big);
    assert_non_null(big);
    uint64_t s = 7;
    for (int i = 0; i < BIG; i++) big[i] = float_from_bits((uint32_t)splitmix(&s));
    const CkptTensorView view = {.name = "big", .ndim = 1, .shape = {BIG}, .data = big};

    int status = write_in_limited_child(path, &view, 1, false);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 3); /* failed cleanly, said why */
    assert_int_equal(count_temp_files(), 0);
    assert_still_sample(path);

    status = write_in_limited_child(path, &view, 1, true);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGXFSZ);
    /* A killed writer cannot clean up; the point is that its partial
     * output went to the temporary file, not over the checkpoint. */
    assert_int_equal(count_temp_files(), 1);
    assert_still_sample(path);
    remove_temp_files();

    size_t now_len;
    uint8_t *now = test_read_file(path, &now_len);
    assert_int_equal(now_len, old_len);
    assert_memory_equal(now, old, old_len);
    free(now);
    free(old);
    free(big);
    assert_int_equal(unlink(path), 0);
}

static void test_write_failures_are_clean(void **state)
{
    (void)state;
    const float x = 1;
    const CkptTensorView v = {.name = "w", .ndim = 1, .shape = {1}, .data = &x};
    char path[TEST_PATH_LEN];
    Err e = {{0}};

    test_path_printf(path, "%s/%s", test_tmp_root, "no/such/dir/x.safetensors.zst");
    assert_int_equal(ckpt_write(path, &v, 1, NULL, 0, &e), -1);
    assert_contains(e.msg, path);
    assert_contains(e.msg, "cannot create a temporary file next to it: No such file or directory");

    /* A directory in the way: everything succeeds up to the rename. */
    test_path_printf(path, "%s/%s", test_tmp_root, "a_directory");
    assert_int_equal(mkdir(path, 0755), 0);
    assert_int_equal(ckpt_write(path, &v, 1, NULL, 0, &e), -1);
    assert_contains(e.msg, "cannot rename");
    assert_int_equal(count_temp_files(), 0);
    assert_int_equal(rmdir(path), 0);

    /* A read-only directory (root ignores permissions, so not as root). */
    char dir[TEST_PATH_LEN], file[TEST_PATH_LEN];
    test_make_dir("readonly", dir);
    test_path_printf(file, "%s/keep.safetensors.zst", dir);
    write_sample(file);
    assert_int_equal(chmod(dir, 0555), 0);
    if (geteuid() != 0) {
        assert_int_equal(ckpt_write(file, &v, 1, NULL, 0, &e), -1);
        assert_contains(e.msg, "Permission denied");
        assert_still_sample(file);
    }
    assert_int_equal(chmod(dir, 0755), 0);
    assert_int_equal(unlink(file), 0);
    assert_int_equal(rmdir(dir), 0);
}

/* ---------------------------------------------------------------- fuzzing */

static void check_invariants(const Checkpoint *c)
{
    static const size_t dtype_size[] = {4, 2, 2, 8, 8, 4, 2, 1, 1, 1};
    for (int i = 0; i < c->ntensors; i++) {
        const CkptTensor *t = &c->tensors[i];
        assert_true(t->ndim >= 0 && t->ndim <= CKPT_MAX_DIMS);
        size_t n = dtype_size[t->dtype];
        for (int d = 0; d < t->ndim; d++) n *= (size_t)t->shape[d];
        assert_int_equal(t->nbytes, n);
        assert_true(t->name[0] != '\0');
    }
}

static void mutate(uint8_t *buf, size_t *len, size_t header_end, uint64_t *s)
{
    static const char json_chars[] = "{}[]\",:-0123456789.eE \\u";
    int edits = 1 + (int)(splitmix(s) % 4);
    for (int k = 0; k < edits && *len > 0; k++) {
        uint64_t r = splitmix(s);
        /* Mostly the header, where the parser lives. */
        size_t limit = r % 8 ? (header_end < *len ? header_end : *len) : *len;
        size_t at = (size_t)(splitmix(s) % limit);
        switch (r % 5) {
        case 0: buf[at] = (uint8_t)splitmix(s); break;
        case 1: buf[at] = (uint8_t)json_chars[splitmix(s) % (sizeof json_chars - 1)]; break;
        case 2: buf[at] ^= (uint8_t)(1u << (splitmix(s) % 8)); break;
        case 3: *len = at; break;
        default: buf[splitmix(s) % 8] = (uint8_t)splitmix(s); break; /* the length field */
        }
    }
}

static void test_random_mutations(void **state)
{
    (void)state;
    char path[TEST_PATH_LEN];
    test_path_printf(path, "%s/%s", test_tmp_root, "fuzz.safetensors.zst");
    const float w[6] = {1, 2, 3, 4, 5, 6};
    const CkptTensorView views[] = {
        {.name = "enc.w", .ndim = 2, .shape = {2, 3}, .data = w},
        {.name = "enc.b", .ndim = 1, .shape = {2}, .data = w},
        {.name = "s", .ndim = 0, .data = w},
    };
    const CkptMeta meta[] = {{"format", "genlab-vae"}, {"epoch", "12"}};
    Err e = {{0}};
    assert_int_equal(ckpt_write(path, views, 3, meta, 2, &e), 0);
    size_t base_len;
    uint8_t *base = decompress_file(path, &base_len);
    uint64_t header_len;
    memcpy(&header_len, base, 8);
    uint8_t *buf = malloc(base_len);
    assert_non_null(buf);

    uint64_t s = 12345;
    int accepted = 0;
    for (int iter = 0; iter < 6000; iter++) {
        size_t len = base_len;
        memcpy(buf, base, len);
        mutate(buf, &len, 8 + header_len, &s);
        /* A fresh allocation of exactly len bytes lets ASan catch any read
         * past the end. */
        uint8_t *exact = malloc(len ? len : 1);
        assert_non_null(exact);
        memcpy(exact, buf, len);
        Checkpoint c;
        if (ckpt_parse_safetensors(exact, len, &c, &e) == 0) {
            check_invariants(&c);
            accepted++;
            ckpt_free(&c);
        } else {
            assert_empty(&c);
            assert_true(e.msg[0] != '\0');
        }
        free(exact);
    }
    assert_true(accepted > 0 && accepted < 6000);

    /* The compressed file too: anything accepted is exactly the original. */
    Checkpoint good;
    assert_int_equal(ckpt_read(path, &good, &e), 0);
    size_t file_len;
    uint8_t *file = test_read_file(path, &file_len);
    char bad[TEST_PATH_LEN];
    test_path_printf(bad, "%s/%s", test_tmp_root, "fuzz_bad.safetensors.zst");
    for (int iter = 0; iter < 400; iter++) {
        size_t len = file_len;
        memcpy(buf, file, len);
        mutate(buf, &len, len, &s);
        test_write_file(bad, buf, len);
        Checkpoint c;
        if (ckpt_read(bad, &c, &e) == 0) {
            assert_true(same_checkpoint(&c, &good));
            ckpt_free(&c);
        }
    }
    ckpt_free(&good);
    free(file);
    free(buf);
    free(base);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(unlink(bad), 0);
}

/* ------------------------------------------------------------------- main */

static int setup_tmpdir(void **state)
{
    (void)state;
    make_sample();
    return test_tmp_setup("checkpoint");
}

static int remove_tmpdir(void **state)
{
    (void)state;
    return test_tmp_teardown();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_bit_exact),
        cmocka_unit_test(test_overwrite_replaces_file),
        cmocka_unit_test(test_header_layout),
        cmocka_unit_test(test_zstd_cli_decompresses),
        cmocka_unit_test(test_frames_from_other_writers),
        cmocka_unit_test(test_flipped_bytes_detected),
        cmocka_unit_test(test_truncation_detected),
        cmocka_unit_test(test_trailing_data_rejected),
        cmocka_unit_test(test_not_a_checkpoint),
        cmocka_unit_test(test_bad_safetensors_rejected),
        cmocka_unit_test(test_bad_header_length_rejected),
        cmocka_unit_test(test_deep_nesting_rejected),
        cmocka_unit_test(test_good_safetensors_accepted),
        cmocka_unit_test(test_load_f32),
        cmocka_unit_test(test_write_rejects_bad_input),
        cmocka_unit_test(test_failed_write_keeps_old_file),
        cmocka_unit_test(test_write_failures_are_clean),
        cmocka_unit_test(test_random_mutations),
    };
    return cmocka_run_group_tests(tests, setup_tmpdir, remove_tmpdir);
}
