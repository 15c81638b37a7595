#ifndef VKDISTILL_DIFFUSION_H
#define VKDISTILL_DIFFUSION_H
// The diffusion core: denoisers (a network or the exact Gaussian-mixture
// teacher), EDM's training loss, the Karras sigma grid and samplers.
// Math: ../shared/ALGORITHMS.md. Every sampler records its step once and
// replays it, with the step's sigmas in a host-visible tensor.
#include "vkdistill/nn.h"

#ifdef __cplusplus
extern "C" {
#endif

// ---------------------------------------------------------------- exact GMM teacher
// p0 = sum_k w_k N(mu_k, s_k^2 I) in d dimensions (one sample's numel; samples
// may be image-shaped). Its denoiser is exact at every sigma.
typedef struct vkd_gmm vkd_gmm;
// sample_shape: (d) for vectors or (C, H, W) for images (ndim 1 or 3).
vkd_gmm *vkd_gmm_create(vkd_ctx *ctx, int K, int ndim, const int64_t *sample_shape, const double *weights,
                        const double *means /* (K, d) */, const double *stds /* (K) */, char *err, size_t errlen);
// From a JSON config {"arch": "gmm", "weights": [...], "means": [[...], ...], "stds": [...]} with
// optional "dim": d (a check) or "shape": [C, H, W] (image-shaped samples; default [d]) and
// "comment"; weights are normalized to sum 1. Or {"arch": "gmm", "preset": "ring8"}: 8
// equal-weight modes on a circle of radius 2, std 0.1 (the same as models/gmm_ring8.json).
vkd_gmm *vkd_gmm_load(vkd_ctx *ctx, const char *config_path, char *err, size_t errlen);
void vkd_gmm_free(vkd_gmm *m);
int vkd_gmm_components(const vkd_gmm *m);
int vkd_gmm_sample_shape(const vkd_gmm *m, int64_t shape[3]);  // returns ndim (1 or 3)
// The mixture on the host (normalized weights (K), means (K, d), stds (K)); owned by m.
void vkd_gmm_params(const vkd_gmm *m, const double **weights, const double **means, const double **stds);
// Exact samples on the host (n, d) and their component index (may be NULL): component from
// vkd_philox_uniform(seed, 0, 0, i), noise vkd_philox_normal(seed, 1, 0, i*d + j).
void vkd_gmm_sample_host(const vkd_gmm *m, uint64_t seed, int64_t n, float *out, int *component);
// The most likely component at sigma = 0 (argmax_k of w_k N(x; mu_k, s_k^2 I)) of host points, for mode counting.
void vkd_gmm_assign_host(const vkd_gmm *m, int64_t n, const float *x, int *component);
// D(x; sigma) exactly (log-sum-exp responsibilities), x (N, d...) and sigma (N); the
// gradient flows to x (its exact vector-Jacobian product); none to sigma.
vkd_tensor *vkd_gmm_denoise(vkd_graph *g, vkd_gmm *m, vkd_tensor *x, vkd_tensor *sigma);

// ---------------------------------------------------------------- any denoiser
// What samplers, the EDM loss and every distillation method take: a network
// (vkd_model, EDM-preconditioned) or the exact GMM. Exactly one is set.
typedef struct {
    vkd_model *model;
    vkd_gmm *gmm;
} vkd_denoiser;

vkd_tensor *vkd_denoiser_apply(vkd_graph *g, const vkd_denoiser *d, vkd_tensor *x, vkd_tensor *sigma,
                               vkd_tensor *labels);
int vkd_denoiser_sample_shape(const vkd_denoiser *d, int64_t shape[3]);  // returns ndim (1 or 3)
int vkd_denoiser_label_dim(const vkd_denoiser *d);
vkd_ctx *vkd_denoiser_ctx(const vkd_denoiser *d);

// ---------------------------------------------------------------- denoising (EDM) losses
// One implementation for teacher training and for the distillers' fake networks:
//   loss = R(lambda(sigma) (D(x0 + sigma n'; sigma) - x0)^2),  lambda = (sigma^2 + sd^2) / (sigma sd)^2,
// R the reduction: the mean over batch and elements (DMD2's fake loss, vkd_edm_loss) or
// each sample's sum averaged over the batch (EDM's and SiD's `loss.sum() / batch`).
// sigma (N) is drawn on the device from (seed, VKD_EDM_STREAM_SIGMA, step_t) -- log-normal
// exp(p_mean + p_std n), or a Karras draw (vkd_karras_sigma_draw) -- and n' (x0's shape)
// from (seed, VKD_EDM_STREAM_NOISE, step_t): give other draws of the same step other
// streams or another seed. Gradients flow to x0 (if it requires one) and the denoiser's
// parameters. x0 (N, ...) and labels (N, K) or NULL.
#define VKD_EDM_STREAM_SIGMA 0x0ED0u
#define VKD_EDM_STREAM_NOISE 0x0ED1u
typedef enum { VKD_REDUCE_MEAN = 0, VKD_REDUCE_SAMPLE_SUM = 1 } vkd_reduction;
typedef enum { VKD_SIGMA_LOGNORMAL = 0, VKD_SIGMA_KARRAS = 1 } vkd_sigma_kind;
typedef struct {
    vkd_sigma_kind sigma;
    float p_mean, p_std;                    // log-normal (EDM: -1.2, 1.2)
    float t_min, t_max;                     // Karras: see vkd_karras_sigma_draw
    float sigma_min, sigma_max, rho;
    int levels;
    float sigma_data;                       // 0.5
    vkd_reduction reduction;
} vkd_denoise_loss_cfg;
// Hooks for terms that share the draw (DMD2's GAN head): the sigma and x_t used, and
// with want_bottleneck the model's bottleneck features on x_t (a UNet denoiser only).
typedef struct {
    int want_bottleneck;
    vkd_tensor *sigma, *xt, *bottleneck;  // out
} vkd_denoise_loss_aux;
vkd_tensor *vkd_denoise_loss(vkd_graph *g, const vkd_denoiser *d, vkd_tensor *x0, vkd_tensor *labels,
                             const vkd_denoise_loss_cfg *c, uint64_t seed, vkd_tensor *step_t, vkd_denoise_loss_aux *aux);
// EDM's training loss as vkdistill's teacher trainer uses it: log-normal sigma, mean
// reduction (EDM's own code sums each sample: its gradient is C*H*W times this one).
vkd_tensor *vkd_edm_loss(vkd_graph *g, const vkd_denoiser *d, vkd_tensor *x0, vkd_tensor *labels, float p_mean,
                         float p_std, float sigma_data, uint64_t seed, vkd_tensor *step_t);
// Karras sigma draws (N): sigma = (a + t (b - a))^rho, a = sigma_min^(1/rho), b = sigma_max^(1/rho).
// levels = 0: t ~ U(t_min, t_max). levels = L > 1: L discrete levels t = i/(L-1) with the
// integer i uniform in [floor(t_min L), min(floor(t_max L), L-1)] -- DMD2's
// karras_sigmas[randint(min_step, max_step + 1)] with L = 1000 (t 0.02..0.98: i = 20..980).
// u ~ U[0, 1) from vkd_rand_uniform(seed, stream, step_t).
vkd_tensor *vkd_karras_sigma_draw(vkd_graph *g, int64_t n, float t_min, float t_max, int levels, float sigma_min,
                                  float sigma_max, float rho, uint64_t seed, uint32_t stream, vkd_tensor *step_t);

// ---------------------------------------------------------------- sampling
typedef enum { VKD_SAMPLER_EULER = 0, VKD_SAMPLER_HEUN = 1 } vkd_sampler_kind;

typedef struct {
    vkd_sampler_kind kind;  // Heun: 2nd order with Euler on the last step (EDM Algorithm 1/2)
    int steps;              // N sigmas before the final 0: Heun makes 2N-1 network evaluations
    double sigma_min, sigma_max, rho;                   // Karras grid (0.002, 80, 7)
    double s_churn, s_min, s_max, s_noise;              // EDM's stochastic sampler (s_churn 0 = deterministic)
    double guidance;                                    // classifier-free guidance weight (1 = off)
    void (*progress)(void *user, int step, int steps);  // called after each step (may be NULL)
    void *progress_user;
    // The images sampled with this config in all, over the caller's batches (0: this call's n):
    // told to the step graphs (vkd_graph_set_samples, times the network evaluations), the same
    // for every batch, so no image depends on how n was cut into batches.
    int64_t images;
} vkd_sampler_cfg;

// The EDM defaults: Heun, 18 steps, 0.002..80, rho 7, no churn, guidance 1.
vkd_sampler_cfg vkd_sampler_defaults(void);
// sigma_0 > ... > sigma_{steps-1} then sigma_steps = 0 (steps + 1 values).
void vkd_karras_sigmas(const vkd_sampler_cfg *c, double *out);
// Samples n images: x_0 = sigma_0 * N(0, I) from (seed, stream 0), the churn
// noise from (seed, stream 1..), labels (n, K) one-hot rows or NULL; writes the
// result into out (a persistent (n, ...) tensor). One recorded graph per kind of
// step, replayed with that step's sigmas. 0 on success, else err.
// Guidance applies only when labels are given (D_u uses all-zero label rows).
#define VKD_SAMPLER_STREAM_INIT 0u   // x_0: vkd_rand_normal(seed, 0, step 0) * sigma_0
#define VKD_SAMPLER_STREAM_CHURN 1u  // step i's churn noise: vkd_rand_normal(seed, 1, step i)
int vkd_sample(const vkd_denoiser *d, const vkd_sampler_cfg *c, int64_t n, vkd_tensor *labels, uint64_t seed,
               vkd_tensor *out, char *err, size_t errlen);
// The same from a given start: x (persistent, (n, ...)) holds x_0 (already scaled by
// sigma_0) and is replaced by the samples. vkd_sample draws x_0 and calls this.
int vkd_sample_from(const vkd_denoiser *d, const vkd_sampler_cfg *c, vkd_tensor *x, vkd_tensor *labels, uint64_t seed,
                    char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
