#!/usr/bin/python3
"""Evaluate one-step students of exact Gaussian-mixture teachers (tools/gmm_suite.sh).

  gmm_suite.py eval GMM.json SAMPLES.npz [--tag T]   one JSON line of statistics
  gmm_suite.py table RESULTS.jsonl                   the method x mixture table

Statistics of N student points (the .npz of `vkdistill sample --npz`) against the mixture
p = sum_k w_k N(mu_k, s_k^2 I):
  weights     each point goes to its most probable component (posterior argmax); the share of
              each component estimates its weight. A mode is *recovered* when its share is at
              least half its weight; "max |dw|" is the largest absolute weight error.
  on_mode     share of points within the 99.7% radius of their component (chi distribution).
  fill (2-D)  per recovered mode: sqrt(smallest eigenvalue of the covariance of its on-mode
              points) / s_k -- about 1 when the mode is filled, near 0 when a thin curve crosses
              it. The table shows the smallest over modes with at least 20 points.
  energy      energy distance 2E|X-Y| - E|X-X'| - E|Y-Y'| between 2000 student points and 2000
              exact samples, with the floor: the same between two independent exact sets.
"""
import json
import sys

import numpy as np


def load_gmm(path):
    c = json.load(open(path))
    w = np.asarray(c["weights"], np.float64)
    return w / w.sum(), np.asarray(c["means"], np.float64), np.asarray(c["stds"], np.float64)


def exact(gmm, n, seed):
    w, mu, s = gmm
    r = np.random.default_rng(seed)
    k = r.choice(len(w), size=n, p=w)
    return mu[k] + s[k, None] * r.standard_normal((n, mu.shape[1]))


def assign(gmm, x):
    w, mu, s = gmm
    d = mu.shape[1]
    d2 = ((x[:, None, :] - mu[None]) ** 2).sum(-1)
    lp = np.log(w)[None] - d * np.log(s)[None] - d2 / (2 * s[None] ** 2)
    k = lp.argmax(1)
    return k, np.sqrt(d2[np.arange(len(x)), k]) / s[k]


def energy(a, b):
    def mean_dist(p, q):
        tot = 0.0
        for i in range(0, len(p), 500):
            tot += np.sqrt(((p[i:i + 500, None, :] - q[None]) ** 2).sum(-1)).sum()
        return tot / (len(p) * len(q))
    return 2 * mean_dist(a, b) - mean_dist(a, a) - mean_dist(b, b)


def chi_radius(d):
    # 99.7% quantile of the chi distribution with d degrees of freedom (Wilson-Hilferty).
    z = 2.748
    return np.sqrt(d * (1 - 2 / (9 * d) + z * np.sqrt(2 / (9 * d))) ** 3)


def evaluate(gmm_path, npz_path):
    gmm = load_gmm(gmm_path)
    w, mu, s = gmm
    x = np.load(npz_path)["samples"].astype(np.float64)
    x = x.reshape(len(x), -1)
    ok = np.isfinite(x).all(1)
    out = {"n": int(len(x)), "nonfinite": int((~ok).sum())}
    x = x[ok]
    k, r = assign(gmm, x)
    share = np.bincount(k, minlength=len(w)) / max(len(x), 1)
    near = r < chi_radius(mu.shape[1])
    out.update(modes=len(w), recovered=int((share >= 0.5 * w).sum()), max_dw=float(np.abs(share - w).max()),
               on_mode=float(near.mean()) if len(x) else 0.0, weights=[round(float(v), 4) for v in share])
    if mu.shape[1] == 2:
        fills = []
        for j in range(len(w)):
            p = x[(k == j) & near]
            if len(p) >= 20:
                fills.append(float(np.sqrt(max(np.linalg.eigvalsh(np.cov(p.T))[0], 0)) / s[j]))
        out["fill_min"] = min(fills) if fills else 0.0
        out["fill_median"] = float(np.median(fills)) if fills else 0.0
    m = min(2000, len(x))
    ref = exact(gmm, 2000, 4242)
    out["energy"] = float(energy(x[:m], ref)) if m else float("nan")
    out["floor"] = float(energy(exact(gmm, m, 777), ref))
    return out


def table(path):
    rows = [json.loads(l) for l in open(path) if l.strip()]
    print("| method | mixture | steps | modes recovered | max weight error | energy distance (exact-vs-exact floor) | on-mode share | mode fill (min / median) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        fill = "%.2f / %.2f" % (r["fill_min"], r["fill_median"]) if "fill_min" in r else "—"
        print("| %s | %s | %s | %d / %d | %.3f | %.4f (%.4f) | %.2f | %s |" % (
            r.get("method", "?"), r.get("mixture", "?"), r.get("steps", "?"), r["recovered"], r["modes"], r["max_dw"], r["energy"],
            r["floor"], r["on_mode"], fill))


def main(argv):
    if len(argv) >= 3 and argv[0] == "eval":
        out = evaluate(argv[1], argv[2])
        for a in argv[3:]:
            key, _, val = a.partition("=")
            out[key.lstrip("-")] = val
        print(json.dumps(out))
        return 0
    if len(argv) == 2 and argv[0] == "table":
        table(argv[1])
        return 0
    print(__doc__.strip().splitlines()[2], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
