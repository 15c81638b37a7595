// Gradient exchange through one host-visible staging region per optimizer
// (dist/grads.h). Each gradient gets a view of the region (a persistent tensor
// aliasing it at an offset), so packing and unpacking are plain copies inside
// the recorded graphs and MPI sees one contiguous array.
#include "dist/grads.h"

#include <stdlib.h>
#include <string.h>

#include "core/graph.h"
#include "ops/ops.h"
#include "vkdistill/dist.h"

struct vkd_grad_sync {
    int n;
    vkd_tensor **param, **grad, **view;
    vkd_tensor *staging;
    int64_t *off;     // [n + 1]: where each tensor's view starts in the staging region, in floats
    int *first;       // [ranks + 1]: rank r updates tensors first[r] .. first[r + 1] - 1 (sharded)
    uint8_t *skip;    // [n]: another rank's tensor (sharded), else NULL
};

// Views start on 64-byte boundaries: shaders may load vectors.
#define ALIGN 16

// Contiguous shares of the tensors, one a rank, balanced by size: tensor i goes to the rank
// whose equal part of the staging region holds the tensor's middle.
static int shard_plan(vkd_grad_sync *s) {
    int ranks = vkd_comm_size(), me = vkd_comm_rank();
    if (ranks < 2 || vkd_env_off("VKD_SHARD")) return 0;
    s->first = calloc(ranks + 1, sizeof *s->first);
    s->skip = calloc(s->n > 0 ? s->n : 1, 1);
    if (!s->first || !s->skip) return -1;
    double total = (double)s->off[s->n];
    int r = 0;
    for (int i = 0; i < s->n; i++) {
        double mid = (s->off[i] + s->off[i + 1]) * 0.5;
        while (r + 1 < ranks && mid >= total * (r + 1) / ranks) s->first[++r] = i;  // (a rank may get none)
        s->skip[i] = r != me;
    }
    while (r < ranks) s->first[++r] = s->n;
    return 0;
}

vkd_grad_sync *vkd_grad_sync_new(vkd_ctx *ctx, vkd_tensor **params, int n) {
    vkd_grad_sync *s = calloc(1, sizeof *s);
    s->param = calloc(n > 0 ? n : 1, sizeof *s->param);
    s->grad = calloc(n > 0 ? n : 1, sizeof *s->grad);
    s->view = calloc(n > 0 ? n : 1, sizeof *s->view);
    s->off = calloc(n + 1, sizeof *s->off);
    int64_t total = 0;
    for (int i = 0; i < n; i++) {
        s->param[i] = params[i];
        s->grad[i] = vkd_tensor_grad(params[i]);
        if (!s->grad[i]) {
            vkd_set_error(ctx, "gradient exchange: '%s' is not a trainable parameter", vkd_tensor_name(params[i]));
            goto fail;
        }
        total += (vkd_tensor_numel(s->grad[i]) + ALIGN - 1) / ALIGN * ALIGN;
    }
    if (!(s->staging = vkd_tensor_new(ctx, "grad_staging", 1, &total, VKD_HOST))) goto fail;
    int64_t off = 0;
    for (int i = 0; i < n; i++) {
        vkd_tensor *gr = s->grad[i], *v = vkd_tensor_view(s->staging, off, gr->ndim, gr->shape);
        if (!v) goto fail;
        snprintf(v->name, sizeof v->name, "%.50s.staged", gr->name);
        s->view[i] = v;
        s->n = i + 1;
        s->off[i] = off;
        off += (gr->numel + ALIGN - 1) / ALIGN * ALIGN;
    }
    s->n = n;
    s->off[n] = off;
    if (shard_plan(s)) goto fail;
    return s;
fail:
    vkd_grad_sync_free(s);
    return NULL;
}

void vkd_grad_sync_free(vkd_grad_sync *s) {
    if (!s) return;
    for (int i = 0; i < s->n; i++) vkd_tensor_free(s->view[i]);
    vkd_tensor_free(s->staging);
    free(s->param), free(s->grad), free(s->view), free(s->off), free(s->first), free(s->skip);
    free(s);
}

int vkd_grad_sync_record_out(vkd_graph *g, vkd_grad_sync *s) {
    for (int i = 0; i < s->n; i++)
        if (vkd_copy(g, s->view[i], s->grad[i])) return -1;
    return 0;
}

int vkd_grad_sync_record_in(vkd_graph *g, vkd_grad_sync *s) {
    for (int i = 0; i < s->n; i++)
        if (vkd_copy(g, s->grad[i], s->view[i])) return -1;
    return 0;
}

int64_t vkd_grad_sync_numel(const vkd_grad_sync *s) { return vkd_tensor_numel(s->staging); }

int vkd_grad_sync_sharded(const vkd_grad_sync *s) { return s && s->skip; }
const uint8_t *vkd_grad_sync_skip(const vkd_grad_sync *s) { return s ? s->skip : NULL; }

// The staging region is free once the optimizer has read the gradients back: this rank's
// updated parameters take their places there.
int vkd_grad_sync_record_params_out(vkd_graph *g, vkd_grad_sync *s) {
    for (int i = 0; s->skip && i < s->n; i++)
        if (!s->skip[i] && vkd_copy(g, s->view[i], s->param[i])) return -1;
    return 0;
}

int vkd_grad_sync_record_params_in(vkd_graph *g, vkd_grad_sync *s) {
    for (int i = 0; s->skip && i < s->n; i++)
        if (s->skip[i] && vkd_copy(g, s->param[i], s->view[i])) return -1;
    return 0;
}

// Each rank's share of the staging region, from that rank to every other.
void vkd_grad_sync_allgather(vkd_grad_sync *s) {
    if (!s->skip) return;
    float *h = vkd_tensor_map(s->staging);
    for (int r = 0; r < vkd_comm_size(); r++) {
        int64_t a = s->off[s->first[r]], b = s->off[s->first[r + 1]];
        if (b > a) vkd_comm_bcast(h + a, (size_t)(b - a) * sizeof *h, r);
    }
}

int vkd_grad_sync_gather_adam(vkd_grad_sync *s, vkd_adam *opt) {
    for (int r = 0; s && s->skip && r < vkd_comm_size(); r++)
        for (int i = s->first[r]; i < s->first[r + 1]; i++) {
            vkd_tensor *m, *v;
            vkd_adam_state(opt, i, &m, &v);
            if (vkd_comm_bcast_tensor_from(m, r) || vkd_comm_bcast_tensor_from(v, r)) return -1;
        }
    return 0;
}

void vkd_grad_sync_allreduce(vkd_grad_sync *s) {
    float *h = vkd_tensor_map(s->staging);
    int64_t n = vkd_tensor_numel(s->staging);
    vkd_comm_allreduce_sum_f32(h, n);
    // Each loss is a mean over the rank's rows: the mean of the ranks' means is the global batch's.
    float inv = 1.0f / (float)vkd_comm_size();
    for (int64_t i = 0; i < n; i++) h[i] *= inv;
}

int vkd_comm_bcast_tensor(vkd_tensor *t) { return vkd_comm_bcast_tensor_from(t, 0); }

int vkd_comm_bcast_tensor_from(vkd_tensor *t, int root) {
    if (vkd_comm_size() == 1) return 0;
    int64_t n = vkd_tensor_numel(t);
    float *h = malloc(n * sizeof *h);
    if (!h || vkd_tensor_download(t, h)) {
        free(h);
        return -1;
    }
    vkd_comm_bcast(h, n * sizeof *h, root);
    int rc = vkd_comm_rank() != root ? vkd_tensor_upload(t, h) : 0;
    free(h);
    return rc;
}

int vkd_comm_bcast_model(vkd_model *m) {
    for (int i = 0; m && i < vkd_model_num_tensors(m); i++)
        if (vkd_comm_bcast_tensor(vkd_model_tensor(m, i))) return -1;
    return 0;
}

int vkd_comm_bcast_adam(vkd_adam *o) {
    for (int i = 0; o && i < vkd_adam_num(o); i++) {
        vkd_tensor *m, *v;
        vkd_adam_state(o, i, &m, &v);
        if (vkd_comm_bcast_tensor(m) || vkd_comm_bcast_tensor(v)) return -1;
    }
    return 0;
}
