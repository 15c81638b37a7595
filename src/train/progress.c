// Progress reporting for long verbs.
#include "train/progress.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

double vkd_progress_clock(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

void vkd_progress_begin(vkd_progress *p, const char *what, const char *unit, int64_t start, int64_t total) {
    p->what = what, p->unit = unit, p->start = start, p->total = total;
    p->t0 = vkd_progress_clock();
    p->last_print = 0;
    p->tty = isatty(2);
}

static void fmt_time(double s, char *buf, size_t n) {
    if (s < 0 || s > 1e7) snprintf(buf, n, "--:--");
    else if (s >= 3600) snprintf(buf, n, "%d:%02d:%02d", (int)(s / 3600), (int)(s / 60) % 60, (int)s % 60);
    else snprintf(buf, n, "%02d:%02d", (int)(s / 60), (int)s % 60);
}

// "12.3 img/s", or "20.5 s/step" when an item takes longer than a second (a teacher's sampler
// step over 1,000 images), where a rate would print as 0.0.
static void fmt_rate(double per_s, const char *unit, char *buf, size_t n) {
    if (per_s > 0 && per_s < 0.95) snprintf(buf, n, "%.1f s/%s", 1 / per_s, unit);
    else snprintf(buf, n, "%.1f %s/s", per_s, unit);
}

static void print(vkd_progress *p, int64_t done, double upi, const char *extra, int final) {
    double now = vkd_progress_clock(), el = now - p->t0;
    double rate = el > 0 ? (double)(done - p->start) / el : 0;  // items per second
    double eta = rate > 0 ? (double)(p->total - done) / rate : -1;
    char e1[32], e2[32], r[64];
    fmt_rate(rate * upi, p->unit, r, sizeof r);
    fmt_time(el, e1, sizeof e1);
    fmt_time(eta, e2, sizeof e2);
    double frac = p->total > 0 ? (double)done / p->total : 0;
    if (p->tty) {
        char bar[31];
        int fill = (int)(frac * 30 + 0.5);
        for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
        bar[30] = 0;
        fprintf(stderr, "\r%s [%s] %lld/%lld %5.1f%% | %s | %s<%s | %s\033[K%s", p->what, bar, (long long)done,
                (long long)p->total, 100 * frac, r, e1, e2, extra ? extra : "", final ? "\n" : "");
    } else {
        fprintf(stderr, "%s %lld/%lld (%.1f%%) %s elapsed %s eta %s %s\n", p->what, (long long)done,
                (long long)p->total, 100 * frac, r, e1, e2, extra ? extra : "");
    }
    fflush(stderr);
    p->last_print = now;
}

void vkd_progress_update(vkd_progress *p, int64_t done, double upi, const char *extra) {
    double now = vkd_progress_clock();
    if (now - p->last_print < (p->tty ? 0.2 : 10.0)) return;
    print(p, done, upi, extra, 0);
}

void vkd_progress_end(vkd_progress *p, int64_t done, double upi, const char *extra) { print(p, done, upi, extra, 1); }
