"""Reads a PyTorch state dict (`torch.save` of name -> tensor) without PyTorch: Python's standard library
only, so weights convert on a machine that cannot install torch.

Both of torch.save's formats are read:
- the zip archive of torch >= 1.6 (`<root>/data.pkl` plus one stored, uncompressed `<root>/data/<key>`
  file per storage);
- the legacy stream of torch 0.4 - 1.5 (pickled magic number, protocol version and system info, the
  pickled object, the pickled list of storage keys, then each storage as an int64 element count
  followed by its raw bytes), which is what the original AdaIN weights (`vgg_normalised.pth`,
  `decoder.pth` of naoto0804/pytorch-AdaIN) are.

Safety, like `torch.load(weights_only=True)`: every pickle in the file is read by an unpickler that
builds only what a state dict holds (ordered dicts, tensors, parameters, storage types); any other
global is refused, so a file cannot run code. Sizes are checked against the file before anything is
allocated: a storage must be as long as the file says and no longer than the file itself, and a
tensor's view (offset, shape, strides, all non-negative) must lie inside its storage.

Tensors come back as `Tensor` records: dtype, shape and their elements as little-endian bytes in
row-major order (a strided or offset view is gathered). Each tensor takes its dtype from its own
reference to the storage, so tensors of different dtypes may share one (untyped) storage.
"""

import collections
import io
import os
import pickle
import struct
import zipfile

# torch.save's legacy stream starts with this pickled integer.
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

# Storage class name -> (safetensors dtype name, bytes per element, struct format letter).
STORAGE_DTYPES = {
    "FloatStorage": ("F32", 4, "f"),
    "DoubleStorage": ("F64", 8, "d"),
    "HalfStorage": ("F16", 2, "e"),
    "BFloat16Storage": ("BF16", 2, None),
    "LongStorage": ("I64", 8, "q"),
    "IntStorage": ("I32", 4, "i"),
    "ShortStorage": ("I16", 2, "h"),
    "CharStorage": ("I8", 1, "b"),
    "ByteStorage": ("U8", 1, "B"),
    "BoolStorage": ("BOOL", 1, "?"),
}
STORAGE_ITEMSIZE = {dtype: size for dtype, size, _ in STORAGE_DTYPES.values()}
STORAGE_FORMAT = {dtype: fmt for dtype, _, fmt in STORAGE_DTYPES.values()}
FLOAT_DTYPES = ("F16", "BF16", "F32", "F64")
FLOAT32_MAX = 3.4028234663852886e38

Tensor = collections.namedtuple("Tensor", "dtype shape data")


class _StorageType:
    """Stands for a `torch.<X>Storage` class named in the pickle."""

    def __init__(self, name):
        if name not in STORAGE_DTYPES:
            raise pickle.UnpicklingError(f"unsupported tensor storage type torch.{name}")
        self.dtype, self.itemsize, self.fmt = STORAGE_DTYPES[name]


class _Storage:
    """The bytes of one storage key; attached once the file's data section is read. `itemsize` is
    the element size of its first reference (the legacy format counts its elements in that type)."""

    def __init__(self, key, nbytes, itemsize):
        self.key = key
        self.nbytes = nbytes
        self.itemsize = itemsize
        self.data = None


class _StorageRef:
    """One reference to a storage, with the element type it is read as."""

    def __init__(self, storage, storage_type):
        self.storage, self.type = storage, storage_type


def _count(value, what):
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{what} {value!r} must be a non-negative integer")
    return value


class _View:
    """A tensor's view of a storage, resolved to a `Tensor` once the storage's bytes are known."""

    def __init__(self, ref, offset, shape, stride):
        if not isinstance(ref, _StorageRef):
            raise pickle.UnpicklingError("a tensor without a storage")
        self.ref = ref
        self.offset = _count(offset, "storage offset")
        self.shape = tuple(_count(d, "dimension") for d in shape)
        self.stride = tuple(_count(s, "stride") for s in stride)
        if len(self.shape) != len(self.stride):
            raise ValueError(f"shape {list(self.shape)} and strides {list(self.stride)} differ in rank")

    def resolve(self):
        storage, kind = self.ref.storage, self.ref.type
        if storage.data is None:
            raise ValueError(f"storage {storage.key} has no data in the file")
        size = kind.itemsize
        numel = 1
        for dim in self.shape:
            numel *= dim
        if numel:
            # The last element the view reaches must lie inside the storage.
            last = self.offset + sum((d - 1) * s for d, s in zip(self.shape, self.stride))
            if (last + 1) * size > len(storage.data):
                raise ValueError(f"a tensor of shape {list(self.shape)} reaches past its storage "
                                 f"{storage.key} ({len(storage.data)} bytes)")
        contiguous, expect = True, 1
        for dim, step in reversed(list(zip(self.shape, self.stride))):
            if dim != 1 and step != expect:
                contiguous = False
            expect *= dim
        if contiguous or numel == 0:
            start = self.offset * size
            data = bytes(storage.data[start:start + numel * size])
        else:
            gathered = bytearray()
            for index in _row_major_offsets(self.shape, self.stride):
                at = (self.offset + index) * size
                gathered += storage.data[at:at + size]
            data = bytes(gathered)
        return Tensor(kind.dtype, list(self.shape), data)


def _row_major_offsets(shape, stride):
    """Element offsets (in elements) of a strided view, in row-major order."""
    if not shape:
        yield 0
        return
    for i in range(shape[0]):
        for rest in _row_major_offsets(shape[1:], stride[1:]):
            yield i * stride[0] + rest


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored):
    return _View(storage, storage_offset, size, stride)


def _rebuild_parameter(data, _requires_grad, _backward_hooks, *_ignored):
    return data


class _PlainUnpickler(pickle.Unpickler):
    """Plain data only (numbers, strings, lists, dicts): the legacy format's headers."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: expected plain data here")

    def persistent_load(self, pid):
        raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")


class _StateDictUnpickler(_PlainUnpickler):
    """Builds state dicts and nothing else; storages are collected by key."""

    def __init__(self, file, storages, max_bytes):
        super().__init__(file, encoding="latin1")
        self.storages = storages
        self.max_bytes = max_bytes

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name.endswith("Storage"):
            return _StorageType(name)
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name}: only state dicts of tensors are read")

    def persistent_load(self, pid):
        # ('storage', storage type, key, location, numel[, view metadata (legacy only)])
        if not isinstance(pid, tuple) or len(pid) < 5 or pid[0] != "storage":
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        storage_type, key = pid[1], str(pid[2])
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(f"unexpected storage type {storage_type!r}")
        if len(pid) > 5 and pid[5] is not None:
            # A legacy view of another storage; torch's writer makes none for a state dict's tensors.
            raise pickle.UnpicklingError("legacy storage views are not supported")
        nbytes = _count(pid[4], "storage size") * storage_type.itemsize
        if nbytes > self.max_bytes:
            raise ValueError(f"storage {key} claims {nbytes} bytes; the file has {self.max_bytes}")
        storage = self.storages.get(key)
        if storage is None:
            storage = self.storages[key] = _Storage(key, nbytes, storage_type.itemsize)
        storage.nbytes = max(storage.nbytes, nbytes)
        return _StorageRef(storage, storage_type)


def _load_zip(path):
    with zipfile.ZipFile(path) as archive:
        infos = {info.filename: info for info in archive.infolist()}
        pickles = [n for n in infos if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pickles) != 1:
            raise ValueError(f"expected one data.pkl in the archive, found {len(pickles)}")
        root = pickles[0][: -len("data.pkl")]
        byteorder = root + "byteorder"
        if byteorder in infos and archive.read(byteorder).strip() != b"little":
            raise ValueError("big-endian tensors are not supported")
        storages = {}
        pkl = archive.read(pickles[0])
        obj = _StateDictUnpickler(io.BytesIO(pkl), storages, os.path.getsize(path)).load()
        for key, storage in storages.items():
            info = infos.get(f"{root}data/{key}")
            if info is None:
                raise ValueError(f"storage {key} is missing from the archive")
            # torch stores tensors uncompressed; a compressed member could inflate without bound.
            if info.compress_type != zipfile.ZIP_STORED or info.file_size < storage.nbytes:
                raise ValueError(f"storage {key}: expected {storage.nbytes} stored bytes, found "
                                 f"{info.file_size} (compression {info.compress_type})")
            storage.data = archive.read(info)
    return obj


def _load_legacy(path):
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        plain = lambda: _PlainUnpickler(f).load()  # noqa: E731
        try:
            magic = plain()
        except (pickle.UnpicklingError, EOFError, ValueError) as e:
            raise ValueError(f"not a PyTorch file ({e})") from None
        if magic != LEGACY_MAGIC:
            raise ValueError("not a PyTorch file (no torch.save magic number)")
        protocol = plain()
        if protocol != 1001:
            raise ValueError(f"unsupported torch.save protocol version {protocol}")
        info = plain()
        if isinstance(info, dict) and info.get("little_endian") is False:
            raise ValueError("big-endian tensors are not supported")
        storages = {}
        obj = _StateDictUnpickler(f, storages, size).load()
        keys = plain()
        if not isinstance(keys, list):
            raise ValueError("the storage key list is missing")
        for key in keys:
            storage = storages.get(str(key))
            if storage is None:
                raise ValueError(f"storage {key} is listed but no tensor uses it")
            header = f.read(8)
            if len(header) != 8:
                raise ValueError(f"truncated before storage {key}")
            (numel,) = struct.unpack("<q", header)
            nbytes = numel * storage.itemsize
            if numel < 0 or nbytes != storage.nbytes or nbytes > size - f.tell():
                raise ValueError(f"storage {key}: {numel} elements do not match the pickle's "
                                 f"{storage.nbytes} bytes or the file's length")
            storage.data = f.read(nbytes)
            if len(storage.data) != nbytes:
                raise ValueError(f"truncated in storage {key}")
    return obj


def _resolve(obj):
    """Replaces every tensor view in a (nested) state dict with a `Tensor`."""
    if isinstance(obj, _View):
        return obj.resolve()
    if isinstance(obj, dict):
        return collections.OrderedDict((k, _resolve(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_resolve(v) for v in obj)
    return obj


def load(path):
    """The object `torch.save` wrote to `path`, with every tensor as a `Tensor`. Raises ValueError
    (or pickle.UnpicklingError) with what is wrong for a file it cannot read."""
    if zipfile.is_zipfile(path):
        obj = _load_zip(path)
    else:
        obj = _load_legacy(path)
    return _resolve(obj)


def to_float32(tensor):
    """The elements of a floating-point `Tensor` as little-endian float32 bytes (values beyond
    float32's range become ±inf, as PyTorch's cast makes them)."""
    if tensor.dtype == "F32":
        return tensor.data
    numel = len(tensor.data) // STORAGE_ITEMSIZE[tensor.dtype]
    if tensor.dtype in ("F16", "F64"):
        values = struct.unpack(f"<{numel}{STORAGE_FORMAT[tensor.dtype]}", tensor.data)
    elif tensor.dtype == "BF16":
        # bfloat16 is the top half of a float32.
        halves = struct.unpack(f"<{numel}H", tensor.data)
        values = struct.unpack(f"<{numel}f", struct.pack(f"<{numel}I", *(h << 16 for h in halves)))
    else:
        raise ValueError(f"{tensor.dtype} is not a floating-point type")
    inf = float("inf")
    values = [v if abs(v) <= FLOAT32_MAX or v != v else (inf if v > 0 else -inf) for v in values]
    return struct.pack(f"<{numel}f", *values)
