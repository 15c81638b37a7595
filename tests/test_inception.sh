#!/bin/sh
# FID Inception parity: tools/reference/inception.py writes random weights as a torch state
# dict (like pytorch-fid's .pth) and a float64 fixture; tools/convert_inception.py converts the
# state dict to safetensors; test_inception loads that and compares features and logits.
# usage: test_inception.sh SOURCE_DIR BUILD_DIR
set -eu
src="$1" build="$2"
out="$build/inception"
mkdir -p "$out"
sd="$out/random_inception.pth" fx="$out/inception_fixture.safetensors" w="$out/random_inception.safetensors"
if [ ! -f "$fx" ] || [ ! -f "$sd" ] || [ "$src/tools/reference/inception.py" -nt "$fx" ]; then
    /usr/bin/python3 "$src/tools/reference/inception.py" "$sd" "$fx" --batch 2 --size 64 --seed 1
fi
if [ ! -f "$w" ] || [ "$sd" -nt "$w" ] || [ "$src/tools/convert_inception.py" -nt "$w" ]; then
    /usr/bin/python3 "$src/tools/convert_inception.py" "$sd" "$w"
fi
exec "$build/tests/test_inception" "$w" "$fx"
