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

// The optimizer sharded over ranks (as ZeRO's first stage does with the work, not the
// memory): after the gradients' mean, each rank updates one contiguous share of the
// tensors, balanced by size (vkd_adam_record_part with vkd_grad_sync_skip), copies its
// updated parameters into their places in the staging region
// (vkd_grad_sync_record_params_out), every rank receives the others' shares
// (vkd_grad_sync_allgather) and copies them into its parameters
// (vkd_grad_sync_record_params_in). Adam's update is per element, so the weights are those
// of every rank updating all of them, bit for bit; each rank's moments are current for its
// own share only, until vkd_grad_sync_gather_adam. Off with VKD_SHARD=0, or with one rank.
int vkd_grad_sync_sharded(const vkd_grad_sync *s);
// skip[i] = 1 where tensor i is another rank's to update (NULL when not sharded).
const uint8_t *vkd_grad_sync_skip(const vkd_grad_sync *s);
int vkd_grad_sync_record_params_out(vkd_graph *g, vkd_grad_sync *s);
void vkd_grad_sync_allgather(vkd_grad_sync *s);
int vkd_grad_sync_record_params_in(vkd_graph *g, vkd_grad_sync *s);
// Each share's Adam moments from the rank that updates them to every rank (a collective:
// before a checkpoint, so that rank 0 writes the whole optimizer state).
int vkd_grad_sync_gather_adam(vkd_grad_sync *s, vkd_adam *opt);

// Rank 0's values of persistent tensors to every rank (weights after creation
// or resume, so that every rank starts from exactly the same state).
int vkd_comm_bcast_tensor(vkd_tensor *t);
int vkd_comm_bcast_tensor_from(vkd_tensor *t, int root);
int vkd_comm_bcast_model(vkd_model *m);
int vkd_comm_bcast_adam(vkd_adam *opt);

#endif
