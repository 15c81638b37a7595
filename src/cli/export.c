// vkdistill export: weights rewritten in another dtype (F16 halves a shipped
// model's size; training always keeps F32). The model config checks that the
// weights are complete and gives the metadata the written file carries.
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "vkdistill/nn.h"

int vkd_cli_export(vkd_cli *cli, int argc, char **argv) {
    const char *model = NULL, *weights = NULL, *out = NULL, *dtype = "F16";
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "vkdistill export: %s needs a value\n", a);
            return 2;
        }
        if (strcmp(a, "--model") == 0) model = v, i++;
        else if (strcmp(a, "--weights") == 0) weights = v, i++;
        else if (strcmp(a, "-o") == 0 || strcmp(a, "--out") == 0) out = v, i++;
        else if (strcmp(a, "--dtype") == 0 && (!strcmp(v, "F16") || !strcmp(v, "BF16") || !strcmp(v, "F32")))
            dtype = v, i++;
        else {
            fprintf(stderr, "vkdistill export: unknown argument '%s %s' (see vkdistill --help)\n", a, v);
            return 2;
        }
    }
    if (!model || !weights || !out) {
        fprintf(stderr, "vkdistill export: needs --model CONFIG --weights IN.safetensors -o OUT.safetensors\n");
        return 2;
    }
    vkd_ctx *ctx = vkd_cli_open(cli);
    if (!ctx) return 1;
    char err[2600];
    int rc = 1;
    vkd_model *m = vkd_model_create(ctx, model, 0, 0, err, sizeof err);
    // The file is written to a temporary name and renamed, so OUT may be IN.
    if (m && !vkd_model_load(m, weights, err, sizeof err) && !vkd_model_save(m, out, dtype, err, sizeof err)) {
        printf("%s: %s weights of %s\n", out, dtype, model);
        rc = 0;
    } else {
        vkd_cli_error("%s", err);
    }
    vkd_model_free(m);
    return vkd_cli_close(ctx, rc);
}
