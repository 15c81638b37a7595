// Reference convolutions written as the defining sums, loop by loop, with no
// reuse of the device's formulation (the transposed convolution is written as
// its own scatter, not as a conv2d data gradient).
#include "ref_conv.h"

#include <string.h>

void ref_conv2d_out(const ref_conv_shape *s, int *ho, int *wo) {
    *ho = (s->h + 2 * s->ph - s->kh) / s->stride + 1;
    *wo = (s->w + 2 * s->pw - s->kw) / s->stride + 1;
}

void ref_conv_transpose2d_out(const ref_conv_shape *s, int *ho, int *wo) {
    *ho = (s->h - 1) * s->stride - 2 * s->ph + s->kh;
    *wo = (s->w - 1) * s->stride - 2 * s->pw + s->kw;
}

// Visits every (output, input, weight) triple of conv2d once:
// y[b, co, oy, ox] += x[b, ci, iy, ix] * w[co, ci - g*cig, ky, kx].
#define CONV2D_LOOP(s, ho, wo, BODY)                                                                   \
    do {                                                                                               \
        int cig = (s)->cin / (s)->groups, cog = (s)->cout / (s)->groups;                               \
        for (int b = 0; b < (s)->n; b++)                                                               \
            for (int co = 0; co < (s)->cout; co++) {                                                   \
                int g = co / cog;                                                                      \
                for (int oy = 0; oy < (ho); oy++)                                                      \
                    for (int ox = 0; ox < (wo); ox++) {                                                \
                        long yi = (((long)b * (s)->cout + co) * (ho) + oy) * (wo) + ox;                \
                        for (int c = 0; c < cig; c++)                                                  \
                            for (int ky = 0; ky < (s)->kh; ky++)                                       \
                                for (int kx = 0; kx < (s)->kw; kx++) {                                 \
                                    int iy = oy * (s)->stride - (s)->ph + ky;                          \
                                    int ix = ox * (s)->stride - (s)->pw + kx;                          \
                                    if (iy < 0 || iy >= (s)->h || ix < 0 || ix >= (s)->w) continue;    \
                                    long xi = (((long)b * (s)->cin + g * cig + c) * (s)->h + iy) * (s)->w + ix; \
                                    long wi = (((long)co * cig + c) * (s)->kh + ky) * (s)->kw + kx;    \
                                    BODY;                                                              \
                                }                                                                      \
                    }                                                                                  \
            }                                                                                          \
    } while (0)

void ref_conv2d_fwd(double *y, const double *x, const double *w, const double *bias, const ref_conv_shape *s) {
    int ho, wo;
    ref_conv2d_out(s, &ho, &wo);
    long ny = (long)s->n * s->cout * ho * wo;
    for (long i = 0; i < ny; i++) y[i] = bias ? bias[(i / ((long)ho * wo)) % s->cout] : 0.0;
    CONV2D_LOOP(s, ho, wo, y[yi] += x[xi] * w[wi]);
}

void ref_conv2d_bwd(double *dx, double *dw, double *db, const double *dy, const double *x, const double *w,
                    const ref_conv_shape *s) {
    int ho, wo;
    ref_conv2d_out(s, &ho, &wo);
    if (dx) memset(dx, 0, sizeof *dx * (size_t)s->n * s->cin * s->h * s->w);
    if (dw) memset(dw, 0, sizeof *dw * (size_t)s->cout * (s->cin / s->groups) * s->kh * s->kw);
    if (db) {
        memset(db, 0, sizeof *db * (size_t)s->cout);
        long ny = (long)s->n * s->cout * ho * wo;
        for (long i = 0; i < ny; i++) db[(i / ((long)ho * wo)) % s->cout] += dy[i];
    }
    CONV2D_LOOP(s, ho, wo, {
        if (dx) dx[xi] += dy[yi] * w[wi];
        if (dw) dw[wi] += dy[yi] * x[xi];
    });
}

// Visits every (input, output, weight) triple of conv_transpose2d once:
// y[b, g*cog + co, iy*stride - ph + ky, ix*stride - pw + kx] += x[b, ci, iy, ix] * w[ci, co, ky, kx].
#define CONVT_LOOP(s, ho, wo, BODY)                                                                    \
    do {                                                                                               \
        int cig = (s)->cin / (s)->groups, cog = (s)->cout / (s)->groups;                               \
        for (int b = 0; b < (s)->n; b++)                                                               \
            for (int ci = 0; ci < (s)->cin; ci++) {                                                    \
                int g = ci / cig;                                                                      \
                for (int iy = 0; iy < (s)->h; iy++)                                                    \
                    for (int ix = 0; ix < (s)->w; ix++) {                                              \
                        long xi = (((long)b * (s)->cin + ci) * (s)->h + iy) * (s)->w + ix;             \
                        for (int c = 0; c < cog; c++)                                                  \
                            for (int ky = 0; ky < (s)->kh; ky++)                                       \
                                for (int kx = 0; kx < (s)->kw; kx++) {                                 \
                                    int oy = iy * (s)->stride - (s)->ph + ky;                          \
                                    int ox = ix * (s)->stride - (s)->pw + kx;                          \
                                    if (oy < 0 || oy >= (ho) || ox < 0 || ox >= (wo)) continue;        \
                                    long yi = (((long)b * (s)->cout + g * cog + c) * (ho) + oy) * (wo) + ox; \
                                    long wi = (((long)ci * cog + c) * (s)->kh + ky) * (s)->kw + kx;    \
                                    BODY;                                                              \
                                }                                                                      \
                    }                                                                                  \
            }                                                                                          \
    } while (0)

void ref_conv_transpose2d_fwd(double *y, const double *x, const double *w, const double *bias,
                              const ref_conv_shape *s) {
    int ho, wo;
    ref_conv_transpose2d_out(s, &ho, &wo);
    long ny = (long)s->n * s->cout * ho * wo;
    for (long i = 0; i < ny; i++) y[i] = bias ? bias[(i / ((long)ho * wo)) % s->cout] : 0.0;
    CONVT_LOOP(s, ho, wo, y[yi] += x[xi] * w[wi]);
}

void ref_conv_transpose2d_bwd(double *dx, double *dw, double *db, const double *dy, const double *x,
                              const double *w, const ref_conv_shape *s) {
    int ho, wo;
    ref_conv_transpose2d_out(s, &ho, &wo);
    if (dx) memset(dx, 0, sizeof *dx * (size_t)s->n * s->cin * s->h * s->w);
    if (dw) memset(dw, 0, sizeof *dw * (size_t)s->cin * (s->cout / s->groups) * s->kh * s->kw);
    if (db) {
        memset(db, 0, sizeof *db * (size_t)s->cout);
        long ny = (long)s->n * s->cout * ho * wo;
        for (long i = 0; i < ny; i++) db[(i / ((long)ho * wo)) % s->cout] += dy[i];
    }
    CONVT_LOOP(s, ho, wo, {
        if (dx) dx[xi] += dy[yi] * w[wi];
        if (dw) dw[wi] += dy[yi] * x[xi];
    });
}
