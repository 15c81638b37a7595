#ifndef VKDISTILL_NN_H
#define VKDISTILL_NN_H
// Models built from ops: EDM's SongUNet (DDPM++ / NCSN++), DiT, and a small
// residual MLP, each wrapped in EDM preconditioning, configured by JSON
// (models/*.json) and loaded from / saved to safetensors with the tensor names
// of their PyTorch sources.
#include "vkdistill/vkdistill.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vkd_model vkd_model;

// A model from a JSON config file (or text). trainable: parameters get
// gradient buffers (VKD_PARAM); otherwise they are frozen (a teacher).
// Parameters start with the architecture's own initialization (seeded).
vkd_model *vkd_model_create(vkd_ctx *ctx, const char *config_path, int trainable, uint64_t seed, char *err,
                            size_t errlen);
vkd_model *vkd_model_create_json(vkd_ctx *ctx, const char *json, const char *name, int trainable, uint64_t seed,
                                 char *err, size_t errlen);
void vkd_model_free(vkd_model *m);
// The same network with frozen aliases of its tensors (shared memory): used as
// a fixed function in one training phase while another phase trains it. Free
// it before the model it views.
vkd_model *vkd_model_frozen_view(vkd_model *m);

// Loads every parameter and buffer by name; missing, extra and wrongly shaped
// tensors are reported by name.
int vkd_model_load(vkd_model *m, const char *safetensors_path, char *err, size_t errlen);
// The element-wise mean of n weight files (checkpoint averaging, src/nn/model_mean.c).
// prefix selects the model's tensors inside a checkpoint ("ema/", "generator/"; NULL or
// "" for plain weight files, which must then hold exactly the model's tensors). Every
// file is checked before anything is uploaded.
int vkd_model_load_mean(vkd_model *m, const char *const *paths, int n, const char *prefix, char *err, size_t errlen);
// Writes parameters and buffers ("F32", "F16" or "BF16"), atomically.
int vkd_model_save(vkd_model *m, const char *path, const char *dtype, char *err, size_t errlen);
// Copies every parameter of src into dst (same config).
int vkd_model_copy_weights(vkd_model *dst, const vkd_model *src, char *err, size_t errlen);

int vkd_model_num_tensors(const vkd_model *m);
vkd_tensor *vkd_model_tensor(const vkd_model *m, int i);    // parameters and buffers, in registration order
int vkd_model_tensor_is_param(const vkd_model *m, int i);  // 0 for buffers (never trained)
vkd_tensor *vkd_model_find(const vkd_model *m, const char *name);
int64_t vkd_model_param_count(const vkd_model *m);
// Shape of one sample: (C, H, W) for images (ndim 3), (dim) for the MLP (ndim 1).
int vkd_model_sample_shape(const vkd_model *m, int64_t shape[3]);
int vkd_model_label_dim(const vkd_model *m);  // 0: unconditional
const char *vkd_model_arch(const vkd_model *m);
const char *vkd_model_config_json(const vkd_model *m);  // the config text it was made from

// Training mode: dropout on, with masks drawn from Philox (seed, stream per
// layer, step from step_t[0]). Off by default (evaluation).
void vkd_model_set_train(vkd_model *m, int on, uint64_t seed, vkd_tensor *step_t);

// D(x; sigma, labels) with EDM preconditioning, appended to g.
// x (N, C, H, W) or (N, dim); sigma (N); labels (N, label_dim) one-hot rows
// (all zero = the null label) or NULL for unconditional models.
vkd_tensor *vkd_model_denoise(vkd_graph *g, vkd_model *m, vkd_tensor *x, vkd_tensor *sigma, vkd_tensor *labels);
// The same with EDM's augmentation labels (N, augment_dim) for UNets trained
// with its augment pipe; NULL (as at sampling) leaves map_augment out.
vkd_tensor *vkd_model_denoise_aug(vkd_graph *g, vkd_model *m, vkd_tensor *x, vkd_tensor *sigma, vkd_tensor *labels,
                                  vkd_tensor *augment);

// The bottleneck of a UNet (DMD2's discriminator features): the activations
// after its middle blocks (dec.RxR_in1) at the lowest resolution, (C, R, R).
// Returns 3, or -1 for architectures without one (DiT, MLP, classifier).
int vkd_model_bottleneck_shape(const vkd_model *m, int64_t shape[3]);
// vkd_model_denoise that also hands out the bottleneck (N, C, R, R) of the same forward.
vkd_tensor *vkd_model_denoise_bottleneck(vkd_graph *g, vkd_model *m, vkd_tensor *x, vkd_tensor *sigma,
                                         vkd_tensor *labels, vkd_tensor **bottleneck);
// Only the bottleneck: the decoder is not built (about half of the network's work).
vkd_tensor *vkd_model_bottleneck(vkd_graph *g, vkd_model *m, vkd_tensor *x, vkd_tensor *sigma, vkd_tensor *labels);

// ---------------------------------------------------------------- image classifier (src/nn/classifier.c)
// arch "classifier" (models/fmnist_classifier.json): conv3x3-ReLU-conv3x3-ReLU-avgpool2x per width,
// then fc (features) + ReLU, then head (num_classes). Its penultimate features are the space of
// vkdistill's FD (fid --features fmnist). x (N, C, R, R) in [-1, 1] -> logits (N, num_classes);
// *features_out (may be NULL) gets the ReLU'd penultimate layer (N, features).
vkd_tensor *vkd_classifier_forward(vkd_graph *g, vkd_model *m, vkd_tensor *x, vkd_tensor **features_out);
// num_classes and the feature dimension of a classifier model; -1 if m is another architecture.
int vkd_classifier_dims(const vkd_model *m, int *num_classes, int *features);
// Features (n, features) and logits (n, num_classes) of n host images (n, C, R, R), run `batch`
// at a time under no-grad (a short last batch is padded); either output may be NULL. 0 on success.
int vkd_classifier_features(vkd_model *m, const float *images, int64_t n, int batch, float *feats_out,
                            float *logits_out, char *err, size_t errlen);
// Mean cross-entropy of logits (N, K) against target distributions (N, K) (one-hot rows):
// -mean_n sum_k y log softmax(logits) -> (1) (src/ops/loss.c).
vkd_tensor *vkd_cross_entropy(vkd_graph *g, vkd_tensor *logits, vkd_tensor *onehot);

#ifdef __cplusplus
}
#endif
#endif
