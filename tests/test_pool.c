// Pooling and bilinear resize on the device against their double-precision
// references (tests/ref/ref_pool.c). Forward only: these ops have no gradient,
// and one case checks that an input requiring a gradient is refused.
#include "harness.h"
#include "ref_pool.h"

// fp32 against double, relative to 1 + |ref| (as test_ops.c): sums of <= 64
// values and a few bilinear products stay well inside this.
#define TOL 2e-6

static double *dalloc(long n) { return malloc((n > 0 ? n : 1) * sizeof(double)); }

static void compare(const char *what, vkd_tensor *t, const double *ref, double tol) {
    double *d = t_download(t);
    double e = t_relerr(d, ref, (long)vkd_tensor_numel(t));
    CHECK(e < tol, "%s: max error %.3g (tolerance %.1g)", what, e, tol);
    printf("  %-58s max err %.2e\n", what, e);
    free(d);
}

enum { MAXP, AVGP, GAVG, RESIZE };

// kind MAXP/AVGP: a = k, b = stride, c = pad, d = count_include_pad; RESIZE: a = Ho, b = Wo, c = mode.
static void run(vkd_ctx *ctx, int kind, int N, int C, int H, int W, int a, int b, int c, int d) {
    char name[160];
    vkd_graph *g = vkd_graph_new(ctx, "pool");
    long n = (long)N * C * H * W, P = (long)N * C;
    double *x = dalloc(n);
    t_fill(x, n, -3, 1);  // mostly negative: a max pool that pads with 0 would show
    vkd_tensor *X = t_tensor(ctx, "x", 4, (int64_t[]){N, C, H, W}, x, 0), *Y = NULL;
    double *y = NULL;
    if (kind == MAXP || kind == AVGP) {
        int Ho = (H + 2 * c - a) / b + 1, Wo = (W + 2 * c - a) / b + 1;
        y = dalloc(P * Ho * Wo);
        if (kind == MAXP) {
            snprintf(name, sizeof name, "maxpool2d (%d,%d,%d,%d) k %d stride %d pad %d", N, C, H, W, a, b, c);
            Y = vkd_maxpool2d(g, X, a, b, c);
            ref_maxpool2d(y, x, P, H, W, a, b, c);
        } else {
            snprintf(name, sizeof name, "avgpool2d (%d,%d,%d,%d) k %d stride %d pad %d incl %d", N, C, H, W, a, b, c, d);
            Y = vkd_avgpool2d(g, X, a, b, c, d);
            ref_avgpool2d(y, x, P, H, W, a, b, c, d);
        }
        CHECK(Y && vkd_tensor_dim(Y, 2) == Ho && vkd_tensor_dim(Y, 3) == Wo, "%s: output shape", name);
    } else if (kind == GAVG) {
        snprintf(name, sizeof name, "global_avgpool (%d,%d,%d,%d)", N, C, H, W);
        y = dalloc(P);
        Y = vkd_global_avgpool(g, X);
        ref_global_avgpool(y, x, P, H, W);
        CHECK(Y && vkd_tensor_ndim(Y) == 2 && vkd_tensor_dim(Y, 1) == C, "%s: output shape", name);
    } else {
        snprintf(name, sizeof name, "resize_bilinear (%d,%d,%d,%d) -> %dx%d mode %d", N, C, H, W, a, b, c);
        y = dalloc(P * a * b);
        Y = vkd_resize_bilinear(g, X, a, b, c);
        ref_resize_bilinear(y, x, P, H, W, a, b, c);
    }
    if (Y) vkd_graph_keep(g, Y);
    int rc = Y ? vkd_graph_run(g) : -1;
    CHECK(rc == 0, "%s: %s", name, vkd_graph_error(g));
    if (!rc) {
        // Resize: the source coordinate is computed in fp32 (as PyTorch does), off by up to
        // ~2 ulp of the input size; times the data's largest neighbour difference (4) that is
        // 4.8e-7 * size on top of the arithmetic rounding.
        double tol = kind == RESIZE ? TOL + 4.8e-7 * (H > W ? H : W) : TOL;
        compare(name, Y, y, tol);
        if (kind == RESIZE && a == H && b == W && c != 2) {  // same size: the identity, exactly
            double *dv = t_download(Y);
            CHECK(!memcmp(dv, x, n * sizeof *x), "%s: same-size resize is not the identity", name);
            free(dv);
        }
    }
    vkd_tensor_free(X);
    vkd_graph_free(g);
    free(x), free(y);
}

static void test_bad(vkd_ctx *ctx) {
    double x[2 * 3 * 5 * 5];
    t_fill(x, 150, -1, 1);
    vkd_tensor *X = t_tensor(ctx, "x", 4, (int64_t[]){2, 3, 5, 5}, x, 0);
    vkd_graph *g = vkd_graph_new(ctx, "bad");
    CHECK(vkd_maxpool2d(g, X, 3, 1, 2) == NULL && strstr(vkd_graph_error(g), "padding"),
          "pad > k/2 is refused: '%s'", vkd_graph_error(g));
    vkd_graph_free(g);
    g = vkd_graph_new(ctx, "bad");
    vkd_tensor_set_requires_grad(X, 1);
    CHECK(vkd_avgpool2d(g, X, 3, 1, 1, 0) == NULL && strstr(vkd_graph_error(g), "forward-only"),
          "an input requiring grad is refused: '%s'", vkd_graph_error(g));
    vkd_graph_free(g);
    g = vkd_graph_new(ctx, "nograd");
    vkd_graph_set_grad_enabled(g, 0);
    CHECK(vkd_resize_bilinear(g, X, 7, 7, VKD_RESIZE_HALF_PIXEL) != NULL, "under no-grad it is accepted: %s",
          vkd_graph_error(g));
    vkd_graph_free(g);
    vkd_tensor_free(X);
}

int main(void) {
    vkd_ctx *ctx = t_open();
    // Inception's pools: stem max 3/2/0 on odd sizes, branch avg 3/1/1 without padding, Mixed_7c max 3/1/1
    run(ctx, MAXP, 2, 3, 9, 11, 3, 2, 0, 0);
    run(ctx, MAXP, 1, 4, 8, 7, 3, 2, 0, 0);
    run(ctx, MAXP, 2, 3, 6, 5, 3, 1, 1, 0);
    run(ctx, MAXP, 1, 2, 7, 9, 2, 2, 1, 0);
    run(ctx, AVGP, 2, 3, 6, 5, 3, 1, 1, 0);
    run(ctx, AVGP, 2, 3, 6, 5, 3, 1, 1, 1);
    run(ctx, AVGP, 1, 2, 9, 8, 5, 2, 2, 0);
    run(ctx, AVGP, 1, 5, 8, 8, 2, 2, 0, 1);
    run(ctx, AVGP, 1, 1, 1, 1, 3, 1, 1, 0);
    run(ctx, GAVG, 2, 5, 8, 8, 0, 0, 0, 0);
    run(ctx, GAVG, 3, 7, 13, 1, 0, 0, 0, 0);
    run(ctx, GAVG, 1, 600, 1, 1, 0, 0, 0, 0);
    for (int mode = 0; mode < 3; mode++) {
        run(ctx, RESIZE, 2, 3, 5, 7, 13, 11, mode, 0);   // up
        run(ctx, RESIZE, 1, 3, 17, 19, 6, 8, mode, 0);   // down
        run(ctx, RESIZE, 1, 2, 6, 9, 6, 9, mode, 0);     // same size
        run(ctx, RESIZE, 1, 2, 4, 3, 1, 1, mode, 0);     // to one pixel
        run(ctx, RESIZE, 1, 1, 1, 1, 3, 2, mode, 0);     // from one pixel
    }
    run(ctx, RESIZE, 2, 3, 32, 32, 299, 299, VKD_RESIZE_HALF_PIXEL, 0);  // pytorch-fid on CIFAR-size input
    run(ctx, RESIZE, 1, 3, 28, 28, 299, 299, VKD_RESIZE_TF1, 0);
    test_bad(ctx);
    return t_close(ctx);
}
