#ifndef VKD_TEST_HARNESS_H
#define VKD_TEST_HARNESS_H
// A tiny test harness: CHECK counts, a context under validation, and helpers
// to move data between the device and double-precision references. The last
// line of every test program is "N passed, M failed".
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vkdistill/vkdistill.h"

static int t_pass, t_fail;

#define CHECK(cond, ...)                                                     \
    do {                                                                     \
        if (cond) {                                                          \
            t_pass++;                                                        \
        } else {                                                             \
            t_fail++;                                                        \
            fprintf(stdout, "FAIL %s:%d: ", __FILE__, __LINE__);             \
            fprintf(stdout, __VA_ARGS__);                                    \
            fprintf(stdout, "\n");                                           \
        }                                                                    \
    } while (0)

static inline vkd_ctx *t_open(void) {
    char err[512];
    vkd_ctx_opts o = {.validation = -1, .quiet = 0};
    vkd_ctx *ctx = vkd_ctx_create(&o, err, sizeof err);
    if (!ctx) {
        printf("cannot create a Vulkan context: %s\n0 passed, 1 failed\n", err);
        exit(1);
    }
    return ctx;
}

// Ends the test: validation messages count as a failure.
static inline int t_close(vkd_ctx *ctx) {
    int msgs = vkd_ctx_validation_messages(ctx), npipe = 0;
    double pipe_s = 0;
    vkd_ctx_pipeline_stats(ctx, &npipe, &pipe_s);
    printf("pipelines: %d created, %.1f s of creation\n", npipe, pipe_s);
    vkd_ctx_destroy(ctx);
    CHECK(msgs == 0, "%d validation message(s)", msgs);
    printf("%d passed, %d failed\n", t_pass, t_fail);
    return t_fail ? 1 : 0;
}

// Deterministic test data (an LCG; independent of the code under test).
static unsigned long long t_rng = 0x9E3779B97F4A7C15ull;
static inline double t_uniform(void) {
    t_rng = t_rng * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(t_rng >> 11) / 9007199254740992.0;
}
static inline void t_fill(double *x, long n, double lo, double hi) {
    for (long i = 0; i < n; i++) x[i] = lo + (hi - lo) * t_uniform();
}

// A persistent tensor holding the float rounding of x (and x rounded in place,
// so the reference sees exactly what the device sees).
static inline vkd_tensor *t_tensor(vkd_ctx *ctx, const char *name, int ndim, const int64_t *shape, double *x, int flags) {
    vkd_tensor *t = vkd_tensor_new(ctx, name, ndim, shape, flags);
    if (!t) {
        printf("tensor %s: %s\n", name, vkd_ctx_error(ctx));
        exit(1);
    }
    long n = (long)vkd_tensor_numel(t);
    float *f = malloc(n * sizeof *f);
    for (long i = 0; i < n; i++) f[i] = (float)x[i], x[i] = f[i];
    vkd_tensor_upload(t, f);
    free(f);
    return t;
}

static inline double *t_download(const vkd_tensor *t) {
    long n = (long)vkd_tensor_numel(t);
    float *f = malloc(n * sizeof *f);
    double *d = malloc(n * sizeof *d);
    if (vkd_tensor_download(t, f)) printf("download of %s failed\n", vkd_tensor_name(t));
    for (long i = 0; i < n; i++) d[i] = f[i];
    free(f);
    return d;
}

// max |t| over a device tensor.
static inline double t_max_abs(const vkd_tensor *t) {
    double *d = t_download(t), m = 0;
    for (int64_t i = 0; i < vkd_tensor_numel(t); i++) m = fmax(m, fabs(d[i]));
    free(d);
    return m;
}

// max |a-b| / (atol/rtol-scaled) style: returns the max of |a-b| / (1 + |b|).
static inline double t_relerr(const double *a, const double *b, long n) {
    double m = 0;
    for (long i = 0; i < n; i++) {
        double e = fabs(a[i] - b[i]) / (1.0 + fabs(b[i]));
        if (!(e <= m)) m = e;  // NaN propagates as a failure
    }
    return m;
}

#endif
