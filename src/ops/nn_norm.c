// Group norm (torch.nn.GroupNorm) over (N, C, *spatial), forward and backward.
// Shader: shaders/groupnorm.comp (MODE 0 forward, 1 dx, 2 dw/db).
#include <stdio.h>

#include "ops/ops.h"

// (128 bytes: groups << 10 | flags in gf, the forward's eps and the backward's dx_scale in eps_s;
// where x's gradient so far comes as two terms, both through texel views, old's 8 bytes hold the
// second's first vec4 instead of an address)
typedef struct {
    VkDeviceAddress y, x, w, b, stats, sums, cb, dy, dw, db, old;
    uint32_t N, C, S, gf;
    float eps_s;                           // MODE 0: eps; MODE 1: dx (old + dx) times this, in channels < fold_c
    int32_t x_first, dy_first, old_first;  // texel views (set at compile)
    int32_t y_sfirst;                      // groupnorm_sb: y's storage binding (set at compile)
    uint32_t fold_c;
} gn_push;
#define GN_MAX_GROUPS (1u << 22)  // (gf's bits)

typedef struct {
    int groups, act;  // act 1: SiLU after the affine
    float eps;
    float fold;      // the backward: the factor folded into x's gradient (vkd_grad_fold_lead), else 1
    int64_t fold_c;  // the channels it covers (a concat's first part, or all)
    vkd_tensor *pix_sums;  // MODE 1: (N, C), where the sums over the pixels of x's gradient go, or NULL
    vkd_tensor *cb;        // MODE 1 with GN_SUM_N: where their sums over the samples go (a bias's gradient), or NULL
    vkd_tensor *old2;      // MODE 1: a second term of x's gradient so far, not yet added to old, or NULL
} gn_attr;

// A workgroup reduces one row of C/groups*S elements (MODE 2: one channel's N*S).
static uint32_t gn_wg(const vkd_graph *g, const vkd_tensor *x, int groups, uint32_t mode) {
    uint64_t N = (uint64_t)x->shape[0], C = (uint64_t)x->shape[1], S = x->numel / (N * C);
    uint64_t len = mode == 2 ? N * S : (C / (uint64_t)groups) * S;
    if (vkd_norm_subgroup_reduce(g->ctx)) return g->ctx->f.subgroup_size;
    return len <= 64 ? 64 : VKD_WG;
}

// Rows walked channel by channel (the shader's CMAJOR): S at least the workgroup.
static int gn_channel_major(const vkd_graph *g, const vkd_tensor *x, int groups) {
    uint64_t N = (uint64_t)x->shape[0], C = (uint64_t)x->shape[1], S = x->numel / (N * C);
    return S >= gn_wg(g, x, groups, 1);
}

// The input gradient's walk of a group's samples in one workgroup (gn_backward_sum_n, with dw and
// db): CPU devices, at most 16 channels a group.
static int gn_sum_n(const vkd_graph *g, const vkd_tensor *x, int groups) {
    return g->ctx->f.type == VK_PHYSICAL_DEVICE_TYPE_CPU && x->shape[1] / groups <= 16 && !vkd_env_off("VKD_GN_SUM_N");
}

// How MODE 1 gives dw and db (with the channel-major walk): GN_TERMS, their per-sample terms
// (N, C) for a sum after it; GN_SUM_N, the sums themselves, one workgroup a group walking the
// samples in order; GN_ACC_W, GN_ACC_B: those sums added into dw, db (persistent gradients);
// GN_ACC_CB: the pixel sums' sums over the samples added into at->cb.
enum { GN_TERMS = 0, GN_SUM_N = 1, GN_ACC_W = 2, GN_ACC_B = 4, GN_ACC_CB = 8 };

// The most quads a lane holds in the backward's registers: 48, or 64 for a long run (or one not
// said: a benchmark). 64 quads (32x32 planes, 4 channels a group: unet_fmnist's and
// ddpmpp_reduced's top level) took 2.37-2.52 ms a call against 2.68 fetched twice at batch 16, but
// their pipeline 94-124 ms to create against 31, in every process (lavapipe's NIR passes; LLVM's
// ~1.2 s more only the first time, Mesa's cache keeps it): so where x's elements times the runs
// reach 2^28 (512 runs of that shape at batch 16, ~100-150 ms saved).
static uint64_t gn_regs_max(const vkd_graph *g, const vkd_tensor *x) {
    int64_t runs = vkd_graph_runs(g);
    return runs <= 0 || (double)x->numel * (double)runs >= 268435456.0 ? 64 : 48;
}

// x is (N, C, S); stats is (2, N*groups), the rows' mean and rstd. MODE 2 writes dw, db and reads
// w, b only to recompute the pre-activation of a fused SiLU. MODE 1 with old
// (x's gradient so far) writes old + dx, and dw, db as `how` says; with at->pix_sums, the sums
// over the pixels of what it writes, (N, C); with at->old2, (old + old2) + dx, the bits of the add
// it replaces followed by old + dx (where both come through vec4 views; else that add first).
static int gn_dispatch(vkd_graph *g, const char *name, uint32_t mode, vkd_tensor *y, vkd_tensor *x, vkd_tensor *w,
                       vkd_tensor *b, vkd_tensor *stats, vkd_tensor *dy, vkd_tensor *dw,
                       vkd_tensor *db, vkd_tensor *old, const gn_attr *at, int how) {
    uint64_t N = (uint64_t)x->shape[0], C = (uint64_t)x->shape[1], S = x->numel / (N * C);
    vkd_tensor *psums = mode == 1 && y ? at->pix_sums : NULL;  // (the caller: channel-major walks only)
    vkd_tensor *cb = mode == 1 && y && (how & GN_SUM_N) ? at->cb : NULL;
    uint32_t texel = (uint32_t)vkd_texel_ok(g, dy ? 2 : 1, x, dy);
    uint32_t sgred = vkd_norm_subgroup_reduce(g->ctx), wg = gn_wg(g, x, at->groups, mode);
    // vec4 walks of the channels (modes 0 and 1): S in whole vec4s, a workgroup's worth of them;
    // only the fetched operands need vec4 views (stores are per element). old through a vec4
    // view of its own when it has one: at 16, 32 channels, 32x32 (fused SiLU) the input
    // gradient with old went from 1.84-1.91 to 1.42-1.43 ms a call, and unet_fmnist's 60 at
    // batch 16 from 89-131 to 78-118 ms (VKD_PROFILE, three alternating pairs).
    uint8_t vec4 = texel && mode != 2 && S % 4 == 0 && S / 4 >= wg && vkd_vec4_ok(2, x, dy);
    uint8_t old4 = vec4 && old && vkd_texel_ok(g, 1, old) && vkd_vec4_ok(1, old);
    vkd_tensor *old2 = mode == 1 ? at->old2 : NULL;
    if (old2 && !(old4 && vkd_texel_ok(g, 1, old2) && vkd_vec4_ok(1, old2))) {
        old = vkd_add(g, old, old2);  // the add the pair put off
        old2 = NULL;
        if (!old) return -1;
        old4 = vec4 && vkd_texel_ok(g, 1, old) && vkd_vec4_ok(1, old);
    }
    uint32_t flags = (w ? 1u : 0u) | (b ? 2u : 0u) | (dw ? 4u : 0u) | (db ? 8u : 0u) | (old ? 16u : 0u) |
                     (how & GN_ACC_W ? 32u : 0u) | (how & GN_ACC_B ? 64u : 0u) | (psums ? 128u : 0u) |
                     (cb ? 256u : 0u) | (cb && (how & GN_ACC_CB) ? 512u : 0u);
    gn_push pc = {.N = (uint32_t)N,
                  .C = (uint32_t)C,
                  .S = (uint32_t)S,
                  .gf = (uint32_t)at->groups << 10 | flags,
                  .eps_s = mode == 0 ? at->eps : at->fold,
                  .fold_c = (uint32_t)at->fold_c};
    vkd_arg args[12];
    vkd_texel tx[5];
    int na = 0, nt = 0;
    if (y) args[na++] = (vkd_arg){offsetof(gn_push, y), VKD_W, y};
    if (texel) tx[nt++] = (vkd_texel){(uint8_t)na, 0, offsetof(gn_push, x_first), vec4};
    args[na++] = (vkd_arg){offsetof(gn_push, x), VKD_R, x};
    if (w) args[na++] = (vkd_arg){offsetof(gn_push, w), VKD_R, w};
    if (b) args[na++] = (vkd_arg){offsetof(gn_push, b), VKD_R, b};
    args[na++] = (vkd_arg){offsetof(gn_push, stats), mode == 0 ? VKD_W : VKD_R, stats};
    if (psums) args[na++] = (vkd_arg){offsetof(gn_push, sums), VKD_W, psums};
    if (cb) args[na++] = (vkd_arg){offsetof(gn_push, cb), how & GN_ACC_CB ? VKD_RW : VKD_W, cb};
    if (dy && texel) tx[nt++] = (vkd_texel){(uint8_t)na, 1, offsetof(gn_push, dy_first), vec4};
    if (dy) args[na++] = (vkd_arg){offsetof(gn_push, dy), VKD_R, dy};
    if (dw) args[na++] = (vkd_arg){offsetof(gn_push, dw), how & GN_ACC_W ? VKD_RW : VKD_W, dw};
    if (db) args[na++] = (vkd_arg){offsetof(gn_push, db), how & GN_ACC_B ? VKD_RW : VKD_W, db};
    if (old4) tx[nt++] = (vkd_texel){(uint8_t)na, 2, offsetof(gn_push, old_first), 1};
    // (with old2, both read through their views only: old's address slot holds old2's first)
    uint16_t old_at = old2 ? VKD_ARG_NO_ADDR : offsetof(gn_push, old);
    if (old) args[na++] = (vkd_arg){old_at, VKD_R, old};
    if (old2) tx[nt++] = (vkd_texel){(uint8_t)na, 3, offsetof(gn_push, old), 1};
    if (old2) args[na++] = (vkd_arg){VKD_ARG_NO_ADDR, VKD_R, old2};
    // A lane's quads of a row held in registers (the shader's RQ, RC): x and dy fetched once, not
    // twice, when each channel is whole quads a lane and the row at most gn_regs_max quads a lane
    // (batch 16, 96 channels, 32x32: 2.19-2.27 ms a call against 2.87-2.90 fetched twice). The
    // forward at most 4: 16 quads (32 channels, 32x32) took 830-1250 us a call against 680-1020
    // fetched twice, 2 quads (64 channels, 8x8) 240-250 against 290-370.
    uint64_t cpg = C / (uint64_t)at->groups, rq = vec4 && (S / 4) % wg == 0 ? S / 4 / wg : 0;
    if (mode == 2 || cpg * rq > (mode == 0 ? 4u : gn_regs_max(g, x)) || vkd_env_off("VKD_GN_REGS")) rq = 0;
    uint32_t nl = mode == 1 && (how & GN_SUM_N) ? (uint32_t)cpg : 0;
    uint32_t spec[12] = {wg, mode, sgred, (uint32_t)at->act, S >= wg, texel, vec4, old4, (uint32_t)rq,
                         rq ? (uint32_t)cpg : 1u, nl, old2 != NULL},
             gx, gy;
    vkd_grid_1d(mode == 2 ? C : nl ? (uint64_t)at->groups : N * (uint64_t)at->groups, 1, &gx, &gy);
    const char *shader = vkd_store_variant(g, vec4, "groupnorm", "groupnorm_wide");
    // y's quads through a storage binding where the device takes them (y is args[0])
    if (y) shader = vkd_sbuf_variant(g, shader, "groupnorm_wide", "groupnorm_sb", y, tx, &nt, offsetof(gn_push, y_sfirst));
    return vkd_graph_dispatch_texel(g, name, shader, spec, 12, gx, gy, 1, &pc, sizeof pc, args, na, tx, nt);
}

// x's gradient: old + dx from the backward's dispatch, times the factor folded in where it is,
// with its pixel sums when the dispatch wrote them
static void set_dx(vkd_graph *g, vkd_tensor *x, vkd_tensor *dx, const gn_attr *at) {
    if (at->fold != 1.0f) vkd_grad_set_folded(g, x, dx);
    else vkd_grad_set(g, x, dx);  // old + dx when x had a gradient already
    dx->pix_sums = at->pix_sums;
    dx->pix_bias = at->cb ? x->pix_bias : NULL;
}

// On CPU devices, dx and dw, db in one dispatch: a workgroup a group walks the samples in order
// and sums their terms of dw, db as the separate sum would (the same bits), with up to 16
// channels a group held in its lanes. The two sums' dispatches were ~119 of a unet_fmnist step's
// 1059, ~90 us each (batch 16, VKD_PROFILE). VKD_GN_SUM_N=0: the per-sample terms and their sums.
static int gn_backward_sum_n(vkd_graph *g, vkd_tensor *x, vkd_tensor *w, vkd_tensor *b, vkd_tensor *bz,
                             vkd_tensor *stats, vkd_tensor *dy, int need_w, int need_b,
                             const gn_attr *at) {
    vkd_tensor *old2, *dx = vkd_graph_tensor_like(g, "groupnorm_bwd", x), *old = vkd_grad_pending_pair(g, x, &old2);
    vkd_tensor *pgw = need_w ? vkd_grad_param_target(g, w) : NULL, *pgb = need_b ? vkd_grad_param_target(g, b) : NULL;
    vkd_tensor *dw = pgw ? pgw : need_w ? vkd_graph_tensor_like(g, "groupnorm_bwd_w", w) : NULL;
    vkd_tensor *db = pgb ? pgb : need_b ? vkd_graph_tensor_like(g, "groupnorm_bwd_b", b) : NULL;
    // The convolution's bias gradient too, the pixel sums summed over the samples in the lanes
    // (no dispatch of its own, ~120 us at batch 16), when the convolution takes x's gradient as
    // written: a residual's scale folded in.
    gn_attr a = *at;
    a.old2 = old2;
    vkd_tensor *cbias = at->pix_sums && x->pix_bias && (x->grad_fold == 0.0f || at->fold != 1.0f) ? x->pix_bias : NULL;
    vkd_tensor *pgc = cbias ? vkd_grad_param_target(g, cbias) : NULL;
    a.cb = pgc ? pgc : cbias ? vkd_graph_tensor_like(g, "groupnorm_bwd_cb", cbias) : NULL;
    int how = GN_SUM_N | (pgw ? GN_ACC_W : 0) | (pgb ? GN_ACC_B : 0) | (pgc ? GN_ACC_CB : 0);
    if (!dx || (need_w && !dw) || (need_b && !db) || (cbias && !a.cb) ||
        gn_dispatch(g, "groupnorm_bwd", 1, dx, x, w, bz, stats, dy, dw, db, old, &a, how))
        return -1;
    set_dx(g, x, dx, &a);
    if (dw && !pgw) vkd_grad_accumulate(g, w, dw);
    if (db && !pgb) vkd_grad_accumulate(g, b, db);
    if (a.cb && !pgc) vkd_grad_accumulate(g, cbias, a.cb);
    return 0;
}

// dx and the per-sample terms of dw, db (N, C) in one pass (the channel-major
// walk), then dw, db as fixed-order sums over the samples.
static int gn_backward_fused(vkd_graph *g, vkd_tensor *x, vkd_tensor *w, vkd_tensor *b, vkd_tensor *bz,
                             vkd_tensor *stats, vkd_tensor *dy, int need_w, int need_b,
                             const gn_attr *at) {
    int64_t N = x->shape[0], C = x->shape[1], sh[2] = {N, C};
    if (gn_sum_n(g, x, at->groups))
        return gn_backward_sum_n(g, x, w, b, bz, stats, dy, need_w, need_b, at);
    vkd_tensor *dx = vkd_graph_tensor_like(g, "groupnorm_bwd", x), *old = vkd_grad_pending(g, x);
    vkd_tensor *pw = need_w ? vkd_graph_tensor(g, "groupnorm_bwd_w", 2, sh) : NULL;
    vkd_tensor *pb = need_b ? vkd_graph_tensor(g, "groupnorm_bwd_b", 2, sh) : NULL;
    if (!dx || gn_dispatch(g, "groupnorm_bwd", 1, dx, x, w, bz, stats, dy, pw, pb, old, at, GN_TERMS)) return -1;
    set_dx(g, x, dx, at);
    vkd_tensor *p[2] = {pw, pb}, *t[2] = {w, b};
    for (int i = 0; i < 2; i++) {
        if (!p[i]) continue;
        if (vkd_grad_from_cols(g, "groupnorm_bwd_wb", t[i], p[i], (uint64_t)N)) return -1;
    }
    return 0;
}

static void gn_backward(vkd_graph *g, vkd_tape_entry *e, vkd_tensor *dy) {
    vkd_tensor *x = e->in[0], *w = e->in[1], *b = e->in[2], *stats = e->saved[0];
    gn_attr at = {e->attr.i[0], e->attr.i[2], e->attr.f[1], 1.0f, x->shape[1], NULL, NULL, NULL};  // attr is a union: i[1] is f[1]
    // b matters to the gradients only through a fused SiLU's pre-activation.
    vkd_tensor *bz = at.act ? b : NULL;
    int need_x = vkd_tensor_needs_grad(x);
    int need_w = w && vkd_tensor_needs_grad(w), need_b = b && vkd_tensor_needs_grad(b);
    if (need_x) at.fold = vkd_grad_fold_lead(g, x, &at.fold_c);  // x's gradient is complete after this one
    // ... when this is x's first reader, so the convolution that made x may take its bias's (and
    // channel add's) gradient from sums of it written by the same pass: a per-channel sum in
    // registers, against a pass of its own over the gradient (54 of a unet_fmnist step's 83
    // reduce_bcast passes, ~250 us each at batch 16)
    if (need_x && x->want_pix_sums && x->first_use == g->tape_pos && gn_channel_major(g, x, at.groups) &&
        !vkd_env_off("VKD_GN_PIX_SUMS"))
        at.pix_sums = vkd_graph_tensor(g, "groupnorm_bwd_sums", 2, (int64_t[]){x->shape[0], x->shape[1]});
    if (need_x && (need_w || need_b) && gn_channel_major(g, x, at.groups)) {
        gn_backward_fused(g, x, w, b, bz, stats, dy, need_w, need_b, &at);
        return;
    }
    if (need_x) {
        vkd_tensor *dx = vkd_graph_tensor_like(g, "groupnorm_bwd", x), *old = vkd_grad_pending(g, x);
        if (dx && !gn_dispatch(g, "groupnorm_bwd", 1, dx, x, w, bz, stats, dy, NULL, NULL, old, &at, GN_TERMS))
            set_dx(g, x, dx, &at);
    }
    at.fold = 1.0f;  // (MODE 2 writes no dx)
    if (need_w || need_b) {
        vkd_tensor *dw = need_w ? vkd_graph_tensor_like(g, "groupnorm_bwd_w", w) : NULL;
        vkd_tensor *db = need_b ? vkd_graph_tensor_like(g, "groupnorm_bwd_b", b) : NULL;
        if (!gn_dispatch(g, "groupnorm_bwd_wb", 2, NULL, x, at.act ? w : NULL, bz, stats, dy, dw, db, NULL, &at, GN_TERMS)) {
            if (dw) vkd_grad_accumulate(g, w, dw);
            if (db) vkd_grad_accumulate(g, b, db);
        }
    }
}

static vkd_tensor *groupnorm(vkd_graph *g, const char *name, vkd_tensor *x, vkd_tensor *w, vkd_tensor *b,
                             const gn_attr *at) {
    if (!vkd_op_ok(g, 1, x)) return NULL;
    char sx[64];
    vkd_shape_str(x, sx, sizeof sx);
    if (x->ndim < 2) {
        vkd_graph_fail(g, "%s of '%s' %s: x must be (N, C, *spatial)", name, x->name, sx);
        return NULL;
    }
    int64_t C = x->shape[1];
    int groups = at->groups;
    if (groups <= 0 || C % groups != 0 || (uint32_t)groups >= GN_MAX_GROUPS) {
        vkd_graph_fail(g, "%s of '%s' %s: %d groups do not divide its %lld channels (or are 2^22 or more)", name,
                       x->name, sx, groups, (long long)C);
        return NULL;
    }
    if ((w && w->numel != C) || (b && b->numel != C)) {
        vkd_graph_fail(g, "%s of '%s' %s: weight '%s' and bias '%s' must have %lld elements (the channels)", name,
                       x->name, sx, w ? w->name : "-", b ? b->name : "-", (long long)C);
        return NULL;
    }
    if (x->numel > UINT32_MAX) {
        vkd_graph_fail(g, "%s of '%s' %s: more elements than 32-bit indexing reaches", name, x->name, sx);
        return NULL;
    }
    int64_t sh[2] = {2, x->shape[0] * groups};  // the rows' mean, then their rstd
    vkd_tensor *y = vkd_graph_tensor_like(g, name, x);
    vkd_tensor *stats = vkd_graph_tensor(g, "groupnorm_stats", 2, sh);
    if (!y || !stats || gn_dispatch(g, name, 0, y, x, w, b, stats, NULL, NULL, NULL, NULL, at, GN_TERMS)) return NULL;
    vkd_tensor *in[3] = {x, w, b};
    vkd_tape_entry *e = vkd_tape_push(g, gn_backward, y, in, 3);
    if (e) {
        e->saved[0] = stats;
        e->attr.i[0] = groups, e->attr.i[2] = at->act;
        e->attr.f[1] = at->eps;
        // x's gradient so far as two terms, added in the walk that takes them (a decoder skip's
        // gradient and a residual's meet there: 12 add passes of a unet_fmnist step)
        int params = (w && vkd_tensor_needs_grad(w)) || (b && vkd_tensor_needs_grad(b));
        e->takes_grad_pair = params && gn_channel_major(g, x, groups) && gn_sum_n(g, x, groups);
    }
    return y;
}

vkd_tensor *vkd_groupnorm(vkd_graph *g, vkd_tensor *x, vkd_tensor *w, vkd_tensor *b, int groups, float eps) {
    return groupnorm(g, "groupnorm", x, w, b, &(gn_attr){groups, 0, eps, 1.0f, 0, NULL, NULL, NULL});
}

vkd_tensor *vkd_groupnorm_silu(vkd_graph *g, vkd_tensor *x, vkd_tensor *w, vkd_tensor *b, int groups, float eps) {
    return groupnorm(g, "groupnorm_silu", x, w, b, &(gn_attr){groups, 1, eps, 1.0f, 0, NULL, NULL, NULL});
}
