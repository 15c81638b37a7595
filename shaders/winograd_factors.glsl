// Winograd F(4, 3)'s weight factors (points 0, +-1, +-1/2 and infinity), shared by
// shaders/winograd.comp (the transform pass) and shaders/conv2d.comp (whose F(4, 3) x F(4, 3)
// walk and F(4, 3) along the rows make their own, UW): one copy of the formulas, so both give the
// same bits.

// The six factors of a row of three taps g0, g1, g2.
void wino_factors6(float g0, float g1, float g2, out float f[6]) {
    const float s02 = g0 + g2, q = 4.0 * g0 + g2, k = 2.0 / 3.0;
    f[0] = 4.0 * g0, f[1] = k * (s02 + g1), f[2] = k * (s02 - g1);
    f[3] = -k * (q + 2.0 * g1), f[4] = -k * (q - 2.0 * g1), f[5] = g2;
}

// A 3x3 kernel's 36 (taps g, rows of 3): the six of each row, then the six down each column of
// those; term s * 6 + x is factor s down, x along.
void wino_factors36(const float g[9], out float f[36]) {
    float r[3][6];
    [[unroll]] for (uint ky = 0; ky < 3u; ky++) wino_factors6(g[3u * ky], g[3u * ky + 1u], g[3u * ky + 2u], r[ky]);
    [[unroll]] for (uint x = 0; x < 6u; x++) {
        float c[6];
        wino_factors6(r[0][x], r[1][x], r[2][x], c);
        [[unroll]] for (uint s = 0; s < 6u; s++) f[6u * s + x] = c[s];
    }
}
