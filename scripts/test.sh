#!/usr/bin/env bash
# The project's test command (README.md): every test, on the CPU, plus the CUDA tests when this
# machine has a GPU (they print "skipped CUDA: ..." and pass where there is none). With nvcc present
# (scripts/setup.sh installs it) the build includes the `cuda` feature, so every kernel compiles.
# Tests build with opt-level 2 (see Cargo.toml's [profile.test]) so the numerics run fast.
# Ends with one summary line over all test binaries: "summary: N passed, M failed".
set -euo pipefail
cd "$(dirname "$0")/.."
FEATURES=()
if [ -d src/backend/cuda ] && { [ -n "${NVCC:-}" ] || command -v nvcc >/dev/null 2>&1 || [ -x .toolchain/cuda/nvidia/cu13/bin/nvcc ]; }; then
  FEATURES=(--features cuda,cuda-emu)
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test "${FEATURES[@]}" "$@" 2>&1 | tee "$log" || status=$?
passed=$(grep -E '^test result:' "$log" | sed -E 's/.* ([0-9]+) passed.*/\1/' | awk '{s+=$1} END {print s+0}')
failed=$(grep -E '^test result:' "$log" | sed -E 's/.* ([0-9]+) failed.*/\1/' | awk '{s+=$1} END {print s+0}')
echo
echo "summary: ${passed} passed, ${failed} failed"
exit "$status"
