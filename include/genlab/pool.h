/* pool.h — a fixed set of worker threads that run one function together.
 *
 * pool_run(fn) calls fn(ctx, w, n) once for every worker w in 0..n−1 and
 * returns when all have finished; the calling thread is worker 0, so a
 * pool of 1 runs everything inline. Used for data-parallel training: each
 * worker takes a shard of the batch, with single-threaded BLAS, which
 * scales far better on small GEMMs than OpenBLAS's own threads.
 * Workers block every asynchronous signal, so signals reach only the
 * threads that expect them. */
#ifndef GENLAB_POOL_H
#define GENLAB_POOL_H

#include <stddef.h>

#include "genlab/error.h"

#define POOL_MAX 64

typedef struct Pool Pool;
typedef void (*PoolFn)(void *ctx, int worker, int nworkers);

/* n ≥ 1 workers in all (n − 1 threads). NULL with e filled on failure. */
Pool *pool_create(int n, Err *e);
void pool_run(Pool *p, PoolFn fn, void *ctx);
int pool_size(const Pool *p);
void pool_destroy(Pool *p);

/* Worker w's part [lo, hi) of n items shared among nw workers, in nearly
 * equal contiguous parts (the last ones may be short or empty). */
void pool_share(size_t n, int w, int nw, size_t *lo, size_t *hi);

/* The number of CPUs this process may use (at least 1). */
int pool_cpu_count(void);

#endif
