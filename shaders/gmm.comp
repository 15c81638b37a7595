#version 450
#extension GL_EXT_samplerless_texture_functions : require
#extension GL_GOOGLE_include_directive : require
// The exact denoiser of a Gaussian mixture p0 = sum_k w_k N(mu_k, s_k^2 I) and its
// vector-Jacobian product. Per sample x (d) at noise level sigma, v_k = s_k^2 + sigma^2:
//   lp_k = log w_k - d/2 log v_k - |x - mu_k|^2 / (2 v_k)    (2 pi cancels)
//   r_k  = exp(lp_k - max lp) / sum_j exp(lp_j - max lp)      (log-sum-exp in fp32)
//   D    = sum_k r_k (mu_k + a_k (x - mu_k)),  a_k = s_k^2 / v_k
// MODE 1 (backward), u = dL/dD, c_k = u . m_k with m_k = mu_k + a_k (x - mu_k),
// g_k = -(x - mu_k) / v_k, cbar = sum r_k c_k, abar = sum r_k a_k:
//   dx = abar u + sum_k r_k (c_k - cbar) g_k
// (= sum r_k a_k u + sum r_k (u.m_k)(g_k - gbar), written so nothing large cancels).
//
// T invocations share a sample (T a power of two dividing the workgroup): each
// sums its strided share of the d elements, a shared-memory tree gives the
// per-component sums, and every invocation of the group reads the result and
// keeps its own copy of lp_k (and c_k) in its own slice of the scratch buffer,
// so no invocation ever reads global memory another one wrote. The reductions
// have a fixed order: results are deterministic.
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint T = 1;     // invocations per sample
layout(constant_id = 2) const uint MODE = 0;  // 0: D, 1: dx
// KC = K as a constant (host: T = 1, small d and K): one invocation per sample keeps lp_k, r_k
// and c_k in registers (main_small), with no scratch and no barriers. On llvmpipe every scratch
// store and load was a loop over the lanes and every barrier a coroutine switch: a 2-D ring of
// 8 modes at batch 128 took ~140 us a pass. The same sums in the same order as T = 1 below.
layout(constant_id = 3) const uint KC = 0;

layout(push_constant) uniform PC {
    FBuf x;      // (n, d)
    FBuf sigma;  // (n)
    FBuf mu;     // (K, d)
    FBuf par;    // (K, 2): log w_k, s_k^2
    FBuf y;      // (n, d): D or dx
    FBuf u;      // (n, d): dL/dD (MODE 1)
    FBuf scr;    // (n, T, 2K) scratch, one slice per invocation
    uint n, K, d;
} pc;

shared vec2 red[2][gl_WorkGroupSize.x];  // double-buffered so a read never races the next write

// The formulas both paths share (the same expressions, so the same bits).
// |x - mu_k|^2 and (MODE 1) u . m_k over the elements i0, i0 + step, ... of sample xo.
vec2 dist_terms(uint k, uint xo, uint i0, uint step, float s2) {
    const uint d = pc.d;
    const float sk2 = pc.par.v[2u * k + 1u], a = sk2 / (sk2 + s2);
    vec2 acc = vec2(0.0);
    for (uint i = i0; i < d; i += step) {
        float mui = pc.mu.v[k * d + i];
        float e = pc.x.v[xo + i] - mui;
        acc.x += e * e;
        if (MODE == 1u) acc.y += pc.u.v[xo + i] * (mui + a * e);
    }
    return acc;
}
float log_density(uint k, float q, float s2) {
    const float v = pc.par.v[2u * k + 1u] + s2;
    return pc.par.v[2u * k] - 0.5 * float(pc.d) * log(v) - 0.5 * q / v;
}
// Component k's share of element i (responsibility r, c = u . m_k): added (MODE 0) or
// subtracted (MODE 1) by the caller.
float out_term(uint k, uint i, float xi, float r, float c, float cbar, float s2) {
    const float sk2 = pc.par.v[2u * k + 1u], v = sk2 + s2;
    const float e = xi - pc.mu.v[k * pc.d + i];
    return MODE == 0u ? r * (pc.mu.v[k * pc.d + i] + (sk2 / v) * e) : r * (c - cbar) * e / v;
}

void main_small() {
    const uint smp = flat_group() * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
    if (smp >= pc.n) return;
    const uint d = pc.d, xo = smp * d;
    const float sig = pc.sigma.v[smp], s2 = sig * sig;
    float lp[KC > 0u ? KC : 1u], cc[KC > 0u ? KC : 1u], m = -3.4e38;
    [[unroll]] for (uint k = 0; k < KC; k++) {
        const vec2 acc = dist_terms(k, xo, 0u, 1u, s2);
        lp[k] = log_density(k, acc.x, s2);
        cc[k] = acc.y;
        m = max(m, lp[k]);
    }
    float z = 0.0;
    [[unroll]] for (uint k = 0; k < KC; k++) z += exp(lp[k] - m);
    float abar = 0.0, cbar = 0.0;
    [[unroll]] for (uint k = 0; k < KC; k++) {
        float r = exp(lp[k] - m) / z;
        lp[k] = r;
        if (MODE == 1u) {
            float sk2 = pc.par.v[2u * k + 1u];
            abar += r * sk2 / (sk2 + s2);
            cbar += r * cc[k];
        }
    }
    for (uint i = 0; i < d; i++) {
        float xi = pc.x.v[xo + i];
        float acc = 0.0;
        [[unroll]] for (uint k = 0; k < KC; k++) {
            const float t = out_term(k, i, xi, lp[k], cc[k], cbar, s2);
            acc = MODE == 0u ? acc + t : acc - t;
        }
        pc.y.v[xo + i] = MODE == 0u ? acc : abar * pc.u.v[xo + i] + acc;
    }
}

void main() {
    if (KC != 0u) {
        main_small();
        return;
    }
    uint lid = gl_LocalInvocationID.x;
    uint lane = lid % T, grp = lid / T;
    uint smp = flat_group() * (gl_WorkGroupSize.x / T) + grp;
    bool valid = smp < pc.n;
    uint K = pc.K, d = pc.d, xo = smp * d, so = (smp * T + lane) * 2u * K;
    float sig = valid ? pc.sigma.v[smp] : 1.0;
    float s2 = sig * sig;
    float m = -3.4e38;
    // Pass 1: squared distances (and u . m_k) per component.
    for (uint k = 0; k < K; k++) {
        uint b = k & 1u;
        red[b][lid] = valid ? dist_terms(k, xo, lane, T, s2) : vec2(0.0);
        barrier();
        [[unroll]] for (uint off = T / 2u; off > 0u; off >>= 1) {
            if (lane < off) red[b][lid] += red[b][lid + off];
            barrier();
        }
        vec2 t = red[b][grp * T];
        if (valid) {
            float lp = log_density(k, t.x, s2);
            pc.scr.v[so + k] = lp;
            pc.scr.v[so + K + k] = t.y;
            m = max(m, lp);
        }
    }
    if (!valid) return;  // no barriers below
    float z = 0.0;
    for (uint k = 0; k < K; k++) z += exp(pc.scr.v[so + k] - m);
    float abar = 0.0, cbar = 0.0;
    for (uint k = 0; k < K; k++) {
        float r = exp(pc.scr.v[so + k] - m) / z;
        pc.scr.v[so + k] = r;
        if (MODE == 1u) {
            float sk2 = pc.par.v[2u * k + 1u];
            abar += r * sk2 / (sk2 + s2);
            cbar += r * pc.scr.v[so + K + k];
        }
    }
    // Pass 2: the per-element sums over components.
    for (uint i = lane; i < d; i += T) {
        float xi = pc.x.v[xo + i];
        float acc = 0.0;
        for (uint k = 0; k < K; k++) {
            const float t = out_term(k, i, xi, pc.scr.v[so + k], MODE == 1u ? pc.scr.v[so + K + k] : 0.0, cbar, s2);
            acc = MODE == 0u ? acc + t : acc - t;
        }
        pc.y.v[xo + i] = MODE == 0u ? acc : abar * pc.u.v[xo + i] + acc;
    }
}
