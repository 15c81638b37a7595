"""Convert pytorch-fid's FID Inception weights (a torch state dict) to safetensors for vkdistill.

Usage: /usr/bin/python3 tools/convert_inception.py pt_inception-2015-12-05-6726825d.pth OUT.safetensors
                                                  [--dtype F32|F16|F64]

The input is the file pytorch-fid downloads (FID_WEIGHTS_URL in its inception.py): the state dict
of torchvision's Inception3 with 1008 classes and no aux head. Every name and shape is checked
against the architecture in tools/reference/inception.py (the same one vkdistill implements);
missing or unexpected tensors are an error, except BatchNorm's num_batches_tracked (an int
counter that eval mode never reads), which is dropped. Names are kept as they are
(Conv2d_1a_3x3.conv.weight, Conv2d_1a_3x3.bn.running_var, ..., fc.weight, fc.bias); vkdistill folds
the BatchNorms into the convolutions when it loads the file. F32 by default (the source is F32).
A checkpoint that wraps the dict ({'state_dict': ...}) or has DataParallel 'module.' prefixes is
accepted too.
"""

import argparse
import os
import sys

import torch

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference"))
import inception  # noqa: E402
import st  # noqa: E402


def convert(src, dst, dtype="F32"):
    sd = torch.load(src, map_location="cpu")
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise SystemExit(f"{src}: expected a state dict (name -> tensor), found {type(sd).__name__}")
    sd = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in sd.items()}
    sd = {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    want = {k: tuple(v.shape) for k, v in inception.FIDInception3().state_dict().items()
            if not k.endswith("num_batches_tracked")}
    missing = sorted(set(want) - set(sd))
    unexpected = sorted(set(sd) - set(want))
    if missing:
        raise SystemExit(f"{src}: missing {len(missing)} tensor(s) of the FID Inception, first '{missing[0]}'")
    if unexpected:
        raise SystemExit(f"{src}: {len(unexpected)} unexpected tensor(s), first '{unexpected[0]}' "
                         "(is this the FID Inception with 1008 classes and no aux head?)")
    out = {}
    for k, shape in want.items():
        v = sd[k]
        if not torch.is_tensor(v) or not v.is_floating_point():
            raise SystemExit(f"{src}: '{k}' is not a floating-point tensor")
        if tuple(v.shape) != shape:
            raise SystemExit(f"{src}: '{k}' has shape {tuple(v.shape)}, expected {shape}")
        if not torch.isfinite(v).all():
            raise SystemExit(f"{src}: '{k}' has non-finite values")
        out[k] = v.detach().cpu().numpy()
    st.save(dst, out, metadata={"source": os.path.basename(src), "converter": "tools/convert_inception.py",
                                "arch": "fid_inception_v3"}, dtype=dtype)
    return len(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--dtype", default="F32", choices=["F32", "F16", "F64"])
    args = ap.parse_args()
    n = convert(args.src, args.dst, args.dtype)
    print(f"{args.dst}: {n} tensors ({args.dtype})")


if __name__ == "__main__":
    main()
