#!/usr/bin/env bash
# bench.sh BENCH_VAE [STEPS] — genlab's VAE training throughput beside the
# same models in PyTorch (Debian's python3-torch), as ratios from one run.
#
# Both sides run with the same OpenBLAS kernel: the one genlab uses (it may
# choose it itself, DESIGN.md "OpenBLAS on these machines"), passed to
# PyTorch through OPENBLAS_CORETYPE. PyTorch gets OPENBLAS_NUM_THREADS=1:
# it parallelises with its own OpenMP threads, and OpenBLAS's pool on top
# oversubscribes the cores (measured here: 2 threads ran at a fifth of the
# speed of 1 without it). Run through `meson test --benchmark`
# or directly: bash bench/bench.sh build/bench/bench_vae
set -euo pipefail
bench_vae=${1:?usage: bench.sh BENCH_VAE [STEPS]}
steps=${2:-300}
here=$(cd "$(dirname "$0")/.." && pwd)
export GENLAB_SOURCE_DIR=${GENLAB_SOURCE_DIR:-$here}

ours=$("$bench_vae" "$steps")
core=$(printf '%s\n' "$ours" | sed -n 's/.*"blas_core":"\([^"]*\)".*/\1/p' | head -1)
printf 'genlab (OpenBLAS kernel %s):\n%s\n\n' "$core" "$ours"

py=/usr/bin/python3
if ! "$py" -c 'import torch' 2>/dev/null; then
    echo "python3-torch is not installed: no PyTorch comparison (apt-get install python3-torch)"
    exit 0
fi

printf '%-6s %7s %14s %14s %7s\n' arch threads genlab_img/s torch_img/s ratio
for arch in conv dense; do
    for threads in 1 2; do
        g=$(printf '%s\n' "$ours" | grep "\"arch\":\"$arch\"" | grep "\"threads\":$threads," |
            sed -n 's/.*"images_per_second":\([0-9.e+]*\).*/\1/p')
        t=$(OPENBLAS_CORETYPE=$core OPENBLAS_NUM_THREADS=1 "$py" "$here/tools/torch_vae.py" bench --arch "$arch" \
                --threads "$threads" --steps "$steps" --assets "$here/assets" |
            sed -n 's/.*"images_per_second": *\([0-9.e+]*\).*/\1/p')
        awk -v a="$arch" -v n="$threads" -v g="$g" -v t="$t" \
            'BEGIN { printf "%-6s %7d %14.0f %14.0f %6.2fx\n", a, n, g, t, g / t }'
    done
done
printf '%s\n' "$ours" | grep peak_rss_mb
