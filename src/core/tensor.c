// Persistent tensors: parameters, optimizer state, inputs and per-step scalars.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/graph.h"

static int fill_shape(vkd_tensor *t, int ndim, const int64_t *shape) {
    if (ndim < 1 || ndim > VKD_MAX_DIMS) return -1;
    t->ndim = ndim;
    t->numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 1) return -1;
        t->shape[i] = shape[i];
        t->numel *= shape[i];
    }
    return 0;
}

vkd_tensor *vkd_tensor_new(vkd_ctx *ctx, const char *name, int ndim, const int64_t *shape, int flags) {
    vkd_tensor *t = calloc(1, sizeof *t);
    t->ctx = ctx;
    t->flags = flags;
    t->requires_grad = (flags & VKD_PARAM) != 0;
    snprintf(t->name, sizeof t->name, "%s", name ? name : "tensor");
    if (fill_shape(t, ndim, shape)) {
        vkd_set_error(ctx, "tensor '%s': invalid shape (ndim %d)", t->name, ndim);
        free(t);
        return NULL;
    }
    if (vkd_alloc_persistent(ctx, t->numel * 4, (flags & VKD_HOST) != 0, t->name, &t->mem)) {
        free(t);
        return NULL;
    }
    if (flags & VKD_PARAM) {
        char gname[80];
        snprintf(gname, sizeof gname, "%s.grad", t->name);
        t->pgrad = vkd_tensor_new(ctx, gname, ndim, shape, 0);
        if (!t->pgrad) {
            vkd_free_persistent(ctx, t->mem);
            free(t);
            return NULL;
        }
    }
    return t;
}

vkd_tensor *vkd_tensor_alias(vkd_tensor *t) {
    vkd_tensor *a = calloc(1, sizeof *a);
    const vkd_tensor *r = vkd_tensor_root(t);
    *a = *t;
    a->base = (vkd_tensor *)r;
    a->view_off = t->view_off;
    a->flags = t->flags & VKD_HOST;
    a->requires_grad = 0;
    a->pgrad = NULL;
    a->mem = (vkd_alloc){0};
    a->ggrad = NULL, a->ggrad_graph = NULL, a->ggrad2 = NULL;
    return a;
}

vkd_tensor *vkd_tensor_view(vkd_tensor *t, int64_t off, int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    if (off < 0 || off + n > t->numel || ndim < 1 || ndim > VKD_MAX_DIMS) return NULL;
    vkd_tensor *v = vkd_tensor_alias(t);
    if (!v) return NULL;
    v->ndim = ndim, v->numel = n;
    memcpy(v->shape, shape, (size_t)ndim * sizeof *shape);
    v->view_off += (uint64_t)off * 4;
    return v;
}

enum { SPAN = 1 << 8 };  // flags: a vkd_tensor_span (owns no memory)

vkd_tensor *vkd_tensor_span(const vkd_tensor *t) {
    const vkd_tensor *r = vkd_tensor_root(t);
    if (r->graph || !r->mem.block) return NULL;
    vkd_tensor *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->ctx = t->ctx;
    snprintf(s->name, sizeof s->name, "span of %.40s", t->name);
    s->ndim = 1;
    s->numel = s->shape[0] = (int64_t)(r->mem.block->size / 4);
    s->flags = SPAN | (r->flags & VKD_HOST);
    s->mem = (vkd_alloc){r->mem.block, 0};
    return s;
}

uint64_t vkd_tensor_block_elem(const vkd_tensor *t) {
    const vkd_tensor *r = vkd_tensor_root(t);
    return (r->mem.off + t->view_off) / 4;
}

void vkd_tensor_free(vkd_tensor *t) {
    if (!t || t->graph) return;  // graph tensors die with their graph
    if (t->base || (t->flags & SPAN)) {  // an alias or a span owns no memory
        free(t);
        return;
    }
    if (t->pgrad) vkd_tensor_free(t->pgrad);
    vkd_free_persistent(t->ctx, t->mem);
    free(t);
}

const vkd_tensor *vkd_tensor_root(const vkd_tensor *t) { return t->base ? t->base : t; }

VkDeviceAddress vkd_tensor_addr(const vkd_tensor *t) {
    const vkd_tensor *r = vkd_tensor_root(t);
    return r->mem.block->addr + r->mem.off + t->view_off;
}

static int check_io(const vkd_tensor *t) {
    const vkd_tensor *r = vkd_tensor_root(t);
    if (!r->mem.block) {
        vkd_set_error(t->ctx, "tensor '%s' has no memory yet (compile its graph first)", t->name);
        return -1;
    }
    return 0;
}

int vkd_tensor_upload(vkd_tensor *t, const float *src) {
    if (check_io(t)) return -1;
    const vkd_tensor *r = vkd_tensor_root(t);
    return vkd_upload(t->ctx, r->mem.block, r->mem.off + t->view_off, src, t->numel * 4);
}

int vkd_tensor_download(const vkd_tensor *t, float *dst) {
    if (check_io(t)) return -1;
    const vkd_tensor *r = vkd_tensor_root(t);
    return vkd_download(t->ctx, r->mem.block, r->mem.off + t->view_off, dst, t->numel * 4);
}

float *vkd_tensor_map(vkd_tensor *t) {
    const vkd_tensor *r = vkd_tensor_root(t);
    if (!r->mem.block || !r->mem.block->mapped) return NULL;
    return (float *)((char *)r->mem.block->mapped + r->mem.off + t->view_off);
}

vkd_tensor *vkd_tensor_grad(const vkd_tensor *t) { return t->pgrad; }
void vkd_tensor_set_requires_grad(vkd_tensor *t, int on) { t->requires_grad = on || (t->flags & VKD_PARAM); }
int vkd_tensor_ndim(const vkd_tensor *t) { return t->ndim; }
int64_t vkd_tensor_dim(const vkd_tensor *t, int i) { return t->shape[i < 0 ? t->ndim + i : i]; }
int64_t vkd_tensor_numel(const vkd_tensor *t) { return t->numel; }
const char *vkd_tensor_name(const vkd_tensor *t) { return t->name; }

int vkd_same_shape(const vkd_tensor *a, const vkd_tensor *b) {
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

void vkd_shape_str(const vkd_tensor *t, char *buf, size_t n) {
    size_t k = snprintf(buf, n, "(");
    for (int i = 0; i < t->ndim && k < n; i++) k += snprintf(buf + k, n - k, i ? ",%lld" : "%lld", (long long)t->shape[i]);
    if (k < n) snprintf(buf + k, n - k, ")");
}

// ---------------------------------------------------------------- graph tensors
vkd_tensor *vkd_graph_tensor(vkd_graph *g, const char *name, int ndim, const int64_t *shape) {
    vkd_tensor *t = calloc(1, sizeof *t);
    t->ctx = g->ctx;
    t->graph = g;
    snprintf(t->name, sizeof t->name, "%s", name);
    if (fill_shape(t, ndim, shape)) {
        vkd_graph_fail(g, "%s: invalid shape (ndim %d)", name, ndim);
        free(t);
        return NULL;
    }
    t->def = t->last = -1;
    if (g->ntensors == g->captensors) {
        g->captensors = g->captensors ? 2 * g->captensors : 64;
        g->tensors = realloc(g->tensors, g->captensors * sizeof *g->tensors);
    }
    t->id = g->ntensors;
    g->tensors[g->ntensors++] = t;
    return t;
}

vkd_tensor *vkd_graph_tensor_like(vkd_graph *g, const char *name, const vkd_tensor *like) {
    return vkd_graph_tensor(g, name, like->ndim, like->shape);
}

// A 1-D window of n elements of x from element off, in x's memory, with no gradient of its
// own: for ops that read or write strided parts of a tensor (the EDM attention's q, k, v).
vkd_tensor *vkd_graph_view(vkd_graph *g, vkd_tensor *x, int64_t off, int64_t n) {
    if (!x || vkd_graph_failed(g)) return NULL;
    if (off < 0 || n < 1 || off + n > x->numel) {
        vkd_graph_fail(g, "internal: view [%lld, %lld) of '%s' (%lld elements)", (long long)off,
                       (long long)(off + n), x->name, (long long)x->numel);
        return NULL;
    }
    vkd_tensor *v = vkd_graph_tensor(g, x->name, 1, (int64_t[]){n});
    if (!v) return NULL;
    v->base = x->base ? x->base : x;
    v->view_off = x->view_off + (uint64_t)off * 4;
    v->flags = x->flags & VKD_HOST;
    return v;
}

static void reshape_backward(vkd_graph *g, vkd_tape_entry *e, vkd_tensor *dy) {
    vkd_grad_accumulate(g, e->in[0], vkd_reshape(g, dy, e->in[0]->ndim, e->in[0]->shape));
}

vkd_tensor *vkd_reshape(vkd_graph *g, vkd_tensor *x, int ndim, const int64_t *shape) {
    if (!x || vkd_graph_failed(g)) return NULL;
    vkd_tensor *v = vkd_graph_tensor(g, x->name, ndim, shape);
    if (!v) return NULL;
    if (v->numel != x->numel) {
        char a[64], b[64];
        vkd_shape_str(x, a, sizeof a);
        vkd_shape_str(v, b, sizeof b);
        vkd_graph_fail(g, "reshape of '%s': %s and %s differ in size", x->name, a, b);
        return NULL;
    }
    v->base = x->base ? x->base : x;
    v->view_off = x->view_off;
    v->flags = x->flags & VKD_HOST;
    v->requires_grad = vkd_tensor_needs_grad(x);
    vkd_tape_push(g, reshape_backward, v, &x, 1);
    return v;
}
