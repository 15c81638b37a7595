#!/usr/bin/env python3
"""Where a model's forward + backward step spends its time, vkdistill beside PyTorch, by kind of op.

vkdistill's side is `vkdistill bench model` under VKD_PROFILE (per-dispatch timestamps, the mean
of its profiled runs after the first, which touches the graph's memory for the first time),
scaled so that its kinds add up to the step's wall time in the same run (the timestamps' sum is
within a few % of it; every dispatch gets the same share of the difference). PyTorch's is torch.profiler's self time of each aten op over --steps
steps of the same network (tools/reference/models.py), config, batch and loss as
tools/bench/model_torch.py, on the same device, scaled the same way to the best of --steps
unprofiled steps (its profiler adds most to models of many small ops). The kinds' ratios say
where a gap is; the steps' ratio is bench model's and model_torch.py's to within the noise.
One table, then one JSON line.
/usr/bin/python3 tools/bench/ops_compare.py --config models/unet_fmnist.json --batch 16 [--bin build/vkdistill]"""
import argparse
import json
import os
import re
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model_torch import bench_inputs, fwd_bwd  # noqa: E402  (the same inputs and loss as model_torch.py)
from models import build_network  # noqa: E402

# The kinds, in print order. Norms count the SiLU on both sides (vkdistill fuses it into group
# norm); batched GEMMs are attention's (EDM's and DiT's) in these models.
KINDS = ["conv forward", "conv backward", "attention", "norms + SiLU", "linear", "other"]


def kind_of_vkd(op):
    if op == "conv2d" or op.startswith("conv2d_winograd"):
        # (the weight transform runs for the forward and again for the data gradient: counted forward)
        return "conv forward"
    if op.startswith("conv2d_bwd") or op.startswith("conv_transpose2d"):
        return "conv backward"
    if op.startswith("attention") or op.startswith("softmax") or op.startswith("matmul"):
        return "attention"
    if op.startswith("groupnorm") or op.startswith("layernorm") or op.startswith("silu"):
        return "norms + SiLU"
    if op.startswith("linear"):
        return "linear"
    return "other"


def kind_of_torch(op):
    if op in ("aten::mkldnn_convolution", "aten::slow_conv_transpose2d", "aten::thnn_conv2d"):
        return "conv forward"
    if op == "aten::convolution_backward":
        return "conv backward"
    if op in ("aten::bmm", "aten::_softmax", "aten::_softmax_backward_data", "aten::baddbmm"):
        return "attention"
    if op in ("aten::native_group_norm", "aten::native_group_norm_backward", "aten::native_layer_norm",
              "aten::native_layer_norm_backward", "aten::silu", "aten::silu_backward"):
        return "norms + SiLU"
    if op in ("aten::mm", "aten::addmm"):
        return "linear"
    return "other"


def vkd_profile(binary, config, batch):
    """ms per step by op name for the forward + backward graph (scaled to the step's wall time, see
    above), and that wall time."""
    env = dict(os.environ, VKD_PROFILE="1")
    try:
        r = subprocess.run([binary, "bench", "model", "--config", config, "--batch", str(batch)], env=env,
                           capture_output=True, text=True)
    except OSError as e:
        sys.exit("ops_compare: cannot run %s: %s (build it first, or name it with --bin)" % (binary, e.strerror))
    if r.returncode != 0:
        last = r.stderr.strip().splitlines()[-1:] or ["exit status %d" % r.returncode]
        sys.exit("ops_compare: %s bench model failed: %s" % (binary, last[0]))
    ops, total, inside = {}, None, False
    for line in r.stderr.splitlines():
        m = re.match(r"vkdistill profile: graph '(\S+)'.*: ([0-9.]+) ms/step", line)
        if m:
            inside = m.group(1) == "bench_model_fwd_bwd"
            if inside:
                total = float(m.group(2))
            continue
        f = line.split()
        if inside and len(f) == 5 and f[1].isdigit():
            ops[f[0]] = ops.get(f[0], 0.0) + float(f[2])
    m = re.search(r'"fwd_bwd_ms_per_img":([0-9.]+)', r.stdout)
    if total is None or not m:
        sys.exit("ops_compare: no profile of the forward + backward graph in %s's output" % binary)
    wall = float(m.group(1)) * batch
    return {op: ms * wall / total for op, ms in ops.items()}, wall


def torch_profile(config, batch, steps):
    """ms per step by aten op (self time, scaled to the step's wall time), and that wall time."""
    torch.set_num_threads(os.cpu_count())
    with open(config) as f:
        cfg = json.load(f)
    net, fwd = build_network(cfg)
    net.eval()  # dropout off, as bench model's
    x, sigma, labels = bench_inputs(cfg, batch, "cpu")

    def step():
        fwd_bwd(fwd, x, sigma, labels)

    for _ in range(2):
        step()
    wall = float("inf")
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        wall = min(wall, (time.perf_counter() - t0) * 1e3)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as p:
        for _ in range(steps):
            step()
    ops = {}
    for e in p.key_averages():
        if e.key.startswith("aten::"):
            ops[e.key] = ops.get(e.key, 0.0) + e.self_cpu_time_total / 1e3 / steps
    total = sum(ops.values())
    return {op: ms * wall / total for op, ms in ops.items()}, wall


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=3, help="PyTorch's profiled steps")
    ap.add_argument("--bin", default=os.path.join("build", "vkdistill"))
    args = ap.parse_args()
    if not os.path.isfile(args.config):
        sys.exit("ops_compare: %s: no such config file" % args.config)
    vops, vtotal = vkd_profile(args.bin, args.config, args.batch)
    tops, ttotal = torch_profile(args.config, args.batch, args.steps)
    vk = {k: 0.0 for k in KINDS}
    tk = {k: 0.0 for k in KINDS}
    for op, ms in vops.items():
        vk[kind_of_vkd(op)] += ms
    for op, ms in tops.items():
        tk[kind_of_torch(op)] += ms
    print("%s, batch %d, forward + backward, ms a step (profiles scaled to wall time, see the header)" % (args.config, args.batch))
    print("  %-20s %10s %10s %7s" % ("kind", "vkdistill", "pytorch", "ratio"))
    for k in KINDS:
        ratio = "%.2f" % (vk[k] / tk[k]) if tk[k] > 0 else "-"
        print("  %-20s %10.1f %10.1f %7s" % (k, vk[k], tk[k], ratio))
    print("  %-20s %10.1f %10.1f %7.2f" % ("step", vtotal, ttotal, vtotal / ttotal))
    print(json.dumps({"bench": "ops_compare", "config": args.config, "batch": args.batch,
                      "peer": "pytorch " + torch.__version__, "threads": torch.get_num_threads(),
                      "vkdistill_ms": {k: round(v, 2) for k, v in vk.items()},
                      "pytorch_ms": {k: round(v, 2) for k, v in tk.items()},
                      "vkdistill_step_ms": round(vtotal, 2), "pytorch_step_ms": round(ttotal, 2)}), flush=True)


if __name__ == "__main__":
    main()
