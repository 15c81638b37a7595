// Strict JSON configs. A config is read by asking for its fields one by one;
// each getter checks type and range and remembers the key, and finish fails on
// any key that nobody asked for, so "chanel_mult" never silently falls back to
// a default. The first error is kept (later ones are usually its echoes) and
// names the file and the field path, e.g. "unet.channel_mult[1]".
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/utf8.h"
#include "vkdistill/io.h"

struct vkd_cfg {
    vkd_cfg *root;
    cJSON *json;   // this object; the root owns the whole tree
    char *prefix;  // "" at the root, "unet." for the object under "unet"
    int nkeys;
    unsigned char *used;  // by position among json's children
    char **asked;         // every key a getter asked for here: the "known" list
    int nasked;
    vkd_cfg **kids;  // nested objects handed out by vkd_cfg_obj
    char **kid_keys;
    int nkids;
    // root only
    char *name;
    char err[1024];
};

static void cfg_fail(vkd_cfg *c, const char *fmt, ...) {
    vkd_cfg *r = c->root;
    if (r->err[0]) return;  // the first error wins
    int k = snprintf(r->err, sizeof r->err, "%s: ", r->name);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err + k, sizeof r->err - (size_t)k, fmt, ap);
    va_end(ap);
    for (char *p = r->err; *p; p++)
        if ((unsigned char)*p < 0x20) *p = '?';  // one line, whatever the config holds
}

// What a value is, for "got ..." in messages.
static const char *describe(const cJSON *v, char *buf, size_t n) {
    if (cJSON_IsString(v)) {
        size_t len = strlen(v->valuestring);
        snprintf(buf, n, "\"%.40s%s\"", v->valuestring, len > 40 ? "..." : "");
    } else if (cJSON_IsNumber(v)) {
        snprintf(buf, n, "%.15g", v->valuedouble);
        if (strtod(buf, NULL) != v->valuedouble) snprintf(buf, n, "%.17g", v->valuedouble);
    } else if (cJSON_IsBool(v)) {
        snprintf(buf, n, "%s", cJSON_IsTrue(v) ? "true" : "false");
    } else if (cJSON_IsNull(v)) {
        snprintf(buf, n, "null");
    } else {
        snprintf(buf, n, "%s", cJSON_IsArray(v) ? "an array" : "an object");
    }
    return buf;
}

static vkd_cfg *cfg_node(vkd_cfg *root, cJSON *json, const char *prefix) {
    vkd_cfg *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->root = root ? root : c;
    c->json = json;
    c->nkeys = cJSON_GetArraySize(json);
    c->prefix = strdup(prefix);
    c->used = calloc((size_t)c->nkeys + 1, 1);
    if (!c->prefix || !c->used) {
        free(c->prefix), free(c->used), free(c);
        return NULL;
    }
    return c;
}

static void cfg_node_free(vkd_cfg *c) {
    for (int i = 0; i < c->nkids; i++) cfg_node_free(c->kids[i]), free(c->kid_keys[i]);
    for (int i = 0; i < c->nasked; i++) free(c->asked[i]);
    free(c->kids), free(c->kid_keys), free(c->asked), free(c->used), free(c->prefix);
    free(c);
}

void vkd_cfg_free(vkd_cfg *c) {
    if (!c || c->root != c) return;  // nested objects belong to the root
    cJSON_Delete(c->json);
    free(c->name);
    cfg_node_free(c);
}

const char *vkd_cfg_error(const vkd_cfg *c) { return c->root->err[0] ? c->root->err : NULL; }

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

// cJSON keeps every duplicate key; which one a getter would see is an
// accident, so a duplicate is an error wherever it is.
static const char *find_duplicate_key(const cJSON *v, char *path, size_t pathlen) {
    size_t plen = strlen(path);
    if (cJSON_IsObject(v)) {
        int n = cJSON_GetArraySize(v);
        const char **keys = malloc(((size_t)n + 1) * sizeof *keys);
        if (!keys) return NULL;
        int i = 0;
        const cJSON *f;
        cJSON_ArrayForEach(f, v) keys[i++] = f->string;
        qsort(keys, (size_t)n, sizeof *keys, cmp_str);
        for (i = 1; i < n; i++)
            if (strcmp(keys[i - 1], keys[i]) == 0) {
                snprintf(path + plen, pathlen - plen, "%s%s", plen ? "." : "", keys[i]);
                free(keys);
                return path;
            }
        free(keys);
        cJSON_ArrayForEach(f, v) {
            snprintf(path + plen, pathlen - plen, "%s%s", plen ? "." : "", f->string);
            if (find_duplicate_key(f, path, pathlen)) return path;
        }
    } else if (cJSON_IsArray(v)) {
        int i = 0;
        const cJSON *f;
        cJSON_ArrayForEach(f, v) {
            snprintf(path + plen, pathlen - plen, "[%d]", i++);
            if (find_duplicate_key(f, path, pathlen)) return path;
        }
    }
    path[plen] = 0;
    return NULL;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    for (char *p = err; *p; p++)
        if ((unsigned char)*p < 0x20) *p = '?';
}

vkd_cfg *vkd_cfg_parse(const char *text, const char *name, char *err, size_t errlen) {
    size_t n = strlen(text), bad = vkd_utf8_check((const unsigned char *)text, n);
    const char *end = text + bad;
    int is_utf8 = bad == n;
    cJSON *json = NULL;
    if (is_utf8) {
        end = NULL;
        json = cJSON_ParseWithOpts(text, &end, 1);
    }
    if (!json) {
        int line = 1, col = 1;
        for (const char *p = text; end && p < end && *p; p++) line += *p == '\n', col = *p == '\n' ? 1 : col + 1;
        set_err(err, errlen, "%s: %s near line %d, column %d", name, is_utf8 ? "invalid JSON" : "invalid UTF-8", line,
                col);
        return NULL;
    }
    if (!cJSON_IsObject(json)) {
        char buf[64];
        set_err(err, errlen, "%s: expected a JSON object at the top level, got %s", name,
                describe(json, buf, sizeof buf));
        cJSON_Delete(json);
        return NULL;
    }
    char path[512] = "";
    if (find_duplicate_key(json, path, sizeof path)) {
        set_err(err, errlen, "%s: duplicate field '%s'", name, path);
        cJSON_Delete(json);
        return NULL;
    }
    vkd_cfg *c = cfg_node(NULL, json, "");
    if (c && !(c->name = strdup(name))) cfg_node_free(c), c = NULL;
    if (!c) {
        set_err(err, errlen, "%s: out of memory", name);
        cJSON_Delete(json);
    }
    return c;
}

static void drop_comments(cJSON *v) {
    if (cJSON_IsObject(v)) cJSON_DeleteItemFromObjectCaseSensitive(v, "comment");
    for (cJSON *c = v ? v->child : NULL; c; c = c->next) drop_comments(c);
}

int vkd_cfg_same_settings(const char *a, const char *b) {
    if (strcmp(a, b) == 0) return 1;
    cJSON *x = cJSON_Parse(a), *y = cJSON_Parse(b);
    int same = 0;
    if (x && y) {
        drop_comments(x), drop_comments(y);
        same = cJSON_Compare(x, y, 1);
    }
    cJSON_Delete(x), cJSON_Delete(y);
    return same;
}

vkd_cfg *vkd_cfg_load(const char *path, char *err, size_t errlen) {
    size_t len;
    char *text = vkd_read_file(path, &len, err, errlen);
    if (!text) return NULL;
    vkd_cfg *c = NULL;
    if (strlen(text) != len)
        set_err(err, errlen, "%s: contains a NUL byte (not a JSON text file?)", path);
    else
        c = vkd_cfg_parse(text, path, err, errlen);
    free(text);
    return c;
}

static void remember(vkd_cfg *c, const char *key) {
    for (int i = 0; i < c->nasked; i++)
        if (strcmp(c->asked[i], key) == 0) return;
    char **a = realloc(c->asked, (size_t)(c->nasked + 1) * sizeof *a);
    if (!a) return;  // only the "known" list in a later message would miss it
    c->asked = a;
    if ((c->asked[c->nasked] = strdup(key))) c->nasked++;
}

// The value under key (marking it read), or NULL when absent: an error if it is required.
static cJSON *lookup(vkd_cfg *c, const char *key, int required) {
    remember(c, key);
    int i = 0;
    cJSON *f;
    cJSON_ArrayForEach(f, c->json) {
        if (strcmp(f->string, key) == 0) {
            c->used[i] = 1;
            return f;
        }
        i++;
    }
    if (required) cfg_fail(c, "missing required field '%s%s'", c->prefix, key);
    return NULL;
}

int vkd_cfg_has(const vkd_cfg *c, const char *key) { return cJSON_GetObjectItemCaseSensitive(c->json, key) != NULL; }

static const char *int_range(char *buf, size_t n, int lo, int hi) {
    if (lo == INT_MIN && hi == INT_MAX)
        snprintf(buf, n, "an integer");
    else if (lo == 1 && hi == INT_MAX)
        snprintf(buf, n, "a positive integer");
    else if (lo == 0 && hi == INT_MAX)
        snprintf(buf, n, "a non-negative integer");
    else if (hi == INT_MAX)
        snprintf(buf, n, "an integer >= %d", lo);
    else if (lo == INT_MIN)
        snprintf(buf, n, "an integer <= %d", hi);
    else
        snprintf(buf, n, "an integer in [%d, %d]", lo, hi);
    return buf;
}

static int int_ok(const cJSON *v, int lo, int hi) {
    return cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble) && v->valuedouble >= lo && v->valuedouble <= hi;
}

int vkd_cfg_int(vkd_cfg *c, const char *key, int required, int def, int lo, int hi) {
    cJSON *v = lookup(c, key, required);
    if (!v) return def;
    if (!int_ok(v, lo, hi)) {
        char want[64], got[64];
        cfg_fail(c, "field '%s%s': expected %s, got %s", c->prefix, key, int_range(want, sizeof want, lo, hi),
                 describe(v, got, sizeof got));
        return def;
    }
    return (int)v->valuedouble;
}

static const char *num_range(char *buf, size_t n, double lo, double hi) {
    if (isinf(lo) && isinf(hi))
        snprintf(buf, n, "a number");
    else if (isinf(hi))
        snprintf(buf, n, "a number >= %g", lo);
    else if (isinf(lo))
        snprintf(buf, n, "a number <= %g", hi);
    else
        snprintf(buf, n, "a number in [%g, %g]", lo, hi);
    return buf;
}

double vkd_cfg_num(vkd_cfg *c, const char *key, int required, double def, double lo, double hi) {
    cJSON *v = lookup(c, key, required);
    if (!v) return def;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || !(v->valuedouble >= lo && v->valuedouble <= hi)) {
        char want[96], got[64];
        cfg_fail(c, "field '%s%s': expected %s, got %s", c->prefix, key, num_range(want, sizeof want, lo, hi),
                 describe(v, got, sizeof got));
        return def;
    }
    return v->valuedouble;
}

int vkd_cfg_bool(vkd_cfg *c, const char *key, int required, int def) {
    cJSON *v = lookup(c, key, required);
    if (!v) return def;
    if (!cJSON_IsBool(v)) {
        char got[64];
        cfg_fail(c, "field '%s%s': expected true or false, got %s", c->prefix, key, describe(v, got, sizeof got));
        return def;
    }
    return cJSON_IsTrue(v);
}

const char *vkd_cfg_str(vkd_cfg *c, const char *key, int required, const char *def, const char *const *allowed) {
    cJSON *v = lookup(c, key, required);
    if (!v) return def;
    int ok = cJSON_IsString(v);
    for (int i = 0; ok && allowed && allowed[i]; i++)
        if (strcmp(allowed[i], v->valuestring) == 0) return v->valuestring;
    if (ok && !allowed) return v->valuestring;
    char want[512] = "a string", got[64];
    if (allowed) {
        size_t k = (size_t)snprintf(want, sizeof want, "one of");
        for (int i = 0; allowed[i] && k < sizeof want; i++)
            k += (size_t)snprintf(want + k, sizeof want - k, "%s \"%s\"", i ? "," : "", allowed[i]);
    }
    cfg_fail(c, "field '%s%s': expected %s, got %s", c->prefix, key, want, describe(v, got, sizeof got));
    return def;
}

// The array under key if it has at most maxn elements; NULL (and *n = 0 or -1) otherwise.
static cJSON *lookup_list(vkd_cfg *c, const char *key, int required, int maxn, const char *what, int *n) {
    cJSON *v = lookup(c, key, required);
    *n = v ? -1 : required ? -1 : 0;
    if (!v) return NULL;
    char got[64];
    if (!cJSON_IsArray(v)) {
        cfg_fail(c, "field '%s%s': expected an array of %s, got %s", c->prefix, key, what,
                 describe(v, got, sizeof got));
        return NULL;
    }
    int len = cJSON_GetArraySize(v);
    if (len > maxn) {
        cfg_fail(c, "field '%s%s': expected at most %d %s, got %d", c->prefix, key, maxn, what, len);
        return NULL;
    }
    *n = len;
    return v;
}

int vkd_cfg_int_list(vkd_cfg *c, const char *key, int required, int *out, int maxn, int lo, int hi) {
    int n;
    char want[64];
    cJSON *v = lookup_list(c, key, required, maxn, "integers", &n), *f;
    if (!v) return n;
    int i = 0;
    cJSON_ArrayForEach(f, v) {  // check them all before writing any
        if (!int_ok(f, lo, hi)) {
            char got[64];
            cfg_fail(c, "field '%s%s[%d]': expected %s, got %s", c->prefix, key, i,
                     int_range(want, sizeof want, lo, hi), describe(f, got, sizeof got));
            return -1;
        }
        i++;
    }
    i = 0;
    cJSON_ArrayForEach(f, v) out[i++] = (int)f->valuedouble;
    return n;
}

int vkd_cfg_num_list(vkd_cfg *c, const char *key, int required, double *out, int maxn) {
    int n;
    cJSON *v = lookup_list(c, key, required, maxn, "numbers", &n), *f;
    if (!v) return n;
    int i = 0;
    cJSON_ArrayForEach(f, v) {
        if (!cJSON_IsNumber(f) || !isfinite(f->valuedouble)) {
            char got[64];
            cfg_fail(c, "field '%s%s[%d]': expected a number, got %s", c->prefix, key, i, describe(f, got, sizeof got));
            return -1;
        }
        i++;
    }
    i = 0;
    cJSON_ArrayForEach(f, v) out[i++] = f->valuedouble;
    return n;
}

int vkd_cfg_num_matrix(vkd_cfg *c, const char *key, int required, double *out, int maxrows, int maxcols, int *cols) {
    int n;
    cJSON *v = lookup_list(c, key, required, maxrows, "rows (arrays of numbers)", &n), *row, *f;
    if (!v) return n;
    int r = 0, ncol = -1;
    char got[64];
    cJSON_ArrayForEach(row, v) {  // check them all before writing any
        if (!cJSON_IsArray(row)) {
            cfg_fail(c, "field '%s%s[%d]': expected an array of numbers, got %s", c->prefix, key, r,
                     describe(row, got, sizeof got));
            return -1;
        }
        int len = cJSON_GetArraySize(row);
        if (ncol < 0) ncol = len;
        if (len != ncol || len < 1 || len > maxcols) {
            cfg_fail(c, "field '%s%s[%d]': expected %s%d numbers (as every row), got %d", c->prefix, key, r,
                     ncol == len ? "1 to " : "", ncol == len ? maxcols : ncol, len);
            return -1;
        }
        int i = 0;
        cJSON_ArrayForEach(f, row) {
            if (!cJSON_IsNumber(f) || !isfinite(f->valuedouble)) {
                cfg_fail(c, "field '%s%s[%d][%d]': expected a number, got %s", c->prefix, key, r, i,
                         describe(f, got, sizeof got));
                return -1;
            }
            i++;
        }
        r++;
    }
    r = 0;
    cJSON_ArrayForEach(row, v) {
        int i = 0;
        cJSON_ArrayForEach(f, row) out[(size_t)r * ncol + i++] = f->valuedouble;
        r++;
    }
    *cols = ncol < 0 ? 0 : ncol;
    return n;
}

vkd_cfg *vkd_cfg_obj(vkd_cfg *c, const char *key, int required) {
    cJSON *v = lookup(c, key, required);
    if (!v) return NULL;
    if (!cJSON_IsObject(v)) {
        char got[64];
        cfg_fail(c, "field '%s%s': expected an object, got %s", c->prefix, key, describe(v, got, sizeof got));
        return NULL;
    }
    for (int i = 0; i < c->nkids; i++)
        if (strcmp(c->kid_keys[i], key) == 0) return c->kids[i];
    size_t plen = strlen(c->prefix) + strlen(key) + 2;
    char *prefix = malloc(plen);
    vkd_cfg **kids = realloc(c->kids, (size_t)(c->nkids + 1) * sizeof *kids);
    if (kids) c->kids = kids;
    char **kk = realloc(c->kid_keys, (size_t)(c->nkids + 1) * sizeof *kk);
    if (kk) c->kid_keys = kk;
    vkd_cfg *kid = NULL;
    char *kcopy = strdup(key);
    if (prefix && kids && kk && kcopy) {
        snprintf(prefix, plen, "%s%s.", c->prefix, key);
        kid = cfg_node(c->root, v, prefix);
    }
    free(prefix);
    if (!kid) {
        free(kcopy);
        cfg_fail(c, "out of memory");
        return NULL;
    }
    c->kids[c->nkids] = kid, c->kid_keys[c->nkids] = kcopy, c->nkids++;
    return kid;
}

// Edit distance, for "did you mean": keys are short, so the O(n*m) table is fine.
static int edit_distance(const char *a, const char *b) {
    size_t n = strlen(a), m = strlen(b);
    if (n > 64 || m > 64) return 1 << 20;
    int d[65][65];
    for (size_t i = 0; i <= n; i++) d[i][0] = (int)i;
    for (size_t j = 0; j <= m; j++) d[0][j] = (int)j;
    for (size_t i = 1; i <= n; i++)
        for (size_t j = 1; j <= m; j++) {
            int sub = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]), del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
            d[i][j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
    return d[n][m];
}

static int check_unread(vkd_cfg *c) {
    int i = 0;
    const cJSON *f;
    cJSON_ArrayForEach(f, c->json) {
        if (!c->used[i++]) {
            char known[400] = "", hint[200] = "";
            size_t k = 0;
            int best = 3, bi = -1;  // suggest only near misses (<= 2 edits)
            for (int j = 0; j < c->nasked && k < sizeof known; j++) {
                k += (size_t)snprintf(known + k, sizeof known - k, "%s%s", j ? ", " : "", c->asked[j]);
                int d = edit_distance(f->string, c->asked[j]);
                if (d < best && d < (int)strlen(c->asked[j])) best = d, bi = j;
            }
            if (k >= sizeof known) strcpy(known + sizeof known - 5, " ...");
            if (bi >= 0) snprintf(hint, sizeof hint, "did you mean '%s%s'? ", c->prefix, c->asked[bi]);
            if (c->nasked)
                cfg_fail(c, "unknown field '%s%s' (%sknown: %s)", c->prefix, f->string, hint, known);
            else
                cfg_fail(c, "unknown field '%s%s' (this object takes no fields)", c->prefix, f->string);
            return -1;
        }
    }
    for (int j = 0; j < c->nkids; j++)
        if (check_unread(c->kids[j])) return -1;
    return 0;
}

int vkd_cfg_finish(vkd_cfg *c) {
    if (c->root->err[0]) return -1;
    return check_unread(c) ? -1 : 0;
}
