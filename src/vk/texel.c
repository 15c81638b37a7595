// Uniform texel buffers as a second way for shaders to read operands.
// On llvmpipe a load through a buffer device address is a scalar loop over the
// lanes with a branch per lane (~7.9 ns a lane, measured), while a texel fetch
// is a branch-free gather (~3.2 ns): the convolutions and element-wise ops,
// which are load-bound there, read their big operands through texel views when
// ctx->texel is set. GPUs keep the buffer-address path (ctx->texel = 0), but
// every pipeline layout has the set and every step binds a valid one (the
// dummy), so the shaders are the same on both.
// The same set's last VKD_STORE_BINDINGS bindings are storage buffers through which
// the ops' _sb shader variants write their outputs' quads (ctx->sbuf, below); only
// those variants declare them, and a dispatch of one binds a real range to each.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vk/vk.h"

VkDescriptorBufferInfo vkd_sbuf_dummy(const vkd_ctx *ctx) {
    return (VkDescriptorBufferInfo){ctx->texel_dummy_block->buf, 0, VK_WHOLE_SIZE};
}

VkDescriptorBufferInfo vkd_sbuf_range(const vkd_ctx *ctx, vkd_block *b, uint64_t off, uint64_t bytes,
                                      uint32_t *first) {
    uint64_t align = ctx->f.sbuf_align > 16 ? ctx->f.sbuf_align : 16;  // so that off - start is whole vec4s
    uint64_t start = off / align * align;
    uint64_t range = off - start + (bytes + 15) / 16 * 16;
    if (start + range > b->size) range = b->size - start;
    *first = (uint32_t)((off - start) / 16);
    return (VkDescriptorBufferInfo){b->buf, start, range};
}

VkBufferView vkd_texel_view(vkd_ctx *ctx, vkd_block *b, uint64_t off, uint64_t bytes, uint32_t texel,
                            uint32_t *first) {
    uint64_t align = ctx->f.texel_align ? ctx->f.texel_align : 4;
    if (align < texel) align = texel;  // so that off - start is whole texels
    uint64_t start = off / align * align;
    uint64_t range = (off - start + bytes + texel - 1) / texel * texel;
    if (range == 0) range = texel;
    if (start + range > b->size) range = (b->size - start) / texel * texel;
    VkBufferViewCreateInfo vi = {.sType = VK_STRUCTURE_TYPE_BUFFER_VIEW_CREATE_INFO,
                                 .buffer = b->buf,
                                 .format = texel == 16 ? VK_FORMAT_R32G32B32A32_SFLOAT : VK_FORMAT_R32_SFLOAT,
                                 .offset = start,
                                 .range = range};
    VkBufferView v = VK_NULL_HANDLE;
    VkResult r = vkCreateBufferView(ctx->device, &vi, NULL, &v);
    if (r != VK_SUCCESS) {
        vkd_set_error(ctx, "creating a texel view of %llu bytes failed: %s", (unsigned long long)range,
                      vkd_result_str(r));
        return VK_NULL_HANDLE;
    }
    *first = (uint32_t)((off - start) / texel);
    return v;
}

static int texel_wanted(const vkd_ctx *ctx) {
    VkFormatProperties fp;
    vkGetPhysicalDeviceFormatProperties(ctx->phys, VK_FORMAT_R32_SFLOAT, &fp);
    if (!(fp.bufferFeatures & VK_FORMAT_FEATURE_UNIFORM_TEXEL_BUFFER_BIT)) return 0;
    const char *env = getenv("VKD_TEXEL");  // 0 / 1: override the choice (benchmarks, tests)
    if (env && *env) return atoi(env) != 0;
    return ctx->f.type == VK_PHYSICAL_DEVICE_TYPE_CPU;
}

// Storage-buffer outputs: on llvmpipe (Mesa 22.3) a store through a buffer address is a loop
// over the lanes per component, each iteration spilling the address and value vectors; a
// vec4 store to a descriptor-bound storage buffer is one loop for all four components. Measured
// on the Intel Xeon VM (one thread, 1M floats, the store under an `if` like the ops'): two 64-bit
// stores through an address (vkd_store4) 2.8 ns a float, a vec4 to a storage buffer 0.85.
// Only where the texel reads are on (the same CPU devices); VKD_SBUF=0 says no.
static int sbuf_wanted(const vkd_ctx *ctx) {
    if (!ctx->texel) return 0;
    const char *env = getenv("VKD_SBUF");
    return !(env && *env && atoi(env) == 0);
}

void vkd_texel_write_set(vkd_ctx *ctx, VkDescriptorSet set, const VkBufferView *views,
                         const VkDescriptorBufferInfo *bufs) {
    VkWriteDescriptorSet w[VKD_TEXEL_BINDINGS + VKD_STORE_BINDINGS];
    for (uint32_t i = 0; i < VKD_TEXEL_BINDINGS + VKD_STORE_BINDINGS; i++) {
        int tex = i < VKD_TEXEL_BINDINGS;
        w[i] = (VkWriteDescriptorSet){.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET,
                                      .dstSet = set,
                                      .dstBinding = i,
                                      .descriptorCount = 1,
                                      .descriptorType = tex ? VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER
                                                            : VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                      .pTexelBufferView = tex ? &views[i] : NULL,
                                      .pBufferInfo = tex ? NULL : &bufs[i - VKD_TEXEL_BINDINGS]};
    }
    vkUpdateDescriptorSets(ctx->device, VKD_TEXEL_BINDINGS + VKD_STORE_BINDINGS, w, 0, NULL);
}

int vkd_texel_init(vkd_ctx *ctx) {
    ctx->texel = texel_wanted(ctx);
    ctx->sbuf = sbuf_wanted(ctx);
    ctx->texel_dummy_block = vkd_block_create(ctx, 256, 0, "the placeholder texel view");
    if (!ctx->texel_dummy_block) return -1;
    uint32_t first;
    ctx->texel_dummy_view = vkd_texel_view(ctx, ctx->texel_dummy_block, 0, 64, 4, &first);
    if (!ctx->texel_dummy_view) return -1;
    VkDescriptorPoolSize ps[2] = {{VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER, VKD_TEXEL_BINDINGS},
                                  {VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, VKD_STORE_BINDINGS}};
    VkDescriptorPoolCreateInfo pi = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
                                     .maxSets = 1,
                                     .poolSizeCount = 2,
                                     .pPoolSizes = ps};
    VkResult r = vkCreateDescriptorPool(ctx->device, &pi, NULL, &ctx->texel_pool);
    VkDescriptorSetAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
                                      .descriptorPool = ctx->texel_pool,
                                      .descriptorSetCount = 1,
                                      .pSetLayouts = &ctx->texel_dsl};
    if (r == VK_SUCCESS) r = vkAllocateDescriptorSets(ctx->device, &ai, &ctx->texel_dummy);
    if (r != VK_SUCCESS) {
        vkd_set_error(ctx, "creating the texel descriptor set failed: %s", vkd_result_str(r));
        return -1;
    }
    VkBufferView views[VKD_TEXEL_BINDINGS];
    VkDescriptorBufferInfo bufs[VKD_STORE_BINDINGS];
    for (uint32_t i = 0; i < VKD_TEXEL_BINDINGS; i++) views[i] = ctx->texel_dummy_view;
    for (uint32_t i = 0; i < VKD_STORE_BINDINGS; i++) bufs[i] = vkd_sbuf_dummy(ctx);
    vkd_texel_write_set(ctx, ctx->texel_dummy, views, bufs);
    return 0;
}

void vkd_texel_destroy(vkd_ctx *ctx) {
    if (ctx->texel_pool) vkDestroyDescriptorPool(ctx->device, ctx->texel_pool, NULL);
    if (ctx->texel_dummy_view) vkDestroyBufferView(ctx->device, ctx->texel_dummy_view, NULL);
    vkd_block_destroy(ctx, ctx->texel_dummy_block);
    ctx->texel_pool = VK_NULL_HANDLE, ctx->texel_dummy_view = VK_NULL_HANDLE, ctx->texel_dummy_block = NULL;
}
