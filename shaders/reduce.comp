#version 450
#extension GL_EXT_samplerless_texture_functions : require
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_KHR_shader_subgroup_shuffle : require
// Sums, deterministic (fixed order, no atomics) so replays are bit-identical.
// MODE_ROWS: one workgroup per row of x viewed as (rows, cols), tree reduction
//   in shared memory: y[r] = alpha * sum_c f(x[r*cols + c]) over r*cols+c < nbound.
// MODE_COLS: one invocation per output of x viewed as (rows=outer, cols=R, inner):
//   y[o*inner + j] = alpha * sum_r f(x[(o*R + r)*inner + j]) (coalesced over j).
// f(v) = v, (v - x2)^2 when SQDIFF = 1 (the mean-squared error), v^2 when
// SQDIFF = 2 (a gradient's squared norm without a materialized square), v * x2 when SQDIFF = 3
// (MODE_COLS: attention's rows of dp * p as sums of da * a over the channels).
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint MODE = 0;
layout(constant_id = 2) const uint SQDIFF = 0;
// SGRED = 1 (lavapipe): the workgroup is one subgroup and MODE_ROWS sums with
// subgroupAdd instead of a barrier tree (see groupnorm.comp for why).
layout(constant_id = 3) const uint SGRED = 0;
layout(constant_id = 4) const uint TEXEL = 0;  // x, x2 through texel bindings 0, 1
// MULTI = 1 (MODE_ROWS): row r is a whole tensor inside x, a span of a memory block
// (src/ops/multi.c): table[8 r] = its length, the output index, its offset in x. The
// same walk as a row of its own, so a tensor's sum has the bits of its own dispatch.
layout(constant_id = 5) const uint MULTI = 0;
// ACCUM = 1 (MODE_COLS): y += the sum (a parameter's gradient added into its persistent
// buffer by the pass that makes it: old + g, the bits of an add after it).
layout(constant_id = 6) const uint ACCUM = 0;
// VEC4 = 1 (MODE_COLS, SQDIFF 0 or 3; host: TEXEL, inner a multiple of 4, x, x2 and y vec4 views from
// 16 bytes): an invocation sums 4 adjacent outputs, reading x's rows as quads (on llvmpipe a
// vec4 fetch costs about what a scalar one does) and, with ACCUM, y's old values through
// texel binding 1. Each output still sums its rows in order: the scalar walk's bits.
// In MODE_ROWS (SQDIFF 0 or 2; host: TEXEL, a row's start on 16 bytes, x a vec4 view) a lane
// walks the row in quads, a quarter of the trips and of the fetches, then the row's last
// len % 4 elements one per lane through the buffer. Another order than the scalar walk: other
// bits, the same for a tensor summed alone and inside a multi-tensor group (sum_squares).
layout(constant_id = 7) const uint VEC4 = 0;
// NSUM = 1 (MODE_ROWS with SGRED; host: CPU devices): x viewed as (outer, bc = pc.inner, cols), one
// workgroup a column c walks its rows r = o*bc + c, o = 0 .. outer - 1 in order: each row summed as
// the host's row pass would (rows of at most 64 by one invocation in order, as its short-row
// pass; longer ones by the workgroup's walk), written to y[r] when pc.zflags bit0, and the rows'
// sum over o, in order as the column pass sums them, into z[c] (bit1: added to z's old value, a
// parameter's persistent gradient). A bias gradient (and a UNet block's embedding gradient) in
// one dispatch instead of two.
layout(constant_id = 8) const uint NSUM = 0;
const uint MODE_ROWS = 0, MODE_COLS = 1;

layout(push_constant) uniform PC {
    FBuf y; FBuf x; FBuf x2;
    uint rows, cols, inner, nbound;
    float alpha;
    int x_first, x2_first;
    UBuf table;  // MULTI
    FBuf z;      // NSUM: the column sums
    uint zflags;
} pc;

shared float part[gl_WorkGroupSize.x];

VKD_LOADER(ld_x, vkd_tex0, pc.x, pc.x_first)
VKD_LOADER(ld_x2, vkd_tex1, pc.x2, pc.x2_first)

// f on a quad of x (VEC4, MODE_ROWS) and on one element read from the buffer (a row's tail).
vec4 f4(uint q) {
    vec4 v = texelFetch(vkd_tex0, int(q) + pc.x_first);
    if (SQDIFF == 2u) { precise vec4 s = v * v; v = s; }
    return v;
}
float f_buf(uint k) {
    float v = pc.x.v[k];
    if (SQDIFF == 2u) { precise float s = v * v; v = s; }
    return v;
}

float f(uint k) {
    float v = ld_x(k);
    if (SQDIFF == 1u) { v -= ld_x2(k); v *= v; }
    if (SQDIFF == 2u) { precise float s = v * v; v = s; }  // rounded as a separate multiply would be
    if (SQDIFF == 3u) v *= ld_x2(k);
    return v;
}

// MODE_ROWS: this invocation's part of the sum of the row at base (cols elements below bound)
float row_part(uint base, uint cols, uint bound) {
    float acc = 0.0;
    if (VEC4 != 0u && SQDIFF != 1u) {
        const uint len = bound > base ? min(cols, bound - base) : 0u, nq = len / 4u;
        vec4 a4 = vec4(0.0);
        for (uint q = gl_LocalInvocationID.x; q < nq; q += gl_WorkGroupSize.x) a4 += f4(base / 4u + q);
        acc = (a4.x + a4.y) + (a4.z + a4.w);
        const uint c = 4u * nq + gl_LocalInvocationID.x;
        if (c < len) acc += f_buf(base + c);
    } else {
        for (uint c = gl_LocalInvocationID.x; c < cols && base + c < bound; c += gl_WorkGroupSize.x)
            acc += f(base + c);
    }
    return acc;
}

// NSUM: column c's rows and their sum (see NSUM)
void column_of_rows(uint c) {
    const uint bc = pc.inner, outer = pc.rows / bc, lane = gl_LocalInvocationID.x, W = gl_WorkGroupSize.x;
    const bool rows_out = (pc.zflags & 1u) != 0u;
    float col = 0.0;
    if (pc.cols <= 64u) {
        for (uint o0 = 0; o0 < outer; o0 += W) {
            const uint o = o0 + lane, base = (o * bc + c) * pc.cols;
            float v = 0.0;
            for (uint k = 0; o < outer && k < pc.cols; k++) v += f(base + k);
            v *= pc.alpha;
            if (rows_out && o < outer) pc.y.v[o * bc + c] = v;
            for (uint l = 0; l < W && o0 + l < outer; l++) col += subgroupShuffle(v, l);
        }
    } else {
        for (uint o = 0; o < outer; o++) {
            const uint r = o * bc + c;
            const float v = pc.alpha * subgroupAdd(row_part(r * pc.cols, pc.cols, pc.nbound));
            if (rows_out && lane == 0u) pc.y.v[r] = v;
            col += v;
        }
    }
    if (lane == 0u) {
        precise float s = (pc.zflags & 2u) != 0u ? pc.z.v[c] + col : col;
        pc.z.v[c] = s;
    }
}

void main() {
    if (MODE == MODE_ROWS && NSUM != 0u) {
        const uint c = flat_group();
        if (c < pc.inner) column_of_rows(c);
        return;
    }
    if (MODE == MODE_ROWS) {
        uint r = flat_group();
        if (r >= pc.rows) return;  // uniform over the workgroup
        uint base = r * pc.cols, cols = pc.cols, bound = pc.nbound, dst = r;
        if (MULTI != 0u) {
            cols = pc.table.v[8u * r], dst = pc.table.v[8u * r + 1u], base = pc.table.v[8u * r + 2u];
            bound = base + cols;
        }
        float acc = row_part(base, cols, bound);
        if (SGRED != 0u) {
            acc = subgroupAdd(acc);
            if (gl_LocalInvocationID.x == 0) pc.y.v[dst] = pc.alpha * acc;
            return;
        }
        part[gl_LocalInvocationID.x] = acc;
        barrier();
        for (uint s = gl_WorkGroupSize.x / 2; s > 0; s >>= 1) {
            if (gl_LocalInvocationID.x < s) part[gl_LocalInvocationID.x] += part[gl_LocalInvocationID.x + s];
            barrier();
        }
        if (gl_LocalInvocationID.x == 0) pc.y.v[dst] = pc.alpha * part[0];
    } else if (VEC4 != 0u) {
        uint q = flat_group() * gl_WorkGroupSize.x + gl_LocalInvocationID.x, i = 4u * q;
        if (i >= pc.rows * pc.inner) return;
        uint o = i / pc.inner, j = i % pc.inner;
        vec4 acc = vec4(0.0);
        for (uint r = 0; r < pc.cols; r++) {
            const int e = int(((o * pc.cols + r) * pc.inner + j) / 4u);
            const vec4 v = texelFetch(vkd_tex0, e + pc.x_first);
            acc += SQDIFF == 3u ? v * texelFetch(vkd_tex1, e + pc.x2_first) : v;  // (SQDIFF 3: x2 a vec4 view)
        }
        if (ACCUM != 0u) {
            precise vec4 s = texelFetch(vkd_tex1, int(q) + pc.x2_first) + pc.alpha * acc;
            vkd_store4(pc.y, i, vkd_keep(s));
        } else {
            vkd_store4(pc.y, i, vkd_keep(pc.alpha * acc));
        }
    } else {
        uint i = flat_group() * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
        if (i >= pc.rows * pc.inner) return;
        uint o = i / pc.inner, j = i % pc.inner;
        float acc = 0.0;
        for (uint r = 0; r < pc.cols; r++) acc += f((o * pc.cols + r) * pc.inner + j);
        if (ACCUM != 0u) {
            precise float s = pc.y.v[i] + pc.alpha * acc;
            pc.y.v[i] = s;
        } else {
            pc.y.v[i] = pc.alpha * acc;
        }
    }
}
