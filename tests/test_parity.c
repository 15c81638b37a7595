// Model parity with PyTorch, llm.c style. Each fixture (written by
// tools/reference/make_parity.py from the PyTorch reference of the same
// architecture, in float64) holds random weights, inputs, an upstream
// gradient u, the expected D(x; sigma, labels) and the gradients of
// L = sum(u * D) w.r.t. x and every parameter. The device computes all of
// them in fp32 through the recorded graph and its autograd.
//
// usage: test_parity FIXTURE.safetensors...
#include "harness.h"
#include "vkdistill/io.h"
#include "vkdistill/nn.h"

// Errors are measured against the scale of the expected tensor: an fp32
// network of this depth carries ~1e-6 relative rounding per op; 2e-4 of the
// tensor's largest magnitude leaves room for the deepest fixture and still
// catches any wrong weight, layout or formula (those give errors of order 1).
#define TOL 2e-4

static float *read_all(vkd_st *st, const char *name, int64_t *shape, int *ndim) {
    const vkd_st_info *in = vkd_st_find(st, name);
    if (!in) return NULL;
    int64_t n = 1;
    *ndim = in->ndim;
    for (int i = 0; i < in->ndim; i++) shape[i] = in->shape[i], n *= in->shape[i];
    float *h = malloc((n ? n : 1) * sizeof *h);
    char err[512];
    if (vkd_st_read_f32(st, name, in->ndim, shape, h, err, sizeof err)) {
        printf("%s\n", err);
        free(h);
        return NULL;
    }
    return h;
}

static double scaled_err(const float *a, const float *b, int64_t n) {
    double mx = 0, e = 0;
    for (int64_t i = 0; i < n; i++) mx = fmax(mx, fabs(b[i]));
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]) / (mx > 0 ? mx : 1);
        if (!(d <= e)) e = d;
    }
    return e;
}

static vkd_tensor *input_tensor(vkd_ctx *ctx, vkd_st *st, const char *name, int requires_grad) {
    int64_t shape[VKD_MAX_DIMS];
    int nd;
    float *h = read_all(st, name, shape, &nd);
    if (!h) return NULL;
    vkd_tensor *t = vkd_tensor_new(ctx, name, nd, shape, 0);
    vkd_tensor_upload(t, h);
    vkd_tensor_set_requires_grad(t, requires_grad);
    free(h);
    return t;
}

static void compare(const char *fixture, const char *what, const vkd_tensor *t, vkd_st *st, const char *ref_name,
                    double *worst) {
    int64_t shape[VKD_MAX_DIMS];
    int nd;
    float *ref = read_all(st, ref_name, shape, &nd);
    if (!ref || !t) {
        CHECK(0, "%s: %s: missing %s", fixture, what, ref ? "device tensor" : ref_name);
        free(ref);
        return;
    }
    int64_t n = vkd_tensor_numel(t);
    float *got = malloc(n * sizeof *got);
    vkd_tensor_download(t, got);
    double e = scaled_err(got, ref, n);
    CHECK(e < TOL, "%s: %s: error %.3g of its scale (tolerance %g)", fixture, what, e, TOL);
    if (e > *worst) *worst = e;
    free(got);
    free(ref);
}

static void run_fixture(vkd_ctx *ctx, const char *path) {
    char err[512];
    vkd_st *st = vkd_st_open(path, err, sizeof err);
    if (!st) {
        CHECK(0, "%s", err);
        return;
    }
    const char *json = vkd_st_metadata(st, "config");
    vkd_model *m = json ? vkd_model_create_json(ctx, json, path, 1, 0, err, sizeof err) : NULL;
    if (!m) {
        CHECK(0, "%s: %s", path, json ? err : "no config in __metadata__");
        vkd_st_close(st);
        return;
    }
    // Weights: every model tensor must be in the fixture under its PyTorch name.
    for (int i = 0; i < vkd_model_num_tensors(m); i++) {
        vkd_tensor *t = vkd_model_tensor(m, i);
        int64_t shape[VKD_MAX_DIMS];
        for (int k = 0; k < vkd_tensor_ndim(t); k++) shape[k] = vkd_tensor_dim(t, k);
        float *h = malloc(vkd_tensor_numel(t) * sizeof *h);
        int rc = vkd_st_read_f32(st, vkd_tensor_name(t), vkd_tensor_ndim(t), shape, h, err, sizeof err);
        CHECK(rc == 0, "%s", err);
        if (!rc) vkd_tensor_upload(t, h);
        free(h);
    }
    vkd_tensor *x = input_tensor(ctx, st, "input.x", 1), *sigma = input_tensor(ctx, st, "input.sigma", 0);
    vkd_tensor *labels = vkd_model_label_dim(m) ? input_tensor(ctx, st, "input.labels", 0) : NULL;
    vkd_tensor *up = input_tensor(ctx, st, "input.upstream", 0);
    vkd_tensor *aug = vkd_st_find(st, "input.augment_labels") ? input_tensor(ctx, st, "input.augment_labels", 0) : NULL;
    vkd_graph *g = vkd_graph_new(ctx, "parity");
    vkd_tensor *d = vkd_model_denoise_aug(g, m, x, sigma, labels, aug);
    vkd_graph_keep(g, d);
    vkd_graph_backward(g, vkd_sum(g, vkd_mul(g, d, up), 0));
    int rc = vkd_graph_run(g);
    CHECK(rc == 0, "%s: %s", path, vkd_graph_error(g));
    if (!rc) {
        double worst_d = 0, worst_g = 0;
        compare(path, "D(x; sigma)", d, st, "output.D", &worst_d);
        compare(path, "dL/dx", vkd_graph_grad(g, x), st, "grad.x", &worst_g);
        int nparams = 0;
        for (int i = 0; i < vkd_model_num_tensors(m); i++) {
            if (!vkd_model_tensor_is_param(m, i)) continue;
            vkd_tensor *t = vkd_model_tensor(m, i);
            char name[160];
            snprintf(name, sizeof name, "grad.%s", vkd_tensor_name(t));
            if (!vkd_st_find(st, name)) continue;  // e.g. DiT's pos_embed is not trained
            compare(path, name, vkd_tensor_grad(t), st, name, &worst_g);
            nparams++;
        }
        printf("%-40s %-5s %9lld params, %5d dispatches: D err %.2e, %d parameter gradients + dL/dx worst err %.2e\n",
               path, vkd_model_arch(m), (long long)vkd_model_param_count(m), vkd_graph_dispatch_count(g), worst_d,
               nparams, worst_g);
    }
    vkd_graph_free(g);
    vkd_tensor_free(x);
    vkd_tensor_free(sigma);
    vkd_tensor_free(labels);
    vkd_tensor_free(up);
    vkd_tensor_free(aug);
    vkd_model_free(m);
    vkd_st_close(st);
}

int main(int argc, char **argv) {
    vkd_ctx *ctx = t_open();
    for (int i = 1; i < argc; i++) run_fixture(ctx, argv[i]);
    CHECK(argc > 1, "no fixtures given");
    return t_close(ctx);
}
