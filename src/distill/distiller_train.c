// The distiller as a vkd_trainable: what the training loop calls at each
// point of a run (checkpoint layout, warm-up, step, metrics, samples, result).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "distill/distiller.h"
#include "train/progress.h"
#include "train/run.h"
#include "vkdistill/dist.h"

vkd_train_opts vkd_distiller_train_opts(const vkd_distiller_cfg *c) {
    vkd_train_opts o = vkd_train_opts_default();
    o.title = vkd_method_name(c->m.method);
    o.steps = c->steps, o.batch = c->batch;
    o.log_every = c->log_every, o.eval_every = c->sample_every, o.ckpt_every = c->ckpt_every;
    return o;
}

static vkd_ckpt *hook_checkpoint(void *self, const char *const **match, int *nmatch) {
    vkd_distiller *d = self;
    *match = d->match, *nmatch = 2;
    return d->ck;
}

// A fresh run: the teacher's multi-step grid for comparison (same labels as the
// student's grids), then the fake-only warm-up with its own progress bar.
static int hook_begin(void *self, const vkd_train_state *s, char *err, size_t errlen) {
    vkd_distiller *d = self;
    if (d->ranks > 1) {  // every rank starts from rank 0's networks, EMA and optimizer state
        int rc = vkd_comm_bcast_model(d->G) || vkd_comm_bcast_model(d->F) || vkd_comm_bcast_model(d->E) ||
                 vkd_comm_bcast_adam(d->opt_g) || vkd_comm_bcast_adam(d->opt_f);
        for (int i = 0; !rc && i < vkd_gan_head_num_tensors(d->head); i++) rc = vkd_comm_bcast_tensor(vkd_gan_head_tensor(d->head, i));
        if (rc) {
            snprintf(err, errlen, "broadcasting the initial weights: %s", vkd_ctx_error(d->ctx));
            return -1;
        }
    }
    if (s->step > 0) return 0;
    if (d->gnd == 3 && vkd_comm_rank() == 0) {  // only rank 0 writes the run folder
        char path[1200];
        snprintf(path, sizeof path, "%s/samples/teacher.png", s->run_dir);
        if (vkd_sample_grid_png(&d->teacher, d->c.sample_n, d->c.teacher_steps, 1.0, 999, path, err, errlen)) return -1;
    }
    if (d->gnd == 3 && d->ranks > 1) vkd_comm_barrier_for("waiting for rank 0's teacher grid", 86400);
    if (d->c.fake_warmup <= 0) return 0;
    vkd_progress pr;
    int show = vkd_comm_rank() == 0;
    if (show) vkd_progress_begin(&pr, "fake warm-up", "img", 0, d->c.fake_warmup);
    int64_t w = 0;
    for (; w < d->c.fake_warmup && !vkd_train_interrupted_all(); w++) {
        if (vkd_distiller_warmup_range(d, w, w + 1)) {
            snprintf(err, errlen, "%s", d->err);
            return -1;
        }
        if (show) vkd_progress_update(&pr, w + 1, d->c.batch, NULL);
    }
    if (show) vkd_progress_end(&pr, w, d->c.batch, NULL);
    return 0;
}

static int hook_step(void *self, const vkd_train_state *s, int *bad, char *status, size_t n, char *err, size_t errlen) {
    vkd_distiller *d = self;
    vkd_distill_stats st;
    if (vkd_distiller_step(d, s->step, &st)) {
        snprintf(err, errlen, "%s", d->err);
        return -1;
    }
    *bad = st.nonfinite;
    if (d->c.gan)
        snprintf(status, n, "L_G %.4g L_F %.4g GAN_G %.3g GAN_D %.3g", st.loss_g, st.loss_f, st.loss_gan_g, st.loss_gan_d);
    else
        snprintf(status, n, "L_G %.4g L_F %.4g", st.loss_g, st.loss_f);
    return 0;
}

// Losses and gradient norms; for a GMM teacher also the sample statistics
// (cheap for point students, so at every log line).
static int hook_metrics(void *self, const vkd_train_state *s, char *f, size_t n, char *err, size_t errlen) {
    vkd_distiller *d = self;
    const vkd_distill_stats *st = &d->last;
    size_t o = snprintf(f, n, "\"loss_g\":%.6g,\"loss_f\":%.6g,\"grad_norm_g\":%.6g,\"grad_norm_f\":%.6g", st->loss_g,
                        st->loss_f, st->grad_norm_g, st->grad_norm_f);
    if (d->c.gan && o < n) o += snprintf(f + o, n - o, ",\"loss_gan_g\":%.6g,\"loss_gan_d\":%.6g", st->loss_gan_g, st->loss_gan_d);
    if (!d->gmm) return 0;
    vkd_toy_stats ts;
    if (vkd_distiller_toy_stats(d, &ts)) {
        snprintf(err, errlen, "%s", d->err);
        return -1;
    }
    if (o < n)
        o += snprintf(f + o, n - o, ",\"energy_distance\":%.5f,\"near_mode\":%.4f,\"mode_weights\":[", ts.energy_distance,
                      ts.near_mode);
    for (int k = 0; k < ts.modes && o < n; k++) o += snprintf(f + o, n - o, "%s%.4f", k ? "," : "", ts.mode_weights[k]);
    if (o < n) snprintf(f + o, n - o, "]");
    return 0;
}

// A grid of the EMA generator's images, or a scatter plot of its points.
static int hook_evaluate(void *self, const vkd_train_state *s, char *f, size_t n, char *err, size_t errlen) {
    vkd_distiller *d = self;
    char path[1200];
    if (d->gmm) {
        snprintf(path, sizeof path, "%s/samples/scatter_%08lld.png", s->run_dir, (long long)s->step);
        if (vkd_distiller_sample(d, d->pts)) {
            snprintf(err, errlen, "%s", d->err);
            return -1;
        }
        return vkd_distiller_scatter_png(d, path, err, errlen);
    }
    if (d->gnd != 3) return 0;  // vectors without an exact teacher: nothing to draw
    int64_t cnt, numel = vkd_distiller_sample_numel(d, &cnt);
    float *h = malloc(numel * sizeof *h);
    int rc = h ? vkd_distiller_sample(d, h) : -1;
    if (rc) snprintf(err, errlen, "%s", h ? d->err : "out of host memory");
    snprintf(path, sizeof path, "%s/samples/step_%08lld.png", s->run_dir, (long long)s->step);
    if (!rc)
        rc = vkd_write_png_grid(path, h, (int)cnt, (int)d->gs[0], (int)d->gs[1], (int)d->gs[2],
                                (int)ceil(sqrt((double)cnt)), 2, err, errlen);
    free(h);
    return rc;
}

// The student's weights and config, and the command that samples it.
static int hook_finish(void *self, const vkd_train_state *s, char *err, size_t errlen) {
    vkd_distiller *d = self;
    if (vkd_distiller_save(d, s->run_dir, err, errlen)) return -1;
    char sig[160] = "";
    for (int i = 0, o = 0; i < d->c.nsteps && o < (int)sizeof sig; i++)
        o += snprintf(sig + o, sizeof sig - o, "%s%g", i ? "," : "", d->c.sigmas[i]);
    const char *out = d->gnd == 3 ? "-o grid.png" : "--npz samples.npz";
    if (d->c.nsteps == 1)
        fprintf(stderr, "vkdistill: wrote %s/student.safetensors (one step: vkdistill sample --model %s/student.json "
                        "--weights %s/student.safetensors --one-step %g %s)\n",
                s->run_dir, s->run_dir, s->run_dir, d->c.m.sigma_init, out);
    else
        fprintf(stderr, "vkdistill: wrote %s/student.safetensors (%d steps: vkdistill sample --model %s/student.json "
                        "--weights %s/student.safetensors --student-sigmas %s %s)\n",
                s->run_dir, d->c.nsteps, s->run_dir, s->run_dir, sig, out);
    return 0;
}

// Sharded optimizers: each rank's moments to rank 0 (and to the others) before a checkpoint.
static int hook_gather(void *self, char *err, size_t errlen) {
    vkd_distiller *d = self;
    if (!vkd_grad_sync_gather_adam(d->sync_g, d->opt_g) && !vkd_grad_sync_gather_adam(d->sync_f, d->opt_f)) return 0;
    snprintf(err, errlen, "gathering the optimizer state from the ranks: %s", vkd_ctx_error(d->ctx));
    return -1;
}

const vkd_trainable *vkd_distiller_trainable(void) {
    static const vkd_trainable t = {.checkpoint = hook_checkpoint, .begin = hook_begin, .step = hook_step,
                                    .metrics = hook_metrics, .evaluate = hook_evaluate, .finish = hook_finish,
                                    .gather = hook_gather};
    return &t;
}
