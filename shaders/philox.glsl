// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3"),
// identical to src/core/philox.c. Element i of a draw keyed by (seed, stream)
// at step s is word i%4 of philox(counter = (i/4, s, stream, 0), key = seed).
const uint PHILOX_M0 = 0xD2511F53u, PHILOX_M1 = 0xCD9E8D57u;
const uint PHILOX_W0 = 0x9E3779B9u, PHILOX_W1 = 0xBB67AE85u;

uvec4 philox4x32_10(uvec4 c, uvec2 k) {
    [[unroll]] for (int r = 0; r < 10; r++) {
        uint hi0, lo0, hi1, lo1;
        umulExtended(PHILOX_M0, c.x, hi0, lo0);
        umulExtended(PHILOX_M1, c.z, hi1, lo1);
        c = uvec4(hi1 ^ c.y ^ k.x, lo1, hi0 ^ c.w ^ k.y, lo0);
        k += uvec2(PHILOX_W0, PHILOX_W1);
    }
    return c;
}

// (0, 1), never 0 or 1: 24 random bits centred in their cell.
float philox_uniform(uint r) { return float(r >> 8) * 5.9604644775390625e-8 + 2.98023223876953125e-8; }
