// Multi-tensor passes: one dispatch walks the chunks of many tensors.
// Why: a training step updates every parameter tensor (Adam, EMA, the
// gradient's norm), a few hundred tensors of a UNet. On lavapipe with worker
// threads each dispatch is a hand-off to them (~100 us a dispatch in the
// teacher step's profile, against ~10 us of work for a small tensor); on a GPU
// it is a launch. So the tensors of a pass are reached through spans of their
// memory blocks, and a table tells each workgroup which chunk of which tensor
// it updates. The arithmetic per element is the per-tensor pass's, so the bits
// are the same.
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"

static int multi_wanted(void) {
    return !vkd_env_off("VKD_MULTI");  // 0: one dispatch per tensor (tests compare the two)
}

typedef struct {
    uint32_t *rows;
    size_t n, cap;
} table_buf;

static int add_chunk(table_buf *b, const uint32_t *row) {
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 64;
        uint32_t *r = realloc(b->rows, b->cap * VKD_MULTI_STRIDE * sizeof *r);
        if (!r) return -1;
        b->rows = r;
    }
    memcpy(b->rows + b->n++ * VKD_MULTI_STRIDE, row, VKD_MULTI_STRIDE * sizeof *row);
    return 0;
}

// The group whose spans are the blocks of tuple i, a new one if there is room, or -1.
static int group_of(vkd_graph *g, int nroles, vkd_tensor **const *roles, int i, vkd_multi *groups, int *ng) {
    for (int k = 0; k < *ng; k++) {
        int same = 1;
        for (int r = 0; r < nroles; r++)
            same &= groups[k].span[r]->mem.block == vkd_tensor_root(roles[r][i])->mem.block;
        if (same) return k;
    }
    if (*ng == VKD_MULTI_GROUPS) return -1;  // full
    vkd_multi *m = &groups[*ng];
    for (int r = 0; r < nroles; r++) {
        m->span[r] = vkd_tensor_span(roles[r][i]);
        if (!m->span[r]) return -1;
        vkd_graph_own(g, m->span[r]);
    }
    return (*ng)++;
}

// One tuple's chunks: n, out = i, then each role's offset in its span.
static int add_tuple(table_buf *b, int nroles, vkd_tensor **const *roles, int i, uint64_t chunk) {
    uint64_t n = (uint64_t)roles[0][i]->numel, step = chunk ? chunk : n;
    for (uint64_t s = 0; s < n; s += step) {
        uint32_t row[VKD_MULTI_STRIDE] = {(uint32_t)(n - s < step ? n - s : step), (uint32_t)i};
        for (int r = 0; r < nroles; r++) row[2 + r] = (uint32_t)(vkd_tensor_block_elem(roles[r][i]) + s);
        if (add_chunk(b, row)) return -1;
    }
    return 0;
}

static int check_tuple(vkd_graph *g, int nroles, vkd_tensor **const *roles, int i) {
    for (int r = 0; r < nroles; r++) {
        const vkd_tensor *t = roles[r][i], *root = t ? vkd_tensor_root(t) : NULL;
        if (!t || root->graph || !root->mem.block || t->numel != roles[0][i]->numel ||
            vkd_tensor_block_elem(t) + (uint64_t)t->numel > UINT32_MAX) {
            vkd_graph_fail(g, "internal: multi-tensor pass over '%s': not a persistent tensor of its tuple's size",
                           t ? t->name : "(null)");
            return -1;
        }
    }
    return 0;
}

int vkd_multi_vec4(const vkd_graph *g, int nroles, vkd_tensor **const *roles, int n, const uint8_t *skip) {
    const vkd_ctx *ctx = g->ctx;
    if (!ctx->texel || !vkd_vec4_ok(0)) return 0;
    for (int i = 0; i < n; i++) {
        if (skip && skip[i]) continue;
        for (int r = 0; r < nroles; r++) {
            const vkd_tensor *t = roles[r][i], *root = t ? vkd_tensor_root(t) : NULL;
            if (!t || !root->mem.block || vkd_tensor_block_elem(t) % 4) return 0;
            if (!vkd_texel_fits(ctx, root->mem.block->size / 4)) return 0;  // the span's view
        }
    }
    return 1;
}

int vkd_multi_plan(vkd_graph *g, int nroles, vkd_tensor **const *roles, int n, const uint8_t *skip, uint64_t chunk,
                   vkd_multi *groups) {
    memset(groups, 0, VKD_MULTI_GROUPS * sizeof *groups);
    if (vkd_graph_failed(g) || !multi_wanted() || nroles < 1 || nroles > VKD_MULTI_ROLES) return 0;
    table_buf tabs[VKD_MULTI_GROUPS] = {{0}};
    int ng = 0, rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        if ((skip && skip[i]) || roles[0][i]->numel == 0) continue;
        if (check_tuple(g, nroles, roles, i)) rc = -1;
        int k = rc ? -1 : group_of(g, nroles, roles, i, groups, &ng);
        if (k < 0 && rc == 0) {
            // more block combinations than groups (a large model over many blocks): the caller
            // falls back to one dispatch per tensor
            for (int j = 0; j < VKD_MULTI_GROUPS; j++) free(tabs[j].rows);
            memset(groups, 0, VKD_MULTI_GROUPS * sizeof *groups);
            return 0;
        }
        if (rc == 0 && add_tuple(&tabs[k], nroles, roles, i, chunk)) vkd_graph_fail(g, "out of host memory"), rc = -1;
        if (rc == 0 && roles[0][i]->numel % 4) groups[k].ragged = 1;
    }
    for (int k = 0; k < ng && rc == 0; k++) {
        int64_t len = (int64_t)(tabs[k].n * VKD_MULTI_STRIDE);
        groups[k].table = vkd_tensor_new(g->ctx, "multi-tensor table", 1, &len, 0);
        groups[k].nchunks = (uint32_t)tabs[k].n;
        vkd_graph_own(g, groups[k].table);
        if (!groups[k].table || vkd_tensor_upload(groups[k].table, (const float *)tabs[k].rows)) {
            vkd_graph_fail(g, "multi-tensor table: %s", vkd_ctx_error(g->ctx));
            rc = -1;
        }
    }
    for (int k = 0; k < VKD_MULTI_GROUPS; k++) free(tabs[k].rows);
    return rc ? -1 : ng;
}
