// Adam's moment estimates in a checkpoint, so a resume continues the optimizer exactly.
#include "vkdistill/train.h"

void vkd_ckpt_add_adam(vkd_ckpt *ck, const char *prefix_m, const char *prefix_v, vkd_adam *opt) {
    for (int i = 0; i < vkd_adam_num(opt); i++) {
        vkd_tensor *m, *v;
        vkd_adam_state(opt, i, &m, &v);
        vkd_ckpt_add(ck, prefix_m, vkd_tensor_name(m), m);
        vkd_ckpt_add(ck, prefix_v, vkd_tensor_name(v), v);
    }
}
