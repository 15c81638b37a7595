"""EDM's samplers and training loss in float64 PyTorch, for parity with src/diffusion.

Usage: /usr/bin/python3 tools/reference/samplers.py CONFIG.json NOISE.safetensors WEIGHTS.safetensors OUT.safetensors
       [--seed S]

The sampler is EDM's Algorithm 2 (Karras et al. 2022; edm_sampler in NVlabs/edm generate.py),
written from the paper: Karras sigma grid t_i = (smax^(1/rho) + i/(N-1) (smin^(1/rho) - smax^(1/rho)))^rho,
t_N = 0; per step, gamma = min(S_churn/N, sqrt(2)-1) if S_min <= t_i <= S_max else 0,
t_hat = t_i + gamma t_i, x_hat = x + sqrt(t_hat^2 - t_i^2) S_noise eps_i; Euler step with
d = (x_hat - D(x_hat; t_hat)) / t_hat; Heun's correction when t_{i+1} > 0. Every random number comes
from NOISE (written by the C test from the same Philox draws its device makes): x_init (the already
scaled x_0), churn.<i> (eps_i), and for the EDM loss loss.x0, loss.n_sigma, loss.noise.

The network (a models.py architecture) gets random weights (make_parity.randomize_), rounded to
float32 and written to WEIGHTS so both sides evaluate the same function. OUT holds out.<run> for each
run in RUNS, loss (the EDM loss, p_mean -1.2, p_std 1.2) and grad.<param> (its gradient).
"""

import argparse
import json
import math
import os
import sys

import torch

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_parity  # noqa: E402
import models  # noqa: E402
import st  # noqa: E402

# name: (kind, steps, S_churn, S_min, S_max, S_noise) — tests/test_sampler_parity.c runs the same.
RUNS = {
    "euler": ("euler", 18, 0.0, 0.0, math.inf, 1.0),
    "heun": ("heun", 18, 0.0, 0.0, math.inf, 1.0),
    "churn": ("heun", 18, 40.0, 0.05, 50.0, 1.003),
}
SIGMA_MIN, SIGMA_MAX, RHO = 0.002, 80.0, 7.0
P_MEAN, P_STD = -1.2, 1.2


def karras_sigmas(steps, sigma_min=SIGMA_MIN, sigma_max=SIGMA_MAX, rho=RHO):
    i = torch.arange(steps, dtype=torch.float64)
    a, b = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    frac = i / (steps - 1) if steps > 1 else torch.zeros_like(i)
    t = (a + frac * (b - a)) ** rho
    return torch.cat([t, torch.zeros(1, dtype=torch.float64)])


def edm_sample(D, x_init, kind, steps, s_churn, s_min, s_max, s_noise, churn_noise):
    """D(x, sigma) -> denoised; x_init already scaled by sigma_0; churn_noise[i] is step i's eps."""
    t = karras_sigmas(steps)
    x = x_init.clone()
    for i in range(steps):
        t_cur, t_next = t[i].item(), t[i + 1].item()
        gamma = min(s_churn / steps, math.sqrt(2) - 1) if s_min <= t_cur <= s_max else 0.0
        t_hat = t_cur + gamma * t_cur
        x_hat = x
        if s_churn > 0:
            x_hat = x + math.sqrt(t_hat ** 2 - t_cur ** 2) * s_noise * churn_noise[i]
        n = x.shape[0]
        d_cur = (x_hat - D(x_hat, torch.full((n,), t_hat, dtype=x.dtype))) / t_hat
        x_next = x_hat + (t_next - t_hat) * d_cur
        if kind == "heun" and i < steps - 1:
            d_prime = (x_next - D(x_next, torch.full((n,), t_next, dtype=x.dtype))) / t_next
            x_next = x_hat + (t_next - t_hat) * (0.5 * d_cur + 0.5 * d_prime)
        x = x_next
    return x


def edm_loss(D, x0, n_sigma, noise, sigma_data):
    sigma = torch.exp(P_MEAN + P_STD * n_sigma)
    shape = [-1] + [1] * (x0.dim() - 1)
    lam = ((sigma ** 2 + sigma_data ** 2) / (sigma * sigma_data) ** 2).reshape(shape)
    y = x0 + sigma.reshape(shape) * noise
    return (lam * (D(y, sigma) - x0) ** 2).mean()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("config")
    ap.add_argument("noise")
    ap.add_argument("weights")
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=3)
    a = ap.parse_args(argv)
    with open(a.config) as f:
        text = f.read()
    cfg = json.loads(text)
    models.check_config(cfg, a.config)
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    torch.manual_seed(a.seed)
    net, D_fn = models.build_network(cfg)
    make_parity.randomize_(net, torch.Generator().manual_seed(a.seed + 1))
    with torch.no_grad():  # the C side loads float32 weights: use exactly those
        for p in net.parameters():
            p.copy_(p.to(torch.float32).to(p.dtype))
    net = net.double().eval()
    st.save(a.weights, {k: v.detach().to(torch.float32) for k, v in net.state_dict().items()},
            metadata={"config": text, "generator": "tools/reference/samplers.py"})
    noise, _ = st.load_torch(a.noise)
    noise = {k: v.to(torch.float64) for k, v in noise.items()}
    out = {}
    with torch.no_grad():
        D = lambda x, s: D_fn(x, s, None, None)  # noqa: E731
        for name, (kind, steps, sc, smin, smax, sn) in RUNS.items():
            churn = [noise[f"churn.{i}"] for i in range(steps)] if sc > 0 else None
            out[f"out.{name}"] = edm_sample(D, noise["x_init"], kind, steps, sc, smin, smax, sn, churn)
    params = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
    L = edm_loss(lambda x, s: D_fn(x, s, None, None), noise["loss.x0"], noise["loss.n_sigma"], noise["loss.noise"],
                 float(cfg.get("sigma_data", 0.5)))
    grads = torch.autograd.grad(L, [p for _, p in params], allow_unused=True)
    out["loss"] = L.detach().reshape(1)
    for (n, p), g in zip(params, grads):
        out["grad." + n] = g if g is not None else torch.zeros_like(p)
    st.save(a.out, {k: v.detach() for k, v in out.items()}, metadata={"generator": "tools/reference/samplers.py"})
    print(f"{a.out}: runs {', '.join(RUNS)}; loss {L.item():.6g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
