/* latent.h — the maths behind the latent explorer: 2-D views of the latent
 * space (two chosen axes, or a PCA projection), the view window (pan,
 * zoom), the decoded grid's coordinates (normal quantiles or a box around
 * the data), class centroids, and interpolation. Pure functions over
 * doubles; no model, no drawing. */
#ifndef GENLAB_LATENT_H
#define GENLAB_LATENT_H

#include <stdint.h>

#define LATENT_MAX_D 512

/* A linear map between the full latent space (d dims) and the plane:
 * z = origin + u·e1 + v·e2, and (u, v) = ((z − origin)·e1, (z − origin)·e2).
 * e1, e2 orthonormal. For "two axes" views e1, e2 are unit vectors and the
 * origin holds the other coordinates (zero or a picked point). */
typedef struct {
    int d;
    double origin[LATENT_MAX_D];
    double e1[LATENT_MAX_D], e2[LATENT_MAX_D];
} LatentPlane;

/* Axes view: e1 = unit vector of axis a, e2 of axis b (a != b, both < d),
 * origin = `hold` (d values) with its a and b coordinates zeroed, or zero
 * when hold is NULL. Returns -1 on bad axes. */
int plane_axes(LatentPlane *p, int d, int a, int b, const double *hold);

/* PCA view of n points (row-major n × d, float as the encoder writes
 * them): origin = their mean, e1, e2 the first two principal directions
 * (power iteration with deflation on the d × d covariance, in double;
 * each direction's sign fixed so that its largest-magnitude component is
 * positive, so views are stable). explained[0..1] receive the share of
 * total variance each direction explains (may be NULL). d = 1 → -1;
 * d = 2 → an orthogonal change of basis, mirrored when the sign rule
 * makes it so. Returns -1 when n < 2. */
int plane_pca(LatentPlane *p, const float *points, int n, int d, double explained[2]);

/* Projects one latent vector (d floats) to (u, v), and back: z (d floats)
 * from (u, v). */
void plane_project(const LatentPlane *p, const float *z, double *u, double *v);
void plane_lift(const LatentPlane *p, double u, double v, float *z);

/* The visible window of the plane: centre and half-widths. */
typedef struct {
    double cu, cv;   /* centre */
    double hu, hv;   /* half-widths (> 0) */
} View;

/* A window that holds all n projected points (u[i], v[i]) with a 5%
 * margin, squared up so that one unit is as long on both axes given the
 * aspect (width / height of the area in pixels or dots). */
View view_fit(const double *u, const double *v, int n, double aspect);
/* Zoom by `factor` (> 1 zooms in) about the centre; pan by (du, dv) in
 * units of the half-widths (1.0 = half a screen). */
View view_zoom(View w, double factor);
View view_pan(View w, double du, double dv);
/* Window coordinates ↔ plane: (fx, fy) in [0,1]² with (0,0) the top-left
 * corner (y grows downwards, v upwards). */
void view_to_plane(const View *w, double fx, double fy, double *u, double *v);
void view_from_plane(const View *w, double u, double v, double *fx, double *fy);

/* The standard normal's inverse CDF Φ⁻¹(p) for p in (0, 1) (Acklam's
 * algorithm with one Halley step: |error| < 1e-12). */
double normal_quantile(double p);

/* n grid coordinates along one axis: normal quantiles at probabilities
 * evenly spaced over [0.05, 0.95] (the TensorFlow CVAE tutorial's grid),
 * or evenly spaced over [lo, hi] (a box around the data). n ≥ 2. */
void grid_quantiles(double *out, int n);
void grid_box(double *out, int n, double lo, double hi);

/* Mean of the points with each label (labels 0..nclass−1; n × d points):
 * centroids (nclass × d, double) and counts (nclass). */
void class_centroids(const float *points, const uint8_t *labels, int n, int d, int nclass,
                     double *centroids, int *counts);

/* Interpolation from a to b (d floats) at t in [0, 1], into out:
 * linear (1 − t)·a + t·b, and spherical (slerp: along the great circle,
 * magnitudes interpolated linearly; falls back to linear when a and b are
 * nearly parallel or one is zero). Endpoints are exact: t = 0 → a,
 * t = 1 → b. */
void lerp_latent(const float *a, const float *b, int d, double t, float *out);
void slerp_latent(const float *a, const float *b, int d, double t, float *out);

#endif
