/* winograd.c — F(2×2, 3×3) convolution; winograd.h says what and why.
 *
 * Layouts, for a chunk of n images cut into T = n·tiles_h·tiles_w blocks
 * ("tiles", 2×2 of output each), ξ = 0..15 the transform-domain position:
 *   U[ξ][K][C]  the filters,             U = G g Gᵀ
 *   V[ξ][T][C]  the input blocks,        V = Bᵀ d B
 *   M[ξ][T][K]  their products (forward), or the output gradient taken to
 *               the transform domain (backward), Z = A e Aᵀ
 * so that each ξ is one GEMM, M[ξ] = V[ξ]·U[ξ]ᵀ. Channels are innermost
 * so that every transform is a loop over channels at unit stride, which
 * vectorises at any image size (a row of tiles is only 4 wide at 7×7).
 * The activations are NCHW, so a chunk's input is first copied to
 * channels-innermost order with a border of zeros (X, NHWC), and the
 * output is made in that order (Y) and copied back; blocks that overhang
 * an odd-sized image are clipped there, and their gradient is zero. */
#include "genlab/winograd.h"
#include "fastmath.h"

#include <cblas.h>
#include <string.h>

#define XI 16 /* positions in the 4×4 transform domain */

/* A chunk is at least this many tiles (a narrow GEMM wastes its packing),
 * and otherwise at most about this many floats of workspace. */
#define WINO_MIN_TILES 128
#define WINO_CHUNK_FLOATS (192 * 1024)

typedef struct {
    int C, K, H, W;
    int tiles_h, tiles_w, tiles; /* per image */
    int pad_h, pad_w;            /* X: a zero row/column before the image, enough after */
    int chunk;                   /* images per chunk */
} Plan;

bool winograd_applies(const ConvShape *s)
{
    return s->k == 3 && s->stride == 1 && s->pad == 1 && s->out_h == s->in_h && s->out_w == s->in_w;
}

/* Floats per image of V and M, X, and Y. */
static size_t per_image_floats(const Plan *p)
{
    return (size_t)XI * (p->C + p->K) * p->tiles + (size_t)p->pad_h * p->pad_w * p->C +
           (size_t)4 * p->tiles * p->K;
}

static Plan make_plan(const ConvShape *s, int B)
{
    Plan p = {.C = s->in_c, .K = s->out_c, .H = s->in_h, .W = s->in_w};
    p.tiles_h = (p.H + 1) / 2;
    p.tiles_w = (p.W + 1) / 2;
    p.tiles = p.tiles_h * p.tiles_w;
    p.pad_h = 2 * p.tiles_h + 2;
    p.pad_w = 2 * p.tiles_w + 2;
    size_t g = WINO_CHUNK_FLOATS / per_image_floats(&p);
    size_t min_g = (WINO_MIN_TILES + (size_t)p.tiles - 1) / (size_t)p.tiles;
    if (g < min_g) g = min_g;
    if (g > (size_t)B) g = (size_t)B;
    p.chunk = g < 1 ? 1 : (int)g;
    return p;
}

size_t winograd_workspace_floats(const ConvShape *s, int B)
{
    Plan p = make_plan(s, B);
    /* U and dU, then a chunk's V (reused for dV), M, X and Y */
    return 2 * (size_t)XI * p.K * p.C + (size_t)p.chunk * per_image_floats(&p);
}

/* ------------------------------------------------------------ transforms
 * Each applies a 1-D transform to the columns of a small block, then to
 * its rows. */

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

/* ------------------------------------------------------ layout changes */

/* dst[j·ldd + i] = src[i·lds + j] for i < rows, j < cols, in 8×8 blocks so
 * that both sides move through cache a line at a time. */
static void transpose(float *restrict dst, size_t ldd, const float *restrict src, size_t lds, int rows,
                      int cols)
{
    for (int i0 = 0; i0 < rows; i0 += 8)
        for (int j0 = 0; j0 < cols; j0 += 8) {
            const int i1 = i0 + 8 < rows ? i0 + 8 : rows, j1 = j0 + 8 < cols ? j0 + 8 : cols;
            for (int j = j0; j < j1; j++)
                for (int i = i0; i < i1; i++) dst[(size_t)j * ldd + i] = src[(size_t)i * lds + j];
        }
}

/* X[b][y + 1][x + 1][c] = in[b][c][y][x], zero elsewhere. */
static void input_to_x(float *X, const float *in, int n, const Plan *p)
{
    const size_t HW = (size_t)p->H * p->W, row = (size_t)p->pad_w * p->C, img = (size_t)p->pad_h * row;
    memset(X, 0, (size_t)n * img * sizeof *X);
    for (int b = 0; b < n; b++)
        for (int y = 0; y < p->H; y++)
            transpose(X + b * img + (y + 1) * row + p->C, p->C, in + (b * p->C) * HW + (size_t)y * p->W, HW,
                      p->C, p->W);
}

/* din[b][c][y][x] = X[b][y + 1][x + 1][c]: the inverse of input_to_x. */
static void x_to_input(float *din, const float *X, int n, const Plan *p)
{
    const size_t HW = (size_t)p->H * p->W, row = (size_t)p->pad_w * p->C, img = (size_t)p->pad_h * row;
    for (int b = 0; b < n; b++)
        for (int y = 0; y < p->H; y++)
            transpose(din + (b * p->C) * HW + (size_t)y * p->W, HW, X + b * img + (y + 1) * row + p->C, p->C,
                      p->W, p->C);
}

/* Y[b][y][x][k] (2·tiles_h × 2·tiles_w pixels) from or to out[b][k][y][x]:
 * to NCHW the overhang is dropped, from NCHW it is zero. */
static void y_to_output(float *out, const float *Y, int n, const Plan *p)
{
    const size_t HW = (size_t)p->H * p->W, row = (size_t)2 * p->tiles_w * p->K, img = 2 * p->tiles_h * row;
    for (int b = 0; b < n; b++)
        for (int y = 0; y < p->H; y++)
            transpose(out + (b * p->K) * HW + (size_t)y * p->W, HW, Y + b * img + y * row, p->K, p->W, p->K);
}

static void output_to_y(float *Y, const float *dout, int n, const Plan *p)
{
    const size_t HW = (size_t)p->H * p->W, row = (size_t)2 * p->tiles_w * p->K, img = 2 * p->tiles_h * row;
    memset(Y, 0, (size_t)n * img * sizeof *Y);
    for (int b = 0; b < n; b++)
        for (int y = 0; y < p->H; y++)
            transpose(Y + b * img + y * row, p->K, dout + (b * p->K) * HW + (size_t)y * p->W, HW, p->K, p->W);
}

/* ------------------------------------------------------- block transforms
 * One block at a time, each a loop over channels: d points at the block's
 * top-left pixel in X (rows `row` floats apart, pixels C apart), position
 * ξ of the block in V, M or Z is `xi_stride` floats from the last. */

/* V = Bᵀ d B, with Bᵀ·x = (x0 − x2, x1 + x2, x2 − x1, x1 − x3). */
static void input_block(float *restrict v, size_t xi_stride, const float *restrict d, size_t row, int C)
{
#pragma omp simd
    for (int c = 0; c < C; c++) {
        float x[4][4], t[4][4];
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++) x[i][j] = d[i * row + (size_t)j * C + c];
        for (int j = 0; j < 4; j++) {
            t[0][j] = x[0][j] - x[2][j];
            t[1][j] = x[1][j] + x[2][j];
            t[2][j] = x[2][j] - x[1][j];
            t[3][j] = x[1][j] - x[3][j];
        }
        for (int i = 0; i < 4; i++) {
            v[(size_t)(4 * i + 0) * xi_stride + c] = t[i][0] - t[i][2];
            v[(size_t)(4 * i + 1) * xi_stride + c] = t[i][1] + t[i][2];
            v[(size_t)(4 * i + 2) * xi_stride + c] = t[i][2] - t[i][1];
            v[(size_t)(4 * i + 3) * xi_stride + c] = t[i][1] - t[i][3];
        }
    }
}

/* The adjoint: d += B v Bᵀ, with B·y = (y0, y1 − y2 + y3, y1 + y2 − y0, −y3). */
static void input_block_adjoint(float *restrict d, size_t row, const float *restrict v, size_t xi_stride, int C)
{
#pragma omp simd
    for (int c = 0; c < C; c++) {
        float y[4][4], t[4][4];
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++) y[i][j] = v[(size_t)(4 * i + j) * xi_stride + c];
        for (int j = 0; j < 4; j++) {
            t[0][j] = y[0][j];
            t[1][j] = y[1][j] - y[2][j] + y[3][j];
            t[2][j] = y[1][j] + y[2][j] - y[0][j];
            t[3][j] = -y[3][j];
        }
        for (int i = 0; i < 4; i++) {
            float *r = d + i * row + c;
            r[0] += t[i][0];
            r[(size_t)C] += t[i][1] - t[i][2] + t[i][3];
            r[(size_t)2 * C] += t[i][1] + t[i][2] - t[i][0];
            r[(size_t)3 * C] -= t[i][3];
        }
    }
}

/* y = Aᵀ m A + bias, 2×2 pixels at y (rows `row` apart, pixels K apart),
 * with Aᵀ·m = (m0 + m1 + m2, m1 − m2 − m3). */
static void output_block(float *restrict y, size_t row, const float *restrict m, size_t xi_stride,
                         const float *restrict bias, int K)
{
#pragma omp simd
    for (int k = 0; k < K; k++) {
        float a[4][4], s[2][4];
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++) a[i][j] = m[(size_t)(4 * i + j) * xi_stride + k];
        for (int j = 0; j < 4; j++) {
            s[0][j] = a[0][j] + a[1][j] + a[2][j];
            s[1][j] = a[1][j] - a[2][j] - a[3][j];
        }
        for (int i = 0; i < 2; i++) {
            y[i * row + k] = s[i][0] + s[i][1] + s[i][2] + bias[k];
            y[i * row + (size_t)K + k] = s[i][1] - s[i][2] - s[i][3] + bias[k];
        }
    }
}

/* The adjoint: z = A e Aᵀ for the 2×2 of gradient e, A·e = (a, a + b, a − b, −b). */
static void output_block_adjoint(float *restrict z, size_t xi_stride, const float *restrict e, size_t row, int K)
{
#pragma omp simd
    for (int k = 0; k < K; k++) {
        float g[2][2], t[4][2];
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 2; j++) g[i][j] = e[i * row + (size_t)j * K + k];
        for (int j = 0; j < 2; j++) {
            t[0][j] = g[0][j];
            t[1][j] = g[0][j] + g[1][j];
            t[2][j] = g[0][j] - g[1][j];
            t[3][j] = -g[1][j];
        }
        for (int i = 0; i < 4; i++) {
            z[(size_t)(4 * i + 0) * xi_stride + k] = t[i][0];
            z[(size_t)(4 * i + 1) * xi_stride + k] = t[i][0] + t[i][1];
            z[(size_t)(4 * i + 2) * xi_stride + k] = t[i][0] - t[i][1];
            z[(size_t)(4 * i + 3) * xi_stride + k] = -t[i][1];
        }
    }
}

/* ------------------------------------------------------- over the chunk */

/* The block of tile (b, ty, tx): its index t in V/M, and its top-left in X
 * or Y. */
static size_t tile_index(int b, int ty, int tx, const Plan *p)
{
    return ((size_t)b * p->tiles_h + ty) * p->tiles_w + tx;
}

static void transform_inputs(float *V, const float *X, int n, const Plan *p)
{
    const size_t T = (size_t)n * p->tiles, CT = (size_t)p->C * T, row = (size_t)p->pad_w * p->C;
    for (int b = 0; b < n; b++)
        for (int ty = 0; ty < p->tiles_h; ty++)
            for (int tx = 0; tx < p->tiles_w; tx++) {
                const float *d = X + ((size_t)b * p->pad_h + 2 * ty) * row + (size_t)2 * tx * p->C;
                input_block(V + tile_index(b, ty, tx, p) * p->C, CT, d, row, p->C);
            }
}

/* X (zeroed by the caller) += every block's B dV Bᵀ. */
static void scatter_input_grads(float *X, const float *dV, int n, const Plan *p)
{
    const size_t T = (size_t)n * p->tiles, CT = (size_t)p->C * T, row = (size_t)p->pad_w * p->C;
    for (int b = 0; b < n; b++)
        for (int ty = 0; ty < p->tiles_h; ty++)
            for (int tx = 0; tx < p->tiles_w; tx++) {
                float *d = X + ((size_t)b * p->pad_h + 2 * ty) * row + (size_t)2 * tx * p->C;
                input_block_adjoint(d, row, dV + tile_index(b, ty, tx, p) * p->C, CT, p->C);
            }
}

static void transform_outputs(float *Y, const float *M, const float *bias, int n, const Plan *p)
{
    const size_t T = (size_t)n * p->tiles, KT = (size_t)p->K * T, row = (size_t)2 * p->tiles_w * p->K;
    for (int b = 0; b < n; b++)
        for (int ty = 0; ty < p->tiles_h; ty++)
            for (int tx = 0; tx < p->tiles_w; tx++) {
                float *y = Y + ((size_t)b * 2 * p->tiles_h + 2 * ty) * row + (size_t)2 * tx * p->K;
                output_block(y, row, M + tile_index(b, ty, tx, p) * p->K, KT, bias, p->K);
            }
}

static void transform_output_grads(float *Z, const float *Y, int n, const Plan *p)
{
    const size_t T = (size_t)n * p->tiles, KT = (size_t)p->K * T, row = (size_t)2 * p->tiles_w * p->K;
    for (int b = 0; b < n; b++)
        for (int ty = 0; ty < p->tiles_h; ty++)
            for (int tx = 0; tx < p->tiles_w; tx++) {
                const float *e = Y + ((size_t)b * 2 * p->tiles_h + 2 * ty) * row + (size_t)2 * tx * p->K;
                output_block_adjoint(Z + tile_index(b, ty, tx, p) * p->K, KT, e, row, p->K);
            }
}

/* ------------------------------------------------------------- the passes */

typedef struct {
    float *U, *dU, *V, *M, *X, *Y;
} Buffers;

static Buffers buffers(float *ws, const Plan *p)
{
    const size_t KC = (size_t)p->K * p->C, T = (size_t)p->chunk * p->tiles;
    Buffers b = {.U = ws};
    b.dU = b.U + XI * KC;
    b.V = b.dU + XI * KC;
    b.M = b.V + XI * T * p->C;
    b.X = b.M + XI * T * p->K;
    b.Y = b.X + (size_t)p->chunk * p->pad_h * p->pad_w * p->C;
    return b;
}

void winograd_conv_forward(float *out, float *ws, const float *in, const float *w, const float *U,
                           const float *b, const ConvShape *s, int B)
{
    const Plan p = make_plan(s, B);
    const size_t KC = (size_t)p.K * p.C, in_img = (size_t)p.C * p.H * p.W, out_img = (size_t)p.K * p.H * p.W;
    Buffers w_ = buffers(ws, &p);
    if (!U) {
        transform_filters(w_.U, w, &p);
        U = w_.U;
    }
    for (int b0 = 0; b0 < B; b0 += p.chunk) {
        const int n = B - b0 < p.chunk ? B - b0 : p.chunk, T = n * p.tiles;
        input_to_x(w_.X, in + b0 * in_img, n, &p);
        transform_inputs(w_.V, w_.X, n, &p);
        /* M[ξ] (T×K) = V[ξ] (T×C) · U[ξ]ᵀ (C×K) */
        for (int xi = 0; xi < XI; xi++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, p.K, p.C, 1.0f, w_.V + (size_t)xi * T * p.C,
                        p.C, U + xi * KC, p.C, 0.0f, w_.M + (size_t)xi * T * p.K, p.K);
        transform_outputs(w_.Y, w_.M, b, n, &p);
        y_to_output(out + b0 * out_img, w_.Y, n, &p);
    }
}

void winograd_conv_backward(float *din, float *dw, float *db, float *ws, const float *dout,
                            const float *in, const float *w, const ConvShape *s, int B)
{
    const Plan p = make_plan(s, B);
    const size_t KC = (size_t)p.K * p.C, HW = (size_t)p.H * p.W;
    const size_t in_img = (size_t)p.C * HW, out_img = (size_t)p.K * HW;
    Buffers w_ = buffers(ws, &p);
    for (int bi = 0; bi < B; bi++)
        for (int k = 0; k < p.K; k++) db[k] += sum_floats(dout + bi * out_img + (size_t)k * HW, HW);
    if (din) transform_filters(w_.U, w, &p);
    memset(w_.dU, 0, XI * KC * sizeof *w_.dU);
    for (int b0 = 0; b0 < B; b0 += p.chunk) {
        const int n = B - b0 < p.chunk ? B - b0 : p.chunk, T = n * p.tiles;
        input_to_x(w_.X, in + b0 * in_img, n, &p);
        transform_inputs(w_.V, w_.X, n, &p);
        output_to_y(w_.Y, dout + b0 * out_img, n, &p);
        transform_output_grads(w_.M, w_.Y, n, &p);
        for (int xi = 0; xi < XI; xi++) {
            const float *Z = w_.M + (size_t)xi * T * p.K;
            float *V = w_.V + (size_t)xi * T * p.C;
            /* dU[ξ] (K×C) += Z[ξ]ᵀ (K×T) · V[ξ] (T×C) */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, p.K, p.C, T, 1.0f, Z, p.K, V, p.C, 1.0f,
                        w_.dU + xi * KC, p.C);
            /* dV[ξ] (T×C) = Z[ξ] (T×K) · U[ξ] (K×C), over V[ξ] now it is used */
            if (din)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, p.C, p.K, 1.0f, Z, p.K,
                            w_.U + xi * KC, p.C, 0.0f, V, p.C);
        }
        if (din) {
            memset(w_.X, 0, (size_t)n * p.pad_h * p.pad_w * p.C * sizeof *w_.X);
            scatter_input_grads(w_.X, w_.V, n, &p);
            x_to_input(din + b0 * in_img, w_.X, n, &p);
        }
    }
    add_filter_grads(dw, w_.dU, &p);
}
