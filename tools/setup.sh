#!/bin/sh
# Installs the Debian packages vkdistill needs (only those missing), then
# configures and builds into ./build. Safe to run again: it does only what is
# left to do. PyTorch (Debian's python3-torch, CPU) is needed by the model
# parity tests, which compare against the references in tools/reference.
set -eu
cd "$(dirname "$0")/.."

pkgs="cmake make gcc pkg-config libvulkan-dev mesa-vulkan-drivers vulkan-validationlayers glslang-tools
      libcjson-dev libstb-dev zlib1g-dev liblapacke-dev libopenblas-dev libopenmpi-dev openmpi-bin python3 python3-torch python3-numpy python3-scipy dataset-fashion-mnist"

missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "setup: installing$missing" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -q >/dev/null
    # shellcheck disable=SC2086
    $sudo apt-get install -y -q --no-install-recommends $missing >/dev/null
fi

if [ ! -f build/CMakeCache.txt ]; then
    cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build build -j "$(nproc)" 2>&1 | grep -vE '^\[|^Consolidate|^Scanning|^Built target' || true
# A failed build must fail the script (the grep above hides the status).
cmake --build build -j "$(nproc)" >/dev/null
