// The distiller: networks, optimizers and the two recorded phases per student
// step (see distill.h), stepped by the caller or by the training loop
// (distiller_train.c holds its hooks).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "distill/distiller.h"
#include "train/run.h"
#include "vkdistill/dist.h"
#include "vkdistill/io.h"

static int fail_msg(vkd_distiller *d, const char *msg, char *err, size_t errlen) {
    snprintf(err, errlen, "%s", msg && msg[0] ? msg : "unknown error");
    return -1;
}

static int load_teacher(vkd_distiller *d, char *err, size_t errlen) {
    const vkd_distiller_cfg *c = &d->c;
    if (c->teacher_gmm[0]) {
        d->gmm = vkd_gmm_load(d->ctx, c->teacher_gmm, err, errlen);
        d->teacher.gmm = d->gmm;
        return d->gmm ? 0 : -1;
    }
    d->tm = vkd_model_create(d->ctx, c->teacher_model, 0, 0, err, errlen);
    // No weights file: a randomly initialized teacher (benchmarks time it the same).
    if (!d->tm || (c->teacher_weights[0] && vkd_model_load(d->tm, c->teacher_weights, err, errlen))) return -1;
    d->teacher.model = d->tm;
    return 0;
}

// G (trained), F (the fake score, trained), E (G's EMA), F's frozen view, and
// DMD2's GAN head with its real images.
static int create_networks(vkd_distiller *d, char *err, size_t errlen) {
    const vkd_distiller_cfg *c = &d->c;
    const char *sp = d->student_path;
    d->G = vkd_model_create(d->ctx, sp, 1, (uint64_t)c->seed * 2 + 1, err, errlen);
    d->F = d->G ? vkd_model_create(d->ctx, sp, 1, (uint64_t)c->seed * 2 + 2, err, errlen) : NULL;
    d->E = d->F ? vkd_model_create(d->ctx, sp, 0, 0, err, errlen) : NULL;
    if (!d->E) return -1;
    int64_t ts[3];
    int tnd = vkd_denoiser_sample_shape(&d->teacher, ts);
    d->gnd = vkd_model_sample_shape(d->G, d->gs);
    int same = tnd == d->gnd;
    for (int i = 0; same && i < tnd; i++) same = ts[i] == d->gs[i];
    d->K = vkd_model_label_dim(d->G);
    if (!same || d->K != vkd_denoiser_label_dim(&d->teacher)) {
        snprintf(err, errlen, "%s: the student's samples or labels do not match the teacher's (%s)", sp,
                 same ? "label_dim differs" : "sample shapes differ");
        return -1;
    }
    d->dim = 1;
    for (int i = 0; i < d->gnd; i++) d->dim *= d->gs[i];
    if (c->init_from_teacher &&
        (vkd_model_copy_weights(d->G, d->tm, err, errlen) || vkd_model_copy_weights(d->F, d->tm, err, errlen)))
        return -1;
    // A student to fine-tune (e.g. with the GAN term): G and its EMA start from it, F as 'init' says.
    if (c->generator_weights[0] && vkd_model_load(d->G, c->generator_weights, err, errlen)) return -1;
    if (vkd_model_copy_weights(d->E, d->G, err, errlen)) return -1;
    d->Fv = vkd_model_frozen_view(d->F);
    d->dG.model = d->G, d->dF.model = d->F, d->dFv.model = d->Fv, d->dE.model = d->E;
    if (!c->gan) return 0;
    int64_t bs[3];
    if (vkd_model_bottleneck_shape(d->F, bs) < 0) {
        snprintf(err, errlen, "field 'gan': the GAN head sits on a UNet's bottleneck; the student '%s' is a '%s' model", sp,
                 vkd_model_arch(d->F));
        return -1;
    }
    if (!(d->head = vkd_gan_head_new(d->ctx, bs, (uint64_t)c->seed * 2 + 3, err, errlen))) return -1;
    d->head_v = vkd_gan_head_frozen_view(d->head);
    d->ds = vkd_dataset_cfg_open(&c->data, d->G, sp, err, errlen);
    return d->ds ? 0 : -1;
}

// Adam for G and for F (+ the GAN head, trained with F); per-step scalars and
// host-visible outputs (losses are read without a submission of their own).
static int create_state(vkd_distiller *d, char *err, size_t errlen) {
    const vkd_distiller_cfg *c = &d->c;
    int nt = vkd_model_num_tensors(d->G);
    d->pg = calloc(nt, sizeof *d->pg), d->pe = calloc(nt, sizeof *d->pe);
    vkd_tensor **pf = calloc(vkd_model_num_tensors(d->F) + vkd_gan_head_num_tensors(d->head), sizeof *pf);
    int nf = 0;
    for (int i = 0; i < nt; i++)
        if (vkd_model_tensor_is_param(d->G, i)) d->pe[d->np] = vkd_model_tensor(d->E, i), d->pg[d->np++] = vkd_model_tensor(d->G, i);
    for (int i = 0; i < vkd_model_num_tensors(d->F); i++)
        if (vkd_model_tensor_is_param(d->F, i)) pf[nf++] = vkd_model_tensor(d->F, i);
    for (int i = 0; i < vkd_gan_head_num_tensors(d->head); i++) pf[nf++] = vkd_gan_head_tensor(d->head, i);
    vkd_adam_cfg ac = {.beta1 = (float)c->beta1, .beta2 = (float)c->beta2, .eps = (float)c->eps,
                       .weight_decay = (float)c->weight_decay, .decoupled = c->weight_decay > 0,
                       .grad_clip = (float)c->grad_clip, .skip_nonfinite = 1};
    d->opt_g = vkd_adam_new(d->ctx, d->pg, d->np, &ac);
    d->opt_f = vkd_adam_new(d->ctx, pf, nf, &ac);
    if (d->ranks > 1) {
        d->sync_g = vkd_grad_sync_new(d->ctx, d->pg, d->np);
        d->sync_f = vkd_grad_sync_new(d->ctx, pf, nf);
    }
    free(pf);
    if (d->ranks > 1 && (!d->sync_g || !d->sync_f)) return fail_msg(d, vkd_ctx_error(d->ctx), err, errlen);
    vkd_ctx *x = d->ctx;
    // Per-step tensors hold this rank's rows of the global batch.
    int64_t one[1] = {1}, lab[2] = {d->b, d->K}, zs[4] = {d->b, d->gs[0], d->gs[1], d->gs[2]};
    d->step_t = vkd_tensor_new(x, "step", 1, one, VKD_HOST);
    d->loss_gh = vkd_tensor_new(x, "loss_g", 1, one, VKD_HOST);
    if (c->ema_rampup_ratio > 0 && c->ema_halflife_kimg > 0 &&
        !(d->ema_beta_t = vkd_tensor_new(x, "ema_beta", 1, one, VKD_HOST)))
        return fail_msg(d, vkd_ctx_error(x), err, errlen);
    d->loss_fh = vkd_tensor_new(x, "loss_f", 1, one, VKD_HOST);
    if (d->K) d->labels = vkd_tensor_new(x, "labels", 2, lab, VKD_HOST);
    if (c->gan) {
        d->real_x = vkd_tensor_new(x, "real_images", d->gnd + 1, zs, VKD_HOST);
        if (d->K) d->real_l = vkd_tensor_new(x, "real_labels", 2, lab, VKD_HOST);
        d->gan_gh = vkd_tensor_new(x, "loss_gan_g", 1, one, VKD_HOST);
        d->gan_fh = vkd_tensor_new(x, "loss_gan_d", 1, one, VKD_HOST);
    }
    if (!d->opt_g || !d->opt_f || !d->step_t || !d->loss_gh || !d->loss_fh || (d->K && !d->labels) ||
        (c->gan && (!d->real_x || (d->K && !d->real_l) || !d->gan_gh || !d->gan_fh)))
        return fail_msg(d, vkd_ctx_error(x), err, errlen);
    return 0;
}

// The samples a run pushes through its networks (vkd_graph_set_samples): this rank's batch, each
// step's fake-score steps and generator step. Every graph of the distiller says the same, so
// they choose the same walks and share their pipelines.
static int64_t run_samples(const vkd_distiller *d) {
    return (int64_t)d->b * d->c.steps * (d->c.fake_steps + 1);
}

// The EMA's beta when it does not ramp up (then ema_beta_t is NULL).
static float ema_beta_const(const vkd_distiller *d) { return vkd_ema_beta(d->c.ema_halflife_kimg, 0, 0, d->c.batch); }

// One fake-score phase and one generator phase per student step k (one step:
// a single pair). Phase k reaches its input by the no-grad rollout of steps < k
// (backward simulation), so training sees what sampling produces.
static int record_phases(vkd_distiller *d, int k, char *err, size_t errlen) {
    const vkd_distiller_cfg *c = &d->c;
    uint64_t seed = (uint64_t)c->seed;
    int64_t zs[4] = {d->b, d->gs[0], d->gs[1], d->gs[2]};
    float ema_beta = ema_beta_const(d);
    int dp = d->ranks > 1;
    // This rank's rows of every draw of the global batch (0 for one rank).
    vkd_rand_set_row_offset(d->row0);
    // The fake-score phase: its denoising loss on sg(G(z)).
    vkd_graph *gf = d->gf[k] = vkd_graph_new(d->ctx, "distill_fake");
    vkd_graph *gfa = dp ? (d->gfa[k] = vkd_graph_new(d->ctx, "distill_fake_grad")) : gf;
    vkd_graph_set_samples(gfa, run_samples(d));
    vkd_graph_set_run_samples(gfa, d->b);
    vkd_graph_set_grad_enabled(gfa, 0);
    vkd_tensor *xf = vkd_generator_rollout(gfa, &d->dG, vkd_rand_normal(gfa, d->gnd + 1, zs, seed, 1, d->step_t), d->labels,
                                           c->sigmas, k, seed, 30, d->step_t);
    vkd_graph_set_grad_enabled(gfa, 1);
    vkd_gan_term gan_f = {.head = d->head, .weight = (float)c->gan_weight_d, .real = d->real_x, .real_labels = d->real_l};
    vkd_tensor *lf = vkd_distill_fake_loss(gfa, &c->m, xf, d->labels, &d->dF, seed, d->step_t, c->gan ? &gan_f : NULL);
    vkd_copy(gfa, d->loss_fh, lf);
    if (c->gan) vkd_copy(gfa, d->gan_fh, gan_f.loss);
    vkd_graph_backward(gfa, lf);
    if (dp) vkd_grad_sync_record_out(gfa, d->sync_f), vkd_grad_sync_record_in(gf, d->sync_f);
    vkd_adam_record_part(gf, d->opt_f, vkd_grad_sync_skip(d->sync_f));
    if (dp) vkd_grad_sync_record_params_out(gf, d->sync_f);
    // The generator phase: the method's loss through the teacher and the frozen fake network.
    vkd_graph *gg = d->gg[k] = vkd_graph_new(d->ctx, "distill_generator");
    vkd_graph *gga = dp ? (d->gga[k] = vkd_graph_new(d->ctx, "distill_generator_grad")) : gg;
    vkd_graph_set_samples(gga, run_samples(d));
    vkd_graph_set_run_samples(gga, d->b);
    vkd_tensor *xg = vkd_generator_rollout(gga, &d->dG, vkd_rand_normal(gga, d->gnd + 1, zs, seed, 2, d->step_t), d->labels,
                                           c->sigmas, k, seed, 40, d->step_t);
    vkd_gan_term gan_g = {.head = d->head_v, .weight = (float)c->gan_weight_g};
    vkd_tensor *lg = vkd_distill_generator_loss(gga, &c->m, xg, d->labels, &d->teacher, &d->dFv, seed, d->step_t,
                                                c->gan ? &gan_g : NULL);
    vkd_copy(gga, d->loss_gh, lg);
    if (c->gan) vkd_copy(gga, d->gan_gh, gan_g.loss);
    vkd_graph_backward(gga, lg);
    if (dp) vkd_grad_sync_record_out(gga, d->sync_g), vkd_grad_sync_record_in(gg, d->sync_g);
    vkd_adam_record_part(gg, d->opt_g, vkd_grad_sync_skip(d->sync_g));
    if (dp) vkd_grad_sync_record_params_out(gg, d->sync_g);
    if (!vkd_grad_sync_sharded(d->sync_g)) vkd_ema_record_t(gg, d->pe, d->pg, d->np, ema_beta, d->ema_beta_t);
    vkd_rand_set_row_offset(0);
    vkd_graph *all[4] = {gf, gg, dp ? gfa : NULL, dp ? gga : NULL};
    for (int i = 0; i < 4; i++)
        if (all[i] && vkd_graph_compile(all[i])) return fail_msg(d, vkd_graph_error(all[i]), err, errlen);
    return 0;
}

// Sharded optimizers: the graphs that take the other ranks' shares of the updated weights in
// (the same for every student step), the generator's followed by the EMA over all of G.
static int record_gathers(vkd_distiller *d, char *err, size_t errlen) {
    if (!vkd_grad_sync_sharded(d->sync_f)) return 0;
    d->gfu = vkd_graph_new(d->ctx, "distill_fake_gather");
    d->ggu = vkd_graph_new(d->ctx, "distill_generator_gather");
    vkd_grad_sync_record_params_in(d->gfu, d->sync_f);
    vkd_grad_sync_record_params_in(d->ggu, d->sync_g);
    vkd_ema_record_t(d->ggu, d->pe, d->pg, d->np, ema_beta_const(d), d->ema_beta_t);
    if (vkd_graph_compile(d->gfu)) return fail_msg(d, vkd_graph_error(d->gfu), err, errlen);
    if (vkd_graph_compile(d->ggu)) return fail_msg(d, vkd_graph_error(d->ggu), err, errlen);
    return 0;
}

// EMA samples from fixed noise (seed 999) and fixed labels (i % K): grids and
// statistics over training are comparable.
static int record_sampler(vkd_distiller *d, char *err, size_t errlen) {
    int n = d->s_n = d->gnd == 1 ? 2000 : d->c.sample_n;
    int64_t shape[4] = {n, d->gs[0], d->gs[1], d->gs[2]};
    d->s_out = vkd_tensor_new(d->ctx, "student_samples", d->gnd + 1, shape, 0);
    if (d->K) {
        d->s_labels = vkd_tensor_new(d->ctx, "student_labels", 2, (int64_t[]){n, d->K}, 0);
        float *h = d->s_labels ? calloc((size_t)n * d->K, sizeof *h) : NULL;
        for (int i = 0; h && i < n; i++) h[(size_t)i * d->K + i % d->K] = 1;
        if (h) vkd_tensor_upload(d->s_labels, h);
        free(h);
    }
    if (!d->s_out || (d->K && !d->s_labels)) return fail_msg(d, vkd_ctx_error(d->ctx), err, errlen);
    d->sg = vkd_graph_new(d->ctx, "student_samples");
    vkd_graph_set_samples(d->sg, run_samples(d));  // the training graphs' walks, their pipelines
    vkd_graph_set_run_samples(d->sg, n);
    vkd_graph_set_grad_enabled(d->sg, 0);
    vkd_tensor *z = vkd_rand_normal(d->sg, d->gnd + 1, shape, 999, 0, NULL);
    vkd_copy(d->sg, d->s_out, vkd_generator_rollout(d->sg, &d->dE, z, d->s_labels, d->c.sigmas, d->c.nsteps - 1, 999, 100, NULL));
    if (vkd_graph_compile(d->sg)) return fail_msg(d, vkd_graph_error(d->sg), err, errlen);
    if (d->gmm) {  // exact teacher samples for the statistics and plots
        d->ref = malloc(sizeof(float) * d->dim * n);
        d->pts = malloc(sizeof(float) * d->dim * n);
        d->comp = malloc(sizeof(int) * n);
        if (!d->ref || !d->pts || !d->comp) return fail_msg(d, "out of host memory", err, errlen);
        vkd_gmm_sample_host(d->gmm, 4242, n, d->ref, NULL);
    }
    return 0;
}

// The checkpoint's layout (kept from the first release: old checkpoints load).
static int build_checkpoint(vkd_distiller *d, const char *config_text) {
    vkd_ckpt *ck = d->ck = vkd_ckpt_new();
    if (!ck) return -1;
    vkd_ckpt_add_model(ck, "generator/", d->G);
    vkd_ckpt_add_model(ck, "fake/", d->F);
    vkd_ckpt_add_model(ck, "ema/", d->E);
    for (int i = 0; i < vkd_gan_head_num_tensors(d->head); i++)
        vkd_ckpt_add(ck, "gan/", vkd_tensor_name(vkd_gan_head_tensor(d->head, i)), vkd_gan_head_tensor(d->head, i));
    vkd_ckpt_add_adam(ck, "adam_g_m/", "adam_g_v/", d->opt_g);
    vkd_ckpt_add_adam(ck, "adam_f_m/", "adam_f_v/", d->opt_f);
    d->config_text = strdup(config_text ? config_text : "none");
    d->match[0] = "kind", d->match[1] = "vkdistill distillation";
    d->match[2] = "train_config", d->match[3] = d->config_text;
    vkd_ckpt_set_meta(ck, d->match[0], d->match[1]);
    vkd_ckpt_set_meta(ck, d->match[2], d->match[3]);
    return d->config_text ? 0 : -1;
}

vkd_distiller *vkd_distiller_new(vkd_ctx *ctx, const vkd_distiller_cfg *c, const char *config_text, char *err,
                                 size_t errlen) {
    if (vkd_distiller_cfg_check("distiller config", c, err, errlen)) return NULL;
    if (vkd_comm_check_batch(c->batch, "batch", err, errlen)) return NULL;
    vkd_distiller *d = calloc(1, sizeof *d);
    d->c = *c, d->ctx = ctx;
    d->ranks = vkd_comm_size(), d->b = c->batch / d->ranks, d->row0 = vkd_comm_rank() * d->b;
    if (d->c.nsteps <= 1) d->c.nsteps = 1, d->c.sigmas[0] = d->c.m.sigma_init;
    else d->c.m.sigma_init = d->c.sigmas[0];
    snprintf(d->student_path, sizeof d->student_path, "%s", c->student[0] ? c->student : c->teacher_model);
    size_t len;
    if (!(d->student_text = vkd_read_file(d->student_path, &len, err, errlen))) goto fail;
    if (load_teacher(d, err, errlen) || create_networks(d, err, errlen) || create_state(d, err, errlen)) goto fail;
    for (int k = 0; k < d->c.nsteps; k++)
        if (record_phases(d, k, err, errlen)) goto fail;
    if (record_gathers(d, err, errlen)) goto fail;
    if (record_sampler(d, err, errlen)) goto fail;
    if (build_checkpoint(d, config_text)) {
        snprintf(err, errlen, "out of host memory");
        goto fail;
    }
    return d;
fail:
    vkd_distiller_free(d);
    return NULL;
}

void vkd_distiller_free(vkd_distiller *d) {
    if (!d) return;
    vkd_ckpt_free(d->ck);
    vkd_graph_free(d->sg);
    vkd_tensor_free(d->s_out);
    vkd_tensor_free(d->s_labels);
    for (int k = 0; k < VKD_MAX_STUDENT_STEPS; k++)
        vkd_graph_free(d->gg[k]), vkd_graph_free(d->gf[k]), vkd_graph_free(d->gga[k]), vkd_graph_free(d->gfa[k]);
    vkd_graph_free(d->gfu), vkd_graph_free(d->ggu);
    vkd_grad_sync_free(d->sync_g);
    vkd_grad_sync_free(d->sync_f);
    vkd_adam_free(d->opt_g);
    vkd_adam_free(d->opt_f);
    vkd_tensor *ts[] = {d->step_t, d->labels, d->loss_gh, d->loss_fh, d->real_x, d->real_l, d->gan_gh, d->gan_fh, d->ema_beta_t};
    for (size_t i = 0; i < sizeof ts / sizeof *ts; i++) vkd_tensor_free(ts[i]);
    vkd_gan_head_free(d->head_v);
    vkd_gan_head_free(d->head);
    vkd_dataset_free(d->ds);
    vkd_model_free(d->Fv);
    vkd_model_free(d->G);
    vkd_model_free(d->F);
    vkd_model_free(d->E);
    vkd_model_free(d->tm);
    vkd_gmm_free(d->gmm);
    free(d->pg), free(d->pe), free(d->ref), free(d->pts), free(d->comp);
    free(d->student_text), free(d->config_text);
    free(d);
}

const char *vkd_distiller_error(const vkd_distiller *d) { return d->err; }
vkd_model *vkd_distiller_generator(vkd_distiller *d, int ema) { return ema ? d->E : d->G; }

int vkd_distiller_phases(vkd_distiller *d, int k, vkd_graph **fake, vkd_graph **generator) {
    if (k < 0 || k >= d->c.nsteps) return -1;
    *fake = d->gf[k], *generator = d->gg[k];
    return 0;
}

// ---------------------------------------------------------------- stepping
// Class labels of a step, drawn from (seed, 55, counter): the same on a resume.
static void draw_labels(vkd_distiller *d, uint32_t counter) {
    if (!d->labels) return;
    float *lh = vkd_tensor_map(d->labels);
    int K = d->K;
    memset(lh, 0, sizeof *lh * (size_t)d->b * K);
    for (int i = 0; i < d->b; i++)
        lh[(size_t)i * K + (int)(vkd_philox_uniform((uint64_t)d->c.seed, 55, counter, d->row0 + i) * K) % K] = 1;
}

// Real images for the GAN term: batch i of the dataset stream feeds the i-th fake step.
static void real_batch(vkd_distiller *d, int64_t i) {
    if (!d->ds) return;
    vkd_dataset_batch_rows(d->ds, (uint64_t)d->c.seed ^ 0x7ea1u, i, d->c.batch, d->row0, d->b, d->c.data.flip,
                           vkd_tensor_map(d->real_x), d->real_l ? vkd_tensor_map(d->real_l) : NULL, NULL);
}

static int run_graph(vkd_distiller *d, vkd_graph *g) {
    if (!vkd_graph_run(g)) return 0;
    snprintf(d->err, sizeof d->err, "%s", vkd_graph_error(g));
    return -1;
}

// One phase: a single graph on one rank; on several, forward + backward, the
// gradients' mean over ranks, then the optimizer part; sharded, that updates this
// rank's share only, and `gather` takes the others' in once they are exchanged.
static int run_phase(vkd_distiller *d, vkd_graph *grad, vkd_grad_sync *sync, vkd_graph *g, vkd_graph *gather) {
    if (d->ranks > 1) {
        if (run_graph(d, grad)) return -1;
        vkd_grad_sync_allreduce(sync);
    }
    if (run_graph(d, g)) return -1;
    if (!gather) return 0;
    vkd_grad_sync_allgather(sync);
    return run_graph(d, gather);
}

int vkd_distiller_warmup_range(vkd_distiller *d, int64_t w0, int64_t w1) {
    uint32_t *stp = (uint32_t *)vkd_tensor_map(d->step_t);
    for (int64_t w = w0; w < w1; w++) {
        *stp = (uint32_t)(0x40000000u + w);
        vkd_adam_set_step(d->opt_f, (float)d->c.lr_f, w + 1);
        real_batch(d, w);
        int k = (int)(vkd_philox_uniform((uint64_t)d->c.seed, 66, *stp, 0) * d->c.nsteps) % d->c.nsteps;
        if (run_phase(d, d->gfa[k], d->sync_f, d->gf[k], d->gfu)) return -1;
    }
    return 0;
}

int vkd_distiller_warmup(vkd_distiller *d) { return vkd_distiller_warmup_range(d, 0, d->c.fake_warmup); }

int vkd_distiller_step(vkd_distiller *d, int64_t step, vkd_distill_stats *st) {
    const vkd_distiller_cfg *c = &d->c;
    uint32_t *stp = (uint32_t *)vkd_tensor_map(d->step_t);
    // The student step trained this iteration (always 0 for a one-step student).
    int k = (int)(vkd_philox_uniform((uint64_t)c->seed, 66, (uint32_t)step, 1) * c->nsteps) % c->nsteps;
    double warm = c->warmup > 0 ? fmin(1.0, step / c->warmup) : 1.0;
    // The fake network's Adam steps (and real batches) count on from the warm-up.
    int64_t tf = (step - 1) * c->fake_steps + c->fake_warmup;
    for (int j = 0; j < c->fake_steps; j++) {
        *stp = (uint32_t)(step * (c->fake_steps + 1) + j);
        draw_labels(d, *stp);
        real_batch(d, tf);
        vkd_adam_set_step(d->opt_f, (float)(c->lr_f * warm), ++tf);
        if (run_phase(d, d->gfa[k], d->sync_f, d->gf[k], d->gfu)) return -1;
    }
    d->last.loss_f = vkd_tensor_map(d->loss_fh)[0];
    vkd_debug_kill_point("step", step);
    *stp = (uint32_t)(step * (c->fake_steps + 1) + c->fake_steps);
    draw_labels(d, *stp);
    vkd_adam_set_step(d->opt_g, (float)(c->lr_g * warm), step);
    // EDM's ramp-up: early on, the EMA forgets the initial weights faster
    if (d->ema_beta_t) vkd_tensor_map(d->ema_beta_t)[0] = vkd_ema_beta(c->ema_halflife_kimg, c->ema_rampup_ratio, step, c->batch);
    if (run_phase(d, d->gga[k], d->sync_g, d->gg[k], d->ggu)) return -1;
    vkd_distill_stats *s = &d->last;
    s->loss_g = vkd_tensor_map(d->loss_gh)[0];
    s->grad_norm_g = vkd_adam_grad_norm(d->opt_g);
    s->grad_norm_f = vkd_adam_grad_norm(d->opt_f);
    s->loss_gan_g = d->gan_gh ? vkd_tensor_map(d->gan_gh)[0] : 0;
    s->loss_gan_d = d->gan_fh ? vkd_tensor_map(d->gan_fh)[0] : 0;
    if (d->ranks > 1) {  // the global batch's losses (gradient norms are already those of the mean)
        double l[4] = {s->loss_g, s->loss_f, s->loss_gan_g, s->loss_gan_d};
        vkd_comm_allreduce_sum_f64(l, 4);
        s->loss_g = (float)(l[0] / d->ranks), s->loss_f = (float)(l[1] / d->ranks);
        s->loss_gan_g = (float)(l[2] / d->ranks), s->loss_gan_d = (float)(l[3] / d->ranks);
    }
    s->nonfinite = !isfinite(s->loss_g) || !isfinite(s->grad_norm_g);
    if (st) *st = *s;
    return 0;
}

// ---------------------------------------------------------------- samples and statistics
int64_t vkd_distiller_sample_numel(const vkd_distiller *d, int64_t *n) {
    if (n) *n = d->s_n;
    return d->s_n * d->dim;
}

int vkd_distiller_sample(vkd_distiller *d, float *out) {
    if (run_graph(d, d->sg)) return -1;
    return vkd_tensor_download(d->s_out, out);
}

double vkd_energy_distance(const float *a, int64_t na, const float *b, int64_t nb, int dim) {
    double ab = 0, aa = 0, bb = 0;
    const float *set[3][2] = {{a, b}, {a, a}, {b, b}};
    int64_t cnt[3][2] = {{na, nb}, {na, na}, {nb, nb}};
    double *acc[3] = {&ab, &aa, &bb};
    for (int s = 0; s < 3; s++)
        for (int64_t i = 0; i < cnt[s][0]; i++)
            for (int64_t j = 0; j < cnt[s][1]; j++) {
                double q = 0;
                for (int k = 0; k < dim; k++) {
                    double t = (double)set[s][0][i * dim + k] - set[s][1][j * dim + k];
                    q += t * t;
                }
                *acc[s] += sqrt(q);
            }
    return 2 * ab / ((double)na * nb) - aa / ((double)na * na) - bb / ((double)nb * nb);
}

int vkd_distiller_toy_stats(vkd_distiller *d, vkd_toy_stats *s) {
    memset(s, 0, sizeof *s);
    if (!d->gmm) {
        snprintf(d->err, sizeof d->err, "toy statistics need a GMM teacher");
        return -1;
    }
    if (vkd_distiller_sample(d, d->pts)) return -1;
    int n = d->s_n, dim = (int)d->dim, K = vkd_gmm_components(d->gmm);
    vkd_gmm_assign_host(d->gmm, n, d->pts, d->comp);
    const double *mw, *mu, *sd;
    vkd_gmm_params(d->gmm, &mw, &mu, &sd);
    int near = 0;
    s->modes = K < 64 ? K : 64;
    for (int i = 0; i < n; i++) {
        int k = d->comp[i];
        if (k < 64) s->mode_weights[k] += 1.0 / n;
        // "high-quality" samples: within 3 standard deviations of their mode (in all dim coordinates)
        double q = 0;
        for (int j = 0; j < dim; j++) q += (d->pts[(size_t)i * dim + j] - mu[(size_t)k * dim + j]) * (d->pts[(size_t)i * dim + j] - mu[(size_t)k * dim + j]);
        near += sqrt(q) < 3 * sd[k];
    }
    s->near_mode = near / (double)n;
    s->energy_distance = vkd_energy_distance(d->pts, n / 2, d->ref, n / 2, dim);
    return 0;
}

// A scatter of the first two coordinates, exact samples behind the student's,
// the view fitted to the teacher's support.
int vkd_distiller_scatter_png(vkd_distiller *d, const char *path, char *err, size_t errlen) {
    int n = d->s_n, dim = (int)d->dim;
    float *a = malloc(sizeof(float) * 2 * n), *b = malloc(sizeof(float) * 2 * n), lim = 0;
    for (int i = 0; a && b && i < n; i++)
        for (int j = 0; j < 2; j++) {
            a[2 * i + j] = dim > j ? d->ref[(size_t)i * dim + j] : 0;
            b[2 * i + j] = dim > j ? d->pts[(size_t)i * dim + j] : 0;
            lim = fmaxf(lim, fabsf(a[2 * i + j]));
        }
    int rc = a && b ? vkd_write_scatter_png(path, a, n, b, n, lim * 1.15f + 1e-6f, 512, err, errlen)
                    : fail_msg(d, "out of host memory", err, errlen);
    free(a), free(b);
    return rc;
}

int vkd_distiller_save(vkd_distiller *d, const char *dir, char *err, size_t errlen) {
    char path[1200], mp[1200];
    snprintf(path, sizeof path, "%s/student.safetensors", dir);
    snprintf(mp, sizeof mp, "%s/student.json", dir);
    if (vkd_model_save(d->c.ema_halflife_kimg > 0 ? d->E : d->G, path, "F32", err, errlen)) return -1;
    return vkd_write_file_atomic(mp, d->student_text, strlen(d->student_text), err, errlen);
}
