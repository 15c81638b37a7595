// vkdistill fid-stats / fid: feature statistics of an image set and the
// Frechet distance between two sets, in one of two feature spaces:
//   inception  the FID Inception-v3 pool3 (2048-d) from pytorch-fid's weights,
//              converted with tools/convert_inception.py: this is "FID";
//   fmnist     the 256-d penultimate layer of the classifier vkdistill ships
//              (models/fmnist_classifier.*): "FD_fmnist", a different number on
//              a different scale, always printed under that name.
// Sources: a dataset (Fashion-MNIST/MNIST IDX folder, CIFAR-10 folder, image
// folder; --split train|test) or an .npz of samples: "samples" (N, C, H, W)
// float in [-1, 1] (what vkdistill writes), or "images" (N, H, W, C) integer
// 0..255 stored as int32/int64 (numpy's uint8 is not read by the npz reader).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "train/progress.h"
#include "vkdistill/data.h"
#include "vkdistill/eval.h"
#include "vkdistill/inception.h"
#include "vkdistill/io.h"
#include "vkdistill/nn.h"

#define FMNIST_WEIGHTS "models/fmnist_classifier.safetensors"
#define INCEPTION_WEIGHTS "models/pt_inception-2015-12-05.safetensors"
#define PR_MAX 10000  // precision/recall is O(n^2 dim): at most this many rows of each set

typedef struct {
    int inception;  // else fmnist
    const char *weights;
    vkd_model *clf;
    vkd_inception *inc;
    int c, res, dim;  // what the network takes (res 0: any size) and gives
    char found[1100];  // the shipped weights' path when found beside the executable
} feat_net;

typedef struct {
    const char *path;
    vkd_dataset *ds;  // a dataset, or
    float *x;         // npz images (n, c, h, w) in [-1, 1]
    int64_t n;
    int c, h, w;
} img_source;

static int has_suffix(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

static int file_exists(const char *p) {
    FILE *f = fopen(p, "rb");
    if (f) fclose(f);
    return f != NULL;
}

static const char *metric_name(const feat_net *f) { return f->inception ? "FID" : "FD_fmnist"; }

// A file vkdistill ships (rel = "models/..."), found from anywhere: relative to
// the working directory (the source tree), else beside the executable: its
// build folder inside the source tree (<exe dir>/../models), an install prefix
// (<exe dir>/../share/vkdistill/models) or <exe dir>/models. Returns rel itself
// when none exists, so the error names the path that was asked for.
static const char *find_shipped(const char *rel, char *buf, size_t n) {
    if (file_exists(rel)) return rel;
    char exe[1024];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k <= 0) return rel;
    exe[k] = 0;
    char *slash = strrchr(exe, '/');
    if (!slash) return rel;
    *slash = 0;
    static const char *const where[] = {"%s/../%s", "%s/../share/vkdistill/%s", "%s/%s"};
    for (size_t i = 0; i < sizeof where / sizeof *where; i++) {
        snprintf(buf, n, where[i], exe, rel);
        if (file_exists(buf)) return buf;
    }
    return rel;
}

// Checked before the device is opened, so a missing file is the only line printed.
static int feat_check(feat_net *f, char *err, size_t errlen) {
    if (f->inception) {
        if (!f->weights) f->weights = find_shipped(INCEPTION_WEIGHTS, f->found, sizeof f->found);
        if (!file_exists(f->weights)) {
            snprintf(err, errlen,
                     "%s: no FID Inception weights; convert pytorch-fid's pt_inception-2015-12-05-6726825d.pth with "
                     "'python3 tools/convert_inception.py pt_inception-2015-12-05-6726825d.pth %s' "
                     "(or pass --feature-weights FILE; --features fmnist needs no download)",
                     f->weights, f->weights);
            return -1;
        }
        f->dim = VKD_INCEPTION_DIM;
        return 0;
    }
    if (!f->weights) f->weights = find_shipped(FMNIST_WEIGHTS, f->found, sizeof f->found);
    if (!file_exists(f->weights)) {
        snprintf(err, errlen,
                 "%s: the Fashion-MNIST feature classifier is missing (looked in the working directory and beside the "
                 "executable; pass --feature-weights FILE, or make it with 'vkdistill train-classifier models/fmnist_classifier.json')",
                 f->weights);
        return -1;
    }
    // The feature dimension, from the config in the weights' metadata (vkd_model_save writes it),
    // so that a stats file of the wrong kind is refused before the device is opened.
    vkd_st *st = vkd_st_open(f->weights, err, errlen);
    if (!st) return -1;
    const char *text = vkd_st_metadata(st, "config");
    vkd_cfg *c = text ? vkd_cfg_parse(text, f->weights, err, errlen) : NULL;
    if (!text) snprintf(err, errlen, "%s: no 'config' metadata (not written by vkdistill train-classifier)", f->weights);
    if (c) {
        const char *arch = vkd_cfg_str(c, "arch", 1, NULL, NULL);
        f->dim = vkd_cfg_int(c, "features", 0, 256, 1, 1 << 16);
        if (vkd_cfg_error(c)) {
            snprintf(err, errlen, "%s", vkd_cfg_error(c));
            f->dim = 0;
        } else if (!arch || strcmp(arch, "classifier")) {
            snprintf(err, errlen, "%s: holds a '%s' model, not a classifier", f->weights, arch ? arch : "?");
            f->dim = 0;
        }
        vkd_cfg_free(c);
    }
    vkd_st_close(st);
    return f->dim > 0 ? 0 : -1;
}

static int feat_open(feat_net *f, vkd_ctx *ctx, char *err, size_t errlen) {
    if (f->inception) {
        f->inc = vkd_inception_create(ctx, -1);
        if (!f->inc) {
            snprintf(err, errlen, "%s", vkd_ctx_error(ctx));
            return -1;
        }
        if (vkd_inception_load(f->inc, f->weights, err, errlen)) return -1;
        f->c = 3, f->res = 0, f->dim = VKD_INCEPTION_DIM;
        return 0;
    }
    // The architecture travels in the weights' metadata (vkd_model_save writes "config").
    vkd_st *st = vkd_st_open(f->weights, err, errlen);
    if (!st) return -1;
    const char *cfg = vkd_st_metadata(st, "config");
    if (!cfg) {
        snprintf(err, errlen, "%s: no 'config' metadata (not written by vkdistill train-classifier)", f->weights);
        vkd_st_close(st);
        return -1;
    }
    f->clf = vkd_model_create_json(ctx, cfg, f->weights, 0, 0, err, errlen);
    vkd_st_close(st);
    if (!f->clf) return -1;
    int64_t s[3];
    vkd_model_sample_shape(f->clf, s);
    if (vkd_classifier_dims(f->clf, NULL, &f->dim)) {
        snprintf(err, errlen, "%s: holds a '%s' model, not a classifier", f->weights, vkd_model_arch(f->clf));
        return -1;
    }
    f->c = (int)s[0], f->res = (int)s[1];
    return vkd_model_load(f->clf, f->weights, err, errlen);
}

static void feat_close(feat_net *f) {
    vkd_model_free(f->clf);
    vkd_inception_free(f->inc);
}

static int src_open(img_source *s, const char *path, const char *split, const feat_net *f, int64_t max_n,
                    int resolution, char *err, size_t errlen) {
    memset(s, 0, sizeof *s);
    s->path = path;
    if (!has_suffix(path, ".npz")) {
        // Datasets are fitted by the loader (channels converted, small images padded, large resized).
        // --resolution first resizes them to R x R, to compare with samples made at R (then padded alike).
        if (resolution > 0) {
            vkd_dataset_opts o = {.channels = f->c, .resolution = resolution, .max_images = max_n};
            s->ds = vkd_dataset_open(path, split, &o, err, errlen);
        } else {
            s->ds = vkd_cli_open_images(path, split, f->c, f->res, max_n, err, errlen);
        }
        if (!s->ds) return -1;
        s->n = vkd_dataset_count(s->ds);
        vkd_dataset_shape(s->ds, &s->c, &s->h, &s->w);
        return 0;
    }
    vkd_npz *z = vkd_npz_open(path, err, errlen);
    if (!z) return -1;
    int nd;
    int64_t sh[VKD_NPY_MAX_DIMS];
    int rc = 0;
    if (vkd_npz_has(z, "samples")) {
        s->x = vkd_npz_read(z, "samples", VKD_NPY_F32, &nd, sh, err, errlen);
        if (s->x && (nd != 4 || (sh[1] != 1 && sh[1] != 3) || sh[0] < 1)) {
            snprintf(err, errlen, "%s: 'samples' must be (N, C, H, W) with C 1 or 3, values in [-1, 1]", path);
            rc = -1;
        } else if (s->x) {
            s->n = sh[0], s->c = (int)sh[1], s->h = (int)sh[2], s->w = (int)sh[3];
        }
    } else if (vkd_npz_has(z, "images")) {
        float *u = vkd_npz_read(z, "images", VKD_NPY_F32, &nd, sh, err, errlen);
        if (u && (nd != 4 || (sh[3] != 1 && sh[3] != 3) || sh[0] < 1)) {
            snprintf(err, errlen, "%s: 'images' must be (N, H, W, C) with C 1 or 3, values 0..255", path);
            rc = -1;
        } else if (u) {
            s->n = sh[0], s->h = (int)sh[1], s->w = (int)sh[2], s->c = (int)sh[3];
            size_t plane = (size_t)s->h * s->w;
            s->x = malloc((size_t)s->n * s->c * plane * sizeof *s->x);
            for (int64_t i = 0; i < s->n; i++)  // HWC 0..255 -> CHW [-1, 1], as the dataset loader maps u8
                for (size_t p = 0; p < plane; p++)
                    for (int ch = 0; ch < s->c; ch++)
                        s->x[(i * s->c + ch) * plane + p] = u[(i * plane + p) * s->c + ch] / 127.5f - 1.0f;
        }
        free(u);
    } else {
        snprintf(err, errlen, "%s: no 'samples' (N, C, H, W) in [-1, 1] or 'images' (N, H, W, C) 0..255 array", path);
        rc = -1;
    }
    vkd_npz_close(z);
    if (rc || !s->x) {
        free(s->x);
        s->x = NULL;
        return -1;
    }
    for (int64_t i = 0; i < s->n * s->c * s->h * s->w; i++)
        if (!isfinite(s->x[i])) {
            snprintf(err, errlen, "%s: sample %lld holds a non-finite value", path, (long long)(i / ((int64_t)s->c * s->h * s->w)));
            free(s->x);
            s->x = NULL;
            return -1;
        }
    if (max_n > 0 && s->n > max_n) s->n = max_n;
    if (f->res && (s->h > f->res || s->w > f->res)) {
        snprintf(err, errlen, "%s: samples are %dx%d but the %s classifier takes %dx%d (smaller images are padded)", path,
                 s->h, s->w, metric_name(f), f->res, f->res);
        return -1;
    }
    return 0;
}

static void src_close(img_source *s) {
    vkd_dataset_free(s->ds);
    free(s->x);
}

// Image i fitted to the network's input (c_out, H, W) into dst: channels
// converted (gray -> RGB replicated, RGB -> gray by ITU-R 601 luma, as the
// dataset loader does), npz images smaller than the classifier's input padded
// centred with -1 (black), like --pad_to.
static void src_image(const img_source *s, int64_t i, const feat_net *f, float *dst) {
    int H = f->res ? f->res : s->h, W = f->res ? f->res : s->w, co = f->inception ? s->c : f->c;
    const float *x = s->ds ? vkd_dataset_image(s->ds, i) : s->x + i * (int64_t)s->c * s->h * s->w;
    int oy = (H - s->h) / 2, ox = (W - s->w) / 2;
    size_t plane = (size_t)H * W;
    if (oy || ox || H != s->h)
        for (size_t k = 0; k < co * plane; k++) dst[k] = -1.0f;
    for (int ch = 0; ch < co; ch++)
        for (int y = 0; y < s->h; y++)
            for (int xx = 0; xx < s->w; xx++) {
                size_t si = (size_t)y * s->w + xx, sp = (size_t)s->h * s->w;
                float v;
                if (s->c == co) v = x[ch * sp + si];
                else if (s->c == 1) v = x[si];
                else v = 0.299f * x[si] + 0.587f * x[sp + si] + 0.114f * x[2 * sp + si];
                dst[ch * plane + (size_t)(y + oy) * W + xx + ox] = v;
            }
}

// Features of the first n images of s, folded into st and (if keep) returned as (n, dim).
static float *extract(const feat_net *f, const img_source *s, int64_t n, vkd_stats *st, int keep, const char *what,
                      char *err, size_t errlen) {
    int co = f->inception ? s->c : f->c, H = f->res ? f->res : s->h, W = f->res ? f->res : s->w;
    size_t img = (size_t)co * H * W;
    // Chunks small enough for a lively progress bar and bounded host memory.
    int64_t chunk = f->inception ? 64 : 2000;
    float *buf = malloc(chunk * img * sizeof *buf), *fb = malloc(chunk * f->dim * sizeof *fb);
    float *all = keep ? malloc((size_t)n * f->dim * sizeof *all) : NULL;
    if (!buf || !fb || (keep && !all)) {
        snprintf(err, errlen, "%s: out of host memory for %lld images", s->path, (long long)n);
        free(buf), free(fb), free(all);
        return NULL;
    }
    vkd_progress pr;
    vkd_progress_begin(&pr, what, "img", 0, n);
    int rc = 0;
    for (int64_t b = 0; b < n && !rc; b += chunk) {
        int64_t k = n - b < chunk ? n - b : chunk;
        for (int64_t i = 0; i < k; i++) src_image(s, b + i, f, buf + i * img);
        if (f->inception) rc = vkd_inception_features(f->inc, buf, k, co, H, W, 0, fb, NULL, err, errlen);
        else rc = vkd_classifier_features(f->clf, buf, k, 500, fb, NULL, err, errlen);
        if (!rc && vkd_stats_add(st, fb, k)) {
            snprintf(err, errlen, "%s: non-finite features (images %lld..%lld)", s->path, (long long)b, (long long)(b + k - 1));
            rc = -1;
        }
        if (!rc && all) memcpy(all + b * f->dim, fb, (size_t)k * f->dim * sizeof *fb);
        if (b + k < n) vkd_progress_update(&pr, b + k, 1, NULL);
    }
    vkd_progress_end(&pr, rc ? 0 : n, 1, NULL);
    free(buf), free(fb);
    if (rc) {
        free(all);
        return NULL;
    }
    return keep ? all : (float *)1;  // non-NULL: success
}

static const char FID_STATS_USAGE[] =
    "usage: vkdistill fid-stats SOURCE -o STATS.npz [--features inception|fmnist] [--feature-weights FILE] [--n N]\n"
    "                           [--split train|test] [--resolution R]\n"
    "  SOURCE: a dataset folder (IDX, CIFAR-10, images) or a samples .npz; --split picks the dataset's split\n";
static const char FID_USAGE[] =
    "usage: vkdistill fid A B [--features inception|fmnist] [--feature-weights FILE] [--n N] [--split train|test]\n"
    "                     [--ref-split train|test] [--resolution R] [--kid] [--pr]\n"
    "  A, B: each a statistics .npz (mu, sigma; from fid-stats, pytorch-fid, clean-fid or EDM), a samples .npz,\n"
    "        an image folder or a dataset; two statistics files need no device (as 'pytorch-fid A.npz B.npz')\n"
    "  also: fid --samples A (--ref B | --ref-samples B); --split is A's dataset split, --ref-split B's;\n"
    "  --n takes the first N images of A; --kid and --pr need images (not statistics) on both sides\n";

// Common flags; returns 0, or 2 after printing a usage line.
typedef struct {
    const char *features, *weights, *split, *ref_split;
    long long n;
    int resolution;  // datasets resized to this first (0: as the feature network wants)
} common_opts;

static int common_flag(const char *verb, common_opts *o, const char *a, const char *v, int *i) {
    if (strcmp(a, "--features") == 0) o->features = v;
    else if (strcmp(a, "--feature-weights") == 0) o->weights = v;
    else if (strcmp(a, "--n") == 0) {
        char *end;
        o->n = strtoll(v, &end, 10);
        if (*end || o->n < 2) {
            fprintf(stderr, "vkdistill %s: --n must be an integer >= 2, got '%s'\n", verb, v);
            return 2;
        }
    } else if (strcmp(a, "--resolution") == 0) {
        o->resolution = atoi(v);
        if (o->resolution < 1) {
            fprintf(stderr, "vkdistill %s: --resolution must be a positive integer, got '%s'\n", verb, v);
            return 2;
        }
    } else if (strcmp(a, "--split") == 0) o->split = v;
    else if (strcmp(a, "--ref-split") == 0) o->ref_split = v;
    else return 1;
    (*i)++;
    return 0;
}

static int check_common(const char *verb, common_opts *o, feat_net *f) {
    if (strcmp(o->features, "inception") && strcmp(o->features, "fmnist")) {
        fprintf(stderr, "vkdistill %s: --features must be 'inception' or 'fmnist', got '%s'\n", verb, o->features);
        return 2;
    }
    if ((o->split && strcmp(o->split, "train") && strcmp(o->split, "test")) ||
        (o->ref_split && strcmp(o->ref_split, "train") && strcmp(o->ref_split, "test"))) {
        fprintf(stderr, "vkdistill %s: --split / --ref-split must be 'train' or 'test'\n", verb);
        return 2;
    }
    memset(f, 0, sizeof *f);
    f->inception = strcmp(o->features, "inception") == 0;
    f->weights = o->weights;
    return 0;
}

static void warn_small(const feat_net *f, int64_t n, const char *what) {
    // With N <= dim the covariance has rank N-1 < dim: the distance is still
    // defined (vkd_frechet_distance needs no matrix square root of a singular
    // product) but biased upward and not comparable to full-sample numbers.
    if (n < (int64_t)f->dim + 1)
        fprintf(stderr,
                "vkdistill: warning: %s has %lld images, fewer than the feature dimension + 1 (%d): its covariance is "
                "rank-deficient and %s is biased upward\n",
                what, (long long)n, f->dim + 1, metric_name(f));
}

int vkd_cli_fid_stats(vkd_cli *cli, int argc, char **argv) {
    const char *src = NULL, *out = NULL;
    common_opts o = {.features = "inception", .split = "train"};
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(FID_STATS_USAGE, stdout);
            return 0;
        }
        if (a[0] == '-' && !v) {
            fprintf(stderr, "vkdistill fid-stats: %s needs a value\n", a);
            return 2;
        }
        int r = a[0] == '-' ? common_flag("fid-stats", &o, a, v, &i) : 1;
        if (r == 2) return 2;
        if (r == 0) continue;
        if (strcmp(a, "-o") == 0 || strcmp(a, "--out") == 0) out = v, i++;
        else if (a[0] != '-' && !src) src = a;
        else {
            fprintf(stderr, "vkdistill fid-stats: unknown argument '%s' (see 'vkdistill fid-stats --help')\n", a);
            return 2;
        }
    }
    if (!src || !out) {
        fprintf(stderr, "vkdistill fid-stats: needs SOURCE (dataset folder or samples .npz) and -o STATS.npz\n");
        return 2;
    }
    feat_net f;
    if (check_common("fid-stats", &o, &f)) return 2;
    char err[2600];
    if (feat_check(&f, err, sizeof err)) {
        fprintf(stderr, "vkdistill: %s\n", err);
        return 1;
    }
    vkd_ctx *ctx = vkd_cli_open(cli);
    if (!ctx) return 1;
    img_source s = {0};
    vkd_stats *st = NULL;
    double *mu = NULL, *sigma = NULL;
    int rc = 1;
    if (feat_open(&f, ctx, err, sizeof err) || src_open(&s, src, o.split, &f, o.n, o.resolution, err, sizeof err)) goto fail;
    if (s.n < 2) {
        snprintf(err, sizeof err, "%s: %lld image(s); statistics need at least 2", src, (long long)s.n);
        goto fail;
    }
    warn_small(&f, s.n, src);
    st = vkd_stats_new(f.dim);
    mu = malloc(f.dim * sizeof *mu);
    sigma = malloc((size_t)f.dim * f.dim * sizeof *sigma);
    if (!st || !mu || !sigma) {
        snprintf(err, sizeof err, "out of host memory for %d-d statistics", f.dim);
        goto fail;
    }
    if (!extract(&f, &s, s.n, st, 0, f.inception ? "inception" : "fmnist", err, sizeof err)) goto fail;
    if (vkd_stats_finish(st, mu, sigma) ||
        vkd_npz_write_stats(out, mu, sigma, f.dim, 1, err, sizeof err))
        goto fail;
    fprintf(stderr, "vkdistill: wrote %s: %s features (%d-d) of %lld images of %s\n", out, o.features, f.dim,
            (long long)s.n, src);
    printf("{\"stats\":\"%s\",\"features\":\"%s\",\"dim\":%d,\"n\":%lld,\"source\":\"%s\"}\n", out, o.features, f.dim,
           (long long)s.n, src);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "vkdistill: %s\n", err);
    rc = 1;
done:
    free(mu), free(sigma);
    vkd_stats_free(st);
    src_close(&s);
    feat_close(&f);
    return vkd_cli_close(ctx, rc);
}

// An .npz holding "mu" and "sigma" is a statistics file; any other path is
// a source of images. 1 for statistics, 0 for images, -1 (err set) when an
// .npz cannot be read.
static int is_stats_file(const char *path, char *err, size_t errlen) {
    if (!has_suffix(path, ".npz")) return 0;
    vkd_npz *z = vkd_npz_open(path, err, errlen);
    if (!z) return -1;
    int st = vkd_npz_has(z, "mu") && vkd_npz_has(z, "sigma");
    vkd_npz_close(z);
    return st;
}

int vkd_cli_fid(vkd_cli *cli, int argc, char **argv) {
    const char *samples = NULL, *ref = NULL, *ref_samples = NULL, *pos[2] = {NULL, NULL};
    int kid = 0, pr = 0, npos = 0, features_given = 0;
    common_opts o = {.features = "inception", .split = "train", .ref_split = "train"};
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(FID_USAGE, stdout);
            return 0;
        }
        if (strcmp(a, "--kid") == 0) {
            kid = 1;
            continue;
        }
        if (strcmp(a, "--pr") == 0) {
            pr = 1;
            continue;
        }
        if (a[0] == '-' && !v) {
            fprintf(stderr, "vkdistill fid: %s needs a value\n", a);
            return 2;
        }
        features_given |= strcmp(a, "--features") == 0;
        int r = a[0] == '-' ? common_flag("fid", &o, a, v, &i) : 1;
        if (r == 2) return 2;
        if (r == 0) continue;
        if (strcmp(a, "--samples") == 0) samples = v, i++;
        else if (strcmp(a, "--ref") == 0) ref = v, i++;
        else if (strcmp(a, "--ref-samples") == 0) ref_samples = v, i++;
        else if (a[0] != '-' && npos < 2) pos[npos++] = a;
        else if (a[0] != '-') {
            fprintf(stderr, "vkdistill fid: '%s': more than two sets to compare (see 'vkdistill fid --help')\n", a);
            return 2;
        } else {
            fprintf(stderr, "vkdistill fid: unknown argument '%s' (see 'vkdistill fid --help')\n", a);
            return 2;
        }
    }
    // Positional A B fill what the flags left open: A is the samples side, B the reference.
    for (int k = 0; k < npos; k++) {
        if (!samples) samples = pos[k];
        else if (!ref && !ref_samples) ref = pos[k];
        else {
            fprintf(stderr, "vkdistill fid: '%s': more than two sets to compare (see 'vkdistill fid --help')\n", pos[k]);
            return 2;
        }
    }
    if (!samples || (!ref && !ref_samples)) {
        fprintf(stderr, "vkdistill fid: needs two sets, A and B (statistics .npz, samples .npz, image folder or "
                        "dataset; see 'vkdistill fid --help')\n");
        return 2;
    }
    char err[2600];
    // Which sides are statistics files (mu, sigma) and which need features.
    int a_stats = is_stats_file(samples, err, sizeof err);
    int b_stats = ref_samples ? 0 : is_stats_file(ref, err, sizeof err);
    if (a_stats < 0 || b_stats < 0) {
        fprintf(stderr, "vkdistill: %s\n", err);
        return 1;
    }
    if (ref && !b_stats) ref_samples = ref, ref = NULL;  // --ref given a source of images
    if ((kid || pr) && (a_stats || b_stats)) {
        fprintf(stderr, "vkdistill fid: --kid and --pr need the features of both sets: %s holds only mu and sigma "
                        "(pass its images instead)\n",
                a_stats ? samples : ref);
        return 2;
    }
    feat_net f;
    if (check_common("fid", &o, &f)) return 2;
    int rc = 1, dim_ref = 0, dim_a = 0;
    double *mu_r = NULL, *sg_r = NULL, *mu = NULL, *sg = NULL;
    // Statistics files are read before any network work.
    if (b_stats && vkd_npz_read_stats(ref, &mu_r, &sg_r, &dim_ref, err, sizeof err)) {
        fprintf(stderr, "vkdistill: %s\n", err);
        return 1;
    }
    if (a_stats && vkd_npz_read_stats(samples, &mu, &sg, &dim_a, err, sizeof err)) {
        fprintf(stderr, "vkdistill: %s\n", err);
        free(mu_r), free(sg_r);
        return 1;
    }
    if (a_stats && b_stats) {
        // Two statistics files: no device and no feature network, as pytorch-fid does it.
        const char *metric = features_given ? metric_name(&f) : dim_a == VKD_INCEPTION_DIM ? "FID" : "FD";
        double fd = NAN;
        if (dim_a != dim_ref)
            snprintf(err, sizeof err, "%s: statistics of %d-d features, but %s has %d-d (made with different feature networks?)",
                     ref, dim_ref, samples, dim_a);
        else
            fd = vkd_frechet_distance(mu, sg, mu_r, sg_r, dim_a, err, sizeof err);
        if (!isnan(fd)) {
            printf("%s %.4f  (statistics %s vs %s; %d-d features)\n", metric, fd, samples, ref, dim_a);
            printf("{\"metric\":\"%s\",\"value\":%.6f,\"n\":null,\"dim\":%d,\"samples\":\"%s\",\"ref\":\"%s\"}\n",
                   metric, fd, dim_a, samples, ref);
            rc = 0;
        } else {
            fprintf(stderr, "vkdistill: %s\n", err);
        }
        free(mu), free(sg), free(mu_r), free(sg_r);
        return rc;
    }
    if (feat_check(&f, err, sizeof err)) {
        fprintf(stderr, "vkdistill: %s\n", err);
        free(mu), free(sg), free(mu_r), free(sg_r);
        return 1;
    }
    const char *stats_path = a_stats ? samples : ref;
    int stats_dim = a_stats ? dim_a : dim_ref;
    if ((a_stats || b_stats) && stats_dim != f.dim) {
        fprintf(stderr, "vkdistill: %s: statistics of %d-d features, but --features %s gives %d-d (%s)\n", stats_path,
                stats_dim, o.features, f.dim,
                stats_dim == VKD_INCEPTION_DIM ? "made with --features inception?" : "made with another feature network?");
        free(mu), free(sg), free(mu_r), free(sg_r);
        return 1;
    }
    const char *name_a = samples, *name_b = ref ? ref : ref_samples;  // as given, for the output
    if (a_stats) {
        // Statistics on the A side, images on B: swap so that images are always "samples"
        // (the distance is symmetric); the output still names A and B as given.
        const char *t = samples;
        samples = ref_samples, ref_samples = NULL, ref = t;
        double *tm = mu_r, *ts = sg_r;
        mu_r = mu, sg_r = sg, mu = tm, sg = ts;
        o.split = o.ref_split;
    }
    vkd_ctx *ctx = vkd_cli_open(cli);
    if (!ctx) {
        free(mu_r), free(sg_r);
        return 1;
    }
    img_source s = {0}, r = {0};
    vkd_stats *st = NULL, *st_r = NULL;
    float *fx = NULL, *fy = NULL;
    if (feat_open(&f, ctx, err, sizeof err)) goto fail;
    if (src_open(&s, samples, o.split, &f, o.n, o.resolution, err, sizeof err)) goto fail;
    if (ref_samples && src_open(&r, ref_samples, o.ref_split, &f, 0, o.resolution, err, sizeof err)) goto fail;
    if (s.n < 2 || (ref_samples && r.n < 2)) {
        snprintf(err, sizeof err, "%s: fewer than 2 images", s.n < 2 ? samples : ref_samples);
        goto fail;
    }
    warn_small(&f, s.n, samples);
    st = vkd_stats_new(f.dim);
    free(mu), free(sg);
    mu = malloc(f.dim * sizeof *mu);
    sg = malloc((size_t)f.dim * f.dim * sizeof *sg);
    if (!(fx = extract(&f, &s, s.n, st, kid || pr, "samples", err, sizeof err))) goto fail;
    if (fx == (float *)1) fx = NULL;
    if (vkd_stats_finish(st, mu, sg)) {
        snprintf(err, sizeof err, "%s: statistics failed", samples);
        goto fail;
    }
    if (ref_samples) {
        st_r = vkd_stats_new(f.dim);
        if (!(fy = extract(&f, &r, r.n, st_r, kid || pr, "reference", err, sizeof err))) goto fail;
        if (fy == (float *)1) fy = NULL;
        if (!ref) {  // the reference's own statistics
            warn_small(&f, r.n, ref_samples);
            mu_r = malloc(f.dim * sizeof *mu_r);
            sg_r = malloc((size_t)f.dim * f.dim * sizeof *sg_r);
            if (vkd_stats_finish(st_r, mu_r, sg_r)) {
                snprintf(err, sizeof err, "%s: statistics failed", ref_samples);
                goto fail;
            }
        }
    }
    double fd = vkd_frechet_distance(mu, sg, mu_r, sg_r, f.dim, err, sizeof err);
    if (isnan(fd)) goto fail;
    char json[1024], human[1024];
    int jl = snprintf(json, sizeof json, "{\"metric\":\"%s\",\"value\":%.6f,\"n\":%lld,\"features\":\"%s\",\"dim\":%d,"
                                         "\"samples\":\"%s\",\"ref\":\"%s\"",
                      metric_name(&f), fd, (long long)s.n, o.features, f.dim, name_a, name_b);
    int hl = snprintf(human, sizeof human, "%s %.4f  (%lld samples of %s vs %s; %d-d %s features)", metric_name(&f), fd,
                      (long long)s.n, a_stats ? name_b : name_a, a_stats ? name_a : name_b, f.dim, o.features);
    if (kid) {
        double km, ks;
        if (vkd_kid(fx, s.n, fy, r.n, f.dim, 100, 1000, 0, &km, &ks, err, sizeof err)) goto fail;
        int m = (int)(s.n < r.n ? s.n : r.n);
        if (m > 1000) m = 1000;
        jl += snprintf(json + jl, sizeof json - jl, ",\"kid\":%.6g,\"kid_std\":%.6g,\"kid_subset\":%d", km, ks, m);
        hl += snprintf(human + hl, sizeof human - hl, "  KID %.5f +- %.5f (100 subsets of %d)", km, ks, m);
    }
    if (pr) {
        // Exact k-NN is quadratic: the first PR_MAX rows of each set.
        int64_t nf = s.n < PR_MAX ? s.n : PR_MAX, nr = r.n < PR_MAX ? r.n : PR_MAX;
        vkd_prdc q;
        fprintf(stderr, "vkdistill: precision/recall (k=3) on %lld samples x %lld reference images\n", (long long)nf,
                (long long)nr);
        if (vkd_prdc_compute(fy, nr, fx, nf, f.dim, 3, &q, err, sizeof err)) goto fail;
        jl += snprintf(json + jl, sizeof json - jl,
                       ",\"precision\":%.6f,\"recall\":%.6f,\"density\":%.6f,\"coverage\":%.6f,\"pr_n\":%lld,\"pr_ref_n\":%lld",
                       q.precision, q.recall, q.density, q.coverage, (long long)nf, (long long)nr);
        hl += snprintf(human + hl, sizeof human - hl, "  precision %.4f recall %.4f density %.4f coverage %.4f",
                       q.precision, q.recall, q.density, q.coverage);
    }
    printf("%s\n%s}\n", human, json);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "vkdistill: %s\n", err);
    rc = 1;
done:
    free(mu_r), free(sg_r), free(mu), free(sg), free(fx), free(fy);
    vkd_stats_free(st);
    vkd_stats_free(st_r);
    src_close(&s);
    src_close(&r);
    feat_close(&f);
    return vkd_cli_close(ctx, rc);
}
