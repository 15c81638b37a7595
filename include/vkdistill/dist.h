#ifndef VKDISTILL_DIST_H
#define VKDISTILL_DIST_H
// Data-parallel training over MPI (src/dist/comm.c): one process per device,
// launched by `mpirun -n N vkdistill ...`, or over threads of one process
// (vkd_comm_run_threads, `vkdistill --ranks N ...`). Under MPI the world is
// process global, like MPI itself; as threads, each thread is a rank.
// Without MPI in the build, or when the program was not started by mpirun
// (nor as threads), there is one rank and every call is a no-op (no MPI
// runtime is touched, nothing is printed).
//
// Every collective is bounded: when the other ranks do not answer within
// $VKD_MPI_TIMEOUT seconds (default 600; a rank died or hangs) or an MPI call
// fails, the rank prints one line naming the call and exits non-zero, which
// makes mpirun end the whole job.
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Ranks as threads: runs fn(arg) on n threads of this process, each a rank
// of a world of n with its own device and the collectives below meeting in
// shared memory (no MPI). On a CPU device the driver runs each rank's
// dispatches on that rank's thread. Returns 0 when every rank returned 0, else
// the first failing rank's code (the others leave at their next collective),
// or -1 with one line in err when the threads cannot start. Call once, after
// vkd_comm_init and before any Vulkan instance; refused under mpirun.
#define VKD_MAX_THREAD_RANKS 64
int vkd_comm_run_threads(int n, int (*fn)(void *), void *arg, char *err, size_t errlen);

// Starts MPI when launched by mpirun (OMPI_COMM_WORLD_SIZE / PMI_SIZE set),
// else does nothing. 0, or -1 with one line in err.
int vkd_comm_init(int *argc, char ***argv, char *err, size_t errlen);
void vkd_comm_finalize(void);
int vkd_comm_rank(void);
int vkd_comm_size(void);
// The rank among those on the same node (picks the device).
int vkd_comm_local_rank(void);
// 1 when the build has MPI.
int vkd_comm_built_with_mpi(void);

// In-place sum of n floats over all ranks, in fixed-size buckets in a fixed
// order: for a fixed rank count the result is the same on every rank and every run.
void vkd_comm_allreduce_sum_f32(float *buf, int64_t n);
// In-place sums / maxima of a few doubles / ints (losses, flags).
void vkd_comm_allreduce_sum_f64(double *buf, int n);
void vkd_comm_allreduce_max_i32(int *buf, int n);
// The mean over ranks of one number.
double vkd_comm_mean(double x);
// Rank root's bytes to every rank (in buckets of at most 1 GiB).
void vkd_comm_bcast(void *buf, size_t bytes, int root);
void vkd_comm_barrier(void);
// A barrier where the others wait for work only some ranks do (rank 0's sample
// grids): bounded by `seconds` (if longer than $VKD_MPI_TIMEOUT); `what` names it in the line.
void vkd_comm_barrier_for(const char *what, double seconds);
// Seconds spent inside vkd_comm_allreduce_sum_f32 so far (this rank).
double vkd_comm_allreduce_seconds(void);
// Bytes this rank passed to vkd_comm_allreduce_sum_f32 so far.
double vkd_comm_allreduce_bytes(void);

// Rank 0 broadcasts a hash of text; a rank whose own differs returns -1 with
// one line in err naming `what` (e.g. the config path). 0 when they agree.
int vkd_comm_check_same(const char *text, const char *what, char *err, size_t errlen);
// Refuses a global batch that the ranks cannot split evenly (field names the config key).
int vkd_comm_check_batch(int64_t batch, const char *field, char *err, size_t errlen);
// The number of Vulkan devices (0 when none), for picking one per local rank.
int vkd_comm_vulkan_device_count(void);

// Device random numbers of one rank's slice of the global batch: draws
// (vkd_rand_uniform / vkd_rand_normal / vkd_dropout) recorded while row0 > 0
// take rows [row0, row0 + shape[0]) of the same draw with the global batch's
// rows, so N ranks of B/N rows draw exactly the numbers one process of B rows
// draws. Every draw of a training phase has the batch as its first dimension.
// Set before recording a rank's phases, reset to 0 after.
void vkd_rand_set_row_offset(int64_t row0);
int64_t vkd_rand_row_offset(void);

#ifdef __cplusplus
}
#endif
#endif
