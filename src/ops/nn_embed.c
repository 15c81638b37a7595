// Sinusoidal timestep embeddings (EDM PositionalEmbedding / FourierEmbedding,
// DiT TimestepEmbedder). Shader: shaders/embed.comp. They sit at the start of
// the conditioning path, below anything trained, so they have no backward.
#include <math.h>
#include <stdio.h>

#include "ops/ops.h"

typedef struct {
    VkDeviceAddress y, t, f;
    uint32_t N, half_dim;
    float c_hi, c_lo;
} embed_push;

static int check_t(vkd_graph *g, const char *op, const vkd_tensor *t) {
    char st[64];
    vkd_shape_str(t, st, sizeof st);
    if (t->ndim != 1) {
        vkd_graph_fail(g, "%s of '%s' %s: t must be 1-D (N)", op, t->name, st);
        return -1;
    }
    if (vkd_tensor_needs_grad(t)) {
        vkd_graph_fail(g, "%s of '%s': t requires a gradient, which this op does not provide", op, t->name);
        return -1;
    }
    return 0;
}

static vkd_tensor *embed(vkd_graph *g, const char *name, uint32_t mode, vkd_tensor *t, vkd_tensor *f,
                         uint32_t half_dim, double c) {
    if ((uint64_t)t->numel * half_dim * 2 > UINT32_MAX) {
        vkd_graph_fail(g, "%s of '%s': more elements than 32-bit indexing reaches", name, t->name);
        return NULL;
    }
    int64_t shape[2] = {t->shape[0], 2 * (int64_t)half_dim};
    vkd_tensor *y = vkd_graph_tensor(g, name, 2, shape);
    if (!y) return NULL;
    // The shader forms k*c as k*c_hi (exact: 12-bit c_hi times k < 4096) plus
    // k*c_lo, so the exponent carries no fp32 rounding of the product.
    int ex;
    double m = frexp(c, &ex);
    double c_hi = ldexp(nearbyint(m * 4096.0) / 4096.0, ex);
    embed_push pc = {.N = (uint32_t)t->numel, .half_dim = half_dim, .c_hi = (float)c_hi, .c_lo = (float)(c - c_hi)};
    vkd_arg args[3] = {{offsetof(embed_push, y), VKD_W, y}, {offsetof(embed_push, t), VKD_R, t}};
    int na = 2;
    if (f) args[na++] = (vkd_arg){offsetof(embed_push, f), VKD_R, f};
    uint32_t spec[2] = {VKD_WG, mode}, gx, gy;
    vkd_grid_1d((uint64_t)t->numel * half_dim, VKD_WG, &gx, &gy);
    if (vkd_graph_dispatch(g, name, "embed", spec, 2, gx, gy, 1, &pc, sizeof pc, args, na)) return NULL;
    return y;
}

vkd_tensor *vkd_timestep_embedding(vkd_graph *g, vkd_tensor *t, int dim, float max_positions, int endpoint) {
    if (!vkd_op_ok(g, 1, t) || check_t(g, "timestep_embedding", t)) return NULL;
    endpoint = endpoint ? 1 : 0;
    if (dim <= 0 || dim % 2 || dim / 2 - endpoint <= 0 || dim / 2 > 4096) {
        vkd_graph_fail(g, "timestep_embedding of '%s': dim %d must be even, at most 8192%s", t->name, dim,
                       endpoint ? " and at least 4 with endpoint" : "");
        return NULL;
    }
    if (!(max_positions > 0.0f) || isinf(max_positions)) {
        vkd_graph_fail(g, "timestep_embedding of '%s': max_positions %g must be positive and finite", t->name,
                       (double)max_positions);
        return NULL;
    }
    double c = log2((double)max_positions) / (dim / 2 - endpoint);
    return embed(g, "timestep_embedding", 0, t, NULL, (uint32_t)(dim / 2), c);
}

vkd_tensor *vkd_fourier_embedding(vkd_graph *g, vkd_tensor *t, vkd_tensor *freqs) {
    if (!vkd_op_ok(g, 2, t, freqs) || check_t(g, "fourier_embedding", t)) return NULL;
    char sf[64];
    vkd_shape_str(freqs, sf, sizeof sf);
    if (freqs->ndim != 1 || freqs->numel < 1) {
        vkd_graph_fail(g, "fourier_embedding of '%s': freqs '%s' %s must be 1-D (dim/2)", t->name, freqs->name, sf);
        return NULL;
    }
    if (vkd_tensor_needs_grad(freqs)) {
        vkd_graph_fail(g, "fourier_embedding: freqs '%s' requires a gradient, which this op does not provide",
                       freqs->name);
        return NULL;
    }
    return embed(g, "fourier_embedding", 1, t, freqs, (uint32_t)freqs->numel, 0.0);
}
