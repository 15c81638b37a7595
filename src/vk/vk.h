#ifndef VKD_VK_H
#define VKD_VK_H
// The Vulkan layer: device choice, features, memory blocks, pipelines,
// one-shot command submission. Nothing above src/core calls Vulkan directly.
#include <stdatomic.h>
#include <vulkan/vulkan.h>

#include "vkdistill/vkdistill.h"

#define VKD_PUSH_MAX 128u
#define VKD_TEXEL_BINDINGS 4
// Set 0's bindings VKD_TEXEL_BINDINGS .. + VKD_STORE_BINDINGS - 1: storage buffers through
// which ops may write vec4s (ctx->sbuf; see vkd_texel.store).
#define VKD_STORE_BINDINGS 4
#define VKD_ALIGN 256u  // sub-allocation alignment: vec4 loads and cache lines on every vendor

// ---------------------------------------------------------------- features
typedef struct {
    uint32_t api_version, driver_version, vendor_id, device_id;
    VkDriverId driver_id;
    VkPhysicalDeviceType type;
    char name[VK_MAX_PHYSICAL_DEVICE_NAME_SIZE];
    char driver_name[VK_MAX_DRIVER_NAME_SIZE];
    char driver_info[VK_MAX_DRIVER_INFO_SIZE];
    int fp16, int8, storage16, int64, fp64, bda;
    uint32_t subgroup_size, subgroup_min, subgroup_max, subgroup_ops;
    int subgroup_size_control;
    uint32_t shared_mem, max_wg_invocations, max_wg_count[3], max_push;
    uint64_t max_storage_range, max_alloc;
    uint32_t max_texel_elements, texel_align;  // uniform texel buffer limits
    uint32_t sbuf_align;                       // minStorageBufferOffsetAlignment
    float timestamp_period;  // ns per tick
    uint32_t timestamp_bits;
    int coopmat;           // VK_KHR_cooperative_matrix present
    int ncoop;             // number of shapes reported
    struct { uint32_t m, n, k, a, b, c, r; } coop[32];
    VkPhysicalDeviceMemoryProperties mem;
} vkd_features;

// ---------------------------------------------------------------- memory
// One VkDeviceMemory bound to one VkBuffer with a device address; tensors are
// sub-allocated by offset. Persistent blocks use a first-fit range list.
typedef struct vkd_block {
    VkBuffer buf;
    VkDeviceMemory mem;
    VkDeviceSize size;
    VkDeviceAddress addr;
    void *mapped;  // host-visible blocks only
    int host;
    // allocation ranges sorted by offset (persistent blocks)
    int nr, cap;
    struct { uint64_t off, size; } *r;
    struct vkd_block *next;
} vkd_block;

typedef struct {
    vkd_block *block;
    uint64_t off;
} vkd_alloc;

// ---------------------------------------------------------------- pipelines
#define VKD_MAX_SPEC 20
// A pipeline is recorded when a graph first asks for it and created with the
// others of its graph at compile (vkd_pipelines_create): pipe is VK_NULL_HANDLE
// until then.
typedef struct vkd_pipeline {
    char shader[32];
    int nspec;
    uint32_t spec[VKD_MAX_SPEC];
    const struct vkd_shader_blob *blob;
    VkPipeline pipe;
    VkResult result;   // of its creation
    double create_ms;  // CPU time of its creation on the thread that made it (VKD_PROFILE=2)
    struct vkd_pipeline *next;
} vkd_pipeline;

struct vkd_ctx {
    VkInstance instance;
    VkDebugUtilsMessengerEXT messenger;
    VkPhysicalDevice phys;
    VkDevice device;
    VkQueue queue;
    uint32_t queue_family;
    VkCommandPool pool;
    VkFence fence;
    VkPipelineLayout layout;  // one layout for every op: 128 bytes of push constants + set 0 (texel operands, storage outputs)
    // Set 0: VKD_TEXEL_BINDINGS uniform texel buffers (R32_SFLOAT) through which
    // ops may read operands instead of buffer addresses; see vkd_texel_use.
    VkDescriptorSetLayout texel_dsl;
    VkDescriptorPool texel_pool;  // the dummy set's
    VkDescriptorSet texel_dummy;  // every binding a 16-element view: bound at the start of every step
    VkBufferView texel_dummy_view;
    struct vkd_block *texel_dummy_block;
    int texel;                    // 1: ops read big operands through texel buffers (CPU devices)
    int sbuf;                     // 1: ops write their big outputs through storage-buffer bindings (CPU devices)
    VkPipelineCache cache;
    char cache_path[1024];
    vkd_pipeline *pipelines;
    int compile_threads;       // vkd_compile_threads_init
    int device_threads;        // CPU devices: the threads a dispatch's workgroups run on; 0 on GPUs
    int lane_bcast;            // lane groups exchange by broadcasts (vkd_lane_bcast_wanted)
    int pipelines_created;     // vkd_ctx_pipeline_stats
    double pipeline_seconds;
    vkd_features f;
    int validation;
    atomic_int validation_messages;  // counted by the messenger, on any thread creating pipelines
    char err[512];

    vkd_block *dev_blocks, *host_blocks;
    vkd_block *staging;  // host-visible transfer buffer, grown on demand
    uint64_t mem_current, mem_peak;
    uint32_t mt_device, mt_host;  // memory type indices
};

void vkd_set_error(vkd_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *vkd_result_str(VkResult r);
// Sets up a CPU driver's environment (lavapipe's vector width) before the first Vulkan instance.
void vkd_cpu_driver_env(void);
// lavapipe's worker threads for one of node_ranks ranks on this node (LP_NUM_THREADS, set unless the
// user set it) before the first Vulkan instance; the choice itself, for the tests: -1 lavapipe's
// default, 0 the submitting thread, else that many threads.
void vkd_cpu_driver_threads(int node_ranks);
int vkd_cpu_threads_per_rank(int affinity_cpus, int online_cpus, int node_ranks);
int vkd_cpus_available(void);  // the CPUs this process may run on

// memory.c
vkd_block *vkd_block_create(vkd_ctx *ctx, uint64_t size, int host, const char *what);
void vkd_block_destroy(vkd_ctx *ctx, vkd_block *b);
int vkd_alloc_persistent(vkd_ctx *ctx, uint64_t size, int host, const char *what, vkd_alloc *out);
void vkd_free_persistent(vkd_ctx *ctx, vkd_alloc a);
void vkd_blocks_destroy_all(vkd_ctx *ctx);
// Synchronous copies through the staging buffer (outside of any recorded step).
int vkd_upload(vkd_ctx *ctx, vkd_block *dst, uint64_t off, const void *src, uint64_t bytes);
int vkd_download(vkd_ctx *ctx, vkd_block *src, uint64_t off, void *dst, uint64_t bytes);
int vkd_fill_zero(vkd_ctx *ctx, vkd_block *dst, uint64_t off, uint64_t bytes);

// texel.c
int vkd_texel_init(vkd_ctx *ctx);
void vkd_texel_destroy(vkd_ctx *ctx);
// A view of [off, off + bytes) of a block as R32_SFLOAT texels, starting at
// the largest aligned offset <= off; *first is the element where off lies.
// texel 4 (R32_SFLOAT) or 16 (R32G32B32A32_SFLOAT: off and bytes multiples of 16);
// *first is the view's texel where off starts.
VkBufferView vkd_texel_view(vkd_ctx *ctx, struct vkd_block *b, uint64_t off, uint64_t bytes, uint32_t texel,
                            uint32_t *first);
// A storage-buffer range holding [off, off + bytes) of a block (off a multiple of 16), from
// the largest aligned offset <= off; *first is the vec4 where off lies.
VkDescriptorBufferInfo vkd_sbuf_range(const vkd_ctx *ctx, struct vkd_block *b, uint64_t off, uint64_t bytes,
                                      uint32_t *first);
// The placeholder storage range that every unused storage binding holds.
VkDescriptorBufferInfo vkd_sbuf_dummy(const vkd_ctx *ctx);
// Writes all of set 0: the texel bindings from views, the storage bindings from bufs.
void vkd_texel_write_set(vkd_ctx *ctx, VkDescriptorSet set, const VkBufferView *views,
                         const VkDescriptorBufferInfo *bufs);

// pipeline.c
// The pipeline of a shader and its specialization constants, recorded but not yet
// created when new; NULL (and the context's error) for an unknown shader.
vkd_pipeline *vkd_pipeline_get(vkd_ctx *ctx, const char *shader, const uint32_t *spec, int nspec);
// Creates every recorded pipeline not yet created, on several threads: drivers
// compile at creation (lavapipe runs NIR over the unrolled tiles, ~0.1 s a
// convolution), so one thread per core cuts a run's start. 0, or -1 and the
// context's error naming the first pipeline that failed.
int vkd_pipelines_create(vkd_ctx *ctx);
// Whether the GEMM's and convolution's lane groups exchange values by broadcasts instead of
// shuffles (shaders/lanes.glsl): llvmpipe of Mesa 23 and later at other than 8 lanes.
// VKD_LANE_BCAST=0/1 overrides.
int vkd_lane_bcast_wanted(const vkd_features *f);
// How many threads create pipelines: VKD_COMPILE_THREADS, else one per online core
// (at most 16). -1 and the context's error when the variable is not a positive integer.
int vkd_compile_threads_init(vkd_ctx *ctx);
int vkd_pipeline_cache_open(vkd_ctx *ctx);
void vkd_pipeline_cache_save(vkd_ctx *ctx);
void vkd_pipelines_destroy(vkd_ctx *ctx);

// one-shot command buffers (memory.c)
VkCommandBuffer vkd_cmd_begin(vkd_ctx *ctx);
int vkd_cmd_submit_wait(vkd_ctx *ctx, VkCommandBuffer cb);  // ends, submits, waits, frees
// Full compute->compute memory barrier (reads and writes after writes).
void vkd_cmd_barrier(VkCommandBuffer cb);

#endif
