#!/usr/bin/env bash
# The seed-to-seed spread of scripts/sin_fmnist_adain.sh (docs/sin-fashion-mnist.md, "Seed to
# seed"): the IN, SIN and SIN+IN networks trained once per seed (same stylized set, same recipe,
# same cue conflicts; only initialisation, shuffling and augmentation differ), each scored as that
# script scores them, then one table of every seed's numbers with their mean and sample standard
# deviation, and for shape bias (and its differences from IN, pair by pair) the bootstrap sd over
# the cue-conflict pairs, the uncertainty that seed spread leaves out. Writes $OUT/spread.md (and,
# with --doc FILE, the same text between the "adain-seeds" markers of FILE).
#
#   scripts/sin_fmnist_adain_seeds.sh [--out DIR] [--doc FILE] SEED...
#
#   SEED...   training seeds, at least two; seed S's results live in runs/sin-fmnist-adain-seed-S,
#             except that seed 0 reuses the first run's runs/sin-fmnist-adain when that holds
#             results.md (and FORCE is not set)
#   --out DIR where spread.md goes (default runs/sin-fmnist-adain-seeds)
#   FORCE=1   score every seed again, into runs/sin-fmnist-adain-seed-S (training runs that
#             finished are kept either way; delete a run's folder to train it again)
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
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) [[ "$1" =~ ^[0-9]+$ ]] || { echo "not a seed: $1 (seeds are non-negative integers)" >&2; exit 2; }
       [[ " ${SEEDS[*]} " != *" $1 "* ]] || { echo "seed $1 given twice" >&2; exit 2; }
       SEEDS+=("$1") ;;
  esac
  shift
done
[ "${#SEEDS[@]}" -ge 2 ] || { echo "usage: scripts/sin_fmnist_adain_seeds.sh [--out DIR] [--doc FILE] SEED SEED..." >&2; exit 2; }

# Seed 0's first run (scripts/sin_fmnist_adain.sh's default --out) also scored the texture-swap
# network; a forced rescore goes to a folder of its own, so that run's results.md survives.
seed_dir() {
  if [ "$1" = 0 ] && [ -z "${FORCE:-}" ] && [ -f runs/sin-fmnist-adain/results.md ]; then
    echo runs/sin-fmnist-adain
  else
    echo "runs/sin-fmnist-adain-seed-$1"
  fi
}
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
import datetime, json, os, random, statistics, subprocess, sys
out, doc, runs = sys.argv[1], sys.argv[2], [a.split(":", 1) for a in sys.argv[3:]]
nets = [("plain", "IN"), ("sin", "SIN"), ("join", "SIN+IN")]
rows = [(f"{label} → {test} test images, top-1 %", ("cross", net, test))
        for net, label in nets for test in ["plain", "stylized"]]
cues = [("adain", "AdaIN"), ("swap", "texture-swap")]
rows += [(f"{label}: shape bias, {cue} cue conflicts", ("bias", net, key))
         for key, cue in cues for net, label in nets]
# Differences from IN on the same pairs: the pairs' sd of a difference resamples pairs jointly.
rows += [(f"{label} − IN: shape bias, {cue} cue conflicts", ("diff", net, key))
         for key, cue in cues for net, label in nets[1:]]

def bias_of(trials):
    shape = sum(t["decision"] == t["shape_class"] for t in trials)
    texture = sum(t["decision"] == t["texture_class"] for t in trials)
    return shape / (shape + texture)

def pair_sd(statistic, n, resamples=1000):
    """Bootstrap sd of statistic(pair indices) over the n cue-conflict pairs: the part of a number
    that comes from which pairs were drawn (the same pairs for every network and seed, so seed
    spread does not contain it)."""
    rng = random.Random(0)
    return statistics.stdev(statistic(rng.choices(range(n), k=n)) for _ in range(resamples))

def values(d):
    cross = {}
    for line in open(os.path.join(d, "cross.txt")):
        net, test, t1, _t5 = line.split()
        cross[(net, test)] = float(t1)
    trials = {}
    for net, _ in nets:
        for k, _ in cues:
            r = json.load(open(os.path.join(d, f"shape-bias-{k}-{net}", "report.json")))
            ts = r["trials"]
            assert all(t["decision"] is not None for t in ts), f"{d}: unreadable pairs"
            assert abs(bias_of(ts) - r["shape_bias"]) < 1e-12, (d, net, k)
            trials[(net, k)] = ts
    for k, _ in cues:  # every network saw the same pairs, in the same order
        first = [(t["shape_index"], t["texture_index"]) for t in trials[("plain", k)]]
        for net, _ in nets:
            assert [(t["shape_index"], t["texture_index"]) for t in trials[(net, k)]] == first, (d, net, k)
    got, sd = {}, {}
    for _, key in rows:
        kind, net, k = key
        if kind == "cross":
            got[key] = cross[(net, k)]
            continue
        mine, base = trials[(net, k)], trials[("plain", k)]
        if kind == "bias":
            stat = lambda idx, mine=mine: bias_of([mine[i] for i in idx])
        else:
            stat = lambda idx, mine=mine, base=base: (bias_of([mine[i] for i in idx])
                                                     - bias_of([base[i] for i in idx]))
        got[key], sd[key] = stat(range(len(mine))), pair_sd(stat, len(mine))
    return got, sd

per_seed = [(s, d, *values(d)) for s, d in runs]
# Every seed must have been scored on the same cue conflicts (same PAIRS, ADAIN_PAIRS, draw seed).
def pairs_of(d, k):
    r = json.load(open(os.path.join(d, f"shape-bias-{k}-plain", "report.json")))
    return [(t["shape_index"], t["texture_index"]) for t in r["trials"]]
for k, _ in cues:
    first = pairs_of(runs[0][1], k)
    for s, d in runs[1:]:
        if pairs_of(d, k) != first:
            sys.exit(f"{d}: its {k} cue conflicts differ from {runs[0][1]}'s; score both with the "
                     f"same PAIRS/ADAIN_PAIRS (FORCE=1 rescores)")
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
lines = [
    f"Run {when}, commit {commit}, by `scripts/sin_fmnist_adain_seeds.sh`: "
    f"{len(per_seed)} training seeds ({', '.join(s for s, *_ in per_seed)}; results in "
    f"{', '.join(f'`{d}`' for _, d, *_ in per_seed)}). Mean ± sample standard deviation over the "
    f"seeds; for shape bias also the pairs' share of the uncertainty (bootstrap sd over the "
    f"cue-conflict pairs, mean over the seeds), which seed-to-seed spread leaves out because every "
    f"network is scored on the same pairs.",
    "",
    "| | " + " | ".join(f"seed {s}" for s, *_ in per_seed) + " | mean ± sd over seeds | pairs' sd |",
    "|---|" + "---:|" * (len(per_seed) + 2),
]
for label, key in rows:
    xs = [v[key] for _, _, v, _ in per_seed]
    sd_fmt = "{:.2f}" if key[0] == "cross" else "{:.3f}"
    fmt = "{:+.3f}" if key[0] == "diff" else sd_fmt
    cells = [fmt.format(x) for x in xs]
    pairs = sd_fmt.format(statistics.mean(sd[key] for *_, sd in per_seed)) if key[0] != "cross" else ""
    lines.append(f"| {label} | " + " | ".join(cells) +
                 f" | {fmt.format(statistics.mean(xs))} ± {sd_fmt.format(statistics.stdev(xs))} | {pairs} |")
lines.append("")
text = "\n".join(lines)
open(os.path.join(out, "spread.md"), "w").write(text)
if doc:
    sys.path.insert(0, "tools")
    from doc_section import replace_section
    replace_section(doc, "adain-seeds", text)
print(text)
PY
