// report.html for a run folder: one small SVG chart per numeric metric in
// metrics.jsonl (against the step) and every PNG in samples/, newest first.
// Self-contained, no scripts: open it in any browser while the run goes on.
#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/run.h"
#include "vkdistill/io.h"

#define MAX_SERIES 24
#define MAX_POINTS 4096

typedef struct {
    char name[48];
    int n;
    double x[MAX_POINTS], y[MAX_POINTS];
} series;

static void add_point(series *s, int *ns, const char *name, double x, double y) {
    int i = 0;
    while (i < *ns && strcmp(s[i].name, name) != 0) i++;
    if (i == *ns) {
        if (*ns == MAX_SERIES) return;
        snprintf(s[i].name, sizeof s[i].name, "%s", name);
        s[i].n = 0;
        (*ns)++;
    }
    if (s[i].n < MAX_POINTS && isfinite(y)) s[i].x[s[i].n] = x, s[i].y[s[i].n++] = y;
}

typedef struct {
    char *buf;
    size_t len, cap;
} sbuf;

static void put(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(sbuf *b, const char *fmt, ...) {
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(b->buf ? b->buf + b->len : NULL, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && b->len + (size_t)n < b->cap) {
            b->len += n;
            return;
        }
        b->cap = b->cap ? 2 * b->cap + n : 65536;
        b->buf = realloc(b->buf, b->cap);
    }
}

static void chart(sbuf *b, const series *s) {
    const int W = 360, H = 180, P = 34;
    double x0 = s->x[0], x1 = s->x[s->n - 1], y0 = s->y[0], y1 = s->y[0];
    for (int i = 0; i < s->n; i++) y0 = fmin(y0, s->y[i]), y1 = fmax(y1, s->y[i]);
    if (x1 <= x0) x1 = x0 + 1;
    if (y1 <= y0) y1 = y0 + 1e-9 + fabs(y0) * 1e-6;
    put(b, "<figure><svg width='%d' height='%d' viewBox='0 0 %d %d'><rect width='%d' height='%d' fill='#fff' stroke='#ccc'/>",
        W, H, W, H, W, H);
    put(b, "<polyline fill='none' stroke='#1f77b4' stroke-width='1.5' points='");
    for (int i = 0; i < s->n; i++)
        put(b, "%.1f,%.1f ", P + (s->x[i] - x0) / (x1 - x0) * (W - P - 8), H - 20 - (s->y[i] - y0) / (y1 - y0) * (H - 34));
    put(b, "'/><text x='4' y='14' font-size='11'>%.4g</text><text x='4' y='%d' font-size='11'>%.4g</text>", y1, H - 20, y0);
    put(b, "<text x='%d' y='%d' font-size='11'>step %.0f .. %.0f</text></svg>", P, H - 4, x0, x1);
    put(b, "<figcaption>%s (last %.5g)</figcaption></figure>\n", s->name, s->y[s->n - 1]);
}

static int by_name_desc(const void *a, const void *b) { return -strcmp(*(char *const *)a, *(char *const *)b); }

int vkd_run_write_report(const vkd_run *r, const char *title, char *err, size_t errlen) {
    char path[1024];
    vkd_run_path(r, path, sizeof path, "metrics.jsonl");
    series *s = calloc(MAX_SERIES, sizeof *s);
    int ns = 0;
    FILE *f = fopen(path, "r");
    char line[4096];
    while (f && fgets(line, sizeof line, f)) {
        cJSON *o = cJSON_Parse(line);
        cJSON *st = o ? cJSON_GetObjectItem(o, "step") : NULL;
        if (cJSON_IsNumber(st)) {
            for (cJSON *it = o->child; it; it = it->next) {
                if (cJSON_IsNumber(it) && strcmp(it->string, "step") && strcmp(it->string, "kimg"))
                    add_point(s, &ns, it->string, st->valuedouble, it->valuedouble);
                else if (cJSON_IsArray(it) && strcmp(it->string, "mode_weights") == 0) {
                    // the smallest mode weight tells dropped modes at a glance
                    double mn = 1;
                    for (cJSON *v = it->child; v; v = v->next) mn = fmin(mn, v->valuedouble);
                    add_point(s, &ns, "min_mode_weight", st->valuedouble, mn);
                }
            }
        }
        cJSON_Delete(o);
    }
    if (f) fclose(f);
    sbuf b = {0};
    put(&b, "<!doctype html><meta charset='utf-8'><title>%s</title>\n", title);
    put(&b, "<style>body{font-family:sans-serif;margin:20px}figure{display:inline-block;margin:6px}"
            "img{image-rendering:pixelated;max-width:480px;border:1px solid #ccc}</style>\n");
    put(&b, "<h1>%s</h1><p>%s — metrics.jsonl, checkpoints/, samples/</p>\n<h2>Curves</h2>\n", title, r->dir);
    for (int i = 0; i < ns; i++)
        if (s[i].n > 0) chart(&b, &s[i]);
    put(&b, "<h2>Samples</h2>\n");
    vkd_run_path(r, path, sizeof path, "samples");
    DIR *d = opendir(path);
    char *names[4096];
    int nn = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) && nn < 4096) {
        size_t l = strlen(e->d_name);
        if (l > 4 && strcmp(e->d_name + l - 4, ".png") == 0) names[nn++] = strdup(e->d_name);
    }
    if (d) closedir(d);
    qsort(names, nn, sizeof *names, by_name_desc);
    for (int i = 0; i < nn; i++) {
        put(&b, "<figure><img src='samples/%s'><figcaption>%s</figcaption></figure>\n", names[i], names[i]);
        free(names[i]);
    }
    free(s);
    vkd_run_path(r, path, sizeof path, "report.html");
    int rc = vkd_write_file_atomic(path, b.buf, b.len, err, errlen);
    free(b.buf);
    return rc;
}
