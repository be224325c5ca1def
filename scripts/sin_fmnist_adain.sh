#!/usr/bin/env bash
# Stylized-ImageNet's own recipe at Fashion-MNIST size (docs/sin-fashion-mnist.md, "Training on
# AdaIN-stylized images"): every training and test image re-painted once by AdaIN with the real
# weights in the style of a photographed texture (`engine stylize-idx`), a network trained on the
# stylized set (SIN) and one on plain + stylized (SIN+IN, `engine train --join-data`; it validates
# on the plain test images, as the paper's SIN+IN is scored on ImageNet), each scored on plain and
# stylized test images beside a plain-trained network (IN), and their shape bias on AdaIN and
# texture-swap cue conflicts. Writes $OUT/results.md and $OUT/stylized-samples.png (and, with --doc
# FILE, the same text between the "adain-results" markers of FILE).
#
#   scripts/sin_fmnist_adain.sh [--out DIR] [--doc FILE] [PLAIN_CKPT [SWAP_CKPT]]
#
#   PLAIN_CKPT  a network trained on plain images with the same recipe and seed (IN), e.g.
#               `scripts/fmnist_timed_run.sh mixup 5 --variant d --lr 0.4`; without it, that run is
#               trained here (or found, if it finished before)
#   SWAP_CKPT   optional: one trained with --texture-swap (the stand-in), scored beside the others
#   EPOCHS=5    epochs of the IN and SIN runs; the SIN+IN run gets JOIN_EPOCHS (default 3: twice
#               the images an epoch, so about as many steps)
#   SEED=0      training seed of the runs trained here (scripts/sin_fmnist_adain_seeds.sh runs
#               several); the stylized set and the cue conflicts stay the same for every seed
#   SIZE=64 ALPHA=0.5   the stylization (the doc says why not SIN's 224² and α 1 at 28 px)
#   STYLES=DIR  style images (default: the textures `scripts/setup.sh install_style_textures`
#               installs, in $ENGINE_STYLES_DIR or .toolchain/styles/gimp-patterns)
#   PAIRS=2000 ADAIN_PAIRS=1000   cue conflicts for shape bias
#
# Rerunning continues: the stylized set resumes from its chunks (~40 min on 2 cores at 64², from
# scratch), a training run whose metrics hold all its epochs is kept (~20 min each otherwise; an
# unfinished one starts over), the scoring runs again (~10 min).
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=runs/sin-fmnist-adain DOC=""
POS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT="$2"; shift ;;
    --doc) DOC="$2"; shift ;;
    -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
    *) POS+=("$1") ;;
  esac
  shift
done
PLAIN="${POS[0]:-}" SWAP="${POS[1]:-}"
[ -z "$PLAIN" ] || [ -f "$PLAIN" ] || { echo "missing checkpoint $PLAIN" >&2; exit 2; }
[ -z "$SWAP" ] || [ -f "$SWAP" ] || { echo "missing checkpoint $SWAP" >&2; exit 2; }
EPOCHS="${EPOCHS:-5}" JOIN_EPOCHS="${JOIN_EPOCHS:-3}" SEED="${SEED:-0}"
SIZE="${SIZE:-64}" ALPHA="${ALPHA:-0.5}"
FMNIST=/usr/share/datasets/fashion-mnist
if [ -z "${STYLES:-}" ]; then
  scripts/setup.sh install_style_textures
  STYLES="${ENGINE_STYLES_DIR:-.toolchain/styles/gimp-patterns}"
fi
SET="runs/sfmnist-$SIZE-a$ALPHA"
# The timed runs name their folders after DEPTH/WIDTH and copy target/release/engine: keep both
# at what the paths below assume.
unset DEPTH WIDTH CARGO_TARGET_DIR
cargo build --release --quiet
ENGINE=target/release/engine
mkdir -p "$OUT"

# 1. The stylized set (resumes where it stopped).
"$ENGINE" stylize-idx --styles "$STYLES" --out "$SET" --size "$SIZE" --alpha "$ALPHA" --device cpu --quiet

# A grid of the first 12 test images, plain (top) and stylized (bottom), 3× enlarged.
python3 - "$FMNIST" "$SET" "$OUT/stylized-samples.png" <<'PY'
import gzip, os, sys
sys.path.insert(0, "tools")
from gimp_patterns import encode_png
def images(d):
    p = os.path.join(d, "t10k-images-idx3-ubyte")
    b = open(p + ".gz", "rb").read() if os.path.exists(p + ".gz") else open(p, "rb").read()
    return gzip.decompress(b)[16:] if b[:2] == b"\x1f\x8b" else b[16:]
rows, n, s, k = [images(sys.argv[1]), images(sys.argv[2])], 12, 28, 3
w, h = n * s * k, len(rows) * s * k
px = bytearray(w * h * 3)
for r, data in enumerate(rows):
    for y in range(s * k):
        for x in range(w):
            v = data[(x // (s * k)) * s * s + (y // k) * s + (x % (s * k)) // k]
            o = ((r * s * k + y) * w + x) * 3
            px[o:o + 3] = bytes((v, v, v))
open(sys.argv[3], "wb").write(encode_png(w, h, bytes(px)))
PY

# 2. IN (unless given), SIN and SIN+IN networks, one recipe: ResNet-18-D width 16, mixup, lr 0.4
# (seed 0 adds no flag, so its folders are the ones the first run made).
RECIPE=(--variant d --lr 0.4)
[ "$SEED" = 0 ] || RECIPE+=(--seed "$SEED")
# train EPOCHS ARGS...: runs scripts/fmnist_timed_run.sh unless the folder it names holds every
# epoch's metrics (a stopped run has a checkpoint too, and starts over); prints the folder.
train() {
  local dir
  dir="$(PRINT_RUN_DIR=1 scripts/fmnist_timed_run.sh mixup "$@")"
  if [ "$(grep -c '"kind":"epoch"' "$dir/metrics.jsonl" 2>/dev/null)" != "$1" ]; then
    scripts/fmnist_timed_run.sh mixup "$@" >&2
    [ "$(grep -c '"kind":"epoch"' "$dir/metrics.jsonl" 2>/dev/null)" = "$1" ] ||
      { echo "training run $dir did not finish" >&2; return 1; }
  fi
  echo "$dir"
}
if [ -z "$PLAIN" ]; then
  PLAIN="$(train "$EPOCHS" "${RECIPE[@]}")/checkpoint.safetensors"
fi
SIN="$(train "$EPOCHS" "${RECIPE[@]}" --data "$SET")/checkpoint.safetensors"
JOIN="$(train "$JOIN_EPOCHS" "${RECIPE[@]}" --data "$FMNIST" --join-data "$SET")/checkpoint.safetensors"

# 3. Plain and stylized test images (the checkpoints' own texture swap, if any, turned off).
score() {
  local line
  line="$("$ENGINE" eval "$1" --data "$2" --texture-swap none)"
  line="$(printf '%s' "$line" | sed -nE 's/.*top-1 ([0-9.]+)%  top-5 ([0-9.]+)%.*/\1 \2/p')"
  [ -n "$line" ] || { echo "engine eval $1 --data $2 printed no accuracy" >&2; exit 1; }
  echo "$line"
}
NETS=(plain sin join); [ -n "$SWAP" ] && NETS+=(swap)
ckpt() { case "$1" in plain) echo "$PLAIN" ;; sin) echo "$SIN" ;; join) echo "$JOIN" ;; swap) echo "$SWAP" ;; esac; }
: > "$OUT/cross.txt"
for net in "${NETS[@]}"; do
  on_plain="$(score "$(ckpt "$net")" "$FMNIST")"  # assignments, so that set -e sees a failure
  on_stylized="$(score "$(ckpt "$net")" "$SET")"
  printf '%s plain %s\n%s stylized %s\n' "$net" "$on_plain" "$net" "$on_stylized" >> "$OUT/cross.txt"
done

# 4. Shape bias on the plain test images' cue conflicts: AdaIN (real weights, 112², α 1) and
# texture swap.
for net in "${NETS[@]}"; do
  "$ENGINE" shape-bias --checkpoint "$(ckpt "$net")" --data "$FMNIST" --cue adain \
    --pairs "${ADAIN_PAIRS:-1000}" --batch-size 50 --out "$OUT/shape-bias-adain-$net" > "$OUT/shape-bias-adain-$net.txt"
  "$ENGINE" shape-bias --checkpoint "$(ckpt "$net")" --data "$FMNIST" --cue texture-swap \
    --pairs "${PAIRS:-2000}" --batch-size 200 --out "$OUT/shape-bias-swap-$net" > "$OUT/shape-bias-swap-$net.txt"
done

python3 - "$OUT" "$DOC" "$SET" "$STYLES" "$SIZE" "$ALPHA" "$PLAIN" "$SIN" "$JOIN" "$SWAP" <<'PY'
import datetime, json, os, subprocess, sys
out, doc, set_dir, styles, size, alpha, plain, sin, join, swap = sys.argv[1:]
cross = {}
for line in open(os.path.join(out, "cross.txt")):
    net, test, t1, t5 = line.split()
    cross[(net, test)] = (float(t1), float(t5))
names = {
    "plain": f"plain images (IN), `{plain}`",
    "sin": f"AdaIN-stylized images (SIN), `{sin}`",
    "join": f"plain + stylized (SIN+IN), `{join}`",
    "swap": f"texture-swapped images (the stand-in), `{swap}`",
}
nets = [n for n in ["plain", "sin", "join", "swap"] if (n, "plain") in cross]
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
lines = [
    f"Run {when}, commit {commit}, by `scripts/sin_fmnist_adain.sh`. Stylized set `{set_dir}`: every "
    f"Fashion-MNIST image stylized once at {size}², α {alpha}, with a style drawn from the "
    f"{len([f for f in os.listdir(styles) if not f.startswith('.')])} images of `{styles}`; shape bias "
    f"on cue conflicts made from the plain test images.",
    "",
    "| trained on → tested on | plain test images | stylized test images |",
    "|---|---|---|",
]
for n in nets:
    cells = [f"{cross[(n, t)][0]:.2f} / {cross[(n, t)][1]:.2f}" for t in ["plain", "stylized"]]
    lines.append(f"| {names[n]} | {cells[0]} | {cells[1]} |")
lines += ["", "Top-1 / top-5 accuracy (%).", ""]
def row(r):
    return (f"{r['shape_bias']:.3f} ({r['shape_decisions']} / {r['texture_decisions']} / "
            f"{r['other_decisions']}), both right {r['shape_bias_both_correct']:.3f}")
sb = {(n, c): json.load(open(os.path.join(out, f"shape-bias-{c}-{n}", "report.json")))
      for n in nets for c in ["adain", "swap"]}
lines += [
    f"| network | AdaIN cue conflicts: shape bias (shape / texture / other of {sb[(nets[0], 'adain')]['pairs']}) "
    f"| texture-swap cue conflicts (of {sb[(nets[0], 'swap')]['pairs']}) |",
    "|---|---|---|",
]
for n in nets:
    lines.append(f"| {n} | {row(sb[(n, 'adain')])} | {row(sb[(n, 'swap')])} |")
lines.append("")
text = "\n".join(lines)
open(os.path.join(out, "results.md"), "w").write(text)
if doc:
    sys.path.insert(0, "tools")
    from doc_section import replace_section
    replace_section(doc, "adain-results", text)
print(text)
PY
