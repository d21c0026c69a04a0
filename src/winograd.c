/* winograd.c — F(4×4, 3×3) convolution; winograd.h says what and why.
 *
 * Layouts, for a chunk of n images cut into T = n·tiles_h·tiles_w blocks
 * ("tiles", 4×4 of output each), ξ = 0..35 the transform-domain position:
 *   U[ξ][K][C]  the filters,             U = G g Gᵀ
 *   V[ξ][T][C]  the input blocks,        V = Bᵀ d B
 *   M[ξ][T][K]  their products (forward), or the output gradient taken to
 *               the transform domain (backward), Z = A e Aᵀ
 * so that each ξ is one GEMM, M[ξ] = V[ξ]·U[ξ]ᵀ: forward's by a kernel of
 * this file on filters packed for it, backward's by OpenBLAS. Channels
 * are innermost so that every transform is a loop over channels at unit
 * stride, which vectorises at any image size (a row of tiles is only 2
 * wide at 7×7).
 * The activations are NCHW, so a chunk's input is first copied to
 * channels-innermost order with a border of zeros (X, NHWC), and the
 * output is made in that order (Y) and copied back; blocks that overhang
 * the image (sides that are not multiples of 4) are clipped there, and
 * their gradient is zero. */
#include "genlab/winograd.h"
#include "fastmath.h"

#include <cblas.h>
#include <string.h>

/* F(4×4, 3×3): each block is 4×4 pixels of output from 6×6 of input. */
#define TILE 4
#define ALPHA (TILE + 2)
#define XI (ALPHA * ALPHA) /* positions in the transform domain */

/* A chunk is at least this many tiles (a narrow GEMM reads its filters for
 * little work), and otherwise at most about this many floats of workspace. */
#define WINO_MIN_TILES 64
#define WINO_CHUNK_FLOATS (256 * 1024)

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
           (size_t)TILE * TILE * p->tiles * p->K;
}

static Plan make_plan(const ConvShape *s, int B)
{
    Plan p = {.C = s->in_c, .K = s->out_c, .H = s->in_h, .W = s->in_w};
    p.tiles_h = (p.H + TILE - 1) / TILE;
    p.tiles_w = (p.W + TILE - 1) / TILE;
    p.tiles = p.tiles_h * p.tiles_w;
    p.pad_h = TILE * p.tiles_h + 2;
    p.pad_w = TILE * p.tiles_w + 2;
    size_t g = WINO_CHUNK_FLOATS / per_image_floats(&p);
    size_t min_g = (WINO_MIN_TILES + (size_t)p.tiles - 1) / (size_t)p.tiles;
    if (g < min_g) g = min_g;
    if (g > (size_t)B) g = (size_t)B;
    p.chunk = g < 1 ? 1 : (int)g;
    return p;
}

/* ----------------------------------------------------------------- lanes
 * Lanes is a GCC/Clang vector of 8 floats (one AVX register, two SSE
 * ones). Loads and stores go through memcpy, which compiles to one
 * unaligned instruction when n is the constant 8, and handles the last,
 * partial group of a channel count that is not a multiple of 8. */

#define LANES 8
typedef float Lanes __attribute__((vector_size(LANES * sizeof(float))));

static inline __attribute__((always_inline)) Lanes load_lanes(const float *p, int n)
{
    Lanes v = {0};
    memcpy(&v, p, (size_t)n * sizeof(float));
    return v;
}

static inline __attribute__((always_inline)) void store_lanes(float *p, Lanes v, int n)
{
    memcpy(p, &v, (size_t)n * sizeof(float));
}

/* ------------------------------------------------------------ transforms
 * Lavin & Gray's matrices for F(4, 3), interpolating at 0, ±1, ±2 and ∞.
 * Each 2-D transform applies a 1-D one to the columns of a block, then to
 * its rows; the adjoints (for backward) are the transposed matrices. */

/* Bᵀ·x, input side, 6 → 6 */
static inline __attribute__((always_inline)) void bt6(Lanes y[6], const Lanes x[6])
{
    y[0] = 4.0f * x[0] - 5.0f * x[2] + x[4];
    y[1] = -4.0f * (x[1] + x[2]) + x[3] + x[4];
    y[2] = 4.0f * (x[1] - x[2]) - x[3] + x[4];
    y[3] = -2.0f * (x[1] - x[3]) - x[2] + x[4];
    y[4] = 2.0f * (x[1] - x[3]) - x[2] + x[4];
    y[5] = 4.0f * x[1] - 5.0f * x[3] + x[5];
}

/* B·y, its adjoint */
static inline __attribute__((always_inline)) void b6(Lanes x[6], const Lanes y[6])
{
    x[0] = 4.0f * y[0];
    x[1] = 4.0f * (y[2] - y[1] + y[5]) + 2.0f * (y[4] - y[3]);
    x[2] = -5.0f * y[0] - 4.0f * (y[1] + y[2]) - y[3] - y[4];
    x[3] = y[1] - y[2] + 2.0f * (y[3] - y[4]) - 5.0f * y[5];
    x[4] = y[0] + y[1] + y[2] + y[3] + y[4];
    x[5] = y[5];
}

/* Aᵀ·m, output side, 6 → 4 */
static inline __attribute__((always_inline)) void at4(Lanes y[4], const Lanes m[6])
{
    y[0] = m[0] + m[1] + m[2] + m[3] + m[4];
    y[1] = m[1] - m[2] + 2.0f * (m[3] - m[4]);
    y[2] = m[1] + m[2] + 4.0f * (m[3] + m[4]);
    y[3] = m[1] - m[2] + 8.0f * (m[3] - m[4]) + m[5];
}

/* A·e, its adjoint, 4 → 6 */
static inline __attribute__((always_inline)) void a6(Lanes z[6], const Lanes e[4])
{
    z[0] = e[0];
    z[1] = e[0] + e[1] + e[2] + e[3];
    z[2] = e[0] - e[1] + e[2] - e[3];
    z[3] = e[0] + 2.0f * e[1] + 4.0f * e[2] + 8.0f * e[3];
    z[4] = e[0] - 2.0f * e[1] + 4.0f * e[2] - 8.0f * e[3];
    z[5] = e[3];
}

/* G·g, filter side, 3 → 6 (once per filter, not per block: plain floats) */
static void g6(float u[6], const float g[3])
{
    u[0] = g[0] / 4.0f;
    u[1] = -(g[0] + g[1] + g[2]) / 6.0f;
    u[2] = -(g[0] - g[1] + g[2]) / 6.0f;
    u[3] = g[0] / 24.0f + g[1] / 12.0f + g[2] / 6.0f;
    u[4] = g[0] / 24.0f - g[1] / 12.0f + g[2] / 6.0f;
    u[5] = g[2];
}

/* Gᵀ·u, its adjoint, 6 → 3 */
static void gt3(float g[3], const float u[6])
{
    g[0] = u[0] / 4.0f - (u[1] + u[2]) / 6.0f + (u[3] + u[4]) / 24.0f;
    g[1] = (u[2] - u[1]) / 6.0f + (u[3] - u[4]) / 12.0f;
    g[2] = (u[3] + u[4] - u[1] - u[2]) / 6.0f + u[5];
}

/* u (6×6) = G g Gᵀ for a 3×3 g */
static void filter_tf(float u[XI], const float g[9])
{
    float t[ALPHA][3]; /* G g */
    for (int j = 0; j < 3; j++) {
        float col[3] = {g[j], g[3 + j], g[6 + j]}, out[ALPHA];
        g6(out, col);
        for (int i = 0; i < ALPHA; i++) t[i][j] = out[i];
    }
    for (int i = 0; i < ALPHA; i++) g6(u + ALPHA * i, t[i]);
}

/* g (3×3) = Gᵀ u G, the adjoint */
static void filter_tf_adjoint(float g[9], const float u[XI])
{
    float t[3][ALPHA]; /* Gᵀ u */
    for (int j = 0; j < ALPHA; j++) {
        float col[ALPHA], out[3];
        for (int i = 0; i < ALPHA; i++) col[i] = u[ALPHA * i + j];
        gt3(out, col);
        for (int i = 0; i < 3; i++) t[i][j] = out[i];
    }
    for (int i = 0; i < 3; i++) gt3(g + 3 * i, t[i]);
}

/* --------------------------------------------------------------- filters */

/* U[ξ][k][c] = (G w[k][c] Gᵀ)[ξ], for backward's GEMMs */
static void transform_filters(float *U, const float *w, const Plan *p)
{
    const size_t KC = (size_t)p->K * p->C;
    for (size_t kc = 0; kc < KC; kc++) {
        float u[XI];
        filter_tf(u, w + 9 * kc);
        for (int xi = 0; xi < XI; xi++) U[xi * KC + kc] = u[xi];
    }
}

/* The same filters packed for forward's GEMM (below): blocks of KB output
 * channels, Up[ξ][k / KB][c][k % KB], zero past the last channel. */
#define KB (2 * LANES)

static int k_blocks(int K) { return (K + KB - 1) / KB; }

static size_t packed_filter_floats(const Plan *p) { return (size_t)XI * k_blocks(p->K) * KB * p->C; }

size_t winograd_workspace_floats(const ConvShape *s, int B)
{
    Plan p = make_plan(s, B);
    /* U (packed or plain) and dU, then a chunk's V (reused for dV), M, X and Y */
    return packed_filter_floats(&p) + (size_t)XI * p.K * p.C + (size_t)p.chunk * per_image_floats(&p);
}

static void transform_filters_packed(float *Up, const float *w, const Plan *p)
{
    const size_t per_xi = (size_t)k_blocks(p->K) * KB * p->C;
    memset(Up, 0, packed_filter_floats(p) * sizeof *Up);
    for (int k = 0; k < p->K; k++)
        for (int c = 0; c < p->C; c++) {
            float u[XI];
            filter_tf(u, w + 9 * ((size_t)k * p->C + c));
            const size_t at = ((size_t)(k / KB) * p->C + c) * KB + k % KB;
            for (int xi = 0; xi < XI; xi++) Up[xi * per_xi + at] = u[xi];
        }
}

size_t winograd_filter_floats(const ConvShape *s)
{
    const Plan p = make_plan(s, 1);
    return packed_filter_floats(&p);
}

void winograd_transform_filters(float *U, const float *w, const ConvShape *s)
{
    const Plan p = make_plan(s, 1);
    transform_filters_packed(U, w, &p);
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

/* r[i][j] ↔ r[j][i] in registers: pairs of lanes, then pairs of pairs,
 * then halves (the usual unpack-shuffle-permute ladder). */
static inline __attribute__((always_inline)) void transpose8(Lanes r[8])
{
    Lanes t[8], u[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = __builtin_shufflevector(r[i], r[i + 1], 0, 8, 1, 9, 4, 12, 5, 13);
        t[i + 1] = __builtin_shufflevector(r[i], r[i + 1], 2, 10, 3, 11, 6, 14, 7, 15);
    }
    for (int i = 0; i < 8; i += 4)
        for (int h = 0; h < 2; h++) {
            u[i + 2 * h] = __builtin_shufflevector(t[i + h], t[i + h + 2], 0, 1, 8, 9, 4, 5, 12, 13);
            u[i + 2 * h + 1] = __builtin_shufflevector(t[i + h], t[i + h + 2], 2, 3, 10, 11, 6, 7, 14, 15);
        }
    /* u[0..3] hold columns (0,4), (1,5), (2,6), (3,7) of rows 0-3; u[4..7] of rows 4-7 */
    for (int j = 0; j < 4; j++) {
        r[j] = __builtin_shufflevector(u[j], u[j + 4], 0, 1, 2, 3, 8, 9, 10, 11);
        r[j + 4] = __builtin_shufflevector(u[j], u[j + 4], 4, 5, 6, 7, 12, 13, 14, 15);
    }
}

/* One image between NCHW planes [C][H·W] and pixel-major order, where
 * pixel (y, x)'s C floats sit at pix + (y + pad)·row + (x + pad)·C. In
 * blocks of 8 channels × 8 pixels, transposed in registers; pixels run on
 * across image rows, so a 7-wide row leaves no ragged blocks. */

static void pixel_offsets(size_t *at, int p0, int n, size_t row, int pad, int C, int W)
{
    for (int j = 0; j < n; j++) at[j] = (size_t)((p0 + j) / W + pad) * row + (size_t)((p0 + j) % W + pad) * C;
}

static void planes_to_pixels(float *restrict pix, size_t row, int pad, const float *restrict planes, int C,
                             int H, int W)
{
    const int HW = H * W;
    for (int p0 = 0; p0 < HW; p0 += LANES) {
        const int np = HW - p0 < LANES ? HW - p0 : LANES;
        size_t at[LANES];
        pixel_offsets(at, p0, np, row, pad, C, W);
        int c0 = 0;
        if (np == LANES)
            for (; c0 + LANES <= C; c0 += LANES) {
                Lanes r[LANES];
                for (int i = 0; i < LANES; i++) r[i] = load_lanes(planes + (size_t)(c0 + i) * HW + p0, LANES);
                transpose8(r);
                for (int j = 0; j < LANES; j++) store_lanes(pix + at[j] + c0, r[j], LANES);
            }
        for (int c = c0; c < C; c++)
            for (int j = 0; j < np; j++) pix[at[j] + c] = planes[(size_t)c * HW + p0 + j];
    }
}

static void pixels_to_planes(float *restrict planes, const float *restrict pix, size_t row, int pad, int C,
                             int H, int W)
{
    const int HW = H * W;
    for (int p0 = 0; p0 < HW; p0 += LANES) {
        const int np = HW - p0 < LANES ? HW - p0 : LANES;
        size_t at[LANES];
        pixel_offsets(at, p0, np, row, pad, C, W);
        int c0 = 0;
        if (np == LANES)
            for (; c0 + LANES <= C; c0 += LANES) {
                Lanes r[LANES];
                for (int j = 0; j < LANES; j++) r[j] = load_lanes(pix + at[j] + c0, LANES);
                transpose8(r);
                for (int i = 0; i < LANES; i++) store_lanes(planes + (size_t)(c0 + i) * HW + p0, r[i], LANES);
            }
        for (int c = c0; c < C; c++)
            for (int j = 0; j < np; j++) planes[(size_t)c * HW + p0 + j] = pix[at[j] + c];
    }
}

/* X[b][y + 1][x + 1][c] = in[b][c][y][x], zero elsewhere (the border is
 * zeroed on its own: the interior is written whole). */
static void input_to_x(float *X, const float *in, int n, const Plan *p)
{
    const size_t HW = (size_t)p->H * p->W, px = (size_t)p->C, row = (size_t)p->pad_w * px,
                 img = (size_t)p->pad_h * row;
    for (int b = 0; b < n; b++) {
        float *x = X + b * img;
        memset(x, 0, row * sizeof *x);
        for (int y = 1; y <= p->H; y++) {
            memset(x + y * row, 0, px * sizeof *x);
            memset(x + y * row + (p->W + 1) * px, 0, (p->pad_w - p->W - 1) * px * sizeof *x);
        }
        memset(x + (p->H + 1) * row, 0, (p->pad_h - p->H - 1) * row * sizeof *x);
        planes_to_pixels(x, row, 1, in + b * p->C * HW, p->C, p->H, p->W);
    }
}

/* din[b][c][y][x] = X[b][y + 1][x + 1][c]: the inverse of input_to_x. */
static void x_to_input(float *din, const float *X, int n, const Plan *p)
{
    const size_t HW = (size_t)p->H * p->W, row = (size_t)p->pad_w * p->C, img = (size_t)p->pad_h * row;
    for (int b = 0; b < n; b++) pixels_to_planes(din + b * p->C * HW, X + b * img, row, 1, p->C, p->H, p->W);
}

/* Y[b][y][x][k] (TILE·tiles_h × TILE·tiles_w pixels) from or to out[b][k][y][x]:
 * to NCHW the overhang is dropped, from NCHW it is zero. */
static void y_to_output(float *out, const float *Y, int n, const Plan *p)
{
    const size_t HW = (size_t)p->H * p->W, row = (size_t)TILE * p->tiles_w * p->K, img = TILE * p->tiles_h * row;
    for (int b = 0; b < n; b++) pixels_to_planes(out + b * p->K * HW, Y + b * img, row, 0, p->K, p->H, p->W);
}

static void output_to_y(float *Y, const float *dout, int n, const Plan *p)
{
    const size_t HW = (size_t)p->H * p->W, row = (size_t)TILE * p->tiles_w * p->K, img = TILE * p->tiles_h * row;
    memset(Y, 0, (size_t)n * img * sizeof *Y);
    for (int b = 0; b < n; b++) planes_to_pixels(Y + b * img, row, 0, dout + b * p->K * HW, p->K, p->H, p->W);
}

/* ------------------------------------------------------- block transforms
 * One block at a time, 8 channels at a time: d points at the block's
 * top-left pixel in X or Y (rows `row` floats apart, pixels C or K apart),
 * position ξ of the block in V, M or Z is `xi_stride` floats from the
 * last. A channel count that is not a multiple of 8 ends with a group of
 * n < 8 lanes; the group functions are inlined with n = 8 for the main
 * loop, so that there each load and store is one instruction. */

/* v = Bᵀ d B for channels c..c+n */
static inline __attribute__((always_inline)) void input_group(float *v, size_t xi_stride, const float *d,
                                                              size_t row, int C, int c, int n)
{
    Lanes t[ALPHA][ALPHA], col[ALPHA], out[ALPHA];
    for (int j = 0; j < ALPHA; j++) {
        for (int i = 0; i < ALPHA; i++) col[i] = load_lanes(d + i * row + (size_t)j * C + c, n);
        bt6(out, col);
        for (int i = 0; i < ALPHA; i++) t[i][j] = out[i];
    }
    for (int i = 0; i < ALPHA; i++) {
        bt6(out, t[i]);
        for (int j = 0; j < ALPHA; j++) store_lanes(v + (size_t)(ALPHA * i + j) * xi_stride + c, out[j], n);
    }
}

/* d += B v Bᵀ, the adjoint */
static inline __attribute__((always_inline)) void input_group_adjoint(float *d, size_t row, const float *v,
                                                                      size_t xi_stride, int C, int c, int n)
{
    Lanes t[ALPHA][ALPHA], in[ALPHA], out[ALPHA];
    for (int i = 0; i < ALPHA; i++) {
        for (int j = 0; j < ALPHA; j++) in[j] = load_lanes(v + (size_t)(ALPHA * i + j) * xi_stride + c, n);
        b6(t[i], in);
    }
    for (int j = 0; j < ALPHA; j++) {
        for (int i = 0; i < ALPHA; i++) in[i] = t[i][j];
        b6(out, in);
        for (int i = 0; i < ALPHA; i++) {
            float *p = d + i * row + (size_t)j * C + c;
            store_lanes(p, load_lanes(p, n) + out[i], n);
        }
    }
}

/* y = Aᵀ m A + bias, TILE×TILE pixels */
static inline __attribute__((always_inline)) void output_group(float *y, size_t row, const float *m,
                                                               size_t xi_stride, const float *bias, int K,
                                                               int k, int n)
{
    Lanes t[TILE][ALPHA], col[ALPHA], out[TILE];
    const Lanes b = load_lanes(bias + k, n);
    for (int j = 0; j < ALPHA; j++) {
        for (int i = 0; i < ALPHA; i++) col[i] = load_lanes(m + (size_t)(ALPHA * i + j) * xi_stride + k, n);
        at4(out, col);
        for (int i = 0; i < TILE; i++) t[i][j] = out[i];
    }
    for (int i = 0; i < TILE; i++) {
        at4(out, t[i]);
        for (int j = 0; j < TILE; j++) store_lanes(y + i * row + (size_t)j * K + k, out[j] + b, n);
    }
}

/* z = A e Aᵀ for the TILE×TILE of gradient e, the adjoint */
static inline __attribute__((always_inline)) void output_group_adjoint(float *z, size_t xi_stride,
                                                                       const float *e, size_t row, int K,
                                                                       int k, int n)
{
    Lanes t[ALPHA][TILE], col[TILE], out[ALPHA];
    for (int j = 0; j < TILE; j++) {
        for (int i = 0; i < TILE; i++) col[i] = load_lanes(e + i * row + (size_t)j * K + k, n);
        a6(out, col);
        for (int i = 0; i < ALPHA; i++) t[i][j] = out[i];
    }
    for (int i = 0; i < ALPHA; i++) {
        a6(out, t[i]);
        for (int j = 0; j < ALPHA; j++) store_lanes(z + (size_t)(ALPHA * i + j) * xi_stride + k, out[j], n);
    }
}

/* Each block function: whole groups of 8, then the rest. */
#define OVER_LANES(count, call)                                   \
    do {                                                          \
        int c_ = 0;                                               \
        for (; c_ + LANES <= (count); c_ += LANES) call(c_, LANES); \
        if (c_ < (count)) call(c_, (count) - c_);                 \
    } while (0)

static void input_block(float *v, size_t xi_stride, const float *d, size_t row, int C)
{
#define CALL(c, n) input_group(v, xi_stride, d, row, C, c, n)
    OVER_LANES(C, CALL);
#undef CALL
}

static void input_block_adjoint(float *d, size_t row, const float *v, size_t xi_stride, int C)
{
#define CALL(c, n) input_group_adjoint(d, row, v, xi_stride, C, c, n)
    OVER_LANES(C, CALL);
#undef CALL
}

static void output_block(float *y, size_t row, const float *m, size_t xi_stride, const float *bias, int K)
{
#define CALL(k, n) output_group(y, row, m, xi_stride, bias, K, k, n)
    OVER_LANES(K, CALL);
#undef CALL
}

static void output_block_adjoint(float *z, size_t xi_stride, const float *e, size_t row, int K)
{
#define CALL(k, n) output_group_adjoint(z, xi_stride, e, row, K, k, n)
    OVER_LANES(K, CALL);
#undef CALL
}

/* ------------------------------------------------------------------ GEMM
 * Forward's M[ξ] (T×K) = V[ξ] (T×C) · U[ξ]ᵀ, by a small kernel of our own
 * rather than cblas_sgemm: at sampling's batches a GEMM is only 32 tiles
 * tall at 7×7, and OpenBLAS re-packs the K×C filters on every call, which
 * took more than a quarter of its time there (perf, 8 images). Here the filters are packed once, when
 * they are transformed (and, while sampling, once for all calls). The
 * kernel keeps a block of TR tiles × KB channels of M in 2·TR registers
 * while it runs down c: per c, two loads of U, TR broadcasts of V and 2·TR
 * multiply-adds. */
#define TR 6

static inline __attribute__((always_inline)) void gemm_block(float *m, size_t ldm, const float *v, size_t ldv,
                                                             const float *u, int C, int rows, int n)
{
    Lanes acc[TR][2];
    for (int r = 0; r < rows; r++) acc[r][0] = acc[r][1] = (Lanes){0};
    for (int c = 0; c < C; c++) {
        const Lanes u0 = load_lanes(u + (size_t)c * KB, LANES), u1 = load_lanes(u + (size_t)c * KB + LANES, LANES);
        for (int r = 0; r < rows; r++) {
            const float x = v[(size_t)r * ldv + c];
            acc[r][0] += x * u0;
            acc[r][1] += x * u1;
        }
    }
    for (int r = 0; r < rows; r++) {
        store_lanes(m + (size_t)r * ldm, acc[r][0], n < LANES ? n : LANES);
        if (n > LANES) store_lanes(m + (size_t)r * ldm + LANES, acc[r][1], n - LANES);
    }
}

/* M[ξ] for every ξ, from V and the packed filters Up. */
static void gemm_forward(float *M, const float *V, const float *Up, int T, const Plan *p)
{
    const int C = p->C, K = p->K, nkb = k_blocks(K);
    for (int xi = 0; xi < XI; xi++) {
        const float *v = V + (size_t)xi * T * C;
        float *m = M + (size_t)xi * T * K;
        for (int kb = 0; kb < nkb; kb++) {
            const float *u = Up + ((size_t)xi * nkb + kb) * KB * C;
            const int k0 = kb * KB, n = K - k0 < KB ? K - k0 : KB;
            int t = 0;
#define BLOCK(rows, n_) gemm_block(m + (size_t)t * K + k0, K, v + (size_t)t * C, C, u, C, rows, n_)
            if (n == KB)
                for (; t + TR <= T; t += TR) BLOCK(TR, KB);
            for (; t + TR <= T; t += TR) BLOCK(TR, n);
            /* the last T mod TR rows, with a constant row count each, so that
             * their accumulators stay in registers too */
            switch (T - t) {
            case 5: BLOCK(5, n); break;
            case 4: BLOCK(4, n); break;
            case 3: BLOCK(3, n); break;
            case 2: BLOCK(2, n); break;
            case 1: BLOCK(1, n); break;
            default: break;
            }
#undef BLOCK
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
                const float *d = X + ((size_t)b * p->pad_h + TILE * ty) * row + (size_t)TILE * tx * p->C;
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
                float *d = X + ((size_t)b * p->pad_h + TILE * ty) * row + (size_t)TILE * tx * p->C;
                input_block_adjoint(d, row, dV + tile_index(b, ty, tx, p) * p->C, CT, p->C);
            }
}

static void transform_outputs(float *Y, const float *M, const float *bias, int n, const Plan *p)
{
    const size_t T = (size_t)n * p->tiles, KT = (size_t)p->K * T, row = (size_t)TILE * p->tiles_w * p->K;
    for (int b = 0; b < n; b++)
        for (int ty = 0; ty < p->tiles_h; ty++)
            for (int tx = 0; tx < p->tiles_w; tx++) {
                float *y = Y + ((size_t)b * TILE * p->tiles_h + TILE * ty) * row + (size_t)TILE * tx * p->K;
                output_block(y, row, M + tile_index(b, ty, tx, p) * p->K, KT, bias, p->K);
            }
}

static void transform_output_grads(float *Z, const float *Y, int n, const Plan *p)
{
    const size_t T = (size_t)n * p->tiles, KT = (size_t)p->K * T, row = (size_t)TILE * p->tiles_w * p->K;
    for (int b = 0; b < n; b++)
        for (int ty = 0; ty < p->tiles_h; ty++)
            for (int tx = 0; tx < p->tiles_w; tx++) {
                const float *e = Y + ((size_t)b * TILE * p->tiles_h + TILE * ty) * row + (size_t)TILE * tx * p->K;
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
    b.dU = b.U + packed_filter_floats(p); /* ≥ XI·KC, backward's plain layout */
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
    const size_t in_img = (size_t)p.C * p.H * p.W, out_img = (size_t)p.K * p.H * p.W;
    Buffers w_ = buffers(ws, &p);
    if (!U) {
        transform_filters_packed(w_.U, w, &p);
        U = w_.U;
    }
    for (int b0 = 0; b0 < B; b0 += p.chunk) {
        const int n = B - b0 < p.chunk ? B - b0 : p.chunk, T = n * p.tiles;
        input_to_x(w_.X, in + b0 * in_img, n, &p);
        transform_inputs(w_.V, w_.X, n, &p);
        gemm_forward(w_.M, w_.V, U, T, &p);
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
