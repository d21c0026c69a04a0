#!/usr/bin/python3
"""dump_fixtures — reference tensors from PyTorch for genlab's C tests.

Writes (deterministically; same bytes on every run with the same torch):
  tests/fixtures/vae_conv_d2.safetensors.zst
  tests/fixtures/vae_dense_d3.safetensors.zst

Each file (genlab's checkpoint format: safetensors in a zstd frame) holds, all
float32, in this order:
  <name>        the model's parameters under their plain names (PyTorch's
                default init after torch.manual_seed(SEED))
  adam3.<name>  the parameters after 3 steps of torch.optim.Adam(lr=1e-3,
                defaults) on the same batch and the same eps (forward and
                backward recomputed each step; loss = bce + 0.5·kld, batch sum)
  x             [3,1,28,28] (conv) or [3,784] (dense): the first three
                study-train images (pixel / 255) with a few pixels forced to
                exactly 0.0 and 1.0
  eps           [3,d] standard normal
  mu, logvar    [3,d]
  xhat          shaped like x: sigmoid probabilities with z = mu + exp(0.5·logvar)·eps
  loss.bce      [1] batch sum of F.binary_cross_entropy (reduction='sum')
  loss.kld      [1] batch sum of -0.5·(1 + logvar - mu² - exp(logvar))
  grad.<name>   gradient of loss.bce + 0.5·loss.kld w.r.t. each parameter
metadata: beta "0.5", arch, latent, lr "0.001", seed, torch_version, producer.

adam3 tensors come right after the parameters so that zstd's window (8 MiB
at -19) sees both: for the dense model most of enc.fc1's columns get a zero
gradient (background pixels), so those adam3 values equal the initial ones
and compress to almost nothing.

It also recomputes everything in float64 from the same inputs and prints the
float32-vs-float64 differences, as a guide for the C tests' tolerances.

Usage: /usr/bin/python3 tools/dump_fixtures.py [--out tests/fixtures] [--assets assets]
"""

import argparse
import copy
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import genlab_torch as gt  # noqa: E402

BETA = 0.5
LR = 1e-3
SEED = 20240  # torch.manual_seed for init and eps
ADAM_STEPS = 3
ZERO_PIXELS = (0, 152, 300, 430, 601)   # flat indices forced to 0.0
ONE_PIXELS = (1, 210, 350, 462, 783)    # flat indices forced to 1.0
MAX_COMPRESSED = 12 * 1024 * 1024

FIXTURES = (("conv", 2, "vae_conv_d2.safetensors.zst"),
            ("dense", 3, "vae_dense_d3.safetensors.zst"))


def fixture_batch(assets):
    m = gt.load_mnist(assets)
    _, tr, _ = gt.study_split()
    x = gt.to_float(m["train_images"][tr[:3]]).reshape(3, 784).clone()
    for i in range(3):
        # vary the forced pixels a little per image, inside and outside the digit
        for k in ZERO_PIXELS:
            x[i, (k + 29 * i) % 784] = 0.0
        for k in ONE_PIXELS:
            x[i, (k + 31 * i) % 784] = 1.0
    return x.reshape(3, 1, 28, 28)


def run_case(model, x, eps):
    """Forward, loss, gradients, then 3 Adam steps on a deep copy."""
    model.zero_grad(set_to_none=True)
    xhat, mu, logvar = model(x, eps)
    bce, kld = gt.vae_loss(xhat, x, mu, logvar)
    (bce + BETA * kld).backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
    m2 = copy.deepcopy(model)
    opt = torch.optim.Adam(m2.parameters(), lr=LR)
    for _ in range(ADAM_STEPS):
        opt.zero_grad(set_to_none=True)
        xh2, mu2, lv2 = m2(x, eps)
        b2, k2 = gt.vae_loss(xh2, x, mu2, lv2)
        (b2 + BETA * k2).backward()
        opt.step()
    adam = {n: p.detach().clone() for n, p in m2.named_parameters()}
    return {"xhat": xhat.detach(), "mu": mu.detach(), "logvar": logvar.detach(),
            "loss.bce": bce.detach().reshape(1), "loss.kld": kld.detach().reshape(1),
            "grads": grads, "adam": adam}


def compare64(model, x, eps, r32):
    """Float64 recomputation; prints max |f32 - f64| (and relative to the
    tensor's max magnitude) per output group."""
    m64 = copy.deepcopy(model).double()
    r64 = run_case(m64, x.double(), eps.double())

    def diff(a, b):
        a, b = a.double(), b.double()
        d = (a - b).abs().max().item()
        scale = b.abs().max().item()
        return d, d / scale if scale > 0 else 0.0

    for k in ("mu", "logvar", "xhat", "loss.bce", "loss.kld"):
        d, r = diff(r32[k], r64[k])
        print(f"    f32 vs f64 {k:10s} max abs {d:.3e}  rel-to-max {r:.3e}")
    for group, label in (("grads", "grad.*"), ("adam", "adam3.*")):
        worst = max((diff(r32[group][n], r64[group][n]) + (n,) for n in r32[group]), key=lambda t: t[1])
        print(f"    f32 vs f64 {label:10s} worst rel-to-max {worst[1]:.3e} "
              f"(max abs {worst[0]:.3e}, in {worst[2]})")
    # Adam's first steps move each weight by about lr·sign(g): count the
    # elements whose float32 result is off by more than a small fraction of lr
    bad = sum(int(((r32["adam"][n].double() - r64["adam"][n]).abs() > 1e-2 * LR).sum())
              for n in r32["adam"])
    tot = sum(p.numel() for p in r32["adam"].values())
    print(f"    adam3: {bad} of {tot} elements differ from float64 by > 1e-2·lr")


def dump(arch, d, path, x4, assets_check=True):
    torch.manual_seed(SEED)
    model = gt.make_vae(arch, d)
    eps = torch.randn(3, d)
    x = model.prepare(x4).contiguous()
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    r = run_case(model, x, eps)
    tensors = {}
    tensors.update(params)
    tensors.update({"adam3." + n: t for n, t in r["adam"].items()})
    tensors["x"] = x
    tensors["eps"] = eps
    for k in ("mu", "logvar", "xhat", "loss.bce", "loss.kld"):
        tensors[k] = r[k]
    tensors.update({"grad." + n: t for n, t in r["grads"].items()})
    meta = {"beta": "0.5", "arch": arch, "latent": str(d), "lr": "0.001",
            "seed": str(SEED), "adam_steps": str(ADAM_STEPS),
            "torch_version": torch.__version__, "producer": "tools/dump_fixtures.py"}
    raw = gt.write_safetensors_zst(path, tensors, meta)
    size = os.path.getsize(path)
    if size > MAX_COMPRESSED:
        # the brief's fallback: drop adam3 for an oversized fixture
        for n in r["adam"]:
            del tensors["adam3." + n]
        raw = gt.write_safetensors_zst(path, tensors, meta)
        size = os.path.getsize(path)
        print(f"  {path}: over {MAX_COMPRESSED} B, adam3.* dropped")
    # round trip
    back, bmeta = gt.read_safetensors_zst(path)
    assert list(back) == list(tensors) and bmeta == meta
    assert all(torch.equal(back[k], v) for k, v in tensors.items())
    print(f"  {path}: {len(tensors)} tensors, {gt.param_count(model)} params, "
          f"raw {raw} B, compressed {size} B")
    print(f"    loss.bce {r['loss.bce'].item():.6f}  loss.kld {r['loss.kld'].item():.6f}  "
          f"(per image {r['loss.bce'].item() / 3:.4f} / {r['loss.kld'].item() / 3:.4f})")
    compare64(model, x, eps, r)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description="write genlab's PyTorch reference fixtures")
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "fixtures"))
    ap.add_argument("--assets", default=gt.default_assets_dir())
    a = ap.parse_args()
    torch.set_num_threads(1)  # one reduction order, the same on every machine count
    torch.use_deterministic_algorithms(True)
    p, _, _ = gt.study_split()
    gt.check_split(p)
    x4 = fixture_batch(a.assets)
    for arch, d, name in FIXTURES:
        dump(arch, d, os.path.normpath(os.path.join(a.out, name)), x4)


if __name__ == "__main__":
    main()
