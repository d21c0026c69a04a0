#!/usr/bin/env bash
# The Diffusion screen (5) driven from the keyboard in a private tmux
# server, on a DDPM checkpoint trained for one step here (GENLAB_DDPM_CKPT
# points the UI at it): the frame counter advances while playing, Space
# pauses it, Left steps back (t changes), m switches the sampler, v shows
# the VAE-vs-DDPM view with both wall times, q quits. Without a checkpoint
# the screen says so in one line. Skips (77) where tmux is absent.
set -u
genlab=$(realpath "${1:?usage: test_tui_diffusion.sh GENLAB}")
command -v tmux >/dev/null || { echo "tmux not installed: skipped"; exit 77; }
tmp=$(mktemp -d)
sock=$tmp/tmux.sock
tmx() { tmux -S "$sock" -f /dev/null "$@"; }
trap 'tmx kill-server 2>/dev/null; rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL: $*"; echo "--- screen:"; tmx capture-pane -p -t t | sed 's/^/| /'; failures=$((failures + 1)); }

# wait_for TEXT [SECONDS]: polls the pane until TEXT shows (fixed string)
wait_for() {
    local deadline=$((SECONDS + ${2:-10}))
    while [ $SECONDS -lt $deadline ]; do
        tmx capture-pane -p -t t | grep -qF -- "$1" && return 0
        sleep 0.05
    done
    return 1
}
screen() { tmx capture-pane -p -t t; }
frame_no() { screen | sed -n 's/.* frame \([0-9][0-9]*\)\/.*/\1/p' | head -1; }
step_t() { screen | sed -n 's/^ *t = \([0-9][0-9]*\) .*/\1/p' | head -1; }
# wait_change CMD OLD [SECONDS]: polls until CMD prints something other than OLD
wait_change() {
    local deadline=$((SECONDS + ${3:-10})) now
    while [ $SECONDS -lt $deadline ]; do
        now=$($1)
        [ -n "$now" ] && [ "$now" != "$2" ] && return 0
        sleep 0.05
    done
    return 1
}

"$genlab" ddpm train --steps 1 --train-images 128 --eval-images 8 --weights-only \
    --out "$tmp/d.safetensors.zst" >"$tmp/train.log" 2>&1 ||
    { echo "FAIL: could not train the tiny DDPM"; cat "$tmp/train.log"; exit 1; }

tmx new-session -d -s t -x 100 -y 30 \
    "env -i HOME=$tmp PATH=/usr/bin:/bin TERM=xterm-256color LANG=C.UTF-8 GENLAB_HOME=$GENLAB_SOURCE_DIR GENLAB_NO_REEXEC=1 bash --norc --noprofile"
tmx send-keys -t t "PS1='PROMPT> '; cd $tmp" Enter
wait_for "PROMPT>" || fail "no shell prompt"

# no checkpoint: one line saying what to do
tmx send-keys -t t "clear; GENLAB_DDPM_CKPT=$tmp/none.safetensors.zst $genlab" Enter
wait_for "1 Train" || fail "no top bar"
tmx send-keys -t t "5"
wait_for "No DDPM model: train one" || fail "no line about the missing DDPM model"
# o opens a DDPM from the list onto this screen (d.safetensors.zst sorts last)
tmx send-keys -t t "o"
wait_for "open a checkpoint" || fail "the open list did not appear"
for _ in $(seq 15); do tmx send-keys -t t Down; done
tmx send-keys -t t Enter
wait_for "model d · DDIM" 20 || fail "o did not open the DDPM on the Diffusion screen"
tmx send-keys -t t "q"
wait_for "PROMPT>" 10 || fail "did not exit without a DDPM model"

tmx send-keys -t t "clear; GENLAB_DDPM_CKPT=$tmp/d.safetensors.zst $genlab" Enter
wait_for "1 Train" || fail "no top bar"
tmx send-keys -t t "5"
wait_for "DDIM η=0, 50 steps" 20 || fail "the Diffusion screen did not open on DDIM, 50 steps"
wait_for "▶ playing" || fail "not playing"
# slow playback to 2 frames a second, so that each check sees it move
tmx send-keys -t t "-" "-" "-"
wait_for "playing 2 frames/s" || fail "− did not slow the playback"
first=$(frame_no)
wait_change frame_no "$first" 30 || fail "the frame counter did not advance while playing ($first)"

tmx send-keys -t t " "
wait_for "‖ paused" || fail "Space did not pause"
held=$(frame_no); sleep 1
[ "$(frame_no)" = "$held" ] || fail "frames advanced while paused ($held → $(frame_no))"
t_before=$(step_t)
tmx send-keys -t t Left
wait_change step_t "$t_before" || fail "Left did not step back (t = $t_before)"
[ "$(frame_no)" -lt "$held" ] || fail "Left did not go back a frame ($held → $(frame_no))"

# End and Home as tmux sends them (ESC [4~ / [1~, not TERM's own)
before=$(frame_no)
tmx send-keys -t t End
wait_change frame_no "$before" || fail "End did not jump to the last frame (from $before)"
last=$(frame_no)
tmx send-keys -t t Home
wait_for "frame 0/" || fail "Home did not go back to the first frame (from $last)"

tmx send-keys -t t "m"
wait_for "DDPM ancestral, all 4000 steps" || fail "m did not switch to the DDPM sampler"
tmx send-keys -t t "m"
wait_for "DDIM η=0, 50 steps" || fail "m did not switch back to DDIM"

tmx send-keys -t t "v"
wait_for "VAE: 6 digits in" 10 || fail "no VAE timing in the comparison"
wait_for "DDPM: 6 digits in" 300 || fail "no DDPM timing in the comparison"
tmx send-keys -t t "v"
wait_for "schedule vs t" || fail "v did not go back to the chains"

tmx send-keys -t t "q"
wait_for "PROMPT>" 20 || fail "q did not quit to the shell"

[ $failures = 0 ] && echo "all Diffusion screen checks passed"
exit $((failures > 0))
