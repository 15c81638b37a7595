#!/bin/sh
# Crash safety of the training loop: runs killed with SIGKILL mid-step,
# mid-checkpoint-write and mid-sample, or stopped with Ctrl-C, continue with
# --resume auto to weights bit-identical to an uninterrupted run; a partial
# checkpoint is never picked up; metrics.jsonl has each step once; a refused
# resume writes nothing. The kill points are test hooks (VKD_DEBUG_KILL,
# VKD_DEBUG_KILL_WRITE; src/train/run.h), so each crash lands where intended.
# usage: test_crash.sh vkdistill SOURCE_DIR
bin="$1" src="$2"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; [ -f "$tmp/err" ] && tail -n 5 "$tmp/err"; }

# Each step's metrics line exactly once, steps 1..N in order.
steps_once() {
    /usr/bin/python3 -c "
import json, sys
s = [json.loads(l)['step'] for l in open(sys.argv[1])]
assert s == list(range(1, int(sys.argv[2]) + 1)), s" "$1" "$2"
}

cat >"$tmp/gmm.json" <<EOC
{"method": "sid", "teacher": {"gmm": "$src/models/gmm_ring8.json"}, "student": "$src/models/mlp_2d.json",
 "batch": 32, "steps": 8, "fake_warmup": 3, "sample_every": 4, "ckpt_every": 2, "log_every": 1, "ema_halflife_kimg": 1}
EOC
"$bin" distill "$tmp/gmm.json" --out "$tmp/ref" >/dev/null 2>"$tmp/err" || bad "uninterrupted distill"

# crash_resume NAME ENV... : run with the crash hook (must die by SIGKILL), then resume and compare.
crash_resume() {
    name="$1"
    shift
    rm -rf "$tmp/run"
    env "$@" "$bin" distill "$tmp/gmm.json" --out "$tmp/run" >/dev/null 2>"$tmp/err"
    rc=$?
    if [ "$rc" -ne 137 ]; then bad "distill $name: expected death by SIGKILL, rc=$rc"; return; fi
    had_tmp=$(ls "$tmp/run/checkpoints" | grep -c '\.tmp$')
    if "$bin" distill "$tmp/gmm.json" --out "$tmp/run" --resume auto >/dev/null 2>"$tmp/err" &&
        cmp -s "$tmp/ref/student.safetensors" "$tmp/run/student.safetensors" && steps_once "$tmp/run/metrics.jsonl" 8; then
        ok "distill killed $name, resumed: bit-identical weights, each step logged once"
    else
        bad "distill killed $name"
    fi
}
crash_resume "mid-step (between the fake and generator phases of step 5)" VKD_DEBUG_KILL=step:5
crash_resume "mid-sample (step 4)" VKD_DEBUG_KILL=sample:4
crash_resume "before its first checkpoint (step 1)" VKD_DEBUG_KILL=step:1
crash_resume "mid-checkpoint-write (ckpt 6 half written)" VKD_DEBUG_KILL_WRITE=ckpt-00000006
# That crash left a partial ckpt-00000006.safetensors.tmp: it must have been there and been ignored.
if [ "$had_tmp" -eq 1 ] && grep -q "resuming .*ckpt-00000004.safetensors at step 4" "$tmp/err"; then
    ok "a partial checkpoint (.tmp) is never picked up: resumed from step 4"
else
    bad "partial checkpoint"
fi

# Ctrl-C: a checkpoint, exit status 130, then an exact resume.
sed -e 's/"steps": 8/"steps": 3000/' -e 's/"ckpt_every": 2/"ckpt_every": 100000/' -e 's/"sample_every": 4/"sample_every": 0/' \
    "$tmp/gmm.json" >"$tmp/long.json"
rm -rf "$tmp/int"
"$bin" distill "$tmp/long.json" --out "$tmp/int" >/dev/null 2>"$tmp/err" &
pid=$!
for _ in $(seq 1 600); do [ -s "$tmp/int/metrics.jsonl" ] && break; sleep 0.1; done
kill -INT "$pid"
wait "$pid"
rc=$?
n=$(ls "$tmp/int/checkpoints" 2>/dev/null | grep -c '^ckpt-.*\.safetensors$')
if [ "$rc" -eq 130 ] && [ "$n" -ge 1 ] && grep -q "interrupted at step" "$tmp/err"; then
    ok "Ctrl-C saves a checkpoint and exits 130"
else
    bad "Ctrl-C: rc=$rc, $n checkpoint(s)"
fi
at=$(ls "$tmp/int/checkpoints" | sed -n 's/^ckpt-0*\([0-9]*\)\.safetensors$/\1/p' | sort -n | tail -1)
sed -e "s/\"steps\": 3000/\"steps\": $((at + 2))/" "$tmp/long.json" >"$tmp/long2.json"
# The same run to step at+2, uninterrupted, must equal the interrupted one resumed to at+2.
if "$bin" distill "$tmp/long.json" --out "$tmp/int" --resume auto --steps $((at + 2)) >/dev/null 2>"$tmp/err" &&
    "$bin" distill "$tmp/long.json" --out "$tmp/int_ref" --steps $((at + 2)) >/dev/null 2>>"$tmp/err" &&
    cmp -s "$tmp/int/student.safetensors" "$tmp/int_ref/student.safetensors"; then
    ok "Ctrl-C at step $at, resumed: bit-identical to an uninterrupted run"
else
    bad "resume after Ctrl-C"
fi

# Ctrl-C during the fake warm-up: prompt exit 130, nothing saved.
sed -e 's/"fake_warmup": 3/"fake_warmup": 100000/' "$tmp/long.json" >"$tmp/warm.json"
rm -rf "$tmp/warm"
# Empty the log here, not in the child's redirection: otherwise the wait below can
# find the previous run's banner and signal the process before it catches SIGINT
# (a background job of a script starts with SIGINT ignored), and it never stops.
: >"$tmp/err"
"$bin" distill "$tmp/warm.json" --out "$tmp/warm" >/dev/null 2>>"$tmp/err" &
pid=$!
for _ in $(seq 1 600); do grep -q "distilling with" "$tmp/err" && break; sleep 0.1; done
sleep 1
kill -INT "$pid"
t0=$(date +%s)
(sleep 60 && kill -KILL "$pid") >/dev/null 2>&1 &  # a lost signal fails the check below instead of hanging
dog=$!
wait "$pid"
rc=$?
pkill -P "$dog" sleep 2>/dev/null
kill "$dog" 2>/dev/null
dt=$(($(date +%s) - t0))
if [ "$rc" -eq 130 ] && [ "$dt" -le 10 ] && grep -q "interrupted before step 1" "$tmp/err" &&
    [ -z "$(ls "$tmp/warm/checkpoints")" ]; then
    ok "Ctrl-C during the fake warm-up exits 130 within ${dt}s and saves nothing"
else
    bad "Ctrl-C during warm-up: rc=$rc after ${dt}s"
fi

# A refused resume changes nothing: config.json stays, no folder appears for a wrong-kind checkpoint.
cp "$tmp/ref/config.json" "$tmp/config.before"
sed 's/"batch": 32/"batch": 16/' "$tmp/gmm.json" >"$tmp/other.json"
if ! "$bin" distill "$tmp/other.json" --out "$tmp/ref" --resume auto >/dev/null 2>"$tmp/err" &&
    grep -q "different train_config" "$tmp/err" && cmp -s "$tmp/config.before" "$tmp/ref/config.json" &&
    ! "$bin" distill "$tmp/gmm.json" --out "$tmp/fresh" --resume "$tmp/no-such.safetensors" >/dev/null 2>"$tmp/err" &&
    [ ! -e "$tmp/fresh" ]; then
    ok "a refused resume leaves config.json as it was and creates no run folder"
else
    bad "refused resume"
fi

# train-teacher: killed mid-checkpoint-write and mid-step, resumed: the same teacher.
if [ -d /usr/share/datasets/fashion-mnist ]; then
    sed -e 's/"label_dim": 3/"label_dim": 10/' "$src/models/unet_tiny.json" >"$tmp/tiny.json"
    cat >"$tmp/teacher.json" <<EOC
{"model": "$tmp/tiny.json", "dataset": {"source": "/usr/share/datasets/fashion-mnist", "resolution": 16, "max_images": 256},
 "batch": 4, "steps": 6, "log_every": 1, "sample_every": 0, "ckpt_every": 2}
EOC
    "$bin" train-teacher "$tmp/teacher.json" --out "$tmp/tref" >/dev/null 2>"$tmp/err" || bad "uninterrupted train-teacher"
    env VKD_DEBUG_KILL_WRITE=ckpt-00000004 "$bin" train-teacher "$tmp/teacher.json" --out "$tmp/t1" >/dev/null 2>&1
    r1=$?
    if [ "$r1" -eq 137 ] && "$bin" train-teacher "$tmp/teacher.json" --out "$tmp/t1" --resume auto >/dev/null 2>"$tmp/err" &&
        cmp -s "$tmp/tref/teacher.safetensors" "$tmp/t1/teacher.safetensors" && steps_once "$tmp/t1/metrics.jsonl" 6; then
        ok "train-teacher killed mid-checkpoint-write, resumed: bit-identical teacher"
    else
        bad "train-teacher crash (rc=$r1)"
    fi
    env VKD_DEBUG_KILL=ckpt:6 "$bin" train-teacher "$tmp/teacher.json" --out "$tmp/t2" >/dev/null 2>&1
    r2=$?
    if [ "$r2" -eq 137 ] && "$bin" train-teacher "$tmp/teacher.json" --out "$tmp/t2" --resume auto >/dev/null 2>"$tmp/err" &&
        cmp -s "$tmp/tref/teacher.safetensors" "$tmp/t2/teacher.safetensors" && steps_once "$tmp/t2/metrics.jsonl" 6; then
        ok "train-teacher killed after its last step, before the checkpoint, resumed: bit-identical teacher"
    else
        bad "train-teacher crash at the end (rc=$r2)"
    fi
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
