"""The --procs runs of model_torch.py and step_torch.py: N processes started together (spawn),
each on its share of the cores, meeting at a shared barrier and putting (rank, result...) on a
queue; as `mpirun -n N` runs vkdistill's ranks on one machine."""
import multiprocessing
import os

import torch


def pin(rank, procs):
    """This process onto every procs-th CPU from its rank (one CPU when there are fewer CPUs than
    processes), with as many of PyTorch's threads."""
    cpus = os.cpu_count()
    os.sched_setaffinity(0, {c for c in range(cpus) if c % procs == rank} or {rank % cpus})
    torch.set_num_threads(max(1, cpus // procs))


def run(target, procs, *args):
    """target(*args, rank, procs, barrier, out) in each of procs processes; what they put, in the
    order they put it."""
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(procs), ctx.Queue()
    ps = [ctx.Process(target=target, args=args + (r, procs, barrier, out)) for r in range(procs)]
    for p in ps:
        p.start()
    res = [out.get() for _ in ps]
    for p in ps:
        p.join()
    return res
