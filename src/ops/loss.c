// Classification loss, composed from ops that already have a backward and a
// tested reference (softmax, log, mul, sum), so it needs no shader of its own.
#include "ops/ops.h"
#include "vkdistill/nn.h"

// -mean_n sum_k y_nk log p_nk with p = softmax(logits) (softmax subtracts the row
// max, so large logits do not overflow). log(p + 1e-37) instead of log p keeps a
// class probability that underflowed to 0 (a logit gap above ~87) from giving
// 0 * -inf = NaN. 1e-37 is just above fp32's smallest normal number, so the loss
// and its gradient (p - y)/N stay exact (relative 1e-11 at p = e^-60) until p_y
// itself nears underflow, where the sample's gradient fades instead of exploding.
vkd_tensor *vkd_cross_entropy(vkd_graph *g, vkd_tensor *logits, vkd_tensor *onehot) {
    if (!vkd_op_ok(g, 2, logits, onehot)) return NULL;
    char sa[64], sb[64];
    vkd_shape_str(logits, sa, sizeof sa);
    vkd_shape_str(onehot, sb, sizeof sb);
    if (logits->ndim != 2 || onehot->ndim != 2 || logits->shape[0] != onehot->shape[0] ||
        logits->shape[1] != onehot->shape[1]) {
        vkd_graph_fail(g, "cross_entropy: logits %s and targets %s must both be (N, K)", sa, sb);
        return NULL;
    }
    vkd_tensor *lp = vkd_log(g, vkd_affine(g, vkd_softmax(g, logits), 1.0f, 1e-37f));
    vkd_tensor *s = vkd_sum(g, vkd_mul(g, lp, onehot), 0);  // (1)
    return vkd_scale(g, s, -1.0f / (float)logits->shape[0]);
}
