#version 450
#extension GL_EXT_samplerless_texture_functions : require
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_KHR_shader_subgroup_shuffle : require
// Layer norm over the last axis (biased variance, as PyTorch), forward and backward.
// MODE 0, forward (one workgroup per row):
//   y = (x - mean) * rstd * w + b; writes mean and rstd (rows) for the backward.
// MODE 1, input gradient (one workgroup per row), xh = (x - mean) * rstd, g = dy * w:
//   dx = rstd * (g - mean(g) - xh * mean(g * xh))
// MODE 2, parameter gradients (one invocation per column, fixed row order):
//   dw = sum_rows dy * xh (into w), db = sum_rows dy (into b)
// flags: bit0 w present (MODE 2: write dw), bit1 b present (MODE 2: write db),
// bit2 (MODE 1) write old + dx, old being x's gradient so far, read from the b slot
// (unused by MODE 1); (MODE 2) add dw and db to what w and b hold (a parameter's
// persistent gradient). The sums are `precise`: the bits of a separate add.
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint MODE = 0;
// SGRED = 1: the workgroup is exactly one subgroup and sums with subgroupAdd
// (host sets it on lavapipe). There a barrier is a coroutine switch of every
// subgroup of the workgroup and each shared-memory access a scalar loop over
// the lanes, so the tree below cost more than the normalization itself
// (layer norm of 128x128: ~10 ms a call, measured under load). The subgroup
// sum has a fixed order too, so replays stay bit-identical.
layout(constant_id = 2) const uint SGRED = 0;
// TEXEL = 1 (CPU devices): the operands read through texel bindings, x at 0,
// w at 1 and b (or old) at 2 (MODE 0, 1), mean at 1 and rstd at 2 (MODE 2), dy at 3.
layout(constant_id = 3) const uint TEXEL = 0;
// FLAGS: pc.flags as a constant (the host passes both). llvmpipe runs an `if` it cannot prove
// dead under a mask, so a runtime bit 2 ran the dx pass's second gather and store for every
// element of a layer norm without it.
layout(constant_id = 4) const uint FLAGS = 0;
layout(constant_id = 5) const uint RPW = 1;  // MODE 0, 1: rows a workgroup
// VEC4 = 1 (MODE 0, 1; host: TEXEL, cols a multiple of 4, every operand read a vec4 view from 16
// bytes): a row is walked in quads, a quarter of the loop's trips and of its texel fetches (on
// llvmpipe a vec4 fetch costs about what a scalar one does). The sums then run in another
// order (each lane's quads, then the subgroup's): other bits than the scalar walk's.
// In MODE 2 (host: x and dy vec4 views, w and b on 16 bytes) an invocation sums 4 adjacent
// columns; each still sums its rows in order: the scalar walk's bits.
layout(constant_id = 6) const uint VEC4 = 0;

layout(push_constant) uniform PC {
    FBuf y; FBuf x; FBuf w; FBuf b; FBuf mean; FBuf rstd; FBuf dy;
    uint rows, cols, flags;
    float eps;
    int x_first, t1_first, t2_first, dy_first;
    int y_sfirst;  // layernorm_sb (VEC4, modes 0 and 1): y's storage binding, in vec4s (set at compile)
} pc;

layout(set = 0, binding = 2) uniform textureBuffer vkd_tex2;
layout(set = 0, binding = 3) uniform textureBuffer vkd_tex3;
VKD_LOADER(ld_x, vkd_tex0, pc.x, pc.x_first)
VKD_LOADER(ld_w, vkd_tex1, pc.w, pc.t1_first)
VKD_LOADER(ld_b, vkd_tex2, pc.b, pc.t2_first)
VKD_LOADER(ld_mean, vkd_tex1, pc.mean, pc.t1_first)
VKD_LOADER(ld_rstd, vkd_tex2, pc.rstd, pc.t2_first)
VKD_LOADER(ld_dy, vkd_tex3, pc.dy, pc.dy_first)

vec4 ld_x4(uint q) { return texelFetch(vkd_tex0, int(q) + pc.x_first); }
vec4 ld_w4(uint q) { return texelFetch(vkd_tex1, int(q) + pc.t1_first); }
vec4 ld_b4(uint q) { return texelFetch(vkd_tex2, int(q) + pc.t2_first); }
vec4 ld_dy4(uint q) { return texelFetch(vkd_tex3, int(q) + pc.dy_first); }
float hsum(vec4 v) { return (v.x + v.y) + (v.z + v.w); }

shared float red[gl_WorkGroupSize.x];

float wg_sum(float v) {
    if (SGRED != 0u) return subgroupAdd(v);
    uint t = gl_LocalInvocationID.x;
    red[t] = v;
    barrier();
    for (uint s = gl_WorkGroupSize.x / 2; s > 0; s >>= 1) {
        if (t < s) red[t] += red[t + s];
        barrier();
    }
    float r = red[0];
    barrier();
    return r;
}

// ROWSTATS = 1 (MODE 0, 1; host: SGRED, 1 < RPW <= the workgroup's size): lane r holds the
// mean and rstd of the workgroup's row r. The forward stores them in one pass after its rows and
// the input gradient loads them in one before: two of llvmpipe's per-lane store (or load) loops
// a workgroup instead of two a row, where a row of 128 has only four loops of y to store.
layout(constant_id = 7) const uint ROWSTATS = 0;
float st_mu = 0.0, st_rs = 0.0;  // ROWSTATS: lane r's row r of the workgroup

// The statistics of row `row`, the r-th of its workgroup (MODE 0 keeps them, MODE 1 reads them).
void put_stats(uint row, uint r, float mu, float rs) {
    if (ROWSTATS != 0u) {
        if (gl_LocalInvocationID.x == r) st_mu = mu, st_rs = rs;
    } else if (gl_LocalInvocationID.x == 0u) {
        pc.mean.v[row] = mu;
        pc.rstd.v[row] = rs;
    }
}
vec2 get_stats(uint row, uint r) {
    if (ROWSTATS != 0u) return vec2(subgroupShuffle(st_mu, r), subgroupShuffle(st_rs, r));
    return vec2(pc.mean.v[row], pc.rstd.v[row]);
}

// One row of MODE 0 or 1 (the whole workgroup).
void ln_row(uint row, uint r) {
    bool has_w = (FLAGS & 1u) != 0u;
    bool has_b = (FLAGS & 2u) != 0u;
    uint t = gl_LocalInvocationID.x, W = gl_WorkGroupSize.x;
    uint base = row * pc.cols;
    float inv_n = 1.0 / float(pc.cols);
    if (MODE == 0u) {
        float s = 0.0;
        for (uint c = t; c < pc.cols; c += W) s += ld_x(base + c);
        float mu = wg_sum(s) * inv_n;
        float q = 0.0;
        for (uint c = t; c < pc.cols; c += W) { float d = ld_x(base + c) - mu; q += d * d; }
        float rs = inversesqrt(wg_sum(q) * inv_n + pc.eps);
        for (uint c = t; c < pc.cols; c += W) {
            float v = (ld_x(base + c) - mu) * rs;
            if (has_w) v *= ld_w(c);
            if (has_b) v += ld_b(c);
            pc.y.v[base + c] = v;
        }
        put_stats(row, r, mu, rs);
    } else {
        const vec2 st = get_stats(row, r);
        const float mu = st.x, rs = st.y;
        float sg = 0.0, sgx = 0.0;
        for (uint c = t; c < pc.cols; c += W) {
            float g = ld_dy(base + c) * (has_w ? ld_w(c) : 1.0);
            float xh = (ld_x(base + c) - mu) * rs;
            sg += g;
            sgx += g * xh;
        }
        sg = wg_sum(sg) * inv_n;
        sgx = wg_sum(sgx) * inv_n;
        for (uint c = t; c < pc.cols; c += W) {
            float g = ld_dy(base + c) * (has_w ? ld_w(c) : 1.0);
            float xh = (ld_x(base + c) - mu) * rs;
            precise float dx = rs * (g - sg - xh * sgx);
            if ((FLAGS & 4u) != 0u) {
                precise float s = ld_b(base + c) + dx;
                pc.y.v[base + c] = s;
            } else {
                pc.y.v[base + c] = dx;
            }
        }
    }
}

// ln_row in quads (VEC4): q walks the row's cols / 4 quads.
void ln_row4(uint row, uint r) {
    bool has_w = (FLAGS & 1u) != 0u;
    bool has_b = (FLAGS & 2u) != 0u;
    uint t = gl_LocalInvocationID.x, W = gl_WorkGroupSize.x;
    uint base = row * pc.cols, nq = pc.cols / 4u, bq = base / 4u;
    float inv_n = 1.0 / float(pc.cols);
    if (MODE == 0u) {
        vec4 s = vec4(0.0);
        for (uint q = t; q < nq; q += W) s += ld_x4(bq + q);
        float mu = wg_sum(hsum(s)) * inv_n;
        vec4 d2 = vec4(0.0);
        for (uint q = t; q < nq; q += W) { vec4 d = ld_x4(bq + q) - mu; d2 += d * d; }
        float rs = inversesqrt(wg_sum(hsum(d2)) * inv_n + pc.eps);
        for (uint q = t; q < nq; q += W) {
            vec4 v = (ld_x4(bq + q) - mu) * rs;
            if (has_w) v *= ld_w4(q);
            if (has_b) v += ld_b4(q);
            VKD_OUT4(pc.y, base + 4u * q, vkd_keep(v), pc.y_sfirst);
        }
        put_stats(row, r, mu, rs);
    } else {
        const vec2 st = get_stats(row, r);
        const float mu = st.x, rs = st.y;
        vec4 sg = vec4(0.0), sgx = vec4(0.0);
        for (uint q = t; q < nq; q += W) {
            vec4 g = ld_dy4(bq + q) * (has_w ? ld_w4(q) : vec4(1.0));
            vec4 xh = (ld_x4(bq + q) - mu) * rs;
            sg += g;
            sgx += g * xh;
        }
        float mg = wg_sum(hsum(sg)) * inv_n, mgx = wg_sum(hsum(sgx)) * inv_n;
        for (uint q = t; q < nq; q += W) {
            vec4 g = ld_dy4(bq + q) * (has_w ? ld_w4(q) : vec4(1.0));
            vec4 xh = (ld_x4(bq + q) - mu) * rs;
            precise vec4 dx = rs * (g - mg - xh * mgx);
            if ((FLAGS & 4u) != 0u) {
                precise vec4 s = ld_b4(bq + q) + dx;
                VKD_OUT4(pc.y, base + 4u * q, vkd_keep(s), pc.y_sfirst);
            } else {
                VKD_OUT4(pc.y, base + 4u * q, vkd_keep(dx), pc.y_sfirst);
            }
        }
    }
}

// MODE 2 with VEC4: columns 4q .. 4q+3.
void param_grads4(uint q, bool has_w, bool has_b) {
    const uint c = 4u * q;
    if (c >= pc.cols) return;
    vec4 dw = vec4(0.0), db = vec4(0.0);
    for (uint r = 0; r < pc.rows; r++) {
        const uint e = (r * pc.cols + c) / 4u;
        vec4 g = ld_dy4(e);
        dw += g * (ld_x4(e) - ld_mean(r)) * ld_rstd(r);
        db += g;
    }
    if ((FLAGS & 4u) != 0u) {
        if (has_w) {
            precise vec4 s = vec4(pc.w.v[c], pc.w.v[c + 1u], pc.w.v[c + 2u], pc.w.v[c + 3u]) + dw;
            vkd_store4(pc.w, c, vkd_keep(s));
        }
        if (has_b) {
            precise vec4 s = vec4(pc.b.v[c], pc.b.v[c + 1u], pc.b.v[c + 2u], pc.b.v[c + 3u]) + db;
            vkd_store4(pc.b, c, vkd_keep(s));
        }
    } else {
        if (has_w) vkd_store4(pc.w, c, vkd_keep(dw));
        if (has_b) vkd_store4(pc.b, c, vkd_keep(db));
    }
}

void main() {
    bool has_w = (FLAGS & 1u) != 0u, has_b = (FLAGS & 2u) != 0u;
    uint t = gl_LocalInvocationID.x, W = gl_WorkGroupSize.x;
    if (MODE == 2u && VEC4 != 0u) {
        param_grads4(flat_group() * W + t, has_w, has_b);
        return;
    }
    if (MODE == 2u) {
        uint c = flat_group() * W + t;
        if (c >= pc.cols) return;
        float dw = 0.0, db = 0.0;
        for (uint r = 0; r < pc.rows; r++) {
            float g = ld_dy(r * pc.cols + c);
            dw += g * (ld_x(r * pc.cols + c) - ld_mean(r)) * ld_rstd(r);
            db += g;
        }
        if ((FLAGS & 4u) != 0u) {
            if (has_w) { precise float s = pc.w.v[c] + dw; pc.w.v[c] = s; }
            if (has_b) { precise float s = pc.b.v[c] + db; pc.b.v[c] = s; }
        } else {
            if (has_w) pc.w.v[c] = dw;
            if (has_b) pc.b.v[c] = db;
        }
        return;
    }
    // RPW rows a workgroup, one after the other (on lavapipe every workgroup is a task of its
    // own; see src/ops/layernorm.c).
    const uint row0 = flat_group() * RPW;
    if (ROWSTATS != 0u && MODE == 1u && t < RPW) {
        const uint row = min(row0 + t, pc.rows - 1u);
        st_mu = pc.mean.v[row], st_rs = pc.rstd.v[row];
    }
    for (uint r = 0u; r < RPW; r++) {
        const uint row = row0 + r;
        if (row >= pc.rows) break;
        if (VEC4 != 0u) ln_row4(row, r);
        else ln_row(row, r);
    }
    if (ROWSTATS != 0u && MODE == 0u && t < RPW && row0 + t < pc.rows) {
        pc.mean.v[row0 + t] = st_mu;
        pc.rstd.v[row0 + t] = st_rs;
    }
}
