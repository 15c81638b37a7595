#ifndef VKDISTILL_EVAL_H
#define VKDISTILL_EVAL_H
// vkdistill evaluation statistics: feature mean/covariance, .npz files as
// numpy / pytorch-fid / clean-fid / EDM write them, the Frechet distance (FID),
// KID, Inception Score, and precision/recall/density/coverage. Host-only: the
// features arrive as float arrays (from the Inception network or anywhere else)
// and everything here is computed in float64 with LAPACK/BLAS.
//
// Errors: functions return non-zero (or NULL, or NaN) and write ONE line into
// err naming the file (or the quantity) and what was wrong, as io.h does.
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// ---------------------------------------------------------------- streaming statistics
// Mean and unbiased (N-1) covariance, as numpy.cov(x, rowvar=False), in float64.
// Rows are folded in chunks with Chan et al.'s pairwise update (each chunk is
// centred on its own mean before its scatter matrix is formed), so a large
// common offset in the features costs no precision, unlike sum/sum-of-squares.
// Memory: dim*dim doubles (32 MiB for Inception's 2048).
typedef struct vkd_stats vkd_stats;
vkd_stats *vkd_stats_new(int dim);  // NULL if out of memory or dim < 1
void vkd_stats_free(vkd_stats *st);
// feats is (n, dim), row-major. 0 on success, -1 on non-finite input (the
// statistics are left as they were) or out of memory.
int vkd_stats_add(vkd_stats *st, const float *feats, int64_t n);
int vkd_stats_add_f64(vkd_stats *st, const double *feats, int64_t n);
// dst += src (same dim): combines statistics gathered on different devices.
int vkd_stats_merge(vkd_stats *dst, const vkd_stats *src);
int64_t vkd_stats_count(const vkd_stats *st);
int vkd_stats_dim(const vkd_stats *st);
// mu is (dim), sigma (dim, dim). Needs at least 2 rows; -1 otherwise. Can be
// called again after more rows are added.
int vkd_stats_finish(const vkd_stats *st, double *mu, double *sigma);

// ---------------------------------------------------------------- .npy / .npz
// A zip of .npy members. Reading: stored or deflate members, zip64 extra
// fields (numpy always writes them), CRC-checked; descr '<f8' '<f4' '<i8' '<i4'
// (and their big-endian forms) converted to the type asked for; Fortran-order
// arrays are transposed to C order. Writing: like np.savez (stored) or
// np.savez_compressed (deflate), atomically (see vkd_afile in io.h).
#define VKD_NPY_MAX_DIMS 8
typedef enum { VKD_NPY_F32 = 1, VKD_NPY_F64 = 2, VKD_NPY_I64 = 3 } vkd_npy_dtype;

typedef struct {
    const char *name;  // member name without ".npy" (np.load(f)[name])
    vkd_npy_dtype dtype;
    int ndim;  // 0..VKD_NPY_MAX_DIMS
    const int64_t *shape;
    const void *data;  // C order, native (little-endian) numbers
} vkd_npy_array;

int vkd_npz_write(const char *path, const vkd_npy_array *arrays, int n, int compress, char *err, size_t errlen);

typedef struct vkd_npz vkd_npz;  // an open archive with a validated directory
vkd_npz *vkd_npz_open(const char *path, char *err, size_t errlen);
void vkd_npz_close(vkd_npz *z);
int vkd_npz_count(const vkd_npz *z);
const char *vkd_npz_name(const vkd_npz *z, int i);  // without ".npy"
int vkd_npz_has(const vkd_npz *z, const char *name);
// Reads member name as dtype want (VKD_NPY_F32 or VKD_NPY_F64): a malloc'd C
// order array; *ndim and shape[VKD_NPY_MAX_DIMS] receive its shape. NULL on error.
void *vkd_npz_read(vkd_npz *z, const char *name, vkd_npy_dtype want, int *ndim, int64_t *shape, char *err,
                   size_t errlen);

// FID statistics: mu (dim,) and sigma (dim, dim), float64, as pytorch-fid,
// clean-fid and EDM store them. *mu and *sigma are malloc'd.
int vkd_npz_read_stats(const char *path, double **mu, double **sigma, int *dim, char *err, size_t errlen);
// compress: 0 like np.savez (EDM), 1 like np.savez_compressed (pytorch-fid, clean-fid).
int vkd_npz_write_stats(const char *path, const double *mu, const double *sigma, int dim, int compress, char *err,
                        size_t errlen);

// ---------------------------------------------------------------- Frechet distance
// ||mu1-mu2||^2 + Tr S1 + Tr S2 - 2 Tr (S1 S2)^(1/2). The last trace is the sum
// of the square roots of the eigenvalues of the symmetric PSD matrix
// S1^(1/2) S2 S1^(1/2), which has the same eigenvalues as S1 S2: two symmetric
// eigendecompositions (LAPACK dsyevd) and no complex arithmetic, so singular
// covariances (fewer samples than dimensions) give a finite answer where
// scipy's sqrtm reports an "imaginary component". NaN (and err) on bad input.
double vkd_frechet_distance(const double *mu1, const double *s1, const double *mu2, const double *s2, int dim,
                            char *err, size_t errlen);

// ---------------------------------------------------------------- KID
// Kernel Inception Distance (Binkowski et al. 2018) as clean-fid and
// torch-fidelity compute it: cubic polynomial kernel k(x,y) = (x.y/dim + 1)^3,
// the unbiased MMD^2 estimate on num_subsets random subsets of subset_size rows
// drawn without replacement from each set; *mean and *std (population std, as
// torch-fidelity) over the subsets. subset_size is clipped to min(nx, ny).
// Cost: num_subsets * 4 * m^2 * dim flops (8e11 for 100 x 1000 x 2048).
int vkd_kid(const float *x, int64_t nx, const float *y, int64_t ny, int dim, int num_subsets, int subset_size,
            uint64_t seed, double *mean, double *std, char *err, size_t errlen);
// The subsets vkd_kid draws: ix and iy are (num_subsets, m) with m =
// min(subset_size, nx, ny) (returned). Exposed so other tools can reproduce them.
int64_t vkd_kid_subsets(int64_t nx, int64_t ny, int num_subsets, int subset_size, uint64_t seed, int64_t *ix,
                        int64_t *iy);
// KID on given subsets; per_subset (num_subsets) may be NULL.
int vkd_kid_on_subsets(const float *x, const float *y, int dim, int num_subsets, int64_t m, const int64_t *ix,
                       const int64_t *iy, double *per_subset, double *mean, double *std, char *err, size_t errlen);

// ---------------------------------------------------------------- Inception Score
// exp(E_x KL(p(y|x) || p(y))) on each of `splits` consecutive slices of the
// rows (slice i is rows [i*n/splits, (i+1)*n/splits)), p(y) being the slice's
// mean; mean and population std over the slices, as torch-fidelity (which also
// shuffles the rows first; samples are i.i.d., so we do not). scores is (n, k):
// logits (softmax taken here, in float64) or, with are_probs, probabilities.
int vkd_inception_score(const float *scores, int64_t n, int k, int are_probs, int splits, double *mean, double *std,
                        char *err, size_t errlen);

// ---------------------------------------------------------------- precision / recall
// Kynkaanniemi et al. 2019 (improved precision and recall) with k-NN balls,
// plus density and coverage (Naeem et al. 2020) from the same distances.
// radius(x) = distance to the k-th nearest neighbour of x in its own set
// (itself excluded); "inside" is dist <= radius, as NVlabs' code.
//   precision = fraction of fake inside some real ball
//   recall    = fraction of real inside some fake ball
//   density   = (1/(k nf)) sum over fake of the number of real balls it is in
//   coverage  = fraction of real whose ball holds some fake
// Exact brute force in float64: O((nr+nf)^2 dim) time through GEMM tiles,
// O(tile * n) memory. k = 3 in the paper.
typedef struct {
    double precision, recall, density, coverage;
} vkd_prdc;
int vkd_prdc_compute(const float *real, int64_t nr, const float *fake, int64_t nf, int dim, int k, vkd_prdc *out,
                     char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
