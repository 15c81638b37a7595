#ifndef VKDISTILL_DISTILL_H
#define VKDISTILL_DISTILL_H
// One-step distillation objectives (../shared/ALGORITHMS.md): DMD2, SiM, SiD
// and Diff-Instruct behind one interface. Each builds a scalar loss in a
// graph; the trainer records the generator phase and the fake-score phase once
// each and replays them.
#include "vkdistill/diffusion.h"
#include "vkdistill/train.h"

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

// ---------------------------------------------------------------- the distiller
// A whole distillation as one object: the teacher (a network or an exact GMM),
// the generator G, the fake-score network F (+ DMD2's GAN head), the EMA of G,
// and, per student step, two recorded phases replayed every iteration: k
// fake-score steps (F's denoising loss on sg(G(z)), Adam) and one generator
// step (the method's loss through the teacher and a frozen view of F, Adam, EMA).
// Fill a vkd_distiller_cfg (vkd_distiller_cfg_init, or from JSON with
// vkd_distiller_cfg_load), create, then either drive it with vkd_train (run
// folder, checkpoints, resume: vkd_distiller_trainable) or call
// vkd_distiller_step yourself (samples/distill_api.c).
#define VKD_MAX_STUDENT_STEPS 8
typedef struct {
    vkd_distill_cfg m;                     // the objective (vkd_distill_defaults)
    float sigmas[VKD_MAX_STUDENT_STEPS];   // a few-step student's sigmas; nsteps <= 1: one step at m.sigma_init
    int nsteps;
    char teacher_model[1024], teacher_weights[1024];  // a network teacher (weights "": random, for benchmarks), or
    char teacher_gmm[1024];                            // an exact mixture teacher (GMM config)
    char student[1024];                    // the student's model config (default: the teacher's)
    int init_from_teacher;                 // G and F start from the teacher's weights
    char generator_weights[1024];          // "": G starts as init says; else from these weights (a student to fine-tune)
    int batch, fake_steps, fake_warmup;    // fake_warmup: fake-only steps before the first iteration
    int64_t steps;
    double lr_g, lr_f, beta1, beta2, eps, weight_decay, warmup, grad_clip, ema_halflife_kimg;
    double ema_rampup_ratio;               // EDM's ramp-up: half-life <= this x the images seen (0 = off)
    int seed, log_every, sample_every, ckpt_every, sample_n, teacher_steps;
    int gan;                               // DMD2's GAN term (needs a dataset of real images)
    double gan_weight_g, gan_weight_d;
    int has_data;
    vkd_dataset_cfg data;
} vkd_distiller_cfg;

// The method's defaults (ALGORITHMS.md "Loop settings"); teacher and student paths left empty.
void vkd_distiller_cfg_init(vkd_distiller_cfg *c, vkd_method m);
// A distill JSON config (strict: an unknown field, a missing one or an
// inconsistent setting is one error line naming the file and the field).
int vkd_distiller_cfg_load(const char *path, vkd_distiller_cfg *c, char *err, size_t errlen);
// Settings that are each valid but not together (also checked by vkd_distiller_new); name labels the message.
int vkd_distiller_cfg_check(const char *name, const vkd_distiller_cfg *c, char *err, size_t errlen);

typedef struct vkd_distiller vkd_distiller;
// config_text identifies the run in checkpoints (a resume must match it); NULL for "none".
vkd_distiller *vkd_distiller_new(vkd_ctx *ctx, const vkd_distiller_cfg *c, const char *config_text, char *err,
                                 size_t errlen);
void vkd_distiller_free(vkd_distiller *d);

typedef struct {
    float loss_g, loss_f, grad_norm_g, grad_norm_f, loss_gan_g, loss_gan_d;
    int nonfinite;  // the generator step was skipped by the NaN guard
} vkd_distill_stats;
// The fake-only warm-up (cfg.fake_warmup steps; run once before step 1 of a fresh run).
int vkd_distiller_warmup(vkd_distiller *d);
// Iteration `step` (1-based; all noise and data are keyed by it, so steps replayed
// from a checkpoint repeat exactly): fake_steps fake-score steps, then one generator step.
int vkd_distiller_step(vkd_distiller *d, int64_t step, vkd_distill_stats *st);
const char *vkd_distiller_error(const vkd_distiller *d);
// Samples of the EMA generator from fixed noise: n = sample_n images (2000 points
// for vector students); out holds vkd_distiller_sample_numel floats.
int64_t vkd_distiller_sample_numel(const vkd_distiller *d, int64_t *n);
int vkd_distiller_sample(vkd_distiller *d, float *out);
// For a GMM teacher: statistics of the EMA generator's samples against exact samples
// (energy distance, share within 3 std of the assigned mode, the share of each mode).
typedef struct {
    double energy_distance, near_mode;
    int modes;
    double mode_weights[64];
} vkd_toy_stats;
int vkd_distiller_toy_stats(vkd_distiller *d, vkd_toy_stats *s);
// student.safetensors (the EMA generator when an EMA is kept) and student.json in dir.
int vkd_distiller_save(vkd_distiller *d, const char *dir, char *err, size_t errlen);
vkd_model *vkd_distiller_generator(vkd_distiller *d, int ema);
// The recorded phases of student step k (for benchmarks and profiles).
int vkd_distiller_phases(vkd_distiller *d, int k, vkd_graph **fake, vkd_graph **generator);
const vkd_trainable *vkd_distiller_trainable(void);
vkd_train_opts vkd_distiller_train_opts(const vkd_distiller_cfg *c);

// Energy distance 2 E|X-Y| - E|X-X'| - E|Y-Y'| between point sets of dimension dim.
double vkd_energy_distance(const float *a, int64_t na, const float *b, int64_t nb, int dim);

#ifdef __cplusplus
}
#endif
#endif
