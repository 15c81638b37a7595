// The exact GMM denoiser in double precision, written directly from the math
// (ALGORITHMS.md): r_k by a log-sum-exp, D = sum_k r_k m_k with
// m_k = mu_k + a_k (x - mu_k), a_k = s_k^2 / (s_k^2 + sigma^2), and
// dD/dx^T u = sum_k r_k a_k u + sum_k r_k (u . m_k) (g_k - gbar),
// g_k = -(x - mu_k) / (s_k^2 + sigma^2), gbar = sum_k r_k g_k.
#include "ref_gmm.h"

#include <math.h>
#include <stdlib.h>

static void resp(double *r, const double *x, double sigma, int K, long d, const double *w, const double *mu,
                 const double *s) {
    double mx = -HUGE_VAL, z = 0;
    for (int k = 0; k < K; k++) {
        double v = s[k] * s[k] + sigma * sigma, q = 0;
        for (long i = 0; i < d; i++) q += (x[i] - mu[k * d + i]) * (x[i] - mu[k * d + i]);
        r[k] = log(w[k]) - 0.5 * (double)d * log(2 * M_PI * v) - 0.5 * q / v;
        if (r[k] > mx) mx = r[k];
    }
    for (int k = 0; k < K; k++) z += (r[k] = exp(r[k] - mx));
    for (int k = 0; k < K; k++) r[k] /= z;
}

void ref_gmm_denoise(double *D, double *r, const double *x, const double *sigma, long n, int K, long d, const double *w,
                     const double *mu, const double *s) {
    double *rr = malloc(K * sizeof *rr);
    for (long b = 0; b < n; b++) {
        const double *xb = x + b * d;
        resp(rr, xb, sigma[b], K, d, w, mu, s);
        for (long i = 0; i < d; i++) D[b * d + i] = 0;
        for (int k = 0; k < K; k++) {
            double a = s[k] * s[k] / (s[k] * s[k] + sigma[b] * sigma[b]);
            for (long i = 0; i < d; i++) D[b * d + i] += rr[k] * (mu[k * d + i] + a * (xb[i] - mu[k * d + i]));
            if (r) r[b * K + k] = rr[k];
        }
    }
    free(rr);
}

void ref_gmm_denoise_vjp(double *dx, const double *u, const double *x, const double *sigma, long n, int K, long d,
                         const double *w, const double *mu, const double *s) {
    double *rr = malloc(K * sizeof *rr), *c = malloc(K * sizeof *c), *gbar = malloc(d * sizeof *gbar);
    for (long b = 0; b < n; b++) {
        const double *xb = x + b * d, *ub = u + b * d;
        double *db = dx + b * d, s2 = sigma[b] * sigma[b];
        resp(rr, xb, sigma[b], K, d, w, mu, s);
        for (long i = 0; i < d; i++) db[i] = 0, gbar[i] = 0;
        for (int k = 0; k < K; k++) {
            double v = s[k] * s[k] + s2, a = s[k] * s[k] / v;
            c[k] = 0;
            for (long i = 0; i < d; i++) {
                c[k] += ub[i] * (mu[k * d + i] + a * (xb[i] - mu[k * d + i]));
                gbar[i] += rr[k] * -(xb[i] - mu[k * d + i]) / v;
                db[i] += rr[k] * a * ub[i];
            }
        }
        for (int k = 0; k < K; k++) {
            double v = s[k] * s[k] + s2;
            for (long i = 0; i < d; i++) db[i] += rr[k] * c[k] * (-(xb[i] - mu[k * d + i]) / v - gbar[i]);
        }
    }
    free(rr), free(c), free(gbar);
}
