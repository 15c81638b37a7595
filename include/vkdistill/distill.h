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
    float t_min, t_max;      // sigma of the generator term: Karras t in [t_min, t_max] (vkd_karras_sigma_draw)
    float sigma_min, sigma_max, rho;
    int fake_sigma_karras;   // fake loss sigma: 1 = Karras t in [t_min_fake, t_max_fake] (DMD2), 0 = EDM log-normal
    float t_min_fake, t_max_fake;
    int karras_levels;       // Karras draws: 0 = continuous t, L = L discrete levels (DMD2: 1000)
    float p_mean, p_std;     // EDM log-normal for the fake loss
    float sigma_data;
    // How the generator and fake losses reduce, as each method's reference code does:
    // DMD2 the mean over B*C*H*W, SiD/SiM/Diff-Instruct each sample's sum averaged over B.
    vkd_reduction reduction;
} vkd_distill_cfg;

// ---------------------------------------------------------------- DMD2's GAN term
// A discriminator head on the fake network's bottleneck (src/distill/gan.c):
// conv 4x4 s2 -> GroupNorm -> SiLU -> conv kxk sk (k = min(4, R/2)) -> GroupNorm
// -> SiLU -> conv 1x1, averaged over positions; tensors named as DMD2's
// cls_pred_branch.{0,1,3,4,6}.{weight,bias}, PyTorch's default initialization.
typedef struct vkd_gan_head vkd_gan_head;
// feat: the bottleneck shape (C, R, R) (vkd_model_bottleneck_shape), R even.
vkd_gan_head *vkd_gan_head_new(vkd_ctx *ctx, const int64_t feat[3], uint64_t seed, char *err, size_t errlen);
// Frozen aliases of the same parameters (the generator phase); free before the head.
vkd_gan_head *vkd_gan_head_frozen_view(vkd_gan_head *h);
void vkd_gan_head_free(vkd_gan_head *h);
int vkd_gan_head_num_tensors(const vkd_gan_head *h);
vkd_tensor *vkd_gan_head_tensor(const vkd_gan_head *h, int i);  // all are parameters
// features (N, C, R, R) -> logits (N); positive means "real".
vkd_tensor *vkd_gan_head_forward(vkd_graph *g, const vkd_gan_head *h, vkd_tensor *features);

// The GAN term of one phase. Fake phase: weight * (mean softplus(l_fake) +
// mean softplus(-l_real)) is added to the fake network's loss, with real
// images noised by the same sigma draw as the generated ones. Generator phase:
// weight * D * mean softplus(-l_fake) (non-saturating) is added to the
// generator's loss, D the elements of a sample when the method's losses sum over
// a sample (VKD_REDUCE_SAMPLE_SUM), 1 when they average (DMD2): the weight always
// means what DMD2's gen_cls_loss_weight / guidance_cls_loss_weight (3e-3 / 1e-2) mean.
typedef struct {
    vkd_gan_head *head;             // trainable (fake phase) or a frozen view (generator phase)
    float weight;
    vkd_tensor *real, *real_labels;  // fake phase: real images (N, C, H, W) and one-hot labels (or NULL)
    vkd_tensor *loss;                // out: the unweighted GAN loss of the phase, (1)
} vkd_gan_term;

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
// The generator objective on samples x (which carry the gradient to G). The
// teacher and the fake network must be frozen here (a frozen view of the fake
// model, vkd_model_frozen_view). Reduced as c->reduction says (DMD2: mean over all
// elements, so dL/dx = grad / (B*C*H*W) as in DMD2's code; others: sum over a sample's
// elements, mean over the batch).
// gan (may be NULL): the GAN term, through the frozen fake network's bottleneck
// on the same x_t, its gradient reaching x through the fake network's encoder.
vkd_tensor *vkd_distill_generator_loss(vkd_graph *g, const vkd_distill_cfg *c, vkd_tensor *x, vkd_tensor *labels,
                                       const vkd_denoiser *teacher, const vkd_denoiser *fake, uint64_t seed,
                                       vkd_tensor *step_t, vkd_gan_term *gan);
// The fake network's denoising loss on generator samples x (no gradient to G):
// vkd_denoise_loss with the method's sigma draw and reduction, draws from seed ^ 0xfa4e;
// gan (may be NULL) adds the discriminator loss on the same sigma draw, training the
// fake network's encoder and the head together.
vkd_tensor *vkd_distill_fake_loss(vkd_graph *g, const vkd_distill_cfg *c, vkd_tensor *x, vkd_tensor *labels,
                                  const vkd_denoiser *fake, uint64_t seed, vkd_tensor *step_t, vkd_gan_term *gan);
// The denoising-loss settings of the fake network for a distillation config.
vkd_denoise_loss_cfg vkd_distill_fake_loss_cfg(const vkd_distill_cfg *c);

#ifdef __cplusplus
}
#endif
#endif
