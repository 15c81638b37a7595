// ref_nn.c: plain-C double-precision references for the network-block ops. See ref_nn.h.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "ref_nn.h"

// ----------------------------------------------------------------------------
// group norm

// mean and rstd of row (n, g): channels g*cpg .. (g+1)*cpg-1, all S positions (contiguous)
static void gn_stats(const double *x, long len, double eps, double *mean, double *rstd) {
    double s = 0.0, q = 0.0;
    for (long i = 0; i < len; i++) s += x[i];
    double mu = s / len;
    for (long i = 0; i < len; i++) q += (x[i] - mu) * (x[i] - mu);
    *mean = mu;
    *rstd = 1.0 / sqrt(q / len + eps);
}

void ref_groupnorm_fwd(double *y, double *mean, double *rstd, const double *x, const double *w, const double *b,
                       int N, int C, int S, int groups, double eps) {
    int cpg = C / groups;
    long len = (long)cpg * S;
    for (int n = 0; n < N; n++)
        for (int g = 0; g < groups; g++) {
            long row = (long)n * groups + g, base = row * len;
            double mu, rs;
            gn_stats(x + base, len, eps, &mu, &rs);
            if (mean) mean[row] = mu;
            if (rstd) rstd[row] = rs;
            for (long e = 0; e < len; e++) {
                int c = g * cpg + (int)(e / S);
                double v = (x[base + e] - mu) * rs;
                y[base + e] = v * (w ? w[c] : 1.0) + (b ? b[c] : 0.0);
            }
        }
}

// With xh = (x - mean) * rstd and g = dy * w over one row of L elements:
// dx = rstd * (g - mean(g) - xh * mean(g * xh)); dw[c] = sum dy * xh, db[c] = sum dy.
void ref_groupnorm_bwd(double *dx, double *dw, double *db, const double *dy, const double *x, const double *w,
                       int N, int C, int S, int groups, double eps) {
    int cpg = C / groups;
    long len = (long)cpg * S;
    if (dw) memset(dw, 0, sizeof(double) * C);
    if (db) memset(db, 0, sizeof(double) * C);
    for (int n = 0; n < N; n++)
        for (int g = 0; g < groups; g++) {
            long base = ((long)n * groups + g) * len;
            double mu, rs, sg = 0.0, sgx = 0.0;
            gn_stats(x + base, len, eps, &mu, &rs);
            for (long e = 0; e < len; e++) {
                int c = g * cpg + (int)(e / S);
                double xh = (x[base + e] - mu) * rs, gg = dy[base + e] * (w ? w[c] : 1.0);
                sg += gg;
                sgx += gg * xh;
                if (dw) dw[c] += dy[base + e] * xh;
                if (db) db[c] += dy[base + e];
            }
            sg /= len;
            sgx /= len;
            if (dx)
                for (long e = 0; e < len; e++) {
                    int c = g * cpg + (int)(e / S);
                    double xh = (x[base + e] - mu) * rs, gg = dy[base + e] * (w ? w[c] : 1.0);
                    dx[base + e] = rs * (gg - sg - xh * sgx);
                }
        }
}

void ref_groupnorm_silu_fwd(double *y, const double *x, const double *w, const double *b, int N, int C, int S,
                            int groups, double eps) {
    long n = (long)N * C * S;
    ref_groupnorm_fwd(y, NULL, NULL, x, w, b, N, C, S, groups, eps);
    for (long i = 0; i < n; i++) y[i] = y[i] / (1.0 + exp(-y[i]));
}

// dz = dy * silu'(z) with z = groupnorm(x), then the group-norm backward of dz.
void ref_groupnorm_silu_bwd(double *dx, double *dw, double *db, const double *dy, const double *x, const double *w,
                            const double *b, int N, int C, int S, int groups, double eps) {
    long n = (long)N * C * S;
    double *dz = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
    ref_groupnorm_fwd(dz, NULL, NULL, x, w, b, N, C, S, groups, eps);
    for (long i = 0; i < n; i++) {
        double z = dz[i], s = 1.0 / (1.0 + exp(-z));
        dz[i] = dy[i] * s * (1.0 + z * (1.0 - s));
    }
    ref_groupnorm_bwd(dx, dw, db, dz, x, w, N, C, S, groups, eps);
    free(dz);
}

// ----------------------------------------------------------------------------
// 2x resampling

void ref_upsample2x_fwd(double *y, const double *x, long P, int H, int W) {
    for (long p = 0; p < P; p++)
        for (int h = 0; h < 2 * H; h++)
            for (int w = 0; w < 2 * W; w++) y[(p * 2 * H + h) * 2 * W + w] = x[(p * H + h / 2) * W + w / 2];
}

// each input pixel feeds four outputs
void ref_upsample2x_bwd(double *dx, const double *dy, long P, int H, int W) {
    memset(dx, 0, sizeof(double) * P * H * W);
    for (long p = 0; p < P; p++)
        for (int h = 0; h < 2 * H; h++)
            for (int w = 0; w < 2 * W; w++) dx[(p * H + h / 2) * W + w / 2] += dy[(p * 2 * H + h) * 2 * W + w];
}

void ref_avgpool2x_fwd(double *y, const double *x, long P, int H, int W) {
    int Ho = H / 2, Wo = W / 2;
    memset(y, 0, sizeof(double) * P * Ho * Wo);
    for (long p = 0; p < P; p++)
        for (int h = 0; h < H; h++)
            for (int w = 0; w < W; w++) y[(p * Ho + h / 2) * Wo + w / 2] += 0.25 * x[(p * H + h) * W + w];
}

void ref_avgpool2x_bwd(double *dx, const double *dy, long P, int H, int W) {
    int Ho = H / 2, Wo = W / 2;
    for (long p = 0; p < P; p++)
        for (int h = 0; h < H; h++)
            for (int w = 0; w < W; w++) dx[(p * H + h) * W + w] = 0.25 * dy[(p * Ho + h / 2) * Wo + w / 2];
}

// ----------------------------------------------------------------------------
// embeddings

void ref_timestep_embedding(double *y, const double *t, int N, int dim, double max_positions, int endpoint) {
    int half = dim / 2;
    for (int n = 0; n < N; n++)
        for (int k = 0; k < half; k++) {
            double f = pow(1.0 / max_positions, (double)k / (half - (endpoint ? 1 : 0)));
            y[(long)n * dim + k] = cos(t[n] * f);
            y[(long)n * dim + half + k] = sin(t[n] * f);
        }
}

void ref_fourier_embedding(double *y, const double *t, const double *freqs, int N, int half) {
    const double two_pi = 6.283185307179586476925;
    for (int n = 0; n < N; n++)
        for (int k = 0; k < half; k++) {
            double a = two_pi * t[n] * freqs[k];
            y[(long)n * 2 * half + k] = cos(a);
            y[(long)n * 2 * half + half + k] = sin(a);
        }
}

// ----------------------------------------------------------------------------
// adaLN modulation

void ref_modulate_fwd(double *y, const double *x, const double *shift, const double *scale, int N, int T, int D,
                      double one) {
    for (int n = 0; n < N; n++)
        for (int t = 0; t < T; t++)
            for (int d = 0; d < D; d++) {
                long i = ((long)n * T + t) * D + d, j = (long)n * D + d;
                y[i] = x[i] * (one + (scale ? scale[j] : 0.0)) + (shift ? shift[j] : 0.0);
            }
}

void ref_modulate_bwd(double *dx, double *dshift, double *dscale, const double *dy, const double *x,
                      const double *scale, int N, int T, int D, double one) {
    if (dshift) memset(dshift, 0, sizeof(double) * N * D);
    if (dscale) memset(dscale, 0, sizeof(double) * N * D);
    for (int n = 0; n < N; n++)
        for (int t = 0; t < T; t++)
            for (int d = 0; d < D; d++) {
                long i = ((long)n * T + t) * D + d, j = (long)n * D + d;
                if (dx) dx[i] = dy[i] * (one + (scale ? scale[j] : 0.0));
                if (dshift) dshift[j] += dy[i];
                if (dscale) dscale[j] += dy[i] * x[i];
            }
}

// ----------------------------------------------------------------------------
// dropout

void ref_dropout_fwd(double *y, const double *x, const unsigned char *keep, long n, double p) {
    for (long i = 0; i < n; i++) y[i] = keep[i] ? x[i] / (1.0 - p) : 0.0;
}

void ref_dropout_bwd(double *dx, const double *dy, const unsigned char *keep, long n, double p) {
    for (long i = 0; i < n; i++) dx[i] = keep[i] ? dy[i] / (1.0 - p) : 0.0;
}
