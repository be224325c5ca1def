#!/usr/bin/env python3
"""PyTorch's device memory for one ResNet-50 training step, counted without a GPU.

The GPU check (scripts/gpu_check.sh) measures `torch.cuda.max_memory_allocated` beside the engine's
pool high-water mark on a real card. This script gives the PyTorch side of that comparison on any
machine: it runs tools/torch_gpu_bench.py's training step (torchvision's ResNet-50 layout with its
in-place ReLUs, fp16 autocast, channels_last, SGD Nesterov with weight decay off for 1-D parameters,
label smoothing 0.1, the foreach optimiser PyTorch picks for CUDA tensors) on fake tensors
(`FakeTensorMode`: shapes, dtypes and strides without data), and counts the bytes of every tensor
storage from its creation to its release (a dispatch mode sees every op's outputs; a weak reference on
each storage sees it freed). The count starts before the model is built, like the caching
allocator's, and the peak is taken over one step after a warm-up step, as the GPU check does.

What it leaves out of the real figure: cuDNN workspaces (cudnn.benchmark may pick large ones), the
caching allocator's rounding (sizes are also reported rounded up to 512 B, its smallest block) and
autocast's CUDA-only behaviour (CPU autocast is used for the dtypes; both cast convolutions and
linear layers to f16 and keep the loss in f32). GradScaler's unscale and overflow check work in
place on the gradients, so the step scales the loss and unscales the gradients in place instead.

Prints one JSON object: for each batch size, the peak, the live bytes once the loss is computed
(parameters, optimiser state, input and what autograd saved for backward) and after the step.
    python3 tools/torch_memory_estimate.py --batch 8 --batch 256 [--image 224] [--nchw] [--fp32]
    python3 tools/torch_memory_estimate.py --fixture   # tests/fixtures/torch_memory.json
Needs only torch (no GPU, no torchvision).
"""

import argparse
import json
import os
import sys
import weakref

import torch
import torch.nn.functional as F
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_gpu_bench import ResNet50, emit, recipe_sgd  # noqa: E402  (the GPU check's model, SGD, JSON)

ROUND = 512  # the CUDA caching allocator's smallest block


class StorageCounter(TorchDispatchMode):
    """Counts the bytes of live tensor storages created by ops run under it."""

    def __init__(self):
        super().__init__()
        self.live = {}  # id(storage) -> (bytes, rounded bytes)
        self.used = self.used_rounded = 0
        self.peak = self.peak_rounded = 0

    def _free(self, key):
        b, r = self.live.pop(key)
        self.used -= b
        self.used_rounded -= r

    def track(self, t):
        s = t.untyped_storage()
        key = id(s)
        if key in self.live:
            return  # an in-place op or a view: the storage is already counted
        b = s.nbytes()
        r = -(-b // ROUND) * ROUND
        self.live[key] = (b, r)
        self.used += b
        self.used_rounded += r
        self.peak = max(self.peak, self.used)
        self.peak_rounded = max(self.peak_rounded, self.used_rounded)
        weakref.finalize(s, self._free, key)

    def reset_peak(self):
        self.peak, self.peak_rounded = self.used, self.used_rounded

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for o in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(o, torch.Tensor):
                self.track(o)
        return out


def measure(batch, image, channels_last, amp, classes=1000):
    counter = StorageCounter()
    with FakeTensorMode(), counter:
        torch.manual_seed(0)
        model = ResNet50(classes)
        if channels_last:
            # Module.to(memory_format=...) cannot swap fake parameters; assigning .data can.
            for p in model.parameters():
                if p.ndim == 4:
                    p.data = p.data.contiguous(memory_format=torch.channels_last)
        mf = torch.channels_last if channels_last else torch.contiguous_format
        x = torch.randn(batch, 3, image, image).contiguous(memory_format=mf)
        y = torch.arange(batch) * 7919 % classes
        opt = recipe_sgd(model.parameters(), foreach=True)
        scale = 65536.0 if amp else 1.0
        forward_live, before_forward = [], []

        def step():
            opt.zero_grad(set_to_none=True)
            before_forward.append(counter.used)
            with torch.autocast("cpu", dtype=torch.float16, enabled=amp):
                loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
            forward_live.append(counter.used)
            (loss * scale).backward()
            if amp:
                grads = [p.grad for p in model.parameters()]
                torch._foreach_mul_(grads, 1.0 / scale)
            opt.step()
            return loss

        step()  # warm-up: momentum buffers exist afterwards, as after the GPU check's warm-up
        counter.reset_peak()
        loss = step()
        del loss
        after = counter.used
    return {
        "batch": batch,
        "image": image,
        "channels_last": channels_last,
        "amp_fp16": amp,
        "peak_bytes": counter.peak,
        "peak_bytes_rounded_512": counter.peak_rounded,
        "live_before_forward_bytes": before_forward[-1],
        "live_after_forward_bytes": forward_live[-1],
        "live_after_step_bytes": after,
        "parameters": sum(p.numel() for p in model.parameters()),
    }


FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "torch_memory.json")


def write_fixture():
    """tests/fixtures/torch_memory.json, read by tests/cuda_memory.rs: what PyTorch's graph holds after
    the forward pass of small f32 NCHW ResNet-50 steps (no autocast, so no weight-cast cache)."""
    rows = [measure(b, 64, channels_last=False, amp=False, classes=10) for b in (2, 4)]
    doc = {
        "about": "PyTorch ResNet-50 (torchvision layout) training step, f32, NCHW, 10 classes: storage bytes "
        "live before and after the forward pass (tools/torch_memory_estimate.py --fixture)",
        "torch": torch.__version__,
        "rows": rows,
    }
    with open(FIXTURE, "w") as f:
        f.write(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {os.path.normpath(FIXTURE)}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, action="append", help="batch size (repeatable; default 8 and 256)")
    ap.add_argument("--image", type=int, default=224)
    ap.add_argument("--nchw", action="store_true", help="contiguous (NCHW) instead of channels_last")
    ap.add_argument("--fp32", action="store_true", help="no autocast")
    ap.add_argument("--out", help="write the JSON here instead of stdout")
    ap.add_argument("--fixture", action="store_true", help="write tests/fixtures/torch_memory.json and exit")
    a = ap.parse_args()
    if a.fixture:
        write_fixture()
        return
    rows = [measure(b, a.image, not a.nchw, not a.fp32) for b in (a.batch or [8, 256])]
    doc = {
        "torch": torch.__version__,
        "method": "FakeTensorMode + storage counter (tools/torch_memory_estimate.py); "
        "no cuDNN workspace, no allocator rounding except the _rounded_512 figure",
        "rows": rows,
    }
    emit(doc, a)


if __name__ == "__main__":
    main()
