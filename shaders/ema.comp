#version 450
#extension GL_GOOGLE_include_directive : require
// Exponential moving average of parameters: e = beta*e + (1-beta)*p.
#include "common.glsl"

layout(local_size_x_id = 0) in;

layout(push_constant) uniform PC {
    FBuf e; FBuf p;
    uint n;
    float beta;
} pc;

void main() {
    uint i = flat_group() * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
    if (i >= pc.n) return;
    pc.e.v[i] = pc.beta * pc.e.v[i] + (1.0 - pc.beta) * pc.p.v[i];
}
