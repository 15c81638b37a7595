// Layout ops: permute, slice, concat and the three-way split used by
// attention, forward and backward. Shader: shaders/layout.comp, a strided
// gather (permute, slice) and a banded copy (concat, the zero-padded gradient
// of a slice). Every dispatch writes every element of its output, so no
// output is ever partly undefined.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/layout.h"

typedef struct {
    VkDeviceAddress y, x0, x1, x2;
    uint32_t n, off;
    uint32_t dims;  // ndim | sel << 8 (GATHER; 0xff: none) | absent << 16 (bit s: source s reads as 0)
    uint32_t rpw;   // row launches: rows per workgroup
    float a0, a1, a2;
    uint32_t shape[6];
    uint32_t xs[6];
    uint32_t lo, hi;
    int32_t x0_first, x1_first, x2_first;  // texel views (set at compile)
} layout_push;

enum { L_GATHER = 0, L_BAND = 1 };

// Indices are 32-bit in the shader.
static int fits(vkd_graph *g, const char *op, const vkd_tensor *t) {
    if (t->numel <= (int64_t)UINT32_MAX) return 1;
    vkd_graph_fail(g, "%s: '%s' has %lld elements, more than one dispatch indexes", op, t->name,
                   (long long)t->numel);
    return 0;
}

static void strides_of(int ndim, const int64_t *shape, int64_t *st) {
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) st[i] = s, s *= shape[i];
}

// y (shape) = alpha_s * src_s[off + sum idx_k * xs[k]], s the index along
// axis sel (or 0 when sel < 0). Size-1 axes are dropped and axes that stay
// adjacent in the source are merged, so a slice or a permute that moves
// blocks costs one or two divisions per element, not six.
static int gather_dispatch(vkd_graph *g, const char *name, vkd_tensor *y, vkd_tensor *const src[3], int ndim,
                           const int64_t *shape, const int64_t *xs, int64_t off, int sel, const float alpha[3]) {
    layout_push pc = {.n = (uint32_t)y->numel, .off = (uint32_t)off, .a0 = alpha[0], .a1 = alpha[1], .a2 = alpha[2]};
    int m = 0, msel = -1;
    for (int k = 0; k < ndim; k++) {
        if (shape[k] == 1 && k != sel) continue;
        if (m > 0 && k != sel && (int)m - 1 != msel && (int64_t)pc.xs[m - 1] == xs[k] * shape[k]) {
            pc.shape[m - 1] *= (uint32_t)shape[k];
            pc.xs[m - 1] = (uint32_t)xs[k];
            continue;
        }
        if (k == sel) msel = m;
        pc.shape[m] = (uint32_t)shape[k];
        pc.xs[m] = (uint32_t)xs[k];
        m++;
    }
    if (m == 0) pc.shape[m] = 1, pc.xs[m] = 0, m = 1;
    pc.dims = (uint32_t)m | (msel < 0 ? 0xffu : (uint32_t)msel) << 8;
    vkd_arg args[4] = {{offsetof(layout_push, y), VKD_W, y}};
    vkd_texel tx[3];
    int na = 1, nsrc = sel < 0 ? 1 : 3, nt = 0;
    static const uint16_t at[3] = {offsetof(layout_push, x0), offsetof(layout_push, x1), offsetof(layout_push, x2)};
    static const uint16_t first[3] = {offsetof(layout_push, x0_first), offsetof(layout_push, x1_first),
                                      offsetof(layout_push, x2_first)};
    uint32_t texel = 1;
    for (int s = 0; s < nsrc; s++) {
        if (src[s]) {
            texel &= (uint32_t)vkd_texel_ok(g, 1, src[s]);
            tx[nt++] = (vkd_texel){(uint8_t)na, (uint8_t)s, first[s], 0};
            args[na++] = (vkd_arg){at[s], VKD_R, src[s]};
        } else {
            pc.dims |= 1u << (16 + s);
        }
    }
    // On a CPU device: a row launch along the innermost axis when it is not the selecting
    // one, so the index divisions and the choice of source are per workgroup (the attention
    // split took ~15 ns an element with them per lane), and loads through texel views.
    uint32_t wg, g3[3], rows = 0;
    if ((int)m - 1 != msel) rows = vkd_grid_rows(g, y->numel / pc.shape[m - 1], pc.shape[m - 1], &wg, g3, &pc.rpw);
    if (!rows) wg = VKD_WG, g3[2] = 1, vkd_grid_1d(y->numel, VKD_WG, &g3[0], &g3[1]);
    uint32_t spec[4] = {wg, L_GATHER, texel, rows};
    return vkd_graph_dispatch_texel(g, name, "layout", spec, 4, g3[0], g3[1], g3[2], &pc, sizeof pc, args, na, tx,
                                    texel ? nt : 0);
}

// y (outer, Y, inner): x0 (outer, hi-lo, inner) in [lo, hi) of the middle
// axis, x1 (outer, Y-hi, inner) after it (or NULL), zeros elsewhere.
static int band_dispatch(vkd_graph *g, const char *name, vkd_tensor *y, vkd_tensor *x0, vkd_tensor *x1,
                         int64_t outer, int64_t Y, int64_t inner, int64_t lo, int64_t hi) {
    layout_push pc = {.n = (uint32_t)y->numel,
                      .dims = x1 ? 0u : 2u << 16,
                      .shape = {(uint32_t)outer, (uint32_t)Y, (uint32_t)inner},
                      .lo = (uint32_t)lo,
                      .hi = (uint32_t)hi};
    vkd_arg args[3] = {{offsetof(layout_push, y), VKD_W, y}, {offsetof(layout_push, x0), VKD_R, x0}};
    int na = 2;
    if (x1) args[na++] = (vkd_arg){offsetof(layout_push, x1), VKD_R, x1};
    uint32_t texel = (uint32_t)vkd_texel_ok(g, x1 ? 2 : 1, x0, x1);
    vkd_texel tx[2] = {{1, 0, offsetof(layout_push, x0_first), 0}, {2, 1, offsetof(layout_push, x1_first), 0}};
    uint32_t wg, g3[3], rows = vkd_grid_rows(g, (uint64_t)(outer * Y), (uint64_t)inner, &wg, g3, &pc.rpw);  // (o, c) rows
    uint32_t spec[4] = {wg, L_BAND, texel, rows};
    return vkd_graph_dispatch_texel(g, name, "layout", spec, 4, g3[0], g3[1], g3[2], &pc, sizeof pc, args, na, tx,
                                    texel ? na - 1 : 0);
}

// On a CPU device a slice or a concat is a buffer copy per row: lavapipe's copy is a memcpy, the
// shader's stores a loop over the lanes (a concat of the teacher's decoder, batch 64: see
// docs/performance_history.md). GPUs keep the shader: one dispatch instead of a copy region per
// row. VKD_COPY=0 / 1 overrides (the tests run the shader path on lavapipe too).
int vkd_copy_by_transfer(const vkd_graph *g) {
    const char *env = getenv("VKD_COPY");
    if (env && *env) return atoi(env) != 0;
    return g->ctx->f.type == VK_PHYSICAL_DEVICE_TYPE_CPU;
}

static const float ONES[3] = {1.0f, 1.0f, 1.0f};

// The tape keeps a permutation in one int: 4 bits per axis.
static int32_t pack_perm(int ndim, const int *perm) {
    int32_t p = 0;
    for (int i = 0; i < ndim; i++) p |= perm[i] << (4 * i);
    return p;
}
static void unpack_perm(int32_t p, int ndim, int *perm) {
    for (int i = 0; i < ndim; i++) perm[i] = (p >> (4 * i)) & 15;
}

static int check_perm(vkd_graph *g, const char *op, const vkd_tensor *x, int ndim, const int *perm) {
    char sx[64];
    vkd_shape_str(x, sx, sizeof sx);
    int seen = 0, ok = ndim == x->ndim && perm;
    for (int i = 0; ok && i < ndim; i++) {
        ok = perm[i] >= 0 && perm[i] < ndim && !(seen >> perm[i] & 1);
        if (ok) seen |= 1 << perm[i];
    }
    if (!ok) vkd_graph_fail(g, "%s of '%s' %s: the permutation must list each of its %d axes once", op, x->name, sx, x->ndim);
    return ok;
}

static vkd_tensor *permute_copy(vkd_graph *g, const char *name, vkd_tensor *x, const int *perm) {
    int n = x->ndim;
    int64_t st[VKD_MAX_DIMS], sh[VKD_MAX_DIMS], xs[VKD_MAX_DIMS];
    strides_of(n, x->shape, st);
    for (int i = 0; i < n; i++) sh[i] = x->shape[perm[i]], xs[i] = st[perm[i]];
    vkd_tensor *src[3] = {x, NULL, NULL};
    vkd_tensor *y = vkd_graph_tensor(g, name, n, sh);
    if (!y || gather_dispatch(g, name, y, src, n, sh, xs, 0, -1, ONES)) return NULL;
    return y;
}

static void permute_backward(vkd_graph *g, vkd_tape_entry *e, vkd_tensor *dy) {
    int n = e->in[0]->ndim, perm[VKD_MAX_DIMS], inv[VKD_MAX_DIMS];
    unpack_perm(e->attr.i[0], n, perm);
    for (int i = 0; i < n; i++) inv[perm[i]] = i;
    vkd_grad_accumulate(g, e->in[0], permute_copy(g, "permute_bwd", dy, inv));
}

vkd_tensor *vkd_permute(vkd_graph *g, vkd_tensor *x, int ndim, const int *perm) {
    if (!vkd_op_ok(g, 1, x) || !check_perm(g, "permute", x, ndim, perm) || !fits(g, "permute", x)) return NULL;
    vkd_tensor *y = permute_copy(g, "permute", x, perm);
    vkd_tape_entry *e = vkd_tape_push(g, permute_backward, y, &x, 1);
    if (e) e->attr.i[0] = pack_perm(ndim, perm);
    return y;
}

// x viewed as (outer, L, inner) around axis.
static void around(const vkd_tensor *x, int axis, int64_t *outer, int64_t *inner) {
    *outer = *inner = 1;
    for (int i = 0; i < axis; i++) *outer *= x->shape[i];
    for (int i = axis + 1; i < x->ndim; i++) *inner *= x->shape[i];
}

// y (outer, len, inner) = x (outer, L, inner)[:, start:start+len, :]
static int slice_dispatch(vkd_graph *g, const char *name, vkd_tensor *y, vkd_tensor *x, int axis, int64_t start,
                          int64_t len) {
    int64_t outer, inner, L = x->shape[axis];
    around(x, axis, &outer, &inner);
    if (vkd_copy_by_transfer(g)) {
        vkd_copy_rows c = {.rows = (uint64_t)outer, .len = (uint64_t)(len * inner), .dst_stride = (uint64_t)(len * inner),
                           .src_off = (uint64_t)(start * inner), .src_stride = (uint64_t)(L * inner)};
        return vkd_graph_copy(g, name, y, 1, &x, &c);
    }
    int64_t sh[3] = {outer, len, inner}, xs[3] = {L * inner, inner, 1};
    vkd_tensor *src[3] = {x, NULL, NULL};
    return gather_dispatch(g, name, y, src, 3, sh, xs, start * inner, -1, ONES);
}

static void slice_backward(vkd_graph *g, vkd_tape_entry *e, vkd_tensor *dy) {
    vkd_tensor *x = e->in[0];
    int axis = e->attr.i[0];
    int64_t start = (uint32_t)e->attr.i[1], len = (uint32_t)e->attr.i[2], outer, inner;
    around(x, axis, &outer, &inner);
    vkd_tensor *dx = vkd_graph_tensor_like(g, "slice_bwd", x);
    if (dx && !band_dispatch(g, "slice_bwd", dx, dy, NULL, outer, x->shape[axis], inner, start, start + len))
        vkd_grad_accumulate(g, x, dx);
}

vkd_tensor *vkd_slice(vkd_graph *g, vkd_tensor *x, int axis, int64_t start, int64_t len) {
    if (!vkd_op_ok(g, 1, x) || !fits(g, "slice", x)) return NULL;
    int ax = axis < 0 ? axis + x->ndim : axis;
    if (ax < 0 || ax >= x->ndim || start < 0 || len < 1 || start + len > x->shape[ax]) {
        char sx[64];
        vkd_shape_str(x, sx, sizeof sx);
        vkd_graph_fail(g, "slice of '%s' %s: [%lld, %lld) along axis %d is out of range", x->name, sx,
                       (long long)start, (long long)(start + len), axis);
        return NULL;
    }
    int64_t sh[VKD_MAX_DIMS];
    memcpy(sh, x->shape, sizeof sh);
    sh[ax] = len;
    vkd_tensor *y = vkd_graph_tensor(g, "slice", x->ndim, sh);
    if (!y || slice_dispatch(g, "slice", y, x, ax, start, len)) return NULL;
    vkd_tape_entry *e = vkd_tape_push(g, slice_backward, y, &x, 1);
    if (e) e->attr.i[0] = ax, e->attr.i[1] = (int32_t)(uint32_t)start, e->attr.i[2] = (int32_t)(uint32_t)len;
    return y;
}

static void concat_backward(vkd_graph *g, vkd_tape_entry *e, vkd_tensor *dy) {
    vkd_tensor *a = e->in[0], *b = e->in[1];
    int axis = e->attr.i[0];
    if (vkd_tensor_needs_grad(a)) {
        vkd_tensor *da = vkd_graph_tensor_like(g, "concat_bwd_a", a);
        if (da && !slice_dispatch(g, "concat_bwd_a", da, dy, axis, 0, a->shape[axis])) {
            // dy's first channels hold a's fold (vkd_grad_fold_lead): a's whole gradient, folded
            if (!vkd_grad_folded(g, e->out)) vkd_grad_accumulate(g, a, da);
            else if (vkd_grad_pending(g, a)) vkd_graph_fail(g, "concat backward: '%s' has a gradient besides its fold", a->name);
            else vkd_grad_set_folded(g, a, da);
        }
    }
    if (vkd_tensor_needs_grad(b)) {
        vkd_tensor *db = vkd_graph_tensor_like(g, "concat_bwd_b", b);
        if (db && !slice_dispatch(g, "concat_bwd_b", db, dy, axis, a->shape[axis], b->shape[axis]))
            vkd_grad_accumulate(g, b, db);
    }
}

vkd_tensor *vkd_concat(vkd_graph *g, vkd_tensor *a, vkd_tensor *b, int axis) {
    if (!vkd_op_ok(g, 2, a, b)) return NULL;
    int ax = axis < 0 ? axis + a->ndim : axis;
    int ok = a->ndim == b->ndim && ax >= 0 && ax < a->ndim;
    for (int i = 0; ok && i < a->ndim; i++) ok = i == ax || a->shape[i] == b->shape[i];
    if (!ok) {
        char sa[64], sb[64];
        vkd_shape_str(a, sa, sizeof sa);
        vkd_shape_str(b, sb, sizeof sb);
        vkd_graph_fail(g, "concat of '%s' %s and '%s' %s along axis %d: shapes must match except along that axis",
                       a->name, sa, b->name, sb, axis);
        return NULL;
    }
    int64_t sh[VKD_MAX_DIMS], outer, inner;
    memcpy(sh, a->shape, sizeof sh);
    sh[ax] = a->shape[ax] + b->shape[ax];
    vkd_tensor *y = vkd_graph_tensor(g, "concat", a->ndim, sh);
    if (!y || !fits(g, "concat", y)) return NULL;
    around(y, ax, &outer, &inner);
    if (vkd_copy_by_transfer(g)) {
        uint64_t la = (uint64_t)(a->shape[ax] * inner), lb = (uint64_t)(b->shape[ax] * inner);
        // one node: the two parts write disjoint rows of y, so no barrier between them
        vkd_copy_rows rows[2] = {{.rows = (uint64_t)outer, .len = la, .dst_stride = la + lb, .src_stride = la},
                                 {.rows = (uint64_t)outer, .len = lb, .dst_off = la, .dst_stride = la + lb, .src_stride = lb}};
        vkd_tensor *src[2] = {a, b};
        if (vkd_graph_copy(g, "concat", y, 2, src, rows)) return NULL;
    } else if (band_dispatch(g, "concat", y, a, b, outer, sh[ax], inner, 0, a->shape[ax])) {
        return NULL;
    }
    vkd_tensor *in[2] = {a, b};
    vkd_tape_entry *e = vkd_tape_push(g, concat_backward, y, in, 2);
    if (e) e->attr.i[0] = ax;
    // a's fold (EDM's decoder: a block's output, whose gradient its residual scales) carried by
    // y's first channels: the op that completes y's gradient may scale just those, and a's
    // gradient is then their copy, without a pass of its own (vkd_grad_fold_lead). Not a fold
    // that covers only part of a (a concat of a concat): a's other channels must stay unscaled.
    if (ax == 1 && a->grad_fold != 0.0f && !a->grad_fold_src) y->grad_fold = a->grad_fold, y->grad_fold_src = a;
    return y;
}

// ---------------------------------------------------------------- split3
// dx = x's layout filled from (alpha_0 dq, alpha_1 dk, alpha_2 dv): one gather
// with three sources picked by x's axis perm[0]; a part without a gradient is
// read as zeros.
static void split3_backward(vkd_graph *g, vkd_tape_entry *e, vkd_tensor *dy) {
    vkd_tensor *x = e->in[0];
    int n = x->ndim, perm[VKD_MAX_DIMS];
    unpack_perm(e->attr.i[0], n, perm);
    vkd_tensor *src[3] = {dy, vkd_graph_grad(g, e->saved[0]), vkd_graph_grad(g, e->saved[1])};
    // Strides of a part (permuted shape without its axis 0), by source axis.
    int64_t psh[VKD_MAX_DIMS], pst[VKD_MAX_DIMS], xs[VKD_MAX_DIMS];
    for (int m = 1; m < n; m++) psh[m - 1] = x->shape[perm[m]];
    strides_of(n - 1, psh, pst);
    for (int m = 1; m < n; m++) xs[perm[m]] = pst[m - 1];
    xs[perm[0]] = 0;
    float alpha[3] = {e->attr.f[1], e->attr.f[2], e->attr.f[3]};
    vkd_tensor *dx = vkd_graph_tensor_like(g, "split3_bwd", x);
    if (dx && !gather_dispatch(g, "split3_bwd", dx, src, n, x->shape, xs, 0, perm[0], alpha))
        vkd_grad_accumulate(g, x, dx);
}

int vkd_split3(vkd_graph *g, vkd_tensor *x, const int *perm, const float alpha[3], vkd_tensor *out[3]) {
    out[0] = out[1] = out[2] = NULL;
    if (!vkd_op_ok(g, 1, x) || !check_perm(g, "split3", x, x->ndim, perm) || !fits(g, "split3", x)) return -1;
    int n = x->ndim;
    if (n < 2 || x->shape[perm[0]] != 3) {
        vkd_graph_fail(g, "split3 of '%s': axis %d has %lld entries, not 3", x->name, perm[0],
                       (long long)x->shape[perm[0]]);
        return -1;
    }
    int64_t st[VKD_MAX_DIMS], sh[VKD_MAX_DIMS], xs[VKD_MAX_DIMS];
    strides_of(n, x->shape, st);
    for (int m = 1; m < n; m++) sh[m - 1] = x->shape[perm[m]], xs[m - 1] = st[perm[m]];
    static const char *names[3] = {"split3_q", "split3_k", "split3_v"};
    for (int s = 0; s < 3; s++) {
        vkd_tensor *src[3] = {x, NULL, NULL};
        float a[3] = {alpha[s], 1.0f, 1.0f};
        out[s] = vkd_graph_tensor(g, names[s], n - 1, sh);
        if (!out[s] || gather_dispatch(g, names[s], out[s], src, n - 1, sh, xs, s * st[perm[0]], -1, a)) return -1;
    }
    vkd_tape_entry *e = vkd_tape_push(g, split3_backward, out[0], &x, 1);
    if (e) {
        e->saved[0] = out[1], e->saved[1] = out[2];
        e->attr.i[0] = pack_perm(n, perm);
        e->attr.f[1] = alpha[0], e->attr.f[2] = alpha[1], e->attr.f[3] = alpha[2];
    }
    out[1]->requires_grad = out[2]->requires_grad = out[0]->requires_grad;
    return 0;
}
