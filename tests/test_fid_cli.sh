#!/bin/sh
# fid-stats and fid end to end on tiny fixtures (a 16x16 classifier, 40 images as a
# PNG folder and as .npz files, written by test_classifier), and their bad input:
# each error is one line on stderr (besides the device line) and a non-zero exit.
# usage: test_fid_cli.sh path/to/vkdistill path/to/test_classifier
bin="$1" fixtures="$2"
pass=0
fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; sed 's/^/     /' "$tmp/out" "$tmp/err"; }

if ! "$fixtures" "$tmp" >"$tmp/out" 2>"$tmp/err"; then bad "fixtures"; echo "$pass passed, $fail failed"; exit 1; fi
w="$tmp/clf.safetensors"
F="--features fmnist --feature-weights $w"

# expect NAME EXPECTED_RC PATTERN -- command...: one error line (the device line aside)
expect() {
    name="$1" want="$2" pattern="$3"
    shift 4
    timeout 120 "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    grep -v '^vkdistill: device ' "$tmp/err" >"$tmp/err1"
    lines=$(wc -l <"$tmp/err1")
    if [ "$rc" -eq "$want" ] && [ "$lines" -eq 1 ] && grep -q -- "$pattern" "$tmp/err1"; then
        ok "$name: $(cat "$tmp/err1")"
    else
        bad "$name: rc=$rc (want $want), $lines line(s)"
    fi
}
# value KEY: a number from the JSON line of $tmp/out
value() { sed -n "s/.*\"$1\":\([-0-9.e+]*\).*/\1/p" "$tmp/out" | tail -1; }
# lt A B: A < B (awk for floats)
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }

# fid-stats on the folder -> an npz that fid reads back; the set against its own stats is ~0.
if "$bin" fid-stats "$tmp/folder" -o "$tmp/folder.npz" $F >"$tmp/out" 2>"$tmp/err" &&
    grep -q '"dim":8,"n":40' "$tmp/out" && [ -s "$tmp/folder.npz" ]; then ok "fid-stats on a PNG folder"; else bad "fid-stats folder"; fi
if "$bin" fid --samples "$tmp/folder" --ref "$tmp/folder.npz" $F >"$tmp/out" 2>"$tmp/err" &&
    grep -q '^FD_fmnist ' "$tmp/out" && [ "$(value n)" = 40 ] && lt "$(value value)" 1e-4; then
    ok "fid of a set against its own stats: $(value value) (n=$(value n))"
else bad "fid self"; fi
# The same images as float samples in an npz: same statistics, FD ~0 again (PNG rounding aside).
if "$bin" fid --samples "$tmp/samples.npz" --ref "$tmp/folder.npz" $F >"$tmp/out" 2>"$tmp/err" && lt "$(value value)" 1e-2; then
    ok "npz 'samples' vs the folder's stats: $(value value)"
else bad "npz samples"; fi
# uint8-style (N, H, W, C) 12x12 "images", padded to 16x16; --n takes the first N.
if "$bin" fid --samples "$tmp/images.npz" --ref-samples "$tmp/folder" --n 30 --kid --pr $F >"$tmp/out" 2>"$tmp/err" &&
    [ "$(value n)" = 30 ] && grep -q '"kid":' "$tmp/out" && grep -q '"precision":' "$tmp/out" && lt 0 "$(value value)"; then
    ok "npz 'images' (padded) vs --ref-samples with KID and PR: FD $(value value), KID $(value kid), precision $(value precision)"
else bad "npz images + kid + pr"; fi
# The same images stored as numpy uint8 (as EDM and clean-fid write them) give the same number.
fd_int=$(value value)
if /usr/bin/python3 -c "import numpy as np, sys; z = np.load(sys.argv[1]); np.savez(sys.argv[2], images=z['images'].astype(np.uint8))" \
        "$tmp/images.npz" "$tmp/images_u8.npz" &&
    "$bin" fid --samples "$tmp/images_u8.npz" --ref-samples "$tmp/folder" --n 30 $F >"$tmp/out" 2>"$tmp/err" &&
    [ "$(value value)" = "$fd_int" ]; then
    ok "npz 'images' as uint8: FD $(value value), identical"
else bad "npz uint8 images"; cat "$tmp/err"; fi
# A small N is reported with a warning (N < dim + 1).
if "$bin" fid --samples "$tmp/folder" --n 5 --ref "$tmp/folder.npz" $F >"$tmp/out" 2>"$tmp/err" &&
    grep -q "rank-deficient" "$tmp/err" && [ "$(value n)" = 5 ]; then ok "small N warns and prints n=5"; else bad "small N"; fi

expect "missing stats file" 1 "$tmp/nope.npz" -- "$bin" fid --samples "$tmp/folder" --ref "$tmp/nope.npz" $F
expect "stats of the wrong dimension" 1 "statistics of 5-d features, but --features fmnist gives 8-d" -- \
    "$bin" fid --samples "$tmp/folder" --ref "$tmp/stats5.npz" $F
expect "inconsistent stats" 1 "stats_bad.npz" -- "$bin" fid --samples "$tmp/folder" --ref "$tmp/stats_bad.npz" $F
expect "inception weights missing" 1 "convert_inception.py pt_inception-2015-12-05-6726825d.pth" -- \
    "$bin" fid-stats "$tmp/folder" -o "$tmp/x.npz" --features inception --feature-weights "$tmp/none.safetensors"
expect "fmnist weights missing" 1 "train-classifier" -- "$bin" fid-stats "$tmp/folder" -o "$tmp/x.npz" --features fmnist --feature-weights "$tmp/none.safetensors"
expect "kid without reference features" 2 "need the features of both sets: .*folder.npz holds only mu and sigma" -- \
    "$bin" fid --samples "$tmp/folder" --ref "$tmp/folder.npz" --kid $F
expect "unknown feature space" 2 "must be 'inception' or 'fmnist'" -- "$bin" fid-stats "$tmp/folder" -o "$tmp/x.npz" --features clip
expect "fid-stats without -o" 2 "needs SOURCE" -- "$bin" fid-stats "$tmp/folder"
expect "missing source" 1 "$tmp/nothing" -- "$bin" fid-stats "$tmp/nothing" -o "$tmp/x.npz" $F
expect "npz without samples" 1 "no 'samples'" -- "$bin" fid-stats "$tmp/stats5.npz" -o "$tmp/x.npz" $F
[ ! -e "$tmp/x.npz" ] && ok "nothing written on failure" || bad "x.npz exists"

# Any two of: statistics file, samples .npz, image folder / dataset (pytorch-fid style "fid A B").
"$bin" fid-stats "$tmp/samples.npz" -o "$tmp/samples_stats.npz" $F >"$tmp/out" 2>"$tmp/err" || bad "fid-stats on samples.npz"
if "$bin" fid --samples "$tmp/samples.npz" --ref "$tmp/folder.npz" $F >"$tmp/out" 2>"$tmp/err"; then fd_ref=$(value value); else fd_ref=x; fi
# Two statistics files: no device is opened (stderr stays empty), the same number as from the images.
if "$bin" fid "$tmp/samples_stats.npz" "$tmp/folder.npz" >"$tmp/out" 2>"$tmp/err" && [ ! -s "$tmp/err" ] &&
    grep -q '^FD ' "$tmp/out" && grep -q '"n":null,"dim":8' "$tmp/out" &&
    awk -v a="$(value value)" -v b="$fd_ref" 'BEGIN { d = a - b; exit !(d < 1e-6 && d > -1e-6) }'; then
    ok "fid STATS STATS without a device: $(value value) (from the images: $fd_ref)"
else bad "fid stats stats"; fi
if "$bin" fid "$tmp/samples_stats.npz" "$tmp/folder.npz" --features fmnist >"$tmp/out" 2>"$tmp/err" && grep -q '^FD_fmnist ' "$tmp/out"; then
    ok "fid STATS STATS --features fmnist names FD_fmnist"
else bad "fid stats stats fmnist name"; fi
# Positional: samples .npz vs stats, stats vs folder, folder vs folder: the order does not matter.
if "$bin" fid "$tmp/samples.npz" "$tmp/folder.npz" $F >"$tmp/out" 2>"$tmp/err" && [ "$(value value)" = "$fd_ref" ]; then
    ok "fid SAMPLES.npz STATS = fid --samples --ref: $(value value)"
else bad "fid samples stats positional"; fi
if "$bin" fid "$tmp/folder.npz" "$tmp/samples.npz" $F >"$tmp/out" 2>"$tmp/err" && [ "$(value value)" = "$fd_ref" ] &&
    grep -q "\"samples\":\"$tmp/folder.npz\",\"ref\":\"$tmp/samples.npz\"" "$tmp/out"; then
    ok "fid STATS SAMPLES.npz: the same $(value value), A and B named as given"
else bad "fid stats samples positional"; fi
if "$bin" fid "$tmp/folder" "$tmp/samples.npz" $F >"$tmp/out" 2>"$tmp/err" && lt "$(value value)" 1e-2 && [ "$(value n)" = 40 ]; then
    ok "fid FOLDER SAMPLES.npz: $(value value)"
else bad "fid folder samples positional"; fi
expect "two stats files of different dimensions" 1 "statistics of 5-d features, but .*samples_stats.npz has 8-d" -- \
    "$bin" fid "$tmp/samples_stats.npz" "$tmp/stats5.npz"
expect "three sets" 2 "more than two sets" -- "$bin" fid "$tmp/folder" "$tmp/folder.npz" "$tmp/samples.npz" $F
expect "one set" 2 "needs two sets" -- "$bin" fid "$tmp/folder" $F
expect "a broken npz as A" 1 "nope.npz" -- "$bin" fid "$tmp/nope.npz" "$tmp/folder.npz"

# Help texts name every flag.
if "$bin" fid --help >"$tmp/out" 2>"$tmp/err" && grep -q -- "--split" "$tmp/out" && grep -q -- "--ref-split" "$tmp/out" &&
    grep -q -- "--feature-weights" "$tmp/out" && grep -q -- "--resolution" "$tmp/out" &&
    "$bin" fid-stats --help >"$tmp/out" 2>"$tmp/err" && grep -q -- "--split" "$tmp/out" && grep -q -- "--feature-weights" "$tmp/out"; then
    ok "fid --help and fid-stats --help list --split, --ref-split, --feature-weights"
else bad "help texts"; fi

# fid-stats finds the shipped classifier from another working directory (beside the executable:
# <build>/../models), and says where it looked when there is none.
if [ -f "$(dirname "$bin")/../models/fmnist_classifier.safetensors" ]; then
    if (cd "$tmp" && "$bin" fid-stats "$tmp/folder" -o "$tmp/shipped.npz" --features fmnist >"$tmp/out" 2>"$tmp/err") &&
        [ -s "$tmp/shipped.npz" ]; then
        ok "fid-stats --features fmnist outside the source tree"
    else bad "fid-stats outside the source tree"; fi
fi
mkdir -p "$tmp/bin" && cp "$bin" "$tmp/bin/vkdistill"
here=$(pwd)
cd "$tmp" && expect "no shipped classifier anywhere" 1 "looked in the working directory and beside the executable" -- \
    "$tmp/bin/vkdistill" fid-stats "$tmp/folder" -o "$tmp/y.npz" --features fmnist
cd "$here" || exit 1

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
