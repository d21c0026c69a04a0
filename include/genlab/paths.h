/* paths.h — finding assets/ and checkpoints/ from any directory
 * (DESIGN.md, "Finding its files").
 *
 * Search order: $GENLAB_HOME, the source tree the binary was built from,
 * the installed data directory (meson's datadir/genlab). A directory
 * counts when it holds the thing looked for (assets/ with the MNIST
 * training images, checkpoints/). */
#ifndef GENLAB_PATHS_H
#define GENLAB_PATHS_H

#include <stddef.h>

#include "genlab/error.h"

/* Writes the assets directory into out. On failure the message lists
 * every place it looked and suggests --data or GENLAB_HOME. */
int paths_assets_dir(char *out, size_t cap, Err *e);
/* The checkpoints directory (same search). */
int paths_checkpoints_dir(char *out, size_t cap, Err *e);
/* The model genlab opens on when none is named: the shipped conv VAE
 * (d = 2, β = 1). */
int paths_default_vae(char *out, size_t cap, Err *e);
/* The shipped DDPM: <checkpoints>/ddpm.safetensors.zst. */
int paths_default_ddpm(char *out, size_t cap, Err *e);

#endif
