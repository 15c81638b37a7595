// The mean of a model's weights over several files: checkpoint averaging
// (stochastic weight averaging, a post-hoc EMA). A generator that wanders on a
// plateau between snapshots scores better as the mean of its snapshots than as
// any one of them (README, Results). Sums are kept in double, so a tensor that
// is the same in every file (a buffer, or a single file) comes out bit for bit.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/graph.h"
#include "nn/model.h"

// Adds file `path`'s tensors (named prefix + the model's name) into acc; checks
// every tensor's presence and shape before reading any.
static int accumulate_file(vkd_model *m, const char *path, const char *prefix, double **acc, float *buf, char *err,
                           size_t errlen) {
    vkd_st *st = vkd_st_open(path, err, errlen);
    if (!st) return -1;
    char full[512];
    int rc = 0;
    for (int i = 0; i < m->n && !rc; i++) {
        snprintf(full, sizeof full, "%s%s", prefix, m->e[i].name);
        if (!vkd_st_find(st, full)) {
            snprintf(err, errlen, "%s: missing tensor '%s' (model config %s%s%s)", path, full, m->arch,
                     prefix[0] ? ", tensors under " : "", prefix);
            rc = -1;
        }
    }
    // Without a prefix the file must be exactly the model's weights (as vkd_model_load);
    // with one, it is a checkpoint whose other parts (optimizer, fake network) are skipped.
    for (int i = 0; i < vkd_st_count(st) && !rc && !prefix[0]; i++) {
        const vkd_st_info *in = vkd_st_get(st, i);
        if (!vkd_model_find(m, in->name)) {
            snprintf(err, errlen, "%s: unexpected tensor '%s' (not part of this %s config)", path, in->name, m->arch);
            rc = -1;
        }
    }
    for (int i = 0; i < m->n && !rc; i++) {
        vkd_tensor *t = m->e[i].t;
        snprintf(full, sizeof full, "%s%s", prefix, m->e[i].name);
        rc = vkd_model_check_derived(st, path, full, t, err, errlen);
        int64_t shape[VKD_MAX_DIMS], numel = vkd_tensor_numel(t);
        for (int k = 0; k < vkd_tensor_ndim(t); k++) shape[k] = vkd_tensor_dim(t, k);
        if (!rc) rc = vkd_st_read_f32(st, full, vkd_tensor_ndim(t), shape, buf, err, errlen);
        for (int64_t j = 0; j < numel && !rc; j++) acc[i][j] += buf[j];
    }
    vkd_st_close(st);
    return rc;
}

int vkd_model_load_mean(vkd_model *m, const char *const *paths, int n, const char *prefix, char *err, size_t errlen) {
    if (n < 1) {
        snprintf(err, errlen, "model %s: no weight files to average", m->name);
        return -1;
    }
    if (!prefix) prefix = "";
    int64_t most = 0;
    double **acc = calloc(m->n, sizeof *acc);
    int rc = acc ? 0 : -1;
    for (int i = 0; i < m->n && !rc; i++) {
        int64_t numel = vkd_tensor_numel(m->e[i].t);
        most = numel > most ? numel : most;
        if (!(acc[i] = calloc(numel ? numel : 1, sizeof **acc))) rc = -1;
    }
    float *buf = rc ? NULL : malloc((most ? most : 1) * sizeof *buf);
    if (!buf) {
        snprintf(err, errlen, "model %s: out of host memory for the mean of %d files", m->name, n);
        rc = -1;
    }
    // Every file is read and checked before anything is uploaded: a bad one leaves the model as it was.
    for (int f = 0; f < n && !rc; f++) rc = accumulate_file(m, paths[f], prefix, acc, buf, err, errlen);
    for (int i = 0; i < m->n && !rc; i++) {
        int64_t numel = vkd_tensor_numel(m->e[i].t);
        for (int64_t j = 0; j < numel; j++) buf[j] = (float)(acc[i][j] / n);
        if (vkd_tensor_upload(m->e[i].t, buf)) {
            snprintf(err, errlen, "%s", vkd_ctx_error(m->ctx));
            rc = -1;
        }
    }
    for (int i = 0; acc && i < m->n; i++) free(acc[i]);
    free(acc), free(buf);
    return rc;
}
