// Run folders, metrics and Ctrl-C handling shared by the training verbs.
#include "cli/run.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vkdistill/checkpoint.h"
#include "vkdistill/data.h"
#include "vkdistill/io.h"
#include "vkdistill/nn.h"

static int mkdirs(const char *path) {
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *s = tmp + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            if (mkdir(tmp, 0755) && errno != EEXIST) return -1;
            *s = '/';
        }
    return mkdir(tmp, 0755) && errno != EEXIST ? -1 : 0;
}

void vkd_run_path(const vkd_run *r, char *out, size_t n, const char *fmt, ...) {
    char rel[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rel, sizeof rel, fmt, ap);
    va_end(ap);
    snprintf(out, n, "%s/%s", r->dir, rel);
}

int64_t vkd_run_latest_checkpoint(const vkd_run *r, char *out, size_t n) {
    char dir[1024];
    vkd_run_path(r, dir, sizeof dir, "checkpoints");
    DIR *d = opendir(dir);
    if (!d) return 0;
    long long best = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        long long s;
        char tail[8];
        if (sscanf(e->d_name, "ckpt-%lld.safetensor%1s", &s, tail) == 2 && s > best) best = s;
    }
    closedir(d);
    if (best) snprintf(out, n, "%s/ckpt-%08lld.safetensors", dir, best);
    return best;
}

int vkd_run_open(vkd_run *r, const char *dir, int resume, const char *config_text, char *err, size_t errlen) {
    memset(r, 0, sizeof *r);
    snprintf(r->dir, sizeof r->dir, "%s", dir);
    char p[1024];
    if (!resume && vkd_run_latest_checkpoint(r, p, sizeof p) > 0) {
        snprintf(err, errlen, "%s: this run folder already has checkpoints; resume it with --resume auto or choose another --out",
                 dir);
        return -1;
    }
    vkd_run_path(r, p, sizeof p, "checkpoints");
    if (mkdirs(p)) {
        snprintf(err, errlen, "%s: cannot create the run folder (%s)", dir, strerror(errno));
        return -1;
    }
    vkd_run_path(r, p, sizeof p, "samples");
    mkdirs(p);
    vkd_run_path(r, p, sizeof p, "config.json");
    if (vkd_write_file_atomic(p, config_text, strlen(config_text), err, errlen)) return -1;
    vkd_run_path(r, p, sizeof p, "metrics.jsonl");
    r->metrics = fopen(p, "a");
    if (!r->metrics) {
        snprintf(err, errlen, "%s: cannot open for appending (%s)", p, strerror(errno));
        return -1;
    }
    return 0;
}

void vkd_run_close(vkd_run *r) {
    if (r->metrics) fclose(r->metrics);
    r->metrics = NULL;
}

void vkd_run_metrics(vkd_run *r, const char *fields) {
    if (!r->metrics) return;
    fprintf(r->metrics, "{%s}\n", fields);
    fflush(r->metrics);
}

static volatile sig_atomic_t g_interrupted;

static void on_sigint(int sig) {
    if (g_interrupted) {
        signal(sig, SIG_DFL);
        raise(sig);
    }
    g_interrupted = 1;
}

void vkd_run_catch_sigint(void) {
    g_interrupted = 0;
    signal(SIGINT, on_sigint);
    signal(SIGTERM, on_sigint);
}

int vkd_run_interrupted(void) { return g_interrupted != 0; }

void vkd_dirname(const char *path, char *out, size_t n) {
    snprintf(out, n, "%s", path);
    char *s = strrchr(out, '/');
    if (s) *s = 0;
    else snprintf(out, n, ".");
}

void vkd_resolve_path(const char *config_path, const char *p, char *out, size_t n) {
    if (p[0] == '/') {
        snprintf(out, n, "%s", p);
        return;
    }
    char dir[1024];
    vkd_dirname(config_path, dir, sizeof dir);
    snprintf(out, n, "%s/%s", dir, p);
    if (access(out, F_OK) != 0) snprintf(out, n, "%s", p);
}

int vkd_run_parse_args(vkd_run_args *a, const char *verb, int argc, char **argv) {
    memset(a, 0, sizeof *a);
    const char *out = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) out = argv[++i];
        else if (strcmp(argv[i], "--resume") == 0 && i + 1 < argc) a->resume = argv[++i];
        else if (strcmp(argv[i], "--steps") == 0 && i + 1 < argc) a->steps = atoll(argv[++i]);
        else if (argv[i][0] != '-' && !a->config) a->config = argv[i];
        else {
            fprintf(stderr, "vkdistill %s: unknown argument '%s' (usage: %s CONFIG [--out DIR] [--resume auto|CKPT] [--steps N])\n",
                    verb, argv[i], verb);
            return 2;
        }
    }
    if (!a->config) {
        fprintf(stderr, "vkdistill %s: needs a config file (see samples/)\n", verb);
        return 2;
    }
    if (a->steps < 0) {
        fprintf(stderr, "vkdistill %s: --steps must be positive\n", verb);
        return 2;
    }
    if (out) {
        snprintf(a->outdir, sizeof a->outdir, "%s", out);
    } else {
        const char *base = strrchr(a->config, '/') ? strrchr(a->config, '/') + 1 : a->config;
        snprintf(a->outdir, sizeof a->outdir, "runs/%.*s", (int)strcspn(base, "."), base);
    }
    return 0;
}

int vkd_run_resume(vkd_run *r, struct vkd_ckpt *ck, const char *resume, const char *const *match, int nmatch,
                   int64_t *start, int64_t *skipped, char *err, size_t errlen) {
    *start = *skipped = 0;
    if (!resume) return 0;
    char path[1024];
    if (strcmp(resume, "auto") == 0) {
        if (!vkd_run_latest_checkpoint(r, path, sizeof path)) return 0;
    } else {
        snprintf(path, sizeof path, "%s", resume);
    }
    if (vkd_ckpt_load(ck, path, match, nmatch, err, errlen)) return -1;
    const char *st = vkd_ckpt_meta(ck, "step"), *sk = vkd_ckpt_meta(ck, "skipped");
    *start = st ? atoll(st) : 0;
    *skipped = sk ? atoll(sk) : 0;
    fprintf(stderr, "vkdistill: resuming %s at step %lld\n", path, (long long)*start);
    return 0;
}

int vkd_run_checkpoint(vkd_run *r, struct vkd_ckpt *ck, int64_t step, int64_t skipped, char *err, size_t errlen) {
    char v[32], path[1024];
    snprintf(v, sizeof v, "%lld", (long long)step);
    vkd_ckpt_set_meta(ck, "step", v);
    snprintf(v, sizeof v, "%lld", (long long)skipped);
    vkd_ckpt_set_meta(ck, "skipped", v);
    vkd_run_path(r, path, sizeof path, "checkpoints/ckpt-%08lld.safetensors", (long long)step);
    return vkd_ckpt_save(ck, path, err, errlen);
}

void vkd_run_dataset_parse(vkd_cfg *d, const char *config_path, vkd_run_dataset_cfg *t) {
    memset(t, 0, sizeof *t);
    const char *src = vkd_cfg_str(d, "source", 1, NULL, NULL);
    if (src) vkd_resolve_path(config_path, src, t->source, sizeof t->source);
    static const char *const splits[] = {"train", "test", NULL};
    snprintf(t->split, sizeof t->split, "%s", vkd_cfg_str(d, "split", 0, "train", splits) ?: "train");
    t->resolution = vkd_cfg_int(d, "resolution", 0, 0, 0, 4096);
    t->channels = vkd_cfg_int(d, "channels", 0, 0, 0, 3);
    t->pad_to = vkd_cfg_int(d, "pad_to", 0, 0, 0, 4096);
    t->flip = vkd_cfg_bool(d, "flip", 0, 0);
    t->max_images = vkd_cfg_int(d, "max_images", 0, 0, 0, 2000000000);
}

vkd_dataset *vkd_run_dataset_open(const vkd_run_dataset_cfg *t, const vkd_model *m, const char *model_path, char *err,
                                  size_t errlen) {
    int64_t s[3];
    vkd_model_sample_shape(m, s);
    int K = vkd_model_label_dim(m);
    vkd_dataset_opts dopt = {.resolution = t->resolution, .channels = t->channels, .pad_to = t->pad_to,
                             .max_images = t->max_images};
    vkd_dataset *ds = vkd_dataset_open(t->source, t->split, &dopt, err, errlen);
    if (!ds) return NULL;
    int dc, dh, dw;
    vkd_dataset_shape(ds, &dc, &dh, &dw);
    if (dc != s[0] || dh != s[1] || dw != s[2]) {
        snprintf(err, errlen,
                 "%s: images are %dx%dx%d (CxHxW) but the model '%s' takes %lldx%lldx%lld; set dataset.channels / pad_to / resolution",
                 t->source, dc, dh, dw, model_path, (long long)s[0], (long long)s[1], (long long)s[2]);
    } else if (K && vkd_dataset_num_classes(ds) != K) {
        snprintf(err, errlen, "%s: %d classes but the model has label_dim %d", t->source, vkd_dataset_num_classes(ds), K);
    } else {
        return ds;
    }
    vkd_dataset_free(ds);
    return NULL;
}
