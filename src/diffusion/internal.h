#ifndef VKD_DIFFUSION_INTERNAL_H
#define VKD_DIFFUSION_INTERNAL_H
// Internal: what the diffusion files share beyond the public header.
#include "vkdistill/diffusion.h"

vkd_ctx *vkd_gmm_ctx(const vkd_gmm *m);

#endif
