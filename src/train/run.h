#ifndef VKD_TRAIN_RUN_H
#define VKD_TRAIN_RUN_H
// Run folders: <out>/config.json (the resolved config), metrics.jsonl,
// checkpoints/ckpt-<step>.safetensors, samples/, report.html.
// Nothing is created or written until vkd_run_start: a resume that is refused
// (another config, a corrupt file) leaves the folder exactly as it was.
#include <stdint.h>
#include <stdio.h>

typedef struct {
    char dir[900];
    FILE *metrics;
} vkd_run;

void vkd_run_init(vkd_run *r, const char *dir);
void vkd_run_close(vkd_run *r);
void vkd_run_path(const vkd_run *r, char *out, size_t n, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
// The newest complete checkpoint (0 if none), its path in out. Only names of the
// exact form ckpt-<8 digits>.safetensors count: a ckpt-N.safetensors.tmp left
// by a crash mid-write is never picked up.
int64_t vkd_run_latest_checkpoint(const vkd_run *r, char *out, size_t n);
// Creates the folders and writes config.json; metrics.jsonl is opened for
// appending after dropping every line past `resumed_step` (those steps run again).
int vkd_run_start(vkd_run *r, const char *config_text, int64_t resumed_step, char *err, size_t errlen);
// Appends one JSON object (without braces: "\"step\":1,\"loss\":0.5") as a line.
void vkd_run_metrics(vkd_run *r, const char *fields);
// checkpoints/ckpt-<step>.safetensors with the step and skipped-step count in its metadata.
struct vkd_ckpt;
int vkd_run_checkpoint(vkd_run *r, struct vkd_ckpt *ck, int64_t step, int64_t skipped, char *err, size_t errlen);
// report.html: a chart per metric and every sample image (report.c).
int vkd_run_write_report(const vkd_run *r, const char *title, char *err, size_t errlen);

// vkd_train_interrupted agreed on by every rank (a collective under mpirun).
int vkd_train_interrupted_all(void);

// Test hook: VKD_DEBUG_KILL=<point>:<step> makes the process SIGKILL itself at a
// named point of that step ("step", "ckpt", "sample"), so tests can crash a run
// at a chosen place and check that --resume auto continues exactly.
void vkd_debug_kill_point(const char *point, int64_t step);

#endif
