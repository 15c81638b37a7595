#version 450
#extension GL_GOOGLE_include_directive : require
// Broadcasting binary ops. b is indexed by j = (i / inner) % bc, which covers
// same-shape (inner 1, bc n), per-channel of NCHW (inner HW, bc C), per-row
// bias (inner 1, bc cols), per-(n,c) (inner HW, bc NC) and scalars (bc 1).
//   y[i] = alpha * (a[i] OP b[j]) * (flags & 1 ? s[0] : 1)
// OP_BCAST ignores a: y[i] = alpha * b[j] * s?  (backward of reductions).
// y may alias a (in-place accumulation): each element is read then written by
// the same invocation.
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint OP = 0;
const uint OP_ADD = 0, OP_SUB = 1, OP_MUL = 2, OP_BCAST = 3;

layout(push_constant) uniform PC {
    FBuf y; FBuf a; FBuf b; FBuf s;
    uint n, inner, bc, flags;
    float alpha;
} pc;

void main() {
    uint i = flat_group() * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
    if (i >= pc.n) return;
    float bv = pc.b.v[(i / pc.inner) % pc.bc];
    float r;
    if (OP == OP_ADD) r = pc.a.v[i] + bv;
    else if (OP == OP_SUB) r = pc.a.v[i] - bv;
    else if (OP == OP_MUL) r = pc.a.v[i] * bv;
    else r = bv;
    r *= pc.alpha;
    if ((pc.flags & 1u) != 0u) r *= pc.s.v[0];
    pc.y.v[i] = r;
}
