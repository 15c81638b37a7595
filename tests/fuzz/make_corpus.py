#!/usr/bin/python3
"""Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/NAME): a few
small valid files of each format, so libFuzzer starts from inputs that get past
the magic numbers. Run from the repository root: /usr/bin/python3 tests/fuzz/make_corpus.py"""
import gzip, io, json, os, struct, zlib
import numpy as np

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")

def put(target, name, data):
    d = os.path.join(root, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

def safetensors(tensors, meta=None):
    """tensors: list of (name, dtype, shape, bytes)."""
    hdr, off, body = {}, 0, b""
    if meta:
        hdr["__metadata__"] = meta
    for name, dt, shape, raw in tensors:
        hdr[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        body += raw
    h = json.dumps(hdr).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + body

f32 = lambda a: np.asarray(a, "<f4").tobytes()
put("safetensors", "f32_meta", safetensors([("w", "F32", (2, 3), f32(np.arange(6))), ("b", "F32", (3,), f32([1, 2, 3]))],
                                          {"format": "pt", "step": "10"}))
put("safetensors", "mixed", safetensors([("h", "F16", (2,), np.asarray([1, -2], "<f2").tobytes()),
                                         ("bf", "BF16", (2,), b"\x80\x3f\x00\xc0"),
                                         ("d", "F64", (), np.asarray(3.5, "<f8").tobytes()),
                                         ("i", "I64", (1,), np.asarray([7], "<i8").tobytes()),
                                         ("e", "F32", (0, 4), b"")]))
put("safetensors", "empty", safetensors([]))

def npz(arrays, compress):
    b = io.BytesIO()
    (np.savez_compressed if compress else np.savez)(b, **arrays)
    return b.getvalue()

mu, sig = np.array([0.5, -1.0]), np.array([[2.0, 0.3], [0.3, 1.0]])
put("npz", "stats_stored", npz({"mu": mu, "sigma": sig}, 0))
put("npz", "stats_deflate", npz({"mu": mu, "sigma": sig}, 1))
put("npz", "samples_f32", npz({"samples": np.zeros((2, 1, 2, 2), np.float32), "labels": np.array([0, 1])}, 1))
put("npz", "fortran_be", npz({"x": np.asfortranarray(np.arange(6, dtype=">f4").reshape(2, 3))}, 0))

repo = os.path.dirname(os.path.dirname(root))
repo = os.path.dirname(repo)
def model(name):
    with open(os.path.join(repo, "models", name), "rb") as f:
        return f.read()
put("config", "generic", b"\x00" + b'{"batch": 64, "lr": 2e-4, "betas": [0.9, 0.99], "ema": true, "m": [[1, 2], [3, 4]],'
    b' "unet": {"channels": 64, "channel_mult": [1, 2, 2], "dropout": 0.1}, "s": "unet"}')
put("config", "model_mlp", b"\x01" + model("mlp_2d.json"))
put("config", "model_unet_tiny", b"\x01" + model("unet_tiny.json"))
put("config", "model_dit_tiny", b"\x01" + model("dit_tiny.json"))
put("config", "gmm_ring8", b"\x02" + model("gmm_ring8.json"))
put("config", "run_distill", b"\x03" + open(os.path.join(repo, "samples", "gmm_ring8_dmd2.json"), "rb").read())
put("config", "run_teacher", b"\x04" + open(os.path.join(repo, "samples", "fmnist16_teacher.json"), "rb").read())

def idx_images(n, h, w):
    return struct.pack(">IIII", 0x803, n, h, w) + bytes((i * 37) % 256 for i in range(n * h * w))
def idx_labels(labels):
    return struct.pack(">II", 0x801, len(labels)) + bytes(labels)
def idx_input(flags, img, lab):
    return bytes([flags]) + struct.pack("<H", len(img)) + img + lab
im, lb = idx_images(3, 5, 4), idx_labels([0, 2, 1])
put("idx", "single_plain", idx_input(0x40, im, lb))
put("idx", "single_nolabels", idx_input(0x00 | 4, im, b""))
put("idx", "dir_train", idx_input(0x80 | 8, im, lb))
put("idx", "dir_test_gzip", idx_input(0xc0 | 1, gzip.compress(im, mtime=0), gzip.compress(lb, mtime=0)))

rec = lambda label: bytes([label]) + bytes((i * 7 + label) % 256 for i in range(3072))
put("cifar", "test_meta", bytes([0x80, 12]) + b"cat\ndog\nfrog" + rec(0) + rec(2))
put("cifar", "train", bytes([0x40 | 2, 0]) + rec(9))

def png(w, h, channels, bit_depth=8):
    ctype = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    raw = b"".join(b"\x00" + bytes((x * 31 + y * 17 + c) % 256 for x in range(w) for c in range(channels))
                   for y in range(h))
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bit_depth, ctype, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
put("image", "gray", b"\x00" + png(3, 2, 1))
put("image", "rgb_classes", b"\x80" + png(4, 4, 3))
put("image", "rgba_pad", bytes([4]) + png(2, 3, 4))
try:
    from PIL import Image
    b = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 30)).save(b, "JPEG", quality=50)
    put("image", "jpeg", b"\x40" + b.getvalue())
except ImportError:
    pass

w = f32(np.arange(12) / 7)
b4 = f32([0.5, 1, 2, 3])
ts = [("net/w", "F32", (4, 3), w), ("net/b", "F32", (4,), b4), ("ema/w", "F32", (4, 3), w), ("ema/b", "F32", (4,), b4),
      ("adam_m/w", "F32", (4, 3), w), ("adam_m/b", "F32", (4,), b4)]
put("checkpoint", "valid", safetensors(ts, {"step": "10", "skipped": "0", "kind": "vkdistill teacher training",
                                            "model_config": '{"arch": "mlp"}'}))
put("checkpoint", "other_kind", safetensors(ts, {"step": "20", "kind": "vkdistill distillation"}))
put("checkpoint", "missing", safetensors(ts[:3], {"step": "1"}))
