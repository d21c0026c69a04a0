/* ckpt_example OUT.safetensors.zst — writes a tiny checkpoint with known
 * contents, for the PyTorch loading test (tests/test_ckpt_torch.py). */
#include <stdio.h>

#include "genlab/checkpoint.h"

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUT.safetensors.zst\n", argv[0]);
        return 2;
    }
    const float weight[6] = {0, 1, 2, 3, 4, 5};
    const float bias[2] = {-1.5f, 2.25f};
    const CkptTensorView tensors[] = {
        {.name = "enc.fc_mu.weight", .ndim = 2, .shape = {2, 3}, .data = weight},
        {.name = "enc.fc_mu.bias", .ndim = 1, .shape = {2}, .data = bias},
    };
    const CkptMeta meta[] = {
        {"format", "genlab-vae"},
        {"format_version", "1"},
        {"arch", "dense"},
    };
    Err e;
    if (ckpt_write(argv[1], tensors, 2, meta, 3, &e)) {
        fprintf(stderr, "ckpt_example: %s\n", e.msg);
        return 1;
    }
    return 0;
}
