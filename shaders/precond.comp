#version 450
#extension GL_EXT_samplerless_texture_functions : require
#extension GL_GOOGLE_include_directive : require
// EDM preconditioning coefficients per sample, from sigma (N):
//   c_skip = sd^2/(s^2+sd^2), c_out = s*sd/sqrt(s^2+sd^2), c_in = 1/sqrt(s^2+sd^2), c_noise = ln(s)/4
// written to four (N) tensors in one dispatch (sigma is never differentiated).
#include "common.glsl"

layout(local_size_x_id = 0) in;

layout(push_constant) uniform PC {
    FBuf sigma; FBuf c_skip; FBuf c_out; FBuf c_in; FBuf c_noise;
    uint n;
    float sigma_data;
} pc;

void main() {
    uint i = flat_group() * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
    if (i >= pc.n) return;
    float s = pc.sigma.v[i], sd = pc.sigma_data;
    float r = inversesqrt(s * s + sd * sd);
    pc.c_skip.v[i] = sd * sd * r * r;
    pc.c_out.v[i] = s * sd * r;
    pc.c_in.v[i] = r;
    pc.c_noise.v[i] = log(s) * 0.25;
}
