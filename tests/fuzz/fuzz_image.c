// Fuzz target: image files decoded through stb_image in an image folder.
// Input: a flags byte (options; bit 6: named .jpg rather than .png; bit 7: a
// second copy in a class subfolder, so labels and the "all images share a
// size" check run), then the file.
#include "fuzz_dataset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    uint8_t flags = data[0];
    char dir[300], sub[320];
    snprintf(dir, sizeof dir, "%s/img", fz_scratch());
    snprintf(sub, sizeof sub, "%s/img/b", fz_scratch());
    mkdir(dir, 0700);
    fz_remove("img/a.png"), fz_remove("img/a.jpg"), fz_remove("img/b/c.png");
    rmdir(sub);
    if (flags & 128) {
        mkdir(sub, 0700);
        fz_write("img/b/c.png", data + 1, size - 1);
        char sub2[320];
        snprintf(sub2, sizeof sub2, "%s/img/a", fz_scratch());
        mkdir(sub2, 0700);
        fz_write((flags & 64) ? "img/a/a.jpg" : "img/a/a.png", data + 1, size - 1);
    } else {
        fz_remove("img/a/a.png"), fz_remove("img/a/a.jpg");
        char sub2[320];
        snprintf(sub2, sizeof sub2, "%s/img/a", fz_scratch());
        rmdir(sub2);
        fz_write((flags & 64) ? "img/a.jpg" : "img/a.png", data + 1, size - 1);
    }
    fz_open_dataset(dir, NULL, flags);
    return 0;
}
