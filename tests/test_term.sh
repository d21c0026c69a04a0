#!/bin/bash
# test_term.sh TERM_DEMO — the terminal layer (src/tui/term.c) as a user
# meets it. tests/term_demo runs from an interactive bash inside a private
# tmux server; the test types keys, resizes the window, sends signals and
# reads the screen, polling for what it expects (never sleeping blindly).
# After every run the terminal must be back as it was: echo and icanon
# on, the normal screen, the cursor shown, the prompt on a clean line.
# Skipped (77) without tmux.
set -u

demo=${1:?usage: test_term.sh TERM_DEMO}
[[ $demo == /* ]] || demo=$PWD/$demo
command -v tmux >/dev/null || { echo "tmux not found: skipped"; exit 77; }
[[ -x $demo ]] || { echo "FAIL: $demo is not an executable"; exit 1; }

work=$(mktemp -d)
sock=$work/tmux.sock
cleanup() {
    tmux -S "$sock" kill-server 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

tm() { tmux -S "$sock" "$@"; }
screen() { tm capture-pane -p "$@"; }

fail() {
    echo "FAIL: $*"
    echo "---- screen ----"
    screen
    exit 1
}

# wait_until WHAT COMMAND...: polls COMMAND for up to 5 s, every 50 ms.
wait_until() {
    local what=$1 i
    shift
    for ((i = 0; i < 100; i++)); do
        "$@" && return 0
        sleep 0.05
    done
    fail "$what"
}

shows() { screen | grep -qF -- "$1"; }
row_is() { [[ $(screen | sed -n "$1p") == "$2" ]]; }
prompt_is_last() { [[ $(screen | sed '/^$/d' | tail -n 1) == "PROMPT>" ]]; }
no_unicode_on_screen() { ! screen | LC_ALL=C.UTF-8 grep -qP '[^\x00-\x7f]'; }

# run.sh runs the demo, then records its exit status and the terminal's
# modes at once, before the interactive bash could tidy anything up. It
# catches SIGINT so that a Ctrl-C meant for the demo does not end it too.
cat >"$work/run.sh" <<'EOF'
ulimit -c 0
trap : INT
"$DEMO" "$@"
echo $? >"$WORK/status"
stty -a >"$WORK/stty.part" && mv "$WORK/stty.part" "$WORK/stty"
EOF

# start [VAR=value...] [-- ARG...]: a fresh demo run with that environment
# and those arguments (words without spaces).
start() {
    local vars=()
    while (($#)) && [[ $1 != -- ]]; do
        vars+=("$1")
        shift
    done
    (($#)) && shift
    rm -f "$work/status" "$work/stty"
    tm send-keys "clear; ${vars[*]} sh $work/run.sh $*" Enter
}

# The run is over (exit status $1) and the terminal is restored.
finished() {
    wait_until "the demo to exit" test -s "$work/stty"
    [[ $(cat "$work/status") == "$1" ]] || fail "exit status $(cat "$work/status"), expected $1"
    grep -qE '(^| )icanon( |$)' "$work/stty" || fail "icanon not restored: $(cat "$work/stty")"
    grep -qE '(^| )echo( |$)' "$work/stty" || fail "echo not restored: $(cat "$work/stty")"
    [[ $(tm display -p '#{alternate_on} #{cursor_flag}') == "0 1" ]] ||
        fail "still on the alternate screen, or the cursor is hidden"
    wait_until "the prompt on a clean line" prompt_is_last
}

demo_pid() { screen | sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -n 1; }

export LC_ALL=C.UTF-8 # for tmux itself; the shell gets its own environment
tm -f /dev/null new-session -d -x 100 -y 30 \
    env -i PATH="$PATH" HOME="$work" LANG=C.UTF-8 TERM=xterm-256color PS1='PROMPT> ' \
    HISTFILE=/dev/null DEMO="$demo" WORK="$work" \
    ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
    UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}" \
    bash --norc --noprofile
wait_until "the shell's prompt" prompt_is_last

# (1) The first frame fills the window, bottom-right cell included, in
# grey colour pairs, without scrolling.
start
wait_until "the first frame" row_is 1 "w=100 h=30 mode=256"
wait_until "'Z' in the bottom-right cell" row_is 30 "$(printf '%99sZ' '')"
screen | grep -qF '▀' || fail "no half blocks"
screen -e | grep -qE '48;5;2(3[2-9]|4[0-9]|5[0-5])m' || fail "no grey background colours"

# (2) Keys arrive as their codes: a letter, an arrow (KEY_UP), a wide character.
tm send-keys x
wait_until "key x" shows "key=120 "
tm send-keys Up
wait_until "KEY_UP" shows "key=F259 "
tm send-keys -l é
wait_until "é as one code point" shows "key=233 "
# U+0103 is also curses' KEY_UP (259): it must come back as the character
tm send-keys -l ă
wait_until "ă as itself, not as KEY_UP" shows "key=259 "

# (3) A resize is a KEY_RESIZE with the new size in place, both ways.
tm resize-window -x 60 -y 20
wait_until "the smaller frame" row_is 1 "w=60 h=20 mode=256"
wait_until "KEY_RESIZE" shows "key=F410 "
wait_until "'Z' in the new corner" row_is 20 "$(printf '%59sZ' '')"
tm resize-window -x 100 -y 30
wait_until "the larger frame" row_is 1 "w=100 h=30 mode=256"
wait_until "'Z' back in the corner" row_is 30 "$(printf '%99sZ' '')"

# (4) q quits and restores the terminal.
tm send-keys q
finished 0

# (5) Ctrl-Z hands the terminal back to the shell; fg brings the frame
# back. The demo runs directly: a wrapper script would stop at once, and
# bash print its notice on the demo's screen before the demo left it.
tm send-keys 'clear; "$DEMO"' Enter
wait_until "the demo to start" row_is 1 "w=100 h=30 mode=256"
tm send-keys x
wait_until "key x" shows "key=120 "
tm send-keys C-z
wait_until "bash's notice after Ctrl-Z" shows "Stopped"
wait_until "the prompt after Ctrl-Z" prompt_is_last
[[ $(tm display -p '#{alternate_on} #{cursor_flag}') == "0 1" ]] ||
    fail "Ctrl-Z left the alternate screen on, or the cursor hidden"
tm send-keys fg Enter
wait_until "the frame after fg" row_is 1 "w=100 h=30 mode=256"
wait_until "a KEY_RESIZE after fg" shows "key=F410 "
wait_until "'Z' in the corner after fg" row_is 30 "$(printf '%99sZ' '')"
tm send-keys q
wait_until "the prompt after q" prompt_is_last

# (6) SIGTERM, and Ctrl-C from the keyboard: a clean, reported exit.
start
wait_until "the demo to start" shows "pid="
kill -TERM "$(demo_pid)"
finished 130
shows interrupted || fail "no 'interrupted' after SIGTERM"
start
wait_until "the demo to start" shows "pid="
tm send-keys C-c
finished 130
shows interrupted || fail "no 'interrupted' after Ctrl-C"

# (7) A crash (SIGSEGV) still restores the terminal.
start
wait_until "the demo to start" shows "pid="
tm send-keys c
finished 139

# (8) ASCII mode: forced, or from a locale that is not UTF-8; and without
# colours (--no-color, NO_COLOR). Never a byte above 127, never a colour.
ascii_run() {
    start "$@"
    wait_until "ASCII mode ($*)" row_is 1 "w=100 h=30 mode=ascii"
    wait_until "'Z' in the bottom-right cell ($*)" row_is 30 "$(printf '%99sZ' '')"
    no_unicode_on_screen || fail "non-ASCII characters in ASCII mode ($*)"
    screen -e | grep -qE '\[(38|48);5;' && fail "colours in ASCII mode ($*)"
    tm send-keys q
    finished 0
}
ascii_run -- --ascii
ascii_run LANG=C
ascii_run -- --no-color
ascii_run NO_COLOR=1

# (9) An unknown terminal type is one clear line, and leaves the terminal alone.
start TERM=no-such-terminal
finished 1
shows "TERM=no-such-terminal is unknown" || fail "no message for an unknown TERM"

echo "ok: term"
