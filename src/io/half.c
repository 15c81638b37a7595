// fp32 <-> fp16 / bf16 conversion on the host. Bit manipulation rather than
// _Float16 so the rounding (to nearest, ties to even) does not depend on the
// compiler or the CPU, and NaN payloads stay recognisable.
#include <string.h>

#include "vkdistill/io.h"

static uint32_t f32_bits(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    return x;
}

static float bits_f32(uint32_t x) {
    float f;
    memcpy(&f, &x, 4);
    return f;
}

uint16_t vkd_f32_to_f16(float f) {
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7fffffff;
    if (ax > 0x7f800000) return sign | 0x7e00 | (uint16_t)((ax >> 13) & 0x3ff);  // NaN, forced quiet
    if (ax >= 0x477ff000) return sign | 0x7c00;  // >= 65520 rounds (ties to even) past 65504: inf
    if (ax < 0x38800000) {                       // below 2^-14: an fp16 subnormal or zero
        if (ax < 0x33000000) return sign;        // below 2^-25 (half the smallest subnormal)
        // value = m * 2^(e-150); in units of 2^-24 that is m >> (126 - e).
        uint32_t e = ax >> 23, m = (ax & 0x7fffff) | 0x800000;
        uint32_t s = 126 - e, r = m >> s, rem = m & ((1u << s) - 1), half = 1u << (s - 1);
        if (rem > half || (rem == half && (r & 1))) r++;  // may carry into the smallest normal: right
        return sign | (uint16_t)r;
    }
    // Normal: rebias the exponent (127 -> 15) and drop 13 mantissa bits; a
    // carry out of the mantissa correctly bumps the exponent.
    uint32_t r = ax - 0x38000000, rem = r & 0x1fff;
    r >>= 13;
    if (rem > 0x1000 || (rem == 0x1000 && (r & 1))) r++;
    return sign | (uint16_t)r;
}

float vkd_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    if (e == 31) return bits_f32(sign | 0x7f800000 | (m << 13));
    if (e == 0) {
        if (m == 0) return bits_f32(sign);
        e = 113;  // subnormal m * 2^-24: normalise so the leading 1 is implicit
        while (!(m & 0x400)) m <<= 1, e--;
        return bits_f32(sign | (e << 23) | ((m & 0x3ff) << 13));
    }
    return bits_f32(sign | ((e + 112) << 23) | (m << 13));
}

uint16_t vkd_f32_to_bf16(float f) {
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffff) > 0x7f800000) return (uint16_t)((x >> 16) | 0x40);  // NaN stays NaN, quiet
    // Ties to even; overflow past the largest bf16 lands on inf, as it should.
    return (uint16_t)((x + 0x7fff + ((x >> 16) & 1)) >> 16);
}

float vkd_bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }
