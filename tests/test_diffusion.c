// The diffusion core on the device: the exact GMM teacher (forward and VJP against
// a double reference that is itself checked by finite differences), its config
// loader, the denoiser dispatch, EDM's loss (value and d loss / d x0), the Karras
// grid, and EDM's samplers run on the exact teacher (mode weights, moments).
#include "harness.h"
#include "ref_gmm.h"
#include "vkdistill/diffusion.h"
#include "core/graph.h"  // the dispatches' specialization constants (the small-mixture path)

#ifndef VKD_SOURCE_DIR
#define VKD_SOURCE_DIR "."
#endif

typedef struct {
    int K, ndim;
    int64_t shape[3];
    long d;
    double *w, *mu, *s;
} mix;

static mix make_mix(int K, int ndim, const int64_t *shape, double mu_range, double smin, double smax) {
    mix m = {.K = K, .ndim = ndim, .d = 1};
    for (int i = 0; i < ndim; i++) m.shape[i] = shape[i], m.d *= shape[i];
    m.w = malloc(K * sizeof *m.w), m.s = malloc(K * sizeof *m.s), m.mu = malloc(K * m.d * sizeof *m.mu);
    double ws = 0;
    t_fill(m.w, K, 0.5, 1.5);
    for (int k = 0; k < K; k++) ws += m.w[k];
    for (int k = 0; k < K; k++) m.w[k] /= ws;
    t_fill(m.s, K, smin, smax);
    t_fill(m.mu, K * m.d, -mu_range, mu_range);
    // The device holds fp32 means and stds: the reference uses exactly those.
    for (long i = 0; i < K * m.d; i++) m.mu[i] = (float)m.mu[i];
    for (int k = 0; k < K; k++) m.s[k] = (float)m.s[k];
    return m;
}

static void free_mix(mix *m) { free(m->w), free(m->mu), free(m->s); }

static double t_normal(void) {
    double u1 = t_uniform(), u2 = t_uniform();
    return sqrt(-2 * log(1 - u1)) * cos(2 * M_PI * u2);
}

// n points: a mixture sample plus sigma noise (what a denoiser sees), sigmas log-spaced 0.002..80.
static void make_points(const mix *m, long n, double *x, double *sigma) {
    for (long b = 0; b < n; b++) {
        sigma[b] = (float)exp(log(0.002) + (log(80.0) - log(0.002)) * (double)b / (n - 1));
        int k = (int)(t_uniform() * m->K) % m->K;
        for (long i = 0; i < m->d; i++)
            x[b * m->d + i] = (float)(m->mu[k * m->d + i] + m->s[k] * t_normal() + sigma[b] * t_normal());
    }
}

static double scaled_err(const double *a, const double *b, long n) {
    double mx = 0, e = 0;
    for (long i = 0; i < n; i++) mx = fmax(mx, fabs(b[i]));
    for (long i = 0; i < n; i++) {
        double v = fabs(a[i] - b[i]) / (1 + mx);
        if (!(v <= e)) e = v;
    }
    return e;
}

// ---------------------------------------------------------------- the reference against finite differences
static void test_ref_fd(const char *what, const mix *m) {
    enum { N = 3 };
    const double sig[N] = {0.05, 0.5, 5.0};
    long nd = N * m->d;
    double *x = malloc(nd * 8), *u = malloc(nd * 8), *dx = malloc(nd * 8), *fd = malloc(nd * 8);
    double *Dp = malloc(nd * 8), *Dm = malloc(nd * 8), sigma[N];
    make_points(m, N, x, sigma);
    for (int b = 0; b < N; b++) sigma[b] = sig[b];
    t_fill(u, nd, -1, 1);
    ref_gmm_denoise_vjp(dx, u, x, sigma, N, m->K, m->d, m->w, m->mu, m->s);
    for (long i = 0; i < nd; i++) {
        double h = 1e-6 * (1 + fabs(x[i])), x0 = x[i], lp = 0, lm = 0;
        x[i] = x0 + h;
        ref_gmm_denoise(Dp, NULL, x, sigma, N, m->K, m->d, m->w, m->mu, m->s);
        x[i] = x0 - h;
        ref_gmm_denoise(Dm, NULL, x, sigma, N, m->K, m->d, m->w, m->mu, m->s);
        x[i] = x0;
        for (long j = 0; j < nd; j++) lp += u[j] * Dp[j], lm += u[j] * Dm[j];
        fd[i] = (lp - lm) / (2 * h);
    }
    double e = scaled_err(dx, fd, nd);
    CHECK(e < 1e-6, "reference VJP vs finite differences (%s): %.3g", what, e);
    printf("  reference VJP vs finite differences, %-24s max err %.2e\n", what, e);
    free(x), free(u), free(dx), free(fd), free(Dp), free(Dm);
}

// ---------------------------------------------------------------- device vs reference
static vkd_gmm *device_gmm(vkd_ctx *ctx, const mix *m) {
    char err[512];
    vkd_gmm *g = vkd_gmm_create(ctx, m->K, m->ndim, m->shape, m->w, m->mu, m->s, err, sizeof err);
    CHECK(g != NULL, "gmm create: %s", err);
    return g;
}

static void test_gmm_device(vkd_ctx *ctx, const char *what, const mix *m, long n, double tol_d, double tol_dx) {
    vkd_gmm *gm = device_gmm(ctx, m);
    if (!gm) return;
    long nd = n * m->d;
    double *x = malloc(nd * 8), *u = malloc(nd * 8), *D = malloc(nd * 8), *dx = malloc(nd * 8);
    double *sigma = malloc(n * 8);
    make_points(m, n, x, sigma);
    t_fill(u, nd, -1, 1);
    int64_t xs[4] = {n, m->shape[0], m->shape[1], m->shape[2]}, ns = n;
    vkd_tensor *X = t_tensor(ctx, "x", m->ndim + 1, xs, x, 0);
    vkd_tensor *S = t_tensor(ctx, "sigma", 1, &ns, sigma, 0);
    vkd_tensor *U = t_tensor(ctx, "u", m->ndim + 1, xs, u, 0);
    vkd_tensor_set_requires_grad(X, 1);
    vkd_graph *g = vkd_graph_new(ctx, "gmm");
    vkd_tensor *Y = vkd_gmm_denoise(g, gm, X, S);
    vkd_graph_keep(g, Y);
    CHECK(vkd_graph_backward(g, vkd_sum(g, vkd_mul(g, Y, U), 0)) == 0, "backward: %s", vkd_graph_error(g));
    CHECK(vkd_graph_run(g) == 0, "run: %s", vkd_graph_error(g));
    int small = 0;  // passes on gmm.comp's one-invocation-a-sample path (KC: K <= 32, d <= 16)
    for (int i = 0; i < g->ndisp; i++) {
        const vkd_pipeline *pp = g->disp[i].pipe;
        small += pp && !strcmp(pp->shader, "gmm") && pp->nspec > 3 && pp->spec[3] == (uint32_t)m->K;
    }
    const char *env = getenv("VKD_GMM_SMALL");
    CHECK(small == (m->d <= 16 && !(env && !strcmp(env, "0")) ? 2 : 0), "%s: %d passes on the small-mixture path",
          what, small);
    ref_gmm_denoise(D, NULL, x, sigma, n, m->K, m->d, m->w, m->mu, m->s);
    ref_gmm_denoise_vjp(dx, u, x, sigma, n, m->K, m->d, m->w, m->mu, m->s);
    double *gD = t_download(Y), *gdx = t_download(vkd_graph_grad(g, X));
    // Per sample, so an error at one sigma is not hidden by the scale of another.
    double eD = 0, edx = 0;
    for (long b = 0; b < n; b++) {
        eD = fmax(eD, scaled_err(gD + b * m->d, D + b * m->d, m->d));
        edx = fmax(edx, scaled_err(gdx + b * m->d, dx + b * m->d, m->d));
    }
    CHECK(eD < tol_d, "%s: D max err %.3g (tolerance %g)", what, eD, tol_d);
    CHECK(edx < tol_dx, "%s: dx max err %.3g (tolerance %g)", what, edx, tol_dx);
    printf("  device vs reference, %-34s D %.2e  dx %.2e\n", what, eD, edx);
    // Replay gives the same bits (deterministic reductions).
    CHECK(vkd_graph_run(g) == 0, "rerun");
    double *gD2 = t_download(Y);
    CHECK(memcmp(gD, gD2, nd * sizeof *gD) == 0, "%s: replay is not bitwise identical", what);
    free(gD), free(gD2), free(gdx);
    vkd_graph_free(g);
    vkd_tensor_free(X), vkd_tensor_free(S), vkd_tensor_free(U);
    free(x), free(u), free(D), free(dx), free(sigma);
    vkd_gmm_free(gm);
}

// ---------------------------------------------------------------- config
static char *write_tmp(const char *text) {
    static char path[64];
    snprintf(path, sizeof path, "/tmp/vkd_gmm_XXXXXX");
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

static void test_config(vkd_ctx *ctx) {
    char err[512];
    vkd_gmm *file = vkd_gmm_load(ctx, VKD_SOURCE_DIR "/models/gmm_ring8.json", err, sizeof err);
    CHECK(file != NULL, "gmm_ring8.json: %s", err);
    char *p = write_tmp("{\"arch\": \"gmm\", \"preset\": \"ring8\"}");
    vkd_gmm *pre = vkd_gmm_load(ctx, p, err, sizeof err);
    remove(p);
    CHECK(pre != NULL, "preset: %s", err);
    if (file && pre) {
        const double *w1, *m1, *s1, *w2, *m2, *s2;
        vkd_gmm_params(file, &w1, &m1, &s1);
        vkd_gmm_params(pre, &w2, &m2, &s2);
        double e = 0;
        for (int k = 0; k < 8; k++) {
            e = fmax(e, fabs(w1[k] - w2[k]) + fabs(s1[k] - s2[k]));
            for (int i = 0; i < 2; i++) e = fmax(e, fabs(m1[2 * k + i] - m2[2 * k + i]));
        }
        CHECK(vkd_gmm_components(file) == 8 && e < 1e-15, "models/gmm_ring8.json differs from the preset by %g", e);
        CHECK(fabs(s2[3] - 0.1) < 1e-15 && fabs(hypot(m2[6], m2[7]) - 2) < 1e-15 && fabs(w2[5] - 0.125) < 1e-15,
              "ring8: radius 2, std 0.1, equal weights");
    }
    vkd_gmm_free(file), vkd_gmm_free(pre);
    // Image-shaped, unnormalized weights.
    p = write_tmp(
        "{\"arch\": \"gmm\", \"shape\": [1, 1, 2], \"weights\": [1, 3], \"means\": [[0, 1], [2, 3]],"
        " \"stds\": [0.5, 1]}");
    vkd_gmm *img = vkd_gmm_load(ctx, p, err, sizeof err);
    remove(p);
    CHECK(img != NULL, "image-shaped config: %s", err);
    if (img) {
        int64_t sh[3];
        const double *w;
        vkd_gmm_params(img, &w, NULL, NULL);
        CHECK(vkd_gmm_sample_shape(img, sh) == 3 && sh[2] == 2 && fabs(w[1] - 0.75) < 1e-15, "shape and weights");
        vkd_gmm_free(img);
    }
    static const struct {
        const char *text, *want;
    } bad[] = {
        {"{\"arch\": \"gmm\", \"weights\": [1], \"means\": [[0, 1]], \"stds\": [1], \"std\": 2}",
         "unknown field 'std'"},
        {"{\"arch\": \"gmm\", \"weights\": [1, 1], \"means\": [[0, 1]], \"stds\": [1, 1]}", "2 weights, 1 means"},
        {"{\"arch\": \"gmm\", \"weights\": [1, 1], \"means\": [[0, 1], [2]], \"stds\": [1, 1]}", "'means[1]'"},
        {"{\"arch\": \"gmm\", \"weights\": [1], \"means\": [[0, 1]], \"stds\": [0]}", "std 0 is 0"},
        {"{\"arch\": \"gmm\", \"weights\": [1], \"means\": [[0, 1]], \"stds\": [1], \"dim\": 3}", "'dim' is 3"},
        {"{\"arch\": \"gmm\", \"preset\": \"ring8\", \"stds\": [1]}", "unknown field 'stds'"},
        {"{\"arch\": \"gmm\", \"preset\": \"ring9\"}", "preset"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        p = write_tmp(bad[i].text);
        err[0] = 0;
        vkd_gmm *m = vkd_gmm_load(ctx, p, err, sizeof err);
        CHECK(!m && strstr(err, bad[i].want) && strncmp(err, p, strlen(p)) == 0 && !strchr(err, '\n'),
              "bad config %zu: got '%s', want '%s' naming the file", i, err, bad[i].want);
        vkd_gmm_free(m);
        remove(p);
    }
}

// ---------------------------------------------------------------- denoiser dispatch
static void test_denoiser(vkd_ctx *ctx, vkd_gmm *ring) {
    vkd_denoiser d = {.gmm = ring};
    int64_t sh[3];
    CHECK(vkd_denoiser_sample_shape(&d, sh) == 1 && sh[0] == 2 && vkd_denoiser_label_dim(&d) == 0 &&
              vkd_denoiser_ctx(&d) == ctx,
          "gmm denoiser shape / labels / ctx");
    int64_t xs[2] = {4, 2}, ls[2] = {4, 3}, n = 4;
    vkd_graph *g = vkd_graph_new(ctx, "denoiser_labels");
    vkd_tensor *x = vkd_full(g, 2, xs, 1), *s = vkd_full(g, 1, &n, 1), *l = vkd_full(g, 2, ls, 0);
    CHECK(vkd_denoiser_apply(g, &d, x, s, l) == NULL && strstr(vkd_graph_error(g), "unconditional"),
          "labels to the GMM are an error: %s", vkd_graph_error(g));
    vkd_graph_free(g);
    g = vkd_graph_new(ctx, "denoiser_shape");
    int64_t bad[2] = {4, 3};
    x = vkd_full(g, 2, bad, 1), s = vkd_full(g, 1, &n, 1);
    CHECK(vkd_denoiser_apply(g, &d, x, s, NULL) == NULL && strstr(vkd_graph_error(g), "(N, 2)"),
          "wrong sample shape is an error: %s", vkd_graph_error(g));
    vkd_graph_free(g);
    vkd_denoiser none = {0};
    g = vkd_graph_new(ctx, "denoiser_none");
    x = vkd_full(g, 2, xs, 1), s = vkd_full(g, 1, &n, 1);
    CHECK(vkd_denoiser_apply(g, &none, x, s, NULL) == NULL, "an empty denoiser is an error");
    vkd_graph_free(g);
}

// ---------------------------------------------------------------- EDM loss with the exact teacher
static void test_edm_loss(vkd_ctx *ctx, const char *what, const mix *m, long n) {
    const float p_mean = -1.2f, p_std = 1.2f, sd = 0.5f;
    const uint64_t seed = 1234;
    vkd_gmm *gm = device_gmm(ctx, m);
    if (!gm) return;
    vkd_denoiser den = {.gmm = gm};
    long nd = n * m->d;
    double *x0 = malloc(nd * 8), *sig = malloc(n * 8), *y = malloc(nd * 8), *D = malloc(nd * 8);
    double *u = malloc(nd * 8), *dx = malloc(nd * 8), *lam = malloc(n * 8);
    make_points(m, n, x0, sig);  // (sig unused: the loss draws its own)
    int64_t xs[4] = {n, m->shape[0], m->shape[1], m->shape[2]}, one = 1;
    vkd_tensor *X0 = t_tensor(ctx, "x0", m->ndim + 1, xs, x0, 0);
    vkd_tensor_set_requires_grad(X0, 1);
    vkd_tensor *step = vkd_tensor_new(ctx, "step", 1, &one, VKD_HOST);
    vkd_graph *g = vkd_graph_new(ctx, "edm_loss");
    vkd_tensor *L = vkd_edm_loss(g, &den, X0, NULL, p_mean, p_std, sd, seed, step);
    vkd_graph_keep(g, L);
    CHECK(L && vkd_graph_backward(g, L) == 0, "edm loss: %s", vkd_graph_error(g));
    for (uint32_t st = 3; st <= 4; st++) {
        memcpy(vkd_tensor_map(step), &st, 4);
        CHECK(vkd_graph_run(g) == 0, "run: %s", vkd_graph_error(g));
        // The reference draws the same Philox numbers on the host.
        double loss = 0;
        for (long b = 0; b < n; b++) {
            double ln = p_mean + p_std * (double)vkd_philox_normal(seed, VKD_EDM_STREAM_SIGMA, st, b);
            sig[b] = exp(ln);
            lam[b] = (sig[b] * sig[b] + sd * sd) / (sig[b] * sd * sig[b] * sd);
            for (long i = 0; i < m->d; i++)
                y[b * m->d + i] =
                    x0[b * m->d + i] + sig[b] * vkd_philox_normal(seed, VKD_EDM_STREAM_NOISE, st, b * m->d + i);
        }
        ref_gmm_denoise(D, NULL, y, sig, n, m->K, m->d, m->w, m->mu, m->s);
        for (long b = 0; b < n; b++)
            for (long i = 0; i < m->d; i++) {
                double e = D[b * m->d + i] - x0[b * m->d + i];
                loss += lam[b] * e * e / nd;
                u[b * m->d + i] = 2 * lam[b] * e / nd;
            }
        ref_gmm_denoise_vjp(dx, u, y, sig, n, m->K, m->d, m->w, m->mu, m->s);
        for (long i = 0; i < nd; i++) dx[i] -= u[i];  // D - x0: x0 enters y (through D) and directly
        double *gl = t_download(L), *gdx = t_download(vkd_graph_grad(g, X0));
        double el = fabs(gl[0] - loss) / fabs(loss), edx = scaled_err(gdx, dx, nd);
        CHECK(el < 2e-4, "%s step %u: loss %.8g vs reference %.8g (rel err %.3g)", what, st, gl[0], loss, el);
        CHECK(edx < 2e-4, "%s step %u: d loss / d x0 max err %.3g", what, st, edx);
        printf("  EDM loss, %-28s step %u: loss %.6g (ref %.6g, rel err %.1e), dx0 err %.1e\n", what, st, gl[0], loss,
               el, edx);
        free(gl), free(gdx);
    }
    vkd_graph_free(g);
    vkd_tensor_free(X0), vkd_tensor_free(step);
    free(x0), free(sig), free(y), free(D), free(u), free(dx), free(lam);
    vkd_gmm_free(gm);
}

// ---------------------------------------------------------------- Karras grid
static void test_karras(void) {
    vkd_sampler_cfg c = vkd_sampler_defaults();
    CHECK(c.kind == VKD_SAMPLER_HEUN && c.steps == 18 && c.sigma_min == 0.002 && c.sigma_max == 80 && c.rho == 7 &&
              c.s_churn == 0 && c.guidance == 1,
          "EDM defaults");
    double t[19];
    vkd_karras_sigmas(&c, t);
    double e = fabs(t[0] - 80) + fabs(t[17] - 0.002) + fabs(t[18]);
    // sigma_9 by hand: (80^(1/7) + 9/17 (0.002^(1/7) - 80^(1/7)))^7
    double mid = pow(pow(80, 1 / 7.0) + 9.0 / 17 * (pow(0.002, 1 / 7.0) - pow(80, 1 / 7.0)), 7);
    int mono = 1;
    for (int i = 0; i < 18; i++) mono &= t[i] > t[i + 1];
    CHECK(e < 1e-12 && fabs(t[9] - mid) < 1e-12 && mono, "Karras grid: ends %g %g %g, sigma_9 %g vs %g", t[0], t[17],
          t[18], t[9], mid);
    printf("  Karras grid (18): %.4g %.4g %.4g ... %.4g %.4g 0\n", t[0], t[1], t[2], t[16], t[17]);
}

// ---------------------------------------------------------------- samplers on the exact teacher
static void check_samples(const char *what, vkd_gmm *gm, const float *x, long n, double spread_tol) {
    const double *w, *mu, *s;
    vkd_gmm_params(gm, &w, &mu, &s);
    int K = vkd_gmm_components(gm);
    int *comp = malloc(n * sizeof *comp);
    vkd_gmm_assign_host(gm, n, x, comp);
    long cnt[64] = {0};
    double spread = 0;
    for (long i = 0; i < n; i++) {
        cnt[comp[i]]++;
        for (int j = 0; j < 2; j++) spread += pow(x[2 * i + j] - mu[2 * comp[i] + j], 2) / (2.0 * n);
    }
    double worst = 0;
    for (int k = 0; k < K; k++) {
        double p = (double)cnt[k] / n, se = sqrt(w[k] * (1 - w[k]) / n);
        worst = fmax(worst, fabs(p - w[k]) / se);
    }
    CHECK(worst < 4, "%s: a mode's weight is %.2f standard errors off", what, worst);
    // Moments: the mixture's mean and covariance against the samples', within 4 standard errors.
    double em[2] = {0}, ec[3] = {0};
    for (int k = 0; k < K; k++)
        for (int j = 0; j < 2; j++) em[j] += w[k] * mu[2 * k + j];
    for (int k = 0; k < K; k++) {
        ec[0] += w[k] * (s[k] * s[k] + mu[2 * k] * mu[2 * k]);
        ec[1] += w[k] * mu[2 * k] * mu[2 * k + 1];
        ec[2] += w[k] * (s[k] * s[k] + mu[2 * k + 1] * mu[2 * k + 1]);
    }
    ec[0] -= em[0] * em[0], ec[1] -= em[0] * em[1], ec[2] -= em[1] * em[1];
    double worst_m = 0;
    for (int j = 0; j < 2; j++) {
        double m = 0, v = 0;
        for (long i = 0; i < n; i++) m += x[2 * i + j] / (double)n;
        for (long i = 0; i < n; i++) v += pow(x[2 * i + j] - m, 2) / (n - 1.0);
        worst_m = fmax(worst_m, fabs(m - em[j]) / sqrt(v / n));
    }
    static const int pa[3][2] = {{0, 0}, {0, 1}, {1, 1}};
    for (int c = 0; c < 3; c++) {
        double m = 0, v = 0;
        double *z = malloc(n * sizeof *z);
        for (long i = 0; i < n; i++)
            m += (z[i] = (x[2 * i + pa[c][0]] - em[pa[c][0]]) * (x[2 * i + pa[c][1]] - em[pa[c][1]])) / n;
        for (long i = 0; i < n; i++) v += pow(z[i] - m, 2) / (n - 1.0);
        worst_m = fmax(worst_m, fabs(m - ec[c]) / sqrt(v / n));
        free(z);
    }
    CHECK(worst_m < 4, "%s: a mean or covariance entry is %.2f standard errors off", what, worst_m);
    // Each sample sits in its mode with the mode's spread (std 0.1 per axis).
    double sp = sqrt(spread);
    CHECK(fabs(sp / s[0] - 1) < spread_tol, "%s: within-mode std %.4f (mode std %.4f, tolerance %.0f%%)", what, sp,
          s[0], 100 * spread_tol);
    printf("  %-34s modes within %.2f SE, moments within %.2f SE, within-mode std %.4f (exact %.2f)\n", what, worst,
           worst_m, sp, s[0]);
    free(comp);
}

// EDM's sampler in double precision on the host with the reference teacher, from the
// same Philox draws the device makes (initial x: stream 0; step i's churn: stream 1, step i).
static void host_sampler(const vkd_sampler_cfg *c, vkd_gmm *gm, uint64_t seed, long n, double *x) {
    const double *w, *mu, *s;
    vkd_gmm_params(gm, &w, &mu, &s);
    int K = vkd_gmm_components(gm), N = c->steps;
    double *t = malloc((N + 1) * sizeof *t), *sh = malloc(n * 8), *sn = malloc(n * 8);
    double *xh = malloc(2 * n * 8), *d1 = malloc(2 * n * 8), *xn = malloc(2 * n * 8), *d2 = malloc(2 * n * 8);
    vkd_karras_sigmas(c, t);
    for (long j = 0; j < 2 * n; j++) x[j] = t[0] * vkd_philox_normal(seed, VKD_SAMPLER_STREAM_INIT, 0, j);
    for (int i = 0; i < N; i++) {
        double tc = t[i], tn = t[i + 1];
        double gamma = (c->s_min <= tc && tc <= c->s_max) ? fmin(c->s_churn / N, sqrt(2) - 1) : 0, th = tc + gamma * tc;
        for (long j = 0; j < 2 * n; j++)
            xh[j] = x[j] + (c->s_churn > 0 ? sqrt(th * th - tc * tc) * c->s_noise *
                                                 vkd_philox_normal(seed, VKD_SAMPLER_STREAM_CHURN, i, j)
                                           : 0);
        for (long b = 0; b < n; b++) sh[b] = th, sn[b] = tn;
        ref_gmm_denoise(d1, NULL, xh, sh, n, K, 2, w, mu, s);
        for (long j = 0; j < 2 * n; j++) xn[j] = xh[j] + (tn - th) * (xh[j] - d1[j]) / th;
        if (c->kind == VKD_SAMPLER_HEUN && i < N - 1) {
            ref_gmm_denoise(d2, NULL, xn, sn, n, K, 2, w, mu, s);
            for (long j = 0; j < 2 * n; j++)
                xn[j] = xh[j] + (tn - th) * (0.5 * (xh[j] - d1[j]) / th + 0.5 * (xn[j] - d2[j]) / tn);
        }
        memcpy(x, xn, 2 * n * 8);
    }
    free(t), free(sh), free(sn), free(xh), free(d1), free(xn), free(d2);
}

// spread_tol: how far the within-mode std may be from the mode's (the sampler's own
// discretization bias, measured in float64, plus 4 standard errors of the estimate).
static void test_sampler(vkd_ctx *ctx, vkd_gmm *ring, const char *what, vkd_sampler_cfg c, double spread_tol) {
    enum { N = 4096 };
    const uint64_t seed = 7;
    vkd_denoiser d = {.gmm = ring};
    int64_t xs[2] = {N, 2};
    vkd_tensor *out = vkd_tensor_new(ctx, "samples", 2, xs, 0);
    char err[512];
    int rc = vkd_sample(&d, &c, N, NULL, seed, out, err, sizeof err);
    CHECK(rc == 0, "%s: %s", what, err);
    if (!rc) {
        float *x = malloc(N * 2 * sizeof *x);
        double *ref = malloc(N * 2 * sizeof *ref), e = 0;
        vkd_tensor_download(out, x);
        host_sampler(&c, ring, seed, N, ref);
        for (long j = 0; j < 2 * N; j++) e = fmax(e, fabs(x[j] - ref[j]));
        // The ODE contracts toward the modes; fp32 rounding of ~1e-7 per step stays far below this.
        CHECK(e < 1e-3, "%s: device vs float64 host sampler from the same noise: max |diff| %.3g", what, e);
        printf("  %-34s device vs float64 host sampler: max |diff| %.2e\n", what, e);
        check_samples(what, ring, x, N, spread_tol);
        free(x), free(ref);
    }
    vkd_tensor_free(out);
}

static void test_sampler_errors(vkd_ctx *ctx, vkd_gmm *ring) {
    vkd_denoiser d = {.gmm = ring};
    int64_t xs[2] = {4, 3};
    vkd_tensor *out = vkd_tensor_new(ctx, "bad", 2, xs, 0);
    char err[512] = "";
    vkd_sampler_cfg c = vkd_sampler_defaults();
    CHECK(vkd_sample(&d, &c, 4, NULL, 1, out, err, sizeof err) != 0 && strstr(err, "does not hold"),
          "wrong sample shape: %s", err);
    c.steps = 0;
    CHECK(vkd_sample(&d, &c, 4, NULL, 1, out, err, sizeof err) != 0 && strstr(err, "steps"), "zero steps: %s", err);
    vkd_tensor_free(out);
}

// Classifier-free guidance: one Euler step from sigma_max to 0 returns D itself, so the
// sample is D_u + w (D_c - D_u) at sigma_max, checked against the two denoiser calls.
static void test_guidance(vkd_ctx *ctx) {
    static const char *cfg =
        "{\"arch\": \"mlp\", \"dim\": 2, \"hidden\": 16, \"depth\": 1, \"emb_dim\": 8,"
        " \"label_dim\": 3}";
    char err[512];
    vkd_model *m = vkd_model_create_json(ctx, cfg, "cond_mlp", 0, 5, err, sizeof err);
    CHECK(m != NULL, "conditional MLP: %s", err);
    if (!m) return;
    enum { N = 6 };
    int64_t xs[2] = {N, 2}, ls[2] = {N, 3}, n = N;
    double x[N * 2], lab[N * 3] = {0}, sig[N];
    t_fill(x, N * 2, -80, 80);
    for (int i = 0; i < N; i++) lab[i * 3 + i % 3] = 1, sig[i] = 80;
    vkd_tensor *X = t_tensor(ctx, "x", 2, xs, x, 0), *L = t_tensor(ctx, "labels", 2, ls, lab, 0);
    vkd_tensor *S = t_tensor(ctx, "sigma", 1, &n, sig, 0);
    vkd_graph *g = vkd_graph_new(ctx, "cfg_ref");
    vkd_tensor *dc = vkd_model_denoise(g, m, X, S, L), *du = vkd_model_denoise(g, m, X, S, vkd_full(g, 2, ls, 0));
    vkd_graph_keep(g, dc), vkd_graph_keep(g, du);
    CHECK(vkd_graph_run(g) == 0, "cfg reference: %s", vkd_graph_error(g));
    double *Dc = t_download(dc), *Du = t_download(du);
    vkd_denoiser d = {.model = m};
    vkd_sampler_cfg c = vkd_sampler_defaults();
    c.kind = VKD_SAMPLER_EULER, c.steps = 1;
    for (int k = 0; k < 3; k++) {
        double w = k == 0 ? 1 : k == 1 ? 0 : 2.5, want[N * 2];
        c.guidance = w;
        vkd_tensor *Y = t_tensor(ctx, "y", 2, xs, x, 0);
        int rc = vkd_sample_from(&d, &c, Y, L, 1, err, sizeof err);
        CHECK(rc == 0, "guidance %g: %s", w, err);
        for (int i = 0; i < N * 2; i++) want[i] = Du[i] + w * (Dc[i] - Du[i]);
        double *got = t_download(Y), e = scaled_err(got, want, N * 2);
        CHECK(e < 1e-5, "guidance %g: one Euler step gives D_u + w (D_c - D_u) with max err %.3g", w, e);
        printf("  guidance %-4g one Euler step vs D_u + w (D_c - D_u): max err %.2e\n", w, e);
        free(got);
        vkd_tensor_free(Y);
    }
    free(Dc), free(Du);
    vkd_graph_free(g);
    vkd_tensor_free(X), vkd_tensor_free(L), vkd_tensor_free(S);
    vkd_model_free(m);
}

int main(void) {
    vkd_ctx *ctx = t_open();
    int64_t v2[1] = {2}, img[3] = {1, 4, 4}, big[3] = {1, 32, 32};
    mix a = make_mix(8, 1, v2, 3.0, 0.05, 0.5);
    mix b = make_mix(3, 3, img, 1.0, 0.1, 0.3);
    mix c = make_mix(3, 3, big, 1.0, 0.2, 0.5);
    printf("GMM reference\n");
    test_ref_fd("2-D, 8 modes", &a);
    test_ref_fd("(1,4,4), 3 modes", &b);
    printf("GMM teacher on the device\n");
    test_gmm_device(ctx, "2-D, 8 modes, 24 sigmas", &a, 24, 2e-5, 2e-4);
    test_gmm_device(ctx, "(1,4,4), 3 modes, 12 sigmas", &b, 12, 2e-5, 2e-4);
    // d = 1024: log-densities reach ~|x - mu|^2 / (2 v) ~ 1e3 and carry fp32 rounding of ~1e-7 of that,
    // which moves responsibilities between overlapping modes by ~1e-4: a looser bound for D.
    test_gmm_device(ctx, "(1,32,32), 3 modes, 6 sigmas", &c, 6, 2e-4, 2e-4);
    printf("config\n");
    test_config(ctx);
    char err[512];
    char *p = write_tmp("{\"arch\": \"gmm\", \"preset\": \"ring8\"}");
    vkd_gmm *ring = vkd_gmm_load(ctx, p, err, sizeof err);
    remove(p);
    CHECK(ring != NULL, "ring8: %s", err);
    if (!ring) return t_close(ctx);
    test_denoiser(ctx, ring);
    printf("EDM loss\n");
    test_edm_loss(ctx, "2-D, 8 modes, 16 samples", &a, 16);
    test_edm_loss(ctx, "(1,4,4), 3 modes, 8 samples", &b, 8);
    printf("samplers on ring8 (4096 samples)\n");
    test_karras();
    vkd_sampler_cfg heun = vkd_sampler_defaults();
    // Float64 within-mode std of ring8 (16384 samples): Heun 18 steps 0.1021, Euler 100 steps 0.1020,
    // Heun 64 steps with churn 40 ~0.103; the estimate's standard error at 4096 samples is ~1%.
    test_sampler(ctx, ring, "Heun, 18 steps (35 NFE)", heun, 0.07);
    vkd_sampler_cfg euler = heun;
    euler.kind = VKD_SAMPLER_EULER;
    euler.steps = 100;
    test_sampler(ctx, ring, "Euler, 100 steps", euler, 0.07);
    vkd_sampler_cfg churn = heun;
    churn.steps = 64;
    churn.s_churn = 40, churn.s_min = 0.05, churn.s_max = 50, churn.s_noise = 1.003;
    test_sampler(ctx, ring, "Heun, 64 steps, churn 40", churn, 0.08);
    test_sampler_errors(ctx, ring);
    printf("classifier-free guidance\n");
    test_guidance(ctx);
    vkd_gmm_free(ring);
    free_mix(&a), free_mix(&b), free_mix(&c);
    return t_close(ctx);
}
