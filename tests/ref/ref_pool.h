// ref_pool.h: plain-C double-precision references for the pooling and resize
// ops (forward only, as the device ops). x is (P, H, W) planes, row-major.
#ifndef REF_POOL_H
#define REF_POOL_H

// y (P, Ho, Wo), Ho = (H + 2 pad - k)/stride + 1: max over the taps inside the input.
void ref_maxpool2d(double *y, const double *x, long P, int H, int W, int k, int stride, int pad);
// Mean over the window; divisor k*k (count_include_pad) or the taps inside the input.
void ref_avgpool2d(double *y, const double *x, long P, int H, int W, int k, int stride, int pad, int count_include_pad);
// y (P) = mean of each plane.
void ref_global_avgpool(double *y, const double *x, long P, int H, int W);
// Bilinear resize to (P, Ho, Wo); mode as vkd_resize_bilinear (0 half-pixel, 1 TF1, 2 align corners).
void ref_resize_bilinear(double *y, const double *x, long P, int H, int W, int Ho, int Wo, int mode);

#endif
