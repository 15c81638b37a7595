#version 450
#extension GL_EXT_samplerless_texture_functions : require
#extension GL_GOOGLE_include_directive : require
// The element-wise updates of EDM's sampler (Karras et al. 2022, Algorithm 2), with
// the step's sigmas read from a host-written tensor par = [t_cur, t_hat, t_next,
// churn_scale] so one recorded step serves every step:
//   CHURN: y = x + churn_scale * a                        (x_hat = x + sqrt(t_hat^2 - t^2) S_noise eps)
//   EULER: y = x + (t_next - t_hat) * (x - a) / t_hat     (x = x_hat, a = D(x_hat; t_hat))
//   HEUN:  y = x + (t_next - t_hat) * (0.5 (x - a) / t_hat + 0.5 (b - c) / t_next)
//          (b = the Euler result, c = D(b; t_next))
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint MODE = 0;
const uint CHURN = 0, EULER = 1, HEUN = 2;

layout(push_constant) uniform PC {
    FBuf y; FBuf x; FBuf a; FBuf b; FBuf c; FBuf par;
    uint n;
} pc;

void main() {
    uint i = flat_group() * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
    if (i >= pc.n) return;
    float xi = pc.x.v[i], ai = pc.a.v[i];
    float t_hat = pc.par.v[1], t_next = pc.par.v[2];
    float r;
    if (MODE == CHURN) {
        r = xi + pc.par.v[3] * ai;
    } else if (MODE == EULER) {
        r = xi + (t_next - t_hat) * ((xi - ai) / t_hat);
    } else {
        float d_cur = (xi - ai) / t_hat, d_prime = (pc.b.v[i] - pc.c.v[i]) / t_next;
        r = xi + (t_next - t_hat) * (0.5 * d_cur + 0.5 * d_prime);
    }
    pc.y.v[i] = r;
}
