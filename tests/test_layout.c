// Layout ops and attention on the device against their double references
// (tests/ref/ref_layout.c, whose backward test_ref_layout.c checks against
// finite differences), forward and every gradient. Each case builds
// L = sum(w * op(inputs)) with a random upstream weight w, runs forward and
// backward once, and compares y and dL/d(every input).
#include "core/graph.h"
#include "ops/ops.h"
#include "harness.h"
#include "ref_layout.h"

// fp32 against double, relative to 1 + |ref|: copies are exact; attention sums
// at most 9 products per dot and stays far inside this.
#define TOL 2e-5

typedef struct {
    vkd_ctx *ctx;
    vkd_graph *g;
    double *w;  // upstream gradient dL/dy
} cas;

static cas begin(vkd_ctx *ctx, const char *name) {
    printf("%s\n", name);
    return (cas){ctx, vkd_graph_new(ctx, name), NULL};
}

static void end(cas *c) {
    vkd_graph_free(c->g);
    free(c->w);
}

static vkd_tensor *input(cas *c, const char *name, int ndim, const int64_t *shape, double *x) {
    vkd_tensor *t = t_tensor(c->ctx, name, ndim, shape, x, 0);
    vkd_tensor_set_requires_grad(t, 1);
    return t;
}

static double *rand_buf(long n, double lo, double hi) {
    double *x = malloc(sizeof *x * n);
    t_fill(x, n, lo, hi);
    return x;
}

// L = sum(w * y), backward, run.
static void finish(cas *c, vkd_tensor *y) {
    if (!y) {
        CHECK(0, "op failed: %s", vkd_graph_error(c->g));
        return;
    }
    long n = (long)vkd_tensor_numel(y);
    c->w = rand_buf(n, -1, 1);
    int64_t shape[VKD_MAX_DIMS];
    for (int i = 0; i < vkd_tensor_ndim(y); i++) shape[i] = vkd_tensor_dim(y, i);
    vkd_tensor *w = t_tensor(c->ctx, "upstream", vkd_tensor_ndim(y), shape, c->w, 0);
    vkd_graph_keep(c->g, y);
    vkd_tensor *loss = vkd_sum(c->g, vkd_mul(c->g, y, w), 0);
    CHECK(vkd_graph_backward(c->g, loss) == 0, "backward: %s", vkd_graph_error(c->g));
    CHECK(vkd_graph_run(c->g) == 0, "run: %s", vkd_graph_error(c->g));
}

static void compare(const char *what, const vkd_tensor *t, const double *ref) {
    if (!t) {
        CHECK(0, "%s: no tensor", what);
        return;
    }
    double *d = t_download(t);
    double e = t_relerr(d, ref, (long)vkd_tensor_numel(t));
    CHECK(e < TOL, "%s: max error %.3g (tolerance %.1g)", what, e, TOL);
    printf("  %-44s max err %.2e\n", what, e);
    free(d);
}

static void compare_grad(cas *c, const char *what, const vkd_tensor *x, const double *ref) {
    compare(what, vkd_graph_grad(c->g, x), ref);
}

static long prod(int n, const int64_t *s) {
    long p = 1;
    for (int i = 0; i < n; i++) p *= (long)s[i];
    return p;
}

static void to_long(int n, const int64_t *s, long *l) {
    for (int i = 0; i < n; i++) l[i] = (long)s[i];
}

// ---------------------------------------------------------------- layout
static void test_permute(vkd_ctx *ctx, const char *name, int ndim, const int64_t *shape, const int *perm) {
    cas c = begin(ctx, name);
    long n = prod(ndim, shape), ls[6];
    to_long(ndim, shape, ls);
    double *x = rand_buf(n, -1, 1), *y = malloc(n * 8), *dx = malloc(n * 8);
    vkd_tensor *X = input(&c, "x", ndim, shape, x);
    vkd_tensor *Y = vkd_permute(c.g, X, ndim, perm);
    finish(&c, Y);
    ref_permute_fwd(y, x, ndim, ls, perm);
    ref_permute_bwd(dx, c.w, ndim, ls, perm);
    for (int i = 0; Y && i < ndim; i++)
        CHECK(vkd_tensor_dim(Y, i) == shape[perm[i]], "permuted dim %d is %lld", i, (long long)vkd_tensor_dim(Y, i));
    compare("y", Y, y);
    compare_grad(&c, "dx", X, dx);
    free(x), free(y), free(dx);
    end(&c);
}

static void test_slice(vkd_ctx *ctx, const char *name, int ndim, const int64_t *shape, int axis, long start,
                       long len) {
    cas c = begin(ctx, name);
    int ax = axis < 0 ? axis + ndim : axis;
    long n = prod(ndim, shape), ny = n / (long)shape[ax] * len, ls[6];
    to_long(ndim, shape, ls);
    double *x = rand_buf(n, -1, 1), *y = malloc(ny * 8), *dx = malloc(n * 8);
    vkd_tensor *X = input(&c, "x", ndim, shape, x);
    vkd_tensor *Y = vkd_slice(c.g, X, axis, start, len);
    finish(&c, Y);
    ref_slice_fwd(y, x, ndim, ls, ax, start, len);
    ref_slice_bwd(dx, c.w, ndim, ls, ax, start, len);
    compare("y", Y, y);
    compare_grad(&c, "dx (zero outside the slice)", X, dx);
    free(x), free(y), free(dx);
    end(&c);
}

static void test_concat(vkd_ctx *ctx, const char *name, int ndim, const int64_t *ashape, long bn, int axis) {
    cas c = begin(ctx, name);
    int64_t bshape[6];
    long ls[6];
    memcpy(bshape, ashape, sizeof(int64_t) * ndim);
    bshape[axis] = bn;
    to_long(ndim, ashape, ls);
    long na = prod(ndim, ashape), nb = prod(ndim, bshape);
    double *a = rand_buf(na, -1, 1), *b = rand_buf(nb, -1, 1), *y = malloc((na + nb) * 8), *da = malloc(na * 8),
           *db = malloc(nb * 8);
    vkd_tensor *A = input(&c, "a", ndim, ashape, a), *B = input(&c, "b", ndim, bshape, b);
    vkd_tensor *Y = vkd_concat(c.g, A, B, axis);
    finish(&c, Y);
    ref_concat_fwd(y, a, b, ndim, ls, bn, axis);
    ref_concat_bwd(da, db, c.w, ndim, ls, bn, axis);
    compare("y", Y, y);
    compare_grad(&c, "da", A, da);
    compare_grad(&c, "db", B, db);
    free(a), free(b), free(y), free(da), free(db);
    end(&c);
}

// ---------------------------------------------------------------- attention
static void test_attention(vkd_ctx *ctx, int B, int T, int d, float scale) {
    char name[96];
    snprintf(name, sizeof name, "attention B=%d T=%d d=%d scale=%g (scale on %s)", B, T, d, scale,
             d <= T ? "q" : "scores");
    cas c = begin(ctx, name);
    long n = (long)B * T * d;
    int64_t sh[3] = {B, T, d};
    double *q = rand_buf(n, -2, 2), *k = rand_buf(n, -2, 2), *v = rand_buf(n, -2, 2), *y = malloc(n * 8),
           *dq = malloc(n * 8), *dk = malloc(n * 8), *dv = malloc(n * 8);
    vkd_tensor *Q = input(&c, "q", 3, sh, q), *K = input(&c, "k", 3, sh, k), *V = input(&c, "v", 3, sh, v);
    vkd_tensor *Y = vkd_attention(c.g, Q, K, V, scale);
    finish(&c, Y);
    ref_attention_fwd(y, q, k, v, B, T, d, (double)scale);
    ref_attention_bwd(dq, dk, dv, c.w, q, k, v, B, T, d, (double)scale);
    compare("y", Y, y);
    compare_grad(&c, "dq", Q, dq);
    compare_grad(&c, "dk", K, dk);
    compare_grad(&c, "dv", V, dv);
    free(q), free(k), free(v), free(y), free(dq), free(dk), free(dv);
    end(&c);
}

static void test_attention_edm(vkd_ctx *ctx, int N, int C, int H, int W, int heads) {
    char name[96];
    snprintf(name, sizeof name, "attention_edm qkv (%d,%d,%d,%d) heads=%d", N, 3 * C, H, W, heads);
    cas c = begin(ctx, name);
    long n = (long)N * 3 * C * H * W, ny = (long)N * C * H * W;
    double *qkv = rand_buf(n, -2, 2), *y = malloc(ny * 8), *dqkv = malloc(n * 8);
    vkd_tensor *X = input(&c, "qkv", 4, (int64_t[]){N, 3 * C, H, W}, qkv);
    vkd_tensor *Y = vkd_attention_edm(c.g, X, heads);
    finish(&c, Y);
    CHECK(Y && vkd_tensor_ndim(Y) == 4 && vkd_tensor_dim(Y, 1) == C, "output is (N, C, H, W)");
    ref_attention_edm_fwd(y, qkv, N, C, H * W, heads);
    ref_attention_edm_bwd(dqkv, c.w, qkv, N, C, H * W, heads);
    compare("y", Y, y);
    compare_grad(&c, "dqkv", X, dqkv);
    // softmax's backward inside dp's GEMM (matmul flag bit5), no pass of its own; the forward's
    // softmax in the scores GEMM (bit6) where the device takes it (a CPU device with shuffles in
    // groups of 8, up to 256 keys), else a pass of its own
    int smb = 0, sm_pass = 0, fused = 0, fwd_pass = 0, want = vkd_matmul_softmax_ok(c.g, (uint32_t)(H * W));
    for (int i = 0; i < c.g->ndisp; i++) {
        const vkd_pipeline *pp = c.g->disp[i].pipe;
        const char *op = c.g->disp[i].name;
        uint32_t flags = pp && pp->nspec > 11 ? pp->spec[11] : 0;
        smb += !strcmp(op, "attention_bwd_p") && (flags & 32u);
        fused += !strcmp(op, "attention_scores") && (flags & 64u);
        sm_pass += !strcmp(op, "softmax_bwd");
        fwd_pass += !strcmp(op, "softmax");
    }
    CHECK(smb == 1 && sm_pass == 0, "softmax's backward: %d in dp's GEMM, %d passes of its own", smb, sm_pass);
    CHECK(fused == want && fwd_pass == !want, "softmax: %d in the scores' GEMM, %d passes of its own (want %s)", fused,
          fwd_pass, want ? "the GEMM" : "a pass");
    // Replays are bit-identical (no atomics anywhere in the chain).
    double *y1 = Y ? t_download(Y) : NULL, *g1 = t_download(vkd_graph_grad(c.g, X));
    CHECK(vkd_graph_run(c.g) == 0, "second run: %s", vkd_graph_error(c.g));
    double *y2 = Y ? t_download(Y) : NULL, *g2 = t_download(vkd_graph_grad(c.g, X));
    CHECK(y1 && !memcmp(y1, y2, ny * 8) && !memcmp(g1, g2, n * 8), "replay is bit-identical");
    free(y1), free(y2), free(g1), free(g2);
    free(qkv), free(y), free(dqkv);
    end(&c);
}

static void test_attention_dit(vkd_ctx *ctx, int N, int T, int D, int heads) {
    char name[96];
    snprintf(name, sizeof name, "attention_dit qkv (%d,%d,%d) heads=%d", N, T, 3 * D, heads);
    cas c = begin(ctx, name);
    long n = (long)N * T * 3 * D, ny = (long)N * T * D;
    double *qkv = rand_buf(n, -2, 2), *y = malloc(ny * 8), *dqkv = malloc(n * 8);
    vkd_tensor *X = input(&c, "qkv", 3, (int64_t[]){N, T, 3 * D}, qkv);
    vkd_tensor *Y = vkd_attention_dit(c.g, X, heads);
    finish(&c, Y);
    CHECK(Y && vkd_tensor_ndim(Y) == 3 && vkd_tensor_dim(Y, 2) == D, "output is (N, T, D)");
    ref_attention_dit_fwd(y, qkv, N, T, D, heads);
    ref_attention_dit_bwd(dqkv, c.w, qkv, N, T, D, heads);
    compare("y", Y, y);
    compare_grad(&c, "dqkv", X, dqkv);
    free(qkv), free(y), free(dqkv);
    end(&c);
}

// Without any input that needs a gradient, attention records no backward work.
static void test_no_grad(vkd_ctx *ctx) {
    printf("attention_dit on a frozen input\n");
    double qkv[2 * 3 * 12];
    t_fill(qkv, 72, -1, 1);
    vkd_tensor *X = t_tensor(ctx, "qkv", 3, (int64_t[]){2, 3, 12}, qkv, 0);
    vkd_graph *g = vkd_graph_new(ctx, "frozen");
    vkd_tensor *Y = vkd_attention_dit(g, X, 2);
    int64_t nd = vkd_graph_dispatch_count(g);
    CHECK(Y && vkd_graph_backward(g, vkd_sum(g, Y, 0)) != 0, "backward refuses a loss with no gradient path");
    CHECK(nd == 3 + 3 + 1, "3 splits, 2 matmuls + softmax, 1 head permute: %lld dispatches", (long long)nd);
    vkd_graph_free(g);
    vkd_tensor_free(X);
}

static void expect_error(vkd_ctx *ctx, const char *what, int which, const char *needle) {
    vkd_graph *g = vkd_graph_new(ctx, "bad");
    vkd_tensor *a = vkd_tensor_new(ctx, "a", 3, (int64_t[]){2, 3, 4}, 0);
    vkd_tensor *b = vkd_tensor_new(ctx, "b", 3, (int64_t[]){2, 5, 4}, 0);
    vkd_tensor *qkv = vkd_tensor_new(ctx, "qkv", 4, (int64_t[]){1, 12, 2, 2}, 0), *r = NULL;
    switch (which) {
    case 0: r = vkd_permute(g, a, 3, (int[]){0, 1, 1}); break;
    case 1: r = vkd_slice(g, a, 1, 2, 2); break;
    case 2: r = vkd_concat(g, a, b, 2); break;
    case 3: r = vkd_attention_edm(g, qkv, 3); break;
    case 4: r = vkd_attention(g, a, b, a, 1.0f); break;
    }
    const char *err = vkd_graph_error(g);
    CHECK(r == NULL && err && strstr(err, needle), "%s: expected an error naming '%s', got '%s'", what, needle,
          err ? err : "(none)");
    printf("  %-28s -> %s\n", what, err ? err : "(none)");
    vkd_graph_free(g);
    vkd_tensor_free(a);
    vkd_tensor_free(b);
    vkd_tensor_free(qkv);
}

int main(void) {
    vkd_ctx *ctx = t_open();
    test_permute(ctx, "permute (3,4) -> (4,3)", 2, (int64_t[]){3, 4}, (int[]){1, 0});
    test_permute(ctx, "permute NCHW (2,3,4,5) -> NHWC", 4, (int64_t[]){2, 3, 4, 5}, (int[]){0, 2, 3, 1});
    test_permute(ctx, "permute 6-D nhwpqc->nchpwq (2,2,3,2,2,3)", 6, (int64_t[]){2, 2, 3, 2, 2, 3},
                 (int[]){0, 5, 1, 3, 2, 4});
    test_permute(ctx, "permute (3,1,16,40) -> (1,40,3,16) (workgroups)", 4, (int64_t[]){3, 1, 16, 40},
                 (int[]){1, 3, 0, 2});
    test_permute(ctx, "permute identity (2,3,4)", 3, (int64_t[]){2, 3, 4}, (int[]){0, 1, 2});
    test_slice(ctx, "slice (2,5,3) axis 1 [1:4]", 3, (int64_t[]){2, 5, 3}, 1, 1, 3);
    test_slice(ctx, "slice (4,6) axis -1 [2:3]", 2, (int64_t[]){4, 6}, -1, 2, 1);
    test_slice(ctx, "slice (5,2,3) axis 0 [3:5]", 3, (int64_t[]){5, 2, 3}, 0, 3, 2);
    test_concat(ctx, "concat NCHW (2,3,2,2)+(2,2,2,2) axis 1", 4, (int64_t[]){2, 3, 2, 2}, 2, 1);
    test_concat(ctx, "concat (3,4)+(3,2) last axis", 2, (int64_t[]){3, 4}, 2, 1);
    test_concat(ctx, "concat (2,7,33)+(2,9,33) axis 1 (workgroups)", 3, (int64_t[]){2, 7, 33}, 9, 1);
    test_attention(ctx, 2, 5, 4, 0.5f);
    test_attention(ctx, 2, 3, 8, 0.35355339f);
    test_attention_edm(ctx, 2, 8, 3, 3, 1);
    test_attention_edm(ctx, 2, 8, 3, 3, 2);
    test_attention_dit(ctx, 2, 5, 8, 2);
    test_attention_dit(ctx, 2, 5, 8, 1);
    // rows of 16 or more: on a CPU device the splits and their gradient run as row launches
    test_attention_edm(ctx, 2, 8, 4, 5, 2);
    // 64 keys: softmax's backward in dp's GEMM epilogue reads p in quads (CPU devices)
    test_attention_edm(ctx, 2, 16, 8, 8, 2);
    // 256 keys (a UNet's 16x16 attention): the scores' softmax tile at its largest, 8 x 32 a lane
    test_attention_edm(ctx, 1, 8, 16, 16, 1);
    test_attention_dit(ctx, 2, 3, 32, 1);
    test_no_grad(ctx);
    printf("error messages\n");
    expect_error(ctx, "permute repeats an axis", 0, "each of its 3 axes once");
    expect_error(ctx, "slice past the end", 1, "[2, 4) along axis 1");
    expect_error(ctx, "concat mismatch", 2, "must match except along that axis");
    expect_error(ctx, "edm heads do not divide C", 3, "divisible by heads (3)");
    expect_error(ctx, "attention k shape", 4, "(B,Tq,d), (B,Tk,d), (B,Tk,dv)");
    return t_close(ctx);
}
