// Every core op on the device against its double-precision reference
// (tests/ref), forward and backward. The backward of the references is itself
// checked against finite differences in test_ref_grad.c, so together these
// check the device gradients against finite differences.
//
// Each case builds L = sum(w * op(inputs)) with a random upstream weight w,
// runs forward + backward once, and compares y and dL/d(every input).
#include "harness.h"
#include "ref_ops.h"
#include "core/graph.h"  // the dispatches' specialization constants (test_matmul_quads_bits)
#include "ops/ops.h"  // vkd_sum_squares (internal: the optimizers use it)

// Tolerance for fp32 device results against the double reference, relative to
// 1 + |ref|: sums of up to ~100 fp32 products stay well inside it.
#define TOL 2e-5

typedef struct {
    vkd_ctx *ctx;
    vkd_graph *g;
    double *w;  // upstream gradient dL/dy
} cas;

static vkd_tensor *input(cas *c, const char *name, int ndim, const int64_t *shape, double *x) {
    vkd_tensor *t = t_tensor(c->ctx, name, ndim, shape, x, 0);
    vkd_tensor_set_requires_grad(t, 1);
    return t;
}

// L = sum(w * y) and backward.
static void finish(cas *c, vkd_tensor *y) {
    long n = (long)vkd_tensor_numel(y);
    c->w = malloc(n * sizeof *c->w);
    t_fill(c->w, n, -1, 1);
    int64_t shape[VKD_MAX_DIMS];
    for (int i = 0; i < vkd_tensor_ndim(y); i++) shape[i] = vkd_tensor_dim(y, i);
    vkd_tensor *w = t_tensor(c->ctx, "upstream", vkd_tensor_ndim(y), shape, c->w, 0);
    vkd_graph_keep(c->g, y);
    vkd_tensor *loss = vkd_sum(c->g, vkd_mul(c->g, y, w), 0);
    CHECK(vkd_graph_backward(c->g, loss) == 0, "backward: %s", vkd_graph_error(c->g));
    CHECK(vkd_graph_run(c->g) == 0, "run: %s", vkd_graph_error(c->g));
}

static void compare(const char *what, const vkd_tensor *t, const double *ref, double tol) {
    if (!t) {
        CHECK(0, "%s: no tensor", what);
        return;
    }
    double *d = t_download(t);
    double e = t_relerr(d, ref, (long)vkd_tensor_numel(t));
    CHECK(e < tol, "%s: max error %.3g (tolerance %.1g)", what, e, tol);
    printf("  %-44s max err %.2e\n", what, e);
    free(d);
}

static void compare_grad(cas *c, const char *what, const vkd_tensor *x, const double *ref) {
    compare(what, vkd_graph_grad(c->g, x), ref, TOL);
}

static cas begin(vkd_ctx *ctx, const char *name) {
    return (cas){ctx, vkd_graph_new(ctx, name), NULL};
}

static void end(cas *c) {
    vkd_graph_free(c->g);
    free(c->w);
}

// ---------------------------------------------------------------- matmul
static void test_matmul(vkd_ctx *ctx, int batch, int shared_b, int M, int N, int K, int ta, int tb) {
    char name[96];
    snprintf(name, sizeof name, "matmul b%d%s %dx%dx%d ta%d tb%d", batch, shared_b ? " sharedB" : "", M, N, K, ta, tb);
    cas c = begin(ctx, name);
    long na = (long)batch * M * K, nb = (long)(shared_b ? 1 : batch) * K * N, nc = (long)batch * M * N;
    double *a = malloc(na * 8), *b = malloc(nb * 8), *y = malloc(nc * 8), *da = malloc(na * 8), *db = malloc(nb * 8);
    t_fill(a, na, -1, 1);
    t_fill(b, nb, -1, 1);
    int64_t sa[3] = {batch, ta ? K : M, ta ? M : K}, sb[3] = {batch, tb ? N : K, tb ? K : N};
    int three = batch > 1;
    vkd_tensor *A = input(&c, "A", three ? 3 : 2, three ? sa : sa + 1, a);
    vkd_tensor *B = input(&c, "B", (three && !shared_b) ? 3 : 2, (three && !shared_b) ? sb : sb + 1, b);
    vkd_tensor *C = vkd_matmul(c.g, A, B, ta, tb);
    finish(&c, C);
    ref_matmul_fwd(y, a, b, NULL, batch, M, N, K, ta, tb, shared_b, 0);
    ref_matmul_bwd(da, db, NULL, c.w, a, b, batch, M, N, K, ta, tb, shared_b, 0);
    printf("%s\n", name);
    compare("y", C, y, TOL);
    compare_grad(&c, "dA", A, da);
    compare_grad(&c, "dB", B, db);
    free(a), free(b), free(y), free(da), free(db);
    end(&c);
}

// The GEMM's quad walks (matmul.comp constants 12-14, CPU devices with texel views) against the
// scalar walk (VKD_MM_QUADS=0), and a short run's light tile (vkd_graph_set_samples, src/ops/matmul.c
// light_mm: 8 x 1 accumulators a lane on CPU devices) against the tile chosen for speed, bit for bit:
// a linear layer (forward TB = 1, its input gradient TB = 0, its weight gradient TA = 1) and batched
// matmuls, with M, N and K ragged to the tiles.
static void test_matmul_quads_bits(vkd_ctx *ctx, int batch, int M, int N, int K, int ta, int tb) {
    printf("matmul quads b%d %dx%dx%d ta%d tb%d, and two linear layers: against the scalar walk and the light tile, "
           "bit for bit\n",
           batch, M, N, K, ta, tb);
    long na = (long)batch * M * K, nb = (long)batch * K * N, nc = (long)batch * M * N;
    double *a = malloc(na * 8), *b = malloc(nb * 8), *bias = malloc(N * 8), *u = malloc(nc * 8);
    t_fill(a, na, -1, 1), t_fill(b, nb, -1, 1), t_fill(bias, N, -1, 1), t_fill(u, nc, -1, 1);
    float *out[3][5];
    int quads[3] = {0, 0, 0}, epilogue = 0, gemms[3] = {0, 0, 0}, light[3] = {0, 0, 0}, ta_quads = 0;
    for (int pass = 0; pass < 3; pass++) {
        setenv("VKD_MM_QUADS", pass == 1 ? "0" : "1", 1);
        vkd_graph *g = vkd_graph_new(ctx, "matmul_quads");
        if (pass == 2) vkd_graph_set_samples(g, 1), vkd_graph_set_run_samples(g, 1);  // one run
        int64_t sa[3] = {batch, ta ? K : M, ta ? M : K}, sb[3] = {batch, tb ? N : K, tb ? K : N};
        vkd_tensor *A = t_tensor(ctx, "A", 3, sa, a, 0), *B = t_tensor(ctx, "B", 3, sb, b, 0);
        // the linear layer: x (batch*M, K), w (N, K)
        vkd_tensor *X = t_tensor(ctx, "x", 2, (int64_t[]){(int64_t)batch * M, K}, a, 0);
        vkd_tensor *W = t_tensor(ctx, "w", 2, (int64_t[]){N, K}, b, 0);
        vkd_tensor *Bi = t_tensor(ctx, "b", 1, (int64_t[]){N}, bias, 0);
        vkd_tensor *U = t_tensor(ctx, "u", 3, (int64_t[]){batch, M, N}, u, 0);
        vkd_tensor *all[4] = {A, B, X, W};
        for (int i = 0; i < 4; i++) vkd_tensor_set_requires_grad(all[i], 1);
        vkd_tensor *C = vkd_matmul(g, A, B, ta, tb);
        vkd_tensor *Y = vkd_linear(g, X, W, Bi);
        // and a second linear layer adding Y as its residual (the epilogue's reads of R and, for
        // x's gradient, of the accumulated C)
        vkd_tensor *Z = Y ? vkd_linear_add(g, X, W, Bi, Y) : NULL;
        vkd_tensor *Yr = Z ? vkd_reshape(g, Z, 3, (int64_t[]){batch, M, N}) : NULL;
        if (C) vkd_graph_keep(g, C);
        vkd_tensor *loss = C && Yr ? vkd_add(g, vkd_sum(g, vkd_mul(g, C, U), 0), vkd_sum(g, vkd_mul(g, Yr, U), 0)) : NULL;
        int ok = loss && vkd_graph_backward(g, loss) == 0 && vkd_graph_run(g) == 0;
        CHECK(ok, "matmul quads: %s", vkd_graph_error(g));
        for (int i = 0; i < g->ndisp; i++) {
            const vkd_pipeline *pp = g->disp[i].pipe;
            quads[pass] += pp && !strncmp(pp->shader, "matmul", 6) && pp->nspec > 14 &&
                           (pp->spec[12] || pp->spec[13] || pp->spec[14]);
            epilogue += pass == 0 && pp && !strncmp(pp->shader, "matmul", 6) && pp->nspec > 15 && pp->spec[15];
            ta_quads += pass == 0 && pp && !strncmp(pp->shader, "matmul", 6) && pp->nspec > 12 && pp->spec[0] &&
                        pp->spec[12];
            gemms[pass] += pp && !strncmp(pp->shader, "matmul", 6);
            light[pass] += pp && !strncmp(pp->shader, "matmul", 6) && pp->nspec > 6 && pp->spec[5] * pp->spec[6] == 8;
        }
        vkd_tensor *res[5] = {C, vkd_graph_grad(g, A), vkd_graph_grad(g, B), vkd_graph_grad(g, X), vkd_graph_grad(g, W)};
        for (int k = 0; k < 5; k++) {
            out[pass][k] = calloc((size_t)res[k]->numel, 4);
            if (ok) vkd_tensor_download(res[k], out[pass][k]);
        }
        vkd_graph_free(g);
        for (int i = 0; i < 4; i++) vkd_tensor_free(all[i]);
        vkd_tensor_free(Bi), vkd_tensor_free(U);
    }
    unsetenv("VKD_MM_QUADS");
    int cpu = ctx->f.type == VK_PHYSICAL_DEVICE_TYPE_CPU && ctx->texel && ctx->f.subgroup_size % 8 == 0;
    CHECK(!cpu || quads[0] > 0, "no GEMM took a quad walk");
    CHECK(quads[1] == 0, "VKD_MM_QUADS=0: %d GEMMs took a quad walk", quads[1]);
    // the linear layer's weight gradient (A = its dy, transposed, N columns): A's rows in quads
    CHECK(!cpu || N % 4 || ta_quads > 0, "no GEMM read a transposed A as quads");
    // 128 columns: the tiles' lanes own whole quads of them, so the residual is read in quads
    CHECK(!cpu || N % 128 || epilogue > 0, "no GEMM read R or C as quads");
    // a run of fewer than 2^28 multiply-adds: every GEMM light on a CPU device, and the tiles chosen
    // for speed larger
    int on_cpu = ctx->f.type == VK_PHYSICAL_DEVICE_TYPE_CPU;
    CHECK(!on_cpu || light[2] == gemms[2], "a short run: %d of %d GEMMs took the light tile", light[2], gemms[2]);
    CHECK(on_cpu || light[2] == 0, "the light tile on a GPU");
    CHECK(!on_cpu || light[0] < gemms[0], "no run said: all %d GEMMs took the light tile", gemms[0]);
    long n[5] = {nc, na, nb, na, (long)N * K};
    static const char *what[5] = {"C", "dA", "dB", "the linear's dx", "the linear's dw"};
    for (int k = 0; k < 5; k++) CHECK(memcmp(out[0][k], out[1][k], n[k] * 4) == 0, "%s differs", what[k]);
    for (int k = 0; k < 5; k++) CHECK(memcmp(out[0][k], out[2][k], n[k] * 4) == 0, "light tile: %s differs", what[k]);
    printf("  %d GEMMs took quad walks, %d read R or C as quads; a short run's %d light of %d (%d of %d unsaid)\n",
           quads[0], epilogue, light[2], gemms[2], light[0], gemms[0]);
    for (int p = 0; p < 3; p++)
        for (int k = 0; k < 5; k++) free(out[p][k]);
    free(a), free(b), free(bias), free(u);
}

// A linear layer's bias gradient (a column sum of dy) and a layer norm's dw and db, into plain
// tensors and added into parameters' persistent gradients: the quad walks (4 columns an
// invocation, CPU devices) against the scalar ones (VKD_COL_QUADS=0), bit for bit.
static void test_col_quads_bits(vkd_ctx *ctx, int rows, int cols) {
    printf("bias and layer norm parameter gradients, %d rows of %d: quad walks against scalar walks, bit for bit\n",
           rows, cols);
    const int K = 8;
    long nx = (long)rows * K, nu = (long)rows * cols;
    double *x = malloc(nx * 8), *w = malloc((long)cols * K * 8), *b = malloc(cols * 8), *u = malloc(nu * 8);
    t_fill(x, nx, -1, 1), t_fill(w, (long)cols * K, -1, 1), t_fill(b, cols, -1, 1), t_fill(u, nu, -1, 1);
    float *old = malloc(cols * 4), *got[2][6];
    for (int i = 0; i < cols; i++) old[i] = (float)(t_uniform() - 0.5);
    int quads[2] = {0, 0};
    for (int pass = 0; pass < 2; pass++) {
        setenv("VKD_COL_QUADS", pass ? "0" : "1", 1);
        vkd_graph *g = vkd_graph_new(ctx, "column sums in quads");
        vkd_tensor *X = t_tensor(ctx, "x", 2, (int64_t[]){rows, K}, x, 0);
        vkd_tensor *W = t_tensor(ctx, "w", 2, (int64_t[]){cols, K}, w, 0);
        vkd_tensor *U = t_tensor(ctx, "u", 2, (int64_t[]){rows, cols}, u, 0);
        // plain tensors (t[0..2]) and parameters (t[3..5]): a bias, a norm's weight and bias
        vkd_tensor *t[6];
        for (int k = 0; k < 6; k++) {
            t[k] = t_tensor(ctx, "t", 1, (int64_t[]){cols}, b, k >= 3 ? VKD_PARAM : 0);
            vkd_tensor_set_requires_grad(t[k], 1);
            if (k >= 3) vkd_tensor_upload(vkd_tensor_grad(t[k]), old);
        }
        vkd_tensor *y = vkd_add(g, vkd_linear(g, X, W, t[0]), vkd_linear(g, X, W, t[3]));
        vkd_tensor *z = vkd_add(g, vkd_layernorm(g, y, t[1], t[2], 1e-5f), vkd_layernorm(g, y, t[4], t[5], 1e-5f));
        int ok = vkd_graph_backward(g, vkd_sum(g, vkd_mul(g, z, U), 0)) == 0 && vkd_graph_run(g) == 0;
        CHECK(ok, "column sums in quads: %s", vkd_graph_error(g));
        for (int i = 0; i < g->ndisp; i++) {
            const vkd_pipeline *pp = g->disp[i].pipe;
            if (!pp || pp->nspec < 7) continue;
            quads[pass] += !strncmp(pp->shader, "reduce", 6) && pp->spec[1] == 1 && pp->nspec > 7 && pp->spec[7];
            quads[pass] += !strncmp(pp->shader, "layernorm", 9) && pp->spec[1] == 2 && pp->spec[6];
        }
        for (int k = 0; k < 6; k++) {
            got[pass][k] = calloc(cols, 4);
            if (ok) vkd_tensor_download(k >= 3 ? vkd_tensor_grad(t[k]) : vkd_graph_grad(g, t[k]), got[pass][k]);
        }
        vkd_graph_free(g);
        vkd_tensor_free(X), vkd_tensor_free(W), vkd_tensor_free(U);
        for (int k = 0; k < 6; k++) vkd_tensor_free(t[k]);
    }
    unsetenv("VKD_COL_QUADS");
    int cpu = ctx->f.type == VK_PHYSICAL_DEVICE_TYPE_CPU && ctx->texel;
    // two bias sums and two norms' dw/db passes
    CHECK(quads[0] == (cpu && cols % 4 == 0 ? 4 : 0), "%d column sums walked in quads", quads[0]);
    CHECK(quads[1] == 0, "VKD_COL_QUADS=0: %d column sums walked in quads", quads[1]);
    static const char *what[6] = {"bias", "norm weight", "norm bias", "param bias", "param norm weight",
                                  "param norm bias"};
    for (int k = 0; k < 6; k++) CHECK(!memcmp(got[0][k], got[1][k], cols * 4), "the %s's gradient differs", what[k]);
    printf("  %d column sums walked in quads\n", quads[0]);
    for (int p = 0; p < 2; p++)
        for (int k = 0; k < 6; k++) free(got[p][k]);
    free(x), free(w), free(b), free(u), free(old);
}

static void test_linear(vkd_ctx *ctx) {
    enum { B0 = 2, B1 = 5, IN = 9, OUT = 7 };
    cas c = begin(ctx, "linear");
    double x[B0 * B1 * IN], w[OUT * IN], b[OUT], y[B0 * B1 * OUT], dx[B0 * B1 * IN], dw[OUT * IN], db[OUT];
    t_fill(x, B0 * B1 * IN, -1, 1);
    t_fill(w, OUT * IN, -1, 1);
    t_fill(b, OUT, -1, 1);
    vkd_tensor *X = input(&c, "x", 3, (int64_t[]){B0, B1, IN}, x);
    vkd_tensor *W = t_tensor(ctx, "w", 2, (int64_t[]){OUT, IN}, w, VKD_PARAM);
    vkd_tensor *Bb = t_tensor(ctx, "b", 1, (int64_t[]){OUT}, b, VKD_PARAM);
    vkd_tensor *Y = vkd_linear(c.g, X, W, Bb);
    finish(&c, Y);
    // y = x w^T + b: the reference matmul with B stored transposed.
    ref_matmul_fwd(y, x, w, b, 1, B0 * B1, OUT, IN, 0, 1, 0, 0);
    ref_matmul_bwd(dx, dw, db, c.w, x, w, 1, B0 * B1, OUT, IN, 0, 1, 0, 0);
    printf("linear (2,5,9) x (7,9)^T + b\n");
    compare("y", Y, y, TOL);
    compare_grad(&c, "dx", X, dx);
    // Parameters receive their gradient in their persistent buffers.
    compare("dw (persistent grad)", vkd_tensor_grad(W), dw, TOL);
    compare("db (persistent grad)", vkd_tensor_grad(Bb), db, TOL);
    CHECK(vkd_graph_grad(c.g, W) == NULL, "parameter gradients are not graph outputs");
    end(&c);
    // Another graph's backward adds into the same persistent buffers (gradient accumulation).
    c = begin(ctx, "linear_accumulate");
    Y = vkd_linear(c.g, X, W, Bb);
    finish(&c, Y);
    double dw2[OUT * IN], db2[OUT];
    ref_matmul_bwd(NULL, dw2, db2, c.w, x, w, 1, B0 * B1, OUT, IN, 0, 1, 0, 0);
    for (int i = 0; i < OUT * IN; i++) dw2[i] += dw[i];
    for (int i = 0; i < OUT; i++) db2[i] += db[i];
    compare("dw accumulated over two graphs", vkd_tensor_grad(W), dw2, TOL);
    compare("db accumulated over two graphs", vkd_tensor_grad(Bb), db2, TOL);
    end(&c);
    vkd_tensor_free(W);
    vkd_tensor_free(Bb);
}

// linear_add: y = linear(x, w, b) + r in one GEMM, r = linear(x, w2) so that x feeds
// two GEMMs and the second backward finds x's gradient pending (added in the dx GEMM's
// epilogue). Against the reference, and bit for bit against the unfused ops: an add
// after the GEMM, and matmul's backward (its dx, then an add).
static void test_linear_add(vkd_ctx *ctx) {
    enum { ROWS = 19, IN = 9, OUT = 70 };  // 70 columns: two tiles, the second ragged
    static double x[ROWS * IN], w[OUT * IN], w2[OUT * IN], b[OUT], y[ROWS * OUT], r[ROWS * OUT], dx[ROWS * IN],
        dx2[ROWS * IN];
    t_fill(x, ROWS * IN, -1, 1);
    t_fill(w, OUT * IN, -1, 1);
    t_fill(w2, OUT * IN, -1, 1);
    t_fill(b, OUT, -1, 1);
    vkd_tensor *W = t_tensor(ctx, "w", 2, (int64_t[]){OUT, IN}, w, 0);
    vkd_tensor *W2 = t_tensor(ctx, "w2", 2, (int64_t[]){OUT, IN}, w2, 0);
    vkd_tensor *Bb = t_tensor(ctx, "b", 1, (int64_t[]){OUT}, b, 0);
    double *got[2][2] = {{0}};  // [fused][y, dx]
    uint64_t rng = t_rng;
    for (int fused = 0; fused < 2; fused++) {
        cas c = begin(ctx, fused ? "linear_add" : "linear_add unfused");
        t_rng = rng;  // the same upstream weights for both graphs
        vkd_tensor *X = input(&c, "x", 2, (int64_t[]){ROWS, IN}, x);
        vkd_tensor *Y = fused ? vkd_linear_add(c.g, X, W, Bb, vkd_linear(c.g, X, W2, NULL))
                              : vkd_add(c.g, vkd_matmul(c.g, X, W2, 0, 1), vkd_linear(c.g, X, W, Bb));
        finish(&c, Y);
        if (fused) {
            // y = x w^T + b + x w2^T; dx = dy w + dy w2
            ref_matmul_fwd(y, x, w, b, 1, ROWS, OUT, IN, 0, 1, 0, 0);
            ref_matmul_fwd(r, x, w2, NULL, 1, ROWS, OUT, IN, 0, 1, 0, 0);
            for (int i = 0; i < ROWS * OUT; i++) y[i] += r[i];
            ref_matmul_bwd(dx, NULL, NULL, c.w, x, w, 1, ROWS, OUT, IN, 0, 1, 0, 0);
            ref_matmul_bwd(dx2, NULL, NULL, c.w, x, w2, 1, ROWS, OUT, IN, 0, 1, 0, 0);
            for (int i = 0; i < ROWS * IN; i++) dx[i] += dx2[i];
            printf("linear_add (19,9) x (70,9)^T + b + (19,9) x (70,9)^T\n");
            compare("y", Y, y, TOL);
            compare_grad(&c, "dx (one add in the GEMM, one pending)", X, dx);
        }
        got[fused][0] = t_download(Y);
        got[fused][1] = t_download(vkd_graph_grad(c.g, X));
        end(&c);
    }
    CHECK(!memcmp(got[0][0], got[1][0], ROWS * OUT * sizeof(double)), "linear_add: y differs from add(r, linear)");
    CHECK(!memcmp(got[0][1], got[1][1], ROWS * IN * sizeof(double)), "linear_add: dx differs from the unfused ops");
    printf("  y and dx bit-identical to the unfused ops\n");
    for (int i = 0; i < 4; i++) free(got[i / 2][i % 2]);
    vkd_tensor_free(W), vkd_tensor_free(W2), vkd_tensor_free(Bb);
}

// ---------------------------------------------------------------- element-wise
// Element-wise dispatches launched as exactly one invocation a quad (eltwise.comp's and
// unary.comp's WHOLE, so without a bounds test).
static int whole_launches(const vkd_graph *g) {
    int n = 0;
    for (int i = 0; i < g->ndisp; i++) {
        const vkd_pipeline *pp = g->disp[i].pipe;
        if (!pp) continue;
        n += !strncmp(pp->shader, "eltwise", 7) && pp->nspec > 5 && pp->spec[5];
        n += !strncmp(pp->shader, "unary", 5) && pp->nspec > 4 && pp->spec[4];
    }
    return n;
}

static void test_binary(vkd_ctx *ctx, const char *label, int op, int na_dims, const int64_t *as, int nb_dims,
                        const int64_t *bs, long inner, long bc) {
    static const char *names[] = {"add", "sub", "mul", "add_scaled"};  // add_scaled: 0.7 (a + b)
    char name[96];
    snprintf(name, sizeof name, "%s %s", names[op], label);
    cas c = begin(ctx, name);
    long n = 1, m = 1;
    for (int i = 0; i < na_dims; i++) n *= (long)as[i];
    for (int i = 0; i < nb_dims; i++) m *= (long)bs[i];
    double *a = malloc(n * 8), *b = malloc(m * 8), *y = malloc(n * 8), *da = malloc(n * 8), *db = malloc(m * 8);
    t_fill(a, n, -1, 1);
    t_fill(b, m, -1, 1);
    vkd_tensor *A = input(&c, "a", na_dims, as, a), *B = input(&c, "b", nb_dims, bs, b);
    vkd_tensor *Y = op == 0   ? vkd_add(c.g, A, B)
                    : op == 1 ? vkd_sub(c.g, A, B)
                    : op == 2 ? vkd_mul(c.g, A, B)
                              : vkd_add_scaled(c.g, A, B, 0.7f);
    finish(&c, Y);
    if (op == 3) {  // 0.7 (a + b): the add's reference, scaled forward and backward
        ref_binary_fwd(y, a, b, n, inner, bc, REF_ADD);
        for (long i = 0; i < n; i++) c.w[i] *= 0.7;
        ref_binary_bwd(da, db, c.w, a, b, n, inner, bc, REF_ADD);
        for (long i = 0; i < n; i++) c.w[i] /= 0.7, y[i] *= 0.7;
    } else if (op == 1) {  // a - b = a + (-b)
        for (long i = 0; i < m; i++) b[i] = -b[i];
        ref_binary_fwd(y, a, b, n, inner, bc, REF_ADD);
        ref_binary_bwd(da, db, c.w, a, b, n, inner, bc, REF_ADD);
        for (long i = 0; i < m; i++) db[i] = -db[i];
    } else {
        ref_binary_fwd(y, a, b, n, inner, bc, op == 0 ? REF_ADD : REF_MUL);
        ref_binary_bwd(da, db, c.w, a, b, n, inner, bc, op == 0 ? REF_ADD : REF_MUL);
    }
    int whole = whole_launches(c.g);
    printf("%s (%d launches of one invocation a quad)\n", name, whole);
    // n in whole workgroups of quads: the forward (and add's backward) take the launch without a bounds test
    CHECK(!(ctx->texel && n % 1024 == 0 && na_dims == nb_dims) || whole > 0, "%s: no whole launch", name);
    compare("y", Y, y, TOL);
    compare_grad(&c, "da", A, da);
    compare_grad(&c, "db", B, db);
    free(a), free(b), free(y), free(da), free(db);
    end(&c);
}

// 10 x 100: whole vec4s (the vec4 walk on texel devices); 7 x 143: the scalar walk; 8 x 128: whole
// workgroups of quads (the launch without a bounds test).
static void test_unary_n(vkd_ctx *ctx, const char *name, int op, int rows, int cols) {
    int N = rows * cols;  // <= 1024
    cas c = begin(ctx, name);
    double x[1024], y[1024], dx[1024];
    int positive = op == REF_LOG || op == REF_SQRT;
    t_fill(x, N, positive ? 0.05 : -6, 6);
    for (int i = 0; i < N; i++)
        if (fabs(x[i]) < 1e-3) x[i] = 0.5;  // ReLU has no derivative at 0
    vkd_tensor *X = input(&c, "x", 2, (int64_t[]){rows, cols}, x);
    vkd_tensor *Y = op == REF_SILU   ? vkd_silu(c.g, X)
                    : op == REF_GELU ? vkd_gelu(c.g, X)
                    : op == REF_EXP  ? vkd_exp(c.g, X)
                    : op == REF_LOG  ? vkd_log(c.g, X)
                    : op == REF_SQRT ? vkd_sqrt(c.g, X)
                    : op == REF_SOFTPLUS ? vkd_softplus(c.g, X)
                                     : vkd_relu(c.g, X);
    finish(&c, Y);
    ref_unary_fwd(y, x, N, op);
    ref_unary_bwd(dx, c.w, x, N, op);
    int whole = whole_launches(c.g);
    printf("%s (%d,%d) on [%g, 6], %d launches of one invocation a quad\n", name, rows, cols, positive ? 0.05 : -6.0,
           whole);
    CHECK(!(ctx->texel && N % 1024 == 0) || whole >= 2, "%s: the forward and backward were not whole launches", name);
    compare("y", Y, y, TOL);
    compare_grad(&c, "dx", X, dx);
    end(&c);
}

static void test_unary(vkd_ctx *ctx, const char *name, int op) { test_unary_n(ctx, name, op, 10, 100); }

static void test_scale(vkd_ctx *ctx) {
    enum { N = 77 };
    cas c = begin(ctx, "scale");
    double x[N], y[N], dx[N];
    t_fill(x, N, -3, 3);
    vkd_tensor *X = input(&c, "x", 1, (int64_t[]){N}, x);
    vkd_tensor *Y = vkd_affine(c.g, X, -1.75f, 0.5f);
    finish(&c, Y);
    ref_scale_fwd(y, x, N, -1.75);
    for (int i = 0; i < N; i++) y[i] += 0.5;
    ref_scale_bwd(dx, c.w, N, -1.75);
    printf("affine (77): -1.75 x + 0.5\n");
    compare("y", Y, y, TOL);
    compare_grad(&c, "dx", X, dx);
    end(&c);
}

// ---------------------------------------------------------------- reductions
static void test_reduce(vkd_ctx *ctx, int rows, int cols, int last_axis, int mean) {
    char name[96];
    snprintf(name, sizeof name, "%s (%d,%d) %s", mean ? "mean" : "sum", rows, cols, last_axis ? "last axis" : "all");
    cas c = begin(ctx, name);
    long n = (long)rows * cols;
    double *x = malloc(n * 8), *dx = malloc(n * 8), y[64];
    t_fill(x, n, -1, 1);
    vkd_tensor *X = input(&c, "x", 2, (int64_t[]){rows, cols}, x);
    vkd_tensor *Y = mean ? vkd_mean(c.g, X, last_axis) : vkd_sum(c.g, X, last_axis);
    finish(&c, Y);
    int r = last_axis ? rows : 1, k = last_axis ? cols : (int)n;
    ref_reduce_fwd(y, x, r, k, mean);
    ref_reduce_bwd(dx, c.w, r, k, mean);
    printf("%s\n", name);
    // A sum of n terms in fp32 carries about sqrt(n) * 6e-8 relative error.
    compare("y", Y, y, n > 10000 ? 1e-4 : TOL);
    compare_grad(&c, "dx", X, dx);
    free(x), free(dx);
    end(&c);
}

static void test_softmax(vkd_ctx *ctx, int rows, int cols) {
    char name[64];
    snprintf(name, sizeof name, "softmax (%d,%d)", rows, cols);
    cas c = begin(ctx, name);
    long n = (long)rows * cols;
    double *x = malloc(n * 8), *y = malloc(n * 8), *dx = malloc(n * 8);
    t_fill(x, n, -8, 8);
    x[0] = 80;  // large logits must not overflow
    vkd_tensor *X = input(&c, "x", 2, (int64_t[]){rows, cols}, x);
    vkd_tensor *Y = vkd_softmax(c.g, X);
    finish(&c, Y);
    ref_softmax_fwd(y, x, rows, cols);
    ref_softmax_bwd(dx, c.w, y, rows, cols);
    printf("%s\n", name);
    compare("y", Y, y, TOL);
    compare_grad(&c, "dx", X, dx);
    free(x), free(y), free(dx);
    end(&c);
}

// The rows held in registers (softmax's RQ, CPU devices) against fetched for each use
// (VKD_SM_REGS=0): y and dx bit for bit (the same sums in the same order), and which walk ran.
static void test_softmax_regs(vkd_ctx *ctx, int rows, int cols) {
    printf("softmax (%d,%d): rows held in registers against fetched again\n", rows, cols);
    long n = (long)rows * cols;
    double *x = malloc(n * 8), *u = malloc(n * 8);
    t_fill(x, n, -8, 8), t_fill(u, n, -1, 1);
    float *got[2][2];
    int regs[2] = {0, 0};
    for (int pass = 0; pass < 2; pass++) {
        setenv("VKD_SM_REGS", pass ? "1" : "0", 1);
        vkd_tensor *X = t_tensor(ctx, "x", 2, (int64_t[]){rows, cols}, x, 0), *U = t_tensor(ctx, "u", 2, (int64_t[]){rows, cols}, u, 0);
        vkd_tensor_set_requires_grad(X, 1);
        vkd_graph *g = vkd_graph_new(ctx, "softmax regs");
        vkd_tensor *y = vkd_softmax(g, X);
        vkd_graph_keep(g, y);
        CHECK(vkd_graph_backward(g, vkd_sum(g, vkd_mul(g, y, U), 0)) == 0 && vkd_graph_run(g) == 0, "run: %s",
              vkd_graph_error(g));
        vkd_tensor *t[2] = {y, vkd_graph_grad(g, X)};
        for (int k = 0; k < 2; k++) got[pass][k] = malloc(n * 4), vkd_tensor_download(t[k], got[pass][k]);
        for (int i = 0; i < g->ndisp; i++) {
            const vkd_pipeline *pp = g->disp[i].pipe;
            if (pp && !strncmp(pp->shader, "softmax", 7) && pp->nspec >= 6 && pp->spec[5] != 0) regs[pass]++;
        }
        vkd_graph_free(g);
        vkd_tensor_free(X), vkd_tensor_free(U);
    }
    unsetenv("VKD_SM_REGS");
    CHECK(regs[0] == 0, "VKD_SM_REGS=0 still held rows in registers (%d passes)", regs[0]);
    const char *what[2] = {"y", "dx"};
    for (int k = 0; k < 2; k++) {
        long bad = 0;
        for (long i = 0; i < n; i++) bad += memcmp(&got[0][k][i], &got[1][k][i], 4) != 0;
        CHECK(bad == 0, "%s: %ld of %ld bits differ between the walks", what[k], bad, n);
        free(got[0][k]), free(got[1][k]);
    }
    // forward and backward, where rows are whole quads a lane (at most 8) on texel views
    int lanes = (int)ctx->f.subgroup_size;
    int want = ctx->texel && vkd_norm_subgroup_reduce(ctx) && cols % (4 * lanes) == 0 && cols / (4 * lanes) <= 8 ? 2 : 0;
    CHECK(regs[1] == want, "%d passes held their rows in registers, want %d", regs[1], want);
    printf("  y and dx bit for bit, %d passes in registers\n", regs[1]);
    free(x), free(u);
}

// residual: y = layernorm(x) + x, so the norm's backward finds x's gradient pending
// and writes old + dx itself; the graph then runs twice, so the parameters' gradients
// (added straight into their persistent buffers) must hold 2 dw, 2 db.
static void test_layernorm(vkd_ctx *ctx, int rows, int cols, int affine, int residual) {
    char name[64];
    snprintf(name, sizeof name, "layernorm (%d,%d)%s%s", rows, cols, affine ? " affine" : "", residual ? " + x" : "");
    cas c = begin(ctx, name);
    long n = (long)rows * cols;
    double *x = malloc(n * 8), *y = malloc(n * 8), *dx = malloc(n * 8), *w = malloc(cols * 8), *b = malloc(cols * 8),
           *dw = malloc(cols * 8), *db = malloc(cols * 8);
    t_fill(x, n, -2, 3);
    t_fill(w, cols, 0.5, 1.5);
    t_fill(b, cols, -1, 1);
    vkd_tensor *X = input(&c, "x", 2, (int64_t[]){rows, cols}, x), *W = NULL, *B = NULL;
    if (affine) {
        W = t_tensor(ctx, "w", 1, (int64_t[]){cols}, w, VKD_PARAM);
        B = t_tensor(ctx, "b", 1, (int64_t[]){cols}, b, VKD_PARAM);
    }
    vkd_tensor *Y = vkd_layernorm(c.g, X, W, B, 1e-5f);
    if (residual) Y = vkd_add(c.g, Y, X);
    finish(&c, Y);
    ref_layernorm_fwd(y, NULL, NULL, x, affine ? w : NULL, affine ? b : NULL, rows, cols, 1e-5);
    ref_layernorm_bwd(dx, dw, db, c.w, x, affine ? w : NULL, rows, cols, 1e-5);
    for (long i = 0; residual && i < n; i++) y[i] += x[i], dx[i] += c.w[i];
    printf("%s\n", name);
    compare("y", Y, y, TOL);
    compare_grad(&c, residual ? "dx (old + dx in the norm's pass)" : "dx", X, dx);
    int rowstats = 0;  // passes keeping their rows' mean and rstd in lanes (layernorm.comp's ROWSTATS)
    for (int i = 0; i < c.g->ndisp; i++) {
        const vkd_pipeline *pp = c.g->disp[i].pipe;
        rowstats += pp && !strncmp(pp->shader, "layernorm", 9) && pp->nspec > 7 && pp->spec[7];
    }
    int rpw = 1;  // rows a workgroup on CPU devices, as src/ops/layernorm.c picks them
    while (rpw < 32 && rows / (2 * rpw) >= 16) rpw *= 2;
    int want = ctx->f.type == VK_PHYSICAL_DEVICE_TYPE_CPU && vkd_norm_subgroup_reduce(ctx) && rpw > 1 &&
               rpw <= (int)ctx->f.subgroup_size && !vkd_env_off("VKD_ROWSTATS");
    CHECK(rowstats == (want ? 2 : 0), "%s: %d passes with the rows' statistics in lanes", name, rowstats);
    if (affine && residual) {
        CHECK(vkd_graph_run(c.g) == 0, "second run: %s", vkd_graph_error(c.g));
        for (int i = 0; i < cols; i++) dw[i] *= 2, db[i] *= 2;
    }
    if (affine) {
        compare(residual ? "dw (persistent grad, two runs)" : "dw (persistent grad)", vkd_tensor_grad(W), dw, TOL);
        compare(residual ? "db (persistent grad, two runs)" : "db (persistent grad)", vkd_tensor_grad(B), db, TOL);
        vkd_tensor_free(W);
        vkd_tensor_free(B);
    }
    free(x), free(y), free(dx), free(w), free(b), free(dw), free(db);
    end(&c);
}

static void test_mse(vkd_ctx *ctx, int n) {
    char name[64];
    snprintf(name, sizeof name, "mse (%d)", n);
    cas c = begin(ctx, name);
    double *a = malloc(n * 8), *b = malloc(n * 8), *da = malloc(n * 8), *db = malloc(n * 8);
    t_fill(a, n, -1, 1);
    t_fill(b, n, -1, 1);
    vkd_tensor *A = input(&c, "a", 1, (int64_t[]){n}, a), *B = input(&c, "b", 1, (int64_t[]){n}, b);
    vkd_tensor *Y = vkd_mse(c.g, A, B);
    finish(&c, Y);
    double y = ref_mse_fwd(a, b, n);
    ref_mse_bwd(da, db, c.w[0], a, b, n);
    printf("%s\n", name);
    compare("loss", Y, &y, n > 10000 ? 1e-4 : TOL);
    compare_grad(&c, "da", A, da);
    compare_grad(&c, "db", B, db);
    free(a), free(b), free(da), free(db);
    end(&c);
}

// ---------------------------------------------------------------- optimizers
// The optimizers' squared gradient norm: the bits of sum(x * x), in one pass.
static void test_sum_squares(vkd_ctx *ctx, int n) {
    double *x = malloc(n * sizeof *x);
    t_fill(x, n, -2, 2);
    vkd_tensor *X = t_tensor(ctx, "x", 1, (int64_t[]){n}, x, 0);
    vkd_graph *g = vkd_graph_new(ctx, "sum_squares");
    vkd_tensor *a = vkd_sum_squares(g, X), *b = vkd_sum(g, vkd_mul(g, X, X), 0);
    vkd_graph_keep(g, a), vkd_graph_keep(g, b);
    CHECK(vkd_graph_compile(g) == 0 && vkd_graph_run(g) == 0, "%s", vkd_graph_error(g));
    double *da = t_download(a), *db = t_download(b), ref = 0;
    for (int i = 0; i < n; i++) ref += (double)(float)x[i] * (float)x[i];
    CHECK(da[0] == db[0], "sum_squares %.9g vs sum(mul) %.9g (n = %d)", da[0], db[0], n);
    CHECK(fabs(da[0] - ref) <= 1e-5 * ref, "sum_squares %.9g vs double %.9g (n = %d)", da[0], ref, n);
    int quads = 0;  // row sums walked in quads (reduce.comp's VEC4 in MODE_ROWS): CPU texel devices
    for (int i = 0; i < g->ndisp; i++) {
        const vkd_pipeline *pp = g->disp[i].pipe;
        quads += pp && !strncmp(pp->shader, "reduce", 6) && pp->nspec > 7 && pp->spec[1] == 0 && pp->spec[7];
    }
    CHECK(!quads == !(ctx->f.type == VK_PHYSICAL_DEVICE_TYPE_CPU && ctx->texel && !vkd_env_off("VKD_ROW_QUADS")),
          "sum_squares of %d: %d row sums walked in quads", n, quads);
    printf("sum_squares of %d: %.9g, the bits of sum(mul(x, x)), %d row sums in quads; double reference %.9g\n", n,
           da[0], quads, ref);
    free(da), free(db), free(x);
    vkd_graph_free(g);
    vkd_tensor_free(X);
}

// clip > 0: gradients scaled to a global norm of at most clip over two tensors: p
// (N) and q, long enough that its sum of squares goes through partial sums.
// N: more than one workgroup when a CPU device updates 8 elements (or vec4s) per
// invocation; 2600 is whole vec4s (the vec4 walk on texel devices), 2602 is not.
static void test_adam(vkd_ctx *ctx, int decoupled, float clip, int N) {
    enum { NMAX = 2602, NQ = 33000, STEPS = 3 };
    static double p[NMAX + NQ], g[NMAX + NQ], m[NMAX + NQ], v[NMAX + NQ];
    static float f[NMAX + NQ];
    int NT = N + NQ;
    memset(m, 0, sizeof m), memset(v, 0, sizeof v);
    t_fill(p, NT, -1, 1);
    vkd_tensor *ps[2] = {t_tensor(ctx, "p", 1, (int64_t[]){N}, p, VKD_PARAM),
                         t_tensor(ctx, "q", 1, (int64_t[]){NQ}, p + N, VKD_PARAM)};
    vkd_adam_cfg cfg = {.beta1 = 0.9f, .beta2 = 0.99f, .eps = 1e-8f, .weight_decay = 0.1f, .decoupled = decoupled,
                        .grad_clip = clip};
    vkd_adam *opt = vkd_adam_new(ctx, ps, 2, &cfg);
    vkd_graph *gr = vkd_graph_new(ctx, "adam");
    vkd_adam_record(gr, opt);
    CHECK(vkd_graph_compile(gr) == 0, "compile: %s", vkd_graph_error(gr));
    for (int t = 1; t <= STEPS; t++) {
        t_fill(g, NT, -1, 1);
        for (int i = 0; i < NT; i++) f[i] = (float)g[i], g[i] = f[i];
        vkd_tensor_upload(vkd_tensor_grad(ps[0]), f);
        vkd_tensor_upload(vkd_tensor_grad(ps[1]), f + N);
        vkd_adam_set_step(opt, 1e-2f, t);
        CHECK(vkd_graph_run(gr) == 0, "run: %s", vkd_graph_error(gr));
        if (clip > 0) {
            double n2 = 0;
            for (int i = 0; i < NT; i++) n2 += g[i] * g[i];
            double sc = fmin(1.0, clip / (sqrt(n2) + 1e-6));
            CHECK(fabs(vkd_adam_grad_norm(opt) - sqrt(n2)) < 1e-4 * sqrt(n2), "grad norm %g vs %g",
                  vkd_adam_grad_norm(opt), sqrt(n2));
            for (int i = 0; i < NT; i++) g[i] *= sc;
        }
        ref_adam_step(p, m, v, g, NT, (double)1e-2f, (double)0.9f, (double)0.99f, (double)1e-8f, (double)0.1f,
                      decoupled, t);
    }
    printf("%s%s, %d + %d parameters, %d steps\n", decoupled ? "adamw" : "adam", clip > 0 ? " with gradient clipping" : "",
           N, (int)NQ, STEPS);
    compare("parameters p", ps[0], p, 1e-5);
    compare("parameters q", ps[1], p + N, 1e-5);
    static double zero[NMAX + NQ];
    compare("gradient zeroed after the step", vkd_tensor_grad(ps[0]), zero, 0.0 + 1e-30);
    compare("gradient zeroed after the step", vkd_tensor_grad(ps[1]), zero, 0.0 + 1e-30);
    vkd_graph_free(gr);
    vkd_adam_free(opt);
    vkd_tensor_free(ps[0]), vkd_tensor_free(ps[1]);
}

// A NaN anywhere in the gradients skips the whole update and clears the gradient.
static void test_nan_guard(vkd_ctx *ctx) {
    enum { N = 50 };
    double p[N], q[N];
    t_fill(p, N, -1, 1);
    t_fill(q, N, -1, 1);
    vkd_tensor *P = t_tensor(ctx, "p", 1, (int64_t[]){N}, p, VKD_PARAM), *Q = t_tensor(ctx, "q", 1, (int64_t[]){N}, q, VKD_PARAM);
    vkd_tensor *ps[2] = {P, Q};
    vkd_adam_cfg cfg = {.beta1 = 0.9f, .beta2 = 0.99f, .eps = 1e-8f, .decoupled = 1, .skip_nonfinite = 1};
    vkd_adam *opt = vkd_adam_new(ctx, ps, 2, &cfg);
    vkd_graph *gr = vkd_graph_new(ctx, "nan_guard");
    vkd_adam_record(gr, opt);
    float f[N];
    for (int i = 0; i < N; i++) f[i] = 0.5f;
    vkd_tensor_upload(vkd_tensor_grad(P), f);
    f[7] = NAN;
    vkd_tensor_upload(vkd_tensor_grad(Q), f);
    vkd_adam_set_step(opt, 1e-2f, 1);
    CHECK(vkd_graph_run(gr) == 0, "run: %s", vkd_graph_error(gr));
    CHECK(isnan(vkd_adam_grad_norm(opt)), "the grad norm should report NaN");
    printf("nan guard\n");
    compare("p unchanged", P, p, 0.0 + 1e-30);
    compare("q unchanged", Q, q, 0.0 + 1e-30);
    double zero[N] = {0};
    compare("gradient cleared", vkd_tensor_grad(Q), zero, 1e-30);
    vkd_graph_free(gr);
    vkd_adam_free(opt);
    vkd_tensor_free(P);
    vkd_tensor_free(Q);
}

// Two optimizers over 4 tensors each, fed the same gradients for `steps` steps: their global
// norms (clipping) the same bits. `what` names the second in the message.
static void run_adam_pair(vkd_adam *opt[2], vkd_graph *gr[2], vkd_tensor *ps[2][4], float (*grads)[33000], int steps,
                          const char *what) {
    for (int t = 1; t <= steps; t++)
        for (int m = 0; m < 2; m++) {
            for (int i = 0; i < 4; i++) vkd_tensor_upload(vkd_tensor_grad(ps[m][i]), grads[i]);
            vkd_adam_set_step(opt[m], 1e-2f, t);
            CHECK(vkd_graph_run(gr[m]) == 0, "run: %s", vkd_graph_error(gr[m]));
        }
    float n0 = vkd_adam_grad_norm(opt[0]), n1 = vkd_adam_grad_norm(opt[1]);
    CHECK(memcmp(&n0, &n1, sizeof n0) == 0, "grad norm %.9g (%s) vs %.9g", n1, what, n0);
}

// One multi-tensor dispatch per pass (VKD_MULTI, the default) against one dispatch per
// tensor (VKD_MULTI=0): Adam with clipping, the gradients' norm and EMA over tensors of
// ragged sizes (one longer than a norm's single row, one of a single element) give the
// same bits, in fewer dispatches. ragged = 0: every size whole quads. On texel devices the norms'
// sums walk quads (reduce.comp's VEC4 rows) and a ragged tensor's last n % 4 elements one by one,
// in the multi-tensor pass as in its own.
static void test_multi_bits(vkd_ctx *ctx, int ragged) {
    enum { NT = 4, STEPS = 2 };
    const int64_t sizes[NT] = {ragged ? 2602 : 2600, 33000, ragged ? 1 : 4, 300};
    static double init[NT][33000];
    static float grads[NT][33000];
    for (int i = 0; i < NT; i++) {
        t_fill(init[i], sizes[i], -1, 1);
        for (int64_t j = 0; j < sizes[i]; j++) grads[i][j] = (float)(t_uniform() * 2 - 1);
    }
    vkd_tensor *ps[2][NT], *es[2][NT];
    vkd_adam *opt[2];
    vkd_graph *gr[2];
    vkd_adam_cfg cfg = {.beta1 = 0.9f, .beta2 = 0.99f, .eps = 1e-8f, .weight_decay = 0.1f, .decoupled = 1,
                        .grad_clip = 2.0f};
    for (int m = 0; m < 2; m++) {
        setenv("VKD_MULTI", m ? "1" : "0", 1);
        for (int i = 0; i < NT; i++) {
            ps[m][i] = t_tensor(ctx, "p", 1, &sizes[i], init[i], VKD_PARAM);
            es[m][i] = t_tensor(ctx, "e", 1, &sizes[i], init[i], 0);
        }
        opt[m] = vkd_adam_new(ctx, ps[m], NT, &cfg);
        gr[m] = vkd_graph_new(ctx, m ? "adam_multi" : "adam_each");
        vkd_adam_record(gr[m], opt[m]);
        vkd_ema_record(gr[m], es[m], ps[m], NT, 0.9f);
        CHECK(vkd_graph_compile(gr[m]) == 0, "compile: %s", vkd_graph_error(gr[m]));
    }
    unsetenv("VKD_MULTI");
    CHECK(gr[1]->ndisp < gr[0]->ndisp, "multi-tensor passes: %d dispatches, one per tensor: %d", gr[1]->ndisp,
          gr[0]->ndisp);
    run_adam_pair(opt, gr, ps, grads, STEPS, "multi");
    int same = 1;
    for (int i = 0; i < NT; i++) {
        vkd_tensor *a[4], *b[4];
        a[0] = ps[0][i], b[0] = ps[1][i], a[1] = es[0][i], b[1] = es[1][i];
        vkd_adam_state(opt[0], i, &a[2], &a[3]);
        vkd_adam_state(opt[1], i, &b[2], &b[3]);
        for (int k = 0; k < 4; k++) {
            float *x = malloc(sizeof(float) * (size_t)sizes[i]), *y = malloc(sizeof(float) * (size_t)sizes[i]);
            vkd_tensor_download(a[k], x), vkd_tensor_download(b[k], y);
            same &= memcmp(x, y, sizeof(float) * (size_t)sizes[i]) == 0;
            free(x), free(y);
        }
    }
    CHECK(same, "multi-tensor Adam / EMA differ from the per-tensor passes");
    printf("multi-tensor adam + ema over %d tensors (%s): %d dispatches against %d, bit for bit\n", NT,
           ragged ? "ragged" : "whole quads", gr[1]->ndisp, gr[0]->ndisp);
    for (int m = 0; m < 2; m++) {
        vkd_graph_free(gr[m]);
        vkd_adam_free(opt[m]);
        for (int i = 0; i < NT; i++) vkd_tensor_free(ps[m][i]), vkd_tensor_free(es[m][i]);
    }
}

// Adam over a share of the tensors (vkd_adam_record_part, an optimizer sharded over ranks)
// against Adam over all of them: the share's weights and moments the same bits, the other
// tensors' weights and moments untouched and their gradients zeroed (a fill node), the
// clipping norm over all. Ragged sizes as in test_multi_bits; clipping on.
static void test_adam_part(vkd_ctx *ctx) {
    enum { NT = 4, STEPS = 2 };
    const int64_t sizes[NT] = {2602, 33000, 1, 300};
    const uint8_t skip[NT] = {0, 1, 0, 1};
    static double init[NT][33000];
    static float grads[NT][33000];
    for (int i = 0; i < NT; i++) {
        t_fill(init[i], sizes[i], -1, 1);
        for (int64_t j = 0; j < sizes[i]; j++) grads[i][j] = (float)(t_uniform() * 2 - 1);
    }
    vkd_tensor *ps[2][NT];
    vkd_adam *opt[2];
    vkd_graph *gr[2];
    vkd_adam_cfg cfg = {.beta1 = 0.9f, .beta2 = 0.99f, .eps = 1e-8f, .weight_decay = 0.1f, .decoupled = 1,
                        .grad_clip = 2.0f};
    for (int m = 0; m < 2; m++) {
        for (int i = 0; i < NT; i++) ps[m][i] = t_tensor(ctx, "p", 1, &sizes[i], init[i], VKD_PARAM);
        opt[m] = vkd_adam_new(ctx, ps[m], NT, &cfg);
        gr[m] = vkd_graph_new(ctx, m ? "adam_part" : "adam_all");
        vkd_adam_record_part(gr[m], opt[m], m ? skip : NULL);
        CHECK(vkd_graph_compile(gr[m]) == 0, "compile: %s", vkd_graph_error(gr[m]));
    }
    run_adam_pair(opt, gr, ps, grads, STEPS, "a share");
    int same = 1, kept = 1, zeroed = 1;
    for (int i = 0; i < NT; i++) {
        size_t bytes = sizeof(float) * (size_t)sizes[i];
        float *x = malloc(bytes), *y = malloc(bytes);
        vkd_tensor *a[4] = {ps[0][i], NULL, NULL, vkd_tensor_grad(ps[0][i])};
        vkd_tensor *b[4] = {ps[1][i], NULL, NULL, vkd_tensor_grad(ps[1][i])};
        vkd_adam_state(opt[0], i, &a[1], &a[2]);
        vkd_adam_state(opt[1], i, &b[1], &b[2]);
        for (int k = 0; k < 4; k++) {
            vkd_tensor_download(b[k], y);
            if (!skip[i] || k == 3) {  // the share: as Adam over all; every gradient zeroed
                vkd_tensor_download(a[k], x);
                same &= memcmp(x, y, bytes) == 0;
            }
            for (int64_t j = 0; skip[i] && j < sizes[i]; j++) {
                double want = k == 0 ? (double)(float)init[i][j] : 0.0;  // weights as they were, moments 0
                kept &= k == 3 || y[j] == (float)want;
                zeroed &= k != 3 || y[j] == 0.0f;
            }
        }
        free(x), free(y);
    }
    CHECK(same, "Adam over a share differs from Adam over all on the share");
    CHECK(kept, "Adam over a share changed a weight or moment outside it");
    CHECK(zeroed, "Adam over a share left a gradient outside it unzeroed");
    printf("adam over a share of %d tensors: the share bit for bit, the rest untouched and its gradients zeroed\n", NT);
    for (int m = 0; m < 2; m++) {
        vkd_graph_free(gr[m]);
        vkd_adam_free(opt[m]);
        for (int i = 0; i < NT; i++) vkd_tensor_free(ps[m][i]);
    }
}

static void test_ema(vkd_ctx *ctx) {
    enum { N = 2600 };  // as in test_adam
    static double p[N], e[N];
    t_fill(p, N, -1, 1);
    t_fill(e, N, -1, 1);
    vkd_tensor *P = t_tensor(ctx, "p", 1, (int64_t[]){N}, p, 0), *E = t_tensor(ctx, "e", 1, (int64_t[]){N}, e, 0);
    vkd_graph *g = vkd_graph_new(ctx, "ema");
    vkd_ema_record(g, &E, &P, 1, 0.95f);
    for (int s = 0; s < 2; s++) {
        CHECK(vkd_graph_run(g) == 0, "run: %s", vkd_graph_error(g));
        ref_ema_update(e, p, N, (double)0.95f);
    }
    printf("ema, 2 steps\n");
    compare("ema", E, e, 1e-6);
    // beta from a host tensor, changed between replays (EDM's ramp-up)
    vkd_tensor *bt = vkd_tensor_new(ctx, "beta", 1, (int64_t[]){1}, VKD_HOST);
    vkd_graph *g2 = vkd_graph_new(ctx, "ema_t");
    vkd_ema_record_t(g2, &E, &P, 1, 0.0f, bt);
    float betas[2] = {0.5f, 0.9f};
    for (int s2 = 0; s2 < 2; s2++) {
        vkd_tensor_map(bt)[0] = betas[s2];
        CHECK(vkd_graph_run(g2) == 0, "run: %s", vkd_graph_error(g2));
        ref_ema_update(e, p, N, (double)betas[s2]);
    }
    compare("ema with a per-step beta", E, e, 1e-6);
    vkd_graph_free(g2);
    vkd_tensor_free(bt);
    vkd_graph_free(g);
    vkd_tensor_free(P);
    vkd_tensor_free(E);
}

int main(void) {
    vkd_ctx *ctx = t_open();
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            test_matmul(ctx, 1, 0, 5, 7, 9, ta, tb);
            test_matmul(ctx, 3, 0, 6, 4, 11, ta, tb);
            test_matmul(ctx, 2, 1, 3, 10, 8, ta, tb);
        }
    test_matmul(ctx, 1, 0, 67, 45, 33, 0, 0);  // several tiles with ragged edges
    test_matmul(ctx, 1, 0, 1, 1, 1, 0, 0);
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            test_matmul(ctx, 2, 0, 37, 44, 36, ta, tb);  // K, N and the leading dimensions in quads
            test_matmul_quads_bits(ctx, 2, 37, 44, 36, ta, tb);
        }
    // A transposed read as quads of its rows (M and the leading dimension in quads, M ragged to the
    // tiles, K to the chunks of 8)
    for (int tb = 0; tb < 2; tb++) {
        test_matmul(ctx, 2, 0, 44, 40, 37, 1, tb);
        test_matmul_quads_bits(ctx, 2, 44, 40, 37, 1, tb);
    }
    test_matmul_quads_bits(ctx, 1, 128, 128, 128, 0, 1);
    test_col_quads_bits(ctx, 37, 44);
    test_col_quads_bits(ctx, 128, 128);  // the GMM MLP's
    test_col_quads_bits(ctx, 5, 38);     // columns not in quads: the scalar walks
    test_linear(ctx);
    test_linear_add(ctx);
    int64_t nchw[4] = {2, 3, 4, 5};
    test_binary(ctx, "same shape", 0, 4, nchw, 4, nchw, 1, 120);
    test_binary(ctx, "same shape", 2, 4, nchw, 4, nchw, 1, 120);
    test_binary(ctx, "same shape", 3, 4, nchw, 4, nchw, 1, 120);
    // 30 elements: not whole vec4s, so the scalar walk on texel devices (120 takes the vec4 one)
    test_binary(ctx, "same shape, 30 elements", 0, 2, (int64_t[]){6, 5}, 2, (int64_t[]){6, 5}, 1, 30);
    for (int op = 0; op < 4; op++)  // whole workgroups of quads
        test_binary(ctx, "same shape, 2048 elements", op, 2, (int64_t[]){16, 128}, 2, (int64_t[]){16, 128}, 1, 2048);
    test_binary(ctx, "same shape, 30 elements", 2, 2, (int64_t[]){6, 5}, 2, (int64_t[]){6, 5}, 1, 30);
    for (int op = 0; op < 3; op++) {
        test_binary(ctx, "(2,3,4,5) + (3,1,1) per channel", op, 4, nchw, 3, (int64_t[]){3, 1, 1}, 20, 3);
        test_binary(ctx, "(2,3,4,5) + (2,3,1,1) per (n,c)", op, 4, nchw, 4, (int64_t[]){2, 3, 1, 1}, 20, 6);
        test_binary(ctx, "(6,5) + (5) per row", op, 2, (int64_t[]){6, 5}, 1, (int64_t[]){5}, 1, 5);
        // rows of 81 (CPU devices: by rows, two workgroups of 64 per row, the second ragged)
        test_binary(ctx, "(2,3,9,9) + (2,3,1,1) per (n,c)", op, 4, (int64_t[]){2, 3, 9, 9}, 4, (int64_t[]){2, 3, 1, 1}, 81, 6);
        test_binary(ctx, "(6,5) + (1) scalar", op, 2, (int64_t[]){6, 5}, 1, (int64_t[]){1}, 1, 1);
    }
    test_scale(ctx);
    test_unary(ctx, "silu", REF_SILU);
    test_unary_n(ctx, "silu", REF_SILU, 7, 143);
    test_unary_n(ctx, "silu", REF_SILU, 8, 128);
    test_unary_n(ctx, "gelu", REF_GELU, 8, 128);
    test_unary(ctx, "gelu", REF_GELU);
    test_unary(ctx, "relu", REF_RELU);
    test_unary(ctx, "exp", REF_EXP);
    test_unary(ctx, "log", REF_LOG);
    test_unary(ctx, "sqrt", REF_SQRT);
    test_unary(ctx, "softplus", REF_SOFTPLUS);
    test_reduce(ctx, 5, 7, 1, 0);
    test_reduce(ctx, 5, 300, 1, 1);
    test_reduce(ctx, 5, 7, 0, 0);
    test_reduce(ctx, 1, 50000, 0, 1);  // chunked two-pass path
    test_softmax(ctx, 5, 7);
    test_softmax(ctx, 3, 300);
    test_softmax(ctx, 4, 20);  // quads, fewer than the lanes
    test_softmax(ctx, 6, 256);  // rows held in registers (CPU devices: 4 quads a lane at 16 lanes)
    test_softmax_regs(ctx, 6, 256);
    test_softmax_regs(ctx, 5, 64);   // one quad a lane at 16 lanes, two at 8
    test_softmax_regs(ctx, 3, 1024); // 16 quads a lane at 16 lanes: fetched again
    test_layernorm(ctx, 5, 7, 0, 0);
    test_layernorm(ctx, 4, 300, 1, 0);
    test_layernorm(ctx, 6, 40, 1, 1);
    test_layernorm(ctx, 3, 128, 0, 1);  // quads without w and b, old + dx
    test_layernorm(ctx, 70, 64, 1, 1);   // on CPU devices 4 rows a workgroup, the last one 2 (ROWSTATS)
    test_layernorm(ctx, 128, 36, 1, 0);  // 8 rows a workgroup
    test_mse(ctx, 37);
    test_mse(ctx, 40000);
    test_sum_squares(ctx, 1000);
    test_sum_squares(ctx, 1001);   // the row's last element after its quads
    test_sum_squares(ctx, 40000);  // in chunks, then over the partial sums
    test_sum_squares(ctx, 40002);  // the last chunk ragged
    test_adam(ctx, 0, 0.0f, 2600);
    test_adam(ctx, 1, 0.0f, 2600);
    test_adam(ctx, 1, 2.0f, 2600);
    test_adam(ctx, 1, 2.0f, 2602);
    test_nan_guard(ctx);
    test_ema(ctx);
    test_multi_bits(ctx, 1);
    test_multi_bits(ctx, 0);
    test_adam_part(ctx);
    return t_close(ctx);
}
