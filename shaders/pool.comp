#version 450
#extension GL_EXT_samplerless_texture_functions : require
#extension GL_GOOGLE_include_directive : require
// Pooling of NCHW maps (forward only; Inception uses them for features).
//   MODE 0: max pool, k x k, stride, zero-free padding (padded taps are skipped, as PyTorch).
//   MODE 1: average pool; (flags & 1) = count_include_pad: divide by k*k, else by the
//           number of taps inside the input (PyTorch, ceil_mode False).
//   MODE 2: global average pool: y (P) = mean over H*W of each plane (fixed order: deterministic).
// x is (P, H, W) planes, y (P, Ho, Wo); one invocation per output value.
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint MODE = 0;

layout(push_constant) uniform PC {
    FBuf y; FBuf x;
    uint n, H, W, Ho, Wo, k, stride, pad, flags;
} pc;

void main() {
    uint i = flat_group() * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
    if (i >= pc.n) return;
    if (MODE == 2) {
        uint hw = pc.H * pc.W, base = i * hw;
        float s = 0.0;
        for (uint j = 0; j < hw; j++) s += pc.x.v[base + j];
        pc.y.v[i] = s / float(hw);
        return;
    }
    uint ox = i % pc.Wo, t = i / pc.Wo;
    uint oy = t % pc.Ho, p = t / pc.Ho;
    int y0 = int(oy * pc.stride) - int(pc.pad), x0 = int(ox * pc.stride) - int(pc.pad);
    int y1 = min(y0 + int(pc.k), int(pc.H)), x1 = min(x0 + int(pc.k), int(pc.W));
    y0 = max(y0, 0), x0 = max(x0, 0);
    uint base = p * pc.H * pc.W;
    if (MODE == 0) {
        float m = -3.402823466e38;
        for (int yy = y0; yy < y1; yy++)
            for (int xx = x0; xx < x1; xx++) m = max(m, pc.x.v[base + uint(yy) * pc.W + uint(xx)]);
        pc.y.v[i] = m;
    } else {
        float s = 0.0;
        for (int yy = y0; yy < y1; yy++)
            for (int xx = x0; xx < x1; xx++) s += pc.x.v[base + uint(yy) * pc.W + uint(xx)];
        float cnt = (pc.flags & 1u) != 0u ? float(pc.k * pc.k) : float((y1 - y0) * (x1 - x0));
        pc.y.v[i] = s / cnt;
    }
}
