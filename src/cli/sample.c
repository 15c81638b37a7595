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
#include "vkdistill/dist.h"
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

// What one batch of samples needs to know (the command line, parsed).
typedef struct {
    int nd, K, cls, nstudent;
    int64_t xs[4];  // one batch's sample shape: xs[0] is set per batch
    float student_sigmas[8];
    vkd_sampler_cfg sc;  // a teacher's sampler (nstudent == 0)
    uint64_t seed;
    vkd_progress *pr;  // sampler steps (teacher) or images (student) done
    int64_t pr_base;
    int64_t images;  // n, over all the batches
} sample_job;

// Sample i's class: --class when given, else i % K (0 for an unconditional model). The one rule
// for the batches' one-hot labels and the npz's label array.
static int class_of(int64_t i, int K, int cls) { return !K ? 0 : cls >= 0 ? cls : (int)(i % K); }

// The sampler's steps on a progress bar (a few hundred teacher samples take minutes on a CPU).
static void sample_progress(void *user, int step, int steps) {
    sample_job *j = user;
    (void)steps;
    vkd_progress_update(j->pr, j->pr_base + step, 1, NULL);
}

// Rows [row0, row0 + b) of the n samples into h (b per-sample blocks). The noise of sample i is
// rows i of the whole draw (vkd_rand_set_row_offset), and its class is i % K, so the images do
// not depend on how n is cut into batches; a batch bounds the device memory (a 10,000-image
// teacher run in one batch needs ~18 GB on a CPU device). *compile_s: a student's graph
// compilation time (timed apart from the rate).
static int sample_rows(vkd_ctx *ctx, vkd_denoiser *den, sample_job *j, int64_t row0, int64_t b, float *h,
                       double *compile_s, char *err, size_t errlen) {
    int rc = -1;
    j->xs[0] = b;
    vkd_tensor *out = vkd_tensor_new(ctx, "samples", j->nd + 1, j->xs, 0), *labels = NULL;
    vkd_graph *g = NULL;
    if (!out) {
        snprintf(err, errlen, "a batch of %lld samples: %s (try a smaller --batch)", (long long)b, vkd_ctx_error(ctx));
        return -1;
    }
    if (j->K) {
        labels = vkd_tensor_new(ctx, "labels", 2, (int64_t[]){b, j->K}, 0);
        float *lh = calloc((size_t)b * j->K, sizeof *lh);
        for (int64_t i = 0; i < b; i++) lh[(size_t)i * j->K + class_of(row0 + i, j->K, j->cls)] = 1.0f;
        vkd_tensor_upload(labels, lh);
        free(lh);
    }
    vkd_rand_set_row_offset(row0);
    if (j->nstudent) {
        // A one- or few-step generator: x = D(sigma_0 z; sigma_0), then re-noised to each next
        // sigma and denoised again; z ~ N(0, I) from (seed, stream 0).
        double t0 = vkd_now();
        g = vkd_graph_new(ctx, "student");
        vkd_graph_set_samples(g, j->images * j->nstudent);  // all the batches', so none depends on them
        vkd_graph_set_run_samples(g, b * j->nstudent);
        vkd_tensor *zz = vkd_rand_normal(g, j->nd + 1, j->xs, j->seed, 0, NULL);
        vkd_graph_set_grad_enabled(g, 0);
        vkd_tensor *x = vkd_generator_rollout(g, den, zz, labels, j->student_sigmas, j->nstudent - 1, j->seed, 100, NULL);
        vkd_copy(g, out, x);
        // Recording and compiling (shader compilation, on a CPU driver most of a small run)
        // are timed apart, so the rate once compiled can be compared with a sampler's.
        int bad = vkd_graph_compile(g);
        *compile_s += vkd_now() - t0;
        if (bad || vkd_graph_run(g)) {
            snprintf(err, errlen, "%s", vkd_graph_error(g));
            goto out;
        }
        vkd_progress_update(j->pr, j->pr_base + b, 1, NULL);
    } else {
        j->sc.progress = sample_progress, j->sc.progress_user = j;
        if (vkd_sample(den, &j->sc, b, labels, j->seed, out, err, errlen)) goto out;
    }
    vkd_tensor_download(out, h);
    rc = 0;
out:
    vkd_rand_set_row_offset(0);
    vkd_graph_free(g);
    vkd_tensor_free(out);
    vkd_tensor_free(labels);
    return rc;
}

int vkd_cli_sample(vkd_cli *cli, int argc, char **argv) {
    const char *model = NULL, *weights = NULL, *outpng = NULL, *indiv = NULL, *npz = NULL, *gmm_path = NULL;
    int n = 64, cls = -1, steps = 18, batch = 1000;
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
        else if (strcmp(a, "--batch") == 0) { long long x; if (vkd_cli_int("sample", a, v, 1, 10000000, &x)) return 2; batch = (int)x, i++; }
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
    sample_job job = {.nd = nd, .K = K, .cls = cls, .nstudent = nstudent, .seed = (uint64_t)seed, .images = n};
    memcpy(job.xs, xs, sizeof xs);
    memcpy(job.student_sigmas, student_sigmas, sizeof student_sigmas);
    if (one_step > 0 && !nstudent) job.student_sigmas[job.nstudent++] = (float)one_step;
    nstudent = job.nstudent;
    job.sc = vkd_sampler_defaults();
    job.sc.kind = kind;
    job.sc.steps = steps;
    job.sc.guidance = guidance;
    job.sc.s_churn = churn;
    job.sc.images = n;
    if (churn > 0) job.sc.s_min = 0.05, job.sc.s_max = 50, job.sc.s_noise = 1.003;  // EDM's CIFAR-10 stochastic settings
    vkd_denoiser den = {.model = m};
    int64_t per = 1;
    for (int i = 1; i <= nd; i++) per *= xs[i];
    h = malloc((size_t)n * per * sizeof *h);
    int nbatch = (n + batch - 1) / batch;
    vkd_progress pr;
    job.pr = &pr;
    int64_t total = nstudent ? n : (int64_t)steps * nbatch;  // images (student) or sampler steps (teacher)
    vkd_progress_begin(&pr, "sample", nstudent ? "img" : "step", 0, total);
    double t0 = vkd_now(), compile_s = 0;
    for (int k = 0; k < nbatch; k++) {
        int64_t row0 = (int64_t)k * batch, b = n - row0 < batch ? n - row0 : batch;
        job.pr_base = nstudent ? row0 : (int64_t)k * steps;
        if (sample_rows(ctx, &den, &job, row0, b, h + (size_t)row0 * per, &compile_s, err, sizeof err)) {
            vkd_progress_end(&pr, job.pr_base, 1, NULL);
            goto fail;
        }
    }
    vkd_progress_end(&pr, total, 1, NULL);
    // The rate is the generation alone (graph recording included; device start-up and the model
    // load are not): what one-step sampling saves against the teacher's steps.
    double secs = vkd_now() - t0;
    int nfe = nstudent ? nstudent : kind == VKD_SAMPLER_HEUN ? 2 * steps - 1 : steps;
    char how[200];
    int k = snprintf(how, sizeof how, "%s, %d network evaluation%s each, %.2f s, %.1f img/s",
                     nstudent ? (nstudent == 1 ? "one step" : "few-step student")
                              : (kind == VKD_SAMPLER_HEUN ? "Heun" : "Euler"),
                     nfe, nfe == 1 ? "" : "s", secs, n / (secs > 0 ? secs : 1e-9));
    if (nstudent && k > 0 && (size_t)k < sizeof how) {
        double run = secs - compile_s;
        snprintf(how + k, sizeof how - (size_t)k, "; %.2f s of it compiling, %.1f img/s once compiled",
                 compile_s, n / (run > 0 ? run : 1e-9));
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
        for (int i = 0; i < n; i++) cl[i] = class_of(i, K, cls);
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
        for (int i = 0; i < n; i++) {
            char p[1024];
            snprintf(p, sizeof p, "%s/%06d.png", indiv, i);
            if (vkd_write_png(p, h + (size_t)per * i, (int)s[0], (int)s[1], (int)s[2], err, sizeof err)) goto fail;
        }
    }
    fprintf(stderr, "vkdistill: wrote %s (%d samples, seed %lld; %s)\n", outpng ? outpng : npz, n, seed, how);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "vkdistill: %s\n", err);
done:
    free(h);
    vkd_model_free(m);
    return vkd_cli_close(ctx, rc);
}
