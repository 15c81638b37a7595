#ifndef VKD_OPS_H
#define VKD_OPS_H
// Internal helpers shared by the ops and by autograd.
#include "core/graph.h"

#define VKD_WG 256u  // default workgroup size of the element-wise and row shaders

// Row reductions (norms) use one subgroup per workgroup and subgroupAdd, no
// barriers: on a CPU device (lavapipe, where barriers and shared memory are
// expensive) that supports subgroup arithmetic. GPUs keep the shared-memory tree.
static inline int vkd_norm_subgroup_reduce(const vkd_ctx *ctx) {
    return ctx->f.type == VK_PHYSICAL_DEVICE_TYPE_CPU && (ctx->f.subgroup_ops & VK_SUBGROUP_FEATURE_ARITHMETIC_BIT) &&
           ctx->f.subgroup_size >= 1;
}

// Whether copies, slices and concats are transfer commands (copy nodes) rather than a shader:
// on a CPU device (src/ops/layout.c says why); VKD_COPY=0 / 1 overrides.
int vkd_copy_by_transfer(const vkd_graph *g);
// dst (any tensor, usually a persistent gradient) += src, same numel.
int vkd_accumulate_into(vkd_graph *g, vkd_tensor *dst, vkd_tensor *src);
// Workgroup grid for n items of `per_group` each: x <= 65535, y as needed.
void vkd_grid_1d(uint64_t n, uint32_t per_group, uint32_t *gx, uint32_t *gy);
// Whether that grid of workgroups of wg is exactly n invocations: the element-wise shaders' WHOLE
// (no bounds test; VKD_WHOLE=0 keeps the test).
int vkd_grid_whole(uint64_t n, uint32_t gx, uint32_t gy, uint32_t wg);
// The launch of an element-wise shader over nrows rows of len elements. On a
// CPU device with rows of at least 16 it is a row launch (returns 1): x walks a
// row, and workgroup row row_group() takes rows row_group() * rpw + k, k < rpw,
// one after the other (index divisions per row, not per lane; rpw makes a
// workgroup's share ~512 elements, since on lavapipe a workgroup of one short
// row cost more than its elements); otherwise flat over all elements (returns
// 0, rpw 1). g3 = {x, y, z}.
uint32_t vkd_grid_rows(const vkd_graph *g, uint64_t nrows, uint64_t len, uint32_t *wg, uint32_t g3[3], uint32_t *rpw);
// Passes over many tensors in one dispatch (src/ops/multi.c): Adam, EMA and the
// gradients' norms walk a model's parameter tensors in one dispatch per pass instead of
// one per tensor. A group holds the tuples (one tensor per role) whose roles lie in the
// same memory blocks; its table has VKD_MULTI_STRIDE uints per chunk (one workgroup):
// n, out (the tuple's index), then each role's offset in its span, in elements.
enum { VKD_MULTI_ROLES = 4, VKD_MULTI_STRIDE = 8, VKD_MULTI_GROUPS = 8 };
typedef struct {
    vkd_tensor *span[VKD_MULTI_ROLES];  // each role's block as one tensor (owned by the graph)
    vkd_tensor *table;                  // (owned by the graph)
    uint32_t nchunks;
    uint8_t ragged;  // some tuple's size is not a multiple of 4 (a vec4 walk has a tail)
} vkd_multi;
// Groups tuples i < n (roles[r][i], r < nroles; persistent tensors, same numel within a
// tuple; skip[i] != 0 leaves one out) into at most VKD_MULTI_GROUPS groups, cut into chunks
// of `chunk` elements (0: one chunk per tuple). Returns the number of groups; 0: dispatch
// per tensor instead (nothing to do, VKD_MULTI=0, or more block combinations than groups);
// -1 when the graph failed.
int vkd_multi_plan(vkd_graph *g, int nroles, vkd_tensor **const *roles, int n, const uint8_t *skip, uint64_t chunk,
                   vkd_multi *groups);
// 1 when a multi-tensor pass over these tuples can read 4 elements at a time: the device
// reads through texel views (a CPU device), every tensor starts on a vec4 in its block and
// the blocks fit a texel view (the shader then walks chunks of 4 * chunk elements).
int vkd_multi_vec4(const vkd_graph *g, int nroles, vkd_tensor **const *roles, int n, const uint8_t *skip);
// A batched GEMM over strided operands: C_b = alpha op(A_b) op(B_b), b < batch, where each
// operand's element (r, c) of batch b is t[b * stride + r * ld + c] (elements, from where
// the tensor starts; a view places it). The attention reads q, k, v straight out of qkv.
typedef struct {
    vkd_tensor *t;
    uint32_t ld, stride;
} vkd_mm_view;
int vkd_matmul_view_dispatch(vkd_graph *g, const char *name, vkd_mm_view C, vkd_mm_view A, vkd_mm_view B,
                             uint32_t batch, uint32_t M, uint32_t N, uint32_t K, int ta, int tb, float alpha);
// The same GEMM with an epilogue after the product: + bias[m] (bias_rows), + R_b (indexed as C),
// then times `scale`: C_b = (op(A_b) op(B_b) + bias + R_b) * scale, the roundings of a
// convolution's epilogue (a 1x1 convolution as a GEMM, src/ops/conv2d.c).
// softmax_bwd: instead C_b = R_b * (op(A_b) op(B_b) - bias[b M + m]), softmax's backward with
// R its output p and bias (batch, M) the rows' sums of dp * p (src/ops/attention.c).
// softmax: C_b = softmax over each row of scale * op(A_b) op(B_b) (no bias, no R), where
// vkd_matmul_softmax_ok says the device takes it.
typedef struct {
    vkd_tensor *bias_rows, *R;
    float scale;
    int softmax_bwd, softmax;
} vkd_mm_epilogue;
// Whether GEMMs of N columns can take their rows' softmax in the epilogue (a CPU device with
// subgroup shuffles in groups of 8, N <= 256; VKD_ATTN_SOFTMAX=0: never).
int vkd_matmul_softmax_ok(const vkd_graph *g, uint32_t N);
int vkd_matmul_view_epilogue_dispatch(vkd_graph *g, const char *name, vkd_mm_view C, vkd_mm_view A, vkd_mm_view B,
                                      uint32_t batch, uint32_t M, uint32_t N, uint32_t K, int ta, int tb,
                                      const vkd_mm_epilogue *ep);
// y (outer, inner) = sums over R of x * x2, both viewed as (outer, R, inner), in order over R.
int vkd_reduce_cols_product_dispatch(vkd_graph *g, const char *name, vkd_tensor *y, vkd_tensor *x, vkd_tensor *x2,
                                     uint64_t outer, uint64_t R, uint64_t inner);
// Softmax over the last axis of x into y (bwd = 0), or its backward dx = y * (dy - sum(dy * y))
// into y from the saved output x and dy (bwd = 1).
int vkd_softmax_dispatch(vkd_graph *g, const char *name, int bwd, vkd_tensor *y, vkd_tensor *x, vkd_tensor *dy);
// Checks the inputs of an op: non-NULL and the graph has no error yet.
int vkd_op_ok(vkd_graph *g, int n, ...);
// 1 when the device reads operands through texel views (src/vk/texel.c) and
// every tensor given fits in one view; then an op dispatches with
// vkd_graph_dispatch_texel and sets its shader's TEXEL constant.
int vkd_texel_ok(const vkd_graph *g, int n, ...);
// 1 when a tensor of numel floats fits one texel view (the rule vkd_texel_ok applies).
int vkd_texel_fits(const vkd_ctx *ctx, uint64_t numel);
// 1 when every tensor given (NULLs skipped) holds whole vec4s from a 16-byte
// boundary (allocations are VKD_ALIGN-aligned; a view may start anywhere), so a
// texel op may read it through a vec4 view (vkd_texel.vec4). VKD_VEC4=0 says no.
int vkd_vec4_ok(int n, ...);
// 1 when the environment variable `name` is set to 0: the switch that turns an optimized
// path off (VKD_VEC4, VKD_WIDE_STORES, VKD_MM_QUADS, VKD_COL_QUADS, ...) for tests and benchmarks.
int vkd_env_off(const char *name);
// 1 when the device writes outputs through storage-buffer bindings (ctx->sbuf, src/vk/texel.c)
// and each non-NULL tensor is whole vec4s from 16 bytes (within one binding's range): the op
// may pass it as a vkd_texel_store binding and set its shader's SBUF constant.
int vkd_sbuf_ok(const vkd_graph *g, int n, ...);
// The shader to dispatch for a family whose vec4 texel walk writes through vkd_store4: its
// _wide variant `wide` (two 64-bit stores a quad, shaders/common.glsl) when vec4 is set and the
// device reads texel views and has shaderInt64, else `family`. VKD_WIDE_STORES=0 says no.
const char *vkd_store_variant(const vkd_graph *g, int vec4, const char *family, const char *wide);
// The family's storage-binding variant `sb` instead of `shader` when shader is its `wide` one
// and the device writes `out` (the dispatch's args[0]) through storage binding 0
// (vkd_sbuf_ok): appends that binding to tx (*nt of them), `first` at push offset first_at.
const char *vkd_sbuf_variant(const vkd_graph *g, const char *shader, const char *wide, const char *sb,
                             const vkd_tensor *out, vkd_texel *tx, int *nt, uint16_t first_at);
// Elements per invocation for per-element update shaders (Adam, EMA): several
// on a CPU device, where each load of the step's shared scalars is a loop over
// the lanes and is worth doing once for many elements; 1 on a GPU.
uint32_t vkd_elems_per_invocation(const vkd_graph *g);
// sum(x * x) over all of x (a scalar), no gradient: vkd_sum(vkd_mul(x, x))'s bits in one pass.
vkd_tensor *vkd_sum_squares(vkd_graph *g, vkd_tensor *x);
// The same sum written into y, one element of a tensor the caller holds (e.g. a
// slot of a persistent vector: many norms written with no barrier between them).
int vkd_sum_squares_to(vkd_graph *g, vkd_tensor *x, vkd_tensor *y);
// t's gradient from x viewed as (R, numel(t)), summed over R in a fixed order (a
// weight gradient's partial slices, per-sample terms): when t is a parameter that only
// this op reads, added by the sum's own store into t's persistent gradient (old + sum,
// the bits of the add it replaces), else a graph tensor handed to vkd_grad_accumulate.
int vkd_grad_from_cols(vkd_graph *g, const char *name, vkd_tensor *t, vkd_tensor *x, uint64_t R);
// x viewed as (outer, bc, inner): its rows' sums over inner (into rows (outer * bc) when not NULL)
// and those summed over outer into t's gradient (t has bc elements), the bits of the row pass
// then vkd_grad_from_cols, in one pass on CPU devices.
int vkd_grad_from_row_sums(vkd_graph *g, const char *name, vkd_tensor *t, vkd_tensor *x, uint64_t inner,
                           uint64_t outer, uint64_t bc, vkd_tensor *rows);
// Each xs[i]'s sum of squares into slots[i], the one-element view y[i] of y (n elements),
// with vkd_sum_squares_to's bits: the tensors it sums in one row (up to 32768 elements)
// as rows of multi-tensor dispatches (src/ops/multi.c), the longer ones one by one.
int vkd_sum_squares_each(vkd_graph *g, vkd_tensor **xs, vkd_tensor **slots, int n, vkd_tensor *y);
// Element-wise broadcast: y = alpha * (a OP b[(i/inner)%bc]) * (s ? s[0] : 1)
enum { VKD_EW_ADD = 0, VKD_EW_SUB = 1, VKD_EW_MUL = 2, VKD_EW_BCAST = 3 };
int vkd_eltwise_dispatch(vkd_graph *g, const char *name, int op, vkd_tensor *y, vkd_tensor *a, vkd_tensor *b,
                         vkd_tensor *s, uint64_t inner, uint64_t bc, float alpha);
// y = alpha * sum of x (x viewed as rows x cols, one value per row); optional squared difference with x2.
int vkd_reduce_rows_dispatch(vkd_graph *g, const char *name, vkd_tensor *y, vkd_tensor *x, vkd_tensor *x2,
                             uint64_t rows, uint64_t cols, float alpha);
// y (outer, inner) = alpha * sum over the middle axis of x (outer, R, inner).
int vkd_reduce_cols_dispatch(vkd_graph *g, const char *name, vkd_tensor *y, vkd_tensor *x, uint64_t outer, uint64_t R,
                             uint64_t inner, float alpha);
// db[j] = sum over i with (i/inner)%bc == j of x[i], for x of n elements.
// y (N, C, H, W) = the sums of x's (N, C, 2H, 2W) 2x2 blocks: nearest 2x upsampling's backward.
int vkd_sum2x2_dispatch(vkd_graph *g, const char *name, vkd_tensor *y, vkd_tensor *x);
vkd_tensor *vkd_reduce_broadcast(vkd_graph *g, vkd_tensor *x, uint64_t inner, uint64_t bc, const vkd_tensor *like);
// t's gradient from x, summed over the axes t is broadcast along (t holds bc of x's axes,
// inner after them): vkd_reduce_broadcast's sums, the last one adding straight into t's
// persistent gradient when t is a parameter only this op reads (vkd_grad_from_cols).
int vkd_grad_from_broadcast(vkd_graph *g, vkd_tensor *t, vkd_tensor *x, uint64_t inner, uint64_t bc);

#endif
