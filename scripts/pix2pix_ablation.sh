#!/usr/bin/env bash
# pix2pix perceptual-loss ablation: the same pix2pix run (same data, seed, schedule) trained three
# times — GAN + L1 only, + a perceptual loss over an ImageNet-trained ResNet (IN), + one over a
# Stylized-ImageNet-trained ResNet (SIN) — then each generator tested on val/ with the L1, PSNR and
# the perceptual distance under BOTH networks (so each perceptual run is also scored under the
# network it did not train with). Writes $OUT/results.md (table, settings, grids) and, with
# --doc FILE, the same text to FILE. See docs/pix2pix-ablation.md.
#
#   scripts/pix2pix_ablation.sh [options] IN_NET SIN_NET [extra `engine pix2pix train` flags…]
#
#   IN_NET, SIN_NET   perceptual networks: an `engine train` CHECKPOINT or torchvision:FILE
#                     (optional with --small: stand-ins are built, see below)
#   --small           smoke run: 32 px, ngf/ndf 8, 20+10 epochs, batch 2, lr 1e-3 (under a minute on
#                     2 CPU cores); without IN_NET/SIN_NET it uses stand-in networks — IN: the tiny
#                     torchvision-format ResNet-50 test fixture, SIN: a width-4 ResNet-18 trained by
#                     `engine train` for one epoch on photos-vs-textures — which test the plumbing,
#                     not the science
#   --fashion-mnist N the CPU-sized real run: pairs from the first N Fashion-MNIST test images
#                     (Debian's dataset-fashion-mnist; FMNIST_DIR to change) at 32 px, one channel,
#                     U-Net/PatchGAN ngf/ndf 32, batch 16, EPOCHS (default 15) + EPOCHS_DECAY (15);
#                     task edges2photo unless --task says otherwise. IN_NET/SIN_NET: 1-channel
#                     Fashion-MNIST checkpoints (e.g. plain and --texture-swap runs of engine train)
#   --photos DIR      photos to build pairs from (default tests/data/photos, 8 images)
#   --pairs DIR       use an existing aligned dataset (train/, val/ of A|B images, e.g. facades)
#   --task T          gray2color (default) | edges2photo | blur2sharp
#   --out DIR         work folder (default runs/pix2pix-ablation, or …-small)
#   --doc FILE        also write the report to FILE (e.g. docs/pix2pix-ablation.md)
#   --device D        cpu (default) | cuda | auto
#   ENGINE=path       use this engine binary instead of building target/release/engine
#
# Full runs use the paper's settings: 256 px, unet_256, 70×70 PatchGAN, batch 1, EPOCHS (default
# 100) + EPOCHS_DECAY (default 100) epochs, λ_L1 100, λ_perc 10 (set LAMBDA_PERC to change).
# Finished runs are kept (a `done` file) and skipped on the next call; delete a run folder to redo it.
set -euo pipefail
cd "$(dirname "$0")/.."

SMALL=0 FMNIST=0 PHOTOS=tests/data/photos PAIRS="" TASK="" OUT="" DOC="" DEVICE=cpu
POS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --small) SMALL=1 ;;
    --fashion-mnist) FMNIST="$2"; shift ;;
    --photos) PHOTOS="$2"; shift ;;
    --pairs) PAIRS="$2"; shift ;;
    --task) TASK="$2"; shift ;;
    --out) OUT="$2"; shift ;;
    --doc) DOC="$2"; shift ;;
    --device) DEVICE="$2"; shift ;;
    --) shift; POS+=("$@"); break ;;
    *) POS+=("$1") ;;
  esac
  shift
done
IN_NET="${POS[0]:-}" SIN_NET="${POS[1]:-}"
EXTRA=("${POS[@]:2}")

if [ -z "${ENGINE:-}" ]; then
  cargo build --release --quiet
  ENGINE="${CARGO_TARGET_DIR:-target}/release/engine"
fi

if [ "$FMNIST" != 0 ]; then
  OUT="${OUT:-runs/pix2pix-ablation-fmnist}"
  SIZE=32
  TASK="${TASK:-edges2photo}"
  TRAIN=(--image-size 32 --input-nc 1 --output-nc 1 --ngf 32 --ndf 32 --batch-size 16
         --epochs "${EPOCHS:-15}" --epochs-decay "${EPOCHS_DECAY:-15}")
elif [ "$SMALL" = 1 ]; then
  OUT="${OUT:-runs/pix2pix-ablation-small}"
  SIZE=32
  TRAIN=(--image-size 32 --ngf 8 --ndf 8 --n-layers 2 --batch-size 2 --epochs 20 --epochs-decay 10
         --lr 1e-3 --sample-every 30)
else
  OUT="${OUT:-runs/pix2pix-ablation}"
  SIZE=256
  TRAIN=(--image-size 256 --epochs "${EPOCHS:-100}" --epochs-decay "${EPOCHS_DECAY:-100}")
fi
TASK="${TASK:-gray2color}"
mkdir -p "$OUT"
STANDINS=0
if [ -z "$IN_NET" ] || [ -z "$SIN_NET" ]; then
  if [ "$SMALL" != 1 ]; then
    echo "usage: $0 [options] IN_NET SIN_NET [train flags…]  (stand-in networks only with --small)" >&2
    exit 2
  fi
  STANDINS=1
  IN_NET="torchvision:tests/fixtures/tiny_resnet50_torchvision.safetensors"
  SIN_NET="$OUT/standin-sin/checkpoint.safetensors"
  if [ ! -f "$SIN_NET" ]; then
    echo "== stand-in SIN network: ResNet-18 width 4, one epoch on photos vs textures"
    tree="$OUT/standin-data"
    mkdir -p "$tree/photos" "$tree/textures"
    cp tests/data/photos/*.jpg "$tree/photos/"
    cp tests/data/textures/*.jpg "$tree/textures/"
    "$ENGINE" train --data-format folder --train-dir "$tree" --val-dir "$tree" --depth 18 --width 4 \
      --epochs 1 --batch-size 4 --out "$OUT/standin-sin" --quiet --device "$DEVICE"
  fi
fi

DATA="$PAIRS"
if [ -z "$DATA" ]; then
  DATA="$OUT/data"
  if [ ! -f "$DATA/pairs.json" ]; then
    if [ "$FMNIST" != 0 ]; then
      src="${FMNIST_DIR:-/usr/share/datasets/fashion-mnist}"
      echo "== pairs: $TASK from the first $FMNIST Fashion-MNIST test images in $src at $SIZE px"
      "$ENGINE" pix2pix make-pairs --src "$src" --src-format fashion-mnist --limit "$FMNIST" \
        --out "$DATA" --task "$TASK" --size "$SIZE" --val-fraction 0.2
    else
      echo "== pairs: $TASK from $PHOTOS at $SIZE px"
      "$ENGINE" pix2pix make-pairs --src "$PHOTOS" --out "$DATA" --task "$TASK" --size "$SIZE" --val-fraction 0.2
    fi
  fi
fi

for variant in none in sin; do
  run="$OUT/$variant"
  case "$variant" in
    none) perc=(--perceptual none) ;;
    in) perc=(--perceptual "$IN_NET" --lambda-perc "${LAMBDA_PERC:-10}") ;;
    sin) perc=(--perceptual "$SIN_NET" --lambda-perc "${LAMBDA_PERC:-10}") ;;
  esac
  if [ -f "$run/done" ]; then
    echo "== $variant: done already (delete $run to rerun)"
  else
    echo "== train: perceptual $variant"
    start=$(date +%s)
    if [ -f "$run/checkpoint.safetensors" ]; then
      "$ENGINE" pix2pix train --out "$run" --resume --quiet --device "$DEVICE"
    else
      "$ENGINE" pix2pix train --data "$DATA" --out "$run" "${TRAIN[@]}" "${perc[@]}" --quiet \
        --device "$DEVICE" "${EXTRA[@]}"
    fi
    echo $(( $(date +%s) - start )) > "$run/done"
  fi
  for net in in sin; do
    spec="$IN_NET"; [ "$net" = sin ] && spec="$SIN_NET"
    "$ENGINE" pix2pix test --checkpoint "$run/checkpoint.safetensors" --data "$DATA" \
      --out "$run/test-$net" --perceptual-net "$spec" --device "$DEVICE" > /dev/null
  done
done

python3 - "$OUT" "$DATA" "$SMALL" "$STANDINS" "$IN_NET" "$SIN_NET" "$DOC" "$FMNIST" <<'PY'
import datetime, json, os, shutil, subprocess, sys
out, data, small, standins, in_net, sin_net, doc, fmnist = sys.argv[1:]
small, standins = small == "1", standins == "1"
rows = []
for v in ["none", "in", "sin"]:
    t_in = json.load(open(os.path.join(out, v, "test-in", "metrics.json")))
    t_sin = json.load(open(os.path.join(out, v, "test-sin", "metrics.json")))
    wall = int(open(os.path.join(out, v, "done")).read())
    rows.append((v, t_in["l1"], t_in["psnr"], t_in["perceptual"], t_sin["perceptual"], wall,
                 os.path.join(v, "test-in", "grids", "grid_000.png")))
cfg = json.load(open(os.path.join(out, "none", "config.json")))
pairs = os.path.join(data, "pairs.json")
task = json.load(open(pairs))["task"] if os.path.exists(pairs) else "(given pairs)"
n_val = len(os.listdir(os.path.join(data, "val")))
n_train = len(os.listdir(os.path.join(data, "train")))
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
g, d = cfg["generator"], cfg["discriminator"]
kind = ("SMOKE RUN (--small): tiny networks and data; the numbers test the pipeline, not the method" if small
        else f"Fashion-MNIST run (--fashion-mnist {fmnist})" if fmnist != "0" else "full run")
flag = " --small" if small else f" --fashion-mnist {fmnist}" if fmnist != "0" else ""
lines = [
    f"## Results: {kind}",
    "",
    f"Run {when}, commit {commit}, by `scripts/pix2pix_ablation.sh{flag}`. "
    f"Data: {task}, {n_train} train / {n_val} val pairs from `{data}`; {cfg['image_size']} px, "
    f"U-Net {g['num_downs']} levels ngf {g['ngf']}, PatchGAN {d['n_layers']} layers ndf {d['ndf']}, "
    f"batch {cfg['batch_size']}, {cfg['epochs']}+{cfg['epochs_decay']} epochs, lr {cfg['lr']}, "
    f"λ_L1 {cfg['lambda_l1']}, seed {cfg['seed']}. Test mode: reference (BN batch statistics, dropout on).",
    "",
    f"IN network: `{in_net}`; SIN network: `{sin_net}`"
    + (" — **stand-ins** (the tiny torchvision-format ResNet-50 test fixture; a ResNet-18 of width 4 "
       "trained one epoch on photos vs textures), not ImageNet/Stylized-ImageNet models." if standins else "."),
    "",
    "| perceptual loss | val L1 ([-1, 1]) ↓ | PSNR (dB) ↑ | distance under IN ↓ | distance under SIN ↓ | train time (s) | grid |",
    "|---|---|---|---|---|---|---|",
]
grids = os.path.join(out, "grids")
os.makedirs(grids, exist_ok=True)
for v, l1, psnr, d_in, d_sin, wall, grid in rows:
    shutil.copy(os.path.join(out, grid), os.path.join(grids, f"{v}.png"))
    lines.append(f"| {v} | {l1:.4f} | {psnr:.2f} | {d_in:.4f} | {d_sin:.4f} | {wall} | grids/{v}.png |")
lines += ["", "Grids: one row per val image, columns input | output | target (first grid file of each run).", ""]
text = "\n".join(lines)
open(os.path.join(out, "results.md"), "w").write(text)
if doc:
    open(doc, "w").write(text)
print(text)
PY
