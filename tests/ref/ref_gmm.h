// ref_gmm.h: double-precision reference of the exact Gaussian-mixture denoiser and its
// vector-Jacobian product (src/diffusion/gmm.c, shaders/gmm.comp).
// p0 = sum_k w_k N(mu_k, s_k^2 I); x (n, d), sigma (n), w (K, normalized), mu (K, d), s (K).
#ifndef REF_GMM_H
#define REF_GMM_H

// D (n, d) and, if r is not NULL, the responsibilities r (n, K).
void ref_gmm_denoise(double *D, double *r, const double *x, const double *sigma, long n, int K, long d,
                     const double *w, const double *mu, const double *s);
// dx (n, d) = u^T dD/dx for the upstream gradient u (n, d). Overwrites dx.
void ref_gmm_denoise_vjp(double *dx, const double *u, const double *x, const double *sigma, long n, int K, long d,
                         const double *w, const double *mu, const double *s);

#endif
