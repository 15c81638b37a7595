// DMD2's GAN head: a small discriminator on the fake-score network's
// bottleneck (ALGORITHMS.md, "DMD2 GAN term"). As a PyTorch module, with the
// tensor names of DMD2's cls_pred_branch:
//   0: Conv2d(C, C, 4, stride 2, padding 1)   (N, C, R, R) -> (N, C, R/2, R/2)
//   1: GroupNorm(G, C)                         G: the largest divisor of C up to min(32, C/4)
//   2: SiLU
//   3: Conv2d(C, C, k, stride k), k = min(4, R/2) (DMD2's 4 on an 8x8 bottleneck)
//   4: GroupNorm(G, C)
//   5: SiLU
//   6: Conv2d(C, 1, 1)
// then the mean over the remaining positions (one on an 8x8 bottleneck): a logit per sample.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/graph.h"
#include "vkdistill/distill.h"

#define HEAD_TENSORS 10

struct vkd_gan_head {
    vkd_tensor *t[HEAD_TENSORS];  // 0.weight 0.bias 1.weight 1.bias 3.weight 3.bias 4.weight 4.bias 6.weight 6.bias
    int64_t c, r, k2;
    int groups;
    int view;  // a frozen view: aliases, freed without touching the parameters
};

static const char *const names[HEAD_TENSORS] = {
    "cls_pred_branch.0.weight", "cls_pred_branch.0.bias", "cls_pred_branch.1.weight", "cls_pred_branch.1.bias",
    "cls_pred_branch.3.weight", "cls_pred_branch.3.bias", "cls_pred_branch.4.weight", "cls_pred_branch.4.bias",
    "cls_pred_branch.6.weight", "cls_pred_branch.6.bias"};

// PyTorch's default Conv2d initialization: weight and bias ~ U(-b, b), b = 1/sqrt(fan_in).
static int init_uniform(vkd_tensor *t, double fan_in, uint64_t seed, uint32_t stream) {
    int64_t n = vkd_tensor_numel(t);
    float *h = malloc((size_t)n * sizeof *h);
    if (!h) return -1;
    double b = 1.0 / sqrt(fan_in);
    for (int64_t i = 0; i < n; i++) h[i] = (float)((2.0 * vkd_philox_uniform(seed, stream, 0, (uint64_t)i) - 1.0) * b);
    int rc = vkd_tensor_upload(t, h);
    free(h);
    return rc;
}

static int init_const(vkd_tensor *t, float v) {
    int64_t n = vkd_tensor_numel(t);
    float *h = malloc((size_t)n * sizeof *h);
    if (!h) return -1;
    for (int64_t i = 0; i < n; i++) h[i] = v;
    int rc = vkd_tensor_upload(t, h);
    free(h);
    return rc;
}

vkd_gan_head *vkd_gan_head_new(vkd_ctx *ctx, const int64_t feat[3], uint64_t seed, char *err, size_t errlen) {
    int64_t c = feat[0], r = feat[1];
    if (r < 2 || r % 2 || feat[2] != r) {
        snprintf(err, errlen, "GAN head: the bottleneck is %lldx%lldx%lld; the head needs a square one of even side >= 2",
                 (long long)feat[0], (long long)feat[1], (long long)feat[2]);
        return NULL;
    }
    vkd_gan_head *h = calloc(1, sizeof *h);
    h->c = c, h->r = r, h->k2 = r / 2 < 4 ? r / 2 : 4;
    // At most 32 groups (DMD2's GroupNorm(32, C)) and at least 4 channels per
    // group (EDM's rule): the second norm sees 1x1 maps, where a group of one
    // channel would normalize every input to the bias.
    int gmax = c / 4 < 32 ? (int)(c / 4) : 32;
    h->groups = 1;
    for (int g = gmax; g >= 1; g--)
        if (c % g == 0) {
            h->groups = g;
            break;
        }
    const int64_t k2 = h->k2;
    const int64_t shapes[HEAD_TENSORS][4] = {{c, c, 4, 4}, {c}, {c}, {c}, {c, c, k2, k2}, {c}, {c}, {c}, {1, c, 1, 1}, {1}};
    const int nd[HEAD_TENSORS] = {4, 1, 1, 1, 4, 1, 1, 1, 4, 1};
    int rc = 0;
    for (int i = 0; i < HEAD_TENSORS && !rc; i++) {
        h->t[i] = vkd_tensor_new(ctx, names[i], nd[i], shapes[i], VKD_PARAM);
        if (!h->t[i]) {
            rc = -1;
            break;
        }
        int is_norm = i == 2 || i == 3 || i == 6 || i == 7;
        if (is_norm) rc = init_const(h->t[i], i == 2 || i == 6 ? 1.0f : 0.0f);
        else {
            double fan_in = (double)c * (i < 2 ? 16 : i < 8 ? k2 * k2 : 1);
            rc = init_uniform(h->t[i], fan_in, seed, 0x6a4u + (uint32_t)i);
        }
    }
    if (rc) {
        snprintf(err, errlen, "GAN head: %s", vkd_ctx_error(ctx));
        vkd_gan_head_free(h);
        return NULL;
    }
    return h;
}

vkd_gan_head *vkd_gan_head_frozen_view(vkd_gan_head *src) {
    vkd_gan_head *h = calloc(1, sizeof *h);
    *h = *src;
    h->view = 1;
    for (int i = 0; i < HEAD_TENSORS; i++) h->t[i] = vkd_tensor_alias(src->t[i]);
    return h;
}

void vkd_gan_head_free(vkd_gan_head *h) {
    if (!h) return;
    for (int i = 0; i < HEAD_TENSORS; i++) vkd_tensor_free(h->t[i]);
    free(h);
}

int vkd_gan_head_num_tensors(const vkd_gan_head *h) { return h ? HEAD_TENSORS : 0; }
vkd_tensor *vkd_gan_head_tensor(const vkd_gan_head *h, int i) { return i >= 0 && i < HEAD_TENSORS ? h->t[i] : NULL; }

// features (N, C, R, R) -> logits (N)
vkd_tensor *vkd_gan_head_forward(vkd_graph *g, const vkd_gan_head *h, vkd_tensor *f) {
    if (!f || vkd_graph_failed(g)) return NULL;
    if (vkd_tensor_ndim(f) != 4 || vkd_tensor_dim(f, 1) != h->c || vkd_tensor_dim(f, 2) != h->r ||
        vkd_tensor_dim(f, 3) != h->r) {
        vkd_graph_fail(g, "GAN head: features '%s' are not (N, %lld, %lld, %lld)", vkd_tensor_name(f), (long long)h->c,
                       (long long)h->r, (long long)h->r);
        return NULL;
    }
    int64_t n = vkd_tensor_dim(f, 0);
    vkd_tensor *x = vkd_conv2d(g, f, h->t[0], h->t[1], 2, 1, 1, 1);           // (N, C, R/2, R/2)
    x = vkd_groupnorm_silu(g, x, h->t[2], h->t[3], h->groups, 1e-5f);
    x = vkd_conv2d(g, x, h->t[4], h->t[5], (int)h->k2, 0, 0, 1);              // (N, C, r, r)
    x = vkd_groupnorm_silu(g, x, h->t[6], h->t[7], h->groups, 1e-5f);
    x = vkd_conv2d(g, x, h->t[8], h->t[9], 1, 0, 0, 1);                       // (N, 1, r, r)
    if (!x) return NULL;
    int64_t pos = vkd_tensor_numel(x) / n;
    return vkd_mean(g, vkd_reshape(g, x, 2, (int64_t[]){n, pos}), 1);        // (N)
}
