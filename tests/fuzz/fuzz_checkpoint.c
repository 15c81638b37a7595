// Fuzz target: checkpoints as --resume reads them (vkd_ckpt_check: the
// safetensors file, the config metadata that must match, the expected tensors
// and their shapes, no extra tensor, the step counters), for a small model of
// two layers with EMA and Adam state.
#include "fuzz_common.h"
#include "vkdistill/checkpoint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fz_write("ckpt-00000010.safetensors", data, size);
    static const char *const names[] = {"net/w", "net/b", "ema/w", "ema/b", "adam_m/w", "adam_m/b"};
    static const int ndims[] = {2, 1, 2, 1, 2, 1};
    int64_t shapes[6 * VKD_MAX_DIMS] = {0};
    for (int i = 0; i < 6; i += 2) {
        shapes[i * VKD_MAX_DIMS] = 4, shapes[i * VKD_MAX_DIMS + 1] = 3;
        shapes[(i + 1) * VKD_MAX_DIMS] = 4;
    }
    static const char *const match[] = {"kind", "vkdistill teacher training", "model_config", "{\"arch\": \"mlp\"}"};
    char err[512] = "";
    for (int nmatch = 0; nmatch <= 2; nmatch += 2)
        if (vkd_ckpt_check(path, 6, names, ndims, shapes, match, nmatch, err, sizeof err)) fz_check_err(err);
    return 0;
}
