// The one training loop: run folder, resume, cadence, checkpoints, Ctrl-C,
// progress and metrics, for any vkd_trainable (teacher, distiller, classifier).
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/progress.h"
#include "train/run.h"
#include "vkdistill/dist.h"
#include "vkdistill/io.h"
#include "vkdistill/train.h"

vkd_train_opts vkd_train_opts_default(void) {
    return (vkd_train_opts){.title = "training", .batch = 1, .log_every = 10, .ckpt_seconds = 600};
}

static volatile sig_atomic_t g_interrupted;

static void on_signal(int sig) {
    if (g_interrupted) {
        signal(sig, SIG_DFL);
        raise(sig);
    }
    g_interrupted = 1;
}

void vkd_train_catch_signals(void) {
    g_interrupted = 0;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
}

int vkd_train_interrupted(void) { return g_interrupted != 0; }

// Under mpirun every rank must stop at the same step: the flag is agreed on
// (a rank that got the signal stops them all).
int vkd_train_interrupted_all(void) {
    int f = g_interrupted != 0;
    if (vkd_comm_size() > 1) vkd_comm_allreduce_max_i32(&f, 1);
    if (f) g_interrupted = 1;
    return f;
}

// A checkpoint's rank count and global batch: another rank count resumes only
// with the same global batch (the per-rank split is what changes). Checked
// before anything is loaded. A file that does not open is left to vkd_ckpt_load.
static int check_ranks(const char *path, const vkd_train_opts *o, char *err, size_t errlen) {
    vkd_st *st = vkd_st_open(path, NULL, 0);
    if (!st) return 0;
    const char *r = vkd_st_metadata(st, "ranks"), *b = vkd_st_metadata(st, "global_batch");
    int rc = 0;
    if (r && b && atoi(r) != vkd_comm_size() && atoll(b) != o->batch) {
        snprintf(err, errlen, "%s: written by %s rank(s) with global batch %s; this run has %d rank(s) and batch %d "
                 "(resuming on another rank count needs the same global 'batch')", path, r, b, vkd_comm_size(), o->batch);
        rc = -1;
    }
    vkd_st_close(st);
    return rc;
}

// Loads checkpoint `path` into ck (its metadata must match `match`, nmatch pairs)
// and takes the step and skipped count it was written at.
static int load_state(const char *path, const vkd_train_opts *o, vkd_ckpt *ck, const char *const *match, int nmatch,
                      vkd_train_state *st, char *err, size_t errlen) {
    if (check_ranks(path, o, err, errlen) || vkd_ckpt_load(ck, path, match, nmatch, err, errlen)) return -1;
    const char *s = vkd_ckpt_meta(ck, "step"), *k = vkd_ckpt_meta(ck, "skipped");
    st->step = s ? atoll(s) : 0;
    st->skipped = k ? atoll(k) : 0;
    return 0;
}

// A fresh run that continues another run's checkpoint under a changed config
// (a second stage with a lower lr, an EMA switched on): everything a resume
// loads, and the step it continues from, but the train_config it was written
// under need not match; the kind and the networks' shapes still must.
static int init_from(const vkd_train_opts *o, vkd_ckpt *ck, const char *const *match, int nmatch, vkd_train_state *st,
                     char *err, size_t errlen) {
    if (!o->init_from) return 0;
    const char *m[16];  // (key, value) pairs, nmatch of them
    int n = 0;
    for (int i = 0; i < nmatch && n < 8; i++)
        if (strcmp(match[2 * i], "train_config") != 0) m[2 * n] = match[2 * i], m[2 * n + 1] = match[2 * i + 1], n++;
    if (load_state(o->init_from, o, ck, m, n, st, err, errlen)) return -1;
    if (!o->quiet && vkd_comm_rank() == 0)
        fprintf(stderr, "vkdistill: starting from %s (step %lld) under this config\n", o->init_from, (long long)st->step);
    return 0;
}

// Finds and loads the checkpoint to resume from (nothing is written here: a
// refused resume leaves the run folder as it was). *start = 0 for a fresh run.
static int resume_from(vkd_run *run, const vkd_train_opts *o, vkd_ckpt *ck, const char *const *match, int nmatch,
                       vkd_train_state *st, char *err, size_t errlen) {
    char path[1024];
    int64_t latest = vkd_run_latest_checkpoint(run, path, sizeof path);
    if (!o->resume) {
        if (latest > 0) {
            snprintf(err, errlen, "%s: this run folder already has checkpoints; resume it with --resume auto or choose another --out",
                     run->dir);
            return -1;
        }
        return init_from(o, ck, match, nmatch, st, err, errlen);
    }
    if (strcmp(o->resume, "auto") != 0) snprintf(path, sizeof path, "%s", o->resume);
    else if (!latest) return init_from(o, ck, match, nmatch, st, err, errlen);
    if (load_state(path, o, ck, match, nmatch, st, err, errlen)) return -1;
    if (!o->quiet && vkd_comm_rank() == 0) fprintf(stderr, "vkdistill: resuming %s at step %lld\n", path, (long long)st->step);
    return 0;
}

// One metrics.jsonl line: step, kimg, skipped, then the trainable's fields.
static int log_line(vkd_run *run, const vkd_train_opts *o, const vkd_trainable *t, void *self, const vkd_train_state *st,
                    const char *eval_fields, char *err, size_t errlen) {
    char fields[4096] = "", line[8192];
    if (t->metrics && t->metrics(self, st, fields, sizeof fields, err, errlen)) return -1;
    snprintf(line, sizeof line, "\"step\":%lld,\"kimg\":%.3f%s%s%s%s,\"skipped\":%lld", (long long)st->step,
             st->step * o->batch / 1000.0, fields[0] ? "," : "", fields, eval_fields[0] ? "," : "", eval_fields,
             (long long)st->skipped);
    vkd_run_metrics(run, line);
    return 0;
}

// Only rank 0 writes checkpoints, once every rank has handed in its share of the state
// (t->gather, a collective: every rank calls this at the same step).
static int checkpoint(vkd_run *run, vkd_ckpt *ck, const vkd_train_opts *o, const vkd_train_state *st, double *last,
                      const vkd_trainable *t, void *self, char *err, size_t errlen) {
    if (vkd_comm_size() > 1 && t->gather && t->gather(self, err, errlen)) return -1;
    if (vkd_comm_rank() != 0) return 0;
    vkd_debug_kill_point("ckpt", st->step);
    *last = vkd_progress_clock();
    char v[32];
    snprintf(v, sizeof v, "%d", vkd_comm_size());
    vkd_ckpt_set_meta(ck, "ranks", v);
    snprintf(v, sizeof v, "%d", o->batch);
    vkd_ckpt_set_meta(ck, "global_batch", v);
    return vkd_run_checkpoint(run, ck, st->step, st->skipped, err, errlen);
}

int vkd_train(const vkd_train_opts *opts, const vkd_trainable *t, void *self, char *err, size_t errlen) {
    // Under mpirun only rank 0 prints progress and writes the run folder; every
    // rank resumes from the same checkpoint and runs every step.
    int root = vkd_comm_rank() == 0;
    vkd_train_opts oo = *opts;
    const vkd_train_opts *o = &oo;
    if (!root) oo.quiet = 1;
    vkd_run run;
    vkd_run_init(&run, o->out_dir);
    vkd_train_state st = {.run_dir = run.dir};
    const char *const *match = NULL;
    int nmatch = 0;
    vkd_ckpt *ck = t->checkpoint(self, &match, &nmatch);
    if (!ck) {
        snprintf(err, errlen, "%s: out of memory", o->out_dir);
        return VKD_TRAIN_ERROR;
    }
    int fail = resume_from(&run, o, ck, match, nmatch, &st, err, errlen) ||
               (root && vkd_run_start(&run, o->config_text, st.step, err, errlen));
    if (vkd_comm_size() > 1) {  // all ranks start, or none
        int f[2] = {fail, root && fail};
        vkd_comm_allreduce_max_i32(f, 2);
        if (f[0] && !fail) snprintf(err, errlen, "another rank could not start the run (see its line)");
        else if (f[1] && !root) err[0] = 0;  // rank 0 says why (the same for every rank)
        fail = f[0];
    }
    if (fail) {
        vkd_run_close(&run);
        return VKD_TRAIN_ERROR;
    }

    vkd_train_catch_signals();
    if (o->banner && !o->quiet) fprintf(stderr, "vkdistill: %s\n", o->banner);
    int rc = 0;
    int64_t ckpt_every = o->ckpt_every, cap = o->steps / 4 > 1 ? o->steps / 4 : 1;
    if (ckpt_every <= 0 || ckpt_every > cap) ckpt_every = cap;  // a crash never loses more than a quarter of the run
    int max_bad = o->max_bad_steps > 0 ? o->max_bad_steps : 100, bad_run = 0;
    if (t->begin) rc = t->begin(self, &st, err, errlen);
    if (!rc && vkd_train_interrupted_all()) {
        // Interrupted before the first step (e.g. during a warm-up): nothing worth a checkpoint.
        vkd_run_close(&run);
        if (!o->quiet) fprintf(stderr, "vkdistill: interrupted before step %lld; nothing to save\n", (long long)st.step + 1);
        return VKD_TRAIN_INTERRUPTED;
    }
    vkd_progress pr;
    // The bar starts after start-up and warm-ups, so its rate and ETA are those of the steps.
    if (!o->quiet) vkd_progress_begin(&pr, o->title, "img", st.step, o->steps);
    double last_ckpt = vkd_progress_clock();
    char status[160] = "", evf[2048];
    while (!rc && st.step < o->steps && !vkd_train_interrupted_all()) {
        st.step++;
        int bad = 0;
        status[0] = 0;
        if ((rc = t->step(self, &st, &bad, status, sizeof status, err, errlen))) break;
        if (bad) {
            st.skipped++;
            if (++bad_run >= max_bad) {
                snprintf(err, errlen, "step %lld: %d non-finite losses/gradients in a row; stopping (lower the learning rate?)",
                         (long long)st.step, max_bad);
                rc = 1;
                break;
            }
        } else {
            bad_run = 0;
        }
        int last = st.step == o->steps;
        if (!o->quiet) {
            if (last) vkd_progress_end(&pr, st.step, o->batch, status);
            else vkd_progress_update(&pr, st.step, o->batch, status);
            if (last && (t->evaluate || t->finish)) fprintf(stderr, "vkdistill: final samples, checkpoint and weights...\n");
        }
        int eval_due = t->evaluate && o->eval_every > 0 && (st.step % o->eval_every == 0 || last);
        int eval_now = root && eval_due;
        evf[0] = 0;
        if (eval_now) {
            vkd_debug_kill_point("sample", st.step);
            if ((rc = t->evaluate(self, &st, evf, sizeof evf, err, errlen))) {
                // The step itself completed: keep it (a second error must not hide the first),
                // unless the other ranks hold part of the state (they are not here to hand it in).
                char err2[512];
                if (vkd_comm_size() == 1 || !t->gather) checkpoint(&run, ck, o, &st, &last_ckpt, t, self, err2, sizeof err2);
                break;
            }
        }
        if (root && (st.step % o->log_every == 0 || last || evf[0]) &&
            (rc = log_line(&run, o, t, self, &st, evf, err, errlen)))
            break;
        if (eval_now) vkd_run_write_report(&run, o->title, err, errlen);
        // The other ranks wait for rank 0's samples here, not inside the next step's
        // allreduce, whose bound is meant for ranks that died or hang.
        if (eval_due && vkd_comm_size() > 1) vkd_comm_barrier_for("waiting for rank 0's samples", 86400);
        int due = st.step % ckpt_every == 0 || last;
        if (!due && o->ckpt_seconds > 0) {  // rank 0's clock decides for all ranks (a checkpoint is a collective)
            due = root && vkd_progress_clock() - last_ckpt > o->ckpt_seconds;
            if (vkd_comm_size() > 1) vkd_comm_allreduce_max_i32(&due, 1);
        }
        if (due && (rc = checkpoint(&run, ck, o, &st, &last_ckpt, t, self, err, errlen))) break;
    }
    if (!o->quiet && st.step < o->steps) vkd_progress_end(&pr, st.step, o->batch, status);
    if (!rc && st.step < o->steps) {  // interrupted
        rc = checkpoint(&run, ck, o, &st, &last_ckpt, t, self, err, errlen);
        vkd_run_close(&run);
        if (rc) return VKD_TRAIN_ERROR;
        if (!o->quiet)
            fprintf(stderr, "vkdistill: interrupted at step %lld; checkpoint saved (continue with --resume auto)\n",
                    (long long)st.step);
        return VKD_TRAIN_INTERRUPTED;
    }
    if (!rc && root && t->finish) rc = t->finish(self, &st, err, errlen);
    vkd_run_close(&run);
    return rc ? VKD_TRAIN_ERROR : VKD_TRAIN_DONE;
}
