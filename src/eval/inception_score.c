// Inception Score (Salimans et al. 2016): exp(E_x KL(p(y|x) || p(y))), as
// torch-fidelity computes it: per split, p(y) is the mean of the split's
// p(y|x), the KL is averaged over the split and exponentiated; the result is
// the mean and population std over the splits. Everything in float64, the
// softmax through log-sum-exp so large logits cannot overflow.
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vkdistill/eval.h"

static int is_fail(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        int k = snprintf(err, errlen, "Inception Score: ");
        if (k >= 0 && (size_t)k < errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(err + k, errlen - (size_t)k, fmt, ap);
            va_end(ap);
        }
    }
    return -1;
}

// Row r of scores as log-probabilities into lp (k).
static int log_probs(const float *row, int k, int are_probs, double *lp) {
    if (are_probs) {
        // Probabilities that sum to 1 only up to float rounding: renormalize.
        double s = 0;
        for (int c = 0; c < k; c++) {
            if (!(row[c] >= 0) || !isfinite(row[c])) return -1;
            s += row[c];
        }
        if (!(s > 0)) return -1;
        for (int c = 0; c < k; c++) lp[c] = row[c] > 0 ? log(row[c] / s) : -INFINITY;
        return 0;
    }
    double mx = -INFINITY, s = 0;
    for (int c = 0; c < k; c++) {
        if (!isfinite(row[c])) return -1;
        if (row[c] > mx) mx = row[c];
    }
    for (int c = 0; c < k; c++) s += exp(row[c] - mx);
    double lse = mx + log(s);
    for (int c = 0; c < k; c++) lp[c] = row[c] - lse;
    return 0;
}

int vkd_inception_score(const float *scores, int64_t n, int k, int are_probs, int splits, double *mean, double *std,
                        char *err, size_t errlen) {
    if (k < 2 || splits < 1 || n < splits)
        return is_fail(err, errlen, "need at least 2 classes and one row per split (%lld rows, %d classes, %d splits)",
                       (long long)n, k, splits);
    double *lp = malloc((size_t)k * sizeof(double)), *q = malloc((size_t)k * sizeof(double)),
           *vals = malloc((size_t)splits * sizeof(double));
    if (!lp || !q || !vals) {
        free(lp), free(q), free(vals);
        return is_fail(err, errlen, "out of memory");
    }
    int rc = 0;
    double sum = 0;
    for (int s = 0; s < splits && !rc; s++) {
        int64_t a = s * n / splits, b = (s + 1) * n / splits;
        // Two passes over the split: p(y) first, then the KL of every row
        // against it (recomputing the softmax is cheaper than storing it).
        for (int c = 0; c < k; c++) q[c] = 0;
        for (int64_t r = a; r < b && !rc; r++) {
            if (log_probs(scores + (size_t)r * k, k, are_probs, lp)) {
                rc = is_fail(err, errlen, "row %lld holds non-finite %s", (long long)r,
                             are_probs ? "or negative probabilities" : "logits");
                break;
            }
            for (int c = 0; c < k; c++) q[c] += exp(lp[c]);
        }
        if (rc) break;
        for (int c = 0; c < k; c++) q[c] = log(q[c] / (double)(b - a));
        double kl = 0;
        for (int64_t r = a; r < b; r++) {
            log_probs(scores + (size_t)r * k, k, are_probs, lp);
            double row = 0;
            for (int c = 0; c < k; c++)
                if (lp[c] > -INFINITY) row += exp(lp[c]) * (lp[c] - q[c]);  // 0 log 0 = 0
            kl += row;
        }
        vals[s] = exp(kl / (double)(b - a));
        sum += vals[s];
    }
    if (!rc) {
        double mu = sum / splits, var = 0;
        for (int s = 0; s < splits; s++) var += (vals[s] - mu) * (vals[s] - mu);
        *mean = mu, *std = sqrt(var / splits);
    }
    free(lp), free(q), free(vals);
    return rc;
}
