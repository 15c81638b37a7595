// ref_ops.h: plain-C double-precision reference ops (forward + backward).
// All arrays are row-major and contiguous. Output pointers may be NULL to skip.
// Backward functions OVERWRITE their outputs (they never accumulate).
#ifndef REF_OPS_H
#define REF_OPS_H

enum { REF_ADD = 0, REF_MUL = 1 };                 // binary ops
enum { REF_SILU = 0, REF_GELU = 1, REF_RELU = 2, REF_EXP = 5, REF_LOG = 6, REF_SQRT = 7, REF_SOFTPLUS = 8 }; // unary ops

// C is (batch, M, N); A is (batch, M, K), or (batch, K, M) if ta;
// B is (batch, K, N), or (batch, N, K) if tb; if bcast_b, B has no batch dim.
// bias is (M) if bias_rows else (N); may be NULL.
void ref_matmul_fwd(double *C, const double *A, const double *B, const double *bias,
                    int batch, int M, int N, int K, int ta, int tb, int bcast_b, int bias_rows);
// dA, dB, dbias have the storage layouts of A, B, bias (dB/dbias summed over batch as needed)
void ref_matmul_bwd(double *dA, double *dB, double *dbias, const double *dC,
                    const double *A, const double *B,
                    int batch, int M, int N, int K, int ta, int tb, int bcast_b, int bias_rows);

// y, a are (n); b is (bc); a[i] pairs with b[(i / inner) % bc]
void ref_binary_fwd(double *y, const double *a, const double *b, long n, long inner, long bc, int op);
void ref_binary_bwd(double *da, double *db, const double *dy, const double *a, const double *b,
                    long n, long inner, long bc, int op);

// y, x are (n); y = alpha * x
void ref_scale_fwd(double *y, const double *x, long n, double alpha);
void ref_scale_bwd(double *dx, const double *dy, long n, double alpha);

// y, x are (n); op is REF_SILU, REF_GELU (tanh approximation), REF_RELU, REF_EXP, REF_LOG, REF_SQRT or REF_SOFTPLUS
void ref_unary_fwd(double *y, const double *x, long n, int op);
void ref_unary_bwd(double *dx, const double *dy, const double *x, long n, int op);

// x is (rows, cols), y is (rows); sum (or mean if mean_flag) over the last axis
void ref_reduce_fwd(double *y, const double *x, int rows, int cols, int mean_flag);
void ref_reduce_bwd(double *dx, const double *dy, int rows, int cols, int mean_flag);

// x, y are (rows, cols); softmax over the last axis
void ref_softmax_fwd(double *y, const double *x, int rows, int cols);
void ref_softmax_bwd(double *dx, const double *dy, const double *y, int rows, int cols);

// x, y are (rows, cols); w, b are (cols) or NULL; mean, rstd are (rows) or NULL
void ref_layernorm_fwd(double *y, double *mean, double *rstd, const double *x,
                       const double *w, const double *b, int rows, int cols, double eps);
void ref_layernorm_bwd(double *dx, double *dw, double *db, const double *dy,
                       const double *x, const double *w, int rows, int cols, double eps);

// a, b are (n); returns mean((a - b)^2)
double ref_mse_fwd(const double *a, const double *b, long n);
void ref_mse_bwd(double *da, double *db, double dloss, const double *a, const double *b, long n);

// p, m, v, g are (n); one Adam (decoupled=0) or AdamW (decoupled=1) step, t >= 1, in place
void ref_adam_step(double *p, double *m, double *v, const double *g, long n, double lr,
                   double beta1, double beta2, double eps, double weight_decay,
                   int decoupled, long t);

// e, p are (n); e = beta * e + (1 - beta) * p, in place
void ref_ema_update(double *e, const double *p, long n, double beta);

#endif
