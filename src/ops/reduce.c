// Sum and mean (over the last axis or everything) and the mean-squared error,
// with their backward. Shader: shaders/reduce.comp; the backward broadcasts
// with shaders/eltwise.comp.
#include <stdlib.h>

#include "ops/ops.h"

typedef struct {
    VkDeviceAddress y, x, x2;
    uint32_t rows, cols, inner, nbound;
    float alpha;
    int32_t x_first, x2_first;  // texel views (set at compile)
    VkDeviceAddress table;      // MULTI: the rows' table (src/ops/multi.c)
    VkDeviceAddress z;          // NSUM: the column sums
    uint32_t zflags;            // NSUM: bit0 write the rows, bit1 add into z
} reduce_push;

// square: f(v) = v^2 (x2 unused).
// Rows walked in quads (reduce.comp's VEC4 in MODE_ROWS) where x can be read as a vec4 view and
// every row starts on a quad. The GMM iteration's two gradient norms (sum_squares of 0.15 M
// parameters each) went from 164-194 to 54-65 us (VKD_PROFILE); VKD_ROW_QUADS=0 walks elements.
// Only whole quads are fetched, so x's size need not be one (n % 4 elements go through the buffer).
static uint32_t row_quads(int ok, vkd_tensor *x) {
    return ok && x->view_off % 16 == 0 && !vkd_env_off("VKD_VEC4") && !vkd_env_off("VKD_ROW_QUADS");
}

static int reduce_rows(vkd_graph *g, const char *name, vkd_tensor *y, vkd_tensor *x, vkd_tensor *x2, int square,
                       uint64_t rows, uint64_t cols, float alpha) {
    if (cols <= 64 && rows > 1 && !x2 && !square) {
        // Short rows: one invocation per row beats a mostly idle workgroup per row.
        return vkd_reduce_cols_dispatch(g, name, y, x, rows, cols, 1, alpha);
    }
    reduce_push pc = {.rows = (uint32_t)rows, .cols = (uint32_t)cols, .inner = 1,
                      .nbound = (uint32_t)x->numel, .alpha = alpha};
    vkd_arg args[3] = {{offsetof(reduce_push, y), VKD_W, y}, {offsetof(reduce_push, x), VKD_R, x}};
    int na = 2;
    if (x2) args[na++] = (vkd_arg){offsetof(reduce_push, x2), VKD_R, x2};
    uint32_t texel = (uint32_t)vkd_texel_ok(g, x2 ? 2 : 1, x, x2);
    uint32_t vec4 = row_quads(texel && !x2 && (rows == 1 || cols % 4 == 0), x);
    vkd_texel tx[2] = {{1, 0, offsetof(reduce_push, x_first), (uint8_t)(vec4 ? 2 : 0)},
                       {2, 1, offsetof(reduce_push, x2_first), 0}};
    uint32_t sgred = (uint32_t)vkd_norm_subgroup_reduce(g->ctx);
    uint32_t spec[8] = {sgred ? g->ctx->f.subgroup_size : VKD_WG, 0, square ? 2u : x2 ? 1u : 0u, sgred, texel, 0, 0, vec4},
             gx, gy;
    vkd_grid_1d(rows, 1, &gx, &gy);
    return vkd_graph_dispatch_texel(g, name, "reduce", spec, 8, gx, gy, 1, &pc, sizeof pc, args, na, tx,
                                    texel ? na - 1 : 0);
}

int vkd_reduce_rows_dispatch(vkd_graph *g, const char *name, vkd_tensor *y, vkd_tensor *x, vkd_tensor *x2,
                             uint64_t rows, uint64_t cols, float alpha) {
    return reduce_rows(g, name, y, x, x2, 0, rows, cols, alpha);
}

static int reduce_cols(vkd_graph *g, const char *name, vkd_tensor *y, vkd_tensor *x, uint64_t outer, uint64_t R,
                       uint64_t inner, float alpha, int accum) {
    reduce_push pc = {.rows = (uint32_t)outer, .cols = (uint32_t)R, .inner = (uint32_t)inner,
                      .nbound = (uint32_t)x->numel, .alpha = alpha};
    vkd_arg args[2] = {{offsetof(reduce_push, y), accum ? VKD_RW : VKD_W, y}, {offsetof(reduce_push, x), VKD_R, x}};
    uint32_t texel = (uint32_t)vkd_texel_ok(g, 1, x);
    // quads of outputs (the shader's VEC4): x's rows and y (and y's old values) whole vec4s. The
    // GMM MLP's bias gradients (128 rows of 128) went from 28 to 11 us a call (VKD_PROFILE).
    uint8_t vec4 = texel && inner % 4 == 0 && vkd_vec4_ok(2, x, y) && (!accum || vkd_texel_ok(g, 1, y)) &&
                   !vkd_env_off("VKD_COL_QUADS");  // 0: one column an invocation
    vkd_texel tx[2] = {{1, 0, offsetof(reduce_push, x_first), vec4}, {0, 1, offsetof(reduce_push, x2_first), 1}};
    uint32_t spec[8] = {VKD_WG, 1, 0, 0, texel, 0, (uint32_t)accum, vec4}, gx, gy;
    vkd_grid_1d(vec4 ? outer * inner / 4 : outer * inner, VKD_WG, &gx, &gy);
    const char *shader = vkd_store_variant(g, vec4, "reduce", "reduce_wide");
    return vkd_graph_dispatch_texel(g, name, shader, spec, 8, gx, gy, 1, &pc, sizeof pc, args, 2, tx,
                                    texel ? (vec4 && accum ? 2 : 1) : 0);
}

int vkd_reduce_cols_dispatch(vkd_graph *g, const char *name, vkd_tensor *y, vkd_tensor *x, uint64_t outer, uint64_t R,
                             uint64_t inner, float alpha) {
    return reduce_cols(g, name, y, x, outer, R, inner, alpha, 0);
}

int vkd_reduce_cols_product_dispatch(vkd_graph *g, const char *name, vkd_tensor *y, vkd_tensor *x, vkd_tensor *x2,
                                     uint64_t outer, uint64_t R, uint64_t inner) {
    reduce_push pc = {.rows = (uint32_t)outer, .cols = (uint32_t)R, .inner = (uint32_t)inner,
                      .nbound = (uint32_t)x->numel, .alpha = 1.0f};
    vkd_arg args[3] = {{offsetof(reduce_push, y), VKD_W, y}, {offsetof(reduce_push, x), VKD_R, x},
                       {offsetof(reduce_push, x2), VKD_R, x2}};
    uint32_t texel = (uint32_t)vkd_texel_ok(g, 2, x, x2);
    uint8_t vec4 = texel && inner % 4 == 0 && vkd_vec4_ok(3, x, x2, y) && !vkd_env_off("VKD_COL_QUADS");
    vkd_texel tx[2] = {{1, 0, offsetof(reduce_push, x_first), vec4}, {2, 1, offsetof(reduce_push, x2_first), vec4}};
    uint32_t spec[8] = {VKD_WG, 1, 3, 0, texel, 0, 0, vec4}, gx, gy;
    vkd_grid_1d(vec4 ? outer * inner / 4 : outer * inner, VKD_WG, &gx, &gy);
    const char *shader = vkd_store_variant(g, vec4, "reduce", "reduce_wide");
    return vkd_graph_dispatch_texel(g, name, shader, spec, 8, gx, gy, 1, &pc, sizeof pc, args, 3, tx, texel ? 2 : 0);
}

// On CPU devices (one subgroup a workgroup): the rows and their column sums in one dispatch
// (reduce.comp's NSUM), one workgroup a column. In a unet_fmnist step (batch 16) the column
// sums were 83 of its dispatches, ~86 us each (VKD_PROFILE). VKD_ROW_COL_SUMS=0 turns it off.
static int row_col_sums_ok(const vkd_graph *g) {
    return g->ctx->f.type == VK_PHYSICAL_DEVICE_TYPE_CPU && vkd_norm_subgroup_reduce(g->ctx) &&
           (g->ctx->f.subgroup_ops & VK_SUBGROUP_FEATURE_SHUFFLE_BIT) && !vkd_env_off("VKD_ROW_COL_SUMS");
}

// z (bc) = the sums over o of x's rows (outer * bc rows of `inner`), as reduce_rows then reduce_cols
// would sum them; rows (outer * bc, may be NULL) gets the row sums; accum: z += the sums.
static int row_col_sums(vkd_graph *g, const char *name, vkd_tensor *z, vkd_tensor *rows, vkd_tensor *x,
                        uint64_t outer, uint64_t bc, uint64_t inner, int accum) {
    reduce_push pc = {.rows = (uint32_t)(outer * bc), .cols = (uint32_t)inner, .inner = (uint32_t)bc,
                      .nbound = (uint32_t)x->numel, .alpha = 1.0f, .zflags = (rows ? 1u : 0u) | (accum ? 2u : 0u)};
    vkd_arg args[3] = {{offsetof(reduce_push, x), VKD_R, x}, {offsetof(reduce_push, z), accum ? VKD_RW : VKD_W, z}};
    int na = 2;
    if (rows) args[na++] = (vkd_arg){offsetof(reduce_push, y), VKD_W, rows};
    uint32_t texel = (uint32_t)vkd_texel_ok(g, 1, x);
    // the long rows' walk as reduce_rows takes it (its short rows are summed in order either way)
    uint32_t vec4 = inner > 64 && row_quads(texel && (outer * bc == 1 || inner % 4 == 0), x);
    vkd_texel tx[1] = {{0, 0, offsetof(reduce_push, x_first), (uint8_t)(vec4 ? 2 : 0)}};
    uint32_t spec[9] = {g->ctx->f.subgroup_size, 0, 0, 1, texel, 0, 0, vec4, 1}, gx, gy;
    vkd_grid_1d(bc, 1, &gx, &gy);
    return vkd_graph_dispatch_texel(g, name, "reduce", spec, 9, gx, gy, 1, &pc, sizeof pc, args, na, tx, texel ? 1 : 0);
}

int vkd_grad_from_row_sums(vkd_graph *g, const char *name, vkd_tensor *t, vkd_tensor *x, uint64_t inner,
                           uint64_t outer, uint64_t bc, vkd_tensor *rows) {
    if (!row_col_sums_ok(g)) {
        if (!rows) rows = vkd_graph_tensor(g, name, 1, (int64_t[]){(int64_t)(outer * bc)});
        if (!rows || reduce_rows(g, name, rows, x, NULL, 0, outer * bc, inner, 1.0f)) return -1;
        return vkd_grad_from_cols(g, name, t, rows, outer);
    }
    vkd_tensor *pg = vkd_grad_param_target(g, t);
    if (pg) return row_col_sums(g, name, pg, rows, x, outer, bc, inner, 1);
    vkd_tensor *d = vkd_graph_tensor_like(g, name, t);
    if (!d || row_col_sums(g, name, d, rows, x, outer, bc, inner, 0)) return -1;
    vkd_grad_accumulate(g, t, d);
    return 0;
}

int vkd_grad_from_cols(vkd_graph *g, const char *name, vkd_tensor *t, vkd_tensor *x, uint64_t R) {
    uint64_t inner = (uint64_t)t->numel;
    vkd_tensor *pg = vkd_grad_param_target(g, t);
    if (pg) return reduce_cols(g, name, pg, x, 1, R, inner, 1.0f, 1);
    vkd_tensor *d = vkd_graph_tensor_like(g, name, t);
    if (!d || reduce_cols(g, name, d, x, 1, R, inner, 1.0f, 0)) return -1;
    vkd_grad_accumulate(g, t, d);
    return 0;
}

// A sum of n elements in one value: one workgroup per chunk, then one over the
// partial sums, so long rows still use the whole device (and stay deterministic).
// y: the one-element output, or NULL for a new graph tensor.
static vkd_tensor *reduce_all_f(vkd_graph *g, const char *name, vkd_tensor *x, vkd_tensor *x2, int square, float alpha,
                                vkd_tensor *y) {
    int64_t one = 1;
    if (!y) y = vkd_graph_tensor(g, name, 1, &one);
    if (!y) return NULL;
    uint64_t n = x->numel, chunk = 16384;
    if (n <= 2 * chunk) return reduce_rows(g, name, y, x, x2, square, 1, n, alpha) ? NULL : y;
    int64_t parts = (int64_t)((n + chunk - 1) / chunk);
    vkd_tensor *p = vkd_graph_tensor(g, name, 1, &parts);
    if (!p || reduce_rows(g, name, p, x, x2, square, parts, chunk, 1.0f)) return NULL;
    return vkd_reduce_rows_dispatch(g, name, y, p, NULL, 1, parts, alpha) ? NULL : y;
}

static vkd_tensor *reduce_all(vkd_graph *g, const char *name, vkd_tensor *x, vkd_tensor *x2, float alpha) {
    return reduce_all_f(g, name, x, x2, 0, alpha, NULL);
}

// The same sums and order as vkd_sum(vkd_mul(x, x)), so the same bits, with
// one pass over x and no squared copy; no gradient (the optimizers' norms).
vkd_tensor *vkd_sum_squares(vkd_graph *g, vkd_tensor *x) {
    if (!vkd_op_ok(g, 1, x)) return NULL;
    return reduce_all_f(g, "sum_squares", x, NULL, 1, 1.0f, NULL);
}

// Rows of one multi-tensor group: row r is a whole tensor inside the span x, summed by
// the walk of a row of its own (square: f(v) = v^2) into y[out].
static int reduce_rows_multi(vkd_graph *g, const char *name, vkd_tensor *y, const vkd_multi *m) {
    reduce_push pc = {.rows = m->nchunks, .inner = 1, .alpha = 1.0f};
    vkd_tensor *x = m->span[0];
    vkd_arg args[3] = {{offsetof(reduce_push, y), VKD_W, y},
                       {offsetof(reduce_push, x), VKD_R, x},
                       {offsetof(reduce_push, table), VKD_R, m->table}};
    uint32_t texel = (uint32_t)vkd_texel_ok(g, 1, x);
    uint32_t vec4 = row_quads(texel, x);  // the tensors' offsets in the span are quads (multi.c)
    vkd_texel tx = {1, 0, offsetof(reduce_push, x_first), (uint8_t)(vec4 ? 2 : 0)};
    uint32_t sgred = (uint32_t)vkd_norm_subgroup_reduce(g->ctx);
    uint32_t spec[8] = {sgred ? g->ctx->f.subgroup_size : VKD_WG, 0, 2u, sgred, texel, 1u, 0, vec4}, gx, gy;
    vkd_grid_1d(m->nchunks, 1, &gx, &gy);
    return vkd_graph_dispatch_texel(g, name, "reduce", spec, 8, gx, gy, 1, &pc, sizeof pc, args, 3, &tx,
                                    texel ? 1 : 0);
}

int vkd_sum_squares_each(vkd_graph *g, vkd_tensor **xs, vkd_tensor **slots, int n, vkd_tensor *y) {
    // the tensors that reduce_all_f sums in one row go together; longer ones take its partial sums
    uint8_t *own = calloc((size_t)(n > 0 ? n : 1), 1);
    if (!own) return -1;
    for (int i = 0; i < n; i++) own[i] = xs[i]->numel > 2 * 16384;
    vkd_multi m[VKD_MULTI_GROUPS];
    vkd_tensor **const roles[1] = {xs};
    int ng = vkd_multi_plan(g, 1, roles, n, own, 0, m);
    for (int i = 0; i < n && ng >= 0; i++)
        if ((ng == 0 || own[i]) && vkd_sum_squares_to(g, xs[i], slots[i])) ng = -1;
    for (int k = 0; k < ng; k++)
        if (reduce_rows_multi(g, "sum_squares", y, &m[k])) ng = -1;
    free(own);
    return ng < 0 ? -1 : 0;
}

int vkd_sum_squares_to(vkd_graph *g, vkd_tensor *x, vkd_tensor *y) {
    if (!vkd_op_ok(g, 2, x, y)) return -1;
    if (y->numel != 1) {
        vkd_graph_fail(g, "sum_squares of '%s': the output '%s' must hold one element", x->name, y->name);
        return -1;
    }
    return reduce_all_f(g, "sum_squares", x, NULL, 1, 1.0f, y) ? 0 : -1;
}

static void reduce_backward(vkd_graph *g, vkd_tape_entry *e, vkd_tensor *dy) {
    vkd_tensor *x = e->in[0];
    uint64_t cols = e->attr.i[0] ? (uint64_t)x->shape[x->ndim - 1] : (uint64_t)x->numel;
    vkd_tensor *dx = vkd_graph_tensor_like(g, "reduce_bwd", x);
    // dx[i] = scale * dy[i / cols]
    if (dx && !vkd_eltwise_dispatch(g, "reduce_bwd", VKD_EW_BCAST, dx, NULL, dy, NULL, cols, x->numel / cols,
                                    e->attr.f[1]))
        vkd_grad_accumulate(g, x, dx);
}

static vkd_tensor *reduce(vkd_graph *g, const char *name, vkd_tensor *x, int last_axis_only, int mean) {
    if (!vkd_op_ok(g, 1, x)) return NULL;
    vkd_tensor *y;
    uint64_t cols = last_axis_only ? (uint64_t)x->shape[x->ndim - 1] : (uint64_t)x->numel;
    float alpha = mean ? 1.0f / (float)cols : 1.0f;
    if (!last_axis_only || x->numel == (int64_t)cols) {
        y = reduce_all(g, name, x, NULL, alpha);
    } else {
        y = vkd_graph_tensor(g, name, x->ndim - 1, x->shape);
        if (y && vkd_reduce_rows_dispatch(g, name, y, x, NULL, x->numel / cols, cols, alpha)) y = NULL;
    }
    vkd_tape_entry *e = vkd_tape_push(g, reduce_backward, y, &x, 1);
    if (e) e->attr.i[0] = last_axis_only, e->attr.f[1] = alpha;
    return y;
}

vkd_tensor *vkd_sum(vkd_graph *g, vkd_tensor *x, int last_axis_only) { return reduce(g, "sum", x, last_axis_only, 0); }
vkd_tensor *vkd_mean(vkd_graph *g, vkd_tensor *x, int last_axis_only) { return reduce(g, "mean", x, last_axis_only, 1); }

static void mse_backward(vkd_graph *g, vkd_tape_entry *e, vkd_tensor *dy) {
    vkd_tensor *a = e->in[0], *b = e->in[1];
    float k = 2.0f / (float)a->numel;
    // da = 2/n * (a - b) * dloss; db = -da
    if (vkd_tensor_needs_grad(a)) {
        vkd_tensor *da = vkd_graph_tensor_like(g, "mse_bwd", a);
        if (da && !vkd_eltwise_dispatch(g, "mse_bwd", VKD_EW_SUB, da, a, b, dy, 1, a->numel, k))
            vkd_grad_accumulate(g, a, da);
    }
    if (vkd_tensor_needs_grad(b)) {
        vkd_tensor *db = vkd_graph_tensor_like(g, "mse_bwd", b);
        if (db && !vkd_eltwise_dispatch(g, "mse_bwd", VKD_EW_SUB, db, a, b, dy, 1, a->numel, -k))
            vkd_grad_accumulate(g, b, db);
    }
}

vkd_tensor *vkd_mse(vkd_graph *g, vkd_tensor *a, vkd_tensor *b) {
    if (!vkd_op_ok(g, 2, a, b)) return NULL;
    if (!vkd_same_shape(a, b)) {
        char sa[64], sb[64];
        vkd_shape_str(a, sa, sizeof sa);
        vkd_shape_str(b, sb, sizeof sb);
        vkd_graph_fail(g, "mse: '%s' %s and '%s' %s differ in shape", a->name, sa, b->name, sb);
        return NULL;
    }
    vkd_tensor *y = reduce_all(g, "mse", a, b, 1.0f / (float)a->numel);
    vkd_tensor *in[2] = {a, b};
    vkd_tape_push(g, mse_backward, y, in, 2);
    return y;
}
