#!/usr/bin/env bash
# The Bag of Tricks ablation on Fashion-MNIST (Debian's dataset-fashion-mnist), in the style of the
# paper's Tables 4–6: one run per cumulative recipe row and seed, same model and epochs, then a
# markdown table of test accuracy (mean ± sample standard deviation over the seeds, each seed's
# value, the step from the row above), wall time and images/s.
#
#   SEEDS="0 1 2" scripts/ablation_fmnist.sh [EPOCHS] [extra `engine train` flags…]
#
# EPOCHS defaults to 4 (about 10–15 minutes a row on a 2-core machine with the default ResNet-18,
# width 16, on all 60,000 images; `--train-limit N` shortens it). SEEDS defaults to "0". Finished
# runs are kept (runs/ablation/seed<S>/<recipe>/done), so an interrupted ablation resumes where it
# stopped; delete a run's folder to redo it. The `distill` row distils from the same seed's `mixup`
# checkpoint (same architecture: a self-distillation stand-in for the paper's ResNet-152 teacher).
#
# The table goes to runs/ablation/report.md and into docs/ablation-fashion-mnist.md between the
# markers `<!-- ablation-table:start -->` and `<!-- ablation-table:end -->` (the prose around them,
# the reading of the results, is written by hand and kept); a doc without the markers is replaced.
set -euo pipefail
cd "$(dirname "$0")/.."
EPOCHS="${1:-4}"
shift || true
SEEDS="${SEEDS:-0}"
OUT=runs/ablation
RECIPES=(baseline warmup zero-gamma no-bias-decay cosine label-smoothing mixup distill reproduction-2019)
mkdir -p "$OUT" docs
cargo build --release --quiet
# A private copy, so rebuilding the project while the ablation runs cannot change its binary.
cp target/release/engine "$OUT/engine"
ENGINE="$OUT/engine"
# Every run of one ablation must share its settings: record them and refuse to mix.
SETTINGS="epochs=$EPOCHS flags=$*"
if [ -f "$OUT/settings" ] && [ "$(cat "$OUT/settings")" != "$SETTINGS" ]; then
  echo "error: $OUT holds an ablation run with other settings ($(cat "$OUT/settings")); move it away or delete it first" >&2
  exit 2
fi
echo "$SETTINGS" > "$OUT/settings"

for seed in $SEEDS; do
  for recipe in "${RECIPES[@]}"; do
    dir="$OUT/seed$seed/$recipe"
    extra=()
    if [ "$recipe" = distill ]; then
      extra=(--teacher "$OUT/seed$seed/mixup/checkpoint.safetensors")
    fi
    if [ -f "$dir/done" ]; then
      echo "== seed $seed, $recipe: done already (delete $dir to rerun)"
      continue
    fi
    rm -rf "${dir:?}"
    echo "== seed $seed, $recipe ($(date -u +%H:%M) UTC)"
    start=$(date +%s)
    "$ENGINE" train --recipe "$recipe" --epochs "$EPOCHS" --seed "$seed" --out "$dir" --quiet "${extra[@]}" "$@"
    echo $(( $(date +%s) - start )) > "$dir/done"
  done
done

python3 - "$OUT" "$EPOCHS" "$*" "$SEEDS" "${RECIPES[@]}" <<'PY'
import json, os, re, statistics, subprocess, sys, datetime
out, epochs, extra, seeds = sys.argv[1:5]
recipes = sys.argv[5:]
seeds = seeds.split()

def run(seed, recipe):
    d = os.path.join(out, f"seed{seed}", recipe)
    ep = [json.loads(l)["metrics"] for l in open(os.path.join(d, "metrics.jsonl")) if '"kind":"epoch"' in l]
    return dict(top1=ep[-1]["top1"], top5=ep[-1]["top5"], best=max(e["top1"] for e in ep),
                wall=int(open(os.path.join(d, "done")).read()),
                ips=sum(e["images_per_s"] for e in ep) / len(ep))

def mean_sd(xs):
    return statistics.mean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)

cfg = json.load(open(os.path.join(out, f"seed{seeds[0]}", "baseline", "config.json")))
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
cpu = [l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")][:1] or ["?"]
limit = cfg.get("train_limit")
steps = -(-(limit or 60000) // cfg["batch_size"]) * int(epochs)
lines = [
    f"Run ending {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC on {cpu[0]} ({os.cpu_count()} threads), commit {commit}, "
    f"by `SEEDS=\"{' '.join(seeds)}\" scripts/ablation_fmnist.sh {epochs}{(' ' + extra) if extra else ''}`"
    f"{' (training set limited to the first ' + str(limit) + ' images)' if limit else ''}. Model: ResNet-{cfg['model']['depth']}{cfg['model']['variant']} width "
    f"{cfg['model']['width']}, 3×3 stem without max pool; {epochs} epochs ({steps} steps), batch {cfg['batch_size']}, "
    f"lr {cfg['lr_per_256']} per 256, Nesterov momentum {cfg['momentum']}, weight decay {cfg['weight_decay']}, "
    f"pad-2 crop + flip; {'the first ' + str(cfg['val_limit']) + ' test images' if cfg.get('val_limit') else 'the test split of 10,000 images'}; seeds {', '.join(seeds)}. Rows are cumulative as in the "
    "paper's Tables 4 and 6. Top-1 is after the last epoch: mean ± sample standard deviation over the seeds, "
    "then each seed's value; Δ is the change of the mean from the row above (from the `mixup` row for "
    "`reproduction-2019`, which adds colour jitter to it).",
    "",
    "| recipe | top-1 (%) | per seed | Δ top-1 | top-5 (%) | best-epoch top-1 (%) | wall time (s) | train images/s |",
    "|---|---|---|---|---|---|---|---|",
]
means = {}
for i, recipe in enumerate(recipes):
    rs = [run(s, recipe) for s in seeds]
    m, sd = mean_sd([r["top1"] for r in rs])
    means[recipe] = m
    prev = "mixup" if recipe == "reproduction-2019" else (recipes[i - 1] if i else None)
    delta = f"{m - means[prev]:+.2f}" if prev else "—"
    per_seed = " / ".join("%.2f" % r["top1"] for r in rs)
    lines.append(
        f"| {recipe} | {m:.2f} ± {sd:.2f} | {per_seed} | {delta} "
        f"| {statistics.mean(r['top5'] for r in rs):.2f} | {statistics.mean(r['best'] for r in rs):.2f} "
        f"| {statistics.mean(r['wall'] for r in rs):.0f} | {statistics.mean(r['ips'] for r in rs):.0f} |")
table = "\n".join(lines) + "\n"
open(os.path.join(out, "report.md"), "w").write(table)
doc = "docs/ablation-fashion-mnist.md"
start, end = "<!-- ablation-table:start -->", "<!-- ablation-table:end -->"
text = open(doc).read() if os.path.exists(doc) else ""
if start in text and end in text:
    text = text[: text.index(start) + len(start)] + "\n" + table + text[text.index(end):]
else:
    text = "# Bag of Tricks ablation on Fashion-MNIST\n\n" + start + "\n" + table + end + "\n"
open(doc, "w").write(text)
print(table)
PY
