#!/usr/bin/python3
"""Reference computations for tests/test_eval_stats.c, with numpy and scipy the
way pytorch-fid, clean-fid and torch-fidelity do them.

usage: eval_stats_ref.py DIR
Reads DIR/in.npz (written by the C test with np.savez-style stored members) and
DIR/in_c.npz (the same arrays, deflated), checks both load identically, and
writes
  DIR/ref.npz            reference statistics, FD, KID, IS, PR numbers
  DIR/np_stored.npz      np.savez of some of the inputs (C must read them back bit for bit)
  DIR/np_compressed.npz  np.savez_compressed of the same
  DIR/bad_*.npz          malformed files the C reader must refuse with one line
"""
import io
import sys
import zipfile

import numpy as np
import scipy.linalg
import scipy.special
from scipy.spatial.distance import cdist


def frechet_pytorch_fid(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """pytorch-fid's calculate_frechet_distance, except that a complex square
    root is reduced to its real part instead of raising (we report the
    imaginary part separately)."""
    diff = mu1 - mu2
    covmean, _ = scipy.linalg.sqrtm(sigma1.dot(sigma2), disp=False)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    imag = float(np.max(np.abs(np.imag(covmean)))) if np.iscomplexobj(covmean) else 0.0
    covmean = np.real(covmean)
    return diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean), imag


def frechet_eig(mu1, sigma1, mu2, sigma2):
    """Tr sqrt(S1 S2) from the (real, clamped) eigenvalues of S1 S2."""
    ev = np.linalg.eigvals(sigma1 @ sigma2)
    tr = np.sum(np.sqrt(np.clip(ev.real, 0, None)))
    d = mu1 - mu2
    return d.dot(d) + np.trace(sigma1) + np.trace(sigma2) - 2 * tr


def frechet_mpmath(x1, x2):
    """The singular case in 40-digit arithmetic (mpmath): what the float64
    answers should be compared with. NaN when mpmath is not installed."""
    try:
        import mpmath as mp
    except ImportError:
        return float("nan")
    mp.mp.dps = 40

    def stats(x):
        x = mp.matrix(x.astype(np.float64).tolist())
        n, d = x.rows, x.cols
        mu = [mp.fsum(x[i, j] for i in range(n)) / n for j in range(d)]
        c = mp.matrix(d, d)
        for i in range(d):
            for j in range(i, d):
                c[i, j] = c[j, i] = mp.fsum((x[r, i] - mu[i]) * (x[r, j] - mu[j]) for r in range(n)) / (n - 1)
        return mu, c

    m1, s1 = stats(x1)
    m2, s2 = stats(x2)
    w, v = mp.eigsy(s1)
    d = s1.rows
    f = mp.matrix(d, d)
    for k in range(d):
        s = mp.sqrt(w[k]) if w[k] > 0 else 0
        for i in range(d):
            f[k, i] = v[i, k] * s
    c = f * s2 * f.T
    tr = mp.fsum(mp.sqrt(e) for e in mp.eigsy((c + c.T) / 2, eigvals_only=True) if e > 0)
    fd = (mp.fsum((m1[i] - m2[i]) ** 2 for i in range(d)) + mp.fsum(s1[i, i] for i in range(d))
          + mp.fsum(s2[i, i] for i in range(d)) - 2 * tr)
    return float(fd)


def kid_on_subsets(x, y, ix, iy):
    """torch-fidelity's unbiased MMD^2 with the cubic kernel, on given subsets."""
    x = x.astype(np.float64)
    y = y.astype(np.float64)
    d = x.shape[1]
    vals = []
    for a, b in zip(ix, iy):
        f1, f2 = x[a], y[b]
        m = f1.shape[0]
        kxx = (f1 @ f1.T / d + 1) ** 3
        kyy = (f2 @ f2.T / d + 1) ** 3
        kxy = (f1 @ f2.T / d + 1) ** 3
        mmd = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.sum() / (m * m)
        vals.append(mmd)
    vals = np.array(vals)
    return vals.mean(), vals.std(), vals


def inception_score(scores, splits, are_probs):
    """torch-fidelity's isc_features_to_metric without the shuffle."""
    s = scores.astype(np.float64)
    if are_probs:
        p = s / s.sum(axis=1, keepdims=True)
        with np.errstate(divide="ignore"):
            logp = np.log(p)
    else:
        logp = s - scipy.special.logsumexp(s, axis=1, keepdims=True)
        p = np.exp(logp)
    n = s.shape[0]
    out = []
    for i in range(splits):
        pc = p[i * n // splits:(i + 1) * n // splits]
        lpc = logp[i * n // splits:(i + 1) * n // splits]
        q = pc.mean(axis=0, keepdims=True)
        with np.errstate(invalid="ignore"):  # 0 * -inf where p = 0: counted as 0
            kl = np.where(pc > 0, pc * (lpc - np.log(q)), 0.0)
        out.append(np.exp(kl.sum(axis=1).mean()))
    return np.mean(out), np.std(out)


def prdc(real, fake, k):
    """Kynkaanniemi et al. precision/recall and Naeem et al. density/coverage,
    with exact (direct) distances and <= for ball membership."""
    real = real.astype(np.float64)
    fake = fake.astype(np.float64)
    rr = np.partition(cdist(real, real), k, axis=1)[:, k]
    rf = np.partition(cdist(fake, fake), k, axis=1)[:, k]
    d = cdist(real, fake)
    inside = d <= rr[:, None]
    precision = inside.any(axis=0).mean()
    recall = (d <= rf[None, :]).any(axis=1).mean()
    density = inside.sum() / (k * fake.shape[0])
    coverage = inside.any(axis=1).mean()
    return np.array([precision, recall, density, coverage])


def raw_member_npz(path, name, data, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression=compression) as z:
        z.writestr(name, data)


def npy_bytes(arr):
    b = io.BytesIO()
    np.lib.format.write_array(b, arr)
    return b.getvalue()


def main():
    out = sys.argv[1]
    a = np.load(f"{out}/in.npz")
    c = np.load(f"{out}/in_c.npz")
    assert sorted(a.files) == sorted(c.files), (a.files, c.files)
    for k in a.files:
        assert a[k].dtype == c[k].dtype and a[k].shape == c[k].shape and np.array_equal(a[k], c[k]), k
    with zipfile.ZipFile(f"{out}/in_c.npz") as z:
        assert z.testzip() is None
    with zipfile.ZipFile(f"{out}/in.npz") as z:
        assert z.testzip() is None
    assert a["A"].dtype == np.float32 and a["ix1"].dtype == np.int64 and a["mu_chk"].dtype == np.float64

    r = {}
    for s in "ABCDE":
        x = a[s].astype(np.float64)
        r[f"mu_{s}"] = x.mean(axis=0)
        r[f"sigma_{s}"] = np.cov(x, rowvar=False)
    r["fd_AB"], r["imag_AB"] = frechet_pytorch_fid(r["mu_A"], r["sigma_A"], r["mu_B"], r["sigma_B"])
    r["fd_AB_eig"] = frechet_eig(r["mu_A"], r["sigma_A"], r["mu_B"], r["sigma_B"])
    r["fd_CD"], r["imag_CD"] = frechet_pytorch_fid(r["mu_C"], r["sigma_C"], r["mu_D"], r["sigma_D"])
    r["fd_CD_eig"] = frechet_eig(r["mu_C"], r["sigma_C"], r["mu_D"], r["sigma_D"])
    r["fd_CD_mp"] = frechet_mpmath(a["C"], a["D"])
    for t in ("1", "2"):
        m, s, v = kid_on_subsets(a["A"], a["B"], a["ix" + t], a["iy" + t])
        r["kid" + t] = np.array([m, s])
        r["kid" + t + "_vals"] = v
    r["is_logits"] = np.array(inception_score(a["logits"], 10, False))
    r["is_logits_odd"] = np.array(inception_score(a["logits"][:997], 10, False))
    r["is_probs"] = np.array(inception_score(a["probs"], 10, True))
    r["pr3"] = prdc(a["real"], a["fake"], 3)
    r["pr5"] = prdc(a["real"], a["fake"], 5)
    np.savez(f"{out}/ref.npz", **r)

    # What numpy writes, for the C reader: float32 features, float64 stats,
    # a Fortran-order array, big-endian and integer members.
    w = dict(A=a["A"], mu=r["mu_A"], sigma=r["sigma_A"],
             fort=np.asfortranarray(a["B"][:7, :5].astype(np.float64)),
             fort3=np.asfortranarray(a["B"][:24].reshape(2, 3, 4, 64)[:, :, :, 0].astype(np.float32)),
             big=a["mu_chk"].astype(">f8"), ints=a["ix1"][0].astype(np.int32), scalar=np.float64(2.5))
    assert w["fort"].flags.f_contiguous and not w["fort"].flags.c_contiguous
    np.savez(f"{out}/np_stored.npz", **w)
    np.savez_compressed(f"{out}/np_compressed.npz", **w)

    # Malformed statistics files.
    mu, sig = r["mu_E"], r["sigma_E"]
    np.savez(f"{out}/bad_missing.npz", mu=mu)
    np.savez(f"{out}/bad_shape.npz", mu=mu, sigma=sig[:, :-1])
    np.savez(f"{out}/bad_mu2d.npz", mu=sig, sigma=sig)
    np.savez(f"{out}/bad_complex.npz", mu=mu.astype(np.complex128), sigma=sig)
    np.savez(f"{out}/bad_object.npz", mu=np.array([1, "x"], dtype=object), sigma=sig)
    np.savez(f"{out}/bad_string.npz", mu=np.array(["abc"]), sigma=sig)
    bad = sig.copy()
    bad[1, 2] = np.nan
    np.savez(f"{out}/bad_nan.npz", mu=mu, sigma=bad)
    raw_member_npz(f"{out}/bad_magic.npz", "mu.npy", b"this is not a .npy file at all")
    short = npy_bytes(mu)
    raw_member_npz(f"{out}/bad_short.npz", "mu.npy", short[:-8])
    hdr = npy_bytes(mu)
    raw_member_npz(f"{out}/bad_header.npz", "mu.npy", hdr.replace(b"'shape': (", b"'shapes': ("))
    raw_member_npz(f"{out}/bad_bzip2.npz", "mu.npy", npy_bytes(mu), zipfile.ZIP_BZIP2)
    print(f"reference: fd_AB {r['fd_AB']:.12g} (sqrtm imag {r['imag_AB']:.2g}), fd_CD {r['fd_CD']:.12g} "
          f"(sqrtm imag {r['imag_CD']:.2g}), fd_CD_eig {r['fd_CD_eig']:.12g}, fd_CD_mpmath {r['fd_CD_mp']:.12g}")


if __name__ == "__main__":
    main()
