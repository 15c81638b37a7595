// bench_conv: GPU time of the three convolution GEMMs (forward, data
// gradient, weight gradient) from the per-dispatch timestamps (VKD_PROFILE),
// one JSON line per GEMM (the mean of RUNS replays, and the best), and a plain matmul of the forward's GEMM size
// (M = cout, N = n*ho*wo, K = cin/groups*k*k) in the same process as the
// peer: on a shared machine only ratios measured side by side mean much.
// Not a test: no thresholds.
//   bench_conv [N CIN COUT H W K STRIDE PAD GROUPS [RUNS [TRANSPOSED [SAMPLES]]]]   default 8 64 64 32 32 3 1 1 1 5 0 0
// TRANSPOSED = 1 benchmarks conv_transpose2d with x (N, CIN, H, W) and weight (CIN, COUT, K, K).
// SAMPLES: vkd_graph_set_samples of the convolutions' graphs (0: not said), e.g. 1 for the light
// walk a short run takes on a CPU device; conv_cpu's create_s is the CPU time their compile took.
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/graph.h"
#include "vkdistill/vkdistill.h"

static double op_ns(const vkd_graph *g, const char *op) {
    double ns = 0;
    for (int i = 0; i < g->ndisp; i++)
        if (strcmp(g->disp[i].name, op) == 0) ns += vkd_graph_dispatch_ns(g, i);
    return ns;
}

// CPU time of the whole process (lavapipe's worker threads included): on a
// machine shared with other jobs it moves far less than wall time.
static double cpu_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

// best CPU seconds of one run of g over `runs` runs
static double best_cpu(vkd_graph *g, int runs) {
    double best = 1e30;
    for (int r = 0; r < runs; r++) {
        double t0 = cpu_s();
        vkd_graph_run(g);
        double dt = cpu_s() - t0;
        if (dt < best) best = dt;
    }
    return best;
}

int main(int argc, char **argv) {
    int a[12] = {8, 64, 64, 32, 32, 3, 1, 1, 1, 5, 0, 0};
    for (int i = 1; i < argc && i <= 12; i++) a[i - 1] = atoi(argv[i]);
    int n = a[0], cin = a[1], cout = a[2], h = a[3], w = a[4], k = a[5], s = a[6], p = a[7], grp = a[8], runs = a[9];
    int tr = a[10];
    setenv("VKD_PROFILE", "1", 0);  // (VKD_PROFILE=2 also lists each dispatch and its pipeline)
    char err[512];
    vkd_ctx_opts o = {.validation = 0, .quiet = 1};
    vkd_ctx *ctx = vkd_ctx_create(&o, err, sizeof err);
    if (!ctx) {
        fprintf(stderr, "bench_conv: %s\n", err);
        return 1;
    }
    int ho = tr ? (h - 1) * s - 2 * p + k : (h + 2 * p - k) / s + 1;
    int wo = tr ? (w - 1) * s - 2 * p + k : (w + 2 * p - k) / s + 1;
    vkd_tensor *x = vkd_tensor_new(ctx, "x", 4, (int64_t[]){n, cin, h, w}, 0);
    vkd_tensor *wt = tr ? vkd_tensor_new(ctx, "w", 4, (int64_t[]){cin, cout / grp, k, k}, 0)
                        : vkd_tensor_new(ctx, "w", 4, (int64_t[]){cout, cin / grp, k, k}, 0);
    vkd_tensor *u = vkd_tensor_new(ctx, "u", 4, (int64_t[]){n, cout, ho, wo}, 0);
    vkd_tensor_set_requires_grad(x, 1);
    vkd_tensor_set_requires_grad(wt, 1);
    vkd_graph *g = vkd_graph_new(ctx, "bench_conv");
    vkd_graph_set_samples(g, a[11]);
    vkd_tensor *y = tr ? vkd_conv_transpose2d(g, x, wt, NULL, s, p, p, grp) : vkd_conv2d(g, x, wt, NULL, s, p, p, grp);
    vkd_graph_backward(g, vkd_sum(g, vkd_mul(g, y, u), 0));
    // the peer: one GEMM as large as the forward convolution's (for a transposed convolution, its data gradient's)
    int64_t M = tr ? cin : cout, N = (int64_t)n * (tr ? h * w : ho * wo), K = (int64_t)(tr ? cout : cin) / grp * k * k;
    vkd_tensor *ga = vkd_tensor_new(ctx, "ga", 2, (int64_t[]){M, K}, 0);
    vkd_tensor *gb = vkd_tensor_new(ctx, "gb", 2, (int64_t[]){K, N}, 0);
    vkd_graph *gm = vkd_graph_new(ctx, "bench_conv_gemm");
    vkd_matmul(gm, ga, gb, 0, 0);
    vkd_graph *gf = vkd_graph_new(ctx, "bench_conv_fwd");  // the forward alone, for its CPU time
    vkd_graph_set_samples(gf, a[11]);
    if (tr) vkd_conv_transpose2d(gf, x, wt, NULL, s, p, p, grp);
    else vkd_conv2d(gf, x, wt, NULL, s, p, p, grp);
    double c0 = cpu_s();
    int bad = vkd_graph_compile(g) || vkd_graph_compile(gf);
    double create_s = cpu_s() - c0;
    if (bad || vkd_graph_run(g) || vkd_graph_compile(gm) || vkd_graph_run(gm) || vkd_graph_run(gf)) {
        fprintf(stderr, "bench_conv: %s%s%s\n", vkd_graph_error(g), vkd_graph_error(gm), vkd_graph_error(gf));
        return 1;
    }
    double cpu_fwd = best_cpu(gf, runs), cpu_gemm = best_cpu(gm, runs), cpu_all = best_cpu(g, runs);
    static const char *ops[2][3] = {{"conv2d", "conv2d_bwd_data", "conv2d_bwd_weight"},
                                    {"conv_transpose2d_bwd_data", "conv_transpose2d", "conv_transpose2d_bwd_weight"}};
    // each GEMM's mean and best run: on a shared (noisy) machine the best is the steadier figure
    double sum_ns[3] = {0, 0, 0}, best_ns[3] = {0, 0, 0};
    vkd_graph_profile_reset(gm);
    for (int r = 0; r < runs; r++) {
        vkd_graph_profile_reset(g);
        vkd_graph_run(g), vkd_graph_run(gm);  // interleaved: both see the same load
        for (int o2 = 0; o2 < 3; o2++) {
            double ns = op_ns(g, ops[tr][o2]);
            sum_ns[o2] += ns;
            if (r == 0 || ns < best_ns[o2]) best_ns[o2] = ns;
        }
    }
    double flop = 2.0 * (double)M * (double)N * (double)K;
    double gemm_ns = op_ns(gm, "matmul");
    // CPU-time rates: FLOP per CPU second of the forward, of forward+backward (3 GEMMs plus the small
    // loss ops) and of the peer GEMM.
    printf("{\"bench\":\"conv_cpu\",\"N\":%d,\"Cin\":%d,\"Cout\":%d,\"H\":%d,\"W\":%d,\"k\":%d,\"stride\":%d,"
           "\"transposed\":%d,\"fwd_cpu_ms\":%.2f,\"fwd_bwd_cpu_ms\":%.2f,\"gemm_cpu_ms\":%.2f,"
           "\"fwd_gflops_cpu\":%.2f,\"fwd_bwd_gflops_cpu\":%.2f,\"gemm_gflops_cpu\":%.2f,\"samples\":%d,"
           "\"create_s\":%.3f}\n",
           n, cin, cout, h, w, k, s, tr, cpu_fwd * 1e3, cpu_all * 1e3, cpu_gemm * 1e3, flop / cpu_fwd * 1e-9,
           3 * flop / cpu_all * 1e-9, flop / cpu_gemm * 1e-9, a[11], create_s);
    for (int o2 = 0; o2 < 3; o2++) {
        double ns = sum_ns[o2] / (runs > 0 ? runs : 1), best = best_ns[o2];
        printf("{\"bench\":\"%s\",\"device\":\"%s\",\"N\":%d,\"Cin\":%d,\"Cout\":%d,\"H\":%d,\"W\":%d,\"k\":%d,"
               "\"stride\":%d,\"pad\":%d,\"groups\":%d,\"ms\":%.3f,\"gflops\":%.2f,\"best_ms\":%.3f,"
               "\"best_gflops\":%.2f,\"gemm_gflops\":%.2f}\n",
               ops[tr][o2], vkd_ctx_device_name(ctx), n, cin, cout, h, w, k, s, p, grp, ns / 1e6,
               ns > 0 ? flop / ns : 0.0, best / 1e6, best > 0 ? flop / best : 0.0, gemm_ns > 0 ? flop / gemm_ns : 0.0);
    }
    vkd_graph_free(g), vkd_graph_free(gm), vkd_graph_free(gf);
    vkd_tensor_free(x), vkd_tensor_free(wt), vkd_tensor_free(u), vkd_tensor_free(ga), vkd_tensor_free(gb);
    vkd_ctx_destroy(ctx);
    return 0;
}
