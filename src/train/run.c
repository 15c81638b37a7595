// Run folders: paths, the latest checkpoint, config.json, metrics.jsonl.
#include "train/run.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vkdistill/checkpoint.h"
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

void vkd_run_init(vkd_run *r, const char *dir) {
    memset(r, 0, sizeof *r);
    snprintf(r->dir, sizeof r->dir, "%s", dir);
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
        char canon[64];
        // Parse, then require the name to be exactly what vkd_run_checkpoint writes.
        if (sscanf(e->d_name, "ckpt-%lld", &s) != 1 || s <= 0) continue;
        snprintf(canon, sizeof canon, "ckpt-%08lld.safetensors", s);
        if (strcmp(canon, e->d_name) == 0 && s > best) best = s;
    }
    closedir(d);
    if (best) snprintf(out, n, "%s/ckpt-%08lld.safetensors", dir, best);
    return best;
}

// Keeps the lines of metrics.jsonl up to and including `step` (a resumed run
// repeats the later ones); rewritten atomically.
static int truncate_metrics(const char *path, int64_t step, char *err, size_t errlen) {
    size_t len;
    char *text = vkd_read_file(path, &len, NULL, 0);
    if (!text) return 0;  // no metrics yet
    size_t keep = 0;
    for (char *line = text; *line;) {
        char *nl = strchr(line, '\n');
        size_t l = nl ? (size_t)(nl - line) + 1 : strlen(line);
        const char *s = strstr(line, "\"step\":");
        if (!s || s > line + l || atoll(s + 7) > step) break;
        keep += l;
        line += l;
    }
    int rc = keep == len ? 0 : vkd_write_file_atomic(path, text, keep, err, errlen);
    free(text);
    return rc;
}

int vkd_run_start(vkd_run *r, const char *config_text, int64_t resumed_step, char *err, size_t errlen) {
    char p[1024];
    vkd_run_path(r, p, sizeof p, "checkpoints");
    if (mkdirs(p)) {
        snprintf(err, errlen, "%s: cannot create the run folder (%s)", r->dir, strerror(errno));
        return -1;
    }
    vkd_run_path(r, p, sizeof p, "samples");
    mkdirs(p);
    vkd_run_path(r, p, sizeof p, "config.json");
    if (config_text && vkd_write_file_atomic(p, config_text, strlen(config_text), err, errlen)) return -1;
    vkd_run_path(r, p, sizeof p, "metrics.jsonl");
    if (truncate_metrics(p, resumed_step, err, errlen)) return -1;
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

int vkd_run_checkpoint(vkd_run *r, struct vkd_ckpt *ck, int64_t step, int64_t skipped, char *err, size_t errlen) {
    char v[32], path[1024];
    snprintf(v, sizeof v, "%lld", (long long)step);
    vkd_ckpt_set_meta(ck, "step", v);
    snprintf(v, sizeof v, "%lld", (long long)skipped);
    vkd_ckpt_set_meta(ck, "skipped", v);
    vkd_run_path(r, path, sizeof path, "checkpoints/ckpt-%08lld.safetensors", (long long)step);
    return vkd_ckpt_save(ck, path, err, errlen);
}

void vkd_debug_kill_point(const char *point, int64_t step) {
    // Read once: this sits inside every training step, which does no other host work.
    static _Thread_local const char *e;  // (per thread: ranks may be threads)
    static _Thread_local int read;
    if (!read) e = getenv("VKD_DEBUG_KILL"), read = 1;
    if (!e) return;
    size_t l = strlen(point);
    if (strncmp(e, point, l) != 0 || e[l] != ':' || atoll(e + l + 1) != step) return;
    // ":stop" suspends instead (a rank that hangs without dying, for the bounded waits of src/dist).
    const char *c = strchr(e + l + 1, ':');
    raise(c && strcmp(c, ":stop") == 0 ? SIGSTOP : SIGKILL);
}
