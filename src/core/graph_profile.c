// What a compiled graph costs: its dispatches and barriers, and (when it was
// compiled with VKD_PROFILE=1) the device time per op, for benchmarks.
#include <stdlib.h>
#include <string.h>

#include "core/graph.h"

void vkd_graph_counts(const vkd_graph *g, int *dispatches, int *barriers) {
    if (dispatches) *dispatches = g->ndisp;
    if (barriers) *barriers = g->nbarriers;
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
        rows[j].ms += g->prof_ns[i] / g->prof_runs / 1e6;
        rows[j].calls++;
    }
    qsort(rows, n, sizeof *rows, by_ms_desc);
    int k = n < max ? n : max;
    memcpy(out, rows, k * sizeof *rows);
    free(rows);
    return k;
}
