// Distillation objectives against the exact GMM teacher:
//  - DMD2's gradient w.r.t. the sample is (D_fake - D_real)/mean|x - D_real| / (B*D): its code's
//    0.5 * mse_loss(x, x - grad, reduction="mean"), sigma over 1000 Karras levels (indices 20..980);
//  - the fake networks' loss draws DMD2's levels 0..999 and reduces as the method's code does;
//  - SiM with the L2 distance gives the same generator gradient as SiD with alpha = 1;
//  - frozen networks (teacher, the fake network's view) get no parameter gradients;
//  - at the fixed point (samples from the teacher, fake = teacher) every method's gradient is zero.
// usage: test_distill RING8_GMM.json MLP_2D.json
#include "harness.h"
#include "vkdistill/distill.h"

static const char *gmm_path, *mlp_path;

static vkd_tensor *points(vkd_ctx *ctx, const vkd_gmm *m, int n, uint64_t seed, int requires_grad) {
    float *h = malloc(sizeof(float) * 2 * n);
    vkd_gmm_sample_host(m, seed, n, h, NULL);
    vkd_tensor *t = vkd_tensor_new(ctx, "x", 2, (int64_t[]){n, 2}, 0);
    vkd_tensor_upload(t, h);
    vkd_tensor_set_requires_grad(t, requires_grad);
    free(h);
    return t;
}

static void test_dmd2_identity(vkd_ctx *ctx, vkd_gmm *teacher, vkd_gmm *fake) {
    enum { N = 32 };
    vkd_tensor *step = vkd_tensor_new(ctx, "step", 1, (int64_t[]){1}, VKD_HOST);
    ((uint32_t *)vkd_tensor_map(step))[0] = 7;
    // Samples off the teacher's distribution, so the gradient is far from zero.
    float h[2 * N];
    for (int i = 0; i < 2 * N; i++) h[i] = 1.5f * vkd_philox_normal(3, 0, 0, i);
    vkd_tensor *x = vkd_tensor_new(ctx, "x", 2, (int64_t[]){N, 2}, 0);
    vkd_tensor_upload(x, h);
    vkd_tensor_set_requires_grad(x, 1);
    vkd_denoiser dt = {.gmm = teacher}, df = {.gmm = fake};
    vkd_distill_cfg c = vkd_distill_defaults(VKD_DMD2);
    vkd_graph *g = vkd_graph_new(ctx, "dmd2_identity");
    vkd_tensor *loss = vkd_distill_generator_loss(g, &c, x, NULL, &dt, &df, 5, step, NULL);
    // The same draws again (same seed, streams and step), and the formula directly.
    vkd_graph_set_grad_enabled(g, 0);
    int64_t n = N;
    vkd_tensor *sigma =
        vkd_karras_sigma_draw(g, n, c.t_min, c.t_max, c.karras_levels, c.sigma_min, c.sigma_max, c.rho, 5, 10, step);
    vkd_tensor *noise = vkd_rand_normal(g, 2, (int64_t[]){N, 2}, 5, 11, step);
    vkd_tensor *xt = vkd_add(g, x, vkd_mul(g, noise, vkd_reshape(g, sigma, 2, (int64_t[]){N, 1})));
    vkd_tensor *dr = vkd_gmm_denoise(g, teacher, xt, sigma), *dfk = vkd_gmm_denoise(g, fake, xt, sigma);
    vkd_tensor *e = vkd_sub(g, x, dr);
    vkd_tensor *norm = vkd_scale(g, vkd_sum(g, vkd_sqrt(g, vkd_mul(g, e, e)), 1), 0.5f);  // mean over the 2 coordinates
    vkd_tensor *expect = vkd_mul(g, vkd_sub(g, dfk, dr),
                                 vkd_reshape(g, vkd_exp(g, vkd_scale(g, vkd_log(g, norm), -1.0f)), 2, (int64_t[]){N, 1}));
    vkd_graph_keep(g, expect);
    vkd_graph_set_grad_enabled(g, 1);
    CHECK(vkd_graph_backward(g, loss) == 0, "backward: %s", vkd_graph_error(g));
    CHECK(vkd_graph_run(g) == 0, "run: %s", vkd_graph_error(g));
    double *gx = t_download(vkd_graph_grad(g, x)), *ex = t_download(expect);
    for (int i = 0; i < 2 * N; i++) gx[i] *= 2 * N;  // the loss is a mean over the batch and the 2 coordinates
    double err = t_relerr(gx, ex, 2 * N);
    CHECK(err < 1e-5, "DMD2: B*D dL/dx differs from (D_fake - D_real)/normalizer by %g", err);
    printf("DMD2 gradient identity: max error %.2e (|grad| up to %.3g)\n", err, t_max_abs(expect));
    free(gx), free(ex);
    vkd_graph_free(g);
    vkd_tensor_free(x);
    vkd_tensor_free(step);
}

// Karras sigma draws on DMD2's 1000 levels: every sigma is a level
// (a + i/999 (b - a))^7 with i in [lo, hi], both ends reached, and the index is
// lo + floor(u (hi - lo + 1)) of the Philox uniform u -- DMD2's randint.
static void test_karras_levels(vkd_ctx *ctx) {
    enum { N = 16384 };
    vkd_tensor *step = vkd_tensor_new(ctx, "step", 1, (int64_t[]){1}, VKD_HOST);
    ((uint32_t *)vkd_tensor_map(step))[0] = 11;
    vkd_distill_cfg c = vkd_distill_defaults(VKD_DMD2);
    CHECK(c.karras_levels == 1000 && c.reduction == VKD_REDUCE_MEAN, "DMD2 defaults: %d levels, reduction %d",
          c.karras_levels, (int)c.reduction);
    const float tr[2][2] = {{c.t_min, c.t_max}, {c.t_min_fake, c.t_max_fake}};
    const int want[2][2] = {{20, 980}, {0, 999}};
    double a = pow(c.sigma_min, 1 / c.rho), b = pow(c.sigma_max, 1 / c.rho);
    for (int k = 0; k < 2; k++) {
        vkd_graph *g = vkd_graph_new(ctx, "karras_levels");
        vkd_tensor *s = vkd_karras_sigma_draw(g, N, tr[k][0], tr[k][1], 1000, c.sigma_min, c.sigma_max, c.rho, 4, 9, step);
        vkd_graph_keep(g, s);
        CHECK(vkd_graph_run(g) == 0, "%s", vkd_graph_error(g));
        double *h = t_download(s), worst = 0;
        int lo = 1 << 30, hi = -1, bad = 0;
        for (int i = 0; i < N; i++) {
            // the level the device drew, and whether it is floor(u * count) (to the ulp of u * count at a boundary)
            int j = (int)lround((pow(h[i], 1 / c.rho) - a) / (b - a) * 999);
            double ref = pow(a + j / 999.0 * (b - a), c.rho);
            double y = (double)vkd_philox_uniform(4, 9, 11, i) * (want[k][1] - want[k][0] + 1);
            int idx = want[k][0] + (int)floor(y), edge = fabs(y - floor(y + 0.5)) < 1e-3;
            worst = fmax(worst, fabs(h[i] - ref) / ref);
            bad += fabs(h[i] - ref) > 1e-4 * ref || (j != idx && !(edge && abs(j - idx) == 1));
            lo = j < lo ? j : lo, hi = j > hi ? j : hi;
        }
        CHECK(bad == 0 && lo == want[k][0] && hi == want[k][1],
              "levels %d..%d: %d of %d draws off their level or index (worst %.2e), indices %d..%d",
              want[k][0], want[k][1], bad, N, worst, lo, hi);
        printf("DMD2 sigma on 1000 Karras levels, indices %d..%d: %d draws on their level (max rel err %.1e)\n", lo, hi,
               N, worst);
        free(h);
        vkd_graph_free(g);
    }
    vkd_tensor_free(step);
}

// The fake network's loss is the one denoising loss (vkd_denoise_loss) with the method's
// draw and reduction: DMD2 the mean of lambda (D - x)^2 over every element (its
// compute_loss_fake), SiD the per-sample sum averaged over the batch (EDM's loss.sum() / B).
static void test_fake_loss(vkd_ctx *ctx, vkd_gmm *teacher, vkd_gmm *fake) {
    enum { N = 64 };
    vkd_denoiser df = {.gmm = fake};
    vkd_tensor *step = vkd_tensor_new(ctx, "step", 1, (int64_t[]){1}, VKD_HOST);
    ((uint32_t *)vkd_tensor_map(step))[0] = 21;
    for (int m = 0; m < 2; m++) {
        vkd_distill_cfg c = vkd_distill_defaults(m ? VKD_SID : VKD_DMD2);
        vkd_tensor *x = points(ctx, teacher, N, 300 + m, 0);
        vkd_graph *g = vkd_graph_new(ctx, "fake_loss");
        vkd_tensor *loss = vkd_distill_fake_loss(g, &c, x, NULL, &df, 5, step, NULL);
        // the same draws by hand: seed 5 ^ 0xfa4e, the EDM streams
        int64_t n = N;
        vkd_tensor *sigma;
        if (m == 0)
            sigma = vkd_karras_sigma_draw(g, n, 0, 1, 1000, c.sigma_min, c.sigma_max, c.rho, 5 ^ 0xfa4e, VKD_EDM_STREAM_SIGMA, step);
        else
            sigma = vkd_exp(g, vkd_affine(g, vkd_rand_normal(g, 1, &n, 5 ^ 0xfa4e, VKD_EDM_STREAM_SIGMA, step), c.p_std, c.p_mean));
        vkd_tensor *sb = vkd_reshape(g, sigma, 2, (int64_t[]){N, 1});
        vkd_tensor *xt = vkd_add(g, x, vkd_mul(g, vkd_rand_normal(g, 2, (int64_t[]){N, 2}, 5 ^ 0xfa4e, VKD_EDM_STREAM_NOISE, step), sb));
        vkd_tensor *e = vkd_sub(g, vkd_gmm_denoise(g, fake, xt, sigma), x);
        vkd_tensor *lam = vkd_affine(g, vkd_exp(g, vkd_scale(g, vkd_log(g, sb), -2.0f)), 1.0f, 4.0f);
        vkd_tensor *ref = vkd_scale(g, vkd_sum(g, vkd_mul(g, vkd_mul(g, e, e), lam), 0), 1.0f / (m ? N : 2 * N));
        vkd_graph_keep(g, loss), vkd_graph_keep(g, ref);
        CHECK(vkd_graph_run(g) == 0, "%s", vkd_graph_error(g));
        double *l = t_download(loss), *r = t_download(ref);
        double err = fabs(l[0] - r[0]) / fabs(r[0]);
        CHECK(err < 1e-4, "%s fake loss %.6g vs %.6g", vkd_method_name(c.method), l[0], r[0]);
        printf("fake loss, %-4s (%s, %s): %.6g = formula %.6g (rel err %.1e)\n", vkd_method_name(c.method),
               m ? "log-normal sigma" : "1000 Karras levels", m ? "sum per sample / B" : "mean over B*D", l[0], r[0], err);
        free(l), free(r);
        vkd_graph_free(g);
        vkd_tensor_free(x);
    }
    (void)df;
    vkd_tensor_free(step);
}

// SiM (L2, SiD weighting) and SiD (alpha = 1): the same gradient for G's parameters,
// and no parameter gradient for the frozen teacher network or the fake network's view.
static void test_sim_l2_equals_sid(vkd_ctx *ctx) {
    enum { N = 16 };
    char err[512];
    vkd_model *G = vkd_model_create(ctx, mlp_path, 1, 11, err, sizeof err);
    vkd_model *T = vkd_model_create(ctx, mlp_path, 0, 12, err, sizeof err);
    vkd_model *F = vkd_model_create(ctx, mlp_path, 1, 13, err, sizeof err);
    CHECK(G && T && F, "models: %s", err);
    if (!G || !T || !F) return;
    vkd_model *Fv = vkd_model_frozen_view(F);
    vkd_denoiser dG = {.model = G}, dT = {.model = T}, dF = {.model = Fv};
    vkd_tensor *step = vkd_tensor_new(ctx, "step", 1, (int64_t[]){1}, VKD_HOST);
    ((uint32_t *)vkd_tensor_map(step))[0] = 3;
    double *grads[2] = {0};
    for (int k = 0; k < 2; k++) {
        vkd_distill_cfg c = vkd_distill_defaults(k ? VKD_SID : VKD_SIM);
        c.alpha = 1.0f, c.huber_c = 0.0f, c.sim_weight = VKD_SIM_WEIGHT_SID;
        vkd_graph *g = vkd_graph_new(ctx, k ? "sid" : "sim");
        vkd_tensor *z = vkd_rand_normal(g, 2, (int64_t[]){N, 2}, 9, 1, step);
        vkd_tensor *x = vkd_generator(g, &dG, z, NULL, c.sigma_init);
        vkd_tensor *loss = vkd_distill_generator_loss(g, &c, x, NULL, &dT, &dF, 5, step, NULL);
        CHECK(vkd_graph_backward(g, loss) == 0 && vkd_graph_run(g) == 0, "%s", vkd_graph_error(g));
        // Concatenate G's parameter gradients, then clear them for the next method.
        int64_t total = 0;
        for (int i = 0; i < vkd_model_num_tensors(G); i++) total += vkd_tensor_numel(vkd_model_tensor(G, i));
        grads[k] = malloc(total * sizeof(double));
        int64_t o = 0;
        for (int i = 0; i < vkd_model_num_tensors(G); i++) {
            vkd_tensor *gr = vkd_tensor_grad(vkd_model_tensor(G, i));
            double *d = t_download(gr);
            memcpy(grads[k] + o, d, vkd_tensor_numel(gr) * sizeof(double));
            o += vkd_tensor_numel(gr);
            free(d);
            float *zero = calloc(vkd_tensor_numel(gr), sizeof(float));
            vkd_tensor_upload(gr, zero);
            free(zero);
        }
        if (k == 1) {
            double gmax = 0, emax = 0;
            for (int64_t i = 0; i < total; i++)
                gmax = fmax(gmax, fabs(grads[1][i])), emax = fmax(emax, fabs(grads[0][i] - grads[1][i]));
            CHECK(gmax > 0 && emax <= 1e-4 * gmax, "SiM-L2 vs SiD(alpha=1): max difference %g of max |grad| %g", emax, gmax);
            printf("SiM (L2) = SiD (alpha = 1): %lld generator gradients, max difference %.2e of max |grad| %.3g\n",
                   (long long)total, emax, gmax);
            double fmaxg = 0;
            for (int i = 0; i < vkd_model_num_tensors(F); i++)
                if (vkd_model_tensor_is_param(F, i)) fmaxg = fmax(fmaxg, t_max_abs(vkd_tensor_grad(vkd_model_tensor(F, i))));
            CHECK(fmaxg == 0, "the frozen view of the fake network received gradients (max %g)", fmaxg);
            int tgrads = 0;
            for (int i = 0; i < vkd_model_num_tensors(T); i++) tgrads += vkd_tensor_grad(vkd_model_tensor(T, i)) != NULL;
            CHECK(tgrads == 0, "the frozen teacher has %d gradient buffers", tgrads);
            printf("frozen teacher: no gradient buffers; fake network (frozen view): all gradients 0\n");
        }
        vkd_graph_free(g);
    }
    free(grads[0]), free(grads[1]);
    vkd_tensor_free(step);
    vkd_model_free(Fv);
    vkd_model_free(G), vkd_model_free(T), vkd_model_free(F);
}

static void test_fixed_point(vkd_ctx *ctx, vkd_gmm *teacher) {
    enum { N = 64 };
    vkd_denoiser dt = {.gmm = teacher};
    vkd_tensor *step = vkd_tensor_new(ctx, "step", 1, (int64_t[]){1}, VKD_HOST);
    for (int m = 0; m < 4; m++) {
        vkd_tensor *x = points(ctx, teacher, N, 100 + m, 1);
        vkd_distill_cfg c = vkd_distill_defaults((vkd_method)m);
        c.huber_c = 0.1f;
        vkd_graph *g = vkd_graph_new(ctx, "fixed_point");
        vkd_tensor *loss = vkd_distill_generator_loss(g, &c, x, NULL, &dt, &dt, 5, step, NULL);
        CHECK(vkd_graph_backward(g, loss) == 0 && vkd_graph_run(g) == 0, "%s", vkd_graph_error(g));
        double gm = t_max_abs(vkd_graph_grad(g, x));
        CHECK(gm < 1e-6, "%s: gradient %g at the fixed point", vkd_method_name((vkd_method)m), gm);
        printf("fixed point (samples from the teacher, fake = teacher): %-13s max |dL/dx| = %.2e\n",
               vkd_method_name((vkd_method)m), gm);
        vkd_graph_free(g);
        vkd_tensor_free(x);
    }
    vkd_tensor_free(step);
}

// Few-step students: the rollout equals its definition, and backward simulation
// keeps the gradient off the steps before the trained one.
static void test_rollout(vkd_ctx *ctx, vkd_gmm *teacher) {
    enum { N = 16 };
    vkd_denoiser dt = {.gmm = teacher};
    vkd_tensor *step = vkd_tensor_new(ctx, "step", 1, (int64_t[]){1}, VKD_HOST);
    ((uint32_t *)vkd_tensor_map(step))[0] = 5;
    float sig[2] = {2.5f, 0.4f};
    for (int k = 0; k < 2; k++) {
        float h[2 * N];
        for (int i = 0; i < 2 * N; i++) h[i] = vkd_philox_normal(8, 0, 0, i);
        vkd_tensor *z = vkd_tensor_new(ctx, "z", 2, (int64_t[]){N, 2}, 0);
        vkd_tensor_upload(z, h);
        vkd_tensor_set_requires_grad(z, 1);
        vkd_graph *g = vkd_graph_new(ctx, "rollout");
        vkd_tensor *x = vkd_generator_rollout(g, &dt, z, NULL, sig, k, 3, 30, step);
        vkd_graph_keep(g, x);
        // the definition, with the same draws
        vkd_graph_set_grad_enabled(g, 0);
        int64_t n = N;
        vkd_tensor *ref = vkd_gmm_denoise(g, teacher, vkd_scale(g, z, sig[0]), vkd_full(g, 1, &n, sig[0]));
        if (k == 1) {
            vkd_tensor *noise = vkd_rand_normal(g, 2, (int64_t[]){N, 2}, 3, 30, step);
            ref = vkd_gmm_denoise(g, teacher, vkd_add(g, ref, vkd_scale(g, noise, sig[1])), vkd_full(g, 1, &n, sig[1]));
        }
        vkd_graph_keep(g, ref);
        vkd_graph_set_grad_enabled(g, 1);
        // L = sum(x) + sum(z): dL/dz is exactly 1 unless the gradient also flows through the rollout.
        vkd_graph_backward(g, vkd_add(g, vkd_sum(g, x, 0), vkd_sum(g, z, 0)));
        CHECK(vkd_graph_run(g) == 0, "%s", vkd_graph_error(g));
        double *a = t_download(x), *b = t_download(ref), *gz = t_download(vkd_graph_grad(g, z));
        CHECK(memcmp(a, b, sizeof(double) * 2 * N) == 0, "rollout k=%d differs from its definition", k);
        int through = 0;
        for (int i = 0; i < 2 * N; i++) through |= gz[i] != 1.0;
        CHECK(through == (k == 0), "k=%d: the gradient %s through the rollout", k, through ? "flows" : "does not flow");
        printf("few-step rollout k=%d: equals its definition; gradient through the generator to z: %s\n", k,
               through ? "yes" : "none (backward simulation)");
        free(a), free(b), free(gz);
        vkd_graph_free(g);
        vkd_tensor_free(z);
    }
    vkd_tensor_free(step);
}

// The generator's EMA, with and without EDM's ramp-up, against the recursion
// E_s = b_s E_{s-1} + (1 - b_s) G_s computed on the host from G after each step;
// b_s = 0.5^(batch / min(halflife, ratio * s * batch)) with the ramp-up.
static void test_ema_rampup(vkd_ctx *ctx) {
    for (int r = 0; r < 2; r++) {
        vkd_distiller_cfg c;
        vkd_distiller_cfg_init(&c, VKD_SID);
        snprintf(c.teacher_gmm, sizeof c.teacher_gmm, "%s", gmm_path);
        snprintf(c.student, sizeof c.student, "%s", mlp_path);
        c.init_from_teacher = 0, c.batch = 32, c.fake_warmup = 0, c.lr_g = 1e-2, c.ema_halflife_kimg = 10, c.ema_rampup_ratio = r ? 0.05 : 0;
        char err[512];
        vkd_distiller *d = vkd_distiller_new(ctx, &c, NULL, err, sizeof err);
        CHECK(d != NULL, "distiller: %s", err);
        if (!d) return;
        vkd_model *G = vkd_distiller_generator(d, 0), *E = vkd_distiller_generator(d, 1);
        int n = vkd_model_num_tensors(G);
        double **e = calloc(n, sizeof *e), worst = 0, moved = 0;
        for (int i = 0; i < n; i++) e[i] = t_download(vkd_model_tensor(E, i));
        for (int s = 1; s <= 3; s++) {
            CHECK(vkd_distiller_step(d, s, NULL) == 0, "step %d: %s", s, vkd_distiller_error(d));
            double hl = c.ema_halflife_kimg * 1000.0;
            if (r) hl = fmin(hl, c.ema_rampup_ratio * s * c.batch);
            double b = (float)pow(0.5, c.batch / hl);
            for (int i = 0; i < n; i++) {
                if (!vkd_model_tensor_is_param(G, i)) continue;
                double *g = t_download(vkd_model_tensor(G, i)), *dev = t_download(vkd_model_tensor(E, i));
                for (int64_t j = 0; j < vkd_tensor_numel(vkd_model_tensor(G, i)); j++) {
                    moved = fmax(moved, fabs(g[j] - e[i][j]));
                    e[i][j] = b * e[i][j] + (1 - b) * g[j];
                    worst = fmax(worst, fabs(dev[j] - e[i][j]));
                }
                free(g), free(dev);
            }
        }
        CHECK(moved > 1e-3 && worst < 1e-6, "EMA %s ramp-up: device vs host recursion %g (generator moved %g)",
              r ? "with" : "without", worst, moved);
        printf("EMA %s ramp-up (half-life 10 kimg, batch 32, 3 steps): device vs host recursion %.1e (generator moved %.2g)\n",
               r ? "with" : "without", worst, moved);
        for (int i = 0; i < n; i++) free(e[i]);
        free(e);
        vkd_distiller_free(d);
    }
}

int main(int argc, char **argv) {
    if (argc < 3) {
        printf("usage: test_distill GMM.json MLP.json\n0 passed, 1 failed\n");
        return 1;
    }
    gmm_path = argv[1], mlp_path = argv[2];
    vkd_ctx *ctx = t_open();
    char err[512];
    vkd_gmm *teacher = vkd_gmm_load(ctx, gmm_path, err, sizeof err);
    CHECK(teacher != NULL, "%s", err);
    // Another exact mixture as a stand-in fake network: wider modes.
    double w[3] = {0.5, 0.3, 0.2}, mu[6] = {1, 0, -1, 1, 0, -1.5}, sd[3] = {0.3, 0.5, 0.4};
    vkd_gmm *fake = vkd_gmm_create(ctx, 3, 1, (int64_t[]){2}, w, mu, sd, err, sizeof err);
    CHECK(fake != NULL, "%s", err);
    if (teacher && fake) {
        test_dmd2_identity(ctx, teacher, fake);
        test_karras_levels(ctx);
        test_fake_loss(ctx, teacher, fake);
        test_sim_l2_equals_sid(ctx);
        test_fixed_point(ctx, teacher);
        test_rollout(ctx, teacher);
        test_ema_rampup(ctx);
    }
    vkd_gmm_free(teacher);
    vkd_gmm_free(fake);
    return t_close(ctx);
}
