// vkdistill export: weights rewritten in another dtype (F16 halves a shipped
// model's size; training always keeps F32), or the mean of several files' weights
// (checkpoint averaging; --prefix picks the network inside a checkpoint). The
// model config checks that the weights are complete and gives the metadata the
// written file carries.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "vkdistill/nn.h"

int vkd_cli_export(vkd_cli *cli, int argc, char **argv) {
    const char *model = NULL, *out = NULL, *dtype = "F16", *prefix = "";
    const char **weights = calloc(argc > 0 ? argc : 1, sizeof *weights);
    int nw = 0;
    if (!weights) {
        fprintf(stderr, "vkdistill export: out of host memory\n");
        return 1;
    }
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "vkdistill export: %s needs a value\n", a);
            free(weights);
            return 2;
        }
        if (strcmp(a, "--model") == 0) model = v, i++;
        else if (strcmp(a, "--weights") == 0) weights[nw++] = v, i++;
        else if (strcmp(a, "--prefix") == 0) prefix = v, i++;
        else if (strcmp(a, "-o") == 0 || strcmp(a, "--out") == 0) out = v, i++;
        else if (strcmp(a, "--dtype") == 0 && (!strcmp(v, "F16") || !strcmp(v, "BF16") || !strcmp(v, "F32")))
            dtype = v, i++;
        else {
            fprintf(stderr, "vkdistill export: unknown argument '%s %s' (see vkdistill --help)\n", a, v);
            free(weights);
            return 2;
        }
    }
    if (!model || !nw || !out) {
        fprintf(stderr, "vkdistill export: needs --model CONFIG --weights IN.safetensors [--weights ...] -o OUT.safetensors\n");
        free(weights);
        return 2;
    }
    vkd_ctx *ctx = vkd_cli_open(cli);
    if (!ctx) {
        free(weights);
        return 1;
    }
    char err[2600];
    int rc = 1;
    vkd_model *m = vkd_model_create(ctx, model, 0, 0, err, sizeof err);
    // The file is written to a temporary name and renamed, so OUT may be IN.
    if (m && !vkd_model_load_mean(m, weights, nw, prefix, err, sizeof err) && !vkd_model_save(m, out, dtype, err, sizeof err)) {
        if (nw == 1) printf("%s: %s weights of %s\n", out, dtype, model);
        else printf("%s: %s mean of %d weight files%s%s of %s\n", out, dtype, nw, prefix[0] ? " under " : "", prefix, model);
        rc = 0;
    } else {
        vkd_cli_error("%s", err);
    }
    vkd_model_free(m);
    free(weights);
    return vkd_cli_close(ctx, rc);
}
