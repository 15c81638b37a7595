// Checkpoints as safetensors: tensors under prefixes ("net/", "ema/",
// "adam_m/", ...) and metadata. Saving downloads every tensor and writes the
// file atomically (a crash leaves the previous checkpoint intact).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vkdistill/checkpoint.h"
#include "vkdistill/io.h"

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

int vkd_ckpt_load(vkd_ckpt *c, const char *path, const char *const *must_match, int nmatch, char *err, size_t errlen) {
    vkd_st *st = vkd_st_open(path, err, errlen);
    if (!st) return -1;
    int rc = 0;
    for (int i = 0; i < nmatch && !rc; i++) {
        const char *have = vkd_st_metadata(st, must_match[2 * i]);
        if (!have || strcmp(have, must_match[2 * i + 1]) != 0) {
            snprintf(err, errlen, "%s: checkpoint was made with a different %s; refusing to resume from it", path,
                     must_match[2 * i]);
            rc = -1;
        }
    }
    for (int i = 0; i < c->n && !rc; i++) {
        const vkd_st_info *in = vkd_st_find(st, c->e[i].name);
        int ok = in && in->ndim == vkd_tensor_ndim(c->e[i].t);
        for (int k = 0; ok && k < in->ndim; k++) ok = in->shape[k] == vkd_tensor_dim(c->e[i].t, k);
        if (!ok) {
            snprintf(err, errlen, "%s: %s tensor '%s' (a checkpoint of another model?)", path,
                     in ? "wrongly shaped" : "missing", c->e[i].name);
            rc = -1;
        }
    }
    if (!rc && vkd_st_count(st) != c->n) {
        for (int i = 0; i < vkd_st_count(st); i++) {
            const char *nm = vkd_st_get(st, i)->name;
            int known = 0;
            for (int j = 0; j < c->n && !known; j++) known = strcmp(c->e[j].name, nm) == 0;
            if (!known) {
                snprintf(err, errlen, "%s: unexpected tensor '%s' (a checkpoint of another model?)", path, nm);
                rc = -1;
                break;
            }
        }
    }
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
