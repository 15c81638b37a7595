// The generator objectives of DMD2, SiM, SiD and Diff-Instruct, and the fake
// network's denoising loss, composed from graph ops (../shared/ALGORITHMS.md).
// All evaluate teacher and fake on the same x_t = x + sigma n.
#include <math.h>
#include <string.h>

#include "core/graph.h"
#include "vkdistill/distill.h"

static const char *const names[] = {"dmd2", "sim", "sid", "diff_instruct"};

const char *vkd_method_name(vkd_method m) { return (unsigned)m < 4 ? names[m] : "?"; }

int vkd_method_parse(const char *s, vkd_method *m) {
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0) return *m = (vkd_method)i, 0;
    return -1;
}

vkd_distill_cfg vkd_distill_defaults(vkd_method m) {
    vkd_distill_cfg c = {.method = m,
                         .alpha = 1.2f,
                         .huber_c = 0.1f,
                         .sim_weight = VKD_SIM_WEIGHT_SID,
                         .t_min = 0.0f,
                         .t_max = 0.8f,
                         .sigma_min = 0.002f,
                         .sigma_max = 80.0f,
                         .rho = 7.0f,
                         .fake_sigma_karras = 0,
                         .t_min_fake = 0.0f,
                         .t_max_fake = 1.0f,
                         .karras_levels = 0,
                         .p_mean = -1.2f,
                         .p_std = 1.2f,
                         .sigma_data = 0.5f,
                         .reduction = VKD_REDUCE_SAMPLE_SUM};
    switch (m) {
    case VKD_DMD2:  // DMD2's code: 1000 Karras levels, indices 20..980 (generator) and 0..999 (fake); means; sigma_init 80
        c.sigma_init = 80.0f, c.t_min = 0.02f, c.t_max = 0.98f;
        c.fake_sigma_karras = 1, c.t_min_fake = 0.0f, c.t_max_fake = 1.0f;
        c.karras_levels = 1000, c.reduction = VKD_REDUCE_MEAN;
        break;
    case VKD_DIFF_INSTRUCT: c.sigma_init = 1.0f, c.t_max = 1.0f; break;
    default: c.sigma_init = 2.5f; break;  // SiD, SiM
    }
    return c;
}

static int64_t per_sample(const vkd_tensor *x) { return vkd_tensor_numel(x) / vkd_tensor_dim(x, 0); }

// (N, ...) -> (N): sum over each sample's elements.
static vkd_tensor *sample_sum(vkd_graph *g, vkd_tensor *x) {
    int64_t n = vkd_tensor_dim(x, 0);
    return vkd_sum(g, vkd_reshape(g, x, 2, (int64_t[]){n, per_sample(x)}), 1);
}

// (N) -> (N, 1, ...) with x's rank, for broadcasting over a sample.
static vkd_tensor *bcast(vkd_graph *g, vkd_tensor *s, const vkd_tensor *like) {
    int64_t sh[VKD_MAX_DIMS] = {vkd_tensor_dim(like, 0), 1, 1, 1, 1, 1};
    return vkd_reshape(g, s, vkd_tensor_ndim(like), sh);
}

vkd_tensor *vkd_generator(vkd_graph *g, const vkd_denoiser *G, vkd_tensor *z, vkd_tensor *labels, float sigma_init) {
    int64_t n = vkd_tensor_dim(z, 0);
    vkd_tensor *sigma = vkd_full(g, 1, &n, sigma_init);
    return vkd_denoiser_apply(g, G, vkd_scale(g, z, sigma_init), sigma, labels);
}

vkd_tensor *vkd_generator_rollout(vkd_graph *g, const vkd_denoiser *G, vkd_tensor *z, vkd_tensor *labels,
                                  const float *sigmas, int k, uint64_t seed, uint32_t stream, vkd_tensor *step_t) {
    if (k == 0) return vkd_generator(g, G, z, labels, sigmas[0]);
    int64_t n = vkd_tensor_dim(z, 0), shape[VKD_MAX_DIMS];
    int nd = vkd_tensor_ndim(z);
    for (int i = 0; i < nd; i++) shape[i] = vkd_tensor_dim(z, i);
    int grad = vkd_graph_grad_enabled(g);
    vkd_graph_set_grad_enabled(g, 0);
    vkd_tensor *x0 = vkd_generator(g, G, z, labels, sigmas[0]);
    for (int j = 1; j <= k; j++) {
        vkd_tensor *noise = vkd_rand_normal(g, nd, shape, seed, stream + (uint32_t)j - 1, step_t);
        vkd_tensor *x = vkd_add(g, x0, vkd_scale(g, noise, sigmas[j]));
        if (j == k) vkd_graph_set_grad_enabled(g, grad);
        x0 = vkd_denoiser_apply(g, G, x, vkd_full(g, 1, &n, sigmas[j]), labels);
    }
    return x0;
}

// Streams of the generator phase's draws (the fake phase uses 20..).
enum { S_GEN_SIGMA = 10, S_GEN_NOISE = 11, S_FAKE_REAL_NOISE = 22 };

// The fake network's denoiser output on x_t, and its bottleneck when the GAN term wants one.
static vkd_tensor *fake_apply(vkd_graph *g, const vkd_denoiser *fake, vkd_tensor *xt, vkd_tensor *sigma,
                              vkd_tensor *labels, vkd_tensor **bottleneck) {
    if (!bottleneck) return vkd_denoiser_apply(g, fake, xt, sigma, labels);
    if (!fake->model) {
        vkd_graph_fail(g, "GAN term: the fake network must be a UNet (the GMM teacher has no bottleneck)");
        return NULL;
    }
    return vkd_model_denoise_bottleneck(g, fake->model, xt, sigma, labels, bottleneck);
}

// weight * s * mean softplus(-head(h)): the generator's non-saturating GAN loss, s = D
// when the method's loss sums over a sample's D elements, 1 when it averages (see distill.h).
static vkd_tensor *gan_generator_term(vkd_graph *g, const vkd_distill_cfg *c, vkd_gan_term *gan, vkd_tensor *h, int64_t n,
                                      int64_t d) {
    vkd_tensor *l = vkd_scale(g, vkd_sum(g, vkd_softplus(g, vkd_scale(g, vkd_gan_head_forward(g, gan->head, h), -1.0f)), 0),
                              1.0f / (float)n);
    gan->loss = l;
    return vkd_scale(g, l, gan->weight * (c->reduction == VKD_REDUCE_MEAN ? 1.0f : (float)d));
}

vkd_tensor *vkd_distill_generator_loss(vkd_graph *g, const vkd_distill_cfg *c, vkd_tensor *x, vkd_tensor *labels,
                                       const vkd_denoiser *teacher, const vkd_denoiser *fake, uint64_t seed,
                                       vkd_tensor *step_t, vkd_gan_term *gan) {
    if (!x) return NULL;
    vkd_tensor *h = NULL;  // the fake network's bottleneck (GAN term)
    int64_t n = vkd_tensor_dim(x, 0);
    int nd = vkd_tensor_ndim(x);
    int64_t shape[VKD_MAX_DIMS];
    for (int i = 0; i < nd; i++) shape[i] = vkd_tensor_dim(x, i);
    vkd_tensor *sigma = vkd_karras_sigma_draw(g, n, c->t_min, c->t_max, c->karras_levels, c->sigma_min, c->sigma_max,
                                              c->rho, seed, S_GEN_SIGMA, step_t);
    vkd_tensor *noise = vkd_rand_normal(g, nd, shape, seed, S_GEN_NOISE, step_t);
    // the batch mean (sum over a sample) or the mean over every element
    float inv_n = 1.0f / (float)(c->reduction == VKD_REDUCE_MEAN ? vkd_tensor_numel(x) : n);

    if (c->method == VKD_DMD2 || c->method == VKD_DIFF_INSTRUCT) {
        // Both networks under stop-gradient: the gradient reaches G only through
        // x -- and, with the GAN term, through the fake network's encoder on x_t.
        int was = 1;
        vkd_graph_set_grad_enabled(g, gan != NULL);
        vkd_tensor *xt = vkd_add(g, x, vkd_mul(g, noise, bcast(g, sigma, x)));
        vkd_graph_set_grad_enabled(g, 0);
        vkd_tensor *dr = vkd_denoiser_apply(g, teacher, xt, sigma, labels);
        vkd_graph_set_grad_enabled(g, gan != NULL);
        vkd_tensor *df = fake_apply(g, fake, xt, sigma, labels, gan ? &h : NULL);
        vkd_graph_set_grad_enabled(g, 0);
        vkd_tensor *diff = vkd_sub(g, df, dr);
        vkd_tensor *loss;
        if (c->method == VKD_DMD2) {
            // grad = (D_fake - D_real) / mean|x - D_real| (per sample); L = 1/2 |x - sg(x - grad)|^2
            vkd_tensor *e = vkd_sub(g, x, dr);
            vkd_tensor *norm = vkd_affine(g, sample_sum(g, vkd_sqrt(g, vkd_mul(g, e, e))), 1.0f / per_sample(x), 1e-8f);
            vkd_tensor *grad = vkd_mul(g, diff, bcast(g, vkd_exp(g, vkd_scale(g, vkd_log(g, norm), -1.0f)), x));
            vkd_tensor *target = vkd_sub(g, x, grad);
            vkd_graph_set_grad_enabled(g, was);
            vkd_tensor *d = vkd_sub(g, x, target);
            loss = vkd_scale(g, vkd_sum(g, vkd_mul(g, d, d), 0), 0.5f * inv_n);
        } else {
            // Diff-Instruct: L = sum(sg(D_fake - D_real) * x)
            vkd_graph_set_grad_enabled(g, was);
            loss = vkd_scale(g, vkd_sum(g, vkd_mul(g, x, diff), 0), inv_n);
        }
        if (gan) loss = vkd_add(g, loss, gan_generator_term(g, c, gan, h, n, per_sample(x)));
        return loss;
    }

    // SiD and SiM differentiate through both (frozen) networks w.r.t. their input x_t.
    vkd_tensor *xt = vkd_add(g, x, vkd_mul(g, noise, bcast(g, sigma, x)));
    vkd_tensor *dr = vkd_denoiser_apply(g, teacher, xt, sigma, labels);
    vkd_tensor *df = fake_apply(g, fake, xt, sigma, labels, gan ? &h : NULL);
    vkd_tensor *y = vkd_sub(g, dr, df);
    // w = sg(mean |x - D_real|) per sample (SiD's normalizer).
    vkd_graph_set_grad_enabled(g, 0);
    vkd_tensor *e = vkd_sub(g, x, dr);
    vkd_tensor *w = vkd_affine(g, sample_sum(g, vkd_sqrt(g, vkd_mul(g, e, e))), 1.0f / per_sample(x), 1e-8f);
    vkd_tensor *inv_w = vkd_exp(g, vkd_scale(g, vkd_log(g, w), -1.0f));
    vkd_graph_set_grad_enabled(g, 1);
    vkd_tensor *per;  // (N)
    if (c->method == VKD_SID) {
        // (D_r - D_f) . ((D_r - x) - alpha (D_r - D_f)) / w
        vkd_tensor *t = vkd_sub(g, vkd_sub(g, dr, x), vkd_scale(g, y, c->alpha));
        per = vkd_mul(g, sample_sum(g, vkd_mul(g, y, t)), inv_w);
    } else {
        // SiM: d'(y) . (D_f - x), d'(y) = y / sqrt(|y|^2 + c^2) (pseudo-Huber) or y (L2)
        vkd_tensor *dp = y;
        if (c->huber_c > 0) {
            vkd_tensor *n2 = vkd_affine(g, sample_sum(g, vkd_mul(g, y, y)), 1.0f, c->huber_c * c->huber_c);
            dp = vkd_mul(g, y, bcast(g, vkd_exp(g, vkd_scale(g, vkd_log(g, n2), -0.5f)), y));
        }
        per = sample_sum(g, vkd_mul(g, dp, vkd_sub(g, df, x)));
        if (c->sim_weight == VKD_SIM_WEIGHT_SID) per = vkd_mul(g, per, inv_w);
    }
    vkd_tensor *loss = vkd_scale(g, vkd_sum(g, per, 0), inv_n);
    if (gan) loss = vkd_add(g, loss, gan_generator_term(g, c, gan, h, n, per_sample(x)));
    return loss;
}

vkd_denoise_loss_cfg vkd_distill_fake_loss_cfg(const vkd_distill_cfg *c) {
    vkd_denoise_loss_cfg l = {.sigma = c->fake_sigma_karras ? VKD_SIGMA_KARRAS : VKD_SIGMA_LOGNORMAL,
                              .p_mean = c->p_mean,
                              .p_std = c->p_std,
                              .t_min = c->t_min_fake,
                              .t_max = c->t_max_fake,
                              .sigma_min = c->sigma_min,
                              .sigma_max = c->sigma_max,
                              .rho = c->rho,
                              .levels = c->karras_levels,
                              .sigma_data = c->sigma_data,
                              .reduction = c->reduction};
    return l;
}

vkd_tensor *vkd_distill_fake_loss(vkd_graph *g, const vkd_distill_cfg *c, vkd_tensor *x, vkd_tensor *labels,
                                  const vkd_denoiser *fake, uint64_t seed, vkd_tensor *step_t, vkd_gan_term *gan) {
    if (!x) return NULL;
    if (gan && !fake->model) {
        vkd_graph_fail(g, "GAN term: the fake network must be a UNet (the GMM teacher has no bottleneck)");
        return NULL;
    }
    vkd_denoise_loss_cfg lc = vkd_distill_fake_loss_cfg(c);
    vkd_denoise_loss_aux aux = {.want_bottleneck = gan != NULL};
    vkd_tensor *loss = vkd_denoise_loss(g, fake, x, labels, &lc, seed ^ 0xfa4e, step_t, &aux);
    if (!gan) return loss;
    // Discriminator: generated x_t against real images noised with the same sigmas (fresh noise).
    if (!gan->real || vkd_tensor_numel(gan->real) != vkd_tensor_numel(x)) {
        vkd_graph_fail(g, "GAN term: the fake phase needs a batch of real images shaped like the generated ones");
        return NULL;
    }
    int64_t n = vkd_tensor_dim(x, 0), shape[VKD_MAX_DIMS];
    int nd = vkd_tensor_ndim(x);
    for (int i = 0; i < nd; i++) shape[i] = vkd_tensor_dim(x, i);
    vkd_tensor *real = vkd_reshape(g, gan->real, nd, shape);
    vkd_tensor *rt = vkd_add(g, real, vkd_mul(g, vkd_rand_normal(g, nd, shape, seed, S_FAKE_REAL_NOISE, step_t),
                                              bcast(g, aux.sigma, x)));
    vkd_tensor *hr = vkd_model_bottleneck(g, fake->model, rt, aux.sigma, gan->real_labels);
    vkd_tensor *lf = vkd_gan_head_forward(g, gan->head, aux.bottleneck), *lr = vkd_gan_head_forward(g, gan->head, hr);
    vkd_tensor *ld = vkd_add(g, vkd_sum(g, vkd_softplus(g, lf), 0), vkd_sum(g, vkd_softplus(g, vkd_scale(g, lr, -1.0f)), 0));
    gan->loss = vkd_scale(g, ld, 1.0f / (float)n);
    return vkd_add(g, loss, vkd_scale(g, gan->loss, gan->weight));
}
