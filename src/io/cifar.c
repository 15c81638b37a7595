// CIFAR-10, binary version (cifar-10-batches-bin): data_batch_1..5.bin (train,
// 10,000 images each) and test_batch.bin; each record is 1 label byte and
// 3072 pixel bytes (the 1024 red, then green, then blue values of a 32x32
// image, rows top to bottom). batches.meta.txt, when present, names the
// classes one per line.
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/dataset_impl.h"
#include "vkdistill/io.h"

#define CIFAR_SIDE 32
#define CIFAR_PIXELS (3 * CIFAR_SIDE * CIFAR_SIDE)
#define CIFAR_RECORD (1 + CIFAR_PIXELS)
#define CIFAR_TRAIN_BATCHES 5

static int is_file(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

static char *join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static int has_batches(const char *dir) {
    char *a = join(dir, "data_batch_1.bin"), *b = join(dir, "test_batch.bin");
    int ok = (a && is_file(a)) || (b && is_file(b));
    free(a), free(b);
    return ok;
}

char *vkd_ds_cifar_dir(const char *dir) {
    if (has_batches(dir)) return strdup(dir);
    // The archive unpacks into cifar-10-batches-bin/: accept its parent too.
    char *sub = join(dir, "cifar-10-batches-bin");
    if (sub && has_batches(sub)) return sub;
    free(sub);
    return NULL;
}

// Class names from batches.meta.txt (non-empty lines); 0 names if it is absent.
static int read_meta(vkd_dataset *d, const char *dir, char *err, size_t errlen) {
    char *path = join(dir, "batches.meta.txt");
    if (!path || !is_file(path)) {
        free(path);
        return 0;
    }
    size_t len;
    char *text = vkd_read_file(path, &len, err, errlen);
    int rc = -1, n = 0;
    if (!text) goto done;
    for (char *p = text; *p;) {  // count
        char *e = p + strcspn(p, "\r\n");
        if (e > p) n++;
        p = *e ? e + 1 : e;
    }
    if (n < 1 || n > 256) {
        vkd_ds_fail(err, errlen, path, "%d class names: expected 1 to 256, one per line", n);
        goto done;
    }
    d->class_names = calloc((size_t)n, sizeof *d->class_names);
    if (!d->class_names) goto done;
    d->num_classes = n;
    int k = 0;
    for (char *p = text; *p;) {
        char *e = p + strcspn(p, "\r\n");
        if (e > p && !(d->class_names[k++] = strndup(p, (size_t)(e - p)))) goto done;
        p = *e ? e + 1 : e;
    }
    rc = 0;
done:
    if (rc && err && !err[0]) vkd_ds_fail(err, errlen, path, "out of memory");
    free(text), free(path);
    return rc;
}

int vkd_ds_load_cifar(vkd_dataset *d, const char *dir, const char *split, char *err, size_t errlen) {
    int test = strcmp(split, "test") == 0, nfiles = test ? 1 : CIFAR_TRAIN_BATCHES, rc = -1;
    char *files[CIFAR_TRAIN_BATCHES] = {0};
    int64_t counts[CIFAR_TRAIN_BATCHES] = {0}, total = 0;
    unsigned char *data = NULL;
    if (err && errlen) err[0] = 0;
    if (read_meta(d, dir, err, errlen)) return -1;
    if (!d->num_classes) d->num_classes = 10;

    // Every file is checked before anything is decoded, so a partial download
    // is reported at once rather than after minutes of decoding.
    for (int b = 0; b < nfiles; b++) {
        char name[32];
        snprintf(name, sizeof name, test ? "test_batch.bin" : "data_batch_%d.bin", b + 1);
        if (!(files[b] = join(dir, name))) goto oom;
        struct stat sb;
        if (stat(files[b], &sb) != 0 || !S_ISREG(sb.st_mode)) {
            vkd_ds_fail(err, errlen, dir, "CIFAR-10 directory without %s (split '%s')", name, split);
            goto done;
        }
        if (sb.st_size == 0 || sb.st_size % CIFAR_RECORD != 0) {
            vkd_ds_fail(err, errlen, files[b],
                        "%lld bytes is not a whole number of %d-byte records (1 label byte + %d pixel bytes)%s",
                        (long long)sb.st_size, CIFAR_RECORD, CIFAR_PIXELS,
                        sb.st_size % (CIFAR_RECORD + 1) == 0 ? ": CIFAR-100 (2 label bytes) is not supported" : "");
            goto done;
        }
        counts[b] = sb.st_size / CIFAR_RECORD;
        total += counts[b];
    }

    if (vkd_ds_set_shape(d, 3, CIFAR_SIDE, CIFAR_SIDE, dir, err, errlen)) goto done;
    int64_t keep = vkd_ds_limit(d, total);
    if (vkd_ds_reserve(d, keep, dir, err, errlen)) goto done;
    for (int b = 0; b < nfiles && d->n < keep; b++) {
        size_t len;
        free(data);
        if (!(data = (unsigned char *)vkd_read_file(files[b], &len, err, errlen))) goto done;
        if ((int64_t)len != counts[b] * CIFAR_RECORD) {
            vkd_ds_fail(err, errlen, files[b], "changed size while being read");
            goto done;
        }
        for (int64_t i = 0; i < counts[b] && d->n < keep; i++) {
            const unsigned char *r = data + (size_t)i * CIFAR_RECORD;
            if (r[0] >= d->num_classes) {
                vkd_ds_fail(err, errlen, files[b], "record %lld: label %d, expected 0 to %d", (long long)i, r[0],
                            d->num_classes - 1);
                goto done;
            }
            if (vkd_ds_add(d, r + 1, 3, CIFAR_SIDE, CIFAR_SIDE, 1, r[0], files[b], err, errlen)) goto done;
        }
    }
    rc = 0;
    goto done;
oom:
    vkd_ds_fail(err, errlen, dir, "out of memory");
done:
    free(data);
    for (int b = 0; b < CIFAR_TRAIN_BATCHES; b++) free(files[b]);
    return rc;
}
