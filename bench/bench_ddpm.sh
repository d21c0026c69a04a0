#!/usr/bin/env bash
# bench_ddpm.sh BENCH_DDPM [STEPS] [THREADS] — the DDPM's training and
# sampling speed beside the same U-Net in PyTorch (tools/torch_unet.py,
# Debian's python3-torch), as ratios from one run. Same OpenBLAS kernel on
# both sides and OPENBLAS_NUM_THREADS=1 for PyTorch (bench.sh says why).
set -euo pipefail
bench=${1:?usage: bench_ddpm.sh BENCH_DDPM [STEPS] [THREADS]}
steps=${2:-10}
threads=${3:-$(nproc)}
here=$(cd "$(dirname "$0")/.." && pwd)
export GENLAB_SOURCE_DIR=${GENLAB_SOURCE_DIR:-$here}

ours=$("$bench" "$steps" "$threads")
core=$(printf '%s\n' "$ours" | sed -n 's/.*"blas_core":"\([^"]*\)".*/\1/p' | head -1)
printf 'genlab (OpenBLAS kernel %s, %s threads):\n%s\n\n' "$core" "$threads" "$ours"
py=/usr/bin/python3
if ! "$py" -c 'import torch' 2>/dev/null; then
    echo "python3-torch is not installed: no PyTorch comparison (apt-get install python3-torch)"
    exit 0
fi
torch() { OPENBLAS_CORETYPE=$core OPENBLAS_NUM_THREADS=1 "$py" "$here/tools/torch_unet.py" "$@"; }
t_train=$(torch bench --batch 128 --threads "$threads" --steps "$steps" --ema | sed -n 's/.*"images_per_second": *\([0-9.e+]*\).*/\1/p')
t_ddim=$(torch sample-bench --n 16 --steps 50 --threads "$threads" | sed -n 's/.*"seconds": *\([0-9.e+]*\).*/\1/p')
g_train=$(printf '%s\n' "$ours" | grep '"case":"train"' | sed -n 's/.*"images_per_second":\([0-9.e+]*\).*/\1/p')
g_ddim=$(printf '%s\n' "$ours" | grep '"case":"ddim50"' | sed -n 's/.*"seconds":\([0-9.e+]*\).*/\1/p')
g_fps=$(printf '%s\n' "$ours" | grep '"case":"ddim50"' | sed -n 's/.*"frames_per_second":\([0-9.e+]*\).*/\1/p')
printf '%-34s %10s %10s %8s\n' case genlab pytorch ratio
awk -v g="$g_train" -v t="$t_train" 'BEGIN { printf "%-34s %10.1f %10.1f %7.2fx\n", "train img/s, batch 128", g, t, g / t }'
awk -v g="$g_ddim" -v t="$t_ddim" 'BEGIN { printf "%-34s %10.2f %10.2f %7.2fx\n", "DDIM-50, 16 digits, seconds", g, t, t / g }'
awk -v f="$g_fps" 'BEGIN { printf "%-34s %10.1f\n", "reverse steps/s, 16 chains", f }'
