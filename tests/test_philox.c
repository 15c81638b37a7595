// Philox4x32-10: the C implementation against the published known-answer
// vectors (Random123 kat_vectors), and the device stream against the host one:
// uniforms bit for bit, normals to float rounding of log/sin/cos.
#include "harness.h"

static void kat(void) {
    // Random123 known-answer tests for philox4x32_10 (counter, key -> output).
    struct { uint32_t c[4], k[2], o[4]; } v[] = {
        {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
        {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff},
         {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
        {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0},
         {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
    };
    for (int i = 0; i < 3; i++) {
        uint32_t o[4];
        vkd_philox4x32_10(v[i].c, v[i].k, o);
        CHECK(memcmp(o, v[i].o, sizeof o) == 0, "known-answer vector %d: got %08x %08x %08x %08x", i, o[0], o[1], o[2],
              o[3]);
    }
}

static void device_matches_host(vkd_ctx *ctx) {
    int64_t one = 1, n = 1003;  // not a multiple of 4: the tail must match too
    vkd_tensor *step = vkd_tensor_new(ctx, "step", 1, &one, VKD_HOST);
    vkd_graph *g = vkd_graph_new(ctx, "rng");
    uint64_t seed = 0x123456789abcdefull;
    vkd_tensor *u = vkd_rand_uniform(g, 1, &n, seed, 3, step);
    vkd_tensor *z = vkd_rand_normal(g, 1, &n, seed, 4, step);
    vkd_graph_keep(g, u);
    vkd_graph_keep(g, z);
    CHECK(vkd_graph_compile(g) == 0, "compile: %s", vkd_graph_error(g));
    float *hu = malloc(n * sizeof *hu), *hz = malloc(n * sizeof *hz);
    double sum = 0, sq = 0;
    for (uint32_t s = 0; s < 3; s++) {
        ((uint32_t *)vkd_tensor_map(step))[0] = s * 1000 + 1;
        CHECK(vkd_graph_run(g) == 0, "run: %s", vkd_graph_error(g));
        vkd_tensor_download(u, hu);
        vkd_tensor_download(z, hz);
        int ubad = 0;
        double zerr = 0;
        for (int64_t i = 0; i < n; i++) {
            float ref = vkd_philox_uniform(seed, 3, s * 1000 + 1, i);
            ubad += memcmp(&ref, &hu[i], 4) != 0;
            double e = fabs(hz[i] - vkd_philox_normal(seed, 4, s * 1000 + 1, i));
            if (e > zerr) zerr = e;
            sum += hz[i], sq += (double)hz[i] * hz[i];
        }
        CHECK(ubad == 0, "step %u: %d uniforms differ from the host", s, ubad);
        CHECK(zerr < 2e-5, "step %u: normals differ from the host by %g", s, zerr);
    }
    double mean = sum / (3 * n), var = sq / (3 * n) - mean * mean;
    // 3009 draws: the mean's standard error is 0.018, the variance's ~0.026.
    CHECK(fabs(mean) < 0.08 && fabs(var - 1) < 0.12, "normal moments: mean %g var %g", mean, var);
    free(hu);
    free(hz);
    vkd_graph_free(g);
    vkd_tensor_free(step);
}

int main(void) {
    kat();
    vkd_ctx *ctx = t_open();
    device_matches_host(ctx);
    return t_close(ctx);
}
