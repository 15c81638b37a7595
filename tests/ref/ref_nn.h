// ref_nn.h: plain-C double-precision references for the network-block ops
// (group norm, 2x resampling, timestep embeddings, adaLN modulation, dropout).
// Row-major, contiguous; backward functions OVERWRITE their outputs; optional
// outputs may be NULL.
#ifndef REF_NN_H
#define REF_NN_H

// x, y are (N, C, S) with S the flattened spatial size; w, b (C) or NULL;
// mean, rstd (N*groups) or NULL. Biased variance, as torch.nn.GroupNorm.
void ref_groupnorm_fwd(double *y, double *mean, double *rstd, const double *x, const double *w, const double *b,
                       int N, int C, int S, int groups, double eps);
void ref_groupnorm_bwd(double *dx, double *dw, double *db, const double *dy, const double *x, const double *w,
                       int N, int C, int S, int groups, double eps);
// y = silu(groupnorm(x)) (vkd_groupnorm_silu); the backward needs b (the pre-activation).
void ref_groupnorm_silu_fwd(double *y, const double *x, const double *w, const double *b, int N, int C, int S,
                            int groups, double eps);
void ref_groupnorm_silu_bwd(double *dx, double *dw, double *db, const double *dy, const double *x, const double *w,
                            const double *b, int N, int C, int S, int groups, double eps);

// x is (P, H, W), y is (P, 2H, 2W): nearest neighbour
void ref_upsample2x_fwd(double *y, const double *x, long P, int H, int W);
void ref_upsample2x_bwd(double *dx, const double *dy, long P, int H, int W);
// x is (P, H, W) with H, W even, y is (P, H/2, W/2): 2x2 mean
void ref_avgpool2x_fwd(double *y, const double *x, long P, int H, int W);
void ref_avgpool2x_bwd(double *dx, const double *dy, long P, int H, int W);

// t is (N), y is (N, dim) = [cos(t f) | sin(t f)], f_i = (1/max_positions)^(i / (dim/2 - endpoint))
void ref_timestep_embedding(double *y, const double *t, int N, int dim, double max_positions, int endpoint);
// t is (N), freqs (half), y is (N, 2*half) = [cos(2 pi t f) | sin(2 pi t f)]
void ref_fourier_embedding(double *y, const double *t, const double *freqs, int N, int half);

// x, y are (N, T, D); shift, scale (N, D) or NULL: y = x * (one + scale) + shift
void ref_modulate_fwd(double *y, const double *x, const double *shift, const double *scale, int N, int T, int D,
                      double one);
void ref_modulate_bwd(double *dx, double *dshift, double *dscale, const double *dy, const double *x,
                      const double *scale, int N, int T, int D, double one);

// x, y are (n); keep (n) is the mask (0/1): y = x * keep / (1 - p)
void ref_dropout_fwd(double *y, const double *x, const unsigned char *keep, long n, double p);
void ref_dropout_bwd(double *dx, const double *dy, const unsigned char *keep, long n, double p);

#endif
