// 2-D convolution and transposed convolution (NCHW, dilation 1, groups),
// forward and backward, as implicit GEMMs on shaders/conv2d.comp:
//   conv2d            forward = MODE 0, dx = MODE 1, dw = MODE 2
//   conv_transpose2d  forward = MODE 1, dx = MODE 0, dw = MODE 2
// (a transposed convolution is the data gradient of the convolution that maps
// its output back to its input, so both ops describe themselves by that
// convolution's geometry and share the three shaders).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"

enum { CONV_FWD = 0, CONV_BWD_DATA = 1, CONV_BWD_WEIGHT = 2 };

typedef struct {
    VkDeviceAddress A, B, C, bias, add;
    int32_t nb, cin, cout, h, w, ho, wo, kh, kw, stride, ph, pw, groups, flags, kchunk;
    int32_t a_first, b_first, add_first;  // texel views: where A, B and add start (set at compile)
    float scale;                          // ADD_RESIDUAL
    int32_t c_sfirst;                     // conv2d_sb: where C starts in its storage binding (set at compile)
    int32_t wm;                           // the tile's lane groups along M (not a shader constant)
} conv_push;

// What the forward's store adds after the bias (shader constant 8, ADD, is 1 for both adds; push
// constant flags bit 1 tells a residual from a channel add, bit 2 is the accumulation):
//   ADD_CHANNEL   y = conv + bias + add, add (nb, cout[, 1, 1]): a UNet block's embedding
//   ADD_RESIDUAL  y = (conv + bias + add) * scale, add shaped as y: EDM's residual and skip scale
//   ADD_ACCUM     (weight gradient) C += the sum: into a parameter's persistent gradient
enum { ADD_NONE = 0, ADD_CHANNEL = 1, ADD_RESIDUAL = 2, ADD_ACCUM = 3 };
typedef struct {
    vkd_tensor *t;  // NULL: nothing added
    int kind;
    float scale;
} conv_add;

// The convolution in conv2d terms: x (nb, cin, h, w), w (cout, cin/groups, kh, kw) -> (nb, cout, ho, wo).
// up: the input is a stored x (nb, cin, h/2, w/2) read through a 2x nearest upsampling.
typedef struct {
    int nb, cin, cout, h, w, ho, wo, kh, kw, stride, ph, pw, groups, up;
} conv_geom;

// Register tile TM x TN per lane, WM lane groups along M, lane groups of
// L invocations, workgroup of wg invocations (shader constants 0..6); the
// multiply-adds walk the tile in RM x RN blocks (constants 10, 11).
// shift (constant 13): the kernel's width when the B walk reads rows of taps as windows.
typedef struct {
    uint32_t wg, tm, tn, wm, sg, l, rm, rn, shift;
} conv_tile;

// On lavapipe every buffer load is a scalar loop over the 8 lanes (~16 cycles
// a lane, measured: 7.9 ns per lane-load against ~1 ns for an FMA-pair), so
// the tile is chosen by a cost model of one lane group's k step:
//   (TN + TM/8) loads * 8 lanes * 16 cycles + TM*TN FMAs * 2.5 cycles
// (llvmpipe emits mul + add, and accumulators beyond the registers spill),
// times the lane groups the padded M x N needs. Measured at 16x64x16x16 3x3
// (fwd, CPU time): 16x4 97 ms, 32x8 55, 64x8 49, 32x16 46, 64x16 38; the
// model predicts the same order and ratios within 5%. TM*TN is capped at 256
// and TN at 16. The tile is unrolled, and every process compiles it again
// (lavapipe keeps no pipeline cache; Mesa's disk cache skips only LLVM): NIR
// costs ~0.6 ms an accumulator, a 48x16 tile 0.5 s, and LLVM, the first time,
// seconds. With 256 instead of 1024, whole training iterations (32x32 SiD and
// the teacher's) measured the same within the noise, pipeline creation 35-40%
// and a cold first run 30-55% shorter; only the forward at 64 channels and
// 16x16 or 8x8 lost 5-20% in tests/bench_conv. 64x32 took LLVM minutes.
// On GPUs 16 lane groups per workgroup and TM = 8 keep occupancy up; small M
// (grouped and depthwise convolutions) shrink TM.
// window: the plane size P when a 3x3 convolution's taps can be read as windows
// (conv_window), else 0; the tile then reads them so when its lane groups cover whole runs of
// a plane (P % (L*TN) == 0, shader constant 13). The model is not told: charged at (TN + 1)/3
// B loads a k it chose smaller tiles (TN 4 or 8 with TM 16 or 32) that measured slower than
// the plain model's 32 x 8, and so did capping the window walk's tiles at 128 accumulators
// (its unrolled chunk is 3 times the plain walk's): at 16, 64->64, 16x16 the forward ran at
// 56-60 against 72 GFLOP/s, the data gradient at 49-55 against 68-71.
static conv_tile pick_tile(const vkd_ctx *ctx, int64_t M, int64_t N, int64_t window, int light) {
    int cpu = ctx->f.type == VK_PHYSICAL_DEVICE_TYPE_CPU;
    conv_tile t;
    t.shift = 0;
    // Lane groups exchange A through subgroupShuffle: they need shuffles and a
    // subgroup of at least 4 lanes (llvmpipe at 128 bits has 4).
    uint32_t sgs = ctx->f.subgroup_size;
    t.sg = (ctx->f.subgroup_ops & VK_SUBGROUP_FEATURE_SHUFFLE_BIT) && sgs >= 4 && (sgs & (sgs - 1)) == 0;
    t.l = t.sg && sgs < 8 ? sgs : 8;
    if (!cpu) {
        t.tm = M <= 1 ? 1 : M <= 2 ? 2 : M <= 4 ? 4 : 8;
        t.tn = N <= 8 ? 1 : N <= 16 ? 2 : 4;
    } else {
        static const uint32_t tms[] = {1, 2, 4, 8, 16, 24, 32, 48, 64}, tns[] = {1, 2, 4, 8, 16};
        // cycles of one load for the 8 lanes: texel fetches are a gather, not a lane loop
        double load = ctx->texel ? 8 * 6.4 : 8 * 16.0;
        double best = -1;
        for (size_t i = 0; i < sizeof tms / sizeof *tms; i++)
            for (size_t j = 0; j < sizeof tns / sizeof *tns; j++) {
                uint32_t tm = tms[i], tn = tns[j];
                if (tm * tn > 256 || (tm > 8 && tm % t.l)) continue;
                double groups = (double)vkd_ceil_div((uint64_t)M, tm) * vkd_ceil_div((uint64_t)N, (uint64_t)t.l * tn);
                double cost = groups * (load * (tn + tm / 8.0) + 2.5 * tm * tn);
                if (best < 0 || cost < best) best = cost, t.tm = tm, t.tn = tn;
            }
        // a light convolution's tile (light_conv): one for every shape of at least 8 rows, so one
        // pipeline a mode; fewer rows keep the model's narrow tile (1 x 16, 2 x 16, 4 x 8: as quick)
        if (light && (M >= 8 || t.tm * t.tn > 32)) t.tm = 8, t.tn = 4;
    }
    // the window walk when the tile's lane groups cover whole runs of a plane
    if (window > 0 && t.sg && window % ((int64_t)t.l * t.tn) == 0) t.shift = 3;
    // 4 x 2 blocks: 8 accumulators and 6 operands, in the 16 registers of AVX2. 8 x 1 to 4 x 4
    // measured the same (one lavapipe thread, 32x32 and 16x16 convolutions, within +-10% noise).
    t.rm = 4, t.rn = 2;
    while (t.tm % t.rm) t.rm /= 2;
    while (t.tn % t.rn) t.rn /= 2;
    uint32_t lanes = cpu ? 2 : 16, mt = vkd_ceil_div((uint64_t)M, t.tm);
    t.wm = 1;
    while (t.wm * 2 <= lanes && t.wm < mt) t.wm *= 2;
    t.wg = t.l * lanes;
    return t;
}

// Whether the window walk by quads (QWIN) applies each row of 3 taps as Winograd's F(2, 3)
// (shader constant 16, WINO): four multiplies for two outputs instead of six. CPU devices only:
// llvmpipe has no fused multiply-add and the walk's multiply-adds were ~45% of its time. The walk
// reads the transformed weights in quads (AV4) or makes them (UW, conv_dispatch), in blocks that
// the data gradient allows only for 3x3 kernels, input channels a multiple of 4 and whole tiles
// of rows. The weight gradient's walk over whole input channels (TAPS) takes Winograd's F(3, 2)
// from dy's quads (its caller: AV4).
static int wino_walk(const vkd_ctx *ctx, int mode, const conv_geom *c, const conv_tile *t, int64_t M) {
    if (ctx->f.type != VK_PHYSICAL_DEVICE_TYPE_CPU || c->kw != 3 || t->l % 4 || vkd_env_off("VKD_CONV_WINO"))
        return 0;
    return mode != CONV_BWD_DATA || (c->kh == 3 && (c->cin / c->groups) % 4 == 0 && t->tm % 4 == 0 && M % t->tm == 0);
}

// The weight gradient's Winograd walk as F(3, 4), not F(3, 2) (see conv_dispatch)
static int f34_on(void) { return !vkd_env_off("VKD_CONV_F34"); }

// A forward's 2-D Winograd factors kept for its data gradient (see winograd_weights)
static int keep_factors_off(void) { return vkd_env_off("VKD_CONV_KEEP_U"); }

// The weight gradient's geometry for F(3, 4) in both directions (conv_dispatch; shader: WINO = 4 in
// MODE 2): a 3x3 kernel with padding 1 at stride 1 on a CPU device, no groups, rows in fours and at
// least 32 wide. Its chunks are whole bands of 4 rows (conv_weight_grad rounds them so).
// tests/bench_conv, best of 20, ms at 16 rows (the 2-D walk's tile) against F(3, 4) along the rows:
// 32->32 at 32x32 2.29 against 3.10, 64->32 4.42 against 5.97, 96->32 6.75 against 9.00, 64->64
// (the row walk at 32 rows) 8.81 against 9.98; but 64->64 at 16x16 2.73 against 2.57, at 8x8
// 1.04 against 0.80, 128->64 at 16x16 5.46 against 5.27 (at 32 rows 3.03, 1.13, 5.86: its
// operands outgrow the stack's cache). Its pipelines take LLVM ~1.5 s longer to compile.
static int wgrad_2d(const vkd_ctx *ctx, const conv_geom *c) {
    return ctx->f.type == VK_PHYSICAL_DEVICE_TYPE_CPU && c->kh == 3 && c->kw == 3 && c->ph == 1 && c->pw == 1 &&
           c->stride == 1 && c->groups == 1 && c->ho == c->h && c->wo == c->w && c->h % 4 == 0 && c->w >= 32 &&
           !vkd_env_off("VKD_CONV_W44");
}

// The Winograd walks' tiles. F(2, 3) and F(3, 2): the gradients in 16 rows (whole tiles, as their
// quads of A need), where the walks without Winograd are faster at 32. Measured at batch 16: the
// data gradient at 32->32, 32x32 and 64->64, 16x16 (best of 4 alternating runs) 2.64 and 2.32 ms
// against 2.89 and 2.59 at 32 rows; the weight gradients of a unet_fmnist step 183-184 ms against
// 199-202 at 32 (at 8: 229-233). The forward keeps 32 (2.98 and 2.72 ms against 3.17 and 2.88
// at 16). F(4, 3) (f43; P the plane, whose runs a lane group's columns must not cross): the
// forward at 16 x 16 where a plane holds whole runs of 16 quads a lane group, else the planner's
// tile, and the data gradient at 32 x 8. tests/bench_conv, best of 10, two rounds, forward / data
// gradient GFLOP/s at 16, 32->32, 32x32 and 16, 64->64, 16x16: 74-82 / 72-81 and 89-99 / 87-97
// against 80-82 / 76-78 and 88-91 / 79-82 at the forward's 32 x 8 and the gradient's 16 x 8;
// 16 x 32, 8 x 16, 64 x 8 slower for the forward, 24 x 8, 8 x 16 for the data gradient. At
// 64->64, 8x8 the forward at 32 x 8 ran at 80-81 against 73-74 at 16 x 8. F(3, 4) (the weight
// gradient with f43 set): 32 rows where M holds two tiles of them, else 16. bench_conv at 64->64,
// 16x16 and 128->64, 16x16: 103-108 and 105-111 GFLOP/s against 86-95 and 92-95 at 16 rows; the
// weight gradients of a unet_fmnist step (VKD_PROFILE, six alternating pairs after an outlier)
// 236-267 ms against 241-263 (means 244 and 252). At 32->32, 32x32 (one tile of 32) 52-55
// against 85.
// After a Winograd walk set its tile's rows and columns: the lane groups along M (up to the
// workgroup's, no more than M's tiles) and register blocks that divide the tile.
static void fit_tile(conv_tile *t, int64_t M) {
    uint32_t mt = vkd_ceil_div((uint64_t)M, t->tm), lanes = t->wg / t->l;
    t->wm = 1;
    while (t->wm * 2 <= lanes && t->wm < mt) t->wm *= 2;
    while (t->tm % t->rm) t->rm /= 2;
    while (t->tn % t->rn) t->rn /= 2;
}

static void wino_tile(conv_tile *t, int mode, int64_t M, int64_t P, int f43) {
    if (f43 && mode == CONV_FWD) {
        if (M % 16 == 0 && P % (16 * (int64_t)t->l) == 0) t->tm = 16, t->tn = 16;
    } else if (f43 && mode == CONV_BWD_WEIGHT) {
        t->tm = M % 64 == 0 ? 32 : M % 16 == 0 ? 16 : t->tm;
    } else if (f43) {
        t->tm = M % 32 == 0 ? 32 : M % 16 == 0 ? 16 : t->tm;
    } else if (mode != CONV_FWD && t->tm > 16 && M % 16 == 0) {
        t->tm = 16;
    }
    fit_tile(t, M);
}

// Winograd in both directions, F(2, 3) down the columns times F(4, 3) along the rows (shader:
// WINO = 3), where a lane group's 8L-pixel blocks are whole pairs of rows: a 3x3 kernel with
// padding 1 (conv_window: stride 1, the output the input's size), no groups, rows of 4 to 4L
// pixels dividing 4L, an even number of them, planes of whole runs of 16L pixels, and M whole
// tiles of the tile's rows (the data gradient reads its rows of u as one block). Its tile: 16
// rows (8 where M is not a multiple of 16) and 16 columns, two 2 x 4 tiles a lane.
// tests/bench_conv, best of 10, GFLOP/s of the forward and the data gradient at 16, 32->32,
// 32x32 and at 16, 64->64, 16x16: 92-102 and 109-115 at 16 x 16, against 79-84 and 94-99 at
// 8 x 16, 75-79 and 87-90 at 16 x 8, 74-79 and 96-98 at 32 x 16; F(4, 3) along the rows
// measured 81-89 and 92-105 in the same session. 8x8 planes (64 pixels, one 16 x 8 tile's run)
// keep F(4, 3) along the rows: at 64->64 the 2-D walk ran at 80-86 (forward) and 82-90 (data
// gradient) against 86-95 and 86-96, at 128->64 96-103 against 99-107 (best of 20, four pairs).
// VKD_CONV_W2D=0: F(4, 3) along the rows only; VKD_CONV_W44=0: F(2, 3) down the columns always.
static int wino2d_tile(conv_tile *t, const conv_geom *c, int64_t M, int64_t P) {
    const int64_t L = t->l;
    if (c->kh != 3 || c->ph != 1 || c->pw != 1 || c->groups != 1 || c->w % 4 || (4 * L) % c->w || c->h % 2 ||
        M % 8 || P % (16 * L) || vkd_env_off("VKD_CONV_W2D"))
        return 0;
    // F(4, 3) in both directions (shader: WINO = 4) where the rows come in fours and the planes in
    // whole runs of 32L pixels: two 4 x 4 tiles a lane (TN = 32), 16 rows (8 where M is not a
    // multiple of 16). tests/bench_conv, best of 20, ms of the forward and the data gradient:
    // 16, 32->32, 32x32 2.72-2.84 against WINO = 3's 2.82-2.95; 64->64, 16x16 2.30-2.36
    // against 2.48-2.51; 128->64, 16x16 4.09 and 4.50 against 4.42 and 4.81. Other tiles
    // measured (TM x TN): 16 x 16 2.81-3.03 and 2.49-2.50 at the first two; 8 x 32 2.82-2.88
    // and 2.30-2.33; 32 x 32 2.71-2.86 and 2.24-2.32; 16 x 64 2.65-2.73 and 2.48-2.50; with one
    // channel a chunk instead of two (the shader's RC), 16 x 32 took 2.90-2.95 and 2.44-2.45.
    if (c->h % 4 == 0 && P % (32 * L) == 0 && !vkd_env_off("VKD_CONV_W44")) {
        t->tm = M % 16 == 0 ? 16 : 8, t->tn = 32, t->rm = 4, t->rn = 2;
        fit_tile(t, M);
        return 2;
    }
    // (the shader's register block along the tiles is RN where it divides their count, TN / 8)
    t->tm = M % 16 == 0 ? 16 : 8, t->tn = 16, t->rm = 4, t->rn = 2;
    fit_tile(t, M);
    return 1;
}

typedef struct {
    uint64_t w, u;
    uint32_t rows;
    int32_t w_first;
    int32_t u_sfirst;  // winograd_sb: u's storage binding (set at compile)
} wino_push;

// u (w0, w1, kh, 4) = each row of 3 taps of w (w0, w1, kh, 3) as Winograd F(2, 3)'s four factors
// (shaders/winograd.comp), recorded before the convolution that reads it; 4 rows an invocation
// through a vec4 view of w where the rows come in fours. f43: F(4, 3)'s six, u (w0, w1, kh, 6),
// from the reversed rows when flip (the data gradient's).
// kept (may be NULL): 2-D factors made for the same weights before (taken if their shape matches),
// and where new ones are left for the next reader.
static vkd_tensor *winograd_weights(vkd_graph *g, vkd_tensor *w, int f43, int flip, int w2d, vkd_tensor **kept) {
    int64_t sh[4] = {w->shape[0], w->shape[1], w2d ? 1 : w->shape[2], w2d == 2 ? 36 : w2d ? 24 : f43 ? 6 : 4};
    // the 2-D factors, never flipped, are the same for a forward and its data gradient
    int share = kept && w2d && !keep_factors_off();
    if (share && *kept && !memcmp((*kept)->shape, sh, sizeof sh)) return *kept;
    vkd_tensor *u = vkd_graph_tensor(g, "conv2d_winograd_w", 4, sh);
    if (!u) return NULL;
    if (share) *kept = u;
    wino_push pc = {.rows = (uint32_t)(w->numel / (w2d ? 9 : 3))};
    vkd_arg args[2] = {{offsetof(wino_push, u), VKD_W, u}, {offsetof(wino_push, w), VKD_R, w}};
    uint8_t quads = pc.rows % 4 == 0 && vkd_texel_ok(g, 1, w) && vkd_vec4_ok(2, w, u);
    vkd_texel tx[2] = {{1, 0, offsetof(wino_push, w_first), 1}};
    int nt = quads;
    uint32_t spec[5] = {64, quads, (uint32_t)f43, (uint32_t)flip, (uint32_t)w2d}, gx, gy;
    vkd_grid_1d(quads ? pc.rows / 4 : pc.rows, spec[0], &gx, &gy);
    // u's quads through a storage binding on a CPU device (winograd_sb): the stores were this
    // pass's time, 0.5 ms for a 64->64 kernel's 147k factors as 64-bit pairs
    const char *shader = vkd_store_variant(g, quads, "winograd", "winograd_wide");
    shader = vkd_sbuf_variant(g, shader, "winograd_wide", "winograd_sb", u, tx, &nt, offsetof(wino_push, u_sfirst));
    return vkd_graph_dispatch_texel(g, "conv2d_winograd_w", shader, spec, 5, gx, gy, 1, &pc, sizeof pc, args, 2, tx, nt)
               ? NULL
               : u;
}

// A 1x1 convolution at stride 1 without padding, groups or upsampling: per sample a GEMM,
// y_b (cout, P) = w (cout, cin) x_b (cin, P), and its data gradient dx_b = w^T dy_b.
static int pointwise(const conv_geom *c) {
    return c->kh == 1 && c->kw == 1 && c->stride == 1 && c->ph == 0 && c->pw == 0 && c->groups == 1 && !c->up;
}

// Whether a convolution takes the light walk (pick_tile's light): the plain walk with a tile of at
// most 32 accumulators, no windows, no Winograd, where the run is too short to repay the fast
// walks' creation. lavapipe creates every pipeline again in every process: 0.1-0.6 s of CPU each
// for the Winograd and window walks (unrolled tiles of 256-512 accumulators), ~50 ms for the 8 x 4
// tile, which the light convolutions of a mode share whatever their shapes. In tests/bench_conv
// (forward + both gradients, best of 20, docs/performance_history.md) the light walk took 0.3-1.6 s
// less to create a convolution's three modes and ran ~0.13 ns a multiply-add slower (2.2-3.7x from
// 9.4M multiply-adds a dispatch up; the same at 1.2M). So a mode of a run under 2^28 of them
// (g->samples x one sample's) loses at most ~35 ms for the ~0.1-0.5 s it saves. (At 2^30 the main
// job's 100-step distillation took it for its 1- and 16-channel convolutions, whose fast walks are
// quick to create: the same pipeline count, a slower walk.) Decided per sample, not per dispatch,
// so a sampler's images do not depend on its batch. VKD_CONV_LIGHT=0: never.
static int light_conv(const vkd_graph *g, const conv_geom *c) {
    if (g->ctx->f.type != VK_PHYSICAL_DEVICE_TYPE_CPU || g->samples <= 0 || vkd_env_off("VKD_CONV_LIGHT")) return 0;
    double macs = (double)c->ho * c->wo * c->cout * (c->cin / c->groups) * c->kh * c->kw;
    return macs * (double)g->samples < 268435456.0;
}

// The plane size P = ho*wo when this convolution's GEMM can read its taps as windows (shader
// constant 13): a 3x3 kernel at stride 1 with the output the input's size, x not read through
// an upsampling, on a CPU device (where a gather costs ~50 instructions and the shuffles that
// replace it a few) whose operands are texel views (the caller's test: through buffer
// addresses, the walk's lane loops took LLVM ~10 s a pipeline to compile in test_conv_bda).
// Else 0 (so also for a light convolution, light_conv). The forward and the data gradient then
// read windows of pixels; the weight gradient reads x's rows as quads when weight_window holds.
static int64_t conv_window(const vkd_graph *g, int mode, const conv_geom *c) {
    if (vkd_env_off("VKD_CONV_WINDOW")) return 0;  // the plain walk (benchmarks, tests)
    if (g->ctx->f.type != VK_PHYSICAL_DEVICE_TYPE_CPU || light_conv(g, c)) return 0;
    // a 1x1 kernel's weight gradient: a chunk's k's are consecutive pixels of x, read as quads
    if (mode == CONV_BWD_WEIGHT && pointwise(c)) return (int64_t)c->ho * c->wo;
    if (c->stride != 1 || c->kw != 3 || c->ho != c->h || c->wo != c->w) return 0;
    // x read through the upsampling (the forward and the weight gradient; the data gradient's
    // operand is dy): only by the forward's 2-D Winograd walk and the weight gradient's walk by
    // whole channels (conv_dispatch falls back to the plain walk where those do not apply), whose
    // half quads of x need x's rows of whole quads
    if (c->up && mode != CONV_BWD_DATA && c->w % 8) return 0;
    return (int64_t)c->ho * c->wo;
}

// The weight gradient's window walk (constant 13 in MODE 2): a chunk's L k's are a run of one
// row of x when rows and the split's chunks hold whole runs, and x is read as quads (a vec4
// view) instead of a gather per k. At 16, 64->64, 16x16 the weight gradient went from 50-59 to
// 65-76 GFLOP/s (best of 20 replays, three alternating pairs), at 32->32, 32x32 from 45-53 to
// 47-60.
static int weight_window(const conv_geom *c, const conv_tile *t, int64_t window, int64_t kchunk, vkd_tensor *x) {
    return window > 0 && t->sg && c->w % t->l == 0 && kchunk % t->l == 0 && vkd_vec4_ok(1, x);
}

// The 3x3 weight gradient's walk by whole channels (shader constant 14, TAPS): lane l owns the 9
// taps of one input channel, so the 3 rows of x a chunk reads serve 3 taps each (12 vec4
// fetches a chunk for 72 values of B, where the column walk took 24 for 64). For at least 16
// output channels (M); fewer keep the column walk's narrow tiles. tests/bench_conv, best of 10,
// two rounds: at 16, 32->32, 32x32 59-61 -> 85-90 GFLOP/s; 64->64, 16x16 73-77 -> 73-94;
// 128->64, 16x16 70-82 -> 93-98; 64->64, 8x8 66-67 -> 68-94. Fewer output channels too, in a tile
// of 16 rows mostly empty: there the column walk's narrow tiles gather x for every k, and the
// taps' loads are what costs, not the products. Best of 10 at batch 16, ms: 32->1 at 32x32 (a
// UNet's last convolution) 2.41 -> 1.65, 32->3 2.54 -> 1.66, 32->8 3.14 -> 1.70, 64->8 at 16x16
// 1.42 -> 0.97 (4 rows a tile instead of 16: no faster). VKD_CONV_TAPS=0 turns it off.
static int taps_walk(const conv_geom *c, int64_t M) {
    return c->kh == 3 && c->kw == 3 && c->ph == 1 && c->pw == 1 && M >= 1 && !vkd_env_off("VKD_CONV_TAPS");
}

// Its tile: 9 columns a lane (multiply-adds in 4 x 3 blocks) and 32 rows (16 where M is not a
// multiple of 32: a ragged tile of 32 wastes more than 16 rows lose; 16 measured 3-15% below 32
// on the shapes above, 24 far below both).
static void taps_tile(conv_tile *t, int64_t M) {
    t->tn = 9, t->rn = 3, t->tm = M % 32 == 0 ? 32 : 16, t->rm = 4;
    t->wm = vkd_ceil_div((uint64_t)M, t->tm) >= 2 ? 2 : 1;
}

// On CPU devices the forward and the data gradient of a pointwise convolution run as batched GEMMs
// (shaders/matmul.comp) over views of x, w and y: lanes own quads of pixels there, so a k's B
// values are TN/4 vec4 fetches instead of TN gathers, and w's rows quads of k. In a unet_fmnist
// step (batch 16) the 1x1 convolutions (skips, attention's qkv and projection) ran at 15-45 GFLOP/s
// in the convolution shader, whose plain walk gathers B; as GEMMs at 37-71 (see
// docs/performance_history.md). Same k order, same epilogue order: the same bits. GPUs keep the
// convolution shader (not measured there). VKD_CONV_GEMM=0 turns it off. A light convolution
// (light_conv) stays in the convolution shader: its light walk is the 3x3 convolutions' pipeline,
// where the GEMM would be pipelines of its own (the same bits either way).
static int pointwise_gemm(const vkd_graph *g, const conv_geom *c) {
    return pointwise(c) && g->ctx->f.type == VK_PHYSICAL_DEVICE_TYPE_CPU && !vkd_env_off("VKD_CONV_GEMM") &&
           !light_conv(g, c);
}

// y (nb, cout, P) = (w x_b + bias [+ res]) * scale, one GEMM a sample (batch = nb, w shared).
static int pointwise_forward(vkd_graph *g, vkd_tensor *y, vkd_tensor *w, vkd_tensor *x, vkd_tensor *bias,
                             const conv_add *ad, const conv_geom *c) {
    uint32_t P = (uint32_t)c->ho * (uint32_t)c->wo, ci = (uint32_t)c->cin, co = (uint32_t)c->cout;
    vkd_mm_epilogue ep = {.bias_rows = bias, .R = ad ? ad->t : NULL, .scale = ad ? ad->scale : 1.0f};
    return vkd_matmul_view_epilogue_dispatch(g, "conv2d", (vkd_mm_view){y, P, co * P}, (vkd_mm_view){w, ci, 0},
                                             (vkd_mm_view){x, P, ci * P}, (uint32_t)c->nb, co, P, ci, 0, 0, &ep);
}

// dx (nb, cin, P) = w^T dy_b [+ old]: w stored (cout, cin) is A transposed. old, the gradient x
// already has from another use, is added in the epilogue instead of by an add's pass after it
// (old + dx either way, the same bits).
static int pointwise_data_grad(vkd_graph *g, vkd_tensor *dx, vkd_tensor *w, vkd_tensor *dy, vkd_tensor *old,
                               const conv_geom *c) {
    uint32_t P = (uint32_t)c->h * (uint32_t)c->w, ci = (uint32_t)c->cin, co = (uint32_t)c->cout;
    vkd_mm_epilogue ep = {.R = old, .scale = 1.0f};
    return vkd_matmul_view_epilogue_dispatch(g, "conv2d_bwd_data", (vkd_mm_view){dx, P, ci * P},
                                             (vkd_mm_view){w, ci, 0}, (vkd_mm_view){dy, P, co * P},
                                             (uint32_t)c->nb, ci, P, co, 1, 0, &ep);
}

// shaders/conv2d.comp's walks, one module each (its VKD_CONV_WALK), with their stores of quads
// as 64-bit pairs (_wide) and as vec4s through a storage binding (_sb): the window walks' only.
typedef struct {
    const char *plain, *wide, *sb;
} conv_module;

// The walk the constants MODE, SHIFT and WINO pick, as the shader's conditions say; NULL where
// they would run none or more than one (the host never asks for that).
static const conv_module *conv_walk_module(uint32_t mode, uint32_t shift, uint32_t wino) {
    static const conv_module walks[4] = {{"conv2d_wino", "conv2d_wino_wide", "conv2d_wino_sb"},
                                         {"conv2d_win", "conv2d_win_wide", "conv2d_win_sb"},
                                         {"conv2d_wgw", NULL, NULL},
                                         {"conv2d", NULL, NULL}};
    const int in[4] = {wino >= 3 && mode != 2, shift && mode != 2 && wino < 3, mode == 2 && wino == 4,
                       (!shift || mode == 2) && !(mode == 2 && wino == 4)};
    if (in[0] + in[1] + in[2] + in[3] != 1) return NULL;
    return &walks[in[0] ? 0 : in[1] ? 1 : in[2] ? 2 : 3];
}

// One implicit GEMM. For MODE 2, C holds `splits` slices of the weight gradient.
// ad (MODE 0, may be NULL): what the store adds after the bias.
static int conv_dispatch(vkd_graph *g, const char *name, int mode, vkd_tensor *C, vkd_tensor *A, vkd_tensor *B,
                         vkd_tensor *bias, const conv_add *ad, const conv_geom *c, int splits, int kchunk,
                         vkd_tensor **kept) {
    vkd_tensor *add = ad ? ad->t : NULL;
    int accum = ad && ad->kind == ADD_ACCUM, G = c->groups, s = c->stride;
    int64_t M, N;
    uint32_t gz;
    if (mode == CONV_FWD) {
        M = c->cout / G, N = (int64_t)c->nb * c->ho * c->wo, gz = (uint32_t)G;
    } else if (mode == CONV_BWD_DATA) {
        // the largest phase: ceil(h/s) x ceil(w/s) input pixels
        M = c->cin / G, N = (int64_t)c->nb * ((c->h + s - 1) / s) * ((c->w + s - 1) / s), gz = (uint32_t)(G * s * s);
    } else {
        M = c->cout / G, N = (int64_t)(c->cin / G) * c->kh * c->kw, gz = (uint32_t)(G * splits);
    }
    conv_push pc = {.nb = c->nb, .cin = c->cin, .cout = c->cout, .h = c->h, .w = c->w, .ho = c->ho, .wo = c->wo,
                    .kh = c->kh, .kw = c->kw, .stride = s, .ph = c->ph, .pw = c->pw, .groups = G,
                    .flags = (bias ? 1 : 0) | (add && ad->kind == ADD_RESIDUAL ? 2 : 0) | (accum ? 4 : 0),
                    .kchunk = kchunk,
                    .scale = add ? ad->scale : 1.0f};
    vkd_arg args[5] = {{offsetof(conv_push, C), accum ? VKD_RW : VKD_W, C},
                       {offsetof(conv_push, A), VKD_R, A},
                       {offsetof(conv_push, B), VKD_R, B}};
    int na = 3;
    if (bias) args[na++] = (vkd_arg){offsetof(conv_push, bias), VKD_R, bias};
    int add_arg = na;
    if (add) args[na++] = (vkd_arg){offsetof(conv_push, add), VKD_R, add};
    uint32_t texel = (uint32_t)(add ? vkd_texel_ok(g, 3, A, B, add) : vkd_texel_ok(g, 2, A, B));
    int64_t window = texel ? conv_window(g, mode, c) : 0;
    conv_tile t = pick_tile(g->ctx, M, N, mode != CONV_BWD_WEIGHT ? window : 0, light_conv(g, c));
    uint8_t bquad = mode == CONV_BWD_WEIGHT && weight_window(c, &t, window, kchunk, B);
    if (bquad) t.shift = (uint32_t)c->kw;
    uint32_t taps = bquad && taps_walk(c, M);
    if (c->up && bquad && !taps) bquad = 0, t.shift = 0;  // (see conv_window)
    if (taps) taps_tile(&t, M);
    // The forward's and the data gradient's window walk by quads of pixels (shader constant 15,
    // QWIN): rows of x (dy) whole quads, so the window's quads are aligned.
    uint32_t qwin = t.shift && mode != CONV_BWD_WEIGHT && t.tn % 4 == 0 && c->w % 4 == 0 && vkd_vec4_ok(1, B) &&
                    !vkd_env_off("VKD_CONV_QWIN");
    // The weight gradient reads A = dy in quads of k (shader constant 12) when its planes hold
    // whole quads. Measured in unet_fmnist (batch 16, VKD_PROFILE, 5 alternating pairs): the
    // weight gradients took 344-391 against 368-428 ms a step (~8% less, near the noise). The
    // forward's A (the weights) read the same way in the plain walk gained nothing (387-465
    // against 377-476 ms), but does in the window walk (shader: AV4 there), whose scalar A
    // gathers, TM*NT a lane a chunk, were the forward's largest load: 16, 64->64, 16x16 went
    // from 72-81 to 81-91 GFLOP/s (best of 20 replays, three alternating pairs). The data
    // gradient's A only with a transposed copy of w whose dispatches cost what it gained (372
    // + 34 against 400-409 ms): not used.
    int64_t P = (int64_t)c->ho * c->wo;
    uint8_t av4 = texel && t.sg && t.l % 4 == 0 && t.tm % 4 == 0 && vkd_vec4_ok(1, A) && mode == CONV_BWD_WEIGHT &&
                  P % 4 == 0 && kchunk % 4 == 0;
    uint32_t wino = (mode == CONV_BWD_WEIGHT ? taps && av4 : qwin) && wino_walk(g->ctx, mode, c, &t, M);
    // F(4, 3) for the forward and the data gradient (shader: WINO = 2) where u's rows of 6 keep a
    // tile's rows of A in whole quads: an even number of input channels
    int f43 = wino && mode != CONV_BWD_WEIGHT && (c->cin / G) % 2 == 0 && !vkd_env_off("VKD_CONV_F43");
    int w2d = f43 ? wino2d_tile(&t, c, M, P) : 0;  // 1: WINO 3, 2: WINO 4
    // The forward reads through the upsampling in the 2-D walk or the plain one. In a unet_fmnist
    // step (batch 16, warm runs, VKD_PROFILE) the up blocks' 64->64 convolutions at 32x32 and 16x16
    // took 19.3 and 5.1 ms in the plain walk, ~10.9 and ~2.8 in the 2-D walk; their weight
    // gradients 15.9 and 4.1 ms in the plain walk, ~10.3 and ~2.9 as F(3, 4).
    if (c->up && mode == CONV_FWD && t.shift && !w2d) {
        t = pick_tile(g->ctx, M, N, 0, light_conv(g, c));
        qwin = 0, wino = 0, f43 = 0;
    }
    int f34 = wino && mode == CONV_BWD_WEIGHT && f34_on();
    if (wino && !w2d) wino_tile(&t, mode, M, P, f43 || f34);
    if (f43) wino = w2d ? 2 + w2d : 2;
    // The weight gradient as F(3, 4) (shader: WINO = 2 in mode 2): a quad of pixels and a tap row's
    // 6 window elements give the row's 3 taps from six products, where F(3, 2)'s pairs took eight.
    // In a unet_fmnist step (batch 16, VKD_PROFILE, five alternating pairs) the weight gradients
    // took 245-265 ms against 258-277 with F(3, 2); at 32 rows instead of 16 the 32->32, 32x32
    // one fell from 85 to 52-55 GFLOP/s. VKD_CONV_F34=0: F(3, 2).
    if (f34) wino = 2;
    if (f34 && wgrad_2d(g->ctx, c) && kchunk % (4 * c->wo) == 0) {
        wino = 4, t.tm = 16;
        fit_tile(&t, M);
    }
    // The F(4, 3) x F(4, 3) walk makes w's 36 factors itself (shader constant 17, UW): each lane of
    // a group those of its TM / L rows, from w's 9 taps (scalar texel fetches), then shuffled to
    // the group as u's were. The transform dispatch it replaces cost ~2 ns a factor: llvmpipe
    // stores a quad through a storage binding in a lane loop at run time, ~1,000 instructions a
    // quad (docs/performance_history.md). In a unet_fmnist step (batch 16, VKD_PROFILE, three
    // pairs) 35 of its 77 transforms went, and the step took 795, 670 and 634 ms against 852, 821
    // and 701; the walks themselves no slower (tests/bench_conv). The same formulas in the same
    // order: the same bits. VKD_CONV_UW=0: the transform.
    // F(4, 3) along the rows (the 8x8 planes' walk) makes a chunk's rows' six factors the same
    // way, from w's 3 taps a row (the data gradient's reversed, as the transform's FLIP), read in
    // quads (below): in a unet_fmnist step (batch 16, VKD_PROFILE, five alternating pairs) the last
    // 41 of its 42 transforms (~10 ms) went, and the step took 726, 719, 744, 728 and 763 ms
    // against 767, 760, 728, 752 and 764 (ddpmpp_reduced: 596, 568, 600 against 590, 618, 609).
    // tests/bench_conv at 16, 64->64, 8x8 (best of 30, three pairs): the forward walk 0.60-0.67
    // against 0.85-0.90 ms (it fetches half the quads u took), the data gradient's 0.66-0.67
    // against 0.65-0.92. The same bits.
    uint32_t uw = wino && mode != CONV_BWD_WEIGHT && ((w2d == 2 && t.tm % t.l == 0) || (wino == 2 && !w2d)) &&
                  !vkd_env_off("VKD_CONV_UW");
    if (wino && mode != CONV_BWD_WEIGHT && !uw) {
        // A becomes w's transform, read in quads (AV4). The 2-D one is the same for the data
        // gradient, whose walk reverses the window: the forward's is kept for it (`kept`, which
        // the tape entry holds). Measured when the F(4, 3) x F(4, 3) walks still read it (before
        // UW): a unet_fmnist step (batch 16) made 77 transforms instead of 111, 13-26 ms less of
        // them a step under VKD_PROFILE, for 255.5 -> 270.2 MiB of peak memory (each 2-D u living
        // from the forward to the backward). Now it serves the F(2, 3) x F(4, 3) walk and
        // VKD_CONV_UW=0. VKD_CONV_KEEP_U=0: made again.
        vkd_tensor *u = winograd_weights(g, A, wino >= 2, wino == 2 && mode == CONV_BWD_DATA, w2d, kept);
        if (!u) return -1;
        if (vkd_vec4_ok(1, u) && (add ? vkd_texel_ok(g, 3, u, B, add) : vkd_texel_ok(g, 2, u, B)))
            A = args[1].t = u, av4 = 1;
        else
            wino = 0;
    }
    if (mode == CONV_FWD && t.shift && t.l % 4 == 0 && (c->cin / G) * c->kh * c->kw % 4 == 0 && vkd_vec4_ok(1, A) && !uw)
        av4 = 1;
    // F(4, 3) along the rows making its factors reads w's taps in quads where a lane's taps are
    // whole quads (shader: UW with AV4): in the forward a lane's TM / L rows of 4 tap rows each,
    // in the data gradient runs of its contiguous block (wino_walk's conditions give those).
    if (uw && wino == 2 && vkd_vec4_ok(1, A) && (mode == CONV_BWD_DATA || ((c->cin / G) % 4 == 0 && t.tm % t.l == 0)))
        av4 = 1;
    // The data gradient's window walk reads w in quads too: a chunk is one output channel's 3x3
    // taps, and the tile's rows (input channels) of it are a contiguous block of w (shader: AV4
    // in MODE 1). Needs whole tiles of rows, so a block never reaches past w.
    if (mode == CONV_BWD_DATA && t.shift && t.l % 4 == 0 && c->kh == 3 && c->kw == 3 && (c->cin / G) % 4 == 0 &&
        t.tm % 4 == 0 && M % t.tm == 0 && vkd_vec4_ok(1, A) && !vkd_env_off("VKD_CONV_DATA_QUADS") && !uw)
        av4 = 1;
    uint32_t bm = t.wm * t.tm, bn = (t.wg / (t.l * t.wm)) * t.l * t.tn;
    vkd_texel tx[4] = {{1, 0, offsetof(conv_push, a_first), av4},
                       {2, 1, offsetof(conv_push, b_first), (uint8_t)(bquad || qwin)},
                       {(uint8_t)add_arg, 2, offsetof(conv_push, add_first), 0}};
    int nt = texel ? (add ? 3 : 2) : 0;
    // the upsampled read is B's, which is x in the forward and the weight gradient
    uint32_t up = (uint32_t)(c->up && mode != CONV_BWD_DATA);
    // the shader's ADD: whether the forward adds (a channel add and a residual share a pipeline,
    // told apart by flags bit 1; the weight gradient's accumulation is flags bit 2)
    uint32_t add_spec = add ? 1 : 0;
    pc.wm = (int32_t)t.wm;  // (constant 4 is unused: one pipeline whatever WM)
    uint32_t spec[19] = {t.wg, (uint32_t)mode, t.tm, t.tn, 0, t.sg, t.l, texel, add_spec, up,
                         t.rm, t.rn, av4, t.shift, taps, qwin, wino, uw, (uint32_t)(t.sg && g->ctx->lane_bcast)};
    // the window walk's quads of C stored as 64-bit pairs (the walk's _wide module; the shader's
    // transposition is written for lane groups of 8)
    int wide = t.shift && mode != CONV_BWD_WEIGHT && t.l == 8 && t.tn % 4 == 0 && vkd_vec4_ok(1, C);
    const conv_module *mod = conv_walk_module(spec[1], spec[13], spec[16]);
    if (!mod || (wide && !mod->wide)) {
        vkd_graph_fail(g, "internal: %s: no convolution module for mode %u, shift %u, Winograd %u%s", name, spec[1],
                       spec[13], spec[16], wide ? " storing quads" : "");
        return -1;
    }
    const char *shader = vkd_store_variant(g, wide, mod->plain, mod->wide);
    // and those quads as vec4s through a storage binding where the device takes them (_sb)
    if (wide) shader = vkd_sbuf_variant(g, shader, mod->wide, mod->sb, C, tx, &nt, offsetof(conv_push, c_sfirst));
    return vkd_graph_dispatch_texel(g, name, shader, spec, 19, vkd_ceil_div((uint64_t)N, bn),
                                    vkd_ceil_div((uint64_t)M, bm), gz, &pc, sizeof pc, args, na, tx, nt);
}

// The tile conv_dispatch will give a weight gradient, for counting its workgroups: the walk by
// whole channels' (and its Winograd rows) where the geometry allows it, whatever the chunks.
// Counted with pick_tile's instead, 32->32 and 64->32 at 32x32 (batch 16) were split in two for
// 2 threads although their 4 and 8 workgroups already kept both busy, and paid a pass summing
// the halves.
static conv_tile weight_tile(vkd_graph *g, const conv_geom *c, int64_t M, int64_t N, vkd_tensor *x) {
    conv_tile t = pick_tile(g->ctx, M, N, 0, light_conv(g, c));
    int64_t window = vkd_texel_ok(g, 1, x) ? conv_window(g, CONV_BWD_WEIGHT, c) : 0;
    if (!weight_window(c, &t, window, t.l, x) || !taps_walk(c, M)) return t;
    taps_tile(&t, M);
    if (wino_walk(g->ctx, CONV_BWD_WEIGHT, c, &t, M)) wino_tile(&t, CONV_BWD_WEIGHT, M, 0, f34_on());
    if (wino_walk(g->ctx, CONV_BWD_WEIGHT, c, &t, M) && f34_on() && wgrad_2d(g->ctx, c)) t.tm = 16, fit_tile(&t, M);
    return t;
}

// dw (cout, cin/groups, kh, kw) = sum over (b, oy, ox) of dy x, added into w's gradient.
// The sum over the batch and pixels is cut into fixed chunks when the output alone gives
// too few workgroups; the chunks' partial results are summed in a fixed order. When w
// is a parameter only this op reads, the last pass adds straight into its persistent
// gradient (old + dw: the bits of the add it saves).
static int conv_weight_grad(vkd_graph *g, const char *name, vkd_tensor *dy, vkd_tensor *x, vkd_tensor *w,
                            const conv_geom *c) {
    int cpu = g->ctx->f.type == VK_PHYSICAL_DEVICE_TYPE_CPU;
    int64_t M = c->cout / c->groups, N = (int64_t)(c->cin / c->groups) * c->kh * c->kw;
    int64_t K = (int64_t)c->nb * c->ho * c->wo;
    conv_tile t = weight_tile(g, c, M, N, x);
    uint64_t bm = t.wm * t.tm, bn = (t.wg / (t.l * t.wm)) * t.l * t.tn;
    uint64_t base = vkd_ceil_div((uint64_t)N, bn) * vkd_ceil_div((uint64_t)M, bm) * (uint64_t)c->groups;
    // On a CPU device (lavapipe runs a workgroup per thread) enough workgroups
    // for its threads; more splits only add partial slices, and with the tall
    // lavapipe tiles a fixed target of 16 grew the peak memory. One thread (a
    // rank given one core) takes them all in turn: no split.
    uint64_t target = cpu ? (uint64_t)g->ctx->device_threads : 1024, min_chunk = cpu ? 1024 : 256;
    int64_t splits = base >= target ? 1 : (int64_t)vkd_ceil_div(target, base);
    int64_t max_splits = (int64_t)vkd_ceil_div((uint64_t)K, min_chunk);
    int64_t max_z = g->ctx->f.max_wg_count[2] / (uint64_t)c->groups;
    // lavapipe's threads take the workgroups one at a time: with few of them an odd count leaves
    // a thread idle for the last round (3 workgroups on 2 threads take 2 rounds, 6 halves take 3
    // half-rounds), so few workgroups are split to a multiple of the threads
    if (cpu && base * (uint64_t)splits < 8 * (uint64_t)target)
        while ((base * (uint64_t)splits) % target) splits++;
    if (splits > max_splits) splits = max_splits;
    if (splits > max_z) splits = max_z;
    if (splits > INT32_MAX / w->numel) splits = INT32_MAX / w->numel;  // the slices are int-indexed
    if (splits < 1) splits = 1;
    int64_t kchunk = ((K + splits - 1) / splits + 7) / 8 * 8;
    if (wgrad_2d(g->ctx, c)) kchunk = (kchunk + 4 * c->wo - 1) / (4 * c->wo) * (4 * c->wo);
    splits = (K + kchunk - 1) / kchunk;
    if (splits == 1) {
        vkd_tensor *pg = vkd_grad_param_target(g, w);
        vkd_tensor *dw = pg ? pg : vkd_graph_tensor_like(g, name, w);
        conv_add acc = {NULL, ADD_ACCUM, 1.0f};
        if (!dw || conv_dispatch(g, name, CONV_BWD_WEIGHT, dw, dy, x, NULL, pg ? &acc : NULL, c, 1, (int)kchunk, NULL))
            return -1;
        if (!pg) vkd_grad_accumulate(g, w, dw);
        return 0;
    }
    int64_t sh[2] = {splits, w->numel};
    vkd_tensor *part = vkd_graph_tensor(g, name, 2, sh);
    if (!part || conv_dispatch(g, name, CONV_BWD_WEIGHT, part, dy, x, NULL, NULL, c, (int)splits, (int)kchunk, NULL))
        return -1;
    return vkd_grad_from_cols(g, name, w, part, (uint64_t)splits);
}

enum { ATTR_STRIDE, ATTR_PH, ATTR_PW, ATTR_GROUPS, ATTR_UP, ATTR_ADD, ATTR_SCALE };  // ATTR_SCALE: attr.f
enum { SAVED_FACTORS };  // the forward's 2-D Winograd factors of w, if it made them

static conv_geom geom_of(vkd_tape_entry *e, int transposed) {
    const vkd_tensor *x = e->in[0], *w = e->in[1];
    conv_geom c = {.nb = (int)x->shape[0], .kh = (int)w->shape[2], .kw = (int)w->shape[3],
                   .stride = e->attr.i[ATTR_STRIDE], .ph = e->attr.i[ATTR_PH], .pw = e->attr.i[ATTR_PW],
                   .groups = e->attr.i[ATTR_GROUPS], .up = e->attr.i[ATTR_UP]};
    const vkd_tensor *y = e->out;
    if (!transposed) {
        int f = c.up ? 2 : 1;
        c.cin = (int)x->shape[1], c.h = f * (int)x->shape[2], c.w = f * (int)x->shape[3];
        c.cout = (int)y->shape[1], c.ho = (int)y->shape[2], c.wo = (int)y->shape[3];
    } else {
        c.cin = (int)y->shape[1], c.h = (int)y->shape[2], c.w = (int)y->shape[3];
        c.cout = (int)x->shape[1], c.ho = (int)x->shape[2], c.wo = (int)x->shape[3];
    }
    return c;
}

static void bias_grad(vkd_graph *g, vkd_tensor *bias, vkd_tensor *dy) {
    if (bias && vkd_tensor_needs_grad(bias))
        vkd_grad_from_broadcast(g, bias, dy, (uint64_t)(dy->shape[2] * dy->shape[3]), (uint64_t)dy->shape[1]);
}

// The bias's and the channel add's gradients from dy's sums over the pixels, (nb, cout), where the
// pass that wrote dy made them (group norm's backward): a column sum of nb rows for the bias (none
// where that pass gave the bias's gradient too) and the sums themselves for the add, instead of a
// pass over dy. 0: dy has none.
static int sums_grads(vkd_graph *g, vkd_tensor *bias, vkd_tensor *add, vkd_tensor *dy, const conv_geom *c) {
    vkd_tensor *s = dy->pix_sums;
    if (!s || s->numel != (int64_t)c->nb * c->cout) return 0;
    if (bias && vkd_tensor_needs_grad(bias) && dy->pix_bias != bias)
        vkd_grad_from_cols(g, "conv2d_bwd_bias", bias, s, (uint64_t)c->nb);
    if (add && vkd_tensor_needs_grad(add)) vkd_grad_accumulate(g, add, vkd_reshape(g, s, add->ndim, add->shape));
    return 1;
}

// x's gradient conv^T(dy, w). For an input read through the 2x upsampling (c->up): the
// gradient of the upsampled image, then its 2x2 sums (the upsampling's backward).
static void conv_data_grad(vkd_graph *g, vkd_tensor *x, vkd_tensor *w, vkd_tensor *dy, const conv_geom *c,
                           vkd_tensor **kept) {
    if (pointwise_gemm(g, c)) {
        vkd_tensor *old = vkd_grad_pending(g, x), *dx = vkd_graph_tensor_like(g, "conv2d_bwd_data", x);
        if (dx && !pointwise_data_grad(g, dx, w, dy, old, c)) vkd_grad_set(g, x, dx);
        return;
    }
    int64_t sh[4] = {c->nb, c->cin, c->h, c->w};
    vkd_tensor *dxu = c->up ? vkd_graph_tensor(g, "conv2d_bwd_data", 4, sh) : NULL;
    vkd_tensor *dx = vkd_graph_tensor_like(g, c->up ? "upsample2x_bwd" : "conv2d_bwd_data", x);
    if (!c->up) dxu = dx;
    if (!dx || !dxu || conv_dispatch(g, "conv2d_bwd_data", CONV_BWD_DATA, dxu, w, dy, NULL, NULL, c, 1, 0, kept)) return;
    if (c->up && vkd_sum2x2_dispatch(g, "upsample2x_bwd", dx, dxu)) return;
    vkd_grad_accumulate(g, x, dx);
}

// y = conv(x, w) + b [+ add]:  dx = conv^T(dy, w), dw = sum dy x, db = sum dy,
// d add = dy summed over the pixels (as an add's backward sums it).
// y = (conv(x, w) + b + res) * s: d res = dy * s, and the convolution's gradients at dy * s
// (vkd_add_scaled's backward, one tensor for both).
static void conv2d_backward(vkd_graph *g, vkd_tape_entry *e, vkd_tensor *dy) {
    vkd_tensor *x = e->in[0], *w = e->in[1], *add = e->nin > 3 ? e->in[3] : NULL;
    conv_geom c = geom_of(e, 0);
    if (add && e->attr.i[ATTR_ADD] == ADD_RESIDUAL) {
        if (!vkd_grad_folded(g, e->out)) dy = vkd_scale(g, dy, e->attr.f[ATTR_SCALE]);
        if (!dy) return;
        if (vkd_tensor_needs_grad(add)) vkd_grad_accumulate(g, add, dy);
        add = NULL;
    }
    if (vkd_tensor_needs_grad(x)) conv_data_grad(g, x, w, dy, &c, &e->saved[SAVED_FACTORS]);
    if (vkd_tensor_needs_grad(w)) conv_weight_grad(g, "conv2d_bwd_weight", dy, x, w, &c);
    vkd_tensor *bias = e->in[2];
    if (sums_grads(g, bias, add, dy, &c)) return;
    uint64_t P = (uint64_t)(c.ho * c.wo);
    if (add && vkd_tensor_needs_grad(add) && bias && vkd_tensor_needs_grad(bias) && c.nb > 1) {
        // The embedding's gradient is dy's sums over the pixels, (nb, cout); the bias's is those
        // summed over the samples: one pass over dy for both (the same sums as two passes).
        vkd_tensor *rows = vkd_graph_tensor(g, "reduce_bcast", add->ndim, add->shape);
        if (!rows || vkd_grad_from_row_sums(g, "reduce_bcast", bias, dy, P, (uint64_t)c.nb, (uint64_t)c.cout, rows))
            return;
        vkd_grad_accumulate(g, add, rows);
        return;
    }
    bias_grad(g, bias, dy);
    if (add && vkd_tensor_needs_grad(add)) vkd_grad_from_broadcast(g, add, dy, P, (uint64_t)c.nb * c.cout);
}

// y = conv^T(x, w) + b is the data gradient of conv(., w) at dy = x, so
// dx = conv(dy, w) and dw = sum x dy (the convolution's weight gradient with
// the roles of its input and output gradient taken by dy and x).
static void conv_transpose2d_backward(vkd_graph *g, vkd_tape_entry *e, vkd_tensor *dy) {
    vkd_tensor *x = e->in[0], *w = e->in[1];
    conv_geom c = geom_of(e, 1);
    if (vkd_tensor_needs_grad(x)) {
        vkd_tensor *dx = vkd_graph_tensor_like(g, "conv_transpose2d_bwd_data", x);
        if (dx && !conv_dispatch(g, "conv_transpose2d_bwd_data", CONV_FWD, dx, w, dy, NULL, NULL, &c, 1, 0,
                                &e->saved[SAVED_FACTORS]))
            vkd_grad_accumulate(g, x, dx);
    }
    if (vkd_tensor_needs_grad(w)) conv_weight_grad(g, "conv_transpose2d_bwd_weight", x, dy, w, &c);
    bias_grad(g, e->in[2], dy);
}

// Shape checks common to both ops. For conv2d: x is the convolution input;
// for conv_transpose2d: x is its output side (nb, cout, ho, wo).
static int conv_check(vkd_graph *g, const char *op, const vkd_tensor *x, const vkd_tensor *w, const vkd_tensor *bias,
                      int stride, int ph, int pw, int groups, int transposed, int up, conv_geom *c) {
    char sx[64], sw[64];
    vkd_shape_str(x, sx, sizeof sx);
    vkd_shape_str(w, sw, sizeof sw);
    if (x->ndim != 4 || w->ndim != 4) {
        vkd_graph_fail(g, "%s: input '%s' %s and weight '%s' %s must both be 4-D", op, x->name, sx, w->name, sw);
        return -1;
    }
    if (stride < 1 || ph < 0 || pw < 0 || groups < 1) {
        vkd_graph_fail(g, "%s: stride %d, padding (%d, %d), groups %d (need stride >= 1, padding >= 0, groups >= 1)",
                       op, stride, ph, pw, groups);
        return -1;
    }
    int64_t nb = x->shape[0], cx = x->shape[1], H = (up ? 2 : 1) * x->shape[2], W = (up ? 2 : 1) * x->shape[3];
    int64_t kh = w->shape[2], kw = w->shape[3];
    int64_t cout, cin, h, wd, ho, wo;
    if (!transposed) {
        cin = cx, cout = w->shape[0], h = H, wd = W;
        if (cin % groups || cout % groups || w->shape[1] * groups != cin) {
            vkd_graph_fail(g, "%s: input '%s' %s, weight '%s' %s and groups %d do not fit (weight must be "
                           "(cout, cin/groups, kh, kw), cin and cout divisible by groups)",
                           op, x->name, sx, w->name, sw, groups);
            return -1;
        }
        if (h + 2 * ph < kh || wd + 2 * pw < kw) {
            vkd_graph_fail(g, "%s: kernel %lldx%lld is larger than input '%s' %s padded by (%d, %d)", op,
                           (long long)kh, (long long)kw, x->name, sx, ph, pw);
            return -1;
        }
        ho = (h + 2 * ph - kh) / stride + 1, wo = (wd + 2 * pw - kw) / stride + 1;
    } else {
        cout = cx, cin = w->shape[1] * groups, ho = H, wo = W;
        if (w->shape[0] != cx || cx % groups) {
            vkd_graph_fail(g, "%s: input '%s' %s, weight '%s' %s and groups %d do not fit (weight must be "
                           "(cin, cout/groups, kh, kw), cin divisible by groups)",
                           op, x->name, sx, w->name, sw, groups);
            return -1;
        }
        h = (H - 1) * stride - 2 * ph + kh, wd = (W - 1) * stride - 2 * pw + kw;
        if (h < 1 || wd < 1) {
            vkd_graph_fail(g, "%s: input '%s' %s with kernel %lldx%lld, stride %d and padding (%d, %d) gives an "
                           "empty output",
                           op, x->name, sx, (long long)kh, (long long)kw, stride, ph, pw);
            return -1;
        }
    }
    int64_t oc = transposed ? cin : cout;
    if (bias && (bias->numel != oc)) {
        vkd_graph_fail(g, "%s: bias '%s' has %lld elements; expected %lld (the output channels)", op, bias->name,
                       (long long)bias->numel, (long long)oc);
        return -1;
    }
    // The shader indexes with 32-bit ints (partial weight gradients included).
    int64_t big = nb * (cin > cout ? cin : cout) * (h * wd > ho * wo ? h * wd : ho * wo);
    if (big > INT32_MAX || w->numel > INT32_MAX) {
        vkd_graph_fail(g, "%s: input '%s' %s is too large for one convolution (2^31 elements)", op, x->name, sx);
        return -1;
    }
    *c = (conv_geom){.nb = (int)nb, .cin = (int)cin, .cout = (int)cout, .h = (int)h, .w = (int)wd, .ho = (int)ho,
                     .wo = (int)wo, .kh = (int)kh, .kw = (int)kw, .stride = stride, .ph = ph, .pw = pw,
                     .groups = groups, .up = up};
    return 0;
}

static void push_tape(vkd_graph *g, vkd_backward_fn fn, vkd_tensor *y, vkd_tensor *x, vkd_tensor *w,
                      vkd_tensor *bias, const conv_add *ad, const conv_geom *c, vkd_tensor *factors) {
    vkd_tensor *add = ad ? ad->t : NULL, *in[4] = {x, w, bias, add};
    vkd_tape_entry *e = vkd_tape_push(g, fn, y, in, add ? 4 : 3);
    if (!e) return;
    e->saved[SAVED_FACTORS] = factors;
    e->attr.i[ATTR_STRIDE] = c->stride, e->attr.i[ATTR_PH] = c->ph, e->attr.i[ATTR_PW] = c->pw;
    e->attr.i[ATTR_GROUPS] = c->groups, e->attr.i[ATTR_UP] = c->up;
    e->attr.i[ATTR_ADD] = add ? ad->kind : ADD_NONE, e->attr.f[ATTR_SCALE] = add ? ad->scale : 1.0f;
    // the backward needs dy * scale: the op that completes dy may fold the scale in
    if (add && ad->kind == ADD_RESIDUAL) y->grad_fold = ad->scale;
}

// The add must be one value per sample and output channel (ADD_CHANNEL) or shaped as y (ADD_RESIDUAL).
static int add_check(vkd_graph *g, const conv_add *ad, const conv_geom *c) {
    const vkd_tensor *a = ad->t;
    int ok = ad->kind == ADD_CHANNEL
                 ? a->numel == (int64_t)c->nb * c->cout && a->shape[0] == c->nb
                 : a->ndim == 4 && a->shape[0] == c->nb && a->shape[1] == c->cout && a->shape[2] == c->ho &&
                       a->shape[3] == c->wo;
    if (ok) return 0;
    char sa[64];
    vkd_shape_str(a, sa, sizeof sa);
    if (ad->kind == ADD_CHANNEL)
        vkd_graph_fail(g, "conv2d: add '%s' %s must hold one value per sample and output channel (%d, %d)", a->name,
                       sa, c->nb, c->cout);
    else
        vkd_graph_fail(g, "conv2d: residual '%s' %s must have the output's shape (%d, %d, %d, %d)", a->name, sa,
                       c->nb, c->cout, c->ho, c->wo);
    return -1;
}

// The forward: a GEMM for a pointwise convolution on a CPU device (its epilogue adds a residual,
// not a per-sample channel value), else the convolution shader.
static int forward_dispatch(vkd_graph *g, vkd_tensor *y, vkd_tensor *w, vkd_tensor *x, vkd_tensor *bias,
                            const conv_add *ad, const conv_geom *c, vkd_tensor **kept) {
    if (pointwise_gemm(g, c) && (!ad || ad->kind == ADD_RESIDUAL)) return pointwise_forward(g, y, w, x, bias, ad, c);
    return conv_dispatch(g, "conv2d", CONV_FWD, y, w, x, bias, ad, c, 1, 0, kept);
}

static vkd_tensor *conv2d_fused(vkd_graph *g, vkd_tensor *x, vkd_tensor *w, vkd_tensor *bias, const conv_add *ad,
                                int stride, int pad_h, int pad_w, int groups, int up) {
    if (ad && !ad->t) ad = NULL;
    if (!vkd_op_ok(g, 2, x, w) || (ad && !vkd_op_ok(g, 1, ad->t))) return NULL;
    conv_geom c;
    if (conv_check(g, "conv2d", x, w, bias, stride, pad_h, pad_w, groups, 0, up, &c)) return NULL;
    if (ad && add_check(g, ad, &c)) return NULL;
    // y is (nb, cout, ho, wo)
    int64_t sh[4] = {c.nb, c.cout, c.ho, c.wo};
    vkd_tensor *y = vkd_graph_tensor(g, ad && ad->kind == ADD_RESIDUAL ? "conv2d_res" : "conv2d", 4, sh);
    vkd_tensor *factors = NULL;
    if (!y || forward_dispatch(g, y, w, x, bias, ad, &c, &factors)) return NULL;
    push_tape(g, conv2d_backward, y, x, w, bias, ad, &c, factors);
    // its bias's and channel add's gradients can come from sums of y's gradient (sums_grads)
    y->pix_bias = bias && vkd_tensor_needs_grad(bias) ? bias : NULL;
    y->want_pix_sums = y->pix_bias || (ad && ad->kind == ADD_CHANNEL && vkd_tensor_needs_grad(ad->t));
    return y;
}

vkd_tensor *vkd_conv2d_add(vkd_graph *g, vkd_tensor *x, vkd_tensor *w, vkd_tensor *bias, vkd_tensor *add, int stride,
                           int pad_h, int pad_w, int groups) {
    conv_add ad = {add, ADD_CHANNEL, 1.0f};
    return conv2d_fused(g, x, w, bias, &ad, stride, pad_h, pad_w, groups, 0);
}

vkd_tensor *vkd_conv2d_res(vkd_graph *g, vkd_tensor *x, vkd_tensor *w, vkd_tensor *bias, vkd_tensor *res, float scale,
                           int stride, int pad_h, int pad_w, int groups) {
    conv_add ad = {res, ADD_RESIDUAL, scale};
    return conv2d_fused(g, x, w, bias, &ad, stride, pad_h, pad_w, groups, 0);
}

vkd_tensor *vkd_conv2d_up(vkd_graph *g, vkd_tensor *x, vkd_tensor *w, vkd_tensor *bias, vkd_tensor *add, int pad) {
    conv_add ad = {add, ADD_CHANNEL, 1.0f};
    return conv2d_fused(g, x, w, bias, &ad, 1, pad, pad, 1, 1);
}

vkd_tensor *vkd_conv2d(vkd_graph *g, vkd_tensor *x, vkd_tensor *w, vkd_tensor *bias, int stride, int pad_h, int pad_w,
                       int groups) {
    return conv2d_fused(g, x, w, bias, NULL, stride, pad_h, pad_w, groups, 0);
}

vkd_tensor *vkd_conv_transpose2d(vkd_graph *g, vkd_tensor *x, vkd_tensor *w, vkd_tensor *bias, int stride, int pad_h,
                                 int pad_w, int groups) {
    if (!vkd_op_ok(g, 2, x, w)) return NULL;
    conv_geom c;
    if (conv_check(g, "conv_transpose2d", x, w, bias, stride, pad_h, pad_w, groups, 1, 0, &c)) return NULL;
    // y is (nb, cout/groups * groups, (H-1)*stride - 2*pad_h + kh, ...): the input side of the convolution
    int64_t sh[4] = {c.nb, c.cin, c.h, c.w};
    vkd_tensor *y = vkd_graph_tensor(g, "conv_transpose2d", 4, sh);
    vkd_tensor *factors = NULL;
    if (!y || conv_dispatch(g, "conv_transpose2d", CONV_BWD_DATA, y, w, x, bias, NULL, &c, 1, 0, &factors))
        return NULL;
    push_tape(g, conv_transpose2d_backward, y, x, w, bias, NULL, &c, factors);
    return y;
}
