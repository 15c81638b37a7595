#!/usr/bin/env python3
"""PyTorch peer for tests/bench_conv: the same fp32 convolution (same positional
arguments), its forward, data gradient and weight gradient timed one by one, one
JSON line each with the GFLOP/s of the forward's GEMM size (2 * Cout/groups *
N*Ho*Wo * Cin/groups*K*K per group, as bench_conv counts). On CUDA when
available, else the CPU on all cores. Run with Debian's interpreter:
/usr/bin/python3 tools/bench/conv_torch.py [N CIN COUT H W K STRIDE PAD GROUPS]"""
import argparse
import json
import os

import torch
import torch.nn.functional as F

from gemm_torch import best_time  # the same timing loop (this script's folder is on sys.path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("shape", nargs="*", type=int, help="N CIN COUT H W K STRIDE PAD GROUPS (default 8 64 64 32 32 3 1 1 1)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    n, cin, cout, h, w, k, s, p, grp = (args.shape + [8, 64, 64, 32, 32, 3, 1, 1, 1][len(args.shape):])[:9]
    if cin % grp or cout % grp:
        raise SystemExit("conv_torch.py: CIN %d and COUT %d must be divisible by GROUPS %d" % (cin, cout, grp))
    torch.set_num_threads(os.cpu_count())  # all cores, like the Vulkan device
    dev = args.device
    sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
    x = torch.randn(n, cin, h, w, device=dev)
    wt = torch.randn(cout, cin // grp, k, k, device=dev)
    y = F.conv2d(x, wt, None, s, p, 1, grp)
    dy = torch.randn_like(y)
    ho, wo = y.shape[2], y.shape[3]
    flop = 2.0 * (cout // grp) * (n * ho * wo) * (cin // grp * k * k) * grp
    ops = {
        "conv2d": lambda: F.conv2d(x, wt, None, s, p, 1, grp),
        "conv2d_bwd_data": lambda: torch.nn.grad.conv2d_input(x.shape, wt, dy, s, p, 1, grp),
        "conv2d_bwd_weight": lambda: torch.nn.grad.conv2d_weight(x, wt.shape, dy, s, p, 1, grp),
    }
    name = torch.cuda.get_device_name() if dev == "cuda" else "CPU, %d threads" % torch.get_num_threads()
    with torch.no_grad():
        for op, fn in ops.items():
            t = best_time(fn, sync)
            print(json.dumps({"bench": op, "peer": "pytorch " + torch.__version__, "device": name, "N": n, "Cin": cin,
                              "Cout": cout, "H": h, "W": w, "k": k, "stride": s, "pad": p, "groups": grp,
                              "ms": round(t * 1e3, 3), "gflops": round(flop / t * 1e-9, 2)}), flush=True)


if __name__ == "__main__":
    main()
