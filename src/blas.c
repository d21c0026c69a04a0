#include "genlab/blas.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FORCED_MARK "GENLAB_BLAS_FORCED"

static int kernel_is_generic(const char *core)
{
    static const char *generic[] = {"Prescott", "Core2", "Penryn", "Dunnington", "Nehalem",
                                    "Atom", "Katmai", "Coppermine", "Northwood", "Banias"};
    for (size_t i = 0; i < sizeof generic / sizeof *generic; i++)
        if (strcasecmp(core, generic[i]) == 0) return 1;
    return 0;
}

static const char *best_kernel_for_cpu(void)
{
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return "SkylakeX";
    if (__builtin_cpu_supports("avx2")) return "Haswell";
    return NULL;
}

void blas_ensure_fast_kernel(char **argv)
{
    if (getenv("OPENBLAS_CORETYPE") || getenv(FORCED_MARK)) return;
    const char *no = getenv("GENLAB_NO_REEXEC");
    if (no && strcmp(no, "1") == 0) return;
    if (!kernel_is_generic(blas_core_name())) return;
    const char *best = best_kernel_for_cpu();
    if (!best) return;
    setenv("OPENBLAS_CORETYPE", best, 1);
    setenv(FORCED_MARK, "1", 1); /* never loop, even if the library ignores us */
    execv("/proc/self/exe", argv);
    /* exec failed: carry on with the slow kernel rather than fail. */
    unsetenv("OPENBLAS_CORETYPE");
}

const char *blas_core_name(void)
{
    const char *c = openblas_get_corename();
    return c ? c : "unknown";
}

int blas_kernel_was_forced(void)
{
    return getenv(FORCED_MARK) != NULL && getenv("OPENBLAS_CORETYPE") != NULL;
}

void blas_set_threads(int n) { openblas_set_num_threads(n); }
int blas_get_threads(void) { return openblas_get_num_threads(); }
