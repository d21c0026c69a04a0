#include "genlab/pool.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    Pool *pool;
    int index;
} WorkerArg;

struct Pool {
    int n;
    pthread_t threads[POOL_MAX];
    WorkerArg args[POOL_MAX];
    pthread_mutex_t mu;
    pthread_cond_t go;   /* a new job (or quit) */
    pthread_cond_t done; /* the last worker finished */
    uint64_t generation; /* bumped for every job */
    int pending;         /* workers still running the current job */
    int quit;
    PoolFn fn;
    void *ctx;
};

static void *worker_main(void *arg)
{
    WorkerArg *w = arg;
    Pool *p = w->pool;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    uint64_t seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->generation == seen && !p->quit) pthread_cond_wait(&p->go, &p->mu);
        if (p->quit) break;
        seen = p->generation;
        PoolFn fn = p->fn;
        void *ctx = p->ctx;
        pthread_mutex_unlock(&p->mu);
        fn(ctx, w->index, p->n);
        pthread_mutex_lock(&p->mu);
        if (--p->pending == 0) pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

Pool *pool_create(int n, Err *e)
{
    if (n < 1 || n > POOL_MAX) {
        err_set(e, "thread count %d is out of range (1..%d)", n, POOL_MAX);
        return NULL;
    }
    Pool *p = calloc(1, sizeof *p);
    if (!p) {
        err_set(e, "out of memory for a thread pool");
        return NULL;
    }
    p->n = 1;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->go, NULL);
    pthread_cond_init(&p->done, NULL);
    for (int i = 1; i < n; i++) {
        p->args[i] = (WorkerArg){p, i};
        if (pthread_create(&p->threads[i], NULL, worker_main, &p->args[i]) != 0) {
            pool_destroy(p);
            err_set(e, "cannot start worker thread %d of %d", i + 1, n);
            return NULL;
        }
        p->n = i + 1;
    }
    return p;
}

void pool_run(Pool *p, PoolFn fn, void *ctx)
{
    if (p->n > 1) {
        pthread_mutex_lock(&p->mu);
        p->fn = fn;
        p->ctx = ctx;
        p->pending = p->n - 1;
        p->generation++;
        pthread_cond_broadcast(&p->go);
        pthread_mutex_unlock(&p->mu);
    }
    fn(ctx, 0, p->n);
    if (p->n > 1) {
        pthread_mutex_lock(&p->mu);
        while (p->pending > 0) pthread_cond_wait(&p->done, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
}

int pool_size(const Pool *p) { return p->n; }

void pool_destroy(Pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++) pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->go);
    pthread_cond_destroy(&p->done);
    free(p);
}

int pool_cpu_count(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

void pool_share(size_t n, int w, int nw, size_t *lo, size_t *hi)
{
    size_t per = (n + (size_t)nw - 1) / (size_t)nw;
    *lo = per * (size_t)w < n ? per * (size_t)w : n;
    *hi = *lo + per < n ? *lo + per : n;
}
