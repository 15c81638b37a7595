#!/bin/sh
# Convergence of every method on the 2-D mixture of 8 Gaussians (exact teacher):
# a one-step MLP generator trained from scratch (tests/gmm/ci_*.json) must
#  - keep every mode: each mode's share of 2000 samples (nearest-mode assignment)
#    within [1/32, 1/4], i.e. at least a quarter and at most twice its weight
#    of 1/8 — the standard error at n = 2000 is 0.007, so this is about the
#    generator, not sampling noise; a dropped mode has share ~0;
#  - reach an energy distance to exact samples below 0.09: exact-vs-exact
#    measures 0.006, a Gaussian blob of the same scale 0.108 and a ring that
#    covers only 4 of the 8 modes 0.081.
# The short CI budget trains a ring-shaped generator whose samples still bridge
# neighbouring modes (reported as near_mode: the share within 3 std of a mode);
# the README records longer runs.
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
ok = all(1 / 32 <= x <= 1 / 4 for x in w) and ed < 0.09
print("%s %-13s step %d: energy distance %.4f, near-mode share %.3f, mode weights %s" %
      ("ok  " if ok else "FAIL", sys.argv[2], last["step"], ed, near, " ".join("%.3f" % x for x in w)))
sys.exit(0 if ok else 1)
PY
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
    fi
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
