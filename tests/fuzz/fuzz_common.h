// Shared by the fuzz targets: the parsers under test read files by path (they
// pread, gzopen, stat and list directories), so each input is written to a
// scratch directory in tmpfs and the path handed to the parser, exactly as a
// user's file would be.
#ifndef VKD_FUZZ_COMMON_H
#define VKD_FUZZ_COMMON_H
#define _POSIX_C_SOURCE 200809L
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

// A per-process scratch directory (removed at exit), created on first use.
static char fz_dir[256];

static void fz_cleanup(void) {
    if (!fz_dir[0]) return;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fz_dir);
    if (system(cmd)) {
    }
}

static const char *fz_scratch(void) {
    if (!fz_dir[0]) {
        const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(fz_dir, sizeof fz_dir, "%s/vkd-fuzz-XXXXXX", base);
        if (!mkdtemp(fz_dir)) {
            perror("mkdtemp");
            abort();
        }
        atexit(fz_cleanup);
    }
    return fz_dir;
}

// Writes n bytes to scratch/name (replacing it) and returns the full path (static buffer per slot).
static inline const char *fz_write(const char *name, const void *p, size_t n) {
    static char paths[8][512];
    static int next;
    char *path = paths[next++ % 8];
    snprintf(path, 512, "%s/%s", fz_scratch(), name);
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(p, 1, n, f) != n) || fclose(f)) {
        perror(path);
        abort();
    }
    return path;
}

static inline void fz_remove(const char *name) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", fz_scratch(), name);
    unlink(path);
}

// A parser's error must be one line: a newline in it would break the CLI's
// one-line contract (tensor names and the like come from the file).
static inline void fz_check_err(const char *err) {
    if (getenv("VKD_FUZZ_VERBOSE")) fprintf(stderr, "%s\n", err);
    if (strchr(err, '\n')) {
        fprintf(stderr, "error message spans lines: %s\n", err);
        abort();
    }
}
#endif
