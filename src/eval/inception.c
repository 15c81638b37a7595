// The FID Inception-v3 (pytorch-fid's fid_inception_v3) on vkdistill's ops.
// The layer table below is built in state-dict order with the PyTorch names;
// forward() walks the blocks as torchvision's Inception3.forward does, with
// pytorch-fid's FID block variants. Each BasicConv2d (conv without bias +
// BatchNorm(eps 0.001) + ReLU) is one convolution with the BatchNorm folded
// into its weight and bias, then a ReLU.
#include "vkdistill/inception.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/graph.h"
#include "vkdistill/io.h"

#define BN_EPS 0.001
#define MAX_CONVS 96

typedef struct {
    char name[48];  // e.g. "Mixed_6b.branch7x7_2"
    int cin, cout, kh, kw, stride, ph, pw;
    vkd_tensor *w, *b;  // folded: w (cout, cin, kh, kw), b (cout)
} inc_conv;

struct vkd_inception {
    vkd_ctx *ctx;
    int nconv;
    inc_conv conv[MAX_CONVS];
    vkd_tensor *fc_w, *fc_b;
    int resize_mode;
    int failed;
};

// ---------------------------------------------------------------- the layer table
static void add(vkd_inception *net, const char *block, const char *layer, int cin, int cout, int kh, int kw, int stride,
                int ph, int pw) {
    if (net->failed || net->nconv == MAX_CONVS) {
        net->failed = 1;
        return;
    }
    inc_conv *c = &net->conv[net->nconv++];
    *c = (inc_conv){.cin = cin, .cout = cout, .kh = kh, .kw = kw, .stride = stride, .ph = ph, .pw = pw, .name = {0}};
    if (layer) snprintf(c->name, sizeof c->name, "%s.%s", block, layer);
    else snprintf(c->name, sizeof c->name, "%s", block);
    c->w = vkd_tensor_new(net->ctx, c->name, 4, (int64_t[]){cout, cin, kh, kw}, 0);
    c->b = vkd_tensor_new(net->ctx, c->name, 1, (int64_t[]){cout}, 0);
    if (!c->w || !c->b) net->failed = 1;
}

static void block_a(vkd_inception *n, const char *b, int cin, int pool_features) {
    add(n, b, "branch1x1", cin, 64, 1, 1, 1, 0, 0);
    add(n, b, "branch5x5_1", cin, 48, 1, 1, 1, 0, 0);
    add(n, b, "branch5x5_2", 48, 64, 5, 5, 1, 2, 2);
    add(n, b, "branch3x3dbl_1", cin, 64, 1, 1, 1, 0, 0);
    add(n, b, "branch3x3dbl_2", 64, 96, 3, 3, 1, 1, 1);
    add(n, b, "branch3x3dbl_3", 96, 96, 3, 3, 1, 1, 1);
    add(n, b, "branch_pool", cin, pool_features, 1, 1, 1, 0, 0);
}

static void block_b(vkd_inception *n, const char *b, int cin) {
    add(n, b, "branch3x3", cin, 384, 3, 3, 2, 0, 0);
    add(n, b, "branch3x3dbl_1", cin, 64, 1, 1, 1, 0, 0);
    add(n, b, "branch3x3dbl_2", 64, 96, 3, 3, 1, 1, 1);
    add(n, b, "branch3x3dbl_3", 96, 96, 3, 3, 2, 0, 0);
}

static void block_c(vkd_inception *n, const char *b, int cin, int c7) {
    add(n, b, "branch1x1", cin, 192, 1, 1, 1, 0, 0);
    add(n, b, "branch7x7_1", cin, c7, 1, 1, 1, 0, 0);
    add(n, b, "branch7x7_2", c7, c7, 1, 7, 1, 0, 3);
    add(n, b, "branch7x7_3", c7, 192, 7, 1, 1, 3, 0);
    add(n, b, "branch7x7dbl_1", cin, c7, 1, 1, 1, 0, 0);
    add(n, b, "branch7x7dbl_2", c7, c7, 7, 1, 1, 3, 0);
    add(n, b, "branch7x7dbl_3", c7, c7, 1, 7, 1, 0, 3);
    add(n, b, "branch7x7dbl_4", c7, c7, 7, 1, 1, 3, 0);
    add(n, b, "branch7x7dbl_5", c7, 192, 1, 7, 1, 0, 3);
    add(n, b, "branch_pool", cin, 192, 1, 1, 1, 0, 0);
}

static void block_d(vkd_inception *n, const char *b, int cin) {
    add(n, b, "branch3x3_1", cin, 192, 1, 1, 1, 0, 0);
    add(n, b, "branch3x3_2", 192, 320, 3, 3, 2, 0, 0);
    add(n, b, "branch7x7x3_1", cin, 192, 1, 1, 1, 0, 0);
    add(n, b, "branch7x7x3_2", 192, 192, 1, 7, 1, 0, 3);
    add(n, b, "branch7x7x3_3", 192, 192, 7, 1, 1, 3, 0);
    add(n, b, "branch7x7x3_4", 192, 192, 3, 3, 2, 0, 0);
}

static void block_e(vkd_inception *n, const char *b, int cin) {
    add(n, b, "branch1x1", cin, 320, 1, 1, 1, 0, 0);
    add(n, b, "branch3x3_1", cin, 384, 1, 1, 1, 0, 0);
    add(n, b, "branch3x3_2a", 384, 384, 1, 3, 1, 0, 1);
    add(n, b, "branch3x3_2b", 384, 384, 3, 1, 1, 1, 0);
    add(n, b, "branch3x3dbl_1", cin, 448, 1, 1, 1, 0, 0);
    add(n, b, "branch3x3dbl_2", 448, 384, 3, 3, 1, 1, 1);
    add(n, b, "branch3x3dbl_3a", 384, 384, 1, 3, 1, 0, 1);
    add(n, b, "branch3x3dbl_3b", 384, 384, 3, 1, 1, 1, 0);
    add(n, b, "branch_pool", cin, 192, 1, 1, 1, 0, 0);
}

void vkd_inception_free(vkd_inception *net) {
    if (!net) return;
    for (int i = 0; i < net->nconv; i++) vkd_tensor_free(net->conv[i].w), vkd_tensor_free(net->conv[i].b);
    vkd_tensor_free(net->fc_w);
    vkd_tensor_free(net->fc_b);
    free(net);
}

static int upload_d(vkd_tensor *t, const double *d) {
    int64_t n = vkd_tensor_numel(t);
    float *f = malloc(n * sizeof *f);
    for (int64_t i = 0; i < n; i++) f[i] = (float)d[i];
    int rc = vkd_tensor_upload(t, f);
    free(f);
    return rc;
}

// Random folded weights: N(0, 2/fan_in) convolutions, zero biases, N(0, 1/2048) fc (Philox on the host).
static int random_init(vkd_inception *net, uint64_t seed) {
    for (int i = 0; i <= net->nconv; i++) {
        vkd_tensor *t = i < net->nconv ? net->conv[i].w : net->fc_w;
        int64_t n = vkd_tensor_numel(t);
        double fan_in = (double)n / vkd_tensor_dim(t, 0);
        double *d = malloc(n * sizeof *d);
        for (int64_t j = 0; j < n; j++)
            d[j] = sqrt((i < net->nconv ? 2.0 : 1.0) / fan_in) * vkd_philox_normal(seed, (uint32_t)i, 0, (uint64_t)j);
        int rc = upload_d(t, d);
        free(d);
        if (rc) return -1;
    }
    return 0;
}

vkd_inception *vkd_inception_create(vkd_ctx *ctx, int random_init_seed_or_minus1) {
    vkd_inception *n = calloc(1, sizeof *n);
    n->ctx = ctx;
    n->resize_mode = VKD_RESIZE_HALF_PIXEL;
    add(n, "Conv2d_1a_3x3", NULL, 3, 32, 3, 3, 2, 0, 0);
    add(n, "Conv2d_2a_3x3", NULL, 32, 32, 3, 3, 1, 0, 0);
    add(n, "Conv2d_2b_3x3", NULL, 32, 64, 3, 3, 1, 1, 1);
    add(n, "Conv2d_3b_1x1", NULL, 64, 80, 1, 1, 1, 0, 0);
    add(n, "Conv2d_4a_3x3", NULL, 80, 192, 3, 3, 1, 0, 0);
    block_a(n, "Mixed_5b", 192, 32);
    block_a(n, "Mixed_5c", 256, 64);
    block_a(n, "Mixed_5d", 288, 64);
    block_b(n, "Mixed_6a", 288);
    block_c(n, "Mixed_6b", 768, 128);
    block_c(n, "Mixed_6c", 768, 160);
    block_c(n, "Mixed_6d", 768, 160);
    block_c(n, "Mixed_6e", 768, 192);
    block_d(n, "Mixed_7a", 768);
    block_e(n, "Mixed_7b", 1280);
    block_e(n, "Mixed_7c", 2048);
    n->fc_w = vkd_tensor_new(ctx, "fc.weight", 2, (int64_t[]){VKD_INCEPTION_CLASSES, VKD_INCEPTION_DIM}, 0);
    n->fc_b = vkd_tensor_new(ctx, "fc.bias", 1, (int64_t[]){VKD_INCEPTION_CLASSES}, 0);
    if (n->failed || n->nconv != 94 || !n->fc_w || !n->fc_b ||
        (random_init_seed_or_minus1 >= 0 && random_init(n, (uint64_t)random_init_seed_or_minus1))) {
        vkd_inception_free(n);
        return NULL;
    }
    return n;
}

void vkd_inception_set_resize_mode(vkd_inception *net, int mode) { net->resize_mode = mode; }

// ---------------------------------------------------------------- loading
static const char *const BN_PARTS[4] = {"weight", "bias", "running_mean", "running_var"};

static int known_name(const vkd_inception *net, const char *name) {
    if (!strcmp(name, "fc.weight") || !strcmp(name, "fc.bias")) return 1;
    for (int i = 0; i < net->nconv; i++) {
        size_t l = strlen(net->conv[i].name);
        if (strncmp(name, net->conv[i].name, l) || name[l] != '.') continue;
        const char *rest = name + l + 1;
        if (!strcmp(rest, "conv.weight")) return 1;
        for (int k = 0; k < 4; k++)
            if (!strncmp(rest, "bn.", 3) && !strcmp(rest + 3, BN_PARTS[k])) return 1;
    }
    return 0;
}

static float *read_t(vkd_st *st, const char *name, int ndim, const int64_t *shape, char *err, size_t errlen) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    float *h = malloc(n * sizeof *h);
    if (vkd_st_read_f32(st, name, ndim, shape, h, err, errlen)) {
        free(h);
        return NULL;
    }
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(h[i])) {
            snprintf(err, errlen, "tensor '%s': non-finite value at element %lld", name, (long long)i);
            free(h);
            return NULL;
        }
    return h;
}

int vkd_inception_load(vkd_inception *net, const char *path, char *err, size_t errlen) {
    if (errlen) err[0] = 0;
    vkd_st *st = vkd_st_open(path, err, errlen);
    if (!st) return -1;
    int rc = 0;
    char e2[400];
    for (int i = 0; i < vkd_st_count(st) && !rc; i++) {
        const char *nm = vkd_st_get(st, i)->name;
        size_t l = strlen(nm);
        if (l > 20 && !strcmp(nm + l - 20, ".num_batches_tracked")) continue;
        if (!known_name(net, nm)) {
            snprintf(err, errlen, "%s: unexpected tensor '%s' (not part of the FID Inception; convert pytorch-fid's "
                                  "weights with tools/convert_inception.py)", path, nm);
            rc = -1;
        }
    }
    // Everything is read and checked (names, shapes, finite, var + eps > 0) before anything is uploaded.
    int nc = net->nconv;
    double **wf = calloc(nc, sizeof *wf), **bf = calloc(nc, sizeof *bf);
    float *fcw = NULL, *fcb = NULL;
    for (int i = 0; i < nc && !rc; i++) {
        inc_conv *c = &net->conv[i];
        char name[96];
        snprintf(name, sizeof name, "%s.conv.weight", c->name);
        int64_t wshape[4] = {c->cout, c->cin, c->kh, c->kw}, k = (int64_t)c->cin * c->kh * c->kw;
        float *w = read_t(st, name, 4, wshape, e2, sizeof e2), *bn[4] = {0};
        for (int p = 0; p < 4 && w; p++) {
            snprintf(name, sizeof name, "%s.bn.%s", c->name, BN_PARTS[p]);
            if (!(bn[p] = read_t(st, name, 1, (int64_t[]){c->cout}, e2, sizeof e2))) break;
        }
        if (!w || !bn[3]) {
            snprintf(err, errlen, "%s: %s", path, e2);
            rc = -1;
        } else {
            wf[i] = malloc(c->cout * k * sizeof **wf);
            bf[i] = malloc(c->cout * sizeof **bf);
            for (int o = 0; o < c->cout && !rc; o++) {
                double var = bn[3][o];
                if (!(var + BN_EPS > 0)) {
                    snprintf(err, errlen, "%s: %s.bn.running_var[%d] = %g: variance + eps must be positive", path,
                             c->name, o, var);
                    rc = -1;
                    break;
                }
                double s = bn[0][o] / sqrt(var + BN_EPS);
                for (int64_t j = 0; j < k; j++) wf[i][o * k + j] = s * w[o * k + j];
                bf[i][o] = bn[1][o] - s * bn[2][o];
            }
        }
        free(w);
        for (int p = 0; p < 4; p++) free(bn[p]);
    }
    if (!rc) {
        fcw = read_t(st, "fc.weight", 2, (int64_t[]){VKD_INCEPTION_CLASSES, VKD_INCEPTION_DIM}, e2, sizeof e2);
        if (fcw) fcb = read_t(st, "fc.bias", 1, (int64_t[]){VKD_INCEPTION_CLASSES}, e2, sizeof e2);
        if (!fcb) {
            snprintf(err, errlen, "%s: %s", path, e2);
            rc = -1;
        }
    }
    for (int i = 0; i < nc && !rc; i++)
        if (upload_d(net->conv[i].w, wf[i]) || upload_d(net->conv[i].b, bf[i])) rc = -1;
    if (!rc && (vkd_tensor_upload(net->fc_w, fcw) || vkd_tensor_upload(net->fc_b, fcb))) rc = -1;
    if (rc && !err[0]) snprintf(err, errlen, "%s: %s", path, vkd_ctx_error(net->ctx));
    for (int i = 0; i < nc; i++) free(wf[i]), free(bf[i]);
    free(wf), free(bf), free(fcw), free(fcb);
    vkd_st_close(st);
    return rc;
}

// ---------------------------------------------------------------- forward
static vkd_tensor *cbr(vkd_graph *g, vkd_inception *net, const char *block, const char *layer, vkd_tensor *x) {
    char name[64];
    if (layer) snprintf(name, sizeof name, "%s.%s", block, layer);
    else snprintf(name, sizeof name, "%s", block);
    for (int i = 0; i < net->nconv; i++) {
        inc_conv *c = &net->conv[i];
        if (strcmp(c->name, name)) continue;
        return vkd_relu(g, vkd_conv2d(g, x, c->w, c->b, c->stride, c->ph, c->pw, 1));
    }
    vkd_graph_fail(g, "internal: inception has no layer '%s'", name);
    return NULL;
}

static vkd_tensor *cat4(vkd_graph *g, vkd_tensor *a, vkd_tensor *b, vkd_tensor *c, vkd_tensor *d) {
    vkd_tensor *t = vkd_concat(g, vkd_concat(g, a, b, 1), c, 1);
    return d ? vkd_concat(g, t, d, 1) : t;
}

// FIDInceptionA: the pool branch averages 3x3 without counting padding.
static vkd_tensor *fwd_a(vkd_graph *g, vkd_inception *n, const char *b, vkd_tensor *x) {
    vkd_tensor *b1 = cbr(g, n, b, "branch1x1", x);
    vkd_tensor *b5 = cbr(g, n, b, "branch5x5_2", cbr(g, n, b, "branch5x5_1", x));
    vkd_tensor *b3 = cbr(g, n, b, "branch3x3dbl_1", x);
    b3 = cbr(g, n, b, "branch3x3dbl_3", cbr(g, n, b, "branch3x3dbl_2", b3));
    vkd_tensor *bp = cbr(g, n, b, "branch_pool", vkd_avgpool2d(g, x, 3, 1, 1, 0));
    return cat4(g, b1, b5, b3, bp);
}

static vkd_tensor *fwd_b(vkd_graph *g, vkd_inception *n, const char *b, vkd_tensor *x) {
    vkd_tensor *b3 = cbr(g, n, b, "branch3x3", x);
    vkd_tensor *bd = cbr(g, n, b, "branch3x3dbl_1", x);
    bd = cbr(g, n, b, "branch3x3dbl_3", cbr(g, n, b, "branch3x3dbl_2", bd));
    return cat4(g, b3, bd, vkd_maxpool2d(g, x, 3, 2, 0), NULL);
}

// FIDInceptionC
static vkd_tensor *fwd_c(vkd_graph *g, vkd_inception *n, const char *b, vkd_tensor *x) {
    vkd_tensor *b1 = cbr(g, n, b, "branch1x1", x);
    vkd_tensor *b7 = cbr(g, n, b, "branch7x7_1", x);
    b7 = cbr(g, n, b, "branch7x7_3", cbr(g, n, b, "branch7x7_2", b7));
    vkd_tensor *bd = x;
    static const char *const dbl[5] = {"branch7x7dbl_1", "branch7x7dbl_2", "branch7x7dbl_3", "branch7x7dbl_4",
                                       "branch7x7dbl_5"};
    for (int i = 0; i < 5; i++) bd = cbr(g, n, b, dbl[i], bd);
    vkd_tensor *bp = cbr(g, n, b, "branch_pool", vkd_avgpool2d(g, x, 3, 1, 1, 0));
    return cat4(g, b1, b7, bd, bp);
}

static vkd_tensor *fwd_d(vkd_graph *g, vkd_inception *n, const char *b, vkd_tensor *x) {
    vkd_tensor *b3 = cbr(g, n, b, "branch3x3_2", cbr(g, n, b, "branch3x3_1", x));
    vkd_tensor *b7 = cbr(g, n, b, "branch7x7x3_1", x);
    b7 = cbr(g, n, b, "branch7x7x3_2", b7);
    b7 = cbr(g, n, b, "branch7x7x3_4", cbr(g, n, b, "branch7x7x3_3", b7));
    return cat4(g, b3, b7, vkd_maxpool2d(g, x, 3, 2, 0), NULL);
}

// FIDInceptionE_1 (max_pool 0: 3x3 average without padding) and E_2 (Mixed_7c: 3x3 max pool).
static vkd_tensor *fwd_e(vkd_graph *g, vkd_inception *n, const char *b, vkd_tensor *x, int max_pool) {
    vkd_tensor *b1 = cbr(g, n, b, "branch1x1", x);
    vkd_tensor *t = cbr(g, n, b, "branch3x3_1", x);
    vkd_tensor *b3 = vkd_concat(g, cbr(g, n, b, "branch3x3_2a", t), cbr(g, n, b, "branch3x3_2b", t), 1);
    t = cbr(g, n, b, "branch3x3dbl_2", cbr(g, n, b, "branch3x3dbl_1", x));
    vkd_tensor *bd = vkd_concat(g, cbr(g, n, b, "branch3x3dbl_3a", t), cbr(g, n, b, "branch3x3dbl_3b", t), 1);
    vkd_tensor *p = max_pool ? vkd_maxpool2d(g, x, 3, 1, 1) : vkd_avgpool2d(g, x, 3, 1, 1, 0);
    return cat4(g, b1, b3, bd, cbr(g, n, b, "branch_pool", p));
}

vkd_tensor *vkd_inception_forward(vkd_graph *g, vkd_inception *net, vkd_tensor *images, vkd_tensor **logits_out) {
    if (logits_out) *logits_out = NULL;
    if (vkd_graph_failed(g)) return NULL;
    if (!images || vkd_tensor_ndim(images) != 4 || vkd_tensor_dim(images, 1) != 3) {
        char s[64] = "NULL";
        if (images) vkd_shape_str(images, s, sizeof s);
        vkd_graph_fail(g, "inception: images must be (N, 3, H, W), got %s", s);
        return NULL;
    }
    int grad = g->grad_enabled;
    vkd_graph_set_grad_enabled(g, 0);
    vkd_tensor *x = images;
    if (vkd_tensor_dim(x, 2) != VKD_INCEPTION_SIZE || vkd_tensor_dim(x, 3) != VKD_INCEPTION_SIZE)
        x = vkd_resize_bilinear(g, x, VKD_INCEPTION_SIZE, VKD_INCEPTION_SIZE, net->resize_mode);
    x = cbr(g, net, "Conv2d_1a_3x3", NULL, x);  // 149
    x = cbr(g, net, "Conv2d_2a_3x3", NULL, x);  // 147
    x = cbr(g, net, "Conv2d_2b_3x3", NULL, x);
    x = vkd_maxpool2d(g, x, 3, 2, 0);           // 73
    x = cbr(g, net, "Conv2d_3b_1x1", NULL, x);
    x = cbr(g, net, "Conv2d_4a_3x3", NULL, x);  // 71
    x = vkd_maxpool2d(g, x, 3, 2, 0);           // 35
    x = fwd_a(g, net, "Mixed_5b", x);           // 256
    x = fwd_a(g, net, "Mixed_5c", x);           // 288
    x = fwd_a(g, net, "Mixed_5d", x);           // 288
    x = fwd_b(g, net, "Mixed_6a", x);           // 768 x 17
    x = fwd_c(g, net, "Mixed_6b", x);
    x = fwd_c(g, net, "Mixed_6c", x);
    x = fwd_c(g, net, "Mixed_6d", x);
    x = fwd_c(g, net, "Mixed_6e", x);
    x = fwd_d(g, net, "Mixed_7a", x);           // 1280 x 8
    x = fwd_e(g, net, "Mixed_7b", x, 0);        // 2048
    x = fwd_e(g, net, "Mixed_7c", x, 1);
    vkd_tensor *feats = x ? vkd_global_avgpool(g, x) : NULL;  // (N, 2048)
    if (feats && logits_out) *logits_out = vkd_linear(g, feats, net->fc_w, net->fc_b);
    vkd_graph_set_grad_enabled(g, grad);
    return vkd_graph_failed(g) ? NULL : feats;
}

// ---------------------------------------------------------------- batching
int vkd_inception_features(vkd_inception *net, const float *images, int64_t n, int c, int h, int w, int batch,
                           float *feats_out, float *logits_out, char *err, size_t errlen) {
    if (n < 0 || (c != 1 && c != 3) || h < 1 || w < 1 || !feats_out || (n > 0 && !images)) {
        snprintf(err, errlen, "inception features: images must be (n, 1 or 3, h, w), got (%lld, %d, %d, %d)",
                 (long long)n, c, h, w);
        return -1;
    }
    if (n == 0) return 0;
    // The largest activation per image: Conv2d_2b's 64 x 147 x 147, the resized input, or the input itself.
    uint64_t per = 64ull * 147 * 147 * 4, in_b = 3ull * h * w * 4;
    if (in_b > per) per = in_b;
    const vkd_ctx *ctx = net->ctx;
    uint64_t lim = ctx->f.max_storage_range ? ctx->f.max_storage_range : (128ull << 20);
    if (ctx->f.max_alloc && ctx->f.max_alloc / 4 < lim) lim = ctx->f.max_alloc / 4;  // the arena holds several
    int64_t cap = (int64_t)(lim / per);
    if (cap < 1) {
        snprintf(err, errlen, "inception features: one %dx%d image needs %.0f MiB, more than the device's %.0f MiB limit",
                 h, w, per / 1048576.0, lim / 1048576.0);
        return -1;
    }
    if (batch <= 0) batch = 16;
    if (batch > cap) batch = (int)cap;
    if (batch > n) batch = (int)n;
    int rc = 0;
    vkd_tensor *in = vkd_tensor_new(net->ctx, "inception.images", 4, (int64_t[]){batch, 3, h, w}, 0);
    vkd_graph *g = in ? vkd_graph_new(net->ctx, "inception") : NULL;
    vkd_tensor *logits = NULL, *feats = g ? vkd_inception_forward(g, net, in, logits_out ? &logits : NULL) : NULL;
    if (!feats) {
        snprintf(err, errlen, "inception features: %s", g ? vkd_graph_error(g) : vkd_ctx_error(net->ctx));
        rc = -1;
    } else {
        vkd_graph_keep(g, feats);
        if (logits) vkd_graph_keep(g, logits);
    }
    size_t plane = (size_t)h * w, img = 3 * plane;
    float *buf = rc ? NULL : malloc(batch * img * sizeof *buf);
    float *fb = rc ? NULL : malloc((size_t)batch * VKD_INCEPTION_DIM * sizeof *fb);
    float *lb = rc || !logits_out ? NULL : malloc((size_t)batch * VKD_INCEPTION_CLASSES * sizeof *lb);
    for (int64_t s = 0; s < n && !rc; s += batch) {
        int64_t k = n - s < batch ? n - s : batch;
        for (int64_t i = 0; i < batch; i++) {
            float *dst = buf + i * img;
            if (i >= k) {  // padding of a short last batch (its outputs are dropped)
                memset(dst, 0, img * sizeof *dst);
            } else if (c == 3) {
                memcpy(dst, images + (s + i) * img, img * sizeof *dst);
            } else {
                for (int ch = 0; ch < 3; ch++) memcpy(dst + ch * plane, images + (s + i) * plane, plane * sizeof *dst);
            }
        }
        if (vkd_tensor_upload(in, buf) || vkd_graph_run(g) || vkd_tensor_download(feats, fb) ||
            (logits && vkd_tensor_download(logits, lb))) {
            const char *ge = vkd_graph_error(g);
            snprintf(err, errlen, "inception features: %s", ge && ge[0] ? ge : vkd_ctx_error(net->ctx));
            rc = -1;
            break;
        }
        memcpy(feats_out + s * VKD_INCEPTION_DIM, fb, (size_t)k * VKD_INCEPTION_DIM * sizeof *fb);
        if (logits) memcpy(logits_out + s * VKD_INCEPTION_CLASSES, lb, (size_t)k * VKD_INCEPTION_CLASSES * sizeof *lb);
    }
    free(buf), free(fb), free(lb);
    vkd_graph_free(g);
    vkd_tensor_free(in);
    return rc;
}
