#!/bin/sh
# Bad input at the command line: each case must exit non-zero with exactly one
# line on stderr that says what is wrong, and never crash or hang.
# usage: test_cli.sh path/to/vkdistill SOURCE_DIR
bin="$1"
src="${2:-$(dirname "$0")/..}"
pass=0
fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# expect NAME EXPECTED_RC PATTERN -- command...
expect() {
    name="$1" want="$2" pattern="$3"
    shift 4
    timeout 120 "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    # The device report ("vkdistill: device ...") is information, not part of the error.
    lines=$(grep -Evc '^vkdistill: device .*\((CPU|discrete GPU|integrated GPU|virtual GPU|other)\)$' "$tmp/err")
    if [ "$rc" -eq "$want" ] && [ "$lines" -eq 1 ] && grep -q -- "$pattern" "$tmp/err"; then
        pass=$((pass + 1))
        echo "ok   $name: $(cat "$tmp/err")"
    else
        fail=$((fail + 1))
        echo "FAIL $name: rc=$rc (want $want), $lines stderr line(s):"
        sed 's/^/     /' "$tmp/err"
    fi
}

expect "unknown verb" 2 "unknown verb 'frobnicate'" -- "$bin" frobnicate
expect "unknown flag" 2 "unknown option '--fast'" -- "$bin" --fast info
expect "missing --device value" 2 "needs an index or a name" -- "$bin" --device
expect "device index out of range" 1 "device index 99 out of range" -- "$bin" --device 99 info
expect "unknown device name" 1 "no Vulkan device matches 'nosuchgpu'" -- "$bin" --device nosuchgpu info
expect "VKD_DEVICE unknown" 1 "no Vulkan device matches 'nosuchgpu'" -- env VKD_DEVICE=nosuchgpu "$bin" info
expect "no Vulkan driver" 1 "no Vulkan" -- env VK_DRIVER_FILES="$tmp/none.json" VK_ICD_FILENAMES="$tmp/none.json" "$bin" info
expect "info bad argument" 2 "unknown argument '--verbose'" -- "$bin" info --verbose
expect "bench without kind" 2 "expected 'gemm', 'model' or 'step'" -- "$bin" bench
expect "bench bad shape" 2 "bad --shape '12x'" -- "$bin" bench gemm --shape 12x
expect "bench bad reps" 2 "--reps must be a positive integer" -- "$bin" bench gemm --reps -3

# Bad configs for the training verbs: one line naming the file and field, before any work.
cat >"$tmp/badmethod.json" <<EOC
{"method": "dmd3", "teacher": {"gmm": "$src/models/gmm_ring8.json"}, "student": "$src/models/mlp_2d.json", "steps": 1}
EOC
expect "distill: unknown method" 1 "field 'method'" -- "$bin" distill "$tmp/badmethod.json" --out "$tmp/r1"
cat >"$tmp/nostudent.json" <<EOC
{"method": "sid", "teacher": {"gmm": "$src/models/gmm_ring8.json"}, "steps": 1}
EOC
expect "distill: GMM teacher without a student" 1 "field 'student'" -- "$bin" distill "$tmp/nostudent.json" --out "$tmp/r2"
cat >"$tmp/typo.json" <<EOC
{"method": "sid", "teacher": {"gmm": "$src/models/gmm_ring8.json"}, "student": "$src/models/mlp_2d.json", "steps": 1, "lr_gen": 1}
EOC
expect "distill: unknown field" 1 "unknown field 'lr_gen'" -- "$bin" distill "$tmp/typo.json" --out "$tmp/r3"
cat >"$tmp/shape.json" <<EOC
{"method": "sid", "teacher": {"gmm": "$src/models/gmm_ring8.json"}, "student": "$src/models/unet_tiny.json", "steps": 1}
EOC
expect "distill: teacher/student shapes differ" 1 "do not match the teacher" -- "$bin" distill "$tmp/shape.json" --out "$tmp/r4"
cat >"$tmp/nodata.json" <<EOC
{"model": "$src/models/unet_tiny.json", "dataset": {"source": "$tmp/no-such-dataset"}, "steps": 1}
EOC
expect "train-teacher: missing dataset" 1 "no-such-dataset" -- "$bin" train-teacher "$tmp/nodata.json" --out "$tmp/r5"
cat >"$tmp/badmodel.json" <<EOC
{"arch": "unet", "img_resolution": 20, "in_channels": 1, "out_channels": 1, "channel_mult": [1, 2, 2, 2]}
EOC
cat >"$tmp/badres.json" <<EOC
{"model": "$tmp/badmodel.json", "dataset": {"source": "$tmp/no-such-dataset"}, "steps": 1}
EOC
expect "model config: resolution not divisible" 1 "field 'img_resolution'" -- "$bin" train-teacher "$tmp/badres.json" --out "$tmp/r6"
expect "sample: missing weights file" 1 "no-such.safetensors" -- "$bin" sample --model "$src/models/unet_tiny.json" --weights "$tmp/no-such.safetensors" -o "$tmp/x.png"
expect "distill: no config" 2 "needs a config file" -- "$bin" distill
expect "distill: --steps not a number" 2 "--steps expects an integer" -- "$bin" distill "$tmp/typo.json" --steps abc
expect "train-teacher: --steps without a value" 2 "--steps needs a value" -- "$bin" train-teacher "$tmp/nodata.json" --steps
expect "sample: --n not a number" 2 "--n expects an integer" -- "$bin" sample --model "$src/models/unet_tiny.json" --weights x --n ten -o "$tmp/x.png"
expect "train-classifier: --epochs not a number" 2 "--epochs expects an integer" -- "$bin" train-classifier "$src/models/fmnist_classifier.json" --epochs 2x
for v in info selfcheck bench train-teacher distill sample montage export train-classifier fid-stats fid; do
    if "$bin" "$v" --help >"$tmp/out" 2>"$tmp/err" && grep -Eq "^  $v|^usage: vkdistill $v" "$tmp/out" && [ ! -s "$tmp/err" ]; then
        pass=$((pass + 1)); echo "ok   $v --help prints its usage, exit 0"
    else
        fail=$((fail + 1)); echo "FAIL $v --help"; cat "$tmp/out" "$tmp/err"
    fi
done
if "$bin" --version | grep -Eq '^vkdistill [0-9]+\.[0-9]+\.[0-9]+$'; then
    pass=$((pass + 1)); echo "ok   --version"
else
    fail=$((fail + 1)); echo "FAIL --version"
fi

# A short distillation, then a resume from its checkpoint, then a refused resume of another config.
cat >"$tmp/gmm.json" <<EOC
{"method": "sid", "teacher": {"gmm": "$src/models/gmm_ring8.json"}, "student": "$src/models/mlp_2d.json",
 "batch": 32, "steps": 4, "sample_every": 4, "ckpt_every": 2, "log_every": 1}
EOC
if "$bin" distill "$tmp/gmm.json" --out "$tmp/run" >"$tmp/out" 2>"$tmp/err" &&
    [ -f "$tmp/run/student.safetensors" ] && [ -f "$tmp/run/samples/scatter_00000004.png" ] &&
    [ "$(wc -l <"$tmp/run/metrics.jsonl")" -eq 4 ]; then
    pass=$((pass + 1)); echo "ok   distill writes student, scatter plot and metrics"
else
    fail=$((fail + 1)); echo "FAIL distill run"; cat "$tmp/err"
fi
expect "distill: existing run without --resume" 1 "already has checkpoints" -- "$bin" distill "$tmp/gmm.json" --out "$tmp/run"
sed 's/"steps": 4/"steps": 6/' "$tmp/gmm.json" >"$tmp/gmm6.json"
expect "distill: resume with another config" 1 "different train_config" -- "$bin" distill "$tmp/gmm6.json" --out "$tmp/run" --resume auto
# The same settings with a comment added and another layout: the resume takes them.
{ echo '{"comment": "a note added later", "method": "sid",'; sed -n 's/^{"method": "sid",//p; 2p' "$tmp/gmm.json"; } >"$tmp/gmmc.json"
if "$bin" distill "$tmp/gmmc.json" --out "$tmp/run" --resume auto --steps 6 >"$tmp/out" 2>"$tmp/err" &&
    grep -q "resuming .*at step 4" "$tmp/err" && [ -f "$tmp/run/checkpoints/ckpt-00000006.safetensors" ]; then
    pass=$((pass + 1)); echo "ok   distill resumes from its latest checkpoint (config's comment and layout changed)"
else
    fail=$((fail + 1)); echo "FAIL distill resume"; cat "$tmp/err"
fi

# --init-from: a new run folder continuing that checkpoint. Under the same config it
# must give exactly what the resume gave; under another config (a second stage)
# it starts, where --resume refused it above.
if "$bin" distill "$tmp/gmm.json" --out "$tmp/init" --init-from "$tmp/run/checkpoints/ckpt-00000004.safetensors" --steps 6 \
    >"$tmp/out" 2>"$tmp/err" && grep -q "starting from .*(step 4)" "$tmp/err" &&
    cmp -s "$tmp/run/student.safetensors" "$tmp/init/student.safetensors" &&
    [ "$(head -c 9 "$tmp/init/metrics.jsonl")" = '{"step":5' ] &&
    "$bin" distill "$tmp/gmm6.json" --out "$tmp/stage2" --resume auto --init-from "$tmp/run/checkpoints/ckpt-00000004.safetensors" \
    >"$tmp/out" 2>"$tmp/err" && [ -f "$tmp/stage2/checkpoints/ckpt-00000006.safetensors" ]; then
    pass=$((pass + 1)); echo "ok   distill --init-from: same config == resume, bit for bit; another config starts a second stage"
else
    fail=$((fail + 1)); echo "FAIL distill --init-from"; cat "$tmp/err"
fi
# generator_weights: G (and its EMA) start from a given student, F as 'init' says. With
# lr_g = 0 the run's student must be those weights, bit for bit.
sed 's#^{"method": "sid",#{"method": "sid", "generator_weights": "'"$tmp"'/run/student.safetensors", "lr_g": 0,#' "$tmp/gmm.json" >"$tmp/gw.json"
if "$bin" distill "$tmp/gw.json" --out "$tmp/gw" >"$tmp/out" 2>"$tmp/err" &&
    "$bin" export --model "$src/models/mlp_2d.json" --weights "$tmp/run/student.safetensors" -o "$tmp/gw_a.safetensors" >"$tmp/out" 2>"$tmp/err" &&
    "$bin" export --model "$src/models/mlp_2d.json" --weights "$tmp/gw/student.safetensors" -o "$tmp/gw_b.safetensors" >"$tmp/out" 2>"$tmp/err" &&
    cmp -s "$tmp/gw_a.safetensors" "$tmp/gw_b.safetensors"; then
    pass=$((pass + 1)); echo "ok   distill generator_weights: the generator starts from the given student (lr_g 0 keeps it bit for bit)"
else
    fail=$((fail + 1)); echo "FAIL distill generator_weights"; cat "$tmp/err"
fi
sed 's#^{"method": "sid",#{"method": "sid", "generator_weights": "'"$tmp"'/nosuch_g.safetensors",#' "$tmp/gmm.json" >"$tmp/gw2.json"
expect "distill: generator_weights a missing file" 1 "nosuch_g.safetensors: cannot open" -- "$bin" distill "$tmp/gw2.json" --out "$tmp/gw2"
expect "distill: --init-from a missing file" 1 "nosuch.safetensors" -- "$bin" distill "$tmp/gmm.json" --out "$tmp/init2" --init-from "$tmp/nosuch.safetensors"
expect "distill: --init-from without a value" 2 "--init-from needs a value" -- "$bin" distill "$tmp/gmm.json" --init-from

# export of several checkpoints: their EMA networks' element-wise mean (checked against numpy in
# double); a file without the prefix is refused by name and leaves the output untouched.
c="$tmp/run/checkpoints"
if "$bin" export --model "$tmp/run/student.json" --prefix ema/ --dtype F32 -o "$tmp/mean.safetensors" \
    --weights "$c/ckpt-00000002.safetensors" --weights "$c/ckpt-00000004.safetensors" --weights "$c/ckpt-00000006.safetensors" \
    >"$tmp/out" 2>"$tmp/err" && grep -q "mean of 3 weight files under ema/" "$tmp/out" &&
    /usr/bin/python3 -c "
import numpy as np, json, struct, sys
def rd(p):
    f = open(p, 'rb'); h = json.loads(f.read(struct.unpack('<Q', f.read(8))[0])); d = f.read()
    return {k: np.frombuffer(d[v['data_offsets'][0]:v['data_offsets'][1]], np.float32) for k, v in h.items() if k != '__metadata__'}
m = rd(sys.argv[1]); cs = [rd(p) for p in sys.argv[2:]]
assert len(m) > 0 and all(len(c) > len(m) for c in cs)
for k, v in m.items():
    want = (sum(c['ema/' + k].astype(np.float64) for c in cs) / len(cs)).astype(np.float32)
    assert np.array_equal(v, want), k
assert not all(np.array_equal(cs[0]['ema/' + k], cs[2]['ema/' + k]) for k in m)" \
        "$tmp/mean.safetensors" "$c/ckpt-00000002.safetensors" "$c/ckpt-00000004.safetensors" "$c/ckpt-00000006.safetensors" 2>>"$tmp/err"; then
    pass=$((pass + 1)); echo "ok   export --prefix ema/ of 3 checkpoints writes their mean"
else
    fail=$((fail + 1)); echo "FAIL export mean"; cat "$tmp/out" "$tmp/err"
fi
cp "$tmp/mean.safetensors" "$tmp/mean.keep"
expect "export: a file without the prefix" 1 "student.safetensors: missing tensor 'ema/" -- "$bin" export --model "$tmp/run/student.json" \
    --prefix ema/ --weights "$c/ckpt-00000002.safetensors" --weights "$tmp/run/student.safetensors" -o "$tmp/mean.safetensors"
if cmp -s "$tmp/mean.safetensors" "$tmp/mean.keep"; then
    pass=$((pass + 1)); echo "ok   export: the refused mean left the earlier output as it was"
else
    fail=$((fail + 1)); echo "FAIL export: a refused mean changed its output file"
fi

# A test-sized teacher: trains on real Fashion-MNIST (when installed), resumes, samples.
if [ -d /usr/share/datasets/fashion-mnist ]; then
    sed -e 's/"label_dim": 3/"label_dim": 10/' "$src/models/unet_tiny.json" >"$tmp/tiny.json"
    cat >"$tmp/teacher.json" <<EOC
{"model": "$tmp/tiny.json", "dataset": {"source": "/usr/share/datasets/fashion-mnist", "resolution": 16, "max_images": 512},
 "batch": 8, "steps": 4, "log_every": 1, "sample_every": 4, "sample_n": 9, "sample_steps": 4, "ckpt_every": 2}
EOC
    if "$bin" train-teacher "$tmp/teacher.json" --out "$tmp/teach" --steps 2 >"$tmp/out" 2>"$tmp/err" &&
        "$bin" train-teacher "$tmp/teacher.json" --out "$tmp/teach" --resume auto >"$tmp/out" 2>>"$tmp/err" &&
        grep -q "resuming .*at step 2" "$tmp/err" && [ -f "$tmp/teach/teacher.safetensors" ] &&
        [ -f "$tmp/teach/samples/step_00000004.png" ] &&
        "$bin" sample --model "$tmp/teach/teacher.json" --weights "$tmp/teach/teacher.safetensors" --n 4 --steps 3 \
            --class 7 -o "$tmp/s.png" --individual "$tmp/ind" --npz "$tmp/s.npz" >"$tmp/out" 2>>"$tmp/err" &&
        /usr/bin/python3 -c "import numpy as np, sys; z = np.load(sys.argv[1]); assert z['samples'].shape == (4, 1, 16, 16) and (z['labels'] == 7).all()" "$tmp/s.npz" &&
        [ -f "$tmp/s.png" ] && [ -f "$tmp/ind/000003.png" ]; then
        pass=$((pass + 1)); echo "ok   train-teacher (2 steps, resume to 4), grid, sample"
    else
        fail=$((fail + 1)); echo "FAIL train-teacher / sample"; cat "$tmp/err"
    fi
    cat >"$tmp/teacher3.json" <<EOC
{"model": "$src/models/unet_tiny.json", "dataset": {"source": "/usr/share/datasets/fashion-mnist", "resolution": 16, "max_images": 64},
 "steps": 1}
EOC
    expect "train-teacher: classes differ from label_dim" 1 "10 classes but the model has label_dim 3" -- "$bin" train-teacher "$tmp/teacher3.json" --out "$tmp/t3"
    # DMD2 with its GAN head on the test-sized teacher, real images from Fashion-MNIST; then a resume.
    cat >"$tmp/dmd2gan.json" <<EOC
{"method": "dmd2", "teacher": {"model": "$tmp/teach/teacher.json", "weights": "$tmp/teach/teacher.safetensors"},
 "gan": {"weight_g": 3e-3, "weight_d": 1e-2},
 "dataset": {"source": "/usr/share/datasets/fashion-mnist", "resolution": 16, "max_images": 256},
 "batch": 4, "steps": 4, "fake_steps": 2, "log_every": 1, "sample_every": 4, "sample_n": 4, "teacher_steps": 3, "ckpt_every": 2}
EOC
    if "$bin" distill "$tmp/dmd2gan.json" --out "$tmp/gan" --steps 2 >"$tmp/out" 2>"$tmp/err" &&
        "$bin" distill "$tmp/dmd2gan.json" --out "$tmp/gan" --resume auto >"$tmp/out" 2>>"$tmp/err" &&
        grep -q "resuming .*at step 2" "$tmp/err" && [ -f "$tmp/gan/student.safetensors" ] &&
        "$bin" distill "$tmp/dmd2gan.json" --out "$tmp/gan1" >"$tmp/out" 2>>"$tmp/err" &&
        cmp "$tmp/gan/student.safetensors" "$tmp/gan1/student.safetensors" &&
        [ "$(grep -c '"loss_gan_d":' "$tmp/gan/metrics.jsonl")" -eq 4 ] &&
        /usr/bin/python3 -c "
import json, math, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert all(math.isfinite(r['loss_gan_g']) and math.isfinite(r['loss_gan_d']) for r in rows), rows" "$tmp/gan/metrics.jsonl"; then
        pass=$((pass + 1)); echo "ok   distill dmd2 with the GAN head (real Fashion-MNIST); 2 + resumed 2 steps == 4 steps, bit for bit"
    else
        fail=$((fail + 1)); echo "FAIL distill dmd2 + GAN"; cat "$tmp/err"
    fi
fi
cat >"$tmp/gannodata.json" <<EOC
{"method": "dmd2", "teacher": {"model": "$src/models/unet_tiny.json", "weights": "$tmp/none.safetensors"}, "gan": {}, "steps": 1}
EOC
expect "distill: GAN without a dataset" 1 "field 'gan': the GAN term needs real images" -- "$bin" distill "$tmp/gannodata.json" --out "$tmp/r8"
cat >"$tmp/gangmm.json" <<EOC
{"method": "dmd2", "teacher": {"gmm": "$src/models/gmm_ring8.json"}, "student": "$src/models/mlp_2d.json", "gan": {},
 "dataset": {"source": "/usr/share/datasets/fashion-mnist"}, "steps": 1}
EOC
expect "distill: GAN with an MLP student" 1 "field 'gan': the GAN head sits on a UNet" -- "$bin" distill "$tmp/gangmm.json" --out "$tmp/r9"

# A vector student in 8 dimensions (the in-run statistics index points by the sample's size).
cat >"$tmp/gmm8.json" <<EOC
{"arch": "gmm", "dim": 8, "weights": [0.4, 0.3, 0.2, 0.1],
 "means": [[2,0,0,0,0,0,0,0], [0,-2,0,0,0,0,0,0], [0,0,0,0,0,0,2,2], [-1,-1,-1,-1,-1,-1,-1,-1]], "stds": [0.2, 0.2, 0.2, 0.2]}
EOC
sed -e 's/"dim": 2/"dim": 8/' "$src/models/mlp_2d.json" >"$tmp/mlp8.json"
cat >"$tmp/d8.json" <<EOC
{"method": "sid", "teacher": {"gmm": "$tmp/gmm8.json"}, "student": "$tmp/mlp8.json", "init": "random",
 "batch": 32, "steps": 4, "sample_every": 4, "ckpt_every": 4, "log_every": 2}
EOC
if "$bin" distill "$tmp/d8.json" --out "$tmp/d8" >"$tmp/out" 2>"$tmp/err" && [ -f "$tmp/d8/samples/scatter_00000004.png" ] &&
    /usr/bin/python3 -c "
import json, math, sys
r = json.loads(open(sys.argv[1]).read().splitlines()[-1])
assert len(r['mode_weights']) == 4 and abs(sum(r['mode_weights']) - 1) < 1e-3, r
assert math.isfinite(r['energy_distance']) and r['energy_distance'] > 0.05, r  # an untrained generator is far off
" "$tmp/d8/metrics.jsonl"; then
    pass=$((pass + 1)); echo "ok   distill an 8-D mixture: statistics over all 8 coordinates, scatter of the first two"
else
    fail=$((fail + 1)); echo "FAIL distill 8-D"; cat "$tmp/err"
fi

# A few-step student (backward simulation) trains and samples.
sed -e 's/"steps": 4,/"steps": 4, "student_sigmas": [2.5, 0.5],/' "$tmp/gmm.json" >"$tmp/gmm2.json"
if "$bin" distill "$tmp/gmm2.json" --out "$tmp/run2" >"$tmp/out" 2>"$tmp/err" && grep -q "2 steps: vkdistill sample" "$tmp/err" &&
    [ -f "$tmp/run2/samples/scatter_00000004.png" ]; then
    pass=$((pass + 1)); echo "ok   distill a 2-step student"
else
    fail=$((fail + 1)); echo "FAIL distill 2-step"; cat "$tmp/err"
fi
sed -e 's/"steps": 4,/"steps": 4, "student_sigmas": [0.5, 2.5],/' "$tmp/gmm.json" >"$tmp/gmm3.json"
expect "distill: increasing student sigmas" 1 "field 'student_sigmas'" -- "$bin" distill "$tmp/gmm3.json" --out "$tmp/r7"
if [ -f "$tmp/teach/teacher.safetensors" ] &&
    "$bin" sample --model "$tmp/teach/teacher.json" --weights "$tmp/teach/teacher.safetensors" --n 4 \
        --student-sigmas 2.5,0.5 -o "$tmp/fs.png" >"$tmp/out" 2>"$tmp/err" && [ -f "$tmp/fs.png" ]; then
    pass=$((pass + 1)); echo "ok   sample --student-sigmas"
else
    fail=$((fail + 1)); echo "FAIL sample --student-sigmas"; cat "$tmp/err"
fi
# --batch cuts n into batches without changing an image: sample i's noise and class depend on
# (seed, i) only (a teacher with churn noise, and a two-step student).
if [ -f "$tmp/teach/teacher.safetensors" ] &&
    for b in 1000 3; do
        "$bin" sample --model "$tmp/teach/teacher.json" --weights "$tmp/teach/teacher.safetensors" --n 7 --batch $b \
            --steps 3 --churn 5 --seed 5 --npz "$tmp/bt$b.npz" >"$tmp/out" 2>>"$tmp/err" &&
        "$bin" sample --model "$tmp/teach/teacher.json" --weights "$tmp/teach/teacher.safetensors" --n 7 --batch $b \
            --student-sigmas 2.5,0.5 --seed 5 --npz "$tmp/bs$b.npz" >"$tmp/out" 2>>"$tmp/err" || break
    done &&
    cmp -s "$tmp/bt1000.npz" "$tmp/bt3.npz" && cmp -s "$tmp/bs1000.npz" "$tmp/bs3.npz" &&
    ! cmp -s "$tmp/bt3.npz" "$tmp/bs3.npz"; then
    pass=$((pass + 1)); echo "ok   sample --batch 3 writes the samples one batch does"
else
    fail=$((fail + 1)); echo "FAIL sample --batch"; cat "$tmp/err"
fi
# A graph's pipelines are created together, one thread a core unless VKD_COMPILE_THREADS says:
# one thread and more threads than cores write the samples the default wrote; a count that is
# not a positive integer is one line.
if [ -f "$tmp/s.npz" ] &&
    for t in 1 5; do
        VKD_COMPILE_THREADS=$t "$bin" sample --model "$tmp/teach/teacher.json" --weights "$tmp/teach/teacher.safetensors" \
            --n 4 --steps 3 --class 7 --npz "$tmp/ct$t.npz" >"$tmp/out" 2>"$tmp/err" && cmp -s "$tmp/s.npz" "$tmp/ct$t.npz" || break
    done; then
    pass=$((pass + 1)); echo "ok   VKD_COMPILE_THREADS=1 and 5 sample what the default did"
else
    fail=$((fail + 1)); echo "FAIL VKD_COMPILE_THREADS=1 / 5"; cat "$tmp/err"
fi
[ -f "$tmp/s.npz" ] && expect "VKD_COMPILE_THREADS not a number" 1 "VKD_COMPILE_THREADS='two': expects a positive integer" -- \
    env VKD_COMPILE_THREADS=two "$bin" sample --model "$tmp/teach/teacher.json" --weights "$tmp/teach/teacher.safetensors" \
    --n 4 --steps 3 -o "$tmp/x.png"
expect "sample: --batch 0" 2 "--batch" -- "$bin" sample --model "$src/models/unet_tiny.json" --weights x --batch 0 -o "$tmp/x.png"
# export: F16 weights sample what the F32 ones do (up to half precision); montage lines up sets.
if [ -f "$tmp/teach/teacher.safetensors" ] &&
    "$bin" export --model "$tmp/teach/teacher.json" --weights "$tmp/teach/teacher.safetensors" -o "$tmp/t16.safetensors" \
        >"$tmp/out" 2>"$tmp/err" &&
    "$bin" sample --model "$tmp/teach/teacher.json" --weights "$tmp/t16.safetensors" --n 4 --steps 3 --class 7 \
        --npz "$tmp/s16.npz" >"$tmp/out" 2>>"$tmp/err" &&
    /usr/bin/python3 -c "
import numpy as np, sys, json, struct
a, b = np.load(sys.argv[1])['samples'], np.load(sys.argv[2])['samples']
f = open(sys.argv[3], 'rb'); h = json.loads(f.read(struct.unpack('<Q', f.read(8))[0]))
assert all(v['dtype'] == 'F16' for k, v in h.items() if k != '__metadata__') and 'config' in h['__metadata__']
assert np.abs(a - b).max() < 0.05, np.abs(a - b).max()" "$tmp/s.npz" "$tmp/s16.npz" "$tmp/t16.safetensors" 2>>"$tmp/err" &&
    "$bin" montage "$tmp/s.npz" "$tmp/s16.npz" -o "$tmp/m.png" --rows 2 --cols 2 >"$tmp/out" 2>>"$tmp/err" &&
    [ -f "$tmp/m.png" ]; then
    pass=$((pass + 1)); echo "ok   export F16 samples like F32; montage"
else
    fail=$((fail + 1)); echo "FAIL export / montage"; cat "$tmp/err"
fi
expect "montage: too few samples" 1 "the montage needs 64" -- "$bin" montage "$tmp/s.npz" -o "$tmp/m2.png"
/usr/bin/python3 -c "import numpy as np, sys; np.savez(sys.argv[1], mu=np.zeros(3))" "$tmp/mu.npz"
expect "montage: no samples array" 1 "no 'samples' array" -- "$bin" montage "$tmp/mu.npz" -o "$tmp/m2.png"
expect "montage: not an npz" 1 "not a zip archive" -- "$bin" montage "$tmp/gmm.json" -o "$tmp/m2.png"
expect "export: missing weights" 1 "no-such.safetensors" -- "$bin" export --model "$src/models/unet_tiny.json" --weights "$tmp/no-such.safetensors" -o "$tmp/e.safetensors"

# And the good paths work.
if "$bin" info >"$tmp/out" 2>"$tmp/err" && grep -q "^device:" "$tmp/out"; then
    pass=$((pass + 1)); echo "ok   info prints the device"
else
    fail=$((fail + 1)); echo "FAIL info"; cat "$tmp/err"
fi
if "$bin" info --list >"$tmp/out" 2>"$tmp/err" && grep -q "^0: " "$tmp/out"; then
    pass=$((pass + 1)); echo "ok   info --list: $(head -1 "$tmp/out")"
else
    fail=$((fail + 1)); echo "FAIL info --list"; cat "$tmp/err"
fi
# lavapipe's vector width: 512 bits on an AMD CPU with AVX-512, Mesa's own choice (256 bits with
# AVX2) on other CPUs (vkd_cpu_driver_env), and a width the user sets in LP_NATIVE_VECTOR_WIDTH is kept.
lp_width() { env "$@" "$bin" info 2>/dev/null | sed -n 's/^device: *llvmpipe (.*, \([0-9]*\) bits).*/\1/p'; }
if [ -n "$(lp_width)" ]; then
    w=$(lp_width -u LP_NATIVE_VECTOR_WIDTH) w128=$(lp_width LP_NATIVE_VECTOR_WIDTH=128) want=""
    if grep -qw avx512f /proc/cpuinfo; then
        want=256
        grep -q AuthenticAMD /proc/cpuinfo && want=512
    fi
    if [ "$w128" = 128 ] && { [ -z "$want" ] || [ "$w" = "$want" ]; }; then
        pass=$((pass + 1)); echo "ok   lavapipe width: $w bits by default, 128 when asked"
    else
        fail=$((fail + 1)); echo "FAIL lavapipe width: $w bits by default, $w128 when 128 was asked"
    fi
fi
if VKD_VALIDATION=1 "$bin" selfcheck >"$tmp/out" 2>"$tmp/err" && grep -q "selfcheck: ok" "$tmp/out"; then
    pass=$((pass + 1)); echo "ok   selfcheck under validation"
else
    fail=$((fail + 1)); echo "FAIL selfcheck"; cat "$tmp/out" "$tmp/err"
fi
if "$bin" bench gemm --shape 64x48x40 --shape 33x17x9tAtB --reps 2 >"$tmp/out" 2>"$tmp/err" &&
    [ "$(grep -c '"gflops":' "$tmp/out")" -eq 2 ]; then
    pass=$((pass + 1)); echo "ok   bench gemm prints one JSON line per shape"
else
    fail=$((fail + 1)); echo "FAIL bench gemm"; cat "$tmp/out" "$tmp/err"
fi

if "$bin" bench step "$tmp/gmm.json" --iters 2 --warmup 1 >"$tmp/out" 2>"$tmp/err" &&
    /usr/bin/python3 -c "
import json, sys
r = json.loads(open(sys.argv[1]).read())
assert r['bench'] == 'step' and r['kind'] == 'distill' and r['method'] == 'sid' and r['batch'] == 32, r
assert r['img_per_s'] > 0 and r['ms_fake_phase'] > 0 and r['ms_generator_phase'] > 0 and r['dispatches_per_iter'] > 0, r
assert r['top_ops'] and all(o['ms'] >= 0 and o['calls'] > 0 for o in r['top_ops']), r
assert r['pipelines'] > 0 and r['s_pipeline_create'] > 0, r
" "$tmp/out"; then
    pass=$((pass + 1)); echo "ok   bench step prints one JSON line (img/s, phases, dispatches, pipelines, top ops)"
else
    fail=$((fail + 1)); echo "FAIL bench step"; cat "$tmp/out" "$tmp/err"
fi
expect "bench step without a config" 2 "needs a distill or train-teacher config" -- "$bin" bench step

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
