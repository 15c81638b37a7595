#!/bin/sh
# Installs vkdistill into a temporary prefix (cmake --install), builds the C API
# example samples/distill_api.c against the installed copy with pkg-config
# alone (no source tree on the include path), and runs it briefly.
# usage: test_install.sh BUILD_DIR SOURCE_DIR
set -u
build="$1" src="$2"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >"$tmp/log" 2>&1 || { cat "$tmp/log"; echo "0 passed, 1 failed"; exit 1; }
pass=0 fail=0
pc="$tmp/prefix/lib/pkgconfig"
[ -d "$pc" ] || pc=$(dirname "$(find "$tmp/prefix" -name vkdistill.pc | head -1)")
for f in "$pc/vkdistill.pc" "$tmp/prefix/include/vkdistill/distill.h" "$tmp/prefix/bin/vkdistill" \
         "$tmp/prefix/share/vkdistill/models/gmm_ring8.json"; do
    if [ -e "$f" ]; then pass=$((pass + 1)); echo "ok   installed ${f#$tmp/prefix/}"; else fail=$((fail + 1)); echo "FAIL missing ${f#$tmp/prefix/}"; fi
done
lib=$(find "$tmp/prefix" -name libvkdistill.a | head -1)
if [ -n "$lib" ]; then pass=$((pass + 1)); echo "ok   installed ${lib#$tmp/prefix/}"; else fail=$((fail + 1)); echo "FAIL no libvkdistill.a"; fi
if cc -std=c11 -Wall -Werror "$src/samples/distill_api.c" $(PKG_CONFIG_PATH="$pc" pkg-config --cflags --libs vkdistill) \
       -o "$tmp/distill_api" 2>"$tmp/cc.log" &&
    "$tmp/distill_api" "$tmp/prefix/share/vkdistill/models" 20 >"$tmp/out" 2>&1 &&
    grep -q "energy distance to exact samples" "$tmp/out"; then
    pass=$((pass + 1)); echo "ok   samples/distill_api.c builds against the installed copy (pkg-config) and runs: $(grep energy "$tmp/out")"
else
    fail=$((fail + 1)); echo "FAIL example against the installed copy"; cat "$tmp/cc.log" "$tmp/out"
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
