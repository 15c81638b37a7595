// Compute pipelines, created on first use from the embedded SPIR-V and a set of
// specialization constants (constant_id i = spec[i]); a VkPipelineCache is kept
// on disk so that later runs skip the driver's compiler.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vk/shader_registry.h"
#include "vk/vk.h"

static const vkd_shader_blob *find_blob(const char *name) {
    for (const vkd_shader_blob *b = vkd_shader_blobs; b->name; b++)
        if (strcmp(b->name, name) == 0) return b;
    return NULL;
}

vkd_pipeline *vkd_pipeline_get(vkd_ctx *ctx, const char *shader, const uint32_t *spec, int nspec) {
    for (vkd_pipeline *p = ctx->pipelines; p; p = p->next)
        if (p->nspec == nspec && strcmp(p->shader, shader) == 0 &&
            (nspec == 0 || memcmp(p->spec, spec, nspec * sizeof *spec) == 0))
            return p;
    const vkd_shader_blob *blob = find_blob(shader);
    if (!blob) {
        vkd_set_error(ctx, "internal: no embedded shader named '%s'", shader);
        return NULL;
    }
    if (nspec > VKD_MAX_SPEC) {
        vkd_set_error(ctx, "internal: shader '%s' given %d specialization constants (max %d)", shader, nspec,
                      VKD_MAX_SPEC);
        return NULL;
    }
    VkShaderModuleCreateInfo smci = {.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
                                     .codeSize = blob->size,
                                     .pCode = blob->code};
    VkShaderModule mod;
    VkResult r = vkCreateShaderModule(ctx->device, &smci, NULL, &mod);
    if (r != VK_SUCCESS) {
        vkd_set_error(ctx, "creating shader module '%s' failed: %s", shader, vkd_result_str(r));
        return NULL;
    }
    VkSpecializationMapEntry map[VKD_MAX_SPEC];
    for (int i = 0; i < nspec; i++) map[i] = (VkSpecializationMapEntry){(uint32_t)i, (uint32_t)(i * 4), 4};
    VkSpecializationInfo si = {.mapEntryCount = (uint32_t)nspec,
                               .pMapEntries = map,
                               .dataSize = nspec * sizeof(uint32_t),
                               .pData = spec};
    VkComputePipelineCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
                                      .stage = {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
                                                .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                                                .module = mod,
                                                .pName = "main",
                                                .pSpecializationInfo = nspec ? &si : NULL},
                                      .layout = ctx->layout};
    vkd_pipeline *p = calloc(1, sizeof *p);
    r = vkCreateComputePipelines(ctx->device, ctx->cache, 1, &ci, NULL, &p->pipe);
    vkDestroyShaderModule(ctx->device, mod, NULL);
    if (r != VK_SUCCESS) {
        vkd_set_error(ctx, "creating pipeline '%s' failed: %s", shader, vkd_result_str(r));
        free(p);
        return NULL;
    }
    snprintf(p->shader, sizeof p->shader, "%s", shader);
    p->nspec = nspec;
    if (nspec) memcpy(p->spec, spec, nspec * sizeof *spec);
    p->next = ctx->pipelines;
    ctx->pipelines = p;
    return p;
}

void vkd_pipelines_destroy(vkd_ctx *ctx) {
    for (vkd_pipeline *p = ctx->pipelines, *nx; p; p = nx) {
        nx = p->next;
        vkDestroyPipeline(ctx->device, p->pipe, NULL);
        free(p);
    }
    ctx->pipelines = NULL;
    if (ctx->cache) vkDestroyPipelineCache(ctx->device, ctx->cache, NULL);
    ctx->cache = VK_NULL_HANDLE;
}

static int mkdir_p(char *path) {
    for (char *s = path + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            if (mkdir(path, 0755) && errno != EEXIST) return (*s = '/', -1);
            *s = '/';
        }
    return mkdir(path, 0755) && errno != EEXIST ? -1 : 0;
}

// The cache file is per device and driver version: the driver also checks the
// header (vendor, device, pipelineCacheUUID) and ignores data that does not match.
int vkd_pipeline_cache_open(vkd_ctx *ctx) {
    const char *env = getenv("VKD_CACHE_DIR"), *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    char dir[900];
    if (env && !*env) dir[0] = 0;  // VKD_CACHE_DIR= disables the disk cache
    else if (env) snprintf(dir, sizeof dir, "%s", env);
    else if (xdg && *xdg) snprintf(dir, sizeof dir, "%s/vkdistill", xdg);
    else if (home && *home) snprintf(dir, sizeof dir, "%s/.cache/vkdistill", home);
    else dir[0] = 0;
    void *data = NULL;
    size_t len = 0;
    if (dir[0] && mkdir_p(dir) == 0) {
        snprintf(ctx->cache_path, sizeof ctx->cache_path, "%s/pipelines-%04x-%04x-%08x.bin", dir, ctx->f.vendor_id,
                 ctx->f.device_id, ctx->f.driver_version);
        FILE *f = fopen(ctx->cache_path, "rb");
        if (f) {
            fseek(f, 0, SEEK_END);
            long n = ftell(f);
            fseek(f, 0, SEEK_SET);
            if (n > 0 && n < (64l << 20)) {
                data = malloc(n);
                len = fread(data, 1, n, f) == (size_t)n ? (size_t)n : 0;
            }
            fclose(f);
        }
    }
    VkPipelineCacheCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO,
                                    .initialDataSize = len,
                                    .pInitialData = len ? data : NULL};
    VkResult r = vkCreatePipelineCache(ctx->device, &ci, NULL, &ctx->cache);
    if (r != VK_SUCCESS && len) {  // a damaged file: start empty
        ci.initialDataSize = 0;
        ci.pInitialData = NULL;
        r = vkCreatePipelineCache(ctx->device, &ci, NULL, &ctx->cache);
    }
    free(data);
    return r == VK_SUCCESS ? 0 : -1;
}

// Written to a temporary file and renamed, so a crash never leaves half a cache.
void vkd_pipeline_cache_save(vkd_ctx *ctx) {
    if (!ctx->cache || !ctx->cache_path[0]) return;
    size_t len = 0;
    if (vkGetPipelineCacheData(ctx->device, ctx->cache, &len, NULL) != VK_SUCCESS || !len) return;
    void *data = malloc(len);
    if (vkGetPipelineCacheData(ctx->device, ctx->cache, &len, data) == VK_SUCCESS) {
        char tmp[1100];
        snprintf(tmp, sizeof tmp, "%s.%d.tmp", ctx->cache_path, (int)getpid());
        FILE *f = fopen(tmp, "wb");
        if (f) {
            int ok = fwrite(data, 1, len, f) == len;
            ok &= fclose(f) == 0;
            if (ok) rename(tmp, ctx->cache_path);
            else remove(tmp);
        }
    }
    free(data);
}
