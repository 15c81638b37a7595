// test_ref_grad.c: checks every reference backward in ref_ops.c against central
// finite differences of the reference forward, plus forward spot checks with
// hand-computed values, Adam/AdamW (2 steps) and EMA.
// build: cc -std=c11 -O2 -Wall -Wextra -Itests/ref tests/test_ref_grad.c tests/ref/ref_ops.c -lm
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "ref_ops.h"

#define FD_H 1e-6
#define FD_TOL 1e-6
#define FWD_TOL 1e-12
#define MAXN 256

typedef struct { int passed, failed; } Tally;

static void check(Tally *t, const char *name, double err, double tol) {
    int ok = err < tol; // NaN fails
    printf("%s  %-52s max_rel_err=%.3e\n", ok ? "PASS" : "FAIL", name, err);
    if (ok) t->passed++; else t->failed++;
}

static double rel_err(double a, double f) {
    double d = fabs(a) > fabs(f) ? fabs(a) : fabs(f);
    return fabs(a - f) / (d > 1.0 ? d : 1.0);
}

static double max_rel(const double *a, const double *b, long n) {
    double e = 0.0;
    for (long i = 0; i < n; i++) { double r = rel_err(a[i], b[i]); if (!(r <= e)) e = r; }
    return e;
}

// xorshift64* -> uniform in [-1, 1)
static double rnd(unsigned long long *s) {
    *s ^= *s >> 12; *s ^= *s << 25; *s ^= *s >> 27;
    return (double)((*s * 2685821657736338717ULL) >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}
static void fill(double *x, long n, unsigned long long *s) { for (long i = 0; i < n; i++) x[i] = rnd(s); }
static void poison(double *x, long n) { for (long i = 0; i < n; i++) x[i] = 1e3; }

// ----------------------------------------------------------------------------
// one context for all differentiable ops; L = sum_i w_i * y_i (mse: L = w0 * loss)

enum { K_MATMUL, K_BINARY, K_SCALE, K_UNARY, K_REDUCE, K_SOFTMAX, K_LAYERNORM, K_MSE };

typedef struct {
    int kind;
    int batch, M, N, K, ta, tb, bcast, bias_rows; // matmul
    long n, inner, bc; int op; double alpha;      // elementwise
    int rows, cols; double eps;                   // row ops
    double *in[3];                                // op inputs (NULL = absent)
    double y[MAXN], w[MAXN]; long ny;             // output and upstream weights
} Ctx;

static double loss(Ctx *c) {
    switch (c->kind) {
    case K_MATMUL: ref_matmul_fwd(c->y, c->in[0], c->in[1], c->in[2], c->batch, c->M, c->N, c->K,
                                  c->ta, c->tb, c->bcast, c->bias_rows); break;
    case K_BINARY: ref_binary_fwd(c->y, c->in[0], c->in[1], c->n, c->inner, c->bc, c->op); break;
    case K_SCALE: ref_scale_fwd(c->y, c->in[0], c->n, c->alpha); break;
    case K_UNARY: ref_unary_fwd(c->y, c->in[0], c->n, c->op); break;
    case K_REDUCE: ref_reduce_fwd(c->y, c->in[0], c->rows, c->cols, c->op); break;
    case K_SOFTMAX: ref_softmax_fwd(c->y, c->in[0], c->rows, c->cols); break;
    case K_LAYERNORM: ref_layernorm_fwd(c->y, NULL, NULL, c->in[0], c->in[1], c->in[2], c->rows, c->cols, c->eps); break;
    case K_MSE: return c->w[0] * ref_mse_fwd(c->in[0], c->in[1], c->n);
    }
    double s = 0.0;
    for (long i = 0; i < c->ny; i++) s += c->w[i] * c->y[i];
    return s;
}

// max relative error between analytic grad (n) and central differences of L w.r.t. x (n)
static double fd_err(Ctx *c, double *x, long n, const double *grad) {
    double e = 0.0;
    for (long i = 0; i < n; i++) {
        double save = x[i];
        x[i] = save + FD_H; double lp = loss(c);
        x[i] = save - FD_H; double lm = loss(c);
        x[i] = save;
        double r = rel_err(grad[i], (lp - lm) / (2.0 * FD_H));
        if (!(r <= e)) e = r;
    }
    return e;
}

// ----------------------------------------------------------------------------
// gradient checks

static void grad_matmul(Tally *t, unsigned long long *s, int ta, int tb, int batch, int bcast, int biasmode) {
    Ctx c = {0};
    double A[MAXN], B[MAXN], bias[MAXN], dA[MAXN], dB[MAXN], dbias[MAXN];
    c.kind = K_MATMUL; c.batch = batch; c.M = 3; c.N = 4; c.K = 5; c.ta = ta; c.tb = tb;
    c.bcast = bcast; c.bias_rows = biasmode == 2;
    long na = (long)batch * c.M * c.K, nb = (long)(bcast ? 1 : batch) * c.K * c.N, nbias = c.bias_rows ? c.M : c.N;
    c.ny = (long)batch * c.M * c.N;
    fill(A, na, s); fill(B, nb, s); fill(bias, nbias, s); fill(c.w, c.ny, s);
    c.in[0] = A; c.in[1] = B; c.in[2] = biasmode ? bias : NULL;
    poison(dA, na); poison(dB, nb); poison(dbias, nbias);
    ref_matmul_bwd(dA, dB, biasmode ? dbias : NULL, c.w, A, B, batch, c.M, c.N, c.K, ta, tb, bcast, c.bias_rows);
    double e = fd_err(&c, A, na, dA), eb = fd_err(&c, B, nb, dB);
    if (eb > e) e = eb;
    if (biasmode) { eb = fd_err(&c, bias, nbias, dbias); if (eb > e) e = eb; }
    char name[128];
    snprintf(name, sizeof name, "matmul ta=%d tb=%d batch=%d bcast_b=%d bias=%s", ta, tb, batch, bcast,
             biasmode == 0 ? "none" : biasmode == 1 ? "cols" : "rows");
    check(t, name, e, FD_TOL);
}

static void grad_binary(Tally *t, unsigned long long *s, const char *shape, long n, long inner, long bc, int op) {
    Ctx c = {0};
    double a[MAXN], b[MAXN], da[MAXN], db[MAXN];
    c.kind = K_BINARY; c.n = c.ny = n; c.inner = inner; c.bc = bc; c.op = op;
    fill(a, n, s); fill(b, bc, s); fill(c.w, n, s);
    c.in[0] = a; c.in[1] = b;
    poison(da, n); poison(db, bc);
    ref_binary_bwd(da, db, c.w, a, b, n, inner, bc, op);
    double e = fd_err(&c, a, n, da), eb = fd_err(&c, b, bc, db);
    char name[128];
    snprintf(name, sizeof name, "binary %s %s (n=%ld inner=%ld bc=%ld)", op == REF_ADD ? "add" : "mul", shape, n, inner, bc);
    check(t, name, e > eb ? e : eb, FD_TOL);
}

static void grad_scale(Tally *t, unsigned long long *s) {
    Ctx c = {0};
    double x[MAXN], dx[MAXN];
    c.kind = K_SCALE; c.n = c.ny = 10; c.alpha = -1.7;
    fill(x, c.n, s); fill(c.w, c.n, s); c.in[0] = x;
    poison(dx, c.n);
    ref_scale_bwd(dx, c.w, c.n, c.alpha);
    check(t, "scale alpha=-1.7", fd_err(&c, x, c.n, dx), FD_TOL);
}

static void grad_unary(Tally *t, unsigned long long *s, int op, const char *name) {
    Ctx c = {0};
    double x[MAXN], dx[MAXN];
    c.kind = K_UNARY; c.n = c.ny = 40; c.op = op;
    for (long i = 0; i < c.n; i++) {
        double u = 4.0 * rnd(s); // [-4, 4); keep |x| >= 0.1 so ReLU's kink is never straddled
        x[i] = u >= 0 ? u + 0.1 : u - 0.1;
        if (op == REF_LOG || op == REF_SQRT) x[i] = fabs(x[i]);  // their domain
    }
    fill(c.w, c.n, s); c.in[0] = x;
    poison(dx, c.n);
    ref_unary_bwd(dx, c.w, x, c.n, op);
    check(t, name, fd_err(&c, x, c.n, dx), FD_TOL);
}

static void grad_rowop(Tally *t, unsigned long long *s, int kind, int mean_flag, int affine, const char *name) {
    Ctx c = {0};
    double x[MAXN], w[MAXN], b[MAXN], dx[MAXN], dw[MAXN], db[MAXN];
    c.kind = kind; c.rows = 3; c.cols = 7; c.op = mean_flag; c.eps = 1e-5;
    long nx = (long)c.rows * c.cols;
    c.ny = kind == K_REDUCE ? c.rows : nx;
    fill(x, nx, s); fill(w, c.cols, s); fill(b, c.cols, s); fill(c.w, c.ny, s);
    for (long i = 0; i < nx; i++) x[i] *= 3.0;
    c.in[0] = x;
    poison(dx, nx); poison(dw, c.cols); poison(db, c.cols);
    double e = 0.0, e2;
    if (kind == K_REDUCE) {
        ref_reduce_bwd(dx, c.w, c.rows, c.cols, mean_flag);
    } else if (kind == K_SOFTMAX) {
        double y[MAXN];
        ref_softmax_fwd(y, x, c.rows, c.cols);
        ref_softmax_bwd(dx, c.w, y, c.rows, c.cols);
    } else {
        c.in[1] = affine ? w : NULL; c.in[2] = affine ? b : NULL;
        ref_layernorm_bwd(dx, affine ? dw : NULL, affine ? db : NULL, c.w, x, c.in[1], c.rows, c.cols, c.eps);
        if (affine) {
            e = fd_err(&c, w, c.cols, dw);
            e2 = fd_err(&c, b, c.cols, db); if (e2 > e) e = e2;
        }
    }
    e2 = fd_err(&c, x, nx, dx); if (e2 > e) e = e2;
    check(t, name, e, FD_TOL);
}

static void grad_mse(Tally *t, unsigned long long *s) {
    Ctx c = {0};
    double a[MAXN], b[MAXN], da[MAXN], db[MAXN];
    c.kind = K_MSE; c.n = 13; c.w[0] = 0.37;
    fill(a, c.n, s); fill(b, c.n, s);
    c.in[0] = a; c.in[1] = b;
    poison(da, c.n); poison(db, c.n);
    ref_mse_bwd(da, db, c.w[0], a, b, c.n);
    double e = fd_err(&c, a, c.n, da), e2 = fd_err(&c, b, c.n, db);
    check(t, "mse (dloss=0.37)", e > e2 ? e : e2, FD_TOL);
}

// ----------------------------------------------------------------------------
// forward spot checks against hand-computed values

static void fwd_checks(Tally *t) {
    double y[16], e;
    { // matmul: A=[1 2;3 4], B=[5 6;7 8] -> AB=[19 22;43 50]; stored transposed when ta/tb
        const double A[4] = {1, 2, 3, 4}, At[4] = {1, 3, 2, 4}, B[4] = {5, 6, 7, 8}, Bt[4] = {5, 7, 6, 8};
        const double bias[2] = {1, -1}, want_cols[4] = {20, 21, 44, 49}, want_rows[4] = {20, 23, 42, 49};
        e = 0.0;
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                ref_matmul_fwd(y, ta ? At : A, tb ? Bt : B, bias, 1, 2, 2, 2, ta, tb, 0, 0);
                double r = max_rel(y, want_cols, 4); if (r > e) e = r;
                ref_matmul_fwd(y, ta ? At : A, tb ? Bt : B, bias, 1, 2, 2, 2, ta, tb, 0, 1);
                r = max_rel(y, want_rows, 4); if (r > e) e = r;
            }
        check(t, "fwd matmul 2x2 literal, 4 ta/tb combos, bias cols/rows", e, FWD_TOL);
        // batch 2: second A is the identity; bcast_b -> C1 = B, else C1 = B1
        const double A2[8] = {1, 2, 3, 4, 1, 0, 0, 1}, B2[8] = {5, 6, 7, 8, -1, -2, -3, -4};
        const double w_bc[8] = {19, 22, 43, 50, 5, 6, 7, 8}, w_nb[8] = {19, 22, 43, 50, -1, -2, -3, -4};
        ref_matmul_fwd(y, A2, B2, NULL, 2, 2, 2, 2, 0, 0, 1, 0);
        e = max_rel(y, w_bc, 8);
        ref_matmul_fwd(y, A2, B2, NULL, 2, 2, 2, 2, 0, 0, 0, 0);
        double r = max_rel(y, w_nb, 8);
        check(t, "fwd matmul batch=2 with/without bcast_b", e > r ? e : r, FWD_TOL);
    }
    { // binary: a (N=2, C=3, HW=2) = 0..11, b (C) = {100,200,300}
        double a[12], want[24];
        const double b[3] = {100, 200, 300}, sc[1] = {-2};
        for (int i = 0; i < 12; i++) a[i] = i;
        for (int nn = 0; nn < 2; nn++)
            for (int ch = 0; ch < 3; ch++)
                for (int hw = 0; hw < 2; hw++) {
                    int i = (nn * 3 + ch) * 2 + hw;
                    want[i] = i + b[ch];
                    want[12 + i] = i * b[ch];
                }
        ref_binary_fwd(y, a, b, 12, 2, 3, REF_ADD); e = max_rel(y, want, 12);
        ref_binary_fwd(y, a, b, 12, 2, 3, REF_MUL); double r = max_rel(y, want + 12, 12); if (r > e) e = r;
        ref_binary_fwd(y, a, sc, 12, 1, 1, REF_MUL);
        for (int i = 0; i < 12; i++) { r = rel_err(y[i], -2.0 * i); if (r > e) e = r; }
        check(t, "fwd binary per-channel add/mul, scalar mul", e, FWD_TOL);
    }
    { // activations (values from the plain formulas / PyTorch)
        const double x[7] = {1, -2, 1, -2, -1, 0, 2};
        const double want[7] = {0.7310585786300049, -0.2384058440442351, 0.8411919906082768,
                                -0.04540230591222494, 0, 0, 2};
        ref_unary_fwd(y, x, 2, REF_SILU);
        ref_unary_fwd(y + 2, x + 2, 2, REF_GELU);
        ref_unary_fwd(y + 4, x + 4, 3, REF_RELU);
        check(t, "fwd silu(1,-2) gelu_tanh(1,-2) relu(-1,0,2)", max_rel(y, want, 7), FWD_TOL);
    }
    { // reduce, softmax (incl. huge logits), layer norm, mse
        const double x[6] = {1, 2, 3, 4, 5, 6}, want_r[4] = {6, 15, 2, 5};
        ref_reduce_fwd(y, x, 2, 3, 0); ref_reduce_fwd(y + 2, x, 2, 3, 1);
        check(t, "fwd reduce sum/mean", max_rel(y, want_r, 4), FWD_TOL);
        const double xs[5] = {1, 2, 3, 1000, 1000};
        const double want_s[5] = {0.09003057317038046, 0.24472847105479767, 0.6652409557748219, 0.5, 0.5};
        ref_softmax_fwd(y, xs, 1, 3); ref_softmax_fwd(y + 3, xs + 3, 1, 2);
        check(t, "fwd softmax [1,2,3] and [1000,1000]", max_rel(y, want_s, 5), FWD_TOL);
        double mean[2], rstd[2], want_l[8];
        const double xl[8] = {1, 2, 3, 4, 1, 2, 3, 4}, wl[4] = {1, 2, 3, 4}, bl[4] = {0, 0, 0, 1};
        double rs = 1.0 / sqrt(1.25 + 1e-5); // mean 2.5, biased var 1.25
        for (int i = 0; i < 4; i++) { want_l[i] = (xl[i] - 2.5) * rs; want_l[4 + i] = want_l[i] * wl[i] + bl[i]; }
        ref_layernorm_fwd(y, mean, rstd, xl, NULL, NULL, 1, 4, 1e-5);
        ref_layernorm_fwd(y + 4, mean + 1, rstd + 1, xl + 4, wl, bl, 1, 4, 1e-5);
        e = max_rel(y, want_l, 8);
        const double want_st[4] = {2.5, 2.5, rs, rs}, got_st[4] = {mean[0], mean[1], rstd[0], rstd[1]};
        double r = max_rel(got_st, want_st, 4);
        check(t, "fwd layernorm [1,2,3,4] plain/affine, mean, rstd", e > r ? e : r, FWD_TOL);
        const double ma[2] = {1, 2}, mb[2] = {0, 4};
        check(t, "fwd mse([1,2],[0,4]) = 2.5", rel_err(ref_mse_fwd(ma, mb, 2), 2.5), FWD_TOL);
    }
}

// ----------------------------------------------------------------------------
// optimizer checks (expected values computed independently with plain scalar formulas)

static void optim_checks(Tally *t) {
    const double g1[3] = {0.5, -0.1, 0.0}, g2[3] = {-0.25, 0.3, 1.0};
    const double want[3][2][3] = { // [Adam wd=0, Adam wd=0.1, AdamW wd=0.1][after step 1, 2][elem]
        {{0.900000002, -0.40000000999999896, 2.0}, {0.8733662987078463, -0.4494189911200654, 1.925586318695407}},
        {{0.9000000016666666, -0.40000000666666624, 1.9000000049999997},
         {0.8544413674617625, -0.4309923650216413, 1.81551420467122}},
        {{0.890000002, -0.39500000999999896, 1.98}, {0.8544662986878463, -0.44046899102006537, 1.885786318695407}}};
    const char *names[3] = {"adam wd=0 lr=0.1 2 steps", "adam wd=0.1 (L2) 2 steps", "adamw wd=0.1 2 steps"};
    const double wds[3] = {0.0, 0.1, 0.1};
    for (int k = 0; k < 3; k++) {
        double p[3] = {1.0, -0.5, 2.0}, m[3] = {0}, v[3] = {0};
        ref_adam_step(p, m, v, g1, 3, 0.1, 0.9, 0.999, 1e-8, wds[k], k == 2, 1);
        double e = max_rel(p, want[k][0], 3);
        if (k == 0) { // t=1, no wd: update is lr*g/(|g|+eps) ~ lr*sign(g)
            double r = rel_err(p[0], 1.0 - 0.1), r2 = rel_err(p[1], -0.5 + 0.1);
            if (r > 1e-7 || r2 > 1e-7 || p[2] != 2.0) e = 1.0;
        }
        ref_adam_step(p, m, v, g2, 3, 0.1, 0.9, 0.999, 1e-8, wds[k], k == 2, 2);
        double r = max_rel(p, want[k][1], 3);
        check(t, names[k], e > r ? e : r, FWD_TOL);
    }
    double ema[2] = {1.0, 0.0};
    const double p[2] = {0.0, 1.0}, want_e[2] = {0.81, 0.19};
    ref_ema_update(ema, p, 2, 0.9);
    ref_ema_update(ema, p, 2, 0.9);
    check(t, "ema beta=0.9 2 steps", max_rel(ema, want_e, 2), FWD_TOL);
}

int main(void) {
    Tally t = {0, 0};
    unsigned long long s = 0x9E3779B97F4A7C15ULL;
    fwd_checks(&t);
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (int bm = 0; bm < 3; bm++) {
                grad_matmul(&t, &s, ta, tb, 1, 0, bm);
                grad_matmul(&t, &s, ta, tb, 2, 0, bm);
                grad_matmul(&t, &s, ta, tb, 2, 1, bm);
            }
    for (int op = REF_ADD; op <= REF_MUL; op++) {
        grad_binary(&t, &s, "same-shape", 12, 1, 12, op);
        grad_binary(&t, &s, "per-channel (2,3,4)+(3)", 24, 4, 3, op);
        grad_binary(&t, &s, "row-bcast (4,5)+(5)", 20, 1, 5, op);
        grad_binary(&t, &s, "scalar", 12, 1, 1, op);
    }
    grad_scale(&t, &s);
    grad_unary(&t, &s, REF_SILU, "unary silu");
    grad_unary(&t, &s, REF_GELU, "unary gelu (tanh)");
    grad_unary(&t, &s, REF_RELU, "unary relu");
    grad_unary(&t, &s, REF_EXP, "unary exp");
    grad_unary(&t, &s, REF_LOG, "unary log");
    grad_unary(&t, &s, REF_SQRT, "unary sqrt");
    grad_unary(&t, &s, REF_SOFTPLUS, "unary softplus");
    grad_rowop(&t, &s, K_REDUCE, 0, 0, "reduce sum (3,7)");
    grad_rowop(&t, &s, K_REDUCE, 1, 0, "reduce mean (3,7)");
    grad_rowop(&t, &s, K_SOFTMAX, 0, 0, "softmax (3,7)");
    grad_rowop(&t, &s, K_LAYERNORM, 0, 0, "layernorm (3,7) no affine");
    grad_rowop(&t, &s, K_LAYERNORM, 0, 1, "layernorm (3,7) affine (dx,dw,db)");
    grad_mse(&t, &s);
    optim_checks(&t);
    printf("%d passed, %d failed\n", t.passed, t.failed);
    return t.failed ? 1 : 0;
}
