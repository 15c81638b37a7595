// What a compiled graph costs: its dispatches and barriers, and (when it was
// compiled with VKD_PROFILE=1) the device time per op and per dispatch, for benchmarks.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/graph.h"

void vkd_graph_counts(const vkd_graph *g, int *dispatches, int *barriers) {
    if (dispatches) *dispatches = g->ndisp;
    if (barriers) *barriers = g->nbarriers;
}

// Dispatch i's mean time in ns over the runs after the first, or the first where there was no
// other. A graph's first run pays for touching its memory: on the 2-core EPYC VM a
// unet_fmnist forward + backward's first run took ~40% longer than the rest, and with
// it in the mean the profile summed to 947-1099 ms a step against 787 ms of wall time.
double vkd_graph_dispatch_ns(const vkd_graph *g, int i) {
    if (!g->prof_ns || !g->prof_runs) return 0;
    return g->prof_runs > 1 ? g->prof_ns[i] / (g->prof_runs - 1) : g->prof_first[i];
}

void vkd_graph_profile_reset(vkd_graph *g) {
    if (!g->prof_ns) return;
    memset(g->prof_ns, 0, 2 * sizeof *g->prof_ns * (size_t)g->ndisp);
    g->prof_runs = 1;  // the graph has run: what follows counts as runs after the first
}

static int by_ms_desc(const void *a, const void *b) {
    const vkd_op_time *x = a, *y = b;
    return x->ms < y->ms ? 1 : x->ms > y->ms ? -1 : 0;
}

int vkd_graph_op_times(const vkd_graph *g, vkd_op_time *out, int max) {
    if (!g->prof_ns || !g->prof_runs) return 0;
    vkd_op_time *rows = calloc(g->ndisp ? g->ndisp : 1, sizeof *rows);
    int n = 0;
    for (int i = 0; i < g->ndisp; i++) {
        int j = 0;
        while (j < n && strcmp(rows[j].name, g->disp[i].name) != 0) j++;
        if (j == n) rows[n++] = (vkd_op_time){g->disp[i].name, 0, 0};
        rows[j].ms += vkd_graph_dispatch_ns(g, i) / 1e6;
        rows[j].calls++;
    }
    qsort(rows, n, sizeof *rows, by_ms_desc);
    int k = n < max ? n : max;
    memcpy(out, rows, k * sizeof *rows);
    free(rows);
    return k;
}

// A distinct pipeline and the first dispatch that uses it.
typedef struct {
    const vkd_pipeline *p;
    int first;
} pipeline_use;

static int by_create_desc(const void *a, const void *b) {
    const pipeline_use *x = a, *y = b;
    return x->p->create_ms < y->p->create_ms ? 1 : x->p->create_ms > y->p->create_ms ? -1 : x->first - y->first;
}

// The distinct pipelines among g's dispatches (allocated, *n of them), costliest first.
static pipeline_use *pipeline_uses(const vkd_graph *g, int *n) {
    pipeline_use *u = calloc(g->ndisp > 0 ? (size_t)g->ndisp : 1, sizeof *u);
    *n = 0;
    for (int i = 0; u && i < g->ndisp; i++) {
        const vkd_pipeline *p = g->disp[i].pipe;
        int seen = !p;
        for (int j = 0; j < *n && !seen; j++) seen = u[j].p == p;
        if (!seen) u[(*n)++] = (pipeline_use){p, i};
    }
    if (u) qsort(u, *n, sizeof *u, by_create_desc);
    return u;
}

// Every dispatch in recorded order, to find which call of an op is slow: index, op, shader (or
// "copy"), workgroups, the shape of the first tensor it writes, mean us, and the CPU time its
// pipeline took to create; then what the graph's pipelines took together.
static void print_dispatches(const vkd_graph *g, FILE *f) {
    fprintf(f, "vkdistill dispatches: graph '%s'\n  %4s %-26s %-22s %16s %-22s %10s %10s\n", g->name, "#", "op",
            "shader", "workgroups", "writes", "us", "create ms");
    for (int i = 0; i < g->ndisp; i++) {
        const vkd_dispatch *d = &g->disp[i];
        char grid[48] = "-", shape[64] = "-", create[24] = "-";
        if (d->pipe) {
            snprintf(grid, sizeof grid, "%ux%ux%u", d->groups[0], d->groups[1], d->groups[2]);
            snprintf(create, sizeof create, "%.1f", d->pipe->create_ms);
        }
        for (int a = 0; a < d->nargs; a++)
            if (d->args[a].access & VKD_W) {
                vkd_shape_str(d->args[a].t, shape, sizeof shape);
                break;
            }
        fprintf(f, "  %4d %-26s %-22s %16s %-22s %10.1f %10s\n", i, d->name, d->pipe ? d->pipe->shader : "copy", grid,
                shape, vkd_graph_dispatch_ns(g, i) / 1e3, create);
    }
    // What starting the graph costs before its first run, apart from the runs' times: the sum,
    // then each pipeline by its specialization constants, costliest first. Two lines that
    // differ in one constant are one pipeline too many where that constant could be a push
    // constant (how conv2d's WM and its weight gradient's accumulation were found).
    int distinct;
    pipeline_use *u = pipeline_uses(g, &distinct);
    double ms = 0;
    for (int i = 0; i < distinct; i++) ms += u[i].p->create_ms;
    fprintf(f, "vkdistill pipelines: graph '%s' uses %d, created in %.1f ms of CPU time\n", g->name, distinct, ms);
    for (int i = 0; i < distinct; i++) {
        fprintf(f, "vkdistill pipeline: %-16s %9.1f ms, first used by dispatch %4d, specialized", u[i].p->shader,
                u[i].p->create_ms, u[i].first);
        for (int k = 0; k < u[i].p->nspec; k++) fprintf(f, " %u", u[i].p->spec[k]);
        fprintf(f, "\n");
    }
    free(u);
}

void vkd_graph_print_profile(const vkd_graph *g, FILE *f) {
    if (!g->prof_ns || !g->prof_runs) return;
    vkd_op_time *rows = calloc(g->ndisp ? g->ndisp : 1, sizeof *rows);
    int n = vkd_graph_op_times(g, rows, g->ndisp);
    double total = 0;
    for (int i = 0; i < n; i++) total += rows[i].ms;
    double first = 0;
    for (int i = 0; i < g->ndisp; i++) first += g->prof_first[i] / 1e6;
    fprintf(f, "vkdistill profile: graph '%s', %d dispatches, %d barriers, mean of %d runs after the first: %.3f ms/step",
            g->name, g->ndisp, g->nbarriers, g->prof_runs > 1 ? g->prof_runs - 1 : 1, total);
    fprintf(f, g->prof_runs > 1 ? " (the first: %.3f)\n" : " (the only run)\n", first);
    fprintf(f, "  %-28s %6s %12s %12s %6s\n", "op", "calls", "ms/step", "us/call", "%");
    for (int i = 0; i < n; i++)
        fprintf(f, "  %-28s %6d %12.3f %12.1f %6.1f\n", rows[i].name, rows[i].calls, rows[i].ms,
                rows[i].ms * 1e3 / rows[i].calls, 100.0 * rows[i].ms / (total > 0 ? total : 1));
    free(rows);
    if (g->prof_level >= 2) print_dispatches(g, f);
}
