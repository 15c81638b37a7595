// bench_optim: wall time of one recorded Adam step (and one EMA update) over
// N parameters split into T tensors, best of 5 x 10 replays; one JSON line
// each. On lavapipe every load and store is a loop over the lanes, so these
// per-element passes are bound by memory operations, not arithmetic.
// Not a test: no thresholds.
//   bench_optim [N [T [CLIP]]]   default 131072 8 0 (CLIP > 0: the global-norm clipping pass too)
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "vkdistill/vkdistill.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

// Best mean time of one replay of g, over 5 batches of 10; *opt's step is advanced.
static double best_of(vkd_graph *g, vkd_adam *opt) {
    double best = 1e30;
    for (int r = 0, t = 1; r < 5; r++) {
        double t0 = now();
        for (int k = 0; k < 10; k++, t++) {
            if (opt) vkd_adam_set_step(opt, 1e-3f, t);
            if (vkd_graph_run(g)) return -1;
        }
        double s = (now() - t0) / 10;
        if (s < best) best = s;
    }
    return best;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 131072, nt = argc > 2 ? atoi(argv[2]) : 8;
    float clip = argc > 3 ? (float)atof(argv[3]) : 0.0f;
    if (n < 1 || nt < 1 || nt > 64 || n < nt) {
        fprintf(stderr, "bench_optim: usage: bench_optim [N [T (1..64, <= N) [CLIP]]]\n");
        return 2;
    }
    vkd_ctx_opts o = {0};
    char err[512];
    vkd_ctx *ctx = vkd_ctx_create(&o, err, sizeof err);
    if (!ctx) {
        fprintf(stderr, "bench_optim: %s\n", err);
        return 1;
    }
    vkd_tensor *p[64], *e[64];
    for (int i = 0; i < nt; i++) {
        int64_t len = n / nt + (i < n % nt);
        p[i] = vkd_tensor_new(ctx, "p", 1, &len, VKD_PARAM);
        e[i] = vkd_tensor_new(ctx, "e", 1, &len, 0);
    }
    vkd_adam_cfg cfg = {.beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .grad_clip = clip};
    vkd_adam *opt = vkd_adam_new(ctx, p, nt, &cfg);
    vkd_graph *ga = vkd_graph_new(ctx, "adam"), *ge = vkd_graph_new(ctx, "ema");
    vkd_adam_record(ga, opt);
    vkd_ema_record(ge, e, p, nt, 0.999f);
    if (vkd_graph_compile(ga) || vkd_graph_compile(ge)) {
        fprintf(stderr, "bench_optim: %s%s\n", vkd_graph_error(ga), vkd_graph_error(ge));
        return 1;
    }
    double ta = best_of(ga, opt), te = best_of(ge, NULL);
    printf("{\"bench\":\"adam\",\"n\":%d,\"tensors\":%d,\"clip\":%g,\"ms\":%.3f,\"ns_per_param\":%.1f}\n", n, nt, clip,
           ta * 1e3, ta * 1e9 / n);
    printf("{\"bench\":\"ema\",\"n\":%d,\"tensors\":%d,\"ms\":%.3f,\"ns_per_param\":%.1f}\n", n, nt, te * 1e3, te * 1e9 / n);
    vkd_graph_free(ga), vkd_graph_free(ge);
    vkd_adam_free(opt);
    for (int i = 0; i < nt; i++) vkd_tensor_free(p[i]), vkd_tensor_free(e[i]);
    vkd_ctx_destroy(ctx);
    return 0;
}
