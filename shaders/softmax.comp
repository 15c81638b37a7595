#version 450
#extension GL_EXT_samplerless_texture_functions : require
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_arithmetic : require
// Softmax over the last axis, one workgroup per row, fp32 throughout.
//   forward:  y = exp(x - max) / sum
//   backward (BWD): y = dx = p * (dy - sum(dy * p)), with x holding p (the forward output)
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint BWD = 0;
// SGRED = 1: the workgroup is one subgroup and reduces with subgroupMax/Add
// (the host sets it on a CPU device, as for the norms, src/ops/ops.h). The
// shared-memory tree below costs 8 barriers per reduction, each a switch of
// every subgroup on lavapipe: attention's 256-column rows took ~40 us each.
layout(constant_id = 2) const uint SGRED = 0;
// TEXEL = 1 (CPU devices): x read through texel binding 0, dy through 1.
layout(constant_id = 3) const uint TEXEL = 0;
// VEC4 = 1 (host: TEXEL, cols a multiple of 4, x and dy vec4 views from 16 bytes): the row is
// walked in quads, a quarter of the trips and texel fetches (a vec4 fetch costs about what a
// scalar one does on llvmpipe), and written through vkd_store4 (softmax_wide: 64-bit pairs).
// The sums then run in another order than the scalar walk's: other bits.
layout(constant_id = 4) const uint VEC4 = 0;
// RQ > 0 (host: VEC4 and SGRED, cols = 4 * RQ * the workgroup, RQ <= 8): a lane holds its RQ
// quads of the row in registers, so the forward fetches each once and takes each exp once (three
// fetches and two exps a quad in row4), the backward fetches p and dy once (twice). The sums and
// products are row4's, in its order: the same bits. Attention's 256-key rows at batch 16 went
// from 2.1-2.6 to 1.5-1.8 ms a call (ddpmpp_reduced, VKD_PROFILE, three alternating pairs).
// Several rows a workgroup in a loop (to spread lavapipe's per-workgroup cost) measured slower:
// 1.9 ms at 4 rows, 2.2-2.8 at 16.
layout(constant_id = 5) const uint RQ = 0;

layout(push_constant) uniform PC {
    FBuf y; FBuf x; FBuf dy;
    uint rows, cols;
    int x_first, dy_first;
    int y_sfirst;  // softmax_sb (VEC4): y's storage binding, in vec4s (set at compile)
} pc;

VKD_LOADER(ld_x, vkd_tex0, pc.x, pc.x_first)
VKD_LOADER(ld_dy, vkd_tex1, pc.dy, pc.dy_first)

vec4 ld_x4(uint q) { return texelFetch(vkd_tex0, int(q) + pc.x_first); }
vec4 ld_dy4(uint q) { return texelFetch(vkd_tex1, int(q) + pc.dy_first); }

shared float red[gl_WorkGroupSize.x];

float wg_reduce(float v, bool is_max) {
    if (SGRED != 0u) return is_max ? subgroupMax(v) : subgroupAdd(v);
    uint t = gl_LocalInvocationID.x;
    red[t] = v;
    barrier();
    for (uint s = gl_WorkGroupSize.x / 2; s > 0; s >>= 1) {
        if (t < s) red[t] = is_max ? max(red[t], red[t + s]) : red[t] + red[t + s];
        barrier();
    }
    float r = red[0];
    barrier();  // red is reused by the next reduction
    return r;
}

// main's walk in quads (VEC4): q runs over the row's cols / 4 quads.
void row4(uint row, uint t, uint W) {
    uint base = row * pc.cols, nq = pc.cols / 4u, bq = base / 4u;
    if (BWD == 0u) {
        vec4 m4 = vec4(-3.4028235e38);
        for (uint q = t; q < nq; q += W) m4 = max(m4, ld_x4(bq + q));
        float m = wg_reduce(max(max(m4.x, m4.y), max(m4.z, m4.w)), true);
        vec4 s4 = vec4(0.0);
        for (uint q = t; q < nq; q += W) s4 += exp(ld_x4(bq + q) - m);
        float inv = 1.0 / wg_reduce((s4.x + s4.y) + (s4.z + s4.w), false);
        for (uint q = t; q < nq; q += W) VKD_OUT4(pc.y, base + 4u * q, vkd_keep(exp(ld_x4(bq + q) - m) * inv), pc.y_sfirst);
    } else {
        vec4 d4 = vec4(0.0);
        for (uint q = t; q < nq; q += W) d4 += ld_dy4(bq + q) * ld_x4(bq + q);
        float d = wg_reduce((d4.x + d4.y) + (d4.z + d4.w), false);
        for (uint q = t; q < nq; q += W) VKD_OUT4(pc.y, base + 4u * q, vkd_keep(ld_x4(bq + q) * (ld_dy4(bq + q) - d)), pc.y_sfirst);
    }
}

// row4 with the row's quads in registers (RQ): the same sums in the same order.
void row_regs(uint row, uint t, uint W) {
    uint base = row * pc.cols, bq = base / 4u;
    vec4 v[RQ > 0u ? RQ : 1u];
    if (BWD == 0u) {
        vec4 m4 = vec4(-3.4028235e38);
        [[unroll]] for (uint i = 0; i < RQ; i++) { v[i] = ld_x4(bq + t + i * W); m4 = max(m4, v[i]); }
        float m = wg_reduce(max(max(m4.x, m4.y), max(m4.z, m4.w)), true);
        vec4 s4 = vec4(0.0);
        [[unroll]] for (uint i = 0; i < RQ; i++) { v[i] = exp(v[i] - m); s4 += v[i]; }
        float inv = 1.0 / wg_reduce((s4.x + s4.y) + (s4.z + s4.w), false);
        [[unroll]] for (uint i = 0; i < RQ; i++) VKD_OUT4(pc.y, base + 4u * (t + i * W), vkd_keep(v[i] * inv), pc.y_sfirst);
    } else {
        vec4 d[RQ > 0u ? RQ : 1u];
        // A zero the compiler cannot fold (rows > 0 here), as row4's loop-carried one: from a
        // constant 0, RQ = 1's one quad of products reaches the lane sum directly and the
        // compiler combines them otherwise (other bits, measured).
        vec4 d4 = vec4(float(pc.rows == 0u));
        [[unroll]] for (uint i = 0; i < RQ; i++) { d[i] = ld_dy4(bq + t + i * W); v[i] = ld_x4(bq + t + i * W); d4 += d[i] * v[i]; }
        float dd = wg_reduce((d4.x + d4.y) + (d4.z + d4.w), false);
        [[unroll]] for (uint i = 0; i < RQ; i++) VKD_OUT4(pc.y, base + 4u * (t + i * W), vkd_keep(v[i] * (d[i] - dd)), pc.y_sfirst);
    }
}

void main() {
    uint row = flat_group(), t = gl_LocalInvocationID.x, W = gl_WorkGroupSize.x;
    if (row >= pc.rows) return;
    uint base = row * pc.cols;
    if (RQ != 0u) {
        row_regs(row, t, W);
    } else if (VEC4 != 0u) {
        row4(row, t, W);
    } else if (BWD == 0u) {
        float m = -3.4028235e38;
        for (uint c = t; c < pc.cols; c += W) m = max(m, ld_x(base + c));
        m = wg_reduce(m, true);
        float s = 0.0;
        for (uint c = t; c < pc.cols; c += W) s += exp(ld_x(base + c) - m);
        s = wg_reduce(s, false);
        float inv = 1.0 / s;
        for (uint c = t; c < pc.cols; c += W) pc.y.v[base + c] = exp(ld_x(base + c) - m) * inv;
    } else {
        float d = 0.0;
        for (uint c = t; c < pc.cols; c += W) d += ld_dy(base + c) * ld_x(base + c);
        d = wg_reduce(d, false);
        for (uint c = t; c < pc.cols; c += W) pc.y.v[base + c] = ld_x(base + c) * (ld_dy(base + c) - d);
    }
}
