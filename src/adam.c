#include "genlab/adam.h"

#include <math.h>
#include <stdlib.h>

int adam_init(Adam *a, size_t n, float lr)
{
    *a = (Adam){.lr = lr, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8f, .n = n};
    a->m = calloc(n ? n : 1, sizeof *a->m);
    a->v = calloc(n ? n : 1, sizeof *a->v);
    if (!a->m || !a->v) {
        adam_free(a);
        return -1;
    }
    return 0;
}

void adam_free(Adam *a)
{
    free(a->m);
    free(a->v);
    a->m = a->v = NULL;
}

void adam_begin_step(Adam *a) { a->t++; }

void adam_step(Adam *a, float *params, const float *grads)
{
    adam_begin_step(a);
    adam_update(a, params, grads, 0, a->n);
}

void adam_update(const Adam *a, float *params, const float *grads, size_t lo, size_t hi)
{
    /* torch: step_size = lr / (1 − β₁ᵗ); denom = √v / √(1 − β₂ᵗ) + ε */
    const double bc1 = 1.0 - pow(a->beta1, (double)a->t);
    const double bc2 = 1.0 - pow(a->beta2, (double)a->t);
    const float step_size = (float)(a->lr / bc1);
    const float inv_sqrt_bc2 = (float)(1.0 / sqrt(bc2));
    const float b1 = (float)a->beta1, b2 = (float)a->beta2, eps = a->eps;
    const float c1 = (float)(1.0 - a->beta1), c2 = (float)(1.0 - a->beta2);
    float *m = a->m, *v = a->v;
    for (size_t i = lo; i < hi; i++) {
        float g = grads[i];
        m[i] = b1 * m[i] + c1 * g;
        v[i] = b2 * v[i] + c2 * g * g;
        params[i] -= step_size * m[i] / (sqrtf(v[i]) * inv_sqrt_bc2 + eps);
    }
}
