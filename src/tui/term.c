/* term.c — the terminal (see term.h): curses set-up and restore, signals
 * turned into keys, and CellBufs copied to the screen.
 *
 * Signals. SIGINT, SIGTERM, SIGHUP, SIGWINCH and SIGTSTP stay blocked in
 * the UI thread (and in every thread it starts later) except inside
 * pselect() in term_read_key. Their handler only writes the signal number
 * into a self-pipe, which pselect also watches, so a signal delivered to
 * any thread that does not block it (a library's pool started before
 * term_open) still wakes the UI. The handlers are installed before
 * newterm(), so curses sees them in place and installs none of its own:
 * the UI thread alone resizes curses, and suspends it on Ctrl-Z (curses'
 * own SIGTSTP handler would call curses from whichever thread the signal
 * hit).
 *
 * Fatal signals get a handler that does only async-signal-safe things:
 * the termios saved before curses started, the reset sequences, re-raise. */
#define NCURSES_WIDECHAR 1
#include "genlab/term.h"

#include <curses.h>
#include <errno.h>
#include <fcntl.h>
#include <langinfo.h>
#include <limits.h>
#include <locale.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <wchar.h>

static const int async_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGWINCH, SIGTSTP};
/* SIGQUIT too: Ctrl-\ would otherwise leave a dead program's terminal raw. */
static const int fatal_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGQUIT};
enum {
    N_ASYNC = sizeof async_signals / sizeof async_signals[0],
    N_FATAL = sizeof fatal_signals / sizeof fatal_signals[0],
    /* setcchar takes the pair as a short. */
    MAX_PAIRS = 32767,
    /* Cache index of a colour: COLOR_DEFAULT (-1) .. 255 → 0 .. 256. */
    N_COLOR_KEYS = 257,
};

/* Read by the signal handlers: set before they are installed. The pipe
 * lives as long as the process: a handler still running in another thread
 * when the terminal closes must not write into a reused descriptor. */
static int wake_pipe[2] = {-1, -1};
static struct termios saved_termios;

static struct {
    int open;
    SCREEN *screen;
    Palette palette;
    int unicode_glyphs;      /* UTF-8 locale and not --ascii */
    int default_colors;      /* use_default_colors worked: -1 is a colour */
    int direct_color;        /* colours are RGB values (TERM=xterm-direct) */
    sigset_t wait_mask;      /* the mask pselect waits with: ours unblocked */
    sigset_t unblock_on_close; /* ours that were not blocked before term_open */
    struct sigaction old_async[N_ASYNC], old_fatal[N_FATAL];
    int pending_interrupt, pending_suspend, pending_resize;
    /* Colour pairs: pair_colors[n] = (fg, bg) of pair n for n < used_pairs;
     * pair_cache[fg + 1][bg + 1] = the pair drawing (fg, bg), plus one
     * (0: not looked up yet). */
    int used_pairs, max_pairs;
    int16_t pair_colors[MAX_PAIRS][2];
    int16_t pair_cache[N_COLOR_KEYS][N_COLOR_KEYS];
} term;

/* ---- signals -------------------------------------------------------------- */

static void on_async_signal(int sig)
{
    int saved_errno = errno;
    unsigned char byte = (unsigned char)sig;
    /* A full pipe already holds a wake-up: losing this byte is harmless. */
    ssize_t ignored = write(wake_pipe[1], &byte, 1);
    (void)ignored;
    errno = saved_errno;
}

static void on_fatal_signal(int sig)
{
    /* sgr0, cnorm, rmkx (cursor keys back to normal mode), rmcup. */
    static const char reset[] = "\033[0m\033[?25h\033[?1l\033>\033[?1049l\r\n";
    tcsetattr(STDIN_FILENO, TCSANOW, &saved_termios);
    ssize_t ignored = write(STDOUT_FILENO, reset, sizeof reset - 1);
    (void)ignored;
    /* SA_RESETHAND made the action the default one: the signal, pending
     * while this handler runs, kills the process once it returns. */
    raise(sig);
}

static void install_handlers(const int *sigs, int n, void (*handler)(int), int flags,
                             struct sigaction *old)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sa.sa_flags = flags;
    sigfillset(&sa.sa_mask);
    for (int i = 0; i < n; i++) sigaction(sigs[i], &sa, &old[i]);
}

static void restore_handlers(const int *sigs, int n, const struct sigaction *old)
{
    for (int i = 0; i < n; i++) sigaction(sigs[i], &old[i], NULL);
}

static void async_signal_set(sigset_t *set)
{
    sigemptyset(set);
    for (int i = 0; i < N_ASYNC; i++) sigaddset(set, async_signals[i]);
}

static int open_wake_pipe(Err *e)
{
    if (wake_pipe[0] >= 0) return 0;
    if (pipe2(wake_pipe, O_NONBLOCK | O_CLOEXEC) != 0)
        return err_set(e, "cannot start the terminal UI: pipe: %s", strerror(errno));
    return 0;
}

/* Blocks our signals in the calling thread and remembers the mask to wait
 * with, then installs the handlers that write to the pipe. */
static void take_async_signals(void)
{
    sigset_t ours, before;
    async_signal_set(&ours);
    pthread_sigmask(SIG_BLOCK, &ours, &before);
    term.wait_mask = before;
    sigemptyset(&term.unblock_on_close);
    for (int i = 0; i < N_ASYNC; i++) {
        sigdelset(&term.wait_mask, async_signals[i]);
        if (!sigismember(&before, async_signals[i])) sigaddset(&term.unblock_on_close, async_signals[i]);
    }
    /* SA_RESTART for threads that run with them unblocked; pselect is
     * never restarted, so the UI still wakes. */
    install_handlers(async_signals, N_ASYNC, on_async_signal, SA_RESTART, term.old_async);
}

/* Unblocks first, while our handlers are still there: a signal pending
 * since the last wait then only writes to the pipe. */
static void give_back_async_signals(void)
{
    pthread_sigmask(SIG_UNBLOCK, &term.unblock_on_close, NULL);
    restore_handlers(async_signals, N_ASYNC, term.old_async);
}

static void drain_wake_pipe(void)
{
    unsigned char buf[64];
    ssize_t n;
    while ((n = read(wake_pipe[0], buf, sizeof buf)) > 0) {
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] == SIGWINCH) term.pending_resize = 1;
            else if (buf[i] == SIGTSTP) term.pending_suspend = 1;
            else term.pending_interrupt = 1;
        }
    }
}

/* ---- start and stop ------------------------------------------------------- */

static int utf8_locale(void)
{
    return strcmp(nl_langinfo(CODESET), "UTF-8") == 0;
}

static int no_color_env(void)
{
    const char *v = getenv("NO_COLOR"); /* no-color.org: set and not empty */
    return v && *v;
}

static int check_terminal(Err *e)
{
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO))
        return err_set(e, "cannot start the terminal UI: standard input and output must be a terminal");
    const char *name = getenv("TERM");
    if (!name || !*name)
        return err_set(e, "cannot start the terminal UI: TERM is not set (try TERM=xterm-256color)");
    return 0;
}

/* For the fatal-signal handler, which cannot ask curses. */
static int save_terminal_modes(Err *e)
{
    if (tcgetattr(STDIN_FILENO, &saved_termios) != 0)
        return err_set(e, "cannot start the terminal UI: tcgetattr: %s", strerror(errno));
    return 0;
}

/* Home and End as VT220-style terminals and tmux send them (ESC [1~ / [4~,
 * rxvt's [7~ / [8~), whatever the terminfo entry in TERM says: a presenter's
 * terminal and TERM often disagree, and the Diffusion screen needs both. */
static void accept_home_end_variants(void)
{
    static const char *const home[] = {"\033[1~", "\033[7~", "\033[H", "\033OH"};
    static const char *const end[] = {"\033[4~", "\033[8~", "\033[F", "\033OF"};
    /* xterm's terminfo calls ESC [1~ and [4~ Find and Select: rebind them */
    for (size_t i = 0; i < sizeof home / sizeof *home; i++) {
        if (key_defined(home[i]) != KEY_HOME) define_key(home[i], 0), define_key(home[i], KEY_HOME);
        if (key_defined(end[i]) != KEY_END) define_key(end[i], 0), define_key(end[i], KEY_END);
    }
}

/* newterm, unlike initscr, returns NULL instead of exiting on a bad TERM. */
static int start_curses(Err *e)
{
    term.screen = newterm(NULL, stdout, stdin);
    if (!term.screen)
        return err_set(e, "cannot start the terminal UI: TERM=%s is unknown (try TERM=xterm-256color)",
                       getenv("TERM"));
    cbreak(); /* keeps ISIG: Ctrl-C arrives as SIGINT, hence TERM_KEY_INTERRUPT */
    noecho();
    keypad(stdscr, TRUE);
    accept_home_end_variants();
    nodelay(stdscr, TRUE); /* term_read_key waits in pselect, not in curses */
    leaveok(stdscr, TRUE); /* the cursor is hidden: do not move it back after drawing */
    curs_set(0);
    set_escdelay(25);
    return 0;
}

static void start_pairs(void)
{
    memset(term.pair_cache, 0, sizeof term.pair_cache);
    term.max_pairs = COLOR_PAIRS < MAX_PAIRS ? COLOR_PAIRS : MAX_PAIRS;
    term.direct_color = COLORS > 256;
    term.default_colors = use_default_colors() == OK;
    /* Pair 0 is the terminal's default colours, or white on black. */
    term.pair_colors[0][0] = term.default_colors ? COLOR_DEFAULT : COLOR_WHITE;
    term.pair_colors[0][1] = term.default_colors ? COLOR_DEFAULT : COLOR_BLACK;
    term.used_pairs = 1;
}

static DisplayMode choose_mode(const TermOptions *o, int utf8)
{
    int color = utf8 && !o->force_ascii && !o->force_no_color && !no_color_env() && has_colors();
    if (!color || start_color() == ERR) return DISPLAY_ASCII;
    start_pairs();
    return COLORS >= 256 ? DISPLAY_256 : DISPLAY_16;
}

int term_open(const TermOptions *o, Err *e)
{
    static int exit_hook;
    if (term.open) return err_set(e, "the terminal UI is already open");
    setlocale(LC_ALL, "");
    int utf8 = utf8_locale();
    if (check_terminal(e) || save_terminal_modes(e) || open_wake_pipe(e)) return -1;
    take_async_signals();
    if (start_curses(e)) {
        give_back_async_signals();
        return -1;
    }
    term.unicode_glyphs = utf8 && !o->force_ascii;
    term.palette = (Palette){choose_mode(o, utf8), o->inverted};
    term.pending_interrupt = term.pending_suspend = term.pending_resize = 0;
    install_handlers(fatal_signals, N_FATAL, on_fatal_signal, SA_RESETHAND, term.old_fatal);
    if (!exit_hook) exit_hook = atexit(term_close) == 0;
    term.open = 1;
    return 0;
}

void term_close(void)
{
    if (!term.open) return;
    term.open = 0;
    restore_handlers(fatal_signals, N_FATAL, term.old_fatal);
    endwin();
    delscreen(term.screen);
    term.screen = NULL;
    give_back_async_signals();
}

Palette term_palette(void)
{
    return term.palette;
}

void term_size(int *w, int *h)
{
    *w = term.open ? COLS : 0;
    *h = term.open ? LINES : 0;
}

/* ---- keys ----------------------------------------------------------------- */

/* The terminal rearranged its contents itself: take the new size and
 * repaint everything on the next update. (resize_term, not resizeterm,
 * which may queue a second KEY_RESIZE.) */
static void apply_resize(void)
{
    struct winsize ws;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 && ws.ws_col > 0)
        resize_term(ws.ws_row, ws.ws_col);
    clearok(curscr, TRUE);
}

/* A key curses holds or can read without waiting. Escape sequences come
 * whole: curses waits ESCDELAY for the rest of one even in nodelay mode. */
static int read_curses_key(void)
{
    wint_t wc;
    int rc = wget_wch(stdscr, &wc);
    if (rc == KEY_CODE_YES) return TERM_FKEY((int)wc);
    return rc == OK ? (int)wc : TERM_KEY_NONE;
}

/* Ctrl-Z: hand the terminal back and stop. On `fg`, report a resize: the
 * screen must be drawn again, maybe at a new size (the next doupdate puts
 * curses' terminal modes back). SIGTTOU stays blocked in endwin: when a
 * wrapper script stopped before us, the shell already owns the terminal,
 * and restoring it must not stop us half-way (`fg` would then be needed
 * twice). A terminal that hung up meanwhile has nobody left to resume us. */
static void suspend(void)
{
    sigset_t ttou, before;
    sigemptyset(&ttou);
    sigaddset(&ttou, SIGTTOU);
    pthread_sigmask(SIG_BLOCK, &ttou, &before);
    endwin();
    pthread_sigmask(SIG_SETMASK, &before, NULL);
    if (tcgetpgrp(STDIN_FILENO) != -1) raise(SIGSTOP);
    term.pending_resize = 1;
}

/* Signals first (an interrupt before a suspend before a resize), then keys. */
static int next_event(void)
{
    drain_wake_pipe();
    if (term.pending_interrupt) {
        term.pending_interrupt = 0;
        return TERM_KEY_INTERRUPT;
    }
    if (term.pending_suspend) {
        term.pending_suspend = 0;
        suspend();
    }
    if (term.pending_resize) {
        term.pending_resize = 0;
        apply_resize();
        return TERM_FKEY(KEY_RESIZE);
    }
    return read_curses_key();
}

enum { WOKE_TIMEOUT, WOKE_INPUT, WOKE_SIGNAL };

static struct timespec deadline_after(int ms)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    t.tv_sec += ms / 1000;
    t.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

static struct timespec time_left(const struct timespec *deadline)
{
    struct timespec now, left;
    clock_gettime(CLOCK_MONOTONIC, &now);
    left.tv_sec = deadline->tv_sec - now.tv_sec;
    left.tv_nsec = deadline->tv_nsec - now.tv_nsec;
    if (left.tv_nsec < 0) {
        left.tv_sec--;
        left.tv_nsec += 1000000000L;
    }
    if (left.tv_sec < 0) left.tv_sec = left.tv_nsec = 0;
    return left;
}

/* Waits for input or the pipe with our signals unblocked; pselect swaps
 * the mask atomically, so a signal cannot slip in between check and wait.
 * Even a zero timeout delivers the signals pending meanwhile. */
static int wait_for_input(const struct timespec *deadline)
{
    fd_set readable;
    FD_ZERO(&readable);
    FD_SET(STDIN_FILENO, &readable);
    FD_SET(wake_pipe[0], &readable);
    struct timespec left;
    if (deadline) left = time_left(deadline);
    int n = pselect(wake_pipe[0] + 1, &readable, NULL, NULL, deadline ? &left : NULL, &term.wait_mask);
    if (n > 0) return FD_ISSET(STDIN_FILENO, &readable) ? WOKE_INPUT : WOKE_SIGNAL;
    /* Any error but EINTR counts as a timeout: never spin in here. */
    return n < 0 && errno == EINTR ? WOKE_SIGNAL : WOKE_TIMEOUT;
}

/* Input readable yet no key: the terminal went away (its window closed
 * without a SIGHUP reaching us); waiting on would spin. */
static int input_hung_up(void)
{
    struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
    return poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR | POLLNVAL));
}

int term_read_key(int timeout_ms)
{
    if (!term.open) return TERM_KEY_NONE;
    struct timespec deadline = deadline_after(timeout_ms > 0 ? timeout_ms : 0);
    int key = next_event();
    while (key == TERM_KEY_NONE) {
        int woke = wait_for_input(timeout_ms < 0 ? NULL : &deadline);
        key = next_event();
        if (key != TERM_KEY_NONE || woke == WOKE_TIMEOUT) break;
        if (woke == WOKE_INPUT && input_hung_up()) key = TERM_KEY_INTERRUPT;
    }
    return key;
}

/* ---- colour pairs --------------------------------------------------------- */

/* max − min of the channels: 0 for greys. */
static int chroma(const uint8_t rgb[3])
{
    int lo = rgb[0], hi = rgb[0];
    for (int i = 1; i < 3; i++) {
        if (rgb[i] < lo) lo = rgb[i];
        if (rgb[i] > hi) hi = rgb[i];
    }
    return hi - lo;
}

/* Squared RGB distance plus a penalty for a difference in chroma, so that
 * a grey stays grey (by RGB alone, mid-grey's nearest of the 8 basic
 * colours is yellow). The default colour is unlike every other. */
static int color_distance(int a, int b)
{
    if (a == b) return 0;
    if (a == COLOR_DEFAULT || b == COLOR_DEFAULT) return INT_MAX / 2;
    uint8_t p[3], q[3];
    palette_rgb((int16_t)a, p);
    palette_rgb((int16_t)b, q);
    int d = 0;
    for (int i = 0; i < 3; i++) d += (p[i] - q[i]) * (p[i] - q[i]);
    int dc = chroma(p) - chroma(q);
    return d + 2 * dc * dc;
}

/* The number curses wants for a palette colour: the same, but 0xRRGGBB on
 * a direct-colour terminal (where 0–7 stay the ANSI colours). */
static int curses_color_value(int c)
{
    if (!term.direct_color || c < 8) return c;
    uint8_t rgb[3];
    palette_rgb((int16_t)c, rgb);
    return rgb[0] << 16 | rgb[1] << 8 | rgb[2];
}

/* A colour the terminal has: the nearest of its COLORS, and for the
 * default colour a stand-in when the terminal cannot keep its own. */
static int terminal_color(int c, int stand_in)
{
    if (c == COLOR_DEFAULT) return term.default_colors ? COLOR_DEFAULT : stand_in;
    if (c < COLORS) return c;
    int best = 0;
    for (int t = 1; t < COLORS && t < 256; t++)
        if (color_distance(c, t) < color_distance(c, best)) best = t;
    return best;
}

static int pair_distance(int pair, int fg, int bg)
{
    return color_distance(term.pair_colors[pair][0], fg) + color_distance(term.pair_colors[pair][1], bg);
}

static int nearest_pair(int fg, int bg)
{
    int best = 0;
    for (int p = 1; p < term.used_pairs; p++)
        if (pair_distance(p, fg, bg) < pair_distance(best, fg, bg)) best = p;
    return best;
}

/* An existing pair with these colours, a new one, or once the terminal's
 * pairs run out, the nearest. */
static int pair_for_colors(int fg, int bg)
{
    int best = nearest_pair(fg, bg);
    if (pair_distance(best, fg, bg) == 0 || term.used_pairs >= term.max_pairs) return best;
    if (init_extended_pair(term.used_pairs, curses_color_value(fg), curses_color_value(bg)) == ERR)
        return best;
    term.pair_colors[term.used_pairs][0] = (int16_t)fg;
    term.pair_colors[term.used_pairs][1] = (int16_t)bg;
    return term.used_pairs++;
}

static int palette_color_or_default(int c)
{
    return c >= COLOR_DEFAULT && c < 256 ? c : COLOR_DEFAULT;
}

static short cell_pair(const Cell *c)
{
    if (term.palette.mode == DISPLAY_ASCII) return 0;
    int fg = palette_color_or_default(c->fg), bg = palette_color_or_default(c->bg);
    int16_t *cached = &term.pair_cache[fg + 1][bg + 1];
    if (!*cached) {
        int pair = pair_for_colors(terminal_color(fg, COLOR_WHITE), terminal_color(bg, COLOR_BLACK));
        *cached = (int16_t)(pair + 1);
    }
    return (short)(*cached - 1);
}

/* ---- drawing -------------------------------------------------------------- */

static int listed(uint32_t ch, const uint16_t *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (list[i] == ch) return 1;
    return 0;
}

/* Box drawing U+2500–U+257F: lines to '-' and '|', the rest to '+'. */
static wchar_t ascii_box(uint32_t ch)
{
    static const uint16_t horizontal[] = {0x2500, 0x2501, 0x2504, 0x2505, 0x2508, 0x2509, 0x254C, 0x254D,
                                          0x2550, 0x2574, 0x2576, 0x2578, 0x257A, 0x257C, 0x257E};
    static const uint16_t vertical[] = {0x2502, 0x2503, 0x2506, 0x2507, 0x250A, 0x250B, 0x254E, 0x254F,
                                        0x2551, 0x2575, 0x2577, 0x2579, 0x257B, 0x257D, 0x257F};
    if (listed(ch, horizontal, sizeof horizontal / sizeof horizontal[0])) return L'-';
    if (listed(ch, vertical, sizeof vertical / sizeof vertical[0])) return L'|';
    return L'+';
}

/* What to show for a code point an ASCII screen cannot: the renderers
 * already draw ASCII there, so this only catches the odd glyph. */
static wchar_t ascii_stand_in(uint32_t ch)
{
    if (ch >= 0x2500 && ch <= 0x257F) return ascii_box(ch);
    if (ch >= 0x2580 && ch <= 0x259F) return L'#'; /* blocks */
    if (ch == 0x2800 || ch == 0x00A0) return L' '; /* empty braille, no-break space */
    if ((ch > 0x2800 && ch <= 0x28FF) || ch == 0x00B7 || ch == 0x2026) return L'.'; /* braille, ·, … */
    if (ch == 0x25CF || ch == 0x2022) return L'o'; /* ●, • */
    if (ch == 0x2013 || ch == 0x2014 || ch == 0x2212) return L'-'; /* –, —, − */
    if (ch == 0x00D7) return L'x';
    /* the Greek and arrows genlab's own text uses */
    static const struct { uint32_t ch; wchar_t ascii; } letters[] = {
        {0x03B2, L'B'}, {0x03BC, L'u'}, {0x03C3, L's'}, {0x03B5, L'e'},
        {0x2192, L'>'}, {0x2190, L'<'}, {0x2191, L'^'}, {0x2193, L'v'}};
    for (size_t i = 0; i < sizeof letters / sizeof *letters; i++)
        if (letters[i].ch == ch) return letters[i].ascii;
    return L'?';
}

/* One column per cell, whatever the buffer holds: control characters
 * would print as two (^X), wide or combining ones break the layout. */
static wchar_t displayable(uint32_t ch)
{
    if (ch < 0x20 || ch == 0x7F || (ch >= 0x80 && ch < 0xA0)) return L' ';
    if (ch < 0x7F) return (wchar_t)ch;
    if (!term.unicode_glyphs) return ascii_stand_in(ch);
    return ch <= 0x10FFFF && wcwidth((wchar_t)ch) == 1 ? (wchar_t)ch : L'?';
}

static attr_t curses_attrs(uint8_t attr)
{
    attr_t a = A_NORMAL;
    if (attr & ATTR_BOLD) a |= A_BOLD;
    if (attr & ATTR_DIM) a |= A_DIM;
    if (attr & ATTR_REVERSE) a |= A_REVERSE;
    return a;
}

/* The bottom-right cell too: with scrolling off, curses stores it and only
 * reports that the cursor cannot move past it (the ERR is expected). */
static void put_cell(int x, int y, const Cell *c)
{
    wchar_t text[2] = {displayable(c->ch), L'\0'};
    cchar_t cc;
    setcchar(&cc, text, curses_attrs(c->attr), cell_pair(c), NULL);
    mvwadd_wch(stdscr, y, x, &cc);
}

void term_present(const CellBuf *b)
{
    if (!term.open || !b->cells) return;
    /* Cells the buffer does not cover (a frame drawn at the old size). */
    if (b->w != COLS || b->h != LINES) werase(stdscr);
    int w = b->w < COLS ? b->w : COLS, h = b->h < LINES ? b->h : LINES;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) put_cell(x, y, &b->cells[(size_t)y * (size_t)b->w + (size_t)x]);
    wnoutrefresh(stdscr);
    doupdate();
}
