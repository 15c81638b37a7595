// Datasets in memory: source detection, the conversion every reader shares
// (channels, padding, resizing, u8 -> [-1, 1]), accessors and deterministic
// minibatches. The format readers are idx.c, cifar.c and imagefolder.c.
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/dataset_impl.h"
#include "vkdistill/vkdistill.h"

// Limits on what a dataset may hold: a larger source image is surely a mistake
// (and is converted through a float copy of 12 bytes per pixel, which would
// exhaust memory before anything useful happens); a stored side above
// DS_MAX_STORED is no diffusion training this tool can run.
#define DS_MAX_SIDE 16384
#define DS_MAX_PIXELS (4096 * 4096)
#define DS_MAX_STORED 4096

void vkd_ds_fail(char *err, size_t errlen, const char *path, const char *fmt, ...) {
    if (!err || !errlen) return;
    int k = snprintf(err, errlen, "%s: ", path);
    if (k >= 0 && (size_t)k < errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err + k, errlen - (size_t)k, fmt, ap);
        va_end(ap);
    }
    for (char *p = err; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
}

int64_t vkd_ds_limit(const vkd_dataset *d, int64_t n) {
    return d->opts.max_images > 0 && d->opts.max_images < n ? d->opts.max_images : n;
}

int vkd_ds_check_size(int c, int h, int w, const char *path, char *err, size_t errlen) {
    if (c < 1 || c > 4 || h < 1 || w < 1 || h > DS_MAX_SIDE || w > DS_MAX_SIDE) {
        vkd_ds_fail(err, errlen, path, "unsupported image shape: %d channels, %dx%d", c, w, h);
        return -1;
    }
    if ((int64_t)h * w > DS_MAX_PIXELS) {
        vkd_ds_fail(err, errlen, path, "%dx%d image: more than the %d pixels an image may have", w, h, DS_MAX_PIXELS);
        return -1;
    }
    return 0;
}

int vkd_ds_set_shape(vkd_dataset *d, int c, int h, int w, const char *path, char *err, size_t errlen) {
    if (vkd_ds_check_size(c, h, w, path, err, errlen)) return -1;
    const vkd_dataset_opts *o = &d->opts;
    d->c = o->channels ? o->channels : (c >= 3 ? 3 : 1);
    d->src_h = h, d->src_w = w;
    if (o->pad_to > 0) {
        d->h = d->w = o->pad_to;
    } else if (o->resolution > 0) {
        d->h = d->w = o->resolution;
    } else {
        d->h = h, d->w = w;
    }
    return 0;
}

int vkd_ds_reserve(vkd_dataset *d, int64_t n, const char *path, char *err, size_t errlen) {
    size_t per = (size_t)d->c * (size_t)d->h * (size_t)d->w;
    if (n < 1) n = 1;
    d->x = malloc((size_t)n * per * sizeof *d->x);
    d->y = malloc((size_t)n * sizeof *d->y);
    if (!d->x || !d->y) {
        vkd_ds_fail(err, errlen, path, "out of memory for %lld images of %dx%dx%d floats", (long long)n, d->c, d->h,
                    d->w);
        return -1;
    }
    d->cap = n;
    return 0;
}

// Resampling along one axis as a sparse matrix: output j = sum of taps
// w[k] * in[idx[k]] for k in [start[j], start[j+1]).
typedef struct {
    int *start, *idx;
    float *wt;
} resampler;

static void rs_free(resampler *r) { free(r->start), free(r->idx), free(r->wt); }

// Area averaging when shrinking (each output pixel is the mean of the source
// area it covers, so no aliasing), bilinear with half-pixel centres when
// enlarging, identity otherwise.
static int rs_make(resampler *r, int src, int dst) {
    int maxtaps = src > dst ? src / dst + 2 : 2;
    r->start = malloc((size_t)(dst + 1) * sizeof *r->start);
    r->idx = malloc((size_t)dst * (size_t)maxtaps * sizeof *r->idx);
    r->wt = malloc((size_t)dst * (size_t)maxtaps * sizeof *r->wt);
    if (!r->start || !r->idx || !r->wt) return rs_free(r), -1;
    int k = 0;
    for (int j = 0; j < dst; j++) {
        r->start[j] = k;
        if (src == dst) {
            r->idx[k] = j, r->wt[k++] = 1;
        } else if (src > dst) {
            double scale = (double)src / dst, a = j * scale, b = (j + 1) * scale;
            for (int i = (int)floor(a); i < src && i < b; i++) {
                double ov = fmin(b, i + 1.0) - fmax(a, (double)i);
                if (ov > 1e-12) r->idx[k] = i, r->wt[k++] = (float)(ov / scale);
            }
        } else {
            double x = (j + 0.5) * src / dst - 0.5;
            if (x < 0) x = 0;
            if (x > src - 1) x = src - 1;
            int i0 = (int)floor(x), i1 = i0 + 1 < src ? i0 + 1 : src - 1;
            float f = (float)(x - i0);
            r->idx[k] = i0, r->wt[k++] = 1 - f;
            r->idx[k] = i1, r->wt[k++] = f;
        }
    }
    r->start[dst] = k;
    return 0;
}

// u8 pixels -> floats in [0, 255], planar, with the target channel count.
static void to_planar(const uint8_t *px, int sc, int h, int w, int planar, int tc, float *out) {
    size_t hw = (size_t)h * w;
    int colour = sc >= 3;  // 2 and 4 are gray and RGB with alpha
    for (size_t p = 0; p < hw; p++) {
        float v[3];
        for (int ch = 0; ch < (colour ? 3 : 1); ch++) v[ch] = planar ? px[ch * hw + p] : px[p * (size_t)sc + ch];
        if (!colour) v[1] = v[2] = v[0];
        if (tc == 1) {
            // ITU-R 601 luma, in double so white stays exactly 255.
            out[p] = colour ? (float)(0.299 * v[0] + 0.587 * v[1] + 0.114 * v[2]) : v[0];
        } else {
            for (int ch = 0; ch < 3; ch++) out[ch * hw + p] = v[ch];
        }
    }
}

int vkd_ds_add(vkd_dataset *d, const uint8_t *px, int c, int h, int w, int planar, int label, const char *path,
               char *err, size_t errlen) {
    if (d->n >= d->cap) {
        vkd_ds_fail(err, errlen, path, "internal error: more images than reserved");
        return -1;
    }
    if (vkd_ds_check_size(c, h, w, path, err, errlen)) return -1;
    const vkd_dataset_opts *o = &d->opts;
    if (o->pad_to > 0 && (h > o->pad_to || w > o->pad_to)) {
        vkd_ds_fail(err, errlen, path, "%dx%d is larger than pad_to %d", w, h, o->pad_to);
        return -1;
    }
    if (o->pad_to <= 0 && o->resolution <= 0 && (h != d->src_h || w != d->src_w)) {
        vkd_ds_fail(err, errlen, path, "%dx%d differs from the other images' %dx%d (set a resolution to resize)", w, h,
                    d->src_w, d->src_h);
        return -1;
    }
    int C = d->c, H = d->h, W = d->w;
    size_t per = (size_t)C * H * W;
    float *dst = d->x + (size_t)d->n * per;
    float *src = malloc((size_t)C * h * w * sizeof *src);
    if (!src) {
        vkd_ds_fail(err, errlen, path, "out of memory");
        return -1;
    }
    to_planar(px, c, h, w, planar, C, src);

    if (o->pad_to > 0) {
        // Centred; odd leftovers go to the bottom/right.
        int y0 = (H - h) / 2, x0 = (W - w) / 2;
        for (size_t i = 0; i < per; i++) dst[i] = 0;
        for (int ch = 0; ch < C; ch++)
            for (int y = 0; y < h; y++)
                memcpy(dst + ((size_t)ch * H + y0 + y) * W + x0, src + ((size_t)ch * h + y) * w,
                       (size_t)w * sizeof *dst);
    } else if (h == H && w == W) {
        memcpy(dst, src, per * sizeof *dst);
    } else {
        // Centre-crop to a square, then resample rows, then columns.
        int s = h < w ? h : w, cy = (h - s) / 2, cx = (w - s) / 2;
        resampler rx = {0}, ry = {0};
        float *tmp = malloc((size_t)C * s * W * sizeof *tmp);
        if (!tmp || rs_make(&rx, s, W) || rs_make(&ry, s, H)) {
            free(tmp), free(src), rs_free(&rx), rs_free(&ry);
            vkd_ds_fail(err, errlen, path, "out of memory");
            return -1;
        }
        for (int ch = 0; ch < C; ch++)
            for (int y = 0; y < s; y++) {
                const float *row = src + ((size_t)ch * h + cy + y) * w + cx;
                for (int j = 0; j < W; j++) {
                    float acc = 0;
                    for (int k = rx.start[j]; k < rx.start[j + 1]; k++) acc += rx.wt[k] * row[rx.idx[k]];
                    tmp[((size_t)ch * s + y) * W + j] = acc;
                }
            }
        for (int ch = 0; ch < C; ch++)
            for (int i = 0; i < H; i++) {
                float *out = dst + ((size_t)ch * H + i) * W;
                for (int j = 0; j < W; j++) out[j] = 0;
                for (int k = ry.start[i]; k < ry.start[i + 1]; k++) {
                    const float *in = tmp + ((size_t)ch * s + ry.idx[k]) * W;
                    for (int j = 0; j < W; j++) out[j] += ry.wt[k] * in[j];
                }
            }
        free(tmp), rs_free(&rx), rs_free(&ry);
    }
    free(src);
    // [0, 255] -> [-1, 1]: 0 -> -1 and 255 -> 1 exactly (255 / 127.5 is 2).
    for (size_t i = 0; i < per; i++) {
        float v = dst[i] / 127.5f - 1.0f;
        dst[i] = v < -1 ? -1 : v > 1 ? 1 : v;
    }
    d->y[d->n++] = label;
    return 0;
}

void vkd_dataset_free(vkd_dataset *d) {
    if (!d) return;
    if (d->class_names)
        for (int k = 0; k < d->num_classes; k++) free(d->class_names[k]);
    free(d->class_names), free(d->x), free(d->y), free(d);
}

static int check_opts(const vkd_dataset_opts *o, const char *source, char *err, size_t errlen) {
    if (o->resolution < 0 || o->resolution > DS_MAX_STORED) {
        vkd_ds_fail(err, errlen, source, "resolution %d: expected 0 (keep) to %d", o->resolution, DS_MAX_STORED);
        return -1;
    }
    if (o->channels != 0 && o->channels != 1 && o->channels != 3) {
        vkd_ds_fail(err, errlen, source, "channels %d: expected 0 (keep), 1 or 3", o->channels);
        return -1;
    }
    if (o->pad_to < 0 || o->pad_to > DS_MAX_STORED) {
        vkd_ds_fail(err, errlen, source, "pad_to %d: expected 0 (no padding) to %d", o->pad_to, DS_MAX_STORED);
        return -1;
    }
    if (o->pad_to > 0 && o->resolution > 0 && o->resolution != o->pad_to) {
        vkd_ds_fail(err, errlen, source, "resolution %d and pad_to %d conflict (padding replaces resizing)",
                    o->resolution, o->pad_to);
        return -1;
    }
    if (o->max_images < 0) {
        vkd_ds_fail(err, errlen, source, "max_images %lld: expected 0 (all) or more", (long long)o->max_images);
        return -1;
    }
    return 0;
}

vkd_dataset *vkd_dataset_open(const char *source, const char *split, const vkd_dataset_opts *opts, char *err,
                              size_t errlen) {
    if (err && errlen) err[0] = 0;
    if (!source || !*source) {
        vkd_ds_fail(err, errlen, "dataset", "no source given");
        return NULL;
    }
    vkd_dataset_opts o = {0};
    if (opts) o = *opts;
    if (check_opts(&o, source, err, errlen)) return NULL;
    if (!split) split = "train";
    if (strcmp(split, "train") != 0 && strcmp(split, "test") != 0) {
        vkd_ds_fail(err, errlen, source, "split '%s': expected 'train' or 'test'", split);
        return NULL;
    }
    struct stat sb;
    if (stat(source, &sb) != 0) {
        vkd_ds_fail(err, errlen, source, "cannot open: no such file or directory");
        return NULL;
    }
    vkd_dataset *d = calloc(1, sizeof *d);
    if (!d) {
        vkd_ds_fail(err, errlen, source, "out of memory");
        return NULL;
    }
    d->opts = o;
    int rc;
    char *cdir = NULL;
    if (S_ISDIR(sb.st_mode)) {
        if (vkd_ds_is_idx_dir(source)) {
            d->kind = "idx";
            rc = vkd_ds_load_idx(d, source, split, 0, err, errlen);
        } else if ((cdir = vkd_ds_cifar_dir(source))) {
            d->kind = "cifar10";
            rc = vkd_ds_load_cifar(d, cdir, split, err, errlen);
        } else {
            d->kind = "folder";
            rc = vkd_ds_load_folder(d, source, err, errlen);
            if (rc == 0 && strcmp(split, "test") == 0) {
                vkd_ds_fail(err, errlen, source,
                            "an image folder has no 'test' split (point to the test folder itself)");
                rc = -1;
            }
            if (rc == 1) {
                vkd_ds_fail(err, errlen, source,
                            "not a Fashion-MNIST/MNIST, CIFAR-10 or image folder (no IDX files, no CIFAR-10 batches, "
                            "no .png/.jpg images)");
                rc = -1;
            }
        }
    } else if (vkd_ds_is_idx_file(source)) {
        d->kind = "idx";
        rc = strcmp(split, "train") == 0 ? vkd_ds_load_idx(d, source, split, 1, err, errlen) : -1;
        if (rc && strcmp(split, "train") != 0)
            vkd_ds_fail(err, errlen, source, "a single IDX file has no 'test' split (point to the test file itself)");
    } else {
        vkd_ds_fail(err, errlen, source, "not a Fashion-MNIST/MNIST, CIFAR-10 or image folder (nor an IDX image file)");
        rc = -1;
    }
    free(cdir);
    if (rc) {
        vkd_dataset_free(d);
        return NULL;
    }
    return d;
}

int64_t vkd_dataset_count(const vkd_dataset *d) { return d->n; }
int vkd_dataset_num_classes(const vkd_dataset *d) { return d->num_classes; }
const char *vkd_dataset_kind(const vkd_dataset *d) { return d->kind; }

const char *vkd_dataset_class_name(const vkd_dataset *d, int k) {
    return d->class_names && k >= 0 && k < d->num_classes ? d->class_names[k] : NULL;
}

void vkd_dataset_shape(const vkd_dataset *d, int *c, int *h, int *w) {
    if (c) *c = d->c;
    if (h) *h = d->h;
    if (w) *w = d->w;
}

const float *vkd_dataset_image(const vkd_dataset *d, int64_t i) {
    if (i < 0 || i >= d->n) return NULL;
    return d->x + (size_t)i * d->c * d->h * d->w;
}

int vkd_dataset_label(const vkd_dataset *d, int64_t i) { return i >= 0 && i < d->n ? d->y[i] : -1; }

// ---------------------------------------------------------------- minibatches
// Tags that keep the permutation's and the flips' Philox counters apart.
#define TAG_PERM 0x5045524du  // "PERM"
#define TAG_FLIP 0x464c4950u  // "FLIP"

static uint32_t philox32(uint64_t seed, uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3) {
    uint32_t ctr[4] = {c0, c1, c2, c3}, key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)}, r[4];
    vkd_philox4x32_10(ctr, key, r);
    return r[0];
}

// Position p of epoch e's permutation of [0, n): a balanced 4-round Feistel
// network (Luby-Rackoff: a pseudo-random permutation) on the smallest even
// number of bits covering n, with cycle walking to stay inside [0, n) (the
// domain is < 4n, so fewer than 4 rounds of walking on average).
static int64_t permute(int64_t p, int64_t n, uint64_t seed, uint64_t epoch) {
    int bits = 2;
    while (bits < 62 && ((int64_t)1 << bits) < n) bits += 2;
    int half = bits / 2;
    uint64_t mask = ((uint64_t)1 << half) - 1, x = (uint64_t)p;
    do {
        uint64_t L = x >> half, R = x & mask;
        for (uint32_t r = 0; r < 4; r++) {
            uint64_t f = philox32(seed, (uint32_t)R, r, (uint32_t)epoch, TAG_PERM ^ (uint32_t)(epoch >> 32));
            uint64_t nl = R;
            R = (L ^ f) & mask;
            L = nl;
        }
        x = (L << half) | R;
    } while (x >= (uint64_t)n);
    return (int64_t)x;
}

int64_t vkd_dataset_batch_index(const vkd_dataset *d, uint64_t seed, int64_t step, int n, int j) {
    int64_t k = step * n + j, N = d->n;
    if (k < 0) k = 0;
    return permute(k % N, N, seed, (uint64_t)(k / N));
}

void vkd_dataset_batch(const vkd_dataset *d, uint64_t seed, int64_t step, int n, int flip, float *out, float *onehot,
                       int *labels) {
    vkd_dataset_batch_rows(d, seed, step, n, 0, n, flip, out, onehot, labels);
}

void vkd_dataset_batch_rows(const vkd_dataset *d, uint64_t seed, int64_t step, int n, int j0, int rows, int flip,
                            float *out, float *onehot, int *labels) {
    int C = d->c, H = d->h, W = d->w, K = d->num_classes;
    size_t per = (size_t)C * H * W;
    for (int j = j0; j < j0 + rows; j++) {
        int64_t i = vkd_dataset_batch_index(d, seed, step, n, j);
        const float *src = d->x + (size_t)i * per;
        float *dst = out + (size_t)(j - j0) * per;
        int mirror =
            flip && (philox32(seed, (uint32_t)j, (uint32_t)step, (uint32_t)((uint64_t)step >> 32), TAG_FLIP) & 1);
        if (!mirror) {
            memcpy(dst, src, per * sizeof *dst);
        } else {
            for (size_t r = 0; r < (size_t)C * H; r++)
                for (int x = 0; x < W; x++) dst[r * W + x] = src[r * W + (W - 1 - x)];
        }
        int y = d->y[i];
        if (labels) labels[j - j0] = y;
        if (onehot && K > 0)
            for (int k = 0; k < K; k++) onehot[(size_t)(j - j0) * K + k] = k == y ? 1.0f : 0.0f;
    }
}
