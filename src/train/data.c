// What training configs share: the "dataset" object, config-relative paths,
// datasets fitted to a model, and sample grids of a denoiser.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "train/config.h"
#include "vkdistill/nn.h"

void vkd_dirname(const char *path, char *out, size_t n) {
    snprintf(out, n, "%s", path);
    char *s = strrchr(out, '/');
    if (s) *s = 0;
    else snprintf(out, n, ".");
}

void vkd_resolve_path(const char *config_path, const char *p, char *out, size_t n) {
    if (p[0] == '/') {
        snprintf(out, n, "%s", p);
        return;
    }
    char dir[1024];
    vkd_dirname(config_path, dir, sizeof dir);
    snprintf(out, n, "%s/%s", dir, p);
    if (access(out, F_OK) != 0) snprintf(out, n, "%s", p);
}

void vkd_dataset_cfg_parse(vkd_cfg *d, const char *config_path, vkd_dataset_cfg *t) {
    memset(t, 0, sizeof *t);
    const char *src = vkd_cfg_str(d, "source", 1, NULL, NULL);
    if (src) vkd_resolve_path(config_path, src, t->source, sizeof t->source);
    static const char *const splits[] = {"train", "test", NULL};
    const char *split = vkd_cfg_str(d, "split", 0, "train", splits);
    snprintf(t->split, sizeof t->split, "%s", split ? split : "train");
    t->resolution = vkd_cfg_int(d, "resolution", 0, 0, 0, 4096);
    t->channels = vkd_cfg_int(d, "channels", 0, 0, 0, 3);
    t->pad_to = vkd_cfg_int(d, "pad_to", 0, 0, 0, 4096);
    t->flip = vkd_cfg_bool(d, "flip", 0, 0);
    t->max_images = vkd_cfg_int(d, "max_images", 0, 0, 0, 2000000000);
}

vkd_dataset *vkd_dataset_cfg_open(const vkd_dataset_cfg *t, const vkd_model *m, const char *model_path, char *err,
                                  size_t errlen) {
    int64_t s[3];
    vkd_model_sample_shape(m, s);
    int K = vkd_model_label_dim(m);
    vkd_dataset_opts dopt = {.resolution = t->resolution, .channels = t->channels, .pad_to = t->pad_to,
                             .max_images = t->max_images};
    vkd_dataset *ds = vkd_dataset_open(t->source, t->split[0] ? t->split : "train", &dopt, err, errlen);
    if (!ds) return NULL;
    int dc, dh, dw;
    vkd_dataset_shape(ds, &dc, &dh, &dw);
    if (dc != s[0] || dh != s[1] || dw != s[2]) {
        snprintf(err, errlen,
                 "%s: images are %dx%dx%d (CxHxW) but the model '%s' takes %lldx%lldx%lld; set dataset.channels / pad_to / resolution",
                 t->source, dc, dh, dw, model_path, (long long)s[0], (long long)s[1], (long long)s[2]);
    } else if (K && vkd_dataset_num_classes(ds) != K) {
        snprintf(err, errlen, "%s: %d classes but the model has label_dim %d", t->source, vkd_dataset_num_classes(ds), K);
    } else {
        return ds;
    }
    vkd_dataset_free(ds);
    return NULL;
}

vkd_dataset *vkd_dataset_open_fitted(const char *source, const char *split, int channels, int res, int64_t max_images,
                                     char *err, size_t errlen) {
    // Smaller images are padded (28x28 Fashion-MNIST in a 32x32 frame keeps every
    // pixel), larger ones resized; channels are converted by the dataset loader.
    vkd_dataset_opts o = {.channels = channels, .max_images = max_images};
    vkd_dataset *d = vkd_dataset_open(source, split, &o, err, errlen);
    if (!d || res <= 0) return d;
    int c, h, w;
    vkd_dataset_shape(d, &c, &h, &w);
    if (h == res && w == res) return d;
    vkd_dataset_free(d);
    if (h <= res && w <= res) o.pad_to = res;
    else o.resolution = res;
    return vkd_dataset_open(source, split, &o, err, errlen);
}

int vkd_sample_grid_png(const vkd_denoiser *den, int n, int steps, double guidance, uint64_t seed, const char *path,
                        char *err, size_t errlen) {
    vkd_ctx *ctx = vkd_denoiser_ctx(den);
    int64_t s[3], xs[4] = {n};
    int nd = vkd_denoiser_sample_shape(den, s);
    for (int i = 0; i < nd; i++) xs[i + 1] = s[i];
    int k = vkd_denoiser_label_dim(den);
    vkd_tensor *out = vkd_tensor_new(ctx, "samples", nd + 1, xs, 0);
    vkd_tensor *labels = k ? vkd_tensor_new(ctx, "sample_labels", 2, (int64_t[]){n, k}, 0) : NULL;
    if (!out || (k && !labels)) {
        snprintf(err, errlen, "%s", vkd_ctx_error(ctx));
        vkd_tensor_free(out);
        return -1;
    }
    if (labels) {  // labels 0, 1, 2, ...: grids over training are comparable
        float *h = calloc((size_t)n * k, sizeof *h);
        for (int i = 0; i < n; i++) h[(size_t)i * k + i % k] = 1.0f;
        vkd_tensor_upload(labels, h);
        free(h);
    }
    vkd_sampler_cfg sc = vkd_sampler_defaults();
    sc.steps = steps;
    sc.guidance = guidance;
    int rc = vkd_sample(den, &sc, n, labels, seed, out, err, errlen);
    if (!rc && nd == 3) {
        float *h = malloc(vkd_tensor_numel(out) * sizeof *h);
        vkd_tensor_download(out, h);
        int cols = (int)ceil(sqrt((double)n));
        rc = vkd_write_png_grid(path, h, n, (int)s[0], (int)s[1], (int)s[2], cols, 2, err, errlen);
        free(h);
    }
    vkd_tensor_free(out);
    vkd_tensor_free(labels);
    return rc;
}
