// The per-rank slices of device random numbers (vkd_rand_set_row_offset): with
// the global batch split over ranks, rank r's draws (uniform, normal, dropout
// masks) must be bit for bit rows [r*b, (r+1)*b) of the one-process draw, also
// when a row's element count is not a multiple of Philox's four numbers.
#include "harness.h"
#include "vkdistill/dist.h"

// Draws (uniform, normal, dropout of ones) for rows [row0, row0 + rows) of shape (rows, 3, 5).
static void draw(vkd_ctx *ctx, vkd_tensor *step, int64_t row0, int64_t rows, float *out) {
    int64_t shape[3] = {rows, 3, 5}, n = rows * 15;
    vkd_rand_set_row_offset(row0);
    vkd_graph *g = vkd_graph_new(ctx, "rng_slice");
    vkd_tensor *ones = vkd_tensor_new(ctx, "ones", 3, shape, 0);
    float *h = malloc(n * sizeof *h);
    for (int64_t i = 0; i < n; i++) h[i] = 1;
    vkd_tensor_upload(ones, h);
    vkd_tensor *t[3] = {vkd_rand_uniform(g, 3, shape, 77, 5, step), vkd_rand_normal(g, 3, shape, 77, 6, step),
                        vkd_dropout(g, ones, 0.5f, 77, 7, step)};
    vkd_rand_set_row_offset(0);
    for (int k = 0; k < 3; k++) vkd_graph_keep(g, t[k]);
    CHECK(vkd_graph_compile(g) == 0 && vkd_graph_run(g) == 0, "run: %s", vkd_graph_error(g));
    for (int k = 0; k < 3; k++) vkd_tensor_download(t[k], out + k * n);
    free(h);
    vkd_graph_free(g);
    vkd_tensor_free(ones);
}

int main(void) {
    vkd_ctx *ctx = t_open();
    int64_t one = 1, B = 6;
    vkd_tensor *step = vkd_tensor_new(ctx, "step", 1, &one, VKD_HOST);
    ((uint32_t *)vkd_tensor_map(step))[0] = 12;
    float *full = malloc(3 * B * 15 * sizeof *full), *part = malloc(3 * B * 15 * sizeof *part);
    draw(ctx, step, 0, B, full);
    // The unsliced draw is the host's Philox stream (the existing streams do not move).
    int ubad = 0;
    for (int64_t i = 0; i < B * 15; i++) {
        float ref = vkd_philox_uniform(77, 5, 12, i);
        ubad += memcmp(&ref, &full[i], 4) != 0;
    }
    CHECK(ubad == 0, "the unsliced uniforms differ from the host stream in %d places", ubad);
    for (int ranks = 2; ranks <= 3; ranks++) {
        int64_t b = B / ranks;
        for (int r = 0; r < ranks; r++) {
            draw(ctx, step, r * b, b, part);
            for (int k = 0; k < 3; k++) {
                int bad = memcmp(part + k * b * 15, full + k * B * 15 + r * b * 15, b * 15 * sizeof *part) != 0;
                CHECK(!bad, "%d ranks, rank %d: %s slice differs from the one-process draw", ranks, r,
                      k == 0 ? "uniform" : k == 1 ? "normal" : "dropout");
            }
        }
    }
    free(full), free(part);
    vkd_tensor_free(step);
    return t_close(ctx);
}
