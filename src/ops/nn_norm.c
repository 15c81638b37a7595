// Group norm (torch.nn.GroupNorm) over (N, C, *spatial), forward and backward.
// Shader: shaders/groupnorm.comp (MODE 0 forward, 1 dx, 2 dw/db).
#include <stdio.h>

#include "ops/ops.h"

typedef struct {
    VkDeviceAddress y, x, w, b, mean, rstd, dy;
    uint32_t N, C, S, groups, flags;
    float eps;
} gn_push;

// x is (N, C, S); mean, rstd are (N*groups)
static int gn_dispatch(vkd_graph *g, const char *name, uint32_t mode, vkd_tensor *y, vkd_tensor *x, vkd_tensor *w,
                       vkd_tensor *b, vkd_tensor *mean, vkd_tensor *rstd, vkd_tensor *dy, int groups, float eps) {
    uint64_t N = (uint64_t)x->shape[0], C = (uint64_t)x->shape[1], S = x->numel / (N * C);
    gn_push pc = {.N = (uint32_t)N,
                  .C = (uint32_t)C,
                  .S = (uint32_t)S,
                  .groups = (uint32_t)groups,
                  .flags = (w ? 1u : 0u) | (b ? 2u : 0u),
                  .eps = eps};
    vkd_arg args[7];
    int na = 0;
    // MODE 2 writes dw and db into the w and b slots.
    vkd_access wb = mode == 2 ? VKD_W : VKD_R;
    if (y) args[na++] = (vkd_arg){offsetof(gn_push, y), VKD_W, y};
    args[na++] = (vkd_arg){offsetof(gn_push, x), VKD_R, x};
    if (w) args[na++] = (vkd_arg){offsetof(gn_push, w), wb, w};
    if (b) args[na++] = (vkd_arg){offsetof(gn_push, b), wb, b};
    args[na++] = (vkd_arg){offsetof(gn_push, mean), mode == 0 ? VKD_W : VKD_R, mean};
    args[na++] = (vkd_arg){offsetof(gn_push, rstd), mode == 0 ? VKD_W : VKD_R, rstd};
    if (dy) args[na++] = (vkd_arg){offsetof(gn_push, dy), VKD_R, dy};
    // A workgroup reduces one row of C/groups*S elements (MODE 2: one channel's N*S).
    uint64_t len = mode == 2 ? N * S : (C / (uint64_t)groups) * S;
    uint32_t sgred = vkd_norm_subgroup_reduce(g->ctx);
    uint32_t wg = sgred ? g->ctx->f.subgroup_size : len <= 64 ? 64 : VKD_WG;
    uint32_t spec[3] = {wg, mode, sgred}, gx, gy;
    vkd_grid_1d(mode == 2 ? C : N * (uint64_t)groups, 1, &gx, &gy);
    return vkd_graph_dispatch(g, name, "groupnorm", spec, 3, gx, gy, 1, &pc, sizeof pc, args, na);
}

static void gn_backward(vkd_graph *g, vkd_tape_entry *e, vkd_tensor *dy) {
    vkd_tensor *x = e->in[0], *w = e->in[1], *b = e->in[2], *mean = e->saved[0], *rstd = e->saved[1];
    int groups = e->attr.i[0];
    float eps = e->attr.f[1];
    if (vkd_tensor_needs_grad(x)) {
        vkd_tensor *dx = vkd_graph_tensor_like(g, "groupnorm_bwd", x);
        if (dx && !gn_dispatch(g, "groupnorm_bwd", 1, dx, x, w, NULL, mean, rstd, dy, groups, eps))
            vkd_grad_accumulate(g, x, dx);
    }
    int need_w = w && vkd_tensor_needs_grad(w), need_b = b && vkd_tensor_needs_grad(b);
    if (need_w || need_b) {
        vkd_tensor *dw = need_w ? vkd_graph_tensor_like(g, "groupnorm_bwd_w", w) : NULL;
        vkd_tensor *db = need_b ? vkd_graph_tensor_like(g, "groupnorm_bwd_b", b) : NULL;
        if (!gn_dispatch(g, "groupnorm_bwd_wb", 2, NULL, x, dw, db, mean, rstd, dy, groups, eps)) {
            if (dw) vkd_grad_accumulate(g, w, dw);
            if (db) vkd_grad_accumulate(g, b, db);
        }
    }
}

vkd_tensor *vkd_groupnorm(vkd_graph *g, vkd_tensor *x, vkd_tensor *w, vkd_tensor *b, int groups, float eps) {
    if (!vkd_op_ok(g, 1, x)) return NULL;
    char sx[64];
    vkd_shape_str(x, sx, sizeof sx);
    if (x->ndim < 2) {
        vkd_graph_fail(g, "groupnorm of '%s' %s: x must be (N, C, *spatial)", x->name, sx);
        return NULL;
    }
    int64_t C = x->shape[1];
    if (groups <= 0 || C % groups != 0) {
        vkd_graph_fail(g, "groupnorm of '%s' %s: %d groups do not divide its %lld channels", x->name, sx, groups,
                       (long long)C);
        return NULL;
    }
    if ((w && w->numel != C) || (b && b->numel != C)) {
        vkd_graph_fail(g, "groupnorm of '%s' %s: weight '%s' and bias '%s' must have %lld elements (the channels)",
                       x->name, sx, w ? w->name : "-", b ? b->name : "-", (long long)C);
        return NULL;
    }
    if (x->numel > UINT32_MAX) {
        vkd_graph_fail(g, "groupnorm of '%s' %s: more elements than 32-bit indexing reaches", x->name, sx);
        return NULL;
    }
    int64_t rows = x->shape[0] * groups;
    vkd_tensor *y = vkd_graph_tensor_like(g, "groupnorm", x);
    vkd_tensor *mean = vkd_graph_tensor(g, "groupnorm_mean", 1, &rows);
    vkd_tensor *rstd = vkd_graph_tensor(g, "groupnorm_rstd", 1, &rows);
    if (!y || !mean || !rstd || gn_dispatch(g, "groupnorm", 0, y, x, w, b, mean, rstd, NULL, groups, eps))
        return NULL;
    vkd_tensor *in[3] = {x, w, b};
    vkd_tape_entry *e = vkd_tape_push(g, gn_backward, y, in, 3);
    if (e) {
        e->saved[0] = mean, e->saved[1] = rstd;
        e->attr.i[0] = groups;
        e->attr.f[1] = eps;
    }
    return y;
}
