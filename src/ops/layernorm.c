// Layer norm over the last axis with optional affine, forward and backward.
// Shader: shaders/layernorm.comp (MODE 0 forward, 1 dx, 2 dw/db).
#include <stdio.h>

#include "ops/ops.h"

typedef struct {
    VkDeviceAddress y, x, w, b, mean, rstd, dy;
    uint32_t rows, cols, flags;
    float eps;
    int32_t x_first, t1_first, t2_first, dy_first;  // texel views (set at compile)
    int32_t y_sfirst;                                // layernorm_sb: y's storage binding (set at compile)
} ln_push;

// add (flags bit2): MODE 1 writes b + dx, b being x's gradient so far; MODE 2 adds dw
// and db into w and b (persistent gradients).
static int ln_dispatch(vkd_graph *g, const char *name, uint32_t mode, vkd_tensor *y, vkd_tensor *x, vkd_tensor *w,
                       vkd_tensor *b, vkd_tensor *mean, vkd_tensor *rstd, vkd_tensor *dy, float eps, int add) {
    uint64_t cols = (uint64_t)x->shape[x->ndim - 1], rows = x->numel / cols;
    ln_push pc = {.rows = (uint32_t)rows,
                  .cols = (uint32_t)cols,
                  .flags = (w ? 1u : 0u) | (b ? 2u : 0u) | (add ? 4u : 0u),
                  .eps = eps};
    vkd_arg args[7];
    int na = 0;
    // MODE 2 writes dw and db into the w and b slots.
    vkd_access wb = mode == 2 ? (add ? VKD_RW : VKD_W) : VKD_R;
    // On a CPU device every operand that is read goes through a texel view
    // (bindings as in the shader); a read through an address is a lane loop there.
    uint32_t texel = (uint32_t)vkd_texel_ok(g, 4, x, mode == 2 ? mean : w ? w : x, mode == 2 ? rstd : b ? b : x,
                                            dy ? dy : x);
    // rows in quads (MODE 0, 1): every operand read is a vec4 view. MODE 2 sums quads of
    // columns: x and dy vec4 views (mean and rstd stay scalar), w and b written as quads. At
    // the GMM MLP's 128 rows of 128 MODE 2 went from 74-95 to 23-36 us a call (VKD_PROFILE).
    uint8_t vec4 = texel && cols % 4 == 0 && vkd_vec4_ok(4, x, w, b, dy) && (mode != 2 || !vkd_env_off("VKD_COL_QUADS"));
    vkd_texel tx[5];
    int nt = 0;
#define LN_ARG(field, acc, t, bind, first, v4)                                                        \
    do {                                                                                              \
        if (texel && (bind) >= 0) tx[nt++] = (vkd_texel){(uint8_t)na, (uint8_t)(bind), offsetof(ln_push, first), v4}; \
        args[na++] = (vkd_arg){offsetof(ln_push, field), acc, t};                                     \
    } while (0)
    if (y) LN_ARG(y, VKD_W, y, -1, x_first, vec4);
    LN_ARG(x, VKD_R, x, 0, x_first, vec4);
    if (w) LN_ARG(w, wb, w, mode == 2 ? -1 : 1, t1_first, vec4);
    if (b) LN_ARG(b, wb, b, mode != 2 ? 2 : -1, t2_first, vec4);
    LN_ARG(mean, mode == 0 ? VKD_W : VKD_R, mean, mode == 2 ? 1 : -1, t1_first, 0);
    LN_ARG(rstd, mode == 0 ? VKD_W : VKD_R, rstd, mode == 2 ? 2 : -1, t2_first, 0);
    if (dy) LN_ARG(dy, VKD_R, dy, 3, dy_first, vec4);
#undef LN_ARG
    uint32_t sgred = mode != 2 && vkd_norm_subgroup_reduce(g->ctx);
    uint32_t wg = mode == 2 ? 64 : sgred ? g->ctx->f.subgroup_size : (cols <= 64 ? 64 : VKD_WG);
    // Rows a workgroup (MODE 0, 1) on a CPU device, where each workgroup is a task of its own:
    // at 128 x 128, 8 rows a workgroup took 155 instead of 170 us a call. At least 16
    // workgroups stay for the threads; a power of 2, so few pipelines.
    uint32_t rpw = 1;
    if (mode != 2 && g->ctx->f.type == VK_PHYSICAL_DEVICE_TYPE_CPU)
        while (rpw < 32 && rows / (2 * rpw) >= 16) rpw *= 2;
    // the rows' mean and rstd in lanes, stored (loaded) once a workgroup (layernorm.comp's ROWSTATS):
    // at the GMM MLP's 128 x 128 the input gradient went from 89 to 80 us a call, the forward from
    // 75 to 73 (VKD_PROFILE); VKD_ROWSTATS=0: once a row
    uint32_t rowstats = sgred && rpw > 1 && rpw <= wg && !vkd_env_off("VKD_ROWSTATS");
    uint32_t spec[8] = {wg, mode, sgred, texel, pc.flags, rpw, vec4, rowstats}, gx, gy;
    vkd_grid_1d(mode == 2 ? (vec4 ? cols / 4 : cols) : rows, mode == 2 ? wg : rpw, &gx, &gy);
    const char *shader = vkd_store_variant(g, vec4, "layernorm", "layernorm_wide");
    if (y) shader = vkd_sbuf_variant(g, shader, "layernorm_wide", "layernorm_sb", y, tx, &nt, offsetof(ln_push, y_sfirst));
    return vkd_graph_dispatch_texel(g, name, shader, spec, 8, gx, gy, 1, &pc, sizeof pc, args, na, tx, nt);
}

static void ln_backward(vkd_graph *g, vkd_tape_entry *e, vkd_tensor *dy) {
    vkd_tensor *x = e->in[0], *w = e->in[1], *b = e->in[2], *mean = e->saved[0], *rstd = e->saved[1];
    float eps = e->attr.f[0];
    if (vkd_tensor_needs_grad(x)) {
        // old + dx in the pass itself when x has a gradient already (a residual stream)
        vkd_tensor *dx = vkd_graph_tensor_like(g, "layernorm_bwd", x), *old = vkd_grad_pending(g, x);
        if (dx && !ln_dispatch(g, "layernorm_bwd", 1, dx, x, w, old, mean, rstd, dy, eps, old != NULL))
            vkd_grad_set(g, x, dx);
    }
    int need_w = w && vkd_tensor_needs_grad(w), need_b = b && vkd_tensor_needs_grad(b);
    vkd_tensor *pw = need_w ? vkd_grad_param_target(g, w) : NULL, *pb = need_b ? vkd_grad_param_target(g, b) : NULL;
    if ((need_w || need_b) && (pw || !need_w) && (pb || !need_b)) {
        // straight into the persistent gradients: pgrad + dw, the bits of the add it saves
        ln_dispatch(g, "layernorm_bwd_wb", 2, NULL, x, pw, pb, mean, rstd, dy, eps, 1);
    } else if (need_w || need_b) {
        vkd_tensor *dw = need_w ? vkd_graph_tensor_like(g, "layernorm_bwd_w", w) : NULL;
        vkd_tensor *db = need_b ? vkd_graph_tensor_like(g, "layernorm_bwd_b", b) : NULL;
        if (!ln_dispatch(g, "layernorm_bwd_wb", 2, NULL, x, dw, db, mean, rstd, dy, eps, 0)) {
            if (dw) vkd_grad_accumulate(g, w, dw);
            if (db) vkd_grad_accumulate(g, b, db);
        }
    }
}

vkd_tensor *vkd_layernorm(vkd_graph *g, vkd_tensor *x, vkd_tensor *w, vkd_tensor *b, float eps) {
    if (!vkd_op_ok(g, 1, x)) return NULL;
    int64_t cols = x->shape[x->ndim - 1];
    if ((w && w->numel != cols) || (b && b->numel != cols)) {
        vkd_graph_fail(g, "layernorm of '%s': weight/bias must have %lld elements (the last axis)", x->name,
                       (long long)cols);
        return NULL;
    }
    int64_t rows = x->numel / cols;
    vkd_tensor *y = vkd_graph_tensor_like(g, "layernorm", x);
    vkd_tensor *mean = vkd_graph_tensor(g, "layernorm_mean", 1, &rows);
    vkd_tensor *rstd = vkd_graph_tensor(g, "layernorm_rstd", 1, &rows);
    if (!y || !mean || !rstd || ln_dispatch(g, "layernorm", 0, y, x, w, b, mean, rstd, NULL, eps, 0)) return NULL;
    vkd_tensor *in[3] = {x, w, b};
    vkd_tape_entry *e = vkd_tape_push(g, ln_backward, y, in, 3);
    if (e) {
        e->saved[0] = mean, e->saved[1] = rstd;
        e->attr.f[0] = eps;
    }
    return y;
}
