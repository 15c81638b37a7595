// EDM preconditioning coefficients (shaders/precond.comp).
#include "ops/ops.h"

typedef struct {
    VkDeviceAddress sigma, c_skip, c_out, c_in, c_noise;
    uint32_t n;
    float sigma_data;
} precond_push;

int vkd_edm_coefficients(vkd_graph *g, vkd_tensor *sigma, float sigma_data, vkd_tensor *out[4]) {
    if (!vkd_op_ok(g, 1, sigma)) return -1;
    if (vkd_tensor_needs_grad(sigma)) {
        vkd_graph_fail(g, "edm preconditioning: no gradient flows to sigma '%s'; do not mark it requires_grad",
                       sigma->name);
        return -1;
    }
    static const char *names[4] = {"c_skip", "c_out", "c_in", "c_noise"};
    for (int i = 0; i < 4; i++)
        if (!(out[i] = vkd_graph_tensor(g, names[i], 1, &sigma->numel))) return -1;
    precond_push pc = {.n = (uint32_t)sigma->numel, .sigma_data = sigma_data};
    vkd_arg args[5] = {{offsetof(precond_push, sigma), VKD_R, sigma},
                       {offsetof(precond_push, c_skip), VKD_W, out[0]},
                       {offsetof(precond_push, c_out), VKD_W, out[1]},
                       {offsetof(precond_push, c_in), VKD_W, out[2]},
                       {offsetof(precond_push, c_noise), VKD_W, out[3]}};
    uint32_t spec[1] = {VKD_WG}, gx, gy;
    vkd_grid_1d(sigma->numel, VKD_WG, &gx, &gy);
    return vkd_graph_dispatch(g, "edm_precond", "precond", spec, 1, gx, gy, 1, &pc, sizeof pc, args, 5);
}
