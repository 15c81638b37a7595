// vkdistill train-teacher CONFIG: EDM training of a denoiser on a dataset
// (src/train/teacher.c), run by the training loop in a run folder with
// checkpoints and exact resume.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "vkdistill/dist.h"
#include "vkdistill/io.h"
#include "vkdistill/train.h"

int vkd_cli_train_teacher(vkd_cli *cli, int argc, char **argv) {
    vkd_train_args a;
    int rc = vkd_cli_train_args(&a, "train-teacher", argc, argv);
    if (rc) return rc;
    char err[2600];
    size_t len;
    vkd_teacher_cfg c;
    char *text = vkd_teacher_cfg_load(a.config, &c, err, sizeof err) ? NULL : vkd_read_file(a.config, &len, err, sizeof err);
    if (vkd_cli_config_agreed(text, &a, err, sizeof err)) {
        free(text);
        return 1;
    }
    if (a.steps > 0) c.steps = a.steps;
    vkd_ctx *ctx = vkd_cli_open(cli);
    vkd_teacher_trainer *t = ctx ? vkd_teacher_trainer_new(ctx, &c, err, sizeof err) : NULL;
    rc = VKD_TRAIN_ERROR;
    int started = 0;
    if (t) {
        vkd_train_opts o = vkd_teacher_train_opts(&c);
        o.out_dir = a.outdir, o.resume = a.resume, o.init_from = a.init_from, o.config_text = text;
        char banner[3000];
        snprintf(banner, sizeof banner, "training %s (%lld parameters) on %s: batch %d, %lld steps -> %s", c.model,
                (long long)vkd_model_param_count(vkd_teacher_ema(t)), c.data.source, c.batch, (long long)c.steps, a.outdir);
        o.banner = banner;
        started = 1;
        rc = vkd_train(&o, vkd_teacher_trainable(), t, err, sizeof err);
    }
    // Errors before training (creation) are the same on every rank: rank 0 says them.
    if (ctx && rc == VKD_TRAIN_ERROR && (started || vkd_comm_rank() == 0)) vkd_cli_error("%s", err);
    vkd_teacher_trainer_free(t);
    free(text);
    return vkd_cli_close(ctx, rc);
}
