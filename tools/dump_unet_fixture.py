#!/usr/bin/python3
"""dump_unet_fixture — PyTorch reference tensors for genlab's C U-Net tests.

Writes (deterministically; same bytes on every run with the same torch and zstd)
  tests/fixtures/unet_tiny.safetensors.zst
for a tiny configuration: size 8, ch (4, 8, 8), emb 8, groups 2, batch B = 2
(sinusoid width c0 = 4; 8×8 → 4×4 → 2×2, attention over N = 4 pixels).

Contents, all float32, in this order:
  <name>      the model's parameters under their plain names (tools/torch_unet.py):
              PyTorch's default init after torch.manual_seed(SEED), EXCEPT
              - the zero-initialised layers (every X.conv2, X.proj, conv_out,
                weight and bias) re-drawn from N(0, 0.1²), so that gradients
                reach every tensor;
              - every GroupNorm's weight = 1 + N(0, 0.1²) and bias = N(0, 0.1²)
                (instead of 1 and 0), so that a swapped or ignored γ/β shows.
  x           [2,1,8,8] uniform in [−1, 1]
  t           [2] the 0-based steps as float32 (3 and 917)
  eps         [2,1,8,8] standard normal: the target
  sinusoid    [2,c0] timestep_embedding(t, c0) (computed in float64, rounded)
  temb        [2,E]  time.lin2(SiLU(time.lin1(sinusoid)))
  act.<n>     the intermediates h0, e0, e1, e2, m, d2, d1, d0 of unet.h
  eps_hat     [2,1,8,8] model(x, t)
  loss        [1] mean over the 128 elements of (eps_hat − eps)²
  grad.<name> d loss / d <name> for every parameter
metadata: the config (size, ch, emb, groups, batch), seed, producer, torch_version.

It also reruns everything in float64 from the same float32 inputs and prints the
float32-vs-float64 differences, as a guide for the C tests' tolerances.

Usage: /usr/bin/python3 tools/dump_unet_fixture.py [--out tests/fixtures/unet_tiny.safetensors.zst]
"""

import argparse
import copy
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import genlab_torch as gt  # noqa: E402
import torch_unet as tu  # noqa: E402

SEED = 20241
CONFIG = {"size": 8, "ch": (4, 8, 8), "emb": 8, "groups": 2}
BATCH = 2
STEPS = (3, 917)
REDRAW_STD = 0.1
MAX_COMPRESSED = 128 * 1024


def make_model():
    torch.manual_seed(SEED)
    model = tu.UNet(**CONFIG)
    mods = dict(model.named_modules())
    with torch.no_grad():
        for n in model.zero_names():
            mods[n].weight.normal_(0.0, REDRAW_STD)
            mods[n].bias.normal_(0.0, REDRAW_STD)
        for n, m in model.named_modules():
            if isinstance(m, nn.GroupNorm):
                m.weight.copy_(1.0 + REDRAW_STD * torch.randn(m.weight.shape))
                m.bias.normal_(0.0, REDRAW_STD)
    x = torch.rand(BATCH, 1, CONFIG["size"], CONFIG["size"]) * 2 - 1
    eps = torch.randn(BATCH, 1, CONFIG["size"], CONFIG["size"])
    t = torch.tensor(STEPS, dtype=torch.float32)
    return model, x, t, eps


def run_case(model, x, t, eps):
    model.zero_grad(set_to_none=True)
    acts = {}
    eps_hat = model(x, t.long(), acts)
    loss = F.mse_loss(eps_hat, eps)
    loss.backward()
    return {"sinusoid": tu.timestep_embedding(t.long(), CONFIG["ch"][0], x.dtype),
            "acts": {k: v.detach().clone() for k, v in acts.items()},
            "eps_hat": eps_hat.detach().clone(), "loss": loss.detach().reshape(1).clone(),
            "grads": {n: p.grad.detach().clone() for n, p in model.named_parameters()}}


def diff(a, b):
    d = (a.double() - b.double()).abs().max().item()
    m = b.double().abs().max().item()
    return d, d / m if m > 0 else d


def compare64(model, x, t, eps, r32):
    m64 = copy.deepcopy(model).double()
    r64 = run_case(m64, x.double(), t, eps.double())
    print("  float32 vs float64 (max abs difference; relative to the tensor's max |value|):")
    for name, a, b in (("sinusoid", r32["sinusoid"], r64["sinusoid"]),
                       ("eps_hat", r32["eps_hat"], r64["eps_hat"]),
                       ("loss", r32["loss"], r64["loss"])):
        d, rel = diff(a, b)
        print(f"    {name:10s} abs {d:.3e}  rel {rel:.3e}")
    for k in r32["acts"]:
        d, rel = diff(r32["acts"][k], r64["acts"][k])
        print(f"    {k:10s} abs {d:.3e}  rel {rel:.3e}")
    worst = max((diff(r32["grads"][n], r64["grads"][n]) + (n,) for n in r32["grads"]),
                key=lambda v: v[1])
    print(f"    grad.*     worst rel {worst[1]:.3e} (abs {worst[0]:.3e}, in {worst[2]})")
    tiny = min((r64["grads"][n].abs().max().item(), n) for n in r64["grads"])
    print(f"    smallest max|grad| over tensors: {tiny[0]:.3e} ({tiny[1]})")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description="write genlab's U-Net reference fixture")
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "fixtures",
                                                  "unet_tiny.safetensors.zst"))
    a = ap.parse_args()
    path = os.path.normpath(a.out)
    torch.set_num_threads(1)  # one reduction order
    torch.use_deterministic_algorithms(True)
    model, x, t, eps = make_model()
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    r = run_case(model, x, t, eps)
    tensors = dict(params)
    tensors.update(x=x, t=t, eps=eps, sinusoid=r["sinusoid"], temb=r["acts"]["temb"])
    tensors.update({"act." + k: v for k, v in r["acts"].items() if k != "temb"})
    tensors.update(eps_hat=r["eps_hat"], loss=r["loss"])
    tensors.update({"grad." + n: g for n, g in r["grads"].items()})
    meta = {"size": str(CONFIG["size"]), "ch": ",".join(str(c) for c in CONFIG["ch"]),
            "emb": str(CONFIG["emb"]), "groups": str(CONFIG["groups"]), "batch": str(BATCH),
            "t": ",".join(str(s) for s in STEPS), "loss": "mse_mean",
            "redraw_std": str(REDRAW_STD), "seed": str(SEED),
            "producer": "tools/dump_unet_fixture.py", "torch_version": torch.__version__}
    raw = gt.write_safetensors_zst(path, tensors, meta)
    size = os.path.getsize(path)
    assert size <= MAX_COMPRESSED, size
    back, bmeta = gt.read_safetensors_zst(path)
    assert list(back) == list(tensors) and bmeta == meta
    assert all(torch.equal(back[k], v) for k, v in tensors.items())
    zero_grads = [n for n, g in r["grads"].items() if g.abs().max().item() == 0]
    assert not zero_grads, zero_grads
    print(f"  {path}: {len(tensors)} tensors, {tu.param_count(model)} params "
          f"({len(params)} tensors), raw {raw} B, compressed {size} B")
    print(f"    loss {r['loss'].item():.7f}  eps_hat range [{r['eps_hat'].min().item():.4f}, "
          f"{r['eps_hat'].max().item():.4f}]")
    compare64(model, x, t, eps, r)


if __name__ == "__main__":
    main()
