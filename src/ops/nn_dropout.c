// Inverted dropout with a Philox mask that the backward regenerates instead of
// storing (shaders/dropout.comp; the same draw as vkd_rand_uniform).
#include <stdio.h>

#include "ops/ops.h"
#include "vkdistill/dist.h"

typedef struct {
    VkDeviceAddress y, x, step;
    uint32_t n, seed_lo, seed_hi, stream, flags, offset;
    float p, scale;
} dropout_push;

// y = x * mask / (1-p); the backward is the same map on dy.
static int dropout_dispatch(vkd_graph *g, const char *name, vkd_tensor *y, vkd_tensor *x, float p, uint64_t seed,
                            uint32_t stream, vkd_tensor *step_t, int64_t row0) {
    // Under data parallelism a rank's rows take their slice of the global batch's mask (ops/rng.c).
    uint64_t off = (uint64_t)row0 * (uint64_t)(x->numel / x->shape[0]);
    dropout_push pc = {.n = (uint32_t)x->numel,
                       .offset = (uint32_t)off,
                       .seed_lo = (uint32_t)seed,
                       .seed_hi = (uint32_t)(seed >> 32),
                       .stream = stream,
                       .flags = step_t ? 1u : 0u,
                       .p = p,
                       .scale = (float)(1.0 / (1.0 - (double)p))};
    vkd_arg args[3] = {{offsetof(dropout_push, y), VKD_W, y}, {offsetof(dropout_push, x), VKD_R, x}};
    int na = 2;
    if (step_t) args[na++] = (vkd_arg){offsetof(dropout_push, step), VKD_R, step_t};
    uint32_t spec[1] = {VKD_WG}, gx, gy;
    vkd_grid_1d((x->numel + (off & 3) + 3) / 4, VKD_WG, &gx, &gy);
    return vkd_graph_dispatch(g, name, "dropout", spec, 1, gx, gy, 1, &pc, sizeof pc, args, na);
}

static void dropout_backward(vkd_graph *g, vkd_tape_entry *e, vkd_tensor *dy) {
    vkd_tensor *x = e->in[0];
    uint64_t seed = (uint64_t)(uint32_t)e->attr.i[1] | ((uint64_t)(uint32_t)e->attr.i[2] << 32);
    vkd_tensor *dx = vkd_graph_tensor_like(g, "dropout_bwd", x);
    if (dx && !dropout_dispatch(g, "dropout_bwd", dx, dy, e->attr.f[0], seed, (uint32_t)e->attr.i[3], e->saved[0], e->attr.i[4]))
        vkd_grad_accumulate(g, x, dx);
}

vkd_tensor *vkd_dropout(vkd_graph *g, vkd_tensor *x, float p, uint64_t seed, uint32_t stream, vkd_tensor *step_t) {
    if (!vkd_op_ok(g, 1, x)) return NULL;
    if (!(p >= 0.0f && p < 1.0f)) {
        vkd_graph_fail(g, "dropout of '%s': probability %g must be in [0, 1)", x->name, (double)p);
        return NULL;
    }
    if (x->numel > UINT32_MAX - 3) {
        vkd_graph_fail(g, "dropout of '%s': more elements than 32-bit indexing reaches", x->name);
        return NULL;
    }
    if (p == 0.0f) return x;
    vkd_tensor *y = vkd_graph_tensor_like(g, "dropout", x);
    if (!y || dropout_dispatch(g, "dropout", y, x, p, seed, stream, step_t, vkd_rand_row_offset())) return NULL;
    vkd_tape_entry *e = vkd_tape_push(g, dropout_backward, y, &x, 1);
    if (e) {
        e->attr.f[0] = p;
        e->attr.i[1] = (int32_t)(uint32_t)seed, e->attr.i[2] = (int32_t)(uint32_t)(seed >> 32);
        e->attr.i[3] = (int32_t)stream;
        e->attr.i[4] = (int32_t)vkd_rand_row_offset();  // the backward may be recorded after the offset is reset
        e->saved[0] = step_t;
    }
    return y;
}
