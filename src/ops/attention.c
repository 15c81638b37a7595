// Multi-head self-attention from batched matmul (transpose flags) and softmax.
// The EDM and DiT entry points take the fused qkv projection as their models
// produce it. EDM's reads q, k, v in place as strided GEMM operands and has a
// backward of its own that writes dq, dk, dv into one dqkv; DiT's splits qkv
// with one gather per part (the softmax scale folded into that gather) and the
// split's backward re-interleaves dq, dk, dv in one pass.
#include <math.h>
#include <stdio.h>

#include "ops/layout.h"

// Scores are op(q) op(k)^T with op the identity for token-major (B, T, d)
// operands and the transpose for channel-major (B, d, T) ones; softmax over
// keys in fp32; the output is p v (token-major, (B, Tq, dv)) or v p^T
// (channel-major, (B, dv, Tq)). The scale goes on q or on the scores,
// whichever is smaller.
static vkd_tensor *attend(vkd_graph *g, vkd_tensor *q, vkd_tensor *k, vkd_tensor *v, int channel_major,
                          float scale) {
    int64_t B = q->shape[0], Tq = q->shape[channel_major ? 2 : 1], Tk = k->shape[channel_major ? 2 : 1];
    int scale_q = scale != 1.0f && q->numel <= B * Tq * Tk;
    if (scale_q) q = vkd_scale(g, q, scale);
    vkd_tensor *s = channel_major ? vkd_matmul(g, q, k, 1, 0) : vkd_matmul(g, q, k, 0, 1);  // (B, Tq, Tk)
    if (scale != 1.0f && !scale_q) s = vkd_scale(g, s, scale);
    vkd_tensor *p = vkd_softmax(g, s);
    return channel_major ? vkd_matmul(g, v, p, 0, 1) : vkd_matmul(g, p, v, 0, 0);
}

vkd_tensor *vkd_attention(vkd_graph *g, vkd_tensor *q, vkd_tensor *k, vkd_tensor *v, float scale) {
    if (!vkd_op_ok(g, 3, q, k, v)) return NULL;
    // q (B, Tq, d), k (B, Tk, d), v (B, Tk, dv)
    if (q->ndim != 3 || k->ndim != 3 || v->ndim != 3 || k->shape[0] != q->shape[0] || v->shape[0] != q->shape[0] ||
        k->shape[2] != q->shape[2] || v->shape[1] != k->shape[1]) {
        char sq[64], sk[64], sv[64];
        vkd_shape_str(q, sq, sizeof sq);
        vkd_shape_str(k, sk, sizeof sk);
        vkd_shape_str(v, sv, sizeof sv);
        vkd_graph_fail(g, "attention: q '%s' %s, k '%s' %s, v '%s' %s must be (B,Tq,d), (B,Tk,d), (B,Tk,dv)", q->name,
                       sq, k->name, sk, v->name, sv);
        return NULL;
    }
    return attend(g, q, k, v, 0, scale);
}

// EDM UNetBlock: qkv (N, 3C, H, W) viewed as (B, c, 3, T), B = N*heads, c = C/heads,
// T = H*W, so channel (h*c + i)*3 + {0,1,2} is q, k, v of channel i of head h. q, k, v stay
// channel-major (B, c, T) and are read in place: part s of batch b is the c rows of T that
// start at element (3 b c + s) T, 3T apart. So the GEMMs take them as strided operands
// and nothing is split or re-interleaved (on lavapipe that gather and its backward were
// ~5% of a unet_fmnist step). s = alpha q^T k, alpha = 1/sqrt(c) in the scores' epilogue
// (EDM scales k; for c a power of 4 alpha is a power of two and the bits are the same);
// p = softmax(s) over keys; a = v p^T is (B, c, T) = (N, C, H, W).
typedef struct {
    vkd_tensor *part[3];  // q, k, v: views of qkv (or of its gradient) from part s's first row
    uint32_t c, T;
} edm_qkv;

static edm_qkv edm_parts(vkd_graph *g, vkd_tensor *x, uint32_t c, uint32_t T) {
    edm_qkv v = {.c = c, .T = T};
    for (int s = 0; s < 3; s++) v.part[s] = vkd_graph_view(g, x, (int64_t)s * T, x->numel - (int64_t)s * T);
    return v;
}

static vkd_mm_view edm_part(const edm_qkv *v, int s) {
    return (vkd_mm_view){v->part[s], 3 * v->T, 3 * v->c * v->T};
}

// x (B, c, 3, T) is qkv; saved[0] p (B, T, T); attr.f[0] alpha. The gradient of a = v p^T
// and of s = alpha q^T k, each GEMM as the matmul's own backward would record it, with
// dq, dk, dv written into their rows of one dqkv. Softmax's backward ds = p (dp - D), D the rows'
// sums of dp * p, is dp's GEMM's epilogue: D = sum over the channels of da * a (a = v p^T, so
// sum_s dp_ts p_ts = sum_s p_ts sum_i da_it v_is = sum_i da_it a_it, FlashAttention-2's trick),
// from a pass over (B, c, T) instead of softmax's backward over (B, T, T). In a unet_fmnist step
// (batch 16, 16x16 attention) softmax_bwd took 2.6-2.8 ms a call (VKD_PROFILE).
// VKD_ATTN_ROWSUM=0: dp, then softmax's backward pass.
static void attention_edm_backward(vkd_graph *g, vkd_tape_entry *e, vkd_tensor *da) {
    vkd_tensor *x = e->in[0], *p = e->saved[0], *a = e->out;
    float alpha = e->attr.f[0];
    uint32_t B = (uint32_t)x->shape[0], c = (uint32_t)x->shape[1], T = (uint32_t)x->shape[3];
    int rowsum = !vkd_env_off("VKD_ATTN_ROWSUM");
    vkd_tensor *dx = vkd_graph_tensor_like(g, "attention_bwd", x);
    vkd_tensor *dp = rowsum ? NULL : vkd_graph_tensor(g, "attention_bwd_p", 3, (int64_t[]){B, T, T});
    vkd_tensor *D = rowsum ? vkd_graph_tensor(g, "attention_bwd_d", 2, (int64_t[]){B, T}) : NULL;
    vkd_tensor *ds = vkd_graph_tensor(g, "softmax_bwd", 3, (int64_t[]){B, T, T});
    if (!dx || !(dp || D) || !ds) return;
    edm_qkv in = edm_parts(g, x, c, T), d = edm_parts(g, dx, c, T);
    vkd_mm_view vda = {da, T, c * T}, vp = {p, T, T * T}, vds = {ds, T, T * T};
    // dv = da p, dp = da^T v
    vkd_matmul_view_dispatch(g, "attention_bwd_v", edm_part(&d, 2), vda, vp, B, c, T, T, 0, 0, 1.0f);
    if (rowsum) {
        vkd_mm_epilogue ep = {.bias_rows = D, .R = p, .scale = 1.0f, .softmax_bwd = 1};
        vkd_reduce_cols_product_dispatch(g, "attention_bwd_d", D, da, a, B, c, T);
        vkd_matmul_view_epilogue_dispatch(g, "attention_bwd_p", vds, vda, edm_part(&in, 2), B, T, T, c, 1, 0, &ep);
    } else {
        vkd_matmul_view_dispatch(g, "attention_bwd_p", (vkd_mm_view){dp, T, T * T}, vda, edm_part(&in, 2), B, T, T, c,
                                 1, 0, 1.0f);
        vkd_softmax_dispatch(g, "softmax_bwd", 1, ds, p, dp);
    }
    // dq = alpha k ds^T, dk = alpha q ds
    vkd_matmul_view_dispatch(g, "attention_bwd_q", edm_part(&d, 0), edm_part(&in, 1), vds, B, c, T, T, 0, 1, alpha);
    vkd_matmul_view_dispatch(g, "attention_bwd_k", edm_part(&d, 1), edm_part(&in, 0), vds, B, c, T, T, 0, 0, alpha);
    if (!vkd_graph_failed(g)) vkd_grad_accumulate(g, x, dx);
}

vkd_tensor *vkd_attention_edm(vkd_graph *g, vkd_tensor *qkv, int heads) {
    if (!vkd_op_ok(g, 1, qkv)) return NULL;
    char sx[64];
    vkd_shape_str(qkv, sx, sizeof sx);
    if (qkv->ndim != 4 || heads < 1 || qkv->shape[1] % (3 * (int64_t)heads) != 0) {
        vkd_graph_fail(g, "attention_edm: qkv '%s' %s must be (N, 3C, H, W) with C divisible by heads (%d)",
                       qkv->name, sx, heads);
        return NULL;
    }
    int64_t N = qkv->shape[0], C = qkv->shape[1] / 3, H = qkv->shape[2], W = qkv->shape[3], c = C / heads;
    uint32_t B = (uint32_t)(N * heads), T = (uint32_t)(H * W);
    vkd_tensor *x = vkd_reshape(g, qkv, 4, (int64_t[]){B, c, 3, T});
    // p is written over s: each element is read by the invocation that writes it, after the
    // row's sums, and only p is kept for the backward (the scores' (B, T, T) buffer is the
    // largest activation of an attention block).
    vkd_tensor *s = vkd_graph_tensor(g, "attention_scores", 3, (int64_t[]){B, T, T}), *p = s;
    vkd_tensor *a = vkd_graph_tensor(g, "attention", 3, (int64_t[]){B, c, T});
    if (!x || !s || !a) return NULL;
    float alpha = (float)(1.0 / sqrt((double)c));
    edm_qkv in = edm_parts(g, x, (uint32_t)c, T);
    // On a CPU device (rows of up to 256 keys) the softmax is the scores GEMM's epilogue: the
    // scores are never written and read back. ddpmpp_reduced's forward at batch 64 (16x16, 256
    // keys): 11.5 ms a block for the GEMM with its softmax against 11.9 + 9.9 for the two
    // (VKD_PROFILE, three alternated rounds); unet_fmnist's at 16: 4.1 against 3.4 + 2.8. The
    // sums run in another order than the separate pass's: other bits. VKD_ATTN_SOFTMAX=0: that pass.
    vkd_mm_epilogue sm = {.scale = alpha, .softmax = vkd_matmul_softmax_ok(g, T)};
    if (vkd_matmul_view_epilogue_dispatch(g, "attention_scores", (vkd_mm_view){s, T, T * T}, edm_part(&in, 0),
                                          edm_part(&in, 1), B, T, T, (uint32_t)c, 1, 0, &sm) ||
        (!sm.softmax && vkd_softmax_dispatch(g, "softmax", 0, p, s, NULL)) ||
        vkd_matmul_view_dispatch(g, "attention_out", (vkd_mm_view){a, T, (uint32_t)c * T}, edm_part(&in, 2),
                                 (vkd_mm_view){p, T, T * T}, B, (uint32_t)c, T, T, 0, 1, 1.0f))
        return NULL;
    vkd_tape_entry *e = vkd_tape_push(g, attention_edm_backward, a, &x, 1);
    if (e) e->saved[0] = p, e->attr.f[0] = alpha;
    return vkd_reshape(g, a, 4, (int64_t[]){N, C, H, W});
}

// DiT / timm Attention: qkv (N, T, 3D) viewed as (N, T, 3, heads, dh) and
// permuted (2, 0, 3, 1, 4) into q, k, v (N*heads, T, dh); q is scaled by
// dh^-0.5 (in the split); the heads go back as out.transpose(1, 2).reshape(N, T, D).
vkd_tensor *vkd_attention_dit(vkd_graph *g, vkd_tensor *qkv, int heads) {
    if (!vkd_op_ok(g, 1, qkv)) return NULL;
    char sx[64];
    vkd_shape_str(qkv, sx, sizeof sx);
    if (qkv->ndim != 3 || heads < 1 || qkv->shape[2] % (3 * (int64_t)heads) != 0) {
        vkd_graph_fail(g, "attention_dit: qkv '%s' %s must be (N, T, 3D) with D divisible by heads (%d)", qkv->name,
                       sx, heads);
        return NULL;
    }
    int64_t N = qkv->shape[0], T = qkv->shape[1], D = qkv->shape[2] / 3, dh = D / heads;
    int64_t view[5] = {N, T, 3, heads, dh};
    static const int perm[5] = {2, 0, 3, 1, 4};
    float alpha[3] = {(float)(1.0 / sqrt((double)dh)), 1.0f, 1.0f};
    vkd_tensor *part[3];
    if (vkd_split3(g, vkd_reshape(g, qkv, 5, view), perm, alpha, part)) return NULL;
    int64_t bt[3] = {N * heads, T, dh};
    for (int s = 0; s < 3; s++) part[s] = vkd_reshape(g, part[s], 3, bt);
    vkd_tensor *o = attend(g, part[0], part[1], part[2], 0, 1.0f);  // (N*heads, T, dh)
    int64_t out[3] = {N, T, D};
    if (heads > 1) {
        int64_t nhtd[4] = {N, heads, T, dh};
        static const int tr[4] = {0, 2, 1, 3};
        o = vkd_permute(g, vkd_reshape(g, o, 4, nhtd), 4, tr);
    }
    return vkd_reshape(g, o, 3, out);
}
