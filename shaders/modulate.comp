#version 450
#extension GL_EXT_samplerless_texture_functions : require
#extension GL_GOOGLE_include_directive : require
// adaLN modulation of tokens x (N, T, D) by per-(n, d) shift and scale (N, D):
// MODE 0, forward (one invocation per element): y = x * (one + scale) + shift.
//   The input gradient is the same map applied to dy without shift.
// MODE 1, shift/scale gradients (one invocation per (n, d), fixed order over t):
//   dscale = sum_t dy * x (into scale), dshift = sum_t dy (into shift).
// flags: bit0 shift present (MODE 1: write dshift), bit1 scale present (MODE 1: write dscale).
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint MODE = 0;

layout(push_constant) uniform PC {
    FBuf y; FBuf x; FBuf shift; FBuf scale; FBuf dy;
    uint N, T, D, flags;
    float one;
} pc;

void main() {
    bool has_shift = (pc.flags & 1u) != 0u, has_scale = (pc.flags & 2u) != 0u;
    uint i = flat_group() * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
    if (MODE == 0u) {
        if (i >= pc.N * pc.T * pc.D) return;
        uint nd = (i / (pc.T * pc.D)) * pc.D + i % pc.D;
        float v = pc.x.v[i] * (pc.one + (has_scale ? pc.scale.v[nd] : 0.0));
        if (has_shift) v += pc.shift.v[nd];
        pc.y.v[i] = v;
    } else {
        if (i >= pc.N * pc.D) return;
        uint n = i / pc.D, d = i % pc.D, base = n * pc.T * pc.D + d;
        float ds = 0.0, db = 0.0;
        for (uint t = 0; t < pc.T; t++) {
            float g = pc.dy.v[base + t * pc.D];
            db += g;
            ds += g * pc.x.v[base + t * pc.D];
        }
        if (has_shift) pc.shift.v[i] = db;
        if (has_scale) pc.scale.v[i] = ds;
    }
}
