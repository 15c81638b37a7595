// Compute pipelines, recorded on first use from the embedded SPIR-V and a set of
// specialization constants (constant_id i = spec[i]) and created together, on
// several threads, when a graph is compiled; a VkPipelineCache is kept on disk so
// that later runs skip the driver's compiler where the driver keeps one.
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "vk/shader_registry.h"
#include "vkdistill/dist.h"
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
    vkd_pipeline *p = calloc(1, sizeof *p);
    if (!p) {
        vkd_set_error(ctx, "out of host memory recording pipeline '%s'", shader);
        return NULL;
    }
    snprintf(p->shader, sizeof p->shader, "%s", shader);
    p->blob = blob;
    p->nspec = nspec;
    if (nspec) memcpy(p->spec, spec, nspec * sizeof *spec);
    p->next = ctx->pipelines;
    ctx->pipelines = p;
    return p;
}

static double thread_cpu_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

// One pipeline; called from several threads at once (vkCreateComputePipelines and
// the pipeline cache are thread-safe; each call has its own shader module). Its
// creation's CPU time is kept: on lavapipe a large walk's pipeline costs most of a
// second in the driver's NIR passes, every process, whatever the disk caches hold.
static VkResult create_one(vkd_ctx *ctx, vkd_pipeline *p) {
    double t0 = thread_cpu_ms();
    VkShaderModuleCreateInfo smci = {.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
                                     .codeSize = p->blob->size,
                                     .pCode = p->blob->code};
    VkShaderModule mod;
    VkResult r = vkCreateShaderModule(ctx->device, &smci, NULL, &mod);
    if (r != VK_SUCCESS) return r;
    VkSpecializationMapEntry map[VKD_MAX_SPEC];
    for (int i = 0; i < p->nspec; i++) map[i] = (VkSpecializationMapEntry){(uint32_t)i, (uint32_t)(i * 4), 4};
    VkSpecializationInfo si = {.mapEntryCount = (uint32_t)p->nspec,
                               .pMapEntries = map,
                               .dataSize = p->nspec * sizeof(uint32_t),
                               .pData = p->spec};
    VkComputePipelineCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
                                      .stage = {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
                                                .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                                                .module = mod,
                                                .pName = "main",
                                                .pSpecializationInfo = p->nspec ? &si : NULL},
                                      .layout = ctx->layout};
    r = vkCreateComputePipelines(ctx->device, ctx->cache, 1, &ci, NULL, &p->pipe);
    vkDestroyShaderModule(ctx->device, mod, NULL);
    p->create_ms = thread_cpu_ms() - t0;
    return r;
}

typedef struct {
    vkd_ctx *ctx;
    vkd_pipeline **todo;
    int n;
    atomic_int next;
} create_work;

static void *create_worker(void *arg) {
    create_work *w = arg;
    for (int i; (i = atomic_fetch_add(&w->next, 1)) < w->n;) w->todo[i]->result = create_one(w->ctx, w->todo[i]);
    return NULL;
}

int vkd_compile_threads_init(vkd_ctx *ctx) {
    const char *env = getenv("VKD_COMPILE_THREADS");
    long n;
    if (env && *env) {
        char *end;
        n = strtol(env, &end, 10);
        if (*end || n < 1) {
            vkd_set_error(ctx, "VKD_COMPILE_THREADS='%s': expects a positive integer (threads creating pipelines)",
                          env);
            return -1;
        }
    } else {
        n = vkd_cpus_available();  // a rank bound to one core creates on one thread
    }
    ctx->compile_threads = n < 1 ? 1 : n > 16 ? 16 : (int)n;
    return 0;
}

int vkd_pipelines_create(vkd_ctx *ctx) {
    int n = 0;
    for (vkd_pipeline *p = ctx->pipelines; p; p = p->next) n += !p->pipe;
    if (!n) return 0;
    int nt = ctx->compile_threads > 0 ? ctx->compile_threads : 1;
    create_work w = {ctx, malloc(n * sizeof *w.todo), 0, 0};
    if (!w.todo) {
        vkd_set_error(ctx, "out of host memory creating %d pipelines", n);
        return -1;
    }
    // In the order they were asked for (the list is newest first).
    for (vkd_pipeline *p = ctx->pipelines; p; p = p->next)
        if (!p->pipe) w.todo[n - 1 - w.n++] = p;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (nt > n) nt = n;
    pthread_t th[16];
    int started = 0;
    for (; started < nt - 1; started++)
        if (pthread_create(&th[started], NULL, create_worker, &w)) break;
    create_worker(&w);  // this thread works too; fewer threads if some could not start
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ctx->pipeline_seconds += (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
    int rc = 0;
    for (int i = 0; i < w.n; i++) {
        vkd_pipeline *p = w.todo[i];
        if (p->result == VK_SUCCESS) {
            ctx->pipelines_created++;
        } else if (!rc) {
            vkd_set_error(ctx, "creating pipeline '%s' failed: %s", p->shader, vkd_result_str(p->result));
            rc = -1;
        }
        if (p->result != VK_SUCCESS) p->pipe = VK_NULL_HANDLE;
    }
    free(w.todo);
    return rc;
}

void vkd_ctx_pipeline_stats(const vkd_ctx *ctx, int *created, double *seconds) {
    if (created) *created = ctx->pipelines_created;
    if (seconds) *seconds = ctx->pipeline_seconds;
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
        snprintf(tmp, sizeof tmp, "%s.%d.%d.tmp", ctx->cache_path, (int)getpid(), vkd_comm_rank());  // ranks may be threads
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
