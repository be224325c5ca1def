#!/usr/bin/env bash
# Engine vs PyTorch on this machine's CPU, side by side in one go: builds examples/bench_cpu.rs in
# release mode, then tools/torch_cpu_bench.py runs, workload by workload, the engine binary and then
# PyTorch on exactly the same work with the same thread count (conv2d fwd+bwd GFLOP/s at the anchor
# and a few ResNet-50 shapes; ResNet-18 1×28×28 batch 128 and ResNet-50 224² batch 16 training
# steps, images/s), prints a markdown table and writes it to docs/benchmarks-cpu.md (date, CPU model,
# threads, torch version, commit, and how much CPU other processes took during each measurement).
# Takes about 2–3 minutes on 2 cores. Run it on a quiet machine: other builds skew both sides.
# Env: PYTHON (default python3), REPS (conv runs, default 7), TRAIN_REPS (default 3), OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
REPS="${REPS:-7}"
TRAIN_REPS="${TRAIN_REPS:-3}"
OUT="${OUT:-docs/benchmarks-cpu.md}"
export RAYON_NUM_THREADS="$(nproc)"

cargo build --release --example bench_cpu
BIN="${CARGO_TARGET_DIR:-target}/release/examples/bench_cpu"

export BENCH_DATE="$(date -u)"
export BENCH_CPU="$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1), $(nproc) CPUs$(grep -q avx512f /proc/cpuinfo && echo ', AVX-512')"
export BENCH_COMMIT="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src benches examples tools Cargo.toml || echo '+dirty')"
"$PYTHON" tools/torch_cpu_bench.py --engine-bin "$BIN" --out "$OUT" \
  --warmup 2 --reps "$REPS" --train-reps "$TRAIN_REPS"
