#!/usr/bin/env bash
# Engine vs PyTorch on this machine's CPU, side by side in one go: builds examples/bench_cpu.rs in
# release mode, runs it (conv2d fwd+bwd GFLOP/s at the anchor and a few ResNet-50 shapes; ResNet-18
# 1×28×28 batch 128 and ResNet-50 224² batch 16 training steps, images/s), then runs
# tools/torch_cpu_bench.py on exactly the same workloads with the same thread count, prints a markdown
# table and writes it to docs/benchmarks-cpu.md (date, CPU model, threads, torch version, commit).
# Takes about 3–4 minutes on 2 cores. Run it on a quiet machine: other builds skew both sides.
# Env: PYTHON (default python3), REPS (conv runs, default 7), TRAIN_REPS (default 3), OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
REPS="${REPS:-7}"
TRAIN_REPS="${TRAIN_REPS:-3}"
OUT="${OUT:-docs/benchmarks-cpu.md}"
THREADS="$(nproc)"
export RAYON_NUM_THREADS="$THREADS"

busy() { # heavy processes other than ours (compilers, other benchmarks) and the load average
  local procs
  procs="$(ps -eo comm= | grep -cE '^(rustc|cargo|cc1|cc1plus|ld|nvcc|python3?)$' || true)"
  echo "load average $(cut -d' ' -f1-3 /proc/loadavg), ${procs} compiler/cargo/python processes"
}

cargo build --release --example bench_cpu
BIN="${CARGO_TARGET_DIR:-target}/release/examples/bench_cpu"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

BEFORE="$(busy)"
echo "== engine ($THREADS threads; $BEFORE)" >&2
"$BIN" --warmup 2 --reps "$REPS" --train-reps "$TRAIN_REPS" >"$TMP/engine.json"
echo "== PyTorch" >&2
MIDDLE="$(busy)"
export BENCH_DATE="$(date -u)"
export BENCH_CPU="$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1), $(nproc) CPUs ($(lscpu | grep -o 'avx512[a-z_]*' | head -1 || true))"
export BENCH_COMMIT="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src benches examples tools || echo '+dirty')"
export BENCH_NOTE="- Machine load: before the engine run ${BEFORE}; before the PyTorch run ${MIDDLE}."
"$PYTHON" tools/torch_cpu_bench.py --engine-json "$TMP/engine.json" --out "$OUT" \
  --warmup 2 --reps "$REPS" --train-reps "$TRAIN_REPS"
