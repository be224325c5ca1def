#!/usr/bin/env bash
# The seed-to-seed spread of scripts/sin_fmnist_adain.sh (docs/sin-fashion-mnist.md, "Seed to
# seed"): the IN, SIN and SIN+IN networks trained once per seed (same stylized set, same recipe,
# same cue conflicts; only initialisation, shuffling and augmentation differ), each scored as that
# script scores them, then one table of every seed's numbers with their mean and sample standard
# deviation. Writes $OUT/spread.md (and, with --doc FILE, the same text between the
# "adain-seeds" markers of FILE).
#
#   scripts/sin_fmnist_adain_seeds.sh [--out DIR] [--doc FILE] SEED...
#
#   SEED...   training seeds, at least two; seed 0's results live in runs/sin-fmnist-adain (the
#             first run's folder), seed S's in runs/sin-fmnist-adain-seed-S
#   --out DIR where spread.md goes (default runs/sin-fmnist-adain-seeds)
#   FORCE=1   score a seed again even if its folder holds results.md (training runs that finished
#             are kept either way; delete a run's folder to train it again)
#
# Each new seed costs about 40 minutes on 2 cores (three 5/5/3-epoch trainings and the scoring).
# EPOCHS, JOIN_EPOCHS, SIZE, ALPHA, STYLES, PAIRS and ADAIN_PAIRS pass through to
# scripts/sin_fmnist_adain.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=runs/sin-fmnist-adain-seeds DOC=""
SEEDS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT="$2"; shift ;;
    --doc) DOC="$2"; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) [[ "$1" =~ ^[0-9]+$ ]] || { echo "not a seed: $1 (seeds are non-negative integers)" >&2; exit 2; }
       [[ " ${SEEDS[*]} " != *" $1 "* ]] || { echo "seed $1 given twice" >&2; exit 2; }
       SEEDS+=("$1") ;;
  esac
  shift
done
[ "${#SEEDS[@]}" -ge 2 ] || { echo "usage: scripts/sin_fmnist_adain_seeds.sh [--out DIR] [--doc FILE] SEED SEED..." >&2; exit 2; }

seed_dir() { if [ "$1" = 0 ]; then echo runs/sin-fmnist-adain; else echo "runs/sin-fmnist-adain-seed-$1"; fi; }
DIRS=()
for s in "${SEEDS[@]}"; do
  d="$(seed_dir "$s")"
  if [ -n "${FORCE:-}" ] || [ ! -f "$d/results.md" ]; then
    echo "== seed $s → $d" >&2
    SEED="$s" scripts/sin_fmnist_adain.sh --out "$d"
  fi
  DIRS+=("$s:$d")
done
mkdir -p "$OUT"

python3 - "$OUT" "$DOC" "${DIRS[@]}" <<'PY'
import datetime, json, os, statistics, subprocess, sys
out, doc, runs = sys.argv[1], sys.argv[2], [a.split(":", 1) for a in sys.argv[3:]]
nets = [("plain", "IN"), ("sin", "SIN"), ("join", "SIN+IN")]
rows = [(f"{label} → {test} test images, top-1 %", ("cross", net, test))
        for net, label in nets for test in ["plain", "stylized"]]
rows += [(f"{label}: shape bias, {cue} cue conflicts", ("bias", net, key))
         for key, cue in [("adain", "AdaIN"), ("swap", "texture-swap")] for net, label in nets]

def values(d):
    cross = {}
    for line in open(os.path.join(d, "cross.txt")):
        net, test, t1, _t5 = line.split()
        cross[(net, test)] = float(t1)
    got = {}
    for _, (kind, net, k) in rows:
        if kind == "cross":
            got[(kind, net, k)] = cross[(net, k)]
        else:
            r = json.load(open(os.path.join(d, f"shape-bias-{k}-{net}", "report.json")))
            got[(kind, net, k)] = r["shape_bias"]
    return got

per_seed = [(s, d, values(d)) for s, d in runs]
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
lines = [
    f"Run {when}, commit {commit}, by `scripts/sin_fmnist_adain_seeds.sh`: "
    f"{len(per_seed)} training seeds ({', '.join(s for s, _, _ in per_seed)}; results in "
    f"{', '.join(f'`{d}`' for _, d, _ in per_seed)}). Mean ± sample standard deviation over the seeds.",
    "",
    "| | " + " | ".join(f"seed {s}" for s, _, _ in per_seed) + " | mean ± sd |",
    "|---|" + "---:|" * (len(per_seed) + 1),
]
for label, key in rows:
    xs = [v[key] for _, _, v in per_seed]
    fmt = "{:.2f}" if key[0] == "cross" else "{:.3f}"
    cells = [fmt.format(x) for x in xs]
    lines.append(f"| {label} | " + " | ".join(cells) +
                 f" | {fmt.format(statistics.mean(xs))} ± {fmt.format(statistics.stdev(xs))} |")
lines.append("")
text = "\n".join(lines)
open(os.path.join(out, "spread.md"), "w").write(text)
if doc:
    sys.path.insert(0, "tools")
    from doc_section import replace_section
    replace_section(doc, "adain-seeds", text)
print(text)
PY
