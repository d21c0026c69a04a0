#include "genlab/paths.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "genlab_config.h"

/* The roots to try, in order; NULL entries are skipped. */
static int candidate_roots(const char *roots[3])
{
    roots[0] = getenv("GENLAB_HOME");
    roots[1] = GENLAB_SOURCE_DIR;
    roots[2] = GENLAB_DATA_DIR;
    return 3;
}

static int find_under_roots(const char *sub, const char *probe, const char *what, char *out,
                            size_t cap, Err *e)
{
    const char *roots[3];
    int n = candidate_roots(roots);
    char tried[384] = "";
    for (int i = 0; i < n; i++) {
        if (!roots[i] || !roots[i][0]) continue;
        char probe_path[4096];
        snprintf(out, cap, "%s/%s", roots[i], sub);
        snprintf(probe_path, sizeof probe_path, "%s/%s", out, probe);
        if (access(probe_path, R_OK) == 0) return 0;
        size_t len = strlen(tried);
        snprintf(tried + len, sizeof tried - len, "%s%s", len ? ", " : "", out);
    }
    return err_set(e, "cannot find %s (looked in: %s); set GENLAB_HOME to the genlab directory%s",
                   what, tried[0] ? tried : "nowhere",
                   strcmp(sub, "assets") == 0 ? " or pass --data DIR" : " or pass --ckpt FILE");
}

int paths_assets_dir(char *out, size_t cap, Err *e)
{
    return find_under_roots("assets", "train-labels-idx1-ubyte.idx.zst", "the MNIST data", out, cap, e);
}

int paths_checkpoints_dir(char *out, size_t cap, Err *e)
{
    return find_under_roots("checkpoints", ".", "the checkpoints directory", out, cap, e);
}

int paths_default_vae(char *out, size_t cap, Err *e)
{
    char dir[4000];
    if (paths_checkpoints_dir(dir, sizeof dir, e)) return -1;
    snprintf(out, cap, "%s/vae-conv-d2-b1.safetensors.zst", dir);
    return 0;
}

int paths_default_ddpm(char *out, size_t cap, Err *e)
{
    char dir[4000];
    if (paths_checkpoints_dir(dir, sizeof dir, e)) return -1;
    snprintf(out, cap, "%s/ddpm.safetensors.zst", dir);
    return 0;
}
