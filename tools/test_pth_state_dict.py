"""Tests of tools/pth_state_dict.py and tools/convert_adain_weights.py that need no PyTorch: files in
both torch.save formats are built here byte by byte (pickles that name torch's rebuild functions and
storage classes through stand-in modules, the storages' raw bytes), then read back. Run by
tests/pth_reader.rs (so CI runs it) or directly: python3 tools/test_pth_state_dict.py.

Checked: contiguous, offset and transposed views, tensors of two dtypes over one storage, f16 / bf16
/ f64 conversion to f32 (overflow to inf), nn.Parameter wrapping, the converter's unwrapping and
safetensors output; refused: a pickle naming any other global (in the legacy headers too), views
past their storage, negative strides, truncated data, compressed zip members.
"""

import io
import json
import os
import pickle
import struct
import sys
import tempfile
import types
import unittest
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import convert_adain_weights  # noqa: E402
import pth_state_dict  # noqa: E402

# Stand-ins for the torch globals a state dict pickle names: pickle records a function or class by
# its module and qualified name, so these pickle exactly as torch's do.
_torch = types.ModuleType("torch")
_utils = types.ModuleType("torch._utils")
for _name in ["FloatStorage", "HalfStorage", "DoubleStorage", "BFloat16Storage", "LongStorage"]:
    setattr(_torch, _name, type(_name, (), {"__module__": "torch"}))


def _rebuild_tensor_v2(*args):
    raise AssertionError("never called while writing")


def _rebuild_parameter(*args):
    raise AssertionError("never called while writing")


for _f in (_rebuild_tensor_v2, _rebuild_parameter):
    _f.__module__ = "torch._utils"
    setattr(_utils, _f.__name__, _f)
_torch._utils = _utils


class StorageRef:
    """A reference to storage `key` as `kind` (e.g. "FloatStorage") of `numel` elements."""

    def __init__(self, kind, key, numel):
        self.kind, self.key, self.numel = kind, key, numel


class FakeTensor:
    def __init__(self, ref, offset, shape, stride):
        self.ref, self.offset, self.shape, self.stride = ref, offset, shape, stride

    def __reduce__(self):
        return (_rebuild_tensor_v2, (self.ref, self.offset, tuple(self.shape), tuple(self.stride),
                                     False, {}))


class FakeParameter:
    def __init__(self, tensor):
        self.tensor = tensor

    def __reduce__(self):
        return (_rebuild_parameter, (self.tensor, True, {}))


class Evil:
    def __reduce__(self):
        return (os.system, ("echo this must never run",))


class _Pickler(pickle.Pickler):
    def __init__(self, f, legacy):
        super().__init__(f, protocol=2)
        self.legacy = legacy

    def persistent_id(self, obj):
        if isinstance(obj, StorageRef):
            pid = ("storage", getattr(_torch, obj.kind), obj.key, "cpu", obj.numel)
            return pid + (None,) if self.legacy else pid
        return None


def _dumps(obj, legacy):
    saved = {k: sys.modules.get(k) for k in ("torch", "torch._utils")}
    sys.modules.update({"torch": _torch, "torch._utils": _utils})
    try:
        buf = io.BytesIO()
        _Pickler(buf, legacy).dump(obj)
        return buf.getvalue()
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def write_legacy(path, obj, storages, header=None):
    """storages: key -> (numel, raw bytes), in the order the data section holds them."""
    with open(path, "wb") as f:
        for part in header or [pth_state_dict.LEGACY_MAGIC, 1001, {"little_endian": True}]:
            f.write(pickle.dumps(part, protocol=2))
        f.write(_dumps(obj, legacy=True))
        f.write(pickle.dumps(list(storages), protocol=2))
        for numel, data in storages.values():
            f.write(struct.pack("<q", numel))
            f.write(data)


def write_zip(path, obj, storages, compress=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", _dumps(obj, legacy=False))
        z.writestr("archive/byteorder", "little")
        for key, (_, data) in storages.items():
            z.writestr(zipfile.ZipInfo(f"archive/data/{key}"), data, compress_type=compress)


def f32(values):
    return struct.pack(f"<{len(values)}f", *values)


def floats(tensor):
    return list(struct.unpack(f"<{len(tensor.data) // 4}f", tensor.data))


class ReaderTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)

    def path(self, name):
        return os.path.join(self.tmp.name, name)

    def sample(self):
        """A state dict over two storages: a 2×3 matrix, its transpose, a slice at an offset, an f16
        vector behind a Parameter, and an f64 scalar."""
        values = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
        a = StorageRef("FloatStorage", "0", 7)
        h = StorageRef("HalfStorage", "1", 3)
        d = StorageRef("DoubleStorage", "2", 1)
        state = {
            "w": FakeTensor(a, 0, [2, 3], [3, 1]),
            "w_t": FakeTensor(a, 0, [3, 2], [1, 3]),
            "tail": FakeTensor(a, 4, [3], [1]),
            "half": FakeParameter(FakeTensor(h, 0, [3], [1])),
            "big": FakeTensor(d, 0, [], []),
        }
        storages = {"0": (7, f32(values)), "1": (3, struct.pack("<3e", 0.5, -2.0, 65504.0)),
                    "2": (1, struct.pack("<d", 1e300))}
        return state, storages

    def check_sample(self, got):
        self.assertEqual(list(got), ["w", "w_t", "tail", "half", "big"])
        self.assertEqual(got["w"].shape, [2, 3])
        self.assertEqual(floats(got["w"]), [1, 2, 3, 4, 5, 6])
        self.assertEqual(floats(got["w_t"]), [1, 4, 2, 5, 3, 6])
        self.assertEqual(floats(got["tail"]), [5, 6, 7])
        self.assertEqual(got["half"].dtype, "F16")
        self.assertEqual(struct.unpack("<3f", pth_state_dict.to_float32(got["half"])), (0.5, -2.0, 65504.0))
        self.assertEqual(got["big"].shape, [])
        self.assertEqual(struct.unpack("<f", pth_state_dict.to_float32(got["big"])), (float("inf"),))

    def test_legacy_and_zip_formats_read_the_same_tensors(self):
        state, storages = self.sample()
        write_legacy(self.path("legacy.pth"), state, storages)
        write_zip(self.path("zip.pth"), state, storages)
        self.check_sample(pth_state_dict.load(self.path("legacy.pth")))
        self.check_sample(pth_state_dict.load(self.path("zip.pth")))

    def test_two_dtypes_over_one_storage_and_bfloat16(self):
        raw = struct.pack("<2I", 0x3F800000, 0xC0000000)  # float32 1.0 and -2.0
        state = {"as_f32": FakeTensor(StorageRef("FloatStorage", "0", 2), 0, [2], [1]),
                 "as_bf16": FakeTensor(StorageRef("BFloat16Storage", "0", 4), 1, [1], [1])}
        write_zip(self.path("shared.pth"), state, {"0": (2, raw)})
        got = pth_state_dict.load(self.path("shared.pth"))
        self.assertEqual(floats(got["as_f32"]), [1.0, -2.0])
        self.assertEqual(got["as_bf16"].dtype, "BF16")
        # The high half of float32 1.0 is bfloat16 1.0.
        self.assertEqual(struct.unpack("<f", pth_state_dict.to_float32(got["as_bf16"])), (1.0,))

    def test_any_other_global_is_refused_without_running_it(self):
        state, storages = self.sample()
        state["evil"] = Evil()
        for name, write in [("legacy", write_legacy), ("zip", write_zip)]:
            write(self.path(f"{name}.pth"), state, storages)
            with self.assertRaisesRegex(pickle.UnpicklingError, "refusing to load"):
                pth_state_dict.load(self.path(f"{name}.pth"))
        # In the legacy format's headers, read before the magic number is checked.
        write_legacy(self.path("header.pth"), {}, {}, header=[Evil(), 1001, {}])
        with self.assertRaisesRegex(ValueError, "refusing to load"):
            pth_state_dict.load(self.path("header.pth"))

    def test_views_outside_their_storage_and_bad_data_are_errors(self):
        a = StorageRef("FloatStorage", "0", 4)
        data = {"0": (4, f32([1, 2, 3, 4]))}
        cases = [
            ({"x": FakeTensor(a, 2, [3], [1])}, data, "reaches past its storage"),
            ({"x": FakeTensor(a, 0, [2, 2], [2, 4])}, data, "reaches past its storage"),
            ({"x": FakeTensor(a, 3, [2], [-1])}, data, "non-negative"),
            ({"x": FakeTensor(StorageRef("FloatStorage", "0", 1 << 40), 0, [1], [1])}, data,
             "claims"),
        ]
        for i, (state, storages, message) in enumerate(cases):
            for write in (write_legacy, write_zip):
                path = self.path(f"bad{i}{write.__name__}.pth")
                write(path, state, storages)
                with self.assertRaisesRegex(ValueError, message, msg=f"{write.__name__} {i}"):
                    pth_state_dict.load(path)
        # Truncated legacy data; a compressed (zip bomb shaped) member.
        write_legacy(self.path("short.pth"), {"x": FakeTensor(a, 0, [4], [1])}, {"0": (4, f32([1, 2]))})
        with self.assertRaisesRegex(ValueError, "storage 0"):
            pth_state_dict.load(self.path("short.pth"))
        write_zip(self.path("deflated.pth"), {"x": FakeTensor(a, 0, [4], [1])}, data,
                  compress=zipfile.ZIP_DEFLATED)
        with self.assertRaisesRegex(ValueError, "compression"):
            pth_state_dict.load(self.path("deflated.pth"))
        with open(self.path("text.pth"), "w") as f:
            f.write("not a checkpoint")
        with self.assertRaisesRegex(ValueError, "not a PyTorch file"):
            pth_state_dict.load(self.path("text.pth"))

    def test_converter_unwraps_and_writes_float32_safetensors(self):
        state, storages = self.sample()
        wrapped = {"state_dict": {f"module.{k}": v for k, v in state.items()}}
        src, dst = self.path("decoder.pth"), self.path("decoder.safetensors")
        write_legacy(src, wrapped, storages)
        convert_adain_weights.convert(src, dst)
        with open(dst, "rb") as f:
            blob = f.read()
        (n,) = struct.unpack("<Q", blob[:8])
        header = json.loads(blob[8:8 + n])
        self.assertEqual(n % 8, 0)
        meta = header.pop("__metadata__")
        self.assertEqual(meta["source"], "decoder.pth")
        self.assertEqual(sorted(header), sorted(state))
        body = blob[8 + n:]
        w_t = header["w_t"]
        self.assertEqual((w_t["dtype"], w_t["shape"]), ("F32", [3, 2]))
        b, e = w_t["data_offsets"]
        self.assertEqual(struct.unpack("<6f", body[b:e]), (1, 4, 2, 5, 3, 6))
        self.assertFalse([f for f in os.listdir(self.tmp.name) if ".tmp" in f])


if __name__ == "__main__":
    unittest.main()
