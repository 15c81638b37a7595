#!/bin/sh
# Generates the PyTorch parity fixtures (tools/reference/make_parity.py, float64
# on the CPU) and checks the Vulkan models against them.
# usage: test_parity.sh SOURCE_DIR BUILD_DIR
set -eu
src="$1" build="$2"
out="$build/parity"
mkdir -p "$out"
fixtures=""
for cfg in unet_tiny unet_tiny_ncsnpp ddpmpp_reduced dit_tiny mlp_2d mlp_2d_nonorm; do
    f="$out/$cfg.safetensors"
    # Regenerate when the config or the reference changed.
    if [ ! -f "$f" ] || [ "$src/models/$cfg.json" -nt "$f" ] || [ "$src/tools/reference/models.py" -nt "$f" ]; then
        /usr/bin/python3 "$src/tools/reference/make_parity.py" "$src/models/$cfg.json" "$f" --batch 3 --seed 1 --no-acts
    fi
    fixtures="$fixtures $f"
done
# shellcheck disable=SC2086
exec "$build/tests/test_parity" $fixtures
