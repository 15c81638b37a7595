// test_ref_nn.c: checks the backward of every reference in ref_nn.c against
// central finite differences of its forward (L = sum(w * y), h = 1e-6), plus
// forward spot checks with hand-computed values.
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "ref_nn.h"

#define FD_H 1e-6
#define FD_TOL 1e-6
#define FWD_TOL 1e-12
#define MAXN 1024
#define PI 3.141592653589793238463

static int passed, failed;

static void check(const char *name, double err, double tol) {
    int ok = err < tol;  // NaN fails
    printf("%s  %-60s max_rel_err=%.3e\n", ok ? "PASS" : "FAIL", name, err);
    if (ok) passed++; else failed++;
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
static unsigned long long rs = 0x9E3779B97F4A7C15ULL;
static double rnd(void) {
    rs ^= rs >> 12; rs ^= rs << 25; rs ^= rs >> 27;
    return (double)((rs * 2685821657736338717ULL) >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}
static void fill(double *x, long n) { for (long i = 0; i < n; i++) x[i] = rnd(); }
static void poison(double *x, long n) { for (long i = 0; i < n; i++) x[i] = 1e3; }

// ----------------------------------------------------------------------------
// one context for every op; L = sum_i w_i * y_i

enum { K_GN, K_GNS, K_UP, K_POOL, K_MOD, K_DROP };

typedef struct {
    int kind;
    int N, C, S, groups; double eps;  // group norm (S = H*W for resampling, P = N*C)
    int H, W;                         // resampling input size
    int T, D; double one;             // modulate
    double p; const unsigned char *keep;  // dropout
    double *in[3];
    double y[MAXN], w[MAXN]; long ny;
} Ctx;

static double loss(Ctx *c) {
    switch (c->kind) {
    case K_GN: ref_groupnorm_fwd(c->y, NULL, NULL, c->in[0], c->in[1], c->in[2], c->N, c->C, c->S, c->groups, c->eps); break;
    case K_GNS: ref_groupnorm_silu_fwd(c->y, c->in[0], c->in[1], c->in[2], c->N, c->C, c->S, c->groups, c->eps); break;
    case K_UP: ref_upsample2x_fwd(c->y, c->in[0], (long)c->N * c->C, c->H, c->W); break;
    case K_POOL: ref_avgpool2x_fwd(c->y, c->in[0], (long)c->N * c->C, c->H, c->W); break;
    case K_MOD: ref_modulate_fwd(c->y, c->in[0], c->in[1], c->in[2], c->N, c->T, c->D, c->one); break;
    case K_DROP: ref_dropout_fwd(c->y, c->in[0], c->keep, c->ny, c->p); break;
    }
    double s = 0.0;
    for (long i = 0; i < c->ny; i++) s += c->w[i] * c->y[i];
    return s;
}

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

static double worst(double a, double b) { return a > b || a != a ? a : b; }

// ----------------------------------------------------------------------------
// gradient checks

// act 1: silu(groupnorm(x)), the fused vkd_groupnorm_silu
static void grad_gn(int N, int C, int H, int W, int groups, int affine, int act) {
    Ctx c = {0};
    static double x[MAXN], w[64], b[64], dx[MAXN], dw[64], db[64];
    c.kind = act ? K_GNS : K_GN; c.N = N; c.C = C; c.S = H * W; c.groups = groups; c.eps = 1e-5;
    long n = (long)N * C * c.S;
    c.ny = n;
    fill(x, n); fill(w, C); fill(b, C); fill(c.w, n);
    for (long i = 0; i < n; i++) x[i] = 2.0 * x[i] + 0.5;
    c.in[0] = x; c.in[1] = affine ? w : NULL; c.in[2] = affine ? b : NULL;
    poison(dx, n); poison(dw, C); poison(db, C);
    if (act)
        ref_groupnorm_silu_bwd(dx, affine ? dw : NULL, affine ? db : NULL, c.w, x, c.in[1], c.in[2], N, C, c.S, groups,
                               c.eps);
    else
        ref_groupnorm_bwd(dx, affine ? dw : NULL, affine ? db : NULL, c.w, x, c.in[1], N, C, c.S, groups, c.eps);
    double e = fd_err(&c, x, n, dx);
    if (affine) e = worst(e, worst(fd_err(&c, w, C, dw), fd_err(&c, b, C, db)));
    char name[128];
    snprintf(name, sizeof name, "groupnorm%s (%d,%d,%d,%d) groups=%d %s", act ? "+silu" : "", N, C, H, W, groups,
             affine ? "affine (dx,dw,db)" : "no affine (dx)");
    check(name, e, FD_TOL);
}

static void grad_resample(int up, int N, int C, int H, int W) {
    Ctx c = {0};
    static double x[MAXN], dx[MAXN];
    c.kind = up ? K_UP : K_POOL; c.N = N; c.C = C; c.H = H; c.W = W;
    long n = (long)N * C * H * W;
    c.ny = up ? 4 * n : n / 4;
    fill(x, n); fill(c.w, c.ny);
    c.in[0] = x;
    poison(dx, n);
    if (up) ref_upsample2x_bwd(dx, c.w, (long)N * C, H, W);
    else ref_avgpool2x_bwd(dx, c.w, (long)N * C, H, W);
    char name[128];
    snprintf(name, sizeof name, "%s (%d,%d,%d,%d)", up ? "upsample2x" : "avgpool2x", N, C, H, W);
    check(name, fd_err(&c, x, n, dx), FD_TOL);
}

static void grad_modulate(int N, int T, int D, int with_shift, int with_scale, double one) {
    Ctx c = {0};
    static double x[MAXN], sh[MAXN], sc[MAXN], dx[MAXN], dsh[MAXN], dsc[MAXN];
    c.kind = K_MOD; c.N = N; c.T = T; c.D = D; c.one = one;
    long n = (long)N * T * D, m = (long)N * D;
    c.ny = n;
    fill(x, n); fill(sh, m); fill(sc, m); fill(c.w, n);
    c.in[0] = x; c.in[1] = with_shift ? sh : NULL; c.in[2] = with_scale ? sc : NULL;
    poison(dx, n); poison(dsh, m); poison(dsc, m);
    ref_modulate_bwd(dx, with_shift ? dsh : NULL, with_scale ? dsc : NULL, c.w, x, c.in[2], N, T, D, one);
    double e = fd_err(&c, x, n, dx);
    if (with_shift) e = worst(e, fd_err(&c, sh, m, dsh));
    if (with_scale) e = worst(e, fd_err(&c, sc, m, dsc));
    char name[128];
    snprintf(name, sizeof name, "modulate (%d,%d,%d) %s%s one=%g", N, T, D, with_shift ? "shift " : "",
             with_scale ? "scale" : "", one);
    check(name, e, FD_TOL);
}

static void grad_dropout(double p) {
    Ctx c = {0};
    static double x[MAXN], dx[MAXN];
    static unsigned char keep[MAXN];
    c.kind = K_DROP; c.p = p; c.ny = 100; c.keep = keep;
    fill(x, c.ny); fill(c.w, c.ny);
    for (long i = 0; i < c.ny; i++) keep[i] = 0.5 * (rnd() + 1.0) >= p;
    c.in[0] = x;
    poison(dx, c.ny);
    ref_dropout_bwd(dx, c.w, keep, c.ny, p);
    char name[64];
    snprintf(name, sizeof name, "dropout (100) p=%g, fixed mask", p);
    check(name, fd_err(&c, x, c.ny, dx), FD_TOL);
}

// ----------------------------------------------------------------------------
// forward spot checks against hand-computed values

static void fwd_checks(void) {
    double y[64];
    {  // group norm: x (1, 2, 2) = [[1, 3], [5, 7]]; 1 group: mean 4, var 5; 2 groups: mean 2 / 6, var 1
        const double x[4] = {1, 3, 5, 7}, w[2] = {2, -1}, b[2] = {0.5, 1};
        double mean[2], rstd[2], want[8];
        double r1 = 1.0 / sqrt(5.0 + 1e-5), r2 = 1.0 / sqrt(1.0 + 1e-5);
        for (int i = 0; i < 4; i++) want[i] = (x[i] - 4.0) * r1 * w[i / 2] + b[i / 2];
        for (int i = 0; i < 4; i++) want[4 + i] = (i % 2 ? 1.0 : -1.0) * r2;
        ref_groupnorm_fwd(y, mean, rstd, x, w, b, 1, 2, 2, 1, 1e-5);
        double e = worst(max_rel(y, want, 4), worst(rel_err(mean[0], 4.0), rel_err(rstd[0], r1)));
        ref_groupnorm_fwd(y + 4, mean, rstd, x, NULL, NULL, 1, 2, 2, 2, 1e-5);
        e = worst(e, worst(max_rel(y + 4, want + 4, 4), worst(rel_err(mean[1], 6.0), rel_err(rstd[1], r2))));
        check("fwd groupnorm (1,2,2) 1 group affine, 2 groups plain, stats", e, FWD_TOL);
    }
    {  // resampling: a 2x2 plane
        const double x[4] = {1, 2, 3, 4};
        const double up[16] = {1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4};
        ref_upsample2x_fwd(y, x, 1, 2, 2);
        double e = max_rel(y, up, 16);
        ref_avgpool2x_fwd(y, up, 1, 4, 4);
        e = worst(e, max_rel(y, x, 4));
        ref_avgpool2x_fwd(y, x, 1, 2, 2);
        e = worst(e, rel_err(y[0], 2.5));
        check("fwd upsample2x / avgpool2x 2x2 literal", e, FWD_TOL);
    }
    {  // embeddings: dim 4. endpoint 1: f = [1, 1e-4]; endpoint 0 (DiT): f = [1, 1e-2]
        const double t[1] = {2.0};
        const double want_e[4] = {cos(2.0), cos(2e-4), sin(2.0), sin(2e-4)};
        const double want_d[4] = {cos(2.0), cos(2e-2), sin(2.0), sin(2e-2)};
        ref_timestep_embedding(y, t, 1, 4, 10000, 1);
        double e = max_rel(y, want_e, 4);
        ref_timestep_embedding(y, t, 1, 4, 10000, 0);
        e = worst(e, max_rel(y, want_d, 4));
        const double f[2] = {0.25, -1.0};
        const double want_f[4] = {cos(PI), cos(-4 * PI), sin(PI), sin(-4 * PI)};
        ref_fourier_embedding(y, t, f, 1, 2);
        e = worst(e, max_rel(y, want_f, 4));
        check("fwd timestep embedding dim 4 endpoint 0/1, fourier", e, FWD_TOL);
    }
    {  // modulate: x (1, 2, 2), shift [1, 2], scale [0.5, -1]
        const double x[4] = {1, 2, 3, 4}, sh[2] = {1, 2}, sc[2] = {0.5, -1};
        const double want1[4] = {2.5, 2, 5.5, 2}, want0[4] = {0.5, -2, 1.5, -4};
        ref_modulate_fwd(y, x, sh, sc, 1, 2, 2, 1.0);
        double e = max_rel(y, want1, 4);
        ref_modulate_fwd(y, x, NULL, sc, 1, 2, 2, 0.0);
        e = worst(e, max_rel(y, want0, 4));
        check("fwd modulate one=1 shift+scale, gate one=0", e, FWD_TOL);
    }
    {  // dropout p = 0.75: kept elements are multiplied by 4
        const double x[4] = {1, 2, 3, 4}, want[4] = {4, 0, 0, 16};
        const unsigned char keep[4] = {1, 0, 0, 1};
        ref_dropout_fwd(y, x, keep, 4, 0.75);
        check("fwd dropout p=0.75", max_rel(y, want, 4), FWD_TOL);
    }
}

int main(void) {
    fwd_checks();
    for (int affine = 0; affine < 2; affine++) {
        grad_gn(2, 4, 3, 3, 1, affine, 0);
        grad_gn(2, 4, 3, 3, 2, affine, 0);
        grad_gn(2, 4, 3, 3, 4, affine, 0);
        grad_gn(1, 6, 1, 5, 3, affine, 0);
        grad_gn(3, 2, 1, 1, 1, affine, 0);
        grad_gn(2, 4, 3, 3, 2, affine, 1);
        grad_gn(1, 6, 1, 5, 3, affine, 1);
    }
    grad_resample(1, 2, 3, 3, 2);
    grad_resample(1, 1, 1, 1, 1);
    grad_resample(0, 2, 3, 4, 6);
    grad_resample(0, 1, 1, 2, 2);
    for (int one = 0; one < 2; one++) {
        grad_modulate(2, 3, 5, 1, 1, one);
        grad_modulate(2, 3, 5, 0, 1, one);
        grad_modulate(2, 3, 5, 1, 0, one);
    }
    grad_dropout(0.3);
    grad_dropout(0.9);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
