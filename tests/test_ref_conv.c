// test_ref_conv.c: the reference convolutions' backward (tests/ref/ref_conv.c)
// against central finite differences of their forward, L = sum(u * y), plus a
// hand-computed forward and the adjoint identity <conv(x), y> = <x, conv^T(y)>.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ref_conv.h"

#define FD_H 1e-6
#define FD_TOL 1e-6

static int passed, failed;

static void check(const char *name, double err, double tol) {
    int ok = err < tol;  // NaN fails
    printf("%s  %-60s max_rel_err=%.3e\n", ok ? "PASS" : "FAIL", name, err);
    if (ok) passed++;
    else failed++;
}

static double rel_err(double a, double f) {
    double d = fabs(a) > fabs(f) ? fabs(a) : fabs(f);
    return fabs(a - f) / (d > 1.0 ? d : 1.0);
}

static unsigned long long rng = 0x243F6A8885A308D3ull;
static double rnd(void) {  // xorshift64*, uniform in [-1, 1)
    rng ^= rng >> 12, rng ^= rng << 25, rng ^= rng >> 27;
    return (double)((rng * 2685821657736338717ULL) >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}
static double *rand_vec(long n) {
    double *v = malloc(sizeof *v * (size_t)(n ? n : 1));
    for (long i = 0; i < n; i++) v[i] = rnd();
    return v;
}

typedef struct {
    const char *name;
    int transposed;
    ref_conv_shape s;
} conv_case;

typedef struct {
    const conv_case *c;
    double *x, *w, *b, *u, *y;
    long nx, nw, ny;
} problem;

static double loss(problem *p) {
    if (p->c->transposed) ref_conv_transpose2d_fwd(p->y, p->x, p->w, p->b, &p->c->s);
    else ref_conv2d_fwd(p->y, p->x, p->w, p->b, &p->c->s);
    double l = 0;
    for (long i = 0; i < p->ny; i++) l += p->u[i] * p->y[i];
    return l;
}

static double fd_err(problem *p, double *v, long n, const double *grad) {
    double e = 0;
    for (long i = 0; i < n; i++) {
        double save = v[i];
        v[i] = save + FD_H;
        double lp = loss(p);
        v[i] = save - FD_H;
        double lm = loss(p);
        v[i] = save;
        double r = rel_err(grad[i], (lp - lm) / (2 * FD_H));
        if (!(r <= e)) e = r;
    }
    return e;
}

static void run_case(const conv_case *c) {
    const ref_conv_shape *s = &c->s;
    int ho, wo;
    if (c->transposed) ref_conv_transpose2d_out(s, &ho, &wo);
    else ref_conv2d_out(s, &ho, &wo);
    problem p = {.c = c};
    p.nx = (long)s->n * s->cin * s->h * s->w;
    p.nw = c->transposed ? (long)s->cin * (s->cout / s->groups) * s->kh * s->kw
                         : (long)s->cout * (s->cin / s->groups) * s->kh * s->kw;
    p.ny = (long)s->n * s->cout * ho * wo;
    p.x = rand_vec(p.nx), p.w = rand_vec(p.nw), p.b = rand_vec(s->cout), p.u = rand_vec(p.ny);
    p.y = malloc(sizeof *p.y * (size_t)p.ny);
    double *dx = malloc(sizeof *dx * (size_t)p.nx), *dw = malloc(sizeof *dw * (size_t)p.nw),
           *db = malloc(sizeof *db * (size_t)s->cout);
    if (c->transposed) ref_conv_transpose2d_bwd(dx, dw, db, p.u, p.x, p.w, s);
    else ref_conv2d_bwd(dx, dw, db, p.u, p.x, p.w, s);
    char name[128];
    snprintf(name, sizeof name, "%s dx", c->name);
    check(name, fd_err(&p, p.x, p.nx, dx), FD_TOL);
    snprintf(name, sizeof name, "%s dw", c->name);
    check(name, fd_err(&p, p.w, p.nw, dw), FD_TOL);
    snprintf(name, sizeof name, "%s db", c->name);
    check(name, fd_err(&p, p.b, s->cout, db), FD_TOL);
    free(p.x), free(p.w), free(p.b), free(p.u), free(p.y), free(dx), free(dw), free(db);
}

// 1 channel, 3x3 input 1..9, 2x2 kernel [[1, 2], [3, 4]], stride 1, pad 0, bias 0.5:
// y[0][0] = 1*1 + 2*2 + 4*3 + 5*4 + 0.5 = 37.5, etc.
static void hand_check(void) {
    double x[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, w[4] = {1, 2, 3, 4}, b = 0.5, y[4];
    ref_conv_shape s = {1, 1, 3, 3, 1, 2, 2, 1, 0, 0, 1};
    ref_conv2d_fwd(y, x, w, &b, &s);
    double want[4] = {37.5, 47.5, 67.5, 77.5}, e = 0;
    for (int i = 0; i < 4; i++) e = fmax(e, fabs(y[i] - want[i]));
    check("conv2d 3x3 * 2x2 by hand", e, 1e-12);
    // stride 2 transposed of a 2x2 input with a 2x2 kernel tiles the kernel scaled by each input.
    double xt[4] = {1, 2, 3, 4}, yt[16];
    ref_conv_shape st = {1, 1, 2, 2, 1, 2, 2, 2, 0, 0, 1};
    ref_conv_transpose2d_fwd(yt, xt, w, NULL, &st);
    e = 0;
    for (int oy = 0; oy < 4; oy++)
        for (int ox = 0; ox < 4; ox++)
            e = fmax(e, fabs(yt[oy * 4 + ox] - xt[(oy / 2) * 2 + ox / 2] * w[(oy % 2) * 2 + ox % 2]));
    check("conv_transpose2d stride 2 by hand", e, 1e-12);
}

// <conv2d(x, w), v> = <x, conv_transpose2d(v, w)> for the same weight: the two
// references are written independently, so this ties their index maps together.
static void adjoint_check(ref_conv_shape s) {
    int ho, wo;
    ref_conv2d_out(&s, &ho, &wo);
    long nx = (long)s.n * s.cin * s.h * s.w, ny = (long)s.n * s.cout * ho * wo;
    long nw = (long)s.cout * (s.cin / s.groups) * s.kh * s.kw;
    double *x = rand_vec(nx), *w = rand_vec(nw), *v = rand_vec(ny), *y = malloc(sizeof *y * ny),
           *xt = malloc(sizeof *xt * nx);
    ref_conv2d_fwd(y, x, w, NULL, &s);
    ref_conv_shape t = {s.n, s.cout, ho, wo, s.cin, s.kh, s.kw, s.stride, s.ph, s.pw, s.groups};
    int th, tw;
    ref_conv_transpose2d_out(&t, &th, &tw);
    double a = 0, b = 0;
    if (th == s.h && tw == s.w) {
        ref_conv_transpose2d_fwd(xt, v, w, NULL, &t);
        for (long i = 0; i < ny; i++) a += y[i] * v[i];
        for (long i = 0; i < nx; i++) b += x[i] * xt[i];
    } else {
        a = 1e9;
    }
    char name[128];
    snprintf(name, sizeof name, "adjoint <conv x, v> = <x, convT v> k%dx%d s%d g%d", s.kh, s.kw, s.stride, s.groups);
    check(name, rel_err(a, b), 1e-12);
    free(x), free(w), free(v), free(y), free(xt);
}

int main(void) {
    // n, cin, h, w, cout, kh, kw, stride, ph, pw, groups
    static const conv_case cases[] = {
        {"conv2d 3x3 pad 1", 0, {2, 3, 5, 4, 4, 3, 3, 1, 1, 1, 1}},
        {"conv2d 3x3 stride 2", 0, {2, 2, 7, 6, 3, 3, 3, 2, 1, 1, 1}},
        {"conv2d 1x1", 0, {2, 4, 3, 3, 3, 1, 1, 1, 0, 0, 1}},
        {"conv2d 1x3 pad (0,1)", 0, {1, 2, 4, 5, 3, 1, 3, 1, 0, 1, 1}},
        {"conv2d 3x1 pad (1,0)", 0, {1, 2, 5, 4, 3, 3, 1, 1, 1, 0, 1}},
        {"conv2d groups 2", 0, {2, 4, 4, 4, 6, 3, 3, 1, 1, 1, 2}},
        {"conv2d depthwise 2x2 stride 2", 0, {2, 3, 6, 6, 3, 2, 2, 2, 0, 0, 3}},
        {"conv2d depthwise 4x4 stride 2 pad 1", 0, {1, 3, 6, 6, 3, 4, 4, 2, 1, 1, 3}},
        {"conv2d odd 7x5 3->5", 0, {2, 3, 7, 5, 5, 3, 3, 1, 1, 1, 1}},
        {"conv_transpose2d depthwise 4x4 stride 2 pad 1", 1, {2, 3, 4, 3, 3, 4, 4, 2, 1, 1, 3}},
        {"conv_transpose2d dense 2x2 stride 2", 1, {2, 3, 3, 4, 2, 2, 2, 2, 0, 0, 1}},
        {"conv_transpose2d 3x3 stride 2 pad 1 groups 2", 1, {1, 4, 3, 3, 2, 3, 3, 2, 1, 1, 2}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) run_case(&cases[i]);
    hand_check();
    adjoint_check((ref_conv_shape){2, 3, 5, 5, 4, 3, 3, 1, 1, 1, 1});
    adjoint_check((ref_conv_shape){1, 4, 7, 7, 2, 3, 3, 2, 1, 1, 2});
    adjoint_check((ref_conv_shape){1, 3, 8, 8, 3, 4, 4, 2, 1, 1, 3});
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
