// vkdistill bench step CONFIG: whole training iterations of a distill config
// (fake_steps fake-score steps + one generator step, the recorded phases that
// `distill` replays) or of a train-teacher config, timed after a warm-up.
// One JSON line: images/s, ms per phase, dispatches and barriers per
// iteration, peak device memory, and the top ops by device time (from a
// second, profiled instance, so the timestamps do not slow the timed one).
// Its peer in PyTorch is tools/bench/step_torch.py.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "vkdistill/dist.h"
#include "vkdistill/distill.h"
#include "vkdistill/io.h"

#define TOP_OPS 8

typedef struct {
    int distill;  // else teacher training
    vkd_distiller_cfg dc;
    vkd_teacher_cfg tc;
    int random_teacher;
} step_cfg;

// The trainer of either kind behind three calls: one iteration, its phases, its size.
typedef struct {
    vkd_distiller *d;
    vkd_teacher_trainer *t;
    vkd_graph *phase[2];  // fake-score, generator (distill) or the step (teacher)
    int reps[2];          // runs of each phase per iteration
} stepper;

static int stepper_new(stepper *s, vkd_ctx *ctx, const step_cfg *c, char *err, size_t errlen) {
    memset(s, 0, sizeof *s);
    if (c->distill) {
        if (!(s->d = vkd_distiller_new(ctx, &c->dc, NULL, err, errlen))) return -1;
        vkd_distiller_phases(s->d, 0, &s->phase[0], &s->phase[1]);
        s->reps[0] = c->dc.fake_steps, s->reps[1] = 1;
    } else {
        if (!(s->t = vkd_teacher_trainer_new(ctx, &c->tc, err, errlen))) return -1;
        s->phase[0] = vkd_teacher_graph(s->t), s->reps[0] = 1;
    }
    return 0;
}

static int stepper_iter(stepper *s, int64_t step, char *err, size_t errlen) {
    int rc = s->d ? vkd_distiller_step(s->d, step, NULL) : vkd_teacher_step(s->t, step, NULL);
    if (rc) snprintf(err, errlen, "%s", s->d ? vkd_distiller_error(s->d) : "teacher step failed");
    return rc;
}

static void stepper_free(stepper *s) {
    vkd_distiller_free(s->d);
    vkd_teacher_trainer_free(s->t);
}

static int load(const char *path, step_cfg *c, char *err, size_t errlen) {
    memset(c, 0, sizeof *c);
    vkd_cfg *probe = vkd_cfg_load(path, err, errlen);
    if (!probe) return -1;
    c->distill = vkd_cfg_has(probe, "method");
    vkd_cfg_free(probe);
    if (!c->distill) return vkd_teacher_cfg_load(path, &c->tc, err, errlen);
    if (vkd_distiller_cfg_load(path, &c->dc, err, errlen)) return -1;
    // A network teacher whose weights are not there yet (e.g. the main job has not
    // trained it) is timed with random weights: the cost is the same.
    if (c->dc.teacher_model[0] && access(c->dc.teacher_weights, R_OK) != 0) c->dc.teacher_weights[0] = 0, c->random_teacher = 1;
    return 0;
}

// Top ops of both phases, weighted by their runs per iteration, merged by name.
static int top_ops(const stepper *s, vkd_op_time *top, int max) {
    vkd_op_time all[256];
    int n = 0;
    for (int p = 0; p < 2; p++) {
        if (!s->phase[p]) continue;
        vkd_op_time rows[128];
        int k = vkd_graph_op_times(s->phase[p], rows, 128);
        for (int i = 0; i < k; i++) {
            int j = 0;
            while (j < n && strcmp(all[j].name, rows[i].name)) j++;
            if (j == n && n < 256) all[n++] = (vkd_op_time){rows[i].name, 0, 0};
            if (j < n) all[j].ms += rows[i].ms * s->reps[p], all[j].calls += rows[i].calls * s->reps[p];
        }
    }
    for (int i = 0; i < n; i++)  // selection of the largest
        for (int j = i + 1; j < n; j++)
            if (all[j].ms > all[i].ms) {
                vkd_op_time t = all[i];
                all[i] = all[j], all[j] = t;
            }
    int k = n < max ? n : max;
    memcpy(top, all, k * sizeof *top);
    return k;
}

typedef struct {
    double ms_iter, ms_phase[2], peak_mib;
    double ms_allreduce, mib_allreduce;  // per iteration, under mpirun
    int dispatches, barriers;
    vkd_op_time top[TOP_OPS];
    int ntop;
    double prof_ms;
} step_result;

static int measure(vkd_ctx *ctx, const step_cfg *c, int warmup, int iters, int profile, step_result *r, char *err,
                   size_t errlen) {
    stepper s;
    if (stepper_new(&s, ctx, c, err, errlen)) return -1;
    int rc = 0;
    int64_t step = 1;
    for (int i = 0; i < warmup && !rc; i++) rc = stepper_iter(&s, step++, err, errlen);
    int ranks = vkd_comm_size();
    if (ranks > 1) vkd_comm_barrier();  // every rank starts the timed iterations together
    double t0 = vkd_now(), ar0 = vkd_comm_allreduce_seconds(), ab0 = vkd_comm_allreduce_bytes();
    for (int i = 0; i < iters && !rc; i++) rc = stepper_iter(&s, step++, err, errlen);
    double dt = vkd_now() - t0;
    if (!rc && ranks > 1) {
        // Under mpirun: the slowest rank's time per iteration, the ranks' mean time
        // inside the gradient allreduce. The phase graphs alone would leave the
        // allreduce out, so they are not timed.
        double v[2] = {dt, vkd_comm_allreduce_seconds() - ar0};
        vkd_comm_allreduce_sum_f64(v + 1, 1);
        int ms = (int)(dt * 1e6);
        vkd_comm_allreduce_max_i32(&ms, 1);
        r->ms_iter = ms / 1e3 / iters;
        r->ms_allreduce = v[1] / ranks / iters * 1e3;
        r->mib_allreduce = (vkd_comm_allreduce_bytes() - ab0) / iters / 1048576.0;
        r->peak_mib = vkd_ctx_mem_peak(ctx) / 1048576.0;
    } else if (!rc && !profile) {
        r->ms_iter = dt / iters * 1e3;
        for (int p = 0; p < 2 && s.phase[p]; p++) {  // each phase on its own, as many runs as in the timed iterations
            double t1 = vkd_now();
            for (int i = 0; i < iters * s.reps[p] && !rc; i++) rc = vkd_graph_run(s.phase[p]);
            r->ms_phase[p] = (vkd_now() - t1) / iters * 1e3;
            int nd, nb;
            vkd_graph_counts(s.phase[p], &nd, &nb);
            r->dispatches += nd * s.reps[p], r->barriers += nb * s.reps[p];
        }
        r->peak_mib = vkd_ctx_mem_peak(ctx) / 1048576.0;
    }
    if (!rc && profile) {
        r->ntop = top_ops(&s, r->top, TOP_OPS);
        vkd_op_time all[256];
        int n = top_ops(&s, all, 256);
        for (int i = 0; i < n; i++) r->prof_ms += all[i].ms;
    }
    stepper_free(&s);
    return rc;
}

int vkd_cli_bench_step(vkd_cli *cli, int argc, char **argv) {
    const char *config = NULL;
    long long iters = 10, warmup = 3, profile = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--iters")) { if (vkd_cli_int("bench step", a, v, 1, 1000000, &iters)) return 2; i++; }
        else if (!strcmp(a, "--warmup")) { if (vkd_cli_int("bench step", a, v, 0, 1000000, &warmup)) return 2; i++; }
        else if (!strcmp(a, "--profile")) { if (vkd_cli_int("bench step", a, v, 0, 1, &profile)) return 2; i++; }
        else if (a[0] != '-' && !config) config = a;
        else {
            fprintf(stderr, "vkdistill bench step: unknown argument '%s' (usage: bench step CONFIG [--iters N] [--warmup N] [--profile 0|1])\n", a);
            return 2;
        }
    }
    if (!config) {
        fprintf(stderr, "vkdistill bench step: needs a distill or train-teacher config\n");
        return 2;
    }
    char err[2600];
    step_cfg c;
    if (load(config, &c, err, sizeof err)) {
        fprintf(stderr, "vkdistill: %s\n", err);
        return 1;
    }
    cli->opts.small_dispatches = c.distill && c.dc.teacher_gmm[0];  // as distill chooses
    vkd_ctx *ctx = vkd_cli_open(cli);
    if (!ctx) return 1;
    step_result r = {0};
    int rc = measure(ctx, &c, (int)warmup, (int)iters, 0, &r, err, sizeof err);
    int npipe;
    double pipe_s;
    vkd_ctx_pipeline_stats(ctx, &npipe, &pipe_s);  // before the profiled graphs, which reuse them
    int ranks = vkd_comm_size();
    if (!rc && profile && ranks == 1) {
        setenv("VKD_PROFILE", "1", 1);  // read when a graph is compiled
        rc = measure(ctx, &c, 1, (int)(iters < 3 ? iters : 3), 1, &r, err, sizeof err);
    }
    if (rc) {
        fprintf(stderr, "vkdistill: %s\n", err);
        return vkd_cli_close(ctx, 1);
    }
    int batch = c.distill ? c.dc.batch : c.tc.batch;
    if (ranks > 1) {  // one line from rank 0: the global batch's rate, each rank's, the allreduce
        if (vkd_comm_rank() == 0)
            printf("{\"bench\":\"step\",\"config\":\"%s\",\"kind\":\"%s\",\"method\":\"%s\",\"device\":\"%s\",\"ranks\":%d,"
                   "\"batch\":%d,\"batch_per_rank\":%d,\"fake_steps\":%d,\"iters\":%lld,\"ms_per_iter\":%.3f,\"img_per_s\":%.2f,"
                   "\"img_per_s_per_rank\":%.2f,\"ms_allreduce_per_iter\":%.3f,\"allreduce_mib_per_iter\":%.3f,\"peak_mib\":%.1f%s}\n",
                   config, c.distill ? "distill" : "teacher", c.distill ? vkd_method_name(c.dc.m.method) : "edm",
                   vkd_ctx_device_name(ctx), ranks, batch, batch / ranks, c.distill ? c.dc.fake_steps : 0, iters, r.ms_iter,
                   batch / r.ms_iter * 1e3, batch / ranks / r.ms_iter * 1e3, r.ms_allreduce, r.mib_allreduce, r.peak_mib,
                   c.random_teacher ? ",\"teacher_weights\":\"random\"" : "");
        return vkd_cli_close(ctx, 0);
    }
    printf("{\"bench\":\"step\",\"config\":\"%s\",\"kind\":\"%s\",\"method\":\"%s\",\"device\":\"%s\",\"batch\":%d,"
           "\"fake_steps\":%d,\"iters\":%lld,\"ms_per_iter\":%.3f,\"img_per_s\":%.2f,\"ms_fake_phase\":%.3f,"
           "\"ms_generator_phase\":%.3f,\"dispatches_per_iter\":%d,\"barriers_per_iter\":%d,\"peak_mib\":%.1f,"
           "\"pipelines\":%d,\"s_pipeline_create\":%.3f%s,\"top_ops\":[",
           config, c.distill ? "distill" : "teacher", c.distill ? vkd_method_name(c.dc.m.method) : "edm",
           vkd_ctx_device_name(ctx), batch, c.distill ? c.dc.fake_steps : 0, iters, r.ms_iter, batch / r.ms_iter * 1e3,
           c.distill ? r.ms_phase[0] / c.dc.fake_steps : 0.0, c.distill ? r.ms_phase[1] : r.ms_phase[0], r.dispatches,
           r.barriers, r.peak_mib, npipe, pipe_s, c.random_teacher ? ",\"teacher_weights\":\"random\"" : "");
    for (int i = 0; i < r.ntop; i++)
        printf("%s{\"op\":\"%s\",\"ms\":%.3f,\"calls\":%d,\"pct\":%.1f}", i ? "," : "", r.top[i].name, r.top[i].ms,
               r.top[i].calls, 100 * r.top[i].ms / (r.prof_ms > 0 ? r.prof_ms : 1));
    printf("]}\n");
    return vkd_cli_close(ctx, 0);
}
