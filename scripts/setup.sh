#!/usr/bin/env bash
# One-time (idempotent) setup of a fresh machine for building, testing and running the engine:
# - the pinned CUDA 13.0 nvcc from PyPI into .toolchain/cuda (ignored by git), so kernels compile here
#   even with no GPU; the nvvm pin matters: a newer one emits PTX the 13.0 assembler rejects;
# - Debian's dataset-fashion-mnist (the real data the main job and some tests use).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

install_nvcc() {
  local nvcc="$ROOT/.toolchain/cuda/nvidia/cu13/bin/nvcc"
  if [ ! -x "$nvcc" ]; then
    echo "setup: installing nvcc 13.0 into .toolchain/cuda"
    python3 -m pip install --quiet --disable-pip-version-check --target "$ROOT/.toolchain/cuda" \
      nvidia-cuda-nvcc==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-crt==13.0.88 \
      nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85
  fi
  "$nvcc" --version | tail -n 2
}

install_fashion_mnist() {
  if [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte ]; then
    return
  fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing dataset-fashion-mnist"
    apt-get update -qq >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
  else
    echo "setup: Fashion-MNIST not found; install Debian's dataset-fashion-mnist package (sudo apt-get install dataset-fashion-mnist)"
  fi
}

install_nvcc
install_fashion_mnist
