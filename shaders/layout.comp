#version 450
#extension GL_GOOGLE_include_directive : require
// Layout ops: every one is a copy in which each output element is written by
// exactly one invocation, so forward and backward are the same two kernels.
//
// GATHER (permute, slice, their backward, the attention q/k/v split):
//   y[i] = alpha_s * x_s[off + sum_k idx_k(i) * xs[k]]   over y's dims (<= 6)
//   where s = idx_sel(i) when sel < ndim (the three-source gather that
//   re-interleaves dq, dk, dv), else 0. A source marked absent reads as 0.
// BAND (concat, slice backward): y viewed as (outer, Y, inner), c the middle
//   index: c in [lo, hi) reads x0 (outer, hi - lo, inner) at c - lo; c >= hi
//   reads x1 (outer, Y - hi, inner) at c - hi when present (concat, lo = 0);
//   anything else is 0 (the zero fill of a slice's gradient).
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint MODE = 0;
const uint GATHER = 0, BAND = 1;
layout(constant_id = 2) const uint TEXEL = 0;  // BAND: x0, x1 through texel bindings 0, 1
// ROWS = 1 (BAND): one (o, c) row of y per workgroup row (row_group()), r along
// x: the divisions and the choice of source are per workgroup, not per lane.
layout(constant_id = 3) const uint ROWS = 0;

layout(push_constant) uniform PC {
    FBuf y; FBuf x0; FBuf x1; FBuf x2;
    uint n, off, ndim, sel;
    uint absent;  // bit s: source s is absent (reads as 0)
    float a0, a1, a2;
    uint shape[6];  // y's dims, outermost first (BAND: outer, Y, inner)
    uint xs[6];     // source stride of each of y's dims (the sel dim: unused)
    uint lo, hi;
    int x0_first, x1_first;
} pc;

VKD_LOADER(ld_x0, vkd_tex0, pc.x0, pc.x0_first)
VKD_LOADER(ld_x1, vkd_tex1, pc.x1, pc.x1_first)

void main() {
    if (MODE == BAND && ROWS != 0u) {
        uint inner = pc.shape[2], Y = pc.shape[1];
        uint oc = row_group(), r = gl_WorkGroupID.x * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
        if (r >= inner || oc >= pc.shape[0] * Y) return;
        uint c = oc % Y, o = oc / Y, i = oc * inner + r;
        float v = 0.0;
        if (c >= pc.lo && c < pc.hi) {
            uint k = (o * (pc.hi - pc.lo) + (c - pc.lo)) * inner + r;
            v = ld_x0(k);
        } else if (c >= pc.hi && (pc.absent & 2u) == 0u) {
            uint k = (o * (Y - pc.hi) + (c - pc.hi)) * inner + r;
            v = ld_x1(k);
        }
        pc.y.v[i] = v;
        return;
    }
    uint i = flat_group() * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
    if (i >= pc.n) return;
    if (MODE == BAND) {
        uint inner = pc.shape[2], Y = pc.shape[1];
        uint r = i % inner, oc = i / inner, c = oc % Y, o = oc / Y;
        float v = 0.0;
        if (c >= pc.lo && c < pc.hi) {
            uint k = (o * (pc.hi - pc.lo) + (c - pc.lo)) * inner + r;
            v = ld_x0(k);
        } else if (c >= pc.hi && (pc.absent & 2u) == 0u) {
            uint k = (o * (Y - pc.hi) + (c - pc.hi)) * inner + r;
            v = ld_x1(k);
        }
        pc.y.v[i] = v;
        return;
    }
    uint rem = i, src = pc.off, s = 0;
    for (int k = int(pc.ndim) - 1; k >= 0; k--) {
        uint e = pc.shape[k];
        uint idx = rem % e;
        rem /= e;
        if (uint(k) == pc.sel) s = idx;
        else src += idx * pc.xs[k];
    }
    float v = 0.0;
    if (((pc.absent >> s) & 1u) == 0u) {
        if (s == 0u) v = pc.a0 * pc.x0.v[src];
        else if (s == 1u) v = pc.a1 * pc.x1.v[src];
        else v = pc.a2 * pc.x2.v[src];
    }
    pc.y.v[i] = v;
}
