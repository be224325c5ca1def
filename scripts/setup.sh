#!/usr/bin/env bash
# Sets up a fresh machine for building, testing and running the engine: the pinned nvcc (kernels
# compile here even without a GPU) and Debian's dataset-fashion-mnist (the real data the main job and
# some tests use). Idempotent: every step checks before it installs, so running it
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

# Fashion-MNIST IDX files from Debian's package (into /usr/share/datasets/fashion-mnist).
install_fashion_mnist() {
    local dir=/usr/share/datasets/fashion-mnist
    if [[ -f "$dir/train-images-idx3-ubyte.gz" || -f "$dir/train-images-idx3-ubyte" ]]; then
        log "Fashion-MNIST present: $dir"
        return
    fi
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
        log "installing dataset-fashion-mnist"
        apt-get update -qq >/dev/null 2>&1 || true
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
    else
        log "Fashion-MNIST not found: install Debian's dataset-fashion-mnist (sudo apt-get install dataset-fashion-mnist)"
    fi
}

main() {
    if [[ $# -eq 0 ]]; then
        install_nvcc
        install_fashion_mnist
    else
        for step in "$@"; do "$step"; done
    fi
}

main "$@"
