#!/usr/bin/env bash
# The project's test command (README.md): every test, on the CPU, plus the CUDA tests when this
# machine has a GPU (they print "skipped CUDA: ..." and pass where there is none). With nvcc present
# (scripts/setup.sh installs it) the build includes the `cuda` feature, so every kernel compiles, the
# emulator's kernel tests run again under two more thread orders, and the device-aware tests run a second time on the simulated CUDA device (`cuda-sim`) and a third time
# on the fake GPU (the real CUDA backend over cuda/fakegpu/'s driver, cuBLAS and cuDNN stand-ins).
# Tests build with opt-level 2 (see Cargo.toml's [profile.test]) so the numerics run fast.
# Ends with one summary line over all test binaries: "summary: N passed, M failed".
set -euo pipefail
cd "$(dirname "$0")/.."
FEATURES=()
if [ -d src/backend/cuda ] && { [ -n "${NVCC:-}" ] || command -v nvcc >/dev/null 2>&1 || [ -x .toolchain/cuda/nvidia/cu13/bin/nvcc ]; }; then
  FEATURES=(--features cuda,cuda-emu)
fi
# The real AdaIN weights (scripts/setup.sh install_adain_weights) are part of the test setup: a test
# that needs them fails when they are missing instead of skipping. ENGINE_REQUIRE_ADAIN_WEIGHTS=0
# lets those tests skip.
export ENGINE_REQUIRE_ADAIN_WEIGHTS="${ENGINE_REQUIRE_ADAIN_WEIGHTS:-1}"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test "${FEATURES[@]}" "$@" 2>&1 | tee "$log" || status=$?
# The kernel tests again with the emulator's threads and blocks run in reverse and in shuffled
# order (ENGINE_EMU_SCHEDULE): a missing barrier hides under one order and shows under another.
if [ "${#FEATURES[@]}" -gt 0 ] && [ "$#" -eq 0 ]; then
  EMU_TESTS=()
  for f in tests/cuda_emu_*.rs; do
    EMU_TESTS+=(--test "$(basename "$f" .rs)")
  done
  for order in reverse shuffle; do
    echo
    echo "== the kernel tests with the emulator's threads in $order order (ENGINE_EMU_SCHEDULE=$order)"
    ENGINE_EMU_SCHEDULE=$order cargo test "${FEATURES[@]}" "${EMU_TESTS[@]}" 2>&1 | tee -a "$log" || status=$?
  done
fi
# The device-aware tests again on the simulated CUDA device (`cuda-sim`: the real CUDA launchers with
# their kernels in the emulator, cuDNN/cuBLAS ops on the CPU), where there is no GPU but nvcc's headers
# are installed. ENGINE_REQUIRE_CUDA=1: a test that skips its CUDA half fails. Skipped when extra
# cargo arguments narrow the run (then only the first command runs them) or CUDA_SIM=0.
if [ "${#FEATURES[@]}" -gt 0 ] && [ "$#" -eq 0 ] && [ "${CUDA_SIM:-1}" != 0 ] && ! command -v nvidia-smi >/dev/null 2>&1; then
  SIM_TESTS=()
  for f in tests/cuda_vs_cpu*.rs tests/cuda_memory.rs tests/fixtures_*.rs tests/models_resnet.rs tests/optim_fixtures.rs \
           tests/pix2pix_nets.rs tests/pretrained_weights.rs tests/stylizer_net.rs tests/stylizer_real_weights.rs; do
    SIM_TESTS+=(--test "$(basename "$f" .rs)")
  done
  echo
  echo "== the device-aware tests on the simulated CUDA device (--features cuda-sim)"
  ENGINE_REQUIRE_CUDA=1 cargo test --features cuda-sim "${SIM_TESTS[@]}" 2>&1 | tee -a "$log" || status=$?
  # The same tests, built by the first command with the real CUDA backend, on the fake GPU: the
  # library build.rs links from cuda/fakegpu/ (driver, cuBLAS, cuDNN stand-ins over the emulator),
  # found by cudarc through LD_LIBRARY_PATH. Streams run lazily there, so a missing event wait shows
  # up as wrong data; then once more with the copy stream running ahead (FAKEGPU_EAGER_STREAM=2), and
  # the convolutions with cuDNN's exhaustive search. FAKE_GPU=0 skips this stage.
  fake_dir="${CARGO_TARGET_DIR:-target}/debug/fakegpu"
  if [ "${FAKE_GPU:-1}" != 0 ] && [ ! -e "$fake_dir/libcuda.so" ]; then
    echo "no fake GPU in $fake_dir (the first cargo test builds it): its stage cannot run"
    status=1
  elif [ "${FAKE_GPU:-1}" != 0 ]; then
    fake_dir="$(cd "$fake_dir" && pwd)"
    fake() { LD_LIBRARY_PATH="$fake_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ENGINE_REQUIRE_CUDA=1 "$@" 2>&1 | tee -a "$log" || status=$?; }
    echo
    echo "== the device-aware tests on the fake GPU (--features cuda,cuda-emu, LD_LIBRARY_PATH=$fake_dir)"
    fake cargo test "${FEATURES[@]}" "${SIM_TESTS[@]}" --test fake_gpu
    echo
    echo "== on the fake GPU, the copy stream running ahead of the compute stream"
    FAKEGPU_EAGER_STREAM=2 fake cargo test "${FEATURES[@]}" --test cuda_vs_cpu --test cuda_vs_cpu_train --test cuda_vs_cpu_cli
    echo
    echo "== on the fake GPU, cuDNN's exhaustive algorithm search"
    ENGINE_CUDNN_SEARCH=exhaustive fake cargo test "${FEATURES[@]}" --test cuda_vs_cpu_conv --test fixtures_conv --test models_resnet
  fi
fi
passed=$(grep -E '^test result:' "$log" | sed -E 's/.* ([0-9]+) passed.*/\1/' | awk '{s+=$1} END {print s+0}')
failed=$(grep -E '^test result:' "$log" | sed -E 's/.* ([0-9]+) failed.*/\1/' | awk '{s+=$1} END {print s+0}')
echo
echo "summary: ${passed} passed, ${failed} failed"
exit "$status"
