// The Frechet distance between two Gaussians N(mu1, S1) and N(mu2, S2):
//   ||mu1 - mu2||^2 + Tr S1 + Tr S2 - 2 Tr (S1 S2)^(1/2).
//
// pytorch-fid takes scipy.linalg.sqrtm of the non-symmetric S1 S2 (a Schur
// decomposition in complex arithmetic) and fails, or needs an eps offset, when
// the result has an "imaginary component" -- which happens whenever a
// covariance is singular, e.g. with fewer samples than dimensions. We never
// need the square root itself, only its trace: with S1 = V L V^T,
// F = L^(1/2) V^T, the symmetric PSD matrix C = F S2 F^T = (S1^(1/2) S2 S1^(1/2)
// written in S1's eigenbasis) is similar to S1 S2, so
//   Tr (S1 S2)^(1/2) = sum_i sqrt(eig_i(C)).
// Two symmetric eigendecompositions (dsyevd; the second without vectors) and
// two GEMMs: all real, always finite for finite PSD input.
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vkdistill/eval.h"

static double fd_fail(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        int k = snprintf(err, errlen, "Frechet distance: ");
        if (k >= 0 && (size_t)k < errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(err + k, errlen - (size_t)k, fmt, ap);
            va_end(ap);
        }
    }
    return NAN;
}

// dst = (s + s^T) / 2: statistics read from files are symmetric only up to
// their writer's roundoff, and dsyevd reads one triangle.
static void symmetrize(double *dst, const double *s, int n) {
    for (int i = 0; i < n; i++)
        for (int j = i; j < n; j++)
            dst[(size_t)i * n + j] = dst[(size_t)j * n + i] = 0.5 * (s[(size_t)i * n + j] + s[(size_t)j * n + i]);
}

double vkd_frechet_distance(const double *mu1, const double *s1, const double *mu2, const double *s2, int dim,
                            char *err, size_t errlen) {
    if (dim < 1 || dim > 65536) return fd_fail(err, errlen, "bad dimension %d", dim);
    int n = dim;
    size_t nn = (size_t)n * n;
    for (int i = 0; i < n; i++)
        if (!isfinite(mu1[i]) || !isfinite(mu2[i]))
            return fd_fail(err, errlen, "mean %d holds a non-finite value", isfinite(mu1[i]) ? 2 : 1);
    for (size_t i = 0; i < nn; i++)
        if (!isfinite(s1[i]) || !isfinite(s2[i]))
            return fd_fail(err, errlen, "covariance %d holds a non-finite value at (%zu, %zu)", isfinite(s1[i]) ? 2 : 1,
                           i / n, i % n);
    double *v = malloc(nn * sizeof(double)), *t = malloc(nn * sizeof(double)), *c = malloc(nn * sizeof(double));
    double *w = malloc((size_t)n * sizeof(double));
    double fd = NAN;
    if (!v || !t || !c || !w) {
        fd_fail(err, errlen, "out of memory for dimension %d", n);
        goto done;
    }
    // Eigenvectors of S1. Column-major on a symmetric matrix: LAPACK sees the
    // same matrix, and returns eigenvector k as column k, i.e. row k of v in
    // our row-major view (no transposing copies).
    symmetrize(v, s1, n);
    lapack_int info = LAPACKE_dsyevd(LAPACK_COL_MAJOR, 'V', 'U', n, v, n, w);
    if (info != 0) {
        fd_fail(err, errlen, "the eigendecomposition of covariance 1 failed (dsyevd info %d)", (int)info);
        goto done;
    }
    // F = L^(1/2) V^T: row k of v scaled by sqrt(lambda_k). Only the negative
    // eigenvalues that rounding makes of a PSD matrix are set to 0 (they cannot
    // be rooted). Small positive ones are kept, however small: a genuine
    // variance of 1e-13 beside one of 100 still adds sqrt(1e-13 * s2) to the
    // trace, and dropping it (as a "noise floor" did) made a rank-deficient case
    // with a known exact value ~1e-6 wrong. The price: a zero variance that
    // rounding made +1e-16 adds ~1e-8 * sqrt(s2), as in scipy's sqrtm.
    for (int k = 0; k < n; k++) {
        double s = w[k] > 0 ? sqrt(w[k]) : 0.0;
        for (int i = 0; i < n; i++) v[(size_t)k * n + i] *= s;
    }
    symmetrize(c, s2, n);
    // t = F S2, then c = t F^T = F S2 F^T.
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0, v, n, c, n, 0.0, t, n);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0, t, n, v, n, 0.0, c, n);
    symmetrize(t, c, n);
    info = LAPACKE_dsyevd(LAPACK_COL_MAJOR, 'N', 'U', n, t, n, w);
    if (info != 0) {
        fd_fail(err, errlen, "the eigendecomposition of S1^1/2 S2 S1^1/2 failed (dsyevd info %d)", (int)info);
        goto done;
    }
    // Sum the small terms first (eigenvalues come ascending).
    double tr_sqrt = 0, tr1 = 0, tr2 = 0, dmu = 0;
    for (int k = 0; k < n; k++) tr_sqrt += w[k] > 0 ? sqrt(w[k]) : 0.0;
    for (int i = 0; i < n; i++) {
        double d = mu1[i] - mu2[i];
        dmu += d * d;
        tr1 += s1[(size_t)i * n + i], tr2 += s2[(size_t)i * n + i];
    }
    fd = dmu + tr1 + tr2 - 2.0 * tr_sqrt;
    // A squared distance: for equal statistics roundoff in the traces can
    // leave it a few ulps below zero, which would only confuse a reader.
    if (fd < 0) fd = 0;
done:
    free(v), free(t), free(c), free(w);
    return fd;
}
