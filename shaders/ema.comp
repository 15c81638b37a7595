#version 450
#extension GL_GOOGLE_include_directive : require
// Exponential moving average of parameters: e = beta*e + (1-beta)*p.
#include "common.glsl"

layout(local_size_x_id = 0) in;

// beta is the push constant, or beta_t[0] when flags bit0 is set (a schedule
// written by the host between replays, e.g. EDM's EMA ramp-up).
layout(push_constant) uniform PC {
    FBuf e; FBuf p; FBuf beta_t;
    uint n;
    float beta;
    uint flags;
} pc;

void main() {
    uint i = flat_group() * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
    if (i >= pc.n) return;
    float b = (pc.flags & 1u) != 0u ? pc.beta_t.v[0] : pc.beta;
    pc.e.v[i] = b * pc.e.v[i] + (1.0 - b) * pc.p.v[i];
}
