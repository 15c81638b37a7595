#version 450
#extension GL_GOOGLE_include_directive : require
// Winograd F(2, 3)'s weight transform for shaders/conv2d.comp's WINO walk: every row of three taps
// (g0, g1, g2) of w becomes the four factors (g0, (g0 + g1 + g2) / 2, (g0 - g1 + g2) / 2, g2),
// w (cout, cin/groups, kh, 3) -> u (cout, cin/groups, kh, 4). The data gradient, whose rows meet
// the window reversed, reads the same u with the first and last factor swapped.
// Written once before each convolution that reads it: done in the walk's inner loop instead, the
// sums and halvings were redone by every lane for every tile and made the walk slower.
#include "common.glsl"

layout(local_size_x_id = 0) in;
// QUADS (host: w a vec4 texel view at binding 0, the rows a multiple of 4, u on 16 bytes): an
// invocation transforms 4 rows, w's 12 elements fetched as 3 quads and u's 16 stored as 4
// (llvmpipe's per-lane loads and stores, not the arithmetic, are this pass's time).
layout(constant_id = 1) const uint QUADS = 0;

layout(push_constant) uniform PC {
    FBuf w; FBuf u;
    uint rows;
    int w_first;
} pc;

vec4 factors(float g0, float g1, float g2) {
    const float s02 = g0 + g2;
    return vec4(g0, (s02 + g1) * 0.5, (s02 - g1) * 0.5, g2);
}

void main() {
    const uint r = flat_group() * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
    if (QUADS != 0u) {
        if (4u * r >= pc.rows) return;
        const int q = 3 * int(r) + pc.w_first;
        const vec4 a = texelFetch(vkd_tex0, q), b = texelFetch(vkd_tex0, q + 1), c = texelFetch(vkd_tex0, q + 2);
        vkd_store4(pc.u, 16u * r, vkd_keep(factors(a.x, a.y, a.z)));
        vkd_store4(pc.u, 16u * r + 4u, vkd_keep(factors(a.w, b.x, b.y)));
        vkd_store4(pc.u, 16u * r + 8u, vkd_keep(factors(b.z, b.w, c.x)));
        vkd_store4(pc.u, 16u * r + 12u, vkd_keep(factors(c.y, c.z, c.w)));
        return;
    }
    if (r >= pc.rows) return;
    const vec4 f = factors(pc.w.v[3u * r], pc.w.v[3u * r + 1u], pc.w.v[3u * r + 2u]);
    pc.u.v[4u * r] = f.x, pc.u.v[4u * r + 1u] = f.y, pc.u.v[4u * r + 2u] = f.z, pc.u.v[4u * r + 3u] = f.w;
}
