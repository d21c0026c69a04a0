#!/usr/bin/env bash
# The CLI as a user drives it: help, layer tables, a short training run,
# eval/recon/sample/encode on its checkpoint, Ctrl-C and --resume, and bad
# input (one clear line, a non-zero exit, nothing left behind).
set -u
genlab=$(realpath "${1:?usage: test_cli.sh GENLAB}")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
# expect STATUS CMD... : runs CMD, keeps stdout/stderr in $out/$err
expect() {
    local want=$1; shift
    "$@" >"$tmp/out" 2>"$tmp/err"
    local got=$?
    out=$(cat "$tmp/out"); err=$(cat "$tmp/err")
    [ "$got" = "$want" ] || fail "exit $got, expected $want: $* :: $(head -c 400 "$tmp/err")"
}
contains() { grep -qF -- "$2" <<<"$1" || fail "expected \"$2\" in: $(head -c 400 <<<"$1")"; }
one_line() { [ "$(printf '%s\n' "$1" | grep -c .)" = 1 ] || fail "expected one line of error, got: $1"; }

# --- help and tables
expect 0 "$genlab" --help;               contains "$out" "train"
for c in info train eval recon sample encode; do
    expect 0 "$genlab" "$c" --help;     contains "$out" "usage: genlab $c"
done
expect 0 "$genlab" info --arch conv --latent 2;  contains "$out" "59525"
expect 0 "$genlab" info --arch dense --latent 2; contains "$out" "1068820"
expect 0 "$genlab" info --arch conv --latent 2 --json; contains "$out" '"params":59525'
expect 0 "$genlab" info;                  contains "$out" "BLAS kernel"

# --- usage errors: exit 2, the problem named
expect 2 "$genlab" frobnicate;            contains "$err" 'unknown command "frobnicate"'
expect 2 "$genlab" train --epochs zero;   contains "$err" "--epochs"
expect 2 "$genlab" info --arch resnet;    contains "$err" "conv or dense"
expect 2 "$genlab" eval --split train;    contains "$err" "study or official"
expect 2 "$genlab" sample --out x.jpg;    contains "$err" "unknown image format"

# --- a short training run, then every command on its checkpoint
ck="$tmp/run.safetensors.zst"
expect 0 "$genlab" train --arch conv --epochs 1 --train-images 640 --out "$ck" --json
contains "$out" '"study":{"bce":'
[ -s "$ck" ] || fail "no checkpoint written"
contains "$(cat "$tmp/err")" "epoch  1/1"
expect 0 "$genlab" info --ckpt "$ck";     contains "$out" "optim.m.enc.conv1.weight"; contains "$out" "official_bce"
expect 0 "$genlab" eval --ckpt "$ck" --json
contains "$out" '"split":"study"'; contains "$out" '"n":12000'; contains "$out" '"bce_mu":'
first=$out
expect 0 "$genlab" eval --ckpt "$ck" --json
[ "$out" = "$first" ] || fail "eval does not repeat: $first vs $out"
expect 0 "$genlab" eval --ckpt "$ck" --split official --limit 500 --json
contains "$out" '"split":"official"'; contains "$out" '"n":500'
for ext in png pgm idx; do
    expect 0 "$genlab" recon --ckpt "$ck" --n 16 --out "$tmp/recon.$ext"
    expect 0 "$genlab" sample --ckpt "$ck" --n 9 --seed 7 --out "$tmp/samples.$ext"
done
[ "$(head -c 8 "$tmp/recon.png" | od -An -tx1 | tr -d ' ')" = 89504e470d0a1a0a ] || fail "recon.png is not a PNG"
head -1 "$tmp/recon.pgm" | grep -q '^P5' || fail "recon.pgm is not a P5 PGM"
# IDX3: magic 0x00000803, then n = 32 (16 originals + 16 reconstructions), 28, 28
[ "$(head -c 16 "$tmp/recon.idx" | od -An -tx1 | tr -d ' \n')" = 00000803000000200000001c0000001c ] ||
    fail "recon.idx header"
[ "$(stat -c %s "$tmp/samples.idx")" = $((16 + 9 * 784)) ] || fail "samples.idx size"
expect 0 "$genlab" sample --ckpt "$ck" --n 9 --seed 7 --out "$tmp/again.idx"
cmp -s "$tmp/samples.idx" "$tmp/again.idx" || fail "the same seed gave different samples"
expect 0 "$genlab" encode --ckpt "$ck" --out "$tmp/mu.tsv"
[ "$(wc -l <"$tmp/mu.tsv")" = 12001 ] || fail "encode: expected 12,000 rows and a header"
[ "$(head -1 "$tmp/mu.tsv")" = "$(printf 'index\tlabel\tmu_0\tmu_1\tlogvar_0\tlogvar_1')" ] || fail "encode header"

# --- resume: a run cut at step 5 and resumed equals the uninterrupted run
expect 0 "$genlab" train --arch dense --epochs 2 --train-images 320 --seed 3 --out "$tmp/full.safetensors.zst"
expect 0 "$genlab" train --arch dense --epochs 2 --train-images 320 --seed 3 --steps 5 --out "$tmp/cut.safetensors.zst"
expect 0 "$genlab" train --resume "$tmp/cut.safetensors.zst"
# the tensor bytes (after the 8-byte length and the JSON header, whose
# metadata holds timings) must be identical
tensor_bytes() {
    zstd -qdc "$1" >"$tmp/raw"
    local n=$(head -c 8 "$tmp/raw" | od -An -tu8 | tr -d ' ')
    tail -c +$((9 + n)) "$tmp/raw"
}
tensor_bytes "$tmp/full.safetensors.zst" >"$tmp/full.bin"
tensor_bytes "$tmp/cut.safetensors.zst" >"$tmp/cut.bin"
[ -s "$tmp/full.bin" ] || fail "no tensor data"
cmp -s "$tmp/full.bin" "$tmp/cut.bin" || fail "resumed weights differ from the uninterrupted run"

# --- Ctrl-C saves a resumable checkpoint and exits 130
"$genlab" train --arch conv --epochs 50 --out "$tmp/int.safetensors.zst" >"$tmp/out" 2>"$tmp/err" &
pid=$!
for _ in $(seq 100); do grep -q "training conv" "$tmp/err" 2>/dev/null && break; sleep 0.1; done
sleep 1
kill -INT $pid
wait $pid
status=$?
[ $status = 130 ] || fail "Ctrl-C: exit $status, expected 130 :: $(cat "$tmp/err")"
contains "$(cat "$tmp/err")" "--resume"
expect 0 "$genlab" info --ckpt "$tmp/int.safetensors.zst"; contains "$out" "optim.v.dec.fc.weight"
ls "$tmp" | grep -q '\.tmp\.' && fail "a temporary file was left behind"

# --- bad input: one line, exit 1, nothing overwritten
echo "not a checkpoint" >"$tmp/bad.safetensors.zst"
expect 1 "$genlab" eval --ckpt "$tmp/bad.safetensors.zst"; one_line "$err"; contains "$err" "bad.safetensors.zst"
expect 1 "$genlab" sample --ckpt "$tmp/missing.safetensors.zst"; one_line "$err"
head -c 3000 "$ck" >"$tmp/trunc.safetensors.zst"
expect 1 "$genlab" info --ckpt "$tmp/trunc.safetensors.zst"; one_line "$err"
expect 1 "$genlab" train --resume "$tmp/trunc.safetensors.zst"; one_line "$err"
expect 1 "$genlab" train --epochs 1 --data "$tmp/nowhere" --out "$tmp/x.safetensors.zst"
one_line "$err"; contains "$err" "nowhere"
cp "$tmp/recon.png" "$tmp/keep.png"
expect 1 "$genlab" recon --ckpt "$ck" --n 4 --out "$tmp/no/such/dir/r.png"; one_line "$err"
cmp -s "$tmp/recon.png" "$tmp/keep.png" || fail "an old output changed"

# --- from another directory, with GENLAB_HOME
(cd / && GENLAB_HOME="$GENLAB_SOURCE_DIR" "$genlab" info) >"$tmp/out" 2>&1 || fail "info from /"
contains "$(cat "$tmp/out")" "$GENLAB_SOURCE_DIR/assets"

[ $failures = 0 ] && echo "all CLI checks passed"
exit $((failures > 0))
