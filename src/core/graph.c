// The recorded graph: dispatches appended by ops, a liveness-based memory plan,
// one command buffer recorded once and replayed every run, barriers only where
// a dispatch touches memory an earlier one wrote (or writes memory an earlier
// one read) since the last barrier, and optional per-dispatch GPU timestamps.
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/graph.h"

static atomic_uint g_serial;  // unique over threads too: ranks may be threads

vkd_graph *vkd_graph_new(vkd_ctx *ctx, const char *name) {
    vkd_graph *g = calloc(1, sizeof *g);
    g->ctx = ctx;
    g->serial = atomic_fetch_add(&g_serial, 1) + 1;
    g->grad_enabled = 1;
    snprintf(g->name, sizeof g->name, "%s", name ? name : "graph");
    return g;
}

void vkd_graph_fail(vkd_graph *g, const char *fmt, ...) {
    if (g->err[0]) return;  // the first error is the one that explains the others
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g->err, sizeof g->err, fmt, ap);
    va_end(ap);
}

int vkd_graph_failed(const vkd_graph *g) { return g->err[0] != 0; }
const char *vkd_graph_error(const vkd_graph *g) { return g->err; }
void vkd_graph_set_grad_enabled(vkd_graph *g, int on) { g->grad_enabled = on; }
int vkd_graph_grad_enabled(const vkd_graph *g) { return g->grad_enabled; }
void vkd_graph_set_samples(vkd_graph *g, int64_t n) { g->samples = n > 0 ? n : 0; }
void vkd_graph_set_run_samples(vkd_graph *g, int64_t n) { g->run_samples = n > 0 ? n : 0; }
int64_t vkd_graph_runs(const vkd_graph *g) {
    if (g->samples <= 0) return 0;
    int64_t per = g->run_samples > 0 ? g->run_samples : 1;
    return (g->samples + per - 1) / per;
}
uint64_t vkd_graph_arena_bytes(const vkd_graph *g) {
    uint64_t b = 0;
    for (int i = 0; i < g->narena; i++) b += g->arena[i]->size;
    return b;
}
int vkd_graph_arena_count(const vkd_graph *g) { return g->narena; }
void vkd_graph_set_arena_limit(vkd_graph *g, uint64_t bytes) { g->arena_limit = bytes; }
int vkd_graph_dispatch_count(const vkd_graph *g) { return g->ndisp; }

void vkd_graph_keep(vkd_graph *g, vkd_tensor *t) {
    if (!t) return;
    vkd_tensor *r = (vkd_tensor *)vkd_tensor_root(t);
    if (r->graph == g) r->keep = 1;
}

int vkd_graph_dispatch(vkd_graph *g, const char *name, const char *shader, const uint32_t *spec, int nspec,
                       uint32_t gx, uint32_t gy, uint32_t gz, const void *push, uint32_t push_size,
                       const vkd_arg *args, int nargs) {
    return vkd_graph_dispatch_texel(g, name, shader, spec, nspec, gx, gy, gz, push, push_size, args, nargs, NULL, 0);
}

void vkd_graph_own(vkd_graph *g, vkd_tensor *t) {
    if (!t) return;
    g->owned = realloc(g->owned, (size_t)(g->nowned + 1) * sizeof *g->owned);
    g->owned[g->nowned++] = t;
}

static int can_add(vkd_graph *g, const char *name) {
    if (vkd_graph_failed(g)) return 0;
    if (g->compiled) {
        vkd_graph_fail(g, "%s: graph '%s' is already compiled; ops can no longer be added", name, g->name);
        return 0;
    }
    return 1;
}

// A zeroed node at the end of the list, its args checked and copied (NULL on failure).
static vkd_dispatch *new_node(vkd_graph *g, const char *name, const vkd_arg *args, int nargs) {
    if (g->ndisp == g->capdisp) {
        g->capdisp = g->capdisp ? 2 * g->capdisp : 64;
        g->disp = realloc(g->disp, g->capdisp * sizeof *g->disp);
    }
    vkd_dispatch *d = &g->disp[g->ndisp];
    memset(d, 0, sizeof *d);
    d->name = name;
    d->nargs = nargs;
    for (int i = 0; i < nargs; i++) {
        if (!args[i].t) {
            vkd_graph_fail(g, "internal: %s given a NULL tensor", name);
            return NULL;
        }
        vkd_tensor *r = (vkd_tensor *)vkd_tensor_root(args[i].t);
        if (r->graph && r->graph != g) {
            vkd_graph_fail(g, "%s: tensor '%s' belongs to another graph", name, r->name);
            return NULL;
        }
        d->args[i] = args[i];
    }
    return d;
}

int vkd_graph_copy(vkd_graph *g, const char *name, vkd_tensor *dst, int nparts, vkd_tensor *const *src,
                   const vkd_copy_rows *rows) {
    if (!can_add(g, name)) return -1;
    if (nparts < 1 || nparts > VKD_COPY_PARTS || !dst) {
        vkd_graph_fail(g, "internal: %s copies %d parts", name, nparts);
        return -1;
    }
    vkd_arg args[1 + VKD_COPY_PARTS] = {{0, VKD_W, dst}};
    for (int p = 0; p < nparts; p++) {
        const vkd_copy_rows *c = &rows[p];
        uint64_t dend = c->dst_off + (c->rows - 1) * c->dst_stride + c->len;
        uint64_t send = c->src_off + (c->rows - 1) * c->src_stride + c->len;
        if (c->rows == 0 || c->len == 0 || !src[p] || dend > (uint64_t)dst->numel || send > (uint64_t)src[p]->numel) {
            vkd_graph_fail(g, "internal: %s copies outside its tensors", name);
            return -1;
        }
        args[1 + p] = (vkd_arg){0, VKD_R, src[p]};
    }
    vkd_dispatch *d = new_node(g, name, args, 1 + nparts);
    if (!d) return -1;
    d->ncopy = nparts;
    memcpy(d->copy, rows, nparts * sizeof *rows);
    g->ncopies++;
    g->ndisp++;
    return 0;
}

int vkd_graph_zero(vkd_graph *g, const char *name, vkd_tensor *dst) {
    if (!can_add(g, name)) return -1;
    vkd_arg arg = {0, VKD_W, dst};
    vkd_dispatch *d = new_node(g, name, &arg, 1);
    if (!d) return -1;
    d->ncopy = 0;
    g->ncopies++;
    g->ndisp++;
    return 0;
}

int vkd_graph_dispatch_texel(vkd_graph *g, const char *name, const char *shader, const uint32_t *spec, int nspec,
                             uint32_t gx, uint32_t gy, uint32_t gz, const void *push, uint32_t push_size,
                             const vkd_arg *args, int nargs, const vkd_texel *texel, int ntexel) {
    if (!can_add(g, name)) return -1;
    if (push_size > VKD_PUSH_MAX || nargs > VKD_MAX_ARGS || ntexel > VKD_TEXEL_BINDINGS + VKD_STORE_BINDINGS) {
        vkd_graph_fail(g, "internal: %s push block too large", name);
        return -1;
    }
    const vkd_features *f = &g->ctx->f;
    if (gx > f->max_wg_count[0] || gy > f->max_wg_count[1] || gz > f->max_wg_count[2]) {
        vkd_graph_fail(g, "%s: dispatch of %ux%ux%u workgroups exceeds the device limit %ux%ux%u", name, gx, gy, gz,
                       f->max_wg_count[0], f->max_wg_count[1], f->max_wg_count[2]);
        return -1;
    }
    if (gx == 0 || gy == 0 || gz == 0) return 0;
    vkd_pipeline *p = vkd_pipeline_get(g->ctx, shader, spec, nspec);
    if (!p) {
        vkd_graph_fail(g, "%s", vkd_ctx_error(g->ctx));
        return -1;
    }
    vkd_dispatch *d = new_node(g, name, args, nargs);
    if (!d) return -1;
    d->pipe = p;
    d->groups[0] = gx, d->groups[1] = gy, d->groups[2] = gz;
    memcpy(d->push, push, push_size);
    d->push_size = push_size;
    for (int i = 0; i < ntexel; i++) {
        int store = texel[i].binding >= VKD_TEXEL_BINDINGS;
        if (texel[i].arg >= nargs || texel[i].binding >= VKD_TEXEL_BINDINGS + VKD_STORE_BINDINGS ||
            (uint32_t)texel[i].first_at + 4 > push_size || (store && !g->ctx->sbuf)) {
            vkd_graph_fail(g, "internal: %s texel operand %d out of range", name, i);
            return -1;
        }
        d->texel[i] = texel[i];
    }
    d->ntexel = ntexel;
    g->ndisp++;
    return 0;
}

// ---------------------------------------------------------------- memory plan
typedef struct {
    vkd_tensor *t;
    uint64_t size, off;
    int arena;
} plan_item;

static int by_size_desc(const void *a, const void *b) {
    const plan_item *x = a, *y = b;
    if (x->size != y->size) return x->size < y->size ? 1 : -1;
    return x->t->id - y->t->id;
}

static int by_off(const void *a, const void *b) {
    const plan_item *x = *(plan_item *const *)a, *y = *(plan_item *const *)b;
    return x->off < y->off ? -1 : x->off > y->off;
}

// Greedy offset assignment: biggest tensors first, each at the lowest offset
// that does not overlap a placed tensor whose lifetime intersects its own, in
// the first arena where it ends within `limit` bytes (a new arena when none
// has room: a device caps each allocation, and large batches exceed it).
// Returns the number of arenas; sizes[a] gets each one's extent.
static int plan_memory(vkd_graph *g, uint64_t limit, uint64_t sizes[VKD_MAX_ARENAS]) {
    for (int i = 0; i < g->ntensors; i++) g->tensors[i]->def = g->tensors[i]->last = -1;
    for (int i = 0; i < g->ndisp; i++) {
        vkd_dispatch *d = &g->disp[i];
        for (int a = 0; a < d->nargs; a++) {
            vkd_tensor *r = (vkd_tensor *)vkd_tensor_root(d->args[a].t);
            if (r->graph != g) continue;
            if (r->def < 0) {
                if (!(d->args[a].access & VKD_W)) {
                    vkd_graph_fail(g, "internal: %s reads '%s' before anything writes it", d->name, r->name);
                    return -1;
                }
                r->def = i;
            }
            r->last = i;
        }
    }
    int n = 0;
    plan_item *items = calloc(g->ntensors ? g->ntensors : 1, sizeof *items);
    for (int i = 0; i < g->ntensors; i++) {
        vkd_tensor *t = g->tensors[i];
        if (t->base || t->def < 0) continue;
        if (t->keep) t->last = g->ndisp;
        items[n].t = t;
        items[n].size = (t->numel * 4 + VKD_ALIGN - 1) / VKD_ALIGN * VKD_ALIGN;
        n++;
    }
    qsort(items, n, sizeof *items, by_size_desc);
    plan_item **live = calloc(n ? n : 1, sizeof *live);
    int narena = 0;
    for (int i = 0; i < n && !vkd_graph_failed(g); i++) {
        if (limit && items[i].size > limit) {
            vkd_graph_fail(g, "graph '%s': activation '%s' needs %.1f MiB, more than one allocation may hold (%.1f MiB); use a smaller batch",
                           g->name, items[i].t->name, items[i].size / 1048576.0, limit / 1048576.0);
            break;
        }
        for (int a = 0;; a++) {
            if (a == narena) {
                if (narena == VKD_MAX_ARENAS) {
                    vkd_graph_fail(g, "graph '%s': activations need more than %d allocations of %.1f MiB; use a smaller batch",
                                   g->name, VKD_MAX_ARENAS, limit / 1048576.0);
                    break;
                }
                sizes[narena++] = 0;
            }
            int nl = 0;
            for (int j = 0; j < i; j++)
                if (items[j].arena == a && items[j].t->def <= items[i].t->last && items[i].t->def <= items[j].t->last)
                    live[nl++] = &items[j];
            qsort(live, nl, sizeof *live, by_off);
            uint64_t off = 0;
            for (int j = 0; j < nl; j++) {
                if (live[j]->off >= off + items[i].size) break;
                if (live[j]->off + live[j]->size > off) off = live[j]->off + live[j]->size;
            }
            if (limit && off + items[i].size > limit) continue;
            items[i].off = off, items[i].arena = a;
            if (off + items[i].size > sizes[a]) sizes[a] = off + items[i].size;
            break;
        }
    }
    for (int i = 0; i < n; i++) items[i].t->mem.off = items[i].off, items[i].t->plan_arena = items[i].arena;
    free(live);
    free(items);
    return vkd_graph_failed(g) ? -1 : narena;
}

// ---------------------------------------------------------------- recording
typedef struct {
    const vkd_block *b;
    uint64_t lo, hi;
} range;

static range arg_range(const vkd_arg *a) {
    const vkd_tensor *r = vkd_tensor_root(a->t);
    uint64_t lo = r->mem.off + a->t->view_off;
    return (range){r->mem.block, lo, lo + a->t->numel * 4};
}

static int overlaps(range x, const range *list, int n) {
    for (int i = 0; i < n; i++)
        if (list[i].b == x.b && x.lo < list[i].hi && list[i].lo < x.hi) return 1;
    return 0;
}

// Between two nodes that touch the same memory. A graph with copy nodes also orders the
// transfer stage; one without keeps the plain compute-to-compute barrier.
static void node_barrier(const vkd_graph *g, VkCommandBuffer cb) {
    if (!g->ncopies) {
        vkd_cmd_barrier(cb);
        return;
    }
    VkPipelineStageFlags st = VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT;
    VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                          .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
                          .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT |
                                           VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT};
    vkCmdPipelineBarrier(cb, st, st, 0, 1, &mb, 0, NULL, 0, NULL);
}

// A copy node: per part, one region per row (one in all when both sides are contiguous).
static void record_copy(VkCommandBuffer cb, const vkd_dispatch *d) {
    range dst = arg_range(&d->args[0]);
    if (!d->ncopy) vkCmdFillBuffer(cb, dst.b->buf, dst.lo, dst.hi - dst.lo, 0);  // vkd_graph_zero
    for (int p = 0; p < d->ncopy; p++) {
        range src = arg_range(&d->args[1 + p]);
        const vkd_copy_rows *c = &d->copy[p];
        int whole = c->rows == 1 || (c->dst_stride == c->len && c->src_stride == c->len);
        uint64_t n = whole ? 1 : c->rows, len = whole ? c->rows * c->len : c->len;
        VkBufferCopy *reg = malloc(n * sizeof *reg);
        for (uint64_t r = 0; r < n; r++)
            reg[r] = (VkBufferCopy){.srcOffset = src.lo + (c->src_off + r * c->src_stride) * 4,
                                    .dstOffset = dst.lo + (c->dst_off + r * c->dst_stride) * 4,
                                    .size = len * 4};
        vkCmdCopyBuffer(cb, src.b->buf, dst.b->buf, (uint32_t)n, reg);
        free(reg);
    }
}

// Descriptor sets for the dispatches with texel operands (NULL entries for
// the others); bound right before their dispatch.
static VkDescriptorSet *texel_sets(vkd_graph *g) {
    vkd_ctx *ctx = g->ctx;
    int nsets = 0;
    for (int i = 0; i < g->ndisp; i++) nsets += g->disp[i].ntexel > 0;
    VkDescriptorSet *sets = calloc((size_t)g->ndisp + 1, sizeof *sets);
    if (!nsets) return sets;
    VkDescriptorPoolSize ps[2] = {{VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER, (uint32_t)nsets * VKD_TEXEL_BINDINGS},
                                  {VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, (uint32_t)nsets * VKD_STORE_BINDINGS}};
    VkDescriptorPoolCreateInfo pi = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
                                     .maxSets = (uint32_t)nsets,
                                     .poolSizeCount = 2,
                                     .pPoolSizes = ps};
    VkResult r = vkCreateDescriptorPool(ctx->device, &pi, NULL, &g->texel_pool);
    g->texel_views = calloc((size_t)nsets * VKD_TEXEL_BINDINGS, sizeof *g->texel_views);
    for (int i = 0; i < g->ndisp && r == VK_SUCCESS; i++) {
        vkd_dispatch *d = &g->disp[i];
        VkBufferView views[VKD_TEXEL_BINDINGS];
        VkDescriptorBufferInfo bufs[VKD_STORE_BINDINGS];
        for (int b = 0; b < VKD_TEXEL_BINDINGS; b++) views[b] = ctx->texel_dummy_view;
        for (int b = 0; b < VKD_STORE_BINDINGS; b++) bufs[b] = vkd_sbuf_dummy(ctx);
        for (int k = 0; k < d->ntexel && r == VK_SUCCESS; k++) {
            const vkd_tensor *t = d->args[d->texel[k].arg].t, *root = vkd_tensor_root(t);
            uint32_t first;
            if (d->texel[k].binding >= VKD_TEXEL_BINDINGS) {
                uint64_t off = root->mem.off + t->view_off;
                if (off % 16) {
                    vkd_set_error(ctx, "internal: %s writes '%s' in vec4s but it does not start on 16 bytes", d->name,
                                  t->name);
                    r = VK_ERROR_UNKNOWN;
                    break;
                }
                bufs[d->texel[k].binding - VKD_TEXEL_BINDINGS] =
                    vkd_sbuf_range(ctx, root->mem.block, off, (uint64_t)t->numel * 4, &first);
                memcpy(d->push + d->texel[k].first_at, &first, sizeof first);
                continue;
            }
            if (d->texel[k].vec4 && ((root->mem.off + t->view_off) % 16 || (t->numel % 4 && d->texel[k].vec4 != 2))) {
                vkd_set_error(ctx, "internal: %s reads '%s' in vec4s but it is not 16-byte aligned whole vec4s", d->name,
                              t->name);
                r = VK_ERROR_UNKNOWN;
                break;
            }
            VkBufferView v =
                vkd_texel_view(ctx, root->mem.block, root->mem.off + t->view_off, (uint64_t)t->numel * 4,
                               d->texel[k].vec4 ? 16 : 4, &first);
            if (!v) {
                r = VK_ERROR_UNKNOWN;
                break;
            }
            g->texel_views[g->ntexel_views++] = v;
            views[d->texel[k].binding] = v;
            memcpy(d->push + d->texel[k].first_at, &first, sizeof first);
        }
        if (!d->ntexel || r != VK_SUCCESS) continue;
        VkDescriptorSetAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
                                          .descriptorPool = g->texel_pool,
                                          .descriptorSetCount = 1,
                                          .pSetLayouts = &ctx->texel_dsl};
        r = vkAllocateDescriptorSets(ctx->device, &ai, &sets[i]);
        if (r == VK_SUCCESS) vkd_texel_write_set(ctx, sets[i], views, bufs);
    }
    if (r != VK_SUCCESS) {
        vkd_graph_fail(g, "graph '%s': texel views: %s", g->name, ctx->err[0] ? ctx->err : vkd_result_str(r));
        free(sets);
        return NULL;
    }
    return sets;
}

int vkd_graph_compile(vkd_graph *g) {
    if (g->compiled) return 0;
    if (vkd_graph_failed(g)) return -1;
    vkd_ctx *ctx = g->ctx;
    if (vkd_pipelines_create(ctx)) {
        vkd_graph_fail(g, "%s", vkd_ctx_error(ctx));
        return -1;
    }
    uint64_t limit = g->arena_limit ? g->arena_limit : ctx->f.max_alloc;
    const char *env = getenv("VKD_ARENA_LIMIT");
    if (!g->arena_limit && env && strtoull(env, NULL, 10) > 0) limit = strtoull(env, NULL, 10);
    if (limit) limit = limit < VKD_ALIGN ? VKD_ALIGN : limit / VKD_ALIGN * VKD_ALIGN;
    uint64_t sizes[VKD_MAX_ARENAS];
    int narena = plan_memory(g, limit, sizes);
    if (narena < 0) return -1;
    for (int a = 0; a < narena; a++) {
        char what[160];
        snprintf(what, sizeof what, "the activations of graph '%s' (part %d of %d)", g->name, a + 1, narena);
        g->arena[a] = vkd_block_create(ctx, sizes[a], 0, what);
        if (!g->arena[a]) {
            vkd_graph_fail(g, "%s", vkd_ctx_error(ctx));
            return -1;
        }
        g->narena = a + 1;
    }
    for (int i = 0; i < g->ntensors; i++) {
        vkd_tensor *t = g->tensors[i];
        if (!t->base && t->def >= 0) t->mem.block = g->arena[t->plan_arena];
    }
    const char *level = getenv("VKD_PROFILE");
    g->prof_level = level && ctx->f.timestamp_bits > 0 ? atoi(level) : 0;
    int profile = g->prof_level > 0;
    if (profile && g->ndisp) {
        VkQueryPoolCreateInfo qi = {.sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO,
                                    .queryType = VK_QUERY_TYPE_TIMESTAMP,
                                    .queryCount = (uint32_t)g->ndisp + 1};
        if (vkCreateQueryPool(ctx->device, &qi, NULL, &g->qpool) == VK_SUCCESS)
            g->prof_ns = calloc(2 * (size_t)g->ndisp, sizeof *g->prof_ns), g->prof_first = g->prof_ns + g->ndisp;
    }

    VkDescriptorSet *sets = texel_sets(g);
    if (!sets) return -1;
    VkCommandBufferAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                      .commandPool = ctx->pool,
                                      .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                      .commandBufferCount = 1};
    vkAllocateCommandBuffers(ctx->device, &ai, &g->cmd);
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
    vkBeginCommandBuffer(g->cmd, &bi);
    VkCommandBuffer cb = g->cmd;
    // Everything before this step (transfers, earlier steps) is visible to it.
    VkPipelineStageFlags stages =
        VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | (g->ncopies ? VK_PIPELINE_STAGE_TRANSFER_BIT : 0);
    VkMemoryBarrier start = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                             .srcAccessMask = VK_ACCESS_MEMORY_WRITE_BIT,
                             .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT |
                                              (g->ncopies ? VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT : 0)};
    vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_ALL_COMMANDS_BIT, stages, 0, 1, &start, 0, NULL, 0, NULL);
    // Every shader may read set 0; until a dispatch binds its own, the placeholder.
    vkCmdBindDescriptorSets(cb, VK_PIPELINE_BIND_POINT_COMPUTE, ctx->layout, 0, 1, &ctx->texel_dummy, 0, NULL);
    if (g->qpool) {
        vkCmdResetQueryPool(cb, g->qpool, 0, g->ndisp + 1);
        vkCmdWriteTimestamp(cb, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, g->qpool, 0);
    }
    range *rd = malloc((size_t)(g->ndisp * VKD_MAX_ARGS + 1) * sizeof *rd);
    range *wr = malloc((size_t)(g->ndisp * VKD_MAX_ARGS + 1) * sizeof *wr);
    int nrd = 0, nwr = 0;
    VkPipeline bound = VK_NULL_HANDLE;
    VkDescriptorSet bound_set = ctx->texel_dummy;
    g->nbarriers = 0;
    for (int i = 0; i < g->ndisp; i++) {
        vkd_dispatch *d = &g->disp[i];
        int hazard = 0;
        for (int a = 0; a < d->nargs && !hazard; a++) {
            range x = arg_range(&d->args[a]);
            if ((d->args[a].access & VKD_R) && overlaps(x, wr, nwr)) hazard = 1;
            if ((d->args[a].access & VKD_W) && (overlaps(x, wr, nwr) || overlaps(x, rd, nrd))) hazard = 1;
        }
        if (hazard || g->qpool) {  // profiling serializes so each timestamp brackets one dispatch
            node_barrier(g, cb);
            g->nbarriers++;
            nrd = nwr = 0;
        }
        for (int a = 0; a < d->nargs; a++) {
            range x = arg_range(&d->args[a]);
            if (d->args[a].access & VKD_R) rd[nrd++] = x;
            if (d->args[a].access & VKD_W) wr[nwr++] = x;
            if (!d->pipe) continue;
            if (d->args[a].at == VKD_ARG_NO_ADDR) continue;
            VkDeviceAddress addr = vkd_tensor_addr(d->args[a].t);
            memcpy(d->push + d->args[a].at, &addr, sizeof addr);
        }
        if (!d->pipe) {
            record_copy(cb, d);
            if (g->qpool) vkCmdWriteTimestamp(cb, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, g->qpool, i + 1);
            continue;
        }
        if (d->pipe->pipe != bound) {
            vkCmdBindPipeline(cb, VK_PIPELINE_BIND_POINT_COMPUTE, d->pipe->pipe);
            bound = d->pipe->pipe;
        }
        // A dispatch without a set of its own gets the placeholder back, not the last one's:
        // the synchronization checks count every binding a shader declares as accessed, and a
        // texel view left bound would read as a read of memory the next dispatch may write.
        VkDescriptorSet set = sets[i] ? sets[i] : ctx->texel_dummy;
        if (set != bound_set)
            vkCmdBindDescriptorSets(cb, VK_PIPELINE_BIND_POINT_COMPUTE, ctx->layout, 0, 1, &set, 0, NULL);
        bound_set = set;
        vkCmdPushConstants(cb, ctx->layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, d->push_size, d->push);
        vkCmdDispatch(cb, d->groups[0], d->groups[1], d->groups[2]);
        if (g->qpool) vkCmdWriteTimestamp(cb, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, g->qpool, i + 1);
    }
    free(rd);
    free(wr);
    free(sets);
    // Results are visible to downloads and to the host after the step.
    VkMemoryBarrier end = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                           .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | (g->ncopies ? VK_ACCESS_TRANSFER_WRITE_BIT : 0),
                           .dstAccessMask = VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_HOST_READ_BIT |
                                            VK_ACCESS_MEMORY_READ_BIT};
    vkCmdPipelineBarrier(cb, stages,
                         VK_PIPELINE_STAGE_ALL_COMMANDS_BIT | VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &end, 0, NULL, 0,
                         NULL);
    VkResult r = vkEndCommandBuffer(cb);
    if (r != VK_SUCCESS) {
        vkd_graph_fail(g, "recording graph '%s' failed: %s", g->name, vkd_result_str(r));
        return -1;
    }
    g->compiled = 1;
    return 0;
}

int vkd_graph_run(vkd_graph *g) {
    if (vkd_graph_compile(g)) return -1;
    vkd_ctx *ctx = g->ctx;
    VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &g->cmd};
    VkResult r = vkQueueSubmit(ctx->queue, 1, &si, ctx->fence);
    if (r == VK_SUCCESS) r = vkWaitForFences(ctx->device, 1, &ctx->fence, VK_TRUE, UINT64_MAX);
    vkResetFences(ctx->device, 1, &ctx->fence);
    if (r != VK_SUCCESS) {
        vkd_graph_fail(g, "running graph '%s' on %s failed: %s", g->name, ctx->f.name, vkd_result_str(r));
        return -1;
    }
    if (g->qpool) {
        uint64_t *ts = malloc((g->ndisp + 1) * sizeof *ts);
        if (vkGetQueryPoolResults(ctx->device, g->qpool, 0, g->ndisp + 1, (g->ndisp + 1) * sizeof *ts, ts, sizeof *ts,
                                  VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT) == VK_SUCCESS) {
            // the first run apart: it touches the graph's memory for the first time
            double *acc = g->prof_runs ? g->prof_ns : g->prof_first;
            for (int i = 0; i < g->ndisp; i++) acc[i] += (double)(ts[i + 1] - ts[i]) * ctx->f.timestamp_period;
            g->prof_runs++;
        }
        free(ts);
    }
    return 0;
}

void vkd_graph_free(vkd_graph *g) {
    if (!g) return;
    vkd_ctx *ctx = g->ctx;
    vkd_graph_print_profile(g, stderr);
    if (g->cmd) vkFreeCommandBuffers(ctx->device, ctx->pool, 1, &g->cmd);
    if (g->qpool) vkDestroyQueryPool(ctx->device, g->qpool, NULL);
    for (int i = 0; i < g->ntexel_views; i++) vkDestroyBufferView(ctx->device, g->texel_views[i], NULL);
    free(g->texel_views);
    if (g->texel_pool) vkDestroyDescriptorPool(ctx->device, g->texel_pool, NULL);
    for (int a = 0; a < g->narena; a++) vkd_block_destroy(ctx, g->arena[a]);
    for (int i = 0; i < g->ntensors; i++) free(g->tensors[i]);
    free(g->tensors);
    for (int i = 0; i < g->nowned; i++) vkd_tensor_free(g->owned[i]);
    free(g->owned);
    free(g->disp);
    free(g->tape);
    free(g->prof_ns);
    free(g);
}
