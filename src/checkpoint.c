/* checkpoint.c — safetensors inside a zstd frame (see checkpoint.h).
 *
 * Reading: the whole compressed file is read, decompressed into a buffer
 * that grows up to CKPT_MAX_DECOMPRESSED (the frame's declared size is never
 * trusted), then parsed and validated before anything is copied out.
 * Writing: the JSON header and the tensors are streamed through the
 * compressor into a temporary file that is renamed over the target. */
#include "genlab/checkpoint.h"
#include "genlab/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>
#include <zstd_errors.h>

/* safetensors is little-endian and tensor bytes are copied as they are. */
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "genlab checkpoints need a little-endian host (tensor bytes are not swapped)"
#endif

#define ZSTD_LEVEL 3
#define HEADER_ALIGN 8
#define NAME_FMT "%.200s" /* keeps a hostile name from crowding out the message */

static const struct {
    const char *name;
    size_t size;
} dtype_info[] = {
    [DT_F32] = {"F32", 4}, [DT_F16] = {"F16", 2}, [DT_BF16] = {"BF16", 2}, [DT_F64] = {"F64", 8},
    [DT_I64] = {"I64", 8}, [DT_I32] = {"I32", 4}, [DT_I16] = {"I16", 2},   [DT_I8] = {"I8", 1},
    [DT_U8] = {"U8", 1},   [DT_BOOL] = {"BOOL", 1},
};

enum { N_DTYPES = sizeof dtype_info / sizeof dtype_info[0] };

/* "[a,b,c]" into buf (truncated if it does not fit). */
static const char *format_shape(char *buf, size_t size, int ndim, const int64_t *shape)
{
    size_t n = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < ndim && n < size; i++)
        n += (size_t)snprintf(buf + n, size - n, i ? ",%" PRId64 : "%" PRId64, shape[i]);
    if (n < size) snprintf(buf + n, size - n, "]");
    return buf;
}

/* Element count × element size, or -1 if it does not fit in 64 bits. */
static int count_bytes(int ndim, const int64_t *shape, size_t elem_size, uint64_t *nbytes)
{
    uint64_t n = elem_size;
    for (int i = 0; i < ndim; i++)
        if (__builtin_mul_overflow(n, (uint64_t)shape[i], &n)) return -1;
    *nbytes = n;
    return 0;
}

void ckpt_free(Checkpoint *c)
{
    if (!c) return;
    for (int i = 0; i < c->ntensors; i++) {
        free(c->tensors[i].name);
        free(c->tensors[i].data);
    }
    for (int i = 0; i < c->nmeta; i++) {
        free(c->meta[i].key);
        free(c->meta[i].value);
    }
    free(c->tensors);
    free(c->meta);
    memset(c, 0, sizeof *c);
}

const CkptTensor *ckpt_find(const Checkpoint *c, const char *name)
{
    for (int i = 0; i < c->ntensors; i++)
        if (strcmp(c->tensors[i].name, name) == 0) return &c->tensors[i];
    return NULL;
}

const char *ckpt_meta_get(const Checkpoint *c, const char *key)
{
    for (int i = 0; i < c->nmeta; i++)
        if (strcmp(c->meta[i].key, key) == 0) return c->meta[i].value;
    return NULL;
}

int ckpt_load_f32(const Checkpoint *c, const char *name, int ndim, const int64_t *shape,
                  float *dst, Err *e)
{
    const CkptTensor *t = ckpt_find(c, name);
    if (!t) return err_set(e, "no tensor " NAME_FMT " in the checkpoint (is it for another model?)", name);
    if (t->dtype != DT_F32)
        return err_set(e, "tensor " NAME_FMT " has dtype %s, expected F32", name, dtype_info[t->dtype].name);
    if (t->ndim != ndim || memcmp(t->shape, shape, (size_t)ndim * sizeof *shape) != 0) {
        char have[200], want[200];
        return err_set(e, "tensor " NAME_FMT " has shape %s, expected %s", name,
                       format_shape(have, sizeof have, t->ndim, t->shape),
                       format_shape(want, sizeof want, ndim, shape));
    }
    if (t->nbytes) memcpy(dst, t->data, t->nbytes);
    return 0;
}

/* ---------------------------------------------------------------- parsing */

/* One tensor entry of the header, validated, before its data is copied. */
typedef struct {
    const char *name; /* borrowed from the JSON tree */
    size_t index;     /* position in the header, to keep ties in file order */
    DType dtype;
    int ndim;
    int64_t shape[CKPT_MAX_DIMS];
    uint64_t begin, end;
} Entry;

/* Names end up in one-line messages and on screen: no control characters. */
static bool is_printable_name(const char *s)
{
    if (!*s) return false;
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) return false;
    return true;
}

static bool get_uint(const json_t *v, uint64_t *out)
{
    /* jansson refuses integers beyond json_int_t (so >= 2^63 never gets here)
     * and parses 1.0 or 1e3 as reals, which json_is_integer rejects. */
    if (!json_is_integer(v) || json_integer_value(v) < 0) return false;
    *out = (uint64_t)json_integer_value(v);
    return true;
}

static int parse_dtype(const char *name, const json_t *v, DType *out, Err *e)
{
    const char *s = json_string_value(v);
    for (int d = 0; s && d < N_DTYPES; d++)
        if (strcmp(s, dtype_info[d].name) == 0) {
            *out = (DType)d;
            return 0;
        }
    return err_set(e, "tensor " NAME_FMT ": unknown dtype %s%.20s%s (expected F32, F16, BF16, F64, "
                      "I64, I32, I16, I8, U8 or BOOL)",
                   name, s ? "\"" : "", s ? s : "(not a string)", s ? "\"" : "");
}

static int parse_shape(const char *name, const json_t *v, Entry *out, Err *e)
{
    if (!json_is_array(v) || json_array_size(v) > CKPT_MAX_DIMS)
        return err_set(e, "tensor " NAME_FMT ": shape must be an array of at most %d integers", name,
                       CKPT_MAX_DIMS);
    out->ndim = (int)json_array_size(v);
    for (int i = 0; i < out->ndim; i++) {
        uint64_t dim;
        if (!get_uint(json_array_get(v, (size_t)i), &dim))
            return err_set(e, "tensor " NAME_FMT ": shape entry %d is not a non-negative integer", name, i);
        out->shape[i] = (int64_t)dim;
    }
    return 0;
}

static int parse_offsets(const char *name, const json_t *v, Entry *out, Err *e)
{
    if (!json_is_array(v) || json_array_size(v) != 2 || !get_uint(json_array_get(v, 0), &out->begin) ||
        !get_uint(json_array_get(v, 1), &out->end) || out->begin > out->end)
        return err_set(e, "tensor " NAME_FMT ": data_offsets must be [begin,end], non-negative "
                          "integers with begin <= end",
                       name);
    return 0;
}

static int parse_entry(const char *name, const json_t *v, uint64_t data_len, Entry *out, Err *e)
{
    if (!is_printable_name(name))
        return err_set(e, "tensor name \"" NAME_FMT "\" is empty or has control characters", name);
    const json_t *dtype = json_object_get(v, "dtype");
    const json_t *shape = json_object_get(v, "shape");
    const json_t *offsets = json_object_get(v, "data_offsets");
    if (!json_is_object(v) || !dtype || !shape || !offsets || json_object_size(v) != 3)
        return err_set(e, "tensor " NAME_FMT ": entry must be an object with exactly the keys dtype, "
                          "shape and data_offsets",
                       name);
    out->name = name;
    if (parse_dtype(name, dtype, &out->dtype, e) || parse_shape(name, shape, out, e) ||
        parse_offsets(name, offsets, out, e))
        return -1;

    char shape_text[200];
    format_shape(shape_text, sizeof shape_text, out->ndim, out->shape);
    uint64_t nbytes;
    if (count_bytes(out->ndim, out->shape, dtype_info[out->dtype].size, &nbytes))
        return err_set(e, "tensor " NAME_FMT ": shape %s is too large (element count overflows)", name,
                       shape_text);
    if (out->end > data_len)
        return err_set(e, "tensor " NAME_FMT ": data_offsets [%" PRIu64 ",%" PRIu64 "] run past the end "
                          "of the data (%" PRIu64 " bytes)",
                       name, out->begin, out->end, data_len);
    if (out->end - out->begin != nbytes)
        return err_set(e, "tensor " NAME_FMT ": data_offsets [%" PRIu64 ",%" PRIu64 "] hold %" PRIu64
                          " bytes but %s %s needs %" PRIu64,
                       name, out->begin, out->end, out->end - out->begin, dtype_info[out->dtype].name,
                       shape_text, nbytes);
    return 0;
}

static int check_metadata(const json_t *meta, Err *e)
{
    if (!json_is_object(meta)) return err_set(e, "__metadata__ must be an object of string values");
    const char *key;
    const json_t *value;
    json_object_foreach((json_t *)meta, key, value) {
        if (!is_printable_name(key))
            return err_set(e, "__metadata__ key \"" NAME_FMT "\" is empty or has control characters", key);
        if (!json_is_string(value)) return err_set(e, "__metadata__ value for " NAME_FMT " is not a string", key);
    }
    return 0;
}

/* Fills entries (allocated, in header order) from every key but __metadata__. */
static int collect_entries(json_t *root, uint64_t data_len, Entry **out, size_t *count, Err *e)
{
    Entry *entries = calloc(json_object_size(root) + 1, sizeof *entries);
    if (!entries) return err_set(e, "out of memory reading the header");
    size_t n = 0;
    const char *key;
    json_t *value;
    json_object_foreach(root, key, value) {
        int rc = strcmp(key, "__metadata__") == 0 ? check_metadata(value, e)
                                                  : parse_entry(key, value, data_len, &entries[n], e);
        if (rc) {
            free(entries);
            return -1;
        }
        if (strcmp(key, "__metadata__") != 0) {
            entries[n].index = n;
            n++;
        }
    }
    *out = entries;
    *count = n;
    return 0;
}

static int by_offset(const void *pa, const void *pb)
{
    const Entry *a = pa, *b = pb;
    if (a->begin != b->begin) return a->begin < b->begin ? -1 : 1;
    if (a->end != b->end) return a->end < b->end ? -1 : 1;
    return a->index < b->index ? -1 : a->index > b->index;
}

/* Sorts entries by offset and checks they tile [0, data_len) exactly. */
static int check_layout(Entry *entries, size_t n, uint64_t data_len, Err *e)
{
    qsort(entries, n, sizeof *entries, by_offset);
    uint64_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        if (entries[i].begin > pos)
            return err_set(e, "gap in the tensor data: bytes [%" PRIu64 ",%" PRIu64 ") before tensor " NAME_FMT
                              " belong to no tensor",
                           pos, entries[i].begin, entries[i].name);
        if (entries[i].begin < pos)
            return err_set(e, "tensor " NAME_FMT ": data_offsets [%" PRIu64 ",%" PRIu64 "] overlap tensor " NAME_FMT,
                           entries[i].name, entries[i].begin, entries[i].end, entries[i - 1].name);
        pos = entries[i].end;
    }
    if (pos != data_len)
        return err_set(e, "tensors cover %" PRIu64 " bytes but the data is %" PRIu64 " bytes long "
                          "(bytes [%" PRIu64 ",%" PRIu64 ") belong to no tensor)",
                       pos, data_len, pos, data_len);
    return 0;
}

static int copy_tensors(const Entry *entries, size_t n, const uint8_t *data, Checkpoint *out)
{
    /* The header is at most CKPT_MAX_HEADER bytes, so n fits an int. */
    out->tensors = calloc(n + 1, sizeof *out->tensors);
    if (!out->tensors) return -1;
    for (size_t i = 0; i < n; i++) {
        const Entry *en = &entries[i];
        CkptTensor *t = &out->tensors[out->ntensors++];
        t->dtype = en->dtype;
        t->ndim = en->ndim;
        memcpy(t->shape, en->shape, sizeof t->shape);
        t->nbytes = (size_t)(en->end - en->begin);
        t->name = strdup(en->name);
        t->data = malloc(t->nbytes ? t->nbytes : 1); /* malloc: aligned for any dtype */
        if (!t->name || !t->data) return -1;
        if (t->nbytes) memcpy(t->data, data + en->begin, t->nbytes);
    }
    return 0;
}

static int copy_metadata(const json_t *meta, Checkpoint *out)
{
    out->meta = calloc(json_object_size(meta) + 1, sizeof *out->meta);
    if (!out->meta) return -1;
    const char *key;
    const json_t *value;
    json_object_foreach((json_t *)meta, key, value) {
        CkptMeta *m = &out->meta[out->nmeta++];
        m->key = strdup(key);
        m->value = strdup(json_string_value(value));
        if (!m->key || !m->value) return -1;
    }
    return 0;
}

/* Names and JSON excerpts come from the file: keep the message one line. */
static int one_line(Err *e)
{
    for (char *p = e ? e->msg : NULL; p && *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
    return -1;
}

/* Reads the u64 header length and checks it against the buffer. */
static int read_header_length(const uint8_t *buf, size_t len, size_t *header_len, Err *e)
{
    if (len < 8)
        return err_set(e, "too short for a safetensors file (%zu bytes, the header length alone is 8)", len);
    uint64_t n;
    memcpy(&n, buf, sizeof n);
    if (n == 0) return err_set(e, "safetensors header length is 0");
    if (n > CKPT_MAX_HEADER)
        return err_set(e, "safetensors header length %" PRIu64 " is over the limit of %u bytes", n,
                       CKPT_MAX_HEADER);
    if (n > len - 8)
        return err_set(e, "safetensors header length %" PRIu64 " runs past the end of the data (%zu bytes "
                          "follow it; file truncated?)",
                       n, len - 8);
    if (buf[8] != '{') return err_set(e, "safetensors header does not start with '{'");
    *header_len = (size_t)n;
    return 0;
}

int ckpt_parse_safetensors(const uint8_t *buf, size_t len, Checkpoint *out, Err *e)
{
    memset(out, 0, sizeof *out);
    size_t header_len = 0;
    if (read_header_length(buf, len, &header_len, e)) return -1;

    /* Starting with '{', and with jansson accepting only an object or an
     * array at the top level, a successful parse is an object. Trailing
     * spaces (the padding) are allowed, anything else after it is not. */
    json_error_t jerr;
    json_t *root = json_loadb((const char *)buf + 8, header_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        err_set(e, "safetensors header is not valid JSON: %s (at byte %d of the header)", jerr.text, jerr.position);
        return one_line(e);
    }

    const uint8_t *data = buf + 8 + header_len;
    uint64_t data_len = len - 8 - header_len;
    const json_t *meta = json_object_get(root, "__metadata__");
    Entry *entries = NULL;
    size_t n = 0;
    int rc = collect_entries(root, data_len, &entries, &n, e);
    if (rc == 0) rc = check_layout(entries, n, data_len, e);
    if (rc == 0 && (copy_tensors(entries, n, data, out) || (meta && copy_metadata(meta, out)))) {
        ckpt_free(out);
        rc = err_set(e, "out of memory copying the checkpoint");
    }
    free(entries);
    json_decref(root);
    return rc ? one_line(e) : 0;
}

/* ------------------------------------------------------------ decompression */

static int zstd_failure(size_t code, Err *e)
{
    if (ZSTD_getErrorCode(code) == ZSTD_error_checksum_wrong)
        return err_set(e, "zstd checksum mismatch (file is corrupt)");
    return err_set(e, "corrupt zstd frame: %s (file is corrupt)", ZSTD_getErrorName(code));
}

static bool starts_with_zstd_magic(const uint8_t *p, size_t len)
{
    uint32_t magic;
    if (len < sizeof magic) return false;
    memcpy(&magic, p, sizeof magic);
    return magic == ZSTD_MAGICNUMBER;
}

static int too_big(Err *e)
{
    return err_set(e, "decompresses to more than %zu bytes (not a genlab checkpoint?)",
                   (size_t)CKPT_MAX_DECOMPRESSED);
}

/* Checks what the decoder would not: exactly one frame, with a checksum. */
static int check_frame_start(const uint8_t *src, size_t len, Err *e)
{
    if (len == 0) return err_set(e, "empty file (is this a genlab checkpoint?)");
    if (!starts_with_zstd_magic(src, len)) return err_set(e, "not a zstd frame (is this a genlab checkpoint?)");
    if (len < 5) return err_set(e, "truncated zstd frame");
    /* Frame_Header_Descriptor (RFC 8878, 3.1.1.1.1): bit 2 is
     * Content_Checksum_flag. Without it a corrupt file could go unnoticed. */
    if (!(src[4] & 0x04))
        return err_set(e, "zstd frame has no content checksum (genlab writes one; recompress with plain `zstd`)");
    return 0;
}

static int decompress_frame(const uint8_t *src, size_t len, uint8_t **out, size_t *out_len, Err *e)
{
    if (check_frame_start(src, len, e)) return -1;
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    /* One spare byte past the limit tells "exactly the limit" from "more". */
    const size_t cap_max = CKPT_MAX_DECOMPRESSED + 1;
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap);
    ZSTD_inBuffer in = {src, len, 0};
    int rc = dctx && buf ? 0 : err_set(e, "out of memory decompressing");
    while (rc == 0) {
        if (n == cap) {
            if (cap == cap_max) {
                rc = too_big(e);
                break;
            }
            cap = cap > cap_max / 2 ? cap_max : cap * 2;
            uint8_t *grown = realloc(buf, cap);
            if (!grown) {
                rc = err_set(e, "out of memory decompressing (%zu bytes)", cap);
                break;
            }
            buf = grown;
        }
        ZSTD_outBuffer o = {buf + n, cap - n, 0};
        size_t r = ZSTD_decompressStream(dctx, &o, &in);
        n += o.pos;
        if (ZSTD_isError(r)) rc = zstd_failure(r, e);
        else if (r == 0) break; /* frame complete, checksum verified */
        else if (in.pos == in.size && o.pos < o.size) rc = err_set(e, "truncated zstd frame");
    }
    if (rc == 0 && n > CKPT_MAX_DECOMPRESSED) rc = too_big(e);
    if (rc == 0 && in.pos < in.size)
        rc = starts_with_zstd_magic(src + in.pos, in.size - in.pos)
                 ? err_set(e, "more than one zstd frame (genlab writes one; file was appended to?)")
                 : err_set(e, "%zu bytes of garbage after the zstd frame (file is corrupt)", in.size - in.pos);
    ZSTD_freeDCtx(dctx);
    if (rc) {
        free(buf);
        return -1;
    }
    *out = buf;
    *out_len = n;
    return 0;
}

static int read_whole_file(const char *path, uint8_t **out, size_t *out_len, Err *e)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return err_set(e, "cannot open: %s", strerror(errno));
    struct stat st;
    int rc = 0;
    uint8_t *buf = NULL;
    size_t n = 0;
    if (fstat(fd, &st)) rc = err_set(e, "cannot stat: %s", strerror(errno));
    else if (!S_ISREG(st.st_mode)) rc = err_set(e, "not a regular file");
    else if ((uint64_t)st.st_size > ZSTD_compressBound(CKPT_MAX_DECOMPRESSED))
        rc = err_set(e, "file is %jd bytes, too large for a checkpoint", (intmax_t)st.st_size);
    else if (!(buf = malloc((size_t)st.st_size + 1)))
        rc = err_set(e, "out of memory reading %jd bytes", (intmax_t)st.st_size);
    while (rc == 0 && n < (size_t)st.st_size) {
        ssize_t got = read(fd, buf + n, (size_t)st.st_size - n);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) rc = err_set(e, "read error: %s", strerror(errno));
        if (got <= 0) break; /* EOF: the file shrank while we read it */
        n += (size_t)got;
    }
    close(fd);
    if (rc) {
        free(buf);
        return -1;
    }
    *out = buf;
    *out_len = n;
    return 0;
}

int ckpt_read(const char *path, Checkpoint *out, Err *e)
{
    memset(out, 0, sizeof *out);
    uint8_t *compressed = NULL, *raw = NULL;
    size_t compressed_len = 0, raw_len = 0;
    int rc = read_whole_file(path, &compressed, &compressed_len, e);
    if (rc == 0) rc = decompress_frame(compressed, compressed_len, &raw, &raw_len, e);
    free(compressed);
    if (rc == 0) rc = ckpt_parse_safetensors(raw, raw_len, out, e);
    free(raw);
    return rc ? err_prefix(e, "%s", path) : 0;
}

/* ------------------------------------------------------------------ writing */

/* What ckpt_write promises to accept: printable ASCII, no quotes or
 * backslashes, so names need no escaping anywhere they are shown. */
static bool is_simple_name(const char *s)
{
    if (!s || !*s) return false;
    for (; *s; s++)
        if (*s < 0x20 || *s > 0x7e || *s == '"' || *s == '\\') return false;
    return true;
}

static json_t *json_u64_pair(uint64_t a, uint64_t b)
{
    return json_pack("[II]", (json_int_t)a, (json_int_t)b);
}

static json_t *json_shape(int ndim, const int64_t *shape)
{
    json_t *arr = json_array();
    for (int i = 0; arr && i < ndim; i++)
        if (json_array_append_new(arr, json_integer(shape[i]))) {
            json_decref(arr);
            return NULL;
        }
    return arr;
}

static int check_view(const CkptTensorView *t, uint64_t *nbytes, Err *e)
{
    if (!is_simple_name(t->name) || strcmp(t->name, "__metadata__") == 0)
        return err_set(e, "tensor name \"" NAME_FMT "\" is not allowed (use printable ASCII without quotes or "
                          "backslashes)",
                       t->name ? t->name : "(null)");
    if (t->ndim < 0 || t->ndim > CKPT_MAX_DIMS)
        return err_set(e, "tensor %s: ndim %d is outside 0..%d", t->name, t->ndim, CKPT_MAX_DIMS);
    for (int i = 0; i < t->ndim; i++)
        if (t->shape[i] < 0) return err_set(e, "tensor %s: dimension %d is negative", t->name, i);
    if (count_bytes(t->ndim, t->shape, sizeof(float), nbytes))
        return err_set(e, "tensor %s: shape is too large (element count overflows)", t->name);
    if (*nbytes && !t->data) return err_set(e, "tensor %s: data is NULL", t->name);
    return 0;
}

static int add_metadata(json_t *root, const CkptMeta *meta, int nmeta, Err *e)
{
    json_t *obj = json_object();
    if (!obj || json_object_set_new(root, "__metadata__", obj)) return err_set(e, "out of memory");
    for (int i = 0; i < nmeta; i++) {
        if (!is_simple_name(meta[i].key))
            return err_set(e, "metadata key \"" NAME_FMT "\" is not allowed (use printable ASCII without quotes "
                              "or backslashes)",
                           meta[i].key ? meta[i].key : "(null)");
        if (json_object_get(obj, meta[i].key)) return err_set(e, "metadata key %s appears twice", meta[i].key);
        json_t *value = meta[i].value ? json_string(meta[i].value) : NULL;
        if (!value) return err_set(e, "metadata %s: value is missing or not valid UTF-8", meta[i].key);
        if (json_object_set_new(obj, meta[i].key, value)) return err_set(e, "out of memory");
    }
    return 0;
}


/* Builds the header (metadata first, tensors in order with contiguous
 * offsets) and returns the total size of the tensor data in *data_bytes. */
static json_t *build_header(const CkptTensorView *tensors, int ntensors, const CkptMeta *meta, int nmeta,
                            uint64_t *data_bytes, Err *e)
{
    json_t *root = json_object();
    if (!root) {
        err_set(e, "out of memory");
        return NULL;
    }
    int rc = add_metadata(root, meta, nmeta, e);
    uint64_t offset = 0;
    for (int i = 0; rc == 0 && i < ntensors; i++) {
        const CkptTensorView *t = &tensors[i];
        uint64_t nbytes = 0;
        if (check_view(t, &nbytes, e)) rc = -1;
        else if (json_object_get(root, t->name)) rc = err_set(e, "tensor %s appears twice", t->name);
        else if (nbytes > CKPT_MAX_DECOMPRESSED - offset) /* keeps offset below the limit */
            rc = err_set(e, "checkpoint would exceed the %zu-byte limit", (size_t)CKPT_MAX_DECOMPRESSED);
        else {
            json_t *entry = json_pack("{s:s,s:o,s:o}", "dtype", "F32", "shape", json_shape(t->ndim, t->shape),
                                      "data_offsets", json_u64_pair(offset, offset + nbytes));
            if (!entry || json_object_set_new(root, t->name, entry)) rc = err_set(e, "out of memory");
            offset += nbytes;
        }
    }
    if (rc) {
        json_decref(root);
        return NULL;
    }
    *data_bytes = offset;
    return root;
}

/* Streams bytes through the compressor into a file. */
typedef struct {
    ZSTD_CCtx *cctx;
    FILE *f;
    uint8_t *out;
    size_t out_cap;
} ZstdSink;

static int sink_put(ZstdSink *s, const void *src, size_t len, ZSTD_EndDirective mode, Err *e)
{
    ZSTD_inBuffer in = {src, len, 0};
    for (;;) {
        ZSTD_outBuffer o = {s->out, s->out_cap, 0};
        size_t left = ZSTD_compressStream2(s->cctx, &o, &in, mode);
        if (ZSTD_isError(left)) return err_set(e, "zstd compression failed: %s", ZSTD_getErrorName(left));
        if (fwrite(s->out, 1, o.pos, s->f) != o.pos) return err_set(e, "write failed: %s", strerror(errno));
        if (mode == ZSTD_e_end ? left == 0 : in.pos == in.size) return 0;
    }
}

static uint64_t padded_length(size_t json_len)
{
    return (json_len + HEADER_ALIGN - 1) / HEADER_ALIGN * HEADER_ALIGN;
}

/* Writes the compressed checkpoint: u64 header length, the JSON padded with
 * spaces to a multiple of 8, then each tensor's bytes. */
static int write_compressed(FILE *f, const char *json, const CkptTensorView *tensors, int ntensors,
                            uint64_t data_bytes, Err *e)
{
    size_t json_len = strlen(json);
    uint64_t header_len = padded_length(json_len);
    static const char spaces[] = "       "; /* HEADER_ALIGN - 1 of them */
    ZstdSink s = {ZSTD_createCCtx(), f, NULL, ZSTD_CStreamOutSize()};
    s.out = malloc(s.out_cap);
    int rc = s.cctx && s.out ? 0 : err_set(e, "out of memory compressing");
    if (rc == 0 && (ZSTD_isError(ZSTD_CCtx_setParameter(s.cctx, ZSTD_c_compressionLevel, ZSTD_LEVEL)) ||
                    ZSTD_isError(ZSTD_CCtx_setParameter(s.cctx, ZSTD_c_checksumFlag, 1)) ||
                    ZSTD_isError(ZSTD_CCtx_setPledgedSrcSize(s.cctx, sizeof header_len + header_len + data_bytes))))
        rc = err_set(e, "cannot set up the zstd compressor");
    if (rc == 0 && (sink_put(&s, &header_len, sizeof header_len, ZSTD_e_continue, e) ||
                    sink_put(&s, json, json_len, ZSTD_e_continue, e) ||
                    sink_put(&s, spaces, (size_t)header_len - json_len, ZSTD_e_continue, e)))
        rc = -1;
    for (int i = 0; rc == 0 && i < ntensors; i++) {
        uint64_t nbytes = 0;
        count_bytes(tensors[i].ndim, tensors[i].shape, sizeof(float), &nbytes); /* checked already */
        if (nbytes) rc = sink_put(&s, tensors[i].data, (size_t)nbytes, ZSTD_e_continue, e);
    }
    if (rc == 0) rc = sink_put(&s, NULL, 0, ZSTD_e_end, e);
    ZSTD_freeCCtx(s.cctx);
    free(s.out);
    return rc;
}

/* Temporary file next to `path`, fsync, rename over it; on failure the
 * temporary file is removed and whatever was at `path` is untouched. */
static int write_atomically(const char *path, const char *json, const CkptTensorView *tensors, int ntensors,
                            uint64_t data_bytes, Err *e)
{
    AtomicFile af;
    FILE *f = atomic_open(&af, path, e);
    if (!f) return -1;
    if (write_compressed(f, json, tensors, ntensors, data_bytes, e)) {
        atomic_abort(&af);
        return -1;
    }
    return atomic_commit(&af, e);
}

int ckpt_write(const char *path, const CkptTensorView *tensors, int ntensors, const CkptMeta *meta, int nmeta,
               Err *e)
{
    if (ntensors < 0 || nmeta < 0) return err_set(e, "%s: negative tensor or metadata count", path);
    uint64_t data_bytes = 0;
    json_t *header = build_header(tensors, ntensors, meta, nmeta, &data_bytes, e);
    if (!header) {
        err_prefix(e, "%s", path);
        return one_line(e);
    }
    char *json = json_dumps(header, JSON_COMPACT);
    json_decref(header);
    int rc;
    if (!json) rc = err_set(e, "out of memory");
    else if (8 + padded_length(strlen(json)) > CKPT_MAX_DECOMPRESSED - data_bytes)
        rc = err_set(e, "checkpoint would exceed the %zu-byte limit", (size_t)CKPT_MAX_DECOMPRESSED);
    else rc = write_atomically(path, json, tensors, ntensors, data_bytes, e);
    free(json);
    return rc ? err_prefix(e, "%s", path) : 0;
}

/* ------------------------------------------------------------- metadata */

void ckpt_meta_add(CkptMetaList *l, const char *key, const char *fmt, ...)
{
    if (l->n >= CKPT_META_MAX) return;
    snprintf(l->store[l->n][0], sizeof l->store[0][0], "%s", key);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->store[l->n][1], sizeof l->store[0][1], fmt, ap);
    va_end(ap);
    l->items[l->n] = (CkptMeta){l->store[l->n][0], l->store[l->n][1]};
    l->n++;
}

int ckpt_meta_long(const Checkpoint *ck, const char *key, long long lo, long long hi,
                   long long *out, Err *e)
{
    const char *s = ckpt_meta_get(ck, key);
    if (!s) return err_set(e, "metadata key \"%s\" is missing", key);
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return err_set(e, "metadata \"%s\" = \"%s\" is not an integer in %lld..%lld", key, s, lo, hi);
    *out = v;
    return 0;
}

int ckpt_meta_double(const Checkpoint *ck, const char *key, double *out, Err *e)
{
    const char *s = ckpt_meta_get(ck, key);
    if (!s) return err_set(e, "metadata key \"%s\" is missing", key);
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v))
        return err_set(e, "metadata \"%s\" = \"%s\" is not a number", key, s);
    *out = v;
    return 0;
}

int ckpt_meta_u64(const Checkpoint *ck, const char *key, uint64_t *out, Err *e)
{
    const char *s = ckpt_meta_get(ck, key);
    if (!s) return err_set(e, "metadata key \"%s\" is missing", key);
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-')
        return err_set(e, "metadata \"%s\" = \"%s\" is not an unsigned 64-bit integer", key, s);
    *out = v;
    return 0;
}
