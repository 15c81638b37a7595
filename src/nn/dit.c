// DiT (Peebles & Xie) with adaLN-Zero blocks, with the constructor arguments
// and tensor names of facebookresearch/DiT models.py, used as the raw network
// F under EDM preconditioning: F(c_in x, t = 1000 c_noise, y).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/model.h"
#include "ops/ops.h"

struct vkd_dit {
    int input_size, patch_size, in_channels, hidden, depth, heads, mlp_hidden, num_classes, learn_sigma, table_rows;
};

static void linear_params(vkd_model *m, const char *p, int in, int out, vkd_init_mode init) {
    char n[128];
    snprintf(n, sizeof n, "%s.weight", p);
    vkd_model_add(m, n, 2, (int64_t[]){out, in}, 1, init, in, out, init == VKD_INIT_NORMAL ? 0.02 : 1.0);
    snprintf(n, sizeof n, "%s.bias", p);
    vkd_model_add(m, n, 1, (int64_t[]){out}, 1, VKD_INIT_ZERO, 0, 0, 0);
}

// DiT's fixed 2-D sin-cos position embedding: the first half encodes the
// column, the second the row, each as [sin | cos] over D/4 frequencies.
static void fill_pos_embed(float *pe, int d, int gs) {
    int q = d / 4;
    for (int i = 0; i < gs; i++)
        for (int j = 0; j < gs; j++) {
            float *row = pe + (size_t)(i * gs + j) * d;
            for (int k = 0; k < q; k++) {
                double omega = 1.0 / pow(10000.0, (double)k / q);
                row[k] = (float)sin(j * omega), row[q + k] = (float)cos(j * omega);
                row[2 * q + k] = (float)sin(i * omega), row[3 * q + k] = (float)cos(i * omega);
            }
        }
}

int vkd_dit_init(vkd_model *m, vkd_cfg *c) {
    vkd_dit *d = calloc(1, sizeof *d);
    m->dit = d;
    d->input_size = vkd_cfg_int(c, "input_size", 0, 32, 1, 4096);
    d->patch_size = vkd_cfg_int(c, "patch_size", 0, 2, 1, 64);
    d->in_channels = vkd_cfg_int(c, "in_channels", 0, 4, 1, 4096);
    d->hidden = vkd_cfg_int(c, "hidden_size", 0, 1152, 4, 65536);
    d->depth = vkd_cfg_int(c, "depth", 0, 28, 1, 1024);
    d->heads = vkd_cfg_int(c, "num_heads", 0, 16, 1, 1024);
    double ratio = vkd_cfg_num(c, "mlp_ratio", 0, 4.0, 0.25, 64.0);
    double drop = vkd_cfg_num(c, "class_dropout_prob", 0, 0.1, 0.0, 1.0);
    d->num_classes = vkd_cfg_int(c, "num_classes", 0, 1000, 0, 1000000);
    d->learn_sigma = vkd_cfg_bool(c, "learn_sigma", 0, 0);
    if (vkd_cfg_error(c)) return -1;
    d->mlp_hidden = (int)(d->hidden * ratio);
    if (d->input_size % d->patch_size) {
        snprintf(m->err, sizeof m->err, "%s: field 'input_size': %d is not divisible by patch_size %d", m->name,
                 d->input_size, d->patch_size);
        return -1;
    }
    if (d->hidden % d->heads || d->hidden % 4) {
        snprintf(m->err, sizeof m->err,
                 "model config: field 'hidden_size': %d must be divisible by num_heads (%d) and by 4", d->hidden, d->heads);
        return -1;
    }
    m->sample_ndim = 3;
    m->sample_shape[0] = d->in_channels, m->sample_shape[1] = m->sample_shape[2] = d->input_size;
    m->label_dim = d->num_classes;
    int D = d->hidden, p = d->patch_size, C = d->in_channels, gs = d->input_size / p, T = gs * gs;
    int cout = d->learn_sigma ? 2 * C : C;
    vkd_tensor *pe = vkd_model_add(m, "pos_embed", 3, (int64_t[]){1, T, D}, 0, VKD_INIT_CUSTOM, 0, 0, 0);
    if (pe) {
        float *h = malloc(sizeof(float) * T * D);
        fill_pos_embed(h, D, gs);
        vkd_tensor_upload(pe, h);
        free(h);
    }
    vkd_model_add(m, "x_embedder.proj.weight", 4, (int64_t[]){D, C, p, p}, 1, VKD_INIT_XAVIER_UNIFORM, C * p * p, D, 1);
    vkd_model_add(m, "x_embedder.proj.bias", 1, (int64_t[]){D}, 1, VKD_INIT_ZERO, 0, 0, 0);
    linear_params(m, "t_embedder.mlp.0", 256, D, VKD_INIT_NORMAL);
    linear_params(m, "t_embedder.mlp.2", D, D, VKD_INIT_NORMAL);
    if (d->num_classes) {
        d->table_rows = d->num_classes + (drop > 0 ? 1 : 0);  // the extra row is the null class
        vkd_model_add(m, "y_embedder.embedding_table.weight", 2, (int64_t[]){d->table_rows, D}, 1, VKD_INIT_NORMAL, 0,
                      0, 0.02);
    }
    char n[96];
    for (int b = 0; b < d->depth; b++) {
        snprintf(n, sizeof n, "blocks.%d.attn.qkv", b);
        linear_params(m, n, D, 3 * D, VKD_INIT_XAVIER_UNIFORM);
        snprintf(n, sizeof n, "blocks.%d.attn.proj", b);
        linear_params(m, n, D, D, VKD_INIT_XAVIER_UNIFORM);
        snprintf(n, sizeof n, "blocks.%d.mlp.fc1", b);
        linear_params(m, n, D, d->mlp_hidden, VKD_INIT_XAVIER_UNIFORM);
        snprintf(n, sizeof n, "blocks.%d.mlp.fc2", b);
        linear_params(m, n, d->mlp_hidden, D, VKD_INIT_XAVIER_UNIFORM);
        snprintf(n, sizeof n, "blocks.%d.adaLN_modulation.1", b);
        linear_params(m, n, D, 6 * D, VKD_INIT_ZERO);  // adaLN-Zero
    }
    linear_params(m, "final_layer.linear", D, p * p * cout, VKD_INIT_ZERO);
    linear_params(m, "final_layer.adaLN_modulation.1", D, 2 * D, VKD_INIT_ZERO);
    return m->err[0] ? -1 : 0;
}

void vkd_dit_free(vkd_dit *d) { free(d); }

#define P(...) vkd_model_get(m, __VA_ARGS__)

static vkd_tensor *lin(vkd_graph *g, vkd_model *m, vkd_tensor *x, const char *p) {
    return vkd_linear(g, x, P("%s.weight", p), P("%s.bias", p));
}

vkd_tensor *vkd_dit_forward(vkd_graph *g, vkd_model *m, vkd_tensor *x, vkd_tensor *c_noise, vkd_tensor *labels) {
    vkd_dit *d = m->dit;
    int64_t N = vkd_tensor_dim(x, 0);
    int D = d->hidden, p = d->patch_size, C = d->in_channels, gs = d->input_size / p, T = gs * gs;
    int cout = d->learn_sigma ? 2 * C : C;
    // Patch embedding: conv with kernel = stride = p, then (N, D, T) -> (N, T, D).
    vkd_tensor *h = vkd_conv2d(g, x, P("x_embedder.proj.weight"), P("x_embedder.proj.bias"), p, 0, 0, 1);
    h = vkd_permute(g, vkd_reshape(g, h, 3, (int64_t[]){N, D, T}), 3, (int[]){0, 2, 1});
    h = vkd_add(g, h, P("pos_embed"));
    vkd_tensor *t = vkd_timestep_embedding(g, vkd_scale(g, c_noise, 1000.0f), 256, 10000.0f, 0);
    vkd_tensor *c = lin(g, m, vkd_silu(g, lin(g, m, t, "t_embedder.mlp.0")), "t_embedder.mlp.2");
    if (d->num_classes) {
        vkd_tensor *oh = labels ? labels : vkd_full(g, 2, (int64_t[]){N, d->num_classes}, 0.0f);
        if (d->table_rows > d->num_classes) {
            // An all-zero label row selects the null class (the table's last row).
            vkd_tensor *null = vkd_add(g, vkd_scale(g, vkd_sum(g, oh, 1), -1.0f), m->one);
            oh = vkd_concat(g, oh, vkd_reshape(g, null, 2, (int64_t[]){N, 1}), 1);
        }
        c = vkd_add(g, c, vkd_matmul(g, oh, P("y_embedder.embedding_table.weight"), 0, 0));
    }
    vkd_tensor *cs = vkd_silu(g, c);
    char n[96];
    for (int b = 0; b < d->depth; b++) {
        snprintf(n, sizeof n, "blocks.%d.adaLN_modulation.1", b);
        vkd_tensor *mod = lin(g, m, cs, n), *ch[6];
        for (int k = 0; k < 6; k++) ch[k] = vkd_slice(g, mod, 1, (int64_t)k * D, D);
        vkd_tensor *a = vkd_modulate(g, vkd_layernorm(g, h, NULL, NULL, 1e-6f), ch[0], ch[1], 1.0f);
        snprintf(n, sizeof n, "blocks.%d.attn.qkv", b);
        a = vkd_attention_dit(g, lin(g, m, a, n), d->heads);
        snprintf(n, sizeof n, "blocks.%d.attn.proj", b);
        h = vkd_add(g, h, vkd_modulate(g, lin(g, m, a, n), NULL, ch[2], 0.0f));
        vkd_tensor *f = vkd_modulate(g, vkd_layernorm(g, h, NULL, NULL, 1e-6f), ch[3], ch[4], 1.0f);
        snprintf(n, sizeof n, "blocks.%d.mlp.fc1", b);
        f = vkd_gelu(g, lin(g, m, f, n));
        snprintf(n, sizeof n, "blocks.%d.mlp.fc2", b);
        h = vkd_add(g, h, vkd_modulate(g, lin(g, m, f, n), NULL, ch[5], 0.0f));
    }
    vkd_tensor *mod = lin(g, m, cs, "final_layer.adaLN_modulation.1");
    h = vkd_modulate(g, vkd_layernorm(g, h, NULL, NULL, 1e-6f), vkd_slice(g, mod, 1, 0, D), vkd_slice(g, mod, 1, D, D),
                     1.0f);
    h = lin(g, m, h, "final_layer.linear");  // (N, T, p*p*cout)
    // unpatchify: (N, gh, gw, p, p, C) -> (N, C, gh, p, gw, p) -> (N, C, H, W)
    h = vkd_reshape(g, h, 6, (int64_t[]){N, gs, gs, p, p, cout});
    h = vkd_permute(g, h, 6, (int[]){0, 5, 1, 3, 2, 4});
    h = vkd_reshape(g, h, 4, (int64_t[]){N, cout, d->input_size, d->input_size});
    if (d->learn_sigma) h = vkd_slice(g, h, 1, 0, C);  // the variance channels are not part of D
    return h;
}
