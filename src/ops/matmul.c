// Batched matmul and linear, forward and backward, on shaders/matmul.comp.
// The backward is two more GEMMs expressed through the transpose flags, so
// no transposed copies are ever made.
#include <stdio.h>
#include <stdlib.h>

#include "ops/ops.h"

typedef struct {
    VkDeviceAddress A, B, C, bias;
    uint32_t M, N, K, batch;
    uint32_t lda, ldb, ldc, flags;
    uint32_t sA, sB, sC;
    float alpha;
    int32_t a_first, b_first;  // texel views (set at compile)
    VkDeviceAddress R;
    int32_t r_first, c_first;  // EQ: texel views of R and C
    int32_t c_sfirst;          // matmul_sb: C's storage binding
} matmul_push;

enum {
    MM_BIAS = 1, MM_ACCUMULATE = 2, MM_BIAS_ROWS = 4, MM_RESIDUAL = 8, MM_ALPHA_LAST = 16, MM_SOFTMAX_BWD = 32,
    MM_SOFTMAX = 64
};

// Tile sizes (specialization constants 2..6 of matmul.comp: BM, BN, WG, TM,
// TN with WG = (BM/TM) * (BN/(8*TN)) * 8). The GPU tile favours occupancy
// (fewer accumulators). On lavapipe the tile is chosen per shape by the load
// cost model of the convolution tiles (src/ops/conv2d.c): per lane group and
// k step, (TN + TM/8) loads of 8 lanes at ~16 cycles each plus TM*TN FMAs at
// ~2.5, times the lane groups the padded M x N needs; two lane groups per
// workgroup. TM*TN stays <= 256: larger tiles of this shader took LLVM many
// seconds to compile. And <= 128 for GEMMs of fewer than 2^18 outputs (all
// batches): there a tile of 256 bought no measured speed (the GMM's MLP
// iteration 36-39 ms either way) while lavapipe's NIR spends about twice as
// long creating its pipeline (~0.15 s of CPU each, in every process: the GMM
// run's GEMM variants took 1.2-2.1 s to create instead of 0.76 s).
typedef struct {
    uint32_t bm, bn, wg, tm, tn, rm, rn;
} mm_tile;

static mm_tile pick_tile(const vkd_ctx *ctx, uint32_t M, uint32_t N, uint32_t batch, int light) {
    if (ctx->f.type != VK_PHYSICAL_DEVICE_TYPE_CPU) return (mm_tile){64, 64, 128, 8, 4, 4, 2};
    static const uint32_t tms[] = {8, 16, 24, 32, 48, 64}, tns[] = {1, 2, 4, 8, 16};
    uint32_t tm = 24, tn = 4;
    double load = ctx->texel ? 8 * 6.4 : 8 * 16.0;  // one load of 8 lanes, as in conv2d.c
    double best = -1;
    // the light tile: 8 x 1, the smallest (light_mm)
    uint32_t cap = light ? 8 : (uint64_t)M * N * batch >= (1u << 18) ? 256 : 128;
    for (size_t i = 0; i < sizeof tms / sizeof *tms; i++)
        for (size_t j = 0; j < sizeof tns / sizeof *tns; j++) {
            if (tms[i] * tns[j] > cap) continue;
            double groups = (double)vkd_ceil_div(M, tms[i]) * vkd_ceil_div(N, 8u * tns[j]);
            double cost = groups * (load * (tns[j] + tms[i] / 8.0) + 2.5 * tms[i] * tns[j]);
            if (best < 0 || cost < best) best = cost, tm = tms[i], tn = tns[j];
        }
    // Two lane groups: side by side along N when N has room for both, else along M. Along N
    // they share their rows of A and C; single-threaded `bench gemm`, three rounds, ms, along M
    // -> along N: 64x65536x32 (A transposed, a 1x1 data gradient) 21.9 -> 20.1, 96x16384x32 (the
    // attention's qkv) 6.9 -> 5.6, 64x16384x64 5.7 -> 5.2, 256x256x32 0.167 -> 0.158. Every tile
    // sums k in the same order: the same bits.
    int along_m = vkd_ceil_div(N, 8u * tn) < 2 && vkd_ceil_div(M, tm) >= 2;
    // The multiply-adds in 4 x 2 register blocks, as the convolution's (src/ops/conv2d.c);
    // 8x1 to 4x4 measured the same within the noise.
    uint32_t rm = 4, rn = 2;
    while (tm % rm) rm /= 2;
    while (tn % rn) rn /= 2;
    return (mm_tile){along_m ? 2 * tm : tm, along_m ? 8 * tn : 16 * tn, 16, tm, tn, rm, rn};
}

// The tile of a GEMM with softmax over its rows (MM_SOFTMAX): one lane group holds all N columns
// of its TM = 8 rows, TN = N / 8 a lane (whole quads where N is, for the column quads), two lane
// groups along M. TM * TN <= 256 as every tile: N <= 256.
static mm_tile softmax_tile(uint32_t N) {
    uint32_t tn = vkd_ceil_div(N, 8u);
    if (N % 4 == 0) tn = (tn + 3) / 4 * 4;
    uint32_t rn = 2;
    while (tn % rn) rn /= 2;
    return (mm_tile){16, 8 * tn, 16, 8, tn, 4, rn};
}

// Lane groups of 8 within a subgroup, exchanging A by shuffles (the shader's SG; else it re-loads A).
static int lane_groups(const vkd_ctx *ctx) {
    return (ctx->f.subgroup_ops & VK_SUBGROUP_FEATURE_SHUFFLE_BIT) && ctx->f.subgroup_size % 8 == 0;
}

int vkd_matmul_softmax_ok(const vkd_graph *g, uint32_t N) {
    return g->ctx->f.type == VK_PHYSICAL_DEVICE_TYPE_CPU && lane_groups(g->ctx) && N <= 256 &&
           !vkd_env_off("VKD_ATTN_SOFTMAX");
}

// Whether a GEMM takes the light tile (8 x 1 accumulators a lane, pick_tile's light): where its
// whole run is too short to repay a large tile's creation. lavapipe creates every pipeline again
// in every process: ~50-130 ms of CPU for a tile of 64-128 accumulators (its register block and
// k steps unrolled), 15-35 ms for 8 x 1. The light tile ran a 600-step GMM SiD run (batch 128,
// width 128) ~0.1 ns a multiply-add slower (30-33 s against 17-20), so a GEMM whose dispatches
// over the run (vkd_graph_runs) come to under 2^28 multiply-adds loses at most ~30 ms for the
// ~50-100 ms it saves, as the convolution's light walk (src/ops/conv2d.c light_conv). Every tile
// sums k in the same order with the same fma's, so the bits do not depend on the choice: it may
// be made per dispatch. VKD_MM_LIGHT=0: never.
static int light_mm(const vkd_graph *g, const matmul_push *pc) {
    int64_t runs = vkd_graph_runs(g);
    if (g->ctx->f.type != VK_PHYSICAL_DEVICE_TYPE_CPU || runs <= 0 || vkd_env_off("VKD_MM_LIGHT")) return 0;
    double macs = (double)pc->M * pc->N * pc->K * pc->batch;
    return macs * (double)runs < 268435456.0;
}

// VKD_MM_QUADS=0: the scalar walk of A and B (benchmarks, tests)
static int quads_off(void) { return vkd_env_off("VKD_MM_QUADS"); }

enum { SHARED_A = 1, SHARED_B = 2 };  // the operand is 2-D and used by every batch

// Records the GEMM that pc describes (its sizes, strides, flags and alpha set).
static int mm_record(vkd_graph *g, const char *name, matmul_push *pc, vkd_tensor *C, vkd_tensor *A, vkd_tensor *B,
                     vkd_tensor *bias, vkd_tensor *R, int ta, int tb) {
    vkd_arg args[5] = {{offsetof(matmul_push, C), (pc->flags & MM_ACCUMULATE) ? VKD_RW : VKD_W, C},
                       {offsetof(matmul_push, A), VKD_R, A},
                       {offsetof(matmul_push, B), VKD_R, B}};
    int na = 3;
    if (bias) args[na++] = (vkd_arg){offsetof(matmul_push, bias), VKD_R, bias};
    if (R) args[na++] = (vkd_arg){offsetof(matmul_push, R), VKD_R, R};
    mm_tile t = (pc->flags & MM_SOFTMAX) ? softmax_tile(pc->N)
                                         : pick_tile(g->ctx, pc->M, pc->N, pc->batch, light_mm(g, pc));
    uint32_t sg = (uint32_t)lane_groups(g->ctx);
    uint32_t texel = (uint32_t)vkd_texel_ok(g, 2, A, B);
    // the quad walks (shader constants 12-14) read vec4 texel views and share them among lane groups
    int walk4 = texel && sg && !quads_off();
    // quads of k (constants 12, 13): A's rows (TA = 0) and B's columns (TB = 1) are contiguous in
    // k; K, the leading dimension and the batch stride in whole quads
    int quads = walk4 && pc->K % 4 == 0;
    // A transposed (constant 12 with TA = 1): its columns as quads of rows at one k, M in whole
    // quads, any K. 128x128x128 (a linear layer's weight gradient) at 22.0 GFLOP/s on one thread
    // at 8 lanes, 19.4 through the scalar gathers (README, Performance); no change at 16 lanes
    uint8_t aq = (ta ? walk4 && pc->M % 4 == 0 : quads) && pc->lda % 4 == 0 && pc->sA % 4 == 0 && vkd_vec4_ok(1, A);
    uint8_t bq = quads && tb && pc->ldb % 4 == 0 && pc->sB % 4 == 0 && vkd_vec4_ok(1, B);
    // lanes owning quads of columns (constant 14); with TB = 0 B's rows are then read as quads
    int b_rows = !tb && pc->ldb % 4 == 0 && pc->sB % 4 == 0 && vkd_vec4_ok(1, B);
    uint8_t cq = walk4 && t.tn % 4 == 0 && pc->N % 4 == 0 && (tb || b_rows);
    vkd_texel tx[5] = {{1, 0, offsetof(matmul_push, a_first), aq}, {2, 1, offsetof(matmul_push, b_first), bq || (cq && !tb)}};
    int nt = texel ? 2 : 0;
    // the epilogue's reads of R and of the accumulate's C as quads (constant 15)
    int c_quads = cq && pc->ldc % 4 == 0 && pc->sC % 4 == 0 && vkd_vec4_ok(1, C);
    uint8_t eq = c_quads && (pc->flags & (MM_ACCUMULATE | MM_RESIDUAL)) && (!R || vkd_vec4_ok(1, R)) &&
                 vkd_texel_ok(g, 1, C) && (!R || vkd_texel_ok(g, 1, R));
    if (eq && R) tx[nt++] = (vkd_texel){(uint8_t)(na - 1), 2, offsetof(matmul_push, r_first), 1};
    // C's quads stored as 64-bit pairs (matmul_wide) where a lane holds adjacent columns, or
    // as vec4s through a storage binding where the device takes them (matmul_sb: the
    // accumulate's C is read there too, not through a texel view of the buffer it writes)
    const char *wide = vkd_store_variant(g, c_quads, "matmul", "matmul_wide");
    const char *shader = vkd_sbuf_variant(g, wide, "matmul_wide", "matmul_sb", C, tx, &nt, offsetof(matmul_push, c_sfirst));
    if (eq && (pc->flags & MM_ACCUMULATE) && shader == wide) tx[nt++] = (vkd_texel){0, 3, offsetof(matmul_push, c_first), 1};
    uint32_t spec[17] = {(uint32_t)ta, (uint32_t)tb, t.bm, t.bn, t.wg, t.tm, t.tn, sg, texel, t.rm, t.rn, pc->flags,
                         aq, bq, cq, eq, (uint32_t)(sg && g->ctx->lane_bcast)};
    return vkd_graph_dispatch_texel(g, name, shader, spec, 17, vkd_ceil_div(pc->N, t.bn), vkd_ceil_div(pc->M, t.bm),
                                    pc->batch, pc, sizeof *pc, args, na, tx, nt);
}

// C (batch, M, N) = op(A) op(B) [+ bias] [+ C] [+ R]. R (shaped as C) is a residual or a
// gradient already summed: adding it in the GEMM's epilogue saves an add's pass over C.
static int matmul_dispatch(vkd_graph *g, const char *name, vkd_tensor *C, vkd_tensor *A, vkd_tensor *B,
                           vkd_tensor *bias, int bias_rows, int accumulate, vkd_tensor *R, uint32_t batch, uint32_t M,
                           uint32_t N, uint32_t K, int ta, int tb, int shared) {
    matmul_push pc = {.M = M,
                      .N = N,
                      .K = K,
                      .batch = batch,
                      .lda = ta ? M : K,
                      .ldb = tb ? K : N,
                      .ldc = N,
                      .flags = (bias ? MM_BIAS : 0) | (bias && bias_rows ? MM_BIAS_ROWS : 0) |
                               (accumulate ? MM_ACCUMULATE : 0) | (R ? MM_RESIDUAL : 0),
                      .sA = (shared & SHARED_A) ? 0 : M * K,
                      .sB = (shared & SHARED_B) ? 0 : K * N,
                      .sC = M * N,
                      .alpha = 1.0f};
    return mm_record(g, name, &pc, C, A, B, bias, R, ta, tb);
}

int vkd_matmul_view_epilogue_dispatch(vkd_graph *g, const char *name, vkd_mm_view C, vkd_mm_view A, vkd_mm_view B,
                                      uint32_t batch, uint32_t M, uint32_t N, uint32_t K, int ta, int tb,
                                      const vkd_mm_epilogue *ep) {
    if (vkd_graph_failed(g) || !C.t || !A.t || !B.t) return -1;
    // with nothing added after the product, alpha first and alpha last are the same product: the
    // flag only where it changes the result (and the pipeline)
    int adds = ep->bias_rows || ep->R;
    // softmax's backward: R read as the residual is (its quads, constant 15), bias_rows by batch and row
    uint32_t flags = ep->softmax_bwd ? MM_SOFTMAX_BWD | MM_RESIDUAL
                                     : (ep->bias_rows ? MM_BIAS | MM_BIAS_ROWS : 0) | (ep->R ? MM_RESIDUAL : 0) |
                                           (adds && ep->scale != 1.0f ? MM_ALPHA_LAST : 0);
    if (ep->softmax_bwd && (!ep->bias_rows || !ep->R)) {
        vkd_graph_fail(g, "%s: softmax's backward needs its output and its rows' sums", name);
        return -1;
    }
    if (ep->softmax) {
        if (adds || ep->softmax_bwd || !vkd_matmul_softmax_ok(g, N)) {
            vkd_graph_fail(g, "%s: softmax over rows of %u in the GEMM is not available here", name, N);
            return -1;
        }
        flags = MM_SOFTMAX;
    }
    matmul_push pc = {.M = M, .N = N, .K = K, .batch = batch,
                      .lda = A.ld, .ldb = B.ld, .ldc = C.ld,
                      .sA = A.stride, .sB = B.stride, .sC = C.stride,
                      .flags = flags, .alpha = ep->scale};
    return mm_record(g, name, &pc, C.t, A.t, B.t, ep->bias_rows, ep->R, ta, tb);
}

int vkd_matmul_view_dispatch(vkd_graph *g, const char *name, vkd_mm_view C, vkd_mm_view A, vkd_mm_view B,
                             uint32_t batch, uint32_t M, uint32_t N, uint32_t K, int ta, int tb, float alpha) {
    vkd_mm_epilogue ep = {.scale = alpha};
    return vkd_matmul_view_epilogue_dispatch(g, name, C, A, B, batch, M, N, K, ta, tb, &ep);
}

// Shapes of a matmul: a is (B?, M, K) or stored (B?, K, M) when ta; b is
// (B?, K, N) or stored (B?, N, K) when tb, or 2-D and shared by all batches.
typedef struct {
    uint32_t batch, M, N, K;
    int bcast_b;
} mm_shape;

static int mm_shapes(vkd_graph *g, const vkd_tensor *a, const vkd_tensor *b, int ta, int tb, mm_shape *s) {
    char sa[64], sb[64];
    vkd_shape_str(a, sa, sizeof sa);
    vkd_shape_str(b, sb, sizeof sb);
    if (a->ndim < 2 || a->ndim > 3 || b->ndim < 2 || b->ndim > 3 || b->ndim > a->ndim) {
        vkd_graph_fail(g, "matmul: unsupported ranks %s x %s (a: 2-D or 3-D; b: 2-D or same rank as a)", sa, sb);
        return -1;
    }
    int ar = a->ndim - 2, br = b->ndim - 2;
    s->batch = a->ndim == 3 ? (uint32_t)a->shape[0] : 1;
    s->M = (uint32_t)a->shape[ar + (ta ? 1 : 0)];
    s->K = (uint32_t)a->shape[ar + (ta ? 0 : 1)];
    uint32_t kb = (uint32_t)b->shape[br + (tb ? 1 : 0)];
    s->N = (uint32_t)b->shape[br + (tb ? 0 : 1)];
    s->bcast_b = b->ndim == 2 && a->ndim == 3;
    if (kb != s->K || (b->ndim == 3 && b->shape[0] != a->shape[0])) {
        vkd_graph_fail(g, "matmul: shapes %s%s and %s%s do not match", sa, ta ? "^T" : "", sb, tb ? "^T" : "");
        return -1;
    }
    return 0;
}

static void matmul_backward(vkd_graph *g, vkd_tape_entry *e, vkd_tensor *dC) {
    vkd_tensor *a = e->in[0], *b = e->in[1];
    int ta = e->attr.i[0], tb = e->attr.i[1];
    mm_shape s;
    if (mm_shapes(g, a, b, ta, tb, &s)) return;
    if (vkd_tensor_needs_grad(a)) {
        // d op(A) = dC op(B)^T; stored transposed when ta: op(B) dC^T
        vkd_tensor *da = vkd_graph_tensor_like(g, "matmul_bwd_a", a);
        int r = ta ? matmul_dispatch(g, "matmul_bwd_a", da, b, dC, NULL, 0, 0, NULL, s.batch, s.K, s.M, s.N, tb, 1,
                                     s.bcast_b ? SHARED_A : 0)
                   : matmul_dispatch(g, "matmul_bwd_a", da, dC, b, NULL, 0, 0, NULL, s.batch, s.M, s.K, s.N, 0, !tb,
                                     s.bcast_b ? SHARED_B : 0);
        if (!r) vkd_grad_accumulate(g, a, da);
    }
    if (vkd_tensor_needs_grad(b)) {
        // d op(B) = op(A)^T dC; stored transposed when tb: dC^T op(A)
        vkd_tensor *db;
        if (!s.bcast_b) {
            db = vkd_graph_tensor_like(g, "matmul_bwd_b", b);
            if (tb) matmul_dispatch(g, "matmul_bwd_b", db, dC, a, NULL, 0, 0, NULL, s.batch, s.N, s.K, s.M, 1, ta, 0);
            else matmul_dispatch(g, "matmul_bwd_b", db, a, dC, NULL, 0, 0, NULL, s.batch, s.K, s.N, s.M, !ta, 0, 0);
        } else {
            // Shared B: per-batch products accumulated over the batch into one tensor.
            db = vkd_graph_tensor_like(g, "matmul_bwd_b", b);
            int64_t sh[3] = {s.batch, b->shape[0], b->shape[1]};
            vkd_tensor *per = vkd_graph_tensor(g, "matmul_bwd_b", 3, sh);
            if (!per) return;
            if (tb) matmul_dispatch(g, "matmul_bwd_b", per, dC, a, NULL, 0, 0, NULL, s.batch, s.N, s.K, s.M, 1, ta, 0);
            else matmul_dispatch(g, "matmul_bwd_b", per, a, dC, NULL, 0, 0, NULL, s.batch, s.K, s.N, s.M, !ta, 0, 0);
            vkd_reduce_cols_dispatch(g, "matmul_bwd_b_sum", db, per, 1, s.batch, b->numel, 1.0f);
        }
        if (!vkd_graph_failed(g)) vkd_grad_accumulate(g, b, db);
    }
}

vkd_tensor *vkd_matmul(vkd_graph *g, vkd_tensor *a, vkd_tensor *b, int ta, int tb) {
    if (!vkd_op_ok(g, 2, a, b)) return NULL;
    mm_shape s;
    if (mm_shapes(g, a, b, ta, tb, &s)) return NULL;
    int64_t sh[3] = {s.batch, s.M, s.N};
    vkd_tensor *c = a->ndim == 3 ? vkd_graph_tensor(g, "matmul", 3, sh) : vkd_graph_tensor(g, "matmul", 2, sh + 1);
    if (!c || matmul_dispatch(g, "matmul", c, a, b, NULL, 0, 0, NULL, s.batch, s.M, s.N, s.K, ta, tb,
                              s.bcast_b ? SHARED_B : 0))
        return NULL;
    vkd_tensor *in[2] = {a, b};
    vkd_tape_entry *e = vkd_tape_push(g, matmul_backward, c, in, 2);
    if (e) e->attr.i[0] = ta, e->attr.i[1] = tb;
    return c;
}

// y (rows, out) = x (rows, in) w^T + bias [+ r]; backward: dx = dy w, dw = dy^T x,
// db = sum_rows dy, dr = dy. When x already has a gradient from another use (a
// residual stream), the dx GEMM adds it in its epilogue instead of an add after it:
// old + dx either way, the same bits. Likewise dw goes straight into w's persistent
// gradient (accumulate) when w has no other use in the graph.
static void linear_backward(vkd_graph *g, vkd_tape_entry *e, vkd_tensor *dy) {
    vkd_tensor *x = e->in[0], *w = e->in[1], *bias = e->in[2], *r = e->nin > 3 ? e->in[3] : NULL;
    uint32_t out = (uint32_t)w->shape[0], in = (uint32_t)w->shape[1], rows = (uint32_t)(x->numel / in);
    if (vkd_tensor_needs_grad(x)) {
        vkd_tensor *old = vkd_grad_pending(g, x);
        vkd_tensor *dx = vkd_graph_tensor_like(g, "linear_bwd_x", x);
        if (dx && !matmul_dispatch(g, "linear_bwd_x", dx, dy, w, NULL, 0, 0, old, 1, rows, in, out, 0, 0, 0))
            vkd_grad_set(g, x, dx);  // old + dx, or dx alone
    }
    vkd_tensor *pg = vkd_grad_param_target(g, w);
    if (pg) {
        matmul_dispatch(g, "linear_bwd_w", pg, dy, x, NULL, 0, 1, NULL, 1, out, in, rows, 1, 0, 0);
    } else if (vkd_tensor_needs_grad(w)) {
        vkd_tensor *dw = vkd_graph_tensor_like(g, "linear_bwd_w", w);
        if (dw && !matmul_dispatch(g, "linear_bwd_w", dw, dy, x, NULL, 0, 0, NULL, 1, out, in, rows, 1, 0, 0))
            vkd_grad_accumulate(g, w, dw);
    }
    if (bias && vkd_tensor_needs_grad(bias)) vkd_grad_from_cols(g, "linear_bwd_b", bias, dy, rows);
    if (r && vkd_tensor_needs_grad(r)) vkd_grad_accumulate(g, r, dy);
}

static vkd_tensor *linear_op(vkd_graph *g, const char *name, vkd_tensor *x, vkd_tensor *w, vkd_tensor *bias,
                             vkd_tensor *r) {
    if (!vkd_op_ok(g, 2, x, w) || (r && !vkd_op_ok(g, 1, r))) return NULL;
    char sx[64], sw[64];
    vkd_shape_str(x, sx, sizeof sx);
    vkd_shape_str(w, sw, sizeof sw);
    if (w->ndim != 2 || x->shape[x->ndim - 1] != w->shape[1] || (bias && bias->numel != w->shape[0])) {
        vkd_graph_fail(g, "%s: input '%s' %s does not fit weight '%s' %s (out, in)%s", name, x->name, sx, w->name, sw,
                       bias && bias->numel != w->shape[0] ? " and its bias" : "");
        return NULL;
    }
    uint32_t out = (uint32_t)w->shape[0], in = (uint32_t)w->shape[1], rows = (uint32_t)(x->numel / in);
    int64_t sh[VKD_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++) sh[i] = x->shape[i];
    sh[x->ndim - 1] = out;
    vkd_tensor *y = vkd_graph_tensor(g, name, x->ndim, sh);
    if (y && r && !vkd_same_shape(r, y)) {
        char sr[64], sy[64];
        vkd_shape_str(r, sr, sizeof sr);
        vkd_shape_str(y, sy, sizeof sy);
        vkd_graph_fail(g, "%s: residual '%s' %s is not shaped as the output %s", name, r->name, sr, sy);
        return NULL;
    }
    if (!y || matmul_dispatch(g, name, y, x, w, bias, 0, 0, r, 1, rows, out, in, 0, 1, 0)) return NULL;
    vkd_tensor *inp[4] = {x, w, bias, r};
    vkd_tape_push(g, linear_backward, y, inp, r ? 4 : 3);
    return y;
}

vkd_tensor *vkd_linear(vkd_graph *g, vkd_tensor *x, vkd_tensor *w, vkd_tensor *bias) {
    return linear_op(g, "linear", x, w, bias, NULL);
}

vkd_tensor *vkd_linear_add(vkd_graph *g, vkd_tensor *x, vkd_tensor *w, vkd_tensor *bias, vkd_tensor *r) {
    return r ? linear_op(g, "linear_add", x, w, bias, r) : vkd_linear(g, x, w, bias);
}
