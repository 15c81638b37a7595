#!/bin/sh
# Hardening checks (issue 14), one script for CI:
#  1. an AddressSanitizer + UndefinedBehaviorSanitizer build (clang, in
#     build-asan/) runs the fast tests: every report fails the run (UBSan does
#     not recover; LeakSanitizer ignores only Mesa's own leaks, by library name,
#     tools/lsan.supp);
#  2. the same build's libFuzzer targets (tests/fuzz, one per parser of
#     outside input) each fuzz for FUZZ_SECONDS (default 10) from their seed
#     corpus; a crash leaves its input in build-asan/fuzz-crashes/ and fails.
#     Each crash found becomes a fix plus a file in tests/fuzz/regress/NAME,
#     which the ordinary ctest run replays.
# One build serves both (-fsanitize=fuzzer-no-link only adds coverage hooks),
# which halves the compile time on a 2-core CI machine.
# Usage: tools/test_hardening.sh [asan|fuzz|all]   (default all)
set -eu
cd "$(dirname "$0")/.."
what=${1:-all}
FUZZ_SECONDS=${FUZZ_SECONDS:-10}
jobs=$(nproc)

# Debian 12: clang 14 and its compiler-rt (ASan, UBSan and libFuzzer runtimes).
pkgs="clang libclang-rt-14-dev"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "hardening: installing$missing" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -q >/dev/null
    # shellcheck disable=SC2086
    $sudo apt-get install -y -q --no-install-recommends $missing >/dev/null
fi

t0=$(date +%s)
san="-fsanitize=address,undefined,fuzzer-no-link -fno-sanitize-recover=all -fno-omit-frame-pointer"
if [ ! -f build-asan/CMakeCache.txt ]; then
    CC=clang cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_FLAGS="$san" -DVKD_FUZZ=ON \
        -DVKD_ASAN_RUN=ON >/dev/null
fi
cmake --build build-asan -j "$jobs" 2>&1 | grep -E 'error|warning' || true
cmake --build build-asan -j "$jobs" >/dev/null
echo "hardening: sanitizer build $(($(date +%s) - t0)) s"

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1:detect_stack_use_after_return=1:strict_string_checks=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export LSAN_OPTIONS="suppressions=$(pwd)/tools/lsan.supp:print_suppressions=0"
# Libraries stay loaded until LeakSanitizer's exit check (tools/keep_libraries.c says why).
cc -shared -fPIC -O2 -o build-asan/libkeep_libraries.so tools/keep_libraries.c
export LD_PRELOAD="$(pwd)/build-asan/libkeep_libraries.so${LD_PRELOAD:+:$LD_PRELOAD}"
status=0

if [ "$what" = all ] || [ "$what" = asan ]; then
    t1=$(date +%s)
    # The fast tests: everything but the convergence runs and the PyTorch
    # parity comparisons (which run the same code as the op tests, longer).
    # (install builds the example with a plain cc, which cannot link the instrumented library)
    if ! (cd build-asan && ctest -j "$jobs" --output-on-failure -E '^(gmm_distill_sid|gmm_distill_dmd2|parity|sampler_parity|inception|install)$'); then
        status=1
    fi
    echo "hardening: sanitizer tests $(($(date +%s) - t1)) s"
fi

if [ "$what" = all ] || [ "$what" = fuzz ]; then
    mkdir -p build-asan/fuzz-crashes
    for t in safetensors npz config idx cifar image checkpoint; do
        t1=$(date +%s)
        # A fresh working corpus each run (the seeds stay as they are in git).
        rm -rf "build-asan/fuzz-corpus/$t"
        mkdir -p "build-asan/fuzz-corpus/$t"
        log="build-asan/fuzz-$t.log"
        # -rss_limit_mb: a header may legally announce a few hundred MB; more is an out-of-memory finding.
        if build-asan/tests/fuzz/fuzz_"$t" -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=2048 -max_len=16384 \
            -timeout=20 -artifact_prefix="build-asan/fuzz-crashes/$t-" -print_final_stats=1 \
            "build-asan/fuzz-corpus/$t" "tests/fuzz/corpus/$t" >"$log" 2>&1; then
            echo "hardening: fuzz_$t: $(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$') inputs in $(($(date +%s) - t1)) s, no crash"
        else
            echo "hardening: fuzz_$t FOUND A CRASH (input in build-asan/fuzz-crashes/):" >&2
            grep -E 'ERROR|SUMMARY|runtime error|#[0-9] ' "$log" | head -20 >&2
            status=1
        fi
    done
fi
echo "hardening: total $(($(date +%s) - t0)) s, $([ $status = 0 ] && echo ok || echo FAILED)"
exit $status
