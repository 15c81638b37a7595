#ifndef VKDISTILL_H
#define VKDISTILL_H
// vkdistill public C API.
//
// The model of computation: persistent tensors (parameters, optimizer state,
// inputs) live as long as you keep them; a graph records a whole step (forward,
// backward, optimizer) once into a command buffer, plans its activation memory
// by liveness, and is replayed every step with vkd_graph_run(). Per-step values
// (learning rate, step counter, seeds) are read by shaders from small
// host-visible tensors the host writes between runs.
//
// Errors: constructors return NULL and functions return non-zero; the message
// is one line from vkd_ctx_error() (or vkd_graph_error() for graph building,
// where the first error is sticky and later ops return NULL).
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VKD_MAX_DIMS 6

typedef struct vkd_ctx vkd_ctx;
typedef struct vkd_tensor vkd_tensor;
typedef struct vkd_graph vkd_graph;

// ---------------------------------------------------------------- context
typedef struct {
    const char *device;  // NULL: $VKD_DEVICE, else the best device; "N" = index, else a name substring
    int validation;      // <0: from $VKD_VALIDATION; 0 off; 1 Khronos validation + sync validation
    int quiet;           // do not print the chosen device
    // 1: the work is many small dispatches (an MLP's). lavapipe then runs each dispatch on the
    // submitting thread (LP_NUM_THREADS=0, unless the variable is set): handing a small dispatch to
    // its worker threads costs more than the work (docs/performance_history.md, "Small dispatches
    // on lavapipe"). Other drivers ignore it.
    int small_dispatches;
} vkd_ctx_opts;

// Creates a context on the chosen device. On failure returns NULL and writes one line to err.
vkd_ctx *vkd_ctx_create(const vkd_ctx_opts *opts, char *err, size_t errlen);
void vkd_ctx_destroy(vkd_ctx *ctx);
const char *vkd_ctx_error(const vkd_ctx *ctx);
// Number of validation-layer messages seen so far (tests fail if non-zero).
int vkd_ctx_validation_messages(const vkd_ctx *ctx);
const char *vkd_ctx_device_name(const vkd_ctx *ctx);
void vkd_ctx_print_info(vkd_ctx *ctx, FILE *f);
// Lists every Vulkan device with its index (what --device takes). 0 on success.
int vkd_list_devices(FILE *f, char *err, size_t errlen);
// Bytes of device memory currently allocated by this context, and the peak.
uint64_t vkd_ctx_mem_current(const vkd_ctx *ctx);
uint64_t vkd_ctx_mem_peak(const vkd_ctx *ctx);
// Compute pipelines created so far and the wall-clock seconds spent creating them
// (the driver's compiler; a graph's pipelines are created together, one thread a core,
// VKD_COMPILE_THREADS to set the count).
void vkd_ctx_pipeline_stats(const vkd_ctx *ctx, int *created, double *seconds);

// ---------------------------------------------------------------- tensors
enum {
    VKD_PARAM = 1,  // trainable: gets a persistent gradient buffer (accumulated by backward)
    VKD_HOST = 2,   // host-visible and mapped (per-step scalars); read with vkd_tensor_map
};

// A persistent fp32 tensor, zero-initialized. shape has ndim entries (1..VKD_MAX_DIMS).
vkd_tensor *vkd_tensor_new(vkd_ctx *ctx, const char *name, int ndim, const int64_t *shape, int flags);
void vkd_tensor_free(vkd_tensor *t);
// A frozen alias of a persistent tensor: same memory, no gradient. Lets one
// phase of training use a network as a fixed function (gradients flow through
// it to its inputs) while another phase trains it.
vkd_tensor *vkd_tensor_alias(vkd_tensor *t);
int vkd_tensor_upload(vkd_tensor *t, const float *src);   // whole tensor
int vkd_tensor_download(const vkd_tensor *t, float *dst); // whole tensor
float *vkd_tensor_map(vkd_tensor *t);                     // VKD_HOST tensors only
// The persistent gradient of a VKD_PARAM tensor (NULL otherwise).
vkd_tensor *vkd_tensor_grad(const vkd_tensor *t);
// Ask backward for the gradient w.r.t. this (non-parameter) tensor; read it with vkd_graph_grad.
void vkd_tensor_set_requires_grad(vkd_tensor *t, int on);
int vkd_tensor_ndim(const vkd_tensor *t);
int64_t vkd_tensor_dim(const vkd_tensor *t, int i);  // negative i counts from the end
int64_t vkd_tensor_numel(const vkd_tensor *t);
const char *vkd_tensor_name(const vkd_tensor *t);

// ---------------------------------------------------------------- graphs
vkd_graph *vkd_graph_new(vkd_ctx *ctx, const char *name);
void vkd_graph_free(vkd_graph *g);
const char *vkd_graph_error(const vkd_graph *g);
// Appends the backward of everything recorded so far, seeded with d(loss) = 1.
// Gradients of VKD_PARAM tensors are added into their persistent grad buffers;
// gradients of tensors marked requires_grad can be read with vkd_graph_grad.
int vkd_graph_backward(vkd_graph *g, vkd_tensor *loss);
vkd_tensor *vkd_graph_grad(vkd_graph *g, const vkd_tensor *t);
// Keeps a graph tensor alive to the end of the step so it can be downloaded after a run.
void vkd_graph_keep(vkd_graph *g, vkd_tensor *t);
// Plans memory and records the command buffer. Called by the first run if not called.
int vkd_graph_compile(vkd_graph *g);
// Submits the recorded step and waits for it.
int vkd_graph_run(vkd_graph *g);
// What a compiled graph records (src/core/graph_profile.c): dispatches and barriers per run.
void vkd_graph_counts(const vkd_graph *g, int *dispatches, int *barriers);
// Device time per op (ms per run, mean over runs; calls = dispatches per run),
// largest first, when the graph was compiled with VKD_PROFILE=1 (else 0 rows).
typedef struct {
    const char *name;
    double ms;
    int calls;
} vkd_op_time;
int vkd_graph_op_times(const vkd_graph *g, vkd_op_time *out, int max);
// Bytes of the graph's activation arena (after compile) and its dispatch count.
uint64_t vkd_graph_arena_bytes(const vkd_graph *g);
int vkd_graph_dispatch_count(const vkd_graph *g);
// Disables/enables tape recording for the ops that follow (no-grad regions).
void vkd_graph_set_grad_enabled(vkd_graph *g, int on);
int vkd_graph_grad_enabled(const vkd_graph *g);
// How many samples the process will push through g over all its runs (images x network
// evaluations; a training step's batch x steps), before its ops are recorded. On CPU devices
// an op whose whole run is small (a convolution; a GEMM, see vkd_graph_set_run_samples) then
// takes the variant that is quick to create over the one that runs fastest: lavapipe spends up
// to ~0.6 s of CPU creating a large convolution's pipeline, in every process, more than a short
// run's convolutions take. 0 (the default): not said, taken as many. Changes which convolution
// kernels run, so results within rounding, not bit for bit.
void vkd_graph_set_samples(vkd_graph *g, int64_t n);
// Of those, the samples one run of g pushes through (its batch x the network evaluations
// recorded in it). With both said, ops know how many times g runs (vkd_graph_runs): a GEMM of a
// short run then takes a small register tile, quick to create, with the same bits. 0 (the
// default): not said, taken as 1, so the samples bound the runs from above.
void vkd_graph_set_run_samples(vkd_graph *g, int64_t n);
// ceil(samples / run samples): how many times g runs, as said (0: not said)
int64_t vkd_graph_runs(const vkd_graph *g);

// ---------------------------------------------------------------- ops
// All ops append to g and return a tensor owned by g (NULL after an error).
// Shapes are static; shape comments follow llm.c, row-major, last axis fastest.

// a (B?,M,K) @ b (B?,K,N) -> (B?,M,N); ta/tb: the operand is stored transposed.
// b may be 2-D and shared by every batch.
vkd_tensor *vkd_matmul(vkd_graph *g, vkd_tensor *a, vkd_tensor *b, int ta, int tb);
// x (..., in) , w (out, in) as in PyTorch, bias (out) or NULL -> (..., out)
vkd_tensor *vkd_linear(vkd_graph *g, vkd_tensor *x, vkd_tensor *w, vkd_tensor *bias);
// r (..., out) + linear(x, w, bias) in one GEMM: the residual is added in its epilogue,
// not by an add's pass after it (the same bits as vkd_add(g, r, vkd_linear(...))). r NULL: vkd_linear.
vkd_tensor *vkd_linear_add(vkd_graph *g, vkd_tensor *x, vkd_tensor *w, vkd_tensor *bias, vkd_tensor *r);
// Broadcasting binary ops: b is right-aligned to a (numpy rules), its non-1
// dims must be contiguous (per-channel (C,1,1), per-row, scalar, same shape).
vkd_tensor *vkd_add(vkd_graph *g, vkd_tensor *a, vkd_tensor *b);
// alpha * (a + b) for a and b of one shape: a residual add and its scale in one pass.
vkd_tensor *vkd_add_scaled(vkd_graph *g, vkd_tensor *a, vkd_tensor *b, float alpha);
vkd_tensor *vkd_sub(vkd_graph *g, vkd_tensor *a, vkd_tensor *b);
vkd_tensor *vkd_mul(vkd_graph *g, vkd_tensor *a, vkd_tensor *b);
vkd_tensor *vkd_scale(vkd_graph *g, vkd_tensor *x, float alpha);
vkd_tensor *vkd_silu(vkd_graph *g, vkd_tensor *x);
vkd_tensor *vkd_gelu(vkd_graph *g, vkd_tensor *x);  // tanh approximation
vkd_tensor *vkd_relu(vkd_graph *g, vkd_tensor *x);
vkd_tensor *vkd_exp(vkd_graph *g, vkd_tensor *x);
vkd_tensor *vkd_log(vkd_graph *g, vkd_tensor *x);   // x > 0
vkd_tensor *vkd_sqrt(vkd_graph *g, vkd_tensor *x);  // x > 0 for the gradient
vkd_tensor *vkd_softplus(vkd_graph *g, vkd_tensor *x);  // log(1 + e^x), stable for any x
vkd_tensor *vkd_affine(vkd_graph *g, vkd_tensor *x, float alpha, float beta);  // alpha*x + beta
// Reductions over the last axis (x (..., n) -> (...)) or over everything (-> (1)).
vkd_tensor *vkd_sum(vkd_graph *g, vkd_tensor *x, int last_axis_only);
vkd_tensor *vkd_mean(vkd_graph *g, vkd_tensor *x, int last_axis_only);
vkd_tensor *vkd_softmax(vkd_graph *g, vkd_tensor *x);  // over the last axis
// Layer norm over the last axis; w, b (n) or NULL.
vkd_tensor *vkd_layernorm(vkd_graph *g, vkd_tensor *x, vkd_tensor *w, vkd_tensor *b, float eps);
// mean((a - b)^2) -> (1)
vkd_tensor *vkd_mse(vkd_graph *g, vkd_tensor *a, vkd_tensor *b);
// A constant tensor recorded in the step.
vkd_tensor *vkd_full(vkd_graph *g, int ndim, const int64_t *shape, float value);
// A view with another shape (same numel); shares memory.
vkd_tensor *vkd_reshape(vkd_graph *g, vkd_tensor *x, int ndim, const int64_t *shape);
// dst (persistent) = src, recorded in the step.
int vkd_copy(vkd_graph *g, vkd_tensor *dst, vkd_tensor *src);

// ---------------------------------------------------------------- convolution ops (src/ops/conv2d.c)
// As PyTorch (dilation 1), NCHW. groups divides both channel counts;
// groups = cin = cout is a depthwise convolution.
// x (N, Cin, H, W), w (Cout, Cin/groups, kh, kw), bias (Cout) or NULL -> y (N, Cout, Ho, Wo),
// Ho = (H + 2*pad_h - kh)/stride + 1, Wo = (W + 2*pad_w - kw)/stride + 1.
vkd_tensor *vkd_conv2d(vkd_graph *g, vkd_tensor *x, vkd_tensor *w, vkd_tensor *bias, int stride, int pad_h, int pad_w,
                       int groups);
// conv2d(x, w, bias) + add, add (N, Cout) or (N, Cout, 1, 1) broadcast over the pixels (a UNet
// block's embedding): the add happens in the convolution's store, with the bits of a separate
// vkd_add after it, and saves that pass over y.
vkd_tensor *vkd_conv2d_add(vkd_graph *g, vkd_tensor *x, vkd_tensor *w, vkd_tensor *bias, vkd_tensor *add, int stride,
                           int pad_h, int pad_w, int groups);
// (conv2d(x, w, bias) + res) * scale, res shaped as the output: EDM's residual connection with
// its skip scale, added in the convolution's store with the bits of vkd_add_scaled after it.
vkd_tensor *vkd_conv2d_res(vkd_graph *g, vkd_tensor *x, vkd_tensor *w, vkd_tensor *bias, vkd_tensor *res, float scale,
                           int stride, int pad_h, int pad_w, int groups);
// conv2d(upsample2x(x), w, bias, stride 1, padding pad) [+ add]: x (N, Cin, H, W) is read through
// the nearest 2x upsampling inside the convolution, so the (N, Cin, 2H, 2W) tensor is never
// written; the values and gradients are those of vkd_upsample2x then vkd_conv2d_add, bit for bit.
vkd_tensor *vkd_conv2d_up(vkd_graph *g, vkd_tensor *x, vkd_tensor *w, vkd_tensor *bias, vkd_tensor *add, int pad);
// conv_transpose2d (output_padding 0): x (N, Cin, H, W), w (Cin, Cout/groups, kh, kw), bias (Cout) or NULL
// -> y (N, Cout, (H-1)*stride - 2*pad_h + kh, (W-1)*stride - 2*pad_w + kw).
vkd_tensor *vkd_conv_transpose2d(vkd_graph *g, vkd_tensor *x, vkd_tensor *w, vkd_tensor *bias, int stride, int pad_h,
                                 int pad_w, int groups);

// ---------------------------------------------------------------- normalization, resampling, embeddings (src/ops/nn_*.c)
// Group norm as torch.nn.GroupNorm: x (N, C, *spatial), C % groups == 0, w, b (C) or NULL;
// mean and biased variance per (n, group) over C/groups * spatial elements.
vkd_tensor *vkd_groupnorm(vkd_graph *g, vkd_tensor *x, vkd_tensor *w, vkd_tensor *b, int groups, float eps);
// silu(groupnorm(x)) in one pass forward and one backward (what every UNet block does).
vkd_tensor *vkd_groupnorm_silu(vkd_graph *g, vkd_tensor *x, vkd_tensor *w, vkd_tensor *b, int groups, float eps);
// 2x nearest-neighbour upsampling: x (N, C, H, W) -> (N, C, 2H, 2W) (EDM's [1,1] 'up').
vkd_tensor *vkd_upsample2x(vkd_graph *g, vkd_tensor *x);
// 2x2 average pooling, stride 2: x (N, C, H, W), H and W even -> (N, C, H/2, W/2) (EDM's [1,1] 'down').
vkd_tensor *vkd_avgpool2x(vkd_graph *g, vkd_tensor *x);
// Sinusoidal embedding of t (N) -> (N, dim) = [cos(t*f) | sin(t*f)] as EDM's PositionalEmbedding:
// f_i = (1/max_positions)^(i / (dim/2 - (endpoint ? 1 : 0))), i < dim/2. DiT's TimestepEmbedder is
// endpoint 0, max_positions 10000. dim even, <= 8192. No gradient: t must not require one.
// Error <= 3e-7 * |t*f| + 5e-7 (mostly the fp32 rounding of t*f) for |t*f| < 8192; same bits on every device.
vkd_tensor *vkd_timestep_embedding(vkd_graph *g, vkd_tensor *t, int dim, float max_positions, int endpoint);
// EDM's FourierEmbedding: t (N), freqs (dim/2) -> (N, dim) = [cos(2pi*t*f) | sin(2pi*t*f)].
// No gradient w.r.t. t or freqs (neither may require one).
vkd_tensor *vkd_fourier_embedding(vkd_graph *g, vkd_tensor *t, vkd_tensor *freqs);
// adaLN modulation of tokens x (N, T, D) by shift, scale (N, D) (either may be NULL, not both):
// y = x * (one + scale) + shift; one = 1 for DiT's modulate, 0 for a gate (y = gate * x).
// (Per-channel conditioning of (N, C, H, W) maps is vkd_add with a (N, C, 1, 1) tensor.)
vkd_tensor *vkd_modulate(vkd_graph *g, vkd_tensor *x, vkd_tensor *shift, vkd_tensor *scale, float one);
// Inverted dropout, 0 <= p < 1: y = x * (u_i >= p) / (1 - p) with u_i the uniform vkd_rand_uniform
// draws for element i under (seed, stream, step_t[0]) (step_t may be NULL: step 0). The backward
// regenerates the mask. p == 0 returns x itself.
vkd_tensor *vkd_dropout(vkd_graph *g, vkd_tensor *x, float p, uint64_t seed, uint32_t stream, vkd_tensor *step_t);

// ---------------------------------------------------------------- layout ops and attention (src/ops/layout.c, attention.c)
// y = x permuted: y.shape[i] = x.shape[perm[i]] (torch.permute + contiguous); ndim = x's.
vkd_tensor *vkd_permute(vkd_graph *g, vkd_tensor *x, int ndim, const int *perm);
// A contiguous copy of x[..., start:start+len, ...] along axis (negative counts from the end).
vkd_tensor *vkd_slice(vkd_graph *g, vkd_tensor *x, int axis, int64_t start, int64_t len);
// torch.cat([a, b], axis): same shapes except along axis (EDM's decoder skips along channels).
vkd_tensor *vkd_concat(vkd_graph *g, vkd_tensor *a, vkd_tensor *b, int axis);
// softmax(scale * q k^T) v with the softmax over keys in fp32: q (B, Tq, d), k (B, Tk, d),
// v (B, Tk, dv) token-major (DiT), B = batch*heads -> (B, Tq, dv). scale is typically 1/sqrt(d).
vkd_tensor *vkd_attention(vkd_graph *g, vkd_tensor *q, vkd_tensor *k, vkd_tensor *v, float scale);
// EDM UNetBlock attention from the qkv 1x1-conv output: qkv (N, 3C, H, W) is viewed as
// (N*heads, C/heads, 3, H*W) (q, k, v interleaved per channel); w = softmax over keys of
// q^T k / sqrt(C/heads); a = v w^T -> (N, C, H, W) (before proj).
vkd_tensor *vkd_attention_edm(vkd_graph *g, vkd_tensor *qkv, int heads);
// DiT (timm) Attention from the fused qkv linear output: qkv (N, T, 3D) reshaped (N, T, 3, heads, D/heads)
// and permuted (2, 0, 3, 1, 4); q scaled by (D/heads)^-0.5 -> out (N, T, D), heads concatenated as
// out.transpose(1, 2).reshape(N, T, D) (before proj).
vkd_tensor *vkd_attention_dit(vkd_graph *g, vkd_tensor *qkv, int heads);

// ---------------------------------------------------------------- pooling and resize ops (src/ops/pool.c)
// Forward only (no gradient flows through them: they serve the Inception feature
// extractor; an input that requires a gradient is refused while grad is enabled).
// NCHW, as PyTorch with ceil_mode False and 0 <= pad <= k/2:
// x (N, C, H, W) -> (N, C, (H + 2 pad - k)/stride + 1, (W + 2 pad - k)/stride + 1).
// Max pool: padded taps are ignored.
vkd_tensor *vkd_maxpool2d(vkd_graph *g, vkd_tensor *x, int k, int stride, int pad);
// Average pool: count_include_pad 1 divides by k*k, 0 by the taps inside the input.
vkd_tensor *vkd_avgpool2d(vkd_graph *g, vkd_tensor *x, int k, int stride, int pad, int count_include_pad);
// Mean over H*W: x (N, C, H, W) -> (N, C) (adaptive_avg_pool2d to 1x1, flattened).
vkd_tensor *vkd_global_avgpool(vkd_graph *g, vkd_tensor *x);
// Bilinear resize x (N, C, H, W) -> (N, C, out_h, out_w) (src/ops/resize.c). Source coordinate of
// output pixel d on an axis of sizes in -> out:
enum {
    VKD_RESIZE_HALF_PIXEL = 0,    // F.interpolate(bilinear, align_corners=False): max((d+0.5) in/out - 0.5, 0) (pytorch-fid)
    VKD_RESIZE_TF1 = 1,           // TF1 tf.image.resize_bilinear legacy: d in/out (TTUR, EDM, torch-fidelity)
    VKD_RESIZE_ALIGN_CORNERS = 2, // F.interpolate(bilinear, align_corners=True): d (in-1)/(out-1)
};
vkd_tensor *vkd_resize_bilinear(vkd_graph *g, vkd_tensor *x, int out_h, int out_w, int mode);

// ---------------------------------------------------------------- diffusion
// EDM preconditioning coefficients from sigma (N): out = {c_skip, c_out, c_in, c_noise}, each (N).
int vkd_edm_coefficients(vkd_graph *g, vkd_tensor *sigma, float sigma_data, vkd_tensor *out[4]);

// ---------------------------------------------------------------- random numbers
// Philox4x32-10 keyed by (seed, stream); the counter includes the step read on
// the device from step_t[0] (a VKD_HOST tensor, as uint32 bits) so that a
// replayed graph draws fresh numbers every step. step_t may be NULL (step 0).
vkd_tensor *vkd_rand_uniform(vkd_graph *g, int ndim, const int64_t *shape, uint64_t seed, uint32_t stream,
                             vkd_tensor *step_t);
vkd_tensor *vkd_rand_normal(vkd_graph *g, int ndim, const int64_t *shape, uint64_t seed, uint32_t stream,
                            vkd_tensor *step_t);

// ---------------------------------------------------------------- optimizers
typedef struct {
    float beta1, beta2, eps, weight_decay;
    int decoupled;  // 1: AdamW (decoupled weight decay); 0: Adam with L2 added to the gradient
    float grad_clip;     // > 0: scale gradients so their global norm is at most this
    int skip_nonfinite;  // 1: a NaN/inf anywhere in the gradients skips the whole update (NaN guard)
} vkd_adam_cfg;

typedef struct vkd_adam vkd_adam;
// Adam state (m, v) for the given VKD_PARAM tensors. The learning rate and the
// step counter t (1-based) are read on the device from hyper[0] (lr) and
// hyper[1] (t, as a float) of a VKD_HOST tensor of 2 floats owned by the optimizer.
vkd_adam *vkd_adam_new(vkd_ctx *ctx, vkd_tensor **params, int nparams, const vkd_adam_cfg *cfg);
void vkd_adam_free(vkd_adam *opt);
// Sets lr and advances t; call on the host before each run of a graph that has the step.
void vkd_adam_set_step(vkd_adam *opt, float lr, int64_t t);
// Records the update of every parameter and the zeroing of its gradient
// (preceded by the global gradient norm when clipping or the NaN guard is on).
int vkd_adam_record(vkd_graph *g, vkd_adam *opt);
// The same for the parameters i with skip[i] == 0 only (skip NULL: all): a rank's share of
// an optimizer sharded over ranks. The other gradients are zeroed and their parameters and
// moments left as they are; the norm for clipping and the NaN guard is still over all.
int vkd_adam_record_part(vkd_graph *g, vkd_adam *opt, const uint8_t *skip);
int vkd_adam_num(const vkd_adam *opt);
void vkd_adam_state(const vkd_adam *opt, int i, vkd_tensor **m, vkd_tensor **v);
// The global gradient norm of the last run (clipping / NaN guard only); NaN if it was not finite.
float vkd_adam_grad_norm(const vkd_adam *opt);
// ema = beta*ema + (1-beta)*p for each pair, recorded in the step.
int vkd_ema_record(vkd_graph *g, vkd_tensor **ema, vkd_tensor **params, int n, float beta);
// The same with beta read on the device from beta_t[0] (a VKD_HOST tensor the
// host updates between replays: a schedule such as EDM's EMA ramp-up).
int vkd_ema_record_t(vkd_graph *g, vkd_tensor **ema, vkd_tensor **params, int n, float beta, vkd_tensor *beta_t);
// EDM's EMA beta after `step` steps of `batch` samples: half-life halflife_kimg,
// capped at rampup_ratio x the images seen so far when rampup_ratio > 0.
float vkd_ema_beta(double halflife_kimg, double rampup_ratio, int64_t step, int batch);

// ---------------------------------------------------------------- Philox on the host
// Identical to the shader's: four 32-bit outputs for counter (c0..c3) and key (k0, k1).
void vkd_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);
// The values the device draws for element i of a tensor (see shaders/philox.glsl).
float vkd_philox_uniform(uint64_t seed, uint32_t stream, uint32_t step, uint64_t i);
float vkd_philox_normal(uint64_t seed, uint32_t stream, uint32_t step, uint64_t i);

#ifdef __cplusplus
}
#endif
#endif
