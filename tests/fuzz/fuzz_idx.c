// Fuzz target: IDX files (MNIST / Fashion-MNIST), gzip'd or plain, read through
// zlib. Input: a flags byte (options; bit 6: a labels file too; bit 7: as a
// train/test directory rather than one file), two bytes giving where the
// images file ends, then the images file and the labels file.
#include "fuzz_dataset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 3) return 0;
    uint8_t flags = data[0];
    size_t cut = (size_t)(data[1] | data[2] << 8), rest = size - 3;
    if (cut > rest) cut = rest;
    const uint8_t *img = data + 3, *lab = img + cut;
    size_t nlab = rest - cut;
    char dir[300];
    snprintf(dir, sizeof dir, "%s/idx", fz_scratch());
    mkdir(dir, 0700);
    fz_remove("idx/train-labels-idx1-ubyte");
    fz_remove("idx/t10k-labels-idx1-ubyte.gz");
    if (flags & 128) {
        const char *split = (flags & 64) ? "test" : "train";
        fz_remove("idx/train-images-idx3-ubyte");
        fz_remove("idx/t10k-images-idx3-ubyte.gz");
        if (flags & 64) {
            fz_write("idx/t10k-images-idx3-ubyte.gz", img, cut);
            fz_write("idx/t10k-labels-idx1-ubyte.gz", lab, nlab);
        } else {
            fz_write("idx/train-images-idx3-ubyte", img, cut);
            fz_write("idx/train-labels-idx1-ubyte", lab, nlab);
        }
        fz_open_dataset(dir, split, flags);
    } else {
        fz_remove("idx/t10k-images-idx3-ubyte.gz");
        const char *ipath = fz_write("idx/train-images-idx3-ubyte", img, cut);
        if (flags & 64) fz_write("idx/train-labels-idx1-ubyte", lab, nlab);
        fz_open_dataset(ipath, NULL, flags);
    }
    return 0;
}
