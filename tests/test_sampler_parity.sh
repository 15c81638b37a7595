#!/bin/sh
# Sampler and EDM-loss parity with PyTorch: the C side exports its Philox draws, the
# float64 reference (tools/reference/samplers.py) samples and differentiates with them,
# and the device sampler and loss are compared against it.
# usage: test_sampler_parity.sh SOURCE_DIR BUILD_DIR
set -eu
src="$1" build="$2"
out="$build/sampler_parity"
mkdir -p "$out"
"$build/tests/test_sampler_parity" export "$out"
/usr/bin/python3 "$src/tools/reference/samplers.py" "$src/models/mlp_2d.json" "$out/noise.safetensors" \
    "$out/weights.safetensors" "$out/ref.safetensors"
exec "$build/tests/test_sampler_parity" compare "$out" "$src/models/mlp_2d.json"
