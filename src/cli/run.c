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

#include "vkdistill/io.h"

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
