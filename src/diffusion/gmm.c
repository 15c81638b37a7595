// The analytic Gaussian-mixture teacher: p0 = sum_k w_k N(mu_k, s_k^2 I), whose
// denoiser D(x; sigma) = E[x0 | x0 + sigma n = x] is known in closed form at
// every sigma (shaders/gmm.comp), so samplers and distillation objectives can be
// checked against exact answers. Host-side sampling and mode assignment are in
// double precision.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diffusion/internal.h"
#include "ops/ops.h"
#include "vkdistill/io.h"

#define GMM_WG 64u
#define GMM_MAX_K 1024
#define GMM_MAX_D 65536

struct vkd_gmm {
    vkd_ctx *ctx;
    int K, ndim;
    int64_t d, shape[3];
    double *w, *mu, *s;  // (K), (K, d), (K)
    vkd_tensor *t_mu;    // (K, d)
    vkd_tensor *t_par;   // (K, 2): log w_k, s_k^2
};

typedef struct {
    VkDeviceAddress x, sigma, mu, par, y, u, scr;
    uint32_t n, K, d;
} gmm_push;

vkd_gmm *vkd_gmm_create(vkd_ctx *ctx, int K, int ndim, const int64_t *sample_shape, const double *weights,
                        const double *means, const double *stds, char *err, size_t errlen) {
    if (K < 1 || K > GMM_MAX_K) {
        snprintf(err, errlen, "gmm: %d components (expected 1 to %d)", K, GMM_MAX_K);
        return NULL;
    }
    if (ndim != 1 && ndim != 3) {
        snprintf(err, errlen, "gmm: samples must be vectors (d) or images (C, H, W), got %d dims", ndim);
        return NULL;
    }
    int64_t d = 1;
    for (int i = 0; i < ndim; i++) {
        if (sample_shape[i] < 1) {
            snprintf(err, errlen, "gmm: sample shape dim %d is %lld (expected >= 1)", i, (long long)sample_shape[i]);
            return NULL;
        }
        d *= sample_shape[i];
    }
    if (d > GMM_MAX_D) {
        snprintf(err, errlen, "gmm: %lld dimensions per sample (at most %d)", (long long)d, GMM_MAX_D);
        return NULL;
    }
    double wsum = 0;
    for (int k = 0; k < K; k++) {
        if (!(weights[k] > 0) || !isfinite(weights[k])) {
            snprintf(err, errlen, "gmm: weight %d is %g (expected > 0)", k, weights[k]);
            return NULL;
        }
        if (!(stds[k] > 0) || !isfinite(stds[k])) {
            snprintf(err, errlen, "gmm: std %d is %g (expected > 0)", k, stds[k]);
            return NULL;
        }
        for (int64_t i = 0; i < d; i++)
            if (!isfinite(means[k * d + i])) {
                snprintf(err, errlen, "gmm: mean %d has a non-finite entry %lld", k, (long long)i);
                return NULL;
            }
        wsum += weights[k];
    }
    vkd_gmm *m = calloc(1, sizeof *m);
    m->ctx = ctx, m->K = K, m->ndim = ndim, m->d = d;
    for (int i = 0; i < ndim; i++) m->shape[i] = sample_shape[i];
    m->w = malloc(K * sizeof *m->w);
    m->s = malloc(K * sizeof *m->s);
    m->mu = malloc((size_t)K * d * sizeof *m->mu);
    memcpy(m->mu, means, (size_t)K * d * sizeof *m->mu);
    memcpy(m->s, stds, K * sizeof *m->s);
    for (int k = 0; k < K; k++) m->w[k] = weights[k] / wsum;  // weights are normalized
    int64_t smu[2] = {K, d}, spar[2] = {K, 2};
    m->t_mu = vkd_tensor_new(ctx, "gmm.means", 2, smu, 0);
    m->t_par = vkd_tensor_new(ctx, "gmm.params", 2, spar, 0);
    float *h = malloc((size_t)K * d * sizeof *h);
    for (int64_t i = 0; i < K * d; i++) h[i] = (float)means[i];
    int rc = !m->t_mu || !m->t_par || vkd_tensor_upload(m->t_mu, h);
    for (int k = 0; k < K && !rc; k++) h[2 * k] = (float)log(m->w[k]), h[2 * k + 1] = (float)(stds[k] * stds[k]);
    if (!rc) rc = vkd_tensor_upload(m->t_par, h);
    free(h);
    if (rc) {
        snprintf(err, errlen, "gmm: %s", vkd_ctx_error(ctx));
        vkd_gmm_free(m);
        return NULL;
    }
    return m;
}

void vkd_gmm_free(vkd_gmm *m) {
    if (!m) return;
    vkd_tensor_free(m->t_mu);
    vkd_tensor_free(m->t_par);
    free(m->w), free(m->mu), free(m->s);
    free(m);
}

int vkd_gmm_components(const vkd_gmm *m) { return m->K; }
vkd_ctx *vkd_gmm_ctx(const vkd_gmm *m) { return m->ctx; }

int vkd_gmm_sample_shape(const vkd_gmm *m, int64_t shape[3]) {
    for (int i = 0; i < m->ndim; i++) shape[i] = m->shape[i];
    return m->ndim;
}

void vkd_gmm_params(const vkd_gmm *m, const double **weights, const double **means, const double **stds) {
    if (weights) *weights = m->w;
    if (means) *means = m->mu;
    if (stds) *stds = m->s;
}

// ---------------------------------------------------------------- config
// ring8: 8 equal-weight modes on a circle of radius 2, std 0.1 (models/gmm_ring8.json).
static vkd_gmm *preset_ring8(vkd_ctx *ctx, char *err, size_t errlen) {
    double w[8], mu[16], s[8];
    for (int k = 0; k < 8; k++) {
        w[k] = 1.0 / 8, s[k] = 0.1;
        mu[2 * k] = 2.0 * cos(2 * M_PI * k / 8), mu[2 * k + 1] = 2.0 * sin(2 * M_PI * k / 8);
    }
    int64_t d = 2;
    return vkd_gmm_create(ctx, 8, 1, &d, w, mu, s, err, errlen);
}

static vkd_gmm *gmm_from_cfg(vkd_ctx *ctx, vkd_cfg *c, char *err, size_t errlen) {
    static const char *const arch[] = {"gmm", NULL};
    static const char *const presets[] = {"ring8", NULL};
    vkd_cfg_str(c, "arch", 1, NULL, arch);
    vkd_cfg_str(c, "comment", 0, NULL, NULL);
    const char *preset = vkd_cfg_str(c, "preset", 0, NULL, presets);
    if (preset) {
        if (vkd_cfg_finish(c)) goto cfg_fail;  // a preset takes no other fields
        return preset_ring8(ctx, err, errlen);
    }
    double *w = malloc(GMM_MAX_K * sizeof *w), *s = malloc(GMM_MAX_K * sizeof *s);
    int shape_i[3] = {0};
    int nsh = vkd_cfg_int_list(c, "shape", 0, shape_i, 3, 1, GMM_MAX_D);
    int dim = vkd_cfg_int(c, "dim", 0, 0, 1, GMM_MAX_D);
    int K = vkd_cfg_num_list(c, "weights", 1, w, GMM_MAX_K);
    int Ks = vkd_cfg_num_list(c, "stds", 1, s, GMM_MAX_K);
    int d = 0;
    int64_t cap = (int64_t)(K > 0 ? K : 1) * GMM_MAX_D;
    double *mu = malloc(cap * sizeof *mu);
    int Km = vkd_cfg_num_matrix(c, "means", 1, mu, K > 0 ? K : 1, GMM_MAX_D, &d);
    vkd_gmm *m = NULL;
    if (vkd_cfg_finish(c)) {
        free(w), free(s), free(mu);
        goto cfg_fail;
    }
    int64_t shape[3] = {d};
    int ndim = 1;
    if (K != Km || K != Ks) {
        snprintf(err, errlen, "gmm config: %d weights, %d means and %d stds (expected one of each per component)", K,
                 Km, Ks);
    } else if (dim && dim != d) {
        snprintf(err, errlen, "gmm config: 'dim' is %d but the means have %d entries", dim, d);
    } else if (nsh > 0 && nsh != 1 && nsh != 3) {
        snprintf(err, errlen, "gmm config: 'shape' must be [d] or [C, H, W], got %d dims", nsh);
    } else {
        if (nsh > 0) {
            ndim = nsh;
            int64_t prod = 1;
            for (int i = 0; i < nsh; i++) shape[i] = shape_i[i], prod *= shape_i[i];
            if (prod != d) {
                snprintf(err, errlen, "gmm config: 'shape' has %lld elements but the means have %d", (long long)prod,
                         d);
                goto out;
            }
        }
        m = vkd_gmm_create(ctx, K, ndim, shape, w, mu, s, err, errlen);
    }
out:
    free(w), free(s), free(mu);
    return m;
cfg_fail:
    snprintf(err, errlen, "%s", vkd_cfg_error(c));
    return NULL;
}

vkd_gmm *vkd_gmm_load(vkd_ctx *ctx, const char *config_path, char *err, size_t errlen) {
    vkd_cfg *c = vkd_cfg_load(config_path, err, errlen);
    if (!c) return NULL;
    char e2[512] = "";
    vkd_gmm *m = gmm_from_cfg(ctx, c, e2, sizeof e2);
    if (!m) {
        // Config errors already name the file; the others get it here.
        if (strncmp(e2, config_path, strlen(config_path)) == 0)
            snprintf(err, errlen, "%s", e2);
        else
            snprintf(err, errlen, "%s: %s", config_path, e2);
    }
    vkd_cfg_free(c);
    return m;
}

// ---------------------------------------------------------------- host sampling
void vkd_gmm_sample_host(const vkd_gmm *m, uint64_t seed, int64_t n, float *out, int *component) {
    for (int64_t i = 0; i < n; i++) {
        double u = vkd_philox_uniform(seed, 0, 0, (uint64_t)i), cdf = 0;
        int k = m->K - 1;
        for (int j = 0; j < m->K; j++) {
            cdf += m->w[j];
            if (u < cdf) {
                k = j;
                break;
            }
        }
        for (int64_t j = 0; j < m->d; j++)
            out[i * m->d + j] =
                (float)(m->mu[k * m->d + j] + m->s[k] * vkd_philox_normal(seed, 1, 0, (uint64_t)(i * m->d + j)));
        if (component) component[i] = k;
    }
}

void vkd_gmm_assign_host(const vkd_gmm *m, int64_t n, const float *x, int *component) {
    for (int64_t i = 0; i < n; i++) {
        double best = -HUGE_VAL;
        int bk = 0;
        for (int k = 0; k < m->K; k++) {
            double v = m->s[k] * m->s[k], q = 0;
            for (int64_t j = 0; j < m->d; j++) {
                double e = x[i * m->d + j] - m->mu[k * m->d + j];
                q += e * e;
            }
            double lp = log(m->w[k]) - 0.5 * (double)m->d * log(v) - 0.5 * q / v;
            if (lp > best) best = lp, bk = k;
        }
        component[i] = bk;
    }
}

// ---------------------------------------------------------------- the device op
// Invocations per sample: enough to cover d with one element each, at most the workgroup.
static uint32_t lanes_for(int64_t d) {
    uint32_t t = 1;
    while (t < GMM_WG && t < d) t *= 2;
    return t;
}

// A sample an invocation with K as a constant (gmm.comp's KC) for points of a few dimensions: the
// 2-D ring of 8 modes at batch 128 went from 124-136 (D) and 146-164 (dx) to 24-29 and 33-38 us a pass
// (VKD_PROFILE). VKD_GMM_SMALL=0: the general path.
static int small_mix(int K, int64_t d) { return K <= 32 && d <= 16 && !vkd_env_off("VKD_GMM_SMALL"); }

static int gmm_dispatch(vkd_graph *g, int mode, vkd_tensor *y, vkd_tensor *x, vkd_tensor *sigma, vkd_tensor *mu,
                        vkd_tensor *par, vkd_tensor *u, int64_t n, int K, int64_t d) {
    if (small_mix(K, d)) {
        gmm_push pc = {.n = (uint32_t)n, .K = (uint32_t)K, .d = (uint32_t)d};
        vkd_arg args[6] = {{offsetof(gmm_push, x), VKD_R, x},   {offsetof(gmm_push, sigma), VKD_R, sigma},
                           {offsetof(gmm_push, mu), VKD_R, mu}, {offsetof(gmm_push, par), VKD_R, par},
                           {offsetof(gmm_push, y), VKD_W, y},   {offsetof(gmm_push, u), VKD_R, u}};
        uint32_t spec[4] = {GMM_WG, 1, (uint32_t)mode, (uint32_t)K}, gx, gy;
        vkd_grid_1d((uint64_t)n, GMM_WG, &gx, &gy);
        return vkd_graph_dispatch(g, mode ? "gmm_denoise_bwd" : "gmm_denoise", "gmm", spec, 4, gx, gy, 1, &pc,
                                  sizeof pc, args, mode ? 6 : 5);
    }
    uint32_t T = lanes_for(d);
    int64_t sshape[1] = {n * T * 2 * K};
    vkd_tensor *scr = vkd_graph_tensor(g, "gmm_scratch", 1, sshape);
    if (!scr) return -1;
    gmm_push pc = {.n = (uint32_t)n, .K = (uint32_t)K, .d = (uint32_t)d};
    vkd_arg args[7] = {{offsetof(gmm_push, x), VKD_R, x},   {offsetof(gmm_push, sigma), VKD_R, sigma},
                       {offsetof(gmm_push, mu), VKD_R, mu}, {offsetof(gmm_push, par), VKD_R, par},
                       {offsetof(gmm_push, y), VKD_W, y},   {offsetof(gmm_push, scr), VKD_RW, scr},
                       {offsetof(gmm_push, u), VKD_R, u}};
    uint32_t spec[3] = {GMM_WG, T, (uint32_t)mode}, gx, gy;
    vkd_grid_1d((uint64_t)n, GMM_WG / T, &gx, &gy);
    return vkd_graph_dispatch(g, mode ? "gmm_denoise_bwd" : "gmm_denoise", "gmm", spec, 3, gx, gy, 1, &pc, sizeof pc,
                              args, mode ? 7 : 6);
}

static void gmm_backward(vkd_graph *g, vkd_tape_entry *e, vkd_tensor *dy) {
    vkd_tensor *x = e->in[0];
    vkd_tensor *dx = vkd_graph_tensor_like(g, "gmm_denoise_dx", x);
    if (!dx) return;
    int64_t n = (int64_t)e->attr.i[0] | ((int64_t)e->attr.i[1] << 31);
    if (gmm_dispatch(g, 1, dx, x, e->saved[0], e->saved[1], e->saved[2], dy, n, e->attr.i[2], e->attr.i[3])) return;
    vkd_grad_accumulate(g, x, dx);
}

vkd_tensor *vkd_gmm_denoise(vkd_graph *g, vkd_gmm *m, vkd_tensor *x, vkd_tensor *sigma) {
    if (!vkd_op_ok(g, 2, x, sigma)) return NULL;
    char sx[64];
    vkd_shape_str(x, sx, sizeof sx);
    int64_t n = x->shape[0];
    int ok = x->ndim == m->ndim + 1;
    for (int i = 0; ok && i < m->ndim; i++) ok = x->shape[i + 1] == m->shape[i];
    if (!ok || sigma->numel != n) {
        char want[64];
        if (m->ndim == 1)
            snprintf(want, sizeof want, "(N, %lld)", (long long)m->shape[0]);
        else
            snprintf(want, sizeof want, "(N, %lld, %lld, %lld)", (long long)m->shape[0], (long long)m->shape[1],
                     (long long)m->shape[2]);
        vkd_graph_fail(g, "gmm denoise: x '%s' %s with %lld sigmas ('%s'); expected x %s and N sigmas", x->name, sx,
                       (long long)sigma->numel, sigma->name, want);
        return NULL;
    }
    if (vkd_tensor_needs_grad(sigma)) {
        vkd_graph_fail(g, "gmm denoise: no gradient flows to sigma '%s'; do not mark it requires_grad", sigma->name);
        return NULL;
    }
    if ((uint64_t)n * lanes_for(m->d) * 2 * m->K > UINT32_MAX || (uint64_t)x->numel > UINT32_MAX) {
        vkd_graph_fail(g, "gmm denoise: x '%s' %s is too large for one dispatch", x->name, sx);
        return NULL;
    }
    vkd_tensor *y = vkd_graph_tensor_like(g, "gmm_denoise", x);
    if (!y || gmm_dispatch(g, 0, y, x, sigma, m->t_mu, m->t_par, NULL, n, m->K, m->d)) return NULL;
    vkd_tape_entry *e = vkd_tape_push(g, gmm_backward, y, &x, 1);
    if (e) {
        e->saved[0] = sigma, e->saved[1] = m->t_mu, e->saved[2] = m->t_par;
        e->attr.i[0] = (int32_t)(n & 0x7fffffff), e->attr.i[1] = (int32_t)(n >> 31);
        e->attr.i[2] = m->K, e->attr.i[3] = (int32_t)m->d;
    }
    return y;
}
