#ifndef VKDISTILL_DATA_H
#define VKDISTILL_DATA_H
// vkdistill datasets and image outputs: real data for teacher training
// (Fashion-MNIST/MNIST IDX, CIFAR-10 binary, folders of PNG/JPEG) decoded into
// memory, deterministic minibatches, and PNG sample grids. Host-only; no Vulkan.
//
// Errors: functions return NULL or non-zero and write ONE line into err that
// names the file and what is wrong, as in io.h.
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// ---------------------------------------------------------------- datasets
// Every image decoded into memory as float (N, C, H, W) in [-1, 1] (u8 v maps to
// v/127.5 - 1, so 0 -> -1 and 255 -> 1 exactly), with an int label per image.
typedef struct vkd_dataset vkd_dataset;

typedef struct {
    // Target H = W. 0 keeps the source size (all images must then share it).
    // Resizing is separable per axis: area averaging when shrinking, bilinear
    // (half-pixel centres, edges clamped) when enlarging. A non-square source
    // is centre-cropped to a square first, so nothing is stretched.
    int resolution;
    // Target channels, 1 or 3; 0 keeps the source's (an image folder: 1 when
    // every image is gray, else 3). RGB -> gray is ITU-R 601 luma
    // 0.299 R + 0.587 G + 0.114 B; gray -> RGB replicates. Alpha is dropped.
    int channels;
    // If > 0, images are zero-padded centred to pad_to x pad_to (with -1, i.e.
    // black) instead of resized: 28x28 Fashion-MNIST -> 32x32 keeps every pixel
    // as it is. Sources larger than pad_to are an error; so is a resolution
    // other than 0 or pad_to.
    int pad_to;
    int64_t max_images;  // the first max_images images of the split; 0 = all
} vkd_dataset_opts;

// source is detected automatically:
//  - a directory with Fashion-MNIST/MNIST IDX files: {train,t10k}-images-idx3-ubyte[.gz]
//    and {train,t10k}-labels-idx1-ubyte[.gz] (gzip or plain; "test-" is accepted for t10k);
//  - a CIFAR-10 binary directory (data_batch_1..5.bin, test_batch.bin, optional
//    batches.meta.txt; or its parent holding cifar-10-batches-bin/);
//  - a folder of PNG/JPEG images, searched recursively in sorted order; if the
//    images are in first-level subfolders, each subfolder is a class (labels by
//    sorted folder name), else every label is 0 and num_classes is 0;
//  - a single IDX image file (labels from the sibling *-labels-idx1-ubyte[.gz] if
//    there is one, else label 0 and num_classes 0).
// split: "train" (or NULL) or "test"; image folders and single files have no
// test split. opts may be NULL (keep everything as it is).
vkd_dataset *vkd_dataset_open(const char *source, const char *split, const vkd_dataset_opts *opts, char *err,
                              size_t errlen);
void vkd_dataset_free(vkd_dataset *d);
int64_t vkd_dataset_count(const vkd_dataset *d);
int vkd_dataset_num_classes(const vkd_dataset *d);  // 0 when unlabelled
// The class names when the source has them (CIFAR-10 batches.meta.txt, image
// subfolders), else NULL. 0 <= k < num_classes.
const char *vkd_dataset_class_name(const vkd_dataset *d, int k);
void vkd_dataset_shape(const vkd_dataset *d, int *c, int *h, int *w);
const char *vkd_dataset_kind(const vkd_dataset *d);               // "idx", "cifar10" or "folder"
const float *vkd_dataset_image(const vkd_dataset *d, int64_t i);  // (C, H, W) in [-1, 1]
int vkd_dataset_label(const vkd_dataset *d, int64_t i);

// A deterministic minibatch for (seed, step). Sample k = step*n + j of the
// stream is index perm_e(k mod N) of epoch e = k / N, where perm_e is a
// pseudo-random permutation of [0, N) keyed by (seed, e) (a 4-round Feistel
// network on Philox with cycle walking, computed per index, so no state is kept
// and a resumed run draws exactly what an uninterrupted one would). Every epoch
// visits every image once. flip: mirror each image horizontally with
// probability 1/2 (a Philox draw per (seed, step, j)). out is (n, C, H, W);
// onehot, if not NULL and num_classes > 0, is (n, num_classes); labels, if not
// NULL, gets n ints.
void vkd_dataset_batch(const vkd_dataset *d, uint64_t seed, int64_t step, int n, int flip, float *out, float *onehot,
                       int *labels);
// Rows [j0, j0 + rows) of that batch of n (one rank's slice under data parallelism).
void vkd_dataset_batch_rows(const vkd_dataset *d, uint64_t seed, int64_t step, int n, int j0, int rows, int flip,
                            float *out, float *onehot, int *labels);
// The dataset index of sample j of batch (seed, step), as vkd_dataset_batch draws it.
int64_t vkd_dataset_batch_index(const vkd_dataset *d, uint64_t seed, int64_t step, int n, int j);

// ---------------------------------------------------------------- images
// Float pixels in [-1, 1] become u8 as EDM does: clip(x*127.5 + 128, 0, 255),
// truncated. Files are written atomically (vkd_afile): PATH.tmp, then rename.
//
// A grid of n images x (N, C, H, W), C = 1 (gray PNG) or 3 (RGB PNG), ncols
// columns (<= 0: ceil(sqrt(n))), rows = ceil(n / ncols), with pad black pixels
// around and between the images (width ncols*(w+pad) + pad), then enlarged by
// vkd_png_grid_scale (nearest neighbour, an integer factor), so a grid of
// 16x16 or 28x28 samples is readable on a screen; the raw images belong in .npz.
#define VKD_PNG_GRID_MIN_SIDE 64    // images are enlarged to at least this many pixels a side
#define VKD_PNG_GRID_MAX_SIDE 4096  // unless the grid would exceed this
// The factor: ceil(64 / max(h, w)), at least 1, lowered until the grid fits 4096.
int vkd_png_grid_scale(int h, int w, int n, int ncols, int pad);
int vkd_write_png_grid(const char *path, const float *x, int n, int c, int h, int w, int ncols, int pad, char *err,
                       size_t errlen);
// One (C, H, W) image, at its own size.
int vkd_write_png(const char *path, const float *chw, int c, int h, int w, char *err, size_t errlen);
// A 2-D scatter plot for toy data: points a (na, 2) in blue and b (nb, 2) in
// orange (drawn over a) on a white size x size canvas spanning [-lim, lim]^2,
// y up, with a frame, the axes through 0 and a tick at every integer (when
// lim <= 20). Points outside the square are not drawn.
int vkd_write_scatter_png(const char *path, const float *a, int64_t na, const float *b, int64_t nb, float lim, int size,
                          char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
