#version 450
#extension GL_EXT_samplerless_texture_functions : require
#extension GL_GOOGLE_include_directive : require
// Winograd F(2, 3)'s weight transform for shaders/conv2d.comp's WINO walk: every row of three taps
// (g0, g1, g2) of w becomes the four factors (g0, (g0 + g1 + g2) / 2, (g0 - g1 + g2) / 2, g2),
// w (cout, cin/groups, kh, 3) -> u (cout, cin/groups, kh, 4). The data gradient, whose rows meet
// the window reversed, reads the same u with the first and last factor swapped.
// F43 = 1: Winograd F(4, 3)'s six factors instead (conv2d.comp's WINO = 2, points 0, +-1, +-1/2),
// (4g0, 2/3 (g0 + g1 + g2), 2/3 (g0 - g1 + g2), -2/3 (4g0 + 2g1 + g2), -2/3 (4g0 - 2g1 + g2), g2),
// u (..., kh, 6); FLIP = 1 makes them from the reversed row (g2, g1, g0), for the data gradient
// (no permutation of the six turns one row's into the other's).
// W2D = 1 (with F43): conv2d.comp's WINO = 3, a 3x3 kernel's 24 factors, u (cout, cin/groups, 24):
// F(4, 3)'s six of each row r0, r1, r2, then F(2, 3)'s four down them, (r0, (r0 + r1 + r2) / 2,
// (r0 - r1 + r2) / 2, r2), term s * 6 + x. Never flipped: the data gradient's walk reads the
// same u with its window reversed.
// W2D = 2: conv2d.comp's WINO = 4, F(4, 3)'s six down the rows' six as well: 36 factors, u (cout,
// cin/groups, 36), term s * 6 + x.
// Written once before each convolution that reads it: done in the walk's inner loop instead, the
// sums and halvings were redone by every lane for every tile and made the walk slower. The
// F(4, 3) x F(4, 3) walk and F(4, 3) along the rows do make their own (conv2d.comp's UW): there each
// lane makes only its rows' factors, once a chunk, and this pass's stores were the dearer part.
// (All take the formulas from winograd_factors.glsl.) What still reads this pass: F(2, 3), F(2, 3)
// x F(4, 3), and VKD_CONV_UW=0.
#include "common.glsl"
#include "winograd_factors.glsl"

layout(local_size_x_id = 0) in;
// QUADS (host: w a vec4 texel view at binding 0, the rows a multiple of 4, u on 16 bytes): an
// invocation transforms 4 rows, w's 12 elements fetched as 3 quads and u's 16 stored as 4
// (llvmpipe's per-lane loads and stores, not the arithmetic, are this pass's time). In
// winograd_sb (VKD_SBUF_OUT, a CPU device) the quads go through storage binding 0 (VKD_OUT4).
layout(constant_id = 1) const uint QUADS = 0;
layout(constant_id = 2) const uint F43 = 0;
layout(constant_id = 3) const uint FLIP = 0;
layout(constant_id = 4) const uint W2D = 0;

layout(push_constant) uniform PC {
    FBuf w; FBuf u;
    uint rows;
    int w_first;
    int u_sfirst;  // winograd_sb: where u starts in its storage binding, in vec4s
} pc;

vec4 factors(float g0, float g1, float g2) {
    const float s02 = g0 + g2;
    return vec4(g0, (s02 + g1) * 0.5, (s02 - g1) * 0.5, g2);
}

// F43: the row's six factors (FLIP: of the reversed row)
void factors6(float a, float b, float c, out float f[6]) { wino_factors6(FLIP != 0u ? c : a, b, FLIP != 0u ? a : c, f); }

// F43 with QUADS: rows 4r .. 4r+3 from w's 12 elements, u's 24 stored as 6 quads
void main43(uint r) {
    const int q = 3 * int(r) + pc.w_first;
    const vec4 a = texelFetch(vkd_tex0, q), b = texelFetch(vkd_tex0, q + 1), c = texelFetch(vkd_tex0, q + 2);
    float f[24], t[6];
    factors6(a.x, a.y, a.z, t);
    [[unroll]] for (uint i = 0; i < 6u; i++) f[i] = t[i];
    factors6(a.w, b.x, b.y, t);
    [[unroll]] for (uint i = 0; i < 6u; i++) f[6u + i] = t[i];
    factors6(b.z, b.w, c.x, t);
    [[unroll]] for (uint i = 0; i < 6u; i++) f[12u + i] = t[i];
    factors6(c.y, c.z, c.w, t);
    [[unroll]] for (uint i = 0; i < 6u; i++) f[18u + i] = t[i];
    [[unroll]] for (uint k = 0; k < 6u; k++)
        VKD_OUT4(pc.u, 24u * r + 4u * k, vkd_keep(vec4(f[4u * k], f[4u * k + 1u], f[4u * k + 2u], f[4u * k + 3u])),
                 pc.u_sfirst);
}

// W2D: kernel k's 9 taps g (rows of 3) to its FW factors f (24: F(2, 3)'s four down the columns,
// 36: F(4, 3)'s six)
const uint FW = W2D == 2u ? 36u : 24u;
void factors2d(const float g[9], out float f[36]) {  // (36: glslang takes no parameter sized by a constant)
    if (W2D == 2u) {  // (never flipped: FLIP is 0 with W2D)
        wino_factors36(g, f);
        return;
    }
    float r[3][6];
    [[unroll]] for (uint ky = 0; ky < 3u; ky++) factors6(g[3u * ky], g[3u * ky + 1u], g[3u * ky + 2u], r[ky]);
    [[unroll]] for (uint x = 0; x < 6u; x++) {
        const float s02 = r[0][x] + r[2][x];
        f[x] = r[0][x], f[6u + x] = (s02 + r[1][x]) * 0.5, f[12u + x] = (s02 - r[1][x]) * 0.5, f[18u + x] = r[2][x];
    }
}

// W2D: kernels 4r .. 4r+3 (QUADS: from 9 quads of w, u's 4 FW stored as FW quads) or kernel r
void main2d(uint r) {
    float g[9], f[36];
    if (QUADS != 0u) {
        float e[36];
        [[unroll]] for (uint q = 0; q < 9u; q++) {
            const vec4 v = texelFetch(vkd_tex0, 9 * int(r) + int(q) + pc.w_first);
            e[4u * q] = v.x, e[4u * q + 1u] = v.y, e[4u * q + 2u] = v.z, e[4u * q + 3u] = v.w;
        }
        [[unroll]] for (uint k = 0; k < 4u; k++) {
            [[unroll]] for (uint i = 0; i < 9u; i++) g[i] = e[9u * k + i];
            factors2d(g, f);
            [[unroll]] for (uint q = 0; q < FW / 4u; q++)
                VKD_OUT4(pc.u, 4u * FW * r + FW * k + 4u * q,
                         vkd_keep(vec4(f[4u * q], f[4u * q + 1u], f[4u * q + 2u], f[4u * q + 3u])), pc.u_sfirst);
        }
        return;
    }
    [[unroll]] for (uint i = 0; i < 9u; i++) g[i] = pc.w.v[9u * r + i];
    factors2d(g, f);
    [[unroll]] for (uint i = 0; i < FW; i++) pc.u.v[FW * r + i] = f[i];
}

void main() {
    const uint r = flat_group() * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
    if (W2D != 0u) {  // rows: kernels (4 an invocation with QUADS)
        if ((QUADS != 0u ? 4u * r : r) >= pc.rows) return;
        main2d(r);
        return;
    }
    if (QUADS != 0u) {
        if (4u * r >= pc.rows) return;
        if (F43 != 0u) {
            main43(r);
            return;
        }
        const int q = 3 * int(r) + pc.w_first;
        const vec4 a = texelFetch(vkd_tex0, q), b = texelFetch(vkd_tex0, q + 1), c = texelFetch(vkd_tex0, q + 2);
        VKD_OUT4(pc.u, 16u * r, vkd_keep(factors(a.x, a.y, a.z)), pc.u_sfirst);
        VKD_OUT4(pc.u, 16u * r + 4u, vkd_keep(factors(a.w, b.x, b.y)), pc.u_sfirst);
        VKD_OUT4(pc.u, 16u * r + 8u, vkd_keep(factors(b.z, b.w, c.x)), pc.u_sfirst);
        VKD_OUT4(pc.u, 16u * r + 12u, vkd_keep(factors(c.y, c.z, c.w)), pc.u_sfirst);
        return;
    }
    if (r >= pc.rows) return;
    if (F43 != 0u) {
        float f[6];
        factors6(pc.w.v[3u * r], pc.w.v[3u * r + 1u], pc.w.v[3u * r + 2u], f);
        [[unroll]] for (uint i = 0; i < 6u; i++) pc.u.v[6u * r + i] = f[i];
        return;
    }
    const vec4 f = factors(pc.w.v[3u * r], pc.w.v[3u * r + 1u], pc.w.v[3u * r + 2u]);
    pc.u.v[4u * r] = f.x, pc.u.v[4u * r + 1u] = f.y, pc.u.v[4u * r + 2u] = f.z, pc.u.v[4u * r + 3u] = f.w;
}
