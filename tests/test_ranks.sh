#!/bin/sh
# Ranks as threads (`vkdistill --ranks N`, src/dist/local.c): 2 ranks in one
# process give the weights of 1 rank up to the reduction order, and the bits
# of 2 ranks under mpirun (the same split, the same a + b); a killed-and-resumed
# run is bit for bit an uninterrupted one; bench model / bench step split the
# batch; bad input ends the process with one line, never a hang. Runs without
# MPI too (the mpirun comparisons are then left out).
# usage: test_ranks.sh BIN SRC HAVE_MPI
set -u
bin=$1
src=$2
have_mpi=${3:-0}
command -v mpirun >/dev/null 2>&1 || have_mpi=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_base_warn_component_unused=0
export VKD_MPI_TIMEOUT=60
# Open MPI's allocations under the sanitizer build (see test_mpi.sh): leak checks off for mpirun
# only; the thread ranks keep them.
mpirun_nl="env ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 mpirun --oversubscribe --bind-to none"
cmp_py="/usr/bin/python3 $src/tests/mpi_compare.py"
# shellcheck source=tests/ranks_lib.sh
. "$src/tests/ranks_lib.sh"

# (1) GMM teacher -> MLP student, SiD (ranks_lib.sh's gmm_config, test_mpi.sh's run).
gmm_config "$tmp/gmm.json"
ck=checkpoints/ckpt-00000020.safetensors
if "$bin" distill "$tmp/gmm.json" --out "$tmp/g1" >"$tmp/out" 2>"$tmp/err" &&
    "$bin" --ranks 2 distill "$tmp/gmm.json" --out "$tmp/g2" >"$tmp/out" 2>>"$tmp/err" &&
    grep -q "rank 1 of 2 (node-local 1): device" "$tmp/err" && grep -q '"ranks"' "$tmp/g2/$ck" &&
    [ "$(grep -c '"step"' "$tmp/g2/metrics.jsonl")" -eq 4 ] &&
    $cmp_py "$tmp/g1/$ck" "$tmp/g2/$ck" --atol 2e-5 >>"$tmp/err" 2>&1; then
    ok "distill (GMM, SiD): 2 thread ranks x 8 == 1 rank x 16 after 20 steps ($(tail -1 "$tmp/err"))"
else
    bad "distill: 2 thread ranks x 8 vs 1 rank x 16"
fi
if [ "$have_mpi" = 1 ]; then
    # shellcheck disable=SC2086
    if $mpirun_nl -n 2 "$bin" distill "$tmp/gmm.json" --out "$tmp/g3" >"$tmp/out" 2>"$tmp/err" &&
        $cmp_py "$tmp/g2/$ck" "$tmp/g3/$ck" >>"$tmp/err" 2>&1 && cmp "$tmp/g2/student.safetensors" "$tmp/g3/student.safetensors" 2>>"$tmp/err"; then
        ok "distill: 2 thread ranks == 2 ranks under mpirun, bit for bit"
    else
        bad "distill: 2 thread ranks vs mpirun -n 2"
    fi
else
    echo "(no MPI: the comparison with mpirun is left out)"
fi

# (1b) The optimizers sharded over the ranks (the default: each rank updates its share of the
# weights, then the shares are exchanged) against every rank updating every weight
# (VKD_SHARD=0): the same weights, and in each checkpoint the same Adam moments, bit for bit.
same_runs() {  # same_runs A B FILE...: the files of run folders A and B are byte for byte equal
    a=$1 b=$2
    shift 2
    for f in "$@"; do cmp "$a/$f" "$b/$f" 2>>"$tmp/err" || return 1; done
}
if VKD_SHARD=0 "$bin" --ranks 2 distill "$tmp/gmm.json" --out "$tmp/g0" >"$tmp/out" 2>"$tmp/err" &&
    same_runs "$tmp/g0" "$tmp/g2" checkpoints/ckpt-00000005.safetensors "$ck" student.safetensors; then
    ok "distill: the optimizers sharded over 2 thread ranks == unsharded, bit for bit (weights, EMA, moments)"
else
    bad "distill: sharded vs unsharded optimizers"
fi
if [ -d /usr/share/datasets/fashion-mnist ]; then
    sed 's/"label_dim": 3/"label_dim": 10/' "$src/models/unet_tiny.json" >"$tmp/tiny.json"
    cat >"$tmp/teacher.json" <<EOC
{"model": "$tmp/tiny.json", "dataset": {"source": "/usr/share/datasets/fashion-mnist", "resolution": 16, "max_images": 256, "flip": true},
 "batch": 4, "steps": 3, "lr": 1e-4, "log_every": 3, "sample_every": 0, "ckpt_every": 3}
EOC
    if "$bin" --ranks 2 train-teacher "$tmp/teacher.json" --out "$tmp/t1" >"$tmp/out" 2>"$tmp/err" &&
        VKD_SHARD=0 "$bin" --ranks 2 train-teacher "$tmp/teacher.json" --out "$tmp/t0" >"$tmp/out" 2>>"$tmp/err" &&
        same_runs "$tmp/t0" "$tmp/t1" checkpoints/ckpt-00000003.safetensors teacher.safetensors; then
        ok "train-teacher (UNet): the optimizer sharded over 2 thread ranks == unsharded, bit for bit"
    else
        bad "train-teacher: sharded vs unsharded optimizer"
    fi
else
    echo "(Fashion-MNIST not installed: the teacher's sharding case is left out)"
fi

# (2) Killed (the process, both ranks) during step 13, resumed from step 10: bit for bit.
if ! VKD_DEBUG_KILL=step:13 "$bin" --ranks 2 distill "$tmp/gmm.json" --out "$tmp/g4" >"$tmp/out" 2>"$tmp/err" &&
    [ ! -f "$tmp/g4/student.safetensors" ] &&
    "$bin" --ranks 2 distill "$tmp/gmm.json" --out "$tmp/g4" --resume auto >"$tmp/out" 2>>"$tmp/err" &&
    grep -q "resuming .*at step 10" "$tmp/err" &&
    $cmp_py "$tmp/g2/$ck" "$tmp/g4/$ck" >>"$tmp/err" 2>&1 && cmp "$tmp/g2/student.safetensors" "$tmp/g4/student.safetensors"; then
    ok "distill on 2 thread ranks killed at step 13 and resumed == uninterrupted, bit for bit"
else
    bad "distill: 2-thread-rank resume"
fi

# (3) The benches: one JSON line (rank 0), the batch split, the gradients exchanged in the timed run.
json_ok() {  # json_ok NAME PYTHON-ASSERTS -- CMD...
    name=$1 check=$2
    shift 3
    if "$@" >"$tmp/out" 2>"$tmp/err" && [ "$(wc -l <"$tmp/out")" -eq 1 ] &&
        /usr/bin/python3 -c "import json, sys; r = json.loads(open(sys.argv[1]).read()); $check" "$tmp/out" 2>>"$tmp/err"; then
        ok "$name: $(cut -c1-60 "$tmp/out")..."
    else
        cat "$tmp/out" >>"$tmp/err"
        bad "$name"
    fi
}
json_ok "bench model on 2 thread ranks" \
    "assert r['ranks'] == 2 and r['batch'] == 4 and r['batch_per_rank'] == 2 and r['fwd_bwd_ms_per_img'] > 0 and r['fwd_ms_per_img'] > 0 and r['runs'] == 3 and r['fwd_ms_per_img_median'] >= r['fwd_ms_per_img'] and r['fwd_bwd_ms_per_img_median'] >= r['fwd_bwd_ms_per_img'], r" -- \
    "$bin" --ranks 2 bench model --config "$src/models/mlp_2d.json" --batch 4 --runs 3
json_ok "bench step on 2 thread ranks" \
    "assert r['ranks'] == 2 and r['batch_per_rank'] == 8 and r['img_per_s'] > 0 and r['allreduce_mib_per_iter'] > 0, r" -- \
    "$bin" --ranks 2 bench step "$tmp/gmm.json" --iters 2 --warmup 1
# Each rank's device threads: lavapipe's worker threads are left out where the CPUs go one a rank.
half=$(($(getconf _NPROCESSORS_ONLN) / 2))
[ "$half" -le 1 ] && half=0
if env -u LP_NUM_THREADS "$bin" --ranks 2 info >"$tmp/out" 2>"$tmp/err" &&
    [ "$(grep -c "device threads: *LP_NUM_THREADS=$half\b" "$tmp/out")" -eq 2 ]; then
    ok "device threads: LP_NUM_THREADS=$half on each of 2 thread ranks"
else
    cat "$tmp/out" >>"$tmp/err"
    bad "device threads of thread ranks"
fi

# (4) Bad input: one line naming the problem, a non-zero exit, no hang.
expect "--ranks 0" "--ranks needs a number of ranks from 1 to 64" -- "$bin" --ranks 0 info
expect "--ranks x" "--ranks needs a number of ranks from 1 to 64" -- "$bin" --ranks x info
sed 's/"batch": 16/"batch": 15/' "$tmp/gmm.json" >"$tmp/b15.json"
expect "batch not divisible by the thread ranks" "field 'batch': the global batch 15 does not split evenly over 2 ranks" -- \
    "$bin" --ranks 2 distill "$tmp/b15.json" --out "$tmp/b15"
expect "bench model: batch not divisible by the thread ranks" "field '--batch': the global batch 5 does not split evenly over 2 ranks" -- \
    "$bin" --ranks 2 bench model --config "$src/models/mlp_2d.json" --batch 5
expect "sample is not data parallel" "sample runs on one rank (this run has 2); run it without mpirun or --ranks" -- \
    "$bin" --ranks 2 sample --model "$src/models/mlp_2d.json" --weights "$tmp/g1/student.safetensors" --npz "$tmp/s.npz"
expect "train-classifier is not data parallel" "train-classifier runs on one rank" -- \
    "$bin" --ranks 2 train-classifier "$tmp/none.json" --out "$tmp/cls"
mkdir -p "$tmp/ro" && : >"$tmp/ro/checkpoints"  # a file where the checkpoint folder goes
expect "rank 0 fails alone (its checkpoint), rank 1 is released" "rank 0 of 2: .*checkpoints/ckpt-00000005.safetensors: cannot create" -- \
    "$bin" --ranks 2 distill "$tmp/gmm.json" --out "$tmp/ro"
expect "a device that is not there" "rank 1 of 2: device index 7 out of range" -- \
    "$bin" --ranks 2 --device 7 distill "$tmp/gmm.json" --out "$tmp/dev"
if [ "$have_mpi" = 1 ]; then
    # shellcheck disable=SC2086
    expect "--ranks under mpirun" "ranks as threads inside an mpirun job of 2 ranks" -- \
        $mpirun_nl -n 2 "$bin" --ranks 2 info
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
