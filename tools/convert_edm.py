#!/usr/bin/python3
"""Convert an EDM network pickle (NVlabs/edm, e.g. edm-cifar10-32x32-cond-vp.pkl) to safetensors.

Usage:
  PYTHONPATH=/path/to/edm /usr/bin/python3 tools/convert_edm.py NETWORK.pkl OUT.safetensors \\
      --config-out CONFIG.json [--dtype f32|f16] [--no-verify]

EDM's pickles execute code on load (they carry the source of EDM's modules and import
`torch_utils` and `dnnlib`), so EDM's repository must be importable: clone NVlabs/edm and point
PYTHONPATH at it. Only convert pickles you trust. Download the file first; URLs are not read.

What it does:
  * takes data['ema'] (an EDMPrecond around a SongUNet; DhariwalUNet/ADM and the VP/VE/iDDPM
    preconditionings are refused with a clear message),
  * writes its state dict, keys 'model.…' exactly as in EDM, parameters in --dtype (F32 default),
    buffers (resample_filter, NCSN++'s map_noise.freqs) always in F32,
  * writes the vkdistill JSON config (models/README.md) from the SongUNet's constructor
    arguments (init_kwargs recorded by EDM's persistence module), every default filled in, and
    sigma_data from the EDMPrecond,
  * checks the keys and shapes against tools/reference/models.py built from that config, and
    (unless --no-verify) runs EDM's own network and the reference on a random batch and reports
    the largest difference of D.
"""

import argparse
import json
import os
import pickle
import sys

import torch

sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference"))
import models  # noqa: E402
import st  # noqa: E402


def die(msg):
    print(f"convert_edm: {msg}", file=sys.stderr)
    sys.exit(1)


def init_kwargs_of(module):
    kw = getattr(module, "_init_kwargs", None)
    if kw is None:
        try:
            kw = module.init_kwargs
        except Exception:
            kw = None
    return dict(kw) if kw is not None else None


def config_from_network(net):
    """vkdistill config dict from an EDMPrecond-like object (needs .model with init kwargs)."""
    prec = type(net).__name__
    if prec != "EDMPrecond":
        raise ValueError(f"data['ema'] is a {prec}; only EDMPrecond (sigma_data preconditioning) is supported")
    inner = getattr(net, "model", None)
    if inner is None or type(inner).__name__ != "SongUNet":
        raise ValueError(f"the network inside EDMPrecond is a {type(inner).__name__}; only SongUNet "
                         "(DDPM++ / NCSN++) is supported")
    kw = init_kwargs_of(inner)
    if kw is None:
        raise ValueError("the SongUNet carries no init_kwargs (not saved by EDM's persistence module?)")
    unknown = [k for k in kw if k not in models.UNET_ARGS]
    if unknown:
        raise ValueError(f"SongUNet constructor arguments unknown to vkdistill: {', '.join(unknown)}")
    cfg = {"arch": "unet", "sigma_data": float(getattr(net, "sigma_data", 0.5))}
    for k in models.UNET_ARGS:
        if k in kw:
            v = kw[k]
            cfg[k] = list(v) if isinstance(v, (list, tuple)) else v
    return models.full_config(cfg)


def state_dict_to_tensors(sd, dtype="F32"):
    """EDMPrecond state dict -> {name: numpy array}; parameters in dtype, buffers F32."""
    out = {}
    for k, v in sd.items():
        a = v.detach().cpu()
        is_buffer = k.endswith("resample_filter") or k.endswith("map_noise.freqs")
        if is_buffer or dtype == "F32":
            a = a.to(torch.float32)
        elif dtype == "F16":
            a = a.to(torch.float16)
        out[k] = a.numpy()
    return out


def check_against_reference(cfg, sd):
    """Raise ValueError listing missing/extra/mis-shaped keys versus the reference SongUNet."""
    ref, _ = models.build_network(cfg)
    want = {k: list(v.shape) for k, v in ref.state_dict().items()}
    have = {k: list(v.shape) for k, v in sd.items()}
    missing = [k for k in want if k not in have]
    extra = [k for k in have if k not in want]
    bad = [f"{k} {have[k]} != {want[k]}" for k in want if k in have and have[k] != want[k]]
    if missing or extra or bad:
        raise ValueError("state dict does not match the reference SongUNet: "
                         f"missing {missing[:5]}, extra {extra[:5]}, shapes {bad[:5]}")
    return ref


def convert(net, out_path, config_out, dtype="F32", verify=True, source=""):
    cfg = config_from_network(net)
    sd = net.state_dict()
    ref = check_against_reference(cfg, sd)
    tensors = state_dict_to_tensors(sd, dtype)
    meta = {"format": "pt", "source": source, "config": json.dumps(cfg), "converter": "tools/convert_edm.py"}
    st.save(out_path, tensors, metadata=meta)
    tmp = f"{config_out}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, config_out)
    n = sum(v.numel() for k, v in sd.items() if not (k.endswith("resample_filter") or k.endswith("freqs")))
    print(f"{out_path}: {len(tensors)} tensors, {n:,} parameters, {dtype}; config -> {config_out}")
    if verify:
        ref.load_state_dict({k: v.detach().cpu().float() for k, v in sd.items()})
        ref = ref.double().eval()
        g = torch.Generator().manual_seed(0)
        N = 2
        x = torch.randn(N, cfg["in_channels"], cfg["img_resolution"], cfg["img_resolution"], generator=g)
        sigma = torch.tensor([0.05, 5.0])
        labels = None
        if cfg["label_dim"]:
            labels = torch.nn.functional.one_hot(torch.arange(N) % cfg["label_dim"], cfg["label_dim"]).float()
        x = x * sigma.reshape(-1, 1, 1, 1)
        with torch.no_grad():
            was_training = net.training
            net.eval()
            try:
                d_orig = net.cpu().float()(x, sigma, labels).double()
            finally:
                net.train(was_training)
            d_ref = ref(x.double(), sigma.double(), None if labels is None else labels.double())
        err = (d_orig - d_ref).abs().max().item()
        scale = d_ref.abs().max().item()
        print(f"verify: max |D_edm - D_reference| = {err:.3g} (max |D| {scale:.3g})")
        if not err <= 1e-3 * max(scale, 1.0):
            die("verify: the reference implementation disagrees with EDM's network")
    return cfg


def main(argv=None):
    ap = argparse.ArgumentParser(description="EDM network pickle -> safetensors + vkdistill config")
    ap.add_argument("pkl")
    ap.add_argument("out")
    ap.add_argument("--config-out", required=True)
    ap.add_argument("--dtype", default="f32", choices=["f32", "f16"])
    ap.add_argument("--key", default="ema", help="entry of the pickle's dict to convert (default ema)")
    ap.add_argument("--no-verify", action="store_true", help="skip running both networks on a test batch")
    a = ap.parse_args(argv)
    try:
        with open(a.pkl, "rb") as f:
            data = pickle.load(f)
    except ModuleNotFoundError as e:
        die(f"{a.pkl}: {e}; EDM's pickles need EDM's code: set PYTHONPATH=/path/to/edm")
    except (OSError, pickle.UnpicklingError, EOFError) as e:
        die(f"{a.pkl}: cannot read the pickle: {e}")
    if isinstance(data, dict):
        if a.key not in data:
            die(f"{a.pkl}: no '{a.key}' entry (has: {', '.join(map(str, data))})")
        net = data[a.key]
    else:
        net = data
    try:
        convert(net, a.out, a.config_out, a.dtype.upper(), not a.no_verify, os.path.basename(a.pkl))
    except ValueError as e:
        die(f"{a.pkl}: {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
