/* genlab — a terminal laboratory for generative models on MNIST.
 * main only parses the command name and dispatches. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "genlab/blas.h"
#include "genlab/cli.h"
#include "genlab/tui.h"
#include "genlab_config.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} Command;

static const Command commands[] = {
    {"info", cmd_info, "a model's layer table, a checkpoint's contents, or the setup"},
    {"train", cmd_train, "train a β-VAE (the study's recipe by default)"},
    {"eval", cmd_eval, "test losses of a checkpoint (BCE, KLD, per image)"},
    {"recon", cmd_recon, "test digits and their reconstructions, as an image"},
    {"sample", cmd_sample, "digits decoded from the prior, as an image"},
    {"encode", cmd_encode, "μ and log σ² of every test image, as TSV"},
    {"ddpm", cmd_ddpm, "the diffusion model: info, train, eval, sample"},
};

static void usage(FILE *f)
{
    fprintf(f, "genlab %s — a terminal laboratory for generative models on MNIST\n\n"
               "usage: genlab COMMAND [options]     (genlab COMMAND --help for its options)\n\n",
            GENLAB_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\nWith no command, genlab opens its terminal UI (genlab --ascii, --no-color,\n"
               "--invert, --ckpt FILE, --data DIR; keys: ? in the UI).\n");
}

/* No command: the terminal UI, given a terminal. */
static int run_tui(int argc, char **argv)
{
    TuiOptions o;
    int status;
    if (tui_parse_args(argc, argv, &o, &status)) return status;
    if (!isatty(0) || !isatty(1)) {
        fprintf(stderr, "genlab: the terminal UI needs a terminal; the headless commands:\n\n");
        usage(stderr);
        return 2;
    }
    return tui_main(&o);
}

int main(int argc, char **argv)
{
    blas_ensure_fast_kernel(argv);
    if (argc >= 2 && (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
                      strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return 0;
    }
    if (argc < 2 || argv[1][0] == '-') {
        if (argc >= 2 && strcmp(argv[1], "--version") == 0) {
            printf("genlab %s\n", GENLAB_VERSION);
            return 0;
        }
        return run_tui(argc, argv);
    }
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "genlab: unknown command \"%s\"\n", argv[1]);
    usage(stderr);
    return 2;
}
