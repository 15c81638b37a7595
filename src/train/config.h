#ifndef VKD_TRAIN_CONFIG_H
#define VKD_TRAIN_CONFIG_H
// Helpers for the training configs' JSON parsers (teacher, distillation).
#include "vkdistill/io.h"
#include "vkdistill/train.h"

// A "dataset" object of a config into c (errors are left in d, reported by vkd_cfg_finish).
void vkd_dataset_cfg_parse(vkd_cfg *d, const char *config_path, vkd_dataset_cfg *c);
// The directory of a file path (for config-relative paths).
void vkd_dirname(const char *path, char *out, size_t n);
// A path given in a config: absolute, or relative to the config's folder, else to the working directory.
void vkd_resolve_path(const char *config_path, const char *p, char *out, size_t n);

#endif
