#!/usr/bin/env bash
# Peak device memory of a ResNet-50 FP16 channels-last training step, the engine beside PyTorch, on a
# machine with no GPU (docs/memory-estimate.md keeps the results).
#
# Engine: `engine bench-step` on the simulated CUDA device (`--features cuda-sim`), which runs the CUDA
# launchers and allocates every buffer a GPU run would, counting their bytes as the CUDA pool does
# (ENGINE_SIM_ON_CPU=all computes the kernels on the CPU, so a 224² step takes seconds, not hours).
# PyTorch: tools/torch_memory_estimate.py (the GPU check's AMP channels_last step on fake tensors,
# every storage counted from creation to release). Neither side counts cuDNN workspaces.
#
# Both at batch 16 and 32 (the simulated device is too slow for 256: ~60 s per step at 32); the
# engine's batch-256 peak is extrapolated from its two points (activations grow linearly with the
# batch), PyTorch's both counted and extrapolated the same way. Prints a markdown table. Takes ~15
# minutes on 2 cores.
#   scripts/memory_vs_torch.sh [BATCH_A BATCH_B]
set -euo pipefail
cd "$(dirname "$0")/.."
A=${1:-16}
B=${2:-32}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/cuda-sim}
echo "building engine with --features cuda-sim (release) in $CARGO_TARGET_DIR" >&2
cargo build --release --features cuda-sim --bin engine >&2
for b in "$A" "$B"; do
  echo "engine bench-step, simulated device, batch $b (8 warm-up steps: the loss scale settles and the momentum buffers exist)" >&2
  ENGINE_SIM_ON_CPU=all "$CARGO_TARGET_DIR/release/engine" bench-step --model resnet50 --batch "$b" \
    --image 224 --fp16 --channels-last --steps 1 --warmup 8 --device cuda >"$OUT/engine_$b.json"
done
echo "PyTorch estimate (tools/torch_memory_estimate.py)" >&2
python3 tools/torch_memory_estimate.py --batch "$A" --batch "$B" --batch 256 --out "$OUT/torch.json"
python3 - "$OUT" "$A" "$B" <<'EOF'
import json, sys
out, a, b = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
eng = {n: json.load(open(f"{out}/engine_{n}.json")) for n in (a, b)}
tor = {r["batch"]: r for r in json.load(open(f"{out}/torch.json"))["rows"]}
mb = lambda v: f"{v / 2**20:,.0f} MiB"
print("| batch | engine peak | PyTorch peak | engine / PyTorch | engine after forward | PyTorch after forward |")
print("|---|---|---|---|---|---|")
for n in (a, b):
    e, t = eng[n], tor[n]
    print(f"| {n} | {mb(e['peak_memory_bytes'])} | {mb(t['peak_bytes'])} | "
          f"{e['peak_memory_bytes'] / t['peak_bytes']:.3f} | {mb(e['forward_live_bytes'])} | "
          f"{mb(t['live_after_forward_bytes'])} |")
# Batch 256: the engine's peak extrapolated from its two points, and PyTorch's both counted and
# extrapolated the same way, so the ratio compares like with like (below batch ~32 where the peak
# falls moves with the batch, so an extrapolation from small batches runs a few % low).
def extrapolate(p_a, p_b):
    return p_a + (p_b - p_a) / (b - a) * (256 - a)
ours256 = extrapolate(eng[a]["peak_memory_bytes"], eng[b]["peak_memory_bytes"])
t256x = extrapolate(tor[a]["peak_bytes"], tor[b]["peak_bytes"])
t256 = tor[256]["peak_bytes"]
print(f"| 256 (extrapolated from {a} and {b}) | {mb(ours256)} | {mb(t256x)} | {ours256 / t256x:.3f} | | |")
print(f"| 256 (PyTorch counted) | | {mb(t256)} | {ours256 / t256:.3f} | | {mb(tor[256]['live_after_forward_bytes'])} |")
for n in (a, b):
    if eng[n].get("skipped_steps"):
        print(f"\nwarning: the timed step at batch {n} was skipped (loss-scale overflow): rerun")
EOF
