#!/bin/sh
# The shipped Fashion-MNIST models (models/fmnist32_*): the F16 files load and
# sample, and the one- and two-step students still draw garments: FD_fmnist of 256
# samples of each against the test split stays below the bound recorded with them
# in models/fmnist32_record.txt (a broken file, F16 reader or UNet forward gives
# noise, FD in the hundreds).
# usage: test_shipped.sh path/to/vkdistill SOURCE_DIR
bin="$1"
src="$2"
data=/usr/share/datasets/fashion-mnist
[ -d "$data" ] || { echo "skip: $data is not installed"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0
m="$src/models"
bound=$(sed -n 's/^test_bound_fd256: //p' "$m/fmnist32_record.txt")

# The test split's statistics, once for the three students (fid --ref-samples computes them on
# each call: 10,000 images, ~3 s of a ~4 s fid); the same FD to every digit printed.
"$bin" fid-stats "$data" --split test --features fmnist -o "$tmp/test_split.npz" >"$tmp/out" 2>"$tmp/err0" ||
    { echo "FAIL fid-stats of the test split"; cat "$tmp/err0"; exit 1; }

# check_student NAME WHAT SAMPLER-ARGS...: 256 samples of models/fmnist32_NAME.* score under the bound.
check_student() {
    name=$1 what=$2
    shift 2
    if "$bin" sample --model "$m/fmnist32_$name.json" --weights "$m/fmnist32_$name.safetensors" "$@" \
        --n 256 --seed 3 --npz "$tmp/$name.npz" >"$tmp/out" 2>"$tmp/err" &&
        "$bin" fid --samples "$tmp/$name.npz" --ref "$tmp/test_split.npz" --features fmnist >"$tmp/fd" 2>>"$tmp/err" &&
        fd=$(sed -n 's/^FD_fmnist \([0-9.]*\) .*/\1/p' "$tmp/fd") && [ -n "$fd" ] && [ -n "$bound" ] &&
        awk -v a="$fd" -v b="$bound" 'BEGIN { exit !(a < b) }'; then
        pass=$((pass + 1)); echo "ok   shipped $what student: FD_fmnist of 256 samples $fd (bound $bound)"
    else
        fail=$((fail + 1)); echo "FAIL shipped $what student: FD '${fd:-}' (bound '$bound')"; cat "$tmp/err" "$tmp/fd"
    fi
}
check_student student one-step --one-step 2.5
check_student student_sid "SiD-only one-step" --one-step 2.5
check_student student_2step two-step --student-sigmas 2.5,1.5
if "$bin" sample --model "$m/fmnist32_teacher.json" --weights "$m/fmnist32_teacher.safetensors" --n 8 --steps 4 \
    --seed 3 --npz "$tmp/t.npz" >"$tmp/out" 2>"$tmp/err" &&
    /usr/bin/python3 -c "
import numpy as np, sys
x = np.load(sys.argv[1])['samples']
assert x.shape == (8, 1, 32, 32) and np.isfinite(x).all() and x.std() > 0.1, (x.shape, x.std())" "$tmp/t.npz" 2>>"$tmp/err"; then
    pass=$((pass + 1)); echo "ok   shipped teacher: 8 samples in 4 Heun steps, finite and not flat"
else
    fail=$((fail + 1)); echo "FAIL shipped teacher"; cat "$tmp/err"
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
