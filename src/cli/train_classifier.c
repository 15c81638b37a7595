// vkdistill train-classifier CONFIG: trains an image classifier (arch
// "classifier") with cross-entropy and Adam on a labelled dataset, reports the
// test accuracy after every epoch, and writes the weights. Its penultimate
// features are the space of fid --features fmnist, so the shipped
// models/fmnist_classifier.safetensors is made by this verb (see models/README.md).
// One recorded step (forward, loss, backward, Adam) is replayed every step; the
// learning rate follows a cosine from --lr to 0, read by the device each step.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "cli/progress.h"
#include "cli/run.h"
#include "vkdistill/data.h"
#include "vkdistill/io.h"
#include "vkdistill/nn.h"

#define DEFAULT_DATA "/usr/share/datasets/fashion-mnist"

vkd_dataset *vkd_cli_open_images(const char *source, const char *split, int channels, int res, int64_t max_images,
                                 char *err, size_t errlen) {
    // Smaller images are padded (28x28 Fashion-MNIST in a 32x32 frame keeps every
    // pixel), larger ones resized; channels are converted by the dataset loader.
    vkd_dataset_opts o = {.channels = channels, .max_images = max_images};
    vkd_dataset *d = vkd_dataset_open(source, split, &o, err, errlen);
    if (!d || res <= 0) return d;
    int c, h, w;
    vkd_dataset_shape(d, &c, &h, &w);
    if (h == res && w == res) return d;
    vkd_dataset_free(d);
    if (h <= res && w <= res) o.pad_to = res;
    else o.resolution = res;
    return vkd_dataset_open(source, split, &o, err, errlen);
}

// Test accuracy (and mean cross-entropy) of the classifier on a whole split.
static int evaluate(vkd_model *m, const vkd_dataset *ds, int batch, double *acc, double *xent, char *err, size_t errlen) {
    int K, c, h, w;
    vkd_classifier_dims(m, &K, NULL);
    vkd_dataset_shape(ds, &c, &h, &w);
    int64_t n = vkd_dataset_count(ds), chunk = 2048;
    size_t img = (size_t)c * h * w;
    float *x = malloc(chunk * img * sizeof *x), *lg = malloc(chunk * K * sizeof *lg);
    int64_t right = 0;
    double ce = 0;
    int rc = 0;
    for (int64_t s = 0; s < n && !rc; s += chunk) {
        int64_t k = n - s < chunk ? n - s : chunk;
        for (int64_t i = 0; i < k; i++) memcpy(x + i * img, vkd_dataset_image(ds, s + i), img * sizeof *x);
        rc = vkd_classifier_features(m, x, k, batch, NULL, lg, err, errlen);
        for (int64_t i = 0; i < k && !rc; i++) {
            const float *l = lg + i * K;
            int best = 0;
            double mx = l[0], se = 0;
            for (int j = 1; j < K; j++)
                if (l[j] > l[best]) best = j;
            mx = l[best];
            for (int j = 0; j < K; j++) se += exp(l[j] - mx);
            int y = vkd_dataset_label(ds, s + i);
            right += best == y;
            ce += log(se) + mx - l[y];
        }
    }
    free(x), free(lg);
    *acc = n ? (double)right / n : 0;
    *xent = n ? ce / n : 0;
    return rc;
}

int vkd_cli_train_classifier(vkd_cli *cli, int argc, char **argv) {
    const char *config = NULL, *out = NULL, *data = DEFAULT_DATA, *dtype = "F16";
    int epochs = 2, batch = 128, seed = 1, flip = 0;
    long long max_images = 0;
    double lr = 2e-3;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (a[0] == '-' && strcmp(a, "--flip") != 0 && !v) {
            fprintf(stderr, "vkdistill train-classifier: %s needs a value\n", a);
            return 2;
        }
        if (strcmp(a, "--out") == 0 || strcmp(a, "-o") == 0) out = v, i++;
        else if (strcmp(a, "--data") == 0) data = v, i++;
        else if (strcmp(a, "--epochs") == 0) epochs = atoi(v), i++;
        else if (strcmp(a, "--batch") == 0) batch = atoi(v), i++;
        else if (strcmp(a, "--lr") == 0) lr = atof(v), i++;
        else if (strcmp(a, "--seed") == 0) seed = atoi(v), i++;
        else if (strcmp(a, "--max-images") == 0) max_images = atoll(v), i++;
        else if (strcmp(a, "--dtype") == 0) dtype = v, i++;
        else if (strcmp(a, "--flip") == 0) flip = 1;
        else if (a[0] != '-' && !config) config = a;
        else {
            fprintf(stderr, "vkdistill train-classifier: unknown argument '%s' (usage: train-classifier CONFIG [--out DIR] "
                            "[--data DIR] [--epochs N] [--batch N] [--lr X] [--seed S] [--max-images N] [--flip] [--dtype F16|F32])\n",
                    a);
            return 2;
        }
    }
    if (!config) {
        fprintf(stderr, "vkdistill train-classifier: needs a model config (e.g. models/fmnist_classifier.json)\n");
        return 2;
    }
    if (epochs < 1 || batch < 1 || !(lr > 0) || max_images < 0 ||
        (strcmp(dtype, "F16") && strcmp(dtype, "F32") && strcmp(dtype, "BF16"))) {
        fprintf(stderr, "vkdistill train-classifier: --epochs, --batch and --lr must be positive, --dtype F16, BF16 or F32\n");
        return 2;
    }
    char outdir[900];
    snprintf(outdir, sizeof outdir, "%s", out ? out : "runs/classifier");
    char err[2600];
    size_t len;
    char *model_text = vkd_read_file(config, &len, err, sizeof err);
    if (!model_text) {
        fprintf(stderr, "vkdistill: %s\n", err);
        return 1;
    }
    vkd_ctx *ctx = vkd_cli_open(cli);
    if (!ctx) {
        free(model_text);
        return 1;
    }
    int rc = 1;
    vkd_model *net = NULL;
    vkd_dataset *train = NULL, *test = NULL;
    vkd_adam *opt = NULL;
    vkd_graph *g = NULL;
    vkd_tensor *x = NULL, *y = NULL, *loss_h = NULL;
    vkd_run run = {0};
    net = vkd_model_create(ctx, config, 1, (uint64_t)seed, err, sizeof err);
    if (!net) goto fail;
    int K, F;
    if (vkd_classifier_dims(net, &K, &F)) {
        snprintf(err, sizeof err, "%s: train-classifier needs arch \"classifier\", not \"%s\"", config, vkd_model_arch(net));
        goto fail;
    }
    int64_t s[3];
    vkd_model_sample_shape(net, s);
    train = vkd_cli_open_images(data, "train", (int)s[0], (int)s[1], max_images, err, sizeof err);
    test = train ? vkd_cli_open_images(data, "test", (int)s[0], (int)s[1], 0, err, sizeof err) : NULL;
    if (!train || !test) goto fail;
    if (vkd_dataset_num_classes(train) != K) {
        snprintf(err, sizeof err, "%s: %d classes but %s has num_classes %d", data, vkd_dataset_num_classes(train), config,
                 K);
        goto fail;
    }

    int np = 0;
    vkd_tensor **params = calloc(vkd_model_num_tensors(net), sizeof *params);
    for (int i = 0; i < vkd_model_num_tensors(net); i++)
        if (vkd_model_tensor_is_param(net, i)) params[np++] = vkd_model_tensor(net, i);
    vkd_adam_cfg acfg = {.beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .grad_clip = 5.0f, .skip_nonfinite = 1};
    opt = vkd_adam_new(ctx, params, np, &acfg);
    free(params);
    if (!opt) {
        snprintf(err, sizeof err, "%s", vkd_ctx_error(ctx));
        goto fail;
    }
    x = vkd_tensor_new(ctx, "x", 4, (int64_t[]){batch, s[0], s[1], s[2]}, VKD_HOST);
    y = vkd_tensor_new(ctx, "y", 2, (int64_t[]){batch, K}, VKD_HOST);
    loss_h = vkd_tensor_new(ctx, "loss", 1, (int64_t[]){1}, VKD_HOST);
    if (!x || !y || !loss_h) {
        snprintf(err, sizeof err, "%s", vkd_ctx_error(ctx));
        goto fail;
    }
    g = vkd_graph_new(ctx, "classifier_step");
    vkd_tensor *loss = vkd_cross_entropy(g, vkd_classifier_forward(g, net, x, NULL), y);
    vkd_copy(g, loss_h, loss);  // read from host memory: no extra submission per step
    vkd_graph_backward(g, loss);
    vkd_adam_record(g, opt);
    if (vkd_graph_compile(g)) {
        snprintf(err, sizeof err, "%s", vkd_graph_error(g));
        goto fail;
    }
    if (vkd_run_open(&run, outdir, 1, model_text, err, sizeof err)) goto fail;

    int64_t per_epoch = (vkd_dataset_count(train) + batch - 1) / batch, total = per_epoch * epochs;
    fprintf(stderr, "vkdistill: training %s (%lld parameters) on %s: %lld images, batch %d, %d epoch(s) = %lld steps -> %s\n",
            config, (long long)vkd_model_param_count(net), data, (long long)vkd_dataset_count(train), batch, epochs,
            (long long)total, outdir);
    vkd_run_catch_sigint();
    float *xh = vkd_tensor_map(x), *yh = vkd_tensor_map(y);
    double t0 = vkd_now(), acc = 0, xent = 0, ema_loss = 0;
    int64_t step = 0;
    char line[512];
    rc = 0;
    for (int e = 1; e <= epochs && !rc && !vkd_run_interrupted(); e++) {
        vkd_progress pr;
        char what[32];
        snprintf(what, sizeof what, "epoch %d/%d", e, epochs);
        vkd_progress_begin(&pr, what, "img", 0, per_epoch);
        for (int64_t i = 0; i < per_epoch && !vkd_run_interrupted(); i++) {
            step++;
            vkd_dataset_batch(train, (uint64_t)seed, step, batch, flip, xh, yh, NULL);
            double cur = lr * 0.5 * (1 + cos(M_PI * (double)(step - 1) / (double)total));
            vkd_adam_set_step(opt, (float)cur, step);
            float lv = 0;
            if (vkd_graph_run(g)) {
                snprintf(err, sizeof err, "%s", vkd_graph_error(g));
                rc = 1;
                break;
            }
            lv = vkd_tensor_map(loss_h)[0];
            ema_loss = step == 1 ? lv : 0.98 * ema_loss + 0.02 * lv;
            char extra[64];
            snprintf(extra, sizeof extra, "loss %.4f", ema_loss);
            vkd_progress_update(&pr, i + 1, batch, extra);
            if (step % 50 == 0) {
                snprintf(line, sizeof line, "\"step\":%lld,\"epoch\":%d,\"loss\":%.6g,\"lr\":%.6g", (long long)step, e, lv,
                         cur);
                vkd_run_metrics(&run, line);
            }
        }
        vkd_progress_end(&pr, per_epoch, batch, NULL);
        if (rc) break;
        if (evaluate(net, test, 500, &acc, &xent, err, sizeof err)) {
            rc = 1;
            break;
        }
        fprintf(stderr, "vkdistill: epoch %d: test accuracy %.2f%% (%lld images), test cross-entropy %.4f, %.0f s\n", e,
                100 * acc, (long long)vkd_dataset_count(test), xent, vkd_now() - t0);
        snprintf(line, sizeof line, "\"epoch\":%d,\"step\":%lld,\"test_accuracy\":%.6f,\"test_xent\":%.6f,\"seconds\":%.1f", e,
                 (long long)step, acc, xent, vkd_now() - t0);
        vkd_run_metrics(&run, line);
    }
    if (!rc) {
        char wp[1024], cp[1024];
        vkd_run_path(&run, wp, sizeof wp, "classifier.safetensors");
        vkd_run_path(&run, cp, sizeof cp, "classifier.json");
        rc = vkd_model_save(net, wp, dtype, err, sizeof err) ||
             vkd_write_file_atomic(cp, model_text, strlen(model_text), err, sizeof err);
        if (!rc) {
            fprintf(stderr, "vkdistill: wrote %s and %s%s\n", wp, cp,
                    vkd_run_interrupted() ? " (interrupted: fewer epochs than asked)" : "");
            printf("{\"test_accuracy\":%.6f,\"test_xent\":%.6f,\"steps\":%lld,\"batch\":%d,\"seconds\":%.1f,\"weights\":\"%s\"}\n",
                   acc, xent, (long long)step, batch, vkd_now() - t0, wp);
        }
    }
    if (rc) goto fail;
    goto done;
fail:
    fprintf(stderr, "vkdistill: %s\n", err);
    rc = 1;
done:
    vkd_run_close(&run);
    vkd_graph_free(g);
    vkd_adam_free(opt);
    vkd_tensor_free(x);
    vkd_tensor_free(y);
    vkd_tensor_free(loss_h);
    vkd_dataset_free(train);
    vkd_dataset_free(test);
    vkd_model_free(net);
    free(model_text);
    return vkd_cli_close(ctx, rc);
}
