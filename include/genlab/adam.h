/* adam.h — Adam with PyTorch's defaults (β₁ 0.9, β₂ 0.999, ε 1e-8, no
 * weight decay), one flat loop over a model's parameter buffer. */
#ifndef GENLAB_ADAM_H
#define GENLAB_ADAM_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    float lr, eps;
    double beta1, beta2; /* double, so that 1 − β rounds as in torch: float(1 − 0.999) */
    int64_t t;  /* steps taken so far */
    size_t n;
    float *m;   /* first moments, n floats (owned) */
    float *v;   /* second moments, n floats (owned) */
} Adam;

/* Returns -1 when the moment buffers cannot be allocated. */
int adam_init(Adam *a, size_t n, float lr);
void adam_free(Adam *a);
/* One step: t += 1, then the bias-corrected update of params from grads,
 * as torch.optim.Adam computes it. */
void adam_step(Adam *a, float *params, const float *grads);
/* The same step split for several threads: adam_begin_step once (t += 1),
 * then adam_update over disjoint ranges [lo, hi) that cover 0..n. */
void adam_begin_step(Adam *a);
void adam_update(const Adam *a, float *params, const float *grads, size_t lo, size_t hi);

#endif
