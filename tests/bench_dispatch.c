// bench_dispatch: what one dispatch and one barrier cost in a replayed graph,
// with nothing to compute (K adds of tiny vectors). "independent": K adds
// of the same inputs into K outputs (no dependency, so no barrier between
// them); "chain": each add reads the previous one's output (a barrier each).
// Wall time of one replay / K, best of 5 x 10 replays; one JSON line each.
// The GMM iteration is ~600 dispatches of small GEMMs and element-wise ops, so
// this is its floor. Not a test: no thresholds.
//   bench_dispatch [K [N]]   default 500 dispatches of 64-element adds
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

static double best_of(vkd_graph *g) {
    double best = 1e30;
    for (int r = 0; r < 5; r++) {
        double t0 = now();
        for (int k = 0; k < 10; k++)
            if (vkd_graph_run(g)) return -1;
        double s = (now() - t0) / 10;
        if (s < best) best = s;
    }
    return best;
}

// K adds; chain = 1: each reads the previous sum.
static vkd_graph *record(vkd_ctx *ctx, vkd_tensor *a, vkd_tensor *b, int k, int chain) {
    vkd_graph *g = vkd_graph_new(ctx, chain ? "chain" : "independent");
    vkd_tensor *y = a;
    for (int i = 0; i < k; i++) {
        y = vkd_add(g, chain ? y : a, b);
        if (!chain) vkd_graph_keep(g, y);
    }
    vkd_graph_keep(g, y);
    return g;
}

int main(int argc, char **argv) {
    int k = argc > 1 ? atoi(argv[1]) : 500;
    int64_t n = argc > 2 ? atoll(argv[2]) : 64;
    if (k < 1 || k > 100000 || n < 1) {
        fprintf(stderr, "bench_dispatch: usage: bench_dispatch [K (1..100000) [N (>= 1)]]\n");
        return 2;
    }
    vkd_ctx_opts o = {0};
    char err[512];
    vkd_ctx *ctx = vkd_ctx_create(&o, err, sizeof err);
    if (!ctx) {
        fprintf(stderr, "bench_dispatch: %s\n", err);
        return 1;
    }
    vkd_tensor *a = vkd_tensor_new(ctx, "a", 1, &n, 0), *b = vkd_tensor_new(ctx, "b", 1, &n, 0);
    for (int chain = 0; chain < 2; chain++) {
        vkd_graph *g = record(ctx, a, b, k, chain);
        if (vkd_graph_compile(g)) {
            fprintf(stderr, "bench_dispatch: %s\n", vkd_graph_error(g));
            return 1;
        }
        int nd = 0, nb = 0;
        vkd_graph_counts(g, &nd, &nb);
        double t = best_of(g);
        printf("{\"bench\":\"dispatch\",\"graph\":\"%s\",\"n\":%lld,\"dispatches\":%d,\"barriers\":%d,\"ms_per_replay\":%.3f,"
               "\"us_per_dispatch\":%.2f}\n",
               chain ? "chain" : "independent", (long long)n, nd, nb, t * 1e3, t * 1e6 / nd);
        vkd_graph_free(g);
    }
    vkd_tensor_free(a), vkd_tensor_free(b);
    vkd_ctx_destroy(ctx);
    return 0;
}
