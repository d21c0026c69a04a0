/* winograd.c — F(2×2, 3×3) convolution; winograd.h says what and why.
 *
 * Layouts, for a chunk of n images cut into T = n·tiles_h·tiles_w blocks
 * ("tiles", 2×2 of output each), ξ = 0..15 the transform-domain position:
 *   U[ξ][K][C]  the filters,             U  = G g Gᵀ
 *   V[ξ][C][T]  the input blocks,        V  = Bᵀ d B
 *   M[ξ][K][T]  their products (forward), or the output gradient taken to
 *               the transform domain (backward), Z = A dY Aᵀ
 * so that each ξ is one row-major GEMM: M[ξ] = U[ξ]·V[ξ]. Input blocks are
 * read from a zero-padded copy of each plane, so no load needs a bounds
 * test; output blocks that overhang an odd-sized image are clipped on
 * write, and their gradient is zero. */
#include "genlab/winograd.h"
#include "fastmath.h"

#include <cblas.h>
#include <string.h>

#define XI 16 /* positions in the 4×4 transform domain */

/* A chunk is at least this many tiles wide (a narrow GEMM wastes the
 * packing), and otherwise at most about this many floats of V and M. */
#define WINO_MIN_TILES 128
#define WINO_CHUNK_FLOATS (192 * 1024)

typedef struct {
    int C, K, H, W;
    int tiles_h, tiles_w, tiles; /* per image */
    int pad_h, pad_w;            /* padded plane: one zero row/column before, enough after */
    int chunk;                   /* images per chunk */
} Plan;

bool winograd_applies(const ConvShape *s)
{
    return s->k == 3 && s->stride == 1 && s->pad == 1 && s->out_h == s->in_h && s->out_w == s->in_w;
}

static Plan make_plan(const ConvShape *s, int B)
{
    Plan p = {.C = s->in_c, .K = s->out_c, .H = s->in_h, .W = s->in_w};
    p.tiles_h = (p.H + 1) / 2;
    p.tiles_w = (p.W + 1) / 2;
    p.tiles = p.tiles_h * p.tiles_w;
    p.pad_h = 2 * p.tiles_h + 2;
    p.pad_w = 2 * p.tiles_w + 2;
    size_t per_image = (size_t)XI * (size_t)(p.C + p.K) * (size_t)p.tiles;
    size_t g = WINO_CHUNK_FLOATS / per_image;
    size_t min_g = (WINO_MIN_TILES + (size_t)p.tiles - 1) / (size_t)p.tiles;
    if (g < min_g) g = min_g;
    if (g > (size_t)B) g = (size_t)B;
    p.chunk = g < 1 ? 1 : (int)g;
    return p;
}

size_t winograd_workspace_floats(const ConvShape *s, int B)
{
    Plan p = make_plan(s, B);
    size_t T = (size_t)p.chunk * (size_t)p.tiles;
    /* U and dU, V (reused for dV), M, one padded plane and 4 rows */
    return 2 * (size_t)XI * p.K * p.C + (size_t)XI * (p.C + p.K) * T + (size_t)(p.pad_h + 4) * p.pad_w;
}

/* ------------------------------------------------------------ transforms
 * Each applies a 1-D transform to the columns of a small row-major block,
 * then to its rows. */

/* G·g for a 3×3 g: (a, (a + b + c)/2, (a − b + c)/2, c) */
static void filter_tf(float u[XI], const float g[9])
{
    float t[12]; /* 4×3 */
    for (int j = 0; j < 3; j++) {
        float a = g[j], b = g[3 + j], c = g[6 + j];
        t[j] = a;
        t[3 + j] = 0.5f * (a + b + c);
        t[6 + j] = 0.5f * (a - b + c);
        t[9 + j] = c;
    }
    for (int i = 0; i < 4; i++) {
        float a = t[3 * i], b = t[3 * i + 1], c = t[3 * i + 2];
        u[4 * i + 0] = a;
        u[4 * i + 1] = 0.5f * (a + b + c);
        u[4 * i + 2] = 0.5f * (a - b + c);
        u[4 * i + 3] = c;
    }
}

/* Gᵀ·y, the adjoint of filter_tf: (p + (q + r)/2, (q − r)/2, (q + r)/2 + s) */
static void filter_tf_adjoint(float g[9], const float u[XI])
{
    float t[12]; /* 3×4 */
    for (int j = 0; j < 4; j++) {
        float p = u[j], q = u[4 + j], r = u[8 + j], s = u[12 + j];
        t[j] = p + 0.5f * (q + r);
        t[4 + j] = 0.5f * (q - r);
        t[8 + j] = 0.5f * (q + r) + s;
    }
    for (int i = 0; i < 3; i++) {
        const float *r = t + 4 * i;
        g[3 * i + 0] = r[0] + 0.5f * (r[1] + r[2]);
        g[3 * i + 1] = 0.5f * (r[1] - r[2]);
        g[3 * i + 2] = 0.5f * (r[1] + r[2]) + r[3];
    }
}

/* ---------------------------------------------------------------- stages */

/* U[ξ][k][c] = (G w[k][c] Gᵀ)[ξ] */
static void transform_filters(float *U, const float *w, const Plan *p)
{
    const size_t KC = (size_t)p->K * p->C;
    for (size_t kc = 0; kc < KC; kc++) {
        float u[XI];
        filter_tf(u, w + 9 * kc);
        for (int xi = 0; xi < XI; xi++) U[xi * KC + kc] = u[xi];
    }
}

size_t winograd_filter_floats(const ConvShape *s) { return (size_t)XI * s->out_c * s->in_c; }

void winograd_transform_filters(float *U, const float *w, const ConvShape *s)
{
    const Plan p = make_plan(s, 1);
    transform_filters(U, w, &p);
}

/* dw[k][c] += Gᵀ dU[k][c] G */
static void add_filter_grads(float *dw, const float *dU, const Plan *p)
{
    const size_t KC = (size_t)p->K * p->C;
    for (size_t kc = 0; kc < KC; kc++) {
        float u[XI], g[9];
        for (int xi = 0; xi < XI; xi++) u[xi] = dU[xi * KC + kc];
        filter_tf_adjoint(g, u);
        for (int i = 0; i < 9; i++) dw[9 * kc + i] += g[i];
    }
}

/* The data transforms work a row of tiles at a time on whole rows, so that
 * every loop is over contiguous (or stride-2) floats and vectorises: the
 * vertical half of each transform combines rows of the plane, the
 * horizontal half then combines the columns of those rows. `rows` is
 * scratch of 4 padded rows. */

static void pad_plane(float *restrict pp, const float *restrict plane, const Plan *p)
{
    memset(pp, 0, (size_t)p->pad_h * p->pad_w * sizeof *pp);
    for (int y = 0; y < p->H; y++)
        memcpy(pp + (size_t)(y + 1) * p->pad_w + 1, plane + (size_t)y * p->W, (size_t)p->W * sizeof *pp);
}

/* Bᵀ d B for one padded plane's blocks; position ξ of tile t goes to
 * dst[ξ·stride + t]. Bᵀ·x = (x0 − x2, x1 + x2, x2 − x1, x1 − x3). */
static void input_tf_plane(float *restrict dst, size_t stride, float *restrict rows,
                           const float *restrict pp, const Plan *p)
{
    const int PW = p->pad_w, TW = p->tiles_w;
    float *t0 = rows, *t1 = rows + PW, *t2 = rows + 2 * PW, *t3 = rows + 3 * PW;
    for (int ty = 0; ty < p->tiles_h; ty++) {
        const float *r0 = pp + (size_t)(2 * ty) * PW, *r1 = r0 + PW, *r2 = r1 + PW, *r3 = r2 + PW;
        for (int x = 0; x < PW; x++) {
            t0[x] = r0[x] - r2[x];
            t1[x] = r1[x] + r2[x];
            t2[x] = r2[x] - r1[x];
            t3[x] = r1[x] - r3[x];
        }
        for (int i = 0; i < 4; i++) {
            const float *r = rows + (size_t)i * PW;
            float *v0 = dst + (size_t)(4 * i) * stride + (size_t)ty * TW, *v1 = v0 + stride,
                  *v2 = v1 + stride, *v3 = v2 + stride;
            for (int tx = 0; tx < TW; tx++) {
                float a = r[2 * tx], b = r[2 * tx + 1], c = r[2 * tx + 2], d = r[2 * tx + 3];
                v0[tx] = a - c;
                v1[tx] = b + c;
                v2[tx] = c - b;
                v3[tx] = b - d;
            }
        }
    }
}

/* The adjoint: pp (zeroed by the caller) += B v Bᵀ for every block, the
 * blocks overlapping by two rows and columns. B·y = (y0, y1 − y2 + y3,
 * y1 + y2 − y0, −y3). */
static void input_tf_plane_adjoint(float *restrict pp, float *restrict rows, const float *restrict src,
                                   size_t stride, const Plan *p)
{
    const int PW = p->pad_w, TW = p->tiles_w;
    for (int ty = 0; ty < p->tiles_h; ty++) {
        for (int i = 0; i < 4; i++) {
            float *h = rows + (size_t)i * PW;
            const float *v0 = src + (size_t)(4 * i) * stride + (size_t)ty * TW, *v1 = v0 + stride,
                        *v2 = v1 + stride, *v3 = v2 + stride;
            for (int tx = 0; tx < TW; tx++) {
                h[2 * tx] = v0[tx];
                h[2 * tx + 1] = v1[tx] - v2[tx] + v3[tx];
            }
            h[2 * TW] = h[2 * TW + 1] = 0.0f;
            for (int tx = 0; tx < TW; tx++) {
                h[2 * tx + 2] += v1[tx] + v2[tx] - v0[tx];
                h[2 * tx + 3] -= v3[tx];
            }
        }
        const float *h0 = rows, *h1 = rows + PW, *h2 = rows + 2 * PW, *h3 = rows + 3 * PW;
        float *r0 = pp + (size_t)(2 * ty) * PW, *r1 = r0 + PW, *r2 = r1 + PW, *r3 = r2 + PW;
        for (int x = 0; x < PW; x++) {
            r0[x] += h0[x];
            r1[x] += h1[x] - h2[x] + h3[x];
            r2[x] += h1[x] + h2[x] - h0[x];
            r3[x] -= h3[x];
        }
    }
}

/* plane = Aᵀ m A + bias for one output plane's blocks, clipped to the
 * image; position ξ of tile t is src[ξ·stride + t].
 * Aᵀ·m = (m0 + m1 + m2, m1 − m2 − m3). */
static void output_tf_plane(float *restrict plane, float *restrict rows, const float *restrict src,
                            size_t stride, float bias, const Plan *p)
{
    const int TW = p->tiles_w;
    float *o0 = rows, *o1 = rows + p->pad_w;
    for (int ty = 0; ty < p->tiles_h; ty++) {
        const float *m = src + (size_t)ty * TW;
        for (int tx = 0; tx < TW; tx++) {
            float s0[4], s1[4];
            for (int j = 0; j < 4; j++) {
                float a = m[(size_t)j * stride + tx], b = m[(size_t)(4 + j) * stride + tx];
                float c = m[(size_t)(8 + j) * stride + tx], d = m[(size_t)(12 + j) * stride + tx];
                s0[j] = a + b + c;
                s1[j] = b - c - d;
            }
            o0[2 * tx] = s0[0] + s0[1] + s0[2] + bias;
            o0[2 * tx + 1] = s0[1] - s0[2] - s0[3] + bias;
            o1[2 * tx] = s1[0] + s1[1] + s1[2] + bias;
            o1[2 * tx + 1] = s1[1] - s1[2] - s1[3] + bias;
        }
        memcpy(plane + (size_t)(2 * ty) * p->W, o0, (size_t)p->W * sizeof *o0);
        if (2 * ty + 1 < p->H) memcpy(plane + (size_t)(2 * ty + 1) * p->W, o1, (size_t)p->W * sizeof *o1);
    }
}

/* The adjoint: A e Aᵀ for the 2×2 of output gradient e over each block
 * (zero where the block overhangs the image), to dst[ξ·stride + t].
 * A·e = (a, a + b, a − b, −b). */
static void output_tf_plane_adjoint(float *restrict dst, size_t stride, float *restrict rows,
                                    const float *restrict plane, const Plan *p)
{
    const int TW = p->tiles_w, W2 = 2 * TW;
    float *e0 = rows, *e1 = rows + p->pad_w, *c1 = rows + 2 * p->pad_w, *c2 = rows + 3 * p->pad_w;
    for (int ty = 0; ty < p->tiles_h; ty++) {
        memset(e0, 0, (size_t)W2 * sizeof *e0), memset(e1, 0, (size_t)W2 * sizeof *e1);
        memcpy(e0, plane + (size_t)(2 * ty) * p->W, (size_t)p->W * sizeof *e0);
        if (2 * ty + 1 < p->H) memcpy(e1, plane + (size_t)(2 * ty + 1) * p->W, (size_t)p->W * sizeof *e1);
        for (int x = 0; x < W2; x++) {
            c1[x] = e0[x] + e1[x];
            c2[x] = e0[x] - e1[x];
            e1[x] = -e1[x];
        }
        const float *cols[4] = {e0, c1, c2, e1};
        for (int i = 0; i < 4; i++) {
            const float *r = cols[i];
            float *z0 = dst + (size_t)(4 * i) * stride + (size_t)ty * TW, *z1 = z0 + stride,
                  *z2 = z1 + stride, *z3 = z2 + stride;
            for (int tx = 0; tx < TW; tx++) {
                float a = r[2 * tx], b = r[2 * tx + 1];
                z0[tx] = a;
                z1[tx] = a + b;
                z2[tx] = a - b;
                z3[tx] = -b;
            }
        }
    }
}

/* V[ξ][c][t] = (Bᵀ d B)[ξ] for every 4×4 input block d of the chunk; one
 * row of V holds n·tiles blocks, T in all. */
static void transform_inputs(float *V, float *pp, float *rows, const float *in, int n, const Plan *p)
{
    const size_t T = (size_t)n * p->tiles, CT = (size_t)p->C * T;
    for (int c = 0; c < p->C; c++)
        for (int b = 0; b < n; b++) {
            pad_plane(pp, in + ((size_t)b * p->C + c) * p->H * p->W, p);
            input_tf_plane(V + (size_t)c * T + (size_t)b * p->tiles, CT, rows, pp, p);
        }
}

/* din[b][c] = Σ over the blocks that cover each pixel of (B dV Bᵀ). */
static void scatter_input_grads(float *din, float *pp, float *rows, const float *dV, int n, const Plan *p)
{
    const size_t T = (size_t)n * p->tiles, CT = (size_t)p->C * T;
    for (int c = 0; c < p->C; c++)
        for (int b = 0; b < n; b++) {
            memset(pp, 0, (size_t)p->pad_h * p->pad_w * sizeof *pp);
            input_tf_plane_adjoint(pp, rows, dV + (size_t)c * T + (size_t)b * p->tiles, CT, p);
            float *plane = din + ((size_t)b * p->C + c) * p->H * p->W;
            for (int y = 0; y < p->H; y++)
                memcpy(plane + (size_t)y * p->W, pp + (size_t)(y + 1) * p->pad_w + 1,
                       (size_t)p->W * sizeof *pp);
        }
}

/* out[b][k] = Aᵀ M A + bias, each block clipped to the image. */
static void transform_outputs(float *out, float *rows, const float *M, const float *bias, int n, const Plan *p)
{
    const size_t T = (size_t)n * p->tiles, KT = (size_t)p->K * T;
    for (int k = 0; k < p->K; k++)
        for (int b = 0; b < n; b++)
            output_tf_plane(out + ((size_t)b * p->K + k) * p->H * p->W, rows,
                            M + (size_t)k * T + (size_t)b * p->tiles, KT, bias[k], p);
}

/* Z[ξ][k][t] = (A e Aᵀ)[ξ] for the output gradient's blocks. */
static void transform_output_grads(float *Z, float *rows, const float *dout, int n, const Plan *p)
{
    const size_t T = (size_t)n * p->tiles, KT = (size_t)p->K * T;
    for (int k = 0; k < p->K; k++)
        for (int b = 0; b < n; b++)
            output_tf_plane_adjoint(Z + (size_t)k * T + (size_t)b * p->tiles, KT, rows,
                                    dout + ((size_t)b * p->K + k) * p->H * p->W, p);
}

/* ------------------------------------------------------------- the passes */

void winograd_conv_forward(float *out, float *ws, const float *in, const float *w, const float *U,
                           const float *b, const ConvShape *s, int B)
{
    const Plan p = make_plan(s, B);
    const size_t KC = (size_t)p.K * p.C, Tmax = (size_t)p.chunk * p.tiles;
    const size_t in_img = (size_t)p.C * p.H * p.W, out_img = (size_t)p.K * p.H * p.W;
    float *V = ws + 2 * XI * KC, *M = V + XI * (size_t)p.C * Tmax, *pp = M + XI * (size_t)p.K * Tmax;
    float *rows = pp + (size_t)p.pad_h * p.pad_w;
    if (!U) {
        transform_filters(ws, w, &p);
        U = ws;
    }
    for (int b0 = 0; b0 < B; b0 += p.chunk) {
        const int n = B - b0 < p.chunk ? B - b0 : p.chunk, T = n * p.tiles;
        transform_inputs(V, pp, rows, in + b0 * in_img, n, &p);
        for (int xi = 0; xi < XI; xi++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, p.K, T, p.C, 1.0f, U + xi * KC, p.C,
                        V + (size_t)xi * p.C * T, T, 0.0f, M + (size_t)xi * p.K * T, T);
        transform_outputs(out + b0 * out_img, rows, M, b, n, &p);
    }
}

void winograd_conv_backward(float *din, float *dw, float *db, float *ws, const float *dout,
                            const float *in, const float *w, const ConvShape *s, int B)
{
    const Plan p = make_plan(s, B);
    const size_t KC = (size_t)p.K * p.C, Tmax = (size_t)p.chunk * p.tiles, HW = (size_t)p.H * p.W;
    const size_t in_img = (size_t)p.C * HW, out_img = (size_t)p.K * HW;
    float *U = ws, *dU = U + XI * KC, *V = dU + XI * KC, *Z = V + XI * (size_t)p.C * Tmax,
          *pp = Z + XI * (size_t)p.K * Tmax, *rows = pp + (size_t)p.pad_h * p.pad_w;
    for (int bi = 0; bi < B; bi++)
        for (int k = 0; k < p.K; k++)
            db[k] += sum_floats(dout + bi * out_img + (size_t)k * HW, HW);
    if (din) transform_filters(U, w, &p);
    memset(dU, 0, XI * KC * sizeof *dU);
    for (int b0 = 0; b0 < B; b0 += p.chunk) {
        const int n = B - b0 < p.chunk ? B - b0 : p.chunk, T = n * p.tiles;
        transform_inputs(V, pp, rows, in + b0 * in_img, n, &p);
        transform_output_grads(Z, rows, dout + b0 * out_img, n, &p);
        for (int xi = 0; xi < XI; xi++) {
            const float *Zx = Z + (size_t)xi * p.K * T;
            float *Vx = V + (size_t)xi * p.C * T;
            /* dU[ξ] (K×C) += Z[ξ] (K×T) · V[ξ]ᵀ (T×C) */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, p.K, p.C, T, 1.0f, Zx, T, Vx, T, 1.0f,
                        dU + xi * KC, p.C);
            /* dV[ξ] (C×T) = U[ξ]ᵀ (C×K) · Z[ξ] (K×T), over V[ξ] now it is used */
            if (din)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, p.C, T, p.K, 1.0f, U + xi * KC, p.C,
                            Zx, T, 0.0f, Vx, T);
        }
        if (din) scatter_input_grads(din + b0 * in_img, pp, rows, V, n, &p);
    }
    add_filter_grads(dw, dU, &p);
}
