#!/bin/sh
# The main job on the best Vulkan device present (lavapipe if there is no GPU):
# for now, the device report and a self-check (GEMM against the CPU and a
# replayed training step). Later issues make this the distillation run.
set -eu
cd "$(dirname "$0")/.."
tools/setup.sh
build/vkdistill info
build/vkdistill selfcheck
