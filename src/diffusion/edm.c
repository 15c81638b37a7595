// EDM's training loss (Karras et al. 2022, eq. 8 with the log-normal sigma
// distribution), composed from recorded ops so its gradient comes from the
// ops' own backward: sigma and the noise are drawn on the device, so the same
// recorded step draws fresh values every replay (step from step_t[0]).
#include "core/graph.h"
#include "vkdistill/diffusion.h"

vkd_tensor *vkd_edm_loss(vkd_graph *g, const vkd_denoiser *d, vkd_tensor *x0, vkd_tensor *labels, float p_mean,
                         float p_std, float sigma_data, uint64_t seed, vkd_tensor *step_t) {
    if (vkd_graph_failed(g)) return NULL;
    if (!x0) {
        vkd_graph_fail(g, "edm loss: missing x0");
        return NULL;
    }
    int nd = vkd_tensor_ndim(x0);
    int64_t n = vkd_tensor_dim(x0, 0), bshape[VKD_MAX_DIMS], xshape[VKD_MAX_DIMS];
    for (int i = 0; i < nd; i++) bshape[i] = i ? 1 : n, xshape[i] = vkd_tensor_dim(x0, i);
    // ln sigma = p_mean + p_std * n_sigma; lambda = (sigma^2 + sd^2) / (sigma sd)^2 = 1/sd^2 + exp(-2 ln sigma).
    vkd_tensor *ns = vkd_rand_normal(g, 1, &n, seed, VKD_EDM_STREAM_SIGMA, step_t);
    vkd_tensor *sigma = vkd_exp(g, vkd_affine(g, ns, p_std, p_mean));
    vkd_tensor *lambda = vkd_affine(g, vkd_exp(g, vkd_affine(g, ns, -2.0f * p_std, -2.0f * p_mean)), 1.0f,
                                    1.0f / (sigma_data * sigma_data));
    vkd_tensor *noise = vkd_rand_normal(g, nd, xshape, seed, VKD_EDM_STREAM_NOISE, step_t);
    vkd_tensor *y = vkd_add(g, x0, vkd_mul(g, noise, vkd_reshape(g, sigma, nd, bshape)));
    vkd_tensor *D = vkd_denoiser_apply(g, d, y, sigma, labels);
    vkd_tensor *e = vkd_sub(g, D, x0);
    vkd_tensor *w = vkd_mul(g, vkd_mul(g, e, e), vkd_reshape(g, lambda, nd, bshape));
    return vkd_mean(g, w, 0);
}
