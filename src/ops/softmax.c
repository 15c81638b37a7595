// Softmax over the last axis, forward and backward. Shader: shaders/softmax.comp.
#include "ops/ops.h"

typedef struct {
    VkDeviceAddress y, x, dy;
    uint32_t rows, cols;
    int32_t x_first, dy_first;  // texel views (set at compile)
    int32_t y_sfirst;           // softmax_sb: y's storage binding (set at compile)
} softmax_push;

int vkd_softmax_dispatch(vkd_graph *g, const char *name, int bwd, vkd_tensor *y, vkd_tensor *x, vkd_tensor *dy) {
    uint64_t cols = (uint64_t)x->shape[x->ndim - 1], rows = x->numel / cols;
    softmax_push pc = {.rows = (uint32_t)rows, .cols = (uint32_t)cols};
    vkd_arg args[3] = {{offsetof(softmax_push, y), VKD_W, y}, {offsetof(softmax_push, x), VKD_R, x}};
    int na = 2;
    if (dy) args[na++] = (vkd_arg){offsetof(softmax_push, dy), VKD_R, dy};
    // On a CPU device: one subgroup per row, operands through texel views (as the norms)
    uint32_t sgred = (uint32_t)vkd_norm_subgroup_reduce(g->ctx);
    uint32_t texel = (uint32_t)vkd_texel_ok(g, 2, x, dy ? dy : x);
    uint8_t vec4 = texel && cols % 4 == 0 && vkd_vec4_ok(3, y, x, dy);  // rows in quads
    vkd_texel tx[3] = {{1, 0, offsetof(softmax_push, x_first), vec4}, {2, 1, offsetof(softmax_push, dy_first), vec4}};
    int nt = texel ? (dy ? 2 : 1) : 0;
    // short rows: do not leave most of a workgroup idle
    uint32_t wg = sgred ? g->ctx->f.subgroup_size : cols <= 64 ? 64 : VKD_WG;
    // a lane's quads of the row held in registers (the shader's RQ) where the row is whole quads a
    // lane, at most 8 (VKD_SM_REGS=0: fetched again for each use)
    uint64_t rq = vec4 && sgred && cols % (4 * wg) == 0 ? cols / (4 * wg) : 0;
    if (rq > 8 || vkd_env_off("VKD_SM_REGS")) rq = 0;
    uint32_t spec[6] = {wg, (uint32_t)bwd, sgred, texel, vec4, (uint32_t)rq}, gx, gy;
    vkd_grid_1d(rows, 1, &gx, &gy);
    const char *shader = vkd_store_variant(g, vec4, "softmax", "softmax_wide");
    shader = vkd_sbuf_variant(g, shader, "softmax_wide", "softmax_sb", y, tx, &nt, offsetof(softmax_push, y_sfirst));
    return vkd_graph_dispatch_texel(g, name, shader, spec, 6, gx, gy, 1, &pc, sizeof pc, args, na, tx, nt);
}

// dx = p * (dy - sum(dy * p)); the saved output p is all the backward needs.
static void softmax_backward(vkd_graph *g, vkd_tape_entry *e, vkd_tensor *dy) {
    vkd_tensor *dx = vkd_graph_tensor_like(g, "softmax_bwd", e->in[0]);
    if (dx && !vkd_softmax_dispatch(g, "softmax_bwd", 1, dx, e->out, dy)) vkd_grad_accumulate(g, e->in[0], dx);
}

vkd_tensor *vkd_softmax(vkd_graph *g, vkd_tensor *x) {
    if (!vkd_op_ok(g, 1, x)) return NULL;
    vkd_tensor *y = vkd_graph_tensor_like(g, "softmax", x);
    if (!y || vkd_softmax_dispatch(g, "softmax", 0, y, x, NULL)) return NULL;
    vkd_tape_push(g, softmax_backward, y, &x, 1);
    return y;
}
