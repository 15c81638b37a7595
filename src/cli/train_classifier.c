// vkdistill train-classifier CONFIG: trains the FD feature classifier
// (src/train/classifier.c) in a run folder, with a test evaluation per epoch,
// checkpoints and exact resume.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "vkdistill/dist.h"
#include "vkdistill/train.h"

static const char usage[] = "usage: train-classifier CONFIG [--out DIR] [--resume auto|CKPT] [--data DIR] [--epochs N] "
                            "[--batch N] [--lr X] [--seed S] [--max-images N] [--flip] [--dtype F16|BF16|F32]";

static int parse(vkd_classifier_cfg *c, const char **out, const char **resume, int argc, char **argv) {
    const char *v = "train-classifier";
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        long long n;
        if (a[0] == '-' && strcmp(a, "--flip") != 0 && !val) {
            fprintf(stderr, "vkdistill %s: %s needs a value\n", v, a);
            return 2;
        }
        if (!strcmp(a, "--out") || !strcmp(a, "-o")) *out = val, i++;
        else if (!strcmp(a, "--resume")) *resume = val, i++;
        else if (!strcmp(a, "--data")) snprintf(c->data, sizeof c->data, "%s", val), i++;
        else if (!strcmp(a, "--epochs")) { if (vkd_cli_int(v, a, val, 1, 100000, &n)) return 2; c->epochs = (int)n, i++; }
        else if (!strcmp(a, "--batch")) { if (vkd_cli_int(v, a, val, 1, 65536, &n)) return 2; c->batch = (int)n, i++; }
        else if (!strcmp(a, "--seed")) { if (vkd_cli_int(v, a, val, 0, 2147483647, &n)) return 2; c->seed = (int)n, i++; }
        else if (!strcmp(a, "--max-images")) { if (vkd_cli_int(v, a, val, 0, 2000000000, &n)) return 2; c->max_images = n, i++; }
        else if (!strcmp(a, "--lr")) { if (vkd_cli_num(v, a, val, 1e-12, 10, &c->lr)) return 2; i++; }
        else if (!strcmp(a, "--dtype") && (!strcmp(val, "F16") || !strcmp(val, "BF16") || !strcmp(val, "F32")))
            snprintf(c->dtype, sizeof c->dtype, "%s", val), i++;
        else if (!strcmp(a, "--flip")) c->flip = 1;
        else if (a[0] != '-' && !c->model[0]) snprintf(c->model, sizeof c->model, "%s", a);
        else {
            fprintf(stderr, "vkdistill %s: unknown argument '%s' (%s)\n", v, a, usage);
            return 2;
        }
    }
    if (!c->model[0]) {
        fprintf(stderr, "vkdistill %s: needs a model config (e.g. models/fmnist_classifier.json)\n", v);
        return 2;
    }
    return 0;
}

int vkd_cli_train_classifier(vkd_cli *cli, int argc, char **argv) {
    // Data parallelism covers train-teacher and distill; N copies of this run would only race on its folder.
    if (vkd_comm_size() > 1) {
        if (vkd_comm_rank() == 0)
            fprintf(stderr, "vkdistill: train-classifier runs on one rank (this run has %d); run it without mpirun or --ranks\n",
                    vkd_comm_size());
        return 1;
    }
    vkd_classifier_cfg c;
    vkd_classifier_cfg_init(&c);
    const char *out = "runs/classifier", *resume = NULL;
    int rc = parse(&c, &out, &resume, argc, argv);
    if (rc) return rc;
    char err[2600];
    vkd_ctx *ctx = vkd_cli_open(cli);
    vkd_classifier_trainer *t = ctx ? vkd_classifier_trainer_new(ctx, &c, err, sizeof err) : NULL;
    rc = VKD_TRAIN_ERROR;
    if (t) {
        vkd_train_opts o = vkd_classifier_train_opts(t);
        o.out_dir = out, o.resume = resume, o.config_text = NULL;
        char banner[3000];
        snprintf(banner, sizeof banner, "training %s on %s: batch %d, %d epoch(s) = %lld steps -> %s", c.model, c.data,
                 c.batch, c.epochs, (long long)o.steps, out);
        o.banner = banner;
        rc = vkd_train(&o, vkd_classifier_trainable(), t, err, sizeof err);
    }
    if (ctx && rc == VKD_TRAIN_ERROR) fprintf(stderr, "vkdistill: %s\n", err);
    vkd_classifier_trainer_free(t);
    return vkd_cli_close(ctx, rc);
}
