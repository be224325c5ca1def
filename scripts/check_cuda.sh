#!/usr/bin/env bash
# The GPU-machine check: puts the CUDA 13 / cuDNN libraries from PyTorch's pip wheels on the loader
# path, then runs the op tests with the `cuda` feature and ENGINE_REQUIRE_CUDA=1 (so a CUDA device that
# cannot be opened fails instead of being skipped). Every fixture test then also checks CUDA against
# PyTorch, and tests/cuda_vs_cpu.rs checks CUDA against the CPU backend in f16, f32 and f64.
# Usage: scripts/check_cuda.sh [extra cargo test args]
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
PYTHON="${PYTHON:-python3}"
SITE="$("$PYTHON" -c 'import nvidia, os; print(os.path.dirname(list(nvidia.__path__)[0]))' 2>/dev/null || true)"
if [[ -n "$SITE" ]]; then
    export LD_LIBRARY_PATH="$SITE/nvidia/cu13/lib:$SITE/nvidia/cudnn/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    echo "[check_cuda] LD_LIBRARY_PATH += $SITE/nvidia/{cu13,cudnn}/lib"
else
    echo "[check_cuda] no nvidia pip packages under $PYTHON; relying on the system loader path" >&2
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
export ENGINE_REQUIRE_CUDA=1
cargo test --release --features cuda \
    --test cuda_vs_cpu --test fixtures_elementwise --test grad_elementwise "$@" -- --nocapture
