#version 450
#extension GL_EXT_samplerless_texture_functions : require
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
// BMODE 1: b has a's shape (j = i); 2: b is one value (j = 0); 0: the general
// index. The special cases skip two integer divisions per element, which a
// CPU driver runs as scalar code for every lane.
layout(constant_id = 2) const uint BMODE = 0;
layout(constant_id = 3) const uint TEXEL = 0;  // a, b through texel bindings 0, 1
// VEC4 = 1 (with TEXEL, BMODE 1 or 2, n a multiple of 4): an invocation does 4
// consecutive elements, reading a (and a same-shape b) through vec4 texel views.
// On llvmpipe a texel fetch is a gather whatever the texel's width, so a vec4
// costs about what a float did: a 16,384-element add 133-173 us against
// 195-240 us (tests/bench_dispatch). The stores stay scalar (a vec4 store
// measured no faster).
layout(constant_id = 4) const uint VEC4 = 0;
// WHOLE = 1 (VEC4; host: the launch is exactly one invocation a quad): no bounds test. On
// llvmpipe code after a per-lane test runs under an execution mask, and each store's lane loop
// then tests the mask lane by lane: a 524,288-element add took ~1.1 ms with the test and ~0.7
// without (tests/bench_dispatch).
layout(constant_id = 5) const uint WHOLE = 0;

layout(push_constant) uniform PC {
    FBuf y; FBuf a; FBuf b; FBuf s;
    uint n, inner, bc, flags;
    float alpha;
    int a_first, b_first;
    int y_sfirst;  // eltwise_sb (VEC4): y's storage binding, in vec4s (set at compile)
} pc;

VKD_LOADER(ld_a, vkd_tex0, pc.a, pc.a_first)
VKD_LOADER(ld_b, vkd_tex1, pc.b, pc.b_first)

vec4 op4(vec4 a, vec4 b) {
    if (OP == OP_ADD) return a + b;
    if (OP == OP_SUB) return a - b;
    if (OP == OP_MUL) return a * b;
    return b;
}

// VEC4: quad q
void quad(uint q) {
    vec4 bv = BMODE == 1u ? texelFetch(vkd_tex1, int(q) + pc.b_first) : vec4(ld_b(0u));
    vec4 av = OP == OP_BCAST ? vec4(0.0) : texelFetch(vkd_tex0, int(q) + pc.a_first);
    vec4 r = op4(av, bv) * pc.alpha;
    if ((pc.flags & 1u) != 0u) r *= pc.s.v[0];
    VKD_OUT4(pc.y, 4u * q, r, pc.y_sfirst);
}

void main() {
    uint i = flat_group() * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
    if (VEC4 != 0u) {
        if (WHOLE == 0u && i >= pc.n / 4u) return;
        quad(i);
        return;
    }
    if (i >= pc.n) return;
    uint j = BMODE == 1u ? i : BMODE == 2u ? 0u : (i / pc.inner) % pc.bc;
    float bv = ld_b(j);
    float r;
    if (OP == OP_ADD) r = ld_a(i) + bv;
    else if (OP == OP_SUB) r = ld_a(i) - bv;
    else if (OP == OP_MUL) r = ld_a(i) * bv;
    else r = bv;
    r *= pc.alpha;
    if ((pc.flags & 1u) != 0u) r *= pc.s.v[0];
    pc.y.v[i] = r;
}
