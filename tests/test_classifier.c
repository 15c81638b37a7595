// The FD classifier and its loss: cross-entropy (value and gradient) against a
// float64 log-softmax reference, including logits far apart; a tiny classifier
// trained on a learnable random task (the loss must fall); shapes, ReLU'd
// features, the batched feature runner against a single graph, save/reload,
// and a classifier refused as a denoiser.
// usage: test_classifier [FIXTURE_DIR]  (with a folder: also writes the files
// tests/test_fid_cli.sh needs: weights, a PNG folder, sample .npz files and
// malformed statistics)
#include <sys/stat.h>

#include "harness.h"
#include "vkdistill/data.h"
#include "vkdistill/eval.h"
#include "vkdistill/io.h"
#include "vkdistill/nn.h"

static const char *TINY =
    "{\"arch\": \"classifier\", \"in_channels\": 1, \"resolution\": 16, \"num_classes\": 3, \"widths\": [4, 8], "
    "\"convs_per_stage\": 1, \"features\": 8}";

// Loss and d loss / d logits of -mean_n sum_k y log softmax(z), in float64.
static double ref_xent(const double *z, const double *y, int n, int k, double *dz) {
    double L = 0;
    for (int i = 0; i < n; i++) {
        double mx = z[i * k];
        for (int j = 1; j < k; j++) mx = fmax(mx, z[i * k + j]);
        double se = 0;
        for (int j = 0; j < k; j++) se += exp(z[i * k + j] - mx);
        double lse = mx + log(se), ysum = 0;
        for (int j = 0; j < k; j++) L -= y[i * k + j] * (z[i * k + j] - lse), ysum += y[i * k + j];
        for (int j = 0; j < k; j++) dz[i * k + j] = (exp(z[i * k + j] - lse) * ysum - y[i * k + j]) / n;
    }
    return L / n;
}

static void test_xent(vkd_ctx *ctx) {
    enum { N = 7, K = 5 };
    double z[N * K], y[N * K] = {0}, dz[N * K];
    t_fill(z, N * K, -4, 4);
    z[0] = 40, z[1] = -40;  // a confident right answer (row 0, class 0) ...
    z[K + 2] = 60;          // ... and a confident wrong one (row 1 is class 0): p_y = e^-60 still counts
    for (int i = 0; i < N; i++) y[i * K + (i == 1 ? 0 : i % K)] = 1;
    vkd_tensor *tz = t_tensor(ctx, "z", 2, (int64_t[]){N, K}, z, 0), *ty = t_tensor(ctx, "y", 2, (int64_t[]){N, K}, y, 0);
    vkd_tensor_set_requires_grad(tz, 1);
    vkd_graph *g = vkd_graph_new(ctx, "xent");
    vkd_tensor *L = vkd_cross_entropy(g, tz, ty);
    vkd_graph_keep(g, L);
    vkd_graph_backward(g, L);
    CHECK(vkd_graph_run(g) == 0, "xent run: %s", vkd_graph_error(g));
    double ref = ref_xent(z, y, N, K, dz), *got = t_download(L), *gz = t_download(vkd_graph_grad(g, tz));
    CHECK(fabs(got[0] - ref) <= 2e-5 * (1 + fabs(ref)), "cross-entropy %.8g vs reference %.8g", got[0], ref);
    double e = t_relerr(gz, dz, N * K);
    CHECK(e <= 2e-6, "cross-entropy gradient: max rel. error %.3g", e);
    free(got), free(gz);
    vkd_graph_free(g);
    // Shapes that do not match are one error, not a crash.
    g = vkd_graph_new(ctx, "xent_bad");
    vkd_tensor *bad = vkd_full(g, 2, (int64_t[]){N, K + 1}, 0.0f);
    CHECK(vkd_cross_entropy(g, tz, bad) == NULL && strstr(vkd_graph_error(g), "must both be (N, K)"),
          "mismatched targets: '%s'", vkd_graph_error(g));
    vkd_graph_free(g);
    vkd_tensor_free(tz), vkd_tensor_free(ty);
}

// A learnable task: class k is a bright 4x4 square at one of three places, on noise.
static void make_images(int n, uint64_t seed, float *x, int *lab) {
    for (int i = 0; i < n; i++) {
        int k = (int)((i * 7 + seed) % 3);
        lab[i] = k;
        for (int p = 0; p < 256; p++) x[i * 256 + p] = (float)(0.6 * t_uniform() - 0.9);
        int oy = k == 0 ? 2 : 10, ox = k == 2 ? 10 : 2;
        for (int yy = 0; yy < 4; yy++)
            for (int xx = 0; xx < 4; xx++) x[i * 256 + (oy + yy) * 16 + ox + xx] = (float)(0.5 + 0.5 * t_uniform());
    }
}

static vkd_model *test_training(vkd_ctx *ctx) {
    char err[512];
    vkd_model *m = vkd_model_create_json(ctx, TINY, "tiny", 1, 3, err, sizeof err);
    CHECK(m != NULL, "tiny classifier: %s", err);
    if (!m) return NULL;
    int K = 0, F = 0;
    CHECK(vkd_classifier_dims(m, &K, &F) == 0 && K == 3 && F == 8, "dims %d %d", K, F);
    enum { B = 24 };
    vkd_tensor *x = vkd_tensor_new(ctx, "x", 4, (int64_t[]){B, 1, 16, 16}, VKD_HOST);
    vkd_tensor *y = vkd_tensor_new(ctx, "y", 2, (int64_t[]){B, 3}, VKD_HOST);
    int np = 0;
    vkd_tensor *params[64];
    for (int i = 0; i < vkd_model_num_tensors(m); i++)
        if (vkd_model_tensor_is_param(m, i)) params[np++] = vkd_model_tensor(m, i);
    CHECK(np == 8, "%d parameter tensors (want 2 convs, fc, head with biases)", np);
    vkd_adam_cfg ac = {.beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
    vkd_adam *opt = vkd_adam_new(ctx, params, np, &ac);
    vkd_graph *g = vkd_graph_new(ctx, "clf_step");
    vkd_tensor *feats = NULL, *logits = vkd_classifier_forward(g, m, x, &feats);
    CHECK(logits && feats && vkd_tensor_dim(logits, 0) == B && vkd_tensor_dim(logits, 1) == 3 &&
              vkd_tensor_dim(feats, 1) == 8,
          "forward shapes: %s", vkd_graph_error(g));
    vkd_tensor *loss = vkd_cross_entropy(g, logits, y);
    vkd_graph_keep(g, loss);
    vkd_graph_keep(g, feats);
    vkd_graph_backward(g, loss);
    vkd_adam_record(g, opt);
    CHECK(vkd_graph_compile(g) == 0, "compile: %s", vkd_graph_error(g));
    float *xh = vkd_tensor_map(x), *yh = vkd_tensor_map(y);
    int lab[B];
    float first = 0, last = 0, fmin_v = 0;
    for (int step = 1; step <= 60; step++) {
        make_images(B, (uint64_t)step, xh, lab);
        memset(yh, 0, sizeof(float) * B * 3);
        for (int i = 0; i < B; i++) yh[i * 3 + lab[i]] = 1;
        vkd_adam_set_step(opt, 1e-2f, step);
        if (vkd_graph_run(g)) {
            CHECK(0, "run: %s", vkd_graph_error(g));
            break;
        }
        float lv;
        vkd_tensor_download(loss, &lv);
        if (step == 1) {
            first = lv;
            float fb[B * 8];
            vkd_tensor_download(feats, fb);
            fmin_v = fb[0];
            for (int i = 1; i < B * 8; i++) fmin_v = fminf(fmin_v, fb[i]);
        }
        last = lv;
    }
    printf("tiny classifier: loss %.4f -> %.4f after 60 steps\n", first, last);
    CHECK(first > 0.7 && last < 0.3 * first, "loss did not fall: %.4f -> %.4f", first, last);
    CHECK(fmin_v >= 0, "features are ReLU'd, min %g", fmin_v);
    vkd_graph_free(g);
    vkd_adam_free(opt);

    // The batched feature runner (padded last batch) equals one graph over all images.
    enum { N = 13 };
    float imgs[N * 256], f1[N * 8], l1[N * 3], f2[N * 8], l2[N * 3];
    int lb[N];
    make_images(N, 99, imgs, lb);
    CHECK(vkd_classifier_features(m, imgs, N, 5, f1, l1, err, sizeof err) == 0, "features: %s", err);
    CHECK(vkd_classifier_features(m, imgs, N, 0, f2, l2, err, sizeof err) == 0, "features: %s", err);
    double e = 0;
    for (int i = 0; i < N * 8; i++) e = fmax(e, fabs(f1[i] - f2[i]));
    for (int i = 0; i < N * 3; i++) e = fmax(e, fabs(l1[i] - l2[i]));
    CHECK(e <= 1e-5, "batch 5 vs one batch: max diff %g", e);
    int right = 0;
    for (int i = 0; i < N; i++) {
        int b = 0;
        for (int j = 1; j < 3; j++)
            if (l1[i * 3 + j] > l1[i * 3 + b]) b = j;
        right += b == lb[i];
    }
    CHECK(right >= N - 1, "trained tiny classifier: %d/%d right", right, N);

    // Not a denoiser.
    g = vkd_graph_new(ctx, "denoise");
    vkd_tensor *sig = vkd_full(g, 1, (int64_t[]){B}, 1.0f);
    CHECK(vkd_model_denoise(g, m, x, sig, NULL) == NULL && strstr(vkd_graph_error(g), "not a denoiser"),
          "denoise on a classifier: '%s'", vkd_graph_error(g));
    vkd_graph_free(g);
    // Wrong input shape.
    g = vkd_graph_new(ctx, "badx");
    vkd_tensor *bx = vkd_full(g, 4, (int64_t[]){2, 3, 16, 16}, 0.0f);
    CHECK(vkd_classifier_forward(g, m, bx, NULL) == NULL && strstr(vkd_graph_error(g), "must be (N, 1, 16, 16)"),
          "bad x: '%s'", vkd_graph_error(g));
    vkd_graph_free(g);
    vkd_tensor_free(x), vkd_tensor_free(y);
    return m;
}

static void write_fixtures(vkd_ctx *ctx, vkd_model *m, const char *dir) {
    char p[1024], err[512];
    snprintf(p, sizeof p, "%s/clf.safetensors", dir);
    CHECK(vkd_model_save(m, p, "F32", err, sizeof err) == 0, "save: %s", err);
    // Reloaded weights give the same logits.
    vkd_model *m2 = vkd_model_create_json(ctx, TINY, "tiny", 0, 77, err, sizeof err);
    CHECK(m2 && vkd_model_load(m2, p, err, sizeof err) == 0, "reload: %s", err);
    enum { N = 40 };
    float imgs[N * 256], l1[N * 3], l2[N * 3];
    int lb[N];
    make_images(N, 5, imgs, lb);
    vkd_classifier_features(m, imgs, N, 0, NULL, l1, err, sizeof err);
    vkd_classifier_features(m2, imgs, N, 0, NULL, l2, err, sizeof err);
    CHECK(memcmp(l1, l2, sizeof l1) == 0, "reloaded weights differ");
    vkd_model_free(m2);
    // An image folder of 40 gray PNGs.
    snprintf(p, sizeof p, "%s/folder", dir);
    mkdir(p, 0755);
    for (int i = 0; i < N; i++) {
        snprintf(p, sizeof p, "%s/folder/img_%02d.png", dir, i);
        CHECK(vkd_write_png(p, imgs + i * 256, 1, 16, 16, err, sizeof err) == 0, "png: %s", err);
    }
    // The same images as "samples" (N, 1, 16, 16) floats, and 12x12 crops as "images" (N, 12, 12, 1) 0..255.
    snprintf(p, sizeof p, "%s/samples.npz", dir);
    vkd_npy_array a = {"samples", VKD_NPY_F32, 4, (int64_t[]){N, 1, 16, 16}, imgs};
    CHECK(vkd_npz_write(p, &a, 1, 0, err, sizeof err) == 0, "npz: %s", err);
    int64_t *u = malloc(sizeof *u * N * 144);
    for (int i = 0; i < N; i++)
        for (int yy = 0; yy < 12; yy++)
            for (int xx = 0; xx < 12; xx++) {
                double v = imgs[i * 256 + (yy + 2) * 16 + xx + 2] * 127.5 + 128;
                u[i * 144 + yy * 12 + xx] = v < 0 ? 0 : v > 255 ? 255 : (int64_t)v;
            }
    snprintf(p, sizeof p, "%s/images.npz", dir);
    vkd_npy_array b = {"images", VKD_NPY_I64, 4, (int64_t[]){N, 12, 12, 1}, u};
    CHECK(vkd_npz_write(p, &b, 1, 1, err, sizeof err) == 0, "npz: %s", err);
    free(u);
    // Statistics of the wrong dimension, and inconsistent ones.
    double mu[8] = {0}, sg[25] = {0};
    for (int i = 0; i < 5; i++) sg[i * 6] = 1;
    snprintf(p, sizeof p, "%s/stats5.npz", dir);
    CHECK(vkd_npz_write_stats(p, mu, sg, 5, 0, err, sizeof err) == 0, "stats: %s", err);
    snprintf(p, sizeof p, "%s/stats_bad.npz", dir);
    vkd_npy_array c[2] = {{"mu", VKD_NPY_F64, 1, (int64_t[]){8}, mu}, {"sigma", VKD_NPY_F64, 2, (int64_t[]){5, 5}, sg}};
    CHECK(vkd_npz_write(p, c, 2, 0, err, sizeof err) == 0, "npz: %s", err);
}

int main(int argc, char **argv) {
    vkd_ctx *ctx = t_open();
    test_xent(ctx);
    vkd_model *m = test_training(ctx);
    if (m && argc > 1) write_fixtures(ctx, m, argv[1]);
    vkd_model_free(m);
    return t_close(ctx);
}
