// The recorded graph: replay equals re-recording bit for bit, frozen tensors
// get no gradient work, input gradients flow through frozen networks, the
// memory plan shares activation memory, barriers only where needed, and
// graph-building errors are reported with a clear message.
#include "core/graph.h"
#include "harness.h"
#include "ref_ops.h"

enum { B = 32, D = 8, H = 32, STEPS = 100 };

typedef struct {
    vkd_tensor *w1, *b1, *ln_w, *w2, *b2;
    vkd_tensor *p[5];
    vkd_adam *opt;
} mlp;

static void mlp_init(vkd_ctx *ctx, mlp *m) {
    double w1[H * D], w2[D * H], ones[H], zeros[H] = {0};
    t_fill(w1, H * D, -0.35, 0.35);
    t_fill(w2, D * H, -0.18, 0.18);
    for (int i = 0; i < H; i++) ones[i] = 1;
    m->w1 = t_tensor(ctx, "w1", 2, (int64_t[]){H, D}, w1, VKD_PARAM);
    m->b1 = t_tensor(ctx, "b1", 1, (int64_t[]){H}, zeros, VKD_PARAM);
    m->ln_w = t_tensor(ctx, "ln_w", 1, (int64_t[]){H}, ones, VKD_PARAM);
    m->w2 = t_tensor(ctx, "w2", 2, (int64_t[]){D, H}, w2, VKD_PARAM);
    m->b2 = t_tensor(ctx, "b2", 1, (int64_t[]){D}, zeros, VKD_PARAM);
    vkd_tensor *p[5] = {m->w1, m->b1, m->ln_w, m->w2, m->b2};
    memcpy(m->p, p, sizeof p);
    vkd_adam_cfg cfg = {.beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.01f, .decoupled = 1};
    m->opt = vkd_adam_new(ctx, m->p, 5, &cfg);
}

// One training step: x ~ N(0, I) drawn on the device for this step; target
// t = x @ teacher^T (a frozen linear map); loss = mse(mlp(x), t); AdamW.
static vkd_tensor *record_step(vkd_graph *g, mlp *m, vkd_tensor *teacher, vkd_tensor *step) {
    vkd_tensor *x = vkd_rand_normal(g, 2, (int64_t[]){B, D}, 42, 0, step);
    vkd_tensor *t = vkd_linear(g, x, teacher, NULL);
    vkd_tensor *h = vkd_gelu(g, vkd_linear(g, x, m->w1, m->b1));
    h = vkd_silu(g, vkd_layernorm(g, h, m->ln_w, NULL, 1e-5f));
    vkd_tensor *y = vkd_add(g, vkd_linear(g, h, m->w2, m->b2), x);
    vkd_tensor *loss = vkd_mse(g, y, t);
    vkd_graph_keep(g, loss);
    vkd_graph_backward(g, loss);
    vkd_adam_record(g, m->opt);
    return loss;
}

static void set_step(vkd_tensor *step, mlp *m, int s) {
    ((uint32_t *)vkd_tensor_map(step))[0] = (uint32_t)s;
    vkd_adam_set_step(m->opt, 3e-3f, s);
}

static void test_replay_equals_rerecord(vkd_ctx *ctx) {
    double tw[D * D];
    t_fill(tw, D * D, -0.5, 0.5);
    vkd_tensor *teacher = t_tensor(ctx, "teacher", 2, (int64_t[]){D, D}, tw, 0);  // frozen
    unsigned long long seed = t_rng;
    mlp a, b;
    mlp_init(ctx, &a);
    t_rng = seed;
    mlp_init(ctx, &b);
    int64_t one = 1;
    vkd_tensor *step = vkd_tensor_new(ctx, "step", 1, &one, VKD_HOST);
    float la[STEPS], lb[STEPS];

    vkd_graph *g = vkd_graph_new(ctx, "train_step");
    vkd_tensor *loss = record_step(g, &a, teacher, step);
    CHECK(vkd_graph_compile(g) == 0, "compile: %s", vkd_graph_error(g));
    for (int s = 1; s <= STEPS; s++) {
        set_step(step, &a, s);
        vkd_graph_run(g);
        vkd_tensor_download(loss, &la[s - 1]);
    }
    printf("replayed: %d dispatches, %d barriers, %.1f KiB of activations\n", g->ndisp, g->nbarriers,
           vkd_graph_arena_bytes(g) / 1024.0);
    CHECK(g->nbarriers < g->ndisp, "barriers only where needed (%d barriers for %d dispatches)", g->nbarriers, g->ndisp);
    vkd_graph_free(g);

    // The re-recorded graphs also split their activations over several small
    // arenas (as a device's allocation cap forces on large batches).
    int arenas = 0;
    for (int s = 1; s <= STEPS; s++) {
        vkd_graph *g2 = vkd_graph_new(ctx, "train_step_rerecorded");
        vkd_graph_set_arena_limit(g2, 3 * B * H * 4);
        vkd_tensor *l2 = record_step(g2, &b, teacher, step);
        set_step(step, &b, s);
        CHECK(vkd_graph_run(g2) == 0, "run: %s", vkd_graph_error(g2));
        vkd_tensor_download(l2, &lb[s - 1]);
        arenas = vkd_graph_arena_count(g2);
        vkd_graph_free(g2);
    }
    printf("re-recorded with activations in %d arenas of at most %d KiB\n", arenas, 3 * B * H * 4 / 1024);
    CHECK(arenas > 1, "a %d-byte arena limit still gave %d arena", 3 * B * H * 4, arenas);
    CHECK(memcmp(la, lb, sizeof la) == 0, "the replayed loss curve differs from the re-recorded one");
    int params_equal = 1;
    for (int i = 0; i < 5; i++) {
        long n = (long)vkd_tensor_numel(a.p[i]);
        float *pa = malloc(n * 4), *pb = malloc(n * 4);
        vkd_tensor_download(a.p[i], pa);
        vkd_tensor_download(b.p[i], pb);
        params_equal &= memcmp(pa, pb, n * 4) == 0;
        free(pa), free(pb);
    }
    CHECK(params_equal, "parameters after %d steps differ between replay and re-recording", STEPS);
    printf("loss: step 1 %.5f, step 50 %.5f, step 100 %.5f (replay == re-record bit for bit: %s)\n", la[0], la[49],
           la[99], memcmp(la, lb, sizeof la) == 0 ? "yes" : "no");
    CHECK(la[99] < 0.25f * la[0], "training did not reduce the loss: %g -> %g", la[0], la[99]);
    vkd_tensor_free(teacher);
    vkd_tensor_free(step);
}

// Frozen weights: no gradient buffer, no gradient dispatch; the input gradient
// still flows through them (what SiD and SiM need from the teacher).
static void test_frozen(vkd_ctx *ctx) {
    enum { N = 4, IN = 6, OUT = 5 };
    double x[N * IN], w[OUT * IN], dx[N * IN], up[N * OUT];
    t_fill(x, N * IN, -1, 1);
    t_fill(w, OUT * IN, -1, 1);
    vkd_tensor *X = t_tensor(ctx, "x", 2, (int64_t[]){N, IN}, x, 0);
    vkd_tensor_set_requires_grad(X, 1);
    vkd_tensor *Wf = t_tensor(ctx, "w_frozen", 2, (int64_t[]){OUT, IN}, w, 0);
    vkd_tensor *Wt = t_tensor(ctx, "w_trainable", 2, (int64_t[]){OUT, IN}, w, VKD_PARAM);
    CHECK(vkd_tensor_grad(Wf) == NULL, "a frozen tensor has a gradient buffer");
    int counts[2];
    for (int k = 0; k < 2; k++) {
        vkd_graph *g = vkd_graph_new(ctx, "frozen");
        vkd_tensor *y = vkd_linear(g, X, k ? Wt : Wf, NULL);
        t_rng = 77;
        t_fill(up, N * OUT, -1, 1);
        vkd_tensor *U = t_tensor(ctx, "up", 2, (int64_t[]){N, OUT}, up, 0);
        vkd_graph_backward(g, vkd_sum(g, vkd_mul(g, y, U), 0));
        CHECK(vkd_graph_run(g) == 0, "run: %s", vkd_graph_error(g));
        counts[k] = vkd_graph_dispatch_count(g);
        ref_matmul_bwd(dx, NULL, NULL, up, x, w, 1, N, OUT, IN, 0, 1, 0, 0);
        double *got = t_download(vkd_graph_grad(g, X));
        double e = t_relerr(got, dx, N * IN);
        CHECK(e < 1e-5, "input gradient through %s weights: error %g", k ? "trainable" : "frozen", e);
        free(got);
        if (!k) CHECK(vkd_graph_grad(g, Wf) == NULL, "a frozen weight received a gradient");
        vkd_graph_free(g);
        vkd_tensor_free(U);
    }
    CHECK(counts[0] < counts[1], "frozen weights still cost gradient dispatches (%d vs %d)", counts[0], counts[1]);
    printf("frozen: %d dispatches, trainable: %d; input gradient through frozen weights matches the reference\n",
           counts[0], counts[1]);
    vkd_tensor_free(X);
    vkd_tensor_free(Wf);
    vkd_tensor_free(Wt);
}

// A chain of 20 same-size activations needs only a few buffers at once.
static void test_memory_plan(vkd_ctx *ctx) {
    enum { N = 4096, L = 20 };
    double x[N];
    t_fill(x, N, -1, 1);
    vkd_tensor *X = t_tensor(ctx, "x", 1, (int64_t[]){N}, x, 0);
    vkd_graph *g = vkd_graph_new(ctx, "chain");
    vkd_tensor *h = X;
    for (int i = 0; i < L; i++) h = vkd_scale(g, vkd_silu(g, h), 1.01f);
    vkd_graph_keep(g, h);
    CHECK(vkd_graph_run(g) == 0, "run: %s", vkd_graph_error(g));
    uint64_t naive = 2ull * L * N * 4;
    printf("memory plan: %d activations of %d KiB in %llu KiB (naive %llu KiB)\n", 2 * L, N * 4 / 1024,
           (unsigned long long)vkd_graph_arena_bytes(g) / 1024, (unsigned long long)naive / 1024);
    CHECK(vkd_graph_arena_bytes(g) <= 2ull * N * 4, "chain of %d activations uses %llu bytes", 2 * L,
          (unsigned long long)vkd_graph_arena_bytes(g));
    // and the result is still right
    double *got = t_download(h), ref[N];
    for (int i = 0; i < N; i++) {
        double v = x[i];
        for (int k = 0; k < L; k++) v = 1.01 * (v / (1 + exp(-v)));
        ref[i] = v;
    }
    CHECK(t_relerr(got, ref, N) < 1e-5, "chain result wrong after memory sharing");
    free(got);
    vkd_graph_free(g);
    vkd_tensor_free(X);
}

// Copy nodes between dispatches (what slices and concats record on a CPU device): a shader
// writes, a copy reads it and writes rows, a shader reads those; replayed with new inputs.
// The validation layer's synchronization checks see each hazard in both directions, and the
// memory plan may reuse the copied-from buffer for the last write (a read-then-write hazard).
static void test_copy_nodes(vkd_ctx *ctx) {
    enum { R = 4, C = 6, LO = 2, LEN = 3 };
    double x[R * C];
    vkd_tensor *X = vkd_tensor_new(ctx, "x", 2, (int64_t[]){R, C}, 0);
    vkd_graph *g = vkd_graph_new(ctx, "copies");
    vkd_tensor *y1 = vkd_scale(g, X, 2.0f), *c = vkd_graph_tensor(g, "cols", 2, (int64_t[]){R, LEN});
    vkd_copy_rows rows = {.rows = R, .len = LEN, .dst_stride = LEN, .src_off = LO, .src_stride = C};
    CHECK(vkd_graph_copy(g, "cols", c, 1, &y1, &rows) == 0, "copy: %s", vkd_graph_error(g));
    vkd_tensor *y2 = vkd_scale(g, c, 3.0f);
    vkd_graph_keep(g, y2);
    for (int run = 0; run < 3; run++) {
        t_fill(x, R * C, -1 - run, 1 + run);
        float xf[R * C];
        for (int i = 0; i < R * C; i++) xf[i] = (float)x[i];
        vkd_tensor_upload(X, xf);
        CHECK(vkd_graph_run(g) == 0, "run: %s", vkd_graph_error(g));
        double *got = t_download(y2), ref[R * LEN];
        for (int r = 0; r < R; r++)
            for (int j = 0; j < LEN; j++) ref[r * LEN + j] = 6.0 * (float)x[r * C + LO + j];
        CHECK(t_relerr(got, ref, R * LEN) < 1e-6, "copy node, run %d: wrong rows", run);
        free(got);
    }
    printf("copy nodes: %d nodes, %d barriers, 3 replays right\n", g->ndisp, g->nbarriers);
    vkd_graph_free(g);
    // a copy past the end of a tensor is refused
    g = vkd_graph_new(ctx, "copy_error");
    y1 = vkd_scale(g, X, 1.0f), c = vkd_graph_tensor(g, "cols", 2, (int64_t[]){R, LEN});
    rows.src_off = C - 1;
    CHECK(vkd_graph_copy(g, "cols", c, 1, &y1, &rows) != 0 && strstr(vkd_graph_error(g), "outside"),
          "a copy past the end: %s", vkd_graph_error(g));
    vkd_graph_free(g);
    vkd_tensor_free(X);
}

static void test_errors(vkd_ctx *ctx) {
    vkd_tensor *a = vkd_tensor_new(ctx, "a", 2, (int64_t[]){3, 4}, 0);
    vkd_tensor *b = vkd_tensor_new(ctx, "b", 2, (int64_t[]){5, 6}, 0);
    vkd_graph *g = vkd_graph_new(ctx, "errors");
    CHECK(vkd_matmul(g, a, b, 0, 0) == NULL, "mismatched matmul accepted");
    CHECK(strstr(vkd_graph_error(g), "(3,4)") && strstr(vkd_graph_error(g), "(5,6)"), "error names the shapes: %s",
          vkd_graph_error(g));
    CHECK(vkd_add(g, a, a) == NULL, "ops after an error must return NULL");
    CHECK(vkd_graph_compile(g) != 0, "a failed graph compiled");
    vkd_graph_free(g);

    g = vkd_graph_new(ctx, "errors2");
    CHECK(vkd_add(g, a, b) == NULL && strstr(vkd_graph_error(g), "broadcast"), "bad broadcast: %s", vkd_graph_error(g));
    vkd_graph_free(g);

    g = vkd_graph_new(ctx, "errors3");
    vkd_tensor *y = vkd_scale(g, a, 2.0f);
    CHECK(vkd_graph_backward(g, y) != 0 && strstr(vkd_graph_error(g), "scalar"), "non-scalar loss: %s",
          vkd_graph_error(g));
    vkd_graph_free(g);

    g = vkd_graph_new(ctx, "errors_arena");
    vkd_graph_set_arena_limit(g, 4096);
    vkd_graph_keep(g, vkd_full(g, 2, (int64_t[]){64, 64}, 1.0f));  // 16 KiB
    CHECK(vkd_graph_compile(g) != 0 && strstr(vkd_graph_error(g), "more than one allocation may hold"),
          "an activation over the allocation cap: %s", vkd_graph_error(g));
    vkd_graph_free(g);

    g = vkd_graph_new(ctx, "errors4");
    vkd_scale(g, a, 2.0f);
    vkd_graph_compile(g);
    CHECK(vkd_scale(g, a, 2.0f) == NULL && strstr(vkd_graph_error(g), "compiled"), "op after compile: %s",
          vkd_graph_error(g));
    vkd_graph_free(g);
    int64_t huge = 1ll << 40;
    CHECK(vkd_tensor_new(ctx, "huge", 1, &huge, 0) == NULL && strstr(vkd_ctx_error(ctx), "huge"),
          "a 4 TiB tensor: %s", vkd_ctx_error(ctx));
    printf("errors: %s\n", vkd_ctx_error(ctx));
    vkd_tensor_free(a);
    vkd_tensor_free(b);
}

// VKD_PROFILE: per-op times from the runs after the first (the first alone while there is no
// other), and at level 2 one line per dispatch in recorded order, copies included, with its
// pipeline's creation time, and the graph's pipelines' creation summed.
static void test_profile(vkd_ctx *ctx) {
    if (!ctx->f.timestamp_bits) {
        printf("profile: the device has no timestamps, skipped\n");
        return;
    }
    setenv("VKD_PROFILE", "2", 1);
    vkd_tensor *X = vkd_tensor_new(ctx, "x", 2, (int64_t[]){4, 6}, 0);
    vkd_graph *g = vkd_graph_new(ctx, "profiled");
    vkd_tensor *a = vkd_scale(g, X, 2.0f), *c = vkd_graph_tensor(g, "cols", 2, (int64_t[]){4, 3});
    vkd_copy_rows rows = {.rows = 4, .len = 3, .dst_stride = 3, .src_off = 2, .src_stride = 6};
    CHECK(vkd_graph_copy(g, "cols", c, 1, &a, &rows) == 0, "copy: %s", vkd_graph_error(g));
    vkd_graph_keep(g, vkd_exp(g, c));
    CHECK(vkd_graph_compile(g) == 0, "compile: %s", vkd_graph_error(g));
    unsetenv("VKD_PROFILE");  // read when the graph compiles
    if (!g->prof_ns) {
        CHECK(0, "VKD_PROFILE=2: the graph has no profile");
        vkd_graph_free(g), vkd_tensor_free(X);
        return;
    }
    CHECK(vkd_graph_run(g) == 0, "run: %s", vkd_graph_error(g));
    vkd_op_time t[8];
    int n = vkd_graph_op_times(g, t, 8);
    CHECK(n == 3, "profile after one run: %d ops, expected 3 (scale, cols, exp)", n);
    double first = 0;
    for (int i = 0; i < g->ndisp; i++) first += g->prof_first[i];
    CHECK(first > 0 && vkd_graph_dispatch_ns(g, 0) == g->prof_first[0], "one run: its times are the profile's");
    for (int r = 0; r < 3; r++) CHECK(vkd_graph_run(g) == 0, "run: %s", vkd_graph_error(g));
    CHECK(g->prof_runs == 4 && vkd_graph_dispatch_ns(g, 2) == g->prof_ns[2] / 3, "later runs: the mean of the three");
    FILE *f = tmpfile();
    vkd_graph_print_profile(g, f);
    rewind(f);
    char line[512];
    int listed = 0, header = 0, used = 0, per_pipeline = 0, first_ok = 1;
    double create_sum = 0, pipelines_ms = -1, per_pipeline_ms = 0, last_ms = 1e30;
    static const char *want[3][2] = {{"scale", "unary"}, {"cols", "copy"}, {"exp", "unary"}};
    while (fgets(line, sizeof line, f)) {
        header += strstr(line, "mean of 3 runs after the first") != NULL;
        if (sscanf(line, "vkdistill pipelines: graph 'profiled' uses %d, created in %lf ms", &used, &pipelines_ms) == 2)
            continue;
        int i;
        char op[64], shader[64], create[64];
        double pms;
        // a line a pipeline, costliest first, naming the first dispatch that uses it (0 or 2)
        if (sscanf(line, "vkdistill pipeline: %63s %lf ms, first used by dispatch %d, specialized", shader, &pms, &i) == 3) {
            first_ok &= !strncmp(shader, "unary", 5) && (i == 0 || i == 2) && pms <= last_ms;
            per_pipeline++, per_pipeline_ms += pms, last_ms = pms;
            continue;
        }
        if (sscanf(line, " %d %63s %63s %*s %*s %*f %63s", &i, op, shader, create) != 4 || i < 0 || i >= 3) continue;
        CHECK(i == listed && !strcmp(op, want[i][0]) && !strncmp(shader, want[i][1], strlen(want[i][1])),
              "dispatch line %d: '%s %s', expected '%s %s...'", i, op, shader, want[i][0], want[i][1]);
        // a copy has no pipeline; a shader's creation time is a number of ms (it may print as
        // 0.0 where a driver's cache answers in microseconds)
        char *end;
        double ms = strtod(create, &end);
        CHECK(i == 1 ? !strcmp(create, "-") : *end == 0 && ms >= 0, "dispatch line %d: creation '%s'", i, create);
        if (i != 1) create_sum += ms;
        listed++;
    }
    fclose(f);
    CHECK(header == 1 && listed == 3, "profile listing: header %d, %d of 3 dispatches listed", header, listed);
    // scale and exp: one pipeline or two (the same shader, maybe other constants). The two
    // dispatch lines and the total are each rounded to 0.1 ms: up to 0.15 ms apart.
    CHECK((used == 1 || used == 2) && pipelines_ms >= 0 && pipelines_ms <= create_sum + 0.16,
          "pipelines line: %d used, %.2f ms (dispatch lines sum to %.2f)", used, pipelines_ms, create_sum);
    CHECK(per_pipeline == used && first_ok && per_pipeline_ms <= pipelines_ms + 0.1 * used &&
              per_pipeline_ms >= pipelines_ms - 0.1 * used,
          "pipeline lines: %d for %d pipelines (unary, first used by dispatch 0 or 2, costliest first: %d), "
          "%.2f ms against %.2f",
          per_pipeline, used, first_ok, per_pipeline_ms, pipelines_ms);
    printf("profile: 3 ops, the first run apart, 3 dispatches listed at VKD_PROFILE=2 with %d pipeline(s), %.1f ms to create\n",
           used, pipelines_ms);
    vkd_graph_free(g);
    vkd_tensor_free(X);
}

// lavapipe's threads for a rank of several on one node (src/vk/context.c): its share of the
// node's CPUs, at most those it is bound to, and a rank of one CPU runs its dispatches itself (0).
static void test_cpu_threads_per_rank(void) {
    static const int cases[][4] = {
        // affinity CPUs, online CPUs, ranks on the node, expected
        {2, 2, 1, -1},  // one rank: lavapipe's default
        {1, 2, 2, 0},   // mpirun's default binding (a core each)
        {2, 2, 2, 0},   // --bind-to none: half of 2 CPUs
        {8, 8, 2, 4},   // --bind-to none on 8 CPUs
        {8, 8, 3, 2},   // 8 / 3
        {4, 16, 4, 4},  // bound to 4 CPUs (--map-by ... PE=4)
        {8, 16, 4, 4},  // bound to a socket of 8 that another rank shares (mpirun's default for > 2)
        {4, 16, 2, 4},  // bound to 4 CPUs, 8 each would be its share
        {1, 16, 16, 0}, // a rank a core
        {0, 4, 8, 0},   // affinity unknown, more ranks than CPUs
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int got = vkd_cpu_threads_per_rank(cases[i][0], cases[i][1], cases[i][2]);
        CHECK(got == cases[i][3], "threads for a rank bound to %d of %d CPUs, %d ranks: %d, expected %d", cases[i][0],
              cases[i][1], cases[i][2], got, cases[i][3]);
    }
}

// The lane groups' exchange by driver (src/vk/context.c): broadcasts on llvmpipe of Mesa 23 and
// later except at 8 lanes (where its shuffle is a permute too), shuffles everywhere else;
// VKD_LANE_BCAST overrides either way.
static void test_lane_bcast_rule(void) {
    static const struct { VkDriverId id; const char *info; uint32_t lanes; const char *env; int want; } cases[] = {
        {VK_DRIVER_ID_MESA_LLVMPIPE, "Mesa 22.3.6 (LLVM 15.0.6)", 16, NULL, 0},
        {VK_DRIVER_ID_MESA_LLVMPIPE, "Mesa 25.0.7-2~bpo12+1 (LLVM 15.0.6)", 16, NULL, 1},
        {VK_DRIVER_ID_MESA_LLVMPIPE, "Mesa 25.0.7-2~bpo12+1 (LLVM 15.0.6)", 8, NULL, 0},
        {VK_DRIVER_ID_MESA_LLVMPIPE, "Mesa 23.0.0 (LLVM 15.0.6)", 4, NULL, 1},
        {VK_DRIVER_ID_MESA_LLVMPIPE, "no release named", 16, NULL, 0},
        {VK_DRIVER_ID_NVIDIA_PROPRIETARY, "550.54", 32, NULL, 0},
        {VK_DRIVER_ID_MESA_RADV, "Mesa 25.0.7", 64, NULL, 0},
        {VK_DRIVER_ID_MESA_LLVMPIPE, "Mesa 25.0.7 (LLVM 15.0.6)", 16, "0", 0},
        {VK_DRIVER_ID_NVIDIA_PROPRIETARY, "550.54", 32, "1", 1},
    };
    char *keep = getenv("VKD_LANE_BCAST") ? strdup(getenv("VKD_LANE_BCAST")) : NULL;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        vkd_features f = {.driver_id = cases[i].id, .subgroup_size = cases[i].lanes};
        snprintf(f.driver_info, sizeof f.driver_info, "%s", cases[i].info);
        if (cases[i].env) setenv("VKD_LANE_BCAST", cases[i].env, 1);
        else unsetenv("VKD_LANE_BCAST");
        int got = vkd_lane_bcast_wanted(&f);
        CHECK(got == cases[i].want, "driver %d '%s', %u lanes, VKD_LANE_BCAST=%s: broadcasts %d, expected %d",
              (int)cases[i].id, cases[i].info, cases[i].lanes, cases[i].env ? cases[i].env : "(unset)", got,
              cases[i].want);
    }
    if (keep) setenv("VKD_LANE_BCAST", keep, 1);
    else unsetenv("VKD_LANE_BCAST");
    free(keep);
}

// The device's threads as ops see them follow what lavapipe was told when the context was made
// (LP_NUM_THREADS: 0 runs the workgroups on the submitting thread, one); GPUs report 0.
static void test_device_threads(void) {
    static const char *set[] = {"3", "0", "1"};
    static const int want[] = {3, 1, 1};
    char *keep = getenv("LP_NUM_THREADS") ? strdup(getenv("LP_NUM_THREADS")) : NULL;
    for (int i = 0; i < 3; i++) {
        setenv("LP_NUM_THREADS", set[i], 1);
        vkd_ctx *c = t_open();
        int cpu = c->f.type == VK_PHYSICAL_DEVICE_TYPE_CPU;
        CHECK(c->device_threads == (cpu ? want[i] : 0), "LP_NUM_THREADS=%s: device threads %d, expected %d", set[i],
              c->device_threads, cpu ? want[i] : 0);
        vkd_ctx_destroy(c);
    }
    if (keep) setenv("LP_NUM_THREADS", keep, 1);
    else unsetenv("LP_NUM_THREADS");
    free(keep);
}

// A new tensor reads zeros (parameters, gradient buffers and optimizer state start there), also
// where it takes the range of a freed one that held data, device and host memory alike (each
// allocation zeroes its own range, src/vk/memory.c zero_range, no longer its block whole).
static void test_new_tensors_zero(vkd_ctx *ctx) {
    enum { N = 1000 };
    static float ones[N], got[N];
    for (int i = 0; i < N; i++) ones[i] = 1.0f + (float)i;
    for (int host = 0; host < 2; host++) {
        int flags = host ? VKD_HOST : 0;
        vkd_tensor *a = vkd_tensor_new(ctx, "a", 1, (int64_t[]){N}, flags);
        CHECK(a && vkd_tensor_upload(a, ones) == 0, "tensor a");
        if (!a) continue;
        vkd_alloc was = a->mem;
        vkd_tensor_free(a);
        // the same size again: first fit gives the freed range back
        vkd_tensor *b = vkd_tensor_new(ctx, "b", 1, (int64_t[]){N}, flags);
        CHECK(b && b->mem.block == was.block && b->mem.off == was.off, "%s: the freed range not reused",
              host ? "host" : "device");
        int nz = 0;
        if (b && vkd_tensor_download(b, got) == 0)
            for (int i = 0; i < N; i++) nz += got[i] != 0.0f;
        CHECK(b && nz == 0, "%s: a new tensor over a freed one's range: %d of %d values not zero", host ? "host" : "device",
              nz, N);
        vkd_tensor_free(b);
    }
}

// How many times a graph runs, as its caller said (vkd_graph_set_samples, _set_run_samples): the
// samples over the samples a run, rounded up; the samples alone bound it; nothing said, 0.
static void test_runs(vkd_ctx *ctx) {
    static const int64_t cases[][3] = {{0, 0, 0}, {0, 16, 0}, {10, 0, 10}, {10, 4, 3}, {12, 4, 3}, {3, 16, 1}, {-5, 2, 0}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        vkd_graph *g = vkd_graph_new(ctx, "runs");
        vkd_graph_set_samples(g, cases[i][0]);
        vkd_graph_set_run_samples(g, cases[i][1]);
        CHECK(vkd_graph_runs(g) == cases[i][2], "%lld samples, %lld a run: %lld runs, expected %lld",
              (long long)cases[i][0], (long long)cases[i][1], (long long)vkd_graph_runs(g), (long long)cases[i][2]);
        vkd_graph_free(g);
    }
}

int main(void) {
    test_cpu_threads_per_rank();
    test_lane_bcast_rule();
    test_device_threads();
    vkd_ctx *ctx = t_open();
    test_replay_equals_rerecord(ctx);
    test_frozen(ctx);
    test_memory_plan(ctx);
    test_copy_nodes(ctx);
    test_profile(ctx);
    test_errors(ctx);
    test_runs(ctx);
    test_new_tensors_zero(ctx);
    return t_close(ctx);
}
