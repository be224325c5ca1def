#!/usr/bin/env python3
"""PyTorch baselines for the generative models in the one-shot GPU check (scripts/gpu_check.sh):
the same architectures the engine benchmarks with `engine bench-stylize` and `engine bench-pix2pix`
(src/bench/generative.rs), built from the reference modules of the fixture generators
(tools/fixtures/gen_stylizer.py: naoto0804/pytorch-AdaIN's vgg/decoder layout; gen_pix2pix.py:
pytorch-CycleGAN-and-pix2pix's unet_256 and 70×70 PatchGAN), with random weights.

  - stylize.<px>px.<dtype>: encoder to relu4_1 of content and style, AdaIN, decoder, no grad;
    batch 8 at 512², 32 at 224²; f32 and f16 (`.half()`), channels_last; cudnn.benchmark on.
  - pix2pix.step.b<batch>: one training iteration: D step on (real, detached fake), G step on
    GAN + 100·L1, Adam(2e-4, β1 0.5); f32 (TF32 convolutions as PyTorch's default allows).
Each row: images/s and median ms per iteration (CUDA events, warm-up first). One JSON object
(stdout or --out). --dry-run: tiny shapes on the CPU to check the script itself.
"""

import argparse
import json
import os
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "fixtures"))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import gen_stylizer as st  # noqa: E402
import gen_pix2pix as p2p  # noqa: E402

# The fixture modules set float64, determinism and one thread for bit-exact fixtures; undo that.
torch.set_default_dtype(torch.float32)
torch.use_deterministic_algorithms(False)
torch.set_num_threads(os.cpu_count() or 1)


def time_ms(dev, fn, iters, warmup):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        if dev.type == "cuda":
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            b.synchronize()
            times.append(a.elapsed_time(b))
        else:
            t = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t) * 1e3)
    return sorted(times)[len(times) // 2], sum(times)


def stylize_row(dev, px, batch, half, width, iters, warmup):
    dt = torch.float16 if half else torch.float32
    vgg = st.vgg_normalised(width)[: st.TAP_SLICES[-1][1]].to(dev, dt).eval()
    dec = st.decoder(width).to(dev, dt).eval()
    mf = torch.channels_last if dev.type == "cuda" else torch.contiguous_format
    vgg, dec = vgg.to(memory_format=mf), dec.to(memory_format=mf)
    c = torch.rand(batch, 3, px, px, device=dev, dtype=dt).to(memory_format=mf)
    s = torch.rand(batch, 3, px, px, device=dev, dtype=dt).to(memory_format=mf)

    def f():
        with torch.no_grad():
            return dec(st.adain(vgg(c), vgg(s)))

    med, total = time_ms(dev, f, iters, warmup)
    return {"op": f"stylize.{px}px.{'f16' if half else 'f32'}", "batch": batch, "image": px,
            "ms": med, "images_per_s": batch * iters / (total / 1e3)}


def pix2pix_row(dev, px, batch, ngf, ndf, iters, warmup):
    num_downs = px.bit_length() - 1
    g = p2p.UnetReference(3, 3, num_downs, ngf, dropout=True).to(dev).train()
    d = p2p.PatchGanReference(6, ndf, 3).to(dev).train()
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    a = torch.rand(batch, 3, px, px, device=dev) * 2 - 1
    b = torch.rand(batch, 3, px, px, device=dev) * 2 - 1
    bce = F.binary_cross_entropy_with_logits

    def step():
        fake = g(a)
        opt_d.zero_grad(set_to_none=True)
        real_l = d(torch.cat([a, b], 1))
        fake_l = d(torch.cat([a, fake.detach()], 1))
        loss_d = 0.5 * (bce(real_l, torch.ones_like(real_l)) + bce(fake_l, torch.zeros_like(fake_l)))
        loss_d.backward()
        opt_d.step()
        opt_g.zero_grad(set_to_none=True)
        gan_l = d(torch.cat([a, fake], 1))
        loss_g = bce(gan_l, torch.ones_like(gan_l)) + 100.0 * F.l1_loss(fake, b)
        loss_g.backward()
        opt_g.step()
        return loss_g.item()

    med, total = time_ms(dev, step, iters, warmup)
    return {"op": f"pix2pix.step.b{batch}", "batch": batch, "image": px, "ms": med,
            "images_per_s": batch * iters / (total / 1e3)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true")
    ap.add_argument("--out")
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    args = ap.parse_args()
    cuda = torch.cuda.is_available()
    if not cuda and not args.dry_run:
        emit({"kind": "torch_gpu_bench_generative", "status": "unavailable",
              "error": "torch.cuda.is_available() is False"}, args)
        return 2
    dev = torch.device("cuda" if cuda else "cpu")
    torch.backends.cudnn.benchmark = cuda
    width = 8 if args.dry_run else 64
    stylize = [(64, 2), (32, 2)] if args.dry_run else [(512, 8), (224, 32)]
    pix = [(32, 1, 8, 8)] if args.dry_run else [(256, 1, 64, 64), (256, 8, 64, 64)]
    iters, warmup = (1, 1) if args.dry_run else (args.iters, args.warmup)
    rows = []

    def guarded(fn, *a):
        try:
            r = fn(*a)
            r["status"] = "ok"
        except Exception as e:  # noqa: BLE001 - report and go on
            traceback.print_exc()
            r = {"op": f"{fn.__name__}{a[1:3]}", "status": "error", "error": f"{type(e).__name__}: {e}"}
        print(f"torch: {r.get('op')} -> {r.get('images_per_s', r.get('error'))}", file=sys.stderr, flush=True)
        rows.append(r)
        if cuda:
            torch.cuda.empty_cache()

    for px, batch in stylize:
        for half in ([False, True] if cuda else [False]):
            guarded(stylize_row, dev, px, batch, half, width, iters, warmup)
    for px, batch, ngf, ndf in pix:
        guarded(pix2pix_row, dev, px, batch, ngf, ndf, iters, warmup)
    out = {"kind": "torch_gpu_bench_generative", "status": "ok", "torch": torch.__version__,
           "device": torch.cuda.get_device_name(0) if cuda else "cpu", "rows": rows}
    if any(r["status"] != "ok" for r in rows):
        out["status"] = "partial"
    emit(out, args)
    return 0


def emit(out, args):
    text = json.dumps(out, indent=1)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    else:
        print(text)


if __name__ == "__main__":
    sys.exit(main())
