#ifndef VKD_CLI_H
#define VKD_CLI_H
#include "vkdistill/diffusion.h"
#include "vkdistill/train.h"

typedef struct {
    vkd_ctx_opts opts;
} vkd_cli;

vkd_ctx *vkd_cli_open(vkd_cli *cli);
int vkd_cli_close(vkd_ctx *ctx, int rc);
// "vkdistill: MESSAGE" on stderr ("vkdistill: rank R of N: MESSAGE" under mpirun); an empty message prints nothing.
void vkd_cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
double vkd_now(void);  // seconds, monotonic

int vkd_cli_info(vkd_cli *cli, int argc, char **argv);
int vkd_cli_selfcheck(vkd_cli *cli, int argc, char **argv);
int vkd_cli_bench(vkd_cli *cli, int argc, char **argv);
int vkd_cli_bench_step(vkd_cli *cli, int argc, char **argv);  // bench step (bench_step.c)
int vkd_cli_train_teacher(vkd_cli *cli, int argc, char **argv);
int vkd_cli_sample(vkd_cli *cli, int argc, char **argv);
int vkd_cli_distill(vkd_cli *cli, int argc, char **argv);
int vkd_cli_montage(vkd_cli *cli, int argc, char **argv);  // montage (montage.c)
int vkd_cli_export(vkd_cli *cli, int argc, char **argv);  // export (export.c)
int vkd_cli_train_classifier(vkd_cli *cli, int argc, char **argv);
int vkd_cli_fid_stats(vkd_cli *cli, int argc, char **argv);
int vkd_cli_fid(vkd_cli *cli, int argc, char **argv);
// A dataset with channels and size fitted to (channels, res, res) (vkd_dataset_open_fitted).
#define vkd_cli_open_images vkd_dataset_open_fitted

#endif
