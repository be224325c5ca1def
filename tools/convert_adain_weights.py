"""Converts an AdaIN weight file of naoto0804/pytorch-AdaIN (`vgg_normalised.pth`, `decoder.pth`, or a
decoder trained with it) from a PyTorch pickle to safetensors, which the engine reads
(`engine::models::Stylizer::load`). Needs only Python's standard library (tools/pth_state_dict.py
reads both torch.save formats without PyTorch).

Usage: python3 tools/convert_adain_weights.py IN.pth OUT.safetensors

Keys are kept exactly (the indices of the reference nn.Sequential: `0.weight`, `2.weight`, ...), every
floating-point tensor is written as contiguous little-endian float32, and the metadata names the source
file and its SHA-256. A checkpoint that wraps its state dict (`{"state_dict": {...}}`) or prefixes
keys with `module.` (from nn.DataParallel) is unwrapped. The output is written to a temporary file
beside OUT and renamed, so an interrupted run leaves no half-written file.
"""

import hashlib
import json
import os
import pickle
import struct
import sys
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pth_state_dict  # noqa: E402


def state_dict_of(obj):
    """The flat name -> Tensor dict inside whatever torch.save wrote."""
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, pth_state_dict.Tensor) for v in obj.values()):
        raise SystemExit("expected a state dict of tensors (name -> tensor)")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in obj.items()}


def write_safetensors(path, tensors, metadata):
    """Writes name -> (shape, float32 bytes) as a safetensors file (8-byte little-endian header
    length, JSON header padded with spaces to a multiple of 8, then the tensors' bytes in order)."""
    header, offset = {"__metadata__": metadata}, 0
    for name, (shape, data) in tensors.items():
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(encoded)))
            f.write(encoded)
            for _, data in tensors.values():
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def convert(src, dst):
    """Writes the floating-point tensors of `src` (a .pth state dict) to `dst` as float32 safetensors;
    returns name -> (shape, float32 bytes) as written."""
    with open(src, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    tensors = {k: (v.shape, pth_state_dict.to_float32(v))
               for k, v in state_dict_of(pth_state_dict.load(src)).items()
               if v.dtype in pth_state_dict.FLOAT_DTYPES}
    if not tensors:
        raise SystemExit(f"{src}: no floating-point tensors")
    metadata = {"source": os.path.basename(src), "source_sha256": digest,
                "converter": "tools/convert_adain_weights.py", "format": "pytorch-AdaIN state dict"}
    write_safetensors(dst, tensors, metadata)
    return tensors


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    try:
        tensors = convert(sys.argv[1], sys.argv[2])
    except (ValueError, pickle.UnpicklingError, zipfile.BadZipFile, OSError, EOFError) as e:
        raise SystemExit(f"error: {sys.argv[1]}: {e}") from None
    print(f"wrote {sys.argv[2]}: {len(tensors)} tensors, "
          f"{sum(len(data) // 4 for _, data in tensors.values())} values")


if __name__ == "__main__":
    main()
