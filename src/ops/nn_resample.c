// 2x nearest upsampling and 2x2 average pooling of NCHW tensors (EDM's [1,1]
// resample filter), forward and backward. Shader: shaders/resample.comp; each
// op's backward is the other's forward, scaled.
#include <stdio.h>

#include "ops/ops.h"

typedef struct {
    VkDeviceAddress y, x;
    uint32_t n, H, W;
    float alpha;
    int32_t x_first;  // texel view (set at compile)
    uint32_t rpw;     // rows per workgroup (row launches)
    int32_t y_sfirst; // resample_sb: y's storage binding (set at compile)
    int32_t old_first;  // OLD: old's vec4 texel view (set at compile)
} rs_push;

enum { RS_UP = 0, RS_DOWN = 1 };

// Whether y's quads go through a storage binding (resample.comp's QPR; down reads x in vec4s).
// resample_sb is built without VKD_WIDE_STORES (no shaderInt64 needed); that switch still turns
// it off, as it does every other op's quad stores.
static int rs_quads(const vkd_graph *g, uint32_t mode, const vkd_tensor *y, vkd_tensor *x) {
    return vkd_texel_ok(g, 1, x) && y->shape[3] % 4 == 0 && vkd_sbuf_ok(g, 1, y) &&
           (mode == RS_UP || vkd_vec4_ok(1, x)) && !vkd_env_off("VKD_WIDE_STORES");
}

// Whether the quad walk can add old (y's shape) as it stores (resample.comp's OLD)
static int rs_old_ok(const vkd_graph *g, uint32_t mode, const vkd_tensor *y, vkd_tensor *x, vkd_tensor *old) {
    return old && rs_quads(g, mode, y, x) && vkd_texel_ok(g, 1, old) && vkd_vec4_ok(1, old) && !vkd_env_off("VKD_RS_OLD");
}

// y (N, C, H, W) from x, which is (N, C, H/2, W/2) for RS_UP and (N, C, 2H, 2W) for RS_DOWN;
// plus old where given (the caller: rs_old_ok)
static int rs_dispatch(vkd_graph *g, const char *name, uint32_t mode, vkd_tensor *y, vkd_tensor *x, float alpha,
                       vkd_tensor *old) {
    rs_push pc = {.n = (uint32_t)y->numel, .H = (uint32_t)y->shape[2], .W = (uint32_t)y->shape[3], .alpha = alpha};
    vkd_arg args[3] = {{offsetof(rs_push, y), VKD_W, y}, {offsetof(rs_push, x), VKD_R, x}};
    uint32_t texel = (uint32_t)vkd_texel_ok(g, 1, x);
    vkd_texel tx[3] = {{1, 0, offsetof(rs_push, x_first), 0}};
    if (rs_quads(g, mode, y, x)) {
        uint32_t gx, gy, qpr = pc.W / 4;
        // up with x's rows in whole quads: x read as quads, four quads of y an invocation (a
        // unet_fmnist step at batch 16: upsample2x's two 1.2-1.5 -> 0.8-0.9 ms)
        uint32_t x4 = mode == RS_UP && pc.W % 8 == 0 && vkd_vec4_ok(1, x) && !vkd_env_off("VKD_RS_X4");
        int nt = 1, na = 2;
        tx[0].vec4 = mode == RS_DOWN || x4;
        tx[nt++] = vkd_texel_store(0, 0, offsetof(rs_push, y_sfirst));
        if (old) {
            tx[nt++] = (vkd_texel){2, 1, offsetof(rs_push, old_first), 1};
            args[na++] = (vkd_arg){VKD_ARG_NO_ADDR, VKD_R, old};  // (read through its view only)
        }
        vkd_grid_1d((uint64_t)y->numel / (x4 ? 16 : 4), VKD_WG, &gx, &gy);
        uint32_t spec[7] = {VKD_WG, mode, texel, 0, qpr, x4, old != NULL};
        return vkd_graph_dispatch_texel(g, name, "resample_sb", spec, 7, gx, gy, 1, &pc, sizeof pc, args, na, tx, nt);
    }
    uint32_t wg, g3[3], rows = vkd_grid_rows(g, (uint64_t)y->numel / pc.W, pc.W, &wg, g3, &pc.rpw);  // output rows
    uint32_t spec[4] = {wg, mode, texel, rows};
    return vkd_graph_dispatch_texel(g, name, "resample", spec, 4, g3[0], g3[1], g3[2], &pc, sizeof pc, args, 2, tx,
                                    texel ? 1 : 0);
}

int vkd_sum2x2_dispatch(vkd_graph *g, const char *name, vkd_tensor *y, vkd_tensor *x) {
    return rs_dispatch(g, name, RS_DOWN, y, x, 1.0f, NULL);
}

// x's gradient from a resampling's dy: old + dx in the same pass where x has one and the quad
// walk can add it (the add autograd would run next: ~0.65-1.3 ms at batch 16 in unet_fmnist's
// down blocks, whose skip's average pool meets the decoder's gradient), else dx added after.
static void rs_backward(vkd_graph *g, const char *name, uint32_t mode, vkd_tensor *x, vkd_tensor *dy, float alpha) {
    vkd_tensor *dx = vkd_graph_tensor_like(g, name, x), *old = vkd_grad_pending(g, x);
    if (!rs_old_ok(g, mode, dx ? dx : x, dy, old)) old = NULL;
    if (!dx || rs_dispatch(g, name, mode, dx, dy, alpha, old)) return;
    if (old) vkd_grad_set(g, x, dx);
    else vkd_grad_accumulate(g, x, dx);
}

static void upsample_backward(vkd_graph *g, vkd_tape_entry *e, vkd_tensor *dy) {
    rs_backward(g, "upsample2x_bwd", RS_DOWN, e->in[0], dy, 1.0f);
}

static void avgpool_backward(vkd_graph *g, vkd_tape_entry *e, vkd_tensor *dy) {
    rs_backward(g, "avgpool2x_bwd", RS_UP, e->in[0], dy, 0.25f);
}

static int check_nchw(vkd_graph *g, const char *op, const vkd_tensor *x, int even) {
    char sx[64];
    vkd_shape_str(x, sx, sizeof sx);
    if (x->ndim != 4) {
        vkd_graph_fail(g, "%s of '%s' %s: x must be (N, C, H, W)", op, x->name, sx);
        return -1;
    }
    if (even && (x->shape[2] % 2 || x->shape[3] % 2)) {
        vkd_graph_fail(g, "%s of '%s' %s: H and W must be even", op, x->name, sx);
        return -1;
    }
    if (x->numel * (even ? 1 : 4) > UINT32_MAX) {
        vkd_graph_fail(g, "%s of '%s' %s: more elements than 32-bit indexing reaches", op, x->name, sx);
        return -1;
    }
    return 0;
}

vkd_tensor *vkd_upsample2x(vkd_graph *g, vkd_tensor *x) {
    if (!vkd_op_ok(g, 1, x) || check_nchw(g, "upsample2x", x, 0)) return NULL;
    int64_t shape[4] = {x->shape[0], x->shape[1], 2 * x->shape[2], 2 * x->shape[3]};
    vkd_tensor *y = vkd_graph_tensor(g, "upsample2x", 4, shape);
    if (!y || rs_dispatch(g, "upsample2x", RS_UP, y, x, 1.0f, NULL)) return NULL;
    vkd_tape_push(g, upsample_backward, y, &x, 1);
    return y;
}

vkd_tensor *vkd_avgpool2x(vkd_graph *g, vkd_tensor *x) {
    if (!vkd_op_ok(g, 1, x) || check_nchw(g, "avgpool2x", x, 1)) return NULL;
    int64_t shape[4] = {x->shape[0], x->shape[1], x->shape[2] / 2, x->shape[3] / 2};
    vkd_tensor *y = vkd_graph_tensor(g, "avgpool2x", 4, shape);
    if (!y || rs_dispatch(g, "avgpool2x", RS_DOWN, y, x, 0.25f, NULL)) return NULL;
    vkd_tape_push(g, avgpool_backward, y, &x, 1);
    return y;
}
