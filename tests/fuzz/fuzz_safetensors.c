// Fuzz target: safetensors files (model weights, checkpoints, the shipped
// classifier): vkd_st_open's header validation, then every tensor read both
// converted to fp32 and raw, and the metadata.
#include "fuzz_common.h"
#include "vkdistill/io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fz_write("t.safetensors", data, size);
    char err[512] = "";
    vkd_st *st = vkd_st_open(path, err, sizeof err);
    if (!st) {
        fz_check_err(err);
        return 0;
    }
    vkd_st_metadata(st, "format");
    vkd_st_metadata(st, "step");
    for (int i = 0; i < vkd_st_count(st); i++) {
        const vkd_st_info *t = vkd_st_get(st, i);
        if (vkd_st_find(st, t->name) != t) abort();  // lookup by name must find the same entry
        size_t bytes = (size_t)(t->end - t->begin);
        if (bytes > (64u << 20) || (size_t)t->numel > (16u << 20)) continue;  // a validated header may still be big
        void *raw = malloc(bytes ? bytes : 1);
        float *f = malloc((size_t)t->numel * sizeof *f + 1);
        if (vkd_st_read_raw(st, t->name, raw, bytes, err, sizeof err)) fz_check_err(err);
        if (vkd_st_read_f32(st, t->name, t->ndim, t->shape, f, err, sizeof err)) fz_check_err(err);
        free(raw), free(f);
    }
    vkd_st_close(st);
    return 0;
}
