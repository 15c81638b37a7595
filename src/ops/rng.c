// Uniform and normal draws on the device (Philox4x32-10, shaders/rng.comp).
#include "ops/ops.h"
#include "vkdistill/dist.h"

typedef struct {
    VkDeviceAddress y, step;
    uint32_t n, seed_lo, seed_hi, stream, flags, offset;
} rng_push;

// Rows of the global batch before this process's (include/vkdistill/dist.h):
// a draw recorded while it is set takes the numbers of rows [row0, row0 + B)
// of a draw with more rows, so ranks together draw what one process draws.
// Thread-local: ranks may be threads of one process, each recording its own graphs.
static _Thread_local int64_t g_row0;

void vkd_rand_set_row_offset(int64_t row0) { g_row0 = row0; }
int64_t vkd_rand_row_offset(void) { return g_row0; }

static vkd_tensor *draw(vkd_graph *g, const char *name, int normal, int ndim, const int64_t *shape, uint64_t seed,
                        uint32_t stream, vkd_tensor *step_t) {
    if (vkd_graph_failed(g)) return NULL;
    vkd_tensor *y = vkd_graph_tensor(g, name, ndim, shape);
    if (!y) return NULL;
    uint64_t off = (uint64_t)g_row0 * (uint64_t)(y->numel / shape[0]);
    if (off + (uint64_t)y->numel + 3 > UINT32_MAX) {
        vkd_graph_fail(g, "%s: element %llu of the stream is past 32-bit counters", name, (unsigned long long)(off + y->numel));
        return NULL;
    }
    rng_push pc = {.n = (uint32_t)y->numel,
                   .seed_lo = (uint32_t)seed,
                   .seed_hi = (uint32_t)(seed >> 32),
                   .stream = stream,
                   .flags = (normal ? 1u : 0u) | (step_t ? 2u : 0u),
                   .offset = (uint32_t)off};
    vkd_arg args[2] = {{offsetof(rng_push, y), VKD_W, y}};
    int na = 1;
    if (step_t) args[na++] = (vkd_arg){offsetof(rng_push, step), VKD_R, step_t};
    uint32_t spec[1] = {VKD_WG}, gx, gy;
    vkd_grid_1d((y->numel + (off & 3) + 3) / 4, VKD_WG, &gx, &gy);
    if (vkd_graph_dispatch(g, name, "rng", spec, 1, gx, gy, 1, &pc, sizeof pc, args, na)) return NULL;
    return y;
}

vkd_tensor *vkd_rand_uniform(vkd_graph *g, int ndim, const int64_t *shape, uint64_t seed, uint32_t stream,
                             vkd_tensor *step_t) {
    return draw(g, "rand_uniform", 0, ndim, shape, seed, stream, step_t);
}

vkd_tensor *vkd_rand_normal(vkd_graph *g, int ndim, const int64_t *shape, uint64_t seed, uint32_t stream,
                            vkd_tensor *step_t) {
    return draw(g, "rand_normal", 1, ndim, shape, seed, stream, step_t);
}
