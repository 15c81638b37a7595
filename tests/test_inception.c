// FID Inception parity with the PyTorch reference (tools/reference/inception.py,
// float64): random weights converted from a torch state dict by
// tools/convert_inception.py, two 64x64 images resized to 299 as pytorch-fid
// does; pool3 features and fc logits compared. Also: the batching helper
// (short last batch, 1-channel replication), strict loading, random init.
//
// usage: test_inception WEIGHTS.safetensors FIXTURE.safetensors
#include <time.h>

#include "harness.h"
#include "vkdistill/inception.h"
#include "vkdistill/io.h"

// Errors relative to the largest magnitude of the expected tensor. fp32 with
// fp32 accumulation carries ~1e-7 relative rounding per multiply-add; the
// longest path has 22 conv layers with reductions of up to 2304 terms, BN
// folding adds one rounding per weight, and the 64->299 resize ~1e-7, so errors
// of order 1e-6..1e-5 of the scale are expected. 2e-4 leaves room for devices
// with other summation orders and still catches any wrong weight, padding,
// pool variant or branch order (those give errors of order 0.1..1).
#define TOL 2e-4

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static float *read_all(vkd_st *st, const char *name, int64_t *shape) {
    const vkd_st_info *in = vkd_st_find(st, name);
    if (!in) return NULL;
    int64_t n = 1;
    for (int i = 0; i < in->ndim; i++) shape[i] = in->shape[i], n *= in->shape[i];
    float *h = malloc(n * sizeof *h);
    char err[512];
    if (vkd_st_read_f32(st, name, in->ndim, shape, h, err, sizeof err)) {
        printf("%s\n", err);
        free(h);
        return NULL;
    }
    return h;
}

static double scaled_err(const float *a, const float *b, int64_t n) {
    double mx = 0, e = 0;
    for (int64_t i = 0; i < n; i++) mx = fmax(mx, fabs(b[i]));
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]) / (mx > 0 ? mx : 1);
        if (!(d <= e)) e = d;
    }
    return e;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        printf("usage: test_inception WEIGHTS.safetensors FIXTURE.safetensors\n0 passed, 1 failed\n");
        return 1;
    }
    vkd_ctx *ctx = t_open();
    char err[512];
    vkd_st *st = vkd_st_open(argv[2], err, sizeof err);
    vkd_inception *net = vkd_inception_create(ctx, -1);
    CHECK(st && net, "%s", st ? vkd_ctx_error(ctx) : err);
    if (!st || !net) return t_close(ctx);
    int rc = vkd_inception_load(net, argv[1], err, sizeof err);
    CHECK(rc == 0, "load: %s", err);

    int64_t ish[4], fsh[2], lsh[2];
    float *img = read_all(st, "input.images", ish), *pool3 = read_all(st, "output.pool3", fsh),
          *logits = read_all(st, "output.logits", lsh);
    CHECK(img && pool3 && logits, "fixture tensors missing");
    if (!img || !pool3 || !logits) return t_close(ctx);
    int64_t N = ish[0], H = ish[2], W = ish[3];

    // 1. the graph forward against PyTorch
    vkd_tensor *X = vkd_tensor_new(ctx, "images", 4, ish, 0);
    vkd_tensor_upload(X, img);
    vkd_graph *g = vkd_graph_new(ctx, "inception");
    vkd_tensor *L = NULL, *F = vkd_inception_forward(g, net, X, &L);
    CHECK(F && L, "forward: %s", vkd_graph_error(g));
    float *f = malloc(N * VKD_INCEPTION_DIM * sizeof *f), *l = malloc(N * VKD_INCEPTION_CLASSES * sizeof *l);
    if (F && L) {
        vkd_graph_keep(g, F);
        vkd_graph_keep(g, L);
        double t0 = now();
        rc = vkd_graph_run(g);
        double t1 = now();
        CHECK(rc == 0, "run: %s", vkd_graph_error(g));
        vkd_tensor_download(F, f);
        vkd_tensor_download(L, l);
        double ef = scaled_err(f, pool3, N * VKD_INCEPTION_DIM), el = scaled_err(l, logits, N * VKD_INCEPTION_CLASSES);
        CHECK(ef < TOL, "pool3 features: error %.3g of their scale (tolerance %g)", ef, TOL);
        CHECK(el < TOL, "logits: error %.3g of their scale (tolerance %g)", el, TOL);
        printf("inception (%lld, 3, %lld, %lld) -> 299: %d dispatches, arena %.1f MiB, run %.2f s (incl. compile), "
               "pool3 err %.2e, logits err %.2e\n",
               (long long)N, (long long)H, (long long)W, vkd_graph_dispatch_count(g),
               vkd_graph_arena_bytes(g) / 1048576.0, t1 - t0, ef, el);
    }
    vkd_graph_free(g);

    // 2. strict loading: the fixture is not a weights file; a failed load leaves the network as it
    // was (the batched features below still match)
    CHECK(vkd_inception_load(net, argv[2], err, sizeof err) != 0 && strstr(err, "unexpected tensor"),
          "loading a non-weights file fails with one line: '%s'", err);
    printf("bad file: %s\n", err);
    float *fa = malloc(2 * VKD_INCEPTION_DIM * sizeof *fa);
    CHECK(vkd_inception_features(net, img, 2, 2, (int)H, (int)W, 2, fa, NULL, err, sizeof err) != 0,
          "2-channel images are refused");

    // 3. the batching helper: 3 images (the third = the first) in batches of 2 (a padded short batch)
    size_t img_n = 3 * (size_t)H * W;
    float *img3 = malloc(3 * img_n * sizeof *img3), *f3 = malloc(3 * VKD_INCEPTION_DIM * sizeof *f3);
    float *l3 = malloc(3 * VKD_INCEPTION_CLASSES * sizeof *l3);
    memcpy(img3, img, 2 * img_n * sizeof *img3);
    memcpy(img3 + 2 * img_n, img, img_n * sizeof *img3);
    rc = vkd_inception_features(net, img3, 3, 3, (int)H, (int)W, 2, f3, l3, err, sizeof err);
    CHECK(rc == 0, "features: %s", err);
    if (!rc) {
        double e1 = scaled_err(f3, pool3, 2 * VKD_INCEPTION_DIM), e2 = scaled_err(f3 + 2 * VKD_INCEPTION_DIM, pool3, VKD_INCEPTION_DIM);
        double e3 = scaled_err(l3 + 2 * VKD_INCEPTION_CLASSES, logits, VKD_INCEPTION_CLASSES);
        CHECK(e1 < TOL && e2 < TOL && e3 < TOL, "batched features: errors %.3g %.3g %.3g", e1, e2, e3);
        printf("features helper (3 images, batch 2): errors %.2e, last (padded batch) %.2e / logits %.2e\n", e1, e2, e3);
    }
    // 4. one channel is replicated to three: the same numbers as the replicated image, bit for bit
    size_t plane = (size_t)H * W;
    float *gray = malloc(2 * plane * sizeof *gray), *rgb = malloc(2 * 3 * plane * sizeof *rgb);
    float *fg = malloc(2 * VKD_INCEPTION_DIM * sizeof *fg), *fr = malloc(2 * VKD_INCEPTION_DIM * sizeof *fr);
    for (int i = 0; i < 2; i++) {
        memcpy(gray + i * plane, img + i * 3 * plane + plane, plane * sizeof *gray);
        for (int ch = 0; ch < 3; ch++) memcpy(rgb + (i * 3 + ch) * plane, gray + i * plane, plane * sizeof *rgb);
    }
    int r1 = vkd_inception_features(net, gray, 2, 1, (int)H, (int)W, 2, fg, NULL, err, sizeof err);
    int r2 = r1 ? -1 : vkd_inception_features(net, rgb, 2, 3, (int)H, (int)W, 2, fr, NULL, err, sizeof err);
    CHECK(!r1 && !r2 && !memcmp(fg, fr, 2 * VKD_INCEPTION_DIM * sizeof *fg), "1-channel images: %s",
          r1 || r2 ? err : "features differ from the replicated 3-channel image");

    // 5. random init runs and gives finite, non-trivial features
    vkd_inception *rnd = vkd_inception_create(ctx, 7);
    CHECK(rnd != NULL, "random init: %s", vkd_ctx_error(ctx));
    if (rnd) {
        rc = vkd_inception_features(rnd, img, 1, 3, (int)H, (int)W, 1, fa, NULL, err, sizeof err);
        double s = 0;
        int finite = 1;
        for (int i = 0; i < VKD_INCEPTION_DIM; i++) s += fabs(fa[i]), finite &= isfinite(fa[i]) != 0;
        CHECK(rc == 0 && finite && s > 0, "random-init features: rc %d, finite %d, sum |f| %g (%s)", rc, finite, s,
              rc ? err : "");
        vkd_inception_free(rnd);
    }

    free(img3), free(f3), free(l3), free(gray), free(rgb), free(fg), free(fr), free(fa);
    free(f), free(l), free(img), free(pool3), free(logits);
    vkd_tensor_free(X);
    vkd_inception_free(net);
    vkd_st_close(st);
    return t_close(ctx);
}
