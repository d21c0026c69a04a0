#!/usr/bin/env bash
# train_grid.sh — trains the study's grid with genlab's own CLI into
# checkpoints/ under DESIGN.md's names. Each command is the one
# checkpoints/README.md shows:
#   genlab train --arch A --latent D --beta B --weights-only --out checkpoints/vae-A-dD-bB.safetensors.zst
# During training the file is saved after every epoch with Adam's state;
# --weights-only strips that state at the end. An interrupted grid resumes
# where it stopped: run this again.
#   bash tools/train_grid.sh [GENLAB]      (default build/genlab)
# Logs go to checkpoints/logs/. Then: /usr/bin/python3 tools/grid_table.py
set -euo pipefail
cd "$(dirname "$0")/.."
genlab=${1:-build/genlab}
mkdir -p checkpoints/logs
grid=("conv 2 1" "dense 2 1" "conv 2 0.001" "dense 2 0.001" "conv 2 20" "dense 2 20" "conv 4 1" "dense 4 1")
for cfg in "${grid[@]}"; do
    set -- $cfg
    name=vae-$1-d$2-b$3
    out=checkpoints/$name.safetensors.zst
    if [ -f "$out" ] && "$genlab" info --ckpt "$out" | grep -q "state .*weights only"; then
        echo "$name: done"
        continue
    elif [ -f "$out" ]; then
        args=(--resume "$out")
    else
        args=(--arch "$1" --latent "$2" --beta "$3")
    fi
    echo "$name: genlab train ${args[*]} --weights-only --out $out"
    "$genlab" train "${args[@]}" --weights-only --out "$out" --json \
        >"checkpoints/logs/$name.json" 2>>"checkpoints/logs/$name.log"
done
