#!/bin/sh
# Convergence of every method on the 2-D mixture of 8 Gaussians (exact teacher):
# a one-step MLP generator trained from scratch for 1000 steps
# (tests/gmm/ci_*.json), evaluated on 2000 samples of its EMA.
# Reference energy distances to exact samples (1000 vs 1000): exact samples
# 0.006, a uniform ring through the modes 0.021, 7 of the 8 modes 0.056, 4 of 8
# modes 0.081, a Gaussian blob of the same scale 0.108.
# SiD, SiM, Diff-Instruct (mass-covering in this setting) must
#  - keep every mode: each mode's share (nearest-mode assignment) within
#    [1/32, 1/4], i.e. at least a quarter and at most twice its weight of 1/8;
#    the standard error at n = 2000 is 0.007, so this judges the generator,
#    not sampling noise;
#  - reach an energy distance below 0.06 (measured: 0.023 to 0.032).
# DMD2 (reverse KL, mode-seeking) concentrates on modes and may drop some — a
# known property of the objective, reported rather than hidden: it must put
# more than half its samples within 3 std of a mode (near_mode; the others
# measure ~0.35-0.4 as they still bridge neighbouring modes), keep at least 5
# of the 8 modes above a 1/32 share, and reach an energy distance below 0.09.
# usage: test_gmm_distill.sh vkdistill SOURCE_DIR
set -u
bin="$1" src="$2"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0
for m in sid sim diff_instruct dmd2; do
    if ! "$bin" distill "$src/tests/gmm/ci_$m.json" --out "$tmp/$m" >"$tmp/$m.log" 2>&1; then
        fail=$((fail + 1))
        echo "FAIL $m: distill failed"
        tail -n 3 "$tmp/$m.log"
        continue
    fi
    if /usr/bin/python3 - "$tmp/$m/metrics.jsonl" "$m" <<'PY'; then
import json, sys
last = json.loads(open(sys.argv[1]).read().splitlines()[-1])
w, ed, near = last["mode_weights"], last["energy_distance"], last.get("near_mode", float("nan"))
kept = sum(x >= 1 / 32 for x in w)
if sys.argv[2] == "dmd2":
    ok = near > 0.5 and kept >= 5 and ed < 0.09
else:
    ok = all(1 / 32 <= x <= 1 / 4 for x in w) and ed < 0.06
print("%s %-13s step %d: energy distance %.4f, near-mode share %.3f, modes kept %d/8, mode weights %s" %
      ("ok  " if ok else "FAIL", sys.argv[2], last["step"], ed, near, kept, " ".join("%.3f" % x for x in w)))
sys.exit(0 if ok else 1)
PY
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
    fi
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
