/* tui.h — the terminal UI: `genlab` with no command. */
#ifndef GENLAB_TUI_H
#define GENLAB_TUI_H

typedef struct {
    int ascii, no_color, inverted;
    const char *ckpt;     /* model to open on; NULL: the shipped conv VAE (d = 2, β = 1) */
    const char *data_dir; /* NULL: the shipped MNIST */
} TuiOptions;

/* Runs until the user quits; returns the exit status. */
int tui_main(const TuiOptions *o);
/* Parses genlab's TUI options (argv[0] is "genlab"); returns 0, or the
 * exit status to return at once (help printed, usage error). */
int tui_parse_args(int argc, char **argv, TuiOptions *o, int *exit_status);

#endif
