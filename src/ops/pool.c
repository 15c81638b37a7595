// Max / average / global average pooling of NCHW maps. Shader: shaders/pool.comp.
// Forward only: these ops serve the Inception feature extractor, which runs
// under no-grad; they record no tape entry, and an input that requires a
// gradient is refused (rather than silently cutting the gradient).
#include <stdio.h>

#include "ops/ops.h"

typedef struct {
    VkDeviceAddress y, x;
    uint32_t n, H, W, Ho, Wo, k, stride, pad, flags;
} pool_push;

enum { POOL_MAX = 0, POOL_AVG = 1, POOL_GLOBAL_AVG = 2 };

// Shared checks of the forward-only NCHW ops (pool.c and resize.c).
int vkd_nchw_forward_only_check(vkd_graph *g, const char *op, const vkd_tensor *x);
int vkd_nchw_forward_only_check(vkd_graph *g, const char *op, const vkd_tensor *x) {
    char sx[64];
    vkd_shape_str(x, sx, sizeof sx);
    if (x->ndim != 4) {
        vkd_graph_fail(g, "%s of '%s' %s: x must be (N, C, H, W)", op, x->name, sx);
        return -1;
    }
    if (x->numel > UINT32_MAX || x->numel == 0) {
        vkd_graph_fail(g, "%s of '%s' %s: empty, or more elements than 32-bit indexing reaches", op, x->name, sx);
        return -1;
    }
    if (g->grad_enabled && !g->in_backward && vkd_tensor_needs_grad(x)) {
        vkd_graph_fail(g, "%s of '%s': forward-only op (no gradient); record it with grad disabled", op, x->name);
        return -1;
    }
    return 0;
}

static vkd_tensor *pool(vkd_graph *g, const char *name, uint32_t mode, vkd_tensor *x, int k, int stride, int pad,
                        int include_pad) {
    if (!vkd_op_ok(g, 1, x) || vkd_nchw_forward_only_check(g, name, x)) return NULL;
    int64_t H = x->shape[2], W = x->shape[3], Ho = 1, Wo = 1;
    if (mode != POOL_GLOBAL_AVG) {
        // PyTorch: pad <= k/2, ceil_mode False
        if (k < 1 || stride < 1 || pad < 0 || 2 * pad > k || H + 2 * pad < k || W + 2 * pad < k) {
            vkd_graph_fail(g, "%s of '%s': kernel %d, stride %d, padding %d do not fit a %lldx%lld map "
                              "(need k >= 1, stride >= 1, 0 <= pad <= k/2, k <= size + 2 pad)",
                           name, x->name, k, stride, pad, (long long)H, (long long)W);
            return NULL;
        }
        Ho = (H + 2 * pad - k) / stride + 1;
        Wo = (W + 2 * pad - k) / stride + 1;
    }
    vkd_tensor *y = mode == POOL_GLOBAL_AVG ? vkd_graph_tensor(g, name, 2, (int64_t[]){x->shape[0], x->shape[1]})
                                            : vkd_graph_tensor(g, name, 4, (int64_t[]){x->shape[0], x->shape[1], Ho, Wo});
    if (!y) return NULL;
    pool_push pc = {.n = (uint32_t)y->numel, .H = (uint32_t)H, .W = (uint32_t)W, .Ho = (uint32_t)Ho,
                    .Wo = (uint32_t)Wo, .k = (uint32_t)k, .stride = (uint32_t)stride, .pad = (uint32_t)pad,
                    .flags = include_pad ? 1u : 0u};
    vkd_arg args[2] = {{offsetof(pool_push, y), VKD_W, y}, {offsetof(pool_push, x), VKD_R, x}};
    uint32_t spec[2] = {VKD_WG, mode}, gx, gy;
    vkd_grid_1d(y->numel, VKD_WG, &gx, &gy);
    if (vkd_graph_dispatch(g, name, "pool", spec, 2, gx, gy, 1, &pc, sizeof pc, args, 2)) return NULL;
    return y;
}

vkd_tensor *vkd_maxpool2d(vkd_graph *g, vkd_tensor *x, int k, int stride, int pad) {
    return pool(g, "maxpool2d", POOL_MAX, x, k, stride, pad, 0);
}

vkd_tensor *vkd_avgpool2d(vkd_graph *g, vkd_tensor *x, int k, int stride, int pad, int count_include_pad) {
    return pool(g, "avgpool2d", POOL_AVG, x, k, stride, pad, count_include_pad);
}

vkd_tensor *vkd_global_avgpool(vkd_graph *g, vkd_tensor *x) { return pool(g, "global_avgpool", POOL_GLOBAL_AVG, x, 1, 1, 0, 0); }
