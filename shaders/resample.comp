#version 450
#extension GL_EXT_samplerless_texture_functions : require
#extension GL_GOOGLE_include_directive : require
// 2x nearest upsampling and 2x2 average pooling of (P, H, W) planes (P = N*C),
// which are each other's adjoints up to a factor 4, so two gather kernels serve
// all four directions (one invocation per output element, no atomics):
// MODE 0, up:   y (P, H, W) = alpha * x (P, H/2, W/2)[h/2, w/2]
//               (upsample forward alpha 1; avgpool backward alpha 1/4)
// MODE 1, down: y (P, H, W) = alpha * sum of the 2x2 block of x (P, 2H, 2W)
//               (avgpool forward alpha 1/4; upsample backward alpha 1)
// H, W are the output's. ROWS = 1: rows (p, h) of y per workgroup row
// (row_group() * rpw + k, k < rpw, one after the other), w along x, so no index
// division per element, and several short rows per workgroup.
// QPR > 0 (resample_sb, VKD_SBUF_OUT; host: CPU devices, W a multiple of 4, y through a storage
// binding): an invocation writes a quad of a row of y as one vec4 store, QPR = W/4 quads a row (a
// constant, so the row and column of a quad cost no division): up reads its two elements of x, down
// its 2x2 blocks as four vec4 fetches (x a vec4 view). Each output is the scalar walk's expression,
// in its order: the same bits. A scalar store through a buffer address is a loop over the lanes on
// llvmpipe (~3 ns a float at 2 threads in a unet_fmnist step's upsample2x), a vec4 store to a
// storage buffer one loop for all four.
// X4 = 1 (QPR, MODE 0; host: x's rows whole quads): an invocation reads a quad of x (a vec4 view)
// and writes the four quads of y it makes, two in each of its two rows: a quarter of a fetch a
// quad of y instead of two.
// OLD = 1 (QPR): y = old + (the above), old (y's shape) through vec4 texel binding 1: the add of
// a gradient so far that a backward (avgpool2x's) would run next, `precise`, so the bits are the
// separate add's.
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint MODE = 0;

layout(constant_id = 2) const uint TEXEL = 0;  // x through texel binding 0
layout(constant_id = 3) const uint ROWS = 0;
layout(constant_id = 4) const uint QPR = 0;
layout(constant_id = 5) const uint X4 = 0;
layout(constant_id = 6) const uint OLD = 0;

layout(push_constant) uniform PC {
    FBuf y; FBuf x;
    uint n, H, W;
    float alpha;
    int x_first;
    uint rpw;  // ROWS: rows per workgroup
    int y_sfirst;  // resample_sb: where y starts in its storage binding, in vec4s (set at compile)
    int old_first;  // OLD: where old starts in its texel view (binding 1), in vec4s (set at compile)
} pc;

VKD_LOADER(ld_x, vkd_tex0, pc.x, pc.x_first)

void one(uint i, uint w, uint h, uint p) {
    if (MODE == 0u) {
        uint Wi = pc.W / 2u, Hi = pc.H / 2u;
        pc.y.v[i] = pc.alpha * ld_x((p * Hi + h / 2u) * Wi + w / 2u);
    } else {
        uint Wi = pc.W * 2u, r = (p * pc.H * 2u + h * 2u) * Wi + w * 2u;
        pc.y.v[i] = pc.alpha * ((ld_x(r) + ld_x(r + 1u)) + (ld_x(r + Wi) + ld_x(r + Wi + 1u)));
    }
}

#ifdef VKD_SBUF_OUT
// quad q of y: r, or old + r (OLD)
void store_q(uint q, vec4 r) {
    if (OLD != 0u) {
        precise vec4 s = texelFetch(vkd_tex1, int(q) + pc.old_first) + r;
        VKD_OUT4(pc.y, 4u * q, s, pc.y_sfirst);
        return;
    }
    VKD_OUT4(pc.y, 4u * q, r, pc.y_sfirst);
}

// X4: quad qx of x (its row qx / (QPR / 2), y's rows 2 * that and the next)
void quad_x4(uint qx) {
    const uint hq = QPR / 2u, row = 2u * (qx / hq), j = 2u * (qx % hq);
    const vec4 v = pc.alpha * texelFetch(vkd_tex0, int(qx) + pc.x_first);
    const vec4 lo = vec4(v.x, v.x, v.y, v.y), hi = vec4(v.z, v.z, v.w, v.w);
    store_q(row * QPR + j, lo), store_q(row * QPR + j + 1u, hi);
    store_q((row + 1u) * QPR + j, lo), store_q((row + 1u) * QPR + j + 1u, hi);
}

// QPR: quad j of y's row `row` (rows of all planes counted together)
void quad(uint row, uint j) {
    vec4 r;
    if (MODE == 0u) {  // x's row is row / 2 (H even), 2 * QPR elements long
        const int xb = int((row >> 1u) * 2u * QPR + 2u * j) + pc.x_first;
        const float x0 = texelFetch(vkd_tex0, xb).r, x1 = texelFetch(vkd_tex0, xb + 1).r;
        r = pc.alpha * vec4(x0, x0, x1, x1);
    } else {  // x's rows 2 row and 2 row + 1, 2 * QPR quads long
        const int xq = int(4u * row * QPR + 2u * j) + pc.x_first, nx = int(2u * QPR);
        const vec4 a0 = texelFetch(vkd_tex0, xq), a1 = texelFetch(vkd_tex0, xq + 1);
        const vec4 b0 = texelFetch(vkd_tex0, xq + nx), b1 = texelFetch(vkd_tex0, xq + nx + 1);
        r = pc.alpha * vec4((a0.x + a0.y) + (b0.x + b0.y), (a0.z + a0.w) + (b0.z + b0.w),
                            (a1.x + a1.y) + (b1.x + b1.y), (a1.z + a1.w) + (b1.z + b1.w));
    }
    store_q(row * QPR + j, r);
}
#endif

void main() {
#ifdef VKD_SBUF_OUT
    if (QPR != 0u) {
        const uint q = flat_group() * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
        if (X4 != 0u) {
            if (q < pc.n / 16u) quad_x4(q);
        } else if (q < pc.n / 4u) {
            quad(q / QPR, q % QPR);
        }
        return;
    }
#endif
    if (ROWS != 0u) {
        uint w = gl_WorkGroupID.x * gl_WorkGroupSize.x + gl_LocalInvocationID.x, rows = pc.n / pc.W;
        if (w >= pc.W) return;
        for (uint k = 0u, row = row_group() * pc.rpw; k < pc.rpw && row < rows; k++, row++)
            one(row * pc.W + w, w, row % pc.H, row / pc.H);
        return;
    }
    uint i = flat_group() * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
    if (i >= pc.n) return;
    one(i, i % pc.W, (i / pc.W) % pc.H, i / (pc.W * pc.H));
}
