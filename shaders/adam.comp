#version 450
#extension GL_GOOGLE_include_directive : require
// One Adam / AdamW step with bias correction (PyTorch semantics), in place.
// The learning rate and the 1-based step t are read from hyper[0], hyper[1]
// (a host-visible tensor written between replays), so the recorded command
// buffer serves every step.
//   Adam:  g' = g + wd*p            AdamW: p *= 1 - lr*wd; g' = g
//   m = b1 m + (1-b1) g';  v = b2 v + (1-b2) g'^2
//   p -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)
// flags: bit0 decoupled (AdamW), bit1 zero g afterwards (ready to accumulate
// the next step's gradient), bit2 gnorm2 valid: the squared global gradient
// norm, for clipping to `clip` (if > 0) and for skipping the whole step when it
// is not finite (NaN guard; the gradient is still zeroed).
#include "common.glsl"

layout(local_size_x_id = 0) in;

layout(push_constant) uniform PC {
    FBuf p; FBuf g; FBuf m; FBuf v; FBuf hyper; FBuf gnorm2;
    uint n;
    float b1, b2, eps, wd;
    uint flags;
    float clip;
} pc;

void main() {
    uint i = flat_group() * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
    if (i >= pc.n) return;
    float lr = pc.hyper.v[0], t = pc.hyper.v[1];
    float p = pc.p.v[i], g = pc.g.v[i];
    if ((pc.flags & 4u) != 0u) {
        float n2 = pc.gnorm2.v[0];
        if (isnan(n2) || isinf(n2)) {  // a non-finite gradient anywhere: skip the step everywhere
            if ((pc.flags & 2u) != 0u) pc.g.v[i] = 0.0;
            return;
        }
        if (pc.clip > 0.0) g *= min(1.0, pc.clip / (sqrt(n2) + 1e-6));
    }
    if ((pc.flags & 1u) != 0u) p *= 1.0 - lr * pc.wd;
    else g += pc.wd * p;
    float m = pc.b1 * pc.m.v[i] + (1.0 - pc.b1) * g;
    float v = pc.b2 * pc.v.v[i] + (1.0 - pc.b2) * g * g;
    float bc1 = 1.0 - pow(pc.b1, t), bc2 = 1.0 - pow(pc.b2, t);
    p -= lr * (m / bc1) / (sqrt(v / bc2) + pc.eps);
    pc.m.v[i] = m;
    pc.v.v[i] = v;
    pc.p.v[i] = p;
    if ((pc.flags & 2u) != 0u) pc.g.v[i] = 0.0;
}
