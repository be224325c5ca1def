#!/usr/bin/env bash
# The Stylized-ImageNet experiment at Fashion-MNIST size (docs/sin-fashion-mnist.md): a classifier
# trained on the plain images (IN's stand-in) and one trained on texture-swapped images (SIN's
# stand-in, `engine train --texture-swap DIR`), each scored on both kinds of test images (Geirhos et
# al.'s IN→SIN / SIN→IN table) and for shape bias on texture-swap cue conflicts. Writes
# $OUT/results.md (and, with --doc FILE, the same text to FILE) and the cue-conflict grids.
#
#   scripts/sin_fmnist.sh [--train] [--out DIR] [--doc FILE] [PLAIN_CKPT SWAP_CKPT [JOIN_CKPT]]
#
#   --train     train both networks first with scripts/fmnist_timed_run.sh (the full recipe of
#               docs/fashion-mnist-30min.md run 8: mixup 13 epochs, ResNet-18-D width 16, lr 0.4;
#               about 25 minutes each on 2 cores), the second with --texture-swap TEXTURES, and a
#               third on plain + swapped images together (--texture-swap-join, the SIN+IN analogue)
#               for 7 epochs: twice the images an epoch, so about the same number of steps
#   PLAIN_CKPT, SWAP_CKPT, JOIN_CKPT   or existing checkpoints (defaults: those --train writes; the
#               joined one is left out of the tables when it does not exist)
#   TEXTURES=DIR  texture photographs (default tests/data/textures: brick, grass, gravel and two
#               photo crops from scikit-image)
#   PAIRS=N     cue-conflict pairs for shape bias (default 2000)
#   ADAIN_PAIRS=N  AdaIN cue-conflict pairs (default 1000; 0 skips them), made with the real AdaIN
#               weights (scripts/setup.sh install_adain_weights; skipped with a note when missing)
set -euo pipefail
cd "$(dirname "$0")/.."

TRAIN=0 OUT=runs/sin-fmnist DOC=""
POS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --train) TRAIN=1 ;;
    --out) OUT="$2"; shift ;;
    --doc) DOC="$2"; shift ;;
    *) POS+=("$1") ;;
  esac
  shift
done
TEXTURES="${TEXTURES:-tests/data/textures}"
RECIPE=(mixup 13 --variant d --lr 0.4)
TAG="variant_d_lr_0.4"
SWAP_TAG="${TAG}_texture-swap_$(printf '%s' "$TEXTURES" | tr -cd 'A-Za-z0-9_.=-')"
PLAIN="${POS[0]:-runs/fmnist-timed-mixup-13-$TAG/checkpoint.safetensors}"
SWAP="${POS[1]:-runs/fmnist-timed-mixup-13-$SWAP_TAG/checkpoint.safetensors}"
JOIN="${POS[2]:-runs/fmnist-timed-mixup-7-${SWAP_TAG}_texture-swap-join/checkpoint.safetensors}"

if [ "$TRAIN" = 1 ]; then
  scripts/fmnist_timed_run.sh "${RECIPE[@]}"
  scripts/fmnist_timed_run.sh "${RECIPE[@]}" --texture-swap "$TEXTURES"
  scripts/fmnist_timed_run.sh mixup 7 "${RECIPE[@]:2}" --texture-swap "$TEXTURES" --texture-swap-join
fi
for c in "$PLAIN" "$SWAP"; do
  [ -f "$c" ] || { echo "missing checkpoint $c (run with --train, or give PLAIN_CKPT SWAP_CKPT)" >&2; exit 2; }
done
cargo build --release --quiet
ENGINE="${CARGO_TARGET_DIR:-target}/release/engine"
mkdir -p "$OUT"

# top-1/top-5 of checkpoint $1 on plain (none) or texture-swapped ($TEXTURES) test images.
score() { "$ENGINE" eval "$1" --texture-swap "$2" | sed -E 's/.*top-1 ([0-9.]+)%  top-5 ([0-9.]+)%.*/\1 \2/'; }
{
  echo "plain plain $(score "$PLAIN" none)"
  echo "plain swapped $(score "$PLAIN" "$TEXTURES")"
  echo "swapped plain $(score "$SWAP" none)"
  echo "swapped swapped $(score "$SWAP" "$TEXTURES")"
  if [ -f "$JOIN" ]; then
    echo "joined plain $(score "$JOIN" none)"
    echo "joined swapped $(score "$JOIN" "$TEXTURES")"
  fi
} > "$OUT/cross.txt"
NETS=(plain swapped); [ -f "$JOIN" ] && NETS+=(joined)
for net in "${NETS[@]}"; do
  case "$net" in plain) ckpt="$PLAIN" ;; swapped) ckpt="$SWAP" ;; joined) ckpt="$JOIN" ;; esac
  "$ENGINE" shape-bias --checkpoint "$ckpt" --cue texture-swap --pairs "${PAIRS:-2000}" \
    --batch-size 200 --out "$OUT/shape-bias-$net" > "$OUT/shape-bias-$net.txt"
done
# Geirhos et al.'s own cue conflicts: AdaIN with the real weights, at the default 112² for these
# 28-px images.
ADAIN_DIR="${ENGINE_ADAIN_DIR:-.toolchain/adain}"
if [ "${ADAIN_PAIRS:-1000}" != 0 ] && [ -f "$ADAIN_DIR/vgg_normalised.safetensors" ] && [ -f "$ADAIN_DIR/decoder.safetensors" ]; then
  for net in "${NETS[@]}"; do
    case "$net" in plain) ckpt="$PLAIN" ;; swapped) ckpt="$SWAP" ;; joined) ckpt="$JOIN" ;; esac
    "$ENGINE" shape-bias --checkpoint "$ckpt" --cue adain --vgg "$ADAIN_DIR/vgg_normalised.safetensors" \
      --decoder "$ADAIN_DIR/decoder.safetensors" --pairs "${ADAIN_PAIRS:-1000}" --batch-size 50 \
      --out "$OUT/shape-bias-adain-$net" > "$OUT/shape-bias-adain-$net.txt"
  done
elif [ "${ADAIN_PAIRS:-1000}" != 0 ]; then
  echo "no AdaIN weights in $ADAIN_DIR (scripts/setup.sh install_adain_weights): AdaIN cue conflicts skipped" >&2
fi

python3 - "$OUT" "$PLAIN" "$SWAP" "$TEXTURES" "$DOC" "$JOIN" <<'PY'
import datetime, json, os, subprocess, sys
out, plain, swap, textures, doc, join = sys.argv[1:]
cross = {}
for line in open(os.path.join(out, "cross.txt")):
    tr, te, t1, t5 = line.split()
    cross[(tr, te)] = (float(t1), float(t5))
nets = [("plain", "plain images (IN stand-in)"), ("swapped", "texture-swapped images (SIN stand-in)")]
if ("joined", "plain") in cross:
    nets.append(("joined", "plain + swapped (SIN+IN stand-in)"))
sb = {n: json.load(open(os.path.join(out, f"shape-bias-{n}", "report.json"))) for n, _ in nets}
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
pairs = sb["plain"]["pairs"]
lines = [
    f"Run {when}, commit {commit}, by `scripts/sin_fmnist.sh`. Networks: plain `{plain}`, "
    f"texture-swapped `{swap}`" + (f", joined `{join}`" if len(nets) == 3 else "") + f"; textures from `{textures}`; test set: the 10,000 Fashion-MNIST test "
    f"images, plain or each re-textured once (seed 0).",
    "",
    "| trained on → tested on | plain test images | texture-swapped test images |",
    "|---|---|---|",
]
for tr, name in nets:
    cells = [f"{cross[(tr, te)][0]:.2f} / {cross[(tr, te)][1]:.2f}" for te in ["plain", "swapped"]]
    lines.append(f"| {name} | {cells[0]} | {cells[1]} |")
lines += [
    "",
    "Top-1 / top-5 accuracy (%).",
    "",
    f"| network | shape bias | over pairs both sources right | shape / texture / other decisions ({pairs} cue conflicts) |",
    "|---|---|---|---|",
]
for n, name in nets:
    r = sb[n]
    lines.append(f"| {name} | {r['shape_bias']:.3f} | {r['shape_bias_both_correct']:.3f} | "
                 f"{r['shape_decisions']} / {r['texture_decisions']} / {r['other_decisions']} |")
adain = {n: os.path.join(out, f"shape-bias-adain-{n}", "report.json") for n, _ in nets}
if all(os.path.exists(p) for p in adain.values()):
    ab = {n: json.load(open(p)) for n, p in adain.items()}
    lines += [
        "",
        f"AdaIN cue conflicts (the real AdaIN weights, 112² stylization, α 1; {ab['plain']['pairs']} pairs):",
        "",
        "| network | shape bias | over pairs both sources right | shape / texture / other decisions |",
        "|---|---|---|---|",
    ]
    for n, name in nets:
        r = ab[n]
        lines.append(f"| {name} | {r['shape_bias']:.3f} | {r['shape_bias_both_correct']:.3f} | "
                     f"{r['shape_decisions']} / {r['texture_decisions']} / {r['other_decisions']} |")
lines.append("")
text = "\n".join(lines)
open(os.path.join(out, "results.md"), "w").write(text)
if doc:
    sys.path.insert(0, "tools")
    from doc_section import replace_section
    replace_section(doc, "results", text)
print(text)
PY
