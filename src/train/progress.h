#ifndef VKD_TRAIN_PROGRESS_H
#define VKD_TRAIN_PROGRESS_H
// A progress bar with rate and ETA on a terminal; plain log lines (one every
// few seconds) when stderr is not a TTY, so CI logs stay readable.
#include <stdint.h>

typedef struct {
    const char *what;  // "train", "distill", "sample", ...
    const char *unit;  // "img", "step", ...
    int64_t total, start;
    double t0, last_print;
    int tty;
} vkd_progress;

double vkd_progress_clock(void);  // seconds, monotonic
void vkd_progress_begin(vkd_progress *p, const char *what, const char *unit, int64_t start, int64_t total);
// done: items completed so far (absolute); extra: a short status ("loss 0.123").
void vkd_progress_update(vkd_progress *p, int64_t done, double units_per_item, const char *extra);
void vkd_progress_end(vkd_progress *p, int64_t done, double units_per_item, const char *extra);

#endif
