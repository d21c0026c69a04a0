/* latent: axes and PCA planes, the view window, normal quantiles and grids,
 * class centroids, lerp and slerp. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "genlab/latent.h"

#define PI 3.14159265358979323846

static double dot(const double *x, const double *y, int d)
{
    double s = 0.0;
    for (int i = 0; i < d; i++) s += x[i] * y[i];
    return s;
}

static double norm_f(const float *x, int d)
{
    double s = 0.0;
    for (int i = 0; i < d; i++) s += (double)x[i] * x[i];
    return sqrt(s);
}

static double cos_f(const float *x, const float *y, int d)
{
    double s = 0.0;
    for (int i = 0; i < d; i++) s += (double)x[i] * y[i];
    return s / (norm_f(x, d) * norm_f(y, d));
}

/* A small deterministic noise source in [-1, 1] (an LCG: the test must not
 * depend on the project's rng). */
static double noise(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return (*s >> 8) / 8388608.0 - 1.0;
}

/* e1, e2 unit and orthogonal; each one's largest-magnitude component is
 * positive (the header's sign convention). */
static void assert_orthonormal_and_signed(const LatentPlane *p)
{
    assert_true(fabs(dot(p->e1, p->e1, p->d) - 1.0) < 1e-12);
    assert_true(fabs(dot(p->e2, p->e2, p->d) - 1.0) < 1e-12);
    assert_true(fabs(dot(p->e1, p->e2, p->d)) < 1e-12);
    const double *e[2] = {p->e1, p->e2};
    for (int k = 0; k < 2; k++) {
        int big = 0;
        for (int i = 1; i < p->d; i++)
            if (fabs(e[k][i]) > fabs(e[k][big])) big = i;
        assert_true(e[k][big] > 0.0);
    }
}

/* ---- plane_axes ---- */

static void test_axes_lift_and_project(void **state)
{
    (void)state;
    const double hold[5] = {1, 2, 3, 4, 5};
    LatentPlane p;
    assert_int_equal(plane_axes(&p, 5, 1, 3, hold), 0);
    float z[5];
    plane_lift(&p, 0.5, -2.0, z);
    const float expect[5] = {1.0f, 0.5f, 3.0f, -2.0f, 5.0f};
    assert_memory_equal(z, expect, sizeof z);
    double u, v;
    plane_project(&p, z, &u, &v);
    assert_true(u == 0.5 && v == -2.0);

    /* Axes in the other order, no hold: zeros elsewhere. */
    assert_int_equal(plane_axes(&p, 5, 4, 0, NULL), 0);
    plane_lift(&p, 1.25, -3.5, z);
    const float expect2[5] = {-3.5f, 0.0f, 0.0f, 0.0f, 1.25f};
    assert_memory_equal(z, expect2, sizeof z);
    plane_project(&p, z, &u, &v);
    assert_true(u == 1.25 && v == -3.5);
}

static void test_axes_bad(void **state)
{
    (void)state;
    LatentPlane p;
    assert_int_equal(plane_axes(&p, 4, 2, 2, NULL), -1);
    assert_int_equal(plane_axes(&p, 4, -1, 2, NULL), -1);
    assert_int_equal(plane_axes(&p, 4, 0, 4, NULL), -1);
    assert_int_equal(plane_axes(&p, 4, 4, 0, NULL), -1);
    assert_int_equal(plane_axes(&p, 1, 0, 1, NULL), -1);
    assert_int_equal(plane_axes(&p, LATENT_MAX_D + 1, 0, 1, NULL), -1);
    assert_int_equal(plane_axes(&p, 2, 1, 0, NULL), 0);
}

/* ---- plane_pca ---- */

/* Points along a known direction in d = 4 with 1% noise elsewhere. */
static void test_pca_line(void **state)
{
    (void)state;
    enum { N = 200, D = 4 };
    const double raw[D] = {1.0, 2.0, -1.0, 0.5}, centre[D] = {3.0, -1.0, 0.0, 2.0};
    double dir[D], len = sqrt(dot(raw, raw, D));
    for (int j = 0; j < D; j++) dir[j] = raw[j] / len;
    static float pts[N * D];
    double mean[D] = {0};
    uint32_t s = 7;
    for (int i = 0; i < N; i++) {
        double t = -5.0 + 10.0 * i / (N - 1);
        for (int j = 0; j < D; j++) {
            pts[i * D + j] = (float)(centre[j] + t * dir[j] + 0.01 * noise(&s));
        }
    }
    /* the mean of the stored floats, in a loop of its own: summed inside the
     * loop above, an optimising compiler may add the unrounded values */
    for (int i = 0; i < N; i++)
        for (int j = 0; j < D; j++) mean[j] += pts[i * D + j] / (double)N;
    LatentPlane p;
    double explained[2];
    assert_int_equal(plane_pca(&p, pts, N, D, explained), 0);
    assert_int_equal(p.d, D);
    /* dir's largest component is positive, so e1 ≈ +dir, sign included. */
    assert_true(dot(p.e1, dir, D) > 0.999);
    assert_true(explained[0] > 0.99);
    assert_true(explained[1] >= 0.0 && explained[1] < 0.01);
    assert_orthonormal_and_signed(&p);
    for (int j = 0; j < D; j++) assert_true(fabs(p.origin[j] - mean[j]) < 1e-9);

    /* Points built in the plane project back to their (u, v). */
    const double uv[3][2] = {{0.0, 0.0}, {2.5, -1.0}, {-4.0, 3.25}};
    for (int k = 0; k < 3; k++) {
        float z[D];
        double u, v;
        plane_lift(&p, uv[k][0], uv[k][1], z);
        plane_project(&p, z, &u, &v);
        assert_true(fabs(u - uv[k][0]) < 1e-5 && fabs(v - uv[k][1]) < 1e-5);
    }
}

/* N points on an ellipse centred at (1, −2) with semi-axes 3 and 1, the
 * long one at angle θ: variances 9/2 and 1/2 along its axes. */
enum { ELLIPSE_N = 64 };
static void make_ellipse(double theta, float pts[ELLIPSE_N * 2])
{
    const double a1[2] = {cos(theta), sin(theta)}, a2[2] = {-sin(theta), cos(theta)};
    for (int k = 0; k < ELLIPSE_N; k++) {
        double phi = 2.0 * PI * k / ELLIPSE_N;
        for (int j = 0; j < 2; j++)
            pts[k * 2 + j] = (float)((j ? -2.0 : 1.0) + 3.0 * cos(phi) * a1[j] + sin(phi) * a2[j]);
    }
}

static void check_ellipse(double theta, const double e1[2], const double e2[2])
{
    float pts[ELLIPSE_N * 2];
    make_ellipse(theta, pts);
    LatentPlane p;
    double explained[2];
    assert_int_equal(plane_pca(&p, pts, ELLIPSE_N, 2, explained), 0);
    for (int j = 0; j < 2; j++) {
        assert_true(fabs(p.e1[j] - e1[j]) < 1e-6);
        assert_true(fabs(p.e2[j] - e2[j]) < 1e-6);
    }
    assert_true(fabs(explained[0] - 0.9) < 1e-6 && fabs(explained[1] - 0.1) < 1e-6);
    assert_true(fabs(p.origin[0] - 1.0) < 1e-6 && fabs(p.origin[1] + 2.0) < 1e-6);
    assert_orthonormal_and_signed(&p);
}

static void test_pca_ellipse(void **state)
{
    (void)state;
    const double c30 = cos(PI / 6), s30 = 0.5;
    /* θ = 30°: the axes already satisfy the sign convention. */
    check_ellipse(PI / 6, (double[]){c30, s30}, (double[]){-s30, c30});
    /* θ = 150°: a1 = (−0.866, 0.5) and a2 = (−0.5, −0.866) are both flipped. */
    check_ellipse(5 * PI / 6, (double[]){c30, -s30}, (double[]){s30, c30});
    /* All round the half circle: the right axis, with the convention's sign
     * whatever sign the iteration happens to land on. */
    for (int k = 0; k < 24; k++) {
        double theta = (k * 7.5 + 1.0) * PI / 180.0;
        float pts[ELLIPSE_N * 2];
        make_ellipse(theta, pts);
        LatentPlane p;
        assert_int_equal(plane_pca(&p, pts, ELLIPSE_N, 2, NULL), 0);
        assert_true(fabs(p.e1[0] * cos(theta) + p.e1[1] * sin(theta)) > 1.0 - 1e-9);
        assert_orthonormal_and_signed(&p);
    }
}

/* The top direction (2, −1, −1)/√6 is orthogonal to all-ones, a tempting
 * start vector for the power iteration; the second is (0, 1, −1)/√2. */
static void test_pca_start_orthogonal_to_ones(void **state)
{
    (void)state;
    enum { N = 40, D = 3 };
    const double dir1[D] = {2 / sqrt(6.0), -1 / sqrt(6.0), -1 / sqrt(6.0)};
    const double dir2[D] = {0.0, 1 / sqrt(2.0), -1 / sqrt(2.0)};
    float pts[N * D];
    for (int i = 0; i < N; i++) {
        /* w runs +, −, −, +: uncorrelated with the linear t. */
        double t = -1.0 + 2.0 * i / (N - 1), w = (i % 4 == 0 || i % 4 == 3) ? 0.5 : -0.5;
        for (int j = 0; j < D; j++) pts[i * D + j] = (float)(3.0 * t * dir1[j] + w * dir2[j]);
    }
    LatentPlane p;
    assert_int_equal(plane_pca(&p, pts, N, D, NULL), 0);
    assert_true(dot(p.e1, dir1, D) > 0.999999);
    assert_true(fabs(dot(p.e2, dir2, D)) > 0.999999); /* a tie in |component|: either sign */
    assert_orthonormal_and_signed(&p);
}

/* Degenerate data: identical points, points exactly on a line. */
static void test_pca_degenerate(void **state)
{
    (void)state;
    LatentPlane p;
    double explained[2];
    const float same[3 * 3] = {1, 2, 3, 1, 2, 3, 1, 2, 3};
    assert_int_equal(plane_pca(&p, same, 3, 3, explained), 0);
    assert_orthonormal_and_signed(&p);
    assert_true(explained[0] == 0.0 && explained[1] == 0.0);
    assert_true(p.origin[0] == 1.0 && p.origin[1] == 2.0 && p.origin[2] == 3.0);

    const float line[4 * 3] = {0, 0, 0, 1, 2, 2, 2, 4, 4, -1, -2, -2};
    assert_int_equal(plane_pca(&p, line, 4, 3, explained), 0);
    assert_orthonormal_and_signed(&p);
    const double dir[3] = {1.0 / 3, 2.0 / 3, 2.0 / 3};
    assert_true(dot(p.e1, dir, 3) > 1.0 - 1e-12);
    assert_true(fabs(explained[0] - 1.0) < 1e-12 && fabs(explained[1]) < 1e-12);
}

static void test_pca_bad(void **state)
{
    (void)state;
    LatentPlane p;
    const float pts[4] = {1, 2, 3, 4};
    assert_int_equal(plane_pca(&p, pts, 1, 4, NULL), -1);
    assert_int_equal(plane_pca(&p, pts, 0, 2, NULL), -1);
    assert_int_equal(plane_pca(&p, pts, 4, 1, NULL), -1);
    assert_int_equal(plane_pca(&p, pts, 2, 2, NULL), 0);
}

/* ---- normal quantile and grids ---- */

static void test_normal_quantile_values(void **state)
{
    (void)state;
    assert_true(normal_quantile(0.5) == 0.0);
    assert_true(fabs(normal_quantile(0.975) - 1.959963984540054) < 1e-12);
    assert_true(fabs(normal_quantile(0.05) + 1.6448536269514729) < 1e-12);
    assert_true(fabs(normal_quantile(1e-10) + 6.361340902404056) < 1e-12);
    assert_true(fabs(normal_quantile(1.0 - 1e-10) - 6.361340902404056) < 1e-6);
    assert_true(normal_quantile(0.0) == -INFINITY && normal_quantile(1.0) == INFINITY);
}

static void test_normal_quantile_symmetry_and_inverse(void **state)
{
    (void)state;
    const double ps[] = {1e-300, 1e-10, 1e-5, 0.001, 0.02, 0.02425, 0.03, 0.1, 0.25, 0.4, 0.4999};
    for (size_t k = 0; k < sizeof ps / sizeof ps[0]; k++) {
        double p = ps[k], x = normal_quantile(p);
        /* Symmetry on an exact pair: 1 − upper is exact for upper ≥ 0.5. */
        double upper = 1.0 - p;
        if (upper < 1.0) assert_true(fabs(normal_quantile(upper) + normal_quantile(1.0 - upper)) < 1e-12);
        /* Φ(x) = p to near double precision, relative in the tail. */
        double back = 0.5 * erfc(-x / sqrt(2.0));
        assert_true(fabs(back - p) <= 1e-13 * p);
    }
    for (int i = 1; i < 1000; i++) assert_true(normal_quantile(i / 1000.0) > normal_quantile((i - 1) / 1000.0));
}

static void test_grid_quantiles(void **state)
{
    (void)state;
    double g[5];
    grid_quantiles(g, 5);
    assert_true(fabs(g[0] + 1.6448536269514729) < 1e-12);
    assert_true(fabs(g[4] - 1.6448536269514729) < 1e-12);
    assert_true(fabs(g[1] + 0.5977601260424784) < 1e-12); /* Φ⁻¹(0.275) */
    assert_true(g[2] == 0.0);
    for (int i = 0; i < 5; i++) assert_true(g[i] == -g[4 - i]);
    for (int i = 1; i < 5; i++) assert_true(g[i] > g[i - 1]);

    double h[8];
    grid_quantiles(h, 8);
    for (int i = 0; i < 8; i++) assert_true(h[i] == -h[7 - i]);
    for (int i = 1; i < 8; i++) assert_true(h[i] > h[i - 1]);
}

static void test_grid_box(void **state)
{
    (void)state;
    double g[5];
    grid_box(g, 5, -2.0, 3.0);
    const double expect[5] = {-2.0, -0.75, 0.5, 1.75, 3.0};
    for (int i = 0; i < 5; i++) assert_true(fabs(g[i] - expect[i]) < 1e-15);
    assert_true(g[0] == -2.0 && g[4] == 3.0);
    /* An awkward range whose step does not add up exactly. */
    double h[7];
    grid_box(h, 7, 0.1, 0.7);
    assert_true(h[0] == 0.1 && h[6] == 0.7);
}

/* ---- the view ---- */

static void test_view_fit(void **state)
{
    (void)state;
    const double u[4] = {-1.0, 3.0, 0.0, 2.0}, v[4] = {0.5, -2.0, 2.0, 1.0};
    const double aspects[3] = {2.0, 1.0, 0.5};
    for (int k = 0; k < 3; k++) {
        View w = view_fit(u, v, 4, aspects[k]);
        assert_true(w.hu > 0.0 && w.hv > 0.0);
        assert_true(fabs(w.hu / w.hv - aspects[k]) < 1e-12);
        double lo_x = 1.0, hi_x = 0.0, lo_y = 1.0, hi_y = 0.0;
        for (int i = 0; i < 4; i++) {
            double fx, fy;
            view_from_plane(&w, u[i], v[i], &fx, &fy);
            lo_x = fmin(lo_x, fx);
            hi_x = fmax(hi_x, fx);
            lo_y = fmin(lo_y, fy);
            hi_y = fmax(hi_y, fy);
        }
        /* Every point inside with a margin; the binding axis not much more. */
        assert_true(lo_x > 0.04 && hi_x < 0.96 && lo_y > 0.04 && hi_y < 0.96);
        assert_true(fmin(lo_x, lo_y) < 0.05);
    }
    View empty = view_fit(u, v, 0, 1.0), single = view_fit(u, v, 1, 1.0);
    assert_true(empty.hu > 0.0 && empty.hv > 0.0 && single.hu > 0.0 && single.hv > 0.0);
    assert_true(single.cu == -1.0 && single.cv == 0.5);
}

static void test_view_zoom_pan(void **state)
{
    (void)state;
    View w = {1.0, -2.0, 4.0, 3.0};
    View z = view_zoom(w, 2.0);
    assert_true(z.cu == 1.0 && z.cv == -2.0 && z.hu == 2.0 && z.hv == 1.5);
    View p = view_pan(w, 1.0, -0.5);
    assert_true(p.cu == 5.0 && p.cv == -3.5 && p.hu == 4.0 && p.hv == 3.0);
}

static void test_view_window_mapping(void **state)
{
    (void)state;
    View w = {1.0, -2.0, 4.0, 3.0};
    double u, v, fx, fy;
    view_to_plane(&w, 0.0, 0.0, &u, &v); /* top-left */
    assert_true(u == -3.0 && v == 1.0);
    view_to_plane(&w, 1.0, 1.0, &u, &v); /* bottom-right */
    assert_true(u == 5.0 && v == -5.0);
    view_to_plane(&w, 0.5, 0.5, &u, &v);
    assert_true(u == 1.0 && v == -2.0);
    view_from_plane(&w, -3.0, 1.0, &fx, &fy);
    assert_true(fx == 0.0 && fy == 0.0);
    view_from_plane(&w, 5.0, -5.0, &fx, &fy);
    assert_true(fx == 1.0 && fy == 1.0);
    const double pts[3][2] = {{0.1, 0.9}, {0.73, 0.2}, {-0.5, 1.5}};
    for (int k = 0; k < 3; k++) {
        view_to_plane(&w, pts[k][0], pts[k][1], &u, &v);
        view_from_plane(&w, u, v, &fx, &fy);
        assert_true(fabs(fx - pts[k][0]) < 1e-12 && fabs(fy - pts[k][1]) < 1e-12);
    }
    /* Down the screen is down the plane. */
    double v_top, v_bottom;
    view_to_plane(&w, 0.5, 0.25, &u, &v_top);
    view_to_plane(&w, 0.5, 0.75, &u, &v_bottom);
    assert_true(v_top > v_bottom);
}

/* ---- centroids ---- */

static void test_class_centroids(void **state)
{
    (void)state;
    const float pts[5 * 2] = {1, 2, -1, 5, 3, 4, 100, 100, 0, 0};
    /* Class 1 has no points; label 7 is out of range and ignored. */
    const uint8_t labels[5] = {0, 2, 0, 7, 3};
    double c[4 * 2];
    int counts[4];
    for (int i = 0; i < 8; i++) c[i] = 99.0;
    for (int i = 0; i < 4; i++) counts[i] = 99;
    class_centroids(pts, labels, 5, 2, 4, c, counts);
    const double expect[8] = {2, 3, 0, 0, -1, 5, 0, 0};
    const int expect_counts[4] = {2, 0, 1, 1};
    for (int i = 0; i < 8; i++) assert_true(c[i] == expect[i]);
    for (int i = 0; i < 4; i++) assert_int_equal(counts[i], expect_counts[i]);
}

/* ---- interpolation ---- */

static void test_interpolation_endpoints_exact(void **state)
{
    (void)state;
    const float a[4] = {0.1f, -2.7f, 3.3f, 1e-7f}, b[4] = {-0.3f, 0.9f, 1.1f, 5.5f};
    float out[4];
    void (*f[2])(const float *, const float *, int, double, float *) = {lerp_latent, slerp_latent};
    for (int k = 0; k < 2; k++) {
        f[k](a, b, 4, 0.0, out);
        assert_memory_equal(out, a, sizeof out);
        f[k](a, b, 4, 1.0, out);
        assert_memory_equal(out, b, sizeof out);
    }
    /* In place is allowed. */
    float c[4];
    memcpy(c, a, sizeof c);
    slerp_latent(c, b, 4, 1.0, c);
    assert_memory_equal(c, b, sizeof c);
}

static void test_slerp_orthogonal(void **state)
{
    (void)state;
    const float a[4] = {1, 1, 1, 1}, b[4] = {1, -1, 1, -1}; /* |a| = |b| = 2, a ⟂ b */
    float m[4], l[4];
    slerp_latent(a, b, 4, 0.5, m);
    assert_true(fabs(norm_f(m, 4) - 2.0) < 1e-6);
    assert_true(fabs(cos_f(m, a, 4) - cos(PI / 4)) < 1e-6);
    assert_true(fabs(cos_f(m, b, 4) - cos(PI / 4)) < 1e-6);
    lerp_latent(a, b, 4, 0.5, l);
    assert_true(fabs(norm_f(l, 4) - 2.0 / sqrt(2.0)) < 1e-6);

    /* A quarter of the way: 22.5° from a; magnitudes interpolate linearly. */
    const float b3[4] = {3, -3, 3, -3};
    slerp_latent(a, b3, 4, 0.25, m);
    assert_true(fabs(cos_f(m, a, 4) - cos(PI / 8)) < 1e-6);
    assert_true(fabs(norm_f(m, 4) - 3.0) < 1e-6); /* 0.75·2 + 0.25·6 */
}

static void test_slerp_falls_back_to_lerp(void **state)
{
    (void)state;
    const float a[3] = {1, 2, 3}, b[3] = {2, 4, 6}, zero[3] = {0, 0, 0};
    const float opposite[3] = {-1, -2, -3};
    const float *pairs[3][2] = {{a, b}, {zero, b}, {a, opposite}};
    for (int k = 0; k < 3; k++) {
        float s[3], l[3];
        slerp_latent(pairs[k][0], pairs[k][1], 3, 0.3, s);
        lerp_latent(pairs[k][0], pairs[k][1], 3, 0.3, l);
        assert_memory_equal(s, l, sizeof s);
    }
    float l[3];
    lerp_latent(a, b, 3, 0.5, l);
    assert_true(fabs(l[0] - 1.5f) < 1e-6 && fabs(l[1] - 3.0f) < 1e-6 && fabs(l[2] - 4.5f) < 1e-6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_axes_lift_and_project),
        cmocka_unit_test(test_axes_bad),
        cmocka_unit_test(test_pca_line),
        cmocka_unit_test(test_pca_ellipse),
        cmocka_unit_test(test_pca_start_orthogonal_to_ones),
        cmocka_unit_test(test_pca_degenerate),
        cmocka_unit_test(test_pca_bad),
        cmocka_unit_test(test_normal_quantile_values),
        cmocka_unit_test(test_normal_quantile_symmetry_and_inverse),
        cmocka_unit_test(test_grid_quantiles),
        cmocka_unit_test(test_grid_box),
        cmocka_unit_test(test_view_fit),
        cmocka_unit_test(test_view_zoom_pan),
        cmocka_unit_test(test_view_window_mapping),
        cmocka_unit_test(test_class_centroids),
        cmocka_unit_test(test_interpolation_endpoints_exact),
        cmocka_unit_test(test_slerp_orthogonal),
        cmocka_unit_test(test_slerp_falls_back_to_lerp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
