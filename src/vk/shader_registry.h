#ifndef VKD_SHADER_REGISTRY_H
#define VKD_SHADER_REGISTRY_H
// SPIR-V compiled from shaders/*.comp at build time and embedded in the binary.
#include <stddef.h>
#include <stdint.h>

typedef struct vkd_shader_blob {
    const char *name;
    const uint32_t *code;
    size_t size;  // bytes
} vkd_shader_blob;

extern const vkd_shader_blob vkd_shader_blobs[];  // terminated by {NULL, NULL, 0}

#endif
