// The network-block ops on the device against their double-precision
// references (tests/ref/ref_nn.c, whose backward test_ref_nn.c checks against
// finite differences): group norm, 2x upsampling / average pooling, adaLN
// modulation and dropout forward and every gradient; timestep embeddings
// forward; the dropout mask against the host's Philox.
//
// Each differentiable case builds L = sum(w * op(inputs)) with a random
// upstream weight w, runs forward + backward once, and compares y and dL/d(every input).
#include "core/graph.h"
#include "ops/ops.h"
#include "harness.h"
#include "ref_nn.h"

// Tolerance for fp32 device results against the double reference, relative to
// 1 + |ref| (as test_ops.c).
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

// L = sum(w * y), backward, run.
static vkd_tensor *upstream_keep;
static void finish(cas *c, vkd_tensor *y) {
    long n = (long)vkd_tensor_numel(y);
    c->w = malloc(n * sizeof *c->w);
    t_fill(c->w, n, -1, 1);
    int64_t shape[VKD_MAX_DIMS];
    for (int i = 0; i < vkd_tensor_ndim(y); i++) shape[i] = vkd_tensor_dim(y, i);
    upstream_keep = t_tensor(c->ctx, "upstream", vkd_tensor_ndim(y), shape, c->w, 0);
    vkd_graph_keep(c->g, y);
    vkd_tensor *loss = vkd_sum(c->g, vkd_mul(c->g, y, upstream_keep), 0);
    CHECK(vkd_graph_backward(c->g, loss) == 0, "backward: %s", vkd_graph_error(c->g));
    CHECK(vkd_graph_run(c->g) == 0, "run: %s", vkd_graph_error(c->g));
}

static double compare(const char *what, const vkd_tensor *t, const double *ref, double tol) {
    if (!t) {
        CHECK(0, "%s: no tensor", what);
        return 1;
    }
    double *d = t_download(t);
    double e = t_relerr(d, ref, (long)vkd_tensor_numel(t));
    CHECK(e < tol, "%s: max error %.3g (tolerance %.1g)", what, e, tol);
    printf("  %-44s max err %.2e\n", what, e);
    free(d);
    return e;
}

static void compare_grad(cas *c, const char *what, const vkd_tensor *x, const double *ref) {
    compare(what, vkd_graph_grad(c->g, x), ref, TOL);
}

static cas begin(vkd_ctx *ctx, const char *name) { return (cas){ctx, vkd_graph_new(ctx, name), NULL}; }

static void end(cas *c) {
    vkd_graph_free(c->g);
    free(c->w);
    if (upstream_keep) vkd_tensor_free(upstream_keep);
    upstream_keep = NULL;
}

static double *dalloc(long n) { return malloc((n > 0 ? n : 1) * sizeof(double)); }

// ---------------------------------------------------------------- group norm
// affine: 0 none, 1 w and b requiring grad, 2 w and b frozen (only dx);
// act 1: the fused silu(groupnorm(x))
static void test_groupnorm_act(vkd_ctx *ctx, int N, int C, int H, int W, int groups, int affine, int replay, int act) {
    char name[96];
    snprintf(name, sizeof name, "groupnorm%s (%d,%d,%d,%d) groups %d%s", act ? "+silu" : "", N, C, H, W, groups,
             affine == 1 ? " affine" : affine == 2 ? " frozen affine" : "");
    cas c = begin(ctx, name);
    int S = H * W;
    long n = (long)N * C * S;
    double *x = dalloc(n), *y = dalloc(n), *dx = dalloc(n), *w = dalloc(C), *b = dalloc(C), *dw = dalloc(C),
           *db = dalloc(C);
    t_fill(x, n, -2, 3);
    t_fill(w, C, 0.5, 1.5);
    t_fill(b, C, -1, 1);
    vkd_tensor *X = input(&c, "x", 4, (int64_t[]){N, C, H, W}, x), *Wt = NULL, *B = NULL;
    if (affine == 1) {
        Wt = input(&c, "w", 1, (int64_t[]){C}, w);
        B = input(&c, "b", 1, (int64_t[]){C}, b);
    } else if (affine == 2) {
        Wt = t_tensor(ctx, "w", 1, (int64_t[]){C}, w, 0);
        B = t_tensor(ctx, "b", 1, (int64_t[]){C}, b, 0);
    }
    vkd_tensor *Y = act ? vkd_groupnorm_silu(c.g, X, Wt, B, groups, 1e-6f) : vkd_groupnorm(c.g, X, Wt, B, groups, 1e-6f);
    finish(&c, Y);
    if (act) {
        ref_groupnorm_silu_fwd(y, x, affine ? w : NULL, affine ? b : NULL, N, C, S, groups, 1e-6);
        ref_groupnorm_silu_bwd(dx, dw, db, c.w, x, affine ? w : NULL, affine ? b : NULL, N, C, S, groups, 1e-6);
    } else {
        ref_groupnorm_fwd(y, NULL, NULL, x, affine ? w : NULL, affine ? b : NULL, N, C, S, groups, 1e-6);
        ref_groupnorm_bwd(dx, dw, db, c.w, x, affine ? w : NULL, N, C, S, groups, 1e-6);
    }
    printf("%s\n", name);
    compare("y", Y, y, TOL);
    compare_grad(&c, "dx", X, dx);
    if (affine == 1) {
        compare_grad(&c, "dw", Wt, dw);
        compare_grad(&c, "db", B, db);
    }
    if (affine == 2) CHECK(vkd_graph_grad(c.g, Wt) == NULL, "a frozen weight gets no gradient");
    if (replay) {  // fixed-order reductions: a replay is bit-identical
        long nn = (long)vkd_tensor_numel(vkd_graph_grad(c.g, X));
        float *a = malloc(nn * 4), *a2 = malloc(nn * 4), *g = malloc(C * 4), *g2 = malloc(C * 4);
        vkd_tensor_download(vkd_graph_grad(c.g, X), a);
        vkd_tensor_download(vkd_graph_grad(c.g, Wt), g);
        CHECK(vkd_graph_run(c.g) == 0, "replay: %s", vkd_graph_error(c.g));
        vkd_tensor_download(vkd_graph_grad(c.g, X), a2);
        vkd_tensor_download(vkd_graph_grad(c.g, Wt), g2);
        CHECK(!memcmp(a, a2, nn * 4) && !memcmp(g, g2, C * 4), "replayed groupnorm gradients differ");
        free(a), free(a2), free(g), free(g2);
    }
    if (affine) vkd_tensor_free(Wt), vkd_tensor_free(B);
    vkd_tensor_free(X);
    free(x), free(y), free(dx), free(w), free(b), free(dw), free(db);
    end(&c);
}

// When x already has a gradient (here 0.5 * dL/dy from a scale recorded after
// the norm), the norm's backward writes old + dx in its own pass instead of
// leaving the sum to an add: the result must be that add's bits exactly,
// old + dx of the norm's gradient alone, on the flat and channel-major walks.
static vkd_tensor *gn_grad_of_x(vkd_ctx *ctx, vkd_tensor *X, vkd_tensor *U, vkd_tensor *Wt, vkd_tensor *B, int groups,
                                int act, int with_scale, vkd_graph **gp) {
    vkd_graph *g = *gp = vkd_graph_new(ctx, "groupnorm accumulate");
    vkd_tensor *y = act ? vkd_groupnorm_silu(g, X, Wt, B, groups, 1e-6f) : vkd_groupnorm(g, X, Wt, B, groups, 1e-6f);
    if (with_scale) y = vkd_add(g, y, vkd_scale(g, X, 0.5f));
    CHECK(vkd_graph_backward(g, vkd_sum(g, vkd_mul(g, y, U), 0)) == 0, "backward: %s", vkd_graph_error(g));
    CHECK(vkd_graph_run(g) == 0, "run: %s", vkd_graph_error(g));
    return vkd_graph_grad(g, X);
}

static void test_groupnorm_accumulate(vkd_ctx *ctx, int N, int C, int H, int W, int groups, int act) {
    printf("groupnorm%s (%d,%d,%d,%d) groups %d: backward adds into x's gradient so far\n", act ? "+silu" : "", N, C,
           H, W, groups);
    long n = (long)N * C * H * W;
    int64_t shape[4] = {N, C, H, W};
    double *x = dalloc(n), *u = dalloc(n), *w = dalloc(C), *b = dalloc(C);
    t_fill(x, n, -2, 3), t_fill(u, n, -1, 1), t_fill(w, C, 0.5, 1.5), t_fill(b, C, -1, 1);
    vkd_tensor *X = t_tensor(ctx, "x", 4, shape, x, 0), *U = t_tensor(ctx, "u", 4, shape, u, 0);
    vkd_tensor *Wt = t_tensor(ctx, "w", 1, (int64_t[]){C}, w, 0), *B = t_tensor(ctx, "b", 1, (int64_t[]){C}, b, 0);
    vkd_tensor_set_requires_grad(X, 1), vkd_tensor_set_requires_grad(Wt, 1);
    vkd_graph *g1, *g2;
    vkd_tensor *both = gn_grad_of_x(ctx, X, U, Wt, B, groups, act, 1, &g1);
    vkd_tensor *alone = gn_grad_of_x(ctx, X, U, Wt, B, groups, act, 0, &g2);
    float *a = malloc(n * 4), *d = malloc(n * 4), *uf = malloc(n * 4);
    vkd_tensor_download(both, a), vkd_tensor_download(alone, d), vkd_tensor_download(U, uf);
    long bad = 0;
    for (long i = 0; i < n; i++) {
        float old = 0.5f * uf[i], want = old + d[i];
        bad += memcmp(&want, &a[i], 4) != 0;
    }
    CHECK(bad == 0, "%ld of %ld gradients differ from old + dx", bad, n);
    printf("  %-44s %ld of %ld differ\n", "bits against old + dx", bad, n);
    // the vec4 walk (texel views, S a multiple of 4 and at least 4 workgroups) reads old in vec4s too
    int old4 = 0, vec4 = 0;
    for (int i = 0; i < g1->ndisp; i++) {
        const vkd_pipeline *pp = g1->disp[i].pipe;
        if (!pp || strncmp(pp->shader, "groupnorm", 9) || pp->nspec < 8 || pp->spec[1] != 1) continue;
        vec4 += pp->spec[6] != 0, old4 += pp->spec[7] != 0;
    }
    CHECK(old4 == vec4, "old read in vec4s by %d of %d vec4 input-gradient walks", old4, vec4);
    printf("  %-44s %d of %d\n", "vec4 input-gradient walks reading old in vec4s", old4, vec4);
    vkd_graph_free(g1), vkd_graph_free(g2);
    vkd_tensor_free(X), vkd_tensor_free(U), vkd_tensor_free(Wt), vkd_tensor_free(B);
    free(x), free(u), free(w), free(b), free(a), free(d), free(uf);
}

// Weight and bias that are parameters read by this norm only: their gradients are added
// into the persistent buffers by the sums over the samples (no grad_accumulate pass), so
// the buffers hold old + the gradient the same graph gives plain tensors, bit for bit.
// On CPU devices the input gradient's pass also sums dw and db over the samples (one workgroup a
// group, the shader's NL): against the per-sample terms and their separate sum (VKD_GN_SUM_N=0,
// run 2), the same bits.
static void test_groupnorm_param_grads(vkd_ctx *ctx, int N, int C, int H, int W, int groups) {
    printf("groupnorm+silu (%d,%d,%d,%d) groups %d: w, b gradients added into parameters\n", N, C, H, W, groups);
    long n = (long)N * C * H * W;
    int64_t shape[4] = {N, C, H, W};
    double *x = dalloc(n), *u = dalloc(n), *w = dalloc(C), *b = dalloc(C);
    t_fill(x, n, -2, 3), t_fill(u, n, -1, 1), t_fill(w, C, 0.5, 1.5), t_fill(b, C, -1, 1);
    float *old = malloc(2 * C * 4), *got[3] = {malloc(2 * C * 4), malloc(2 * C * 4), malloc(2 * C * 4)};
    for (long i = 0; i < 2 * C; i++) old[i] = (float)(t_uniform() - 0.5);
    int nl_runs = 0;
    for (int run = 0; run < 3; run++) {
        int param = run == 1;
        if (run == 2) setenv("VKD_GN_SUM_N", "0", 1);
        vkd_tensor *X = t_tensor(ctx, "x", 4, shape, x, 0), *U = t_tensor(ctx, "u", 4, shape, u, 0);
        vkd_tensor *Wt = t_tensor(ctx, "w", 1, (int64_t[]){C}, w, param ? VKD_PARAM : 0);
        vkd_tensor *B = t_tensor(ctx, "b", 1, (int64_t[]){C}, b, param ? VKD_PARAM : 0);
        vkd_tensor_set_requires_grad(X, 1), vkd_tensor_set_requires_grad(Wt, 1), vkd_tensor_set_requires_grad(B, 1);
        if (param) vkd_tensor_upload(vkd_tensor_grad(Wt), old), vkd_tensor_upload(vkd_tensor_grad(B), old + C);
        vkd_graph *g = vkd_graph_new(ctx, "groupnorm param grads");
        vkd_tensor *y = vkd_groupnorm_silu(g, X, Wt, B, groups, 1e-6f);
        CHECK(vkd_graph_backward(g, vkd_sum(g, vkd_mul(g, y, U), 0)) == 0 && vkd_graph_run(g) == 0, "run: %s",
              vkd_graph_error(g));
        int acc = 0, nl = 0;
        for (int i = 0; i < g->ndisp; i++) {
            const vkd_pipeline *pp = g->disp[i].pipe;
            acc += strcmp(g->disp[i].name, "grad_accumulate") == 0;
            nl += pp && !strncmp(pp->shader, "groupnorm", 9) && pp->nspec > 10 && pp->spec[10] != 0;
        }
        if (param) CHECK(acc == 0, "%d grad_accumulate passes for parameters read once", acc);
        int cpu = ctx->f.type == VK_PHYSICAL_DEVICE_TYPE_CPU;
        CHECK(nl == (cpu && run < 2), "%d group norm passes summing over the samples in run %d", nl, run);
        nl_runs += nl;
        vkd_tensor_download(param ? vkd_tensor_grad(Wt) : vkd_graph_grad(g, Wt), got[run]);
        vkd_tensor_download(param ? vkd_tensor_grad(B) : vkd_graph_grad(g, B), got[run] + C);
        vkd_graph_free(g);
        vkd_tensor_free(X), vkd_tensor_free(U), vkd_tensor_free(Wt), vkd_tensor_free(B);
    }
    unsetenv("VKD_GN_SUM_N");
    CHECK(!memcmp(got[0], got[2], 2 * C * 4), "dw, db summed in the pass differ from the separate sum");
    printf("  %d passes summing over the samples, the same bits as the separate sum\n", nl_runs);
    long bad = 0;
    for (long i = 0; i < 2 * C; i++) {
        float want = old[i] + got[0][i];
        bad += memcmp(&want, &got[1][i], 4) != 0;
    }
    CHECK(bad == 0, "%ld of %d parameter gradients differ from old + the graph's", bad, 2 * C);
    free(x), free(u), free(w), free(b), free(old), free(got[0]), free(got[1]), free(got[2]);
}

// A group norm + SiLU case's tensors: x, the loss's weights u, w and b (x, w and b asking for
// gradients).
typedef struct {
    vkd_tensor *X, *U, *W, *B;
} gn_case;

static gn_case gn_case_new(vkd_ctx *ctx, const int64_t shape[4], double *x, double *u, double *w,
                           double *b) {
    gn_case c = {t_tensor(ctx, "x", 4, shape, x, 0), t_tensor(ctx, "u", 4, shape, u, 0),
                 t_tensor(ctx, "w", 1, &shape[1], w, 0), t_tensor(ctx, "b", 1, &shape[1], b, 0)};
    vkd_tensor_set_requires_grad(c.X, 1), vkd_tensor_set_requires_grad(c.W, 1), vkd_tensor_set_requires_grad(c.B, 1);
    return c;
}

// g's backward of sum(z * u) and a run, then y and the gradients of x, w and b into got[0..3]
static void gn_case_run(vkd_graph *g, const gn_case *c, vkd_tensor *y, vkd_tensor *z, float *got[4]) {
    CHECK(vkd_graph_backward(g, vkd_sum(g, vkd_mul(g, z, c->U), 0)) == 0 && vkd_graph_run(g) == 0, "run: %s",
          vkd_graph_error(g));
    vkd_tensor *t[4] = {y, vkd_graph_grad(g, c->X), vkd_graph_grad(g, c->W), vkd_graph_grad(g, c->B)};
    for (int k = 0; k < 4; k++) got[k] = malloc((size_t)t[k]->numel * 4), vkd_tensor_download(t[k], got[k]);
}

static void gn_case_free(gn_case *c) { vkd_tensor_free(c->X), vkd_tensor_free(c->U), vkd_tensor_free(c->W), vkd_tensor_free(c->B); }

// A lane's quads of a row held in registers (the shader's RQ; VKD_GN_REGS=0 turns it off):
// the forward and the input gradient (with x's gradient so far added) against the walk that
// fetches x and dy twice. The sums take the same terms in the same order, but the unrolled
// register walk lets NIR fold its arithmetic differently, so the bits may differ (~1e-6
// relative): within 1e-5 of each output's scale, and the register walk must have run where
// the host allows it. (Its agreement with the double reference: test_groupnorm's EDM shapes.)
// samples: what the graph says it runs (vkd_graph_set_samples; 0 none): rows of 64 quads a lane are
// held only in a long run's backward (gn_regs_max).
static void test_groupnorm_regs(vkd_ctx *ctx, int N, int C, int H, int W, int groups, int want_fwd, int64_t samples,
                                int want_bwd) {
    printf("groupnorm+silu (%d,%d,%d,%d) groups %d, %lld samples said: rows held in registers against fetched twice\n",
           N, C, H, W, groups, (long long)samples);
    long n = (long)N * C * H * W;
    int64_t shape[4] = {N, C, H, W};
    double *x = dalloc(n), *u = dalloc(n), *w = dalloc(C), *b = dalloc(C);
    t_fill(x, n, -2, 3), t_fill(u, n, -1, 1), t_fill(w, C, 0.5, 1.5), t_fill(b, C, -1, 1);
    float *got[2][4];
    int regs[2] = {0, 0};
    for (int pass = 0; pass < 2; pass++) {
        setenv("VKD_GN_REGS", pass ? "1" : "0", 1);
        gn_case c = gn_case_new(ctx, shape, x, u, w, b);
        vkd_graph *g = vkd_graph_new(ctx, "groupnorm regs");
        vkd_graph_set_samples(g, samples);
        vkd_tensor *y = vkd_groupnorm_silu(g, c.X, c.W, c.B, groups, 1e-6f);
        vkd_graph_keep(g, y);
        vkd_tensor *z = vkd_add(g, y, vkd_scale(g, c.X, 0.5f));  // x's gradient so far, added by the norm
        gn_case_run(g, &c, y, z, got[pass]);
        for (int i = 0; i < g->ndisp; i++) {
            const vkd_pipeline *pp = g->disp[i].pipe;
            if (pp && !strncmp(pp->shader, "groupnorm", 9) && pp->nspec >= 10 && pp->spec[8] != 0)
                regs[pp->spec[1] == 1]++;
        }
        vkd_graph_free(g);
        gn_case_free(&c);
        CHECK(pass || regs[0] + regs[1] == 0, "VKD_GN_REGS=0 still held rows in registers");
    }
    unsetenv("VKD_GN_REGS");
    const char *what[4] = {"y", "dx (old + dx)", "dw", "db"};
    long len[4] = {n, n, C, C};
    for (int k = 0; k < 4; k++) {
        double scale = 0, md = 0;
        long bad = 0;
        for (long i = 0; i < len[k]; i++) scale = fmax(scale, fabs(got[0][k][i]));
        for (long i = 0; i < len[k]; i++) {
            bad += memcmp(&got[0][k][i], &got[1][k][i], 4) != 0;
            md = fmax(md, fabs((double)got[0][k][i] - got[1][k][i]) / (scale > 0 ? scale : 1));
        }
        CHECK(md <= 1e-5, "%s: the walks differ by %.3g of the scale", what[k], md);
        printf("  %-44s %ld of %ld bits differ, by at most %.2g of the scale\n", what[k], bad, len[k], md);
        free(got[0][k]), free(got[1][k]);
    }
    // the register walk needs vec4 texel views (CPU devices) and whole quads a lane: the counts are
    // those of lavapipe's default 16 lanes (the _sg4 and _bda runs check the values only)
    if (ctx->texel && ctx->f.subgroup_size == 16) {
        CHECK(regs[1] == want_bwd, "the input gradient held its rows in registers in %d passes, want %d", regs[1], want_bwd);
        CHECK(regs[0] == want_fwd, "the forward held its rows in registers in %d passes, want %d", regs[0], want_fwd);
    }
    printf("  %-44s forward %d, input gradient %d\n", "register walks", regs[0], regs[1]);
    free(x), free(u), free(w), free(b);
}

// x's gradient gathering `terms` contributions before group norm's backward (its first reader)
// adds its own: kept as two terms, the last of them added by the norm's walk (its OLD2) where
// both come through vec4 views (CPU devices), against each added at once (VKD_GRAD_PAIR=0): every
// gradient bit for bit, and one add pass fewer where the walk took the pair. x = 1.5 X is a graph
// tensor, as a UNet's block outputs are (an input's gradient is never kept in two terms).
static void test_groupnorm_pair(vkd_ctx *ctx, int N, int C, int H, int W, int groups, int terms, int want_taken) {
    printf("groupnorm+silu (%d,%d,%d,%d) groups %d, %d terms of x's gradient before its own: kept as two\n", N, C, H,
           W, groups, terms);
    long n = (long)N * C * H * W;
    int64_t shape[4] = {N, C, H, W};
    double *x = dalloc(n), *u = dalloc(n), *w = dalloc(C), *b = dalloc(C);
    t_fill(x, n, -2, 3), t_fill(u, n, -1, 1), t_fill(w, C, 0.5, 1.5), t_fill(b, C, -1, 1);
    float *got[2][4];
    int adds[2] = {0, 0}, taken[2] = {0, 0};
    for (int pass = 0; pass < 2; pass++) {
        setenv("VKD_GRAD_PAIR", pass ? "1" : "0", 1);
        gn_case c = gn_case_new(ctx, shape, x, u, w, b);
        vkd_graph *g = vkd_graph_new(ctx, "groupnorm pair");
        vkd_tensor *xs = vkd_scale(g, c.X, 1.5f);
        vkd_tensor *y = vkd_groupnorm_silu(g, xs, c.W, c.B, groups, 1e-6f), *z = y;
        vkd_graph_keep(g, y);
        for (int k = 0; k < terms; k++) z = vkd_add(g, z, vkd_scale(g, xs, 0.5f / (float)(k + 1)));
        gn_case_run(g, &c, y, z, got[pass]);
        for (int i = 0; i < g->ndisp; i++) {
            const vkd_dispatch *d = &g->disp[i];
            adds[pass] += !strcmp(d->name, "add");
            taken[pass] += d->pipe && !strncmp(d->pipe->shader, "groupnorm", 9) && d->pipe->nspec >= 12 && d->pipe->spec[11];
        }
        vkd_graph_free(g);
        gn_case_free(&c);
    }
    unsetenv("VKD_GRAD_PAIR");
    const char *what[4] = {"y", "dX", "dw", "db"};
    long len[4] = {n, n, C, C};
    for (int k = 0; k < 4; k++) {
        long bad = 0;
        for (long i = 0; i < len[k]; i++) bad += memcmp(&got[0][k][i], &got[1][k][i], 4) != 0;
        CHECK(bad == 0, "%s: %ld of %ld bits differ from the terms added at once", what[k], bad, len[k]);
        free(got[0][k]), free(got[1][k]);
    }
    int want = want_taken && ctx->texel && ctx->f.type == VK_PHYSICAL_DEVICE_TYPE_CPU;
    CHECK(taken[0] == 0 && taken[1] == want, "the walk took the pair %d times, want %d (0 with VKD_GRAD_PAIR=0: %d)",
          taken[1], want, taken[0]);
    CHECK(adds[1] == adds[0] - want, "%d add passes against %d added at once, want %d fewer", adds[1], adds[0], want);
    printf("  %-44s bit for bit; add passes %d against %d; the walk took the pair: %d\n", "y, dX, dw, db", adds[1],
           adds[0], taken[1]);
    free(x), free(u), free(w), free(b);
}

static void test_groupnorm(vkd_ctx *ctx, int N, int C, int H, int W, int groups, int affine, int replay) {
    test_groupnorm_act(ctx, N, C, H, W, groups, affine, replay, 0);
}

// ---------------------------------------------------------------- resampling
static void test_resample(vkd_ctx *ctx, int up, int N, int C, int H, int W) {
    char name[96];
    snprintf(name, sizeof name, "%s (%d,%d,%d,%d)", up ? "upsample2x" : "avgpool2x", N, C, H, W);
    cas c = begin(ctx, name);
    long n = (long)N * C * H * W, ny = up ? 4 * n : n / 4;
    double *x = dalloc(n), *y = dalloc(ny), *dx = dalloc(n);
    t_fill(x, n, -1, 1);
    vkd_tensor *X = input(&c, "x", 4, (int64_t[]){N, C, H, W}, x);
    vkd_tensor *Y = up ? vkd_upsample2x(c.g, X) : vkd_avgpool2x(c.g, X);
    finish(&c, Y);
    if (up) {
        ref_upsample2x_fwd(y, x, (long)N * C, H, W);
        ref_upsample2x_bwd(dx, c.w, (long)N * C, H, W);
    } else {
        ref_avgpool2x_fwd(y, x, (long)N * C, H, W);
        ref_avgpool2x_bwd(dx, c.w, (long)N * C, H, W);
    }
    printf("%s\n", name);
    int64_t want[4] = {N, C, up ? 2 * H : H / 2, up ? 2 * W : W / 2};
    int shape_ok = Y && vkd_tensor_ndim(Y) == 4;
    for (int i = 0; shape_ok && i < 4; i++) shape_ok = vkd_tensor_dim(Y, i) == want[i];
    CHECK(shape_ok, "%s: wrong output shape", name);
    compare("y", Y, y, TOL);
    compare_grad(&c, "dx", X, dx);
    // quads of y through a storage binding (resample.comp's QPR) where the device writes that way
    // and a row of the pass's output is whole quads: the forward's and the backward's
    // and the upsampling direction (the forward up, the pool's backward) reading x in quads, four
    // quads of y each (X4) where y's rows are whole pairs of quads
    int quads = 0, want_quads = 0, x4 = 0, want_x4 = 0;
    for (int i = 0; i < c.g->ndisp; i++) {
        const vkd_pipeline *pp = c.g->disp[i].pipe;
        quads += pp && !strcmp(pp->shader, "resample_sb") && pp->nspec > 4 && pp->spec[4] != 0;
        x4 += pp && !strcmp(pp->shader, "resample_sb") && pp->nspec > 5 && pp->spec[5] != 0;
    }
    if (ctx->sbuf && !vkd_env_off("VKD_WIDE_STORES")) {
        want_quads = ((up ? 2 * W : W / 2) % 4 == 0) + (W % 4 == 0);
        want_x4 = up ? (2 * W) % 8 == 0 : W % 8 == 0;
    }
    CHECK(quads == want_quads && x4 == want_x4, "%s: %d passes wrote quads (want %d), %d of them from x's quads (want %d)",
          name, quads, want_quads, x4, want_x4);
    printf("  %-44s %d, %d from x's quads\n", "passes writing quads", quads, x4);
    vkd_tensor_free(X);
    free(x), free(y), free(dx);
    end(&c);
}

// x read by the resampling and, after it, by a mul: the resampling's backward adds the mul's
// gradient of x as it stores (resample.comp's OLD, where its quad walk runs) instead of an add
// after it. x's gradient against the reference, and bit for bit against VKD_RS_OLD=0.
static void test_resample_old(vkd_ctx *ctx, int up, int N, int C, int H, int W) {
    printf("%s (%d,%d,%d,%d) then x * v: the backward adds the gradient so far\n", up ? "upsample2x" : "avgpool2x", N,
           C, H, W);
    long n = (long)N * C * H * W, ny = up ? 4 * n : n / 4;
    int64_t xs[4] = {N, C, H, W}, ys[4] = {N, C, up ? 2 * H : H / 2, up ? 2 * W : W / 2};
    double *x = dalloc(n), *v = dalloc(n), *u = dalloc(ny), *dx = dalloc(n);
    t_fill(x, n, -1, 1), t_fill(v, n, -1, 1), t_fill(u, ny, -1, 1);
    vkd_tensor *X = t_tensor(ctx, "x", 4, xs, x, 0), *V = t_tensor(ctx, "v", 4, xs, v, 0), *U = t_tensor(ctx, "u", 4, ys, u, 0);
    vkd_tensor_set_requires_grad(X, 1);
    float *got[2] = {malloc(n * 4), malloc(n * 4)};
    int adds[2];
    for (int r = 0; r < 2; r++) {
        setenv("VKD_RS_OLD", r ? "0" : "1", 1);
        vkd_graph *g = vkd_graph_new(ctx, "resample old");
        vkd_tensor *y = up ? vkd_upsample2x(g, X) : vkd_avgpool2x(g, X);
        vkd_tensor *loss = vkd_add(g, vkd_sum(g, vkd_mul(g, y, U), 0), vkd_sum(g, vkd_mul(g, X, V), 0));
        CHECK(vkd_graph_backward(g, loss) == 0 && vkd_graph_run(g) == 0, "run: %s", vkd_graph_error(g));
        vkd_tensor_download(vkd_graph_grad(g, X), got[r]);
        adds[r] = 0;
        for (int i = 0; i < g->ndisp; i++) adds[r] += strcmp(g->disp[i].name, "add") == 0;
        if (r == 0) {
            if (up) ref_upsample2x_bwd(dx, u, (long)N * C, H, W);
            else ref_avgpool2x_bwd(dx, u, (long)N * C, H, W);
            for (long i = 0; i < n; i++) dx[i] += v[i];
            compare("dx", vkd_graph_grad(g, X), dx, TOL);
        }
        vkd_graph_free(g);
    }
    unsetenv("VKD_RS_OLD");
    CHECK(!memcmp(got[0], got[1], n * 4), "the backward's add differs from the separate add's bits");
    // where the quad walk writes the gradient (CPU devices, its rows whole quads): one add less
    int fused = ctx->sbuf && !vkd_env_off("VKD_WIDE_STORES") && W % 4 == 0;
    CHECK(adds[0] == adds[1] - fused, "%d adds with the backward adding, %d without (fused: %d)", adds[0], adds[1], fused);
    printf("  %-44s %d -> %d\n", "adds", adds[1], adds[0]);
    vkd_tensor_free(X), vkd_tensor_free(V), vkd_tensor_free(U);
    free(x), free(v), free(u), free(dx), free(got[0]), free(got[1]);
}

// ---------------------------------------------------------------- modulate
static void test_modulate(vkd_ctx *ctx, int N, int T, int D, int with_shift, int with_scale, float one) {
    char name[96];
    snprintf(name, sizeof name, "modulate (%d,%d,%d)%s%s one=%g", N, T, D, with_shift ? " shift" : "",
             with_scale ? " scale" : "", one);
    cas c = begin(ctx, name);
    long n = (long)N * T * D, m = (long)N * D;
    double *x = dalloc(n), *y = dalloc(n), *dx = dalloc(n), *sh = dalloc(m), *sc = dalloc(m), *dsh = dalloc(m),
           *dsc = dalloc(m);
    t_fill(x, n, -2, 2);
    t_fill(sh, m, -1, 1);
    t_fill(sc, m, -1, 1);
    vkd_tensor *X = input(&c, "x", 3, (int64_t[]){N, T, D}, x);
    vkd_tensor *SH = with_shift ? input(&c, "shift", 2, (int64_t[]){N, D}, sh) : NULL;
    vkd_tensor *SC = with_scale ? input(&c, "scale", 2, (int64_t[]){N, D}, sc) : NULL;
    vkd_tensor *Y = vkd_modulate(c.g, X, SH, SC, one);
    finish(&c, Y);
    ref_modulate_fwd(y, x, with_shift ? sh : NULL, with_scale ? sc : NULL, N, T, D, one);
    ref_modulate_bwd(dx, dsh, dsc, c.w, x, with_scale ? sc : NULL, N, T, D, one);
    printf("%s\n", name);
    compare("y", Y, y, TOL);
    compare_grad(&c, "dx", X, dx);
    if (SH) compare_grad(&c, "dshift", SH, dsh), vkd_tensor_free(SH);
    if (SC) compare_grad(&c, "dscale", SC, dsc), vkd_tensor_free(SC);
    vkd_tensor_free(X);
    free(x), free(y), free(dx), free(sh), free(sc), free(dsh), free(dsc);
    end(&c);
}

// ---------------------------------------------------------------- dropout
static void test_dropout(vkd_ctx *ctx, long n, float p) {
    char name[96];
    snprintf(name, sizeof name, "dropout (%ld) p=%g", n, p);
    cas c = begin(ctx, name);
    double *x = dalloc(n), *y = dalloc(n), *dx = dalloc(n);
    unsigned char *keep = malloc(n);
    t_fill(x, n, -1, 1);
    for (long i = 0; i < n; i++)
        if (x[i] == 0) x[i] = 0.5;  // a dropped zero and a kept zero would look alike
    int64_t one = 1;
    vkd_tensor *step = vkd_tensor_new(ctx, "step", 1, &one, VKD_HOST);
    vkd_tensor *X = input(&c, "x", 1, (int64_t[]){n}, x);
    uint64_t seed = 0xfeedbeefcafe1234ull;
    vkd_tensor *Y = vkd_dropout(c.g, X, p, seed, 7, step);
    ((uint32_t *)vkd_tensor_map(step))[0] = 5;  // the first run below reads step 5
    finish(&c, Y);
    printf("%s\n", name);
    for (uint32_t s = 5; s < 7; s++) {
        if (s > 5) {  // a replay with the next step draws a new mask
            ((uint32_t *)vkd_tensor_map(step))[0] = s;
            CHECK(vkd_graph_run(c.g) == 0, "run: %s", vkd_graph_error(c.g));
        }
        long kept = 0;
        for (long i = 0; i < n; i++) kept += keep[i] = vkd_philox_uniform(seed, 7, s, (uint64_t)i) >= p;
        double *d = t_download(Y);
        long mism = 0;
        for (long i = 0; i < n; i++) mism += (d[i] != 0) != keep[i];
        free(d);
        CHECK(mism == 0, "step %u: %ld elements where the device mask differs from the host's", s, mism);
        double frac = (double)kept / n, sd = sqrt((double)p * (1 - p) / n);
        CHECK(fabs(frac - (1 - p)) < 5 * sd, "step %u: kept fraction %.4f, expected %.4f", s, frac, 1 - p);
        printf("  step %u: kept %.4f (expected %.4f +- %.4f), mask = host mask\n", s, frac, 1 - p, sd);
        ref_dropout_fwd(y, x, keep, n, p);
        ref_dropout_bwd(dx, c.w, keep, n, p);
        compare("y", Y, y, TOL);
        compare_grad(&c, "dx (same mask, regenerated)", X, dx);
    }
    vkd_tensor_free(step);
    vkd_tensor_free(X);
    free(x), free(y), free(dx), free(keep);
    end(&c);
    // p == 0 is the identity, recorded as nothing
    vkd_graph *g = vkd_graph_new(ctx, "dropout p=0");
    vkd_tensor *Z = vkd_tensor_new(ctx, "z", 1, &one, 0);
    CHECK(vkd_dropout(g, Z, 0.0f, 1, 0, NULL) == Z && vkd_graph_dispatch_count(g) == 0, "dropout p=0 is x itself");
    CHECK(vkd_dropout(g, Z, 1.0f, 1, 0, NULL) == NULL && strstr(vkd_graph_error(g), "[0, 1)"),
          "dropout p=1 is refused: %s", vkd_graph_error(g));
    vkd_tensor_free(Z);
    vkd_graph_free(g);
}

// ---------------------------------------------------------------- embeddings
// fp32 cannot hold the argument a = t*f exactly: rounding t*f (and f) costs up
// to ~1.2e-7 * |a| before any sin/cos, as in PyTorch's fp32 embedding; the
// shader's polynomial sin/cos and exp2 add ~1e-7 absolute. So the element-wise
// bound is |dev - ref| <= 3e-7 * |a| + 5e-7 (at a = 1000: 3e-4).
#define EMB_REL 3e-7
#define EMB_ABS 5e-7

// t: ln(sigma)/4 for sigma geometric in [0.002, 80] (EDM's c_noise), then DiT's t in [0, 1000]
static int emb_times(double *t) {
    int n = 0;
    for (int i = 0; i < 12; i++) t[n++] = log(0.002 * pow(80.0 / 0.002, i / 11.0)) / 4;
    const double dit[8] = {0, 1, 17, 250.5, 499, 777.25, 999, 1000};
    for (int i = 0; i < 8; i++) t[n++] = dit[i];
    return n;
}

static void compare_emb(const char *what, vkd_tensor *Y, const double *ref, const double *arg, int N, int half) {
    double *d = t_download(Y), worst = 0, maxe = 0;
    for (int n = 0; n < N; n++)
        for (int j = 0; j < 2 * half; j++) {
            long i = (long)n * 2 * half + j;
            double e = fabs(d[i] - ref[i]), r = e / (EMB_REL * fabs(arg[(long)n * half + j % half]) + EMB_ABS);
            if (!(r <= worst)) worst = r;
            if (e > maxe) maxe = e;
        }
    CHECK(worst <= 1.0, "%s: error %.3g of the bound", what, worst);
    printf("  %-44s max abs err %.2e, worst %.2f of the bound\n", what, maxe, worst);
    free(d);
}

static void test_timestep_embedding(vkd_ctx *ctx, int dim, int endpoint) {
    char name[96];
    snprintf(name, sizeof name, "timestep_embedding dim %d endpoint %d", dim, endpoint);
    double t[32];
    int N = emb_times(t), half = dim / 2;
    vkd_graph *g = vkd_graph_new(ctx, name);
    vkd_tensor *T = t_tensor(ctx, "t", 1, (int64_t[]){N}, t, 0);
    vkd_tensor *Y = vkd_timestep_embedding(g, T, dim, 10000.0f, endpoint);
    vkd_graph_keep(g, Y);
    CHECK(vkd_graph_run(g) == 0, "run: %s", vkd_graph_error(g));
    double *y = dalloc((long)N * dim), *arg = dalloc((long)N * half);
    ref_timestep_embedding(y, t, N, dim, 10000.0, endpoint);
    for (int n = 0; n < N; n++)
        for (int k = 0; k < half; k++) arg[n * half + k] = t[n] * pow(1e-4, (double)k / (half - endpoint));
    printf("%s\n", name);
    CHECK(Y && vkd_tensor_dim(Y, 0) == N && vkd_tensor_dim(Y, 1) == dim, "%s: wrong shape", name);
    compare_emb("y", Y, y, arg, N, half);
    free(y), free(arg);
    vkd_tensor_free(T);
    vkd_graph_free(g);
}

static void test_fourier_embedding(vkd_ctx *ctx, int half) {
    char name[96];
    snprintf(name, sizeof name, "fourier_embedding dim %d (freqs randn*16)", 2 * half);
    double t[32], f[256];
    int N = emb_times(t) - 8;  // EDM's c_noise only
    for (int k = 0; k < half; k++)  // Box-Muller
        f[k] = 16 * sqrt(-2 * log(1 - t_uniform())) * cos(6.283185307179586 * t_uniform());
    vkd_graph *g = vkd_graph_new(ctx, name);
    vkd_tensor *T = t_tensor(ctx, "t", 1, (int64_t[]){N}, t, 0);
    vkd_tensor *F = t_tensor(ctx, "freqs", 1, (int64_t[]){half}, f, 0);
    vkd_tensor *Y = vkd_fourier_embedding(g, T, F);
    vkd_graph_keep(g, Y);
    CHECK(vkd_graph_run(g) == 0, "run: %s", vkd_graph_error(g));
    double *y = dalloc((long)N * 2 * half), *arg = dalloc((long)N * half);
    ref_fourier_embedding(y, t, f, N, half);
    for (int n = 0; n < N; n++)
        for (int k = 0; k < half; k++) arg[n * half + k] = 6.283185307179586 * t[n] * f[k];
    printf("%s\n", name);
    compare_emb("y", Y, y, arg, N, half);
    free(y), free(arg);
    vkd_tensor_free(T);
    vkd_tensor_free(F);
    vkd_graph_free(g);
}

// ---------------------------------------------------------------- bad input
static void test_errors(vkd_ctx *ctx) {
    int64_t s4[4] = {2, 6, 3, 3}, s1[1] = {4}, s3[3] = {2, 5, 7}, s2[2] = {2, 6};
    vkd_tensor *x = vkd_tensor_new(ctx, "x", 4, s4, 0), *t = vkd_tensor_new(ctx, "t", 1, s1, 0);
    vkd_tensor *tok = vkd_tensor_new(ctx, "tok", 3, s3, 0), *bad = vkd_tensor_new(ctx, "shift", 2, s2, 0);
    struct {
        const char *want;
        int which;
    } cases[] = {{"4 groups do not divide its 6 channels", 0}, {"H and W must be even", 1},
                 {"t requires a gradient", 2},                 {"must be (N, D) = (2, 7)", 3},
                 {"dim 7 must be even", 4}};
    for (int k = 0; k < 5; k++) {
        vkd_graph *g = vkd_graph_new(ctx, "errors");
        vkd_tensor *r = NULL;
        vkd_tensor_set_requires_grad(t, cases[k].which == 2);
        switch (cases[k].which) {
        case 0: r = vkd_groupnorm(g, x, NULL, NULL, 4, 1e-5f); break;
        case 1: r = vkd_avgpool2x(g, x); break;
        case 2: r = vkd_timestep_embedding(g, t, 8, 10000, 0); break;
        case 3: r = vkd_modulate(g, tok, bad, NULL, 1.0f); break;
        case 4: r = vkd_timestep_embedding(g, t, 7, 10000, 0); break;
        }
        CHECK(!r && strstr(vkd_graph_error(g), cases[k].want), "expected an error with '%s', got '%s'",
              cases[k].want, vkd_graph_error(g));
        printf("error: %s\n", vkd_graph_error(g));
        vkd_graph_free(g);
    }
    vkd_tensor_free(x), vkd_tensor_free(t), vkd_tensor_free(tok), vkd_tensor_free(bad);
}

int main(void) {
    vkd_ctx *ctx = t_open();
    for (int affine = 0; affine < 2; affine++) {
        test_groupnorm(ctx, 2, 4, 3, 3, 1, affine, 0);
        test_groupnorm(ctx, 2, 4, 3, 3, 2, affine, 0);
        test_groupnorm(ctx, 2, 4, 3, 3, 4, affine, 0);
        test_groupnorm(ctx, 1, 6, 5, 7, 3, affine, 0);
    }
    test_groupnorm(ctx, 2, 6, 1, 1, 2, 1, 0);            // (N, C) with no spatial axes
    test_groupnorm(ctx, 2, 8, 5, 5, 2, 2, 0);            // frozen w, b: only dx
    test_groupnorm(ctx, 2, 64, 16, 16, 32, 1, 1);        // EDM's 32 groups: rows of 512, looped
    test_groupnorm(ctx, 1, 16, 32, 32, 1, 1, 0);         // stats over 16384 elements, as EDM's 512 ch / 32 at 32x32
    test_groupnorm_act(ctx, 2, 4, 3, 3, 2, 1, 0, 1);     // fused SiLU, short rows (flat walk)
    test_groupnorm_act(ctx, 2, 8, 5, 5, 2, 2, 0, 1);     // fused SiLU, frozen w, b
    test_groupnorm_act(ctx, 2, 64, 16, 16, 32, 1, 1, 1); // fused SiLU, channel-major walk, replayed
    test_groupnorm_accumulate(ctx, 2, 4, 3, 3, 2, 1);    // flat walk
    test_groupnorm_accumulate(ctx, 2, 64, 16, 16, 32, 0); // channel-major walk, dw/db in the same pass
    test_groupnorm_accumulate(ctx, 2, 64, 16, 16, 32, 1);
    test_groupnorm_param_grads(ctx, 2, 64, 16, 16, 32);  // channel-major walk: w, b summed over the samples
    test_groupnorm_pair(ctx, 2, 32, 8, 8, 8, 2, 1);       // two terms before the norm's: the walk adds both
    test_groupnorm_pair(ctx, 2, 32, 8, 8, 8, 3, 1);       // three: the first two added when the third comes
    test_groupnorm_pair(ctx, 2, 32, 5, 5, 8, 2, 0);       // rows not whole quads: the norm adds them first
    test_groupnorm_regs(ctx, 2, 64, 8, 8, 32, 1, 0, 1);        // 2 channels of 1 quad a lane: forward and backward
    test_groupnorm_regs(ctx, 2, 96, 32, 32, 32, 0, 0, 1);      // 3 channels of 16 quads a lane: the backward only
    test_groupnorm_regs(ctx, 2, 32, 32, 32, 8, 0, 0, 1);       // 4 channels of 16 quads: a long run's (none said)
    test_groupnorm_regs(ctx, 2, 32, 32, 32, 8, 0, 20, 0);      // ... not a short run's
    test_groupnorm_regs(ctx, 2, 32, 32, 32, 8, 0, 4096, 1);    // ... a long one's
    test_resample(ctx, 1, 2, 3, 3, 5);
    test_resample(ctx, 1, 1, 2, 1, 1);
    test_resample(ctx, 0, 2, 3, 4, 6);
    test_resample(ctx, 0, 1, 2, 2, 2);
    test_resample(ctx, 1, 2, 3, 5, 9);    // output rows of 18: one workgroup row per output row (CPU devices)
    test_resample(ctx, 0, 2, 3, 6, 34);   // pooled rows of 17
    test_resample(ctx, 1, 1, 2, 3, 36);   // rows of 72: two 64-wide workgroups, the second ragged
    test_resample(ctx, 1, 3, 5, 4, 8);    // quads both ways (CPU devices): up to rows of 16, down to 8
    test_resample(ctx, 0, 3, 5, 6, 16);   // down to rows of 8, up to 16
    test_resample(ctx, 0, 2, 3, 4, 8);    // down to rows of 4 (one quad a row), up to 8
    test_resample(ctx, 1, 2, 3, 2, 6);    // up to rows of 12 in quads; its backward's rows of 6 not
    test_resample_old(ctx, 0, 2, 3, 4, 16);  // avgpool2x's backward in quads of x (rows of 16 from 8)
    test_resample_old(ctx, 0, 2, 3, 4, 12);  // rows of 12 from 6: the quad walk of y, x read by elements
    test_resample_old(ctx, 1, 2, 3, 4, 8);   // upsample2x's backward (rows of 8 from 16)
    test_resample_old(ctx, 0, 1, 2, 2, 6);   // rows of 6: no quads, the separate add
    for (int one = 0; one < 2; one++) {
        test_modulate(ctx, 2, 5, 7, 1, 1, (float)one);
        test_modulate(ctx, 2, 5, 7, 0, 1, (float)one);
        test_modulate(ctx, 2, 5, 7, 1, 0, (float)one);
    }
    test_modulate(ctx, 3, 64, 40, 1, 1, 1.0f);
    test_dropout(ctx, 1003, 0.3f);
    test_dropout(ctx, 4096, 0.13f);  // EDM CIFAR-10's dropout
    for (int e = 0; e < 2; e++) {
        test_timestep_embedding(ctx, 8, e);
        test_timestep_embedding(ctx, 128, e);
    }
    test_timestep_embedding(ctx, 256, 0);  // DiT's frequency_embedding_size
    test_fourier_embedding(ctx, 4);
    test_fourier_embedding(ctx, 64);
    test_errors(ctx);
    return t_close(ctx);
}
