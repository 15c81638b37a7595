// Adam / AdamW and EMA as recorded steps (shaders/adam.comp, shaders/ema.comp).
// Optimizer state lives in persistent tensors; lr and t live in a host-visible
// tensor that the host updates between replays of the recorded step.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"

struct vkd_adam {
    vkd_ctx *ctx;
    int n;
    vkd_tensor **p, **g, **m, **v;  // g: the parameters' gradients
    vkd_tensor *hyper;  // [lr, t]
    vkd_tensor *gnorm;  // host-visible: the last step's squared global gradient norm
    vkd_tensor *norms;  // [n]: each gradient's squared norm, summed into gnorm
    vkd_tensor **slot;  // one-element views of norms
    vkd_adam_cfg cfg;
};

typedef struct {
    VkDeviceAddress p, g, m, v, hyper, gnorm2;
    uint32_t n;
    float b1, b2, eps, wd;
    uint32_t flags;
    float clip;
    int32_t p_first, g_first, m_first, v_first;  // texel views (set at compile)
    VkDeviceAddress table;                        // MULTI (src/ops/multi.c)
    int32_t p_sfirst, g_sfirst, m_sfirst, v_sfirst;  // storage bindings (set at compile)
} adam_push;

typedef struct {
    VkDeviceAddress e, p, beta_t;
    uint32_t n;
    float beta;
    uint32_t flags;
    int32_t e_first, p_first;  // texel views (set at compile)
    VkDeviceAddress table;     // MULTI (src/ops/multi.c)
    int32_t e_sfirst;          // ema_sb: e's storage binding (set at compile)
} ema_push;

vkd_adam *vkd_adam_new(vkd_ctx *ctx, vkd_tensor **params, int nparams, const vkd_adam_cfg *cfg) {
    vkd_adam *o = calloc(1, sizeof *o);
    o->ctx = ctx;
    o->cfg = *cfg;
    o->p = calloc(nparams, sizeof *o->p);
    o->g = calloc(nparams, sizeof *o->g);
    o->m = calloc(nparams, sizeof *o->m);
    o->v = calloc(nparams, sizeof *o->v);
    o->slot = calloc(nparams, sizeof *o->slot);
    int64_t two = 2, np = nparams > 0 ? nparams : 1;
    o->hyper = vkd_tensor_new(ctx, "adam.hyper", 1, &two, VKD_HOST);
    o->gnorm = vkd_tensor_new(ctx, "adam.grad_norm2", 1, (int64_t[]){1}, VKD_HOST);
    o->norms = vkd_tensor_new(ctx, "adam.grad_norms2", 1, &np, 0);
    if (!o->hyper || !o->gnorm || !o->norms) goto fail;
    for (int i = 0; i < nparams; i++) {
        if (!params[i]->pgrad) {
            vkd_set_error(ctx, "adam: tensor '%s' is not a trainable parameter", params[i]->name);
            goto fail;
        }
        char name[96];
        o->p[i] = params[i];
        o->g[i] = params[i]->pgrad;
        snprintf(name, sizeof name, "%s.adam_m", params[i]->name);
        o->m[i] = vkd_tensor_new(ctx, name, params[i]->ndim, params[i]->shape, 0);
        snprintf(name, sizeof name, "%s.adam_v", params[i]->name);
        o->v[i] = vkd_tensor_new(ctx, name, params[i]->ndim, params[i]->shape, 0);
        o->slot[i] = vkd_tensor_view(o->norms, i, 1, (int64_t[]){1});
        o->n = i + 1;
        if (!o->m[i] || !o->v[i] || !o->slot[i]) goto fail;
    }
    return o;
fail:
    vkd_adam_free(o);
    return NULL;
}

void vkd_adam_free(vkd_adam *o) {
    if (!o) return;
    for (int i = 0; i < o->n; i++) vkd_tensor_free(o->m[i]), vkd_tensor_free(o->v[i]), vkd_tensor_free(o->slot[i]);
    vkd_tensor_free(o->norms);
    vkd_tensor_free(o->hyper);
    vkd_tensor_free(o->gnorm);
    free(o->p), free(o->g), free(o->m), free(o->v), free(o->slot);
    free(o);
}

void vkd_adam_set_step(vkd_adam *o, float lr, int64_t t) {
    float *h = vkd_tensor_map(o->hyper);
    h[0] = lr;
    h[1] = (float)t;
}

int vkd_adam_num(const vkd_adam *o) { return o->n; }

void vkd_adam_state(const vkd_adam *o, int i, vkd_tensor **m, vkd_tensor **v) {
    *m = o->m[i];
    *v = o->v[i];
}

float vkd_adam_grad_norm(const vkd_adam *o) {
    float *h = vkd_tensor_map(o->gnorm);
    return sqrtf(h[0]);
}

// The squared global norm of all gradients, recorded as part of the step and
// copied to a host-visible scalar: the shader clips with it and the host logs it.
// Each gradient's sum of squares goes to its own slot of one vector (disjoint
// writes: no barrier between them), then one sum over the slots; a chain of
// scalar adds cost a dispatch and a barrier per parameter tensor.
static vkd_tensor *global_norm2(vkd_graph *g, vkd_adam *o) {
    if (!o->n || vkd_sum_squares_each(g, o->g, o->slot, o->n, o->norms)) return NULL;
    return vkd_sum(g, o->norms, 0);
}

static adam_push adam_push_of(const vkd_adam *o, uint32_t n, int clipped) {
    return (adam_push){.n = n,
                       .b1 = o->cfg.beta1,
                       .b2 = o->cfg.beta2,
                       .eps = o->cfg.eps,
                       .wd = o->cfg.weight_decay,
                       .flags = (o->cfg.decoupled ? 1u : 0u) | 2u | (clipped ? 4u : 0u),
                       .clip = o->cfg.grad_clip};
}

// p, g, m, v (args 0..3) read through texel bindings 0..3 and, with sbuf (adam_sb), written
// through storage bindings 0..3; returns the number of bindings.
static int adam_bindings(vkd_texel tx[8], uint32_t texel, uint8_t vec4, uint32_t sbuf) {
    static const uint16_t first[4] = {offsetof(adam_push, p_first), offsetof(adam_push, g_first),
                                      offsetof(adam_push, m_first), offsetof(adam_push, v_first)};
    static const uint16_t sfirst[4] = {offsetof(adam_push, p_sfirst), offsetof(adam_push, g_sfirst),
                                       offsetof(adam_push, m_sfirst), offsetof(adam_push, v_sfirst)};
    int n = 0;
    for (uint8_t k = 0; k < 4 && texel; k++) tx[n++] = (vkd_texel){k, k, first[k], vec4};
    for (uint8_t k = 0; k < 4 && sbuf; k++) tx[n++] = vkd_texel_store(k, k, sfirst[k]);
    return n;
}

// adam_wide, or adam_sb where that would run and p, g, m, v go through storage bindings
// (*sbuf set): the choice vkd_sbuf_variant makes for one output, for Adam's four.
static const char *adam_shader(vkd_graph *g, int vec4, vkd_tensor *p, vkd_tensor *gr, vkd_tensor *m, vkd_tensor *v,
                               uint32_t *sbuf) {
    const char *wide = vkd_store_variant(g, vec4, "adam", "adam_wide");
    *sbuf = !strcmp(wide, "adam_wide") && vkd_sbuf_ok(g, 4, p, gr, m, v);
    return *sbuf ? "adam_sb" : wide;
}

// One dispatch per parameter tensor.
static void adam_one_tensor(vkd_graph *g, vkd_adam *o, int i, vkd_tensor *n2) {
    vkd_tensor *p = o->p[i];
    adam_push pc = adam_push_of(o, (uint32_t)p->numel, n2 != NULL);
    vkd_arg args[6] = {{offsetof(adam_push, p), VKD_RW, p},
                       {offsetof(adam_push, g), VKD_RW, p->pgrad},
                       {offsetof(adam_push, m), VKD_RW, o->m[i]},
                       {offsetof(adam_push, v), VKD_RW, o->v[i]},
                       {offsetof(adam_push, hyper), VKD_R, o->hyper},
                       {offsetof(adam_push, gnorm2), VKD_R, n2}};
    // p, g, m, v through texel views on a CPU device (a load there is a loop over lanes otherwise)
    uint32_t texel = (uint32_t)vkd_texel_ok(g, 4, p, p->pgrad, o->m[i], o->v[i]);
    // and 4 at a time through vec4 views when the tensors hold whole vec4s
    uint8_t vec4 = texel && vkd_vec4_ok(4, p, p->pgrad, o->m[i], o->v[i]);
    uint32_t sbuf;
    const char *shader = adam_shader(g, vec4, p, p->pgrad, o->m[i], o->v[i], &sbuf);
    vkd_texel tx[8];
    int nt = adam_bindings(tx, texel, vec4, sbuf);
    uint32_t per = vkd_elems_per_invocation(g);
    uint32_t spec[7] = {VKD_WG, texel, per, vec4, 0, pc.flags, 0}, gx, gy;
    uint64_t units = vec4 ? p->numel / 4 : p->numel;
    vkd_grid_1d((units + per - 1) / per, VKD_WG, &gx, &gy);
    vkd_graph_dispatch_texel(g, o->cfg.decoupled ? "adamw" : "adam", shader, spec, 7, gx, gy, 1, &pc, sizeof pc, args,
                             n2 ? 6 : 5, tx, nt);
}

// One dispatch for the tensors of a multi-tensor group, a workgroup per chunk;
// vec4: 4 elements at a time (vkd_multi_vec4).
static void adam_group(vkd_graph *g, vkd_adam *o, const vkd_multi *mg, vkd_tensor *n2, int vec4) {
    adam_push pc = adam_push_of(o, 0, n2 != NULL);
    vkd_arg args[7] = {{offsetof(adam_push, p), VKD_RW, mg->span[0]},
                       {offsetof(adam_push, g), VKD_RW, mg->span[1]},
                       {offsetof(adam_push, m), VKD_RW, mg->span[2]},
                       {offsetof(adam_push, v), VKD_RW, mg->span[3]},
                       {offsetof(adam_push, hyper), VKD_R, o->hyper},
                       {offsetof(adam_push, table), VKD_R, mg->table},
                       {offsetof(adam_push, gnorm2), VKD_R, n2}};
    uint32_t texel = (uint32_t)vkd_texel_ok(g, 4, mg->span[0], mg->span[1], mg->span[2], mg->span[3]);
    if (vec4 && !texel) vkd_graph_fail(g, "internal: adam: vec4 chunks without texel views");
    uint32_t sbuf;
    const char *shader = adam_shader(g, vec4, mg->span[0], mg->span[1], mg->span[2], mg->span[3], &sbuf);
    vkd_texel tx[8];
    int nt = adam_bindings(tx, texel, (uint8_t)vec4, sbuf);
    uint32_t spec[7] = {VKD_WG, texel, vkd_elems_per_invocation(g), (uint32_t)vec4, 1, pc.flags, mg->ragged}, gx, gy;
    vkd_grid_1d(mg->nchunks, 1, &gx, &gy);
    vkd_graph_dispatch_texel(g, o->cfg.decoupled ? "adamw" : "adam", shader, spec, 7, gx, gy, 1, &pc, sizeof pc, args,
                             n2 ? 7 : 6, tx, nt);
}

int vkd_adam_record(vkd_graph *g, vkd_adam *o) { return vkd_adam_record_part(g, o, NULL); }

int vkd_adam_record_part(vkd_graph *g, vkd_adam *o, const uint8_t *skip) {
    int guard = o->cfg.grad_clip > 0 || o->cfg.skip_nonfinite;
    // the norm of every gradient, also of those another rank updates: each rank clips
    // (and skips a non-finite step) exactly as one rank updating all of them would
    vkd_tensor *n2 = guard ? global_norm2(g, o) : NULL;
    if (n2) vkd_copy(g, o->gnorm, n2);
    vkd_multi mg[VKD_MULTI_GROUPS];
    vkd_tensor **const roles[4] = {o->p, o->g, o->m, o->v};
    // a workgroup's chunk: what the per-tensor shader gives one workgroup, in floats or in
    // vec4s (on lavapipe one vec4 gather costs about what one float's does)
    int vec4 = vkd_multi_vec4(g, 4, roles, o->n, skip);
    uint64_t chunk = (uint64_t)VKD_WG * vkd_elems_per_invocation(g) * (vec4 ? 4 : 1);
    int ng = vkd_multi_plan(g, 4, roles, o->n, skip, chunk, mg);
    for (int k = 0; k < ng; k++) adam_group(g, o, &mg[k], n2, vec4);
    for (int i = 0; ng == 0 && i < o->n && !vkd_graph_failed(g); i++)
        if (!skip || !skip[i]) adam_one_tensor(g, o, i, n2);
    // the skipped gradients start the next step from zero too, as the update leaves its own
    for (int i = 0; skip && i < o->n && !vkd_graph_failed(g); i++)
        if (skip[i]) vkd_graph_zero(g, "zero", o->g[i]);
    return vkd_graph_failed(g) ? -1 : 0;
}

float vkd_ema_beta(double halflife_kimg, double rampup_ratio, int64_t step, int batch) {
    double hl = halflife_kimg * 1000.0;
    if (rampup_ratio > 0) hl = fmin(hl, rampup_ratio * (double)step * batch);
    return hl > 0 ? (float)pow(0.5, batch / hl) : 0.0f;
}

int vkd_ema_record(vkd_graph *g, vkd_tensor **ema, vkd_tensor **params, int n, float beta) {
    return vkd_ema_record_t(g, ema, params, n, beta, NULL);
}

// ema_wide, or ema_sb where e's quads are written through storage binding 0 (e is args[0])
static const char *ema_shader(vkd_graph *g, int vec4, const vkd_tensor *e, vkd_texel *tx, int *nt) {
    const char *wide = vkd_store_variant(g, vec4, "ema", "ema_wide");
    return vkd_sbuf_variant(g, wide, "ema_wide", "ema_sb", e, tx, nt, offsetof(ema_push, e_sfirst));
}

static void ema_one_tensor(vkd_graph *g, vkd_tensor *e, vkd_tensor *p, float beta, vkd_tensor *beta_t) {
    ema_push pc = {.n = (uint32_t)e->numel, .beta = beta, .flags = beta_t ? 1u : 0u};
    vkd_arg args[3] = {{offsetof(ema_push, e), VKD_RW, e},
                       {offsetof(ema_push, p), VKD_R, p},
                       {offsetof(ema_push, beta_t), VKD_R, beta_t}};
    uint32_t texel = (uint32_t)vkd_texel_ok(g, 2, e, p);
    uint8_t vec4 = texel && vkd_vec4_ok(2, e, p);  // 4 at a time when both hold whole vec4s
    vkd_texel tx[3] = {{0, 0, offsetof(ema_push, e_first), vec4}, {1, 1, offsetof(ema_push, p_first), vec4}};
    uint32_t per = vkd_elems_per_invocation(g);
    uint32_t spec[6] = {VKD_WG, texel, per, 0, vec4, 0}, gx, gy;
    uint64_t units = vec4 ? e->numel / 4 : e->numel;
    vkd_grid_1d((units + per - 1) / per, VKD_WG, &gx, &gy);
    int nt = texel ? 2 : 0;
    const char *shader = ema_shader(g, vec4, e, tx, &nt);
    vkd_graph_dispatch_texel(g, "ema", shader, spec, 6, gx, gy, 1, &pc, sizeof pc, args, beta_t ? 3 : 2, tx, nt);
}

static void ema_group(vkd_graph *g, const vkd_multi *mg, float beta, vkd_tensor *beta_t, int vec4) {
    ema_push pc = {.beta = beta, .flags = beta_t ? 1u : 0u};
    vkd_arg args[4] = {{offsetof(ema_push, e), VKD_RW, mg->span[0]},
                       {offsetof(ema_push, p), VKD_R, mg->span[1]},
                       {offsetof(ema_push, table), VKD_R, mg->table},
                       {offsetof(ema_push, beta_t), VKD_R, beta_t}};
    uint32_t texel = (uint32_t)vkd_texel_ok(g, 2, mg->span[0], mg->span[1]);
    if (vec4 && !texel) vkd_graph_fail(g, "internal: ema: vec4 chunks without texel views");
    vkd_texel tx[3] = {{0, 0, offsetof(ema_push, e_first), (uint8_t)vec4},
                       {1, 1, offsetof(ema_push, p_first), (uint8_t)vec4}};
    uint32_t spec[6] = {VKD_WG, texel, vkd_elems_per_invocation(g), 1, (uint32_t)vec4, mg->ragged}, gx, gy;
    vkd_grid_1d(mg->nchunks, 1, &gx, &gy);
    int nt = texel ? 2 : 0;
    const char *shader = ema_shader(g, vec4, mg->span[0], tx, &nt);
    vkd_graph_dispatch_texel(g, "ema", shader, spec, 6, gx, gy, 1, &pc, sizeof pc, args, beta_t ? 4 : 3, tx, nt);
}

int vkd_ema_record_t(vkd_graph *g, vkd_tensor **ema, vkd_tensor **params, int n, float beta, vkd_tensor *beta_t) {
    for (int i = 0; i < n; i++)
        if (ema[i]->numel != params[i]->numel) {
            vkd_graph_fail(g, "ema: '%s' and '%s' differ in size", ema[i]->name, params[i]->name);
            return -1;
        }
    vkd_multi mg[VKD_MULTI_GROUPS];
    vkd_tensor **const roles[2] = {ema, params};
    int vec4 = vkd_multi_vec4(g, 2, roles, n, NULL);
    uint64_t chunk = (uint64_t)VKD_WG * vkd_elems_per_invocation(g) * (vec4 ? 4 : 1);
    int ng = vkd_multi_plan(g, 2, roles, n, NULL, chunk, mg);
    for (int k = 0; k < ng; k++) ema_group(g, &mg[k], beta, beta_t, vec4);
    for (int i = 0; ng == 0 && i < n && !vkd_graph_failed(g); i++) ema_one_tensor(g, ema[i], params[i], beta, beta_t);
    return vkd_graph_failed(g) ? -1 : 0;
}
