#!/usr/bin/python3
"""torch_unet — the PyTorch twin of genlab's DDPM U-Net (include/genlab/unet.h)
and of its diffusion helpers (include/genlab/diffusion.h).

  info:         /usr/bin/python3 tools/torch_unet.py info [--size 28 --ch 32,64,192 --emb 128 --groups 8]
                parameter count, forward FLOPs per image and the per-layer table
  bench:        /usr/bin/python3 tools/torch_unet.py bench --batch 128 --threads 2 --steps 5
                one JSON line: training images per second (forward + backward + Adam lr 1e-4)
  sample-bench: /usr/bin/python3 tools/torch_unet.py sample-bench --n 16 --steps 50 --threads 2
                one JSON line: seconds for a DDIM chain (η = 0, trailing spacing, x̂₀ clamp)
  train:        /usr/bin/python3 tools/torch_unet.py train --epochs 20 --threads 2 [--steps N] [--save F]
                the study recipe (Adam 1e-4, batch 128, T = 4000 cosine, EMA 0.999), for
                comparing losses with genlab

Module names are the checkpoint's tensor names (time.lin1.weight, enc0.conv1.weight,
enc2_attn.qkv.weight, ...). Needs only Debian's python3-torch, python3-numpy, zstd.
"""

import argparse
import copy
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import genlab_torch as gt  # noqa: E402
from torch_vae import openblas_corename, set_threads  # noqa: E402

DEFAULT_CONFIG = {"size": 28, "ch": (32, 64, 192), "emb": 128, "groups": 8}
T_STEPS = 4000
EVAL_SEED = 1234


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- the network

def timestep_embedding(t, dim, dtype=torch.float32):
    """improved-diffusion's timestep_embedding: half = dim/2,
    freq_k = exp(−ln(10000)·k/half), [cos(t·freq), sin(t·freq)].
    Computed in float64 and rounded once to `dtype`: in float32 the argument
    t·freq alone is off by up to ~2e-4 for t near 4000, so a C version that
    works in double must be compared with this one, not a float32 one."""
    assert dim % 2 == 0, dim
    half = dim // 2
    k = torch.arange(half, dtype=torch.float64)
    freqs = torch.exp(-math.log(10000.0) * k / half)
    args = t.to(torch.float64).reshape(-1, 1) * freqs.reshape(1, -1)
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1).to(dtype)


class TimeEmbed(nn.Module):
    """temb = lin2(SiLU(lin1(sinusoid(t, c0))))"""

    def __init__(self, c0, emb):
        super().__init__()
        self.dim = c0
        self.lin1 = nn.Linear(c0, emb)
        self.lin2 = nn.Linear(emb, emb)

    def forward(self, t):
        s = timestep_embedding(t, self.dim, self.lin1.weight.dtype)
        return self.lin2(F.silu(self.lin1(s)))


class ResBlock(nn.Module):
    """h = conv1(SiLU(norm1(x))) + emb(SiLU(temb)) per channel
    h = conv2(SiLU(norm2(h)));  out = h + (x if ci == co else skip(x))"""

    def __init__(self, ci, co, emb, groups):
        super().__init__()
        self.ci, self.co = ci, co
        self.norm1 = nn.GroupNorm(groups, ci)
        self.conv1 = nn.Conv2d(ci, co, 3, padding=1)
        self.emb = nn.Linear(emb, co)
        self.norm2 = nn.GroupNorm(groups, co)
        self.conv2 = nn.Conv2d(co, co, 3, padding=1)
        self.skip = nn.Conv2d(ci, co, 1) if ci != co else None

    def forward(self, x, semb):
        """semb = SiLU(temb), computed once per forward by UNet."""
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(semb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return h + (x if self.skip is None else self.skip(x))


class Attn(nn.Module):
    """Single-head self-attention over the H·W pixels:
    q|k|v = qkv(norm(x)) split along channels as chunk(3, dim=1),
    P = softmax_j(q_i·k_j / √C), a_i = Σ_j P_ij v_j, out = x + proj(a)."""

    def __init__(self, c, groups):
        super().__init__()
        self.c = c
        self.norm = nn.GroupNorm(groups, c)
        self.qkv = nn.Conv2d(c, 3 * c, 1)
        self.proj = nn.Conv2d(c, c, 1)

    def forward(self, x):
        B, C, H, W = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(B, 3 * C, H * W).chunk(3, dim=1)
        w = torch.einsum("bci,bcj->bij", q, k) * (1.0 / math.sqrt(C))
        w = torch.softmax(w, dim=-1)  # over the keys j
        a = torch.einsum("bij,bcj->bci", w, v).reshape(B, C, H, W)
        return x + self.proj(a)


class UNet(nn.Module):
    def __init__(self, size=28, ch=(32, 64, 192), emb=128, groups=8):
        super().__init__()
        c0, c1, c2 = ch
        if size % 4 or size < 4:
            raise ValueError(f"size {size}: must be a positive multiple of 4")
        if any(c % groups for c in ch) or c0 % 2:
            raise ValueError(f"channels {ch}: must be divisible by groups {groups}, c0 even")
        self.size, self.ch, self.emb_dim, self.groups = size, tuple(ch), emb, groups
        # declaration order = state_dict order = unet.h's order
        self.time = TimeEmbed(c0, emb)
        self.conv_in = nn.Conv2d(1, c0, 3, padding=1)
        self.enc0 = ResBlock(c0, c0, emb, groups)
        self.down0 = nn.Conv2d(c0, c0, 3, stride=2, padding=1)
        self.enc1 = ResBlock(c0, c1, emb, groups)
        self.down1 = nn.Conv2d(c1, c1, 3, stride=2, padding=1)
        self.enc2 = ResBlock(c1, c2, emb, groups)
        self.enc2_attn = Attn(c2, groups)
        self.mid = ResBlock(c2, c2, emb, groups)
        self.mid_attn = Attn(c2, groups)
        self.dec2 = ResBlock(2 * c2, c2, emb, groups)
        self.dec2_attn = Attn(c2, groups)
        self.up1 = nn.Conv2d(c2, c1, 3, padding=1)
        self.dec1 = ResBlock(2 * c1, c1, emb, groups)
        self.up0 = nn.Conv2d(c1, c0, 3, padding=1)
        self.dec0 = ResBlock(2 * c0, c0, emb, groups)
        self.norm_out = nn.GroupNorm(groups, c0)
        self.conv_out = nn.Conv2d(c0, 1, 3, padding=1)
        self.zero_init_()

    def config(self):
        return {"size": self.size, "ch": self.ch, "emb": self.emb_dim, "groups": self.groups}

    def zero_names(self):
        """The layers that start at zero (improved-diffusion's zero_module):
        every X.conv2, every X.proj, and conv_out."""
        return [n for n, m in self.named_modules()
                if n == "conv_out" or n.endswith(".conv2") or n.endswith(".proj")]

    @torch.no_grad()
    def zero_init_(self):
        mods = dict(self.named_modules())
        for n in self.zero_names():
            mods[n].weight.zero_()
            mods[n].bias.zero_()

    def forward(self, x, t, acts=None):
        """x [B,1,S,S], t [B] 0-based steps (any dtype). acts: optional dict
        that receives the intermediate tensors (debugging, fixtures)."""
        up = lambda h: F.interpolate(h, scale_factor=2, mode="nearest")  # noqa: E731
        temb = self.time(t)
        semb = F.silu(temb)
        h0 = self.conv_in(x)
        e0 = self.enc0(h0, semb)
        e1 = self.enc1(self.down0(e0), semb)
        e2 = self.enc2_attn(self.enc2(self.down1(e1), semb))
        m = self.mid_attn(self.mid(e2, semb))
        d2 = self.dec2_attn(self.dec2(torch.cat([m, e2], dim=1), semb))
        d1 = self.dec1(torch.cat([self.up1(up(d2)), e1], dim=1), semb)
        d0 = self.dec0(torch.cat([self.up0(up(d1)), e0], dim=1), semb)
        out = self.conv_out(F.silu(self.norm_out(d0)))
        if acts is not None:
            acts.update(temb=temb, h0=h0, e0=e0, e1=e1, e2=e2, m=m, d2=d2, d1=d1, d0=d0)
        return out


def param_count(model):
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------- layer table

def layer_table(size=28, ch=(32, 64, 192), emb=128, groups=8):
    """Analytic rows (name, kind, out_c, out_h, out_w, params, flops) at the
    granularity of UNet's top-level modules. FLOPs = 2 × multiply-adds of
    convs (out pixels × co × ci·k²), linears (in × out) and the attention
    matmuls (q·kᵀ and P·v: N²·C each); biases, norms, activations,
    softmax, up-sampling and adds are not counted (as vae_layers)."""
    c0, c1, c2 = ch
    E, S = emb, size
    S1, S2 = S // 2, S // 4  # Conv2d(k3, s2, p1) of an even side halves it
    rows = []

    def conv(ci, co, k, hw):
        return co * ci * k * k + co, hw * co * ci * k * k

    def lin(i, o):
        return i * o + o, i * o

    def res(ci, co, hw):
        p = m = 0
        for pp, mm in (conv(ci, co, 3, hw), lin(E, co), conv(co, co, 3, hw)):
            p, m = p + pp, m + mm
        p += 2 * ci + 2 * co  # norm1, norm2 affine
        if ci != co:
            pp, mm = conv(ci, co, 1, hw)
            p, m = p + pp, m + mm
        return p, m

    def attn(c, hw):
        p1, m1 = conv(c, 3 * c, 1, hw)
        p2, m2 = conv(c, c, 1, hw)
        return 2 * c + p1 + p2, m1 + m2 + 2 * hw * hw * c

    def row(name, kind, c, s, pm):
        rows.append((name, kind, c, s, s, pm[0], 2.0 * pm[1]))

    p1, m1 = lin(c0, E)
    p2, m2 = lin(E, E)
    rows.append(("time", f"sinusoid {c0}, Linear {c0}→{E}, SiLU, Linear {E}→{E}", E, 1, 1,
                 p1 + p2, 2.0 * (m1 + m2)))
    row("conv_in", f"Conv2d 1→{c0} 3×3 p1", c0, S, conv(1, c0, 3, S * S))
    row("enc0", f"Res {c0}→{c0}", c0, S, res(c0, c0, S * S))
    row("down0", f"Conv2d {c0}→{c0} 3×3 s2 p1", c0, S1, conv(c0, c0, 3, S1 * S1))
    row("enc1", f"Res {c0}→{c1}", c1, S1, res(c0, c1, S1 * S1))
    row("down1", f"Conv2d {c1}→{c1} 3×3 s2 p1", c1, S2, conv(c1, c1, 3, S2 * S2))
    row("enc2", f"Res {c1}→{c2}", c2, S2, res(c1, c2, S2 * S2))
    row("enc2_attn", f"Attn {c2}, N={S2 * S2}", c2, S2, attn(c2, S2 * S2))
    row("mid", f"Res {c2}→{c2}", c2, S2, res(c2, c2, S2 * S2))
    row("mid_attn", f"Attn {c2}, N={S2 * S2}", c2, S2, attn(c2, S2 * S2))
    row("dec2", f"Res {2 * c2}→{c2}", c2, S2, res(2 * c2, c2, S2 * S2))
    row("dec2_attn", f"Attn {c2}, N={S2 * S2}", c2, S2, attn(c2, S2 * S2))
    row("up1", f"↑2, Conv2d {c2}→{c1} 3×3 p1", c1, S1, conv(c2, c1, 3, S1 * S1))
    row("dec1", f"Res {2 * c1}→{c1}", c1, S1, res(2 * c1, c1, S1 * S1))
    row("up0", f"↑2, Conv2d {c1}→{c0} 3×3 p1", c0, S, conv(c1, c0, 3, S * S))
    row("dec0", f"Res {2 * c0}→{c0}", c0, S, res(2 * c0, c0, S * S))
    row("norm_out", f"GroupNorm {groups}×{c0 // groups}, SiLU", c0, S, (2 * c0, 0))
    row("conv_out", f"Conv2d {c0}→1 3×3 p1", 1, S, conv(c0, 1, 3, S * S))
    return rows


def measured_table(model):
    """The same table measured with forward hooks on one image: params from
    the modules, MACs from the actual output shapes. Returns
    {top-level name: (params, flops)} and {leaf name: flops}."""
    leaf = {}
    hooks = []

    def conv_hook(name):
        def f(mod, inp, out):
            k = mod.kernel_size[0] * mod.kernel_size[1]
            leaf[name] = leaf.get(name, 0) + 2.0 * out.numel() * mod.in_channels // mod.groups * k
        return f

    def lin_hook(name):
        def f(mod, inp, out):
            leaf[name] = leaf.get(name, 0) + 2.0 * out.numel() * mod.in_features
        return f

    def attn_hook(name):
        def f(mod, inp, out):
            B, C, H, W = inp[0].shape
            leaf[name + ".matmuls"] = 2.0 * 2 * (H * W) ** 2 * C * B
        return f

    for n, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook(n)))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(lin_hook(n)))
        elif isinstance(m, Attn):
            hooks.append(m.register_forward_hook(attn_hook(n)))
    S = model.size
    with torch.no_grad():
        model(torch.zeros(1, 1, S, S, dtype=next(model.parameters()).dtype), torch.tensor([0]))
    for h in hooks:
        h.remove()
    top = {}
    for n, m in model.named_children():
        fl = sum(v for k, v in leaf.items() if k == n or k.startswith(n + "."))
        top[n] = (sum(p.numel() for p in m.parameters()), fl)
    return top, leaf


def print_table(cfg, out=sys.stdout, detail=True):
    model = UNet(**cfg)
    rows = layer_table(**cfg)
    top, leaf = measured_table(model)
    print(f"U-Net size {cfg['size']} ch {tuple(cfg['ch'])} emb {cfg['emb']} groups {cfg['groups']}",
          file=out)
    print(f"{'layer':10s} {'kind':44s} {'output':>12s} {'params':>10s} {'MFLOPs':>10s}", file=out)
    tp = tf = 0
    for name, kind, c, h, w, p, fl in rows:
        mp, mf = top[name]
        assert mp == p, (name, mp, p)
        assert abs(mf - fl) < 0.5, (name, mf, fl)
        tp += p
        tf += fl
        print(f"{name:10s} {kind:44s} {f'{c}×{h}×{w}':>12s} {p:10d} {fl / 1e6:10.3f}", file=out)
        if detail:
            for k, v in leaf.items():
                if k.startswith(name + "."):
                    print(f"  {k:52s} {'':>12s} {'':>10s} {v / 1e6:10.3f}", file=out)
    assert tp == param_count(model), (tp, param_count(model))
    print(f"{'total':10s} {'':44s} {'':>12s} {tp:10d} {tf / 1e6:10.3f}", file=out)
    print(f"parameters {tp}; forward FLOPs per image {tf:.0f} ({tf / 1e9:.4f} GFLOP, "
          f"2 × multiply-adds)", file=out)
    return tp, tf


# ---------------------------------------------------------------- diffusion

def cosine_schedule(T=T_STEPS, s=0.008, max_beta=0.999):
    """improved-diffusion's cosine schedule in float64: f(u) = cos²((u/T + s)/(1 + s)·π/2),
    β_i = min(1 − f(i+1)/f(i), max_beta), ᾱ_i = Π_{j≤i}(1 − β_j) (the clipped
    product). Returns (beta, alpha_bar) as float64 tensors [T]."""
    def f(u):
        return math.cos((u / T + s) / (1 + s) * math.pi / 2) ** 2
    beta = torch.tensor([min(1.0 - f(i + 1) / f(i), max_beta) for i in range(T)],
                        dtype=torch.float64)
    alpha_bar = torch.cumprod(1.0 - beta, dim=0)
    return beta, alpha_bar


def check_schedule():
    beta, ab = cosine_schedule(4000)
    for got, want, tol in ((beta[0], 9.866e-6, 1e-3), (beta[1999], 7.883e-4, 1e-3),
                           (beta[3998], 0.75, 1e-2), (beta[3999], 0.999, 1e-12),
                           (ab[999], 0.84701, 1e-4), (ab[1999], 0.49384, 1e-4),
                           (ab[2999], 0.14427, 1e-4), (ab[3999], 1.5e-10, 0.1)):
        assert abs(got.item() / want - 1) < tol, (got.item(), want)
    assert int((beta >= 0.999).sum()) == 1


def q_sample(x0, t, eps, alpha_bar):
    """x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·ε, image b at its own step t[b]; the
    coefficients are computed in float64 and rounded to x0's dtype."""
    ab = alpha_bar[t]
    a = ab.sqrt().to(x0.dtype).reshape(-1, 1, 1, 1)
    b = (1.0 - ab).sqrt().to(x0.dtype).reshape(-1, 1, 1, 1)
    return a * x0 + b * eps


def diffusion_loss(model, x0, alpha_bar, gen=None):
    """ε-MSE (mean over all elements), t uniform in [0, T), ε ~ N(0, I)."""
    B = x0.shape[0]
    t = torch.randint(0, alpha_bar.shape[0], (B,), generator=gen)
    eps = torch.randn(x0.shape, generator=gen, dtype=x0.dtype)
    return F.mse_loss(model(q_sample(x0, t, eps, alpha_bar), t), eps)


class EMA:
    """Exponential moving average of the parameters: e ← d·e + (1 − d)·p
    after every optimiser step (from the initial weights, no warm-up)."""

    def __init__(self, model, decay=0.999):
        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model):
        for e, p in zip(self.model.parameters(), model.parameters()):
            e.mul_(self.decay).add_(p.detach(), alpha=1.0 - self.decay)


def trailing_steps(T, K):
    """t[i] = round(T − i·T/K) − 1 for i = 0..K−1, computed exactly in
    integers, rounding halves up (C's round() on the exact value)."""
    if not 1 <= K <= T:
        raise ValueError(f"K = {K} out of 1..{T}")
    t = [(2 * T * (K - i) + K) // (2 * K) - 1 for i in range(K)]
    assert t[0] == T - 1 and all(a > b for a, b in zip(t, t[1:])), t
    return t


@torch.no_grad()
def ddim_sample(model, alpha_bar, n, K, gen=None, eta=0.0, on_step=None):
    """DDIM from x_T ~ N(0, I) over the K trailing steps; x̂₀ clamped to
    [−1, 1] and ε̂ re-derived from it; σ = η·√((1−ᾱ_prev)/(1−ᾱ))·√(1 − ᾱ/ᾱ_prev),
    no noise at the last step. Returns the final images [n,1,S,S] in [−1, 1]."""
    T = alpha_bar.shape[0]
    S = model.size
    ts = trailing_steps(T, K)
    x = torch.randn((n, 1, S, S), generator=gen)
    for i, t in enumerate(ts):
        ab = alpha_bar[t].item()
        ab_prev = alpha_bar[ts[i + 1]].item() if i + 1 < K else 1.0
        eps = model(x, torch.full((n,), t, dtype=torch.long))
        x0 = ((x - math.sqrt(1 - ab) * eps) / math.sqrt(ab)).clamp(-1.0, 1.0)
        eps = (x - math.sqrt(ab) * x0) / math.sqrt(1 - ab)
        sigma = eta * math.sqrt((1 - ab_prev) / (1 - ab)) * math.sqrt(1 - ab / ab_prev)
        x = math.sqrt(ab_prev) * x0 + math.sqrt(max(1 - ab_prev - sigma ** 2, 0.0)) * eps
        if sigma > 0 and i + 1 < K:
            x = x + sigma * torch.randn(x.shape, generator=gen)
        if on_step is not None:
            on_step(i, x, x0)
    return x


# ---------------------------------------------------------------- data

def load_sets(assets):
    """Study-train and study-test images in [−1, 1], [N,1,28,28] float32."""
    m = gt.load_mnist(assets)
    p, tr, te = gt.study_split()
    gt.check_split(p)
    return (gt.to_float(m["train_images"][tr]) * 2 - 1,
            gt.to_float(m["train_images"][te]) * 2 - 1)


def config_from_args(a):
    ch = tuple(int(v) for v in a.ch.split(","))
    if len(ch) != 3:
        raise SystemExit("--ch wants three comma-separated channel counts")
    return {"size": a.size, "ch": ch, "emb": a.emb, "groups": a.groups}


# ---------------------------------------------------------------- commands

def cmd_info(a):
    cfg = config_from_args(a)
    print_table(cfg, detail=a.detail)


def cmd_bench(a):
    set_threads(a.threads)
    cfg = config_from_args(a)
    train_x, _ = load_sets(a.assets)
    torch.manual_seed(0)
    model = UNet(**cfg)
    _, alpha_bar = cosine_schedule(T_STEPS)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    ema = EMA(model, 0.999) if a.ema else None
    g = torch.Generator().manual_seed(0)
    n = train_x.shape[0]
    nb = n // a.batch
    perm = torch.randperm(n, generator=g)
    pos = 0

    def step():
        nonlocal perm, pos
        if pos >= nb:
            perm, pos = torch.randperm(n, generator=g), 0
        xb = train_x.index_select(0, perm[pos * a.batch:(pos + 1) * a.batch])
        pos += 1
        loss = diffusion_loss(model, xb, alpha_bar, g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if ema is not None:
            ema.update(model)
        return loss

    model.train()
    for _ in range(a.warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        loss = step()
    loss.item()
    dt = time.perf_counter() - t0
    out = {"model": "unet", "threads": torch.get_num_threads(), "batch": a.batch,
           "images_per_second": a.steps * a.batch / dt, "torch_version": torch.__version__,
           "blas_core": os.environ.get("OPENBLAS_CORETYPE", ""),
           "steps": a.steps, "warmup": a.warmup, "seconds": dt, "ema": bool(a.ema),
           "params": param_count(model), "config": model.config(),
           "openblas_corename": openblas_corename(),
           "mkldnn": bool(torch.backends.mkldnn.is_available())}
    print(json.dumps(out), flush=True)


def load_weights(model, path):
    tensors, meta = gt.read_safetensors_zst(path)
    sd = model.state_dict()
    missing = [k for k in sd if k not in tensors]
    if missing:
        raise SystemExit(f"{path}: missing tensors {missing[:5]}...")
    model.load_state_dict({k: tensors[k] for k in sd})
    return meta


def write_pgm(path, imgs, cols=None):
    """imgs [n,1,S,S] in [−1, 1] → one binary PGM grid."""
    n, _, S, _ = imgs.shape
    cols = cols or int(math.ceil(math.sqrt(n)))
    rows = (n + cols - 1) // cols
    grid = np.zeros((rows * S, cols * S), dtype=np.uint8)
    px = ((imgs[:, 0].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
    for i in range(n):
        r, c = divmod(i, cols)
        grid[r * S:(r + 1) * S, c * S:(c + 1) * S] = px[i]
    with open(path, "wb") as f:
        f.write(f"P5 {grid.shape[1]} {grid.shape[0]} 255\n".encode() + grid.tobytes())


def cmd_sample_bench(a):
    set_threads(a.threads)
    cfg = config_from_args(a)
    torch.manual_seed(0)
    model = UNet(**cfg)
    if a.checkpoint:
        load_weights(model, a.checkpoint)
    else:
        # zero-initialised branch ends make ε̂ ≡ 0; that costs the same, but
        # give the output layer weights so the chain does real arithmetic
        with torch.no_grad():
            for n in model.zero_names():
                m = dict(model.named_modules())[n]
                nn.init.normal_(m.weight, std=0.02)
    model.eval()
    _, alpha_bar = cosine_schedule(a.T)
    g = torch.Generator().manual_seed(a.seed)
    # one untimed model call (allocator, thread pool)
    with torch.no_grad():
        model(torch.zeros(a.n, 1, model.size, model.size), torch.zeros(a.n, dtype=torch.long))
    t0 = time.perf_counter()
    x = ddim_sample(model, alpha_bar, a.n, a.steps, g, eta=a.eta)
    dt = time.perf_counter() - t0
    if a.pgm:
        write_pgm(a.pgm, x)
    out = {"model": "unet", "sampler": "ddim", "eta": a.eta, "n": a.n, "steps": a.steps,
           "T": a.T, "threads": torch.get_num_threads(), "seconds": dt,
           "seconds_per_step": dt / a.steps, "images_per_second": a.n / dt,
           "checkpoint": a.checkpoint or "", "torch_version": torch.__version__,
           "blas_core": os.environ.get("OPENBLAS_CORETYPE", ""),
           "openblas_corename": openblas_corename()}
    print(json.dumps(out), flush=True)


@torch.no_grad()
def eval_loss(model, x, alpha_bar, seed=EVAL_SEED, batch=500):
    """ε-MSE per element over x with t and ε from a generator seeded `seed`."""
    was = model.training
    model.eval()
    g = torch.Generator().manual_seed(seed)
    tot = 0.0
    for s in range(0, x.shape[0], batch):
        xb = x[s:s + batch]
        tot += diffusion_loss(model, xb, alpha_bar, g).item() * xb.shape[0]
    model.train(was)
    return tot / x.shape[0]


def cmd_train(a):
    set_threads(a.threads)
    cfg = config_from_args(a)
    train_x, test_x = load_sets(a.assets)
    if a.eval_n:
        test_x = test_x[:a.eval_n]
    torch.manual_seed(a.seed)
    model = UNet(**cfg)
    params = param_count(model)
    beta, alpha_bar = cosine_schedule(a.T)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    ema = EMA(model, a.ema)
    g_shuffle = torch.Generator().manual_seed(a.seed)
    g_noise = torch.Generator().manual_seed(a.seed + 1)
    n = train_x.shape[0]
    log(f"torch_unet train: params={params} config={cfg} T={a.T} epochs={a.epochs} "
        f"batch={a.batch} lr={a.lr} ema={a.ema} seed={a.seed} threads={torch.get_num_threads()}")
    model.train()
    step = 0
    train_seconds = 0.0
    images = 0
    epochs_run = 0
    train_loss = float("nan")
    for epoch in range(1, a.epochs + 1):
        perm = torch.randperm(n, generator=g_shuffle)
        t0 = time.perf_counter()
        tot = 0.0
        seen = 0
        for s in range(0, n, a.batch):
            if a.steps is not None and step >= a.steps:
                break
            xb = train_x.index_select(0, perm[s:s + a.batch])
            loss = diffusion_loss(model, xb, alpha_bar, g_noise)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            ema.update(model)
            tot += loss.item() * xb.shape[0]
            seen += xb.shape[0]
            step += 1
            if a.log_every and step % a.log_every == 0:
                log(f"  step {step}  loss {loss.item():.5f}  "
                    f"{seen / (time.perf_counter() - t0):.1f} img/s")
        dt = time.perf_counter() - t0
        train_seconds += dt
        images += seen
        epochs_run += 1
        train_loss = tot / max(seen, 1)
        log(f"epoch {epoch:2d}/{a.epochs}  train loss {train_loss:.5f}  {dt:7.1f} s "
            f"({seen / dt if dt > 0 else 0:.1f} img/s)")
        if a.steps is not None and step >= a.steps:
            break
    t1 = time.perf_counter()
    test_loss = eval_loss(model, test_x, alpha_bar)
    test_loss_ema = eval_loss(ema.model, test_x, alpha_bar)
    log(f"test loss {test_loss:.5f} (ema {test_loss_ema:.5f}) on {test_x.shape[0]} images, "
        f"{time.perf_counter() - t1:.1f} s")
    out = {"model": "unet", "params": params, "config": cfg, "T": a.T, "epochs": epochs_run,
           "steps": step, "batch": a.batch, "lr": a.lr, "ema": a.ema, "seed": a.seed,
           "train_loss_last_epoch": train_loss, "test_loss": test_loss,
           "test_loss_ema": test_loss_ema, "test_n": test_x.shape[0],
           "seconds_per_epoch": train_seconds / max(epochs_run, 1),
           "images_per_second": images / train_seconds if train_seconds > 0 else 0.0,
           "threads": torch.get_num_threads(), "torch_version": torch.__version__,
           "blas_core": os.environ.get("OPENBLAS_CORETYPE", "")}
    if a.save:
        tensors = {k: v.detach().float().contiguous() for k, v in ema.model.state_dict().items()}
        tensors.update({"train." + k: v.detach().float().contiguous()
                        for k, v in model.state_dict().items()})
        meta = {"format": "genlab-ddpm", "format_version": "1", "producer": "tools/torch_unet.py",
                "size": str(cfg["size"]), "ch": ",".join(str(c) for c in cfg["ch"]),
                "emb": str(cfg["emb"]), "groups": str(cfg["groups"]),
                "schedule": "cosine", "T": str(a.T), "epochs": str(epochs_run),
                "batch": str(a.batch), "lr": format(a.lr, "g"), "ema": format(a.ema, "g"),
                "seed": str(a.seed), "step": str(step),
                "train_loss": repr(train_loss), "test_loss": repr(test_loss_ema),
                "test_loss_raw": repr(test_loss),
                "seconds_per_epoch": repr(out["seconds_per_epoch"]),
                "images_per_second": repr(out["images_per_second"])}
        gt.write_safetensors_zst(a.save, tensors, meta)
        log(f"saved {a.save}")
    print(json.dumps(out), flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)

    def common(p, threads=True):
        p.add_argument("--size", type=int, default=DEFAULT_CONFIG["size"])
        p.add_argument("--ch", default=",".join(str(c) for c in DEFAULT_CONFIG["ch"]))
        p.add_argument("--emb", type=int, default=DEFAULT_CONFIG["emb"])
        p.add_argument("--groups", type=int, default=DEFAULT_CONFIG["groups"])
        if threads:
            p.add_argument("--threads", type=int, default=1)
            p.add_argument("--assets", default=gt.default_assets_dir())

    i = sub.add_parser("info", help="parameter count, FLOPs, layer table")
    common(i, threads=False)
    i.add_argument("--detail", action="store_true", help="also the convs/linears inside each row")

    b = sub.add_parser("bench", help="training images/s; JSON on stdout")
    common(b)
    b.add_argument("--batch", type=int, default=128)
    b.add_argument("--steps", type=int, default=20)
    b.add_argument("--warmup", type=int, default=2)
    b.add_argument("--ema", action="store_true", help="also update an EMA copy each step")

    s = sub.add_parser("sample-bench", help="seconds for a DDIM chain; JSON on stdout")
    common(s)
    s.add_argument("--n", type=int, default=16)
    s.add_argument("--steps", type=int, default=50)
    s.add_argument("--T", type=int, default=T_STEPS)
    s.add_argument("--eta", type=float, default=0.0)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--checkpoint", default=None, help="weights to load (plain names)")
    s.add_argument("--pgm", default=None, help="write the samples as a PGM grid")

    t = sub.add_parser("train", help="the study recipe; JSON summary on stdout")
    common(t)
    t.add_argument("--epochs", type=int, default=20)
    t.add_argument("--batch", type=int, default=128)
    t.add_argument("--lr", type=float, default=1e-4)
    t.add_argument("--T", type=int, default=T_STEPS)
    t.add_argument("--ema", type=float, default=0.999)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--steps", type=int, default=None, help="stop after N optimiser steps in all")
    t.add_argument("--eval-n", type=int, default=0, help="test on the first N study-test images (0: all)")
    t.add_argument("--log-every", type=int, default=0)
    t.add_argument("--save", default=None, help="write a genlab-ddpm checkpoint (EMA as plain names)")

    a = ap.parse_args(argv)
    if a.mode == "info":
        cmd_info(a)
        return
    if a.threads < 1:
        ap.error("--threads must be >= 1")
    if a.mode == "bench":
        if a.steps < 1 or a.warmup < 0 or a.batch < 1:
            ap.error("--steps >= 1, --warmup >= 0, --batch >= 1")
        cmd_bench(a)
    elif a.mode == "sample-bench":
        if a.n < 1 or not 1 <= a.steps <= a.T:
            ap.error("--n >= 1, 1 <= --steps <= --T")
        cmd_sample_bench(a)
    else:
        check_schedule()
        cmd_train(a)


if __name__ == "__main__":
    main()
