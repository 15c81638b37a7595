// EDM's samplers (Karras et al. 2022, Algorithm 2; edm_sampler in NVlabs/edm
// generate.py): the Karras sigma grid, optional stochastic churn, Euler steps
// and Heun's second-order correction (Euler on the last step, whose t_next is 0),
// and classifier-free guidance.
//
// Record once, replay: one graph for a Heun step and one for an Euler step, each
// reading its sigmas from host-visible tensors that the host rewrites before
// every replay; x lives in the caller's persistent tensor and is updated in place.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/graph.h"
#include "ops/ops.h"
#include "vkdistill/diffusion.h"

enum { UPD_CHURN = 0, UPD_EULER = 1, UPD_HEUN = 2 };

typedef struct {
    VkDeviceAddress y, x, a, b, c, par;
    uint32_t n;
} sampler_push;

vkd_sampler_cfg vkd_sampler_defaults(void) {
    return (vkd_sampler_cfg){.kind = VKD_SAMPLER_HEUN,
                             .steps = 18,
                             .sigma_min = 0.002,
                             .sigma_max = 80,
                             .rho = 7,
                             .s_churn = 0,
                             .s_min = 0,
                             .s_max = HUGE_VAL,
                             .s_noise = 1,
                             .guidance = 1};
}

void vkd_karras_sigmas(const vkd_sampler_cfg *c, double *out) {
    int N = c->steps;
    double a = pow(c->sigma_max, 1.0 / c->rho), b = pow(c->sigma_min, 1.0 / c->rho);
    for (int i = 0; i < N; i++) out[i] = pow(a + (N > 1 ? (double)i / (N - 1) : 0.0) * (b - a), c->rho);
    out[N] = 0;
}

// One element-wise sampler update y = f(x, a, b, c; par) (shaders/sampler.comp).
static vkd_tensor *update(vkd_graph *g, int mode, vkd_tensor *x, vkd_tensor *a, vkd_tensor *b, vkd_tensor *c,
                          vkd_tensor *par) {
    static const char *names[3] = {"sampler_churn", "sampler_euler", "sampler_heun"};
    if (!vkd_op_ok(g, 3, x, a, par)) return NULL;
    if (mode == UPD_HEUN && !vkd_op_ok(g, 2, b, c)) return NULL;
    vkd_tensor *y = vkd_graph_tensor_like(g, names[mode], x);
    if (!y) return NULL;
    sampler_push pc = {.n = (uint32_t)x->numel};
    vkd_arg args[6] = {{offsetof(sampler_push, y), VKD_W, y}, {offsetof(sampler_push, x), VKD_R, x},
                       {offsetof(sampler_push, a), VKD_R, a}, {offsetof(sampler_push, par), VKD_R, par},
                       {offsetof(sampler_push, b), VKD_R, b}, {offsetof(sampler_push, c), VKD_R, c}};
    uint32_t spec[2] = {VKD_WG, (uint32_t)mode}, gx, gy;
    vkd_grid_1d(x->numel, VKD_WG, &gx, &gy);
    if (vkd_graph_dispatch(g, names[mode], "sampler", spec, 2, gx, gy, 1, &pc, sizeof pc, args,
                           mode == UPD_HEUN ? 6 : 4))
        return NULL;
    return y;
}

typedef struct {
    const vkd_denoiser *d;
    const vkd_sampler_cfg *c;
    vkd_tensor *x, *labels;
    vkd_tensor *par;       // [t_cur, t_hat, t_next, churn_scale]
    vkd_tensor *step;      // [step index as uint32 bits]: the churn noise's Philox step
    vkd_tensor *sig_hat;   // (n) filled with t_hat
    vkd_tensor *sig_next;  // (n) filled with t_next
    uint64_t seed;
    int64_t samples;  // the step graphs' vkd_graph_set_samples
} state;

// D(x; sigma), with classifier-free guidance D_u + w (D_c - D_u) when asked for
// (the unconditional label row is all zeros).
static vkd_tensor *denoise(vkd_graph *g, const state *s, vkd_tensor *x, vkd_tensor *sigma) {
    if (!s->labels || s->c->guidance == 1.0) return vkd_denoiser_apply(g, s->d, x, sigma, s->labels);
    vkd_tensor *dc = vkd_denoiser_apply(g, s->d, x, sigma, s->labels);
    vkd_tensor *du = vkd_denoiser_apply(g, s->d, x, sigma, vkd_full(g, 2, s->labels->shape, 0.0f));
    return vkd_add(g, du, vkd_scale(g, vkd_sub(g, dc, du), (float)s->c->guidance));
}

static vkd_graph *record_step(const state *s, int heun) {
    vkd_graph *g = vkd_graph_new(vkd_denoiser_ctx(s->d), heun ? "sampler_heun_step" : "sampler_euler_step");
    if (!g) return NULL;
    vkd_graph_set_grad_enabled(g, 0);
    vkd_graph_set_samples(g, s->samples);
    // a run: the batch through one (Euler) or two (Heun) evaluations, each twice under guidance
    vkd_graph_set_run_samples(g, s->x->shape[0] * (heun ? 2 : 1) * (s->labels && s->c->guidance != 1.0 ? 2 : 1));
    vkd_tensor *xh = s->x;
    if (s->c->s_churn > 0) {
        vkd_tensor *eps = vkd_rand_normal(g, s->x->ndim, s->x->shape, s->seed, VKD_SAMPLER_STREAM_CHURN, s->step);
        xh = update(g, UPD_CHURN, s->x, eps, NULL, NULL, s->par);
    }
    vkd_tensor *d1 = denoise(g, s, xh, s->sig_hat);
    vkd_tensor *xn = update(g, UPD_EULER, xh, d1, NULL, NULL, s->par);
    if (heun) {
        vkd_tensor *d2 = denoise(g, s, xn, s->sig_next);
        xn = update(g, UPD_HEUN, xh, d1, xn, d2, s->par);
    }
    vkd_copy(g, s->x, xn);
    if (!vkd_graph_failed(g)) vkd_graph_compile(g);
    return g;
}

static int check_cfg(const vkd_sampler_cfg *c, char *err, size_t errlen) {
    const char *bad = NULL;
    if (c->kind != VKD_SAMPLER_EULER && c->kind != VKD_SAMPLER_HEUN)
        bad = "kind must be Euler or Heun";
    else if (c->steps < 1 || c->steps > 100000)
        bad = "steps must be 1 to 100000";
    else if (!(c->sigma_min > 0) || !(c->sigma_max >= c->sigma_min) || !isfinite(c->sigma_max))
        bad = "need 0 < sigma_min <= sigma_max < inf";
    else if (!(c->rho > 0))
        bad = "rho must be > 0";
    else if (!(c->s_churn >= 0) || !(c->s_noise >= 0))
        bad = "s_churn and s_noise must be >= 0";
    else if (!isfinite(c->guidance))
        bad = "guidance must be finite";
    if (bad) snprintf(err, errlen, "sampler: %s", bad);
    return bad ? -1 : 0;
}

int vkd_sample_from(const vkd_denoiser *d, const vkd_sampler_cfg *c, vkd_tensor *x, vkd_tensor *labels, uint64_t seed,
                    char *err, size_t errlen) {
    if (check_cfg(c, err, errlen)) return -1;
    vkd_ctx *ctx = vkd_denoiser_ctx(d);
    if (!ctx || !x || x->graph) {
        snprintf(err, errlen, "sampler: need a denoiser and a persistent x");
        return -1;
    }
    int64_t shape[3];
    int snd = vkd_denoiser_sample_shape(d, shape), ok = x->ndim == snd + 1;
    for (int i = 0; ok && i < snd; i++) ok = x->shape[i + 1] == shape[i];
    if (!ok) {
        char sx[64];
        vkd_shape_str(x, sx, sizeof sx);
        snprintf(err, errlen, "sampler: x '%s' %s does not hold (n, ...) samples of the denoiser", x->name, sx);
        return -1;
    }
    int64_t n = x->shape[0], four = 4, one = 1;
    state s = {.d = d, .c = c, .x = x, .labels = labels, .seed = seed};
    // images x network evaluations (Heun: 2N - 1; guidance evaluates twice)
    int evals = c->kind == VKD_SAMPLER_HEUN ? 2 * c->steps - 1 : c->steps;
    s.samples = (c->images > 0 ? c->images : n) * evals * (labels && c->guidance != 1.0 ? 2 : 1);
    s.par = vkd_tensor_new(ctx, "sampler.par", 1, &four, VKD_HOST);
    s.step = vkd_tensor_new(ctx, "sampler.step", 1, &one, VKD_HOST);
    s.sig_hat = vkd_tensor_new(ctx, "sampler.sigma_hat", 1, &n, VKD_HOST);
    s.sig_next = vkd_tensor_new(ctx, "sampler.sigma_next", 1, &n, VKD_HOST);
    vkd_graph *gh = NULL, *ge = NULL;
    int rc = -1;
    if (!s.par || !s.step || !s.sig_hat || !s.sig_next) {
        snprintf(err, errlen, "sampler: %s", vkd_ctx_error(ctx));
        goto out;
    }
    int N = c->steps, heun = c->kind == VKD_SAMPLER_HEUN;
    if (heun && N > 1) {
        gh = record_step(&s, 1);
        if (!gh || vkd_graph_failed(gh)) {
            snprintf(err, errlen, "sampler: %s", gh ? vkd_graph_error(gh) : vkd_ctx_error(ctx));
            goto out;
        }
    }
    ge = record_step(&s, 0);
    if (!ge || vkd_graph_failed(ge)) {
        snprintf(err, errlen, "sampler: %s", ge ? vkd_graph_error(ge) : vkd_ctx_error(ctx));
        goto out;
    }
    double *t = malloc((size_t)(N + 1) * sizeof *t);
    vkd_karras_sigmas(c, t);
    double gamma_max = fmin(c->s_churn / N, sqrt(2.0) - 1);
    for (int i = 0; i < N; i++) {
        double t_cur = t[i], t_next = t[i + 1];
        double gamma = (c->s_min <= t_cur && t_cur <= c->s_max) ? gamma_max : 0;
        double t_hat = t_cur + gamma * t_cur;
        float *p = vkd_tensor_map(s.par), *sh = vkd_tensor_map(s.sig_hat), *sn = vkd_tensor_map(s.sig_next);
        p[0] = (float)t_cur, p[1] = (float)t_hat, p[2] = (float)t_next;
        p[3] = (float)(sqrt(t_hat * t_hat - t_cur * t_cur) * c->s_noise);
        for (int64_t j = 0; j < n; j++) sh[j] = (float)t_hat, sn[j] = (float)t_next;
        uint32_t step = (uint32_t)i;
        memcpy(vkd_tensor_map(s.step), &step, sizeof step);
        vkd_graph *g = (heun && i < N - 1) ? gh : ge;
        if (vkd_graph_run(g)) {
            snprintf(err, errlen, "sampler: step %d: %s", i, vkd_graph_error(g));
            free(t);
            goto out;
        }
        if (c->progress) c->progress(c->progress_user, i + 1, N);
    }
    free(t);
    rc = 0;
out:
    vkd_graph_free(gh);
    vkd_graph_free(ge);
    vkd_tensor_free(s.par);
    vkd_tensor_free(s.step);
    vkd_tensor_free(s.sig_hat);
    vkd_tensor_free(s.sig_next);
    return rc;
}

int vkd_sample(const vkd_denoiser *d, const vkd_sampler_cfg *c, int64_t n, vkd_tensor *labels, uint64_t seed,
               vkd_tensor *out, char *err, size_t errlen) {
    if (check_cfg(c, err, errlen)) return -1;
    vkd_ctx *ctx = vkd_denoiser_ctx(d);
    if (!ctx || !out || out->graph || out->shape[0] != n) {
        snprintf(err, errlen, "sampler: out must be a persistent tensor of %lld samples", (long long)n);
        return -1;
    }
    // x_0 = sigma_0 * N(0, I) (EDM: latents * t_steps[0]).
    vkd_graph *g = vkd_graph_new(ctx, "sampler_init");
    if (!g) {
        snprintf(err, errlen, "sampler: %s", vkd_ctx_error(ctx));
        return -1;
    }
    double sigma0 = c->sigma_max;  // the Karras grid starts at sigma_max
    vkd_graph_set_grad_enabled(g, 0);
    vkd_copy(
        g, out,
        vkd_scale(g, vkd_rand_normal(g, out->ndim, out->shape, seed, VKD_SAMPLER_STREAM_INIT, NULL), (float)sigma0));
    int rc = vkd_graph_failed(g) || vkd_graph_run(g);
    if (rc) snprintf(err, errlen, "sampler: %s", vkd_graph_error(g));
    vkd_graph_free(g);
    return rc ? -1 : vkd_sample_from(d, c, out, labels, seed, err, errlen);
}
