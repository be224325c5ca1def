#!/usr/bin/env python3
"""PyTorch twin of the engine's Fashion-MNIST trick ablation, for a second opinion on a trick's effect.

The engine's ablation (scripts/ablation_fmnist.sh, docs/ablation-fashion-mnist.md) found that some
Bag of Tricks rows cost accuracy at this scale (zero-γ most). That could be the trick or a bug of
ours. This script trains the same network with the same recipe rows in plain PyTorch, written from
the paper and the recipe's settings (not from the engine's code), so the two can be compared seed by
seed. It is a check to run by hand, not part of CI (CI never needs PyTorch).

Same as the engine's `TrainConfig::fashion_mnist`: ResNet-18 (variant B, BasicBlocks) of width 16
with a 3×3 stem and no max pool, 1 input channel, 10 classes; torchvision's initialisation (Kaiming
normal fan-out for convs, BN γ=1 β=0, zero-γ on each block's last BN when on); batch 128, lr 0.2 per
256, Nesterov momentum 0.9, weight decay 5e-4 (off for biases and BN parameters with no-bias-decay),
linear warmup over 1 epoch (reaching the base LR at its end), step decay ×0.1 at epochs 4 and 6 or
cosine to 0, label smoothing 0.1, mixup α 0.2 (one λ per batch); normalise with mean 0.286 std
0.353; train augmentation: pad 2, random 28×28 crop, horizontal flip. The last partial batch is kept.
Differences that remain: random streams (so compare means over seeds, not single runs) and
PyTorch's own kernels.

    python3 tools/torch_fmnist_tricks.py --recipes warmup zero-gamma --seeds 0 1 2 \
        --epochs 6 --train-limit 15000 --out runs/torch-tricks.jsonl

Each finished run appends one JSON line (recipe, seed, per-epoch top-1, final train loss, wall time);
runs already in the output file are skipped, so an interrupted sweep resumes.
"""
import argparse
import gzip
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from torch_cpu_bench import BasicBlock, ResNet  # tools/ is on sys.path when run as a script

ROWS = ["baseline", "warmup", "zero-gamma", "no-bias-decay", "cosine", "label-smoothing", "mixup"]


def read_idx(path):
    """Reads an IDX file (gzip or not) into a numpy array of its stated shape."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_split(root, prefix, limit):
    x = read_idx(os.path.join(root, f"{prefix}-images-idx3-ubyte.gz"))
    y = read_idx(os.path.join(root, f"{prefix}-labels-idx1-ubyte.gz"))
    if limit:
        x, y = x[:limit], y[:limit]
    x = torch.from_numpy(x.astype(np.float32) / 255.0).unsqueeze(1)
    return (x - 0.286) / 0.353, torch.from_numpy(y.astype(np.int64))


def small_resnet18(width, zero_gamma):
    """The engine's Fashion-MNIST network in plain torch (tools/torch_cpu_bench.py's torchvision-layout
    ResNet), with each block's last BN starting at γ = 0 when `zero_gamma`."""
    model = ResNet(18, in_channels=1, num_classes=10, width=width, small_input=True)
    if zero_gamma:
        for m in model.modules():
            if isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)
    return model


def augment(x, gen):
    """Pad 2 with black (raw 0, normalised as the engine pads before normalising), random 28×28
    crop and horizontal flip, each drawn per image."""
    n = x.shape[0]
    padded = F.pad(x, (2, 2, 2, 2), value=-0.286 / 0.353)
    dy = torch.randint(0, 5, (n,), generator=gen)
    dx = torch.randint(0, 5, (n,), generator=gen)
    flip = torch.rand(n, generator=gen) < 0.5
    out = torch.empty_like(x)
    for i in range(n):
        img = padded[i, :, dy[i]:dy[i] + 28, dx[i]:dx[i] + 28]
        out[i] = img.flip(-1) if flip[i] else img
    return out


def lr_at(step, base, warmup, total, cosine, milestones):
    if step < warmup:
        return base * (step + 1) / warmup
    if cosine:
        t = min((step - warmup) / max(total - warmup, 1), 1.0)
        return 0.5 * base * (1 + math.cos(math.pi * t))
    return base * 0.1 ** sum(step >= m for m in milestones)


def run(recipe, seed, args, train, test):
    rank = ROWS.index(recipe)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = small_resnet18(args.width, zero_gamma=rank >= 2)
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if rank >= 3 and (p.ndim == 1) else decay).append(p)
    opt = torch.optim.SGD([{"params": decay, "weight_decay": 5e-4},
                           {"params": no_decay, "weight_decay": 0.0}],
                          lr=0.1, momentum=0.9, nesterov=True)
    x_train, y_train = train
    n, bs = len(y_train), 128
    spe = math.ceil(n / bs)
    total = spe * args.epochs
    base = 0.2 * bs / 256
    warmup = spe if rank >= 1 else 0
    smoothing = 0.1 if rank >= 5 else 0.0
    step, tops, t0 = 0, [], time.time()
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(n, generator=gen)
        loss_sum, count = 0.0, 0
        for b in range(spe):
            idx = order[b * bs:(b + 1) * bs]
            x, y = augment(x_train[idx], gen), y_train[idx]
            target = F.one_hot(y, 10).float() * (1 - smoothing) + smoothing / 10
            if rank >= 6:
                lam = float(np.random.default_rng(seed * 100003 + step).beta(0.2, 0.2))
                perm = torch.randperm(len(y), generator=gen)
                x = lam * x + (1 - lam) * x[perm]
                target = lam * target + (1 - lam) * target[perm]
            for g in opt.param_groups:
                g["lr"] = lr_at(step, base, warmup, total, rank >= 4, [4 * spe, 6 * spe])
            loss = torch.sum(-target * F.log_softmax(model(x), 1), 1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(y)
            count += len(y)
            step += 1
        model.eval()
        with torch.no_grad():
            correct = sum((model(test[0][i:i + 1000]).argmax(1) == test[1][i:i + 1000]).sum().item()
                          for i in range(0, len(test[1]), 1000))
        tops.append(100.0 * correct / len(test[1]))
        print(f"{recipe} seed {seed} epoch {epoch + 1}: top-1 {tops[-1]:.2f} "
              f"train loss {loss_sum / count:.4f} ({time.time() - t0:.0f} s)", flush=True)
    return {"recipe": recipe, "seed": seed, "epochs": args.epochs, "train_limit": args.train_limit,
            "top1": tops, "train_loss": loss_sum / count, "seconds": time.time() - t0,
            "torch": torch.__version__, "threads": torch.get_num_threads()}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--recipes", nargs="+", default=["warmup", "zero-gamma"], choices=ROWS)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--train-limit", type=int, default=15000)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--out", default="runs/torch-tricks.jsonl")
    args = p.parse_args()
    if not os.path.isdir(args.data):
        raise SystemExit(f"no Fashion-MNIST at {args.data}: install Debian's dataset-fashion-mnist "
                         "or pass --data DIR with the four IDX files")
    train = load_split(args.data, "train", args.train_limit)
    test = load_split(args.data, "t10k", 0)
    done = set()
    if os.path.exists(args.out):
        for line in open(args.out):
            r = json.loads(line)
            done.add((r["recipe"], r["seed"], r["epochs"], r["train_limit"]))
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    for seed in args.seeds:
        for recipe in args.recipes:
            if (recipe, seed, args.epochs, args.train_limit) in done:
                continue
            result = run(recipe, seed, args, train, test)
            with open(args.out, "a") as f:
                f.write(json.dumps(result) + "\n")
    rows = [json.loads(l) for l in open(args.out)]
    print("\nrecipe           final top-1 per seed          mean")
    for recipe in args.recipes:
        tops = [r["top1"][-1] for r in rows if r["recipe"] == recipe and r["epochs"] == args.epochs
                and r["train_limit"] == args.train_limit]
        if tops:
            print(f"{recipe:16} {' / '.join(f'{t:.2f}' for t in tops):28} {np.mean(tops):.2f}")


if __name__ == "__main__":
    main()
