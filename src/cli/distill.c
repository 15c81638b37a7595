// vkdistill distill CONFIG: train a one-step generator G(z) = D_G(sigma_init z;
// sigma_init) against a frozen teacher with DMD2, SiM, SiD or Diff-Instruct.
// Two phases, each recorded once and replayed: the fake-score step (its
// denoising loss on sg(G(z)), Adam) and the generator step (the method's loss
// through a frozen view of the fake network and the teacher, Adam, EMA).
// DMD2's optional GAN term adds a head on the fake network's bottleneck,
// trained in the fake phase against real images from a dataset.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/progress.h"
#include "cli/run.h"
#include "vkdistill/checkpoint.h"
#include "vkdistill/data.h"
#include "vkdistill/distill.h"
#include "vkdistill/io.h"

#define MAX_STUDENT_STEPS 8

typedef struct {
    vkd_distill_cfg m;
    float sigmas[MAX_STUDENT_STEPS];  // the student's steps (one: sigma_init)
    int nsteps;
    char teacher_model[1024], teacher_weights[1024], teacher_gmm[1024], student[1024];
    int init_from_teacher;
    int batch, fake_steps, fake_warmup;
    int64_t steps;
    double lr_g, lr_f, beta1, beta2, eps, weight_decay, warmup, grad_clip, ema_halflife_kimg;
    int seed, log_every, sample_every, ckpt_every, sample_n, teacher_steps;
    int has_data, gan;
    vkd_run_dataset_cfg data;
    double gan_weight_g, gan_weight_d;
} distill_cfg;

static int parse(const char *path, distill_cfg *d, char *err, size_t errlen) {
    vkd_cfg *c = vkd_cfg_load(path, err, errlen);
    if (!c) return -1;
    memset(d, 0, sizeof *d);
    static const char *const methods[] = {"dmd2", "sim", "sid", "diff_instruct", NULL};
    const char *ms = vkd_cfg_str(c, "method", 1, NULL, methods);
    vkd_method method = VKD_SID;
    if (ms) vkd_method_parse(ms, &method);
    d->m = vkd_distill_defaults(method);
    vkd_cfg *t = vkd_cfg_obj(c, "teacher", 1);
    if (t) {
        const char *gm = vkd_cfg_str(t, "gmm", 0, NULL, NULL);
        if (gm) vkd_resolve_path(path, gm, d->teacher_gmm, sizeof d->teacher_gmm);
        else {
            const char *mo = vkd_cfg_str(t, "model", 1, NULL, NULL), *we = vkd_cfg_str(t, "weights", 1, NULL, NULL);
            if (mo) vkd_resolve_path(path, mo, d->teacher_model, sizeof d->teacher_model);
            if (we) vkd_resolve_path(path, we, d->teacher_weights, sizeof d->teacher_weights);
        }
    }
    const char *st = vkd_cfg_str(c, "student", 0, NULL, NULL);
    if (st) vkd_resolve_path(path, st, d->student, sizeof d->student);
    static const char *const inits[] = {"teacher", "random", NULL};
    const char *in = vkd_cfg_str(c, "init", 0, d->teacher_gmm[0] ? "random" : "teacher", inits);
    d->init_from_teacher = in && strcmp(in, "teacher") == 0;
    d->batch = vkd_cfg_int(c, "batch", 0, 64, 1, 1 << 16);
    d->steps = vkd_cfg_int(c, "steps", 1, 0, 1, 2000000000);
    d->fake_steps = vkd_cfg_int(c, "fake_steps", 0, method == VKD_DMD2 ? 5 : 1, 1, 1000);
    d->fake_warmup = vkd_cfg_int(c, "fake_warmup", 0, 0, 0, 1000000000);
    d->lr_g = vkd_cfg_num(c, "lr_g", 0, 1e-5, 0, 1);
    d->lr_f = vkd_cfg_num(c, "lr_f", 0, d->lr_g, 0, 1);
    d->beta1 = vkd_cfg_num(c, "beta1", 0, method == VKD_DMD2 ? 0.9 : 0.0, 0, 1);
    d->beta2 = vkd_cfg_num(c, "beta2", 0, 0.999, 0, 1);
    d->eps = vkd_cfg_num(c, "eps", 0, 1e-8, 0, 1);
    d->weight_decay = vkd_cfg_num(c, "weight_decay", 0, method == VKD_DMD2 ? 0.01 : 0.0, 0, 10);
    d->warmup = vkd_cfg_num(c, "warmup_steps", 0, 0, 0, 1e9);
    d->grad_clip = vkd_cfg_num(c, "grad_clip", 0, 10, 0, 1e9);
    d->ema_halflife_kimg = vkd_cfg_num(c, "ema_halflife_kimg", 0, 0, 0, 1e9);
    d->m.sigma_init = (float)vkd_cfg_num(c, "sigma_init", 0, d->m.sigma_init, 1e-4, 1e4);
    double ss[MAX_STUDENT_STEPS];
    int nss = vkd_cfg_num_list(c, "student_sigmas", 0, ss, MAX_STUDENT_STEPS);
    d->nsteps = nss > 0 ? nss : 1;
    d->sigmas[0] = d->m.sigma_init;
    for (int i = 0; i < nss; i++) d->sigmas[i] = (float)ss[i];
    if (nss > 0) d->m.sigma_init = d->sigmas[0];
    d->m.alpha = (float)vkd_cfg_num(c, "alpha", 0, d->m.alpha, -10, 10);
    d->m.huber_c = (float)vkd_cfg_num(c, "huber_c", 0, d->m.huber_c, 0, 1e6);
    static const char *const weights[] = {"sid", "none", NULL};
    const char *sw = vkd_cfg_str(c, "sim_weight", 0, "sid", weights);
    d->m.sim_weight = sw && strcmp(sw, "none") == 0 ? VKD_SIM_WEIGHT_NONE : VKD_SIM_WEIGHT_SID;
    d->m.t_min = (float)vkd_cfg_num(c, "t_min", 0, d->m.t_min, 0, 1);
    d->m.t_max = (float)vkd_cfg_num(c, "t_max", 0, d->m.t_max, 0, 1);
    static const char *const fs[] = {"lognormal", "karras", NULL};
    const char *fsig = vkd_cfg_str(c, "fake_sigma", 0, d->m.fake_sigma_karras ? "karras" : "lognormal", fs);
    d->m.fake_sigma_karras = fsig && strcmp(fsig, "karras") == 0;
    d->m.sigma_min = (float)vkd_cfg_num(c, "sigma_min", 0, d->m.sigma_min, 1e-6, 1e6);
    d->m.sigma_max = (float)vkd_cfg_num(c, "sigma_max", 0, d->m.sigma_max, 1e-6, 1e6);
    d->m.sigma_data = (float)vkd_cfg_num(c, "sigma_data", 0, 0.5, 1e-6, 1e6);
    d->seed = vkd_cfg_int(c, "seed", 0, 1, 0, 2147483647);
    d->log_every = vkd_cfg_int(c, "log_every", 0, 10, 1, 2000000000);
    d->sample_every = vkd_cfg_int(c, "sample_every", 0, 100, 0, 2000000000);
    d->ckpt_every = vkd_cfg_int(c, "ckpt_every", 0, 500, 0, 2000000000);
    d->sample_n = vkd_cfg_int(c, "sample_n", 0, 64, 1, 100000);
    d->teacher_steps = vkd_cfg_int(c, "teacher_steps", 0, 18, 2, 10000);
    vkd_cfg *ds = vkd_cfg_obj(c, "dataset", 0);
    if (ds) d->has_data = 1, vkd_run_dataset_parse(ds, path, &d->data);
    vkd_cfg *gan = vkd_cfg_obj(c, "gan", 0);
    if (gan) {
        d->gan = 1;
        d->gan_weight_g = vkd_cfg_num(gan, "weight_g", 0, 3e-3, 0, 1e6);
        d->gan_weight_d = vkd_cfg_num(gan, "weight_d", 0, 1e-2, 0, 1e6);
    }
    vkd_cfg_str(c, "comment", 0, NULL, NULL);
    int rc = vkd_cfg_finish(c);
    int sigmas_ok = 1;
    for (int i = 0; i < d->nsteps; i++) sigmas_ok &= d->sigmas[i] > 0 && (!i || d->sigmas[i] < d->sigmas[i - 1]);
    if (rc) {
        snprintf(err, errlen, "%s", vkd_cfg_error(c));
    } else if (!sigmas_ok) {
        snprintf(err, errlen, "%s: field 'student_sigmas': expected positive, strictly decreasing sigmas", path);
        rc = -1;
    } else if (!d->teacher_gmm[0] && !d->teacher_model[0]) {
        snprintf(err, errlen, "%s: field 'teacher': needs either 'gmm' or 'model' and 'weights'", path);
        rc = -1;
    } else if (d->teacher_gmm[0] && !d->student[0]) {
        snprintf(err, errlen, "%s: field 'student': a GMM teacher needs a student network config (e.g. models/mlp_2d.json)", path);
        rc = -1;
    } else if (d->gan && !d->has_data) {
        snprintf(err, errlen, "%s: field 'gan': the GAN term needs real images; add a 'dataset' object (as in train-teacher configs)", path);
        rc = -1;
    } else if (d->gan && d->teacher_gmm[0]) {
        snprintf(err, errlen, "%s: field 'gan': the GAN head sits on a UNet's bottleneck; a GMM teacher's MLP student has none", path);
        rc = -1;
    } else if (d->teacher_gmm[0] && d->init_from_teacher) {
        snprintf(err, errlen, "%s: field 'init': a GMM teacher has no weights to initialize from; use \"random\"", path);
        rc = -1;
    }
    vkd_cfg_free(c);
    return rc;
}

// Host statistics for 2-D toys: energy distance between two point sets
// (2 E|X-Y| - E|X-X'| - E|Y-Y'|), O(n^2) on at most 2000 points each.
static double energy_distance(const float *a, int64_t na, const float *b, int64_t nb) {
    double ab = 0, aa = 0, bb = 0;
    for (int64_t i = 0; i < na; i++)
        for (int64_t j = 0; j < nb; j++) ab += hypot(a[2 * i] - b[2 * j], a[2 * i + 1] - b[2 * j + 1]);
    for (int64_t i = 0; i < na; i++)
        for (int64_t j = 0; j < na; j++) aa += hypot(a[2 * i] - a[2 * j], a[2 * i + 1] - a[2 * j + 1]);
    for (int64_t i = 0; i < nb; i++)
        for (int64_t j = 0; j < nb; j++) bb += hypot(b[2 * i] - b[2 * j], b[2 * i + 1] - b[2 * j + 1]);
    return 2 * ab / ((double)na * nb) - aa / ((double)na * na) - bb / ((double)nb * nb);
}

typedef struct {
    vkd_ctx *ctx;
    vkd_graph *g;
    vkd_tensor *out, *labels;
    int n, nd;
    int64_t shape[4];
} student_sampler;

// Fixed noise (seed 999) and fixed labels (i % K): grids over training are comparable.
static int student_sampler_init(student_sampler *s, vkd_ctx *ctx, const vkd_denoiser *G, const float *sigmas,
                                int nsteps, int n) {
    memset(s, 0, sizeof *s);
    s->ctx = ctx, s->n = n;
    int64_t sh[3];
    s->nd = vkd_denoiser_sample_shape(G, sh) + 1;
    s->shape[0] = n;
    for (int i = 1; i < s->nd; i++) s->shape[i] = sh[i - 1];
    int K = vkd_denoiser_label_dim(G);
    s->out = vkd_tensor_new(ctx, "student_samples", s->nd, s->shape, 0);
    if (K) {
        s->labels = vkd_tensor_new(ctx, "student_labels", 2, (int64_t[]){n, K}, 0);
        float *h = calloc((size_t)n * K, sizeof *h);
        for (int i = 0; i < n; i++) h[(size_t)i * K + i % K] = 1;
        vkd_tensor_upload(s->labels, h);
        free(h);
    }
    s->g = vkd_graph_new(ctx, "student_samples");
    vkd_graph_set_grad_enabled(s->g, 0);
    vkd_tensor *z = vkd_rand_normal(s->g, s->nd, s->shape, 999, 0, NULL);
    vkd_copy(s->g, s->out, vkd_generator_rollout(s->g, G, z, s->labels, sigmas, nsteps - 1, 999, 100, NULL));
    return vkd_graph_compile(s->g);
}

static void student_sampler_free(student_sampler *s) {
    vkd_graph_free(s->g);
    vkd_tensor_free(s->out);
    vkd_tensor_free(s->labels);
}

int vkd_cli_distill(vkd_cli *cli, int argc, char **argv) {
    vkd_run_args args;
    int arc = vkd_run_parse_args(&args, "distill", argc, argv);
    if (arc) return arc;
    const char *config = args.config, *resume = args.resume, *outdir = args.outdir;
    int64_t steps_override = args.steps;
    char err[2600];
    distill_cfg d;
    if (parse(config, &d, err, sizeof err)) {
        fprintf(stderr, "vkdistill: %s\n", err);
        return 1;
    }
    if (steps_override > 0) d.steps = steps_override;
    size_t len;
    char *cfg_text = vkd_read_file(config, &len, err, sizeof err);
    const char *student_path = d.student[0] ? d.student : d.teacher_model;
    char *student_text = cfg_text ? vkd_read_file(student_path, &len, err, sizeof err) : NULL;
    if (!cfg_text || !student_text) {
        fprintf(stderr, "vkdistill: %s\n", err);
        free(cfg_text);
        return 1;
    }
    vkd_ctx *ctx = vkd_cli_open(cli);
    if (!ctx) return 1;
    int rc = 1;
    vkd_model *tm = NULL, *G = NULL, *F = NULL, *Fv = NULL, *E = NULL;
    vkd_gmm *gmm = NULL;
    vkd_adam *opt_g = NULL, *opt_f = NULL;
    vkd_graph *gg[MAX_STUDENT_STEPS] = {0}, *gf[MAX_STUDENT_STEPS] = {0};
    vkd_tensor *loss_g[MAX_STUDENT_STEPS] = {0}, *loss_f[MAX_STUDENT_STEPS] = {0}, *loss_gh = NULL, *loss_fh = NULL;
    vkd_tensor *step_t = NULL, *labels = NULL;
    vkd_gan_head *head = NULL, *head_v = NULL;
    vkd_dataset *ds = NULL;
    vkd_tensor *real_x = NULL, *real_l = NULL, *gan_gh = NULL, *gan_fh = NULL;
    vkd_ckpt *ck = NULL;
    vkd_run run = {0};
    student_sampler ss = {0};
    float *pts = NULL, *ref = NULL;
    vkd_denoiser teacher = {0};

    if (d.teacher_gmm[0]) {
        gmm = vkd_gmm_load(ctx, d.teacher_gmm, err, sizeof err);
        if (!gmm) goto fail;
        teacher.gmm = gmm;
    } else {
        tm = vkd_model_create(ctx, d.teacher_model, 0, 0, err, sizeof err);
        if (!tm || vkd_model_load(tm, d.teacher_weights, err, sizeof err)) goto fail;
        teacher.model = tm;
    }
    G = vkd_model_create(ctx, student_path, 1, (uint64_t)d.seed * 2 + 1, err, sizeof err);
    F = G ? vkd_model_create(ctx, student_path, 1, (uint64_t)d.seed * 2 + 2, err, sizeof err) : NULL;
    E = F ? vkd_model_create(ctx, student_path, 0, 0, err, sizeof err) : NULL;
    if (!E) goto fail;
    int64_t ts[3], gs[3];
    int tnd = vkd_denoiser_sample_shape(&teacher, ts), gnd = vkd_model_sample_shape(G, gs);
    int same = tnd == gnd;
    for (int i = 0; same && i < tnd; i++) same = ts[i] == gs[i];
    int K = vkd_model_label_dim(G);
    if (!same || K != vkd_denoiser_label_dim(&teacher)) {
        snprintf(err, sizeof err, "%s: the student's samples or labels do not match the teacher's (%s)", student_path,
                 same ? "label_dim differs" : "sample shapes differ");
        goto fail;
    }
    if (d.init_from_teacher) {
        if (vkd_model_copy_weights(G, tm, err, sizeof err) || vkd_model_copy_weights(F, tm, err, sizeof err)) goto fail;
    }
    if (vkd_model_copy_weights(E, G, err, sizeof err)) goto fail;
    Fv = vkd_model_frozen_view(F);
    vkd_denoiser dG = {.model = G}, dF = {.model = F}, dFv = {.model = Fv}, dE = {.model = E};
    if (d.gan) {
        int64_t bs[3];
        if (vkd_model_bottleneck_shape(F, bs) < 0) {
            snprintf(err, sizeof err, "%s: field 'gan': the GAN head sits on a UNet's bottleneck; the student '%s' is a '%s' model",
                     config, student_path, vkd_model_arch(F));
            goto fail;
        }
        head = vkd_gan_head_new(ctx, bs, (uint64_t)d.seed * 2 + 3, err, sizeof err);
        if (!head) goto fail;
        head_v = vkd_gan_head_frozen_view(head);
        ds = vkd_run_dataset_open(&d.data, G, student_path, err, sizeof err);
        if (!ds) goto fail;
    }

    // Optimizers.
    vkd_tensor **pg = calloc(vkd_model_num_tensors(G), sizeof *pg);
    vkd_tensor **pf = calloc(vkd_model_num_tensors(F) + vkd_gan_head_num_tensors(head), sizeof *pf);
    vkd_tensor **pe = calloc(vkd_model_num_tensors(E), sizeof *pe);
    int ng = 0, nf = 0;
    for (int i = 0; i < vkd_model_num_tensors(G); i++)
        if (vkd_model_tensor_is_param(G, i)) pe[ng] = vkd_model_tensor(E, i), pg[ng++] = vkd_model_tensor(G, i);
    for (int i = 0; i < vkd_model_num_tensors(F); i++)
        if (vkd_model_tensor_is_param(F, i)) pf[nf++] = vkd_model_tensor(F, i);
    for (int i = 0; i < vkd_gan_head_num_tensors(head); i++) pf[nf++] = vkd_gan_head_tensor(head, i);  // trained with the fake network
    vkd_adam_cfg ac = {.beta1 = (float)d.beta1, .beta2 = (float)d.beta2, .eps = (float)d.eps,
                       .weight_decay = (float)d.weight_decay, .decoupled = d.weight_decay > 0,
                       .grad_clip = (float)d.grad_clip, .skip_nonfinite = 1};
    opt_g = vkd_adam_new(ctx, pg, ng, &ac);
    opt_f = vkd_adam_new(ctx, pf, nf, &ac);
    step_t = vkd_tensor_new(ctx, "step", 1, (int64_t[]){1}, VKD_HOST);
    loss_gh = vkd_tensor_new(ctx, "loss_g", 1, (int64_t[]){1}, VKD_HOST);
    loss_fh = vkd_tensor_new(ctx, "loss_f", 1, (int64_t[]){1}, VKD_HOST);
    int64_t zs[4] = {d.batch, gs[0], gs[1], gs[2]};
    if (K) labels = vkd_tensor_new(ctx, "labels", 2, (int64_t[]){d.batch, K}, VKD_HOST);
    if (d.gan) {
        real_x = vkd_tensor_new(ctx, "real_images", gnd + 1, zs, VKD_HOST);
        if (K) real_l = vkd_tensor_new(ctx, "real_labels", 2, (int64_t[]){d.batch, K}, VKD_HOST);
        gan_gh = vkd_tensor_new(ctx, "loss_gan_g", 1, (int64_t[]){1}, VKD_HOST);
        gan_fh = vkd_tensor_new(ctx, "loss_gan_d", 1, (int64_t[]){1}, VKD_HOST);
    }
    if (!opt_g || !opt_f || !step_t || !loss_gh || !loss_fh || (K && !labels) ||
        (d.gan && (!real_x || (K && !real_l) || !gan_gh || !gan_fh))) {
        snprintf(err, sizeof err, "%s", vkd_ctx_error(ctx));
        free(pg), free(pf), free(pe);
        goto fail;
    }
    double ema_beta = d.ema_halflife_kimg > 0 ? pow(0.5, d.batch / (d.ema_halflife_kimg * 1000.0)) : 0.0;

    // One fake-score phase and one generator phase per student step k (one
    // step: a single pair). Phase k reaches its input by the no-grad rollout of
    // steps < k (backward simulation), so training sees what sampling produces.
    for (int k = 0; k < d.nsteps; k++) {
        // The fake-score phase: its denoising loss on sg(G(z)).
        gf[k] = vkd_graph_new(ctx, "distill_fake");
        vkd_graph_set_grad_enabled(gf[k], 0);
        vkd_tensor *xf = vkd_generator_rollout(gf[k], &dG, vkd_rand_normal(gf[k], gnd + 1, zs, (uint64_t)d.seed, 1, step_t),
                                               labels, d.sigmas, k, (uint64_t)d.seed, 30, step_t);
        vkd_graph_set_grad_enabled(gf[k], 1);
        vkd_gan_term gan_f = {.head = head, .weight = (float)d.gan_weight_d, .real = real_x, .real_labels = real_l};
        loss_f[k] = vkd_distill_fake_loss(gf[k], &d.m, xf, labels, &dF, (uint64_t)d.seed, step_t, d.gan ? &gan_f : NULL);
        vkd_copy(gf[k], loss_fh, loss_f[k]);  // read from host memory: no extra submission per step
        if (d.gan) vkd_copy(gf[k], gan_fh, gan_f.loss);
        vkd_graph_backward(gf[k], loss_f[k]);
        vkd_adam_record(gf[k], opt_f);
        // The generator phase: the method's loss through the teacher and the frozen fake network.
        gg[k] = vkd_graph_new(ctx, "distill_generator");
        vkd_tensor *xg = vkd_generator_rollout(gg[k], &dG, vkd_rand_normal(gg[k], gnd + 1, zs, (uint64_t)d.seed, 2, step_t),
                                               labels, d.sigmas, k, (uint64_t)d.seed, 40, step_t);
        vkd_gan_term gan_g = {.head = head_v, .weight = (float)d.gan_weight_g};
        loss_g[k] = vkd_distill_generator_loss(gg[k], &d.m, xg, labels, &teacher, &dFv, (uint64_t)d.seed, step_t,
                                               d.gan ? &gan_g : NULL);
        vkd_copy(gg[k], loss_gh, loss_g[k]);
        if (d.gan) vkd_copy(gg[k], gan_gh, gan_g.loss);
        vkd_graph_backward(gg[k], loss_g[k]);
        vkd_adam_record(gg[k], opt_g);
        vkd_ema_record(gg[k], pe, pg, ng, (float)ema_beta);
        if (vkd_graph_compile(gf[k]) || vkd_graph_compile(gg[k])) {
            snprintf(err, sizeof err, "%s", vkd_graph_error(gf[k])[0] ? vkd_graph_error(gf[k]) : vkd_graph_error(gg[k]));
            free(pg), free(pf), free(pe);
            goto fail;
        }
    }
    free(pg), free(pf), free(pe);
    if (student_sampler_init(&ss, ctx, &dE, d.sigmas, d.nsteps, gnd == 1 ? 2000 : d.sample_n)) {
        snprintf(err, sizeof err, "%s", vkd_graph_error(ss.g));
        goto fail;
    }

    // Run folder, checkpoints, resume.
    ck = vkd_ckpt_new();
    vkd_ckpt_add_model(ck, "generator/", G);
    vkd_ckpt_add_model(ck, "fake/", F);
    vkd_ckpt_add_model(ck, "ema/", E);
    for (int i = 0; i < vkd_gan_head_num_tensors(head); i++)
        vkd_ckpt_add(ck, "gan/", vkd_tensor_name(vkd_gan_head_tensor(head, i)), vkd_gan_head_tensor(head, i));
    for (int i = 0; i < vkd_adam_num(opt_g); i++) {
        vkd_tensor *m, *v;
        vkd_adam_state(opt_g, i, &m, &v);
        vkd_ckpt_add(ck, "adam_g_m/", vkd_tensor_name(m), m);
        vkd_ckpt_add(ck, "adam_g_v/", vkd_tensor_name(v), v);
    }
    for (int i = 0; i < vkd_adam_num(opt_f); i++) {
        vkd_tensor *m, *v;
        vkd_adam_state(opt_f, i, &m, &v);
        vkd_ckpt_add(ck, "adam_f_m/", vkd_tensor_name(m), m);
        vkd_ckpt_add(ck, "adam_f_v/", vkd_tensor_name(v), v);
    }
    vkd_ckpt_set_meta(ck, "kind", "vkdistill distillation");
    vkd_ckpt_set_meta(ck, "train_config", cfg_text);
    if (vkd_run_open(&run, outdir, resume != NULL, cfg_text, err, sizeof err)) goto fail;
    int64_t start = 0, skipped = 0;
    const char *match[4] = {"kind", "vkdistill distillation", "train_config", cfg_text};
    if (vkd_run_resume(&run, ck, resume, match, 2, &start, &skipped, err, sizeof err)) goto fail;
    char path[1024], line[1024];
    // The teacher's multi-step samples for comparison (same labels as the student grid).
    if (start == 0 && gnd == 3) {
        vkd_run_path(&run, path, sizeof path, "samples/teacher.png");
        if (vkd_cli_sample_grid(&teacher, d.sample_n, d.teacher_steps, 1.0, 999, path, err, sizeof err)) goto fail;
    }
    if (gnd == 1) {  // 2-D toys: exact teacher samples for plots and distances
        ref = malloc(sizeof(float) * 2 * 2000);
        pts = malloc(sizeof(float) * 2 * 2000);
        vkd_gmm_sample_host(gmm, 4242, 2000, ref, NULL);
    }
    fprintf(stderr, "vkdistill: distilling with %s: %lld-parameter generator, batch %d, %lld steps (%d fake step%s each) -> %s\n",
            vkd_method_name(d.m.method), (long long)vkd_model_param_count(G), d.batch, (long long)d.steps, d.fake_steps,
            d.fake_steps > 1 ? "s" : "", outdir);

    vkd_run_catch_sigint();
    vkd_progress pr;
    vkd_progress_begin(&pr, "distill", "img", start, d.steps);
    float lg = 0, lf = 0;
    int64_t step = start;
    uint32_t *stp = (uint32_t *)vkd_tensor_map(step_t);
    float *lh = labels ? vkd_tensor_map(labels) : NULL;
    // Real images for the GAN term: batch i of the dataset stream feeds the i-th fake step (resumable).
    float *rxh = real_x ? vkd_tensor_map(real_x) : NULL, *rlh = real_l ? vkd_tensor_map(real_l) : NULL;
    rc = 0;
    // Fake-only warm-up (a randomly initialized fake network must first learn G's distribution).
    for (int64_t w = 0; start == 0 && w < d.fake_warmup && !rc; w++) {
        *stp = (uint32_t)(0x40000000u + w);
        vkd_adam_set_step(opt_f, (float)d.lr_f, w + 1);
        if (ds) vkd_dataset_batch(ds, (uint64_t)d.seed ^ 0x7ea1u, w, d.batch, d.data.flip, rxh, rlh, NULL);
        rc = vkd_graph_run(gf[(int)(vkd_philox_uniform((uint64_t)d.seed, 66, *stp, 0) * d.nsteps) % d.nsteps]);
    }
    int64_t tf = start * d.fake_steps + d.fake_warmup;  // Adam step count of the fake network
    while (!rc && step < d.steps && !vkd_run_interrupted()) {
        step++;
        // The student step trained this iteration (always 0 for a one-step student).
        int k = (int)(vkd_philox_uniform((uint64_t)d.seed, 66, (uint32_t)step, 1) * d.nsteps) % d.nsteps;
        double warm = d.warmup > 0 ? fmin(1.0, step / d.warmup) : 1.0;
        for (int j = 0; j < d.fake_steps && !rc; j++) {
            *stp = (uint32_t)(step * (d.fake_steps + 1) + j);
            for (int i = 0; lh && i < d.batch; i++) {
                memset(lh + (size_t)i * K, 0, (size_t)K * sizeof *lh);
                lh[(size_t)i * K + (int)(vkd_philox_uniform((uint64_t)d.seed, 55, *stp, i) * K) % K] = 1;
            }
            if (ds) vkd_dataset_batch(ds, (uint64_t)d.seed ^ 0x7ea1u, tf, d.batch, d.data.flip, rxh, rlh, NULL);
            vkd_adam_set_step(opt_f, (float)(d.lr_f * warm), ++tf);
            rc = vkd_graph_run(gf[k]);
            lf = vkd_tensor_map(loss_fh)[0];
        }
        *stp = (uint32_t)(step * (d.fake_steps + 1) + d.fake_steps);
        for (int i = 0; lh && i < d.batch; i++) {
            memset(lh + (size_t)i * K, 0, (size_t)K * sizeof *lh);
            lh[(size_t)i * K + (int)(vkd_philox_uniform((uint64_t)d.seed, 55, *stp, i) * K) % K] = 1;
        }
        vkd_adam_set_step(opt_g, (float)(d.lr_g * warm), step);
        if (!rc) rc = vkd_graph_run(gg[k]);
        lg = vkd_tensor_map(loss_gh)[0];
        if (rc) {
            snprintf(err, sizeof err, "%s", vkd_graph_error(gg[k])[0] ? vkd_graph_error(gg[k]) : vkd_graph_error(gf[k]));
            break;
        }
        if (!isfinite(lg) || !isfinite(vkd_adam_grad_norm(opt_g))) skipped++;
        char extra[128];
        if (d.gan)
            snprintf(extra, sizeof extra, "L_G %.4g L_F %.4g GAN_G %.3g GAN_D %.3g", lg, lf, vkd_tensor_map(gan_gh)[0],
                     vkd_tensor_map(gan_fh)[0]);
        else
            snprintf(extra, sizeof extra, "L_G %.4g L_F %.4g", lg, lf);
        vkd_progress_update(&pr, step, d.batch, extra);
        int sample_now = d.sample_every && (step % d.sample_every == 0 || step == d.steps);
        int log_now = step % d.log_every == 0 || step == d.steps;
        char stats[512] = "";
        if (sample_now || (log_now && gnd == 1)) {
            if (vkd_graph_run(ss.g)) {
                snprintf(err, sizeof err, "%s", vkd_graph_error(ss.g));
                rc = 1;
                break;
            }
            if (gnd == 1) {
                vkd_tensor_download(ss.out, pts);
                int *comp = malloc(sizeof(int) * 2000), kk = vkd_gmm_components(gmm);
                vkd_gmm_assign_host(gmm, 2000, pts, comp);
                int cnt[64] = {0}, near = 0;
                const double *mw, *mu, *sd;
                vkd_gmm_params(gmm, &mw, &mu, &sd);
                for (int i = 0; i < 2000; i++) {
                    cnt[comp[i] < 64 ? comp[i] : 63]++;
                    // "high-quality" samples: within 3 standard deviations of their mode
                    near += hypot(pts[2 * i] - mu[2 * comp[i]], pts[2 * i + 1] - mu[2 * comp[i] + 1]) < 3 * sd[comp[i]];
                }
                free(comp);
                size_t o = snprintf(stats, sizeof stats, ",\"energy_distance\":%.5f,\"near_mode\":%.4f,\"mode_weights\":[",
                                    energy_distance(pts, 1000, ref, 1000), near / 2000.0);
                for (int c = 0; c < kk && c < 64 && o < sizeof stats; c++)
                    o += snprintf(stats + o, sizeof stats - o, "%s%.4f", c ? "," : "", cnt[c] / 2000.0);
                if (o < sizeof stats) snprintf(stats + o, sizeof stats - o, "]");
                if (sample_now) {
                    vkd_run_path(&run, path, sizeof path, "samples/scatter_%08lld.png", (long long)step);
                    if (vkd_write_scatter_png(path, ref, 2000, pts, 2000, 3.0f, 512, err, sizeof err)) {
                        rc = 1;
                        break;
                    }
                }
            } else if (sample_now) {
                float *h = malloc(vkd_tensor_numel(ss.out) * sizeof *h);
                vkd_tensor_download(ss.out, h);
                vkd_run_path(&run, path, sizeof path, "samples/step_%08lld.png", (long long)step);
                int r2 = vkd_write_png_grid(path, h, ss.n, (int)gs[0], (int)gs[1], (int)gs[2],
                                            (int)ceil(sqrt((double)ss.n)), 2, err, sizeof err);
                free(h);
                if (r2) {
                    rc = 1;
                    break;
                }
            }
        }
        if (log_now) {
            snprintf(line, sizeof line,
                     "\"step\":%lld,\"kimg\":%.3f,\"loss_g\":%.6g,\"loss_f\":%.6g,\"grad_norm_g\":%.6g,\"grad_norm_f\":%.6g,"
                     "\"skipped\":%lld%s",
                     (long long)step, step * d.batch / 1000.0, lg, lf, vkd_adam_grad_norm(opt_g),
                     vkd_adam_grad_norm(opt_f), (long long)skipped, stats);
            if (d.gan) {
                size_t o = strlen(line);
                snprintf(line + o, sizeof line - o, ",\"loss_gan_g\":%.6g,\"loss_gan_d\":%.6g", vkd_tensor_map(gan_gh)[0],
                         vkd_tensor_map(gan_fh)[0]);
            }
            vkd_run_metrics(&run, line);
        }
        if (sample_now) vkd_run_write_report(&run, vkd_method_name(d.m.method), err, sizeof err);
        if ((d.ckpt_every && step % d.ckpt_every == 0) || step == d.steps)
            if ((rc = vkd_run_checkpoint(&run, ck, step, skipped, err, sizeof err))) break;
    }
    vkd_progress_end(&pr, step, d.batch, NULL);
    if (!rc && vkd_run_interrupted()) {
        rc = vkd_run_checkpoint(&run, ck, step, skipped, err, sizeof err);
        if (!rc) fprintf(stderr, "vkdistill: interrupted at step %lld; checkpoint saved (continue with --resume auto)\n", (long long)step);
    }
    if (!rc && step >= d.steps) {
        vkd_run_path(&run, path, sizeof path, "student.safetensors");
        rc = vkd_model_save(d.ema_halflife_kimg > 0 ? E : G, path, "F32", err, sizeof err);
        char mp[1024];
        vkd_run_path(&run, mp, sizeof mp, "student.json");
        if (!rc) rc = vkd_write_file_atomic(mp, student_text, strlen(student_text), err, sizeof err);
        if (!rc && d.nsteps == 1)
            fprintf(stderr, "vkdistill: wrote %s (one step: vkdistill sample --model %s --weights %s --one-step %g -o grid.png)\n",
                    path, mp, path, d.m.sigma_init);
        if (!rc && d.nsteps > 1) {
            char sig[160] = "";
            for (int i = 0, o = 0; i < d.nsteps; i++) o += snprintf(sig + o, sizeof sig - o, "%s%g", i ? "," : "", d.sigmas[i]);
            fprintf(stderr, "vkdistill: wrote %s (%d steps: vkdistill sample --model %s --weights %s --student-sigmas %s -o grid.png)\n",
                    path, d.nsteps, mp, path, sig);
        }
    }
    if (rc) goto fail;
    goto done;
fail:
    fprintf(stderr, "vkdistill: %s\n", err);
    rc = 1;
done:
    free(pts), free(ref);
    student_sampler_free(&ss);
    vkd_run_close(&run);
    vkd_ckpt_free(ck);
    for (int k = 0; k < MAX_STUDENT_STEPS; k++) vkd_graph_free(gg[k]), vkd_graph_free(gf[k]);
    vkd_adam_free(opt_g);
    vkd_adam_free(opt_f);
    vkd_tensor_free(step_t);
    vkd_tensor_free(labels);
    vkd_tensor_free(loss_gh);
    vkd_tensor_free(loss_fh);
    vkd_gan_head_free(head_v);
    vkd_gan_head_free(head);
    vkd_dataset_free(ds);
    vkd_tensor_free(real_x);
    vkd_tensor_free(real_l);
    vkd_tensor_free(gan_gh);
    vkd_tensor_free(gan_fh);
    vkd_model_free(Fv);
    vkd_model_free(G);
    vkd_model_free(F);
    vkd_model_free(E);
    vkd_model_free(tm);
    vkd_gmm_free(gmm);
    free(cfg_text);
    free(student_text);
    return vkd_cli_close(ctx, rc);
}
