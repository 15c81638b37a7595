// Broadcasting add / sub / mul and scale, with their backward; fill, copy and
// in-place accumulation. Shader: shaders/eltwise.comp.
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"

typedef struct {
    VkDeviceAddress y, a, b, s;
    uint32_t n, inner, bc, flags;
    float alpha;
    int32_t a_first, b_first;  // texel views (set at compile)
    int32_t y_sfirst;          // eltwise_sb: y's storage binding (set at compile)
} eltwise_push;

void vkd_grid_1d(uint64_t n, uint32_t per_group, uint32_t *gx, uint32_t *gy) {
    uint64_t groups = (n + per_group - 1) / per_group;
    if (groups == 0) groups = 1;
    *gx = groups < 65535 ? (uint32_t)groups : 65535u;
    *gy = (uint32_t)((groups + *gx - 1) / *gx);
}

// Whether a 1-D launch of gx * gy workgroups of wg covers exactly n invocations (the shaders'
// WHOLE: no bounds test).
int vkd_grid_whole(uint64_t n, uint32_t gx, uint32_t gy, uint32_t wg) {
    return n > 0 && (uint64_t)gx * gy * wg == n && !vkd_env_off("VKD_WHOLE");
}

uint32_t vkd_grid_rows(const vkd_graph *g, uint64_t nrows, uint64_t len, uint32_t *wg, uint32_t g3[3], uint32_t *rpw) {
    uint32_t rows = g->ctx->f.type == VK_PHYSICAL_DEVICE_TYPE_CPU && len >= 16;
    g3[2] = 1;
    *rpw = 1;
    if (!rows) {
        *wg = VKD_WG;
        vkd_grid_1d(nrows * len, VKD_WG, &g3[0], &g3[1]);
        return 0;
    }
    *wg = len >= 64 ? 64u : len >= 32 ? 32u : 16u;
    // avgpool2x_bwd of 32x32 maps, rows of 32: 4.1 ms a call at 1 row a workgroup, 1.6 at 4,
    // 1.3 at 16, 1.2-1.5 at 32-64 (teacher, batch 32)
    *rpw = len >= 512 ? 1u : (uint32_t)vkd_ceil_div(512, len);
    g3[0] = (uint32_t)vkd_ceil_div(len, *wg);
    vkd_grid_1d(vkd_ceil_div(nrows, *rpw), 1, &g3[1], &g3[2]);
    return 1;
}

int vkd_op_ok(vkd_graph *g, int n, ...) {
    if (vkd_graph_failed(g)) return 0;
    va_list ap;
    va_start(ap, n);
    int ok = 1;
    for (int i = 0; i < n; i++) ok &= va_arg(ap, vkd_tensor *) != NULL;
    va_end(ap);
    if (!ok) vkd_graph_fail(g, "internal: an op was given a NULL tensor");
    return ok;
}

int vkd_texel_fits(const vkd_ctx *ctx, uint64_t numel) {
    // + the elements before the tensor in its aligned view
    return numel + ctx->f.texel_align / 4 + 1 <= ctx->f.max_texel_elements;
}

int vkd_texel_ok(const vkd_graph *g, int n, ...) {
    const vkd_ctx *ctx = g->ctx;
    if (!ctx->texel) return 0;
    va_list ap;
    va_start(ap, n);
    int ok = 1;
    for (int i = 0; i < n; i++) {
        const vkd_tensor *t = va_arg(ap, const vkd_tensor *);
        ok &= t && vkd_texel_fits(ctx, (uint64_t)t->numel);
    }
    va_end(ap);
    return ok;
}

uint32_t vkd_elems_per_invocation(const vkd_graph *g) {
    return g->ctx->f.type == VK_PHYSICAL_DEVICE_TYPE_CPU ? 8u : 1u;
}

int vkd_env_off(const char *name) {
    const char *env = getenv(name);
    return env && *env && atoi(env) == 0;
}

int vkd_vec4_ok(int n, ...) {
    int ok = !vkd_env_off("VKD_VEC4");  // the scalar walk everywhere (benchmarks, tests)
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++) {
        const vkd_tensor *t = va_arg(ap, const vkd_tensor *);
        ok &= !t || (t->numel % 4 == 0 && t->view_off % 16 == 0);
    }
    va_end(ap);
    return ok;
}

int vkd_sbuf_ok(const vkd_graph *g, int n, ...) {
    const vkd_ctx *ctx = g->ctx;
    int ok = ctx->sbuf;
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++) {
        const vkd_tensor *t = va_arg(ap, const vkd_tensor *);
        ok &= !t || (t->numel % 4 == 0 && t->view_off % 16 == 0 &&
                     (uint64_t)t->numel * 4 + ctx->f.sbuf_align + 16 <= ctx->f.max_storage_range);
    }
    va_end(ap);
    return ok;
}

const char *vkd_store_variant(const vkd_graph *g, int vec4, const char *family, const char *wide) {
    // VKD_WIDE_STORES=0: four scalar stores a quad (benchmarks, tests)
    int ok = vec4 && g->ctx->texel && g->ctx->f.int64 && !vkd_env_off("VKD_WIDE_STORES");
    return ok ? wide : family;
}

const char *vkd_sbuf_variant(const vkd_graph *g, const char *shader, const char *wide, const char *sb,
                             const vkd_tensor *out, vkd_texel *tx, int *nt, uint16_t first_at) {
    if (strcmp(shader, wide) != 0 || !vkd_sbuf_ok(g, 1, out)) return shader;
    tx[(*nt)++] = vkd_texel_store(0, 0, first_at);
    return sb;
}

int vkd_eltwise_dispatch(vkd_graph *g, const char *name, int op, vkd_tensor *y, vkd_tensor *a, vkd_tensor *b,
                         vkd_tensor *s, uint64_t inner, uint64_t bc, float alpha) {
    if (y->numel > UINT32_MAX) {
        vkd_graph_fail(g, "%s: %lld elements is more than one dispatch handles", name, (long long)y->numel);
        return -1;
    }
    eltwise_push pc = {.n = (uint32_t)y->numel,
                       .inner = (uint32_t)inner,
                       .bc = (uint32_t)bc,
                       .flags = s ? 1u : 0u,
                       .alpha = alpha};
    vkd_arg args[4];
    int na = 0;
    vkd_texel tx[3];
    int nt = 0, use_a = op != VKD_EW_BCAST;
    uint32_t texel = (uint32_t)vkd_texel_ok(g, use_a ? 2 : 1, b, a);
    uint32_t bmode = inner == 1 && bc == (uint64_t)y->numel ? 1u : bc == 1 ? 2u : 0u;
    uint32_t vec4 = texel && bmode != 0 && vkd_vec4_ok(3, y, use_a ? a : NULL, bmode == 1 ? b : NULL);
    args[na++] = (vkd_arg){offsetof(eltwise_push, y), VKD_W, y};
    if (use_a) {
        if (texel) tx[nt++] = (vkd_texel){(uint8_t)na, 0, offsetof(eltwise_push, a_first), (uint8_t)vec4};
        args[na++] = (vkd_arg){offsetof(eltwise_push, a), VKD_R, a};
    }
    if (texel) tx[nt++] = (vkd_texel){(uint8_t)na, 1, offsetof(eltwise_push, b_first), (uint8_t)(vec4 && bmode == 1)};
    args[na++] = (vkd_arg){offsetof(eltwise_push, b), VKD_R, b};
    if (s) args[na++] = (vkd_arg){offsetof(eltwise_push, s), VKD_R, s};
    uint32_t gx, gy;
    vkd_grid_1d(vec4 ? y->numel / 4 : y->numel, VKD_WG, &gx, &gy);
    uint32_t spec[6] = {VKD_WG, (uint32_t)op, bmode, texel, vec4, vec4 && vkd_grid_whole(y->numel / 4, gx, gy, VKD_WG)};
    const char *shader = vkd_store_variant(g, (int)vec4, "eltwise", "eltwise_wide");
    shader = vkd_sbuf_variant(g, shader, "eltwise_wide", "eltwise_sb", y, tx, &nt, offsetof(eltwise_push, y_sfirst));
    return vkd_graph_dispatch_texel(g, name, shader, spec, 6, gx, gy, 1, &pc, sizeof pc, args, na, tx, nt);
}

// b right-aligned to a (numpy); its non-1 axes must be one contiguous run equal
// to a's, so that b's index is (i / inner) % bc.
static int broadcast_layout(vkd_graph *g, const char *op, const vkd_tensor *a, const vkd_tensor *b, uint64_t *inner,
                            uint64_t *bc) {
    char sa[64], sb[64];
    vkd_shape_str(a, sa, sizeof sa);
    vkd_shape_str(b, sb, sizeof sb);
    if (b->ndim > a->ndim) goto bad;
    int lo = -1, hi = -1, off = a->ndim - b->ndim;
    for (int k = 0; k < a->ndim; k++) {
        int64_t bd = k >= off ? b->shape[k - off] : 1;
        if (bd != 1 && bd != a->shape[k]) goto bad;
        if (bd != 1) {
            if (lo < 0) lo = k;
            hi = k;
        }
    }
    *inner = 1, *bc = 1;
    if (lo < 0) return 0;
    for (int k = lo; k <= hi; k++) {
        int64_t bd = k >= off ? b->shape[k - off] : 1;
        if (bd != a->shape[k]) goto bad;
        *bc *= (uint64_t)a->shape[k];
    }
    for (int k = hi + 1; k < a->ndim; k++) *inner *= (uint64_t)a->shape[k];
    return 0;
bad:
    vkd_graph_fail(g, "%s: cannot broadcast %s onto %s (b must be a contiguous block of a's axes)", op, sb, sa);
    return -1;
}

// The first of a broadcast's sums: x's rows of `inner` summed (outer * bc values), or x
// itself when inner is 1.
static vkd_tensor *bcast_rows(vkd_graph *g, vkd_tensor *x, uint64_t inner, uint64_t rows) {
    if (inner <= 1) return x;
    vkd_tensor *t = vkd_graph_tensor(g, "reduce_bcast", 1, (int64_t[]){(int64_t)rows});
    return t && !vkd_reduce_rows_dispatch(g, "reduce_bcast", t, x, NULL, rows, inner, 1.0f) ? t : NULL;
}

vkd_tensor *vkd_reduce_broadcast(vkd_graph *g, vkd_tensor *x, uint64_t inner, uint64_t bc, const vkd_tensor *like) {
    uint64_t outer = x->numel / (inner * bc);
    vkd_tensor *t = bcast_rows(g, x, inner, outer * bc);
    if (!t) return NULL;
    if (outer > 1) {
        int64_t sh[1] = {(int64_t)bc};
        vkd_tensor *u = vkd_graph_tensor(g, "reduce_bcast", 1, sh);
        if (!u || vkd_reduce_cols_dispatch(g, "reduce_bcast", u, t, 1, outer, bc, 1.0f)) return NULL;
        t = u;
    }
    return vkd_reshape(g, t, like->ndim, like->shape);
}

int vkd_grad_from_broadcast(vkd_graph *g, vkd_tensor *t, vkd_tensor *x, uint64_t inner, uint64_t bc) {
    uint64_t outer = x->numel / (inner * bc);
    if (outer > 1 && (uint64_t)t->numel == bc && inner > 1)
        return vkd_grad_from_row_sums(g, "reduce_bcast", t, x, inner, outer, bc, NULL);
    if (outer > 1 && (uint64_t)t->numel == bc) return vkd_grad_from_cols(g, "reduce_bcast", t, x, outer);
    vkd_tensor *d = vkd_reduce_broadcast(g, x, inner, bc, t);
    if (!d) return -1;
    vkd_grad_accumulate(g, t, d);
    return 0;
}

static void binary_backward(vkd_graph *g, vkd_tape_entry *e, vkd_tensor *dy) {
    vkd_tensor *a = e->in[0], *b = e->in[1];
    int op = e->attr.i[0];
    uint64_t inner = (uint64_t)e->attr.i[1] | ((uint64_t)e->attr.i[2] << 31);
    uint64_t bc = (uint64_t)e->attr.i[3] | ((uint64_t)e->attr.i[4] << 31);
    if (vkd_tensor_needs_grad(a)) {
        if (op == VKD_EW_MUL) {
            vkd_tensor *da = vkd_graph_tensor_like(g, "mul_bwd_a", a);
            if (da && !vkd_eltwise_dispatch(g, "mul_bwd_a", VKD_EW_MUL, da, dy, b, NULL, inner, bc, 1.0f))
                vkd_grad_accumulate(g, a, da);
        } else {
            vkd_grad_accumulate(g, a, dy);
        }
    }
    if (vkd_tensor_needs_grad(b)) {
        vkd_tensor *src = dy;
        if (op == VKD_EW_MUL) {
            src = vkd_graph_tensor_like(g, "mul_bwd_b", a);
            if (!src || vkd_eltwise_dispatch(g, "mul_bwd_b", VKD_EW_MUL, src, dy, a, NULL, 1, a->numel, 1.0f)) return;
        }
        if (op != VKD_EW_SUB) {
            vkd_grad_from_broadcast(g, b, src, inner, bc);
            return;
        }
        vkd_grad_accumulate(g, b, vkd_scale(g, vkd_reduce_broadcast(g, src, inner, bc, b), -1.0f));
    }
}

static vkd_tensor *binary(vkd_graph *g, const char *name, int op, vkd_tensor *a, vkd_tensor *b) {
    if (!vkd_op_ok(g, 2, a, b)) return NULL;
    uint64_t inner, bc;
    if (broadcast_layout(g, name, a, b, &inner, &bc)) return NULL;
    vkd_tensor *y = vkd_graph_tensor_like(g, name, a);
    if (!y || vkd_eltwise_dispatch(g, name, op, y, a, b, NULL, inner, bc, 1.0f)) return NULL;
    vkd_tensor *in[2] = {a, b};
    vkd_tape_entry *e = vkd_tape_push(g, binary_backward, y, in, 2);
    if (e) {
        e->attr.i[0] = op;
        e->attr.i[1] = (int32_t)(inner & 0x7fffffff), e->attr.i[2] = (int32_t)(inner >> 31);
        e->attr.i[3] = (int32_t)(bc & 0x7fffffff), e->attr.i[4] = (int32_t)(bc >> 31);
    }
    return y;
}

vkd_tensor *vkd_add(vkd_graph *g, vkd_tensor *a, vkd_tensor *b) { return binary(g, "add", VKD_EW_ADD, a, b); }
static void add_scaled_backward(vkd_graph *g, vkd_tape_entry *e, vkd_tensor *dy) {
    vkd_tensor *t = vkd_scale(g, dy, e->attr.f[0]);
    for (int i = 0; i < 2 && t; i++)
        if (vkd_tensor_needs_grad(e->in[i])) vkd_grad_accumulate(g, e->in[i], t);
}

vkd_tensor *vkd_add_scaled(vkd_graph *g, vkd_tensor *a, vkd_tensor *b, float alpha) {
    if (!vkd_op_ok(g, 2, a, b)) return NULL;
    int same = a->ndim == b->ndim;
    for (int k = 0; same && k < a->ndim; k++) same = a->shape[k] == b->shape[k];
    if (!same) {
        char sa[64], sb[64];
        vkd_shape_str(a, sa, sizeof sa);
        vkd_shape_str(b, sb, sizeof sb);
        vkd_graph_fail(g, "add_scaled: '%s' %s and '%s' %s must have one shape", a->name, sa, b->name, sb);
        return NULL;
    }
    vkd_tensor *y = vkd_graph_tensor_like(g, "add_scaled", a);
    if (!y || vkd_eltwise_dispatch(g, "add_scaled", VKD_EW_ADD, y, a, b, NULL, 1, (uint64_t)a->numel, alpha))
        return NULL;
    vkd_tensor *in[2] = {a, b};
    vkd_tape_entry *e = vkd_tape_push(g, add_scaled_backward, y, in, 2);
    if (e) e->attr.f[0] = alpha;
    return y;
}

vkd_tensor *vkd_sub(vkd_graph *g, vkd_tensor *a, vkd_tensor *b) { return binary(g, "sub", VKD_EW_SUB, a, b); }
vkd_tensor *vkd_mul(vkd_graph *g, vkd_tensor *a, vkd_tensor *b) { return binary(g, "mul", VKD_EW_MUL, a, b); }

int vkd_accumulate_into(vkd_graph *g, vkd_tensor *dst, vkd_tensor *src) {
    if (!vkd_op_ok(g, 2, dst, src)) return -1;
    if (dst->numel != src->numel) {
        vkd_graph_fail(g, "accumulate into '%s': %lld elements from '%s' with %lld", dst->name, (long long)dst->numel,
                       src->name, (long long)src->numel);
        return -1;
    }
    // y aliases a (declared as a write and a read): each invocation reads its element before writing it.
    return vkd_eltwise_dispatch(g, "grad_accumulate", VKD_EW_ADD, dst, dst, src, NULL, 1, src->numel, 1.0f);
}

int vkd_copy(vkd_graph *g, vkd_tensor *dst, vkd_tensor *src) {
    if (!vkd_op_ok(g, 2, dst, src)) return -1;
    if (dst->numel != src->numel) {
        vkd_graph_fail(g, "copy into '%s': %lld elements from '%s' with %lld", dst->name, (long long)dst->numel,
                       src->name, (long long)src->numel);
        return -1;
    }
    // A transfer where copies are (a CPU device): no shader launch, whose hand-off to lavapipe's
    // threads costs more than a small copy. The gradient exchange under mpirun copies every
    // parameter's gradient to its staging and back: 346 each way a unet_fmnist step, ~15 us a
    // shader launch against ~6 us a copy (LP_NUM_THREADS=0).
    if (vkd_copy_by_transfer(g)) {
        vkd_copy_rows whole = {.rows = 1, .len = (uint64_t)src->numel};
        return vkd_graph_copy(g, "copy", dst, 1, &src, &whole);
    }
    return vkd_eltwise_dispatch(g, "copy", VKD_EW_BCAST, dst, NULL, src, NULL, 1, src->numel, 1.0f);
}
