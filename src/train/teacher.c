// EDM teacher training as a trainable: one recorded step (batch in
// host-visible memory, sigma and noise drawn on the device, forward, backward,
// Adam with warmup / clipping / NaN guard, EMA with EDM's ramp-up) replayed
// every step. Data order and noise are keyed by (seed, step), so a resume
// continues exactly.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist/grads.h"
#include "train/config.h"
#include "train/run.h"
#include "vkdistill/dist.h"
#include "vkdistill/train.h"

struct vkd_teacher_trainer {
    vkd_teacher_cfg c;
    vkd_ctx *ctx;
    char *model_text;
    vkd_model *net, *ema;
    vkd_dataset *ds;
    vkd_adam *opt;
    vkd_graph *g;
    // Data parallel (more than one rank): rows [row0, row0 + b) of the global
    // batch; the step is split into forward + backward (ga, ending with the
    // gradients in staging) and the optimizer part (g), with the allreduce between.
    int b, row0, ranks;
    vkd_graph *ga;
    vkd_grad_sync *sync;
    vkd_graph *gu;  // sharded optimizer (dist/grads.h): the other ranks' shares in, then the EMA
    vkd_tensor *x0, *labels, *step_t, *ema_beta_t, *loss_h;
    vkd_ckpt *ck;
    const char *match[4];
    float loss, grad_norm;
    double lr;
};

void vkd_teacher_cfg_init(vkd_teacher_cfg *t) {
    memset(t, 0, sizeof *t);
    t->batch = 64, t->lr = 1e-3, t->beta1 = 0.9, t->beta2 = 0.999, t->eps = 1e-8;
    t->ema_halflife_kimg = 500, t->p_mean = -1.2, t->p_std = 1.2;
    t->seed = 1, t->log_every = 50, t->sample_every = 1000, t->ckpt_every = 1000, t->sample_n = 64;
    t->sample_steps = 18, t->guidance = 1.0;
    snprintf(t->data.split, sizeof t->data.split, "train");
}

int vkd_teacher_cfg_load(const char *path, vkd_teacher_cfg *t, char *err, size_t errlen) {
    vkd_cfg *c = vkd_cfg_load(path, err, errlen);
    if (!c) return -1;
    vkd_teacher_cfg_init(t);
    const char *model = vkd_cfg_str(c, "model", 1, NULL, NULL);
    if (model) vkd_resolve_path(path, model, t->model, sizeof t->model);
    vkd_cfg *d = vkd_cfg_obj(c, "dataset", 1);
    if (d) vkd_dataset_cfg_parse(d, path, &t->data);
    t->batch = vkd_cfg_int(c, "batch", 0, t->batch, 1, 1 << 16);
    t->steps = vkd_cfg_int(c, "steps", 1, 0, 1, 2000000000);
    t->lr = vkd_cfg_num(c, "lr", 0, t->lr, 0, 1);
    t->warmup = vkd_cfg_num(c, "warmup_steps", 0, 0, 0, 1e9);
    t->beta1 = vkd_cfg_num(c, "beta1", 0, t->beta1, 0, 1);
    t->beta2 = vkd_cfg_num(c, "beta2", 0, t->beta2, 0, 1);
    t->eps = vkd_cfg_num(c, "eps", 0, t->eps, 0, 1);
    t->weight_decay = vkd_cfg_num(c, "weight_decay", 0, 0, 0, 10);
    t->grad_clip = vkd_cfg_num(c, "grad_clip", 0, 0, 0, 1e9);
    t->ema_halflife_kimg = vkd_cfg_num(c, "ema_halflife_kimg", 0, t->ema_halflife_kimg, 0, 1e9);
    t->p_mean = vkd_cfg_num(c, "p_mean", 0, t->p_mean, -20, 20);
    t->p_std = vkd_cfg_num(c, "p_std", 0, t->p_std, 0, 20);
    t->label_dropout = vkd_cfg_num(c, "label_dropout", 0, 0, 0, 1);
    t->seed = vkd_cfg_int(c, "seed", 0, t->seed, 0, 2147483647);
    t->log_every = vkd_cfg_int(c, "log_every", 0, t->log_every, 1, 2000000000);
    t->sample_every = vkd_cfg_int(c, "sample_every", 0, t->sample_every, 0, 2000000000);
    t->ckpt_every = vkd_cfg_int(c, "ckpt_every", 0, t->ckpt_every, 0, 2000000000);
    t->sample_n = vkd_cfg_int(c, "sample_n", 0, t->sample_n, 1, 4096);
    t->sample_steps = vkd_cfg_int(c, "sample_steps", 0, t->sample_steps, 2, 10000);
    t->guidance = vkd_cfg_num(c, "guidance", 0, t->guidance, 0, 100);
    vkd_cfg_str(c, "comment", 0, NULL, NULL);
    int rc = vkd_cfg_finish(c);
    if (rc) snprintf(err, errlen, "%s", vkd_cfg_error(c));
    vkd_cfg_free(c);
    return rc;
}

vkd_train_opts vkd_teacher_train_opts(const vkd_teacher_cfg *c) {
    vkd_train_opts o = vkd_train_opts_default();
    o.title = "train-teacher";
    o.steps = c->steps, o.batch = c->batch;
    o.log_every = c->log_every, o.eval_every = c->sample_every, o.ckpt_every = c->ckpt_every;
    return o;
}

static int fail_ctx(vkd_teacher_trainer *t, char *err, size_t errlen) {
    snprintf(err, errlen, "%s", vkd_ctx_error(t->ctx));
    return -1;
}

// The optimizer (trainable tensors only: buffers such as resample filters are
// not trained), EDM's EMA, and the recorded step.
static int record_step(vkd_teacher_trainer *t, char *err, size_t errlen) {
    const vkd_teacher_cfg *c = &t->c;
    int n = vkd_model_num_tensors(t->net), np = 0;
    vkd_tensor **params = calloc(n, sizeof *params), **ema_t = calloc(n, sizeof *ema_t);
    for (int i = 0; i < n; i++)
        if (vkd_model_tensor_is_param(t->net, i)) ema_t[np] = vkd_model_tensor(t->ema, i), params[np++] = vkd_model_tensor(t->net, i);
    vkd_adam_cfg ac = {.beta1 = (float)c->beta1, .beta2 = (float)c->beta2, .eps = (float)c->eps,
                       .weight_decay = (float)c->weight_decay, .decoupled = c->weight_decay > 0,
                       .grad_clip = (float)c->grad_clip, .skip_nonfinite = 1};
    t->opt = vkd_adam_new(t->ctx, params, np, &ac);
    if (t->ranks > 1 && !(t->sync = vkd_grad_sync_new(t->ctx, params, np))) {
        free(params), free(ema_t);
        return fail_ctx(t, err, errlen);
    }
    int64_t s[3];
    vkd_model_sample_shape(t->net, s);
    int K = vkd_model_label_dim(t->net);
    int64_t xs[4] = {t->b, s[0], s[1], s[2]};
    t->x0 = vkd_tensor_new(t->ctx, "x0", 4, xs, VKD_HOST);
    t->labels = K ? vkd_tensor_new(t->ctx, "labels", 2, (int64_t[]){t->b, K}, VKD_HOST) : NULL;
    t->step_t = vkd_tensor_new(t->ctx, "step", 1, (int64_t[]){1}, VKD_HOST);
    t->ema_beta_t = vkd_tensor_new(t->ctx, "ema_beta", 1, (int64_t[]){1}, VKD_HOST);
    t->loss_h = vkd_tensor_new(t->ctx, "loss", 1, (int64_t[]){1}, VKD_HOST);
    if (!t->opt || !t->x0 || (K && !t->labels) || !t->step_t || !t->ema_beta_t || !t->loss_h) {
        free(params), free(ema_t);
        return fail_ctx(t, err, errlen);
    }
    vkd_model_set_train(t->net, 1, (uint64_t)c->seed ^ 0xd50u, t->step_t);
    vkd_denoiser den = {.model = t->net};
    t->g = vkd_graph_new(t->ctx, "teacher_step");
    vkd_graph *ga = t->g;
    if (t->ranks > 1) ga = t->ga = vkd_graph_new(t->ctx, "teacher_grad");
    vkd_graph_set_samples(ga, (int64_t)t->b * c->steps);  // a short run's walks quick to create
    vkd_graph_set_run_samples(ga, t->b);
    vkd_rand_set_row_offset(t->row0);  // this rank's rows of the sigma, noise and dropout draws
    vkd_tensor *loss = vkd_edm_loss(ga, &den, t->x0, t->labels, (float)c->p_mean, (float)c->p_std, 0.5f,
                                    (uint64_t)c->seed, t->step_t);
    vkd_copy(ga, t->loss_h, loss);  // read from host memory: no extra submission per step
    vkd_graph_backward(ga, loss);
    vkd_rand_set_row_offset(0);
    if (t->ranks > 1) vkd_grad_sync_record_out(ga, t->sync), vkd_grad_sync_record_in(t->g, t->sync);
    vkd_adam_record_part(t->g, t->opt, vkd_grad_sync_skip(t->sync));
    vkd_graph *ge = t->g;  // where the EMA goes: after every rank's share is in
    if (vkd_grad_sync_sharded(t->sync)) {
        vkd_grad_sync_record_params_out(t->g, t->sync);
        ge = t->gu = vkd_graph_new(t->ctx, "teacher_gather");
        vkd_grad_sync_record_params_in(ge, t->sync);
    }
    vkd_ema_record_t(ge, ema_t, params, np, 0.0f, t->ema_beta_t);
    free(params), free(ema_t);
    vkd_graph *gs[3] = {t->g, t->ga, t->gu};
    for (int i = 0; i < 3; i++)
        if (gs[i] && vkd_graph_compile(gs[i])) {
            snprintf(err, errlen, "%s", vkd_graph_error(gs[i]));
            return -1;
        }
    return 0;
}

static int build_checkpoint(vkd_teacher_trainer *t) {
    t->ck = vkd_ckpt_new();
    if (!t->ck) return -1;
    vkd_ckpt_add_model(t->ck, "net/", t->net);
    vkd_ckpt_add_model(t->ck, "ema/", t->ema);
    vkd_ckpt_add_adam(t->ck, "adam_m/", "adam_v/", t->opt);
    // A resume must be of the same network; the schedule (steps, lr, ...) may change.
    t->match[0] = "kind", t->match[1] = "vkdistill teacher training";
    t->match[2] = "model_config", t->match[3] = t->model_text;
    vkd_ckpt_set_meta(t->ck, t->match[0], t->match[1]);
    vkd_ckpt_set_meta(t->ck, t->match[2], t->match[3]);
    return 0;
}

vkd_teacher_trainer *vkd_teacher_trainer_new(vkd_ctx *ctx, const vkd_teacher_cfg *c, char *err, size_t errlen) {
    if (vkd_comm_check_batch(c->batch, "batch", err, errlen)) return NULL;
    vkd_teacher_trainer *t = calloc(1, sizeof *t);
    t->c = *c, t->ctx = ctx;
    t->ranks = vkd_comm_size(), t->b = c->batch / t->ranks, t->row0 = vkd_comm_rank() * t->b;
    size_t len;
    if (!(t->model_text = vkd_read_file(c->model, &len, err, errlen))) goto fail;
    t->net = vkd_model_create(ctx, c->model, 1, (uint64_t)c->seed, err, errlen);
    t->ema = t->net ? vkd_model_create(ctx, c->model, 0, (uint64_t)c->seed, err, errlen) : NULL;
    if (!t->ema) goto fail;
    int64_t s[3];
    if (vkd_model_sample_shape(t->net, s) != 3) {
        snprintf(err, errlen, "%s: train-teacher trains image models; this is a '%s' model", c->model, vkd_model_arch(t->net));
        goto fail;
    }
    if (!(t->ds = vkd_dataset_cfg_open(&c->data, t->net, c->model, err, errlen))) goto fail;
    if (vkd_model_copy_weights(t->ema, t->net, err, errlen) || record_step(t, err, errlen)) goto fail;
    if (build_checkpoint(t)) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    return t;
fail:
    vkd_teacher_trainer_free(t);
    return NULL;
}

void vkd_teacher_trainer_free(vkd_teacher_trainer *t) {
    if (!t) return;
    vkd_ckpt_free(t->ck);
    vkd_graph_free(t->g);
    vkd_graph_free(t->ga);
    vkd_graph_free(t->gu);
    vkd_grad_sync_free(t->sync);
    vkd_adam_free(t->opt);
    vkd_tensor_free(t->x0);
    vkd_tensor_free(t->labels);
    vkd_tensor_free(t->step_t);
    vkd_tensor_free(t->ema_beta_t);
    vkd_tensor_free(t->loss_h);
    vkd_dataset_free(t->ds);
    vkd_model_free(t->net);
    vkd_model_free(t->ema);
    free(t->model_text);
    free(t);
}

vkd_model *vkd_teacher_ema(vkd_teacher_trainer *t) { return t->ema; }
vkd_graph *vkd_teacher_graph(vkd_teacher_trainer *t) { return t->g; }

// One step; skipped (the NaN guard) counts into Adam's step so bias correction
// follows the updates actually made.
static int teacher_step_n(vkd_teacher_trainer *t, int64_t step, int64_t skipped) {
    const vkd_teacher_cfg *c = &t->c;
    float *lh = t->labels ? vkd_tensor_map(t->labels) : NULL;
    int K = vkd_model_label_dim(t->net);
    vkd_dataset_batch_rows(t->ds, (uint64_t)c->seed, step, c->batch, t->row0, t->b, c->data.flip, vkd_tensor_map(t->x0),
                           lh, NULL);
    // Label dropout for classifier-free guidance: an all-zero row is the null label.
    for (int i = 0; lh && c->label_dropout > 0 && i < t->b; i++)
        if (vkd_philox_uniform((uint64_t)c->seed, 77, (uint32_t)step, (uint64_t)(t->row0 + i)) < c->label_dropout)
            memset(lh + (size_t)i * K, 0, (size_t)K * sizeof *lh);
    ((uint32_t *)vkd_tensor_map(t->step_t))[0] = (uint32_t)step;
    t->lr = c->lr * (c->warmup > 0 ? fmin(1.0, step / c->warmup) : 1.0);
    vkd_adam_set_step(t->opt, (float)t->lr, step - skipped);
    // EDM's EMA: half-life ema_halflife_kimg, ramped up as 5% of the images seen so
    // far, so that a short run's EMA is not dominated by its first random weights.
    vkd_tensor_map(t->ema_beta_t)[0] = vkd_ema_beta(c->ema_halflife_kimg, 0.05, step, c->batch);
    if (t->ranks > 1) {
        if (vkd_graph_run(t->ga)) return -1;
        vkd_grad_sync_allreduce(t->sync);
    }
    if (vkd_graph_run(t->g)) return -1;
    if (t->gu) {
        vkd_grad_sync_allgather(t->sync);
        if (vkd_graph_run(t->gu)) return -1;
    }
    t->loss = vkd_tensor_map(t->loss_h)[0];
    if (t->ranks > 1) t->loss = (float)vkd_comm_mean(t->loss);  // the global batch's loss
    t->grad_norm = vkd_adam_grad_norm(t->opt);
    return 0;
}

int vkd_teacher_step(vkd_teacher_trainer *t, int64_t step, float *loss) {
    int rc = teacher_step_n(t, step, 0);
    if (loss) *loss = t->loss;
    return rc;
}

// ---------------------------------------------------------------- the trainable's hooks
static vkd_ckpt *hook_checkpoint(void *self, const char *const **match, int *nmatch) {
    vkd_teacher_trainer *t = self;
    *match = t->match, *nmatch = 2;
    return t->ck;
}

// Every rank starts from rank 0's network, EMA and optimizer state.
static int hook_begin(void *self, const vkd_train_state *s, char *err, size_t errlen) {
    vkd_teacher_trainer *t = self;
    if (t->ranks > 1 && (vkd_comm_bcast_model(t->net) || vkd_comm_bcast_model(t->ema) || vkd_comm_bcast_adam(t->opt))) {
        snprintf(err, errlen, "broadcasting the initial weights: %s", vkd_ctx_error(t->ctx));
        return -1;
    }
    return 0;
}

static int hook_step(void *self, const vkd_train_state *s, int *bad, char *status, size_t n, char *err, size_t errlen) {
    vkd_teacher_trainer *t = self;
    if (teacher_step_n(t, s->step, s->skipped)) {
        vkd_graph *failed = t->ga && vkd_graph_error(t->ga)[0] ? t->ga : t->gu && vkd_graph_error(t->gu)[0] ? t->gu : t->g;
        snprintf(err, errlen, "%s", vkd_graph_error(failed));
        return -1;
    }
    *bad = !isfinite(t->loss) || !isfinite(t->grad_norm);  // the device skipped the update
    snprintf(status, n, "loss %.4f", t->loss);
    return 0;
}

static int hook_metrics(void *self, const vkd_train_state *s, char *f, size_t n, char *err, size_t errlen) {
    vkd_teacher_trainer *t = self;
    snprintf(f, n, "\"loss\":%.6g,\"grad_norm\":%.6g,\"lr\":%.6g", t->loss, t->grad_norm, t->lr);
    return 0;
}

static int hook_evaluate(void *self, const vkd_train_state *s, char *f, size_t n, char *err, size_t errlen) {
    vkd_teacher_trainer *t = self;
    char path[1200];
    snprintf(path, sizeof path, "%s/samples/step_%08lld.png", s->run_dir, (long long)s->step);
    vkd_denoiser den = {.model = t->ema};
    return vkd_sample_grid_png(&den, t->c.sample_n, t->c.sample_steps, t->c.guidance, 12345, path, err, errlen);
}

// The EMA network under its PyTorch names, ready for sample / distill.
static int hook_finish(void *self, const vkd_train_state *s, char *err, size_t errlen) {
    vkd_teacher_trainer *t = self;
    char path[1200], mp[1200];
    snprintf(path, sizeof path, "%s/teacher.safetensors", s->run_dir);
    snprintf(mp, sizeof mp, "%s/teacher.json", s->run_dir);
    if (vkd_model_save(t->ema, path, "F32", err, errlen) ||
        vkd_write_file_atomic(mp, t->model_text, strlen(t->model_text), err, errlen))
        return -1;
    fprintf(stderr, "vkdistill: wrote %s and %s\n", path, mp);
    return 0;
}

// Sharded optimizer: each rank's moments to rank 0 (and to the others) before a checkpoint.
static int hook_gather(void *self, char *err, size_t errlen) {
    vkd_teacher_trainer *t = self;
    if (!vkd_grad_sync_gather_adam(t->sync, t->opt)) return 0;
    snprintf(err, errlen, "gathering the optimizer state from the ranks: %s", vkd_ctx_error(t->ctx));
    return -1;
}

const vkd_trainable *vkd_teacher_trainable(void) {
    static const vkd_trainable t = {.checkpoint = hook_checkpoint, .begin = hook_begin, .step = hook_step, .metrics = hook_metrics,
                                    .evaluate = hook_evaluate, .finish = hook_finish, .gather = hook_gather};
    return &t;
}
