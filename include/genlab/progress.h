/* progress.h — the headless training progress line.
 *
 * Pure formatting: progress_format writes one line (no newline) such as
 *   epoch  3/20 [██████████▌         ] 52%  batch 391/750  loss 152.31  9,812 img/s  ETA 1:12
 * sized to `width` columns; the CLI redraws it with '\r' on a terminal. */
#ifndef GENLAB_PROGRESS_H
#define GENLAB_PROGRESS_H

#include <stddef.h>

typedef struct {
    int epoch, epochs;     /* 1-based current epoch */
    int batch, batches;    /* batches done in this epoch, of */
    double loss;           /* smoothed per-image loss */
    double images_per_second;
    double eta_seconds;    /* < 0: unknown */
} ProgressInfo;

/* Writes at most cap bytes (NUL included). Uses UTF-8 block characters
 * when utf8 is nonzero, '#' otherwise. Returns the text's display width. */
int progress_format(char *out, size_t cap, const ProgressInfo *p, int width, int utf8);

/* Seconds on the monotonic clock: what every throughput, ETA and "took"
 * figure is measured with. */
double monotonic_seconds(void);

/* "1:12", "1:02:03", "--:--" for negative. */
void format_duration(char *out, size_t cap, double seconds);

#endif
