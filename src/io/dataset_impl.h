#ifndef VKD_IO_DATASET_IMPL_H
#define VKD_IO_DATASET_IMPL_H
// What the dataset readers (idx.c, cifar.c, imagefolder.c) share with
// dataset.c: the dataset itself, and one function that converts a decoded u8
// image to the stored shape, so every format gets the same channel conversion,
// padding and resizing.
#include <stdint.h>

#include "vkdistill/data.h"

struct vkd_dataset {
    const char *kind;  // "idx", "cifar10", "folder"
    vkd_dataset_opts opts;
    int c, h, w;       // the stored shape; 0 until the first image (or vkd_ds_set_shape) fixes it
    int src_h, src_w;  // the source size the first image had (for "all images must share it")
    int64_t n, cap;    // images stored, room for
    float *x;          // cap * c*h*w
    int *y;            // cap
    int num_classes;
    char **class_names;  // num_classes strings, or NULL
};

// "PATH: message", on one line (control characters become '?').
void vkd_ds_fail(char *err, size_t errlen, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

// Refuses an image shape no dataset may hold (channels, sides, pixel count).
int vkd_ds_check_size(int c, int h, int w, const char *path, char *err, size_t errlen);
// Fixes the stored shape for sources of c channels (1..4; 2 and 4 carry alpha,
// which is dropped) and h x w pixels, applying the options. Checks that padding
// is possible. path names the source in errors.
int vkd_ds_set_shape(vkd_dataset *d, int c, int h, int w, const char *path, char *err, size_t errlen);
// Allocates room for n images (after vkd_ds_set_shape).
int vkd_ds_reserve(vkd_dataset *d, int64_t n, const char *path, char *err, size_t errlen);
// Converts one image (u8, c channels, h x w; planar: CHW, else interleaved HWC)
// into the next slot, with its label. path names the image in errors.
int vkd_ds_add(vkd_dataset *d, const uint8_t *px, int c, int h, int w, int planar, int label, const char *path,
               char *err, size_t errlen);
// How many of n source images are kept (opts.max_images).
int64_t vkd_ds_limit(const vkd_dataset *d, int64_t n);

// The readers. single: source is one IDX image file rather than a directory.
int vkd_ds_is_idx_dir(const char *dir);
int vkd_ds_is_idx_file(const char *path);
int vkd_ds_load_idx(vkd_dataset *d, const char *source, const char *split, int single, char *err, size_t errlen);
// The directory holding the CIFAR-10 batches (dir or dir/cifar-10-batches-bin),
// malloc'd, or NULL if there is none.
char *vkd_ds_cifar_dir(const char *dir);
int vkd_ds_load_cifar(vkd_dataset *d, const char *dir, const char *split, char *err, size_t errlen);
// Returns 1 when the folder holds no image at all (so the caller can say what
// the source is not), 0 on success, -1 on error.
int vkd_ds_load_folder(vkd_dataset *d, const char *dir, char *err, size_t errlen);

#endif
