"""PyTorch reference implementations of the networks vkdistill runs on Vulkan.

These modules are the specification the C side must reproduce (the way llm.c checks its kernels
against PyTorch). Parameter and buffer names follow the original sources exactly, so converted
checkpoints load without renaming:

  * SongUNet / EDMPrecond  -- NVlabs/edm training/networks.py (DDPM++ and NCSN++).
  * DiT                    -- facebookresearch/DiT models.py (+ timm's PatchEmbed/Attention/Mlp).
  * MLPDenoiser            -- vkdistill's own residual MLP for low-dimensional toy data.

Everything computes in the dtype of its input (float64 in the parity fixtures). Two places where
the originals force float32 are computed in the input dtype here, so the float64 fixtures hold
the exact mathematical values: EDM's PositionalEmbedding frequencies / attention softmax, and
DiT's timestep embedding (DiT casts t to float32).

EDM preconditioning (sigma_data = 0.5 unless configured):
    c_skip = sd^2/(sigma^2+sd^2), c_out = sigma*sd/sqrt(sigma^2+sd^2), c_in = 1/sqrt(sd^2+sigma^2),
    c_noise = ln(sigma)/4,  D(x; sigma) = c_skip*x + c_out*F(c_in*x, c_noise, labels).
For the UNet, F = SongUNet and the wrapper is the module EDMPrecond (keys prefixed 'model.').
For DiT and the MLP the wrapper is the function edm_precond() (keys keep their own names):
DiT is called with t = 1000*c_noise; the MLP with c_noise.

MLPDenoiser (config {"dim": d, "hidden": H, "depth": L, "emb_dim": E, "label_dim": K, "norm": N}):
    map_noise : positional embedding of c_noise, E channels (E even), no parameters:
                freqs_i = (1/10000)^(i/(E/2 - 1)), i = 0..E/2-1 (endpoint=True);
                map_noise = [cos(c_noise*freqs), sin(c_noise*freqs)]   (cos first, NO swap)
    e         = map_emb(map_noise)                       map_emb: Linear(E, H)
              (+ map_label(onehot))  if K > 0            map_label: Linear(K, H, bias=False),
                                                         one-hot as is (no sqrt(K) scale);
                                                         an all-zero row = unconditional
    emb       = SiLU(e)
    h         = input(x)                                 input: Linear(d, H)
    for i < L:
      h = h + blocks.i.fc2(SiLU(blocks.i.fc1(blocks.i.norm(h)) + blocks.i.emb(emb)))
              norm: LayerNorm(H, eps=1e-5, affine); fc1, emb, fc2: Linear(H, H)
    F         = output(SiLU(out_norm(h)))                out_norm: LayerNorm(H, eps 1e-5, affine);
                                                         output: Linear(H, d)
    Linear(a, b) has weight (b, a) and bias (b): y = x W^T + b.
    norm      = "layer" (default) as above; "none": blocks.i.norm and out_norm are the identity
                and have no parameters (a LayerNorm on input(x) hides the scale of x, which a
                one-step generator's output must follow).
"""

import math

import numpy as np
import torch
import torch.nn.functional as tF
from torch.nn.functional import silu

# ----------------------------------------------------------------------------------------------
# EDM building blocks (names and semantics of NVlabs/edm training/networks.py)


def _edm_weight_init(shape, mode, fan_in, fan_out):
    if mode == "xavier_uniform":
        return math.sqrt(6 / (fan_in + fan_out)) * (torch.rand(*shape) * 2 - 1)
    if mode == "xavier_normal":
        return math.sqrt(2 / (fan_in + fan_out)) * torch.randn(*shape)
    if mode == "kaiming_uniform":
        return math.sqrt(3 / fan_in) * (torch.rand(*shape) * 2 - 1)
    if mode == "kaiming_normal":
        return math.sqrt(1 / fan_in) * torch.randn(*shape)
    raise ValueError(f"invalid init mode {mode!r}")


class Linear(torch.nn.Module):
    """EDM Linear: weight (out, in), optional bias (out); y = x W^T + b."""

    def __init__(self, in_features, out_features, bias=True, init_mode="kaiming_normal",
                 init_weight=1, init_bias=0):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        kw = dict(mode=init_mode, fan_in=in_features, fan_out=out_features)
        self.weight = torch.nn.Parameter(_edm_weight_init([out_features, in_features], **kw) * init_weight)
        self.bias = torch.nn.Parameter(_edm_weight_init([out_features], **kw) * init_bias) if bias else None

    def forward(self, x):
        y = x @ self.weight.to(x.dtype).t()
        if self.bias is not None:
            y = y + self.bias.to(x.dtype)
        return y


class Conv2d(torch.nn.Module):
    """EDM Conv2d with optional up/down-sampling by a separable FIR filter.

    kernel = 0 means resample only (no weight). The buffer `resample_filter` (1, 1, k, k) =
    f f^T / (sum f)^2 exists (and is in the state dict) only when up or down.
      not fused: up   -> depthwise conv_transpose2d(x, 4*filter, stride 2, padding f_pad)
                 down -> depthwise conv2d(x, filter, stride 2, padding f_pad)
                 then conv2d(x, w, padding w_pad)
      fused up  : conv_transpose2d(x, 4*filter, stride 2, padding w_pad+f_pad), then conv2d(x, w) (no pad)
      fused down: conv2d(x, w, padding w_pad+f_pad), then depthwise conv2d(filter, stride 2) (no pad)
    with w_pad = k_w // 2, f_pad = (k_f - 1) // 2; bias added last.
    """

    def __init__(self, in_channels, out_channels, kernel, bias=True, up=False, down=False,
                 resample_filter=[1, 1], fused_resample=False, init_mode="kaiming_normal",
                 init_weight=1, init_bias=0):
        assert not (up and down)
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.up = up
        self.down = down
        self.fused_resample = fused_resample
        kw = dict(mode=init_mode, fan_in=in_channels * kernel * kernel, fan_out=out_channels * kernel * kernel)
        self.weight = torch.nn.Parameter(
            _edm_weight_init([out_channels, in_channels, kernel, kernel], **kw) * init_weight) if kernel else None
        self.bias = torch.nn.Parameter(_edm_weight_init([out_channels], **kw) * init_bias) if kernel and bias else None
        f = torch.as_tensor(resample_filter, dtype=torch.float32)
        f = torch.outer(f, f).unsqueeze(0).unsqueeze(1) / f.sum().square()
        self.register_buffer("resample_filter", f if up or down else None)

    def forward(self, x):
        w = self.weight.to(x.dtype) if self.weight is not None else None
        b = self.bias.to(x.dtype) if self.bias is not None else None
        f = self.resample_filter.to(x.dtype) if self.resample_filter is not None else None
        w_pad = w.shape[-1] // 2 if w is not None else 0
        f_pad = (f.shape[-1] - 1) // 2 if f is not None else 0
        if self.fused_resample and self.up and w is not None:
            x = tF.conv_transpose2d(x, (f * 4).tile([self.in_channels, 1, 1, 1]), groups=self.in_channels,
                                    stride=2, padding=w_pad + f_pad)
            x = tF.conv2d(x, w)
        elif self.fused_resample and self.down and w is not None:
            x = tF.conv2d(x, w, padding=w_pad + f_pad)
            x = tF.conv2d(x, f.tile([self.out_channels, 1, 1, 1]), groups=self.out_channels, stride=2)
        else:
            if self.up:
                x = tF.conv_transpose2d(x, (f * 4).tile([self.in_channels, 1, 1, 1]), groups=self.in_channels,
                                        stride=2, padding=f_pad)
            if self.down:
                x = tF.conv2d(x, f.tile([self.in_channels, 1, 1, 1]), groups=self.in_channels, stride=2,
                              padding=f_pad)
            if w is not None:
                x = tF.conv2d(x, w, padding=w_pad)
        if b is not None:
            x = x + b.reshape(1, -1, 1, 1)
        return x


class GroupNorm(torch.nn.Module):
    """EDM GroupNorm: groups = min(num_groups, C // min_channels_per_group); affine weight/bias (C)."""

    def __init__(self, num_channels, num_groups=32, min_channels_per_group=4, eps=1e-5):
        super().__init__()
        self.num_groups = min(num_groups, num_channels // min_channels_per_group)
        self.eps = eps
        self.weight = torch.nn.Parameter(torch.ones(num_channels))
        self.bias = torch.nn.Parameter(torch.zeros(num_channels))

    def forward(self, x):
        return tF.group_norm(x, num_groups=self.num_groups, weight=self.weight.to(x.dtype),
                             bias=self.bias.to(x.dtype), eps=self.eps)


def _attention_weights(q, k):
    """softmax over keys of q^T k / sqrt(C); q, k (n, C, HW) -> w (n, Q, K).

    EDM computes this in float32 whatever the storage type; here it is computed in
    max(float32, input dtype) so the float64 fixtures hold exact values.
    """
    ct = torch.float64 if q.dtype == torch.float64 else torch.float32
    w = torch.einsum("ncq,nck->nqk", q.to(ct), (k / math.sqrt(k.shape[1])).to(ct)).softmax(dim=2)
    return w.to(q.dtype)


class UNetBlock(torch.nn.Module):
    """EDM UNetBlock (the union of DDPM++, NCSN++ and ADM features)."""

    def __init__(self, in_channels, out_channels, emb_channels, up=False, down=False, attention=False,
                 num_heads=None, channels_per_head=64, dropout=0, skip_scale=1, eps=1e-5,
                 resample_filter=[1, 1], resample_proj=False, adaptive_scale=True,
                 init=dict(), init_zero=dict(init_weight=0), init_attn=None):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.emb_channels = emb_channels
        self.num_heads = 0 if not attention else (num_heads if num_heads is not None
                                                  else out_channels // channels_per_head)
        self.dropout = dropout
        self.skip_scale = skip_scale
        self.adaptive_scale = adaptive_scale

        self.norm0 = GroupNorm(num_channels=in_channels, eps=eps)
        self.conv0 = Conv2d(in_channels, out_channels, kernel=3, up=up, down=down,
                            resample_filter=resample_filter, **init)
        self.affine = Linear(emb_channels, out_channels * (2 if adaptive_scale else 1), **init)
        self.norm1 = GroupNorm(num_channels=out_channels, eps=eps)
        self.conv1 = Conv2d(out_channels, out_channels, kernel=3, **init_zero)
        self.skip = None
        if out_channels != in_channels or up or down:
            kernel = 1 if resample_proj or out_channels != in_channels else 0
            self.skip = Conv2d(in_channels, out_channels, kernel=kernel, up=up, down=down,
                               resample_filter=resample_filter, **init)
        if self.num_heads:
            self.norm2 = GroupNorm(num_channels=out_channels, eps=eps)
            self.qkv = Conv2d(out_channels, out_channels * 3, kernel=1,
                              **(init_attn if init_attn is not None else init))
            self.proj = Conv2d(out_channels, out_channels, kernel=1, **init_zero)

    def forward(self, x, emb):
        orig = x
        x = self.conv0(silu(self.norm0(x)))
        params = self.affine(emb).unsqueeze(2).unsqueeze(3).to(x.dtype)
        if self.adaptive_scale:
            scale, shift = params.chunk(chunks=2, dim=1)
            x = silu(torch.addcmul(shift, self.norm1(x), scale + 1))
        else:
            x = silu(self.norm1(x + params))
        x = self.conv1(tF.dropout(x, p=self.dropout, training=self.training))
        x = x + (self.skip(orig) if self.skip is not None else orig)
        x = x * self.skip_scale
        if self.num_heads:
            # qkv channels are interleaved per head channel: (heads, C/heads, 3) -> q = 3c, k = 3c+1, v = 3c+2
            q, k, v = self.qkv(self.norm2(x)).reshape(
                x.shape[0] * self.num_heads, x.shape[1] // self.num_heads, 3, -1).unbind(2)
            w = _attention_weights(q, k)
            a = torch.einsum("nqk,nck->ncq", w, v)
            x = self.proj(a.reshape(*x.shape)) + x
            x = x * self.skip_scale
        return x


class PositionalEmbedding(torch.nn.Module):
    """[cos(x f), sin(x f)], f_i = (1/max_positions)^(i / (C/2 - endpoint)), i < C/2."""

    def __init__(self, num_channels, max_positions=10000, endpoint=False):
        super().__init__()
        self.num_channels = num_channels
        self.max_positions = max_positions
        self.endpoint = endpoint

    def forward(self, x):
        ct = torch.float64 if x.dtype == torch.float64 else torch.float32
        freqs = torch.arange(start=0, end=self.num_channels // 2, dtype=ct, device=x.device)
        freqs = freqs / (self.num_channels // 2 - (1 if self.endpoint else 0))
        freqs = (1 / self.max_positions) ** freqs
        x = torch.outer(x, freqs.to(x.dtype))
        return torch.cat([x.cos(), x.sin()], dim=1)


class FourierEmbedding(torch.nn.Module):
    """[cos(2 pi x f), sin(2 pi x f)] with the buffer freqs = randn(C/2) * scale."""

    def __init__(self, num_channels, scale=16):
        super().__init__()
        self.register_buffer("freqs", torch.randn(num_channels // 2) * scale)

    def forward(self, x):
        x = torch.outer(x, (2 * np.pi * self.freqs).to(x.dtype))
        return torch.cat([x.cos(), x.sin()], dim=1)


class SongUNet(torch.nn.Module):
    """DDPM++ / NCSN++ U-Net, constructor and names identical to EDM's SongUNet."""

    def __init__(self,
                 img_resolution,
                 in_channels,
                 out_channels,
                 label_dim=0,
                 augment_dim=0,
                 model_channels=128,
                 channel_mult=[1, 2, 2, 2],
                 channel_mult_emb=4,
                 num_blocks=4,
                 attn_resolutions=[16],
                 dropout=0.10,
                 label_dropout=0,
                 embedding_type="positional",
                 channel_mult_noise=1,
                 encoder_type="standard",
                 decoder_type="standard",
                 resample_filter=[1, 1]):
        assert embedding_type in ["fourier", "positional"]
        assert encoder_type in ["standard", "skip", "residual"]
        assert decoder_type in ["standard", "skip"]
        super().__init__()
        self.label_dropout = label_dropout
        emb_channels = model_channels * channel_mult_emb
        noise_channels = model_channels * channel_mult_noise
        init = dict(init_mode="xavier_uniform")
        init_zero = dict(init_mode="xavier_uniform", init_weight=1e-5)
        init_attn = dict(init_mode="xavier_uniform", init_weight=math.sqrt(0.2))
        block_kwargs = dict(emb_channels=emb_channels, num_heads=1, dropout=dropout,
                            skip_scale=math.sqrt(0.5), eps=1e-6, resample_filter=resample_filter,
                            resample_proj=True, adaptive_scale=False,
                            init=init, init_zero=init_zero, init_attn=init_attn)

        # Mapping.
        if embedding_type == "positional":
            self.map_noise = PositionalEmbedding(num_channels=noise_channels, endpoint=True)
        else:
            self.map_noise = FourierEmbedding(num_channels=noise_channels)
        self.map_label = Linear(label_dim, noise_channels, **init) if label_dim else None
        self.map_augment = Linear(augment_dim, noise_channels, bias=False, **init) if augment_dim else None
        self.map_layer0 = Linear(noise_channels, emb_channels, **init)
        self.map_layer1 = Linear(emb_channels, emb_channels, **init)

        # Encoder.
        self.enc = torch.nn.ModuleDict()
        cout = in_channels
        caux = in_channels
        for level, mult in enumerate(channel_mult):
            res = img_resolution >> level
            if level == 0:
                cin = cout
                cout = model_channels
                self.enc[f"{res}x{res}_conv"] = Conv2d(cin, cout, kernel=3, **init)
            else:
                self.enc[f"{res}x{res}_down"] = UNetBlock(cout, cout, down=True, **block_kwargs)
                if encoder_type == "skip":
                    self.enc[f"{res}x{res}_aux_down"] = Conv2d(caux, caux, kernel=0, down=True,
                                                               resample_filter=resample_filter)
                    self.enc[f"{res}x{res}_aux_skip"] = Conv2d(caux, cout, kernel=1, **init)
                if encoder_type == "residual":
                    self.enc[f"{res}x{res}_aux_residual"] = Conv2d(caux, cout, kernel=3, down=True,
                                                                   resample_filter=resample_filter,
                                                                   fused_resample=True, **init)
                    caux = cout
            for idx in range(num_blocks):
                cin = cout
                cout = model_channels * mult
                attn = res in attn_resolutions
                self.enc[f"{res}x{res}_block{idx}"] = UNetBlock(cin, cout, attention=attn, **block_kwargs)
        skips = [block.out_channels for name, block in self.enc.items() if "aux" not in name]

        # Decoder.
        self.dec = torch.nn.ModuleDict()
        for level, mult in reversed(list(enumerate(channel_mult))):
            res = img_resolution >> level
            if level == len(channel_mult) - 1:
                self.dec[f"{res}x{res}_in0"] = UNetBlock(cout, cout, attention=True, **block_kwargs)
                self.dec[f"{res}x{res}_in1"] = UNetBlock(cout, cout, **block_kwargs)
            else:
                self.dec[f"{res}x{res}_up"] = UNetBlock(cout, cout, up=True, **block_kwargs)
            for idx in range(num_blocks + 1):
                cin = cout + skips.pop()
                cout = model_channels * mult
                attn = idx == num_blocks and res in attn_resolutions
                self.dec[f"{res}x{res}_block{idx}"] = UNetBlock(cin, cout, attention=attn, **block_kwargs)
            if decoder_type == "skip" or level == 0:
                if decoder_type == "skip" and level < len(channel_mult) - 1:
                    self.dec[f"{res}x{res}_aux_up"] = Conv2d(out_channels, out_channels, kernel=0, up=True,
                                                             resample_filter=resample_filter)
                self.dec[f"{res}x{res}_aux_norm"] = GroupNorm(num_channels=cout, eps=1e-6)
                self.dec[f"{res}x{res}_aux_conv"] = Conv2d(cout, out_channels, kernel=3, **init_zero)

    def forward(self, x, noise_labels, class_labels, augment_labels=None):
        # Mapping.
        emb = self.map_noise(noise_labels)
        emb = emb.reshape(emb.shape[0], 2, -1).flip(1).reshape(*emb.shape)  # [cos, sin] -> [sin, cos]
        if self.map_label is not None:
            tmp = class_labels
            if self.training and self.label_dropout:
                tmp = tmp * (torch.rand([x.shape[0], 1], device=x.device) >= self.label_dropout).to(tmp.dtype)
            emb = emb + self.map_label(tmp * math.sqrt(self.map_label.in_features))
        if self.map_augment is not None and augment_labels is not None:
            emb = emb + self.map_augment(augment_labels)
        emb = silu(self.map_layer0(emb))
        emb = silu(self.map_layer1(emb))

        # Encoder.
        skips = []
        aux = x
        for name, block in self.enc.items():
            if "aux_down" in name:
                aux = block(aux)
            elif "aux_skip" in name:
                x = skips[-1] = x + block(aux)
            elif "aux_residual" in name:
                x = skips[-1] = aux = (x + block(aux)) / math.sqrt(2)
            else:
                x = block(x, emb) if isinstance(block, UNetBlock) else block(x)
                skips.append(x)

        # Decoder.
        aux = None
        tmp = None
        for name, block in self.dec.items():
            if "aux_up" in name:
                aux = block(aux)
            elif "aux_norm" in name:
                tmp = block(x)
            elif "aux_conv" in name:
                tmp = block(silu(tmp))
                aux = tmp if aux is None else tmp + aux
            else:
                if x.shape[1] != block.in_channels:
                    x = torch.cat([x, skips.pop()], dim=1)
                x = block(x, emb)
        return aux


def edm_coefficients(sigma, sigma_data=0.5):
    """(c_skip, c_out, c_in, c_noise) for sigma of any shape."""
    sd2 = sigma_data ** 2
    c_skip = sd2 / (sigma ** 2 + sd2)
    c_out = sigma * sigma_data / (sigma ** 2 + sd2).sqrt()
    c_in = 1 / (sd2 + sigma ** 2).sqrt()
    c_noise = sigma.log() / 4
    return c_skip, c_out, c_in, c_noise


class EDMPrecond(torch.nn.Module):
    """EDM preconditioning around a SongUNet held as `self.model` (state-dict keys 'model.*').

    forward(x (N,C,H,W), sigma (N,) or scalar, class_labels (N, label_dim) one-hot or None,
    augment_labels (N, augment_dim) or None). class_labels None (or zeros) = unconditional.
    Computes in x's dtype (EDM casts to float32; the float64 fixtures need float64).
    """

    def __init__(self, model, sigma_data=0.5):
        super().__init__()
        self.model = model
        self.sigma_data = sigma_data
        self.label_dim = model.map_label.in_features if model.map_label is not None else 0

    def forward(self, x, sigma, class_labels=None, augment_labels=None):
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1, 1, 1, 1)
        if self.label_dim == 0:
            class_labels = None
        elif class_labels is None:
            class_labels = torch.zeros([1, self.label_dim], dtype=x.dtype, device=x.device)
        else:
            class_labels = class_labels.to(x.dtype).reshape(-1, self.label_dim)
        c_skip, c_out, c_in, c_noise = edm_coefficients(sigma, self.sigma_data)
        F_x = self.model(c_in * x, c_noise.flatten(), class_labels=class_labels, augment_labels=augment_labels)
        return c_skip * x + c_out * F_x


# ----------------------------------------------------------------------------------------------
# DiT (names and semantics of facebookresearch/DiT models.py with timm's layers)


def _modulate(x, shift, scale):
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class PatchEmbed(torch.nn.Module):
    """timm PatchEmbed: proj = Conv2d(C, D, kernel=stride=p); (N,D,h,w) -> (N, h*w, D), row-major tokens."""

    def __init__(self, img_size, patch_size, in_chans, embed_dim, bias=True):
        super().__init__()
        self.img_size = (img_size, img_size)
        self.patch_size = (patch_size, patch_size)
        self.grid_size = (img_size // patch_size, img_size // patch_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.proj = torch.nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size, bias=bias)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(torch.nn.Module):
    """timm Attention: fused qkv Linear(D, 3D, bias) split as (3, heads, D/heads); softmax(q k^T / sqrt(hd)) v; proj."""

    def __init__(self, dim, num_heads=8, qkv_bias=True):
        super().__init__()
        assert dim % num_heads == 0
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.qkv = torch.nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = torch.nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # (B, heads, N, hd)
        attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj(x)


class Mlp(torch.nn.Module):
    """timm Mlp: fc1 -> GELU(tanh approximation) -> fc2."""

    def __init__(self, in_features, hidden_features):
        super().__init__()
        self.fc1 = torch.nn.Linear(in_features, hidden_features)
        self.act = torch.nn.GELU(approximate="tanh")
        self.fc2 = torch.nn.Linear(hidden_features, in_features)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


def timestep_embedding(t, dim, max_period=10000):
    """[cos(t f), sin(t f)], f_i = exp(-ln(max_period) * i / (dim//2)); zero-padded when dim is odd."""
    half = dim // 2
    ct = torch.float64 if t.dtype == torch.float64 else torch.float32
    freqs = torch.exp(-math.log(max_period) * torch.arange(0, half, dtype=ct, device=t.device) / half)
    args = t[:, None].to(ct) * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


class TimestepEmbedder(torch.nn.Module):
    def __init__(self, hidden_size, frequency_embedding_size=256):
        super().__init__()
        self.mlp = torch.nn.Sequential(
            torch.nn.Linear(frequency_embedding_size, hidden_size, bias=True),
            torch.nn.SiLU(),
            torch.nn.Linear(hidden_size, hidden_size, bias=True))
        self.frequency_embedding_size = frequency_embedding_size

    def forward(self, t):
        return self.mlp(timestep_embedding(t, self.frequency_embedding_size).to(self.mlp[0].weight.dtype))


class LabelEmbedder(torch.nn.Module):
    """embedding_table: (num_classes + (dropout_prob > 0), D); row num_classes = the null class."""

    def __init__(self, num_classes, hidden_size, dropout_prob):
        super().__init__()
        use_cfg_embedding = dropout_prob > 0
        self.embedding_table = torch.nn.Embedding(num_classes + use_cfg_embedding, hidden_size)
        self.num_classes = num_classes
        self.dropout_prob = dropout_prob

    def forward(self, labels, train):
        """labels: integer (N,) indices, or float (N, rows) one-hot / soft weights over the rows."""
        if labels.is_floating_point():
            return labels.to(self.embedding_table.weight.dtype) @ self.embedding_table.weight
        if train and self.dropout_prob > 0:
            drop = torch.rand(labels.shape[0], device=labels.device) < self.dropout_prob
            labels = torch.where(drop, torch.full_like(labels, self.num_classes), labels)
        return self.embedding_table(labels)


class DiTBlock(torch.nn.Module):
    def __init__(self, hidden_size, num_heads, mlp_ratio=4.0):
        super().__init__()
        self.norm1 = torch.nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(hidden_size, num_heads=num_heads, qkv_bias=True)
        self.norm2 = torch.nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(hidden_size, int(hidden_size * mlp_ratio))
        self.adaLN_modulation = torch.nn.Sequential(torch.nn.SiLU(),
                                                    torch.nn.Linear(hidden_size, 6 * hidden_size, bias=True))

    def forward(self, x, c):
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.adaLN_modulation(c).chunk(6, dim=1)
        x = x + gate_msa.unsqueeze(1) * self.attn(_modulate(self.norm1(x), shift_msa, scale_msa))
        x = x + gate_mlp.unsqueeze(1) * self.mlp(_modulate(self.norm2(x), shift_mlp, scale_mlp))
        return x


class FinalLayer(torch.nn.Module):
    def __init__(self, hidden_size, patch_size, out_channels):
        super().__init__()
        self.norm_final = torch.nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.linear = torch.nn.Linear(hidden_size, patch_size * patch_size * out_channels, bias=True)
        self.adaLN_modulation = torch.nn.Sequential(torch.nn.SiLU(),
                                                    torch.nn.Linear(hidden_size, 2 * hidden_size, bias=True))

    def forward(self, x, c):
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)
        return self.linear(_modulate(self.norm_final(x), shift, scale))


def get_2d_sincos_pos_embed(embed_dim, grid_size):
    """(grid_size^2, D) float64: token (row h, col w) at index h*grid+w; first D/2 channels encode
    the column w, the last D/2 the row h (MAE/DiT: meshgrid(w, h), "w goes first"); each half is
    [sin(pos*omega), cos(pos*omega)] with omega_i = 1/10000^(i/(D/4)), i < D/4."""
    assert embed_dim % 4 == 0
    gh = np.arange(grid_size, dtype=np.float64)
    gw = np.arange(grid_size, dtype=np.float64)
    grid = np.stack(np.meshgrid(gw, gh), axis=0).reshape(2, -1)  # grid[0] = w, grid[1] = h

    def one_d(dim, pos):
        omega = np.arange(dim // 2, dtype=np.float64) / (dim / 2.0)
        omega = 1.0 / 10000 ** omega
        out = np.outer(pos, omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    return np.concatenate([one_d(embed_dim // 2, grid[0]), one_d(embed_dim // 2, grid[1])], axis=1)


class DiT(torch.nn.Module):
    """Diffusion Transformer with adaLN-Zero, constructor and names identical to facebookresearch/DiT."""

    def __init__(self, input_size=32, patch_size=2, in_channels=4, hidden_size=1152, depth=28,
                 num_heads=16, mlp_ratio=4.0, class_dropout_prob=0.1, num_classes=1000, learn_sigma=True):
        super().__init__()
        self.learn_sigma = learn_sigma
        self.in_channels = in_channels
        self.out_channels = in_channels * 2 if learn_sigma else in_channels
        self.patch_size = patch_size
        self.num_heads = num_heads
        self.num_classes = num_classes
        self.x_embedder = PatchEmbed(input_size, patch_size, in_channels, hidden_size, bias=True)
        self.t_embedder = TimestepEmbedder(hidden_size)
        self.y_embedder = LabelEmbedder(num_classes, hidden_size, class_dropout_prob)
        num_patches = self.x_embedder.num_patches
        self.pos_embed = torch.nn.Parameter(torch.zeros(1, num_patches, hidden_size), requires_grad=False)
        self.blocks = torch.nn.ModuleList([DiTBlock(hidden_size, num_heads, mlp_ratio=mlp_ratio)
                                           for _ in range(depth)])
        self.final_layer = FinalLayer(hidden_size, patch_size, self.out_channels)
        self.initialize_weights()

    def initialize_weights(self):
        def basic(m):
            if isinstance(m, torch.nn.Linear):
                torch.nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    torch.nn.init.constant_(m.bias, 0)
        self.apply(basic)
        pe = get_2d_sincos_pos_embed(self.pos_embed.shape[-1], int(self.x_embedder.num_patches ** 0.5))
        self.pos_embed.data.copy_(torch.from_numpy(pe).to(self.pos_embed.dtype).unsqueeze(0))
        w = self.x_embedder.proj.weight.data
        torch.nn.init.xavier_uniform_(w.view([w.shape[0], -1]))
        torch.nn.init.normal_(self.y_embedder.embedding_table.weight, std=0.02)
        torch.nn.init.normal_(self.t_embedder.mlp[0].weight, std=0.02)
        torch.nn.init.normal_(self.t_embedder.mlp[2].weight, std=0.02)
        for block in self.blocks:
            torch.nn.init.constant_(block.adaLN_modulation[-1].weight, 0)
            torch.nn.init.constant_(block.adaLN_modulation[-1].bias, 0)
        torch.nn.init.constant_(self.final_layer.adaLN_modulation[-1].weight, 0)
        torch.nn.init.constant_(self.final_layer.adaLN_modulation[-1].bias, 0)
        torch.nn.init.constant_(self.final_layer.linear.weight, 0)
        torch.nn.init.constant_(self.final_layer.linear.bias, 0)

    def unpatchify(self, x):
        """(N, T, p*p*C) -> (N, C, H, W); token t = (h, w), channel within a token = (p_row, p_col, c)."""
        c = self.out_channels
        p = self.patch_size
        h = w = int(x.shape[1] ** 0.5)
        assert h * w == x.shape[1]
        x = x.reshape(x.shape[0], h, w, p, p, c)
        x = torch.einsum("nhwpqc->nchpwq", x)
        return x.reshape(x.shape[0], c, h * p, w * p)

    def forward(self, x, t, y):
        """x (N,C,H,W); t (N,) timesteps; y (N,) integer labels (num_classes = null) or (N, rows) one-hot."""
        x = self.x_embedder(x) + self.pos_embed
        t = self.t_embedder(t)
        y = self.y_embedder(y, self.training)
        c = t + y
        for block in self.blocks:
            x = block(x, c)
        x = self.final_layer(x, c)
        return self.unpatchify(x)


DIT_PRESETS = {
    "DiT-XL/2": dict(depth=28, hidden_size=1152, patch_size=2, num_heads=16),
    "DiT-XL/4": dict(depth=28, hidden_size=1152, patch_size=4, num_heads=16),
    "DiT-XL/8": dict(depth=28, hidden_size=1152, patch_size=8, num_heads=16),
    "DiT-L/2": dict(depth=24, hidden_size=1024, patch_size=2, num_heads=16),
    "DiT-L/4": dict(depth=24, hidden_size=1024, patch_size=4, num_heads=16),
    "DiT-L/8": dict(depth=24, hidden_size=1024, patch_size=8, num_heads=16),
    "DiT-B/2": dict(depth=12, hidden_size=768, patch_size=2, num_heads=12),
    "DiT-B/4": dict(depth=12, hidden_size=768, patch_size=4, num_heads=12),
    "DiT-B/8": dict(depth=12, hidden_size=768, patch_size=8, num_heads=12),
    "DiT-S/2": dict(depth=12, hidden_size=384, patch_size=2, num_heads=6),
    "DiT-S/4": dict(depth=12, hidden_size=384, patch_size=4, num_heads=6),
    "DiT-S/8": dict(depth=12, hidden_size=384, patch_size=8, num_heads=6),
}


def dit_expected_shapes(cfg):
    """State-dict name -> shape of DiT(**cfg), computed without building it (for converters)."""
    D, p, C = cfg["hidden_size"], cfg["patch_size"], cfg["in_channels"]
    T = (cfg["input_size"] // p) ** 2
    Cout = 2 * C if cfg.get("learn_sigma", True) else C
    Hm = int(D * cfg.get("mlp_ratio", 4.0))
    rows = cfg["num_classes"] + (1 if cfg.get("class_dropout_prob", 0.1) > 0 else 0)
    s = {"pos_embed": [1, T, D],
         "x_embedder.proj.weight": [D, C, p, p], "x_embedder.proj.bias": [D],
         "t_embedder.mlp.0.weight": [D, 256], "t_embedder.mlp.0.bias": [D],
         "t_embedder.mlp.2.weight": [D, D], "t_embedder.mlp.2.bias": [D],
         "y_embedder.embedding_table.weight": [rows, D]}
    for i in range(cfg["depth"]):
        b = f"blocks.{i}."
        s.update({b + "attn.qkv.weight": [3 * D, D], b + "attn.qkv.bias": [3 * D],
                  b + "attn.proj.weight": [D, D], b + "attn.proj.bias": [D],
                  b + "mlp.fc1.weight": [Hm, D], b + "mlp.fc1.bias": [Hm],
                  b + "mlp.fc2.weight": [D, Hm], b + "mlp.fc2.bias": [D],
                  b + "adaLN_modulation.1.weight": [6 * D, D], b + "adaLN_modulation.1.bias": [6 * D]})
    s.update({"final_layer.linear.weight": [p * p * Cout, D], "final_layer.linear.bias": [p * p * Cout],
              "final_layer.adaLN_modulation.1.weight": [2 * D, D],
              "final_layer.adaLN_modulation.1.bias": [2 * D]})
    return s


# ----------------------------------------------------------------------------------------------
# vkdistill's residual MLP denoiser (specified in the module docstring)


class MLPBlock(torch.nn.Module):
    def __init__(self, hidden, norm="layer"):
        super().__init__()
        self.norm = torch.nn.LayerNorm(hidden, eps=1e-5, elementwise_affine=True) if norm == "layer" else torch.nn.Identity()
        self.fc1 = torch.nn.Linear(hidden, hidden)
        self.emb = torch.nn.Linear(hidden, hidden)
        self.fc2 = torch.nn.Linear(hidden, hidden)

    def forward(self, h, emb):
        return h + self.fc2(silu(self.fc1(self.norm(h)) + self.emb(emb)))


class MLPDenoiser(torch.nn.Module):
    def __init__(self, dim, hidden=128, depth=3, emb_dim=32, label_dim=0, norm="layer"):
        super().__init__()
        assert emb_dim % 2 == 0 and emb_dim >= 4
        assert norm in ("layer", "none"), f"norm: expected 'layer' or 'none', got {norm!r}"
        self.dim = dim
        self.label_dim = label_dim
        self.emb_dim = emb_dim
        self.map_emb = torch.nn.Linear(emb_dim, hidden)
        self.map_label = torch.nn.Linear(label_dim, hidden, bias=False) if label_dim else None
        self.input = torch.nn.Linear(dim, hidden)
        self.blocks = torch.nn.ModuleList([MLPBlock(hidden, norm) for _ in range(depth)])
        self.out_norm = torch.nn.LayerNorm(hidden, eps=1e-5, elementwise_affine=True) if norm == "layer" else torch.nn.Identity()
        self.output = torch.nn.Linear(hidden, dim)

    def map_noise(self, c_noise):
        half = self.emb_dim // 2
        freqs = (1.0 / 10000) ** (torch.arange(half, dtype=torch.float64, device=c_noise.device) / (half - 1))
        a = torch.outer(c_noise, freqs.to(c_noise.dtype))
        return torch.cat([a.cos(), a.sin()], dim=1)

    def forward(self, x, c_noise, class_labels=None):
        e = self.map_emb(self.map_noise(c_noise.to(x.dtype)))
        if self.map_label is not None and class_labels is not None:
            e = e + self.map_label(class_labels.to(x.dtype))
        emb = silu(e)
        h = self.input(x)
        for block in self.blocks:
            h = block(h, emb)
        return self.output(silu(self.out_norm(h)))


# ----------------------------------------------------------------------------------------------
# Functional EDM preconditioning for DiT and the MLP


def edm_precond(net, x, sigma, labels=None, sigma_data=0.5):
    """D(x; sigma) = c_skip x + c_out F(c_in x, ...) for a DiT or an MLPDenoiser.

    DiT: F = net(c_in x, t = 1000 c_noise, y)[:, :in_channels]; labels = integer (N,) indices
         (num_classes = null class), or a float (N, num_classes) one-hot (an all-zero row = null
         class), or a float (N, num_classes + 1) one-hot over the embedding-table rows.
         labels None = null class for every sample.
    MLP: F = net(c_in x, c_noise, onehot); labels (N, label_dim) one-hot or None (= zeros).
    """
    sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1)
    shape = [-1] + [1] * (x.dim() - 1)
    c_skip, c_out, c_in, c_noise = edm_coefficients(sigma.reshape(shape), sigma_data)
    if isinstance(net, DiT):
        y = dit_labels(net, labels, x.shape[0], x.dtype, x.device)
        F_x = net(c_in * x, 1000 * c_noise.flatten(), y)[:, :net.in_channels]
    elif isinstance(net, MLPDenoiser):
        if net.label_dim and labels is not None:
            labels = labels.to(x.dtype).reshape(-1, net.label_dim)
        else:
            labels = None
        F_x = net(c_in * x, c_noise.flatten(), labels)
    else:
        raise TypeError(f"edm_precond: unsupported network {type(net).__name__}")
    return c_skip * x + c_out * F_x


def dit_labels(net, labels, n, dtype, device):
    """Normalize DiT class input to integer indices or a float one-hot over the table rows."""
    rows = net.y_embedder.embedding_table.weight.shape[0]
    if labels is None:
        if rows <= net.num_classes:
            raise ValueError("DiT without a null class (class_dropout_prob 0) needs labels")
        return torch.full([n], net.num_classes, dtype=torch.long, device=device)
    if not labels.is_floating_point():
        return labels.reshape(-1)
    labels = labels.to(dtype).reshape(n, -1)
    if labels.shape[1] == rows:
        return labels
    if labels.shape[1] == net.num_classes and rows == net.num_classes + 1:
        null = 1 - labels.sum(dim=1, keepdim=True)  # all-zero row -> null class
        return torch.cat([labels, null], dim=1)
    raise ValueError(f"DiT labels with {labels.shape[1]} columns; expected {net.num_classes} or {rows}")


# ----------------------------------------------------------------------------------------------
# Configs


UNET_ARGS = ["img_resolution", "in_channels", "out_channels", "label_dim", "augment_dim", "model_channels",
             "channel_mult", "channel_mult_emb", "num_blocks", "attn_resolutions", "dropout", "label_dropout",
             "embedding_type", "channel_mult_noise", "encoder_type", "decoder_type", "resample_filter"]
DIT_ARGS = ["input_size", "patch_size", "in_channels", "hidden_size", "depth", "num_heads", "mlp_ratio",
            "class_dropout_prob", "num_classes", "learn_sigma"]
MLP_ARGS = ["dim", "hidden", "depth", "emb_dim", "label_dim", "norm"]
ARCH_ARGS = {"unet": UNET_ARGS, "dit": DIT_ARGS, "mlp": MLP_ARGS}
UNET_REQUIRED = ["img_resolution", "in_channels", "out_channels"]


def check_config(cfg, where="config"):
    """Raise ValueError naming the field for anything not in the schema."""
    if not isinstance(cfg, dict):
        raise ValueError(f"{where}: expected a JSON object")
    arch = cfg.get("arch")
    if arch not in ARCH_ARGS:
        raise ValueError(f"{where}: field 'arch': expected one of unet, dit, mlp, got {arch!r}")
    allowed = set(ARCH_ARGS[arch]) | {"arch", "sigma_data", "comment"}
    for k in cfg:
        if k not in allowed:
            raise ValueError(f"{where}: unknown field {k!r} for arch {arch!r}")
    sd = cfg.get("sigma_data", 0.5)
    if not isinstance(sd, (int, float)) or sd <= 0:
        raise ValueError(f"{where}: field 'sigma_data': expected a positive number")
    need = UNET_REQUIRED if arch == "unet" else (["dim"] if arch == "mlp" else [])
    for k in need:
        if k not in cfg:
            raise ValueError(f"{where}: missing field {k!r}")


def build_network(cfg):
    """Config dict -> (module whose state_dict is the checkpoint, forward fn D(x, sigma, labels, aug))."""
    check_config(cfg)
    arch = cfg["arch"]
    sd = float(cfg.get("sigma_data", 0.5))
    kw = {k: cfg[k] for k in ARCH_ARGS[arch] if k in cfg}
    if arch == "unet":
        net = EDMPrecond(SongUNet(**kw), sigma_data=sd)
        return net, lambda x, sigma, labels=None, aug=None: net(x, sigma, labels, aug)
    if arch == "dit":
        net = DiT(**kw)
        return net, lambda x, sigma, labels=None, aug=None: edm_precond(net, x, sigma, labels, sd)
    net = MLPDenoiser(**kw)
    return net, lambda x, sigma, labels=None, aug=None: edm_precond(net, x, sigma, labels, sd)


def full_config(cfg):
    """The config with every constructor default filled in (what the C side may expect)."""
    import inspect
    arch = cfg["arch"]
    cls = {"unet": SongUNet, "dit": DiT, "mlp": MLPDenoiser}[arch]
    out = {"arch": arch, "sigma_data": cfg.get("sigma_data", 0.5)}
    sig = inspect.signature(cls.__init__).parameters
    for k in ARCH_ARGS[arch]:
        if k in cfg:
            out[k] = cfg[k]
        elif sig[k].default is not inspect.Parameter.empty:
            d = sig[k].default
            out[k] = list(d) if isinstance(d, list) else d
    return out


def input_shape(cfg, batch):
    arch = cfg["arch"]
    if arch == "unet":
        r = cfg["img_resolution"]
        return [batch, cfg["in_channels"], r, r]
    if arch == "dit":
        r = cfg.get("input_size", 32)
        return [batch, cfg.get("in_channels", 4), r, r]
    return [batch, cfg["dim"]]


def label_count(cfg):
    arch = cfg["arch"]
    if arch == "dit":
        return cfg.get("num_classes", 1000)
    return cfg.get("label_dim", 0)
