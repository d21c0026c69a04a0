/* term.h — the terminal: curses set-up and restore, keys, signals, and
 * putting a CellBuf on the screen. The only module that calls curses.
 *
 * The terminal is restored on every exit path: term_close, a normal exit
 * (atexit), SIGINT/SIGTERM/SIGHUP (reported as keys, so the app can quit
 * cleanly), and fatal signals (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT:
 * an async-signal-safe handler restores the saved termios, writes the
 * reset sequences, and re-raises). */
#ifndef GENLAB_TERM_H
#define GENLAB_TERM_H

#include "genlab/error.h"
#include "genlab/render.h"

typedef struct {
    int force_ascii;    /* --ascii: no Unicode glyphs */
    int force_no_color; /* --no-color (NO_COLOR in the environment does the same) */
    int inverted;       /* --invert: projector palette */
} TermOptions;

/* Keys: a typed character comes back as its Unicode code point; curses'
 * function keys (arrows, F1…, KEY_RESIZE, …) as TERM_FKEY(code), above
 * every code point, since curses' codes 257–511 are also the code points
 * U+0101–U+01FF (a typed 'ă' would otherwise read as KEY_UP). */
#define TERM_FKEY(curses_code) (0x200000 + (curses_code))
enum {
    TERM_KEY_NONE = -1,       /* the timeout passed */
    TERM_KEY_INTERRUPT = 0x110000, /* SIGINT, SIGTERM or SIGHUP arrived */
};

/* Sets the locale, starts curses (cbreak, noecho, keypad, no cursor,
 * ESCDELAY 25 ms, default colours), decides the display mode: DISPLAY_ASCII
 * when the locale is not UTF-8, the terminal has no colours, NO_COLOR is
 * set, or forced; DISPLAY_256 with ≥ 256 colours; DISPLAY_16 otherwise.
 * Installs the signal handling described above. Call from the main thread
 * BEFORE starting any other thread: it blocks SIGINT, SIGTERM, SIGHUP and
 * SIGWINCH in the calling thread so that threads started later inherit
 * the block; term_read_key unblocks them only while it waits. */
int term_open(const TermOptions *o, Err *e);
/* Restores the terminal (idempotent). */
void term_close(void);

/* The palette renderers should use. */
Palette term_palette(void);
/* Current size in cells. */
void term_size(int *w, int *h);

/* Waits up to timeout_ms for a key (or a signal); returns the key,
 * TERM_KEY_NONE on timeout (a negative timeout waits for ever),
 * TERM_FKEY(KEY_RESIZE) after a resize or a return from Ctrl-Z (the size is then
 * already updated), or TERM_KEY_INTERRUPT. Keys are curses key codes or
 * Unicode code points (wide input, so 'é' arrives whole). */
int term_read_key(int timeout_ms);

/* Draws the whole buffer (its size should be the terminal's) and updates
 * the screen with as little output as curses manages. Colours map to
 * colour pairs allocated on demand and cached; when pairs run out, the
 * nearest allocated pair is reused. In DISPLAY_ASCII no colour is used
 * (the buffer's colours are ignored; ATTR_REVERSE still applies). */
void term_present(const CellBuf *b);

#endif
