// Ranks as threads (src/dist/local.c): the collectives of 3 thread ranks in
// shared memory against the same sums taken in rank order on the host, bit for
// bit; each thread's rank, size and draws' row offset kept while the others set
// theirs; and a rank that fails releasing the others from their next collective.
#include "harness.h"
#include "vkdistill/dist.h"

#define N 3
#define LEN 5000  // past the sum's chunks of 1024 floats, not a whole number of 16-float shares
static int bad[N];  // each rank's failed checks (CHECK's counters are not for threads)

static float value(int r, int i) { return (float)(r + 1) * 0.1f + (float)i * 1e-3f; }

static int rank_body(void *arg) {
    (void)arg;
    int r = vkd_comm_rank(), *b = &bad[r];
    if (vkd_comm_size() != N || vkd_comm_local_rank() != r) (*b)++;
    // Every rank sets its offset before the second barrier: a shared one would hold the last.
    vkd_rand_set_row_offset(100 + r);
    vkd_comm_barrier();
    vkd_comm_barrier();
    if (vkd_rand_row_offset() != 100 + r) (*b)++;
    vkd_rand_set_row_offset(0);

    float *x = malloc(LEN * sizeof *x);
    for (int i = 0; i < LEN; i++) x[i] = value(r, i);
    vkd_comm_allreduce_sum_f32(x, LEN);
    for (int i = 0; i < LEN; i++) {
        float s = value(0, i);
        for (int k = 1; k < N; k++) s += value(k, i);
        if (memcmp(&s, &x[i], sizeof s)) (*b)++;
    }
    free(x);
    double d[2] = {r, 0.5 * r};
    vkd_comm_allreduce_sum_f64(d, 2);
    if (d[0] != 3 || d[1] != 1.5) (*b)++;
    int m[2] = {r, -r};
    vkd_comm_allreduce_max_i32(m, 2);
    if (m[0] != N - 1 || m[1] != 0) (*b)++;
    char text[16];
    snprintf(text, sizeof text, "rank %d", r);
    vkd_comm_bcast(text, sizeof text, 1);
    if (strcmp(text, "rank 1")) (*b)++;
    if (vkd_comm_allreduce_bytes() != LEN * sizeof(float)) (*b)++;
    return 0;
}

// Rank 1 fails before the first collective; the others would wait for it there.
static int failing_body(void *arg) {
    (void)arg;
    if (vkd_comm_rank() == 1) return 3;
    vkd_comm_barrier();
    return 0;
}

int main(void) {
    char err[256] = "";
    int rc = vkd_comm_run_threads(N, rank_body, NULL, err, sizeof err);
    CHECK(rc == 0, "3 thread ranks returned %d (%s)", rc, err);
    for (int r = 0; r < N; r++) CHECK(bad[r] == 0, "rank %d: %d of its checks failed", r, bad[r]);
    CHECK(vkd_comm_size() == 1 && vkd_comm_rank() == 0, "after the threads the caller is rank %d of %d, not 0 of 1",
          vkd_comm_rank(), vkd_comm_size());
    rc = vkd_comm_run_threads(N, failing_body, NULL, err, sizeof err);
    CHECK(rc == 3, "a failing rank's code: %d, not 3", rc);
    rc = vkd_comm_run_threads(0, rank_body, NULL, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "expected 1 to"), "0 ranks: %d '%s'", rc, err);
    printf("%d passed, %d failed\n", t_pass, t_fail);
    return t_fail != 0;
}
