// The energy distance used for vector students, on sets whose value is known
// in closed form, in 1, 2 and 8 dimensions (it was once computed on the first
// two coordinates only).
#include <math.h>
#include <stdio.h>

#include "vkdistill/distill.h"

static int pass, fail;

static void check(const char *what, double got, double want) {
    int ok = fabs(got - want) <= 1e-9 * (1 + fabs(want));
    printf("%s %s: %.12f (expected %.12f)\n", ok ? "ok  " : "FAIL", what, got, want);
    ok ? pass++ : fail++;
}

int main(void) {
    // One point each, r apart: 2r - 0 - 0.
    float a8[8] = {0}, b8[8] = {0};
    b8[7] = 3;  // only the last coordinate differs
    check("single points 3 apart along the 8th axis", vkd_energy_distance(a8, 1, b8, 1, 8), 6.0);
    // {0, 2} vs {1} on a line: E|X-Y| = 1, E|X-X'| = (0 + 2 + 2 + 0) / 4 = 1, E|Y-Y'| = 0 -> 2 - 1 = 1.
    float x1[2] = {0, 2}, y1[1] = {1};
    check("{0, 2} vs {1} in 1-D", vkd_energy_distance(x1, 2, y1, 1, 1), 1.0);
    // The same sets embedded in 8-D (all other coordinates equal) give the same value.
    float x8[16] = {0}, y8[8] = {0};
    x8[3] = 0, x8[8 + 3] = 2, y8[3] = 1;
    for (int j = 0; j < 8; j++)
        if (j != 3) x8[j] = x8[8 + j] = y8[j] = 0.5f;
    check("{0, 2} vs {1} embedded in 8-D", vkd_energy_distance(x8, 2, y8, 1, 8), 1.0);
    // A unit square's corners vs its centre, in 2-D: E|X-Y| = sqrt(2)/2,
    // E|X-X'| = (4*0 + 8*1 + 4*sqrt(2)) / 16, E|Y-Y'| = 0.
    float sq[8] = {0, 0, 1, 0, 0, 1, 1, 1}, c[2] = {0.5f, 0.5f};
    check("square corners vs centre", vkd_energy_distance(sq, 4, c, 1, 2), sqrt(2.0) - (8 + 4 * sqrt(2.0)) / 16);
    // Symmetric, and zero for a set against itself.
    check("a set against itself", vkd_energy_distance(sq, 4, sq, 4, 2), 0.0);
    printf("%d passed, %d failed\n", pass, fail);
    return fail != 0;
}
