#!/usr/bin/env bash
# The TUI driven as a presenter drives it, in a private tmux server:
# first frame with half-block digits, the demo run started from the
# keyboard (its step counter advances, braille curves appear), help opens
# and closes, a tiny terminal shows the warning, q asks before losing an
# unsaved run, and the shell gets a clean, sane terminal back.
# Skips (77) where tmux is absent.
set -u
genlab=$(realpath "${1:?usage: test_tui.sh GENLAB}")
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
# wait_gone TEXT [SECONDS]: polls until TEXT is no longer on screen
wait_gone() {
    local deadline=$((SECONDS + ${2:-5}))
    while [ $SECONDS -lt $deadline ]; do
        tmx capture-pane -p -t t | grep -qF -- "$1" || return 0
        sleep 0.05
    done
    return 1
}
screen() { tmx capture-pane -p -t t; }
# the number after "step " in the readout line
step_count() { screen | sed -n 's/.*step \([0-9][0-9]*\) ·.*/\1/p' | head -1; }

tmx new-session -d -s t -x 120 -y 40 \
    "env -i HOME=$tmp PATH=/usr/bin:/bin TERM=xterm-256color LANG=C.UTF-8 GENLAB_HOME=$GENLAB_SOURCE_DIR GENLAB_NO_REEXEC=1 bash --norc --noprofile"
tmx send-keys -t t "PS1='PROMPT> '; cd $tmp" Enter
wait_for "PROMPT>" || fail "no shell prompt"
tmx send-keys -t t "clear; $genlab" Enter

wait_for "1 Train" || fail "no top bar"
wait_for "test digits (top)" || fail "no reconstruction panel"
wait_for "▀" 10 || fail "no half-block digits"
wait_for "model vae-conv-d2-b1" || fail "did not open on the shipped conv VAE"

# the latent explorer: arrows move the cursor and change the decoded digit
zline() { screen | grep -o 'z = ([^)]*)' | head -1; }
tmx send-keys -t t "2"
wait_for "decoded at the cursor" 15 || fail "no latent screen"
wait_for "grid: normal quantiles" || fail "no quantile grid"
z0=$(zline); f0=$(screen | sed -n 4,17p)
for _ in 1 2 3 4 5 6; do tmx send-keys -t t Right; done
for _ in $(seq 100); do [ "$(zline)" != "$z0" ] && break; sleep 0.05; done
z1=$(zline); f1=$(screen | sed -n 4,17p)
[ -n "$z0" ] && [ "$z1" != "$z0" ] || fail "the cursor did not move ($z0 → $z1)"
[ "$f1" != "$f0" ] || fail "the decoded digit did not change"
tmx send-keys -t t "c" "7"
for _ in $(seq 100); do [ "$(zline)" != "$z1" ] && break; sleep 0.05; done
[ "$(zline)" != "$z1" ] || fail "c 7 did not jump to a class centre"
wait_for "decoded at the cursor" 5 || fail "c 7 left the latent screen"
tmx send-keys -t t "g"
wait_for "grid: box around the data" || fail "g did not switch the grid"
tmx send-keys -t t "c" "0" "m" "c" "7" "m"
wait_for "morph from A to B" || fail "pinning two points showed no morph"
wait_for "slerp" 5 || fail "no spherical morph strip"
tmx send-keys -t t Escape
wait_gone "morph from A" || fail "Esc did not clear the pins"

# generate: digits from the prior, r draws new ones
tmx send-keys -t t "3"
wait_for "seed 0" || fail "no generate screen"
tmx send-keys -t t "r"
wait_for "seed 1" || fail "r did not draw new digits"
wait_for "▀" 5 || fail "no generated digits"
# compare: the grid's table beside the study's verdicts, then side by side
tmx send-keys -t t "4"
wait_for "the study's verdict" || fail "no comparison table"
wait_for "vae-dense-d4-b1" 5 || fail "the table misses a shipped checkpoint"
tmx send-keys -t t Enter
wait_for "samples from N(0, I)" 15 || fail "no side-by-side view"
wait_for "over-compact" 5 || fail "the study's verdicts are not beside the models"
tmx send-keys -t t "1"
wait_for "start/pause/resume" || fail "did not come back to the Train screen"

# help opens and closes
tmx send-keys -t t "?"
wait_for "Global" || fail "help did not open"
wait_for "start/pause/resume" 5 || fail "help does not list the Train keys"
tmx send-keys -t t Escape
wait_gone "Global" || fail "help did not close"

# the demo run, started from the keyboard
tmx send-keys -t t "p"
wait_for "epochs 10 of 9600 images" || fail "demo preset not applied"
tmx send-keys -t t "t"
wait_for "● running" 20 || fail "the run did not start"
wait_for "step " 20 || fail "no step counter"
first=$(step_count)
sleep 1
second=$(step_count)
[ -n "$first" ] && [ -n "$second" ] && [ "$second" -gt "$first" ] ||
    fail "step counter did not advance ($first → $second)"
screen | LC_ALL=C grep -q $'\xe2[\xa0-\xa3]' || fail "no braille plot"

# pause: the counter holds
tmx send-keys -t t "t"
wait_for "● paused" || fail "did not pause"
held=$(step_count); sleep 0.5
[ "$(step_count)" = "$held" ] || fail "steps advanced while paused"
tmx send-keys -t t "t"
wait_for "● running" || fail "did not resume"

# a tiny terminal shows the warning, then the screen comes back
tmx resize-window -t t -x 60 -y 20
wait_for "terminal too small" || fail "no 'too small' screen at 60×20"
tmx resize-window -t t -x 120 -y 40
wait_for "1 Train" || fail "screen did not come back after resize"

# q asks before losing the unsaved run; then quits to a clean prompt
tmx send-keys -t t "q"
wait_for "unsaved" || fail "q did not ask about the unsaved run"
tmx send-keys -t t "q"
wait_for "PROMPT>" 10 || fail "did not exit to the shell"
# stty's words land in a file in one rename, so the check never reads a
# half-printed answer (icanon comes before echo in stty's output)
tmx send-keys -t t "clear; stty -a | tr ' ;' '\n\n' >stty.part && mv stty.part stty.out" Enter
for _ in $(seq 200); do [ -s "$tmp/stty.out" ] && break; sleep 0.05; done
grep -qx "icanon" "$tmp/stty.out" || fail "terminal not restored (icanon)"
grep -qx "echo" "$tmp/stty.out" || fail "echo not restored"

# bad input appears as a message in the UI, never as a crash
echo "not a checkpoint" >"$tmp/bad.safetensors.zst"
tmx send-keys -t t "clear; $genlab --ckpt $tmp/bad.safetensors.zst --data $tmp/nowhere" Enter
wait_for "1 Train" || fail "the UI did not start with a bad checkpoint and missing data"
wait_for "bad.safetensors.zst" || fail "no message about the bad checkpoint"
wait_for "nowhere" 10 || fail "no message about the missing data"
tmx send-keys -t t "o"
wait_for "open a checkpoint" || fail "the open list did not appear"
tmx send-keys -t t Escape "q"
wait_for "PROMPT>" 10 || fail "did not exit after bad input"

[ $failures = 0 ] && echo "all TUI checks passed"
exit $((failures > 0))
