// EDM's SongUNet (DDPM++ and NCSN++), built from the same constructor
// arguments and with the same tensor names as NVlabs/edm training/networks.py
// (under EDMPrecond, so every name starts with "model."). The node list below
// is the ModuleDict order of the original; forward() walks it the same way.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/model.h"
#include "ops/ops.h"

enum { N_CONV, N_BLOCK, N_AUX_DOWN, N_AUX_SKIP, N_AUX_RESIDUAL, N_AUX_UP, N_AUX_NORM, N_AUX_CONV };

typedef struct {
    char name[64];  // e.g. "enc.16x16_block0"
    int kind;
    int cin, cout;
    int up, down, attention, has_skip;
    int bottleneck;  // the middle block whose output is the bottleneck (dec.RxR_in1)
} unet_node;

#define UNET_MAX_NODES 128
#define UNET_MAX_LEVELS 8

struct vkd_unet {
    int img_resolution, in_channels, out_channels, label_dim, augment_dim;
    int model_channels, channel_mult[UNET_MAX_LEVELS], nlevels, channel_mult_emb, num_blocks;
    int attn_res[UNET_MAX_LEVELS], nattn;
    float dropout;
    int fourier, channel_mult_noise, encoder_type, decoder_type;  // encoder: 0 standard 1 skip 2 residual; decoder: 0 standard 1 skip
    int filter[8], nfilter;
    int nenc, ndec;
    int bottleneck_c, bottleneck_res;
    unet_node enc[UNET_MAX_NODES], dec[UNET_MAX_NODES];
    // depthwise resample filters tiled to C channels (not in the state dict; derived from resample_filter)
    struct { int c, up; vkd_tensor *t; } filt[16];
    int nfilt;
};

static const float SKIP_SCALE = 0.70710678118654752f;  // sqrt(0.5)

static int groups_for(int c) { return c / 4 < 32 ? c / 4 : 32; }  // EDM GroupNorm: min(32, C // 4)

// ---------------------------------------------------------------- construction
static void add_linear(vkd_model *m, const char *p, int in, int out, int bias, double gain) {
    char n[128];
    snprintf(n, sizeof n, "model.%s.weight", p);
    vkd_model_add(m, n, 2, (int64_t[]){out, in}, 1, VKD_INIT_XAVIER_UNIFORM, in, out, gain);
    if (bias) {
        snprintf(n, sizeof n, "model.%s.bias", p);
        vkd_model_add(m, n, 1, (int64_t[]){out}, 1, VKD_INIT_ZERO, 0, 0, 0);
    }
}

// EDM Conv2d: weight/bias when kernel > 0; a resample_filter buffer when it resamples.
static void add_conv(vkd_model *m, vkd_unet *u, const char *p, int cin, int cout, int kernel, int resample,
                     double gain) {
    char n[128];
    if (kernel) {
        snprintf(n, sizeof n, "model.%s.weight", p);
        vkd_model_add(m, n, 4, (int64_t[]){cout, cin, kernel, kernel}, 1, VKD_INIT_XAVIER_UNIFORM,
                      (double)cin * kernel * kernel, (double)cout * kernel * kernel, gain);
        snprintf(n, sizeof n, "model.%s.bias", p);
        vkd_model_add(m, n, 1, (int64_t[]){cout}, 1, VKD_INIT_ZERO, 0, 0, 0);
    }
    if (resample) {
        snprintf(n, sizeof n, "model.%s.resample_filter", p);
        int k = u->nfilter;
        vkd_tensor *t = vkd_model_add(m, n, 4, (int64_t[]){1, 1, k, k}, 0, VKD_INIT_CUSTOM, 0, 0, 0);
        if (t) {
            float h[64], s = 0;
            for (int i = 0; i < k; i++) s += (float)u->filter[i];
            for (int i = 0; i < k; i++)
                for (int j = 0; j < k; j++) h[i * k + j] = (float)(u->filter[i] * u->filter[j]) / (s * s);
            vkd_tensor_upload(t, h);
        }
    }
}

static void add_groupnorm(vkd_model *m, const char *p, int c) {
    char n[128];
    snprintf(n, sizeof n, "model.%s.weight", p);
    vkd_model_add(m, n, 1, (int64_t[]){c}, 1, VKD_INIT_ONE, 0, 0, 0);
    snprintf(n, sizeof n, "model.%s.bias", p);
    vkd_model_add(m, n, 1, (int64_t[]){c}, 1, VKD_INIT_ZERO, 0, 0, 0);
}

// UNetBlock with SongUNet's block_kwargs: num_heads 1, adaptive_scale False,
// resample_proj True, xavier_uniform init, conv1/proj at 1e-5, qkv at sqrt(0.2).
static unet_node *add_block(vkd_model *m, vkd_unet *u, unet_node *nodes, int *count, const char *name, int cin,
                            int cout, int up, int down, int attention) {
    unet_node *nd = &nodes[(*count)++];
    snprintf(nd->name, sizeof nd->name, "%s", name);
    nd->kind = N_BLOCK, nd->cin = cin, nd->cout = cout, nd->up = up, nd->down = down, nd->attention = attention;
    nd->has_skip = cout != cin || up || down;
    int emb = u->model_channels * u->channel_mult_emb;
    char p[96];
#define SUB(s) (snprintf(p, sizeof p, "%s.%s", name, s), p)
    add_groupnorm(m, SUB("norm0"), cin);
    add_conv(m, u, SUB("conv0"), cin, cout, 3, up || down, 1.0);
    add_linear(m, SUB("affine"), emb, cout, 1, 1.0);
    add_groupnorm(m, SUB("norm1"), cout);
    add_conv(m, u, SUB("conv1"), cout, cout, 3, 0, 1e-5);
    if (nd->has_skip) add_conv(m, u, SUB("skip"), cin, cout, 1, up || down, 1.0);
    if (attention) {
        add_groupnorm(m, SUB("norm2"), cout);
        add_conv(m, u, SUB("qkv"), cout, cout * 3, 1, 0, sqrt(0.2));
        add_conv(m, u, SUB("proj"), cout, cout, 1, 0, 1e-5);
    }
#undef SUB
    return nd;
}

static unet_node *add_node(vkd_unet *u, unet_node *nodes, int *count, const char *name, int kind, int cin, int cout) {
    unet_node *nd = &nodes[(*count)++];
    memset(nd, 0, sizeof *nd);
    snprintf(nd->name, sizeof nd->name, "%s", name);
    nd->kind = kind, nd->cin = cin, nd->cout = cout;
    (void)u;
    return nd;
}

int vkd_unet_init(vkd_model *m, vkd_cfg *c) {
    vkd_unet *u = calloc(1, sizeof *u);
    m->unet = u;
    u->img_resolution = vkd_cfg_int(c, "img_resolution", 1, 0, 4, 4096);
    u->in_channels = vkd_cfg_int(c, "in_channels", 1, 0, 1, 4096);
    u->out_channels = vkd_cfg_int(c, "out_channels", 1, 0, 1, 4096);
    u->label_dim = vkd_cfg_int(c, "label_dim", 0, 0, 0, 100000);
    u->augment_dim = vkd_cfg_int(c, "augment_dim", 0, 0, 0, 1024);
    u->model_channels = vkd_cfg_int(c, "model_channels", 0, 128, 4, 65536);
    int defmult[4] = {1, 2, 2, 2};
    if (vkd_cfg_has(c, "channel_mult")) u->nlevels = vkd_cfg_int_list(c, "channel_mult", 1, u->channel_mult, UNET_MAX_LEVELS, 1, 64);
    else memcpy(u->channel_mult, defmult, sizeof defmult), u->nlevels = 4;
    u->channel_mult_emb = vkd_cfg_int(c, "channel_mult_emb", 0, 4, 1, 64);
    u->num_blocks = vkd_cfg_int(c, "num_blocks", 0, 4, 1, 64);
    if (vkd_cfg_has(c, "attn_resolutions"))
        u->nattn = vkd_cfg_int_list(c, "attn_resolutions", 1, u->attn_res, UNET_MAX_LEVELS, 1, 1 << 16);
    else u->attn_res[0] = 16, u->nattn = 1;
    u->dropout = (float)vkd_cfg_num(c, "dropout", 0, 0.10, 0.0, 0.99);
    vkd_cfg_num(c, "label_dropout", 0, 0, 0.0, 1.0);  // used by teacher training (issue 4), accepted here
    static const char *const emb_types[] = {"positional", "fourier", NULL};
    static const char *const enc_types[] = {"standard", "skip", "residual", NULL};
    static const char *const dec_types[] = {"standard", "skip", NULL};
    const char *et = vkd_cfg_str(c, "embedding_type", 0, "positional", emb_types);
    u->fourier = et && strcmp(et, "fourier") == 0;
    u->channel_mult_noise = vkd_cfg_int(c, "channel_mult_noise", 0, 1, 1, 16);
    const char *en = vkd_cfg_str(c, "encoder_type", 0, "standard", enc_types);
    u->encoder_type = !en ? 0 : strcmp(en, "skip") == 0 ? 1 : strcmp(en, "residual") == 0 ? 2 : 0;
    const char *de = vkd_cfg_str(c, "decoder_type", 0, "standard", dec_types);
    u->decoder_type = de && strcmp(de, "skip") == 0;
    if (vkd_cfg_has(c, "resample_filter")) u->nfilter = vkd_cfg_int_list(c, "resample_filter", 1, u->filter, 8, 1, 1000);
    else u->filter[0] = u->filter[1] = 1, u->nfilter = 2;
    if (vkd_cfg_error(c)) return -1;

    // Consistency checks the original would hit as shape errors deep inside.
    const char *cfgname = m->name;
    int mc = u->model_channels;
    if (u->nlevels < 1) {
        snprintf(m->err, sizeof m->err, "%s: field 'channel_mult': needs at least one level", cfgname);
        return -1;
    }
    if (u->img_resolution % (1 << (u->nlevels - 1))) {
        snprintf(m->err, sizeof m->err,
                 "%s: field 'img_resolution': %d is not divisible by 2^%d (channel_mult has %d levels)", cfgname,
                 u->img_resolution, u->nlevels - 1, u->nlevels);
        return -1;
    }
    for (int l = 0; l < u->nlevels; l++) {
        int ch = mc * u->channel_mult[l];
        if (u->channel_mult[l] < 1 || ch % 4 || ch % groups_for(ch)) {
            snprintf(m->err, sizeof m->err,
                     "%s: field 'channel_mult[%d]': %d channels cannot be split into GroupNorm groups of 4 or more", cfgname,
                     l, ch);
            return -1;
        }
    }
    if (mc % 4 || (mc * u->channel_mult_noise) % 2) {
        snprintf(m->err, sizeof m->err, "%s: field 'model_channels': %d must be a multiple of 4", cfgname, mc);
        return -1;
    }
    if (u->nfilter < 1 || (u->nfilter != 2 && u->nfilter % 2)) {
        snprintf(m->err, sizeof m->err, "%s: field 'resample_filter': expected [1,1] or an even-length filter like [1,3,3,1]",
                 cfgname);
        return -1;
    }
    m->sample_ndim = 3;
    m->sample_shape[0] = u->in_channels, m->sample_shape[1] = m->sample_shape[2] = u->img_resolution;
    m->label_dim = u->label_dim;
    if (u->in_channels != u->out_channels) {
        snprintf(m->err, sizeof m->err, "%s: fields 'in_channels' (%d) and 'out_channels' (%d) must match for a denoiser",
                 cfgname, u->in_channels, u->out_channels);
        return -1;
    }

    int emb = mc * u->channel_mult_emb, noise = mc * u->channel_mult_noise;
    // Mapping (registration order = the PyTorch state_dict order).
    if (u->fourier) {
        vkd_tensor *fr = vkd_model_add(m, "model.map_noise.freqs", 1, (int64_t[]){noise / 2}, 0, VKD_INIT_NORMAL, 0, 0, 16);
        (void)fr;
    }
    if (u->label_dim) add_linear(m, "map_label", u->label_dim, noise, 1, 1.0);
    if (u->augment_dim) add_linear(m, "map_augment", u->augment_dim, noise, 0, 1.0);
    add_linear(m, "map_layer0", noise, emb, 1, 1.0);
    add_linear(m, "map_layer1", emb, emb, 1, 1.0);

    // Encoder
    int cout = u->in_channels, caux = u->in_channels;
    int skips[UNET_MAX_NODES], nskips = 0;
    char name[64];
    for (int level = 0; level < u->nlevels; level++) {
        int res = u->img_resolution >> level;
        if (level == 0) {
            int cin = cout;
            cout = mc;
            snprintf(name, sizeof name, "enc.%dx%d_conv", res, res);
            add_node(u, u->enc, &u->nenc, name, N_CONV, cin, cout);
            add_conv(m, u, name, cin, cout, 3, 0, 1.0);
        } else {
            snprintf(name, sizeof name, "enc.%dx%d_down", res, res);
            add_block(m, u, u->enc, &u->nenc, name, cout, cout, 0, 1, 0);
            if (u->encoder_type == 1) {
                snprintf(name, sizeof name, "enc.%dx%d_aux_down", res, res);
                add_node(u, u->enc, &u->nenc, name, N_AUX_DOWN, caux, caux);
                add_conv(m, u, name, caux, caux, 0, 1, 1.0);
                snprintf(name, sizeof name, "enc.%dx%d_aux_skip", res, res);
                add_node(u, u->enc, &u->nenc, name, N_AUX_SKIP, caux, cout);
                add_conv(m, u, name, caux, cout, 1, 0, 1.0);
            }
            if (u->encoder_type == 2) {
                snprintf(name, sizeof name, "enc.%dx%d_aux_residual", res, res);
                add_node(u, u->enc, &u->nenc, name, N_AUX_RESIDUAL, caux, cout);
                add_conv(m, u, name, caux, cout, 3, 1, 1.0);
                caux = cout;
            }
        }
        for (int idx = 0; idx < u->num_blocks; idx++) {
            int cin = cout;
            cout = mc * u->channel_mult[level];
            int attn = 0;
            for (int a = 0; a < u->nattn; a++) attn |= u->attn_res[a] == res;
            snprintf(name, sizeof name, "enc.%dx%d_block%d", res, res, idx);
            add_block(m, u, u->enc, &u->nenc, name, cin, cout, 0, 0, attn);
        }
    }
    for (int i = 0; i < u->nenc; i++)
        if (!strstr(u->enc[i].name, "aux")) skips[nskips++] = u->enc[i].cout;

    // Decoder
    for (int level = u->nlevels - 1; level >= 0; level--) {
        int res = u->img_resolution >> level;
        if (level == u->nlevels - 1) {
            snprintf(name, sizeof name, "dec.%dx%d_in0", res, res);
            add_block(m, u, u->dec, &u->ndec, name, cout, cout, 0, 0, 1);
            snprintf(name, sizeof name, "dec.%dx%d_in1", res, res);
            add_block(m, u, u->dec, &u->ndec, name, cout, cout, 0, 0, 0)->bottleneck = 1;
            u->bottleneck_c = cout, u->bottleneck_res = res;
        } else {
            snprintf(name, sizeof name, "dec.%dx%d_up", res, res);
            add_block(m, u, u->dec, &u->ndec, name, cout, cout, 1, 0, 0);
        }
        for (int idx = 0; idx <= u->num_blocks; idx++) {
            int cin = cout + skips[--nskips];
            cout = mc * u->channel_mult[level];
            int attn = 0;
            for (int a = 0; a < u->nattn; a++) attn |= idx == u->num_blocks && u->attn_res[a] == res;
            snprintf(name, sizeof name, "dec.%dx%d_block%d", res, res, idx);
            add_block(m, u, u->dec, &u->ndec, name, cin, cout, 0, 0, attn);
        }
        if (u->decoder_type == 1 || level == 0) {
            if (u->decoder_type == 1 && level < u->nlevels - 1) {
                snprintf(name, sizeof name, "dec.%dx%d_aux_up", res, res);
                add_node(u, u->dec, &u->ndec, name, N_AUX_UP, u->out_channels, u->out_channels);
                add_conv(m, u, name, u->out_channels, u->out_channels, 0, 1, 1.0);
            }
            snprintf(name, sizeof name, "dec.%dx%d_aux_norm", res, res);
            add_node(u, u->dec, &u->ndec, name, N_AUX_NORM, cout, cout);
            add_groupnorm(m, name, cout);
            snprintf(name, sizeof name, "dec.%dx%d_aux_conv", res, res);
            add_node(u, u->dec, &u->ndec, name, N_AUX_CONV, cout, u->out_channels);
            add_conv(m, u, name, cout, u->out_channels, 3, 0, 1e-5);
        }
    }
    return m->err[0] ? -1 : 0;
}

void vkd_unet_free(vkd_unet *u) {
    if (!u) return;
    for (int i = 0; i < u->nfilt; i++) vkd_tensor_free(u->filt[i].t);
    free(u);
}

// ---------------------------------------------------------------- forward
#define P(...) vkd_model_get(m, __VA_ARGS__)

// The depthwise FIR filter f (x) f / sum^2 tiled over C channels (x4 for up).
static vkd_tensor *filter_for(vkd_model *m, vkd_unet *u, int c, int up) {
    for (int i = 0; i < u->nfilt; i++)
        if (u->filt[i].c == c && u->filt[i].up == up) return u->filt[i].t;
    if (u->nfilt == 16) return NULL;
    int k = u->nfilter;
    vkd_tensor *t = vkd_tensor_new(m->ctx, up ? "resample_up" : "resample_down", 4, (int64_t[]){c, 1, k, k}, 0);
    if (!t) return NULL;
    float *h = malloc(sizeof(float) * c * k * k), s = 0;
    for (int i = 0; i < k; i++) s += (float)u->filter[i];
    for (int ch = 0; ch < c; ch++)
        for (int i = 0; i < k; i++)
            for (int j = 0; j < k; j++) h[(ch * k + i) * k + j] = (up ? 4.0f : 1.0f) * u->filter[i] * u->filter[j] / (s * s);
    vkd_tensor_upload(t, h);
    free(h);
    u->filt[u->nfilt].c = c, u->filt[u->nfilt].up = up, u->filt[u->nfilt].t = t;
    u->nfilt++;
    return t;
}

// EDM Conv2d.forward (non-fused): resample first, then the k x k convolution with padding k/2.
// add (may be NULL): a per-sample channel bias (N, Cout, 1, 1) added in the convolution's store.
static vkd_tensor *conv_add(vkd_graph *g, vkd_model *m, const char *p, vkd_tensor *x, int kernel, int up, int down,
                            vkd_tensor *add) {
    vkd_unet *u = m->unet;
    // A 1x1 convolution commutes with [1,1] (nearest) upsampling: conv(up(x)) + b = up(conv(x) + b),
    // the same products on a quarter of the pixels, then a copy of each (the up blocks' skips).
    if (up && kernel == 1 && !add && u->nfilter == 2 && !vkd_env_off("VKD_SKIP_LOWRES"))
        return vkd_upsample2x(g, vkd_conv2d(g, x, P("model.%s.weight", p), P("model.%s.bias", p), 1, 0, 0, 1));
    if (up && kernel && u->nfilter == 2)  // [1,1] upsampling read inside the convolution: nothing written for it
        return vkd_conv2d_up(g, x, P("model.%s.weight", p), P("model.%s.bias", p), add, kernel / 2);
    if (up || down) {
        int c = (int)vkd_tensor_dim(x, 1);
        int fpad = (u->nfilter - 1) / 2;
        if (u->nfilter == 2) x = up ? vkd_upsample2x(g, x) : vkd_avgpool2x(g, x);  // [1,1]: exact and cheaper
        else if (up) x = vkd_conv_transpose2d(g, x, filter_for(m, u, c, 1), NULL, 2, fpad, fpad, c);
        else x = vkd_conv2d(g, x, filter_for(m, u, c, 0), NULL, 2, fpad, fpad, c);
    }
    if (kernel) x = vkd_conv2d_add(g, x, P("model.%s.weight", p), P("model.%s.bias", p), add, 1, kernel / 2, kernel / 2, 1);
    return x;
}

static vkd_tensor *conv(vkd_graph *g, vkd_model *m, const char *p, vkd_tensor *x, int kernel, int up, int down) {
    return conv_add(g, m, p, x, kernel, up, down, NULL);
}

// (conv(x) + res) * skip_scale for a k x k convolution without resampling (padding k/2): EDM's
// residual connection, with the bits of conv then vkd_add_scaled and no pass of its own.
static vkd_tensor *conv_res(vkd_graph *g, vkd_model *m, const char *p, vkd_tensor *x, vkd_tensor *res) {
    vkd_tensor *w = P("model.%s.weight", p);
    int pad = w ? (int)vkd_tensor_dim(w, 2) / 2 : 0;
    return vkd_conv2d_res(g, x, w, P("model.%s.bias", p), res, SKIP_SCALE, 1, pad, pad, 1);
}

static vkd_tensor *groupnorm(vkd_graph *g, vkd_model *m, const char *p, vkd_tensor *x) {
    int c = (int)vkd_tensor_dim(x, 1);
    return vkd_groupnorm(g, x, P("model.%s.weight", p), P("model.%s.bias", p), groups_for(c), 1e-6f);
}

static vkd_tensor *groupnorm_silu(vkd_graph *g, vkd_model *m, const char *p, vkd_tensor *x) {
    int c = (int)vkd_tensor_dim(x, 1);
    return vkd_groupnorm_silu(g, x, P("model.%s.weight", p), P("model.%s.bias", p), groups_for(c), 1e-6f);
}

static vkd_tensor *block_forward(vkd_graph *g, vkd_model *m, const unet_node *nd, vkd_tensor *x, vkd_tensor *emb) {
    char p[96];
#define SUB(s) (snprintf(p, sizeof p, "%s.%s", nd->name, s), p)
    vkd_tensor *orig = x;
    // SUB reuses one buffer: one SUB per statement (argument order is unspecified in C).
    vkd_tensor *h = groupnorm_silu(g, m, SUB("norm0"), x);
    vkd_tensor *params = vkd_linear(g, emb, P("model.%s.affine.weight", nd->name), P("model.%s.affine.bias", nd->name));
    int64_t n = vkd_tensor_dim(emb, 0);
    params = vkd_reshape(g, params, 4, (int64_t[]){n, nd->cout, 1, 1});
    // conv0(h) + params, the add in the convolution's store (no pass of its own)
    x = conv_add(g, m, SUB("conv0"), h, 3, nd->up, nd->down, params);
    x = vkd_model_dropout(g, m, groupnorm_silu(g, m, SUB("norm1"), x), m->unet->dropout);
    vkd_tensor *s = nd->has_skip ? conv(g, m, SUB("skip"), orig, 1, nd->up, nd->down) : orig;
    // (conv1(x) + s) * skip_scale, the residual added in the convolution's store
    x = conv_res(g, m, SUB("conv1"), x, s);
    if (nd->attention) {
        vkd_tensor *hn = groupnorm(g, m, SUB("norm2"), x);
        vkd_tensor *qkv = conv(g, m, SUB("qkv"), hn, 1, 0, 0);
        vkd_tensor *a = vkd_attention_edm(g, qkv, 1);
        x = conv_res(g, m, SUB("proj"), a, x);
    }
#undef SUB
    return x;
}

int vkd_unet_bottleneck_shape(const vkd_model *m, int64_t shape[3]) {
    shape[0] = m->unet->bottleneck_c;
    shape[1] = shape[2] = m->unet->bottleneck_res;
    return 3;
}

vkd_tensor *vkd_unet_forward(vkd_graph *g, vkd_model *m, vkd_tensor *x, vkd_tensor *c_noise, vkd_tensor *labels,
                             vkd_tensor *augment, vkd_tensor **tap, int tap_only) {
    vkd_unet *u = m->unet;
    int64_t n = vkd_tensor_dim(x, 0);
    int noise = u->model_channels * u->channel_mult_noise;
    // Mapping: the embedding's [cos | sin] halves are swapped to [sin | cos] as in EDM.
    vkd_tensor *e = u->fourier ? vkd_fourier_embedding(g, c_noise, P("model.map_noise.freqs"))
                               : vkd_timestep_embedding(g, c_noise, noise, 10000.0f, 1);
    e = vkd_concat(g, vkd_slice(g, e, 1, noise / 2, noise / 2), vkd_slice(g, e, 1, 0, noise / 2), 1);
    if (u->label_dim) {
        if (!labels) labels = vkd_full(g, 2, (int64_t[]){n, u->label_dim}, 0.0f);
        e = vkd_add(g, e, vkd_linear(g, vkd_scale(g, labels, sqrtf((float)u->label_dim)), P("model.map_label.weight"),
                                     P("model.map_label.bias")));
    }
    // Augmentation labels are absent at sampling and in distillation (map_augment then contributes nothing).
    if (u->augment_dim && augment) e = vkd_add(g, e, vkd_linear(g, augment, P("model.map_augment.weight"), NULL));
    e = vkd_silu(g, vkd_linear(g, e, P("model.map_layer0.weight"), P("model.map_layer0.bias")));
    vkd_tensor *emb = vkd_silu(g, vkd_linear(g, e, P("model.map_layer1.weight"), P("model.map_layer1.bias")));

    vkd_tensor *skips[UNET_MAX_NODES];
    int nskips = 0;
    vkd_tensor *aux = x;
    for (int i = 0; i < u->nenc; i++) {
        const unet_node *nd = &u->enc[i];
        switch (nd->kind) {
        case N_AUX_DOWN: aux = conv(g, m, nd->name, aux, 0, 0, 1); break;
        case N_AUX_SKIP: x = skips[nskips - 1] = vkd_add(g, x, conv(g, m, nd->name, aux, 1, 0, 0)); break;
        case N_AUX_RESIDUAL: {
            // fused_resample down: conv3x3 with padding w_pad + f_pad, then the depthwise filter, stride 2, no padding.
            int pad = 1 + (u->nfilter - 1) / 2, cout = nd->cout;
            vkd_tensor *t = vkd_conv2d(g, aux, P("model.%s.weight", nd->name), NULL, 1, pad, pad, 1);
            t = u->nfilter == 2 ? vkd_avgpool2x(g, t) : vkd_conv2d(g, t, filter_for(m, u, cout, 0), NULL, 2, 0, 0, cout);
            t = vkd_add(g, t, vkd_reshape(g, P("model.%s.bias", nd->name), 4, (int64_t[]){1, cout, 1, 1}));
            x = skips[nskips - 1] = aux = vkd_add_scaled(g, x, t, SKIP_SCALE);
            break;
        }
        case N_CONV: x = conv(g, m, nd->name, x, 3, 0, 0); skips[nskips++] = x; break;
        default: x = block_forward(g, m, nd, x, emb); skips[nskips++] = x; break;
        }
    }
    aux = NULL;
    vkd_tensor *tmp = NULL;
    for (int i = 0; i < u->ndec; i++) {
        const unet_node *nd = &u->dec[i];
        switch (nd->kind) {
        case N_AUX_UP: aux = conv(g, m, nd->name, aux, 0, 1, 0); break;
        case N_AUX_NORM: tmp = groupnorm_silu(g, m, nd->name, x); break;
        case N_AUX_CONV:
            tmp = conv(g, m, nd->name, tmp, 3, 0, 0);
            aux = aux ? vkd_add(g, tmp, aux) : tmp;
            break;
        default:
            if (vkd_tensor_dim(x, 1) != nd->cin) x = vkd_concat(g, x, skips[--nskips], 1);
            x = block_forward(g, m, nd, x, emb);
            if (nd->bottleneck) {
                if (tap) *tap = x;
                if (tap_only) return NULL;
            }
        }
    }
    return aux;
}
