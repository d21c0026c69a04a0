/* fastmath.h — branch-free e^x and σ(x), and a float sum, that vectorise,
 * for the element-wise kernels (kernels.c, kernels_unet.c). Internal to src/. */
#ifndef GENLAB_FASTMATH_H
#define GENLAB_FASTMATH_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

/* e^x for x ≤ 0, branch-free so that loops over it vectorise (glibc's
 * expf/log1pf are scalar calls and were a tenth of a conv VAE step).
 * Cephes' expf: x = n·ln2 + r, |r| ≤ ln2/2, a degree-6 polynomial for e^r,
 * 2^n by building the exponent bits; relative error below 2e-7. */
static inline float exp_nonpos(float x)
{
    x = x > -104.0f ? x : -104.0f; /* e^-104 underflows to 0, as expf's does */
    /* n = round(x / ln 2) by the 1.5·2²³ trick: floorf and rintf calls
     * would keep the loop scalar */
    const float magic = 12582912.0f;
    float n = (x * 1.44269504089f + magic) - magic;
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    /* 2^n as two normal factors, so that results down to the denormals
     * (n ≥ −150) stay exact */
    int32_t n1 = (int32_t)n / 2, n2 = (int32_t)n - n1;
    /* a union, not memcpy: GCC vectorises the former */
    union { int32_t i; float f; } s1 = {.i = (n1 + 127) * (1 << 23)}, s2 = {.i = (n2 + 127) * (1 << 23)};
    return p * s1.f * s2.f;
}

/* σ(l) through e^−|l|, so that nothing overflows. */
static inline float sigmoid_stable(float l)
{
    float y = exp_nonpos(-fabsf(l));
    return l >= 0.0f ? 1.0f / (1.0f + y) : y / (1.0f + y);
}

/* Σ p[0..n), with 16 partial sums so that the compiler can vectorise it
 * (it may not reorder a single float accumulator). */
static inline float sum_floats(const float *p, size_t n)
{
    float acc[16] = {0};
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) acc[j] += p[i + j];
    float s = 0.0f;
    for (; i < n; i++) s += p[i];
    for (int j = 0; j < 16; j++) s += acc[j];
    return s;
}

#endif
