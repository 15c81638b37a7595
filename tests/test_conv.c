// conv2d and conv_transpose2d on the device against the double references
// (tests/ref/ref_conv.c, whose backward test_ref_conv.c checks against finite
// differences): forward and every gradient, frozen weights, the split weight
// gradient replayed bit for bit, and shape errors.
//
// Each case builds L = sum(u * y) with a random upstream weight u, runs
// forward + backward once, and compares y, dL/dx, dL/dw, dL/db.
#include <stdlib.h>
#include <unistd.h>

#include "core/graph.h"
#include "harness.h"
#include "ref_conv.h"

// Relative to 1 + |ref|, as the core op tests: the longest sums here (the
// weight gradient's, over batch and pixels) have ~2000 fp32 terms of size ~1.
#define TOL 2e-5
// The 3x3 forward and data gradient as Winograd's F(4, 3) (the default on CPU devices where the
// input channels are even): the transformed operands are several times the taps and the pixels,
// and so are the roundings of the sums of their products. Measured here up to 3.9e-5 (F(2, 3) up
// to 8.7e-6, the direct walks ~2e-6).
#define WTOL 1e-4
// F(4, 3) in both directions (4 x 4 tiles): measured here up to 1.2e-4 (64 -> 32 at 16x16, whose
// weights, uniform in [-1, 1], make y ~8 times a unit; F(2, 3) x F(4, 3) 2.8e-5). A numpy model of its
// fp32 sums (unit normal pixels, weights scaled by the fan-in, 4000 tiles) gave 1.9-2.8e-5 of
// 1 + |y| at 32-192 input channels, against 4.5-8.4e-6 for F(2, 3) x F(4, 3) and 1.2-3.2e-6 for
// the direct sum: the price of a quarter fewer products.
#define W44TOL 3e-4

static void compare_tol(const char *what, const vkd_tensor *t, const double *ref, double tol) {
    if (!t) {
        CHECK(0, "%s: no tensor", what);
        return;
    }
    double *d = t_download(t);
    double e = t_relerr(d, ref, (long)vkd_tensor_numel(t));
    CHECK(e < tol, "%s: max error %.3g (tolerance %.1g)", what, e, tol);
    printf("  %-10s max err %.2e\n", what, e);
    free(d);
}

static void compare(const char *what, const vkd_tensor *t, const double *ref) { compare_tol(what, t, ref, TOL); }

// y's and dx's tolerance: WTOL where a Winograd walk can take them (3x3 kernels at stride 1)
static double yx_tol(ref_conv_shape s) { return s.kh == 3 && s.kw == 3 && s.stride == 1 ? WTOL : TOL; }

static int count_dispatches(const vkd_graph *g, const char *substr) {
    int n = 0;
    for (int i = 0; i < g->ndisp; i++) n += strstr(g->disp[i].name, substr) != NULL;
    return n;
}

// The sizes of a case: output (ho, wo), element counts of x, y and w, and w's shape.
typedef struct {
    int ho, wo;
    long nx, ny, nw;
    int64_t wsh[4];
} conv_sizes;

static conv_sizes sizes_of(ref_conv_shape s, int transposed) {
    conv_sizes z;
    if (transposed) ref_conv_transpose2d_out(&s, &z.ho, &z.wo);
    else ref_conv2d_out(&s, &z.ho, &z.wo);
    z.nx = (long)s.n * s.cin * s.h * s.w, z.ny = (long)s.n * s.cout * z.ho * z.wo;
    z.wsh[0] = transposed ? s.cin : s.cout, z.wsh[1] = transposed ? s.cout / s.groups : s.cin / s.groups;
    z.wsh[2] = s.kh, z.wsh[3] = s.kw;
    z.nw = (long)(z.wsh[0] * z.wsh[1] * z.wsh[2] * z.wsh[3]);
    return z;
}

enum { GRAD_W = 1, GRAD_B = 2, HAS_B = 4 };

// s: the reference shape (input (n, cin, h, w), cout output channels).
static void run_case(vkd_ctx *ctx, const char *name, int transposed, ref_conv_shape s, int flags) {
    printf("%s%s\n", name, (flags & GRAD_W) ? "" : " (frozen weight)");
    conv_sizes z = sizes_of(s, transposed);
    int ho = z.ho, wo = z.wo;
    long nx = z.nx, ny = z.ny, nw = z.nw;
    const int64_t *wsh = z.wsh;
    double *x = malloc(nx * 8), *w = malloc(nw * 8), *b = malloc(s.cout * 8), *u = malloc(ny * 8);
    double *y = malloc(ny * 8), *dx = malloc(nx * 8), *dw = malloc(nw * 8), *db = malloc(s.cout * 8);
    t_fill(x, nx, -1, 1), t_fill(w, nw, -1, 1), t_fill(b, s.cout, -1, 1), t_fill(u, ny, -1, 1);

    vkd_graph *g = vkd_graph_new(ctx, name);
    vkd_tensor *X = t_tensor(ctx, "x", 4, (int64_t[]){s.n, s.cin, s.h, s.w}, x, 0);
    vkd_tensor *W = t_tensor(ctx, "w", 4, wsh, w, 0);
    vkd_tensor *B = (flags & HAS_B) ? t_tensor(ctx, "b", 1, (int64_t[]){s.cout}, b, 0) : NULL;
    vkd_tensor *U = t_tensor(ctx, "u", 4, (int64_t[]){s.n, s.cout, ho, wo}, u, 0);
    vkd_tensor_set_requires_grad(X, 1);
    if (flags & GRAD_W) vkd_tensor_set_requires_grad(W, 1);
    if (B && (flags & GRAD_B)) vkd_tensor_set_requires_grad(B, 1);
    vkd_tensor *Y = transposed ? vkd_conv_transpose2d(g, X, W, B, s.stride, s.ph, s.pw, s.groups)
                               : vkd_conv2d(g, X, W, B, s.stride, s.ph, s.pw, s.groups);
    CHECK(Y != NULL, "%s: %s", name, vkd_graph_error(g));
    if (Y) {
        CHECK(vkd_tensor_dim(Y, 2) == ho && vkd_tensor_dim(Y, 3) == wo && vkd_tensor_dim(Y, 1) == s.cout,
              "output shape");
        vkd_graph_keep(g, Y);
        vkd_tensor *loss = vkd_sum(g, vkd_mul(g, Y, U), 0);
        CHECK(vkd_graph_backward(g, loss) == 0, "backward: %s", vkd_graph_error(g));
        // Frozen weights get no weight-gradient work at all.
        if (!(flags & GRAD_W)) CHECK(count_dispatches(g, "bwd_weight") == 0, "frozen weight got a gradient dispatch");
        else CHECK(count_dispatches(g, "bwd_weight") >= 1, "no weight-gradient dispatch");
        CHECK(vkd_graph_run(g) == 0, "run: %s", vkd_graph_error(g));
        const double *bb = B ? b : NULL;
        if (transposed) {
            ref_conv_transpose2d_fwd(y, x, w, bb, &s);
            ref_conv_transpose2d_bwd(dx, dw, db, u, x, w, &s);
        } else {
            ref_conv2d_fwd(y, x, w, bb, &s);
            ref_conv2d_bwd(dx, dw, db, u, x, w, &s);
        }
        compare_tol("y", Y, y, yx_tol(s));
        compare_tol("dx", vkd_graph_grad(g, X), dx, yx_tol(s));
        if (flags & GRAD_W) compare("dw", vkd_graph_grad(g, W), dw);
        else CHECK(vkd_graph_grad(g, W) == NULL, "frozen weight has a gradient");
        if (B && (flags & GRAD_B)) compare("db", vkd_graph_grad(g, B), db);
    }
    vkd_graph_free(g);
    vkd_tensor_free(X), vkd_tensor_free(W), vkd_tensor_free(U);
    if (B) vkd_tensor_free(B);
    free(x), free(w), free(b), free(u), free(y), free(dx), free(dw), free(db);
}

// A weight gradient long enough to be cut into several chunks (summed by a
// second pass) must still be bit-identical on every replay.
static void test_split_replay(vkd_ctx *ctx) {
    // a single weight (1 channel, 1x1 kernel): one output tile whatever the tile shape or subgroup
    // size, so even a CPU device that wants only as many workgroups as its threads cuts the
    // 2048-term sum, unless it has one thread (main gives lavapipe two unless told otherwise)
    ref_conv_shape s = {2, 1, 32, 32, 1, 1, 1, 1, 0, 0, 1};
    int chunks = ctx->f.type != VK_PHYSICAL_DEVICE_TYPE_CPU || ctx->device_threads > 1;
    printf("weight gradient over 2x32x32 pixels in chunks, replayed\n");
    long nx = (long)s.n * s.cin * s.h * s.w, nw = (long)s.cout * s.cin * s.kh * s.kw, ny = (long)s.n * s.cout * s.h * s.w;
    double *x = malloc(nx * 8), *w = malloc(nw * 8), *u = malloc(ny * 8), *dw = malloc(nw * 8);
    t_fill(x, nx, -1, 1), t_fill(w, nw, -1, 1), t_fill(u, ny, -1, 1);
    vkd_graph *g = vkd_graph_new(ctx, "split");
    vkd_tensor *X = t_tensor(ctx, "x", 4, (int64_t[]){s.n, s.cin, s.h, s.w}, x, 0);
    vkd_tensor *W = t_tensor(ctx, "w", 4, (int64_t[]){s.cout, s.cin, s.kh, s.kw}, w, 0);
    vkd_tensor *U = t_tensor(ctx, "u", 4, (int64_t[]){s.n, s.cout, s.h, s.w}, u, 0);
    vkd_tensor_set_requires_grad(W, 1);
    vkd_tensor *Y = vkd_conv2d(g, X, W, NULL, s.stride, s.ph, s.pw, s.groups);
    vkd_graph_backward(g, vkd_sum(g, vkd_mul(g, Y, U), 0));
    vkd_tensor *dW = vkd_graph_grad(g, W);
    CHECK(count_dispatches(g, "bwd_weight") == (chunks ? 2 : 1),
          "expected the weight gradient %s, got %d dispatches (device threads %d)",
          chunks ? "in chunks plus their sum" : "in one piece on one thread", count_dispatches(g, "bwd_weight"),
          ctx->device_threads);
    CHECK(dW && vkd_graph_run(g) == 0, "run: %s", vkd_graph_error(g));
    if (dW) {
        ref_conv2d_bwd(NULL, dw, NULL, u, x, w, &s);
        compare("dw", dW, dw);
        float *a = malloc(nw * 4), *c = malloc(nw * 4);
        vkd_tensor_download(dW, a);
        vkd_graph_run(g);
        vkd_tensor_download(dW, c);
        CHECK(memcmp(a, c, nw * 4) == 0, "replayed weight gradient differs");
        free(a), free(c);
    }
    vkd_graph_free(g);
    vkd_tensor_free(X), vkd_tensor_free(W), vkd_tensor_free(U);
    free(x), free(w), free(u), free(dw);
}

// Parameters read by one convolution get their weight and bias gradients added by the
// gradient passes themselves into the persistent buffers (no grad_accumulate pass): the
// result must be old + the gradient of the same graph built on plain tensors, bit for bit,
// for a weight gradient in one piece and one in chunks, and for conv_transpose2d.
static void test_param_grads(vkd_ctx *ctx, const char *name, int transposed, ref_conv_shape s) {
    printf("%s: gradients added into parameters\n", name);
    conv_sizes z = sizes_of(s, transposed);
    int ho = z.ho, wo = z.wo;
    long nx = z.nx, ny = z.ny, nw = z.nw, len[2] = {nw, s.cout};
    const int64_t *wsh = z.wsh;
    double *x = malloc(nx * 8), *w = malloc(nw * 8), *b = malloc(s.cout * 8), *u = malloc(ny * 8);
    t_fill(x, nx, -1, 1), t_fill(w, nw, -1, 1), t_fill(b, s.cout, -1, 1), t_fill(u, ny, -1, 1);
    float *old[2] = {malloc(nw * 4), malloc(s.cout * 4)}, *got[2][2];
    for (int k = 0; k < 2; k++)
        for (long i = 0; i < len[k]; i++) old[k][i] = (float)(t_uniform() - 0.5);
    for (int param = 0; param < 2; param++) {
        vkd_graph *g = vkd_graph_new(ctx, name);
        vkd_tensor *X = t_tensor(ctx, "x", 4, (int64_t[]){s.n, s.cin, s.h, s.w}, x, 0);
        vkd_tensor *W = t_tensor(ctx, "w", 4, wsh, w, param ? VKD_PARAM : 0);
        vkd_tensor *B = t_tensor(ctx, "b", 1, (int64_t[]){s.cout}, b, param ? VKD_PARAM : 0);
        vkd_tensor *U = t_tensor(ctx, "u", 4, (int64_t[]){s.n, s.cout, ho, wo}, u, 0);
        vkd_tensor_set_requires_grad(W, 1), vkd_tensor_set_requires_grad(B, 1);
        if (param) vkd_tensor_upload(vkd_tensor_grad(W), old[0]), vkd_tensor_upload(vkd_tensor_grad(B), old[1]);
        vkd_tensor *Y = transposed ? vkd_conv_transpose2d(g, X, W, B, s.stride, s.ph, s.pw, s.groups)
                                   : vkd_conv2d(g, X, W, B, s.stride, s.ph, s.pw, s.groups);
        CHECK(Y && vkd_graph_backward(g, vkd_sum(g, vkd_mul(g, Y, U), 0)) == 0 && vkd_graph_run(g) == 0, "%s: %s",
              name, vkd_graph_error(g));
        if (param)
            CHECK(count_dispatches(g, "grad_accumulate") == 0, "%d grad_accumulate passes for parameters read once",
                  count_dispatches(g, "grad_accumulate"));
        vkd_tensor *t[2] = {W, B};
        for (int k = 0; k < 2; k++) {
            const vkd_tensor *d = param ? vkd_tensor_grad(t[k]) : vkd_graph_grad(g, t[k]);
            got[param][k] = malloc(len[k] * 4);
            if (d) vkd_tensor_download(d, got[param][k]);
            else memset(got[param][k], 0xff, len[k] * 4);
        }
        vkd_graph_free(g);
        vkd_tensor_free(X), vkd_tensor_free(W), vkd_tensor_free(B), vkd_tensor_free(U);
    }
    for (int k = 0; k < 2; k++) {
        int same = 1;
        for (long i = 0; i < len[k]; i++) {
            float want = old[k][i] + got[0][k][i];
            same &= memcmp(&want, &got[1][k][i], 4) == 0;
        }
        CHECK(same, "%s: the parameter's %s gradient is not old + the graph's, bit for bit", name, k ? "bias" : "weight");
        free(got[0][k]), free(got[1][k]), free(old[k]);
    }
    free(x), free(w), free(b), free(u);
}

// A fused convolution of x (2, 3, 4, 4) with w (5, 3, 3, 3) given an operand of the wrong
// shape (res 0: conv2d_add's per-sample add, 1: conv2d_res's residual) is refused, naming it.
static void expect_fused_error(vkd_ctx *ctx, int res, int ndim, const int64_t *shape, const char *name) {
    vkd_graph *g = vkd_graph_new(ctx, res ? "conv_res_error" : "conv_add_error");
    vkd_tensor *X = vkd_tensor_new(ctx, "x", 4, (int64_t[]){2, 3, 4, 4}, 0);
    vkd_tensor *W = vkd_tensor_new(ctx, "w", 4, (int64_t[]){5, 3, 3, 3}, 0);
    vkd_tensor *E = vkd_tensor_new(ctx, name, ndim, shape, 0);
    vkd_tensor *y = res ? vkd_conv2d_res(g, X, W, NULL, E, 0.5f, 1, 1, 1, 1) : vkd_conv2d_add(g, X, W, NULL, E, 1, 1, 1, 1);
    const char *err = y ? NULL : vkd_graph_error(g);
    char needle[72];
    snprintf(needle, sizeof needle, "'%s'", name);
    CHECK(err && strstr(err, needle), "%s with a wrongly shaped '%s': got '%s'", res ? "conv2d_res" : "conv2d_add", name,
          err ? err : "(no error)");
    vkd_graph_free(g);
    vkd_tensor_free(X), vkd_tensor_free(W), vkd_tensor_free(E);
}

// Whether a convolution pipeline stores its quads in the form `suffix` names: src/ops/conv2d.c's
// modules are <walk>, <walk>_wide (64-bit pairs) and <walk>_sb (vec4s through a storage binding).
static int conv_stores(const vkd_pipeline *pp, const char *suffix) {
    size_t n = strlen(pp->shader), k = strlen(suffix);
    return !strncmp(pp->shader, "conv2d", 6) && n > k && !strcmp(pp->shader + n - k, suffix);
}

// g's walks that read x through an upsampling when fused: forwards as F(2, 3) x F(4, 3) and
// Winograd weight gradients (shader constants 1 MODE, 16 WINO); row_col: g's passes summing
// rows and their columns together (reduce.comp's NSUM), counted apart.
static int up_walks(const vkd_graph *g, int row_col) {
    int n = 0;
    for (int i = 0; i < g->ndisp; i++) {
        const vkd_pipeline *pp = g->disp[i].pipe;
        if (row_col) n += pp && !strncmp(pp->shader, "reduce", 6) && pp->nspec > 8 && pp->spec[8] != 0;
        else if (pp && !strncmp(pp->shader, "conv2d", 6) && pp->nspec > 16)
            n += (pp->spec[1] == 0 && pp->spec[16] >= 3) || (pp->spec[1] == 2 && pp->spec[16] != 0);
    }
    return n;
}

// Runs g with the loss sum(Y * U) and downloads Y and the gradients of in[0..3] into got[0..4]
// (len[i] floats each; all bits set where a gradient is missing), then frees g. Returns
// up_walks(g, row_col).
static int run_fused_case(vkd_graph *g, vkd_tensor *Y, vkd_tensor *U, vkd_tensor *const in[4], const long len[5],
                          float *got[5], const char *op, int row_col) {
    int walks = 0;
    CHECK(Y != NULL, "%s: %s", op, vkd_graph_error(g));
    if (Y) {
        vkd_graph_keep(g, Y);
        CHECK(vkd_graph_backward(g, vkd_sum(g, vkd_mul(g, Y, U), 0)) == 0, "backward: %s", vkd_graph_error(g));
        CHECK(vkd_graph_run(g) == 0, "run: %s", vkd_graph_error(g));
        for (int i = 0; i < 5; i++) {
            const vkd_tensor *t = i ? vkd_graph_grad(g, in[i - 1]) : Y;
            got[i] = malloc(len[i] * 4);
            if (t) vkd_tensor_download(t, got[i]);
            else memset(got[i], 0xff, len[i] * 4);
        }
        walks = up_walks(g, row_col);
    }
    vkd_graph_free(g);
    return walks;
}

// conv2d_add (the per-sample channel add in the convolution's store) against conv2d then add,
// and with up, conv2d_up (a 2x nearest upsampling read inside the convolution) against
// upsample2x, conv2d and add: y and every gradient (x, w, bias, add) bit for bit, and the add's
// gradient against the double reference (u summed over the pixels). s is the convolution's shape
// (for up, the upsampled input's: x itself is (n, cin, h/2, w/2)).
static void test_conv_add(vkd_ctx *ctx, ref_conv_shape s, int up) {
    printf("conv2d_%s %d->%d, %dx%d, N=%d, against %sconv2d + add\n", up ? "up" : "add", s.cin, s.cout, s.h, s.w, s.n,
           up ? "upsample2x + " : "");
    int ho, wo, f = up ? 2 : 1;
    ref_conv2d_out(&s, &ho, &wo);
    long nx = (long)s.n * s.cin * (s.h / f) * (s.w / f), nw = (long)s.cout * s.cin / s.groups * s.kh * s.kw;
    long ny = (long)s.n * s.cout * ho * wo, na = (long)s.n * s.cout;
    double *x = malloc(nx * 8), *w = malloc(nw * 8), *b = malloc(s.cout * 8), *a = malloc(na * 8), *u = malloc(ny * 8);
    t_fill(x, nx, -1, 1), t_fill(w, nw, -1, 1), t_fill(b, s.cout, -1, 1), t_fill(a, na, -1, 1), t_fill(u, ny, -1, 1);
    vkd_tensor *X = t_tensor(ctx, "x", 4, (int64_t[]){s.n, s.cin, s.h / f, s.w / f}, x, 0);
    vkd_tensor *W = t_tensor(ctx, "w", 4, (int64_t[]){s.cout, s.cin / s.groups, s.kh, s.kw}, w, 0);
    vkd_tensor *B = t_tensor(ctx, "b", 1, (int64_t[]){s.cout}, b, 0);
    vkd_tensor *A = t_tensor(ctx, "add", 4, (int64_t[]){s.n, s.cout, 1, 1}, a, 0);
    vkd_tensor *U = t_tensor(ctx, "u", 4, (int64_t[]){s.n, s.cout, ho, wo}, u, 0);
    vkd_tensor *in[4] = {X, W, B, A};
    for (int i = 0; i < 4; i++) vkd_tensor_set_requires_grad(in[i], 1);
    float *got[2][5] = {{0}};
    long len[5] = {ny, nx, nw, s.cout, na};
    static const char *what[5] = {"y", "dx", "dw", "db", "d add"};
    // With x's rows whole quads, the fused upsampling's forward walks as F(2, 3) x F(4, 3) and its
    // weight gradient as F(3, 4) where the unfused convolution's do (the same sums on the same
    // values), else the plain walk: then compared bit for bit without Winograd (pass 1), whose
    // sums differ from the plain walk's (test_window_bits).
    for (int pass = 0; pass < (up ? 2 : 1); pass++) {
        if (pass) setenv("VKD_CONV_WINO", "0", 1);
        int walks[2];
        for (int v = 0; v < 2; v++) {
            for (int i = 0; i < 5 && pass; i++) free(got[v][i]), got[v][i] = NULL;
            vkd_graph *g = vkd_graph_new(ctx, v ? "conv_then_add" : "conv_add");
            vkd_tensor *Y = v    ? vkd_add(g, vkd_conv2d(g, up ? vkd_upsample2x(g, X) : X, W, B, s.stride, s.ph, s.pw, s.groups), A)
                            : up ? vkd_conv2d_up(g, X, W, B, A, s.ph)
                                 : vkd_conv2d_add(g, X, W, B, A, s.stride, s.ph, s.pw, s.groups);
            walks[v] = run_fused_case(g, Y, U, in, len, got[v], up ? "conv2d_up" : "conv2d_add", 0);
        }
        unsetenv("VKD_CONV_WINO");
        int expect = (s.w / 2) % 4 == 0 ? walks[1] : 0, same = up && !pass ? walks[0] == expect : 1;
        CHECK(same, "conv2d_up: %d Winograd walks through the upsampling, expected %d (unfused: %d)", walks[0],
              expect, walks[1]);
        if (up && !pass) printf("  %d Winograd walks through the upsampling (unfused: %d)\n", walks[0], walks[1]);
        for (int i = 0; i < 5 && got[0][i] && got[1][i] && same; i++)
            CHECK(memcmp(got[0][i], got[1][i], len[i] * 4) == 0, "conv2d_%s: %s differs from the unfused ops (pass %d)",
                  up ? "up" : "add", what[i], pass);
    }
    // The bias's and the embedding's gradients from one pass on CPU devices (reduce.comp's NSUM)
    // against the row pass and the column sum: the same bits
    if (!up) {
        float *sep[5] = {0};
        int rc[2];
        for (int pass = 0; pass < 2; pass++) {
            if (pass) setenv("VKD_ROW_COL_SUMS", "0", 1);
            vkd_graph *g = vkd_graph_new(ctx, "conv_add");
            vkd_tensor *Y = vkd_conv2d_add(g, X, W, B, A, s.stride, s.ph, s.pw, s.groups);
            float *tmp[5] = {0};
            rc[pass] = run_fused_case(g, Y, U, in, len, pass ? sep : tmp, "conv2d_add", 1);
            for (int i = 0; i < 5; i++) free(tmp[i]);
        }
        unsetenv("VKD_ROW_COL_SUMS");
        const VkSubgroupFeatureFlags need = VK_SUBGROUP_FEATURE_ARITHMETIC_BIT | VK_SUBGROUP_FEATURE_SHUFFLE_BIT;
        int cpu = ctx->f.type == VK_PHYSICAL_DEVICE_TYPE_CPU && (ctx->f.subgroup_ops & need) == need;
        CHECK(rc[1] == 0 && (rc[0] >= 1 || !cpu), "conv2d_add: %d, %d passes summing rows and columns", rc[0], rc[1]);
        for (int i = 3; i < 5 && got[0][i] && sep[i]; i++)
            CHECK(!memcmp(got[0][i], sep[i], len[i] * 4), "conv2d_add: %s in one pass differs from two", what[i]);
        printf("  %d pass(es) summing rows and columns, the bits of two\n", rc[0]);
        for (int i = 0; i < 5; i++) free(sep[i]);
    }
    if (got[0][4]) {
        double *ref = calloc(na, 8), e = 0;
        for (long i = 0; i < ny; i++) ref[i / (ho * wo)] += u[i];
        for (long i = 0; i < na; i++) e = fmax(e, fabs(got[0][4][i] - ref[i]) / (1 + fabs(ref[i])));
        CHECK(e < TOL, "d add: max error %.3g", e);
        printf("  bit for bit as the unfused ops; d add max err %.2e\n", e);
        free(ref);
    }
    for (int v = 0; v < 2; v++)
        for (int i = 0; i < 5; i++) free(got[v][i]);
    vkd_tensor_free(X), vkd_tensor_free(W), vkd_tensor_free(B), vkd_tensor_free(A), vkd_tensor_free(U);
    free(x), free(w), free(b), free(a), free(u);
    // an add that is not one value per sample and channel is refused by name
    expect_fused_error(ctx, 0, 2, (int64_t[]){2, 3}, "emb");
}

// (conv2d(x, w, b) + r) * s in the convolution's store against vkd_conv2d then vkd_add_scaled:
// y and every gradient bit for bit, d r against the double reference.
static void test_conv_res(vkd_ctx *ctx, ref_conv_shape s) {
    const float scale = 0.70710678f;
    printf("conv2d_res %d->%d, %dx%d, stride %d, N=%d, against conv2d + add_scaled\n", s.cin, s.cout, s.h, s.w,
           s.stride, s.n);
    int ho, wo;
    ref_conv2d_out(&s, &ho, &wo);
    long nx = (long)s.n * s.cin * s.h * s.w, nw = (long)s.cout * s.cin / s.groups * s.kh * s.kw;
    long ny = (long)s.n * s.cout * ho * wo;
    double *x = malloc(nx * 8), *w = malloc(nw * 8), *b = malloc(s.cout * 8), *r = malloc(ny * 8), *u = malloc(ny * 8);
    t_fill(x, nx, -1, 1), t_fill(w, nw, -1, 1), t_fill(b, s.cout, -1, 1), t_fill(r, ny, -1, 1), t_fill(u, ny, -1, 1);
    int64_t ys[4] = {s.n, s.cout, ho, wo};
    vkd_tensor *X = t_tensor(ctx, "x", 4, (int64_t[]){s.n, s.cin, s.h, s.w}, x, 0);
    vkd_tensor *W = t_tensor(ctx, "w", 4, (int64_t[]){s.cout, s.cin / s.groups, s.kh, s.kw}, w, 0);
    vkd_tensor *B = t_tensor(ctx, "b", 1, (int64_t[]){s.cout}, b, 0);
    vkd_tensor *R = t_tensor(ctx, "r", 4, ys, r, 0);
    vkd_tensor *U = t_tensor(ctx, "u", 4, ys, u, 0);
    vkd_tensor *in[4] = {X, W, B, R};
    for (int i = 0; i < 4; i++) vkd_tensor_set_requires_grad(in[i], 1);
    float *got[2][5] = {{0}};
    long len[5] = {ny, nx, nw, s.cout, ny};
    for (int v = 0; v < 2; v++) {
        vkd_graph *g = vkd_graph_new(ctx, v ? "conv_then_add_scaled" : "conv_res");
        vkd_tensor *Y = v ? vkd_add_scaled(g, vkd_conv2d(g, X, W, B, s.stride, s.ph, s.pw, s.groups), R, scale)
                          : vkd_conv2d_res(g, X, W, B, R, scale, s.stride, s.ph, s.pw, s.groups);
        run_fused_case(g, Y, U, in, len, got[v], "conv2d_res", 0);
    }
    static const char *what[5] = {"y", "dx", "dw", "db", "d res"};
    for (int i = 0; i < 5 && got[0][i] && got[1][i]; i++)
        CHECK(memcmp(got[0][i], got[1][i], len[i] * 4) == 0, "conv2d_res: %s differs from the unfused ops", what[i]);
    if (got[0][4]) {
        double e = 0;
        for (long i = 0; i < ny; i++) e = fmax(e, fabs(got[0][4][i] - u[i] * scale) / (1 + fabs(u[i])));
        CHECK(e < TOL, "d res: max error %.3g", e);
        printf("  bit for bit as the unfused ops; d res max err %.2e\n", e);
    }
    for (int v = 0; v < 2; v++)
        for (int i = 0; i < 5; i++) free(got[v][i]);
    vkd_tensor_free(X), vkd_tensor_free(W), vkd_tensor_free(B), vkd_tensor_free(R), vkd_tensor_free(U);
    free(x), free(w), free(b), free(r), free(u);
    // a residual not shaped as the output is refused by name
    expect_fused_error(ctx, 1, 4, (int64_t[]){2, 5, 4, 3}, "skip");
}

// Runs g's backward from loss and the graph, downloads the gradients of in[0 .. nin) into got[i]
// (len[i] floats; 0xff bytes where one has none) and gives the graph's scale passes.
static int grads_and_scales(vkd_graph *g, vkd_tensor *loss, vkd_tensor *const *in, int nin, const long *len,
                            float **got) {
    CHECK(vkd_graph_backward(g, loss) == 0, "backward: %s", vkd_graph_error(g));
    CHECK(vkd_graph_run(g) == 0, "run: %s", vkd_graph_error(g));
    for (int i = 0; i < nin; i++) {
        got[i] = malloc(len[i] * 4);
        const vkd_tensor *t = vkd_graph_grad(g, in[i]);
        if (t) vkd_tensor_download(t, got[i]);
        else memset(got[i], 0xff, len[i] * 4);
    }
    return count_dispatches(g, "scale");
}

// EDM's residual block end, y = (conv(x) + b + r) * s read by group norm + SiLU and by a second op:
// with the skip scale folded into y's gradient by the backward that completes it (VKD_GRAD_FOLD,
// src/core/graph.h), every gradient bit for bit as with the scale pass, which must then be gone.
// mul_first: the second op reads y before the group norm, so its backward completes y's gradient
// and cannot fold (a mul's backward writes its own tensor): both runs then keep the scale pass.
static void test_residual_fold(vkd_ctx *ctx, ref_conv_shape s, int groups, int mul_first) {
    printf("conv2d_res %d->%d, %dx%d, then group norm + SiLU (%s): the skip scale folded into dy\n", s.cin,
           s.cout, s.h, s.w, mul_first ? "a mul reads y first" : "read first");
    long nx = (long)s.n * s.cin * s.h * s.w, nw = (long)s.cout * s.cin * s.kh * s.kw, ny = (long)s.n * s.cout * s.h * s.w;
    double *x = malloc(nx * 8), *w = malloc(nw * 8), *b = malloc(s.cout * 8), *r = malloc(ny * 8), *u = malloc(ny * 8);
    double *gw = malloc(s.cout * 8);
    t_fill(x, nx, -1, 1), t_fill(w, nw, -1, 1), t_fill(b, s.cout, -1, 1), t_fill(r, ny, -1, 1), t_fill(u, ny, -1, 1);
    t_fill(gw, s.cout, 0.5, 1.5);
    int64_t ys[4] = {s.n, s.cout, s.h, s.w};
    vkd_tensor *in[6] = {t_tensor(ctx, "x", 4, (int64_t[]){s.n, s.cin, s.h, s.w}, x, 0),
                         t_tensor(ctx, "w", 4, (int64_t[]){s.cout, s.cin, s.kh, s.kw}, w, 0),
                         t_tensor(ctx, "b", 1, (int64_t[]){s.cout}, b, 0), t_tensor(ctx, "r", 4, ys, r, 0),
                         t_tensor(ctx, "gn_w", 1, (int64_t[]){s.cout}, gw, 0),
                         t_tensor(ctx, "gn_b", 1, (int64_t[]){s.cout}, b, 0)};
    vkd_tensor *U = t_tensor(ctx, "u", 4, ys, u, 0);
    for (int i = 0; i < 6; i++) vkd_tensor_set_requires_grad(in[i], 1);
    long len[6] = {nx, nw, s.cout, ny, s.cout, s.cout};
    float *got[2][6] = {{0}};
    int scales[2] = {0, 0};
    // (the bias's gradient from group norm's pixel sums sums in another order: test_pix_sums)
    setenv("VKD_GN_PIX_SUMS", "0", 1);
    for (int v = 0; v < 2; v++) {
        setenv("VKD_GRAD_FOLD", v ? "0" : "1", 1);
        vkd_graph *g = vkd_graph_new(ctx, v ? "residual_scale_pass" : "residual_fold");
        vkd_tensor *y = vkd_conv2d_res(g, in[0], in[1], in[2], in[3], 0.70710678f, 1, s.ph, s.pw, 1);
        vkd_tensor *m = mul_first ? vkd_mul(g, y, U) : NULL;
        vkd_tensor *z = vkd_groupnorm_silu(g, y, in[4], in[5], groups, 1e-5f);
        if (!mul_first) m = vkd_mul(g, y, U);
        vkd_tensor *loss = vkd_add(g, vkd_sum(g, vkd_mul(g, z, U), 0), vkd_sum(g, m, 0));
        scales[v] = grads_and_scales(g, loss, in, 6, len, got[v]);
        vkd_graph_free(g);
    }
    unsetenv("VKD_GRAD_FOLD");
    unsetenv("VKD_GN_PIX_SUMS");
    static const char *what[6] = {"dx", "dw", "db", "d res", "d gn_w", "d gn_b"};
    for (int i = 0; i < 6; i++)
        CHECK(memcmp(got[0][i], got[1][i], len[i] * 4) == 0, "residual fold: %s differs from the scale pass's", what[i]);
    if (mul_first)
        CHECK(scales[0] == scales[1], "residual fold: a mul completes y's gradient, yet %d scale passes against %d",
              scales[0], scales[1]);
    else
        CHECK(scales[0] == scales[1] - 1, "residual fold: %d scale passes folded, %d without (expected one fewer)",
              scales[0], scales[1]);
    printf("  every gradient bit for bit; scale passes %d folded, %d without\n", scales[0], scales[1]);
    for (int v = 0; v < 2; v++)
        for (int i = 0; i < 6; i++) free(got[v][i]);
    for (int i = 0; i < 6; i++) vkd_tensor_free(in[i]);
    vkd_tensor_free(U);
    free(x), free(w), free(b), free(r), free(u), free(gw);
}

// Sum of v over its n rows of `cols` (double).
static void col_sums(const float *v, long n, long cols, double *out) {
    for (long c = 0; c < cols; c++) out[c] = 0;
    for (long i = 0; i < n; i++)
        for (long c = 0; c < cols; c++) out[c] += v[i * cols + c];
}

// t_relerr of floats against doubles
static double rel_to(const float *a, const double *ref, long n) {
    double *d = malloc((size_t)n * 8);
    for (long i = 0; i < n; i++) d[i] = a[i];
    double e = t_relerr(d, ref, n);
    free(d);
    return e;
}

// A UNet block's convolution read first by group norm + SiLU: its bias's gradient (and the
// embedding's, res 0: y = conv(x) + b + emb, emb (N, C, 1, 1)) from the pixel sums group norm's
// backward writes beside y's gradient (vkd_tensor.pix_sums). Three runs: the default (on CPU
// devices group norm's walk of the samples also gives the bias's gradient, no pass of its own),
// VKD_GN_SUM_N=0 (a column sum of the pixel sums) and VKD_GN_PIX_SUMS=0 (a pass over y's gradient,
// the reference). res 1: y = (conv(x) + b + r) * s, y's gradient with s folded in, whose tensor is
// also r's: db must be the sums of the downloaded d r. Every other gradient bit for bit. A fourth
// run with b a parameter: its gradient buffer must gain exactly the first run's db, with no
// pass of its own (group norm adds into it on CPU devices).
static void test_pix_sums(vkd_ctx *ctx, ref_conv_shape s, int groups, int res) {
    printf("conv2d_%s %d->%d, %dx%d, then group norm + SiLU: bias gradient from group norm's pixel sums\n",
           res ? "res" : "add", s.cin, s.cout, s.h, s.w);
    long nx = (long)s.n * s.cin * s.h * s.w, nw = (long)s.cout * s.cin * s.kh * s.kw, ny = (long)s.n * s.cout * s.h * s.w;
    long na = res ? ny : (long)s.n * s.cout, P = (long)s.h * s.w;
    double *x = malloc(nx * 8), *w = malloc(nw * 8), *b = malloc(s.cout * 8), *a = malloc(na * 8), *u = malloc(ny * 8);
    double *gw = malloc(s.cout * 8);
    t_fill(x, nx, -1, 1), t_fill(w, nw, -1, 1), t_fill(b, s.cout, -1, 1), t_fill(a, na, -1, 1), t_fill(u, ny, -1, 1);
    t_fill(gw, s.cout, 0.5, 1.5);
    int64_t ys[4] = {s.n, s.cout, s.h, s.w}, es[4] = {s.n, s.cout, 1, 1};
    vkd_tensor *in[6] = {t_tensor(ctx, "x", 4, (int64_t[]){s.n, s.cin, s.h, s.w}, x, 0),
                         t_tensor(ctx, "w", 4, (int64_t[]){s.cout, s.cin, s.kh, s.kw}, w, 0),
                         t_tensor(ctx, "b", 1, (int64_t[]){s.cout}, b, 0), t_tensor(ctx, "a", 4, res ? ys : es, a, 0),
                         t_tensor(ctx, "gn_w", 1, (int64_t[]){s.cout}, gw, 0),
                         t_tensor(ctx, "gn_b", 1, (int64_t[]){s.cout}, b, 0)};
    vkd_tensor *U = t_tensor(ctx, "u", 4, ys, u, 0);
    vkd_tensor *bp = t_tensor(ctx, "b", 1, (int64_t[]){s.cout}, b, VKD_PARAM);
    float *old = malloc((size_t)s.cout * 4), *pgot = malloc((size_t)s.cout * 4);
    for (long c = 0; c < s.cout; c++) old[c] = (float)(t_uniform() - 0.5);
    vkd_tensor_upload(vkd_tensor_grad(bp), old);
    for (int i = 0; i < 6; i++) vkd_tensor_set_requires_grad(in[i], 1);
    vkd_tensor_set_requires_grad(bp, 1);
    long len[6] = {nx, nw, s.cout, na, s.cout, s.cout};
    float *got[4][6] = {{0}};
    int passes[4][2], acc = 0;
    static const char *runs[4][2] = {{"1", "1"}, {"1", "0"}, {"0", "1"}, {"1", "1"}};  // VKD_GN_PIX_SUMS, VKD_GN_SUM_N
    for (int v = 0; v < 4; v++) {
        setenv("VKD_GN_PIX_SUMS", runs[v][0], 1), setenv("VKD_GN_SUM_N", runs[v][1], 1);
        vkd_graph *g = vkd_graph_new(ctx, "pix_sums");
        vkd_tensor *bias = v == 3 ? bp : in[2];
        vkd_tensor *y = res ? vkd_conv2d_res(g, in[0], in[1], bias, in[3], 0.70710678f, 1, s.ph, s.pw, 1)
                            : vkd_conv2d_add(g, in[0], in[1], bias, in[3], 1, s.ph, s.pw, 1);
        vkd_tensor *z = vkd_groupnorm_silu(g, y, in[4], in[5], groups, 1e-5f);
        grads_and_scales(g, vkd_sum(g, vkd_mul(g, z, U), 0), in, 6, len, got[v]);
        passes[v][0] = count_dispatches(g, "reduce_bcast"), passes[v][1] = count_dispatches(g, "conv2d_bwd_bias");
        if (v == 3) acc = count_dispatches(g, "grad_accumulate");
        vkd_graph_free(g);
    }
    vkd_tensor_download(vkd_tensor_grad(bp), pgot);
    long bad = 0;
    for (long c = 0; c < s.cout; c++) {
        float want = old[c] + got[0][2][c];
        bad += memcmp(&want, &pgot[c], 4) != 0;
    }
    CHECK(bad == 0 && acc == 0, "pixel sums: %ld of %d bias parameter gradients differ from old + db, %d accumulate passes",
          bad, s.cout, acc);
    unsetenv("VKD_GN_PIX_SUMS"), unsetenv("VKD_GN_SUM_N");
    int cpu = ctx->f.type == VK_PHYSICAL_DEVICE_TYPE_CPU;  // (group norm walks the samples in a workgroup there)
    CHECK(passes[0][0] == passes[2][0] - 1 && passes[1][0] == passes[2][0] - 1 && passes[0][1] == !cpu &&
              passes[1][1] == 1 && passes[2][1] == 0,
          "pixel sums: reduce_bcast, bias passes %d, %d (default), %d, %d (VKD_GN_SUM_N=0), %d, %d (without)",
          passes[0][0], passes[0][1], passes[1][0], passes[1][1], passes[2][0], passes[2][1]);
    static const char *what[6] = {"dx", "dw", "db", "d add", "d gn_w", "d gn_b"};
    double e_db = 0, e_pass = 0;
    for (int v = 0; v < 2; v++) {
        for (int i = 0; i < 6; i++) {
            if (i == 2 || (i == 3 && !res)) continue;
            CHECK(memcmp(got[v][i], got[2][i], len[i] * 4) == 0, "pixel sums (run %d): %s differs from the sums pass's", v,
                  what[i]);
        }
        // db against the double sums of its source: d emb's rows (res 0), d r's pixels and rows (res 1)
        double *db = malloc((size_t)s.cout * 8);
        if (res) {  // d r (n, C, P) summed over n and P
            for (long c = 0; c < s.cout; c++) db[c] = 0;
            for (long i = 0; i < (long)s.n * s.cout; i++)
                for (long p = 0; p < P; p++) db[i % s.cout] += got[v][3][i * P + p];
        } else {
            col_sums(got[v][3], s.n, s.cout, db);
        }
        double e = rel_to(got[v][2], db, s.cout);
        e_db = e > e_db ? e : e_db;
        for (int i = 2; i <= 3; i++) {
            double *d = malloc((size_t)len[i] * 8);
            for (long k = 0; k < len[i]; k++) d[k] = got[2][i][k];
            e = rel_to(got[v][i], d, len[i]);
            e_pass = e > e_pass ? e : e_pass;
            free(d);
        }
        free(db);
    }
    CHECK(e_db < 1e-6, "pixel sums: db against the double sums of its source: rel err %.3g", e_db);
    CHECK(e_pass < 1e-5, "pixel sums: db, d add against the sums pass's: rel err %.3g", e_pass);
    printf("  passes over dy %d -> %d, bias passes %d (%d from the sums); db to the double sums %.2e, db and d add to "
           "the pass's %.2e; the rest bit for bit; a parameter bias gains db exactly\n",
           passes[2][0], passes[0][0], passes[0][1], passes[1][1], e_db, e_pass);
    for (int v = 0; v < 4; v++)
        for (int i = 0; i < 6; i++) free(got[v][i]);
    for (int i = 0; i < 6; i++) vkd_tensor_free(in[i]);
    vkd_tensor_free(U), vkd_tensor_free(bp);
    free(x), free(w), free(b), free(a), free(u), free(gw), free(old), free(pgot);
}

// EDM's decoder: a block's output y = (conv(x) + b + r) * s meets a skip k in a concat, read by the
// next block's group norm + SiLU first and by its 1x1 skip convolution. Group norm's backward then
// completes the concat's gradient and scales only y's channels (vkd_grad_fold_lead), and y's
// gradient is their copy: every gradient bit for bit as with the scale pass after the concat
// (VKD_CONCAT_FOLD=0), which must then be gone. Where the fold cannot be carried, both runs keep
// the scale pass, with the same bits: CONCAT_Y_TWICE, y has a second reader (a mul), so the
// concat's slice is not its whole gradient; CONCAT_NESTED, the concat is itself the first part of
// a second concat, whose first channels are then not all y's.
enum { CONCAT_ONCE, CONCAT_Y_TWICE, CONCAT_NESTED };
static void test_concat_fold(vkd_ctx *ctx, int mode) {
    const int n = 2, c = 8, ck = 8, h = 8, groups = 4, ct = c + ck + (mode == CONCAT_NESTED ? ck : 0);
    static const char *how[3] = {"y read once", "y read twice", "a concat of the concat"};
    printf("conv2d_res %d->%d, %dx%d, concat to %d channels, group norm + SiLU and a 1x1 (%s): the fold through the "
           "concat\n", c, c, h, h, ct, how[mode]);
    long nx = (long)n * c * h * h, nw = (long)c * c * 9, nk = (long)n * ck * h * h, nc = (long)n * ct * h * h;
    long nw1 = (long)c * ct;
    double *x = malloc(nx * 8), *w = malloc(nw * 8), *b = malloc(ct * 8), *k = malloc(nk * 8);
    double *u = malloc(nc * 8), *w1 = malloc(nw1 * 8), *gw = malloc(ct * 8);
    t_fill(x, nx, -1, 1), t_fill(w, nw, -0.5, 0.5), t_fill(b, ct, -1, 1), t_fill(k, nk, -1, 1);
    t_fill(u, nc, -1, 1), t_fill(w1, nw1, -0.5, 0.5), t_fill(gw, ct, 0.5, 1.5);
    int64_t cs[4] = {n, ct, h, h};
    vkd_tensor *in[7] = {t_tensor(ctx, "x", 4, (int64_t[]){n, c, h, h}, x, 0),
                         t_tensor(ctx, "w", 4, (int64_t[]){c, c, 3, 3}, w, 0), t_tensor(ctx, "b", 1, (int64_t[]){c}, b, 0),
                         t_tensor(ctx, "k", 4, (int64_t[]){n, ck, h, h}, k, 0),
                         t_tensor(ctx, "gn_w", 1, (int64_t[]){ct}, gw, 0),
                         t_tensor(ctx, "gn_b", 1, (int64_t[]){ct}, b, 0),
                         t_tensor(ctx, "w1", 4, (int64_t[]){c, ct, 1, 1}, w1, 0)};
    vkd_tensor *U = t_tensor(ctx, "u", 4, cs, u, 0), *Uy = t_tensor(ctx, "uy", 4, (int64_t[]){n, c, h, h}, u, 0);
    for (int i = 0; i < 7; i++) vkd_tensor_set_requires_grad(in[i], 1);
    long len[7] = {nx, nw, c, nk, ct, ct, nw1};
    float *got[2][7] = {{0}};
    int scales[2] = {0, 0};
    for (int v = 0; v < 2; v++) {
        setenv("VKD_CONCAT_FOLD", v ? "0" : "1", 1);
        vkd_graph *g = vkd_graph_new(ctx, v ? "concat_scale_pass" : "concat_fold");
        // y's residual is x itself (cin = cout), as in a block without a skip convolution
        vkd_tensor *y = vkd_conv2d_res(g, in[0], in[1], in[2], in[0], 0.70710678f, 1, 1, 1, 1);
        vkd_tensor *cat = vkd_concat(g, y, in[3], 1);
        if (mode == CONCAT_NESTED) cat = vkd_concat(g, cat, in[3], 1);
        vkd_tensor *z = vkd_groupnorm_silu(g, cat, in[4], in[5], groups, 1e-5f);
        vkd_tensor *s = vkd_conv2d(g, cat, in[6], NULL, 1, 0, 0, 1);
        vkd_tensor *loss = vkd_add(g, vkd_sum(g, vkd_mul(g, z, U), 0), vkd_sum(g, vkd_mul(g, s, s), 0));
        if (mode == CONCAT_Y_TWICE) loss = vkd_add(g, loss, vkd_sum(g, vkd_mul(g, y, Uy), 0));
        scales[v] = grads_and_scales(g, loss, in, 7, len, got[v]);
        vkd_graph_free(g);
    }
    unsetenv("VKD_CONCAT_FOLD");
    static const char *what[7] = {"dx", "dw", "db", "dk", "d gn_w", "d gn_b", "d w1"};
    for (int i = 0; i < 7; i++)
        CHECK(memcmp(got[0][i], got[1][i], len[i] * 4) == 0, "concat fold: %s differs from the scale pass's", what[i]);
    if (mode != CONCAT_ONCE)
        CHECK(scales[0] == scales[1], "concat fold (%s): nothing to fold, yet %d scale passes against %d", how[mode],
              scales[0], scales[1]);
    else
        CHECK(scales[0] == scales[1] - 1, "concat fold: %d scale passes folded, %d without (expected one fewer)",
              scales[0], scales[1]);
    printf("  every gradient bit for bit; scale passes %d folded, %d without\n", scales[0], scales[1]);
    for (int v = 0; v < 2; v++)
        for (int i = 0; i < 7; i++) free(got[v][i]);
    for (int i = 0; i < 7; i++) vkd_tensor_free(in[i]);
    vkd_tensor_free(U), vkd_tensor_free(Uy);
    free(x), free(w), free(b), free(k), free(u), free(w1), free(gw);
}

static void expect_error(vkd_ctx *ctx, const char *what, int transposed, const int64_t *xs, const int64_t *ws,
                         int64_t nbias, int stride, int ph, int pw, int groups, const char *needle) {
    vkd_graph *g = vkd_graph_new(ctx, "errors");
    vkd_tensor *X = vkd_tensor_new(ctx, "x", 4, xs, 0), *W = vkd_tensor_new(ctx, "w", 4, ws, 0);
    vkd_tensor *B = nbias ? vkd_tensor_new(ctx, "b", 1, &nbias, 0) : NULL;
    vkd_tensor *Y = transposed ? vkd_conv_transpose2d(g, X, W, B, stride, ph, pw, groups)
                               : vkd_conv2d(g, X, W, B, stride, ph, pw, groups);
    const char *err = vkd_graph_error(g);
    CHECK(Y == NULL && err && strstr(err, needle), "%s: got '%s'", what, err ? err : "(none)");
    printf("  error (%s): %s\n", what, err ? err : "(none)");
    vkd_graph_free(g);
    vkd_tensor_free(X), vkd_tensor_free(W);
    if (B) vkd_tensor_free(B);
}

// A 3x3 stride-1 convolution on a CPU device reads its taps as windows of a plane
// (VKD_CONV_WINDOW, the default there): without Winograd (VKD_CONV_WINO=0) the forward and the
// input gradient must be the plain walk's bits (the same products summed in the same order).
// With it (the default: the forward and data gradient where rows are whole quads, the weight
// gradient where its lanes own whole input channels) they are a different sum, held to the
// double reference: F(4, 3) (the default where the convolution's input channels are even) to
// WTOL, F(2, 3) (VKD_CONV_F43=0) and the weight gradient's F(3, 2) to TOL.
// data_quads: 1 when the data gradient's window walk should read w in quads (a 3x3 kernel, input
// channels a multiple of 4 and of the tile's rows).
// whole_taps: 1 when the weight gradient's lanes should own whole input channels (TAPS: a 3x3
// kernel with padding 1, any number of output channels).
static void test_window_bits(vkd_ctx *ctx, const char *name, int transposed, ref_conv_shape s, int data_quads,
                             int whole_taps) {
    printf("%s: window walks against the plain walk, bit for bit, and Winograd's against the reference\n", name);
    conv_sizes z = sizes_of(s, transposed);
    int ho = z.ho, wo = z.wo;
    long nx = z.nx, ny = z.ny, nw = z.nw;
    const int64_t *wsh = z.wsh;
    double *x = malloc(nx * 8), *w = malloc(nw * 8), *b = malloc(s.cout * 8), *u = malloc(ny * 8);
    t_fill(x, nx, -1, 1), t_fill(w, nw, -1, 1), t_fill(b, s.cout, -1, 1), t_fill(u, ny, -1, 1);
    float *out[6][3];
    int wide = 0;     // dispatches storing quads as 64-bit pairs (the walks' _wide modules)
    int sb = 0;       // dispatches storing quads as vec4s through a storage binding (their _sb modules)
    int walks44 = 0;  // walks as F(4, 3) x F(4, 3) in run 0
    int walks44w = 0; // weight gradients as F(3, 4) x F(3, 4) in run 0
    // the convolution's input channels (a transposed one's output's) even: F(4, 3) in runs 0 and 1
    int even = (transposed ? s.cout : s.cin) / s.groups % 2 == 0;
    // F(2, 3) x F(4, 3) in runs 0 and 1 where the walk's 8L-pixel blocks are whole pairs of rows
    // and the planes whole runs of 16L pixels (L = 8, or 4 where the subgroup is 4 wide), and for
    // each walk where its rows (M) are whole tiles of 8: the forward's output channels, the data
    // gradient's input channels (a transposed convolution's the other way round). In run 0, F(4, 3)
    // x F(4, 3) instead where the rows also come in fours and the planes in runs of 32L pixels.
    int L = ctx->f.subgroup_size == 4 ? 4 : 8;
    int geo2d = s.kh == 3 && s.ph == 1 && s.pw == 1 && s.groups == 1 && s.h % 2 == 0 && s.w % 4 == 0 &&
                (4 * L) % s.w == 0 && (s.h * s.w) % (16 * L) == 0;
    int geo44 = geo2d && s.h % 4 == 0 && (s.h * s.w) % (32 * L) == 0;
    int m_fwd = transposed ? s.cin : s.cout, m_data = transposed ? s.cout : s.cin;
    // run 0: the default (Winograd where it applies, F(4, 3) where it can, in both directions
    // where it can, 4 x 4 tiles where they fit), 1: F(2, 3) x F(4, 3) where the 2-D walk applies,
    // 2: F(4, 3) along the rows only, 3: Winograd's F(2, 3), 4: the window walks without
    // Winograd, 5: the plain walk
    for (int run = 0; run < 6; run++) {
        int pass = run == 5, wrun = run <= 3;
        setenv("VKD_CONV_WINDOW", pass ? "0" : "1", 1);
        setenv("VKD_CONV_GEMM", pass ? "0" : "1", 1);
        setenv("VKD_CONV_WINO", wrun ? "1" : "0", 1);
        setenv("VKD_CONV_F43", run <= 2 ? "1" : "0", 1);
        setenv("VKD_CONV_W2D", run <= 1 ? "1" : "0", 1);
        setenv("VKD_CONV_W44", run == 0 ? "1" : "0", 1);
        setenv("VKD_CONV_F34", run <= 2 ? "1" : "0", 1);
        out[run][0] = calloc(ny, 4), out[run][1] = calloc(nx, 4), out[run][2] = calloc(nw, 4);
        vkd_graph *g = vkd_graph_new(ctx, name);
        vkd_tensor *X = t_tensor(ctx, "x", 4, (int64_t[]){s.n, s.cin, s.h, s.w}, x, 0);
        vkd_tensor *W = t_tensor(ctx, "w", 4, wsh, w, 0);
        vkd_tensor *B = t_tensor(ctx, "b", 1, (int64_t[]){s.cout}, b, 0);
        vkd_tensor *U = t_tensor(ctx, "u", 4, (int64_t[]){s.n, s.cout, ho, wo}, u, 0);
        vkd_tensor_set_requires_grad(X, 1);
        vkd_tensor_set_requires_grad(W, 1);
        vkd_tensor *Y = transposed ? vkd_conv_transpose2d(g, X, W, B, s.stride, s.ph, s.pw, s.groups)
                                   : vkd_conv2d(g, X, W, B, s.stride, s.ph, s.pw, s.groups);
        if (Y) vkd_graph_keep(g, Y);
        int ok = Y && vkd_graph_backward(g, vkd_sum(g, vkd_mul(g, Y, U), 0)) == 0 && vkd_graph_run(g) == 0;
        CHECK(ok, "%s: %s", name, vkd_graph_error(g));
        // on a CPU device reading texel views the first pass reads the forward's and the input
        // gradient's taps as windows, and the weight gradient's rows of x as quads
        int windows = 0, dq = 0, taps = 0, qwin = 0, wino = 0, wino_w = 0, f43 = 0, w2d = 0, w44 = 0, f34 = 0, w44w = 0;
        int own = 0;  // F(4, 3) walks making w's factors themselves (constant 17, UW)
        for (int i = 0; i < g->ndisp; i++) {
            const vkd_pipeline *pp = g->disp[i].pipe;
            int win = pp && !strncmp(pp->shader, "conv2d", 6) && pp->nspec > 13 && pp->spec[13] != 0;
            windows += win;
            // the convolution's data gradient (a transposed convolution's forward) in MODE 1
            // (reading w in quads, or w's taps to make its factors itself)
            dq += win && pp->spec[1] == 1 && (pp->spec[12] != 0 || (pp->nspec > 17 && pp->spec[17] != 0));
            own += win && pp->spec[1] != 2 && pp->nspec > 17 && pp->spec[17] != 0;
            taps += win && pp->spec[1] == 2 && pp->nspec > 14 && pp->spec[14] != 0;
            qwin += win && pp->spec[1] != 2 && pp->nspec > 15 && pp->spec[15] != 0;
            wino += win && pp->spec[1] != 2 && pp->nspec > 16 && pp->spec[16] != 0;
            f43 += win && pp->spec[1] != 2 && pp->nspec > 16 && pp->spec[16] >= 2;
            w2d += win && pp->spec[1] != 2 && pp->nspec > 16 && pp->spec[16] == 3;
            w44 += win && pp->spec[1] != 2 && pp->nspec > 16 && pp->spec[16] == 4;
            wino_w += win && pp->spec[1] == 2 && pp->nspec > 16 && pp->spec[16] != 0;
            f34 += win && pp->spec[1] == 2 && pp->nspec > 16 && pp->spec[16] >= 2;
            w44w += win && pp->spec[1] == 2 && pp->nspec > 16 && pp->spec[16] == 4;
            wide += pp && conv_stores(pp, "_wide");
            sb += pp && conv_stores(pp, "_sb");
        }
        int cpu = ctx->f.type == VK_PHYSICAL_DEVICE_TYPE_CPU && ctx->texel;
        CHECK(windows == (pass == 0 && cpu ? 3 : 0), "%s: %d window walks in pass %d", name, windows, pass);
        CHECK(dq == (pass == 0 && cpu ? data_quads : 0), "%s: %d data-gradient walks reading w in quads in pass %d",
              name, dq, pass);
        CHECK(taps == (pass == 0 && cpu ? whole_taps : 0), "%s: %d weight gradients walking whole channels in pass %d",
              name, taps, pass);
        // the forward's and the input gradient's windows read by quads of pixels (rows of whole quads)
        CHECK(qwin == (pass == 0 && cpu && s.w % 4 == 0 ? 2 : 0), "%s: %d window walks by quads of pixels in pass %d",
              name, qwin, pass);
        // Winograd in the walks by quads: the forward, and the data gradient where it reads w in quads
        int nwino = wrun && cpu && s.w % 4 == 0 ? 1 + data_quads : 0, nf43 = run <= 2 && even ? nwino : 0;
        CHECK(f43 == nf43, "%s: %d walks as F(4, 3) in run %d", name, f43, run);
        int fwd2d = run <= 1 && even && geo2d && nwino && m_fwd % 8 == 0;
        int data2d = run <= 1 && even && geo2d && nwino && data_quads && m_data % 8 == 0;
        int n44 = run == 0 && geo44 ? fwd2d + data2d : 0;
        CHECK(w2d + w44 == fwd2d + data2d && w44 == n44,
              "%s: %d walks as F(2, 3) x F(4, 3) and %d as F(4, 3) x F(4, 3) in run %d (expected %d in all, %d)", name,
              w2d, w44, run, fwd2d + data2d, n44);
        // (the F(4, 3) walks along the rows and the F(4, 3) x F(4, 3) ones make w's factors
        // themselves; a forward and its data gradient both F(2, 3) x F(4, 3) read one transform:
        // the forward's, kept)
        int nown = nf43 - (fwd2d + data2d - n44), ntransforms = nwino - nown - (fwd2d && data2d && !n44);
        CHECK(wino == nwino && count_dispatches(g, "winograd_w") == ntransforms && own == nown,
              "%s: %d Winograd walks (%d transforms, expected %d; %d making their factors, expected %d) in run %d",
              name, wino, count_dispatches(g, "winograd_w"), ntransforms, own, nown, run);
        // and the weight gradient's over whole input channels (F(3, 2), no transform pass)
        CHECK(wino_w == (wrun && cpu ? whole_taps : 0), "%s: %d Winograd weight gradients in run %d", name, wino_w, run);
        CHECK(f34 == (run <= 2 && cpu ? whole_taps : 0), "%s: %d weight gradients as F(3, 4) in run %d", name, f34, run);
        // in both directions in run 0 where the rows come in fours and are at least 32 wide
        int n44w = run == 0 && cpu && whole_taps && s.kh == 3 && s.ph == 1 && s.pw == 1 && s.groups == 1 &&
                   s.stride == 1 && s.h % 4 == 0 && s.w >= 32;
        CHECK(w44w == n44w, "%s: %d weight gradients as F(3, 4) x F(3, 4) in run %d (expected %d)", name, w44w, run, n44w);
        if (run == 0) walks44 = w44, walks44w = w44w;
        if (ok)
            vkd_tensor_download(Y, out[run][0]), vkd_tensor_download(vkd_graph_grad(g, X), out[run][1]),
                vkd_tensor_download(vkd_graph_grad(g, W), out[run][2]);
        vkd_graph_free(g);
        vkd_tensor_free(X), vkd_tensor_free(W), vkd_tensor_free(B), vkd_tensor_free(U);
    }
    unsetenv("VKD_CONV_WINDOW");
    unsetenv("VKD_CONV_GEMM");
    unsetenv("VKD_CONV_WINO");
    unsetenv("VKD_CONV_F43");
    unsetenv("VKD_CONV_W2D");
    unsetenv("VKD_CONV_W44");
    unsetenv("VKD_CONV_F34");
    CHECK(memcmp(out[4][0], out[5][0], ny * 4) == 0, "%s: the forward differs", name);
    CHECK(memcmp(out[4][1], out[5][1], nx * 4) == 0, "%s: the input gradient differs", name);
    CHECK(memcmp(out[4][2], out[5][2], nw * 4) == 0, "%s: the weight gradient differs", name);
    double *y = malloc(ny * 8), *dx = malloc(nx * 8), *dw = malloc(nw * 8), *db = malloc(s.cout * 8);
    if (transposed) ref_conv_transpose2d_fwd(y, x, w, b, &s), ref_conv_transpose2d_bwd(dx, dw, db, u, x, w, &s);
    else ref_conv2d_fwd(y, x, w, b, &s), ref_conv2d_bwd(dx, dw, db, u, x, w, &s);
    for (int run = 0; run < 4; run++) {
        double ey = 0, edx = 0, edw = 0, tol = run == 0 && walks44 ? W44TOL : run <= 2 && even ? WTOL : TOL;
        int cpu = ctx->f.type == VK_PHYSICAL_DEVICE_TYPE_CPU && ctx->texel;
        double tolw = run == 0 && walks44w ? W44TOL : run <= 2 && whole_taps && cpu ? WTOL : TOL;  // 2-D, F(3, 4), F(3, 2)
        for (long i = 0; i < ny; i++) ey = fmax(ey, fabs(out[run][0][i] - y[i]) / (1 + fabs(y[i])));
        for (long i = 0; i < nx; i++) edx = fmax(edx, fabs(out[run][1][i] - dx[i]) / (1 + fabs(dx[i])));
        for (long i = 0; i < nw; i++) edw = fmax(edw, fabs(out[run][2][i] - dw[i]) / (1 + fabs(dw[i])));
        const char *how = run == 0 && walks44           ? "F(4, 3) x F(4, 3) where it fits"
                          : run <= 1 && even && geo2d ? "F(2, 3) x F(4, 3)"
                          : run <= 2 && even          ? "F(4, 3)"
                                                      : "F(2, 3)";
        CHECK(ey < tol && edx < tol && edw < tolw, "%s: with %s y max error %.3g, dx %.3g, dw %.3g (tolerances %.1g, %.1g)",
              name, how, ey, edx, edw, tol, tolw);
        printf("  with %s y max err %.2e, dx %.2e, dw %.2e\n", how, ey, edx, edw);
    }
    printf("  %d of them stored quads as 64-bit pairs, %d as vec4s through a storage binding\n", wide, sb);
    // where the device writes through storage bindings (src/vk/texel.c), every walk storing quads does
    CHECK(ctx->sbuf ? wide == 0 : sb == 0, "%s: %d walks stored quads as 64-bit pairs, %d through a storage binding",
          name, wide, sb);
    for (int p = 0; p < 6; p++) free(out[p][0]), free(out[p][1]), free(out[p][2]);
    free(x), free(w), free(b), free(u), free(y), free(dx), free(dw), free(db);
}

// A 1x1 convolution at stride 1 on a CPU device runs its forward and input gradient as batched
// GEMMs (shaders/matmul.comp, VKD_CONV_GEMM) and reads x's pixels as quads in its weight
// gradient (VKD_CONV_WINDOW): every result must be the convolution shader's plain walk's bits,
// the residual's (conv + bias + res) * scale included.
static void test_pointwise_bits(vkd_ctx *ctx, const char *name, ref_conv_shape s, float scale) {
    printf("%s: GEMMs and quads against the convolution shader's plain walk, bit for bit\n", name);
    conv_sizes z = sizes_of(s, 0);
    long nx = z.nx, ny = z.ny, nw = z.nw;
    double *x = malloc(nx * 8), *w = malloc(nw * 8), *b = malloc(s.cout * 8), *u = malloc(ny * 8),
           *r = malloc(ny * 8);
    t_fill(x, nx, -1, 1), t_fill(w, nw, -1, 1), t_fill(b, s.cout, -1, 1), t_fill(u, ny, -1, 1), t_fill(r, ny, -1, 1);
    float *out[2][4];
    int cpu = ctx->f.type == VK_PHYSICAL_DEVICE_TYPE_CPU;
    for (int pass = 0; pass < 2; pass++) {
        setenv("VKD_CONV_GEMM", pass ? "0" : "1", 1);
        setenv("VKD_CONV_WINDOW", pass ? "0" : "1", 1);
        for (int k = 0; k < 4; k++) out[pass][k] = calloc(k == 1 ? nx : k == 2 ? nw : ny, 4);
        vkd_graph *g = vkd_graph_new(ctx, name);
        vkd_tensor *X = t_tensor(ctx, "x", 4, (int64_t[]){s.n, s.cin, s.h, s.w}, x, 0);
        vkd_tensor *W = t_tensor(ctx, "w", 4, z.wsh, w, 0);
        vkd_tensor *B = t_tensor(ctx, "b", 1, (int64_t[]){s.cout}, b, 0);
        vkd_tensor *U = t_tensor(ctx, "u", 4, (int64_t[]){s.n, s.cout, z.ho, z.wo}, u, 0);
        vkd_tensor *R = t_tensor(ctx, "r", 4, (int64_t[]){s.n, s.cout, z.ho, z.wo}, r, 0);
        vkd_tensor_set_requires_grad(X, 1);
        vkd_tensor_set_requires_grad(W, 1);
        vkd_tensor_set_requires_grad(R, 1);
        vkd_tensor *Y = scale != 1.0f ? vkd_conv2d_res(g, X, W, B, R, scale, 1, 0, 0, 1) : vkd_conv2d(g, X, W, B, 1, 0, 0, 1);
        if (Y) vkd_graph_keep(g, Y);
        // x has a second use, recorded after the convolution: its gradient is pending when the
        // convolution's input gradient is computed, which the GEMM then adds in its epilogue
        vkd_tensor *loss = vkd_add(g, vkd_sum(g, vkd_mul(g, Y, U), 0), vkd_sum(g, vkd_mul(g, X, X), 0));
        int ok = Y && vkd_graph_backward(g, loss) == 0 && vkd_graph_run(g) == 0;
        CHECK(ok, "%s: %s", name, vkd_graph_error(g));
        int gemms = 0, quads = 0, fused_old = 0;
        for (int i = 0; i < g->ndisp; i++) {
            const vkd_pipeline *pp = g->disp[i].pipe;
            int gemm = pp && !strncmp(pp->shader, "matmul", 6) && !strncmp(g->disp[i].name, "conv2d", 6);
            gemms += gemm;
            fused_old += gemm && !strcmp(g->disp[i].name, "conv2d_bwd_data") && (pp->spec[11] & 8u);
            quads += pp && !strcmp(pp->shader, "conv2d") && pp->nspec > 13 && pp->spec[1] == 2 && pp->spec[13] == 1;
        }
        CHECK(gemms == (pass == 0 && cpu ? 2 : 0), "%s: %d GEMMs in pass %d", name, gemms, pass);
        CHECK(fused_old == (pass == 0 && cpu ? 1 : 0), "%s: the input gradient GEMM added x's other gradient %d times",
              name, fused_old);
        // the weight gradient reads x's rows as quads where they hold whole runs of 8 pixels
        int runs = s.w % 8 == 0 && ctx->texel;
        CHECK(quads == (pass == 0 && cpu && runs ? 1 : 0), "%s: %d weight gradients in quads in pass %d", name, quads, pass);
        if (ok) {
            vkd_tensor_download(Y, out[pass][0]), vkd_tensor_download(vkd_graph_grad(g, X), out[pass][1]);
            vkd_tensor_download(vkd_graph_grad(g, W), out[pass][2]);
            if (scale != 1.0f) vkd_tensor_download(vkd_graph_grad(g, R), out[pass][3]);
        }
        vkd_graph_free(g);
        vkd_tensor_free(X), vkd_tensor_free(W), vkd_tensor_free(B), vkd_tensor_free(U), vkd_tensor_free(R);
    }
    unsetenv("VKD_CONV_GEMM");
    unsetenv("VKD_CONV_WINDOW");
    CHECK(memcmp(out[0][0], out[1][0], ny * 4) == 0, "%s: the forward differs", name);
    CHECK(memcmp(out[0][1], out[1][1], nx * 4) == 0, "%s: the input gradient differs", name);
    CHECK(memcmp(out[0][2], out[1][2], nw * 4) == 0, "%s: the weight gradient differs", name);
    CHECK(memcmp(out[0][3], out[1][3], ny * 4) == 0, "%s: the residual's gradient differs", name);
    for (int p = 0; p < 2; p++)
        for (int k = 0; k < 4; k++) free(out[p][k]);
    free(x), free(w), free(b), free(u), free(r);
}

// The pipeline of the nth dispatch (from 0) named `name` (NULL if none).
static const vkd_pipeline *pipe_of(const vkd_graph *g, const char *name, int nth) {
    for (int i = 0; i < g->ndisp; i++)
        if (strcmp(g->disp[i].name, name) == 0 && nth-- == 0) return g->disp[i].pipe;
    return NULL;
}

// A forward's Winograd factors of w and its data gradient's (16->16 at 16x16: both F(4, 3) x
// F(4, 3) walks on a CPU device; hw = 8, 32->32 at 8x8, batch 3: both F(4, 3) along the rows, as
// the 8x8 planes of unet_fmnist and ddpmpp_reduced): made by the walks themselves (the default,
// constant 17), or by transforms with VKD_CONV_UW=0, one for each walk (VKD_CONV_KEEP_U=0) or
// the forward's 2-D ones kept for the data gradient: 0, 2 and 1 transforms (0, 2 and 2 along the
// rows, whose data gradient's factors are the reversed rows'), and y, dx and dw bit for bit the
// same in all three.
static void test_kept_factors(vkd_ctx *ctx, int transposed, int hw) {
    int ch = hw == 16 ? 16 : 32;
    ref_conv_shape s = {hw == 16 ? 2 : 3, ch, hw, hw, ch, 3, 3, 1, 1, 1, 1};
    printf("%s 3x3 pad 1, %d->%d, %dx%d: Winograd factors made in the walks, made twice, kept for the data gradient\n",
           transposed ? "conv_transpose2d" : "conv2d", ch, ch, hw, hw);
    conv_sizes z = sizes_of(s, transposed);
    double *x = malloc(z.nx * 8), *w = malloc(z.nw * 8), *u = malloc(z.ny * 8);
    t_fill(x, z.nx, -1, 1), t_fill(w, z.nw, -1, 1), t_fill(u, z.ny, -1, 1);
    float *out[3][3];
    int transforms[3] = {0, 0, 0};
    static const char *uw[3] = {"1", "0", "0"}, *keep[3] = {"1", "0", "1"};
    for (int v = 0; v < 3; v++) {
        setenv("VKD_CONV_UW", uw[v], 1), setenv("VKD_CONV_KEEP_U", keep[v], 1);
        out[v][0] = calloc(z.ny, 4), out[v][1] = calloc(z.nx, 4), out[v][2] = calloc(z.nw, 4);
        vkd_graph *g = vkd_graph_new(ctx, "kept");
        vkd_tensor *X = t_tensor(ctx, "x", 4, (int64_t[]){s.n, s.cin, s.h, s.w}, x, 0);
        vkd_tensor *W = t_tensor(ctx, "w", 4, z.wsh, w, 0);
        vkd_tensor *U = t_tensor(ctx, "u", 4, (int64_t[]){s.n, s.cout, z.ho, z.wo}, u, 0);
        vkd_tensor_set_requires_grad(X, 1), vkd_tensor_set_requires_grad(W, 1);
        vkd_tensor *Y = transposed ? vkd_conv_transpose2d(g, X, W, NULL, 1, 1, 1, 1) : vkd_conv2d(g, X, W, NULL, 1, 1, 1, 1);
        if (Y) vkd_graph_keep(g, Y);
        int ok = Y && vkd_graph_backward(g, vkd_sum(g, vkd_mul(g, Y, U), 0)) == 0 && vkd_graph_run(g) == 0;
        CHECK(ok, "kept factors: %s", vkd_graph_error(g));
        transforms[v] = count_dispatches(g, "winograd_w");
        if (ok)
            vkd_tensor_download(Y, out[v][0]), vkd_tensor_download(vkd_graph_grad(g, X), out[v][1]),
                vkd_tensor_download(vkd_graph_grad(g, W), out[v][2]);
        vkd_graph_free(g);
        vkd_tensor_free(X), vkd_tensor_free(W), vkd_tensor_free(U);
    }
    unsetenv("VKD_CONV_UW"), unsetenv("VKD_CONV_KEEP_U");
    // on a CPU device reading texel views both walks are Winograd's (F(4, 3) x F(4, 3) at 16x16,
    // F(4, 3) along the rows at 8x8 but F(2, 3) x F(4, 3) in lane groups of 4, which reads the
    // forward's transform, kept); elsewhere there is no transform
    int wino = ctx->f.type == VK_PHYSICAL_DEVICE_TYPE_CPU && ctx->texel;
    int w23 = wino && hw == 8 && ctx->f.subgroup_size == 4, made = w23 ? 1 : 0;
    int kept = wino ? (hw == 16 || w23 ? 1 : 2) : 0;
    CHECK(transforms[0] == made && transforms[1] == (wino ? 2 : 0) && transforms[2] == kept,
          "%d transforms with the factors made in the walks, %d made twice, %d kept (expected %d, %d, %d)",
          transforms[0], transforms[1], transforms[2], made, wino ? 2 : 0, kept);
    printf("  %d transforms with the factors made in the walks, %d made twice, %d kept\n", transforms[0],
           transforms[1], transforms[2]);
    static const char *what[3] = {"the forward", "the input gradient", "the weight gradient"};
    long len[3] = {z.ny, z.nx, z.nw};
    for (int v = 1; v < 3; v++)
        for (int k = 0; k < 3; k++)
            CHECK(memcmp(out[0][k], out[v][k], len[k] * 4) == 0, "factors in the walks: %s differs from setting %d's",
                  what[k], v);
    for (int v = 0; v < 3; v++) free(out[v][0]), free(out[v][1]), free(out[v][2]);
    free(x), free(w), free(u);
}

// A short run's light walk (vkd_graph_set_samples, src/ops/conv2d.c light_conv): two UNet-like
// 3x3 convolutions of different shapes, forward and both gradients, against the double reference
// at the direct walks' tolerance; on a CPU device with no Winograd transform and one pipeline a
// mode for both shapes, and a long run (or none said) on the fast walks.
static void test_light_walk(vkd_ctx *ctx, int64_t samples, int short_run) {
    printf("two 3x3 convolutions, 16->16 at 16x16 and 8->16 at 8x8, %lld samples said\n", (long long)samples);
    ref_conv_shape s1 = {2, 16, 16, 16, 16, 3, 3, 1, 1, 1, 1}, s2 = {2, 8, 8, 8, 16, 3, 3, 1, 1, 1, 1};
    ref_conv_shape sh[2] = {s1, s2};
    double *x[2], *w[2], *u[2], *y[2], *dx[2], *dw[2], *db[2];
    vkd_tensor *X[2], *W[2], *U[2], *Y[2];
    vkd_graph *g = vkd_graph_new(ctx, "light");
    vkd_graph_set_samples(g, samples);
    vkd_tensor *loss = NULL;
    for (int k = 0; k < 2; k++) {
        conv_sizes z = sizes_of(sh[k], 0);
        x[k] = malloc(z.nx * 8), w[k] = malloc(z.nw * 8), u[k] = malloc(z.ny * 8), y[k] = malloc(z.ny * 8);
        dx[k] = malloc(z.nx * 8), dw[k] = malloc(z.nw * 8), db[k] = malloc(sh[k].cout * 8);
        t_fill(x[k], z.nx, -1, 1), t_fill(w[k], z.nw, -1, 1), t_fill(u[k], z.ny, -1, 1);
        X[k] = t_tensor(ctx, "x", 4, (int64_t[]){sh[k].n, sh[k].cin, sh[k].h, sh[k].w}, x[k], 0);
        W[k] = t_tensor(ctx, "w", 4, z.wsh, w[k], 0);
        U[k] = t_tensor(ctx, "u", 4, (int64_t[]){sh[k].n, sh[k].cout, z.ho, z.wo}, u[k], 0);
        vkd_tensor_set_requires_grad(X[k], 1), vkd_tensor_set_requires_grad(W[k], 1);
        Y[k] = vkd_conv2d(g, X[k], W[k], NULL, 1, 1, 1, 1);
        vkd_graph_keep(g, Y[k]);
        vkd_tensor *l = vkd_sum(g, vkd_mul(g, Y[k], U[k]), 0);
        loss = loss ? vkd_add(g, loss, l) : l;
        ref_conv2d_fwd(y[k], x[k], w[k], NULL, &sh[k]);
        ref_conv2d_bwd(dx[k], dw[k], db[k], u[k], x[k], w[k], &sh[k]);
    }
    CHECK(vkd_graph_backward(g, loss) == 0 && vkd_graph_run(g) == 0, "light walk: %s", vkd_graph_error(g));
    int light = short_run && ctx->f.type == VK_PHYSICAL_DEVICE_TYPE_CPU;
    for (int k = 0; k < 2 && !vkd_graph_failed(g); k++) {
        compare_tol("y", Y[k], y[k], light ? TOL : W44TOL);
        compare_tol("dx", vkd_graph_grad(g, X[k]), dx[k], light ? TOL : W44TOL);
        // (the fast weight gradient on CPU devices is Winograd's F(3, 4): measured 2.06e-5 here)
        compare_tol("dw", vkd_graph_grad(g, W[k]), dw[k], light || ctx->f.type != VK_PHYSICAL_DEVICE_TYPE_CPU ? TOL : WTOL);
    }
    if (ctx->f.type == VK_PHYSICAL_DEVICE_TYPE_CPU) {
        int wino = 0;
        for (int i = 0; i < g->ndisp; i++) {
            const vkd_pipeline *pp = g->disp[i].pipe;
            wino += pp && !strncmp(pp->shader, "conv2d", 6) && pp->nspec > 16 && pp->spec[16] != 0;
        }
        // (the fast walks' Winograd reads its operands through texel views: not under VKD_TEXEL=0)
        CHECK(light ? wino == 0 && count_dispatches(g, "winograd") == 0 : wino > 0 || !ctx->texel,
              "%d Winograd walks with %lld samples said", wino, (long long)samples);
        static const char *modes[3] = {"conv2d", "conv2d_bwd_data", "conv2d_bwd_weight"};
        for (int m = 0; light && m < 3; m++)
            CHECK(pipe_of(g, modes[m], 0) && pipe_of(g, modes[m], 0) == pipe_of(g, modes[m], 1),
                  "the light %s of two shapes in two pipelines", modes[m]);
    }
    vkd_graph_free(g);
    for (int k = 0; k < 2; k++) {
        vkd_tensor_free(X[k]), vkd_tensor_free(W[k]), vkd_tensor_free(U[k]);
        free(x[k]), free(w[k]), free(u[k]), free(y[k]), free(dx[k]), free(dw[k]), free(db[k]);
    }
}

int main(void) {
    // lavapipe on two threads on a one-CPU machine too, so the weight gradient's chunks (cut for
    // a CPU device's threads) are tested there as well; a thread count the user set is kept
    if (!getenv("LP_NUM_THREADS") && sysconf(_SC_NPROCESSORS_ONLN) < 2) setenv("LP_NUM_THREADS", "2", 1);
    vkd_ctx *ctx = t_open();
    const int ALL = GRAD_W | GRAD_B | HAS_B;
    // n, cin, h, w, cout, kh, kw, stride, ph, pw, groups
    run_case(ctx, "conv2d 3x3 pad 1, 20->40, 6x7", 0, (ref_conv_shape){2, 20, 6, 7, 40, 3, 3, 1, 1, 1, 1}, ALL);
    run_case(ctx, "conv2d 3x3 stride 2 pad 1, 3->4, 7x6", 0, (ref_conv_shape){2, 3, 7, 6, 4, 3, 3, 2, 1, 1, 1}, ALL);
    run_case(ctx, "conv2d 3x3 stride 2 pad 0, 5->3, 8x9", 0, (ref_conv_shape){2, 5, 8, 9, 3, 3, 3, 2, 0, 0, 1}, ALL);
    run_case(ctx, "conv2d 1x1, 8->5, 4x4", 0, (ref_conv_shape){2, 8, 4, 4, 5, 1, 1, 1, 0, 0, 1}, ALL);
    // stride > kernel: phases of the data gradient with no taps must still write zeros (bias for conv^T)
    run_case(ctx, "conv2d 1x1 stride 2, 3->4, 5x6", 0, (ref_conv_shape){2, 3, 5, 6, 4, 1, 1, 2, 0, 0, 1}, ALL);
    run_case(ctx, "conv_transpose2d 1x1 stride 2, 3->2, 3x2", 1, (ref_conv_shape){2, 3, 3, 2, 2, 1, 1, 2, 0, 0, 1},
             ALL);
    run_case(ctx, "conv2d 1x3 pad (0,1), 3->4, 5x6", 0, (ref_conv_shape){1, 3, 5, 6, 4, 1, 3, 1, 0, 1, 1}, ALL);
    run_case(ctx, "conv2d 3x1 pad (1,0), 3->4, 5x6", 0, (ref_conv_shape){1, 3, 5, 6, 4, 3, 1, 1, 1, 0, 1}, ALL);
    run_case(ctx, "conv2d groups 2, 4->6, 5x5", 0, (ref_conv_shape){2, 4, 5, 5, 6, 3, 3, 1, 1, 1, 2}, ALL);
    run_case(ctx, "conv2d depthwise 2x2 stride 2, C=4, 8x8", 0, (ref_conv_shape){2, 4, 8, 8, 4, 2, 2, 2, 0, 0, 4},
             ALL);
    run_case(ctx, "conv2d depthwise 2x2 stride 2, C=3, 7x7", 0, (ref_conv_shape){2, 3, 7, 7, 3, 2, 2, 2, 0, 0, 3},
             ALL);
    run_case(ctx, "conv2d depthwise 4x4 stride 2 pad 1, C=3, 8x8", 0,
             (ref_conv_shape){2, 3, 8, 8, 3, 4, 4, 2, 1, 1, 3}, ALL);
    run_case(ctx, "conv2d odd 3->5, 7x5, N=2", 0, (ref_conv_shape){2, 3, 7, 5, 5, 3, 3, 1, 1, 1, 1}, ALL);
    run_case(ctx, "conv2d 5x5 stride 3 pad 2, 2->3, 9x8", 0, (ref_conv_shape){1, 2, 9, 8, 3, 5, 5, 3, 2, 2, 1}, ALL);
    run_case(ctx, "conv_transpose2d depthwise 4x4 stride 2 pad 1, C=3, 4x5", 1,
             (ref_conv_shape){2, 3, 4, 5, 3, 4, 4, 2, 1, 1, 3}, ALL);
    run_case(ctx, "conv_transpose2d dense 2x2 stride 2, 3->4, 3x4", 1,
             (ref_conv_shape){2, 3, 3, 4, 4, 2, 2, 2, 0, 0, 1}, ALL);
    run_case(ctx, "conv_transpose2d 3x3 stride 2 pad 1 groups 2, 4->6, 3x3", 1,
             (ref_conv_shape){1, 4, 3, 3, 6, 3, 3, 2, 1, 1, 2}, ALL);
    run_case(ctx, "conv_transpose2d 3x3 stride 1 pad 1, 5->3, 4x4", 1,
             (ref_conv_shape){2, 5, 4, 4, 3, 3, 3, 1, 1, 1, 1}, ALL);
    run_case(ctx, "conv2d 3x3 pad 1, 4->6, 5x5", 0, (ref_conv_shape){2, 4, 5, 5, 6, 3, 3, 1, 1, 1, 1},
             HAS_B | GRAD_B);
    run_case(ctx, "conv_transpose2d depthwise 4x4 stride 2 pad 1, C=2, 3x3", 1,
             (ref_conv_shape){1, 2, 3, 3, 2, 4, 4, 2, 1, 1, 2}, 0);
    // UNet-sized channel counts: on lavapipe these get the tall register tiles (up to 64x16 per lane,
    // chosen by the cost model in src/ops/conv2d.c), ragged in M (72 = 64 + 8) and in N.
    run_case(ctx, "conv2d 3x3 pad 1, 64->72, 8x8, N=3", 0, (ref_conv_shape){3, 64, 8, 8, 72, 3, 3, 1, 1, 1, 1}, ALL);
    run_case(ctx, "conv2d 3x3 pad 1, 40->64, 16x12, N=2", 0, (ref_conv_shape){2, 40, 16, 12, 64, 3, 3, 1, 1, 1, 1},
             ALL);
    run_case(ctx, "conv2d 3x3 stride 2 pad 1, 32->64, 10x10", 0, (ref_conv_shape){2, 32, 10, 10, 64, 3, 3, 2, 1, 1, 1},
             ALL);
    run_case(ctx, "conv_transpose2d 4x4 stride 2 pad 1, 48->32, 5x6", 1,
             (ref_conv_shape){2, 48, 5, 6, 32, 4, 4, 2, 1, 1, 1}, ALL);
    test_split_replay(ctx);
    test_param_grads(ctx, "conv2d 3x3 pad 1, 6->10, 5x7", 0, (ref_conv_shape){3, 6, 5, 7, 10, 3, 3, 1, 1, 1, 1});
    test_param_grads(ctx, "conv2d 1x1, 1->1, 32x32 (weight gradient in chunks)", 0,
                     (ref_conv_shape){2, 1, 32, 32, 1, 1, 1, 1, 0, 0, 1});
    test_param_grads(ctx, "conv_transpose2d 4x4 stride 2 pad 1, 6->4, 5x6", 1,
                     (ref_conv_shape){2, 6, 5, 6, 4, 4, 4, 2, 1, 1, 1});
    // the UNet block's first convolution: 3x3, one tile and many tiles per sample, ragged; in an
    // up block the upsampling inside it (3x3, and the 1x1 skip)
    test_conv_add(ctx, (ref_conv_shape){3, 6, 5, 7, 10, 3, 3, 1, 1, 1, 1}, 0);
    test_conv_add(ctx, (ref_conv_shape){2, 16, 16, 16, 24, 3, 3, 1, 1, 1, 1}, 0);
    test_conv_add(ctx, (ref_conv_shape){3, 16, 8, 8, 16, 3, 3, 1, 1, 1, 1}, 0);
    test_conv_add(ctx, (ref_conv_shape){3, 6, 8, 10, 10, 3, 3, 1, 1, 1, 1}, 1);
    test_conv_add(ctx, (ref_conv_shape){2, 16, 16, 16, 24, 3, 3, 1, 1, 1, 1}, 1);
    // (rows of 24 pixels and planes of 144: the forward's plain walk, fused or not, and the weight
    // gradient as F(3, 4))
    test_conv_add(ctx, (ref_conv_shape){2, 8, 6, 24, 16, 3, 3, 1, 1, 1, 1}, 1);
    test_conv_add(ctx, (ref_conv_shape){2, 12, 8, 6, 5, 1, 1, 1, 0, 0, 1}, 1);
    test_conv_res(ctx, (ref_conv_shape){3, 6, 5, 7, 10, 3, 3, 1, 1, 1, 1});
    test_conv_res(ctx, (ref_conv_shape){2, 16, 16, 16, 24, 3, 3, 1, 1, 1, 1});
    test_conv_res(ctx, (ref_conv_shape){3, 16, 8, 8, 16, 3, 3, 1, 1, 1, 1});
    test_conv_res(ctx, (ref_conv_shape){2, 12, 8, 6, 5, 1, 1, 1, 0, 0, 1});
    test_conv_res(ctx, (ref_conv_shape){2, 4, 7, 6, 6, 3, 3, 2, 1, 1, 2});
    // 16 channels in 4 groups at 8x8: group norm's backward with the gradient so far in vec4s;
    // 8 channels at 16x16: its rows in registers; a 1x1 convolution (the GEMM path)
    test_residual_fold(ctx, (ref_conv_shape){2, 8, 8, 8, 16, 3, 3, 1, 1, 1, 1}, 4, 0);
    test_residual_fold(ctx, (ref_conv_shape){2, 8, 16, 16, 8, 3, 3, 1, 1, 1, 1}, 2, 0);
    test_residual_fold(ctx, (ref_conv_shape){2, 12, 8, 8, 16, 1, 1, 1, 0, 0, 1}, 4, 0);
    test_residual_fold(ctx, (ref_conv_shape){2, 8, 8, 8, 16, 3, 3, 1, 1, 1, 1}, 4, 1);
    // the pixel sums from group norm's walks: in vec4s (16 channels, 4 groups, 8x8), rows held in
    // registers (8 channels at 16x16), the gradient so far added (the residual's fold)
    test_pix_sums(ctx, (ref_conv_shape){2, 8, 8, 8, 16, 3, 3, 1, 1, 1, 1}, 4, 0);
    test_pix_sums(ctx, (ref_conv_shape){3, 8, 16, 16, 8, 3, 3, 1, 1, 1, 1}, 2, 0);
    test_pix_sums(ctx, (ref_conv_shape){2, 8, 8, 8, 16, 3, 3, 1, 1, 1, 1}, 4, 1);
    test_pix_sums(ctx, (ref_conv_shape){2, 12, 8, 8, 16, 1, 1, 1, 0, 0, 1}, 4, 1);
    test_window_bits(ctx, "conv2d 3x3 pad 1, 24->40, 16x16", 0, (ref_conv_shape){2, 24, 16, 16, 40, 3, 3, 1, 1, 1, 1}, 1, 1);
    test_window_bits(ctx, "conv2d 3x3 pad 1 groups 2, 8->12, 8x8", 0, (ref_conv_shape){3, 8, 8, 8, 12, 3, 3, 1, 1, 1, 2}, 1, 1);
    // one and three output channels (a UNet's last convolution): whole channels, 15 and 13 of the
    // tile's 16 rows empty
    test_window_bits(ctx, "conv2d 3x3 pad 1, 8->1, 16x16", 0, (ref_conv_shape){1, 8, 16, 16, 1, 3, 3, 1, 1, 1, 1}, 1, 1);
    test_window_bits(ctx, "conv2d 3x3 pad 1, 8->3, 16x16", 0, (ref_conv_shape){1, 8, 16, 16, 3, 3, 3, 1, 1, 1, 1}, 1, 1);
    // groups with the quad walks: the data gradient's blocks of w and the weight gradient's channels per group
    test_window_bits(ctx, "conv2d 3x3 pad 1 groups 2, 32->32, 16x16", 0, (ref_conv_shape){2, 32, 16, 16, 32, 3, 3, 1, 1, 1, 2}, 1, 1);
    // 32x32 planes: the 2-D walk's lane groups each one whole row pair of 32 pixels
    test_window_bits(ctx, "conv2d 3x3 pad 1, 16->16, 32x32", 0, (ref_conv_shape){1, 16, 32, 32, 16, 3, 3, 1, 1, 1, 1}, 1, 1);
    // the 2-D walk at a ragged grid edge: 3 planes of 128 pixels, two lane groups of 128 a workgroup
    test_window_bits(ctx, "conv2d 3x3 pad 1, 16->16, 8x16, batch 3", 0, (ref_conv_shape){3, 16, 8, 16, 16, 3, 3, 1, 1, 1, 1}, 1, 1);
    // batch 3 at 8x8: the grid's last workgroup holds lane groups past N (ddpmpp's 8x8 blocks)
    test_window_bits(ctx, "conv2d 3x3 pad 1, 32->32, 8x8, batch 3", 0, (ref_conv_shape){3, 32, 8, 8, 32, 3, 3, 1, 1, 1, 1}, 1, 1);
    test_window_bits(ctx, "conv_transpose2d 3x3 pad 1, 16->8, 16x16", 1, (ref_conv_shape){2, 16, 16, 16, 8, 3, 3, 1, 1, 1, 1}, 1, 1);
    test_window_bits(ctx, "conv2d 3x3 pad 1, 64->32, 16x16", 0, (ref_conv_shape){2, 64, 16, 16, 32, 3, 3, 1, 1, 1, 1}, 1, 1);
    // the data gradient's w in quads needs whole tiles of input channels (36) and a multiple of 4 (70);
    // the weight gradient's whole channels: ragged in N (36, 70 channels) and, above, in M (40 = 16 + 16 + 8)
    test_window_bits(ctx, "conv2d 3x3 pad 1, 36->16, 16x16", 0, (ref_conv_shape){2, 36, 16, 16, 16, 3, 3, 1, 1, 1, 1}, 0, 1);
    test_window_bits(ctx, "conv2d 3x3 pad 1, 70->16, 16x16", 0, (ref_conv_shape){2, 70, 16, 16, 16, 3, 3, 1, 1, 1, 1}, 0, 1);
    // an odd number of input channels: u's rows of six would not be whole quads, so F(2, 3)
    test_window_bits(ctx, "conv2d 3x3 pad 1, 3->16, 16x16", 0, (ref_conv_shape){2, 3, 16, 16, 16, 3, 3, 1, 1, 1, 1}, 0, 1);
    // 1x1: whole quads of pixels; ragged M and N with rows of 12 (no weight-gradient quads); the
    // residual with EDM's skip scale (the GEMM's scale after its adds)
    test_pointwise_bits(ctx, "conv2d 1x1, 24->40, 16x16", (ref_conv_shape){2, 24, 16, 16, 40, 1, 1, 1, 0, 0, 1}, 1.0f);
    test_pointwise_bits(ctx, "conv2d 1x1, 13->37, 12x10, batch 3", (ref_conv_shape){3, 13, 12, 10, 37, 1, 1, 1, 0, 0, 1},
                        1.0f);
    test_pointwise_bits(ctx, "conv2d 1x1 + residual * 0.7071, 16->24, 8x8", (ref_conv_shape){2, 16, 8, 8, 24, 1, 1, 1, 0, 0, 1},
                        0.70710678f);
    // (last, so the cases above keep their random inputs) rows 32 and 64 wide: the weight
    // gradient as F(3, 4) x F(3, 4), through the upsampling, and over eight blocks of a band of
    // 4 rows a sample. (The upsampling at 8 lanes: at 4, rows of 32 are too wide for the forward's
    // 2-D walk, and the fused forward's plain walk has other bits than the unfused one's F(4, 3).)
    if (ctx->f.subgroup_size >= 8) test_conv_add(ctx, (ref_conv_shape){1, 16, 32, 32, 16, 3, 3, 1, 1, 1, 1}, 1);
    test_window_bits(ctx, "conv2d 3x3 pad 1, 16->40, 4x64, batch 2", 0, (ref_conv_shape){2, 16, 4, 64, 40, 3, 3, 1, 1, 1, 1}, 1, 1);
    test_light_walk(ctx, 16, 1);       // a short run: 16 x 37k multiply-adds a sample, far under 2^28
    test_light_walk(ctx, 1 << 20, 0);  // a long one
    test_light_walk(ctx, 0, 0);        // not said
    test_kept_factors(ctx, 0, 16);
    test_kept_factors(ctx, 1, 16);
    test_kept_factors(ctx, 0, 8);
    test_kept_factors(ctx, 1, 8);
    test_concat_fold(ctx, CONCAT_ONCE);
    test_concat_fold(ctx, CONCAT_Y_TWICE);
    test_concat_fold(ctx, CONCAT_NESTED);

    printf("shape errors\n");
    expect_error(ctx, "channels", 0, (int64_t[]){1, 3, 8, 8}, (int64_t[]){4, 2, 3, 3}, 0, 1, 1, 1, 1, "do not fit");
    expect_error(ctx, "groups", 0, (int64_t[]){1, 4, 8, 8}, (int64_t[]){6, 2, 3, 3}, 0, 1, 1, 1, 3, "do not fit");
    expect_error(ctx, "kernel too large", 0, (int64_t[]){1, 1, 2, 2}, (int64_t[]){1, 1, 5, 5}, 0, 1, 1, 1, 1,
                 "larger than");
    expect_error(ctx, "bias", 0, (int64_t[]){1, 2, 4, 4}, (int64_t[]){3, 2, 3, 3}, 2, 1, 1, 1, 1, "bias");
    expect_error(ctx, "stride", 0, (int64_t[]){1, 2, 4, 4}, (int64_t[]){3, 2, 3, 3}, 0, 0, 1, 1, 1, "stride");
    expect_error(ctx, "transposed channels", 1, (int64_t[]){1, 3, 4, 4}, (int64_t[]){2, 2, 2, 2}, 0, 2, 0, 0, 1,
                 "do not fit");
    expect_error(ctx, "transposed empty", 1, (int64_t[]){1, 1, 1, 1}, (int64_t[]){1, 1, 2, 2}, 0, 2, 1, 1, 1, "empty");
    return t_close(ctx);
}
