// Shared by the dataset fuzz targets: options chosen by a flags byte, so the
// conversions after decoding (channels, padding, resizing, max_images) are
// fuzzed along with the parsers.
#ifndef VKD_FUZZ_DATASET_H
#define VKD_FUZZ_DATASET_H
#include "fuzz_common.h"
#include "vkdistill/data.h"

static vkd_dataset_opts fz_opts(uint8_t flags) {
    vkd_dataset_opts o = {0};
    if (flags & 1) o.channels = 3;
    if (flags & 2) o.channels = 1;
    if (flags & 4) o.pad_to = 32;
    else if (flags & 8) o.resolution = (flags & 16) ? 7 : 40;
    if (flags & 32) o.max_images = 2;
    return o;
}

// Opens source, touches every image and label, a minibatch, and frees it.
static void fz_open_dataset(const char *source, const char *split, uint8_t flags) {
    vkd_dataset_opts o = fz_opts(flags);
    char err[512] = "";
    vkd_dataset *d = vkd_dataset_open(source, split, &o, err, sizeof err);
    if (!d) {
        fz_check_err(err);
        return;
    }
    int c, h, w;
    vkd_dataset_shape(d, &c, &h, &w);
    int64_t n = vkd_dataset_count(d), per = (int64_t)c * h * w;
    volatile float acc = 0;  // every pixel is read (ASan checks the bounds)
    for (int64_t i = 0; i < n; i++) {
        const float *x = vkd_dataset_image(d, i);
        for (int64_t j = 0; j < per; j++) acc += x[j];
        int k = vkd_dataset_num_classes(d), y = vkd_dataset_label(d, i);
        if (k && (y < 0 || y >= k)) abort();  // a label outside the class count would index past one-hot rows
    }
    (void)acc;
    for (int k = 0; k < vkd_dataset_num_classes(d); k++) vkd_dataset_class_name(d, k);
    int k = vkd_dataset_num_classes(d);
    float *b = malloc((size_t)(3 * per + 1) * sizeof *b), *oh = malloc((size_t)(3 * k + 1) * sizeof *oh);
    int lab[3];
    vkd_dataset_batch(d, 1, 0, 3, 1, b, oh, lab);
    free(b), free(oh);
    vkd_dataset_free(d);
}
#endif
