#!/usr/bin/env python3
"""PyTorch peer for `vkdistill bench step CONFIG`: the same training iteration, fp32, on the same
machine, timed after warm-up. One JSON line on stdout.

  /usr/bin/python3 tools/bench/step_torch.py CONFIG [--steps N] [--warmup W] [--threads T]
                                             [--device cpu|cuda] [--teacher-model PATH] [--procs N]

--procs N (CPU): N processes, each on its share of the cores with 1/N of the batch, every
iteration started at a barrier: the peer of `mpirun -n N vkdistill bench step CONFIG`, without the
gradient exchange (which favours PyTorch slightly). Each iteration counts as its slowest process.

CONFIG is a `distill` config (has "method") or a `train-teacher` config (has "model" and
"dataset"); paths in it are relative to its folder, else to the working directory (as
vkd_resolve_path does). Defaults are vkdistill's (src/distill/objectives.c vkd_distill_defaults,
src/distill/config.c, src/train/teacher.c).

One distillation iteration (src/distill/distiller.c record_phases / vkd_distiller_step,
src/distill/objectives.c):
  fake phase, fake_steps times:  labels drawn; x = G(z) (no-grad rollout for a few-step student);
      sigma drawn (DMD2: Karras t ~ U(t_min_fake, t_max_fake); else EDM log-normal P_mean -1.2,
      P_std 1.2); x_t = x + sigma n; the EDM-weighted denoising loss of F; backward to F;
      global-norm clip, NaN guard, Adam(W) on F.
  generator phase, once:  labels drawn; x = G(z) with grad; sigma Karras t ~ U(t_min, t_max);
      x_t = x + sigma n; D_real = teacher(x_t), D_fake = F(x_t) with F's weights frozen;
      DMD2 / Diff-Instruct: both under no-grad, the loss reaches G through x only;
      SiD / SiM: the gradient also flows through both networks' inputs (no weight gradients);
      backward to G; clip, NaN guard, Adam(W) on G; EMA of G (always recorded by vkdistill,
      beta 0 without ema_halflife_kimg).
One teacher-training iteration (src/train/teacher.c): a random batch shaped like the dataset's
images (random data: this times the step, not the data loader), random one-hot labels with the
config's label dropout, EDM loss (dropout on), backward, clip, NaN guard, Adam(W), EMA with EDM's
ramp-up.

Networks run as vkdistill runs them: distillation networks without dropout (vkdistill sets train
mode only for teacher training), the teacher frozen. Not modelled: DMD2's GAN head (reported as
"gan": "not modelled"); the dataset reader of train-teacher.

Timing: the MEAN of --steps (alias --iters) timed iterations after --warmup untimed ones (not the
best), each phase timed with perf_counter (CUDA: synchronized at each phase end). Keys as
`vkdistill bench step` prints them: ms_fake_phase is ONE fake step (the iteration runs fake_steps of
them), ms_generator_phase the generator step; a teacher iteration is all "generator phase"
(ms_fake_phase 0). img_per_s = batch / ms_per_iter: generator images per iteration (teacher:
training images). peak_mib: CPU -- growth of the process's peak RSS (getrusage ru_maxrss) from
before the networks were built; CUDA -- torch.cuda.max_memory_allocated over the whole run.

A network teacher whose weights file does not exist yet is timed with random weights
("teacher_weights": "random", as vkdistill does); its model config must exist (a train-teacher
output such as runs/main/teacher/teacher.json may not: --teacher-model names the architecture).
"""
import argparse
import json
import math
import os
import resource
import sys
import time

# libgomp's default spin-waiting makes 2 threads 10-25x slower than 1 on a machine shared with other
# jobs (measured here: ci_sid.json 2808 ms vs 107 ms per iteration); threads that sleep when idle
# are what lavapipe's pool does too. Read by libgomp when torch loads; an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
import models  # noqa: E402
import procs as procs_lib  # noqa: E402  (this script's folder is on sys.path)
import st  # noqa: E402

METHODS = ("dmd2", "sim", "sid", "diff_instruct")


def die(msg):
    print("step_torch: " + msg, file=sys.stderr)
    sys.exit(2)


def resolve(config_path, p):
    """vkd_resolve_path: absolute as is; else relative to the config's folder if it exists there."""
    if os.path.isabs(p):
        return p
    q = os.path.join(os.path.dirname(config_path) or ".", p)
    return q if os.path.exists(q) else p


def load_json(path, what):
    try:
        with open(path) as f:
            return json.load(f)
    except OSError as e:
        die(f"{path}: cannot read the {what}: {e.strerror}")
    except json.JSONDecodeError as e:
        die(f"{path}: the {what} is not valid JSON: {e}")


def num(cfg, key, default, where):
    v = cfg.get(key, default)
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        die(f"{where}: field '{key}': expected a number")
    return float(v)


# ---------------------------------------------------------------------------------------------
# Denoisers: the analytic GMM teacher and networks from tools/reference/models.py


class GMM:
    """p0 = sum_k w_k N(mu_k, s_k^2 I); D(x; sigma) = sum_k r_k (s_k^2 x + sigma^2 mu_k)/(s_k^2 + sigma^2),
    r_k = softmax_k(log w_k - d/2 log v_k - |x - mu_k|^2 / (2 v_k)), v_k = s_k^2 + sigma^2
    (ALGORITHMS.md, src/diffusion/gmm.c). Autograd gives its input gradient (SiD / SiM)."""

    def __init__(self, cfg, path, dev):
        if cfg.get("arch") != "gmm":
            die(f"{path}: field 'arch': expected \"gmm\"")
        if cfg.get("preset") == "ring8":
            a = [2 * math.pi * k / 8 for k in range(8)]
            w, mu, s = [1 / 8] * 8, [[2 * math.cos(t), 2 * math.sin(t)] for t in a], [0.1] * 8
        else:
            try:
                w, mu, s = cfg["weights"], cfg["means"], cfg["stds"]
            except KeyError as e:
                die(f"{path}: missing field '{e.args[0]}'")
            if not (len(w) == len(mu) == len(s)) or not w:
                die(f"{path}: {len(w)} weights, {len(mu)} means and {len(s)} stds (expected one of each per component)")
        d = len(mu[0])
        self.shape = list(cfg.get("shape", [d]))
        if math.prod(self.shape) != d:
            die(f"{path}: field 'shape' has {math.prod(self.shape)} elements but the means have {d}")
        w = torch.tensor(w, dtype=torch.float64)
        self.logw = (w / w.sum()).log().float().to(dev)
        self.mu = torch.tensor(mu, dtype=torch.float32, device=dev)  # (K, d)
        self.mu2 = (self.mu * self.mu).sum(1)  # (K)
        self.var = torch.tensor(s, dtype=torch.float32, device=dev) ** 2  # (K)
        self.d = d
        self.label_dim = 0

    def __call__(self, x, sigma, labels=None):
        n = x.shape[0]
        xf = x.reshape(n, -1)
        s2 = (sigma * sigma).reshape(n, 1)
        v = self.var[None, :] + s2  # (n, K)
        d2 = (xf * xf).sum(1, keepdim=True) - 2 * xf @ self.mu.t() + self.mu2[None, :]
        r = torch.softmax(self.logw[None, :] - 0.5 * self.d * v.log() - 0.5 * d2 / v, dim=1)
        a = (r * self.var[None, :] / v).sum(1, keepdim=True)
        return (a * xf + s2 * ((r / v) @ self.mu)).reshape(x.shape)


class Net:
    """A network denoiser D(x; sigma, labels) built from a models/*.json config."""

    def __init__(self, cfg, path, dev):
        try:
            self.module, self.fwd = models.build_network(cfg)
        except (ValueError, TypeError) as e:
            die(f"{path}: {e}")
        self.module = self.module.to(dev)
        self.cfg = cfg
        self.shape = models.input_shape(cfg, 1)[1:]
        self.label_dim = models.label_count(cfg)
        self.trainable = [p for p in self.module.parameters() if p.requires_grad]  # DiT's pos_embed is not

    def __call__(self, x, sigma, labels=None):
        return self.fwd(x, sigma, labels)

    def params(self):
        return self.trainable

    def set_frozen(self, frozen):
        for p in self.trainable:
            p.requires_grad_(not frozen)


def load_weights(net, path):
    try:
        tensors, _ = st.load_torch(path)
    except (OSError, ValueError) as e:
        die(f"{path}: cannot read the teacher weights: {e}")
    sd = net.module.state_dict()
    missing = [k for k, p in net.module.named_parameters() if k not in tensors]
    if missing:
        die(f"{path}: no tensor '{missing[0]}' (and {len(missing) - 1} more) for the teacher's config")
    for k, t in tensors.items():
        if k in sd and tuple(sd[k].shape) != tuple(t.shape):
            die(f"{path}: tensor '{k}' is {list(t.shape)}, the teacher's config wants {list(sd[k].shape)}")
    net.module.load_state_dict({k: t for k, t in tensors.items() if k in sd}, strict=False)


# ---------------------------------------------------------------------------------------------
# Optimizer step as vkdistill's Adam records it: global-norm clip, NaN guard, Adam(W).


class Opt:
    def __init__(self, params, lr, beta1, beta2, eps, wd, clip, dev):
        self.params = params
        self.clip = clip
        kw = dict(lr=lr, betas=(beta1, beta2), eps=eps, foreach=dev == "cuda")
        # vkdistill: decoupled weight decay (AdamW) when weight_decay > 0
        self.opt = torch.optim.AdamW(params, weight_decay=wd, **kw) if wd > 0 else torch.optim.Adam(params, **kw)

    def step(self, loss):
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        # vkdistill computes the global norm every step (clip 0 = none) and skips the update
        # when it is not finite; the .item() is a sync on CUDA, as vkdistill reads it on the host.
        norm = torch.nn.utils.clip_grad_norm_(self.params, self.clip if self.clip > 0 else float("inf"))
        if math.isfinite(norm.item()):
            self.opt.step()


def ema_update(ema_params, params, beta):
    with torch.no_grad():
        torch._foreach_mul_(ema_params, beta)
        torch._foreach_add_(ema_params, params, alpha=1 - beta)


# ---------------------------------------------------------------------------------------------
# Distillation


def distill_settings(cfg, path):
    """vkd_distiller_cfg_init + vkd_distill_defaults + parse_objective / parse_schedule."""
    m = cfg.get("method")
    if m not in METHODS:
        die(f"{path}: field 'method': expected one of {', '.join(METHODS)}, got {m!r}")
    dmd2 = m == "dmd2"
    s = dict(method=m, alpha=1.2, huber_c=0.1, t_min=0.0, t_max=0.8, sigma_min=0.002, sigma_max=80.0, rho=7.0,
             fake_karras=False, t_min_fake=0.0, t_max_fake=1.0, p_mean=-1.2, p_std=1.2)
    if dmd2:
        s.update(sigma_init=80.0, t_min=0.02, t_max=0.98, fake_karras=True)
    elif m == "diff_instruct":
        s.update(sigma_init=1.0, t_max=1.0)
    else:
        s.update(sigma_init=2.5)
    for k in ("sigma_init", "alpha", "huber_c", "t_min", "t_max", "sigma_min", "sigma_max"):
        s[k] = num(cfg, k, s[k], path)
    s["sigma_data"] = num(cfg, "sigma_data", 0.5, path)
    sw = cfg.get("sim_weight", "sid")
    if sw not in ("sid", "none"):
        die(f"{path}: field 'sim_weight': expected \"sid\" or \"none\"")
    s["sim_weight_sid"] = sw == "sid"
    fs = cfg.get("fake_sigma", "karras" if s["fake_karras"] else "lognormal")
    if fs not in ("karras", "lognormal"):
        die(f"{path}: field 'fake_sigma': expected \"karras\" or \"lognormal\"")
    s["fake_karras"] = fs == "karras"
    ss = cfg.get("student_sigmas")
    if ss:
        if any(not isinstance(v, (int, float)) or v <= 0 for v in ss) or any(b >= a for a, b in zip(ss, ss[1:])):
            die(f"{path}: field 'student_sigmas': expected positive, strictly decreasing sigmas")
        s["sigmas"] = [float(v) for v in ss]
    else:
        s["sigmas"] = [s["sigma_init"]]
    s["batch"] = int(num(cfg, "batch", 64, path))
    s["fake_steps"] = int(num(cfg, "fake_steps", 5 if dmd2 else 1, path))
    s["lr_g"] = num(cfg, "lr_g", 1e-5, path)
    s["lr_f"] = num(cfg, "lr_f", s["lr_g"], path)
    s["beta1"] = num(cfg, "beta1", 0.9 if dmd2 else 0.0, path)
    s["beta2"] = num(cfg, "beta2", 0.999, path)
    s["eps"] = num(cfg, "eps", 1e-8, path)
    s["weight_decay"] = num(cfg, "weight_decay", 0.01 if dmd2 else 0.0, path)
    s["grad_clip"] = num(cfg, "grad_clip", 10, path)
    s["ema_halflife_kimg"] = num(cfg, "ema_halflife_kimg", 0, path)
    s["seed"] = int(num(cfg, "seed", 1, path))
    return s


def karras_sigma(n, t_min, t_max, s, dev):
    """sigma = (a + t (b - a))^rho, t ~ U(t_min, t_max), a = sigma_min^(1/rho), b = sigma_max^(1/rho)."""
    a, b = s["sigma_min"] ** (1 / s["rho"]), s["sigma_max"] ** (1 / s["rho"])
    t = t_min + torch.rand(n, device=dev) * (t_max - t_min)
    return (a + t * (b - a)) ** s["rho"]


def bc(v, x):
    """(N) -> (N, 1, ...) with x's rank."""
    return v.reshape([-1] + [1] * (x.dim() - 1))


def sample_mean_abs(e):
    """mean over a sample's elements of |e|, + 1e-8 (the normalizer of DMD2 and SiD)."""
    return e.abs().reshape(e.shape[0], -1).mean(1) + 1e-8


def rollout(G, z, labels, sigmas, k, grad):
    """vkd_generator_rollout: x0 = G(sigma_0 z; sigma_0); then k re-noise / denoise steps under
    no-grad but the last, which carries the gradient when `grad`."""
    n = z.shape[0]
    with torch.set_grad_enabled(grad and k == 0):
        x0 = G(z * sigmas[0], torch.full((n,), sigmas[0], device=z.device), labels)
    for j in range(1, k + 1):
        with torch.set_grad_enabled(grad and j == k):
            x = x0.detach() + sigmas[j] * torch.randn_like(x0)
            x0 = G(x, torch.full((n,), sigmas[j], device=z.device), labels)
    return x0


def build_distill(cfg, path, args, dev):
    s = distill_settings(cfg, path)
    t = cfg.get("teacher")
    if not isinstance(t, dict):
        die(f"{path}: field 'teacher': needs either 'gmm' or 'model' and 'weights'")
    info = {}
    if "gmm" in t:
        gp = resolve(path, t["gmm"])
        teacher = GMM(load_json(gp, "GMM teacher config"), gp, dev)
        info["teacher_weights"] = "gmm (exact)"
        if "student" not in cfg:
            die(f"{path}: field 'student': a GMM teacher needs a student network config (e.g. models/mlp_2d.json)")
        tm_path = None
    else:
        if "model" not in t:
            die(f"{path}: field 'teacher': needs either 'gmm' or 'model' and 'weights'")
        tm_path = args.teacher_model or resolve(path, t["model"])
        if not os.path.exists(tm_path):
            if not args.teacher_model and not os.path.isabs(tm_path):
                tm_path = os.path.join(os.path.dirname(path) or ".", t["model"])
            die(f"{tm_path}: the teacher's model config does not exist (it is written by train-teacher); "
                "pass --teacher-model models/X.json to time the architecture with random weights")
        teacher = Net(load_json(tm_path, "teacher model config"), tm_path, dev)
        wp = resolve(path, t["weights"]) if "weights" in t else None
        if wp and os.path.exists(wp):
            load_weights(teacher, wp)
            info["teacher_weights"] = "loaded"
        else:
            info["teacher_weights"] = "random"  # timing does not depend on the values
        teacher.module.eval()
        teacher.set_frozen(True)
    sp = resolve(path, cfg["student"]) if "student" in cfg else tm_path
    scfg = load_json(sp, "student model config")
    torch.manual_seed(s["seed"] * 2 + 1)
    G = Net(scfg, sp, dev)
    torch.manual_seed(s["seed"] * 2 + 2)
    F = Net(scfg, sp, dev)
    if G.shape != list(teacher.shape) or G.label_dim != teacher.label_dim:
        die(f"{sp}: the student's samples or labels do not match the teacher's "
            f"({'label_dim differs' if G.shape == list(teacher.shape) else 'sample shapes differ'})")
    init = cfg.get("init", "random" if "gmm" in t else "teacher")
    if init == "teacher":
        if not isinstance(teacher, Net):
            die(f"{path}: field 'init': a GMM teacher has no weights to initialize from; use \"random\"")
        G.module.load_state_dict(teacher.module.state_dict())
        F.module.load_state_dict(teacher.module.state_dict())
    E = Net(scfg, sp, dev)
    E.module.load_state_dict(G.module.state_dict())
    for net in (G, F, E):
        net.module.eval()  # vkdistill distills without dropout
    E.set_frozen(True)
    if "gan" in cfg:
        info["gan"] = "not modelled"
    return s, teacher, G, F, E, info


def make_distill_iteration(s, teacher, G, F, E, dev, timers):
    n, K = s["batch"], G.label_dim
    shape = [n] + list(G.shape)
    sigmas, nsteps = s["sigmas"], len(s["sigmas"])
    opt_f = Opt(F.params(), s["lr_f"], s["beta1"], s["beta2"], s["eps"], s["weight_decay"], s["grad_clip"], dev)
    opt_g = Opt(G.params(), s["lr_g"], s["beta1"], s["beta2"], s["eps"], s["weight_decay"], s["grad_clip"], dev)
    g_params, e_params = G.params(), E.params()
    ema_beta = 0.5 ** (n / (s["ema_halflife_kimg"] * 1000)) if s["ema_halflife_kimg"] > 0 else 0.0
    sd2 = s["sigma_data"] ** 2
    method = s["method"]
    sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)

    def labels():
        if not K:
            return None
        return torch.nn.functional.one_hot(torch.randint(0, K, (n,), device=dev), K).float()

    def fake_step(k):
        lab = labels()
        with torch.no_grad():
            x = rollout(G, torch.randn(shape, device=dev), lab, sigmas, k, False)
        if s["fake_karras"]:
            sigma = karras_sigma(n, s["t_min_fake"], s["t_max_fake"], s, dev)
        else:  # EDM's log-normal sigma
            sigma = (s["p_mean"] + s["p_std"] * torch.randn(n, device=dev)).exp()
        xt = x + torch.randn_like(x) * bc(sigma, x)
        d = F(xt, sigma, lab) - x
        lam = 1 / sd2 + sigma ** -2  # EDM weighting (sigma^2 + sd^2) / (sigma sd)^2
        loss = ((d * d).reshape(n, -1).sum(1) * lam).sum() / x.numel()
        opt_f.step(loss)

    def generator_step(k):
        lab = labels()
        x = rollout(G, torch.randn(shape, device=dev), lab, sigmas, k, True)
        sigma = karras_sigma(n, s["t_min"], s["t_max"], s, dev)
        noise = torch.randn_like(x)
        F.set_frozen(True)  # the frozen view: gradients w.r.t. inputs only
        if method in ("dmd2", "diff_instruct"):
            with torch.no_grad():
                xt = x + noise * bc(sigma, x)
                dr = teacher(xt, sigma, lab)
                diff = F(xt, sigma, lab) - dr
                if method == "dmd2":
                    grad = diff / bc(sample_mean_abs(x - dr), x)
                    target = x - grad
            if method == "dmd2":  # L = 1/2 |x - sg(x - grad)|^2 / N, dL/dx = grad / N
                loss = 0.5 * ((x - target) ** 2).sum() / n
            else:  # Diff-Instruct: sum(sg(D_fake - D_real) x) / N
                loss = (x * diff).sum() / n
        else:
            xt = x + noise * bc(sigma, x)
            dr = teacher(xt, sigma, lab)
            df = F(xt, sigma, lab)
            y = dr - df
            inv_w = 1 / sample_mean_abs((x - dr).detach())
            if method == "sid":  # (D_r - D_f) . ((D_r - x) - alpha (D_r - D_f)) / w
                per = (y * ((dr - x) - s["alpha"] * y)).reshape(n, -1).sum(1) * inv_w
            else:  # SiM: pseudo-Huber d'(y) . (D_f - x)
                dp = y
                if s["huber_c"] > 0:
                    n2 = (y * y).reshape(n, -1).sum(1) + s["huber_c"] ** 2
                    dp = y * bc(n2.rsqrt(), y)
                per = (dp * (df - x)).reshape(n, -1).sum(1)
                if s["sim_weight_sid"]:
                    per = per * inv_w
            loss = per.sum() / n
        opt_g.step(loss)
        F.set_frozen(False)
        ema_update(e_params, g_params, ema_beta)

    def iteration():
        k = int(torch.randint(0, nsteps, ())) if nsteps > 1 else 0  # the student step trained
        t0 = time.perf_counter()
        for _ in range(s["fake_steps"]):
            fake_step(k)
        sync()
        t1 = time.perf_counter()
        generator_step(k)
        sync()
        t2 = time.perf_counter()
        timers.append((t1 - t0, t2 - t1))

    return iteration


# ---------------------------------------------------------------------------------------------
# Teacher training


def build_teacher(cfg, path, dev):
    mp = resolve(path, cfg["model"])
    mcfg = load_json(mp, "model config")
    s = dict(batch=int(num(cfg, "batch", 64, path)), lr=num(cfg, "lr", 1e-3, path),
             beta1=num(cfg, "beta1", 0.9, path), beta2=num(cfg, "beta2", 0.999, path), eps=num(cfg, "eps", 1e-8, path),
             weight_decay=num(cfg, "weight_decay", 0, path), grad_clip=num(cfg, "grad_clip", 0, path),
             ema_halflife_kimg=num(cfg, "ema_halflife_kimg", 500, path), p_mean=num(cfg, "p_mean", -1.2, path),
             p_std=num(cfg, "p_std", 1.2, path), label_dropout=num(cfg, "label_dropout", 0, path),
             seed=int(num(cfg, "seed", 1, path)))
    torch.manual_seed(s["seed"])
    net = Net(mcfg, mp, dev)
    if len(net.shape) != 3:
        die(f"{mp}: train-teacher trains image models; this is a '{mcfg.get('arch')}' model")
    if hasattr(net.module, "model") and hasattr(net.module.model, "label_dropout"):
        net.module.model.label_dropout = 0  # vkdistill drops labels on the host, from the training config
    ema = Net(mcfg, mp, dev)
    ema.module.load_state_dict(net.module.state_dict())
    ema.set_frozen(True)
    net.module.train()  # dropout on, as vkd_model_set_train
    return s, net, ema


def make_teacher_iteration(s, net, ema, dev, timers):
    n, K = s["batch"], net.label_dim
    shape = [n] + list(net.shape)
    opt = Opt(net.params(), s["lr"], s["beta1"], s["beta2"], s["eps"], s["weight_decay"], s["grad_clip"], dev)
    params, e_params = net.params(), ema.params()
    sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
    state = {"step": 0}

    def iteration():
        t0 = time.perf_counter()
        state["step"] += 1
        x0 = torch.randn(shape, device=dev)  # random data of the dataset's shape
        lab = None
        if K:
            lab = torch.nn.functional.one_hot(torch.randint(0, K, (n,), device=dev), K).float()
            if s["label_dropout"] > 0:
                lab = lab * (torch.rand(n, 1, device=dev) >= s["label_dropout"]).float()
        ln_sigma = s["p_mean"] + s["p_std"] * torch.randn(n, device=dev)
        sigma = ln_sigma.exp()
        lam = 4.0 + (-2 * ln_sigma).exp()  # 1/sd^2 + 1/sigma^2 with sd = 0.5 (vkd_edm_loss)
        e = net(x0 + torch.randn_like(x0) * bc(sigma, x0), sigma, lab) - x0
        loss = (e * e * bc(lam, e)).mean(0).sum()  # vkd_mean over the batch of the weighted squares
        opt.step(loss)
        hl = min(s["ema_halflife_kimg"] * 1000, 0.05 * state["step"] * n)  # EDM's ramp-up
        ema_update(e_params, params, 0.5 ** (n / hl) if hl > 0 else 0.0)
        sync()
        timers.append((0.0, time.perf_counter() - t0))

    return iteration


# ---------------------------------------------------------------------------------------------


def build(args, cfg, path, kind, dev, procs):
    """The networks and one iteration's closure; with procs > 1 the batch is this process's share."""
    timers = []
    extra = {}
    if kind == "distill":
        s, teacher, G, F, E, extra = build_distill(cfg, path, args, dev)
        s["batch"] //= procs
        iteration = make_distill_iteration(s, teacher, G, F, E, dev, timers)
        method, fake_steps, gnet = s["method"], s["fake_steps"], G
        if len(s["sigmas"]) > 1:
            extra["student_steps"] = len(s["sigmas"])
    else:
        s, net, ema = build_teacher(cfg, path, dev)
        s["batch"] //= procs
        iteration = make_teacher_iteration(s, net, ema, dev, timers)
        method, fake_steps, gnet = "edm", 0, net
        extra["data"] = "random"
    return s, iteration, timers, method, fake_steps, gnet, extra


def proc_timers(args, cfg, path, kind, rank, procs, barrier, out):
    """One of --procs processes: its core's share of the threads, its share of the batch, every
    iteration started at a barrier (as ranks meet at the gradient exchange, which is not modelled:
    that favours PyTorch slightly). Puts its phase times and its peak RSS growth."""
    procs_lib.pin(rank, procs)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    s, iteration, timers, _, _, _, _ = build(args, cfg, path, kind, "cpu", procs)
    for i in range(args.warmup + args.steps):
        if i == args.warmup:
            timers.clear()
        barrier.wait()
        iteration()
    out.put((rank, list(timers), (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024))


def data_parallel_timers(args, cfg, path, kind):
    """--procs: each timed iteration's phases as the slowest process took them; the largest peak."""
    if num(cfg, "batch", 64, path) % args.procs:
        die("--procs %d does not split the config's batch of %d" % (args.procs, num(cfg, "batch", 64, path)))
    res = procs_lib.run(proc_timers, args.procs, args, cfg, path, kind)
    timers = [max((r[1][i] for r in res), key=sum) for i in range(args.steps)]
    return timers, max(r[2] for r in res)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("config")
    ap.add_argument("--steps", "--iters", type=int, default=10, help="timed iterations (their mean is reported)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed iterations first")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--procs", type=int, default=1,
                    help="CPU: N processes of one core's share of the threads, each 1/N of the batch "
                    "(as `mpirun -n N vkdistill bench step`; no gradient exchange)")
    ap.add_argument("--teacher-model", help="the teacher's model config when the one the config names "
                    "does not exist yet (a train-teacher output); weights are then random")
    args = ap.parse_args()
    if args.steps < 1 or args.warmup < 0 or args.threads < 1 or args.procs < 1:
        die("--steps, --threads and --procs must be >= 1, --warmup >= 0")
    dev = args.device
    if dev == "cuda" and not torch.cuda.is_available():
        print("step_torch: CUDA is not available; timing on the CPU", file=sys.stderr)
        dev = "cpu"
    if args.procs > 1 and dev != "cpu":
        die("--procs is for the CPU")
    torch.set_num_threads(args.threads)
    path = args.config
    cfg = load_json(path, "config")
    if not isinstance(cfg, dict):
        die(f"{path}: expected a JSON object")
    kind = "distill" if "method" in cfg else ("teacher" if "model" in cfg and "dataset" in cfg else None)
    if kind is None:
        die(f"{path}: neither a distill config (field 'method') nor a train-teacher config ('model' and 'dataset')")

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if args.procs > 1:
        timers, peak = data_parallel_timers(args, cfg, path, kind)
        # the networks once more in this process, for the keys below (not timed)
        s, _, _, method, fake_steps, gnet, extra = build(args, cfg, path, kind, "cpu", args.procs)
        s["batch"] *= args.procs
    else:
        s, iteration, timers, method, fake_steps, gnet, extra = build(args, cfg, path, kind, dev, 1)
        if dev == "cuda":
            torch.cuda.reset_peak_memory_stats()
        for _ in range(args.warmup):
            iteration()
        timers.clear()
        for _ in range(args.steps):
            iteration()
        if dev == "cuda":
            peak = torch.cuda.max_memory_allocated() / 2**20
        else:
            peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    # The mean of the timed iterations (not the best): a training run pays every iteration.
    f_ms = 1e3 * sum(t[0] for t in timers) / len(timers)
    g_ms = 1e3 * sum(t[1] for t in timers) / len(timers)
    it_ms = f_ms + g_ms
    if fake_steps:
        f_ms /= fake_steps  # one fake step, as `vkdistill bench step` reports it
    out = {"bench": "step_torch", "config": path, "kind": kind, "method": method, "device": dev,
           "threads": torch.get_num_threads() if args.procs == 1 else max(1, os.cpu_count() // args.procs),
           "procs": args.procs, "batch": s["batch"], "batch_per_proc": s["batch"] // args.procs,
           "fake_steps": fake_steps,
           "params_g": sum(p.numel() for p in gnet.params()), "ms_per_iter": round(it_ms, 3),
           "img_per_s": round(s["batch"] * 1e3 / it_ms, 1),
           "ms_fake_phase": round(f_ms, 3), "ms_generator_phase": round(g_ms, 3),
           "peak_mib": round(peak, 1), "steps": args.steps, "warmup": args.warmup, "timing": "mean",
           "peer": "pytorch " + torch.__version__, "omp_wait_policy": os.environ["OMP_WAIT_POLICY"]}
    out.update(extra)
    if dev == "cuda":
        out["gpu"] = torch.cuda.get_device_name()
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
