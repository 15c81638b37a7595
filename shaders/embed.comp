#version 450
#extension GL_EXT_samplerless_texture_functions : require
#extension GL_GOOGLE_include_directive : require
// Sinusoidal embeddings of t (N) -> y (N, 2*half) = [cos(a) | sin(a)], one
// invocation per (n, k), k < half:
// MODE 0, positional (EDM PositionalEmbedding, DiT TimestepEmbedder):
//   a = t[n] * 2^-(k*c), c = log2(max_positions) / (half - endpoint) given as c_hi + c_lo
// MODE 1, Fourier (EDM FourierEmbedding): a = t[n] * (2pi * f[k])   (2pi*f in fp32, as EDM)
//
// Arguments reach ~1000 rad (DiT's t up to 1000), where a driver's sin/cos may
// only promise 2^-11 absolute error (Vulkan's minimum) and exp2 3+2|x| ulp. So
// the frequency and sin/cos are computed here with Cody-Waite range reduction
// and Cephes' minimax polynomials, under `precise`: ~1 ulp everywhere and the
// same bits on every device. What remains is the fp32 rounding of a itself
// (|a| * 6e-8), which PyTorch's fp32 embedding has too.
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint MODE = 0;

layout(push_constant) uniform PC {
    FBuf y; FBuf t; FBuf f;
    uint N, half_dim;
    float c_hi, c_lo;  // c_hi has at most 12 significant bits: k * c_hi is exact for k < 4096
} pc;

// 2^x for |x| <= 0.5 (Cephes exp2f, relative error <= 1.7e-7).
float exp2_poly(float x) {
    precise float p = ((((((1.535336188319500e-4 * x + 1.339887440266574e-3) * x + 9.618437357674640e-3) * x +
                          5.550332471162809e-2) * x + 2.402264791363012e-1) * x + 6.931472028550421e-1) * x);
    return 1.0 + p;
}

// (sin a, cos a). pi/2 = P1 + P2 + P3 with P1 (8 bits) and P2 (11 bits) short
// enough that j*P1 and j*P2 are exact for |a| < 8192 (Cephes' split, doubled).
vec2 sincos_acc(float a) {
    precise float j = roundEven(a * 0.636619772367581343);
    precise float r = ((a - j * 1.5703125) - j * 4.837512969970703125e-4) - j * 7.54978995489188216e-8;
    precise float z = r * r;
    precise float s = ((-1.9515295891e-4 * z + 8.3321608736e-3) * z - 1.6666654611e-1) * z * r + r;
    precise float c = ((2.443315711809948e-5 * z - 1.388731625493765e-3) * z + 4.166664568298827e-2) * z * z -
                      0.5 * z + 1.0;
    int q = int(j) & 3;  // quadrant; two's complement makes -1 -> 3
    if (q == 0) return vec2(s, c);
    if (q == 1) return vec2(c, -s);
    if (q == 2) return vec2(-s, -c);
    return vec2(-c, s);
}

void main() {
    uint i = flat_group() * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
    if (i >= pc.N * pc.half_dim) return;
    uint n = i / pc.half_dim, k = i % pc.half_dim;
    precise float freq;
    if (MODE == 0u) {
        precise float e = float(k) * pc.c_hi;
        precise float m = roundEven(e);
        precise float fr = (e - m) + float(k) * pc.c_lo;
        freq = ldexp(exp2_poly(-fr), -int(m));
    } else {
        freq = 6.283185307179586 * pc.f.v[k];
    }
    precise float a = pc.t.v[n] * freq;
    vec2 sc = sincos_acc(a);
    uint o = n * 2u * pc.half_dim + k;
    pc.y.v[o] = sc.y;
    pc.y.v[o + pc.half_dim] = sc.x;
}
