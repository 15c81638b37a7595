// vkdistill info: the chosen device and the features the code paths depend on.
#define _GNU_SOURCE  // open_memstream
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "vkdistill/dist.h"

int vkd_cli_info(vkd_cli *cli, int argc, char **argv) {
    int list = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--list") == 0) list = 1;
        else {
            fprintf(stderr, "vkdistill info: unknown argument '%s' (expected --list)\n", argv[i]);
            return 2;
        }
    }
    if (list) {
        char err[512];
        if (vkd_list_devices(stdout, err, sizeof err)) {
            fprintf(stderr, "vkdistill: %s\n", err);
            return 1;
        }
        return 0;
    }
    cli->opts.quiet = 1;
    vkd_ctx *ctx = vkd_cli_open(cli);
    if (!ctx) return 1;
    if (vkd_comm_size() == 1) {
        vkd_ctx_print_info(ctx, stdout);
        return vkd_cli_close(ctx, 0);
    }
    // Under mpirun: each rank's lines, prefixed with the rank, written in one go.
    char *text = NULL, *out = NULL;
    size_t len = 0, olen = 0;
    FILE *m = open_memstream(&text, &len), *o = m ? open_memstream(&out, &olen) : NULL;
    if (!o) return vkd_cli_close(ctx, 1);
    vkd_ctx_print_info(ctx, m);
    fclose(m);
    for (char *line = text; line && *line;) {
        char *nl = strchr(line, '\n');
        int l = nl ? (int)(nl - line) : (int)strlen(line);
        fprintf(o, "[rank %d/%d] %.*s\n", vkd_comm_rank(), vkd_comm_size(), l, line);
        line += l + (nl ? 1 : 0);
    }
    fclose(o);
    fwrite(out, 1, olen, stdout);
    fflush(stdout);
    free(text), free(out);
    return vkd_cli_close(ctx, 0);
}
