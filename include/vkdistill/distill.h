#ifndef VKDISTILL_DISTILL_H
#define VKDISTILL_DISTILL_H
// One-step distillation objectives (../shared/ALGORITHMS.md): DMD2, SiM, SiD
// and Diff-Instruct behind one interface. Each builds a scalar loss in a
// graph; the trainer records the generator phase and the fake-score phase once
// each and replays them.
#include "vkdistill/diffusion.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { VKD_DMD2 = 0, VKD_SIM = 1, VKD_SID = 2, VKD_DIFF_INSTRUCT = 3 } vkd_method;

typedef enum { VKD_SIM_WEIGHT_NONE = 0, VKD_SIM_WEIGHT_SID = 1 } vkd_sim_weight;

typedef struct {
    vkd_method method;
    float sigma_init;        // G(z) = D_G(sigma_init z; sigma_init)
    float alpha;             // SiD
    float huber_c;           // SiM: pseudo-Huber constant; <= 0 means plain L2 (d(y) = |y|^2 / 2)
    vkd_sim_weight sim_weight;
    float t_min, t_max;      // sigma of the generator term: Karras t ~ U(t_min, t_max)
    float sigma_min, sigma_max, rho;
    int fake_sigma_karras;   // fake loss sigma: 1 = Karras t ~ U(t_min_fake, t_max_fake) (DMD2), 0 = EDM log-normal
    float t_min_fake, t_max_fake;
    float p_mean, p_std;     // EDM log-normal for the fake loss
    float sigma_data;
} vkd_distill_cfg;

// Sensible defaults per method (ALGORITHMS.md "Loop settings").
vkd_distill_cfg vkd_distill_defaults(vkd_method m);
const char *vkd_method_name(vkd_method m);
int vkd_method_parse(const char *s, vkd_method *m);  // "dmd2", "sim", "sid", "diff_instruct"

// x = G(z): the one-step generator, z (N, ...) ~ N(0, I).
vkd_tensor *vkd_generator(vkd_graph *g, const vkd_denoiser *G, vkd_tensor *z, vkd_tensor *labels, float sigma_init);
// A few-step student (DMD2's multi-step generator): x_0 = sigmas[0] z; for j < k,
// x0_j = D_G(x_j; sigmas[j]) and x_{j+1} = x0_j + sigmas[j+1] n_j with n_j drawn from
// (seed, stream + j, step_t); returns x0_k = D_G(x_k; sigmas[k]). The steps before
// k run without gradient ("backward simulation": training sees the inputs that
// sampling produces); the last follows the graph's grad setting. k = 0 is vkd_generator.
vkd_tensor *vkd_generator_rollout(vkd_graph *g, const vkd_denoiser *G, vkd_tensor *z, vkd_tensor *labels,
                                  const float *sigmas, int k, uint64_t seed, uint32_t stream, vkd_tensor *step_t);
// sigma (N) = (a + t (b - a))^rho with t ~ U(t_min, t_max), a = sigma_min^(1/rho), b = sigma_max^(1/rho).
vkd_tensor *vkd_karras_sigma_draw(vkd_graph *g, int64_t n, float t_min, float t_max, float sigma_min, float sigma_max,
                                  float rho, uint64_t seed, uint32_t stream, vkd_tensor *step_t);
// The generator objective on samples x (which carry the gradient to G). The
// teacher and the fake network must be frozen here (a frozen view of the fake
// model, vkd_model_frozen_view). Sum over a sample's elements, mean over the batch.
vkd_tensor *vkd_distill_generator_loss(vkd_graph *g, const vkd_distill_cfg *c, vkd_tensor *x, vkd_tensor *labels,
                                       const vkd_denoiser *teacher, const vkd_denoiser *fake, uint64_t seed,
                                       vkd_tensor *step_t);
// The fake network's denoising loss on generator samples x (no gradient to G).
vkd_tensor *vkd_distill_fake_loss(vkd_graph *g, const vkd_distill_cfg *c, vkd_tensor *x, vkd_tensor *labels,
                                  const vkd_denoiser *fake, uint64_t seed, vkd_tensor *step_t);

#ifdef __cplusplus
}
#endif
#endif
