// ref_ops.c: plain-C double-precision reference ops. See ref_ops.h for semantics.
#include <math.h>
#include <string.h>
#include "ref_ops.h"

// ----------------------------------------------------------------------------
// batched matmul

// element (m,k) of A_b and (k,n) of B_b, respecting the storage layouts
static long a_idx(int m, int k, int M, int K, int ta) { return ta ? (long)k * M + m : (long)m * K + k; }
static long b_idx(int k, int n, int N, int K, int tb) { return tb ? (long)n * K + k : (long)k * N + n; }

// C is (batch,M,N); A is (batch,M,K) or (batch,K,M) if ta; B is (batch,K,N) or (batch,N,K) if tb
void ref_matmul_fwd(double *C, const double *A, const double *B, const double *bias,
                    int batch, int M, int N, int K, int ta, int tb, int bcast_b, int bias_rows) {
    for (int bi = 0; bi < batch; bi++) {
        const double *Ab = A + (long)bi * M * K;
        const double *Bb = bcast_b ? B : B + (long)bi * K * N;
        double *Cb = C + (long)bi * M * N;
        for (int m = 0; m < M; m++) {
            for (int n = 0; n < N; n++) {
                double s = bias ? (bias_rows ? bias[m] : bias[n]) : 0.0;
                for (int k = 0; k < K; k++) s += Ab[a_idx(m, k, M, K, ta)] * Bb[b_idx(k, n, N, K, tb)];
                Cb[(long)m * N + n] = s;
            }
        }
    }
}

// dC is (batch,M,N); dA, dB, dbias in the storage layouts of A, B, bias
void ref_matmul_bwd(double *dA, double *dB, double *dbias, const double *dC,
                    const double *A, const double *B,
                    int batch, int M, int N, int K, int ta, int tb, int bcast_b, int bias_rows) {
    if (dB) memset(dB, 0, sizeof(double) * (long)(bcast_b ? 1 : batch) * K * N);
    if (dbias) memset(dbias, 0, sizeof(double) * (bias_rows ? M : N));
    for (int bi = 0; bi < batch; bi++) {
        const double *Ab = A + (long)bi * M * K;
        const double *Bb = bcast_b ? B : B + (long)bi * K * N;
        const double *dCb = dC + (long)bi * M * N;
        if (dA) { // dA(m,k) = sum_n dC(m,n) B(k,n)
            double *dAb = dA + (long)bi * M * K;
            for (int m = 0; m < M; m++)
                for (int k = 0; k < K; k++) {
                    double s = 0.0;
                    for (int n = 0; n < N; n++) s += dCb[(long)m * N + n] * Bb[b_idx(k, n, N, K, tb)];
                    dAb[a_idx(m, k, M, K, ta)] = s;
                }
        }
        if (dB) { // dB(k,n) += sum_m A(m,k) dC(m,n)
            double *dBb = bcast_b ? dB : dB + (long)bi * K * N;
            for (int k = 0; k < K; k++)
                for (int n = 0; n < N; n++) {
                    double s = 0.0;
                    for (int m = 0; m < M; m++) s += Ab[a_idx(m, k, M, K, ta)] * dCb[(long)m * N + n];
                    dBb[b_idx(k, n, N, K, tb)] += s;
                }
        }
        if (dbias) {
            for (int m = 0; m < M; m++)
                for (int n = 0; n < N; n++) dbias[bias_rows ? m : n] += dCb[(long)m * N + n];
        }
    }
}

// ----------------------------------------------------------------------------
// broadcast binary ops

// y, a are (n); b is (bc); a[i] pairs with b[(i / inner) % bc]
void ref_binary_fwd(double *y, const double *a, const double *b, long n, long inner, long bc, int op) {
    for (long i = 0; i < n; i++) {
        double bj = b[(i / inner) % bc];
        y[i] = op == REF_MUL ? a[i] * bj : a[i] + bj;
    }
}

void ref_binary_bwd(double *da, double *db, const double *dy, const double *a, const double *b,
                    long n, long inner, long bc, int op) {
    if (db) memset(db, 0, sizeof(double) * bc);
    for (long i = 0; i < n; i++) {
        long j = (i / inner) % bc;
        if (da) da[i] = op == REF_MUL ? dy[i] * b[j] : dy[i];
        if (db) db[j] += op == REF_MUL ? dy[i] * a[i] : dy[i];
    }
}

// ----------------------------------------------------------------------------
// scale

// y, x are (n)
void ref_scale_fwd(double *y, const double *x, long n, double alpha) {
    for (long i = 0; i < n; i++) y[i] = alpha * x[i];
}

void ref_scale_bwd(double *dx, const double *dy, long n, double alpha) {
    for (long i = 0; i < n; i++) dx[i] = alpha * dy[i];
}

// ----------------------------------------------------------------------------
// unary activations

#define REF_GELU_C 0.7978845608028654 // sqrt(2/pi)

// y, x are (n)
void ref_unary_fwd(double *y, const double *x, long n, int op) {
    for (long i = 0; i < n; i++) {
        double v = x[i];
        if (op == REF_SILU) y[i] = v / (1.0 + exp(-v));
        else if (op == REF_GELU) y[i] = 0.5 * v * (1.0 + tanh(REF_GELU_C * (v + 0.044715 * v * v * v)));
        else if (op == REF_EXP) y[i] = exp(v);
        else if (op == REF_LOG) y[i] = log(v);
        else if (op == REF_SQRT) y[i] = sqrt(v);
        else if (op == REF_SOFTPLUS) y[i] = log1p(exp(v));
        else y[i] = v > 0.0 ? v : 0.0;
    }
}

void ref_unary_bwd(double *dx, const double *dy, const double *x, long n, int op) {
    for (long i = 0; i < n; i++) {
        double v = x[i], d;
        if (op == REF_SILU) {
            double s = 1.0 / (1.0 + exp(-v));
            d = s * (1.0 + v * (1.0 - s));
        } else if (op == REF_GELU) {
            double t = tanh(REF_GELU_C * (v + 0.044715 * v * v * v));
            d = 0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * REF_GELU_C * (1.0 + 3.0 * 0.044715 * v * v);
        } else if (op == REF_EXP) {
            d = exp(v);
        } else if (op == REF_LOG) {
            d = 1.0 / v;
        } else if (op == REF_SQRT) {
            d = 0.5 / sqrt(v);
        } else if (op == REF_SOFTPLUS) {
            d = 1.0 / (1.0 + exp(-v));
        } else {
            d = v > 0.0 ? 1.0 : 0.0;
        }
        dx[i] = dy[i] * d;
    }
}

// ----------------------------------------------------------------------------
// reductions over the last axis

// x is (rows, cols), y is (rows)
void ref_reduce_fwd(double *y, const double *x, int rows, int cols, int mean_flag) {
    for (int r = 0; r < rows; r++) {
        double s = 0.0;
        for (int c = 0; c < cols; c++) s += x[(long)r * cols + c];
        y[r] = mean_flag ? s / cols : s;
    }
}

void ref_reduce_bwd(double *dx, const double *dy, int rows, int cols, int mean_flag) {
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) dx[(long)r * cols + c] = mean_flag ? dy[r] / cols : dy[r];
}

// ----------------------------------------------------------------------------
// softmax over the last axis

// x, y are (rows, cols)
void ref_softmax_fwd(double *y, const double *x, int rows, int cols) {
    for (int r = 0; r < rows; r++) {
        const double *xr = x + (long)r * cols;
        double *yr = y + (long)r * cols;
        double mx = xr[0], s = 0.0;
        for (int c = 1; c < cols; c++) if (xr[c] > mx) mx = xr[c];
        for (int c = 0; c < cols; c++) { yr[c] = exp(xr[c] - mx); s += yr[c]; }
        for (int c = 0; c < cols; c++) yr[c] /= s;
    }
}

// dx = y * (dy - sum(dy * y)) per row
void ref_softmax_bwd(double *dx, const double *dy, const double *y, int rows, int cols) {
    for (int r = 0; r < rows; r++) {
        const double *dyr = dy + (long)r * cols, *yr = y + (long)r * cols;
        double dot = 0.0;
        for (int c = 0; c < cols; c++) dot += dyr[c] * yr[c];
        for (int c = 0; c < cols; c++) dx[(long)r * cols + c] = yr[c] * (dyr[c] - dot);
    }
}

// ----------------------------------------------------------------------------
// layer norm over the last axis (biased variance, as PyTorch LayerNorm)

static void ln_stats(const double *xr, int cols, double eps, double *mean, double *rstd) {
    double s = 0.0, v = 0.0;
    for (int c = 0; c < cols; c++) s += xr[c];
    double mu = s / cols;
    for (int c = 0; c < cols; c++) v += (xr[c] - mu) * (xr[c] - mu);
    *mean = mu;
    *rstd = 1.0 / sqrt(v / cols + eps);
}

// x, y are (rows, cols); w, b are (cols) or NULL; mean, rstd are (rows) or NULL
void ref_layernorm_fwd(double *y, double *mean, double *rstd, const double *x,
                       const double *w, const double *b, int rows, int cols, double eps) {
    for (int r = 0; r < rows; r++) {
        const double *xr = x + (long)r * cols;
        double mu, rs;
        ln_stats(xr, cols, eps, &mu, &rs);
        for (int c = 0; c < cols; c++)
            y[(long)r * cols + c] = (xr[c] - mu) * rs * (w ? w[c] : 1.0) + (b ? b[c] : 0.0);
        if (mean) mean[r] = mu;
        if (rstd) rstd[r] = rs;
    }
}

// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = dy * w; dw = sum dy*xhat; db = sum dy
void ref_layernorm_bwd(double *dx, double *dw, double *db, const double *dy,
                       const double *x, const double *w, int rows, int cols, double eps) {
    if (dw) memset(dw, 0, sizeof(double) * cols);
    if (db) memset(db, 0, sizeof(double) * cols);
    for (int r = 0; r < rows; r++) {
        const double *xr = x + (long)r * cols, *dyr = dy + (long)r * cols;
        double mu, rs, gm = 0.0, gxm = 0.0;
        ln_stats(xr, cols, eps, &mu, &rs);
        for (int c = 0; c < cols; c++) {
            double xhat = (xr[c] - mu) * rs, g = dyr[c] * (w ? w[c] : 1.0);
            gm += g;
            gxm += g * xhat;
            if (dw) dw[c] += dyr[c] * xhat;
            if (db) db[c] += dyr[c];
        }
        gm /= cols;
        gxm /= cols;
        if (dx)
            for (int c = 0; c < cols; c++) {
                double xhat = (xr[c] - mu) * rs, g = dyr[c] * (w ? w[c] : 1.0);
                dx[(long)r * cols + c] = rs * (g - gm - xhat * gxm);
            }
    }
}

// ----------------------------------------------------------------------------
// mean squared error

// a, b are (n)
double ref_mse_fwd(const double *a, const double *b, long n) {
    double s = 0.0;
    for (long i = 0; i < n; i++) s += (a[i] - b[i]) * (a[i] - b[i]);
    return s / n;
}

void ref_mse_bwd(double *da, double *db, double dloss, const double *a, const double *b, long n) {
    for (long i = 0; i < n; i++) {
        double d = 2.0 * (a[i] - b[i]) / n * dloss;
        if (da) da[i] = d;
        if (db) db[i] = -d;
    }
}

// ----------------------------------------------------------------------------
// optimizer steps

// p, m, v, g are (n); PyTorch Adam (decoupled=0) / AdamW (decoupled=1), step t >= 1
void ref_adam_step(double *p, double *m, double *v, const double *g, long n, double lr,
                   double beta1, double beta2, double eps, double weight_decay,
                   int decoupled, long t) {
    double bc1 = 1.0 - pow(beta1, (double)t), bc2 = 1.0 - pow(beta2, (double)t);
    for (long i = 0; i < n; i++) {
        double gi = g[i];
        if (decoupled) p[i] *= 1.0 - lr * weight_decay;
        else gi += weight_decay * p[i];
        m[i] = beta1 * m[i] + (1.0 - beta1) * gi;
        v[i] = beta2 * v[i] + (1.0 - beta2) * gi * gi;
        double mhat = m[i] / bc1, vhat = v[i] / bc2;
        p[i] -= lr * mhat / (sqrt(vhat) + eps);
    }
}

// e, p are (n)
void ref_ema_update(double *e, const double *p, long n, double beta) {
    for (long i = 0; i < n; i++) e[i] = beta * e[i] + (1.0 - beta) * p[i];
}
