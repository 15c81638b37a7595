// Ranks as threads of one process (src/dist/local.c): the collectives of
// include/vkdistill/dist.h over shared memory, for vkd_comm_run_threads.
#ifndef VKD_DIST_LOCAL_H
#define VKD_DIST_LOCAL_H
#include <stddef.h>
#include <stdint.h>

// 1 on a thread started by vkd_comm_run_threads.
int vkd_local_on(void);
// Makes the calling thread rank `rank` of `size` for vkd_comm_rank / _size / _local_rank (comm.c).
void vkd_comm_enter_thread_rank(int rank, int size);
// Collectives of the threads' world. `what` names the call in the one line
// printed when the others do not arrive within `timeout` seconds.
void vkd_local_sum_f32(float *buf, int64_t n, double timeout);
void vkd_local_sum_f64(double *buf, int n, double timeout);
void vkd_local_max_i32(int *buf, int n, double timeout);
void vkd_local_bcast(void *buf, size_t bytes, int root, double timeout);
void vkd_local_barrier(const char *what, double timeout);

#endif
