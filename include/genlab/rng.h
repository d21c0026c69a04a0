/* rng.h — seeded random numbers with independent streams.
 *
 * splitmix64 is used for the study split (DESIGN.md spells it out so that
 * any tool can rebuild the split) and to seed xoshiro256**, the generator
 * behind every other draw. A generator is identified by (seed, stream,
 * counter): training derives the noise of optimizer step s from
 * (seed, RNG_NOISE, s) and the data order of epoch e from
 * (seed, RNG_DATA, e), so a run's randomness is a pure function of the seed
 * and its position, and resuming needs no generator state beyond the
 * (epoch, step) counters a checkpoint already stores. */
#ifndef GENLAB_RNG_H
#define GENLAB_RNG_H

#include <stdint.h>

enum RngStream {
    RNG_DATA = 1,  /* order of training images, per epoch */
    RNG_INIT = 2,  /* weight initialisation */
    RNG_NOISE = 3, /* reparameterisation / diffusion noise, per step */
    RNG_EVAL = 4,  /* evaluation: fixed, so figures repeat */
    RNG_SAMPLE = 5 /* prior samples asked for by the user */
};

typedef struct {
    uint64_t s[4];
    int has_spare; /* Box–Muller makes normals in pairs */
    float spare;
} Rng;

/* splitmix64 step: advances *state and returns the next output. */
uint64_t splitmix64_next(uint64_t *state);

void rng_seed(Rng *r, uint64_t seed, uint64_t stream, uint64_t counter);
uint64_t rng_u64(Rng *r);
/* Uniform in [0, n), unbiased (rejection). n >= 1. */
uint64_t rng_below(Rng *r, uint64_t n);
/* Uniform float in [0, 1) with 24 random bits. */
float rng_uniform(Rng *r);
/* Standard normal (Box–Muller in double, both outputs used). */
float rng_normal(Rng *r);
void rng_fill_normal(Rng *r, float *out, int64_t n);
/* Fisher–Yates shuffle of idx[0..n) with this generator. */
void rng_shuffle(Rng *r, int32_t *idx, int64_t n);

#endif
