#ifndef VKDISTILL_CHECKPOINT_H
#define VKDISTILL_CHECKPOINT_H
// Checkpoints: a named set of persistent tensors (network, EMA, optimizer
// state) plus string metadata (step, configs), saved as one safetensors file
// written atomically, and restored exactly.
#include "vkdistill/nn.h"

typedef struct vkd_ckpt vkd_ckpt;

vkd_ckpt *vkd_ckpt_new(void);
void vkd_ckpt_free(vkd_ckpt *c);
// Adds a tensor under prefix + name (the tensor stays owned by the caller).
void vkd_ckpt_add(vkd_ckpt *c, const char *prefix, const char *name, vkd_tensor *t);
// Adds every tensor of a model under prefix + its PyTorch name.
void vkd_ckpt_add_model(vkd_ckpt *c, const char *prefix, vkd_model *m);
void vkd_ckpt_set_meta(vkd_ckpt *c, const char *key, const char *value);
int vkd_ckpt_save(vkd_ckpt *c, const char *path, char *err, size_t errlen);
// Loads every registered tensor (all must be present with their shapes; extra
// tensors are an error). Before anything is uploaded, each (key, expected)
// pair in `must_match` is compared with the file's metadata, so a checkpoint
// of another config is refused by name and nothing is changed.
int vkd_ckpt_load(vkd_ckpt *c, const char *path, const char *const *must_match, int nmatch, char *err, size_t errlen);
// The checks vkd_ckpt_load makes before it changes anything, host only (no
// device): the file is valid safetensors, each must_match pair agrees, the n
// tensors names[i] are present with ndims[i] dims of shapes[i*VKD_MAX_DIMS..],
// no other tensor is there, and the "step" / "skipped" metadata are
// non-negative integers. 0 when it would load.
int vkd_ckpt_check(const char *path, int n, const char *const *names, const int *ndims, const int64_t *shapes,
                   const char *const *must_match, int nmatch, char *err, size_t errlen);
// Metadata of the last loaded file (NULL if absent).
const char *vkd_ckpt_meta(const vkd_ckpt *c, const char *key);

#endif
