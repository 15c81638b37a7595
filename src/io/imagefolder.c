// A folder of PNG/JPEG images, searched recursively (every directory in
// strcmp order, so the image order, and so labels and batches, are the same on
// every machine). Images in first-level subfolders take the subfolder as their
// class (classes in sorted order); a folder with images only at its top level
// is unlabelled. Hidden entries (".name") are skipped.
//
// Every image's header is read (stbi_info) before any is decoded: a size that
// differs, or a file that is not an image, is reported before minutes of
// decoding, and the channel count to keep is known up front.
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stb/stb_image.h>  // the implementation is Debian's libstb
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "io/dataset_impl.h"

// A PNG's chunks must each fit in the file. stb_image grows its buffer to a
// chunk's *declared* length before reading it, so a 90-byte file declaring a
// 1.6 GB IDAT chunk made it reserve 2 GB (found by fuzz_image). Walks the
// chunk headers only; other formats pass.
static int png_chunks_check(const char *path, char *err, size_t errlen) {
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    FILE *f = fopen(path, "rb");
    unsigned char h[8];
    int rc = 0;
    if (!f) return 0;  // stb_image reports it
    if (fread(h, 1, 8, f) == 8 && !memcmp(h, sig, 8) && !fseek(f, 0, SEEK_END)) {
        long size = ftell(f), pos = 8;
        while (pos + 8 <= size && !fseek(f, pos, SEEK_SET) && fread(h, 1, 8, f) == 8) {
            unsigned long len = (unsigned long)h[0] << 24 | (unsigned long)h[1] << 16 | (unsigned long)h[2] << 8 | h[3];
            if (len > (unsigned long)(size - pos - 12 < 0 ? 0 : size - pos - 12)) {
                vkd_ds_fail(err, errlen, path, "PNG chunk '%.4s' at byte %ld declares %lu bytes, beyond the end of the file",
                            (const char *)h + 4, pos, len);
                rc = -1;
                break;
            }
            if (!memcmp(h + 4, "IEND", 4)) break;
            pos += 12 + (long)len;
        }
    }
    fclose(f);
    return rc;
}

#define FOLDER_MAX_DEPTH 32  // deeper is surely a symlink loop

typedef struct {
    char **rel;  // paths relative to the root
    int64_t n, cap;
    int oom;
} pathlist;

static int is_image_name(const char *name) {
    const char *dot = strrchr(name, '.');
    return dot && (strcasecmp(dot, ".png") == 0 || strcasecmp(dot, ".jpg") == 0 || strcasecmp(dot, ".jpeg") == 0);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static char *join(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s%s%s", a, *a ? "/" : "", b);
    return p;
}

static void push(pathlist *l, char *rel) {
    if (!rel) {
        l->oom = 1;
        return;
    }
    if (l->n == l->cap) {
        int64_t cap = l->cap ? 2 * l->cap : 256;
        char **nr = realloc(l->rel, (size_t)cap * sizeof *nr);
        if (!nr) {
            free(rel), l->oom = 1;
            return;
        }
        l->rel = nr, l->cap = cap;
    }
    l->rel[l->n++] = rel;
}

// Appends the images under root/rel in sorted order.
static void walk(const char *root, const char *rel, int depth, pathlist *l) {
    char *dir = *rel ? join(root, rel) : strdup(root);
    DIR *dh = dir ? opendir(dir) : NULL;
    if (!dh) {
        free(dir);
        return;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(dh))) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **nn = realloc(names, cap * sizeof *nn);
            if (!nn) break;
            names = nn;
        }
        if (!(names[n] = strdup(e->d_name))) break;
        n++;
    }
    closedir(dh);
    if (n) qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n; i++) {
        char *full = join(dir, names[i]);
        struct stat sb;
        if (full && stat(full, &sb) == 0) {
            if (S_ISDIR(sb.st_mode) && depth < FOLDER_MAX_DEPTH) {
                char *sub = join(rel, names[i]);
                if (sub)
                    walk(root, sub, depth + 1, l);
                else
                    l->oom = 1;
                free(sub);
            } else if (S_ISREG(sb.st_mode) && is_image_name(names[i]))
                push(l, join(rel, names[i]));
        }
        free(full), free(names[i]);
    }
    free(names), free(dir);
}

int vkd_ds_load_folder(vkd_dataset *d, const char *root, char *err, size_t errlen) {
    pathlist l = {0};
    int rc = -1;
    int *label = NULL, *ws = NULL, *hs = NULL;
    walk(root, "", 0, &l);
    if (l.oom) {
        vkd_ds_fail(err, errlen, root, "out of memory listing the images");
        goto done;
    }
    if (l.n == 0) {
        rc = 1;
        goto done;
    }

    // Classes: the first path components, already in sorted order.
    label = calloc((size_t)l.n, sizeof *label);
    ws = calloc((size_t)l.n, sizeof *ws), hs = calloc((size_t)l.n, sizeof *hs);
    if (!label || !ws || !hs) goto oom;
    int64_t top = -1, sub = -1;
    for (int64_t i = 0; i < l.n; i++) {
        const char *slash = strchr(l.rel[i], '/');
        if (!slash) {
            if (top < 0) top = i;
            continue;
        }
        if (sub < 0) sub = i;
        size_t k = (size_t)(slash - l.rel[i]);
        int last = d->num_classes - 1;
        if (last < 0 || strlen(d->class_names[last]) != k || strncmp(d->class_names[last], l.rel[i], k) != 0) {
            char **nn = realloc(d->class_names, (size_t)(d->num_classes + 1) * sizeof *nn);
            if (!nn) goto oom;
            d->class_names = nn;
            if (!(nn[d->num_classes] = strndup(l.rel[i], k))) goto oom;
            d->num_classes++;
        }
        label[i] = d->num_classes - 1;
    }
    if (top >= 0 && sub >= 0) {
        vkd_ds_fail(
            err, errlen, root,
            "images both at the top level (%s) and in subfolders (%s): put every image in a class subfolder, or "
            "none in subfolders",
            l.rel[top], l.rel[sub]);
        goto done;
    }

    // Headers: sizes and channels.
    int colour = 0;
    for (int64_t i = 0; i < l.n; i++) {
        char *p = join(root, l.rel[i]);
        int comp;
        if (!p) goto oom;
        if (!stbi_info(p, &ws[i], &hs[i], &comp)) {
            vkd_ds_fail(err, errlen, p, "not a readable PNG/JPEG image (%s)", stbi_failure_reason());
            free(p);
            goto done;
        }
        if (vkd_ds_check_size(comp, hs[i], ws[i], p, err, errlen) || png_chunks_check(p, err, errlen)) {
            free(p);
            goto done;
        }
        if (comp >= 3) colour = 1;
        if (i > 0 && d->opts.resolution <= 0 && d->opts.pad_to <= 0 && (ws[i] != ws[0] || hs[i] != hs[0])) {
            vkd_ds_fail(err, errlen, p, "%dx%d differs from the other images' %dx%d (set a resolution to resize)",
                        ws[i], hs[i], ws[0], hs[0]);
            free(p);
            goto done;
        }
        if (d->opts.pad_to > 0 && (ws[i] > d->opts.pad_to || hs[i] > d->opts.pad_to)) {
            vkd_ds_fail(err, errlen, p, "%dx%d is larger than pad_to %d", ws[i], hs[i], d->opts.pad_to);
            free(p);
            goto done;
        }
        free(p);
    }

    if (vkd_ds_set_shape(d, colour ? 3 : 1, hs[0], ws[0], root, err, errlen)) goto done;
    int64_t keep = vkd_ds_limit(d, l.n);
    if (vkd_ds_reserve(d, keep, root, err, errlen)) goto done;
    for (int64_t i = 0; i < keep; i++) {
        char *p = join(root, l.rel[i]);
        if (!p) goto oom;
        int w, h, comp;
        unsigned char *px = stbi_load(p, &w, &h, &comp, 0);
        if (!px) {
            vkd_ds_fail(err, errlen, p, "cannot decode (%s)", stbi_failure_reason());
            free(p);
            goto done;
        }
        int bad = vkd_ds_add(d, px, comp, h, w, 0, label[i], p, err, errlen);
        stbi_image_free(px);
        free(p);
        if (bad) goto done;
    }
    rc = 0;
    goto done;
oom:
    vkd_ds_fail(err, errlen, root, "out of memory");
done:
    for (int64_t i = 0; i < l.n; i++) free(l.rel[i]);
    free(l.rel), free(label), free(ws), free(hs);
    return rc;
}
