// Dataset readers (IDX, CIFAR-10, image folders), minibatches and PNG writers
// (host only, no Vulkan). Every fixture is written here into a temporary
// directory, with known pixels; every malformed source must be refused with
// one line that names the file and the problem. The real Fashion-MNIST (Debian's
// dataset-fashion-mnist) is opened too when it is installed.
#define _POSIX_C_SOURCE 200809L
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <stb/stb_image.h>
#include <stb/stb_image_write.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "harness.h"
#include "vkdistill/data.h"
#include "vkdistill/io.h"

static char dir[64];

static const char *tpath(const char *name) {
    static char buf[8][512];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static void mkdirs(const char *rel) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    for (char *s = p + strlen(dir) + 1; *s; s++)
        if (*s == '/') *s = 0, mkdir(p, 0755), *s = '/';
    mkdir(p, 0755);
}

static void write_bytes(const char *path, const void *p, size_t n, int gz) {
    if (gz) {
        gzFile f = gzopen(path, "wb");
        gzwrite(f, p, (unsigned)n);
        gzclose(f);
    } else {
        FILE *f = fopen(path, "wb");
        fwrite(p, 1, n, f);
        fclose(f);
    }
}

static size_t file_size(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 ? (size_t)sb.st_size : 0;
}

// An IDX file: magic, dims (big endian), then data (len bytes).
static void write_idx(const char *path, int gz, uint32_t magic, const uint32_t *dims, int ndim, const uint8_t *data,
                      size_t len) {
    size_t h = 4 + 4 * (size_t)ndim;
    uint8_t *b = malloc(h + len);
    uint32_t words[4] = {magic, dims[0], ndim > 1 ? dims[1] : 0, ndim > 2 ? dims[2] : 0};
    for (int i = 0; i <= ndim; i++)
        for (int k = 0; k < 4; k++) b[4 * i + k] = (uint8_t)(words[i] >> (24 - 8 * k));
    memcpy(b + h, data, len);
    write_bytes(path, b, h + len, gz);
    free(b);
}

// The dataset must be refused with one line containing want (and naming the
// file or folder: everything here lives under dir).
static void expect_fail(const char *what, const char *source, const char *split, const vkd_dataset_opts *o,
                        const char *want) {
    char err[512] = "";
    vkd_dataset *d = vkd_dataset_open(source, split, o, err, sizeof err);
    if (getenv("VKD_TEST_VERBOSE")) printf("%-28s %s\n", what, err);
    CHECK(d == NULL, "%s: accepted", what);
    vkd_dataset_free(d);
    CHECK(strstr(err, want) != NULL, "%s: error '%s' lacks '%s'", what, err, want);
    CHECK(strncmp(err, dir, strlen(dir)) == 0 && !strchr(err, '\n'), "%s: not one line naming the path: '%s'", what,
          err);
}

static vkd_dataset *open_ok(const char *what, const char *source, const char *split, const vkd_dataset_opts *o) {
    char err[512] = "";
    vkd_dataset *d = vkd_dataset_open(source, split, o, err, sizeof err);
    CHECK(d != NULL, "%s: %s", what, err);
    return d;
}

// ---------------------------------------------------------------- IDX
#define NI 3
#define SIDE 28
static uint8_t idx_px[NI * SIDE * SIDE], idx_lb[NI] = {3, 7, 1};

static void make_idx(void) {
    for (int i = 0; i < NI * SIDE * SIDE; i++) idx_px[i] = (uint8_t)((i * 37 + i / 5) % 256);
    idx_px[0] = 0, idx_px[1] = 255, idx_px[SIDE * SIDE] = 255;
    uint32_t di[3] = {NI, SIDE, SIDE}, dl[1] = {NI};
    mkdirs("fm");
    mkdirs("plain");
    write_idx(tpath("fm/train-images-idx3-ubyte.gz"), 1, 0x803, di, 3, idx_px, sizeof idx_px);
    write_idx(tpath("fm/train-labels-idx1-ubyte.gz"), 1, 0x801, dl, 1, idx_lb, NI);
    // The test split, plain (gunzipped): only the first two images.
    uint32_t dt[3] = {2, SIDE, SIDE}, dtl[1] = {2};
    write_idx(tpath("plain/t10k-images-idx3-ubyte"), 0, 0x803, dt, 3, idx_px, 2 * SIDE * SIDE);
    write_idx(tpath("plain/t10k-labels-idx1-ubyte"), 0, 0x801, dtl, 1, idx_lb, 2);
}

static float u8f(int v) { return (float)v / 127.5f - 1.0f; }

static void test_idx(void) {
    make_idx();
    vkd_dataset *d = open_ok("idx gz", tpath("fm"), "train", NULL);
    if (d) {
        int c, h, w;
        vkd_dataset_shape(d, &c, &h, &w);
        CHECK(vkd_dataset_count(d) == NI && c == 1 && h == SIDE && w == SIDE, "shape %lld x %dx%dx%d",
              (long long)vkd_dataset_count(d), c, h, w);
        CHECK(vkd_dataset_num_classes(d) == 8, "num_classes %d (max label 7 + 1)", vkd_dataset_num_classes(d));
        CHECK(strcmp(vkd_dataset_kind(d), "idx") == 0, "kind %s", vkd_dataset_kind(d));
        int bad = 0;
        for (int i = 0; i < NI; i++) {
            CHECK(vkd_dataset_label(d, i) == idx_lb[i], "label %d: %d", i, vkd_dataset_label(d, i));
            const float *x = vkd_dataset_image(d, i);
            for (int p = 0; p < SIDE * SIDE; p++) bad += x[p] != u8f(idx_px[i * SIDE * SIDE + p]);
        }
        CHECK(bad == 0, "%d pixels differ from v/127.5 - 1", bad);
        const float *x0 = vkd_dataset_image(d, 0);
        CHECK(x0[0] == -1.0f && x0[1] == 1.0f, "0 -> %g and 255 -> %g, expected -1 and 1 exactly", x0[0], x0[1]);
        CHECK(vkd_dataset_image(d, NI) == NULL && vkd_dataset_label(d, -1) == -1, "out-of-range index accepted");
        vkd_dataset_free(d);
    }

    d = open_ok("idx plain test split", tpath("plain"), "test", NULL);
    if (d) {
        CHECK(vkd_dataset_count(d) == 2 && vkd_dataset_label(d, 1) == 7, "plain t10k: %lld images",
              (long long)vkd_dataset_count(d));
        CHECK(vkd_dataset_image(d, 1)[5] == u8f(idx_px[SIDE * SIDE + 5]), "plain pixel");
        vkd_dataset_free(d);
    }
    expect_fail("no train split", tpath("plain"), "train", NULL, "without train-images-idx3-ubyte");
    expect_fail("no test split", tpath("fm"), "test", NULL, "without t10k-images-idx3-ubyte");
    expect_fail("unknown split", tpath("fm"), "val", NULL, "split 'val': expected 'train' or 'test'");

    // Padding 28 -> 32: centred, 2 pixels of -1 on every side.
    vkd_dataset_opts o = {.pad_to = 32};
    d = open_ok("idx pad_to 32", tpath("fm"), NULL, &o);
    if (d) {
        int c, h, w;
        vkd_dataset_shape(d, &c, &h, &w);
        CHECK(c == 1 && h == 32 && w == 32, "padded shape %dx%dx%d", c, h, w);
        int bad = 0;
        for (int i = 0; i < NI; i++) {
            const float *x = vkd_dataset_image(d, i);
            for (int y = 0; y < 32; y++)
                for (int xx = 0; xx < 32; xx++) {
                    int in = y >= 2 && y < 30 && xx >= 2 && xx < 30;
                    float want = in ? u8f(idx_px[i * SIDE * SIDE + (y - 2) * SIDE + xx - 2]) : -1.0f;
                    bad += x[y * 32 + xx] != want;
                }
        }
        CHECK(bad == 0, "%d padded pixels wrong", bad);
        vkd_dataset_free(d);
    }
    o = (vkd_dataset_opts){.pad_to = 20};
    expect_fail("pad_to smaller than the images", tpath("fm"), NULL, &o, "28x28 is larger than pad_to 20");
    o = (vkd_dataset_opts){.pad_to = 32, .resolution = 28};
    expect_fail("pad_to and resolution", tpath("fm"), NULL, &o, "resolution 28 and pad_to 32 conflict");
    o = (vkd_dataset_opts){.channels = 2};
    expect_fail("channels 2", tpath("fm"), NULL, &o, "channels 2: expected 0 (keep), 1 or 3");

    // max_images, gray -> RGB, and resizing both ways.
    o = (vkd_dataset_opts){.max_images = 2, .channels = 3};
    d = open_ok("idx max_images 2, RGB", tpath("fm"), NULL, &o);
    if (d) {
        int c, h, w;
        vkd_dataset_shape(d, &c, &h, &w);
        CHECK(vkd_dataset_count(d) == 2 && c == 3, "%lld images of %d channels", (long long)vkd_dataset_count(d), c);
        CHECK(vkd_dataset_num_classes(d) == 8, "max_images changed num_classes to %d", vkd_dataset_num_classes(d));
        const float *x = vkd_dataset_image(d, 1);
        int bad = 0;
        for (int p = 0; p < SIDE * SIDE; p++)
            for (int ch = 0; ch < 3; ch++) bad += x[ch * SIDE * SIDE + p] != u8f(idx_px[SIDE * SIDE + p]);
        CHECK(bad == 0, "gray -> RGB: %d values not replicated", bad);
        vkd_dataset_free(d);
    }
    o = (vkd_dataset_opts){.resolution = 14};
    d = open_ok("idx resolution 14 (area)", tpath("fm"), NULL, &o);
    if (d) {
        double maxerr = 0;
        for (int i = 0; i < NI; i++) {
            const float *x = vkd_dataset_image(d, i);
            for (int y = 0; y < 14; y++)
                for (int xx = 0; xx < 14; xx++) {
                    const uint8_t *s = idx_px + i * SIDE * SIDE + 2 * y * SIDE + 2 * xx;
                    double m = (s[0] + s[1] + s[SIDE] + s[SIDE + 1]) / 4.0 / 127.5 - 1;
                    maxerr = fmax(maxerr, fabs(x[y * 14 + xx] - m));
                }
        }
        CHECK(maxerr < 1e-5, "area downscale: max error %g against 2x2 means", maxerr);
        vkd_dataset_free(d);
    }
    o = (vkd_dataset_opts){.resolution = 56};
    d = open_ok("idx resolution 56 (bilinear)", tpath("fm"), NULL, &o);
    if (d) {
        // Output pixel (2j+1) samples source x = j + 0.25: 3/4 of j, 1/4 of j+1 on each axis.
        const float *x = vkd_dataset_image(d, 0);
        double maxerr = 0;
        for (int y = 0; y < 27; y++)
            for (int xx = 0; xx < 27; xx++) {
                const uint8_t *s = idx_px + y * SIDE + xx;
                double v = 0.5625 * s[0] + 0.1875 * s[1] + 0.1875 * s[SIDE] + 0.0625 * s[SIDE + 1];
                maxerr = fmax(maxerr, fabs(x[(2 * y + 1) * 56 + 2 * xx + 1] - (v / 127.5 - 1)));
            }
        CHECK(maxerr < 1e-5, "bilinear upscale: max error %g", maxerr);
        CHECK(x[0] == u8f(idx_px[0]), "corner pixel of an upscale is the source's corner (clamped)");
        vkd_dataset_free(d);
    }

    // A single IDX file (labels from its sibling).
    d = open_ok("single IDX file", tpath("fm/train-images-idx3-ubyte.gz"), NULL, NULL);
    if (d) {
        CHECK(vkd_dataset_count(d) == NI && vkd_dataset_label(d, 2) == 1 && vkd_dataset_num_classes(d) == 8,
              "single file: %lld images", (long long)vkd_dataset_count(d));
        vkd_dataset_free(d);
    }
}

static void test_idx_errors(void) {
    uint32_t di[3] = {NI, SIDE, SIDE}, dl[1] = {NI}, d2[1] = {2};
    size_t npx = sizeof idx_px;
    char want[128];
    // max_images 1 (784 bytes kept): the damage of a cut plain file (at 1000 bytes), of the gzip
    // trailer and of the CRC lies past the image kept, and still fails the file the same way
    // (the bytes not kept are read and dropped, src/io/idx.c idx_body)
    const vkd_dataset_opts one = {.max_images = 1};

    // Plain, pixels cut short.
    mkdirs("bad/trunc");
    write_idx(tpath("bad/trunc/train-images-idx3-ubyte"), 0, 0x803, di, 3, idx_px, 1000);
    write_idx(tpath("bad/trunc/train-labels-idx1-ubyte"), 0, 0x801, dl, 1, idx_lb, NI);
    snprintf(want, sizeof want, "train-images-idx3-ubyte: truncated: expected %zu bytes of pixels, got 1000", npx);
    expect_fail("truncated plain IDX", tpath("bad/trunc"), NULL, NULL, want);
    expect_fail("truncated plain IDX, max_images 1", tpath("bad/trunc"), NULL, &one, want);

    // A gzip stream cut in the middle.
    mkdirs("bad/gztrunc");
    const char *gp = tpath("bad/gztrunc/train-images-idx3-ubyte.gz");
    write_idx(gp, 1, 0x803, di, 3, idx_px, npx);
    write_idx(tpath("bad/gztrunc/train-labels-idx1-ubyte.gz"), 1, 0x801, dl, 1, idx_lb, NI);
    size_t gsz = file_size(gp);
    CHECK(truncate(gp, (off_t)(gsz / 2)) == 0, "truncate");
    snprintf(want, sizeof want, "train-images-idx3-ubyte.gz: truncated: expected %zu bytes of pixels, got", npx);
    expect_fail("truncated gzip", tpath("bad/gztrunc"), NULL, NULL, want);
    expect_fail("truncated gzip, max_images 1", tpath("bad/gztrunc"), NULL, &one, want);

    // Cut inside the gzip trailer: all the data, but no checksum to trust it by.
    write_idx(gp, 1, 0x803, di, 3, idx_px, npx);
    gsz = file_size(gp);
    CHECK(truncate(gp, (off_t)(gsz - 4)) == 0, "truncate");
    expect_fail("gzip trailer cut", tpath("bad/gztrunc"), NULL, NULL,
                "train-images-idx3-ubyte.gz: truncated: the gzip stream ends before its checksum");
    expect_fail("gzip trailer cut, max_images 1", tpath("bad/gztrunc"), NULL, &one,
                "train-images-idx3-ubyte.gz: truncated: the gzip stream ends before its checksum");

    // A gzip stream whose CRC does not match its data; and one with a byte
    // changed in the middle of the deflate data.
    mkdirs("bad/gzcrc");
    gp = tpath("bad/gzcrc/train-images-idx3-ubyte.gz");
    write_idx(gp, 1, 0x803, di, 3, idx_px, npx);
    write_idx(tpath("bad/gzcrc/train-labels-idx1-ubyte.gz"), 1, 0x801, dl, 1, idx_lb, NI);
    size_t n;
    char err[256];
    unsigned char *b = (unsigned char *)vkd_read_file(gp, &n, err, sizeof err);
    b[n - 8] ^= 0xff;
    write_bytes(gp, b, n, 0);
    expect_fail("gzip CRC mismatch", tpath("bad/gzcrc"), NULL, NULL, "corrupt gzip data (incorrect data check)");
    expect_fail("gzip CRC mismatch, max_images 1", tpath("bad/gzcrc"), NULL, &one,
                "corrupt gzip data (incorrect data check)");
    b[n - 8] ^= 0xff;
    for (size_t i = 12; i < n - 8; i += 7) b[i] ^= 0x5a;
    write_bytes(gp, b, n, 0);
    expect_fail("corrupt deflate data", tpath("bad/gzcrc"), NULL, NULL, "train-images-idx3-ubyte.gz: ");
    free(b);

    // Bad magic, count mismatch, trailing bytes, missing labels.
    mkdirs("bad/magic");
    write_idx(tpath("bad/magic/train-images-idx3-ubyte.gz"), 1, 0x804, di, 3, idx_px, npx);
    write_idx(tpath("bad/magic/train-labels-idx1-ubyte.gz"), 1, 0x801, dl, 1, idx_lb, NI);
    expect_fail("bad magic", tpath("bad/magic"), NULL, NULL,
                "train-images-idx3-ubyte.gz: bad magic 0x00000804: not an IDX image file (expected 0x00000803)");
    mkdirs("bad/count");
    write_idx(tpath("bad/count/train-images-idx3-ubyte.gz"), 1, 0x803, di, 3, idx_px, npx);
    write_idx(tpath("bad/count/train-labels-idx1-ubyte.gz"), 1, 0x801, d2, 1, idx_lb, 2);
    expect_fail("label count mismatch", tpath("bad/count"), NULL, NULL, "train-labels-idx1-ubyte.gz: 2 labels, but");
    mkdirs("bad/trail");
    write_idx(tpath("bad/trail/train-images-idx3-ubyte.gz"), 1, 0x803, di, 3, idx_px, npx);
    const uint8_t four[4] = {1, 2, 3, 4};
    write_idx(tpath("bad/trail/train-labels-idx1-ubyte.gz"), 1, 0x801, dl, 1, four, 4);
    expect_fail(
        "trailing label bytes", tpath("bad/trail"), NULL, NULL,
        "train-labels-idx1-ubyte.gz: trailing data: the header announces 3 bytes of labels, the file has 1 more");
    mkdirs("bad/nolabels");
    write_idx(tpath("bad/nolabels/train-images-idx3-ubyte.gz"), 1, 0x803, di, 3, idx_px, npx);
    expect_fail("no labels", tpath("bad/nolabels"), NULL, NULL, "without the labels for train-images-idx3-ubyte.gz");
    mkdirs("bad/header");
    write_idx(tpath("bad/header/train-images-idx3-ubyte"), 0, 0x803, di, 1, idx_px, 0);
    write_idx(tpath("bad/header/train-labels-idx1-ubyte"), 0, 0x801, dl, 1, idx_lb, NI);
    expect_fail("short header", tpath("bad/header"), NULL, NULL,
                "truncated: expected a 16-byte IDX image header, got 8");
}

// ---------------------------------------------------------------- CIFAR-10
#define CREC 3073
static uint8_t cifar_px(int img, int ch, int p) { return (uint8_t)((img * 31 + ch * 85 + p * 7) % 256); }

static void write_cifar_batch(const char *path, int first, int n, int bad_label) {
    uint8_t *b = malloc((size_t)n * CREC);
    for (int i = 0; i < n; i++) {
        uint8_t *r = b + (size_t)i * CREC;
        r[0] = (uint8_t)(bad_label ? 12 : (first + i) % 10);
        for (int ch = 0; ch < 3; ch++)
            for (int p = 0; p < 1024; p++) r[1 + ch * 1024 + p] = cifar_px(first + i, ch, p);
        if (first + i == 0)  // a white pixel
            r[1 + 0] = r[1 + 1024] = r[1 + 2048] = 255;
    }
    write_bytes(path, b, (size_t)n * CREC, 0);
    free(b);
}

static void make_cifar(const char *rel) {
    mkdirs(rel);
    char name[128];
    for (int k = 1; k <= 5; k++) {
        snprintf(name, sizeof name, "%s/data_batch_%d.bin", rel, k);
        write_cifar_batch(tpath(name), 2 * (k - 1), 2, 0);
    }
    snprintf(name, sizeof name, "%s/test_batch.bin", rel);
    write_cifar_batch(tpath(name), 100, 1, 0);
    const char *meta = "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n";
    snprintf(name, sizeof name, "%s/batches.meta.txt", rel);
    write_bytes(tpath(name), meta, strlen(meta), 0);
}

static void test_cifar(void) {
    make_cifar("cifar");
    vkd_dataset *d = open_ok("cifar", tpath("cifar"), "train", NULL);
    if (d) {
        int c, h, w;
        vkd_dataset_shape(d, &c, &h, &w);
        CHECK(vkd_dataset_count(d) == 10 && c == 3 && h == 32 && w == 32, "cifar shape %lld x %dx%dx%d",
              (long long)vkd_dataset_count(d), c, h, w);
        CHECK(vkd_dataset_num_classes(d) == 10 && vkd_dataset_class_name(d, 3) &&
                  strcmp(vkd_dataset_class_name(d, 3), "cat") == 0 && vkd_dataset_class_name(d, 10) == NULL,
              "class names from batches.meta.txt");
        CHECK(strcmp(vkd_dataset_kind(d), "cifar10") == 0, "kind %s", vkd_dataset_kind(d));
        int bad = 0;
        for (int i = 0; i < 10; i++) {
            bad += vkd_dataset_label(d, i) != i;
            const float *x = vkd_dataset_image(d, i);
            for (int ch = 0; ch < 3; ch++)
                for (int p = i == 0; p < 1024; p++) bad += x[ch * 1024 + p] != u8f(cifar_px(i, ch, p));
        }
        CHECK(bad == 0, "cifar: %d labels or pixels wrong", bad);
        CHECK(vkd_dataset_image(d, 0)[0] == 1.0f, "white pixel");
        vkd_dataset_free(d);
    }
    d = open_ok("cifar test", tpath("cifar"), "test", NULL);
    if (d) {
        CHECK(vkd_dataset_count(d) == 1 && vkd_dataset_label(d, 0) == 0, "cifar test split");
        vkd_dataset_free(d);
    }
    vkd_dataset_opts o = {.channels = 1};
    d = open_ok("cifar gray", tpath("cifar"), NULL, &o);
    if (d) {
        int c;
        vkd_dataset_shape(d, &c, NULL, NULL);
        CHECK(c == 1, "gray: %d channels", c);
        double maxerr = 0;
        for (int i = 0; i < 10; i++) {
            const float *x = vkd_dataset_image(d, i);
            for (int p = i == 0; p < 1024; p++) {
                double y = 0.299 * cifar_px(i, 0, p) + 0.587 * cifar_px(i, 1, p) + 0.114 * cifar_px(i, 2, p);
                maxerr = fmax(maxerr, fabs(x[p] - (y / 127.5 - 1)));
            }
        }
        CHECK(maxerr < 1e-6, "RGB -> gray (ITU-R 601): max error %g", maxerr);
        CHECK(fabsf(vkd_dataset_image(d, 0)[0] - 1.0f) < 1e-6f, "white stays white in gray: %.9g",
              vkd_dataset_image(d, 0)[0]);
        vkd_dataset_free(d);
    }
    // The archive's own folder inside the source.
    make_cifar("cifarparent/cifar-10-batches-bin");
    d = open_ok("cifar parent", tpath("cifarparent"), NULL, NULL);
    if (d) CHECK(vkd_dataset_count(d) == 10, "cifar parent: %lld", (long long)vkd_dataset_count(d));
    vkd_dataset_free(d);

    make_cifar("cifarbad");
    write_bytes(tpath("cifarbad/data_batch_2.bin"), "xyz", 3, 0);
    expect_fail("cifar size", tpath("cifarbad"), NULL, NULL,
                "data_batch_2.bin: 3 bytes is not a whole number of 3073-byte records");
    unlink(tpath("cifarbad/data_batch_2.bin"));
    write_cifar_batch(tpath("cifarbad/data_batch_2.bin"), 0, 1, 1);
    expect_fail("cifar label", tpath("cifarbad"), NULL, NULL, "data_batch_2.bin: record 0: label 12, expected 0 to 9");
    unlink(tpath("cifarbad/data_batch_3.bin"));
    expect_fail("cifar missing batch", tpath("cifarbad"), NULL, NULL, "CIFAR-10 directory without data_batch_3.bin");
}

// ---------------------------------------------------------------- image folders
static void write_png_solid(const char *rel, int w, int h, int comp, const uint8_t *rgb, int jpg) {
    uint8_t *b = malloc((size_t)w * h * comp);
    for (int p = 0; p < w * h; p++)
        for (int k = 0; k < comp; k++) b[p * comp + k] = (uint8_t)(rgb[k] + (p % 5));
    if (jpg)
        stbi_write_jpg(tpath(rel), w, h, comp, b, 95);
    else
        stbi_write_png(tpath(rel), w, h, comp, b, w * comp);
    free(b);
}

static void test_folder(void) {
    const uint8_t red[3] = {200, 10, 20}, green[3] = {5, 180, 60}, blue[3] = {0, 40, 250};
    mkdirs("pics/dog");
    mkdirs("pics/cat/sub");
    mkdirs("pics/.hidden");
    write_png_solid("pics/dog/a.png", 8, 8, 3, red, 0);
    write_png_solid("pics/cat/b.png", 8, 8, 3, green, 0);
    write_png_solid("pics/cat/sub/c.PNG", 8, 8, 3, blue, 0);
    write_png_solid("pics/.hidden/x.png", 9, 9, 3, blue, 0);  // skipped, or the sizes would differ
    write_bytes(tpath("pics/cat/notes.txt"), "hi", 2, 0);
    vkd_dataset *d = open_ok("image folder", tpath("pics"), NULL, NULL);
    if (d) {
        int c, h, w;
        vkd_dataset_shape(d, &c, &h, &w);
        CHECK(vkd_dataset_count(d) == 3 && c == 3 && h == 8 && w == 8, "folder shape %lld x %dx%dx%d",
              (long long)vkd_dataset_count(d), c, h, w);
        CHECK(vkd_dataset_num_classes(d) == 2 && strcmp(vkd_dataset_class_name(d, 0), "cat") == 0 &&
                  strcmp(vkd_dataset_class_name(d, 1), "dog") == 0,
              "classes: sorted folder names");
        // Sorted: cat/b.png, cat/sub/c.PNG, dog/a.png.
        CHECK(vkd_dataset_label(d, 0) == 0 && vkd_dataset_label(d, 1) == 0 && vkd_dataset_label(d, 2) == 1,
              "labels %d %d %d", vkd_dataset_label(d, 0), vkd_dataset_label(d, 1), vkd_dataset_label(d, 2));
        const uint8_t *cols[3] = {green, blue, red};
        int bad = 0;
        for (int i = 0; i < 3; i++) {
            const float *x = vkd_dataset_image(d, i);
            for (int ch = 0; ch < 3; ch++)
                for (int p = 0; p < 64; p++) bad += x[ch * 64 + p] != u8f(cols[i][ch] + p % 5);
        }
        CHECK(bad == 0, "folder pixels: %d wrong", bad);
        vkd_dataset_free(d);
    }
    expect_fail("folder test split", tpath("pics"), "test", NULL, "an image folder has no 'test' split");

    // Unlabelled gray PNGs and a JPEG.
    const uint8_t grey[3] = {100, 100, 100}, flat[3] = {100, 150, 200};
    mkdirs("gray");
    write_png_solid("gray/1.png", 6, 6, 1, grey, 0);
    write_png_solid("gray/2.png", 6, 6, 1, grey, 0);
    d = open_ok("gray folder", tpath("gray"), NULL, NULL);
    if (d) {
        int c;
        vkd_dataset_shape(d, &c, NULL, NULL);
        CHECK(c == 1 && vkd_dataset_num_classes(d) == 0 && vkd_dataset_label(d, 1) == 0, "gray, unlabelled: c %d", c);
        vkd_dataset_free(d);
    }
    mkdirs("jpg");
    write_png_solid("jpg/1.jpg", 16, 16, 3, flat, 1);
    d = open_ok("jpeg folder", tpath("jpg"), NULL, NULL);
    if (d) {
        const float *x = vkd_dataset_image(d, 0);
        double maxerr = 0;
        for (int ch = 0; ch < 3; ch++)
            for (int p = 0; p < 256; p++) maxerr = fmax(maxerr, fabs(x[ch * 256 + p] - u8f(flat[ch] + p % 5)));
        CHECK(maxerr < 8 / 127.5, "jpeg: max error %g", maxerr);
        vkd_dataset_free(d);
    }

    // Mixed sizes: refused unless a resolution is set.
    mkdirs("mixed");
    write_png_solid("mixed/a.png", 32, 32, 3, red, 0);
    write_png_solid("mixed/b.png", 64, 48, 3, red, 0);
    expect_fail("mixed sizes", tpath("mixed"), NULL, NULL,
                "mixed/b.png: 64x48 differs from the other images' 32x32 (set a resolution to resize)");
    vkd_dataset_opts o = {.resolution = 16};
    d = open_ok("mixed sizes, resolution 16", tpath("mixed"), NULL, &o);
    if (d) {
        int c, h, w;
        vkd_dataset_shape(d, &c, &h, &w);
        CHECK(vkd_dataset_count(d) == 2 && h == 16 && w == 16, "resized: %lld x %dx%d", (long long)vkd_dataset_count(d),
              h, w);
        // Area averages of the (r + p%5) pattern stay within its range.
        const float *x = vkd_dataset_image(d, 1);
        int bad = 0;
        for (int p = 0; p < 256; p++) bad += x[p] < u8f(red[0]) - 1e-6f || x[p] > u8f(red[0] + 4) + 1e-6f;
        CHECK(bad == 0, "resized values out of range: %d", bad);
        vkd_dataset_free(d);
    }
    o = (vkd_dataset_opts){.pad_to = 40};
    expect_fail("pad_to with a larger image", tpath("mixed"), NULL, &o, "mixed/b.png: 64x48 is larger than pad_to 40");

    mkdirs("both/k");
    write_png_solid("both/top.png", 4, 4, 3, red, 0);
    write_png_solid("both/k/in.png", 4, 4, 3, red, 0);
    expect_fail("top level and subfolders", tpath("both"), NULL, NULL, "images both at the top level (top.png)");
    mkdirs("notpng");
    write_bytes(tpath("notpng/x.png"), "not a png", 9, 0);
    expect_fail("broken png", tpath("notpng"), NULL, NULL, "notpng/x.png: not a readable PNG/JPEG image");
    mkdirs("empty");
    expect_fail("empty folder", tpath("empty"), NULL, NULL, "not a Fashion-MNIST/MNIST, CIFAR-10 or image folder");
    expect_fail("a plain file", tpath("cifar/batches.meta.txt"), NULL, NULL,
                "not a Fashion-MNIST/MNIST, CIFAR-10 or image folder");
    expect_fail("missing path", tpath("nowhere"), NULL, NULL, "nowhere: cannot open: no such file or directory");
}

// ---------------------------------------------------------------- minibatches
static void test_batches(void) {
    vkd_dataset *d = open_ok("cifar for batches", tpath("cifar"), NULL, NULL);
    if (!d) return;
    const int N = 10, P = 3 * 32 * 32, n = 4;
    float *a = malloc(sizeof(float) * n * P), *b = malloc(sizeof(float) * n * P), *oh = malloc(sizeof(float) * n * 10);
    int la[4], lb[4];
    vkd_dataset_batch(d, 42, 7, n, 0, a, oh, la);
    vkd_dataset_batch(d, 42, 7, n, 0, b, NULL, lb);
    CHECK(memcmp(a, b, sizeof(float) * n * P) == 0 && memcmp(la, lb, sizeof la) == 0, "same seed/step, same batch");
    int ohbad = 0;
    for (int j = 0; j < n; j++) {
        for (int k = 0; k < 10; k++) ohbad += oh[j * 10 + k] != (k == la[j] ? 1.0f : 0.0f);
        int64_t i = vkd_dataset_batch_index(d, 42, 7, n, j);
        ohbad += la[j] != vkd_dataset_label(d, i) || memcmp(a + j * P, vkd_dataset_image(d, i), sizeof(float) * P);
    }
    CHECK(ohbad == 0, "one-hot labels, labels and images match the drawn indices");
    vkd_dataset_batch(d, 42, 8, n, 0, b, NULL, lb);
    CHECK(memcmp(a, b, sizeof(float) * n * P) != 0, "different step, same batch");

    // Epochs: n = 3 does not divide 10, so batches straddle epochs; every
    // epoch still visits every index once, and epochs are shuffled differently.
    int perm[3][10], same = 1;
    for (int s = 0; s < 10; s++)
        for (int j = 0; j < 3; j++) {
            int k = s * 3 + j;
            perm[k / N][k % N] = (int)vkd_dataset_batch_index(d, 42, s, 3, j);
        }
    for (int e = 0; e < 3; e++) {
        int seen[10] = {0}, ok = 1;
        for (int p = 0; p < N; p++) seen[perm[e][p]]++;
        for (int i = 0; i < N; i++) ok &= seen[i] == 1;
        CHECK(ok, "epoch %d does not visit every index once", e);
    }
    for (int p = 0; p < N; p++) same &= perm[0][p] == perm[1][p];
    CHECK(!same, "epochs 0 and 1 have the same order");
    int seed_same = 1;
    for (int p = 0; p < N; p++) seed_same &= vkd_dataset_batch_index(d, 43, 0, N, p) == perm[0][p];
    CHECK(!seed_same, "seeds 42 and 43 give the same order");

    // Flips: each sample is the image or its mirror; both occur; deterministic.
    int flipped = 0, plain = 0, bad = 0;
    for (int s = 0; s < 10; s++) {
        vkd_dataset_batch(d, 5, s, n, 1, a, NULL, la);
        vkd_dataset_batch(d, 5, s, n, 1, b, NULL, lb);
        bad += memcmp(a, b, sizeof(float) * n * P) != 0;
        for (int j = 0; j < n; j++) {
            const float *x = vkd_dataset_image(d, vkd_dataset_batch_index(d, 5, s, n, j)), *y = a + j * P;
            int same_img = memcmp(x, y, sizeof(float) * P) == 0, mirror = 1;
            for (int r = 0; r < 3 * 32; r++)
                for (int c = 0; c < 32; c++) mirror &= y[r * 32 + c] == x[r * 32 + 31 - c];
            flipped += mirror && !same_img, plain += same_img;
            bad += !same_img && !mirror;
        }
    }
    CHECK(bad == 0, "flip: %d samples neither the image nor its mirror, or not deterministic", bad);
    CHECK(flipped > 5 && plain > 5, "flip: %d mirrored, %d not, of 40", flipped, plain);
    free(a), free(b), free(oh);
    vkd_dataset_free(d);

    // A larger permutation: 1000 one-pixel images, one epoch of batches of 64
    // (the last batch runs into the next epoch).
    mkdirs("big");
    uint8_t px[1000], lbl[1000];
    for (int i = 0; i < 1000; i++) px[i] = (uint8_t)i, lbl[i] = (uint8_t)(i % 10);
    uint32_t di[3] = {1000, 1, 1}, dl[1] = {1000};
    write_idx(tpath("big/train-images-idx3-ubyte"), 0, 0x803, di, 3, px, 1000);
    write_idx(tpath("big/train-labels-idx1-ubyte"), 0, 0x801, dl, 1, lbl, 1000);
    d = open_ok("1000 images", tpath("big"), NULL, NULL);
    if (d) {
        static int seen[1000];
        int ok = 1, inorder = 0;
        for (int k = 0; k < 1000; k++) {
            int64_t i = vkd_dataset_batch_index(d, 1234, k / 64, 64, k % 64);
            ok &= i >= 0 && i < 1000;
            if (ok) seen[i]++;
            inorder += i == k;
        }
        for (int i = 0; i < 1000; i++) ok &= seen[i] == 1;
        CHECK(ok, "an epoch of 1000 does not visit every index once");
        CHECK(inorder < 20, "the permutation leaves %d of 1000 in place", inorder);
        vkd_dataset_free(d);
    }
}

// ---------------------------------------------------------------- PNG outputs
static void test_png(void) {
    const int n = 5, c = 3, h = 4, w = 6;
    float *x = malloc(sizeof(float) * n * c * h * w);
    for (int i = 0; i < n * c * h * w; i++) x[i] = (float)((i * 13) % 301) / 150.0f - 1.0f;
    x[0] = -1.5f, x[1] = 1.5f, x[2] = 1.0f, x[3] = -1.0f, x[4] = 0.0f;
    char err[512];
    const char *p = tpath("grid.png");
    CHECK(vkd_write_png_grid(p, x, n, c, h, w, 2, 1, err, sizeof err) == 0, "grid: %s", err);
    int W, H, comp;
    unsigned char *img = stbi_load(p, &W, &H, &comp, 0);
    // Small images are enlarged by an integer factor, nearest neighbour, to at
    // least 64 pixels a side: 6 wide -> ceil(64 / 6) = 11.
    const int S = 11;
    CHECK(vkd_png_grid_scale(h, w, n, 2, 1) == S, "grid scale %d, want %d", vkd_png_grid_scale(h, w, n, 2, 1), S);
    CHECK(vkd_png_grid_scale(28, 28, 64, 8, 2) == 3 && vkd_png_grid_scale(16, 16, 64, 0, 2) == 4 &&
              vkd_png_grid_scale(64, 64, 64, 8, 2) == 1 && vkd_png_grid_scale(32, 32, 4096, 64, 2) == 1,
          "grid scales: 28 -> %d (3), 16 -> %d (4), 64 -> %d (1), 64 cols of 32 -> %d (1)",
          vkd_png_grid_scale(28, 28, 64, 8, 2), vkd_png_grid_scale(16, 16, 64, 0, 2),
          vkd_png_grid_scale(64, 64, 64, 8, 2), vkd_png_grid_scale(32, 32, 4096, 64, 2));
    CHECK(img && W == S * (2 * 7 + 1) && H == S * (3 * 5 + 1) && comp == 3, "grid read back: %dx%d, %d channels", W, H,
          comp);
    if (img && W == S * 15 && H == S * 16 && comp == 3) {
        int bad = 0;
        for (int yy = 0; yy < H; yy++)
            for (int xx = 0; xx < W; xx++) {
                int gx = xx / S, gy = yy / S;  // the grid pixel this output pixel enlarges
                int col = (gx - 1) / 7, row = (gy - 1) / 5, ix = (gx - 1) % 7, iy = (gy - 1) % 5;
                int i = row * 2 + col, inside = gx >= 1 && gy >= 1 && ix < 6 && iy < 4 && i < n;
                for (int ch = 0; ch < 3; ch++) {
                    int want = 0;
                    if (inside) {
                        float v = x[((i * c + ch) * h + iy) * w + ix] * 127.5f + 128.0f;
                        want = v < 0 ? 0 : v > 255 ? 255 : (int)v;
                    }
                    bad += img[(yy * W + xx) * 3 + ch] != want;
                }
            }
        CHECK(bad == 0, "grid: %d channel values wrong", bad);
        int r = S;  // first row of the first image
        CHECK(img[(r * W + 1 * S) * 3] == 0 && img[(r * W + 2 * S) * 3] == 255 && img[(r * W + 3 * S) * 3] == 255 &&
                  img[(r * W + 4 * S) * 3] == 0 && img[(r * W + 5 * S) * 3] == 128,
              "clip(x*127.5 + 128): -1.5 -> 0, 1.5 -> 255, 1 -> 255, -1 -> 0, 0 -> 128");
    }
    stbi_image_free(img);

    // Gray, one image, and the dataset round trip: u8 -> [-1, 1] -> u8 is exact.
    vkd_dataset *d = open_ok("idx for png", tpath("fm"), NULL, NULL);
    if (d) {
        p = tpath("one.png");
        CHECK(vkd_write_png(p, vkd_dataset_image(d, 0), 1, SIDE, SIDE, err, sizeof err) == 0, "png: %s", err);
        img = stbi_load(p, &W, &H, &comp, 0);
        CHECK(img && W == SIDE && H == SIDE && comp == 1, "gray png: %dx%d, %d channels", W, H, comp);
        if (img && W == SIDE && H == SIDE && comp == 1)
            CHECK(memcmp(img, idx_px, SIDE * SIDE) == 0, "u8 -> dataset -> PNG is not exact");
        stbi_image_free(img);
        vkd_dataset_free(d);
    }
    CHECK(vkd_write_png_grid(tpath("bad.png"), x, n, 2, h, w, 2, 1, err, sizeof err) != 0 &&
              strstr(err, "2 channels") && strstr(err, "bad.png"),
          "2 channels accepted: %s", err);
    CHECK(vkd_write_png(tpath("nodir/x.png"), x, 3, h, w, err, sizeof err) != 0 && strstr(err, "nodir/x.png"),
          "write into a missing folder: %s", err);

    // Scatter: white background, black frame, a blue and an orange point.
    float pa[4] = {-1, -1, 9, 9}, pb[2] = {1, 1};  // (9, 9) is outside lim 2
    p = tpath("scatter.png");
    CHECK(vkd_write_scatter_png(p, pa, 2, pb, 1, 2.0f, 256, err, sizeof err) == 0, "scatter: %s", err);
    img = stbi_load(p, &W, &H, &comp, 3);
    CHECK(img && W == 256 && H == 256, "scatter size %dx%d", W, H);
    if (img && W == 256 && H == 256) {
        const unsigned char *bg = img + (10 * 256 + 20) * 3, *frame = img, *pa_px = img + (191 * 256 + 64) * 3,
                            *pb_px = img + (64 * 256 + 191) * 3;
        CHECK(bg[0] == 255 && bg[1] == 255 && bg[2] == 255, "background not white");
        CHECK(frame[0] == 0 && frame[1] == 0 && frame[2] == 0, "frame not black");
        CHECK(pa_px[2] > pa_px[0] + 40, "point (-1,-1) not blue: %d %d %d", pa_px[0], pa_px[1], pa_px[2]);
        CHECK(pb_px[0] > pb_px[2] + 40, "point (1,1) not orange: %d %d %d", pb_px[0], pb_px[1], pb_px[2]);
    }
    stbi_image_free(img);
    CHECK(vkd_write_scatter_png(p, pa, 2, pb, 1, 0.0f, 256, err, sizeof err) != 0, "lim 0 accepted");
    CHECK(access(tpath("grid.png.tmp"), F_OK) != 0 && access(tpath("scatter.png.tmp"), F_OK) != 0,
          "temporary files left behind");
    free(x);
}

// ---------------------------------------------------------------- the real Fashion-MNIST
static void test_fashion_mnist(void) {
    const char *fm = "/usr/share/datasets/fashion-mnist";
    struct stat sb;
    if (stat(fm, &sb) != 0) {
        printf("skip: %s is not installed (Debian package dataset-fashion-mnist)\n", fm);
        return;
    }
    char err[512];
    vkd_dataset_opts o = {.pad_to = 32};
    vkd_dataset *d = vkd_dataset_open(fm, "train", &o, err, sizeof err);
    CHECK(d != NULL, "Fashion-MNIST train: %s", err);
    if (d) {
        int c, h, w;
        vkd_dataset_shape(d, &c, &h, &w);
        CHECK(vkd_dataset_count(d) == 60000 && vkd_dataset_num_classes(d) == 10 && c == 1 && h == 32 && w == 32,
              "Fashion-MNIST train: %lld x %dx%dx%d, %d classes", (long long)vkd_dataset_count(d), c, h, w,
              vkd_dataset_num_classes(d));
        CHECK(vkd_dataset_label(d, 0) == 9 && vkd_dataset_label(d, 3) == 3, "first labels %d %d",
              vkd_dataset_label(d, 0), vkd_dataset_label(d, 3));
        double s = 0;  // the pixel sum of the first image (an ankle boot) is 76247
        const float *x = vkd_dataset_image(d, 0);
        for (int p = 0; p < 32 * 32; p++) s += (x[p] + 1) * 127.5;
        CHECK(fabs(s - 76247) < 0.5, "first image pixel sum %.1f, expected 76247", s);
        vkd_dataset_free(d);
    }
    d = vkd_dataset_open(fm, "test", NULL, err, sizeof err);
    CHECK(d != NULL, "Fashion-MNIST test: %s", err);
    if (d) {
        int c, h, w;
        vkd_dataset_shape(d, &c, &h, &w);
        CHECK(vkd_dataset_count(d) == 10000 && vkd_dataset_num_classes(d) == 10 && c == 1 && h == 28 && w == 28,
              "Fashion-MNIST test: %lld x %dx%dx%d", (long long)vkd_dataset_count(d), c, h, w);
        vkd_dataset_free(d);
    }
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

int main(void) {
    const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(dir, sizeof dir, "%.40s/vkd_data_XXXXXX", base);
    if (!mkdtemp(dir)) {
        printf("cannot create a temporary directory\n0 passed, 1 failed\n");
        return 1;
    }
    test_idx();
    test_idx_errors();
    test_cifar();
    test_folder();
    test_batches();
    test_png();
    test_fashion_mnist();
    CHECK(nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS) == 0, "cannot remove %s", dir);
    printf("%d passed, %d failed\n", t_pass, t_fail);
    return t_fail ? 1 : 0;
}
