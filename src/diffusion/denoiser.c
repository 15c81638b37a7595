// Any denoiser: an EDM-preconditioned network or the exact GMM teacher, behind
// one call, so samplers, the EDM loss and the distillation objectives never ask
// which one they hold.
#include "core/graph.h"
#include "diffusion/internal.h"
#include "nn/model.h"

static int check(vkd_graph *g, const vkd_denoiser *d) {
    if (vkd_graph_failed(g)) return -1;
    if (!d || (!d->model) == (!d->gmm)) {
        vkd_graph_fail(g, "denoiser: exactly one of model and gmm must be set");
        return -1;
    }
    return 0;
}

vkd_tensor *vkd_denoiser_apply(vkd_graph *g, const vkd_denoiser *d, vkd_tensor *x, vkd_tensor *sigma,
                               vkd_tensor *labels) {
    if (check(g, d)) return NULL;
    if (d->model) return vkd_model_denoise(g, d->model, x, sigma, labels);
    if (labels) {
        vkd_graph_fail(g, "denoiser: the GMM teacher is unconditional; labels '%s' were given", labels->name);
        return NULL;
    }
    return vkd_gmm_denoise(g, d->gmm, x, sigma);
}

int vkd_denoiser_sample_shape(const vkd_denoiser *d, int64_t shape[3]) {
    return d->model ? vkd_model_sample_shape(d->model, shape) : vkd_gmm_sample_shape(d->gmm, shape);
}

int vkd_denoiser_label_dim(const vkd_denoiser *d) { return d->model ? vkd_model_label_dim(d->model) : 0; }

vkd_ctx *vkd_denoiser_ctx(const vkd_denoiser *d) {
    return d->model ? d->model->ctx : d->gmm ? vkd_gmm_ctx(d->gmm) : NULL;
}
