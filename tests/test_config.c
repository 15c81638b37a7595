// Strict JSON configs (host only): every mistake in a config is one line
// naming the file and the field; an unread (mistyped) key is an error.
#define _POSIX_C_SOURCE 200809L
#include <limits.h>
#include <unistd.h>

#include "harness.h"
#include "vkdistill/io.h"

static const char *good =
    "{\n"
    "  \"model\": \"unet\",\n"
    "  \"batch\": 64,\n"
    "  \"lr\": 2e-4,\n"
    "  \"betas\": [0.9, 0.99],\n"
    "  \"ema\": true,\n"
    "  \"unet\": {\"channels\": 64, \"channel_mult\": [1, 2, 2], \"dropout\": 0.1}\n"
    "}\n";

static const char *const models[] = {"unet", "dit", "mlp", NULL};

// Reads the whole good config; returns finish's result.
static int read_good(vkd_cfg *c) {
    vkd_cfg_str(c, "model", 1, NULL, models);
    vkd_cfg_int(c, "batch", 1, 0, 1, INT_MAX);
    vkd_cfg_num(c, "lr", 1, 0, 0, HUGE_VAL);
    double betas[2];
    vkd_cfg_num_list(c, "betas", 0, betas, 2);
    vkd_cfg_bool(c, "ema", 0, 0);
    vkd_cfg *u = vkd_cfg_obj(c, "unet", 1);
    if (u) {
        int mult[8];
        vkd_cfg_int(u, "channels", 1, 0, 1, INT_MAX);
        vkd_cfg_int_list(u, "channel_mult", 1, mult, 8, 1, INT_MAX);
        vkd_cfg_num(u, "dropout", 0, 0, 0, 1);
    }
    return vkd_cfg_finish(c);
}

// Replaces the first occurrence of from with to in the good config.
static char *variant(const char *from, const char *to) {
    static char buf[2048];
    const char *at = strstr(good, from);
    if (!at) {
        printf("test bug: '%s' not in the config\n", from);
        exit(1);
    }
    snprintf(buf, sizeof buf, "%.*s%s%s", (int)(at - good), good, to, at + strlen(from));
    return buf;
}

// The variant must fail (at parse or at finish) with one line containing want.
static void expect_error(const char *what, const char *text, const char *want) {
    char err[1024] = "";
    vkd_cfg *c = vkd_cfg_parse(text, "run.json", err, sizeof err);
    const char *msg = err;
    if (c) {
        CHECK(read_good(c) != 0, "%s: accepted", what);
        msg = vkd_cfg_error(c) ? vkd_cfg_error(c) : "";
    }
    CHECK(strstr(msg, want) != NULL, "%s: error '%s' lacks '%s'", what, msg, want);
    CHECK(strncmp(msg, "run.json: ", 10) == 0 && !strchr(msg, '\n'), "%s: not one line naming the file: '%s'", what,
          msg);
    vkd_cfg_free(c);
}

static void test_good(void) {
    char err[512] = "";
    vkd_cfg *c = vkd_cfg_parse(good, "run.json", err, sizeof err);
    CHECK(c != NULL, "parse: %s", err);
    if (!c) return;
    CHECK(vkd_cfg_has(c, "batch") && !vkd_cfg_has(c, "steps") && !vkd_cfg_has(c, "Batch"), "has");
    CHECK(strcmp(vkd_cfg_str(c, "model", 1, NULL, models), "unet") == 0, "model");
    CHECK(vkd_cfg_int(c, "batch", 1, 0, 1, INT_MAX) == 64, "batch");
    CHECK(vkd_cfg_int(c, "steps", 0, 1000, 1, INT_MAX) == 1000, "default steps");
    CHECK(vkd_cfg_num(c, "lr", 1, 0, 0, HUGE_VAL) == 2e-4, "lr");
    CHECK(vkd_cfg_str(c, "name", 0, NULL, NULL) == NULL, "absent string default");
    double betas[4] = {0};
    CHECK(vkd_cfg_num_list(c, "betas", 1, betas, 4) == 2 && betas[0] == 0.9 && betas[1] == 0.99, "betas");
    CHECK(vkd_cfg_bool(c, "ema", 1, 0) == 1, "ema");
    int none[2];
    CHECK(vkd_cfg_int_list(c, "absent", 0, none, 2, 0, 9) == 0, "absent list");
    vkd_cfg *u = vkd_cfg_obj(c, "unet", 1);
    CHECK(u != NULL && vkd_cfg_obj(c, "unet", 1) == u, "nested object (same view twice)");
    CHECK(vkd_cfg_obj(c, "vae", 0) == NULL, "absent optional object");
    int mult[8] = {0};
    CHECK(vkd_cfg_int_list(u, "channel_mult", 1, mult, 8, 1, INT_MAX) == 3 && mult[2] == 2, "channel_mult");
    CHECK(vkd_cfg_int(u, "channels", 1, 0, 1, INT_MAX) == 64, "channels");
    CHECK(fabs(vkd_cfg_num(u, "dropout", 0, 0, 0, 1) - 0.1) < 1e-15, "dropout");
    CHECK(vkd_cfg_finish(c) == 0 && vkd_cfg_error(c) == NULL, "finish: %s", vkd_cfg_error(c));
    vkd_cfg_free(c);

    // From a file.
    char path[] = "/tmp/vkd_cfg_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0 && write(fd, good, strlen(good)) == (ssize_t)strlen(good), "temp file");
    close(fd);
    c = vkd_cfg_load(path, err, sizeof err);
    CHECK(c && read_good(c) == 0, "load: %s", c ? vkd_cfg_error(c) : err);
    vkd_cfg_free(c);
    unlink(path);
}

static void test_errors(void) {
    expect_error("missing required field", variant("\"lr\": 2e-4,", ""), "run.json: missing required field 'lr'");
    expect_error("missing nested field", variant("\"channels\": 64, ", ""), "missing required field 'unet.channels'");
    expect_error("string for an integer", variant("64,", "\"64\","),
                 "field 'batch': expected a positive integer, got \"64\"");
    expect_error("fraction for an integer", variant("64,", "64.5,"),
                 "field 'batch': expected a positive integer, got 64.5");
    expect_error("bool expected", variant("true", "1"), "field 'ema': expected true or false, got 1");
    expect_error("object expected", variant("{\"channels\": 64, \"channel_mult\": [1, 2, 2], \"dropout\": 0.1}", "[1]"),
                 "field 'unet': expected an object, got an array");
    expect_error("out of range", variant("64,", "0,"), "field 'batch': expected a positive integer, got 0");
    expect_error("number out of range", variant("0.1}", "1.5}"),
                 "field 'unet.dropout': expected a number in [0, 1], got 1.5");
    expect_error("list element out of range", variant("[1, 2, 2]", "[1, -2, 2]"),
                 "field 'unet.channel_mult[1]': expected a positive integer, got -2");
    expect_error("list too long", variant("[0.9, 0.99]", "[0.9, 0.99, 0.999]"),
                 "field 'betas': expected at most 2 numbers, got 3");
    expect_error("list of the wrong type", variant("[0.9, 0.99]", "0.9"),
                 "field 'betas': expected an array of numbers, got 0.9");
    expect_error("string not allowed", variant("\"unet\",", "\"unet2\","),
                 "field 'model': expected one of \"unet\", \"dit\", \"mlp\", got \"unet2\"");
    expect_error("unknown key", variant("\"dropout\"", "\"dropuot\""),
                 "unknown field 'unet.dropuot' (did you mean 'unet.dropout'? known: channels, channel_mult, dropout)");
    expect_error("mistyped required key", variant("\"channel_mult\"", "\"chanel_mult\""),
                 "missing required field 'unet.channel_mult'");
    expect_error("unknown key, no near miss", variant("\"ema\": true", "\"ema\": true, \"warmup\": 5"),
                 "unknown field 'warmup' (known: model, batch, lr, betas, ema, unet)");
    expect_error("case matters", variant("\"batch\"", "\"Batch\""), "missing required field 'batch'");
    expect_error("duplicate key", variant("\"dropout\": 0.1", "\"dropout\": 0.1, \"dropout\": 0.2"),
                 "run.json: duplicate field 'unet.dropout'");
    expect_error("invalid JSON with its line", variant("\"lr\": 2e-4,", "\"lr\": 2e-4,,"),
                 "run.json: invalid JSON near line 4");
    expect_error("trailing comma", variant("0.1}\n}", "0.1},\n}"), "invalid JSON near line 8");
    expect_error("non-object top level", "[1, 2, 3]",
                 "run.json: expected a JSON object at the top level, got an array");
    expect_error("empty text", "", "invalid JSON near line 1");
    expect_error("invalid UTF-8", variant("\"unet\",", "\"un\xff\","), "invalid UTF-8 near line 2");

    // The first error wins; later ones are echoes.
    char err[512];
    vkd_cfg *c = vkd_cfg_parse("{\"a\": -1, \"b\": \"x\"}", "run.json", err, sizeof err);
    vkd_cfg_int(c, "a", 1, 0, 0, 10);
    vkd_cfg_int(c, "b", 1, 0, 0, 10);
    vkd_cfg_int(c, "c", 1, 0, 0, 10);
    CHECK(vkd_cfg_finish(c) != 0 &&
              strcmp(vkd_cfg_error(c), "run.json: field 'a': expected an integer in [0, 10], got -1") == 0,
          "first error: %s", vkd_cfg_error(c));
    vkd_cfg_free(c);

    // An object nobody asked about is itself unknown.
    c = vkd_cfg_parse("{\"a\": {\"b\": 1}}", "run.json", err, sizeof err);
    CHECK(vkd_cfg_finish(c) != 0 && strstr(vkd_cfg_error(c), "unknown field 'a' (this object takes no fields)"),
          "unread object: %s", vkd_cfg_error(c));
    vkd_cfg_free(c);

    c = vkd_cfg_load("/nonexistent/run.json", err, sizeof err);
    CHECK(!c && strstr(err, "/nonexistent/run.json: cannot open: No such file"), "missing file: %s", err);
}

static void test_matrix(void) {
    char err[512] = "";
    vkd_cfg *c = vkd_cfg_parse("{\"m\": [[1, 2, 3], [4, 5, 6]], \"bad\": [[1, 2], [3]], \"num\": [[1, \"x\"]]}",
                               "run.json", err, sizeof err);
    CHECK(c != NULL, "parse: %s", err);
    if (!c) return;
    double m[8] = {0};
    int cols = 0;
    CHECK(vkd_cfg_num_matrix(c, "m", 1, m, 2, 4, &cols) == 2 && cols == 3 && m[0] == 1 && m[5] == 6, "matrix");
    CHECK(vkd_cfg_num_matrix(c, "absent", 0, m, 2, 4, &cols) == 0, "absent matrix");
    CHECK(vkd_cfg_num_matrix(c, "bad", 1, m, 2, 4, &cols) == -1 && strstr(vkd_cfg_error(c), "'bad[1]'"),
          "ragged rows: %s", vkd_cfg_error(c));
    vkd_cfg_free(c);
    c = vkd_cfg_parse("{\"num\": [[1, \"x\"]]}", "run.json", err, sizeof err);
    double n[4];
    CHECK(c && vkd_cfg_num_matrix(c, "num", 1, n, 2, 2, &cols) == -1 && strstr(vkd_cfg_error(c), "'num[0][1]'"),
          "non-number: %s", c ? vkd_cfg_error(c) : err);
    vkd_cfg_free(c);
}

int main(void) {
    test_good();
    test_errors();
    test_matrix();
    printf("%d passed, %d failed\n", t_pass, t_fail);
    return t_fail ? 1 : 0;
}
