// The library in one page: distill the exact 8-mode ring teacher into a
// one-step MLP generator with SiD through the public C API, then measure the
// energy distance of the generator's samples to exact ones.
//
//   cc distill_api.c $(pkg-config --cflags --libs vkdistill) -o distill_api
//   ./distill_api [MODELS_DIR] [STEPS]
#include <stdio.h>
#include <stdlib.h>

#include <vkdistill/distill.h>

int main(int argc, char **argv) {
    const char *models = argc > 1 ? argv[1] : "models";
    int steps = argc > 2 ? atoi(argv[2]) : 200;
    char err[1024];

    // The run's settings: SiD's defaults, then what this toy needs.
    vkd_distiller_cfg c;
    vkd_distiller_cfg_init(&c, VKD_SID);
    snprintf(c.teacher_gmm, sizeof c.teacher_gmm, "%s/gmm_ring8.json", models);  // exact score, no network
    snprintf(c.student, sizeof c.student, "%s/mlp_2d.json", models);          // a residual MLP denoiser
    c.init_from_teacher = 0;  // a GMM has no weights to start from
    c.batch = 128;
    c.steps = steps;
    c.fake_warmup = 100;      // let the fake score learn G's initial distribution first
    c.lr_g = 5e-4, c.lr_f = 1e-3;
    c.ema_halflife_kimg = 8;

    vkd_ctx *ctx = vkd_ctx_create(&(vkd_ctx_opts){.quiet = 1}, err, sizeof err);
    vkd_distiller *d = ctx ? vkd_distiller_new(ctx, &c, NULL, err, sizeof err) : NULL;
    if (!d) {
        fprintf(stderr, "distill_api: %s\n", err);
        return 1;
    }

    // Warm up the fake score, then iterate: each step is fake_steps replays of the
    // recorded fake-score phase and one of the generator phase.
    vkd_toy_stats before, after;
    if (vkd_distiller_toy_stats(d, &before) || vkd_distiller_warmup(d)) goto fail;
    vkd_distill_stats st = {0};
    for (int64_t s = 1; s <= c.steps; s++) {
        if (vkd_distiller_step(d, s, &st)) goto fail;
        if (s % 100 == 0) printf("step %4lld  generator loss %.4f  fake loss %.4f\n", (long long)s, st.loss_g, st.loss_f);
    }

    // 2000 samples of the EMA generator against 2000 exact ones.
    if (vkd_distiller_toy_stats(d, &after)) goto fail;
    printf("energy distance to exact samples: %.4f at start, %.4f after %d steps (exact vs exact: ~0.006)\n",
           before.energy_distance, after.energy_distance, steps);
    printf("mode weights (exact 0.125):");
    for (int k = 0; k < after.modes; k++) printf(" %.3f", after.mode_weights[k]);
    printf("\n");
    int improved = after.energy_distance < before.energy_distance;
    if (!improved) fprintf(stderr, "distill_api: the energy distance did not fall\n");
    int msgs = vkd_ctx_validation_messages(ctx);  // VKD_VALIDATION=1 runs it under the Khronos layer
    vkd_distiller_free(d);
    vkd_ctx_destroy(ctx);
    return improved && !msgs ? 0 : 1;
fail:
    fprintf(stderr, "distill_api: %s\n", vkd_distiller_error(d));
    vkd_distiller_free(d);
    vkd_ctx_destroy(ctx);
    return 1;
}
