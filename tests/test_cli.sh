#!/bin/sh
# Bad input at the command line: each case must exit non-zero with exactly one
# line on stderr that says what is wrong, and never crash or hang.
# usage: test_cli.sh path/to/vkdistill
bin="$1"
pass=0
fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# expect NAME EXPECTED_RC PATTERN -- command...
expect() {
    name="$1" want="$2" pattern="$3"
    shift 4
    timeout 120 "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    lines=$(wc -l <"$tmp/err")
    if [ "$rc" -eq "$want" ] && [ "$lines" -eq 1 ] && grep -q -- "$pattern" "$tmp/err"; then
        pass=$((pass + 1))
        echo "ok   $name: $(cat "$tmp/err")"
    else
        fail=$((fail + 1))
        echo "FAIL $name: rc=$rc (want $want), $lines stderr line(s):"
        sed 's/^/     /' "$tmp/err"
    fi
}

expect "unknown verb" 2 "unknown verb 'frobnicate'" -- "$bin" frobnicate
expect "unknown flag" 2 "unknown option '--fast'" -- "$bin" --fast info
expect "missing --device value" 2 "needs an index or a name" -- "$bin" --device
expect "device index out of range" 1 "device index 99 out of range" -- "$bin" --device 99 info
expect "unknown device name" 1 "no Vulkan device matches 'nosuchgpu'" -- "$bin" --device nosuchgpu info
expect "VKD_DEVICE unknown" 1 "no Vulkan device matches 'nosuchgpu'" -- env VKD_DEVICE=nosuchgpu "$bin" info
expect "no Vulkan driver" 1 "no Vulkan" -- env VK_DRIVER_FILES="$tmp/none.json" VK_ICD_FILENAMES="$tmp/none.json" "$bin" info
expect "info bad argument" 2 "unknown argument '--verbose'" -- "$bin" info --verbose
expect "bench without kind" 2 "expected 'gemm'" -- "$bin" bench
expect "bench bad shape" 2 "bad --shape '12x'" -- "$bin" bench gemm --shape 12x
expect "bench bad reps" 2 "--reps must be a positive integer" -- "$bin" bench gemm --reps -3

# And the good paths work.
if "$bin" info >"$tmp/out" 2>"$tmp/err" && grep -q "^device:" "$tmp/out"; then
    pass=$((pass + 1)); echo "ok   info prints the device"
else
    fail=$((fail + 1)); echo "FAIL info"; cat "$tmp/err"
fi
if "$bin" info --list >"$tmp/out" 2>"$tmp/err" && grep -q "^0: " "$tmp/out"; then
    pass=$((pass + 1)); echo "ok   info --list: $(head -1 "$tmp/out")"
else
    fail=$((fail + 1)); echo "FAIL info --list"; cat "$tmp/err"
fi
if VKD_VALIDATION=1 "$bin" selfcheck >"$tmp/out" 2>"$tmp/err" && grep -q "selfcheck: ok" "$tmp/out"; then
    pass=$((pass + 1)); echo "ok   selfcheck under validation"
else
    fail=$((fail + 1)); echo "FAIL selfcheck"; cat "$tmp/out" "$tmp/err"
fi
if "$bin" bench gemm --shape 64x48x40 --shape 33x17x9tAtB --reps 2 >"$tmp/out" 2>"$tmp/err" &&
    [ "$(grep -c '"gflops":' "$tmp/out")" -eq 2 ]; then
    pass=$((pass + 1)); echo "ok   bench gemm prints one JSON line per shape"
else
    fail=$((fail + 1)); echo "FAIL bench gemm"; cat "$tmp/out" "$tmp/err"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
