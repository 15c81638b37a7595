// adaLN modulation of tokens, y = x * (one + scale) + shift, forward and
// backward. Shader: shaders/modulate.comp (MODE 0 element-wise, 1 dshift/dscale).
#include <stdio.h>

#include "ops/ops.h"

typedef struct {
    VkDeviceAddress y, x, shift, scale, dy;
    uint32_t N, T, D, flags;
    float one;
} mod_push;

// x is (N, T, D); shift, scale (N, D) or NULL. MODE 0 writes y; MODE 1 writes
// the shift/scale gradients into the shift/scale slots.
static int mod_dispatch(vkd_graph *g, const char *name, uint32_t mode, vkd_tensor *y, vkd_tensor *x,
                        vkd_tensor *shift, vkd_tensor *scale, vkd_tensor *dy, uint64_t N, uint64_t D, float one) {
    uint64_t T = x->numel / (N * D);
    mod_push pc = {.N = (uint32_t)N,
                   .T = (uint32_t)T,
                   .D = (uint32_t)D,
                   .flags = (shift ? 1u : 0u) | (scale ? 2u : 0u),
                   .one = one};
    vkd_access ss = mode == 1 ? VKD_W : VKD_R;
    vkd_arg args[5];
    int na = 0;
    if (y) args[na++] = (vkd_arg){offsetof(mod_push, y), VKD_W, y};
    args[na++] = (vkd_arg){offsetof(mod_push, x), VKD_R, x};
    if (shift) args[na++] = (vkd_arg){offsetof(mod_push, shift), ss, shift};
    if (scale) args[na++] = (vkd_arg){offsetof(mod_push, scale), ss, scale};
    if (dy) args[na++] = (vkd_arg){offsetof(mod_push, dy), VKD_R, dy};
    uint32_t spec[2] = {VKD_WG, mode}, gx, gy;
    vkd_grid_1d(mode == 1 ? N * D : (uint64_t)x->numel, VKD_WG, &gx, &gy);
    return vkd_graph_dispatch(g, name, "modulate", spec, 2, gx, gy, 1, &pc, sizeof pc, args, na);
}

static void mod_backward(vkd_graph *g, vkd_tape_entry *e, vkd_tensor *dy) {
    vkd_tensor *x = e->in[0], *shift = e->in[1], *scale = e->in[2];
    uint64_t N = (uint64_t)x->shape[0], D = (uint64_t)x->shape[x->ndim - 1];
    float one = e->attr.f[0];
    if (vkd_tensor_needs_grad(x)) {
        // dx = dy * (one + scale): the forward map without shift.
        vkd_tensor *dx = vkd_graph_tensor_like(g, "modulate_bwd_x", x);
        if (dx && !mod_dispatch(g, "modulate_bwd_x", 0, dx, dy, NULL, scale, NULL, N, D, one))
            vkd_grad_accumulate(g, x, dx);
    }
    int need_shift = shift && vkd_tensor_needs_grad(shift), need_scale = scale && vkd_tensor_needs_grad(scale);
    if (need_shift || need_scale) {
        vkd_tensor *dshift = need_shift ? vkd_graph_tensor_like(g, "modulate_bwd_shift", shift) : NULL;
        vkd_tensor *dscale = need_scale ? vkd_graph_tensor_like(g, "modulate_bwd_scale", scale) : NULL;
        if (!mod_dispatch(g, "modulate_bwd_ss", 1, NULL, x, dshift, dscale, dy, N, D, one)) {
            if (dshift) vkd_grad_accumulate(g, shift, dshift);
            if (dscale) vkd_grad_accumulate(g, scale, dscale);
        }
    }
}

static int check_nd(vkd_graph *g, const vkd_tensor *x, const vkd_tensor *p, const char *what) {
    if (!p) return 0;
    int64_t N = x->shape[0], D = x->shape[x->ndim - 1];
    if (p->numel == N * D && p->shape[0] == N && p->shape[p->ndim - 1] == D && p->ndim <= 3) return 0;
    char sx[64], sp[64];
    vkd_shape_str(x, sx, sizeof sx);
    vkd_shape_str(p, sp, sizeof sp);
    vkd_graph_fail(g, "modulate of '%s' %s: %s '%s' is %s; it must be (N, D) = (%lld, %lld)", x->name, sx, what,
                   p->name, sp, (long long)N, (long long)D);
    return -1;
}

vkd_tensor *vkd_modulate(vkd_graph *g, vkd_tensor *x, vkd_tensor *shift, vkd_tensor *scale, float one) {
    if (!vkd_op_ok(g, 1, x)) return NULL;
    char sx[64];
    vkd_shape_str(x, sx, sizeof sx);
    if (x->ndim < 2 || x->numel > UINT32_MAX) {
        vkd_graph_fail(g, "modulate of '%s' %s: x must be (N, T, D) with at most 2^32 elements", x->name, sx);
        return NULL;
    }
    if (!shift && !scale) {
        vkd_graph_fail(g, "modulate of '%s': shift and scale are both NULL", x->name);
        return NULL;
    }
    if (check_nd(g, x, shift, "shift") || check_nd(g, x, scale, "scale")) return NULL;
    uint64_t N = (uint64_t)x->shape[0], D = (uint64_t)x->shape[x->ndim - 1];
    vkd_tensor *y = vkd_graph_tensor_like(g, "modulate", x);
    if (!y || mod_dispatch(g, "modulate", 0, y, x, shift, scale, NULL, N, D, one)) return NULL;
    vkd_tensor *in[3] = {x, shift, scale};
    vkd_tape_entry *e = vkd_tape_push(g, mod_backward, y, in, 3);
    if (e) e->attr.f[0] = one;
    return y;
}
