"""Converts an AdaIN weight file of naoto0804/pytorch-AdaIN (`vgg_normalised.pth`, `decoder.pth`, or a
decoder trained with it) from a PyTorch pickle to safetensors, which the engine reads
(`engine::models::Stylizer::load`). Needs `pip install torch safetensors`.

Usage: python3 tools/convert_adain_weights.py IN.pth OUT.safetensors

Keys are kept exactly (the indices of the reference nn.Sequential: `0.weight`, `2.weight`, ...), every
tensor is written as contiguous float32, and the metadata names the source file and its SHA-256. A
checkpoint that wraps its state dict (`{"state_dict": {...}}`) or prefixes keys with `module.` (from
nn.DataParallel) is unwrapped.
"""

import hashlib
import os
import sys

import torch
from safetensors.torch import save_file


def state_dict_of(obj):
    """The flat name -> tensor dict inside whatever torch.load returned."""
    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(torch.is_tensor(v) for v in obj.values()):
        raise SystemExit("expected a state dict of tensors (name -> tensor)")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in obj.items()}


def convert(src, dst):
    """Writes the float tensors of `src` (a .pth state dict) to `dst` as float32 safetensors; returns
    the dict written."""
    with open(src, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    tensors = {k: v.detach().to(torch.float32).contiguous() for k, v in
               state_dict_of(torch.load(src, map_location="cpu", weights_only=True)).items()
               if v.is_floating_point()}
    if not tensors:
        raise SystemExit(f"{src}: no floating-point tensors")
    metadata = {"source": os.path.basename(src), "source_sha256": digest,
                "converter": "tools/convert_adain_weights.py", "format": "pytorch-AdaIN state dict"}
    save_file(tensors, dst, metadata=metadata)
    return tensors


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    tensors = convert(sys.argv[1], sys.argv[2])
    print(f"wrote {sys.argv[2]}: {len(tensors)} tensors, "
          f"{sum(t.numel() for t in tensors.values())} values")


if __name__ == "__main__":
    main()
