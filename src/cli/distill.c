// vkdistill distill CONFIG: one-step (or few-step) distillation with DMD2, SiM,
// SiD or Diff-Instruct. The config is read into a vkd_distiller_cfg, the
// distiller is created, and the training loop (src/train) runs it in a run
// folder with checkpoints and exact resume.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "vkdistill/dist.h"
#include "vkdistill/distill.h"
#include "vkdistill/io.h"

int vkd_cli_distill(vkd_cli *cli, int argc, char **argv) {
    vkd_train_args a;
    int rc = vkd_cli_train_args(&a, "distill", argc, argv);
    if (rc) return rc;
    char err[2600];
    size_t len;
    vkd_distiller_cfg c;
    char *text = vkd_distiller_cfg_load(a.config, &c, err, sizeof err) ? NULL : vkd_read_file(a.config, &len, err, sizeof err);
    if (vkd_cli_config_agreed(text, &a, err, sizeof err)) {
        free(text);
        return 1;
    }
    if (a.steps > 0) c.steps = a.steps;
    cli->opts.small_dispatches = c.teacher_gmm[0] != 0;  // an exact mixture: an MLP student
    vkd_ctx *ctx = vkd_cli_open(cli);
    vkd_distiller *d = ctx ? vkd_distiller_new(ctx, &c, text, err, sizeof err) : NULL;
    rc = VKD_TRAIN_ERROR;
    int started = 0;
    if (d) {
        vkd_train_opts o = vkd_distiller_train_opts(&c);
        o.out_dir = a.outdir, o.resume = a.resume, o.init_from = a.init_from, o.config_text = text;
        char banner[3000];
        snprintf(banner, sizeof banner, "distilling with %s: %lld-parameter generator, batch %d, %lld steps (%d fake step%s each) -> %s",
                vkd_method_name(c.m.method), (long long)vkd_model_param_count(vkd_distiller_generator(d, 0)), c.batch,
                (long long)c.steps, c.fake_steps, c.fake_steps > 1 ? "s" : "", a.outdir);
        o.banner = banner;
        started = 1;
        rc = vkd_train(&o, vkd_distiller_trainable(), d, err, sizeof err);
    }
    // Errors before training (creation) are the same on every rank: rank 0 says them.
    if (ctx && rc == VKD_TRAIN_ERROR && (started || vkd_comm_rank() == 0)) vkd_cli_error("%s", err);
    vkd_distiller_free(d);
    free(text);
    return vkd_cli_close(ctx, rc);
}
