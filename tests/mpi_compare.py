#!/usr/bin/python3
# Compares the tensors of two safetensors files (optionally those under a name
# prefix): prints the largest absolute difference and the largest entry, and
# fails when the difference exceeds --atol (0: must be bit-identical).
import argparse, json, struct, sys

import numpy as np


def load(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    head = json.loads(b[8:8 + n])
    out = {}
    for k, v in head.items():
        if k == "__metadata__":
            continue
        s, e = v["data_offsets"]
        out[k] = np.frombuffer(b[8 + n + s:8 + n + e], dtype=np.float32)
    return out


ap = argparse.ArgumentParser()
ap.add_argument("a")
ap.add_argument("b")
ap.add_argument("--prefix", default="")
ap.add_argument("--atol", type=float, default=0.0)
ap.add_argument("--init", help="a third file: report the difference relative to the change from it")
o = ap.parse_args()
a, b = load(o.a), load(o.b)
keys = [k for k in a if k.startswith(o.prefix)]
if not keys or sorted(keys) != sorted(k for k in b if k.startswith(o.prefix)):
    sys.exit("mpi_compare: the files hold different tensors under '%s'" % o.prefix)
diff = max(float(np.abs(a[k] - b[k]).max()) for k in keys)
big = max(float(np.abs(a[k]).max()) for k in keys)
msg = "%d tensors under '%s': max |a-b| %.3g, max |a| %.3g" % (len(keys), o.prefix, diff, big)
if o.init:
    c = load(o.init)
    moved = max(float(np.abs(a[k] - c[k]).max()) for k in keys)
    msg += ", max change from %s %.3g" % (o.init, moved)
print(msg)
if (o.atol == 0 and diff != 0) or diff > o.atol:
    sys.exit("mpi_compare: %s and %s differ by %.3g (tolerance %g)" % (o.a, o.b, diff, o.atol))
