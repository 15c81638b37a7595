// Philox4x32-10 on the host, bit-identical to shaders/philox.glsl: the C side
// of the counter-based RNG (tests, and host draws that must match the device).
#include <math.h>

#include "vkdistill/vkdistill.h"

void vkd_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3], k0 = key[0], k1 = key[1];
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c0, p1 = (uint64_t)0xCD9E8D57u * c2;
        uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0, hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
}

static void draw4(uint64_t seed, uint32_t stream, uint32_t step, uint64_t i, float u[4]) {
    uint32_t ctr[4] = {(uint32_t)(i / 4), step, stream, 0}, key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)}, r[4];
    vkd_philox4x32_10(ctr, key, r);
    for (int q = 0; q < 4; q++) u[q] = (float)(r[q] >> 8) * 5.9604644775390625e-8f + 2.98023223876953125e-8f;
}

float vkd_philox_uniform(uint64_t seed, uint32_t stream, uint32_t step, uint64_t i) {
    float u[4];
    draw4(seed, stream, step, i, u);
    return u[i % 4];
}

float vkd_philox_normal(uint64_t seed, uint32_t stream, uint32_t step, uint64_t i) {
    float u[4];
    draw4(seed, stream, step, i, u);
    int q = (int)(i % 4), p = q & 2;  // pairs (0,1) and (2,3)
    float r = sqrtf(-2.0f * logf(u[p])), th = 6.283185307179586f * u[p + 1];
    return (q & 1) ? r * sinf(th) : r * cosf(th);
}
