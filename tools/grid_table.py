#!/usr/bin/python3
"""grid_table.py — the study's comparison table, measured, from the shipped
checkpoints' own metadata (genlab info --ckpt F --json) and the PyTorch
twin's results (checkpoints/torch/*.json, from tools/torch_vae.py train).

  /usr/bin/python3 tools/grid_table.py [GENLAB]   (default build/genlab)

Prints the Markdown that checkpoints/README.md carries: the VAE grid, then
the DDPM (checkpoints/ddpm.safetensors.zst, genlab ddpm info --json) with
its per-epoch log (checkpoints/logs/ddpm-train.log) when they exist."""

import json
import math
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


STUDY_DDPM_TEST_LOSS = 0.0280  # DESIGN.md: the seed's test loss, T = 4000, cosine


def epoch_test_losses(lines):
    """(epoch, test loss) from the log's per-epoch lines."""
    out = []
    for l in lines:
        f = l.split()
        out.append((int(f[1].split("/")[0]), float(f[f.index("test") + 2])))
    return out


def trend(points):
    """Where the per-epoch test loss is heading, in words: a power law
    L = A·e^(−p) fitted (least squares on logs) to the second half of the
    epochs, and the epoch at which it would reach the study's figure."""
    late = points[len(points) // 2:]
    if len(late) < 3:
        return None
    xs = [math.log(e) for e, _ in late]
    ys = [math.log(v) for _, v in late]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    p, log_a = -slope, my - slope * mx
    first, last = late[0][0], late[-1][0]
    text = (f"Fitted to epochs {first}–{last}, the test loss falls as epoch^−{p:.2f} "
            f"({100 * (1 - ((last + 1) / last) ** -p):.1f}% in the next epoch)")
    if p > 0:
        reach = math.exp((log_a - math.log(STUDY_DDPM_TEST_LOSS)) / p)
        text += f"; at that rate it would reach {STUDY_DDPM_TEST_LOSS:.4f} after about {reach:,.0f} epochs"
    return text + "."


def ddpm_section(genlab):
    path = os.path.join(ROOT, "checkpoints", "ddpm.safetensors.zst")
    if not os.path.exists(path):
        return "\n## DDPM\n\nNot trained yet: `checkpoints/ddpm.safetensors.zst` is missing.\n"
    out = subprocess.run([genlab, "ddpm", "info", "--ckpt", path, "--json"], check=True,
                         capture_output=True, text=True).stdout
    j = json.loads(out)
    m = j["metadata"]
    images = int(m["images_seen"])
    epochs_done = images / int(m["train_images"])
    test, official = float(m["test_loss"]), float(m["official_loss"])
    finished = int(m["epoch"]) >= int(m["epochs"])
    verdict = ("reaches" if test <= STUDY_DDPM_TEST_LOSS else
               "does not reach" if finished else "does not reach yet") + \
        f" the study's {STUDY_DDPM_TEST_LOSS:.4f}"
    lines = [
        "\n## DDPM: `ddpm.safetensors.zst`\n",
        "The U-Net of `include/genlab/unet.h` predicting ε, trained by `genlab ddpm train` with",
        f"the study's recipe ({m['schedule']} schedule, T = {m['T']}, Adam {float(m['lr']):g}, batch {m['batch']},",
        f"EMA {float(m['ema_decay']):g}, seed {m['seed']}) on the study split; the file holds the EMA weights.",
        "Test loss: ε-MSE per pixel, each test image noised at 4 stratified steps with the",
        "fixed evaluation seed (`genlab ddpm eval` repeats it exactly), ± its standard error.\n",
        "| | |", "|---|---|",
        f"| parameters | {int(j['params']):,} |",
        f"| forward FLOPs per image | {float(j['flops_per_image']) / 1e9:.3f} G |",
        f"| trained | {epochs_done:.2f} epochs of {m['epochs']} planned, {images:,} images, step {m['step']} |",
        f"| training time | {float(m['train_seconds']) / 3600:.2f} h ({float(m['images_per_second']):.1f} images/s, 2 threads) |",
        f"| test loss (study split, {m['test_images']} images) | {test:.5f} ± {float(m['test_stderr']):.5f} — {verdict} |",
        f"| test loss (official, {m['official_images']} images) | {official:.5f} ± {float(m['official_stderr']):.5f} |",
    ]
    if "test_loss_by_t_quarter" in m:
        q = [float(v) for v in m["test_loss_by_t_quarter"].split(",")]
        T = int(m["T"])
        lines.append("| test loss by t (study split) | " + ", ".join(
            f"[{k * T // 4}, {(k + 1) * T // 4}): {v:.4f}" for k, v in enumerate(q)) + " |")
    if "train_loss_this_epoch" in m:
        lines.append(f"| train loss (this epoch so far, raw weights) | {float(m['train_loss_this_epoch']):.5f} |")
    log = os.path.join(ROOT, "checkpoints", "logs", "ddpm-train.log")
    if os.path.exists(log):
        epochs = [l.strip() for l in open(log, encoding="utf-8") if l.startswith("epoch")]
        if epochs:
            lines += ["\nPer epoch (`logs/ddpm-train.log`; the per-epoch test loss is on the first",
                      "2,000 study-test images, for speed; an epoch's time and images/s count only",
                      "the process that finished it, and slow epochs shared the machine with other work;",
                      "epochs 1–10 ran on im2col convolutions, the later ones on Winograd's: compare their images/s):\n",
                      "```"] + epochs + ["```"]
            t = trend(epoch_test_losses(epochs))
            if t:
                lines += ["", t]
    if os.path.exists(os.path.join(ROOT, "checkpoints", "ddpm-samples.png")):
        lines += ["\nDDIM, 50 steps, seed 0 (`genlab ddpm sample --n 64 --cols 16 --out checkpoints/ddpm-samples.png`):\n",
                  "![DDPM samples](ddpm-samples.png)"]
    if os.path.exists(os.path.join(ROOT, "checkpoints", "ddpm-chain.png")):
        lines += ["\nEight chains, x_T to x_0 in 11 frames (`genlab ddpm sample --n 8 --trajectory "
                  "checkpoints/ddpm-chain.png --frames 11 --out x.png`):\n",
                  "![DDPM chains](ddpm-chain.png)"]
    lines += ["\nCommands:\n", "```sh",
              "genlab ddpm train --eval-images 2000 --out ddpm-train.safetensors.zst     # saves every 5 min; rerun with --resume to continue",
              "genlab ddpm train --resume ddpm-train.safetensors.zst --eval-images 2000",
              "# the shipped file: the EMA weights at the last step, measured on both full test splits",
              "genlab ddpm train --resume ddpm-train.safetensors.zst --steps STEP --weights-only --out checkpoints/ddpm.safetensors.zst",
              "```"]
    return "\n".join(lines) + "\n"


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
    print(ddpm_section(genlab))


if __name__ == "__main__":
    main()
