#!/usr/bin/env python3
"""PyTorch peer for `vkdistill bench gemm`: the same fp32 GEMM shapes, one JSON
line each, on CUDA when available (else CPU). Run with Debian's interpreter:
/usr/bin/python3 tools/bench/gemm_torch.py [--device cpu|cuda] [--shape MxNxK[tA][tB]]..."""
import argparse
import json
import os
import re
import time

import torch


def best_time(fn, sync):
    """Seconds per call of fn: the best of 3 timings of a repetition count grown until one
    timing takes >= 0.2 s, after a warm-up call (also used by conv_torch.py)."""
    fn()  # warm-up
    sync()
    reps = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        sync()
        if time.perf_counter() - t0 >= 0.2:
            break
        reps *= 2
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        sync()
        best = min(best, time.perf_counter() - t0)
    return best / reps


def bench(m, n, k, ta, tb, dev):
    a = torch.randn((k, m) if ta else (m, k), device=dev)
    b = torch.randn((n, k) if tb else (k, n), device=dev)
    a_ = a.t() if ta else a
    b_ = b.t() if tb else b
    sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
    return best_time(lambda: torch.matmul(a_, b_), sync)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--shape", action="append")
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count())  # all cores, like the Vulkan device
    shapes = args.shape or ["256x256x256", "1024x1024x1024", "4096x512x512", "1024x1024x1024tA", "1024x1024x1024tB"]
    name = torch.cuda.get_device_name() if args.device == "cuda" else "CPU, %d threads" % torch.get_num_threads()
    for s in shapes:
        mm = re.fullmatch(r"(\d+)x(\d+)x(\d+)(tA)?(tB)?", s)
        if not mm:
            raise SystemExit("gemm_torch.py: bad --shape '%s' (expected MxNxK[tA][tB])" % s)
        m, n, k = (int(mm.group(i)) for i in (1, 2, 3))
        ta, tb = int(bool(mm.group(4))), int(bool(mm.group(5)))
        t = bench(m, n, k, ta, tb, args.device)
        print(json.dumps({"bench": "gemm", "peer": "pytorch " + torch.__version__, "device": name, "M": m, "N": n,
                          "K": k, "ta": ta, "tb": tb, "ms": round(t * 1e3, 3),
                          "gflops": round(2.0 * m * n * k / t * 1e-9, 2)}), flush=True)


if __name__ == "__main__":
    main()
