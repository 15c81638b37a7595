// Evaluation statistics against numpy/scipy (tests/eval_stats_ref.py, run by
// this program): feature mean/covariance, .npz both ways, the Frechet distance
// (pytorch-fid's sqrtm formula, including a singular case where sqrtm goes
// complex), KID on the same subsets, Inception Score, precision/recall/density/
// coverage; plus malformed .npz files, each refused with one line.
// usage: test_eval_stats eval_stats_ref.py [python]
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "vkdistill/eval.h"
#include "vkdistill/io.h"

static char dir[64];

static const char *tpath(const char *name) {
    static char buf[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static double gauss(void) {
    double u = t_uniform(), v = t_uniform();
    return sqrt(-2.0 * log(1.0 - u)) * cos(6.283185307179586 * v);
}

// n rows of z L + offset in dim d, z standard normal, L a random (d, d) mix
// with a decaying spectrum (so the covariance is far from isotropic).
static float *features(int64_t n, int d, double offset, double decay) {
    double *l = malloc((size_t)d * d * sizeof *l);
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++) l[i * d + j] = gauss() * exp(-decay * i) / sqrt(d);
    double *shift = malloc((size_t)d * sizeof *shift);
    for (int j = 0; j < d; j++) shift[j] = offset + 0.3 * gauss();
    float *x = malloc((size_t)n * d * sizeof *x);
    double *z = malloc((size_t)d * sizeof *z);
    for (int64_t r = 0; r < n; r++) {
        for (int i = 0; i < d; i++) z[i] = gauss();
        for (int j = 0; j < d; j++) {
            double s = shift[j];
            for (int i = 0; i < d; i++) s += z[i] * l[i * d + j];
            x[r * d + j] = (float)s;
        }
    }
    free(l), free(shift), free(z);
    return x;
}

static void stats_of(const float *x, int64_t n, int d, double **mu, double **sigma) {
    vkd_stats *st = vkd_stats_new(d);
    *mu = malloc((size_t)d * sizeof(double));
    *sigma = malloc((size_t)d * d * sizeof(double));
    vkd_stats_add(st, x, n);
    vkd_stats_finish(st, *mu, *sigma);
    vkd_stats_free(st);
}

static double maxabs(const double *x, long n) {
    double m = 0;
    for (long i = 0; i < n; i++) m = fabs(x[i]) > m ? fabs(x[i]) : m;
    return m;
}

// max |a - b| / max |b|: the error relative to the array's scale.
static double scaled_err(const double *a, const double *b, long n) {
    double m = 0;
    for (long i = 0; i < n; i++) {
        double e = fabs(a[i] - b[i]);
        if (!(e <= m)) m = e;
    }
    return m / maxabs(b, n);
}

static double *ref_read(vkd_npz *z, const char *name, long want) {
    char err[512];
    int nd;
    int64_t sh[VKD_NPY_MAX_DIMS];
    double *x = vkd_npz_read(z, name, VKD_NPY_F64, &nd, sh, err, sizeof err);
    if (!x) {
        printf("reference %s: %s\n", name, err);
        exit(1);
    }
    long n = 1;
    for (int i = 0; i < nd; i++) n *= (long)sh[i];
    if (want >= 0 && n != want) {
        printf("reference %s: %ld elements, expected %ld\n", name, n, want);
        exit(1);
    }
    return x;
}

static double ref_scalar(vkd_npz *z, const char *name) {
    double *x = ref_read(z, name, 1), v = *x;
    free(x);
    return v;
}

// ---------------------------------------------------------------- streaming statistics (C only)
static void test_stats_streaming(void) {
    int d = 24;
    int64_t n = 777;
    float *x = features(n, d, 1.0, 0.05);
    double *mu0, *s0, *mu = malloc(d * sizeof *mu), *s = malloc((size_t)d * d * sizeof *s);
    stats_of(x, n, d, &mu0, &s0);
    // Uneven chunks, and two halves merged, give the same statistics.
    vkd_stats *st = vkd_stats_new(d), *h = vkd_stats_new(d);
    int64_t cuts[] = {0, 1, 8, 300, 301, 777};
    for (int i = 0; i < 5; i++) vkd_stats_add(i < 3 ? st : h, x + cuts[i] * d, cuts[i + 1] - cuts[i]);
    CHECK(vkd_stats_count(st) == 300 && vkd_stats_count(h) == 477, "counts %lld %lld", (long long)vkd_stats_count(st),
          (long long)vkd_stats_count(h));
    vkd_stats_merge(st, h);
    vkd_stats_finish(st, mu, s);
    double e = fmax(scaled_err(mu, mu0, d), scaled_err(s, s0, (long)d * d));
    CHECK(e < 1e-13, "chunked + merged stats differ by %.3g", e);
    // Reference: a two-pass long double computation.
    double em = 0, es = 0;
    for (int j = 0; j < d; j++) {
        long double m = 0;
        for (int64_t r = 0; r < n; r++) m += x[r * d + j];
        em = fmax(em, fabs((double)(m / n) - mu[j]));
    }
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++) {
            long double mi = 0, mj = 0, c = 0;
            for (int64_t r = 0; r < n; r++) mi += x[r * d + i], mj += x[r * d + j];
            mi /= n, mj /= n;
            for (int64_t r = 0; r < n; r++) c += (x[r * d + i] - mi) * (x[r * d + j] - mj);
            es = fmax(es, fabs((double)(c / (n - 1)) - s[i * d + j]));
        }
    CHECK(em < 1e-13 && es / maxabs(s, (long)d * d) < 1e-13, "vs two-pass: mean %.3g, cov %.3g", em, es);

    // A large common offset: a sum of squares would cancel to nothing here.
    int64_t m = 2000;
    double *y = malloc((size_t)m * 2 * sizeof *y);
    for (int64_t r = 0; r < m; r++) y[2 * r] = 1e9 + gauss(), y[2 * r + 1] = -1e9 + 0.5 * y[2 * r] - 0.5e9 + gauss();
    vkd_stats *big = vkd_stats_new(2);
    vkd_stats_add_f64(big, y, m);
    double bm[2], bs[4];
    vkd_stats_finish(big, bm, bs);
    long double rm[2] = {0, 0}, rs[4] = {0, 0, 0, 0};
    for (int64_t r = 0; r < m; r++) rm[0] += y[2 * r], rm[1] += y[2 * r + 1];
    rm[0] /= m, rm[1] /= m;
    for (int64_t r = 0; r < m; r++)
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 2; j++) rs[i * 2 + j] += (y[2 * r + i] - rm[i]) * (y[2 * r + j] - rm[j]) / (m - 1);
    double eb = 0;
    for (int i = 0; i < 4; i++) eb = fmax(eb, fabs(bs[i] - (double)rs[i]) / fabs((double)rs[i]));
    CHECK(eb < 1e-7, "offset 1e9: covariance off by %.3g relative (cov %.6g %.6g %.6g)", eb, bs[0], bs[1], bs[3]);
    printf("stats: chunked/merged vs one pass %.2g; vs long double two-pass: mean %.2g, cov %.2g; offset 1e9: %.2g\n",
           e, em, es, eb);

    // Refusals leave the statistics as they were.
    float bad[2] = {1, NAN};
    CHECK(vkd_stats_add(big, bad, 1) == -1 && vkd_stats_count(big) == m, "NaN row accepted");
    vkd_stats *one = vkd_stats_new(2);
    vkd_stats_add_f64(one, y, 1);
    CHECK(vkd_stats_finish(one, bm, bs) == -1, "finish with one row accepted");
    CHECK(vkd_stats_new(0) == NULL, "dim 0 accepted");
    vkd_stats_free(one), vkd_stats_free(big), vkd_stats_free(st), vkd_stats_free(h);
    free(x), free(mu0), free(s0), free(mu), free(s), free(y);
}

// ---------------------------------------------------------------- Frechet distance (C only)
static void test_frechet_closed_forms(void) {
    char err[512] = "";
    int d = 32;
    double *mu1 = calloc(d, sizeof(double)), *mu2 = calloc(d, sizeof(double));
    double *s1 = calloc((size_t)d * d, sizeof(double)), *s2 = calloc((size_t)d * d, sizeof(double));
    // Diagonal covariances: FD = |dmu|^2 + sum (sqrt a - sqrt b)^2, with some
    // zero variances (singular) on both sides.
    double want = 0;
    for (int i = 0; i < d; i++) {
        mu1[i] = gauss(), mu2[i] = gauss();
        double a = i % 5 == 0 ? 0 : t_uniform() * 3, b = i % 7 == 0 ? 0 : t_uniform() * 2;
        s1[i * d + i] = a, s2[i * d + i] = b;
        want += (mu1[i] - mu2[i]) * (mu1[i] - mu2[i]) + (sqrt(a) - sqrt(b)) * (sqrt(a) - sqrt(b));
    }
    double fd = vkd_frechet_distance(mu1, s1, mu2, s2, d, err, sizeof err);
    CHECK(fabs(fd - want) < 1e-12 * want, "diagonal: %.15g, want %.15g (%s)", fd, want, err);
    // Rotating both covariances by the same orthogonal matrix changes nothing.
    // Householder reflection H = I - 2 v v^T / v^T v.
    double *v = malloc(d * sizeof *v), vv = 0, *r1 = malloc((size_t)d * d * sizeof(double)),
           *r2 = malloc((size_t)d * d * sizeof(double)), *hm = malloc((size_t)d * d * sizeof(double));
    for (int i = 0; i < d; i++) v[i] = gauss(), vv += v[i] * v[i];
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++) hm[i * d + j] = (i == j) - 2 * v[i] * v[j] / vv;
    for (int i = 0; i < d; i++)  // r = H diag H
        for (int j = 0; j < d; j++) {
            double a = 0, b = 0;
            for (int k = 0; k < d; k++)
                a += hm[i * d + k] * s1[k * d + k] * hm[k * d + j], b += hm[i * d + k] * s2[k * d + k] * hm[k * d + j];
            r1[i * d + j] = a, r2[i * d + j] = b;
        }
    fd = vkd_frechet_distance(mu1, r1, mu2, r2, d, err, sizeof err);
    // The rotated zero variances are zero only to roundoff (~1e-16), and the
    // square root turns that into ~1e-8 per zero direction: small positive
    // eigenvalues are kept (see the rank-deficient case below), so this case
    // is as exact as sqrt of roundoff allows, not to 1e-12.
    CHECK(fabs(fd - want) < 1e-7 * want, "rotated diagonal: %.15g, want %.15g", fd, want);
    // Equal statistics: 0 (clamped, never negative).
    fd = vkd_frechet_distance(mu1, r1, mu1, r1, d, err, sizeof err);
    CHECK(fd >= 0 && fd < 1e-10, "FD(x, x) = %.3g", fd);
    // Bad input: NaN with one line.
    r2[3 * d + 4] = NAN;
    err[0] = 0;
    fd = vkd_frechet_distance(mu1, r1, mu2, r2, d, err, sizeof err);
    CHECK(isnan(fd) && strstr(err, "covariance 2 holds a non-finite value at (3, 4)") && !strchr(err, '\n'),
          "NaN covariance: %g '%s'", fd, err);
    fd = vkd_frechet_distance(mu1, r1, mu2, r1, 0, err, sizeof err);
    CHECK(isnan(fd) && strstr(err, "dimension"), "dim 0: %g '%s'", fd, err);
    free(mu1), free(mu2), free(s1), free(s2), free(v), free(r1), free(r2), free(hm);
}

// A rank-deficient case with a known exact value: S1 has exact zeros and a
// genuine variance of 1e-13 beside ones of 100 (below n eps lambda_max, where
// a noise floor used to drop it); S2 has 1e4 in that direction, so it adds
// sqrt(1e-13 * 1e4) ~ 3.2e-5 to Tr (S1 S2)^1/2. Both are diagonal in a permuted
// basis, so the eigendecompositions are exact and so must the distance be.
static void test_frechet_rank_deficient(void) {
    char err[512] = "";
    enum { D = 64 };
    static double mu1[D], mu2[D], s1[D * D], s2[D * D];
    double want = 0;
    for (int i = 0; i < D; i++) {
        int p = (i * 37 + 11) % D;  // a permutation of the axes (37 is prime to 64)
        double a = i < 8 ? 100.0 : i < 16 ? 1e-13 : i < 24 ? 0.5 : 0.0;
        double b = i < 8 ? 4.0 : i < 16 ? 1e4 : i < 24 ? 0.0 : i < 40 ? 2.0 : 0.0;
        mu1[p] = 0.25 * (i % 3), mu2[p] = -0.5 * (i % 2);
        s1[p * D + p] = a, s2[p * D + p] = b;
        want += (mu1[p] - mu2[p]) * (mu1[p] - mu2[p]) + a + b - 2 * sqrt(a * b);
    }
    double fd = vkd_frechet_distance(mu1, s1, mu2, s2, D, err, sizeof err);
    CHECK(fabs(fd - want) <= 1e-12 * want, "rank-deficient: %.17g, want %.17g (relative error %.2g; %s)", fd, want,
          fabs(fd - want) / want, err);
    // And symmetric in its arguments.
    double fr = vkd_frechet_distance(mu2, s2, mu1, s1, D, err, sizeof err);
    CHECK(fabs(fr - want) <= 1e-12 * want, "rank-deficient, swapped: %.17g, want %.17g", fr, want);
}

// ---------------------------------------------------------------- .npz errors
static void expect_stats_reject(const char *file, const char *want) {
    char err[512] = "";
    double *mu = (double *)1, *sigma = (double *)1;
    int dim = -1;
    const char *p = tpath(file);
    int rc = vkd_npz_read_stats(p, &mu, &sigma, &dim, err, sizeof err);
    CHECK(rc != 0 && !mu && !sigma, "%s: accepted", file);
    CHECK(strstr(err, want) != NULL, "%s: error '%s' lacks '%s'", file, err, want);
    CHECK(strncmp(err, p, strlen(p)) == 0 && !strchr(err, '\n'), "%s: not one line naming the file: '%s'", file, err);
    printf("  %-18s -> %s\n", file, err + strlen(dir) + 1);
}

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (n) fwrite(p, 1, n, f);
    fclose(f);
}

static void test_npz_errors(const double *mu, const double *sigma, int d) {
    char err[512];
    printf("malformed .npz files:\n");
    // From the Python side.
    expect_stats_reject("bad_missing.npz", "no member 'sigma' (it has 'mu')");
    expect_stats_reject("bad_shape.npz", "'sigma' has shape (16, 15), expected (16, 16) to match 'mu'");
    expect_stats_reject("bad_mu2d.npz", "'mu' has 2 dimensions");
    expect_stats_reject("bad_complex.npz", "member 'mu': dtype '<c16' is not supported");
    expect_stats_reject("bad_object.npz", "member 'mu': dtype '|O' is not supported");
    expect_stats_reject("bad_string.npz", "member 'mu': dtype '<U3' is not supported");
    expect_stats_reject("bad_nan.npz", "'sigma' holds a non-finite value at (1, 2)");
    {
        // A deflated member whose directory promises more than deflate can
        // expand to (1032:1) is refused before the allocation (fuzzing found a
        // 400-byte file that asked for 4 GiB; tests/fuzz/regress/npz).
        char e2[512];
        CHECK(vkd_npz_write_stats(tpath("bomb.npz"), mu, sigma, d, 1, e2, sizeof e2) == 0, "%s", e2);
        size_t n;
        unsigned char *b = (unsigned char *)vkd_read_file(tpath("bomb.npz"), &n, e2, sizeof e2);
        int patched = 0;
        for (size_t i = 0; b && i + 46 + 9 <= n; i++)  // the central directory entry of sigma.npy
            if (memcmp(b + i, "PK\x01\x02", 4) == 0 && memcmp(b + i + 46, "sigma.npy", 9) == 0)
                b[i + 24] = 0xf0, b[i + 25] = 0xff, b[i + 26] = 0xff, b[i + 27] = 0x7f, patched = 1;
        CHECK(patched, "no central directory entry for sigma.npy");
        if (b) write_bytes(tpath("bomb.npz"), b, n);
        free(b);
        expect_stats_reject("bomb.npz", "member 'sigma' claims 2147483632 bytes from");
    }
    expect_stats_reject("bad_magic.npz", "member 'mu': not a .npy file");
    expect_stats_reject("bad_short.npz", "member 'mu': 120 bytes of data, but its shape needs 128");
    expect_stats_reject("bad_header.npz", "member 'mu': unexpected key in the header dict");
    expect_stats_reject("bad_bzip2.npz", "member 'mu': compression method 12 is not supported");
    // Files damaged on disk.
    write_bytes(tpath("bad_empty.npz"), "", 0);
    expect_stats_reject("bad_empty.npz", "not a zip archive (.npz), or a truncated one");
    write_bytes(tpath("bad_text.npz"), "mu = [1, 2, 3]\n", 15);
    expect_stats_reject("bad_text.npz", "not a zip archive");
    expect_stats_reject("does_not_exist.npz", "cannot open: No such file or directory");
    for (int compress = 0; compress < 2; compress++) {
        const char *good = tpath("good.npz");
        CHECK(vkd_npz_write_stats(good, mu, sigma, d, compress, err, sizeof err) == 0, "write: %s", err);
        size_t n;
        unsigned char *b = (unsigned char *)vkd_read_file(good, &n, err, sizeof err);
        write_bytes(tpath("bad_truncated.npz"), b, n - 30);
        expect_stats_reject("bad_truncated.npz", "truncated");
        write_bytes(tpath("bad_truncated.npz"), b, n / 2);
        expect_stats_reject("bad_truncated.npz", "truncated");
        // A flipped bit in the middle of sigma's data.
        b[n / 2] ^= 0x10;
        write_bytes(tpath("bad_crc.npz"), b, n);
        expect_stats_reject("bad_crc.npz", compress ? "member 'sigma'" : "member 'sigma' fails its CRC check");
        free(b);
    }
    // Every single-byte corruption is either harmless (a date, an attribute:
    // the values read are identical) or refused with one line naming the file.
    for (int compress = 0; compress < 2; compress++) {
        const char *good = tpath("good.npz"), *bad = tpath("bad_flip.npz");
        vkd_npz_write_stats(good, mu, sigma, d, compress, err, sizeof err);
        size_t n;
        unsigned char *b = (unsigned char *)vkd_read_file(good, &n, err, sizeof err);
        int wrong = 0, refused = 0, trials = 400;
        for (int t = 0; t < trials; t++) {
            size_t at = (size_t)(t_uniform() * n);
            unsigned char old = b[at];
            b[at] ^= (unsigned char)(1 + t_uniform() * 255);
            write_bytes(bad, b, n);
            b[at] = old;
            double *m2 = NULL, *s2 = NULL;
            int d2 = 0;
            err[0] = 0;
            if (vkd_npz_read_stats(bad, &m2, &s2, &d2, err, sizeof err) == 0) {
                wrong += d2 != d || memcmp(m2, mu, d * sizeof *mu) || memcmp(s2, sigma, (size_t)d * d * sizeof *sigma);
                free(m2), free(s2);
            } else {
                refused++;
                wrong += strncmp(err, bad, strlen(bad)) != 0 || strchr(err, '\n') != NULL;
            }
        }
        CHECK(wrong == 0, "%s: %d of %d corruptions read wrong values or gave a bad message",
              compress ? "deflate" : "stored", wrong, trials);
        printf("  %d random byte corruptions of a %s file: %d refused, %d harmless, %d wrong\n", trials,
               compress ? "deflated" : "stored", refused, trials - refused, wrong);
        free(b);
    }
    // A failed write leaves the old file alone.
    const char *keep = tpath("keep.npz");
    vkd_npz_write_stats(keep, mu, sigma, d, 0, err, sizeof err);
    int64_t sh[1] = {-3};
    vkd_npy_array badarr = {"x", VKD_NPY_F64, 1, sh, mu};
    CHECK(vkd_npz_write(keep, &badarr, 1, 0, err, sizeof err) != 0 && strstr(err, "bad name, dtype or shape"),
          "negative shape written: %s", err);
    CHECK(vkd_npz_write_stats(tpath("no/such/dir.npz"), mu, sigma, d, 0, err, sizeof err) != 0 &&
              strstr(err, "cannot create"),
          "write into a missing folder: '%s'", err);
    double *m2, *s2;
    int d2;
    CHECK(vkd_npz_read_stats(keep, &m2, &s2, &d2, err, sizeof err) == 0 && d2 == d && !memcmp(m2, mu, d * sizeof *mu) &&
              !memcmp(s2, sigma, (size_t)d * d * sizeof *sigma),
          "stats did not survive a round trip: %s", err);
    free(m2), free(s2);
}

// Reads member name of path as f64 and compares bit for bit with want.
static void expect_member(vkd_npz *z, const char *name, int ndim, const int64_t *shape, const double *want,
                          vkd_npy_dtype as) {
    char err[512] = "";
    int nd = -1;
    int64_t sh[VKD_NPY_MAX_DIMS];
    void *x = vkd_npz_read(z, name, as, &nd, sh, err, sizeof err);
    CHECK(x != NULL, "%s: %s", name, err);
    if (!x) return;
    int ok = nd == ndim;
    long n = 1;
    for (int i = 0; ok && i < nd; i++) ok = sh[i] == shape[i], n *= (long)shape[i];
    CHECK(ok, "%s: shape differs (ndim %d)", name, nd);
    long bad = 0;
    for (long i = 0; ok && i < n; i++) {
        double v = as == VKD_NPY_F64 ? ((double *)x)[i] : ((float *)x)[i];
        double w = as == VKD_NPY_F64 ? want[i] : (double)(float)want[i];
        bad += v != w;
    }
    CHECK(ok && bad == 0, "%s: %ld values differ", name, bad);
    free(x);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        printf("usage: %s eval_stats_ref.py [python]\n0 passed, 1 failed\n", argv[0]);
        return 1;
    }
    const char *python = argc > 2 ? argv[2] : "/usr/bin/python3";
    uint32_t one = 1;
    CHECK(*(unsigned char *)&one == 1, "the .npz code assumes a little-endian host");
    strcpy(dir, "/tmp/vkd_eval_XXXXXX");
    if (!mkdtemp(dir)) {
        printf("mkdtemp failed\n0 passed, 1 failed\n");
        return 1;
    }
    test_stats_streaming();
    test_frechet_closed_forms();
    test_frechet_rank_deficient();

    // ------------------------------------------------ inputs for the reference
    int d = 64, dpr = 16, k = 10;
    int64_t na = 500, nb = 450, nc = 40, nd = 50, ne = 300, nlog = 1000, nr = 300, nf = 280;
    float *A = features(na, d, 0.5, 0.02), *B = features(nb, d, 0.6, 0.03);
    float *C = features(nc, d, 0.5, 0.02), *D = features(nd, d, 0.5, 0.05);
    float *E = features(ne, 16, 1000.0, 0.0);  // large offset: tests the centring
    float *logits = malloc(nlog * k * sizeof *logits), *probs = malloc(nlog * k * sizeof *probs);
    for (int64_t i = 0; i < nlog * k; i++) logits[i] = (float)(3 * gauss() + (i % k == (i / k) % 3 ? 2 : 0));
    for (int64_t r = 0; r < nlog; r++) {
        double mx = -1e30, s = 0;
        for (int c = 0; c < k; c++) mx = fmax(mx, logits[r * k + c]);
        for (int c = 0; c < k; c++) s += exp(logits[r * k + c] - mx);
        for (int c = 0; c < k; c++) probs[r * k + c] = (float)(exp(logits[r * k + c] - mx) / s);
    }
    probs[5 * k + 3] = 0;  // exact zeros happen in float: 0 log 0 = 0
    // Real and fake from one distribution, the fake ones spread wider and
    // shifted: precision and recall well inside (0, 1).
    float *real = features(nr + nf, dpr, 0.0, 0.1), *fake = malloc(nf * dpr * sizeof *fake);
    for (int64_t i = 0; i < nf * dpr; i++) fake[i] = 1.3f * real[nr * dpr + i] + 0.05f;
    // KID subsets: 10 of 200, and the default 100 of 1000 clipped to min(na, nb).
    int ns1 = 10, ns2 = 100;
    int64_t *ix1 = malloc(ns1 * 200 * sizeof(int64_t)), *iy1 = malloc(ns1 * 200 * sizeof(int64_t));
    int64_t *ix2 = malloc(ns2 * nb * sizeof(int64_t)), *iy2 = malloc(ns2 * nb * sizeof(int64_t));
    int64_t m1 = vkd_kid_subsets(na, nb, ns1, 200, 7, ix1, iy1), m2 = vkd_kid_subsets(na, nb, ns2, 1000, 8, ix2, iy2);
    CHECK(m1 == 200 && m2 == nb, "subset sizes %lld %lld", (long long)m1, (long long)m2);
    int distinct = 1;
    for (int s = 0; s < ns1; s++)
        for (int i = 0; i < m1; i++)
            for (int j = 0; j < i; j++)
                distinct &= ix1[s * m1 + i] != ix1[s * m1 + j] && iy1[s * m1 + i] != iy1[s * m1 + j];
    CHECK(distinct, "KID subsets draw an index twice");
    double chk[5] = {1.0, -2.5, 1e300, 5e-324, -0.0};
    int64_t sA[2] = {na, d}, sB[2] = {nb, d}, sC[2] = {nc, d}, sD[2] = {nd, d}, sE[2] = {ne, 16}, sL[2] = {nlog, k},
            sR[2] = {nr, dpr}, sF[2] = {nf, dpr}, s1[2] = {ns1, m1}, s2[2] = {ns2, m2}, s5[1] = {5};
    vkd_npy_array in[] = {
        {"A", VKD_NPY_F32, 2, sA, A},         {"B", VKD_NPY_F32, 2, sB, B},
        {"C", VKD_NPY_F32, 2, sC, C},         {"D", VKD_NPY_F32, 2, sD, D},
        {"E", VKD_NPY_F32, 2, sE, E},         {"logits", VKD_NPY_F32, 2, sL, logits},
        {"probs", VKD_NPY_F32, 2, sL, probs}, {"real", VKD_NPY_F32, 2, sR, real},
        {"fake", VKD_NPY_F32, 2, sF, fake},   {"ix1", VKD_NPY_I64, 2, s1, ix1},
        {"iy1", VKD_NPY_I64, 2, s1, iy1},     {"ix2", VKD_NPY_I64, 2, s2, ix2},
        {"iy2", VKD_NPY_I64, 2, s2, iy2},     {"mu_chk", VKD_NPY_F64, 1, s5, chk},
    };
    int nin = (int)(sizeof in / sizeof in[0]);
    char err[512] = "";
    CHECK(vkd_npz_write(tpath("in.npz"), in, nin, 0, err, sizeof err) == 0, "write in.npz: %s", err);
    CHECK(vkd_npz_write(tpath("in_c.npz"), in, nin, 1, err, sizeof err) == 0, "write in_c.npz: %s", err);

    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s %s %s", python, argv[1], dir);
    int prc = system(cmd);
    CHECK(prc == 0, "the reference script failed (%d): %s", prc, cmd);
    if (prc != 0) {
        printf("%d passed, %d failed\n", t_pass, t_fail);
        return 1;
    }
    CHECK(1, "numpy loads both C-written files with identical values and CRCs");  // asserted by the script

    vkd_npz *ref = vkd_npz_open(tpath("ref.npz"), err, sizeof err);
    if (!ref) {
        printf("%s\n0 passed, 1 failed\n", err);
        return 1;
    }
    // ------------------------------------------------ mean / covariance vs np.mean / np.cov
    const char *names = "ABCDE";
    float *sets[5] = {A, B, C, D, E};
    int64_t ns[5] = {na, nb, nc, nd, ne};
    double *mus[5], *sigs[5], *rmus[5], *rsigs[5];
    for (int s = 0; s < 5; s++) {
        int dd = s == 4 ? 16 : d;
        char nm[16];
        stats_of(sets[s], ns[s], dd, &mus[s], &sigs[s]);
        snprintf(nm, sizeof nm, "mu_%c", names[s]);
        rmus[s] = ref_read(ref, nm, dd);
        snprintf(nm, sizeof nm, "sigma_%c", names[s]);
        rsigs[s] = ref_read(ref, nm, (long)dd * dd);
        double em = scaled_err(mus[s], rmus[s], dd), es = scaled_err(sigs[s], rsigs[s], (long)dd * dd);
        CHECK(em < 1e-13 && es < 1e-12, "stats %c vs numpy: mean %.3g, cov %.3g", names[s], em, es);
        printf("stats %c (%lld x %d) vs np.mean/np.cov: %.2g / %.2g\n", names[s], (long long)ns[s], dd, em, es);
    }

    // ------------------------------------------------ Frechet distance
    double fd_ref = ref_scalar(ref, "fd_AB"), fd_eig = ref_scalar(ref, "fd_AB_eig");
    double fd_cd_ref = ref_scalar(ref, "fd_CD"), fd_cd_eig = ref_scalar(ref, "fd_CD_eig");
    double imag_cd = ref_scalar(ref, "imag_CD"), fd_cd_mp = ref_scalar(ref, "fd_CD_mp");
    double fd = vkd_frechet_distance(mus[0], sigs[0], mus[1], sigs[1], d, err, sizeof err);
    double fd_same = vkd_frechet_distance(rmus[0], rsigs[0], rmus[1], rsigs[1], d, err, sizeof err);
    double fd_rev = vkd_frechet_distance(mus[1], sigs[1], mus[0], sigs[0], d, err, sizeof err);
    double e1 = fabs(fd - fd_ref) / fd_ref, e2 = fabs(fd_same - fd_ref) / fd_ref, e3 = fabs(fd_rev - fd) / fd;
    CHECK(e1 < 1e-6, "FD(A,B) %.15g vs pytorch-fid %.15g: rel %.3g", fd, fd_ref, e1);
    CHECK(e2 < 1e-9, "FD on numpy's stats %.15g vs %.15g: rel %.3g", fd_same, fd_ref, e2);
    CHECK(e3 < 1e-10, "FD(B,A) %.15g vs FD(A,B) %.15g", fd_rev, fd);
    printf(
        "FD A,B (n=%lld/%lld, dim %d): %.12g, pytorch-fid sqrtm %.12g (rel %.2g; on numpy's stats %.2g), "
        "eigvals %.12g, FD(B,A) rel %.2g\n",
        (long long)na, (long long)nb, d, fd, fd_ref, e1, e2, fd_eig, e3);
    double fdc = vkd_frechet_distance(mus[2], sigs[2], mus[3], sigs[3], d, err, sizeof err);
    double ec = fabs(fdc - fd_cd_ref) / fd_cd_ref, ece = fabs(fdc - fd_cd_eig) / fd_cd_eig;
    CHECK(isfinite(fdc) && ec < 1e-4, "singular FD(C,D) %.15g vs sqrtm real part %.15g: rel %.3g (%s)", fdc, fd_cd_ref,
          ec, err);
    printf(
        "FD C,D (n=%lld/%lld < dim %d, singular): %.12g, sqrtm real part %.12g (rel %.2g, sqrtm imaginary part up "
        "to %.2g), eigvals %.12g (rel %.2g)\n",
        (long long)nc, (long long)nd, d, fdc, fd_cd_ref, ec, imag_cd, fd_cd_eig, ece);
    // The 40-digit answer (NaN when mpmath is missing): float64 sqrtm and
    // eigvals of S1 S2 are off by ~1e-8 here, the roots of their noise-level
    // eigenvalues; ours drops those and should be far closer.
    if (!isnan(fd_cd_mp)) {
        double emp = fabs(fdc - fd_cd_mp) / fd_cd_mp;
        CHECK(emp < 1e-9, "singular FD(C,D) %.15g vs mpmath %.15g: rel %.3g", fdc, fd_cd_mp, emp);
        printf("FD C,D vs 40-digit mpmath %.15g: ours rel %.2g, sqrtm rel %.2g, eigvals rel %.2g\n", fd_cd_mp, emp,
               fabs(fd_cd_ref - fd_cd_mp) / fd_cd_mp, fabs(fd_cd_eig - fd_cd_mp) / fd_cd_mp);
    } else {
        printf("FD C,D: mpmath not installed, 40-digit check skipped\n");
    }

    // ------------------------------------------------ KID on the same subsets
    for (int t = 0; t < 2; t++) {
        double mean, sd, *per = malloc(ns2 * sizeof(double));
        int nsub = t ? ns2 : ns1;
        int rc = vkd_kid_on_subsets(A, B, d, nsub, t ? m2 : m1, t ? ix2 : ix1, t ? iy2 : iy1, per, &mean, &sd, err,
                                    sizeof err);
        double *rk = ref_read(ref, t ? "kid2" : "kid1", 2), *rv = ref_read(ref, t ? "kid2_vals" : "kid1_vals", nsub);
        double ev = 0;
        for (int s = 0; s < nsub; s++) ev = fmax(ev, fabs(per[s] - rv[s]));
        double em = fabs(mean - rk[0]), es = fabs(sd - rk[1]);
        // Each subset sums m^2 kernel values of order 1: roundoff ~1e-13.
        double tol = 1e-11 * fmax(fabs(rk[0]), rk[1]);
        CHECK(rc == 0 && em < tol && es < tol && ev < tol,
              "KID %d: %.15g +- %.15g vs %.15g +- %.15g (subset max diff %.3g) %s", t, mean, sd, rk[0], rk[1], ev, err);
        printf("KID (%d subsets of %lld): %.10g +- %.10g, numpy %.10g +- %.10g (abs diff %.2g / %.2g)\n", nsub,
               (long long)(t ? m2 : m1), mean, sd, rk[0], rk[1], em, es);
        if (t == 1) {  // vkd_kid draws the same subsets from the same seed
            double mean2, sd2;
            vkd_kid(A, na, B, nb, d, ns2, 1000, 8, &mean2, &sd2, err, sizeof err);
            CHECK(mean2 == mean && sd2 == sd, "vkd_kid %.15g vs on_subsets %.15g", mean2, mean);
        }
        free(per), free(rk), free(rv);
    }
    double km, ks;
    CHECK(vkd_kid(A, 1, B, nb, d, 10, 1000, 1, &km, &ks, err, sizeof err) != 0 && strstr(err, "KID: need at least 2"),
          "KID with one row: '%s'", err);

    // ------------------------------------------------ Inception Score
    struct {
        const char *ref;
        const float *x;
        int64_t n;
        int probs;
    } is[] = {{"is_logits", logits, nlog, 0}, {"is_logits_odd", logits, 997, 0}, {"is_probs", probs, nlog, 1}};
    for (int t = 0; t < 3; t++) {
        double mean, sd, *r = ref_read(ref, is[t].ref, 2);
        int rc = vkd_inception_score(is[t].x, is[t].n, k, is[t].probs, 10, &mean, &sd, err, sizeof err);
        double em = fabs(mean - r[0]) / r[0], es = fabs(sd - r[1]) / r[1];
        CHECK(rc == 0 && em < 1e-12 && es < 1e-9, "%s: %.15g +- %.15g vs %.15g +- %.15g", is[t].ref, mean, sd, r[0],
              r[1]);
        printf("IS %s (%lld x %d, 10 splits): %.12g +- %.6g, numpy %.12g +- %.6g (rel %.2g / %.2g)\n", is[t].ref,
               (long long)is[t].n, k, mean, sd, r[0], r[1], em, es);
        free(r);
    }
    logits[7] = NAN;
    CHECK(vkd_inception_score(logits, nlog, k, 0, 10, &km, &ks, err, sizeof err) != 0 &&
              strstr(err, "row 0 holds non-finite logits"),
          "NaN logits: '%s'", err);

    // ------------------------------------------------ precision / recall / density / coverage
    for (int kk = 3; kk <= 5; kk += 2) {
        vkd_prdc pr;
        double *r = ref_read(ref, kk == 3 ? "pr3" : "pr5", 4);
        int rc = vkd_prdc_compute(real, nr, fake, nf, dpr, kk, &pr, err, sizeof err);
        double got[4] = {pr.precision, pr.recall, pr.density, pr.coverage};
        CHECK(rc == 0 && got[0] == r[0] && got[1] == r[1] && fabs(got[2] - r[2]) < 1e-15 && got[3] == r[3],
              "PRDC k=%d: %.6f %.6f %.6f %.6f vs %.6f %.6f %.6f %.6f", kk, got[0], got[1], got[2], got[3], r[0], r[1],
              r[2], r[3]);
        printf(
            "PRDC k=%d (%lld real, %lld fake, dim %d): precision %.6f recall %.6f density %.6f coverage %.6f "
            "(scipy cdist: %.6f %.6f %.6f %.6f)\n",
            kk, (long long)nr, (long long)nf, dpr, got[0], got[1], got[2], got[3], r[0], r[1], r[2], r[3]);
        free(r);
    }
    vkd_prdc pr;
    CHECK(vkd_prdc_compute(real, 3, fake, nf, dpr, 3, &pr, err, sizeof err) != 0 && strstr(err, "more than k"),
          "PR with 3 real and k 3: '%s'", err);
    vkd_npz_close(ref);

    // ------------------------------------------------ numpy-written .npz read by C
    for (int compress = 0; compress < 2; compress++) {
        vkd_npz *z = vkd_npz_open(tpath(compress ? "np_compressed.npz" : "np_stored.npz"), err, sizeof err);
        CHECK(z != NULL, "open: %s", err);
        if (!z) continue;
        CHECK(vkd_npz_count(z) == 8 && vkd_npz_has(z, "sigma") && !vkd_npz_has(z, "sigma.npy") &&
                  !strcmp(vkd_npz_name(z, 0), "A"),
              "members: %d, first '%s'", vkd_npz_count(z), vkd_npz_name(z, 0));
        double *ad = malloc(na * d * sizeof *ad), *fort = malloc(35 * sizeof *fort), *f3 = malloc(24 * sizeof *f3);
        double ints[200], scalar = 2.5;
        for (long i = 0; i < na * d; i++) ad[i] = A[i];
        for (int i = 0; i < 7; i++)
            for (int j = 0; j < 5; j++) fort[i * 5 + j] = B[i * d + j];
        for (int i = 0; i < 24; i++) f3[i] = B[(long)i * d];
        for (int i = 0; i < 200; i++) ints[i] = (double)ix1[i];
        int64_t s75[2] = {7, 5}, s234[3] = {2, 3, 4}, sd1[1] = {d}, sdd[2] = {d, d}, s200[1] = {200};
        expect_member(z, "A", 2, sA, ad, VKD_NPY_F64);  // '<f4' converted to double
        expect_member(z, "A", 2, sA, ad, VKD_NPY_F32);
        expect_member(z, "mu", 1, sd1, rmus[0], VKD_NPY_F64);
        expect_member(z, "sigma", 2, sdd, rsigs[0], VKD_NPY_F64);
        expect_member(z, "fort", 2, s75, fort, VKD_NPY_F64);  // Fortran order, transposed to C order
        expect_member(z, "fort3", 3, s234, f3, VKD_NPY_F64);
        expect_member(z, "big", 1, s5, chk, VKD_NPY_F64);  // '>f8'
        expect_member(z, "ints", 1, s200, ints, VKD_NPY_F64);
        expect_member(z, "scalar", 0, s5, &scalar, VKD_NPY_F64);
        vkd_npz_close(z);
        double *m, *s;
        int dim = 0;
        CHECK(vkd_npz_read_stats(tpath(compress ? "np_compressed.npz" : "np_stored.npz"), &m, &s, &dim, err,
                                 sizeof err) == 0 &&
                  dim == d && !memcmp(m, rmus[0], d * sizeof *m) && !memcmp(s, rsigs[0], (size_t)d * d * sizeof *s),
              "read_stats of numpy's file: %s", err);
        if (dim == d) free(m), free(s);
        free(ad), free(fort), free(f3);
    }
    test_npz_errors(rmus[4], rsigs[4], 16);

    for (int s = 0; s < 5; s++) free(mus[s]), free(sigs[s]), free(rmus[s]), free(rsigs[s]);
    free(A), free(B), free(C), free(D), free(E), free(logits), free(probs), free(real), free(fake);
    free(ix1), free(iy1), free(ix2), free(iy2);
    if (t_fail == 0) {  // keep the files for a look when something failed
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd)) printf("could not remove %s\n", dir);
    } else {
        printf("files kept in %s\n", dir);
    }
    printf("%d passed, %d failed\n", t_pass, t_fail);
    return t_fail ? 1 : 0;
}
