"""Self-check of the PyTorch reference side.

Usage: /usr/bin/python3 tools/reference/selftest.py
  1. check_keys: DDPM++ CIFAR-10 cond has 55,735,299 parameters and EDM's key list.
  2. builds every models/*.json and prints its parameter count.
  3. safetensors round trip (F64/F32/F16 written, BF16 read, metadata, alignment, ordering).
  4. make_parity on the tiny configs into a temporary folder; re-reads each file and checks:
     all F64, the fixture names, a gradient for every trainable parameter, and that a fresh
     network loaded ONLY from the file's state-dict tensors reproduces output.D and grad.x
     (what the C side will do); determinism for a fixed seed.
Exits non-zero on any failure.
"""

import glob
import json
import os
import struct
import sys
import tempfile
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree
sys.path.insert(0, HERE)
import check_keys  # noqa: E402
import make_parity  # noqa: E402
import models  # noqa: E402
import st  # noqa: E402

FAILED = []


def check(cond, what):
    print(("  ok   " if cond else "  FAIL ") + what)
    if not cond:
        FAILED.append(what)


def test_st(tmp):
    print("safetensors round trip")
    p = os.path.join(tmp, "rt.safetensors")
    t = {"b.f16": np.arange(5, dtype=np.float16), "a.f64": np.linspace(0, 1, 6).reshape(2, 3),
         "c.f32": np.ones((1, 3), np.float32), "z.i64": np.array([1, -2], np.int64)}
    st.save(p, t, metadata={"config": "{}"})
    back, meta = st.load(p)
    check(meta == {"config": "{}"}, "metadata")
    check(all(np.array_equal(back[k], t[k]) and back[k].dtype == t[k].dtype for k in t), "values and dtypes")
    header, _, start = st.read_header(p)
    check(start % 8 == 0, "header padded to a multiple of 8")
    order = sorted(header, key=lambda k: header[k]["data_offsets"][0])
    check(order == ["a.f64", "z.i64", "c.f32", "b.f16"], f"layout order {order}")
    check(all(header[k]["data_offsets"][0] % np.dtype(t[k].dtype).itemsize == 0 for k in t), "aligned")
    st.save(p, {"x": np.arange(4, dtype=np.float64)}, dtype="f16")
    check(st.load(p)[0]["x"].dtype == np.float16, "cast on write (F16)")
    # BF16 read: hand-written file
    vals = np.array([1.0, -2.5, 3.140625], np.float32)
    bf = (vals.view(np.uint32) >> 16).astype("<u2").tobytes()
    hdr = json.dumps({"w": {"dtype": "BF16", "shape": [3], "data_offsets": [0, 6]}}).encode()
    hdr += b" " * ((8 - len(hdr) % 8) % 8)
    with open(p, "wb") as f:
        f.write(struct.pack("<Q", len(hdr)) + hdr + bf)
    check(np.array_equal(st.load(p)[0]["w"], vals), "BF16 read")
    with open(p, "ab") as f:
        f.write(b"\0")
    try:
        st.load(p)
        check(False, "trailing byte rejected")
    except ValueError:
        check(True, "trailing byte rejected")
    check(not [f for f in os.listdir(tmp) if ".tmp." in f], "no temporary files left")


def reload_and_rerun(path):
    """Rebuild the network from the file's metadata, load ONLY the file's tensors, recompute."""
    t, meta = st.load_torch(path)
    cfg = json.loads(meta["config"])
    torch.manual_seed(12345)  # a different seed: everything must come from the file
    net, D_fn = models.build_network(cfg)
    net = net.double().eval()
    sd_names = list(net.state_dict().keys())
    missing = [k for k in sd_names if k not in t]
    net.load_state_dict({k: t[k] for k in sd_names})
    x = t["input.x"].clone().requires_grad_(True)
    if cfg["arch"] == "dit":
        labels = t["input.labels_index"].long() if "input.labels_index" in t else None
    else:
        labels = t.get("input.labels")
    D = D_fn(x, t["input.sigma"], labels, t.get("input.augment_labels"))
    params = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
    g = torch.autograd.grad((D * t["input.upstream"]).sum(), [x] + [p for _, p in params])
    errD = (D - t["output.D"]).abs().max().item()
    errx = (g[0] - t["grad.x"]).abs().max().item()
    errp = max((gp - t["grad." + n]).abs().max().item() for (n, _), gp in zip(params, g[1:]))
    return cfg, t, missing, params, errD, errx, errp


def test_parity(tmp):
    print("parity fixtures")
    # A conditional MLP (label path) and a DDPM++ with skip encoder/decoder (EDM's other options),
    # written to the temporary folder: not shipped configs, only exercised here.
    extra = {"mlp_2d_cond": dict(json.load(open(os.path.join(ROOT, "models", "mlp_2d.json"))), label_dim=4),
             "unet_tiny_skip": dict(json.load(open(os.path.join(ROOT, "models", "unet_tiny.json"))),
                                    encoder_type="skip", decoder_type="skip", resample_filter=[1, 3, 3, 1])}
    for name, cfg in extra.items():
        with open(os.path.join(tmp, f"{name}.json"), "w") as f:
            json.dump(cfg, f)
    runs = [("unet_tiny", 3), ("unet_tiny_ncsnpp", 3), ("dit_tiny", 3), ("mlp_2d", 3), ("ddpmpp_reduced", 2),
            ("mlp_2d_cond", 3), ("unet_tiny_skip", 3)]
    for name, batch in runs:
        path = os.path.join(tmp, f"{name}.safetensors")
        t0 = time.time()
        cpath = os.path.join(tmp if name in extra else os.path.join(ROOT, "models"), f"{name}.json")
        rc = make_parity.main([cpath, path, "--batch", str(batch)])
        dt = time.time() - t0
        check(rc == 0, f"{name}: make_parity ran ({dt:.1f} s, {os.path.getsize(path) / 1e6:.2f} MB)")
        header, meta, _ = st.read_header(path)
        check(all(v["dtype"] == "F64" for v in header.values()), f"{name}: every tensor F64")
        need = ["input.x", "input.sigma", "input.upstream", "output.D", "output.F", "grad.x"]
        check(all(k in header for k in need), f"{name}: fixture names present")
        cfg, t, missing, params, errD, errx, errp = reload_and_rerun(path)
        check(not missing, f"{name}: every state-dict tensor in the file {missing[:3]}")
        check(all("grad." + n in t for n, _ in params), f"{name}: grad.<name> for all {len(params)} trainable params")
        check(errD < 1e-12 and errx < 1e-12 and errp < 1e-12,
              f"{name}: reloaded network reproduces D/grad.x/grad.params (max err {errD:.1e} {errx:.1e} {errp:.1e})")
        check(models.label_count(cfg) == 0 or "input.labels" in t, f"{name}: labels present")
        if name == "unet_tiny":
            path2 = os.path.join(tmp, f"{name}_again.safetensors")
            make_parity.main([os.path.join(ROOT, "models", f"{name}.json"), path2, "--batch", str(batch)])
            with open(path, "rb") as a, open(path2, "rb") as b:
                check(a.read() == b.read(), f"{name}: deterministic for a fixed seed")


def main():
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    print("check_keys")
    check(check_keys.main(["check_keys.py"]) == 0, "DDPM++ CIFAR-10 cond: count and key list")
    print("configs")
    for f in sorted(glob.glob(os.path.join(ROOT, "models", "*.json"))):
        cfg = json.load(open(f))
        net, _ = models.build_network(cfg)
        n = sum(p.numel() for p in net.parameters() if p.requires_grad)
        check(models.full_config(cfg) == cfg, f"{os.path.basename(f)}: {n:,} trainable parameters, "
              "every constructor argument spelled out")
    with tempfile.TemporaryDirectory() as tmp:
        test_st(tmp)
        test_parity(tmp)
    print("FAILED: " + "; ".join(FAILED) if FAILED else "ALL OK")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
