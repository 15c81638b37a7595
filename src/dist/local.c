#ifndef _GNU_SOURCE
#define _GNU_SOURCE  // sched_getaffinity, pthread_setaffinity_np
#endif
// Ranks as threads of one process (include/vkdistill/dist.h,
// vkd_comm_run_threads): each thread runs the verb as one rank with its own
// device, and the collectives meet in shared memory instead of MPI. On a CPU
// device each rank's dispatches then run on its own thread (LP_NUM_THREADS=0),
// without the ~29 us hand-off to lavapipe's workers that every dispatch of a
// single rank pays (docs/performance_history.md, "Ranks as threads").
//
// A collective is a barrier around reads of the other ranks' buffers, which
// each rank publishes before it. Waits are bounded like MPI's: a rank that does
// not arrive within the timeout ends the process with one line. A rank that
// returns an error releases the others from their next wait; they leave
// their threads and the world returns that rank's code.
#include "dist/local.h"

#include <errno.h>
#include <sched.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vk/vk.h"
#include "vkdistill/dist.h"

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n, arrived, first_rc;
    unsigned gen;
    int failed;             // a rank returned an error: the others leave at their next wait
    const void *ptr[VKD_MAX_THREAD_RANKS];  // each rank's buffer of the current collective
    int64_t count[VKD_MAX_THREAD_RANKS];
} world;

static world g_w = {.mu = PTHREAD_MUTEX_INITIALIZER};
static _Thread_local int t_rank = -1;

int vkd_local_on(void) { return t_rank >= 0; }

static void die(const char *what, const char *why) {
    fprintf(stderr, "vkdistill: rank %d of %d: %s: %s\n", t_rank, g_w.n, what, why);
    fflush(stdout), fflush(stderr);
    _exit(1);  // a rank that hangs cannot be stopped otherwise
}

// A rank released by another's failure: its own work is abandoned with the process's.
static void leave(void) {
    pthread_mutex_unlock(&g_w.mu);
    pthread_exit(NULL);
}

void vkd_local_barrier(const char *what, double timeout) {
    pthread_mutex_lock(&g_w.mu);
    unsigned gen = g_w.gen;
    if (++g_w.arrived == g_w.n) {
        g_w.arrived = 0;
        g_w.gen++;
        pthread_cond_broadcast(&g_w.cv);
        pthread_mutex_unlock(&g_w.mu);
        return;
    }
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += (time_t)timeout;
    while (g_w.gen == gen) {
        if (g_w.failed) leave();
        if (pthread_cond_timedwait(&g_w.cv, &g_w.mu, &dl) == ETIMEDOUT && g_w.gen == gen && !g_w.failed) {
            pthread_mutex_unlock(&g_w.mu);
            char why[160];
            snprintf(why, sizeof why, "no answer from the other ranks for %.0f s (does a rank hang? VKD_MPI_TIMEOUT sets the limit)",
                     timeout);
            die(what, why);
        }
    }
    pthread_mutex_unlock(&g_w.mu);
}

// Publishes this rank's buffer and waits until every rank has; count must agree.
static void publish(const char *what, const void *p, int64_t count, double timeout) {
    g_w.ptr[t_rank] = p;
    g_w.count[t_rank] = count;
    vkd_local_barrier(what, timeout);
    for (int r = 0; r < g_w.n; r++)
        if (g_w.count[r] != count) {
            char why[160];
            snprintf(why, sizeof why, "rank %d passed %lld elements and rank %d %lld (every rank must run the same config)", r,
                     (long long)g_w.count[r], t_rank, (long long)count);
            die(what, why);
        }
}

// Rank r sums its share of the elements over all ranks, in rank order, and writes the sum into
// every rank's buffer: the shares are disjoint, so each element has one writer, every rank gets
// the same bits, and for 2 ranks they are mpirun's (a + b).
void vkd_local_sum_f32(float *buf, int64_t n, double timeout) {
    const char *what = "allreduce of the gradients";
    publish(what, buf, n, timeout);
    int N = g_w.n;
    int64_t per = ((n + N - 1) / N + 15) / 16 * 16, lo = t_rank * per, hi = lo + per < n ? lo + per : n;
    enum { CHUNK = 1024 };
    float acc[CHUNK];
    for (int64_t o = lo; o < hi; o += CHUNK) {
        int c = (int)(hi - o < CHUNK ? hi - o : CHUNK);
        memcpy(acc, (const float *)g_w.ptr[0] + o, c * sizeof *acc);
        for (int r = 1; r < N; r++) {
            const float *p = (const float *)g_w.ptr[r] + o;
            for (int i = 0; i < c; i++) acc[i] += p[i];
        }
        for (int r = 0; r < N; r++) memcpy((float *)g_w.ptr[r] + o, acc, c * sizeof *acc);
    }
    vkd_local_barrier(what, timeout);
}

// A few numbers: each rank reduces all of them into a copy, then (after the others have read
// its buffer) writes the copy back.
void vkd_local_sum_f64(double *buf, int n, double timeout) {
    const char *what = "allreduce of the metrics";
    publish(what, buf, n, timeout);
    double *s = malloc((n > 0 ? n : 1) * sizeof *s);
    if (!s) die(what, "out of host memory");
    for (int i = 0; i < n; i++) s[i] = ((const double *)g_w.ptr[0])[i];
    for (int r = 1; r < g_w.n; r++)
        for (int i = 0; i < n; i++) s[i] += ((const double *)g_w.ptr[r])[i];
    vkd_local_barrier(what, timeout);
    memcpy(buf, s, n * sizeof *s);
    free(s);
}

void vkd_local_max_i32(int *buf, int n, double timeout) {
    const char *what = "allreduce of the flags";
    publish(what, buf, n, timeout);
    int *m = malloc((n > 0 ? n : 1) * sizeof *m);
    if (!m) die(what, "out of host memory");
    for (int i = 0; i < n; i++) {
        m[i] = ((const int *)g_w.ptr[0])[i];
        for (int r = 1; r < g_w.n; r++)
            if (((const int *)g_w.ptr[r])[i] > m[i]) m[i] = ((const int *)g_w.ptr[r])[i];
    }
    vkd_local_barrier(what, timeout);
    memcpy(buf, m, n * sizeof *m);
    free(m);
}

void vkd_local_bcast(void *buf, size_t bytes, int root, double timeout) {
    publish("broadcast", buf, (int64_t)bytes, timeout);
    if (t_rank != root) memcpy(buf, g_w.ptr[root], bytes);
    vkd_local_barrier("broadcast", timeout);
}

typedef struct {
    int rank;
    int (*fn)(void *);
    void *arg;
} rank_start;

// Binds the calling thread (and the threads it starts: lavapipe's, the pipeline compilers) to
// its share of the CPUs this process may run on, as mpirun binds its ranks: with 2 ranks on 2
// CPUs a CPU each, on 4 two each (vkd_cpu_driver_threads gave each rank's lavapipe that many).
static void pin(int rank, int n) {
#ifdef __linux__
    cpu_set_t set, mine;
    if (sched_getaffinity(0, sizeof set, &set) || CPU_COUNT(&set) < n) return;
    int share = CPU_COUNT(&set) / n;
    CPU_ZERO(&mine);
    for (int c = 0, k = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &set)) {
            if (k / share == rank) CPU_SET(c, &mine);
            k++;
        }
    pthread_setaffinity_np(pthread_self(), sizeof mine, &mine);
#endif
}

static void *rank_main(void *a) {
    rank_start *s = a;
    t_rank = s->rank;
    pin(s->rank, g_w.n);
    vkd_comm_enter_thread_rank(s->rank, g_w.n);
    int rc = s->fn(s->arg);
    fflush(stdout), fflush(stderr);
    pthread_mutex_lock(&g_w.mu);
    if (rc && !g_w.failed) g_w.failed = 1, g_w.first_rc = rc;
    pthread_cond_broadcast(&g_w.cv);
    pthread_mutex_unlock(&g_w.mu);
    return NULL;
}

int vkd_comm_run_threads(int n, int (*fn)(void *), void *arg, char *err, size_t errlen) {
    if (n < 1 || n > VKD_MAX_THREAD_RANKS) {
        snprintf(err, errlen, "%d ranks: expected 1 to %d", n, VKD_MAX_THREAD_RANKS);
        return -1;
    }
    if (vkd_comm_size() > 1) {
        snprintf(err, errlen, "ranks as threads inside an mpirun job of %d ranks: use one or the other", vkd_comm_size());
        return -1;
    }
    if (n == 1) return fn(arg);
    g_w.n = n, g_w.arrived = 0, g_w.failed = 0, g_w.first_rc = 0;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_cond_init(&g_w.cv, &ca);
    pthread_condattr_destroy(&ca);
    // Before any Vulkan instance (lavapipe reads them then) and before the threads: setenv
    // is not safe beside another thread's getenv.
    vkd_cpu_driver_threads(n);
    vkd_cpu_driver_env();
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setstacksize(&at, (size_t)64 << 20);  // a verb's stack, as on the main thread
    pthread_t th[VKD_MAX_THREAD_RANKS];
    rank_start st[VKD_MAX_THREAD_RANKS];
    int started = 0;
    for (; started < n; started++) {
        st[started] = (rank_start){started, fn, arg};
        if (pthread_create(&th[started], &at, rank_main, &st[started])) break;
    }
    pthread_attr_destroy(&at);
    if (started < n) {
        // The started ranks wait at their first collective for ranks that never come: release them.
        pthread_mutex_lock(&g_w.mu);
        g_w.failed = 1, g_w.first_rc = -1;
        pthread_cond_broadcast(&g_w.cv);
        pthread_mutex_unlock(&g_w.mu);
    }
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    pthread_cond_destroy(&g_w.cv);
    if (started < n) {
        snprintf(err, errlen, "could not start thread %d of %d ranks", started, n);
        return -1;
    }
    return g_w.first_rc;
}
