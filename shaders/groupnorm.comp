#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_arithmetic : require
// Group norm (torch.nn.GroupNorm) of x (N, C, S) with S the flattened spatial
// size: a "row" is one (n, group), i.e. cpg = C/groups consecutive channels,
// cpg*S contiguous elements. Biased variance, as PyTorch.
// MODE 0, forward (one workgroup per row):
//   y = (x - mean) * rstd * w[c] + b[c]; writes mean and rstd (N*groups).
// MODE 1, input gradient (one workgroup per row), xh = (x - mean) * rstd, g = dy * w[c]:
//   dx = rstd * (g - mean(g) - xh * mean(g * xh))   (written into y)
// MODE 2, parameter gradients (one workgroup per channel, fixed order over n and s):
//   dw[c] = sum dy * xh (into w), db[c] = sum dy (into b)
// Every reduction is a fixed per-invocation stride followed by a fixed tree, so
// a replayed graph is bit-identical.
// flags: bit0 w present (MODE 2: write dw), bit1 b present (MODE 2: write db).
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

layout(push_constant) uniform PC {
    FBuf y; FBuf x; FBuf w; FBuf b; FBuf mean; FBuf rstd; FBuf dy;
    uint N, C, S, groups, flags;
    float eps;
} pc;

shared float red[gl_WorkGroupSize.x];
shared float red2[gl_WorkGroupSize.x];

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

vec2 wg_sum2(vec2 v) {
    if (SGRED != 0u) return subgroupAdd(v);
    uint t = gl_LocalInvocationID.x;
    red[t] = v.x;
    red2[t] = v.y;
    barrier();
    for (uint s = gl_WorkGroupSize.x / 2; s > 0; s >>= 1) {
        if (t < s) { red[t] += red[t + s]; red2[t] += red2[t + s]; }
        barrier();
    }
    vec2 r = vec2(red[0], red2[0]);
    barrier();
    return r;
}

void main() {
    bool has_w = (pc.flags & 1u) != 0u, has_b = (pc.flags & 2u) != 0u;
    uint t = gl_LocalInvocationID.x, W = gl_WorkGroupSize.x;
    uint cpg = pc.C / pc.groups;
    if (MODE == 2u) {
        uint c = flat_group();
        if (c >= pc.C) return;
        uint grp = c / cpg;
        vec2 acc = vec2(0.0);
        for (uint n = 0; n < pc.N; n++) {
            uint base = (n * pc.C + c) * pc.S;
            float mu = pc.mean.v[n * pc.groups + grp], rs = pc.rstd.v[n * pc.groups + grp];
            for (uint s = t; s < pc.S; s += W) {
                float g = pc.dy.v[base + s];
                acc += vec2(g * (pc.x.v[base + s] - mu) * rs, g);
            }
        }
        acc = wg_sum2(acc);
        if (t == 0u) {
            if (has_w) pc.w.v[c] = acc.x;
            if (has_b) pc.b.v[c] = acc.y;
        }
        return;
    }
    uint row = flat_group();
    if (row >= pc.N * pc.groups) return;
    uint L = cpg * pc.S, base = row * L, c0 = (row % pc.groups) * cpg;
    float inv_n = 1.0 / float(L);
    if (MODE == 0u) {
        float s = 0.0;
        for (uint e = t; e < L; e += W) s += pc.x.v[base + e];
        float mu = wg_sum(s) * inv_n;
        float q = 0.0;
        for (uint e = t; e < L; e += W) { float d = pc.x.v[base + e] - mu; q += d * d; }
        float rs = inversesqrt(wg_sum(q) * inv_n + pc.eps);
        for (uint e = t; e < L; e += W) {
            uint c = c0 + e / pc.S;
            float v = (pc.x.v[base + e] - mu) * rs;
            if (has_w) v *= pc.w.v[c];
            if (has_b) v += pc.b.v[c];
            pc.y.v[base + e] = v;
        }
        if (t == 0u) { pc.mean.v[row] = mu; pc.rstd.v[row] = rs; }
    } else {
        float mu = pc.mean.v[row], rs = pc.rstd.v[row];
        vec2 acc = vec2(0.0);
        for (uint e = t; e < L; e += W) {
            float g = pc.dy.v[base + e] * (has_w ? pc.w.v[c0 + e / pc.S] : 1.0);
            float xh = (pc.x.v[base + e] - mu) * rs;
            acc += vec2(g, g * xh);
        }
        acc = wg_sum2(acc) * inv_n;
        for (uint e = t; e < L; e += W) {
            float g = pc.dy.v[base + e] * (has_w ? pc.w.v[c0 + e / pc.S] : 1.0);
            float xh = (pc.x.v[base + e] - mu) * rs;
            pc.y.v[base + e] = rs * (g - acc.x - xh * acc.y);
        }
    }
}
