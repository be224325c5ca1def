#!/usr/bin/env bash
# The input pipeline's speed on this machine, written to docs/benchmarks-loader.md: `engine
# bench-loader` (decode + the recipe's training augmentation + batching, the function the trainer's
# producer thread calls) on Fashion-MNIST (IDX, 28 px, pad-and-crop + flip + jitter + mixup) and on
# photographs (tests/data: scikit-image's photos and textures as JPEG, 128–160 px shorter side;
# 224 px random resized crop, flip, colour jitter, PCA lighting, mixup), for 1 thread and every core.
# Compare the per-core figures with a training step's images/s to see how many cores the loader
# needs. Run it on a quiet machine (about 20 seconds). Env: OUT (default docs/benchmarks-loader.md).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-docs/benchmarks-loader.md}"
cargo build --release --quiet
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
target/release/engine bench-loader >"$tmp/fmnist.json"
target/release/engine bench-loader --train-dir tests/data --val-dir tests/data --batch-size 64 >"$tmp/photos.json"
python3 - "$tmp" "$OUT" <<'PY'
import datetime, json, os, subprocess, sys
tmp, out = sys.argv[1:3]
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
cpu = [l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")][:1] or ["?"]
rows = []
for name, label in [("fmnist", "Fashion-MNIST (IDX in memory, 28 px, pad-2 crop + flip, jitter 0.4, mixup)"),
                    ("photos", "photographs (tests/data JPEGs, 224 px random resized crop, flip, jitter 0.4, lighting 0.1, mixup)")]:
    v = json.load(open(f"{tmp}/{name}.json"))
    for r in v["rows"]:
        rows.append(f"| {label} | {v['batch_size']} | {r['threads']} | {r['images_per_s']:,.0f} | "
                    f"{r['images_per_s_per_core']:,.0f} | {r['decode_only_images_per_s_per_core']:,.0f} |")
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
text = f"""<!-- Purpose: the input pipeline's throughput on the development machine. Written by
     scripts/bench_loader.sh (engine bench-loader); rerun it rather than editing the table. -->

# Input pipeline: decode + augmentation + batching

Run {now} on {cpu[0]} ({os.cpu_count()} CPUs), commit {commit},
by `scripts/bench_loader.sh`. Each row times `Loader::make_batch` (the trainer's producer thread
calls it for every batch) inside a pool of the given number of threads for at least 2 seconds after
one untimed batch; "decoding alone" times reading and decoding the same images without augmentation.
Small datasets are cycled, so files come from the page cache; decoding is always redone.

| data and augmentation | batch | threads | images/s | images/s per core | decoding alone, per core |
|---|---:|---:|---:|---:|---:|
""" + "\n".join(rows) + "\n"
open(out, "w").write(text)
print(text)
PY
