// ref_layout.h: plain-C double-precision references for the layout ops and
// attention (forward + backward). Arrays are row-major and contiguous.
// Backward functions OVERWRITE their outputs; output pointers may be NULL.
#ifndef REF_LAYOUT_H
#define REF_LAYOUT_H

// x has shape (ndim dims); y.shape[i] = shape[perm[i]]
void ref_permute_fwd(double *y, const double *x, int ndim, const long *shape, const int *perm);
// dx (shape) from dy (permuted shape)
void ref_permute_bwd(double *dx, const double *dy, int ndim, const long *shape, const int *perm);

// y = x[..., start:start+len, ...] along axis; x has shape (ndim dims)
void ref_slice_fwd(double *y, const double *x, int ndim, const long *shape, int axis, long start, long len);
void ref_slice_bwd(double *dx, const double *dy, int ndim, const long *shape, int axis, long start, long len);

// y = cat([a, b], axis); a has shape ashape, b the same except bn along axis
void ref_concat_fwd(double *y, const double *a, const double *b, int ndim, const long *ashape, long bn, int axis);
void ref_concat_bwd(double *da, double *db, const double *dy, int ndim, const long *ashape, long bn, int axis);

// q, k, v, out are (B, T, d); out = softmax(scale q k^T) v, softmax over keys
void ref_attention_fwd(double *out, const double *q, const double *k, const double *v, int B, int T, int d,
                       double scale);
void ref_attention_bwd(double *dq, double *dk, double *dv, const double *dout, const double *q, const double *k,
                       const double *v, int B, int T, int d, double scale);

// EDM UNetBlock attention: qkv (N, 3C, H*W) -> out (N, C, H*W), see vkd_attention_edm
void ref_attention_edm_fwd(double *out, const double *qkv, int N, int C, int HW, int heads);
void ref_attention_edm_bwd(double *dqkv, const double *dout, const double *qkv, int N, int C, int HW, int heads);

// DiT / timm Attention core: qkv (N, T, 3D) -> out (N, T, D), see vkd_attention_dit
void ref_attention_dit_fwd(double *out, const double *qkv, int N, int T, int D, int heads);
void ref_attention_dit_bwd(double *dqkv, const double *dout, const double *qkv, int N, int T, int D, int heads);

#endif
