#!/usr/bin/env bash
# The project's test command (README.md): every test, on the CPU, plus the CUDA tests when this
# machine has a GPU (they print "skipped CUDA: ..." and pass where there is none).
# Tests build with opt-level 2 (see Cargo.toml's [profile.test]) so the numerics run fast.
set -euo pipefail
cd "$(dirname "$0")/.."
FEATURES=""
if [ -d src/backend/cuda ] && { [ -n "${NVCC:-}" ] || command -v nvcc >/dev/null 2>&1 || [ -x .toolchain/cuda/nvidia/cu13/bin/nvcc ]; }; then
  FEATURES="--features cuda"
fi
cargo test $FEATURES "$@"
