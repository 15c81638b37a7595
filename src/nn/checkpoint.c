// Checkpoints as safetensors: tensors under prefixes ("net/", "ema/",
// "adam_m/", ...) and metadata. Saving downloads every tensor and writes the
// file atomically (a crash leaves the previous checkpoint intact).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vkdistill/checkpoint.h"
#include "vkdistill/io.h"
#include "nn/model.h"

typedef struct {
    char name[192];
    vkd_tensor *t;
} ck_entry;

struct vkd_ckpt {
    int n, cap;
    ck_entry *e;
    int nmeta;
    char *meta[64];  // key, value pairs
    int nloaded;
    char *loaded[64];
};

vkd_ckpt *vkd_ckpt_new(void) { return calloc(1, sizeof(vkd_ckpt)); }

void vkd_ckpt_free(vkd_ckpt *c) {
    if (!c) return;
    for (int i = 0; i < c->nmeta; i++) free(c->meta[i]);
    for (int i = 0; i < c->nloaded; i++) free(c->loaded[i]);
    free(c->e);
    free(c);
}

void vkd_ckpt_add(vkd_ckpt *c, const char *prefix, const char *name, vkd_tensor *t) {
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 64;
        c->e = realloc(c->e, c->cap * sizeof *c->e);
    }
    snprintf(c->e[c->n].name, sizeof c->e[c->n].name, "%s%s", prefix, name);
    c->e[c->n++].t = t;
}

void vkd_ckpt_add_model(vkd_ckpt *c, const char *prefix, vkd_model *m) {
    for (int i = 0; i < vkd_model_num_tensors(m); i++)
        vkd_ckpt_add(c, prefix, vkd_tensor_name(vkd_model_tensor(m, i)), vkd_model_tensor(m, i));
}

void vkd_ckpt_set_meta(vkd_ckpt *c, const char *key, const char *value) {
    for (int i = 0; i < c->nmeta; i += 2)
        if (strcmp(c->meta[i], key) == 0) {
            free(c->meta[i + 1]);
            c->meta[i + 1] = strdup(value);
            return;
        }
    if (c->nmeta + 2 > 64) return;
    c->meta[c->nmeta++] = strdup(key);
    c->meta[c->nmeta++] = strdup(value);
}

const char *vkd_ckpt_meta(const vkd_ckpt *c, const char *key) {
    for (int i = 0; i < c->nloaded; i += 2)
        if (strcmp(c->loaded[i], key) == 0) return c->loaded[i + 1];
    return NULL;
}

int vkd_ckpt_save(vkd_ckpt *c, const char *path, char *err, size_t errlen) {
    vkd_st_tensor *ts = calloc(c->n ? c->n : 1, sizeof *ts);
    int64_t(*shapes)[VKD_MAX_DIMS] = calloc(c->n ? c->n : 1, sizeof *shapes);
    int rc = 0;
    for (int i = 0; i < c->n && !rc; i++) {
        vkd_tensor *t = c->e[i].t;
        for (int k = 0; k < vkd_tensor_ndim(t); k++) shapes[i][k] = vkd_tensor_dim(t, k);
        float *h = malloc(vkd_tensor_numel(t) * sizeof *h);
        ts[i] = (vkd_st_tensor){c->e[i].name, vkd_tensor_ndim(t), shapes[i], h};
        if (vkd_tensor_download(t, h)) {
            snprintf(err, errlen, "%s: downloading '%s' failed", path, c->e[i].name);
            rc = -1;
        }
    }
    if (!rc) rc = vkd_st_write(path, ts, c->n, "F32", (const char *const *)c->meta, c->nmeta / 2, err, errlen);
    for (int i = 0; i < c->n; i++) free((void *)ts[i].data);
    free(ts);
    free(shapes);
    return rc;
}

// Parses a step count from checkpoint metadata: a non-negative decimal integer.
static int meta_count(const char *v, int64_t *out) {
    if (!v || !*v || strlen(v) > 18) return -1;
    int64_t x = 0;
    for (const char *p = v; *p; p++) {
        if (*p < '0' || *p > '9') return -1;
        x = x * 10 + (*p - '0');
    }
    *out = x;
    return 0;
}

// Everything vkd_ckpt_load checks before it changes anything, host only.
static int ck_check(vkd_st *st, const char *path, int n, const char *const *names, const int *ndims,
                    const int64_t *shapes, const char *const *must_match, int nmatch, char *err, size_t errlen) {
    for (int i = 0; i < nmatch; i++) {
        const char *have = vkd_st_metadata(st, must_match[2 * i]);
        if (!have || !vkd_cfg_same_settings(have, must_match[2 * i + 1])) {
            snprintf(err, errlen, "%s: checkpoint was made with a different %s; refusing to resume from it", path,
                     must_match[2 * i]);
            return -1;
        }
    }
    for (int i = 0; i < n; i++) {
        const vkd_st_info *in = vkd_st_find(st, names[i]);
        int ok = in && in->ndim == ndims[i];
        for (int k = 0; ok && k < in->ndim; k++) ok = in->shape[k] == shapes[i * VKD_MAX_DIMS + k];
        if (!ok) {
            snprintf(err, errlen, "%s: %s tensor '%s' (a checkpoint of another model?)", path,
                     in ? "wrongly shaped" : "missing", names[i]);
            return -1;
        }
    }
    if (vkd_st_count(st) != n) {
        for (int i = 0; i < vkd_st_count(st); i++) {
            const char *nm = vkd_st_get(st, i)->name;
            int known = 0;
            for (int j = 0; j < n && !known; j++) known = strcmp(names[j], nm) == 0;
            if (!known) {
                snprintf(err, errlen, "%s: unexpected tensor '%s' (a checkpoint of another model?)", path, nm);
                return -1;
            }
        }
    }
    // A resume starts at "step": garbage there would restart the schedule at a wrong step.
    static const char *const counts[] = {"step", "skipped"};
    for (int k = 0; k < 2; k++) {
        const char *v = vkd_st_metadata(st, counts[k]);
        int64_t x;
        if (v && meta_count(v, &x)) {
            snprintf(err, errlen, "%s: metadata '%s' is '%.40s', expected a non-negative integer", path, counts[k], v);
            return -1;
        }
    }
    return 0;
}

int vkd_ckpt_check(const char *path, int n, const char *const *names, const int *ndims, const int64_t *shapes,
                   const char *const *must_match, int nmatch, char *err, size_t errlen) {
    vkd_st *st = vkd_st_open(path, err, errlen);
    if (!st) return -1;
    int rc = ck_check(st, path, n, names, ndims, shapes, must_match, nmatch, err, errlen);
    vkd_st_close(st);
    return rc;
}

int vkd_ckpt_load(vkd_ckpt *c, const char *path, const char *const *must_match, int nmatch, char *err, size_t errlen) {
    vkd_st *st = vkd_st_open(path, err, errlen);
    if (!st) return -1;
    const char **names = calloc(c->n ? c->n : 1, sizeof *names);
    int *ndims = calloc(c->n ? c->n : 1, sizeof *ndims);
    int64_t *shapes = calloc(c->n ? c->n : 1, VKD_MAX_DIMS * sizeof *shapes);
    for (int i = 0; i < c->n; i++) {
        names[i] = c->e[i].name;
        ndims[i] = vkd_tensor_ndim(c->e[i].t);
        for (int k = 0; k < ndims[i]; k++) shapes[i * VKD_MAX_DIMS + k] = vkd_tensor_dim(c->e[i].t, k);
    }
    int rc = ck_check(st, path, c->n, names, ndims, shapes, must_match, nmatch, err, errlen);
    free(names), free(ndims), free(shapes);
    for (int i = 0; i < c->n && !rc; i++) rc = vkd_model_check_derived(st, path, c->e[i].name, c->e[i].t, err, errlen);
    for (int i = 0; i < c->n && !rc; i++) {
        vkd_tensor *t = c->e[i].t;
        int64_t shape[VKD_MAX_DIMS];
        for (int k = 0; k < vkd_tensor_ndim(t); k++) shape[k] = vkd_tensor_dim(t, k);
        float *h = malloc(vkd_tensor_numel(t) * sizeof *h);
        rc = vkd_st_read_f32(st, c->e[i].name, vkd_tensor_ndim(t), shape, h, err, errlen);
        if (!rc && vkd_tensor_upload(t, h)) {
            snprintf(err, errlen, "%s: uploading '%s' failed", path, c->e[i].name);
            rc = -1;
        }
        free(h);
    }
    if (!rc) {
        for (int i = 0; i < c->nloaded; i++) free(c->loaded[i]);
        c->nloaded = 0;
        static const char *keys[] = {"step", "kind", "model_config", "train_config", "teacher_config", "skipped"};
        for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) {
            const char *v = vkd_st_metadata(st, keys[k]);
            if (v && c->nloaded + 2 <= 64) {
                c->loaded[c->nloaded++] = strdup(keys[k]);
                c->loaded[c->nloaded++] = strdup(v);
            }
        }
    }
    vkd_st_close(st);
    return rc;
}
