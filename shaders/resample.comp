#version 450
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
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint MODE = 0;

layout(constant_id = 2) const uint TEXEL = 0;  // x through texel binding 0
layout(constant_id = 3) const uint ROWS = 0;

layout(push_constant) uniform PC {
    FBuf y; FBuf x;
    uint n, H, W;
    float alpha;
    int x_first;
    uint rpw;  // ROWS: rows per workgroup
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

void main() {
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
