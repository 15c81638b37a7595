#ifndef VKD_CLI_RUN_H
#define VKD_CLI_RUN_H
// Run folders: <out>/config.json (the resolved config), metrics.jsonl,
// checkpoints/ckpt-<step>.safetensors, samples/step_<step>.png.
#include <stdint.h>
#include <stdio.h>

typedef struct {
    char dir[900];
    FILE *metrics;
} vkd_run;

// Creates (or, when resuming, reopens) the run folder. A folder that already
// holds checkpoints is refused unless resuming, so nothing is overwritten.
int vkd_run_open(vkd_run *r, const char *dir, int resume, const char *config_text, char *err, size_t errlen);
void vkd_run_close(vkd_run *r);
// Appends one JSON object (without braces: "\"step\":1,\"loss\":0.5") as a line.
void vkd_run_metrics(vkd_run *r, const char *fields);
// The newest checkpoint in the run folder (0 if none), its path in out.
int64_t vkd_run_latest_checkpoint(const vkd_run *r, char *out, size_t n);
void vkd_run_path(const vkd_run *r, char *out, size_t n, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
// Ctrl-C: the first SIGINT sets a flag the loop checks (checkpoint, then exit); a second one kills.
void vkd_run_catch_sigint(void);
int vkd_run_interrupted(void);
// Arguments shared by the training verbs: CONFIG [--out DIR] [--resume auto|CKPT] [--steps N].
// outdir defaults to runs/<config name>. Returns 0, or 2 after printing a usage line.
typedef struct {
    const char *config, *resume;
    int64_t steps;  // 0: the config's
    char outdir[900];
} vkd_run_args;
int vkd_run_parse_args(vkd_run_args *a, const char *verb, int argc, char **argv);

struct vkd_ckpt;
// --resume: "auto" (the run folder's newest checkpoint, if any) or a path. Loads
// the checkpoint after comparing the metadata pairs in match; sets *start and
// *skipped from it (0 when there is nothing to resume).
int vkd_run_resume(vkd_run *r, struct vkd_ckpt *ck, const char *resume, const char *const *match, int nmatch,
                   int64_t *start, int64_t *skipped, char *err, size_t errlen);
// checkpoints/ckpt-<step>.safetensors with the step and skipped-step count in its metadata.
int vkd_run_checkpoint(vkd_run *r, struct vkd_ckpt *ck, int64_t step, int64_t skipped, char *err, size_t errlen);

// report.html: a chart per metric and every sample image (see report.c).
int vkd_run_write_report(const vkd_run *r, const char *title, char *err, size_t errlen);

// A config's "dataset" object: source, split, resolution, channels, pad_to, flip, max_images.
typedef struct {
    char source[1024], split[16];
    int resolution, channels, pad_to, flip;
    int64_t max_images;
} vkd_run_dataset_cfg;
struct vkd_cfg;
struct vkd_model;
struct vkd_dataset;
void vkd_run_dataset_parse(struct vkd_cfg *d, const char *config_path, vkd_run_dataset_cfg *out);
// Opens the dataset and refuses, before any training, images that do not match
// the model's samples or classes that do not match its label_dim.
struct vkd_dataset *vkd_run_dataset_open(const vkd_run_dataset_cfg *c, const struct vkd_model *m, const char *model_path,
                                         char *err, size_t errlen);

// The directory of a file path (for config-relative paths).
void vkd_dirname(const char *path, char *out, size_t n);
// Resolves a path given in a config: absolute, or relative to the config's folder, else to the working directory.
void vkd_resolve_path(const char *config_path, const char *p, char *out, size_t n);

#endif
