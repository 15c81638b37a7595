// Streaming feature mean and covariance in float64.
//
// Rows come in chunks of up to CHUNK. Each chunk is centred on its own mean,
// its scatter matrix Σ (x - m_b)(x - m_b)^T is added with one BLAS dsyrk, and
// the chunk is merged with what came before by Chan et al.'s update:
//   M += M_b + δδ^T · n·m/(n+m),  mean += δ · m/(n+m),  δ = m_b - mean.
// Only differences from a mean are ever squared, so features with a large
// common offset keep their precision (a raw sum of outer products would lose
// it to cancellation), and merging statistics from several devices is the
// same update.
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "vkdistill/eval.h"

#define CHUNK 256

struct vkd_stats {
    int dim;
    int64_t n;
    double *mean;   // (dim)
    double *m2;     // (dim, dim) scatter matrix about the mean; upper triangle (i <= j) kept
    double *buf;    // (CHUNK, dim) centred chunk
    double *cm;     // (dim) chunk mean relative to shift, then delta
    double *shift;  // (dim)
};

vkd_stats *vkd_stats_new(int dim) {
    if (dim < 1) return NULL;
    vkd_stats *st = calloc(1, sizeof *st);
    if (!st) return NULL;
    st->dim = dim;
    st->mean = calloc((size_t)dim, sizeof(double));
    st->m2 = calloc((size_t)dim * dim, sizeof(double));
    st->buf = malloc((size_t)CHUNK * dim * sizeof(double));
    st->cm = malloc((size_t)dim * sizeof(double));
    st->shift = malloc((size_t)dim * sizeof(double));
    if (!st->mean || !st->m2 || !st->buf || !st->cm || !st->shift) {
        vkd_stats_free(st);
        return NULL;
    }
    return st;
}

void vkd_stats_free(vkd_stats *st) {
    if (!st) return;
    free(st->mean), free(st->m2), free(st->buf), free(st->cm), free(st->shift), free(st);
}

int64_t vkd_stats_count(const vkd_stats *st) { return st->n; }
int vkd_stats_dim(const vkd_stats *st) { return st->dim; }

// Folds nb rows whose scatter matrix is already in st->m2 (upper triangle)
// and whose mean is st->mean + delta: the cross term and the new mean. The
// caller forms delta from small differences, never as a difference of two
// large means, so a common offset costs nothing here either.
static void chan_merge(vkd_stats *st, const double *delta, int64_t nb) {
    int d = st->dim;
    double na = (double)st->n, nbd = (double)nb, tot = na + nbd;
    if (st->n > 0) cblas_dsyr(CblasRowMajor, CblasUpper, d, na * nbd / tot, delta, 1, st->m2, d);
    for (int i = 0; i < d; i++) st->mean[i] += delta[i] * (nbd / tot);
    st->n += nb;
}

// One chunk of m <= CHUNK rows of float or double features. Rows are taken
// relative to a shift s (the running mean, or the chunk's first row when
// there is none yet) so the sums see only small numbers:
//   r = mean(x - s),  centred rows (x - s) - r,  delta = (s - mean) + r.
#define ADD_CHUNK(T)                                                                                         \
    static void add_chunk_##T(vkd_stats *st, const T *x, int m) {                                            \
        int d = st->dim;                                                                                     \
        double *s = st->shift, *r = st->cm, *c = st->buf;                                                    \
        for (int j = 0; j < d; j++) s[j] = st->n ? st->mean[j] : (double)x[j], r[j] = 0;                     \
        for (int i = 0; i < m; i++)                                                                          \
            for (int j = 0; j < d; j++) r[j] += (double)x[(size_t)i * d + j] - s[j];                         \
        for (int j = 0; j < d; j++) r[j] /= m;                                                               \
        for (int i = 0; i < m; i++)                                                                          \
            for (int j = 0; j < d; j++) c[(size_t)i * d + j] = ((double)x[(size_t)i * d + j] - s[j]) - r[j]; \
        /* m2 += c^T c (upper triangle) */                                                                   \
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, d, m, 1.0, c, d, 1.0, st->m2, d);                 \
        for (int j = 0; j < d; j++) r[j] += s[j] - st->mean[j];                                              \
        chan_merge(st, r, m);                                                                                \
    }
ADD_CHUNK(float)
ADD_CHUNK(double)

int vkd_stats_add(vkd_stats *st, const float *feats, int64_t n) {
    size_t total = (size_t)n * st->dim;
    for (size_t i = 0; i < total; i++)
        if (!isfinite(feats[i])) return -1;
    for (int64_t r = 0; r < n; r += CHUNK)
        add_chunk_float(st, feats + (size_t)r * st->dim, (int)(n - r < CHUNK ? n - r : CHUNK));
    return 0;
}

int vkd_stats_add_f64(vkd_stats *st, const double *feats, int64_t n) {
    size_t total = (size_t)n * st->dim;
    for (size_t i = 0; i < total; i++)
        if (!isfinite(feats[i])) return -1;
    for (int64_t r = 0; r < n; r += CHUNK)
        add_chunk_double(st, feats + (size_t)r * st->dim, (int)(n - r < CHUNK ? n - r : CHUNK));
    return 0;
}

int vkd_stats_merge(vkd_stats *dst, const vkd_stats *src) {
    int d = dst->dim;
    if (src->dim != d) return -1;
    if (src->n == 0) return 0;
    for (size_t i = 0; i < (size_t)d * d; i++) dst->m2[i] += src->m2[i];
    for (int i = 0; i < d; i++) dst->cm[i] = src->mean[i] - dst->mean[i];
    chan_merge(dst, dst->cm, src->n);
    return 0;
}

int vkd_stats_finish(const vkd_stats *st, double *mu, double *sigma) {
    int d = st->dim;
    if (st->n < 2) return -1;
    double inv = 1.0 / (double)(st->n - 1);
    memcpy(mu, st->mean, (size_t)d * sizeof(double));
    for (int i = 0; i < d; i++)
        for (int j = i; j < d; j++)
            sigma[(size_t)i * d + j] = sigma[(size_t)j * d + i] = st->m2[(size_t)i * d + j] * inv;
    return 0;
}
