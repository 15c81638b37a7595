// vkdistill's residual MLP denoiser for low-dimensional data (2-D mixtures),
// specified with its PyTorch twin in tools/reference/models.py (MLPDenoiser):
//   emb = SiLU(map_emb(posemb(c_noise)) [+ map_label(y)])
//   h = input(x); h += fc2(SiLU(fc1(N(h)) + emb_i(emb))) per block
//   F = output(SiLU(N_out(h)))
// "norm": "layer" (the default, and every checkpoint before it existed): N is a
// LayerNorm; "none": N is the identity. A LayerNorm on input(x) = W x + b is
// invariant to the scale of x while b is small, so a one-step generator
// G(z) = c_skip sigma z + c_out F(c_in sigma z) (c_skip 0.04 at sigma 2.5) sees
// almost only the direction of z and draws a 1-D curve; "none" keeps |z|.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/model.h"
#include "ops/ops.h"

struct vkd_mlp {
    int dim, hidden, depth, emb_dim, label_dim, norm;
};

static void lin_params(vkd_model *m, const char *p, int in, int out, int bias) {
    char n[96];
    snprintf(n, sizeof n, "%s.weight", p);
    vkd_model_add(m, n, 2, (int64_t[]){out, in}, 1, VKD_INIT_XAVIER_UNIFORM, in, out, 1.0);
    if (bias) {
        snprintf(n, sizeof n, "%s.bias", p);
        vkd_model_add(m, n, 1, (int64_t[]){out}, 1, VKD_INIT_ZERO, 0, 0, 0);
    }
}

static void ln_params(vkd_model *m, const char *p, int c) {
    char n[96];
    snprintf(n, sizeof n, "%s.weight", p);
    vkd_model_add(m, n, 1, (int64_t[]){c}, 1, VKD_INIT_ONE, 0, 0, 0);
    snprintf(n, sizeof n, "%s.bias", p);
    vkd_model_add(m, n, 1, (int64_t[]){c}, 1, VKD_INIT_ZERO, 0, 0, 0);
}

int vkd_mlp_init(vkd_model *m, vkd_cfg *c) {
    vkd_mlp *p = calloc(1, sizeof *p);
    m->mlp = p;
    p->dim = vkd_cfg_int(c, "dim", 1, 0, 1, 1 << 20);
    p->hidden = vkd_cfg_int(c, "hidden", 0, 128, 2, 1 << 16);
    p->depth = vkd_cfg_int(c, "depth", 0, 3, 0, 256);
    p->emb_dim = vkd_cfg_int(c, "emb_dim", 0, 32, 2, 1 << 16);
    p->label_dim = vkd_cfg_int(c, "label_dim", 0, 0, 0, 1 << 16);
    static const char *const norms[] = {"layer", "none", NULL};
    const char *nm = vkd_cfg_str(c, "norm", 0, "layer", norms);
    p->norm = !nm || strcmp(nm, "none") != 0;
    if (vkd_cfg_error(c)) return -1;
    if (p->emb_dim % 2) {
        snprintf(m->err, sizeof m->err, "%s: field 'emb_dim': %d must be even", m->name, p->emb_dim);
        return -1;
    }
    m->sample_ndim = 1;
    m->sample_shape[0] = p->dim;
    m->label_dim = p->label_dim;
    lin_params(m, "map_emb", p->emb_dim, p->hidden, 1);
    if (p->label_dim) lin_params(m, "map_label", p->label_dim, p->hidden, 0);
    lin_params(m, "input", p->dim, p->hidden, 1);
    char n[64];
    for (int i = 0; i < p->depth; i++) {
        snprintf(n, sizeof n, "blocks.%d.norm", i);
        if (p->norm) ln_params(m, n, p->hidden);
        snprintf(n, sizeof n, "blocks.%d.fc1", i);
        lin_params(m, n, p->hidden, p->hidden, 1);
        snprintf(n, sizeof n, "blocks.%d.emb", i);
        lin_params(m, n, p->hidden, p->hidden, 1);
        snprintf(n, sizeof n, "blocks.%d.fc2", i);
        lin_params(m, n, p->hidden, p->hidden, 1);
    }
    if (p->norm) ln_params(m, "out_norm", p->hidden);
    lin_params(m, "output", p->hidden, p->dim, 1);
    return m->err[0] ? -1 : 0;
}

void vkd_mlp_free(vkd_mlp *p) { free(p); }

#define P(...) vkd_model_get(m, __VA_ARGS__)

vkd_tensor *vkd_mlp_forward(vkd_graph *g, vkd_model *m, vkd_tensor *x, vkd_tensor *c_noise, vkd_tensor *labels) {
    vkd_mlp *p = m->mlp;
    vkd_tensor *e = vkd_linear(g, vkd_timestep_embedding(g, c_noise, p->emb_dim, 10000.0f, 1), P("map_emb.weight"),
                               P("map_emb.bias"));
    if (p->label_dim && labels) e = vkd_add(g, e, vkd_linear(g, labels, P("map_label.weight"), NULL));
    e = vkd_silu(g, e);
    vkd_tensor *h = vkd_linear(g, x, P("input.weight"), P("input.bias"));
    for (int i = 0; i < p->depth; i++) {
        vkd_tensor *t = p->norm ? vkd_layernorm(g, h, P("blocks.%d.norm.weight", i), P("blocks.%d.norm.bias", i), 1e-5f) : h;
        t = vkd_linear(g, t, P("blocks.%d.fc1.weight", i), P("blocks.%d.fc1.bias", i));
        t = vkd_linear_add(g, e, P("blocks.%d.emb.weight", i), P("blocks.%d.emb.bias", i), t);
        h = vkd_linear_add(g, vkd_silu(g, t), P("blocks.%d.fc2.weight", i), P("blocks.%d.fc2.bias", i), h);
    }
    if (p->norm) h = vkd_layernorm(g, h, P("out_norm.weight"), P("out_norm.bias"), 1e-5f);
    h = vkd_silu(g, h);
    return vkd_linear(g, h, P("output.weight"), P("output.bias"));
}
