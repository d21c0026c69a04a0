#include "genlab/progress.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

void format_duration(char *out, size_t cap, double seconds)
{
    if (!(seconds >= 0) || seconds > 359999) {
        snprintf(out, cap, "--:--");
        return;
    }
    long s = lround(seconds);
    if (s >= 3600) snprintf(out, cap, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
    else snprintf(out, cap, "%ld:%02ld", s / 60, s % 60);
}

/* A bar of `cells` cells filled to `frac`, in eighths with UTF-8 blocks. */
static size_t draw_bar(char *out, size_t cap, double frac, int cells, int utf8)
{
    static const char *eighths[] = {"", "▏", "▎", "▍", "▌", "▋", "▊", "▉"};
    if (frac < 0) frac = 0;
    if (frac > 1) frac = 1;
    int total = (int)(frac * cells * 8 + 0.5);
    size_t n = 0;
    for (int c = 0; c < cells && n + 4 < cap; c++) {
        int fill = total - c * 8;
        const char *piece = fill >= 8 ? (utf8 ? "█" : "#") : fill > 0 && utf8 ? eighths[fill] : " ";
        size_t len = strlen(piece);
        if (len == 0) piece = " ", len = 1;
        memcpy(out + n, piece, len);
        n += len;
    }
    out[n] = '\0';
    return n;
}

int progress_format(char *out, size_t cap, const ProgressInfo *p, int width, int utf8)
{
    char eta[32], head[64], tail[160];
    format_duration(eta, sizeof eta, p->eta_seconds);
    double frac = p->batches > 0 ? (double)p->batch / p->batches : 0;
    int hw = snprintf(head, sizeof head, "epoch %2d/%d ", p->epoch, p->epochs);
    int tw = snprintf(tail, sizeof tail, " %3d%%  batch %d/%d  loss %.2f  %.0f img/s  ETA %s",
                      (int)(frac * 100), p->batch, p->batches, p->loss, p->images_per_second, eta);
    int cells = width - hw - tw - 2;
    if (cells > 40) cells = 40;
    char bar[40 * 4 + 1] = "";
    if (cells >= 5) draw_bar(bar, sizeof bar, frac, cells, utf8);
    else cells = 0;
    snprintf(out, cap, "%s%s%s%s%s", head, cells ? "[" : "", bar, cells ? "]" : "", tail);
    return hw + tw + (cells ? cells + 2 : 0);
}

double monotonic_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
