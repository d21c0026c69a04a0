#!/usr/bin/python3
"""grid_table.py — the study's comparison table, measured, from the shipped
checkpoints' own metadata (genlab info --ckpt F --json) and the PyTorch
twin's results (checkpoints/torch/*.json, from tools/torch_vae.py train).

  /usr/bin/python3 tools/grid_table.py [GENLAB]   (default build/genlab)

Prints the Markdown table that checkpoints/README.md carries."""

import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
HEADER = """# Shipped checkpoints: the study's grid, measured

Each file is a β-VAE trained by genlab's own CLI with the study's recipe
(Adam 1e-3, batch 64, 20 epochs, seed 0) on the study split (48,000 training
images), weights only. `genlab info --ckpt F` shows everything below from the
file's own metadata; `genlab eval --ckpt F [--split official]` measures it
again.

Per image: BCE summed over the 784 pixels with z sampled (fixed evaluation
seed), KLD summed over the latent dimensions. "test" is the study's 12,000
held-out images, "official" MNIST's 10,000 test images. The objective is
BCE + β·KLD on the study test split. The PyTorch twin is the same recipe
(tools/torch_vae.py, Debian's python3-torch, its own seed and data order) on
the same split; its results are in `torch/`. Δ is ours relative to it.
Seconds per epoch and images/s are training time alone (evaluation
excluded), 2 worker threads on a 2-core machine.
"""

FOOTER = """
Regenerate: `bash tools/train_grid.sh` (trains what is missing, resumes an
interrupted run), then `/usr/bin/python3 tools/grid_table.py > checkpoints/README.md`.
Training logs are in `logs/`.
"""

GRID = [("conv", 2, "1"), ("dense", 2, "1"), ("conv", 2, "0.001"), ("dense", 2, "0.001"),
        ("conv", 2, "20"), ("dense", 2, "20"), ("conv", 4, "1"), ("dense", 4, "1")]


def metadata(genlab, path):
    out = subprocess.run([genlab, "info", "--ckpt", path, "--json"], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)["metadata"]


def main():
    genlab = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "genlab")
    rows, cmds = [], []
    for arch, d, beta in GRID:
        name = f"vae-{arch}-d{d}-b{beta}"
        path = os.path.join(ROOT, "checkpoints", name + ".safetensors.zst")
        if not os.path.exists(path):
            rows.append(f"| {name} | (not trained yet) |")
            continue
        m = metadata(genlab, path)
        if m.get("state") != "weights only":
            rows.append(f"| {name} | (training: epoch {m['epoch']}/{m['epochs']}) |")
            continue
        b = float(m["beta"])
        ours = float(m["test_bce"]) + b * float(m["test_kld"])
        torch_path = os.path.join(ROOT, "checkpoints", "torch", name + ".json")
        if os.path.exists(torch_path):
            t = json.load(open(torch_path))
            tobj = t["study"]["bce"] + b * t["study"]["kld"]
            twin = f"{t['study']['bce']:.2f} / {t['study']['kld']:.2f} / {tobj:.2f} | {100 * (ours - tobj) / tobj:+.2f}%"
        else:
            twin = "— | —"
        rows.append(
            f"| {name} | {int(m['params']):,} | "
            f"{float(m['test_bce']):.2f} | {float(m['test_kld']):.2f} | {ours:.2f} | "
            f"{float(m['official_bce']):.2f} | {float(m['official_kld']):.2f} | {twin} | "
            f"{float(m['seconds_per_epoch']):.1f} | {float(m['images_per_second']):,.0f} |")
        cmds.append(f"genlab train --arch {arch} --latent {d} --beta {beta} --weights-only "
                    f"--out checkpoints/{name}.safetensors.zst")
    print(HEADER)
    print("| checkpoint | params | test BCE | test KLD | BCE + β·KLD | official BCE | official KLD "
          "| PyTorch twin BCE / KLD / objective | Δ objective | s/epoch | images/s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))
    print("\nCommands (from the repository root, genlab built by tools/dev.sh):\n\n```sh")
    print("\n".join(cmds))
    print("```")
    print(FOOTER)


if __name__ == "__main__":
    main()
