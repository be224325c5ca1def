#!/usr/bin/env bash
# Sets up the repo-local toolchain. Idempotent: every step checks before it installs, so running it
# again is cheap. Steps are functions; call the ones you need (default: all) — e.g.
#   scripts/setup.sh                 # everything
#   scripts/setup.sh install_nvcc    # only the CUDA compiler
# Installed tools live under <repo>/.toolchain (git-ignored).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLCHAIN="$REPO/.toolchain"
PYTHON="${PYTHON:-python3}"

# The CUDA 13.0 compiler set, pinned. The nvvm pin matters: a newer nvvm emits PTX that the 13.0
# assembler (ptxas) rejects. build.rs finds nvcc here when neither $NVCC nor PATH has one.
NVCC_PACKAGES=(
    nvidia-cuda-nvcc==13.0.88
    nvidia-nvvm==13.0.88
    nvidia-cuda-crt==13.0.88
    nvidia-cuda-runtime==13.0.96
    nvidia-cuda-cccl==13.0.85
)
NVCC_DIR="$TOOLCHAIN/cuda"
NVCC_BIN="$NVCC_DIR/nvidia/cu13/bin/nvcc"

log() { printf '[setup] %s\n' "$*"; }

install_nvcc() {
    if [[ -x "$NVCC_BIN" ]] && "$NVCC_BIN" --version | grep -q "release 13.0"; then
        log "nvcc already installed: $NVCC_BIN"
    else
        log "installing the pinned nvcc into $NVCC_DIR"
        mkdir -p "$NVCC_DIR"
        "$PYTHON" -m pip install --quiet --disable-pip-version-check --no-deps \
            --target "$NVCC_DIR" "${NVCC_PACKAGES[@]}"
    fi
    "$NVCC_BIN" --version | tail -n 2
    # nvcc needs a host C++ compiler it supports (gcc ≤ 14 for CUDA 13.0); report which one it gets.
    if command -v "${NVCC_CCBIN:-g++}" >/dev/null; then
        log "host compiler: $("${NVCC_CCBIN:-g++}" --version | head -n 1)"
    else
        log "WARNING: no host C++ compiler (g++) found; install gcc or set NVCC_CCBIN"
    fi
}

main() {
    if [[ $# -eq 0 ]]; then
        install_nvcc
    else
        for step in "$@"; do "$step"; done
    fi
}

main "$@"
