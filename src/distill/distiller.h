#ifndef VKD_DISTILL_DISTILLER_H
#define VKD_DISTILL_DISTILLER_H
// The distiller's state, shared by distiller.c (networks, phases, stepping)
// and distiller_train.c (its hooks for the training loop).
#include "dist/grads.h"
#include "vkdistill/distill.h"

struct vkd_distiller {
    vkd_distiller_cfg c;
    vkd_ctx *ctx;
    char student_path[1024];
    char *student_text, *config_text;
    vkd_model *tm, *G, *F, *Fv, *E;  // teacher (network), generator, fake score, its frozen view, G's EMA
    vkd_gmm *gmm;                    // or an exact mixture teacher
    vkd_denoiser teacher, dG, dF, dFv, dE;
    int gnd, K;                      // sample ndim (1 vector, 3 image), label_dim
    int64_t gs[3], dim;              // sample shape, elements per sample
    vkd_tensor **pg, **pe;           // G's parameters and their EMA twins
    int np;
    vkd_adam *opt_g, *opt_f;
    vkd_graph *gg[VKD_MAX_STUDENT_STEPS], *gf[VKD_MAX_STUDENT_STEPS];  // generator / fake phase per student step
    // Data parallel (more than one rank): b of the global batch's rows from row0
    // on; each phase is split into its forward + backward (gga / gfa, ending with
    // the gradients in staging) and its optimizer part (gg / gf), with the
    // gradient allreduce between them.
    int b, row0, ranks;
    vkd_graph *gga[VKD_MAX_STUDENT_STEPS], *gfa[VKD_MAX_STUDENT_STEPS];
    vkd_grad_sync *sync_g, *sync_f;
    // The optimizers sharded over the ranks (dist/grads.h): after each phase's update, the
    // other ranks' shares of F's / G's weights in (and then G's EMA over all of them).
    vkd_graph *gfu, *ggu;
    vkd_tensor *step_t, *labels, *loss_gh, *loss_fh;
    vkd_tensor *ema_beta_t;  // the EMA's beta per step when it ramps up (else NULL: a constant)
    vkd_gan_head *head, *head_v;
    vkd_dataset *ds;
    vkd_tensor *real_x, *real_l, *gan_gh, *gan_fh;
    vkd_graph *sg;                   // fixed-noise EMA samples
    vkd_tensor *s_out, *s_labels;
    int s_n;
    float *ref, *pts;                // GMM teacher: exact samples, the student's
    int *comp;
    vkd_ckpt *ck;
    const char *match[4];
    vkd_distill_stats last;
    char err[2600];
};

int vkd_distiller_warmup_range(vkd_distiller *d, int64_t w0, int64_t w1);
int vkd_distiller_scatter_png(vkd_distiller *d, const char *path, char *err, size_t errlen);

#endif
