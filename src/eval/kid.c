// Kernel Inception Distance: the unbiased MMD^2 between two feature sets with
// the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged over random
// subsets (Binkowski et al. 2018; the estimator of clean-fid's
// kernel_distance and torch-fidelity's kid). Per subset of m rows from each:
//   MMD^2 = (sum_{i!=j} k(x_i,x_j) + sum_{i!=j} k(y_i,y_j)) / (m(m-1)) - 2 sum_{i,j} k(x_i,y_j) / m^2
// The Gram matrices are one dsyrk (X X^T, Y Y^T) and one dgemm (X Y^T) per
// subset, in float64.
#include <cblas.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vkdistill/eval.h"

static int kid_fail(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        int k = snprintf(err, errlen, "KID: ");
        if (k >= 0 && (size_t)k < errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(err + k, errlen - (size_t)k, fmt, ap);
            va_end(ap);
        }
    }
    return -1;
}

// splitmix64: a small, well-mixed generator with a documented stream, so the
// subsets can be reproduced by any tool (see vkd_kid_subsets).
static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// Uniform in [0, bound) without modulo bias (Lemire's method with rejection).
static uint64_t below(uint64_t *s, uint64_t bound) {
    for (;;) {
        unsigned __int128 p = (unsigned __int128)splitmix64(s) * bound;
        uint64_t lo = (uint64_t)p;
        if (lo >= bound || lo >= (0 - bound) % bound) return (uint64_t)(p >> 64);
    }
}

// m distinct indices from [0, n): the first m of a partial Fisher-Yates
// shuffle of the identity, restarted for every subset.
static void draw(uint64_t *s, int64_t *perm, int64_t n, int64_t m, int64_t *out) {
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    for (int64_t i = 0; i < m; i++) {
        int64_t j = i + (int64_t)below(s, (uint64_t)(n - i));
        int64_t tmp = perm[i];
        perm[i] = perm[j], perm[j] = tmp;
        out[i] = perm[i];
    }
}

int64_t vkd_kid_subsets(int64_t nx, int64_t ny, int num_subsets, int subset_size, uint64_t seed, int64_t *ix,
                        int64_t *iy) {
    int64_t m = subset_size;
    if (m > nx) m = nx;
    if (m > ny) m = ny;
    if (m < 2 || num_subsets < 1) return -1;
    int64_t *perm = malloc((size_t)(nx > ny ? nx : ny) * sizeof *perm);
    if (!perm) return -1;
    uint64_t s = seed;
    for (int k = 0; k < num_subsets; k++) {
        draw(&s, perm, nx, m, ix + (size_t)k * m);
        draw(&s, perm, ny, m, iy + (size_t)k * m);
    }
    free(perm);
    return m;
}

static void gather(double *dst, const float *src, const int64_t *idx, int64_t m, int d) {
    for (int64_t i = 0; i < m; i++)
        for (int j = 0; j < d; j++) dst[(size_t)i * d + j] = src[(size_t)idx[i] * d + j];
}

static double cube1(double g, double inv_d) {
    double v = g * inv_d + 1.0;
    return v * v * v;
}

// Sum over i != j of k for a Gram matrix whose upper triangle holds x_i.x_j.
static double offdiag_sum(const double *g, int64_t m, double inv_d) {
    double s = 0;
    for (int64_t i = 0; i < m; i++) {
        double r = 0;
        for (int64_t j = i + 1; j < m; j++) r += cube1(g[(size_t)i * m + j], inv_d);
        s += r;
    }
    return 2 * s;
}

int vkd_kid_on_subsets(const float *x, const float *y, int dim, int num_subsets, int64_t m, const int64_t *ix,
                       const int64_t *iy, double *per_subset, double *mean, double *std, char *err, size_t errlen) {
    if (dim < 1 || num_subsets < 1 || m < 2)
        return kid_fail(err, errlen, "need dim >= 1, subsets >= 1 and subset size >= 2");
    size_t md = (size_t)m * dim, mm = (size_t)m * m;
    double *a = malloc(md * sizeof(double)), *b = malloc(md * sizeof(double)), *g = malloc(mm * sizeof(double));
    double *vals = malloc((size_t)num_subsets * sizeof(double));
    if (!a || !b || !g || !vals) {
        free(a), free(b), free(g), free(vals);
        return kid_fail(err, errlen, "out of memory for subsets of %lld x %d", (long long)m, dim);
    }
    double inv_d = 1.0 / dim, sum = 0;
    for (int k = 0; k < num_subsets; k++) {
        gather(a, x, ix + (size_t)k * m, m, dim);
        gather(b, y, iy + (size_t)k * m, m, dim);
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, (int)m, dim, 1.0, a, dim, 0.0, g, (int)m);
        double kxx = offdiag_sum(g, m, inv_d);
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, (int)m, dim, 1.0, b, dim, 0.0, g, (int)m);
        double kyy = offdiag_sum(g, m, inv_d);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)m, dim, 1.0, a, dim, b, dim, 0.0, g, (int)m);
        double kxy = 0;
        for (size_t i = 0; i < mm; i++) kxy += cube1(g[i], inv_d);
        double md2 = (double)m;
        vals[k] = (kxx + kyy) / (md2 * (md2 - 1)) - 2 * kxy / (md2 * md2);
        sum += vals[k];
    }
    double mu = sum / num_subsets, var = 0;
    for (int k = 0; k < num_subsets; k++) var += (vals[k] - mu) * (vals[k] - mu);
    *mean = mu;
    *std = sqrt(var / num_subsets);
    if (per_subset) memcpy(per_subset, vals, (size_t)num_subsets * sizeof(double));
    free(a), free(b), free(g), free(vals);
    if (!isfinite(mu)) return kid_fail(err, errlen, "the features hold non-finite values");
    return 0;
}

int vkd_kid(const float *x, int64_t nx, const float *y, int64_t ny, int dim, int num_subsets, int subset_size,
            uint64_t seed, double *mean, double *std, char *err, size_t errlen) {
    int64_t m = subset_size;
    if (m > nx) m = nx;
    if (m > ny) m = ny;
    if (m < 2 || num_subsets < 1)
        return kid_fail(err, errlen, "need at least 2 features in each set and 1 subset (have %lld and %lld)",
                        (long long)nx, (long long)ny);
    int64_t *ix = malloc((size_t)num_subsets * m * sizeof *ix), *iy = malloc((size_t)num_subsets * m * sizeof *iy);
    if (!ix || !iy || vkd_kid_subsets(nx, ny, num_subsets, subset_size, seed, ix, iy) != m) {
        free(ix), free(iy);
        return kid_fail(err, errlen, "out of memory");
    }
    int rc = vkd_kid_on_subsets(x, y, dim, num_subsets, m, ix, iy, NULL, mean, std, err, errlen);
    free(ix), free(iy);
    return rc;
}
