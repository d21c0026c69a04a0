/* checkpoint.h — safetensors inside a zstd frame (DESIGN.md, Checkpoints).
 *
 * File = zstd frame (content checksum on) whose decompressed content is a
 * safetensors file: u64 little-endian header length N, N bytes of JSON (an
 * object: tensor name → {"dtype","shape","data_offsets"}, plus an optional
 * "__metadata__" object of string → string), then the tensor bytes,
 * little-endian, C order. genlab writes F32 tensors only, and pads the JSON
 * with spaces to a multiple of 8 bytes.
 *
 * The reader trusts nothing: bounded decompressed size, header length bound,
 * JSON well-formed with no duplicate keys, known dtypes, shapes and offsets
 * as exact unsigned integers with overflow-checked products, offsets in
 * bounds, contiguous, not overlapping, covering the whole buffer, byte
 * counts equal to dtype size × element count, metadata values strings.
 * Any failure is one line in Err. */
#ifndef GENLAB_CHECKPOINT_H
#define GENLAB_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "genlab/error.h"

#define CKPT_MAX_DIMS 8
#define CKPT_MAX_HEADER (100u * 1024u * 1024u) /* as safetensors' own bound */
#define CKPT_MAX_DECOMPRESSED ((size_t)2 << 30) /* 2 GiB */

typedef enum { DT_F32, DT_F16, DT_BF16, DT_F64, DT_I64, DT_I32, DT_I16, DT_I8, DT_U8, DT_BOOL } DType;

typedef struct {
    char *name;
    DType dtype;
    int ndim;
    int64_t shape[CKPT_MAX_DIMS];
    size_t nbytes;
    void *data; /* owned, nbytes long, copied out (aligned for any dtype) */
} CkptTensor;

typedef struct {
    char *key;
    char *value;
} CkptMeta;

typedef struct {
    int ntensors;
    CkptTensor *tensors; /* in file order (sorted by data offset) */
    int nmeta;
    CkptMeta *meta;
} Checkpoint;

/* What to write: tensors point at caller-owned F32 data. */
typedef struct {
    const char *name;
    int ndim;
    int64_t shape[CKPT_MAX_DIMS];
    const float *data;
} CkptTensorView;

/* Writes tensors (in the given order) and metadata atomically to `path`:
 * temporary file in the same directory, fsync, rename, fsync of the
 * directory. Compression level: zstd's default (3). Rejects empty or
 * duplicate names and names or keys that are not valid UTF-8-free ASCII
 * printable text without quotes or backslashes — keep names simple. */
int ckpt_write(const char *path, const CkptTensorView *tensors, int ntensors,
               const CkptMeta *meta, int nmeta, Err *e);

/* Reads and validates a checkpoint file. On failure *out is left empty
 * (and needs no ckpt_free, though calling it is harmless). */
int ckpt_read(const char *path, Checkpoint *out, Err *e);

/* Same validation over an in-memory, already decompressed safetensors
 * buffer (exposed for tests and fuzzing). */
int ckpt_parse_safetensors(const uint8_t *buf, size_t len, Checkpoint *out, Err *e);

void ckpt_free(Checkpoint *c);

const CkptTensor *ckpt_find(const Checkpoint *c, const char *name);
/* NULL when absent. */
const char *ckpt_meta_get(const Checkpoint *c, const char *key);

/* Copies tensor `name` into dst, checking that it exists, is F32 and has
 * exactly the shape given. The error says which of these failed, e.g.
 * "tensor enc.fc_mu.weight has shape [4,3136], expected [2,3136]". */
int ckpt_load_f32(const Checkpoint *c, const char *name, int ndim, const int64_t *shape,
                  float *dst, Err *e);


/* Metadata being assembled for ckpt_write (values formatted as text). */
#define CKPT_META_MAX 48
typedef struct {
    CkptMeta items[CKPT_META_MAX];
    char store[CKPT_META_MAX][2][128];
    int n;
} CkptMetaList;
/* Appends key = printf(fmt, …); entries beyond CKPT_META_MAX are dropped. */
void ckpt_meta_add(CkptMetaList *l, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Reads metadata `key` as an integer in lo..hi or a finite number; the
 * error names the key and the value found. */
int ckpt_meta_long(const Checkpoint *ck, const char *key, long long lo, long long hi,
                   long long *out, Err *e);
int ckpt_meta_double(const Checkpoint *ck, const char *key, double *out, Err *e);
int ckpt_meta_u64(const Checkpoint *ck, const char *key, uint64_t *out, Err *e);

#endif
