// vkdistill selfcheck: a quick end-to-end check on the chosen device.
// 1. a GEMM against a plain-C product; 2. a small MLP regression trained by
// replaying one recorded step (forward, backward, AdamW) whose loss must fall.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"

static int check_gemm(vkd_ctx *ctx) {
    enum { M = 67, N = 45, K = 33 };
    int64_t sa[2] = {M, K}, sb[2] = {K, N};
    vkd_tensor *a = vkd_tensor_new(ctx, "A", 2, sa, 0), *b = vkd_tensor_new(ctx, "B", 2, sb, 0);
    if (!a || !b) return -1;
    static float ha[M * K], hb[K * N], hc[M * N];
    for (int i = 0; i < M * K; i++) ha[i] = vkd_philox_normal(1, 0, 0, i);
    for (int i = 0; i < K * N; i++) hb[i] = vkd_philox_normal(1, 1, 0, i);
    vkd_tensor_upload(a, ha);
    vkd_tensor_upload(b, hb);
    vkd_graph *g = vkd_graph_new(ctx, "selfcheck_gemm");
    vkd_tensor *c = vkd_matmul(g, a, b, 0, 0);
    vkd_graph_keep(g, c);
    int rc = vkd_graph_run(g) || vkd_tensor_download(c, hc);
    double maxerr = 0;
    for (int m = 0; m < M && !rc; m++)
        for (int n = 0; n < N; n++) {
            double ref = 0;
            for (int k = 0; k < K; k++) ref += (double)ha[m * K + k] * hb[k * N + n];
            double e = fabs(ref - hc[m * N + n]);
            if (e > maxerr) maxerr = e;
        }
    if (rc) fprintf(stderr, "vkdistill selfcheck: %s\n", vkd_graph_error(g));
    printf("selfcheck gemm %dx%dx%d: max abs error %.2e %s\n", M, N, K, maxerr, maxerr < 1e-4 ? "ok" : "FAILED");
    vkd_graph_free(g);
    vkd_tensor_free(a);
    vkd_tensor_free(b);
    return rc || maxerr >= 1e-4;
}

static int check_training(vkd_ctx *ctx) {
    enum { B = 64, D = 8, H = 32, STEPS = 60 };
    int64_t sw1[2] = {H, D}, sb1[1] = {H}, sw2[2] = {1, H}, sb2[1] = {1}, sx[2] = {B, D};
    vkd_tensor *w1 = vkd_tensor_new(ctx, "w1", 2, sw1, VKD_PARAM), *b1 = vkd_tensor_new(ctx, "b1", 1, sb1, VKD_PARAM);
    vkd_tensor *w2 = vkd_tensor_new(ctx, "w2", 2, sw2, VKD_PARAM), *b2 = vkd_tensor_new(ctx, "b2", 1, sb2, VKD_PARAM);
    int64_t one = 1;
    vkd_tensor *step = vkd_tensor_new(ctx, "step", 1, &one, VKD_HOST);
    if (!w1 || !b1 || !w2 || !step) return -1;
    float hw1[H * D], hw2[H];
    for (int i = 0; i < H * D; i++) hw1[i] = vkd_philox_normal(2, 0, 0, i) / sqrtf(D);
    for (int i = 0; i < H; i++) hw2[i] = vkd_philox_normal(2, 1, 0, i) / sqrtf(H);
    vkd_tensor_upload(w1, hw1);
    vkd_tensor_upload(w2, hw2);
    vkd_tensor *params[4] = {w1, b1, w2, b2};
    vkd_adam_cfg cfg = {.beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .decoupled = 1};
    vkd_adam *opt = vkd_adam_new(ctx, params, 4, &cfg);
    // Target: y = sum(sin(x)); inputs drawn on the device, fresh every step.
    vkd_graph *g = vkd_graph_new(ctx, "selfcheck_train");
    vkd_tensor *x = vkd_rand_normal(g, 2, sx, 7, 0, step);
    vkd_tensor *h = vkd_silu(g, vkd_linear(g, x, w1, b1));
    vkd_tensor *y = vkd_linear(g, h, w2, b2);
    vkd_tensor *s = vkd_reshape(g, vkd_sum(g, vkd_mul(g, x, x), 1), 2, (int64_t[]){B, 1});
    vkd_tensor *loss = vkd_mse(g, y, vkd_scale(g, s, 0.25f));
    vkd_graph_keep(g, loss);
    vkd_graph_backward(g, loss);
    vkd_adam_record(g, opt);
    int rc = vkd_graph_compile(g);
    float first = 0, last = 0;
    for (int t = 1; t <= STEPS && !rc; t++) {
        ((uint32_t *)vkd_tensor_map(step))[0] = (uint32_t)t;
        vkd_adam_set_step(opt, 1e-2f, t);
        rc = vkd_graph_run(g) || vkd_tensor_download(loss, &last);
        if (t == 1) first = last;
    }
    if (rc) fprintf(stderr, "vkdistill selfcheck: %s\n", vkd_graph_error(g));
    int ok = !rc && isfinite(last) && last < 0.5f * first;
    printf("selfcheck training (replayed step, %d dispatches): loss %.4f -> %.4f after %d steps %s\n",
           vkd_graph_dispatch_count(g), first, last, STEPS, ok ? "ok" : "FAILED");
    vkd_graph_free(g);
    vkd_adam_free(opt);
    for (int i = 0; i < 4; i++) vkd_tensor_free(params[i]);
    vkd_tensor_free(step);
    return !ok;
}

int vkd_cli_selfcheck(vkd_cli *cli, int argc, char **argv) {
    if (argc) {
        fprintf(stderr, "vkdistill selfcheck: unknown argument '%s'\n", argv[0]);
        return 2;
    }
    vkd_ctx *ctx = vkd_cli_open(cli);
    if (!ctx) return 1;
    int rc = check_gemm(ctx);
    rc |= check_training(ctx);
    printf("selfcheck: %s\n", rc ? "FAILED" : "ok");
    return vkd_cli_close(ctx, rc ? 1 : 0);
}
