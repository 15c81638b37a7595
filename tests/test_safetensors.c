// safetensors reader/writer and fp16/bf16 conversion (host only, no Vulkan).
// Every malformed file must be rejected at open with one line that names the
// file and the problem; a failed write must leave the old file as it was.
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#include <signal.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "vkdistill/io.h"

static char dir[64];

static const char *tpath(const char *name) {
    static char buf[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static unsigned char *slurp(const char *path, size_t *n) {
    char err[256];
    return (unsigned char *)vkd_read_file(path, n, err, sizeof err);
}

static int exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

static uint32_t fbits(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    return x;
}

static float bitsf(uint32_t x) {
    float f;
    memcpy(&f, &x, 4);
    return f;
}

// A file as the format lays it out: u64 length (hlen_override if not ~0), the
// header as given (padded with spaces to 8 when pad), then datalen data bytes.
static void write_raw(const char *path, const char *header, int pad, uint64_t hlen_override, const void *data,
                      size_t datalen) {
    size_t h = strlen(header), padded = pad ? (h + 7) / 8 * 8 : h;
    uint64_t n = hlen_override != ~0ull ? hlen_override : padded;
    FILE *f = fopen(path, "wb");
    for (int i = 0; i < 8; i++) fputc((int)((n >> (8 * i)) & 0xff), f);
    fwrite(header, 1, h, f);
    for (size_t i = h; i < padded; i++) fputc(' ', f);
    if (datalen) {
        unsigned char *zeros = calloc(1, datalen);
        fwrite(data ? data : zeros, 1, datalen, f);
        free(zeros);
    }
    fclose(f);
}

// The file must be refused at open with one line naming it and containing want.
static void expect_reject(const char *what, const char *path, const char *want) {
    char err[512] = "";
    vkd_st *st = vkd_st_open(path, err, sizeof err);
    CHECK(st == NULL, "%s: accepted", what);
    vkd_st_close(st);
    CHECK(strstr(err, want) != NULL, "%s: error '%s' lacks '%s'", what, err, want);
    CHECK(strncmp(err, path, strlen(path)) == 0 && !strchr(err, '\n'), "%s: not one line naming the file: '%s'", what,
          err);
}

static void reject_header(const char *what, const char *header, size_t datalen, const char *want) {
    const char *p = tpath("bad.safetensors");
    write_raw(p, header, 1, ~0ull, NULL, datalen);
    expect_reject(what, p, want);
}

static void test_half(void) {
    // Every fp16 value survives fp16 -> fp32 -> fp16 (NaNs stay NaN).
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = vkd_f16_to_f32((uint16_t)h);
        uint16_t back = vkd_f32_to_f16(f);
        int nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
        if (nan ? !(isnan(f) && (back & 0x7c00) == 0x7c00 && (back & 0x3ff)) : back != h) bad++;
    }
    CHECK(bad == 0, "%d fp16 values do not round trip", bad);
    bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = vkd_bf16_to_f32((uint16_t)h);
        uint16_t back = vkd_f32_to_bf16(f);
        if (isnan(f) ? !isnan(vkd_bf16_to_f32(back)) : back != h) bad++;
    }
    CHECK(bad == 0, "%d bf16 values do not round trip", bad);

    // Exact values: subnormals, ties to even, overflow.
    struct {
        float f;
        uint16_t h;
    } f16[] = {
        {0.0f, 0x0000},
        {-0.0f, 0x8000},
        {1.0f, 0x3c00},
        {-2.0f, 0xc000},
        {65504.0f, 0x7bff},
        {65519.99f, 0x7bff},
        {65520.0f, 0x7c00},
        {1e30f, 0x7c00},
        {-INFINITY, 0xfc00},
        {5.9604645e-08f, 0x0001},      // 2^-24, the smallest subnormal
        {2.9802322e-08f, 0x0000},      // 2^-25: a tie, to even (0)
        {2.9802326e-08f, 0x0001},      // just above the tie
        {8.940697e-08f, 0x0002},       // 1.5 * 2^-24: tie to even (2)
        {6.097555e-05f, 0x03ff},       // largest subnormal
        {6.1035156e-05f, 0x0400},      // 2^-14, smallest normal
        {1.00048828125f, 0x3c00},      // 1 + 2^-11: tie, to even
        {1.00146484375f, 0x3c02},      // 1 + 3 * 2^-11: tie, to even (up)
        {1.0004883f + 1e-7f, 0x3c01},  // above the tie
        {1e-40f, 0x0000},              // fp32 subnormal
    };
    for (size_t i = 0; i < sizeof f16 / sizeof f16[0]; i++)
        CHECK(vkd_f32_to_f16(f16[i].f) == f16[i].h, "f16(%g) = 0x%04x, expected 0x%04x", f16[i].f,
              vkd_f32_to_f16(f16[i].f), f16[i].h);
    CHECK(vkd_f16_to_f32(0x0001) == 5.9604645e-08f && vkd_f16_to_f32(0x8000) == 0.0f && signbit(vkd_f16_to_f32(0x8000)),
          "fp16 subnormal / -0 decode");
    CHECK((vkd_f32_to_f16(NAN) & 0x7e00) == 0x7e00, "fp16 NaN");
    struct {
        float f;
        uint16_t h;
    } bf[] = {
        {1.0f, 0x3f80},          {-0.0f, 0x8000},  {1.00390625f, 0x3f80}, {1.01171875f, 0x3f82},
        {3.4028235e38f, 0x7f80}, {1e-40f, 0x0001}, {INFINITY, 0x7f80},
    };
    for (size_t i = 0; i < sizeof bf / sizeof bf[0]; i++)
        CHECK(vkd_f32_to_bf16(bf[i].f) == bf[i].h, "bf16(%g) = 0x%04x, expected 0x%04x", bf[i].f,
              vkd_f32_to_bf16(bf[i].f), bf[i].h);
    CHECK(isnan(vkd_bf16_to_f32(vkd_f32_to_bf16(bitsf(0x7f800001)))), "bf16 keeps a low-payload NaN a NaN");

#ifdef __FLT16_MANT_DIG__
    // The compiler's conversion is round-to-nearest-even too: compare on a sweep of fp32 bit patterns.
    bad = 0;
    for (uint64_t x = 0; x < (1ull << 32); x += 4099) {
        float f = bitsf((uint32_t)x);
        if (isnan(f)) continue;
        _Float16 h = (_Float16)f;
        uint16_t hb;
        memcpy(&hb, &h, 2);
        if (hb != vkd_f32_to_f16(f)) bad++;
    }
    CHECK(bad == 0, "%d fp32 -> fp16 conversions differ from _Float16", bad);
#endif
}

static void test_round_trip(void) {
    const float vals[] = {0.0f,     -0.0f,    1.0f,   -2.5f,    3.14159265f, 1e-7f, 6e-8f,    1e-40f,
                          60000.0f, 70000.0f, -1e30f, INFINITY, -INFINITY,   0.1f,  123.456f, -65504.0f};
    const int nv = (int)(sizeof vals / sizeof vals[0]);
    static float big[300000];  // more than one conversion chunk of fp16
    for (int i = 0; i < 300000; i++) big[i] = (float)sin(i * 0.001) * 100.0f;
    float scalar = 42.0f;
    int64_t s_vals[] = {2, 8}, s_big[] = {300, 1000}, s_empty[] = {0, 3};
    const char *dtypes[] = {"F32", "F16", "BF16"};
    for (int d = 0; d < 3; d++) {
        // Given out of name order: the file is ordered by name.
        vkd_st_tensor t[] = {
            {"z.vals", 2, s_vals, vals},
            {"big", 2, s_big, big},
            {"a.scalar", 0, NULL, &scalar},
            {"empty", 2, s_empty, NULL},
        };
        const char *meta[] = {"format", "pt", "note", "quote\" back\\slash\nnewline"};
        char err[512] = "";
        const char *p = tpath("rt.safetensors");
        CHECK(vkd_st_write(p, t, 4, dtypes[d], meta, 2, err, sizeof err) == 0, "%s write: %s", dtypes[d], err);
        CHECK(!exists(tpath("rt.safetensors.tmp")), "temporary file left behind");
        vkd_st *st = vkd_st_open(p, err, sizeof err);
        CHECK(st != NULL, "%s open: %s", dtypes[d], err);
        if (!st) continue;
        CHECK(vkd_st_count(st) == 4, "count %d", vkd_st_count(st));
        const char *order[] = {"a.scalar", "big", "empty", "z.vals"};
        for (int i = 0; i < 4 && i < vkd_st_count(st); i++) {
            const vkd_st_info *in = vkd_st_get(st, i);
            CHECK(strcmp(in->name, order[i]) == 0, "tensor %d is %s, expected %s", i, in->name, order[i]);
            CHECK(strcmp(in->dtype, dtypes[d]) == 0, "dtype %s", in->dtype);
        }
        CHECK(vkd_st_get(st, 4) == NULL && vkd_st_find(st, "nope") == NULL, "out of range / absent");
        const vkd_st_info *iv = vkd_st_find(st, "z.vals");
        CHECK(iv && iv->ndim == 2 && iv->shape[0] == 2 && iv->shape[1] == 8 && iv->numel == 16, "info of z.vals");
        CHECK(vkd_st_find(st, "a.scalar")->ndim == 0 && vkd_st_find(st, "empty")->numel == 0, "scalar / empty info");
        CHECK(vkd_st_metadata(st, "format") && strcmp(vkd_st_metadata(st, "format"), "pt") == 0, "metadata format");
        CHECK(vkd_st_metadata(st, "note") && strcmp(vkd_st_metadata(st, "note"), meta[3]) == 0, "metadata escapes");
        CHECK(vkd_st_metadata(st, "absent") == NULL, "absent metadata");

        float got[16];
        CHECK(vkd_st_read_f32(st, "z.vals", 2, s_vals, got, err, sizeof err) == 0, "read: %s", err);
        int bad = 0;
        for (int i = 0; i < nv; i++) {
            float want = d == 0   ? vals[i]
                         : d == 1 ? vkd_f16_to_f32(vkd_f32_to_f16(vals[i]))
                                  : vkd_bf16_to_f32(vkd_f32_to_bf16(vals[i]));
            if (fbits(got[i]) != fbits(want)) bad++;
        }
        CHECK(bad == 0, "%s: %d values differ after the round trip", dtypes[d], bad);
        if (d == 1)
            CHECK(isinf(got[9]) && got[10] == -INFINITY && got[6] > 0 && got[7] == 0, "fp16 overflow / subnormals");
        static float gbig[300000];
        CHECK(vkd_st_read_f32(st, "big", 0, NULL, gbig, err, sizeof err) == 0, "read big: %s", err);
        bad = 0;
        for (int i = 0; i < 300000; i++) {
            float want = d == 0   ? big[i]
                         : d == 1 ? vkd_f16_to_f32(vkd_f32_to_f16(big[i]))
                                  : vkd_bf16_to_f32(vkd_f32_to_bf16(big[i]));
            if (fbits(gbig[i]) != fbits(want)) bad++;
        }
        CHECK(bad == 0, "%s: %d values of the big tensor differ", dtypes[d], bad);
        float sc = 0;
        int64_t no_dims[1] = {0};
        CHECK(vkd_st_read_f32(st, "a.scalar", 0, no_dims, &sc, err, sizeof err) == 0 && sc == 42.0f, "scalar: %s", err);
        CHECK(vkd_st_read_f32(st, "empty", 2, s_empty, NULL, err, sizeof err) == 0, "empty: %s", err);
        vkd_st_close(st);

        // Layout: header a multiple of 8, so the data (and every tensor) is aligned.
        size_t n;
        unsigned char *b = slurp(p, &n);
        uint64_t hl = 0;
        for (int i = 7; i >= 0; i--) hl = hl << 8 | b[i];
        CHECK(hl % 8 == 0 && b[8] == '{' && (b[8 + hl - 1] == ' ' || b[8 + hl - 1] == '}'), "header padding");
        CHECK(memcmp(b + 8, "{\"__metadata__\":{\"format\":\"pt\"", 30) == 0, "metadata first");
        free(b);
    }
}

// A file laid out byte by byte as the Python writer does; our writer must
// produce the same bytes, and the reader must read them.
static void test_known_file(void) {
    const char *hdr = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";  // 54 bytes, padded to 56
    unsigned char want[8 + 56 + 8] = {56, 0, 0, 0, 0, 0, 0, 0};
    memcpy(want + 8, hdr, 54);
    want[62] = want[63] = ' ';
    const unsigned char data[8] = {0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0};  // 1.0f, -2.0f
    memcpy(want + 64, data, 8);
    const char *p = tpath("known.safetensors");
    FILE *f = fopen(p, "wb");
    fwrite(want, 1, sizeof want, f);
    fclose(f);
    char err[512] = "";
    vkd_st *st = vkd_st_open(p, err, sizeof err);
    CHECK(st != NULL, "known file: %s", err);
    if (st) {
        float v[2] = {0};
        int64_t shape[] = {2};
        CHECK(vkd_st_read_f32(st, "a", 1, shape, v, err, sizeof err) == 0 && v[0] == 1.0f && v[1] == -2.0f,
              "known file values %g %g (%s)", v[0], v[1], err);
        const vkd_st_info *t = vkd_st_get(st, 0);
        CHECK(t->begin == 0 && t->end == 8 && t->numel == 2, "known file offsets");
        vkd_st_close(st);
    }
    float vals[2] = {1.0f, -2.0f};
    int64_t shape[] = {2};
    vkd_st_tensor t = {"a", 1, shape, vals};
    const char *q = tpath("ours.safetensors");
    CHECK(vkd_st_write(q, &t, 1, "F32", NULL, 0, err, sizeof err) == 0, "write: %s", err);
    size_t n = 0;
    unsigned char *b = slurp(q, &n);
    CHECK(b && n == sizeof want && memcmp(b, want, n) == 0, "our bytes differ from the Python layout (%zu bytes)", n);
    free(b);

    // Mixed dtypes in one file with metadata, read back as fp32; an integer tensor read raw.
    const char *mixed =
        "{\"__metadata__\":{\"format\":\"pt\"},"
        "\"i\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]},"
        "\"h\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[8,12]},"
        "\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[12,16]},"
        "\"d\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[16,24]}}";
    unsigned char md[24] = {7, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x3c, 0x01, 0x00, 0x80, 0x3f, 0x20, 0xc1};
    double dv = -0.375;
    memcpy(md + 16, &dv, 8);
    write_raw(tpath("mixed.safetensors"), mixed, 1, ~0ull, md, sizeof md);
    st = vkd_st_open(tpath("mixed.safetensors"), err, sizeof err);
    CHECK(st != NULL, "mixed: %s", err);
    if (!st) return;
    float h[2], bfv[2], d;
    int64_t i64 = 0;
    CHECK(vkd_st_read_f32(st, "h", 1, shape, h, err, sizeof err) == 0 && h[0] == 1.0f && h[1] == 5.9604645e-08f,
          "F16 values %g %g", h[0], h[1]);
    CHECK(vkd_st_read_f32(st, "b", 1, shape, bfv, err, sizeof err) == 0 && bfv[0] == 1.0f && bfv[1] == -10.0f,
          "BF16 values %g %g", bfv[0], bfv[1]);
    CHECK(vkd_st_read_f32(st, "d", 0, shape, &d, err, sizeof err) == 0 && d == -0.375f, "F64 value %g", d);
    CHECK(vkd_st_read_raw(st, "i", &i64, 8, err, sizeof err) == 0 && i64 == 7, "I64 raw");
    CHECK(vkd_st_get(st, 0)->name[0] == 'i' && vkd_st_get(st, 3)->name[0] == 'd', "file order is offset order");

    // Reading errors: one line naming file and tensor.
    int64_t wrong[] = {2, 2};
    float tmp[4];
    CHECK(vkd_st_read_f32(st, "h", 2, wrong, tmp, err, sizeof err) != 0 &&
              strstr(err, "tensor 'h': expected shape [2, 2], found [2] (F16)"),
          "shape mismatch: %s", err);
    CHECK(vkd_st_read_f32(st, "zz", 0, NULL, tmp, err, sizeof err) != 0 && strstr(err, "no tensor 'zz'"), "absent: %s",
          err);
    CHECK(
        vkd_st_read_f32(st, "i", 0, NULL, tmp, err, sizeof err) != 0 && strstr(err, "dtype I64 cannot be read as fp32"),
        "int as fp32: %s", err);
    CHECK(vkd_st_read_raw(st, "i", tmp, 4, err, sizeof err) != 0 && strstr(err, "has 8 bytes"), "raw size: %s", err);
    vkd_st_close(st);
}

static void test_rejections(void) {
    const char *p = tpath("bad.safetensors");
    FILE *f = fopen(p, "wb");
    fwrite("\x08\0\0\0\0", 1, 5, f);
    fclose(f);
    expect_reject("shorter than 8 bytes", p, "too short");
    f = fopen(p, "wb");
    fclose(f);
    expect_reject("empty file", p, "is 0 bytes");
    expect_reject("missing file", tpath("nonexistent.safetensors"), "cannot open: No such file");
    expect_reject("a directory", dir, "not a regular file");

    write_raw(p, "{}", 0, 100, NULL, 10);
    expect_reject("header length beyond the file", p, "header length 100 goes past the end of the file (20 bytes)");
    write_raw(p, "{}", 0, 100000001ull, NULL, 0);
    expect_reject("header length > 100,000,000", p, "exceeds the limit");
    write_raw(p, "{}", 0, ~0ull - 1, NULL, 0);
    expect_reject("header length near 2^64", p, "exceeds the limit");
    write_raw(p, "", 0, ~0ull, NULL, 0);
    expect_reject("empty header", p, "not valid JSON");

    reject_header("invalid JSON", "{\"a\":{\"dtype\":\"F32\",", 0, "not valid JSON");
    reject_header("trailing garbage after the JSON", "{} x", 0, "not valid JSON");
    reject_header("not an object", "[1, 2]", 0, "header is not a JSON object (it is an array)");
    reject_header("a string", "\"hello\"", 0, "not a JSON object");
    reject_header("invalid UTF-8", "{\"\xc3\x28\":{}}", 0, "not valid UTF-8");
    reject_header("overlong UTF-8", "{\"\xc0\xaf\":{}}", 0, "not valid UTF-8");
    reject_header("surrogate in UTF-8", "{\"\xed\xa0\x80\":{}}", 0, "not valid UTF-8");
    f = fopen(p, "wb");
    fwrite("\x08\0\0\0\0\0\0\0{\"a\"\0:{}}", 1, 16, f);  // an embedded NUL would end a C string early
    fclose(f);
    expect_reject("NUL byte in the header", p, "NUL byte");

    reject_header("unknown dtype", "{\"w\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
                  "tensor 'w': unknown dtype 'F33'");
    reject_header("dtype not a string", "{\"w\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
                  "tensor 'w': dtype must be a string, got a number");
    reject_header("negative shape", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,-1],\"data_offsets\":[0,4]}}", 4,
                  "tensor 'w': shape dimension 1 is negative");
    reject_header("fractional shape", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4,
                  "shape dimension 0 is not a non-negative integer");
    reject_header("huge shape", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1e300],\"data_offsets\":[0,4]}}", 4,
                  "not a non-negative integer");
    reject_header("overflowing shape",
                  "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,4]}}", 4,
                  "is too large");
    reject_header("shape not an array", "{\"w\":{\"dtype\":\"F32\",\"shape\":3,\"data_offsets\":[0,4]}}", 4,
                  "shape must be an array");
    reject_header("too many dims", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}",
                  4, "9 dimensions");
    reject_header("entry not an object", "{\"w\":[1]}", 0, "tensor 'w': expected an object");
    reject_header("missing shape", "{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4,
                  "tensor 'w': missing 'shape'");
    reject_header("unknown entry field", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4,
                  "tensor 'w': unknown field 'x'");
    reject_header("duplicate entry field",
                  "{\"w\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
                  "tensor 'w': duplicate field 'dtype'");
    reject_header("offsets of one number", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4]}}", 4,
                  "data_offsets must be [begin, end]");
    reject_header("negative offset", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4,
                  "data_offsets must be [begin, end]");
    reject_header("offsets past the data", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4,
                  "tensor 'w': data_offsets [0, 8] go past the end of the data section (4 bytes)");
    reject_header("end < begin", "{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", 8,
                  "tensor 'w': data_offsets [8, 0] end before they begin");
    reject_header("size mismatch with shape",
                  "{\"enc.conv.weight\":{\"dtype\":\"F32\",\"shape\":[3,3],\"data_offsets\":[0,100]}}", 100,
                  "tensor 'enc.conv.weight': data_offsets [0, 100] hold 100 bytes but shape [3, 3] of F32 needs 36");
    reject_header("overlapping tensors",
                  "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                  "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                  12, "tensor 'b' data_offsets [4, 12] overlap tensor 'a' [0, 8]");
    reject_header("same offsets twice",
                  "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                  "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
                  8, "overlap");
    reject_header("a hole between tensors",
                  "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                  "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}",
                  20, "hole of 4 bytes before tensor 'b'");
    reject_header("a hole at the start", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8,
                  "hole of 4 bytes before tensor 'a'");
    reject_header("trailing bytes after the last tensor",
                  "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 12,
                  "4 trailing bytes after the last tensor");
    reject_header("data but no tensors", "{}", 8, "8 trailing bytes");
    reject_header("duplicate names",
                  "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                  "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
                  16, "duplicate tensor name 'a'");
    reject_header("non-string metadata", "{\"__metadata__\":{\"epoch\":3}}", 0,
                  "__metadata__ 'epoch': expected a string value, got a number");
    reject_header("metadata not an object", "{\"__metadata__\":\"pt\"}", 0, "__metadata__ must be an object");
    reject_header("duplicate metadata key", "{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0,
                  "__metadata__: duplicate key 'k'");
    reject_header("two __metadata__", "{\"__metadata__\":{},\"__metadata__\":{}}", 0, "duplicate '__metadata__'");
    reject_header("newline in a name stays one line",
                  "{\"a\\nb\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "tensor 'a?b'");

    // Valid edge cases: no tensors at all; zero-size tensors anywhere in the tiling.
    write_raw(p, "{}", 1, ~0ull, NULL, 0);
    char err[512] = "";
    vkd_st *st = vkd_st_open(p, err, sizeof err);
    CHECK(st && vkd_st_count(st) == 0, "empty file: %s", err);
    vkd_st_close(st);
    write_raw(p,
              "{\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]},"
              "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
              "\"b\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[4,7]}}",
              1, ~0ull, NULL, 7);
    st = vkd_st_open(p, err, sizeof err);
    CHECK(st && vkd_st_count(st) == 3, "zero-size tensor in the middle: %s", err);
    vkd_st_close(st);
}

// Random corruptions of a valid file: open either accepts (then every tensor
// reads) or refuses with one line; never a crash (run under valgrind).
static void test_corruptions(void) {
    float v[6] = {1, 2, 3, 4, 5, 6};
    int64_t s1[] = {2, 3}, s2[] = {4};
    vkd_st_tensor t[] = {{"x.weight", 2, s1, v}, {"x.bias", 1, s2, v}};
    char err[512];
    const char *p = tpath("fuzz.safetensors");
    vkd_st_write(p, t, 2, "F16", NULL, 0, err, sizeof err);
    size_t n;
    unsigned char *orig = slurp(p, &n), *b = malloc(n);
    int accepted = 0, oneline = 1;
    for (int it = 0; it < 3000; it++) {
        memcpy(b, orig, n);
        int flips = 1 + (int)(t_uniform() * 3);
        for (int k = 0; k < flips; k++) b[(size_t)(t_uniform() * (double)n)] = (unsigned char)(t_uniform() * 256);
        size_t len = t_uniform() < 0.1 ? (size_t)(t_uniform() * (double)n) : n;
        FILE *f = fopen(p, "wb");
        fwrite(b, 1, len, f);
        fclose(f);
        err[0] = 0;
        vkd_st *st = vkd_st_open(p, err, sizeof err);
        if (st) {
            accepted++;
            float out[64];
            for (int i = 0; i < vkd_st_count(st); i++) {
                const vkd_st_info *in = vkd_st_get(st, i);
                if (in->numel <= 64) vkd_st_read_f32(st, in->name, 0, NULL, out, err, sizeof err);
            }
            vkd_st_close(st);
        } else if (!err[0] || strchr(err, '\n')) {
            oneline = 0;
        }
    }
    CHECK(oneline, "a refusal without a one-line error");
    CHECK(accepted > 0 && accepted < 3000, "corruptions accepted: %d of 3000", accepted);
    free(orig), free(b);
}

// A write that fails (bad arguments, or the disk refusing midway) must leave
// the existing file exactly as it was and no temporary file behind.
static void test_atomic(void) {
    float v[4] = {1, 2, 3, 4};
    int64_t s[] = {4};
    vkd_st_tensor good = {"w", 1, s, v};
    char err[512] = "";
    const char *p = tpath("ckpt.safetensors"), *tmp = tpath("ckpt.safetensors.tmp");
    CHECK(vkd_st_write(p, &good, 1, "F32", NULL, 0, err, sizeof err) == 0, "write: %s", err);
    size_t n0, n1;
    unsigned char *before = slurp(p, &n0), *after;

    vkd_st_tensor two[] = {{"a", 1, s, v}, {"b", 1, s, NULL}};
    CHECK(vkd_st_write(p, two, 2, "F32", NULL, 0, err, sizeof err) != 0 && strstr(err, "tensor 'b': no data"),
          "NULL data: %s", err);
    vkd_st_tensor dup[] = {{"a", 1, s, v}, {"a", 1, s, v}};
    CHECK(vkd_st_write(p, dup, 2, "F32", NULL, 0, err, sizeof err) != 0 && strstr(err, "duplicate tensor name 'a'"),
          "duplicate: %s", err);
    CHECK(vkd_st_write(p, &good, 1, "F64", NULL, 0, err, sizeof err) != 0 && strstr(err, "cannot write dtype 'F64'"),
          "dtype: %s", err);
    const char *meta[] = {"k", "1", "k", "2"};
    CHECK(vkd_st_write(p, &good, 1, "F32", meta, 2, err, sizeof err) != 0 && strstr(err, "duplicate metadata key 'k'"),
          "duplicate metadata: %s", err);
    after = slurp(p, &n1);
    CHECK(n0 == n1 && memcmp(before, after, n0) == 0 && !exists(tmp), "bad arguments changed the file");
    free(after);

    // The disk fills up halfway: a file size limit makes write() fail with EFBIG.
    static float big[200000];
    int64_t sb[] = {200000};
    vkd_st_tensor large = {"w", 1, sb, big};
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 65536;
    signal(SIGXFSZ, SIG_IGN);
    setrlimit(RLIMIT_FSIZE, &lim);
    int rc = vkd_st_write(p, &large, 1, "F32", NULL, 0, err, sizeof err);
    setrlimit(RLIMIT_FSIZE, &old);
    CHECK(rc != 0 && strstr(err, "File too large"), "midway failure not reported: %s", err);
    after = slurp(p, &n1);
    CHECK(n0 == n1 && memcmp(before, after, n0) == 0, "a failed write damaged the existing file");
    CHECK(!exists(tmp), "a failed write left %s", tmp);
    free(after);

    CHECK(vkd_st_write("/nonexistent-dir/x.safetensors", &good, 1, "F32", NULL, 0, err, sizeof err) != 0 &&
              strstr(err, "cannot create /nonexistent-dir/x.safetensors.tmp"),
          "no directory: %s", err);

    // Writing over it for real replaces it.
    CHECK(vkd_st_write(p, &large, 1, "BF16", NULL, 0, err, sizeof err) == 0, "overwrite: %s", err);
    vkd_st *st = vkd_st_open(p, err, sizeof err);
    CHECK(st && strcmp(vkd_st_get(st, 0)->dtype, "BF16") == 0, "overwritten file: %s", err);
    vkd_st_close(st);
    free(before);

    CHECK(vkd_write_file_atomic(tpath("x.txt"), "hello", 5, err, sizeof err) == 0, "atomic write: %s", err);
    char *txt = vkd_read_file(tpath("x.txt"), &n0, err, sizeof err);
    CHECK(txt && n0 == 5 && strcmp(txt, "hello") == 0, "read back");
    free(txt);
}

int main(void) {
    const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(dir, sizeof dir, "%.40s/vkd_st_XXXXXX", base);
    if (!mkdtemp(dir)) {
        printf("cannot create a temporary directory\n0 passed, 1 failed\n");
        return 1;
    }
    test_half();
    test_round_trip();
    test_known_file();
    test_rejections();
    test_corruptions();
    test_atomic();
    const char *files[] = {"rt.safetensors",  "known.safetensors", "ours.safetensors", "mixed.safetensors",
                           "bad.safetensors", "fuzz.safetensors",  "ckpt.safetensors", "x.txt"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) unlink(tpath(files[i]));
    CHECK(rmdir(dir) == 0, "stray files left in %s", dir);
    printf("%d passed, %d failed\n", t_pass, t_fail);
    return t_fail ? 1 : 0;
}
