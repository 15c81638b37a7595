// vkdistill: the command-line program. Global flags, then a verb.
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "vkdistill/dist.h"

// Each verb's usage, printed by `vkdistill VERB --help` (and in the full usage).
static const struct {
    const char *verb, *text;
} verbs[] = {
    {"info", "  info [--list]          the chosen device and its features (--list: every device)\n"},
    {"selfcheck", "  selfcheck              a short check of the GPU ops and a training step against the CPU\n"},
    {"bench", "  bench gemm [--reps N] [--shape MxNxK[tA][tB]]...  GEMM GFLOP/s, one JSON line per shape\n"
              "  bench model --config FILE [--batch N] [--runs N]   forward / forward+backward time (best, median) and peak memory\n"
              "  bench step CONFIG [--iters N] [--warmup N] [--profile 0|1]   whole training iterations of a\n"
              "         distill or train-teacher config: img/s, ms per phase, dispatches, peak memory, top ops\n"},
    {"train-teacher", "  train-teacher CONFIG [--out DIR] [--resume auto|CKPT] [--steps N]   EDM training on a dataset\n"},
    {"distill", "  distill CONFIG [--out DIR] [--resume auto|CKPT] [--steps N]   one-step distillation (DMD2, SiM, SiD, Diff-Instruct)\n"},
    {"sample", "  sample --model CONFIG --weights W [--n N] [--batch B] [--seed S] [--class K] [--steps N] [--sampler heun|euler]\n"
               "         [--guidance W] [--churn S] [--one-step SIGMA | --student-sigmas S0,S1,..] (-o GRID.png | --npz FILE)\n"
               "         [--individual DIR] [--gmm MIX.json]   (vector students: .npz, and with -o a 2-D scatter)\n"},
    {"montage", "  montage A.npz [B.npz ...] -o OUT.png [--cols N] [--rows N]   sample sets side by side (same seed: image for image)\n"},
    {"export", "  export --model CONFIG --weights IN -o OUT [--dtype F16|BF16|F32]   weights rewritten in another dtype\n"
               "  export --model CONFIG --weights CKPT1 --weights CKPT2 ... [--prefix ema/] -o OUT   their mean\n"
               "         (checkpoint averaging; --prefix: the network inside a checkpoint, ema/ generator/ fake/ net/)\n"},
    {"train-classifier", "  train-classifier CONFIG [--out DIR] [--resume auto|CKPT] [--data DIR] [--epochs N] [--batch N] [--lr X]\n"
                         "         [--seed S] [--max-images N] [--flip] [--dtype F16|BF16|F32]   the FD feature classifier\n"},
    {"fid-stats", "  fid-stats SOURCE -o STATS.npz [--features fmnist|inception] [--n N] [--split train|test]\n"
                  "         [--resolution R] [--feature-weights W]   feature mean/covariance (float64)\n"},
    {"fid", "  fid A B   (each a stats .npz, a samples .npz, an image folder or a dataset), or\n"
            "  fid --samples SOURCE (--ref STATS.npz | --ref-samples SOURCE) [--split S] [--ref-split S]\n"
            "         [--features fmnist|inception] [--feature-weights W] [--resolution R] [--n N] [--kid] [--pr]\n"},
};
#define NVERBS ((int)(sizeof verbs / sizeof *verbs))

static void usage(FILE *f) {
    fprintf(f,
            "usage: vkdistill [--device N|NAME] [--ranks N] [--validation] [--version] VERB [ARGS]\n"
            "verbs:\n");
    for (int i = 0; i < NVERBS; i++) fputs(verbs[i].text, f);
    fprintf(f,
            "environment: VKD_DEVICE (like --device), VKD_VALIDATION=1, VKD_PROFILE=1 (time per op),\n"
            "             VKD_CACHE_DIR (pipeline cache; empty disables), VKD_MEMORY_CAP_MB (cap device memory)\n"
            "several devices: mpirun -n N vkdistill train-teacher|distill|bench step CONFIG (the config's batch is the\n"
            "             global batch; VKD_MPI_TIMEOUT: seconds a rank waits for the others, default 600)\n"
            "             or --ranks N: N ranks as threads of this process, no MPI (on a CPU device, a rank a core)\n");
}

static int run_verb(int argc, char **argv);

// The value of --ranks among the global flags: 1 when absent, 0 when not a number of ranks.
static int ranks_flag(int argc, char **argv) {
    for (int i = 1; i < argc && argv[i][0] == '-'; i++) {
        const char *v = strcmp(argv[i], "--ranks") == 0 ? (i + 1 < argc ? argv[i + 1] : "") : strncmp(argv[i], "--ranks=", 8) == 0 ? argv[i] + 8 : NULL;
        if (!v) continue;
        char *end;
        long n = strtol(v, &end, 10);
        return *v && !*end && n >= 1 && n <= VKD_MAX_THREAD_RANKS ? (int)n : 0;
    }
    return 1;
}

typedef struct {
    int argc;
    char **argv;
} verb_call;

static int verb_on_rank(void *a) {
    verb_call *v = a;
    return run_verb(v->argc, v->argv);
}

// Under mpirun MPI is started first (a plain run never touches it). A rank
// that fails leaves without MPI_Finalize, so mpirun ends the whole job at
// once instead of the others waiting for it. With --ranks N the verb runs on
// N threads, each a rank (src/dist/local.c).
int main(int argc, char **argv) {
    char err[512];
    if (vkd_comm_init(&argc, &argv, err, sizeof err)) {
        fprintf(stderr, "vkdistill: %s\n", err);
        return 1;
    }
    int ranks = ranks_flag(argc, argv), rc;
    if (!ranks) {
        fprintf(stderr, "vkdistill: --ranks needs a number of ranks from 1 to %d\n", VKD_MAX_THREAD_RANKS);
        rc = 2;
    } else if (ranks > 1) {
        verb_call v = {argc, argv};
        rc = vkd_comm_run_threads(ranks, verb_on_rank, &v, err, sizeof err);
        if (rc < 0) fprintf(stderr, "vkdistill: --ranks %d: %s\n", ranks, err), rc = 1;
    } else {
        rc = run_verb(argc, argv);
    }
    fflush(stdout), fflush(stderr);
    if (rc == 0 || vkd_comm_size() == 1) vkd_comm_finalize();
    return rc;
}

static int run_verb(int argc, char **argv) {
    vkd_cli cli = {.opts = {.validation = -1}};
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--device") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "vkdistill: --device needs an index or a name\n");
                return 2;
            }
            cli.opts.device = argv[++i];
        } else if (strncmp(argv[i], "--device=", 9) == 0) {
            cli.opts.device = argv[i] + 9;
        } else if (strcmp(argv[i], "--ranks") == 0 && i + 1 < argc) {
            i++;  // taken by main
        } else if (strncmp(argv[i], "--ranks=", 8) == 0) {
        } else if (strcmp(argv[i], "--validation") == 0) {
            cli.opts.validation = 1;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("vkdistill %s\n", VKD_VERSION);
            return 0;
        } else {
            fprintf(stderr, "vkdistill: unknown option '%s' (see vkdistill --help)\n", argv[i]);
            return 2;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return 2;
    }
    const char *verb = argv[i];
    int vargc = argc - i - 1;
    char **vargv = argv + i + 1;
    // fid and fid-stats print their own, longer usage.
    int own_help = strcmp(verb, "fid") == 0 || strcmp(verb, "fid-stats") == 0;
    for (int k = 0; k < vargc && !own_help; k++)
        if (strcmp(vargv[k], "--help") == 0 || strcmp(vargv[k], "-h") == 0)
            for (int v = 0; v < NVERBS; v++)
                if (strcmp(verb, verbs[v].verb) == 0) {
                    printf("usage: vkdistill [--device N|NAME] [--validation]\n%s", verbs[v].text);
                    return 0;
                }
    // The other verbs are not data parallel: N copies would write the same files.
    static const char *parallel[] = {"info", "bench", "train-teacher", "distill", "train-classifier"};
    int is_parallel = 0, known = 0;
    for (int v = 0; v < (int)(sizeof parallel / sizeof *parallel); v++) is_parallel |= strcmp(verb, parallel[v]) == 0;
    for (int v = 0; v < NVERBS; v++) known |= strcmp(verb, verbs[v].verb) == 0;
    if (vkd_comm_size() > 1 && known && !is_parallel) {
        if (vkd_comm_rank() == 0)
            fprintf(stderr, "vkdistill: %s runs on one rank (this run has %d); run it without mpirun or --ranks\n", verb,
                    vkd_comm_size());
        return 2;
    }
    if (strcmp(verb, "info") == 0) return vkd_cli_info(&cli, vargc, vargv);
    if (strcmp(verb, "selfcheck") == 0) return vkd_cli_selfcheck(&cli, vargc, vargv);
    if (strcmp(verb, "bench") == 0) return vkd_cli_bench(&cli, vargc, vargv);
    if (strcmp(verb, "train-teacher") == 0) return vkd_cli_train_teacher(&cli, vargc, vargv);
    if (strcmp(verb, "sample") == 0) return vkd_cli_sample(&cli, vargc, vargv);
    if (strcmp(verb, "distill") == 0) return vkd_cli_distill(&cli, vargc, vargv);
    if (strcmp(verb, "montage") == 0) return vkd_cli_montage(&cli, vargc, vargv);
    if (strcmp(verb, "export") == 0) return vkd_cli_export(&cli, vargc, vargv);
    if (strcmp(verb, "train-classifier") == 0) return vkd_cli_train_classifier(&cli, vargc, vargv);
    if (strcmp(verb, "fid-stats") == 0) return vkd_cli_fid_stats(&cli, vargc, vargv);
    if (strcmp(verb, "fid") == 0) return vkd_cli_fid(&cli, vargc, vargv);
    if (strcmp(verb, "help") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "vkdistill: unknown verb '%s' (verbs: info, selfcheck, bench, train-teacher, distill, sample, montage, export, train-classifier, fid-stats, fid; see vkdistill --help)\n",
            verb);
    return 2;
}

vkd_ctx *vkd_cli_open(vkd_cli *cli) {
    char err[512], dev[16];
    vkd_ctx_opts o = cli->opts;
    int ranks = vkd_comm_size();
    // Under mpirun each rank takes the device of its node-local rank (modulo
    // the device count) unless --device or VKD_DEVICE says otherwise.
    if (ranks > 1 && !o.device && !(getenv("VKD_DEVICE") && *getenv("VKD_DEVICE"))) {
        int n = vkd_comm_vulkan_device_count();
        snprintf(dev, sizeof dev, "%d", n > 0 ? vkd_comm_local_rank() % n : 0);
        o.device = dev;
    }
    if (ranks > 1) o.quiet = 1;  // the device is printed below, with the rank
    vkd_ctx *ctx = vkd_ctx_create(&o, err, sizeof err);
    if (!ctx) vkd_cli_error("%s", err);
    else if (ranks > 1 && !cli->opts.quiet)
        fprintf(stderr, "vkdistill: rank %d of %d (node-local %d): device %s\n", vkd_comm_rank(), ranks, vkd_comm_local_rank(),
                vkd_ctx_device_name(ctx));
    return ctx;
}

void vkd_cli_error(const char *fmt, ...) {
    char msg[3000];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!msg[0]) return;  // another rank reports it
    if (vkd_comm_size() > 1) fprintf(stderr, "vkdistill: rank %d of %d: %s\n", vkd_comm_rank(), vkd_comm_size(), msg);
    else fprintf(stderr, "vkdistill: %s\n", msg);
}

// Closes the context; with validation on, any message makes the verb fail.
int vkd_cli_close(vkd_ctx *ctx, int rc) {
    if (!ctx) return rc;
    int msgs = vkd_ctx_validation_messages(ctx);
    vkd_ctx_destroy(ctx);
    if (msgs) {
        fprintf(stderr, "vkdistill: %d validation message(s)\n", msgs);
        return rc ? rc : 1;
    }
    return rc;
}
