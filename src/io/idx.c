// IDX files (MNIST, Fashion-MNIST): big-endian magic 0x00000803 (u8 images,
// 3 dims: count, rows, cols) or 0x00000801 (u8 labels, 1 dim: count), then
// the data. Read through zlib's gzread, which reads gzip and plain files
// alike, so both "train-images-idx3-ubyte.gz" and its gunzipped form work.
//
// Every file is read to its end, whatever max_images says: a truncated or
// corrupt download is reported the same way however many images are used, and
// reading past the last byte makes zlib check the gzip CRC and length. Only the
// images kept are stored.
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "io/dataset_impl.h"

#define IDX_IMAGES 0x00000803u
#define IDX_LABELS 0x00000801u
#define IDX_CHUNK (1u << 24)
#define IDX_SKIP (1u << 20)  // the scratch chunk for the bytes not kept (idx_body)

static int is_file(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

// zlib's message without the "PATH: " it puts in front.
static const char *gz_msg(gzFile f, const char *path, int *errnum) {
    const char *m = gzerror(f, errnum);
    size_t n = strlen(path);
    if (m && strncmp(m, path, n) == 0 && m[n] == ':' && m[n + 1] == ' ') m += n + 2;
    return m ? m : "";
}

// Reads up to n bytes; *got says how many came. 0 on a clean read or end of
// file, -1 (with err) on a read or gzip error.
// base: bytes of this part read before (for the messages).
static int gz_read(gzFile f, const char *path, void *dst, size_t n, size_t *got, const char *what, size_t base,
                   size_t expect, char *err, size_t errlen) {
    unsigned char *p = dst;
    *got = 0;
    while (*got < n) {
        size_t want = n - *got < IDX_CHUNK ? n - *got : IDX_CHUNK;
        int r = gzread(f, p + *got, (unsigned)want);
        if (r > 0) {
            *got += (size_t)r;
            continue;
        }
        int errnum = Z_OK;
        const char *m = gz_msg(f, path, &errnum);
        if (r < 0 || (errnum != Z_OK && errnum != Z_BUF_ERROR)) {
            if (errnum == Z_ERRNO)
                vkd_ds_fail(err, errlen, path, "read error: %s", strerror(errno));
            else
                // No position: zlib inflates ahead of the reader, so the error
                // (a bad CRC, say) may surface before the bytes it concerns.
                vkd_ds_fail(err, errlen, path, "corrupt gzip data (%s)", m);
            return -1;
        }
        if (errnum == Z_BUF_ERROR) {
            // zlib's "unexpected end of file": the gzip stream was cut short.
            if (base + *got >= expect)
                vkd_ds_fail(err, errlen, path, "truncated: the gzip stream ends before its checksum");
            else
                vkd_ds_fail(err, errlen, path, "truncated: expected %zu bytes of %s, got %zu (gzip stream cut short)",
                            expect, what, base + *got);
            return -1;
        }
        break;  // end of file
    }
    return 0;
}

// Opens the IDX file of one kind and checks its header; *dims gets the sizes
// after the magic (count, then rows and cols for images).
static gzFile idx_open(const char *path, uint32_t magic, uint32_t *dims, char *err, size_t errlen) {
    gzFile f = gzopen(path, "rb");
    if (!f) {
        vkd_ds_fail(err, errlen, path, "cannot open: %s", errno ? strerror(errno) : "out of memory");
        return NULL;
    }
    gzbuffer(f, 1 << 18);
    int ndim = magic == IDX_IMAGES ? 3 : 1;
    size_t hlen = 4 + 4 * (size_t)ndim, got;
    unsigned char h[16];
    const char *what = magic == IDX_IMAGES ? "image" : "label";
    if (gz_read(f, path, h, hlen, &got, "header", 0, hlen, err, errlen)) {
        gzclose(f);
        return NULL;
    }
    if (got >= 4 && be32(h) != magic) {
        vkd_ds_fail(err, errlen, path, "bad magic 0x%08x: not an IDX %s file (expected 0x%08x)", be32(h), what, magic);
        gzclose(f);
        return NULL;
    }
    if (got < hlen) {
        vkd_ds_fail(err, errlen, path, "truncated: expected a %zu-byte IDX %s header, got %zu bytes", hlen, what, got);
        gzclose(f);
        return NULL;
    }
    for (int i = 0; i < ndim; i++) dims[i] = be32(h + 4 + 4 * i);
    return f;
}

// The rest of the file after the header: exactly n bytes, or an error. The first keep of them
// are returned. The others are read too, into a scratch chunk, and dropped: a truncated or
// corrupt file fails the same way whatever max_images says, and zlib checks the CRC at the end.
// (Storing them cost a short run 47 MB of page faults and reallocations for Fashion-MNIST's
// training images, 512 of which it used.)
static unsigned char *idx_body(gzFile f, const char *path, size_t n, size_t keep, const char *what, char *err,
                               size_t errlen) {
    // Grows as data arrives, so a header claiming absurd sizes costs no more
    // memory than the file really holds.
    size_t cap = keep < IDX_CHUNK ? keep : IDX_CHUNK, len = 0, got = 0;
    unsigned char *buf = malloc(cap ? cap : 1);
    while (buf && len < keep) {
        size_t want = (cap < keep ? cap : keep) - len;
        if (gz_read(f, path, buf + len, want, &got, what, len, n, err, errlen)) {
            free(buf);
            return NULL;
        }
        len += got;
        if (len == keep || got < want) break;
        size_t ncap = cap * 2 < keep ? cap * 2 : keep;
        unsigned char *nb = realloc(buf, ncap);
        if (!nb) free(buf);
        buf = nb, cap = ncap;
    }
    unsigned char *scratch = buf && len == keep && keep < n ? malloc(IDX_SKIP) : NULL;
    if (!buf || (len == keep && keep < n && !scratch)) {
        free(buf);
        vkd_ds_fail(err, errlen, path, "out of memory reading %zu bytes of %s", n, what);
        return NULL;
    }
    while (scratch && len < n) {  // the bytes not kept
        size_t want = n - len < IDX_SKIP ? n - len : IDX_SKIP;
        if (gz_read(f, path, scratch, want, &got, what, len, n, err, errlen)) {
            free(scratch), free(buf);
            return NULL;
        }
        len += got;
        if (got < want) break;
    }
    free(scratch);
    if (len < n) {
        vkd_ds_fail(err, errlen, path, "truncated: expected %zu bytes of %s, got %zu", n, what, len);
        free(buf);
        return NULL;
    }
    unsigned char extra[4096];
    size_t more = 0;
    do {
        if (gz_read(f, path, extra, sizeof extra, &got, what, n + more, n, err, errlen)) {
            free(buf);
            return NULL;
        }
        more += got;
    } while (got == sizeof extra);
    if (more) {
        vkd_ds_fail(err, errlen, path, "trailing data: the header announces %zu bytes of %s, the file has %zu%s more",
                    n, what, more, got == sizeof extra ? "+" : "");
        free(buf);
        return NULL;
    }
    return buf;
}

// The file for a split and kind in dir ("train" + "images-idx3" ...), in the
// spellings in use: "-idx3-ubyte" (yann.lecun.com, Fashion-MNIST) and
// ".idx3-ubyte" (some mirrors), gzip or not. NULL when there is none.
static char *find_file(const char *dir, const char *prefix, const char *kind, int ndim) {
    const char *seps[] = {"-", "."}, *exts[] = {".gz", ""};
    size_t n = strlen(dir) + strlen(prefix) + strlen(kind) + 32;
    char *p = malloc(n);
    if (!p) return NULL;
    for (int s = 0; s < 2; s++)
        for (int e = 0; e < 2; e++) {
            snprintf(p, n, "%s/%s-%s%sidx%d-ubyte%s", dir, prefix, kind, seps[s], ndim, exts[e]);
            if (is_file(p)) return p;
        }
    free(p);
    return NULL;
}

int vkd_ds_is_idx_dir(const char *dir) {
    DIR *dh = opendir(dir);
    if (!dh) return 0;
    struct dirent *e;
    int found = 0;
    while (!found && (e = readdir(dh)))
        found = strstr(e->d_name, "-images-idx3-ubyte") || strstr(e->d_name, "-images.idx3-ubyte");
    closedir(dh);
    return found;
}

int vkd_ds_is_idx_file(const char *path) {
    gzFile f = gzopen(path, "rb");
    if (!f) return 0;
    unsigned char h[4];
    int ok = gzread(f, h, 4) == 4 && be32(h) == IDX_IMAGES;
    gzclose(f);
    return ok;
}

// The labels file beside a single images file: "images-idx3" -> "labels-idx1"
// in its name (either spelling), if that file exists.
static char *sibling_labels(const char *images) {
    const char *base = strrchr(images, '/');
    base = base ? base + 1 : images;
    const char *pats[][2] = {{"images-idx3", "labels-idx1"}, {"images.idx3", "labels.idx1"}};
    for (int i = 0; i < 2; i++) {
        const char *at = strstr(base, pats[i][0]);
        if (!at) continue;
        char *p = strdup(images);
        if (!p) return NULL;
        memcpy(p + (at - images), pats[i][1], strlen(pats[i][1]));
        if (is_file(p)) return p;
        // A gzip'd labels file beside a plain images file, or the other way.
        size_t n = strlen(p);
        char *q = malloc(n + 4);
        if (q) {
            if (n > 3 && strcmp(p + n - 3, ".gz") == 0)
                memcpy(q, p, n - 3), q[n - 3] = 0;
            else
                snprintf(q, n + 4, "%s.gz", p);
            free(p);
            if (is_file(q)) return q;
            free(q);
        } else {
            free(p);
        }
    }
    return NULL;
}

int vkd_ds_load_idx(vkd_dataset *d, const char *source, const char *split, int single, char *err, size_t errlen) {
    char *ipath = NULL, *lpath = NULL;
    unsigned char *px = NULL, *lb = NULL;
    gzFile f = NULL;
    int rc = -1;
    if (single) {
        ipath = strdup(source);
        lpath = sibling_labels(source);
    } else {
        int test = strcmp(split, "test") == 0;
        ipath = find_file(source, test ? "t10k" : "train", "images", 3);
        if (!ipath && test) ipath = find_file(source, "test", "images", 3);
        if (!ipath) {
            vkd_ds_fail(err, errlen, source, "IDX directory without %s-images-idx3-ubyte[.gz] (split '%s')",
                        test ? "t10k" : "train", split);
            goto done;
        }
        // The labels are named like the images that were found.
        const char *b = strrchr(ipath, '/') + 1;
        lpath = find_file(source, strncmp(b, "t10k", 4) == 0 ? "t10k" : test ? "test" : "train", "labels", 1);
        if (!lpath) {
            vkd_ds_fail(err, errlen, source, "IDX directory without the labels for %s (%.*s-labels-idx1-ubyte[.gz])", b,
                        (int)(strchr(b, '-') - b), b);
            goto done;
        }
    }
    if (!ipath) goto done;

    uint32_t dims[3];
    if (!(f = idx_open(ipath, IDX_IMAGES, dims, err, errlen))) goto done;
    int64_t n = dims[0];
    int rows = (int)dims[1], cols = (int)dims[2];
    if (n == 0 || dims[1] == 0 || dims[2] == 0 || dims[1] > 16384 || dims[2] > 16384) {
        vkd_ds_fail(err, errlen, ipath,
                    "header says %u images of %ux%u: expected at least one image of 1..16384 pixels", dims[0], dims[2],
                    dims[1]);
        goto done;
    }
    size_t per = (size_t)rows * cols;
    int64_t keep = vkd_ds_limit(d, n);
    if (!(px = idx_body(f, ipath, (size_t)n * per, (size_t)keep * per, "pixels", err, errlen))) goto done;
    gzclose(f), f = NULL;

    int max_label = -1;
    if (lpath) {
        uint32_t ld[1];
        if (!(f = idx_open(lpath, IDX_LABELS, ld, err, errlen))) goto done;
        if ((int64_t)ld[0] != n) {
            vkd_ds_fail(err, errlen, lpath, "%u labels, but %s has %lld images", ld[0], ipath, (long long)n);
            goto done;
        }
        if (!(lb = idx_body(f, lpath, (size_t)n, (size_t)n, "labels", err, errlen))) goto done;
        gzclose(f), f = NULL;
        for (int64_t i = 0; i < n; i++)
            if (lb[i] > max_label) max_label = lb[i];
    }
    // Classes from every label in the file, not just the ones kept, so that
    // max_images never changes the label space.
    d->num_classes = max_label + 1;

    if (vkd_ds_set_shape(d, 1, rows, cols, ipath, err, errlen)) goto done;
    if (vkd_ds_reserve(d, keep, ipath, err, errlen)) goto done;
    for (int64_t i = 0; i < keep; i++)
        if (vkd_ds_add(d, px + (size_t)i * per, 1, rows, cols, 1, lb ? lb[i] : 0, ipath, err, errlen)) goto done;
    rc = 0;
done:
    if (f) gzclose(f);
    free(px), free(lb), free(ipath), free(lpath);
    return rc;
}
