#!/usr/bin/python3
"""torch_vae — genlab's PyTorch twin: train the study's β-VAEs, or time them.

  train: /usr/bin/python3 tools/torch_vae.py train --arch conv --latent 2 --beta 1 \
             --epochs 20 --batch 64 --lr 1e-3 --seed 0 --warmup-epochs 0 --threads 2
         one line per epoch on stderr, one JSON line on stdout at the end.
  bench: /usr/bin/python3 tools/torch_vae.py bench --arch conv --threads 1 --steps 200
         one JSON line on stdout: training images per second.

See tools/README.md. Needs only Debian's python3-torch, python3-numpy, zstd.
"""

import argparse
import ctypes
import ctypes.util
import json
import math
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import genlab_torch as gt  # noqa: E402

EVAL_SEED = 1234
EVAL_BATCH = 1000


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def openblas_corename():
    """The kernel OpenBLAS picked (e.g. 'Prescott', 'SkylakeX'), '' if unknown."""
    for name in ("libopenblas.so.0", ctypes.util.find_library("openblas")):
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
            f = lib.openblas_get_corename
            f.restype = ctypes.c_char_p
            return f().decode()
        except (OSError, AttributeError):
            continue
    return ""


def set_threads(n):
    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set, or parallel work already started
        pass


def beta_for_epoch(beta, epoch, warmup):
    """β-annealing (DESIGN.md: linear from 0 to β over the first K epochs).
    Our choice: β is constant within an epoch and epoch e (counted from 1)
    uses β·min(1, e/K); so the ramp is the line from 0 at e = 0, epoch 1
    trains with β/K and epochs K, K+1, ... with the full β. K = 0: no
    annealing."""
    if warmup <= 0:
        return beta
    return beta * min(1.0, epoch / warmup)


@torch.no_grad()
def evaluate(model, x, beta, seed=EVAL_SEED, batch=EVAL_BATCH):
    """Per-image metrics over x ([N,1,28,28] float). bce with z = mu + sigma
    * eps, eps from a torch generator seeded `seed` afresh for each call (so
    each test set is reproducible on its own); bce_mu with z = mu."""
    was_training = model.training
    model.eval()
    g = torch.Generator().manual_seed(seed)
    n = x.shape[0]
    bce = bce_mu = kld = 0.0
    for s in range(0, n, batch):
        xb = model.prepare(x[s:s + batch])
        mu, logvar = model.encode(xb)
        eps = torch.randn(mu.shape, generator=g)
        xhat = model.decode(mu + torch.exp(0.5 * logvar) * eps)
        b, k = gt.vae_loss(xhat, xb, mu, logvar)
        bm, _ = gt.vae_loss(model.decode(mu), xb, mu, logvar)
        bce += b.item()
        bce_mu += bm.item()
        kld += k.item()
    model.train(was_training)
    return {"bce": bce / n, "bce_mu": bce_mu / n, "kld": kld / n,
            "loss": (bce + beta * kld) / n, "n": n}


def load_sets(assets):
    m = gt.load_mnist(assets)
    p, tr, te = gt.study_split()
    gt.check_split(p)
    train_x = gt.to_float(m["train_images"][tr])
    study_x = gt.to_float(m["train_images"][te])
    official_x = gt.to_float(m["test_images"])
    return train_x, study_x, official_x


def cmd_train(a):
    set_threads(a.threads)
    train_x, study_x, official_x = load_sets(a.assets)
    torch.manual_seed(a.seed)  # model init
    model = gt.make_vae(a.arch, a.latent)
    params = gt.param_count(model)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    g_shuffle = torch.Generator().manual_seed(a.seed)       # epoch order
    g_eps = torch.Generator().manual_seed(a.seed + 1)       # reparameterisation noise
    n = train_x.shape[0]
    log(f"torch_vae train: {a.arch} d={a.latent} beta={a.beta} params={params} "
        f"epochs={a.epochs} batch={a.batch} lr={a.lr} seed={a.seed} warmup={a.warmup_epochs} "
        f"threads={torch.get_num_threads()} train={n} study_test={study_x.shape[0]} "
        f"official_test={official_x.shape[0]}")
    model.train()
    step = 0
    train_seconds = 0.0
    images_trained = 0
    epochs_run = 0
    study = None
    for epoch in range(1, a.epochs + 1):
        beta_eff = beta_for_epoch(a.beta, epoch, a.warmup_epochs)
        perm = torch.randperm(n, generator=g_shuffle)
        t0 = time.perf_counter()
        sb = sk = 0.0
        seen = 0
        for s in range(0, n, a.batch):
            if a.steps is not None and step >= a.steps:
                break
            xb = model.prepare(train_x.index_select(0, perm[s:s + a.batch]))
            eps = torch.randn((xb.shape[0], a.latent), generator=g_eps)
            xhat, mu, logvar = model(xb, eps)
            bce, kld = gt.vae_loss(xhat, xb, mu, logvar)
            loss = bce + beta_eff * kld
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sb += bce.item()
            sk += kld.item()
            seen += xb.shape[0]
            step += 1
        dt = time.perf_counter() - t0
        train_seconds += dt
        images_trained += seen
        epochs_run += 1
        t1 = time.perf_counter()
        study = evaluate(model, study_x, a.beta)
        log(f"epoch {epoch:2d}/{a.epochs}  beta_eff {beta_eff:.4g}  "
            f"train bce {sb / max(seen, 1):8.3f} kld {sk / max(seen, 1):7.3f}  "
            f"test bce {study['bce']:8.3f} kld {study['kld']:7.3f}  "
            f"{dt:6.1f} s train ({seen / dt if dt > 0 else 0:.0f} img/s), "
            f"{time.perf_counter() - t1:4.1f} s eval")
        if a.steps is not None and step >= a.steps:
            break
    official = evaluate(model, official_x, a.beta)
    out = {
        "arch": a.arch, "latent": a.latent, "beta": a.beta, "epochs": epochs_run,
        "params": params,
        "seconds_per_epoch": train_seconds / max(epochs_run, 1),
        "images_per_second": images_trained / train_seconds if train_seconds > 0 else 0.0,
        "study": study, "official": official,
        # extras (not in the brief's minimal set; harmless for consumers)
        "batch": a.batch, "lr": a.lr, "seed": a.seed, "warmup_epochs": a.warmup_epochs,
        "steps": step, "threads": torch.get_num_threads(), "torch_version": torch.__version__,
        "blas_core": os.environ.get("OPENBLAS_CORETYPE", ""),
    }
    if a.save:
        tensors = {k: v.detach().float().contiguous() for k, v in model.state_dict().items()}
        meta = {
            "format": "genlab-vae", "format_version": "1", "producer": "tools/torch_vae.py",
            "arch": a.arch, "latent": str(a.latent), "beta": format(a.beta, "g"),
            "beta_warmup_epochs": str(a.warmup_epochs), "epochs": str(epochs_run),
            "batch": str(a.batch), "lr": format(a.lr, "g"), "seed": str(a.seed), "step": str(step),
            "test_bce": repr(study["bce"]), "test_kld": repr(study["kld"]),
            "official_bce": repr(official["bce"]), "official_kld": repr(official["kld"]),
            "seconds_per_epoch": repr(out["seconds_per_epoch"]),
            "images_per_second": repr(out["images_per_second"]),
        }
        gt.write_safetensors_zst(a.save, tensors, meta)
        log(f"saved {a.save}")
    print(json.dumps(out), flush=True)


def cmd_bench(a):
    set_threads(a.threads)
    m = gt.load_mnist(a.assets)
    _, tr, _ = gt.study_split()
    train_x = gt.to_float(m["train_images"][tr])
    torch.manual_seed(0)
    model = gt.make_vae(a.arch, a.latent)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    n = train_x.shape[0]
    nb = n // a.batch
    perm = torch.randperm(n, generator=g)
    pos = 0

    def step():
        nonlocal perm, pos
        if pos >= nb:
            perm, pos = torch.randperm(n, generator=g), 0
        xb = model.prepare(train_x.index_select(0, perm[pos * a.batch:(pos + 1) * a.batch]))
        pos += 1
        eps = torch.randn((a.batch, a.latent), generator=g)
        xhat, mu, logvar = model(xb, eps)
        bce, kld = gt.vae_loss(xhat, xb, mu, logvar)
        loss = bce + kld
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    model.train()
    for _ in range(a.warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        loss = step()
    loss.item()
    dt = time.perf_counter() - t0
    out = {"arch": a.arch, "threads": torch.get_num_threads(), "batch": a.batch,
           "images_per_second": a.steps * a.batch / dt, "torch_version": torch.__version__,
           "blas_core": os.environ.get("OPENBLAS_CORETYPE", ""),
           # extras
           "latent": a.latent, "steps": a.steps, "warmup": a.warmup, "seconds": dt,
           "openblas_corename": openblas_corename(),
           "mkldnn": bool(torch.backends.mkldnn.is_available())}
    print(json.dumps(out), flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)

    def common(p):
        p.add_argument("--arch", choices=("conv", "dense"), default="conv")
        p.add_argument("--latent", type=int, default=2)
        p.add_argument("--threads", type=int, default=1)
        p.add_argument("--batch", type=int, default=64)
        p.add_argument("--assets", default=gt.default_assets_dir())

    t = sub.add_parser("train", help="train one VAE; JSON summary on stdout")
    common(t)
    t.add_argument("--beta", type=float, default=1.0)
    t.add_argument("--epochs", type=int, default=20)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--warmup-epochs", type=int, default=0,
                   help="β-annealing: epoch e (from 1) uses β·min(1, e/K); 0 = off")
    t.add_argument("--steps", type=int, default=None,
                   help="stop after this many optimiser steps in all (smoke tests)")
    t.add_argument("--save", default=None, help="write a genlab checkpoint (.safetensors.zst)")

    b = sub.add_parser("bench", help="training images/s; JSON on stdout")
    common(b)
    b.add_argument("--steps", type=int, default=200)
    b.add_argument("--warmup", type=int, default=20)

    a = ap.parse_args(argv)
    if a.threads < 1 or a.batch < 1 or a.latent < 1:
        ap.error("--threads, --batch and --latent must be >= 1")
    if a.mode == "train":
        if a.epochs < 1 or (a.steps is not None and a.steps < 1) or a.warmup_epochs < 0:
            ap.error("--epochs >= 1, --steps >= 1, --warmup-epochs >= 0")
        if not (a.beta >= 0 and math.isfinite(a.beta)):
            ap.error("--beta must be a finite number >= 0")
        cmd_train(a)
    else:
        if a.steps < 1 or a.warmup < 0:
            ap.error("--steps >= 1, --warmup >= 0")
        cmd_bench(a)


if __name__ == "__main__":
    main()
