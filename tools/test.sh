#!/bin/sh
# The whole test suite: installs what is missing, builds, runs every test
# (GPU tests under the Khronos validation layer, any message fails them).
set -eu
cd "$(dirname "$0")/.."
tools/setup.sh
cd build
ctest --output-on-failure -j 2 "$@"
