// vkdistill info: the chosen device and the features the code paths depend on.
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

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
    vkd_ctx_print_info(ctx, stdout);
    return vkd_cli_close(ctx, 0);
}
