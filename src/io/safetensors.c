// safetensors reader and writer.
//
// The reader trusts nothing: a file is accepted only when the header is valid
// UTF-8 JSON, every entry has a known dtype, a shape of non-negative integers
// and data_offsets whose size matches the shape, names are unique, and the
// tensors tile the data section exactly (no holes, overlaps or trailing
// bytes). Only then is any tensor read, with pread, so a file of any size
// costs only the memory of the tensors asked for.
#define _POSIX_C_SOURCE 200809L
#define _FILE_OFFSET_BITS 64
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/utf8.h"
#include "vkdistill/io.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little endian and is read as is: a big-endian host needs byte swapping here"
#endif

#define ST_MAX_HEADER 100000000ull  // the limit of the reference implementation
#define ST_CHUNK (1 << 20)          // bytes converted at a time when a dtype is not F32

struct vkd_st {
    char *path;
    int fd;
    uint64_t data_start, data_size;  // the data section: file bytes [8 + N, file size)
    int n;
    vkd_st_info *info;            // in file order (by offset)
    const vkd_st_info **by_name;  // sorted by name, for bsearch
    int nmeta;
    char **meta;  // key, value, key, value, ...
};

static const struct {
    const char *name;
    int size;
} st_dtypes[] = {
    {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"I16", 2}, {"U16", 2}, {"F16", 2},     {"BF16", 2},    {"I32", 4},
    {"U32", 4},  {"F32", 4}, {"F64", 8}, {"I64", 8}, {"U64", 8}, {"F8_E4M3", 1}, {"F8_E5M2", 1},
};
#define ST_NDTYPES ((int)(sizeof st_dtypes / sizeof st_dtypes[0]))

static int dtype_size(const char *s) {
    for (int i = 0; i < ST_NDTYPES; i++)
        if (strcmp(s, st_dtypes[i].name) == 0) return st_dtypes[i].size;
    return 0;
}

// "PATH: message", on one line whatever the tensor names contain.
static void st_fail(char *err, size_t errlen, const char *path, const char *fmt, ...) {
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

static const char *fmt_shape(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
    return buf;
}

static const char *json_kind(const cJSON *v) {
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsArray(v)) return "an array";
    return "an object";
}

// JSON numbers are doubles in cJSON: accept exact non-negative integers up to
// 2^53, beyond which a double cannot say which integer was written.
static int json_u64(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!(d >= 0) || d != floor(d) || d > 9007199254740992.0) return -1;
    *out = (uint64_t)d;
    return 0;
}

// 0 when all n bytes were read; an errno, or -1 at end of file.
static int pread_all(int fd, void *dst, size_t n, uint64_t off) {
    unsigned char *p = dst;
    while (n > 0) {
        ssize_t r = pread(fd, p, n, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return errno ? errno : EIO;
        if (r == 0) return -1;
        p += r, n -= (size_t)r, off += (uint64_t)r;
    }
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

// A name that occurs twice in names[0..n) (sorted here), or NULL.
static const char *find_duplicate(const char **names, int n) {
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    for (int i = 1; i < n; i++)
        if (strcmp(names[i - 1], names[i]) == 0) return names[i];
    return NULL;
}

static int cmp_offset(const void *a, const void *b) {
    const vkd_st_info *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int cmp_by_name(const void *a, const void *b) {
    return strcmp((*(const vkd_st_info *const *)a)->name, (*(const vkd_st_info *const *)b)->name);
}

void vkd_st_close(vkd_st *st) {
    if (!st) return;
    if (st->fd >= 0) close(st->fd);
    for (int i = 0; i < st->n; i++) free((char *)st->info[i].name);
    for (int i = 0; i < 2 * st->nmeta; i++) free(st->meta[i]);
    free(st->info), free(st->by_name), free(st->meta), free(st->path), free(st);
}

// One header entry: its dtype, shape and data_offsets, checked against each
// other and against the size of the data section.
static int parse_entry(const vkd_st *st, const cJSON *item, vkd_st_info *t, char *err, size_t errlen) {
    const char *name = item->string, *path = st->path;
    if (!cJSON_IsObject(item)) {
        st_fail(err, errlen, path, "tensor '%s': expected an object with dtype, shape and data_offsets, got %s", name,
                json_kind(item));
        return -1;
    }
    const cJSON *dt = NULL, *sh = NULL, *off = NULL, *f;
    cJSON_ArrayForEach(f, item) {
        const cJSON **slot = strcmp(f->string, "dtype") == 0          ? &dt
                             : strcmp(f->string, "shape") == 0        ? &sh
                             : strcmp(f->string, "data_offsets") == 0 ? &off
                                                                      : NULL;
        if (!slot) {
            st_fail(err, errlen, path, "tensor '%s': unknown field '%s'", name, f->string);
            return -1;
        }
        if (*slot) {
            st_fail(err, errlen, path, "tensor '%s': duplicate field '%s'", name, f->string);
            return -1;
        }
        *slot = f;
    }
    const char *missing = !dt ? "dtype" : !sh ? "shape" : !off ? "data_offsets" : NULL;
    if (missing) {
        st_fail(err, errlen, path, "tensor '%s': missing '%s'", name, missing);
        return -1;
    }

    int esize = cJSON_IsString(dt) ? dtype_size(dt->valuestring) : 0;
    if (!esize || strlen(dt->valuestring) >= sizeof t->dtype) {
        char known[160];
        size_t k = 0;
        for (int i = 0; i < ST_NDTYPES; i++)
            k += (size_t)snprintf(known + k, sizeof known - k, "%s%s", i ? " " : "", st_dtypes[i].name);
        if (cJSON_IsString(dt))
            st_fail(err, errlen, path, "tensor '%s': unknown dtype '%s' (known: %s)", name, dt->valuestring, known);
        else
            st_fail(err, errlen, path, "tensor '%s': dtype must be a string, got %s", name, json_kind(dt));
        return -1;
    }
    strcpy(t->dtype, dt->valuestring);

    if (!cJSON_IsArray(sh)) {
        st_fail(err, errlen, path, "tensor '%s': shape must be an array of integers, got %s", name, json_kind(sh));
        return -1;
    }
    int ndim = cJSON_GetArraySize(sh);
    if (ndim > VKD_ST_MAX_DIMS) {
        st_fail(err, errlen, path, "tensor '%s': shape has %d dimensions, at most %d are supported", name, ndim,
                VKD_ST_MAX_DIMS);
        return -1;
    }
    t->ndim = ndim;
    uint64_t numel = 1;
    int overflow = 0, i = 0;
    cJSON_ArrayForEach(f, sh) {
        uint64_t d;
        if (json_u64(f, &d) != 0) {
            if (cJSON_IsNumber(f) && f->valuedouble < 0)
                st_fail(err, errlen, path, "tensor '%s': shape dimension %d is negative (%.17g)", name, i,
                        f->valuedouble);
            else
                st_fail(err, errlen, path, "tensor '%s': shape dimension %d is not a non-negative integer", name, i);
            return -1;
        }
        t->shape[i++] = (int64_t)d;
        if (d && numel > UINT64_MAX / d) overflow = 1;
        numel *= d;
    }
    char sbuf[200];
    if (overflow || numel > UINT64_MAX / (uint64_t)esize || numel > (uint64_t)INT64_MAX) {
        st_fail(err, errlen, path, "tensor '%s': shape %s is too large", name,
                fmt_shape(sbuf, sizeof sbuf, ndim, t->shape));
        return -1;
    }
    t->numel = (int64_t)numel;

    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 || json_u64(off->child, &t->begin) != 0 ||
        json_u64(off->child->next, &t->end) != 0) {
        st_fail(err, errlen, path, "tensor '%s': data_offsets must be [begin, end], two non-negative integers", name);
        return -1;
    }
    unsigned long long b = t->begin, e = t->end, need = numel * (uint64_t)esize;
    if (e < b) {
        st_fail(err, errlen, path, "tensor '%s': data_offsets [%llu, %llu] end before they begin", name, b, e);
        return -1;
    }
    if (e - b != need) {
        st_fail(err, errlen, path,
                "tensor '%s': data_offsets [%llu, %llu] hold %llu bytes but shape %s of %s needs %llu", name, b, e,
                e - b, fmt_shape(sbuf, sizeof sbuf, ndim, t->shape), t->dtype, need);
        return -1;
    }
    if (e > st->data_size) {
        st_fail(err, errlen, path,
                "tensor '%s': data_offsets [%llu, %llu] go past the end of the data section (%llu bytes)", name, b, e,
                (unsigned long long)st->data_size);
        return -1;
    }
    return 0;
}

static int parse_metadata(vkd_st *st, const cJSON *m, char *err, size_t errlen) {
    if (!cJSON_IsObject(m)) {
        st_fail(err, errlen, st->path, "__metadata__ must be an object of strings, got %s", json_kind(m));
        return -1;
    }
    int n = cJSON_GetArraySize(m);
    st->meta = calloc((size_t)(2 * n + 1), sizeof *st->meta);
    const char **keys = malloc((size_t)(n + 1) * sizeof *keys);
    if (!st->meta || !keys) {
        free(keys);
        st_fail(err, errlen, st->path, "out of memory reading the header");
        return -1;
    }
    const cJSON *f;
    cJSON_ArrayForEach(f, m) {
        if (!cJSON_IsString(f)) {
            st_fail(err, errlen, st->path, "__metadata__ '%s': expected a string value, got %s", f->string,
                    json_kind(f));
            free(keys);
            return -1;
        }
        keys[st->nmeta] = f->string;
        st->meta[2 * st->nmeta] = strdup(f->string);
        st->meta[2 * st->nmeta + 1] = strdup(f->valuestring);
        st->nmeta++;
        if (!st->meta[2 * st->nmeta - 2] || !st->meta[2 * st->nmeta - 1]) {
            st_fail(err, errlen, st->path, "out of memory reading the header");
            free(keys);
            return -1;
        }
    }
    const char *dup = find_duplicate(keys, n);
    if (dup) st_fail(err, errlen, st->path, "__metadata__: duplicate key '%s'", dup);
    free(keys);
    return dup ? -1 : 0;
}

// Everything that can be checked from the header, in one place, so that a bad
// file fails at open and never halfway through loading a model.
static int parse_header(vkd_st *st, char *hdr, uint64_t hlen, char *err, size_t errlen) {
    const char *path = st->path;
    const char *nul = memchr(hdr, 0, hlen);
    if (nul) {
        st_fail(err, errlen, path, "header contains a NUL byte (at byte %lld of the header)", (long long)(nul - hdr));
        return -1;
    }
    size_t bad = vkd_utf8_check((const unsigned char *)hdr, hlen);
    if (bad != hlen) {
        st_fail(err, errlen, path, "header is not valid UTF-8 (at byte %zu of the header)", bad);
        return -1;
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(hdr, &end, 1);
    if (!root) {
        st_fail(err, errlen, path, "header is not valid JSON (near byte %lld of %llu)",
                (long long)(end ? end - hdr : 0), (unsigned long long)hlen);
        return -1;
    }
    if (!cJSON_IsObject(root)) {
        st_fail(err, errlen, path, "header is not a JSON object (it is %s)", json_kind(root));
        cJSON_Delete(root);
        return -1;
    }
    int nitems = cJSON_GetArraySize(root), rc = -1;
    st->info = calloc((size_t)nitems + 1, sizeof *st->info);
    st->by_name = malloc(((size_t)nitems + 1) * sizeof *st->by_name);
    const char **names = malloc(((size_t)nitems + 1) * sizeof *names);
    if (!st->info || !st->by_name || !names) {
        st_fail(err, errlen, path, "out of memory reading the header");
        goto done;
    }
    const cJSON *item, *meta = NULL;
    cJSON_ArrayForEach(item, root) {
        if (strcmp(item->string, "__metadata__") == 0) {
            if (meta) {
                st_fail(err, errlen, path, "duplicate '__metadata__'");
                goto done;
            }
            meta = item;
            if (parse_metadata(st, item, err, errlen)) goto done;
            continue;
        }
        vkd_st_info *t = &st->info[st->n];
        if (parse_entry(st, item, t, err, errlen)) goto done;
        if (!(t->name = strdup(item->string))) {
            st_fail(err, errlen, path, "out of memory reading the header");
            goto done;
        }
        names[st->n] = t->name;
        st->n++;
    }
    const char *dup = find_duplicate(names, st->n);
    if (dup) {
        st_fail(err, errlen, path, "duplicate tensor name '%s'", dup);
        goto done;
    }

    // Tiling: sorted by offset, each tensor starts where the previous ended.
    qsort(st->info, (size_t)st->n, sizeof *st->info, cmp_offset);
    uint64_t at = 0;
    for (int i = 0; i < st->n; i++) {
        const vkd_st_info *t = &st->info[i];
        if (t->begin > at) {
            st_fail(err, errlen, path, "hole of %llu bytes before tensor '%s' (data_offsets [%llu, %llu]; %s)",
                    (unsigned long long)(t->begin - at), t->name, (unsigned long long)t->begin,
                    (unsigned long long)t->end, i ? "the tensor before it ends earlier" : "the data starts at 0");
            goto done;
        }
        if (t->begin < at) {
            const vkd_st_info *p = &st->info[i - 1];
            st_fail(err, errlen, path, "tensor '%s' data_offsets [%llu, %llu] overlap tensor '%s' [%llu, %llu]",
                    t->name, (unsigned long long)t->begin, (unsigned long long)t->end, p->name,
                    (unsigned long long)p->begin, (unsigned long long)p->end);
            goto done;
        }
        at = t->end;
    }
    if (at != st->data_size) {
        st_fail(err, errlen, path,
                "%llu trailing bytes after the last tensor (tensors end at %llu, the data section has %llu)",
                (unsigned long long)(st->data_size - at), (unsigned long long)at, (unsigned long long)st->data_size);
        goto done;
    }
    for (int i = 0; i < st->n; i++) st->by_name[i] = &st->info[i];
    qsort(st->by_name, (size_t)st->n, sizeof *st->by_name, cmp_by_name);
    rc = 0;
done:
    free(names);
    cJSON_Delete(root);
    return rc;
}

vkd_st *vkd_st_open(const char *path, char *err, size_t errlen) {
    vkd_st *st = calloc(1, sizeof *st);
    if (!st || !(st->path = strdup(path))) {
        free(st);
        st_fail(err, errlen, path, "out of memory");
        return NULL;
    }
    st->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (st->fd < 0) {
        st_fail(err, errlen, path, "cannot open: %s", strerror(errno));
        vkd_st_close(st);
        return NULL;
    }
    struct stat sb;
    if (fstat(st->fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        st_fail(err, errlen, path, "not a regular file");
        vkd_st_close(st);
        return NULL;
    }
    uint64_t size = (uint64_t)sb.st_size;
    unsigned char len8[8];
    if (size < 8 || pread_all(st->fd, len8, 8, 0) != 0) {
        st_fail(err, errlen, path, "file is %llu bytes, too short for a safetensors header (8-byte length first)",
                (unsigned long long)size);
        vkd_st_close(st);
        return NULL;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | len8[i];
    if (hlen > ST_MAX_HEADER) {
        st_fail(err, errlen, path, "header length %llu exceeds the limit of 100000000 bytes (not a safetensors file?)",
                (unsigned long long)hlen);
        vkd_st_close(st);
        return NULL;
    }
    if (hlen > size - 8) {
        st_fail(err, errlen, path, "header length %llu goes past the end of the file (%llu bytes)",
                (unsigned long long)hlen, (unsigned long long)size);
        vkd_st_close(st);
        return NULL;
    }
    st->data_start = 8 + hlen;
    st->data_size = size - 8 - hlen;
    char *hdr = malloc(hlen + 1);
    int r = hdr ? pread_all(st->fd, hdr, hlen, 8) : ENOMEM;
    if (r != 0) {
        st_fail(err, errlen, path, "cannot read the header: %s", r > 0 ? strerror(r) : "unexpected end of file");
        free(hdr);
        vkd_st_close(st);
        return NULL;
    }
    hdr[hlen] = 0;
    r = parse_header(st, hdr, hlen, err, errlen);
    free(hdr);
    if (r) {
        vkd_st_close(st);
        return NULL;
    }
    return st;
}

int vkd_st_count(const vkd_st *st) { return st->n; }

const vkd_st_info *vkd_st_get(const vkd_st *st, int i) { return i >= 0 && i < st->n ? &st->info[i] : NULL; }

const vkd_st_info *vkd_st_find(const vkd_st *st, const char *name) {
    int lo = 0, hi = st->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2, c = strcmp(name, st->by_name[mid]->name);
        if (c == 0) return st->by_name[mid];
        if (c < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return NULL;
}

const char *vkd_st_metadata(const vkd_st *st, const char *key) {
    for (int i = 0; i < st->nmeta; i++)
        if (strcmp(st->meta[2 * i], key) == 0) return st->meta[2 * i + 1];
    return NULL;
}

static const vkd_st_info *find_or_fail(const vkd_st *st, const char *name, char *err, size_t errlen) {
    const vkd_st_info *t = vkd_st_find(st, name);
    if (!t) st_fail(err, errlen, st->path, "no tensor '%s' (the file has %d)", name, st->n);
    return t;
}

static int read_fail(const vkd_st *st, const vkd_st_info *t, int r, char *err, size_t errlen) {
    st_fail(err, errlen, st->path, "tensor '%s': cannot read: %s", t->name,
            r > 0 ? strerror(r) : "unexpected end of file (was the file truncated after it was opened?)");
    return -1;
}

int vkd_st_read_raw(vkd_st *st, const char *name, void *dst, size_t dstlen, char *err, size_t errlen) {
    const vkd_st_info *t = find_or_fail(st, name, err, errlen);
    if (!t) return -1;
    if (dstlen != t->end - t->begin) {
        st_fail(err, errlen, st->path, "tensor '%s': has %llu bytes, the buffer %zu", name,
                (unsigned long long)(t->end - t->begin), dstlen);
        return -1;
    }
    int r = pread_all(st->fd, dst, dstlen, st->data_start + t->begin);
    return r ? read_fail(st, t, r, err, errlen) : 0;
}

int vkd_st_read_f32(vkd_st *st, const char *name, int ndim, const int64_t *shape, float *dst, char *err,
                    size_t errlen) {
    const vkd_st_info *t = find_or_fail(st, name, err, errlen);
    if (!t) return -1;
    if (shape) {
        int same = ndim == t->ndim;
        for (int i = 0; same && i < ndim; i++) same = shape[i] == t->shape[i];
        if (!same) {
            char want[200], got[200];
            st_fail(err, errlen, st->path, "tensor '%s': expected shape %s, found %s (%s)", name,
                    fmt_shape(want, sizeof want, ndim, shape), fmt_shape(got, sizeof got, t->ndim, t->shape), t->dtype);
            return -1;
        }
    }
    int kind = strcmp(t->dtype, "F32") == 0    ? 0
               : strcmp(t->dtype, "F16") == 0  ? 1
               : strcmp(t->dtype, "BF16") == 0 ? 2
               : strcmp(t->dtype, "F64") == 0  ? 3
                                               : -1;
    if (kind < 0) {
        st_fail(err, errlen, st->path, "tensor '%s': dtype %s cannot be read as fp32 (F32, F16, BF16 and F64 can)",
                name, t->dtype);
        return -1;
    }
    uint64_t off = st->data_start + t->begin;
    if (kind == 0) {
        int r = pread_all(st->fd, dst, (size_t)(t->end - t->begin), off);
        return r ? read_fail(st, t, r, err, errlen) : 0;
    }
    // Other dtypes go through a bounded buffer rather than a copy of the tensor.
    size_t esize = kind == 3 ? 8 : 2, per = ST_CHUNK / esize;
    unsigned char *buf = malloc(ST_CHUNK);
    if (!buf) {
        st_fail(err, errlen, st->path, "tensor '%s': out of memory", name);
        return -1;
    }
    for (int64_t i = 0; i < t->numel; i += (int64_t)per) {
        size_t k = (size_t)(t->numel - i) < per ? (size_t)(t->numel - i) : per;
        int r = pread_all(st->fd, buf, k * esize, off + (uint64_t)i * esize);
        if (r) {
            free(buf);
            return read_fail(st, t, r, err, errlen);
        }
        for (size_t j = 0; j < k; j++) {
            if (kind == 3) {
                double d;
                memcpy(&d, buf + 8 * j, 8);
                dst[i + (int64_t)j] = (float)d;
            } else {
                uint16_t h = (uint16_t)(buf[2 * j] | buf[2 * j + 1] << 8);
                dst[i + (int64_t)j] = kind == 1 ? vkd_f16_to_f32(h) : vkd_bf16_to_f32(h);
            }
        }
    }
    free(buf);
    return 0;
}

// ---------------------------------------------------------------- writing

typedef struct {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p, b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void sb_printf(sbuf *b, const char *fmt, ...) {
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    sb_put(b, tmp, (size_t)k);
}

static void sb_json_str(sbuf *b, const char *s) {
    sb_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            sb_put(b, e, 2);
        } else if (c < 0x20) {
            sb_printf(b, "\\u%04x", c);
        } else {
            sb_put(b, (const char *)&c, 1);
        }
    }
    sb_put(b, "\"", 1);
}

static int cmp_tensor_name(const void *a, const void *b) {
    return strcmp((*(const vkd_st_tensor *const *)a)->name, (*(const vkd_st_tensor *const *)b)->name);
}

static int valid_utf8(const char *s) {
    size_t n = strlen(s);
    return vkd_utf8_check((const unsigned char *)s, n) == n;
}

// Everything is checked before PATH.tmp is created, so bad arguments never
// touch the disk at all.
static int check_write_args(const char *path, const vkd_st_tensor **order, int n, const char *const *meta_kv, int nmeta,
                            char *err, size_t errlen) {
    for (int i = 0; i < n; i++) {
        const vkd_st_tensor *t = order[i];
        char sbuf_[200];
        if (!t->name || !valid_utf8(t->name) || strcmp(t->name, "__metadata__") == 0) {
            st_fail(err, errlen, path, "tensor name '%s' is not allowed (missing, not UTF-8, or reserved)",
                    t->name ? t->name : "(null)");
            return -1;
        }
        if (t->ndim < 0 || t->ndim > VKD_ST_MAX_DIMS || (t->ndim > 0 && !t->shape)) {
            st_fail(err, errlen, path, "tensor '%s': %d dimensions (0 to %d, with a shape)", t->name, t->ndim,
                    VKD_ST_MAX_DIMS);
            return -1;
        }
        int64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            if (t->shape[d] < 0 || (t->shape[d] && numel > INT64_MAX / 8 / t->shape[d])) {
                st_fail(err, errlen, path, "tensor '%s': bad shape %s", t->name,
                        fmt_shape(sbuf_, sizeof sbuf_, t->ndim, t->shape));
                return -1;
            }
            numel *= t->shape[d];
        }
        if (numel > 0 && !t->data) {
            st_fail(err, errlen, path, "tensor '%s': no data", t->name);
            return -1;
        }
        if (i > 0 && strcmp(order[i - 1]->name, t->name) == 0) {
            st_fail(err, errlen, path, "duplicate tensor name '%s'", t->name);
            return -1;
        }
    }
    const char **keys = malloc(((size_t)nmeta + 1) * sizeof *keys);
    if (!keys) {
        st_fail(err, errlen, path, "out of memory");
        return -1;
    }
    for (int i = 0; i < nmeta; i++) {
        const char *k = meta_kv[2 * i], *v = meta_kv[2 * i + 1];
        if (!k || !v || !valid_utf8(k) || !valid_utf8(v)) {
            st_fail(err, errlen, path, "metadata pair %d is missing or not UTF-8", i);
            free(keys);
            return -1;
        }
        keys[i] = k;
    }
    const char *dup = find_duplicate(keys, nmeta);
    if (dup) st_fail(err, errlen, path, "duplicate metadata key '%s'", dup);
    free(keys);
    return dup ? -1 : 0;
}

int vkd_st_write(const char *path, const vkd_st_tensor *t, int n, const char *dtype, const char *const *meta_kv,
                 int nmeta, char *err, size_t errlen) {
    int kind = !dtype                       ? -1
               : strcmp(dtype, "F32") == 0  ? 0
               : strcmp(dtype, "F16") == 0  ? 1
               : strcmp(dtype, "BF16") == 0 ? 2
                                            : -1;
    if (kind < 0) {
        st_fail(err, errlen, path, "cannot write dtype '%s' (F32, F16 or BF16)", dtype ? dtype : "(null)");
        return -1;
    }
    if (n < 0 || nmeta < 0 || (n > 0 && !t) || (nmeta > 0 && !meta_kv)) {
        st_fail(err, errlen, path, "invalid arguments (%d tensors, %d metadata pairs)", n, nmeta);
        return -1;
    }
    size_t esize = kind == 0 ? 4 : 2;
    const vkd_st_tensor **order = malloc(((size_t)n + 1) * sizeof *order);
    if (!order) {
        st_fail(err, errlen, path, "out of memory");
        return -1;
    }
    for (int i = 0; i < n; i++) order[i] = &t[i];
    qsort(order, (size_t)n, sizeof *order, cmp_tensor_name);
    if (check_write_args(path, order, n, meta_kv, nmeta, err, errlen)) {
        free(order);
        return -1;
    }

    // The header, laid out as the Python writer does.
    sbuf h = {0};
    sb_put(&h, "{", 1);
    if (nmeta > 0) {
        sb_put(&h, "\"__metadata__\":{", 16);
        for (int i = 0; i < nmeta; i++) {
            if (i) sb_put(&h, ",", 1);
            sb_json_str(&h, meta_kv[2 * i]);
            sb_put(&h, ":", 1);
            sb_json_str(&h, meta_kv[2 * i + 1]);
        }
        sb_put(&h, "}", 1);
    }
    uint64_t at = 0;
    for (int i = 0; i < n; i++) {
        const vkd_st_tensor *x = order[i];
        int64_t numel = 1;
        if (i || nmeta > 0) sb_put(&h, ",", 1);
        sb_json_str(&h, x->name);
        sb_printf(&h, ":{\"dtype\":\"%s\",\"shape\":[", dtype);
        for (int d = 0; d < x->ndim; d++)
            sb_printf(&h, "%s%lld", d ? "," : "", (long long)x->shape[d]), numel *= x->shape[d];
        sb_printf(&h, "],\"data_offsets\":[%llu,", (unsigned long long)at);
        at += (uint64_t)numel * esize;
        sb_printf(&h, "%llu]}", (unsigned long long)at);
    }
    sb_put(&h, "}", 1);
    while (!h.oom && h.n % 8) sb_put(&h, " ", 1);  // data starts 8-aligned
    if (h.oom) {
        free(h.p), free(order);
        st_fail(err, errlen, path, "out of memory");
        return -1;
    }

    vkd_afile *f = vkd_afile_open(path, err, errlen);
    unsigned char *buf = malloc(ST_CHUNK);
    if (!f || !buf) {
        if (f) vkd_afile_abort(f), st_fail(err, errlen, path, "out of memory");
        free(buf), free(h.p), free(order);
        return -1;
    }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)h.n >> (8 * i));
    vkd_afile_write(f, len8, 8);
    vkd_afile_write(f, h.p, h.n);
    for (int i = 0; i < n; i++) {
        const vkd_st_tensor *x = order[i];
        int64_t numel = 1;
        for (int d = 0; d < x->ndim; d++) numel *= x->shape[d];
        if (kind == 0) {
            vkd_afile_write(f, x->data, (size_t)numel * 4);
            continue;
        }
        size_t per = ST_CHUNK / 2;
        for (int64_t j = 0; j < numel; j += (int64_t)per) {
            size_t k = (size_t)(numel - j) < per ? (size_t)(numel - j) : per;
            for (size_t e = 0; e < k; e++) {
                uint16_t v =
                    kind == 1 ? vkd_f32_to_f16(x->data[j + (int64_t)e]) : vkd_f32_to_bf16(x->data[j + (int64_t)e]);
                buf[2 * e] = (unsigned char)v, buf[2 * e + 1] = (unsigned char)(v >> 8);
            }
            if (vkd_afile_write(f, buf, 2 * k)) break;
        }
    }
    free(buf), free(h.p), free(order);
    return vkd_afile_commit(f, err, errlen);
}
