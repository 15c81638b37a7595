#version 450
#extension GL_EXT_samplerless_texture_functions : require
#extension GL_GOOGLE_include_directive : require
// Inverted dropout: y = x * keep / (1 - p), keep = uniform(i) >= p with
// uniform(i) the draw vkd_rand_uniform makes for element i under the same
// (seed, stream, step). The backward is this same map applied to dy: the mask
// is regenerated, never stored. Four elements per invocation (one Philox call).
#include "common.glsl"
#include "philox.glsl"

layout(local_size_x_id = 0) in;

layout(push_constant) uniform PC {
    FBuf y; FBuf x; UBuf step;
    uint n, seed_lo, seed_hi, stream, flags, offset;  // flags: bit0 step pointer valid; offset: as in rng.comp
    float p, scale;
} pc;

void main() {
    uint j = flat_group() * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
    uint lead = pc.offset & 3u;
    if (j * 4u >= pc.n + lead) return;
    uint s = (pc.flags & 1u) != 0u ? pc.step.v[0] : 0u;
    uvec4 r = philox4x32_10(uvec4(pc.offset / 4u + j, s, pc.stream, 0u), uvec2(pc.seed_lo, pc.seed_hi));
    for (uint q = 0; q < 4u; q++) {
        uint e = j * 4u + q;
        if (e < lead || e - lead >= pc.n) continue;
        uint i = e - lead;
        pc.y.v[i] = philox_uniform(r[q]) >= pc.p ? pc.x.v[i] * pc.scale : 0.0;
    }
}
