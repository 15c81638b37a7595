// Bilinear resize of NCHW maps (PyTorch half-pixel, TF1 legacy, align-corners).
// Shader: shaders/resize.comp. Forward only, like the pooling ops (pool.c):
// Inception's input resize runs under no-grad.
#include <stdio.h>

#include "ops/ops.h"

int vkd_nchw_forward_only_check(vkd_graph *g, const char *op, const vkd_tensor *x);

typedef struct {
    VkDeviceAddress y, x;
    uint32_t n, H, W, Ho, Wo;
    float sh, sw;
} resize_push;

static float axis_scale(int mode, int64_t in, int64_t out) {
    if (mode == VKD_RESIZE_ALIGN_CORNERS) return out > 1 ? (float)(in - 1) / (float)(out - 1) : 0.0f;
    return (float)in / (float)out;
}

vkd_tensor *vkd_resize_bilinear(vkd_graph *g, vkd_tensor *x, int out_h, int out_w, int mode) {
    if (!vkd_op_ok(g, 1, x) || vkd_nchw_forward_only_check(g, "resize_bilinear", x)) return NULL;
    if (mode < VKD_RESIZE_HALF_PIXEL || mode > VKD_RESIZE_ALIGN_CORNERS || out_h < 1 || out_w < 1) {
        vkd_graph_fail(g, "resize_bilinear of '%s': bad output size %dx%d or mode %d", x->name, out_h, out_w, mode);
        return NULL;
    }
    int64_t shape[4] = {x->shape[0], x->shape[1], out_h, out_w};
    if (shape[0] * shape[1] * out_h * out_w > UINT32_MAX) {
        vkd_graph_fail(g, "resize_bilinear of '%s': output has more elements than 32-bit indexing reaches", x->name);
        return NULL;
    }
    vkd_tensor *y = vkd_graph_tensor(g, "resize_bilinear", 4, shape);
    if (!y) return NULL;
    resize_push pc = {.n = (uint32_t)y->numel, .H = (uint32_t)x->shape[2], .W = (uint32_t)x->shape[3],
                      .Ho = (uint32_t)out_h, .Wo = (uint32_t)out_w,
                      .sh = axis_scale(mode, x->shape[2], out_h), .sw = axis_scale(mode, x->shape[3], out_w)};
    vkd_arg args[2] = {{offsetof(resize_push, y), VKD_W, y}, {offsetof(resize_push, x), VKD_R, x}};
    uint32_t spec[2] = {VKD_WG, (uint32_t)(mode == VKD_RESIZE_HALF_PIXEL ? 0 : 1)}, gx, gy;
    vkd_grid_1d(y->numel, VKD_WG, &gx, &gy);
    if (vkd_graph_dispatch(g, "resize_bilinear", "resize", spec, 2, gx, gy, 1, &pc, sizeof pc, args, 2)) return NULL;
    return y;
}
