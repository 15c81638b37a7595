// test_ref_layout.c: checks the layout / attention references (ref_layout.c):
// every backward against central finite differences of its forward, and every
// forward against values written independently here (literal tables, einsum
// loops straight from the PyTorch code of EDM and DiT/timm).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ref_layout.h"

#define FD_H 1e-6
#define FD_TOL 1e-6
#define FWD_TOL 1e-12

static int passed, failed;

static void check(const char *name, double err, double tol) {
    int ok = err < tol;  // NaN fails
    printf("%s  %-60s max_rel_err=%.3e\n", ok ? "PASS" : "FAIL", name, err);
    if (ok) passed++;
    else failed++;
}

static double rel_err(double a, double f) {
    double d = fabs(a) > fabs(f) ? fabs(a) : fabs(f);
    return fabs(a - f) / (d > 1.0 ? d : 1.0);
}

static double max_rel(const double *a, const double *b, long n) {
    double e = 0.0;
    for (long i = 0; i < n; i++) {
        double r = rel_err(a[i], b[i]);
        if (!(r <= e)) e = r;
    }
    return e;
}

static unsigned long long seed = 0x9E3779B97F4A7C15ULL;
static double rnd(void) {  // xorshift64* -> [-1, 1)
    seed ^= seed >> 12, seed ^= seed << 25, seed ^= seed >> 27;
    return (double)((seed * 2685821657736338717ULL) >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}
static double *randv(long n) {
    double *x = malloc(sizeof *x * n);
    for (long i = 0; i < n; i++) x[i] = rnd();
    return x;
}

// ----------------------------------------------------------------------------
// One differentiable case: up to three inputs, L = sum w * y.
typedef struct {
    int kind;
    int ndim, perm[6], axis;
    long shape[6], start, len, bn;
    int B, T, d, N, C, HW, heads;
    double scale;
    double *in[3];
    long nin[3], ny;
    double *w, *y;
} Case;

enum { K_PERMUTE, K_SLICE, K_CONCAT, K_ATTN, K_EDM, K_DIT };

static void forward(Case *c) {
    switch (c->kind) {
    case K_PERMUTE: ref_permute_fwd(c->y, c->in[0], c->ndim, c->shape, c->perm); break;
    case K_SLICE: ref_slice_fwd(c->y, c->in[0], c->ndim, c->shape, c->axis, c->start, c->len); break;
    case K_CONCAT: ref_concat_fwd(c->y, c->in[0], c->in[1], c->ndim, c->shape, c->bn, c->axis); break;
    case K_ATTN: ref_attention_fwd(c->y, c->in[0], c->in[1], c->in[2], c->B, c->T, c->d, c->scale); break;
    case K_EDM: ref_attention_edm_fwd(c->y, c->in[0], c->N, c->C, c->HW, c->heads); break;
    case K_DIT: ref_attention_dit_fwd(c->y, c->in[0], c->N, c->T, c->C, c->heads); break;
    }
}

static void backward(Case *c, double *g[3]) {
    switch (c->kind) {
    case K_PERMUTE: ref_permute_bwd(g[0], c->w, c->ndim, c->shape, c->perm); break;
    case K_SLICE: ref_slice_bwd(g[0], c->w, c->ndim, c->shape, c->axis, c->start, c->len); break;
    case K_CONCAT: ref_concat_bwd(g[0], g[1], c->w, c->ndim, c->shape, c->bn, c->axis); break;
    case K_ATTN: ref_attention_bwd(g[0], g[1], g[2], c->w, c->in[0], c->in[1], c->in[2], c->B, c->T, c->d, c->scale); break;
    case K_EDM: ref_attention_edm_bwd(g[0], c->w, c->in[0], c->N, c->C, c->HW, c->heads); break;
    case K_DIT: ref_attention_dit_bwd(g[0], c->w, c->in[0], c->N, c->T, c->C, c->heads); break;
    }
}

static double loss(Case *c) {
    forward(c);
    double s = 0.0;
    for (long i = 0; i < c->ny; i++) s += c->w[i] * c->y[i];
    return s;
}

// Fills inputs and upstream weights, then checks every input's gradient.
static void fd_case(Case *c, const char *name) {
    c->y = malloc(sizeof *c->y * c->ny);
    c->w = randv(c->ny);
    double *g[3] = {NULL, NULL, NULL}, e = 0.0;
    for (int k = 0; k < 3; k++)
        if (c->nin[k]) {
            c->in[k] = randv(c->nin[k]);
            if (c->kind >= K_ATTN)  // spread the logits so the softmax is far from uniform
                for (long i = 0; i < c->nin[k]; i++) c->in[k][i] *= 2.0;
            g[k] = malloc(sizeof *g[k] * c->nin[k]);
            for (long i = 0; i < c->nin[k]; i++) g[k][i] = 1e3;  // poison: backward must overwrite
        }
    backward(c, g);
    for (int k = 0; k < 3; k++)
        for (long i = 0; i < c->nin[k]; i++) {
            double save = c->in[k][i];
            c->in[k][i] = save + FD_H;
            double lp = loss(c);
            c->in[k][i] = save - FD_H;
            double lm = loss(c);
            c->in[k][i] = save;
            double r = rel_err(g[k][i], (lp - lm) / (2 * FD_H));
            if (!(r <= e)) e = r;
        }
    check(name, e, FD_TOL);
    for (int k = 0; k < 3; k++) free(c->in[k]), free(g[k]);
    free(c->y), free(c->w);
}

static long prod(int n, const long *s) {
    long p = 1;
    for (int i = 0; i < n; i++) p *= s[i];
    return p;
}

static void grad_permute(const char *name, int ndim, const long *shape, const int *perm) {
    Case c = {.kind = K_PERMUTE, .ndim = ndim};
    memcpy(c.shape, shape, sizeof(long) * ndim);
    memcpy(c.perm, perm, sizeof(int) * ndim);
    c.nin[0] = c.ny = prod(ndim, shape);
    fd_case(&c, name);
}

static void grad_slice(const char *name, int ndim, const long *shape, int axis, long start, long len) {
    Case c = {.kind = K_SLICE, .ndim = ndim, .axis = axis, .start = start, .len = len};
    memcpy(c.shape, shape, sizeof(long) * ndim);
    c.nin[0] = prod(ndim, shape);
    c.ny = c.nin[0] / shape[axis] * len;
    fd_case(&c, name);
}

static void grad_concat(const char *name, int ndim, const long *ashape, long bn, int axis) {
    Case c = {.kind = K_CONCAT, .ndim = ndim, .axis = axis, .bn = bn};
    memcpy(c.shape, ashape, sizeof(long) * ndim);
    c.nin[0] = prod(ndim, ashape);
    c.nin[1] = c.nin[0] / ashape[axis] * bn;
    c.ny = c.nin[0] + c.nin[1];
    fd_case(&c, name);
}

// ----------------------------------------------------------------------------
// forward checks

static void fwd_layout(void) {
    {  // transpose of [[0 1 2] [3 4 5]]
        const double x[6] = {0, 1, 2, 3, 4, 5}, want[6] = {0, 3, 1, 4, 2, 5};
        double y[6];
        ref_permute_fwd(y, x, 2, (long[]){2, 3}, (int[]){1, 0});
        check("fwd permute (2,3) -> (3,2) literal", max_rel(y, want, 6), FWD_TOL);
    }
    {  // DiT unpatchify: einsum('nhwpqc->nchpwq'), written as the six loops
        enum { N = 2, H = 2, W = 3, P = 2, Q = 2, C = 3, NUM = N * H * W * P * Q * C };
        double x[NUM], y[NUM], want[NUM];
        for (int i = 0; i < NUM; i++) x[i] = i;
        for (int n = 0; n < N; n++)
            for (int h = 0; h < H; h++)
                for (int w = 0; w < W; w++)
                    for (int p = 0; p < P; p++)
                        for (int q = 0; q < Q; q++)
                            for (int c = 0; c < C; c++)
                                want[((((n * C + c) * H + h) * P + p) * W + w) * Q + q] =
                                    x[((((n * H + h) * W + w) * P + p) * Q + q) * C + c];
        ref_permute_fwd(y, x, 6, (long[]){N, H, W, P, Q, C}, (int[]){0, 5, 1, 3, 2, 4});
        check("fwd permute 6-D nhwpqc->nchpwq (loops)", max_rel(y, want, NUM), FWD_TOL);
    }
    {  // slice (2,4,2)[:, 1:3, :] of 0..15; concat of a (2,1,2) and b (2,2,2) along axis 1
        double x[16], y[8], cy[12];
        for (int i = 0; i < 16; i++) x[i] = i;
        const double want[8] = {2, 3, 4, 5, 10, 11, 12, 13};
        ref_slice_fwd(y, x, 3, (long[]){2, 4, 2}, 1, 1, 2);
        check("fwd slice (2,4,2)[:,1:3,:] literal", max_rel(y, want, 8), FWD_TOL);
        const double a[4] = {-1, -2, -3, -4}, wantc[12] = {-1, -2, 2, 3, 4, 5, -3, -4, 10, 11, 12, 13};
        ref_concat_fwd(cy, a, y, 3, (long[]){2, 1, 2}, 2, 1);
        check("fwd concat (2,1,2)+(2,2,2) axis 1 literal", max_rel(cy, wantc, 12), FWD_TOL);
        const double wantl[12] = {-1, -2, 2, 3, 4, 5, -3, -4, 10, 11, 12, 13};
        // the same numbers as rows: a (2,2) and b (2,4) along the last axis
        ref_concat_fwd(cy, a, y, 2, (long[]){2, 2}, 4, 1);
        check("fwd concat (2,2)+(2,4) last axis literal", max_rel(cy, wantl, 12), FWD_TOL);
    }
}

static void fwd_attention(void) {
    {  // equal keys: uniform weights, the output is the mean of v; one key: the output is v
        double q[6] = {1, -2, 3, 0.5, 7, -1}, k[6] = {0.3, 0.4, 0.3, 0.4, 0.3, 0.4}, v[6] = {1, 2, 3, 4, 5, 6}, o[6];
        const double want[6] = {3, 4, 3, 4, 3, 4};
        ref_attention_fwd(o, q, k, v, 1, 3, 2, 0.7);
        double e = max_rel(o, want, 6);
        ref_attention_fwd(o, q, k, v, 3, 1, 2, 0.7);
        double e2 = max_rel(o, v, 6);
        check("fwd attention equal keys = mean(v); one key = v", e > e2 ? e : e2, FWD_TOL);
    }
    {  // two keys e0, e1 and two equal queries (1, 2): scores 0.5 and 1, softmax by hand
        double q[4] = {1, 2, 1, 2}, k[4] = {1, 0, 0, 1}, v[4] = {10, 0, 0, 10}, o[4];
        double p0 = 1.0 / (1.0 + exp(0.5)), want[4] = {10 * p0, 10 * (1 - p0), 10 * p0, 10 * (1 - p0)};
        ref_attention_fwd(o, q, k, v, 1, 2, 2, 0.5);
        check("fwd attention two keys by hand", max_rel(o, want, 4), FWD_TOL);
    }
    {  // EDM straight from UNetBlock.forward / AttentionOp: einsum loops over the reshaped qkv
        enum { N = 2, C = 8, HW = 9 };
        for (int heads = 1; heads <= 2; heads++) {
            int B = N * heads, c = C / heads;
            double *qkv = randv((long)N * 3 * C * HW), out[N * C * HW], want[N * C * HW], w[HW * HW];
            for (int n = 0; n < B; n++) {
                const double *base = qkv + (long)n * c * 3 * HW;  // (c, 3, HW)
                for (int iq = 0; iq < HW; iq++) {
                    double mx = -INFINITY, s = 0;
                    for (int ik = 0; ik < HW; ik++) {
                        double acc = 0;
                        for (int ch = 0; ch < c; ch++)
                            acc += base[(ch * 3 + 0) * HW + iq] * (base[(ch * 3 + 1) * HW + ik] / sqrt((double)c));
                        w[iq * HW + ik] = acc;
                        if (acc > mx) mx = acc;
                    }
                    for (int ik = 0; ik < HW; ik++) s += (w[iq * HW + ik] = exp(w[iq * HW + ik] - mx));
                    for (int ik = 0; ik < HW; ik++) w[iq * HW + ik] /= s;
                }
                for (int ch = 0; ch < c; ch++)  // a = einsum('nqk,nck->ncq', w, v)
                    for (int iq = 0; iq < HW; iq++) {
                        double acc = 0;
                        for (int ik = 0; ik < HW; ik++) acc += w[iq * HW + ik] * base[(ch * 3 + 2) * HW + ik];
                        want[((long)n * c + ch) * HW + iq] = acc;
                    }
            }
            ref_attention_edm_fwd(out, qkv, N, C, HW, heads);
            check(heads == 1 ? "fwd attention_edm heads=1 vs einsum loops" : "fwd attention_edm heads=2 vs einsum loops",
                  max_rel(out, want, N * C * HW), FWD_TOL);
            free(qkv);
        }
    }
    {  // DiT / timm Attention.forward: reshape, permute, (q*scale) @ k^T, softmax, @ v, transpose, reshape
        enum { N = 2, T = 5, D = 8, H = 2, DH = D / H };
        double *qkv = randv(N * T * 3 * D), out[N * T * D], want[N * T * D], a[T * T];
#define QKV(n, t, s, h, j) qkv[((((n) * T + (t)) * 3 + (s)) * H + (h)) * DH + (j)]
        for (int n = 0; n < N; n++)
            for (int h = 0; h < H; h++) {
                for (int t = 0; t < T; t++) {
                    double mx = -INFINITY, s = 0;
                    for (int u = 0; u < T; u++) {
                        double acc = 0;
                        for (int j = 0; j < DH; j++) acc += QKV(n, t, 0, h, j) * pow(DH, -0.5) * QKV(n, u, 1, h, j);
                        a[t * T + u] = acc;
                        if (acc > mx) mx = acc;
                    }
                    for (int u = 0; u < T; u++) s += (a[t * T + u] = exp(a[t * T + u] - mx));
                    for (int u = 0; u < T; u++) a[t * T + u] /= s;
                }
                for (int t = 0; t < T; t++)
                    for (int j = 0; j < DH; j++) {
                        double acc = 0;
                        for (int u = 0; u < T; u++) acc += a[t * T + u] * QKV(n, u, 2, h, j);
                        want[(n * T + t) * D + h * DH + j] = acc;  // x.transpose(1, 2).reshape(N, T, D)
                    }
            }
#undef QKV
        ref_attention_dit_fwd(out, qkv, N, T, D, H);
        check("fwd attention_dit heads=2 vs timm loops", max_rel(out, want, N * T * D), FWD_TOL);
        free(qkv);
    }
}

int main(void) {
    fwd_layout();
    fwd_attention();
    grad_permute("permute (3,4) -> (4,3)", 2, (long[]){3, 4}, (int[]){1, 0});
    grad_permute("permute NCHW (2,3,4,5) -> NHWC", 4, (long[]){2, 3, 4, 5}, (int[]){0, 2, 3, 1});
    grad_permute("permute 6-D nhwpqc->nchpwq (2,2,3,2,2,3)", 6, (long[]){2, 2, 3, 2, 2, 3}, (int[]){0, 5, 1, 3, 2, 4});
    grad_slice("slice (2,5,3) axis 1 [1:4]", 3, (long[]){2, 5, 3}, 1, 1, 3);
    grad_slice("slice (4,6) last axis [2:3]", 2, (long[]){4, 6}, 1, 2, 1);
    grad_concat("concat NCHW (2,3,2,2)+(2,2,2,2) axis 1", 4, (long[]){2, 3, 2, 2}, 2, 1);
    grad_concat("concat (3,4)+(3,2) last axis", 2, (long[]){3, 4}, 2, 1);
    {
        Case c = {.kind = K_ATTN, .B = 2, .T = 5, .d = 4, .scale = 0.5};
        c.nin[0] = c.nin[1] = c.nin[2] = c.ny = 2 * 5 * 4;
        fd_case(&c, "attention B=2 T=5 d=4 scale=0.5 (dq, dk, dv)");
    }
    for (int heads = 1; heads <= 2; heads++) {
        Case c = {.kind = K_EDM, .N = 2, .C = 8, .HW = 9, .heads = heads};
        c.nin[0] = 2 * 3 * 8 * 9;
        c.ny = 2 * 8 * 9;
        fd_case(&c, heads == 1 ? "attention_edm N=2 C=8 3x3 heads=1 (dqkv)" : "attention_edm N=2 C=8 3x3 heads=2 (dqkv)");
    }
    {
        Case c = {.kind = K_DIT, .N = 2, .T = 5, .C = 8, .heads = 2};
        c.nin[0] = 2 * 5 * 3 * 8;
        c.ny = 2 * 5 * 8;
        fd_case(&c, "attention_dit N=2 T=5 D=8 heads=2 (dqkv)");
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
