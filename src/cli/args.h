#ifndef VKD_CLI_ARGS_H
#define VKD_CLI_ARGS_H
// Argument parsing shared by the verbs.
#include <stddef.h>
#include <stdint.h>

// Arguments of the training verbs: CONFIG [--out DIR] [--resume auto|CKPT] [--init-from CKPT] [--steps N].
// outdir defaults to runs/<config name>. Returns 0, or 2 after printing one line.
typedef struct {
    const char *config, *resume, *init_from;
    int64_t steps;  // 0: the config's
    char outdir[900];
} vkd_train_args;
int vkd_cli_train_args(vkd_train_args *a, const char *verb, int argc, char **argv);
// Under mpirun every rank must run the same config and --steps (rank 0 sends
// their hash). text is the config's text, or NULL when loading it failed with
// err. 0: go on; -1: the error was printed (by rank 0 alone when every rank
// has the same one).
int vkd_cli_config_agreed(const char *text, const vkd_train_args *a, char *err, size_t errlen);

// A whole-string integer in [lo, hi] for flag (e.g. "--steps"); prints one line and returns -1 otherwise.
int vkd_cli_int(const char *verb, const char *flag, const char *v, long long lo, long long hi, long long *out);
// The same for a finite number.
int vkd_cli_num(const char *verb, const char *flag, const char *v, double lo, double hi, double *out);

#endif
