// Device memory: large blocks (one VkDeviceMemory + one VkBuffer with a device
// address each), sub-allocated by offset; and synchronous staging copies.
//
// Shaders reach tensors through buffer device addresses passed in push
// constants, so no descriptor binding ever hits maxStorageBufferRange.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vk/vk.h"

#define VKD_BLOCK_MIN (64ull << 20)

static uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

// An optional cap on the device memory vkdistill allocates, in MiB, from
// $VKD_MEMORY_CAP_MB: it makes a small device out of a large one, so running
// out of memory (at graph compile or mid-run) can be tested anywhere.
// 0 when unset. An invalid value is reported once and ignored.
static uint64_t memory_cap(void) {
    static _Thread_local int read;  // (per thread: ranks may be threads)
    static _Thread_local uint64_t cap;
    if (!read) {
        read = 1;
        const char *v = getenv("VKD_MEMORY_CAP_MB");
        if (v && *v) {
            char *end;
            unsigned long long mb = strtoull(v, &end, 10);
            if (*end || v[0] == '-' || mb == 0 || mb > (1ull << 40))
                fprintf(stderr, "vkdistill: ignoring VKD_MEMORY_CAP_MB='%s' (expected a positive number of MiB)\n", v);
            else
                cap = (uint64_t)mb << 20;
        }
    }
    return cap;
}

// Bytes that may still be allocated under the cap (UINT64_MAX without one).
static uint64_t cap_room(const vkd_ctx *ctx) {
    uint64_t cap = memory_cap();
    if (!cap) return UINT64_MAX;
    return cap > ctx->mem_current ? cap - ctx->mem_current : 0;
}

vkd_block *vkd_block_create(vkd_ctx *ctx, uint64_t size, int host, const char *what) {
    size = align_up(size ? size : VKD_ALIGN, VKD_ALIGN);
    if (ctx->f.max_alloc && size > ctx->f.max_alloc) {
        vkd_set_error(ctx, "%s needs %.1f MiB in one allocation; device '%s' allows at most %.1f MiB", what,
                      size / 1048576.0, ctx->f.name, ctx->f.max_alloc / 1048576.0);
        return NULL;
    }
    if (size > cap_room(ctx)) {
        uint64_t room = cap_room(ctx);
        vkd_set_error(ctx,
                      "out of device memory: %s needs %llu bytes (%.1f MiB), %llu bytes (%.1f MiB) available "
                      "(%.1f MiB in use of the VKD_MEMORY_CAP_MB=%llu cap)",
                      what, (unsigned long long)size, size / 1048576.0, (unsigned long long)room, room / 1048576.0,
                      ctx->mem_current / 1048576.0, (unsigned long long)(memory_cap() >> 20));
        return NULL;
    }
    vkd_block *b = calloc(1, sizeof *b);
    b->size = size;
    b->host = host;
    VkBufferCreateInfo bci = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
                              .size = size,
                              .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
                                       VK_BUFFER_USAGE_TRANSFER_DST_BIT | VK_BUFFER_USAGE_SHADER_DEVICE_ADDRESS_BIT |
                                       VK_BUFFER_USAGE_UNIFORM_TEXEL_BUFFER_BIT,
                              .sharingMode = VK_SHARING_MODE_EXCLUSIVE};
    VkResult r = vkCreateBuffer(ctx->device, &bci, NULL, &b->buf);
    if (r != VK_SUCCESS) {
        vkd_set_error(ctx, "creating a %.1f MiB buffer for %s failed: %s", size / 1048576.0, what, vkd_result_str(r));
        free(b);
        return NULL;
    }
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(ctx->device, b->buf, &req);
    uint32_t mt = host ? ctx->mt_host : ctx->mt_device;
    if (!(req.memoryTypeBits & (1u << mt))) {
        for (mt = 0; mt < 32 && !(req.memoryTypeBits & (1u << mt)); mt++) {
        }
    }
    VkMemoryAllocateFlagsInfo fi = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_FLAGS_INFO,
                                    .flags = VK_MEMORY_ALLOCATE_DEVICE_ADDRESS_BIT};
    VkMemoryAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
                               .pNext = &fi,
                               .allocationSize = req.size,
                               .memoryTypeIndex = mt};
    r = vkAllocateMemory(ctx->device, &ai, NULL, &b->mem);
    if (r != VK_SUCCESS) {
        uint32_t heap = ctx->f.mem.memoryTypes[mt].heapIndex;
        uint64_t hs = ctx->f.mem.memoryHeaps[heap].size, room = hs > ctx->mem_current ? hs - ctx->mem_current : 0;
        vkd_set_error(ctx,
                      "out of device memory (%s): %s needs %llu bytes (%.1f MiB), at most %llu bytes (%.1f MiB) "
                      "available (heap %u has %.1f MiB, %.1f MiB in use by vkdistill)",
                      vkd_result_str(r), what, (unsigned long long)req.size, req.size / 1048576.0,
                      (unsigned long long)room, room / 1048576.0, heap, hs / 1048576.0, ctx->mem_current / 1048576.0);
        vkDestroyBuffer(ctx->device, b->buf, NULL);
        free(b);
        return NULL;
    }
    vkBindBufferMemory(ctx->device, b->buf, b->mem, 0);
    VkBufferDeviceAddressInfo dai = {.sType = VK_STRUCTURE_TYPE_BUFFER_DEVICE_ADDRESS_INFO, .buffer = b->buf};
    b->addr = vkGetBufferDeviceAddress(ctx->device, &dai);
    if (host) vkMapMemory(ctx->device, b->mem, 0, VK_WHOLE_SIZE, 0, &b->mapped);
    ctx->mem_current += req.size;
    if (ctx->mem_current > ctx->mem_peak) ctx->mem_peak = ctx->mem_current;
    return b;
}

void vkd_block_destroy(vkd_ctx *ctx, vkd_block *b) {
    if (!b) return;
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(ctx->device, b->buf, &req);
    ctx->mem_current -= req.size;
    if (b->mapped) vkUnmapMemory(ctx->device, b->mem);
    vkDestroyBuffer(ctx->device, b->buf, NULL);
    vkFreeMemory(ctx->device, b->mem, NULL);
    free(b->r);
    free(b);
}

// First fit in a block's sorted range list; returns the offset or UINT64_MAX.
static uint64_t block_fit(vkd_block *b, uint64_t size) {
    uint64_t prev_end = 0;
    int at = 0;
    for (; at < b->nr; at++) {
        if (b->r[at].off - prev_end >= size) break;
        prev_end = align_up(b->r[at].off + b->r[at].size, VKD_ALIGN);
    }
    if (at == b->nr && b->size - prev_end < size) return UINT64_MAX;
    if (b->nr == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 16;
        b->r = realloc(b->r, b->cap * sizeof *b->r);
    }
    memmove(b->r + at + 1, b->r + at, (b->nr - at) * sizeof *b->r);
    b->r[at].off = prev_end;
    b->r[at].size = size;
    b->nr++;
    return prev_end;
}

// An allocation starts at 0 (parameters, gradient buffers and optimizer state), its alignment
// padding included (a quad read past a tensor's end reads zeros). Only its own range: zeroing a
// new 64 MiB block whole touched every page of it in every process (lavapipe's device memory is
// host memory), ~10% of a short GMM run's CPU time, for the few MiB its tensors use.
static int zero_range(vkd_ctx *ctx, vkd_block *b, uint64_t off, uint64_t size, vkd_alloc *out) {
    *out = (vkd_alloc){b, off};
    if (b->mapped) {
        memset((char *)b->mapped + off, 0, size);
        return 0;
    }
    if (vkd_fill_zero(ctx, b, off, size) == 0) return 0;
    vkd_free_persistent(ctx, *out);  // (a failed submission: the range goes back)
    *out = (vkd_alloc){0};
    return -1;
}

int vkd_alloc_persistent(vkd_ctx *ctx, uint64_t size, int host, const char *what, vkd_alloc *out) {
    size = align_up(size ? size : 4, VKD_ALIGN);
    vkd_block **list = host ? &ctx->host_blocks : &ctx->dev_blocks;
    for (vkd_block *b = *list; b; b = b->next) {
        uint64_t off = block_fit(b, size);
        if (off != UINT64_MAX) return zero_range(ctx, b, off, size, out);
    }
    uint64_t bs = size > VKD_BLOCK_MIN ? size : VKD_BLOCK_MIN;
    if (host) bs = size > (1u << 20) ? size : (1u << 20);  // per-step scalars are tiny
    if (ctx->f.max_alloc && bs > ctx->f.max_alloc && size <= ctx->f.max_alloc) bs = ctx->f.max_alloc;
    // Under a memory cap a smaller block than usual may still fit.
    uint64_t room = cap_room(ctx) / VKD_ALIGN * VKD_ALIGN;
    if (bs > room && size <= room) bs = room;
    vkd_block *b = vkd_block_create(ctx, bs, host, what);
    if (!b) return -1;
    b->next = *list;
    *list = b;
    return zero_range(ctx, b, block_fit(b, size), size, out);
}

void vkd_free_persistent(vkd_ctx *ctx, vkd_alloc a) {
    vkd_block *b = a.block;
    if (!b) return;
    for (int i = 0; i < b->nr; i++)
        if (b->r[i].off == a.off) {
            memmove(b->r + i, b->r + i + 1, (b->nr - i - 1) * sizeof *b->r);
            b->nr--;
            break;
        }
    (void)ctx;
}

void vkd_blocks_destroy_all(vkd_ctx *ctx) {
    vkd_block *lists[2] = {ctx->dev_blocks, ctx->host_blocks};
    for (int l = 0; l < 2; l++)
        for (vkd_block *b = lists[l], *nx; b; b = nx) {
            nx = b->next;
            vkd_block_destroy(ctx, b);
        }
    ctx->dev_blocks = ctx->host_blocks = NULL;
    vkd_block_destroy(ctx, ctx->staging);
    ctx->staging = NULL;
}

// ---------------------------------------------------------------- one-shot commands
VkCommandBuffer vkd_cmd_begin(vkd_ctx *ctx) {
    VkCommandBufferAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                      .commandPool = ctx->pool,
                                      .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                      .commandBufferCount = 1};
    VkCommandBuffer cb;
    vkAllocateCommandBuffers(ctx->device, &ai, &cb);
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                   .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
    vkBeginCommandBuffer(cb, &bi);
    return cb;
}

int vkd_cmd_submit_wait(vkd_ctx *ctx, VkCommandBuffer cb) {
    vkEndCommandBuffer(cb);
    VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &cb};
    VkResult r = vkQueueSubmit(ctx->queue, 1, &si, ctx->fence);
    if (r == VK_SUCCESS) r = vkWaitForFences(ctx->device, 1, &ctx->fence, VK_TRUE, UINT64_MAX);
    vkResetFences(ctx->device, 1, &ctx->fence);
    vkFreeCommandBuffers(ctx->device, ctx->pool, 1, &cb);
    if (r != VK_SUCCESS) {
        vkd_set_error(ctx, "%s: queue submission failed: %s", ctx->f.name, vkd_result_str(r));
        return -1;
    }
    return 0;
}

void vkd_cmd_barrier(VkCommandBuffer cb) {
    VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                          .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT,
                          .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT};
    vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1, &mb, 0,
                         NULL, 0, NULL);
}

// Transfers finish with a barrier that makes them visible to everything after
// (later submissions included): the recorded steps start from visible memory.
static void transfer_done_barrier(VkCommandBuffer cb) {
    VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                          .srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
                          .dstAccessMask = VK_ACCESS_MEMORY_READ_BIT | VK_ACCESS_MEMORY_WRITE_BIT |
                                           VK_ACCESS_HOST_READ_BIT};
    vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_TRANSFER_BIT,
                         VK_PIPELINE_STAGE_ALL_COMMANDS_BIT | VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb, 0, NULL, 0, NULL);
}

static int ensure_staging(vkd_ctx *ctx, uint64_t bytes) {
    uint64_t want = bytes < (16ull << 20) ? bytes : (16ull << 20);
    if (ctx->staging && ctx->staging->size >= want) return 0;
    uint64_t had = ctx->staging ? ctx->staging->size : 0;
    vkd_block_destroy(ctx, ctx->staging);
    ctx->staging = vkd_block_create(ctx, want < (1u << 20) ? (1u << 20) : want, 1, "staging buffer");
    // Copies are chunked by the staging size, so a larger buffer only saves
    // submissions: when memory is short (a checkpoint download late in a run),
    // the size that worked before still does the job.
    if (!ctx->staging && had) ctx->staging = vkd_block_create(ctx, had, 1, "staging buffer");
    return ctx->staging ? 0 : -1;
}

int vkd_upload(vkd_ctx *ctx, vkd_block *dst, uint64_t off, const void *src, uint64_t bytes) {
    if (dst->mapped) {
        memcpy((char *)dst->mapped + off, src, bytes);
        return 0;
    }
    if (ensure_staging(ctx, bytes)) return -1;
    for (uint64_t done = 0; done < bytes;) {
        uint64_t n = bytes - done < ctx->staging->size ? bytes - done : ctx->staging->size;
        memcpy(ctx->staging->mapped, (const char *)src + done, n);
        VkCommandBuffer cb = vkd_cmd_begin(ctx);
        VkBufferCopy c = {.srcOffset = 0, .dstOffset = off + done, .size = n};
        vkCmdCopyBuffer(cb, ctx->staging->buf, dst->buf, 1, &c);
        transfer_done_barrier(cb);
        if (vkd_cmd_submit_wait(ctx, cb)) return -1;
        done += n;
    }
    return 0;
}

int vkd_download(vkd_ctx *ctx, vkd_block *src, uint64_t off, void *dst, uint64_t bytes) {
    if (src->mapped) {
        memcpy(dst, (const char *)src->mapped + off, bytes);
        return 0;
    }
    if (ensure_staging(ctx, bytes)) return -1;
    for (uint64_t done = 0; done < bytes;) {
        uint64_t n = bytes - done < ctx->staging->size ? bytes - done : ctx->staging->size;
        VkCommandBuffer cb = vkd_cmd_begin(ctx);
        VkBufferCopy c = {.srcOffset = off + done, .dstOffset = 0, .size = n};
        vkCmdCopyBuffer(cb, src->buf, ctx->staging->buf, 1, &c);
        transfer_done_barrier(cb);
        if (vkd_cmd_submit_wait(ctx, cb)) return -1;
        memcpy((char *)dst + done, ctx->staging->mapped, n);
        done += n;
    }
    return 0;
}

int vkd_fill_zero(vkd_ctx *ctx, vkd_block *dst, uint64_t off, uint64_t bytes) {
    VkCommandBuffer cb = vkd_cmd_begin(ctx);
    vkCmdFillBuffer(cb, dst->buf, off, align_up(bytes, 4), 0);
    transfer_done_barrier(cb);
    return vkd_cmd_submit_wait(ctx, cb);
}
