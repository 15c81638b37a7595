"""The FID Inception-v3 (2015 TensorFlow graph as ported by pytorch-fid) in PyTorch, and a parity fixture.

Reimplemented from the semantics of torchvision's Inception3 and pytorch-fid's fid_inception_v3
(no aux head, 1008 classes; FIDInceptionA/C/E_1 pool branches: avg_pool2d(3, 1, 1,
count_include_pad=False); FIDInceptionE_2 (Mixed_7c): max_pool2d(3, 1, 1)), with the same
state_dict names (Conv2d_1a_3x3.conv.weight, Conv2d_1a_3x3.bn.running_mean, ...,
Mixed_7c.branch_pool.bn.bias, fc.weight, fc.bias). BasicConv2d = conv (no bias) + BatchNorm
(eps 0.001, eval mode) + ReLU.

Input handling as pytorch-fid's InceptionV3(resize_input=True, normalize_input=True) given images
in [0, 1]: F.interpolate(size=(299, 299), mode='bilinear', align_corners=False), then 2x - 1.
forward() here takes images in [-1, 1] (vkdistill's convention) and maps them to [0, 1] first, so
the numbers are exactly pytorch-fid's for the [0, 1] image (x + 1) / 2.

Usage: /usr/bin/python3 tools/reference/inception.py STATE_DICT.pth FIXTURE.safetensors [--seed S]
            [--batch N] [--size H]
  STATE_DICT.pth      the random weights as a torch state dict (what torch.save(model.state_dict())
                      writes, like pytorch-fid's pt_inception-2015-12-05-6726825d.pth), for
                      tools/convert_inception.py
  FIXTURE.safetensors float64: input.images (N, 3, H, W) in [-1, 1], output.pool3 (N, 2048),
                      output.logits (N, 1008), act.<block> (N, C): the spatial mean of every block's
                      output (to localize a mismatch).

Random weights are float32-representable (drawn in float64, rounded through float32) so a float32
copy of the state dict is the same network; the forward runs in float64 on the CPU:
    conv weights   N(0, 2 / fan_in)         (He: the ReLU net keeps its scale through 94 layers)
    BN gamma       U(0.8, 1.2);  beta 0.1 N(0, 1)
    BN running_mean 0.1 N(0, 1); running_var U(0.5, 2)
    fc             N(0, 1 / 2048); bias 0.1 N(0, 1)
"""

import argparse
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402

BN_EPS = 0.001


class BasicConv2d(nn.Module):
    def __init__(self, cin, cout, kernel_size, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=BN_EPS)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


def avg_pool_branch(x):  # FIDInceptionA / C / E_1
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    def __init__(self, cin, pool_features):
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 64, 1)
        self.branch5x5_1 = BasicConv2d(cin, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, 1)

    def forward(self, x):
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(avg_pool_branch(x))
        return torch.cat([b1, b5, b3, bp], 1)


class InceptionB(nn.Module):
    def __init__(self, cin):
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x):
        b3 = self.branch3x3(x)
        bd = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([b3, bd, F.max_pool2d(x, 3, stride=2)], 1)


class InceptionC(nn.Module):
    def __init__(self, cin, c7):
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 192, 1)
        self.branch7x7_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x):
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = x
        for m in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                  self.branch7x7dbl_5):
            bd = m(bd)
        bp = self.branch_pool(avg_pool_branch(x))
        return torch.cat([b1, b7, bd, bp], 1)


class InceptionD(nn.Module):
    def __init__(self, cin):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x):
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([b3, b7, F.max_pool2d(x, 3, stride=2)], 1)


class InceptionE(nn.Module):
    def __init__(self, cin, max_pool):
        super().__init__()
        self.max_pool = max_pool  # FIDInceptionE_2 (Mixed_7c); else FIDInceptionE_1
        self.branch1x1 = BasicConv2d(cin, 320, 1)
        self.branch3x3_1 = BasicConv2d(cin, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x):
        b1 = self.branch1x1(x)
        t = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(t), self.branch3x3_2b(t)], 1)
        t = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(t), self.branch3x3dbl_3b(t)], 1)
        p = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else avg_pool_branch(x)
        return torch.cat([b1, b3, bd, self.branch_pool(p)], 1)


BLOCKS = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
          "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
          "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c"]


class FIDInception3(nn.Module):
    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = InceptionA(192, 32)
        self.Mixed_5c = InceptionA(256, 64)
        self.Mixed_5d = InceptionA(288, 64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, 128)
        self.Mixed_6c = InceptionC(768, 160)
        self.Mixed_6d = InceptionC(768, 160)
        self.Mixed_6e = InceptionC(768, 192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, max_pool=False)
        self.Mixed_7c = InceptionE(2048, max_pool=True)
        self.fc = nn.Linear(2048, 1008)

    def forward(self, images, acts=None):
        """images (N, 3, H, W) in [-1, 1] -> (pool3 (N, 2048), logits (N, 1008))."""
        x = (images + 1) / 2  # the [0, 1] image pytorch-fid is given
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)  # resize_input
        x = 2 * x - 1  # normalize_input
        for name in BLOCKS:
            x = F.max_pool2d(x, 3, stride=2) if name.startswith("maxpool") else getattr(self, name)(x)
            if acts is not None:
                acts[name] = x.mean(dim=(2, 3))
        pool3 = F.adaptive_avg_pool2d(x, (1, 1)).flatten(1)
        return pool3, self.fc(pool3)  # (dropout is the identity in eval mode)


def randomize_(net, gen):
    def draw(shape):
        return torch.randn(shape, generator=gen, dtype=torch.float64)

    def unif(shape, lo, hi):
        return lo + (hi - lo) * torch.rand(shape, generator=gen, dtype=torch.float64)

    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.weight[0].numel()
                m.weight.copy_(draw(m.weight.shape) * math.sqrt(2.0 / fan_in))
            elif isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(unif(c, 0.8, 1.2))
                m.bias.copy_(0.1 * draw(c))
                m.running_mean.copy_(0.1 * draw(c))
                m.running_var.copy_(unif(c, 0.5, 2.0))
            elif isinstance(m, nn.Linear):
                m.weight.copy_(draw(m.weight.shape) / math.sqrt(m.in_features))
                m.bias.copy_(0.1 * draw(m.out_features))
        for t in list(net.parameters()) + list(net.buffers()):
            if t.is_floating_point():
                t.copy_(t.float().double())  # float32-representable


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("state_dict", help="output: random weights as a torch state dict (.pth)")
    ap.add_argument("fixture", help="output: inputs and expected outputs (.safetensors, float64)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--size", type=int, default=64, help="input height = width (resized to 299)")
    args = ap.parse_args()
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    gen = torch.Generator().manual_seed(args.seed)
    net = FIDInception3().double().eval()
    randomize_(net, gen)
    images = 2 * torch.rand((args.batch, 3, args.size, args.size), generator=gen, dtype=torch.float64) - 1
    images = images.float().double()
    acts = {}
    with torch.no_grad():
        pool3, logits = net(images, acts)
    sd = {k: v.float() for k, v in net.state_dict().items()}  # float32, like pytorch-fid's file
    sd = {k: (v.long() if k.endswith("num_batches_tracked") else v) for k, v in sd.items()}
    tmp = f"{args.state_dict}.tmp.{os.getpid()}"
    torch.save(sd, tmp)
    os.replace(tmp, args.state_dict)
    out = {"input.images": images, "output.pool3": pool3, "output.logits": logits}
    out.update({f"act.{k}": v for k, v in acts.items()})
    st.save(args.fixture, out, metadata={"seed": str(args.seed), "generator": "tools/reference/inception.py"})
    print(f"{args.fixture}: pool3 mean {pool3.mean():.4f} std {pool3.std():.4f}, logits std {logits.std():.4f}; "
          + ", ".join(f"{k} {v.abs().mean():.3g}" for k, v in acts.items()))


if __name__ == "__main__":
    main()
