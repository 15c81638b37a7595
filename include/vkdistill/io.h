#ifndef VKDISTILL_IO_H
#define VKDISTILL_IO_H
// vkdistill file formats: safetensors (weights), strict JSON configs, and the
// atomic file writer every output goes through. Host-only; no Vulkan here.
//
// Errors: functions return NULL or non-zero and write ONE line into err
// (naming the file, the tensor or field, what was expected and what was found),
// so a CLI can print it as it is and exit non-zero.
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// ---------------------------------------------------------------- atomic files
// Output is written to PATH.tmp, fsync'd, then renamed over PATH (and the
// directory fsync'd), so a crash or a failed write never leaves a damaged file
// and never damages the file that was there before.
typedef struct vkd_afile vkd_afile;
vkd_afile *vkd_afile_open(const char *path, char *err, size_t errlen);
// Buffered; the first failure is remembered and reported by commit.
int vkd_afile_write(vkd_afile *f, const void *p, size_t n);
// Flushes, syncs and renames into place; on failure removes PATH.tmp. Frees f either way.
int vkd_afile_commit(vkd_afile *f, char *err, size_t errlen);
// Gives up: removes PATH.tmp, leaves PATH as it was. Frees f.
void vkd_afile_abort(vkd_afile *f);
// The whole of data to path, atomically. 0 on success.
int vkd_write_file_atomic(const char *path, const void *data, size_t n, char *err, size_t errlen);
// The whole file, malloc'd with a NUL appended (not counted in *len). NULL on error.
char *vkd_read_file(const char *path, size_t *len, char *err, size_t errlen);

// ---------------------------------------------------------------- fp16 / bf16
// Round-to-nearest-even from fp32; exact to fp32. Subnormals, inf and NaN
// (kept quiet, sign and top payload bits kept) are handled.
uint16_t vkd_f32_to_f16(float f);
float vkd_f16_to_f32(uint16_t h);
uint16_t vkd_f32_to_bf16(float f);
float vkd_bf16_to_f32(uint16_t h);

// ---------------------------------------------------------------- safetensors
// https://github.com/huggingface/safetensors: u64 header length N, N bytes of
// JSON, then the data. vkd_st_open validates the whole header (dtypes, shapes,
// sizes, tensors tiling the data exactly, duplicate names, metadata) before any
// tensor is read; tensors are then read on demand with pread, so large files
// cost no more memory than the tensors asked for.
#define VKD_ST_MAX_DIMS 8

typedef struct vkd_st vkd_st;  // an open, validated file
typedef struct {
    const char *name;
    char dtype[8];  // "F32", "BF16", "F8_E4M3", ...
    int ndim;       // 0 for a scalar
    int64_t shape[VKD_ST_MAX_DIMS];
    int64_t numel;
    uint64_t begin, end;  // byte offsets relative to the start of the data section
} vkd_st_info;

vkd_st *vkd_st_open(const char *path, char *err, size_t errlen);
void vkd_st_close(vkd_st *st);
int vkd_st_count(const vkd_st *st);
// Tensors in file order (by offset), 0 <= i < count.
const vkd_st_info *vkd_st_get(const vkd_st *st, int i);
const vkd_st_info *vkd_st_find(const vkd_st *st, const char *name);  // NULL if absent
const char *vkd_st_metadata(const vkd_st *st, const char *key);      // NULL if absent
// Reads a tensor converted to fp32 (F32, F16, BF16, F64). If shape is not NULL
// the tensor must have exactly ndim dims of these sizes. dst holds numel floats.
int vkd_st_read_f32(vkd_st *st, const char *name, int ndim, const int64_t *shape, float *dst, char *err, size_t errlen);
// Reads a tensor's bytes as stored (little endian); dstlen must be end - begin.
int vkd_st_read_raw(vkd_st *st, const char *name, void *dst, size_t dstlen, char *err, size_t errlen);

typedef struct {
    const char *name;
    int ndim;  // 0..VKD_ST_MAX_DIMS
    const int64_t *shape;
    const float *data;  // numel floats (may be NULL only when numel is 0)
} vkd_st_tensor;
// Writes n tensors stored as dtype "F32", "F16" or "BF16" (rounded to nearest
// even), with nmeta metadata pairs meta_kv[2i] = key, meta_kv[2i+1] = value.
// Like the Python writer: "__metadata__" first, tensors ordered by name, header
// padded with spaces to a multiple of 8 bytes. Atomic (see vkd_afile).
int vkd_st_write(const char *path, const vkd_st_tensor *t, int n, const char *dtype, const char *const *meta_kv,
                 int nmeta, char *err, size_t errlen);

// ---------------------------------------------------------------- strict JSON configs
// A config is one JSON object. Getters mark their key as read; vkd_cfg_finish
// then fails on any key nobody read, so a typo is never silently ignored.
// Errors are sticky: the first one is kept (a getter that fails returns its
// default) and vkd_cfg_finish (or vkd_cfg_error) reports it:
//   "run.json: field 'unet.channel_mult[1]': expected a positive integer, got -2"
typedef struct vkd_cfg vkd_cfg;

vkd_cfg *vkd_cfg_load(const char *path, char *err, size_t errlen);
// name is what errors call the text (a file name). Duplicate keys are rejected.
vkd_cfg *vkd_cfg_parse(const char *text, const char *name, char *err, size_t errlen);
void vkd_cfg_free(vkd_cfg *c);  // the root only; nested objects belong to it
// 1 if two config texts say the same thing: equal as JSON once every "comment"
// field (at any depth) is dropped, whatever the layout or key order. Resume uses
// it so that editing a config's comment does not orphan its checkpoints.
int vkd_cfg_same_settings(const char *a, const char *b);
// A nested object (owned by c; errors go to the root). NULL if absent or on error.
vkd_cfg *vkd_cfg_obj(vkd_cfg *c, const char *key, int required);
// An integer in [lo, hi] (INT_MIN/INT_MAX for no bound).
int vkd_cfg_int(vkd_cfg *c, const char *key, int required, int def, int lo, int hi);
// A number in [lo, hi] (-HUGE_VAL/HUGE_VAL for no bound).
double vkd_cfg_num(vkd_cfg *c, const char *key, int required, double def, double lo, double hi);
int vkd_cfg_bool(vkd_cfg *c, const char *key, int required, int def);
// allowed: a NULL-terminated list of accepted values, or NULL for any string.
// The result lives as long as the config.
const char *vkd_cfg_str(vkd_cfg *c, const char *key, int required, const char *def, const char *const *allowed);
// Arrays of at most maxn elements (each in [lo, hi]); returns the count, 0 if
// absent and not required, -1 on error. out is written only on success.
int vkd_cfg_int_list(vkd_cfg *c, const char *key, int required, int *out, int maxn, int lo, int hi);
int vkd_cfg_num_list(vkd_cfg *c, const char *key, int required, double *out, int maxn);
// An array of equally long arrays of numbers ([[1, 2], [3, 4]]): at most maxrows rows of
// 1..maxcols numbers, written row-major into out (maxrows * maxcols); *cols gets the row
// length. Returns the row count, 0 if absent and not required, -1 on error.
int vkd_cfg_num_matrix(vkd_cfg *c, const char *key, int required, double *out, int maxrows, int maxcols, int *cols);
// Whether the key is present (does not count as reading it).
int vkd_cfg_has(const vkd_cfg *c, const char *key);
// 0 if there was no error and every key (here and in the nested objects
// fetched with vkd_cfg_obj) was read; else -1 with the error set:
//   "run.json: unknown field 'chanel_mult' (did you mean 'channel_mult'? known: ...)"
int vkd_cfg_finish(vkd_cfg *c);
const char *vkd_cfg_error(const vkd_cfg *c);  // NULL when there is none

#ifdef __cplusplus
}
#endif
#endif
