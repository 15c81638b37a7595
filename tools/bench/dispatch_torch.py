#!/usr/bin/python3
"""PyTorch's peer of tests/bench_dispatch: K adds of N-element tensors, independent (the same
inputs into K outputs) and chained (each reads the previous sum), eager mode on the CPU (or
CUDA with --device cuda, synchronized per replay); time of one replay / K, best of 5 x 10.

  dispatch_torch.py [K [N]] [--device cpu|cuda] [--threads T]
"""
import argparse
import json
import time

import torch


def best_of(fn, sync):
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(10):
            fn()
        sync()
        best = min(best, (time.perf_counter() - t0) / 10)
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("k", nargs="?", type=int, default=500)
    ap.add_argument("n", nargs="?", type=int, default=64)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    x, y = torch.randn(a.n, device=dev), torch.randn(a.n, device=dev)

    def independent():
        return [torch.add(x, y) for _ in range(a.k)]

    def chain():
        s = x
        for _ in range(a.k):
            s = torch.add(s, y)
        return s

    with torch.no_grad():
        for name, fn in (("independent", independent), ("chain", chain)):
            fn()
            t = best_of(fn, sync)
            print(json.dumps({"bench": "dispatch_torch", "graph": name, "n": a.n, "ops": a.k, "device": a.device,
                              "threads": a.threads, "ms_per_replay": round(t * 1e3, 3),
                              "us_per_op": round(t * 1e6 / a.k, 2)}))


if __name__ == "__main__":
    main()
