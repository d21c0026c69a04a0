#include "genlab/latent.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- vectors (double, length d) ---- */

static double dot(const double *x, const double *y, int d)
{
    double s = 0.0;
    for (int i = 0; i < d; i++) s += x[i] * y[i];
    return s;
}

/* Scales x to unit length; returns its former norm (0 leaves x alone). */
static double normalise(double *x, int d)
{
    double norm = sqrt(dot(x, x, d));
    if (norm > 0.0)
        for (int i = 0; i < d; i++) x[i] /= norm;
    return norm;
}

/* Flips x so that its largest-magnitude component (the first, on ties) is
 * positive: eigenvectors have no sign of their own, and this keeps views
 * from mirroring between runs. */
static void fix_sign(double *x, int d)
{
    int k = 0;
    for (int i = 1; i < d; i++)
        if (fabs(x[i]) > fabs(x[k])) k = i;
    if (x[k] < 0.0)
        for (int i = 0; i < d; i++) x[i] = -x[i];
}

/* ---- planes ---- */

int plane_axes(LatentPlane *p, int d, int a, int b, const double *hold)
{
    if (d < 2 || d > LATENT_MAX_D || a < 0 || b < 0 || a >= d || b >= d || a == b) return -1;
    p->d = d;
    for (int i = 0; i < d; i++) {
        p->origin[i] = hold ? hold[i] : 0.0;
        p->e1[i] = 0.0;
        p->e2[i] = 0.0;
    }
    p->origin[a] = 0.0;
    p->origin[b] = 0.0;
    p->e1[a] = 1.0;
    p->e2[b] = 1.0;
    return 0;
}

static void mean_of(const float *points, int n, int d, double *mean)
{
    for (int j = 0; j < d; j++) mean[j] = 0.0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < d; j++) mean[j] += points[(size_t)i * d + j];
    for (int j = 0; j < d; j++) mean[j] /= n;
}

/* cov (d × d, row-major) = Σ (x − mean)(x − mean)ᵀ / (n − 1). */
static void covariance_of(const float *points, int n, int d, const double *mean, double *cov,
                          double *centred)
{
    memset(cov, 0, sizeof(double) * (size_t)d * d);
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < d; j++) centred[j] = points[(size_t)i * d + j] - mean[j];
        for (int r = 0; r < d; r++)
            for (int c = r; c < d; c++) cov[(size_t)r * d + c] += centred[r] * centred[c];
    }
    for (int r = 0; r < d; r++)
        for (int c = r; c < d; c++) {
            cov[(size_t)r * d + c] /= n - 1;
            cov[(size_t)c * d + r] = cov[(size_t)r * d + c];
        }
}

static void mat_vec(const double *m, const double *x, int d, double *y)
{
    for (int r = 0; r < d; r++) y[r] = dot(m + (size_t)r * d, x, d);
}

/* Power iteration for the top eigenvector of the symmetric PSD matrix m
 * into v; returns its eigenvalue (the Rayleigh quotient), or 0 with v
 * untouched when m is numerically zero (scale: a reference magnitude such
 * as the trace). */
static double top_eigenvector(const double *m, int d, double scale, double *v, double *tmp)
{
    /* Start from a deterministic but irregular vector (golden-ratio
     * fractions): all-ones or a coordinate axis is exactly orthogonal to the
     * top eigenvector of many symmetric data sets, which would stall. */
    double x[LATENT_MAX_D];
    for (int i = 0; i < d; i++) {
        double f = (i + 1) * 0.6180339887498949;
        x[i] = 0.5 + (f - floor(f));
    }
    normalise(x, d);
    for (int it = 0; it < 500; it++) {
        mat_vec(m, x, d, tmp);
        if (normalise(tmp, d) <= 1e-13 * scale) return 0.0;
        double change = 0.0;
        for (int i = 0; i < d; i++) change += (tmp[i] - x[i]) * (tmp[i] - x[i]);
        memcpy(x, tmp, sizeof(double) * (size_t)d);
        if (sqrt(change) < 1e-12) break;
    }
    mat_vec(m, x, d, tmp);
    memcpy(v, x, sizeof(double) * (size_t)d);
    return dot(x, tmp, d);
}

/* A unit vector orthogonal to the unit vector e: the coordinate axis least
 * aligned with e, with its e component removed. */
static void orthogonal_to(const double *e, int d, double *out)
{
    int k = 0;
    for (int i = 1; i < d; i++)
        if (fabs(e[i]) < fabs(e[k])) k = i;
    for (int i = 0; i < d; i++) out[i] = -e[k] * e[i];
    out[k] += 1.0;
    normalise(out, d);
}

/* Removes from x its component along the unit vector e, and renormalises
 * (deflation leaves a rounding-level trace of e in the second direction). */
static void orthogonalise(double *x, const double *e, int d)
{
    double along = dot(x, e, d);
    for (int i = 0; i < d; i++) x[i] -= along * e[i];
    normalise(x, d);
}

int plane_pca(LatentPlane *p, const float *points, int n, int d, double explained[2])
{
    if (n < 2 || d < 2 || d > LATENT_MAX_D || !points) return -1;
    double *cov = malloc(sizeof(double) * (size_t)d * d);
    double *tmp = malloc(sizeof(double) * (size_t)d);
    if (!cov || !tmp) {
        free(cov);
        free(tmp);
        return -1;
    }
    p->d = d;
    mean_of(points, n, d, p->origin);
    covariance_of(points, n, d, p->origin, cov, tmp);
    double trace = 0.0;
    for (int i = 0; i < d; i++) trace += cov[(size_t)i * d + i];

    /* All points equal: no direction is preferred; fall back to axes 0, 1. */
    double lambda1 = top_eigenvector(cov, d, trace, p->e1, tmp);
    if (lambda1 <= 0.0) {
        for (int i = 0; i < d; i++) p->e1[i] = i == 0;
        lambda1 = 0.0;
    }
    fix_sign(p->e1, d);

    for (int r = 0; r < d; r++)
        for (int c = 0; c < d; c++) cov[(size_t)r * d + c] -= lambda1 * p->e1[r] * p->e1[c];
    /* Points on a line leave nothing after deflation: any orthogonal
     * direction will do. */
    double lambda2 = top_eigenvector(cov, d, trace, p->e2, tmp);
    if (lambda2 <= 0.0) {
        orthogonal_to(p->e1, d, p->e2);
        lambda2 = 0.0;
    } else {
        orthogonalise(p->e2, p->e1, d);
    }
    fix_sign(p->e2, d);

    if (explained) {
        explained[0] = trace > 0.0 ? lambda1 / trace : 0.0;
        explained[1] = trace > 0.0 ? lambda2 / trace : 0.0;
    }
    free(cov);
    free(tmp);
    return 0;
}

void plane_project(const LatentPlane *p, const float *z, double *u, double *v)
{
    double su = 0.0, sv = 0.0;
    for (int i = 0; i < p->d; i++) {
        double offset = z[i] - p->origin[i];
        su += offset * p->e1[i];
        sv += offset * p->e2[i];
    }
    *u = su;
    *v = sv;
}

void plane_lift(const LatentPlane *p, double u, double v, float *z)
{
    for (int i = 0; i < p->d; i++) z[i] = (float)(p->origin[i] + u * p->e1[i] + v * p->e2[i]);
}

/* ---- the view window ---- */

/* Grows one half-width so that a unit is as long across as down: the
 * window's width / height must equal the area's aspect. */
static View square_up(View w, double aspect)
{
    if (!(aspect > 0.0) || !isfinite(aspect)) aspect = 1.0;
    if (w.hu < w.hv * aspect)
        w.hu = w.hv * aspect;
    else
        w.hv = w.hu / aspect;
    return w;
}

View view_fit(const double *u, const double *v, int n, double aspect)
{
    double ulo = INFINITY, uhi = -INFINITY, vlo = INFINITY, vhi = -INFINITY;
    for (int i = 0; i < n; i++) {
        if (!isfinite(u[i]) || !isfinite(v[i])) continue; /* a diverged encoder's output */
        ulo = fmin(ulo, u[i]);
        uhi = fmax(uhi, u[i]);
        vlo = fmin(vlo, v[i]);
        vhi = fmax(vhi, v[i]);
    }
    View w = {0.0, 0.0, 1.0, 1.0};
    if (ulo > uhi) return square_up(w, aspect); /* no (finite) points */
    w.cu = 0.5 * (ulo + uhi);
    w.cv = 0.5 * (vlo + vhi);
    /* 5% of the data's range on each side (matplotlib's default margin). */
    w.hu = 0.5 * (uhi - ulo) * 1.1;
    w.hv = 0.5 * (vhi - vlo) * 1.1;
    if (w.hu <= 0.0 && w.hv <= 0.0) w.hu = w.hv = 1.0; /* a single point */
    return square_up(w, aspect);
}

View view_zoom(View w, double factor)
{
    if (!(factor > 0.0) || !isfinite(factor)) return w;
    w.hu /= factor;
    w.hv /= factor;
    return w;
}

View view_pan(View w, double du, double dv)
{
    w.cu += du * w.hu;
    w.cv += dv * w.hv;
    return w;
}

void view_to_plane(const View *w, double fx, double fy, double *u, double *v)
{
    *u = w->cu + (2.0 * fx - 1.0) * w->hu;
    *v = w->cv + (1.0 - 2.0 * fy) * w->hv;
}

void view_from_plane(const View *w, double u, double v, double *fx, double *fy)
{
    *fx = 0.5 + (u - w->cu) / (2.0 * w->hu);
    *fy = 0.5 - (v - w->cv) / (2.0 * w->hv);
}

/* ---- the normal quantile ---- */

/* Acklam's rational approximation for the lower half, p in (0, 0.5]
 * (relative error < 1.15e-9 before refinement). */
static double acklam_lower(double p)
{
    static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02,
                               -2.759285104469687e+02, 1.383577518672690e+02,
                               -3.066479806614716e+01, 2.506628277459239e+00};
    static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02,
                               -1.556989798598866e+02, 6.680131188771972e+01,
                               -1.328068155288572e+01};
    static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01,
                               -2.400758277161838e+00, -2.549732539343734e+00,
                               4.374664141464968e+00,  2.938163982698783e+00};
    static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01,
                               2.445134137142996e+00, 3.754408661907416e+00};
    if (p < 0.02425) {
        double r = sqrt(-2.0 * log(p));
        return (((((c[0] * r + c[1]) * r + c[2]) * r + c[3]) * r + c[4]) * r + c[5]) /
               ((((d[0] * r + d[1]) * r + d[2]) * r + d[3]) * r + 1.0);
    }
    double q = p - 0.5, r = q * q;
    return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
           (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1.0);
}

double normal_quantile(double p)
{
    if (isnan(p)) return NAN;
    if (p <= 0.0) return -INFINITY;
    if (p >= 1.0) return INFINITY;
    /* Work in the lower tail: 1 − p is exact for p ≥ 0.5, and Φ(x) for
     * x ≤ 0 comes from erfc without cancellation, so the upper tail keeps
     * full precision and Φ⁻¹(1 − p) = −Φ⁻¹(p) exactly. */
    double q = p > 0.5 ? 1.0 - p : p;
    double x = acklam_lower(q);
    double e = 0.5 * erfc(-x / sqrt(2.0)) - q;
    double u = e * 2.5066282746310002 * exp(0.5 * x * x); /* e·√(2π)·e^(x²/2) */
    if (isfinite(u)) x -= u / (1.0 + 0.5 * x * u); /* Halley step */
    return p > 0.5 ? -x : x;
}

/* ---- grids ---- */

void grid_quantiles(double *out, int n)
{
    if (n < 2) {
        if (n == 1) out[0] = 0.0;
        return;
    }
    /* Fill the lower half and mirror it, so the grid is exactly symmetric. */
    for (int i = 0; i < (n + 1) / 2; i++) {
        double p = 0.05 + 0.9 * i / (n - 1);
        out[i] = 2 * i == n - 1 ? 0.0 : normal_quantile(p);
        out[n - 1 - i] = -out[i];
    }
}

void grid_box(double *out, int n, double lo, double hi)
{
    if (n < 2) {
        if (n == 1) out[0] = 0.5 * (lo + hi);
        return;
    }
    for (int i = 0; i < n - 1; i++) out[i] = lo + (hi - lo) * i / (n - 1);
    out[n - 1] = hi;
}

/* ---- centroids and interpolation ---- */

void class_centroids(const float *points, const uint8_t *labels, int n, int d, int nclass,
                     double *centroids, int *counts)
{
    if (nclass <= 0 || d <= 0) return;
    memset(centroids, 0, sizeof(double) * (size_t)nclass * d);
    memset(counts, 0, sizeof(int) * (size_t)nclass);
    for (int i = 0; i < n; i++) {
        int k = labels[i];
        if (k >= nclass) continue;
        counts[k]++;
        for (int j = 0; j < d; j++) centroids[(size_t)k * d + j] += points[(size_t)i * d + j];
    }
    for (int k = 0; k < nclass; k++)
        for (int j = 0; j < d && counts[k] > 0; j++) centroids[(size_t)k * d + j] /= counts[k];
}

/* memmove, not memcpy: out may be a or b. */
static int copy_endpoint(const float *a, const float *b, int d, double t, float *out)
{
    if (t == 0.0) memmove(out, a, sizeof(float) * (size_t)d);
    else if (t == 1.0) memmove(out, b, sizeof(float) * (size_t)d);
    else return 0;
    return 1;
}

void lerp_latent(const float *a, const float *b, int d, double t, float *out)
{
    if (copy_endpoint(a, b, d, t, out)) return;
    for (int i = 0; i < d; i++) out[i] = (float)((1.0 - t) * a[i] + t * b[i]);
}

void slerp_latent(const float *a, const float *b, int d, double t, float *out)
{
    if (copy_endpoint(a, b, d, t, out)) return;
    double na = 0.0, nb = 0.0;
    for (int i = 0; i < d; i++) {
        na += (double)a[i] * a[i];
        nb += (double)b[i] * b[i];
    }
    na = sqrt(na);
    nb = sqrt(nb);
    if (na == 0.0 || nb == 0.0) {
        lerp_latent(a, b, d, t, out);
        return;
    }
    /* Ω = 2·atan2(|â − b̂|, |â + b̂|) (Kahan): accurate at small and large
     * angles alike, where acos(â·b̂) loses half its digits. */
    double diff = 0.0, sum = 0.0;
    for (int i = 0; i < d; i++) {
        double x = a[i] / na, y = b[i] / nb;
        diff += (x - y) * (x - y);
        sum += (x + y) * (x + y);
    }
    double omega = 2.0 * atan2(sqrt(diff), sqrt(sum));
    double s = sin(omega);
    if (s < 1e-6) { /* parallel or opposite: the great circle is not defined */
        lerp_latent(a, b, d, t, out);
        return;
    }
    double wa = sin((1.0 - t) * omega) / s, wb = sin(t * omega) / s;
    double magnitude = (1.0 - t) * na + t * nb;
    for (int i = 0; i < d; i++) out[i] = (float)(magnitude * (wa * a[i] / na + wb * b[i] / nb));
}
