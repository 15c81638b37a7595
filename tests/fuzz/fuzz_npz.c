// Fuzz target: .npz archives (FID statistics, samples): the zip directory,
// stored and deflated members, .npy headers, every member read as each dtype,
// and the statistics reader (mu, sigma).
#include "fuzz_common.h"
#include "vkdistill/eval.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fz_write("t.npz", data, size);
    char err[512] = "";
    vkd_npz *z = vkd_npz_open(path, err, sizeof err);
    if (!z) {
        fz_check_err(err);
    } else {
        for (int i = 0; i < vkd_npz_count(z); i++) {
            const char *name = vkd_npz_name(z, i);
            if (!vkd_npz_has(z, name)) abort();
            for (int dt = VKD_NPY_F32; dt <= VKD_NPY_F64; dt++) {
                int ndim = -1;
                int64_t shape[VKD_NPY_MAX_DIMS];
                void *p = vkd_npz_read(z, name, (vkd_npy_dtype)dt, &ndim, shape, err, sizeof err);
                if (!p) fz_check_err(err);
                free(p);
            }
        }
        vkd_npz_close(z);
    }
    double *mu = NULL, *sigma = NULL;
    int dim = 0;
    if (vkd_npz_read_stats(path, &mu, &sigma, &dim, err, sizeof err) == 0)
        free(mu), free(sigma);
    else
        fz_check_err(err);
    return 0;
}
