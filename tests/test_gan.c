// DMD2's GAN term:
//  - the head (conv 4x4 s2 -> GN -> SiLU -> conv kxk sk -> GN -> SiLU -> conv 1x1 -> mean)
//    matches a double-precision composition of the reference ops, on two bottleneck shapes;
//  - the generator's GAN gradient w.r.t. the sample (through the frozen fake network's
//    encoder and the frozen head) matches central finite differences of the GAN loss,
//    for DMD2 (whose fake network otherwise runs under no-grad) and SiD;
//  - the generator phase leaves the head's and the fake network's gradients untouched;
//  - the fake phase trains the fake network's encoder and the head together: its
//    discriminator loss falls from ~2 log 2 to well below on separable real/fake images.
// usage: test_gan UNET_TINY.json
#include "harness.h"
#include "ref_conv.h"
#include "ref_nn.h"
#include "ref_ops.h"
#include "vkdistill/distill.h"

static const char *unet_path;

static int head_groups(int c) {
    int gmax = c / 4 < 32 ? c / 4 : 32;
    for (int g = gmax; g > 1; g--)
        if (c % g == 0) return g;
    return 1;
}

// conv -> (optional GN -> SiLU) in double precision, on (n, c, r, r) -> (n, cout, ro, ro).
static double *ref_stage(const double *x, int n, int c, int r, const vkd_gan_head *h, int wi, int cout, int k, int stride,
                         int pad, int norm, int *ro) {
    double *w = t_download(vkd_gan_head_tensor(h, wi)), *b = t_download(vkd_gan_head_tensor(h, wi + 1));
    ref_conv_shape s = {n, c, r, r, cout, k, k, stride, pad, pad, 1};
    int ho, wo;
    ref_conv2d_out(&s, &ho, &wo);
    double *y = malloc(sizeof(double) * n * cout * ho * wo);
    ref_conv2d_fwd(y, x, w, b, &s);
    if (norm) {
        double *gw = t_download(vkd_gan_head_tensor(h, wi + 2)), *gb = t_download(vkd_gan_head_tensor(h, wi + 3));
        double *z = malloc(sizeof(double) * n * cout * ho * wo);
        ref_groupnorm_fwd(z, NULL, NULL, y, gw, gb, n, cout, ho * wo, head_groups(cout), 1e-5);
        ref_unary_fwd(y, z, (long)n * cout * ho * wo, REF_SILU);
        free(z), free(gw), free(gb);
    }
    free(w), free(b);
    *ro = ho;
    return y;
}

static void test_head_reference(vkd_ctx *ctx, int c, int r) {
    enum { N = 3 };
    char err[256];
    int64_t feat[3] = {c, r, r};
    vkd_gan_head *h = vkd_gan_head_new(ctx, feat, 11, err, sizeof err);
    CHECK(h != NULL, "head: %s", err);
    if (!h) return;
    // Non-trivial norm affines, so the reference sees them used.
    for (int i = 2; i < 8; i += (i == 3 ? 3 : 1)) {
        int64_t n = vkd_tensor_numel(vkd_gan_head_tensor(h, i));
        float *v = malloc(sizeof(float) * n);
        for (int64_t j = 0; j < n; j++) v[j] = (float)(0.5 + t_uniform());
        vkd_tensor_upload(vkd_gan_head_tensor(h, i), v);
        free(v);
    }
    long nx = (long)N * c * r * r;
    double *x = malloc(sizeof(double) * nx);
    t_fill(x, nx, -2, 2);
    vkd_tensor *X = t_tensor(ctx, "features", 4, (int64_t[]){N, c, r, r}, x, 0);
    vkd_graph *g = vkd_graph_new(ctx, "gan_head");
    vkd_graph_set_grad_enabled(g, 0);
    vkd_tensor *y = vkd_gan_head_forward(g, h, X);
    vkd_graph_keep(g, y);
    CHECK(y && vkd_graph_run(g) == 0, "head forward: %s", vkd_graph_error(g));
    int r1, r2, r3, k2 = r / 2 < 4 ? r / 2 : 4;
    double *a = ref_stage(x, N, c, r, h, 0, c, 4, 2, 1, 1, &r1);
    double *b = ref_stage(a, N, c, r1, h, 4, c, k2, k2, 0, 1, &r2);
    double *l = ref_stage(b, N, c, r2, h, 8, 1, 1, 1, 0, 0, &r3);
    double ref[N];
    for (int i = 0; i < N; i++) {
        ref[i] = 0;
        for (int p = 0; p < r3 * r3; p++) ref[i] += l[i * r3 * r3 + p] / (r3 * r3);
    }
    if (y) {
        double *got = t_download(y), e = t_relerr(got, ref, N);
        CHECK(vkd_tensor_numel(y) == N && e < 1e-5, "head (C %d, R %d): max error %g vs the reference", c, r, e);
        printf("head C=%d R=%d (%dx%d logits averaged): max error %.2e, logits %.3g %.3g %.3g\n", c, r, r3, r3, e,
               ref[0], ref[1], ref[2]);
        free(got);
    }
    free(a), free(b), free(l), free(x);
    vkd_graph_free(g);
    vkd_tensor_free(X);
    vkd_gan_head_free(h);
}

typedef struct {
    vkd_model *teacher, *fake, *fake_view;
    vkd_gan_head *head, *head_view;
    vkd_tensor *step, *labels;
    int64_t shape[4];
} nets;

static int nets_open(vkd_ctx *ctx, nets *s, int n) {
    char err[512];
    memset(s, 0, sizeof *s);
    s->teacher = vkd_model_create(ctx, unet_path, 0, 21, err, sizeof err);
    s->fake = s->teacher ? vkd_model_create(ctx, unet_path, 1, 22, err, sizeof err) : NULL;
    CHECK(s->fake != NULL, "models: %s", err);
    if (!s->fake) return -1;
    s->fake_view = vkd_model_frozen_view(s->fake);
    int64_t bs[3], ss[3];
    CHECK(vkd_model_bottleneck_shape(s->fake, bs) == 3, "the UNet has a bottleneck");
    s->head = vkd_gan_head_new(ctx, bs, 23, err, sizeof err);
    CHECK(s->head != NULL, "head: %s", err);
    if (!s->head) return -1;
    s->head_view = vkd_gan_head_frozen_view(s->head);
    vkd_model_sample_shape(s->fake, ss);
    s->shape[0] = n, s->shape[1] = ss[0], s->shape[2] = ss[1], s->shape[3] = ss[2];
    s->step = vkd_tensor_new(ctx, "step", 1, (int64_t[]){1}, VKD_HOST);
    ((uint32_t *)vkd_tensor_map(s->step))[0] = 3;
    int K = vkd_model_label_dim(s->fake);
    s->labels = vkd_tensor_new(ctx, "labels", 2, (int64_t[]){n, K}, 0);
    float *lh = calloc((size_t)n * K, sizeof *lh);
    for (int i = 0; i < n; i++) lh[i * K + i % K] = 1;
    vkd_tensor_upload(s->labels, lh);
    free(lh);
    return 0;
}

static void nets_close(nets *s) {
    vkd_gan_head_free(s->head_view);
    vkd_gan_head_free(s->head);
    vkd_model_free(s->fake_view);
    vkd_model_free(s->fake);
    vkd_model_free(s->teacher);
    vkd_tensor_free(s->step);
    vkd_tensor_free(s->labels);
}

// The generator loss on x with the GAN term at `weight`; the input gradient and
// the unweighted GAN loss are kept.
static vkd_graph *generator_graph(vkd_ctx *ctx, nets *s, vkd_method m, vkd_tensor *x, float weight, vkd_tensor **gan_loss,
                                  vkd_tensor **grad_x) {
    vkd_distill_cfg c = vkd_distill_defaults(m);
    c.t_max = 0.5f;  // moderate sigmas: a discriminator signal worth differentiating
    vkd_denoiser dt = {.model = s->teacher}, dfv = {.model = s->fake_view};
    vkd_gan_term gan = {.head = s->head_view, .weight = weight};
    vkd_graph *g = vkd_graph_new(ctx, "gan_generator");
    vkd_tensor *loss = vkd_distill_generator_loss(g, &c, x, s->labels, &dt, &dfv, 9, s->step, &gan);
    *gan_loss = gan.loss;
    vkd_graph_keep(g, gan.loss);
    CHECK(vkd_graph_backward(g, loss) == 0, "backward: %s", vkd_graph_error(g));
    *grad_x = vkd_graph_grad(g, x);  // now: x's gradient slot is per graph being recorded
    return g;
}

static double run_loss(vkd_graph *g, vkd_tensor *x, const float *xh, const double *v, double eps, vkd_tensor *l) {
    int64_t n = vkd_tensor_numel(x);
    float *p = malloc(sizeof(float) * n);
    for (int64_t i = 0; i < n; i++) p[i] = (float)(v ? xh[i] + eps * v[i] : xh[i]);
    vkd_tensor_upload(x, p);
    free(p);
    CHECK(vkd_graph_run(g) == 0, "run: %s", vkd_graph_error(g));
    float f;
    vkd_tensor_download(l, &f);
    return f;
}

static void test_generator_gradient(vkd_ctx *ctx, vkd_method m) {
    enum { N = 4 };
    nets s;
    if (nets_open(ctx, &s, N)) return;
    int64_t n = N * s.shape[1] * s.shape[2] * s.shape[3];
    float *xh = malloc(sizeof(float) * n);
    for (int64_t i = 0; i < n; i++) xh[i] = 0.6f * vkd_philox_normal(4, 0, 0, (uint64_t)i);
    vkd_tensor *x = vkd_tensor_new(ctx, "x", 4, s.shape, 0);
    vkd_tensor_upload(x, xh);
    vkd_tensor_set_requires_grad(x, 1);
    vkd_tensor *l1, *l0, *gx1, *gx0;
    vkd_graph *g1 = generator_graph(ctx, &s, m, x, 1.0f, &l1, &gx1), *g0 = generator_graph(ctx, &s, m, x, 0.0f, &l0, &gx0);
    // grad(weight 1) - grad(weight 0) = s * dL_gan/dx, s = D for SiD (its loss sums over a
    // sample), 1 for DMD2 (its loss is a mean, as the GAN loss): the weight keeps DMD2's meaning.
    run_loss(g1, x, xh, NULL, 0, l1);
    double *a = t_download(gx1);
    double lgan = run_loss(g0, x, xh, NULL, 0, l0);
    double *b = t_download(gx0);
    double D = vkd_distill_defaults(m).reduction == VKD_REDUCE_MEAN ? 1.0 : (double)n / N, worst = 0, scale = 0;
    for (int trial = 0; trial < 3; trial++) {
        double *v = malloc(sizeof(double) * n), an = 0;
        for (int64_t i = 0; i < n; i++) v[i] = vkd_philox_normal(5, (uint32_t)trial, 0, (uint64_t)i);
        for (int64_t i = 0; i < n; i++) an += (a[i] - b[i]) / D * v[i];
        const double eps = 2e-2;
        double fd = (run_loss(g0, x, xh, v, eps, l0) - run_loss(g0, x, xh, v, -eps, l0)) / (2 * eps);
        worst = fmax(worst, fabs(an - fd));
        scale = fmax(scale, fabs(fd));
        printf("%s GAN gradient along direction %d: analytic %.6g, finite differences %.6g\n", vkd_method_name(m), trial,
               an, fd);
        free(v);
    }
    CHECK(scale > 1e-3, "%s: the GAN loss does not depend on x (|FD| %g): no gradient path", vkd_method_name(m), scale);
    CHECK(worst < 0.005 * scale + 1e-5, "%s: GAN input gradient off finite differences by %g (scale %g)",
          vkd_method_name(m), worst, scale);
    CHECK(lgan > 0 && isfinite(lgan), "GAN loss %g", lgan);
    // The generator phase trains neither the head nor the fake network.
    double hg = 0, fg = 0;
    for (int i = 0; i < vkd_gan_head_num_tensors(s.head); i++) hg = fmax(hg, t_max_abs(vkd_tensor_grad(vkd_gan_head_tensor(s.head, i))));
    for (int i = 0; i < vkd_model_num_tensors(s.fake); i++) {
        vkd_tensor *gt = vkd_tensor_grad(vkd_model_tensor(s.fake, i));
        if (gt) fg = fmax(fg, t_max_abs(gt));
    }
    CHECK(hg == 0 && fg == 0, "%s: the generator phase left gradients on the head (%g) or the fake network (%g)",
          vkd_method_name(m), hg, fg);
    free(a), free(b), free(xh);
    vkd_graph_free(g1);
    vkd_graph_free(g0);
    vkd_tensor_free(x);
    nets_close(&s);
}

static void test_fake_phase_learns(vkd_ctx *ctx) {
    enum { N = 8, STEPS = 60 };
    nets s;
    if (nets_open(ctx, &s, N)) return;
    int64_t n = N * s.shape[1] * s.shape[2] * s.shape[3];
    // "Generated" images: dark noise; "real" ones: bright vertical stripes. Low sigmas keep them apart.
    float *xh = malloc(sizeof(float) * n), *rh = malloc(sizeof(float) * n);
    for (int64_t i = 0; i < n; i++) {
        xh[i] = -0.5f + 0.2f * vkd_philox_normal(6, 0, 0, (uint64_t)i);
        rh[i] = (i % s.shape[3]) % 4 < 2 ? 0.8f : -0.2f;
    }
    vkd_tensor *x = vkd_tensor_new(ctx, "generated", 4, s.shape, 0), *real = vkd_tensor_new(ctx, "real", 4, s.shape, 0);
    vkd_tensor_upload(x, xh);
    vkd_tensor_upload(real, rh);
    vkd_distill_cfg c = vkd_distill_defaults(VKD_DMD2);
    c.t_max_fake = 0.3f;
    vkd_denoiser df = {.model = s.fake};
    vkd_gan_term gan = {.head = s.head, .weight = 1.0f, .real = real, .real_labels = s.labels};
    int nf = 0, nt = vkd_model_num_tensors(s.fake);
    vkd_tensor **params = calloc(nt + vkd_gan_head_num_tensors(s.head), sizeof *params);
    for (int i = 0; i < nt; i++)
        if (vkd_model_tensor_is_param(s.fake, i)) params[nf++] = vkd_model_tensor(s.fake, i);
    for (int i = 0; i < vkd_gan_head_num_tensors(s.head); i++) params[nf++] = vkd_gan_head_tensor(s.head, i);
    vkd_adam_cfg ac = {.beta1 = 0.9f, .beta2 = 0.99f, .eps = 1e-8f};
    vkd_adam *opt = vkd_adam_new(ctx, params, nf, &ac);
    vkd_graph *g = vkd_graph_new(ctx, "gan_fake");
    vkd_tensor *loss = vkd_distill_fake_loss(g, &c, x, s.labels, &df, 9, s.step, &gan);
    vkd_graph_keep(g, gan.loss);
    CHECK(vkd_graph_backward(g, loss) == 0 && vkd_adam_record(g, opt) == 0, "fake phase: %s", vkd_graph_error(g));
    double first = 0, last = 0;
    for (int t = 1; t <= STEPS; t++) {
        ((uint32_t *)vkd_tensor_map(s.step))[0] = (uint32_t)t;
        vkd_adam_set_step(opt, 3e-3f, t);
        CHECK(vkd_graph_run(g) == 0, "run: %s", vkd_graph_error(g));
        float l;
        vkd_tensor_download(gan.loss, &l);
        if (t <= 3) first += l / 3.0;
        if (t > STEPS - 3) last += l / 3.0;
    }
    printf("fake phase: discriminator loss %.4f (first 3 steps) -> %.4f (last 3 of %d); 2 log 2 = %.4f\n", first, last,
           STEPS, 2 * log(2.0));
    CHECK(first > 0.8 && last < 0.5 * first, "the discriminator did not learn: %g -> %g", first, last);
    free(params), free(xh), free(rh);
    vkd_graph_free(g);
    vkd_adam_free(opt);
    vkd_tensor_free(x);
    vkd_tensor_free(real);
    nets_close(&s);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        printf("usage: test_gan UNET.json\n0 passed, 1 failed\n");
        return 1;
    }
    unet_path = argv[1];
    vkd_ctx *ctx = t_open();
    test_head_reference(ctx, 16, 8);
    test_head_reference(ctx, 8, 16);
    test_generator_gradient(ctx, VKD_DMD2);
    test_generator_gradient(ctx, VKD_SID);
    test_fake_phase_learns(ctx);
    return t_close(ctx);
}
