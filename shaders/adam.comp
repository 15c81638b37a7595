#version 450
#extension GL_EXT_samplerless_texture_functions : require
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
layout(constant_id = 1) const uint TEXEL = 0;  // p, g, m, v read through texel bindings 0..3
layout(constant_id = 2) const uint PER = 1;    // elements per invocation
// VEC4 = 1 (with TEXEL): the element index counts vec4s and p, g, m, v are
// fetched 4 at a time through R32G32B32A32 views (one gather on llvmpipe
// instead of four); the same arithmetic per component. One tensor: n is a
// multiple of 4. MULTI: the offsets are, and a chunk's last n % 4 elements are
// updated one by one through the buffers.
layout(constant_id = 3) const uint VEC4 = 0;
// MULTI = 1: p, g, m, v span whole memory blocks and the workgroup updates one
// chunk of one tensor (src/ops/multi.c): table[8 * workgroup] holds the
// chunk's length, then (after the tuple index) the offsets of p, g, m, v.
layout(constant_id = 4) const uint MULTI = 0;
// FLAGS: pc.flags as a constant (the host passes both), TAIL: 0 when no chunk of a MULTI
// VEC4 pass has a tail. llvmpipe runs the body of an `if` it cannot prove dead under a
// mask: the tail's scalar update, and the non-finite step's zeroing, ran their lane loops
// in every invocation.
layout(constant_id = 5) const uint FLAGS = 0;
layout(constant_id = 6) const uint TAIL = 1;
#ifdef VKD_SBUF_OUT
// adam_sb (VEC4 = 1, a CPU device): p, g, m, v written in vec4s through storage bindings 0..3
// (src/vk/texel.c), still read through their texel views (each quad is read, then written, by
// one invocation). Read through the storage bindings instead: 7.8-7.9 ns a parameter against
// 7.0 (bench_optim, 154,498 parameters, one thread).
VKD_SBUF(1)
VKD_SBUF(2)
VKD_SBUF(3)
#endif

layout(push_constant) uniform PC {
    FBuf p; FBuf g; FBuf m; FBuf v; FBuf hyper; FBuf gnorm2;
    uint n;
    float b1, b2, eps, wd;
    uint flags;
    float clip;
    int p_first, g_first, m_first, v_first;
    UBuf table;  // MULTI
    int p_sfirst, g_sfirst, m_sfirst, v_sfirst;  // adam_sb: the storage bindings, in vec4s (set at compile)
} pc;

uint op = 0u, og = 0u, om = 0u, ov = 0u;  // MULTI: the chunk's offsets into the spans

layout(set = 0, binding = 2) uniform textureBuffer vkd_tex2;
layout(set = 0, binding = 3) uniform textureBuffer vkd_tex3;
// Scalar loads: through the texel views unless those are vec4 views (then the
// one-by-one tail of a chunk reads the buffers).
VKD_LOADER_IF(ld_p, vkd_tex0, pc.p, pc.p_first, TEXEL != 0u && VEC4 == 0u)
VKD_LOADER_IF(ld_g, vkd_tex1, pc.g, pc.g_first, TEXEL != 0u && VEC4 == 0u)
VKD_LOADER_IF(ld_m, vkd_tex2, pc.m, pc.m_first, TEXEL != 0u && VEC4 == 0u)
VKD_LOADER_IF(ld_v, vkd_tex3, pc.v, pc.v_first, TEXEL != 0u && VEC4 == 0u)

// One invocation updates PER elements, WG apart (coalesced on a GPU): the
// step's scalars (lr, t, the norm, the bias corrections) are loaded and
// computed once for all of them, which matters on a CPU device where every
// load, even of one shared value, is a loop over the lanes.
// skip: the step is skipped (a non-finite norm): p, m and v are written back as they were.
void adam_one(uint i, float lr, float gscale, float bc1, float bc2, bool skip) {
    const float p0 = ld_p(op + i), m0 = ld_m(om + i), v0 = ld_v(ov + i);
    float p = p0, g = ld_g(og + i) * gscale;
    if ((FLAGS & 1u) != 0u) p *= 1.0 - lr * pc.wd;
    else g += pc.wd * p;
    float m = pc.b1 * m0 + (1.0 - pc.b1) * g;
    float v = pc.b2 * v0 + (1.0 - pc.b2) * g * g;
    p -= lr * (m / bc1) / (sqrt(v / bc2) + pc.eps);
    pc.m.v[om + i] = skip ? m0 : m;
    pc.v.v[ov + i] = skip ? v0 : v;
    pc.p.v[op + i] = skip ? p0 : p;
    if ((FLAGS & 2u) != 0u) pc.g.v[og + i] = 0.0;
}

// adam_one on the 4 elements of vec4 q (of the chunk, MULTI).
void adam_four(uint q, float lr, float gscale, float bc1, float bc2, bool skip) {
    const int ip = int(op / 4u + q), ig = int(og / 4u + q), im = int(om / 4u + q), iv = int(ov / 4u + q);
    const vec4 p0 = texelFetch(vkd_tex0, ip + pc.p_first), g0 = texelFetch(vkd_tex1, ig + pc.g_first);
    const vec4 m0 = texelFetch(vkd_tex2, im + pc.m_first), v0 = texelFetch(vkd_tex3, iv + pc.v_first);
    vec4 p = p0, g = g0 * gscale;
    if ((FLAGS & 1u) != 0u) p *= 1.0 - lr * pc.wd;
    else g += pc.wd * p;
    vec4 m = pc.b1 * m0 + (1.0 - pc.b1) * g;
    vec4 v = pc.b2 * v0 + (1.0 - pc.b2) * g * g;
    p -= lr * (m / bc1) / (sqrt(v / bc2) + pc.eps);
    p = skip ? p0 : p, m = skip ? m0 : m, v = skip ? v0 : v;
    p = vkd_keep(p), m = vkd_keep(m), v = vkd_keep(v);  // (adam_four is a texel path)
#ifdef VKD_SBUF_OUT
    vkd_sbuf2.v[im + pc.m_sfirst] = m;
    vkd_sbuf3.v[iv + pc.v_sfirst] = v;
    vkd_sbuf0.v[ip + pc.p_sfirst] = p;
    if ((FLAGS & 2u) != 0u) vkd_sbuf1.v[ig + pc.g_sfirst] = vec4(0.0);
#else
    vkd_store4(pc.m, om + 4u * q, m);
    vkd_store4(pc.v, ov + 4u * q, v);
    vkd_store4(pc.p, op + 4u * q, p);
    if ((FLAGS & 2u) != 0u) vkd_store4(pc.g, og + 4u * q, vec4(0.0));
#endif
}

void main() {
    uint n = pc.n;  // elements
    uint i0 = flat_group() * gl_WorkGroupSize.x * PER + gl_LocalInvocationID.x;
    if (MULTI != 0u) {  // the chunk is this workgroup's PER * WG units at most
        const uint c = flat_group() * 8u;
        n = pc.table.v[c], op = pc.table.v[c + 2u], og = pc.table.v[c + 3u];
        om = pc.table.v[c + 4u], ov = pc.table.v[c + 5u];
        i0 = gl_LocalInvocationID.x;
    }
    const uint N = VEC4 != 0u ? n / 4u : n;           // units: vec4s or floats
    const uint tail = VEC4 != 0u ? n - 4u * N : 0u;   // MULTI, VEC4: the last n % 4 floats
    if (i0 >= N && i0 >= tail) return;
    float lr = pc.hyper.v[0], t = pc.hyper.v[1], gscale = 1.0;
    // A non-finite norm skips the step everywhere (the NaN guard; the gradient is still
    // zeroed): selected per element rather than branched, since llvmpipe would run the
    // branch's stores under a mask in every step.
    bool skip = false;
    if ((FLAGS & 4u) != 0u) {
        float n2 = pc.gnorm2.v[0];
        skip = isnan(n2) || isinf(n2);
        if (pc.clip > 0.0 && !skip) gscale = min(1.0, pc.clip / (sqrt(n2) + 1e-6));
    }
    float bc1 = 1.0 - pow(pc.b1, t), bc2 = 1.0 - pow(pc.b2, t);
    [[unroll]] for (uint j = 0; j < PER; j++) {
        uint i = i0 + j * gl_WorkGroupSize.x;
        if (i < N) {
            if (VEC4 != 0u) adam_four(i, lr, gscale, bc1, bc2, skip);
            else adam_one(i, lr, gscale, bc1, bc2, skip);
        }
    }
    if (TAIL != 0u && i0 < tail) adam_one(4u * N + i0, lr, gscale, bc1, bc2, skip);
}
