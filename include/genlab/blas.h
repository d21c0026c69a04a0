/* blas.h — making sure OpenBLAS uses its fast kernel (DESIGN.md, "OpenBLAS
 * on these machines").
 *
 * Debian's OpenBLAS picks its kernels from the CPU model when it loads; on
 * some virtual machines it does not recognise the model and falls back to a
 * generic SSE3 kernel five times slower. The library reads
 * OPENBLAS_CORETYPE only at load time, so the fix is to set it and
 * re-execute the program once. */
#ifndef GENLAB_BLAS_H
#define GENLAB_BLAS_H

/* Call first thing in main(). If the user did not set OPENBLAS_CORETYPE,
 * the kernel in use is a generic one, and the CPU supports AVX-512F (or
 * AVX2), sets OPENBLAS_CORETYPE=SkylakeX (or Haswell) and re-executes
 * /proc/self/exe with the same arguments. Returns only when no re-exec was
 * needed or it failed (then genlab runs on, slower). GENLAB_NO_REEXEC=1
 * turns this off. */
void blas_ensure_fast_kernel(char **argv);

/* The kernel OpenBLAS uses ("SkylakeX", "Haswell", "Prescott", …). */
const char *blas_core_name(void);
/* Whether genlab chose the kernel (1) or it was the library's / the user's (0). */
int blas_kernel_was_forced(void);

void blas_set_threads(int n);
int blas_get_threads(void);

#endif
