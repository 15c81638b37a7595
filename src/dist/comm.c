// The world communicator for data-parallel training (include/vkdistill/dist.h).
// MPI is started only when mpirun launched the process, so a plain run never
// touches an MPI runtime. Collectives are non-blocking calls polled against a
// deadline: a rank that died (or hangs) turns into one line and an exit on the
// others instead of a job that waits forever. Ranks may instead be threads of
// one process (vkd_comm_run_threads, src/dist/local.c): then each thread has
// its own rank and the collectives meet in shared memory.
#include "vkdistill/dist.h"
#include "dist/local.h"
#include "vk/vk.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <vulkan/vulkan.h>

#ifdef VKD_WITH_MPI
#include <mpi.h>
#endif

static int g_rank, g_size = 1, g_local;                 // the process's, under mpirun
static _Thread_local int t_on, t_rank, t_size;          // a thread rank's
static _Thread_local double t_ar_seconds, t_ar_bytes;  // this rank's allreduce totals
static double g_timeout = 600;

void vkd_comm_enter_thread_rank(int rank, int size) { t_on = 1, t_rank = rank, t_size = size; }
int vkd_comm_rank(void) { return t_on ? t_rank : g_rank; }
int vkd_comm_size(void) { return t_on ? t_size : g_size; }
int vkd_comm_local_rank(void) { return t_on ? t_rank : g_local; }
double vkd_comm_allreduce_seconds(void) { return t_ar_seconds; }
double vkd_comm_allreduce_bytes(void) { return t_ar_bytes; }

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void read_timeout(void) {
    const char *t = getenv("VKD_MPI_TIMEOUT");
    if (t && atof(t) > 0) g_timeout = atof(t);
}

static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; s && *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

int vkd_comm_check_batch(int64_t batch, const char *field, char *err, size_t errlen) {
    int size = vkd_comm_size();
    if (batch % size == 0) return 0;
    snprintf(err, errlen, "field '%s': the global batch %lld does not split evenly over %d ranks (make it a multiple of %d)",
             field, (long long)batch, size, size);
    return -1;
}

int vkd_comm_vulkan_device_count(void) {
    VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO, .apiVersion = VK_API_VERSION_1_2};
    VkInstanceCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO, .pApplicationInfo = &app};
    VkInstance inst;
    vkd_cpu_driver_env();
    if (vkCreateInstance(&ci, NULL, &inst) != VK_SUCCESS) return 0;
    uint32_t n = 0;
    if (vkEnumeratePhysicalDevices(inst, &n, NULL) != VK_SUCCESS) n = 0;
    vkDestroyInstance(inst, NULL);
    return (int)n;
}

#ifdef VKD_WITH_MPI
static int g_on;

int vkd_comm_built_with_mpi(void) { return 1; }

// One line naming the failed call, then the job ends (MPI_Abort kills the other ranks).
static void die(const char *call, const char *why) {
    fprintf(stderr, "vkdistill: rank %d of %d: %s: %s\n", g_rank, g_size, call, why);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
    _exit(1);
}

static void check(int rc, const char *call) {
    if (rc == MPI_SUCCESS) return;
    char s[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, s, &len);
    s[len] = 0;
    die(call, s);
}

// Waits for a non-blocking collective, sleeping between tests (ranks share
// cores with the device threads on a CPU device) and giving up at the deadline.
static void wait_for(MPI_Request *rq, const char *call, double timeout) {
    double t0 = now_s();
    int done = 0;
    for (long it = 0;; it++) {
        check(MPI_Test(rq, &done, MPI_STATUS_IGNORE), call);
        if (done) return;
        if (it < 64) continue;
        struct timespec ts = {0, it < 2000 ? 20000 : 1000000};
        nanosleep(&ts, NULL);
        if ((it & 255) == 0 && now_s() - t0 > timeout) {
            char why[160];
            snprintf(why, sizeof why, "no answer from the other ranks for %.0f s (did a rank die? VKD_MPI_TIMEOUT sets the limit)",
                     timeout);
            die(call, why);
        }
    }
}

static void wait_bounded(MPI_Request *rq, const char *call) { wait_for(rq, call, g_timeout); }

int vkd_comm_init(int *argc, char ***argv, char *err, size_t errlen) {
    const char *ws = getenv("OMPI_COMM_WORLD_SIZE");
    if (!ws) ws = getenv("PMI_SIZE");
    if (!ws) ws = getenv("PMIX_SIZE");
    if (!ws) return read_timeout(), 0;  // not launched by mpirun: one rank, no MPI calls
    read_timeout();
    int provided;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        snprintf(err, errlen, "MPI_Init failed (started by mpirun with %s ranks)", ws);
        return -1;
    }
    g_on = 1;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    MPI_Comm node;
    check(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_rank, MPI_INFO_NULL, &node), "MPI_Comm_split_type");
    MPI_Comm_rank(node, &g_local);
    int node_ranks = 1;
    MPI_Comm_size(node, &node_ranks);
    MPI_Comm_free(&node);
    vkd_cpu_driver_threads(node_ranks);  // (before any Vulkan instance: lavapipe reads it then)
    return 0;
}

void vkd_comm_finalize(void) {
    if (g_on) MPI_Finalize();
    g_on = 0;
}

// 1 Mi floats a bucket: messages large enough for the bandwidth, and a fixed
// split so the reduction order never depends on the tensor layout.
#define BUCKET (1 << 20)

static void mpi_sum_f32(float *buf, int64_t n) {
    for (int64_t o = 0; o < n; o += BUCKET) {
        int c = (int)(n - o < BUCKET ? n - o : BUCKET);
        MPI_Request rq;
        check(MPI_Iallreduce(MPI_IN_PLACE, buf + o, c, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &rq), "MPI_Allreduce of the gradients");
        wait_bounded(&rq, "MPI_Allreduce of the gradients");
    }
}

static void mpi_sum_f64(double *buf, int n) {
    MPI_Request rq;
    check(MPI_Iallreduce(MPI_IN_PLACE, buf, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD, &rq), "MPI_Allreduce of the metrics");
    wait_bounded(&rq, "MPI_Allreduce of the metrics");
}

static void mpi_max_i32(int *buf, int n) {
    MPI_Request rq;
    check(MPI_Iallreduce(MPI_IN_PLACE, buf, n, MPI_INT, MPI_MAX, MPI_COMM_WORLD, &rq), "MPI_Allreduce of the flags");
    wait_bounded(&rq, "MPI_Allreduce of the flags");
}

static void mpi_bcast(void *buf, size_t bytes, int root) {
    for (size_t o = 0; o < bytes; o += (size_t)1 << 30) {
        size_t c = bytes - o < ((size_t)1 << 30) ? bytes - o : ((size_t)1 << 30);
        MPI_Request rq;
        check(MPI_Ibcast((char *)buf + o, (int)c, MPI_BYTE, root, MPI_COMM_WORLD, &rq), "MPI_Bcast");
        wait_bounded(&rq, "MPI_Bcast");
    }
}

static void mpi_barrier(const char *what, double seconds) {
    MPI_Request rq;
    check(MPI_Ibarrier(MPI_COMM_WORLD, &rq), what);
    wait_for(&rq, what, seconds);
}
#else
int vkd_comm_built_with_mpi(void) { return 0; }

int vkd_comm_init(int *argc, char ***argv, char *err, size_t errlen) {
    if (getenv("OMPI_COMM_WORLD_SIZE") && atoi(getenv("OMPI_COMM_WORLD_SIZE")) > 1) {
        snprintf(err, errlen, "started by mpirun with %s ranks, but this vkdistill was built without MPI (install libopenmpi-dev and rebuild)",
                 getenv("OMPI_COMM_WORLD_SIZE"));
        return -1;
    }
    return 0;
}
void vkd_comm_finalize(void) {}
// Never called: without MPI the world is one process (or threads, src/dist/local.c).
static void mpi_sum_f32(float *buf, int64_t n) {}
static void mpi_sum_f64(double *buf, int n) {}
static void mpi_max_i32(int *buf, int n) {}
static void mpi_bcast(void *buf, size_t bytes, int root) {}
static void mpi_barrier(const char *what, double seconds) {}
#endif

void vkd_comm_allreduce_sum_f32(float *buf, int64_t n) {
    if (vkd_comm_size() == 1) return;
    double t0 = now_s();
    if (vkd_local_on()) vkd_local_sum_f32(buf, n, g_timeout);
    else mpi_sum_f32(buf, n);
    t_ar_seconds += now_s() - t0;
    t_ar_bytes += (double)n * sizeof *buf;
}

void vkd_comm_allreduce_sum_f64(double *buf, int n) {
    if (vkd_comm_size() == 1) return;
    if (vkd_local_on()) vkd_local_sum_f64(buf, n, g_timeout);
    else mpi_sum_f64(buf, n);
}

void vkd_comm_allreduce_max_i32(int *buf, int n) {
    if (vkd_comm_size() == 1) return;
    if (vkd_local_on()) vkd_local_max_i32(buf, n, g_timeout);
    else mpi_max_i32(buf, n);
}

void vkd_comm_bcast(void *buf, size_t bytes, int root) {
    if (vkd_comm_size() == 1) return;
    if (vkd_local_on()) vkd_local_bcast(buf, bytes, root, g_timeout);
    else mpi_bcast(buf, bytes, root);
}

void vkd_comm_barrier(void) { vkd_comm_barrier_for(vkd_local_on() ? "barrier" : "MPI_Barrier", 0); }

void vkd_comm_barrier_for(const char *what, double seconds) {
    if (vkd_comm_size() == 1) return;
    double t = seconds > g_timeout ? seconds : g_timeout;
    if (vkd_local_on()) vkd_local_barrier(what, t);
    else mpi_barrier(what, t);
}

double vkd_comm_mean(double x) {
    vkd_comm_allreduce_sum_f64(&x, 1);
    return x / vkd_comm_size();
}

int vkd_comm_check_same(const char *text, const char *what, char *err, size_t errlen) {
    if (vkd_comm_size() == 1) return 0;
    uint64_t mine = fnv1a(text), h = mine;
    vkd_comm_bcast(&h, sizeof h, 0);
    int bad = h != mine;
    vkd_comm_allreduce_max_i32(&bad, 1);
    if (!bad) return 0;
    // One line from each rank whose copy differs and one from rank 0; the others exit quietly.
    err[0] = 0;
    if (h != mine) snprintf(err, errlen, "%s: rank %d's copy differs from rank 0's; every rank must run the same config", what, vkd_comm_rank());
    else if (vkd_comm_rank() == 0) snprintf(err, errlen, "%s: another rank's copy differs from rank 0's; every rank must run the same config", what);
    return -1;
}
