// The model object: JSON config, a parameter store with PyTorch names,
// safetensors load/save, initialization, and EDM preconditioning around the
// architecture's raw network F.
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/graph.h"
#include "nn/model.h"

vkd_tensor *vkd_model_add(vkd_model *m, const char *name, int ndim, const int64_t *shape, int is_param,
                          vkd_init_mode init, double fan_in, double fan_out, double gain) {
    if (m->err[0]) return NULL;
    if (m->n == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 64;
        m->e = realloc(m->e, m->cap * sizeof *m->e);
    }
    vkd_model_entry *e = &m->e[m->n];
    snprintf(e->name, sizeof e->name, "%s", name);
    e->is_param = is_param;
    e->t = vkd_tensor_new(m->ctx, name, ndim, shape, (is_param && m->trainable) ? VKD_PARAM : 0);
    if (!e->t) {
        snprintf(m->err, sizeof m->err, "%s", vkd_ctx_error(m->ctx));
        return NULL;
    }
    int64_t n = vkd_tensor_numel(e->t);
    if (init != VKD_INIT_ZERO && init != VKD_INIT_CUSTOM) {
        // Host-side Philox draws keyed by (model seed, tensor index): the same
        // config and seed give the same weights on every device.
        float *h = malloc(n * sizeof *h);
        for (int64_t i = 0; i < n; i++) {
            double v = 0;
            switch (init) {
            case VKD_INIT_ONE: v = 1; break;
            case VKD_INIT_XAVIER_UNIFORM:
                v = sqrt(6.0 / (fan_in + fan_out)) * (2.0 * vkd_philox_uniform(m->seed, (uint32_t)m->n, 0, i) - 1.0);
                break;
            case VKD_INIT_KAIMING_NORMAL: v = sqrt(1.0 / fan_in) * vkd_philox_normal(m->seed, (uint32_t)m->n, 0, i); break;
            case VKD_INIT_NORMAL: v = vkd_philox_normal(m->seed, (uint32_t)m->n, 0, i); break;
            default: break;
            }
            h[i] = (float)(v * (init == VKD_INIT_ONE ? 1.0 : gain));
        }
        vkd_tensor_upload(e->t, h);
        free(h);
    }
    m->n++;
    return e->t;
}

vkd_tensor *vkd_model_find(const vkd_model *m, const char *name) {
    for (int i = 0; i < m->n; i++)
        if (strcmp(m->e[i].name, name) == 0) return m->e[i].t;
    return NULL;
}

vkd_tensor *vkd_model_get(vkd_model *m, const char *fmt, ...) {
    char name[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    vkd_tensor *t = vkd_model_find(m, name);
    if (!t && !m->err[0]) snprintf(m->err, sizeof m->err, "internal: model has no tensor '%s'", name);
    return t;
}

int vkd_model_num_tensors(const vkd_model *m) { return m->n; }
vkd_tensor *vkd_model_tensor(const vkd_model *m, int i) { return m->e[i].t; }
int vkd_model_tensor_is_param(const vkd_model *m, int i) { return m->e[i].is_param; }
int vkd_model_label_dim(const vkd_model *m) { return m->label_dim; }
const char *vkd_model_arch(const vkd_model *m) { return m->arch; }
const char *vkd_model_config_json(const vkd_model *m) { return m->json; }

int64_t vkd_model_param_count(const vkd_model *m) {
    int64_t n = 0;
    for (int i = 0; i < m->n; i++)
        if (m->e[i].is_param) n += vkd_tensor_numel(m->e[i].t);
    return n;
}

int vkd_model_sample_shape(const vkd_model *m, int64_t shape[3]) {
    for (int i = 0; i < m->sample_ndim; i++) shape[i] = m->sample_shape[i];
    return m->sample_ndim;
}

vkd_model *vkd_model_create_json(vkd_ctx *ctx, const char *json, const char *name, int trainable, uint64_t seed,
                                 char *err, size_t errlen) {
    vkd_cfg *c = vkd_cfg_parse(json, name, err, errlen);
    if (!c) return NULL;
    vkd_model *m = calloc(1, sizeof *m);
    m->ctx = ctx;
    m->trainable = trainable;
    m->seed = seed;
    m->json = strdup(json);
    snprintf(m->name, sizeof m->name, "%s", name ? name : "model config");
    static const char *const archs[] = {"unet", "dit", "mlp", "classifier", NULL};
    const char *arch = vkd_cfg_str(c, "arch", 1, NULL, archs);
    m->sigma_data = (float)vkd_cfg_num(c, "sigma_data", 0, 0.5, 1e-6, 1e6);
    vkd_cfg_str(c, "comment", 0, NULL, NULL);  // free text for people
    int rc = -1;
    if (arch) {
        snprintf(m->arch, sizeof m->arch, "%s", arch);
        if (strcmp(arch, "unet") == 0) rc = vkd_unet_init(m, c);
        else if (strcmp(arch, "dit") == 0) rc = vkd_dit_init(m, c);
        else if (strcmp(arch, "classifier") == 0) rc = vkd_classifier_init(m, c);
        else rc = vkd_mlp_init(m, c);
    }
    if (vkd_cfg_finish(c) || vkd_cfg_error(c)) {
        snprintf(err, errlen, "%s", vkd_cfg_error(c));
        rc = -1;
    } else if (m->err[0] || rc) {
        snprintf(err, errlen, "%s", m->err[0] ? m->err : "model construction failed");
        rc = -1;
    }
    vkd_cfg_free(c);
    if (rc == 0) {
        int64_t one = 1;
        float v = 1.0f;
        m->one = vkd_tensor_new(ctx, "one", 1, &one, 0);
        if (!m->one || vkd_tensor_upload(m->one, &v)) {
            snprintf(err, errlen, "%s", vkd_ctx_error(ctx));
            rc = -1;
        }
    }
    if (rc) {
        vkd_model_free(m);
        return NULL;
    }
    return m;
}

vkd_model *vkd_model_create(vkd_ctx *ctx, const char *config_path, int trainable, uint64_t seed, char *err,
                            size_t errlen) {
    FILE *f = fopen(config_path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open model config (no such file or not readable)", config_path);
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc(n + 1);
    size_t got = fread(text, 1, n, f);
    fclose(f);
    text[got] = 0;
    vkd_model *m = vkd_model_create_json(ctx, text, config_path, trainable, seed, err, errlen);
    free(text);
    return m;
}

vkd_model *vkd_model_frozen_view(vkd_model *src) {
    vkd_model *m = calloc(1, sizeof *m);
    *m = *src;
    m->view_of = src;
    m->trainable = 0;
    m->json = strdup(src->json);
    m->e = calloc(src->n, sizeof *m->e);
    m->cap = src->n;
    for (int i = 0; i < src->n; i++) {
        m->e[i] = src->e[i];
        m->e[i].t = vkd_tensor_alias(src->e[i].t);
    }
    m->one = vkd_tensor_alias(src->one);
    return m;
}

void vkd_model_free(vkd_model *m) {
    if (!m) return;
    if (m->view_of) {  // the architecture state belongs to the viewed model
        for (int i = 0; i < m->n; i++) vkd_tensor_free(m->e[i].t);
        vkd_tensor_free(m->one);
        free(m->e);
        free(m->json);
        free(m);
        return;
    }
    for (int i = 0; i < m->n; i++) vkd_tensor_free(m->e[i].t);
    vkd_tensor_free(m->one);
    vkd_unet_free(m->unet);
    vkd_dit_free(m->dit);
    vkd_mlp_free(m->mlp);
    vkd_classifier_free(m->clf);
    free(m->e);
    free(m->json);
    free(m);
}

int vkd_model_check_derived(vkd_st *st, const char *path, const char *name, vkd_tensor *t, char *err, size_t errlen) {
    static const char suffix[] = ".resample_filter";
    size_t n = strlen(name), k = sizeof suffix - 1;
    if (n < k || strcmp(name + n - k, suffix) != 0) return 0;
    int64_t shape[VKD_MAX_DIMS], numel = vkd_tensor_numel(t);
    for (int d = 0; d < vkd_tensor_ndim(t); d++) shape[d] = vkd_tensor_dim(t, d);
    float *have = malloc(numel * sizeof *have), *want = malloc(numel * sizeof *want);
    int rc = vkd_st_read_f32(st, name, vkd_tensor_ndim(t), shape, have, err, errlen);
    if (!rc && vkd_tensor_download(t, want)) {
        snprintf(err, errlen, "%s: downloading '%s' failed", path, name);
        rc = -1;
    }
    for (int64_t j = 0; j < numel && !rc; j++)
        if (fabsf(have[j] - want[j]) > 1e-6f * (1.0f + fabsf(want[j]))) {
            snprintf(err, errlen,
                     "%s: tensor '%s' differs from the model config's resample_filter (element %lld is %g, the config "
                     "gives %g): set resample_filter in the config to the filter these weights were trained with",
                     path, name, (long long)j, have[j], want[j]);
            rc = -1;
        }
    free(have), free(want);
    return rc;
}

// One file is the mean of one (src/nn/model_mean.c holds the loader).
int vkd_model_load(vkd_model *m, const char *path, char *err, size_t errlen) {
    return vkd_model_load_mean(m, &path, 1, NULL, err, errlen);
}

int vkd_model_save(vkd_model *m, const char *path, const char *dtype, char *err, size_t errlen) {
    vkd_st_tensor *ts = calloc(m->n, sizeof *ts);
    int64_t(*shapes)[VKD_MAX_DIMS] = calloc(m->n, sizeof *shapes);
    int rc = 0;
    for (int i = 0; i < m->n && !rc; i++) {
        vkd_tensor *t = m->e[i].t;
        for (int k = 0; k < vkd_tensor_ndim(t); k++) shapes[i][k] = vkd_tensor_dim(t, k);
        float *h = malloc(vkd_tensor_numel(t) * sizeof *h);
        if (vkd_tensor_download(t, h)) {
            snprintf(err, errlen, "%s", vkd_ctx_error(m->ctx));
            rc = -1;
        }
        ts[i] = (vkd_st_tensor){m->e[i].name, vkd_tensor_ndim(t), shapes[i], h};
    }
    const char *meta[2] = {"config", m->json};
    if (!rc) rc = vkd_st_write(path, ts, m->n, dtype, meta, 1, err, errlen);
    for (int i = 0; i < m->n; i++) free((void *)ts[i].data);
    free(ts);
    free(shapes);
    return rc;
}

int vkd_model_copy_weights(vkd_model *dst, const vkd_model *src, char *err, size_t errlen) {
    if (dst->n != src->n || strcmp(dst->arch, src->arch) != 0) {
        snprintf(err, errlen, "copy weights: models differ (%s with %d tensors vs %s with %d)", dst->arch, dst->n,
                 src->arch, src->n);
        return -1;
    }
    for (int i = 0; i < src->n; i++) {
        vkd_tensor *a = dst->e[i].t, *b = src->e[i].t;
        if (strcmp(dst->e[i].name, src->e[i].name) != 0 || vkd_tensor_numel(a) != vkd_tensor_numel(b)) {
            snprintf(err, errlen, "copy weights: tensor '%s' does not match '%s'", dst->e[i].name, src->e[i].name);
            return -1;
        }
        float *h = malloc(vkd_tensor_numel(b) * sizeof *h);
        int rc = vkd_tensor_download(b, h) || vkd_tensor_upload(a, h);
        free(h);
        if (rc) {
            snprintf(err, errlen, "%s", vkd_ctx_error(dst->ctx));
            return -1;
        }
    }
    return 0;
}

void vkd_model_set_train(vkd_model *m, int on, uint64_t seed, vkd_tensor *step_t) {
    m->train = on;
    m->train_seed = seed;
    m->step_t = step_t;
}

vkd_tensor *vkd_model_dropout(vkd_graph *g, vkd_model *m, vkd_tensor *x, float p) {
    if (!m->train || p <= 0) return x;
    return vkd_dropout(g, x, p, m->train_seed, 0x1000u + m->dropout_stream++, m->step_t);
}

vkd_tensor *vkd_model_denoise(vkd_graph *g, vkd_model *m, vkd_tensor *x, vkd_tensor *sigma, vkd_tensor *labels) {
    return vkd_model_denoise_aug(g, m, x, sigma, labels, NULL);
}

static vkd_tensor *denoise(vkd_graph *g, vkd_model *m, vkd_tensor *x, vkd_tensor *sigma, vkd_tensor *labels,
                           vkd_tensor *augment, vkd_tensor **tap, int tap_only) {
    if (!x || !sigma || vkd_graph_failed(g)) {
        if (!vkd_graph_failed(g)) vkd_graph_fail(g, "denoise: missing x or sigma");
        return NULL;
    }
    if (m->clf) {  // a classifier has no denoiser (see vkd_classifier_forward)
        vkd_graph_fail(g, "denoise: '%s' is an image classifier, not a denoiser", m->arch);
        return NULL;
    }
    int64_t n = vkd_tensor_dim(x, 0);
    char sx[64];
    vkd_shape_str(x, sx, sizeof sx);
    int ok = vkd_tensor_ndim(x) == m->sample_ndim + 1 && vkd_tensor_numel(sigma) == n;
    for (int i = 0; ok && i < m->sample_ndim; i++) ok = vkd_tensor_dim(x, i + 1) == m->sample_shape[i];
    if (!ok) {
        vkd_graph_fail(g, "denoise: x %s with %lld sigmas does not fit the %s model's samples", sx,
                       (long long)vkd_tensor_numel(sigma), m->arch);
        return NULL;
    }
    if (m->label_dim && labels &&
        (vkd_tensor_ndim(labels) != 2 || vkd_tensor_dim(labels, 0) != n || vkd_tensor_dim(labels, 1) != m->label_dim)) {
        vkd_graph_fail(g, "denoise: labels must be (%lld, %d) one-hot rows", (long long)n, m->label_dim);
        return NULL;
    }
    m->dropout_stream = 0;
    vkd_tensor *c[4];
    if (vkd_edm_coefficients(g, sigma, m->sigma_data, c)) return NULL;
    int64_t bshape[4] = {n, 1, 1, 1};
    int nd = m->sample_ndim + 1;
    vkd_tensor *c_skip = vkd_reshape(g, c[0], nd, bshape), *c_out = vkd_reshape(g, c[1], nd, bshape);
    vkd_tensor *c_in = vkd_reshape(g, c[2], nd, bshape);
    vkd_tensor *xin = vkd_mul(g, x, c_in);
    vkd_tensor *F = NULL;
    if (tap && !m->unet) {
        vkd_graph_fail(g, "bottleneck: only UNets have one; the %s model has none", m->arch);
        return NULL;
    }
    if (m->unet) F = vkd_unet_forward(g, m, xin, c[3], m->label_dim ? labels : NULL, augment, tap, tap_only);
    else if (m->dit) F = vkd_dit_forward(g, m, xin, c[3], m->label_dim ? labels : NULL);
    else F = vkd_mlp_forward(g, m, xin, c[3], m->label_dim ? labels : NULL);
    if (m->err[0]) vkd_graph_fail(g, "%s", m->err);
    if (tap_only) return tap ? *tap : NULL;
    return vkd_add(g, vkd_mul(g, x, c_skip), vkd_mul(g, F, c_out));
}

vkd_tensor *vkd_model_denoise_aug(vkd_graph *g, vkd_model *m, vkd_tensor *x, vkd_tensor *sigma, vkd_tensor *labels,
                                  vkd_tensor *augment) {
    return denoise(g, m, x, sigma, labels, augment, NULL, 0);
}

vkd_tensor *vkd_model_denoise_bottleneck(vkd_graph *g, vkd_model *m, vkd_tensor *x, vkd_tensor *sigma,
                                         vkd_tensor *labels, vkd_tensor **bottleneck) {
    *bottleneck = NULL;
    return denoise(g, m, x, sigma, labels, NULL, bottleneck, 0);
}

vkd_tensor *vkd_model_bottleneck(vkd_graph *g, vkd_model *m, vkd_tensor *x, vkd_tensor *sigma, vkd_tensor *labels) {
    vkd_tensor *b = NULL;
    denoise(g, m, x, sigma, labels, NULL, &b, 1);
    return b;
}

int vkd_model_bottleneck_shape(const vkd_model *m, int64_t shape[3]) {
    return m->unet ? vkd_unet_bottleneck_shape(m, shape) : -1;
}
