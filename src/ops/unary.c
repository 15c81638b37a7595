// Element-wise functions: SiLU, GELU-tanh, ReLU, exp, log, sqrt, softplus, affine and fill, forward and backward.
// Shader: shaders/unary.comp (the op is a specialization constant).
#include "ops/ops.h"

enum { U_SILU = 0, U_GELU = 1, U_RELU = 2, U_SCALE = 3, U_FILL = 4, U_EXP = 5, U_LOG = 6, U_SQRT = 7, U_SOFTPLUS = 8, U_BWD = 16 };

typedef struct {
    VkDeviceAddress y, x, dy;
    uint32_t n;
    float alpha, beta;
    int32_t x_first, dy_first;  // texel views (set at compile)
    int32_t y_sfirst;           // unary_sb: y's storage binding (set at compile)
} unary_push;

static int unary_dispatch(vkd_graph *g, const char *name, uint32_t op, vkd_tensor *y, vkd_tensor *x, vkd_tensor *dy,
                          float alpha, float beta) {
    unary_push pc = {.n = (uint32_t)y->numel, .alpha = alpha, .beta = beta};
    vkd_arg args[3];
    int na = 0;
    // FILL reads nothing; otherwise x, and dy in the backward
    uint32_t texel = x && (uint32_t)vkd_texel_ok(g, dy ? 2 : 1, x, dy);
    uint8_t vec4 = texel && vkd_vec4_ok(3, y, x, dy);
    vkd_texel tx[3];
    int nt = 0;
    args[na++] = (vkd_arg){offsetof(unary_push, y), VKD_W, y};
    if (x) {
        if (texel) tx[nt++] = (vkd_texel){(uint8_t)na, 0, offsetof(unary_push, x_first), vec4};
        args[na++] = (vkd_arg){offsetof(unary_push, x), VKD_R, x};
    }
    if (dy) {
        if (texel) tx[nt++] = (vkd_texel){(uint8_t)na, 1, offsetof(unary_push, dy_first), vec4};
        args[na++] = (vkd_arg){offsetof(unary_push, dy), VKD_R, dy};
    }
    uint32_t gx, gy;
    vkd_grid_1d(vec4 ? y->numel / 4 : y->numel, VKD_WG, &gx, &gy);
    uint32_t spec[5] = {VKD_WG, op, texel, vec4, vec4 && vkd_grid_whole(y->numel / 4, gx, gy, VKD_WG)};
    const char *shader = vkd_store_variant(g, vec4, "unary", "unary_wide");
    shader = vkd_sbuf_variant(g, shader, "unary_wide", "unary_sb", y, tx, &nt, offsetof(unary_push, y_sfirst));
    return vkd_graph_dispatch_texel(g, name, shader, spec, 5, gx, gy, 1, &pc, sizeof pc, args, na, tx, nt);
}

static const char *bwd_names[] = {"silu_bwd", "gelu_bwd", "relu_bwd", "", "", "exp_bwd", "log_bwd", "sqrt_bwd", "softplus_bwd"};

static void act_backward(vkd_graph *g, vkd_tape_entry *e, vkd_tensor *dy) {
    int op = e->attr.i[0];
    vkd_tensor *dx = vkd_graph_tensor_like(g, bwd_names[op], e->in[0]);
    if (dx && !unary_dispatch(g, bwd_names[op], U_BWD + op, dx, e->in[0], dy, 0.0f, 0.0f))
        vkd_grad_accumulate(g, e->in[0], dx);
}

static vkd_tensor *activation(vkd_graph *g, const char *name, int op, vkd_tensor *x) {
    if (!vkd_op_ok(g, 1, x)) return NULL;
    vkd_tensor *y = vkd_graph_tensor_like(g, name, x);
    if (!y || unary_dispatch(g, name, op, y, x, NULL, 0.0f, 0.0f)) return NULL;
    vkd_tape_entry *e = vkd_tape_push(g, act_backward, y, &x, 1);
    if (e) e->attr.i[0] = op;
    return y;
}

vkd_tensor *vkd_silu(vkd_graph *g, vkd_tensor *x) { return activation(g, "silu", U_SILU, x); }
vkd_tensor *vkd_gelu(vkd_graph *g, vkd_tensor *x) { return activation(g, "gelu", U_GELU, x); }
vkd_tensor *vkd_relu(vkd_graph *g, vkd_tensor *x) { return activation(g, "relu", U_RELU, x); }
vkd_tensor *vkd_exp(vkd_graph *g, vkd_tensor *x) { return activation(g, "exp", U_EXP, x); }
vkd_tensor *vkd_log(vkd_graph *g, vkd_tensor *x) { return activation(g, "log", U_LOG, x); }
vkd_tensor *vkd_sqrt(vkd_graph *g, vkd_tensor *x) { return activation(g, "sqrt", U_SQRT, x); }
vkd_tensor *vkd_softplus(vkd_graph *g, vkd_tensor *x) { return activation(g, "softplus", U_SOFTPLUS, x); }

static void scale_backward(vkd_graph *g, vkd_tape_entry *e, vkd_tensor *dy) {
    vkd_grad_accumulate(g, e->in[0], vkd_scale(g, dy, e->attr.f[0]));
}

vkd_tensor *vkd_scale(vkd_graph *g, vkd_tensor *x, float alpha) { return vkd_affine(g, x, alpha, 0.0f); }

vkd_tensor *vkd_affine(vkd_graph *g, vkd_tensor *x, float alpha, float beta) {
    if (!vkd_op_ok(g, 1, x)) return NULL;
    vkd_tensor *y = vkd_graph_tensor_like(g, "scale", x);
    if (!y || unary_dispatch(g, "scale", U_SCALE, y, x, NULL, alpha, beta)) return NULL;
    vkd_tape_entry *e = vkd_tape_push(g, scale_backward, y, &x, 1);
    if (e) e->attr.f[0] = alpha;
    return y;
}

vkd_tensor *vkd_full(vkd_graph *g, int ndim, const int64_t *shape, float value) {
    if (vkd_graph_failed(g)) return NULL;
    vkd_tensor *y = vkd_graph_tensor(g, "fill", ndim, shape);
    if (!y || unary_dispatch(g, "fill", U_FILL, y, NULL, NULL, value, 0.0f)) return NULL;
    return y;
}
