// A small CNN image classifier whose penultimate layer is the feature space of
// vkdistill's "FD" (a Frechet distance that needs no Inception weights; see
// models/fmnist_classifier.json). As a PyTorch module:
//   for each stage s (widths[s]):  (conv3x3 -> ReLU) x convs_per_stage -> avg_pool2d(2)
//   h = flatten -> fc (features) -> ReLU        <- "features": the FD space
//   logits = head(h)
// Tensor names: stages.{s}.conv{k}.{weight,bias}, fc.{weight,bias}, head.{weight,bias}.
// Only ops with a backward are used (avgpool2x, not maxpool2d), so it trains with vkdistill itself.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/graph.h"
#include "nn/model.h"
#include "ops/ops.h"

#define CLF_MAX_STAGES 4

struct vkd_classifier {
    int in_channels, resolution, num_classes, features;
    int nstages, widths[CLF_MAX_STAGES], convs;  // convs: 3x3 convolutions per stage
};

static void conv_params(vkd_model *m, const char *p, int cin, int cout) {
    char n[96];
    snprintf(n, sizeof n, "%s.weight", p);
    // He-normal (std sqrt(2 / fan_in)): keeps activation scale through ReLUs.
    vkd_model_add(m, n, 4, (int64_t[]){cout, cin, 3, 3}, 1, VKD_INIT_KAIMING_NORMAL, cin * 9.0, 0, 1.41421356);
    snprintf(n, sizeof n, "%s.bias", p);
    vkd_model_add(m, n, 1, (int64_t[]){cout}, 1, VKD_INIT_ZERO, 0, 0, 0);
}

static void lin_params(vkd_model *m, const char *p, int in, int out, double gain) {
    char n[96];
    snprintf(n, sizeof n, "%s.weight", p);
    vkd_model_add(m, n, 2, (int64_t[]){out, in}, 1, VKD_INIT_KAIMING_NORMAL, in, 0, gain);
    snprintf(n, sizeof n, "%s.bias", p);
    vkd_model_add(m, n, 1, (int64_t[]){out}, 1, VKD_INIT_ZERO, 0, 0, 0);
}

int vkd_classifier_init(vkd_model *m, vkd_cfg *c) {
    vkd_classifier *p = calloc(1, sizeof *p);
    m->clf = p;
    p->in_channels = vkd_cfg_int(c, "in_channels", 1, 0, 1, 3);
    p->resolution = vkd_cfg_int(c, "resolution", 1, 0, 4, 4096);
    p->num_classes = vkd_cfg_int(c, "num_classes", 1, 0, 2, 1 << 16);
    p->features = vkd_cfg_int(c, "features", 0, 256, 1, 1 << 16);
    p->convs = vkd_cfg_int(c, "convs_per_stage", 0, 2, 1, 8);
    p->nstages = vkd_cfg_int_list(c, "widths", 0, p->widths, CLF_MAX_STAGES, 1, 4096);
    if (vkd_cfg_error(c)) return -1;
    if (p->nstages == 0) p->nstages = 2, p->widths[0] = 32, p->widths[1] = 64;
    if (p->resolution % (1 << p->nstages)) {
        snprintf(m->err, sizeof m->err, "model config: field 'resolution': %d is not divisible by 2^%d (one 2x pool per width)",
                 p->resolution, p->nstages);
        return -1;
    }
    m->sample_ndim = 3;
    m->sample_shape[0] = p->in_channels;
    m->sample_shape[1] = m->sample_shape[2] = p->resolution;
    m->label_dim = 0;  // the labels are the output, not an input
    int cin = p->in_channels;
    char n[64];
    for (int s = 0; s < p->nstages; s++) {
        for (int k = 0; k < p->convs; k++) {
            snprintf(n, sizeof n, "stages.%d.conv%d", s, k);
            conv_params(m, n, cin, p->widths[s]);
            cin = p->widths[s];
        }
    }
    int side = p->resolution >> p->nstages;
    lin_params(m, "fc", cin * side * side, p->features, 1.41421356);
    lin_params(m, "head", p->features, p->num_classes, 1.0);
    return m->err[0] ? -1 : 0;
}

void vkd_classifier_free(vkd_classifier *p) { free(p); }

int vkd_classifier_dims(const vkd_model *m, int *num_classes, int *features) {
    if (!m->clf) return -1;
    if (num_classes) *num_classes = m->clf->num_classes;
    if (features) *features = m->clf->features;
    return 0;
}

#define P(...) vkd_model_get(m, __VA_ARGS__)

vkd_tensor *vkd_classifier_forward(vkd_graph *g, vkd_model *m, vkd_tensor *x, vkd_tensor **features_out) {
    if (features_out) *features_out = NULL;
    if (!x || vkd_graph_failed(g)) return NULL;
    vkd_classifier *p = m->clf;
    if (!p) {
        vkd_graph_fail(g, "classifier forward: '%s' is not a classifier model", m->arch);
        return NULL;
    }
    char sx[64];
    vkd_shape_str(x, sx, sizeof sx);
    if (vkd_tensor_ndim(x) != 4 || vkd_tensor_dim(x, 1) != p->in_channels || vkd_tensor_dim(x, 2) != p->resolution ||
        vkd_tensor_dim(x, 3) != p->resolution) {
        vkd_graph_fail(g, "classifier forward: x %s must be (N, %d, %d, %d)", sx, p->in_channels, p->resolution,
                       p->resolution);
        return NULL;
    }
    int64_t n = vkd_tensor_dim(x, 0);
    // x is (N, C, R, R)
    vkd_tensor *h = x;
    for (int s = 0; s < p->nstages; s++) {
        for (int k = 0; k < p->convs; k++)
            h = vkd_relu(g, vkd_conv2d(g, h, P("stages.%d.conv%d.weight", s, k), P("stages.%d.conv%d.bias", s, k), 1, 1, 1, 1));
        h = vkd_avgpool2x(g, h);
    }
    if (!h) return NULL;
    // (N, C', R', R') flattened in C order, as torch.flatten(h, 1)
    h = vkd_reshape(g, h, 2, (int64_t[]){n, vkd_tensor_numel(h) / n});
    vkd_tensor *f = vkd_relu(g, vkd_linear(g, h, P("fc.weight"), P("fc.bias")));  // (N, features)
    vkd_tensor *logits = vkd_linear(g, f, P("head.weight"), P("head.bias"));       // (N, num_classes)
    if (m->err[0]) vkd_graph_fail(g, "%s", m->err);
    if (features_out) *features_out = f;
    return logits;
}

int vkd_classifier_features(vkd_model *m, const float *images, int64_t n, int batch, float *feats_out,
                            float *logits_out, char *err, size_t errlen) {
    vkd_classifier *p = m->clf;
    if (!p) {
        snprintf(err, errlen, "classifier features: '%s' is not a classifier model", m->arch);
        return -1;
    }
    if (n <= 0) return 0;
    if (batch <= 0) batch = 256;
    if (batch > n) batch = (int)n;
    int R = p->resolution, F = p->features, K = p->num_classes;
    size_t img = (size_t)p->in_channels * R * R;
    int rc = 0;
    vkd_tensor *in = vkd_tensor_new(m->ctx, "classifier.images", 4, (int64_t[]){batch, p->in_channels, R, R}, VKD_HOST);
    vkd_graph *g = in ? vkd_graph_new(m->ctx, "classifier_features") : NULL;
    vkd_tensor *feats = NULL;
    if (g) vkd_graph_set_grad_enabled(g, 0);
    vkd_tensor *logits = g ? vkd_classifier_forward(g, m, in, &feats) : NULL;
    if (!logits || !feats || vkd_graph_compile(g)) {
        snprintf(err, errlen, "classifier features: %s", g ? vkd_graph_error(g) : vkd_ctx_error(m->ctx));
        rc = -1;
    } else {
        vkd_graph_keep(g, feats);
        vkd_graph_keep(g, logits);
    }
    float *fb = rc ? NULL : malloc((size_t)batch * F * sizeof *fb);
    float *lb = rc ? NULL : malloc((size_t)batch * K * sizeof *lb);
    float *ih = rc ? NULL : vkd_tensor_map(in);
    for (int64_t s = 0; s < n && !rc; s += batch) {
        int64_t k = n - s < batch ? n - s : batch;
        memcpy(ih, images + s * img, k * img * sizeof *ih);
        if (k < batch) memset(ih + k * img, 0, (batch - k) * img * sizeof *ih);  // padding; outputs dropped
        if (vkd_graph_run(g) || vkd_tensor_download(feats, fb) || vkd_tensor_download(logits, lb)) {
            const char *ge = vkd_graph_error(g);
            snprintf(err, errlen, "classifier features: %s", ge && ge[0] ? ge : vkd_ctx_error(m->ctx));
            rc = -1;
            break;
        }
        if (feats_out) memcpy(feats_out + s * F, fb, (size_t)k * F * sizeof *fb);
        if (logits_out) memcpy(logits_out + s * K, lb, (size_t)k * K * sizeof *lb);
    }
    free(fb), free(lb);
    vkd_graph_free(g);
    vkd_tensor_free(in);
    return rc;
}
