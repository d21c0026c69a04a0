/* bench_latent — the cost of one full redraw of the Latent screen's
 * decoded parts with the shipped conv VAE: the digit at the cursor plus a
 * 7 × 7 manifold (50 decodes), drawn into a 200 × 50 cell buffer (one
 * large digit, 49 thumbnails). Prints milliseconds per redraw (median of
 * 200) as one JSON line. Usage: bench_latent [CHECKPOINT] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "genlab/blas.h"
#include "genlab/latent.h"
#include "genlab/paths.h"
#include "genlab/progress.h"
#include "genlab/render.h"
#include "genlab/train.h"

#define K 7
#define REPS 200

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    blas_ensure_fast_kernel(argv);
    char path[4096];
    Err e;
    if (argc > 1) snprintf(path, sizeof path, "%s", argv[1]);
    else if (paths_default_vae(path, sizeof path, &e)) return fprintf(stderr, "bench_latent: %s\n", e.msg), 1;
    Vae m;
    Checkpoint ck;
    CellBuf b;
    if (vae_load_checkpoint(path, &m, &ck, &e) || vae_reserve(&m, 1 + K * K, &e) || cellbuf_init(&b, 200, 50))
        return fprintf(stderr, "bench_latent: %s\n", e.msg), 1;
    const int d = m.cfg.latent;
    LatentPlane plane;
    plane_axes(&plane, d, 0, d > 1 ? 1 : 0, NULL);
    double q[K];
    grid_quantiles(q, K);
    float *z = malloc((size_t)(1 + K * K) * d * sizeof *z), *img = malloc((size_t)(1 + K * K) * 784 * sizeof *img);
    Palette pal = {DISPLAY_256, 0};
    double t[REPS];
    for (int r = 0; r < REPS; r++) {
        double t0 = monotonic_seconds();
        plane_lift(&plane, 0.01 * r, -0.02 * r, z);
        for (int i = 0; i < K * K; i++) plane_lift(&plane, q[i % K], q[i / K], z + (size_t)(1 + i) * d);
        vae_decode(&m, z, 1 + K * K, img);
        cellbuf_clear(&b);
        render_digit(&b, 0, 0, img, 28, DIGIT_LARGE, &pal);
        for (int i = 0; i < K * K; i++)
            render_digit(&b, 60 + (i % K) * 14, (i / K) * 7, img + (size_t)(1 + i) * 784, 28, DIGIT_THUMB, &pal);
        t[r] = monotonic_seconds() - t0;
    }
    qsort(t, REPS, sizeof *t, by_value);
    printf("{\"bench\":\"latent_redraw\",\"ckpt\":\"%s\",\"decodes\":%d,\"median_ms\":%.3f,\"max_ms\":%.3f,\"threads\":%d}\n",
           path, 1 + K * K, 1e3 * t[REPS / 2], 1e3 * t[REPS - 1], blas_get_threads());
    free(z), free(img);
    cellbuf_free(&b);
    vae_free(&m);
    ckpt_free(&ck);
    return 0;
}
