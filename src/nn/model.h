#ifndef VKD_NN_MODEL_H
#define VKD_NN_MODEL_H
// Internal: the parameter store shared by the architectures, and their hooks.
#include "vkdistill/io.h"
#include "vkdistill/nn.h"

// How a tensor is initialized (EDM's weight_init modes, plus constants).
typedef enum {
    VKD_INIT_ZERO,
    VKD_INIT_ONE,
    VKD_INIT_XAVIER_UNIFORM,  // sqrt(6/(fan_in+fan_out)) * U(-1, 1) * gain
    VKD_INIT_KAIMING_NORMAL,  // sqrt(1/fan_in) * N(0, 1) * gain
    VKD_INIT_NORMAL,          // N(0, 1) * gain
    VKD_INIT_CUSTOM,          // filled by the architecture after creation
} vkd_init_mode;

typedef struct {
    char name[96];
    vkd_tensor *t;
    int is_param;  // buffers (resample filters, Fourier freqs, DiT pos_embed) are never trained
} vkd_model_entry;

typedef struct vkd_unet vkd_unet;
typedef struct vkd_dit vkd_dit;
typedef struct vkd_mlp vkd_mlp;
typedef struct vkd_classifier vkd_classifier;

struct vkd_model {
    vkd_ctx *ctx;
    char arch[16];
    char name[256];  // the config file (for error messages)
    char *json;
    int trainable;
    uint64_t seed;
    int n, cap;
    vkd_model_entry *e;
    float sigma_data;
    int64_t sample_shape[3];
    int sample_ndim;
    int label_dim;
    // training mode (dropout)
    int train;
    uint64_t train_seed;
    vkd_tensor *step_t;
    uint32_t dropout_stream;  // counts dropout layers while a graph is built
    vkd_unet *unet;
    vkd_dit *dit;
    vkd_mlp *mlp;
    vkd_classifier *clf;
    vkd_tensor *one;  // a persistent scalar 1.0
    vkd_model *view_of;  // a frozen view shares this model's tensors and architecture state
    char err[512];
};

// Registers a tensor under its PyTorch name and initializes it. Returns NULL
// (with m->err set) on failure. is_param 0: a buffer (frozen even when trainable).
vkd_tensor *vkd_model_add(vkd_model *m, const char *name, int ndim, const int64_t *shape, int is_param,
                          vkd_init_mode init, double fan_in, double fan_out, double gain);
// Named lookup that must succeed (architectures look their weights up while building).
vkd_tensor *vkd_model_get(vkd_model *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// Dropout when training, identity otherwise.
vkd_tensor *vkd_model_dropout(vkd_graph *g, vkd_model *m, vkd_tensor *x, float p);

// Architectures: parse the config (setting sample shape, label dim) and
// register tensors; build the raw network F (without preconditioning).
int vkd_unet_init(vkd_model *m, vkd_cfg *c);
// tap (may be NULL) gets the bottleneck: the activations after the middle
// blocks (dec.RxR_in1) at the lowest resolution; tap_only stops there (no
// decoder is built) and returns NULL.
vkd_tensor *vkd_unet_forward(vkd_graph *g, vkd_model *m, vkd_tensor *x, vkd_tensor *c_noise, vkd_tensor *labels,
                             vkd_tensor *augment, vkd_tensor **tap, int tap_only);
int vkd_unet_bottleneck_shape(const vkd_model *m, int64_t shape[3]);
void vkd_unet_free(vkd_unet *u);
int vkd_dit_init(vkd_model *m, vkd_cfg *c);
vkd_tensor *vkd_dit_forward(vkd_graph *g, vkd_model *m, vkd_tensor *x, vkd_tensor *c_noise, vkd_tensor *labels);
void vkd_dit_free(vkd_dit *d);
int vkd_mlp_init(vkd_model *m, vkd_cfg *c);
vkd_tensor *vkd_mlp_forward(vkd_graph *g, vkd_model *m, vkd_tensor *x, vkd_tensor *c_noise, vkd_tensor *labels);
void vkd_mlp_free(vkd_mlp *p);
int vkd_classifier_init(vkd_model *m, vkd_cfg *c);
void vkd_classifier_free(vkd_classifier *p);

// Buffers a network derives from its config (the UNet's resample filters) are
// saved with the weights but never read back into the computation: tensor t
// named name in the open file st must hold the values it was built with, else
// -1 and one line naming the tensor. 0 for tensors that are not such buffers.
int vkd_model_check_derived(vkd_st *st, const char *path, const char *name, vkd_tensor *t, char *err, size_t errlen);

#endif
