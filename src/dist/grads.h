#ifndef VKD_DIST_GRADS_H
#define VKD_DIST_GRADS_H
// Gradient exchange for data parallelism: the persistent gradients of one
// optimizer's parameters, packed into one contiguous host-visible staging
// region. A phase is recorded as two graphs: forward + backward ending with
// vkd_grad_sync_record_out (gradients -> staging), then, after
// vkd_grad_sync_allreduce (sum over ranks, scaled to the mean), a graph that
// starts with vkd_grad_sync_record_in (staging -> gradients) and runs the
// optimizer. One rank never builds one of these (its phase stays one graph).
#include "vkdistill/nn.h"

typedef struct vkd_grad_sync vkd_grad_sync;

vkd_grad_sync *vkd_grad_sync_new(vkd_ctx *ctx, vkd_tensor **params, int n);
void vkd_grad_sync_free(vkd_grad_sync *s);
int vkd_grad_sync_record_out(vkd_graph *g, vkd_grad_sync *s);
int vkd_grad_sync_record_in(vkd_graph *g, vkd_grad_sync *s);
// The mean over ranks of every rank's gradients, in place in the staging region.
void vkd_grad_sync_allreduce(vkd_grad_sync *s);
// Floats in the staging region (gradients and alignment padding).
int64_t vkd_grad_sync_numel(const vkd_grad_sync *s);

// Rank 0's values of persistent tensors to every rank (weights after creation
// or resume, so that every rank starts from exactly the same state).
int vkd_comm_bcast_tensor(vkd_tensor *t);
int vkd_comm_bcast_model(vkd_model *m);
int vkd_comm_bcast_adam(vkd_adam *opt);

#endif
