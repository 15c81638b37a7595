// ref_layout.c: double-precision references for permute, slice, concat and
// attention (see ref_layout.h). Written from the PyTorch definitions with
// explicit index arithmetic; nothing here shares code with the device ops.
#include "ref_layout.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

// ----------------------------------------------------------------------------
// permute: y[j_0..j_{n-1}] = x[i] with i_{perm[m]} = j_m

// Offset into x (contiguous, shape) of the element at y's flat index yi.
static long permuted_src(long yi, int ndim, const long *shape, const int *perm) {
    long xstride[8], s = 1, src = 0;
    for (int i = ndim - 1; i >= 0; i--) { xstride[i] = s; s *= shape[i]; }
    for (int m = ndim - 1; m >= 0; m--) {
        long e = shape[perm[m]];
        src += (yi % e) * xstride[perm[m]];
        yi /= e;
    }
    return src;
}

static long numel(int ndim, const long *shape) {
    long n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    return n;
}

void ref_permute_fwd(double *y, const double *x, int ndim, const long *shape, const int *perm) {
    long n = numel(ndim, shape);
    for (long i = 0; i < n; i++) y[i] = x[permuted_src(i, ndim, shape, perm)];
}

// Every x element is read exactly once, so the gradient is the inverse scatter.
void ref_permute_bwd(double *dx, const double *dy, int ndim, const long *shape, const int *perm) {
    long n = numel(ndim, shape);
    for (long i = 0; i < n; i++) dx[permuted_src(i, ndim, shape, perm)] = dy[i];
}

// ----------------------------------------------------------------------------
// slice and concat, with x viewed as (outer, L, inner) around axis

static void around(int ndim, const long *shape, int axis, long *outer, long *inner) {
    *outer = *inner = 1;
    for (int i = 0; i < axis; i++) *outer *= shape[i];
    for (int i = axis + 1; i < ndim; i++) *inner *= shape[i];
}

void ref_slice_fwd(double *y, const double *x, int ndim, const long *shape, int axis, long start, long len) {
    long outer, inner, L = shape[axis];
    around(ndim, shape, axis, &outer, &inner);
    for (long o = 0; o < outer; o++)
        for (long c = 0; c < len; c++)
            for (long r = 0; r < inner; r++) y[(o * len + c) * inner + r] = x[(o * L + start + c) * inner + r];
}

void ref_slice_bwd(double *dx, const double *dy, int ndim, const long *shape, int axis, long start, long len) {
    long outer, inner, L = shape[axis];
    around(ndim, shape, axis, &outer, &inner);
    memset(dx, 0, sizeof *dx * outer * L * inner);
    for (long o = 0; o < outer; o++)
        for (long c = 0; c < len; c++)
            for (long r = 0; r < inner; r++) dx[(o * L + start + c) * inner + r] = dy[(o * len + c) * inner + r];
}

void ref_concat_fwd(double *y, const double *a, const double *b, int ndim, const long *ashape, long bn, int axis) {
    long outer, inner, an = ashape[axis], yn = an + bn;
    around(ndim, ashape, axis, &outer, &inner);
    for (long o = 0; o < outer; o++)
        for (long c = 0; c < yn; c++)
            for (long r = 0; r < inner; r++)
                y[(o * yn + c) * inner + r] = c < an ? a[(o * an + c) * inner + r] : b[(o * bn + c - an) * inner + r];
}

void ref_concat_bwd(double *da, double *db, const double *dy, int ndim, const long *ashape, long bn, int axis) {
    long outer, inner, an = ashape[axis], yn = an + bn;
    around(ndim, ashape, axis, &outer, &inner);
    for (long o = 0; o < outer; o++)
        for (long c = 0; c < yn; c++)
            for (long r = 0; r < inner; r++) {
                double g = dy[(o * yn + c) * inner + r];
                if (c < an) { if (da) da[(o * an + c) * inner + r] = g; }
                else if (db) db[(o * bn + c - an) * inner + r] = g;
            }
}

// ----------------------------------------------------------------------------
// attention core, token-major (B, T, d)

// p (B, T, T) = softmax over keys of scale * q k^T
static void attn_probs(double *p, const double *q, const double *k, int B, int T, int d, double scale) {
    for (int b = 0; b < B; b++)
        for (int i = 0; i < T; i++) {
            double *pr = p + ((long)b * T + i) * T, mx = -INFINITY, sum = 0.0;
            for (int j = 0; j < T; j++) {
                double s = 0.0;
                for (int e = 0; e < d; e++) s += q[((long)b * T + i) * d + e] * k[((long)b * T + j) * d + e];
                pr[j] = scale * s;
                if (pr[j] > mx) mx = pr[j];
            }
            for (int j = 0; j < T; j++) { pr[j] = exp(pr[j] - mx); sum += pr[j]; }
            for (int j = 0; j < T; j++) pr[j] /= sum;
        }
}

void ref_attention_fwd(double *out, const double *q, const double *k, const double *v, int B, int T, int d,
                       double scale) {
    double *p = malloc(sizeof *p * B * T * T);
    attn_probs(p, q, k, B, T, d, scale);
    for (int b = 0; b < B; b++)
        for (int i = 0; i < T; i++)
            for (int e = 0; e < d; e++) {
                double s = 0.0;
                for (int j = 0; j < T; j++) s += p[((long)b * T + i) * T + j] * v[((long)b * T + j) * d + e];
                out[((long)b * T + i) * d + e] = s;
            }
    free(p);
}

// dv = p^T dout; dp = dout v^T; ds = p (dp - rowsum(dp p)); dq = scale ds k; dk = scale ds^T q
void ref_attention_bwd(double *dq, double *dk, double *dv, const double *dout, const double *q, const double *k,
                       const double *v, int B, int T, int d, double scale) {
    double *p = malloc(sizeof *p * B * T * T), *ds = malloc(sizeof *ds * B * T * T);
    attn_probs(p, q, k, B, T, d, scale);
    for (int b = 0; b < B; b++) {
        const double *pb = p + (long)b * T * T;
        double *dsb = ds + (long)b * T * T;
        for (int i = 0; i < T; i++) {
            double dot = 0.0;
            for (int j = 0; j < T; j++) {
                double dp = 0.0;
                for (int e = 0; e < d; e++) dp += dout[((long)b * T + i) * d + e] * v[((long)b * T + j) * d + e];
                dsb[i * T + j] = dp;
                dot += dp * pb[i * T + j];
            }
            for (int j = 0; j < T; j++) dsb[i * T + j] = pb[i * T + j] * (dsb[i * T + j] - dot);
        }
        for (int t = 0; t < T; t++)
            for (int e = 0; e < d; e++) {
                double sq = 0.0, sk = 0.0, sv = 0.0;
                for (int u = 0; u < T; u++) {
                    sq += dsb[t * T + u] * k[((long)b * T + u) * d + e];
                    sk += dsb[u * T + t] * q[((long)b * T + u) * d + e];
                    sv += pb[u * T + t] * dout[((long)b * T + u) * d + e];
                }
                long at = ((long)b * T + t) * d + e;
                if (dq) dq[at] = scale * sq;
                if (dk) dk[at] = scale * sk;
                if (dv) dv[at] = sv;
            }
    }
    free(p);
    free(ds);
}

// ----------------------------------------------------------------------------
// EDM: q, k, v = qkv.reshape(N*heads, C/heads, 3, HW).unbind(2), each (B, c, HW);
// w = softmax_k(einsum('ncq,nck->nqk', q, k / sqrt(c))); a = einsum('nqk,nck->ncq', w, v).
// Written as the token-major core on q, k, v transposed to (B, HW, c).

// Offset in qkv of part s (0 q, 1 k, 2 v) of channel i of batch-head b at position t.
static long edm_at(int b, int i, int s, int t, int c, int HW) { return (((long)b * c + i) * 3 + s) * HW + t; }

static void edm_parts(double *part[3], const double *qkv, int B, int c, int HW) {
    for (int s = 0; s < 3; s++)
        for (int b = 0; b < B; b++)
            for (int i = 0; i < c; i++)
                for (int t = 0; t < HW; t++) part[s][((long)b * HW + t) * c + i] = qkv[edm_at(b, i, s, t, c, HW)];
}

void ref_attention_edm_fwd(double *out, const double *qkv, int N, int C, int HW, int heads) {
    int B = N * heads, c = C / heads;
    long n = (long)B * HW * c;
    double *buf = malloc(sizeof *buf * 4 * n), *part[3] = {buf, buf + n, buf + 2 * n}, *o = buf + 3 * n;
    edm_parts(part, qkv, B, c, HW);
    ref_attention_fwd(o, part[0], part[1], part[2], B, HW, c, 1.0 / sqrt((double)c));
    for (int b = 0; b < B; b++)  // a (B, c, HW) reshaped to (N, C, H, W)
        for (int i = 0; i < c; i++)
            for (int t = 0; t < HW; t++) out[((long)b * c + i) * HW + t] = o[((long)b * HW + t) * c + i];
    free(buf);
}

void ref_attention_edm_bwd(double *dqkv, const double *dout, const double *qkv, int N, int C, int HW, int heads) {
    int B = N * heads, c = C / heads;
    long n = (long)B * HW * c;
    double *buf = malloc(sizeof *buf * 7 * n), *part[3] = {buf, buf + n, buf + 2 * n}, *dpart[3] = {buf + 3 * n, buf + 4 * n, buf + 5 * n};
    double *dt = buf + 6 * n;
    edm_parts(part, qkv, B, c, HW);
    for (int b = 0; b < B; b++)
        for (int i = 0; i < c; i++)
            for (int t = 0; t < HW; t++) dt[((long)b * HW + t) * c + i] = dout[((long)b * c + i) * HW + t];
    ref_attention_bwd(dpart[0], dpart[1], dpart[2], dt, part[0], part[1], part[2], B, HW, c, 1.0 / sqrt((double)c));
    for (int s = 0; s < 3; s++)
        for (int b = 0; b < B; b++)
            for (int i = 0; i < c; i++)
                for (int t = 0; t < HW; t++) dqkv[edm_at(b, i, s, t, c, HW)] = dpart[s][((long)b * HW + t) * c + i];
    free(buf);
}

// ----------------------------------------------------------------------------
// DiT (timm): q, k, v = qkv.reshape(N, T, 3, heads, dh).permute(2, 0, 3, 1, 4), each
// (N, heads, T, dh); x = softmax(q * dh^-0.5 @ k^T) @ v; out = x.transpose(1, 2).reshape(N, T, D).

// Offset in qkv of part s of head h, token t, feature j of sample n.
static long dit_at(int n, int t, int s, int h, int j, int T, int heads, int dh) {
    return ((((long)n * T + t) * 3 + s) * heads + h) * dh + j;
}

static void dit_parts(double *part[3], const double *qkv, int N, int T, int heads, int dh) {
    for (int s = 0; s < 3; s++)
        for (int n = 0; n < N; n++)
            for (int h = 0; h < heads; h++)
                for (int t = 0; t < T; t++)
                    for (int j = 0; j < dh; j++)
                        part[s][(((long)n * heads + h) * T + t) * dh + j] = qkv[dit_at(n, t, s, h, j, T, heads, dh)];
}

void ref_attention_dit_fwd(double *out, const double *qkv, int N, int T, int D, int heads) {
    int dh = D / heads;
    long m = (long)N * T * D;
    double *buf = malloc(sizeof *buf * 4 * m), *part[3] = {buf, buf + m, buf + 2 * m}, *x = buf + 3 * m;
    dit_parts(part, qkv, N, T, heads, dh);
    ref_attention_fwd(x, part[0], part[1], part[2], N * heads, T, dh, 1.0 / sqrt((double)dh));
    for (int n = 0; n < N; n++)
        for (int h = 0; h < heads; h++)
            for (int t = 0; t < T; t++)
                for (int j = 0; j < dh; j++)
                    out[((long)n * T + t) * D + h * dh + j] = x[(((long)n * heads + h) * T + t) * dh + j];
    free(buf);
}

void ref_attention_dit_bwd(double *dqkv, const double *dout, const double *qkv, int N, int T, int D, int heads) {
    int dh = D / heads;
    long m = (long)N * T * D;
    double *buf = malloc(sizeof *buf * 7 * m), *part[3] = {buf, buf + m, buf + 2 * m}, *dpart[3] = {buf + 3 * m, buf + 4 * m, buf + 5 * m};
    double *dx = buf + 6 * m;
    dit_parts(part, qkv, N, T, heads, dh);
    for (int n = 0; n < N; n++)
        for (int h = 0; h < heads; h++)
            for (int t = 0; t < T; t++)
                for (int j = 0; j < dh; j++)
                    dx[(((long)n * heads + h) * T + t) * dh + j] = dout[((long)n * T + t) * D + h * dh + j];
    ref_attention_bwd(dpart[0], dpart[1], dpart[2], dx, part[0], part[1], part[2], N * heads, T, dh,
                      1.0 / sqrt((double)dh));
    for (int s = 0; s < 3; s++)
        for (int n = 0; n < N; n++)
            for (int h = 0; h < heads; h++)
                for (int t = 0; t < T; t++)
                    for (int j = 0; j < dh; j++)
                        dqkv[dit_at(n, t, s, h, j, T, heads, dh)] = dpart[s][(((long)n * heads + h) * T + t) * dh + j];
    free(buf);
}
