// vkdistill sample: images from a teacher (N-step EDM sampler, optional
// churn and classifier-free guidance) or a one-step student
// (x = D(sigma z; sigma)). Same seed, same images. Vector models (the MLP
// students of Gaussian-mixture teachers) write points: --npz always, and a
// scatter plot (-o) in 2-D, over exact samples of --gmm when given.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "train/progress.h"
#include "vkdistill/data.h"
#include "vkdistill/distill.h"
#include "vkdistill/eval.h"

// Points (n, d): "samples" (n, d) float32 in an .npz; in 2-D a scatter plot over
// 4000 exact samples of the mixture gmm_path (when given), spanning the data.
static int write_points(vkd_ctx *ctx, const char *png, const char *npz, const char *gmm_path, const float *x, int n,
                        int d, char *err, size_t errlen) {
    if (npz) {
        int64_t sh[2] = {n, d};
        vkd_npy_array arr[1] = {{"samples", VKD_NPY_F32, 2, sh, (void *)x}};
        if (vkd_npz_write(npz, arr, 1, 0, err, errlen)) return -1;
    }
    if (!png) return 0;
    if (d != 2) {
        snprintf(err, errlen, "-o %s: a scatter plot needs 2-D points, the model makes %d-d ones (use --npz)", png, d);
        return -1;
    }
    float *ref = NULL;
    int nref = 0;
    if (gmm_path) {
        vkd_gmm *gm = vkd_gmm_load(ctx, gmm_path, err, errlen);
        if (!gm) return -1;
        int64_t gs[3];
        if (vkd_gmm_sample_shape(gm, gs) != 1 || gs[0] != 2) {
            snprintf(err, errlen, "--gmm %s: the mixture is not 2-D", gmm_path);
            vkd_gmm_free(gm);
            return -1;
        }
        nref = 4000;
        ref = malloc(sizeof(float) * 2 * nref);
        vkd_gmm_sample_host(gm, 4242, nref, ref, NULL);
        vkd_gmm_free(gm);
    }
    // The plot spans the reference (or the samples): 1.15 x the largest |coordinate|.
    float lim = 0;
    const float *p = ref ? ref : x;
    for (int i = 0; i < 2 * (ref ? nref : n); i++)
        if (isfinite(p[i])) lim = fmaxf(lim, fabsf(p[i]));
    lim = fminf(fmaxf(1.15f * lim, 0.5f), 1000.0f);
    int rc = vkd_write_scatter_png(png, ref, nref, x, n, lim, 512, err, errlen);
    free(ref);
    return rc;
}

// The sampler's steps on a progress bar (a few hundred teacher samples take minutes on a CPU).
static void sample_progress(void *user, int step, int steps) { vkd_progress_update(user, step, 1, NULL); }

int vkd_cli_sample(vkd_cli *cli, int argc, char **argv) {
    const char *model = NULL, *weights = NULL, *outpng = NULL, *indiv = NULL, *npz = NULL, *gmm_path = NULL;
    int n = 64, cls = -1, steps = 18;
    long long seed = 0;
    double guidance = 1.0, churn = 0.0, one_step = 0.0;
    float student_sigmas[8];
    int nstudent = 0;
    vkd_sampler_kind kind = VKD_SAMPLER_HEUN;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v && a[0] == '-') {
            fprintf(stderr, "vkdistill sample: %s needs a value\n", a);
            return 2;
        }
        if (strcmp(a, "--model") == 0) model = v, i++;
        else if (strcmp(a, "--weights") == 0) weights = v, i++;
        else if (strcmp(a, "-o") == 0 || strcmp(a, "--out") == 0) outpng = v, i++;
        else if (strcmp(a, "--individual") == 0) indiv = v, i++;
        else if (strcmp(a, "--npz") == 0) npz = v, i++;
        else if (strcmp(a, "--gmm") == 0) gmm_path = v, i++;
        else if (strcmp(a, "--n") == 0) { long long x; if (vkd_cli_int("sample", a, v, 1, 10000000, &x)) return 2; n = (int)x, i++; }
        else if (strcmp(a, "--seed") == 0) { if (vkd_cli_int("sample", a, v, 0, (1LL << 62), &seed)) return 2; i++; }
        else if (strcmp(a, "--class") == 0) { long long x; if (vkd_cli_int("sample", a, v, 0, 1 << 20, &x)) return 2; cls = (int)x, i++; }
        else if (strcmp(a, "--steps") == 0) { long long x; if (vkd_cli_int("sample", a, v, 1, 100000, &x)) return 2; steps = (int)x, i++; }
        else if (strcmp(a, "--guidance") == 0) { if (vkd_cli_num("sample", a, v, 0, 1000, &guidance)) return 2; i++; }
        else if (strcmp(a, "--churn") == 0) { if (vkd_cli_num("sample", a, v, 0, 1000, &churn)) return 2; i++; }
        else if (strcmp(a, "--one-step") == 0) { if (vkd_cli_num("sample", a, v, 1e-6, 1e6, &one_step)) return 2; i++; }
        else if (strcmp(a, "--student-sigmas") == 0) {
            // a few-step student: its decreasing sigmas, e.g. 80,10,1
            i++;
            for (const char *q = v; *q && nstudent < 8;) {
                char *end;
                double x = strtod(q, &end);
                if (end == q || !(x > 0) || (nstudent && x >= student_sigmas[nstudent - 1])) {
                    fprintf(stderr, "vkdistill sample: --student-sigmas '%s': expected positive decreasing numbers like 80,10,1\n", v);
                    return 2;
                }
                student_sigmas[nstudent++] = (float)x;
                q = *end == ',' ? end + 1 : end;
                if (*end && *end != ',') {
                    fprintf(stderr, "vkdistill sample: --student-sigmas '%s': expected numbers separated by commas\n", v);
                    return 2;
                }
            }
        }
        else if (strcmp(a, "--sampler") == 0) {
            i++;
            if (strcmp(v, "heun") == 0) kind = VKD_SAMPLER_HEUN;
            else if (strcmp(v, "euler") == 0) kind = VKD_SAMPLER_EULER;
            else {
                fprintf(stderr, "vkdistill sample: unknown sampler '%s' (heun, euler)\n", v);
                return 2;
            }
        } else {
            fprintf(stderr, "vkdistill sample: unknown argument '%s' (see vkdistill --help)\n", a);
            return 2;
        }
    }
    if (!model || !weights || (!outpng && !npz) || n < 1 || steps < 1) {
        fprintf(stderr, "vkdistill sample: needs --model CONFIG --weights FILE and -o GRID.png or --npz FILE (and positive --n, --steps)\n");
        return 2;
    }
    vkd_ctx *ctx = vkd_cli_open(cli);
    if (!ctx) return 1;
    char err[2600];
    int rc = 1;
    vkd_tensor *out = NULL, *labels = NULL;
    vkd_graph *g = NULL;
    float *h = NULL;
    vkd_model *m = vkd_model_create(ctx, model, 0, 0, err, sizeof err);
    if (!m || vkd_model_load(m, weights, err, sizeof err)) goto fail;
    int64_t s[3], xs[4] = {n};
    int nd = vkd_model_sample_shape(m, s), K = vkd_model_label_dim(m);
    for (int i = 0; i < nd; i++) xs[i + 1] = s[i];
    if (nd == 3 && !outpng && !npz) {
        snprintf(err, sizeof err, "sample: '%s' makes images: give -o GRID.png and/or --npz FILE", model);
        goto fail;
    }
    int png_ok = nd != 3 || s[0] == 1 || s[0] == 3;  // a PNG shows gray or RGB images, not latents
    if (outpng && !png_ok && !npz) {
        snprintf(err, sizeof err, "-o %s: '%s' makes %lld-channel samples (not gray or RGB images): write them with --npz FILE",
                 outpng, model, (long long)s[0]);
        goto fail;
    }
    if (cls >= K && K) {
        snprintf(err, sizeof err, "--class %d: the model has %d classes (0..%d)", cls, K, K - 1);
        goto fail;
    }
    out = vkd_tensor_new(ctx, "samples", nd + 1, xs, 0);
    if (K) {
        labels = vkd_tensor_new(ctx, "labels", 2, (int64_t[]){n, K}, 0);
        float *lh = calloc((size_t)n * K, sizeof *lh);
        for (int i = 0; i < n; i++) lh[(size_t)i * K + (cls >= 0 ? cls : i % K)] = 1.0f;
        vkd_tensor_upload(labels, lh);
        free(lh);
    }
    vkd_denoiser den = {.model = m};
    double t0 = vkd_now(), t_compiled = 0;
    if (one_step > 0 && !nstudent) student_sigmas[nstudent++] = (float)one_step;
    if (nstudent) {
        // A one- or few-step generator: x = D(sigma_0 z; sigma_0), then re-noised to each next
        // sigma and denoised again; z ~ N(0, I) from (seed, stream 0).
        g = vkd_graph_new(ctx, "student");
        vkd_tensor *zz = vkd_rand_normal(g, nd + 1, xs, (uint64_t)seed, 0, NULL);
        vkd_graph_set_grad_enabled(g, 0);
        vkd_tensor *x = vkd_generator_rollout(g, &den, zz, labels, student_sigmas, nstudent - 1, (uint64_t)seed, 100, NULL);
        vkd_copy(g, out, x);
        // Recording and compiling (shader compilation, on a CPU driver most of a small run)
        // are timed apart, so the rate once compiled can be compared with a sampler's.
        if (vkd_graph_compile(g)) {
            snprintf(err, sizeof err, "%s", vkd_graph_error(g));
            goto fail;
        }
        t_compiled = vkd_now();
        if (vkd_graph_run(g)) {
            snprintf(err, sizeof err, "%s", vkd_graph_error(g));
            goto fail;
        }
    } else {
        vkd_sampler_cfg sc = vkd_sampler_defaults();
        sc.kind = kind;
        sc.steps = steps;
        sc.guidance = guidance;
        sc.s_churn = churn;
        if (churn > 0) sc.s_min = 0.05, sc.s_max = 50, sc.s_noise = 1.003;  // EDM's CIFAR-10 stochastic settings
        vkd_progress pr;
        vkd_progress_begin(&pr, "sample", "step", 0, steps);
        sc.progress = sample_progress, sc.progress_user = &pr;
        int r1 = vkd_sample(&den, &sc, n, labels, (uint64_t)seed, out, err, sizeof err);
        vkd_progress_end(&pr, r1 ? 0 : steps, 1, NULL);
        if (r1) goto fail;
    }
    h = malloc(vkd_tensor_numel(out) * sizeof *h);
    vkd_tensor_download(out, h);
    // The rate is the generation alone (graph recording included; device start-up and the model
    // load are not): what one-step sampling saves against the teacher's steps.
    double secs = vkd_now() - t0;
    int nfe = nstudent ? nstudent : kind == VKD_SAMPLER_HEUN ? 2 * steps - 1 : steps;
    char how[200];
    int k = snprintf(how, sizeof how, "%s, %d network evaluation%s each, %.2f s, %.1f img/s",
                     nstudent ? (nstudent == 1 ? "one step" : "few-step student")
                              : (kind == VKD_SAMPLER_HEUN ? "Heun" : "Euler"),
                     nfe, nfe == 1 ? "" : "s", secs, n / (secs > 0 ? secs : 1e-9));
    if (t_compiled > 0 && k > 0 && (size_t)k < sizeof how) {
        double run = vkd_now() - t_compiled;
        snprintf(how + k, sizeof how - (size_t)k, "; %.2f s of it compiling, %.1f img/s once compiled",
                 t_compiled - t0, n / (run > 0 ? run : 1e-9));
    }
    if (nd == 1) {
        if (write_points(ctx, outpng, npz, gmm_path, h, n, (int)s[0], err, sizeof err)) goto fail;
        fprintf(stderr, "vkdistill: wrote %s%s%s (%d %lld-d points, seed %lld; %s)\n", npz ? npz : "",
                npz && outpng ? " and " : "", outpng ? outpng : "", n, (long long)s[0], seed, how);
        rc = 0;
        goto done;
    }
    if (nd != 3) {
        snprintf(err, sizeof err, "sample: '%s' models with a %d-d sample shape are not supported", vkd_model_arch(m), nd);
        goto fail;
    }
    if (npz) {
        // "samples" (N, C, H, W) float32 in [-1, 1], and the class of each sample when conditional.
        int64_t ls[1] = {n};
        int64_t *cl = malloc(sizeof(int64_t) * n);
        for (int i = 0; i < n; i++) cl[i] = K ? (cls >= 0 ? cls : i % K) : 0;
        vkd_npy_array arr[2] = {{"samples", VKD_NPY_F32, nd + 1, xs, h}, {"labels", VKD_NPY_I64, 1, ls, cl}};
        int r2 = vkd_npz_write(npz, arr, K ? 2 : 1, 0, err, sizeof err);
        free(cl);
        if (r2) goto fail;
    }
    if (outpng && !png_ok) {
        fprintf(stderr, "vkdistill: no PNG: %lld-channel samples are not gray or RGB images; they are in %s\n", (long long)s[0], npz);
        outpng = NULL;
    }
    if (outpng && vkd_write_png_grid(outpng, h, n, (int)s[0], (int)s[1], (int)s[2], (int)ceil(sqrt((double)n)), 2, err, sizeof err))
        goto fail;
    if (indiv && png_ok) {
        mkdir(indiv, 0755);
        size_t per = (size_t)(s[0] * s[1] * s[2]);
        for (int i = 0; i < n; i++) {
            char p[1024];
            snprintf(p, sizeof p, "%s/%06d.png", indiv, i);
            if (vkd_write_png(p, h + per * i, (int)s[0], (int)s[1], (int)s[2], err, sizeof err)) goto fail;
        }
    }
    fprintf(stderr, "vkdistill: wrote %s (%d samples, seed %lld; %s)\n", outpng ? outpng : npz, n, seed, how);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "vkdistill: %s\n", err);
done:
    free(h);
    vkd_graph_free(g);
    vkd_tensor_free(out);
    vkd_tensor_free(labels);
    vkd_model_free(m);
    return vkd_cli_close(ctx, rc);
}
