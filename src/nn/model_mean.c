// Loading a model's weights from one file, or their mean over several:
// checkpoint averaging (stochastic weight averaging, a post-hoc EMA). A
// generator that wanders on a plateau between snapshots scores better as the
// mean of its snapshots than as any one of them (README, Results). Means are
// summed in double, so a tensor that is the same in every file (a buffer) comes
// out bit for bit; one file is read straight into the model.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/graph.h"
#include "nn/model.h"

// Every model tensor is in the file (named prefix + its name) with the derived
// buffers the config implies; without a prefix nothing else is (a plain weight
// file), with one the rest of a checkpoint (optimizer, other networks) is skipped.
static int check_file(vkd_model *m, vkd_st *st, const char *path, const char *prefix, char *err, size_t errlen) {
    char full[512];
    for (int i = 0; i < m->n; i++) {
        snprintf(full, sizeof full, "%s%s", prefix, m->e[i].name);
        if (!vkd_st_find(st, full)) {
            snprintf(err, errlen, "%s: missing tensor '%s' (model config %s%s%s)", path, full, m->arch,
                     prefix[0] ? ", tensors under " : "", prefix);
            return -1;
        }
    }
    for (int i = 0; i < vkd_st_count(st) && !prefix[0]; i++) {
        const vkd_st_info *in = vkd_st_get(st, i);
        if (!vkd_model_find(m, in->name)) {
            snprintf(err, errlen, "%s: unexpected tensor '%s' (not part of this %s config)", path, in->name, m->arch);
            return -1;
        }
    }
    for (int i = 0; i < m->n; i++) {
        snprintf(full, sizeof full, "%s%s", prefix, m->e[i].name);
        if (vkd_model_check_derived(st, path, full, m->e[i].t, err, errlen)) return -1;
    }
    return 0;
}

// Model tensor i from the file into buf (fp32, its shape checked).
static int read_tensor(vkd_model *m, vkd_st *st, const char *prefix, int i, float *buf, char *err, size_t errlen) {
    char full[512];
    snprintf(full, sizeof full, "%s%s", prefix, m->e[i].name);
    vkd_tensor *t = m->e[i].t;
    int64_t shape[VKD_MAX_DIMS];
    for (int k = 0; k < vkd_tensor_ndim(t); k++) shape[k] = vkd_tensor_dim(t, k);
    return vkd_st_read_f32(st, full, vkd_tensor_ndim(t), shape, buf, err, errlen);
}

static int upload(vkd_model *m, int i, const float *buf, char *err, size_t errlen) {
    if (!vkd_tensor_upload(m->e[i].t, buf)) return 0;
    snprintf(err, errlen, "%s", vkd_ctx_error(m->ctx));
    return -1;
}

int vkd_model_load_mean(vkd_model *m, const char *const *paths, int n, const char *prefix, char *err, size_t errlen) {
    if (n < 1) {
        snprintf(err, errlen, "model %s: no weight files to average", m->name);
        return -1;
    }
    if (!prefix) prefix = "";
    int64_t most = 1;
    for (int i = 0; i < m->n; i++) most = vkd_tensor_numel(m->e[i].t) > most ? vkd_tensor_numel(m->e[i].t) : most;
    // Several files: every one is read and checked before anything is uploaded.
    double **acc = n > 1 ? calloc(m->n, sizeof *acc) : NULL;
    float *buf = malloc(most * sizeof *buf);
    int rc = buf && (n == 1 || acc) ? 0 : -1;
    for (int i = 0; i < m->n && !rc && n > 1; i++)
        if (!(acc[i] = calloc(vkd_tensor_numel(m->e[i].t) + 1, sizeof **acc))) rc = -1;
    if (rc) snprintf(err, errlen, "model %s: out of host memory for its weights", m->name);
    for (int f = 0; f < n && !rc; f++) {
        vkd_st *st = vkd_st_open(paths[f], err, errlen);
        rc = st ? check_file(m, st, paths[f], prefix, err, errlen) : -1;
        for (int i = 0; i < m->n && !rc; i++) {
            rc = read_tensor(m, st, prefix, i, buf, err, errlen);
            if (!rc && n == 1) rc = upload(m, i, buf, err, errlen);
            for (int64_t j = 0; j < vkd_tensor_numel(m->e[i].t) && !rc && n > 1; j++) acc[i][j] += buf[j];
        }
        if (st) vkd_st_close(st);
    }
    for (int i = 0; i < m->n && !rc && n > 1; i++) {
        for (int64_t j = 0; j < vkd_tensor_numel(m->e[i].t); j++) buf[j] = (float)(acc[i][j] / n);
        rc = upload(m, i, buf, err, errlen);
    }
    for (int i = 0; acc && i < m->n; i++) free(acc[i]);
    free(acc), free(buf);
    return rc;
}
