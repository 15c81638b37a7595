#!/bin/sh
# Generates the PyTorch parity fixtures (tools/reference/make_parity.py, float64
# on the CPU) and checks the Vulkan models against them.
# usage: test_parity.sh SOURCE_DIR BUILD_DIR
set -eu
src="$1" build="$2"
out="$build/parity"
mkdir -p "$out"
fixtures=""
set --  # the stale fixtures' CONFIG OUT pairs
for cfg in unet_tiny unet_tiny_ncsnpp ddpmpp_reduced dit_tiny mlp_2d mlp_2d_nonorm; do
    f="$out/$cfg.safetensors"
    # Regenerate when the config or the reference changed.
    if [ ! -f "$f" ] || [ "$src/models/$cfg.json" -nt "$f" ] || [ "$src/tools/reference/models.py" -nt "$f" ]; then
        set -- "$@" "$src/models/$cfg.json" "$f"
    fi
    fixtures="$fixtures $f"
done
# All stale fixtures in one process: torch's import alone takes 2-4 s here.
[ $# -eq 0 ] || /usr/bin/python3 "$src/tools/reference/make_parity.py" "$@" --batch 3 --seed 1 --no-acts
# shellcheck disable=SC2086
exec "$build/tests/test_parity" $fixtures
