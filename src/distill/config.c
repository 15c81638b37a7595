// Distillation configs: the method's defaults and the strict JSON reader.
#include <stdio.h>
#include <string.h>

#include "train/config.h"
#include "vkdistill/distill.h"

void vkd_distiller_cfg_init(vkd_distiller_cfg *d, vkd_method method) {
    memset(d, 0, sizeof *d);
    d->m = vkd_distill_defaults(method);
    d->nsteps = 1;
    d->sigmas[0] = d->m.sigma_init;
    d->init_from_teacher = 1;
    d->batch = 64;
    d->fake_steps = method == VKD_DMD2 ? 5 : 1;
    d->lr_g = d->lr_f = 1e-5;
    d->beta1 = method == VKD_DMD2 ? 0.9 : 0.0;
    d->beta2 = 0.999;
    d->eps = 1e-8;
    d->weight_decay = method == VKD_DMD2 ? 0.01 : 0.0;
    // DMD2 clips the generator's gradient norm at 10 (its configs); SiD's, SiM's and
    // Diff-Instruct's reference codes do not clip.
    d->grad_clip = method == VKD_DMD2 ? 10 : 0;
    d->m.sigma_data = 0.5f;
    d->seed = 1, d->log_every = 10, d->sample_every = 100, d->ckpt_every = 500, d->sample_n = 64;
    d->teacher_steps = 18;
    d->gan_weight_g = 3e-3, d->gan_weight_d = 1e-2;
}

static void parse_teacher(vkd_cfg *t, const char *path, vkd_distiller_cfg *d) {
    const char *gm = vkd_cfg_str(t, "gmm", 0, NULL, NULL);
    if (gm) {
        vkd_resolve_path(path, gm, d->teacher_gmm, sizeof d->teacher_gmm);
        return;
    }
    const char *mo = vkd_cfg_str(t, "model", 1, NULL, NULL), *we = vkd_cfg_str(t, "weights", 1, NULL, NULL);
    if (mo) vkd_resolve_path(path, mo, d->teacher_model, sizeof d->teacher_model);
    if (we) vkd_resolve_path(path, we, d->teacher_weights, sizeof d->teacher_weights);
}

// The objective's fields (vkd_distill_cfg); defaults are the method's.
static void parse_objective(vkd_cfg *c, vkd_distiller_cfg *d) {
    d->m.sigma_init = (float)vkd_cfg_num(c, "sigma_init", 0, d->m.sigma_init, 1e-4, 1e4);
    double ss[VKD_MAX_STUDENT_STEPS];
    int nss = vkd_cfg_num_list(c, "student_sigmas", 0, ss, VKD_MAX_STUDENT_STEPS);
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
}

// The training schedule: batch, steps, optimizers, cadence.
static void parse_schedule(vkd_cfg *c, vkd_distiller_cfg *d) {
    int dmd2 = d->m.method == VKD_DMD2;
    d->batch = vkd_cfg_int(c, "batch", 0, d->batch, 1, 1 << 16);
    d->steps = vkd_cfg_int(c, "steps", 1, 0, 1, 2000000000);
    d->fake_steps = vkd_cfg_int(c, "fake_steps", 0, d->fake_steps, 1, 1000);
    d->fake_warmup = vkd_cfg_int(c, "fake_warmup", 0, 0, 0, 1000000000);
    d->lr_g = vkd_cfg_num(c, "lr_g", 0, d->lr_g, 0, 1);
    d->lr_f = vkd_cfg_num(c, "lr_f", 0, d->lr_g, 0, 1);
    d->beta1 = vkd_cfg_num(c, "beta1", 0, dmd2 ? 0.9 : 0.0, 0, 1);
    d->beta2 = vkd_cfg_num(c, "beta2", 0, d->beta2, 0, 1);
    d->eps = vkd_cfg_num(c, "eps", 0, d->eps, 0, 1);
    d->weight_decay = vkd_cfg_num(c, "weight_decay", 0, dmd2 ? 0.01 : 0.0, 0, 10);
    d->warmup = vkd_cfg_num(c, "warmup_steps", 0, 0, 0, 1e9);
    d->grad_clip = vkd_cfg_num(c, "grad_clip", 0, d->grad_clip, 0, 1e9);
    d->ema_halflife_kimg = vkd_cfg_num(c, "ema_halflife_kimg", 0, 0, 0, 1e9);
    d->ema_rampup_ratio = vkd_cfg_num(c, "ema_rampup_ratio", 0, 0, 0, 1e9);
    d->seed = vkd_cfg_int(c, "seed", 0, d->seed, 0, 2147483647);
    d->log_every = vkd_cfg_int(c, "log_every", 0, d->log_every, 1, 2000000000);
    d->sample_every = vkd_cfg_int(c, "sample_every", 0, d->sample_every, 0, 2000000000);
    d->ckpt_every = vkd_cfg_int(c, "ckpt_every", 0, d->ckpt_every, 0, 2000000000);
    d->sample_n = vkd_cfg_int(c, "sample_n", 0, d->sample_n, 1, 100000);
    d->teacher_steps = vkd_cfg_int(c, "teacher_steps", 0, d->teacher_steps, 2, 10000);
}

// Settings that are each valid but not together; one line naming the field.
int vkd_distiller_cfg_check(const char *path, const vkd_distiller_cfg *d, char *err, size_t errlen) {
    int sigmas_ok = 1;
    for (int i = 0; i < d->nsteps; i++) sigmas_ok &= d->sigmas[i] > 0 && (!i || d->sigmas[i] < d->sigmas[i - 1]);
    if (!sigmas_ok)
        snprintf(err, errlen, "%s: field 'student_sigmas': expected positive, strictly decreasing sigmas", path);
    else if (!d->teacher_gmm[0] && !d->teacher_model[0])
        snprintf(err, errlen, "%s: field 'teacher': needs either 'gmm' or 'model' and 'weights'", path);
    else if (d->teacher_gmm[0] && !d->student[0])
        snprintf(err, errlen, "%s: field 'student': a GMM teacher needs a student network config (e.g. models/mlp_2d.json)", path);
    else if (d->gan && !d->has_data)
        snprintf(err, errlen, "%s: field 'gan': the GAN term needs real images; add a 'dataset' object (as in train-teacher configs)", path);
    else if (d->gan && d->teacher_gmm[0])
        snprintf(err, errlen, "%s: field 'gan': the GAN head sits on a UNet's bottleneck; a GMM teacher's MLP student has none", path);
    else if (d->teacher_gmm[0] && d->init_from_teacher)
        snprintf(err, errlen, "%s: field 'init': a GMM teacher has no weights to initialize from; use \"random\"", path);
    else if (d->ema_rampup_ratio > 0 && !(d->ema_halflife_kimg > 0))
        snprintf(err, errlen, "%s: field 'ema_rampup_ratio': ramps up an EMA, but 'ema_halflife_kimg' is 0 (no EMA)", path);
    else
        return 0;
    return -1;
}

int vkd_distiller_cfg_load(const char *path, vkd_distiller_cfg *d, char *err, size_t errlen) {
    vkd_cfg *c = vkd_cfg_load(path, err, errlen);
    if (!c) return -1;
    static const char *const methods[] = {"dmd2", "sim", "sid", "diff_instruct", NULL};
    const char *ms = vkd_cfg_str(c, "method", 1, NULL, methods);
    vkd_method method = VKD_SID;
    if (ms) vkd_method_parse(ms, &method);
    vkd_distiller_cfg_init(d, method);
    vkd_cfg *t = vkd_cfg_obj(c, "teacher", 1);
    if (t) parse_teacher(t, path, d);
    const char *st = vkd_cfg_str(c, "student", 0, NULL, NULL);
    if (st) vkd_resolve_path(path, st, d->student, sizeof d->student);
    static const char *const inits[] = {"teacher", "random", NULL};
    const char *in = vkd_cfg_str(c, "init", 0, d->teacher_gmm[0] ? "random" : "teacher", inits);
    d->init_from_teacher = in && strcmp(in, "teacher") == 0;
    const char *gw = vkd_cfg_str(c, "generator_weights", 0, NULL, NULL);
    if (gw) vkd_resolve_path(path, gw, d->generator_weights, sizeof d->generator_weights);
    parse_objective(c, d);
    parse_schedule(c, d);
    vkd_cfg *ds = vkd_cfg_obj(c, "dataset", 0);
    if (ds) d->has_data = 1, vkd_dataset_cfg_parse(ds, path, &d->data);
    vkd_cfg *gan = vkd_cfg_obj(c, "gan", 0);
    if (gan) {
        d->gan = 1;
        d->gan_weight_g = vkd_cfg_num(gan, "weight_g", 0, d->gan_weight_g, 0, 1e6);
        d->gan_weight_d = vkd_cfg_num(gan, "weight_d", 0, d->gan_weight_d, 0, 1e6);
    }
    vkd_cfg_str(c, "comment", 0, NULL, NULL);
    int rc = vkd_cfg_finish(c);
    if (rc) snprintf(err, errlen, "%s", vkd_cfg_error(c));
    else rc = vkd_distiller_cfg_check(path, d, err, errlen);
    vkd_cfg_free(c);
    return rc;
}
