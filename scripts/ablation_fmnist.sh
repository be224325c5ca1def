#!/usr/bin/env bash
# The Bag of Tricks ablation on Fashion-MNIST (Debian's dataset-fashion-mnist), in the style of the
# paper's Tables 4–6: one run per cumulative recipe row, same model, epochs and seed, then a markdown
# table of test accuracy, wall time and images/s written to docs/ablation-fashion-mnist.md.
#
#   scripts/ablation_fmnist.sh [EPOCHS] [extra `engine train` flags…]
#
# EPOCHS defaults to 4 (about 10–15 minutes a row on a 2-core machine with the default ResNet-18,
# width 16). The `distill` row distils from the `mixup` row's checkpoint (same architecture: a
# self-distillation stand-in for the paper's ResNet-152 teacher).
set -euo pipefail
cd "$(dirname "$0")/.."
EPOCHS="${1:-4}"
shift || true
OUT=runs/ablation
mkdir -p "$OUT" docs
cargo build --release --quiet
# A private copy, so rebuilding the project while the ablation runs cannot change its binary.
cp target/release/engine "$OUT/engine"
ENGINE="$OUT/engine"

for recipe in baseline warmup zero-gamma no-bias-decay cosine label-smoothing mixup distill reproduction-2019; do
  extra=()
  if [ "$recipe" = distill ]; then
    extra=(--teacher "$OUT/mixup/checkpoint.safetensors")
  fi
  if [ -f "$OUT/$recipe/done" ]; then
    echo "== $recipe: done already (delete $OUT/$recipe to rerun)"
    continue
  fi
  rm -rf "${OUT:?}/$recipe"
  echo "== $recipe"
  start=$(date +%s)
  "$ENGINE" train --recipe "$recipe" --epochs "$EPOCHS" --out "$OUT/$recipe" --quiet "${extra[@]}" "$@"
  echo $(( $(date +%s) - start )) > "$OUT/$recipe/done"
done

python3 - "$OUT" "$EPOCHS" "$*" <<'PY'
import json, os, subprocess, sys, datetime
out, epochs, extra = sys.argv[1], sys.argv[2], sys.argv[3]
rows = []
for recipe in ["baseline", "warmup", "zero-gamma", "no-bias-decay", "cosine", "label-smoothing", "mixup", "distill", "reproduction-2019"]:
    d = os.path.join(out, recipe)
    epochs_m = [json.loads(l)["metrics"] for l in open(os.path.join(d, "metrics.jsonl")) if '"kind":"epoch"' in l]
    wall = int(open(os.path.join(d, "done")).read())
    last = epochs_m[-1]
    best = max(e["top1"] for e in epochs_m)
    ips = sum(e["images_per_s"] for e in epochs_m) / len(epochs_m)
    rows.append((recipe, last["top1"], last["top5"], best, wall, ips))
cfg = json.load(open(os.path.join(out, "baseline", "config.json")))
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
cpu = [l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")][:1] or ["?"]
lines = [
    "# Bag of Tricks ablation on Fashion-MNIST",
    "",
    f"Run {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC on {cpu[0]} ({os.cpu_count()} threads), commit {commit}, "
    f"by `scripts/ablation_fmnist.sh {epochs}{(' ' + extra) if extra else ''}`"
    f"{' (training set limited to the first ' + str(cfg['train_limit']) + ' images)' if cfg.get('train_limit') else ''}. Model: ResNet-{cfg['model']['depth']}{cfg['model']['variant']} width "
    f"{cfg['model']['width']}, 3×3 stem without max pool; {epochs} epochs, batch {cfg['batch_size']}, "
    f"lr {cfg['lr_per_256']} per 256, Nesterov momentum {cfg['momentum']}, weight decay {cfg['weight_decay']}, "
    "pad-2 crop + flip; test split of 10,000 images. Rows are cumulative as in the paper's Tables 4 and 6.",
    "",
    "| recipe | top-1 (%) | top-5 (%) | best top-1 (%) | wall time (s) | train images/s |",
    "|---|---|---|---|---|---|",
]
for r in rows:
    lines.append(f"| {r[0]} | {r[1]:.2f} | {r[2]:.2f} | {r[3]:.2f} | {r[4]} | {r[5]:.0f} |")
open("docs/ablation-fashion-mnist.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
