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

if "$bin" sample --model "$m/fmnist32_student.json" --weights "$m/fmnist32_student.safetensors" --one-step 2.5 \
    --n 256 --seed 3 --npz "$tmp/s.npz" >"$tmp/out" 2>"$tmp/err" &&
    "$bin" fid --samples "$tmp/s.npz" --ref-samples "$data" --ref-split test --features fmnist >"$tmp/fd" 2>>"$tmp/err" &&
    fd=$(sed -n 's/^FD_fmnist \([0-9.]*\) .*/\1/p' "$tmp/fd") && [ -n "$fd" ] && [ -n "$bound" ] &&
    awk -v a="$fd" -v b="$bound" 'BEGIN { exit !(a < b) }'; then
    pass=$((pass + 1)); echo "ok   shipped student: FD_fmnist of 256 one-step samples $fd (bound $bound)"
else
    fail=$((fail + 1)); echo "FAIL shipped student: FD '${fd:-}' (bound '$bound')"; cat "$tmp/err" "$tmp/fd"
fi
if "$bin" sample --model "$m/fmnist32_student_2step.json" --weights "$m/fmnist32_student_2step.safetensors" \
    --student-sigmas 2.5,1.5 --n 256 --seed 3 --npz "$tmp/s2.npz" >"$tmp/out" 2>"$tmp/err" &&
    "$bin" fid --samples "$tmp/s2.npz" --ref-samples "$data" --ref-split test --features fmnist >"$tmp/fd" 2>>"$tmp/err" &&
    fd=$(sed -n 's/^FD_fmnist \([0-9.]*\) .*/\1/p' "$tmp/fd") && [ -n "$fd" ] && [ -n "$bound" ] &&
    awk -v a="$fd" -v b="$bound" 'BEGIN { exit !(a < b) }'; then
    pass=$((pass + 1)); echo "ok   shipped two-step student: FD_fmnist of 256 two-step samples $fd (bound $bound)"
else
    fail=$((fail + 1)); echo "FAIL shipped two-step student: FD '${fd:-}' (bound '$bound')"; cat "$tmp/err" "$tmp/fd"
fi
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
