// The denoising loss of EDM (Karras et al. 2022, eq. 8): teacher training and
// the distillers' fake networks use this one implementation. Composed from
// recorded ops so its gradient comes from the ops' own backward; sigma and the
// noise are drawn on the device, so the same recorded step draws fresh values
// every replay (step from step_t[0]).
#include <math.h>

#include "core/graph.h"
#include "vkdistill/diffusion.h"
#include "vkdistill/nn.h"

vkd_tensor *vkd_karras_sigma_draw(vkd_graph *g, int64_t n, float t_min, float t_max, int levels, float sigma_min,
                                  float sigma_max, float rho, uint64_t seed, uint32_t stream, vkd_tensor *step_t) {
    float a = powf(sigma_min, 1.0f / rho), b = powf(sigma_max, 1.0f / rho);
    vkd_tensor *u = vkd_rand_uniform(g, 1, &n, seed, stream, step_t), *t;
    if (levels > 1) {
        // i = lo + floor(u (hi - lo + 1)); floor(y) for 0 <= y < 2^22 is round(y - 1/2), and
        // adding then subtracting 1.5 * 2^23 rounds an fp32 to an integer (the sum lies in
        // [2^23, 2^24), where the fp32 spacing is 1; each op a separate, rounded fp32 store).
        int lo = (int)floor(t_min * levels + 1e-4), hi = (int)floor(t_max * levels + 1e-4);
        if (hi > levels - 1) hi = levels - 1;
        if (lo > hi) lo = hi;
        vkd_tensor *y = vkd_affine(g, u, (float)(hi - lo + 1), -0.5f);
        vkd_tensor *i = vkd_affine(g, vkd_affine(g, y, 1.0f, 12582912.0f), 1.0f, (float)lo - 12582912.0f);
        t = vkd_scale(g, i, 1.0f / (float)(levels - 1));
    } else {
        t = vkd_affine(g, u, t_max - t_min, t_min);
    }
    // sigma = exp(rho log(a + t (b - a)))
    vkd_tensor *base = vkd_affine(g, t, b - a, a);
    return vkd_exp(g, vkd_scale(g, vkd_log(g, base), rho));
}

vkd_tensor *vkd_denoise_loss(vkd_graph *g, const vkd_denoiser *d, vkd_tensor *x0, vkd_tensor *labels,
                             const vkd_denoise_loss_cfg *c, uint64_t seed, vkd_tensor *step_t, vkd_denoise_loss_aux *aux) {
    if (vkd_graph_failed(g)) return NULL;
    if (!x0) {
        vkd_graph_fail(g, "denoising loss: missing x0");
        return NULL;
    }
    if (aux && aux->want_bottleneck && !d->model) {
        vkd_graph_fail(g, "denoising loss: bottleneck features need a network denoiser (the GMM teacher has none)");
        return NULL;
    }
    int nd = vkd_tensor_ndim(x0);
    int64_t n = vkd_tensor_dim(x0, 0), bshape[VKD_MAX_DIMS], xshape[VKD_MAX_DIMS];
    for (int i = 0; i < nd; i++) bshape[i] = i ? 1 : n, xshape[i] = vkd_tensor_dim(x0, i);
    float isd2 = 1.0f / (c->sigma_data * c->sigma_data);
    vkd_tensor *sigma, *lambda;
    if (c->sigma == VKD_SIGMA_KARRAS) {
        sigma = vkd_karras_sigma_draw(g, n, c->t_min, c->t_max, c->levels, c->sigma_min, c->sigma_max, c->rho, seed,
                                      VKD_EDM_STREAM_SIGMA, step_t);
        lambda = vkd_affine(g, vkd_exp(g, vkd_scale(g, vkd_log(g, sigma), -2.0f)), 1.0f, isd2);
    } else {
        // ln sigma = p_mean + p_std * n_sigma; lambda = 1/sd^2 + exp(-2 ln sigma).
        vkd_tensor *ns = vkd_rand_normal(g, 1, &n, seed, VKD_EDM_STREAM_SIGMA, step_t);
        sigma = vkd_exp(g, vkd_affine(g, ns, c->p_std, c->p_mean));
        lambda = vkd_affine(g, vkd_exp(g, vkd_affine(g, ns, -2.0f * c->p_std, -2.0f * c->p_mean)), 1.0f, isd2);
    }
    vkd_tensor *noise = vkd_rand_normal(g, nd, xshape, seed, VKD_EDM_STREAM_NOISE, step_t);
    vkd_tensor *y = vkd_add(g, x0, vkd_mul(g, noise, vkd_reshape(g, sigma, nd, bshape)));
    vkd_tensor *h = NULL;
    vkd_tensor *D = aux && aux->want_bottleneck ? vkd_model_denoise_bottleneck(g, d->model, y, sigma, labels, &h)
                                                : vkd_denoiser_apply(g, d, y, sigma, labels);
    vkd_tensor *e = vkd_sub(g, D, x0);
    vkd_tensor *w = vkd_mul(g, vkd_mul(g, e, e), vkd_reshape(g, lambda, nd, bshape));
    if (aux) aux->sigma = sigma, aux->xt = y, aux->bottleneck = h;
    if (c->reduction == VKD_REDUCE_SAMPLE_SUM) return vkd_scale(g, vkd_sum(g, w, 0), 1.0f / (float)n);
    return vkd_mean(g, w, 0);
}

vkd_tensor *vkd_edm_loss(vkd_graph *g, const vkd_denoiser *d, vkd_tensor *x0, vkd_tensor *labels, float p_mean,
                         float p_std, float sigma_data, uint64_t seed, vkd_tensor *step_t) {
    vkd_denoise_loss_cfg c = {.sigma = VKD_SIGMA_LOGNORMAL, .p_mean = p_mean, .p_std = p_std, .sigma_data = sigma_data,
                              .reduction = VKD_REDUCE_MEAN};
    return vkd_denoise_loss(g, d, x0, labels, &c, seed, step_t, NULL);
}
