// Pooling and bilinear resize in double precision, written from the PyTorch /
// TensorFlow definitions (not from the shaders).
#include "ref_pool.h"

#include <math.h>

static void pool(double *y, const double *x, long P, int H, int W, int k, int stride, int pad, int kind, int incl) {
    int Ho = (H + 2 * pad - k) / stride + 1, Wo = (W + 2 * pad - k) / stride + 1;
    for (long p = 0; p < P; p++)
        for (int oy = 0; oy < Ho; oy++)
            for (int ox = 0; ox < Wo; ox++) {
                double m = -INFINITY, s = 0;
                int cnt = 0;
                for (int i = 0; i < k; i++)
                    for (int j = 0; j < k; j++) {
                        int yy = oy * stride - pad + i, xx = ox * stride - pad + j;
                        if (yy < 0 || yy >= H || xx < 0 || xx >= W) continue;
                        double v = x[(p * H + yy) * W + xx];
                        m = v > m ? v : m;
                        s += v;
                        cnt++;
                    }
                y[(p * Ho + oy) * Wo + ox] = kind == 0 ? m : s / (incl ? k * k : cnt);
            }
}

void ref_maxpool2d(double *y, const double *x, long P, int H, int W, int k, int stride, int pad) {
    pool(y, x, P, H, W, k, stride, pad, 0, 0);
}

void ref_avgpool2d(double *y, const double *x, long P, int H, int W, int k, int stride, int pad, int count_include_pad) {
    pool(y, x, P, H, W, k, stride, pad, 1, count_include_pad);
}

void ref_global_avgpool(double *y, const double *x, long P, int H, int W) {
    for (long p = 0; p < P; p++) {
        double s = 0;
        for (long i = 0; i < (long)H * W; i++) s += x[p * H * W + i];
        y[p] = s / ((double)H * W);
    }
}

// Source position of output index d: lower tap, upper tap and the upper tap's weight.
static void src(int d, int in, int out, int mode, int *i0, int *i1, double *l) {
    double s;
    if (mode == 0) {
        s = (d + 0.5) * in / out - 0.5;
        if (s < 0) s = 0;
    } else if (mode == 1) {
        s = (double)d * in / out;
    } else {
        s = out > 1 ? (double)d * (in - 1) / (out - 1) : 0;
    }
    *i0 = (int)floor(s);
    if (*i0 > in - 1) *i0 = in - 1;
    *i1 = *i0 + 1 < in ? *i0 + 1 : in - 1;
    *l = *i1 == *i0 ? 0 : s - *i0;
}

void ref_resize_bilinear(double *y, const double *x, long P, int H, int W, int Ho, int Wo, int mode) {
    for (long p = 0; p < P; p++)
        for (int oy = 0; oy < Ho; oy++)
            for (int ox = 0; ox < Wo; ox++) {
                int y0, y1, x0, x1;
                double ly, lx;
                src(oy, H, Ho, mode, &y0, &y1, &ly);
                src(ox, W, Wo, mode, &x0, &x1, &lx);
                const double *q = x + p * H * W;
                y[(p * Ho + oy) * Wo + ox] = (1 - ly) * ((1 - lx) * q[y0 * W + x0] + lx * q[y0 * W + x1]) +
                                             ly * ((1 - lx) * q[y1 * W + x0] + lx * q[y1 * W + x1]);
            }
}
