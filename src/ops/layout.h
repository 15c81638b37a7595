#ifndef VKD_OPS_LAYOUT_H
#define VKD_OPS_LAYOUT_H
// Internal layout helpers shared by layout.c and attention.c.
#include "ops/ops.h"

// Splits x three ways in one pass per part: x permuted by perm (its new axis 0
// has size 3) gives out[s] = alpha[s] * permuted[s], each of shape
// permuted.shape[1:]. The three parts share one tape entry, recorded on out[0],
// whose backward re-interleaves alpha-scaled dq, dk, dv into dx in a single
// dispatch. So out[0] must receive a gradient whenever out[1] or out[2] does
// (true for attention, where q, k and v always all do).
int vkd_split3(vkd_graph *g, vkd_tensor *x, const int *perm, const float alpha[3], vkd_tensor *out[3]);

#endif
