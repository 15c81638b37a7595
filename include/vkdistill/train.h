#ifndef VKDISTILL_TRAIN_H
#define VKDISTILL_TRAIN_H
// The one training loop (src/train) and the trainers it drives.
//
// vkd_train() owns everything that is the same for every kind of training:
// the run folder (config.json, metrics.jsonl, checkpoints/, samples/,
// report.html), the step loop, the progress bar, log / evaluation /
// checkpoint cadence, atomic checkpoints, exact resume, Ctrl-C, and the
// accounting of steps the NaN guard skipped. What differs (networks, recorded
// phases, metrics, samples, the final artifact) is supplied by a
// vkd_trainable: teacher training (below), distillation (distill.h) and the
// FD classifier (below) each provide one.
#include "vkdistill/checkpoint.h"
#include "vkdistill/data.h"
#include "vkdistill/diffusion.h"

#ifdef __cplusplus
extern "C" {
#endif

// ---------------------------------------------------------------- the loop
typedef struct {
    const char *out_dir;      // the run folder
    const char *resume;       // NULL (fresh run), "auto" (the newest checkpoint, if any) or a checkpoint path
    const char *init_from;    // a fresh run starts from this checkpoint of another run (its step, weights and
                              // optimizer state) under this run's config; NULL: from the initial weights
    const char *config_text;  // written to config.json once the run starts (a refused resume writes nothing)
    const char *title;        // progress bar and report.html
    int64_t steps;            // the run ends after this step
    int batch;                // samples per step: rates, kimg
    int log_every;            // a metrics.jsonl line (and the final step); >= 1
    int eval_every;           // sample grids / evaluation (and the final step); 0 = never
    int ckpt_every;           // 0 = only at the end; capped to a quarter of the run so a crash never loses it all
    double ckpt_seconds;      // also checkpoint when this much wall time passed since the last one (0 = never)
    int max_bad_steps;        // stop after this many non-finite steps in a row (0 = 100)
    int quiet;                // no progress bar or log lines
    const char *banner;       // printed once the run folder is accepted (what is about to run), or NULL
} vkd_train_opts;
vkd_train_opts vkd_train_opts_default(void);

// Where the loop is; handed to every hook.
typedef struct {
    int64_t step;     // the step being run (1-based in step(); the last completed one elsewhere)
    int64_t skipped;  // steps the NaN guard skipped so far (restored on resume)
    const char *run_dir;
} vkd_train_state;

// What the loop drives. Every hook but step and checkpoint may be NULL.
typedef struct {
    // The tensors of a checkpoint, its "kind" and the metadata that a resume
    // must match (key, value pairs); called once before the run starts.
    vkd_ckpt *(*checkpoint)(void *self, const char *const **match, int *nmatch);
    // Before the first step of this process: warm-ups, reference samples. start
    // is the step the run resumes from (0: a fresh run).
    int (*begin)(void *self, const vkd_train_state *s, char *err, size_t errlen);
    // One training iteration. *bad = 1 when the device skipped it (non-finite
    // loss or gradient); status: a few words for the progress bar ("loss 0.12").
    int (*step)(void *self, const vkd_train_state *s, int *bad, char *status, size_t n, char *err, size_t errlen);
    // Metrics of the last step as JSON fields without braces ("\"loss\":0.5").
    int (*metrics)(void *self, const vkd_train_state *s, char *fields, size_t n, char *err, size_t errlen);
    // Samples / evaluation into run_dir/samples; may add metric fields (or leave fields empty).
    int (*evaluate)(void *self, const vkd_train_state *s, char *fields, size_t n, char *err, size_t errlen);
    // After the last step: the trained network in the run folder.
    int (*finish)(void *self, const vkd_train_state *s, char *err, size_t errlen);
    // Several ranks: called on every rank before a checkpoint is written, to make whole on
    // rank 0 what the ranks hold in shares (a sharded optimizer's moments).
    int (*gather)(void *self, char *err, size_t errlen);
} vkd_trainable;

enum { VKD_TRAIN_DONE = 0, VKD_TRAIN_ERROR = 1, VKD_TRAIN_INTERRUPTED = 130 };
// Runs (or resumes) a training to opts->steps. Returns VKD_TRAIN_DONE,
// VKD_TRAIN_INTERRUPTED (Ctrl-C / SIGTERM: a checkpoint was saved) or
// VKD_TRAIN_ERROR with one line in err; nothing written before is damaged.
int vkd_train(const vkd_train_opts *opts, const vkd_trainable *t, void *self, char *err, size_t errlen);
// Ctrl-C / SIGTERM: the first sets a flag the loop checks; a second one kills.
void vkd_train_catch_signals(void);
int vkd_train_interrupted(void);

// Adds Adam's first and second moments under prefix_m / prefix_v + the parameter's name.
void vkd_ckpt_add_adam(vkd_ckpt *ck, const char *prefix_m, const char *prefix_v, vkd_adam *opt);

// ---------------------------------------------------------------- datasets in configs
// A config's "dataset" object: source, split, resolution, channels, pad_to, flip, max_images.
typedef struct {
    char source[1024], split[16];
    int resolution, channels, pad_to, flip;
    int64_t max_images;
} vkd_dataset_cfg;
// Opens the dataset and refuses, before any training, images that do not match
// the model's samples or classes that do not match its label_dim.
vkd_dataset *vkd_dataset_cfg_open(const vkd_dataset_cfg *c, const vkd_model *m, const char *model_path, char *err,
                                  size_t errlen);
// A dataset fitted to (channels, res, res): smaller images padded, larger resized.
vkd_dataset *vkd_dataset_open_fitted(const char *source, const char *split, int channels, int res, int64_t max_images,
                                     char *err, size_t errlen);

// n samples of a denoiser (labels i % K, Heun with `steps` steps) as a PNG grid.
int vkd_sample_grid_png(const vkd_denoiser *den, int n, int steps, double guidance, uint64_t seed, const char *path,
                        char *err, size_t errlen);

// ---------------------------------------------------------------- EDM teacher training
typedef struct {
    char model[1024];  // model config (JSON)
    vkd_dataset_cfg data;
    int batch;
    int64_t steps;
    double lr, warmup, beta1, beta2, eps, weight_decay, grad_clip, ema_halflife_kimg, p_mean, p_std, label_dropout;
    int seed, log_every, sample_every, ckpt_every, sample_n, sample_steps;
    double guidance;
} vkd_teacher_cfg;
void vkd_teacher_cfg_init(vkd_teacher_cfg *c);  // EDM's defaults; model and data.source left empty
// Reads a train-teacher JSON config (strict: unknown fields are errors); relative paths resolve against its folder.
int vkd_teacher_cfg_load(const char *path, vkd_teacher_cfg *c, char *err, size_t errlen);

typedef struct vkd_teacher_trainer vkd_teacher_trainer;
vkd_teacher_trainer *vkd_teacher_trainer_new(vkd_ctx *ctx, const vkd_teacher_cfg *c, char *err, size_t errlen);
void vkd_teacher_trainer_free(vkd_teacher_trainer *t);
const vkd_trainable *vkd_teacher_trainable(void);  // drive it with vkd_train(opts, that, trainer, ...)
vkd_train_opts vkd_teacher_train_opts(const vkd_teacher_cfg *c);  // steps, batch, cadence from the config
int vkd_teacher_step(vkd_teacher_trainer *t, int64_t step, float *loss);  // one step without a run folder
vkd_model *vkd_teacher_ema(vkd_teacher_trainer *t);
vkd_graph *vkd_teacher_graph(vkd_teacher_trainer *t);  // the recorded step (benchmarks, profiles)

// ---------------------------------------------------------------- the FD feature classifier
typedef struct {
    char model[1024], data[1024];
    int epochs, batch, seed, flip;
    int64_t max_images;
    double lr;
    char dtype[8];  // of the written weights: F16, BF16, F32
} vkd_classifier_cfg;
void vkd_classifier_cfg_init(vkd_classifier_cfg *c);
typedef struct vkd_classifier_trainer vkd_classifier_trainer;
vkd_classifier_trainer *vkd_classifier_trainer_new(vkd_ctx *ctx, const vkd_classifier_cfg *c, char *err, size_t errlen);
void vkd_classifier_trainer_free(vkd_classifier_trainer *t);
const vkd_trainable *vkd_classifier_trainable(void);
vkd_train_opts vkd_classifier_train_opts(const vkd_classifier_trainer *t);  // an evaluation per epoch

#ifdef __cplusplus
}
#endif
#endif
