#!/bin/sh
# Devices that lack something, and devices that run out of memory (issue 14):
#  - 'vkdistill info' lists the features the engine requires; a device without
#    one (VKD_MASK_FEATURE pretends) is refused with one line naming it;
#  - an allocation that fails under a memory cap (VKD_MEMORY_CAP_MB) at graph
#    compile, on a fresh run and on a resume, is one line with the bytes needed
#    and available, a non-zero exit, and the checkpoints stay as they were (a
#    resume without the cap then completes); an allocation that fails mid-run
#    (the teacher's sample grid) is one such line and leaves every checkpoint whole.
# usage: test_robustness.sh path/to/vkdistill SOURCE_DIR
bin="$1" src="$2"
pass=0
fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; sed 's/^/     /' "$tmp/out" "$tmp/err" 2>/dev/null | tail -20; }
# errlines: stderr without the device line and progress lines
errlines() { grep -v -e "^vkdistill: device [^']" -e '^distill ' -e '^train-teacher ' -e '^vkdistill: distilling' \
    -e '^vkdistill: training ' -e '^vkdistill: resuming' "$tmp/err"; }

# ---- requirements
if "$bin" info >"$tmp/out" 2>"$tmp/err" && grep -q '^requires: *Vulkan 1.2: yes' "$tmp/out" &&
    grep -q 'subgroup shuffle and ballot in compute shaders (matmul, conv2d): yes' "$tmp/out" && ! grep -q MISSING "$tmp/out"; then
    ok "info lists the required features: $(grep -c ': yes$' "$tmp/out") present"
else bad "info requirements"; fi
VKD_MASK_FEATURE=shuffle "$bin" info >"$tmp/out" 2>"$tmp/err"
rc=$?
if [ $rc -eq 1 ] && [ "$(errlines | wc -l)" -eq 1 ] && errlines | grep -q "lacks subgroup shuffle and ballot in compute shaders"; then
    ok "a device without subgroup shuffle is refused: $(errlines)"
else bad "masked feature: rc=$rc"; fi
if VKD_MASK_FEATURE=bufferDeviceAddress "$bin" info --list >"$tmp/out" 2>"$tmp/err" && grep -q "; lacks bufferDeviceAddress" "$tmp/out"; then
    ok "info --list names what each device lacks"
else bad "info --list lacks"; fi

# ---- out of memory at graph compile (distill on the GMM teacher: everything is allocated up front)
cat >"$tmp/gmm.json" <<EOC
{"method": "sid", "teacher": {"gmm": "$src/models/gmm_ring8.json"}, "student": "$src/models/mlp_2d.json",
 "batch": 32, "steps": 4, "sample_every": 2, "ckpt_every": 2, "log_every": 1}
EOC
# The smallest cap (in MiB, from 64: the first memory block) that gets as far as compiling a graph.
cap=64
while [ $cap -lt 96 ]; do
    rm -rf "$tmp/g"
    VKD_MEMORY_CAP_MB=$cap "$bin" distill "$tmp/gmm.json" --out "$tmp/g" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    errlines | grep -q "out of device memory: the activations of graph" && break
    cap=$((cap + 1))
done
line=$(errlines)
if [ $rc -eq 1 ] && [ "$(errlines | wc -l)" -eq 1 ] && echo "$line" | grep -q "needs [0-9]* bytes (.* MiB), [0-9]* bytes (.* MiB) available"; then
    ok "out of memory at graph compile (cap $cap MiB): $line"
else bad "graph compile OOM (cap $cap, rc $rc)"; fi
# On a resume: the checkpoint is untouched, nothing partial is left, and a resume without the cap completes.
rm -rf "$tmp/g"
if "$bin" distill "$tmp/gmm.json" --out "$tmp/g" >"$tmp/out" 2>"$tmp/err"; then
    # Keep only the step-2 checkpoint (runs checkpoint at least every quarter, so 1..4 exist).
    find "$tmp/g/checkpoints" -type f ! -name ckpt-00000002.safetensors -delete
    before=$(cksum <"$tmp/g/checkpoints/ckpt-00000002.safetensors")
    VKD_MEMORY_CAP_MB=$cap "$bin" distill "$tmp/gmm.json" --out "$tmp/g" --resume auto >"$tmp/out" 2>"$tmp/err"
    rc=$?
    after=$(cksum <"$tmp/g/checkpoints/ckpt-00000002.safetensors")
    if [ $rc -ne 0 ] && [ "$(errlines | wc -l)" -eq 1 ] && errlines | grep -q "bytes (.* MiB) available" &&
        [ "$before" = "$after" ] && [ "$(ls "$tmp/g/checkpoints")" = "ckpt-00000002.safetensors" ] &&
        "$bin" distill "$tmp/gmm.json" --out "$tmp/g" --resume auto >"$tmp/out" 2>"$tmp/err" &&
        grep -q "resuming .*at step 2" "$tmp/err" && [ -f "$tmp/g/checkpoints/ckpt-00000004.safetensors" ]; then
        ok "out of memory on a resume: rc $rc, checkpoint intact, a resume without the cap completes"
    else bad "OOM on resume: rc=$rc, before $before after $after, $(ls "$tmp/g/checkpoints" | tr '\n' ' ')"; fi
else bad "uncapped distill run"; fi

# ---- out of memory mid-run: the teacher's sample grid compiles its sampler at sample_every
if [ -d /usr/share/datasets/fashion-mnist ]; then
    sed -e 's/"label_dim": 3/"label_dim": 10/' "$src/models/unet_tiny.json" >"$tmp/tiny.json"
    cat >"$tmp/teacher.json" <<EOC
{"model": "$tmp/tiny.json", "dataset": {"source": "/usr/share/datasets/fashion-mnist", "resolution": 16, "max_images": 64},
 "batch": 8, "steps": 4, "log_every": 1, "sample_every": 2, "sample_n": 4, "sample_steps": 4, "ckpt_every": 2}
EOC
    cap=64 found=0
    while [ $cap -lt 96 ]; do
        rm -rf "$tmp/t"
        VKD_MEMORY_CAP_MB=$cap "$bin" train-teacher "$tmp/teacher.json" --out "$tmp/t" >"$tmp/out" 2>"$tmp/err"
        rc=$?
        if [ -f "$tmp/t/checkpoints/ckpt-00000002.safetensors" ]; then
            errlines | grep -q "out of device memory" && found=1
            break
        fi
        cap=$((cap + 1))
    done
    if [ $found -eq 1 ]; then
        # (one line per failed grid: each says what it needed)
        line=$(errlines | grep "out of device memory" | head -1)
        nbad=$(errlines | grep "out of device memory" | grep -vc "needs [0-9]* bytes (.* MiB), [0-9]* bytes (.* MiB) available")
        # Every checkpoint written is whole: a resume from the first one (without the cap) completes.
        find "$tmp/t/checkpoints" -type f ! -name ckpt-00000002.safetensors -delete
        rm -f "$tmp/t/teacher.safetensors"
        if [ "$nbad" -eq 0 ] &&
            ! ls "$tmp/t/checkpoints" | grep -q tmp &&
            "$bin" train-teacher "$tmp/teacher.json" --out "$tmp/t" --resume auto >"$tmp/out" 2>"$tmp/err" &&
            grep -q "resuming .*at step 2" "$tmp/err" && [ -f "$tmp/t/teacher.safetensors" ]; then
            ok "out of memory mid-run (cap $cap MiB, exit $rc): $line; checkpoints whole"
        else bad "mid-run OOM (cap $cap): $line"; fi
    else
        echo "skip mid-run out of memory: no cap from 64 to 95 MiB fails after the first checkpoint (cap $cap)"
    fi
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
