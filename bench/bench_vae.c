/* bench_vae — training throughput of the study's VAEs.
 *
 * For each arch (conv, dense) and thread count (1, 2): 20 warm-up steps,
 * then `steps` timed optimizer steps (forward, backward, Adam) at batch 64
 * on real MNIST batches. Prints one JSON line per case, then the peak
 * resident memory. Usage: bench_vae [steps] (default 300). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "genlab/blas.h"
#include "genlab/progress.h"
#include "genlab/train.h"

static double images_per_second(VaeArch arch, int threads, int steps, const StudyData *data)
{
    TrainConfig c = train_config_default();
    c.model = (VaeConfig){arch, 2};
    c.epochs = 1000;
    c.eval_limit = 1;
    c.threads = threads;
    Trainer t;
    Err e;
    if (trainer_init(&t, &c, data, &e)) {
        fprintf(stderr, "bench_vae: %s\n", e.msg);
        exit(1);
    }
    t.cfg.max_steps = 20;
    trainer_run(&t, NULL, &e);
    t.cfg.max_steps = 20 + steps;
    double t0 = monotonic_seconds();
    trainer_run(&t, NULL, &e);
    double dt = monotonic_seconds() - t0;
    trainer_free(&t);
    return steps * c.batch / dt;
}

int main(int argc, char **argv)
{
    blas_ensure_fast_kernel(argv);
    int steps = argc > 1 ? atoi(argv[1]) : 300;
    if (steps < 1) steps = 300;
    StudyData *data = malloc(sizeof *data);
    Err e;
    if (!data || study_data_load(data, NULL, &e)) {
        fprintf(stderr, "bench_vae: %s\n", data ? e.msg : "out of memory");
        return 1;
    }
    const VaeArch archs[2] = {ARCH_CONV, ARCH_DENSE};
    for (int a = 0; a < 2; a++)
        for (int threads = 1; threads <= 2; threads++) {
            double ips = images_per_second(archs[a], threads, steps, data);
            json_t *o = json_pack("{s:s,s:s,s:i,s:i,s:f,s:s}", "impl", "genlab", "arch",
                                  vae_arch_name(archs[a]), "threads", threads, "batch", 64,
                                  "images_per_second", ips, "blas_core", blas_core_name());
            char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(6));
            puts(s);
            fflush(stdout);
            free(s);
            json_decref(o);
        }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("{\"impl\":\"genlab\",\"peak_rss_mb\":%.1f}\n", ru.ru_maxrss / 1024.0);
    study_data_free(data);
    free(data);
    return 0;
}
