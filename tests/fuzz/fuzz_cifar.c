// Fuzz target: CIFAR-10 binary batches. Input: a flags byte (options; bit 6:
// the train split, the data written to all five batches; bit 7: a
// batches.meta.txt), a byte giving its length, the class names, then the batch.
#include "fuzz_dataset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    uint8_t flags = data[0];
    size_t nmeta = data[1], rest = size - 2;
    if (nmeta > rest) nmeta = rest;
    char dir[300];
    snprintf(dir, sizeof dir, "%s/cifar", fz_scratch());
    mkdir(dir, 0700);
    if (flags & 128)
        fz_write("cifar/batches.meta.txt", data + 2, nmeta);
    else
        fz_remove("cifar/batches.meta.txt");
    const uint8_t *b = data + 2 + nmeta;
    size_t nb = rest - nmeta;
    if (flags & 64) {
        fz_remove("cifar/test_batch.bin");
        for (int i = 1; i <= 5; i++) {
            char name[64];
            snprintf(name, sizeof name, "cifar/data_batch_%d.bin", i);
            fz_write(name, b, nb);
        }
    } else {
        for (int i = 1; i <= 5; i++) {
            char name[64];
            snprintf(name, sizeof name, "cifar/data_batch_%d.bin", i);
            fz_remove(name);
        }
        fz_write("cifar/test_batch.bin", b, nb);
    }
    fz_open_dataset(dir, (flags & 64) ? "train" : "test", flags);
    return 0;
}
