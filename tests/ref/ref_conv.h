// ref_conv.h: plain-C double-precision reference 2-D convolutions (PyTorch
// semantics, dilation 1, output_padding 0), forward and backward, NCHW.
// Output pointers of the backward may be NULL to skip; backward functions
// OVERWRITE their outputs (they never accumulate).
#ifndef REF_CONV_H
#define REF_CONV_H

// The input is (n, cin, h, w); the output has cout channels.
typedef struct {
    int n, cin, h, w, cout, kh, kw, stride, ph, pw, groups;
} ref_conv_shape;

// conv2d: w (cout, cin/groups, kh, kw), b (cout) or NULL, y (n, cout, ho, wo),
// ho = (h + 2*ph - kh)/stride + 1.
void ref_conv2d_out(const ref_conv_shape *s, int *ho, int *wo);
void ref_conv2d_fwd(double *y, const double *x, const double *w, const double *b, const ref_conv_shape *s);
void ref_conv2d_bwd(double *dx, double *dw, double *db, const double *dy, const double *x, const double *w,
                    const ref_conv_shape *s);

// conv_transpose2d: w (cin, cout/groups, kh, kw), b (cout) or NULL, y (n, cout, ho, wo),
// ho = (h - 1)*stride - 2*ph + kh.
void ref_conv_transpose2d_out(const ref_conv_shape *s, int *ho, int *wo);
void ref_conv_transpose2d_fwd(double *y, const double *x, const double *w, const double *b, const ref_conv_shape *s);
void ref_conv_transpose2d_bwd(double *dx, double *dw, double *db, const double *dy, const double *x,
                              const double *w, const ref_conv_shape *s);

#endif
