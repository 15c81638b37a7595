"""Minimal safetensors reader/writer (no `safetensors` package needed).

Format: 8-byte little-endian u64 N, N bytes of UTF-8 JSON header, then the data buffer.
Header: {"name": {"dtype", "shape", "data_offsets": [begin, end]}, ..., "__metadata__": {str: str}}.

Writer conventions (what vkdistill's C reader may rely on, though it must not require them):
  * header JSON padded with spaces to a multiple of 8 bytes,
  * tensors laid out by descending element size, then by name, so every tensor is aligned
    to its element size,
  * atomic: written to NAME.tmp.PID, fsync'd, renamed over NAME.

Reads F64, F32, F16, BF16 (and the integer types) into numpy arrays (BF16 is widened to float32,
which is exact). Writes F64, F32, F16 (and I64/I32/U8 when given integer arrays).
"""

import json
import os
import struct

import numpy as np

_NP_OF = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"), "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"), "U32": np.dtype("<u4"), "U16": np.dtype("<u2"), "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
_SIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
         "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1}
_WRITE_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16,
                 "I64": np.int64, "I32": np.int32, "U8": np.uint8}
_ALIASES = {"f64": "F64", "float64": "F64", "f32": "F32", "float32": "F32", "f16": "F16",
            "float16": "F16", "i64": "I64", "int64": "I64", "i32": "I32", "int32": "I32",
            "u8": "U8", "uint8": "U8"}


def _to_numpy(t):
    if isinstance(t, np.ndarray):
        return t
    try:  # torch tensor
        return t.detach().cpu().numpy()
    except AttributeError:
        return np.asarray(t)


def _dtype_name_of(a):
    for name, dt in _NP_OF.items():
        if a.dtype == dt or a.dtype == dt.newbyteorder("="):
            return name
    raise ValueError(f"unsupported numpy dtype {a.dtype}")


def save(path, tensors, metadata=None, dtype=None):
    """Write `tensors` (dict name -> numpy array or torch tensor) to `path`.

    dtype: None keeps each array's own dtype (float64 -> F64, float32 -> F32, float16 -> F16,
    int64 -> I64, ...); "F64"/"F32"/"F16" casts every floating tensor to that type (integer
    tensors keep theirs). metadata: dict str -> str stored as "__metadata__".
    """
    if dtype is not None:
        dtype = _ALIASES.get(dtype, dtype)
        if dtype not in ("F64", "F32", "F16"):
            raise ValueError(f"cannot write dtype {dtype}")
    arrays = {}
    for name, t in tensors.items():
        if not isinstance(name, str) or name == "__metadata__" or not name:
            raise ValueError(f"bad tensor name {name!r}")
        a = _to_numpy(t)
        if a.dtype.kind == "f" and dtype is not None:
            a = a.astype(_WRITE_DTYPES[dtype])
        kind = _dtype_name_of(a)
        if kind not in _WRITE_DTYPES and kind != "BOOL":
            raise ValueError(f"{name}: cannot write dtype {kind}")
        arrays[name] = (kind, np.ascontiguousarray(a).astype(_NP_OF[kind], copy=False))

    order = sorted(arrays, key=lambda n: (-_SIZE[arrays[n][0]], n))
    header = {}
    offset = 0
    for name in order:
        kind, a = arrays[name]
        nbytes = a.size * _SIZE[kind]
        header[name] = {"dtype": kind, "shape": list(a.shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    if metadata:
        md = {}
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise ValueError("__metadata__ must map str to str")
            md[k] = v
        header = {"__metadata__": md, **header}
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((8 - len(hjson) % 8) % 8)

    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(hjson)))
            f.write(hjson)
            for name in order:
                f.write(arrays[name][1].tobytes(order="C"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    d = os.path.dirname(os.path.abspath(path))
    try:
        fd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def read_header(path):
    """Return (header dict without __metadata__, metadata dict, data start offset)."""
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise ValueError(f"{path}: too short for a safetensors file")
        (n,) = struct.unpack("<Q", raw)
        if n > 100_000_000:
            raise ValueError(f"{path}: header length {n} too large")
        hb = f.read(n)
        if len(hb) != n:
            raise ValueError(f"{path}: truncated header")
    header = json.loads(hb.decode("utf-8"))
    metadata = header.pop("__metadata__", None) or {}
    return header, metadata, 8 + n


def load(path, names=None):
    """Read a safetensors file. Returns (dict name -> numpy array, metadata dict).

    Validates that the tensors tile the data buffer with no holes or overlaps and that the file
    ends at the last tensor's end. BF16 is returned as float32.
    """
    header, metadata, start = read_header(path)
    size = os.path.getsize(path)
    spans = []
    for name, info in header.items():
        kind = info["dtype"]
        if kind not in _SIZE:
            raise ValueError(f"{path}: {name}: unsupported dtype {kind}")
        b, e = info["data_offsets"]
        numel = 1
        for s in info["shape"]:
            numel *= s
        if e - b != numel * _SIZE[kind]:
            raise ValueError(f"{path}: {name}: data_offsets do not match shape and dtype")
        spans.append((b, e, name))
    spans.sort()
    pos = 0
    for b, e, name in spans:
        if b != pos:
            raise ValueError(f"{path}: {name}: hole or overlap in the data buffer at {pos}")
        pos = e
    if start + pos != size:
        raise ValueError(f"{path}: file size {size} != end of data {start + pos}")

    out = {}
    with open(path, "rb") as f:
        for name, info in header.items():
            if names is not None and name not in names:
                continue
            kind = info["dtype"]
            b, e = info["data_offsets"]
            f.seek(start + b)
            buf = f.read(e - b)
            if kind == "BF16":
                u = np.frombuffer(buf, dtype="<u2").astype(np.uint32) << 16
                a = u.view(np.float32)
            else:
                a = np.frombuffer(buf, dtype=_NP_OF[kind]).copy()
            out[name] = a.reshape(info["shape"])
    return out, metadata


def load_torch(path, names=None):
    """Like load(), but returns torch tensors."""
    import torch
    arrays, metadata = load(path, names)
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}, metadata
