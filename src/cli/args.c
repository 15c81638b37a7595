// Argument parsing shared by the verbs: every numeric flag is checked whole
// ("--steps abc" is an error, not the config's value).
#include "cli/args.h"

#include "cli/cli.h"
#include "vkdistill/dist.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int vkd_cli_int(const char *verb, const char *flag, const char *v, long long lo, long long hi, long long *out) {
    char *end;
    errno = 0;
    long long x = v ? strtoll(v, &end, 10) : 0;
    if (!v || !*v || *end || errno || x < lo || x > hi) {
        fprintf(stderr, "vkdistill %s: %s expects an integer in [%lld, %lld], got '%s'\n", verb, flag, lo, hi, v ? v : "");
        return -1;
    }
    *out = x;
    return 0;
}

int vkd_cli_num(const char *verb, const char *flag, const char *v, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double x = v ? strtod(v, &end) : 0;
    if (!v || !*v || *end || errno || !isfinite(x) || x < lo || x > hi) {
        fprintf(stderr, "vkdistill %s: %s expects a number in [%g, %g], got '%s'\n", verb, flag, lo, hi, v ? v : "");
        return -1;
    }
    *out = x;
    return 0;
}

int vkd_cli_train_args(vkd_train_args *a, const char *verb, int argc, char **argv) {
    memset(a, 0, sizeof *a);
    const char *out = NULL;
    for (int i = 0; i < argc; i++) {
        const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = !strcmp(f, "--out") || !strcmp(f, "--resume") || !strcmp(f, "--init-from") || !strcmp(f, "--steps");
        if (takes && !v) {
            fprintf(stderr, "vkdistill %s: %s needs a value\n", verb, f);
            return 2;
        }
        if (!strcmp(f, "--out")) out = v, i++;
        else if (!strcmp(f, "--resume")) a->resume = v, i++;
        else if (!strcmp(f, "--init-from")) a->init_from = v, i++;
        else if (!strcmp(f, "--steps")) {
            long long s;
            if (vkd_cli_int(verb, f, v, 1, 2000000000, &s)) return 2;
            a->steps = s, i++;
        } else if (f[0] != '-' && !a->config) a->config = f;
        else {
            fprintf(stderr, "vkdistill %s: unknown argument '%s' (usage: %s CONFIG [--out DIR] [--resume auto|CKPT] [--init-from CKPT] [--steps N])\n",
                    verb, f, verb);
            return 2;
        }
    }
    if (!a->config) {
        fprintf(stderr, "vkdistill %s: needs a config file (see samples/)\n", verb);
        return 2;
    }
    if (out) {
        snprintf(a->outdir, sizeof a->outdir, "%s", out);
    } else {
        const char *base = strrchr(a->config, '/') ? strrchr(a->config, '/') + 1 : a->config;
        snprintf(a->outdir, sizeof a->outdir, "runs/%.*s", (int)strcspn(base, "."), base);
    }
    return 0;
}

int vkd_cli_config_agreed(const char *text, const vkd_train_args *a, char *err, size_t errlen) {
    char *same = text ? malloc(strlen(text) + 64) : NULL;
    if (same) sprintf(same, "%s\n--steps %lld", text, (long long)a->steps);
    int differ = same && vkd_comm_check_same(same, a->config, err, errlen);
    free(same);
    if (text && !differ) return 0;
    if (text || vkd_comm_rank() == 0) vkd_cli_error("%s", err);
    return -1;
}
