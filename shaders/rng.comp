#version 450
#extension GL_EXT_samplerless_texture_functions : require
#extension GL_GOOGLE_include_directive : require
// Fills a tensor with uniform (0,1) or standard normal numbers from Philox,
// four per invocation. The step comes from step.v[0] (uint bits in a
// host-visible tensor) so a replayed graph draws new numbers every step.
// Normals: Box-Muller on the pairs (u0,u1) and (u2,u3).
// offset: element i of y is element i + offset of the stream (a rank's slice
// of the global batch draws exactly the numbers one process draws for it);
// invocation j makes the four numbers of counter offset/4 + j.
#include "common.glsl"
#include "philox.glsl"

layout(local_size_x_id = 0) in;

layout(push_constant) uniform PC {
    FBuf y; UBuf step;
    uint n, seed_lo, seed_hi, stream, flags, offset;  // flags: bit0 normal, bit1 step pointer valid
} pc;

const float TWO_PI = 6.283185307179586;

void main() {
    uint j = flat_group() * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
    uint lead = pc.offset & 3u;  // elements of the first counter that belong to the previous slice
    if (j * 4u >= pc.n + lead) return;
    uint s = (pc.flags & 2u) != 0u ? pc.step.v[0] : 0u;
    uvec4 r = philox4x32_10(uvec4(pc.offset / 4u + j, s, pc.stream, 0u), uvec2(pc.seed_lo, pc.seed_hi));
    vec4 u = vec4(philox_uniform(r.x), philox_uniform(r.y), philox_uniform(r.z), philox_uniform(r.w));
    vec4 o = u;
    if ((pc.flags & 1u) != 0u) {
        float r0 = sqrt(-2.0 * log(u.x)), r1 = sqrt(-2.0 * log(u.z));
        o = vec4(r0 * cos(TWO_PI * u.y), r0 * sin(TWO_PI * u.y), r1 * cos(TWO_PI * u.w), r1 * sin(TWO_PI * u.w));
    }
    for (uint q = 0; q < 4u; q++) {
        uint e = j * 4u + q;  // position in the counter stream, lead ahead of y
        if (e >= lead && e - lead < pc.n) pc.y.v[e - lead] = o[q];
    }
}
