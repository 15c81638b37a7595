"""Write a model-parity fixture: random weights, inputs, D(x; sigma) and its gradients, all float64.

Usage: /usr/bin/python3 tools/reference/make_parity.py CONFIG.json OUT.safetensors [CONFIG OUT ...]
                                                        [--batch N] [--seed S] [--no-acts]
(Several pairs: one process, so torch is imported once: tests/test_parity.sh on a fresh build.)

The network is built from the config (models/README.md), every trainable parameter is replaced
by random values so every path matters (zero-initialized layers and DiT's adaLN-Zero included):
    weights (>= 2-D): N(0,1) / sqrt(fan_in), fan_in = numel / shape[0]
    embedding tables (DiT y_embedder): N(0,1)
    biases (1-D, named *bias): 0.1 N(0,1)
    norm weights (GroupNorm / LayerNorm, 1-D): 1 + 0.1 N(0,1)
Buffers keep their constructed values (EDM resample_filter; NCSN++ map_noise.freqs = randn*16
drawn at construction with the same seed); DiT's pos_embed (a frozen parameter) keeps its fixed
2-D sin-cos value. The model runs in float64, eval mode (dropout off).

Inputs: sigma log-uniform in [0.01, 50] per sample; x = N(0,1) * sigma; upstream u ~ N(0,1) with
D's shape; L = sum(D * u). Labels: a random class per sample; when batch >= 3 and the model
is conditional, the LAST sample is unconditional (EDM/MLP: an all-zero one-hot row; DiT: the
null class index num_classes, if the table has that row). Augment labels (UNet with
augment_dim > 0): N(0,1), fed to map_augment.

Tensors in the file (all F64):
  <state_dict name>            every parameter and buffer (UNet keys start with 'model.')
  input.x                      (N, C, H, W) or (N, dim)
  input.sigma                  (N,)
  input.labels                 (N, K) one-hot, K = label_dim / num_classes (absent if K = 0)
  input.labels_index           (N,)  class index as a float (DiT only; num_classes = null)
  input.labels_table           (N, rows) one-hot over DiT's embedding-table rows (DiT only)
  input.augment_labels         (N, augment_dim) (UNet with augment_dim > 0 only)
  input.upstream               u, D's shape
  output.D                     D(x; sigma, labels)
  output.F                     the raw network output F = (D - c_skip x) / c_out
  grad.x                       dL/dx
  grad.<parameter name>        dL/dp for every parameter with requires_grad
  act.<module name>            forward output of selected submodules, for debugging (see
                               ACT_MODULES below; --no-acts leaves them out)
__metadata__: {"config": the config file's text, "config_full": the config with every default
filled in, "batch", "seed", "generator"}.
"""

import argparse
import json
import math
import os
import sys
import time

import torch

sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models  # noqa: E402
import st  # noqa: E402


def randomize_(net, gen):
    norm_types = (models.GroupNorm, torch.nn.LayerNorm, torch.nn.GroupNorm)
    owner = {}
    for mname, m in net.named_modules():
        for pname, _ in m.named_parameters(recurse=False):
            owner[f"{mname}.{pname}" if mname else pname] = m
    with torch.no_grad():
        for name, p in net.named_parameters():
            if not p.requires_grad:
                continue
            m = owner[name]
            r = torch.randn(p.shape, generator=gen, dtype=torch.float64)
            if isinstance(m, torch.nn.Embedding):
                v = r
            elif name.endswith("bias"):
                v = 0.1 * r
            elif isinstance(m, norm_types) and p.dim() == 1:
                v = 1 + 0.1 * r
            else:
                fan_in = p.numel() // p.shape[0]
                v = r / math.sqrt(fan_in)
            p.copy_(v.to(p.dtype))


def act_modules(cfg, net):
    """Submodules whose outputs are written as act.<name>."""
    arch = cfg["arch"]
    if arch == "unet":
        names = ["model.map_layer0", "model.map_layer1"]
        names += [f"model.enc.{k}" for k in net.model.enc.keys()]
        names += [f"model.dec.{k}" for k in net.model.dec.keys()]
    elif arch == "dit":
        names = ["x_embedder", "t_embedder", "y_embedder"]
        names += [f"blocks.{i}" for i in range(len(net.blocks))] + ["final_layer"]
    else:
        names = ["map_emb", "input"] + [f"blocks.{i}" for i in range(len(net.blocks))] + ["output"]
    return names


def make(cfg, cfg_text, batch=3, seed=0, acts=True):
    torch.manual_seed(seed)
    net, D_fn = models.build_network(cfg)
    gen = torch.Generator().manual_seed(seed + 1)
    randomize_(net, gen)
    net = net.double().eval()
    arch = cfg["arch"]
    sigma_data = float(cfg.get("sigma_data", 0.5))

    shape = models.input_shape(cfg, batch)
    K = models.label_count(cfg)
    sigma = torch.exp(math.log(0.01) + (math.log(50) - math.log(0.01))
                      * torch.rand(batch, generator=gen, dtype=torch.float64))
    x = torch.randn(shape, generator=gen, dtype=torch.float64) * sigma.reshape([-1] + [1] * (len(shape) - 1))
    tensors = {}
    labels = None
    if K > 0:
        idx = torch.randint(0, K, (batch,), generator=gen)
        onehot = torch.nn.functional.one_hot(idx, K).to(torch.float64)
        uncond_last = batch >= 3
        if arch == "dit":
            rows = net.y_embedder.embedding_table.weight.shape[0]
            if uncond_last and rows > K:
                idx[-1] = K
                onehot[-1] = 0
            labels = idx
            tensors["input.labels_index"] = idx.to(torch.float64)
            tensors["input.labels_table"] = torch.nn.functional.one_hot(idx, rows).to(torch.float64)
        else:
            if uncond_last:
                onehot[-1] = 0
            labels = onehot
        tensors["input.labels"] = onehot
    aug = None
    if arch == "unet" and cfg.get("augment_dim", 0) > 0:
        aug = torch.randn(batch, cfg["augment_dim"], generator=gen, dtype=torch.float64)
        tensors["input.augment_labels"] = aug

    captured = {}
    hooks = []
    if acts:
        mods = dict(net.named_modules())
        for n in act_modules(cfg, net):
            hooks.append(mods[n].register_forward_hook(
                lambda m, i, o, n=n: captured.__setitem__(n, o.detach().clone())))

    x_in = x.clone().requires_grad_(True)
    D = D_fn(x_in, sigma, labels, aug)
    for h in hooks:
        h.remove()
    u = torch.randn(D.shape, generator=gen, dtype=torch.float64)
    L = (D * u).sum()
    params = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
    grads = torch.autograd.grad(L, [x_in] + [p for _, p in params], allow_unused=True)

    c_skip, c_out, _, _ = models.edm_coefficients(sigma.reshape([-1] + [1] * (len(shape) - 1)), sigma_data)
    with torch.no_grad():
        F = (D.detach() - c_skip * x) / c_out

    for k, v in net.state_dict().items():
        # The MLP's layers are named 'input' and 'output' (input.weight, output.bias, ...):
        # those never collide with the fixture's own input.x / output.D names, but check.
        if k in tensors:
            raise RuntimeError(f"state-dict name {k} collides with a fixture tensor")
        tensors[k] = v.detach().to(torch.float64)
    extra = {"input.x": x, "input.sigma": sigma, "input.upstream": u,
             "output.D": D.detach(), "output.F": F, "grad.x": grads[0]}
    for k, v in extra.items():
        if k in tensors:
            raise RuntimeError(f"fixture name {k} collides with a state-dict name")
        tensors[k] = v
    for (n, p), g in zip(params, grads[1:]):
        tensors["grad." + n] = g if g is not None else torch.zeros_like(p)
    for n, v in captured.items():
        tensors["act." + n] = v.to(torch.float64)
    meta = {"config": cfg_text, "config_full": json.dumps(models.full_config(cfg)),
            "batch": str(batch), "seed": str(seed), "generator": "tools/reference/make_parity.py"}
    unused = [n for (n, _), g in zip(params, grads[1:]) if g is None]
    return tensors, meta, unused


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("pairs", nargs="+", metavar="CONFIG OUT", help="a config and the fixture to write, one or more pairs")
    ap.add_argument("--batch", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-acts", action="store_true", help="leave out the act.* debugging tensors")
    a = ap.parse_args(argv)
    if len(a.pairs) % 2:
        print(f"make_parity: expected CONFIG OUT pairs, got {len(a.pairs)} arguments", file=sys.stderr)
        return 2
    if a.batch < 1:
        print("make_parity: --batch: expected a positive integer", file=sys.stderr)
        return 2
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    for i in range(0, len(a.pairs), 2):
        rc = make_one(a.pairs[i], a.pairs[i + 1], a)
        if rc:
            return rc
    return 0


def make_one(config, out, a):
    try:
        with open(config) as f:
            text = f.read()
        cfg = json.loads(text)
        models.check_config(cfg, config)
    except (OSError, ValueError) as e:
        print(f"make_parity: {e}", file=sys.stderr)
        return 2
    t0 = time.time()
    tensors, meta, unused = make(cfg, text, a.batch, a.seed, not a.no_acts)
    st.save(out, tensors, metadata=meta)
    if unused:
        print(f"make_parity: note: no gradient reaches {', '.join(unused)}", file=sys.stderr)
    nbytes = os.path.getsize(out)
    print(f"{out}: {len(tensors)} tensors, {nbytes / 1e6:.2f} MB, {time.time() - t0:.1f} s, "
          f"|D| rms {tensors['output.D'].pow(2).mean().sqrt().item():.4g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
