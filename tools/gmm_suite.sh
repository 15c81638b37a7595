#!/bin/sh
# The hard-mixture suite: every method distills every exact Gaussian mixture into a
# one-step MLP student, then tools/gmm_suite.py prints a method x mixture table
# (modes recovered, max weight error, energy distance vs the exact-vs-exact floor,
# on-mode share, mode fill in 2-D).
#
# usage: tools/gmm_suite.sh [OUT_DIR]          (default runs/gmm_suite; runs resume/skip when done)
# environment:
#   VKD         the binary (default build/vkdistill)
#   METHODS     default "sid sim diff_instruct dmd2"
#   MIXTURES    default "ring8 grid25 nearfar gauss8d" (models/gmm_NAME.json)
#   STEPS       generator steps (default 2000)
#   EXTRA       extra JSON fields merged into every distill config, e.g. '"lr_g": 1e-4'
#   N           student samples for the statistics (default 10000)
# Cost on lavapipe: 1000 steps of SiD ~2.5 min on an idle 2-core machine, 10 min when shared;
# DMD2 (5 fake steps per generator step) about 2.5x that.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-runs/gmm_suite}
vkd=${VKD:-$root/build/vkdistill}
methods=${METHODS:-sid sim diff_instruct dmd2}
mixtures=${MIXTURES:-ring8 grid25 nearfar gauss8d}
steps=${STEPS:-2000}
n=${N:-10000}
extra=${EXTRA:-}
mkdir -p "$out"
res="$out/results.jsonl"
: >"$res"
for mix in $mixtures; do
    gmm="$root/models/gmm_$mix.json"
    dim=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["dim"])' "$gmm")
    student="$root/models/mlp_2d.json"
    [ "$dim" = 2 ] || student="$root/models/mlp_${dim}d.json"
    for m in $methods; do
        run="$out/${mix}_$m"
        cfg="$out/${mix}_$m.json"
        fake=1
        [ "$m" = dmd2 ] && fake=5
        # EXTRA's fields replace the defaults (a strict config refuses a field given twice)
        /usr/bin/python3 - "$cfg" "{$extra}" <<EOF
import json, sys
c = {"comment": "tools/gmm_suite.sh: $m on $mix", "method": "$m", "teacher": {"gmm": "$gmm"}, "student": "$student",
     "init": "random", "batch": 128, "steps": $steps, "fake_steps": $fake, "fake_warmup": 200,
     "lr_g": 0.0005, "lr_f": 0.001, "seed": 1, "log_every": $steps, "sample_every": 0, "ckpt_every": $steps,
     "ema_halflife_kimg": 8}
c.update(json.loads(sys.argv[2]))
json.dump(c, open(sys.argv[1], "w"), indent=1)
EOF
        if [ ! -f "$run/student.safetensors" ]; then
            rm -rf "$run"
            t0=$(date +%s)
            if ! nice -n 5 "$vkd" distill "$cfg" --out "$run" >"$run.log" 2>&1; then
                echo "FAIL $m on $mix: distill failed (see $run.log)" >&2
                tail -n 2 "$run.log" >&2
                continue
            fi
            echo "$m on $mix: $(($(date +%s) - t0)) s" >&2
        fi
        png=""
        [ "$dim" = 2 ] && png="-o $run/scatter.png --gmm $gmm"
        # the student's sigma_init, as distill printed it
        sig=$(sed -n 's/.*--one-step \([0-9.e+-]*\) .*/\1/p' "$run.log" | tail -n 1)
        # shellcheck disable=SC2086
        "$vkd" sample --model "$run/student.json" --weights "$run/student.safetensors" --one-step "$sig" \
            --n "$n" --seed 7 --npz "$run/samples.npz" $png 2>>"$run.log"
        /usr/bin/python3 "$root/tools/gmm_suite.py" eval "$gmm" "$run/samples.npz" method="$m" mixture="$mix" steps="$steps" >>"$res"
    done
done
/usr/bin/python3 "$root/tools/gmm_suite.py" table "$res"
