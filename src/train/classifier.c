// The FD feature classifier (arch "classifier") as a trainable: cross-entropy
// and Adam on a labelled dataset, one recorded step replayed every step, the
// learning rate a cosine from lr to 0 over the run; an evaluation on the whole
// test split after every epoch. Its penultimate features are the space of
// fid --features fmnist (models/README.md says how the shipped weights were made).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vkdistill/io.h"
#include "vkdistill/nn.h"
#include "vkdistill/train.h"

struct vkd_classifier_trainer {
    vkd_classifier_cfg c;
    vkd_ctx *ctx;
    char *model_text;
    vkd_model *net;
    vkd_dataset *train, *test;
    vkd_adam *opt;
    vkd_graph *g;
    vkd_tensor *x, *y, *loss_h;
    vkd_ckpt *ck;
    const char *match[4];
    int K;
    int64_t per_epoch;
    float loss;
    double lr, loss_avg, acc, xent;
};

void vkd_classifier_cfg_init(vkd_classifier_cfg *c) {
    memset(c, 0, sizeof *c);
    snprintf(c->data, sizeof c->data, "/usr/share/datasets/fashion-mnist");
    c->epochs = 2, c->batch = 128, c->seed = 1, c->lr = 2e-3;
    snprintf(c->dtype, sizeof c->dtype, "F16");
}

// Test accuracy (and mean cross-entropy) on a whole split.
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
            double se = 0;
            for (int j = 1; j < K; j++)
                if (l[j] > l[best]) best = j;
            for (int j = 0; j < K; j++) se += exp(l[j] - l[best]);
            int y = vkd_dataset_label(ds, s + i);
            right += best == y;
            ce += log(se) + l[best] - l[y];
        }
    }
    free(x), free(lg);
    *acc = n ? (double)right / n : 0;
    *xent = n ? ce / n : 0;
    return rc;
}

static int open_data(vkd_classifier_trainer *t, char *err, size_t errlen) {
    int64_t s[3];
    vkd_model_sample_shape(t->net, s);
    t->train = vkd_dataset_open_fitted(t->c.data, "train", (int)s[0], (int)s[1], t->c.max_images, err, errlen);
    t->test = t->train ? vkd_dataset_open_fitted(t->c.data, "test", (int)s[0], (int)s[1], 0, err, errlen) : NULL;
    if (!t->test) return -1;
    if (vkd_dataset_num_classes(t->train) != t->K) {
        snprintf(err, errlen, "%s: %d classes but %s has num_classes %d", t->c.data, vkd_dataset_num_classes(t->train),
                 t->c.model, t->K);
        return -1;
    }
    t->per_epoch = (vkd_dataset_count(t->train) + t->c.batch - 1) / t->c.batch;
    return 0;
}

static int record_step(vkd_classifier_trainer *t, char *err, size_t errlen) {
    int n = vkd_model_num_tensors(t->net), np = 0;
    vkd_tensor **params = calloc(n, sizeof *params);
    for (int i = 0; i < n; i++)
        if (vkd_model_tensor_is_param(t->net, i)) params[np++] = vkd_model_tensor(t->net, i);
    vkd_adam_cfg ac = {.beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .grad_clip = 5.0f, .skip_nonfinite = 1};
    t->opt = vkd_adam_new(t->ctx, params, np, &ac);
    free(params);
    int64_t s[3];
    vkd_model_sample_shape(t->net, s);
    t->x = vkd_tensor_new(t->ctx, "x", 4, (int64_t[]){t->c.batch, s[0], s[1], s[2]}, VKD_HOST);
    t->y = vkd_tensor_new(t->ctx, "y", 2, (int64_t[]){t->c.batch, t->K}, VKD_HOST);
    t->loss_h = vkd_tensor_new(t->ctx, "loss", 1, (int64_t[]){1}, VKD_HOST);
    if (!t->opt || !t->x || !t->y || !t->loss_h) {
        snprintf(err, errlen, "%s", vkd_ctx_error(t->ctx));
        return -1;
    }
    t->g = vkd_graph_new(t->ctx, "classifier_step");
    vkd_tensor *loss = vkd_cross_entropy(t->g, vkd_classifier_forward(t->g, t->net, t->x, NULL), t->y);
    vkd_copy(t->g, t->loss_h, loss);  // read from host memory: no extra submission per step
    vkd_graph_backward(t->g, loss);
    vkd_adam_record(t->g, t->opt);
    if (vkd_graph_compile(t->g)) {
        snprintf(err, errlen, "%s", vkd_graph_error(t->g));
        return -1;
    }
    return 0;
}

static int build_checkpoint(vkd_classifier_trainer *t) {
    if (!(t->ck = vkd_ckpt_new())) return -1;
    vkd_ckpt_add_model(t->ck, "net/", t->net);
    vkd_ckpt_add_adam(t->ck, "adam_m/", "adam_v/", t->opt);
    t->match[0] = "kind", t->match[1] = "vkdistill classifier training";
    t->match[2] = "model_config", t->match[3] = t->model_text;
    vkd_ckpt_set_meta(t->ck, t->match[0], t->match[1]);
    vkd_ckpt_set_meta(t->ck, t->match[2], t->match[3]);
    return 0;
}

vkd_classifier_trainer *vkd_classifier_trainer_new(vkd_ctx *ctx, const vkd_classifier_cfg *c, char *err, size_t errlen) {
    vkd_classifier_trainer *t = calloc(1, sizeof *t);
    t->c = *c, t->ctx = ctx;
    size_t len;
    if (!(t->model_text = vkd_read_file(c->model, &len, err, errlen))) goto fail;
    if (!(t->net = vkd_model_create(ctx, c->model, 1, (uint64_t)c->seed, err, errlen))) goto fail;
    if (vkd_classifier_dims(t->net, &t->K, NULL)) {
        snprintf(err, errlen, "%s: train-classifier needs arch \"classifier\", not \"%s\"", c->model, vkd_model_arch(t->net));
        goto fail;
    }
    if (open_data(t, err, errlen) || record_step(t, err, errlen)) goto fail;
    if (build_checkpoint(t)) {
        snprintf(err, errlen, "out of host memory");
        goto fail;
    }
    return t;
fail:
    vkd_classifier_trainer_free(t);
    return NULL;
}

void vkd_classifier_trainer_free(vkd_classifier_trainer *t) {
    if (!t) return;
    vkd_ckpt_free(t->ck);
    vkd_graph_free(t->g);
    vkd_adam_free(t->opt);
    vkd_tensor_free(t->x);
    vkd_tensor_free(t->y);
    vkd_tensor_free(t->loss_h);
    vkd_dataset_free(t->train);
    vkd_dataset_free(t->test);
    vkd_model_free(t->net);
    free(t->model_text);
    free(t);
}

vkd_train_opts vkd_classifier_train_opts(const vkd_classifier_trainer *t) {
    vkd_train_opts o = vkd_train_opts_default();
    o.title = "train-classifier";
    o.steps = t->per_epoch * t->c.epochs, o.batch = t->c.batch;
    o.log_every = 50, o.eval_every = (int)t->per_epoch, o.ckpt_every = (int)t->per_epoch;
    return o;
}

// ---------------------------------------------------------------- the trainable's hooks
static vkd_ckpt *hook_checkpoint(void *self, const char *const **match, int *nmatch) {
    vkd_classifier_trainer *t = self;
    *match = t->match, *nmatch = 2;
    return t->ck;
}

static int hook_step(void *self, const vkd_train_state *s, int *bad, char *status, size_t n, char *err, size_t errlen) {
    vkd_classifier_trainer *t = self;
    int64_t total = t->per_epoch * t->c.epochs;
    vkd_dataset_batch(t->train, (uint64_t)t->c.seed, s->step, t->c.batch, t->c.flip, vkd_tensor_map(t->x),
                      vkd_tensor_map(t->y), NULL);
    t->lr = t->c.lr * 0.5 * (1 + cos(M_PI * (double)(s->step - 1) / (double)total));
    vkd_adam_set_step(t->opt, (float)t->lr, s->step);
    if (vkd_graph_run(t->g)) {
        snprintf(err, errlen, "%s", vkd_graph_error(t->g));
        return -1;
    }
    t->loss = vkd_tensor_map(t->loss_h)[0];
    *bad = !isfinite(t->loss);
    t->loss_avg = t->loss_avg == 0 ? t->loss : 0.98 * t->loss_avg + 0.02 * t->loss;
    snprintf(status, n, "epoch %lld loss %.4f", (long long)((s->step - 1) / t->per_epoch + 1), t->loss_avg);
    return 0;
}

static int hook_metrics(void *self, const vkd_train_state *s, char *f, size_t n, char *err, size_t errlen) {
    vkd_classifier_trainer *t = self;
    snprintf(f, n, "\"epoch\":%lld,\"loss\":%.6g,\"lr\":%.6g", (long long)((s->step - 1) / t->per_epoch + 1), t->loss, t->lr);
    return 0;
}

static int hook_evaluate(void *self, const vkd_train_state *s, char *f, size_t n, char *err, size_t errlen) {
    vkd_classifier_trainer *t = self;
    if (evaluate(t->net, t->test, 500, &t->acc, &t->xent, err, errlen)) return -1;
    fprintf(stderr, "vkdistill: step %lld: test accuracy %.2f%% (%lld images), test cross-entropy %.4f\n",
            (long long)s->step, 100 * t->acc, (long long)vkd_dataset_count(t->test), t->xent);
    snprintf(f, n, "\"test_accuracy\":%.6f,\"test_xent\":%.6f", t->acc, t->xent);
    return 0;
}

static int hook_finish(void *self, const vkd_train_state *s, char *err, size_t errlen) {
    vkd_classifier_trainer *t = self;
    char wp[1200], cp[1200];
    snprintf(wp, sizeof wp, "%s/classifier.safetensors", s->run_dir);
    snprintf(cp, sizeof cp, "%s/classifier.json", s->run_dir);
    if (vkd_model_save(t->net, wp, t->c.dtype, err, errlen) ||
        vkd_write_file_atomic(cp, t->model_text, strlen(t->model_text), err, errlen))
        return -1;
    fprintf(stderr, "vkdistill: wrote %s and %s\n", wp, cp);
    printf("{\"test_accuracy\":%.6f,\"test_xent\":%.6f,\"steps\":%lld,\"batch\":%d,\"weights\":\"%s\"}\n", t->acc, t->xent,
           (long long)s->step, t->c.batch, wp);
    return 0;
}

const vkd_trainable *vkd_classifier_trainable(void) {
    static const vkd_trainable t = {.checkpoint = hook_checkpoint, .step = hook_step, .metrics = hook_metrics,
                                    .evaluate = hook_evaluate, .finish = hook_finish};
    return &t;
}
