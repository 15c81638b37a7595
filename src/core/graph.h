#ifndef VKD_CORE_GRAPH_H
#define VKD_CORE_GRAPH_H
// Internal view of tensors, the tape and recorded dispatches. Ops (src/ops)
// build on this; models never see it.
#include <stdio.h>

#include "vk/vk.h"

struct vkd_tensor {
    vkd_ctx *ctx;
    vkd_graph *graph;     // NULL for persistent tensors
    char name[64];
    int ndim;
    int64_t shape[VKD_MAX_DIMS];
    int64_t numel;
    int flags;            // VKD_PARAM, VKD_HOST
    int requires_grad;
    vkd_tensor *base;     // views: the tensor that owns the memory (else NULL)
    uint64_t view_off;    // bytes into base
    vkd_alloc mem;        // persistent: allocated at creation; graph: at compile
    vkd_tensor *pgrad;    // VKD_PARAM: persistent gradient buffer
    // graph tensors
    int id;               // index in graph->tensors
    int def, last;        // liveness in dispatch indices
    int plan_arena;       // which activation arena holds it (graph-owned tensors)
    int keep;
    // gradient of this tensor inside the graph being differentiated
    vkd_tensor *ggrad;
    const vkd_graph *ggrad_graph;
    uint32_t ggrad_serial;
    // parameters: how many tape entries of that graph read it (vkd_grad_param_target)
    int uses;
    const vkd_graph *uses_graph;
    uint32_t uses_serial;
    // graph tensors: a factor the op that completes this tensor's gradient may fold into it
    // (vkd_grad_fold_factor; 0: none), the tape index of the first entry that reads it, and
    // whether the pending gradient has the factor folded in
    float grad_fold;
    int first_use;
    int ggrad_folded;
    // a second term of the pending gradient not yet added to ggrad (vkd_grad_pending_pair)
    vkd_tensor *ggrad2;
    // a concat's output (vkd_concat, along the channels) whose first part, grad_fold_src, asked for
    // a fold: the fold covers only that part's channels and reaches it through the concat's backward
    vkd_tensor *grad_fold_src;
    int readers;  // tape entries that read it (counted when the backward starts)
    // an activation whose gradient's sums over the pixels (N, C) the op that made it can use (a
    // convolution's bias and channel add): set by that op's forward (pix_bias: the bias, when its
    // gradient is wanted), asked of the op whose backward completes the gradient (group norm's).
    // A gradient: those sums, written by the pass that wrote it, else NULL; pix_bias: the bias
    // whose gradient that pass also gave (their sum over the samples), else NULL.
    int want_pix_sums;
    vkd_tensor *pix_sums, *pix_bias;
};

typedef enum { VKD_R = 1, VKD_W = 2, VKD_RW = 3 } vkd_access;

typedef struct {
    uint16_t at;  // byte offset of the 8-byte device address in the push block (VKD_ARG_NO_ADDR: none)
    uint8_t access;
    vkd_tensor *t;
} vkd_arg;
// An arg the shader reads only through its texel binding: declared for liveness and barriers,
// no address written (its 8 bytes of the push block may hold other fields).
#define VKD_ARG_NO_ADDR 0xFFFFu

// An arg also read through a texel view (ctx->texel): binding `binding` of
// set 0; the element of the view where the tensor starts is patched into the
// push block as an int32 at byte first_at.
// vec4 = 1: an R32G32B32A32 view (the shader fetches 4 elements at once; the
// tensor starts on 16 bytes and has whole vec4s), `first` in vec4s. vec4 = 2: the same,
// but the size need not be whole vec4s: the shader fetches only the whole ones and reads
// the last n % 4 elements through the buffer (row sums, reduce.comp).
// A binding from VKD_TEXEL_BINDINGS on (vkd_texel_store) is a storage buffer instead,
// through which the shader writes (and may read) the tensor in vec4s (ctx->sbuf; the tensor
// starts on 16 bytes), `first` in vec4s; vec4 is ignored.
typedef struct {
    uint8_t arg, binding;
    uint16_t first_at;
    uint8_t vec4;
} vkd_texel;
#define vkd_texel_store(arg, k, first_at) ((vkd_texel){(arg), (uint8_t)(VKD_TEXEL_BINDINGS + (k)), (first_at), 0})

// A strided copy in elements: `rows` rows of `len`, row r from src[src_off + r * src_stride]
// to dst[dst_off + r * dst_stride].
typedef struct {
    uint64_t rows, len, dst_off, dst_stride, src_off, src_stride;
} vkd_copy_rows;

#define VKD_COPY_PARTS 2  // sources of one copy node (a concat's two)
#define VKD_MAX_ARGS 12
typedef struct {
    const char *name;  // for VKD_PROFILE
    vkd_pipeline *pipe;
    uint32_t groups[3];
    uint8_t push[VKD_PUSH_MAX];
    uint32_t push_size;
    int nargs;
    vkd_arg args[VKD_MAX_ARGS];
    int ntexel;
    vkd_texel texel[VKD_TEXEL_BINDINGS + VKD_STORE_BINDINGS];
    // pipe NULL: buffer copies instead (vkd_graph_copy): args[0] written, args[1 + p] read by part p;
    // no parts: args[0] filled with zeros (vkd_graph_zero)
    int ncopy;
    vkd_copy_rows copy[VKD_COPY_PARTS];
} vkd_dispatch;

typedef struct vkd_tape_entry vkd_tape_entry;
// Appends the gradient computation of one recorded op. dy is d(loss)/d(out[0]).
typedef void (*vkd_backward_fn)(vkd_graph *g, vkd_tape_entry *e, vkd_tensor *dy);

#define VKD_TAPE_MAX_IN 6
struct vkd_tape_entry {
    vkd_backward_fn backward;
    int nin;
    vkd_tensor *in[VKD_TAPE_MAX_IN];
    vkd_tensor *out;
    vkd_tensor *saved[4];  // intermediates the backward needs (e.g. layer norm's mean, rstd)
    union {
        float f[8];
        int32_t i[8];
    } attr;
    // its backward adds two pending terms of its input's gradient itself (vkd_grad_pending_pair)
    int takes_grad_pair;
};

#define VKD_MAX_ARENAS 64

struct vkd_graph {
    vkd_ctx *ctx;
    char name[64];
    char err[512];
    uint32_t serial;
    int grad_enabled;
    int in_backward;
    int tape_pos;  // in vkd_graph_backward: the entry whose backward is being recorded
    int compiled;
    // samples the process will push through this graph over all its runs (vkd_graph_set_samples;
    // 0: not said, taken as many)
    int64_t samples;
    // of these, the samples one run pushes through (vkd_graph_set_run_samples; 0: not said, taken
    // as 1, so samples is then an upper bound on the runs)
    int64_t run_samples;
    // graph-owned tensors
    int ntensors, captensors;
    vkd_tensor **tensors;
    int ndisp, capdisp;
    vkd_dispatch *disp;
    int ntape, captape;
    vkd_tape_entry *tape;
    // after compile: activation memory, split into arenas of at most
    // arena_limit bytes (the device's largest allocation, or VKD_ARENA_LIMIT)
    vkd_block *arena[VKD_MAX_ARENAS];
    int narena;
    uint64_t arena_limit;
    VkCommandBuffer cmd;
    int nbarriers;
    int ncopies;  // copy nodes: the barriers then cover the transfer stage too
    // texel views of the dispatches that read through them, and their sets
    VkDescriptorPool texel_pool;
    VkBufferView *texel_views;
    int ntexel_views;
    // persistent tensors that only this graph's dispatches use (vkd_graph_own)
    vkd_tensor **owned;
    int nowned;
    // profiling (VKD_PROFILE=1)
    VkQueryPool qpool;
    double *prof_ns;     // per dispatch, summed over the runs after the first
    double *prof_first;  // per dispatch, the first run (its memory touched for the first time)
    int prof_runs;       // including the first
    int prof_level;      // VKD_PROFILE when the graph was compiled (2: every dispatch printed too)
};

// Caps each activation arena (0: the device's maxMemoryAllocationSize); for
// tests of graphs whose activations span several allocations.
void vkd_graph_set_arena_limit(vkd_graph *g, uint64_t bytes);
int vkd_graph_arena_count(const vkd_graph *g);

void vkd_graph_fail(vkd_graph *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int vkd_graph_failed(const vkd_graph *g);

// Hands persistent tensor t (a span, a constant table) to g, which frees it with itself.
void vkd_graph_own(vkd_graph *g, vkd_tensor *t);
// A new graph-owned tensor (memory assigned at compile).
vkd_tensor *vkd_graph_tensor(vkd_graph *g, const char *name, int ndim, const int64_t *shape);
vkd_tensor *vkd_graph_tensor_like(vkd_graph *g, const char *name, const vkd_tensor *like);
// n elements of x from element off, sharing x's memory; no gradient flows through it.
vkd_tensor *vkd_graph_view(vkd_graph *g, vkd_tensor *x, int64_t off, int64_t n);
// Records one dispatch. push holds the op's push constants; each arg patches
// the device address of a tensor into push at arg.at and declares the access
// (for liveness and barriers). spec: specialization constants 0..nspec-1.
int vkd_graph_dispatch(vkd_graph *g, const char *name, const char *shader, const uint32_t *spec, int nspec,
                       uint32_t gx, uint32_t gy, uint32_t gz, const void *push, uint32_t push_size,
                       const vkd_arg *args, int nargs);
// The same with some args also read through texel views.
int vkd_graph_dispatch_texel(vkd_graph *g, const char *name, const char *shader, const uint32_t *spec, int nspec,
                             uint32_t gx, uint32_t gy, uint32_t gz, const void *push, uint32_t push_size,
                             const vkd_arg *args, int nargs, const vkd_texel *texel, int ntexel);
// Records strided buffer copies (vkCmdCopyBuffer) from nparts sources into disjoint parts of dst
// as one node of the graph (no barrier between the parts): exact, and on lavapipe a memcpy
// rather than a shader's per-lane stores.
int vkd_graph_copy(vkd_graph *g, const char *name, vkd_tensor *dst, int nparts, vkd_tensor *const *src,
                   const vkd_copy_rows *rows);
// Records the zeroing of dst (vkCmdFillBuffer) as a node of the graph: on lavapipe a memset
// rather than a dispatch.
int vkd_graph_zero(vkd_graph *g, const char *name, vkd_tensor *dst);
// Records a tape entry if grad is enabled and any input requires grad; sets
// out->requires_grad accordingly. Returns the entry (to fill saved/attr) or NULL.
vkd_tape_entry *vkd_tape_push(vkd_graph *g, vkd_backward_fn fn, vkd_tensor *out, vkd_tensor **in, int nin);
// Adds gx into the gradient of t (out of place; first contribution is taken as is).
void vkd_grad_accumulate(vkd_graph *g, vkd_tensor *t, vkd_tensor *gx);
// The gradient t has gathered so far in this backward pass (NULL if none). An op
// whose backward can add it into its own output (one pass over the activation
// less than the add above) reads it, writes old + dx, and hands the sum to
// vkd_grad_set in place of vkd_grad_accumulate.
vkd_tensor *vkd_grad_pending(vkd_graph *g, const vkd_tensor *t);
void vkd_grad_set(vkd_graph *g, vkd_tensor *t, vkd_tensor *sum);
// Where the entry that reads t first says it takes them (takes_grad_pair), a second contribution
// to t's gradient is kept as a second term instead of added at once; the add is recorded when
// something needs the sum (vkd_grad_pending, the entry that made t, the end of the backward:
// the same add, later). That entry's backward may read both terms and write a + b + dx itself:
// *second is the term not yet added (else NULL). VKD_GRAD_PAIR=0: added at once.
vkd_tensor *vkd_grad_pending_pair(vkd_graph *g, const vkd_tensor *t, vkd_tensor **second);
// Folding a constant factor into a finished gradient. An op's forward may ask, with
// t->grad_fold = s, that t's gradient reach its own backward as s * d(loss)/dt (EDM's residual
// scale: the convolution's backward needs dy * s, which cost a pass of its own). The backward
// that completes t's gradient (the last one, in tape order, to contribute to it) may then write
// s * (its sum) where it writes the sum anyway: vkd_grad_fold_factor says whether it is that
// backward and gives s (else 1), vkd_grad_set_folded hands over the folded sum, and t's own
// backward reads vkd_grad_folded. VKD_GRAD_FOLD=0 turns it off.
float vkd_grad_fold_factor(vkd_graph *g, const vkd_tensor *t);
// The same where the fold may cover only t's first *lead channels (dim 1; *lead = t->shape[1]
// where it covers them all): a concat's output whose first part asked for a fold (EDM's decoder
// blocks, whose output meets the skip in a concat). For ops that can scale a leading run of
// channels; vkd_grad_fold_factor gives 1 for such a tensor.
float vkd_grad_fold_lead(vkd_graph *g, const vkd_tensor *t, int64_t *lead);
void vkd_grad_set_folded(vkd_graph *g, vkd_tensor *t, vkd_tensor *sum);
int vkd_grad_folded(vkd_graph *g, const vkd_tensor *t);
// A parameter's persistent gradient buffer, when an op's backward may add its
// gradient straight into it (old + g in the op's own epilogue, instead of writing
// g and adding it afterwards): t is a parameter that this graph reads in one op
// only, so the graph's gradient of t is that one op's. NULL: write a graph tensor
// and call vkd_grad_accumulate as usual.
vkd_tensor *vkd_grad_param_target(vkd_graph *g, const vkd_tensor *t);
int vkd_tensor_needs_grad(const vkd_tensor *t);

// Device address of a tensor (valid after its memory is assigned).
VkDeviceAddress vkd_tensor_addr(const vkd_tensor *t);
const vkd_tensor *vkd_tensor_root(const vkd_tensor *t);
// A frozen alias of elements [off, off + numel(shape)) of persistent tensor t,
// shaped `shape` (free with vkd_tensor_free; t must outlive it). NULL when out of range.
vkd_tensor *vkd_tensor_view(vkd_tensor *t, int64_t off, int ndim, const int64_t *shape);
// A 1-D tensor over the whole persistent block that holds persistent tensor t: one
// operand through which a dispatch reaches many tensors (src/ops/multi.c). It owns
// no memory; free it with vkd_tensor_free before the block goes. NULL if t is not persistent.
vkd_tensor *vkd_tensor_span(const vkd_tensor *t);
// Where persistent tensor t starts in its block, in elements (its offset in vkd_tensor_span(t)).
uint64_t vkd_tensor_block_elem(const vkd_tensor *t);
int vkd_same_shape(const vkd_tensor *a, const vkd_tensor *b);
void vkd_shape_str(const vkd_tensor *t, char *buf, size_t n);
// A profiled graph's time per op (VKD_PROFILE=1) and, at VKD_PROFILE=2, per dispatch
// (graph_profile.c).
void vkd_graph_print_profile(const vkd_graph *g, FILE *f);
// Dispatch i's mean time in ns, over the runs after the graph's first where there were any.
double vkd_graph_dispatch_ns(const vkd_graph *g, int i);
// Forgets the times so far of a graph that has run (benchmarks time single runs with it).
void vkd_graph_profile_reset(vkd_graph *g);

static inline uint32_t vkd_ceil_div(uint64_t a, uint64_t b) { return (uint32_t)((a + b - 1) / b); }

#endif
