// Whole-file reads and crash-safe writes. Every file vkdistill produces
// (checkpoints, statistics, configs) is written to PATH.tmp, synced, and
// renamed over PATH: rename is atomic on POSIX file systems, so a reader sees
// either the old file or the complete new one, never a torn one.
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vkdistill/io.h"

#define AFILE_BUF (1 << 20)

struct vkd_afile {
    char *path, *tmp;
    int fd;
    int err;  // first errno seen; 0 while all is well
    unsigned char *buf;
    size_t len;
};

static void set_err(char *err, size_t errlen, const char *path, const char *what, int e) {
    if (err && errlen) snprintf(err, errlen, "%s: %s: %s", path, what, strerror(e));
}

static int write_all(int fd, const unsigned char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        p += w, n -= (size_t)w;
    }
    return 0;
}

vkd_afile *vkd_afile_open(const char *path, char *err, size_t errlen) {
    vkd_afile *f = calloc(1, sizeof *f);
    size_t n = strlen(path);
    if (f) f->path = strdup(path), f->tmp = malloc(n + 5), f->buf = malloc(AFILE_BUF);
    if (!f || !f->path || !f->tmp || !f->buf) {
        set_err(err, errlen, path, "cannot write", ENOMEM);
        if (f) free(f->path), free(f->tmp), free(f->buf), free(f);
        return NULL;
    }
    memcpy(f->tmp, path, n);
    memcpy(f->tmp + n, ".tmp", 5);
    // O_TRUNC: a PATH.tmp left behind by a crash is stale by definition.
    f->fd = open(f->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (f->fd < 0) {
        int e = errno;
        if (err && errlen) snprintf(err, errlen, "%s: cannot create %s: %s", path, f->tmp, strerror(e));
        free(f->path), free(f->tmp), free(f->buf), free(f);
        return NULL;
    }
    return f;
}

int vkd_afile_write(vkd_afile *f, const void *p, size_t n) {
    const unsigned char *s = p;
    while (n > 0 && !f->err) {
        if (f->len == AFILE_BUF) {
            f->err = write_all(f->fd, f->buf, f->len);
            f->len = 0;
            continue;
        }
        size_t k = AFILE_BUF - f->len < n ? AFILE_BUF - f->len : n;
        memcpy(f->buf + f->len, s, k);
        f->len += k, s += k, n -= k;
    }
    return f->err ? -1 : 0;
}

static void afile_free(vkd_afile *f) { free(f->path), free(f->tmp), free(f->buf), free(f); }

void vkd_afile_abort(vkd_afile *f) {
    if (!f) return;
    close(f->fd);
    unlink(f->tmp);
    afile_free(f);
}

// The rename is only durable once the directory entry is on disk too.
static void sync_parent_dir(const char *path) {
    char *dir = strdup(path);
    if (!dir) return;
    char *slash = strrchr(dir, '/');
    const char *d = ".";
    if (slash == dir)
        d = "/";
    else if (slash)
        *slash = 0, d = dir;
    int fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);  // best effort: some file systems refuse fsync on directories
        close(fd);
    }
    free(dir);
}

int vkd_afile_commit(vkd_afile *f, char *err, size_t errlen) {
    if (!f->err && f->len) f->err = write_all(f->fd, f->buf, f->len);
    // Test hook: a crash in the middle of writing a file whose path contains
    // $VKD_DEBUG_KILL_WRITE (half of it on disk, not yet renamed into place).
    const char *kill_at = getenv("VKD_DEBUG_KILL_WRITE");
    if (kill_at && *kill_at && strstr(f->path, kill_at)) {
        off_t end = lseek(f->fd, 0, SEEK_CUR);
        if (end > 0 && ftruncate(f->fd, end / 2) == 0) fsync(f->fd);
        raise(SIGKILL);
    }
    if (!f->err && fsync(f->fd) != 0) f->err = errno;
    if (close(f->fd) != 0 && !f->err) f->err = errno;
    if (f->err) {
        if (err && errlen) snprintf(err, errlen, "%s: cannot write %s: %s", f->path, f->tmp, strerror(f->err));
        unlink(f->tmp);
        afile_free(f);
        return -1;
    }
    if (rename(f->tmp, f->path) != 0) {
        set_err(err, errlen, f->path, "cannot rename the temporary file into place", errno);
        unlink(f->tmp);
        afile_free(f);
        return -1;
    }
    sync_parent_dir(f->path);
    afile_free(f);
    return 0;
}

int vkd_write_file_atomic(const char *path, const void *data, size_t n, char *err, size_t errlen) {
    vkd_afile *f = vkd_afile_open(path, err, errlen);
    if (!f) return -1;
    vkd_afile_write(f, data, n);
    return vkd_afile_commit(f, err, errlen);
}

char *vkd_read_file(const char *path, size_t *len, char *err, size_t errlen) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        set_err(err, errlen, path, "cannot open", errno);
        return NULL;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        if (err && errlen) snprintf(err, errlen, "%s: not a regular file", path);
        close(fd);
        return NULL;
    }
    size_t n = (size_t)sb.st_size, got = 0;
    char *buf = malloc(n + 1);
    if (!buf) {
        set_err(err, errlen, path, "cannot read", ENOMEM);
        close(fd);
        return NULL;
    }
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            set_err(err, errlen, path, "cannot read", errno);
            free(buf), close(fd);
            return NULL;
        }
        if (r == 0) break;  // the file shrank under us: keep what is there
        got += (size_t)r;
    }
    close(fd);
    buf[got] = 0;
    if (len) *len = got;
    return buf;
}
