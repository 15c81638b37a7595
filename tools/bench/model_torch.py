#!/usr/bin/env python3
"""PyTorch peer for `vkdistill bench model`: the same architecture (tools/reference/models.py),
config and batch, fp32, forward and forward+backward time per image and peak memory (CUDA: the
allocator's peak; CPU: the process's peak RSS growth). One JSON line.
/usr/bin/python3 tools/bench/model_torch.py --config models/unet_fmnist.json --batch 8 [--device cpu|cuda]"""
import argparse
import json
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
from models import build_network, input_shape  # noqa: E402


def bench_inputs(cfg, batch, dev):
    """The benchmarks' inputs: noise images, sigmas in [0, 10), one-hot labels (class i % K) when
    the model is conditional."""
    x = torch.randn(input_shape(cfg, batch), device=dev)
    sigma = torch.rand(batch, device=dev) * 10
    k = cfg.get("label_dim", cfg.get("num_classes", 0)) or 0
    labels = torch.nn.functional.one_hot(torch.arange(batch) % k, k).float().to(dev) if k else None
    return x, sigma, labels


def fwd_bwd(fwd, x, sigma, labels):
    """One forward + backward, the loss mean(D^2), as `vkdistill bench model`'s."""
    d = fwd(x, sigma, labels)
    (d * d).mean().backward()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count())  # all cores, like the Vulkan device
    with open(args.config) as f:
        cfg = json.load(f)
    dev = args.device
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    net, fwd = build_network(cfg)
    net = net.to(dev)
    x, sigma, labels = bench_inputs(cfg, args.batch, dev)
    sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)

    def time_it(fn):
        fn()
        sync()
        best = float("inf")
        for _ in range(args.runs):
            t0 = time.perf_counter()
            fn()
            sync()
            best = min(best, time.perf_counter() - t0)
        return best

    net.eval()  # dropout off, as in vkdistill's evaluation mode
    if dev == "cuda":
        torch.cuda.reset_peak_memory_stats()
    with torch.no_grad():
        t_f = time_it(lambda: fwd(x, sigma, labels))
    peak_f = torch.cuda.max_memory_allocated() if dev == "cuda" else None

    def step():
        fwd_bwd(fwd, x, sigma, labels)

    if dev == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t_b = time_it(step)
    if dev == "cuda":
        peak_b = torch.cuda.max_memory_allocated()
        name = torch.cuda.get_device_name()
    else:
        peak_b = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) * 1024
        name = "CPU, %d threads" % torch.get_num_threads()
    params = sum(p.numel() for p in net.parameters() if p.requires_grad)
    print(json.dumps({"bench": "model", "peer": "pytorch " + torch.__version__, "config": args.config,
                      "device": name, "params": params, "batch": args.batch,
                      "fwd_ms_per_img": round(t_f / args.batch * 1e3, 3),
                      "fwd_bwd_ms_per_img": round(t_b / args.batch * 1e3, 3),
                      "fwd_img_per_s": round(args.batch / t_f, 1), "fwd_bwd_img_per_s": round(args.batch / t_b, 1),
                      "peak_mib_fwd": round(peak_f / 2**20, 1) if peak_f is not None else None,
                      "peak_mib_fwd_bwd": round(peak_b / 2**20, 1)}), flush=True)


if __name__ == "__main__":
    main()
