#version 450
#extension GL_EXT_samplerless_texture_functions : require
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_EXT_buffer_reference_uvec2 : require
// Group norm (torch.nn.GroupNorm) of x (N, C, S) with S the flattened spatial
// size, optionally followed by SiLU (ACT = 1: y = silu(z), z = GN(x)*w + b, the
// pair every UNet block runs back to back; fused, the activation costs no pass
// of its own forward or backward). A "row" is one (n, group): cpg = C/groups
// consecutive channels, cpg*S contiguous elements. Biased variance, as PyTorch.
// MODE 0, forward (one workgroup per row): y, and the rows' statistics (2, N*groups): mean, then rstd.
// MODE 1, input gradient (one workgroup per row), xh = (x - mean) * rstd,
//   g = dz * w[c] with dz = dy (ACT 0) or dy * silu'(z) (ACT 1):
//   dx = rstd * (g - mean(g) - xh * mean(g * xh))   (written into y)
// MODE 2, parameter gradients (one workgroup per channel, fixed order over n and s):
//   dw[c] = sum dz * xh, db[c] = sum dz
// MODE 1 with CMAJOR can also write the per-sample terms of those sums,
// dw[n*C + c] = sum_s dz * xh and db[n*C + c] = sum_s dz (flags bit2, bit3),
// for the host to sum over n: one pass over x and dy less than MODE 2.
// MODE 1 with flags bit4 writes old + dx, old (pc.old) being the gradient x
// already has from other uses: the add autograd would run next, in this pass.
// dx and the sum are `precise`, so the bits are those of the separate add
// on every driver (no contraction of rs * (...) + old into an fma).
// Every reduction is a fixed per-invocation stride followed by a fixed tree, so
// a replayed graph is bit-identical.
// MODE 1 with NL (the channels a group; host: CPU devices, CMAJOR): one workgroup a group walks
// the samples' rows in order and sums their terms of dw and db in its lanes, in the order of the
// host's separate sum over n; dw[c], db[c] then hold the sums (flags bit5, bit6: added to the
// old values, a parameter's persistent gradient).
// MODE 1 with CMAJOR and flags bit7 also writes sums[n*C + c], the sum over s of what it stores
// (old + dx): the per-(n, c) sums the convolution that made x needs for its bias (and a UNet
// block's embedding) gradient, which then need no pass over this gradient of their own.
// MODE 1 with NL and flags bit8 also writes cb[c], the sum of those over the samples (the
// convolution's bias gradient itself, taken in the samples' order; bit9: added to cb's old value).
// flags: bit0 w present, bit1 b present, bit2 write dw, bit3 write db (MODE 2), bit4 add old,
// bit5 dw += (NL), bit6 db += (NL), bit7 write sums, bit8 write cb (NL), bit9 cb +=.
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
layout(constant_id = 3) const uint ACT = 0;
// CMAJOR = 1 (host: S >= workgroup size): rows are walked channel by channel,
// so w[c] and b[c] are loaded once per channel by the whole workgroup instead
// of once per element behind an integer division (on lavapipe every
// per-lane load is a scalar loop and a vector udiv eight scalar ones).
layout(constant_id = 4) const uint CMAJOR = 0;
layout(constant_id = 5) const uint TEXEL = 0;  // x, dy through texel bindings 0, 1
// VEC4 = 1 (host: TEXEL, CMAJOR, S a multiple of 4 with S/4 >= the workgroup, modes 0 and 1):
// x and dy are vec4 texel views and an invocation takes 4 consecutive elements: a quarter
// of the loop's trips, each with its index math and execution mask on llvmpipe (the
// backward of a unet_fmnist step went from 166-201 to 96-102 ms). Single elements (the
// forward's shift) then come through the buffer address.
layout(constant_id = 6) const uint VEC4 = 0;
// OLD4 = 1 (host: VEC4 and old holds whole vec4s from 16 bytes): MODE 1's old comes through
// vec4 texel binding 2 instead of four buffer-address loads a quad, each a loop over the lanes
// on llvmpipe.
layout(constant_id = 7) const uint OLD4 = 0;
// RQ > 0 (host: VEC4, a row of RC channels of S elements with S/4 = RQ * the workgroup, and
// RC * RQ <= 48, the forward's <= 4): a lane holds its RC * RQ quads of the row (x, and dy in the
// backward) in registers from the statistics to the pass that uses them, so they are fetched once
// instead of twice. The quads and every sum are taken in the order of the channel-major walk, but
// NIR may fold the unrolled arithmetic differently: the bits can differ by rounding (test_nn).
layout(constant_id = 8) const uint RQ = 0;
layout(constant_id = 9) const uint RC = 1;
layout(constant_id = 10) const uint NL = 0;
// OLD2 = 1 (host: OLD4 and flags bit4): MODE 1 writes (old + old2) + dx, old2 a second term of the
// gradient so far (vec4 texel binding 3; its first vec4 in old's address slot, unused then): the
// bits of the add autograd put off (vkd_grad_pending_pair), then those of old + dx. A constant,
// not a flag: a branch on a flag in the stores made every call of the walk ~5% slower.
layout(constant_id = 11) const uint OLD2 = 0;
layout(set = 0, binding = 2) uniform textureBuffer vkd_tex2;
layout(set = 0, binding = 3) uniform textureBuffer vkd_tex3;

// (128 bytes, the least a device must take: the groups share a word with the flags, and the
// forward's eps and the backward's dx_scale one; with OLD2, old holds old2's first vec4)
layout(push_constant) uniform PC {
    FBuf y; FBuf x; FBuf w; FBuf b; FBuf stats; FBuf sums; FBuf cb; FBuf dy; FBuf dw; FBuf db; FBuf old;
    uint N, C, S;
    uint gf;       // groups << 10 | flags
    float eps_s;   // MODE 0: eps; MODE 1: dx_scale, the factor folded into x's gradient (src/core/graph.h), else 1 (exact)
    int x_first, dy_first, old_first;
    int y_sfirst;  // groupnorm_sb: where y starts in its storage binding, in vec4s (set at compile)
    uint fold_c;   // MODE 1: the channels dx_scale covers (a concat's first part: vkd_grad_fold_lead)
} pc;
#define FLAGS (pc.gf & 1023u)
#define GROUPS (pc.gf >> 10u)

// Elements e .. e + 3 of y (groupnorm_sb, VEC4: through a storage binding, src/vk/texel.c).
void store_y4(uint e, vec4 x) { VKD_OUT4(pc.y, e, x, pc.y_sfirst); }

VKD_LOADER_IF(ld_x, vkd_tex0, pc.x, pc.x_first, TEXEL != 0u && VEC4 == 0u)
VKD_LOADER_IF(ld_dy, vkd_tex1, pc.dy, pc.dy_first, TEXEL != 0u && VEC4 == 0u)
// VEC4: elements 4*q .. 4*q+3
vec4 ld_x4(uint q) { return texelFetch(vkd_tex0, int(q) + pc.x_first); }
vec4 ld_dy4(uint q) { return texelFetch(vkd_tex1, int(q) + pc.dy_first); }
float hsum(vec4 v) { return (v.x + v.y) + (v.z + v.w); }

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

// the statistics of row r: mean at stats[r], rstd at stats[N * groups + r]
float mean_of(uint r) { return pc.stats.v[r]; }
float rstd_of(uint r) { return pc.stats.v[pc.N * GROUPS + r]; }
void store_stats(uint r, float mu, float rs) { pc.stats.v[r] = mu, pc.stats.v[pc.N * GROUPS + r] = rs; }

bool has_w() { return (FLAGS & 1u) != 0u; }
bool has_b() { return (FLAGS & 2u) != 0u; }
float wc(uint c) { return has_w() ? pc.w.v[c] : 1.0; }
float bc(uint c) { return has_b() ? pc.b.v[c] : 0.0; }

// dL/dz from dL/dy: the SiLU derivative at z = xh * w + b when fused.
float dz_of(float dy, float xh, float w, float b) {
    if (ACT == 0u) return dy;
    float z = xh * w + b, s = 1.0 / (1.0 + exp(-z));
    return dy * s * (1.0 + z * (1.0 - s));
}

float act(float z) { return ACT == 0u ? z : z / (1.0 + exp(-z)); }

vec4 dz_of(vec4 dy, vec4 xh, float w, float b) {
    if (ACT == 0u) return dy;
    vec4 z = xh * w + b, s = 1.0 / (1.0 + exp(-z));
    return dy * s * (1.0 + z * (1.0 - s));
}

vec4 act(vec4 z) { return ACT == 0u ? z : z / (1.0 + exp(-z)); }

// MODE 0, one row: statistics in one pass over x (sums of x - x[0], which keeps
// the cancellation of sum(d^2) - sum(d)^2/L small for data far from zero), then
// the normalization.
void forward_row(uint row, uint t, uint W, uint cpg) {
    uint L = cpg * pc.S, base = row * L, c0 = (row % GROUPS) * cpg;
    float inv_n = 1.0 / float(L);
    float k = ld_x(base);
    vec2 s = vec2(0.0);
    if (VEC4 != 0u) {
        vec4 s1 = vec4(0.0), s2 = vec4(0.0);
        for (uint q = t; q < L / 4u; q += W) { vec4 d = ld_x4(base / 4u + q) - k; s1 += d; s2 += d * d; }
        s = vec2(hsum(s1), hsum(s2));
    } else {
        for (uint e = t; e < L; e += W) { float d = ld_x(base + e) - k; s += vec2(d, d * d); }
    }
    s = wg_sum2(s) * inv_n;
    float mu = k + s.x;
    float rs = inversesqrt(max(s.y - s.x * s.x, 0.0) + pc.eps_s);
    if (CMAJOR != 0u) {
        for (uint cc = 0; cc < cpg; cc++) {
            uint c = c0 + cc, cb = base + cc * pc.S;
            float a = rs * wc(c), o = bc(c) - mu * a;
            if (VEC4 != 0u) {
                // vkd_keep: the SiLU stays vector code ahead of the stores (in the backward's
                // stores it measured no gain)
                for (uint q = t; q < pc.S / 4u; q += W) store_y4(cb + 4u * q, vkd_keep(act(ld_x4(cb / 4u + q) * a + o)));
                continue;
            }
            for (uint e = t; e < pc.S; e += W) pc.y.v[cb + e] = act(ld_x(cb + e) * a + o);
        }
    } else {
        for (uint e = t; e < L; e += W) {
            uint c = c0 + e / pc.S;
            pc.y.v[base + e] = act((ld_x(base + e) - mu) * rs * wc(c) + bc(c));
        }
    }
    if (t == 0u) store_stats(row, mu, rs);
}

// MODE 0 with RQ, one row: forward_row's sums and normalization over quads held in registers.
void forward_row_regs(uint row, uint t, uint W) {
    uint L = RC * pc.S, base = row * L, c0 = (row % GROUPS) * RC;
    float inv_n = 1.0 / float(L);
    float k = ld_x(base);
    vec4 xs[RQ > 0u ? RC * RQ : 1u];  // (a constant array size must be at least 1)
    vec4 s1 = vec4(0.0), s2 = vec4(0.0);
    [[unroll]] for (uint i = 0; i < RC * RQ; i++) {
        // quad i of this lane: channel i / RQ, the lane's (i % RQ)-th quad of it, which is the
        // row's quad (i / RQ) * RQ * W + t + (i % RQ) * W: the walk of forward_row's first loop
        xs[i] = ld_x4(base / 4u + (i / RQ) * RQ * W + t + (i % RQ) * W);
        vec4 d = xs[i] - k;
        s1 += d, s2 += d * d;
    }
    vec2 s = wg_sum2(vec2(hsum(s1), hsum(s2))) * inv_n;
    float mu = k + s.x;
    float rs = inversesqrt(max(s.y - s.x * s.x, 0.0) + pc.eps_s);
    [[unroll]] for (uint cc = 0; cc < RC; cc++) {
        uint c = c0 + cc, cb = base + cc * pc.S;
        float a = rs * wc(c), o = bc(c) - mu * a;
        [[unroll]] for (uint j = 0; j < RQ; j++) store_y4(cb + 4u * (t + j * W), vkd_keep(act(xs[cc * RQ + j] * a + o)));
    }
    if (t == 0u) store_stats(row, mu, rs);
}

// old + dx of channel c, then times dx_scale where c < fold_c: the roundings of the add and of
// the scale pass it replaces (a product by 1 is exact)
float dx_scale_of(uint c) { return c < pc.fold_c ? pc.eps_s : 1.0; }

// (what they store, for the sums)
float store_dx(uint i, float dx, uint c) {
    if ((FLAGS & 16u) != 0u) {
        precise float s = pc.old.v[i] + dx;
        precise float r = s * dx_scale_of(c);
        pc.y.v[i] = r;
        return r;
    }
    precise float r = dx * dx_scale_of(c);
    pc.y.v[i] = r;
    return r;
}

vec4 store_dx(uint i, vec4 dx, uint c) {
    if ((FLAGS & 16u) != 0u) {
        const vec4 o = OLD4 != 0u ? texelFetch(vkd_tex2, int(i / 4u) + pc.old_first)
                                  : vec4(pc.old.v[i], pc.old.v[i + 1u], pc.old.v[i + 2u], pc.old.v[i + 3u]);
        if (OLD2 != 0u) {
            precise vec4 s2 = o + texelFetch(vkd_tex3, int(i / 4u) + int(uvec2(pc.old).x));
            precise vec4 s = s2 + dx;
            precise vec4 r = s * dx_scale_of(c);
            store_y4(i, r);
            return r;
        }
        precise vec4 s = o + dx;
        precise vec4 r = s * dx_scale_of(c);
        store_y4(i, r);
        return r;
    }
    precise vec4 r = dx * dx_scale_of(c);
    store_y4(i, r);
    return r;
}

// NL: the sums over the samples so far of channel cc of the group (dw's, db's terms), and of what
// was stored (cb's terms)
vec2 nsum[NL > 0u ? NL : 1u];  // (a constant array size must be at least 1)
float tsum[NL > 0u ? NL : 1u];

// flags bit7, bit8: channel c's sum of what sample n's row stored (i = n*C + c), the lanes' partial
// sums v summed over the workgroup; written to sums (bit7), added to the channel's terms of cb
// (bit8: NL; cc, its channel in the group)
void store_sum(uint i, uint cc, uint t, float v) {
    if ((FLAGS & 384u) == 0u) return;
    v = wg_sum(v);
    if ((FLAGS & 128u) != 0u && t == 0u) pc.sums.v[i] = v;
    if (NL != 0u) tsum[cc] += v;
}

// MODE 1 with CMAJOR and flags bit2/bit3: one channel's per-sample terms of dw and db (i = n*C + c),
// summed over the workgroup; NL: added to the channel's sums instead (cc: the channel in its group).
void store_param_terms(uint i, uint cc, uint t, vec2 pw) {
    pw = wg_sum2(pw);
    if (NL != 0u) {
        nsum[cc] += pw;
        return;
    }
    if (t == 0u) {
        if ((FLAGS & 4u) != 0u) pc.dw.v[i] = pw.x;
        if ((FLAGS & 8u) != 0u) pc.db.v[i] = pw.y;
    }
}

// MODE 1, one row.
void input_grad_row(uint row, uint t, uint W, uint cpg) {
    uint L = cpg * pc.S, base = row * L, c0 = (row % GROUPS) * cpg;
    float inv_n = 1.0 / float(L);
    float mu = mean_of(row), rs = rstd_of(row);
    bool part = (FLAGS & 12u) != 0u;
    vec2 acc = vec2(0.0);
    if (CMAJOR != 0u) {
        uint nC = (row / GROUPS) * pc.C;
        for (uint cc = 0; cc < cpg; cc++) {
            uint c = c0 + cc, cb = base + cc * pc.S;
            float w = wc(c), b = bc(c);
            vec2 pw = vec2(0.0);
            if (VEC4 != 0u) {
                vec4 ag = vec4(0.0), agx = vec4(0.0), pdx = vec4(0.0), pd = vec4(0.0);
                for (uint q = t; q < pc.S / 4u; q += W) {
                    vec4 xh = (ld_x4(cb / 4u + q) - mu) * rs, dz = dz_of(ld_dy4(cb / 4u + q), xh, w, b), g = dz * w;
                    ag += g, agx += g * xh, pdx += dz * xh, pd += dz;
                }
                acc += vec2(hsum(ag), hsum(agx));
                pw = vec2(hsum(pdx), hsum(pd));
            }
            for (uint e = t; VEC4 == 0u && e < pc.S; e += W) {
                float xh = (ld_x(cb + e) - mu) * rs, dz = dz_of(ld_dy(cb + e), xh, w, b), g = dz * w;
                acc += vec2(g, g * xh);
                pw += vec2(dz * xh, dz);
            }
            if (part) store_param_terms(nC + c, cc, t, pw);
        }
    } else {
        for (uint e = t; e < L; e += W) {
            uint c = c0 + e / pc.S;
            float w = wc(c), xh = (ld_x(base + e) - mu) * rs, g = dz_of(ld_dy(base + e), xh, w, bc(c)) * w;
            acc += vec2(g, g * xh);
        }
    }
    acc = wg_sum2(acc) * inv_n;
    if (CMAJOR != 0u) {
        uint nC = (row / GROUPS) * pc.C;
        for (uint cc = 0; cc < cpg; cc++) {
            uint c = c0 + cc, cb = base + cc * pc.S;
            float w = wc(c), b = bc(c);
            vec4 st = vec4(0.0);
            for (uint q = t; VEC4 != 0u && q < pc.S / 4u; q += W) {
                vec4 xh = (ld_x4(cb / 4u + q) - mu) * rs, g = dz_of(ld_dy4(cb / 4u + q), xh, w, b) * w;
                precise vec4 dx = rs * (g - acc.x - xh * acc.y);
                st += store_dx(cb + 4u * q, dx, c);
            }
            for (uint e = t; VEC4 == 0u && e < pc.S; e += W) {
                float xh = (ld_x(cb + e) - mu) * rs, g = dz_of(ld_dy(cb + e), xh, w, b) * w;
                precise float dx = rs * (g - acc.x - xh * acc.y);
                st.x += store_dx(cb + e, dx, c);
            }
            store_sum(nC + c, cc, t, hsum(st));
        }
    } else {
        for (uint e = t; e < L; e += W) {
            uint c = c0 + e / pc.S;
            float w = wc(c), xh = (ld_x(base + e) - mu) * rs, g = dz_of(ld_dy(base + e), xh, w, bc(c)) * w;
            precise float dx = rs * (g - acc.x - xh * acc.y);
            store_dx(base + e, dx, c);
        }
    }
}

// MODE 1 with RQ, one row: input_grad_row's channel-major walk over x's and dy's quads fetched
// once and held in registers; dy's quad is replaced by its g once g is made, so the dx pass
// recomputes only xh (input_grad_row makes the SiLU derivative twice, an exp and a divide an
// element more).
void input_grad_row_regs(uint row, uint t, uint W) {
    uint L = RC * pc.S, base = row * L, c0 = (row % GROUPS) * RC, nC = (row / GROUPS) * pc.C;
    float inv_n = 1.0 / float(L);
    float mu = mean_of(row), rs = rstd_of(row);
    bool part = (FLAGS & 12u) != 0u;
    vec4 xs[RQ > 0u ? RC * RQ : 1u], ds[RQ > 0u ? RC * RQ : 1u];  // (a constant array size must be at least 1)
    vec2 acc = vec2(0.0);
    [[unroll]] for (uint cc = 0; cc < RC; cc++) {
        uint c = c0 + cc, cb = base + cc * pc.S;
        float w = wc(c), b = bc(c);
        vec4 ag = vec4(0.0), agx = vec4(0.0), pdx = vec4(0.0), pd = vec4(0.0);
        [[unroll]] for (uint j = 0; j < RQ; j++) {
            uint q = cb / 4u + t + j * W;
            xs[cc * RQ + j] = ld_x4(q), ds[cc * RQ + j] = ld_dy4(q);
            vec4 xh = (xs[cc * RQ + j] - mu) * rs, dz = dz_of(ds[cc * RQ + j], xh, w, b), g = dz * w;
            ag += g, agx += g * xh, pdx += dz * xh, pd += dz;
            ds[cc * RQ + j] = g;
        }
        acc += vec2(hsum(ag), hsum(agx));
        if (part) store_param_terms(nC + c, cc, t, vec2(hsum(pdx), hsum(pd)));
    }
    acc = wg_sum2(acc) * inv_n;
    [[unroll]] for (uint cc = 0; cc < RC; cc++) {
        vec4 st = vec4(0.0);
        [[unroll]] for (uint j = 0; j < RQ; j++) {
            vec4 xh = (xs[cc * RQ + j] - mu) * rs, g = ds[cc * RQ + j];
            precise vec4 dx = rs * (g - acc.x - xh * acc.y);
            st += store_dx(base + cc * pc.S + 4u * (t + j * W), dx, c0 + cc);
        }
        store_sum(nC + c0 + cc, cc, t, hsum(st));
    }
}

// MODE 2, one channel.
void param_grad_channel(uint c, uint t, uint W, uint cpg) {
    uint grp = c / cpg;
    float w = wc(c), b = bc(c);
    vec2 acc = vec2(0.0);
    for (uint n = 0; n < pc.N; n++) {
        uint base = (n * pc.C + c) * pc.S;
        float mu = mean_of(n * GROUPS + grp), rs = rstd_of(n * GROUPS + grp);
        for (uint s = t; s < pc.S; s += W) {
            float xh = (ld_x(base + s) - mu) * rs, g = dz_of(ld_dy(base + s), xh, w, b);
            acc += vec2(g * xh, g);
        }
    }
    acc = wg_sum2(acc);
    if (t == 0u) {
        if ((FLAGS & 4u) != 0u) pc.dw.v[c] = acc.x;
        if ((FLAGS & 8u) != 0u) pc.db.v[c] = acc.y;
    }
}

// MODE 1 with NL: group grp's rows, sample by sample, then its channels' sums (as the host's
// column sum: y = old + sum, precise)
void input_grad_group(uint grp, uint t, uint W) {
    [[unroll]] for (uint cc = 0; cc < NL; cc++) nsum[cc] = vec2(0.0), tsum[cc] = 0.0;
    for (uint n = 0; n < pc.N; n++) {
        if (RQ != 0u) input_grad_row_regs(n * GROUPS + grp, t, W);
        else input_grad_row(n * GROUPS + grp, t, W, NL);
    }
    if (t != 0u) return;
    [[unroll]] for (uint cc = 0; cc < NL; cc++) {
        const uint c = grp * NL + cc;
        if ((FLAGS & 4u) != 0u) {
            precise float s = (FLAGS & 32u) != 0u ? pc.dw.v[c] + nsum[cc].x : nsum[cc].x;
            pc.dw.v[c] = s;
        }
        if ((FLAGS & 8u) != 0u) {
            precise float s = (FLAGS & 64u) != 0u ? pc.db.v[c] + nsum[cc].y : nsum[cc].y;
            pc.db.v[c] = s;
        }
        if ((FLAGS & 256u) != 0u) {
            precise float s = (FLAGS & 512u) != 0u ? pc.cb.v[c] + tsum[cc] : tsum[cc];
            pc.cb.v[c] = s;
        }
    }
}

void main() {
    uint t = gl_LocalInvocationID.x, W = gl_WorkGroupSize.x, cpg = pc.C / GROUPS;
    uint i = flat_group();
    if (MODE == 2u) {
        if (i < pc.C) param_grad_channel(i, t, W, cpg);
        return;
    }
    if (MODE == 1u && NL != 0u) {
        if (i < GROUPS) input_grad_group(i, t, W);
        return;
    }
    if (i >= pc.N * GROUPS) return;
    if (RQ != 0u) {
        if (MODE == 0u) forward_row_regs(i, t, W);
        else input_grad_row_regs(i, t, W);
    } else if (MODE == 0u) forward_row(i, t, W, cpg);
    else input_grad_row(i, t, W, cpg);
}
