"""Reads a PyTorch state dict (`torch.save` of name -> tensor) without PyTorch: Python's standard library
only, so weights convert on a machine that cannot install torch.

Both of torch.save's formats are read:
- the zip archive of torch >= 1.6 (`<root>/data.pkl` plus one `<root>/data/<key>` file per storage);
- the legacy stream of torch 0.4 - 1.5 (pickled magic number, protocol version and system info, the
  pickled object, the pickled list of storage keys, then each storage as an int64 element count
  followed by its raw bytes), which is what the original AdaIN weights (`vgg_normalised.pth`,
  `decoder.pth` of naoto0804/pytorch-AdaIN) are.

Like `torch.load(weights_only=True)`, the unpickler builds only what a state dict holds (ordered dicts,
tensors, parameters, storages); any other global in the pickle is refused, so a file cannot run code.
Tensors come back as `Tensor` records: dtype, shape and their elements as little-endian bytes in
row-major order (a strided or offset view is gathered). Nothing here converts dtypes.
"""

import collections
import io
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

Tensor = collections.namedtuple("Tensor", "dtype shape data")


class _StorageType:
    """Stands for a `torch.<X>Storage` class named in the pickle."""

    def __init__(self, name):
        if name not in STORAGE_DTYPES:
            raise ValueError(f"unsupported tensor storage type torch.{name}")
        self.name = name
        self.dtype, self.itemsize, self.fmt = STORAGE_DTYPES[name]


class _Storage:
    """A storage named by the pickle; its bytes are attached once the file's data section is read."""

    def __init__(self, storage_type, key, numel):
        self.type = storage_type
        self.key = key
        self.numel = numel
        self.data = None


class _View:
    """A tensor's view of a storage, resolved to a `Tensor` once the storage's bytes are known."""

    def __init__(self, storage, offset, shape, stride):
        self.storage, self.offset = storage, offset
        self.shape, self.stride = tuple(shape), tuple(stride)

    def resolve(self):
        storage = self.storage
        if storage.data is None:
            raise ValueError(f"storage {storage.key} has no data in the file")
        size = storage.type.itemsize
        numel = 1
        for dim in self.shape:
            numel *= dim
        contiguous, expect = True, 1
        for dim, step in reversed(list(zip(self.shape, self.stride))):
            if dim != 1 and step != expect:
                contiguous = False
            expect *= dim
        if contiguous:
            start = self.offset * size
            data = bytes(storage.data[start:start + numel * size])
        else:
            data = bytearray()
            for index in _row_major_offsets(self.shape, self.stride):
                at = (self.offset + index) * size
                data += storage.data[at:at + size]
            data = bytes(data)
        if len(data) != numel * size:
            raise ValueError(f"tensor of shape {list(self.shape)} reaches past its storage {storage.key}")
        return Tensor(storage.type.dtype, list(self.shape), data)


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


class _Unpickler(pickle.Unpickler):
    """Builds state dicts and nothing else; storages are collected by key."""

    def __init__(self, file, storages):
        super().__init__(file, encoding="latin1")
        self.storages = storages

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
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        storage_type, key, numel = pid[1], str(pid[2]), pid[4]
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(f"unexpected storage type {storage_type!r}")
        storage = self.storages.get(key)
        if storage is None:
            storage = self.storages[key] = _Storage(storage_type, key, numel)
        if len(pid) > 5 and pid[5] is not None:
            # A legacy view of another storage; torch's writer makes none for a state dict's tensors.
            raise pickle.UnpicklingError("legacy storage views are not supported")
        return storage


def _resolve(obj):
    """Replaces every tensor view in a (nested) state dict with a `Tensor`."""
    if isinstance(obj, _View):
        return obj.resolve()
    if isinstance(obj, dict):
        return collections.OrderedDict((k, _resolve(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_resolve(v) for v in obj)
    return obj


def _load_zip(path):
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pickles) != 1:
            raise ValueError(f"{path}: expected one data.pkl in the archive, found {len(pickles)}")
        root = pickles[0][: -len("data.pkl")]
        byteorder = root + "byteorder"
        if byteorder in names and archive.read(byteorder).strip() != b"little":
            raise ValueError(f"{path}: big-endian tensors are not supported")
        storages = {}
        obj = _Unpickler(io.BytesIO(archive.read(pickles[0])), storages).load()
        for key, storage in storages.items():
            storage.data = archive.read(f"{root}data/{key}")
            if len(storage.data) < storage.numel * storage.type.itemsize:
                raise ValueError(f"{path}: storage {key} is truncated")
    return obj


def _load_legacy(path):
    with open(path, "rb") as f:
        if pickle.load(f) != LEGACY_MAGIC:
            raise ValueError(f"{path}: not a PyTorch file (no torch.save magic number)")
        protocol = pickle.load(f)
        if protocol != 1001:
            raise ValueError(f"{path}: unsupported torch.save protocol version {protocol}")
        pickle.load(f)  # system info (endianness, type sizes)
        storages = {}
        obj = _Unpickler(f, storages).load()
        keys = pickle.load(f)
        for key in keys:
            storage = storages[str(key)]
            (numel,) = struct.unpack("<q", f.read(8))
            if numel != storage.numel:
                raise ValueError(f"{path}: storage {key} holds {numel} elements, the pickle says "
                                 f"{storage.numel}")
            nbytes = numel * storage.type.itemsize
            storage.data = f.read(nbytes)
            if len(storage.data) != nbytes:
                raise ValueError(f"{path}: truncated in storage {key}")
    return obj


def load(path):
    """The object `torch.save` wrote to `path`, with every tensor as a `Tensor`."""
    if zipfile.is_zipfile(path):
        obj = _load_zip(path)
    else:
        obj = _load_legacy(path)
    return _resolve(obj)


def to_float32(tensor):
    """The elements of a floating-point `Tensor` as little-endian float32 bytes."""
    if tensor.dtype == "F32":
        return tensor.data
    numel = len(tensor.data) // STORAGE_ITEMSIZE[tensor.dtype]
    if tensor.dtype in ("F16", "F64"):
        fmt = STORAGE_FORMAT[tensor.dtype]
        values = struct.unpack(f"<{numel}{fmt}", tensor.data)
    elif tensor.dtype == "BF16":
        # bfloat16 is the top half of a float32.
        halves = struct.unpack(f"<{numel}H", tensor.data)
        values = struct.unpack(f"<{numel}f", struct.pack(f"<{numel}I", *(h << 16 for h in halves)))
    else:
        raise ValueError(f"{tensor.dtype} is not a floating-point type")
    return struct.pack(f"<{numel}f", *values)


STORAGE_ITEMSIZE = {dtype: size for dtype, size, _ in STORAGE_DTYPES.values()}
STORAGE_FORMAT = {dtype: fmt for dtype, _, fmt in STORAGE_DTYPES.values()}
FLOAT_DTYPES = ("F16", "BF16", "F32", "F64")
