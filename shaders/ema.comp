#version 450
#extension GL_GOOGLE_include_directive : require
// Exponential moving average of parameters: e = beta*e + (1-beta)*p.
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint TEXEL = 0;  // e, p read through texel bindings 0, 1
layout(constant_id = 2) const uint PER = 1;    // elements per invocation, WG apart (see adam.comp)
// MULTI = 1: e and p span whole memory blocks, the workgroup updates one chunk (as adam.comp):
// table[8 * workgroup] holds its length, then (after the tuple index) the offsets of e and p.
layout(constant_id = 3) const uint MULTI = 0;

// beta is the push constant, or beta_t[0] when flags bit0 is set (a schedule
// written by the host between replays, e.g. EDM's EMA ramp-up).
layout(push_constant) uniform PC {
    FBuf e; FBuf p; FBuf beta_t;
    uint n;
    float beta;
    uint flags;
    int e_first, p_first;
    UBuf table;  // MULTI
} pc;

VKD_LOADER(ld_e, vkd_tex0, pc.e, pc.e_first)
VKD_LOADER(ld_p, vkd_tex1, pc.p, pc.p_first)

void main() {
    uint n = pc.n, oe = 0u, op = 0u;
    uint i0 = flat_group() * gl_WorkGroupSize.x * PER + gl_LocalInvocationID.x;
    if (MULTI != 0u) {
        const uint c = flat_group() * 8u;
        n = pc.table.v[c], oe = pc.table.v[c + 2u], op = pc.table.v[c + 3u];
        i0 = gl_LocalInvocationID.x;
    }
    if (i0 >= n) return;
    float b = (pc.flags & 1u) != 0u ? pc.beta_t.v[0] : pc.beta;
    [[unroll]] for (uint j = 0; j < PER; j++) {
        uint i = i0 + j * gl_WorkGroupSize.x;
        if (i < n) pc.e.v[oe + i] = b * ld_e(oe + i) + (1.0 - b) * ld_p(op + i);
    }
}
