// PNG outputs: sample grids, single images and 2-D scatter plots, encoded by
// stb_image_write (Debian's libstb) and written through vkd_afile, so a crash
// never leaves a torn PNG where a good one was.
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stb/stb_image_write.h>  // the implementation is Debian's libstb
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vkdistill/data.h"
#include "vkdistill/io.h"

#define PNG_MAX_SIDE 32768  // stb's sizes are ints; beyond this is surely a mistake

static void png_sink(void *ctx, void *data, int size) { vkd_afile_write(ctx, data, (size_t)size); }

// Encodes w x h pixels of comp (1 or 3) interleaved channels to path, atomically.
static int write_png_u8(const char *path, const unsigned char *px, int w, int h, int comp, char *err, size_t errlen) {
    vkd_afile *f = vkd_afile_open(path, err, errlen);
    if (!f) return -1;
    if (!stbi_write_png_to_func(png_sink, f, w, h, comp, px, w * comp)) {
        vkd_afile_abort(f);
        if (err && errlen) snprintf(err, errlen, "%s: PNG encoding failed (out of memory?)", path);
        return -1;
    }
    return vkd_afile_commit(f, err, errlen);
}

// As EDM: clip(x*127.5 + 128, 0, 255), truncated; NaN becomes 0.
static unsigned char to_u8(float x) {
    float v = x * 127.5f + 128.0f;
    if (!(v >= 0)) return 0;
    return v >= 255 ? 255 : (unsigned char)v;
}

static int check_image(const char *path, int c, int h, int w, char *err, size_t errlen) {
    if (c != 1 && c != 3) {
        if (err && errlen) snprintf(err, errlen, "%s: %d channels: a PNG is written for 1 (gray) or 3 (RGB)", path, c);
        return -1;
    }
    if (h < 1 || w < 1 || h > PNG_MAX_SIDE || w > PNG_MAX_SIDE) {
        if (err && errlen)
            snprintf(err, errlen, "%s: image size %dx%d: expected 1 to %d pixels a side", path, w, h, PNG_MAX_SIDE);
        return -1;
    }
    return 0;
}

// The grid of n images, each pixel drawn as a scale x scale block (nearest
// neighbour), padding included.
static int write_grid(const char *path, const float *x, int n, int c, int h, int w, int ncols, int pad, int scale,
                      char *err, size_t errlen) {
    if (check_image(path, c, h, w, err, errlen)) return -1;
    if (n < 1 || pad < 0) {
        if (err && errlen) snprintf(err, errlen, "%s: a grid of %d images with padding %d", path, n, pad);
        return -1;
    }
    if (ncols <= 0) ncols = (int)ceil(sqrt((double)n));
    if (ncols > n) ncols = n;
    int rows = (n + ncols - 1) / ncols;
    int64_t gw = (int64_t)ncols * (w + pad) + pad, gh = (int64_t)rows * (h + pad) + pad;  // in source pixels
    int64_t W = gw * scale, H = gh * scale;
    if (W > PNG_MAX_SIDE || H > PNG_MAX_SIDE) {
        if (err && errlen)
            snprintf(err, errlen, "%s: a grid of %lldx%lld pixels is too large (at most %d a side)", path, (long long)W,
                     (long long)H, PNG_MAX_SIDE);
        return -1;
    }
    unsigned char *px = calloc((size_t)W * (size_t)H * (size_t)c, 1);  // padding is black
    if (!px) {
        if (err && errlen)
            snprintf(err, errlen, "%s: out of memory for a %lldx%lld grid", path, (long long)W, (long long)H);
        return -1;
    }
    size_t hw = (size_t)h * w;
    for (int i = 0; i < n; i++) {
        const float *img = x + (size_t)i * c * hw;
        int64_t x0 = ((int64_t)(i % ncols) * (w + pad) + pad) * scale, y0 = ((int64_t)(i / ncols) * (h + pad) + pad) * scale;
        for (int y = 0; y < h * scale; y++)
            for (int xx = 0; xx < w * scale; xx++)
                for (int ch = 0; ch < c; ch++)
                    px[((size_t)(y0 + y) * W + (size_t)(x0 + xx)) * c + ch] =
                        to_u8(img[ch * hw + (size_t)(y / scale) * w + xx / scale]);
    }
    int rc = write_png_u8(path, px, (int)W, (int)H, c, err, errlen);
    free(px);
    return rc;
}

int vkd_png_grid_scale(int h, int w, int n, int ncols, int pad) {
    int side = h > w ? h : w, s = side > 0 && side < VKD_PNG_GRID_MIN_SIDE ? (VKD_PNG_GRID_MIN_SIDE + side - 1) / side : 1;
    if (n < 1 || h < 1 || w < 1 || pad < 0) return 1;
    if (ncols <= 0) ncols = (int)ceil(sqrt((double)n));
    if (ncols > n) ncols = n;
    int rows = (n + ncols - 1) / ncols;
    int64_t gw = (int64_t)ncols * (w + pad) + pad, gh = (int64_t)rows * (h + pad) + pad;
    while (s > 1 && (gw * s > VKD_PNG_GRID_MAX_SIDE || gh * s > VKD_PNG_GRID_MAX_SIDE)) s--;
    return s;
}

int vkd_write_png_grid(const char *path, const float *x, int n, int c, int h, int w, int ncols, int pad, char *err,
                       size_t errlen) {
    return write_grid(path, x, n, c, h, w, ncols, pad, vkd_png_grid_scale(h, w, n, ncols, pad), err, errlen);
}

int vkd_write_png(const char *path, const float *chw, int c, int h, int w, char *err, size_t errlen) {
    return write_grid(path, chw, 1, c, h, w, 1, 0, 1, err, errlen);
}

// ---------------------------------------------------------------- scatter plots
typedef struct {
    unsigned char *px;
    int size;
} canvas;

static void put(canvas *cv, int x, int y, const unsigned char rgb[3], float alpha) {
    if (x < 0 || y < 0 || x >= cv->size || y >= cv->size) return;
    unsigned char *p = cv->px + ((size_t)y * cv->size + x) * 3;
    for (int k = 0; k < 3; k++) p[k] = (unsigned char)lroundf(p[k] + alpha * ((float)rgb[k] - p[k]));
}

static int to_px(float v, float lim, int size, int flip) {
    float t = (v + lim) / (2 * lim);
    if (flip) t = 1 - t;
    return (int)lroundf(t * (float)(size - 1));
}

// Points as small half-transparent dots, so dense regions show darker.
static void points(canvas *cv, const float *p, int64_t n, float lim, const unsigned char rgb[3]) {
    int r = cv->size >= 384 ? 1 : 0;
    for (int64_t i = 0; i < n; i++) {
        float x = p[2 * i], y = p[2 * i + 1];
        if (!(fabsf(x) <= lim && fabsf(y) <= lim)) continue;  // outside, or NaN
        int cx = to_px(x, lim, cv->size, 0), cy = to_px(y, lim, cv->size, 1);
        for (int dy = -r; dy <= r; dy++)
            for (int dx = -r; dx <= r; dx++) put(cv, cx + dx, cy + dy, rgb, 0.5f);
    }
}

int vkd_write_scatter_png(const char *path, const float *a, int64_t na, const float *b, int64_t nb, float lim, int size,
                          char *err, size_t errlen) {
    if (!(lim > 0) || !isfinite(lim) || size < 32 || size > 8192 || na < 0 || nb < 0) {
        if (err && errlen)
            snprintf(err, errlen,
                     "%s: scatter plot of %lld and %lld points, lim %g, size %d: expected lim > 0 and size 32..8192",
                     path, (long long)na, (long long)nb, (double)lim, size);
        return -1;
    }
    canvas cv = {malloc((size_t)size * size * 3), size};
    if (!cv.px) {
        if (err && errlen) snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    memset(cv.px, 255, (size_t)size * size * 3);
    static const unsigned char grey[3] = {190, 190, 190}, black[3] = {0, 0, 0};
    static const unsigned char blue[3] = {31, 119, 180}, orange[3] = {255, 127, 14};  // matplotlib's first two
    int zx = to_px(0, lim, size, 0), zy = to_px(0, lim, size, 1);
    for (int i = 0; i < size; i++) put(&cv, zx, i, grey, 1), put(&cv, i, zy, grey, 1);
    if (lim <= 20)
        for (int k = (int)-floorf(lim); k <= (int)floorf(lim); k++) {
            int tx = to_px((float)k, lim, size, 0), ty = to_px((float)k, lim, size, 1);
            for (int d = -3; d <= 3; d++) put(&cv, tx, zy + d, grey, 1), put(&cv, zx + d, ty, grey, 1);
        }
    points(&cv, a, na, lim, blue);
    points(&cv, b, nb, lim, orange);
    for (int i = 0; i < size; i++)
        put(&cv, i, 0, black, 1), put(&cv, i, size - 1, black, 1), put(&cv, 0, i, black, 1),
            put(&cv, size - 1, i, black, 1);
    int rc = write_png_u8(path, cv.px, size, size, 3, err, errlen);
    free(cv.px);
    return rc;
}
