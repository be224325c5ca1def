#!/usr/bin/env python3
"""PyTorch side of scripts/bench_cpu_vs_torch.sh: reads the engine's JSON (examples/bench_cpu.rs),
times exactly the same workloads in PyTorch on the CPU with the same thread count (conv2d forward +
backward as GFLOP/s; one ResNet training step as images/s; median of several runs after warm-up),
and prints / writes a markdown table engine vs PyTorch.

The ResNets are written in plain torch (torchvision's architecture: BasicBlock / Bottleneck v1.5,
Kaiming fan-out init, BN γ=1 β=0), so torchvision is not needed. Metadata for the report header
comes from the environment: BENCH_DATE, BENCH_CPU, BENCH_COMMIT (set by the shell script).

    python3 tools/torch_cpu_bench.py --engine-json eng.json --out docs/benchmarks-cpu.md
"""

import argparse
import json
import os
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# Numbers in shared/notes/anchors.md (PyTorch 2.15, this machine), for the notes column.
ANCHORS = {
    "conv": 150.7,  # GFLOP/s, 3x3 256->256 14x14 N=32 fwd+bwd
    18: 39.8,  # images/s, ResNet-18 1x28x28 small stem batch 128
    50: 4.4,  # images/s, ResNet-50 224^2 batch 16
}
GEMM_CEILING = 190.0  # GFLOP/s: gemm crate f32, 2 threads, 256x2304x6272 (anchors.md)


def median_time(fn, warmup, reps):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(max(reps, 1)):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), times


# ---------------------------------------------------------------- conv


def conv_workload(r, autograd_loss):
    g = torch.Generator().manual_seed(0)
    o = (r["hw"] + 2 * r["pad"] - r["k"]) // r["stride"] + 1
    x = torch.randn(r["n"], r["cin"], r["hw"], r["hw"], generator=g).requires_grad_()
    w = (torch.randn(r["cout"], r["cin"], r["k"], r["k"], generator=g) * 0.05).requires_grad_()
    dy = torch.randn(r["n"], r["cout"], o, o, generator=g)

    def step():
        x.grad = None
        w.grad = None
        y = F.conv2d(x, w, stride=r["stride"], padding=r["pad"])
        if autograd_loss:
            (y * dy).sum().backward()  # the engine's autograd row: loss = sum(y * dy)
        else:
            y.backward(dy)

    return step


# ---------------------------------------------------------------- ResNet (torchvision layout)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or cin != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        h = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(h)) + idt)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, planes, stride):
        super().__init__()
        out = planes * 4
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)  # v1.5: stride in 3x3
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.downsample = None
        if stride != 1 or cin != out:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, out, 1, stride, bias=False), nn.BatchNorm2d(out)
            )

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        h = F.relu(self.bn1(self.conv1(x)))
        h = F.relu(self.bn2(self.conv2(h)))
        return F.relu(self.bn3(self.conv3(h)) + idt)


class ResNet(nn.Module):
    LAYOUT = {18: (BasicBlock, [2, 2, 2, 2]), 34: (BasicBlock, [3, 4, 6, 3]),
              50: (Bottleneck, [3, 4, 6, 3]), 101: (Bottleneck, [3, 4, 23, 3])}

    def __init__(self, depth, in_channels, num_classes, width, small_input):
        super().__init__()
        block, counts = self.LAYOUT[depth]
        if small_input:  # 3x3 s1 stem, no max pool
            self.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
            self.maxpool = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(in_channels, width, 7, 2, 3, bias=False)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.bn1 = nn.BatchNorm2d(width)
        layers, c = [], width
        for s, n in enumerate(counts):
            planes = width << s
            blocks = []
            for b in range(n):
                blocks.append(block(c, planes, 2 if s > 0 and b == 0 else 1))
                c = planes * block.expansion
            layers.append(nn.Sequential(*blocks))
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(c, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        h = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        h = self.layers(h)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(h, 1), 1))


def forward_macs(model, x):
    """Multiply-adds of the convs and the linear layer in one forward pass (per batch)."""
    macs = [0]

    def hook(m, inp, out):
        if isinstance(m, nn.Conv2d):
            k = m.weight[0].numel()  # Cin/groups * kh * kw
            macs[0] += out.numel() * k
        elif isinstance(m, nn.Linear):
            macs[0] += out.numel() * m.in_features

    hs = [m.register_forward_hook(hook) for m in model.modules()
          if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model.eval()
        model(x)
        model.train()
    for h in hs:
        h.remove()
    return macs[0]


def train_workload(r):
    torch.manual_seed(0)
    model = ResNet(r["depth"], r["in_channels"], r["num_classes"], r["width"], r["small_input"])
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4)
    x = torch.randn(r["batch"], r["in_channels"], r["hw"], r["hw"])
    labels = torch.arange(r["batch"]) % r["num_classes"]
    flops_per_image = 3 * 2 * forward_macs(model, x[:1])

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), labels)
        loss.backward()
        opt.step()
        return loss.item()

    return step, flops_per_image


# ---------------------------------------------------------------- report


def fmt_row(cells):
    return "| " + " | ".join(cells) + " |"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engine-json", required=True)
    ap.add_argument("--out", help="markdown file to write")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--train-reps", type=int, default=3)
    args = ap.parse_args()

    threads = os.cpu_count()
    torch.set_num_threads(threads)
    with open(args.engine_json) as f:
        eng = json.load(f)

    rows = []
    for r in eng["results"]:
        if r["kind"] == "conv":
            step = conv_workload(r, r["path"] == "autograd")
            med, _ = median_time(step, args.warmup, args.reps)
            t_gf = r["flops"] / med / 1e9
            e_gf = r["gflops"]
            name = f"conv {r['name']} fwd+bwd"
            if r["path"] == "autograd":
                name += " via autograd (loss Σ y·dy, both sides)"
            note = f"{r['flops'] / 1e9:.1f} GFLOP/call; engine at {100 * e_gf / GEMM_CEILING:.0f}% of the {GEMM_CEILING:.0f} GFLOP/s gemm ceiling"
            if r["path"] == "kernels" and r["name"].startswith("layer3 3x3 256->256"):
                note += f"; anchors.md PyTorch {ANCHORS['conv']}"
            rows.append((name, f"{e_gf:.1f} GFLOP/s", f"{t_gf:.1f} GFLOP/s", e_gf / t_gf, note))
            print(f"torch {name}: {t_gf:.1f} GFLOP/s (engine {e_gf:.1f})", flush=True)
        elif r["kind"] == "train":
            step, fpi = train_workload(r)
            med, _ = median_time(step, 1, args.train_reps)
            t_ips = r["batch"] / med
            e_ips = r["images_per_s"]
            name = f"train step {r['name']} (fwd, CE, bwd, SGD)"
            note = (f"≈ {fpi / 1e9:.2f} GFLOP/image (conv+fc, 3× fwd): engine {e_ips * fpi / 1e9:.0f}, "
                    f"PyTorch {t_ips * fpi / 1e9:.0f} GFLOP/s; anchors.md PyTorch {ANCHORS.get(r['depth'], '?')} img/s")
            rows.append((name, f"{e_ips:.1f} img/s", f"{t_ips:.1f} img/s", e_ips / t_ips, note))
            print(f"torch {name}: {t_ips:.1f} img/s (engine {e_ips:.1f})", flush=True)

    head = fmt_row(["Work", "Engine", "PyTorch", "Engine / PyTorch", "FLOPs / ceiling notes"])
    sep = "|---|---:|---:|---:|---|"
    table = "\n".join([head, sep] + [fmt_row([n, e, t, f"{q:.2f}", note]) for n, e, t, q, note in rows])
    commit = os.environ.get("BENCH_COMMIT", "?")
    doc = f"""# CPU benchmarks: engine vs PyTorch

Written by `scripts/bench_cpu_vs_torch.sh` (engine: `examples/bench_cpu.rs`, release build; PyTorch:
`tools/torch_cpu_bench.py`). Both run the same workloads one after the other in one go, on the same
machine, with the same thread count.

- Date (UTC): {os.environ.get('BENCH_DATE', '?')}
- CPU: {os.environ.get('BENCH_CPU', '?')}
- Threads: engine {eng['threads']} (rayon), PyTorch {torch.get_num_threads()} (`torch.set_num_threads(os.cpu_count())`)
- PyTorch {torch.__version__}; engine commit `{commit}`
- Method: median of {eng['reps']} runs after {eng['warmup']} warm-up runs for convs (engine) / {args.reps} after {args.warmup} (PyTorch);
  median of {eng['train_reps']} training steps after 1 warm-up (engine) / {args.train_reps} after 1 (PyTorch).
- Conv FLOPs = 3 × 2·N·Cout·Ho·Wo·Cin·kh·kw (forward, input gradient, weight gradient); the engine's
  conv rows call the three CPU kernels directly, PyTorch's do `y = F.conv2d(x, w); y.backward(dy)`.
- Training step: forward (train mode BN), cross-entropy, backward, SGD (momentum 0.9, wd 1e-4) on one
  fixed random batch; ResNets in torchvision's layout (PyTorch side written in plain torch).
{os.environ.get('BENCH_NOTE', '')}

{table}
"""
    print()
    print(table)
    if args.out:
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        with open(args.out, "w") as f:
            f.write(doc)
        print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
