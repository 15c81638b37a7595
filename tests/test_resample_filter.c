// A UNet's resample_filter buffers are saved with its weights but the network
// derives its filters from the config: weights made with another filter
// (e.g. [1,3,3,1] weights loaded into a [1,1] config) must be refused by name,
// by vkd_model_load and by a checkpoint resume, never silently ignored.
// usage: test_resample_filter models/unet_tiny.json
#define _POSIX_C_SOURCE 200809L
#include <unistd.h>

#include "harness.h"
#include "vkdistill/checkpoint.h"
#include "vkdistill/io.h"
#include "vkdistill/nn.h"

static char dir[64];
static const char *tpath(const char *name) {
    static char p[4][160];
    static int k;
    char *s = p[k++ % 4];
    snprintf(s, 160, "%s/%s", dir, name);
    return s;
}

// Copies src to dst, scaling every tensor whose name ends in ".resample_filter" by `scale`
// (element 0 only when first_only). Returns how many tensors were changed.
static int rewrite(const char *src, const char *dst, float scale, int first_only, const char *const *meta, int nmeta) {
    char err[512];
    vkd_st *st = vkd_st_open(src, err, sizeof err);
    if (!st) return -1;
    int n = vkd_st_count(st), changed = 0;
    vkd_st_tensor *ts = calloc(n, sizeof *ts);
    for (int i = 0; i < n; i++) {
        const vkd_st_info *in = vkd_st_get(st, i);
        float *h = malloc((in->numel ? in->numel : 1) * sizeof *h);
        vkd_st_read_f32(st, in->name, in->ndim, in->shape, h, err, sizeof err);
        size_t len = strlen(in->name);
        if (len > 16 && strcmp(in->name + len - 16, ".resample_filter") == 0) {
            for (int64_t j = 0; j < (first_only ? 1 : in->numel); j++) h[j] *= scale;
            changed++;
        }
        ts[i] = (vkd_st_tensor){in->name, in->ndim, in->shape, h};
    }
    int rc = vkd_st_write(dst, ts, n, "F32", meta, nmeta, err, sizeof err);
    for (int i = 0; i < n; i++) free((void *)ts[i].data);
    free(ts);
    vkd_st_close(st);
    return rc ? -1 : changed;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        printf("usage: test_resample_filter models/unet_tiny.json\n0 passed, 1 failed\n");
        return 1;
    }
    snprintf(dir, sizeof dir, "/tmp/vkd_filter_XXXXXX");
    if (!mkdtemp(dir)) return 1;
    vkd_ctx *ctx = t_open();
    char err[1024] = "";
    vkd_model *m = vkd_model_create(ctx, argv[1], 1, 7, err, sizeof err);
    CHECK(m != NULL, "model: %s", err);
    if (!m) return t_close(ctx);
    CHECK(vkd_model_save(m, tpath("w.safetensors"), "F32", err, sizeof err) == 0, "save: %s", err);
    CHECK(vkd_model_load(m, tpath("w.safetensors"), err, sizeof err) == 0, "its own weights: %s", err);

    // [1,1] / 4 per tap -> a filter scaled by 3 in one element: refused, naming the tensor.
    int changed = rewrite(tpath("w.safetensors"), tpath("w3.safetensors"), 3.0f, 1, NULL, 0);
    CHECK(changed > 0, "unet_tiny has no resample_filter buffers (%d)", changed);
    err[0] = 0;
    CHECK(vkd_model_load(m, tpath("w3.safetensors"), err, sizeof err) != 0 && strstr(err, ".resample_filter'") &&
              strstr(err, "differs from the model config's resample_filter") && strstr(err, "w3.safetensors") &&
              !strchr(err, '\n'),
          "other filter accepted or unclear: '%s'", err);
    printf("  model load: %s\n", err);

    // The same through a checkpoint (net/ prefix, as train-teacher saves it).
    vkd_ckpt *ck = vkd_ckpt_new();
    vkd_ckpt_add_model(ck, "net/", m);
    vkd_ckpt_set_meta(ck, "step", "5");
    CHECK(vkd_ckpt_save(ck, tpath("ck.safetensors"), err, sizeof err) == 0, "ckpt save: %s", err);
    CHECK(vkd_ckpt_load(ck, tpath("ck.safetensors"), NULL, 0, err, sizeof err) == 0, "ckpt load: %s", err);
    const char *meta[] = {"step", "5"};
    rewrite(tpath("ck.safetensors"), tpath("ck3.safetensors"), 0.5f, 0, meta, 1);
    err[0] = 0;
    CHECK(vkd_ckpt_load(ck, tpath("ck3.safetensors"), NULL, 0, err, sizeof err) != 0 &&
              strstr(err, "net/model.") && strstr(err, ".resample_filter'") && !strchr(err, '\n'),
          "checkpoint with another filter accepted or unclear: '%s'", err);
    printf("  checkpoint load: %s\n", err);
    // A step counter that is not a count is refused too (a resume would start at a wrong step).
    const char *bad[] = {"step", "-3"};
    rewrite(tpath("ck.safetensors"), tpath("ckbad.safetensors"), 1.0f, 0, bad, 1);
    err[0] = 0;
    CHECK(vkd_ckpt_load(ck, tpath("ckbad.safetensors"), NULL, 0, err, sizeof err) != 0 &&
              strstr(err, "metadata 'step' is '-3', expected a non-negative integer"),
          "step -3 accepted: '%s'", err);
    vkd_ckpt_free(ck);
    vkd_model_free(m);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) {
    }
    return t_close(ctx);
}
