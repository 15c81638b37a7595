#version 450
#extension GL_EXT_samplerless_texture_functions : require
#extension GL_GOOGLE_include_directive : require
// Exponential moving average of parameters: e = beta*e + (1-beta)*p.
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint TEXEL = 0;  // e, p read through texel bindings 0, 1
layout(constant_id = 2) const uint PER = 1;    // elements per invocation, WG apart (see adam.comp)
// MULTI = 1: e and p span whole memory blocks, the workgroup updates one chunk (as adam.comp):
// table[8 * workgroup] holds its length, then (after the tuple index) the offsets of e and p.
layout(constant_id = 3) const uint MULTI = 0;
// VEC4 = 1 (with TEXEL): 4 elements at a time through R32G32B32A32 views, as adam.comp's
// VEC4 (one tensor: n a multiple of 4; MULTI: 4-aligned offsets, a chunk's last n % 4
// elements one by one through the buffers); the same arithmetic per component.
layout(constant_id = 4) const uint VEC4 = 0;
// TAIL: 0 when no chunk of a MULTI VEC4 pass has a tail (llvmpipe would run the tail's lane
// loops, under a mask, in every invocation).
layout(constant_id = 5) const uint TAIL = 1;

// beta is the push constant, or beta_t[0] when flags bit0 is set (a schedule
// written by the host between replays, e.g. EDM's EMA ramp-up).
layout(push_constant) uniform PC {
    FBuf e; FBuf p; FBuf beta_t;
    uint n;
    float beta;
    uint flags;
    int e_first, p_first;
    UBuf table;  // MULTI
    int e_sfirst;  // ema_sb (VEC4): e's storage binding, in vec4s (set at compile)
} pc;

// single elements through the texel views unless those are vec4 views
VKD_LOADER_IF(ld_e, vkd_tex0, pc.e, pc.e_first, TEXEL != 0u && VEC4 == 0u)
VKD_LOADER_IF(ld_p, vkd_tex1, pc.p, pc.p_first, TEXEL != 0u && VEC4 == 0u)

void main() {
    uint n = pc.n, oe = 0u, op = 0u;
    uint i0 = flat_group() * gl_WorkGroupSize.x * PER + gl_LocalInvocationID.x;
    if (MULTI != 0u) {
        const uint c = flat_group() * 8u;
        n = pc.table.v[c], oe = pc.table.v[c + 2u], op = pc.table.v[c + 3u];
        i0 = gl_LocalInvocationID.x;
    }
    const uint N = VEC4 != 0u ? n / 4u : n;          // units: vec4s or floats
    const uint tail = VEC4 != 0u ? n - 4u * N : 0u;  // MULTI, VEC4: the last n % 4 floats
    if (i0 >= N && i0 >= tail) return;
    float b = (pc.flags & 1u) != 0u ? pc.beta_t.v[0] : pc.beta;
    [[unroll]] for (uint j = 0; j < PER; j++) {
        uint i = i0 + j * gl_WorkGroupSize.x;
        if (i < N) {
            if (VEC4 != 0u) {
                vec4 e = texelFetch(vkd_tex0, int(oe / 4u + i) + pc.e_first);
                vec4 p = texelFetch(vkd_tex1, int(op / 4u + i) + pc.p_first);
                VKD_OUT4(pc.e, oe + 4u * i, b * e + (1.0 - b) * p, pc.e_sfirst);
            } else {
                pc.e.v[oe + i] = b * ld_e(oe + i) + (1.0 - b) * ld_p(op + i);
            }
        }
    }
    if (TAIL != 0u && i0 < tail) {
        uint i = 4u * N + i0;
        pc.e.v[oe + i] = b * ld_e(oe + i) + (1.0 - b) * ld_p(op + i);
    }
}
