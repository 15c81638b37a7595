// Multi-head self-attention composed from batched matmul (transpose flags),
// softmax and the layout ops, so its backward is theirs. The EDM and DiT
// entry points take the fused qkv projection as their models produce it and
// split it with one gather per part (the softmax scale folded into that
// gather), and the split's backward re-interleaves dq, dk, dv in one pass.
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

// EDM UNetBlock: qkv (N, 3C, H, W) viewed as (N*heads, c, 3, H*W), c = C/heads,
// so channel (h*c + i)*3 + {0,1,2} is q, k, v of channel i of head h. q, k, v
// stay channel-major (B, c, HW): w = softmax(q^T k / sqrt(c)) needs q
// transposed (ta), and a = v w^T (tb) is (B, c, HW) = (N, C, H, W) already.
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
    int64_t view[4] = {N * heads, c, 3, H * W};
    static const int perm[4] = {2, 0, 1, 3};
    // EDM divides k by sqrt(c) (AttentionOp); doing it in the split is free.
    float alpha[3] = {1.0f, (float)(1.0 / sqrt((double)c)), 1.0f};
    vkd_tensor *part[3];
    if (vkd_split3(g, vkd_reshape(g, qkv, 4, view), perm, alpha, part)) return NULL;
    vkd_tensor *a = attend(g, part[0], part[1], part[2], 1, 1.0f);  // (N*heads, c, HW)
    int64_t out[4] = {N, C, H, W};
    return vkd_reshape(g, a, 4, out);
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
