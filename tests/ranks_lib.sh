# shellcheck shell=sh disable=SC2154
# Helpers of the data-parallel tests (test_mpi.sh, test_ranks.sh), sourced after
# they set $tmp: counted results, and a bad-input case.
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; sed 's/^/     /' "$tmp/err" | tail -20; }
# expect NAME PATTERN -- CMD...: a non-zero exit within 200 s and PATTERN on stderr.
expect() {
    name=$1 pat=$2
    shift 3
    if timeout 200 "$@" >"$tmp/out" 2>"$tmp/err"; then bad "$name (exit 0)"
    elif [ $? -eq 124 ]; then bad "$name (hung)"
    elif grep -q -- "$pat" "$tmp/err"; then ok "$name: $(grep -m1 -- "$pat" "$tmp/err")"
    else bad "$name (no '$pat')"; fi
}
# gmm_config FILE: GMM teacher -> MLP student, SiD, 20 steps (+4 warm-up), global batch 16,
# a checkpoint every 5 steps. A small learning rate keeps Adam from amplifying float rounding
# (its first steps are sign-like), so a tolerance can tell a wrong slice (differences of
# lr x steps ~ 2e-4) from the reduction order (~1e-6).
gmm_config() {
    cat >"$1" <<EOC
{"method": "sid", "teacher": {"gmm": "$src/models/gmm_ring8.json"}, "student": "$src/models/mlp_2d.json",
 "init": "random", "batch": 16, "steps": 20, "fake_steps": 1, "fake_warmup": 4, "lr_g": 1e-5, "lr_f": 2e-5,
 "grad_clip": 10, "seed": 1, "log_every": 5, "sample_every": 0, "ckpt_every": 5, "ema_halflife_kimg": 8}
EOC
}
