#version 450
#extension GL_EXT_samplerless_texture_functions : require
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#extension GL_KHR_shader_subgroup_ballot : require
// 2-D convolution (NCHW, dilation 1, groups) as implicit GEMMs, no im2col.
// One file for the three GEMMs because they share everything but the index
// map: every mode is written as C(m, n) = sum_k A(m, k) B(k, n) where
//   k = (c2k * E1k + c1k) * E0k + c0k and n = (c2n * E1n + c1n) * E0n + c0n,
// B is a gather from an image (zero outside it; rows HB, columns WB):
//   B(k, n) = B[B0 + c2n*SB2 + c2k*SK2 + yy*SBY + xx], yy = Y0n + c1n*YSn + c1k*YK,
//                                                    xx = X0n + c0n*XSn + c0k*XK
// and A, C are plain strided tensors. The MODE (constant_id 1) only sets up
// these strides, so the inner loop is one piece of code.
//
// Geometry in the conv2d sense: x (nb, cin, h, w), w (cout, cin/G, kh, kw),
// y (nb, cout, ho, wo), Cig = cin/G, Cog = cout/G, P = ho*wo, KK = kh*kw.
// MODE 0, forward        y = conv(x, w) + bias    A = w, B = x, C = y
//   per group (z = g): M = Cog, N = nb*P, K = Cig*KK; k = (ci, ky, kx), n = (b, oy, ox)
// MODE 1, data gradient  dx = conv^T(dy, w) [+ bias: conv_transpose2d]   A = w, B = dy, C = dx
//   Split by output phase so no product is wasted on stride holes: for
//   (iy + ph) % s == ry only ky = ry + s*t contribute, with oy = by + u - t
//   where iy = iyf + s*u. z = g * s*s + ry*s + rx; per phase M = Cig,
//   N = nb * nu * nv, K = Cog * nty * ntx; k = (co, t, t'), n = (b, u, v).
//   (For stride 1 this is the flipped kernel.)
// MODE 2, weight gradient dw = sum_{b,oy,ox} dy x   A = dy, B = x, C = dw
//   M = Cog, N = Cig*KK, K = nb*P; k = (b, oy, ox), n = (ci, ky, kx).
//   K is cut into fixed chunks of pc.kchunk (z = g * splits + split); each
//   split writes its own slice of C (splits, cout, Cig, kh, kw) and the host
//   sums the slices in a fixed order: deterministic, no atomics.
//
// Tiling (as shaders/matmul.comp, whose header explains why it suits
// lavapipe): lane groups of L consecutive subgroup invocations; a group owns
// a TM x (L*TN) block of C, lane l holding rows m0..m0+TM-1 at columns
// n0 + L*j + l. K is walked in chunks of L: lane l loads A(m0+i, k0+l) and the
// value every lane needs is fetched with subgroupShuffle; B is gathered
// directly. Each C element is summed k = 0..K-1 by one invocation (fixed
// order). Workgroup = WM x WN lane groups, BM = WM*TM, BN = WN*L*TN.
// Specialization constants: 0 local size (= L*WM*WN), 1 MODE, 2 TM, 3 TN, 4 unused (WM
// is the push constant wm, see main), 5 SG (1: the lane groups shuffle A; 0: no usable
// subgroup, every lane loads A itself), 6 L (lane-group width: 8, or the subgroup size when
// that is 4).
// SG and L are constants, not tests of gl_SubgroupSize, so the path not taken
// is not compiled: llvmpipe runs both sides of a branch under a mask, and a
// dead per-k load of A in the inner loop cost as much as the live code.
// 7 TEXEL (1: A and B are read through the texel views of set 0, bindings 0
// and 1, whose first elements are a_first and b_first; see src/vk/texel.c).
// 8 ADD (mode 0), read through texel binding 2 (add_first) when TEXEL is 1, so the pass over y
// that a separate add would make is saved: y = (conv + bias + add) * scale. 1: add shaped as
// y when flags bit 1 is set (EDM's residual with its skip scale), else add[b*cout + g*M + m], a
// per-sample channel bias (a UNet block's embedding; scale 1, whose product is exact, so the
// bits are those of conv + bias + add). The two share a pipeline because lavapipe spends up to
// ~0.7 s of CPU creating one of the large walks, in every process; the flag only picks an
// index. A constant, not a flag, whether the forward adds: llvmpipe would run the fetch of a
// branch not taken under a mask, ~5% of a convolution without the add. (The weight gradient's
// accumulation, C += the sum, is flags bit 2: its epilogue is a sliver of its work.)
// 9 UP (modes 0 and 2, stride 1): B = x is read through a 2x nearest upsampling: the geometry
// (h, w) is the upsampled image's, x holds (h/2, w/2) planes, and pixel (yy, xx) is read at
// (yy/2, xx/2), so an upsampling in front of a convolution writes nothing of its own. The plain
// walk, and the forward's 2-D Winograd walks (WINO = 3, 4), whose quad of an upsampled row is half
// a quad of x's, and the weight gradient's walk by whole channels (TAPS), whose run of an
// upsampled row is half as many elements of x's.
// 10 RM, 11 RN: the register block of the multiply-add phase (RM divides TM, RN divides TN).
// 12 AV4 (host: TEXEL, SG, L multiple of 4): A is a vec4 texel view read in quads of k. Mode 2
// (TM a multiple of 4, ho*wo a multiple of 4): A = dy, and each lane of a group loads whole
// quads, TM/4 of them, for the rows of one residue mod 4, instead of TM single elements, and
// computes its quad's offset once a chunk. Mode 0 with SHIFT (rows of w whole quads): the
// window walk's chunk of A, see there.
// 13 SHIFT (CPU devices): the kernel's width when B's taps are read as windows. Modes 0 and 1:
// windows of consecutive pixels (the walk in main that it selects says how); mode 2: x's rows
// as quads (see the plain walk), 3-wide kernels with padding 1 and 1x1 kernels without.
// flags: bit0 add bias[g*M + m] (modes 0 and 1); bit1 the add is shaped as y (ADD 1); bit2 (mode
// 2) C += the sum, a weight gradient added into a parameter's persistent gradient (old + dw: the
// bits of an add after it). A flag, not a constant as it was (ADD 3): the same walk was then two
// pipelines where one layer's weight gradient accumulates and another's does not, and the
// epilogue's masked load, one per element of dw, is a sliver of the walk over all the pixels.
#include "common.glsl"
#include "winograd_factors.glsl"
// VKD_CONV_WALK (a build-time define, CMakeLists.txt): one module a walk of main's four (1 the
// 2-D Winograd walk of modes 0 and 1, 2 their window walk, 3 the 2-D Winograd weight gradient,
// 4 the plain walk), the host picking the module from the same constants (src/ops/conv2d.c);
// unset, every walk, the constants choosing. Why: lavapipe (Mesa 22.3) translates the whole
// module to NIR and runs its first passes over every walk before the constants' dead branches
// go, for every pipeline in every process, and the validation layer checks the whole module
// specialized again for each pipeline.
#ifndef VKD_CONV_WALK
#define VKD_CONV_WALK 0
#endif
#define VKD_WALK(n) (VKD_CONV_WALK == 0 || VKD_CONV_WALK == (n))

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint MODE = 0;
layout(constant_id = 2) const uint TM = 8;
layout(constant_id = 3) const uint TN = 4;
layout(constant_id = 5) const uint SG = 1;
layout(constant_id = 6) const uint L = 8;
layout(constant_id = 7) const uint TEXEL = 0;
layout(constant_id = 8) const uint ADD = 0;
layout(constant_id = 9) const uint UP = 0;

layout(push_constant) uniform PC {
    FBuf A; FBuf B; FBuf C; FBuf bias; FBuf add;
    int nb, cin, cout, h, w, ho, wo, kh, kw, stride, ph, pw, groups, flags, kchunk;
    int a_first, b_first, add_first;
    float scale;  // ADD 1
    int c_sfirst;  // conv2d_sb: where C starts in its storage binding, in vec4s (set at compile)
    int wm;        // WM, the lane groups along M
} pc;
layout(set = 0, binding = 2) uniform textureBuffer vkd_tex2;

float loadA(int i) { return TEXEL != 0u ? texelFetch(vkd_tex0, i + pc.a_first).r : pc.A.v[i]; }
float loadB(int i) { return TEXEL != 0u ? texelFetch(vkd_tex1, i + pc.b_first).r : pc.B.v[i]; }
float loadAdd(int i) { return TEXEL != 0u ? texelFetch(vkd_tex2, i + pc.add_first).r : pc.add.v[i]; }

layout(constant_id = 10) const uint RM = 4;
layout(constant_id = 11) const uint RN = 2;
layout(constant_id = 12) const uint AV4 = 0;
layout(constant_id = 13) const uint SHIFT = 0;
// 14 TAPS (MODE 2 with SHIFT = 3; host: a 3x3 kernel with padding 1, TN = 9): lane l of a group
// owns the 9 taps of one input channel, columns n0 + 9l + t, instead of columns L apart. Its 72
// values of B a chunk are then 3 rows of x, one per tap row, each read once as quads and shared
// by the row's 3 taps (the tap's shift a constant): 9 vec4 fetches a chunk instead of 3 a column
// (27), and no per-column choice of the shift.
layout(constant_id = 14) const uint TAPS = 0;
// 15 QWIN (modes 0 and 1 with SHIFT = 3; host: TN a multiple of 4, B a vec4 view, rows of whole
// quads): lane l owns quads of consecutive pixels, columns n0 + 4L h + 4l + c (c < 4), instead of
// columns L apart. A row of taps is then read as TN/4 quads a lane (the window's elements left
// and right of a lane's quad come from its neighbours by shuffles, the group's two ends from one
// more quad), not TN + 1 gathers, and each tap picks its 4 values out of 6 with constant indices.
// The epilogue stores a lane's quads as they are (two 64-bit stores), without the transposition.
layout(constant_id = 15) const uint QWIN = 0;
// 16 WINO (QWIN with a 3-wide kernel; host: CPU devices, AV4): each row of taps is applied to a
// lane's quads as Winograd's F(2, 3), two outputs from four inputs d0..d3 with four products
// instead of six: m1 = (d0 - d2) g0, m2 = (d1 + d2) (g0 + g1 + g2) / 2, m3 = (d2 - d1) (g0 - g1 +
// g2) / 2, m4 = (d1 - d3) g2; y0 = m1 + m2 + m3, y1 = m2 - m3 - m4. A is then u, the rows' four
// factors (shaders/winograd.comp, written before the convolution), read in quads. The m's are
// linear in the taps, so each is summed over all (channel, tap row) first and transformed once,
// before the epilogue: acc holds 4 sums a pair of columns (column t*TN/2 + p: term t of pair p)
// instead of 2. Why: llvmpipe has no fused multiply-add, and the multiply-adds were ~45% of the
// window walk's time. Not the plain walk's bits (a different sum; test_conv holds it to the
// double reference).
layout(constant_id = 16) const uint WINO = 0;
// 17 UW (WINO = 4 in modes 0 and 1; host: TM a multiple of L, A = w through a scalar texel view):
// the walk makes w's 36 factors itself instead of reading u: each lane makes those of its TM / L
// rows of the tile from the kernel's 9 taps (the formulas and order of shaders/winograd.comp's
// W2D = 2, so the same bits) and the group shuffles them as it did u's quads. The transform pass
// it replaces is its stores' time on llvmpipe (a runtime loop over the lanes a quad). WINO = 2
// (F(4, 3) along the rows; A = w as above): the same for a chunk's rows of 3 taps, six factors
// each (F43's, flipped for the data gradient as winograd.comp's FLIP), PPL rows a lane.
layout(constant_id = 17) const uint UW = 0;
// 18 XB: the lane groups' exchange by broadcasts (shaders/lanes.glsl; host: the driver)
layout(constant_id = 18) const uint XB = 0;
#include "lanes.glsl"
// MODE 2 (TAPS, AV4): the same for a tap row's 3 taps, from pairs of pixels: Winograd's F(3, 2),
// o_kx = dy0 d_kx + dy1 d_kx+1 (kx < 3) with the four products m1 = dy0 (d0 - d2), m2 = (dy0 +
// dy1) / 2 (d1 + d2), m3 = (dy0 - dy1) / 2 (d2 - d1), m4 = dy1 (d1 - d3): o0 = m1 + m2 + m3,
// o1 = m2 - m3, o2 = m2 + m3 - m4. dy's factors are made from the quads as they are loaded (a
// quad is two pairs), so no pass writes them; acc's column t*3 + ky holds term t of tap row ky.
// WINO = 2 in MODE 2 (host: the same walk): F(3, 4) instead, a quad of pixels' dy0..dy3 against
// its tap row's six window elements d0..d5: o = G^T ((A dy) . (B^T d)) with F(4, 3)'s matrices
// transposed (the gradient of F(4, 3)'s forward with respect to its taps). A dy is (dy0, dy0 +
// dy1 + dy2 + dy3, dy0 - dy1 + dy2 - dy3, dy0 + dy1/2 + dy2/4 + dy3/8, dy0 - dy1/2 + dy2/4 -
// dy3/8, dy3), B^T d the forward's six input factors, and the taps o0 = 4 m0 + 2/3 (m1 + m2) -
// 8/3 (m3 + m4), o1 = 2/3 (m1 - m2) - 4/3 (m3 - m4), o2 = 2/3 (m1 + m2 - m3 - m4) + m5: six
// products for a row's 3 taps over 4 pixels where F(3, 2) took eight, 18 sums a row of the tile.
// WINO = 2 (modes 0 and 1; host: input channels even): a lane's quad of pixels is one tile of
// Winograd's F(4, 3), four outputs from its six window elements d0..d5 with six products instead
// of twelve. Points 0, +-1, +-1/2 and infinity: in a numpy model of fp32 sums over 630 rows their
// worst error was a third of the usual 0, +-1, +-2's (3.2e-6 against 8.9e-6 of the scale), and
// every scaling of d and of the m's is a power of two. The input factors B^T d are d0/4 - 5d2/4 +
// d4, -(d1 + d2)/4 + d3 + d4, (d1 - d2)/4 - d3 + d4, -(d1 - d3)/2 - d2 + d4, (d1 - d3)/2 - d2 +
// d4, d1/4 - 5d3/4 + d5; the weights' six (shaders/winograd.comp) are read in quads as u's four
// are; the outputs are m0 + m1 + m2 + m3 + m4, m1 - m2 + (m3 - m4)/2, m1 + m2 + (m3 + m4)/4,
// m1 - m2 + (m3 - m4)/8 + m5. A quarter fewer products than F(2, 3), and 6 sums a quad instead
// of 8. The data gradient's u is made from the reversed rows (its window meets the taps reversed).
// WINO = 3 (modes 0 and 1; host: a 3x3 kernel with padding 1, x's rows 4 to 4L wide and dividing
// 4L, an even number of rows, TN a multiple of 8): both directions, F(2, 3) down the columns
// times F(4, 3) along the rows. A lane's quads h = 2p and 2p + 1 are the same 4 columns of two
// consecutive rows (col_of), one 2 x 4 tile p; a k step is a whole channel, whose 4 x 6 window
// elements (rows y - 1 .. y + 2) become 24 factors: F(4, 3)'s six along each row, then F(2, 3)'s
// (r0 - r2, r1 + r2, r2 - r1, r1 - r3) down them. u holds the weights' 24 (shaders/winograd.comp,
// W2D). 24 products for 8 outputs where the rows of F(4, 3) took 36, and 4 window rows read for
// 2 output rows instead of 6. The outputs: rows m0 + m1 + m2 and m1 - m2 - m3 of the sums, then
// F(4, 3)'s epilogue along each. The data gradient (MODE 1) reads the same u as the forward: its
// window meets the kernel turned 180 degrees, so it walks its tile's rows (y + 2 .. y - 1) and each
// row's elements backwards, which is the forward's sum on the reversed window, and reverses the
// outputs.
// WINO = 4 (the same host conditions, and x's rows a multiple of 4): F(4, 3) down the columns too, a
// 4 x 4 tile of quads h = 4p .. 4p + 3 from its 6 x 6 window: 36 products for 16 outputs where WINO =
// 3 took 48 (the multiply-adds were ~50-60% of its time), and 6 window rows read for 4 output rows
// instead of 8. u holds the weights' 36 (shaders/winograd.comp, W2D = 2); the column transforms are
// the rows' (input factors down the window's rows, the epilogue's down the sums' rows). Larger
// transformed operands, larger roundings: test_conv holds it to the double reference, as WINO = 3.
const uint WT = WINO == 4u ? 36u : WINO == 3u ? 24u : WINO == 2u ? 6u : 4u;  // WINO: terms a tile
// 2-D walks (WINO 3, 4): a tile's output rows, its window's rows, the quads of u a (row, channel)
const uint TR = WINO == 4u ? 4u : 2u, TWR = TR + 2u, QU = WT / 4u;
// WINO: tiles a lane (pairs, quads, 2 x 4 or 4 x 4 tiles, tap rows)
const uint NP = MODE == 2u ? (WINO == 4u ? 1u : TN / 3u) : WINO >= 3u ? TN / (4u * TR) : WINO == 2u ? TN / 4u : TN / 2u;
const uint AN = WINO != 0u ? WT * NP : TN;        // accumulators a row of the tile
const uint RNP = NP % RN == 0u ? RN : 1u;  // WINO's register block along the pairs (tap rows)
// column j of this lane: n0 + col_of(j)
uint col_of(uint j, uint lane) {
    if (WINO >= 3u && MODE != 2u) {  // quad h of the lane: tile h / TR, its row h % TR (rows of pc.w pixels)
        const uint W = uint(pc.w), qpr = W / 4u, h = j / 4u;
        return (h / TR) * 4u * TR * L + (TR * (lane / qpr) + h % TR) * W + 4u * (lane % qpr) + j % 4u;
    }
    return TAPS != 0u ? lane * TN + j : QWIN != 0u ? (j / 4u) * 4u * L + 4u * lane + j % 4u : j * L + lane;
}
vec4 loadA4(int i) { return texelFetch(vkd_tex0, i / 4 + pc.a_first); }  // i a multiple of 4
vec4 loadB4(int q) { return texelFetch(vkd_tex1, q + pc.b_first); }       // quad q of B

// Winograd's F(4, 3) (points 0, +-1, +-1/2, infinity) and its transpose F(3, 4), one direction
// each; the 2-D walks apply them along the rows, then down the columns.
// F(4, 3)'s six input factors B^T d of a window of six elements
void f43_in(float d0, float d1, float d2, float d3, float d4, float d5, out float v[6]) {
    const float d12 = d1 + d2, e12 = d1 - d2, d13 = d1 - d3;
    v[0] = 0.25 * d0 - 1.25 * d2 + d4;
    v[1] = -0.25 * d12 + d3 + d4;
    v[2] = 0.25 * e12 - d3 + d4;
    v[3] = -0.5 * d13 - d2 + d4;
    v[4] = 0.5 * d13 - d2 + d4;
    v[5] = 0.25 * d1 - 1.25 * d3 + d5;
}
// F(4, 3)'s four outputs from the six sums m of products
vec4 f43_out(float m0, float m1, float m2, float m3, float m4, float m5) {
    const float a = m1 + m2, b = m1 - m2, c = m3 + m4, e = m3 - m4;
    return vec4(m0 + a + c, b + 0.5 * e, a + 0.25 * c, b + 0.125 * e + m5);
}
// F(3, 4)'s six factors of four dy values (F(4, 3)'s output transform, transposed)
void f34_dy(float a0, float a1, float a2, float a3, out float v[6]) {
    const float s02 = a0 + a2, s13 = a1 + a3, h = a0 + 0.25 * a2, k = 0.5 * a1 + 0.125 * a3;
    v[0] = a0, v[1] = s02 + s13, v[2] = s02 - s13, v[3] = h + k, v[4] = h - k, v[5] = a3;
}
// F(3, 4)'s three taps from the six sums m (F(4, 3)'s weight transform, transposed)
vec3 f34_out(float m0, float m1, float m2, float m3, float m4, float m5) {
    const float a = m1 + m2, c = m3 + m4, k = 2.0 / 3.0;
    return vec3(4.0 * m0 + k * a - 4.0 * k * c, k * (m1 - m2) - 2.0 * k * (m3 - m4), k * (a - c) + m5);
}
// MODE 2's quad walks: e[1 .. L] = the L elements of B from quad q on (a run of one row of x; the
// elements either side, e[0] and e[L + 1], are the caller's). A macro: glslang matches no
// function parameter to an array sized by a specialization constant.
#define RUN_OF_QUADS(e, q, qhi)                                                                    \
    [[unroll]] for (uint t = 0; t < L / 4u; t++) {                                                 \
        const vec4 v = loadB4(clamp((q) + int(t), 0, (qhi)));                                      \
        e[4u * t + 1u] = v.x, e[4u * t + 2u] = v.y, e[4u * t + 3u] = v.z, e[4u * t + 4u] = v.w;   \
    }

// MODE 2's walks by whole channels: e[p] = the element ox0 + p - 1 of row yy of the plane (x's
// channel in its sample), p = 0 .. L + 1 (rows outside the image read clamped ones: the caller
// masks them). UP: the upsampled row's run is x's row yy/2 from element ox0/2, each element
// twice: L/8 quads of x, and the elements before and after them; at L = 4 half a quad, the
// quad's other half or a neighbour's element either side (host: x's rows and planes whole
// quads). Else L/4 quads of the row and an element of the quad either side.
#define X_RUN(e, plane, yy, ox0, qhi)                                                              \
    if (UP != 0u) {                                                                                \
        const int i0 = (plane) + (clamp((yy), 0, HB - 1) >> 1) * SBY + ((ox0) >> 1), qs = i0 >> 2; \
        if (L >= 8u) {                                                                             \
            e[0] = loadB4(clamp(qs - 1, 0, (qhi))).w;                                              \
            e[L + 1u] = loadB4(clamp(qs + int(L / 8u), 0, (qhi))).x;                               \
            [[unroll]] for (uint t = 0; t < L / 8u; t++) {                                         \
                const vec4 v = loadB4(clamp(qs + int(t), 0, (qhi)));                               \
                [[unroll]] for (uint c = 0; c < 8u; c++) e[8u * t + 1u + c] = v[c / 2u];           \
            }                                                                                      \
        } else {                                                                                   \
            const vec4 v = loadB4(clamp(qs, 0, (qhi)));                                            \
            const bool hi = (i0 & 2) != 0;                                                         \
            const vec2 hv = hi ? v.zw : v.xy;                                                      \
            e[0] = hi ? v.y : loadB4(clamp(qs - 1, 0, (qhi))).w;                                   \
            [[unroll]] for (uint c = 0; c < 4u; c++) e[1u + c] = hv[c / 2u];                       \
            e[5] = hi ? loadB4(clamp(qs + 1, 0, (qhi))).x : v.z;                                   \
        }                                                                                          \
    } else {                                                                                       \
        const int q = ((plane) + (yy) * SBY + (ox0)) >> 2;                                         \
        e[0] = loadB4(clamp(q - 1, 0, (qhi))).w;                                                   \
        e[L + 1u] = loadB4(clamp(q + int(L / 4u), 0, (qhi))).x;                                    \
        RUN_OF_QUADS(e, q, (qhi))                                                                  \
    }

// A's offset of k within a row (digits (c2, c1, c0) of k = (c2 * E1k + c1) * E0k + c0): MODE 0
// rows are contiguous in k.
int a_kofs(int ka, int E1k, int E0k, int SA2, int SA1, int SA0) {
    if (MODE == 0u) return ka;
    const int q = ka / E0k;
    return (q / E1k) * SA2 + (q % E1k) * SA1 + (ka % E0k) * SA0;
}

// The multiply-adds of a chunk of KN k's (operands ak[KN][TM], bk[KN][TN]) in RM x RN register
// blocks, each walking the chunk's k's in order (see the plain walk's two phases in main).
#define CHUNK_FMA(KN)                                                                                     \
    [[unroll]] for (uint ib = 0; ib < TM / RM; ib++)                                                      \
        [[unroll]] for (uint jb = 0; jb < TN / RN; jb++)                                                  \
            [[unroll]] for (uint kk = 0; kk < (KN); kk++)                                                 \
                [[unroll]] for (uint i = 0; i < RM; i++)                                                  \
                    [[unroll]] for (uint j = 0; j < RN; j++)                                              \
                        acc[ib * RM + i][jb * RN + j] =                                                   \
                            fma(ak[kk][ib * RM + i], bk[kk][jb * RN + j], acc[ib * RM + i][jb * RN + j])

// WINO: the chunk's RW rows of taps as WT products a tile of columns: for term t, row r,
// acc[m][t*NP + p] += uk[r*WT + t][m] vk[r*WT + t][p], each sum walking the rows in order.
#define CHUNK_WINO(RW)                                                                                    \
    [[unroll]] for (uint t = 0; t < WT; t++)                                                              \
        [[unroll]] for (uint ib = 0; ib < TM / RM; ib++)                                                  \
            [[unroll]] for (uint jb = 0; jb < NP / RNP; jb++)                                             \
                [[unroll]] for (uint r = 0; r < (RW); r++)                                                \
                    [[unroll]] for (uint i = 0; i < RM; i++)                                              \
                        [[unroll]] for (uint j = 0; j < RNP; j++)                                         \
                            acc[ib * RM + i][t * NP + jb * RNP + j] =                                     \
                                fma(uk[r * WT + t][ib * RM + i], vk[r * WT + t][jb * RNP + j],            \
                                    acc[ib * RM + i][t * NP + jb * RNP + j])

void main() {
    const bool sgOK = SG != 0u;
    uint lane, lg;
    if (sgOK) {
        lane = gl_SubgroupInvocationID % L;
        lg = gl_SubgroupID * (gl_SubgroupSize / L) + gl_SubgroupInvocationID / L;
    } else {
        lane = gl_LocalInvocationIndex % L;
        lg = gl_LocalInvocationIndex / L;
    }
    const uint gbase = gl_SubgroupInvocationID - lane;
    // WM, the lane groups along M, is a push constant, not a specialization constant: it only
    // places the lane groups' tiles, once an invocation, and as a constant it made the same walk
    // two pipelines where M holds one tile of rows in one convolution and two in another.
    // lavapipe spends up to ~0.6 s of CPU creating one of the large walks, in every process.
    const uint WM = uint(pc.wm), WN = gl_WorkGroupSize.x / (L * WM), BM = WM * TM, BN = WN * L * TN;
    const uint gm = lg / WN, gn = lg % WN;

    const int G = pc.groups, s = pc.stride;
    const int Cig = pc.cin / G, Cog = pc.cout / G;
    const int HW = pc.h * pc.w, P = pc.ho * pc.wo, KK = pc.kh * pc.kw;
    const int HWB = UP != 0u ? (pc.h / 2) * (pc.w / 2) : HW, WBrow = UP != 0u ? pc.w / 2 : pc.w;  // x's planes
    const int z = int(gl_WorkGroupID.z);

    int g, M, N, kbeg, kend, E1k, E0k, E1n, E0n;
    int AM, A0, SA2, SA1, SA0;  // A(m, k) = A[m*AM + A0 + c2k*SA2 + c1k*SA1 + c0k*SA0]
    int B0, SB2, SK2, SBY, HB, WB, Y0n, YSn, X0n, XSn, YK, XK;
    int C0, SC2, SC1, SC0, SCM;  // C(m, n) = C[C0 + c2n*SC2 + c1n*SC1 + c0n*SC0 + m*SCM]
    const int KWA = WINO != 0u ? int(WT) : pc.kw;  // A's elements a row of taps (WINO: u's factors)
    if (MODE == 0u) {
        g = z;
        M = Cog, N = pc.nb * P, kbeg = 0, kend = Cig * KK;
        E1k = pc.kh, E0k = pc.kw, E1n = pc.ho, E0n = pc.wo;
        AM = Cig * pc.kh * KWA, A0 = g * Cog * AM, SA2 = KK, SA1 = pc.kw, SA0 = 1;
        B0 = g * Cig * HWB, SB2 = pc.cin * HWB, SK2 = HWB, SBY = WBrow, HB = pc.h, WB = pc.w;
        Y0n = -pc.ph, YSn = s, X0n = -pc.pw, XSn = s, YK = 1, XK = 1;
        C0 = g * Cog * P, SC2 = pc.cout * P, SC1 = pc.wo, SC0 = 1, SCM = P;
    } else if (MODE == 1u) {
        g = z / (s * s);
        const int ry = (z % (s * s)) / s, rx = z % s;
        // first input row/column of this phase, how many there are, and the taps that reach them
        // (GLSL leaves % of negatives undefined, so keep the operands non-negative.)
        const int iyf = (ry - pc.ph % s + s) % s, ixf = (rx - pc.pw % s + s) % s;
        const int nu = iyf < pc.h ? (pc.h - iyf + s - 1) / s : 0;
        const int nv = ixf < pc.w ? (pc.w - ixf + s - 1) / s : 0;
        const int nty = ry < pc.kh ? (pc.kh - ry + s - 1) / s : 0;
        const int ntx = rx < pc.kw ? (pc.kw - rx + s - 1) / s : 0;
        M = Cig, N = pc.nb * nu * nv, kbeg = 0, kend = Cog * nty * ntx;
        E1k = nty, E0k = ntx, E1n = nu, E0n = nv;
        AM = pc.kh * KWA, A0 = g * Cog * Cig * AM + ry * KWA + rx, SA2 = Cig * AM, SA1 = s * KWA, SA0 = s;
        B0 = g * Cog * P, SB2 = pc.cout * P, SK2 = P, SBY = pc.wo, HB = pc.ho, WB = pc.wo;
        Y0n = (iyf + pc.ph - ry) / s, YSn = 1, X0n = (ixf + pc.pw - rx) / s, XSn = 1, YK = -1, XK = -1;
        C0 = g * Cig * HW + iyf * pc.w + ixf, SC2 = pc.cin * HW, SC1 = s * pc.w, SC0 = s, SCM = HW;
    } else {
        const int splits = int(gl_NumWorkGroups.z) / G, split = z % splits;
        g = z / splits;
        M = Cog, N = Cig * KK, kbeg = split * pc.kchunk, kend = min(pc.nb * P, kbeg + pc.kchunk);
        E1k = pc.ho, E0k = pc.wo, E1n = pc.kh, E0n = pc.kw;
        AM = P, A0 = g * Cog * P, SA2 = pc.cout * P, SA1 = pc.wo, SA0 = 1;
        B0 = g * Cig * HWB, SB2 = HWB, SK2 = pc.cin * HWB, SBY = WBrow, HB = pc.h, WB = pc.w;
        Y0n = -pc.ph, YSn = 1, X0n = -pc.pw, XSn = 1, YK = s, XK = s;
        C0 = (split * pc.cout + g * Cog) * N, SC2 = KK, SC1 = pc.kw, SC0 = 1, SCM = N;
    }
    // Phases with no pixels (MODE 1) and the ragged grid edge: whole workgroups leave together.
    if (int(gl_WorkGroupID.x * BN) >= N || int(gl_WorkGroupID.y * BM) >= M) return;

    const int m0 = int(gl_WorkGroupID.y * BM + gm * TM);
    const int n0 = int(gl_WorkGroupID.x * BN + gn * L * TN);

    // Per column: its image origin (ycol, xcol), its B offset, its C offset and (mode 0) its sample.
    int ycol[TN], xcol[TN], bofs[TN], cofs[TN], ncol[TN];
    [[unroll]] for (uint j = 0; j < TN; j++) {
        const int n = min(n0 + int(col_of(j, lane)), N - 1);
        const int c0n = n % E0n, q = n / E0n, c1n = q % E1n, c2n = q / E1n;
        ycol[j] = Y0n + c1n * YSn;
        xcol[j] = X0n + c0n * XSn;
        bofs[j] = B0 + c2n * SB2 + (UP != 0u ? 0 : ycol[j] * SBY + xcol[j]);
        cofs[j] = C0 + c2n * SC2 + c1n * SC1 + c0n * SC0;
        ncol[j] = c2n * pc.cout + g * M;
    }
    int arow[TM];
    [[unroll]] for (uint i = 0; i < TM; i++) arow[i] = min(m0 + int(i), M - 1) * AM + A0;

    float acc[TM][AN];
    [[unroll]] for (uint i = 0; i < TM; i++)
        [[unroll]] for (uint j = 0; j < AN; j++) acc[i][j] = 0.0;

    // B's k index walks in order, so its digits are counted, not divided.
    int c0k = 0, c1k = 0, c2k = 0;
    if (kbeg < kend) {
        c0k = kbeg % E0k;
        c1k = (kbeg / E0k) % E1k;
        c2k = kbeg / (E0k * E1k);
    }
    // SHIFT = KW, the kernel's width (modes 0 and 1 at stride 1 with ho = h and wo = w, no UP;
    // host: P a multiple of L*TN). A lane group's L*TN columns are then consecutive pixels of one
    // plane, and the KW taps of one (channel, tap row) of k read, between them, one window of
    // L*TN + KW - 1 consecutive elements: TN + 1 gathers a row of taps instead of KW*TN, each tap
    // picked out of two window vectors with shuffles (constant permutations on llvmpipe, where a
    // gather is ~50 instructions). k walks rows r = (channel c2, tap row c1) of KW taps, k = r*KW
    // + kx, in the order of the plain walk, so every sum has the same terms in the same order.
    // A chunk is RW rows (RW*KW k's); lane l holds A(m, k0 + t*L + l), t < NT, for the chunk.
#if VKD_WALK(1)
    if (WINO >= 3u && MODE != 2u) {
        // The group's sample's plane and each tile's first pixel (the group's columns stay in one
        // plane: host, P a multiple of L*TN). Rows outside the image and the elements left and
        // right of x's rows are the padding's zeros.
        const int W = WB, H = HB, PQ = E1n * E0n, nq = min(n0, N - 1), pix0 = nq % PQ, nch = kend / 9;
        const int planeB = B0 + (nq / PQ) * SB2;
        const uint NPA = NP > 0u ? NP : 1u;  // (a constant array size must be at least 1)
        int prow[NPA], pcol[NPA];
        [[unroll]] for (uint p = 0; p < NP; p++) {
            const int pix = pix0 + int(col_of(4u * TR * p, lane));
            prow[p] = pix / W, pcol[p] = pix % W;
        }
        // u's WT factors of (row m, channel c) are QU quads; the tile's TM x QU quads a channel are
        // fetched NQ3 a lane. The data gradient's rows (input channels) of one output channel
        // are a contiguous block of u.
        // RC channels a chunk, so each block of accumulators is loaded and stored once for RC *
        // RM * RNP products (at one channel a chunk the walk ran ~15% below F(4, 3) along the rows;
        // at the 16 x 16 tile 4 channels measured 82-97 GFLOP/s where 2 gave 92-115)
        const uint NQ3 = (TM * QU + L - 1u) / L, RC = 2u, RPL = TM / L > 0u ? TM / L : 1u;
        const int mblk = min(m0, M - int(TM));
        for (int c0 = 0; c0 < nch; c0 += int(RC)) {
            float vk[RC * WT][NPA], uk[RC * WT][TM];
            [[unroll]] for (uint r = 0; r < RC; r++) {
                const int c = min(c0 + int(r), nch - 1);
                const bool cv = c0 + int(r) < nch;
                // UW: this lane's RPL rows' 36 factors made here from w's 9 taps, not read from u
                float fw[UW != 0u ? RPL : 1u][36];
                [[unroll]] for (uint j = 0; j < RPL && UW != 0u; j++) {
                    const int row = MODE == 0u ? min(m0 + int(lane * RPL + j), M - 1) : mblk + int(lane * RPL + j);
                    const int kofs = (MODE == 0u ? row * nch + c : c * M + row) * 9;
                    float g[9];
                    [[unroll]] for (uint q = 0; q < 9u; q++) g[q] = loadA(kofs + int(q));
                    wino_factors36(g, fw[j]);
                }
                vec4 aq[NQ3];
                [[unroll]] for (uint u = 0; u < NQ3 && UW == 0u; u++) {
                    const int p = min(int(u * L + lane), int(TM * QU) - 1);
                    const int ofs = MODE == 0u ? (min(m0 + p / int(QU), M - 1) * nch + c) * int(WT) + 4 * (p % int(QU))
                                               : (c * M + mblk) * int(WT) + 4 * p;
                    aq[u] = loadA4(ofs);
                }
                [[unroll]] for (uint p = 0; p < NP; p++) {
                    float X[6][6];  // (rows TWR used: glslang checks constant indices against literal sizes)
                    [[unroll]] for (uint t = 0; t < TWR; t++) {
                        const int y = MODE == 1u ? prow[p] + int(TR) - int(t) : prow[p] - 1 + int(t);
                        const bool rok = cv && uint(y) < uint(H);
                        // UP: the upsampled row's quad is source pixels pcol/2, pcol/2 + 1 of row y/2,
                        // each twice, one half of a source quad (host: source rows and planes whole quads)
                        const int yc = clamp(y, 0, H - 1), eu = planeB + c * SK2 + (yc >> 1) * (W >> 1) + (pcol[p] >> 1);
                        const vec4 qs = loadB4((UP != 0u ? eu : planeB + c * SK2 + yc * W + pcol[p]) >> 2);
                        const vec4 q = UP == 0u ? qs : (eu & 2) != 0 ? qs.zzww : qs.xxyy;
                        const float lw = subgroupShuffle(q.w, gbase + (lane + L - 1u) % L);
                        const float rx = subgroupShuffle(q.x, gbase + (lane + 1u) % L);
                        const float el = rok && pcol[p] > 0 ? lw : 0.0, er = rok && pcol[p] + 4 < W ? rx : 0.0;
                        const vec4 e = rok ? (MODE == 1u ? q.wzyx : q) : vec4(0.0);
                        const float d0 = MODE == 1u ? er : el, d5 = MODE == 1u ? el : er;
                        f43_in(d0, e.x, e.y, e.z, e.w, d5, X[t]);
                    }
                    [[unroll]] for (uint x = 0; x < 6u && WINO == 3u; x++) {
                        vk[r * WT + x][p] = X[0][x] - X[2][x];
                        vk[r * WT + 6u + x][p] = X[1][x] + X[2][x];
                        vk[r * WT + 12u + x][p] = X[2][x] - X[1][x];
                        vk[r * WT + 18u + x][p] = X[1][x] - X[3][x];
                    }
                    // WINO = 4: F(4, 3)'s input factors down each column of the row factors
                    [[unroll]] for (uint x = 0; x < 6u && WINO == 4u; x++) {
                        float v[6];
                        f43_in(X[0][x], X[1][x], X[2][x], X[3][x], X[4][x], X[5][x], v);
                        [[unroll]] for (uint s = 0; s < 6u; s++) vk[r * WT + 6u * s + x][p] = v[s];
                    }
                }
                [[unroll]] for (uint t = 0; t < WT; t++)
                    [[unroll]] for (uint i = 0; i < TM; i++) {
                        const uint p = i * QU + t / 4u;
                        uk[r * WT + t][i] = UW != 0u ? grp_lane(fw[i % RPL][t], gbase, i / RPL)
                                                     : grp_lane(aq[p / L][t % 4u], gbase, p % L);
                    }
            }
            CHUNK_WINO(RC);
        }
    }
#endif
#if VKD_WALK(2)
    if (SHIFT != 0u && MODE != 2u && WINO < 3u) {
        const uint KW = SHIFT > 0u ? SHIFT : 1u;
        // a chunk: RW rows of taps, held in NT A values a lane (8 rows measured no faster at 512
        // bits, and LLVM took ~2 s longer to compile each pipeline)
        // (the data gradient reading A in quads or making its factors, UW: one output channel's 3
        // tap rows, see AV4 below; two selects because one on `AV4 != 0u || UW != 0u`, or on their
        // sum, made lavapipe fail to create every pipeline of this shader)
        const uint RW = MODE == 1u && AV4 != 0u ? 3u : MODE == 1u && UW != 0u ? 3u : 4u, NT = (RW * KW + L - 1u) / L;
        const uint FL = MODE == 1u ? 1u : 0u;  // the data gradient's taps walk the window backwards
        const int rows = kend / int(KW);
        // The group's first column: its sample's plane, and its window's first element (this lane's).
        const int nq = min(n0, N - 1), PQ = E1n * E0n;
        const int planeB = B0 + (nq / PQ) * SB2;
        const int wbase = planeB + nq % PQ + Y0n * SBY + X0n - int(FL * (KW - 1u)) + int(lane);
        bool colok[TN][KW];
        [[unroll]] for (uint j = 0; j < TN; j++)
            [[unroll]] for (uint kx = 0; kx < KW; kx++) colok[j][kx] = uint(xcol[j] + int(kx) * XK) < uint(WB);
        int c1r = 0, c2r = 0;  // the next row's tap row and channel, counted
        // AV4 (MODE 0; host: rows of A hold whole quads): the chunk's TM x RW*KW block of A is
        // QR quads a row, TM*QR quads in all, and lane l fetches quads p = u*L + l, u < NQ (row
        // p / QR, quad p % QR): NQ vec4 fetches a lane instead of TM*NT scalar ones.
        // AV4 in MODE 1 (host: a 3x3 kernel, Cig and TM multiples of 4, M a multiple of TM): a
        // chunk is the 9 taps of one output channel co, and A(m0 + i, k0 + kk) = w[co][m0 + i][kk]
        // is element 9i + kk of a contiguous TM x 9 block: TM*9/4 quads, fetched the same way,
        // instead of TM*NT scalar gathers of w's strided rows (the data gradient's largest load).
        // WINO: a row of taps is u's WT factors (shaders/winograd.comp), read in quads
        const uint KA = WINO != 0u ? WT : KW;
        const uint QR = RW * KA / 4u, QB = MODE == 1u ? TM * RW * KA / 4u : TM * QR, NQ = (QB + L - 1u) / L;
        const int kendA = rows * int(KA);
        // a lane group wholly past M reads the last block (it stores nothing)
        const int mblk = min(m0, M - int(TM));
        // UW (WINO = 2): the chunk's TM x RW rows of taps are PPL a lane (row i, row r of the chunk:
        // pair e = i RW + r, lane e / PPL), each made into its six factors here from w's three taps,
        // the data gradient's from the reversed row (as the transform's FLIP). With AV4 (host: a
        // vec4 view of w, input channels a multiple of 4; MODE 0: TM a multiple of L) a lane's
        // 3 PPL taps are whole quads of w: in MODE 0 its TM / L rows' 12 taps each (a chunk is 4
        // tap rows of one output channel), in MODE 1 a run of the chunk's contiguous TM x 9 block
        // (PPL rounded up to a multiple of 4; lanes past the block read its last quad and make
        // factors nobody reads). 3 PPL / 4 vec4 fetches a chunk instead of 3 PPL scalar ones.
        const uint PPL1 = (TM * RW + L - 1u) / L;
        const uint PPL = UW == 0u ? 1u : AV4 != 0u && MODE == 1u ? (PPL1 + 3u) / 4u * 4u : PPL1;
        for (int k0 = 0; k0 < kend; k0 += int(RW * KW)) {
            float av[AV4 != 0u ? 1u : NT][TM];
            vec4 aq[AV4 != 0u ? NQ : 1u];
            float fw[PPL][6], tw[3u * PPL];  // a lane's pairs' factors, and their taps
            // (row k0 / 3 + r of k: MODE 0 (input channel, tap row) of output channel m; MODE 1 (a
            // chunk: output channel k0 / 9's 3 tap rows; host: a 3x3 kernel) tap row r against input
            // channel m. No division by a push constant: llvmpipe divides lane by lane.)
            [[unroll]] for (uint h = 0; h < 3u * PPL / 4u && UW != 0u && AV4 != 0u; h++) {
                const int q = MODE == 0u ? ((g * M + min(m0 + int(lane * (PPL / 4u) + h / 3u), M - 1)) * rows * 3 + k0) / 4 + int(h % 3u)
                                         : ((g * Cog + k0 / 9) * M + mblk) * 9 / 4 + min(int(lane * (3u * PPL / 4u) + h), int(TM * 9u / 4u) - 1);
                const vec4 v = loadA4(4 * q);
                tw[4u * h] = v.x, tw[4u * h + 1u] = v.y, tw[4u * h + 2u] = v.z, tw[4u * h + 3u] = v.w;
            }
            [[unroll]] for (uint j = 0; j < PPL && UW != 0u; j++) {
                const uint e = min(lane * PPL + j, TM * RW - 1u), i = e / RW, r = e % RW;
                const int trow = k0 / int(KW) + int(r), tr = min(trow, rows - 1);
                const int ofs = MODE == 0u ? ((g * M + min(m0 + int(i), M - 1)) * rows + tr) * 3
                                           : (((g * Cog + k0 / 9) * M + mblk + int(i)) * 3 + int(r)) * 3;
                [[unroll]] for (uint k = 0; k < 3u && AV4 == 0u; k++) tw[3u * j + k] = loadA(ofs + int(k));
                float f[6];
                wino_factors6(tw[3u * j + (MODE == 1u ? 2u : 0u)], tw[3u * j + 1u], tw[3u * j + (MODE == 1u ? 0u : 2u)], f);
                [[unroll]] for (uint t = 0; t < 6u; t++) fw[j][t] = trow < rows ? f[t] : 0.0;
            }
            if (UW != 0u) {
                // (fw, above)
            } else if (AV4 != 0u && MODE == 1u) {
                const int blk = A0 + (k0 / int(RW * KW)) * SA2 + mblk * AM;
                [[unroll]] for (uint u = 0; u < NQ; u++) aq[u] = loadA4(blk + 4 * min(int(u * L + lane), int(QB) - 1));
            } else if (AV4 != 0u) {
                [[unroll]] for (uint u = 0; u < NQ; u++) {
                    const int p = int(u * L + lane), kq = (k0 / int(KW)) * int(KA) + (p % int(QR)) * 4;
                    const vec4 v = loadA4(min(m0 + p / int(QR), M - 1) * AM + A0 + min(kq, kendA - 4));
                    aq[u] = kq < kendA ? v : vec4(0.0);
                }
            } else {
                [[unroll]] for (uint t = 0; t < NT; t++) {
                    const int kt = k0 + int(t * L + lane), ka = min(kt, kend - 1);
                    const int aofs = a_kofs(ka, E1k, E0k, SA2, SA1, SA0);
                    [[unroll]] for (uint i = 0; i < TM; i++) {
                        const float v = loadA(arow[i] + aofs);
                        av[t][i] = kt < kend ? v : 0.0;
                    }
                }
            }
            float ak[RW * KW][TM], bk[RW * KW][TN];
            // WINO: the rows' transformed taps (WT a row) and the lane's transformed inputs (WT a tile)
            float uk[WINO != 0u ? RW * WT : 1u][TM], vk[WINO != 0u ? RW * WT : 1u][NP > 0u ? NP : 1u];
            [[unroll]] for (uint r = 0; r < RW; r++) {
                const bool rv = k0 / int(KW) + int(r) < rows;
                const int c2 = rv ? c2r : 0, ky = (rv ? c1r : 0) * YK;
                // window reads stay in the row's plane (what they read outside a valid tap is unused)
                const int lo = planeB + c2 * SK2, hi = lo + HB * WB - 1, rofs = c2 * SK2 + ky * SBY;
                if (QWIN != 0u) {
                    // The window starts one element before a quad boundary (host: x's planes and rows
                    // whole quads, n0 a multiple of 4L): qb is its first whole quad, and the element
                    // at shift sl of column 4h + c is element c + sl of (left, quad h, right).
                    const int qb = (wbase - int(lane) + rofs + 1) >> 2, qlo = lo >> 2, qhi = hi >> 2;
                    vec4 q[TN >= 4u ? TN / 4u : 1u];  // (a constant array size must be at least 1)
                    [[unroll]] for (uint h = 0; h < TN / 4u; h++) q[h] = loadB4(clamp(qb + int(h * L + lane), qlo, qhi));
                    // the group's two ends: lane 0 fetches the quad before it, the others the one after
                    const vec4 ends = loadB4(clamp(lane == 0u ? qb - 1 : qb + int(TN / 4u * L), qlo, qhi));
                    const float endL = grp_lane(ends.w, gbase, 0u), endR = grp_lane(ends.x, gbase, 1u);
                    [[unroll]] for (uint h = 0; h < TN / 4u; h++) {
                        const float lw = subgroupShuffle(q[h].w, gbase + (lane + L - 1u) % L);
                        const float lp = h > 0u ? grp_lane(q[h > 0u ? h - 1u : 0u].w, gbase, L - 1u) : endL;
                        const float rx = subgroupShuffle(q[h].x, gbase + (lane + 1u) % L);
                        const float rn = h + 1u < TN / 4u ? grp_lane(q[min(h + 1u, TN / 4u - 1u)].x, gbase, 0u) : endR;
                        const float e6[6] = {lane == 0u ? lp : lw, q[h].x, q[h].y, q[h].z, q[h].w, lane == L - 1u ? rn : rx};
                        if (WINO != 0u) {
                            // the quad's row is inside the image, its pixels too; the elements
                            // either side only where its edge's columns reach them (colok)
                            const bool rok = rv && uint(ycol[4u * h] + ky) < uint(HB);
                            float d[6];
                            d[0] = rok && colok[4u * h][FL != 0u ? KW - 1u : 0u] ? e6[0] : 0.0;
                            [[unroll]] for (uint c = 1; c < 5u; c++) d[c] = rok ? e6[c] : 0.0;
                            d[5] = rok && colok[4u * h + 3u][FL != 0u ? 0u : KW - 1u] ? e6[5] : 0.0;
                            if (WINO == 2u) {  // the quad's F(4, 3) input factors
                                float v[6];
                                f43_in(d[0], d[1], d[2], d[3], d[4], d[5], v);
                                [[unroll]] for (uint t = 0; t < 6u; t++) vk[r * 6u + t][h] = v[t];
                            }
                            [[unroll]] for (uint pp = 0; pp < (WINO == 2u ? 0u : 2u); pp++) {
                                const uint p = 2u * h + pp, o = 2u * pp;  // pair p reads d[o .. o + 3]
                                vk[r * 4u + 0u][p] = d[o] - d[o + 2u];
                                vk[r * 4u + 1u][p] = d[o + 1u] + d[o + 2u];
                                vk[r * 4u + 2u][p] = d[o + 2u] - d[o + 1u];
                                vk[r * 4u + 3u][p] = d[o + 1u] - d[o + 3u];
                            }
                        } else {
                            [[unroll]] for (uint kx = 0; kx < KW; kx++) {
                                const uint sl = FL != 0u ? KW - 1u - kx : kx;
                                [[unroll]] for (uint c = 0; c < 4u; c++) {
                                    const uint j = 4u * h + c;
                                    const bool ok = rv && uint(ycol[j] + ky) < uint(HB) && colok[j][kx];
                                    bk[r * KW + kx][j] = ok ? e6[c + sl] : 0.0;
                                }
                            }
                        }
                    }
                } else {
                    float win[TN + 1];
                    [[unroll]] for (uint j = 0; j <= TN; j++) win[j] = loadB(clamp(wbase + rofs + int(j * L), lo, hi));
                    [[unroll]] for (uint kx = 0; kx < KW; kx++) {
                        const uint sl = FL != 0u ? KW - 1u - kx : kx, src = gbase + (lane + sl) % L;
                        [[unroll]] for (uint j = 0; j < TN; j++) {
                            const float a = subgroupShuffle(win[j], src), b = subgroupShuffle(win[j + 1u], src);
                            const bool ok = rv && uint(ycol[j] + ky) < uint(HB) && colok[j][kx];
                            bk[r * KW + kx][j] = ok ? (lane + sl < L ? a : b) : 0.0;
                        }
                    }
                }
                [[unroll]] for (uint kx = 0; kx < KW && WINO == 0u; kx++) {
                    const uint kk = r * KW + kx;
                    [[unroll]] for (uint i = 0; i < TM; i++) {
                        const uint e = i * RW * KW + kk, p = MODE == 1u ? e / 4u : i * QR + kk / 4u;
                        ak[kk][i] = AV4 != 0u ? grp_lane(aq[p / L][MODE == 1u ? e % 4u : kk % 4u], gbase, p % L)
                                              : grp_lane(av[kk / L][i], gbase, kk % L);
                    }
                }
                // WINO: u's factors of the row, F(2, 3)'s data gradient's first and last swapped (its
                // window meets the taps reversed, and reversing g swaps exactly those two; F(4, 3)'s
                // data gradient reads a u made from the reversed rows)
                [[unroll]] for (uint t = 0; t < WT && WINO != 0u; t++) {
                    const uint tf = WINO == 1u && FL != 0u && (t == 0u || t == 3u) ? 3u - t : t, kk = r * KA + tf;
                    [[unroll]] for (uint i = 0; i < TM; i++) {
                        const uint e = i * RW * KA + kk, p = MODE == 1u ? e / 4u : i * QR + kk / 4u;
                        uk[r * WT + t][i] = UW != 0u ? grp_lane(fw[(i * RW + r) % PPL][t], gbase, (i * RW + r) / PPL)
                                                     : grp_lane(aq[p / L][MODE == 1u ? e % 4u : kk % 4u], gbase, p % L);
                    }
                }
                c1r++;
                const bool w1 = c1r == E1k;
                c1r = w1 ? 0 : c1r;
                c2r += w1 ? 1 : 0;
            }
            if (WINO != 0u) {
                CHUNK_WINO(RW);
            } else {
                CHUNK_FMA(RW * KW);
            }
        }
    }
#endif
    // WINO = 4 in MODE 2 (host: the TAPS walk with F(3, 4)'s conditions, x's rows a multiple of 4
    // and at least 32 wide, the chunks whole bands of 4 rows; UP as there): the weight gradient in
    // both directions, a 4 x 4 tile of dy against its 6 x 6 window of x: 36 products for the 9 taps
    // over 16 pixels where F(3, 4) along the rows took 72 (the multiply-adds were ~60-70% of that
    // walk's time). A chunk is a band
    // of 4 rows by L pixels, L/4 tiles; lane r*Q + q makes the 36 factors of dy's tile q for rows
    // m0 + r + 4j (F(3, 4)'s six along each of its 4 rows, then down each column), lane l those of
    // its channel's window (the forward's input factors along the rows, then down the columns).
    // Term t = 6 s + x: factor s down, x along. The epilogue turns each row of 6 sums into 3 taps
    // (F(3, 4)'s, as below), then each column of those.
#if VKD_WALK(3)
    for (int b0 = kbeg; MODE == 2u && WINO == 4u && b0 < kend; b0 += 4 * pc.wo) {
        const int Q = int(L / 4u), n = b0 / P, oy = (b0 % P) / pc.wo;
        // this lane's channel's plane in sample n (column 0 is its tap (0, 0); UP: bofs holds the
        // plane alone), and x's last quad
        const int plane = (UP != 0u ? bofs[0] : bofs[0] - xcol[0] - ycol[0] * SBY) + n * SK2;
        const int qhi = pc.nb * pc.cin * HWB / 4 - 1;
        for (int ox0 = 0; ox0 < pc.wo; ox0 += int(L)) {
            // dy's tiles: row m0 + r + 4j, quad q = lane % Q of the band's columns ox0 .. ox0 + L - 1
            const int r = int(lane) / Q, q = int(lane) % Q;
            float fac[TM >= 4u ? TM / 4u : 1u][36];
            [[unroll]] for (uint j = 0; j < TM / 4u; j++) {
                const int arow0 = min(m0 + r + 4 * int(j), M - 1) * AM + A0 + n * SA2 + oy * pc.wo + ox0 + 4 * q;
                float R[4][6];
                [[unroll]] for (uint rr = 0; rr < 4u; rr++) {
                    const vec4 v = loadA4(arow0 + int(rr) * pc.wo);
                    f34_dy(v.x, v.y, v.z, v.w, R[rr]);
                }
                [[unroll]] for (uint x = 0; x < 6u; x++) {
                    float v[6];
                    f34_dy(R[0][x], R[1][x], R[2][x], R[3][x], v);
                    [[unroll]] for (uint s = 0; s < 6u; s++) fac[j][6u * s + x] = v[s];
                }
            }
            // x's window rows oy - 1 .. oy + 4, elements ox0 - 1 .. ox0 + L: each tile's 6 x 6
            float X[L / 4u][6][6];
            [[unroll]] for (uint t = 0; t < 6u; t++) {
                const int yy = oy + int(t) - 1;
                float e[L + 2u];
                X_RUN(e, plane, yy, ox0, qhi)
                const bool rok = uint(yy) < uint(HB);
                float d[L + 2u];
                [[unroll]] for (uint i = 0; i < L + 2u; i++) d[i] = rok && uint(ox0 + int(i) - 1) < uint(WB) ? e[i] : 0.0;
                [[unroll]] for (uint p = 0; p < L / 4u; p++) {
                    const uint o = 4u * p;
                    f43_in(d[o], d[o + 1u], d[o + 2u], d[o + 3u], d[o + 4u], d[o + 5u], X[p][t]);
                }
            }
            float vk[(L / 4u) * 36u][1];
            [[unroll]] for (uint p = 0; p < L / 4u; p++)
                [[unroll]] for (uint x = 0; x < 6u; x++) {
                    float v[6];
                    f43_in(X[p][0][x], X[p][1][x], X[p][2][x], X[p][3][x], X[p][4][x], X[p][5][x], v);
                    [[unroll]] for (uint s = 0; s < 6u; s++) vk[p * 36u + 6u * s + x][0] = v[s];
                }
            // dy's factors of each tile from its lanes; each sum walks the chunk's tiles in order
            float uk[(L / 4u) * 36u][TM];
            [[unroll]] for (uint p = 0; p < L / 4u; p++)
                [[unroll]] for (uint t = 0; t < 36u; t++) {
                    [[unroll]] for (uint i = 0; i < TM; i++)
                        uk[p * 36u + t][i] = grp_lane(fac[i / 4u][t], gbase, (i % 4u) * uint(Q) + p);
                }
            CHUNK_WINO(L / 4u);
        }
    }
#endif
#if VKD_WALK(4)
    for (int k0 = kbeg; (SHIFT == 0u || MODE == 2u) && !(MODE == 2u && WINO == 4u) && k0 < kend; k0 += int(L)) {
        // A(m0+i, k0+lane), zero beyond kend. MODE 0 rows are contiguous in k.
        float av[TM];
        // AV4: lane (r * Q + q) of a group holds the quad k0 + 4q .. k0 + 4q + 3 of rows
        // m0 + r + 4j (Q = L/4 quads a chunk); zero past kend, where whole quads end.
        const uint Q = L / 4u;
        vec4 av4[TM >= 4u ? TM / 4u : 1u];
        if (AV4 != 0u) {
            const uint q = lane % Q, r = lane / Q;
            const int ka = k0 + int(4u * q), kc = ka < kend ? ka : k0;
            const int aofs = (kc / P) * SA2 + kc % P;  // sample, then pixel: a quad stays in one plane
            [[unroll]] for (uint j = 0; j < TM / 4u; j++) {
                const vec4 v = loadA4(min(m0 + int(r + 4u * j), M - 1) * AM + A0 + aofs);
                av4[j] = ka < kend ? v : vec4(0.0);
            }
        } else if (sgOK) {
            const int ka = min(k0 + int(lane), kend - 1);
            const bool kin = k0 + int(lane) < kend;
            const int aofs = a_kofs(ka, E1k, E0k, SA2, SA1, SA0);
            [[unroll]] for (uint i = 0; i < TM; i++) {
                const float v = loadA(arow[i] + aofs);
                av[i] = kin ? v : 0.0;
            }
        }
        // WINO (mode 2; host: AV4): the quads' two pairs of pixels as dy's factors, (dy0, (dy0 +
        // dy1) / 2, (dy0 - dy1) / 2, dy1), the first pair's in wa, the second's in wb: made once by
        // the lane that loaded the quad, not by every lane that uses them
        // WINO = 2 (mode 2): F(3, 4), a quad of dy as the six factors (dy0, dy0 + dy1 + dy2 + dy3,
        // dy0 - dy1 + dy2 - dy3, dy0 + dy1/2 + dy2/4 + dy3/8, dy0 - dy1/2 + dy2/4 - dy3/8, dy3)
        // (F(4, 3)'s output transform, transposed), the first four in wa, the last two in wb
        const bool wino2 = WINO != 0u && MODE == 2u;
        vec4 wa[wino2 && TM >= 4u ? TM / 4u : 1u], wb[wino2 && TM >= 4u ? TM / 4u : 1u];
        [[unroll]] for (uint j = 0; j < TM / 4u && wino2; j++) {
            const vec4 v = av4[j];
            if (WINO == 2u) {
                float f[6];
                f34_dy(v.x, v.y, v.z, v.w, f);
                wa[j] = vec4(f[0], f[1], f[2], f[3]);
                wb[j] = vec4(f[4], f[5], 0.0, 0.0);
            } else {
                wa[j] = vec4(v.x, (v.x + v.y) * 0.5, (v.x - v.y) * 0.5, v.y);
                wb[j] = vec4(v.z, (v.z + v.w) * 0.5, (v.z - v.w) * 0.5, v.w);
            }
        }
        // Two phases per chunk of L k's: first every operand of the chunk (the gathers, which
        // llvmpipe emits as calls that clobber every vector register), then the multiply-adds
        // in RM x RN register blocks, each walking the L k's, so a block's accumulators stay in
        // registers for the chunk instead of being spilled and reloaded at every k. Each
        // accumulator still sums k = 0..K-1 in order: the same bits as one k at a time.
        float ak[L][TM], bk[L][TN];
        // WINO (mode 2): the chunk's L/2 pairs' factors of dy (4 a pair) and of x (4 a pair and tap
        // row); WINO = 2: its L/4 quads' (6 a quad and tap row)
        const uint NW = WINO == 2u ? 6u * (L / 4u) : 2u * L;
        float uk[wino2 ? NW : 1u][TM], vk[wino2 ? NW : 1u][NP > 0u ? NP : 1u];
        // SHIFT in MODE 2 (host: stride 1, a 3-wide kernel with pw = 1 or a 1x1 kernel without
        // padding, wo = w a multiple of L, chunks of whole L's, B a vec4 view, no UP): the
        // chunk's k's are the pixels ox0 .. ox0 + L - 1 of one row, so column j's L values of B
        // are the consecutive elements d .. d + L - 1 (d = kx - pw = xcol[j]) from the row's
        // element ox0: L/4 + 1 quads (L/4 for a 1x1 kernel, d = 0), not L gathers (on lavapipe
        // a vec4 fetch costs about what a scalar one does).
        const bool bquad = MODE == 2u && SHIFT != 0u;
        // bquad: the chunk's pixels ox0 .. ox0 + L - 1 of row oy, where its run of a row of x starts
        // (krow) and x's last quad (unused, and compiled out, by the other walks)
        const int pix = k0 % P, oy = pix / pc.wo, ox0 = pix % pc.wo;
        const int krow = (k0 / P) * SK2 + oy * SBY + ox0, qhi = pc.nb * pc.cin * HWB / 4 - 1;
        if (bquad && TAPS != 0u) {
            // this lane's channel's 3 rows of x at the chunk's pixels: for tap row ky, e[p] is the
            // element ox0 + p - 1 of row oy + ky - 1, p = 0 .. L + 1 (tap (ky, kx) reads e[kk + kx])
            // the channel's plane (column 0 is tap (0, 0); UP: bofs holds the plane alone)
            const int base = UP != 0u ? bofs[0] : bofs[0] - xcol[0] - ycol[0] * SBY;
            [[unroll]] for (uint ky = 0; ky < 3u; ky++) {
                const int yy = oy + int(ky) - 1;
                float e[L + 2u];
                X_RUN(e, base + (k0 / P) * SK2, yy, ox0, qhi)
                const bool rok = uint(yy) < uint(HB);
                if (wino2) {
                    // pair p reads d = e[2p .. 2p + 3], each zero outside the image (past kend dy
                    // is zero instead, so x needs no mask there); the direct walk's bk is not made
                    float d[L + 2u];
                    [[unroll]] for (uint i = 0; i < L + 2u; i++) d[i] = rok && uint(ox0 + int(i) - 1) < uint(WB) ? e[i] : 0.0;
                    [[unroll]] for (uint q = 0; q < (WINO == 2u ? L / 4u : 0u); q++) {  // quad q: d[4q .. 4q + 5]
                        const uint o = 4u * q;
                        float v[6];
                        f43_in(d[o], d[o + 1u], d[o + 2u], d[o + 3u], d[o + 4u], d[o + 5u], v);
                        [[unroll]] for (uint t = 0; t < 6u; t++) vk[q * 6u + t][ky] = v[t];
                    }
                    [[unroll]] for (uint p = 0; p < (WINO == 2u ? 0u : L / 2u); p++) {
                        vk[p * 4u + 0u][ky] = d[2u * p] - d[2u * p + 2u];
                        vk[p * 4u + 1u][ky] = d[2u * p + 1u] + d[2u * p + 2u];
                        vk[p * 4u + 2u][ky] = d[2u * p + 2u] - d[2u * p + 1u];
                        vk[p * 4u + 3u][ky] = d[2u * p + 1u] - d[2u * p + 3u];
                    }
                    continue;
                }
                [[unroll]] for (uint kx = 0; kx < 3u; kx++)
                    [[unroll]] for (uint kk = 0; kk < L; kk++) {
                        const bool ok = rok && k0 + int(kk) < kend && uint(ox0 + int(kk + kx) - 1) < uint(WB);
                        bk[kk][3u * ky + kx] = ok ? e[kk + kx] : 0.0;
                    }
            }
        } else if (bquad) {
            [[unroll]] for (uint j = 0; j < TN; j++) {
                const int d = xcol[j], yy = ycol[j] + oy, q = (bofs[j] - d + krow) >> 2;
                // e[p]: the row's element ox0 + p - 1, p = 0 .. L + 1
                float e[L + 2u];
                // (a 1x1 kernel, SHIFT = 1, reads no element beyond the run)
                const vec4 qx = SHIFT != 1u ? loadB4(clamp(q + (d < 0 ? -1 : int(L / 4u)), 0, qhi)) : vec4(0.0);
                e[0] = qx.w, e[L + 1u] = qx.x;
                RUN_OF_QUADS(e, q, qhi)
                const bool rok = uint(yy) < uint(HB);
                [[unroll]] for (uint kk = 0; kk < L; kk++) {
                    const bool ok = rok && k0 + int(kk) < kend && uint(ox0 + int(kk) + d) < uint(WB);
                    bk[kk][j] = ok ? (d < 0 ? e[kk] : d == 0 ? e[kk + 1u] : e[kk + 2u]) : 0.0;
                }
            }
        }
        [[unroll]] for (uint kk = 0; kk < L; kk++) {
            const bool kv = k0 + int(kk) < kend;
            const int ky = c1k * YK, kx = c0k * XK, kofs = c2k * SK2 + (UP != 0u ? 0 : ky * SBY + kx);
            [[unroll]] for (uint j = 0; j < TN && !bquad; j++) {
                const int yy = ycol[j] + ky, xx = xcol[j] + kx;
                const bool ok = kv && uint(yy) < uint(HB) && uint(xx) < uint(WB);
                const int bi = bofs[j] + kofs + (UP != 0u ? (yy >> 1) * SBY + (xx >> 1) : 0);
                const float v = loadB(ok ? bi : 0);
                bk[kk][j] = ok ? v : 0.0;
            }
            // (WINO in mode 2 takes its operands from wa and wb below, not from ak)
            [[unroll]] for (uint i = 0; i < TM && !wino2; i++) {
                if (AV4 != 0u) {
                    ak[kk][i] = grp_lane(av4[i / 4u][kk % 4u], gbase, (i % 4u) * Q + kk / 4u);
                } else if (sgOK) {
                    ak[kk][i] = grp_lane(av[i], gbase, kk);
                } else {
                    // Portable fallback (subgroup size not a multiple of 8): load A per k.
                    ak[kk][i] = 0.0;
                    if (kv) ak[kk][i] = loadA(arow[i] + c2k * SA2 + c1k * SA1 + c0k * SA0);
                }
            }
            c0k++;
            const bool w0 = c0k == E0k;
            c0k = w0 ? 0 : c0k;
            c1k += w0 ? 1 : 0;
            const bool w1 = c1k == E1k;
            c1k = w1 ? 0 : c1k;
            c2k += w1 ? 1 : 0;
        }
        if (wino2 && WINO == 2u) {
            // quad q's six factors: its lane (as ak's), wa then wb
            [[unroll]] for (uint q = 0; q < L / 4u; q++)
                [[unroll]] for (uint t = 0; t < 6u; t++)
                    [[unroll]] for (uint i = 0; i < TM; i++) {
                        uk[q * 6u + t][i] = grp_lane(t < 4u ? wa[i / 4u][t] : wb[i / 4u][t - 4u], gbase, (i % 4u) * Q + q);
                    }
            CHUNK_WINO(L / 4u);
        } else if (wino2) {
            // pair p's factors: its quad's lane (as ak's), wa or wb by the pair's half of the quad
            [[unroll]] for (uint p = 0; p < L / 2u; p++)
                [[unroll]] for (uint t = 0; t < 4u; t++)
                    [[unroll]] for (uint i = 0; i < TM; i++) {
                        uk[p * 4u + t][i] = grp_lane(p % 2u == 0u ? wa[i / 4u][t] : wb[i / 4u][t], gbase, (i % 4u) * Q + p / 2u);
                    }
            CHUNK_WINO(L / 2u);
        } else {
            CHUNK_FMA(L);
        }
    }
#endif

    // WINO: a pair's (mode 2: a tap row's) four sums to its two outputs (three taps), into acc's
    // first TN columns (the epilogue's)
    if (WINO != 0u) {
        [[unroll]] for (uint i = 0; i < TM; i++) {
            float y[TN];
            if (MODE == 2u && WINO == 4u) {  // the 9 taps: F(3, 4)'s outputs along each row of 6 sums, then down
                vec3 r[6];
                [[unroll]] for (uint s = 0; s < 6u; s++)
                    r[s] = f34_out(acc[i][6u * s], acc[i][6u * s + 1u], acc[i][6u * s + 2u], acc[i][6u * s + 3u],
                                   acc[i][6u * s + 4u], acc[i][6u * s + 5u]);
                [[unroll]] for (uint kx = 0; kx < 3u; kx++) {
                    const vec3 o = f34_out(r[0][kx], r[1][kx], r[2][kx], r[3][kx], r[4][kx], r[5][kx]);
                    y[kx] = o.x, y[3u + kx] = o.y, y[6u + kx] = o.z;
                }
            }
            [[unroll]] for (uint p = 0; p < NP && WINO >= 3u && MODE != 2u; p++) {  // tile p's rows: quads TR p .. TR p + TR - 1
                float r[4][6];  // (rows TR used, as X's)
                [[unroll]] for (uint x = 0; x < 6u; x++) {
                    const float s0 = acc[i][x * NP + p], s1 = acc[i][(6u + x) * NP + p];
                    const float s2 = acc[i][(12u + x) * NP + p], s3 = acc[i][(18u + x) * NP + p];
                    if (WINO == 3u) {
                        r[0][x] = s0 + s1 + s2, r[1][x] = s1 - s2 - s3;
                    } else {  // F(4, 3)'s outputs down the column (as along the rows below)
                        const vec4 o = f43_out(s0, s1, s2, s3, acc[i][((24u + x) % WT) * NP + p], acc[i][((30u + x) % WT) * NP + p]);
                        r[0][x] = o.x, r[1][x] = o.y, r[2][x] = o.z, r[3][x] = o.w;
                    }
                }
                [[unroll]] for (uint h = 0; h < TR; h++) {
                    const vec4 o = f43_out(r[h][0], r[h][1], r[h][2], r[h][3], r[h][4], r[h][5]);
                    // the data gradient walked its rows and columns reversed: its outputs too
                    const vec4 v = MODE == 1u ? o.wzyx : o;
                    const uint q = MODE == 1u ? TR - 1u - h : h;
                    y[4u * TR * p + 4u * q] = v.x, y[4u * TR * p + 4u * q + 1u] = v.y, y[4u * TR * p + 4u * q + 2u] = v.z;
                    y[4u * TR * p + 4u * q + 3u] = v.w;
                }
            }
            [[unroll]] for (uint p = 0; p < NP && WINO < 3u; p++) {
                const float m1 = acc[i][p], m2 = acc[i][NP + p], m3 = acc[i][2u * NP + p], m4 = acc[i][3u * NP + p];
                if (WINO == 2u && MODE == 2u) {  // tap row p's three taps
                    const vec3 o = f34_out(m1, m2, m3, m4, acc[i][4u * NP + p], acc[i][5u * NP + p]);
                    y[3u * p] = o.x, y[3u * p + 1u] = o.y, y[3u * p + 2u] = o.z;
                } else if (WINO == 2u) {  // quad p's four pixels (m1 .. m4 are F(4, 3)'s m0 .. m3)
                    const vec4 o = f43_out(m1, m2, m3, m4, acc[i][4u * NP + p], acc[i][5u * NP + p]);
                    y[4u * p] = o.x, y[4u * p + 1u] = o.y, y[4u * p + 2u] = o.z, y[4u * p + 3u] = o.w;
                } else if (MODE == 2u) {  // tap row p's three taps
                    y[3u * p] = m1 + m2 + m3;
                    y[3u * p + 1u] = m2 - m3;
                    y[3u * p + 2u] = m2 + m3 - m4;
                } else {  // pair p's two pixels
                    y[2u * p] = m1 + m2 + m3;
                    y[2u * p + 1u] = m2 - m3 - m4;
                }
            }
            [[unroll]] for (uint j = 0; j < TN; j++) acc[i][j] = y[j];
        }
    }
    // The epilogue tests the bounds once per column, not per element: rows past M read and
    // write row M - 1 instead, whose values they equal (their A rows, bias and added values
    // were clamped to it too), so the invocation only writes row M - 1's own result there
    // again. Why: a test per element put hundreds of branches into the unrolled tile, and
    // NIR's optimizer (run by lavapipe for every pipeline created) spent ~15-25% of the
    // shader's creation time on them. A lane group wholly past M has nothing of its own.
    if (m0 >= M) return;
    const bool has_bias = (pc.flags & 1) != 0 && MODE != 2u;
    const bool fwd_add = ADD == 1u && MODE == 0u, add_as_y = (pc.flags & 2) != 0;
    const bool accum = MODE == 2u && (pc.flags & 4) != 0;
    int mrow[TM];
    float bm[TM];
    [[unroll]] for (uint i = 0; i < TM; i++) mrow[i] = min(m0 + int(i), M - 1), bm[i] = 0.0;
    if (has_bias) {
        [[unroll]] for (uint i = 0; i < TM; i++) bm[i] = pc.bias.v[g * M + mrow[i]];
    }
    // (conv + bias) + add [then * scale]: the roundings of a conv followed by an add (and
    // vkd_add_scaled's scale). Not `precise`: glslang would mark the whole fma chain behind v,
    // and llvmpipe ran every mode of this shader ~1.8x slower (a sum followed by a product is
    // never contracted).
#define EPILOGUE_VALUE(i, j, ci)                                                             \
    (fwd_add ? (acc[i][j] + bm[i] + loadAdd(add_as_y ? (ci) : ncol[j] + mrow[i])) * pc.scale \
             : acc[i][j] + bm[i])
#ifdef VKD_WIDE_STORES
    // Elements e .. e + 3 of C (e a multiple of 4): conv2d_sb as one vec4 through storage
    // binding 0 (src/vk/texel.c: one lane loop instead of two), else two 64-bit stores.
#ifdef VKD_SBUF_OUT
#define STORE_QUAD(e, q) vkd_sbuf0.v[int((e) >> 2u) + pc.c_sfirst] = vec4(q[0], q[1], q[2], q[3])
#else
#define STORE_QUAD(e, q)                                                                  \
    DBuf(uint64_t(pc.C)).v[(e) >> 1u] = packUint2x32(uvec2(floatBitsToUint(q[0]), floatBitsToUint(q[1]))), \
    DBuf(uint64_t(pc.C)).v[((e) >> 1u) + 1u] = packUint2x32(uvec2(floatBitsToUint(q[2]), floatBitsToUint(q[3])))
#endif
    // conv2d_wide (the window walk of modes 0 and 1; host: L = 8, TN a multiple of 4, C whole
    // quads from 16 bytes): the group's L*TN columns are consecutive elements of one plane of
    // C, so lane l stores the quads 4l .. 4l+3 (+ 4L h) of them as two 64-bit values, two of
    // llvmpipe's per-lane store loops instead of four. Column 4L h + 4l + c is acc's column
    // j = 4h + l/2 of lane 4 (l % 2) + c: picked with shuffles (constant permutations there).
    if (SHIFT != 0u && MODE != 2u && QWIN != 0u) {
        // a lane's columns 4h .. 4h + 3 are consecutive elements of C from a quad boundary
        if (n0 >= N) return;  // a lane group past the grid's ragged edge holds clamped columns
        [[unroll]] for (uint i = 0; i < TM; i++)
            [[unroll]] for (uint h = 0; h < TN / 4u; h++) {
                float v[4];
                [[unroll]] for (uint c = 0; c < 4u; c++) v[c] = EPILOGUE_VALUE(i, 4u * h + c, cofs[4u * h + c] + mrow[i] * SCM);
                STORE_QUAD(uint(cofs[4u * h] + mrow[i] * SCM), v);
            }
        return;
    }
    if (SHIFT != 0u && MODE != 2u) {
        const int q0 = cofs[0] - int(lane) + 4 * int(lane);  // this lane's first quad
        // A lane group past a ragged grid edge holds clamped columns: it takes part in the
        // shuffles (its subgroup's other group may be inside) but stores nothing.
        const bool inside = n0 < N;
        [[unroll]] for (uint i = 0; i < TM; i++) {
            float v[TN];
            [[unroll]] for (uint j = 0; j < TN; j++) v[j] = EPILOGUE_VALUE(i, j, cofs[j] + mrow[i] * SCM);
            [[unroll]] for (uint h = 0; h < TN / 4u; h++) {
                float q[4];
                [[unroll]] for (uint c = 0; c < 4u; c++) {
                    const uint src = gbase + 4u * (lane % 2u) + c;
                    q[c] = subgroupShuffle(v[4u * h], src);
                    [[unroll]] for (uint jj = 1; jj < 4u; jj++) {
                        const float t = subgroupShuffle(v[4u * h + jj], src);
                        q[c] = lane / 2u == jj ? t : q[c];
                    }
                }
                if (!inside) continue;
                STORE_QUAD(uint(q0 + int(4u * L * h) + mrow[i] * SCM), q);
            }
        }
        return;
    }
#endif
    [[unroll]] for (uint j = 0; j < TN; j++) {
        if (n0 + int(col_of(j, lane)) < N) {
            // The column's values first, then its stores: a clamped row must read C (accum)
            // before row M - 1's store changes it.
            float v[TM];
            [[unroll]] for (uint i = 0; i < TM; i++) {
                const int ci = cofs[j] + mrow[i] * SCM;
                v[i] = EPILOGUE_VALUE(i, j, ci);
                if (accum) v[i] = pc.C.v[ci] + v[i];
            }
            [[unroll]] for (uint i = 0; i < TM; i++) pc.C.v[cofs[j] + mrow[i] * SCM] = v[i];
        }
    }
}
