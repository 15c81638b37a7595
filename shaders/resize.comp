#version 450
#extension GL_EXT_samplerless_texture_functions : require
#extension GL_GOOGLE_include_directive : require
// Bilinear resize of NCHW maps (forward only). Source coordinate of output
// pixel d along an axis of input size `in`, output size `out`:
//   MODE 0 (PyTorch interpolate, align_corners=False): s = max((d + 0.5) * in/out - 0.5, 0)
//   MODE 1 (TF1 resize_bilinear legacy, no half-pixel centers): s = d * in/out
//   MODE 2 (PyTorch align_corners=True): s = d * (in - 1)/(out - 1)  (0 when out == 1)
// i0 = floor(s), i1 = min(i0 + 1, in - 1), weight of i1 = s - i0. The scales
// come from the host as fp32, as PyTorch computes them.
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint MODE = 0;

layout(push_constant) uniform PC {
    FBuf y; FBuf x;
    uint n, H, W, Ho, Wo;
    float sh, sw;
} pc;

void src_index(uint d, uint len, float scale, out uint i0, out uint i1, out float l1) {
    float s;
    if (MODE == 0) s = max((float(d) + 0.5) * scale - 0.5, 0.0);
    else s = float(d) * scale;
    i0 = min(uint(s), len - 1u);
    i1 = min(i0 + 1u, len - 1u);
    l1 = s - float(i0);
    if (i0 == i1) l1 = 0.0;
}

void main() {
    uint i = flat_group() * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
    if (i >= pc.n) return;
    uint ox = i % pc.Wo, t = i / pc.Wo;
    uint oy = t % pc.Ho, p = t / pc.Ho;
    uint y0, y1, x0, x1;
    float ly, lx;
    src_index(oy, pc.H, pc.sh, y0, y1, ly);
    src_index(ox, pc.W, pc.sw, x0, x1, lx);
    uint base = p * pc.H * pc.W;
    float a = pc.x.v[base + y0 * pc.W + x0], b = pc.x.v[base + y0 * pc.W + x1];
    float c = pc.x.v[base + y1 * pc.W + x0], d = pc.x.v[base + y1 * pc.W + x1];
    pc.y.v[i] = (1.0 - ly) * ((1.0 - lx) * a + lx * b) + ly * ((1.0 - lx) * c + lx * d);
}
