#!/usr/bin/env bash
# genlab ddpm as a user drives it: help, the layer table, a tiny training
# run, eval (repeatable, JSON), sample (PNG, trajectory strip, both
# samplers), resume, and bad input (one clear line, a non-zero exit).
set -u
genlab=$(realpath "${1:?usage: test_cli_ddpm.sh GENLAB}")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
expect() {
    local want=$1; shift
    "$@" >"$tmp/out" 2>"$tmp/err"
    local got=$?
    out=$(cat "$tmp/out"); err=$(cat "$tmp/err")
    [ "$got" = "$want" ] || fail "exit $got, expected $want: $* :: $(head -c 400 "$tmp/err")"
}
contains() { grep -qF -- "$2" <<<"$1" || fail "expected \"$2\" in: $(head -c 400 <<<"$1")"; }
one_line() { [ "$(printf '%s\n' "$1" | grep -c .)" = 1 ] || fail "expected one line of error, got: $1"; }

expect 0 "$genlab" ddpm --help;           contains "$out" "sample"
for c in info train eval sample; do
    expect 0 "$genlab" ddpm "$c" --help;  contains "$out" "usage: genlab ddpm $c"
done
expect 0 "$genlab" ddpm info;             contains "$out" "3158529 parameters"; contains "$out" "dec2_attn"
expect 0 "$genlab" ddpm info --json;      contains "$out" '"params":3158529'
# other widths: the default's spelled out is the default; a wider 28×28 level costs more
default=$out
expect 0 "$genlab" ddpm info --json --channels 32,64,192
[ "$out" = "$default" ] || fail "--channels 32,64,192 is not the default table"
expect 0 "$genlab" ddpm info --channels 64,64,192; contains "$out" "channels 64/64/192"
expect 2 "$genlab" ddpm info --channels 64,64;     contains "$err" "three numbers"
expect 2 "$genlab" ddpm info --channels 30,64,192; contains "$err" "divisible by the 8 groups"

expect 2 "$genlab" ddpm frobnicate;       contains "$err" 'unknown command "frobnicate"'
expect 2 "$genlab" ddpm train --schedule quadratic; contains "$err" "cosine or linear"
expect 2 "$genlab" ddpm sample --out x.jpg;  contains "$err" "unknown image format"
expect 2 "$genlab" ddpm sample --sampler euler --out x.png; contains "$err" "ddpm or ddim"
expect 1 "$genlab" ddpm eval --ckpt "$tmp/none.safetensors.zst"; one_line "$err"
expect 1 "$genlab" ddpm eval --ckpt "$GENLAB_SOURCE_DIR/checkpoints/vae-conv-d2-b1.safetensors.zst"
contains "$err" "not a genlab DDPM checkpoint"; one_line "$err"

# a tiny run: two steps, then every command on its checkpoint
ck="$tmp/d.safetensors.zst"
# (the largest seed: a resume must read back any seed that train accepts)
expect 0 "$genlab" ddpm train --steps 2 --train-images 256 --eval-images 16 --T 100 --seed 18446744073709551615 --out "$ck" --json
contains "$out" '"step":2'; contains "$out" '"study":{"loss":'
expect 0 "$genlab" ddpm info --ckpt "$ck"; contains "$out" "test_loss"; contains "$out" "schedule"
expect 0 "$genlab" ddpm eval --ckpt "$ck" --limit 40 --json
contains "$out" '"n":40'; contains "$out" '"stderr":'; contains "$out" '"loss_by_t_quarter":['
first=$(sed 's/,"seconds":.*//' <<<"$out")
expect 0 "$genlab" ddpm eval --ckpt "$ck" --limit 40 --json
[ "$(sed 's/,"seconds":.*//' <<<"$out")" = "$first" ] || fail "eval does not repeat"
expect 0 "$genlab" ddpm sample --ckpt "$ck" --n 4 --steps 5 --out "$tmp/s.png" --trajectory "$tmp/tr.pgm" --frames 6
[ "$(head -c 8 "$tmp/s.png" | od -An -tx1 | tr -d ' ')" = 89504e470d0a1a0a ] || fail "s.png is not a PNG"
# the strip: 6 frames wide (6 × 28 px plus gaps), one row per digit
head -2 "$tmp/tr.pgm" | tr '\n' ' ' | grep -q '^P5' || fail "trajectory is not a PGM"
expect 0 "$genlab" ddpm sample --ckpt "$ck" --n 2 --sampler ddpm --out "$tmp/a.pgm" --json
contains "$out" '"steps":100'   # ancestral: the whole chain of T = 100
expect 0 "$genlab" ddpm sample --ckpt "$ck" --n 3 --steps 7 --seed 5 --out "$tmp/b1.pgm"
expect 0 "$genlab" ddpm sample --ckpt "$ck" --n 3 --steps 7 --seed 5 --out "$tmp/b2.pgm"
cmp -s "$tmp/b1.pgm" "$tmp/b2.pgm" || fail "the same seed gave other digits"
expect 1 "$genlab" ddpm sample --ckpt "$ck" --steps 101 --out "$tmp/c.png"
contains "$err" "more than the checkpoint's T = 100"

# resume continues the run; a weights-only file cannot be resumed
expect 0 "$genlab" ddpm train --resume "$ck" --steps 3 --eval-images 16
expect 0 "$genlab" ddpm info --ckpt "$ck" --json; contains "$out" '"step":"3"'
expect 0 "$genlab" ddpm train --steps 1 --train-images 128 --eval-images 8 --T 100 --weights-only --out "$tmp/w.safetensors.zst"
expect 1 "$genlab" ddpm train --resume "$tmp/w.safetensors.zst"; contains "$err" "--resume needs a training checkpoint"
expect 2 "$genlab" ddpm train --resume "$ck" --lr 0.1;  contains "$err" "--lr cannot change a resumed run"
expect 2 "$genlab" ddpm train --resume "$ck" --weights-only; contains "$err" "needs --out"
expect 2 "$genlab" ddpm train --resume "$ck" --channels 16,16,16; contains "$err" "--channels cannot change"
# a run at other widths keeps them: its checkpoint says so, and samples
expect 0 "$genlab" ddpm train --steps 1 --train-images 128 --eval-images 8 --T 100 --channels 16,32,48 --out "$tmp/n.safetensors.zst"
expect 0 "$genlab" ddpm info --ckpt "$tmp/n.safetensors.zst"; contains "$out" "channels 16/32/48"
expect 0 "$genlab" ddpm sample --ckpt "$tmp/n.safetensors.zst" --n 2 --steps 3 --out "$tmp/n.pgm"
# a checkpoint whose image size is not the data's is refused, not sampled out of bounds
zstd -dq "$ck" -o "$tmp/raw.safetensors"
sed 's/"image_size":"28"/"image_size":"32"/' "$tmp/raw.safetensors" >"$tmp/big.safetensors"
zstd -q "$tmp/big.safetensors" -o "$tmp/big.safetensors.zst"
expect 1 "$genlab" ddpm sample --ckpt "$tmp/big.safetensors.zst" --n 2 --out "$tmp/x.png"
contains "$err" "image_size"; one_line "$err"
# --steps with the ancestral sampler is a respaced chain, not the full one
expect 0 "$genlab" ddpm sample --ckpt "$ck" --n 2 --sampler ddpm --steps 50 --out "$tmp/r.pgm" --json
contains "$out" '"steps":50'

[ $failures = 0 ] && echo "all ddpm CLI checks passed"
exit $((failures > 0))
