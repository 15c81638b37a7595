// .npz files: a zip archive of .npy members, as numpy's savez / savez_compressed
// write them and pytorch-fid, clean-fid and EDM exchange FID statistics.
//
// Reading trusts the central directory (sizes, offsets, CRC) and uses a local
// header only to find where a member's data starts. That matters: numpy writes
// every member with force_zip64, so its local headers hold 0xFFFFFFFF sizes and
// the real ones in a zip64 extra field, while (for files under 4 GiB) the
// central directory holds plain 32-bit sizes. Zip64 central records are read
// too. Every member is CRC-checked after it is inflated.
//
// Writing follows numpy byte for byte where it is cheap to (the .npy header,
// version 20, the 1980-01-01 timestamp, so identical statistics give identical
// files); deflated members are streamed with a data descriptor instead of a
// rewritten local header, because vkd_afile cannot seek. No zip64 is written:
// a member or archive over 4 GiB is refused.
#define _FILE_OFFSET_BITS 64
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "vkdistill/eval.h"
#include "vkdistill/io.h"

static void npz_fail(char *err, size_t errlen, const char *path, const char *fmt, ...) {
    if (!err || !errlen) return;
    int k = snprintf(err, errlen, "%s: ", path);
    if (k >= 0 && (size_t)k < errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err + k, errlen - (size_t)k, fmt, ap);
        va_end(ap);
    }
    // One line, whatever a corrupt file put into a member name.
    for (char *p = err; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
}

static uint16_t rd16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rd64(const unsigned char *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }
static void wr16(unsigned char *p, uint32_t v) { p[0] = (unsigned char)v, p[1] = (unsigned char)(v >> 8); }
static void wr32(unsigned char *p, uint32_t v) { wr16(p, v & 0xffff), wr16(p + 2, v >> 16); }

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD 0x06054b50u
#define SIG_EOCD64 0x06064b50u
#define SIG_LOC64 0x07064b50u
#define SIG_DESC 0x08074b50u

// =====================================================================  .npy headers

static int64_t npy_itemsize(vkd_npy_dtype t) { return t == VKD_NPY_F32 ? 4 : 8; }
static const char *npy_descr(vkd_npy_dtype t) { return t == VKD_NPY_F32 ? "<f4" : t == VKD_NPY_F64 ? "<f8" : "<i8"; }

// numpy's format.write_array_header_1_0: the dict with sorted keys, spare
// spaces so the first axis can grow to 21 digits, then padded with spaces and
// a newline so the data starts on a 64-byte boundary. Returns the whole .npy
// preamble (magic .. newline) in buf (256 bytes are always enough).
static size_t npy_header(unsigned char *buf, vkd_npy_dtype t, int ndim, const int64_t *shape) {
    char h[256], sh[200] = "";
    size_t k = 0;
    for (int i = 0; i < ndim; i++)
        k += (size_t)snprintf(sh + k, sizeof sh - k, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (ndim == 1) snprintf(sh + k, sizeof sh - k, ",");
    int n = snprintf(h, sizeof h, "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", npy_descr(t), sh);
    if (ndim > 0) {
        char first[32];
        int fl = snprintf(first, sizeof first, "%lld", (long long)shape[0]);
        for (int i = fl; i < 21; i++) h[n++] = ' ';
    }
    int total = 10 + n + 1;
    int pad = (64 - total % 64) % 64;
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    wr16(buf + 8, (uint32_t)(n + pad + 1));
    memcpy(buf + 10, h, (size_t)n);
    memset(buf + 10 + n, ' ', (size_t)pad);
    buf[10 + n + pad] = '\n';
    return (size_t)(total + pad);
}

typedef struct {
    char descr[16];
    int fortran;
    int ndim;
    int64_t shape[VKD_NPY_MAX_DIMS];
} npy_meta;

static const char *skip_ws(const char *p, const char *e) {
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

// A Python string literal ('x' or "x") without escapes, into out.
static const char *parse_str(const char *p, const char *e, char *out, size_t outlen) {
    if (p >= e || (*p != '\'' && *p != '"')) return NULL;
    char q = *p++;
    size_t k = 0;
    while (p < e && *p != q) {
        if (*p == '\\' || k + 1 >= outlen) return NULL;
        out[k++] = *p++;
    }
    if (p >= e) return NULL;
    out[k] = 0;
    return p + 1;
}

// The header dict: {'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }
// Returns NULL (with why set) when it is not one numpy could have written.
static const char *parse_npy_dict(const char *p, const char *e, npy_meta *m, const char **why) {
    int seen = 0;
    p = skip_ws(p, e);
    if (p >= e || *p++ != '{') return *why = "the header is not a dict", NULL;
    for (;;) {
        char key[32];
        p = skip_ws(p, e);
        if (p < e && *p == '}') break;
        if (!(p = parse_str(p, e, key, sizeof key))) return *why = "bad key in the header dict", NULL;
        p = skip_ws(p, e);
        if (p >= e || *p++ != ':') return *why = "missing ':' in the header dict", NULL;
        p = skip_ws(p, e);
        if (!strcmp(key, "descr")) {
            if (!(p = parse_str(p, e, m->descr, sizeof m->descr)))
                return *why = "'descr' is not a simple dtype string (structured arrays are not supported)", NULL;
            seen |= 1;
        } else if (!strcmp(key, "fortran_order")) {
            if (e - p >= 4 && !memcmp(p, "True", 4))
                m->fortran = 1, p += 4;
            else if (e - p >= 5 && !memcmp(p, "False", 5))
                m->fortran = 0, p += 5;
            else
                return *why = "'fortran_order' is not True or False", NULL;
            seen |= 2;
        } else if (!strcmp(key, "shape")) {
            if (p >= e || *p++ != '(') return *why = "'shape' is not a tuple", NULL;
            m->ndim = 0;
            for (;;) {
                p = skip_ws(p, e);
                if (p < e && *p == ')') break;
                if (p >= e || *p < '0' || *p > '9') return *why = "'shape' holds something other than integers", NULL;
                int64_t v = 0;
                while (p < e && *p >= '0' && *p <= '9') {
                    if (v > (INT64_MAX - 9) / 10) return *why = "'shape' holds a number too large", NULL;
                    v = v * 10 + (*p++ - '0');
                }
                if (p < e && *p == 'L') p++;  // Python 2 longs
                if (m->ndim == VKD_NPY_MAX_DIMS) return *why = "'shape' has more than 8 dimensions", NULL;
                m->shape[m->ndim++] = v;
                p = skip_ws(p, e);
                if (p < e && *p == ',')
                    p++;
                else if (p >= e || *p != ')')
                    return *why = "bad 'shape' tuple", NULL;
            }
            p++;
            seen |= 4;
        } else {
            return *why = "unexpected key in the header dict", NULL;
        }
        p = skip_ws(p, e);
        if (p < e && *p == ',')
            p++;
        else if (p >= e || *p != '}')
            return *why = "bad header dict", NULL;
    }
    p++;
    if (seen != 7) return *why = "the header dict lacks 'descr', 'fortran_order' or 'shape'", NULL;
    if (skip_ws(p, e) != e) return *why = "trailing characters after the header dict", NULL;
    return p;
}

// =====================================================================  writing

typedef struct {
    uint32_t crc, csize, usize, off;
    int method;
} wentry;

// One member: local header, data, and (deflate) a data descriptor.
static int write_member(vkd_afile *f, uint64_t *pos, const vkd_npy_array *a, int compress, wentry *we, const char *path,
                        char *err, size_t errlen) {
    int64_t numel = 1;
    for (int i = 0; i < a->ndim; i++) numel *= a->shape[i];
    unsigned char hdr[256];
    size_t hlen = npy_header(hdr, a->dtype, a->ndim, a->shape);
    uint64_t dbytes = (uint64_t)numel * (uint64_t)npy_itemsize(a->dtype), usize = hlen + dbytes;
    if (usize >= 0xffffffffu || *pos >= 0xffffffffu) {
        npz_fail(err, errlen, path, "member '%s': over 4 GiB, which needs zip64 (not written)", a->name);
        return -1;
    }
    char fname[300];
    int nlen = snprintf(fname, sizeof fname, "%s.npy", a->name);
    uint32_t crc = (uint32_t)crc32_z(0, hdr, hlen);
    crc = (uint32_t)crc32_z(crc, a->data, (z_size_t)dbytes);
    we->off = (uint32_t)*pos, we->usize = (uint32_t)usize, we->crc = crc, we->method = compress ? 8 : 0;

    unsigned char lh[30] = {0};
    wr32(lh, SIG_LOCAL);
    wr16(lh + 4, 20);
    wr16(lh + 6, compress ? 8 : 0);  // bit 3: sizes and CRC follow the data
    wr16(lh + 8, (uint32_t)we->method);
    wr16(lh + 12, 0x21);  // 1980-01-01 00:00, as numpy: reproducible files
    if (!compress) wr32(lh + 14, crc), wr32(lh + 18, (uint32_t)usize), wr32(lh + 22, (uint32_t)usize);
    wr16(lh + 26, (uint32_t)nlen);
    vkd_afile_write(f, lh, 30);
    vkd_afile_write(f, fname, (size_t)nlen);
    *pos += 30 + (uint64_t)nlen;
    if (!compress) {
        vkd_afile_write(f, hdr, hlen);
        if (vkd_afile_write(f, a->data, (size_t)dbytes)) return 0;  // commit reports it
        we->csize = (uint32_t)usize;
        *pos += usize;
        return 0;
    }
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        npz_fail(err, errlen, path, "member '%s': cannot start zlib deflate", a->name);
        return -1;
    }
    unsigned char out[1 << 16];
    const unsigned char *src[2] = {hdr, a->data};
    uint64_t srclen[2] = {hlen, dbytes}, csize = 0;
    int rc = Z_OK;
    for (int part = 0; part < 2; part++) {
        uint64_t left = srclen[part];
        const unsigned char *p = src[part];
        do {
            uInt chunk = left > (1u << 30) ? (1u << 30) : (uInt)left;
            zs.next_in = (unsigned char *)p, zs.avail_in = chunk;
            p += chunk, left -= chunk;
            int flush = part == 1 && left == 0 ? Z_FINISH : Z_NO_FLUSH;
            do {
                zs.next_out = out, zs.avail_out = sizeof out;
                rc = deflate(&zs, flush);
                size_t got = sizeof out - zs.avail_out;
                vkd_afile_write(f, out, got);
                csize += got;
            } while (zs.avail_out == 0 || (flush == Z_FINISH && rc != Z_STREAM_END));
        } while (left > 0);
    }
    deflateEnd(&zs);
    if (rc != Z_STREAM_END || csize >= 0xffffffffu) {
        npz_fail(err, errlen, path, "member '%s': deflate failed", a->name);
        return -1;
    }
    we->csize = (uint32_t)csize;
    unsigned char dd[16];
    wr32(dd, SIG_DESC), wr32(dd + 4, crc), wr32(dd + 8, we->csize), wr32(dd + 12, we->usize);
    vkd_afile_write(f, dd, 16);
    *pos += csize + 16;
    return 0;
}

int vkd_npz_write(const char *path, const vkd_npy_array *arrays, int n, int compress, char *err, size_t errlen) {
    if (n < 0 || n > 0xfffe) {
        npz_fail(err, errlen, path, "cannot write %d members", n);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        const vkd_npy_array *a = &arrays[i];
        int bad = !a->name || !a->name[0] || strlen(a->name) > 250 || a->ndim < 0 || a->ndim > VKD_NPY_MAX_DIMS ||
                  (a->dtype != VKD_NPY_F32 && a->dtype != VKD_NPY_F64 && a->dtype != VKD_NPY_I64);
        int64_t numel = 1;
        for (int d = 0; !bad && d < a->ndim; d++) {
            if (a->shape[d] < 0 || (a->shape[d] > 0 && numel > INT64_MAX / 8 / a->shape[d]))
                bad = 1;
            else
                numel *= a->shape[d];
        }
        if (bad || (numel > 0 && !a->data)) {
            npz_fail(err, errlen, path, "member %d ('%s'): bad name, dtype or shape", i, a->name ? a->name : "(null)");
            return -1;
        }
        for (int j = 0; j < i; j++)
            if (!strcmp(arrays[j].name, a->name)) {
                npz_fail(err, errlen, path, "member '%s' given twice", a->name);
                return -1;
            }
    }
    wentry *we = calloc((size_t)n + 1, sizeof *we);
    vkd_afile *f = we ? vkd_afile_open(path, err, errlen) : NULL;
    if (!f) {
        if (!we) npz_fail(err, errlen, path, "out of memory");
        free(we);
        return -1;
    }
    uint64_t pos = 0;
    for (int i = 0; i < n; i++)
        if (write_member(f, &pos, &arrays[i], compress, &we[i], path, err, errlen)) {
            vkd_afile_abort(f), free(we);
            return -1;
        }
    uint64_t cd_off = pos, cd_size = 0;
    for (int i = 0; i < n; i++) {
        char fname[300];
        int nlen = snprintf(fname, sizeof fname, "%s.npy", arrays[i].name);
        unsigned char ch[46] = {0};
        wr32(ch, SIG_CENTRAL);
        wr16(ch + 4, 3 << 8 | 20);  // made by: Unix, zip 2.0 (so unzip keeps the mode below)
        wr16(ch + 6, 20);
        wr16(ch + 8, compress ? 8 : 0);
        wr16(ch + 10, (uint32_t)we[i].method);
        wr16(ch + 14, 0x21);
        wr32(ch + 16, we[i].crc), wr32(ch + 20, we[i].csize), wr32(ch + 24, we[i].usize);
        wr16(ch + 28, (uint32_t)nlen);
        wr32(ch + 38, 0100644u << 16);  // a regular file, rw-r--r--
        wr32(ch + 42, we[i].off);
        vkd_afile_write(f, ch, 46);
        vkd_afile_write(f, fname, (size_t)nlen);
        cd_size += 46 + (uint64_t)nlen;
    }
    if (cd_off + cd_size >= 0xffffffffu) {
        npz_fail(err, errlen, path, "archive over 4 GiB, which needs zip64 (not written)");
        vkd_afile_abort(f), free(we);
        return -1;
    }
    unsigned char eo[22] = {0};
    wr32(eo, SIG_EOCD);
    wr16(eo + 8, (uint32_t)n), wr16(eo + 10, (uint32_t)n);
    wr32(eo + 12, (uint32_t)cd_size), wr32(eo + 16, (uint32_t)cd_off);
    vkd_afile_write(f, eo, 22);
    free(we);
    return vkd_afile_commit(f, err, errlen);
}

int vkd_npz_write_stats(const char *path, const double *mu, const double *sigma, int dim, int compress, char *err,
                        size_t errlen) {
    if (dim < 1) {
        npz_fail(err, errlen, path, "cannot write statistics of dimension %d", dim);
        return -1;
    }
    int64_t s1[1] = {dim}, s2[2] = {dim, dim};
    vkd_npy_array a[2] = {{"mu", VKD_NPY_F64, 1, s1, mu}, {"sigma", VKD_NPY_F64, 2, s2, sigma}};
    return vkd_npz_write(path, a, 2, compress, err, errlen);
}

// =====================================================================  reading

typedef struct {
    char *name;  // as stored ("mu.npy")
    uint64_t csize, usize, off;
    uint32_t crc;
    int method, flags;
} rentry;

struct vkd_npz {
    char *path;
    int fd;
    uint64_t fsize;
    int n;
    rentry *e;
};

static int pread_all(int fd, void *buf, size_t n, uint64_t off) {
    unsigned char *p = buf;
    while (n > 0) {
        ssize_t r = pread(fd, p, n, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        p += r, n -= (size_t)r, off += (uint64_t)r;
    }
    return 0;
}

void vkd_npz_close(vkd_npz *z) {
    if (!z) return;
    if (z->fd >= 0) close(z->fd);
    for (int i = 0; i < z->n; i++) free(z->e[i].name);
    free(z->e), free(z->path), free(z);
}

// Parses the central directory at [cd, cd + size) holding n entries.
static int parse_central(vkd_npz *z, const unsigned char *cd, uint64_t size, uint64_t n, char *err, size_t errlen) {
    const char *path = z->path;
    if (n > 100000) {
        npz_fail(err, errlen, path, "corrupt zip: %llu members", (unsigned long long)n);
        return -1;
    }
    z->e = calloc(n ? n : 1, sizeof *z->e);
    if (!z->e) return npz_fail(err, errlen, path, "out of memory"), -1;
    uint64_t p = 0;
    for (uint64_t i = 0; i < n; i++) {
        if (p + 46 > size || rd32(cd + p) != SIG_CENTRAL) {
            npz_fail(err, errlen, path, "corrupt zip: central directory entry %llu is damaged", (unsigned long long)i);
            return -1;
        }
        const unsigned char *c = cd + p;
        rentry *e = &z->e[z->n];
        unsigned nlen = rd16(c + 28), xlen = rd16(c + 30), clen = rd16(c + 32);
        if (p + 46 + nlen + xlen + clen > size) {
            npz_fail(err, errlen, path, "corrupt zip: central directory entry %llu overruns it", (unsigned long long)i);
            return -1;
        }
        e->flags = rd16(c + 8), e->method = rd16(c + 10), e->crc = rd32(c + 16);
        e->csize = rd32(c + 20), e->usize = rd32(c + 24), e->off = rd32(c + 42);
        e->name = malloc(nlen + 1);
        if (!e->name) return npz_fail(err, errlen, path, "out of memory"), -1;
        memcpy(e->name, c + 46, nlen);
        e->name[nlen] = 0;
        z->n++;
        // zip64 extra field: the 64-bit values of the fields that hold 0xFFFFFFFF, in this order.
        const unsigned char *x = c + 46 + nlen, *xe = x + xlen;
        while (xe - x >= 4) {
            unsigned id = rd16(x), sz = rd16(x + 2);
            if (xe - x - 4 < (long)sz) break;
            if (id == 1) {
                const unsigned char *q = x + 4, *qe = q + sz;
                uint64_t *fld[3] = {&e->usize, &e->csize, &e->off};
                for (int k = 0; k < 3; k++)
                    if (*fld[k] == 0xffffffffu) {
                        if (qe - q < 8) {
                            npz_fail(err, errlen, path, "corrupt zip: member '%s': short zip64 field", e->name);
                            return -1;
                        }
                        *fld[k] = rd64(q), q += 8;
                    }
            }
            x += 4 + sz;
        }
        if (e->off > z->fsize || e->csize > z->fsize - e->off) {
            npz_fail(err, errlen, path, "corrupt zip: member '%s' lies beyond the end of the file (truncated?)",
                     e->name);
            return -1;
        }
        for (int j = 0; j < z->n - 1; j++)
            if (!strcmp(z->e[j].name, e->name)) {
                npz_fail(err, errlen, path, "corrupt zip: member '%s' appears twice", e->name);
                return -1;
            }
        p += 46 + nlen + xlen + clen;
    }
    return 0;
}

vkd_npz *vkd_npz_open(const char *path, char *err, size_t errlen) {
    vkd_npz *z = calloc(1, sizeof *z);
    if (!z || !(z->path = strdup(path))) {
        free(z);
        npz_fail(err, errlen, path, "out of memory");
        return NULL;
    }
    z->fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (z->fd < 0 || fstat(z->fd, &sb) != 0) {
        npz_fail(err, errlen, path, "cannot open: %s", strerror(errno));
        vkd_npz_close(z);
        return NULL;
    }
    z->fsize = (uint64_t)sb.st_size;
    // The end-of-central-directory record is in the last 22 + 65535 bytes.
    size_t tail = z->fsize < 22 + 65535 ? (size_t)z->fsize : 22 + 65535;
    unsigned char *t = malloc(tail ? tail : 1), *cd = NULL;
    if (!t || pread_all(z->fd, t, tail, z->fsize - tail)) goto notzip;
    long at = -1;
    for (long i = (long)tail - 22; i >= 0; i--)
        if (rd32(t + i) == SIG_EOCD && (size_t)i + 22 + rd16(t + i + 20) <= tail) {
            at = i;
            break;
        }
    if (at < 0) goto notzip;
    uint64_t eocd = z->fsize - tail + (uint64_t)at;
    uint64_t n = rd16(t + at + 10), cd_size = rd32(t + at + 12), cd_off = rd32(t + at + 16);
    if (rd16(t + at + 4) != 0 || rd16(t + at + 6) != 0 || rd16(t + at + 8) != rd16(t + at + 10)) {
        npz_fail(err, errlen, path, "multi-disk zip archives are not supported");
        goto fail;
    }
    if (n == 0xffff || cd_size == 0xffffffffu || cd_off == 0xffffffffu) {
        // zip64: a locator just before the record points at the zip64 record.
        unsigned char loc[20], r64[56];
        if (eocd < 20 || pread_all(z->fd, loc, 20, eocd - 20) || rd32(loc) != SIG_LOC64 ||
            rd64(loc + 8) > z->fsize - 56 || pread_all(z->fd, r64, 56, rd64(loc + 8)) || rd32(r64) != SIG_EOCD64) {
            npz_fail(err, errlen, path, "corrupt zip: bad zip64 end of central directory");
            goto fail;
        }
        n = rd64(r64 + 32), cd_size = rd64(r64 + 40), cd_off = rd64(r64 + 48);
    }
    if (cd_off > eocd || cd_size > eocd - cd_off || cd_size > (1u << 30)) {
        npz_fail(err, errlen, path, "corrupt zip: the central directory lies outside the file (truncated?)");
        goto fail;
    }
    cd = malloc(cd_size ? cd_size : 1);
    if (!cd || pread_all(z->fd, cd, cd_size, cd_off)) {
        npz_fail(err, errlen, path, "cannot read the central directory");
        goto fail;
    }
    if (parse_central(z, cd, cd_size, n, err, errlen)) goto fail;
    free(t), free(cd);
    return z;
notzip:
    npz_fail(err, errlen, path, "not a zip archive (.npz), or a truncated one: no end-of-central-directory record%s",
             z->fsize ? "" : " (empty file)");
fail:
    free(t), free(cd);
    vkd_npz_close(z);
    return NULL;
}

int vkd_npz_count(const vkd_npz *z) { return z->n; }

// The numpy key of a member: its name without ".npy".
static size_t key_len(const char *name) {
    size_t n = strlen(name);
    return n >= 4 && !strcmp(name + n - 4, ".npy") ? n - 4 : n;
}

const char *vkd_npz_name(const vkd_npz *z, int i) {
    static _Thread_local char buf[300];  // valid until the next call on this thread
    size_t n = key_len(z->e[i].name);
    if (n >= sizeof buf) n = sizeof buf - 1;
    memcpy(buf, z->e[i].name, n);
    buf[n] = 0;
    return buf;
}

static rentry *find(const vkd_npz *z, const char *name) {
    size_t n = strlen(name);
    for (int i = 0; i < z->n; i++)
        if (key_len(z->e[i].name) == n && !memcmp(z->e[i].name, name, n)) return &z->e[i];
    return NULL;
}

int vkd_npz_has(const vkd_npz *z, const char *name) { return find(z, name) != NULL; }

// A member's uncompressed bytes, CRC-checked. malloc'd.
static unsigned char *read_member(vkd_npz *z, const rentry *e, const char *name, char *err, size_t errlen) {
    const char *path = z->path;
    unsigned char lh[30], *c = NULL, *u = NULL;
    if (e->flags & 1) return npz_fail(err, errlen, path, "member '%s' is encrypted", name), NULL;
    if (e->method != 0 && e->method != 8)
        return npz_fail(err, errlen, path,
                        "member '%s': compression method %d is not supported (only stored and deflate)", name,
                        e->method),
               NULL;
    if (z->fsize < 30 || e->off > z->fsize - 30 || pread_all(z->fd, lh, 30, e->off) || rd32(lh) != SIG_LOCAL)
        return npz_fail(err, errlen, path, "corrupt zip: member '%s': bad local header", name), NULL;
    uint64_t data = e->off + 30 + rd16(lh + 26) + rd16(lh + 28);
    if (data > z->fsize || e->csize > z->fsize - data)
        return npz_fail(err, errlen, path, "corrupt zip: member '%s' is truncated", name), NULL;
    if (e->method == 0 && e->csize != e->usize)
        return npz_fail(err, errlen, path, "corrupt zip: stored member '%s' has sizes %llu and %llu", name,
                        (unsigned long long)e->csize, (unsigned long long)e->usize),
               NULL;
    // Deflate expands at most 1032:1, so a directory that promises more is
    // corrupt: refused before it costs a huge allocation (found by fuzzing:
    // 400 bytes asking for 4 GiB).
    if (e->method == 8 && e->usize > e->csize * 1032 + 1024)
        return npz_fail(err, errlen, path,
                        "corrupt zip: member '%s' claims %llu bytes from %llu compressed (deflate expands at most "
                        "1032 times)",
                        name, (unsigned long long)e->usize, (unsigned long long)e->csize),
               NULL;
    c = malloc(e->csize ? e->csize : 1);
    if (!c) return npz_fail(err, errlen, path, "member '%s': out of memory", name), NULL;
    if (pread_all(z->fd, c, e->csize, data)) {
        free(c);
        return npz_fail(err, errlen, path, "cannot read member '%s': %s", name, strerror(errno)), NULL;
    }
    if (e->method == 0) {
        u = c;
    } else {
        u = malloc(e->usize ? e->usize : 1);
        if (!u) {
            free(c);
            return npz_fail(err, errlen, path, "member '%s': out of memory for %llu bytes", name,
                            (unsigned long long)e->usize),
                   NULL;
        }
        z_stream zs;
        memset(&zs, 0, sizeof zs);
        int rc = inflateInit2(&zs, -MAX_WBITS);
        uint64_t inl = e->csize, outl = e->usize;
        const unsigned char *ip = c;
        unsigned char *op = u;
        while (rc == Z_OK) {
            if (zs.avail_in == 0 && inl) {
                zs.next_in = (unsigned char *)ip, zs.avail_in = inl > (1u << 30) ? 1u << 30 : (uInt)inl;
                ip += zs.avail_in, inl -= zs.avail_in;
            }
            if (zs.avail_out == 0 && outl) {
                zs.next_out = op, zs.avail_out = outl > (1u << 30) ? 1u << 30 : (uInt)outl;
                op += zs.avail_out, outl -= zs.avail_out;
            }
            rc = inflate(&zs, Z_NO_FLUSH);
            if (rc == Z_BUF_ERROR && (zs.avail_in || inl) && (zs.avail_out || outl)) rc = Z_OK;
        }
        uint64_t got = (uint64_t)(op - u) - zs.avail_out;
        inflateEnd(&zs);
        free(c);
        if (rc != Z_STREAM_END || got != e->usize) {
            free(u);
            return npz_fail(err, errlen, path, "corrupt zip: member '%s' does not inflate to its %llu bytes", name,
                            (unsigned long long)e->usize),
                   NULL;
        }
    }
    uint32_t crc = (uint32_t)crc32_z(0, u, (z_size_t)e->usize);
    if (crc != e->crc) {
        free(u);
        return npz_fail(err, errlen, path, "corrupt zip: member '%s' fails its CRC check (%08x, expected %08x)", name,
                        crc, e->crc),
               NULL;
    }
    return u;
}

static double load_elem(const unsigned char *p, char kind, int size, int swap) {
    unsigned char b[8];
    for (int i = 0; i < size; i++) b[i] = p[swap ? size - 1 - i : i];
    if (kind == 'f' && size == 8) {
        double v;
        memcpy(&v, b, 8);
        return v;
    }
    if (kind == 'f') {
        float v;
        memcpy(&v, b, 4);
        return v;
    }
    if (kind == 'u') return b[0];  // uint8 images (EDM / clean-fid sample files)
    if (size == 8) {
        int64_t v;
        memcpy(&v, b, 8);
        return (double)v;
    }
    int32_t v;
    memcpy(&v, b, 4);
    return v;
}

void *vkd_npz_read(vkd_npz *z, const char *name, vkd_npy_dtype want, int *ndim, int64_t *shape, char *err,
                   size_t errlen) {
    const char *path = z->path;
    rentry *e = find(z, name);
    if (!e) {
        char list[200] = "";
        size_t k = 0;
        for (int i = 0; i < z->n && k + 1 < sizeof list; i++)
            k += (size_t)snprintf(list + k, sizeof list - k, "%s'%s'", i ? ", " : "", vkd_npz_name(z, i));
        npz_fail(err, errlen, path, "no member '%s' (it has %s)", name, z->n ? list : "no members");
        return NULL;
    }
    if (want != VKD_NPY_F32 && want != VKD_NPY_F64) {
        npz_fail(err, errlen, path, "member '%s': can only be read as float32 or float64", name);
        return NULL;
    }
    unsigned char *u = read_member(z, e, name, err, errlen);
    if (!u) return NULL;
    const char *why = NULL;
    npy_meta m;
    memset(&m, 0, sizeof m);
    uint64_t hstart = 0, hlen = 0;
    if (e->usize < 10 || memcmp(u, "\x93NUMPY", 6)) {
        why = "not a .npy file (no \\x93NUMPY magic)";
    } else if (u[6] == 1) {
        hstart = 10, hlen = rd16(u + 8);
    } else if ((u[6] == 2 || u[6] == 3) && e->usize >= 12) {
        hstart = 12, hlen = rd32(u + 8);
    } else {
        why = "unsupported .npy format version";
    }
    if (!why && hlen > e->usize - hstart) why = "the .npy header runs past the member's end";
    if (!why) parse_npy_dict((const char *)u + hstart, (const char *)u + hstart + hlen, &m, &why);
    char kind = 0, order = 0;
    int size = 0;
    if (!why) {
        const char *d = m.descr;
        order = d[0];
        if ((order == '<' || order == '>' || order == '=') && (d[1] == 'f' || d[1] == 'i') &&
            (d[2] == '4' || d[2] == '8') && !d[3])
            kind = d[1], size = d[2] - '0';
        else if (order == '|' && d[1] == 'u' && d[2] == '1' && !d[3])
            kind = 'u', size = 1;
        if (!kind) {
            free(u);
            npz_fail(err, errlen, path,
                     "member '%s': dtype '%s' is not supported (expected '<f8', '<f4', '<i8', '<i4' or '|u1')", name, d);
            return NULL;
        }
    }
    int64_t numel = 1;
    for (int i = 0; !why && i < m.ndim; i++) {
        if (m.shape[i] && numel > INT64_MAX / 8 / m.shape[i]) why = "the shape is too large";
        numel *= m.shape[i];
    }
    uint64_t dbytes = e->usize - hstart - hlen;
    if (!why && dbytes != (uint64_t)numel * (uint64_t)size) {
        free(u);
        npz_fail(err, errlen, path, "member '%s': %llu bytes of data, but its shape needs %llu (truncated or corrupt)",
                 name, (unsigned long long)dbytes, (unsigned long long)numel * (uint64_t)size);
        return NULL;
    }
    if (why) {
        free(u);
        npz_fail(err, errlen, path, "member '%s': %s", name, why);
        return NULL;
    }
    int swap = order == '>';  // hosts are little endian (checked by the tests)
    size_t osz = want == VKD_NPY_F64 ? 8 : 4;
    void *out = malloc(numel ? (size_t)numel * osz : 1);
    if (!out) {
        free(u);
        npz_fail(err, errlen, path, "member '%s': out of memory", name);
        return NULL;
    }
    const unsigned char *src = u + hstart + hlen;
    // C-order destination index i; a Fortran-order source stores the element
    // with multi-index (a0..an-1) at a0 + s0*(a1 + s1*(...)).
    int64_t idx[VKD_NPY_MAX_DIMS] = {0}, fstride[VKD_NPY_MAX_DIMS];
    int64_t acc = 1;
    for (int d = 0; d < m.ndim; d++) fstride[d] = acc, acc *= m.shape[d];
    for (int64_t i = 0; i < numel; i++) {
        int64_t j = i;
        if (m.fortran && m.ndim > 1) {
            j = 0;
            for (int d = 0; d < m.ndim; d++) j += idx[d] * fstride[d];
            for (int d = m.ndim - 1; d >= 0; d--) {  // advance the C-order multi-index
                if (++idx[d] < m.shape[d]) break;
                idx[d] = 0;
            }
        }
        double v = load_elem(src + (size_t)j * size, kind, size, swap);
        if (want == VKD_NPY_F64)
            ((double *)out)[i] = v;
        else
            ((float *)out)[i] = (float)v;
    }
    free(u);
    *ndim = m.ndim;
    for (int d = 0; d < m.ndim; d++) shape[d] = m.shape[d];
    return out;
}

int vkd_npz_read_stats(const char *path, double **mu, double **sigma, int *dim, char *err, size_t errlen) {
    *mu = *sigma = NULL;
    vkd_npz *z = vkd_npz_open(path, err, errlen);
    if (!z) return -1;
    int nd1 = 0, nd2 = 0;
    int64_t sh1[VKD_NPY_MAX_DIMS], sh2[VKD_NPY_MAX_DIMS];
    double *m = vkd_npz_read(z, "mu", VKD_NPY_F64, &nd1, sh1, err, errlen), *s = NULL;
    if (m && (nd1 != 1 || sh1[0] < 1 || sh1[0] > 1 << 20)) {
        npz_fail(err, errlen, path, "'mu' has %d dimensions (first %lld), expected a vector (dim,)", nd1,
                 nd1 ? (long long)sh1[0] : 0LL);
        goto fail;
    }
    if (m) s = vkd_npz_read(z, "sigma", VKD_NPY_F64, &nd2, sh2, err, errlen);
    if (!s) goto fail;
    if (nd2 != 2 || sh2[0] != sh1[0] || sh2[1] != sh1[0]) {
        char got[64] = "(";
        for (int d = 0, k = 1; d < nd2 && k < 50; d++)
            k += snprintf(got + k, sizeof got - k, d ? ", %lld" : "%lld", (long long)sh2[d]);
        strcat(got, ")");
        npz_fail(err, errlen, path, "'sigma' has shape %s, expected (%lld, %lld) to match 'mu'", got, (long long)sh1[0],
                 (long long)sh1[0]);
        goto fail;
    }
    int64_t d = sh1[0];
    for (int64_t i = 0; i < d; i++)
        if (!isfinite(m[i])) {
            npz_fail(err, errlen, path, "'mu' holds a non-finite value at %lld", (long long)i);
            goto fail;
        }
    for (int64_t i = 0; i < d * d; i++)
        if (!isfinite(s[i])) {
            npz_fail(err, errlen, path, "'sigma' holds a non-finite value at (%lld, %lld)", (long long)(i / d),
                     (long long)(i % d));
            goto fail;
        }
    vkd_npz_close(z);
    *mu = m, *sigma = s, *dim = (int)d;
    return 0;
fail:
    free(m), free(s);
    vkd_npz_close(z);
    return -1;
}
