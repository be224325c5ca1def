#!/usr/bin/env python3
"""PyTorch baselines and ceilings for the one-shot GPU check (scripts/gpu_check.sh, docs/GPU-CHECK.md).

Measures, on the GPU, with CUDA events (warm-up first; median over batches of iterations):
  - train_step.resnet50: torchvision's ResNet-50 (plain-torch copy if torchvision is missing) training
    step on one synthetic batch (256×3×224×224), SGD Nesterov momentum, label smoothing 0.1, eager AMP
    (fp16 autocast + GradScaler), channels_last (and NCHW) → images/s and torch.cuda.max_memory_allocated;
  - the ops our kernels replace, named as `engine bench-ops` names them (src/bench/ops.rs), same shapes and
    the same graphs: bn_relu / bn_add_relu fwd and fwd+bwd (loss = (y·dy).sum()) in fp16, NCHW and
    channels_last; conv3x3 (ResNet-50 stage 1) fwd and fwd+bwd, NCHW and channels_last; sgd.resnet50 (foreach and fused); cross_entropy_ls.fwd_bwd;
    mixup.fwd (lam·x + (1 − lam)·x[perm], images and soft targets); adain.fwd at 512²/224²;
  - the ceilings: copy_d2d (torch.empty(...).copy_, bytes read + written) and gemm_f16 (8192³).
Writes one JSON object (stdout, or --out FILE).

--dry-run: tiny shapes on whatever device there is (the CPU here) to check the script itself; no AMP
on the CPU. Needs only torch (torchvision optional).
"""

import argparse
import json
import math
import os
import sys
import time
import traceback

import torch
import torch.nn as nn
import torch.nn.functional as F


# --------------------------------------------------------------------------- plain-torch ResNet-50
class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, planes, stride):
        super().__init__()
        cout = planes * 4
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        # torchvision's order and in-place ReLUs / residual add, so memory matches it too.
        h = F.relu(self.bn1(self.conv1(x)), inplace=True)
        h = F.relu(self.bn2(self.conv2(h)), inplace=True)
        h = self.bn3(self.conv3(h))
        h += x if self.downsample is None else self.downsample(x)
        return F.relu(h, inplace=True)


class ResNet50(nn.Module):
    """torchvision.models.resnet50 (v1.5: stride in the 3×3), same parameter names, same in-place ops."""

    def __init__(self, num_classes=1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        cin = 64
        for i, (planes, count) in enumerate([(64, 3), (128, 4), (256, 6), (512, 3)]):
            blocks = []
            for b in range(count):
                blocks.append(Bottleneck(cin, planes, 2 if (i > 0 and b == 0) else 1))
                cin = planes * 4
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.fc = nn.Linear(2048, num_classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x)), inplace=True), 3, 2, 1)
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def resnet50():
    try:
        import torchvision

        return torchvision.models.resnet50(), f"torchvision {torchvision.__version__}"
    except Exception:  # noqa: BLE001 - any import problem means: use the plain copy
        return ResNet50(), "plain torch (torchvision missing)"


def recipe_sgd(params, **kw):
    """The engine's bench SGD (src/bench/mod.rs `bench_sgd`): Nesterov momentum 0.9, lr 0.01, weight
    decay 5e-5 except on 1-D parameters (biases, BN γ/β); `kw` picks the implementation."""
    params = list(params)
    return torch.optim.SGD(
        [{"params": [p for p in params if p.ndim > 1], "weight_decay": 5e-5},
         {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}],
        lr=0.01, momentum=0.9, nesterov=True, **kw,
    )


# --------------------------------------------------------------------------- timing
class Timer:
    def __init__(self, device):
        self.cuda = device.type == "cuda"

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize()

    def time(self, fn, repeats, iters, warmup=2):
        """Median ms per call over `repeats` batches of `iters` calls."""
        for _ in range(warmup):
            fn()
        self.sync()
        per = []
        for _ in range(max(1, repeats)):
            if self.cuda:
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record()
                for _ in range(iters):
                    fn()
                b.record()
                b.synchronize()
                per.append(a.elapsed_time(b) / iters)
            else:
                t = time.perf_counter()
                for _ in range(iters):
                    fn()
                per.append((time.perf_counter() - t) * 1e3 / iters)
        per.sort()
        return per[len(per) // 2]


def guarded(rows, name, shape, bytes_, flops, fn, impl="torch"):
    row = {"op": name, "shape": shape, "bytes": bytes_, "flops": flops, "impl": impl}
    try:
        row["ms"] = fn()
        row["status"] = "ok"
    except Exception as e:  # noqa: BLE001 - report and go on
        row["status"] = "error"
        row["error"] = f"{type(e).__name__}: {e}"
        traceback.print_exc()
    print(f"torch: {name} [{impl}] {shape} -> {row.get('ms', row.get('error'))}", file=sys.stderr, flush=True)
    rows.append(row)
    return row


# --------------------------------------------------------------------------- benchmarks
def train_step(dev, args, channels_last, amp):
    torch.manual_seed(0)
    model, source = resnet50()
    model = model.to(dev)
    mf = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=mf)
    b, s = args.batch, args.image
    x = torch.randn(b, 3, s, s, device=dev).to(memory_format=mf)
    y = torch.arange(b, device=dev) * 7919 % 1000
    opt = recipe_sgd(model.parameters())
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    crit = nn.CrossEntropyLoss(label_smoothing=0.1)

    forward_live = []

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(dev.type, dtype=torch.float16, enabled=amp):
            loss = crit(model(x), y)
        if dev.type == "cuda":
            forward_live.append(torch.cuda.memory_allocated())  # a host-side counter: no sync
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        return loss

    for _ in range(args.warmup):
        step()
    timer = Timer(dev)
    timer.sync()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(args.steps):
        if dev.type == "cuda":
            a, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            step()
            e.record()
            e.synchronize()
            times.append(a.elapsed_time(e))
        else:
            t = time.perf_counter()
            step()
            times.append((time.perf_counter() - t) * 1e3)
    times_sorted = sorted(times)
    return {
        "model": "resnet50",
        "model_source": source,
        "batch": b,
        "image": s,
        "amp_fp16": amp,
        "channels_last": channels_last,
        "steps": args.steps,
        "warmup": args.warmup,
        "step_ms": {"median": times_sorted[len(times) // 2], "mean": sum(times) / len(times),
                    "min": times_sorted[0], "max": times_sorted[-1]},
        "images_per_s": b * len(times) / (sum(times) / 1e3),
        "peak_memory_bytes": torch.cuda.max_memory_allocated() if dev.type == "cuda" else None,
        "peak_memory_source": "torch.cuda.max_memory_allocated (after warm-up)",
        "forward_live_bytes": forward_live[-1] if forward_live else None,
    }


def bn_ops(rows, dev, args, timer):
    shrink = args.shrink
    n = max(1, 256 // shrink)
    for fused, c, hw in [("bn_relu", 64, 56), ("bn_add_relu", 256, 56)]:
        for layout in ["nchw", "cl"]:
            mf = torch.channels_last if layout == "cl" else torch.contiguous_format
            for pas in ["fwd", "fwd_bwd"]:
                name = f"{fused}.{pas}.{layout}"
                if args.filter and args.filter not in name:
                    continue
                numel = n * c * hw * hw
                tensors = {("bn_relu", "fwd"): 2, ("bn_relu", "fwd_bwd"): 6,
                           ("bn_add_relu", "fwd"): 3, ("bn_add_relu", "fwd_bwd"): 8}[(fused, pas)]

                def run(fused=fused, c=c, hw=hw, mf=mf, pas=pas):
                    dt = torch.float16 if dev.type == "cuda" else torch.float32
                    x = torch.randn(n, c, hw, hw, device=dev, dtype=dt).to(memory_format=mf)
                    r = torch.randn(n, c, hw, hw, device=dev, dtype=dt).to(memory_format=mf)
                    dy = torch.randn(n, c, hw, hw, device=dev, dtype=dt).to(memory_format=mf)
                    bn = nn.BatchNorm2d(c).to(dev)  # f32 γ/β/stats, as in AMP training
                    bwd = pas == "fwd_bwd"
                    x.requires_grad_(bwd)

                    def f():
                        with torch.autocast(dev.type, dtype=torch.float16, enabled=dev.type == "cuda"):
                            y = bn(x)
                            y = F.relu(y + r) if fused == "bn_add_relu" else F.relu(y)
                        if bwd:
                            (y * dy).sum().backward()
                        return y

                    if not bwd:
                        with torch.no_grad():
                            return timer.time(f, args.repeats, args.iters)
                    return timer.time(f, args.repeats, args.iters)

                guarded(rows, name, f"{n}x{c}x{hw}x{hw} f16", tensors * numel * 2.0, 0.0, run)


def conv_ops(rows, dev, args, timer):
    """ResNet-50's stage-1 3×3 conv (64 → 64, 56², batch 256/shrink), f16, NCHW and channels_last:
    forward, and forward + backward (data and filter gradients; loss = (y·dy).sum() as in the engine's
    bench-ops). FLOPs 2·N·Co·H·W·Ci·9 per pass."""
    n = max(1, 256 // args.shrink)
    c, hw = 64, 56
    for layout in ["nchw", "cl"]:
        mf = torch.channels_last if layout == "cl" else torch.contiguous_format
        for pas in ["fwd", "fwd_bwd"]:
            name = f"conv3x3.{pas}.{layout}"
            if args.filter and args.filter not in name:
                continue
            flops = 2.0 * n * c * hw * hw * c * 9 * (3 if pas == "fwd_bwd" else 1)
            bytes_ = 2.0 * (2 * n * c * hw * hw + c * c * 9) * (3 if pas == "fwd_bwd" else 1)

            def run(mf=mf, pas=pas):
                dt = torch.float16 if dev.type == "cuda" else torch.float32
                bwd = pas == "fwd_bwd"
                x = torch.randn(n, c, hw, hw, device=dev, dtype=dt).to(memory_format=mf).requires_grad_(bwd)
                w = (torch.randn(c, c, 3, 3, device=dev, dtype=dt) * 0.05).to(memory_format=mf).requires_grad_(bwd)
                dy = torch.randn(n, c, hw, hw, device=dev, dtype=dt).to(memory_format=mf)

                def f():
                    y = F.conv2d(x, w, padding=1)
                    if bwd:  # the engine's graph: loss = (y·dy).sum()
                        (y * dy).sum().backward()
                    return y

                if not bwd:
                    with torch.no_grad():
                        return timer.time(f, args.repeats, args.iters)
                return timer.time(f, args.repeats, args.iters)

            guarded(rows, name, f"{n}x{c}x{hw}x{hw} k3 f16", bytes_, flops, run)


def sgd_op(rows, dev, args, timer):
    if args.filter and args.filter not in "sgd.resnet50":
        return
    model, _ = resnet50()
    params = [p for p in model.to(dev).parameters()]
    numel = sum(p.numel() for p in params)
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    for impl in ["foreach", "fused"]:
        def run(impl=impl):
            kw = {"foreach": True} if impl == "foreach" else {"fused": True}
            opt = recipe_sgd(params, **kw)
            return timer.time(opt.step, args.repeats, args.iters)

        guarded(rows, "sgd.resnet50", f"{numel / 1e6:.1f}M params f32", 5.0 * 4 * numel, 0.0, run, impl)


def misc_ops(rows, dev, args, timer):
    s = args.shrink
    want = lambda name: not args.filter or args.filter in name  # noqa: E731
    if want("cross_entropy_ls"):
        n = max(1, 256 // s)

        def ce():
            logits = torch.randn(n, 1000, device=dev, requires_grad=True)
            y = torch.arange(n, device=dev) * 7919 % 1000
            return timer.time(lambda: F.cross_entropy(logits, y, label_smoothing=0.1).backward(),
                              args.repeats, args.iters)

        guarded(rows, "cross_entropy_ls.fwd_bwd", f"{n}x1000 f32", 2.0 * 4 * n * 1000, 0.0, ce)
    if want("mixup"):
        n = max(1, 256 // s)
        per, k = 3 * 224 * 224, 1000

        def mixup():
            # The usual PyTorch recipe (GluonCV/timm style): lam·x + (1 − lam)·x[perm], same for the
            # soft targets; the indexing materialises x[perm] first.
            x = torch.randn(n, 3, 224, 224, device=dev)
            t = torch.randn(n, k, device=dev)
            perm = torch.arange(n - 1, -1, -1, device=dev)
            lam = 0.3

            def f():
                return x.mul(lam).add_(x[perm], alpha=1 - lam), t.mul(lam).add_(t[perm], alpha=1 - lam)

            with torch.no_grad():
                return timer.time(f, args.repeats, args.iters)

        guarded(rows, "mixup.fwd", f"{n}x3x224² + {n}x{k} f32", 3.0 * 4 * n * (per + k), 0.0, mixup)
    for px, n, hw in [(512, 8, 64), (224, 32, 28)]:
        name = f"adain.fwd.{px}px"
        if not want(name):
            continue
        n = max(1, n // s)

        def adain(n=n, hw=hw):
            c = torch.randn(n, 512, hw, hw, device=dev)
            st = torch.randn(n, 512, hw, hw, device=dev) * 2 + 0.5

            def f():
                cm, cs = c.mean((2, 3), keepdim=True), (c.var((2, 3), keepdim=True) + 1e-5).sqrt()
                sm, ss = st.mean((2, 3), keepdim=True), (st.var((2, 3), keepdim=True) + 1e-5).sqrt()
                return ss * (c - cm) / cs + sm

            with torch.no_grad():
                return timer.time(f, args.repeats, args.iters)

        guarded(rows, name, f"{n}x512x{hw}x{hw} f32", 3.0 * 4 * n * 512 * hw * hw, 0.0, adain)
    if want("copy_d2d"):
        nbytes = (1 << 30) // s

        def copy():
            src = torch.randn(nbytes // 4, device=dev)
            dst = torch.empty_like(src)
            return timer.time(lambda: dst.copy_(src), args.repeats, args.iters)

        guarded(rows, "copy_d2d", f"{nbytes >> 20} MiB", 2.0 * nbytes, 0.0, copy)
    if want("gemm_f16"):
        m = max(64, 8192 // s)

        def gemm():
            dt = torch.float16 if dev.type == "cuda" else torch.float32
            a = torch.randn(m, m, device=dev, dtype=dt)
            b = torch.randn(m, m, device=dev, dtype=dt)
            return timer.time(lambda: a @ b, args.repeats, args.iters)

        guarded(rows, "gemm_f16", f"{m}x{m}x{m} f16", 3.0 * 2 * m * m, 2.0 * m ** 3, gemm)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="tiny shapes, CPU allowed, no AMP on the CPU")
    ap.add_argument("--out", help="write the JSON here (default: stdout)")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--image", type=int, default=224)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--shrink", type=int, default=1, help="divide op batch sizes by this")
    ap.add_argument("--filter", help="only ops whose name contains this")
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument("--skip-nchw-train", action="store_true", help="only the channels_last training step")
    args = ap.parse_args()

    cuda = torch.cuda.is_available()
    if not cuda and not args.dry_run:
        out = {"kind": "torch_gpu_bench", "status": "unavailable",
               "error": "torch.cuda.is_available() is False (no CUDA driver / GPU)", "torch": torch.__version__}
        emit(out, args)
        return 2
    if args.dry_run:
        args.batch, args.image, args.steps, args.warmup = 2, 64, 2, 1
        args.repeats, args.iters, args.shrink = 2, 1, max(args.shrink, 64)
    dev = torch.device("cuda" if cuda else "cpu")
    if cuda:
        torch.backends.cudnn.benchmark = True
    timer = Timer(dev)
    info = {"torch": torch.__version__, "device": str(dev), "cudnn": torch.backends.cudnn.version() if cuda else None}
    if cuda:
        p = torch.cuda.get_device_properties(0)
        info.update(name=p.name, sm_count=p.multi_processor_count, total_bytes=p.total_memory,
                    capability=f"sm_{p.major}{p.minor}")
    out = {"kind": "torch_gpu_bench", "status": "ok", "dry_run": args.dry_run, "info": info,
           "train": [], "ops": []}
    t0 = time.time()
    if not args.skip_train:
        layouts = [True] if args.skip_nchw_train else [True, False]
        for cl in layouts:
            tag = "channels_last" if cl else "nchw"
            try:
                r = train_step(dev, args, cl, amp=cuda)
                r["status"] = "ok"
            except Exception as e:  # noqa: BLE001
                traceback.print_exc()
                r = {"status": "error", "channels_last": cl, "error": f"{type(e).__name__}: {e}"}
            print(f"torch: train_step.resnet50 [{tag}] -> {r.get('images_per_s', r.get('error'))}",
                  file=sys.stderr, flush=True)
            out["train"].append(r)
            if cuda:
                torch.cuda.empty_cache()
    bn_ops(out["ops"], dev, args, timer)
    conv_ops(out["ops"], dev, args, timer)
    sgd_op(out["ops"], dev, args, timer)
    misc_ops(out["ops"], dev, args, timer)
    out["seconds"] = time.time() - t0
    if any(r.get("status") != "ok" for r in out["train"] + out["ops"]):
        out["status"] = "partial"
    emit(out, args)
    return 0


def emit(out, args):
    text = json.dumps(out, indent=1, default=lambda o: None if isinstance(o, float) and math.isnan(o) else str(o))
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    else:
        print(text)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
