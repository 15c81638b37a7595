// bench_conv: GPU time of the three convolution GEMMs (forward, data
// gradient, weight gradient) from the per-dispatch timestamps (VKD_PROFILE),
// one JSON line per GEMM. Not a test: no thresholds.
//   bench_conv [N CIN COUT H W K STRIDE PAD GROUPS [RUNS]]   default 8 64 64 32 32 3 1 1 1 5
#include <stdlib.h>
#include <string.h>

#include "core/graph.h"
#include "vkdistill/vkdistill.h"

int main(int argc, char **argv) {
    int a[10] = {8, 64, 64, 32, 32, 3, 1, 1, 1, 5};
    for (int i = 1; i < argc && i <= 10; i++) a[i - 1] = atoi(argv[i]);
    int n = a[0], cin = a[1], cout = a[2], h = a[3], w = a[4], k = a[5], s = a[6], p = a[7], grp = a[8], runs = a[9];
    setenv("VKD_PROFILE", "1", 1);
    char err[512];
    vkd_ctx_opts o = {.validation = 0, .quiet = 1};
    vkd_ctx *ctx = vkd_ctx_create(&o, err, sizeof err);
    if (!ctx) {
        fprintf(stderr, "bench_conv: %s\n", err);
        return 1;
    }
    int ho = (h + 2 * p - k) / s + 1, wo = (w + 2 * p - k) / s + 1;
    vkd_tensor *x = vkd_tensor_new(ctx, "x", 4, (int64_t[]){n, cin, h, w}, 0);
    vkd_tensor *wt = vkd_tensor_new(ctx, "w", 4, (int64_t[]){cout, cin / grp, k, k}, 0);
    vkd_tensor *u = vkd_tensor_new(ctx, "u", 4, (int64_t[]){n, cout, ho, wo}, 0);
    vkd_tensor_set_requires_grad(x, 1);
    vkd_tensor_set_requires_grad(wt, 1);
    vkd_graph *g = vkd_graph_new(ctx, "bench_conv");
    vkd_tensor *y = vkd_conv2d(g, x, wt, NULL, s, p, p, grp);
    vkd_graph_backward(g, vkd_sum(g, vkd_mul(g, y, u), 0));
    if (vkd_graph_compile(g) || vkd_graph_run(g)) {  // the first run builds the pipelines
        fprintf(stderr, "bench_conv: %s\n", vkd_graph_error(g));
        return 1;
    }
    if (g->prof_ns) memset(g->prof_ns, 0, sizeof *g->prof_ns * (size_t)g->ndisp), g->prof_runs = 0;
    for (int r = 0; r < runs; r++) vkd_graph_run(g);
    static const char *ops[3] = {"conv2d", "conv2d_bwd_data", "conv2d_bwd_weight"};
    double flop = 2.0 * n * cout * ho * wo * (double)(cin / grp) * k * k;
    for (int o2 = 0; o2 < 3; o2++) {
        double ns = 0;
        for (int i = 0; i < g->ndisp && g->prof_ns; i++)
            if (strcmp(g->disp[i].name, ops[o2]) == 0) ns += g->prof_ns[i] / (g->prof_runs ? g->prof_runs : 1);
        printf("{\"bench\":\"%s\",\"device\":\"%s\",\"N\":%d,\"Cin\":%d,\"Cout\":%d,\"H\":%d,\"W\":%d,\"k\":%d,"
               "\"stride\":%d,\"pad\":%d,\"groups\":%d,\"ms\":%.3f,\"gflops\":%.2f}\n",
               ops[o2], vkd_ctx_device_name(ctx), n, cin, cout, h, w, k, s, p, grp, ns / 1e6,
               ns > 0 ? flop / ns : 0.0);
    }
    vkd_graph_free(g);
    vkd_tensor_free(x), vkd_tensor_free(wt), vkd_tensor_free(u);
    vkd_ctx_destroy(ctx);
    return 0;
}
