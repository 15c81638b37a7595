#ifndef VKDISTILL_INCEPTION_H
#define VKDISTILL_INCEPTION_H
// The FID Inception-v3: the 2015 TensorFlow graph as ported by pytorch-fid
// (fid_inception_v3: 1008 classes, no aux head; the A, C and first E blocks pool
// with a 3x3 average that does not count padding, Mixed_7c with a 3x3 max pool).
// 94 conv + BatchNorm + ReLU layers; the BatchNorms are folded into the
// convolutions at load time. Features only: the forward is recorded under
// no-grad and no gradient flows through it.
#include "vkdistill/vkdistill.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vkd_inception vkd_inception;

#define VKD_INCEPTION_DIM 2048      // pool3 features
#define VKD_INCEPTION_CLASSES 1008  // fc logits
#define VKD_INCEPTION_SIZE 299      // input resolution the network runs at

// seed >= 0: random He-normal folded weights (for benchmarks and tests);
// -1: zero weights, to be replaced by vkd_inception_load. NULL on failure (vkd_ctx_error).
vkd_inception *vkd_inception_create(vkd_ctx *ctx, int random_init_seed_or_minus1);
void vkd_inception_free(vkd_inception *net);
// Loads pytorch-fid's state dict converted by tools/convert_inception.py (F32/F16/BF16/F64):
// <layer>.conv.weight and <layer>.bn.{weight,bias,running_mean,running_var} for the 94 layers
// (Conv2d_1a_3x3, ..., Mixed_7c.branch_pool), fc.weight (1008, 2048), fc.bias. Every tensor must
// be present with its exact shape and nothing else may be (BatchNorm num_batches_tracked is
// ignored); the file is checked entirely before the network changes. Folds
// y = gamma (conv - mean) / sqrt(var + 0.001) + beta into the conv weights and a bias (in double).
int vkd_inception_load(vkd_inception *net, const char *path, char *err, size_t errlen);
// How images are resized to 299x299 when they are another size (vkd_resize_bilinear modes):
// VKD_RESIZE_HALF_PIXEL (the default: pytorch-fid's F.interpolate, align_corners=False) or
// VKD_RESIZE_TF1 (TTUR / EDM / torch-fidelity's TF1 resize_bilinear).
void vkd_inception_set_resize_mode(vkd_inception *net, int mode);

// images (N, 3, H, W) in [-1, 1] -> pool3 features (N, 2048); *logits_out (may be NULL) gets the
// fc logits (N, 1008). Images not 299x299 are resized first (bilinear, see set_resize_mode).
// pytorch-fid maps [0, 1] to [-1, 1] after its resize; the resize is affine-invariant, so resizing
// [-1, 1] images is the same. Recorded with grad disabled (restored afterwards).
vkd_tensor *vkd_inception_forward(vkd_graph *g, vkd_inception *net, vkd_tensor *images, vkd_tensor **logits_out);

// Features of n host images (n, c, h, w) in [-1, 1], c = 1 (replicated to 3 channels) or 3,
// run `batch` at a time (batch <= 0: a default; capped so that no activation exceeds the
// device's buffer range or allocation limit). One graph is compiled and replayed; a short last
// batch is padded. feats_out (n, 2048); logits_out (n, 1008) or NULL. 0 on success.
int vkd_inception_features(vkd_inception *net, const float *images, int64_t n, int c, int h, int w, int batch,
                           float *feats_out, float *logits_out, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
