#version 450
#extension GL_GOOGLE_include_directive : require
// Softmax over the last axis, one workgroup per row, fp32 throughout.
//   forward:  y = exp(x - max) / sum
//   backward (BWD): y = dx = p * (dy - sum(dy * p)), with x holding p (the forward output)
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint BWD = 0;

layout(push_constant) uniform PC {
    FBuf y; FBuf x; FBuf dy;
    uint rows, cols;
} pc;

shared float red[gl_WorkGroupSize.x];

float wg_reduce(float v, bool is_max) {
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

void main() {
    uint row = flat_group();
    if (row >= pc.rows) return;
    uint base = row * pc.cols, t = gl_LocalInvocationID.x, W = gl_WorkGroupSize.x;
    if (BWD == 0u) {
        float m = -3.4028235e38;
        for (uint c = t; c < pc.cols; c += W) m = max(m, pc.x.v[base + c]);
        m = wg_reduce(m, true);
        float s = 0.0;
        for (uint c = t; c < pc.cols; c += W) s += exp(pc.x.v[base + c] - m);
        s = wg_reduce(s, false);
        float inv = 1.0 / s;
        for (uint c = t; c < pc.cols; c += W) pc.y.v[base + c] = exp(pc.x.v[base + c] - m) * inv;
    } else {
        float d = 0.0;
        for (uint c = t; c < pc.cols; c += W) d += pc.dy.v[base + c] * pc.x.v[base + c];
        d = wg_reduce(d, false);
        for (uint c = t; c < pc.cols; c += W) pc.y.v[base + c] = pc.x.v[base + c] * (pc.dy.v[base + c] - d);
    }
}
