"""Check the reference SongUNet against EDM's conditional DDPM++ CIFAR-10 network.

Builds models/edm_ddpmpp_cifar10_cond.json, counts its parameters (must be 55,735,299) and
compares its state dict (parameters and buffers) with the key list in
shared/reference/edm_ddpmpp_cifar10_cond_keys.txt, name for name and shape for shape.
Also checks the unconditional count (55,733,891) and the NCSN++ config's buffers.
Usage: /usr/bin/python3 tools/reference/check_keys.py [KEYS.txt]
"""

import json
import os
import sys

sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def default_keys_path():
    for p in (os.path.join(ROOT, "shared/reference/edm_ddpmpp_cifar10_cond_keys.txt"),
              "/work/shared/reference/edm_ddpmpp_cifar10_cond_keys.txt"):
        if os.path.exists(p):
            return p
    return None


def load_cfg(name):
    with open(os.path.join(ROOT, "models", name)) as f:
        return json.load(f)


def nparams(net):
    return sum(p.numel() for p in net.parameters())


def main(argv):
    keys_path = argv[1] if len(argv) > 1 else default_keys_path()
    ok = True
    cfg = load_cfg("edm_ddpmpp_cifar10_cond.json")
    net, _ = models.build_network(cfg)
    n = nparams(net)
    print(f"DDPM++ cond parameters: {n:,} (expected 55,735,299)")
    ok &= n == 55_735_299

    ucfg = dict(cfg, label_dim=0)
    un = nparams(models.build_network(ucfg)[0])
    print(f"DDPM++ uncond parameters: {un:,} (expected 55,733,891)")
    ok &= un == 55_733_891

    sd = {k: list(v.shape) for k, v in net.state_dict().items()}
    if keys_path is None:
        print("key list not found; skipping the name/shape comparison")
    else:
        want = {}
        order = []
        for line in open(keys_path):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, shape = line.split(" ", 1)
            want[name] = json.loads(shape)
            order.append(name)
        missing = [k for k in order if k not in sd]
        extra = [k for k in sd if k not in want]
        badshape = [k for k in order if k in sd and sd[k] != want[k]]
        for k in missing:
            print("missing:", k, want[k])
        for k in extra:
            print("extra:", k, sd[k])
        for k in badshape:
            print("shape:", k, "want", want[k], "have", sd[k])
        print(f"key list: {len(want)} entries, state dict: {len(sd)} entries, "
              f"{len(missing)} missing, {len(extra)} extra, {len(badshape)} shape mismatches")
        ok &= not missing and not extra and not badshape
        # Same order for the parameters (named_parameters order = EDM's construction order).
        pnames = [k for k, _ in net.named_parameters()]
        ok_order = pnames == [k for k in order if "resample_filter" not in k]
        print("parameter order matches the key list:", ok_order)
        ok &= ok_order

    ncfg = load_cfg("edm_ncsnpp_cifar10_uncond.json")
    nnet, _ = models.build_network(ncfg)
    nsd = nnet.state_dict()
    nn_ = nparams(nnet)
    print(f"NCSN++ uncond parameters: {nn_:,}; buffers:",
          sorted({k.split('.')[-1] for k, _ in nnet.named_buffers()}),
          "freqs" if "model.map_noise.freqs" in nsd else "NO freqs")
    ok &= "model.map_noise.freqs" in nsd and list(nsd["model.map_noise.freqs"].shape) == [128]
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
