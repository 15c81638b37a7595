#!/usr/bin/python3
"""PyTorch twin of `vkdistill distill` on an exact Gaussian-mixture teacher (the peer for
tools/gmm_suite.sh, and a fast bench for the student architecture and the loop settings).

  gmm_distill.py GMM.json MLP.json METHOD [--steps N] [--key value ...] [--npz OUT.npz]

Same objectives, reductions and loop as src/distill/objectives.c + src/cli/distill.c: one-step
generator G(z) = D_G(sigma_init z; sigma_init), fake network trained with the EDM loss
(log-normal sigma; DMD2: 1000 discrete Karras levels), `fake_steps` fake updates per generator
update after `fake_warmup` fake-only ones, Adam with (beta1, 0.999) and global-norm clipping,
EMA of G by half-life in kimg. Prints the statistics of tools/gmm_suite.py for the EMA student,
plus `radius_var`: the share of the output variance explained by the length of z (directions
held fixed) -- near 0 when the generator only follows the direction of z.
Runs on the CPU in float32 (one thread).
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import models  # noqa: E402
import gmm_suite  # noqa: E402


class GMM:
    def __init__(self, path):
        self.w, self.mu, self.s = (torch.tensor(a, dtype=torch.float32) for a in gmm_suite.load_gmm(path))

    def denoise(self, x, sigma):
        # D(x; sigma) = sum_k r_k (mu_k + s_k^2/(s_k^2+sigma^2)(x - mu_k))
        d = x.shape[1]
        v = self.s[None] ** 2 + sigma[:, None] ** 2  # (N, K)
        d2 = ((x[:, None] - self.mu[None]) ** 2).sum(-1)
        lp = torch.log(self.w)[None] - 0.5 * d * torch.log(v) - d2 / (2 * v)
        r = torch.softmax(lp, 1)
        shrink = (self.s[None] ** 2 / v)[..., None]
        return (r[..., None] * (self.mu[None] + shrink * (x[:, None] - self.mu[None]))).sum(1)


def karras(t, smin=0.002, smax=80.0, rho=7.0):
    a, b = smin ** (1 / rho), smax ** (1 / rho)
    return (a + t * (b - a)) ** rho


def gen_sigma(c, n):
    if c.method == "dmd2":  # indices 20..980 of 1000 Karras levels
        return karras(torch.randint(20, 981, (n,)).float() / 999)
    return karras(c.t_min + torch.rand(n) * (c.t_max - c.t_min))


def fake_sigma(c, n):
    if c.method == "dmd2":
        return karras(torch.randint(0, 1000, (n,)).float() / 999)
    return torch.exp(c.p_mean + c.p_std * torch.randn(n))


def generator_loss(c, x, teacher, fake):
    n, d = x.shape
    sigma = gen_sigma(c, n)
    xt = x + sigma[:, None] * torch.randn_like(x)
    if c.method in ("dmd2", "diff_instruct"):
        with torch.no_grad():
            dr, df = teacher(xt.detach(), sigma), fake(xt.detach(), sigma)
            if c.method == "dmd2":
                grad = (df - dr) / ((x - dr).abs().mean(1, keepdim=True) + 1e-8)
        if c.method == "dmd2":
            return 0.5 * ((x - (x - grad).detach()) ** 2).sum() / n * c.gen_scale
        return (x * (df - dr)).sum() / n * c.gen_scale
    dr, df = teacher(xt, sigma), fake(xt, sigma)
    w = (x - dr).abs().mean(1).detach() + 1e-8
    y = dr - df
    if c.method == "sid":
        per = (y * ((dr - x) - c.alpha * y)).sum(1) / w
    else:
        dp = y / torch.sqrt((y * y).sum(1, keepdim=True) + c.huber_c ** 2)
        per = (dp * (df - x)).sum(1) / w
    return per.sum() / n * c.gen_scale


def fake_loss(c, x, fake):
    n, d = x.shape
    sigma = fake_sigma(c, n)
    xt = x + sigma[:, None] * torch.randn_like(x)
    lam = 1 / sigma ** 2 + 1 / 0.25
    return (lam[:, None] * (fake(xt, sigma) - x) ** 2).sum() / (n * d) * c.fake_scale


def radius_var(G, d, sigma_init, dirs=256, radii=32):
    u = torch.randn(dirs, d)
    u = u / u.norm(dim=1, keepdim=True)
    from scipy.stats import chi2
    r = torch.sqrt(torch.tensor(chi2.ppf(np.linspace(0.02, 0.98, radii), d), dtype=torch.float32))
    z = (u[:, None] * r[None, :, None]).reshape(-1, d)
    with torch.no_grad():
        x = G(z * sigma_init, torch.full((len(z),), sigma_init)).reshape(dirs, radii, d)
    return float(x.var(1).sum(-1).mean() / x.reshape(-1, d).var(0).sum())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("gmm")
    ap.add_argument("mlp")
    ap.add_argument("method", choices=["sid", "sim", "diff_instruct", "dmd2"])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr_g", type=float, default=5e-4)
    ap.add_argument("--lr_f", type=float, default=1e-3)
    ap.add_argument("--fake_steps", type=int, default=0, help="0: 5 for dmd2, else 1")
    ap.add_argument("--fake_warmup", type=int, default=200)
    ap.add_argument("--sigma_init", type=float, default=0)
    ap.add_argument("--alpha", type=float, default=1.2)
    ap.add_argument("--huber_c", type=float, default=0.1)
    ap.add_argument("--t_min", type=float, default=0.0)
    ap.add_argument("--t_max", type=float, default=0.8)
    ap.add_argument("--p_mean", type=float, default=-1.2)
    ap.add_argument("--p_std", type=float, default=1.2)
    ap.add_argument("--beta1", type=float, default=-1)
    ap.add_argument("--grad_clip", type=float, default=10)
    ap.add_argument("--ema_kimg", type=float, default=8)
    ap.add_argument("--gen_scale", type=float, default=1.0, help="multiplies the generator loss")
    ap.add_argument("--fake_scale", type=float, default=1.0, help="multiplies the fake loss")
    ap.add_argument("--norm", default=None, help="override the MLP's norm")
    ap.add_argument("--hidden", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--npz")
    ap.add_argument("--n", type=int, default=10000)
    c = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(c.seed)
    if not c.sigma_init:
        c.sigma_init = {"dmd2": 80.0, "diff_instruct": 1.0}.get(c.method, 2.5)
    if c.method == "dmd2" and c.t_max == 0.8:
        c.t_min, c.t_max = 0.02, 0.98
    fake_steps = c.fake_steps or (5 if c.method == "dmd2" else 1)
    beta1 = c.beta1 if c.beta1 >= 0 else (0.9 if c.method == "dmd2" else 0.0)
    cfg = json.load(open(c.mlp))
    if c.norm:
        cfg["norm"] = c.norm
    if c.hidden:
        cfg["hidden"] = c.hidden
    teacher = GMM(c.gmm)
    netG, G = models.build_network(cfg)
    netF, F = models.build_network(cfg)
    netE, E = models.build_network(cfg)
    netE.load_state_dict(netG.state_dict())
    wd = 0.01 if c.method == "dmd2" else 0.0
    optG = torch.optim.AdamW(netG.parameters(), lr=c.lr_g, betas=(beta1, 0.999), eps=1e-8, weight_decay=wd)
    optF = torch.optim.AdamW(netF.parameters(), lr=c.lr_f, betas=(beta1, 0.999), eps=1e-8, weight_decay=wd)
    d = teacher.mu.shape[1]
    ema = 0.5 ** (c.batch / (c.ema_kimg * 1000)) if c.ema_kimg > 0 else 0.0

    def sample(net_fn, n):
        z = torch.randn(n, d)
        return net_fn(c.sigma_init * z, torch.full((n,), c.sigma_init))

    def fake_step():
        with torch.no_grad():
            x = sample(G, c.batch)
        optF.zero_grad()
        fake_loss(c, x, F).backward()
        torch.nn.utils.clip_grad_norm_(netF.parameters(), c.grad_clip)
        optF.step()

    for _ in range(c.fake_warmup):
        fake_step()
    for step in range(c.steps):
        for _ in range(fake_steps):
            fake_step()
        netF.requires_grad_(False)
        optG.zero_grad()
        loss = generator_loss(c, sample(G, c.batch), teacher.denoise, F)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(netG.parameters(), c.grad_clip)
        optG.step()
        netF.requires_grad_(True)
        with torch.no_grad():
            for pe, pg in zip(netE.parameters(), netG.parameters()):
                pe.mul_(ema).add_(pg, alpha=1 - ema)
    with torch.no_grad():
        x = sample(E, c.n).numpy().astype(np.float32)
    path = c.npz or "/tmp/gmm_distill_%d.npz" % os.getpid()
    np.savez(path, samples=x)
    out = gmm_suite.evaluate(c.gmm, path)
    if not c.npz:
        os.remove(path)
    out["radius_var"] = radius_var(E, d, c.sigma_init)
    out.pop("weights")
    print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in out.items()}))


if __name__ == "__main__":
    main()
