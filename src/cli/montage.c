// vkdistill montage: several sample sets (.npz "samples", N x C x H x W) side
// by side in one PNG, a grey gap between them: row r holds images
// r*cols .. r*cols+cols-1 of every set, so sets sampled with the same seed and
// labels line up image for image (teacher | student | another student).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "vkdistill/data.h"
#include "vkdistill/eval.h"

#define MONTAGE_MAX_SETS 8

// One set's samples as floats; *n and shape[1..3] from the file.
static float *read_set(const char *path, int64_t *shape, char *err, size_t errlen) {
    vkd_npz *z = vkd_npz_open(path, err, errlen);
    if (!z) return NULL;
    int nd = 0;
    float *x = NULL;
    if (!vkd_npz_has(z, "samples")) snprintf(err, errlen, "%s: no 'samples' array (write it with sample --npz)", path);
    else if ((x = vkd_npz_read(z, "samples", VKD_NPY_F32, &nd, shape, err, errlen)) && nd != 4) {
        snprintf(err, errlen, "%s: 'samples' has %d dimensions, expected 4 (N, C, H, W)", path, nd);
        free(x), x = NULL;
    }
    vkd_npz_close(z);
    return x;
}

int vkd_cli_montage(vkd_cli *cli, int argc, char **argv) {
    (void)cli;  // no device: files in, a file out
    const char *out = NULL, *in[MONTAGE_MAX_SETS];
    int nin = 0, cols = 8, rows = 8;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (a[0] == '-' && !v) {
            fprintf(stderr, "vkdistill montage: %s needs a value\n", a);
            return 2;
        }
        if (strcmp(a, "-o") == 0) out = v, i++;
        else if (strcmp(a, "--cols") == 0) cols = atoi(v), i++;
        else if (strcmp(a, "--rows") == 0) rows = atoi(v), i++;
        else if (a[0] == '-' || nin == MONTAGE_MAX_SETS) {
            fprintf(stderr, "vkdistill montage: unexpected '%s' (at most %d sets)\n", a, MONTAGE_MAX_SETS);
            return 2;
        } else in[nin++] = a;
    }
    if (!out || nin < 1 || cols < 1 || rows < 1 || cols > 64 || rows > 64) {
        fprintf(stderr, "vkdistill montage: needs A.npz [B.npz ...] -o OUT.png [--cols N] [--rows N] (1..64)\n");
        return 2;
    }
    char err[1200] = "";
    float *set[MONTAGE_MAX_SETS] = {0}, *grid = NULL;
    int64_t sh[VKD_NPY_MAX_DIMS], first[VKD_NPY_MAX_DIMS];
    int rc = 1, k;
    for (k = 0; k < nin; k++) {
        if (!(set[k] = read_set(in[k], k ? sh : first, err, sizeof err))) goto done;
        int64_t *s = k ? sh : first;
        if (s[0] < (int64_t)rows * cols) {
            snprintf(err, sizeof err, "%s: %lld samples, the montage needs %d (%d rows of %d)", in[k], (long long)s[0],
                     rows * cols, rows, cols);
            goto done;
        }
        if (k && (sh[1] != first[1] || sh[2] != first[2] || sh[3] != first[3])) {
            snprintf(err, sizeof err, "%s: samples of %lldx%lldx%lld, %s has %lldx%lldx%lld", in[k], (long long)sh[1],
                     (long long)sh[2], (long long)sh[3], in[0], (long long)first[1], (long long)first[2],
                     (long long)first[3]);
            goto done;
        }
    }
    // One canvas: each set a rows x cols grid (2-pixel black borders, images enlarged as
    // sample's grids are), sets apart by a mid-grey gap of GAP pixels.
    enum { PAD = 2, GAP = 12 };
    int C = (int)first[1], H = (int)first[2], W = (int)first[3];
    int sc = vkd_png_grid_scale(H, W, rows * cols * nin, cols * nin, PAD);
    int bw = cols * (W * sc + PAD) + PAD, bh = rows * (H * sc + PAD) + PAD;
    int cw = nin * bw + (nin - 1) * GAP, ch = bh;
    grid = malloc((size_t)C * ch * cw * sizeof *grid);
    if (!grid) {
        snprintf(err, sizeof err, "%s: out of memory", out);
        goto done;
    }
    for (size_t e = 0; e < (size_t)C * ch * cw; e++) grid[e] = -1.0f;
    for (int s = 0; s < nin; s++) {
        int x0 = s * (bw + GAP);
        for (int c = 0; c < C && s; c++)
            for (int y = 0; y < ch; y++)
                for (int x = x0 - GAP; x < x0; x++) grid[((size_t)c * ch + y) * cw + x] = 0.0f;
        for (int i = 0; i < rows * cols; i++) {
            const float *img = set[s] + (size_t)i * C * H * W;
            int ox = x0 + PAD + (i % cols) * (W * sc + PAD), oy = PAD + (i / cols) * (H * sc + PAD);
            for (int c = 0; c < C; c++)
                for (int y = 0; y < H * sc; y++)
                    for (int x = 0; x < W * sc; x++)
                        grid[((size_t)c * ch + oy + y) * cw + ox + x] = img[((size_t)c * H + y / sc) * W + x / sc];
        }
    }
    if (vkd_write_png(out, grid, C, ch, cw, err, sizeof err)) goto done;
    fprintf(stderr, "vkdistill: wrote %s (%d sets side by side, %d x %d each)\n", out, nin, rows, cols);
    rc = 0;
done:
    if (rc) fprintf(stderr, "vkdistill: %s\n", err);
    for (k = 0; k < nin; k++) free(set[k]);
    free(grid);
    return rc;
}
