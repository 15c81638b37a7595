#!/usr/bin/python3
"""Convert a facebookresearch/DiT checkpoint (.pt state dict) to safetensors + a vkdistill config.

Usage:
  /usr/bin/python3 tools/convert_dit.py CKPT.pt OUT.safetensors --model DiT-XL/2 --image-size 256 \\
      --config-out CONFIG.json [--dtype f32|f16] [--in-channels 4] [--num-classes 1000]
      [--latent-size N] [--trust-pickle]
  --model custom --depth D --hidden-size H --patch-size P --num-heads K  for non-preset sizes.

  * CKPT.pt: either a bare state dict (the released DiT-XL-2-256x256.pt) or a training checkpoint
    dict with 'ema' (preferred) or 'model'. Read with torch.load(weights_only=True); training
    checkpoints that also pickle an argparse Namespace need --trust-pickle (only for files you trust).
  * input_size = --latent-size, or image_size // 8 (DiT runs on Stable Diffusion VAE latents).
  * learn_sigma is read from final_layer.linear (p*p*2C rows = True); class_dropout_prob is 0.1
    when the label table has num_classes + 1 rows (a null class), else 0.
  * every key and shape is checked against models.dit_expected_shapes(config); names are kept
    (no prefix), pos_embed included. Note that vkdistill runs DiT under EDM preconditioning
    (models/README.md): a DiT trained with DDPM's epsilon objective is NOT an EDM denoiser; the
    converted weights are for initialisation and for architecture parity.
"""

import argparse
import json
import os
import sys

import torch

sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference"))
import models  # noqa: E402
import st  # noqa: E402


def die(msg):
    print(f"convert_dit: {msg}", file=sys.stderr)
    sys.exit(1)


def pick_state_dict(obj):
    if isinstance(obj, dict) and "pos_embed" not in obj:
        for k in ("ema", "model", "state_dict"):
            if k in obj and isinstance(obj[k], dict):
                return obj[k], k
        raise ValueError(f"no state dict found (top-level keys: {', '.join(map(str, list(obj)[:10]))})")
    if not isinstance(obj, dict):
        raise ValueError(f"expected a dict of tensors, got {type(obj).__name__}")
    return obj, None


def config_for(sd, preset, image_size=None, latent_size=None, in_channels=4, num_classes=1000, custom=None):
    if preset == "custom":
        p = dict(custom or {})
        for k in ("depth", "hidden_size", "patch_size", "num_heads"):
            if p.get(k) is None:
                raise ValueError(f"--model custom needs --{k.replace('_', '-')}")
    elif preset not in models.DIT_PRESETS:
        raise ValueError(f"--model: expected custom or one of {', '.join(models.DIT_PRESETS)}, got {preset!r}")
    else:
        p = models.DIT_PRESETS[preset]
    if latent_size is None:
        if image_size is None or image_size % 8:
            raise ValueError("--image-size: expected a multiple of 8 (or give --latent-size)")
        latent_size = image_size // 8
    D, ps = p["hidden_size"], p["patch_size"]
    lin = sd.get("final_layer.linear.weight")
    table = sd.get("y_embedder.embedding_table.weight")
    if lin is None or table is None:
        raise ValueError("missing final_layer.linear.weight or y_embedder.embedding_table.weight")
    cout = lin.shape[0] // (ps * ps)
    if cout == 2 * in_channels:
        learn_sigma = True
    elif cout == in_channels:
        learn_sigma = False
    else:
        raise ValueError(f"final_layer.linear has {lin.shape[0]} rows: not {ps}*{ps}*{in_channels} or *2")
    if table.shape[0] == num_classes + 1:
        drop = 0.1
    elif table.shape[0] == num_classes:
        drop = 0.0
    else:
        raise ValueError(f"label table has {table.shape[0]} rows; --num-classes {num_classes} expects "
                         f"{num_classes} or {num_classes + 1}")
    cfg = {"arch": "dit", "sigma_data": 0.5, "input_size": latent_size, "patch_size": ps,
           "in_channels": in_channels, "hidden_size": D, "depth": p["depth"], "num_heads": p["num_heads"],
           "mlp_ratio": 4.0, "class_dropout_prob": drop, "num_classes": num_classes,
           "learn_sigma": learn_sigma}
    return cfg


def check_shapes(cfg, sd):
    want = models.dit_expected_shapes(cfg)
    have = {k: list(v.shape) for k, v in sd.items()}
    missing = [k for k in want if k not in have]
    extra = [k for k in have if k not in want]
    bad = [f"{k} {have[k]} != {want[k]}" for k in want if k in have and have[k] != want[k]]
    if missing or extra or bad:
        raise ValueError(f"checkpoint does not match {cfg}: missing {missing[:5]}, extra {extra[:5]}, "
                         f"shapes {bad[:5]}")


def convert(sd, cfg, out_path, config_out, dtype="F32", source=""):
    check_shapes(cfg, sd)
    tdt = torch.float16 if dtype == "F16" else torch.float32
    tensors = {k: v.detach().cpu().to(tdt).numpy() for k, v in sd.items()}
    st.save(out_path, tensors, metadata={"format": "pt", "source": source, "config": json.dumps(cfg),
                                         "converter": "tools/convert_dit.py"})
    tmp = f"{config_out}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, config_out)
    n = sum(v.numel() for v in sd.values())
    print(f"{out_path}: {len(tensors)} tensors, {n:,} values, {dtype}; config -> {config_out}")


def main(argv=None):
    ap = argparse.ArgumentParser(description="DiT checkpoint -> safetensors + vkdistill config")
    ap.add_argument("ckpt")
    ap.add_argument("out")
    ap.add_argument("--model", required=True, help="DiT-XL/2, DiT-S/2, ..., or custom (with the four below)")
    ap.add_argument("--depth", type=int)
    ap.add_argument("--hidden-size", type=int)
    ap.add_argument("--patch-size", type=int)
    ap.add_argument("--num-heads", type=int)
    ap.add_argument("--image-size", type=int)
    ap.add_argument("--latent-size", type=int)
    ap.add_argument("--in-channels", type=int, default=4)
    ap.add_argument("--num-classes", type=int, default=1000)
    ap.add_argument("--config-out", required=True)
    ap.add_argument("--dtype", default="f32", choices=["f32", "f16"])
    ap.add_argument("--trust-pickle", action="store_true")
    a = ap.parse_args(argv)
    try:
        obj = torch.load(a.ckpt, map_location="cpu", weights_only=not a.trust_pickle)
    except FileNotFoundError as e:
        die(f"{a.ckpt}: {e.strerror}")
    except Exception as e:  # weights_only refusals and corrupt files
        die(f"{a.ckpt}: cannot load ({str(e).splitlines()[0][:200]}); "
            "a training checkpoint with pickled objects needs --trust-pickle")
    try:
        sd, which = pick_state_dict(obj)
        custom = dict(depth=a.depth, hidden_size=a.hidden_size, patch_size=a.patch_size, num_heads=a.num_heads)
        cfg = config_for(sd, a.model, a.image_size, a.latent_size, a.in_channels, a.num_classes, custom)
        convert(sd, cfg, a.out, a.config_out, a.dtype.upper(), os.path.basename(a.ckpt))
    except ValueError as e:
        die(f"{a.ckpt}: {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
