// vkdistill train-teacher CONFIG: EDM training of a denoiser on a dataset.
// One recorded step (batch in host-visible memory, sigma and noise drawn on
// the device, forward, backward, Adam with warmup/clipping/NaN guard, EMA) is
// replayed every step. Checkpoints hold the network, its EMA, Adam's state and
// the step, so a resume continues exactly (data order and noise are keyed by
// (seed, step)).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/progress.h"
#include "cli/run.h"
#include "vkdistill/checkpoint.h"
#include "vkdistill/data.h"
#include "vkdistill/diffusion.h"
#include "vkdistill/io.h"

typedef struct {
    char model_path[1024];
    vkd_run_dataset_cfg data;
    int batch;
    int64_t steps;
    double lr, warmup, beta1, beta2, eps, weight_decay, grad_clip, ema_halflife_kimg, p_mean, p_std, label_dropout;
    int seed, log_every, sample_every, ckpt_every, sample_n, sample_steps;
    double guidance;
} teacher_cfg;

static int parse_cfg(const char *path, teacher_cfg *t, char *err, size_t errlen) {
    vkd_cfg *c = vkd_cfg_load(path, err, errlen);
    if (!c) return -1;
    memset(t, 0, sizeof *t);
    const char *model = vkd_cfg_str(c, "model", 1, NULL, NULL);
    if (model) vkd_resolve_path(path, model, t->model_path, sizeof t->model_path);
    vkd_cfg *d = vkd_cfg_obj(c, "dataset", 1);
    if (d) vkd_run_dataset_parse(d, path, &t->data);
    t->batch = vkd_cfg_int(c, "batch", 0, 64, 1, 1 << 16);
    t->steps = vkd_cfg_int(c, "steps", 1, 0, 1, 2000000000);
    t->lr = vkd_cfg_num(c, "lr", 0, 1e-3, 0, 1);
    t->warmup = vkd_cfg_num(c, "warmup_steps", 0, 0, 0, 1e9);
    t->beta1 = vkd_cfg_num(c, "beta1", 0, 0.9, 0, 1);
    t->beta2 = vkd_cfg_num(c, "beta2", 0, 0.999, 0, 1);
    t->eps = vkd_cfg_num(c, "eps", 0, 1e-8, 0, 1);
    t->weight_decay = vkd_cfg_num(c, "weight_decay", 0, 0, 0, 10);
    t->grad_clip = vkd_cfg_num(c, "grad_clip", 0, 0, 0, 1e9);
    t->ema_halflife_kimg = vkd_cfg_num(c, "ema_halflife_kimg", 0, 500, 0, 1e9);
    t->p_mean = vkd_cfg_num(c, "p_mean", 0, -1.2, -20, 20);
    t->p_std = vkd_cfg_num(c, "p_std", 0, 1.2, 0, 20);
    t->label_dropout = vkd_cfg_num(c, "label_dropout", 0, 0, 0, 1);
    t->seed = vkd_cfg_int(c, "seed", 0, 1, 0, 2147483647);
    t->log_every = vkd_cfg_int(c, "log_every", 0, 50, 1, 2000000000);
    t->sample_every = vkd_cfg_int(c, "sample_every", 0, 1000, 0, 2000000000);
    t->ckpt_every = vkd_cfg_int(c, "ckpt_every", 0, 1000, 0, 2000000000);
    t->sample_n = vkd_cfg_int(c, "sample_n", 0, 64, 1, 4096);
    t->sample_steps = vkd_cfg_int(c, "sample_steps", 0, 18, 2, 10000);
    t->guidance = vkd_cfg_num(c, "guidance", 0, 1.0, 0, 100);
    vkd_cfg_str(c, "comment", 0, NULL, NULL);
    int rc = vkd_cfg_finish(c);
    if (rc) snprintf(err, errlen, "%s", vkd_cfg_error(c));
    vkd_cfg_free(c);
    return rc;
}

// A grid of teacher samples (fixed labels 0,1,2,... and a fixed seed, so grids
// over training are comparable) written to path.
int vkd_cli_sample_grid(const vkd_denoiser *den, int n, int steps, double guidance, uint64_t seed, const char *path,
                        char *err, size_t errlen) {
    vkd_ctx *ctx = vkd_denoiser_ctx(den);
    int64_t s[3], xs[4] = {n};
    int nd = vkd_denoiser_sample_shape(den, s);
    for (int i = 0; i < nd; i++) xs[i + 1] = s[i];
    int k = vkd_denoiser_label_dim(den);
    vkd_tensor *out = vkd_tensor_new(ctx, "samples", nd + 1, xs, 0);
    vkd_tensor *labels = k ? vkd_tensor_new(ctx, "sample_labels", 2, (int64_t[]){n, k}, 0) : NULL;
    if (!out || (k && !labels)) {
        snprintf(err, errlen, "%s", vkd_ctx_error(ctx));
        return -1;
    }
    if (labels) {
        float *h = calloc((size_t)n * k, sizeof *h);
        for (int i = 0; i < n; i++) h[(size_t)i * k + i % k] = 1.0f;
        vkd_tensor_upload(labels, h);
        free(h);
    }
    vkd_sampler_cfg sc = vkd_sampler_defaults();
    sc.steps = steps;
    sc.guidance = guidance;
    int rc = vkd_sample(den, &sc, n, labels, seed, out, err, errlen);
    if (!rc && nd == 3) {
        float *h = malloc(vkd_tensor_numel(out) * sizeof *h);
        vkd_tensor_download(out, h);
        int cols = (int)ceil(sqrt((double)n));
        rc = vkd_write_png_grid(path, h, n, (int)s[0], (int)s[1], (int)s[2], cols, 2, err, errlen);
        free(h);
    }
    vkd_tensor_free(out);
    vkd_tensor_free(labels);
    return rc;
}

int vkd_cli_train_teacher(vkd_cli *cli, int argc, char **argv) {
    vkd_run_args args;
    int arc = vkd_run_parse_args(&args, "train-teacher", argc, argv);
    if (arc) return arc;
    const char *config = args.config, *resume = args.resume, *outdir = args.outdir;
    int64_t steps_override = args.steps;
    char err[2600];
    teacher_cfg t;
    if (parse_cfg(config, &t, err, sizeof err)) {
        fprintf(stderr, "vkdistill: %s\n", err);
        return 1;
    }
    if (steps_override > 0) t.steps = steps_override;
    size_t cfg_len;
    char *cfg_text = vkd_read_file(config, &cfg_len, err, sizeof err);
    char *model_text = cfg_text ? vkd_read_file(t.model_path, &cfg_len, err, sizeof err) : NULL;
    if (!cfg_text || !model_text) {
        fprintf(stderr, "vkdistill: %s\n", err);
        free(cfg_text);
        return 1;
    }

    vkd_ctx *ctx = vkd_cli_open(cli);
    if (!ctx) return 1;
    int rc = 1;
    vkd_model *net = NULL, *ema = NULL;
    vkd_dataset *ds = NULL;
    vkd_adam *opt = NULL;
    vkd_graph *g = NULL;
    vkd_ckpt *ck = NULL;
    vkd_tensor *x0 = NULL, *lab = NULL, *step_t = NULL, *ema_beta_t = NULL, *loss_h = NULL;
    vkd_run run = {0};

    net = vkd_model_create(ctx, t.model_path, 1, (uint64_t)t.seed, err, sizeof err);
    ema = net ? vkd_model_create(ctx, t.model_path, 0, (uint64_t)t.seed, err, sizeof err) : NULL;
    if (!net || !ema) goto fail;
    int64_t s[3];
    int nd = vkd_model_sample_shape(net, s), K = vkd_model_label_dim(net);
    if (nd != 3) {
        snprintf(err, sizeof err, "%s: train-teacher trains image models; this is a '%s' model", t.model_path,
                 vkd_model_arch(net));
        goto fail;
    }
    ds = vkd_run_dataset_open(&t.data, net, t.model_path, err, sizeof err);
    if (!ds) goto fail;
    if (vkd_model_copy_weights(ema, net, err, sizeof err)) goto fail;

    // Optimizer over the trainable tensors (buffers such as resample filters are not trained).
    int np = 0;
    vkd_tensor **params = calloc(vkd_model_num_tensors(net), sizeof *params);
    vkd_tensor **ema_t = calloc(vkd_model_num_tensors(net), sizeof *ema_t);
    for (int i = 0; i < vkd_model_num_tensors(net); i++)
        if (vkd_model_tensor_is_param(net, i)) ema_t[np] = vkd_model_tensor(ema, i), params[np++] = vkd_model_tensor(net, i);
    vkd_adam_cfg acfg = {.beta1 = (float)t.beta1, .beta2 = (float)t.beta2, .eps = (float)t.eps,
                         .weight_decay = (float)t.weight_decay, .decoupled = t.weight_decay > 0,
                         .grad_clip = (float)t.grad_clip, .skip_nonfinite = 1};
    opt = vkd_adam_new(ctx, params, np, &acfg);
    if (!opt) {
        snprintf(err, sizeof err, "%s", vkd_ctx_error(ctx));
        goto fail;
    }
    // EDM's EMA: half-life ema_halflife_kimg, ramped up as 5% of the images seen so
    // far, so that a short run's EMA is not dominated by its first random weights.
    ema_beta_t = vkd_tensor_new(ctx, "ema_beta", 1, (int64_t[]){1}, VKD_HOST);

    // The recorded step.
    int64_t xs[4] = {t.batch, s[0], s[1], s[2]};
    x0 = vkd_tensor_new(ctx, "x0", 4, xs, VKD_HOST);
    lab = K ? vkd_tensor_new(ctx, "labels", 2, (int64_t[]){t.batch, K}, VKD_HOST) : NULL;
    step_t = vkd_tensor_new(ctx, "step", 1, (int64_t[]){1}, VKD_HOST);
    if (!x0 || (K && !lab) || !step_t || !ema_beta_t) {
        snprintf(err, sizeof err, "%s", vkd_ctx_error(ctx));
        goto fail;
    }
    vkd_model_set_train(net, 1, (uint64_t)t.seed ^ 0xd50u, step_t);
    vkd_denoiser den = {.model = net}, den_ema = {.model = ema};
    g = vkd_graph_new(ctx, "teacher_step");
    vkd_tensor *loss = vkd_edm_loss(g, &den, x0, lab, (float)t.p_mean, (float)t.p_std, 0.5f, (uint64_t)t.seed, step_t);
    // The loss lands in host-visible memory inside the step: reading it needs no extra submission.
    if (!(loss_h = vkd_tensor_new(ctx, "loss", 1, (int64_t[]){1}, VKD_HOST))) {
        snprintf(err, sizeof err, "%s", vkd_ctx_error(ctx));
        goto fail;
    }
    vkd_copy(g, loss_h, loss);
    vkd_graph_backward(g, loss);
    vkd_adam_record(g, opt);
    vkd_ema_record_t(g, ema_t, params, np, 0.0f, ema_beta_t);
    free(params);
    free(ema_t);
    if (vkd_graph_compile(g)) {
        snprintf(err, sizeof err, "%s", vkd_graph_error(g));
        goto fail;
    }

    // Run folder, checkpoint layout, resume.
    ck = vkd_ckpt_new();
    vkd_ckpt_add_model(ck, "net/", net);
    vkd_ckpt_add_model(ck, "ema/", ema);
    for (int i = 0; i < vkd_adam_num(opt); i++) {
        vkd_tensor *m, *v;
        vkd_adam_state(opt, i, &m, &v);
        vkd_ckpt_add(ck, "adam_m/", vkd_tensor_name(m), m);
        vkd_ckpt_add(ck, "adam_v/", vkd_tensor_name(v), v);
    }
    vkd_ckpt_set_meta(ck, "kind", "vkdistill teacher training");
    vkd_ckpt_set_meta(ck, "model_config", model_text);
    if (vkd_run_open(&run, outdir, resume != NULL, cfg_text, err, sizeof err)) goto fail;
    int64_t start = 0, resumed_skipped = 0;
    const char *match[4] = {"kind", "vkdistill teacher training", "model_config", model_text};
    if (vkd_run_resume(&run, ck, resume, match, 2, &start, &resumed_skipped, err, sizeof err)) goto fail;
    fprintf(stderr, "vkdistill: training %s (%lld parameters) on %s: %lld images, batch %d, %lld steps -> %s\n",
            t.model_path, (long long)vkd_model_param_count(net), t.data.source, (long long)vkd_dataset_count(ds),
            t.batch, (long long)t.steps, outdir);

    vkd_run_catch_sigint();
    vkd_progress pr;
    vkd_progress_begin(&pr, "train-teacher", "img", start, t.steps);
    int64_t step = start, skipped = resumed_skipped, bad_run = 0;
    float lval = 0, gn = 0;
    float *xh = vkd_tensor_map(x0), *lh = lab ? vkd_tensor_map(lab) : NULL;
    char path[1024], line[512];
    rc = 0;
    while (step < t.steps && !vkd_run_interrupted()) {
        step++;
        vkd_dataset_batch(ds, (uint64_t)t.seed, step, t.batch, t.data.flip, xh, lh, NULL);
        // Label dropout for classifier-free guidance: an all-zero row is the null label.
        for (int i = 0; lh && t.label_dropout > 0 && i < t.batch; i++)
            if (vkd_philox_uniform((uint64_t)t.seed, 77, (uint32_t)step, (uint64_t)i) < t.label_dropout)
                memset(lh + (size_t)i * K, 0, (size_t)K * sizeof *lh);
        ((uint32_t *)vkd_tensor_map(step_t))[0] = (uint32_t)step;
        double lr = t.lr * (t.warmup > 0 ? fmin(1.0, step / t.warmup) : 1.0);
        vkd_adam_set_step(opt, (float)lr, step - skipped);
        double hl = fmin(t.ema_halflife_kimg * 1000.0, 0.05 * (double)step * t.batch);
        vkd_tensor_map(ema_beta_t)[0] = hl > 0 ? (float)pow(0.5, t.batch / hl) : 0.0f;
        if (vkd_graph_run(g)) {
            snprintf(err, sizeof err, "%s", vkd_graph_error(g));
            rc = 1;
            break;
        }
        lval = vkd_tensor_map(loss_h)[0];
        gn = vkd_adam_grad_norm(opt);
        if (!isfinite(lval) || !isfinite(gn)) {  // the step was skipped on the device
            skipped++;
            if (++bad_run >= 100) {
                snprintf(err, sizeof err, "step %lld: 100 non-finite losses/gradients in a row; stopping (lower lr?)",
                         (long long)step);
                rc = 1;
                break;
            }
        } else {
            bad_run = 0;
        }
        char extra[96];
        snprintf(extra, sizeof extra, "loss %.4f", lval);
        vkd_progress_update(&pr, step, t.batch, extra);
        if (step % t.log_every == 0 || step == t.steps) {
            snprintf(line, sizeof line,
                     "\"step\":%lld,\"kimg\":%.3f,\"loss\":%.6g,\"grad_norm\":%.6g,\"lr\":%.6g,\"skipped\":%lld", (long long)step,
                     step * t.batch / 1000.0, lval, gn, lr, (long long)skipped);
            vkd_run_metrics(&run, line);
        }
        if (t.sample_every && (step % t.sample_every == 0 || step == t.steps)) {
            vkd_run_path(&run, path, sizeof path, "samples/step_%08lld.png", (long long)step);
            if (vkd_cli_sample_grid(&den_ema, t.sample_n, t.sample_steps, t.guidance, 12345, path, err, sizeof err))
                fprintf(stderr, "\nvkdistill: sample grid: %s\n", err);
            vkd_run_write_report(&run, "teacher training", err, sizeof err);
        }
        if ((t.ckpt_every && step % t.ckpt_every == 0) || step == t.steps) {
            if (vkd_run_checkpoint(&run, ck, step, skipped, err, sizeof err)) {
                rc = 1;
                break;
            }
        }
    }
    vkd_progress_end(&pr, step, t.batch, NULL);
    if (!rc && vkd_run_interrupted()) {
        rc = vkd_run_checkpoint(&run, ck, step, skipped, err, sizeof err);
        if (!rc) fprintf(stderr, "vkdistill: interrupted at step %lld; checkpoint saved (continue with --resume auto)\n", (long long)step);
    }
    if (!rc && step >= t.steps) {
        // The EMA network, under its PyTorch names, ready for sample / distill.
        vkd_run_path(&run, path, sizeof path, "teacher.safetensors");
        rc = vkd_model_save(ema, path, "F32", err, sizeof err);
        char mp[1024];
        vkd_run_path(&run, mp, sizeof mp, "teacher.json");
        if (!rc) rc = vkd_write_file_atomic(mp, model_text, strlen(model_text), err, sizeof err);
        if (!rc) fprintf(stderr, "vkdistill: wrote %s and %s\n", path, mp);
    }
    if (rc) goto fail;
    goto done;
fail:
    fprintf(stderr, "vkdistill: %s\n", err);
    rc = 1;
done:
    vkd_run_close(&run);
    vkd_ckpt_free(ck);
    vkd_graph_free(g);
    vkd_adam_free(opt);
    vkd_tensor_free(x0);
    vkd_tensor_free(lab);
    vkd_tensor_free(step_t);
    vkd_tensor_free(ema_beta_t);
    vkd_tensor_free(loss_h);
    vkd_dataset_free(ds);
    vkd_model_free(net);
    vkd_model_free(ema);
    free(cfg_text);
    free(model_text);
    return vkd_cli_close(ctx, rc);
}
