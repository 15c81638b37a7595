// Precision and recall with k-NN balls (Kynkaanniemi et al. 2019), density and
// coverage (Naeem et al. 2020), by exact brute force in float64.
//
// Squared distances come tile by tile from |a|^2 + |b|^2 - 2 a.b with one dgemm
// per TILE x TILE block, so the O(n^2 d) work runs at BLAS speed and memory stays
// O(TILE d + TILE^2) whatever n is (features are converted to double a tile
// at a time). Radii are compared squared, so no square roots are taken.
// Work: (nr^2 + nf^2 + nr nf) * 2d flops, e.g. 1.2e12 for 10k vs 10k at d = 2048.
#include <cblas.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vkdistill/eval.h"

#define TILE 512

static int pr_fail(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        int k = snprintf(err, errlen, "precision/recall: ");
        if (k >= 0 && (size_t)k < errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(err + k, errlen - (size_t)k, fmt, ap);
            va_end(ap);
        }
    }
    return -1;
}

static void to_double(double *dst, const float *src, int64_t rows, int d) {
    for (size_t i = 0; i < (size_t)rows * d; i++) dst[i] = src[i];
}

static double *sq_norms(const float *x, int64_t n, int d) {
    double *r = malloc((size_t)(n ? n : 1) * sizeof(double));
    if (!r) return NULL;
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (int j = 0; j < d; j++) s += (double)x[(size_t)i * d + j] * x[(size_t)i * d + j];
        r[i] = s;
    }
    return r;
}

typedef struct {
    const float *a, *b;  // row sets (na, d) and (nb, d)
    const double *na2, *nb2;
    int64_t na, nb;
    int d;
    double *ta, *tb, *g;  // tiles: (TILE, d), (TILE, d), (TILE, TILE)
} tiles;

// Visits every (row tile of a, column tile of b) block of squared distances:
// fn(ctx, i0, j0, rows, cols, g) with g[i * cols + j] = |a_{i0+i} - b_{j0+j}|^2.
static void each_block(tiles *t, void (*fn)(void *, int64_t, int64_t, int, int, const double *), void *ctx) {
    for (int64_t i0 = 0; i0 < t->na; i0 += TILE) {
        int rows = (int)(t->na - i0 < TILE ? t->na - i0 : TILE);
        to_double(t->ta, t->a + (size_t)i0 * t->d, rows, t->d);
        for (int64_t j0 = 0; j0 < t->nb; j0 += TILE) {
            int cols = (int)(t->nb - j0 < TILE ? t->nb - j0 : TILE);
            to_double(t->tb, t->b + (size_t)j0 * t->d, cols, t->d);
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, cols, t->d, -2.0, t->ta, t->d, t->tb, t->d, 0.0,
                        t->g, cols);
            for (int i = 0; i < rows; i++)
                for (int j = 0; j < cols; j++) {
                    double v = t->g[(size_t)i * cols + j] + t->na2[i0 + i] + t->nb2[j0 + j];
                    t->g[(size_t)i * cols + j] = v > 0 ? v : 0;  // roundoff can dip below 0
                }
            fn(ctx, i0, j0, rows, cols, t->g);
        }
    }
}

// The k+1 smallest squared distances of every row (itself, at ~0, included),
// kept sorted in best[(k+1) * row].
typedef struct {
    int k1;
    double *best;
} knn_ctx;

static void knn_block(void *p, int64_t i0, int64_t j0, int rows, int cols, const double *g) {
    knn_ctx *c = p;
    for (int i = 0; i < rows; i++) {
        double *b = c->best + (size_t)(i0 + i) * c->k1;
        for (int j = 0; j < cols; j++) {
            double v = g[(size_t)i * cols + j];
            if (v >= b[c->k1 - 1]) continue;
            int q = c->k1 - 1;
            while (q > 0 && b[q - 1] > v) b[q] = b[q - 1], q--;
            b[q] = v;
        }
    }
}

// Squared radius of each row of x: distance to its k-th neighbour in x.
static int radii2(const float *x, const double *n2, int64_t n, int d, int k, double *r2, tiles *t) {
    knn_ctx c = {k + 1, malloc((size_t)n * (k + 1) * sizeof(double))};
    if (!c.best) return -1;
    for (size_t i = 0; i < (size_t)n * (k + 1); i++) c.best[i] = INFINITY;
    t->a = t->b = x, t->na2 = t->nb2 = n2, t->na = t->nb = n, t->d = d;
    each_block(t, knn_block, &c);
    for (int64_t i = 0; i < n; i++) r2[i] = c.best[(size_t)i * (k + 1) + k];
    free(c.best);
    return 0;
}

typedef struct {
    const double *rr2, *rf2;  // squared radii of real and fake
    char *fake_in_real, *real_in_fake, *real_covered;
    int64_t *fake_count;  // real balls holding each fake
} cross_ctx;

static void cross_block(void *p, int64_t i0, int64_t j0, int rows, int cols, const double *g) {
    cross_ctx *c = p;
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) {
            double v = g[(size_t)i * cols + j];
            if (v <= c->rr2[i0 + i]) {
                c->fake_in_real[j0 + j] = 1, c->fake_count[j0 + j]++;
                c->real_covered[i0 + i] = 1;
            }
            if (v <= c->rf2[j0 + j]) c->real_in_fake[i0 + i] = 1;
        }
}

int vkd_prdc_compute(const float *real, int64_t nr, const float *fake, int64_t nf, int dim, int k, vkd_prdc *out,
                     char *err, size_t errlen) {
    if (k < 1 || dim < 1 || nr <= k || nf <= k)
        return pr_fail(err, errlen, "need k >= 1 and more than k features in each set (k %d, %lld real, %lld fake)", k,
                       (long long)nr, (long long)nf);
    for (size_t i = 0; i < (size_t)nr * dim; i++)
        if (!isfinite(real[i])) return pr_fail(err, errlen, "real feature %zu is not finite", i / dim);
    for (size_t i = 0; i < (size_t)nf * dim; i++)
        if (!isfinite(fake[i])) return pr_fail(err, errlen, "fake feature %zu is not finite", i / dim);
    tiles t = {0};
    t.ta = malloc((size_t)TILE * dim * sizeof(double));
    t.tb = malloc((size_t)TILE * dim * sizeof(double));
    t.g = malloc((size_t)TILE * TILE * sizeof(double));
    double *nr2 = sq_norms(real, nr, dim), *nf2 = sq_norms(fake, nf, dim);
    double *rr2 = malloc((size_t)nr * sizeof(double)), *rf2 = malloc((size_t)nf * sizeof(double));
    cross_ctx c = {rr2,
                   rf2,
                   calloc((size_t)nf, 1),
                   calloc((size_t)nr, 1),
                   calloc((size_t)nr, 1),
                   calloc((size_t)nf, sizeof(int64_t))};
    int rc = -1;
    if (!t.ta || !t.tb || !t.g || !nr2 || !nf2 || !rr2 || !rf2 || !c.fake_in_real || !c.real_in_fake ||
        !c.real_covered || !c.fake_count || radii2(real, nr2, nr, dim, k, rr2, &t) ||
        radii2(fake, nf2, nf, dim, k, rf2, &t)) {
        pr_fail(err, errlen, "out of memory");
        goto done;
    }
    t.a = real, t.na2 = nr2, t.na = nr;
    t.b = fake, t.nb2 = nf2, t.nb = nf;
    each_block(&t, cross_block, &c);
    int64_t p = 0, r = 0, cov = 0, dens = 0;
    for (int64_t j = 0; j < nf; j++) p += c.fake_in_real[j], dens += c.fake_count[j];
    for (int64_t i = 0; i < nr; i++) r += c.real_in_fake[i], cov += c.real_covered[i];
    out->precision = (double)p / nf;
    out->recall = (double)r / nr;
    out->density = (double)dens / ((double)k * nf);
    out->coverage = (double)cov / nr;
    rc = 0;
done:
    free(t.ta), free(t.tb), free(t.g), free(nr2), free(nf2), free(rr2), free(rf2);
    free(c.fake_in_real), free(c.real_in_fake), free(c.real_covered), free(c.fake_count);
    return rc;
}
