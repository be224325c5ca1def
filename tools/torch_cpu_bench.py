#!/usr/bin/env python3
"""PyTorch side and driver of scripts/bench_cpu_vs_torch.sh: asks the engine's benchmark binary
(examples/bench_cpu.rs) for its workloads, then for each one runs the engine binary on it alone and
right after times exactly the same work in PyTorch on the CPU with the same thread count (conv2d
forward + backward as GFLOP/s; one ResNet training step as images/s; median of several runs after
warm-up), so both sides of a row see the same machine conditions. Prints / writes a markdown table
engine vs PyTorch, with the CPU time other processes took during each side's measurement.

The ResNets are written in plain torch (torchvision's architecture: BasicBlock / Bottleneck v1.5,
Kaiming fan-out init, BN γ=1 β=0), so torchvision is not needed. Metadata for the report header
comes from the environment: BENCH_DATE, BENCH_CPU, BENCH_COMMIT (set by the shell script).

    python3 tools/torch_cpu_bench.py --engine-bin target/release/examples/bench_cpu \
        --out docs/benchmarks-cpu.md
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
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
# GFLOP/s of the gemm crate (f32, 2 threads, 256x2304x6272; anchors.md): the engine's own matrix
# product, so the most its im2col convs can reach. Not the CPU's peak: oneDNN goes past it.
GEMM_REF = 190.0


class ForeignLoad:
    """CPU time that processes other than this one and its children used during a `with` block,
    in cores (busy jiffies of /proc/stat minus our own rusage, over the wall time): 0 on a quiet
    machine, 1 when another process took a whole core."""

    @staticmethod
    def _busy():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        # user nice system idle iowait irq softirq steal ...
        return (v[0] + v[1] + v[2] + v[5] + v[6]) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _own():
        r = [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
        return sum(x.ru_utime + x.ru_stime for x in r)

    def __enter__(self):
        self.t, self.b, self.o = time.perf_counter(), self._busy(), self._own()
        return self

    def __exit__(self, *exc):
        wall = time.perf_counter() - self.t
        other = (self._busy() - self.b) - (self._own() - self.o)
        self.cores = max(other, 0.0) / max(wall, 1e-9)


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


def run_engine(binary, index, args):
    cmd = [binary, "--only", str(index), "--warmup", str(args.warmup), "--reps", str(args.reps),
           "--train-reps", str(args.train_reps)]
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    return json.loads(out)["results"][0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engine-bin", required=True, help="the release build of examples/bench_cpu.rs")
    ap.add_argument("--out", help="markdown file to write")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--train-reps", type=int, default=3)
    args = ap.parse_args()

    threads = os.cpu_count()
    torch.set_num_threads(threads)
    listing = json.loads(
        subprocess.run([args.engine_bin, "--list"], check=True, stdout=subprocess.PIPE, text=True).stdout)

    rows, max_load = [], 0.0
    for i, w in enumerate(listing["results"]):
        with ForeignLoad() as le:
            r = run_engine(args.engine_bin, i, args)
        if r["kind"] == "conv":
            with ForeignLoad() as lt:
                step = conv_workload(r, r["path"] == "autograd")
                med, _ = median_time(step, args.warmup, args.reps)
            t_gf = r["flops"] / med / 1e9
            e_gf = r["gflops"]
            name = f"conv {r['name']} fwd+bwd"
            if r["path"] == "autograd":
                name += " via autograd (loss Σ y·dy, both sides)"
            note = (f"{r['flops'] / 1e9:.1f} GFLOP/call; engine {100 * e_gf / GEMM_REF:.0f}%, "
                    f"PyTorch {100 * t_gf / GEMM_REF:.0f}% of the gemm crate's {GEMM_REF:.0f} GFLOP/s")
            if r["path"] == "kernels" and r["name"].startswith("layer3 3x3 256->256"):
                note += f"; anchors.md PyTorch {ANCHORS['conv']}"
            e, t, q = f"{e_gf:.1f} GFLOP/s", f"{t_gf:.1f} GFLOP/s", e_gf / t_gf
        else:
            with ForeignLoad() as lt:
                step, fpi = train_workload(r)
                med, _ = median_time(step, 1, args.train_reps)
            t_ips = r["batch"] / med
            e_ips = r["images_per_s"]
            name = f"train step {r['name']} (fwd, CE, bwd, SGD)"
            note = (f"≈ {fpi / 1e9:.2f} GFLOP/image (conv+fc, 3× fwd): engine {e_ips * fpi / 1e9:.0f}, "
                    f"PyTorch {t_ips * fpi / 1e9:.0f} GFLOP/s; anchors.md PyTorch {ANCHORS.get(r['depth'], '?')} img/s")
            e, t, q = f"{e_ips:.1f} img/s", f"{t_ips:.1f} img/s", e_ips / t_ips
        load = f"{le.cores:.2f} / {lt.cores:.2f}"
        max_load = max(max_load, le.cores, lt.cores)
        rows.append((name, e, t, q, load, note))
        print(f"{name}: engine {e}, PyTorch {t}, ratio {q:.2f}; other processes {load} cores", flush=True)

    head = fmt_row(["Work", "Engine", "PyTorch", "Engine / PyTorch",
                    "Other load, cores (engine / PyTorch)", "FLOPs / ceiling notes"])
    sep = "|---|---:|---:|---:|---:|---|"
    table = "\n".join([head, sep] + [fmt_row([n, e, t, f"{q:.2f}", ld, note])
                                     for n, e, t, q, ld, note in rows])
    verdict = ("quiet: no other process used more than 0.1 core during any measurement"
               if max_load <= 0.1 else
               f"NOT quiet: other processes used up to {max_load:.2f} cores during a measurement; "
               "rows with load above ~0.1 are skewed (PyTorch's OpenMP threads suffer more than rayon)")
    commit = os.environ.get("BENCH_COMMIT", "?")
    doc = f"""# CPU benchmarks: engine vs PyTorch

Written by `scripts/bench_cpu_vs_torch.sh` (engine: `examples/bench_cpu.rs`, release build; PyTorch:
`tools/torch_cpu_bench.py`). For each workload the engine binary runs it alone, then PyTorch runs the
same work, on the same machine with the same thread count.

- Date (UTC): {os.environ.get('BENCH_DATE', '?')}
- CPU: {os.environ.get('BENCH_CPU', '?')}
- Threads: engine {listing['threads']} (rayon), PyTorch {torch.get_num_threads()} (`torch.set_num_threads(os.cpu_count())`)
- PyTorch {torch.__version__}; engine commit `{commit}`
- Method: convs: median of {args.reps} runs after {args.warmup} warm-up runs; training steps: median
  of {args.train_reps} steps after 1 warm-up step; both sides alike.
- Conv FLOPs = 3 × 2·N·Cout·Ho·Wo·Cin·kh·kw (forward, input gradient, weight gradient); the engine's
  conv rows call the three CPU kernels directly, PyTorch's do `y = F.conv2d(x, w); y.backward(dy)`.
- Training step: forward (train mode BN), cross-entropy, backward, SGD (momentum 0.9, wd 1e-4) on one
  fixed random batch; ResNets in torchvision's layout (PyTorch side written in plain torch).
- The gemm crate's {GEMM_REF:.0f} GFLOP/s (plain f32 products of im2col shapes, anchors.md) is what the
  engine's im2col + gemm convs can reach at best; it is not the CPU's peak (oneDNN goes past it).
  The CPU's f32 peak is 32 FLOP/cycle per core (one 512-bit FMA per cycle on Zen 4) × 2 cores × the
  clock: about 235 GFLOP/s at 3.7 GHz.
- The engine runs 3×3 stride-1 pad-1 convs (the anchor, the layer1/layer4 3×3 rows, and most convs
  of the training steps) as Winograd F(2×2, 3×3), which does 2.25× fewer multiply-adds than the
  definition; PyTorch (oneDNN) computes them directly. GFLOP/s count the definition's FLOPs on both
  sides, so for those rows the engine's figure is an effective rate and can pass the peak.
  `examples/bench_cpu.rs --no-winograd` measures the engine's im2col path instead.
- "Other load": CPU time other processes used while each side measured, in cores (0 = quiet machine).
  This run: {verdict}.

{table}
"""
    print()
    print(table)
    print(verdict)
    if args.out:
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        with open(args.out, "w") as f:
            f.write(doc)
        print(f"\nwrote {args.out}")
        # One line per run in the history beside it, so ratios can be followed across commits.
        hist = os.path.join(os.path.dirname(args.out) or ".", "benchmarks-cpu-history.md")
        if not os.path.exists(hist):
            with open(hist, "w") as f:
                f.write("# CPU benchmark history: engine / PyTorch ratios, one line per run of "
                        "`scripts/bench_cpu_vs_torch.sh`\n\n"
                        "Columns follow docs/benchmarks-cpu.md's rows (anchor conv first, ResNet-18 and "
                        "ResNet-50 training steps last). Both sides are measured side by side in each run, "
                        "so ratios compare across runs; absolute numbers do not (the VM's speed varies).\n\n")
        with open(hist, "a") as f:
            ratios = ", ".join(f"{n.split(' (')[0]}: {q:.2f}" for n, _, _, q, _, _ in rows)
            f.write(f"- {os.environ.get('BENCH_DATE', '?')}, commit `{commit}`, "
                    f"{'quiet' if max_load <= 0.1 else 'NOT quiet'}: {ratios}\n")


if __name__ == "__main__":
    main()
