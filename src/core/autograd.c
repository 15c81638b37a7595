// Reverse-mode autograd over the tape. Each op that has an input requiring a
// gradient pushes an entry with its backward function; vkd_graph_backward walks
// the tape in reverse and each backward appends ordinary op dispatches (so the
// backward pass is recorded and replayed like the forward one).
//
// Parameters (VKD_PARAM) receive their gradient into a persistent buffer with
// +=, so several runs accumulate; the optimizer zeroes it after its update.
// Frozen tensors never require a gradient, so no gradient work or memory is
// spent on them, while gradients still flow through them to inputs that do.
#include <stdlib.h>
#include <string.h>

#include "core/graph.h"
#include "ops/ops.h"

int vkd_tensor_needs_grad(const vkd_tensor *t) { return t && t->requires_grad; }

vkd_tape_entry *vkd_tape_push(vkd_graph *g, vkd_backward_fn fn, vkd_tensor *out, vkd_tensor **in, int nin) {
    if (!out || vkd_graph_failed(g)) return NULL;
    int any = 0;
    for (int i = 0; i < nin; i++) any |= vkd_tensor_needs_grad(in[i]);
    out->requires_grad = any && g->grad_enabled && !g->in_backward;
    if (!out->requires_grad) return NULL;
    if (g->ntape == g->captape) {
        g->captape = g->captape ? 2 * g->captape : 64;
        g->tape = realloc(g->tape, g->captape * sizeof *g->tape);
    }
    vkd_tape_entry *e = &g->tape[g->ntape++];
    memset(e, 0, sizeof *e);
    e->backward = fn;
    e->out = out;
    e->nin = nin;
    for (int i = 0; i < nin; i++) e->in[i] = in[i];
    return e;
}

static vkd_tensor *grad_of(vkd_graph *g, const vkd_tensor *t) {
    return (t->ggrad_graph == g && t->ggrad_serial == g->serial) ? t->ggrad : NULL;
}

// t's whole pending gradient: a second term kept apart (vkd_grad_pending_pair) added now
static vkd_tensor *grad_sum(vkd_graph *g, vkd_tensor *t) {
    vkd_tensor *a = grad_of(g, t);
    if (a && t->ggrad2) {
        vkd_tensor *b = t->ggrad2;
        t->ggrad2 = NULL;
        t->ggrad = vkd_add(g, a, b);
    }
    return grad_of(g, t);
}

// whether t's first reader adds two terms of its gradient itself
static int pair_ok(vkd_graph *g, const vkd_tensor *t) {
    return g->in_backward && t->graph == g && t->first_use >= 0 && t->first_use < g->ntape &&
           g->tape[t->first_use].takes_grad_pair && !vkd_env_off("VKD_GRAD_PAIR");
}

void vkd_grad_set(vkd_graph *g, vkd_tensor *t, vkd_tensor *sum) {
    if (!t || !sum || !t->requires_grad || vkd_graph_failed(g)) return;
    if (grad_of(g, t) && t->ggrad_folded) {  // a folded gradient is final: nothing may follow it
        vkd_graph_fail(g, "backward: '%s' received a gradient after the one with its factor folded in", t->name);
        return;
    }
    t->ggrad = sum;
    t->ggrad2 = NULL;
    t->ggrad_graph = g;
    t->ggrad_serial = g->serial;
    t->ggrad_folded = 0;
}

void vkd_grad_accumulate(vkd_graph *g, vkd_tensor *t, vkd_tensor *gx) {
    if (!t || !gx || !t->requires_grad || vkd_graph_failed(g)) return;
    vkd_tensor *old = grad_sum(g, t);
    if (old && !t->ggrad_folded && pair_ok(g, t)) {
        t->ggrad2 = gx;
        return;
    }
    vkd_grad_set(g, t, old ? vkd_add(g, old, gx) : gx);
}

static int fold_ok(vkd_graph *g, const vkd_tensor *t) {
    return t && t->grad_fold != 0.0f && t->graph == g && !t->keep && g->in_backward && !vkd_env_off("VKD_GRAD_FOLD");
}

// Only for the graph's own activations that nothing outside reads (kept tensors are outputs, and
// vkd_graph_grad of them must be d(loss)/dt), and only in the backward of the entry that reads t
// first: the tape is walked backwards, so that one's contribution is the last.
float vkd_grad_fold_factor(vkd_graph *g, const vkd_tensor *t) {
    if (!fold_ok(g, t) || t->first_use != g->tape_pos || t->grad_fold_src) return 1.0f;
    return t->grad_fold;
}

// A concat's first part a takes the fold through the concat's backward as the whole of its
// gradient, so the concat must be its only reader (no other gradient to add before the scale).
float vkd_grad_fold_lead(vkd_graph *g, const vkd_tensor *t, int64_t *lead) {
    *lead = t ? t->shape[1] : 0;
    if (!fold_ok(g, t) || t->first_use != g->tape_pos) return 1.0f;
    const vkd_tensor *a = t->grad_fold_src;
    if (a && (!fold_ok(g, a) || a->grad_fold != t->grad_fold || a->grad_fold_src || a->readers != 1 ||
              !a->requires_grad || vkd_env_off("VKD_CONCAT_FOLD")))
        return 1.0f;
    if (a) *lead = a->shape[1];
    return t->grad_fold;
}

void vkd_grad_set_folded(vkd_graph *g, vkd_tensor *t, vkd_tensor *sum) {
    vkd_grad_set(g, t, sum);
    if (!vkd_graph_failed(g) && t && sum && t->requires_grad) t->ggrad_folded = 1;
}

int vkd_grad_folded(vkd_graph *g, const vkd_tensor *t) { return t && grad_of(g, t) && t->ggrad_folded; }

vkd_tensor *vkd_grad_pending(vkd_graph *g, const vkd_tensor *t) {
    return t && t->requires_grad && !vkd_graph_failed(g) ? grad_sum(g, (vkd_tensor *)t) : NULL;
}

vkd_tensor *vkd_grad_pending_pair(vkd_graph *g, const vkd_tensor *t, vkd_tensor **second) {
    *second = NULL;
    if (!t || !t->requires_grad || vkd_graph_failed(g)) return NULL;
    vkd_tensor *a = grad_of(g, t);
    if (a) *second = t->ggrad2;
    return a;
}

vkd_tensor *vkd_graph_grad(vkd_graph *g, const vkd_tensor *t) {
    if (t && grad_of(g, t) && t->ggrad_folded) {  // (vkd_grad_fold_factor keeps kept tensors out)
        vkd_graph_fail(g, "gradient of '%s': it holds a factor folded in for its own backward", t->name);
        return NULL;
    }
    return t ? grad_sum(g, (vkd_tensor *)t) : NULL;
}

static int is_param(const vkd_tensor *t) { return t && t->pgrad && !t->graph; }

vkd_tensor *vkd_grad_param_target(vkd_graph *g, const vkd_tensor *t) {
    if (!is_param(t) || !t->requires_grad || vkd_graph_failed(g) || grad_of(g, t)) return NULL;
    return t->uses_graph == g && t->uses_serial == g->serial && t->uses == 1 ? t->pgrad : NULL;
}

// Counts, for every parameter, the tape entries that read it.
static void count_param_uses(vkd_graph *g) {
    for (int i = 0; i < g->ntape; i++)
        for (int k = 0; k < g->tape[i].nin; k++) {
            vkd_tensor *t = g->tape[i].in[k];
            if (!is_param(t)) continue;
            if (t->uses_graph != g || t->uses_serial != g->serial) t->uses = 0, t->uses_graph = g, t->uses_serial = g->serial;
            t->uses++;
        }
}

int vkd_graph_backward(vkd_graph *g, vkd_tensor *loss) {
    if (!loss || vkd_graph_failed(g)) {
        if (!loss) vkd_graph_fail(g, "backward: no loss tensor");
        return -1;
    }
    if (loss->numel != 1) {
        vkd_graph_fail(g, "backward: loss '%s' has %lld elements; it must be a scalar", loss->name,
                       (long long)loss->numel);
        return -1;
    }
    if (!loss->requires_grad) {
        vkd_graph_fail(g, "backward: loss '%s' does not depend on any parameter or input that requires grad",
                       loss->name);
        return -1;
    }
    int ntape = g->ntape;
    count_param_uses(g);
    for (int i = 0; i < ntape; i++)
        for (int k = 0; k < g->tape[i].nin; k++)
            if (g->tape[i].in[k]) g->tape[i].in[k]->readers = 0;
    for (int i = ntape - 1; i >= 0; i--)  // each tensor's first reader and readers (vkd_grad_fold_factor)
        for (int k = 0; k < g->tape[i].nin; k++)
            if (g->tape[i].in[k]) g->tape[i].in[k]->first_use = i, g->tape[i].in[k]->readers++;
    g->in_backward = 1;
    vkd_grad_accumulate(g, loss, vkd_full(g, loss->ndim, loss->shape, 1.0f));
    for (int i = ntape - 1; i >= 0 && !vkd_graph_failed(g); i--) {
        vkd_tape_entry *e = &g->tape[i];
        vkd_tensor *dy = grad_sum(g, e->out);
        g->tape_pos = i;
        if (dy) e->backward(g, e, dy);
    }
    // Parameters: add the graph's gradient into the persistent buffer. Other
    // tensors that asked for a gradient keep it alive for vkd_graph_grad.
    for (int i = 0; i < ntape && !vkd_graph_failed(g); i++) {
        vkd_tape_entry *e = &g->tape[i];
        for (int k = 0; k < e->nin; k++) {
            vkd_tensor *t = e->in[k];
            vkd_tensor *gt = t ? grad_sum(g, t) : NULL;  // (a term kept apart and never read: added)
            if (!gt || t->graph) continue;
            if (t->pgrad) {
                vkd_accumulate_into(g, t->pgrad, gt);
                t->ggrad_graph = NULL;  // consumed: do not add it twice
            } else {
                vkd_graph_keep(g, gt);
            }
        }
    }
    g->in_backward = 0;
    return vkd_graph_failed(g) ? -1 : 0;
}
