#!/usr/bin/env python3
"""Converts a PyTorch ResNet checkpoint (`.pth`: a torchvision state dict, or a dict holding one under
`state_dict` or `model`, keys optionally prefixed by `module.` from DataParallel) into a safetensors
file the engine loads with `engine predict --weights`, `engine eval --weights` and
`engine train --init-from`.

    python3 tools/convert_torchvision.py resnet50-0676ba61.pth resnet50.safetensors

Tensor names are kept (torchvision's `layer1.0.conv1.weight`, ...); floating tensors are written as f32
(or f16 with --half); integer buffers such as `num_batches_tracked` are dropped. The metadata records
the source file and the class names: ImageNet's 1000 (from torchvision) when the final layer has 1000
outputs, or those of --classes FILE (one name a line). The writer orders keys, so a rerun gives the
same bytes. Needs `torch` (and torchvision for the ImageNet class names); the engine does not.
"""

import argparse
import json
import os
import struct
import sys


def load_state_dict(path):
    import torch

    obj = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        sys.exit(f"{path}: expected a state dict (name -> tensor), found {type(obj).__name__}")
    out = {}
    for k, v in obj.items():
        if not hasattr(v, "dtype"):
            continue
        out[k[len("module."):] if k.startswith("module.") else k] = v
    return out


def write_safetensors(path, tensors, metadata, half=False):
    """Deterministic safetensors writer: sorted keys, f32 (or f16) data, string metadata."""
    import torch

    header = {"__metadata__": dict(sorted(metadata.items()))}
    blobs, offset = [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous()
        if not t.is_floating_point():
            continue
        t = t.to(torch.float16 if half else torch.float32)
        data = t.numpy().tobytes()
        header[name] = {"dtype": "F16" if half else "F32", "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    head = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    head += b" " * ((8 - len(head) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def class_names(state, classes_file):
    if classes_file:
        with open(classes_file) as f:
            return [line.strip() for line in f if line.strip()]
    fc = state.get("fc.weight")
    if fc is not None and fc.shape[0] == 1000:
        try:
            from torchvision.models._meta import _IMAGENET_CATEGORIES
            return list(_IMAGENET_CATEGORIES)
        except ImportError:
            pass
    return None


def convert(src, dst, classes_file=None, half=False):
    state = load_state_dict(src)
    meta = {"format": "torchvision-state-dict", "source": os.path.basename(src)}
    names = class_names(state, classes_file)
    if names is not None:
        fc = state.get("fc.weight")
        if fc is not None and fc.shape[0] != len(names):
            sys.exit(f"{classes_file}: {len(names)} class names for a final layer of {fc.shape[0]} outputs")
        meta["classes"] = json.dumps(names)
    write_safetensors(dst, state, meta, half)
    return state


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src", help="the .pth file")
    ap.add_argument("dst", help="the .safetensors file to write")
    ap.add_argument("--classes", help="text file with one class name a line (default: ImageNet's for 1000 outputs)")
    ap.add_argument("--half", action="store_true", help="store f16 instead of f32")
    a = ap.parse_args()
    state = convert(a.src, a.dst, a.classes, a.half)
    print(f"wrote {a.dst}: {sum(1 for v in state.values() if v.is_floating_point())} tensors")


if __name__ == "__main__":
    main()
