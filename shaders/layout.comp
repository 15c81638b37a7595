#version 450
#extension GL_EXT_samplerless_texture_functions : require
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
layout(constant_id = 2) const uint TEXEL = 0;  // x0, x1 (, x2) through texel bindings 0, 1 (, 2)
// ROWS = 1: rpw rows of y per workgroup row (row_group() * rpw + k, one after
// the other), r along x: the divisions and the choice of source are per row,
// not per lane, and short rows share a workgroup (on lavapipe a workgroup
// costs about what a few hundred elements do). BAND: an (o, c) row; GATHER:
// y's innermost axis (not the selecting one).
layout(constant_id = 3) const uint ROWS = 0;

layout(push_constant) uniform PC {
    FBuf y; FBuf x0; FBuf x1; FBuf x2;
    uint n, off;
    uint dims;    // ndim | sel << 8 (GATHER; 0xff: none) | absent << 16 (bit s: source s reads as 0)
    uint rpw;     // ROWS: rows per workgroup
    float a0, a1, a2;
    uint shape[6];  // y's dims, outermost first (BAND: outer, Y, inner)
    uint xs[6];     // source stride of each of y's dims (the sel dim: unused)
    uint lo, hi;
    int x0_first, x1_first, x2_first;
} pc;

layout(set = 0, binding = 2) uniform textureBuffer vkd_tex2;
VKD_LOADER(ld_x0, vkd_tex0, pc.x0, pc.x0_first)
VKD_LOADER(ld_x1, vkd_tex1, pc.x1, pc.x1_first)
VKD_LOADER(ld_x2, vkd_tex2, pc.x2, pc.x2_first)

// GATHER: alpha_s * x_s[src], or 0 when source s is absent.
float gather_src(uint s, uint src) {
    if (((pc.dims >> (16u + s)) & 1u) != 0u) return 0.0;
    if (s == 0u) return pc.a0 * ld_x0(src);
    if (s == 1u) return pc.a1 * ld_x1(src);
    return pc.a2 * ld_x2(src);
}

// GATHER, row launch: row `row` of y (its innermost axis), element r.
void gather_row(uint row, uint r) {
    uint last = (pc.dims & 0xffu) - 1u, sel = (pc.dims >> 8) & 0xffu, inner = pc.shape[last];
    uint rem = row, src = pc.off, s = 0;
    for (int k = int(last) - 1; k >= 0; k--) {
        uint e = pc.shape[k];
        uint idx = rem % e;
        rem /= e;
        if (uint(k) == sel) s = idx;
        else src += idx * pc.xs[k];
    }
    pc.y.v[row * inner + r] = gather_src(s, src + r * pc.xs[last]);
}

// BAND: element i = (o, c, r) of y.
void band_one(uint i, uint o, uint c, uint r) {
    uint inner = pc.shape[2], Y = pc.shape[1];
    float v = 0.0;
    if (c >= pc.lo && c < pc.hi) {
        uint k = (o * (pc.hi - pc.lo) + (c - pc.lo)) * inner + r;
        v = ld_x0(k);
    } else if (c >= pc.hi && ((pc.dims >> 17) & 1u) == 0u) {
        uint k = (o * (Y - pc.hi) + (c - pc.hi)) * inner + r;
        v = ld_x1(k);
    }
    pc.y.v[i] = v;
}

void main() {
    if (ROWS != 0u) {
        uint inner = MODE == GATHER ? pc.shape[(pc.dims & 0xffu) - 1u] : pc.shape[2];
        uint r = gl_WorkGroupID.x * gl_WorkGroupSize.x + gl_LocalInvocationID.x, rows = pc.n / inner;
        if (r >= inner) return;
        for (uint k = 0u, row = row_group() * pc.rpw; k < pc.rpw && row < rows; k++, row++) {
            if (MODE == GATHER) gather_row(row, r);
            else band_one(row * inner + r, row / pc.shape[1], row % pc.shape[1], r);
        }
        return;
    }
    uint i = flat_group() * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
    if (i >= pc.n) return;
    if (MODE == BAND) {
        uint inner = pc.shape[2], Y = pc.shape[1], oc = i / inner;
        band_one(i, oc / Y, oc % Y, i % inner);
        return;
    }
    uint ndim = pc.dims & 0xffu, sel = (pc.dims >> 8) & 0xffu, rem = i, src = pc.off, s = 0;
    for (int k = int(ndim) - 1; k >= 0; k--) {
        uint e = pc.shape[k];
        uint idx = rem % e;
        rem /= e;
        if (uint(k) == sel) s = idx;
        else src += idx * pc.xs[k];
    }
    pc.y.v[i] = gather_src(s, src);
}
