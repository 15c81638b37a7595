// Fuzz target: JSON configs. The first byte picks the reader, the rest is the
// file:
//   0: the strict config reader itself (vkd_cfg_parse), every key read with a
//      getter the next bytes choose (int, number, bool, string, lists,
//      matrix, nested object), then vkd_cfg_finish;
//   1: a model config (vkd_model_create_json: UNet, DiT, MLP, classifier);
//   2: a GMM teacher config (vkd_gmm_load);
//   3: a distill run config (vkd_distiller_cfg_load), 4: a train-teacher run
//      config (vkd_teacher_cfg_load) — host-only readers, no device.
// 1 and 2 build real tensors, so they need a Vulkan device (lavapipe); the
// fuzzer runs them under a device memory cap (VKD_MEMORY_CAP_MB, 16 here) so
// a config asking for a huge network gets the out-of-memory line instead of
// exhausting the machine, and frozen (no gradient buffers). A config with a
// typo is still built with the defaults of the other fields before the typo is
// reported (the default DiT: ~20 s of weight init under ASan): the cap keeps
// that to the first 16 MiB of tensors.
#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>

#include "fuzz_common.h"
#include "vkdistill/diffusion.h"
#include "vkdistill/distill.h"
#include "vkdistill/io.h"
#include "vkdistill/nn.h"
#include "vkdistill/vkdistill.h"

static vkd_ctx *ctx;

static vkd_ctx *get_ctx(void) {
    if (!ctx) {
        setenv("VKD_MEMORY_CAP_MB", "16", 0);
        vkd_ctx_opts o = {.validation = 0, .quiet = 1};
        char err[512];
        if (!(ctx = vkd_ctx_create(&o, err, sizeof err))) {
            fprintf(stderr, "fuzz_config: no Vulkan device: %s\n", err);
            abort();
        }
    }
    return ctx;
}

static void walk(vkd_cfg *c, const cJSON *j, const uint8_t **sel, const uint8_t *end, int depth) {
    const cJSON *it;
    cJSON_ArrayForEach(it, j) {
        if (!it->string) continue;
        int pick = *sel < end ? *(*sel)++ : 0;
        int buf_i[16];
        double buf_d[64];
        int cols;
        switch (pick % 8) {
        case 0: vkd_cfg_int(c, it->string, pick & 8, 0, (pick & 16) ? 1 : INT_MIN, INT_MAX); break;
        case 1: vkd_cfg_num(c, it->string, pick & 8, 0, (pick & 16) ? 0 : -HUGE_VAL, HUGE_VAL); break;
        case 2: vkd_cfg_bool(c, it->string, pick & 8, 0); break;
        case 3: {
            static const char *const allowed[] = {"unet", "dit", "mlp", NULL};
            vkd_cfg_str(c, it->string, pick & 8, NULL, (pick & 16) ? allowed : NULL);
            break;
        }
        case 4: vkd_cfg_int_list(c, it->string, pick & 8, buf_i, 1 + pick / 16, 0, INT_MAX); break;
        case 5: vkd_cfg_num_list(c, it->string, pick & 8, buf_d, 1 + pick / 16); break;
        case 6: vkd_cfg_num_matrix(c, it->string, pick & 8, buf_d, 1 + (pick >> 4 & 7), 1 + (pick >> 7) * 7, &cols); break;
        default: {
            vkd_cfg *o = vkd_cfg_obj(c, it->string, pick & 8);
            if (o && cJSON_IsObject(it) && depth < 8) walk(o, it, sel, end, depth + 1);
        }
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int mode = data[0] % 5;
    // The text (NUL-terminated, as a file read by vkd_read_file is).
    char *text = malloc(size);
    memcpy(text, data + 1, size - 1);
    text[size - 1] = 0;
    char err[512] = "";
    if (mode == 0) {
        vkd_cfg *c = vkd_cfg_parse(text, "fuzz.json", err, sizeof err);
        if (!c) {
            fz_check_err(err);
        } else {
            cJSON *j = cJSON_Parse(text);
            // The getters are chosen by the input bytes themselves.
            const uint8_t *sel = data + 1, *end = data + size;
            if (j) walk(c, j, &sel, end, 0);
            cJSON_Delete(j);
            if (vkd_cfg_finish(c)) fz_check_err(vkd_cfg_error(c));
            vkd_cfg_free(c);
        }
    } else if (mode == 1) {
        vkd_model *m = vkd_model_create_json(get_ctx(), text, "fuzz.json", 0, 1, err, sizeof err);
        if (!m) fz_check_err(err);
        vkd_model_free(m);
    } else if (mode >= 3) {
        const char *path = fz_write("run.json", data + 1, size - 1);
        vkd_distiller_cfg dc;
        vkd_teacher_cfg tc;
        int rc = mode == 3 ? vkd_distiller_cfg_load(path, &dc, err, sizeof err) : vkd_teacher_cfg_load(path, &tc, err, sizeof err);
        if (rc) fz_check_err(err);
    } else {
        const char *path = fz_write("gmm.json", data + 1, size - 1);
        vkd_gmm *g = vkd_gmm_load(get_ctx(), path, err, sizeof err);
        if (!g) fz_check_err(err);
        vkd_gmm_free(g);
    }
    free(text);
    return 0;
}
