// Sampler and EDM-loss parity with PyTorch (tools/reference/samplers.py, float64),
// on models/mlp_2d.json with random weights. Both sides use the same random numbers:
//   test_sampler_parity export DIR   writes DIR/noise.safetensors: the Philox draws the device
//                                    sampler and loss make (computed on the host), x_init scaled
//   test_sampler_parity compare DIR CONFIG
//                                    runs the device sampler (vkd_sample_from) from x_init with
//                                    DIR/weights.safetensors and compares with DIR/ref.safetensors
// (tests/test_sampler_parity.sh runs export, the Python reference, then compare).
#include "harness.h"
#include "vkdistill/diffusion.h"
#include "vkdistill/io.h"

enum { N = 64, DIM = 2, STEPS = 18, LOSS_N = 16 };
static const uint64_t SEED = 11;

typedef struct {
    const char *name;
    vkd_sampler_kind kind;
    double s_churn, s_min, s_max, s_noise;
} run;
// As RUNS in tools/reference/samplers.py.
static const run RUNS[] = {
    {"euler", VKD_SAMPLER_EULER, 0, 0, HUGE_VAL, 1},
    {"heun", VKD_SAMPLER_HEUN, 0, 0, HUGE_VAL, 1},
    {"churn", VKD_SAMPLER_HEUN, 40, 0.05, 50, 1.003},
};

static int export_noise(const char *dir) {
    static float x[N * DIM], churn[STEPS][N * DIM], x0[LOSS_N * DIM], ns[LOSS_N], nz[LOSS_N * DIM];
    static char names[STEPS][32];
    vkd_st_tensor t[STEPS + 4];
    int64_t sx[2] = {N, DIM}, sl[2] = {LOSS_N, DIM}, sn[1] = {LOSS_N};
    vkd_sampler_cfg c = vkd_sampler_defaults();
    for (int j = 0; j < N * DIM; j++)
        x[j] = (float)(c.sigma_max * vkd_philox_normal(SEED, VKD_SAMPLER_STREAM_INIT, 0, j));
    int nt = 0;
    t[nt++] = (vkd_st_tensor){"x_init", 2, sx, x};
    for (int i = 0; i < STEPS; i++) {
        for (int j = 0; j < N * DIM; j++) churn[i][j] = vkd_philox_normal(SEED, VKD_SAMPLER_STREAM_CHURN, i, j);
        snprintf(names[i], sizeof names[i], "churn.%d", i);
        t[nt++] = (vkd_st_tensor){names[i], 2, sx, churn[i]};
    }
    for (int j = 0; j < LOSS_N * DIM; j++) {
        x0[j] = 2 * vkd_philox_uniform(SEED + 1, 0, 0, j) - 1;
        nz[j] = vkd_philox_normal(SEED, VKD_EDM_STREAM_NOISE, 0, j);
    }
    for (int j = 0; j < LOSS_N; j++) ns[j] = vkd_philox_normal(SEED, VKD_EDM_STREAM_SIGMA, 0, j);
    t[nt++] = (vkd_st_tensor){"loss.x0", 2, sl, x0};
    t[nt++] = (vkd_st_tensor){"loss.n_sigma", 1, sn, ns};
    t[nt++] = (vkd_st_tensor){"loss.noise", 2, sl, nz};
    char path[1024], err[512];
    snprintf(path, sizeof path, "%s/noise.safetensors", dir);
    if (vkd_st_write(path, t, nt, "F32", NULL, 0, err, sizeof err)) {
        printf("%s\n0 passed, 1 failed\n", err);
        return 1;
    }
    return 0;
}

static float *read_t(vkd_st *st, const char *name, int64_t n) {
    const vkd_st_info *in = vkd_st_find(st, name);
    char err[512];
    if (!in || in->numel != n) {
        CHECK(0, "reference tensor %s missing or of the wrong size", name);
        return NULL;
    }
    float *h = malloc(n * sizeof *h);
    if (vkd_st_read_f32(st, name, in->ndim, in->shape, h, err, sizeof err)) {
        CHECK(0, "%s", err);
        free(h);
        return NULL;
    }
    return h;
}

// max |a - b| over max |b|
static double scaled(const float *a, const float *b, int64_t n) {
    double mx = 0, e = 0;
    for (int64_t i = 0; i < n; i++) mx = fmax(mx, fabs(b[i]));
    for (int64_t i = 0; i < n; i++) e = fmax(e, fabs((double)a[i] - b[i]));
    return e / (mx > 0 ? mx : 1);
}

// Tolerances. Sampler: fp32 against float64 through 35 network evaluations; each evaluation
// carries ~1e-6 relative rounding and the step map x_hat + (t_next - t_hat)/t_hat (x_hat - D)
// contracts at small sigma, so the error stays near the per-evaluation level (lavapipe: ~3e-7 of
// the samples' scale, while the three runs differ from each other by ~0.3 to 3): 1e-4 leaves room
// for other devices' exp/log/rsqrt. Loss gradients: the network-parity tolerance.
#define TOL_SAMPLE 1e-4
#define TOL_LOSS 2e-4

static int compare(const char *dir, const char *config) {
    vkd_ctx *ctx = t_open();
    char path[1024], err[512];
    vkd_model *m = vkd_model_create(ctx, config, 1, 0, err, sizeof err);
    CHECK(m != NULL, "%s", err);
    snprintf(path, sizeof path, "%s/weights.safetensors", dir);
    CHECK(m && vkd_model_load(m, path, err, sizeof err) == 0, "%s", err);
    snprintf(path, sizeof path, "%s/noise.safetensors", dir);
    vkd_st *noise = vkd_st_open(path, err, sizeof err);
    snprintf(path, sizeof path, "%s/ref.safetensors", dir);
    vkd_st *ref = vkd_st_open(path, err, sizeof err);
    CHECK(noise && ref, "%s", err);
    if (!m || !noise || !ref || t_fail) return t_close(ctx);
    vkd_denoiser d = {.model = m};
    int64_t sx[2] = {N, DIM};
    float *x_init = read_t(noise, "x_init", N * DIM), *got = malloc(N * DIM * sizeof *got);
    vkd_tensor *X = vkd_tensor_new(ctx, "x", 2, sx, 0);
    for (size_t r = 0; r < sizeof RUNS / sizeof RUNS[0]; r++) {
        vkd_sampler_cfg c = vkd_sampler_defaults();
        c.kind = RUNS[r].kind, c.steps = STEPS;
        c.s_churn = RUNS[r].s_churn, c.s_min = RUNS[r].s_min, c.s_max = RUNS[r].s_max, c.s_noise = RUNS[r].s_noise;
        vkd_tensor_upload(X, x_init);
        int rc = vkd_sample_from(&d, &c, X, NULL, SEED, err, sizeof err);
        CHECK(rc == 0, "%s: %s", RUNS[r].name, err);
        char name[64];
        snprintf(name, sizeof name, "out.%s", RUNS[r].name);
        float *want = read_t(ref, name, N * DIM);
        if (!rc && want) {
            vkd_tensor_download(X, got);
            double e = scaled(got, want, N * DIM);
            CHECK(e < TOL_SAMPLE, "%s: final samples differ by %.3g of their scale (tolerance %g)", RUNS[r].name, e,
                  TOL_SAMPLE);
            printf("  sampler %-6s (%d steps, %s%s): final samples max err %.2e of their scale\n", RUNS[r].name, STEPS,
                   c.kind == VKD_SAMPLER_HEUN ? "Heun" : "Euler", c.s_churn > 0 ? ", churn" : "", e);
        }
        free(want);
    }
    // The EDM loss and its parameter gradients, with the same draws (step 0).
    int64_t sl[2] = {LOSS_N, DIM}, one = 1;
    float *x0 = read_t(noise, "loss.x0", LOSS_N * DIM);
    vkd_tensor *X0 = vkd_tensor_new(ctx, "x0", 2, sl, 0), *step = vkd_tensor_new(ctx, "step", 1, &one, VKD_HOST);
    vkd_tensor_upload(X0, x0);
    vkd_graph *g = vkd_graph_new(ctx, "edm_loss");
    vkd_tensor *L = vkd_edm_loss(g, &d, X0, NULL, -1.2f, 1.2f, 0.5f, SEED, step);
    vkd_graph_keep(g, L);
    CHECK(L && vkd_graph_backward(g, L) == 0 && vkd_graph_run(g) == 0, "edm loss: %s", vkd_graph_error(g));
    float lv = 0, *lref = read_t(ref, "loss", 1);
    vkd_tensor_download(L, &lv);
    if (lref) {
        double e = fabs(lv - lref[0]) / fabs(lref[0]);
        CHECK(e < TOL_LOSS, "EDM loss %.8g vs %.8g", lv, lref[0]);
        printf("  EDM loss %.6g (reference %.6g), rel err %.2e\n", lv, lref[0], e);
    }
    double worst = 0;
    int ngrads = 0;
    for (int i = 0; i < vkd_model_num_tensors(m); i++) {
        if (!vkd_model_tensor_is_param(m, i)) continue;
        vkd_tensor *p = vkd_model_tensor(m, i);
        char name[160];
        snprintf(name, sizeof name, "grad.%s", vkd_tensor_name(p));
        int64_t n = vkd_tensor_numel(p);
        float *want = read_t(ref, name, n), *gg = malloc(n * sizeof *gg);
        if (want) {
            vkd_tensor_download(vkd_tensor_grad(p), gg);
            double e = scaled(gg, want, n);
            CHECK(e < TOL_LOSS, "d loss / d %s: error %.3g of its scale", vkd_tensor_name(p), e);
            worst = fmax(worst, e);
            ngrads++;
        }
        free(want), free(gg);
    }
    printf("  EDM loss gradients of %d parameters: worst err %.2e of their scale\n", ngrads, worst);
    vkd_graph_free(g);
    vkd_tensor_free(X0), vkd_tensor_free(step), vkd_tensor_free(X);
    free(x_init), free(got), free(x0), free(lref);
    vkd_st_close(noise), vkd_st_close(ref);
    vkd_model_free(m);
    return t_close(ctx);
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "export") == 0) return export_noise(argv[2]);
    if (argc == 4 && strcmp(argv[1], "compare") == 0) return compare(argv[2], argv[3]);
    printf("usage: test_sampler_parity export DIR | compare DIR CONFIG\n0 passed, 1 failed\n");
    return 1;
}
