#!/usr/bin/env python3
"""PyTorch peer for `vkdistill bench model`: the same architecture (tools/reference/models.py),
config and batch, fp32, forward and forward+backward time per image and peak memory (CUDA: the
allocator's peak; CPU: the process's peak RSS growth). One JSON line.
--procs N (CPU): N processes of one core's threads each, the batch split among them, as
`mpirun -n N vkdistill bench model` runs (data parallel); every timed run starts together and the
slowest process's time counts. They exchange no gradients (vkdistill's ranks do, in the timed
run), which leaves this side slightly faster than a data-parallel trainer; memory is not measured.
/usr/bin/python3 tools/bench/model_torch.py --config models/unet_fmnist.json --batch 8 [--device cpu|cuda] [--procs N]"""
import argparse
import json
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
from models import build_network, input_shape  # noqa: E402
import procs as procs_lib  # noqa: E402  (this script's folder is on sys.path)


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


def best_median(ts):
    """The best and the median of a list of run times (vkdistill bench model prints both)."""
    t = sorted(ts)
    n = len(t)
    return t[0], (t[n // 2] if n % 2 else 0.5 * (t[n // 2 - 1] + t[n // 2]))


def times_fields(batch, runs, fwd, fwd_bwd):
    """The JSON fields of the forward's and the forward + backward's (best, median) times."""
    return {"fwd_ms_per_img": round(fwd[0] / batch * 1e3, 3), "fwd_bwd_ms_per_img": round(fwd_bwd[0] / batch * 1e3, 3),
            "fwd_img_per_s": round(batch / fwd[0], 1), "fwd_bwd_img_per_s": round(batch / fwd_bwd[0], 1),
            "runs": runs, "fwd_ms_per_img_median": round(fwd[1] / batch * 1e3, 3),
            "fwd_bwd_ms_per_img_median": round(fwd_bwd[1] / batch * 1e3, 3)}


def proc_times(cfg, batch, runs, rank, procs, barrier, out):
    """One of --procs processes: its core's share of the threads, its rows; the time of each run."""
    procs_lib.pin(rank, procs)
    torch.manual_seed(0)
    net, fwd = build_network(cfg)
    net.eval()
    x, sigma, labels = bench_inputs(cfg, batch, "cpu")
    times = []
    for grad, fn in ((torch.no_grad, lambda: fwd(x, sigma, labels)),
                     (torch.enable_grad, lambda: fwd_bwd(fwd, x, sigma, labels))):
        with grad():
            fn()
            ts = []
            for _ in range(runs):
                barrier.wait()
                t0 = time.perf_counter()
                fn()
                ts.append(time.perf_counter() - t0)
        times.append(ts)
    out.put((rank, times))


def data_parallel(args, cfg):
    """--procs: the best and the median over runs of the slowest process's time, forward and forward + backward."""
    if args.batch % args.procs:
        sys.exit("model_torch: --batch %d does not split over %d processes" % (args.batch, args.procs))
    res = procs_lib.run(proc_times, args.procs, cfg, args.batch // args.procs, args.runs)
    t = [best_median([max(r[1][k][i] for r in res) for i in range(args.runs)]) for k in range(2)]
    net, _ = build_network(cfg)
    params = sum(p.numel() for p in net.parameters() if p.requires_grad)
    print(json.dumps({"bench": "model", "peer": "pytorch " + torch.__version__, "config": args.config,
                      "device": "CPU, %d processes of %d threads" % (args.procs, max(1, os.cpu_count() // args.procs)),
                      "params": params, "batch": args.batch, "procs": args.procs,
                      **times_fields(args.batch, args.runs, t[0], t[1]),
                      "peak_mib_fwd": None, "peak_mib_fwd_bwd": None}), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--procs", type=int, default=1)
    args = ap.parse_args()
    with open(args.config) as f:
        cfg = json.load(f)
    if args.procs > 1:
        if args.device != "cpu":
            sys.exit("model_torch: --procs is for the CPU")
        data_parallel(args, cfg)
        return
    torch.set_num_threads(os.cpu_count())  # all cores, like the Vulkan device
    dev = args.device
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    net, fwd = build_network(cfg)
    net = net.to(dev)
    x, sigma, labels = bench_inputs(cfg, args.batch, dev)
    sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)

    def time_it(fn):
        fn()
        sync()
        ts = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            fn()
            sync()
            ts.append(time.perf_counter() - t0)
        return best_median(ts)

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
                      **times_fields(args.batch, args.runs, t_f, t_b),
                      "peak_mib_fwd": round(peak_f / 2**20, 1) if peak_f is not None else None,
                      "peak_mib_fwd_bwd": round(peak_b / 2**20, 1)}), flush=True)


if __name__ == "__main__":
    main()
