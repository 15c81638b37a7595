#ifndef VKD_CLI_H
#define VKD_CLI_H
#include "vkdistill/vkdistill.h"

typedef struct {
    vkd_ctx_opts opts;
} vkd_cli;

vkd_ctx *vkd_cli_open(vkd_cli *cli);
int vkd_cli_close(vkd_ctx *ctx, int rc);
double vkd_now(void);  // seconds, monotonic

int vkd_cli_info(vkd_cli *cli, int argc, char **argv);
int vkd_cli_selfcheck(vkd_cli *cli, int argc, char **argv);
int vkd_cli_bench(vkd_cli *cli, int argc, char **argv);

#endif
